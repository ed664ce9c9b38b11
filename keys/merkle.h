// Merkle trees over the audit log: RFC 9162 section 2.1 (the same tree as RFC 6962).
//
// Hashes (SHA-256, core/hash.h):
//   empty tree  MTH({})   = SHA-256()                       (EmptyRoot)
//   leaf        MTH({d})  = SHA-256(0x00 || d)              (LeafHash; d = stored entry bytes)
//   node        MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])),
//               k = the largest power of two smaller than n (NodeHash)
//
// Three ways to hold a tree:
//   - MerkleFrontier: the roots of the perfect subtrees along the right edge (at most 64
//     hashes). Enough to append and to compute the root; serializable, so a broker can
//     persist it next to the log and restart without replaying the log.
//   - TreeReader: an interface that yields the hash of any perfect subtree
//     [start, start + 2^level). Proofs are built from it, so a store can serve them from
//     cached interior nodes. LeafHashReader computes subtree hashes from leaf hashes alone
//     (cost proportional to the subtree's size); MemoryTree keeps every level in memory.
//   - Proof verification needs no tree: VerifyInclusion and VerifyConsistency follow
//     RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step.
//
// Tree sizes and leaf indexes are uint64_t. Proofs are lists of Hash, in the RFC's order.
//
// Thread safety: free functions are thread-safe. MerkleFrontier and MemoryTree are values
// with no internal locking: const methods may run concurrently, mutations need external
// synchronization. A TreeReader's thread safety is that of its implementation.
#ifndef REFBUS_KEYS_MERKLE_H_
#define REFBUS_KEYS_MERKLE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"

namespace refbus::keys {

inline constexpr size_t kMerkleHashBytes = 32;
using Hash = std::array<uint8_t, kMerkleHashBytes>;

// Deepest possible tree: 2^64 - 1 leaves. Bounds proof lengths and the frontier.
inline constexpr unsigned kMaxTreeHeight = 64;

Hash EmptyRoot();
Hash LeafHash(ByteView entry);
Hash NodeHash(const Hash& left, const Hash& right);

// ---- Frontier ------------------------------------------------------------------------

class MerkleFrontier {
 public:
  MerkleFrontier() = default;  // the empty tree

  // Adds the next leaf (by its LeafHash). REQUIRES: Size() < 2^64 - 1.
  void Append(const Hash& leaf_hash);

  uint64_t Size() const { return size_; }
  Hash Root() const;
  // Perfect-subtree roots, left (largest) to right; one per set bit of Size().
  const std::vector<Hash>& Subtrees() const { return subtrees_; }

  // Storage form: version (1) || u64be size || the subtree roots || SHA-256 checksum of
  // "refbus/v1/merkle-frontier" || 0x00 || the bytes before it. The checksum catches
  // damage (LMDB has no page checksums); it is no defence against someone who can write
  // the store, which comparing Root() with a signed checkpoint is.
  Bytes Serialize() const;
  // Refuses anything that Serialize could not have produced, with a message saying what.
  static Result<MerkleFrontier> Parse(ByteView bytes);

 private:
  uint64_t size_ = 0;
  std::vector<Hash> subtrees_;
};

// ---- Reading trees -------------------------------------------------------------------

class TreeReader {
 public:
  virtual ~TreeReader() = default;
  // The hash of the perfect subtree of leaves [start, start + 2^level).
  // REQUIRES: level < 64 and start is a multiple of 2^level. Returns an error (NotFound
  // for leaves the reader does not have) rather than aborting: readers may sit on a store.
  virtual Result<Hash> SubtreeHash(uint64_t start, unsigned level) const = 0;
};

// A TreeReader over leaf hashes given by a function (for example one that reads the stored
// entries and hashes them). Interior nodes are recomputed on every call.
class LeafHashReader : public TreeReader {
 public:
  using LeafFn = std::function<Result<Hash>(uint64_t index)>;
  explicit LeafHashReader(LeafFn leaf_hash_at) : leaf_hash_at_(std::move(leaf_hash_at)) {}
  Result<Hash> SubtreeHash(uint64_t start, unsigned level) const override;

 private:
  LeafFn leaf_hash_at_;
};

// The whole tree in memory: level 0 holds the leaf hashes, level k the hashes of the
// complete perfect subtrees of 2^k leaves. About 64 bytes per leaf.
class MemoryTree : public TreeReader {
 public:
  MemoryTree() = default;

  void Append(const Hash& leaf_hash);
  void AppendEntry(ByteView entry) { Append(LeafHash(entry)); }
  // Room for n leaves without reallocating (bulk loads).
  void Reserve(uint64_t n);

  uint64_t Size() const { return levels_.empty() ? 0 : levels_[0].size(); }
  Hash Root() const;
  // REQUIRES: index < Size().
  const Hash& LeafHashAt(uint64_t index) const { return levels_[0][index]; }

  Result<Hash> SubtreeHash(uint64_t start, unsigned level) const override;

 private:
  std::vector<std::vector<Hash>> levels_;
};

// ---- Proofs --------------------------------------------------------------------------

// The root of the first size leaves (EmptyRoot() for 0).
Result<Hash> RootAt(const TreeReader& reader, uint64_t size);

// RFC 9162 2.1.3.1: the audit path of leaf index in the tree of the first size leaves.
// InvalidArgument unless index < size.
Result<std::vector<Hash>> InclusionProof(const TreeReader& reader, uint64_t index, uint64_t size);

// RFC 9162 2.1.4.1: the proof that the tree of old_size leaves is a prefix of the tree of
// new_size leaves. Empty when old_size is 0 or equal to new_size. InvalidArgument when
// old_size > new_size.
Result<std::vector<Hash>> ConsistencyProof(const TreeReader& reader, uint64_t old_size,
                                           uint64_t new_size);

// RFC 9162 2.1.3.2. Ok only if proof shows leaf_hash at index in the tree of size leaves
// whose root is root; otherwise Unauthenticated (or InvalidArgument for impossible
// index/size) with a message saying which check failed.
[[nodiscard]] Status VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                                     std::span<const Hash> proof, const Hash& root);

// RFC 9162 2.1.4.2, plus the cases the RFC leaves to the caller: old_size == new_size
// needs an empty proof and equal roots; old_size == 0 needs an empty proof and
// old_root == EmptyRoot(); old_size > new_size is refused.
[[nodiscard]] Status VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                                       const Hash& new_root, std::span<const Hash> proof);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_MERKLE_H_
