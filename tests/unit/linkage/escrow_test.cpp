// The matching escrow (linkage/escrow.h) on a real LMDB environment: one entry cannot be
// opened; one agency's entries never match each other; entries from two agencies match and
// open both records (what each agency's linkage notice says); a withdrawn or expired entry
// no longer matches; a share that lies opens nothing. Times are given, never read.
#include "linkage/escrow.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <memory>
#include <set>

#include "tests/unit/test_util.h"

namespace refbus::linkage {
namespace {

using test::IsOk;

constexpr UnixMillis kEscrowT0 = 1'800'000'000'000;
constexpr UnixMillis kEscrowYear = 365 * kMillisPerDay;

struct EscrowFixture {
  test::TempDir dir;
  std::unique_ptr<lmdb::Env> env;
  std::unique_ptr<Escrow> escrow;
  explicit EscrowFixture(uint32_t threshold = kDefaultEscrowThreshold) {
    auto e = lmdb::Env::Open(dir.Join("escrow"), lmdb::EnvOptions{});
    if (!e.ok()) throw std::runtime_error(e.status().ToString());
    env = std::move(*e);
    auto x = Escrow::Open(*env, threshold);
    if (!x.ok()) throw std::runtime_error(x.status().ToString());
    escrow = std::make_unique<Escrow>(std::move(*x));
  }
};

Pseudonym EscrowTestPseudonym(uint8_t seed) {
  Pseudonym p{};
  const uint8_t s[1] = {seed};
  crypto_generichash(p.data(), p.size(), s, 1, nullptr, 0);
  return p;
}

EscrowRecord RecordOf(const std::string& agency, const std::string& case_ref) {
  EscrowRecord r;
  r.agency_id = agency;
  r.case_pseudonym = case_ref;
  r.kind = IdentifierKind::kAccount;
  r.first_seen_ms = kEscrowT0 - 30 * kMillisPerDay;
  r.last_seen_ms = kEscrowT0;
  r.victims = 3;
  r.items = 120;
  return r;
}

EscrowEntry EntryOf(const Pseudonym& p, const std::string& agency, const std::string& case_ref,
                    uint32_t threshold = kDefaultEscrowThreshold) {
  auto e = MakeEscrowEntry(p, RecordOf(agency, case_ref), threshold, kEscrowT0 + kEscrowYear);
  if (!e.ok()) throw std::runtime_error(e.status().ToString());
  return *e;
}

TEST(EscrowTest, OneEntryCannotBeOpened) {
  EscrowFixture f;
  auto r = f.escrow->Add("incheon-center", EntryOf(EscrowTestPseudonym(1), "incheon-center", "c1"),
                         kEscrowT0);
  ASSERT_TRUE(IsOk(r));
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(*f.escrow->CountUnder(EscrowTag(EscrowTestPseudonym(1))), 1u);
}

TEST(EscrowTest, TwoEntriesFromOneAgencyDoNotMatch) {
  EscrowFixture f;
  const Pseudonym p = EscrowTestPseudonym(2);
  ASSERT_FALSE(
      f.escrow->Add("incheon-center", EntryOf(p, "incheon-center", "c1"), kEscrowT0)->has_value());
  // A second case at the same agency: the same point (x depends on agency and tag), so the
  // escrow holds one share and can open nothing.
  auto r = f.escrow->Add("incheon-center", EntryOf(p, "incheon-center", "c2"), kEscrowT0);
  ASSERT_TRUE(IsOk(r));
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(*f.escrow->CountUnder(EscrowTag(p)), 1u);
}

TEST(EscrowTest, TwoAgenciesMatchAndBothRecordsOpen) {
  EscrowFixture f;
  const Pseudonym p = EscrowTestPseudonym(3);
  ASSERT_FALSE(f.escrow->Add("incheon-center", EntryOf(p, "incheon-center", "inc-7"), kEscrowT0)
                   ->has_value());
  // An unrelated identifier at the other center matches nothing.
  ASSERT_FALSE(
      f.escrow
          ->Add("seoul-center", EntryOf(EscrowTestPseudonym(4), "seoul-center", "s-1"), kEscrowT0)
          ->has_value());
  auto r = f.escrow->Add("seoul-center", EntryOf(p, "seoul-center", "s-9"), kEscrowT0);
  ASSERT_TRUE(IsOk(r));
  ASSERT_TRUE(r->has_value());
  const LinkageMatch& m = **r;
  EXPECT_EQ(m.linkage_id.size(), kLinkageIdBytes);
  EXPECT_EQ(m.unopened, 0u);
  ASSERT_EQ(m.records.size(), 2u);
  std::set<std::string> agencies;
  for (const auto& rec : m.records) {
    agencies.insert(rec.agency_id);
    EXPECT_EQ(rec.kind, IdentifierKind::kAccount);
    EXPECT_EQ(rec.victims, 3u);
    EXPECT_EQ(rec.last_seen_ms, kEscrowT0);
    EXPECT_EQ(rec.case_pseudonym, rec.agency_id == "seoul-center" ? "s-9" : "inc-7");
  }
  EXPECT_EQ(agencies, (std::set<std::string>{"incheon-center", "seoul-center"}));
  // The linkage id is the pseudonym's, not the pair's: a third center joins the same one.
  auto third = f.escrow->Add("busan-center", EntryOf(p, "busan-center", "b-2"), kEscrowT0);
  ASSERT_TRUE(IsOk(third));
  ASSERT_TRUE(third->has_value());
  EXPECT_EQ((*third)->linkage_id, m.linkage_id);
  EXPECT_EQ((*third)->records.size(), 3u);
}

TEST(EscrowTest, AWithdrawnOrExpiredEntryNoLongerMatches) {
  EscrowFixture f;
  const Pseudonym p = EscrowTestPseudonym(5);
  ASSERT_FALSE(
      f.escrow->Add("incheon-center", EntryOf(p, "incheon-center", "c1"), kEscrowT0)->has_value());
  EXPECT_EQ(*f.escrow->Withdraw("incheon-center", EscrowTag(p)), 1u);  // consent revoked
  EXPECT_EQ(*f.escrow->Withdraw("incheon-center", EscrowTag(p)), 0u);
  auto r = f.escrow->Add("seoul-center", EntryOf(p, "seoul-center", "s1"), kEscrowT0);
  ASSERT_TRUE(IsOk(r));
  EXPECT_FALSE(r->has_value());
  // Retention: seoul's entry expires; a later entry from incheon finds nothing to match.
  EXPECT_EQ(*f.escrow->ExpireBefore(kEscrowT0 + kEscrowYear), 1u);
  auto later = f.escrow->Add("incheon-center", EntryOf(p, "incheon-center", "c1"), kEscrowT0);
  ASSERT_TRUE(IsOk(later));
  EXPECT_FALSE(later->has_value());
}

TEST(EscrowTest, LiesOpenNothing) {
  EscrowFixture f;
  const Pseudonym p = EscrowTestPseudonym(6);
  // An entry posing as another agency: the escrow puts it at the submitter's x, where its
  // share is off the line, so the pair opens nothing.
  ASSERT_FALSE(
      f.escrow->Add("mallory-center", EntryOf(p, "incheon-center", "x"), kEscrowT0)->has_value());
  auto r = f.escrow->Add("seoul-center", EntryOf(p, "seoul-center", "s1"), kEscrowT0);
  ASSERT_TRUE(IsOk(r));
  EXPECT_FALSE(r->has_value());
  // A share for a higher threshold does not combine with threshold-2 shares either.
  EscrowFixture g;
  const Pseudonym q = EscrowTestPseudonym(7);
  ASSERT_FALSE(g.escrow->Add("incheon-center", EntryOf(q, "incheon-center", "c", 3), kEscrowT0)
                   ->has_value());
  EXPECT_FALSE(
      g.escrow->Add("seoul-center", EntryOf(q, "seoul-center", "s"), kEscrowT0)->has_value());
  // Malformed or expired entries are refused.
  EscrowEntry bad = EntryOf(q, "busan-center", "b");
  bad.tag.pop_back();
  EXPECT_EQ(g.escrow->Add("busan-center", bad, kEscrowT0).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(
      g.escrow->Add("busan-center", EntryOf(q, "busan-center", "b"), kEscrowT0 + 2 * kEscrowYear)
          .status()
          .code(),
      Status::Code::kInvalidArgument);
  EXPECT_EQ(Escrow::Open(*g.env, 1).status().code(), Status::Code::kInvalidArgument);
}

// A lying agency's share under the tag (a point off the line) must not keep two honest
// agencies from matching, wherever its point sorts among the held ones: over 20
// identifiers, each with the lie entered first.
TEST(EscrowTest, ABadShareNeitherOpensNorBlocksAMatch) {
  for (uint8_t seed = 20; seed < 40; ++seed) {
    EscrowFixture f;
    const Pseudonym p = EscrowTestPseudonym(seed);
    ASSERT_FALSE(
        f.escrow->Add("mallory-center", EntryOf(p, "incheon-center", "m"), kEscrowT0)->has_value());
    ASSERT_FALSE(
        f.escrow->Add("incheon-center", EntryOf(p, "incheon-center", "i"), kEscrowT0)->has_value());
    auto r = f.escrow->Add("seoul-center", EntryOf(p, "seoul-center", "s"), kEscrowT0);
    ASSERT_TRUE(IsOk(r));
    ASSERT_TRUE(r->has_value()) << "seed " << int{seed};
    std::set<std::string> opened;
    for (const auto& rec : (*r)->records) opened.insert(rec.agency_id);
    EXPECT_EQ(opened, (std::set<std::string>{"incheon-center", "seoul-center"}));
    EXPECT_EQ((*r)->unopened, 1u);
  }
}

// y + L encodes the same scalar as y, unreduced: refused, and the agency's earlier share
// on the tag stays (it still matches).
TEST(EscrowTest, AnUnreducedShareIsRefusedAndTheEarlierOneStays) {
  EscrowFixture f;
  const Pseudonym p = EscrowTestPseudonym(9);
  ASSERT_FALSE(
      f.escrow->Add("incheon-center", EntryOf(p, "incheon-center", "i"), kEscrowT0)->has_value());
  EscrowEntry bad = EntryOf(p, "incheon-center", "i2");
  constexpr uint8_t kOrder[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                  0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                  0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
  unsigned carry = 0;
  for (size_t i = 0; i < 32; ++i) {
    const unsigned sum = bad.y[i] + kOrder[i] + carry;
    bad.y[i] = static_cast<uint8_t>(sum);
    carry = sum >> 8;
  }
  ASSERT_EQ(carry, 0u);
  auto refused = f.escrow->Add("incheon-center", bad, kEscrowT0);
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("not reduced"), std::string::npos);
  EXPECT_EQ(CheckEscrowEntry(bad, kEscrowT0).code(), Status::Code::kInvalidArgument);
  auto r = f.escrow->Add("seoul-center", EntryOf(p, "seoul-center", "s"), kEscrowT0);
  ASSERT_TRUE(IsOk(r));
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->records.size(), 2u);
}

TEST(EscrowTest, ThresholdThreeNeedsThreeAgencies) {
  EscrowFixture f(3);
  const Pseudonym p = EscrowTestPseudonym(8);
  ASSERT_FALSE(f.escrow->Add("a-center", EntryOf(p, "a-center", "1", 3), kEscrowT0)->has_value());
  ASSERT_FALSE(f.escrow->Add("b-center", EntryOf(p, "b-center", "2", 3), kEscrowT0)->has_value());
  auto r = f.escrow->Add("c-center", EntryOf(p, "c-center", "3", 3), kEscrowT0);
  ASSERT_TRUE(IsOk(r));
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->records.size(), 3u);
}

}  // namespace
}  // namespace refbus::linkage
