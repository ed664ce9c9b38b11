// Verifying an auditor's local copy of a broker's log (audit/local_store.h) against every
// signed checkpoint, and the broker's log keys it is verified with. Nothing here talks to a
// broker (audit/fetch.h does); proof bundles are in audit/proof_bundle.h, queries in
// audit/query.h.
//
// Verification (schema/PROTOCOL.md section 11, "Auditing a log"):
//   1. Every stored checkpoint note must verify with a signing key the verified directory
//      lists for the broker (ACTIVE or RETIRED; never REVOKED, never a revoked broker) under
//      the key name = origin "refbus/<federation>/<broker-id>".
//   2. Entries are read in order: the key of the i-th is i (a gap names the missing index),
//      each decodes as an AuditEntry whose index field is i and whose broker is the log's
//      broker (else: "entry i: ..."); every entry's bytes are a leaf of a MemoryTree.
//   3. Every checkpoint whose signature verified is compared with the root of the first
//      `size` local entries (RootAt over the MemoryTree): a mismatch names the checkpoint and
//      the range of entries between the largest smaller checkpoint that matched and it.
//   4. Checkpoints in order of size, each with the one before (every checkpoint the store
//      ever received, from earlier fetches too): equal sizes need equal roots (else a fork),
//      and the consistency proof the broker gave at fetch time must verify between the
//      checkpoint it was given against and this one.
//   5. Every local entry must be covered by a checkpoint, and every checkpoint by entries.
//   6. Cosignatures (schema/PROTOCOL.md section 11.3): every signature line of a stored note
//      by a witness key the verified directory lists (keys::WitnessKeys) must verify over the
//      checkpoint (else a problem naming the witness); lines by unknown keys are counted and
//      ignored. Per checkpoint size, the distinct witnesses that cosigned it (over all stored
//      arrivals of it) are reported. The witnessed size is the largest checkpoint with at
//      least max(1, min_cosignatures) of them: every checkpoint below it is covered by
//      consistency (3 and 4). With min_cosignatures N > 0, every checkpoint above the
//      witnessed size is a problem: the newest checkpoint held must carry N cosignatures
//      (a fetch waits for them with FetchOptions::wait_cosignatures). A broker whose
//      witnesses refuse its checkpoints, or that stopped asking them, fails here.
//      Only the witnesses in options.witnesses count: the ones the auditor names
//      (audit/auditor_config.h), never the log's own broker; a cosignature by anyone else is
//      ignored like an unknown key (the log must not pick the witnesses that vouch for it).
//      min_cosignatures is 1 unless the caller lowers it; with 0, an unwitnessed log still
//      verifies, but the report says so (witnessed = false, Headline "UNWITNESSED").
//   7. Evidence (options.evidence): checkpoints of this log that someone else holds, such
//      as the latest checkpoint an agency kept from its broker's Acks (schema/PROTOCOL.md
//      section 6). Each must verify with the log's keys and be of its origin, and the local
//      log's tree of that size must have that root (else the log was rewritten after the
//      broker signed it to that party, or forked towards it); one larger than the local
//      log is a problem too ("run fetch"): it cannot be checked yet.
// A problem names the first bad entry (index) or the checkpoint (size and arrival number).
//
// Thread safety: free functions over values; a store is used by one thread at a time.
#ifndef REFBUS_AUDIT_VERIFY_H_
#define REFBUS_AUDIT_VERIFY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/local_store.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/checkpoint.h"
#include "keys/merkle.h"
#include "keys/witness.h"
#include "schema/types.h"

namespace refbus::audit {

// What verify says, loudly, about a log no named witness cosigned.
inline constexpr char kUnwitnessedWarning[] =
    "UNWITNESSED: no independent witness has cosigned this log";

// ---- The broker's log keys --------------------------------------------------------------

struct LogKeys {
  std::string broker_id;
  std::string origin;
  std::vector<keys::NoteVerifier> verifiers;  // name = origin, one per acceptable key
  std::vector<std::string> fingerprints;      // parallel to verifiers (signing key ids)
  Bytes active_key;                           // the broker's ACTIVE signing key, if any
};

// "refbus/<federation>/<broker-id>", InvalidArgument if it is not a valid note key name.
Result<std::string> LogOrigin(std::string_view federation, std::string_view broker_id);

// The keys that may have signed broker_id's checkpoints, from a verified directory:
// ACTIVE and RETIRED signing keys. NotFound if broker_id is not a broker in it; Revoked if
// the broker is revoked (nothing it signed is trusted) or has no unrevoked key.
Result<LogKeys> BrokerLogKeys(const schema::Directory& directory, const std::string& broker_id);

// A single known key (for prove, which works from the key recorded at fetch).
Result<LogKeys> LogKeysFromBinding(const AuditBinding& binding);

// Opens note with whichever of keys verifies it; fingerprint (if not null) gets that key's.
Result<keys::VerifiedCheckpoint> OpenLogCheckpoint(std::string_view note, const LogKeys& keys,
                                                   std::string* fingerprint = nullptr);

// ---- The local log -------------------------------------------------------------------------

// The Merkle tree of the local entries in order, up to the first missing index (gap);
// visit (if set) sees every entry that went into the tree.
struct LocalTree {
  keys::MemoryTree tree;
  std::optional<uint64_t> gap;
};
Result<LocalTree> ReadLocalTree(const LocalAuditStore& store,
                                const std::function<void(uint64_t, ByteView)>& visit = nullptr);

// ---- Verify ------------------------------------------------------------------------------

struct VerifyProblem {
  enum class Where { kEntry, kCheckpoint };
  // Which finding message is, so a report can say it in another language with args (ids
  // and numbers only; the message's technical detail from a library stays in message).
  enum class Kind {
    kOther,                // args: none
    kUndecodable,          // none
    kIndexMismatch,        // the index the entry states
    kWrongBroker,          // the broker it names, the log's broker
    kGap,                  // the missing index, the next stored index
    kCheckpointSignature,  // the log's broker
    kCheckpointSize,       // the size it is stored under, the size it states
    kFork,                 // the other checkpoint's arrival number
    kInconsistent,         // the other checkpoint's arrival number, its size
    kLocalMismatch,        // the size, the largest smaller size that matches
    kLocalBroken,          // the first missing index
    kMissingEntries,       // how many entries the store holds
    kBadCosignature,       // the witness
    kUnwitnessed,          // cosignatures it has, required, the witnessed size
    kUncovered,            // how many entries after it
    kNoCheckpoint,         // none
    kEvidence,             // the evidence's label
  };
  Where where = Where::kEntry;
  uint64_t index = 0;  // kEntry: the entry's index; kCheckpoint: the checkpoint's tree size
  uint64_t seq = 0;    // kCheckpoint: its arrival number in the local store
  std::string message;
  Kind kind = Kind::kOther;
  std::vector<std::string> args;
};

// One checkpoint size and who cosigned it.
struct CosignedCheckpoint {
  uint64_t size = 0;
  std::vector<uint64_t> seqs;          // its arrivals in the store
  std::vector<std::string> witnesses;  // distinct witnesses with a valid cosignature, sorted
};

// A signed checkpoint of the log held apart from the auditor's store (a commitment an
// agency kept), with a label for messages (its file name).
struct CheckpointEvidence {
  std::string label;
  std::string note;
};

struct VerifyOptions {
  // The witnesses whose cosignatures count: the auditor's named ones (NamedWitnessKeys in
  // audit/auditor_config.h). A key of the log's own broker never counts.
  std::vector<keys::WitnessKey> witnesses;
  size_t min_cosignatures = 1;
  std::vector<CheckpointEvidence> evidence;
};

struct VerifyReport {
  std::string broker_id;
  std::string origin;
  uint64_t entries = 0;  // local entries read (up to a gap, if there is one)
  // ENVELOPE_REJECTED entries, the refusals they record (an aggregate counts for its
  // refusal_count: schema/PROTOCOL.md section 6, "Refusals"), and how many are aggregates.
  uint64_t refusal_entries = 0;
  uint64_t refusals = 0;
  uint64_t refusal_aggregates = 0;
  size_t checkpoints = 0;    // notes in the store
  size_t signatures_ok = 0;  // of which verified
  // The largest checkpoint that verified and matched the local entries.
  uint64_t verified_size = 0;
  keys::Hash verified_root{};
  std::optional<uint64_t> first_bad_entry;
  std::optional<uint64_t> first_bad_checkpoint_seq;
  std::vector<VerifyProblem> problems;  // entries (by index), then checkpoints (by size)
  double seconds = 0;
  // Cosignatures: per verified checkpoint size, in order of size.
  std::vector<CosignedCheckpoint> cosigned;
  std::optional<uint64_t> witnessed_size;
  size_t min_cosignatures = 0;
  size_t unknown_signatures = 0;  // signature lines by keys neither the log's nor a witness's
  // Whether a checkpoint with max(1, min_cosignatures) named cosigners was found.
  bool witnessed = false;
  size_t evidence_checked = 0;  // evidence checkpoints that matched the local log

  bool ok() const { return problems.empty(); }
  // One line: "ok: ..." or the first bad entry / checkpoint and why.
  std::string Headline() const;
};

// Errors only for a store that cannot be read; findings are in the report.
Result<VerifyReport> VerifyLocalLog(const LocalAuditStore& store, const LogKeys& keys,
                                    const VerifyOptions& options = {});

// The first index at which local differs from the log a checkpoint commits to, found by
// bisection with consistency proofs: consistent(m) must return whether the broker's proof
// from m to checkpoint_size verifies against the local root of the first m entries. Used by
// fetch when its fresh entries do not match the fresh checkpoint.
// REQUIRES: consistent(0) holds, consistent(checkpoint_size) does not.
Result<uint64_t> Bisect(uint64_t checkpoint_size,
                        const std::function<Result<bool>(uint64_t m)>& consistent);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_VERIFY_H_
