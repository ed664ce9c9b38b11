#include "keys/merkle.h"

#include <bit>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/hash.h"

namespace refbus::keys {
namespace {

constexpr uint8_t kLeafPrefix = 0x00;
constexpr uint8_t kNodePrefix = 0x01;
constexpr uint8_t kFrontierVersion = 1;
constexpr std::string_view kFrontierChecksumLabel = "refbus/v1/merkle-frontier";
constexpr size_t kFrontierHeaderBytes = 1 + 8;

Sha256Hasher& ThreadHasher() {
  thread_local Sha256Hasher hasher;
  return hasher;
}

uint64_t Pow2(unsigned level) { return uint64_t{1} << level; }

// The largest power of two strictly smaller than n. REQUIRES: n > 1.
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

std::string Range(uint64_t start, uint64_t end) {
  return "[" + std::to_string(start) + ", " + std::to_string(end) + ")";
}

// MTH(D[start : start + len]) for a range whose start is a multiple of the largest power
// of two not above len, which every range met by the RFC's recursions is. Such a range is
// a run of perfect subtrees of decreasing size, folded from the right.
Result<Hash> RangeHash(const TreeReader& reader, uint64_t start, uint64_t len) {
  if (len == 0) return EmptyRoot();
  if (start % std::bit_floor(len) != 0) {
    return Internal("Merkle range " + Range(start, start + len) + " is not aligned");
  }
  Hash parts[kMaxTreeHeight];
  size_t n = 0;
  uint64_t pos = start;
  for (unsigned level = kMaxTreeHeight; level-- > 0;) {
    if ((len & Pow2(level)) == 0) continue;
    REFBUS_ASSIGN_OR_RETURN(parts[n], reader.SubtreeHash(pos, level));
    ++n;
    pos += Pow2(level);
  }
  Hash h = parts[n - 1];
  for (size_t i = n - 1; i-- > 0;) h = NodeHash(parts[i], h);
  return h;
}

// RFC 9162 2.1.3.1 PATH(m, D[start : start + n]).
Status Path(const TreeReader& reader, uint64_t m, uint64_t start, uint64_t n,
            std::vector<Hash>& out) {
  if (n <= 1) return Status::Ok();
  uint64_t k = SplitPoint(n);
  if (m < k) {
    REFBUS_RETURN_IF_ERROR(Path(reader, m, start, k, out));
    REFBUS_ASSIGN_OR_RETURN(Hash right, RangeHash(reader, start + k, n - k));
    out.push_back(right);
  } else {
    REFBUS_RETURN_IF_ERROR(Path(reader, m - k, start + k, n - k, out));
    REFBUS_ASSIGN_OR_RETURN(Hash left, RangeHash(reader, start, k));
    out.push_back(left);
  }
  return Status::Ok();
}

// RFC 9162 2.1.4.1 SUBPROOF(m, D[start : start + n], b).
Status Subproof(const TreeReader& reader, uint64_t m, uint64_t start, uint64_t n, bool complete,
                std::vector<Hash>& out) {
  if (m == n) {
    if (!complete) {
      REFBUS_ASSIGN_OR_RETURN(Hash h, RangeHash(reader, start, n));
      out.push_back(h);
    }
    return Status::Ok();
  }
  uint64_t k = SplitPoint(n);
  if (m <= k) {
    REFBUS_RETURN_IF_ERROR(Subproof(reader, m, start, k, complete, out));
    REFBUS_ASSIGN_OR_RETURN(Hash right, RangeHash(reader, start + k, n - k));
    out.push_back(right);
  } else {
    REFBUS_RETURN_IF_ERROR(Subproof(reader, m - k, start + k, n - k, false, out));
    REFBUS_ASSIGN_OR_RETURN(Hash left, RangeHash(reader, start, k));
    out.push_back(left);
  }
  return Status::Ok();
}

Hash FrontierChecksum(ByteView body) {
  Sha256Hasher h;
  h.Update(AsBytes(kFrontierChecksumLabel));
  h.Update(uint8_t{0});
  h.Update(body);
  return h.Finish();
}

}  // namespace

Hash EmptyRoot() { return Sha256Array({}); }

Hash LeafHash(ByteView entry) {
  Sha256Hasher& h = ThreadHasher();
  h.Update(kLeafPrefix);
  h.Update(entry);
  return h.Finish();
}

Hash NodeHash(const Hash& left, const Hash& right) {
  // One 65-byte update: cheaper than three small ones for the hash called most often.
  uint8_t in[1 + 2 * kMerkleHashBytes];
  in[0] = kNodePrefix;
  std::copy(left.begin(), left.end(), in + 1);
  std::copy(right.begin(), right.end(), in + 1 + kMerkleHashBytes);
  Sha256Hasher& h = ThreadHasher();
  h.Update(ByteView(in, sizeof(in)));
  return h.Finish();
}

// ---- MerkleFrontier ------------------------------------------------------------------

void MerkleFrontier::Append(const Hash& leaf_hash) {
  if (size_ == UINT64_MAX) std::abort();  // 2^64 - 1 leaves: a tree cannot grow further
  subtrees_.push_back(leaf_hash);
  // Each trailing one bit of the old size is a subtree of the new leaf's size: merge.
  for (uint64_t s = size_; (s & 1) != 0; s >>= 1) {
    Hash right = subtrees_.back();
    subtrees_.pop_back();
    subtrees_.back() = NodeHash(subtrees_.back(), right);
  }
  ++size_;
}

Hash MerkleFrontier::Root() const {
  if (subtrees_.empty()) return EmptyRoot();
  Hash h = subtrees_.back();
  for (size_t i = subtrees_.size() - 1; i-- > 0;) h = NodeHash(subtrees_[i], h);
  return h;
}

Bytes MerkleFrontier::Serialize() const {
  Bytes out;
  out.reserve(kFrontierHeaderBytes + (subtrees_.size() + 1) * kMerkleHashBytes);
  out.push_back(kFrontierVersion);
  AppendU64BigEndian(out, size_);
  for (const Hash& h : subtrees_) refbus::Append(out, h);
  Hash sum = FrontierChecksum(out);
  refbus::Append(out, sum);
  return out;
}

Result<MerkleFrontier> MerkleFrontier::Parse(ByteView bytes) {
  constexpr size_t kMaxBytes = kFrontierHeaderBytes + (kMaxTreeHeight + 1) * kMerkleHashBytes;
  if (bytes.size() < kFrontierHeaderBytes + kMerkleHashBytes || bytes.size() > kMaxBytes) {
    return Malformed("Merkle frontier has " + std::to_string(bytes.size()) +
                     " bytes, outside the possible range");
  }
  if (bytes[0] != kFrontierVersion) {
    return Malformed("Merkle frontier has format version " + std::to_string(bytes[0]) +
                     ", this build reads version 1");
  }
  uint64_t size = 0;
  for (size_t i = 1; i < kFrontierHeaderBytes; ++i) size = (size << 8) | bytes[i];
  const size_t count = static_cast<size_t>(std::popcount(size));
  if (bytes.size() != kFrontierHeaderBytes + (count + 1) * kMerkleHashBytes) {
    return Malformed("Merkle frontier for " + std::to_string(size) + " leaves must hold " +
                     std::to_string(count) + " subtree hashes, but its length does not match");
  }
  ByteView body = bytes.first(bytes.size() - kMerkleHashBytes);
  Hash sum = FrontierChecksum(body);
  if (!std::equal(sum.begin(), sum.end(), bytes.end() - kMerkleHashBytes)) {
    return Malformed("Merkle frontier checksum does not match: the stored value is damaged");
  }
  MerkleFrontier f;
  f.size_ = size;
  f.subtrees_.resize(count);
  for (size_t i = 0; i < count; ++i) {
    auto at =
        bytes.begin() + static_cast<std::ptrdiff_t>(kFrontierHeaderBytes + i * kMerkleHashBytes);
    std::copy(at, at + kMerkleHashBytes, f.subtrees_[i].begin());
  }
  return f;
}

// ---- Readers -------------------------------------------------------------------------

Result<Hash> LeafHashReader::SubtreeHash(uint64_t start, unsigned level) const {
  if (level >= kMaxTreeHeight || start % Pow2(level) != 0 ||
      start > UINT64_MAX - (Pow2(level) - 1)) {
    return InvalidArgument("no perfect subtree at leaf " + std::to_string(start) + " level " +
                           std::to_string(level));
  }
  // A frontier over just this subtree's leaves: at the end it holds exactly one hash.
  MerkleFrontier f;
  for (uint64_t i = 0; i < Pow2(level); ++i) {
    REFBUS_ASSIGN_OR_RETURN(Hash leaf, leaf_hash_at_(start + i));
    f.Append(leaf);
  }
  return f.Subtrees().front();
}

void MemoryTree::Append(const Hash& leaf_hash) {
  if (levels_.empty()) levels_.emplace_back();
  levels_[0].push_back(leaf_hash);
  // Complete the parent of every perfect subtree this leaf completes.
  for (size_t level = 0; levels_[level].size() % 2 == 0; ++level) {
    if (level + 1 == levels_.size()) levels_.emplace_back();
    const std::vector<Hash>& row = levels_[level];
    levels_[level + 1].push_back(NodeHash(row[row.size() - 2], row.back()));
  }
}

void MemoryTree::Reserve(uint64_t n) {
  if (levels_.empty()) levels_.emplace_back();
  levels_[0].reserve(static_cast<size_t>(n));
  for (size_t level = 1; level < kMaxTreeHeight && (n >> level) > 0; ++level) {
    if (level == levels_.size()) levels_.emplace_back();
    levels_[level].reserve(static_cast<size_t>(n >> level));
  }
}

Hash MemoryTree::Root() const {
  auto r = RootAt(*this, Size());
  if (!r.ok()) std::abort();  // every subtree of a MemoryTree's own size is in memory
  return *r;
}

Result<Hash> MemoryTree::SubtreeHash(uint64_t start, unsigned level) const {
  if (level >= kMaxTreeHeight || start % Pow2(level) != 0) {
    return InvalidArgument("no perfect subtree at leaf " + std::to_string(start) + " level " +
                           std::to_string(level));
  }
  uint64_t pos = start >> level;
  if (level >= levels_.size() || pos >= levels_[level].size()) {
    return NotFound("subtree " + Range(start, start + Pow2(level)) + " is beyond the tree's " +
                    std::to_string(Size()) + " leaves");
  }
  return levels_[level][static_cast<size_t>(pos)];
}

// ---- Proof generation ----------------------------------------------------------------

Result<Hash> RootAt(const TreeReader& reader, uint64_t size) { return RangeHash(reader, 0, size); }

Result<std::vector<Hash>> InclusionProof(const TreeReader& reader, uint64_t index, uint64_t size) {
  if (index >= size) {
    return InvalidArgument("no inclusion proof for leaf " + std::to_string(index) +
                           " in a tree of " + std::to_string(size) + " leaves");
  }
  std::vector<Hash> proof;
  REFBUS_RETURN_IF_ERROR(Path(reader, index, 0, size, proof));
  return proof;
}

Result<std::vector<Hash>> ConsistencyProof(const TreeReader& reader, uint64_t old_size,
                                           uint64_t new_size) {
  if (old_size > new_size) {
    return InvalidArgument("no consistency proof from " + std::to_string(old_size) +
                           " leaves to fewer (" + std::to_string(new_size) + ")");
  }
  std::vector<Hash> proof;
  if (old_size == 0 || old_size == new_size) return proof;
  REFBUS_RETURN_IF_ERROR(Subproof(reader, old_size, 0, new_size, true, proof));
  return proof;
}

// ---- Verification: RFC 9162 2.1.3.2 and 2.1.4.2, step by step --------------------------

Status VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                       std::span<const Hash> proof, const Hash& root) {
  // 1. leaf_index must be below tree_size.
  if (index >= size) {
    return InvalidArgument("inclusion proof for leaf " + std::to_string(index) +
                           " cannot hold in a tree of " + std::to_string(size) + " leaves");
  }
  if (proof.size() > kMaxTreeHeight) {
    return Unauthenticated("inclusion proof has " + std::to_string(proof.size()) +
                           " hashes; no tree has more than 64 levels");
  }
  // 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf_hash;
  // 4. For each p in the path:
  for (const Hash& p : proof) {
    // a. The path is longer than the tree is deep.
    if (sn == 0) {
      return Unauthenticated("inclusion proof for leaf " + std::to_string(index) + " of " +
                             std::to_string(size) + " has too many hashes");
    }
    // b. p is a left sibling (fn is a right child, or the last node of its level).
    if ((fn & 1) != 0 || fn == sn) {
      r = NodeHash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = NodeHash(r, p);
    }
    // c.
    fn >>= 1;
    sn >>= 1;
  }
  // 5.
  if (sn != 0) {
    return Unauthenticated("inclusion proof for leaf " + std::to_string(index) + " of " +
                           std::to_string(size) + " has too few hashes");
  }
  if (r != root) {
    return Unauthenticated("inclusion proof for leaf " + std::to_string(index) + " of " +
                           std::to_string(size) + " leads to a different root");
  }
  return Status::Ok();
}

Status VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                         const Hash& new_root, std::span<const Hash> proof) {
  const std::string sizes =
      "from " + std::to_string(old_size) + " to " + std::to_string(new_size) + " leaves";
  if (old_size > new_size) {
    return Rollback("consistency " + sizes + ": the new tree is smaller than the old one");
  }
  // The empty tree has exactly one root, also when both sizes are 0 (found by audit_fuzz).
  if (old_size == 0 && old_root != EmptyRoot()) {
    return Unauthenticated("consistency " + sizes + ": old root is not the empty tree's root");
  }
  if (old_size == new_size) {
    if (!proof.empty()) return Unauthenticated("consistency " + sizes + ": proof must be empty");
    if (old_root != new_root) {
      return Unauthenticated("consistency " + sizes + ": two different roots for one size");
    }
    return Status::Ok();
  }
  if (old_size == 0) {
    if (!proof.empty()) return Unauthenticated("consistency " + sizes + ": proof must be empty");
    if (old_root != EmptyRoot()) {
      return Unauthenticated("consistency " + sizes + ": old root is not the empty tree's root");
    }
    return Status::Ok();
  }
  // 1. An empty path proves nothing for 0 < first < second.
  if (proof.empty()) return Unauthenticated("consistency " + sizes + ": proof is empty");
  if (proof.size() > 2 * kMaxTreeHeight) {
    return Unauthenticated("consistency " + sizes + ": proof has " + std::to_string(proof.size()) +
                           " hashes, more than any tree needs");
  }
  // 2. If first is a power of two, the old root is itself the first node of the path.
  const bool prepend = std::has_single_bit(old_size);
  auto at = [&](size_t i) -> const Hash& {
    return prepend ? (i == 0 ? old_root : proof[i - 1]) : proof[i];
  };
  const size_t path_len = proof.size() + (prepend ? 1 : 0);
  // 3.
  uint64_t fn = old_size - 1;
  uint64_t sn = new_size - 1;
  // 4.
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  // 5.
  Hash fr = at(0);
  Hash sr = at(0);
  // 6.
  for (size_t i = 1; i < path_len; ++i) {
    const Hash& c = at(i);
    // a.
    if (sn == 0) return Unauthenticated("consistency " + sizes + ": proof has too many hashes");
    // b.
    if ((fn & 1) != 0 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = NodeHash(sr, c);
    }
    // c.
    fn >>= 1;
    sn >>= 1;
  }
  // 7.
  if (sn != 0) return Unauthenticated("consistency " + sizes + ": proof has too few hashes");
  if (fr != old_root) {
    return Unauthenticated("consistency " + sizes + ": proof does not lead to the old root");
  }
  if (sr != new_root) {
    return Unauthenticated("consistency " + sizes + ": proof does not lead to the new root");
  }
  return Status::Ok();
}

}  // namespace refbus::keys
