// The broker's audit log as stored: the Merkle tree kept in the commits' transactions
// against an independent in-memory tree over the stored bytes, start-up without replay,
// proofs from stored nodes, refusals of damaged or inconsistent state, the format 1
// and 2 upgrades, and the checkpoint signer's rule (never sign inconsistent with a stored one).
#include "broker/audit_log.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "broker/store.h"
#include "core/lmdb.h"
#include "keys/checkpoint.h"
#include "keys/identity.h"
#include "keys/merkle.h"
#include "schema/codec.h"
#include "tests/unit/test_util.h"

namespace refbus::broker {
namespace {

using keys::Hash;
using test::HasCode;
using test::HasError;
using test::IsOk;
using test::Must;

constexpr char kBroker[] = "seoul-broker";
constexpr char kOrigin[] = "refbus/refbus-test/seoul-broker";
constexpr UnixMillis kT0 = 1'800'000'000'000;

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();
    store_ = Must(Store::Open(Options()));
  }
  StoreOptions Options() const {
    StoreOptions o;
    o.dir = dir_.path();
    o.broker_id = kBroker;
    o.map_size_bytes = size_t{256} << 20;
    return o;
  }

  // A batch of n audit-only events.
  Batch Events(size_t n) {
    Batch b;
    for (size_t i = 0; i < n; ++i) {
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kDirectoryLoaded;
      e.directory_serial = ++serial_;
      e.detail = "event " + std::to_string(serial_);
      b.events.push_back(std::move(e));
    }
    return b;
  }

  // Commits n envelopes for seoul-counsel that expire at expires (audit ACCEPTED each).
  void CommitEnvelopes(size_t n, UnixMillis now, UnixMillis expires) {
    std::vector<schema::SealedEnvelope> decoded(n);
    Batch b;
    for (size_t i = 0; i < n; ++i) {
      schema::EnvelopeHeader& h = decoded[i].header;
      h.message_id.resize(schema::kMessageIdBytes);
      for (auto& byte : h.message_id) byte = static_cast<uint8_t>(rng_());
      h.kind = schema::MessageKind::kOpaque;
      h.sender_id = "seoul-wee-01";
      h.recipients.push_back({"seoul-counsel", {}, {}});
      h.expires_at_ms = expires;
      Accepted a;
      a.envelope = Bytes(64 + i, static_cast<uint8_t>(i));
      a.actor = "seoul-wee-01";
      b.accepted.push_back(std::move(a));
    }
    for (size_t i = 0; i < n; ++i) b.accepted[i].decoded = &decoded[i];
    auto r = store_->Commit(b, now);
    ASSERT_TRUE(IsOk(r));
    for (Outcome o : r->accepted) ASSERT_EQ(o, Outcome::kStored);
  }

  // Appends to mirror_ every stored entry it does not have yet (read back from the store).
  void CatchUp() {
    uint64_t n = Must(store_->AuditSize());
    for (uint64_t i = mirror_.Size(); i < n; ++i) {
      mirror_.AppendEntry(Must(store_->AuditEntryBytes(i)));
    }
  }

  // Raw access to the closed store's environment.
  template <typename Fn>
  void WithRawStore(const std::vector<std::string>& dbs, Fn fn) {
    store_.reset();
    lmdb::EnvOptions eo;
    eo.map_size_bytes = size_t{256} << 20;
    eo.max_dbs = 16;
    auto env = Must(lmdb::Env::Open(dir_.path(), eo));
    std::vector<MDB_dbi> handles;
    handles.reserve(dbs.size());
    for (const auto& name : dbs) handles.push_back(Must(env->OpenDb(name)));
    auto txn = Must(env->BeginWrite());
    fn(txn, handles);
    Must(txn.Commit());
  }

  // Writes a checkpoint record into the open store's "checkpoints" database, as a forger
  // with write access to the store would.
  void ForgeCheckpoint(uint64_t size, const Hash& root, const std::string& origin = kOrigin) {
    keys::Checkpoint c;
    c.origin = origin;
    c.size = size;
    c.root = root;
    std::string note = Must(keys::SignCheckpoint(c, key_));
    PutCheckpointRecord(size, EncodeCheckpointRecord(note));
  }
  void PutCheckpointRecord(uint64_t size, const Bytes& record) {
    lmdb::Env& env = store_->env();
    MDB_dbi dbi = Must(env.OpenDb("checkpoints"));
    auto txn = Must(env.BeginWrite());
    Must(txn.Put(dbi, lmdb::U64Key(size), record));
    Must(txn.Commit());
  }
  void DeleteCheckpoint(uint64_t size) {
    lmdb::Env& env = store_->env();
    MDB_dbi dbi = Must(env.OpenDb("checkpoints"));
    auto txn = Must(env.BeginWrite());
    Must(txn.Del(dbi, lmdb::U64Key(size)));
    Must(txn.Commit());
  }
  size_t CheckpointCount() { return Must(store_->Checkpoints(0, 1000)).size(); }

  keys::NoteVerifier Verifier() const {
    return Must(keys::NoteVerifier::Create(kOrigin, keys::NoteKeyType::kEd25519,
                                           key_.signing_public_key()));
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
  keys::MemoryTree mirror_;
  uint64_t serial_ = 0;
  std::mt19937_64 rng_{42};  // NOLINT(cert-msc32-c,cert-msc51-cpp): reproducible runs
  keys::Identity key_ = Must(keys::Identity::Generate(kBroker, schema::PartyKind::kBroker, 0, 0));
};

TEST(StoredNodeIndexTest, NodesAreNumberedInTheOrderTheyComplete) {
  // Replays the completions of a growing tree and checks the numbering and the count.
  uint64_t next = 0;
  for (uint64_t leaf = 0; leaf < 1000; ++leaf) {
    for (unsigned level = 0;; ++level) {
      EXPECT_EQ(StoredNodeIndex(level, leaf >> level), next)
          << "leaf " << leaf << " level " << level;
      ++next;
      if (((leaf >> level) & 1) == 0) break;
    }
    EXPECT_EQ(StoredNodeCount(leaf + 1), next);
  }
}

TEST_F(AuditLogTest, RootEqualsAnIndependentTreeOverTheStoredBytesAcrossCommitsAndExpiry) {
  EXPECT_EQ(Must(store_->AuditRoot()), keys::EmptyRoot());
  UnixMillis now = kT0;
  // Many commits of varying sizes, envelopes that expire, and expiry sweeps between them.
  for (int round = 0; round < 60; ++round) {
    now += 1000;
    size_t n = static_cast<size_t>(rng_() % 9);  // 0 to 8 events
    Batch b = Events(n);
    ASSERT_TRUE(IsOk(store_->Commit(b, now)));
    if (round % 3 == 0) CommitEnvelopes(1 + static_cast<size_t>(rng_() % 3), now, now + 1500);
    if (round % 4 == 3) {
      auto expired = store_->ExpireOld(now, 1000);
      ASSERT_TRUE(IsOk(expired));
    }
    CatchUp();
    ASSERT_EQ(Must(store_->AuditSize()), mirror_.Size());
    ASSERT_EQ(Must(store_->AuditRoot()), mirror_.Root()) << "after round " << round;
  }
  // The sweeps did write EXPIRED entries, so ExpireOld's appends were covered.
  size_t expired = 0;
  for (uint64_t i = 0; i < mirror_.Size(); ++i) {
    auto e = schema::DecodeAuditEntry(Must(store_->AuditEntryBytes(i)));
    ASSERT_TRUE(IsOk(e));
    EXPECT_EQ(e->index, i);
    expired += e->event == schema::AuditEvent::kEnvelopeExpired ? 1 : 0;
  }
  EXPECT_GT(expired, 5u);
  EXPECT_GT(mirror_.Size(), 200u);
  EXPECT_LT(mirror_.Size(), 600u);

  // Every earlier root, from stored nodes.
  for (uint64_t s = 0; s <= mirror_.Size(); s += 7) {
    EXPECT_EQ(Must(store_->AuditRootAt(s)), Must(keys::RootAt(mirror_, s))) << "size " << s;
  }
  EXPECT_TRUE(HasCode(store_->AuditRootAt(mirror_.Size() + 1), Status::Code::kInvalidArgument));
}

TEST_F(AuditLogTest, ReopeningGivesTheSameRootWithoutReplayingTheLog) {
  for (int i = 0; i < 20; ++i) {
    Batch b = Events(5);
    ASSERT_TRUE(IsOk(store_->Commit(b, kT0 + i)));
  }
  CatchUp();
  const Hash root = mirror_.Root();
  ASSERT_EQ(Must(store_->AuditRoot()), root);

  // Damage an early entry behind the store's back. Open does not read it (no replay), so it
  // still opens with the same root; reading that entry reports the damage.
  WithRawStore({"audit"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    Bytes e(Must(txn.Get(dbi[0], lmdb::U64Key(3))).begin(),
            Must(txn.Get(dbi[0], lmdb::U64Key(3))).end());
    e[e.size() / 2] ^= 0x01;
    Must(txn.Put(dbi[0], lmdb::U64Key(3), e));
  });
  Reopen();
  EXPECT_EQ(Must(store_->AuditRoot()), root);
  EXPECT_EQ(Must(store_->AuditSize()), 100u);
  EXPECT_TRUE(HasError(store_->AuditEntryBytes(3), Status::Code::kMalformed, "audit entry 3"));
  EXPECT_TRUE(IsOk(store_->AuditEntryBytes(4)));

  // And it keeps growing from where it was.
  Batch b = Events(3);
  ASSERT_TRUE(IsOk(store_->Commit(b, kT0 + 100)));
  for (uint64_t i = 100; i < 103; ++i) mirror_.AppendEntry(Must(store_->AuditEntryBytes(i)));
  EXPECT_EQ(Must(store_->AuditRoot()), mirror_.Root());
}

TEST_F(AuditLogTest, ProofsFromTheStoreVerify) {
  for (int i = 0; i < 37; ++i) {
    Batch b = Events(1 + static_cast<size_t>(i % 5));
    ASSERT_TRUE(IsOk(store_->Commit(b, kT0 + i)));
  }
  CatchUp();
  const uint64_t n = mirror_.Size();
  ASSERT_GT(n, 100u);
  for (uint64_t size = 1; size <= n; size += 3) {
    const Hash root = Must(keys::RootAt(mirror_, size));
    for (uint64_t i = 0; i < size; i += 5) {
      auto proof = store_->InclusionProof(i, size);
      ASSERT_TRUE(IsOk(proof));
      EXPECT_TRUE(IsOk(keys::VerifyInclusion(mirror_.LeafHashAt(i), i, size, *proof, root)))
          << "leaf " << i << " size " << size;
      // The same proof does not vouch for a neighbouring leaf.
      if (i + 1 < size) {
        EXPECT_FALSE(keys::VerifyInclusion(mirror_.LeafHashAt(i + 1), i, size, *proof, root).ok());
      }
    }
    for (uint64_t old = 0; old <= size; old += 4) {
      auto proof = store_->ConsistencyProof(old, size);
      ASSERT_TRUE(IsOk(proof));
      EXPECT_TRUE(
          IsOk(keys::VerifyConsistency(old, size, Must(keys::RootAt(mirror_, old)), root, *proof)))
          << old << " -> " << size;
    }
  }
  EXPECT_TRUE(HasCode(store_->InclusionProof(0, n + 1), Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(store_->InclusionProof(n, n), Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(store_->ConsistencyProof(1, n + 1), Status::Code::kInvalidArgument));
}

TEST_F(AuditLogTest, DamagedTreeNodeIsReportedNotServed) {
  Batch b = Events(16);
  ASSERT_TRUE(IsOk(store_->Commit(b, kT0)));
  WithRawStore({"audit_tree"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    const uint64_t pos = StoredNodeIndex(1, 2);  // leaves [4, 6)
    Bytes v(Must(txn.Get(dbi[0], lmdb::U64Key(pos))).begin(),
            Must(txn.Get(dbi[0], lmdb::U64Key(pos))).end());
    v[0] ^= 0x80;
    Must(txn.Put(dbi[0], lmdb::U64Key(pos), v));
  });
  Reopen();  // the frontier (one subtree of 16) does not use that node
  EXPECT_TRUE(HasError(store_->InclusionProof(7, 8), Status::Code::kMalformed, "damaged"));
  EXPECT_TRUE(HasError(store_->AuditRootAt(6), Status::Code::kMalformed, "damaged"));
  EXPECT_TRUE(IsOk(store_->InclusionProof(9, 16)));  // does not need that node
}

TEST_F(AuditLogTest, FrontierThatDoesNotFitTheLogIsRefusedAtOpen) {
  Batch b = Events(10);
  ASSERT_TRUE(IsOk(store_->Commit(b, kT0)));
  // audit_size says 11; the frontier covers 10.
  WithRawStore({"meta"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    Must(txn.Put(dbi[0], AsBytes("audit_size"), lmdb::U64Key(11)));
  });
  auto s = Store::Open(Options());
  EXPECT_TRUE(HasError(s, Status::Code::kFailedPrecondition, "holds 11 entries"));
  EXPECT_TRUE(HasError(s, Status::Code::kFailedPrecondition, "covers 10"));

  // Both say 11, but only 10 entries and their nodes are stored.
  Bytes frontier;
  WithRawStore({"meta"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    ByteView f = Must(txn.Get(dbi[0], AsBytes("audit_frontier")));
    frontier.assign(f.begin(), f.end());
    keys::MerkleFrontier longer = Must(keys::MerkleFrontier::Parse(f));
    longer.Append(keys::LeafHash(AsBytes("not stored")));
    Must(txn.Put(dbi[0], AsBytes("audit_frontier"), longer.Serialize()));
  });
  EXPECT_TRUE(HasError(Store::Open(Options()), Status::Code::kFailedPrecondition,
                       "should hold 11 entries but its database holds 10"));

  // A damaged frontier.
  WithRawStore({"meta"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    Bytes bad = frontier;
    bad[12] ^= 0x01;
    Must(txn.Put(dbi[0], AsBytes("audit_size"), lmdb::U64Key(10)));
    Must(txn.Put(dbi[0], AsBytes("audit_frontier"), bad));
  });
  EXPECT_TRUE(HasError(Store::Open(Options()), Status::Code::kMalformed, "checksum"));

  // A frontier for 10 leaves with other hashes than the stored tree.
  WithRawStore({"meta"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    keys::MerkleFrontier other;
    for (int i = 0; i < 10; ++i) other.Append(keys::LeafHash(AsBytes(std::to_string(i))));
    Must(txn.Put(dbi[0], AsBytes("audit_frontier"), other.Serialize()));
  });
  EXPECT_TRUE(
      HasError(Store::Open(Options()), Status::Code::kMalformed, "does not match its stored tree"));

  // Restored: opens again.
  WithRawStore({"meta"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    Must(txn.Put(dbi[0], AsBytes("audit_frontier"), frontier));
  });
  EXPECT_TRUE(IsOk(Store::Open(Options())));
}

TEST_F(AuditLogTest, MissingTreeNodeIsRefusedAtOpen) {
  Batch b = Events(10);
  ASSERT_TRUE(IsOk(store_->Commit(b, kT0)));
  WithRawStore({"audit_tree"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    Must(txn.Del(dbi[0], lmdb::U64Key(StoredNodeIndex(0, 4))));
  });
  EXPECT_TRUE(HasError(Store::Open(Options()), Status::Code::kFailedPrecondition,
                       "should hold 18 nodes but holds 17"));
}

TEST_F(AuditLogTest, FormatOneStoreIsUpgradedOnceAtOpen) {
  for (int i = 0; i < 30; ++i) {
    Batch b = Events(1 + static_cast<size_t>(i % 7));
    ASSERT_TRUE(IsOk(store_->Commit(b, kT0 + i)));
  }
  CatchUp();
  // Make it look like a store from before the tree: format 1, no nodes, no frontier.
  WithRawStore({"meta", "audit_tree"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    Must(txn.Put(dbi[0], AsBytes("format"), AsBytes("refbus-broker-store/1")));
    Must(txn.Del(dbi[0], AsBytes("audit_frontier")));
    ASSERT_EQ(mdb_drop(txn.raw(), dbi[1], 0), MDB_SUCCESS);
  });
  Reopen();
  EXPECT_EQ(Must(store_->AuditRoot()), mirror_.Root());
  auto proof = Must(store_->InclusionProof(5, mirror_.Size()));
  EXPECT_TRUE(
      IsOk(keys::VerifyInclusion(mirror_.LeafHashAt(5), 5, mirror_.Size(), proof, mirror_.Root())));
  Batch b = Events(4);
  ASSERT_TRUE(IsOk(store_->Commit(b, kT0 + 100)));
  CatchUp();
  EXPECT_EQ(Must(store_->AuditRoot()), mirror_.Root());
  // Upgraded for good: the format says 3 and the next open does not rebuild (it checks).
  store_.reset();
  WithRawStore({"meta"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    EXPECT_EQ(AsChars(Must(txn.Get(dbi[0], AsBytes("format")))), "refbus-broker-store/3");
  });
  Reopen();
  EXPECT_EQ(Must(store_->AuditRoot()), mirror_.Root());
}

TEST_F(AuditLogTest, UnknownFormatIsRefused) {
  WithRawStore({"meta"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    Must(txn.Put(dbi[0], AsBytes("format"), AsBytes("refbus-broker-store/9")));
  });
  EXPECT_TRUE(
      HasError(Store::Open(Options()), Status::Code::kFailedPrecondition, "refbus-broker-store/9"));
}

// Format 2 kept a reference count per message ("refs"); format 3 drops that table at the
// upgrade and keeps a record while any of the (mailbox, seq) entries it lists is queued.
TEST_F(AuditLogTest, FormatTwoStoreDropsItsCountsAndARecordStaysUntilItsLastEntryIsAcked) {
  std::vector<schema::SealedEnvelope> decoded(2);
  Batch b;
  const std::vector<std::vector<std::string>> to = {{"seoul-counsel", "seoul-police-03"},
                                                    {"seoul-counsel"}};
  for (size_t i = 0; i < 2; ++i) {
    schema::EnvelopeHeader& h = decoded[i].header;
    h.message_id.assign(schema::kMessageIdBytes, static_cast<uint8_t>(0x10 + i));
    h.kind = schema::MessageKind::kOpaque;
    h.sender_id = "seoul-wee-01";
    for (const auto& r : to[i]) h.recipients.push_back({r, {}, {}});
    h.expires_at_ms = kT0 + kMillisPerHour;
    Accepted a;
    a.envelope = Bytes(100, static_cast<uint8_t>(i));
    a.actor = "seoul-wee-01";
    b.accepted.push_back(std::move(a));
  }
  for (size_t i = 0; i < 2; ++i) b.accepted[i].decoded = &decoded[i];
  ASSERT_EQ(Must(store_->Commit(b, kT0)).accepted,
            (std::vector<Outcome>{Outcome::kStored, Outcome::kStored}));
  // Make it a format 2 store with its counts.
  WithRawStore({"meta", "refs"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
    Must(txn.Put(dbi[0], AsBytes("format"), AsBytes("refbus-broker-store/2")));
    Must(txn.Put(dbi[1], decoded[0].header.message_id, lmdb::U64Key(2)));
    Must(txn.Put(dbi[1], decoded[1].header.message_id, lmdb::U64Key(1)));
  });
  Reopen();
  auto records = [&] {
    store_.reset();
    uint64_t n = 0;
    WithRawStore({"meta", "msgs"}, [&](lmdb::Txn& txn, const std::vector<MDB_dbi>& dbi) {
      EXPECT_EQ(AsChars(Must(txn.Get(dbi[0], AsBytes("format")))), "refbus-broker-store/3");
      MDB_dbi refs = 0;
      EXPECT_EQ(mdb_dbi_open(txn.raw(), "refs", 0, &refs), MDB_NOTFOUND) << "refs still there";
      n = Must(txn.Count(dbi[1]));
    });
    Reopen();
    return n;
  };
  EXPECT_EQ(records(), 2u);

  auto ack = [&](const std::string& mailbox, size_t i) {
    auto pending = Must(store_->ReadMailbox(mailbox, 0, 10));
    for (const Pending& p : pending) {
      if (p.message_id != decoded[i].header.message_id) continue;
      EXPECT_TRUE(p.damage.empty()) << p.damage;
      Batch a;
      RecipientAck r;
      r.recipient = mailbox;
      r.seq = p.seq;
      r.message_id = p.message_id;
      a.acks.push_back(r);
      EXPECT_EQ(Must(store_->Commit(a, kT0 + 1)).acks_applied, std::vector<bool>{true});
      return;
    }
    ADD_FAILURE() << "message " << i << " is not in " << mailbox;
  };
  // The two-recipient message: acked by one, still there, whole, for the other.
  ack("seoul-counsel", 0);
  EXPECT_EQ(records(), 2u);
  auto police = Must(store_->ReadMailbox("seoul-police-03", 0, 10));
  ASSERT_EQ(police.size(), 1u);
  EXPECT_EQ(police[0].envelope, Bytes(100, 0));
  ack("seoul-police-03", 0);
  EXPECT_EQ(records(), 1u);
  ack("seoul-counsel", 1);
  EXPECT_EQ(records(), 0u);
  EXPECT_TRUE(Must(store_->ReadMailbox("seoul-counsel", 0, 10)).empty());
  // Still known as seen: a resubmission is a duplicate, not stored again.
  Batch again;
  Accepted a;
  a.envelope = Bytes(100, 0);
  a.actor = "seoul-wee-01";
  a.decoded = &decoded[0];
  again.accepted.push_back(std::move(a));
  EXPECT_EQ(Must(store_->Commit(again, kT0 + 2)).accepted,
            std::vector<Outcome>{Outcome::kDuplicate});
  EXPECT_EQ(records(), 0u);
}

TEST_F(AuditLogTest, SignedCheckpointOpensWithTheBrokersKeyAndDescribesTheCommittedLog) {
  Batch b = Events(25);
  ASSERT_TRUE(IsOk(store_->Commit(b, kT0)));
  CatchUp();
  auto first = store_->SignCheckpoint(kOrigin, key_);
  ASSERT_TRUE(IsOk(first));
  EXPECT_TRUE(first->signed_now);
  auto opened = keys::OpenCheckpoint(first->stored.note, kOrigin, Verifier());
  ASSERT_TRUE(IsOk(opened));
  EXPECT_EQ(opened->checkpoint.origin, kOrigin);
  EXPECT_EQ(opened->checkpoint.size, 25u);
  EXPECT_EQ(opened->checkpoint.root, mirror_.Root());
  // Another key does not open it.
  auto other = Must(keys::Identity::Generate(kBroker, schema::PartyKind::kBroker, 0, 0));
  auto other_v = Must(
      keys::NoteVerifier::Create(kOrigin, keys::NoteKeyType::kEd25519, other.signing_public_key()));
  EXPECT_FALSE(keys::OpenCheckpoint(first->stored.note, kOrigin, other_v).ok());

  // Stored, and returned as the latest.
  auto latest = Must(store_->LatestCheckpoint());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->note, first->stored.note);

  // Nothing new: nothing signed, the same note back.
  auto again = Must(store_->SignCheckpoint(kOrigin, key_));
  EXPECT_FALSE(again.signed_now);
  EXPECT_EQ(again.stored.note, first->stored.note);
  EXPECT_EQ(CheckpointCount(), 1u);

  // The log grows: a new checkpoint, consistent with the first.
  Batch more = Events(14);
  ASSERT_TRUE(IsOk(store_->Commit(more, kT0 + 1)));
  auto second = Must(store_->SignCheckpoint(kOrigin, key_));
  EXPECT_TRUE(second.signed_now);
  auto c2 = Must(keys::OpenCheckpoint(second.stored.note, kOrigin, Verifier())).checkpoint;
  EXPECT_EQ(c2.size, 39u);
  auto proof = Must(store_->ConsistencyProof(25, 39));
  EXPECT_TRUE(IsOk(keys::VerifyConsistency(25, 39, opened->checkpoint.root, c2.root, proof)));
  auto all = Must(store_->Checkpoints(0, 10));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].checkpoint.size, 25u);
  EXPECT_EQ(all[1].checkpoint.size, 39u);
  EXPECT_EQ(Must(store_->Checkpoints(26, 10)).size(), 1u);

  // Checkpoints survive a restart, and the committed log is consistent with them.
  Reopen();
  EXPECT_TRUE(IsOk(store_->CheckLatestCheckpoint(kOrigin)));
  EXPECT_EQ(Must(store_->LatestCheckpoint())->note, second.stored.note);
}

TEST_F(AuditLogTest, RefusesToSignInconsistentWithTheLatestStoredCheckpoint) {
  Batch b = Events(40);
  ASSERT_TRUE(IsOk(store_->Commit(b, kT0)));
  CatchUp();
  ASSERT_TRUE(store_->SignCheckpoint(kOrigin, key_)->signed_now);  // a genuine one at 40
  Batch more = Events(10);
  ASSERT_TRUE(IsOk(store_->Commit(more, kT0 + 1)));
  CatchUp();  // 50 entries
  Hash wrong = mirror_.Root();
  wrong[0] ^= 0x01;

  struct Forgery {
    const char* what;
    uint64_t size;
    Hash root;
    std::string origin;
    const char* expect;
  };
  const std::vector<Forgery> forgeries = {
      {"same size, another root", 50, wrong, kOrigin, "inconsistent"},
      {"smaller size, another root", 45, wrong, kOrigin, "inconsistent"},
      {"smaller size, the root of a different prefix", 45, Must(keys::RootAt(mirror_, 44)), kOrigin,
       "inconsistent"},
      {"a larger size", 60, mirror_.Root(), kOrigin, "larger"},
      {"another log's origin", 45, Must(keys::RootAt(mirror_, 45)),
       "refbus/refbus-test/busan-broker", "busan-broker"},
  };
  for (const Forgery& f : forgeries) {
    SCOPED_TRACE(f.what);
    ForgeCheckpoint(f.size, f.root, f.origin);
    const size_t before = CheckpointCount();
    auto r = store_->SignCheckpoint(kOrigin, key_);
    EXPECT_TRUE(HasError(r, Status::Code::kFailedPrecondition, "refusing to sign"));
    EXPECT_TRUE(HasError(r, Status::Code::kFailedPrecondition, f.expect));
    EXPECT_TRUE(HasCode(store_->CheckLatestCheckpoint(kOrigin), Status::Code::kFailedPrecondition));
    // Nothing recorded: the forged one is still the latest, no new checkpoint.
    EXPECT_EQ(CheckpointCount(), before);
    EXPECT_EQ(Must(store_->LatestCheckpoint())->checkpoint.size, f.size);
    DeleteCheckpoint(f.size);
  }

  // A damaged latest record refuses too (it cannot be checked against).
  {
    keys::Checkpoint c{kOrigin, 45, Must(keys::RootAt(mirror_, 45)), {}};
    Bytes record = EncodeCheckpointRecord(Must(keys::SignCheckpoint(c, key_)));
    record[40] ^= 0x01;
    PutCheckpointRecord(45, record);
    EXPECT_TRUE(HasError(store_->SignCheckpoint(kOrigin, key_), Status::Code::kFailedPrecondition,
                         "hash mismatch"));
    DeleteCheckpoint(45);
  }

  // A consistent one at a smaller size (as a genuine earlier checkpoint is): signs.
  ForgeCheckpoint(45, Must(keys::RootAt(mirror_, 45)));
  auto ok = store_->SignCheckpoint(kOrigin, key_);
  ASSERT_TRUE(IsOk(ok));
  EXPECT_TRUE(ok->signed_now);
  EXPECT_EQ(ok->stored.checkpoint.size, 50u);
  EXPECT_EQ(ok->stored.checkpoint.root, mirror_.Root());
  EXPECT_TRUE(IsOk(keys::OpenCheckpoint(ok->stored.note, kOrigin, Verifier())));
}

TEST(CheckpointOriginTest, IsAValidKeyNameOrRefused) {
  auto o = CheckpointOrigin("refbus-test", "seoul-broker");
  ASSERT_TRUE(IsOk(o));
  EXPECT_EQ(*o, "refbus/refbus-test/seoul-broker");
  EXPECT_TRUE(keys::IsValidKeyName(*o));
  EXPECT_TRUE(HasError(CheckpointOrigin("korea youth", "seoul-broker"),
                       Status::Code::kInvalidArgument, "federation"));
  EXPECT_TRUE(HasCode(CheckpointOrigin("a+b", "seoul-broker"), Status::Code::kInvalidArgument));
}

TEST(CheckpointRecordTest, RoundTripsAndRefusesDamageOrTheWrongSize) {
  auto key = Must(keys::Identity::Generate(kBroker, schema::PartyKind::kBroker, 0, 0));
  keys::Checkpoint c{kOrigin, 7, keys::LeafHash(AsBytes("x")), {}};
  std::string note = Must(keys::SignCheckpoint(c, key));
  Bytes record = EncodeCheckpointRecord(note);
  auto back = DecodeCheckpointRecord(record, 7);
  ASSERT_TRUE(IsOk(back));
  EXPECT_EQ(back->note, note);
  EXPECT_EQ(back->checkpoint.root, c.root);
  EXPECT_TRUE(HasError(DecodeCheckpointRecord(record, 8), Status::Code::kMalformed, "size 7"));
  for (size_t i = 0; i < record.size(); i += 13) {
    Bytes bad = record;
    bad[i] ^= 0x04;
    EXPECT_TRUE(HasCode(DecodeCheckpointRecord(bad, 7), Status::Code::kMalformed)) << i;
  }
  EXPECT_TRUE(HasCode(DecodeCheckpointRecord(Bytes(10, 0), 7), Status::Code::kMalformed));
}

TEST(NodeRecordTest, ChecksumBindsHashAndPosition) {
  Hash h = keys::LeafHash(AsBytes("entry"));
  Bytes v = EncodeNode(17, h);
  EXPECT_EQ(Must(DecodeNode(v, 17)), h);
  EXPECT_TRUE(HasCode(DecodeNode(v, 18), Status::Code::kMalformed));  // moved to another key
  for (size_t i = 0; i < v.size(); ++i) {
    Bytes bad = v;
    bad[i] ^= 0x10;
    EXPECT_TRUE(HasCode(DecodeNode(bad, 17), Status::Code::kMalformed)) << i;
  }
  EXPECT_TRUE(HasCode(DecodeNode(ByteView(v).first(39), 17), Status::Code::kMalformed));
}

TEST_F(AuditLogTest, DamagedEnvelopeIsQuarantinedAndTheRestOfTheMailboxFlows) {
  CommitEnvelopes(3, kT0, kT0 + kMillisPerHour);
  auto before = Must(store_->ReadMailbox("seoul-counsel", 0, 10));
  ASSERT_EQ(before.size(), 3u);
  const Bytes damaged_id = before[1].message_id;
  {  // One byte of the middle record flips on disk.
    lmdb::Env& env = store_->env();
    MDB_dbi msgs = Must(env.OpenDb("msgs"));
    auto txn = Must(env.BeginWrite());
    Bytes rec = [&] {
      ByteView v = Must(txn.Get(msgs, damaged_id));
      return Bytes(v.begin(), v.end());
    }();
    rec[rec.size() - 3] ^= 0x40;
    Must(txn.Put(msgs, damaged_id, rec));
    Must(txn.Commit());
  }
  auto read = Must(store_->ReadMailbox("seoul-counsel", 0, 10));
  ASSERT_EQ(read.size(), 3u);
  EXPECT_TRUE(read[0].damage.empty());
  EXPECT_TRUE(read[2].damage.empty());
  EXPECT_NE(read[1].damage.find("damaged"), std::string::npos) << read[1].damage;
  EXPECT_TRUE(read[1].envelope.empty()) << "damaged bytes are never handed out as sound";

  Batch q;
  RecipientAck a;
  a.recipient = "seoul-counsel";
  a.seq = read[1].seq;
  a.message_id = damaged_id;
  a.kind = RecipientAck::Kind::kQuarantined;
  a.detail = read[1].damage;
  q.acks.push_back(a);
  auto r = Must(store_->Commit(q, kT0 + 1));
  ASSERT_EQ(r.acks_applied, std::vector<bool>{true});

  auto after = Must(store_->ReadMailbox("seoul-counsel", 0, 10));
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].message_id, before[0].message_id);
  EXPECT_EQ(after[1].message_id, before[2].message_id);
  EXPECT_EQ(Must(store_->MailboxDepth("seoul-counsel")), 2u);
  auto last = Must(schema::DecodeAuditEntry(Must(store_->AuditEntryBytes(r.audit_size - 1))));
  EXPECT_EQ(last.event, schema::AuditEvent::kEnvelopeQuarantined);
  EXPECT_EQ(last.actor, "seoul-counsel");
  EXPECT_EQ(last.message_id, damaged_id);
  // The expiry sweep later removes the damaged bytes too, on record.
  EXPECT_EQ(Must(store_->ExpireOld(kT0 + 2 * kMillisPerHour, 100)), 3u);
}

}  // namespace
}  // namespace refbus::broker
