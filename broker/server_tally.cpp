// broker::Server's linkage tallies (PROTOCOL.md 13.7): an agency hands its home broker a
// tally it signed about a linkage id; the broker checks that it is the agency's own, signed
// by the agency's current signing key, records a LINKAGE_TALLY audit entry with the
// tally's SHA-256 (never its counts, dates or linkage id), and answers after the commit
// with the entry, its inclusion proof and a checkpoint signed after the commit. An agency
// may later ask for a fresh proof of its own LINKAGE_TALLY entries only (to carry the
// cosignatures the broker has gathered since), logged as AUDITOR_QUERY like an auditor's.
// Every refusal is audited.
#include <spdlog/spdlog.h>

#include "broker/server.h"
#include "broker/server_internal.h"
#include "keys/crypto.h"
#include "keys/linkage_tally.h"
#include "schema/codec.h"

namespace refbus::broker {

using schema::Frame;
using schema::NackReason;

namespace {

// How far back from the log's end the answer looks for this turn's entry: more than one
// turn ever writes.
constexpr uint64_t kTallyEntrySearch = 1u << 16;
// How many stored checkpoints above a tally's entry a fresh proof looks through for one
// with a cosignature.
constexpr size_t kTallyCheckpointScan = 1024;

// A signed note with more than the log's own signature line.
bool HasTallyCosignature(std::string_view note) {
  size_t lines = 0;
  for (size_t at = note.find("\n\xE2\x80\x94 "); at != std::string_view::npos;
       at = note.find("\n\xE2\x80\x94 ", at + 1)) {
    ++lines;
  }
  return lines > 1;
}

}  // namespace

void Server::HandleLinkageTally(const std::string& routing_id, const schema::Party& peer,
                                uint64_t request_id, schema::LinkageTallyFrame tally, Turn& turn,
                                UnixMillis now) {
  const bool record = !tally.signed_tally.empty();
  const Bytes hash = record ? Sha256(tally.signed_tally) : tally.tally_sha256;
  auto refuse = [&](NackReason reason, const std::string& detail) {
    if (schema::AuditEntry* e = Reject(turn, routing_id, request_id, peer.id, reason,
                                       "linkage tally: " + detail, nullptr, {})) {
      e->sender_id = peer.id;
      e->statement_sha256 = hash;
      if (!record) e->event = schema::AuditEvent::kAuditorQuery;
    }
  };
  if (peer.kind != schema::PartyKind::kAgency) {
    refuse(NackReason::kNotPermitted, "only an agency records a linkage tally");
    return;
  }
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = Bytes(hash.begin(), hash.begin() + 16);  // the hash's first 16 bytes
  schema::AuditEntry e;
  e.actor = peer.id;
  e.sender_id = peer.id;
  e.directory_serial = directory_.directory.serial;
  e.statement_sha256 = hash;
  if (record) {
    auto t = keys::VerifyLinkageTally(AsChars(tally.signed_tally), directory_.directory, now);
    if (!t.ok()) {
      refuse(server_internal::SignedStatementRefusal(t.status()), t.status().message());
      return;
    }
    if (t->agency != peer.id) {
      refuse(NackReason::kSenderMismatch, "the tally of " + t->agency + " sent by " + peer.id +
                                              " (an agency records only its own)");
      return;
    }
    const schema::KeyRecord* current = peer.ActiveKeys();
    if (current == nullptr ||
        keys::KeyId(keys::KeyUse::kSigning, current->signing_key) != t->signer_key_id) {
      refuse(NackReason::kUnknownSenderKey, "signed with " + keys::Fingerprint(t->signer_key_id) +
                                                ", not with " + peer.id + "'s current signing key");
      return;
    }
    e.event = schema::AuditEvent::kLinkageTally;
    e.message_id = reply.message_id;
    e.detail = "linkage tally signed by " + keys::Fingerprint(t->signer_key_id);
    reply.kind = Reply::TallyAnswer{hash, peer.id, true, 0};
  } else {
    // Only the agency's own LINKAGE_TALLY entry, named by index and hash.
    auto bytes = store_->AuditEntryBytes(tally.entry_index);
    auto entry =
        bytes.ok() ? schema::DecodeAuditEntry(*bytes) : Result<schema::AuditEntry>(bytes.status());
    if (!entry.ok() || entry->event != schema::AuditEvent::kLinkageTally ||
        entry->actor != peer.id || entry->statement_sha256 != hash) {
      refuse(NackReason::kNotPermitted, "entry " + std::to_string(tally.entry_index) +
                                            " is not a linkage tally of " + peer.id +
                                            " with this hash");
      return;
    }
    e.event = schema::AuditEvent::kAuditorQuery;
    e.detail = "linkage tally proof: entry " + std::to_string(tally.entry_index);
    reply.kind = Reply::TallyAnswer{hash, peer.id, false, tally.entry_index};
  }
  spdlog::info("{} from {}", e.detail, peer.id);
  turn.batch.events.push_back(std::move(e));
  turn.replies.push_back(std::move(reply));
  if (record) turn.checkpoint_asked = true;  // signed right after this commit
}

Frame Server::AnswerTally(const Reply& reply, const reply_kind::TallyAnswer& answer,
                          const Job& job) const {
  auto internal = [&](const std::string& detail) {
    spdlog::error("cannot answer a linkage tally: {}", detail);
    return server_internal::NackFrame(reply.request_id, reply.message_id, NackReason::kInternal,
                                      detail, server_internal::kStorageRetryMs);
  };
  if (!job.committed) return internal("the tally's audit entry was not committed; retry later");
  Frame f;
  f.type = Frame::Type::kAuditReply;
  f.request_id = reply.request_id;
  schema::AuditReply& r = f.audit_reply;
  std::string note;
  uint64_t size = 0;
  if (answer.recorded) {
    if (!job.checkpoint || !job.checkpoint_status.ok()) {
      return internal("the broker did not sign a checkpoint after the tally");
    }
    note = job.checkpoint_outcome.stored.note;
    size = job.checkpoint_outcome.stored.checkpoint.size;
  } else {
    auto latest = store_->LatestCheckpoint();
    if (!latest.ok() || !latest->has_value()) return internal("no stored checkpoint");
    note = (*latest)->note;
    size = (*latest)->checkpoint.size;
    // The largest checkpoint that carries a cosignature, when the latest does not yet.
    if (!HasTallyCosignature(note)) {
      auto stored = store_->Checkpoints(answer.entry_index + 1, kTallyCheckpointScan);
      for (const auto& c : stored.ok() ? *stored : std::vector<StoredCheckpoint>{}) {
        if (HasTallyCosignature(c.note)) {
          note = c.note;
          size = c.checkpoint.size;
        }
      }
    }
  }
  uint64_t index = answer.entry_index;
  Bytes entry;
  for (uint64_t i = size; answer.recorded && i > 0 && size - i < kTallyEntrySearch; --i) {
    auto bytes = store_->AuditEntryBytes(i - 1);
    if (!bytes.ok()) return internal(bytes.status().message());
    auto e = schema::DecodeAuditEntry(*bytes);
    if (e.ok() && e->event == schema::AuditEvent::kLinkageTally && e->actor == answer.agency &&
        e->statement_sha256 == answer.tally_sha256) {
      index = i - 1;
      entry = std::move(*bytes);
      break;
    }
  }
  if (!answer.recorded) {
    auto bytes = store_->AuditEntryBytes(index);
    if (!bytes.ok()) return internal(bytes.status().message());
    entry = std::move(*bytes);
  }
  if (entry.empty() || index >= size)
    return internal("the tally's entry is not under a checkpoint");
  auto proof = store_->InclusionProof(index, size);
  if (!proof.ok()) return internal(proof.status().message());
  for (const auto& h : *proof) r.hashes.emplace_back(h.begin(), h.end());
  r.entries.push_back(std::move(entry));
  r.first_index = index;
  r.checkpoints.push_back(std::move(note));
  r.log_size = size;
  return f;
}

}  // namespace refbus::broker
