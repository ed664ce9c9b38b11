// The escrow's deposits (agent/linkage_store.h, PROTOCOL.md 13.6) on a real LMDB
// environment: a share comes from the authenticated agency; one agency's entries from two
// cases are one share, kept while either case's grant holds it and withdrawn with the last;
// expired deposits go the same way.
#include "agent/linkage_store.h"

#include <gtest/gtest.h>

#include "tests/unit/test_util.h"

namespace refbus::agent {
// Named after the file: unity batches share one scope.
namespace linkage_store_test {

using test::Must;

constexpr UnixMillis kNow = 1'800'000'000'000;

linkage::Pseudonym PseudonymOf(uint8_t fill) {
  linkage::Pseudonym p{};
  p.fill(fill);
  return p;
}

linkage::EscrowEntry EntryFor(const std::string& agency, const std::string& case_ref,
                              uint8_t identifier, UnixMillis expires) {
  linkage::EscrowRecord r;
  r.agency_id = agency;
  r.case_pseudonym = case_ref;
  r.kind = linkage::IdentifierKind::kPhone;
  r.first_seen_ms = kNow;
  r.last_seen_ms = kNow;
  return Must(linkage::MakeEscrowEntry(PseudonymOf(identifier), r, 2, expires));
}

// Deposits agency's entry on identifier under grant; returns whether it made a match.
bool Put(LinkageStore& s, const std::string& agency, const std::string& grant, uint8_t identifier,
         UnixMillis expires = kNow + kMillisPerDay) {
  const std::string case_ref = "CASE-" + grant;
  auto m = Must(s.Deposit({agency, grant, case_ref, expires},
                          EntryFor(agency, case_ref, identifier, expires), kNow));
  return m.has_value();
}

TEST(LinkageStoreTest, TwoAgenciesMatchAndTheDepositsNameTheirGrants) {
  test::TempDir dir;
  auto s = Must(LinkageStore::Open(dir.path(), 2));
  EXPECT_FALSE(Put(*s, "seoul-center", "g1", 7));
  EXPECT_FALSE(Put(*s, "seoul-center", "g2", 8));  // another identifier
  EXPECT_TRUE(Put(*s, "incheon-center", "g3", 7));
  const Bytes tag = linkage::EscrowTag(PseudonymOf(7));
  auto deps = Must(s->DepositsOf(tag, "seoul-center"));
  ASSERT_EQ(deps.size(), 1u);
  EXPECT_EQ(deps[0].grant_id, "g1");
  EXPECT_EQ(deps[0].case_ref, "CASE-g1");
}

TEST(LinkageStoreTest, OneAgencysShareStaysUntilItsLastGrantIsWithdrawn) {
  test::TempDir dir;
  auto s = Must(LinkageStore::Open(dir.path(), 2));
  EXPECT_FALSE(Put(*s, "seoul-center", "g1", 7));
  EXPECT_FALSE(Put(*s, "seoul-center", "g2", 7));  // the same identifier, another case
  EXPECT_EQ(Must(s->WithdrawGrant("g1")), 1u);
  EXPECT_TRUE(Put(*s, "incheon-center", "g3", 7)) << "g2 still holds Seoul's share";
  EXPECT_EQ(Must(s->WithdrawGrant("g2")), 1u);
  EXPECT_FALSE(Put(*s, "incheon-center", "g3", 7)) << "Seoul's share left with its last grant";
  EXPECT_EQ(Must(s->WithdrawGrant("g-unknown")), 0u);
}

TEST(LinkageStoreTest, ExpiredDepositsTakeTheirShareWithThem) {
  test::TempDir dir;
  auto s = Must(LinkageStore::Open(dir.path(), 2));
  EXPECT_FALSE(Put(*s, "seoul-center", "g1", 9, kNow + 10));
  EXPECT_EQ(Must(s->Expire(kNow + 10)), 1u);
  EXPECT_EQ(Must(s->HeldEntries()), 0u);
  EXPECT_FALSE(Put(*s, "incheon-center", "g3", 9));
}

// Tallies (PROTOCOL.md 13.8): one per linkage id and agency; a later made_at_ms replaces the
// held one, the same tally is kept as it was, an older or equally old other one is refused
// and changes nothing.
TEST(LinkageStoreTest, ATallyReplacesTheHeldOneOnlyIfNewer) {
  test::TempDir dir;
  auto s = Must(LinkageStore::Open(dir.path(), 2));
  const std::string id(32, 'a');
  auto tally = [](UnixMillis made, const std::string& sha) {
    return TallyRecord{
        "seoul-center", "{\"v\":" + std::to_string(made) + "}", made, sha, "bus", "m-" + sha,
        made + 1};
  };
  UnixMillis held = 0;
  EXPECT_EQ(Must(s->PutTallyIfNewer(id, tally(kNow, "s1"), &held)), TallyPut::kStored);
  EXPECT_EQ(Must(s->PutTallyIfNewer(id, tally(kNow, "s1"), &held)), TallyPut::kSame);
  EXPECT_EQ(Must(s->PutTallyIfNewer(id, tally(kNow, "s2"), &held)), TallyPut::kOlder);
  EXPECT_EQ(Must(s->PutTallyIfNewer(id, tally(kNow - 1, "s0"), &held)), TallyPut::kOlder);
  EXPECT_EQ(held, kNow);
  EXPECT_EQ(Must(s->PutTallyIfNewer(id, tally(kNow + 5, "s3"), &held)), TallyPut::kStored);
  auto all = Must(s->TallyRecords(id));
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].tally_sha256, "s3");
  EXPECT_EQ(all[0].message_id, "m-s3");
  EXPECT_EQ(Must(s->Tallies(std::string(32, 'b'))).size(), 0u);
}

}  // namespace linkage_store_test
}  // namespace refbus::agent
