// Tests for agent/deletion_bulk.h: deletion items and statuses from CSV (RFC 4180 quoting,
// errors by line number that never echo a URL), and the status delta.
#include "agent/deletion_bulk.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using ::refbus::test::HasError;
using schema::DeletionItemStatus;

constexpr char kSha[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

TEST(DeletionCsvTest, ReadsItemsWithQuotingAndLineNumbersAsIds) {
  std::string csv = "url,sha256,platform,note\r\n";
  csv += "https://video.example/a," + std::string(kSha) + ",video-a,first\r\n";
  csv += "\r\n";  // blank: skipped, but counted as a line
  csv += "\"https://forum.example/t?a=1,b=2\",,forum,\"said \"\"remove\"\"\nand more\"\n";
  csv += "https://img.example/x\n";  // only the url
  auto items = ParseDeletionCsv(csv);
  ASSERT_TRUE(items.ok()) << items.status().ToString();
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[0].item_id, "2");
  EXPECT_EQ((*items)[0].url, "https://video.example/a");
  EXPECT_EQ((*items)[0].content_sha256, Bytes(32, 0xaa));
  EXPECT_EQ((*items)[0].platform, "video-a");
  EXPECT_EQ((*items)[0].note, "first");
  EXPECT_EQ((*items)[1].item_id, "4");
  EXPECT_EQ((*items)[1].url, "https://forum.example/t?a=1,b=2");
  EXPECT_TRUE((*items)[1].content_sha256.empty());
  EXPECT_EQ((*items)[1].note, "said \"remove\"\nand more");
  EXPECT_EQ((*items)[2].item_id, "6");  // the quoted line break moved it down one line
  EXPECT_EQ((*items)[2].platform, "");
}

TEST(DeletionCsvTest, HeaderIsOptional) {
  auto items = ParseDeletionCsv("https://a.example/1\nhttps://a.example/2,,p\n");
  ASSERT_TRUE(items.ok()) << items.status().ToString();
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].item_id, "1");
  EXPECT_EQ((*items)[1].platform, "p");
}

TEST(DeletionCsvTest, BadLinesAreNamedByNumberWithoutTheirUrls) {
  std::string csv = "url,sha256,platform,note\n";
  csv += "https://secret.example/ok\n";                              // 2 fine
  csv += "https://secret.example/badhash,1234,video,\n";             // 3 bad sha256
  csv += "https://secret.example/five,,p,n,extra\n";                 // 4 five fields
  csv += ",,p,n\n";                                                  // 5 empty url
  csv += "https://secret.example/" + std::string(3000, 'l') + "\n";  // 6 url too long
  csv += std::string("https://secret.example/\xc0\xaf") + "\n";      // 7 not UTF-8 (overlong)
  auto items = ParseDeletionCsv(csv);
  ASSERT_FALSE(items.ok());
  const std::string& m = items.status().message();
  EXPECT_NE(m.find("5 lines are not valid"), std::string::npos) << m;
  EXPECT_NE(m.find("line 3: sha256 must be 64 hex digits"), std::string::npos) << m;
  EXPECT_NE(m.find("line 4: has 5 fields"), std::string::npos) << m;
  EXPECT_NE(m.find("line 5: the url is empty"), std::string::npos) << m;
  EXPECT_NE(m.find("line 6: the url has 3023 bytes"), std::string::npos) << m;
  EXPECT_NE(m.find("line 7: the url is not text"), std::string::npos) << m;
  EXPECT_EQ(m.find("secret.example"), std::string::npos) << "a URL was echoed: " << m;
}

TEST(DeletionCsvTest, BrokenQuotingIsNamedByLine) {
  EXPECT_TRUE(HasError(ParseCsv("a\nb\n\"open,x\n"), Status::Code::kInvalidArgument,
                       "line 3: a quoted field is not closed"));
  EXPECT_TRUE(HasError(ParseCsv("a\nab\"c\n"), Status::Code::kInvalidArgument,
                       "line 2: a quote inside an unquoted field"));
  EXPECT_TRUE(HasError(ParseCsv("\"a\"b\n"), Status::Code::kInvalidArgument,
                       "line 1: text after a closing quote"));
}

TEST(DeletionCsvTest, ManyBadLinesAreCountedNotAllListed) {
  std::string csv;
  for (int i = 0; i < 30; ++i) csv += "https://x.example/" + std::to_string(i) + ",zz\n";
  auto items = ParseDeletionCsv(csv);
  ASSERT_FALSE(items.ok());
  EXPECT_NE(items.status().message().find("30 lines are not valid"), std::string::npos);
  EXPECT_NE(items.status().message().find("(and 10 more)"), std::string::npos);
}

TEST(DeletionCsvTest, RefusesMoreThanTheRequestLimit) {
  std::string csv;
  csv.reserve(2'500'000);
  for (size_t i = 0; i <= schema::kMaxDeletionRequestItems; ++i) csv += "https://x.example/\n";
  EXPECT_TRUE(HasError(ParseDeletionCsv(csv), Status::Code::kInvalidArgument,
                       "holds 100001 items; a request holds at most 100000"));
  EXPECT_TRUE(HasError(ParseDeletionCsv("url,sha256,platform,note\n\n"),
                       Status::Code::kInvalidArgument, "holds no items"));
}

TEST(DeletionCsvTest, CsvFieldQuotesOnlyWhenNeeded) {
  EXPECT_EQ(CsvField("plain"), "plain");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  auto back = ParseCsv(CsvField("x,\"y\"\nz") + "," + CsvField("w") + "\n");
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->size(), 1u);
  EXPECT_EQ((*back)[0].fields, (std::vector<std::string>{"x,\"y\"\nz", "w"}));
}

TEST(StatusCsvTest, ReadsStatusesAndNamesBadLines) {
  auto ok = ParseStatusCsv("item_id,status\n1,removed\n2, Notified \n");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[0].item_id, "1");
  EXPECT_EQ((*ok)[0].status, DeletionItemStatus::kRemoved);
  EXPECT_EQ((*ok)[0].line, 2u);
  EXPECT_EQ((*ok)[1].status, DeletionItemStatus::kNotified);
  auto bad = ParseStatusCsv("1,removed\n2,gone\n1,notified\n3\n");
  ASSERT_FALSE(bad.ok());
  const std::string& m = bad.status().message();
  EXPECT_NE(m.find("line 2: the status is not"), std::string::npos) << m;
  EXPECT_NE(m.find("line 3: item '1' was given on line 1"), std::string::npos) << m;
  EXPECT_NE(m.find("line 4: has 1 fields"), std::string::npos) << m;
}

TEST(StatusDeltaTest, ReportsOnlyWhatChanged) {
  std::map<std::string, std::string> current = {
      {"1", "requested"}, {"2", "received"}, {"3", "removed"}, {"4", "notified"}};
  std::vector<StatusLine> wanted = {{"1", DeletionItemStatus::kReceived, 1},
                                    {"2", DeletionItemStatus::kReceived, 2},  // unchanged
                                    {"3", DeletionItemStatus::kReappeared, 3},
                                    {"4", DeletionItemStatus::kRemoved, 4},
                                    {"4", DeletionItemStatus::kNotified, 5}};  // last wins
  auto delta = StatusDelta(current, wanted);
  ASSERT_TRUE(delta.ok()) << delta.status().ToString();
  ASSERT_EQ(delta->size(), 2u);
  EXPECT_EQ((*delta)[0].item_id, "1");
  EXPECT_EQ((*delta)[1].item_id, "3");
  EXPECT_EQ((*delta)[1].status, DeletionItemStatus::kReappeared);
  // Applying the delta and asking again changes nothing more.
  current["1"] = "received";
  current["3"] = "reappeared";
  auto again = StatusDelta(current, wanted);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
}

TEST(StatusDeltaTest, UnknownItemIsNamedWithItsLine) {
  std::map<std::string, std::string> current = {{"1", "requested"}};
  EXPECT_TRUE(HasError(StatusDelta(current, {{"9", DeletionItemStatus::kRemoved, 12}}),
                       Status::Code::kNotFound,
                       "item '9' is not in this deletion request (line 12)"));
}

}  // namespace
}  // namespace refbus::agent
