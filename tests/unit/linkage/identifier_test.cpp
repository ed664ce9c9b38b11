// Canonical forms of linkage identifiers (linkage/identifier.h, PROTOCOL.md 13.1): lists of
// variants that must map to one form, lists that must stay apart, and input that must be
// refused without the input appearing in the error.
#include "linkage/identifier.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/test_util.h"

namespace refbus::linkage {
namespace {

using test::IsOk;

// Every variant canonicalizes, to `expected`.
void ExpectAllMapTo(IdentifierKind kind, const std::vector<std::string>& variants,
                    const std::string& expected) {
  for (const auto& v : variants) {
    auto c = Canonicalize(kind, v);
    ASSERT_TRUE(IsOk(c)) << KindName(kind) << " variant [" << v << "]";
    EXPECT_EQ(c->value, expected) << KindName(kind) << " variant [" << v << "]";
    EXPECT_EQ(c->kind, kind);
  }
}

// Every value canonicalizes, and no two to the same form.
void ExpectAllDistinct(IdentifierKind kind, const std::vector<std::string>& values) {
  std::vector<std::string> forms;
  for (const auto& v : values) {
    auto c = Canonicalize(kind, v);
    ASSERT_TRUE(IsOk(c)) << KindName(kind) << " value [" << v << "]";
    for (size_t i = 0; i < forms.size(); ++i)
      EXPECT_NE(forms[i], c->value) << "[" << values[i] << "] and [" << v << "] merged";
    forms.push_back(c->value);
  }
}

// Every value is refused with InvalidArgument, and the message does not repeat it.
void ExpectAllRefused(IdentifierKind kind, const std::vector<std::string>& values) {
  for (const auto& v : values) {
    auto c = Canonicalize(kind, v);
    ASSERT_FALSE(c.ok()) << KindName(kind) << " value [" << v << "] was accepted as [" << c->value
                         << "]";
    EXPECT_EQ(c.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(c.status().message().find(std::string(KindName(kind))), std::string::npos)
        << c.status().message();
    // The input never shows in the error (checked on inputs long enough to be telling).
    if (v.size() >= 6) {
      EXPECT_EQ(c.status().message().find(v), std::string::npos) << c.status().message();
    }
  }
}

TEST(IdentifierTest, KoreanMobileFormatsMapToOneE164Form) {
  ExpectAllMapTo(
      IdentifierKind::kPhone,
      {"010-1234-5678", "01012345678", "+82 10 1234 5678", "+82-10-1234-5678", "82 10 1234 5678",
       "821012345678", "+821012345678", "010 1234 5678", "010.1234.5678", "(010) 1234-5678",
       "+82 (0)10-1234-5678", "+82 010 1234 5678", "0082 10 1234 5678", "  010-1234-5678\t",
       "\xC2\xA0"
       "010-1234-5678"},
      "+821012345678");
}

TEST(IdentifierTest, KoreanLandlineAndServiceNumbers) {
  ExpectAllMapTo(IdentifierKind::kPhone, {"02-123-4567", "+82 2 123 4567", "021234567"},
                 "+8221234567");
  ExpectAllMapTo(IdentifierKind::kPhone, {"032-123-4567", "+82 32-123-4567"}, "+82321234567");
  ExpectAllMapTo(IdentifierKind::kPhone, {"070-1234-5678", "+82 70 1234 5678"}, "+827012345678");
  ExpectAllMapTo(IdentifierKind::kPhone, {"1588-1234", "15881234"}, "+8215881234");
  ExpectAllMapTo(IdentifierKind::kPhone, {"011-123-4567", "+82 11 123 4567"}, "+82111234567");
}

// Numbers pasted from Korean documents: full-width digits and signs, and the dashes word
// processors put in place of '-'.
TEST(IdentifierTest, FullWidthDigitsAndTypographicDashesFold) {
  // "010" + sep + "1234" + sep + "5678"
  const auto with = [](const std::string& sep) { return "010" + sep + "1234" + sep + "5678"; };
  std::string full_width;  // ０１０－１２３４－５６７８
  for (char c : std::string("010-1234-5678")) {
    full_width += c == '-' ? std::string("\xEF\xBC\x8D")
                           : std::string("\xEF\xBC") + static_cast<char>(0x90 + (c - '0'));
  }
  ExpectAllMapTo(IdentifierKind::kPhone,
                 {full_width, with("\xE2\x80\x93") /* en dash */,
                  with("\xE2\x80\x94") /* em dash */, with("\xE2\x88\x92") /* minus sign */,
                  with("\xE2\x80\x90") /* hyphen */, with("\xE3\x80\x80") /* ideographic space */,
                  std::string("\xEF\xBC\x8B") + "82 10 1234 5678" /* full-width plus */,
                  std::string("\xEF\xBC\x88") + "010" + "\xEF\xBC\x89" + " 1234-5678"},
                 "+821012345678");
  ExpectAllRefused(IdentifierKind::kPhone, {with("\xE2\x80\xA6")});  // an ellipsis
}

TEST(IdentifierTest, ForeignNumbersKeepTheirCountryCode) {
  ExpectAllMapTo(IdentifierKind::kPhone, {"+1 (415) 555-0100", "001 415 555 0100"}, "+14155550100");
}

TEST(IdentifierTest, DifferentPhoneNumbersStayApart) {
  ExpectAllDistinct(IdentifierKind::kPhone,
                    {"010-1234-5678", "010-1234-5679", "011-234-5678", "02-1234-5678",
                     "+1 212 123 45678", "+44 20 1234 5678"});
}

TEST(IdentifierTest, InvalidPhoneNumbersAreRefused) {
  ExpectAllRefused(IdentifierKind::kPhone,
                   {"", "   ", "+", "010-1234-567", "010-1234-56789", "1234-5678", "010-ABCD-5678",
                    "010 1234 5678 ext 9", "+82 99 1234 5678", "12345", "+1 23",
                    "+82 10 1234 5678 +", std::string(3000, '1')});
}

TEST(IdentifierTest, EmailCaseAndWhitespaceFold) {
  ExpectAllMapTo(IdentifierKind::kEmail,
                 {"Kim.Minsu@Naver.com", " kim.minsu@naver.com ", "KIM.MINSU@NAVER.COM",
                  "kim.minsu@naver.com.", "mailto:kim.minsu@naver.com"},
                 "kim.minsu@naver.com");
}

TEST(IdentifierTest, GmailDotsAndPlusFoldOnlyAtGmail) {
  ExpectAllMapTo(IdentifierKind::kEmail,
                 {"john.doe@gmail.com", "johndoe@gmail.com", "John.Doe+shop@Gmail.com",
                  "j.o.h.n.d.o.e@googlemail.com", "johndoe+x+y@gmail.com"},
                 "johndoe@gmail.com");
  // At other providers a dot or a '+' may be part of a different mailbox.
  ExpectAllDistinct(IdentifierKind::kEmail,
                    {"john.doe@naver.com", "johndoe@naver.com", "johndoe+x@naver.com",
                     "johndoe@daum.net", "johndoe@gmail.com"});
}

TEST(IdentifierTest, InvalidEmailsAreRefused) {
  ExpectAllRefused(IdentifierKind::kEmail,
                   {"", "no-at-sign.example.com", "two@@example.com", "a@b@example.com",
                    "@example.com", "someone@", "someone@localhost", "some one@example.com",
                    ".someone@example.com", "some..one@example.com", "someone@-bad-.com",
                    "someone@\xED\x95\x9C\xEA\xB5\xAD.kr", "+@gmail.com"});
}

TEST(IdentifierTest, UrlVariantsMapToOneForm) {
  ExpectAllMapTo(IdentifierKind::kUrl,
                 {"https://example.com/videos/123", "http://example.com/videos/123",
                  "HTTPS://EXAMPLE.COM/videos/123", "https://example.com:443/videos/123",
                  "http://example.com:80/videos/123", "https://example.com/videos/123/",
                  "https://example.com/videos/123#t=30", "example.com/videos/123",
                  "https://example.com./videos/123", "https://example.com/videos/./123",
                  "https://example.com/videos/x/../123", "https://user@example.com/videos/123",
                  "https://example.com/videos/123?utm_source=tw&utm_medium=social",
                  "https://example.com/videos/123?fbclid=abc", "https://example.com/videos/123?",
                  "https://example.com/videos/%31%32%33", " https://example.com/videos/123 "},
                 "https://example.com/videos/123");
}

TEST(IdentifierTest, UrlQueryIsSortedAndTrackingRemoved) {
  ExpectAllMapTo(
      IdentifierKind::kUrl,
      {"https://example.com/watch?v=abc&list=9", "https://example.com/watch?list=9&v=abc",
       "https://example.com/watch?gclid=1&list=9&UTM_Campaign=x&v=abc&igshid=2",
       "https://example.com/watch?list=9&&v=abc"},
      "https://example.com/watch?list=9&v=abc");
  ExpectAllMapTo(IdentifierKind::kUrl, {"https://example.com", "https://example.com/"},
                 "https://example.com/");
  ExpectAllMapTo(IdentifierKind::kUrl, {"https://example.com/a%2fb", "https://example.com/a%2Fb"},
                 "https://example.com/a%2Fb");
}

TEST(IdentifierTest, DifferentUrlsStayApart) {
  ExpectAllDistinct(IdentifierKind::kUrl,
                    {"https://example.com/videos/123", "https://example.com/videos/124",
                     "https://example.com/Videos/123", "https://example.com:8443/videos/123",
                     "https://example.org/videos/123", "https://www.example.com/videos/123",
                     "https://example.com/watch?v=abc", "https://example.com/watch?v=abd",
                     "https://example.com/a%2Fb", "https://example.com/a/b"});
}

TEST(IdentifierTest, InvalidUrlsAreRefused) {
  ExpectAllRefused(
      IdentifierKind::kUrl,
      {"", "ftp://example.com/file", "javascript:alert(1)", "https://", "https://exa mple.com/",
       "https://example.com/a b", "https://\xED\x95\x9C\xEA\xB5\xAD.kr/",
       "https://example.com:99999/", "https://example.com:http/", "https://example.com/%zz",
       "https://-x-.com/", "https://localhost/x", "https://example.com/" + std::string(3000, 'a')});
}

TEST(IdentifierTest, AccountsFoldPlatformAliasesCaseAndAt) {
  ExpectAllMapTo(IdentifierKind::kAccount,
                 {"instagram:some.handle", "Instagram:@Some.Handle", "IG: some.handle ",
                  "insta:@some.handle", "instagram.com:SOME.HANDLE"},
                 "instagram:some.handle");
  ExpectAllMapTo(IdentifierKind::kAccount, {"twitter:@abc_1", "X:abc_1", "x.com:ABC_1"}, "x:abc_1");
  ExpectAllMapTo(IdentifierKind::kAccount,
                 {"kakaotalk:perp01", "\xEC\xB9\xB4\xED\x86\xA1:perp01", "Kakao:PERP01"},
                 "kakaotalk:perp01");
  auto two = CanonicalAccount(" Telegram ", "@Some_Name");
  ASSERT_TRUE(IsOk(two));
  EXPECT_EQ(two->value, "telegram:some_name");
}

// A profile's address is as common in case notes as "platform:handle".
TEST(IdentifierTest, ProfileUrlsAreAccounts) {
  ExpectAllMapTo(IdentifierKind::kAccount,
                 {"https://www.instagram.com/some.handle/", "instagram.com/Some.Handle",
                  "http://instagram.com/some.handle?igshid=abc",
                  "https://m.instagram.com/some.handle", "https://instagram.com/some.handle/#"},
                 "instagram:some.handle");
  ExpectAllMapTo(IdentifierKind::kAccount,
                 {"https://x.com/abc_1", "https://twitter.com/ABC_1/status/123456",
                  "https://mobile.twitter.com/abc_1", "x.com/@abc_1"},
                 "x:abc_1");
  ExpectAllMapTo(IdentifierKind::kAccount,
                 {"https://www.tiktok.com/@perp.01", "https://tiktok.com/@perp.01/video/7"},
                 "tiktok:perp.01");
  ExpectAllMapTo(IdentifierKind::kAccount, {"https://t.me/some_name", "t.me/Some_Name"},
                 "telegram:some_name");
  ExpectAllMapTo(IdentifierKind::kAccount, {"https://www.youtube.com/@chan1"}, "youtube:chan1");
  // Addresses of posts, searches and unknown sites are not profiles.
  ExpectAllRefused(
      IdentifierKind::kAccount,
      {"https://www.instagram.com/p/Cxyz123/", "https://www.instagram.com/",
       "https://x.com/search?q=abc", "https://x.com/i/status/1", "https://www.tiktok.com/foryou",
       "https://example.com/someone", "https://www.youtube.com/watch?v=abc"});
}

TEST(IdentifierTest, AccountsOnDifferentPlatformsOrHandlesStayApart) {
  ExpectAllDistinct(IdentifierKind::kAccount,
                    {"instagram:abc", "x:abc", "tiktok:abc", "instagram:abd", "instagram:ab.c",
                     "instagram:ab_c"});
}

TEST(IdentifierTest, InvalidAccountsAreRefused) {
  ExpectAllRefused(
      IdentifierKind::kAccount,
      {"instagram", "myspace:someone", "instagram:", "instagram:@", "instagram:some handle",
       "instagram:\xEA\xB9\x80\xEC\xB2\xA0\xEC\x88\x98", "instagram:" + std::string(65, 'a')});
}

TEST(IdentifierTest, ContentHashes) {
  const std::string h = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  std::string upper = h;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ExpectAllMapTo(IdentifierKind::kContentSha256, {h, upper, " " + h + "\n", "sha256:" + h}, h);
  ExpectAllRefused(IdentifierKind::kContentSha256,
                   {"", h.substr(1), h + "0", "g" + h.substr(1), "sha1:" + h});
}

TEST(IdentifierTest, OprfInputSeparatesKinds) {
  const CanonicalIdentifier a{IdentifierKind::kUrl, "x"};
  const CanonicalIdentifier b{IdentifierKind::kEmail, "x"};
  EXPECT_NE(a.OprfInput(), b.OprfInput());
  const Bytes expected = [] {
    Bytes e = ToBytes("refbus/v1/linkage-id");
    e.push_back(0);
    Append(e, AsBytes("url"));
    e.push_back(0);
    e.push_back('x');
    return e;
  }();
  EXPECT_EQ(a.OprfInput(), expected);
}

TEST(IdentifierTest, KindNamesRoundTrip) {
  for (auto k : {IdentifierKind::kAccount, IdentifierKind::kPhone, IdentifierKind::kEmail,
                 IdentifierKind::kUrl, IdentifierKind::kContentSha256}) {
    auto parsed = ParseKind(KindName(k));
    ASSERT_TRUE(IsOk(parsed));
    EXPECT_EQ(*parsed, k);
  }
  EXPECT_FALSE(ParseKind("Phone").ok());
  EXPECT_FALSE(ParseKind("").ok());
}

}  // namespace
}  // namespace refbus::linkage
