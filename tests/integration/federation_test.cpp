// Federation: three real refbus-broker processes (Seoul, Busan, Central) on loopback, linked
// over CURVE, relaying envelopes for agencies homed at each other; the raw client plays the
// agencies (and, to forge, a peer broker). schema/PROTOCOL.md section 12.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <zmq_addon.hpp>

#include "broker/store.h"
#include "core/zmq.h"
#include "keys/ceremony.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "keys/envelope.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::Frame;
using schema::NackReason;

const std::vector<std::string> kBrokers = {"seoul-broker", "busan-broker", "central-broker"};

class FederationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-federation-test");
    ASSERT_TRUE(fed_.Create(
        root_, kBrokers,
        {{"seoul-wee-01", schema::AgencyType::kWeeCenter, "seoul-broker"},
         {"seoul-counsel", schema::AgencyType::kCounselingCenter, "seoul-broker"},
         {"busan-counsel", schema::AgencyType::kCounselingCenter, "busan-broker"},
         {"busan-police", schema::AgencyType::kPoliceUnit, "busan-broker"},
         {"central-dsc", schema::AgencyType::kDeletionCenter, "central-broker"},
         {"central-counsel", schema::AgencyType::kCounselingCenter, "central-broker"}}));
    for (const auto& b : kBrokers) {
      brokers_[b] = std::make_unique<Broker>(fed_, b, root_ + "/" + b + "-data");
    }
    for (const auto& b : kBrokers) {
      std::string extra = "[federation]\nlink_timeout_ms = 1500\nendpoint_files = { ";
      bool first = true;
      for (const auto& other : kBrokers) {
        if (other == b) continue;
        extra += std::string(first ? "" : ", ") + other + " = \"" +
                 brokers_[other]->endpoint_file() + "\"";
        first = false;
      }
      extra += " }\n";
      brokers_[b]->set_extra(extra);
      brokers_[b]->set_limits("redelivery_ms = 2000");
    }
  }
  void TearDown() override {
    brokers_.clear();
    if (!HasFailure()) RemoveTree(root_);
  }

  bool StartAll() {
    for (const auto& b : kBrokers) {
      if (!brokers_[b]->Start()) return false;
    }
    return true;
  }
  Broker& B(const std::string& id) { return *brokers_.at(id); }
  Bytes KeyOf(const std::string& broker) const {
    return fed_.directory().Find(broker)->ActiveKeys()->transport_key;
  }
  const keys::Identity& Id(const std::string& party) {
    if (!ids_.count(party)) ids_.emplace(party, fed_.LoadIdentity(party));
    return ids_.at(party);
  }
  // An agency (or a party acting as one) connected to a broker, after Hello/Welcome.
  std::unique_ptr<RawClient> Connect(const std::string& party, const std::string& broker) {
    auto c = std::make_unique<RawClient>(Id(party), KeyOf(broker), B(broker).endpoint());
    EXPECT_TRUE(c->Hello(party)) << party << " got no Welcome from " << broker;
    return c;
  }
  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }

  // Receives deliveries until want distinct envelopes arrived (acking each), or timeout.
  std::vector<Bytes> ReceiveAll(RawClient& c, size_t want, int timeout_ms) {
    std::vector<Bytes> got;
    std::set<Bytes> ids;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
      auto d = c.Receive(200);
      if (!d || d->type != Frame::Type::kDeliver) continue;
      auto env = schema::DecodeEnvelope(d->deliver.envelope);
      EXPECT_TRUE(env.ok());
      if (!env.ok()) continue;
      Frame ack;
      ack.type = Frame::Type::kAck;
      ack.request_id = d->request_id;
      ack.ack.message_id = env->header.message_id;
      c.SendFrame(ack);
      if (ids.insert(env->header.message_id).second) got.push_back(d->deliver.envelope);
    }
    return got;
  }

  // The broker's audit log, decoded (the broker must be stopped).
  std::vector<schema::AuditEntry> AuditOf(const std::string& broker) {
    broker::StoreOptions o;
    o.dir = root_ + "/" + broker + "-data";
    o.broker_id = broker;
    o.map_size_bytes = size_t{64} << 20;
    auto s = broker::Store::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    std::vector<schema::AuditEntry> out;
    if (!s.ok()) return out;
    uint64_t n = *(*s)->AuditSize();
    for (uint64_t i = 0; i < n; ++i) {
      auto e = schema::DecodeAuditEntry(*(*s)->AuditEntryBytes(i));
      EXPECT_TRUE(e.ok());
      if (e.ok()) out.push_back(std::move(*e));
    }
    return out;
  }

  // Seoul's Wee center's grant: guardian consent, counseling, to counseling centers.
  schema::ConsentGrant WeeGrant() {
    schema::ConsentGrant g;
    g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
    g.case_ref = "case-fed-0001";
    g.recorded_by = "seoul-wee-01";
    g.basis = schema::LegalBasis::kConsentLegalRepresentative;
    g.consenters = {schema::Consenter::kGuardian};
    g.purposes = {schema::Purpose::kCounseling};
    g.categories = {schema::DataCategory::kIdentity, schema::DataCategory::kIncidentSummary};
    g.allowed_agency_types = {schema::AgencyType::kCounselingCenter};
    g.issued_at_ms = Now() - 1000;
    g.expires_at_ms = Now() + kMillisPerDay;
    g.retention_until_ms = Now() + 30 * kMillisPerDay;
    return g;
  }
  Bytes SignGrant(const schema::ConsentGrant& g) {
    auto s = keys::SignConsentGrant(Id(g.recorded_by), g);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? schema::EncodeSignedConsentGrant(*s) : Bytes();
  }
  // A control frame (GrantRegister, GrantRevoke) and its Ack or Nack.
  std::optional<Frame> Control(RawClient& c, Frame f) {
    f.request_id = ++control_id_;
    c.SendFrame(f);
    for (int i = 0; i < 50; ++i) {
      auto r = c.Receive(200);
      if (r && r->request_id == f.request_id) return r;
    }
    return std::nullopt;
  }
  Bytes SealUnder(const std::string& from, const std::string& to, schema::MessageKind kind,
                  const schema::ConsentGrant& g, std::vector<schema::DataCategory> categories) {
    keys::SealRequest req;
    req.kind = kind;
    req.case_ref = g.case_ref;
    req.consent_grant_id = g.grant_id;
    req.purpose = schema::Purpose::kCounseling;
    req.categories = std::move(categories);
    req.now = Now();
    req.lifetime_ms = kMillisPerDay;
    auto p = keys::CurrentPrekey(fed_.directory(), to, req.now);
    EXPECT_TRUE(p.ok());
    if (p.ok()) req.recipients.push_back(*p);
    auto env = keys::SealEnvelope(Id(from), req, AsBytes("case data"));
    EXPECT_TRUE(env.ok()) << env.status().ToString();
    return env.ok() ? *env : Bytes();
  }

  // Polls a broker's status until pred holds for the link to peer (or timeout).
  bool WaitLink(const std::string& broker, const std::string& peer, int timeout_ms,
                const std::function<bool(const nlohmann::json&)>& pred, std::string* last) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      *last = B(broker).StatusJson();
      auto j = nlohmann::json::parse(*last, nullptr, false);
      if (!j.is_discarded() && j.contains("links")) {
        for (const auto& l : j["links"]) {
          if (l.value("peer", "") == peer && pred(l)) return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  std::string root_;
  Federation fed_;
  std::map<std::string, std::unique_ptr<Broker>> brokers_;
  std::map<std::string, keys::Identity> ids_;
  uint64_t control_id_ = 90000;
};

size_t Count(const std::vector<schema::AuditEntry>& log, schema::AuditEvent ev,
             const std::string& actor, const Bytes& message_id) {
  size_t n = 0;
  for (const auto& e : log) {
    if (e.event == ev && e.actor == actor && (message_id.empty() || e.message_id == message_id)) {
      ++n;
    }
  }
  return n;
}

Bytes MessageId(const Bytes& envelope) {
  auto e = schema::DecodeEnvelope(envelope);
  return e.ok() ? e->header.message_id : Bytes();
}

TEST_F(FederationTest, CrossRegionDeliveryAcrossThreeBrokers) {
  ASSERT_TRUE(StartAll());
  auto wee = Connect("seoul-wee-01", "seoul-broker");
  auto busan = Connect("busan-counsel", "busan-broker");
  auto central = Connect("central-dsc", "central-broker");
  auto counsel = Connect("seoul-counsel", "seoul-broker");
  const auto& dir = fed_.directory();

  // One envelope for recipients in three regions (local, Busan, Central), and a stream of
  // 20 to Busan only, whose order must hold across the hop.
  Bytes multi =
      SealTo(Id("seoul-wee-01"), dir, {"seoul-counsel", "busan-counsel", "central-dsc"}, Now());
  auto r = wee->Submit(multi);
  ASSERT_TRUE(r && r->type == Frame::Type::kAck) << B("seoul-broker").Log();
  std::vector<Bytes> stream;
  for (int i = 0; i < 20; ++i) {
    stream.push_back(SealTo(Id("seoul-wee-01"), dir, {"busan-counsel"}, Now()));
    auto a = wee->Submit(stream.back());
    ASSERT_TRUE(a && a->type == Frame::Type::kAck);
  }
  auto at_counsel = ReceiveAll(*counsel, 1, 10000);
  ASSERT_EQ(at_counsel.size(), 1u);
  EXPECT_EQ(at_counsel[0], multi) << "bytes relayed as sealed";
  auto at_central = ReceiveAll(*central, 1, 10000);
  ASSERT_EQ(at_central.size(), 1u) << B("central-broker").Log() << B("seoul-broker").Log();
  EXPECT_EQ(at_central[0], multi);
  auto at_busan = ReceiveAll(*busan, 21, 15000);
  ASSERT_EQ(at_busan.size(), 21u) << B("busan-broker").Log() << B("seoul-broker").Log();
  EXPECT_EQ(at_busan[0], multi);
  for (size_t i = 0; i < stream.size(); ++i) {
    EXPECT_EQ(at_busan[i + 1], stream[i]) << "out of order at " << i;
  }
  // Each recipient can open what it got: end-to-end, the brokers only relayed.
  auto opened = keys::OpenEnvelope(Id("central-dsc"), at_central[0], dir, Now());
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();

  // The way back: Busan to Seoul.
  Bytes back = SealTo(Id("busan-counsel"), dir, {"seoul-wee-01"}, Now());
  auto b = busan->Submit(back);
  ASSERT_TRUE(b && b->type == Frame::Type::kAck);
  auto at_wee = ReceiveAll(*wee, 1, 10000);
  ASSERT_EQ(at_wee.size(), 1u);
  EXPECT_EQ(at_wee[0], back);

  // Per-peer status: links up, nothing queued once the peers acked.
  std::string last;
  EXPECT_TRUE(WaitLink(
      "seoul-broker", "busan-broker", 5000,
      [](const nlohmann::json& l) {
        return l.value("state", "") == "up" && l.value("backlog", 1) == 0 &&
               l.value("forwarded", 0) >= 21;
      },
      &last))
      << last;
  EXPECT_TRUE(WaitLink(
      "seoul-broker", "central-broker", 5000,
      [](const nlohmann::json& l) { return l.value("state", "") == "up"; }, &last))
      << last;

  for (const auto& id : kBrokers) EXPECT_EQ(B(id).Stop(), 0) << id;
  // The audit trail across brokers: Seoul accepted and forwarded (to each peer once), Busan
  // and Central accepted from Seoul (the relaying broker is the actor) and saw the acks.
  auto seoul = AuditOf("seoul-broker");
  const Bytes mid = MessageId(multi);
  EXPECT_EQ(Count(seoul, schema::AuditEvent::kEnvelopeAccepted, "seoul-wee-01", mid), 1u);
  EXPECT_EQ(Count(seoul, schema::AuditEvent::kEnvelopeForwarded, "busan-broker", mid), 1u);
  EXPECT_EQ(Count(seoul, schema::AuditEvent::kEnvelopeForwarded, "central-broker", mid), 1u);
  EXPECT_EQ(Count(seoul, schema::AuditEvent::kEnvelopeAcked, "seoul-counsel", mid), 1u);
  auto busan_log = AuditOf("busan-broker");
  EXPECT_EQ(Count(busan_log, schema::AuditEvent::kEnvelopeAccepted, "seoul-broker", mid), 1u);
  EXPECT_EQ(Count(busan_log, schema::AuditEvent::kEnvelopeAcked, "busan-counsel", mid), 1u);
  EXPECT_EQ(
      Count(busan_log, schema::AuditEvent::kEnvelopeAccepted, "busan-counsel", MessageId(back)),
      1u);
  auto central_log = AuditOf("central-broker");
  EXPECT_EQ(Count(central_log, schema::AuditEvent::kEnvelopeAccepted, "seoul-broker", mid), 1u);
  for (const auto& e : central_log) {
    if (e.event == schema::AuditEvent::kEnvelopeAccepted && e.message_id == mid) {
      EXPECT_NE(e.detail.find("relayed by broker seoul-broker"), std::string::npos) << e.detail;
    }
  }
}

TEST_F(FederationTest, LinkDownQueuesLocalDeliveryGoesOnThenDrainsInOrder) {
  ASSERT_TRUE(StartAll());
  auto wee = Connect("seoul-wee-01", "seoul-broker");
  auto counsel = Connect("seoul-counsel", "seoul-broker");
  const auto& dir = fed_.directory();
  // Busan goes away; Seoul keeps accepting for Busan (queued on its disk) and delivering
  // locally.
  ASSERT_EQ(B("busan-broker").Stop(), 0);
  std::vector<Bytes> queued;
  for (int i = 0; i < 50; ++i) {
    queued.push_back(SealTo(Id("seoul-wee-01"), dir, {"busan-counsel"}, Now()));
    auto a = wee->Submit(queued.back());
    ASSERT_TRUE(a && a->type == Frame::Type::kAck);
  }
  Bytes local = SealTo(Id("seoul-wee-01"), dir, {"seoul-counsel"}, Now());
  auto lr = wee->Submit(local);
  ASSERT_TRUE(lr && lr->type == Frame::Type::kAck);
  auto at_counsel = ReceiveAll(*counsel, 1, 5000);
  ASSERT_EQ(at_counsel.size(), 1u) << "local delivery must not wait for a peer";
  std::string last;
  EXPECT_TRUE(WaitLink(
      "seoul-broker", "busan-broker", 8000,
      [](const nlohmann::json& l) {
        return l.value("state", "") != "up" && l.value("backlog", 0) == 50 &&
               l.value("oldest_queued_ms", 0) > 0;
      },
      &last))
      << last;
  EXPECT_NE(B("seoul-broker").Log().find("federation link to busan-broker"), std::string::npos);

  // Busan returns (same data, new port: Seoul reads the endpoint file at each connect).
  ASSERT_TRUE(B("busan-broker").Start());
  auto busan = Connect("busan-counsel", "busan-broker");
  auto got = ReceiveAll(*busan, 50, 20000);
  ASSERT_EQ(got.size(), 50u) << B("seoul-broker").Log();
  for (size_t i = 0; i < queued.size(); ++i) EXPECT_EQ(got[i], queued[i]) << "order at " << i;
  EXPECT_TRUE(WaitLink(
      "seoul-broker", "busan-broker", 5000,
      [](const nlohmann::json& l) {
        return l.value("state", "") == "up" && l.value("backlog", 1) == 0;
      },
      &last))
      << last;
  // Nothing twice: no more deliveries come.
  EXPECT_TRUE(ReceiveAll(*busan, 1, 1500).empty());
}

TEST_F(FederationTest, ForgedAndMalformedRelaysAreRefusedAuditedAndDoNotStallTheLink) {
  // Only Seoul runs; the test holds Busan's broker keys and speaks for it (a compromised or
  // buggy peer broker).
  ASSERT_TRUE(B("seoul-broker").Start());
  auto wee = Connect("seoul-wee-01", "seoul-broker");
  auto as_busan = Connect("busan-broker", "seoul-broker");
  const auto& dir = fed_.directory();
  uint64_t rid = 1000;
  auto reply = [&](uint64_t id) {
    for (int i = 0; i < 50; ++i) {
      auto f = as_busan->Receive(200);
      if (f && f->request_id == id) return f;
    }
    return std::optional<Frame>();
  };
  auto send = [&](Bytes envelope, uint32_t hops, std::vector<std::string> for_recipients) {
    Frame f;
    f.type = Frame::Type::kRelay;
    f.request_id = ++rid;
    f.relay.envelope = std::move(envelope);
    f.relay.hops = hops;
    f.relay.for_recipients = std::move(for_recipients);
    as_busan->SendFrame(f);
    return rid;
  };

  Bytes good1 = SealTo(Id("busan-counsel"), dir, {"seoul-wee-01"}, Now());
  Bytes good2 = SealTo(Id("busan-police"), dir, {"seoul-wee-01"}, Now());
  // Forged: one ciphertext byte changed after signing.
  Bytes forged = SealTo(Id("busan-counsel"), dir, {"seoul-wee-01"}, Now());
  {
    auto e = schema::DecodeEnvelope(forged);
    ASSERT_TRUE(e.ok());
    e->ciphertext[10] ^= 1;
    forged = schema::EncodeEnvelope(*e);
  }
  // Signed by Central's agency but claimed by Busan as first broker.
  Bytes wrong_home = SealTo(Id("central-dsc"), dir, {"seoul-wee-01"}, Now());
  // A recipient the envelope does not name.
  Bytes other = SealTo(Id("busan-counsel"), dir, {"seoul-wee-01"}, Now());

  uint64_t r_forged = send(forged, 0, {"seoul-wee-01"});
  uint64_t r_good1 = send(good1, 0, {"seoul-wee-01"});
  uint64_t r_wrong = send(wrong_home, 0, {"seoul-wee-01"});
  uint64_t r_garbage = send(Bytes(300, 0x5a), 0, {"seoul-wee-01"});
  uint64_t r_other = send(other, 0, {"seoul-counsel"});
  uint64_t r_good2 = send(good2, 0, {"seoul-wee-01"});

  auto expect_nack = [&](uint64_t id, NackReason reason) {
    auto f = reply(id);
    ASSERT_TRUE(f.has_value()) << "no reply to relay " << id << "\n" << B("seoul-broker").Log();
    ASSERT_EQ(f->type, Frame::Type::kNack) << "relay " << id;
    EXPECT_EQ(f->nack.reason, reason) << schema::Name(f->nack.reason) << ": " << f->nack.detail;
  };
  auto expect_ack = [&](uint64_t id) {
    auto f = reply(id);
    ASSERT_TRUE(f.has_value()) << "no reply to relay " << id;
    EXPECT_EQ(f->type, Frame::Type::kAck) << schema::Name(f->nack.reason) << ": " << f->nack.detail;
  };
  expect_nack(r_forged, NackReason::kBadSignature);
  expect_ack(r_good1);
  expect_nack(r_wrong, NackReason::kSenderMismatch);
  expect_nack(r_garbage, NackReason::kMalformed);
  expect_nack(r_other, NackReason::kMalformed);
  expect_ack(r_good2);

  // An agency may not relay.
  auto counsel_as_relay = Connect("seoul-counsel", "seoul-broker");
  {
    Frame f;
    f.type = Frame::Type::kRelay;
    f.request_id = 7;
    f.relay.envelope = good1;
    f.relay.for_recipients = {"seoul-wee-01"};
    counsel_as_relay->SendFrame(f);
    auto n = counsel_as_relay->Expect(Frame::Type::kNack, 7, 3000);
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(n->nack.reason, NackReason::kNotPermitted);
  }

  // The agency gets exactly the two sound envelopes.
  auto got = ReceiveAll(*wee, 3, 4000);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], good1);
  EXPECT_EQ(got[1], good2);

  ASSERT_EQ(B("seoul-broker").Stop(), 0);
  auto log = AuditOf("seoul-broker");
  size_t rejected_from_busan = 0;
  for (const auto& e : log) {
    if (e.event == schema::AuditEvent::kEnvelopeRejected && e.actor == "busan-broker") {
      ++rejected_from_busan;
      EXPECT_NE(e.detail.find("relayed by broker busan-broker"), std::string::npos) << e.detail;
    }
  }
  EXPECT_EQ(rejected_from_busan, 4u);
  EXPECT_EQ(Count(log, schema::AuditEvent::kEnvelopeRejected, "seoul-counsel", {}), 1u);
  EXPECT_EQ(Count(log, schema::AuditEvent::kEnvelopeAccepted, "busan-broker", MessageId(good1)),
            1u);
}

TEST_F(FederationTest, ConsentTravelsWithTheEnvelopeAndIsCheckedAgainAtTheNextBroker) {
  ASSERT_TRUE(StartAll());
  const auto& dir = fed_.directory();
  // Seoul's Wee center records a grant for counseling centers and registers it at home.
  schema::ConsentGrant g;
  g.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
  g.case_ref = "case-fed-0001";
  g.recorded_by = "seoul-wee-01";
  g.basis = schema::LegalBasis::kConsentLegalRepresentative;
  g.consenters = {schema::Consenter::kGuardian};
  g.purposes = {schema::Purpose::kCounseling};
  g.categories = {schema::DataCategory::kIdentity, schema::DataCategory::kIncidentSummary};
  g.allowed_agency_types = {schema::AgencyType::kCounselingCenter};
  g.issued_at_ms = Now() - 1000;
  g.expires_at_ms = Now() + kMillisPerDay;
  g.retention_until_ms = Now() + 30 * kMillisPerDay;
  auto signed_grant = keys::SignConsentGrant(Id("seoul-wee-01"), g);
  ASSERT_TRUE(signed_grant.ok()) << signed_grant.status().ToString();
  const Bytes grant_bytes = schema::EncodeSignedConsentGrant(*signed_grant);
  auto wee = Connect("seoul-wee-01", "seoul-broker");
  {
    Frame f;
    f.type = Frame::Type::kGrantRegister;
    f.request_id = 500;
    f.grant_register.signed_grant = grant_bytes;
    wee->SendFrame(f);
    auto a = wee->Expect(Frame::Type::kAck, 500, 5000);
    ASSERT_TRUE(a.has_value()) << B("seoul-broker").Log();
  }
  auto seal = [&](const std::string& to, schema::MessageKind kind, ByteView grant_id) {
    keys::SealRequest req;
    req.kind = kind;
    req.case_ref = g.case_ref;
    req.consent_grant_id.assign(grant_id.begin(), grant_id.end());
    req.purpose = schema::Purpose::kCounseling;
    req.categories = {schema::DataCategory::kIdentity};
    req.now = Now();
    req.lifetime_ms = kMillisPerDay;
    auto p = keys::CurrentPrekey(dir, to, req.now);
    EXPECT_TRUE(p.ok());
    if (p.ok()) req.recipients.push_back(*p);
    auto env = keys::SealEnvelope(Id("seoul-wee-01"), req, AsBytes("referral"));
    EXPECT_TRUE(env.ok());
    return env.ok() ? *env : Bytes();
  };
  // In scope, to Busan's counseling center: relayed with its grant, registered at Busan.
  Bytes referral = seal("busan-counsel", schema::MessageKind::kReferral, g.grant_id);
  auto r = wee->Submit(referral);
  ASSERT_TRUE(r && r->type == Frame::Type::kAck)
      << schema::Name(r->nack.reason) << ": " << r->nack.detail;
  auto busan = Connect("busan-counsel", "busan-broker");
  auto got = ReceiveAll(*busan, 1, 10000);
  ASSERT_EQ(got.size(), 1u) << B("busan-broker").Log();
  EXPECT_EQ(got[0], referral);
  // Out of scope (a police unit is not a counseling center): Seoul refuses it at once.
  auto police = wee->Submit(seal("busan-police", schema::MessageKind::kReferral, g.grant_id));
  ASSERT_TRUE(police && police->type == Frame::Type::kNack);
  EXPECT_EQ(police->nack.reason, NackReason::kConsentOutOfScope);
  ASSERT_EQ(B("seoul-broker").Stop(), 0);

  // A Seoul broker gone rogue (the test, with its keys) relays the same out-of-scope envelope
  // to Busan: Busan checks the grant itself and refuses; and without the grant, or with a
  // grant its recorder did not sign, too.
  auto rogue = Connect("seoul-broker", "busan-broker");
  auto relay = [&](Bytes env, Bytes grant, uint64_t id) {
    Frame f;
    f.type = Frame::Type::kRelay;
    f.request_id = id;
    f.relay.envelope = std::move(env);
    f.relay.signed_grant = std::move(grant);
    f.relay.for_recipients = {"busan-police"};
    rogue->SendFrame(f);
    for (int i = 0; i < 50; ++i) {
      auto reply = rogue->Receive(200);
      if (reply && reply->request_id == id) return reply;
    }
    return std::optional<Frame>();
  };
  auto out_of_scope =
      relay(seal("busan-police", schema::MessageKind::kReferral, g.grant_id), grant_bytes, 1);
  ASSERT_TRUE(out_of_scope && out_of_scope->type == Frame::Type::kNack);
  EXPECT_EQ(out_of_scope->nack.reason, NackReason::kConsentOutOfScope) << out_of_scope->nack.detail;
  auto no_grant =
      relay(seal("busan-police", schema::MessageKind::kReferral, g.grant_id), Bytes(), 2);
  ASSERT_TRUE(no_grant && no_grant->type == Frame::Type::kNack);
  EXPECT_EQ(no_grant->nack.reason, NackReason::kConsentOutOfScope);
  schema::ConsentGrant wide = g;
  wide.grant_id = keys::RandomBytes(schema::kGrantIdBytes);
  wide.allowed_agency_types.push_back(schema::AgencyType::kPoliceUnit);
  // A wider grant the recorder never signed: a signature that does not verify.
  auto forged_grant = keys::SignConsentGrant(Id("seoul-wee-01"), wide);
  ASSERT_TRUE(forged_grant.ok());
  forged_grant->signature[5] ^= 1;
  auto forged = relay(seal("busan-police", schema::MessageKind::kReferral, wide.grant_id),
                      schema::EncodeSignedConsentGrant(*forged_grant), 3);
  ASSERT_TRUE(forged && forged->type == Frame::Type::kNack);
  EXPECT_EQ(forged->nack.reason, NackReason::kBadSignature) << forged->nack.detail;
  auto police_client = Connect("busan-police", "busan-broker");
  EXPECT_TRUE(ReceiveAll(*police_client, 1, 1500).empty());

  for (const auto& id : {"busan-broker", "central-broker"}) EXPECT_EQ(B(id).Stop(), 0) << id;
  auto log = AuditOf("busan-broker");
  size_t granted = 0;
  for (const auto& e : log) {
    if (e.event == schema::AuditEvent::kConsentGranted && e.consent_grant_id == g.grant_id) {
      ++granted;
      EXPECT_EQ(e.actor, "seoul-broker");
      EXPECT_EQ(e.sender_id, "seoul-wee-01");
    }
  }
  EXPECT_EQ(granted, 1u) << "the grant is registered once at the next broker";
  EXPECT_EQ(Count(log, schema::AuditEvent::kEnvelopeRejected, "seoul-broker", {}), 3u);
}

TEST_F(FederationTest, AWatchListRelayedForAnAgencyWithoutTheDeletionRoleIsRefused) {
  // Only Central runs; the test holds Seoul's broker keys and speaks for it (a compromised
  // peer). A watch list is grant-less and may travel only between deletion-role agencies
  // (PROTOCOL.md 9.1): Central checks that itself, whoever relays it.
  ASSERT_TRUE(B("central-broker").Start());
  auto as_seoul = Connect("seoul-broker", "central-broker");
  const auto& dir = fed_.directory();
  const std::string file = R"({"list":"refbus-watch-list v1\n","signature":"00"})";
  uint64_t rid = 0;
  auto relay = [&](Bytes envelope, const std::string& to) {
    Frame f;
    f.type = Frame::Type::kRelay;
    f.request_id = ++rid;
    f.relay.envelope = std::move(envelope);
    f.relay.for_recipients = {to};
    as_seoul->SendFrame(f);
    for (int i = 0; i < 50; ++i) {
      auto reply = as_seoul->Receive(200);
      if (reply && reply->request_id == rid) return reply;
    }
    return std::optional<Frame>();
  };
  // From a Wee center (no deletion role) to the deletion center, and to a counseling center.
  Bytes to_dsc = SealWatchListByHand(Id("seoul-wee-01"), dir, "central-dsc", file);
  Bytes to_counsel = SealWatchListByHand(Id("seoul-wee-01"), dir, "central-counsel", file);
  for (const auto& [env, to] :
       {std::pair{to_dsc, "central-dsc"}, {to_counsel, "central-counsel"}}) {
    auto r = relay(env, to);
    ASSERT_TRUE(r.has_value()) << "no reply to the relay to " << to << "\n"
                               << B("central-broker").Log();
    ASSERT_EQ(r->type, Frame::Type::kNack) << to;
    EXPECT_EQ(r->nack.reason, NackReason::kNotPermitted) << r->nack.detail;
  }
  // The link goes on: a sound relay after them is taken.
  Bytes sound = SealTo(Id("seoul-wee-01"), dir, {"central-counsel"}, Now());
  auto ok = relay(sound, "central-counsel");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->type, Frame::Type::kAck)
      << schema::Name(ok->nack.reason) << ": " << ok->nack.detail;
  auto dsc = Connect("central-dsc", "central-broker");
  EXPECT_TRUE(ReceiveAll(*dsc, 1, 1500).empty()) << "the deletion center got a refused watch list";

  ASSERT_EQ(B("central-broker").Stop(), 0);
  auto log = AuditOf("central-broker");
  for (const Bytes& env : {to_dsc, to_counsel}) {
    const Bytes mid = MessageId(env);
    EXPECT_EQ(Count(log, schema::AuditEvent::kEnvelopeRejected, "seoul-broker", mid), 1u);
    EXPECT_EQ(Count(log, schema::AuditEvent::kEnvelopeAccepted, "seoul-broker", mid), 0u);
    for (const auto& e : log) {
      if (e.message_id == mid) {
        EXPECT_EQ(e.kind, schema::MessageKind::kDeletionWatchList);
      }
    }
  }
  EXPECT_EQ(Count(log, schema::AuditEvent::kEnvelopeAccepted, "seoul-broker", MessageId(sound)),
            1u);
}

TEST_F(FederationTest, MovingAnAgencyReroutesQueuedAndFutureMessages) {
  ASSERT_TRUE(StartAll());
  auto wee = Connect("seoul-wee-01", "seoul-broker");
  const auto& dir = fed_.directory();
  std::vector<Bytes> sent;
  // Three wait at Busan (the counseling center is offline) ...
  for (int i = 0; i < 3; ++i) {
    sent.push_back(SealTo(Id("seoul-wee-01"), dir, {"busan-counsel"}, Now()));
    auto a = wee->Submit(sent.back());
    ASSERT_TRUE(a && a->type == Frame::Type::kAck);
  }
  std::string last;
  ASSERT_TRUE(WaitLink(
      "seoul-broker", "busan-broker", 5000,
      [](const nlohmann::json& l) {
        return l.value("forwarded", 0) == 3 && l.value("backlog", 1) == 0;
      },
      &last))
      << last;
  // ... and two at Seoul, whose link to Busan is down.
  ASSERT_EQ(B("busan-broker").Stop(), 0);
  for (int i = 0; i < 2; ++i) {
    sent.push_back(SealTo(Id("seoul-wee-01"), dir, {"busan-counsel"}, Now()));
    auto a = wee->Submit(sent.back());
    ASSERT_TRUE(a && a->type == Frame::Type::kAck);
  }
  // The counseling center moves to the Central broker (same keys, new record, new directory).
  auto rec = keys::MoveHome(fed_.Dir("busan-counsel"), "central-broker", nullptr, Now());
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  ASSERT_TRUE(fed_.Reissue({}, {fed_.Dir("busan-counsel") + "/busan-counsel.record"}));
  ASSERT_EQ(fed_.directory().Find("busan-counsel")->home_broker, "central-broker");
  // Busan comes back with the new directory and re-routes what it held.
  ASSERT_TRUE(B("busan-broker").Start());
  // A message sealed after the move goes straight to Central.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // Seoul reloads on change
  sent.push_back(SealTo(Id("seoul-wee-01"), fed_.directory(), {"busan-counsel"}, Now()));
  auto a = wee->Submit(sent.back());
  ASSERT_TRUE(a && a->type == Frame::Type::kAck);

  auto counsel = Connect("busan-counsel", "central-broker");
  auto got = ReceiveAll(*counsel, sent.size(), 20000);
  ASSERT_EQ(got.size(), sent.size())
      << B("seoul-broker").Log() << B("busan-broker").Log() << B("central-broker").Log();
  EXPECT_EQ(std::set<Bytes>(got.begin(), got.end()), std::set<Bytes>(sent.begin(), sent.end()));
  EXPECT_TRUE(ReceiveAll(*counsel, 1, 1500).empty()) << "nothing twice";

  for (const auto& id : kBrokers) EXPECT_EQ(B(id).Stop(), 0) << id;
  size_t seoul_rerouted = 0, busan_rerouted = 0;
  for (const auto& e : AuditOf("seoul-broker")) {
    if (e.event == schema::AuditEvent::kEnvelopeRerouted) {
      ++seoul_rerouted;
      EXPECT_EQ(e.actor, "busan-broker");
      EXPECT_EQ(e.recipients, std::vector<std::string>{"central-broker"});
    }
  }
  for (const auto& e : AuditOf("busan-broker")) {
    if (e.event == schema::AuditEvent::kEnvelopeRerouted) {
      ++busan_rerouted;
      EXPECT_EQ(e.actor, "busan-counsel");
      EXPECT_EQ(e.recipients, std::vector<std::string>{"central-broker"});
    }
  }
  EXPECT_EQ(seoul_rerouted, 2u);
  EXPECT_EQ(busan_rerouted, 3u);
}

TEST_F(FederationTest, RevocationReachesEveryBrokerEvenOnesThatNeverSawTheGrant) {
  ASSERT_TRUE(StartAll());
  schema::ConsentGrant g = WeeGrant();
  const Bytes grant = SignGrant(g);
  auto wee = Connect("seoul-wee-01", "seoul-broker");
  Frame reg;
  reg.type = Frame::Type::kGrantRegister;
  reg.grant_register.signed_grant = grant;
  auto r = Control(*wee, reg);
  ASSERT_TRUE(r && r->type == Frame::Type::kAck);
  // The referral takes the grant to Busan; the counseling center answers under it.
  auto a = wee->Submit(SealUnder("seoul-wee-01", "busan-counsel", schema::MessageKind::kReferral, g,
                                 {schema::DataCategory::kIdentity}));
  ASSERT_TRUE(a && a->type == Frame::Type::kAck);
  auto counsel = Connect("busan-counsel", "busan-broker");
  ASSERT_EQ(ReceiveAll(*counsel, 1, 10000).size(), 1u);
  auto state = [&] {
    return SealUnder("busan-counsel", "seoul-wee-01", schema::MessageKind::kReferralState, g,
                     {schema::DataCategory::kCaseStatus});
  };
  auto before = counsel->Submit(state());
  ASSERT_TRUE(before && before->type == Frame::Type::kAck)
      << schema::Name(before->nack.reason) << ": " << before->nack.detail;

  // The guardian withdraws consent: the Wee center revokes at Seoul, its home broker.
  schema::ConsentRevocation rv{g.grant_id, g.case_ref, "seoul-wee-01",
                               schema::RevocationReason::kWithdrawnByGuardian, Now()};
  auto st = keys::SignStatement(Id("seoul-wee-01"), keys::StatementType::kConsentRevocation,
                                schema::EncodeConsentRevocation(rv));
  Frame revoke;
  revoke.type = Frame::Type::kGrantRevoke;
  revoke.grant_revoke.signed_revocation = schema::EncodeSignedStatement(st);
  auto rr = Control(*wee, revoke);
  ASSERT_TRUE(rr && rr->type == Frame::Type::kAck);
  const UnixMillis revoked_at = Now();

  // Busan learns it over the link and refuses data under the grant from its own agencies.
  std::optional<Frame> after;
  for (int i = 0; i < 50; ++i) {
    after = counsel->Submit(state());
    if (after && after->type == Frame::Type::kNack) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(after && after->type == Frame::Type::kNack) << B("busan-broker").Log();
  EXPECT_EQ(after->nack.reason, NackReason::kConsentRevoked) << after->nack.detail;

  // Central never saw the grant; the revocation is kept there, and when a (rogue) Seoul
  // broker later relays an envelope with the grant, the grant is registered revoked.
  // Seoul's status written after the revocation shows nothing left to pass on to Central.
  bool passed_on = false;
  std::string last;
  for (int i = 0; i < 100 && !passed_on; ++i) {
    last = B("seoul-broker").StatusJson();
    auto j = nlohmann::json::parse(last, nullptr, false);
    if (!j.is_discarded() && j.value("time_ms", UnixMillis{0}) > revoked_at) {
      for (const auto& l : j["links"]) {
        passed_on = passed_on ||
                    (l.value("peer", "") == "central-broker" && l.value("control_backlog", 1) == 0);
      }
    }
    if (!passed_on) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(passed_on) << last;
  ASSERT_EQ(B("seoul-broker").Stop(), 0);
  auto rogue = Connect("seoul-broker", "central-broker");
  schema::ConsentGrant wide = g;  // same id and bytes as registered: only the route is new
  Frame f;
  f.type = Frame::Type::kRelay;
  f.request_id = 77;
  // (to a counseling center: within the grant's scope, so only the revocation refuses it)
  f.relay.envelope = SealUnder("seoul-wee-01", "central-counsel", schema::MessageKind::kReferral,
                               wide, {schema::DataCategory::kIdentity});
  f.relay.signed_grant = grant;
  f.relay.for_recipients = {"central-counsel"};
  rogue->SendFrame(f);
  std::optional<Frame> reply;
  for (int i = 0; i < 50 && !(reply && reply->request_id == 77); ++i) reply = rogue->Receive(200);
  ASSERT_TRUE(reply && reply->request_id == 77);
  ASSERT_EQ(reply->type, Frame::Type::kNack);
  EXPECT_EQ(reply->nack.reason, NackReason::kConsentRevoked) << reply->nack.detail;

  for (const auto& id : {"busan-broker", "central-broker"}) EXPECT_EQ(B(id).Stop(), 0) << id;
  auto revoked_by = [&](const std::string& broker) {
    std::vector<std::string> actors;
    for (const auto& e : AuditOf(broker)) {
      if (e.event == schema::AuditEvent::kConsentRevoked && e.consent_grant_id == g.grant_id) {
        actors.push_back(e.actor);
      }
    }
    return actors;
  };
  auto busan_actors = revoked_by("busan-broker");
  ASSERT_EQ(busan_actors.size(), 1u) << "once, though both other brokers passed it on";
  EXPECT_TRUE(busan_actors[0] == "seoul-broker" || busan_actors[0] == "central-broker");
  // Central: the kept revocation, then the grant registered revoked when it arrived.
  EXPECT_EQ(revoked_by("central-broker").size(), 2u);
}

// A PrekeyUpdate frame carrying signed_prekey.
Frame PrekeyUpdate(const schema::SignedPrekey& sp) {
  Frame f;
  f.type = Frame::Type::kPrekeyUpdate;
  f.prekey_update.signed_prekey = schema::EncodeSignedPrekey(sp);
  return f;
}

// Waits for a PrekeyUpdate carrying want on c (other frames are skipped).
bool ReceivesPrekey(RawClient& c, const Bytes& want, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    auto f = c.Receive(200);
    if (f && f->type == Frame::Type::kPrekeyUpdate && f->prekey_update.signed_prekey == want) {
      return true;
    }
  }
  return false;
}

// Prekey publication (PROTOCOL.md section 6, issue 17 item 4): an agency's own signed prekey
// is acked, stored, audited (key id only), pushed to the agencies connected to its broker,
// relayed to the peer brokers (which check it again) and served there after a Welcome, and
// after a restart. Another agency's prekey (foreign), a broken signature and an over-long
// window are refused with their reasons and audited.
TEST_F(FederationTest, PublishedPrekeysAreCheckedStoredRelayedAndServed) {
  ASSERT_TRUE(StartAll());
  keys::Identity wee_keys = fed_.LoadIdentity("seoul-wee-01");
  auto sp = wee_keys.AddPrekey(Now() - 1000, Now() + kMillisPerDay);
  ASSERT_TRUE(sp.ok()) << sp.status().ToString();
  const Bytes bytes = schema::EncodeSignedPrekey(*sp);
  auto counsel = Connect("seoul-counsel", "seoul-broker");  // connected before: gets the push
  auto wee = Connect("seoul-wee-01", "seoul-broker");

  // Refused: another agency publishing the Wee center's prekey, a broken signature, a
  // window over 30 days.
  auto foreign = Control(*counsel, PrekeyUpdate(*sp));
  ASSERT_TRUE(foreign && foreign->type == Frame::Type::kNack);
  EXPECT_EQ(foreign->nack.reason, NackReason::kSenderMismatch) << foreign->nack.detail;
  schema::SignedPrekey forged = *sp;
  forged.signature[5] ^= 0x01;
  auto bad = Control(*wee, PrekeyUpdate(forged));
  ASSERT_TRUE(bad && bad->type == Frame::Type::kNack);
  EXPECT_EQ(bad->nack.reason, NackReason::kBadSignature) << bad->nack.detail;
  auto too_long = wee_keys.AddPrekey(Now() - 1000, Now() + 31 * kMillisPerDay);
  ASSERT_TRUE(too_long.ok());
  auto long_answer = Control(*wee, PrekeyUpdate(*too_long));
  ASSERT_TRUE(long_answer && long_answer->type == Frame::Type::kNack);
  EXPECT_EQ(long_answer->nack.reason, NackReason::kMalformed) << long_answer->nack.detail;

  // Accepted: acked under the first 16 bytes of its SHA-256, pushed to the connected agency.
  auto ok = Control(*wee, PrekeyUpdate(*sp));
  ASSERT_TRUE(ok && ok->type == Frame::Type::kAck) << (ok ? ok->nack.detail : "no answer");
  EXPECT_EQ(ok->ack.message_id, broker::AttestationId(bytes));
  EXPECT_TRUE(ReceivesPrekey(*counsel, bytes, 5000)) << "no push to the connected agency";
  // Relayed: Busan and Central serve it to their agencies after the Welcome.
  for (const auto& [agency, broker] :
       {std::pair<std::string, std::string>{"busan-police", "busan-broker"},
        {"central-dsc", "central-broker"}}) {
    bool served = false;
    for (int i = 0; i < 20 && !served; ++i) {
      auto c = Connect(agency, broker);
      served = ReceivesPrekey(*c, bytes, 500);
    }
    EXPECT_TRUE(served) << broker << " does not serve the prekey published at seoul-broker";
  }
  // Durable: after a restart, served again.
  ASSERT_EQ(B("seoul-broker").Stop(), 0);
  ASSERT_TRUE(B("seoul-broker").Start());
  auto again = Connect("seoul-counsel", "seoul-broker");
  EXPECT_TRUE(ReceivesPrekey(*again, bytes, 5000)) << "not served after a restart";

  for (const auto& b : kBrokers) ASSERT_EQ(B(b).Stop(), 0) << b;
  const std::string key_hex = HexEncode(sp->prekey.public_key);
  auto seoul = AuditOf("seoul-broker");
  size_t published = 0, refused = 0;
  for (const auto& e : seoul) {
    EXPECT_EQ(e.detail.find(key_hex), std::string::npos) << "key material in the audit log";
    if (e.event == schema::AuditEvent::kPrekeyPublished) {
      ++published;
      EXPECT_EQ(e.actor, "seoul-wee-01");
      EXPECT_EQ(e.sender_id, "seoul-wee-01");
      EXPECT_EQ(e.statement_sha256, broker::Sha256(bytes));
    }
    if (e.event == schema::AuditEvent::kEnvelopeRejected &&
        e.detail.find("prekey") != std::string::npos) {
      ++refused;
    }
  }
  EXPECT_EQ(published, 1u);
  EXPECT_EQ(refused, 3u);
  for (const auto& b : {std::string("busan-broker"), std::string("central-broker")}) {
    size_t relayed = 0;
    for (const auto& e : AuditOf(b)) {
      relayed += e.event == schema::AuditEvent::kPrekeyPublished && e.actor == "seoul-broker" &&
                 e.sender_id == "seoul-wee-01";
    }
    EXPECT_EQ(relayed, 1u) << b;
  }
}

// Issue 21, the relay hop: a link that keeps no more relays unanswered than one commit of
// the peer holds makes the sender wait for each of the peer's commits in turn. By default a
// link keeps two of its peer's turns (2 x max_batch, at least delivery_window) in flight.
// The test plays Busan's broker (its keys) and never acks, so the relays Seoul sends are
// exactly its window.
TEST_F(FederationTest, ALinkKeepsTwoOfThePeersTurnsInFlight) {
  constexpr size_t kMaxBatch = 300;  // delivery_window stays 256
  constexpr size_t kQueued = 700;
  B("seoul-broker").set_limits("redelivery_ms = 2000\nmax_batch = " + std::to_string(kMaxBatch));
  zmq::context_t ctx;
  zmq::socket_t peer(ctx, zmq::socket_type::router);
  ASSERT_TRUE(
      zmqx::ConfigureCurveServer(peer, Id("busan-broker").transport_secret_key().view(), "refbus")
          .ok());
  // No ZAP handler in this context: the stand-in admits whoever holds a CURVE key pair.
  int enforce = 0;
  ASSERT_EQ(zmq_setsockopt(peer.handle(), zmqx::kZapEnforceDomainOption, &enforce, sizeof(enforce)),
            0);
  peer.bind("tcp://127.0.0.1:*");
  {
    std::ofstream f(B("busan-broker").endpoint_file());
    f << peer.get(zmq::sockopt::last_endpoint) << "\n";
  }
  ASSERT_TRUE(B("seoul-broker").Start());
  auto wee = Connect("seoul-wee-01", "seoul-broker");
  const auto& dir = fed_.directory();
  for (size_t i = 0; i < kQueued; ++i) {
    Frame f;
    f.type = Frame::Type::kSubmit;
    f.request_id = 1000 + i;
    f.submit.envelope =
        SealTo(Id("seoul-wee-01"), dir, {"busan-counsel"}, Now(), kMillisPerHour, 64);
    wee->SendFrame(f);
  }
  size_t acked = 0;
  std::set<Bytes> relayed;  // distinct message ids Seoul relayed
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline &&
         (acked < kQueued || relayed.size() < 2 * kMaxBatch)) {
    while (auto r = wee->Receive(0)) acked += r->type == Frame::Type::kAck ? 1 : 0;
    std::vector<zmq::message_t> parts;
    zmq::pollitem_t item{peer.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(20));
    if (!(item.revents & ZMQ_POLLIN)) continue;
    auto got = zmq::recv_multipart(peer, std::back_inserter(parts), zmq::recv_flags::dontwait);
    if (!got || parts.size() != 2) continue;
    auto f = schema::DecodeFrame(
        ByteView(static_cast<const uint8_t*>(parts[1].data()), parts[1].size()));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    if (f->type == Frame::Type::kHello) {  // the session's start, and keepalives
      Frame w;
      w.type = Frame::Type::kWelcome;
      w.request_id = f->request_id;
      w.welcome.broker_id = "busan-broker";
      w.welcome.directory_serial = dir.serial;
      Bytes body = schema::EncodeFrame(w);
      peer.send(parts[0], zmq::send_flags::sndmore);
      peer.send(zmq::buffer(body.data(), body.size()));
    } else if (f->type == Frame::Type::kRelay) {
      relayed.insert(MessageId(f->relay.envelope));
    }
  }
  EXPECT_EQ(acked, kQueued);
  // Nothing is acked, so nothing past the window is ever sent (also not after a resend).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  while (true) {
    std::vector<zmq::message_t> parts;
    auto got = zmq::recv_multipart(peer, std::back_inserter(parts), zmq::recv_flags::dontwait);
    if (!got) break;
    if (parts.size() != 2) continue;
    auto f = schema::DecodeFrame(
        ByteView(static_cast<const uint8_t*>(parts[1].data()), parts[1].size()));
    if (f.ok() && f->type == Frame::Type::kRelay) relayed.insert(MessageId(f->relay.envelope));
  }
  EXPECT_EQ(relayed.size(), 2 * kMaxBatch)
      << "relays Seoul kept unanswered on its link to Busan (max_batch " << kMaxBatch
      << ", delivery_window 256)";
  B("seoul-broker").Stop();
}

// Issue 21, the relay hop: every relayed envelope carries its grant, and the next broker
// checked the grant's signature again for each one (an Ed25519 check on its loop thread
// per envelope). It is checked once per grant and directory; its times still every time.
TEST_F(FederationTest, ARelayedGrantsSignatureIsCheckedOncePerGrantNotPerEnvelope) {
  constexpr size_t kReferrals = 20;
  ASSERT_TRUE(StartAll());
  schema::ConsentGrant g = WeeGrant();
  auto wee = Connect("seoul-wee-01", "seoul-broker");
  Frame reg;
  reg.type = Frame::Type::kGrantRegister;
  reg.grant_register.signed_grant = SignGrant(g);
  auto a = Control(*wee, reg);
  ASSERT_TRUE(a && a->type == Frame::Type::kAck) << B("seoul-broker").Log();
  std::vector<Bytes> sent;
  for (size_t i = 0; i < kReferrals; ++i) {
    sent.push_back(SealUnder("seoul-wee-01", "busan-counsel", schema::MessageKind::kReferral, g,
                             {schema::DataCategory::kIdentity}));
    auto r = wee->Submit(sent.back());
    ASSERT_TRUE(r && r->type == Frame::Type::kAck);
  }
  auto busan = Connect("busan-counsel", "busan-broker");
  auto got = ReceiveAll(*busan, kReferrals, 20000);
  ASSERT_EQ(got, sent) << B("busan-broker").Log();
  // The status file is rewritten every second.
  nlohmann::json counters;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    auto j = nlohmann::json::parse(B("busan-broker").StatusJson(), nullptr, false);
    if (!j.is_discarded() && j.contains("counters")) counters = j["counters"];
    if (counters.value("relays_accepted", 0) == static_cast<int>(kReferrals)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(counters.value("relays_accepted", 0), static_cast<int>(kReferrals)) << counters;
  EXPECT_EQ(counters.value("relayed_grant_checks", -1), 1)
      << "signature checks at Busan of the one grant " << kReferrals << " relays carried";

  // A Seoul broker gone rogue (the test, with its keys) relays under the same grant id a
  // grant widened to police units, with a signature that does not verify: other bytes are
  // checked in full and refused, however often the id was seen.
  schema::ConsentGrant wide = g;
  wide.allowed_agency_types.push_back(schema::AgencyType::kPoliceUnit);
  auto forged_grant = keys::SignConsentGrant(Id("seoul-wee-01"), wide);
  ASSERT_TRUE(forged_grant.ok());
  forged_grant->signature[3] ^= 1;
  auto rogue = Connect("seoul-broker", "busan-broker");
  Frame f;
  f.type = Frame::Type::kRelay;
  f.request_id = 77;
  f.relay.envelope = SealUnder("seoul-wee-01", "busan-police", schema::MessageKind::kReferral, g,
                               {schema::DataCategory::kIdentity});
  f.relay.signed_grant = schema::EncodeSignedConsentGrant(*forged_grant);
  f.relay.for_recipients = {"busan-police"};
  rogue->SendFrame(f);
  auto nack = rogue->Expect(Frame::Type::kNack, 77, 10000);
  ASSERT_TRUE(nack.has_value()) << B("busan-broker").Log();
  EXPECT_EQ(nack->nack.reason, NackReason::kBadSignature) << nack->nack.detail;
}

TEST_F(FederationTest, UnlistedBrokerAndWrongKeyAreRefused) {
  ASSERT_TRUE(B("seoul-broker").Start());
  ASSERT_TRUE(B("central-broker").Start());
  // A broker the directory does not list: its CURVE key is refused by ZAP, no Welcome.
  auto stranger = RawClient::WithUnknownKey(KeyOf("seoul-broker"), B("seoul-broker").endpoint());
  EXPECT_FALSE(stranger->Hello("stranger-broker", 1500));
  EXPECT_NE(B("seoul-broker").Log().find("key not in the directory"), std::string::npos);

  // Seoul's link to Busan pointed at Central's address: Central does not hold Busan's key, so
  // the handshake (which checks the server's key) never completes and the link stays down.
  ASSERT_EQ(B("seoul-broker").Stop(), 0);
  B("seoul-broker")
      .set_extra(
          "[federation]\nlink_timeout_ms = 1000\nendpoint_files = { "
          "busan-broker = \"" +
          B("central-broker").endpoint_file() + "\", central-broker = \"" +
          B("central-broker").endpoint_file() + "\" }\n");
  ASSERT_TRUE(B("seoul-broker").Start());
  auto wee = Connect("seoul-wee-01", "seoul-broker");
  Bytes env = SealTo(Id("seoul-wee-01"), fed_.directory(), {"busan-counsel"}, Now());
  auto a = wee->Submit(env);
  ASSERT_TRUE(a && a->type == Frame::Type::kAck);
  std::string last;
  EXPECT_TRUE(WaitLink(
      "seoul-broker", "central-broker", 5000,
      [](const nlohmann::json& l) { return l.value("state", "") == "up"; }, &last))
      << last;
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_TRUE(WaitLink(
      "seoul-broker", "busan-broker", 3000,
      [](const nlohmann::json& l) {
        return l.value("state", "") != "up" && l.value("backlog", 0) == 1 &&
               l.value("forwarded", 1) == 0 &&
               // named by the link socket's monitor, not only timed out
               l.value("problem", std::string()).find("CURVE handshake") != std::string::npos;
      },
      &last))
      << last;
  EXPECT_EQ(B("seoul-broker").Stop(), 0);
  EXPECT_EQ(B("central-broker").Stop(), 0);
  // Central never stored the envelope meant for Busan.
  for (const auto& e : AuditOf("central-broker")) {
    EXPECT_FALSE(e.event == schema::AuditEvent::kEnvelopeAccepted &&
                 e.message_id == MessageId(env));
  }
}

}  // namespace
}  // namespace refbus::testing
