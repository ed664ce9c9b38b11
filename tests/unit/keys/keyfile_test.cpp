// Tests for keys/keyfile.h and keys/identity.h: identities saved to and loaded from secret
// key files, and every way a key file can be refused.
#include "keys/keyfile.h"

#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/file.h"
#include "keys/crypto.h"
#include "keys/directory.h"
#include "keys/identity.h"
#include "schema/codec.h"
#include "tests/unit/keys/federation.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
namespace {

using fed::kNow;
using fed::NewIdentity;
using test::FileMode;
using test::HasCode;
using test::HasError;
using test::IsOk;
using test::Must;
using Code = Status::Code;

// Argon2id at libsodium's minimum: fast enough for loops (loading such a file needs the
// floor lowered to it too). One test uses DefaultKdfCost().
const KdfCost kCheapKdf{crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN};

SecretBuffer Passphrase(std::string_view text) { return Must(SecretBuffer::CopyOf(AsBytes(text))); }

// Same party, same secrets: compares everything public an Identity exposes, and the
// prekey secrets themselves.
::testing::AssertionResult SameIdentity(const Identity& a, const Identity& b) {
  if (a.party_id() != b.party_id()) return ::testing::AssertionFailure() << "party id differs";
  if (a.kind() != b.kind()) return ::testing::AssertionFailure() << "kind differs";
  if (a.signing_key_id() != b.signing_key_id() ||
      a.signing_public_key() != b.signing_public_key()) {
    return ::testing::AssertionFailure() << "signing key differs";
  }
  if (a.has_transport() != b.has_transport() ||
      a.transport_public_key() != b.transport_public_key()) {
    return ::testing::AssertionFailure() << "transport key differs";
  }
  if (a.has_transport() && !a.transport_secret_key().Equals(b.transport_secret_key())) {
    return ::testing::AssertionFailure() << "transport secret differs";
  }
  if (a.prekeys().size() != b.prekeys().size()) {
    return ::testing::AssertionFailure() << "prekey count differs";
  }
  for (size_t i = 0; i < a.prekeys().size(); ++i) {
    const PrekeyEntry& pa = a.prekeys()[i];
    const PrekeyEntry& pb = b.prekeys()[i];
    if (pa.id != pb.id || pa.signed_prekey.prekey_bytes != pb.signed_prekey.prekey_bytes ||
        pa.signed_prekey.signature != pb.signed_prekey.signature || !pa.secret.Equals(pb.secret)) {
      return ::testing::AssertionFailure() << "prekey " << i << " differs";
    }
  }
  return ::testing::AssertionSuccess();
}

class KeyFileTest : public ::testing::Test {
 protected:
  KeyFileTest() : agency_(NewIdentity("agency-a", schema::PartyKind::kAgency)) {
    // A second prekey so the bundle carries more than one.
    Must(agency_.AddPrekey(kNow + kMillisPerDay, kNow + 31 * kMillisPerDay));
  }

  std::string KeyPath() const { return dir_.Join("identity.key"); }

  test::TempDir dir_;
  Identity agency_;
};

// ---- Identity ----

TEST(IdentityTest, GenerateGivesEachKindItsKeys) {
  Identity agency = NewIdentity("agency-a", schema::PartyKind::kAgency);
  EXPECT_EQ(agency.party_id(), "agency-a");
  EXPECT_EQ(agency.signing_public_key().size(), schema::kPublicKeyBytes);
  EXPECT_EQ(agency.signing_key_id(), KeyId(KeyUse::kSigning, agency.signing_public_key()));
  EXPECT_TRUE(agency.has_transport());
  ASSERT_EQ(agency.prekeys().size(), 1u);
  EXPECT_EQ(agency.prekeys()[0].signed_prekey.prekey.not_before_ms, kNow);
  EXPECT_EQ(agency.prekeys()[0].signed_prekey.prekey.not_after_ms, kNow + kPrekeyLifetimeMs);
  EXPECT_TRUE(VerifySignature(agency.signing_public_key(), kLabelPrekey,
                              agency.prekeys()[0].signed_prekey.prekey_bytes,
                              agency.prekeys()[0].signed_prekey.signature));

  Identity authority = NewIdentity("authority", schema::PartyKind::kAuthority);
  EXPECT_FALSE(authority.has_transport());
  EXPECT_TRUE(authority.prekeys().empty());

  Identity broker = NewIdentity("broker-seoul", schema::PartyKind::kBroker);
  EXPECT_TRUE(broker.has_transport());
  EXPECT_TRUE(broker.prekeys().empty());
  EXPECT_NE(broker.signing_key_id(), agency.signing_key_id());
}

TEST(IdentityTest, GenerateRefusesInvalidPartyId) {
  auto r = Identity::Generate("Bad Id", schema::PartyKind::kAgency, kNow, kPrekeyLifetimeMs);
  EXPECT_TRUE(HasError(r, Code::kInvalidArgument, "not a valid party id"));
  EXPECT_TRUE(
      HasCode(Identity::Generate("../x", schema::PartyKind::kBroker, kNow, kPrekeyLifetimeMs),
              Code::kInvalidArgument));
}

TEST(IdentityTest, SignaturesAreDomainSeparated) {
  Identity id = NewIdentity("agency-a", schema::PartyKind::kAgency);
  Bytes body = ToBytes("body");
  Bytes sig = id.Sign(kLabelEnvelope, body);
  EXPECT_TRUE(VerifySignature(id.signing_public_key(), kLabelEnvelope, body, sig));
  EXPECT_FALSE(VerifySignature(id.signing_public_key(), kLabelDirectory, body, sig));
  EXPECT_FALSE(VerifySignature(id.signing_public_key(), kLabelEnvelope, ToBytes("bodY"), sig));
}

TEST(IdentityTest, AddPrekeyRefusesEmptyWindow) {
  Identity id = NewIdentity("agency-a", schema::PartyKind::kAgency);
  EXPECT_TRUE(HasCode(id.AddPrekey(kNow, kNow), Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(id.AddPrekey(kNow, kNow - 1), Code::kInvalidArgument));
  EXPECT_EQ(id.prekeys().size(), 1u);
}

TEST(IdentityTest, PrunePrekeysWipesOnlyExpiredOnes) {
  Identity id = NewIdentity("agency-a", schema::PartyKind::kAgency);  // [kNow, kNow+30d]
  const UnixMillis day = kMillisPerDay;
  auto old_prekey = Must(id.AddPrekey(kNow - 50 * day, kNow - 40 * day));
  auto newer = Must(id.AddPrekey(kNow + day, kNow + 60 * day));
  Bytes old_id = KeyId(KeyUse::kPrekey, old_prekey.prekey.public_key);
  Bytes first_id = id.prekeys()[0].id;
  ASSERT_EQ(id.prekeys().size(), 3u);
  ASSERT_NE(id.FindPrekey(old_id), nullptr);

  // Keep expired prekeys for 30 days: at kNow the old one expired 40 days ago.
  EXPECT_EQ(id.PrunePrekeys(kNow, 30 * day), 1u);
  EXPECT_EQ(id.FindPrekey(old_id), nullptr);
  EXPECT_NE(id.FindPrekey(first_id), nullptr);
  EXPECT_NE(id.FindPrekey(KeyId(KeyUse::kPrekey, newer.prekey.public_key)), nullptr);
  EXPECT_EQ(id.prekeys().size(), 2u);

  // Boundary: a prekey is kept while now <= not_after + keep.
  EXPECT_EQ(id.PrunePrekeys(kNow + 30 * day + 30 * day, 30 * day), 0u);
  EXPECT_EQ(id.PrunePrekeys(kNow + 30 * day + 30 * day + 1, 30 * day), 1u);
  EXPECT_EQ(id.FindPrekey(first_id), nullptr);
  EXPECT_EQ(id.prekeys().size(), 1u);
}

TEST(IdentityTest, FindPrekeyUnknownId) {
  Identity id = NewIdentity("agency-a", schema::PartyKind::kAgency);
  EXPECT_EQ(id.FindPrekey(Bytes(16, 0)), nullptr);
  EXPECT_EQ(id.FindPrekey(Bytes()), nullptr);
}

// ---- Save and load ----

TEST_F(KeyFileTest, UnprotectedRoundTrip) {
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), nullptr)));
  auto loaded = LoadIdentity(KeyPath(), nullptr);
  ASSERT_TRUE(IsOk(loaded));
  EXPECT_TRUE(SameIdentity(*loaded, agency_));
  EXPECT_EQ(loaded->prekeys().size(), 2u);
  auto prot = IsProtected(KeyPath());
  ASSERT_TRUE(IsOk(prot));
  EXPECT_FALSE(*prot);
}

TEST_F(KeyFileTest, LoadedIdentitySignsForTheOriginalPublicKey) {
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), nullptr)));
  auto loaded = LoadIdentity(KeyPath(), nullptr);
  ASSERT_TRUE(IsOk(loaded));
  Bytes body = ToBytes("referral for case CASE-2026-0001");
  Bytes sig = loaded->Sign(kLabelConsentGrant, body);
  EXPECT_TRUE(VerifySignature(agency_.signing_public_key(), kLabelConsentGrant, body, sig));
  // And the prekeys can still be found by id (they open envelopes).
  for (const auto& p : agency_.prekeys()) {
    const PrekeyEntry* e = loaded->FindPrekey(p.id);
    ASSERT_NE(e, nullptr);
    EXPECT_TRUE(e->secret.Equals(p.secret));
  }
}

TEST_F(KeyFileTest, ProtectedRoundTrip) {
  SecretBuffer pass = Passphrase("correct horse battery staple");
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, kCheapKdf)));
  auto prot = IsProtected(KeyPath());
  ASSERT_TRUE(IsOk(prot));
  EXPECT_TRUE(*prot);
  auto loaded = LoadIdentity(KeyPath(), &pass, kCheapKdf);
  ASSERT_TRUE(IsOk(loaded));
  EXPECT_TRUE(SameIdentity(*loaded, agency_));
}

TEST_F(KeyFileTest, ProtectedRoundTripWithDefaultCost) {
  SecretBuffer pass = Passphrase("a passphrase at the interactive cost");
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, DefaultKdfCost())));
  auto file = schema::DecodeSecretKeyFile(
      Must(schema::StripMagic(schema::kSecretKeyFileMagic, test::ReadAll(KeyPath()), "key")));
  ASSERT_TRUE(IsOk(file));
  EXPECT_EQ(file->kdf_opslimit, crypto_pwhash_OPSLIMIT_INTERACTIVE);
  EXPECT_EQ(file->kdf_memlimit, crypto_pwhash_MEMLIMIT_INTERACTIVE);
  auto loaded = LoadIdentity(KeyPath(), &pass);
  ASSERT_TRUE(IsOk(loaded));
  EXPECT_TRUE(SameIdentity(*loaded, agency_));
}

TEST_F(KeyFileTest, AuthorityAndBrokerRoundTrip) {
  Identity authority = NewIdentity("authority", schema::PartyKind::kAuthority);
  Identity broker = NewIdentity("broker-seoul", schema::PartyKind::kBroker);
  SecretBuffer pass = Passphrase("pw");
  ASSERT_TRUE(IsOk(SaveIdentity(authority, dir_.Join("a.key"), nullptr)));
  ASSERT_TRUE(IsOk(SaveIdentity(broker, dir_.Join("b.key"), &pass, kCheapKdf)));
  auto a = LoadIdentity(dir_.Join("a.key"), nullptr);
  ASSERT_TRUE(IsOk(a));
  EXPECT_TRUE(SameIdentity(*a, authority));
  EXPECT_FALSE(a->has_transport());
  auto b = LoadIdentity(dir_.Join("b.key"), &pass, kCheapKdf);
  ASSERT_TRUE(IsOk(b));
  EXPECT_TRUE(SameIdentity(*b, broker));
}

TEST_F(KeyFileTest, FileIsCreatedPrivateUnderPermissiveUmask) {
  test::UmaskGuard umask(0);
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), nullptr)));
  EXPECT_EQ(FileMode(KeyPath()), 0600);
  SecretBuffer pass = Passphrase("pw");
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, dir_.Join("p.key"), &pass, kCheapKdf)));
  EXPECT_EQ(FileMode(dir_.Join("p.key")), 0600);
}

TEST_F(KeyFileTest, FileStartsWithTheMagicLine) {
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), nullptr)));
  Bytes raw = test::ReadAll(KeyPath());
  EXPECT_EQ(AsChars(raw).substr(0, schema::kSecretKeyFileMagic.size()),
            schema::kSecretKeyFileMagic);
}

TEST_F(KeyFileTest, ProtectedFileDoesNotContainTheSecrets) {
  SecretBuffer pass = Passphrase("pw");
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, kCheapKdf)));
  Bytes raw = test::ReadAll(KeyPath());
  const uint8_t* seed = agency_.signing_secret_key().data();
  auto it = std::search(raw.begin(), raw.end(), seed, seed + 32);
  EXPECT_EQ(it, raw.end());
}

// ---- Refusals ----

TEST_F(KeyFileTest, WorldReadableFileIsRefused) {
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), nullptr)));
  ASSERT_EQ(::chmod(KeyPath().c_str(), 0644), 0);
  auto r = LoadIdentity(KeyPath(), nullptr);
  EXPECT_TRUE(HasError(r, Code::kPermissionDenied, "chmod 600"));
  EXPECT_TRUE(HasCode(IsProtected(KeyPath()), Code::kPermissionDenied));
  ASSERT_EQ(::chmod(KeyPath().c_str(), 0640), 0);
  EXPECT_TRUE(HasCode(LoadIdentity(KeyPath(), nullptr), Code::kPermissionDenied));
}

TEST_F(KeyFileTest, WrongPassphraseIsUnauthenticated) {
  SecretBuffer pass = Passphrase("right");
  SecretBuffer wrong = Passphrase("wrong");
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, kCheapKdf)));
  EXPECT_TRUE(
      HasError(LoadIdentity(KeyPath(), &wrong, kCheapKdf), Code::kUnauthenticated, "passphrase"));
  SecretBuffer prefix = Passphrase("righ");
  EXPECT_TRUE(HasCode(LoadIdentity(KeyPath(), &prefix, kCheapKdf), Code::kUnauthenticated));
}

TEST_F(KeyFileTest, ProtectedFileWithoutPassphraseIsFailedPrecondition) {
  SecretBuffer pass = Passphrase("pw");
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, kCheapKdf)));
  EXPECT_TRUE(HasError(LoadIdentity(KeyPath(), nullptr), Code::kFailedPrecondition, "passphrase"));
}

TEST_F(KeyFileTest, EmptyPassphraseIsRefusedOnSave) {
  SecretBuffer empty;
  EXPECT_TRUE(HasCode(SaveIdentity(agency_, KeyPath(), &empty, kCheapKdf), Code::kInvalidArgument));
  EXPECT_FALSE(PathExists(KeyPath()));
}

TEST_F(KeyFileTest, MissingFileIsNotFound) {
  EXPECT_TRUE(HasCode(LoadIdentity(KeyPath(), nullptr), Code::kNotFound));
}

TEST_F(KeyFileTest, ForeignFileIsMalformed) {
  test::WriteRaw(KeyPath(), AsBytes("hello"), 0600);
  auto r = LoadIdentity(KeyPath(), nullptr);
  EXPECT_TRUE(HasError(r, Code::kMalformed, "not a refbus secret key file"));
  EXPECT_TRUE(test::HasSubstr(r.status().message(), KeyPath()));
  test::WriteRaw(KeyPath(), ByteView(), 0600);
  EXPECT_TRUE(HasCode(LoadIdentity(KeyPath(), nullptr), Code::kMalformed));
}

TEST_F(KeyFileTest, PartyRecordPassedAsKeyFileIsNamed) {
  auto rec = Must(
      MakePartyRecord(agency_, fed::AgencyListing(schema::AgencyType::kHotline), kNow, nullptr));
  std::string path = dir_.Join("agency-a.record");
  ASSERT_TRUE(IsOk(WritePartyRecordFile(path, rec)));
  // As written (0644, public) it is refused before its content is read.
  EXPECT_FALSE(LoadIdentity(path, nullptr).ok());
  // Private, it is read and named for what it is.
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  auto r = LoadIdentity(path, nullptr);
  EXPECT_TRUE(HasError(r, Code::kMalformed, "refbus-party-record/1"));
  EXPECT_TRUE(test::HasSubstr(r.status().message(), "not a refbus secret key file"));
}

TEST_F(KeyFileTest, NewerFormatVersionIsNamed) {
  Bytes file = schema::WithMagic("refbus-secret-key/2\n", Bytes{1, 2, 3});
  test::WriteRaw(KeyPath(), file, 0600);
  EXPECT_TRUE(HasError(LoadIdentity(KeyPath(), nullptr), Code::kMalformed, "refbus-secret-key/2"));
}

TEST_F(KeyFileTest, EveryTruncationIsRefused) {
  for (bool protect : {false, true}) {
    SecretBuffer pass = Passphrase("pw");
    ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), protect ? &pass : nullptr, kCheapKdf)));
    const Bytes full = test::ReadAll(KeyPath());
    std::string cut = dir_.Join("cut.key");
    for (size_t n = 0; n < full.size(); ++n) {
      test::WriteRaw(cut, ByteView(full.data(), n), 0600);
      auto r = LoadIdentity(cut, protect ? &pass : nullptr, kCheapKdf);
      ASSERT_FALSE(r.ok()) << "prefix of " << n << " of " << full.size() << " bytes loaded";
      EXPECT_NE(r.status().code(), Code::kInternal) << r.status().ToString();
    }
  }
}

// Flipping any byte never crashes and never yields other keys: the load fails, or (if the
// byte did not matter) it yields exactly the saved keys.
void CheckEveryFlip(const Identity& original, const std::string& path, const SecretBuffer* pass,
                    const std::vector<uint8_t>& masks, int* refused) {
  const Bytes full = test::ReadAll(path);
  std::string flipped_path = path + ".flipped";
  for (size_t i = 0; i < full.size(); ++i) {
    for (uint8_t mask : masks) {
      Bytes flipped = full;
      flipped[i] ^= mask;
      test::WriteRaw(flipped_path, flipped, 0600);
      auto r = LoadIdentity(flipped_path, pass, kCheapKdf);
      if (!r.ok()) {
        ++*refused;
        EXPECT_NE(r.status().code(), Code::kInternal) << r.status().ToString();
        continue;
      }
      ASSERT_TRUE(SameIdentity(*r, original))
          << "byte " << i << " xor " << static_cast<int>(mask) << " loaded different keys";
    }
  }
}

TEST_F(KeyFileTest, EveryByteFlipOfAnUnprotectedFileIsRefusedOrHarmless) {
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), nullptr)));
  int refused = 0;
  CheckEveryFlip(agency_, KeyPath(), nullptr, {0x01, 0x80, 0xff}, &refused);
  // Almost every byte matters: the magic, the container and the checksummed payload.
  size_t size = test::ReadAll(KeyPath()).size();
  EXPECT_GE(static_cast<size_t>(refused), size * 3 - 6);
}

TEST_F(KeyFileTest, EveryByteFlipOfAProtectedFileIsRefusedOrHarmless) {
  SecretBuffer pass = Passphrase("pw");
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, kCheapKdf)));
  int refused = 0;
  CheckEveryFlip(agency_, KeyPath(), &pass, {0x01, 0xff}, &refused);
  size_t size = test::ReadAll(KeyPath()).size();
  EXPECT_GE(static_cast<size_t>(refused), size * 2 - 4);
}

TEST_F(KeyFileTest, ExcessiveKdfCostIsRefusedBeforeDerivation) {
  SecretBuffer pass = Passphrase("pw");
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, kCheapKdf)));
  Bytes raw = test::ReadAll(KeyPath());
  auto body = Must(schema::StripMagic(schema::kSecretKeyFileMagic, raw, "key"));
  auto file = Must(schema::DecodeSecretKeyFile(body));
  // A planted file that asks for 64 GiB of Argon2 memory must not be honoured.
  file.kdf_memlimit = uint64_t{64} << 30;
  test::WriteRaw(KeyPath(),
                 schema::WithMagic(schema::kSecretKeyFileMagic, schema::EncodeSecretKeyFile(file)),
                 0600);
  EXPECT_TRUE(HasError(LoadIdentity(KeyPath(), &pass), Code::kMalformed, "Argon2id"));
  file.kdf_memlimit = crypto_pwhash_MEMLIMIT_MIN;
  file.kdf_opslimit = 1000;
  test::WriteRaw(KeyPath(),
                 schema::WithMagic(schema::kSecretKeyFileMagic, schema::EncodeSecretKeyFile(file)),
                 0600);
  EXPECT_TRUE(HasError(LoadIdentity(KeyPath(), &pass), Code::kMalformed, "Argon2id"));
}

// Issue 17 item 8: a key file protected below libsodium's interactive Argon2id cost is
// refused at load, with a clear error, before any derivation.
TEST_F(KeyFileTest, KdfCostBelowTheInteractiveFloorIsRefusedAtLoad) {
  SecretBuffer pass = Passphrase("pw");
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, kCheapKdf)));
  auto r = LoadIdentity(KeyPath(), &pass);
  EXPECT_TRUE(HasError(r, Code::kFailedPrecondition, "below"));
  EXPECT_TRUE(test::HasSubstr(r.status().message(), KeyPath())) << r.status().ToString();
  const KdfCost weak_memory{crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_MIN};
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, weak_memory)));
  EXPECT_TRUE(HasError(LoadIdentity(KeyPath(), &pass), Code::kFailedPrecondition, "below"));
  EXPECT_TRUE(IsOk(LoadIdentity(KeyPath(), &pass, weak_memory)));
}

TEST(KdfCostTest, AuthorityCostIsModerateAndNoneIsBelowTheFloor) {
  EXPECT_EQ(AuthorityKdfCost().opslimit, crypto_pwhash_OPSLIMIT_MODERATE);
  EXPECT_EQ(AuthorityKdfCost().memlimit, crypto_pwhash_MEMLIMIT_MODERATE);
  EXPECT_EQ(LeastKdfCost().opslimit, crypto_pwhash_OPSLIMIT_INTERACTIVE);
  EXPECT_EQ(LeastKdfCost().memlimit, crypto_pwhash_MEMLIMIT_INTERACTIVE);
  EXPECT_GE(DefaultKdfCost().opslimit, LeastKdfCost().opslimit);
  EXPECT_GE(DefaultKdfCost().memlimit, LeastKdfCost().memlimit);
}

// Issue 17 item 7: the file is opened once and the descriptor read is the one checked. A
// symbolic link (whose target could be swapped between a check and a read) is refused, and
// so is anything that is not a regular file (a FIFO must not hang the load).
TEST_F(KeyFileTest, SymlinkFifoAndDirectoryAreRefusedAsKeyFiles) {
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), nullptr)));
  const std::string link = dir_.Join("link.key");
  ASSERT_EQ(::symlink(KeyPath().c_str(), link.c_str()), 0);
  EXPECT_TRUE(HasError(LoadIdentity(link, nullptr), Code::kInvalidArgument, "symbolic link"));
  const std::string fifo = dir_.Join("fifo.key");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(HasError(LoadIdentity(fifo, nullptr), Code::kInvalidArgument, "not a regular file"));
  const std::string folder = dir_.Join("folder.key");
  ASSERT_EQ(::mkdir(folder.c_str(), 0700), 0);
  EXPECT_TRUE(
      HasError(LoadIdentity(folder, nullptr), Code::kInvalidArgument, "not a regular file"));
  const std::string pass_link = dir_.Join("pass.link");
  test::WriteRaw(dir_.Join("pass"), AsBytes("pw\n"), 0600);
  ASSERT_EQ(::symlink(dir_.Join("pass").c_str(), pass_link.c_str()), 0);
  EXPECT_TRUE(HasError(ReadPassphraseFile(pass_link), Code::kInvalidArgument, "symbolic link"));
  EXPECT_TRUE(HasError(ReadPassphraseFile(fifo), Code::kInvalidArgument, "not a regular file"));
}

TEST_F(KeyFileTest, OuterFieldsAreBoundToThePayload) {
  // Relabelling an unprotected file as another party or kind breaks its checksum.
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), nullptr)));
  Bytes raw = test::ReadAll(KeyPath());
  auto file = Must(schema::DecodeSecretKeyFile(
      Must(schema::StripMagic(schema::kSecretKeyFileMagic, raw, "key"))));
  auto relabel = [&](const schema::SecretKeyFile& f) {
    test::WriteRaw(KeyPath(),
                   schema::WithMagic(schema::kSecretKeyFileMagic, schema::EncodeSecretKeyFile(f)),
                   0600);
    return LoadIdentity(KeyPath(), nullptr);
  };
  schema::SecretKeyFile other_party = file;
  other_party.party_id = "agency-z";
  EXPECT_TRUE(HasError(relabel(other_party), Code::kMalformed, "checksum"));
  schema::SecretKeyFile other_kind = file;
  other_kind.kind = schema::PartyKind::kBroker;
  EXPECT_TRUE(HasError(relabel(other_kind), Code::kMalformed, "checksum"));
  EXPECT_TRUE(IsOk(relabel(file)));
}

TEST_F(KeyFileTest, ProtectedOuterFieldsAreBoundToThePayload) {
  SecretBuffer pass = Passphrase("pw");
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, kCheapKdf)));
  Bytes raw = test::ReadAll(KeyPath());
  auto file = Must(schema::DecodeSecretKeyFile(
      Must(schema::StripMagic(schema::kSecretKeyFileMagic, raw, "key"))));
  file.party_id = "agency-z";
  test::WriteRaw(KeyPath(),
                 schema::WithMagic(schema::kSecretKeyFileMagic, schema::EncodeSecretKeyFile(file)),
                 0600);
  EXPECT_TRUE(HasCode(LoadIdentity(KeyPath(), &pass, kCheapKdf), Code::kUnauthenticated));
}

TEST_F(KeyFileTest, PrunedPrekeysAreGoneFromTheSavedFile) {
  // A prekey that expired long ago is wiped, and a re-saved file no longer holds it.
  auto old = Must(agency_.AddPrekey(kNow - 100 * kMillisPerDay, kNow - 80 * kMillisPerDay));
  Bytes old_id = KeyId(KeyUse::kPrekey, old.prekey.public_key);
  ASSERT_EQ(agency_.PrunePrekeys(kNow, kPrekeyKeepAfterExpiryMs), 1u);
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), nullptr)));
  auto loaded = LoadIdentity(KeyPath(), nullptr);
  ASSERT_TRUE(IsOk(loaded));
  EXPECT_EQ(loaded->FindPrekey(old_id), nullptr);
  EXPECT_EQ(loaded->prekeys().size(), 2u);
  EXPECT_TRUE(SameIdentity(*loaded, agency_));
}

// ---- Passphrase files ----

TEST_F(KeyFileTest, ReadPassphraseFile) {
  std::string path = dir_.Join("pass");
  test::WriteRaw(path, AsBytes("s3cret phrase\r\n\n"), 0600);
  auto p = ReadPassphraseFile(path);
  ASSERT_TRUE(IsOk(p));
  EXPECT_EQ(AsChars(p->view()), "s3cret phrase");

  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  EXPECT_TRUE(HasError(ReadPassphraseFile(path), Code::kPermissionDenied, "chmod 600"));

  test::WriteRaw(path, AsBytes("\n"), 0600);
  EXPECT_TRUE(HasCode(ReadPassphraseFile(path), Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(ReadPassphraseFile(dir_.Join("missing")), Code::kNotFound));
}

TEST_F(KeyFileTest, PassphraseFromFileOpensTheKeyFile) {
  std::string pass_path = dir_.Join("pass");
  test::WriteRaw(pass_path, AsBytes("from a file\n"), 0600);
  SecretBuffer pass = Must(ReadPassphraseFile(pass_path));
  ASSERT_TRUE(IsOk(SaveIdentity(agency_, KeyPath(), &pass, kCheapKdf)));
  SecretBuffer typed = Passphrase("from a file");
  auto loaded = LoadIdentity(KeyPath(), &typed, kCheapKdf);
  ASSERT_TRUE(IsOk(loaded));
  EXPECT_TRUE(SameIdentity(*loaded, agency_));
}

}  // namespace
}  // namespace refbus::keys
