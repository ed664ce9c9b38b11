// Tests for keys/operator_roster.h: an agency's signed roster of operator keys, verified
// against the directory.
#include "keys/operator_roster.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

#include "tests/unit/keys/federation.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
namespace {

using fed::kNow;
using test::HasCode;
using test::IsOk;
using test::Must;
using Code = Status::Code;

Bytes Key(uint8_t b) { return Bytes(crypto_sign_PUBLICKEYBYTES, b); }

OperatorRoster Roster(const std::string& agency) {
  OperatorRoster r;
  r.agency = agency;
  r.version = 3;
  r.issued_at_ms = kNow;
  r.operators = {{"sam", "supervisor", Key(1), true}, {"carol", "caseworker", Key(2), false}};
  return r;
}

class OperatorRosterTest : public ::testing::Test {
 protected:
  fed::Federation fed_;
};

TEST_F(OperatorRosterTest, SignedRosterVerifiesAndNamesKeys) {
  std::string file = Must(SignOperatorRoster(fed_.party("agency-a"), Roster("agency-a")));
  auto r = VerifyOperatorRoster(file, fed_.directory(), kNow);
  ASSERT_TRUE(IsOk(r));
  EXPECT_EQ(r->agency, "agency-a");
  EXPECT_EQ(r->version, 3u);
  ASSERT_NE(r->FindKey(Key(1)), nullptr);
  EXPECT_EQ(r->FindKey(Key(1))->name, "sam");
  EXPECT_FALSE(r->FindKey(Key(2))->active) << "disabled operators stay listed";
  EXPECT_EQ(r->FindKey(Key(9)), nullptr);
}

TEST_F(OperatorRosterTest, ForgedOrAlteredRostersAreRefused) {
  EXPECT_TRUE(HasCode(SignOperatorRoster(fed_.party("agency-b"), Roster("agency-a")),
                      Code::kInvalidArgument));
  std::string file = Must(SignOperatorRoster(fed_.party("agency-a"), Roster("agency-a")));
  // A key swapped in the signed text.
  std::string swapped = file;
  std::string one = HexEncode(Key(1));
  swapped.replace(swapped.find(one), one.size(), HexEncode(Key(7)));
  EXPECT_TRUE(
      HasCode(VerifyOperatorRoster(swapped, fed_.directory(), kNow), Code::kUnauthenticated));
  // Another agency's key claiming to sign agency-a's roster: the key id is not agency-a's.
  OperatorRoster b = Roster("agency-b");
  std::string by_b = Must(SignOperatorRoster(fed_.party("agency-b"), b));
  std::string b_name = "\\\"agency\\\":\\\"agency-b\\\"";
  ASSERT_NE(by_b.find(b_name), std::string::npos) << by_b;
  by_b.replace(by_b.find(b_name), b_name.size(), "\\\"agency\\\":\\\"agency-a\\\"");
  EXPECT_FALSE(VerifyOperatorRoster(by_b, fed_.directory(), kNow).ok());
  EXPECT_TRUE(HasCode(VerifyOperatorRoster("{}", fed_.directory(), kNow), Code::kMalformed));
  EXPECT_TRUE(HasCode(VerifyOperatorRoster("not json", fed_.directory(), kNow), Code::kMalformed));
}

}  // namespace
}  // namespace refbus::keys
