// Tests for core/bytes.h: hex, Base64 (RFC 4648), and the big-endian appenders.
#include "core/bytes.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/test_util.h"

namespace refbus {
namespace {

using test::HasCode;
using test::IsOk;

Bytes AllByteValues() {
  Bytes b(256);
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i);
  return b;
}

// ---- Hex ----

TEST(HexTest, EncodesLowerCase) {
  EXPECT_EQ(HexEncode(Bytes{}), "");
  EXPECT_EQ(HexEncode(Bytes{0x00, 0x01, 0x7f, 0x80, 0xab, 0xff}), "00017f80abff");
}

TEST(HexTest, RoundTripsEveryByteValue) {
  Bytes all = AllByteValues();
  std::string hex = HexEncode(all);
  EXPECT_EQ(hex.size(), 512u);
  auto back = HexDecode(hex);
  ASSERT_TRUE(IsOk(back));
  EXPECT_EQ(*back, all);
}

TEST(HexTest, DecodesKnownValues) {
  auto b = HexDecode("deadbeef00");
  ASSERT_TRUE(IsOk(b));
  EXPECT_EQ(*b, (Bytes{0xde, 0xad, 0xbe, 0xef, 0x00}));
  auto empty = HexDecode("");
  ASSERT_TRUE(IsOk(empty));
  EXPECT_TRUE(empty->empty());
}

TEST(HexTest, RefusesOddLength) {
  EXPECT_TRUE(HasCode(HexDecode("abc"), Status::Code::kMalformed));
  EXPECT_TRUE(HasCode(HexDecode("0"), Status::Code::kMalformed));
}

TEST(HexTest, RefusesNonHexCharacters) {
  for (std::string bad : {"0g", "g0", "zz", " 0", "0 ", "0x", "-1", "+1", "0:"}) {
    EXPECT_TRUE(HasCode(HexDecode(bad), Status::Code::kMalformed)) << bad;
  }
  EXPECT_TRUE(HasCode(HexDecode(std::string("0\0", 2)), Status::Code::kMalformed));
  EXPECT_TRUE(HasCode(HexDecode("\xc3\xa9"), Status::Code::kMalformed));
}

// ---- Base64 (RFC 4648 section 4, standard alphabet with padding) ----

struct B64Vector {
  std::string plain;
  std::string encoded;
};

const std::vector<B64Vector>& Rfc4648Vectors() {
  // RFC 4648 section 10.
  static const std::vector<B64Vector> kVectors = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  return kVectors;
}

TEST(Base64Test, EncodesRfc4648Vectors) {
  for (const auto& v : Rfc4648Vectors()) {
    EXPECT_EQ(Base64Encode(AsBytes(v.plain)), v.encoded) << "plain '" << v.plain << "'";
  }
}

TEST(Base64Test, DecodesRfc4648Vectors) {
  for (const auto& v : Rfc4648Vectors()) {
    auto b = Base64Decode(v.encoded);
    ASSERT_TRUE(IsOk(b)) << v.encoded;
    EXPECT_EQ(AsChars(*b), v.plain);
  }
}

TEST(Base64Test, UsesTheStandardAlphabet) {
  EXPECT_EQ(Base64Encode(Bytes{0xfb, 0xef, 0xbe}), "++++");
  EXPECT_EQ(Base64Encode(Bytes{0xff, 0xff, 0xff}), "////");
  EXPECT_EQ(Base64Encode(Bytes{0xfb, 0xff}), "+/8=");
  auto b = Base64Decode("+/8=");
  ASSERT_TRUE(IsOk(b));
  EXPECT_EQ(*b, (Bytes{0xfb, 0xff}));
  // The URL-safe alphabet (RFC 4648 section 5) is a different encoding.
  EXPECT_TRUE(HasCode(Base64Decode("-_8="), Status::Code::kMalformed));
}

TEST(Base64Test, RoundTripsBinaryOfEveryLengthUpTo300) {
  Bytes all = AllByteValues();
  for (size_t n = 0; n <= 300; ++n) {
    Bytes in(n);
    for (size_t i = 0; i < n; ++i) in[i] = all[(i * 7 + n) % 256];
    std::string text = Base64Encode(in);
    EXPECT_EQ(text.size(), (n + 2) / 3 * 4);
    auto back = Base64Decode(text);
    ASSERT_TRUE(IsOk(back)) << n;
    EXPECT_EQ(*back, in) << n;
  }
}

TEST(Base64Test, RefusesNonCanonicalPadding) {
  // "f" is "Zg==": the second character carries 4 stray low bits when it is not 'g'-aligned.
  for (std::string bad : {"Zh==", "Zv==", "Z/=="}) {
    EXPECT_TRUE(HasCode(Base64Decode(bad), Status::Code::kMalformed)) << bad;
  }
  // "fo" is "Zm8=": 2 stray low bits in the third character.
  for (std::string bad : {"Zm9=", "Zm+=", "Zm/="}) {
    EXPECT_TRUE(HasCode(Base64Decode(bad), Status::Code::kMalformed)) << bad;
  }
  auto ok = Base64Decode("Zm8=");
  ASSERT_TRUE(IsOk(ok));
  EXPECT_EQ(AsChars(*ok), "fo");
}

TEST(Base64Test, RefusesBadPadding) {
  for (std::string bad : {
           "Zg",        // padding left out
           "Zg=",       // length not a multiple of 4
           "Zm9",       // length not a multiple of 4
           "Z===",      // at most two padding characters
           "====",      // nothing but padding
           "=Zg=",      // padding first
           "Zm=v",      // data after padding
           "Zg=A",      // data after padding
           "Zg==Zm8=",  // padding in the middle of the text
           "Zg== ",     // trailing space
       }) {
    EXPECT_TRUE(HasCode(Base64Decode(bad), Status::Code::kMalformed)) << "'" << bad << "'";
  }
}

TEST(Base64Test, RefusesCharactersOutsideTheAlphabet) {
  for (std::string bad : {"Zm9*", "Zm 9", "Zm9\n", "Zm.v", "Zm9v\r\n==", "Zm9v!!!!"}) {
    EXPECT_TRUE(HasCode(Base64Decode(bad), Status::Code::kMalformed)) << "'" << bad << "'";
  }
  EXPECT_TRUE(HasCode(Base64Decode(std::string("Zm9\0", 4)), Status::Code::kMalformed));
  EXPECT_TRUE(HasCode(Base64Decode("Zm9\xc3"), Status::Code::kMalformed));
  EXPECT_TRUE(HasCode(Base64Decode("Zm9\xff"), Status::Code::kMalformed));
}

// ---- Appenders ----

TEST(AppendTest, U32BigEndian) {
  Bytes out;
  AppendU32BigEndian(out, 0x01020304u);
  EXPECT_EQ(out, (Bytes{0x01, 0x02, 0x03, 0x04}));
  AppendU32BigEndian(out, 0xffffffffu);
  EXPECT_EQ(out, (Bytes{0x01, 0x02, 0x03, 0x04, 0xff, 0xff, 0xff, 0xff}));
}

TEST(AppendTest, U64BigEndian) {
  Bytes out = {0xaa};
  AppendU64BigEndian(out, 0x0102030405060708ull);
  EXPECT_EQ(out, (Bytes{0xaa, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}));
  Bytes zero;
  AppendU64BigEndian(zero, 0);
  EXPECT_EQ(zero, Bytes(8, 0));
}

TEST(AppendTest, AppendKeepsExistingContent) {
  Bytes out = {1, 2};
  Append(out, Bytes{3, 4});
  Append(out, Bytes{});
  EXPECT_EQ(out, (Bytes{1, 2, 3, 4}));
}

TEST(AppendTest, LengthPrefixed) {
  Bytes out = {9};
  AppendLengthPrefixed(out, AsBytes("abc"));
  EXPECT_EQ(out, (Bytes{9, 0, 0, 0, 3, 'a', 'b', 'c'}));
  Bytes empty;
  AppendLengthPrefixed(empty, Bytes{});
  EXPECT_EQ(empty, (Bytes{0, 0, 0, 0}));
  Bytes big;
  AppendLengthPrefixed(big, Bytes(300, 0x5a));
  ASSERT_EQ(big.size(), 304u);
  EXPECT_EQ(big[2], 0x01);
  EXPECT_EQ(big[3], 0x2c);
}

TEST(AppendTest, LengthPrefixedConcatenationIsUnambiguous) {
  Bytes a;
  AppendLengthPrefixed(a, AsBytes("ab"));
  AppendLengthPrefixed(a, AsBytes("c"));
  Bytes b;
  AppendLengthPrefixed(b, AsBytes("a"));
  AppendLengthPrefixed(b, AsBytes("bc"));
  EXPECT_NE(a, b);
}

TEST(BytesTest, StringViewsAndCopies) {
  std::string s("a\0b", 3);
  ByteView v = AsBytes(s);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[1], 0);
  EXPECT_EQ(AsChars(v), s);
  Bytes copy = ToBytes(s);
  EXPECT_EQ(copy, (Bytes{'a', 0, 'b'}));
  EXPECT_EQ(AsChars(copy), s);
}

}  // namespace
}  // namespace refbus
