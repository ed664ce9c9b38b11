// refbus-broker as a real process on loopback, with real keys and a raw CURVE client:
// authentication both ways, every nack reason, online and offline delivery, redelivery,
// directory reload cutting off a revoked agency, clean shutdown.
#include <gtest/gtest.h>
#include <signal.h>
#include <sodium.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "broker/store.h"
#include "core/hash.h"
#include "core/lmdb.h"
#include "core/zmq.h"
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
  // Redelivery here comes from the new session, not from the timer: with the timer's 10 s,
  // a stretched wait (REFBUS_TEST_SLOW) for "nothing more" would never end.
  broker_->set_limits("redelivery_ms = 3600000");
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

// [limits] io_threads: the broker's ZeroMQ context runs that many I/O threads (libzmq
// names them "ZMQbg/IO/<n>"), and the broker carries messages with them.
TEST_F(BrokerTest, RunsTheZeroMqIoThreadsItIsConfiguredWith) {
  broker_->set_limits("io_threads = 3");
  ASSERT_TRUE(broker_->Start());
  auto wee = Connect("seoul-wee-01");
  auto ack = wee->Submit(SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now()));
  ASSERT_TRUE(ack && ack->type == Frame::Type::kAck);
  const std::string tasks = "/proc/" + std::to_string(broker_->process().pid()) + "/task";
  int io = 0;
  for (const auto& t : std::filesystem::directory_iterator(tasks)) {
    std::string name;
    std::getline(std::ifstream(t.path() / "comm"), name);
    if (name.rfind("ZMQbg/IO/", 0) == 0) ++io;
  }
  EXPECT_EQ(io, 3) << "I/O threads named ZMQbg/IO/<n> in " << tasks;
}

TEST_F(BrokerTest, EveryNackReason) {
  broker_->set_limits("mailbox_quota = 3\nsender_quota = 3\nmax_frame_bytes = 65536");
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
  // (A bad signature on the sender's own session is the recipient's to refuse:
  // AnEnvelopesSignatureIsCheckedByItsRecipientNotItsSendersBroker. Relayed:
  // FederationTest.ForgedAndMalformedRelaysAreRefusedAuditedAndDoNotStallTheLink.)
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
       {"malformed", "too-large", "sender-mismatch", "expired", "unknown-recipient",
        "quota-exceeded", "revoked-recipient", "unknown-sender-key"}) {
    EXPECT_NE(log.find(std::string("refused")), std::string::npos);
    EXPECT_NE(log.find(reason), std::string::npos) << "no logged event for " << reason;
  }
  EXPECT_NE(log.find("is revoked by directory serial 2"), std::string::npos) << log;
}

// The home broker does not check the Ed25519 signature of an envelope its sender submits
// on its own CURVE session (SECURITY.md): it is accepted and audited as that session's
// submission under its hash, delivered byte for byte, and its recipient refuses to open it.
TEST_F(BrokerTest, AnEnvelopesSignatureIsCheckedByItsRecipientNotItsSendersBroker) {
  ASSERT_TRUE(broker_->Start());
  auto wee = Connect("seoul-wee-01");
  auto counsel = Connect("seoul-counsel");
  Bytes bad = SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now());
  {
    auto e = schema::DecodeEnvelope(bad);
    ASSERT_TRUE(e.ok());
    e->ciphertext[10] ^= 1;  // one flipped ciphertext byte after signing
    bad = schema::EncodeEnvelope(*e);
  }
  auto r = wee->Submit(bad);
  ASSERT_TRUE(r.has_value()) << broker_->Log();
  ASSERT_EQ(r->type, Frame::Type::kAck)
      << "home broker refused: " << schema::Name(r->nack.reason) << " " << r->nack.detail;
  auto d = counsel->Receive(5000);
  ASSERT_TRUE(d && d->type == Frame::Type::kDeliver);
  EXPECT_EQ(d->deliver.envelope, bad);
  auto opened =
      keys::OpenEnvelope(Id("seoul-counsel"), d->deliver.envelope, fed_.directory(), Now());
  ASSERT_FALSE(opened.ok()) << "the recipient opened an envelope whose signature is bad";
  EXPECT_NE(opened.status().message().find("signature does not verify"), std::string::npos)
      << opened.status().ToString();
  ASSERT_EQ(broker_->Stop(), 0);
  // The audit log ties the bytes the recipient refused to the session that submitted them.
  broker::StoreOptions o;
  o.dir = root_ + "/seoul-data";
  o.broker_id = "seoul-broker";
  auto store = broker::Store::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  size_t accepted = 0;
  for (uint64_t i = 0; i < *(*store)->AuditSize(); ++i) {
    auto e = schema::DecodeAuditEntry(*(*store)->AuditEntryBytes(i));
    ASSERT_TRUE(e.ok());
    if (e->event != schema::AuditEvent::kEnvelopeAccepted) continue;
    ++accepted;
    EXPECT_EQ(e->actor, "seoul-wee-01");
    EXPECT_EQ(e->sender_id, "seoul-wee-01");
    EXPECT_EQ(e->envelope_sha256, Sha256(bad));
  }
  EXPECT_EQ(accepted, 1u);
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

// Issue 17 item 1: a party that learned a held envelope's message id (here its recipient,
// holding back its ack) submits its own validly signed envelope under that id, addressed
// to a third party. The broker must refuse it as ID_REUSED (audited, naming the reason),
// never re-address the held envelope; the very same bytes again are still a duplicate,
// also after a restart and after the held envelope was delivered and acked.
TEST_F(BrokerTest, AReusedMessageIdWithOtherBytesIsRefusedAndReaddressesNothing) {
  ASSERT_TRUE(broker_->Start());
  const schema::Directory& dir = fed_.directory();
  auto wee = Connect("seoul-wee-01");
  auto counsel = Connect("seoul-counsel");
  auto police = Connect("seoul-police-03");
  const Bytes held = SealTo(Id("seoul-wee-01"), dir, {"seoul-counsel"}, Now());
  const Bytes id = schema::DecodeEnvelope(held)->header.message_id;
  auto a = wee->Submit(held);
  ASSERT_TRUE(a && a->type == Frame::Type::kAck);
  auto d = counsel->Receive(5000);  // received; its ack held back
  ASSERT_TRUE(d && d->type == Frame::Type::kDeliver);
  ASSERT_EQ(d->deliver.envelope, held);

  // The counseling center's own envelope, signed by it, under the same id, to the police.
  keys::SealRequest req;
  req.kind = schema::MessageKind::kOpaque;
  req.case_ref = "test-case-0001";
  req.now = Now();
  req.message_id = id;
  auto pk = keys::CurrentPrekey(dir, "seoul-police-03", req.now);
  ASSERT_TRUE(pk.ok());
  req.recipients.push_back(*pk);
  auto reused = keys::SealEnvelope(Id("seoul-counsel"), req, keys::RandomBytes(64));
  ASSERT_TRUE(reused.ok()) << reused.status().ToString();
  ExpectNack(counsel->Submit(*reused), NackReason::kIdReused);
  EXPECT_FALSE(police->Receive(1500).has_value()) << "the held envelope was re-addressed";
  // The sender's own resubmission of the same bytes is still an idempotent duplicate.
  auto again = wee->Submit(held);
  ASSERT_TRUE(again && again->type == Frame::Type::kAck);
  EXPECT_TRUE(again->ack.duplicate);

  // Across a restart, then after the held envelope was acked and dropped.
  ASSERT_EQ(broker_->Stop(), 0);
  ASSERT_TRUE(broker_->Start());
  wee = Connect("seoul-wee-01");
  police = Connect("seoul-police-03");
  counsel = Connect("seoul-counsel");
  ExpectNack(counsel->Submit(*reused), NackReason::kIdReused);
  auto after_restart = wee->Submit(held);
  ASSERT_TRUE(after_restart && after_restart->type == Frame::Type::kAck);
  EXPECT_TRUE(after_restart->ack.duplicate);
  EXPECT_EQ(counsel->DrainAndAck(1500, /*skip_others=*/true), std::vector<Bytes>{id});
  ExpectNack(counsel->Submit(*reused), NackReason::kIdReused);
  EXPECT_FALSE(police->Receive(1000).has_value()) << "the reused id reached the police";
  auto after_ack = wee->Submit(held);
  ASSERT_TRUE(after_ack && after_ack->type == Frame::Type::kAck);
  EXPECT_TRUE(after_ack->ack.duplicate);
  ASSERT_EQ(broker_->Stop(), 0);
  EXPECT_NE(broker_->Log().find("id-reused"), std::string::npos);

  // The audit log: three refusals naming the reason, and every entry about this id that is
  // not a refusal carries the held envelope's hash (never the reused one's) and names none
  // but its recipients.
  broker::StoreOptions o;
  o.dir = root_ + "/seoul-data";
  o.broker_id = "seoul-broker";
  auto store = broker::Store::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  size_t refusals = 0;
  for (uint64_t i = 0; i < *(*store)->AuditSize(); ++i) {
    auto e = schema::DecodeAuditEntry(*(*store)->AuditEntryBytes(i));
    ASSERT_TRUE(e.ok());
    if (e->message_id != id) continue;
    if (e->event == schema::AuditEvent::kEnvelopeRejected) {
      // The refusal records what was refused: the reused envelope, its hash and reason.
      ++refusals;
      EXPECT_EQ(e->reason, NackReason::kIdReused);
      EXPECT_EQ(e->actor, "seoul-counsel");
      EXPECT_EQ(e->envelope_sha256, Sha256(*reused));
      EXPECT_NE(e->detail.find(HexEncode(Sha256(held))), std::string::npos)
          << "the refusal names the held envelope's hash: " << e->detail;
      continue;
    }
    for (const auto& r : e->recipients) EXPECT_NE(r, "seoul-police-03") << e->detail;
    if (e->event == schema::AuditEvent::kEnvelopeAccepted) {
      EXPECT_EQ(e->envelope_sha256, Sha256(held));
    }
  }
  EXPECT_EQ(refusals, 3u);
}

// The same through the federation relay path: a peer broker (or an agency homed there)
// relaying other bytes under a message id this broker holds is refused ID_REUSED; the very
// same relay again is a duplicate.
TEST_F(BrokerTest, ARelayReusingAHeldMessageIdWithOtherBytesIsRefused) {
  ASSERT_TRUE(broker_->Start());
  const schema::Directory& dir = fed_.directory();
  auto busan = Connect("busan-broker");
  auto police = Connect("seoul-police-03");
  uint64_t rid = 1000;
  auto relay = [&](const Bytes& envelope, const std::string& for_recipient) {
    Frame f;
    f.type = Frame::Type::kRelay;
    f.request_id = ++rid;
    f.relay.envelope = envelope;
    f.relay.hops = 0;
    f.relay.for_recipients = {for_recipient};
    busan->SendFrame(f);
    return busan->Expect(Frame::Type::kAck, rid, 5000);
  };
  const Bytes held = SealTo(Id("busan-support"), dir, {"seoul-counsel"}, Now());
  auto first = relay(held, "seoul-counsel");
  ASSERT_TRUE(first && first->type == Frame::Type::kAck) << broker_->Log();
  keys::SealRequest req;
  req.kind = schema::MessageKind::kOpaque;
  req.case_ref = "test-case-0001";
  req.now = Now();
  req.message_id = schema::DecodeEnvelope(held)->header.message_id;
  auto pk = keys::CurrentPrekey(dir, "seoul-police-03", req.now);
  ASSERT_TRUE(pk.ok());
  req.recipients.push_back(*pk);
  auto reused = keys::SealEnvelope(Id("busan-support"), req, keys::RandomBytes(64));
  ASSERT_TRUE(reused.ok()) << reused.status().ToString();
  ExpectNack(relay(*reused, "seoul-police-03"), NackReason::kIdReused);
  EXPECT_FALSE(police->Receive(1500).has_value()) << "the held envelope was re-addressed";
  auto again = relay(held, "seoul-counsel");
  ASSERT_TRUE(again && again->type == Frame::Type::kAck);
  EXPECT_TRUE(again->ack.duplicate);
  EXPECT_EQ(broker_->Stop(), 0);
}

// Defence in depth behind the id-reuse refusal (issue 17 item 1): whatever a mailbox entry
// says, a stored envelope's bytes go only to its own recipients. An entry planted in the
// police unit's mailbox for the counseling center's envelope is quarantined, never sent.
TEST_F(BrokerTest, AMailboxEntryForANonRecipientIsQuarantinedNotDelivered) {
  ASSERT_TRUE(broker_->Start());
  Bytes env;
  {
    auto wee = Connect("seoul-wee-01");
    env = SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now());
    auto r = wee->Submit(env);
    ASSERT_TRUE(r && r->type == Frame::Type::kAck);
  }
  ASSERT_EQ(broker_->Stop(), 0);
  const Bytes id = schema::DecodeEnvelope(env)->header.message_id;
  {
    lmdb::EnvOptions eo;
    eo.map_size_bytes = size_t{4} << 30;
    eo.max_dbs = 32;
    auto lenv = lmdb::Env::Open(root_ + "/seoul-data", eo);
    ASSERT_TRUE(lenv.ok()) << lenv.status().ToString();
    auto mbox = (*lenv)->OpenDb("mbox");
    ASSERT_TRUE(mbox.ok());
    auto txn = (*lenv)->BeginWrite();
    ASSERT_TRUE(txn.ok());
    Bytes key = ToBytes("seoul-police-03");
    key.push_back(0);
    Bytes seq = lmdb::U64Key(uint64_t{1} << 40);
    key.insert(key.end(), seq.begin(), seq.end());
    ASSERT_TRUE(txn->Put(*mbox, key, id).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  ASSERT_TRUE(broker_->Start());
  auto police = Connect("seoul-police-03");
  EXPECT_FALSE(police->Receive(2000).has_value()) << "a non-recipient was handed the envelope";
  auto counsel = Connect("seoul-counsel");
  EXPECT_EQ(counsel->DrainAndAck(1500, /*skip_others=*/true), std::vector<Bytes>{id})
      << "its recipient still gets it";
  ASSERT_EQ(broker_->Stop(), 0);
  EXPECT_NE(broker_->Log().find("MISADDRESSED mailbox entry"), std::string::npos) << broker_->Log();
  broker::StoreOptions o;
  o.dir = root_ + "/seoul-data";
  o.broker_id = "seoul-broker";
  auto store = broker::Store::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  size_t quarantined = 0;
  for (uint64_t i = 0; i < *(*store)->AuditSize(); ++i) {
    auto e = schema::DecodeAuditEntry(*(*store)->AuditEntryBytes(i));
    ASSERT_TRUE(e.ok());
    if (e->event != schema::AuditEvent::kEnvelopeQuarantined) continue;
    ++quarantined;
    EXPECT_EQ(e->message_id, id);
    EXPECT_EQ(e->actor, "seoul-police-03");
    EXPECT_NE(e->detail.find("not a recipient"), std::string::npos) << e->detail;
  }
  EXPECT_EQ(quarantined, 1u);
}

TEST_F(BrokerTest, DamagedStoredEnvelopeIsQuarantinedAndTheRestIsDelivered) {
  ASSERT_TRUE(broker_->Start());
  std::vector<Bytes> sent;
  {
    auto wee = Connect("seoul-wee-01");
    for (int i = 0; i < 3; ++i) {
      sent.push_back(SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now()));
      auto r = wee->Submit(sent.back());
      ASSERT_TRUE(r && r->type == Frame::Type::kAck);
    }
  }
  ASSERT_EQ(broker_->Stop(), 0);
  // A bit flips on disk in the middle envelope's record while the broker is down.
  const Bytes damaged = schema::DecodeEnvelope(sent[1])->header.message_id;
  {
    lmdb::EnvOptions eo;
    eo.map_size_bytes = size_t{4} << 30;
    eo.max_dbs = 32;
    auto env = lmdb::Env::Open(root_ + "/seoul-data", eo);
    ASSERT_TRUE(env.ok()) << env.status().ToString();
    auto msgs = (*env)->OpenDb("msgs");
    ASSERT_TRUE(msgs.ok());
    auto txn = (*env)->BeginWrite();
    ASSERT_TRUE(txn.ok());
    auto v = txn->Get(*msgs, damaged);
    ASSERT_TRUE(v.ok());
    Bytes rec(v->begin(), v->end());
    rec[rec.size() / 2] ^= 0x01;
    ASSERT_TRUE(txn->Put(*msgs, damaged, rec).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  ASSERT_TRUE(broker_->Start());
  auto counsel = Connect("seoul-counsel");
  std::vector<Bytes> got;
  for (int i = 0; i < 20 && got.size() < 2; ++i) {
    auto d = counsel->Receive(500);
    if (!d || d->type != Frame::Type::kDeliver) continue;
    got.push_back(d->deliver.envelope);
    Frame ack;
    ack.type = Frame::Type::kAck;
    ack.request_id = d->request_id;
    ack.ack.message_id = schema::DecodeEnvelope(d->deliver.envelope)->header.message_id;
    counsel->SendFrame(ack);
  }
  ASSERT_EQ(got.size(), 2u) << broker_->Log();
  EXPECT_EQ(got[0], sent[0]);
  EXPECT_EQ(got[1], sent[2]) << "the damaged one is skipped, never delivered";
  EXPECT_FALSE(counsel->Receive(1000).has_value());
  EXPECT_EQ(broker_->Stop(), 0);
  EXPECT_NE(broker_->Log().find("DAMAGED stored envelope"), std::string::npos);
  broker::StoreOptions o;
  o.dir = root_ + "/seoul-data";
  o.broker_id = "seoul-broker";
  auto store = broker::Store::Open(o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  size_t quarantined = 0;
  for (uint64_t i = 0; i < *(*store)->AuditSize(); ++i) {
    auto e = schema::DecodeAuditEntry(*(*store)->AuditEntryBytes(i));
    ASSERT_TRUE(e.ok());
    if (e->event == schema::AuditEvent::kEnvelopeQuarantined) {
      ++quarantined;
      EXPECT_EQ(e->message_id, damaged);
      EXPECT_EQ(e->actor, "seoul-counsel");
    }
  }
  EXPECT_EQ(quarantined, 1u);
}

TEST_F(BrokerTest, AFloodingAgencyCannotTakeAMailboxOrStallTheOthers) {
  broker_->set_limits("mailbox_quota = 100\nsender_quota = 40");
  ASSERT_TRUE(broker_->Start());
  const auto& dir = fed_.directory();
  auto police = Connect("seoul-police-03");
  auto wee = Connect("seoul-wee-01");
  // The police unit floods the (offline) counseling center: its share ends at 40, with a
  // reason that says so; the Wee center still gets into the same mailbox.
  size_t accepted = 0;
  std::optional<Frame> refused;
  for (int i = 0; i < 60 && !refused; ++i) {
    auto r = police->Submit(SealTo(Id("seoul-police-03"), dir, {"seoul-counsel"}, Now()));
    ASSERT_TRUE(r.has_value());
    if (r->type == Frame::Type::kAck) {
      ++accepted;
    } else {
      refused = r;
    }
  }
  EXPECT_EQ(accepted, 40u);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->nack.reason, NackReason::kQuotaExceeded);
  EXPECT_NE(refused->nack.detail.find("sender_quota"), std::string::npos) << refused->nack.detail;
  EXPECT_GT(refused->nack.retry_after_ms, 0u);
  for (int i = 0; i < 10; ++i) {
    auto r = wee->Submit(SealTo(Id("seoul-wee-01"), dir, {"seoul-counsel"}, Now()));
    ASSERT_TRUE(r && r->type == Frame::Type::kAck) << "the others keep their share";
  }
  // Once the counseling center takes its mail, the police unit's share frees up.
  auto counsel = Connect("seoul-counsel");
  size_t taken = 0;
  for (int i = 0; i < 200 && taken < 50; ++i) {
    auto d = counsel->Receive(200);
    if (!d || d->type != Frame::Type::kDeliver) continue;
    Frame ack;
    ack.type = Frame::Type::kAck;
    ack.request_id = d->request_id;
    ack.ack.message_id = schema::DecodeEnvelope(d->deliver.envelope)->header.message_id;
    counsel->SendFrame(ack);
    ++taken;
  }
  ASSERT_EQ(taken, 50u);
  std::optional<Frame> again;
  for (int i = 0; i < Scaled(30); ++i) {  // the acks' commit may trail the last delivery
    again = police->Submit(SealTo(Id("seoul-police-03"), dir, {"seoul-counsel"}, Now()));
    if (again && again->type == Frame::Type::kAck) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(again && again->type == Frame::Type::kAck);

  // Thousands of connection attempts with unknown keys, and a pipelined flood of
  // submissions from the police unit: the Wee center is still served, every time.
  zmq::context_t ctx;
  std::vector<zmq::socket_t> strangers;
  for (int i = 0; i < 1000; ++i) {
    zmq::socket_t sock(ctx, zmq::socket_type::dealer);
    Bytes pub(32), sec(32);
    crypto_box_keypair(pub.data(), sec.data());
    ASSERT_TRUE(zmqx::ConfigureCurveClient(sock, BrokerKey(), pub, sec).ok());
    sock.set(zmq::sockopt::linger, 0);
    sock.connect(broker_->endpoint());
    strangers.push_back(std::move(sock));
  }
  for (int i = 0; i < 2000; ++i) {
    Frame f;
    f.type = Frame::Type::kSubmit;
    f.request_id = 100000 + static_cast<uint64_t>(i);
    f.submit.envelope =
        SealTo(Id("seoul-police-03"), dir, {"seoul-wee-01"}, Now(), kMillisPerHour, 256);
    police->SendFrame(f);
  }
  for (int i = 0; i < 20; ++i) {
    auto r = wee->Submit(SealTo(Id("seoul-wee-01"), dir, {"seoul-police-03"}, Now()), 10000);
    ASSERT_TRUE(r && r->type == Frame::Type::kAck) << "submission " << i << " not served";
  }
  strangers.clear();
  EXPECT_EQ(broker_->Stop(), 0);
  const std::string log = broker_->Log();
  EXPECT_NE(log.find("key not in the directory"), std::string::npos);
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
  // The status (and /readyz from it) says so while it lasts.
  auto full_since = [&] {
    auto j = nlohmann::json::parse(broker_->StatusJson(), nullptr, false);
    return j.is_discarded() ? uint64_t{0} : j.value("storage_full_since_ms", uint64_t{0});
  };
  uint64_t since = 0;
  for (int i = 0; i < Scaled(30) && since == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    since = full_since();
  }
  EXPECT_GT(since, 0u) << broker_->StatusJson();

  // Everything accepted before the disk filled is still delivered, and acks free room.
  auto counsel = Connect("seoul-counsel");
  // Delivery is at least once: a slow ack can bring an envelope again.
  std::vector<Bytes> got = counsel->DrainAndAck(3000);
  size_t delivered = std::set<Bytes>(got.begin(), got.end()).size();
  EXPECT_EQ(delivered, accepted) << "an accepted envelope was lost while storage was full";
  // LMDB reuses the pages the acks freed once no snapshot needs them (a commit or two
  // later): the sender retries, as agents do on storage-full, and gets in.
  std::optional<Frame> r;
  for (int attempt = 0; attempt < Scaled(80); ++attempt) {  // 20 s on a loaded machine
    r = wee->Submit(SealTo(Id("seoul-wee-01"), fed_.directory(), {"seoul-counsel"}, Now(),
                           kMillisPerHour, 64 << 10));
    ASSERT_TRUE(r.has_value());
    if (r->type == Frame::Type::kAck) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(r->type, Frame::Type::kAck)
      << "no recovery after room returned: " << schema::Name(r->nack.reason) << "\n"
      << broker_->Log();
  for (int i = 0; i < Scaled(30) && since != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    since = full_since();
  }
  EXPECT_EQ(since, 0u) << "still reported full after recovering";
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
