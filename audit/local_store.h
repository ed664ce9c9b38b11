// The auditor's local audit store: what refbus-audit fetched from one broker, kept so that
// it can be verified offline and again later (schema/PROTOCOL.md section 11).
//
// Contract:
//   - One LMDB environment per folder, bound at the first fetch to one broker's log (its
//     id, origin and the signing key the verified directory listed then); a store of
//     another broker or origin is refused.
//   - Entries: u64be index -> the entry bytes exactly as the broker served them (the bytes
//     that are its Merkle leaves). Only appended, in order, never rewritten: a later fetch
//     that sees a different history cannot overwrite what was fetched before.
//   - Checkpoints: every signed note ever received, in arrival order (u64be sequence ->
//     record), also several with one size (a fork is evidence, kept as it came), each with
//     the consistency proof the broker gave from the checkpoint it was checked against at
//     fetch time. Only added, never removed: a broker that rewrites history and serves only
//     the new log is still caught by the checkpoints it signed before.
//   - Records carry no checksum of their own: entries and notes are checked against signed
//     checkpoints by verify, which is what an auditor relies on; a damaged record shows up
//     there, named.
//   - Witnessing (refbus-audit witness, keys/witness.h): the last checkpoint of this log the
//     auditor cosigned ("witness", one record, with its own SHA-256), and the evidence of
//     every checkpoint it refused as inconsistent ("witness_evidence", only added). The
//     state is written before the cosignature leaves the auditor.
//   - Nothing here checks signatures or the tree: see audit/verify.h.
//
// Thread safety: a store may be used from one thread at a time; one process per folder
// (core/lmdb.h holds a lock).
#ifndef REFBUS_AUDIT_LOCAL_STORE_H_
#define REFBUS_AUDIT_LOCAL_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/lmdb.h"
#include "core/status.h"
#include "keys/merkle.h"
#include "keys/witness.h"

namespace refbus::audit {

// Which log a store holds.
struct AuditBinding {
  std::string broker_id;
  std::string origin;        // "refbus/<federation>/<broker-id>"
  Bytes broker_signing_key;  // as the verified directory listed it at the last fetch
};

// One signed checkpoint as received.
struct LocalCheckpoint {
  uint64_t seq = 0;   // arrival order in this store, from 0
  uint64_t size = 0;  // as the note says (its signature is checked by verify, not here)
  UnixMillis received_at_ms = 0;
  std::string note;  // the signed note, exactly as received
  // The consistency proof the broker gave from checkpoint proof_from_seq to this one.
  std::optional<uint64_t> proof_from_seq;
  std::vector<keys::Hash> proof;
};

class LocalAuditStore {
 public:
  // Opens (create: creating) the store in dir.
  static Result<std::unique_ptr<LocalAuditStore>> Open(const std::string& dir, bool create);

  Result<std::optional<AuditBinding>> Binding() const;
  // First use: records binding. Later: the broker id and origin must be the same (the key
  // is updated: the directory may have rotated it); FailedPrecondition otherwise.
  Status Bind(const AuditBinding& binding);

  // The index the next entry gets: one past the last stored key (0 when empty).
  Result<uint64_t> NextIndex() const;
  // Appends entries at first_index, first_index + 1, ... in one transaction.
  // REQUIRES: first_index == NextIndex().
  Status AppendEntries(uint64_t first_index, const std::vector<Bytes>& entries);
  // Calls fn(key, bytes) for every stored entry in key order, in one read transaction;
  // bytes are valid during the call. Stops at the first non-ok Status fn returns.
  Status ForEachEntry(const std::function<Status(uint64_t key, ByteView bytes)>& fn) const;

  // Every checkpoint in arrival order.
  Result<std::vector<LocalCheckpoint>> Checkpoints() const;
  // Stores checkpoint (its seq is assigned here and returned).
  Result<uint64_t> AddCheckpoint(const LocalCheckpoint& checkpoint);

  // As a witness: the last checkpoint of the bound log this auditor cosigned (nullopt:
  // none). Malformed for a damaged record (never read as "none").
  Result<std::optional<keys::WitnessState>> Witnessed() const;
  Status SetWitnessed(const keys::WitnessState& state);
  // Evidence of an inconsistent checkpoint; returns its number (from 0).
  Result<uint64_t> AddEvidence(const keys::WitnessEvidence& evidence);
  Result<std::vector<keys::WitnessEvidence>> Evidence() const;

  lmdb::Env& env() { return *env_; }

 private:
  LocalAuditStore() = default;
  std::unique_ptr<lmdb::Env> env_;
  MDB_dbi meta_ = 0, entries_ = 0, checkpoints_ = 0, witness_ = 0, evidence_ = 0;
};

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_LOCAL_STORE_H_
