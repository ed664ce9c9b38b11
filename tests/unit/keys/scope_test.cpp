// Tests for keys/scope.h: the consent scope rules that the sending agent, the broker and
// the receiving agent all apply to an envelope header.
//
// One grant and five parties are used throughout: the recording agency (a WEE center), a
// counseling center named in the grant, two deletion centers allowed by agency type, and
// a police unit outside the grant. Each refusal test checks the exact NackReason and that
// the detail names the offending id, kind, purpose or category.
#include "keys/scope.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "keys/directory.h"
#include "schema/types.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace scope_test {

using schema::AgencyType;
using schema::DataCategory;
using schema::MessageKind;
using schema::NackReason;
using schema::Purpose;
using schema::Role;
using test::HasSubstr;

constexpr UnixMillis kIssued = 1'780'000'000'000;  // a fixed time in 2026
constexpr UnixMillis kExpires = kIssued + 90 * kMillisPerDay;
constexpr UnixMillis kNow = kIssued + kMillisPerDay;
constexpr char kCase[] = "CASE-2026-0001";

constexpr char kRecorderId[] = "wee-center-a";
constexpr char kCounselId[] = "counsel-b";    // allowed by id
constexpr char kDeletionId[] = "deletion-c";  // allowed by agency type
constexpr char kDeletion2Id[] = "deletion-d";
constexpr char kPoliceId[] = "police-x";  // outside the grant

// ---- Builders ----

schema::ConsentGrant Grant() {
  schema::ConsentGrant g;
  g.grant_id = Bytes(schema::kGrantIdBytes, 0x17);
  g.case_ref = kCase;
  g.recorded_by = kRecorderId;
  g.basis = schema::LegalBasis::kConsentSubject;
  g.consenters = {schema::Consenter::kSubject};
  g.subject_assent = true;
  g.purposes = {Purpose::kCounseling, Purpose::kDeletion};
  g.categories = {DataCategory::kIdentity, DataCategory::kContact, DataCategory::kContentLocations,
                  DataCategory::kDeletionStatus};
  g.allowed_recipients = {kCounselId};
  g.allowed_agency_types = {AgencyType::kDeletionCenter};
  g.onward_sharing = false;
  g.issued_at_ms = kIssued;
  g.expires_at_ms = kExpires;
  g.retention_until_ms = kExpires + 365 * kMillisPerDay;
  return g;
}

ScopeParty Party(const std::string& id, AgencyType type, std::vector<Role> roles) {
  ScopeParty p;
  p.id = id;
  p.type = type;
  p.roles = std::move(roles);
  return p;
}

ScopeParty Recorder() {
  return Party(kRecorderId, AgencyType::kWeeCenter, {Role::kRefer, Role::kCaseLead});
}
ScopeParty Counsel() {
  return Party(kCounselId, AgencyType::kCounselingCenter, {Role::kReceive, Role::kCaseLead});
}
ScopeParty Deletion() {
  return Party(kDeletionId, AgencyType::kDeletionCenter, {Role::kReceive, Role::kDeletion});
}
ScopeParty Deletion2() {
  return Party(kDeletion2Id, AgencyType::kDeletionCenter, {Role::kDeletion});
}
ScopeParty Police() {
  return Party(kPoliceId, AgencyType::kPoliceUnit, {Role::kInvestigation, Role::kCaseLead});
}

ScopeSubject Subject(MessageKind kind, Purpose purpose, std::vector<DataCategory> categories,
                     ScopeParty sender, std::vector<ScopeParty> recipients) {
  ScopeSubject s;
  s.kind = kind;
  s.purpose = purpose;
  s.categories = std::move(categories);
  s.case_ref = kCase;
  s.sender = std::move(sender);
  s.recipients = std::move(recipients);
  return s;
}

// A referral of identity data from the recording agency to the named counseling center:
// within the grant.
ScopeSubject Referral() {
  return Subject(MessageKind::kReferral, Purpose::kCounseling, {DataCategory::kIdentity},
                 Recorder(), {Counsel()});
}

ScopeSubject Revocation() {
  return Subject(MessageKind::kConsentRevocation, Purpose::kCounseling, {DataCategory::kCaseStatus},
                 Recorder(), {Counsel(), Deletion()});
}

ScopeSubject Purge() {
  return Subject(MessageKind::kPurgeConfirmation, Purpose::kCounseling, {DataCategory::kCaseStatus},
                 Counsel(), {Recorder()});
}

std::optional<ScopeRefusal> Check(const ScopeSubject& s, UnixMillis now = kNow,
                                  bool revoked = false) {
  return CheckScope(Grant(), revoked, s, now);
}

::testing::AssertionResult Allowed(const std::optional<ScopeRefusal>& r) {
  if (!r.has_value()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "refused (" << schema::Name(r->reason) << "): " << r->detail;
}

// The refusal has this reason and a detail naming every one of `parts`.
::testing::AssertionResult Refused(const std::optional<ScopeRefusal>& r, NackReason reason,
                                   const std::vector<std::string>& parts) {
  if (!r.has_value()) return ::testing::AssertionFailure() << "allowed, expected a refusal";
  if (r->reason != reason) {
    return ::testing::AssertionFailure()
           << "reason " << schema::Name(r->reason) << ", expected " << schema::Name(reason)
           << " (detail: " << r->detail << ")";
  }
  for (const auto& p : parts) {
    auto has = HasSubstr(r->detail, p);
    if (!has) return has;
  }
  return ::testing::AssertionSuccess();
}

// =====================================================================================
// Baseline
// =====================================================================================

TEST(ScopeTest, ReferralWithinTheGrantIsAllowed) { EXPECT_TRUE(Allowed(Check(Referral()))); }

// PROTOCOL.md 9.1, grant-less rule: a watch list goes between deletion-role parties only,
// names no case, purpose or category, and never travels under a grant.
TEST(ScopeTest, WatchListIsGrantlessBetweenDeletionCentersOnly) {
  ScopeSubject s;
  s.kind = MessageKind::kDeletionWatchList;
  s.sender = Deletion();
  s.recipients = {Deletion2()};
  EXPECT_TRUE(Allowed(CheckGrantless(s)));
  ScopeSubject from_police = s;
  from_police.sender = Police();
  EXPECT_TRUE(Refused(CheckGrantless(from_police), NackReason::kNotPermitted,
                      {"sender", kPoliceId, "deletion role"}));
  ScopeSubject to_counsel = s;
  to_counsel.recipients = {Deletion2(), Counsel()};
  EXPECT_TRUE(Refused(CheckGrantless(to_counsel), NackReason::kNotPermitted,
                      {"recipient", kCounselId, "deletion role"}));
  ScopeSubject with_case = s;
  with_case.case_ref = kCase;
  EXPECT_TRUE(Refused(CheckGrantless(with_case), NackReason::kConsentOutOfScope, {"no case"}));
  ScopeSubject with_category = s;
  with_category.categories = {DataCategory::kContentLocations};
  EXPECT_TRUE(
      Refused(CheckGrantless(with_category), NackReason::kConsentOutOfScope, {"data category"}));
  ScopeSubject referral = s;
  referral.kind = MessageKind::kReferral;
  EXPECT_TRUE(Refused(CheckGrantless(referral), NackReason::kConsentOutOfScope,
                      {"must name the consent grant"}));
  EXPECT_TRUE(Refused(Check(Subject(MessageKind::kDeletionWatchList, Purpose::kDeletion, {},
                                    Deletion(), {Deletion2()})),
                      NackReason::kConsentOutOfScope, {"may not carry case data"}));
}

TEST(ScopeTest, IsMetadataKindListsExactlyTheWorkflowMetadataKinds) {
  const std::vector<MessageKind> metadata = {
      MessageKind::kReferralState,     MessageKind::kHandoffAck,        MessageKind::kAccessNotice,
      MessageKind::kConsentRevocation, MessageKind::kPurgeConfirmation, MessageKind::kCaseClosed};
  for (int k = 0; k <= static_cast<int>(MessageKind::kOpaque); ++k) {
    auto kind = static_cast<MessageKind>(k);
    bool want = std::find(metadata.begin(), metadata.end(), kind) != metadata.end();
    EXPECT_EQ(IsMetadataKind(kind), want) << schema::Name(kind);
  }
}

TEST(ScopeTest, ScopePartyHas) {
  EXPECT_TRUE(Deletion().Has(Role::kDeletion));
  EXPECT_FALSE(Counsel().Has(Role::kDeletion));
  EXPECT_FALSE(ScopeParty{}.Has(Role::kUnspecified));
}

// =====================================================================================
// Case, revocation, time
// =====================================================================================

TEST(ScopeTest, CaseRefMismatchIsOutOfScope) {
  ScopeSubject s = Referral();
  s.case_ref = "CASE-2026-0999";
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"CASE-2026-0999", kCase}));
}

TEST(ScopeTest, CaseRefMismatchIsRefusedEvenForWindingDownKinds) {
  ScopeSubject s = Revocation();
  s.case_ref = "CASE-2026-0999";
  EXPECT_TRUE(Refused(Check(s, kNow, /*revoked=*/true), NackReason::kConsentOutOfScope,
                      {"CASE-2026-0999", kCase}));
}

TEST(ScopeTest, RevokedGrantRefusesCaseData) {
  EXPECT_TRUE(Refused(Check(Referral(), kNow, /*revoked=*/true), NackReason::kConsentRevoked,
                      {kCase, kRecorderId, "revoked"}));
}

TEST(ScopeTest, RevokedGrantRefusesStatusMessagesToo) {
  ScopeSubject s = Subject(MessageKind::kReferralState, Purpose::kCounseling,
                           {DataCategory::kCaseStatus}, Counsel(), {Recorder()});
  EXPECT_TRUE(Allowed(Check(s)));
  EXPECT_TRUE(Refused(Check(s, kNow, /*revoked=*/true), NackReason::kConsentRevoked, {kCase}));
}

TEST(ScopeTest, RevocationTakesPrecedenceOverExpiry) {
  EXPECT_TRUE(Refused(Check(Referral(), kExpires + 1, /*revoked=*/true),
                      NackReason::kConsentRevoked, {kCase}));
}

TEST(ScopeTest, RevocationAndPurgeStillFlowWhenRevoked) {
  EXPECT_TRUE(Allowed(Check(Revocation(), kNow, /*revoked=*/true)));
  EXPECT_TRUE(Allowed(Check(Purge(), kNow, /*revoked=*/true)));
}

TEST(ScopeTest, RevocationAndPurgeStillFlowWhenExpired) {
  EXPECT_TRUE(Allowed(Check(Revocation(), kExpires + 1)));
  EXPECT_TRUE(Allowed(Check(Purge(), kExpires + 1)));
  EXPECT_TRUE(Allowed(Check(Revocation(), kExpires + 30 * kMillisPerDay, /*revoked=*/true)));
  EXPECT_TRUE(Allowed(Check(Purge(), kExpires + 30 * kMillisPerDay, /*revoked=*/true)));
}

TEST(ScopeTest, PurgeFromADeletionCenterToTheRecorderFlowsWhenRevoked) {
  ScopeSubject s = Purge();
  s.sender = Deletion();
  EXPECT_TRUE(Allowed(Check(s, kNow, /*revoked=*/true)));
}

TEST(ScopeTest, ConsentRevocationFromOutsideTheGrantIsRefused) {
  ScopeSubject s = Revocation();
  s.sender = Police();
  s.recipients = {Counsel()};
  // The detail names the rule, the recorder and the sender.
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope,
                      {"consent revocation", kRecorderId, "police-x"}));
  // Also while the grant is revoked: the winding-down exemption does not widen the scope.
  EXPECT_TRUE(Refused(Check(s, kNow, /*revoked=*/true), NackReason::kConsentOutOfScope,
                      {"consent revocation", kRecorderId}));
}

TEST(ScopeTest, ConsentRevocationMayBeForwardedWithinTheGrant) {
  // The counseling center shared onward with the deletion center and forwards the
  // recorder's revocation to it, also after the revocation took effect.
  ScopeSubject s = Revocation();
  s.sender = Counsel();
  s.recipients = {Deletion()};
  EXPECT_TRUE(Allowed(Check(s)));
  EXPECT_TRUE(Allowed(Check(s, kNow, /*revoked=*/true)));
  // But never to a party outside the grant.
  s.recipients = {Police()};
  EXPECT_TRUE(
      Refused(Check(s, kNow, /*revoked=*/true), NackReason::kConsentOutOfScope, {"police-x"}));
}

TEST(ScopeTest, PurgeConfirmationToANonRecorderIsRefused) {
  ScopeSubject s = Purge();
  s.recipients = {Recorder(), Deletion()};
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {kDeletionId, kRecorderId}));
  EXPECT_TRUE(
      Refused(Check(s, kNow, /*revoked=*/true), NackReason::kConsentOutOfScope, {kDeletionId}));
}

// Linkage (PROTOCOL.md 13.6): an entry goes only to a linkage-escrow party, under purpose
// linkage, and is refused once the grant is revoked; a notice comes only from the escrow.
TEST(ScopeTest, LinkageEntriesGoToTheEscrowAndNoticesComeFromIt) {
  schema::ConsentGrant g = Grant();
  g.purposes.push_back(Purpose::kLinkage);
  g.allowed_recipients.push_back("escrow-e");
  const ScopeParty escrow =
      Party("escrow-e", AgencyType::kSupportCenter, {Role::kReceive, Role::kLinkageEscrow});
  const ScopeParty not_escrow = Counsel();
  ScopeSubject entry = Subject(MessageKind::kLinkageEntry, Purpose::kLinkage,
                               {DataCategory::kCaseStatus}, Recorder(), {escrow});
  EXPECT_TRUE(Allowed(CheckScope(g, false, entry, kNow)));
  EXPECT_TRUE(Refused(CheckScope(g, true, entry, kNow), NackReason::kConsentRevoked, {kCase}));
  ScopeSubject wrong_purpose = entry;
  wrong_purpose.purpose = Purpose::kCounseling;
  EXPECT_TRUE(Refused(CheckScope(g, false, wrong_purpose, kNow), NackReason::kConsentOutOfScope,
                      {"needs purpose linkage"}));
  ScopeSubject to_counsel = entry;
  to_counsel.recipients = {not_escrow};
  EXPECT_TRUE(Refused(CheckScope(g, false, to_counsel, kNow), NackReason::kConsentOutOfScope,
                      {kCounselId, "linkage-escrow"}));
  ScopeSubject with_data = entry;
  with_data.categories = {DataCategory::kIdentity};
  EXPECT_TRUE(Refused(CheckScope(g, false, with_data, kNow), NackReason::kConsentOutOfScope,
                      {"workflow metadata only"}));
  ScopeSubject notice = Subject(MessageKind::kLinkageNotice, Purpose::kLinkage,
                                {DataCategory::kCaseStatus}, escrow, {Recorder()});
  EXPECT_TRUE(Allowed(CheckScope(g, false, notice, kNow)));
  ScopeSubject forged = notice;
  forged.sender = not_escrow;
  EXPECT_TRUE(Refused(CheckScope(g, false, forged, kNow), NackReason::kConsentOutOfScope,
                      {kCounselId, "linkage-escrow"}));
  // A grant without purpose linkage carries no entry at all.
  EXPECT_TRUE(Refused(CheckScope(Grant(), false, entry, kNow), NackReason::kConsentOutOfScope,
                      {"purpose linkage"}));
}

// Tallies over the bus (PROTOCOL.md 13.8): workflow metadata under purpose linkage, from the
// agency that recorded the grant only, never to itself.
TEST(ScopeTest, LinkageTalliesComeFromTheRecorderUnderPurposeLinkage) {
  schema::ConsentGrant g = Grant();
  g.purposes.push_back(Purpose::kLinkage);
  ScopeSubject tally = Subject(MessageKind::kLinkageTally, Purpose::kLinkage,
                               {DataCategory::kCaseStatus}, Recorder(), {Counsel()});
  EXPECT_TRUE(Allowed(CheckScope(g, false, tally, kNow)));
  EXPECT_TRUE(Refused(CheckScope(g, true, tally, kNow), NackReason::kConsentRevoked, {kCase}));
  ScopeSubject wrong_purpose = tally;
  wrong_purpose.purpose = Purpose::kCounseling;
  EXPECT_TRUE(Refused(CheckScope(g, false, wrong_purpose, kNow), NackReason::kConsentOutOfScope,
                      {"needs purpose linkage"}));
  // A party within the grant (not its recorder) sending a tally under it.
  ScopeSubject relayed = tally;
  relayed.sender = Counsel();
  relayed.recipients = {Recorder()};
  EXPECT_TRUE(Refused(CheckScope(g, false, relayed, kNow), NackReason::kConsentOutOfScope,
                      {"its sender recorded", kRecorderId, kCounselId}));
  ScopeSubject to_itself = tally;
  to_itself.recipients = {Recorder()};
  EXPECT_TRUE(Refused(CheckScope(g, false, to_itself, kNow), NackReason::kConsentOutOfScope,
                      {"not its sender"}));
  ScopeSubject with_data = tally;
  with_data.categories = {DataCategory::kIdentity};
  EXPECT_TRUE(Refused(CheckScope(g, false, with_data, kNow), NackReason::kConsentOutOfScope,
                      {"workflow metadata only"}));
  EXPECT_TRUE(Refused(CheckScope(Grant(), false, tally, kNow), NackReason::kConsentOutOfScope,
                      {"purpose linkage"}));
}

TEST(ScopeTest, ExpiryBoundary) {
  EXPECT_TRUE(Allowed(Check(Referral(), kExpires)));
  EXPECT_TRUE(Refused(Check(Referral(), kExpires + 1), NackReason::kConsentExpired,
                      {kCase, FormatUtc(kExpires)}));
}

TEST(ScopeTest, ExpiryAppliesToStatusMessages) {
  ScopeSubject s = Subject(MessageKind::kCaseClosed, Purpose::kCounseling,
                           {DataCategory::kCaseStatus}, Recorder(), {Counsel()});
  EXPECT_TRUE(Allowed(Check(s, kExpires)));
  EXPECT_TRUE(Refused(Check(s, kExpires + 1), NackReason::kConsentExpired, {kCase}));
}

TEST(ScopeTest, GrantIssuedInTheFutureWithinSkewIsAllowed) {
  EXPECT_TRUE(Allowed(Check(Referral(), kIssued)));
  EXPECT_TRUE(Allowed(Check(Referral(), kIssued - 1)));
  EXPECT_TRUE(Allowed(Check(Referral(), kIssued - kClockSkewMs)));
}

TEST(ScopeTest, GrantIssuedInTheFutureBeyondSkewIsRefused) {
  EXPECT_TRUE(Refused(Check(Referral(), kIssued - kClockSkewMs - 1), NackReason::kConsentOutOfScope,
                      {kCase, FormatUtc(kIssued)}));
  EXPECT_TRUE(Refused(Check(Referral(), kIssued - kMillisPerDay), NackReason::kConsentOutOfScope,
                      {"not valid before"}));
}

// =====================================================================================
// Kind and purpose
// =====================================================================================

TEST(ScopeTest, OpaqueAndUnspecifiedKindsAreRefused) {
  ScopeSubject s = Referral();
  s.kind = MessageKind::kOpaque;
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"opaque"}));
  s.kind = MessageKind::kUnspecified;
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"unspecified"}));
}

TEST(ScopeTest, PurposeNotInTheGrantIsRefused) {
  ScopeSubject s = Referral();
  s.purpose = Purpose::kInvestigation;
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"investigation", kCase}));
  s.purpose = Purpose::kUnspecified;
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"unspecified"}));
}

TEST(ScopeTest, DeletionRequestNeedsPurposeDeletion) {
  ScopeSubject s = Subject(MessageKind::kDeletionRequest, Purpose::kCounseling,
                           {DataCategory::kContentLocations}, Recorder(), {Deletion()});
  EXPECT_TRUE(
      Refused(Check(s), NackReason::kConsentOutOfScope, {"deletion-request", "purpose deletion"}));
  s.purpose = Purpose::kDeletion;
  EXPECT_TRUE(Allowed(Check(s)));
}

TEST(ScopeTest, DeletionStatusNeedsPurposeDeletion) {
  ScopeSubject s = Subject(MessageKind::kDeletionStatus, Purpose::kCounseling,
                           {DataCategory::kDeletionStatus}, Deletion(), {Recorder()});
  EXPECT_TRUE(
      Refused(Check(s), NackReason::kConsentOutOfScope, {"deletion-status", "purpose deletion"}));
  s.purpose = Purpose::kDeletion;
  EXPECT_TRUE(Allowed(Check(s)));
}

TEST(ScopeTest, DeletionRequestToARecipientWithoutTheDeletionRoleIsRefused) {
  // counsel-b is allowed by the grant but has no deletion role.
  ScopeSubject s = Subject(MessageKind::kDeletionRequest, Purpose::kDeletion,
                           {DataCategory::kContentLocations}, Recorder(), {Deletion(), Counsel()});
  EXPECT_TRUE(
      Refused(Check(s), NackReason::kConsentOutOfScope, {"recipient counsel-b", "deletion role"}));
  s.recipients = {Deletion(), Deletion2()};
  EXPECT_TRUE(Allowed(Check(s)));
}

TEST(ScopeTest, DeletionStatusFromASenderWithoutTheDeletionRoleIsRefused) {
  ScopeSubject s = Subject(MessageKind::kDeletionStatus, Purpose::kDeletion,
                           {DataCategory::kDeletionStatus}, Counsel(), {Recorder()});
  EXPECT_TRUE(
      Refused(Check(s), NackReason::kConsentOutOfScope, {"sender counsel-b", "deletion role"}));
  s.sender = Deletion();
  EXPECT_TRUE(Allowed(Check(s)));
}

TEST(ScopeTest, HandoffToARecipientWithoutTheCaseLeadRoleIsRefused) {
  ScopeSubject s = Subject(MessageKind::kHandoff, Purpose::kCounseling, {DataCategory::kIdentity},
                           Recorder(), {Deletion()});
  EXPECT_TRUE(
      Refused(Check(s), NackReason::kConsentOutOfScope, {"recipient deletion-c", "case-lead"}));
  s.recipients = {Counsel()};
  EXPECT_TRUE(Allowed(Check(s)));
}

// =====================================================================================
// Categories
// =====================================================================================

// A metadata message of each kind that passes every rule before the category rules.
ScopeSubject MetadataMessage(MessageKind kind, std::vector<DataCategory> categories) {
  if (kind == MessageKind::kConsentRevocation) {
    return Subject(kind, Purpose::kCounseling, std::move(categories), Recorder(), {Counsel()});
  }
  return Subject(kind, Purpose::kCounseling, std::move(categories), Counsel(), {Recorder()});
}

const std::vector<MessageKind>& MetadataKinds() {
  static const std::vector<MessageKind> kKinds = {
      MessageKind::kReferralState,     MessageKind::kHandoffAck,        MessageKind::kAccessNotice,
      MessageKind::kConsentRevocation, MessageKind::kPurgeConfirmation, MessageKind::kCaseClosed};
  return kKinds;
}

TEST(ScopeTest, MetadataKindsWithCaseStatusOrNothingAreAllowed) {
  for (MessageKind k : MetadataKinds()) {
    EXPECT_TRUE(Allowed(Check(MetadataMessage(k, {DataCategory::kCaseStatus})))) << schema::Name(k);
    EXPECT_TRUE(Allowed(Check(MetadataMessage(k, {})))) << schema::Name(k);
  }
}

TEST(ScopeTest, MetadataKindsCarryNoOtherCategory) {
  for (MessageKind k : MetadataKinds()) {
    // identity is in the grant: only the metadata rule refuses it.
    auto r = Check(MetadataMessage(k, {DataCategory::kCaseStatus, DataCategory::kIdentity}));
    EXPECT_TRUE(Refused(r, NackReason::kConsentOutOfScope,
                        {std::string(schema::Name(k)), "metadata only", "identity"}))
        << schema::Name(k);
  }
  // deletion-status is a status category, but not workflow metadata.
  auto r = Check(MetadataMessage(MessageKind::kReferralState, {DataCategory::kDeletionStatus}));
  EXPECT_TRUE(Refused(r, NackReason::kConsentOutOfScope, {"referral-state", "deletion-status"}));
}

TEST(ScopeTest, CaseStatusIsAllowedEvenWhenNotInTheGrant) {
  const schema::ConsentGrant g = Grant();
  ASSERT_EQ(std::find(g.categories.begin(), g.categories.end(), DataCategory::kCaseStatus),
            g.categories.end());
  ScopeSubject s = Referral();
  s.categories = {DataCategory::kCaseStatus};
  EXPECT_TRUE(Allowed(Check(s)));
  s.categories = {DataCategory::kIdentity, DataCategory::kCaseStatus};
  EXPECT_TRUE(Allowed(Check(s)));
}

TEST(ScopeTest, CategoryNotInTheGrantIsRefused) {
  ScopeSubject s = Referral();
  s.categories = {DataCategory::kIdentity, DataCategory::kHealth};
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"health", kCase}));
  s.categories = {DataCategory::kCounselingNotes};
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"counseling-notes"}));
}

// =====================================================================================
// Recipients
// =====================================================================================

TEST(ScopeTest, RecipientAllowedById) {
  // counsel-b's agency type is not in the grant; its id is.
  EXPECT_TRUE(MayReceive(Grant(), Counsel()));
  EXPECT_TRUE(MayReceive(Grant(), Party(kCounselId, AgencyType::kUnspecified, {})));
  EXPECT_TRUE(Allowed(Check(Referral())));
}

TEST(ScopeTest, RecipientAllowedByAgencyType) {
  EXPECT_TRUE(MayReceive(Grant(), Deletion()));
  EXPECT_TRUE(MayReceive(Grant(), Deletion2()));
  ScopeSubject s = Referral();
  s.recipients = {Deletion(), Deletion2()};
  EXPECT_TRUE(Allowed(Check(s)));
}

TEST(ScopeTest, TheRecorderMayAlwaysReceive) {
  schema::ConsentGrant g = Grant();
  g.allowed_recipients.clear();
  g.allowed_agency_types.clear();
  EXPECT_TRUE(MayReceive(g, Recorder()));
  EXPECT_TRUE(MayReceive(g, Party(kRecorderId, AgencyType::kUnspecified, {})));
  ScopeSubject s = Referral();
  s.recipients = {Recorder()};
  EXPECT_FALSE(CheckScope(g, false, s, kNow).has_value());
}

TEST(ScopeTest, RecipientNotAllowedIsRefused) {
  EXPECT_FALSE(MayReceive(Grant(), Police()));
  ScopeSubject s = Referral();
  s.recipients = {Counsel(), Police(), Deletion()};
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"recipient police-x", kCase}));
}

TEST(ScopeTest, AnUnspecifiedAgencyTypeNeverMatchesByType) {
  schema::ConsentGrant g = Grant();
  g.allowed_agency_types.push_back(AgencyType::kUnspecified);
  EXPECT_FALSE(MayReceive(g, Party("unknown-z", AgencyType::kUnspecified, {})));
}

// =====================================================================================
// Sender and onward sharing
// =====================================================================================

TEST(ScopeTest, SenderOutsideTheGrantIsRefused) {
  ScopeSubject s = Subject(MessageKind::kReferral, Purpose::kCounseling, {DataCategory::kIdentity},
                           Police(), {Recorder()});
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"sender police-x", kCase}));
  // Status only does not help a sender outside the grant.
  s.kind = MessageKind::kReferralState;
  s.categories = {DataCategory::kCaseStatus};
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"sender police-x"}));
}

TEST(ScopeTest, WithoutOnwardSharingCaseDataMayGoBackToTheRecorder) {
  ScopeSubject s =
      Subject(MessageKind::kReferral, Purpose::kCounseling,
              {DataCategory::kIdentity, DataCategory::kContact}, Counsel(), {Recorder()});
  EXPECT_TRUE(Allowed(Check(s)));
}

TEST(ScopeTest, WithoutOnwardSharingCaseDataToAnotherAgencyIsRefused) {
  ScopeSubject s = Subject(MessageKind::kReferral, Purpose::kCounseling, {DataCategory::kIdentity},
                           Counsel(), {Deletion()});
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope,
                      {"onward sharing", kCounselId, kDeletionId}));
  // Also when the recorder is among the recipients.
  s.recipients = {Recorder(), Deletion()};
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope,
                      {"onward sharing", kCounselId, kDeletionId}));
  // Status mixed with case data is case data.
  s.categories = {DataCategory::kCaseStatus, DataCategory::kIdentity};
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"onward sharing", kDeletionId}));
  // A case-data kind declaring only status categories, or none, is still case data.
  s.recipients = {Deletion()};
  s.categories = {DataCategory::kCaseStatus};
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"onward sharing", kDeletionId}));
  s.categories = {};
  EXPECT_TRUE(Refused(Check(s), NackReason::kConsentOutOfScope, {"onward sharing", kDeletionId}));
}

TEST(ScopeTest, WithoutOnwardSharingStatusMayGoToAnotherAgencyInScope) {
  ScopeSubject s = Subject(MessageKind::kReferralState, Purpose::kCounseling,
                           {DataCategory::kCaseStatus}, Counsel(), {Deletion(), Recorder()});
  EXPECT_TRUE(Allowed(Check(s)));
  // A deletion center reports to another in-scope agency (a report_to entry).
  s = Subject(MessageKind::kDeletionStatus, Purpose::kDeletion,
              {DataCategory::kDeletionStatus, DataCategory::kCaseStatus}, Deletion(),
              {Counsel(), Recorder()});
  EXPECT_TRUE(Allowed(Check(s)));
}

TEST(ScopeTest, WithOnwardSharingCaseDataMayGoToAnotherAgencyInScope) {
  schema::ConsentGrant g = Grant();
  g.onward_sharing = true;
  ScopeSubject s = Subject(MessageKind::kReferral, Purpose::kCounseling, {DataCategory::kIdentity},
                           Counsel(), {Deletion()});
  EXPECT_FALSE(CheckScope(g, false, s, kNow).has_value());
  // Onward sharing stays within the grant.
  s.recipients = {Police()};
  auto r = CheckScope(g, false, s, kNow);
  EXPECT_TRUE(Refused(r, NackReason::kConsentOutOfScope, {"recipient police-x"}));
}

TEST(ScopeTest, TheRecorderIsNotLimitedByOnwardSharing) {
  ScopeSubject s = Referral();
  s.recipients = {Counsel(), Deletion(), Deletion2()};
  EXPECT_TRUE(Allowed(Check(s)));
}

// =====================================================================================
// ScopeSubjectOf
// =====================================================================================

schema::Party DirectoryParty(const std::string& id, AgencyType type, std::vector<Role> roles) {
  schema::Party p;
  p.id = id;
  p.kind = schema::PartyKind::kAgency;
  p.agency_type = type;
  p.roles = std::move(roles);
  return p;
}

schema::Directory TestDirectory() {
  schema::Directory d;
  d.federation = "test-federation";
  d.serial = 7;
  d.agencies = {
      DirectoryParty(kRecorderId, AgencyType::kWeeCenter, {Role::kRefer, Role::kCaseLead}),
      DirectoryParty(kCounselId, AgencyType::kCounselingCenter, {Role::kReceive}),
      DirectoryParty(kDeletionId, AgencyType::kDeletionCenter, {Role::kDeletion}),
  };
  return d;
}

schema::EnvelopeHeader Header(const std::string& sender, const std::vector<std::string>& to) {
  schema::EnvelopeHeader h;
  h.message_id = Bytes(schema::kMessageIdBytes, 0x11);
  h.kind = MessageKind::kDeletionRequest;
  h.sender_id = sender;
  h.sender_key_id = Bytes(schema::kKeyIdBytes, 0x22);
  for (const auto& r : to) {
    h.recipients.push_back(
        {r, Bytes(schema::kKeyIdBytes, 0x33), Bytes(schema::kWrappedKeyBytes, 0x44)});
  }
  h.case_ref = kCase;
  h.consent_grant_id = Bytes(schema::kGrantIdBytes, 0x17);
  h.purpose = Purpose::kDeletion;
  h.categories = {DataCategory::kContentLocations};
  h.created_at_ms = kNow;
  h.expires_at_ms = kNow + kMillisPerDay;
  return h;
}

TEST(ScopeSubjectOfTest, CopiesTheHeaderAndFillsPartiesFromTheDirectory) {
  ScopeSubject s = ScopeSubjectOf(Header(kRecorderId, {kDeletionId, kCounselId}), TestDirectory());
  EXPECT_EQ(s.kind, MessageKind::kDeletionRequest);
  EXPECT_EQ(s.purpose, Purpose::kDeletion);
  EXPECT_EQ(s.categories, std::vector<DataCategory>{DataCategory::kContentLocations});
  EXPECT_EQ(s.case_ref, kCase);
  EXPECT_EQ(s.sender.id, kRecorderId);
  EXPECT_EQ(s.sender.type, AgencyType::kWeeCenter);
  EXPECT_EQ(s.sender.roles, (std::vector<Role>{Role::kRefer, Role::kCaseLead}));
  ASSERT_EQ(s.recipients.size(), 2u);
  EXPECT_EQ(s.recipients[0].id, kDeletionId);
  EXPECT_EQ(s.recipients[0].type, AgencyType::kDeletionCenter);
  EXPECT_EQ(s.recipients[0].roles, std::vector<Role>{Role::kDeletion});
  EXPECT_EQ(s.recipients[1].id, kCounselId);
  EXPECT_EQ(s.recipients[1].type, AgencyType::kCounselingCenter);
  EXPECT_EQ(s.recipients[1].roles, std::vector<Role>{Role::kReceive});
}

TEST(ScopeSubjectOfTest, UnknownPartiesGetOnlyTheirId) {
  ScopeSubject s = ScopeSubjectOf(Header("unknown-s", {"unknown-z"}), TestDirectory());
  EXPECT_EQ(s.sender.id, "unknown-s");
  EXPECT_EQ(s.sender.type, AgencyType::kUnspecified);
  EXPECT_TRUE(s.sender.roles.empty());
  ASSERT_EQ(s.recipients.size(), 1u);
  EXPECT_EQ(s.recipients[0].id, "unknown-z");
  EXPECT_EQ(s.recipients[0].type, AgencyType::kUnspecified);
  EXPECT_TRUE(s.recipients[0].roles.empty());
}

TEST(ScopeSubjectOfTest, AHeaderFromTheDirectoryPassesTheScopeCheck) {
  ScopeSubject s = ScopeSubjectOf(Header(kRecorderId, {kDeletionId}), TestDirectory());
  EXPECT_TRUE(Allowed(Check(s)));
}

TEST(ScopeSubjectOfTest, AnUnknownPartyFailsTypeBasedRules) {
  // A deletion center missing from the directory: the grant allows deletion centers by
  // type, but nothing says this party is one.
  schema::ConsentGrant g = Grant();
  ScopeSubject s = ScopeSubjectOf(Header(kRecorderId, {"deletion-z"}), TestDirectory());
  s.kind = MessageKind::kReferral;
  auto r = CheckScope(g, false, s, kNow);
  EXPECT_TRUE(Refused(r, NackReason::kConsentOutOfScope, {"recipient deletion-z"}));
  // Nor does it have the deletion role a deletion request needs.
  s.kind = MessageKind::kDeletionRequest;
  r = CheckScope(g, false, s, kNow);
  EXPECT_TRUE(Refused(r, NackReason::kConsentOutOfScope, {"deletion-z", "deletion role"}));
  // As a sender it is not within the grant either.
  s = ScopeSubjectOf(Header("deletion-z", {kRecorderId}), TestDirectory());
  s.kind = MessageKind::kReferralState;
  s.purpose = Purpose::kCounseling;
  s.categories = {DataCategory::kCaseStatus};
  r = CheckScope(g, false, s, kNow);
  EXPECT_TRUE(Refused(r, NackReason::kConsentOutOfScope, {"sender deletion-z"}));
}

TEST(ScopeSubjectOfTest, AnUnknownPartyNamedByIdIsStillAllowed) {
  schema::Directory d = TestDirectory();
  d.agencies.erase(d.agencies.begin() + 1);  // counsel-b leaves the directory
  ScopeSubject s = ScopeSubjectOf(Header(kRecorderId, {kCounselId}), d);
  s.kind = MessageKind::kReferral;
  s.purpose = Purpose::kCounseling;
  s.categories = {DataCategory::kIdentity};
  EXPECT_EQ(s.recipients[0].type, AgencyType::kUnspecified);
  EXPECT_TRUE(Allowed(Check(s)));
}

}  // namespace scope_test
}  // namespace refbus::keys
