// Tests for keys/published_prekey.h: prekeys an agency publishes between directories, and
// the newest valid prekey senders seal to.
#include "keys/published_prekey.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/keys/federation.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace published_prekey_test {

using fed::kNow;
using test::HasCode;
using test::IsOk;
using test::Must;
using Code = Status::Code;

constexpr UnixMillis kDay = kMillisPerDay;

class PublishedPrekeyTest : public ::testing::Test {
 protected:
  const schema::Directory& dir() { return fed_.directory(); }
  fed::Federation fed_;
};

TEST_F(PublishedPrekeyTest, NewerPublishedPrekeyIsChosen) {
  Identity& a = fed_.party("agency-a");
  schema::SignedPrekey fresh = Must(a.AddPrekey(kNow + 7 * kDay, kNow + 37 * kDay));
  std::vector<schema::SignedPrekey> published{fresh};
  EXPECT_TRUE(IsOk(VerifyPublishedPrekey(dir(), fresh, kNow + 8 * kDay)));
  // Before it starts, the directory's prekey; after, the published one.
  EXPECT_EQ(Must(NewestPrekey(dir(), "agency-a", published, kNow + kDay)).public_key,
            a.prekeys()[0].signed_prekey.prekey.public_key);
  RecipientPrekey p = Must(NewestPrekey(dir(), "agency-a", published, kNow + 8 * kDay));
  EXPECT_EQ(p.public_key, fresh.prekey.public_key);
  EXPECT_EQ(p.prekey_id, a.prekeys()[1].id);
  // Once the directory's prekey expired, the published one still serves.
  EXPECT_EQ(Must(NewestPrekey(dir(), "agency-a", published, kNow + 31 * kDay)).public_key,
            fresh.prekey.public_key);
  // Another agency's lookup ignores it.
  EXPECT_NE(Must(NewestPrekey(dir(), "agency-b", published, kNow + 8 * kDay)).public_key,
            fresh.prekey.public_key);
}

TEST_F(PublishedPrekeyTest, ForgedOverlongOrExpiredPrekeysAreRefusedAndSkipped) {
  Identity& a = fed_.party("agency-a");
  // Signed by a key that is not agency-a's (an attacker naming agency-a as owner).
  Identity attacker = fed::NewIdentity("agency-a", schema::PartyKind::kAgency);
  schema::SignedPrekey forged = Must(attacker.AddPrekey(kNow + kDay, kNow + 20 * kDay));
  schema::SignedPrekey overlong = Must(a.AddPrekey(kNow + kDay, kNow + kDay + 31 * kDay));
  schema::SignedPrekey old = Must(a.AddPrekey(kNow - 40 * kDay, kNow - 20 * kDay));
  EXPECT_TRUE(
      HasCode(VerifyPublishedPrekey(dir(), forged, kNow + 2 * kDay), Code::kUnauthenticated));
  EXPECT_TRUE(
      HasCode(VerifyPublishedPrekey(dir(), overlong, kNow + 2 * kDay), Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(VerifyPublishedPrekey(dir(), old, kNow), Code::kExpired));
  std::vector<schema::SignedPrekey> published{forged, overlong, old};
  EXPECT_EQ(Must(NewestPrekey(dir(), "agency-a", published, kNow + 2 * kDay)).public_key,
            a.prekeys()[0].signed_prekey.prekey.public_key);
}

TEST_F(PublishedPrekeyTest, RevokedOrUnknownOwnerIsRefused) {
  Identity& c = fed_.party("agency-c");
  schema::SignedPrekey fresh = Must(c.AddPrekey(kNow + kDay, kNow + 20 * kDay));
  DirectoryEdit edit;
  edit.revoke.push_back("agency-c");
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow + kDay)));
  EXPECT_TRUE(HasCode(VerifyPublishedPrekey(dir(), fresh, kNow + 2 * kDay), Code::kRevoked));
  std::vector<schema::SignedPrekey> published{fresh};
  EXPECT_TRUE(HasCode(NewestPrekey(dir(), "agency-c", published, kNow + 2 * kDay), Code::kRevoked));
  Identity stranger = fed::NewIdentity("agency-zz", schema::PartyKind::kAgency);
  EXPECT_TRUE(HasCode(VerifyPublishedPrekey(dir(), stranger.prekeys()[0].signed_prekey, kNow),
                      Code::kNotFound));
}

}  // namespace published_prekey_test
}  // namespace refbus::keys
