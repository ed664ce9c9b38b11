// broker::Server as a linkage evaluator (PROTOCOL.md 13.4): LinkageEvaluate frames from
// agencies, answered after the commit of the evaluation's count (LINKAGE_EVALUATION), and
// the LinkageService that holds the key and the quota (broker/linkage_service.h).
#include <spdlog/spdlog.h>

#include <filesystem>

#include "broker/linkage_service.h"
#include "broker/server.h"
#include "broker/server_internal.h"
#include "linkage/evaluator_key.h"

namespace refbus::broker {

using schema::Frame;
using schema::NackReason;

Result<std::unique_ptr<LinkageService>> LinkageService::Start(const std::string& broker_id,
                                                              const std::string& key_file,
                                                              const std::string& data_dir,
                                                              uint32_t daily_quota,
                                                              const schema::Directory& directory) {
  std::unique_ptr<LinkageService> s(new LinkageService());
  s->broker_id_ = broker_id;
  REFBUS_ASSIGN_OR_RETURN(auto key, linkage::LoadEvaluatorKey(key_file));
  s->key_ = std::make_unique<linkage::oprf::ServerKey>(std::move(key));
  if (Status p = s->Permitted(directory); !p.ok()) {
    return FailedPrecondition("[linkage] key_file " + key_file + ": " + p.message());
  }
  lmdb::EnvOptions eo;
  eo.map_size_bytes = size_t{64} << 20;
  eo.max_dbs = 2;
  REFBUS_ASSIGN_OR_RETURN(
      s->env_, lmdb::Env::Open((std::filesystem::path(data_dir) / "linkage").string(), eo));
  REFBUS_ASSIGN_OR_RETURN(auto quota, linkage::EvaluationQuota::Open(*s->env_, daily_quota));
  LinkageService* self = s.get();
  s->evaluator_ = std::make_unique<linkage::Evaluator>(
      *s->key_, std::move(quota), [self](const linkage::EvaluationCount& c) { self->last_ = c; });
  return s;
}

Status LinkageService::Permitted(const schema::Directory& directory) const {
  const schema::Party* me = directory.Find(broker_id_);
  if (me == nullptr || !me->HasRole(schema::Role::kLinkageEvaluator)) {
    return FailedPrecondition("broker " + broker_id_ +
                              " does not have the role linkage-evaluator in directory serial " +
                              std::to_string(directory.serial));
  }
  const schema::KeyRecord* k = me->ActiveKeys();
  const auto& pk = key_->public_key();
  if (k == nullptr || k->linkage_key != Bytes(pk.begin(), pk.end())) {
    return FailedPrecondition("the linkage key directory serial " +
                              std::to_string(directory.serial) + " lists for broker " + broker_id_ +
                              " is not this key file's public key");
  }
  return Status::Ok();
}

Result<linkage::oprf::Evaluation> LinkageService::Evaluate(
    const std::string& agency_id, ByteView element, UnixMillis now,
    std::optional<linkage::EvaluationCount>* count) {
  last_.reset();
  // Days before yesterday are no quota's any more (yesterday stays: a request just after
  // midnight may still be counted against it by a clock a little behind).
  const auto day = static_cast<uint32_t>(now / kMillisPerDay);
  if (day != pruned_day_ && day > 1) {
    auto pruned = evaluator_->quota().PruneBefore(day - 1);
    if (pruned.ok()) {
      pruned_day_ = day;
    } else {
      spdlog::error("linkage quota: pruning old days failed: {}", pruned.status().ToString());
    }
  }
  auto r = evaluator_->Handle(agency_id, element, now, linkage::oprf::RandomScalars());
  *count = std::move(last_);
  last_.reset();
  return r;
}

Result<linkage::EvaluationCount> LinkageService::CountOf(std::string_view agency_id,
                                                         uint32_t day) const {
  return evaluator_->quota().Read(agency_id, day);
}

Status Server::StartLinkage() {
  if (config_.linkage_key_file.empty()) return Status::Ok();
  REFBUS_ASSIGN_OR_RETURN(
      linkage_, LinkageService::Start(config_.id, config_.linkage_key_file, config_.data_dir,
                                      static_cast<uint32_t>(config_.linkage_daily_quota),
                                      directory_.directory));
  spdlog::info("linkage evaluator: {} evaluations per agency and UTC day",
               config_.linkage_daily_quota);
  return Status::Ok();
}

namespace {

schema::AuditEntry LinkageAudit(const std::string& agency, uint64_t serial,
                                const linkage::EvaluationCount& c) {
  schema::AuditEntry e;
  e.event = schema::AuditEvent::kLinkageEvaluation;
  e.actor = agency;
  e.directory_serial = serial;
  e.detail = c.Describe();
  if (c.this_one_refused) {
    e.reason = c.refusal == Status::Code::kResourceExhausted ? NackReason::kQuotaExceeded
                                                             : NackReason::kMalformed;
  }
  return e;
}

}  // namespace

void Server::HandleLinkageEvaluate(const std::string& routing_id, const schema::Party& peer,
                                   const Frame& frame, Turn& turn, UnixMillis now) {
  const schema::Directory& dir = directory_.directory;
  Status permitted = linkage_ == nullptr ? FailedPrecondition("this broker evaluates nothing")
                                         : linkage_->Permitted(dir);
  if (permitted.ok() && peer.kind != schema::PartyKind::kAgency) {
    permitted = PermissionDenied("only agencies ask for linkage evaluations");
  }
  if (!permitted.ok()) {
    Reject(turn, routing_id, frame.request_id, peer.id, NackReason::kNotPermitted,
           "linkage evaluation: " + permitted.message(), nullptr, {});
    return;
  }
  std::optional<linkage::EvaluationCount> count;
  auto eval = linkage_->Evaluate(peer.id, frame.linkage_evaluate.blinded_element, now, &count);
  if (!eval.ok()) {
    const bool counted = count.has_value();
    const NackReason reason =
        eval.status().code() == Status::Code::kResourceExhausted ? NackReason::kQuotaExceeded
        : eval.status().code() == Status::Code::kMalformed       ? NackReason::kMalformed
                                                                 : NackReason::kInternal;
    // The count (or the failure) is the audit entry; the element never is.
    std::string detail = counted ? count->Describe() : "linkage evaluation failed";
    if (!counted) spdlog::error("linkage evaluation for {}: {}", peer.id, eval.status().ToString());
    schema::AuditEntry* e =
        Reject(turn, routing_id, frame.request_id, peer.id, reason, std::move(detail), nullptr, {});
    if (e != nullptr && counted) *e = LinkageAudit(peer.id, dir.serial, *count);
    return;
  }
  if (count.has_value()) turn.batch.events.push_back(LinkageAudit(peer.id, dir.serial, *count));
  schema::LinkageEvaluated answer;
  answer.evaluated_element.assign(eval->evaluated.begin(), eval->evaluated.end());
  const auto proof = eval->proof.Serialize();
  answer.proof.assign(proof.begin(), proof.end());
  turn.linkage_answers.push_back(std::move(answer));
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = frame.request_id;
  reply.kind = Reply::LinkageAnswer{turn.linkage_answers.size() - 1};
  turn.replies.push_back(std::move(reply));
}

schema::Frame Server::AnswerLinkage(const Reply& reply, size_t index, const Job& job) const {
  if (!job.committed) {
    return server_internal::NackFrame(reply.request_id, {}, NackReason::kInternal,
                                      "the evaluation's audit entry was not committed; retry", 0);
  }
  Frame f;
  f.type = Frame::Type::kLinkageEvaluated;
  f.request_id = reply.request_id;
  f.linkage_evaluated = job.turn.linkage_answers[index];
  return f;
}

}  // namespace refbus::broker
