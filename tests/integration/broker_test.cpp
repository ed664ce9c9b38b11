// refbus-broker as a real process on loopback, with real keys and a raw CURVE client:
// authentication both ways, every nack reason, online and offline delivery, redelivery,
// directory reload cutting off a revoked agency, clean shutdown.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "keys/crypto.h"
#include "keys/envelope.h"
#include "schema/codec.h"
#include "tests/integration/harness.h"

namespace refbus::testing {
namespace {

using schema::Frame;
using schema::NackReason;

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("refbus-broker-test");
    ASSERT_TRUE(
        fed_.Create(root_, {"seoul-broker", "busan-broker"},
                    {{"seoul-wee-01", schema::AgencyType::kWeeCenter, "seoul-broker"},
                     {"seoul-police-03", schema::AgencyType::kPoliceUnit, "seoul-broker"},
                     {"seoul-counsel", schema::AgencyType::kCounselingCenter, "seoul-broker"},
                     {"busan-support", schema::AgencyType::kSupportCenter, "busan-broker"}}));
    broker_ = std::make_unique<Broker>(fed_, "seoul-broker", root_ + "/seoul-data");
  }
  void TearDown() override {
    broker_.reset();
    if (!HasFailure()) RemoveTree(root_);
  }

  Bytes BrokerKey() const {
    return fed_.directory().Find("seoul-broker")->ActiveKeys()->transport_key;
  }
  std::unique_ptr<RawClient> Connect(const std::string& party) {
    ids_.emplace(party, fed_.LoadIdentity(party));
    auto c = std::make_unique<RawClient>(ids_.at(party), BrokerKey(), broker_->endpoint());
    EXPECT_TRUE(c->Hello(party)) << party << " got no Welcome; broker log:\n" << broker_->Log();
    return c;
  }
  const keys::Identity& Id(const std::string& party) {
    if (!ids_.count(party)) ids_.emplace(party, fed_.LoadIdentity(party));
    return ids_.at(party);
  }
  UnixMillis Now() const { return SystemClock::Get().NowMillis(); }

  void ExpectNack(const std::optional<Frame>& r, NackReason reason) {
    ASSERT_TRUE(r.has_value()) << "no reply; broker log:\n" << broker_->Log();
    ASSERT_EQ(r->type, Frame::Type::kNack) << "expected nack " << schema::Name(reason);
    EXPECT_EQ(r->nack.reason, reason) << schema::Name(r->nack.reason) << ": " << r->nack.detail;
  }

  std::string root_;
  Federation fed_;
  std::unique_ptr<Broker> broker_;
  std::map<std::string, keys::Identity> ids_;
};

TEST_F(BrokerTest, DeliversToOnlineAgencyAndRemovesOnAck) {
  ASSERT_TRUE(broker_->Start());
  auto wee = Connect("seoul-wee-01");
  auto counsel = Connect("seoul-counsel");
  Bytes env = SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now());
  auto r = wee->Submit(env);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->type, Frame::Type::kAck) << schema::Name(r->nack.reason) << " " << r->nack.detail;
  EXPECT_FALSE(r->ack.duplicate);

  auto d = counsel->Receive(5000);
  ASSERT_TRUE(d.has_value());
  ASSERT_EQ(d->type, Frame::Type::kDeliver);
  EXPECT_EQ(d->deliver.envelope, env) << "the broker must forward the bytes as received";
  auto opened =
      keys::OpenEnvelope(Id("seoul-counsel"), d->deliver.envelope, fed_.directory(), Now());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();

  Frame ack;
  ack.type = Frame::Type::kAck;
  ack.request_id = d->request_id;
  ack.ack.message_id = opened->envelope.header.message_id;
  counsel->SendFrame(ack);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // A new session would get every unacked message again: after the ack, nothing comes.
  auto again = Connect("seoul-counsel");
  EXPECT_FALSE(again->Receive(1500).has_value()) << "acked message was delivered again";
  EXPECT_EQ(broker_->Stop(), 0) << broker_->Log();
}

TEST_F(BrokerTest, OfflineAgencyGetsBacklogOnConnectInOrderAndUnackedIsRedelivered) {
  ASSERT_TRUE(broker_->Start());
  auto police = Connect("seoul-police-03");
  std::vector<Bytes> ids;
  for (int i = 0; i < 5; ++i) {
    Bytes env = SealTo(Id("seoul-police-03"), fed_.directory(), {"seoul-counsel"}, Now());
    auto r = police->Submit(env);
    ASSERT_TRUE(r && r->type == Frame::Type::kAck);
    ids.push_back(r->ack.message_id);
  }
  // The counseling center was offline; it connects now and gets the backlog in order.
  auto counsel = Connect("seoul-counsel");
  for (int i = 0; i < 5; ++i) {
    auto d = counsel->Receive(5000);
    ASSERT_TRUE(d && d->type == Frame::Type::kDeliver) << "backlog item " << i;
    auto e = schema::DecodeEnvelope(d->deliver.envelope);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->header.message_id, ids[static_cast<size_t>(i)]) << "out of order at " << i;
  }
  // It never acked: a new session (its reconnect) gets all five again.
  auto counsel2 = Connect("seoul-counsel");
  int redelivered = 0;
  while (counsel2->Receive(1500)) ++redelivered;
  EXPECT_EQ(redelivered, 5);
  EXPECT_EQ(broker_->Stop(), 0);
}

TEST_F(BrokerTest, MultiRecipientEnvelopeGoesToEach) {
  ASSERT_TRUE(broker_->Start());
  auto police = Connect("seoul-police-03");
  auto wee = Connect("seoul-wee-01");
  auto counsel = Connect("seoul-counsel");
  Bytes env =
      SealTo(Id("seoul-police-03"), fed_.directory(), {"seoul-wee-01", "seoul-counsel"}, Now());
  auto r = police->Submit(env);
  ASSERT_TRUE(r && r->type == Frame::Type::kAck);
  for (auto* c : {wee.get(), counsel.get()}) {
    auto d = c->Receive(5000);
    ASSERT_TRUE(d && d->type == Frame::Type::kDeliver);
    EXPECT_EQ(d->deliver.envelope, env);
  }
}

TEST_F(BrokerTest, UnknownClientKeyIsRefused) {
  ASSERT_TRUE(broker_->Start());
  auto stranger = RawClient::WithUnknownKey(BrokerKey(), broker_->endpoint());
  Frame hello;
  hello.type = Frame::Type::kHello;
  hello.request_id = 1;
  hello.hello.party_id = "seoul-wee-01";
  stranger->SendFrame(hello);
  EXPECT_FALSE(stranger->Receive(2000).has_value()) << "a key outside the directory got an answer";
  EXPECT_NE(broker_->Log().find("refused a connection"), std::string::npos) << broker_->Log();
}

TEST_F(BrokerTest, AgentRefusesAServerWithTheWrongKey) {
  ASSERT_TRUE(broker_->Start());
  // The other broker's key is a real key, but not the one of the broker at this endpoint:
  // the CURVE handshake fails and the client never talks to an impostor.
  Bytes wrong = fed_.directory().Find("busan-broker")->ActiveKeys()->transport_key;
  RawClient c(Id("seoul-wee-01"), wrong, broker_->endpoint());
  Frame hello;
  hello.type = Frame::Type::kHello;
  hello.request_id = 1;
  hello.hello.party_id = "seoul-wee-01";
  c.SendFrame(hello);
  EXPECT_FALSE(c.Receive(2000).has_value());
}

TEST_F(BrokerTest, EveryNackReason) {
  broker_->set_limits("mailbox_quota = 3\nmax_frame_bytes = 65536");
  ASSERT_TRUE(broker_->Start());
  auto wee = Connect("seoul-wee-01");
  const schema::Directory dir = fed_.directory();  // a copy: serial 1, kept after reissue
  UnixMillis now = Now();

  // Malformed frame.
  wee->SendRaw(AsBytes("this is not a frame"));
  ExpectNack(wee->Receive(3000), NackReason::kMalformed);
  // Malformed envelope inside a good frame.
  ExpectNack(wee->Submit(ToBytes("not an envelope")), NackReason::kMalformed);
  // Too large.
  Bytes big(70000, 0x41);
  wee->SendRaw(big);
  ExpectNack(wee->Receive(3000), NackReason::kTooLarge);
  // Sender is not the authenticated peer: the police unit's envelope, submitted by wee.
  ExpectNack(wee->Submit(SealTo(Id("seoul-police-03"), dir, {"seoul-counsel"}, now)),
             NackReason::kSenderMismatch);
  // Bad signature: one flipped ciphertext byte.
  {
    Bytes env = SealTo(Id("seoul-wee-01"), dir, {"seoul-counsel"}, now);
    auto e = schema::DecodeEnvelope(env);
    ASSERT_TRUE(e.ok());
    e->ciphertext[10] ^= 1;
    ExpectNack(wee->Submit(schema::EncodeEnvelope(*e)), NackReason::kBadSignature);
  }
  // Expired envelope (sealed a second ago with a half-second lifetime).
  ExpectNack(wee->Submit(SealTo(Id("seoul-wee-01"), dir, {"seoul-counsel"}, now - 1000, 500)),
             NackReason::kExpired);
  // From the future, beyond the allowed clock skew.
  ExpectNack(
      wee->Submit(SealTo(Id("seoul-wee-01"), dir, {"seoul-counsel"}, now + 10 * kMillisPerMinute)),
      NackReason::kExpired);
  // Duplicate message id: answered with the earlier ack, stored once.
  {
    Bytes env = SealTo(Id("seoul-wee-01"), dir, {"seoul-counsel"}, now);
    auto a = wee->Submit(env);
    ASSERT_TRUE(a && a->type == Frame::Type::kAck);
    auto b = wee->Submit(env);
    ASSERT_TRUE(b && b->type == Frame::Type::kAck);
    EXPECT_TRUE(b->ack.duplicate);
    EXPECT_EQ(a->ack.message_id, b->ack.message_id);
  }
  // Quota: counsel's mailbox holds 1; two more fit, the fourth is refused with a retry.
  for (int i = 0; i < 2; ++i) {
    auto r = wee->Submit(SealTo(Id("seoul-wee-01"), dir, {"seoul-counsel"}, now));
    ASSERT_TRUE(r && r->type == Frame::Type::kAck);
  }
  auto q = wee->Submit(SealTo(Id("seoul-wee-01"), dir, {"seoul-counsel"}, now));
  ExpectNack(q, NackReason::kQuotaExceeded);
  EXPECT_GT(q->nack.retry_after_ms, 0u);

  // Unknown recipient: an envelope (properly signed) to an agency the directory does not list.
  {
    keys::SealRequest req;
    req.kind = schema::MessageKind::kOpaque;
    req.case_ref = "test-case-0001";
    req.now = now;
    auto pk = keys::CurrentPrekey(dir, "seoul-counsel", now);
    ASSERT_TRUE(pk.ok());
    pk->agency_id = "no-such-agency";
    req.recipients.push_back(*pk);
    auto env = keys::SealEnvelope(Id("seoul-wee-01"), req, keys::RandomBytes(64));
    ASSERT_TRUE(env.ok()) << env.status().ToString();
    ExpectNack(wee->Submit(*env), NackReason::kUnknownRecipient);
  }
  // Revoked recipient and revoked sender key: serial 2 revokes the police unit.
  Bytes police_env = SealTo(Id("seoul-police-03"), dir, {"seoul-wee-01"}, now);
  auto police = Connect("seoul-police-03");
  keys::DirectoryEdit edit;
  edit.revoke = {"seoul-police-03"};
  ASSERT_TRUE(fed_.Reissue(edit));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // reload on file change
  // (sealed with the serial-1 prekey the sender still had)
  ExpectNack(wee->Submit(SealTo(Id("seoul-wee-01"), dir, {"seoul-police-03"}, Now())),
             NackReason::kRevokedRecipient);
  // The police connection authenticated before the revocation: cut off at once.
  ExpectNack(police->Submit(police_env), NackReason::kUnknownSenderKey);

  EXPECT_EQ(broker_->Stop(), 0);
  std::string log = broker_->Log();
  for (const char* reason :
       {"malformed", "too-large", "sender-mismatch", "bad-signature", "expired",
        "unknown-recipient", "quota-exceeded", "revoked-recipient", "unknown-sender-key"}) {
    EXPECT_NE(log.find(std::string("refused")), std::string::npos);
    EXPECT_NE(log.find(reason), std::string::npos) << "no logged event for " << reason;
  }
  EXPECT_NE(log.find("is revoked by directory serial 2"), std::string::npos) << log;
}

TEST_F(BrokerTest, RevokedAgencyCannotReconnect) {
  ASSERT_TRUE(broker_->Start());
  keys::DirectoryEdit edit;
  edit.revoke = {"seoul-wee-01"};
  ASSERT_TRUE(fed_.Reissue(edit));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  RawClient c(Id("seoul-wee-01"), BrokerKey(), broker_->endpoint());
  Frame hello;
  hello.type = Frame::Type::kHello;
  hello.request_id = 1;
  hello.hello.party_id = "seoul-wee-01";
  c.SendFrame(hello);
  EXPECT_FALSE(c.Receive(2000).has_value()) << "a revoked agency was admitted";
}

TEST_F(BrokerTest, RestartKeepsQueueAndDedup) {
  ASSERT_TRUE(broker_->Start());
  Bytes env;
  {
    auto wee = Connect("seoul-wee-01");
    env = SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now());
    auto r = wee->Submit(env);
    ASSERT_TRUE(r && r->type == Frame::Type::kAck);
  }
  broker_->Kill9();
  ASSERT_TRUE(broker_->Start()) << "restart after kill -9";
  auto wee = Connect("seoul-wee-01");
  auto again = wee->Submit(env);
  ASSERT_TRUE(again && again->type == Frame::Type::kAck);
  EXPECT_TRUE(again->ack.duplicate) << "dedup must survive a crash";
  auto counsel = Connect("seoul-counsel");
  auto d = counsel->Receive(5000);
  ASSERT_TRUE(d && d->type == Frame::Type::kDeliver);
  EXPECT_EQ(d->deliver.envelope, env);
  EXPECT_FALSE(counsel->Receive(1000).has_value()) << "stored twice";
  EXPECT_EQ(broker_->Stop(), 0);
}

TEST_F(BrokerTest, StorageFullRefusesSubmissionsKeepsDeliveringAndRecovers) {
  // A 16 MiB map fills after a few hundred 64 KiB envelopes.
  broker_->set_limits("map_size_mb = 16\nmailbox_quota = 100000");
  ASSERT_TRUE(broker_->Start());
  auto wee = Connect("seoul-wee-01");
  std::optional<Frame> refused;
  size_t accepted = 0;
  for (int i = 0; i < 2000 && !refused; ++i) {
    auto r = wee->Submit(SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now(),
                                kMillisPerHour, 64 << 10));
    ASSERT_TRUE(r.has_value()) << broker_->Log();
    if (r->type == Frame::Type::kAck) {
      ++accepted;
    } else {
      refused = r;
    }
  }
  ASSERT_TRUE(refused.has_value()) << "the map never filled";
  EXPECT_EQ(refused->nack.reason, NackReason::kStorageFull) << refused->nack.detail;
  EXPECT_GT(refused->nack.retry_after_ms, 0u);
  EXPECT_GT(accepted, 50u);
  EXPECT_NE(broker_->Log().find("STORAGE FULL"), std::string::npos);

  // Everything accepted before the disk filled is still delivered, and acks free room.
  auto counsel = Connect("seoul-counsel");
  size_t delivered = 0;
  while (auto d = counsel->Receive(3000)) {
    ASSERT_EQ(d->type, Frame::Type::kDeliver);
    auto e = schema::DecodeEnvelope(d->deliver.envelope);
    ASSERT_TRUE(e.ok());
    Frame ack;
    ack.type = Frame::Type::kAck;
    ack.request_id = d->request_id;
    ack.ack.message_id = e->header.message_id;
    counsel->SendFrame(ack);
    ++delivered;
  }
  EXPECT_EQ(delivered, accepted) << "an accepted envelope was lost while storage was full";
  // LMDB reuses the pages the acks freed once no snapshot needs them (a commit or two
  // later): the sender retries, as agents do on storage-full, and gets in.
  std::optional<Frame> r;
  for (int attempt = 0; attempt < 20; ++attempt) {
    r = wee->Submit(SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now(),
                           kMillisPerHour, 64 << 10));
    ASSERT_TRUE(r.has_value());
    if (r->type == Frame::Type::kAck) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(r->type, Frame::Type::kAck)
      << "no recovery after room returned: " << schema::Name(r->nack.reason);
  EXPECT_EQ(broker_->Stop(), 0);
}

TEST_F(BrokerTest, BadConfigurationNamesTheSetting) {
  std::string cfg = root_ + "/bad.toml";
  FILE* f = std::fopen(cfg.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs(
      "[broker]\nid = \"seoul-broker\"\nbind = \"tcp://127.0.0.1:*\"\n"
      "data_dir = \"d\"\nkey_file = \"k\"\ndirectory = \"x\"\nanchor = \"a\"\n"
      "trust_state = \"t\"\n[limits]\nmailbox_quota = -5\n",
      f);
  std::fclose(f);
  Process p;
  std::string log = root_ + "/bad.log";
  ASSERT_TRUE(p.Start({BinDir() + "/refbus-broker", "-c", cfg}, log));
  EXPECT_EQ(p.Wait(10000), 1);
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("broker.key_file"), std::string::npos) << text;
}

}  // namespace
}  // namespace refbus::testing
