// broker::Server as a witness and as a witnessed log (schema/PROTOCOL.md section 11.3):
// WitnessRequest frames from other brokers are checked here and decided by the writer in
// the commit's transaction (the WitnessReply goes out after the commit); AddCosignature
// frames from witnesses are verified here and stored with the next commit.
#include <spdlog/spdlog.h>

#include "broker/server.h"
#include "broker/server_internal.h"
#include "keys/checkpoint.h"
#include "keys/witness.h"

namespace refbus::broker {
namespace {

using schema::Frame;
using schema::NackReason;
using server_internal::AckFrame;
using server_internal::kStorageRetryMs;
using server_internal::NackFrame;

schema::WitnessRefusal RefusalFor(keys::WitnessVerdict v) {
  switch (v) {
    case keys::WitnessVerdict::kCosign:
      return schema::WitnessRefusal::kNone;
    case keys::WitnessVerdict::kConflict:
      return schema::WitnessRefusal::kConflict;
    case keys::WitnessVerdict::kUnknownLog:
      return schema::WitnessRefusal::kUnknownLog;
    case keys::WitnessVerdict::kBadSignature:
      return schema::WitnessRefusal::kBadSignature;
    case keys::WitnessVerdict::kBadRequest:
      return schema::WitnessRefusal::kBadRequest;
    case keys::WitnessVerdict::kInconsistent:
      return schema::WitnessRefusal::kInconsistent;
  }
  return schema::WitnessRefusal::kBadRequest;
}

std::string Clip(std::string s, size_t n) {
  if (s.size() > n) s.resize(n);
  return s;
}

}  // namespace

void Server::RefuseWitnessFrame(Turn& turn, const std::string& routing_id, uint64_t request_id,
                                const std::string& peer, NackReason reason, std::string detail) {
  ++stats_.witness_refused;
  if (schema::AuditEntry* e =
          Reject(turn, routing_id, request_id, peer, reason, std::move(detail), nullptr, {})) {
    e->event = schema::AuditEvent::kWitnessRefused;
  }
}

void Server::HandleWitnessRequest(const std::string& routing_id, const schema::Party& peer,
                                  const Frame& frame, Turn& turn) {
  const schema::Directory& dir = directory_.directory;
  const uint64_t rid = frame.request_id;
  if (peer.kind != schema::PartyKind::kBroker) {
    RefuseWitnessFrame(turn, routing_id, rid, peer.id, NackReason::kNotPermitted,
                       "witness request refused: only brokers ask a broker to witness their "
                       "logs; " +
                           peer.id + " is a party of kind " + std::string(schema::Name(peer.kind)));
    return;
  }
  if (peer.id == config_.id) {
    RefuseWitnessFrame(turn, routing_id, rid, peer.id, NackReason::kNotPermitted,
                       "witness request refused: a broker does not witness its own log");
    return;
  }
  const schema::Party* me = dir.Find(config_.id);
  if (me == nullptr || !me->HasRole(schema::Role::kWitness)) {
    RefuseWitnessFrame(turn, routing_id, rid, peer.id, NackReason::kNotPermitted,
                       "witness request refused: broker " + config_.id +
                           " does not have the witness role in directory serial " +
                           std::to_string(dir.serial));
    return;
  }
  auto origin = CheckpointOrigin(dir.federation, peer.id);
  auto log_keys = keys::LogVerifiers(dir, peer.id);
  if (!origin.ok() || !log_keys.ok()) {
    RefuseWitnessFrame(turn, routing_id, rid, peer.id, NackReason::kNotPermitted,
                       "witness request refused: " +
                           (origin.ok() ? log_keys.status() : origin.status()).message());
    return;
  }
  WitnessItem item;
  item.requester = peer.id;
  item.origin = std::move(*origin);
  item.log_keys = std::move(*log_keys);
  item.request = frame.witness_request;
  item.directory_serial = dir.serial;
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = rid;
  reply.kind = Reply::WitnessRequest{turn.batch.witness.size()};
  turn.replies.push_back(std::move(reply));
  turn.batch.witness.push_back(std::move(item));
}

void Server::HandleAddCosignature(const std::string& routing_id, const schema::Party& peer,
                                  const Frame& frame, Turn& turn) {
  const schema::Directory& dir = directory_.directory;
  const uint64_t rid = frame.request_id;
  const std::string& note = frame.add_cosignature.checkpoint;
  auto refuse = [&](NackReason reason, const std::string& why) {
    RefuseWitnessFrame(turn, routing_id, rid, peer.id, reason, "cosignature refused: " + why);
  };
  auto keys = keys::WitnessVerifiersOf(dir, peer.id);
  if (!keys.ok() || peer.id == config_.id) {
    refuse(NackReason::kNotPermitted,
           "only witnesses (brokers and auditors with the witness role in the directory, other "
           "than this broker) may add cosignatures; " +
               (keys.ok() ? peer.id + " is this broker" : keys.status().message()));
    return;
  }
  auto parsed = keys::ParseSignedNote(note);
  if (!parsed.ok()) {
    refuse(NackReason::kMalformed, parsed.status().message());
    return;
  }
  auto own = keys::NoteVerifier::Create(origin_, keys::NoteKeyType::kEd25519,
                                        identity_->signing_public_key());
  auto opened = own.ok() ? keys::OpenCheckpoint(note, origin_, *own)
                         : Result<keys::VerifiedCheckpoint>(own.status());
  if (!opened.ok()) {
    refuse(NackReason::kBadSignature,
           "the note is not a checkpoint this broker signed (" + opened.status().message() + ")");
    return;
  }
  // Every line by one of the witness's keys must verify (signed-note rule), and one must.
  std::optional<keys::NoteSignature> valid;
  for (const keys::NoteSignature& sig : parsed->signatures) {
    for (const keys::NoteVerifier& k : *keys) {
      if (k.name() != sig.name || k.key_id() != sig.key_id) continue;
      auto t = keys::VerifyCosignature(opened->body, sig, k);
      if (!t.ok()) {
        refuse(NackReason::kBadSignature, t.status().message());
        return;
      }
      valid = sig;
    }
  }
  if (!valid) {
    refuse(NackReason::kBadSignature, "the note carries no cosignature by " + peer.id);
    return;
  }
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = rid;
  reply.message_id = AttestationId(AsBytes(note));
  reply.kind = Reply::Cosignature{turn.batch.cosignatures.size()};
  turn.replies.push_back(std::move(reply));
  turn.batch.cosignatures.push_back(
      {opened->checkpoint.size, opened->checkpoint.root, peer.id, std::move(*valid)});
}

Frame Server::AnswerWitness(uint64_t request_id, size_t index, const Job& job) {
  if (!job.committed) {
    return NackFrame(request_id, {}, NackReason::kInternal,
                     "the broker could not commit; retry later", kStorageRetryMs);
  }
  const WitnessItem& item = job.turn.batch.witness[index];
  const WitnessOutcome& o = job.result.witness[index];
  if (!o.error.ok()) {
    spdlog::critical("WITNESS STATE DAMAGED: cannot decide a request of {} for {}: {}",
                     item.requester, item.origin, o.error.ToString());
    return NackFrame(request_id, {}, NackReason::kInternal,
                     "this witness cannot read its state for " + item.origin, kStorageRetryMs);
  }
  Frame f;
  f.type = Frame::Type::kWitnessReply;
  f.request_id = request_id;
  f.witness_reply.refusal = RefusalFor(o.verdict);
  f.witness_reply.cosignature = o.cosignature;
  f.witness_reply.detail = Clip(o.detail, schema::kMaxWitnessDetailBytes);
  f.witness_reply.witness_size = o.witness_size;
  switch (o.verdict) {
    case keys::WitnessVerdict::kCosign:
      ++stats_.witness_cosigned;
      spdlog::debug("witnessed {}: cosigned size {}", item.origin, o.witness_size);
      break;
    case keys::WitnessVerdict::kConflict:
      spdlog::info("witnessing {}: {} asked from size {}; answered with this witness's size {}",
                   item.origin, item.requester, item.request.old_size, o.witness_size);
      break;
    case keys::WitnessVerdict::kInconsistent:
      ++stats_.witness_refused;
      ++stats_.witness_inconsistent;
      spdlog::critical(
          "WITNESS: REFUSED AN INCONSISTENT CHECKPOINT of {} from {}: {}; both checkpoints are "
          "kept as evidence record {} and the refusal is in this broker's audit log",
          item.origin, item.requester, o.detail, o.evidence ? *o.evidence : 0);
      break;
    default:
      ++stats_.witness_refused;
      spdlog::warn("witnessing {}: refused a checkpoint from {}: {} ({})", item.origin,
                   item.requester, keys::Name(o.verdict), o.detail);
      break;
  }
  return f;
}

Frame Server::AnswerCosignature(const Reply& reply, size_t index, const Job& job) const {
  if (!job.committed) {
    return NackFrame(reply.request_id, reply.message_id, NackReason::kInternal,
                     "the broker could not commit; retry later", kStorageRetryMs);
  }
  const Status& stored = job.result.cosignatures[index];
  if (!stored.ok()) {
    return NackFrame(reply.request_id, reply.message_id, NackReason::kOutOfRange,
                     "cosignature not stored: " + stored.message(), 0);
  }
  return AckFrame(reply.request_id, reply.message_id, false);
}

}  // namespace refbus::broker
