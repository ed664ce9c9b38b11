// Merkle tree, frontier, proofs (keys/merkle.h).
//
// Known answers are the RFC 6962 test vectors as published in
// github.com/transparency-dev/merkle: proof/verify_test.go (leaves, roots for sizes 1..8,
// inclusion and consistency proofs) and rfc6962/rfc6962_test.go (empty-tree and leaf
// hashes). Everything else is checked by properties over all small trees.
#include "keys/merkle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/hash.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
namespace {

using test::HasCode;
using test::IsOk;

Hash H(std::string_view hex) {
  Bytes b = test::Must(HexDecode(hex));
  if (b.size() != kMerkleHashBytes) throw std::runtime_error("test hash is not 32 bytes");
  Hash h;
  std::copy(b.begin(), b.end(), h.begin());
  return h;
}

// transparency-dev/merkle proof/verify_test.go: `leaves`.
std::vector<Bytes> VectorLeaves() {
  std::vector<Bytes> out;
  for (const char* hex : {"", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                          "606162636465666768696a6b6c6d6e6f"}) {
    out.push_back(test::Must(HexDecode(hex)));
  }
  return out;
}

// transparency-dev/merkle proof/verify_test.go: `roots`, for sizes 1..8.
std::vector<Hash> VectorRoots() {
  return {H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
          H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
          H("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
          H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
          H("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
          H("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
          H("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
          H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")};
}

MemoryTree VectorTree() {
  MemoryTree t;
  for (const Bytes& leaf : VectorLeaves()) t.AppendEntry(leaf);
  return t;
}

// A tree of n distinct leaves.
MemoryTree TreeOf(uint64_t n) {
  MemoryTree t;
  for (uint64_t i = 0; i < n; ++i) t.AppendEntry(AsBytes("entry " + std::to_string(i)));
  return t;
}

std::vector<Hash> Roots(const MemoryTree& t) {
  std::vector<Hash> roots;
  for (uint64_t s = 0; s <= t.Size(); ++s) roots.push_back(test::Must(RootAt(t, s)));
  return roots;
}

Hash FlipBit(Hash h, size_t bit) {
  h[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  return h;
}

// ---- Known answers -------------------------------------------------------------------

TEST(MerkleTest, HashesMatchRfc6962Vectors) {
  // rfc6962/rfc6962_test.go: "RFC6962 Empty", "RFC6962 Empty Leaf", "RFC6962 Leaf".
  EXPECT_EQ(EmptyRoot(), H("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  EXPECT_EQ(LeafHash({}), H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"));
  EXPECT_EQ(LeafHash(AsBytes("L123456")),
            H("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"));
  // Node hashing is domain-separated from leaf hashing and ordered.
  Hash a = LeafHash(AsBytes("Hello"));
  Hash b = LeafHash(AsBytes("World"));
  Bytes concat(a.begin(), a.end());
  concat.insert(concat.end(), b.begin(), b.end());
  EXPECT_NE(NodeHash(a, b), LeafHash(concat));
  EXPECT_NE(NodeHash(a, b), NodeHash(b, a));
  Bytes node_input{0x01};
  node_input.insert(node_input.end(), concat.begin(), concat.end());
  const Hash node = NodeHash(a, b);
  EXPECT_EQ(Sha256(node_input), Bytes(node.begin(), node.end()));
}

TEST(MerkleTest, RootsMatchRfc6962Vectors) {
  const std::vector<Bytes> leaves = VectorLeaves();
  const std::vector<Hash> roots = VectorRoots();
  MemoryTree tree;
  MerkleFrontier frontier;
  for (size_t i = 0; i < leaves.size(); ++i) {
    tree.AppendEntry(leaves[i]);
    frontier.Append(LeafHash(leaves[i]));
    EXPECT_EQ(tree.Root(), roots[i]) << "size " << i + 1;
    EXPECT_EQ(frontier.Root(), roots[i]) << "size " << i + 1;
    EXPECT_EQ(test::Must(RootAt(tree, i + 1)), roots[i]) << "size " << i + 1;
  }
  EXPECT_EQ(test::Must(RootAt(tree, 0)), EmptyRoot());
  EXPECT_EQ(MemoryTree().Root(), EmptyRoot());
  EXPECT_EQ(MerkleFrontier().Root(), EmptyRoot());
}

struct InclusionVector {
  uint64_t index;
  uint64_t size;
  std::vector<Hash> proof;
};

// proof/verify_test.go `inclusionProofs` (its leaf numbers are 1-based; these are indexes).
std::vector<InclusionVector> InclusionVectors() {
  return {
      {0, 1, {}},
      {0,
       8,
       {H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")}},
      {5,
       8,
       {H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")}},
      {2, 3, {H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")}},
      {1,
       5,
       {H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")}},
  };
}

struct ConsistencyVector {
  uint64_t old_size;
  uint64_t new_size;
  std::vector<Hash> proof;
};

// proof/verify_test.go `consistencyProofs`.
std::vector<ConsistencyVector> ConsistencyVectors() {
  return {
      {1, 1, {}},
      {1,
       8,
       {H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")}},
      {6,
       8,
       {H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")}},
      {2,
       5,
       {H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")}},
      {6,
       7,
       {H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")}},
  };
}

TEST(MerkleTest, InclusionProofsMatchVectorsAndVerify) {
  const MemoryTree tree = VectorTree();
  const std::vector<Hash> roots = VectorRoots();
  const Hash some_hash = H("abacaba000000000000000000000000000000000000000000060061e00123456");
  for (const InclusionVector& v : InclusionVectors()) {
    SCOPED_TRACE("index " + std::to_string(v.index) + " size " + std::to_string(v.size));
    const Hash leaf = tree.LeafHashAt(v.index);
    const Hash root = roots[v.size - 1];
    EXPECT_EQ(test::Must(InclusionProof(tree, v.index, v.size)), v.proof);
    EXPECT_TRUE(IsOk(VerifyInclusion(leaf, v.index, v.size, v.proof, root)));

    // The corruptions of verify_test.go's corruptInclusionProof: each must fail.
    EXPECT_FALSE(VerifyInclusion(leaf, v.index - 1, v.size, v.proof, root).ok());
    EXPECT_FALSE(VerifyInclusion(leaf, v.index + 1, v.size, v.proof, root).ok());
    EXPECT_FALSE(VerifyInclusion(leaf, v.index ^ 2, v.size, v.proof, root).ok());
    EXPECT_FALSE(VerifyInclusion(leaf, v.index, v.size * 2, v.proof, root).ok());
    EXPECT_FALSE(VerifyInclusion(leaf, v.index, v.size / 2, v.proof, root).ok());
    EXPECT_FALSE(
        VerifyInclusion(LeafHash(AsBytes("WrongLeaf")), v.index, v.size, v.proof, root).ok());
    EXPECT_FALSE(VerifyInclusion(leaf, v.index, v.size, v.proof, EmptyRoot()).ok());
    EXPECT_FALSE(VerifyInclusion(leaf, v.index, v.size, v.proof, some_hash).ok());
    std::vector<Hash> longer = v.proof;
    longer.push_back(root);
    EXPECT_FALSE(VerifyInclusion(leaf, v.index, v.size, longer, root).ok());
    longer = v.proof;
    longer.insert(longer.begin(), root);
    EXPECT_FALSE(VerifyInclusion(leaf, v.index, v.size, longer, root).ok());
    for (size_t i = 0; i < v.proof.size(); ++i) {
      std::vector<Hash> bad = v.proof;
      bad[i][0] ^= 8;
      EXPECT_FALSE(VerifyInclusion(leaf, v.index, v.size, bad, root).ok()) << "element " << i;
    }
    if (!v.proof.empty()) {
      std::vector<Hash> shorter(v.proof.begin(), v.proof.end() - 1);
      EXPECT_FALSE(VerifyInclusion(leaf, v.index, v.size, shorter, root).ok());
    }
    if (v.proof.size() > 1) {
      std::vector<Hash> inserted = v.proof;
      inserted.insert(inserted.begin() + 1, some_hash);
      EXPECT_FALSE(VerifyInclusion(leaf, v.index, v.size, inserted, root).ok());
    }
  }
}

TEST(MerkleTest, ConsistencyProofsMatchVectorsAndVerify) {
  const MemoryTree tree = VectorTree();
  const std::vector<Hash> roots = VectorRoots();
  for (const ConsistencyVector& v : ConsistencyVectors()) {
    SCOPED_TRACE("from " + std::to_string(v.old_size) + " to " + std::to_string(v.new_size));
    const Hash old_root = roots[v.old_size - 1];
    const Hash new_root = roots[v.new_size - 1];
    EXPECT_EQ(test::Must(ConsistencyProof(tree, v.old_size, v.new_size)), v.proof);
    EXPECT_TRUE(IsOk(VerifyConsistency(v.old_size, v.new_size, old_root, new_root, v.proof)));
    if (v.proof.empty()) continue;

    // verify_test.go's corruptConsistencyProof: each must fail.
    auto fails = [&](uint64_t m, uint64_t n, const Hash& r1, const Hash& r2,
                     const std::vector<Hash>& p) {
      return !VerifyConsistency(m, n, r1, r2, p).ok();
    };
    EXPECT_TRUE(fails(v.old_size - 1, v.new_size, old_root, new_root, v.proof));
    EXPECT_TRUE(fails(v.old_size + 1, v.new_size, old_root, new_root, v.proof));
    EXPECT_TRUE(fails(v.old_size ^ 2, v.new_size, old_root, new_root, v.proof));
    EXPECT_TRUE(fails(v.old_size, v.new_size * 2, old_root, new_root, v.proof));
    EXPECT_TRUE(fails(v.old_size, v.new_size / 2, old_root, new_root, v.proof));
    EXPECT_TRUE(fails(v.old_size, v.new_size, LeafHash(AsBytes("WrongRoot")), new_root, v.proof));
    EXPECT_TRUE(fails(v.old_size, v.new_size, old_root, LeafHash(AsBytes("WrongRoot")), v.proof));
    EXPECT_TRUE(fails(v.old_size, v.new_size, new_root, old_root, v.proof));
    EXPECT_TRUE(fails(v.old_size, v.new_size, old_root, new_root, {}));
    for (const Hash& extra : {old_root, new_root}) {
      std::vector<Hash> p = v.proof;
      p.push_back(extra);
      EXPECT_TRUE(fails(v.old_size, v.new_size, old_root, new_root, p));
      p = v.proof;
      p.insert(p.begin(), extra);
      EXPECT_TRUE(fails(v.old_size, v.new_size, old_root, new_root, p));
    }
    std::vector<Hash> p = v.proof;
    p.insert(p.begin(), v.proof[0]);
    EXPECT_TRUE(fails(v.old_size, v.new_size, old_root, new_root, p));
    p.assign(v.proof.begin(), v.proof.end() - 1);
    EXPECT_TRUE(fails(v.old_size, v.new_size, old_root, new_root, p));
    for (size_t i = 0; i < v.proof.size(); ++i) {
      p = v.proof;
      p[i][0] ^= 16;
      EXPECT_TRUE(fails(v.old_size, v.new_size, old_root, new_root, p)) << "element " << i;
    }
  }
}

TEST(MerkleTest, ConsistencyEdgeCases) {
  // The trivial cases of verify_test.go TestVerifyConsistency, and refbus's stricter rule
  // that only the empty tree's real root is consistent with everything.
  const Hash e = EmptyRoot();
  const Hash r1 = LeafHash(AsBytes("don't care 1"));
  const Hash r2 = LeafHash(AsBytes("don't care 2"));
  EXPECT_TRUE(IsOk(VerifyConsistency(0, 0, e, e, {})));
  EXPECT_TRUE(IsOk(VerifyConsistency(0, 1, e, r2, {})));
  EXPECT_TRUE(IsOk(VerifyConsistency(1, 1, r2, r2, {})));
  EXPECT_TRUE(HasCode(VerifyConsistency(0, 1, r1, r2, {}), Status::Code::kUnauthenticated));
  EXPECT_TRUE(HasCode(VerifyConsistency(0, 0, r1, r2, {}), Status::Code::kUnauthenticated));
  // Found by audit_fuzz: equal sizes 0 and 0 with one made-up root for both.
  EXPECT_TRUE(HasCode(VerifyConsistency(0, 0, r1, r1, {}), Status::Code::kUnauthenticated));
  EXPECT_TRUE(HasCode(VerifyConsistency(1, 1, r1, r2, {}), Status::Code::kUnauthenticated));
  EXPECT_TRUE(HasCode(VerifyConsistency(1, 0, r1, r2, {}), Status::Code::kRollback));
  EXPECT_TRUE(HasCode(VerifyConsistency(2, 1, r1, r2, {}), Status::Code::kRollback));
  EXPECT_TRUE(HasCode(VerifyConsistency(1, 2, r1, r2, {}), Status::Code::kUnauthenticated));
  const std::vector<Hash> one{e};
  EXPECT_FALSE(VerifyConsistency(0, 0, e, e, one).ok());
  EXPECT_FALSE(VerifyConsistency(0, 1, e, e, one).ok());
  EXPECT_FALSE(VerifyConsistency(1, 1, e, e, one).ok());
}

TEST(MerkleTest, InclusionEdgeCases) {
  const Hash some = LeafHash(AsBytes("x"));
  for (auto [index, size] : {std::pair<uint64_t, uint64_t>{0, 0}, {1, 0}, {2, 1}}) {
    EXPECT_TRUE(
        HasCode(VerifyInclusion(some, index, size, {}, some), Status::Code::kInvalidArgument));
  }
  // A one-leaf tree: the root is the leaf hash and the proof is empty.
  EXPECT_TRUE(IsOk(VerifyInclusion(some, 0, 1, {}, some)));
  EXPECT_FALSE(VerifyInclusion(some, 0, 1, {}, EmptyRoot()).ok());
  // No tree is deeper than 64 levels.
  std::vector<Hash> huge(65, some);
  EXPECT_TRUE(test::HasError(VerifyInclusion(some, 0, UINT64_MAX, huge, some),
                             Status::Code::kUnauthenticated, "64 levels"));
}

// ---- Properties over every small tree ------------------------------------------------

TEST(MerkleTest, EveryInclusionProofUpTo64LeavesVerifiesAndResistsTampering) {
  const MemoryTree tree = TreeOf(64);
  const std::vector<Hash> roots = Roots(tree);
  size_t bit = 0;  // a different bit for each case: every position gets flipped somewhere
  for (uint64_t size = 1; size <= 64; ++size) {
    for (uint64_t index = 0; index < size; ++index) {
      SCOPED_TRACE("index " + std::to_string(index) + " size " + std::to_string(size));
      const Hash leaf = tree.LeafHashAt(index);
      const std::vector<Hash> proof = test::Must(InclusionProof(tree, index, size));
      ASSERT_TRUE(IsOk(VerifyInclusion(leaf, index, size, proof, roots[size])));
      // A flipped bit anywhere in the proof (all 256 positions in the smaller trees).
      for (size_t i = 0; i < proof.size(); ++i) {
        const size_t flips = size <= 8 ? 256 : 1;
        for (size_t f = 0; f < flips; ++f, ++bit) {
          std::vector<Hash> bad = proof;
          bad[i] = FlipBit(bad[i], bit % 256);
          EXPECT_FALSE(VerifyInclusion(leaf, index, size, bad, roots[size]).ok());
        }
      }
      // Another leaf's hash, another index, another root.
      EXPECT_FALSE(
          VerifyInclusion(tree.LeafHashAt((index + 1) % 64), index, size, proof, roots[size]).ok());
      for (uint64_t other = 0; other < size; ++other) {
        if (other == index) continue;
        EXPECT_FALSE(VerifyInclusion(leaf, other, size, proof, roots[size]).ok())
            << "claimed index " << other;
      }
      for (uint64_t s = 0; s <= 64; ++s) {
        if (s != size) {
          EXPECT_FALSE(VerifyInclusion(leaf, index, size, proof, roots[s]).ok());
        }
      }
      // Another size, even with that size's true root: every size has its own proof.
      for (uint64_t other = index + 1; other <= 64; ++other) {
        if (other == size) continue;
        EXPECT_NE(test::Must(InclusionProof(tree, index, other)), proof)
            << "claimed size " << other;
        EXPECT_FALSE(VerifyInclusion(leaf, index, other, proof, roots[other]).ok())
            << "claimed size " << other;
      }
      // Proofs do not survive truncation or extension.
      if (!proof.empty()) {
        std::vector<Hash> shorter(proof.begin(), proof.end() - 1);
        EXPECT_FALSE(VerifyInclusion(leaf, index, size, shorter, roots[size]).ok());
      }
      std::vector<Hash> longer = proof;
      longer.push_back(roots[size]);
      EXPECT_FALSE(VerifyInclusion(leaf, index, size, longer, roots[size]).ok());
    }
  }
}

TEST(MerkleTest, EveryConsistencyProofUpTo64LeavesVerifiesAndResistsTampering) {
  const MemoryTree tree = TreeOf(64);
  const std::vector<Hash> roots = Roots(tree);
  size_t bit = 0;
  for (uint64_t new_size = 1; new_size <= 64; ++new_size) {
    for (uint64_t old_size = 0; old_size <= new_size; ++old_size) {
      SCOPED_TRACE("from " + std::to_string(old_size) + " to " + std::to_string(new_size));
      const std::vector<Hash> proof = test::Must(ConsistencyProof(tree, old_size, new_size));
      ASSERT_TRUE(
          IsOk(VerifyConsistency(old_size, new_size, roots[old_size], roots[new_size], proof)));
      if (old_size == 0 || old_size == new_size) {
        EXPECT_TRUE(proof.empty());
        continue;
      }
      ASSERT_FALSE(proof.empty());
      for (size_t i = 0; i < proof.size(); ++i) {
        const size_t flips = new_size <= 8 ? 256 : 1;
        for (size_t f = 0; f < flips; ++f, ++bit) {
          std::vector<Hash> bad = proof;
          bad[i] = FlipBit(bad[i], bit % 256);
          EXPECT_FALSE(
              VerifyConsistency(old_size, new_size, roots[old_size], roots[new_size], bad).ok());
        }
      }
      // Wrong roots.
      for (uint64_t s = 0; s <= 64; ++s) {
        if (s != old_size) {
          EXPECT_FALSE(
              VerifyConsistency(old_size, new_size, roots[s], roots[new_size], proof).ok());
        }
        if (s != new_size) {
          EXPECT_FALSE(
              VerifyConsistency(old_size, new_size, roots[old_size], roots[s], proof).ok());
        }
      }
      // Wrong sizes, each with its own true root: every statement has its own proof.
      auto check_claim = [&](uint64_t m, uint64_t n) {
        const bool same_proof = test::Must(ConsistencyProof(tree, m, n)) == proof;
        EXPECT_FALSE(same_proof) << "claimed " << m << " to " << n;
        EXPECT_FALSE(VerifyConsistency(m, n, roots[m], roots[n], proof).ok())
            << "claimed " << m << " to " << n;
      };
      for (uint64_t m = 1; m <= new_size; ++m) {
        if (m != old_size) check_claim(m, new_size);
      }
      for (uint64_t n = old_size; n <= 64; ++n) {
        if (n != new_size) check_claim(old_size, n);
      }
      std::vector<Hash> shorter(proof.begin(), proof.end() - 1);
      EXPECT_FALSE(
          VerifyConsistency(old_size, new_size, roots[old_size], roots[new_size], shorter).ok());
      std::vector<Hash> longer = proof;
      longer.push_back(roots[new_size]);
      EXPECT_FALSE(
          VerifyConsistency(old_size, new_size, roots[old_size], roots[new_size], longer).ok());
    }
  }
}

TEST(MerkleTest, FrontierMatchesMemoryTreeAndSurvivesSerialization) {
  MemoryTree tree;
  MerkleFrontier frontier;
  for (uint64_t size = 0; size <= 1000; ++size) {
    if (size > 0) {
      const Hash leaf = LeafHash(AsBytes("audit entry " + std::to_string(size - 1)));
      tree.Append(leaf);
      frontier.Append(leaf);
    }
    ASSERT_EQ(frontier.Size(), size);
    ASSERT_EQ(frontier.Subtrees().size(), static_cast<size_t>(std::popcount(size)));
    const Hash root = tree.Root();
    ASSERT_EQ(frontier.Root(), root) << "size " << size;
    const Bytes stored = frontier.Serialize();
    auto parsed = MerkleFrontier::Parse(stored);
    ASSERT_TRUE(IsOk(parsed)) << "size " << size;
    ASSERT_EQ(parsed->Size(), size);
    ASSERT_EQ(parsed->Root(), root) << "size " << size;
    // A restarted broker goes on appending from the parsed frontier.
    MerkleFrontier resumed = *parsed;
    resumed.Append(LeafHash(AsBytes("next")));
    MemoryTree next = tree;
    next.Append(LeafHash(AsBytes("next")));
    ASSERT_EQ(resumed.Root(), next.Root()) << "size " << size;
  }
}

TEST(MerkleTest, DamagedFrontierBytesAreRefused) {
  for (uint64_t size : {0u, 1u, 5u, 6u, 255u, 1000u}) {
    MerkleFrontier f;
    for (uint64_t i = 0; i < size; ++i) f.Append(LeafHash(AsBytes(std::to_string(i))));
    const Bytes good = f.Serialize();
    ASSERT_TRUE(IsOk(MerkleFrontier::Parse(good)));
    for (size_t bit = 0; bit < good.size() * 8; ++bit) {
      Bytes bad = good;
      bad[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      EXPECT_TRUE(HasCode(MerkleFrontier::Parse(bad), Status::Code::kMalformed))
          << "size " << size << " bit " << bit;
    }
    Bytes longer = good;
    longer.push_back(0);
    EXPECT_TRUE(HasCode(MerkleFrontier::Parse(longer), Status::Code::kMalformed));
    for (size_t n = 0; n < good.size(); ++n) {
      EXPECT_TRUE(HasCode(MerkleFrontier::Parse(ByteView(good).first(n)), Status::Code::kMalformed))
          << "truncated to " << n;
    }
  }
  // A size with the same number of subtrees (5 and 6 both have two): only the checksum
  // tells them apart.
  MerkleFrontier five;
  for (int i = 0; i < 5; ++i) five.Append(LeafHash(AsBytes(std::to_string(i))));
  Bytes bad = five.Serialize();
  bad[8] = 6;
  EXPECT_TRUE(test::HasError(MerkleFrontier::Parse(bad), Status::Code::kMalformed, "checksum"));
  bad = five.Serialize();
  bad[0] = 2;
  EXPECT_TRUE(test::HasError(MerkleFrontier::Parse(bad), Status::Code::kMalformed, "version"));
}

TEST(MerkleTest, LeafHashReaderAgreesWithMemoryTree) {
  const MemoryTree tree = TreeOf(100);
  LeafHashReader reader([&](uint64_t i) -> Result<Hash> {
    if (i >= tree.Size()) return NotFound("no leaf " + std::to_string(i));
    return tree.LeafHashAt(i);
  });
  for (uint64_t size = 0; size <= 100; ++size) {
    EXPECT_EQ(test::Must(RootAt(reader, size)), test::Must(RootAt(tree, size)));
  }
  for (uint64_t size = 1; size <= 100; size += 7) {
    for (uint64_t i = 0; i < size; i += 3) {
      EXPECT_EQ(test::Must(InclusionProof(reader, i, size)),
                test::Must(InclusionProof(tree, i, size)));
      EXPECT_EQ(test::Must(ConsistencyProof(reader, i, size)),
                test::Must(ConsistencyProof(tree, i, size)));
    }
  }
  // Errors from the leaf source reach the caller.
  EXPECT_TRUE(HasCode(RootAt(reader, 101), Status::Code::kNotFound));
  EXPECT_TRUE(HasCode(InclusionProof(reader, 3, 101), Status::Code::kNotFound));
  EXPECT_TRUE(HasCode(reader.SubtreeHash(3, 1), Status::Code::kInvalidArgument));
}

TEST(MerkleTest, ProofRequestsOutsideTheTreeAreRefused) {
  const MemoryTree tree = TreeOf(10);
  EXPECT_TRUE(HasCode(InclusionProof(tree, 10, 10), Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(InclusionProof(tree, 3, 11), Status::Code::kNotFound));
  EXPECT_TRUE(HasCode(ConsistencyProof(tree, 5, 4), Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(ConsistencyProof(tree, 5, 11), Status::Code::kNotFound));
  EXPECT_TRUE(HasCode(RootAt(tree, 11), Status::Code::kNotFound));
  EXPECT_TRUE(HasCode(tree.SubtreeHash(8, 3), Status::Code::kNotFound));
  EXPECT_TRUE(HasCode(tree.SubtreeHash(4, 3), Status::Code::kInvalidArgument));
  EXPECT_EQ(test::Must(tree.SubtreeHash(0, 3)), test::Must(RootAt(tree, 8)));
}

}  // namespace
}  // namespace refbus::keys
