// refbus-audit's offline logic over a local audit store (agent/audit_store.h): verifying
// the log against every signed checkpoint, inclusion-proof bundles, and the queries
// auditors ask. Nothing here talks to a broker (agent/audit_fetch.h does).
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
// A problem names the first bad entry (index) or the checkpoint (size and arrival number).
//
// Proof bundles: JSON, format "refbus-audit-proof/1", with every field checked by
// CheckProofBundle (a bundle with any byte changed outside JSON whitespace is refused).
//
// Thread safety: free functions over values; a store is used by one thread at a time.
#ifndef REFBUS_AGENT_AUDIT_TOOL_H_
#define REFBUS_AGENT_AUDIT_TOOL_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "agent/audit_store.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/checkpoint.h"
#include "keys/merkle.h"
#include "keys/witness.h"
#include "schema/types.h"

namespace refbus::agent {

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
  Where where = Where::kEntry;
  uint64_t index = 0;  // kEntry: the entry's index; kCheckpoint: the checkpoint's tree size
  uint64_t seq = 0;    // kCheckpoint: its arrival number in the local store
  std::string message;
};

// One checkpoint size and who cosigned it.
struct CosignedCheckpoint {
  uint64_t size = 0;
  std::vector<uint64_t> seqs;          // its arrivals in the store
  std::vector<std::string> witnesses;  // distinct witnesses with a valid cosignature, sorted
};

struct VerifyOptions {
  std::vector<keys::WitnessKey> witnesses;  // keys::WitnessKeys(directory, broker id)
  size_t min_cosignatures = 0;
};

struct VerifyReport {
  std::string broker_id;
  std::string origin;
  uint64_t entries = 0;      // local entries read (up to a gap, if there is one)
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

// ---- Proof bundles -----------------------------------------------------------------------

inline constexpr std::string_view kProofBundleFormat = "refbus-audit-proof/1";

// A bundle proving every entry of the local log whose message_id is message_id, against
// the largest stored checkpoint that verifies with the key recorded at fetch and matches
// the local entries. NotFound if no entry concerns the message. Returns the JSON text.
Result<std::string> MakeProofBundle(const LocalAuditStore& store, ByteView message_id);

struct CheckedProof {
  std::string broker_id;
  std::string origin;
  std::string key_fingerprint;
  uint64_t tree_size = 0;
  Bytes message_id;
  std::vector<schema::AuditEntry> entries;  // decoded from the proven bytes
  double verify_us_per_entry = 0;           // inclusion proof verification only
};

// Verifies bundle_json without the log: the checkpoint's signature with the broker's key
// from directory, every entry's inclusion in it, and that every other field agrees with
// what the signed bytes say. Malformed for a bundle that does not parse, Unauthenticated
// when a signature or proof fails, InvalidArgument when a field disagrees.
Result<CheckedProof> CheckProofBundle(std::string_view bundle_json,
                                      const schema::Directory& directory);

// ---- Queries -----------------------------------------------------------------------------

struct AuditRow {
  schema::AuditEntry entry;
  // From the ACCEPTED entry of the same message, where this entry does not say (DELIVERED,
  // ACKED and EXPIRED entries carry only the message id).
  std::string case_ref;
  std::string sender_id;
  schema::MessageKind kind = schema::MessageKind::kUnspecified;
  Bytes consent_grant_id;
  std::string group;  // overrides: the emergency grant (hex) a row belongs to
  std::string note;   // why the row is listed (unconsented), or empty
};

struct QueryResult {
  std::vector<AuditRow> rows;
  uint64_t entries_scanned = 0;
  uint64_t checkpoint_size = 0;  // the latest stored checkpoint, matched by the entries
};

// Every query scans the local entries once and first checks that they are exactly the log
// of the latest stored checkpoint (root and size; run verify for the signatures and the
// full check): FailedPrecondition otherwise.
Result<QueryResult> QueryCase(const LocalAuditStore& store, std::string_view case_ref);
// DELIVERED, ACKED and OPENED entries of agency with from_ms <= time < to_ms.
Result<QueryResult> QueryAccesses(const LocalAuditStore& store, std::string_view agency,
                                  UnixMillis from_ms, UnixMillis to_ms);
// OPENED entries naming no grant, a grant not CONSENT_GRANTED in this log before the
// access, or one CONSENT_REVOKED before the access (log order).
Result<QueryResult> QueryUnconsented(const LocalAuditStore& store);
// CONSENT_GRANTED entries with emergency_override, each followed by what was shared under
// it (entries naming the grant, and the deliveries of those messages).
Result<QueryResult> QueryOverrides(const LocalAuditStore& store);

enum class OutputFormat { kTable, kJson, kCsv };
void PrintRows(const QueryResult& result, OutputFormat format, std::ostream& out);

// "2024-05-01", "2024-05-01T09:30:00Z" (UTC) or Unix milliseconds.
Result<UnixMillis> ParseTime(std::string_view text);

// RFC 4180 field quoting; a field that starts with = + - @ TAB or CR is quoted with a
// leading ' so that a spreadsheet keeps it as text instead of running it as a formula.
std::string CsvField(std::string_view s);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_AUDIT_TOOL_H_
