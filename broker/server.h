// The broker: one ROUTER socket with CURVE, its ZAP handler, the durable store,
// deliveries and directory reloads, on two threads: the event loop and a writer.
//
// Pipeline: the event loop answers ZAP requests, reads frames and checks each (size,
// decode, authenticated peer still valid in the current directory, envelope checks), and
// gathers the accepted envelopes, recipient acks and audit events into the accumulating
// Turn. The writer thread commits one Turn at a time in one LMDB write transaction (group
// commit) and hands it back through a queue and an eventfd the loop polls. While a commit
// (its fsync) is in flight, the loop keeps reading and checking into the next Turn; when
// the commit returns, the loop sends that Turn's acks and nacks, marks the mailboxes that
// got something new, hands the next Turn to the writer, and pushes deliveries. At most one
// Turn is with the writer and one accumulates: commits are strictly ordered, so a later
// transaction sees every earlier one (a resubmission made while the first copy is being
// committed is still found as a duplicate) and recipient acks apply in the order received.
//
// Auditor queries (schema/PROTOCOL.md section 11): frames from a party of kind auditor
// with the audit role in the current directory (checked per frame, like everything else;
// anyone else gets Nack NOT_PERMITTED, logged as a refused AUDITOR_QUERY). Each query adds
// an AUDITOR_QUERY entry to the accumulating Turn and is answered in Finish, after that
// Turn's commit, from read transactions of the committed log: the answer always covers the
// query's own entry. AuditCheckpoint marks the Turn so that the writer signs a checkpoint
// right after committing it (in the same job): the note handed back describes a committed
// prefix that includes the query's AUDITOR_QUERY entry. While Finish runs no job is with
// the writer, so every read in one answer sees the same log.
//
// Identity of a peer is ZAP's User-Id, attached by libzmq to each message of an
// authenticated connection, plus the connection's CURVE key (ZAP metadata
// X-Transport-Key): every frame is checked against the current directory, first, before it
// is decoded or any signature checked, so a party revoked (or a key rotated out) by a
// reloaded directory is cut off at once, even on a connection that authenticated earlier
// (its deliveries stop; its frames are refused and only counted).
//
// Refusals (broker/refusals.h, schema/PROTOCOL.md section 6): per peer and reason the first
// limits.refusals_audited_per_minute a minute are audited one by one; the rest get their
// Nack at once and are recorded as one aggregate entry when the window closes or at stop.
//
// Witnessing (schema/PROTOCOL.md section 11.3). As a witness (with the witness role in the
// directory), the broker answers WitnessRequest frames from other brokers: the loop checks
// who asks (an active broker, not itself) and takes the requester's log keys from the
// current directory; the writer decides each request in the commit's transaction (the
// witness state per origin is read, checked and updated there, keys/witness.h), and the
// WitnessReply goes out in Finish, after the commit: a cosignature is handed out only once
// the state that accounts for it is on disk. An inconsistent checkpoint is refused, both
// checkpoints are kept as evidence, a WITNESS_REFUSED entry is written in the same commit
// and a critical error is logged. As a log, the broker asks the peers of its [witness]
// configuration to cosign each checkpoint it signs (broker/witness_client.h, on the loop
// thread, never blocking) and hands the cosignatures to the writer, which adds them to the
// stored checkpoint notes (so AuditCheckpoints answers carry them). Auditors that witness
// hand their cosignatures back with AddCosignature, checked on the loop and stored alike.
//
// Audit checkpoints (broker/audit_log.h, schema/PROTOCOL.md section 9): the writer thread
// signs a checkpoint of the committed log with the broker's directory signing key, under
// the origin "refbus/<federation>/<broker-id>", after the commit of the job that asks for
// one: every checkpoint_interval_ms (nothing is signed when the log has not grown), on
// RequestCheckpoint(), and once more at a clean stop after the final commit, so the last
// checkpoint covers the whole log. Signing in the writer's own write transaction means the
// checkpoint describes exactly the committed prefix, with no commit racing it. Create
// refuses to start a broker whose committed log is inconsistent with its latest stored
// checkpoint; a refusal to sign at run time is logged as critical and signs nothing.
//
// Thread safety: Create() and Run() on one thread (the loop); RequestStop(),
// RequestReload() and RequestCheckpoint() from any thread or a signal handler (they only
// set atomics). Internally the writer thread is the only one that writes to the Store
// (Commit, ExpireOld, SignCheckpoint); the loop only takes read transactions (ReadMailbox),
// which LMDB allows beside the one writer. A Turn belongs to the loop until it is queued for
// the writer and to the writer until it is queued back (broker/job_queue.h): it is never
// touched by both at once.
//
// Files: server.cpp (Create, Run), server_session.cpp (socket, ZAP, sending, refusals),
// server_intake.cpp (frame checks, submissions, relays, routing), server_consent.cpp
// (grants, revocations, attestations), server_audit.cpp (auditor queries),
// server_witness.cpp (witnessing), server_linkage.cpp (linkage evaluation), server_delivery.cpp
// (deliveries to agencies), server_commit.cpp (the writer thread, Dispatch and Finish),
// server_timers.cpp (timers, directory reloads, re-routing, the status file); turn.h (Turn, Reply,
// Job) and job_queue.h (the hand-over between loop and writer).
#ifndef REFBUS_BROKER_SERVER_H_
#define REFBUS_BROKER_SERVER_H_

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
#include <zmq.hpp>

#include "broker/config.h"
#include "broker/job_queue.h"
#include "broker/link.h"
#include "broker/linkage_service.h"
#include "broker/refusals.h"
#include "broker/status.h"
#include "broker/store.h"
#include "broker/turn.h"
#include "broker/verify_pool.h"
#include "broker/witness_client.h"
#include "core/clock.h"
#include "core/status.h"
#include "core/zmq.h"
#include "keys/directory.h"
#include "keys/envelope.h"
#include "keys/identity.h"

namespace refbus::broker {

// What became of an envelope submitted or relayed to this broker (metrics label outcome).
enum class EnvelopeOutcome { kAccepted = 0, kDuplicate = 1, kRefused = 2 };
inline constexpr size_t kEnvelopeOutcomes = 3;
inline constexpr std::array<const char*, kEnvelopeOutcomes> kEnvelopeOutcomeNames = {
    "accepted", "duplicate", "refused"};

struct ServerStats {
  uint64_t accepted = 0;
  uint64_t duplicates = 0;
  uint64_t rejected = 0;
  uint64_t delivered = 0;  // delivery frames sent (with redeliveries)
  uint64_t acked = 0;      // recipient acks applied
  uint64_t commits = 0;
  uint64_t zap_refused = 0;
  uint64_t checkpoints = 0;    // checkpoints signed (not counting an unchanged log)
  uint64_t audit_queries = 0;  // auditor queries logged and answered
  uint64_t audit_refused = 0;  // audit queries from parties that may not ask
  // Witnessing (schema/PROTOCOL.md section 11.3).
  uint64_t witness_cosigned = 0;      // as a witness: other logs' checkpoints cosigned
  uint64_t witness_refused = 0;       // as a witness: requests refused (not conflicts)
  uint64_t witness_inconsistent = 0;  // as a witness: inconsistent checkpoints refused
  uint64_t cosignatures_stored = 0;   // witnesses' cosignatures of this log stored
  // Federation (schema/PROTOCOL.md section 12).
  uint64_t relays_accepted = 0;  // envelopes from peer brokers committed here
  uint64_t relays_refused = 0;   // relays refused (forged, malformed, out of scope, ...)
  // Signature checks of the grants relayed envelopes carry (VetGrant in AdmitRelayedGrant).
  uint64_t relayed_grant_checks = 0;
  uint64_t routed_out = 0;  // envelopes queued for a peer broker
  // For metrics (copied into BrokerStatus once a second; plain counters, loop thread only).
  // Envelopes submitted or relayed, by kind and outcome: an envelope refused before its
  // header decoded counts as kind unspecified.
  std::array<std::array<uint64_t, kEnvelopeOutcomes>, schema::kMessageKindCount> envelopes{};
  std::array<uint64_t, schema::kNackReasonCount> nacks{};  // Nack frames sent, by reason
  // Durations of the writer's commits: per bucket of kCommitSecondsBounds, then +Inf.
  std::array<uint64_t, kCommitSecondsBounds.size() + 1> commit_buckets{};
  double commit_seconds_sum = 0;
  // Envelopes per commit that had any: per bucket of kCommitEnvelopesBounds, then +Inf.
  std::array<uint64_t, kCommitEnvelopesBounds.size() + 1> commit_envelope_buckets{};
  double commit_envelopes_sum = 0;

  void CountEnvelope(schema::MessageKind kind, EnvelopeOutcome outcome) {
    auto k = static_cast<size_t>(kind);
    // A kind from a newer peer that this build does not know counts as unspecified.
    ++envelopes[k < envelopes.size() ? k : 0][static_cast<size_t>(outcome)];
  }
  // An envelope's outcome in a commit: stored, duplicate, or refused (scope, quota).
  void CountEnvelope(schema::MessageKind kind, Outcome outcome) {
    CountEnvelope(kind, outcome == Outcome::kStored      ? EnvelopeOutcome::kAccepted
                        : outcome == Outcome::kDuplicate ? EnvelopeOutcome::kDuplicate
                                                         : EnvelopeOutcome::kRefused);
  }
  void CountNack(schema::NackReason reason) {
    auto r = static_cast<size_t>(reason);
    ++nacks[r < nacks.size() ? r : 0];
  }
  void ObserveCommit(double seconds) {
    size_t b = 0;
    while (b < kCommitSecondsBounds.size() && seconds > kCommitSecondsBounds[b]) ++b;
    ++commit_buckets[b];
    commit_seconds_sum += seconds;
  }
  void ObserveCommitEnvelopes(size_t n) {
    size_t b = 0;
    while (b < kCommitEnvelopesBounds.size() &&
           static_cast<double>(n) > kCommitEnvelopesBounds[b]) {
      ++b;
    }
    ++commit_envelope_buckets[b];
    commit_envelopes_sum += static_cast<double>(n);
  }
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> Create(const Config& config);
  ~Server();

  // The bound endpoint (with the port the OS chose for "tcp://127.0.0.1:*").
  const std::string& endpoint() const { return endpoint_; }

  // Runs until RequestStop(); then stops reading, finishes the commit in flight and the
  // accumulating turn (their commits and their replies) and returns ok, or the status of a
  // failed final commit.
  Status Run();
  void RequestStop() { stop_.store(true); }
  void RequestReload() { reload_.store(true); }
  // Asks for a checkpoint of the log as committed when the writer gets to it (on demand,
  // for auditors). The loop picks it up within one poll period.
  void RequestCheckpoint() { checkpoint_requested_.store(true); }
  // REQUIRES: the loop thread, or after Run() returned.
  const ServerStats& stats() const { return stats_; }
  // The latest checkpoint signed or confirmed by this server (empty before the first).
  // REQUIRES: the loop thread, or after Run() returned.
  const std::string& latest_checkpoint() const { return health_.latest_checkpoint; }
  // The status as the loop last wrote it (every second, and at stop): counters, directory
  // serial, audit size, links. Any thread (metrics, health checks).
  BrokerStatus Snapshot() const { return snapshot_.Get(); }
  const std::string& checkpoint_origin() const { return origin_; }

 private:
  // A recipient's delivery session (an agency connected with Hello).
  struct Peer {
    std::string routing_id;
    uint64_t last_sent_seq = 0;  // deliveries up to here are in flight
    size_t inflight = 0;
    bool online = false;
    // Acked by the recipient, the ack not yet committed: still in the mailbox as the loop
    // reads it, but not to be delivered again by a new session or a redelivery.
    std::set<uint64_t> acks_uncommitted;
  };
  struct Inflight {
    std::string recipient;
    uint64_t seq = 0;
    Bytes message_id;
    UnixMillis sent_at = 0;
  };
  // Deliveries to the agencies connected here (broker/server_delivery.cpp). Loop only.
  struct Deliveries {
    std::map<std::string, Peer> peers;                // by party id
    std::set<std::string> dirty;                      // recipients with something new
    std::unordered_map<uint64_t, Inflight> inflight;  // by delivery request id
    uint64_t next_id = 1;
    // Forgets the deliveries in flight to recipient (a new session or a redelivery).
    void DropInflight(const std::string& recipient);
  };
  // When the loop last did its periodic work, and what is due (broker/server_timers.cpp).
  struct Timers {
    UnixMillis timer_check = 0;
    UnixMillis expiry = 0;
    bool expiry_due = false;
    UnixMillis checkpoint = 0;
    bool checkpoint_due = false;
    UnixMillis status = 0;
    UnixMillis link_log = 0;
  };
  // What the status file and metrics say about commits and checkpoints. Loop only.
  struct Health {
    UnixMillis started_ms = 0;
    UnixMillis storage_full_since = 0;         // since when commits refuse as storage full
    std::string last_commit_error;             // the latest commit's failure, if it failed
    UnixMillis last_checkpoint_signed_ms = 0;  // when the latest was signed
    uint64_t last_checkpoint_size = 0;         // the log size it covers
    std::string latest_checkpoint;             // its note
  };

  // An envelope's times and sender key, and for a relayed one its signature, checked ahead
  // of handling (keys::VerifyEnvelope, keys::CheckEnvelopeExceptSignature).
  struct Verified {
    Result<schema::SealedEnvelope> envelope;
    keys::EnvelopeCheck check = keys::EnvelopeCheck::kOk;
  };
  // A message read from the router, with what Precheck found out on some core: its frame
  // decoded (unless over the size limit) and, for a submission or relayed envelope, the
  // envelope verified against the directory.
  struct Incoming {
    std::vector<zmq::message_t> parts;
    std::optional<Result<schema::Frame>> frame;
    std::optional<Verified> verified;
  };
  // An envelope that passed the loop's checks, on its way into the turn.
  struct Admitted {
    Bytes envelope;
    schema::SealedEnvelope decoded;
    std::string actor;
    std::vector<std::string> mailboxes;
    std::map<std::string, std::vector<std::string>> serves;
    uint8_t hops = 0;
    std::string audit_detail;
  };

  Server() = default;

  // ---- Start and the loop (broker/server.cpp) ----
  // Keys, trust anchor and directory, checked against each other and the config.
  Status LoadIdentity(const Config& config, UnixMillis now);
  Status OpenStore(UnixMillis now);
  Status StartLinks();
  // Starts the writer and commits the start events (BROKER_STARTED, DIRECTORY_LOADED).
  Status StartWriter(UnixMillis now);
  // Loop thread: takes the finished job, if any, hands the writer the next turn at once
  // (DispatchDue), then finishes the job (its replies and counts) while that one commits.
  void TakeAndFinish(UnixMillis now, bool stopping, Status* final_status);
  // Loop thread: hands the accumulated turn to the writer when it is free.
  void DispatchDue(UnixMillis now, bool stopping);
  // Loop thread: the turn holds only what nobody waits for (recipients' and links' acks,
  // audit events such as DELIVERED: no reply is owed for them) and is held up to
  // kHoldMs for a submission to share its commit (one commit per message one at a time
  // instead of two), unless a timer or a stop is due.
  bool HoldUnowed(UnixMillis now, bool expire, bool checkpoint, bool stopping);
  // Loop thread: reads what is waiting (up to the batch limit) and handles it.
  void ReadBurst(UnixMillis now);
  // Loop thread: deliveries, timers, witnessing, links, the status file.
  void Housekeep(UnixMillis now);
  // Whether the loop has work that should not wait for the poll's timeout.
  bool WorkNow(bool stopping) const;

  // ---- Session: socket, ZAP, peers, sending (broker/server_session.cpp) ----
  Status Bind();
  Status HandleZap();
  // The party behind a connection, if it is still allowed by the current directory.
  Result<const schema::Party*> CurrentPeer(const zmq::message_t& msg) const;
  void Send(const std::string& routing_id, const schema::Frame& frame);
  // A refusal: Nack, log line and REJECTED audit entry, the last two only for the first
  // refusals per (peer, reason) and window (refusals_); the rest are counted into the
  // window's aggregate entry and their Nack goes out at once (nothing to commit for it).
  // Returns the audit entry (with its Reply at turn.replies.back()) for the caller to
  // complete, or nullptr when the refusal was only counted.
  schema::AuditEntry* Reject(Turn& turn, const std::string& routing_id, uint64_t request_id,
                             const std::string& peer, schema::NackReason reason, std::string detail,
                             const schema::SealedEnvelope* env, ByteView envelope_bytes);
  // A frame from a connection whose party a newer directory revoked or dropped, or whose
  // key it rotated out: refused with Nack UNKNOWN_SENDER_KEY before any of the frame is
  // decoded (only its request id is read), counted into the aggregate only.
  void RefuseCutOff(Turn& turn, const std::string& routing_id, const std::string& peer,
                    ByteView frame, std::string detail);
  // Loop thread: the aggregate entries of the refusal windows closed by now (all of them
  // when everything: at stop), into pending_events_.
  void FlushRefusals(UnixMillis now, bool everything);
  void HandleDirectoryFetch(const std::string& routing_id, const schema::Frame& frame, Turn& turn);

  // ---- Intake and routing (broker/server_intake.cpp) ----
  // Decodes the burst's frames and verifies their envelopes on the verify pool. Reads only
  // the directory and the config; writes only the burst.
  void Precheck(std::vector<Incoming>& burst, UnixMillis now);
  // keys::VerifyEnvelope (relayed: signature checked) or keys::CheckEnvelopeExceptSignature
  // (submitted on the sender's own session; SECURITY.md) against the current directory.
  // Any thread, while the directory does not change (the loop changes it only between
  // bursts).
  enum class SignatureCheck { kCheck, kSendersOwnSession };
  Verified Verify(ByteView envelope, UnixMillis now, SignatureCheck signature) const;
  void HandleMessage(Incoming& in, Turn& turn, UnixMillis now);
  // Hands a checked frame to its handler.
  void HandleFrame(const std::string& routing_id, const std::string& peer_id,
                   const schema::Party& peer, schema::Frame& frame, Incoming& in, Turn& turn,
                   UnixMillis now);
  // verified: the envelope's check if Precheck made it (else it is made here).
  void HandleSubmit(const std::string& routing_id, const std::string& peer, uint64_t request_id,
                    Bytes envelope, std::optional<Verified> verified, Turn& turn, UnixMillis now);
  // A peer broker hands over an envelope (schema/PROTOCOL.md section 12).
  void HandleRelay(const std::string& routing_id, const schema::Party& peer, uint64_t request_id,
                   schema::Relay relay, std::optional<Verified> verified, Turn& turn,
                   UnixMillis now);
  // An envelope naming no consent grant (broker/server_grantless.cpp, PROTOCOL.md 9.1):
  // OPAQUE where policy.allow_unscoped_opaque is on, or DELETION_WATCH_LIST between
  // deletion-role agencies. nullopt when admitted; else the Nack and its detail.
  std::optional<std::pair<schema::NackReason, std::string>> GrantlessRefusal(
      const schema::EnvelopeHeader& header) const;
  // A relay's checks of its grant; registers the grant in turn. False: refused.
  bool AdmitRelayedGrant(const std::string& routing_id, const std::string& from,
                         uint64_t request_id, schema::Relay& relay,
                         const schema::SealedEnvelope& env, Turn& turn, UnixMillis now);
  // A refused relay: counted and refused as relayed by from.
  void RefuseRelay(Turn& turn, const std::string& routing_id, uint64_t request_id,
                   const std::string& from, schema::NackReason reason, const std::string& detail,
                   const schema::SealedEnvelope* env, ByteView envelope);
  // Adds an envelope to turn, with the reply it is owed after the commit.
  void Admit(Turn& turn, const std::string& routing_id, uint64_t request_id, Admitted a);
  // Where an envelope for these recipients goes from this broker: their own mailboxes when
  // homed here, else the link mailbox of their home broker. Empty with why set when a
  // recipient cannot be routed (its home is not an active broker, or hops run out).
  std::vector<std::string> Route(const std::vector<std::string>& recipients, uint32_t hops,
                                 std::string* why, std::string* detail,
                                 std::map<std::string, std::vector<std::string>>* serves) const;

  // ---- Consent control frames (broker/server_consent.cpp) ----
  // The refusal of a grant (nullopt: it may be registered). Shared by GrantRegister and Relay.
  std::optional<std::pair<schema::NackReason, std::string>> VetGrant(
      const schema::SignedConsentGrant& g, UnixMillis now) const;
  // VetGrant without the signatures: the grant's times and shape.
  static std::optional<std::pair<schema::NackReason, std::string>> VetGrantTimes(
      const schema::ConsentGrant& grant, UnixMillis now);
  void HandleGrantRegister(const std::string& routing_id, const std::string& peer,
                           uint64_t request_id, Bytes signed_grant, Turn& turn, UnixMillis now);
  void HandleGrantRevoke(const std::string& routing_id, const std::string& peer,
                         uint64_t request_id, const Bytes& signed_revocation, Turn& turn,
                         UnixMillis now);
  // A peer broker passes on a consent revocation committed there.
  void HandleRelayedRevocation(const std::string& routing_id, const std::string& from,
                               uint64_t request_id, Bytes signed_revocation, Turn& turn,
                               UnixMillis now);
  // Adds a checked revocation to turn, with its reply.
  void AdmitRevocation(Turn& turn, const std::string& routing_id, uint64_t request_id,
                       schema::ConsentRevocation rev, const std::string& actor,
                       Bytes signed_revocation, bool via_peer);
  void HandleAttest(const std::string& routing_id, const std::string& peer, uint64_t request_id,
                    const schema::Attest& attest, Turn& turn, UnixMillis now);
  // Refuses a grant, revocation or attestation: audited as REJECTED with the ids given.
  // Returns the audit entry as Reject does (nullptr when only counted).
  schema::AuditEntry* RejectControl(Turn& turn, const std::string& routing_id, uint64_t request_id,
                                    const std::string& peer, schema::NackReason reason,
                                    std::string detail, ByteView id, ByteView statement_bytes);

  // ---- Prekey publication (broker/server_prekeys.cpp) ----
  // A PrekeyUpdate from an agency (via_peer false: it must be the owner) or a prekey a peer
  // broker relayed (via_peer true): checked against the current directory, into turn.
  void HandlePrekey(const std::string& routing_id, const schema::Party& peer, uint64_t request_id,
                    Bytes signed_prekey, bool via_peer, Turn& turn, UnixMillis now);
  // A refused prekey: Reject, with the owner and the prekey's hash in the audit entry.
  void RefusePrekey(Turn& turn, const std::string& routing_id, uint64_t request_id,
                    const std::string& peer, schema::NackReason reason, std::string detail,
                    const Bytes& signed_prekey, const std::string& owner);
  // Loop thread: after an agency's Welcome, every stored prekey (PrekeyUpdate frames).
  void ServePrekeys(const std::string& routing_id, Turn& turn);
  // Loop thread, in Finish: the prekeys the job stored, to every connected agency.
  void PushPrekeys(const Job& job);

  // ---- Audit queries (broker/server_audit.cpp) ----
  // Loop thread: logs an auditor query (or refuses it) into turn.
  void HandleAuditQuery(const std::string& routing_id, const schema::Party& peer,
                        const schema::Frame& query, Turn& turn);
  // Loop thread, in Finish: the answer to query from the committed log (or a Nack).
  schema::Frame AnswerAuditQuery(const schema::Frame& query, uint64_t request_id, const Job& job);

  // ---- Witnessing (broker/server_witness.cpp) ----
  // Loop thread: a peer broker asks this broker to witness its log (decided by the writer).
  void HandleWitnessRequest(const std::string& routing_id, const schema::Party& peer,
                            const schema::Frame& frame, Turn& turn);
  // Loop thread: a witness hands back its cosignature of one of this broker's checkpoints.
  void HandleAddCosignature(const std::string& routing_id, const schema::Party& peer,
                            const schema::Frame& frame, Turn& turn);
  // Loop thread, in Finish: the WitnessReply for decided request index of the batch.
  schema::Frame AnswerWitness(uint64_t request_id, size_t index, const Job& job);
  // Loop thread, in Finish: the Ack or Nack for cosignature index of the batch.
  schema::Frame AnswerCosignature(const Reply& reply, size_t index, const Job& job) const;
  // A refusal of a witness frame: Nack, logged, and audited as WITNESS_REFUSED.
  void RefuseWitnessFrame(Turn& turn, const std::string& routing_id, uint64_t request_id,
                          const std::string& peer, schema::NackReason reason, std::string detail);

  // ---- Operator rosters (broker/server_roster.cpp, PROTOCOL.md 9.3) ----
  // Loop thread: an agency's RosterUpdate, checked (its own, signed by its current key, a
  // newer version) and recorded as OPERATOR_ROSTER; acked after the commit. Refusals audited.
  void HandleRosterUpdate(const std::string& routing_id, const schema::Party& peer,
                          uint64_t request_id, Bytes signed_roster, Turn& turn, UnixMillis now);
  // Loop thread, for a turn whose commit failed: its rosters were refused ("retry later"),
  // so each agency's newest version goes back below theirs, unless a later roster of the
  // agency was taken since (it waits in a later turn). The agent's retry is then recorded.
  void ForgetUncommittedRosters(const Batch& batch);

  // ---- Linkage tallies (broker/server_tally.cpp, PROTOCOL.md 13.7) ----
  // Loop thread: an agency's LinkageTally: a signed tally, checked (its own, signed by its
  // current key) and recorded as LINKAGE_TALLY with its hash; or a proof of its own earlier
  // entry, logged as AUDITOR_QUERY. Answered after the commit; refusals audited.
  void HandleLinkageTally(const std::string& routing_id, const schema::Party& peer,
                          uint64_t request_id, schema::LinkageTallyFrame tally, Turn& turn,
                          UnixMillis now);
  // Loop thread, in Finish: the AuditReply (entry, proof, checkpoint) or a Nack.
  schema::Frame AnswerTally(const Reply& reply, const reply_kind::TallyAnswer& answer,
                            const Job& job) const;

  // ---- Linkage evaluation (broker/server_linkage.cpp, PROTOCOL.md 13.4) ----
  // At Create: the evaluator's key and quota when [linkage] names a key file.
  Status StartLinkage();
  // Loop thread: an agency's LinkageEvaluate, evaluated and counted into turn.
  void HandleLinkageEvaluate(const std::string& routing_id, const schema::Party& peer,
                             const schema::Frame& frame, Turn& turn, UnixMillis now);
  // Loop thread, in Finish: the LinkageEvaluated for answer index (a Nack if not committed).
  schema::Frame AnswerLinkage(const Reply& reply, size_t index, const Job& job) const;

  // ---- Deliveries to connected agencies (broker/server_delivery.cpp) ----
  void HandleHello(const std::string& routing_id, const std::string& peer_id,
                   const schema::Party& peer, const schema::Frame& frame, Turn& turn);
  void HandleRecipientAck(const std::string& peer_id, const schema::Frame& frame, Turn& turn);
  void HandleRecipientNack(const std::string& peer_id, const schema::Frame& frame) const;
  void PumpDeliveries(UnixMillis now);
  // Sends what waits in one recipient's mailbox, up to its window.
  void PumpMailbox(const std::string& id, Peer& p, UnixMillis now);
  // Unacked deliveries past the deadline: that recipient starts over.
  void CheckRedeliveries(UnixMillis now);

  // ---- The writer and the commit (broker/server_commit.cpp) ----
  // Loop thread: hands turn_ (with pending_events_) to the writer. REQUIRES: !busy_.
  void Dispatch(UnixMillis now, bool expire, bool checkpoint);
  // Writer thread.
  void WriterMain();
  void CommitJob(Job& job);
  // Writer thread: storage full; the new envelopes, grants and revocations are refused and
  // the rest of the batch is committed again.
  Result<CommitResult> CommitWithoutNew(Job& job);
  // Writer thread: the commit failed; the replies waiting for it become refusals.
  void RefuseUncommitted(Job& job, const Status& status);
  // Loop thread: after the commit, updates stats and mailboxes and sends the replies.
  Status Finish(Job& job);
  // Loop thread, in Finish: storage and commit health, for the status file.
  void NoteCommitHealth(const Job& job, UnixMillis now);
  // Loop thread, in Finish: the checkpoint signed with the job, if one was asked for.
  Status NoteCheckpoint(const Job& job, UnixMillis now);
  // Loop thread, in Finish: counts and marks what a committed job stored.
  void NoteCommitted(const Job& job);
  // Loop thread, in Finish: the commit's outcome for each reply (refusals, duplicates).
  void SettleReplies(Job& job);
  // Loop thread, in Finish: a refusal in the commit, counted by refusals_. False: it was
  // not audited one by one (its aggregate will say it), so it is not logged either.
  bool NoteCommitRefusal(const Accepted& a, schema::NackReason reason, UnixMillis now);
  // Loop thread, in Finish: sends every reply of the job.
  void SendReplies(const Job& job);
  // Loop thread: an Ack to an agency, carrying the latest checkpoint (PROTOCOL.md 6).
  schema::Frame CheckpointAck(uint64_t request_id, ByteView message_id, bool duplicate) const;
  // Marks a mailbox as having something new (an agency's, or a link's).
  void MarkMailbox(const std::string& mailbox);

  // ---- Timers, directory, re-routing, status (broker/server_timers.cpp) ----
  void CheckTimers(UnixMillis now);
  // Loop thread: sets checkpoint_due at the interval or on request.
  void CheckCheckpointTimer(UnixMillis now);
  void ReloadDirectory(UnixMillis now, bool forced);
  // Loop thread, in ReloadDirectory: audits parties revoked, dropped or rotated by next, and
  // cuts off those whose connections next no longer admits (revoked, dropped, or another
  // transport key): their deliveries stop, and their frames are refused (RefuseCutOff).
  void NoteKeyChanges(const schema::Directory& old, const schema::Directory& next);
  // Loop thread, at start and on a new directory that moved agencies to other home brokers:
  // the entries this broker holds for agencies no longer routed where they wait (their
  // mailboxes here, link queues) are re-routed with the next commit.
  void PlanReroutes(const schema::Directory& dir);
  // PlanReroutes for one mailbox; returns how many entries it plans to move.
  size_t PlanMailboxReroutes(const schema::Directory& dir, const std::string& box, bool is_link);
  // Loop thread: writes the status file (every kStatusPeriodMs).
  void WriteStatus(UnixMillis now);
  void FillStatusMailboxes(BrokerStatus& st) const;
  // Now and then, the links that need an operator's eye, in the log too.
  void LogLinks(const BrokerStatus& st, UnixMillis now);

  // Set in Create, then read-only: both threads may read them.
  Config config_;
  std::unique_ptr<VerifyPool> verify_pool_;  // config_.verify_threads workers
  std::unique_ptr<Store> store_;  // writes (Commit, ExpireOld, SignCheckpoint): writer only
  // Const use only (transport key for the loop, checkpoint signing for the writer):
  // Identity's const methods may run concurrently.
  std::unique_ptr<keys::Identity> identity_;
  std::string origin_;        // the audit log's checkpoint origin and note key name
  std::string witness_name_;  // this broker's cosigner name as a witness

  // Loop thread only.
  keys::TrustAnchor anchor_;
  std::unique_ptr<keys::TrustState> trust_;
  schema::SignedDirectory directory_;
  long directory_mtime_ = 0;

  zmq::context_t context_;
  zmq::socket_t router_;
  std::unique_ptr<zmqx::ZapHandler> zap_;
  std::string endpoint_;

  Deliveries deliveries_;
  RefusalLimiter refusals_{RefusalLimits{}};  // which refusals are audited one by one
  // Loop thread: the newest operator roster version recorded per agency (loaded at start,
  // raised when one is accepted into a turn, lowered again if that turn's commit fails).
  std::map<std::string, uint64_t> roster_versions_;
  std::vector<schema::AuditEntry> pending_events_;  // written with the next commit
  // This log's witnesses (null without [witness] peers) and the cosignatures they gave,
  // stored with the next commit.
  std::unique_ptr<WitnessClient> witness_client_;
  std::vector<CheckpointCosignature> pending_cosignatures_;
  std::unique_ptr<Links> links_;             // federation: one link per other broker
  std::unique_ptr<LinkageService> linkage_;  // null unless [linkage] names a key file
  Timers timers_;
  Health health_;
  Turn turn_;                  // the accumulating turn
  bool busy_ = false;          // a job is with the writer (queued, committing or done, not taken)
  UnixMillis hold_since_ = 0;  // when turn_ was first held by HoldUnowed (0: not held)
  ServerStats stats_;
  // Relayed grants whose signatures passed VetGrant under the loaded directory: SHA-256 of
  // the signed grant -> when. Every relayed envelope carries its grant, and a peer relays
  // many under one; these skip the signature check (not the times). Cleared when a
  // directory loads; an entry older than kGrantVetReuseMs is checked again.
  std::map<Bytes, UnixMillis> vetted_grants_;

  StatusBoard snapshot_;  // any thread

  // Shared between the loop and the writer.
  JobQueue queue_;
  std::thread writer_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> reload_{false};
  std::atomic<bool> checkpoint_requested_{false};
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_SERVER_H_
