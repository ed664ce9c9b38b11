// What the broker's loop gathers between two commits (a Turn), the replies it owes for
// them, and the Job that carries a Turn to the writer thread and back (broker/server.h).
//
// A Reply is owed to one request and sent after the commit of its Turn: its kind says what
// was asked (a submission, a grant, an audit query, ...), and a refusal found before or
// after the commit turns it into a Nack. The indexes in the kinds point into the Turn's
// batch (or audit_queries): they stay valid because a Turn is moved whole.
//
// Thread safety: plain data. A Turn belongs to the loop until it is queued for the writer
// and to the writer until it is queued back (broker/job_queue.h): never to both at once.
#ifndef REFBUS_BROKER_TURN_H_
#define REFBUS_BROKER_TURN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "broker/store.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "schema/types.h"

namespace refbus::broker {

// The kinds of Reply (declared outside it so that they are complete types when the
// variant is defined).
namespace reply_kind {

// Refused (before the commit, or by it): a Nack with these.
struct Nack {
  schema::NackReason reason = schema::NackReason::kUnspecified;
  std::string detail;
  uint32_t retry_after_ms = 0;
};
// An envelope submitted or relayed: index into the batch's accepted list.
struct Submission {
  size_t index = 0;
  bool duplicate = false;  // the ack says the message was already held
};
// A consent grant registration: index into the batch's grants.
struct Grant {
  size_t index = 0;
  bool duplicate = false;
};
// A consent revocation (the agency's own or relayed): index into the batch's revocations.
struct Revocation {
  size_t index = 0;
  bool duplicate = false;
};
// An attestation: acked once its audit entry is committed.
struct Attestation {};
// An auditor's query: index into the turn's audit_queries, answered after the commit.
struct AuditQuery {
  size_t index = 0;
};
// A peer broker's WitnessRequest: index into the batch's witness requests.
struct WitnessRequest {
  size_t index = 0;
};
// A witness's AddCosignature: index into the batch's cosignatures.
struct Cosignature {
  size_t index = 0;
};
// An agency's LinkageEvaluate: index into the turn's linkage_answers, sent once the
// evaluation's audit entry is committed.
struct LinkageAnswer {
  size_t index = 0;
};
// An agency's LinkageTally (PROTOCOL.md 13.7), answered after the commit with its entry, the
// entry's inclusion proof and a checkpoint. recorded: the entry is this turn's (found by
// its hash); else the earlier entry at entry_index, checked when the frame came.
struct TallyAnswer {
  Bytes tally_sha256;
  std::string agency;
  bool recorded = false;
  uint64_t entry_index = 0;
};

}  // namespace reply_kind

// A reply owed to a requester, sent after the turn's commit.
struct Reply {
  using Nack = reply_kind::Nack;
  using Submission = reply_kind::Submission;
  using Grant = reply_kind::Grant;
  using Revocation = reply_kind::Revocation;
  using Attestation = reply_kind::Attestation;
  using AuditQuery = reply_kind::AuditQuery;
  using WitnessRequest = reply_kind::WitnessRequest;
  using Cosignature = reply_kind::Cosignature;
  using LinkageAnswer = reply_kind::LinkageAnswer;
  using TallyAnswer = reply_kind::TallyAnswer;
  using Kind = std::variant<Nack, Submission, Grant, Revocation, Attestation, AuditQuery,
                            WitnessRequest, Cosignature, LinkageAnswer, TallyAnswer>;

  std::string routing_id;
  uint64_t request_id = 0;
  Bytes message_id;  // what the Ack or Nack names (empty for some kinds)
  Kind kind;

  // Turns the reply into a refusal.
  void Refuse(schema::NackReason reason, std::string detail, uint32_t retry_after_ms) {
    kind = Nack{reason, std::move(detail), retry_after_ms};
  }
};

struct Turn {
  Batch batch;
  std::vector<schema::SealedEnvelope> decoded;  // parallel to batch.accepted
  std::vector<Reply> replies;
  std::vector<std::pair<std::string, schema::Frame>> direct;  // not waiting for commit
  std::vector<schema::Frame> audit_queries;               // answered in Finish, after the commit
  std::vector<schema::LinkageEvaluated> linkage_answers;  // sent in Finish, after the commit
  bool checkpoint_asked = false;                          // an auditor asked for a checkpoint
  size_t frames = 0;                                      // frames read into it
  bool Empty() const {
    return batch.accepted.empty() && batch.acks.empty() && batch.events.empty() &&
           batch.grants.empty() && batch.revocations.empty() && batch.witness.empty() &&
           batch.cosignatures.empty() && batch.reroutes.empty() && batch.control_ends.empty() &&
           batch.prekeys.empty() && replies.empty();
  }
  // Holds nothing but recipients' or links' acks and audit events (maybe not even those):
  // nothing anyone waits for (Server::HoldUnowed). New batch content belongs here and in
  // Empty.
  bool NothingButAcksAndEvents() const {
    return batch.accepted.empty() && batch.grants.empty() && batch.revocations.empty() &&
           batch.witness.empty() && batch.cosignatures.empty() && batch.reroutes.empty() &&
           batch.control_ends.empty() && batch.prekeys.empty() && batch.roster_versions.empty() &&
           replies.empty() && audit_queries.empty() && linkage_answers.empty() && !checkpoint_asked;
  }
};

// A Turn on its way to the writer and back with the outcome of its commit.
struct Job {
  Turn turn;
  UnixMillis now = 0;
  bool expire = false;        // also run the expiry sweep, after the commit
  bool checkpoint = false;    // then sign a checkpoint of the committed log
  bool storage_full = false;  // set by the writer: new envelopes refused as storage full
  // Set by the writer:
  bool committed = false;  // a transaction ran and committed; result is set
  Status status;           // of the commit (ok also when there was nothing to write)
  CommitResult result;
  Status checkpoint_status;  // when checkpoint: of signing; ok with the outcome set
  CheckpointOutcome checkpoint_outcome;
  double commit_seconds = -1;  // how long Store::Commit took (-1: nothing to commit)
  // Kinds of the envelopes the writer refused without storing (storage full, failed
  // commit), for the loop's counts.
  std::vector<schema::MessageKind> refused_uncommitted;
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_TURN_H_
