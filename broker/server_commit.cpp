// broker::Server's group commit: the loop hands its accumulated Turn to the writer thread
// (Dispatch), the writer commits it in one LMDB write transaction (CommitJob; then the
// expiry sweep and a checkpoint when asked), and the loop, once the job is back, counts
// what was stored, marks the mailboxes that got something new and sends the Turn's
// replies (Finish). Nothing is acked before its commit returned.
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <type_traits>
#include <variant>

#include "broker/server.h"
#include "broker/server_internal.h"

namespace refbus::broker {

using schema::Frame;
using schema::NackReason;
using server_internal::AckFrame;
using server_internal::kQuotaRetryMs;
using server_internal::kStorageRetryMs;
using server_internal::NackFrame;
using server_internal::Short;

namespace {

// The batch holds something for the store to write.
bool HasWrites(const Batch& b) {
  return !b.accepted.empty() || !b.acks.empty() || !b.events.empty() || !b.grants.empty() ||
         !b.revocations.empty() || !b.witness.empty() || !b.cosignatures.empty() ||
         !b.reroutes.empty() || !b.control_ends.empty() || !b.prekeys.empty();
}

// A reply that waits for the commit to store something new (an envelope, a grant or a
// revocation): refused when storage is full.
bool StoresNew(const Reply& r) {
  return std::holds_alternative<Reply::Submission>(r.kind) ||
         std::holds_alternative<Reply::Grant>(r.kind) ||
         std::holds_alternative<Reply::Revocation>(r.kind);
}

}  // namespace

void Server::Dispatch(UnixMillis now, bool expire, bool checkpoint) {
  for (auto& e : pending_events_) turn_.batch.events.push_back(std::move(e));
  pending_events_.clear();
  for (auto& c : pending_cosignatures_) turn_.batch.cosignatures.push_back(std::move(c));
  pending_cosignatures_.clear();
  turn_.batch.witness_signer = {identity_.get(), witness_name_};
  if (!turn_.batch.revocations.empty() || !turn_.batch.prekeys.empty()) {
    for (const auto& b : directory_.directory.brokers) {
      if (b.id != config_.id && b.status == schema::PartyStatus::kActive) {
        turn_.batch.revocation_peers.push_back(b.id);
      }
    }
  }
  // An auditor's AuditCheckpoint: signed right after this turn's commit, so the note
  // covers the query's own AUDITOR_QUERY entry.
  checkpoint = checkpoint || turn_.checkpoint_asked;
  if (turn_.Empty() && !expire && !checkpoint) {
    // Frames answered at once (refusals counted into an aggregate, directory fetches) left
    // nothing to commit: they must not hold the turn at max_batch and stop the reading.
    turn_.frames = 0;
    return;
  }
  auto job = std::make_unique<Job>();
  job->turn = std::move(turn_);
  turn_ = Turn();
  job->now = now;
  job->expire = expire;
  job->checkpoint = checkpoint;
  queue_.Push(std::move(job));
  busy_ = true;
}

void Server::WriterMain() {
  pthread_setname_np(pthread_self(), "rb-writer");  // what top -H and /proc show
  while (std::unique_ptr<Job> job = queue_.Pop()) {
    CommitJob(*job);
    queue_.PushDone(std::move(job));
  }
}

Result<CommitResult> Server::CommitWithoutNew(Job& job) {
  Turn& turn = job.turn;
  job.storage_full = true;
  Batch rest;
  rest.acks = std::move(turn.batch.acks);
  rest.events = std::move(turn.batch.events);
  // Witness decisions write little; a cosignature handed back replaces a line.
  rest.witness = std::move(turn.batch.witness);
  rest.witness_signer = turn.batch.witness_signer;
  rest.cosignatures = std::move(turn.batch.cosignatures);
  rest.reroutes = std::move(turn.batch.reroutes);  // moves entries, grows little
  rest.control_ends = std::move(turn.batch.control_ends);
  rest.prekeys = std::move(turn.batch.prekeys);  // a few hundred bytes each, acked as stored
  rest.roster_versions = std::move(turn.batch.roster_versions);  // with their entries in events
  rest.revocation_peers = turn.batch.revocation_peers;
  for (auto& r : turn.replies) {
    if (!StoresNew(r)) continue;
    if (const auto* s = std::get_if<Reply::Submission>(&r.kind)) {
      job.refused_uncommitted.push_back(turn.decoded[s->index].header.kind);
    }
    r.Refuse(NackReason::kStorageFull, "the broker's storage is full; retry later",
             kStorageRetryMs);
  }
  turn.batch = std::move(rest);
  return store_->Commit(turn.batch, job.now);
}

void Server::RefuseUncommitted(Job& job, const Status& status) {
  Turn& turn = job.turn;
  for (auto& r : turn.replies) {
    if (!StoresNew(r) && !std::holds_alternative<Reply::Attestation>(r.kind)) continue;
    if (const auto* s = std::get_if<Reply::Submission>(&r.kind)) {
      job.refused_uncommitted.push_back(turn.decoded[s->index].header.kind);
    }
    r.Refuse(status.code() == Status::Code::kResourceExhausted ? NackReason::kStorageFull
                                                               : NackReason::kInternal,
             "the broker could not store the envelope; retry later", kStorageRetryMs);
  }
}

void Server::CommitJob(Job& job) {
  Turn& turn = job.turn;
  if (HasWrites(turn.batch)) {
    for (size_t i = 0; i < turn.batch.accepted.size(); ++i) {
      turn.batch.accepted[i].decoded = &turn.decoded[i];
    }
    const auto commit_start = std::chrono::steady_clock::now();
    auto result = store_->Commit(turn.batch, job.now);
    if (!result.ok() && result.status().code() == Status::Code::kResourceExhausted &&
        (!turn.batch.accepted.empty() || !turn.batch.grants.empty() ||
         !turn.batch.revocations.empty())) {
      // Full: refuse the new envelopes (they stay with their senders, who retry), but keep
      // delivering: acks free room.
      spdlog::critical("STORAGE FULL: refusing new submissions ({}); deliveries continue",
                       result.status().message());
      result = CommitWithoutNew(job);
    }
    job.commit_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_start).count();
    if (!result.ok()) {
      spdlog::error("commit failed: {}", result.status().ToString());
      RefuseUncommitted(job, result.status());
      // Acks not applied: the recipients will get those messages again (and dedup them).
      job.status = result.status();
    } else {
      job.committed = true;
      job.result = std::move(*result);
    }
  }
  if (job.expire) {
    auto n = store_->ExpireOld(job.now, 10000);
    if (!n.ok())
      spdlog::error("expiry sweep failed: {}", n.status().ToString());
    else if (*n > 0)
      spdlog::info("expired {} old message ids", *n);
  }
  if (job.checkpoint) {
    // After this job's commit and expiry: the checkpoint covers them.
    auto c = store_->SignCheckpoint(origin_, *identity_);
    if (c.ok()) {
      job.checkpoint_outcome = std::move(*c);
    } else {
      job.checkpoint_status = c.status();
    }
  }
}

void Server::NoteCommitHealth(const Job& job, UnixMillis now) {
  // For readiness: storage full until a commit with new envelopes goes through again.
  if (job.storage_full) {
    if (health_.storage_full_since == 0) health_.storage_full_since = now;
  } else if (job.committed && !job.turn.batch.accepted.empty()) {
    if (health_.storage_full_since != 0) {
      spdlog::warn("storage has room again: submissions accepted");
    }
    health_.storage_full_since = 0;
  }
  if (job.committed || job.status.ok()) {
    health_.last_commit_error.clear();
  } else {
    health_.last_commit_error = job.status.message().substr(0, 300);
  }
}

Status Server::NoteCheckpoint(const Job& job, UnixMillis now) {
  if (!job.checkpoint) return Status::Ok();
  if (!job.checkpoint_status.ok()) {
    spdlog::critical("AUDIT CHECKPOINT NOT SIGNED: {}", job.checkpoint_status.ToString());
    return job.checkpoint_status;
  }
  const keys::Checkpoint& c = job.checkpoint_outcome.stored.checkpoint;
  health_.last_checkpoint_size = c.size;
  if (job.checkpoint_outcome.signed_now) {
    ++stats_.checkpoints;
    health_.last_checkpoint_signed_ms = now;
    spdlog::info("signed audit checkpoint: {} entries, root {}", c.size, HexEncode(c.root));
    if (witness_client_) witness_client_->Offer(job.checkpoint_outcome.stored);
  }
  health_.latest_checkpoint = job.checkpoint_outcome.stored.note;
  return Status::Ok();
}

void Server::MarkMailbox(const std::string& m) {
  const schema::Party* p = directory_.directory.Find(m);
  if (p != nullptr && p->kind == schema::PartyKind::kBroker) {
    links_->MarkDirty(m);
  } else {
    deliveries_.dirty.insert(m);
  }
}

void Server::NoteCommitted(const Job& job) {
  const Turn& turn = job.turn;
  const CommitResult& result = job.result;
  ++stats_.commits;
  for (size_t i = 0; i < result.accepted.size(); ++i) {
    Outcome o = result.accepted[i];
    stats_.CountEnvelope(turn.decoded[i].header.kind, o);
    if (o == Outcome::kStored) {
      ++stats_.accepted;
      const Accepted& a = turn.batch.accepted[i];
      if (a.hops > 0) ++stats_.relays_accepted;
      for (const auto& m : a.mailboxes) {
        const schema::Party* p = directory_.directory.Find(m);
        if (p != nullptr && p->kind == schema::PartyKind::kBroker) ++stats_.routed_out;
        MarkMailbox(m);
      }
      if (a.mailboxes.empty()) {
        for (const auto& r : turn.decoded[i].header.recipients) {
          deliveries_.dirty.insert(r.agency_id);
        }
      }
    } else if (o == Outcome::kDuplicate) {
      ++stats_.duplicates;
    }
  }
  for (bool applied : result.acks_applied) stats_.acked += applied ? 1 : 0;
  for (size_t i = 0; i < result.reroutes_applied.size(); ++i) {
    if (!result.reroutes_applied[i]) continue;
    for (const auto& t : turn.batch.reroutes[i].to) MarkMailbox(t);
  }
  for (const auto& a : turn.batch.accepted) {
    for (const auto& t : a.added) MarkMailbox(t);
  }
  for (size_t i = 0; i < result.cosignatures.size(); ++i) {
    const CheckpointCosignature& c = turn.batch.cosignatures[i];
    if (result.cosignatures[i].ok()) {
      ++stats_.cosignatures_stored;
      spdlog::info("checkpoint of size {} cosigned by witness {}", c.size, c.witness_id);
    } else {
      spdlog::warn("cosignature by {} of size {} not stored: {}", c.witness_id, c.size,
                   result.cosignatures[i].message());
    }
  }
}

bool Server::NoteCommitRefusal(const Accepted& a, NackReason reason, UnixMillis now) {
  if (a.audit_refusal) {
    refusals_.NoteAudited(a.actor, server_internal::kCommitRefusals, now);
    return true;
  }
  (void)refusals_.Note(a.actor, reason, now, /*may_audit=*/false);
  return false;
}

void Server::SettleReplies(Job& job) {
  const CommitResult& result = job.result;
  for (auto& r : job.turn.replies) {
    const ControlOutcome* control = nullptr;
    const char* what = nullptr;
    if (auto* g = std::get_if<Reply::Grant>(&r.kind)) {
      control = &result.grants[g->index];
      g->duplicate = control->duplicate;
      what = "registration";
    } else if (auto* v = std::get_if<Reply::Revocation>(&r.kind)) {
      control = &result.revocations[v->index];
      v->duplicate = control->duplicate;
      what = "revocation";
    }
    if (control != nullptr) {
      if (!control->ok) {
        ++stats_.rejected;
        r.Refuse(control->reason, control->detail, 0);
        spdlog::warn("refused a consent {}: {} ({})", what, schema::Name(control->reason),
                     control->detail);
      }
      continue;
    }
    auto* s = std::get_if<Reply::Submission>(&r.kind);
    if (s == nullptr) continue;
    const size_t i = s->index;
    Outcome o = result.accepted[i];
    if ((o == Outcome::kRefused || o == Outcome::kQuotaExceeded) &&
        !NoteCommitRefusal(job.turn.batch.accepted[i], result.refusals[i].reason, job.now)) {
      // Counted into an aggregate entry (broker/refusals.h): not logged one by one either.
      ++stats_.rejected;
      const keys::ScopeRefusal& why = result.refusals[i];
      const bool quota = o == Outcome::kQuotaExceeded;
      r.Refuse(why.reason, quota ? why.detail + "; retry later" : why.detail,
               quota ? kQuotaRetryMs : 0);
    } else if (o == Outcome::kRefused) {
      ++stats_.rejected;
      const keys::ScopeRefusal& why = result.refusals[i];
      r.Refuse(why.reason, why.detail, 0);
      spdlog::warn("refused message {}: {} ({})", Short(r.message_id), schema::Name(why.reason),
                   why.detail);
    } else if (o == Outcome::kQuotaExceeded) {
      ++stats_.rejected;
      const std::string why = result.refusals[i].detail;
      std::string detail =
          (why.empty() ? "mailbox of " + result.quota_recipient + " is full" : why) +
          "; retry later";
      spdlog::warn("refused message {}: quota-exceeded ({}; back-pressure, retry in {} ms)",
                   Short(r.message_id), detail, kQuotaRetryMs);
      r.Refuse(NackReason::kQuotaExceeded, std::move(detail), kQuotaRetryMs);
    } else if (o == Outcome::kDuplicate) {
      s->duplicate = true;
    }
  }
}

schema::Frame Server::CheckpointAck(uint64_t request_id, ByteView message_id,
                                    bool duplicate) const {
  schema::Frame f = AckFrame(request_id, message_id, duplicate);
  f.ack.latest_checkpoint = health_.latest_checkpoint;
  return f;
}

void Server::SendReplies(const Job& job) {
  for (const auto& r : job.turn.replies) {
    std::visit(
        [&](const auto& k) {
          using K = std::decay_t<decltype(k)>;
          if constexpr (std::is_same_v<K, Reply::WitnessRequest>) {
            Send(r.routing_id, AnswerWitness(r.request_id, k.index, job));
          } else if constexpr (std::is_same_v<K, Reply::Cosignature>) {
            Send(r.routing_id, AnswerCosignature(r, k.index, job));
          } else if constexpr (std::is_same_v<K, Reply::LinkageAnswer>) {
            Send(r.routing_id, AnswerLinkage(r, k.index, job));
          } else if constexpr (std::is_same_v<K, Reply::TallyAnswer>) {
            Send(r.routing_id, AnswerTally(r, k, job));
          } else if constexpr (std::is_same_v<K, Reply::AuditQuery>) {
            Send(r.routing_id,
                 AnswerAuditQuery(job.turn.audit_queries[k.index], r.request_id, job));
          } else if constexpr (std::is_same_v<K, Reply::Attestation>) {
            // Acked once its audit entry is committed.
            Send(r.routing_id, job.committed ? CheckpointAck(r.request_id, r.message_id, false)
                                             : NackFrame(r.request_id, r.message_id,
                                                         NackReason::kUnspecified, "", 0));
          } else if constexpr (std::is_same_v<K, Reply::Nack>) {
            Send(r.routing_id,
                 NackFrame(r.request_id, r.message_id, k.reason, k.detail, k.retry_after_ms));
          } else {  // Submission, Grant, Revocation: stored (or already held)
            Send(r.routing_id, CheckpointAck(r.request_id, r.message_id, k.duplicate));
          }
        },
        r.kind);
  }
}

Status Server::Finish(Job& job) {
  Turn& turn = job.turn;
  // Committed or not, these acks are no longer pending: a failed one is redelivered with
  // the recipient's next session.
  for (const auto& a : turn.batch.acks) {
    if (a.kind == RecipientAck::Kind::kForwarded || a.kind == RecipientAck::Kind::kRefusedByPeer) {
      continue;  // link ends: the links keep their own
    }
    auto p = deliveries_.peers.find(a.recipient);
    if (p != deliveries_.peers.end()) p->second.acks_uncommitted.erase(a.seq);
  }
  links_->Committed(turn.batch.acks, turn.batch.control_ends);
  if (!job.status.ok()) spdlog::error("turn not committed: {}", job.status.ToString());
  if (job.commit_seconds >= 0) stats_.ObserveCommit(job.commit_seconds);
  if (job.committed && !turn.batch.accepted.empty()) {
    stats_.ObserveCommitEnvelopes(turn.batch.accepted.size());
  }
  for (schema::MessageKind k : job.refused_uncommitted) {
    stats_.CountEnvelope(k, EnvelopeOutcome::kRefused);
  }
  const UnixMillis finish_now = SystemClock::Get().NowMillis();
  NoteCommitHealth(job, finish_now);
  Status checkpoint_status = NoteCheckpoint(job, finish_now);
  if (job.committed) {
    NoteCommitted(job);
    SettleReplies(job);
    PushPrekeys(job);
  } else {
    ForgetUncommittedRosters(turn.batch);
  }
  SendReplies(job);
  return job.status.ok() ? checkpoint_status : job.status;
}

}  // namespace refbus::broker
