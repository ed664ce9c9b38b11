// Consent enforcement at the broker, with a real refbus-broker process and raw CURVE
// clients: grant registration (signature, recorder, emergency countersignature), envelopes
// checked against their grant (recipient, category, purpose, kind, expiry, revocation),
// revocation by the recorder only, revocation notices and purge confirmations still
// flowing after a revocation, and the audit entries each of these leaves.
#include <gtest/gtest.h>
#include <sodium.h>

#include <chrono>
#include <thread>

#include "broker/store.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "keys/envelope.h"
#include "keys/operator_signature.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::AgencyType;
using schema::AuditEvent;
using schema::DataCategory;
using schema::Frame;
using schema::MessageKind;
using schema::NackReason;
using schema::Purpose;

constexpr char kCase[] = "case-7f3a9c21";

class BrokerConsentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-consent-test");
    ASSERT_TRUE(fed_.Create(root_, {"seoul-broker"},
                            {{"seoul-wee-01", AgencyType::kWeeCenter, "seoul-broker"},
                             {"seoul-counsel", AgencyType::kCounselingCenter, "seoul-broker"},
                             {"seoul-police-03", AgencyType::kPoliceUnit, "seoul-broker"},
                             {"seoul-dsc", AgencyType::kDeletionCenter, "seoul-broker"},
                             {"seoul-support", AgencyType::kSupportCenter, "seoul-broker"}}));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", root_ + "/seoul-data");
    broker_->set_policy("allow_unscoped_opaque = false");
    ASSERT_TRUE(broker_->Start());
  }
  void TearDown() override {
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  const keys::Identity& Id(const std::string& party) {
    if (!ids_.count(party)) ids_.emplace(party, fed_.LoadIdentity(party));
    return ids_.at(party);
  }
  RawClient& Client(const std::string& party) {
    auto it = clients_.find(party);
    if (it != clients_.end()) return *it->second;
    Bytes key = fed_.directory().Find("seoul-broker")->ActiveKeys()->transport_key;
    auto c = std::make_unique<RawClient>(Id(party), key, broker_->endpoint());
    EXPECT_TRUE(c->Hello(party)) << party << " got no Welcome; broker log:\n" << broker_->Log();
    return *clients_.emplace(party, std::move(c)).first->second;
  }
  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }

  // The Wee center's grant: guardian consent and the student's assent, counseling only,
  // to counseling centers, identity + contact + incident summary, valid for a day.
  schema::ConsentGrant WeeGrant() {
    schema::ConsentGrant g;
    g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
    g.case_ref = kCase;
    g.recorded_by = "seoul-wee-01";
    g.basis = schema::LegalBasis::kConsentLegalRepresentative;
    g.legal_article = "PIPA 22-2";
    g.consenters = {schema::Consenter::kGuardian};
    g.subject_assent = true;
    g.purposes = {Purpose::kCounseling};
    g.categories = {DataCategory::kIdentity, DataCategory::kContact,
                    DataCategory::kIncidentSummary};
    g.allowed_agency_types = {AgencyType::kCounselingCenter};
    g.issued_at_ms = Now() - 1000;
    g.expires_at_ms = Now() + kMillisPerDay;
    g.retention_until_ms = Now() + 30 * kMillisPerDay;
    return g;
  }

  Bytes Sign(const schema::ConsentGrant& g) {
    auto s = keys::SignConsentGrant(Id(g.recorded_by), g);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? schema::EncodeSignedConsentGrant(*s) : Bytes();
  }

  std::optional<Frame> Register(const std::string& party, const Bytes& signed_grant) {
    Frame f;
    f.type = Frame::Type::kGrantRegister;
    f.request_id = next_request_++;
    f.grant_register.signed_grant = signed_grant;
    RawClient& c = Client(party);
    c.SendFrame(f);
    return c.Expect(Frame::Type::kAck, f.request_id, 5000);
  }

  // A fresh operator key's signature over statement (break_it flips one bit of it).
  static schema::OperatorSignature OperatorSign(keys::OperatorAction action,
                                                const std::string& name, const Bytes& statement,
                                                bool break_it) {
    Bytes pk(crypto_sign_PUBLICKEYBYTES), sk(crypto_sign_SECRETKEYBYTES);
    crypto_sign_keypair(pk.data(), sk.data());
    Bytes input = keys::SignatureInput(keys::OperatorLabel(action), statement);
    Bytes sig(crypto_sign_BYTES);
    crypto_sign_detached(sig.data(), nullptr, input.data(), input.size(), sk.data());
    sodium_memzero(sk.data(), sk.size());
    if (break_it) sig[7] ^= 1;
    return {name, pk, sig};
  }

  std::optional<Frame> Revoke(const std::string& party, const std::string& signer,
                              const schema::ConsentGrant& g, const std::string& operator_name = "",
                              bool break_it = false) {
    schema::ConsentRevocation r{g.grant_id, g.case_ref, signer,
                                schema::RevocationReason::kWithdrawnByGuardian, Now()};
    auto st = keys::SignStatement(Id(signer), keys::StatementType::kConsentRevocation,
                                  schema::EncodeConsentRevocation(r));
    if (!operator_name.empty()) {
      st.operator_signature = OperatorSign(keys::OperatorAction::kConsentRevocation, operator_name,
                                           st.statement, break_it);
    }
    Frame f;
    f.type = Frame::Type::kGrantRevoke;
    f.request_id = next_request_++;
    f.grant_revoke.signed_revocation = schema::EncodeSignedStatement(st);
    RawClient& c = Client(party);
    c.SendFrame(f);
    return c.Expect(Frame::Type::kAck, f.request_id, 5000);
  }

  // operator_name (non-empty): an operator signature by a fresh key over the statement;
  // break_it flips a bit of that signature.
  std::optional<Frame> Attest(const std::string& party, bool access, Bytes statement,
                              const std::string& signer, const std::string& operator_name = "",
                              bool break_it = false) {
    auto st = keys::SignStatement(
        Id(signer),
        access ? keys::StatementType::kAccessRecord : keys::StatementType::kPurgeConfirmation,
        std::move(statement));
    if (!operator_name.empty()) {
      st.operator_signature =
          OperatorSign(keys::OperatorAction::kAccessRecord, operator_name, st.statement, break_it);
    }
    Frame f;
    f.type = Frame::Type::kAttest;
    f.request_id = next_request_++;
    (access ? f.attest.signed_access : f.attest.signed_purge) = schema::EncodeSignedStatement(st);
    RawClient& c = Client(party);
    c.SendFrame(f);
    return c.Expect(Frame::Type::kAck, f.request_id, 5000);
  }

  struct Msg {
    MessageKind kind = MessageKind::kReferral;
    Purpose purpose = Purpose::kCounseling;
    std::vector<DataCategory> categories = {DataCategory::kIdentity,
                                            DataCategory::kIncidentSummary};
    std::string case_ref = kCase;
  };
  Bytes Seal(const std::string& sender, const std::vector<std::string>& to, ByteView grant_id,
             const Msg& m) {
    keys::SealRequest req;
    req.kind = m.kind;
    req.case_ref = m.case_ref;
    req.consent_grant_id.assign(grant_id.begin(), grant_id.end());
    req.purpose = m.purpose;
    req.categories = m.categories;
    req.now = Now();
    req.lifetime_ms = kMillisPerDay;
    for (const auto& r : to) {
      auto p = keys::CurrentPrekey(fed_.directory(), r, req.now);
      EXPECT_TRUE(p.ok()) << r;
      if (p.ok()) req.recipients.push_back(*p);
    }
    auto env = keys::SealEnvelope(Id(sender), req, AsBytes("referral content"));
    EXPECT_TRUE(env.ok()) << env.status().ToString();
    return env.ok() ? *env : Bytes();
  }

  void ExpectAck(const std::optional<Frame>& r) {
    ASSERT_TRUE(r.has_value()) << "no reply; broker log:\n" << broker_->Log();
    ASSERT_EQ(r->type, Frame::Type::kAck) << schema::Name(r->nack.reason) << ": " << r->nack.detail;
  }
  void ExpectNack(const std::optional<Frame>& r, NackReason reason, const std::string& says) {
    ASSERT_TRUE(r.has_value()) << "no reply; broker log:\n" << broker_->Log();
    ASSERT_EQ(r->type, Frame::Type::kNack) << "expected nack " << schema::Name(reason);
    EXPECT_EQ(r->nack.reason, reason) << schema::Name(r->nack.reason) << ": " << r->nack.detail;
    EXPECT_NE(r->nack.detail.find(says), std::string::npos)
        << "detail '" << r->nack.detail << "' should mention '" << says << "'";
  }

  // Stops the broker and reads its audit log.
  std::vector<schema::AuditEntry> StopAndReadAudit() {
    clients_.clear();
    EXPECT_EQ(broker_->Stop(), 0);
    broker::StoreOptions o;
    o.dir = root_ + "/seoul-data";
    o.broker_id = "seoul-broker";
    auto store = broker::Store::Open(o);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    std::vector<schema::AuditEntry> out;
    if (!store.ok()) return out;
    auto n = (*store)->AuditSize();
    EXPECT_TRUE(n.ok());
    for (uint64_t i = 0; n.ok() && i < *n; ++i) {
      auto b = (*store)->AuditEntryBytes(i);
      EXPECT_TRUE(b.ok());
      auto e = schema::DecodeAuditEntry(*b);
      EXPECT_TRUE(e.ok());
      if (e.ok()) out.push_back(*e);
    }
    return out;
  }

  static std::vector<schema::AuditEntry> Find(const std::vector<schema::AuditEntry>& log,
                                              AuditEvent ev, NackReason reason = {}) {
    std::vector<schema::AuditEntry> out;
    for (const auto& e : log) {
      if (e.event == ev && (reason == NackReason::kUnspecified || e.reason == reason)) {
        out.push_back(e);
      }
    }
    return out;
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::map<std::string, keys::Identity> ids_;
  std::map<std::string, std::unique_ptr<RawClient>> clients_;
  uint64_t next_request_ = 1000;
};

TEST_F(BrokerConsentTest, EnvelopesOutsideTheirGrantAreRefusedAndAudited) {
  schema::ConsentGrant g = WeeGrant();
  Bytes signed_grant = Sign(g);
  ExpectAck(Register("seoul-wee-01", signed_grant));
  // Registering the same grant again is idempotent.
  auto again = Register("seoul-wee-01", signed_grant);
  ExpectAck(again);
  EXPECT_TRUE(again->ack.duplicate);

  auto& wee = Client("seoul-wee-01");
  // Within scope: delivered.
  ExpectAck(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, g.grant_id, {})));
  auto d = Client("seoul-counsel").Receive(5000);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->type, Frame::Type::kDeliver);

  // Recipient outside the grant (a police unit is not a counseling center).
  ExpectNack(wee.Submit(Seal("seoul-wee-01", {"seoul-police-03"}, g.grant_id, {})),
             NackReason::kConsentOutOfScope, "seoul-police-03");
  // A data category the guardian did not consent to.
  Msg health;
  health.categories = {DataCategory::kHealth};
  ExpectNack(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, g.grant_id, health)),
             NackReason::kConsentOutOfScope, "health");
  // A purpose outside the grant.
  Msg legal;
  legal.purpose = Purpose::kLegal;
  ExpectNack(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, g.grant_id, legal)),
             NackReason::kConsentOutOfScope, "legal");
  // A kind outside the grant: deletion needs purpose deletion and a deletion center.
  Msg deletion;
  deletion.kind = MessageKind::kDeletionRequest;
  ExpectNack(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, g.grant_id, deletion)),
             NackReason::kConsentOutOfScope, "deletion");
  // Another case under this grant.
  Msg other_case;
  other_case.case_ref = "case-00000000";
  ExpectNack(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, g.grant_id, other_case)),
             NackReason::kConsentOutOfScope, "case-00000000");
  // A grant the broker never saw.
  ExpectNack(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"},
                             keys::RandomBytes(schema::kGrantIdBytes), {})),
             NackReason::kConsentOutOfScope, "not registered");
  // Case data without any grant, and an unscoped OPAQUE envelope (policy off).
  ExpectNack(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, {}, {})),
             NackReason::kConsentOutOfScope, "must name the consent grant");
  Msg opaque;
  opaque.kind = MessageKind::kOpaque;
  opaque.categories = {};
  ExpectNack(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, {}, opaque)),
             NackReason::kConsentOutOfScope, "allow_unscoped_opaque");
  // The counseling center may not share onward to another agency without onward sharing,
  // even to one of an allowed type... and a police unit is not within the grant at all.
  ExpectNack(
      Client("seoul-counsel").Submit(Seal("seoul-counsel", {"seoul-police-03"}, g.grant_id, {})),
      NackReason::kConsentOutOfScope, "seoul-police-03");
  // It may report status back to the recording agency.
  Msg state;
  state.kind = MessageKind::kReferralState;
  state.categories = {DataCategory::kCaseStatus};
  ExpectAck(
      Client("seoul-counsel").Submit(Seal("seoul-counsel", {"seoul-wee-01"}, g.grant_id, state)));

  auto log = StopAndReadAudit();
  auto granted = Find(log, AuditEvent::kConsentGranted);
  ASSERT_EQ(granted.size(), 1u) << "a duplicate registration is not a second grant";
  EXPECT_EQ(granted[0].consent_grant_id, g.grant_id);
  EXPECT_EQ(granted[0].case_ref, kCase);
  EXPECT_EQ(granted[0].actor, "seoul-wee-01");
  EXPECT_FALSE(granted[0].emergency_override);
  EXPECT_EQ(granted[0].statement_sha256.size(), 32u);
  EXPECT_EQ(Find(log, AuditEvent::kEnvelopeRejected, NackReason::kConsentOutOfScope).size(), 9u);
  EXPECT_EQ(Find(log, AuditEvent::kEnvelopeAccepted).size(), 2u);
  for (const auto& e : log) {
    EXPECT_EQ(e.detail.find("referral content"), std::string::npos) << "content in the log";
  }
}

TEST_F(BrokerConsentTest, RegistrationChecksSignatureRecorderAndEmergencyCountersignature) {
  schema::ConsentGrant g = WeeGrant();
  // Registered by someone other than the recorder.
  ExpectNack(Register("seoul-counsel", Sign(g)), NackReason::kSenderMismatch, "seoul-wee-01");
  // Signed by the wrong agency's key.
  g.recorded_by = "seoul-counsel";
  auto forged = keys::SignConsentGrant(Id("seoul-counsel"), g);
  ASSERT_TRUE(forged.ok());
  forged->grant.recorded_by = "seoul-wee-01";
  g.recorded_by = "seoul-wee-01";
  forged->grant_bytes = schema::EncodeConsentGrant(g);
  ExpectNack(Register("seoul-wee-01", schema::EncodeSignedConsentGrant(*forged)),
             NackReason::kBadSignature, "");
  // Expired at registration.
  schema::ConsentGrant old = WeeGrant();
  old.issued_at_ms = Now() - 2 * kMillisPerDay;
  old.expires_at_ms = Now() - kMillisPerDay;
  ExpectNack(Register("seoul-wee-01", Sign(old)), NackReason::kConsentExpired, "expired");
  // An emergency override without a second operator's countersignature.
  schema::ConsentGrant em = WeeGrant();
  em.basis = schema::LegalBasis::kEmergencyLifeSafety;
  em.legal_article = "PIPA 18(2)3";
  em.consenters.clear();
  em.emergency_override = true;
  em.purposes = {Purpose::kEmergency};
  ExpectNack(Register("seoul-wee-01", Sign(em)), NackReason::kConsentOutOfScope,
             "countersignature");
  // With one: accepted and flagged for auditors.
  auto em_signed = keys::SignConsentGrant(Id("seoul-wee-01"), em);
  ASSERT_TRUE(em_signed.ok());
  auto supervisor =
      keys::Identity::Generate("wee-supervisor", schema::PartyKind::kAgency, Now(), kMillisPerDay);
  ASSERT_TRUE(supervisor.ok());
  ASSERT_TRUE(keys::Countersign(*em_signed, "op-supervisor-2", *supervisor).ok());
  ExpectAck(Register("seoul-wee-01", schema::EncodeSignedConsentGrant(*em_signed)));

  auto log = StopAndReadAudit();
  auto granted = Find(log, AuditEvent::kConsentGranted);
  ASSERT_EQ(granted.size(), 1u);
  EXPECT_TRUE(granted[0].emergency_override);
  EXPECT_NE(granted[0].detail.find("EMERGENCY OVERRIDE"), std::string::npos);
  EXPECT_NE(granted[0].detail.find("op-supervisor-2"), std::string::npos);
  EXPECT_EQ(Find(log, AuditEvent::kEnvelopeRejected).size(), 4u);
}

TEST_F(BrokerConsentTest, ExpiredGrantRefusesNewSharing) {
  schema::ConsentGrant g = WeeGrant();
  g.expires_at_ms = Now() + 1500;
  ExpectAck(Register("seoul-wee-01", Sign(g)));
  auto& wee = Client("seoul-wee-01");
  ExpectAck(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, g.grant_id, {})));
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  ExpectNack(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, g.grant_id, {})),
             NackReason::kConsentExpired, "expired");
}

TEST_F(BrokerConsentTest, RevocationStopsSharingButLetsTheRevocationAndPurgeThrough) {
  schema::ConsentGrant g = WeeGrant();
  ExpectAck(Register("seoul-wee-01", Sign(g)));
  auto& wee = Client("seoul-wee-01");
  Bytes referral = Seal("seoul-wee-01", {"seoul-counsel"}, g.grant_id, {});
  ExpectAck(wee.Submit(referral));
  auto d = Client("seoul-counsel").Receive(5000);
  ASSERT_TRUE(d.has_value());
  ASSERT_EQ(d->type, Frame::Type::kDeliver);
  auto env = schema::DecodeEnvelope(d->deliver.envelope);
  ASSERT_TRUE(env.ok());

  // The counselor opens it: an access record for the audit log.
  schema::AccessRecord access{env->header.message_id, kCase,         "seoul-counsel",
                              "op-counsel-7",         Now(),         g.grant_id,
                              MessageKind::kReferral, "seoul-wee-01"};
  ExpectAck(Attest("seoul-counsel", true, schema::EncodeAccessRecord(access), "seoul-counsel"));
  // An operator's signature over the access record (PROTOCOL.md 9.2): kept when it
  // verifies; one that does not, or that names another operator, is refused.
  access.opened_at_ms = Now();
  ExpectAck(Attest("seoul-counsel", true, schema::EncodeAccessRecord(access), "seoul-counsel",
                   "op-counsel-7"));
  access.opened_at_ms = Now() + 1;
  ExpectNack(Attest("seoul-counsel", true, schema::EncodeAccessRecord(access), "seoul-counsel",
                    "op-counsel-7", /*break_it=*/true),
             NackReason::kBadSignature, "operator signature");
  ExpectNack(Attest("seoul-counsel", true, schema::EncodeAccessRecord(access), "seoul-counsel",
                    "op-counsel-9"),
             NackReason::kMalformed, "op-counsel-9");
  // An access record signed by one agency and handed over by another is refused.
  ExpectNack(Attest("seoul-wee-01", true, schema::EncodeAccessRecord(access), "seoul-counsel"),
             NackReason::kSenderMismatch, "seoul-counsel");

  // Only the recording agency may revoke.
  ExpectNack(Revoke("seoul-counsel", "seoul-counsel", g), NackReason::kConsentOutOfScope,
             "seoul-wee-01");
  // The revoking operator's signature must verify; then the entry names them.
  ExpectNack(Revoke("seoul-wee-01", "seoul-wee-01", g, "op-wee-1", /*break_it=*/true),
             NackReason::kBadSignature, "operator signature");
  ExpectAck(Revoke("seoul-wee-01", "seoul-wee-01", g, "op-wee-1"));
  auto twice = Revoke("seoul-wee-01", "seoul-wee-01", g);
  ExpectAck(twice);
  EXPECT_TRUE(twice->ack.duplicate);

  // No new case data under it; the resubmission of what was accepted before still gets
  // its (duplicate) ack.
  ExpectNack(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, g.grant_id, {})),
             NackReason::kConsentRevoked, "revoked");
  auto resubmitted = wee.Submit(referral);
  ExpectAck(resubmitted);
  EXPECT_TRUE(resubmitted->ack.duplicate);
  // The revocation notice reaches the recipient, and its purge confirmation comes back.
  Msg notice;
  notice.kind = MessageKind::kConsentRevocation;
  notice.categories = {DataCategory::kCaseStatus};
  ExpectAck(wee.Submit(Seal("seoul-wee-01", {"seoul-counsel"}, g.grant_id, notice)));
  Msg purge;
  purge.kind = MessageKind::kPurgeConfirmation;
  purge.categories = {DataCategory::kCaseStatus};
  ExpectAck(
      Client("seoul-counsel").Submit(Seal("seoul-counsel", {"seoul-wee-01"}, g.grant_id, purge)));
  // A status report is not a purge: refused after revocation.
  Msg state;
  state.kind = MessageKind::kReferralState;
  state.categories = {DataCategory::kCaseStatus};
  ExpectNack(
      Client("seoul-counsel").Submit(Seal("seoul-counsel", {"seoul-wee-01"}, g.grant_id, state)),
      NackReason::kConsentRevoked, "revoked");
  schema::PurgeConfirmation pc{g.grant_id, kCase, "seoul-counsel", Now(), 1, keys::RandomBytes(32)};
  ExpectAck(Attest("seoul-counsel", false, schema::EncodePurgeConfirmation(pc), "seoul-counsel"));

  auto log = StopAndReadAudit();
  auto opened = Find(log, AuditEvent::kEnvelopeOpened);
  ASSERT_EQ(opened.size(), 2u);
  EXPECT_EQ(opened[0].message_id, env->header.message_id);
  EXPECT_EQ(opened[0].operator_ref, "op-counsel-7");
  EXPECT_EQ(opened[0].actor, "seoul-counsel");
  EXPECT_EQ(opened[0].sender_id, "seoul-wee-01");
  EXPECT_TRUE(opened[0].operator_signature.empty()) << "no operator signature was given";
  // The signed one keeps the operator's key, signature and the exact record signed.
  EXPECT_EQ(opened[1].operator_public_key.size(), 32u);
  EXPECT_EQ(opened[1].operator_signature.size(), 64u);
  auto signed_record = schema::DecodeAccessRecord(opened[1].operator_statement);
  ASSERT_TRUE(signed_record.ok());
  EXPECT_EQ(signed_record->operator_ref, "op-counsel-7");
  auto revoked = Find(log, AuditEvent::kConsentRevoked);
  ASSERT_EQ(revoked.size(), 1u);
  EXPECT_EQ(revoked[0].consent_grant_id, g.grant_id);
  EXPECT_NE(revoked[0].detail.find("withdrawn-by-guardian"), std::string::npos);
  EXPECT_EQ(revoked[0].operator_ref, "op-wee-1");
  EXPECT_EQ(revoked[0].operator_signature.size(), 64u);
  EXPECT_TRUE(schema::DecodeConsentRevocation(revoked[0].operator_statement).ok());
  auto purged = Find(log, AuditEvent::kPurgeConfirmed);
  ASSERT_EQ(purged.size(), 1u);
  EXPECT_EQ(purged[0].actor, "seoul-counsel");
  EXPECT_EQ(purged[0].consent_grant_id, g.grant_id);
  EXPECT_EQ(purged[0].statement_sha256.size(), 32u);
  EXPECT_EQ(Find(log, AuditEvent::kEnvelopeRejected, NackReason::kConsentRevoked).size(), 2u);
}

TEST_F(BrokerConsentTest, PoliceTaskDeletionCenterDirectlyUnderStatutoryBasis) {
  schema::ConsentGrant g = WeeGrant();
  g.recorded_by = "seoul-police-03";
  g.basis = schema::LegalBasis::kPoliceDeletionRequest;
  g.legal_article = "Youth Sex Offense Act 38-2";
  g.consenters.clear();
  g.subject_assent = false;
  g.purposes = {Purpose::kDeletion, Purpose::kCounseling};
  g.categories = {DataCategory::kContentLocations, DataCategory::kDeletionStatus,
                  DataCategory::kIncidentSummary};
  g.allowed_agency_types = {AgencyType::kDeletionCenter, AgencyType::kSupportCenter};
  ExpectAck(Register("seoul-police-03", Sign(g)));
  Msg del;
  del.kind = MessageKind::kDeletionRequest;
  del.purpose = Purpose::kDeletion;
  del.categories = {DataCategory::kContentLocations};
  ExpectAck(
      Client("seoul-police-03").Submit(Seal("seoul-police-03", {"seoul-dsc"}, g.grant_id, del)));
  // A deletion request to the support center (no deletion role) is out of scope.
  ExpectNack(
      Client("seoul-police-03").Submit(Seal("seoul-police-03", {"seoul-support"}, g.grant_id, del)),
      NackReason::kConsentOutOfScope, "deletion role");
  // The deletion center reports status to the police and to the support center (status
  // only, allowed without onward sharing), but may not send content locations onward.
  Msg status;
  status.kind = MessageKind::kDeletionStatus;
  status.purpose = Purpose::kDeletion;
  status.categories = {DataCategory::kDeletionStatus};
  ExpectAck(
      Client("seoul-dsc")
          .Submit(Seal("seoul-dsc", {"seoul-police-03", "seoul-support"}, g.grant_id, status)));
  Msg onward = status;
  onward.categories = {DataCategory::kDeletionStatus, DataCategory::kContentLocations};
  ExpectNack(Client("seoul-dsc").Submit(Seal("seoul-dsc", {"seoul-support"}, g.grant_id, onward)),
             NackReason::kConsentOutOfScope, "onward");
}

}  // namespace
}  // namespace refbus::testing
