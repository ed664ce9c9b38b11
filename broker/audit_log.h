// The broker's tamper-evident audit log inside the store's LMDB environment: entries, the
// RFC 6962 Merkle tree over them, and the signed checkpoints (schema/PROTOCOL.md section 9).
//
// Storage (all in the store's one environment, written only inside its write transactions):
//   - "audit": u64be index -> serialized AuditEntry, exactly the bytes that are hashed.
//   - "audit_tree": every complete perfect subtree's hash, stored once when its last leaf is
//     appended. Key: u64be of the node's position in the order nodes complete (the
//     "stored hash index" of golang.org/x/mod/sumdb/tlog): leaf i's hash and then the
//     subtrees it completes, smallest first, so every put is an append (MDB_APPEND, pages
//     packed full) and a log of N entries holds exactly 2N - popcount(N) nodes (checked
//     at open). Value: the 32-byte hash || 8 bytes of
//     SHA-256("refbus/v1/audit-node" || 0x00 || u64be key || hash), checked on every read:
//     LMDB has no page checksums. Level 0 (leaf hashes) doubles as the check of each stored
//     entry on read (AuditEntryBytes compares LeafHash(entry) with it). Any proof or old
//     root is O(log N) point reads: no interior hash is recomputed from leaves. Cost: about
//     120 bytes per entry (two LMDB nodes of 8-byte key and 40-byte value).
//   - meta "audit_size" (u64be) and meta "audit_frontier" (keys::MerkleFrontier::Serialize,
//     which carries its own checksum): both updated in the transaction that appends, so
//     start-up reads the frontier instead of replaying the log. A frontier whose size is
//     not audit_size, or node and entry counts that do not fit it, refuse the open.
//   - "checkpoints": u64be tree size -> SHA-256(body) || body, body = u8 version (1) ||
//     the signed note as handed out (c2sp.org/tlog-checkpoint in c2sp.org/signed-note),
//     later with the witnesses' cosignature lines added after the log's signature.
//
// Checkpoints are never inconsistent with an earlier one: by construction (the tree only
// grows, in the same transactions as the log) and by check: before a checkpoint of size N
// and root R is signed, the latest stored checkpoint (M, Q) is loaded, N >= M is required
// and a consistency proof from M to N, built from the stored nodes, must verify against Q
// and R (keys::VerifyConsistency). Otherwise nothing is signed or stored and the refusal
// (kFailedPrecondition, message starting "refusing to sign") names both checkpoints.
// Signing happens inside a write transaction, which sees exactly the committed log (the
// broker has one writer), and the note is handed out only after that transaction stored
// it: every checkpoint handed out describes a committed prefix and is on disk.
//
// Thread safety: functions over a Txn follow LMDB's rules (a Txn belongs to one thread);
// nothing here holds state between calls.
#ifndef REFBUS_BROKER_AUDIT_LOG_H_
#define REFBUS_BROKER_AUDIT_LOG_H_

#include <lmdb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/lmdb.h"
#include "core/status.h"
#include "keys/checkpoint.h"
#include "keys/identity.h"
#include "keys/merkle.h"

namespace refbus::broker {

// The databases of the audit log, opened by the Store.
struct AuditDbs {
  MDB_dbi meta = 0;
  MDB_dbi entries = 0;
  MDB_dbi tree = 0;
  MDB_dbi checkpoints = 0;
};

// Position of the perfect subtree [n * 2^level, (n + 1) * 2^level) in completion order.
uint64_t StoredNodeIndex(unsigned level, uint64_t n);
// How many nodes a tree of size leaves stores: 2 * size - popcount(size).
uint64_t StoredNodeCount(uint64_t size);

// The stored form of a node, and its check.
Bytes EncodeNode(uint64_t node_index, const keys::Hash& hash);
Result<keys::Hash> DecodeNode(ByteView stored, uint64_t node_index);

// Appends entries to the log and its tree inside one write transaction.
// REQUIRES: txn is a write transaction and outlives the writer; nothing else appends to the
// log in it. Finish() must run before the transaction commits.
class AuditWriter {
 public:
  // Loads audit_size and the frontier; an error if they disagree.
  static Result<AuditWriter> Begin(lmdb::Txn& txn, const AuditDbs& dbs);

  // Stores entry at index size() with its leaf hash and the subtrees it completes.
  Status Append(ByteView entry);
  uint64_t size() const { return frontier_.Size(); }
  // Writes the frontier and audit_size (in this transaction).
  Status Finish();

 private:
  AuditWriter(lmdb::Txn& txn, const AuditDbs& dbs) : txn_(&txn), dbs_(dbs) {}
  lmdb::Txn* txn_;
  AuditDbs dbs_;
  keys::MerkleFrontier frontier_;
};

// Subtree hashes from the "audit_tree" database, for the first size leaves.
// Valid while txn lives; used on the thread that owns txn.
class StoredTreeReader : public keys::TreeReader {
 public:
  StoredTreeReader(const lmdb::Txn& txn, const AuditDbs& dbs, uint64_t size)
      : txn_(txn), dbs_(dbs), size_(size) {}
  Result<keys::Hash> SubtreeHash(uint64_t start, unsigned level) const override;

 private:
  const lmdb::Txn& txn_;
  AuditDbs dbs_;
  uint64_t size_;
};

// The committed audit_size and frontier, checked against each other.
Result<keys::MerkleFrontier> LoadFrontier(const lmdb::Txn& txn, const AuditDbs& dbs);

// Start-up checks, O(log N): frontier size == audit_size, entry and node counts fit N,
// each frontier subtree equals its stored node, and the last entry matches its leaf hash.
// Returns N. Never reads the whole log.
Result<uint64_t> CheckAuditState(const lmdb::Txn& txn, const AuditDbs& dbs);

// Upgrade of a store written before the tree existed: builds every node and the frontier
// from the stored entries (reads the whole log once). REQUIRES: a write transaction, the
// tree database empty, no frontier stored.
Result<uint64_t> RebuildAuditTree(lmdb::Txn& txn, const AuditDbs& dbs);

// The stored entry at index, checked against its leaf hash.
Result<Bytes> ReadAuditEntry(const lmdb::Txn& txn, const AuditDbs& dbs, uint64_t index);

// ---- Checkpoints ---------------------------------------------------------------------

// The log's origin line and note key name: "refbus/<federation>/<broker-id>".
// InvalidArgument if that is not a valid key name (for example a federation name with a
// space).
Result<std::string> CheckpointOrigin(std::string_view federation, std::string_view broker_id);

struct StoredCheckpoint {
  keys::Checkpoint checkpoint;  // parsed from the note's text; the signature is not checked
  std::string note;             // the signed note, as handed out
};

Bytes EncodeCheckpointRecord(std::string_view note);
// Checks the record's hash and that its note parses as a checkpoint of size.
Result<StoredCheckpoint> DecodeCheckpointRecord(ByteView stored, uint64_t size);

Result<std::optional<StoredCheckpoint>> LatestCheckpoint(const lmdb::Txn& txn, const AuditDbs& dbs);

// The rule: a checkpoint (size, root) of log origin may be signed only if the latest
// stored checkpoint (M, Q) is of the same origin, M <= size, and the stored tree proves
// consistency from (M, Q) to (size, root). Ok when nothing is stored yet.
// kFailedPrecondition naming both checkpoints otherwise (also when the latest cannot be
// read: a damaged record refuses rather than being skipped).
[[nodiscard]] Status CheckConsistentWithLatest(const lmdb::Txn& txn, const AuditDbs& dbs,
                                               const std::string& origin, uint64_t size,
                                               const keys::Hash& root);

// In write transaction txn: adds sig (a witness's cosignature, verified by the caller) to
// the stored checkpoint of size, replacing an earlier signature by the same key: the note's
// text and its other lines are kept as they were. NotFound if no checkpoint of that size is
// stored; FailedPrecondition if the stored one has another root than root.
Status AddCheckpointCosignature(lmdb::Txn& txn, const AuditDbs& dbs, uint64_t size,
                                const keys::Hash& root, const keys::NoteSignature& sig);

struct CheckpointOutcome {
  StoredCheckpoint stored;
  bool signed_now = false;  // false: the log had not grown; stored is the latest checkpoint
};

// In write transaction txn: signs a checkpoint of the committed tree with log_key under
// key name origin, after CheckConsistentWithLatest, and puts it into "checkpoints". When
// the tree has the latest checkpoint's size (and root), signs nothing and returns that
// one. The caller commits txn and hands the note out only after the commit succeeded.
// Secrets: the signing key stays inside log_key (keys/checkpoint.h).
Result<CheckpointOutcome> SignCheckpointInTxn(lmdb::Txn& txn, const AuditDbs& dbs,
                                              const std::string& origin,
                                              const keys::Identity& log_key);

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_AUDIT_LOG_H_
