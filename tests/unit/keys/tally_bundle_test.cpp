// Tests for keys/linkage_tally.h and keys/tally_bundle.h: the tally's one encoding, its
// signature, the strict bundle parser, and CheckTallyBundle against a broker log built in
// memory (real Merkle tree, checkpoint signed with the broker's directory key).
#include "keys/tally_bundle.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/hash.h"
#include "keys/checkpoint.h"
#include "keys/witness.h"
#include "schema/codec.h"
#include "tests/unit/keys/federation.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
namespace {

using fed::kNow;
using test::HasCode;
using test::IsOk;
using test::Must;
using Code = Status::Code;
using json = nlohmann::json;

const Bytes kLinkage(kTallyLinkageIdBytes, 0x5a);

LinkageTally Tally(const std::string& agency, uint64_t victims, uint64_t items) {
  LinkageTally t;
  t.agency = agency;
  t.linkage_id = kLinkage;
  t.victims = victims;
  t.deletion_items = items;
  t.from_date = "2024-03-01";
  t.to_date = "2026-10-31";
  t.made_at_ms = kNow;
  t.nonce = Bytes(kTallyNonceBytes, 0x11);
  return t;
}

TEST(LinkageTallyTest, StatementHasOneEncoding) {
  const std::string text = Must(TallyStatement(Tally("agency-a", 2, 1283)));
  EXPECT_EQ(text,
            "refbus linkage tally v1\nagency agency-a\nlinkage-id "
            "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\nvictims 2\ndeletion-items 1283\nfrom "
            "2024-03-01\nto 2026-10-31\nmade-at-ms 1780000000000\nnonce "
            "11111111111111111111111111111111\n");
  LinkageTally back = Must(ParseTallyStatement(text));
  EXPECT_EQ(back.victims, 2u);
  EXPECT_EQ(back.deletion_items, 1283u);
  EXPECT_EQ(back.linkage_id, kLinkage);
  auto refused = [&](std::string from, std::string to) {
    std::string t = text;
    t.replace(t.find(from), from.size(), to);
    return HasCode(ParseTallyStatement(t), Code::kMalformed);
  };
  EXPECT_TRUE(refused("victims 2", "victims 02")) << "a leading zero";
  EXPECT_TRUE(refused("victims 2", "victims +2"));
  EXPECT_TRUE(refused("5a5a5a5a", "5A5a5a5a")) << "uppercase hex";
  EXPECT_TRUE(refused("2024-03-01", "2026-02-30")) << "no such day";
  EXPECT_TRUE(refused("2026-10-31", "2023-10-31")) << "the range ends before it starts";
  EXPECT_TRUE(refused("victims 2\n", "victims 2\nextra 1\n"));
  EXPECT_TRUE(refused("1111\n", "1111"));
  EXPECT_TRUE(refused("agency agency-a", "agency agency a"));
  EXPECT_TRUE(
      HasCode(TallyStatement(Tally("agency-a", kMaxTallyVictims + 1, 0)), Code::kInvalidArgument));
  EXPECT_TRUE(IsTallyDate("2024-02-29"));
  EXPECT_FALSE(IsTallyDate("2023-02-29"));
  EXPECT_FALSE(IsTallyDate("1969-12-31"));
}

TEST(LinkageTallyTest, SignatureCoversEveryByte) {
  fed::Federation f;
  const std::string signed_tally =
      Must(SignLinkageTally(f.party("agency-a"), Tally("agency-a", 2, 1283)));
  LinkageTally t = Must(VerifyLinkageTally(signed_tally, f.directory(), kNow));
  EXPECT_EQ(t.agency, "agency-a");
  EXPECT_TRUE(HasCode(SignLinkageTally(f.party("agency-b"), Tally("agency-a", 2, 1)),
                      Code::kInvalidArgument));
  std::string edited = signed_tally;
  edited.replace(edited.find("victims 2"), 9, "victims 3");
  EXPECT_TRUE(HasCode(VerifyLinkageTally(edited, f.directory(), kNow), Code::kUnauthenticated));
  // agency-b's signature over agency-a's statement: the key id is not agency-a's.
  std::string other = Must(SignLinkageTally(f.party("agency-b"), Tally("agency-b", 2, 1283)));
  std::string swapped = signed_tally.substr(0, signed_tally.rfind("signature ")) +
                        other.substr(other.rfind("signature "));
  EXPECT_FALSE(IsOk(VerifyLinkageTally(swapped, f.directory(), kNow)));
  EXPECT_TRUE(HasCode(
      VerifyLinkageTally(signed_tally.substr(0, signed_tally.size() - 1), f.directory(), kNow),
      Code::kMalformed));
}

// A broker log in memory with a few entries and the agencies' LINKAGE_TALLY entries.
class TallyBundleTest : public ::testing::Test {
 protected:
  TallyEvidence Recorded(const std::string& agency, uint64_t victims, uint64_t items) {
    const std::string signed_tally =
        Must(SignLinkageTally(f_.party(agency), Tally(agency, victims, items)));
    schema::AuditEntry e;
    e.index = tree_.Size();
    e.time_ms = kNow;
    e.event = schema::AuditEvent::kLinkageTally;
    e.broker_id = fed::kBroker;
    e.actor = agency;
    e.statement_sha256 = Sha256(AsBytes(signed_tally));
    TallyEvidence ev;
    ev.agency = agency;
    ev.signed_tally = signed_tally;
    ev.broker_id = fed::kBroker;
    ev.index = e.index;
    ev.entry = schema::EncodeAuditEntry(e);
    tree_.AppendEntry(ev.entry);
    return ev;
  }
  // Proofs and a checkpoint of the whole tree for each evidence.
  void Seal(std::vector<TallyEvidence>& evs) {
    Checkpoint cp;
    cp.origin = Must(LogOrigin(f_.directory().federation, fed::kBroker));
    cp.size = tree_.Size();
    cp.root = tree_.Root();
    const std::string note = Must(SignCheckpoint(cp, f_.party(fed::kBroker)));
    for (auto& ev : evs) {
      ev.proof = Must(InclusionProof(tree_, ev.index, tree_.Size()));
      ev.checkpoint = note;
    }
  }
  std::vector<TallyEvidence> ThreeTallies() {
    std::vector<TallyEvidence> evs = {Recorded("agency-a", 2, 1283), Recorded("agency-b", 6, 4000),
                                      Recorded("agency-d", 7, 5461)};
    Seal(evs);
    return evs;
  }
  fed::Federation f_;
  MemoryTree tree_;
};

TEST_F(TallyBundleTest, ABundleOfThreeTalliesVerifiesAndSums) {
  const std::string text = MakeTallyBundle(kLinkage, ThreeTallies());
  CheckedTallyBundle b = Must(CheckTallyBundle(text, f_.directory(), kNow));
  EXPECT_EQ(b.failed, 0u);
  ASSERT_EQ(b.tallies.size(), 3u);
  EXPECT_EQ(b.victims, 15u);
  EXPECT_EQ(b.deletion_items, 10744u);
  EXPECT_EQ(b.from_date, "2024-03-01");
  EXPECT_EQ(b.to_date, "2026-10-31");
  EXPECT_EQ(b.tallies[1].tree_size, 3u);
}

TEST_F(TallyBundleTest, ChangedTallyAndTallyNotInTheLogAreNamed) {
  std::vector<TallyEvidence> evs = ThreeTallies();
  // One byte of agency-b's counts.
  evs[1].signed_tally.replace(evs[1].signed_tally.find("victims 6"), 9, "victims 9");
  // agency-d signed a second tally that its broker never logged, carried with the proof of
  // its first.
  evs[2].signed_tally = Must(SignLinkageTally(f_.party("agency-d"), Tally("agency-d", 70, 5461)));
  CheckedTallyBundle b =
      Must(CheckTallyBundle(MakeTallyBundle(kLinkage, evs), f_.directory(), kNow));
  EXPECT_EQ(b.failed, 2u);
  EXPECT_TRUE(b.tallies[0].ok());
  EXPECT_FALSE(b.tallies[1].ok());
  EXPECT_NE(b.tallies[1].problem.find("not signed by agency-b"), std::string::npos)
      << b.tallies[1].problem;
  EXPECT_FALSE(b.tallies[2].ok());
  EXPECT_NE(b.tallies[2].problem.find("commits to another tally"), std::string::npos)
      << b.tallies[2].problem;
  EXPECT_EQ(b.victims, 2u) << "only the tallies that verify count";
}

TEST_F(TallyBundleTest, ProofCheckpointAndLinkageMustHold) {
  std::vector<TallyEvidence> evs = ThreeTallies();
  // A proof for another entry.
  evs[0].proof = Must(InclusionProof(tree_, 1, tree_.Size()));
  // A checkpoint whose signature is changed in one character.
  std::string& note = evs[1].checkpoint;
  const size_t sig = note.rfind(' ') + 20;
  note[sig] = note[sig] == 'A' ? 'B' : 'A';
  // A tally about another linkage.
  LinkageTally other = Tally("agency-d", 7, 5461);
  other.linkage_id = Bytes(kTallyLinkageIdBytes, 0x01);
  evs[2].signed_tally = Must(SignLinkageTally(f_.party("agency-d"), other));
  CheckedTallyBundle b =
      Must(CheckTallyBundle(MakeTallyBundle(kLinkage, evs), f_.directory(), kNow));
  EXPECT_EQ(b.failed, 3u);
  EXPECT_NE(b.tallies[0].problem.find("not in the signed checkpoint"), std::string::npos)
      << b.tallies[0].problem;
  EXPECT_NE(b.tallies[1].problem.find("checkpoint does not verify"), std::string::npos)
      << b.tallies[1].problem;
  EXPECT_NE(b.tallies[2].problem.find("about linkage 0101"), std::string::npos)
      << b.tallies[2].problem;
  // The same agency twice: the second is named.
  std::vector<TallyEvidence> twice = ThreeTallies();
  twice.push_back(twice[0]);
  b = Must(CheckTallyBundle(MakeTallyBundle(kLinkage, twice), f_.directory(), kNow));
  EXPECT_EQ(b.failed, 1u);
  EXPECT_NE(b.tallies[3].problem.find("second tally of agency-a"), std::string::npos);
}

TEST_F(TallyBundleTest, ParserIsStrict) {
  const std::string text = MakeTallyBundle(kLinkage, ThreeTallies());
  ASSERT_TRUE(IsOk(ParseTallyBundle(text)));
  auto edited = [&](auto edit) {
    json j = json::parse(text);
    edit(j);
    return ParseTallyBundle(j.dump());
  };
  EXPECT_TRUE(HasCode(ParseTallyBundle("{"), Code::kMalformed));
  EXPECT_TRUE(HasCode(edited([](json& j) { j["extra"] = 1; }), Code::kInvalidArgument));
  EXPECT_TRUE(
      HasCode(edited([](json& j) { j["tallies"][0]["extra"] = 1; }), Code::kInvalidArgument));
  EXPECT_TRUE(
      HasCode(edited([](json& j) { j["tallies"][0].erase("proof"); }), Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(edited([](json& j) { j["format"] = "refbus-linkage-bundle/2"; }),
                      Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(edited([](json& j) { j["linkage_id"] = std::string(32, 'A'); }),
                      Code::kInvalidArgument))
      << "uppercase hex";
  EXPECT_TRUE(HasCode(edited([](json& j) { j["linkage_id"] = std::string(30, 'a'); }),
                      Code::kInvalidArgument))
      << "15 bytes";
  EXPECT_TRUE(
      HasCode(edited([](json& j) { j["tallies"][0]["proof"][0] = "00"; }), Code::kInvalidArgument));
  EXPECT_TRUE(
      HasCode(edited([](json& j) { j["tallies"][0]["index"] = -1; }), Code::kInvalidArgument));
  EXPECT_TRUE(
      HasCode(edited([](json& j) { j["tallies"] = json::array(); }), Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(edited([](json& j) {
                        json many = json::array();
                        for (size_t i = 0; i <= kMaxBundleTallies; ++i)
                          many.push_back(j["tallies"][0]);
                        j["tallies"] = many;
                      }),
                      Code::kInvalidArgument));
  // One evidence object alone round-trips.
  TallyEvidence ev = ThreeTallies()[0];
  TallyEvidence back = Must(ParseTallyEvidence(TallyEvidenceJson(ev)));
  EXPECT_EQ(back.signed_tally, ev.signed_tally);
  EXPECT_EQ(back.entry, ev.entry);
  EXPECT_EQ(back.proof, ev.proof);
}

}  // namespace
}  // namespace refbus::keys
