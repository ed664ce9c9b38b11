// The broker's durable store: mailboxes, envelopes and the audit log in one LMDB
// environment.
//
// Contract:
//   - Commit() applies a Batch (new envelopes, acks from recipients, audit-only events)
//     in ONE write transaction: every accepted envelope is on disk together with its
//     ACCEPTED audit entry before Commit returns, and only then may the sender be acked.
//     Many messages share one fsync (group commit).
//   - One mailbox per recipient agency, ordered by a broker-wide sequence number, so
//     delivery is in order per sender-recipient pair.
//   - A message id is stored once: a resubmission of the same bytes is reported as a
//     duplicate (and gets the earlier ack), also after the message was delivered, until it
//     expires ("seen" keeps the envelope's SHA-256 for that). Other bytes under a held id
//     are refused (kRefused, NACK ID_REUSED, audited) and change nothing. A duplicate that
//     names a mailbox the held message never had (a relay for a recipient re-routed here)
//     adds that mailbox, once, if it serves the envelope's own recipients; after every
//     entry was acked and the record removed it cannot (it is a plain duplicate).
//   - An envelope stays until every recipient has acked it (or it expires).
//   - Mailbox quota: a submission that would exceed a recipient's quota is not stored
//     (back-pressure: the sender retries later); nothing already stored is dropped. A
//     sender quota bounds what one sender may have waiting in one mailbox, so a flooding
//     agency cannot take a mailbox (or a link queue) from the others.
//   - Every stored envelope record carries a SHA-256 of itself, checked on every read;
//     a damaged record is reported (ReadMailbox marks it, Pending::damage) and never
//     delivered as sound; the reader takes it out of the mailbox into quarantine with
//     the next commit (ENVELOPE_QUARANTINED), so the rest of the mailbox flows.
//   - Federation: a revocation committed here is queued (db "ctlq") for every other broker
//     in the same transaction, and passed on by the links until each acks it; one relayed
//     here for a grant not registered here is kept ("revoked_unknown") and applied if the
//     grant is registered later (only when its recorder signed the revocation).
//   - Consent: grants registered by their recording agencies are stored (db "grants", each
//     record with its own SHA-256) with their revocation state. An envelope naming a grant
//     is checked against it inside the same transaction that would store it
//     (keys/scope.h), so a revocation committed earlier always wins; an unknown grant is
//     out of scope. Grant registrations and revocations are applied before the envelopes
//     of the same batch.
//   - Audit entries get consecutive indexes from 0; the stored bytes are the entry's
//     serialized bytes, exactly what is hashed. Each entry is a leaf of an RFC 6962 Merkle
//     tree kept in the same write transaction (broker/audit_log.h: node storage, frontier,
//     checkpoint records). Open never replays the log: it reads the stored frontier and
//     checks it against the log's size, entry and node counts and the stored tree (O(log N)),
//     refusing a store where they disagree (kFailedPrecondition or kMalformed, naming the
//     numbers). Older stores are upgraded once at Open, in one transaction, and the time it
//     took is logged: format 1 (written before the tree existed) gets its tree built from
//     the entries; formats 1 and 2 lose their "refs" table (a per-message count of the
//     mailbox entries still holding it; format 3 reads that from the record's own list of
//     (mailbox, seq) entries instead, one B-tree less written per message and per ack).
//   - Checkpoints: SignCheckpoint signs the committed tree (never one inconsistent with the
//     latest stored checkpoint; see audit_log.h) and stores the note before returning it.
//     Cosignatures witnesses give for a stored checkpoint (Batch::cosignatures) are added
//     to its stored note as signature lines; the note's text and the log's own signature
//     line stay as they were, so it still opens with the log key alone.
//   - Witnessing (this broker as a witness of other brokers' logs, keys/witness.h): the
//     state per origin and the evidence of refused inconsistent checkpoints live in the
//     same environment; Commit decides every WitnessItem inside its one write transaction
//     (read state, decide, store the new state or the evidence and a WITNESS_REFUSED audit
//     entry), so the cosignature handed out after the commit is accounted for on disk.
//
// Thread safety: the writing methods (Commit, ExpireOld, SignCheckpoint) are called by one
// thread at a time (the broker's writer thread). The const methods may run on any thread,
// also beside a writer: each takes its own short read transaction and sees only committed
// data.
#ifndef REFBUS_BROKER_STORE_H_
#define REFBUS_BROKER_STORE_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "broker/audit_log.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/lmdb.h"
#include "core/status.h"
#include "keys/identity.h"
#include "keys/merkle.h"
#include "keys/scope.h"
#include "keys/witness.h"
#include "schema/types.h"
#include "schema/workflow.h"

namespace refbus::broker {

// The store formats this version reads (meta "format"); it writes kStoreFormat, and
// upgrades the older ones at Open.
inline constexpr std::string_view kStoreFormat = "refbus-broker-store/3";
inline constexpr std::string_view kStoreFormatV2 = "refbus-broker-store/2";
inline constexpr std::string_view kStoreFormatV1 = "refbus-broker-store/1";

struct StoreOptions {
  std::string dir;
  std::string broker_id;
  size_t map_size_bytes = size_t{4} << 30;
  uint64_t mailbox_quota = 100000;  // envelopes per recipient mailbox
  uint64_t sender_quota = 50000;    // envelopes of one sender waiting in one mailbox
};

// An envelope that passed every check and is ready to be stored.
struct Accepted {
  Bytes envelope;                                   // bytes as received
  const schema::SealedEnvelope* decoded = nullptr;  // REQUIRES: valid during Commit
  std::string actor;                                // authenticated submitter
  uint64_t directory_serial = 0;
  // What the envelope claims, with the parties' types and roles from the directory in
  // force when it was checked; used when it names a consent grant.
  keys::ScopeSubject scope;
  // The mailboxes it goes to: local recipients' own, and for recipients homed at another
  // broker the link mailbox named by that broker's id (one per broker). Empty: one per
  // recipient in the header.
  std::vector<std::string> mailboxes;
  // For each link mailbox among them: the recipients it carries the envelope for (stored
  // with the entry: the relay names them, and re-routing after a directory change reads it).
  std::map<std::string, std::vector<std::string>> serves;
  std::string audit_detail;  // added to the ACCEPTED entry (e.g. the route)
  // Set by Commit for a duplicate: the mailboxes it added to the held message.
  std::vector<std::string> added;
  uint8_t hops = 0;  // brokers it passed before this one (0: from its sender)
  // False: a refusal in the commit (consent scope, quota) gets no entry of its own; the
  // loop counts it into an aggregate entry instead (broker/refusals.h).
  bool audit_refusal = true;
};

// A grant registration whose signature (and countersignature) checked out.
struct GrantRegistration {
  Bytes signed_grant;  // serialized SignedConsentGrant as received
  schema::SignedConsentGrant decoded;
  std::string actor;
  uint64_t directory_serial = 0;
};

// A revocation whose signature checked out.
struct GrantRevocation {
  schema::ConsentRevocation revocation;
  Bytes statement_sha256;  // of the SignedStatement bytes
  std::string actor;
  uint64_t directory_serial = 0;
  Bytes signed_statement;  // as the recorder signed it: passed on to the peer brokers
  // Relayed by a peer broker: a grant not registered here is remembered as revoked, so
  // that it is registered revoked if it arrives later.
  bool via_peer = false;
};

// A published prekey (PROTOCOL.md "Prekey publication") whose signature the loop checked
// against the current directory. Commit stores it as its owner's newest if it is newer (by
// not_before) than the one held, audits PREKEY_PUBLISHED and, when it came from its owner,
// queues it for every peer broker (the control queue).
struct PrekeyPublication {
  Bytes signed_prekey;  // serialized SignedPrekey as the owner signed it
  std::string owner;
  UnixMillis not_before_ms = 0;
  std::string detail;  // for the audit entry: key id and validity, no key material
  std::string actor;   // the owner, or the peer broker that relayed it
  uint64_t directory_serial = 0;
  bool via_peer = false;
};

// A consent revocation (or a published prekey) waiting in a peer broker's control queue
// (passed on after the commit that stored it here, until the peer acks it). Exactly one of
// the two is set.
struct ControlItem {
  uint64_t seq = 0;
  Bytes signed_revocation;
  Bytes signed_prekey;
};

// The end of a control queue item: the peer committed it, or refused it for good.
struct ControlEnd {
  std::string peer;
  uint64_t seq = 0;
  bool refused = false;
  schema::NackReason reason = schema::NackReason::kUnspecified;
  std::string detail;
};

// The answer to a registration or revocation.
struct ControlOutcome {
  bool ok = false;
  bool duplicate = false;  // already registered (same bytes) or already revoked
  schema::NackReason reason = schema::NackReason::kUnspecified;
  std::string detail;
};

// A stored grant.
struct GrantState {
  Bytes signed_grant;  // as registered
  schema::SignedConsentGrant grant;
  bool revoked = false;
  UnixMillis revoked_at_ms = 0;
};

// A WitnessRequest from a peer broker (schema/PROTOCOL.md section 11.3), checked by the loop
// (the requester is an active broker, this broker a witness) and decided in the commit's
// transaction, where the witness state is read and written: each decision sees every
// earlier one, so two requests can never both be cosigned from the same old state.
struct WitnessItem {
  std::string requester;                     // ZAP User-Id of a broker
  std::string origin;                        // the requester's log origin
  std::vector<keys::NoteVerifier> log_keys;  // the requester's signing keys, current directory
  schema::WitnessRequest request;
  uint64_t directory_serial = 0;
};

struct WitnessOutcome {
  keys::WitnessVerdict verdict = keys::WitnessVerdict::kBadRequest;
  std::string detail;
  uint64_t witness_size = 0;         // after the request: the new size when cosigned
  std::string cosignature;           // the cosignature line, when cosigned
  keys::Checkpoint checkpoint;       // the offered checkpoint (when its signature verified)
  std::optional<uint64_t> evidence;  // kInconsistent: the evidence record's number
  // Not ok: the request could not be decided (a damaged state record): nothing was written
  // for it and it is answered Nack INTERNAL; the rest of the batch commits.
  Status error;
};

// How this broker cosigns as a witness. The identity is the broker's own (its directory
// signing key); Commit signs with it in place.
struct WitnessSigner {
  const keys::Identity* identity = nullptr;
  std::string name;  // keys::WitnessName(federation, broker id)
};

// A witness's cosignature of one of this broker's stored checkpoints, already verified
// with the witness's key from the current directory.
struct CheckpointCosignature {
  uint64_t size = 0;
  keys::Hash root{};
  std::string witness_id;
  keys::NoteSignature signature;
};

// The end of a mailbox entry: the recipient acked it, or (for a link mailbox) the next
// broker committed it, or refused it for good.
struct RecipientAck {
  // kQuarantined: the entry's record is damaged (Pending::damage); it leaves the mailbox
  // undelivered, its bytes stay as evidence until expiry.
  enum class Kind { kAcked, kForwarded, kRefusedByPeer, kQuarantined };
  std::string recipient;  // the mailbox: an agency, or the peer broker of a link
  uint64_t seq = 0;
  Bytes message_id;
  Kind kind = Kind::kAcked;
  schema::NackReason reason = schema::NackReason::kUnspecified;  // kRefusedByPeer
  std::string detail;                                            // kRefusedByPeer
};

// A new directory moved recipients: the entry (from, seq) leaves its mailbox for the
// mailboxes in to (those the message already has an entry in are skipped).
struct Reroute {
  std::string from;
  uint64_t seq = 0;
  Bytes message_id;
  std::vector<std::string> to;
  std::map<std::string, std::vector<std::string>> serves;  // for link mailboxes in to
  uint64_t directory_serial = 0;
  // Some recipient the entry serves still goes to from: the entry stays, and to only gains.
  bool keep = false;
};

struct Batch {
  std::vector<GrantRegistration> grants;
  std::vector<GrantRevocation> revocations;
  std::vector<Accepted> accepted;
  std::vector<RecipientAck> acks;
  std::vector<schema::AuditEntry> events;  // index, time and broker id are filled in
  std::vector<WitnessItem> witness;        // REQUIRES: witness_signer set when not empty
  WitnessSigner witness_signer;
  std::vector<CheckpointCosignature> cosignatures;
  std::vector<Reroute> reroutes;  // applied after acks
  // The other active brokers: every revocation committed here (not a repeat) is queued for
  // each of them but its actor.
  std::vector<std::string> revocation_peers;
  std::vector<ControlEnd> control_ends;
  // Published prekeys, after the revocations; queued for revocation_peers too.
  std::vector<PrekeyPublication> prekeys;
  // Operator rosters recorded in this batch (their OPERATOR_ROSTER entries are in events):
  // agency -> version, the newest the broker has recorded (broker/store_rosters.cpp).
  std::vector<std::pair<std::string, uint64_t>> roster_versions;
};

enum class Outcome { kStored, kDuplicate, kQuotaExceeded, kRefused };

struct CommitResult {
  std::vector<ControlOutcome> grants;        // one per Batch::grants
  std::vector<ControlOutcome> revocations;   // one per Batch::revocations
  std::vector<Outcome> accepted;             // one per Batch::accepted, in order
  std::vector<keys::ScopeRefusal> refusals;  // parallel to accepted; set for kRefused
  std::vector<bool> acks_applied;            // false: unknown (already acked or expired)
  std::string quota_recipient;               // for kQuotaExceeded, the full mailbox (last one)
  uint64_t audit_size = 0;                   // after the commit
  std::vector<WitnessOutcome> witness;       // one per Batch::witness
  // One per Batch::cosignatures: ok (stored, or already there), NotFound (no checkpoint of
  // that size is stored) or FailedPrecondition (the stored one has another root).
  std::vector<Status> cosignatures;
  std::vector<bool> reroutes_applied;  // false: the entry was gone (acked, expired)
  // One per Batch::prekeys: true when stored as the owner's newest (false: the same or a
  // newer one was held already).
  std::vector<bool> prekeys_stored;
};

struct MailboxBacklog {
  std::string mailbox;
  uint64_t depth = 0;
  UnixMillis oldest_accepted_ms = 0;  // 0: its record is missing or damaged
};

struct Pending {
  uint64_t seq = 0;
  Bytes message_id;
  Bytes envelope;
  UnixMillis accepted_ms = 0;       // when this broker committed it
  uint8_t hops = 0;                 // brokers it passed before this one
  std::vector<std::string> serves;  // link mailboxes: the recipients it is carried for
  // Not empty: the stored record failed its check (what was wrong); envelope is empty. The
  // reader quarantines the entry (RecipientAck::Kind::kQuarantined) and reads on.
  std::string damage;
};

// Audit entries read for an auditor (Store::AuditEntriesFrom).
struct AuditEntriesRead {
  std::vector<Bytes> entries;  // exactly as stored, from the index asked for
  uint64_t log_size = 0;       // the committed log, in the same read transaction
  bool more = false;           // entries after the last one returned exist
  // Indexes among entries whose bytes do not match their stored leaf hash. They are
  // returned as stored (an auditor must see what the log holds); the caller alerts its
  // operator.
  std::vector<uint64_t> damaged;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);

  // REQUIRES: every Accepted::decoded points at the decoded form of its envelope.
  Result<CommitResult> Commit(Batch& batch, UnixMillis now);

  // Up to max envelopes in recipient's mailbox with seq > after_seq, in order. A damaged or
  // missing record is returned with Pending::damage set (and no envelope), never as sound.
  Result<std::vector<Pending>> ReadMailbox(const std::string& recipient, uint64_t after_seq,
                                           size_t max) const;

  // Up to max entries of a mailbox (seq, message id, serves; no envelope), in order.
  Result<std::vector<Pending>> ReadMailboxIndex(const std::string& recipient, size_t max) const;
  // A peer broker's control queue: up to max items with seq > after_seq, in order.
  Result<std::vector<ControlItem>> ReadControlQueue(const std::string& peer, uint64_t after_seq,
                                                    size_t max) const;
  Result<uint64_t> ControlQueueDepth(const std::string& peer) const;
  // The newest published prekey held for each agency (serialized SignedPrekeys, as signed),
  // in owner order. A record that fails its SHA-256 is left out and logged.
  Result<std::vector<Bytes>> PublishedPrekeys() const;
  // The version of the last operator roster recorded for each agency (PROTOCOL.md 9.3).
  Result<std::map<std::string, uint64_t>> RosterVersions() const;
  // Every mailbox holding something, with its depth.
  Result<std::vector<std::pair<std::string, uint64_t>>> NonEmptyMailboxes() const;

  Result<uint64_t> MailboxDepth(const std::string& recipient) const;
  // Up to max mailboxes holding something (in key order), with their depth and when their
  // oldest entry was committed, in one read transaction: one seek and one record read per
  // mailbox, whatever its depth (the depths are kept as counters). For metrics.
  Result<std::vector<MailboxBacklog>> MailboxBacklogs(size_t max) const;
  // kNotFound if the grant is not registered; kMalformed if its record is damaged.
  Result<GrantState> GetGrant(ByteView grant_id) const;
  Result<uint64_t> AuditSize() const;
  // Audit entry bytes at index (exactly as stored and hashed), checked against the entry's
  // leaf hash in the tree: kMalformed if they differ.
  Result<Bytes> AuditEntryBytes(uint64_t index) const;
  // Up to max entries from from_index, in one read transaction, stopping before the total
  // of their bytes would pass max_bytes (at least one entry is returned when any is left).
  // InvalidArgument if from_index is beyond the committed log (equal: nothing to return).
  // A missing entry stops the read with kMalformed naming its index.
  Result<AuditEntriesRead> AuditEntriesFrom(uint64_t from_index, size_t max,
                                            size_t max_bytes) const;

  // The Merkle root of the committed log (from the stored frontier: O(1)).
  Result<keys::Hash> AuditRoot() const;
  // The root of the first size entries, from stored nodes (O(log N) reads).
  // InvalidArgument if size exceeds the committed log.
  Result<keys::Hash> AuditRootAt(uint64_t size) const;
  // RFC 9162 proofs from stored nodes, O(log N) reads; sizes up to the committed log's.
  Result<std::vector<keys::Hash>> InclusionProof(uint64_t index, uint64_t size) const;
  Result<std::vector<keys::Hash>> ConsistencyProof(uint64_t old_size, uint64_t new_size) const;

  // Signs a checkpoint of the committed log with log_key under key name origin
  // (CheckpointOrigin) and stores it, in one write transaction; the note is returned only
  // once stored. When the log has not grown since the latest stored checkpoint, nothing is
  // signed and that one is returned (signed_now false). Refuses (kFailedPrecondition,
  // nothing signed or stored) a checkpoint inconsistent with the latest stored one.
  Result<CheckpointOutcome> SignCheckpoint(const std::string& origin,
                                           const keys::Identity& log_key);
  // The same consistency check on the committed log, without signing: ok when the log is
  // consistent with the latest stored checkpoint of origin (or none is stored).
  Status CheckLatestCheckpoint(const std::string& origin) const;
  Result<std::optional<StoredCheckpoint>> LatestCheckpoint() const;
  // Stored checkpoints with size >= from_size, in order of size, at most max.
  Result<std::vector<StoredCheckpoint>> Checkpoints(uint64_t from_size, size_t max) const;

  // As a witness: the last checkpoint of origin this broker cosigned (nullopt: none).
  Result<std::optional<keys::WitnessState>> WitnessStateOf(const std::string& origin) const;
  // As a witness: every evidence record kept (inconsistent checkpoints), in order.
  Result<std::vector<keys::WitnessEvidence>> WitnessEvidence() const;

  // Removes envelopes whose expiry has passed (audit EXPIRED for undelivered ones) and
  // forgets message ids past their expiry. At most max_items per call.
  Result<size_t> ExpireOld(UnixMillis now, size_t max_items);

  lmdb::Env& env() { return *env_; }

 private:
  // Commit's transaction and one function per kind of batch (broker/store_commit.cpp).
  friend class CommitTxn;

  Store() = default;
  // In Commit's transaction: one WitnessItem decided, its state or evidence written.
  Result<WitnessOutcome> DecideWitnessInTxn(lmdb::Txn& txn, const WitnessItem& item,
                                            const Batch& batch, UnixMillis now);
  std::unique_ptr<lmdb::Env> env_;
  StoreOptions options_;
  // Whether any of a message's (mailbox, seq) entries is still in "mbox" (acked, expired
  // and moved entries are gone): while one is, its record stays.
  Result<bool> StillQueued(const lmdb::Txn& txn,
                           const std::vector<std::pair<std::string, uint64_t>>& entries,
                           ByteView message_id) const;
  MDB_dbi meta_ = 0, msgs_ = 0, mbox_ = 0, seen_ = 0, expiry_ = 0, counts_ = 0, audit_ = 0,
          grants_ = 0;
  // As a witness: "witness" (origin -> keys::EncodeWitnessState) and "witness_evidence"
  // (u64be number -> keys::EncodeWitnessEvidence), written only in Commit.
  MDB_dbi witness_ = 0, evidence_ = 0;
  // Federation: "ctlq" (peer \0 u64be seq -> signed revocation) and "revoked_unknown"
  // (grant id -> revoked_by, case_ref, revoked_at: revocations of grants not registered here).
  MDB_dbi ctlq_ = 0, tombstones_ = 0;
  // Mailbox entries whose record was damaged ("quarantine": mailbox \0 seq -> what was wrong).
  MDB_dbi quarantine_ = 0;
  // Per-sender shares of the mailboxes ("sender_counts": sender \0 mailbox -> count).
  MDB_dbi sender_counts_ = 0;
  // Published prekeys ("prekeys": owner -> SHA-256(value) || serialized SignedPrekey).
  MDB_dbi prekeys_ = 0;
  Status AdjustSender(lmdb::Txn& txn, const std::string& sender, const std::string& mailbox,
                      int delta);
  // A new mailbox entry: its key and value, the mailbox's depth, the sender's share.
  Status AddEntry(lmdb::Txn& txn, const std::string& mailbox, uint64_t seq, ByteView message_id,
                  const std::vector<std::string>* serves, const std::string& sender);
  AuditDbs audit_dbs_;  // meta_, audit_, "audit_tree", "checkpoints"
  // In Commit: batch.roster_versions into meta_ ("roster-version/AGENCY" -> u64).
  Status PutRosterVersions(lmdb::Txn& txn,
                           const std::vector<std::pair<std::string, uint64_t>>& versions);
  // A commit that stores new envelopes, grants or revocations must leave room for the
  // commits that free it: acks write audit entries before their envelopes' pages are free,
  // and an ack that cannot commit frees nothing. kResourceExhausted when, with this
  // transaction's writes, less than kHeadroom of the map would be left.
  Status CheckHeadroom(const lmdb::Txn& txn) const;
};

// The part of the map kept for commits without new envelopes: map/16, at least 2 MiB.
size_t StorageHeadroomBytes(size_t map_size_bytes);

// An audit entry describing an envelope (ids, pseudonym, hash and size; never content).
schema::AuditEntry EnvelopeAudit(schema::AuditEvent event, const schema::SealedEnvelope& env,
                                 ByteView envelope_bytes, const std::string& actor,
                                 uint64_t directory_serial);
// The same, with the envelope's SHA-256 already known (the commit hashes each envelope once).
schema::AuditEntry EnvelopeAudit(schema::AuditEvent event, const schema::SealedEnvelope& env,
                                 Bytes envelope_sha256, size_t envelope_bytes,
                                 const std::string& actor, uint64_t directory_serial);

// SHA-256 of bytes: core/hash.h's, which reuses one fetched digest and one context per
// thread. (OpenSSL's one-shot SHA256() fetches the digest again on every call, which cost
// more than the hashing itself: 16% of the writer thread's samples, issue 21.)
using refbus::Sha256;

// The id an Attest is acknowledged with: the first 16 bytes of SHA-256(signed statement).
inline Bytes AttestationId(ByteView signed_statement) {
  Bytes h = Sha256(signed_statement);
  h.resize(16);
  return h;
}

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_STORE_H_
