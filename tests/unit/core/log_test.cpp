// JSON logs (core/log.h): every line is one valid JSON object, whatever the message holds.
#include "core/log.h"

#include <gtest/gtest.h>

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <algorithm>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/unit/test_util.h"

namespace refbus {
namespace {

// Runs fn with stderr (fd 2) sent to a file, and returns what was written there.
template <typename Fn>
std::string CaptureStderr(const test::TempDir& dir, Fn fn) {
  const std::string path = dir.Join("stderr");
  std::fflush(stderr);
  int saved = ::dup(2);
  FILE* f = std::fopen(path.c_str(), "w");
  if (saved < 0 || f == nullptr) throw std::runtime_error("cannot redirect stderr");
  ::dup2(::fileno(f), 2);
  fn();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(f);
  Bytes b = test::ReadAll(path);
  return std::string(AsChars(b));
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(JsonEscapeTest, EscapesWhatJsonNeeds) {
  EXPECT_EQ(JsonEscape("plain text 123"), "plain text 123");
  EXPECT_EQ(JsonEscape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(JsonEscape("l1\nl2\r\t\b\f"), "l1\\nl2\\r\\t\\b\\f");
  EXPECT_EQ(JsonEscape(std::string("\x00\x01\x1f\x7f", 4)), "\\u0000\\u0001\\u001f\\u007f");
  EXPECT_EQ(JsonEscape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");  // valid UTF-8 kept
  // Not UTF-8: a lone continuation byte, a truncated sequence, an overlong '/', a surrogate.
  EXPECT_EQ(JsonEscape("\x80"), "\\ufffd");
  EXPECT_EQ(JsonEscape("\xe2\x82"), "\\ufffd\\ufffd");
  EXPECT_EQ(JsonEscape("\xc0\xaf"), "\\ufffd\\ufffd");
  EXPECT_EQ(JsonEscape("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");
  EXPECT_EQ(JsonEscape("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");
}

constexpr char kControls[] = "nul \x00 bell \x07 esc \x1b[31m del \x7f";

TEST(JsonLogTest, EveryLineParses) {
  test::TempDir dir;
  const std::string controls(kControls, sizeof(kControls) - 1);
  const std::string nasty = std::string("quote \" backslash \\ newline \n second line\r\ttab ") +
                            controls + " not utf-8 \xff\xfe end";
  const std::string out = CaptureStderr(dir, [&] {
    ASSERT_TRUE(test::IsOk(InitLogging("refbus-\"test\"", LogFormat::kJson, "debug")));
    spdlog::info("{}", nasty);
    spdlog::warn("peer {} said {}", "seoul-broker", "\"}{\"level\":\"forged\"");
    spdlog::debug("plain");
    spdlog::trace("below the level: not written");
  });
  std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 3u) << out;
  std::vector<nlohmann::json> parsed;
  for (const auto& line : lines) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j.size(), 4u) << line;
    EXPECT_EQ(j["program"], "refbus-\"test\"");
    EXPECT_TRUE(j["time"].is_string());
    parsed.push_back(j);
  }
  EXPECT_EQ(parsed[0]["level"], "info");
  const std::string expected = std::string("quote \" backslash \\ newline \n second line\r\ttab ") +
                               controls + " not utf-8 \xef\xbf\xbd\xef\xbf\xbd end";
  EXPECT_EQ(parsed[0]["msg"], expected);
  EXPECT_EQ(parsed[1]["level"], "warning");
  EXPECT_EQ(parsed[1]["msg"], "peer seoul-broker said \"}{\"level\":\"forged\"");
  EXPECT_EQ(parsed[2]["msg"], "plain");
}

TEST(JsonLogTest, TextFormatUnchanged) {
  test::TempDir dir;
  const std::string out = CaptureStderr(dir, [&] {
    ASSERT_TRUE(test::IsOk(InitLogging("refbus-text", LogFormat::kText, "info")));
    spdlog::info("hello {}", 1);
  });
  EXPECT_TRUE(test::HasSubstr(out, " refbus-text info: hello 1\n"));
}

TEST(JsonLogTest, TextFormatCannotBeMadeToForgeALine) {
  test::TempDir dir;
  const std::string out = CaptureStderr(dir, [&] {
    ASSERT_TRUE(test::IsOk(InitLogging("refbus-text", LogFormat::kText, "info")));
    // What a peer might put in a party id or a detail that ends up in a log line.
    spdlog::warn("refused {}",
                 std::string("x\n2026-01-01T00:00:00.000Z refbus-text info: ok\r\t\x1b[31m"));
  });
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_TRUE(
      test::HasSubstr(out, "x\\n2026-01-01T00:00:00.000Z refbus-text info: ok\\r\\t\\x1b[31m\n"))
      << out;
}

TEST(JsonLogTest, BadLevelRefused) {
  EXPECT_FALSE(InitLogging("refbus-x", LogFormat::kJson, "loud").ok());
}

}  // namespace
}  // namespace refbus
