// Witnessing (keys/witness.h): the rules a witness applies before it cosigns, its state and
// evidence records, the names and the directory lookups; and the signature-line helpers of
// keys/checkpoint.h that carry cosignatures between a witness and a log.
#include "keys/witness.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "keys/checkpoint.h"
#include "keys/merkle.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace witness_test {

using test::HasCode;
using test::HasError;
using test::HasSubstr;
using test::IsOk;
using test::Must;

constexpr char kOrigin[] = "refbus/fed-test/seoul-broker";
constexpr char kWitnessName[] = "refbus/fed-test/witness/busan-broker";

Identity NewIdentity(const std::string& party) {
  return Must(Identity::Generate(party, schema::PartyKind::kBroker, 0, 0));
}

// A log: entries "<tag>-0", "<tag>-1", ... in a MemoryTree, and checkpoints of it signed by
// its key.
class Log {
 public:
  Log(const Identity& key, std::string tag) : key_(key), tag_(std::move(tag)) {}
  void Grow(uint64_t to) {
    while (tree_.Size() < to) tree_.AppendEntry(AsBytes(tag_ + "-" + std::to_string(tree_.Size())));
  }
  Hash Root(uint64_t size) const { return Must(RootAt(tree_, size)); }
  std::string Note(uint64_t size, std::string origin = kOrigin) const {
    Checkpoint c;
    c.origin = std::move(origin);
    c.size = size;
    c.root = Root(size);
    return Must(SignCheckpoint(c, key_));
  }
  std::vector<Hash> Proof(uint64_t old_size, uint64_t size) const {
    return Must(ConsistencyProof(tree_, old_size, size));
  }

 private:
  const Identity& key_;
  std::string tag_;
  MemoryTree tree_;
};

class WitnessTest : public ::testing::Test {
 protected:
  WitnessTest()
      : log_key_(NewIdentity("seoul-broker")),
        witness_key_(NewIdentity("busan-broker")),
        log_(log_key_, "a") {
    log_.Grow(64);
    log_keys_.push_back(
        Must(NoteVerifier::Create(kOrigin, NoteKeyType::kEd25519, log_key_.signing_public_key())));
  }

  WitnessDecision Decide(const std::string& note, uint64_t old_size,
                         const std::vector<Hash>& proof = {}) {
    return DecideWitness(state_ ? &*state_ : nullptr, note, kOrigin, log_keys_, old_size, proof);
  }
  // Decides and, when cosigned, takes the new state (as a witness does).
  WitnessDecision Offer(const std::string& note, uint64_t old_size,
                        const std::vector<Hash>& proof = {}) {
    WitnessDecision d = Decide(note, old_size, proof);
    if (d.verdict == WitnessVerdict::kCosign) {
      Cosigned c = Must(CosignDecided(d, note, kWitnessName, witness_key_, 1700000000));
      state_ = c.state;
      last_line_ = c.line;
    }
    return d;
  }
  NoteVerifier WitnessKey() const {
    return Must(NoteVerifier::Create(kWitnessName, NoteKeyType::kCosignatureV1,
                                     witness_key_.signing_public_key()));
  }

  Identity log_key_;
  Identity witness_key_;
  Log log_;
  std::vector<NoteVerifier> log_keys_;
  std::optional<WitnessState> state_;
  std::string last_line_;
};

TEST_F(WitnessTest, FirstCheckpointIsCosignedWithoutProofAndTheCosignatureVerifies) {
  const std::string note = log_.Note(5);
  WitnessDecision d = Offer(note, 0);
  ASSERT_EQ(d.verdict, WitnessVerdict::kCosign) << d.detail;
  EXPECT_EQ(d.witness_size, 0u);
  ASSERT_TRUE(state_.has_value());
  EXPECT_EQ(state_->origin, kOrigin);
  EXPECT_EQ(state_->size, 5u);
  EXPECT_EQ(state_->root, log_.Root(5));
  EXPECT_EQ(state_->note, note);
  EXPECT_EQ(state_->cosigned_at_s, 1700000000u);

  // The line travels back to the log, which adds it to its note: the note then opens with
  // the log key alone (the cosignature is ignored) and with the witness key required.
  NoteSignature sig = Must(ParseSignatureLine(last_line_));
  EXPECT_EQ(sig.name, kWitnessName);
  std::string cosigned = Must(AddNoteSignature(note, sig));
  EXPECT_TRUE(IsOk(OpenCheckpoint(cosigned, kOrigin, log_keys_[0])));
  std::vector<NoteVerifier> witnesses = {WitnessKey()};
  auto opened = OpenCheckpoint(cosigned, kOrigin, log_keys_[0], witnesses, 1);
  ASSERT_TRUE(IsOk(opened));
  ASSERT_EQ(opened->cosignatures.size(), 1u);
  EXPECT_EQ(opened->cosignatures[0].timestamp_s, 1700000000u);
  EXPECT_EQ(Must(VerifyCosignature(opened->body, sig, WitnessKey())), 1700000000u);
}

TEST_F(WitnessTest, ALargerCheckpointNeedsAProofFromTheSizeCosigned) {
  ASSERT_EQ(Offer(log_.Note(5), 0).verdict, WitnessVerdict::kCosign);
  WitnessDecision d = Offer(log_.Note(13), 5, log_.Proof(5, 13));
  ASSERT_EQ(d.verdict, WitnessVerdict::kCosign) << d.detail;
  EXPECT_EQ(d.witness_size, 5u);
  EXPECT_EQ(state_->size, 13u);
  // And on: the state moved.
  EXPECT_EQ(Offer(log_.Note(64), 13, log_.Proof(13, 64)).verdict, WitnessVerdict::kCosign);
  EXPECT_EQ(state_->size, 64u);
}

TEST_F(WitnessTest, StaleOldSizeIsAConflictCarryingTheWitnessSize) {
  ASSERT_EQ(Offer(log_.Note(9), 0).verdict, WitnessVerdict::kCosign);
  // The log believes the witness is at 4 (or never cosigned): 409 with the real size.
  for (uint64_t believed : {uint64_t{4}, uint64_t{0}, uint64_t{12}}) {
    WitnessDecision d = Decide(log_.Note(20), believed,
                               believed == 0 ? std::vector<Hash>{} : log_.Proof(believed, 20));
    EXPECT_EQ(d.verdict, WitnessVerdict::kConflict) << believed;
    EXPECT_EQ(d.witness_size, 9u);
    EXPECT_TRUE(HasSubstr(d.detail, "9"));
  }
  EXPECT_EQ(state_->size, 9u);  // a conflict changes nothing
  // The retry with the witness's size succeeds.
  EXPECT_EQ(Offer(log_.Note(20), 9, log_.Proof(9, 20)).verdict, WitnessVerdict::kCosign);
}

TEST_F(WitnessTest, AForkedLogIsInconsistent) {
  ASSERT_EQ(Offer(log_.Note(16), 0).verdict, WitnessVerdict::kCosign);
  // The same key signs another history.
  Log other(log_key_, "b");
  other.Grow(30);
  // A log whose entries differ from what the witness saw, with a proof from its own tree.
  WitnessDecision d = Decide(other.Note(30), 16, other.Proof(16, 30));
  EXPECT_EQ(d.verdict, WitnessVerdict::kInconsistent) << d.detail;
  EXPECT_EQ(d.witness_size, 16u);
  EXPECT_TRUE(HasSubstr(d.detail, "inconsistent with"));
  // The honest log's proof cannot join it either: a proof for another new root.
  d = Decide(other.Note(30), 16, log_.Proof(16, 30));
  EXPECT_EQ(d.verdict, WitnessVerdict::kInconsistent);
  // Equal size, other root: a fork at one size.
  d = Decide(other.Note(16), 16);
  EXPECT_EQ(d.verdict, WitnessVerdict::kInconsistent);
  EXPECT_EQ(state_->size, 16u);
  // The same checkpoint again is cosigned again (a fresh timestamp, same state).
  EXPECT_EQ(Offer(log_.Note(16), 16).verdict, WitnessVerdict::kCosign);
}

TEST_F(WitnessTest, OlderCheckpointsAndMisplacedProofsAreBadRequests) {
  ASSERT_EQ(Offer(log_.Note(9), 0).verdict, WitnessVerdict::kCosign);
  WitnessDecision d = Decide(log_.Note(4), 9);
  EXPECT_EQ(d.verdict, WitnessVerdict::kBadRequest);
  EXPECT_TRUE(HasSubstr(d.detail, "older"));
  // A proof where none belongs: equal sizes.
  d = Decide(log_.Note(9), 9, log_.Proof(4, 9));
  EXPECT_EQ(d.verdict, WitnessVerdict::kBadRequest);
  // ... and for a first checkpoint.
  state_.reset();
  d = Decide(log_.Note(9), 0, log_.Proof(4, 9));
  EXPECT_EQ(d.verdict, WitnessVerdict::kBadRequest);
  // Not a note at all.
  d = Decide("hello\n", 0);
  EXPECT_EQ(d.verdict, WitnessVerdict::kBadRequest);
}

TEST_F(WitnessTest, OnlyTheExpectedLogSignedByItsKeyIsWitnessed) {
  // Another origin (a broker presenting some other log).
  WitnessDecision d = Decide(log_.Note(5, "refbus/fed-test/busan-broker"), 0);
  EXPECT_EQ(d.verdict, WitnessVerdict::kUnknownLog);
  // Signed by a key the directory does not list for the log.
  Identity stranger = NewIdentity("stranger");
  Log forged(stranger, "a");
  forged.Grow(5);
  d = Decide(forged.Note(5), 0);
  EXPECT_EQ(d.verdict, WitnessVerdict::kBadSignature);
  EXPECT_FALSE(state_.has_value());
  // Other witnesses' cosignature lines (unknown keys here) are ignored.
  Identity other_witness = NewIdentity("incheon-broker");
  std::string note = Must(AddCosignature(log_.Note(5), "refbus/fed-test/witness/incheon-broker",
                                         other_witness, 1700000001));
  EXPECT_EQ(Offer(note, 0).verdict, WitnessVerdict::kCosign);
}

TEST_F(WitnessTest, StateRoundTripsAndDamageIsRefused) {
  ASSERT_EQ(Offer(log_.Note(7), 0).verdict, WitnessVerdict::kCosign);
  Bytes stored = EncodeWitnessState(*state_);
  WitnessState back = Must(DecodeWitnessState(stored));
  EXPECT_EQ(back.origin, state_->origin);
  EXPECT_EQ(back.size, 7u);
  EXPECT_EQ(back.root, state_->root);
  EXPECT_EQ(back.note, state_->note);
  EXPECT_EQ(back.cosigned_at_s, state_->cosigned_at_s);
  for (size_t i = 0; i < stored.size(); i += 7) {
    Bytes bad = stored;
    bad[i] ^= 0x01;
    EXPECT_TRUE(HasCode(DecodeWitnessState(bad), Status::Code::kMalformed)) << i;
  }
  EXPECT_TRUE(HasCode(DecodeWitnessState(Bytes(10, 0)), Status::Code::kMalformed));
  // A record whose size does not match its note is refused, checksum or not.
  WitnessState lying = *state_;
  lying.size = 8;
  EXPECT_TRUE(HasError(DecodeWitnessState(EncodeWitnessState(lying)), Status::Code::kMalformed,
                       "does not say"));
}

TEST_F(WitnessTest, EvidenceRoundTripsAndDamageIsRefused) {
  WitnessEvidence e;
  e.origin = kOrigin;
  e.requester = "seoul-broker";
  e.time_ms = 1700000000123;
  e.cosigned_note = log_.Note(16);
  e.offered_note = log_.Note(30);
  e.old_size = 16;
  e.proof = log_.Proof(16, 30);
  e.detail = "inconsistent";
  Bytes stored = EncodeWitnessEvidence(e);
  WitnessEvidence back = Must(DecodeWitnessEvidence(stored));
  EXPECT_EQ(back.origin, e.origin);
  EXPECT_EQ(back.requester, e.requester);
  EXPECT_EQ(back.time_ms, e.time_ms);
  EXPECT_EQ(back.cosigned_note, e.cosigned_note);
  EXPECT_EQ(back.offered_note, e.offered_note);
  EXPECT_EQ(back.old_size, 16u);
  EXPECT_EQ(back.proof, e.proof);
  EXPECT_EQ(back.detail, e.detail);
  Bytes bad = stored;
  bad.back() ^= 0x40;
  EXPECT_TRUE(HasCode(DecodeWitnessEvidence(bad), Status::Code::kMalformed));
  bad = stored;
  bad.pop_back();
  EXPECT_TRUE(HasCode(DecodeWitnessEvidence(bad), Status::Code::kMalformed));
}

TEST(WitnessNamesTest, LogOriginsAndWitnessNamesNeverCollide) {
  EXPECT_EQ(Must(LogOrigin("fed", "seoul-broker")), "refbus/fed/seoul-broker");
  EXPECT_EQ(Must(WitnessName("fed", "seoul-broker")), "refbus/fed/witness/seoul-broker");
  EXPECT_TRUE(HasCode(LogOrigin("my fed", "seoul-broker"), Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(WitnessName("a+b", "seoul-broker"), Status::Code::kInvalidArgument));
}

schema::Party PartyWith(const std::string& id, schema::PartyKind kind,
                        std::vector<schema::Role> roles, std::vector<const Identity*> keys) {
  schema::Party p;
  p.id = id;
  p.kind = kind;
  p.roles = std::move(roles);
  p.status = schema::PartyStatus::kActive;
  bool first = true;
  for (const Identity* k : keys) {
    schema::KeyRecord r;
    r.signing_key = k->signing_public_key();
    r.state = first ? schema::KeyState::kActive : schema::KeyState::kRetired;
    first = false;
    p.keys.push_back(std::move(r));
  }
  return p;
}

TEST(WitnessDirectoryTest, KeysOfLogsAndWitnessesComeFromTheDirectory) {
  Identity seoul = NewIdentity("seoul-broker");
  Identity seoul_old = NewIdentity("seoul-broker");
  Identity busan = NewIdentity("busan-broker");
  Identity relay = NewIdentity("relay-broker");
  Identity auditor = NewIdentity("audit-office");
  Identity gone = NewIdentity("gone-broker");
  schema::Directory dir;
  dir.federation = "fed";
  dir.serial = 3;
  using schema::PartyKind;
  using schema::Role;
  dir.brokers.push_back(PartyWith("seoul-broker", PartyKind::kBroker,
                                  {Role::kRelay, Role::kWitness}, {&seoul, &seoul_old}));
  dir.brokers.push_back(
      PartyWith("busan-broker", PartyKind::kBroker, {Role::kRelay, Role::kWitness}, {&busan}));
  dir.brokers.push_back(PartyWith("relay-broker", PartyKind::kBroker, {Role::kRelay}, {&relay}));
  dir.brokers.push_back(PartyWith("gone-broker", PartyKind::kBroker, {Role::kWitness}, {&gone}));
  dir.brokers.back().status = schema::PartyStatus::kRevoked;
  dir.auditors.push_back(
      PartyWith("audit-office", PartyKind::kAuditor, {Role::kAudit, Role::kWitness}, {&auditor}));
  dir.agencies.push_back(
      PartyWith("seoul-wee-01", PartyKind::kAgency, {Role::kWitness}, {&auditor}));

  // A log's keys: active and retired, named by its origin.
  auto log = Must(LogVerifiers(dir, "seoul-broker"));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].name(), "refbus/fed/seoul-broker");
  EXPECT_EQ(log[0].type(), NoteKeyType::kEd25519);
  EXPECT_TRUE(HasCode(LogVerifiers(dir, "seoul-wee-01"), Status::Code::kNotFound));
  EXPECT_TRUE(HasCode(LogVerifiers(dir, "gone-broker"), Status::Code::kRevoked));
  dir.brokers[0].keys[1].state = schema::KeyState::kRevoked;
  EXPECT_EQ(Must(LogVerifiers(dir, "seoul-broker")).size(), 1u);

  // Witnesses: active brokers and auditors with the witness role, but not the log itself.
  auto all = Must(WitnessKeys(dir, "seoul-broker"));
  std::vector<std::string> ids;
  for (const auto& w : all) {
    ids.push_back(w.party_id);
    EXPECT_EQ(w.verifier.type(), NoteKeyType::kCosignatureV1);
    EXPECT_EQ(w.verifier.name(), "refbus/fed/witness/" + w.party_id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"busan-broker", "audit-office"}));
  EXPECT_TRUE(IsOk(WitnessVerifiersOf(dir, "busan-broker")));
  EXPECT_TRUE(HasCode(WitnessVerifiersOf(dir, "relay-broker"), Status::Code::kNotFound));
  EXPECT_TRUE(HasCode(WitnessVerifiersOf(dir, "gone-broker"), Status::Code::kNotFound));
  EXPECT_TRUE(HasCode(WitnessVerifiersOf(dir, "seoul-wee-01"), Status::Code::kNotFound));
}

TEST(SignatureLineTest, LinesParseFormatAndReplaceBySameKey) {
  Identity log_key = NewIdentity("seoul-broker");
  Identity w = NewIdentity("busan-broker");
  Checkpoint c;
  c.origin = kOrigin;
  c.size = 3;
  c.root = LeafHash(AsBytes("x"));
  std::string note = Must(SignCheckpoint(c, log_key));
  std::string body = Must(ParseSignedNote(note)).text;
  NoteSignature first = Must(CosignCheckpoint(body, kWitnessName, w, 100));
  std::string line = Must(FormatSignatureLine(first));
  EXPECT_EQ(line.back(), '\n');
  NoteSignature back = Must(ParseSignatureLine(line));
  EXPECT_EQ(back.name, first.name);
  EXPECT_EQ(back.key_id, first.key_id);
  EXPECT_EQ(back.signature, first.signature);
  EXPECT_TRUE(IsOk(ParseSignatureLine(line.substr(0, line.size() - 1))));  // without newline
  EXPECT_TRUE(HasCode(ParseSignatureLine(line + line), Status::Code::kMalformed));
  EXPECT_TRUE(HasCode(ParseSignatureLine("- not a line"), Status::Code::kMalformed));
  EXPECT_TRUE(HasCode(ParseSignatureLine(""), Status::Code::kMalformed));

  std::string once = Must(AddNoteSignature(note, first));
  NoteSignature later = Must(CosignCheckpoint(body, kWitnessName, w, 200));
  std::string twice = Must(AddNoteSignature(once, later));
  SignedNote parsed = Must(ParseSignedNote(twice));
  ASSERT_EQ(parsed.signatures.size(), 2u);  // the log's and the newer cosignature
  EXPECT_EQ(parsed.signatures[1].signature, later.signature);
  EXPECT_EQ(parsed.text, body);  // the signed text is untouched
  // The log's signature still verifies with the log key alone.
  EXPECT_TRUE(IsOk(OpenCheckpoint(
      twice, kOrigin,
      Must(NoteVerifier::Create(kOrigin, NoteKeyType::kEd25519, log_key.signing_public_key())))));
}

}  // namespace witness_test
}  // namespace refbus::keys
