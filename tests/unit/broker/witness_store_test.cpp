// The broker's store as a witness and as a witnessed log (broker/store.h): witness requests
// decided inside the commit's transaction (state, conflicts, evidence and the audit entry
// of a refusal; several requests in one batch see each other), and cosignatures added to
// the stored checkpoints without touching what the log signed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broker/audit_log.h"
#include "broker/store.h"
#include "keys/checkpoint.h"
#include "keys/identity.h"
#include "keys/merkle.h"
#include "keys/witness.h"
#include "schema/codec.h"
#include "tests/unit/test_util.h"

namespace refbus::broker {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace witness_store_test {

using keys::Hash;
using test::HasCode;
using test::HasSubstr;
using test::IsOk;
using test::Must;

constexpr char kWitnessBroker[] = "busan-broker";
constexpr char kLogBroker[] = "seoul-broker";
constexpr char kLogOrigin[] = "refbus/refbus-test/seoul-broker";
constexpr char kWitnessName[] = "refbus/refbus-test/witness/busan-broker";
constexpr UnixMillis kT0 = 1'800'000'000'000;

keys::Identity NewIdentity(const std::string& party) {
  return Must(keys::Identity::Generate(party, schema::PartyKind::kBroker, 0, 0));
}

class WitnessStoreTest : public ::testing::Test {
 protected:
  WitnessStoreTest()
      : witness_key_(NewIdentity(kWitnessBroker)), log_key_(NewIdentity(kLogBroker)) {
    StoreOptions o;
    o.dir = dir_.path();
    o.broker_id = kWitnessBroker;
    o.map_size_bytes = size_t{64} << 20;
    store_ = Must(Store::Open(o));
    for (int i = 0; i < 40; ++i) tree_.AppendEntry(AsBytes("entry " + std::to_string(i)));
    for (int i = 0; i < 40; ++i) fork_.AppendEntry(AsBytes("forged " + std::to_string(i)));
  }

  std::string Note(const keys::MemoryTree& tree, uint64_t size) {
    keys::Checkpoint c;
    c.origin = kLogOrigin;
    c.size = size;
    c.root = Must(keys::RootAt(tree, size));
    return Must(keys::SignCheckpoint(c, log_key_));
  }
  WitnessItem Item(const keys::MemoryTree& tree, uint64_t size, uint64_t old_size) {
    WitnessItem w;
    w.requester = kLogBroker;
    w.origin = kLogOrigin;
    w.log_keys.push_back(Must(keys::NoteVerifier::Create(kLogOrigin, keys::NoteKeyType::kEd25519,
                                                         log_key_.signing_public_key())));
    w.request.checkpoint = Note(tree, size);
    w.request.old_size = old_size;
    if (old_size != 0 && old_size != size) {
      for (const Hash& h : Must(keys::ConsistencyProof(tree, old_size, size))) {
        w.request.consistency_proof.emplace_back(h.begin(), h.end());
      }
    }
    w.directory_serial = 2;
    return w;
  }
  CommitResult Commit(std::vector<WitnessItem> items) {
    Batch b;
    b.witness = std::move(items);
    b.witness_signer = {&witness_key_, kWitnessName};
    return Must(store_->Commit(b, kT0));
  }
  std::vector<schema::AuditEntry> AuditEntries() {
    std::vector<schema::AuditEntry> out;
    uint64_t n = Must(store_->AuditSize());
    for (uint64_t i = 0; i < n; ++i) {
      out.push_back(Must(schema::DecodeAuditEntry(Must(store_->AuditEntryBytes(i)))));
    }
    return out;
  }

  test::TempDir dir_;
  keys::Identity witness_key_;
  keys::Identity log_key_;
  std::unique_ptr<Store> store_;
  keys::MemoryTree tree_;
  keys::MemoryTree fork_;
};

TEST_F(WitnessStoreTest, CosignsRecordsTheStateAndNeverLogsASuccess) {
  CommitResult r = Commit({Item(tree_, 10, 0)});
  ASSERT_EQ(r.witness.size(), 1u);
  const WitnessOutcome& o = r.witness[0];
  ASSERT_TRUE(o.error.ok());
  ASSERT_EQ(o.verdict, keys::WitnessVerdict::kCosign) << o.detail;
  EXPECT_EQ(o.witness_size, 10u);
  // The line verifies with the witness key over the log's checkpoint.
  keys::NoteSignature sig = Must(keys::ParseSignatureLine(o.cosignature));
  auto wkey = Must(keys::NoteVerifier::Create(kWitnessName, keys::NoteKeyType::kCosignatureV1,
                                              witness_key_.signing_public_key()));
  std::string body = Must(keys::ParseSignedNote(Note(tree_, 10))).text;
  EXPECT_EQ(Must(keys::VerifyCosignature(body, sig, wkey)), kT0 / 1000);
  auto st = Must(store_->WitnessStateOf(kLogOrigin));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->size, 10u);
  EXPECT_EQ(st->root, Must(keys::RootAt(tree_, 10)));
  // Cosigning does not grow the witness's own log (no entry, so no checkpoint churn).
  EXPECT_EQ(Must(store_->AuditSize()), 0u);
}

TEST_F(WitnessStoreTest, RequestsInOneBatchSeeEachOther) {
  // Two requests from the same old state: the first moves it, the second is a conflict and
  // learns the new size. A fork can never be cosigned from a shared old state.
  CommitResult r = Commit({Item(tree_, 10, 0), Item(fork_, 12, 0)});
  ASSERT_EQ(r.witness.size(), 2u);
  EXPECT_EQ(r.witness[0].verdict, keys::WitnessVerdict::kCosign);
  EXPECT_EQ(r.witness[1].verdict, keys::WitnessVerdict::kConflict);
  EXPECT_EQ(r.witness[1].witness_size, 10u);
  r = Commit({Item(tree_, 20, 10), Item(tree_, 30, 20)});
  EXPECT_EQ(r.witness[0].verdict, keys::WitnessVerdict::kCosign);
  EXPECT_EQ(r.witness[1].verdict, keys::WitnessVerdict::kCosign);
  EXPECT_EQ(Must(store_->WitnessStateOf(kLogOrigin))->size, 30u);
}

TEST_F(WitnessStoreTest, AnInconsistentCheckpointIsRefusedKeptAsEvidenceAndAudited) {
  ASSERT_EQ(Commit({Item(tree_, 16, 0)}).witness[0].verdict, keys::WitnessVerdict::kCosign);
  const std::string cosigned = Must(store_->WitnessStateOf(kLogOrigin))->note;
  WitnessItem forged = Item(fork_, 30, 16);  // the forger's own proof from 16
  const std::string offered = forged.request.checkpoint;
  CommitResult r = Commit({forged});
  ASSERT_EQ(r.witness[0].verdict, keys::WitnessVerdict::kInconsistent);
  ASSERT_TRUE(r.witness[0].evidence.has_value());
  EXPECT_EQ(*r.witness[0].evidence, 0u);
  EXPECT_EQ(r.witness[0].witness_size, 16u);
  EXPECT_TRUE(r.witness[0].cosignature.empty());
  // State unchanged; both checkpoints kept.
  EXPECT_EQ(Must(store_->WitnessStateOf(kLogOrigin))->size, 16u);
  auto evidence = Must(store_->WitnessEvidence());
  ASSERT_EQ(evidence.size(), 1u);
  EXPECT_EQ(evidence[0].origin, kLogOrigin);
  EXPECT_EQ(evidence[0].requester, kLogBroker);
  EXPECT_EQ(evidence[0].cosigned_note, cosigned);
  EXPECT_EQ(evidence[0].offered_note, offered);
  EXPECT_EQ(evidence[0].old_size, 16u);
  EXPECT_EQ(evidence[0].proof.size(), forged.request.consistency_proof.size());
  // The refusal is in the witness's own log, in the same commit.
  auto entries = AuditEntries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].event, schema::AuditEvent::kWitnessRefused);
  EXPECT_EQ(entries[0].actor, kLogBroker);
  EXPECT_TRUE(HasSubstr(entries[0].detail, "inconsistent"));
  EXPECT_TRUE(HasSubstr(entries[0].detail, "evidence record 0"));
  // Conflicts are not refusals: nothing more is logged.
  EXPECT_EQ(Commit({Item(tree_, 30, 3)}).witness[0].verdict, keys::WitnessVerdict::kConflict);
  EXPECT_EQ(AuditEntries().size(), 1u);
  // The honest continuation is still cosigned.
  EXPECT_EQ(Commit({Item(tree_, 30, 16)}).witness[0].verdict, keys::WitnessVerdict::kCosign);
}

TEST_F(WitnessStoreTest, ADamagedStateIsNotReadAsNoneAndTheRestOfTheBatchCommits) {
  ASSERT_EQ(Commit({Item(tree_, 16, 0)}).witness[0].verdict, keys::WitnessVerdict::kCosign);
  {
    lmdb::Env& env = store_->env();
    MDB_dbi dbi = Must(env.OpenDb("witness"));
    lmdb::Txn txn = Must(env.BeginWrite());
    Bytes v(Must(txn.Get(dbi, AsBytes(kLogOrigin))).begin(),
            Must(txn.Get(dbi, AsBytes(kLogOrigin))).end());
    v[40] ^= 0x01;
    Must(txn.Put(dbi, AsBytes(kLogOrigin), v));
    Must(txn.Commit());
  }
  Batch b;
  schema::AuditEntry e;
  e.event = schema::AuditEvent::kDirectoryLoaded;
  b.events.push_back(e);
  b.witness.push_back(Item(fork_, 30, 0));  // would be cosigned if the state were "none"
  b.witness_signer = {&witness_key_, kWitnessName};
  CommitResult r = Must(store_->Commit(b, kT0));
  ASSERT_EQ(r.witness.size(), 1u);
  EXPECT_TRUE(HasCode(r.witness[0].error, Status::Code::kMalformed));
  EXPECT_TRUE(r.witness[0].cosignature.empty());
  EXPECT_EQ(Must(store_->AuditSize()), 1u);
}

class CosignatureStoreTest : public ::testing::Test {
 protected:
  CosignatureStoreTest()
      : log_key_(NewIdentity(kLogBroker)), witness_key_(NewIdentity(kWitnessBroker)) {
    StoreOptions o;
    o.dir = dir_.path();
    o.broker_id = kLogBroker;
    o.map_size_bytes = size_t{64} << 20;
    store_ = Must(Store::Open(o));
  }
  void Grow(size_t n) {
    Batch b;
    for (size_t i = 0; i < n; ++i) {
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kDirectoryLoaded;
      e.directory_serial = i;
      b.events.push_back(e);
    }
    Must(store_->Commit(b, kT0));
  }
  keys::NoteSignature Cosign(const StoredCheckpoint& c, const keys::Identity& who,
                             const std::string& name, uint64_t t) {
    std::string body = Must(keys::ParseSignedNote(c.note)).text;
    return Must(keys::CosignCheckpoint(body, name, who, t));
  }

  test::TempDir dir_;
  keys::Identity log_key_;
  keys::Identity witness_key_;
  std::unique_ptr<Store> store_;
};

TEST_F(CosignatureStoreTest, CosignaturesJoinTheStoredNoteAndTheLogSignatureStillVerifies) {
  Grow(3);
  StoredCheckpoint c = Must(store_->SignCheckpoint(kLogOrigin, log_key_)).stored;
  Batch b;
  b.cosignatures.push_back({c.checkpoint.size, c.checkpoint.root, kWitnessBroker,
                            Cosign(c, witness_key_, kWitnessName, 100)});
  CommitResult r = Must(store_->Commit(b, kT0));
  ASSERT_EQ(r.cosignatures.size(), 1u);
  EXPECT_TRUE(IsOk(r.cosignatures[0]));
  // The same witness again: its line is replaced, not doubled.
  b.cosignatures[0].signature = Cosign(c, witness_key_, kWitnessName, 200);
  EXPECT_TRUE(IsOk(Must(store_->Commit(b, kT0)).cosignatures[0]));

  auto stored = Must(store_->Checkpoints(0, 10));
  ASSERT_EQ(stored.size(), 1u);
  keys::SignedNote note = Must(keys::ParseSignedNote(stored[0].note));
  EXPECT_EQ(note.signatures.size(), 2u);
  EXPECT_EQ(note.text, Must(keys::ParseSignedNote(c.note)).text);
  auto log_v = Must(keys::NoteVerifier::Create(kLogOrigin, keys::NoteKeyType::kEd25519,
                                               log_key_.signing_public_key()));
  auto wv = Must(keys::NoteVerifier::Create(kWitnessName, keys::NoteKeyType::kCosignatureV1,
                                            witness_key_.signing_public_key()));
  std::vector<keys::NoteVerifier> witnesses = {wv};
  auto opened = Must(keys::OpenCheckpoint(stored[0].note, kLogOrigin, log_v, witnesses, 1));
  ASSERT_EQ(opened.cosignatures.size(), 1u);
  EXPECT_EQ(opened.cosignatures[0].timestamp_s, 200u);
  EXPECT_TRUE(IsOk(keys::OpenCheckpoint(stored[0].note, kLogOrigin, log_v)));
  // The consistency rule still holds over the rewritten record.
  Grow(2);
  EXPECT_TRUE(Must(store_->SignCheckpoint(kLogOrigin, log_key_)).signed_now);

  // No checkpoint of that size, or another root: not stored.
  Batch missing;
  missing.cosignatures.push_back(
      {99, c.checkpoint.root, kWitnessBroker, Cosign(c, witness_key_, kWitnessName, 300)});
  EXPECT_TRUE(HasCode(Must(store_->Commit(missing, kT0)).cosignatures[0], Status::Code::kNotFound));
  Batch other_root = missing;
  other_root.cosignatures[0].size = c.checkpoint.size;
  other_root.cosignatures[0].root[0] ^= 1;
  EXPECT_TRUE(HasCode(Must(store_->Commit(other_root, kT0)).cosignatures[0],
                      Status::Code::kFailedPrecondition));
}

}  // namespace witness_store_test
}  // namespace refbus::broker
