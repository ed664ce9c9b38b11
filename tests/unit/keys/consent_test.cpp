// Tests for keys/consent.h: signing consent grants, verifying them against the directory,
// and the second-operator rule for emergency overrides.
#include "keys/consent.h"

#include <gtest/gtest.h>

#include <string>

#include "keys/crypto.h"
#include "schema/codec.h"
#include "tests/unit/keys/federation.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace consent_test {

using fed::kNow;
using fed::NewIdentity;
using schema::PartyKind;
using test::HasCode;
using test::HasError;
using test::IsOk;
using test::Must;
using Code = Status::Code;

constexpr UnixMillis kDay = kMillisPerDay;

schema::ConsentGrant Grant(const std::string& recorded_by) {
  schema::ConsentGrant g;
  g.grant_id = Bytes(schema::kGrantIdBytes, 0x17);
  g.case_ref = "CASE-2026-0001";
  g.recorded_by = recorded_by;
  g.basis = schema::LegalBasis::kConsentSubject;
  g.legal_article = "PIPA 17(1)1";
  g.consenters = {schema::Consenter::kSubject};
  g.subject_assent = true;
  g.purposes = {schema::Purpose::kCounseling, schema::Purpose::kDeletion};
  g.categories = {schema::DataCategory::kContact, schema::DataCategory::kContentLocations};
  g.allowed_recipients = {"agency-b"};
  g.allowed_agency_types = {schema::AgencyType::kDeletionCenter};
  g.issued_at_ms = kNow;
  g.expires_at_ms = kNow + 90 * kDay;
  g.retention_until_ms = kNow + 365 * kDay;
  return g;
}

schema::ConsentGrant EmergencyGrant(const std::string& recorded_by) {
  schema::ConsentGrant g = Grant(recorded_by);
  g.basis = schema::LegalBasis::kEmergencyLifeSafety;
  g.legal_article = "PIPA 18(2)3";
  g.consenters.clear();
  g.emergency_override = true;
  return g;
}

class ConsentTest : public ::testing::Test {
 protected:
  Status Verify(const schema::SignedConsentGrant& g, UnixMillis now = kNow) {
    return VerifyConsentGrant(g, fed_.directory(), now);
  }

  fed::Federation fed_;
};

TEST_F(ConsentTest, SignAndVerify) {
  const Identity& a = fed_.party("agency-a");
  auto signed_grant = SignConsentGrant(a, Grant("agency-a"));
  ASSERT_TRUE(IsOk(signed_grant));
  EXPECT_EQ(signed_grant->signer_key_id, a.signing_key_id());
  EXPECT_EQ(signed_grant->grant.case_ref, "CASE-2026-0001");
  EXPECT_EQ(signed_grant->grant_bytes, schema::EncodeConsentGrant(Grant("agency-a")));
  EXPECT_TRUE(VerifySignature(a.signing_public_key(), kLabelConsentGrant, signed_grant->grant_bytes,
                              signed_grant->signature));
  EXPECT_TRUE(IsOk(Verify(*signed_grant)));
  EXPECT_FALSE(IsEmergencyOverride(signed_grant->grant));
}

TEST_F(ConsentTest, SurvivesTheCodec) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), EmergencyGrant("agency-a")));
  Identity second = NewIdentity("operator-two", PartyKind::kAuditor);
  ASSERT_TRUE(IsOk(Countersign(g, "op-2", second)));
  auto decoded = schema::DecodeSignedConsentGrant(schema::EncodeSignedConsentGrant(g));
  ASSERT_TRUE(IsOk(decoded));
  EXPECT_TRUE(IsOk(Verify(*decoded)));
}

TEST_F(ConsentTest, SignerMustBeTheRecorder) {
  auto r = SignConsentGrant(fed_.party("agency-b"), Grant("agency-a"));
  EXPECT_TRUE(HasError(r, Code::kInvalidArgument, "agency-a"));
}

TEST_F(ConsentTest, InvalidGrantIsRefusedAtSigning) {
  schema::ConsentGrant g = Grant("agency-a");
  g.case_ref = "Kim Min-jun";  // a name, not a pseudonym
  EXPECT_TRUE(HasCode(SignConsentGrant(fed_.party("agency-a"), g), Code::kMalformed));
}

TEST_F(ConsentTest, SignatureByAnotherAgencyIsRefused) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), Grant("agency-a")));
  const Identity& b = fed_.party("agency-b");

  // agency-b's signature, still naming agency-a's key.
  schema::SignedConsentGrant forged = g;
  forged.signature = b.Sign(kLabelConsentGrant, g.grant_bytes);
  EXPECT_TRUE(HasError(Verify(forged), Code::kUnauthenticated, "not signed by agency-a"));

  // agency-b's signature and key id.
  forged.signer_key_id = b.signing_key_id();
  EXPECT_TRUE(HasCode(Verify(forged), Code::kUnauthenticated));

  // A key that is nobody's in the directory.
  Identity stranger = NewIdentity("agency-a", PartyKind::kAgency);
  schema::SignedConsentGrant outsider = g;
  outsider.signer_key_id = stranger.signing_key_id();
  outsider.signature = stranger.Sign(kLabelConsentGrant, g.grant_bytes);
  EXPECT_TRUE(HasCode(Verify(outsider), Code::kUnauthenticated));
}

TEST_F(ConsentTest, RecorderNotInDirectoryIsRefused) {
  Identity stranger = NewIdentity("agency-x", PartyKind::kAgency);
  auto g = Must(SignConsentGrant(stranger, Grant("agency-x")));
  EXPECT_TRUE(HasCode(Verify(g), Code::kUnauthenticated));
}

TEST_F(ConsentTest, AlteredGrantIsRefused) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), Grant("agency-a")));
  schema::ConsentGrant wider = g.grant;
  wider.expires_at_ms += 365 * kDay;
  wider.allowed_recipients.push_back("agency-d");
  schema::SignedConsentGrant altered = g;
  altered.grant_bytes = schema::EncodeConsentGrant(wider);
  altered.grant = wider;
  EXPECT_TRUE(HasCode(Verify(altered), Code::kUnauthenticated));

  schema::SignedConsentGrant flipped = g;
  flipped.signature[10] ^= 1;
  EXPECT_TRUE(HasCode(Verify(flipped), Code::kUnauthenticated));

  // The recorder's signature under another label (here: as a countersignature).
  schema::SignedConsentGrant relabelled = g;
  relabelled.signature = fed_.party("agency-a").Sign(kLabelConsentCountersign, g.grant_bytes);
  EXPECT_TRUE(HasCode(Verify(relabelled), Code::kUnauthenticated));
}

TEST_F(ConsentTest, RevokedRecorderIsRevoked) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), Grant("agency-a")));
  DirectoryEdit edit;
  edit.revoke.push_back("agency-a");
  ASSERT_TRUE(IsOk(fed_.Issue(edit, kNow + kDay)));
  EXPECT_TRUE(HasError(Verify(g, kNow + kDay), Code::kRevoked, "consent grant recorder"));
}

TEST_F(ConsentTest, GrantSignedBeforeRotationStillVerifies) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), Grant("agency-a")));
  const UnixMillis rotated_at = kNow + kDay;
  Identity old = fed_.Replace("agency-a", NewIdentity("agency-a", PartyKind::kAgency, rotated_at));
  DirectoryEdit edit;
  edit.upserts.push_back(fed_.Record("agency-a", rotated_at, &old));
  ASSERT_TRUE(IsOk(fed_.Issue(edit, rotated_at)));
  EXPECT_TRUE(IsOk(Verify(g, rotated_at + kDay)));
  EXPECT_TRUE(HasCode(Verify(g, rotated_at + kRetiredKeyAcceptMs), Code::kRevoked));
}

// ---- Emergency override ----

TEST_F(ConsentTest, EmergencyOverrideNeedsACountersignature) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), EmergencyGrant("agency-a")));
  EXPECT_TRUE(IsEmergencyOverride(g.grant));
  EXPECT_TRUE(HasError(Verify(g), Code::kPermissionDenied, "countersignature"));
}

TEST_F(ConsentTest, EitherFlagOrBasisMakesAnOverride) {
  schema::ConsentGrant by_basis = Grant("agency-a");
  by_basis.basis = schema::LegalBasis::kEmergencyLifeSafety;
  EXPECT_TRUE(IsEmergencyOverride(by_basis));
  auto g1 = Must(SignConsentGrant(fed_.party("agency-a"), by_basis));
  EXPECT_TRUE(HasCode(Verify(g1), Code::kPermissionDenied));

  schema::ConsentGrant by_flag = Grant("agency-a");
  by_flag.emergency_override = true;
  EXPECT_TRUE(IsEmergencyOverride(by_flag));
  auto g2 = Must(SignConsentGrant(fed_.party("agency-a"), by_flag));
  EXPECT_TRUE(HasCode(Verify(g2), Code::kPermissionDenied));
}

TEST_F(ConsentTest, CountersignatureBySameKeyIsRefused) {
  const Identity& a = fed_.party("agency-a");
  auto g = Must(SignConsentGrant(a, EmergencyGrant("agency-a")));
  ASSERT_TRUE(IsOk(Countersign(g, "op-1", a)));
  ASSERT_EQ(g.countersignatures.size(), 1u);
  EXPECT_TRUE(HasCode(Verify(g), Code::kPermissionDenied));
}

TEST_F(ConsentTest, CountersignatureBySecondOperatorIsAccepted) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), EmergencyGrant("agency-a")));
  Identity second = NewIdentity("operator-two", PartyKind::kAuditor);
  ASSERT_TRUE(IsOk(Countersign(g, "op-2", second)));
  ASSERT_EQ(g.countersignatures.size(), 1u);
  EXPECT_EQ(g.countersignatures[0].operator_ref, "op-2");
  EXPECT_EQ(g.countersignatures[0].public_key, second.signing_public_key());
  EXPECT_TRUE(IsOk(Verify(g)));
}

TEST_F(ConsentTest, SameKeyPlusSecondOperatorIsAccepted) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), EmergencyGrant("agency-a")));
  ASSERT_TRUE(IsOk(Countersign(g, "op-1", fed_.party("agency-a"))));
  Identity second = NewIdentity("operator-two", PartyKind::kAuditor);
  ASSERT_TRUE(IsOk(Countersign(g, "op-2", second)));
  EXPECT_TRUE(IsOk(Verify(g)));
}

TEST_F(ConsentTest, BadCountersignaturesAreRefused) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), EmergencyGrant("agency-a")));
  Identity second = NewIdentity("operator-two", PartyKind::kAuditor);

  schema::SignedConsentGrant flipped = g;
  ASSERT_TRUE(IsOk(Countersign(flipped, "op-2", second)));
  flipped.countersignatures[0].signature[0] ^= 1;
  EXPECT_TRUE(HasCode(Verify(flipped), Code::kPermissionDenied));

  // A countersignature made over another grant.
  auto other = Must(SignConsentGrant(fed_.party("agency-a"), Grant("agency-a")));
  ASSERT_TRUE(IsOk(Countersign(other, "op-2", second)));
  schema::SignedConsentGrant moved = g;
  moved.countersignatures = other.countersignatures;
  EXPECT_TRUE(HasCode(Verify(moved), Code::kPermissionDenied));

  // The second operator's signature under the recorder's label.
  schema::SignedConsentGrant wrong_label = g;
  wrong_label.countersignatures.push_back(
      {"op-2", second.signing_public_key(), second.Sign(kLabelConsentGrant, g.grant_bytes)});
  EXPECT_TRUE(HasCode(Verify(wrong_label), Code::kPermissionDenied));
}

TEST_F(ConsentTest, CountersignRefusesBadOperatorRefs) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), EmergencyGrant("agency-a")));
  Identity second = NewIdentity("operator-two", PartyKind::kAuditor);
  EXPECT_TRUE(HasCode(Countersign(g, "", second), Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(Countersign(g, std::string(65, 'o'), second), Code::kInvalidArgument));
  EXPECT_TRUE(g.countersignatures.empty());
  EXPECT_TRUE(IsOk(Countersign(g, std::string(64, 'o'), second)));
}

TEST_F(ConsentTest, OrdinaryGrantNeedsNoCountersignature) {
  auto g = Must(SignConsentGrant(fed_.party("agency-a"), Grant("agency-a")));
  ASSERT_TRUE(IsOk(Verify(g)));
  // Extra countersignatures on an ordinary grant do no harm.
  Identity second = NewIdentity("operator-two", PartyKind::kAuditor);
  ASSERT_TRUE(IsOk(Countersign(g, "op-2", second)));
  EXPECT_TRUE(IsOk(Verify(g)));
}

}  // namespace consent_test
}  // namespace refbus::keys
