// broker::Server's answers to auditors (schema/PROTOCOL.md section 11): each query is
// logged as an AUDITOR_QUERY entry in the accumulating Turn and answered in Finish, after
// that Turn's commit, from read transactions of the committed log.
#include <spdlog/spdlog.h>

#include "broker/server.h"
#include "broker/server_internal.h"

namespace refbus::broker {
namespace {

using schema::Frame;
using schema::NackReason;
using server_internal::kStorageRetryMs;
using server_internal::NackFrame;

// What an audit query asks for, for the log and the audit entry: ids and ranges only.
std::string DescribeAuditQuery(const Frame& f) {
  switch (f.type) {
    case Frame::Type::kAuditCheckpoint:
      return "audit query: sign and return a checkpoint";
    case Frame::Type::kAuditEntries:
      return "audit query: entries from index " + std::to_string(f.audit_entries.from_index) +
             ", at most " + std::to_string(f.audit_entries.max);
    case Frame::Type::kAuditProof:
      return "audit query: inclusion proof of entry " + std::to_string(f.audit_proof.index) +
             " in tree size " + std::to_string(f.audit_proof.tree_size);
    case Frame::Type::kAuditConsistency:
      return "audit query: consistency proof from tree size " +
             std::to_string(f.audit_consistency.old_size) + " to " +
             std::to_string(f.audit_consistency.new_size);
    case Frame::Type::kAuditCheckpoints:
      return "audit query: checkpoints from tree size " +
             std::to_string(f.audit_checkpoints.from_size) + ", at most " +
             std::to_string(f.audit_checkpoints.max);
    default:
      return "audit query";
  }
}

Bytes HashBytes(const keys::Hash& h) { return Bytes(h.begin(), h.end()); }

// A failed audit answer: an internal error (retry later) or a range beyond the log.
struct AuditFailure {
  bool internal = true;
  std::string detail;
};

// Fills r (log_size set) from the committed log for one query of the kinds answered
// from reads (all but AuditCheckpoint).
std::optional<AuditFailure> ReadAuditAnswer(const Store& store, const Frame& query, uint64_t size,
                                            schema::AuditReply& r) {
  auto internal = [](const std::string& detail) { return AuditFailure{true, detail}; };
  auto out_of_range = [](const std::string& detail) { return AuditFailure{false, detail}; };
  switch (query.type) {
    case Frame::Type::kAuditEntries: {
      const schema::AuditEntriesQuery& q = query.audit_entries;
      if (q.from_index > size) {
        return out_of_range("the audit log has " + std::to_string(size) + " entries; index " +
                            std::to_string(q.from_index) + " is beyond it");
      }
      auto read = store.AuditEntriesFrom(q.from_index, q.max, schema::kMaxAuditReplyPayloadBytes);
      if (!read.ok()) return internal(read.status().message());
      if (!read->damaged.empty()) {
        std::string list;
        for (uint64_t i : read->damaged) list += (list.empty() ? "" : ", ") + std::to_string(i);
        spdlog::critical(
            "AUDIT LOG DAMAGED: entries {} do not match their stored leaf hashes (served to "
            "the auditor as stored)",
            list);
      }
      r.entries = std::move(read->entries);
      r.first_index = q.from_index;
      r.log_size = read->log_size;
      r.more = read->more;
      return std::nullopt;
    }
    case Frame::Type::kAuditProof: {
      const schema::AuditProofQuery& q = query.audit_proof;
      if (q.tree_size > size) {
        return out_of_range("the audit log has " + std::to_string(size) +
                            " entries, fewer than tree size " + std::to_string(q.tree_size));
      }
      auto proof = store.InclusionProof(q.index, q.tree_size);
      if (!proof.ok()) return internal(proof.status().message());
      for (const auto& h : *proof) r.hashes.push_back(HashBytes(h));
      r.first_index = q.index;
      return std::nullopt;
    }
    case Frame::Type::kAuditConsistency: {
      const schema::AuditConsistencyQuery& q = query.audit_consistency;
      if (q.new_size > size) {
        return out_of_range("the audit log has " + std::to_string(size) +
                            " entries, fewer than tree size " + std::to_string(q.new_size));
      }
      auto proof = store.ConsistencyProof(q.old_size, q.new_size);
      if (!proof.ok()) return internal(proof.status().message());
      for (const auto& h : *proof) r.hashes.push_back(HashBytes(h));
      return std::nullopt;
    }
    case Frame::Type::kAuditCheckpoints: {
      const schema::AuditCheckpointsQuery& q = query.audit_checkpoints;
      // One more than asked for tells whether more follow.
      auto stored = store.Checkpoints(q.from_size, size_t{q.max} + 1);
      if (!stored.ok()) return internal(stored.status().message());
      size_t bytes = 0;
      for (auto& c : *stored) {
        if (r.checkpoints.size() == q.max ||
            (!r.checkpoints.empty() &&
             bytes + c.note.size() > schema::kMaxAuditReplyPayloadBytes)) {
          r.more = true;
          break;
        }
        bytes += c.note.size();
        r.checkpoints.push_back(std::move(c.note));
      }
      return std::nullopt;
    }
    default:
      return internal("not an audit query");
  }
}

}  // namespace

void Server::HandleAuditQuery(const std::string& routing_id, const schema::Party& peer,
                              const Frame& query, Turn& turn) {
  std::string what = DescribeAuditQuery(query);
  // The party as the current directory lists it (CurrentPeer checked it for this frame).
  if (peer.kind != schema::PartyKind::kAuditor || !peer.HasRole(schema::Role::kAudit)) {
    ++stats_.audit_refused;
    std::string who = peer.kind == schema::PartyKind::kAuditor
                          ? "auditor " + peer.id + " lacks the audit role"
                          : peer.id + " is a party of kind " + std::string(schema::Name(peer.kind));
    if (schema::AuditEntry* e = Reject(
            turn, routing_id, query.request_id, peer.id, NackReason::kNotPermitted,
            "only auditors with the audit role in the directory may query the audit log; " + who,
            nullptr, {})) {
      e->event = schema::AuditEvent::kAuditorQuery;
      e->detail = what + ", refused: " + e->detail;
    }
    return;
  }
  schema::AuditEntry e;
  e.event = schema::AuditEvent::kAuditorQuery;
  e.actor = peer.id;
  e.directory_serial = directory_.directory.serial;
  e.detail = what;
  turn.batch.events.push_back(std::move(e));
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = query.request_id;
  reply.kind = Reply::AuditQuery{turn.audit_queries.size()};
  turn.replies.push_back(std::move(reply));
  turn.audit_queries.push_back(query);
  if (query.type == Frame::Type::kAuditCheckpoint) turn.checkpoint_asked = true;
  spdlog::info("{} from {}", what, peer.id);
}

Frame Server::AnswerAuditQuery(const Frame& query, uint64_t request_id, const Job& job) {
  auto internal = [&](const std::string& detail) {
    spdlog::error("cannot answer an audit query: {}", detail);
    return NackFrame(request_id, {}, NackReason::kInternal, detail, kStorageRetryMs);
  };
  if (!job.committed) {
    // Not logged, so not answered: the auditor asks again.
    return internal("the query could not be written to the audit log; retry later");
  }
  Frame f;
  f.type = Frame::Type::kAuditReply;
  f.request_id = request_id;
  schema::AuditReply& r = f.audit_reply;
  if (query.type == Frame::Type::kAuditCheckpoint) {
    if (!job.checkpoint) return internal("no checkpoint was signed for this query");
    if (!job.checkpoint_status.ok()) {
      return internal("the broker did not sign a checkpoint: " + job.checkpoint_status.message());
    }
    r.checkpoints.push_back(job.checkpoint_outcome.stored.note);
    r.log_size = job.checkpoint_outcome.stored.checkpoint.size;
    ++stats_.audit_queries;
    return f;
  }
  auto size = store_->AuditSize();
  if (!size.ok()) return internal(size.status().message());
  r.log_size = *size;
  if (auto failure = ReadAuditAnswer(*store_, query, *size, r)) {
    if (failure->internal) return internal(failure->detail);
    return NackFrame(request_id, {}, NackReason::kOutOfRange, failure->detail, 0);
  }
  ++stats_.audit_queries;
  return f;
}

}  // namespace refbus::broker
