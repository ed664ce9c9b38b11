// The deletion center's watch list and statistics (agent/deletion_work.h): the signature,
// version order and delta application of a published watch list, the work queue's keys
// (one per canonical URL), and the suppression of small counts.
#include "agent/deletion_work.h"

#include <gtest/gtest.h>

#include "keys/directory.h"
#include "keys/identity.h"

namespace refbus::agent {
namespace {

constexpr UnixMillis kWatchT0 = 1'780'000'000'000;

std::string WatchHash(char c) { return std::string(64, c); }

class WatchListTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto id = keys::Identity::Generate("busan-dsc", schema::PartyKind::kAgency, kWatchT0,
                                       keys::kPrekeyLifetimeMs);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    publisher_ = std::make_unique<keys::Identity>(std::move(*id));
    auto other = keys::Identity::Generate("busan-dsc", schema::PartyKind::kAgency, kWatchT0,
                                          keys::kPrekeyLifetimeMs);
    ASSERT_TRUE(other.ok());
    impostor_ = std::make_unique<keys::Identity>(std::move(*other));
    schema::Party p;
    p.id = "busan-dsc";
    p.kind = schema::PartyKind::kAgency;
    p.agency_type = schema::AgencyType::kDeletionCenter;
    p.roles = {schema::Role::kDeletion};
    schema::KeyRecord k;
    k.signing_key = publisher_->signing_public_key();
    k.transport_key = publisher_->transport_public_key();
    k.state = schema::KeyState::kActive;
    p.keys.push_back(k);
    p.status = schema::PartyStatus::kActive;
    dir_.agencies.push_back(p);
  }
  WatchList List(uint64_t version, uint64_t base, std::set<std::string> added,
                 std::set<std::string> removed = {}) const {
    WatchList w;
    w.publisher = "busan-dsc";
    w.version = version;
    w.base_version = base;
    w.issued_at_ms = kWatchT0 + version;
    w.added = std::move(added);
    w.removed = std::move(removed);
    return w;
  }
  Result<WatchList> Verify(const nlohmann::json& file) const {
    return VerifyWatchList(file, dir_, kWatchT0 + 1000);
  }

  std::unique_ptr<keys::Identity> publisher_, impostor_;
  schema::Directory dir_;
};

TEST_F(WatchListTest, SignatureVerifiesAndATamperedOrForeignListIsRefused) {
  nlohmann::json file = SignWatchList(List(1, 0, {WatchHash('a'), WatchHash('b')}), *publisher_);
  auto ok = Verify(file);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->added.size(), 2u);
  EXPECT_EQ(ok->publisher, "busan-dsc");

  nlohmann::json tampered = file;  // a hash swapped after signing
  std::string text = tampered["list"];
  text.replace(text.find(WatchHash('b')), 64, WatchHash('c'));
  tampered["list"] = text;
  EXPECT_EQ(Verify(tampered).status().code(), Status::Code::kPermissionDenied);

  // Signed by another key under the publisher's name: its key is not in the directory.
  EXPECT_FALSE(Verify(SignWatchList(List(1, 0, {WatchHash('a')}), *impostor_)).ok());

  dir_.agencies[0].roles = {schema::Role::kRefer};  // not a deletion center
  EXPECT_EQ(Verify(file).status().code(), Status::Code::kPermissionDenied);
}

TEST_F(WatchListTest, AnOlderOrEqualVersionIsRefused) {
  WatchHeld held;
  ASSERT_TRUE(ApplyWatchList(held, List(3, 0, {WatchHash('a')})).ok());
  EXPECT_EQ(held.version, 3u);
  Status same = ApplyWatchList(held, List(3, 0, {WatchHash('b')}));
  EXPECT_EQ(same.code(), Status::Code::kFailedPrecondition) << same.ToString();
  Status older = ApplyWatchList(held, List(2, 0, {WatchHash('b')}));
  EXPECT_EQ(older.code(), Status::Code::kFailedPrecondition) << older.ToString();
  EXPECT_EQ(held.hashes, std::set<std::string>({WatchHash('a')}))
      << "a refused list changes nothing";
}

TEST_F(WatchListTest, DeltasApplyOnlyOverTheVersionHeld) {
  WatchHeld held;
  ASSERT_TRUE(ApplyWatchList(held, List(1, 0, {WatchHash('a'), WatchHash('b')})).ok());
  // The delta travels signed and is verified like a full list.
  auto delta = Verify(SignWatchList(List(2, 1, {WatchHash('c')}, {WatchHash('a')}), *publisher_));
  ASSERT_TRUE(delta.ok()) << delta.status().ToString();
  ASSERT_TRUE(ApplyWatchList(held, *delta).ok());
  EXPECT_EQ(held.hashes, std::set<std::string>({WatchHash('b'), WatchHash('c')}));
  EXPECT_EQ(held.version, 2u);
  // A delta over version 3 when 2 is held: refused, asking for the full list.
  Status gap = ApplyWatchList(held, List(4, 3, {WatchHash('d')}));
  EXPECT_EQ(gap.code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(gap.message().find("ask the publisher for the full list"), std::string::npos);
  // The full list replaces what is held.
  ASSERT_TRUE(ApplyWatchList(held, List(4, 0, {WatchHash('d')})).ok());
  EXPECT_EQ(held.hashes, std::set<std::string>({WatchHash('d')}));
}

TEST_F(WatchListTest, MalformedTextIsRefused) {
  EXPECT_FALSE(ParseWatchListText("hello\n").ok());
  std::string text = WatchListText(List(1, 0, {WatchHash('a')}));
  EXPECT_TRUE(ParseWatchListText(text).ok());
  EXPECT_FALSE(ParseWatchListText(text + "-" + WatchHash('b') + "\n").ok())
      << "a full list removes nothing";
  EXPECT_FALSE(ParseWatchListText(text + "+" + std::string(64, 'G') + "\n").ok());
  EXPECT_FALSE(ParseWatchListText(text.substr(0, text.size() - 1)).ok());
}

TEST(DeletionWorkKeysTest, OneKeyForEveryWayOfTypingAUrl) {
  schema::DeletionItem a{"1", "https://Video.Example/watch?v=77", {}, "", ""};
  schema::DeletionItem b{"2", "HTTPS://video.example:443/watch?v=77", {}, "", ""};
  schema::DeletionItem c{"3", "https://video.example/watch?v=78", {}, "", ""};
  EXPECT_EQ(WorkKeys(a), WorkKeys(b));
  EXPECT_NE(WorkKeys(a), WorkKeys(c));
  EXPECT_EQ(WorkKeys(a).front().find("video"), std::string::npos) << "no URL in the clear";
}

TEST(DeletionStatsTest, CountsUnderFiveAndTheirComplementAreSuppressed) {
  std::string csv = StatsCsv("2026-11", {{"police-unit", "seoul", "removed", 40},
                                         {"police-unit", "seoul", "notified", 3},
                                         {"police-unit", "seoul", "received", 12},
                                         {"counseling-center", "busan", "removed", 7},
                                         {"counseling-center", "busan", "reappeared", 6}});
  EXPECT_EQ(csv,
            "month,agency_type,region,outcome,count\n"
            "2026-11,counseling-center,busan,reappeared,6\n"
            "2026-11,counseling-center,busan,removed,7\n"
            "2026-11,police-unit,seoul,notified,<5\n"
            "2026-11,police-unit,seoul,received,suppressed\n"
            "2026-11,police-unit,seoul,removed,40\n");
  // Two small cells in a group protect each other: nothing more is hidden.
  csv = StatsCsv("2026-11", {{"wee-center", "seoul", "removed", 1},
                             {"wee-center", "seoul", "notified", 4},
                             {"wee-center", "seoul", "received", 9}});
  EXPECT_NE(csv.find("received,9\n"), std::string::npos) << csv;
  EXPECT_EQ(csv.find(",1\n"), std::string::npos) << csv;
  EXPECT_EQ(csv.find(",4\n"), std::string::npos) << csv;
}

TEST(DeletionStatsTest, MonthRange) {
  auto r = MonthRange("2026-12");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 1796083200000u);   // 2026-12-01T00:00:00Z
  EXPECT_EQ(r->second, 1798761600000u);  // 2027-01-01T00:00:00Z
  EXPECT_FALSE(MonthRange("2026-13").ok());
  EXPECT_FALSE(MonthRange("26-12").ok());
}

}  // namespace
}  // namespace refbus::agent
