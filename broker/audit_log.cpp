#include "broker/audit_log.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "broker/store_records.h"
#include "core/hash.h"

namespace refbus::broker {
namespace {

constexpr std::string_view kSizeKey = "audit_size";
constexpr std::string_view kFrontierKey = "audit_frontier";
constexpr std::string_view kNodeLabel = "refbus/v1/audit-node";
constexpr size_t kNodeCheckBytes = 8;
constexpr size_t kNodeBytes = keys::kMerkleHashBytes + kNodeCheckBytes;
constexpr uint8_t kCheckpointRecordVersion = 1;

std::array<uint8_t, kNodeCheckBytes> NodeCheck(uint64_t node_index, const keys::Hash& hash) {
  thread_local Sha256Hasher hasher;
  hasher.Update(AsBytes(kNodeLabel));
  hasher.Update(uint8_t{0});
  Bytes key = lmdb::U64Key(node_index);
  hasher.Update(key);
  hasher.Update(hash);
  Sha256Digest d = hasher.Finish();
  std::array<uint8_t, kNodeCheckBytes> out;
  std::copy_n(d.begin(), kNodeCheckBytes, out.begin());
  return out;
}

std::string Describe(uint64_t size, const keys::Hash& root) {
  return "(size " + std::to_string(size) + ", root " + HexEncode(root) + ")";
}

Result<uint64_t> ReadSize(const lmdb::Txn& txn, const AuditDbs& dbs) {
  auto v = txn.Get(dbs.meta, AsBytes(kSizeKey));
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) return uint64_t{0};
    return v.status();
  }
  if (v->size() != 8) return Malformed("store: audit_size has the wrong length");
  return lmdb::ReadU64Key(*v);
}

// Adds the nodes of the leaf at frontier.Size() to the tree database and the leaf to the
// frontier. REQUIRES: leaf_hash is LeafHash of that entry.
Status AddLeaf(lmdb::Txn& txn, const AuditDbs& dbs, keys::MerkleFrontier& frontier,
               const keys::Hash& leaf_hash) {
  const uint64_t index = frontier.Size();
  const std::vector<keys::Hash>& left = frontier.Subtrees();
  keys::Hash node = leaf_hash;
  size_t k = left.size();
  unsigned level = 0;
  while (true) {
    uint64_t pos = StoredNodeIndex(level, index >> level);
    REFBUS_RETURN_IF_ERROR(txn.Put(dbs.tree, lmdb::U64Key(pos), EncodeNode(pos, node), MDB_APPEND));
    // The leaf completes one more subtree for each trailing one bit of its index.
    if (((index >> level) & 1) == 0) break;
    node = keys::NodeHash(left[--k], node);
    ++level;
  }
  frontier.Append(leaf_hash);
  // The frontier merged the same subtrees: its last one is the largest node just stored.
  if (frontier.Subtrees().back() != node) std::abort();
  return Status::Ok();
}

}  // namespace

uint64_t StoredNodeIndex(unsigned level, uint64_t n) {
  // Nodes completed before leaf n * 2^level arrives, plus the subtree's own nodes less one.
  uint64_t start = n << level;
  return 2 * start - static_cast<uint64_t>(std::popcount(start)) + (uint64_t{2} << level) - 2;
}

uint64_t StoredNodeCount(uint64_t size) {
  return 2 * size - static_cast<uint64_t>(std::popcount(size));
}

Bytes EncodeNode(uint64_t node_index, const keys::Hash& hash) {
  Bytes out(hash.begin(), hash.end());
  auto check = NodeCheck(node_index, hash);
  out.insert(out.end(), check.begin(), check.end());
  return out;
}

Result<keys::Hash> DecodeNode(ByteView stored, uint64_t node_index) {
  if (stored.size() != kNodeBytes) {
    return Malformed("audit tree node " + std::to_string(node_index) + " has " +
                     std::to_string(stored.size()) + " bytes, not " + std::to_string(kNodeBytes));
  }
  keys::Hash h;
  std::copy_n(stored.begin(), keys::kMerkleHashBytes, h.begin());
  auto check = NodeCheck(node_index, h);
  if (!std::equal(check.begin(), check.end(), stored.begin() + keys::kMerkleHashBytes)) {
    return Malformed("audit tree node " + std::to_string(node_index) +
                     " is damaged (checksum mismatch)");
  }
  return h;
}

// ---- AuditWriter ---------------------------------------------------------------------

Result<AuditWriter> AuditWriter::Begin(lmdb::Txn& txn, const AuditDbs& dbs) {
  AuditWriter w(txn, dbs);
  REFBUS_ASSIGN_OR_RETURN(w.frontier_, LoadFrontier(txn, dbs));
  return w;
}

Status AuditWriter::Append(ByteView entry) {
  const uint64_t index = frontier_.Size();
  // Hashed before the put: a view into the store would not survive it.
  keys::Hash leaf = keys::LeafHash(entry);
  REFBUS_RETURN_IF_ERROR(txn_->Put(dbs_.entries, lmdb::U64Key(index), entry, MDB_APPEND));
  return AddLeaf(*txn_, dbs_, frontier_, leaf);
}

Status AuditWriter::Finish() {
  REFBUS_RETURN_IF_ERROR(txn_->Put(dbs_.meta, AsBytes(kFrontierKey), frontier_.Serialize()));
  return txn_->Put(dbs_.meta, AsBytes(kSizeKey), lmdb::U64Key(frontier_.Size()));
}

// ---- Reading -------------------------------------------------------------------------

Result<keys::Hash> StoredTreeReader::SubtreeHash(uint64_t start, unsigned level) const {
  if (level >= keys::kMaxTreeHeight || start % (uint64_t{1} << level) != 0) {
    return InvalidArgument("no perfect subtree at leaf " + std::to_string(start) + " level " +
                           std::to_string(level));
  }
  const uint64_t len = uint64_t{1} << level;
  if (len > size_ || start > size_ - len) {
    return NotFound("subtree of leaves [" + std::to_string(start) + ", " +
                    std::to_string(start + len) + ") is beyond the audit log's " +
                    std::to_string(size_) + " entries");
  }
  uint64_t pos = StoredNodeIndex(level, start >> level);
  auto v = txn_.Get(dbs_.tree, lmdb::U64Key(pos));
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) {
      return Malformed("audit tree node " + std::to_string(pos) + " is missing");
    }
    return v.status();
  }
  return DecodeNode(*v, pos);
}

Result<keys::MerkleFrontier> LoadFrontier(const lmdb::Txn& txn, const AuditDbs& dbs) {
  REFBUS_ASSIGN_OR_RETURN(uint64_t size, ReadSize(txn, dbs));
  auto stored = txn.Get(dbs.meta, AsBytes(kFrontierKey));
  if (!stored.ok()) {
    if (stored.status().code() == Status::Code::kNotFound) {
      return FailedPrecondition("the audit log holds " + std::to_string(size) +
                                " entries but no Merkle frontier is stored");
    }
    return stored.status();
  }
  auto f = keys::MerkleFrontier::Parse(*stored);
  if (!f.ok()) return f.status().WithContext("audit log");
  if (f->Size() != size) {
    return FailedPrecondition(
        "the audit log holds " + std::to_string(size) + " entries but its Merkle frontier covers " +
        std::to_string(f->Size()) + "; the store was damaged or written by another program");
  }
  return std::move(*f);
}

Result<Bytes> ReadAuditEntry(const lmdb::Txn& txn, const AuditDbs& dbs, uint64_t index) {
  auto v = txn.Get(dbs.entries, lmdb::U64Key(index));
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) {
      return NotFound("no audit entry " + std::to_string(index));
    }
    return v.status();
  }
  Bytes entry(v->begin(), v->end());
  uint64_t pos = StoredNodeIndex(0, index);
  auto node = txn.Get(dbs.tree, lmdb::U64Key(pos));
  if (!node.ok()) {
    if (node.status().code() == Status::Code::kNotFound) {
      return Malformed("audit entry " + std::to_string(index) + " has no leaf hash in the tree");
    }
    return node.status();
  }
  REFBUS_ASSIGN_OR_RETURN(keys::Hash leaf, DecodeNode(*node, pos));
  if (keys::LeafHash(entry) != leaf) {
    return Malformed("audit entry " + std::to_string(index) +
                     " is damaged: it does not match its leaf hash");
  }
  return entry;
}

Result<uint64_t> CheckAuditState(const lmdb::Txn& txn, const AuditDbs& dbs) {
  REFBUS_ASSIGN_OR_RETURN(keys::MerkleFrontier f, LoadFrontier(txn, dbs));
  const uint64_t n = f.Size();
  REFBUS_ASSIGN_OR_RETURN(uint64_t entries, txn.Count(dbs.entries));
  if (entries != n) {
    return FailedPrecondition("the audit log should hold " + std::to_string(n) +
                              " entries but its database holds " + std::to_string(entries));
  }
  REFBUS_ASSIGN_OR_RETURN(uint64_t nodes, txn.Count(dbs.tree));
  if (nodes != StoredNodeCount(n)) {
    return FailedPrecondition("the audit tree of " + std::to_string(n) + " entries should hold " +
                              std::to_string(StoredNodeCount(n)) + " nodes but holds " +
                              std::to_string(nodes));
  }
  StoredTreeReader reader(txn, dbs, n);
  uint64_t start = 0;
  size_t i = 0;
  for (unsigned level = keys::kMaxTreeHeight; level-- > 0;) {
    if ((n & (uint64_t{1} << level)) == 0) continue;
    REFBUS_ASSIGN_OR_RETURN(keys::Hash stored, reader.SubtreeHash(start, level));
    if (stored != f.Subtrees()[i]) {
      return Malformed(
          "the audit log's Merkle frontier does not match its stored tree at leaves [" +
          std::to_string(start) + ", " + std::to_string(start + (uint64_t{1} << level)) + ")");
    }
    start += uint64_t{1} << level;
    ++i;
  }
  if (n > 0) {
    auto last = ReadAuditEntry(txn, dbs, n - 1);
    if (!last.ok()) return last.status();
  }
  return n;
}

Result<uint64_t> RebuildAuditTree(lmdb::Txn& txn, const AuditDbs& dbs) {
  REFBUS_ASSIGN_OR_RETURN(uint64_t nodes, txn.Count(dbs.tree));
  if (nodes != 0) {
    return FailedPrecondition("cannot rebuild the audit tree: " + std::to_string(nodes) +
                              " nodes are already stored");
  }
  REFBUS_ASSIGN_OR_RETURN(uint64_t size, ReadSize(txn, dbs));
  keys::MerkleFrontier frontier;
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, dbs.entries));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.First());
  while (item) {
    const uint64_t index = frontier.Size();
    if (item->key.size() != 8 || lmdb::ReadU64Key(item->key) != index) {
      return Malformed("cannot rebuild the audit tree: audit entry " + std::to_string(index) +
                       " is missing");
    }
    keys::Hash leaf = keys::LeafHash(item->value);
    REFBUS_RETURN_IF_ERROR(AddLeaf(txn, dbs, frontier, leaf));
    REFBUS_ASSIGN_OR_RETURN(item, cur.Next());
  }
  if (frontier.Size() != size) {
    return FailedPrecondition("cannot rebuild the audit tree: audit_size says " +
                              std::to_string(size) + " entries but " +
                              std::to_string(frontier.Size()) + " are stored");
  }
  REFBUS_RETURN_IF_ERROR(txn.Put(dbs.meta, AsBytes(kFrontierKey), frontier.Serialize()));
  REFBUS_RETURN_IF_ERROR(txn.Put(dbs.meta, AsBytes(kSizeKey), lmdb::U64Key(size)));
  return size;
}

// ---- Checkpoints ---------------------------------------------------------------------

Result<std::string> CheckpointOrigin(std::string_view federation, std::string_view broker_id) {
  std::string origin = "refbus/" + std::string(federation) + "/" + std::string(broker_id);
  if (!keys::IsValidKeyName(origin)) {
    return InvalidArgument("checkpoint origin '" + origin +
                           "' is not a valid note key name (no spaces, '+' or control "
                           "characters; at most 255 bytes): check the federation name");
  }
  return origin;
}

Bytes EncodeCheckpointRecord(std::string_view note) {
  Bytes body;
  body.reserve(1 + note.size());
  body.push_back(kCheckpointRecordVersion);
  Append(body, AsBytes(note));
  return records::SealRecord(body);
}

Result<StoredCheckpoint> DecodeCheckpointRecord(ByteView stored, uint64_t size) {
  auto damaged = [&](std::string_view why) {
    return Malformed("stored checkpoint of size " + std::to_string(size) + " is damaged (" +
                     std::string(why) + ")");
  };
  auto opened = records::OpenSealedRecord(stored, 1);
  if (!opened.ok()) return damaged(opened.status().message());
  ByteView body = *opened;
  if (body[0] != kCheckpointRecordVersion) return damaged("unknown record version");
  StoredCheckpoint c;
  c.note = std::string(AsChars(body.subspan(1)));
  auto note = keys::ParseSignedNote(c.note);
  if (!note.ok()) return damaged(note.status().message());
  auto cp = keys::ParseCheckpointBody(note->text);
  if (!cp.ok()) return damaged(cp.status().message());
  if (cp->size != size) return damaged("its note says size " + std::to_string(cp->size));
  c.checkpoint = std::move(*cp);
  return c;
}

Result<std::optional<StoredCheckpoint>> LatestCheckpoint(const lmdb::Txn& txn,
                                                         const AuditDbs& dbs) {
  REFBUS_ASSIGN_OR_RETURN(lmdb::Cursor cur, lmdb::Cursor::Open(txn, dbs.checkpoints));
  REFBUS_ASSIGN_OR_RETURN(auto item, cur.Last());
  if (!item) return std::optional<StoredCheckpoint>();
  if (item->key.size() != 8) return Malformed("store: a checkpoint key has the wrong length");
  REFBUS_ASSIGN_OR_RETURN(StoredCheckpoint c,
                          DecodeCheckpointRecord(item->value, lmdb::ReadU64Key(item->key)));
  return std::optional<StoredCheckpoint>(std::move(c));
}

Status AddCheckpointCosignature(lmdb::Txn& txn, const AuditDbs& dbs, uint64_t size,
                                const keys::Hash& root, const keys::NoteSignature& sig) {
  const Bytes key = lmdb::U64Key(size);
  auto v = txn.Get(dbs.checkpoints, key);
  if (!v.ok()) {
    if (v.status().code() == Status::Code::kNotFound) {
      return NotFound("no checkpoint of size " + std::to_string(size) + " is stored");
    }
    return v.status();
  }
  REFBUS_ASSIGN_OR_RETURN(StoredCheckpoint c, DecodeCheckpointRecord(*v, size));
  if (c.checkpoint.root != root) {
    return FailedPrecondition("the stored checkpoint of size " + std::to_string(size) +
                              " has root " + HexEncode(c.checkpoint.root) + ", not " +
                              HexEncode(root));
  }
  REFBUS_ASSIGN_OR_RETURN(std::string note, keys::AddNoteSignature(c.note, sig));
  if (note == c.note) return Status::Ok();
  return txn.Put(dbs.checkpoints, key, EncodeCheckpointRecord(note));
}

namespace {

// CheckConsistentWithLatest, also returning the latest checkpoint.
Result<std::optional<StoredCheckpoint>> CheckAgainstLatest(const lmdb::Txn& txn,
                                                           const AuditDbs& dbs,
                                                           const std::string& origin, uint64_t size,
                                                           const keys::Hash& root) {
  const std::string refusing = "refusing to sign checkpoint " + Describe(size, root) + ": ";
  auto latest = LatestCheckpoint(txn, dbs);
  if (!latest.ok()) {
    return FailedPrecondition(refusing + "the latest signed checkpoint cannot be read (" +
                              latest.status().message() + ")");
  }
  if (!*latest) return latest;
  const keys::Checkpoint& old = (*latest)->checkpoint;
  const std::string earlier = "the signed checkpoint " + Describe(old.size, old.root);
  if (old.origin != origin) {
    return FailedPrecondition(refusing + earlier + " is of log '" + old.origin + "', not '" +
                              origin + "'");
  }
  if (old.size > size) {
    return FailedPrecondition(refusing + earlier + " is larger: the log would have shrunk");
  }
  StoredTreeReader reader(txn, dbs, size);
  auto proof = keys::ConsistencyProof(reader, old.size, size);
  if (!proof.ok()) {
    return FailedPrecondition(refusing + "no consistency proof from " + earlier + " (" +
                              proof.status().message() + ")");
  }
  Status s = keys::VerifyConsistency(old.size, size, old.root, root, *proof);
  if (!s.ok()) {
    return FailedPrecondition(refusing + "it is inconsistent with " + earlier + " (" + s.message() +
                              ")");
  }
  return latest;
}

}  // namespace

Status CheckConsistentWithLatest(const lmdb::Txn& txn, const AuditDbs& dbs,
                                 const std::string& origin, uint64_t size, const keys::Hash& root) {
  auto r = CheckAgainstLatest(txn, dbs, origin, size, root);
  return r.ok() ? Status::Ok() : r.status();
}

Result<CheckpointOutcome> SignCheckpointInTxn(lmdb::Txn& txn, const AuditDbs& dbs,
                                              const std::string& origin,
                                              const keys::Identity& log_key) {
  if (!txn.is_write()) return Internal("checkpoints are signed in a write transaction");
  REFBUS_ASSIGN_OR_RETURN(keys::MerkleFrontier f, LoadFrontier(txn, dbs));
  const uint64_t size = f.Size();
  const keys::Hash root = f.Root();
  // The frontier and the stored nodes must tell the same story: proofs are served from
  // the nodes, the root from the frontier.
  StoredTreeReader reader(txn, dbs, size);
  auto from_nodes = keys::RootAt(reader, size);
  if (!from_nodes.ok() || *from_nodes != root) {
    return FailedPrecondition(
        "refusing to sign checkpoint " + Describe(size, root) +
        ": the stored tree does not have this root (" +
        (from_nodes.ok() ? HexEncode(*from_nodes) : from_nodes.status().message()) + ")");
  }
  REFBUS_ASSIGN_OR_RETURN(auto latest, CheckAgainstLatest(txn, dbs, origin, size, root));
  CheckpointOutcome out;
  if (latest && latest->checkpoint.size == size) {
    out.stored = std::move(*latest);  // same size, and (checked) the same root
    return out;
  }
  keys::Checkpoint c;
  c.origin = origin;
  c.size = size;
  c.root = root;
  REFBUS_ASSIGN_OR_RETURN(std::string note, keys::SignCheckpoint(c, log_key));
  // Sign, then verify before storing: a fault or a wrong key never reaches the store.
  REFBUS_ASSIGN_OR_RETURN(auto verifier,
                          keys::NoteVerifier::Create(origin, keys::NoteKeyType::kEd25519,
                                                     log_key.signing_public_key()));
  auto opened = keys::OpenCheckpoint(note, origin, verifier);
  if (!opened.ok()) return opened.status().WithContext("a checkpoint just signed does not verify");
  REFBUS_RETURN_IF_ERROR(
      txn.Put(dbs.checkpoints, lmdb::U64Key(size), EncodeCheckpointRecord(note), MDB_NOOVERWRITE));
  out.stored.checkpoint = std::move(c);
  out.stored.note = std::move(note);
  out.signed_now = true;
  return out;
}

}  // namespace refbus::broker
