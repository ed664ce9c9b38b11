// A watch-list file in parts (agent/watch_parts.h, PROTOCOL.md 10.3): split, staged in a real
// case store in any order, put together; one file per sender, late parts ignored, sizes that
// contradict the first part and digests that do not match refused, staging bounded.
#include "agent/watch_parts.h"

#include <gtest/gtest.h>

#include <string>

#include "core/hash.h"
#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using ::refbus::test::TempDir;

constexpr UnixMillis kWatchPartsT0 = 1'780'000'000'000;

// A text of n bytes that differs along its length (a misplaced part changes the digest).
std::string WatchText(size_t n, char salt) {
  std::string s(n, ' ');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i / 7 + salt) % 26);
  return s;
}

class WatchPartsTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = test::Must(CaseStore::Open(dir_.Join("cases"))); }
  Result<WatchPartStaged> Stage(const std::string& sender, const schema::WatchListPart& p) {
    auto txn = test::Must(store_->Begin(true));
    auto out = StageWatchPart(txn, sender, p, kWatchPartsT0);
    // Committed even after a refusal, as the engine does (it records the refusal in the
    // same transaction): a digest that does not match drops the staging.
    EXPECT_TRUE(txn.Commit().ok());
    return out;
  }
  TempDir dir_;
  std::unique_ptr<CaseStore> store_;
};

TEST_F(WatchPartsTest, PartsInAnyOrderGiveTheFileBackOnce) {
  const std::string text = WatchText(schema::kWatchListPartBytes * 2 + 100, 1);
  auto parts = test::Must(SplitWatchFile(text));
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2].data.size(), 100u);
  EXPECT_EQ(parts[0].file_sha256, Sha256(AsBytes(text)));
  auto a = test::Must(Stage("busan-dsc", parts[2]));
  EXPECT_FALSE(a.complete());
  EXPECT_EQ(a.staged.held.size(), 1u);
  EXPECT_TRUE(test::Must(Stage("busan-dsc", parts[2])).duplicate);
  EXPECT_FALSE(test::Must(Stage("busan-dsc", parts[0])).complete());
  auto last = test::Must(Stage("busan-dsc", parts[1]));
  ASSERT_TRUE(last.complete());
  EXPECT_EQ(last.file_text, text);
  EXPECT_TRUE(last.staged.idle());
  // The same file's parts again (an answer to a second ask): ignored, not started again.
  auto late = test::Must(Stage("busan-dsc", parts[0]));
  EXPECT_TRUE(late.stale);
  auto txn = test::Must(store_->Begin(false));
  auto staged = test::Must(ListWatchStaged(txn));
  ASSERT_EQ(staged.size(), 1u);
  EXPECT_TRUE(staged[0].idle()) << "no part kept once the file is whole";
  EXPECT_EQ(test::Must(txn.ListPrefix(Table::kWatchParts, "p:")).size(), 0u);
}

TEST_F(WatchPartsTest, ANewerFileReplacesTheUnfinishedOneAndItsLatePartsAreIgnored) {
  auto old_parts = test::Must(SplitWatchFile(WatchText(schema::kMaxWatchListFileBytes + 1, 2)));
  auto new_parts = test::Must(SplitWatchFile(WatchText(schema::kMaxWatchListFileBytes + 9, 3)));
  EXPECT_FALSE(test::Must(Stage("busan-dsc", old_parts[0])).replaced);
  EXPECT_TRUE(test::Must(Stage("busan-dsc", new_parts[1])).replaced);
  EXPECT_TRUE(test::Must(Stage("busan-dsc", old_parts[1])).stale);
  // Another sender's file is its own.
  EXPECT_FALSE(test::Must(Stage("daegu-dsc", old_parts[1])).stale);
  EXPECT_TRUE(test::Must(Stage("busan-dsc", new_parts[0])).complete());
}

TEST_F(WatchPartsTest, ContradictingSizesAndAWrongDigestAreRefused) {
  auto parts = test::Must(SplitWatchFile(WatchText(schema::kWatchListPartBytes * 2, 4)));
  ASSERT_EQ(parts.size(), 2u);
  ASSERT_TRUE(Stage("busan-dsc", parts[0]).ok());
  schema::WatchListPart liar = parts[1];
  liar.total_bytes += schema::kWatchListPartBytes;
  liar.count = 3;
  EXPECT_TRUE(
      test::HasError(Stage("busan-dsc", liar), Status::Code::kInvalidArgument, "first part said"));
  schema::WatchListPart wrong = parts[1];
  wrong.data[0] ^= 1;  // the parts no longer hash to the digest
  EXPECT_TRUE(test::HasError(Stage("busan-dsc", wrong), Status::Code::kInvalidArgument,
                             "do not match the file's SHA-256 digest"));
  // The staging was dropped (part 0 is gone) and the file's digest is done with.
  EXPECT_TRUE(test::Must(Stage("busan-dsc", parts[1])).stale);
}

TEST_F(WatchPartsTest, StagingIsBoundedAcrossSenders) {
  schema::WatchListPart big;  // sizes only: StageWatchPart takes the codec's checks as done
  big.total_bytes = schema::kMaxWatchListPartedBytes;
  big.count = schema::kMaxWatchListParts;
  big.data = Bytes(8, 'x');
  for (int i = 0; i < 4; ++i) {  // 4 x 64 MiB = the 256 MiB bound
    big.file_sha256 = Bytes(32, static_cast<uint8_t>(i));
    ASSERT_TRUE(Stage("dsc-" + std::to_string(i), big).ok()) << i;
  }
  big.file_sha256 = Bytes(32, 9);
  EXPECT_TRUE(
      test::HasError(Stage("dsc-4", big), Status::Code::kResourceExhausted, "staged for every"));
  // A sender replacing its own file does not count twice.
  EXPECT_TRUE(Stage("dsc-0", big).ok());
}

TEST_F(WatchPartsTest, OnlyFilesOverOneMessageAndUpTo64MiBAreSplit) {
  EXPECT_TRUE(test::HasError(SplitWatchFile(std::string(schema::kMaxWatchListFileBytes, 'x')),
                             Status::Code::kInvalidArgument, "at most"));
  EXPECT_TRUE(test::HasError(SplitWatchFile(std::string(schema::kMaxWatchListPartedBytes + 1, 'x')),
                             Status::Code::kInvalidArgument, "at most"));
  auto most = test::Must(SplitWatchFile(std::string(schema::kMaxWatchListPartedBytes, 'x')));
  EXPECT_EQ(most.size(), schema::kMaxWatchListParts);
}

}  // namespace
}  // namespace refbus::agent
