// The agents' two consent checks: the sender refuses to seal what is outside the grant,
// the receiver refuses what should not have arrived (even when a sender skipped its own
// check and sealed it by hand).
#include "agent/case_message.h"

#include <gtest/gtest.h>

#include "keys/consent.h"
#include "keys/envelope.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/unit/keys/federation.h"

namespace refbus::agent {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace case_message_test {

using keys::fed::kNow;
using schema::CaseMessage;
using schema::DataCategory;
using schema::MessageKind;
using schema::Purpose;

constexpr char kCase[] = "case-1234abcd";

class CaseMessageTest : public ::testing::Test {
 protected:
  // agency-b (police) records a grant: investigation + counseling, to counseling centers
  // (agency-a), incident summary and contact.
  CaseMessageTest() {
    schema::ConsentGrant g;
    g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
    g.case_ref = kCase;
    g.recorded_by = "agency-b";
    g.basis = schema::LegalBasis::kConsentSubject;
    g.consenters = {schema::Consenter::kSubject};
    g.purposes = {Purpose::kCounseling};
    g.categories = {DataCategory::kIncidentSummary, DataCategory::kContact};
    g.allowed_agency_types = {schema::AgencyType::kCounselingCenter};
    g.issued_at_ms = kNow - 1000;
    g.expires_at_ms = kNow + kMillisPerDay;
    grant_.grant = test::Must(keys::SignConsentGrant(fed_.party("agency-b"), g));
  }

  CaseMessage Referral(std::vector<schema::CaseField> fields, const std::string& to = "agency-a") {
    CaseMessage m;
    m.type = CaseMessage::Type::kReferral;
    m.referral.referral_id = keys::RandomBytes(16);
    m.referral.case_ref = kCase;
    m.referral.referring_agency = "agency-b";
    m.referral.to_agency = to;
    m.referral.purpose = Purpose::kCounseling;
    m.referral.fields = std::move(fields);
    m.referral.signed_grant = schema::EncodeSignedConsentGrant(grant_.grant);
    m.referral.operator_ref = "op-1";
    m.referral.sent_at_ms = kNow;
    return m;
  }
  SealCaseRequest Request(CaseMessage m, std::vector<std::string> to = {"agency-a"}) {
    SealCaseRequest r;
    r.message = std::move(m);
    r.recipients = std::move(to);
    r.purpose = Purpose::kCounseling;
    r.now = kNow;
    return r;
  }
  GrantLookup Known(bool revoked = false) {
    return [this, revoked](ByteView id) -> std::optional<KnownGrant> {
      if (Bytes(id.begin(), id.end()) != grant_.grant.grant.grant_id) return std::nullopt;
      KnownGrant k = grant_;
      k.revoked = revoked;
      return k;
    };
  }
  static GrantLookup None() {
    return [](ByteView) { return std::optional<KnownGrant>(); };
  }

  keys::fed::Federation fed_;
  KnownGrant grant_;
};

TEST_F(CaseMessageTest, ReferralWithinTheGrantSealsAndOpens) {
  auto env = SealCase(fed_.party("agency-b"), fed_.directory(), grant_,
                      Request(Referral({{DataCategory::kIncidentSummary, "summary", "text"},
                                        {DataCategory::kContact, "phone", "010"}})));
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  auto decoded = schema::DecodeEnvelope(*env);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->header.kind, MessageKind::kReferral);
  EXPECT_EQ(decoded->header.consent_grant_id, grant_.grant.grant.grant_id);
  EXPECT_EQ(decoded->header.categories,
            (std::vector<DataCategory>{DataCategory::kContact, DataCategory::kIncidentSummary}));
  auto opened = OpenCase(fed_.party("agency-a"), *env, fed_.directory(), None(), kNow);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  ASSERT_EQ(opened->message.type, CaseMessage::Type::kReferral);
  EXPECT_EQ(opened->message.referral.fields.size(), 2u);
  EXPECT_EQ(opened->grant.grant.grant_id, grant_.grant.grant.grant_id);
}

TEST_F(CaseMessageTest, SenderRefusesAFieldOutsideTheGrantNamingIt) {
  auto env = SealCase(fed_.party("agency-b"), fed_.directory(), grant_,
                      Request(Referral({{DataCategory::kIncidentSummary, "summary", "text"},
                                        {DataCategory::kHealth, "diagnosis", "secret"}})));
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().code(), Status::Code::kPermissionDenied);
  EXPECT_NE(env.status().message().find("diagnosis"), std::string::npos);
  EXPECT_NE(env.status().message().find("health"), std::string::npos);
  EXPECT_EQ(env.status().message().find("secret"), std::string::npos) << "value leaked";
}

TEST_F(CaseMessageTest, SenderRefusesARecipientOutsideTheGrant) {
  auto env = SealCase(fed_.party("agency-b"), fed_.directory(), grant_,
                      Request(Referral({}, "agency-d"), {"agency-d"}));
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().code(), Status::Code::kPermissionDenied);
  EXPECT_NE(env.status().message().find("agency-d"), std::string::npos);
}

TEST_F(CaseMessageTest, SenderRefusesUnderARevokedOrExpiredGrant) {
  KnownGrant revoked = grant_;
  revoked.revoked = true;
  auto r = SealCase(fed_.party("agency-b"), fed_.directory(), revoked, Request(Referral({})));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("revoked"), std::string::npos);
  SealCaseRequest late = Request(Referral({}));
  late.now = kNow + 2 * kMillisPerDay;
  auto e = SealCase(fed_.party("agency-b"), fed_.directory(), grant_, late);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("expired"), std::string::npos);
}

// A sender that skips its check and seals by hand: the receiver still refuses.
TEST_F(CaseMessageTest, ReceiverRefusesUndeclaredCategoryAndKindMismatch) {
  CaseMessage m = Referral({{DataCategory::kHealth, "diagnosis", "x"}});
  keys::SealRequest req;
  req.kind = MessageKind::kReferral;
  req.case_ref = kCase;
  req.consent_grant_id = grant_.grant.grant.grant_id;
  req.purpose = Purpose::kCounseling;
  req.categories = {DataCategory::kIncidentSummary};  // declares less than it carries
  req.now = kNow;
  req.recipients.push_back(fed_.PrekeyOf("agency-a", kNow));
  Bytes env =
      test::Must(keys::SealEnvelope(fed_.party("agency-b"), req, schema::EncodeCaseMessage(m)));
  auto opened = OpenCase(fed_.party("agency-a"), env, fed_.directory(), None(), kNow);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Status::Code::kPermissionDenied);
  EXPECT_NE(opened.status().message().find("health"), std::string::npos);

  req.kind = MessageKind::kDeletionRequest;  // label does not match the body
  req.categories = {DataCategory::kHealth};
  Bytes mislabelled =
      test::Must(keys::SealEnvelope(fed_.party("agency-b"), req, schema::EncodeCaseMessage(m)));
  auto wrong = OpenCase(fed_.party("agency-a"), mislabelled, fed_.directory(), None(), kNow);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("labelled"), std::string::npos);
}

TEST_F(CaseMessageTest, ReceiverRefusesWhatTheGrantDoesNotAllow) {
  // Declared honestly, but health is not in the grant: the broker would refuse it too.
  CaseMessage m = Referral({{DataCategory::kHealth, "diagnosis", "x"}});
  keys::SealRequest req;
  req.kind = MessageKind::kReferral;
  req.case_ref = kCase;
  req.consent_grant_id = grant_.grant.grant.grant_id;
  req.purpose = Purpose::kCounseling;
  req.categories = {DataCategory::kHealth};
  req.now = kNow;
  req.recipients.push_back(fed_.PrekeyOf("agency-a", kNow));
  Bytes env =
      test::Must(keys::SealEnvelope(fed_.party("agency-b"), req, schema::EncodeCaseMessage(m)));
  auto opened = OpenCase(fed_.party("agency-a"), env, fed_.directory(), None(), kNow);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("consent-out-of-scope"), std::string::npos)
      << opened.status().message();
}

TEST_F(CaseMessageTest, ReceiverUsesRevocationItKnowsAbout) {
  Bytes env =
      test::Must(SealCase(fed_.party("agency-b"), fed_.directory(), grant_, Request(Referral({}))));
  auto opened = OpenCase(fed_.party("agency-a"), env, fed_.directory(), Known(true), kNow);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("revoked"), std::string::npos);
}

TEST_F(CaseMessageTest, StateChangeNeedsAGrantTheReceiverKnows) {
  CaseMessage m;
  m.type = CaseMessage::Type::kStateChange;
  m.state_change = {keys::RandomBytes(16),
                    kCase,
                    schema::ReferralState::kRequested,
                    schema::ReferralState::kAccepted,
                    "",
                    "op-2",
                    kNow};
  // agency-a (the receiver of the referral) answers agency-b, the recorder.
  SealCaseRequest req = Request(m, {"agency-b"});
  Bytes env = test::Must(SealCase(fed_.party("agency-a"), fed_.directory(), grant_, req));
  auto decoded = test::Must(schema::DecodeEnvelope(env));
  EXPECT_EQ(decoded.header.categories, std::vector<DataCategory>{DataCategory::kCaseStatus});
  auto unknown = OpenCase(fed_.party("agency-b"), env, fed_.directory(), None(), kNow);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("has not received"), std::string::npos);
  auto ok = OpenCase(fed_.party("agency-b"), env, fed_.directory(), Known(), kNow);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->message.state_change.to_state, schema::ReferralState::kAccepted);
}

TEST_F(CaseMessageTest, ForgedCarriedGrantIsRefused) {
  CaseMessage m = Referral({});
  schema::SignedConsentGrant forged = grant_.grant;
  forged.signature[0] ^= 1;
  m.referral.signed_grant = schema::EncodeSignedConsentGrant(forged);
  keys::SealRequest req;
  req.kind = MessageKind::kReferral;
  req.case_ref = kCase;
  req.consent_grant_id = grant_.grant.grant.grant_id;
  req.purpose = Purpose::kCounseling;
  req.categories = {};
  req.now = kNow;
  req.recipients.push_back(fed_.PrekeyOf("agency-a", kNow));
  Bytes env =
      test::Must(keys::SealEnvelope(fed_.party("agency-b"), req, schema::EncodeCaseMessage(m)));
  auto opened = OpenCase(fed_.party("agency-a"), env, fed_.directory(), None(), kNow);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), Status::Code::kUnauthenticated) << opened.status().ToString();
}

}  // namespace case_message_test
}  // namespace refbus::agent
