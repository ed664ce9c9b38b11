// refbus-audit's offline logic on synthetic logs: verification (signatures, entries, roots,
// forks, consistency proofs, coverage), the bisection fetch uses to name an entry, proof
// bundles (every single-byte change refused), the auditors' queries and their output.
#include "audit/proof_bundle.h"
#include "audit/query.h"
#include "audit/verify.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <sstream>

#include "audit/local_store.h"
#include "core/lmdb.h"
#include "keys/checkpoint.h"
#include "keys/secret.h"
#include "keys/witness.h"
#include "schema/codec.h"
#include "tests/unit/test_util.h"

namespace refbus::audit {
namespace {

using refbus::test::HasCode;
using refbus::test::HasError;
using refbus::test::HasSubstr;
using refbus::test::IsOk;
using refbus::test::Must;
using refbus::test::TempDir;
using schema::AuditEntry;
using schema::AuditEvent;

constexpr UnixMillis kNow = 1'790'000'000'000;
constexpr char kBroker[] = "seoul-broker";
constexpr char kOrigin[] = "refbus/fed-test/seoul-broker";

class AuditToolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = std::make_unique<keys::Identity>(
        Must(keys::Identity::Generate(kBroker, schema::PartyKind::kBroker, kNow, kMillisPerDay)));
    directory_.federation = "fed-test";
    directory_.serial = 3;
    schema::Party p;
    p.id = kBroker;
    p.kind = schema::PartyKind::kBroker;
    p.status = schema::PartyStatus::kActive;
    schema::KeyRecord k;
    k.signing_key = broker_->signing_public_key();
    k.transport_key = broker_->transport_public_key();
    k.state = schema::KeyState::kActive;
    p.keys.push_back(k);
    directory_.brokers.push_back(p);
    log_keys_ = Must(BrokerLogKeys(directory_, kBroker));
    store_ = Must(LocalAuditStore::Open(dir_.Join("store"), /*create=*/true));
    Must(store_->Bind({kBroker, kOrigin, broker_->signing_public_key()}));
  }

  static AuditEntry Entry(uint64_t index, AuditEvent event = AuditEvent::kEnvelopeAccepted) {
    AuditEntry e;
    e.index = index;
    e.time_ms = kNow + index * 1000;
    e.event = event;
    e.broker_id = kBroker;
    e.actor = "seoul-wee-01";
    e.message_id = Bytes(schema::kMessageIdBytes, static_cast<uint8_t>(index));
    e.envelope_sha256 = Bytes(32, 0xa5);
    e.recipients = {"seoul-counsel"};
    e.case_ref = "case-00000001";
    return e;
  }

  // Appends entries to the store and the reference tree.
  void Append(const std::vector<AuditEntry>& entries) {
    std::vector<Bytes> bytes;
    for (const auto& e : entries) {
      bytes.push_back(schema::EncodeAuditEntry(e));
      tree_.AppendEntry(bytes.back());
    }
    Must(store_->AppendEntries(Must(store_->NextIndex()), bytes));
  }
  void AppendPlain(uint64_t n) {
    std::vector<AuditEntry> v;
    for (uint64_t i = tree_.Size(); i < n; ++i) v.push_back(Entry(i));
    Append(v);
  }

  std::string Note(uint64_t size, const keys::Identity& key, const keys::MemoryTree& tree) {
    keys::Checkpoint c;
    c.origin = kOrigin;
    c.size = size;
    c.root = Must(keys::RootAt(tree, size));
    return Must(keys::SignCheckpoint(c, key));
  }
  // Stores a checkpoint of size signed by the broker, with a proof from the latest one.
  uint64_t AddCheckpoint(uint64_t size) {
    LocalCheckpoint c;
    c.size = size;
    c.received_at_ms = kNow;
    c.note = Note(size, *broker_, tree_);
    if (last_) {
      c.proof_from_seq = last_->first;
      c.proof = Must(keys::ConsistencyProof(tree_, last_->second, size));
    }
    uint64_t seq = Must(store_->AddCheckpoint(c));
    last_ = {seq, size};
    return seq;
  }

  void EditEntry(uint64_t index, const std::function<void(Bytes&)>& edit, bool remove = false) {
    lmdb::Env& env = store_->env();
    MDB_dbi dbi = Must(env.OpenDb("entries"));
    lmdb::Txn txn = Must(env.BeginWrite());
    Bytes v = [&] {
      ByteView b = Must(txn.Get(dbi, lmdb::U64Key(index)));
      return Bytes(b.begin(), b.end());
    }();
    if (remove) {
      Must(txn.Del(dbi, lmdb::U64Key(index)));
    } else {
      edit(v);
      Must(txn.Put(dbi, lmdb::U64Key(index), v));
    }
    Must(txn.Commit());
  }

  // Verifies without requiring witnesses (the subject of most tests here is the log itself;
  // witnessing has its own tests).
  VerifyReport Verify() {
    VerifyOptions unwitnessed;
    unwitnessed.min_cosignatures = 0;
    return Must(VerifyLocalLog(*store_, log_keys_, unwitnessed));
  }

  TempDir dir_;
  std::unique_ptr<keys::Identity> broker_;
  schema::Directory directory_;
  LogKeys log_keys_;
  std::unique_ptr<LocalAuditStore> store_;
  keys::MemoryTree tree_;
  std::optional<std::pair<uint64_t, uint64_t>> last_;  // seq, size
};

TEST_F(AuditToolTest, AGoodLogVerifies) {
  AppendPlain(10);
  AddCheckpoint(10);
  AppendPlain(50);
  AddCheckpoint(50);
  AppendPlain(100);
  AddCheckpoint(100);
  VerifyReport r = Verify();
  EXPECT_TRUE(r.ok()) << r.Headline();
  EXPECT_EQ(r.entries, 100u);
  EXPECT_EQ(r.checkpoints, 3u);
  EXPECT_EQ(r.signatures_ok, 3u);
  EXPECT_EQ(r.verified_size, 100u);
  EXPECT_EQ(r.verified_root, tree_.Root());
  EXPECT_TRUE(HasSubstr(r.Headline(), "ok: 100 entries of refbus/fed-test/seoul-broker"));
}

// Issue 17 item 5: an unwitnessed log used to verify unless the auditor asked for
// cosignatures; now verification requires one by default.
TEST_F(AuditToolTest, AnUnwitnessedLogFailsVerificationByDefault) {
  AppendPlain(10);
  AddCheckpoint(10);
  VerifyReport r = Must(VerifyLocalLog(*store_, log_keys_));
  EXPECT_FALSE(r.ok()) << r.Headline();
  EXPECT_TRUE(HasSubstr(r.Headline(), "is not witnessed")) << r.Headline();
  EXPECT_TRUE(HasSubstr(r.Headline(), "this auditor names no witnesses")) << r.Headline();
  EXPECT_FALSE(r.witnessed);
  // Lowered to 0 on purpose: it verifies, and says loudly that nobody witnessed it.
  VerifyOptions zero;
  zero.min_cosignatures = 0;
  r = Must(VerifyLocalLog(*store_, log_keys_, zero));
  EXPECT_TRUE(r.ok()) << r.Headline();
  EXPECT_FALSE(r.witnessed);
  EXPECT_TRUE(HasSubstr(r.Headline(), kUnwitnessedWarning)) << r.Headline();
}

// Only the witnesses the auditor names count; never the log's own broker.
TEST_F(AuditToolTest, OnlyNamedWitnessesCount) {
  keys::Identity busan =
      Must(keys::Identity::Generate("busan-broker", schema::PartyKind::kBroker, kNow, 0));
  keys::Identity office =
      Must(keys::Identity::Generate("audit-office", schema::PartyKind::kAuditor, kNow, 0));
  auto witness = [](const std::string& id, const keys::Identity& who) {
    const std::string name = Must(keys::WitnessName("fed-test", id));
    return keys::WitnessKey{id,
                            Must(keys::NoteVerifier::Create(name, keys::NoteKeyType::kCosignatureV1,
                                                            who.signing_public_key()))};
  };
  AppendPlain(10);
  LocalCheckpoint c;
  c.size = 10;
  c.received_at_ms = kNow;
  std::string note = Note(10, *broker_, tree_);
  note = Must(
      keys::AddCosignature(note, Must(keys::WitnessName("fed-test", "busan-broker")), busan, 1000));
  // The log's own broker cosigning under a witness name of its own.
  note = Must(
      keys::AddCosignature(note, Must(keys::WitnessName("fed-test", kBroker)), *broker_, 1001));
  c.note = note;
  Must(store_->AddCheckpoint(c));

  VerifyOptions options;                                  // the default: 1 cosignature
  options.witnesses = {witness("audit-office", office)};  // busan is not named
  VerifyReport r = Must(VerifyLocalLog(*store_, log_keys_, options));
  EXPECT_FALSE(r.ok()) << r.Headline();
  EXPECT_FALSE(r.witnessed);
  EXPECT_EQ(r.unknown_signatures, 2u);
  options.witnesses = {witness(kBroker, *broker_)};  // the log itself: never counts
  r = Must(VerifyLocalLog(*store_, log_keys_, options));
  EXPECT_FALSE(r.ok()) << r.Headline();
  EXPECT_FALSE(r.witnessed);
  options.witnesses = {witness("audit-office", office), witness("busan-broker", busan)};
  r = Must(VerifyLocalLog(*store_, log_keys_, options));
  EXPECT_TRUE(r.ok()) << r.Headline();
  EXPECT_TRUE(r.witnessed);
  EXPECT_TRUE(HasSubstr(r.Headline(), "witnessed up to size 10 by busan-broker")) << r.Headline();
}

// A checkpoint an agency kept from an Ack: the log must have that root at that size.
TEST_F(AuditToolTest, EvidenceCheckpointsMustMatchTheLog) {
  AppendPlain(10);
  const std::string kept = Note(6, *broker_, tree_);
  AddCheckpoint(10);
  VerifyOptions options;
  options.min_cosignatures = 0;
  options.evidence = {{"agency.checkpoint", kept}};
  VerifyReport r = Must(VerifyLocalLog(*store_, log_keys_, options));
  EXPECT_TRUE(r.ok()) << r.Headline();
  EXPECT_EQ(r.evidence_checked, 1u);
  EXPECT_TRUE(HasSubstr(r.Headline(), "consistent with 1 evidence checkpoint")) << r.Headline();

  // Signed by the broker over another history of 6 entries: a fork shown to the agency.
  keys::MemoryTree other;
  for (uint64_t i = 0; i < 6; ++i) {
    AuditEntry e = Entry(i);
    if (i == 3) e.actor = "someone-else";
    other.AppendEntry(schema::EncodeAuditEntry(e));
  }
  options.evidence = {{"forked.checkpoint", Note(6, *broker_, other)}};
  r = Must(VerifyLocalLog(*store_, log_keys_, options));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasSubstr(r.Headline(), "evidence forked.checkpoint")) << r.Headline();
  EXPECT_TRUE(HasSubstr(r.Headline(), "does not match the log")) << r.Headline();

  // Larger than the local copy: cannot be checked yet.
  keys::MemoryTree twelve;
  for (uint64_t i = 0; i < 12; ++i) twelve.AppendEntry(schema::EncodeAuditEntry(Entry(i)));
  options.evidence = {{"ahead.checkpoint", Note(12, *broker_, twelve)}};
  r = Must(VerifyLocalLog(*store_, log_keys_, options));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasSubstr(r.Headline(), "evidence ahead.checkpoint")) << r.Headline();
  EXPECT_TRUE(HasSubstr(r.Headline(), "run fetch")) << r.Headline();

  // Not signed by the log's key.
  keys::Identity stranger =
      Must(keys::Identity::Generate(kBroker, schema::PartyKind::kBroker, kNow, 0));
  options.evidence = {{"stranger.checkpoint", Note(6, stranger, tree_)}};
  r = Must(VerifyLocalLog(*store_, log_keys_, options));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasSubstr(r.Headline(), "is not a checkpoint of")) << r.Headline();
}

TEST_F(AuditToolTest, CosignaturesAreCheckedAndCountedPerCheckpoint) {
  keys::Identity busan =
      Must(keys::Identity::Generate("busan-broker", schema::PartyKind::kBroker, kNow, 0));
  keys::Identity office =
      Must(keys::Identity::Generate("audit-office", schema::PartyKind::kAuditor, kNow, 0));
  const std::string busan_name = Must(keys::WitnessName("fed-test", "busan-broker"));
  const std::string office_name = Must(keys::WitnessName("fed-test", "audit-office"));
  VerifyOptions options;
  options.min_cosignatures = 0;  // first: what is counted, nothing required
  options.witnesses.push_back({"busan-broker", Must(keys::NoteVerifier::Create(
                                                   busan_name, keys::NoteKeyType::kCosignatureV1,
                                                   busan.signing_public_key()))});
  options.witnesses.push_back({"audit-office", Must(keys::NoteVerifier::Create(
                                                   office_name, keys::NoteKeyType::kCosignatureV1,
                                                   office.signing_public_key()))});
  // Stores note (of size) as a new arrival, with the proof from the latest stored one.
  auto arrive = [&](uint64_t size, const std::string& note) {
    LocalCheckpoint c;
    c.size = size;
    c.received_at_ms = kNow;
    c.note = note;
    if (last_ && last_->second < size) {
      c.proof_from_seq = last_->first;
      c.proof = Must(keys::ConsistencyProof(tree_, last_->second, size));
    }
    uint64_t seq = Must(store_->AddCheckpoint(c));
    if (!last_ || last_->second <= size) last_ = {seq, size};
  };
  AppendPlain(10);
  arrive(5, Must(keys::AddCosignature(Note(5, *broker_, tree_), busan_name, busan, 1000)));
  arrive(10, Note(10, *broker_, tree_));

  VerifyReport r = Must(VerifyLocalLog(*store_, log_keys_, options));
  EXPECT_TRUE(r.ok()) << r.Headline();
  ASSERT_EQ(r.cosigned.size(), 2u);
  EXPECT_EQ(r.cosigned[0].size, 5u);
  EXPECT_EQ(r.cosigned[0].witnesses, std::vector<std::string>{"busan-broker"});
  EXPECT_TRUE(r.cosigned[1].witnesses.empty());
  ASSERT_TRUE(r.witnessed_size.has_value());
  EXPECT_EQ(*r.witnessed_size, 5u);
  EXPECT_TRUE(HasSubstr(r.Headline(), "witnessed up to size 5 by busan-broker"));

  // Requiring a cosignature: the newest checkpoint is not witnessed.
  options.min_cosignatures = 1;
  r = Must(VerifyLocalLog(*store_, log_keys_, options));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(HasSubstr(r.Headline(), "size 10"));
  EXPECT_TRUE(HasSubstr(r.Headline(), "is not witnessed"));
  // The same checkpoint arrives again, now cosigned by two witnesses: it covers everything.
  std::string both = Must(keys::AddCosignature(Note(10, *broker_, tree_), busan_name, busan, 1001));
  both = Must(keys::AddCosignature(both, office_name, office, 1002));
  arrive(10, both);
  r = Must(VerifyLocalLog(*store_, log_keys_, options));
  EXPECT_TRUE(r.ok()) << r.Headline();
  EXPECT_EQ(*r.witnessed_size, 10u);
  EXPECT_EQ(r.cosigned[1].witnesses, (std::vector<std::string>{"audit-office", "busan-broker"}));
  options.min_cosignatures = 3;
  EXPECT_FALSE(Must(VerifyLocalLog(*store_, log_keys_, options)).ok());
  options.min_cosignatures = 2;
  EXPECT_TRUE(Must(VerifyLocalLog(*store_, log_keys_, options)).ok());

  // A cosignature line by a known witness key that does not verify is named; lines by
  // unknown keys are counted and ignored.
  AppendPlain(12);
  keys::SignedNote forged = Must(keys::ParseSignedNote(
      Must(keys::AddCosignature(Note(12, *broker_, tree_), office_name, office, 1003))));
  forged.signatures.back().signature.back() ^= 0x01;
  keys::Identity stranger =
      Must(keys::Identity::Generate("stranger", schema::PartyKind::kAuditor, kNow, 0));
  arrive(12, Must(keys::AddCosignature(Must(keys::FormatSignedNote(forged)),
                                       "refbus/fed-test/witness/stranger", stranger, 1004)));
  r = Must(VerifyLocalLog(*store_, log_keys_, options));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.unknown_signatures, 1u);
  bool named = false;
  for (const auto& p : r.problems) {
    named = named || (HasSubstr(p.message, "cosignature by witness audit-office") &&
                      HasSubstr(p.message, "does not verify"));
  }
  EXPECT_TRUE(named) << r.Headline();
}

TEST_F(AuditToolTest, AnEmptyStoreIsNotOk) {
  VerifyReport r = Verify();
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(HasSubstr(r.Headline(), "no checkpoint"));
}

TEST_F(AuditToolTest, AChangedEntryIsPlacedBetweenCheckpoints) {
  AppendPlain(10);
  AddCheckpoint(10);
  AppendPlain(50);
  AddCheckpoint(50);
  AppendPlain(100);
  AddCheckpoint(100);
  // A byte of entry 20's envelope hash: it still decodes, with its right index.
  EditEntry(20, [](Bytes& v) {
    const Bytes hash(32, 0xa5);
    auto at = std::search(v.begin(), v.end(), hash.begin(), hash.end());
    ASSERT_NE(at, v.end());
    *at ^= 0x01;
  });
  VerifyReport r = Verify();
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.first_bad_entry.has_value());
  ASSERT_EQ(r.problems.size(), 2u) << r.Headline();  // the checkpoints of size 50 and 100
  EXPECT_EQ(r.problems[0].where, VerifyProblem::Where::kCheckpoint);
  EXPECT_EQ(r.problems[0].index, 50u);
  EXPECT_TRUE(HasSubstr(r.problems[0].message, "matches them has size 10"));
  EXPECT_EQ(r.verified_size, 10u);
  EXPECT_TRUE(HasSubstr(r.Headline(), "FAILED: checkpoint #1 (size 50"));
}

TEST_F(AuditToolTest, EntriesOutOfPlaceOrMissingAreNamed) {
  AppendPlain(64);
  AddCheckpoint(64);
  // Entry 30 replaced by a copy of entry 31 (a reorder or a duplicate).
  Bytes e31 = schema::EncodeAuditEntry(Entry(31));
  EditEntry(30, [&](Bytes& v) { v = e31; });
  VerifyReport r = Verify();
  ASSERT_TRUE(r.first_bad_entry.has_value());
  EXPECT_EQ(*r.first_bad_entry, 30u);
  EXPECT_TRUE(HasSubstr(r.Headline(), "first bad entry 30: its index field says 31"));
  // An entry that does not decode.
  EditEntry(12, [](Bytes& v) { v[0] = 0xff; });
  r = Verify();
  EXPECT_EQ(*r.first_bad_entry, 12u);
  EXPECT_TRUE(HasSubstr(r.Headline(), "does not decode"));
  // A missing entry: named, and the checkpoints after it cannot be checked.
  EditEntry(5, nullptr, /*remove=*/true);
  r = Verify();
  EXPECT_EQ(*r.first_bad_entry, 5u);
  EXPECT_TRUE(HasSubstr(r.Headline(), "entry 5 is missing from the local store"));
  EXPECT_EQ(r.entries, 5u);
  bool unchecked = false;
  for (const auto& p : r.problems)
    unchecked |= p.message.find("cannot be checked") != std::string::npos;
  EXPECT_TRUE(unchecked);
}

TEST_F(AuditToolTest, ForgedForkedAndInconsistentCheckpointsAreNamed) {
  AppendPlain(40);
  AddCheckpoint(20);
  AddCheckpoint(40);
  ASSERT_TRUE(Verify().ok());
  // Signed by a key the directory does not list for the broker.
  auto other = Must(keys::Identity::Generate(kBroker, schema::PartyKind::kBroker, kNow, 1));
  LocalCheckpoint forged;
  forged.size = 40;
  forged.note = Note(40, other, tree_);
  Must(store_->AddCheckpoint(forged));
  VerifyReport r = Verify();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.signatures_ok, 2u);
  EXPECT_TRUE(HasSubstr(r.Headline(), "does not verify with broker seoul-broker's directory key"));
  ASSERT_TRUE(r.first_bad_checkpoint_seq.has_value());
  EXPECT_EQ(*r.first_bad_checkpoint_seq, 2u);

  // A fork: the broker's own key over another log of the same size.
  keys::MemoryTree other_log;
  for (uint64_t i = 0; i < 40; ++i) {
    AuditEntry e = Entry(i);
    e.actor = "someone-else";
    other_log.AppendEntry(schema::EncodeAuditEntry(e));
  }
  LocalCheckpoint fork;
  fork.size = 40;
  fork.note = Note(40, *broker_, other_log);
  Must(store_->AddCheckpoint(fork));
  r = Verify();
  bool fork_named = false, inconsistent = false;
  for (const auto& p : r.problems) {
    fork_named |= p.message.find("a fork") != std::string::npos;
    inconsistent |= p.message.find("rewrote its history") != std::string::npos;
  }
  EXPECT_TRUE(fork_named) << r.Headline();
  EXPECT_FALSE(inconsistent);

  // A larger checkpoint of the other log, with the broker's (honest) proof from its own
  // tree: it does not lead to the stored checkpoint of size 40.
  for (uint64_t i = 40; i < 60; ++i) other_log.AppendEntry(schema::EncodeAuditEntry(Entry(i)));
  LocalCheckpoint rewritten;
  rewritten.size = 60;
  rewritten.note = Note(60, *broker_, other_log);
  rewritten.proof_from_seq = 1;
  rewritten.proof = Must(keys::ConsistencyProof(other_log, 40, 60));
  uint64_t seq = Must(store_->AddCheckpoint(rewritten));
  r = Verify();
  bool named = false;
  for (const auto& p : r.problems) {
    if (p.seq == seq && p.message.find("rewrote its history") != std::string::npos) named = true;
  }
  EXPECT_TRUE(named) << r.Headline();
}

TEST_F(AuditToolTest, EveryEntryMustBeCoveredAndEveryCheckpointFetched) {
  AppendPlain(30);
  AddCheckpoint(30);
  AppendPlain(35);  // never signed
  VerifyReport r = Verify();
  ASSERT_TRUE(r.first_bad_entry.has_value());
  EXPECT_EQ(*r.first_bad_entry, 30u);
  EXPECT_TRUE(HasSubstr(r.Headline(), "not covered by any signed checkpoint"));

  keys::MemoryTree longer = tree_;
  for (uint64_t i = 35; i < 50; ++i) longer.AppendEntry(schema::EncodeAuditEntry(Entry(i)));
  LocalCheckpoint ahead;
  ahead.size = 50;
  ahead.note = Note(50, *broker_, longer);
  Must(store_->AddCheckpoint(ahead));
  r = Verify();
  bool named = false;
  for (const auto& p : r.problems) named |= p.message.find("run fetch") != std::string::npos;
  EXPECT_TRUE(named);
}

TEST_F(AuditToolTest, KeysOfRevokedAndRotatedBrokers) {
  AppendPlain(8);
  AddCheckpoint(8);
  // The broker rotated its key: the old one is RETIRED and still verifies old checkpoints.
  auto next = Must(keys::Identity::Generate(kBroker, schema::PartyKind::kBroker, kNow, 1));
  schema::Party& p = directory_.brokers[0];
  p.keys[0].state = schema::KeyState::kRetired;
  schema::KeyRecord k;
  k.signing_key = next.signing_public_key();
  k.state = schema::KeyState::kActive;
  p.keys.insert(p.keys.begin(), k);
  LogKeys rotated = Must(BrokerLogKeys(directory_, kBroker));
  EXPECT_EQ(rotated.verifiers.size(), 2u);
  EXPECT_EQ(rotated.active_key, next.signing_public_key());
  VerifyOptions unwitnessed;
  unwitnessed.min_cosignatures = 0;
  EXPECT_TRUE(Must(VerifyLocalLog(*store_, rotated, unwitnessed)).ok());
  // Compromised: REVOKED keys verify nothing.
  p.keys[1].state = schema::KeyState::kRevoked;
  LogKeys revoked_key = Must(BrokerLogKeys(directory_, kBroker));
  EXPECT_FALSE(Must(VerifyLocalLog(*store_, revoked_key, unwitnessed)).ok());
  // A revoked broker: none of its keys.
  p.status = schema::PartyStatus::kRevoked;
  EXPECT_TRUE(HasCode(BrokerLogKeys(directory_, kBroker), Status::Code::kRevoked));
  EXPECT_TRUE(HasCode(BrokerLogKeys(directory_, "nobody-here"), Status::Code::kNotFound));
}

TEST_F(AuditToolTest, BisectionFindsTheFirstDifferingEntry) {
  keys::MemoryTree signed_log;
  std::vector<Bytes> entries;
  for (uint64_t i = 0; i < 100; ++i) {
    entries.push_back(schema::EncodeAuditEntry(Entry(i)));
    signed_log.AppendEntry(entries.back());
  }
  const keys::Hash root = signed_log.Root();
  for (uint64_t bad : {0u, 1u, 37u, 64u, 99u}) {
    keys::MemoryTree local;
    for (uint64_t i = 0; i < 100; ++i) {
      Bytes b = entries[i];
      if (i == bad) b.back() ^= 0x01;
      local.AppendEntry(b);
    }
    size_t asked = 0;
    auto found = Bisect(100, [&](uint64_t m) -> Result<bool> {
      ++asked;
      auto proof = Must(keys::ConsistencyProof(signed_log, m, 100));
      return keys::VerifyConsistency(m, 100, Must(keys::RootAt(local, m)), root, proof).ok();
    });
    ASSERT_TRUE(IsOk(found));
    EXPECT_EQ(*found, bad);
    EXPECT_LE(asked, 7u);  // log2(100) rounded up
  }
}

TEST_F(AuditToolTest, ProofBundlesCheckOfflineAndRefuseAnyChangedByte) {
  const Bytes message(schema::kMessageIdBytes, 0xf2);  // no plain entry has it
  std::vector<AuditEntry> v;
  for (uint64_t i = 0; i < 90; ++i) {
    AuditEntry e = Entry(i, i == 3    ? AuditEvent::kEnvelopeAccepted
                            : i == 40 ? AuditEvent::kEnvelopeDelivered
                                      : AuditEvent::kEnvelopeOpened);
    if (i == 3 || i == 40 || i == 77) e.message_id = message;
    v.push_back(e);
  }
  Append(v);
  AddCheckpoint(60);
  AddCheckpoint(90);
  std::string bundle = Must(MakeProofBundle(*store_, message));
  CheckedProof c = Must(CheckProofBundle(bundle, directory_));
  ASSERT_EQ(c.entries.size(), 3u);
  EXPECT_EQ(c.entries[1].index, 40u);
  EXPECT_EQ(c.entries[1].event, AuditEvent::kEnvelopeDelivered);
  EXPECT_EQ(c.tree_size, 90u);
  EXPECT_EQ(c.origin, kOrigin);
  EXPECT_EQ(c.message_id, message);
  EXPECT_LT(c.verify_us_per_entry, 1000.0);

  // Every byte, changed (low bit; and the case of every letter): refused, every time.
  size_t refused = 0, tried = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < bundle.size(); ++i) {
    for (char flip : {char{0x01}, char{0x20}}) {
      const char ch = bundle[i];
      if (flip == 0x20 && !std::isalpha(static_cast<unsigned char>(ch))) continue;
      std::string bad = bundle;
      bad[i] = static_cast<char>(ch ^ flip);
      ++tried;
      auto r = CheckProofBundle(bad, directory_);
      if (!r.ok()) {
        ++refused;
      } else {
        ADD_FAILURE() << "accepted with byte " << i << " changed from '" << ch << "'";
      }
    }
  }
  EXPECT_EQ(refused, tried);
  auto per_check =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
      static_cast<double>(tried);
  EXPECT_LT(per_check, 5000.0);

  // Against a directory in which the broker is revoked: refused.
  schema::Directory revoked = directory_;
  revoked.brokers[0].status = schema::PartyStatus::kRevoked;
  EXPECT_TRUE(HasCode(CheckProofBundle(bundle, revoked), Status::Code::kRevoked));
  // Another federation's directory names another log.
  schema::Directory elsewhere = directory_;
  elsewhere.federation = "fed-other";
  EXPECT_TRUE(HasError(CheckProofBundle(bundle, elsewhere), Status::Code::kInvalidArgument,
                       "refbus/fed-other/seoul-broker"));
  // Nothing to prove for a message the log never saw.
  EXPECT_TRUE(HasCode(MakeProofBundle(*store_, Bytes(16, 0xf3)), Status::Code::kNotFound));
}

class AuditQueryTest : public AuditToolTest {
 protected:
  // A grant, access under it, an access after its revocation, an access under a grant
  // registered only later, one under no grant, an emergency override and what it shared.
  void BuildLog() {
    const Bytes g1(16, 0x01), g2(16, 0x02), g_em(16, 0x0e);
    const Bytes m1(16, 0x11), m2(16, 0x12), m3(16, 0x13), m_em(16, 0x1e);
    std::vector<AuditEntry> v;
    auto add = [&](AuditEvent ev, std::string actor, Bytes msg, Bytes grant, std::string case_ref) {
      AuditEntry e = Entry(v.size(), ev);
      e.actor = std::move(actor);
      e.message_id = std::move(msg);
      e.consent_grant_id = std::move(grant);
      e.case_ref = std::move(case_ref);
      e.envelope_sha256.clear();
      if (ev == AuditEvent::kEnvelopeDelivered || ev == AuditEvent::kEnvelopeAcked) {
        e.case_ref.clear();
        e.consent_grant_id.clear();
        e.recipients = {e.actor};
      }
      if (ev == AuditEvent::kEnvelopeAccepted) {
        e.sender_id = e.actor;
        e.kind = schema::MessageKind::kReferral;
      }
      v.push_back(std::move(e));
      return v.size() - 1;
    };
    add(AuditEvent::kConsentGranted, "seoul-wee-01", {}, g1, "case-aaaaaaaa");     // 0
    add(AuditEvent::kEnvelopeAccepted, "seoul-wee-01", m1, g1, "case-aaaaaaaa");   // 1
    add(AuditEvent::kEnvelopeDelivered, "seoul-counsel", m1, {}, "");              // 2
    add(AuditEvent::kEnvelopeAcked, "seoul-counsel", m1, {}, "");                  // 3
    add(AuditEvent::kEnvelopeOpened, "seoul-counsel", m1, g1, "case-aaaaaaaa");    // 4 ok
    add(AuditEvent::kConsentRevoked, "seoul-wee-01", {}, g1, "case-aaaaaaaa");     // 5
    add(AuditEvent::kEnvelopeOpened, "seoul-counsel", m1, g1, "case-aaaaaaaa");    // 6 revoked
    add(AuditEvent::kEnvelopeOpened, "seoul-counsel", m2, g2, "case-bbbbbbbb");    // 7 later
    add(AuditEvent::kConsentGranted, "seoul-wee-01", {}, g2, "case-bbbbbbbb");     // 8
    add(AuditEvent::kEnvelopeOpened, "seoul-police-03", m3, {}, "case-cccccccc");  // 9 none
    size_t em = add(AuditEvent::kConsentGranted, "seoul-wee-01", {}, g_em, "case-eeeeeeee");
    v[em].emergency_override = true;
    v[em].detail = "basis emergency-life-safety; EMERGENCY OVERRIDE countersigned by op-2";
    add(AuditEvent::kEnvelopeAccepted, "seoul-wee-01", m_em, g_em, "case-eeeeeeee");  // 11
    add(AuditEvent::kEnvelopeDelivered, "seoul-counsel", m_em, {}, "");               // 12
    add(AuditEvent::kEnvelopeAccepted, "seoul-wee-01", m2, g2, "case-bbbbbbbb");      // 13
    v[13].detail = "a \"quoted\", detail";
    Append(v);
    AddCheckpoint(v.size());
  }
};

TEST_F(AuditQueryTest, Unconsented) {
  BuildLog();
  QueryResult r = Must(QueryUnconsented(*store_));
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].entry.index, 6u);
  EXPECT_TRUE(HasSubstr(r.rows[0].note, "revoked before this access (entry 5"));
  EXPECT_EQ(r.rows[1].entry.index, 7u);
  EXPECT_TRUE(HasSubstr(r.rows[1].note, "granted only after this access (entry 8)"));
  EXPECT_EQ(r.rows[2].entry.index, 9u);
  EXPECT_TRUE(HasSubstr(r.rows[2].note, "names no consent grant"));
  EXPECT_EQ(r.checkpoint_size, 14u);
}

TEST_F(AuditQueryTest, OverridesCaseAndAccesses) {
  BuildLog();
  QueryResult o = Must(QueryOverrides(*store_));
  ASSERT_EQ(o.rows.size(), 3u);
  EXPECT_EQ(o.rows[0].entry.index, 10u);
  EXPECT_TRUE(HasSubstr(o.rows[0].note, "EMERGENCY OVERRIDE"));
  EXPECT_EQ(o.rows[1].entry.index, 11u);
  EXPECT_EQ(o.rows[2].entry.index, 12u);  // the delivery, joined by message id
  EXPECT_EQ(o.rows[2].case_ref, "case-eeeeeeee");
  EXPECT_EQ(o.rows[2].consent_grant_id, Bytes(16, 0x0e));

  QueryResult c = Must(QueryCase(*store_, "case-aaaaaaaa"));
  std::vector<uint64_t> idx;
  for (const auto& row : c.rows) idx.push_back(row.entry.index);
  EXPECT_EQ(idx, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(c.rows[2].case_ref, "case-aaaaaaaa");  // DELIVERED, joined
  EXPECT_EQ(c.rows[2].sender_id, "seoul-wee-01");

  QueryResult a = Must(QueryAccesses(*store_, "seoul-counsel", 0, ~UnixMillis{0}));
  idx.clear();
  for (const auto& row : a.rows) idx.push_back(row.entry.index);
  EXPECT_EQ(idx, (std::vector<uint64_t>{2, 3, 4, 6, 7, 12}));
  // A period: entry i is at kNow + i seconds; [kNow + 3 s, kNow + 7 s).
  QueryResult p = Must(QueryAccesses(*store_, "seoul-counsel", kNow + 3000, kNow + 7000));
  idx.clear();
  for (const auto& row : p.rows) idx.push_back(row.entry.index);
  EXPECT_EQ(idx, (std::vector<uint64_t>{3, 4, 6}));
}

TEST_F(AuditQueryTest, OutputFormats) {
  BuildLog();
  QueryResult c = Must(QueryCase(*store_, "case-bbbbbbbb"));
  std::ostringstream csv, js, table;
  PrintRows(c, OutputFormat::kCsv, csv);
  EXPECT_EQ(csv.str().rfind("index,time,event,actor,message_id,", 0), 0u);
  EXPECT_TRUE(HasSubstr(csv.str(), "\"a \"\"quoted\"\", detail\""));
  PrintRows(c, OutputFormat::kJson, js);
  EXPECT_TRUE(HasSubstr(js.str(), "\"detail\": \"a \\\"quoted\\\", detail\""));
  PrintRows(c, OutputFormat::kTable, table);
  EXPECT_TRUE(HasSubstr(table.str(), "INDEX"));
  EXPECT_TRUE(HasSubstr(table.str(), "3 rows from 14 entries"));
  EXPECT_EQ(CsvField("plain"), "plain");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("line\nbreak"), "\"line\nbreak\"");
  // Formula injection: such a cell opens as text, not as a formula.
  EXPECT_EQ(CsvField("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"");
  EXPECT_EQ(CsvField("+1"), "\"'+1\"");
  EXPECT_EQ(CsvField("-2+3"), "\"'-2+3\"");
  EXPECT_EQ(CsvField("@SUM(A1)"), "\"'@SUM(A1)\"");
  EXPECT_EQ(CsvField("a=b"), "a=b");
  // The table shows a control sequence in a field as an escape, not as a command.
  QueryResult hostile = c;
  hostile.rows.resize(1);
  hostile.rows[0].note = "x\x1b]0;owned\x07";
  std::ostringstream shown;
  PrintRows(hostile, OutputFormat::kTable, shown);
  EXPECT_TRUE(HasSubstr(shown.str(), "x\\x1b]0;owned\\x07")) << shown.str();
  EXPECT_EQ(shown.str().find('\x1b'), std::string::npos);
}

TEST_F(AuditQueryTest, QueriesRefuseAStoreThatIsNotItsCheckpointsLog) {
  BuildLog();
  AppendPlain(20);  // entries no checkpoint covers
  EXPECT_TRUE(HasError(QueryUnconsented(*store_), Status::Code::kFailedPrecondition,
                       "run refbus-audit verify"));
}

TEST(AuditTimeTest, ParseTime) {
  EXPECT_EQ(Must(ParseTime("1970-01-02")), kMillisPerDay);
  EXPECT_EQ(Must(ParseTime("2024-05-01T09:30:00Z")), 1714555800000u);
  EXPECT_EQ(Must(ParseTime("1714555800000")), 1714555800000u);
  for (const char* bad : {"", "2024-13-01", "2024-02-30", "2024-05-01T09:30:00", "yesterday",
                          "2024-5-1", "99999999999999999999"}) {
    EXPECT_TRUE(HasCode(ParseTime(bad), Status::Code::kInvalidArgument)) << bad;
  }
}

}  // namespace
}  // namespace refbus::audit
