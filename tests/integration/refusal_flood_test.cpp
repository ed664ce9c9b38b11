// A listed agency that floods its broker with frames it knows will be refused, and a party
// revoked while connected that keeps sending (issue 17, item 2): a real refbus-broker, real
// CURVE clients, the real LMDB audit log read back after a clean stop. The peer gets a
// refusal for every frame; the audit log grows by a bounded number of entries that still
// account for every refusal (individual entries plus aggregates whose counts add up); the
// other agencies' submissions go through meanwhile.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "broker/store.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::AuditEvent;
using schema::Frame;
using schema::NackReason;

// What the audit log says about one actor's refusals.
struct RefusalTally {
  size_t entries = 0;                         // ENVELOPE_REJECTED entries
  size_t aggregates = 0;                      // of which aggregates (refusal_count set)
  std::map<NackReason, uint64_t> refusals;    // refusals covered, by reason
  std::map<NackReason, size_t> individual;    // entries of one refusal, by reason
  std::map<NackReason, uint64_t> aggregated;  // refusals in aggregates, by reason
};

class RefusalFloodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-flood-test");
    ASSERT_TRUE(
        fed_.Create(root_, {"seoul-broker"},
                    {{"seoul-wee-01", schema::AgencyType::kWeeCenter, "seoul-broker"},
                     {"seoul-police-03", schema::AgencyType::kPoliceUnit, "seoul-broker"},
                     {"seoul-counsel", schema::AgencyType::kCounselingCenter, "seoul-broker"}}));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", root_ + "/seoul-data");
  }
  void TearDown() override {
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  Bytes BrokerKey() const {
    return fed_.directory().Find("seoul-broker")->ActiveKeys()->transport_key;
  }
  const keys::Identity& Id(const std::string& party) {
    if (!ids_.count(party)) ids_.emplace(party, fed_.LoadIdentity(party));
    return ids_.at(party);
  }
  std::unique_ptr<RawClient> Connect(const std::string& party) {
    auto c = std::make_unique<RawClient>(Id(party), BrokerKey(), broker_->endpoint());
    EXPECT_TRUE(c->Hello(party)) << party << " got no Welcome; broker log:\n" << broker_->Log();
    return c;
  }
  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }
  // The directory serial the broker's status file reports (0 if there is none yet).
  uint64_t Serial() const {
    auto j = nlohmann::json::parse(broker_->StatusJson(), nullptr, false);
    return j.is_object() ? j.value("directory_serial", uint64_t{0}) : 0;
  }

  // Sends bodies in rounds of a few hundred (so that no queue on the way overflows) and
  // counts the Nacks that come back with the expected reason; any other reply fails.
  size_t SendAndCountNacks(RawClient& c, const std::vector<Bytes>& bodies, NackReason expected) {
    constexpr size_t kRound = 250;
    size_t nacks = 0;
    for (size_t i = 0; i < bodies.size(); i += kRound) {
      const size_t n = std::min(kRound, bodies.size() - i);
      for (size_t k = 0; k < n; ++k) c.SendRaw(bodies[i + k]);
      for (size_t k = 0; k < n; ++k) {
        auto r = c.Receive(Scaled(5000));
        if (!r) {
          ADD_FAILURE() << "no reply to frame " << i + k << "; broker log tail:\n"
                        << broker_->Log().substr(
                               broker_->Log().size() > 4000 ? broker_->Log().size() - 4000 : 0);
          return nacks;
        }
        if (r->type != Frame::Type::kNack || r->nack.reason != expected) {
          ADD_FAILURE() << "expected Nack " << schema::Name(expected) << ", got frame type "
                        << static_cast<int>(r->type) << " " << schema::Name(r->nack.reason);
          return nacks;
        }
        ++nacks;
      }
    }
    return nacks;
  }

  // A submission from the other agency still goes through.
  void ExpectOthersServed() {
    auto wee = Connect("seoul-wee-01");
    auto r = wee->Submit(SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now()));
    ASSERT_TRUE(r.has_value()) << "no reply to the other agency; broker log:\n" << broker_->Log();
    EXPECT_EQ(r->type, Frame::Type::kAck) << schema::Name(r->nack.reason) << ": " << r->nack.detail;
  }

  // Reads the stopped broker's audit log: the refusals of actor, and the log's size.
  RefusalTally Tally(const std::string& actor, uint64_t* size) {
    RefusalTally t;
    broker::StoreOptions o;
    o.dir = root_ + "/seoul-data";
    o.broker_id = "seoul-broker";
    auto store = broker::Store::Open(o);
    if (!store.ok()) {
      ADD_FAILURE() << "cannot open the broker's store: " << store.status().ToString();
      return t;
    }
    *size = *(*store)->AuditSize();
    for (uint64_t i = 0; i < *size; ++i) {
      auto e = schema::DecodeAuditEntry(*(*store)->AuditEntryBytes(i));
      if (!e.ok()) {
        ADD_FAILURE() << "entry " << i << ": " << e.status().ToString();
        continue;
      }
      if (e->event != AuditEvent::kEnvelopeRejected || e->actor != actor) continue;
      ++t.entries;
      t.refusals[e->reason] += e->Refusals();
      if (e->refusal_count == 0) {
        ++t.individual[e->reason];
      } else {
        ++t.aggregates;
        t.aggregated[e->reason] += e->refusal_count;
        EXPECT_LE(e->first_refused_ms, e->last_refused_ms);
        EXPECT_GT(e->first_refused_ms, 0u);
      }
    }
    return t;
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::map<std::string, keys::Identity> ids_;
};

// Garbage frames (the first byte is a protobuf tag of wire type 7, which does not exist:
// the frame can never decode) of 200 bytes, as in the measurement.
std::vector<Bytes> Malformed(size_t n) {
  std::vector<Bytes> out;
  for (size_t i = 0; i < n; ++i) {
    Bytes b = keys::RandomBytes(200);
    b[0] = 0x07;
    out.push_back(std::move(b));
  }
  return out;
}

// Submit frames carrying envelope (another agency's: refused sender-mismatch; a bad
// signature on the sender's own session is its recipient's to refuse since issue 21).
std::vector<Bytes> OthersEnvelopes(const Bytes& envelope, size_t n) {
  std::vector<Bytes> out;
  for (size_t i = 0; i < n; ++i) {
    Frame f;
    f.type = Frame::Type::kSubmit;
    f.request_id = 100000 + i;
    f.submit.envelope = envelope;
    out.push_back(schema::EncodeFrame(f));
  }
  return out;
}

Bytes SubmitFrame(const Bytes& envelope, uint64_t request_id) {
  Frame f;
  f.type = Frame::Type::kSubmit;
  f.request_id = request_id;
  f.submit.envelope = envelope;
  return schema::EncodeFrame(f);
}

TEST_F(RefusalFloodTest, AListedAgencysFloodLeavesABoundedAuditTrailThatCountsEveryRefusal) {
  constexpr size_t kEach = 5000;
  ASSERT_TRUE(broker_->Start());
  auto police = Connect("seoul-police-03");
  Bytes env = SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now());
  EXPECT_EQ(SendAndCountNacks(*police, Malformed(kEach), NackReason::kMalformed), kEach);
  EXPECT_EQ(SendAndCountNacks(*police, OthersEnvelopes(env, kEach), NackReason::kSenderMismatch),
            kEach);
  ExpectOthersServed();
  ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();

  uint64_t size = 0;
  RefusalTally t = Tally("seoul-police-03", &size);
  // Every refusal is accounted for, individually or in an aggregate...
  EXPECT_EQ(t.refusals[NackReason::kMalformed], kEach);
  EXPECT_EQ(t.refusals[NackReason::kSenderMismatch], kEach);
  // ...by a bounded number of entries: the default of 10 individual entries per reason and
  // window, and one aggregate per reason (the test takes less than the one-minute window).
  EXPECT_LE(t.entries, 40u) << "the flood wrote " << t.entries << " audit entries";
  EXPECT_LE(size, 100u) << "audit log size";
  EXPECT_GE(t.individual[NackReason::kMalformed], 1u) << "the first refusals are on record";
  EXPECT_GE(t.individual[NackReason::kSenderMismatch], 1u);
  EXPECT_GE(t.aggregates, 2u);
  EXPECT_EQ(t.individual[NackReason::kMalformed] + t.aggregated[NackReason::kMalformed], kEach);
}

TEST_F(RefusalFloodTest, TheAllowanceIsConfigurable) {
  broker_->set_limits("refusals_audited_per_minute = 3");
  ASSERT_TRUE(broker_->Start());
  auto police = Connect("seoul-police-03");
  EXPECT_EQ(SendAndCountNacks(*police, Malformed(50), NackReason::kMalformed), 50u);
  ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();
  uint64_t size = 0;
  RefusalTally t = Tally("seoul-police-03", &size);
  EXPECT_EQ(t.individual[NackReason::kMalformed], 3u);
  EXPECT_EQ(t.aggregated[NackReason::kMalformed], 47u);
  EXPECT_EQ(t.aggregates, 1u);
}

TEST_F(RefusalFloodTest, RefusalsInTheCommitAreBoundedToo) {
  // The police unit's share of the (offline) counseling center's mailbox is 5 envelopes;
  // then it resubmits one validly signed envelope over and over: each is refused in the
  // commit (QUOTA_EXCEEDED), where a cheap frame check cannot see it coming.
  constexpr size_t kFlood = 1500;
  broker_->set_limits("mailbox_quota = 10\nsender_quota = 5");
  ASSERT_TRUE(broker_->Start());
  auto police = Connect("seoul-police-03");
  const auto& dir = fed_.directory();
  for (int i = 0; i < 5; ++i) {
    auto r = police->Submit(SealTo(Id("seoul-police-03"), dir, {"seoul-counsel"}, Now()));
    ASSERT_TRUE(r && r->type == Frame::Type::kAck) << broker_->Log();
  }
  Bytes env = SealTo(Id("seoul-police-03"), dir, {"seoul-counsel"}, Now());
  // One at a time first (each refusal is counted before the next is admitted), then a flood.
  for (int i = 0; i < 20; ++i) {
    auto r = police->Submit(env);
    ASSERT_TRUE(r && r->type == Frame::Type::kNack) << broker_->Log();
    EXPECT_EQ(r->nack.reason, NackReason::kQuotaExceeded);
    EXPECT_GT(r->nack.retry_after_ms, 0u);
  }
  std::vector<Bytes> frames;
  for (size_t i = 0; i < kFlood; ++i) frames.push_back(SubmitFrame(env, 5000 + i));
  EXPECT_EQ(SendAndCountNacks(*police, frames, NackReason::kQuotaExceeded), kFlood);
  ExpectOthersServed();
  ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();

  uint64_t size = 0;
  RefusalTally t = Tally("seoul-police-03", &size);
  EXPECT_EQ(t.refusals[NackReason::kQuotaExceeded], kFlood + 20);
  EXPECT_EQ(t.individual[NackReason::kQuotaExceeded], 10u);
  EXPECT_EQ(t.aggregated[NackReason::kQuotaExceeded], kFlood + 10);
}

// Refused consent grants past the allowance: the refusal is only counted, and nothing of
// it may be written into another entry or reply (the grant path completed "the last audit
// entry" after the refusal, which past the allowance was some other entry, or none).
TEST_F(RefusalFloodTest, RefusedGrantsPastTheAllowanceAreCountedAndTouchNoOtherEntry) {
  constexpr size_t kFlood = 300;
  ASSERT_TRUE(broker_->Start());
  auto police = Connect("seoul-police-03");
  // A well-formed grant the Wee center signed, registered by the police unit.
  schema::ConsentGrant g;
  g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
  g.case_ref = "case-flood-1";
  g.recorded_by = "seoul-wee-01";
  g.basis = schema::LegalBasis::kConsentLegalRepresentative;
  g.legal_article = "PIPA 22-2";
  g.consenters = {schema::Consenter::kGuardian};
  g.purposes = {schema::Purpose::kCounseling};
  g.categories = {schema::DataCategory::kIdentity};
  g.allowed_agency_types = {schema::AgencyType::kCounselingCenter};
  g.issued_at_ms = Now() - 1000;
  g.expires_at_ms = Now() + kMillisPerDay;
  g.retention_until_ms = Now() + 30 * kMillisPerDay;
  auto signed_grant = keys::SignConsentGrant(Id("seoul-wee-01"), g);
  ASSERT_TRUE(signed_grant.ok()) << signed_grant.status().ToString();
  std::vector<Bytes> frames;
  for (size_t i = 0; i < kFlood; ++i) {
    Frame f;
    f.type = Frame::Type::kGrantRegister;
    f.request_id = 7000 + i;
    f.grant_register.signed_grant = schema::EncodeSignedConsentGrant(*signed_grant);
    frames.push_back(schema::EncodeFrame(f));
  }
  EXPECT_EQ(SendAndCountNacks(*police, frames, NackReason::kSenderMismatch), kFlood);
  ExpectOthersServed();
  ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();

  uint64_t size = 0;
  RefusalTally t = Tally("seoul-police-03", &size);
  EXPECT_EQ(t.refusals[NackReason::kSenderMismatch], kFlood);
  EXPECT_EQ(t.individual[NackReason::kSenderMismatch], 10u);
  // No entry of another actor or event carries the refused grant's id.
  broker::StoreOptions o;
  o.dir = root_ + "/seoul-data";
  o.broker_id = "seoul-broker";
  auto store = broker::Store::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (uint64_t i = 0; i < size; ++i) {
    auto e = schema::DecodeAuditEntry(*(*store)->AuditEntryBytes(i));
    ASSERT_TRUE(e.ok());
    if (e->consent_grant_id != g.grant_id) continue;
    EXPECT_EQ(e->actor, "seoul-police-03") << "entry " << i << " of another actor names the grant";
    EXPECT_EQ(e->event, AuditEvent::kEnvelopeRejected) << "entry " << i;
    EXPECT_EQ(e->refusal_count, 0u) << "an aggregate entry took the grant's id";
  }
}

TEST_F(RefusalFloodTest, APartyRevokedWhileConnectedIsRefusedWithoutAnEntryPerFrame) {
  constexpr size_t kFrames = 2000;
  ASSERT_TRUE(broker_->Start());
  auto police = Connect("seoul-police-03");
  // Sealed while the police unit was listed: validly signed, costly to check.
  Bytes env = SealTo(Id("seoul-police-03"), fed_.directory(), {"seoul-counsel"}, Now());
  keys::DirectoryEdit edit;
  edit.revoke = {"seoul-police-03"};
  ASSERT_TRUE(fed_.Reissue(edit));
  // The broker reloads on the file's change (its timer runs every half second).
  for (int i = 0; i < 100 && Serial() != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(Scaled(100)));
  }
  ASSERT_EQ(Serial(), 2u) << broker_->StatusJson();
  std::vector<Bytes> frames;
  for (size_t i = 0; i < kFrames; ++i) frames.push_back(SubmitFrame(env, 1000 + i));
  EXPECT_EQ(SendAndCountNacks(*police, frames, NackReason::kUnknownSenderKey), kFrames);
  ExpectOthersServed();
  ASSERT_EQ(broker_->Stop(), 0) << broker_->Log();

  uint64_t size = 0;
  RefusalTally t = Tally("seoul-police-03", &size);
  EXPECT_EQ(t.refusals[NackReason::kUnknownSenderKey], kFrames);
  // The revocation is on record (KEY_REVOKED); what the cut-off party sends after it is
  // counted in aggregates only.
  EXPECT_EQ(t.individual[NackReason::kUnknownSenderKey], 0u);
  EXPECT_LE(t.entries, 2u) << "the revoked party's frames wrote " << t.entries << " entries";
  EXPECT_NE(broker_->Log().find("is revoked by directory serial 2"), std::string::npos);
}

}  // namespace
}  // namespace refbus::testing
