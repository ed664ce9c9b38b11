// Tests for keys/directory.h: issuing, verifying and rollback-protecting the signed
// federation directory, and looking up keys in it.
#include "keys/directory.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/file.h"
#include "keys/crypto.h"
#include "schema/codec.h"
#include "tests/unit/keys/federation.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
namespace {

using fed::kNow;
using fed::NewIdentity;
using schema::KeyState;
using schema::PartyKind;
using schema::PartyStatus;
using test::HasCode;
using test::HasError;
using test::IsOk;
using test::Must;
using Code = Status::Code;

constexpr UnixMillis kDay = kMillisPerDay;
constexpr UnixMillis kExpiry = kNow + kDefaultDirectoryValidityMs;

// Offset of needle in hay (which must contain it).
size_t OffsetOf(const Bytes& hay, const Bytes& needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end());
  if (it == hay.end()) throw std::runtime_error("needle not found");
  return static_cast<size_t>(it - hay.begin());
}

// Re-signs a record after the test changed its decoded form (so that only the change
// under test is wrong, not the proof of possession).
void Reseal(schema::SignedPartyRecord& rec, const Identity& signer) {
  rec.record_bytes = schema::EncodePartyRecord(rec.record);
  rec.signature = signer.Sign(kLabelPartyRecord, rec.record_bytes);
}

class DirectoryTest : public ::testing::Test {
 protected:
  const schema::Party& PartyIn(const std::string& id) {
    const schema::Party* p = fed_.directory().Find(id);
    if (p == nullptr) throw std::runtime_error(id + " is not in the directory");
    return *p;
  }

  fed::Federation fed_;
};

// ---- Verifying ----

TEST_F(DirectoryTest, VerifyAcceptsTheAuthoritysDirectory) {
  auto v = VerifyDirectory(fed_.current_bytes(), fed_.anchor(), kNow);
  ASSERT_TRUE(IsOk(v));
  EXPECT_FALSE(v->in_grace);
  const schema::Directory& d = v->signed_directory.directory;
  EXPECT_EQ(d.serial, 1u);
  EXPECT_EQ(d.federation, fed::kFederation);
  EXPECT_EQ(d.agencies.size(), 4u);
  ASSERT_EQ(d.brokers.size(), 1u);
  EXPECT_EQ(d.brokers[0].endpoint, "tcp://127.0.0.1:7450");
  EXPECT_EQ(v->signed_directory.directory_bytes, fed_.current().directory_bytes);
  EXPECT_EQ(v->signed_directory.authority_key_id, fed_.authority().signing_key_id());
}

TEST_F(DirectoryTest, FlippedDirectoryByteIsUnauthenticated) {
  schema::SignedDirectory sd = fed_.current();
  // A byte of agency-a's signing key: the directory still decodes, but is not what was signed.
  size_t at = OffsetOf(sd.directory_bytes, fed_.party("agency-a").signing_public_key());
  sd.directory_bytes[at] ^= 0x01;
  auto v = VerifyDirectory(schema::EncodeSignedDirectory(sd), fed_.anchor(), kNow);
  EXPECT_TRUE(HasError(v, Code::kUnauthenticated, "does not verify"));

  // Same for the serial and the expiry time: a forger cannot extend or bump a directory.
  schema::SignedDirectory bumped = fed_.current();
  schema::Directory d = bumped.directory;
  d.serial = 99;
  d.expires_at_ms += 365 * kDay;
  bumped.directory_bytes = schema::EncodeDirectory(d);
  EXPECT_TRUE(HasCode(VerifyDirectory(schema::EncodeSignedDirectory(bumped), fed_.anchor(), kNow),
                      Code::kUnauthenticated));
}

TEST_F(DirectoryTest, FlippedSignatureIsUnauthenticated) {
  for (size_t i : {size_t{0}, size_t{31}, size_t{63}}) {
    schema::SignedDirectory sd = fed_.current();
    sd.signature[i] ^= 0x80;
    EXPECT_TRUE(HasCode(VerifyDirectory(schema::EncodeSignedDirectory(sd), fed_.anchor(), kNow),
                        Code::kUnauthenticated))
        << i;
  }
}

TEST_F(DirectoryTest, DirectorySignedByAnotherAuthorityIsUnauthenticated) {
  Identity impostor = NewIdentity("authority", PartyKind::kAuthority);
  schema::SignedDirectory forged = SignDirectory(fed_.directory(), impostor);
  EXPECT_TRUE(HasError(VerifyDirectory(schema::EncodeSignedDirectory(forged), fed_.anchor(), kNow),
                       Code::kUnauthenticated, "not by the authority key"));
  // Claiming the real authority's key id does not help.
  forged.authority_key_id = fed_.authority().signing_key_id();
  EXPECT_TRUE(HasError(VerifyDirectory(schema::EncodeSignedDirectory(forged), fed_.anchor(), kNow),
                       Code::kUnauthenticated, "does not verify"));
  // And a party that trusts another anchor refuses the real directory.
  TrustAnchor other{"authority", impostor.signing_public_key(), impostor.signing_key_id()};
  EXPECT_TRUE(HasCode(VerifyDirectory(fed_.current_bytes(), other, kNow), Code::kUnauthenticated));
}

TEST_F(DirectoryTest, SignatureUnderAnotherLabelIsUnauthenticated) {
  schema::SignedDirectory sd = fed_.current();
  sd.signature = fed_.authority().Sign(kLabelPartyRecord, sd.directory_bytes);
  EXPECT_TRUE(HasCode(VerifyDirectory(schema::EncodeSignedDirectory(sd), fed_.anchor(), kNow),
                      Code::kUnauthenticated));
}

TEST_F(DirectoryTest, MalformedBytesAreMalformed) {
  EXPECT_TRUE(
      HasCode(VerifyDirectory(AsBytes("not a directory"), fed_.anchor(), kNow), Code::kMalformed));
  EXPECT_TRUE(HasCode(VerifyDirectory(ByteView(), fed_.anchor(), kNow), Code::kMalformed));
}

TEST_F(DirectoryTest, ExpiryAndGrace) {
  Bytes bytes = fed_.current_bytes();
  auto before = VerifyDirectory(bytes, fed_.anchor(), kExpiry - 1);
  ASSERT_TRUE(IsOk(before));
  EXPECT_FALSE(before->in_grace);

  auto at_expiry = VerifyDirectory(bytes, fed_.anchor(), kExpiry);
  ASSERT_TRUE(IsOk(at_expiry));
  EXPECT_TRUE(at_expiry->in_grace);

  auto end_of_grace = VerifyDirectory(bytes, fed_.anchor(), kExpiry + kDirectoryGraceMs - 1);
  ASSERT_TRUE(IsOk(end_of_grace));
  EXPECT_TRUE(end_of_grace->in_grace);

  EXPECT_TRUE(HasError(VerifyDirectory(bytes, fed_.anchor(), kExpiry + kDirectoryGraceMs),
                       Code::kExpired, "expired"));
  EXPECT_TRUE(HasCode(VerifyDirectory(bytes, fed_.anchor(), kExpiry + 365 * kDay), Code::kExpired));
}

TEST_F(DirectoryTest, IssuedInTheFutureBeyondSkewIsExpired) {
  Bytes bytes = fed_.current_bytes();
  EXPECT_TRUE(IsOk(VerifyDirectory(bytes, fed_.anchor(), kNow - kClockSkewMs)));
  EXPECT_TRUE(HasError(VerifyDirectory(bytes, fed_.anchor(), kNow - kClockSkewMs - 1),
                       Code::kExpired, "future"));
  EXPECT_TRUE(HasCode(VerifyDirectory(bytes, fed_.anchor(), kNow - 30 * kDay), Code::kExpired));
}

// ---- Rollback protection ----

class TrustStateTest : public DirectoryTest {
 protected:
  std::string StatePath() const { return dir_.Join("trust-state"); }

  // A directory with the given serial's predecessor as base but other content.
  schema::SignedDirectory Sibling(const schema::SignedDirectory& of, UnixMillis now) {
    schema::Directory base = of.directory;
    base.serial -= 1;
    auto next = Must(
        NextDirectory(&base, fed::kFederation, DirectoryEdit{}, now, kDefaultDirectoryValidityMs));
    return SignDirectory(next, fed_.authority());
  }

  test::TempDir dir_;
};

TEST_F(TrustStateTest, FreshStateAcceptsAndPersists) {
  auto state = TrustState::Open(StatePath());
  ASSERT_TRUE(IsOk(state));
  EXPECT_EQ(state->highest_serial(), 0u);
  EXPECT_FALSE(PathExists(StatePath()));
  ASSERT_TRUE(IsOk(state->Accept(fed_.current())));
  EXPECT_EQ(state->highest_serial(), 1u);
  EXPECT_EQ(test::FileMode(StatePath()), 0600);
}

TEST_F(TrustStateTest, LowerSerialIsRollback) {
  schema::SignedDirectory s1 = fed_.current();
  schema::SignedDirectory s2 = Must(fed_.Issue(DirectoryEdit{}, kNow + 1));
  auto state = Must(TrustState::Open(StatePath()));
  ASSERT_TRUE(IsOk(state.Accept(s2)));
  EXPECT_TRUE(HasError(state.Accept(s1), Code::kRollback, "serial 1"));
  EXPECT_TRUE(HasCode(state.Check(s1), Code::kRollback));
  EXPECT_EQ(state.highest_serial(), 2u);
}

TEST_F(TrustStateTest, SameSerialDifferentBytesIsRollback) {
  schema::SignedDirectory s2 = Must(fed_.Issue(DirectoryEdit{}, kNow + 1));
  schema::SignedDirectory other_s2 = Sibling(s2, kNow + 2);
  ASSERT_EQ(other_s2.directory.serial, 2u);
  ASSERT_NE(other_s2.directory_bytes, s2.directory_bytes);
  auto state = Must(TrustState::Open(StatePath()));
  ASSERT_TRUE(IsOk(state.Accept(s2)));
  EXPECT_TRUE(HasError(state.Accept(other_s2), Code::kRollback, "differs"));
  // The very same directory again is fine (for example fetched twice).
  EXPECT_TRUE(IsOk(state.Accept(s2)));
  EXPECT_TRUE(IsOk(state.Check(s2)));
}

TEST_F(TrustStateTest, RollbackIsRefusedAfterRestart) {
  schema::SignedDirectory s1 = fed_.current();
  schema::SignedDirectory s2 = Must(fed_.Issue(DirectoryEdit{}, kNow + 1));
  {
    auto state = Must(TrustState::Open(StatePath()));
    ASSERT_TRUE(IsOk(state.Accept(s1)));
    ASSERT_TRUE(IsOk(state.Accept(s2)));
  }
  auto reopened = TrustState::Open(StatePath());
  ASSERT_TRUE(IsOk(reopened));
  EXPECT_EQ(reopened->highest_serial(), 2u);
  EXPECT_TRUE(HasCode(reopened->Accept(s1), Code::kRollback));
  EXPECT_TRUE(HasCode(reopened->Accept(Sibling(s2, kNow + 2)), Code::kRollback));
  EXPECT_TRUE(IsOk(reopened->Accept(s2)));
  schema::SignedDirectory s3 = Must(fed_.Issue(DirectoryEdit{}, kNow + 3));
  EXPECT_TRUE(IsOk(reopened->Accept(s3)));
  EXPECT_EQ(Must(TrustState::Open(StatePath())).highest_serial(), 3u);
}

TEST_F(TrustStateTest, CheckDoesNotPersist) {
  auto state = Must(TrustState::Open(StatePath()));
  ASSERT_TRUE(IsOk(state.Check(fed_.current())));
  EXPECT_EQ(state.highest_serial(), 0u);
  EXPECT_FALSE(PathExists(StatePath()));
}

TEST_F(TrustStateTest, DamagedStateFileIsAnError) {
  auto state = Must(TrustState::Open(StatePath()));
  ASSERT_TRUE(IsOk(state.Accept(fed_.current())));
  const Bytes good = test::ReadAll(StatePath());
  std::string text(AsChars(good));

  std::vector<std::string> damaged = {
      "",
      "garbage",
      text.substr(0, text.size() / 2),
      "refbus-trust-state/1\nserial 1\nhash zz\n",
      "refbus-trust-state/1\nserial 1\nhash 00\n",
      "refbus-trust-state/1\nserial x\nhash 00\n",
      "refbus-trust-state/9\nserial 1\nhash " + std::string(64, '0') + "\n",
      // Found by keyfile_fuzz: a sign or other text around the serial is not a serial.
      "refbus-trust-state/1\nserial -1\nhash " + std::string(64, '0') + "\n",
      "refbus-trust-state/1\nserial +7\nhash " + std::string(64, '0') + "\n",
      "refbus-trust-state/1\nserial 07\nhash " + std::string(64, '0') + "\n",
      "refbus-trust-state/1\nserial 99999999999999999999\nhash " + std::string(64, '0') + "\n",
      text + "trailing\n",
  };
  for (const auto& d : damaged) {
    test::WriteRaw(StatePath(), AsBytes(d), 0600);
    auto r = TrustState::Open(StatePath());
    EXPECT_FALSE(r.ok()) << "'" << d << "'";
    EXPECT_TRUE(HasCode(r, Code::kMalformed)) << "'" << d << "'";
  }
  test::WriteRaw(StatePath(), good, 0600);
  EXPECT_TRUE(IsOk(TrustState::Open(StatePath())));
}

TEST_F(TrustStateTest, LoadAndAcceptDirectoryFromFiles) {
  std::string dir_path = dir_.Join("directory");
  ASSERT_TRUE(IsOk(WriteDirectoryFile(dir_path, fed_.current())));
  EXPECT_EQ(test::FileMode(dir_path), 0644);
  auto state = Must(TrustState::Open(StatePath()));
  auto v = LoadAndAcceptDirectory(dir_path, fed_.anchor(), state, kNow);
  ASSERT_TRUE(IsOk(v));
  EXPECT_EQ(v->signed_directory.directory.serial, 1u);

  schema::SignedDirectory s1 = fed_.current();
  ASSERT_TRUE(IsOk(WriteDirectoryFile(dir_path, Must(fed_.Issue(DirectoryEdit{}, kNow + 1)))));
  ASSERT_TRUE(IsOk(LoadAndAcceptDirectory(dir_path, fed_.anchor(), state, kNow + 1)));
  ASSERT_TRUE(IsOk(WriteDirectoryFile(dir_path, s1)));
  EXPECT_TRUE(HasError(LoadAndAcceptDirectory(dir_path, fed_.anchor(), state, kNow + 2),
                       Code::kRollback, dir_path));

  // A directory that fails verification is never recorded.
  schema::SignedDirectory s3 = Must(fed_.Issue(DirectoryEdit{}, kNow + 3));
  s3.signature[0] ^= 1;
  ASSERT_TRUE(IsOk(WriteDirectoryFile(dir_path, s3)));
  EXPECT_TRUE(HasCode(LoadAndAcceptDirectory(dir_path, fed_.anchor(), state, kNow + 3),
                      Code::kUnauthenticated));
  EXPECT_EQ(state.highest_serial(), 2u);
}

TEST_F(TrustStateTest, DirectoryFilesRoundTrip) {
  std::string path = dir_.Join("directory");
  ASSERT_TRUE(IsOk(WriteDirectoryFile(path, fed_.current())));
  auto sd = ReadDirectoryFile(path);
  ASSERT_TRUE(IsOk(sd));
  EXPECT_EQ(sd->directory_bytes, fed_.current().directory_bytes);
  EXPECT_EQ(DirectoryHash(*sd), DirectoryHash(fed_.current()));
  schema::SignedDirectory next = Must(fed_.Issue(DirectoryEdit{}, kNow + 1));
  EXPECT_NE(DirectoryHash(next), DirectoryHash(*sd));

  test::WriteRaw(path, AsBytes("hello"), 0644);
  EXPECT_TRUE(HasError(ReadDirectoryFile(path), Code::kMalformed, "not a refbus directory"));
}

// ---- Issuing ----

TEST_F(DirectoryTest, SerialIncrementsAndTimesFollowNow) {
  EXPECT_EQ(fed_.directory().serial, 1u);
  EXPECT_EQ(fed_.directory().issued_at_ms, kNow);
  EXPECT_EQ(fed_.directory().expires_at_ms, kExpiry);
  auto s2 = fed_.Issue(DirectoryEdit{}, kNow + kDay, 7 * kDay);
  ASSERT_TRUE(IsOk(s2));
  EXPECT_EQ(s2->directory.serial, 2u);
  EXPECT_EQ(s2->directory.issued_at_ms, kNow + kDay);
  EXPECT_EQ(s2->directory.expires_at_ms, kNow + 8 * kDay);
  auto s3 = fed_.Issue(DirectoryEdit{}, kNow + 2 * kDay);
  ASSERT_TRUE(IsOk(s3));
  EXPECT_EQ(s3->directory.serial, 3u);
  // Nothing else changed.
  EXPECT_EQ(s3->directory.agencies.size(), 4u);
}

TEST_F(DirectoryTest, PartiesAreSortedById) {
  fed_.Add("agency-0", PartyKind::kAgency, fed::AgencyListing(schema::AgencyType::kHotline), kNow);
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-0", kNow));
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow + 1)));
  const auto& agencies = fed_.directory().agencies;
  ASSERT_EQ(agencies.size(), 5u);
  EXPECT_EQ(agencies.front().id, "agency-0");
  EXPECT_TRUE(std::is_sorted(agencies.begin(), agencies.end(),
                             [](const auto& a, const auto& b) { return a.id < b.id; }));
}

// NextDirectory indexes what it issues (with the party it added), after sorting.
TEST_F(DirectoryTest, NextDirectoryIsIndexed) {
  fed_.Add("agency-0", PartyKind::kAgency, fed::AgencyListing(schema::AgencyType::kHotline), kNow);
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-0", kNow));
  auto next =
      NextDirectory(&fed_.directory(), fed::kFederation, edit, kNow, kDefaultDirectoryValidityMs);
  ASSERT_TRUE(IsOk(next));
  EXPECT_EQ(next->IndexedParties(),
            next->agencies.size() + next->brokers.size() + next->auditors.size());
  for (const auto* list : {&next->agencies, &next->brokers, &next->auditors}) {
    for (const auto& p : *list) EXPECT_EQ(next->Find(p.id), &p) << p.id;
  }
}

TEST_F(DirectoryTest, NewPartyGetsIssuerTimes) {
  fed_.Add("agency-e", PartyKind::kAgency, fed::AgencyListing(schema::AgencyType::kHotline), kNow);
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-e", kNow));
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow + 5)));
  const schema::Party& p = PartyIn("agency-e");
  EXPECT_EQ(p.valid_from_ms, kNow + 5);
  EXPECT_EQ(p.status, PartyStatus::kActive);
  ASSERT_EQ(p.keys.size(), 1u);
  EXPECT_EQ(p.keys[0].state_since_ms, kNow + 5);
  EXPECT_EQ(p.roles, DefaultRoles(PartyKind::kAgency, schema::AgencyType::kHotline));
}

TEST_F(DirectoryTest, AgencyWithUnknownHomeBrokerIsRefused) {
  fed_.Add("agency-e", PartyKind::kAgency,
           fed::AgencyListing(schema::AgencyType::kHotline, "broker-busan"), kNow);
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-e", kNow));
  EXPECT_TRUE(HasError(fed_.Issue(edit, kNow + 1), Code::kInvalidArgument, "broker-busan"));
  EXPECT_EQ(fed_.directory().serial, 1u);

  // An agency is not a broker either.
  fed_.Add("agency-f", PartyKind::kAgency,
           fed::AgencyListing(schema::AgencyType::kHotline, "agency-a"), kNow);
  DirectoryEdit edit2;
  edit2.upserts.push_back(fed_.Record("agency-f", kNow));
  EXPECT_TRUE(HasCode(fed_.Issue(edit2, kNow + 1), Code::kInvalidArgument));
}

TEST_F(DirectoryTest, ForgedProofOfPossessionIsRefused) {
  fed_.Add("agency-e", PartyKind::kAgency, fed::AgencyListing(schema::AgencyType::kHotline), kNow);
  schema::SignedPartyRecord rec = fed_.Record("agency-e", kNow);
  Identity other = NewIdentity("agency-e", PartyKind::kAgency);
  rec.signature = other.Sign(kLabelPartyRecord, rec.record_bytes);
  DirectoryEdit edit;
  edit.upserts.push_back(rec);
  EXPECT_TRUE(HasError(fed_.Issue(edit, kNow + 1), Code::kUnauthenticated, "proof of possession"));
  EXPECT_TRUE(HasCode(VerifyPartyRecord(rec), Code::kUnauthenticated));

  // The right key under another label is no proof either.
  rec.signature = fed_.party("agency-e").Sign(kLabelDirectory, rec.record_bytes);
  EXPECT_TRUE(HasCode(VerifyPartyRecord(rec), Code::kUnauthenticated));
}

TEST_F(DirectoryTest, PrekeyNotSignedByItsOwnerIsRefused) {
  fed_.Add("agency-e", PartyKind::kAgency, fed::AgencyListing(schema::AgencyType::kHotline), kNow);
  const Identity& owner = fed_.party("agency-e");
  schema::SignedPartyRecord rec = fed_.Record("agency-e", kNow);
  ASSERT_EQ(rec.record.party.keys[0].prekeys.size(), 1u);
  // A substitute prekey (for the same owner id) signed by someone else.
  Identity attacker = NewIdentity("agency-e", PartyKind::kAgency);
  rec.record.party.keys[0].prekeys[0] = attacker.prekeys()[0].signed_prekey;
  Reseal(rec, owner);
  DirectoryEdit edit;
  edit.upserts.push_back(rec);
  EXPECT_TRUE(HasError(fed_.Issue(edit, kNow + 1), Code::kUnauthenticated, "prekey"));
}

TEST_F(DirectoryTest, MalformedRecordsAreRefused) {
  fed_.Add("agency-e", PartyKind::kAgency, fed::AgencyListing(schema::AgencyType::kHotline), kNow);
  const Identity& owner = fed_.party("agency-e");

  schema::SignedPartyRecord no_prekey = fed_.Record("agency-e", kNow);
  no_prekey.record.party.keys[0].prekeys.clear();
  Reseal(no_prekey, owner);
  EXPECT_TRUE(HasError(VerifyPartyRecord(no_prekey), Code::kMalformed, "prekey"));

  schema::SignedPartyRecord two_keys = fed_.Record("agency-e", kNow);
  two_keys.record.party.keys.push_back(two_keys.record.party.keys[0]);
  Reseal(two_keys, owner);
  EXPECT_TRUE(HasCode(VerifyPartyRecord(two_keys), Code::kMalformed));

  schema::SignedPartyRecord no_transport = fed_.Record("agency-e", kNow);
  no_transport.record.party.keys[0].transport_key.clear();
  Reseal(no_transport, owner);
  EXPECT_TRUE(HasError(VerifyPartyRecord(no_transport), Code::kMalformed, "transport"));

  schema::SignedPartyRecord no_type = fed_.Record("agency-e", kNow);
  no_type.record.party.agency_type = schema::AgencyType::kUnspecified;
  Reseal(no_type, owner);
  EXPECT_TRUE(HasError(VerifyPartyRecord(no_type), Code::kMalformed, "agency type"));

  for (const auto* rec : {&no_prekey, &two_keys, &no_transport, &no_type}) {
    DirectoryEdit edit;
    edit.upserts.push_back(*rec);
    EXPECT_FALSE(fed_.Issue(edit, kNow + 1).ok());
  }
  EXPECT_EQ(fed_.directory().serial, 1u);
}

TEST_F(DirectoryTest, AuthorityRecordIsNotListed) {
  auto rec = Must(MakePartyRecord(fed_.authority(), Listing{}, kNow, nullptr));
  EXPECT_TRUE(IsOk(VerifyPartyRecord(rec)));
  DirectoryEdit edit;
  edit.upserts.push_back(rec);
  EXPECT_TRUE(HasCode(fed_.Issue(edit, kNow + 1), Code::kInvalidArgument));
}

TEST_F(DirectoryTest, IdUsedByAnotherKindIsRefused) {
  Identity broker = NewIdentity("agency-a", PartyKind::kBroker);
  auto rec = Must(MakePartyRecord(broker, fed::BrokerListing(), kNow, nullptr));
  DirectoryEdit edit;
  edit.upserts.push_back(rec);
  EXPECT_TRUE(HasCode(fed_.Issue(edit, kNow + 1), Code::kAlreadyExists));
}

TEST_F(DirectoryTest, FederationMustMatchTheBase) {
  EXPECT_TRUE(HasCode(NextDirectory(&fed_.directory(), "other-federation", DirectoryEdit{}, kNow,
                                    kDefaultDirectoryValidityMs),
                      Code::kInvalidArgument));
  EXPECT_TRUE(
      HasCode(NextDirectory(nullptr, "", DirectoryEdit{}, kNow, kDefaultDirectoryValidityMs),
              Code::kInvalidArgument));
}

TEST_F(DirectoryTest, ListingUpdateWithTheSameKey) {
  Identity& a = fed_.party("agency-a");
  Bytes key = a.signing_public_key();
  Listing listing = fed_.listing("agency-a");
  listing.display_name = "Renamed center";
  auto rec = Must(MakePartyRecord(a, listing, kNow + 1, nullptr));
  DirectoryEdit edit;
  edit.upserts.push_back(rec);
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow + 1)));
  const schema::Party& p = PartyIn("agency-a");
  EXPECT_EQ(p.display_name, "Renamed center");
  ASSERT_EQ(p.keys.size(), 1u);
  EXPECT_EQ(p.keys[0].signing_key, key);
  EXPECT_EQ(p.keys[0].state, KeyState::kActive);
}

TEST_F(DirectoryTest, PrekeyRotationReplacesPrekeys) {
  Identity& a = fed_.party("agency-a");
  auto fresh = Must(a.AddPrekey(kNow + kDay, kNow + 31 * kDay));
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-a", kNow + kDay));
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow + kDay)));
  const schema::Party& p = PartyIn("agency-a");
  ASSERT_EQ(p.keys.size(), 1u);
  ASSERT_EQ(p.keys[0].prekeys.size(), 2u);
  auto current = CurrentPrekey(fed_.directory(), "agency-a", kNow + 2 * kDay);
  ASSERT_TRUE(IsOk(current));
  EXPECT_EQ(current->public_key, fresh.prekey.public_key);
}

// Issue 17 item 4: the authority refuses a prekey valid for more than 30 days (a key that
// never rotates is a key whose theft opens months of referrals); exactly 30 days passes.
TEST_F(DirectoryTest, PrekeyValidForMoreThanThirtyDaysIsRefused) {
  Identity& a = fed_.party("agency-a");
  (void)Must(a.AddPrekey(kNow + kDay, kNow + kDay + kPrekeyLifetimeMs + 1));
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-a", kNow + kDay));
  EXPECT_TRUE(HasError(fed_.Issue(edit, kNow + kDay), Code::kInvalidArgument, "30 days"));
  EXPECT_EQ(PartyIn("agency-a").keys[0].prekeys.size(), 1u) << "the refused record was applied";

  Identity& b = fed_.party("agency-b");
  (void)Must(b.AddPrekey(kNow + kDay, kNow + kDay + kPrekeyLifetimeMs));
  DirectoryEdit ok;
  ok.upserts.push_back(fed_.Record("agency-b", kNow + kDay));
  EXPECT_TRUE(IsOk(fed_.Issue(ok, kNow + kDay)));
}

// A directory whose prekey outlives the cap (from an authority before the cap) is not used
// to seal: senders take the newest prekey within the rules.
TEST_F(DirectoryTest, CurrentPrekeySkipsPrekeysValidForMoreThanThirtyDays) {
  Identity& a = fed_.party("agency-a");
  auto fresh = Must(a.AddPrekey(kNow + kDay, kNow + kDay + 2 * kPrekeyLifetimeMs));
  schema::Directory d = fed_.directory();
  for (auto& p : d.agencies) {
    if (p.id == "agency-a") p.keys[0].prekeys.push_back(fresh);
  }
  auto current = CurrentPrekey(d, "agency-a", kNow + 2 * kDay);
  ASSERT_TRUE(IsOk(current));
  EXPECT_NE(current->public_key, fresh.prekey.public_key);
}

TEST_F(DirectoryTest, TransportKeyChangeWithoutRotationIsRefused) {
  const Identity& a = fed_.party("agency-a");
  schema::SignedPartyRecord rec = fed_.Record("agency-a", kNow + 1);
  Identity other = NewIdentity("agency-a", PartyKind::kAgency);
  rec.record.party.keys[0].transport_key = other.transport_public_key();
  Reseal(rec, a);
  DirectoryEdit edit;
  edit.upserts.push_back(rec);
  EXPECT_TRUE(HasError(fed_.Issue(edit, kNow + 1), Code::kInvalidArgument, "transport key"));
}

// ---- Rotation and revocation ----

class RotationTest : public DirectoryTest {
 protected:
  static constexpr UnixMillis kRotatedAt = kNow + 10 * kDay;

  // agency-a gets new keys at kRotatedAt; returns its record (endorsed by the old key when
  // endorse is true). old_ keeps the old identity.
  schema::SignedPartyRecord RotateAgencyA(bool endorse) {
    old_key_ = fed_.party("agency-a").signing_public_key();
    old_.emplace(fed_.Replace("agency-a", NewIdentity("agency-a", PartyKind::kAgency, kRotatedAt)));
    return fed_.Record("agency-a", kRotatedAt, endorse ? &*old_ : nullptr);
  }

  Bytes OldKeyId() const { return KeyId(KeyUse::kSigning, old_key_); }
  Bytes NewKeyId() { return fed_.party("agency-a").signing_key_id(); }

  std::optional<Identity> old_;
  Bytes old_key_;
};

TEST_F(RotationTest, EndorsedRotationRetiresTheOldKey) {
  DirectoryEdit edit;
  edit.upserts.push_back(RotateAgencyA(/*endorse=*/true));
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kRotatedAt)));
  const schema::Party& p = PartyIn("agency-a");
  ASSERT_EQ(p.keys.size(), 2u);
  EXPECT_EQ(p.keys[0].signing_key, fed_.party("agency-a").signing_public_key());
  EXPECT_EQ(p.keys[0].state, KeyState::kActive);
  EXPECT_EQ(p.keys[0].state_since_ms, kRotatedAt);
  EXPECT_EQ(p.keys[1].signing_key, old_key_);
  EXPECT_EQ(p.keys[1].state, KeyState::kRetired);
  EXPECT_EQ(p.keys[1].state_since_ms, kRotatedAt);
  EXPECT_EQ(p.ActiveKeys(), &p.keys[0]);
  EXPECT_EQ(p.status, PartyStatus::kActive);
}

TEST_F(RotationTest, UnendorsedRotationIsRefusedUnlessAllowed) {
  schema::SignedPartyRecord rec = RotateAgencyA(/*endorse=*/false);
  DirectoryEdit edit;
  edit.upserts.push_back(rec);
  EXPECT_TRUE(HasError(fed_.Issue(edit, kRotatedAt), Code::kUnauthenticated, "did not endorse"));
  EXPECT_EQ(fed_.directory().serial, 1u);

  edit.allow_unendorsed_rotation = true;
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kRotatedAt)));
  const schema::Party& p = PartyIn("agency-a");
  ASSERT_EQ(p.keys.size(), 2u);
  EXPECT_EQ(p.keys[0].state, KeyState::kActive);
  EXPECT_EQ(p.keys[1].state, KeyState::kRetired);
}

TEST_F(RotationTest, RotationEndorsedByAForeignKeyIsRefused) {
  old_key_ = fed_.party("agency-a").signing_public_key();
  Identity stranger = NewIdentity("agency-a", PartyKind::kAgency);
  fed_.Replace("agency-a", NewIdentity("agency-a", PartyKind::kAgency, kRotatedAt));
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-a", kRotatedAt, &stranger));
  EXPECT_TRUE(HasCode(fed_.Issue(edit, kRotatedAt), Code::kUnauthenticated));
}

TEST_F(RotationTest, CompromisedRotationRevokesTheOldKey) {
  DirectoryEdit edit;
  edit.upserts.push_back(RotateAgencyA(/*endorse=*/true));
  edit.compromised.push_back("agency-a");
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kRotatedAt)));
  const schema::Party& p = PartyIn("agency-a");
  ASSERT_EQ(p.keys.size(), 2u);
  EXPECT_EQ(p.keys[0].state, KeyState::kActive);
  EXPECT_EQ(p.keys[1].signing_key, old_key_);
  EXPECT_EQ(p.keys[1].state, KeyState::kRevoked);
  // Nothing signed by it verifies any more, whatever time it claims.
  EXPECT_TRUE(HasCode(FindSigningKey(fed_.directory(), "agency-a", OldKeyId(), kNow, kRotatedAt),
                      Code::kRevoked));
}

TEST_F(RotationTest, CompromisedWithoutRotationOrRevocationIsRefused) {
  DirectoryEdit edit;
  edit.compromised.push_back("agency-a");
  EXPECT_TRUE(HasError(fed_.Issue(edit, kRotatedAt), Code::kInvalidArgument, "compromised"));
}

// A party marked compromised whose upsert keeps the same signing key (a listing or prekey
// update, not a rotation) must not come out of NextDirectory with the compromised key
// still ACTIVE: either the edit is refused or the key is no longer trusted.
TEST_F(RotationTest, CompromisedKeyNeverStaysActive) {
  Bytes key = fed_.party("agency-a").signing_public_key();
  Must(fed_.party("agency-a").AddPrekey(kRotatedAt, kRotatedAt + 30 * kDay));
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-a", kRotatedAt));  // same signing key
  edit.compromised.push_back("agency-a");
  auto r = fed_.Issue(edit, kRotatedAt);
  if (!r.ok()) {
    // Refusing is fine; the refusal names the party.
    EXPECT_TRUE(test::HasSubstr(r.status().message(), "agency-a")) << r.status().ToString();
  } else {
    const schema::KeyRecord* active = PartyIn("agency-a").ActiveKeys();
    ASSERT_NE(active, nullptr);
    EXPECT_NE(Fingerprint(KeyId(KeyUse::kSigning, active->signing_key)),
              Fingerprint(KeyId(KeyUse::kSigning, key)))
        << "agency-a was marked compromised, but NextDirectory returned ok with its "
           "compromised signing key still ACTIVE";
  }
}

TEST_F(RotationTest, RevokedPartyHasAllKeysRevoked) {
  // Rotate first so there is a retired generation too.
  DirectoryEdit rotate;
  rotate.upserts.push_back(RotateAgencyA(/*endorse=*/true));
  ASSERT_TRUE(IsOk(fed_.Issue(rotate, kRotatedAt)));
  DirectoryEdit revoke;
  revoke.revoke.push_back("agency-a");
  ASSERT_TRUE(IsOk(fed_.Issue(revoke, kRotatedAt + kDay)));
  const schema::Party& p = PartyIn("agency-a");
  EXPECT_EQ(p.status, PartyStatus::kRevoked);
  EXPECT_EQ(p.status_since_ms, kRotatedAt + kDay);
  for (const auto& k : p.keys) EXPECT_EQ(k.state, KeyState::kRevoked);
  EXPECT_EQ(p.ActiveKeys(), nullptr);
  // Other parties are untouched.
  EXPECT_EQ(PartyIn("agency-b").status, PartyStatus::kActive);
}

TEST_F(RotationTest, RevokedIdIsNeverReused) {
  schema::SignedPartyRecord before = fed_.Record("agency-b", kNow);
  DirectoryEdit revoke;
  revoke.revoke.push_back("agency-b");
  ASSERT_TRUE(IsOk(fed_.Issue(revoke, kNow + 1)));

  DirectoryEdit same;
  same.upserts.push_back(before);
  EXPECT_TRUE(HasError(fed_.Issue(same, kNow + 2), Code::kFailedPrecondition, "revoked"));

  fed_.Add("agency-b", PartyKind::kAgency, fed::AgencyListing(schema::AgencyType::kPoliceUnit),
           kNow + 2);
  DirectoryEdit fresh;
  fresh.upserts.push_back(fed_.Record("agency-b", kNow + 2));
  fresh.allow_unendorsed_rotation = true;
  EXPECT_TRUE(HasCode(fed_.Issue(fresh, kNow + 2), Code::kFailedPrecondition));
  EXPECT_EQ(PartyIn("agency-b").status, PartyStatus::kRevoked);
}

TEST_F(RotationTest, RevokingUnknownPartyIsNotFound) {
  DirectoryEdit edit;
  edit.revoke.push_back("agency-zz");
  EXPECT_TRUE(HasError(fed_.Issue(edit, kNow + 1), Code::kNotFound, "agency-zz"));
}

TEST_F(RotationTest, RevokingAHomeBrokerIsRefused) {
  DirectoryEdit edit;
  edit.revoke.push_back(fed::kBroker);
  EXPECT_TRUE(HasError(fed_.Issue(edit, kNow + 1), Code::kFailedPrecondition, "home broker"));
}

// ---- FindSigningKey ----

TEST_F(RotationTest, FindSigningKeyActive) {
  const Identity& b = fed_.party("agency-b");
  auto k = FindSigningKey(fed_.directory(), "agency-b", b.signing_key_id(), kNow, kNow);
  ASSERT_TRUE(IsOk(k));
  EXPECT_EQ((*k)->signing_key, b.signing_public_key());
  EXPECT_EQ((*k)->state, KeyState::kActive);
}

TEST_F(RotationTest, FindSigningKeyRetiredWindow) {
  DirectoryEdit edit;
  edit.upserts.push_back(RotateAgencyA(/*endorse=*/true));
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kRotatedAt)));
  const schema::Directory& d = fed_.directory();
  // Signed before retirement, checked soon after: accepted.
  auto ok = FindSigningKey(d, "agency-a", OldKeyId(), kRotatedAt - 1, kRotatedAt + kDay);
  ASSERT_TRUE(IsOk(ok));
  EXPECT_EQ((*ok)->state, KeyState::kRetired);
  EXPECT_TRUE(IsOk(FindSigningKey(d, "agency-a", OldKeyId(), kRotatedAt - 1,
                                  kRotatedAt + kRetiredKeyAcceptMs - 1)));
  // Checked after the acceptance window.
  EXPECT_TRUE(HasCode(
      FindSigningKey(d, "agency-a", OldKeyId(), kRotatedAt - 1, kRotatedAt + kRetiredKeyAcceptMs),
      Code::kRevoked));
  // Claims to be signed at or after retirement.
  EXPECT_TRUE(HasCode(FindSigningKey(d, "agency-a", OldKeyId(), kRotatedAt, kRotatedAt + 1),
                      Code::kRevoked));
  EXPECT_TRUE(
      HasCode(FindSigningKey(d, "agency-a", OldKeyId(), kRotatedAt + kDay, kRotatedAt + kDay),
              Code::kRevoked));
  // The new key is active.
  EXPECT_TRUE(IsOk(FindSigningKey(d, "agency-a", NewKeyId(), kRotatedAt, kRotatedAt)));
}

TEST_F(RotationTest, FindSigningKeyRevokedParty) {
  Bytes key_id = fed_.party("agency-c").signing_key_id();
  DirectoryEdit edit;
  edit.revoke.push_back("agency-c");
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow + kDay)));
  EXPECT_TRUE(HasCode(FindSigningKey(fed_.directory(), "agency-c", key_id, kNow, kNow + kDay),
                      Code::kRevoked));
}

TEST_F(RotationTest, FindSigningKeyUnknown) {
  const schema::Directory& d = fed_.directory();
  // A key of another party, claimed for agency-a.
  EXPECT_TRUE(
      HasCode(FindSigningKey(d, "agency-a", fed_.party("agency-b").signing_key_id(), kNow, kNow),
              Code::kUnauthenticated));
  EXPECT_TRUE(
      HasCode(FindSigningKey(d, "agency-a", Bytes(16, 0), kNow, kNow), Code::kUnauthenticated));
  EXPECT_TRUE(
      HasCode(FindSigningKey(d, "agency-zz", Bytes(16, 0), kNow, kNow), Code::kUnauthenticated));
}

// ---- CurrentPrekey ----

TEST_F(DirectoryTest, CurrentPrekeyIsTheAgencysPrekey) {
  const Identity& a = fed_.party("agency-a");
  auto p = CurrentPrekey(fed_.directory(), "agency-a", kNow);
  ASSERT_TRUE(IsOk(p));
  EXPECT_EQ(p->agency_id, "agency-a");
  EXPECT_EQ(p->public_key, a.prekeys()[0].signed_prekey.prekey.public_key);
  EXPECT_EQ(p->prekey_id, a.prekeys()[0].id);
}

TEST_F(DirectoryTest, CurrentPrekeyPicksTheNewestValid) {
  Identity& a = fed_.party("agency-a");  // p1: [kNow, kNow + 30d]
  auto p2 = Must(a.AddPrekey(kNow + kDay, kNow + 31 * kDay));
  auto p3 = Must(a.AddPrekey(kNow + 10 * kDay, kNow + 40 * kDay));
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-a", kNow));
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow)));
  const schema::Directory& d = fed_.directory();

  EXPECT_EQ(Must(CurrentPrekey(d, "agency-a", kNow)).public_key,
            a.prekeys()[0].signed_prekey.prekey.public_key);
  EXPECT_EQ(Must(CurrentPrekey(d, "agency-a", kNow + 2 * kDay)).public_key, p2.prekey.public_key);
  // Not yet valid, except within the clock skew.
  EXPECT_EQ(Must(CurrentPrekey(d, "agency-a", kNow + 10 * kDay - kClockSkewMs - 1)).public_key,
            p2.prekey.public_key);
  EXPECT_EQ(Must(CurrentPrekey(d, "agency-a", kNow + 10 * kDay - kClockSkewMs)).public_key,
            p3.prekey.public_key);
  EXPECT_EQ(Must(CurrentPrekey(d, "agency-a", kNow + 35 * kDay)).public_key, p3.prekey.public_key);
  EXPECT_TRUE(HasError(CurrentPrekey(d, "agency-a", kNow + 40 * kDay), Code::kExpired, "prekey"));
}

TEST_F(DirectoryTest, CurrentPrekeySkipsBadSignatures) {
  Identity& a = fed_.party("agency-a");
  auto newer = Must(a.AddPrekey(kNow + kDay, kNow + 31 * kDay));
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-a", kNow));
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow)));
  schema::Directory d = fed_.directory();
  schema::Party* p = nullptr;
  for (auto& ag : d.agencies) {
    if (ag.id == "agency-a") p = &ag;
  }
  ASSERT_NE(p, nullptr);
  for (auto& sp : p->keys[0].prekeys) {
    if (sp.prekey.public_key == newer.prekey.public_key) sp.signature[0] ^= 1;
  }
  auto current = CurrentPrekey(d, "agency-a", kNow + 2 * kDay);
  ASSERT_TRUE(IsOk(current));
  EXPECT_EQ(current->public_key, a.prekeys()[0].signed_prekey.prekey.public_key);
}

TEST_F(DirectoryTest, CurrentPrekeyOfRevokedOrNonAgency) {
  DirectoryEdit edit;
  edit.revoke.push_back("agency-d");
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow + 1)));
  EXPECT_TRUE(HasCode(CurrentPrekey(fed_.directory(), "agency-d", kNow + 1), Code::kRevoked));
  EXPECT_TRUE(HasCode(CurrentPrekey(fed_.directory(), fed::kBroker, kNow + 1), Code::kNotFound));
  EXPECT_TRUE(HasCode(CurrentPrekey(fed_.directory(), "agency-zz", kNow + 1), Code::kNotFound));
}

// ---- Trust anchor and records ----

TEST_F(TrustStateTest, LoadTrustAnchor) {
  Listing listing;
  listing.display_name = "Federation authority";
  auto rec = Must(MakePartyRecord(fed_.authority(), listing, kNow, nullptr));
  std::string path = dir_.Join("authority.pub");
  ASSERT_TRUE(IsOk(WritePartyRecordFile(path, rec)));
  EXPECT_EQ(test::FileMode(path), 0644);
  auto anchor = LoadTrustAnchor(path);
  ASSERT_TRUE(IsOk(anchor));
  EXPECT_EQ(anchor->authority_id, "authority");
  EXPECT_EQ(anchor->signing_key, fed_.authority().signing_public_key());
  EXPECT_EQ(anchor->key_id, fed_.authority().signing_key_id());
}

TEST_F(TrustStateTest, LoadTrustAnchorRefusesANonAuthorityRecord) {
  std::string path = dir_.Join("authority.pub");
  ASSERT_TRUE(IsOk(WritePartyRecordFile(path, fed_.Record("agency-a", kNow))));
  EXPECT_TRUE(
      HasError(LoadTrustAnchor(path), Code::kInvalidArgument, "not of the federation authority"));
  ASSERT_TRUE(IsOk(WritePartyRecordFile(path, fed_.Record(fed::kBroker, kNow))));
  EXPECT_TRUE(HasCode(LoadTrustAnchor(path), Code::kInvalidArgument));
}

TEST_F(TrustStateTest, LoadTrustAnchorRefusesATamperedRecord) {
  auto rec = Must(MakePartyRecord(fed_.authority(), Listing{}, kNow, nullptr));
  rec.signature[5] ^= 1;
  std::string path = dir_.Join("authority.pub");
  ASSERT_TRUE(IsOk(WritePartyRecordFile(path, rec)));
  EXPECT_TRUE(HasCode(LoadTrustAnchor(path), Code::kUnauthenticated));

  test::WriteRaw(path, AsBytes("hello"), 0644);
  EXPECT_TRUE(HasCode(LoadTrustAnchor(path), Code::kMalformed));
  EXPECT_TRUE(HasCode(LoadTrustAnchor(dir_.Join("missing")), Code::kNotFound));
}

TEST_F(TrustStateTest, PartyRecordFilesRoundTrip) {
  auto rec = fed_.Record("agency-a", kNow);
  std::string path = dir_.Join("agency-a.record");
  ASSERT_TRUE(IsOk(WritePartyRecordFile(path, rec)));
  auto back = ReadPartyRecordFile(path);
  ASSERT_TRUE(IsOk(back));
  EXPECT_EQ(back->record_bytes, rec.record_bytes);
  EXPECT_EQ(back->signature, rec.signature);
  EXPECT_TRUE(IsOk(VerifyPartyRecord(*back)));
}

TEST(PartyRecordTest, MakePartyRecordChecksItsInputs) {
  Identity a = NewIdentity("agency-a", PartyKind::kAgency);
  Identity b = NewIdentity("agency-b", PartyKind::kAgency);
  EXPECT_TRUE(
      HasCode(MakePartyRecord(a, fed::AgencyListing(schema::AgencyType::kHotline), kNow, &b),
              Code::kInvalidArgument));
  EXPECT_TRUE(HasError(
      MakePartyRecord(a, fed::AgencyListing(schema::AgencyType::kHotline, ""), kNow, nullptr),
      Code::kInvalidArgument, "home broker"));
}

TEST(PartyRecordTest, MakePartyRecordLeavesOutExpiredPrekeys) {
  Identity a = NewIdentity("agency-a", PartyKind::kAgency);  // [kNow, kNow + 30d]
  Must(a.AddPrekey(kNow + 20 * kMillisPerDay, kNow + 50 * kMillisPerDay));
  auto rec = Must(MakePartyRecord(a, fed::AgencyListing(schema::AgencyType::kHotline),
                                  kNow + 40 * kMillisPerDay, nullptr));
  ASSERT_EQ(rec.record.party.keys.size(), 1u);
  ASSERT_EQ(rec.record.party.keys[0].prekeys.size(), 1u);
  EXPECT_EQ(rec.record.party.keys[0].prekeys[0].prekey.not_before_ms, kNow + 20 * kMillisPerDay);
  EXPECT_TRUE(IsOk(VerifyPartyRecord(rec)));
}

TEST(PartyRecordTest, DefaultRoles) {
  using schema::AgencyType;
  using schema::Role;
  auto police = DefaultRoles(PartyKind::kAgency, AgencyType::kPoliceUnit);
  EXPECT_EQ(police, (std::vector<Role>{Role::kRefer, Role::kReceive, Role::kInvestigation,
                                       Role::kCaseLead}));
  EXPECT_EQ(DefaultRoles(PartyKind::kAgency, AgencyType::kDeletionCenter),
            (std::vector<Role>{Role::kRefer, Role::kReceive, Role::kDeletion}));
  EXPECT_EQ(DefaultRoles(PartyKind::kAgency, AgencyType::kHotline),
            (std::vector<Role>{Role::kRefer, Role::kReceive}));
  EXPECT_EQ(DefaultRoles(PartyKind::kBroker, AgencyType::kUnspecified),
            (std::vector<Role>{Role::kRelay, Role::kWitness}));
  EXPECT_EQ(DefaultRoles(PartyKind::kAuditor, AgencyType::kUnspecified),
            (std::vector<Role>{Role::kAudit, Role::kWitness}));
  EXPECT_TRUE(DefaultRoles(PartyKind::kAuthority, AgencyType::kUnspecified).empty());
}

}  // namespace
}  // namespace refbus::keys

// ---- Linkage evaluators (issue 19, PROTOCOL.md 13.3) ----

namespace refbus::keys {
namespace {

Bytes RandomLinkageKey() {
  Bytes k(crypto_core_ristretto255_BYTES);
  crypto_core_ristretto255_random(k.data());
  return k;
}

class LinkageEvaluatorListingTest : public DirectoryTest {
 protected:
  // agency-a asks for the role linkage-evaluator with the given key.
  Result<schema::SignedDirectory> Ask(Bytes key, bool with_role = true) {
    Listing listing = fed_.listing("agency-a");
    listing.roles = DefaultRoles(PartyKind::kAgency, listing.agency_type);
    if (with_role) listing.roles.push_back(schema::Role::kLinkageEvaluator);
    listing.linkage_key = std::move(key);
    DirectoryEdit edit;
    edit.upserts.push_back(
        Must(MakePartyRecord(fed_.party("agency-a"), listing, kNow + 1, nullptr)));
    return fed_.Issue(edit, kNow + 1);
  }
};

TEST_F(LinkageEvaluatorListingTest, TheKeyIsListedAndSurvivesTheCodec) {
  const Bytes key = RandomLinkageKey();
  ASSERT_TRUE(IsOk(Ask(key)));
  auto decoded = schema::DecodeSignedDirectory(fed_.current_bytes());
  ASSERT_TRUE(IsOk(decoded));
  const schema::Party* p = decoded->directory.Find("agency-a");
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->HasRole(schema::Role::kLinkageEvaluator));
  ASSERT_NE(p->ActiveKeys(), nullptr);
  EXPECT_EQ(p->ActiveKeys()->linkage_key, key);
  EXPECT_EQ(schema::Name(schema::Role::kLinkageEvaluator), "linkage-evaluator");
  EXPECT_EQ(schema::ParseRole("linkage-evaluator"), schema::Role::kLinkageEvaluator);
}

TEST_F(LinkageEvaluatorListingTest, TheRoleNeedsAValidKeyAndTheKeyNeedsTheRole) {
  EXPECT_TRUE(HasCode(Ask({}), Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(Ask(Bytes(32, 0)), Code::kInvalidArgument));     // the identity
  EXPECT_TRUE(HasCode(Ask(Bytes(32, 0xff)), Code::kInvalidArgument));  // not an encoding
  EXPECT_TRUE(HasCode(Ask(RandomLinkageKey(), /*with_role=*/false), Code::kInvalidArgument));
  EXPECT_FALSE(PartyIn("agency-a").HasRole(schema::Role::kLinkageEvaluator));
}

TEST_F(LinkageEvaluatorListingTest, AuditorsMayNotEvaluate) {
  Listing listing;
  listing.display_name = "Auditor";
  listing.roles = {schema::Role::kAudit, schema::Role::kLinkageEvaluator};
  listing.linkage_key = RandomLinkageKey();
  fed_.Add("auditor-x", PartyKind::kAuditor, listing, kNow);
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("auditor-x", kNow + 1));
  EXPECT_TRUE(HasCode(fed_.Issue(edit, kNow + 1), Code::kPermissionDenied));
}

}  // namespace
}  // namespace refbus::keys
