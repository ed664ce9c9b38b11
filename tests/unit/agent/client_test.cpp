// agent::Client against FakeBroker over CURVE on loopback: session, submit window, acks and
// nacks, resends, deliveries with deduplication, reconnects, agent restarts, and control
// frames (SubmitControl) through the same outbox.
//
// Every test drives client and broker from one thread and waits for an observable outcome
// with a generous bound (RunUntil); nothing asserts how long anything took.
#include "agent/client.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/transport_store.h"
#include "keys/checkpoint.h"
#include "tests/unit/agent/fake_broker.h"
#include "tests/unit/test_util.h"

namespace refbus::agent {
namespace {

using ::refbus::agent::test::FakeBroker;
using ::refbus::agent::test::Federation;
using ::refbus::agent::test::MessageIdOf;
using refbus::test::HasCode;
using refbus::test::HasError;
using refbus::test::IsOk;
using refbus::test::Must;
using refbus::test::TempDir;
using Type = ClientEvent::Type;
using FrameType = schema::Frame::Type;

constexpr int kBoundMs = 20000;  // a failure bound, not an expected duration

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override { spdlog::set_level(spdlog::level::warn); }

  std::map<Bytes, std::string> Allowed() const {
    return {{fed_.agency.transport_public_key(), fed_.agency.party_id()},
            {fed_.peer.transport_public_key(), fed_.peer.party_id()}};
  }

  std::unique_ptr<FakeBroker> NewBroker(const std::string& endpoint = "tcp://127.0.0.1:*") {
    auto b =
        std::make_unique<FakeBroker>(fed_.broker, fed_.directory().serial, Allowed(), endpoint);
    b->directory_bytes = schema::EncodeSignedDirectory(fed_.signed_directory);
    return b;
  }

  std::unique_ptr<TransportStore> NewStore() {
    return Must(TransportStore::Open(dir_.Join("agent-data"), StoreOptions{size_t{64} << 20}));
  }

  ClientOptions FastOptions() const {
    ClientOptions o;
    o.reconnect_interval_ms = 20;
    o.reconnect_interval_max_ms = 200;
    return o;
  }

  std::unique_ptr<Client> NewClient(TransportStore& store, const std::string& endpoint,
                                    const ClientOptions& options,
                                    const keys::Identity* who = nullptr) {
    return std::make_unique<Client>(who != nullptr ? *who : fed_.agency, fed_.directory(), endpoint,
                                    store, options);
  }

  // Alternates client and broker turns until done() or the bound; collects the client's
  // events and the first Poll error.
  bool RunUntil(Client& client, FakeBroker* broker, const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBoundMs);
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      Status s = client.Poll(2);
      if (!s.ok() && poll_error_.ok()) poll_error_ = s;
      if (broker != nullptr) broker->Poll(2);
      for (auto& e : client.TakeEvents()) events_.push_back(std::move(e));
    }
    return true;
  }

  std::vector<ClientEvent> EventsOf(Type t) const {
    std::vector<ClientEvent> out;
    for (const auto& e : events_) {
      if (e.type == t) out.push_back(e);
    }
    return out;
  }

  // A control frame whose statement starts with id (FakeBroker's convention for reading
  // the id a real broker would find inside the signed statement), then random bytes.
  static schema::Frame Control(FrameType type, const Bytes& id, size_t extra = 48) {
    Bytes payload = id;
    Bytes rest = keys::RandomBytes(extra);
    payload.insert(payload.end(), rest.begin(), rest.end());
    schema::Frame f;
    f.type = type;
    switch (type) {
      case FrameType::kGrantRegister:
        f.grant_register.signed_grant = payload;
        break;
      case FrameType::kGrantRevoke:
        f.grant_revoke.signed_revocation = payload;
        break;
      default:
        f.attest.signed_purge = payload;
        break;
    }
    return f;
  }

  Federation fed_;
  TempDir dir_;
  std::vector<ClientEvent> events_;
  Status poll_error_;
};

TEST_F(ClientTest, SubmissionsAreAckedOnceAndLeaveTheOutbox) {
  auto broker = NewBroker();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));

  std::vector<Bytes> envs;
  envs.reserve(5);
  for (int i = 0; i < 5; ++i) envs.push_back(fed_.Seal(fed_.agency, test::kPeerId));
  auto ids = client->SubmitBatch(envs);
  ASSERT_TRUE(IsOk(ids));
  ASSERT_EQ(ids->size(), 5u);
  // Durable before anything is sent.
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 5u);

  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return EventsOf(Type::kAcked).size() == 5; }));
  EXPECT_TRUE(IsOk(poll_error_));
  std::set<Bytes> acked;
  for (const auto& e : EventsOf(Type::kAcked)) {
    EXPECT_FALSE(e.duplicate);
    acked.insert(e.message_id);
  }
  EXPECT_EQ(acked, std::set<Bytes>(ids->begin(), ids->end()));
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
  EXPECT_EQ(client->outstanding(), 0u);
  EXPECT_EQ(client->counters().acked, 5u);
  EXPECT_EQ(client->counters().submitted, 5u);

  // The session: one Hello from the authenticated agency, with our software name.
  ASSERT_GE(broker->hellos.size(), 1u);
  EXPECT_EQ(broker->hello_user_ids[0], test::kAgencyId);
  EXPECT_EQ(broker->hellos[0].hello.party_id, test::kAgencyId);
  EXPECT_EQ(broker->hellos[0].hello.software, kSoftwareName);
  EXPECT_EQ(broker->hellos[0].hello.directory_serial, fed_.directory().serial);
  EXPECT_TRUE(client->session_ready());
  EXPECT_EQ(client->home_broker_id(), test::kBrokerId);
}

// Checkpoint in Ack (PROTOCOL.md 6): kept only when the home broker's key signed it and it
// is larger than the kept one.
TEST_F(ClientTest, CheckpointsInAcksAreVerifiedAndOnlyLargerOnesKept) {
  auto broker = NewBroker();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  const std::string origin = "refbus/" + fed_.directory().federation + "/" + test::kBrokerId;
  auto note = [&](uint64_t size, uint8_t fill, const keys::Identity& signer) {
    keys::Checkpoint c;
    c.origin = origin;
    c.size = size;
    c.root.fill(fill);
    return Must(keys::SignCheckpoint(c, signer));
  };
  size_t acked = 0;
  auto submit_with = [&](const std::string& checkpoint) {
    broker->ack_checkpoint = checkpoint;
    Must(client->SubmitBatch({fed_.Seal(fed_.agency, test::kPeerId)}));
    ++acked;
    ASSERT_TRUE(
        RunUntil(*client, broker.get(), [&] { return EventsOf(Type::kAcked).size() == acked; }));
  };
  // Signed by another party's key: not kept.
  submit_with(note(5, 0x11, fed_.peer));
  EXPECT_FALSE(Must(store->LatestCheckpoint()).has_value());
  EXPECT_EQ(client->counters().checkpoints_refused, 1u);
  // The broker's: kept, with the note as sent.
  const std::string five = note(5, 0x11, fed_.broker);
  submit_with(five);
  auto kept = Must(store->LatestCheckpoint());
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->size, 5u);
  EXPECT_EQ(kept->note, five);
  EXPECT_EQ(kept->broker_id, test::kBrokerId);
  // Smaller, or the same size with another root: the broker went back; the kept one stays.
  submit_with(note(3, 0x22, fed_.broker));
  submit_with(note(5, 0x33, fed_.broker));
  EXPECT_EQ(client->counters().checkpoints_refused, 3u);
  EXPECT_EQ(Must(store->LatestCheckpoint())->note, five);
  // Larger: replaces it, and survives the client.
  const std::string eight = note(8, 0x44, fed_.broker);
  submit_with(eight);
  EXPECT_EQ(client->counters().checkpoints_kept, 2u);
  client.reset();
  EXPECT_EQ(Must(store->LatestCheckpoint())->note, eight);
}

TEST_F(ClientTest, WindowLimitsSubmissionsInFlight) {
  auto broker = NewBroker();
  broker->hold_submits = true;
  auto store = NewStore();
  ClientOptions o = FastOptions();
  o.window = 2;
  o.submit_timeout_ms = 600000;  // no timeout resends in this test
  auto client = NewClient(*store, broker->endpoint(), o);
  ASSERT_TRUE(IsOk(client->Start()));
  std::vector<Bytes> envs;
  envs.reserve(7);
  for (int i = 0; i < 7; ++i) envs.push_back(fed_.Seal(fed_.agency, test::kPeerId));
  ASSERT_TRUE(IsOk(client->SubmitBatch(envs)));

  // Release the broker's answers only when it holds a full window, until all are acked.
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] {
    if (broker->held() >= 2 || (broker->held() > 0 && client->unsent() == 0)) broker->ReleaseHeld();
    return EventsOf(Type::kAcked).size() == 7;
  }));
  EXPECT_EQ(broker->max_held, 2u);
  EXPECT_EQ(broker->submitted_ids.size(), 7u);  // each sent once
  EXPECT_EQ(client->counters().resent, 0u);
}

TEST_F(ClientTest, FinalNackIsReportedAndRemovedFromTheOutbox) {
  auto broker = NewBroker();
  broker->nack_next.emplace_back(schema::NackReason::kBadSignature, 0);
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes id = Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId)));

  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kRefused).empty(); }));
  auto refused = EventsOf(Type::kRefused);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].message_id, id);
  EXPECT_EQ(refused[0].reason, schema::NackReason::kBadSignature);
  EXPECT_EQ(refused[0].detail, "scripted by the test");
  EXPECT_TRUE(EventsOf(Type::kAcked).empty());
  EXPECT_EQ(client->outstanding(), 0u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
  EXPECT_EQ(client->counters().refused, 1u);
  EXPECT_EQ(broker->SubmitCount(id), 1u);
}

TEST_F(ClientTest, BackPressureNackKeepsTheEnvelopeAndRetries) {
  auto broker = NewBroker();
  broker->nack_next.emplace_back(schema::NackReason::kQuotaExceeded, 50);
  broker->nack_next.emplace_back(schema::NackReason::kStorageFull, 0);
  auto store = NewStore();
  ClientOptions o = FastOptions();
  o.default_retry_after_ms = 50;
  auto client = NewClient(*store, broker->endpoint(), o);
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes id = Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId)));

  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kAcked).empty(); }));
  EXPECT_EQ(EventsOf(Type::kAcked)[0].message_id, id);
  EXPECT_TRUE(EventsOf(Type::kRefused).empty());
  EXPECT_EQ(broker->SubmitCount(id), 3u);
  EXPECT_EQ(client->counters().backpressure, 2u);
  EXPECT_EQ(client->counters().resent, 2u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
}

TEST_F(ClientTest, InternalNackIsRetriedNotDropped) {
  // refbus-broker answers INTERNAL when it failed to store the envelope: dropping it here
  // would lose a referral that nobody holds.
  auto broker = NewBroker();
  broker->nack_next.emplace_back(schema::NackReason::kInternal, 20);
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes id = Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId)));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kAcked).empty(); }));
  EXPECT_TRUE(EventsOf(Type::kRefused).empty());
  EXPECT_EQ(broker->SubmitCount(id), 2u);
}

TEST_F(ClientTest, EnvelopeOverTheBrokersFrameLimitIsRefusedLocally) {
  auto broker = NewBroker();
  broker->max_frame_bytes = 1500;
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes big = Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId, 4000)));
  Bytes small = Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId, 100)));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] {
    return EventsOf(Type::kRefused).size() == 1 && EventsOf(Type::kAcked).size() == 1;
  }));
  EXPECT_EQ(EventsOf(Type::kRefused)[0].message_id, big);
  EXPECT_EQ(EventsOf(Type::kRefused)[0].reason, schema::NackReason::kTooLarge);
  EXPECT_EQ(EventsOf(Type::kAcked)[0].message_id, small);
  EXPECT_EQ(broker->SubmitCount(big), 0u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
}

TEST_F(ClientTest, PausedClientSendsNothingButStillTakesAnswers) {
  auto broker = NewBroker();
  broker->hold_submits = true;
  auto store = NewStore();
  ClientOptions o = FastOptions();
  o.submit_timeout_ms = 600000;
  auto client = NewClient(*store, broker->endpoint(), o);
  ASSERT_TRUE(IsOk(client->Start()));
  std::vector<Bytes> first = {fed_.Seal(fed_.agency, test::kPeerId),
                              fed_.Seal(fed_.agency, test::kPeerId)};
  ASSERT_TRUE(IsOk(client->SubmitBatch(first)));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return broker->held() == 2; }));

  client->PauseSubmissions(true);
  std::vector<Bytes> later = {fed_.Seal(fed_.agency, test::kPeerId),
                              fed_.Seal(fed_.agency, test::kPeerId)};
  ASSERT_TRUE(IsOk(client->SubmitBatch(later)));
  broker->ReleaseHeld();
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return EventsOf(Type::kAcked).size() == 2; }));
  EXPECT_EQ(client->in_flight(), 0u);
  EXPECT_EQ(client->counters().sent, 2u);  // the window had room, but nothing new left
  EXPECT_EQ(client->unsent(), 2u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 2u);  // kept for the next run

  client->PauseSubmissions(false);
  broker->hold_submits = false;
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return EventsOf(Type::kAcked).size() == 4; }));
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
}

TEST_F(ClientTest, UnansweredSubmissionIsSentAgainAfterTheTimeout) {
  auto broker = NewBroker();
  broker->drop_submits = 1;
  auto store = NewStore();
  ClientOptions o = FastOptions();
  o.submit_timeout_ms = 100;
  auto client = NewClient(*store, broker->endpoint(), o);
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes id = Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId)));

  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kAcked).empty(); }));
  EXPECT_EQ(EventsOf(Type::kAcked)[0].message_id, id);
  EXPECT_GE(broker->SubmitCount(id), 2u);
  EXPECT_GE(client->counters().resent, 1u);
  EXPECT_EQ(EventsOf(Type::kAcked).size(), 1u);
}

TEST_F(ClientTest, DuplicateAckCountsAsAcked) {
  auto broker = NewBroker();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes env = fed_.Seal(fed_.agency, test::kPeerId);
  broker->stored.insert(MessageIdOf(env));  // the broker already has it
  Bytes id = Must(client->Submit(env));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kAcked).empty(); }));
  EXPECT_EQ(EventsOf(Type::kAcked)[0].message_id, id);
  EXPECT_TRUE(EventsOf(Type::kAcked)[0].duplicate);
  EXPECT_EQ(client->counters().acked_duplicate, 1u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
}

TEST_F(ClientTest, DeliveriesAreStoredThenAckedAndReportedOnce) {
  auto broker = NewBroker();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return client->session_ready(); }));

  Bytes e1 = fed_.Seal(fed_.peer), e2 = fed_.Seal(fed_.peer), e3 = fed_.Seal(fed_.peer);
  std::vector<uint64_t> rids = {broker->Deliver(e1), broker->Deliver(e2),
                                broker->Deliver(e1, 1),  // a redelivery
                                broker->Deliver(e3)};
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return broker->agent_replies.size() == 4; }));
  EXPECT_TRUE(IsOk(poll_error_));

  std::vector<bool> dup_flags;
  for (size_t i = 0; i < 4; ++i) {
    const auto& r = broker->agent_replies[i];
    ASSERT_EQ(r.type, schema::Frame::Type::kAck) << i;
    EXPECT_EQ(r.request_id, rids[i]) << i;
    dup_flags.push_back(r.ack.duplicate);
  }
  EXPECT_EQ(dup_flags, (std::vector<bool>{false, false, true, false}));

  auto delivered = EventsOf(Type::kDelivered);
  ASSERT_EQ(delivered.size(), 3u);
  EXPECT_EQ(delivered[0].message_id, MessageIdOf(e1));
  EXPECT_EQ(delivered[0].envelope, e1);
  EXPECT_EQ(delivered[1].message_id, MessageIdOf(e2));
  EXPECT_EQ(delivered[2].message_id, MessageIdOf(e3));
  EXPECT_LT(delivered[0].inbox_sequence, delivered[1].inbox_sequence);

  // Acked means stored: every acked id is in the inbox, with its hash.
  for (const Bytes* e : {&e1, &e2, &e3}) {
    auto rec = store->GetInbox(MessageIdOf(*e));
    ASSERT_TRUE(IsOk(rec));
    EXPECT_EQ(rec->envelope, *e);
    EXPECT_EQ(rec->sha256, Sha256(*e));
  }
  EXPECT_EQ(client->counters().delivered, 3u);
  EXPECT_EQ(client->counters().duplicate_deliveries, 1u);
  EXPECT_LE(client->counters().delivery_commits, 4u);
  auto c = Must(store->Counters());
  EXPECT_EQ(c.inbox_messages, 3u);
  EXPECT_EQ(c.duplicate_deliveries, 1u);
}

TEST_F(ClientTest, RedeliveryAfterAgentRestartIsAckedButNotReportedAgain) {
  auto broker = NewBroker();
  Bytes e1 = fed_.Seal(fed_.peer);
  {
    auto store = NewStore();
    auto client = NewClient(*store, broker->endpoint(), FastOptions());
    ASSERT_TRUE(IsOk(client->Start()));
    ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return client->session_ready(); }));
    broker->Deliver(e1);
    ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return broker->agent_replies.size() == 1; }));
    ASSERT_EQ(EventsOf(Type::kDelivered).size(), 1u);
  }
  events_.clear();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  // The broker sends to the latest Hello: wait for the new session before redelivering.
  size_t hellos = broker->hellos.size();
  ASSERT_TRUE(RunUntil(*client, broker.get(),
                       [&] { return client->session_ready() && broker->hellos.size() > hellos; }));
  uint64_t rid = broker->Deliver(e1, 1);
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return broker->agent_replies.size() == 2; }));
  EXPECT_EQ(broker->agent_replies[1].type, schema::Frame::Type::kAck);
  EXPECT_EQ(broker->agent_replies[1].request_id, rid);
  EXPECT_TRUE(broker->agent_replies[1].ack.duplicate);
  EXPECT_TRUE(EventsOf(Type::kDelivered).empty());
  EXPECT_EQ(client->counters().duplicate_deliveries, 1u);
  EXPECT_EQ(Must(store->Counters()).inbox_messages, 1u);
}

// Issue 17 item 1: a delivery of other bytes under a message id the inbox holds is not a
// redelivery: it is refused (ID_REUSED), counted, and the held envelope stays.
TEST_F(ClientTest, OtherBytesUnderAHeldMessageIdAreRefusedNotAckedAsDuplicate) {
  auto broker = NewBroker();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return client->session_ready(); }));
  const Bytes held = fed_.Seal(fed_.peer);
  const Bytes other = fed_.Seal(fed_.peer, test::kAgencyId, 64, MessageIdOf(held));
  ASSERT_NE(held, other);
  broker->Deliver(held);
  const uint64_t rid = broker->Deliver(other);
  broker->Deliver(held, 1);  // the true redelivery is still a duplicate
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return broker->agent_replies.size() == 3; }));
  const auto& r = broker->agent_replies[1];
  ASSERT_EQ(r.type, schema::Frame::Type::kNack) << "other bytes were acked";
  EXPECT_EQ(r.request_id, rid);
  EXPECT_EQ(r.nack.reason, schema::NackReason::kIdReused);
  ASSERT_EQ(broker->agent_replies[2].type, schema::Frame::Type::kAck);
  EXPECT_TRUE(broker->agent_replies[2].ack.duplicate);
  EXPECT_EQ(client->counters().id_reused_deliveries, 1u);
  EXPECT_EQ(client->counters().duplicate_deliveries, 1u);
  EXPECT_EQ(EventsOf(Type::kDelivered).size(), 1u);
  EXPECT_EQ(Must(store->GetInbox(MessageIdOf(held))).envelope, held);
  EXPECT_EQ(Must(store->Counters()).duplicate_deliveries, 1u);
}

TEST_F(ClientTest, UndecodableDeliveryIsNackedMalformed) {
  auto broker = NewBroker();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return client->session_ready(); }));
  uint64_t rid = broker->Deliver(keys::RandomBytes(100));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return broker->agent_replies.size() == 1; }));
  const auto& r = broker->agent_replies[0];
  ASSERT_EQ(r.type, schema::Frame::Type::kNack);
  EXPECT_EQ(r.request_id, rid);
  EXPECT_EQ(r.nack.reason, schema::NackReason::kMalformed);
  EXPECT_TRUE(EventsOf(Type::kDelivered).empty());
  EXPECT_EQ(client->counters().malformed_deliveries, 1u);
  EXPECT_EQ(Must(store->Counters()).inbox_messages, 0u);
}

TEST_F(ClientTest, InboxFailureIsNotAckedAndAsksForRedelivery) {
  auto broker = NewBroker();
  // A store too small for the delivery: the commit fails with a full map.
  auto store = Must(TransportStore::Open(dir_.Join("tiny"), StoreOptions{size_t{256} << 10}));
  ClientOptions o = FastOptions();
  o.store_retry_ms = 50;
  auto client = NewClient(*store, broker->endpoint(), o);
  ASSERT_TRUE(IsOk(client->Start()));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return client->session_ready(); }));
  size_t hellos = broker->hellos.size();
  broker->Deliver(fed_.Seal(fed_.peer, test::kAgencyId, size_t{1} << 20));

  // The client says Hello again (so the broker resends) instead of acknowledging.
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return broker->hellos.size() > hellos; }));
  EXPECT_TRUE(HasCode(poll_error_, Status::Code::kResourceExhausted));
  EXPECT_TRUE(broker->agent_replies.empty());
  EXPECT_TRUE(EventsOf(Type::kDelivered).empty());
  EXPECT_GE(client->counters().store_errors, 1u);
}

TEST_F(ClientTest, ReconnectSaysHelloAgainAndResendsWhatWasInFlight) {
  auto broker = NewBroker();
  broker->drop_submits = 1000;  // the first broker never answers
  const std::string endpoint = broker->endpoint();
  auto store = NewStore();
  ClientOptions o = FastOptions();
  o.submit_timeout_ms = 600000;   // any resend here is due to the reconnect
  o.welcome_timeout_ms = 600000;  // and any Hello to the handshake seen by the monitor
  auto client = NewClient(*store, endpoint, o);
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes id = Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId)));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return broker->SubmitCount(id) == 1; }));

  // The broker dies and comes back on the same endpoint, without the submission.
  broker.reset();
  broker = NewBroker(endpoint);
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kAcked).empty(); }));
  EXPECT_EQ(EventsOf(Type::kAcked)[0].message_id, id);
  ASSERT_GE(broker->hellos.size(), 1u);
  EXPECT_EQ(broker->hello_user_ids[0], test::kAgencyId);
  EXPECT_EQ(broker->SubmitCount(id), 1u);
  EXPECT_GE(client->counters().connects, 2u);
  EXPECT_GE(client->counters().sessions, 2u);
  EXPECT_EQ(client->counters().resent, 1u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);

  // Deliveries flow on the new session too.
  Bytes e = fed_.Seal(fed_.peer);
  broker->Deliver(e);
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kDelivered).empty(); }));
  EXPECT_EQ(EventsOf(Type::kDelivered)[0].message_id, MessageIdOf(e));
}

TEST_F(ClientTest, MissingWelcomeMakesTheClientSayHelloAgain) {
  auto broker = NewBroker();
  broker->drop_hellos = 1;
  auto store = NewStore();
  ClientOptions o = FastOptions();
  o.welcome_timeout_ms = 100;
  auto client = NewClient(*store, broker->endpoint(), o);
  ASSERT_TRUE(IsOk(client->Start()));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return client->session_ready(); }));
  EXPECT_GE(broker->hellos.size(), 2u);
  EXPECT_EQ(client->counters().sessions, 1u);
}

TEST_F(ClientTest, OutboxIsResubmittedAfterAnAgentRestart) {
  auto broker = NewBroker();
  broker->drop_submits = 3;  // the agent "crashes" before any answer
  std::vector<Bytes> ids;
  {
    auto store = NewStore();
    auto client = NewClient(*store, broker->endpoint(), FastOptions());
    ASSERT_TRUE(IsOk(client->Start()));
    for (int i = 0; i < 3; ++i)
      ids.push_back(Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId))));
    ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return broker->submitted_ids.size() == 3; }));
  }
  auto store = NewStore();
  EXPECT_EQ(Must(store->OutboxIds()), ids);
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  EXPECT_EQ(client->counters().recovered, 3u);
  EXPECT_EQ(client->outstanding(), 3u);
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return EventsOf(Type::kAcked).size() == 3; }));
  std::vector<Bytes> acked;
  for (const auto& e : EventsOf(Type::kAcked)) acked.push_back(e.message_id);
  EXPECT_EQ(acked, ids);  // resubmitted oldest first
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
}

TEST_F(ClientTest, FetchDirectoryReturnsTheBrokersSignedDirectory) {
  auto broker = NewBroker();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  ASSERT_TRUE(IsOk(client->FetchDirectory(0)));
  ASSERT_TRUE(
      RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kDirectoryReply).empty(); }));
  EXPECT_EQ(EventsOf(Type::kDirectoryReply)[0].signed_directory,
            schema::EncodeSignedDirectory(fed_.signed_directory));

  events_.clear();
  ASSERT_TRUE(IsOk(client->FetchDirectory(fed_.directory().serial)));
  ASSERT_TRUE(
      RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kDirectoryReply).empty(); }));
  EXPECT_TRUE(EventsOf(Type::kDirectoryReply)[0].signed_directory.empty());
}

TEST_F(ClientTest, KeyUnknownToTheBrokerGetsNoSession) {
  auto broker = NewBroker();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions(), &fed_.outsider);
  ASSERT_TRUE(IsOk(client->Start()));
  ASSERT_TRUE(
      RunUntil(*client, broker.get(), [&] { return client->counters().handshake_failures >= 1; }));
  EXPECT_GE(broker->zap_denied, 1);
  EXPECT_TRUE(broker->hellos.empty());
  EXPECT_FALSE(client->session_ready());
}

TEST_F(ClientTest, StartChecksTheDirectory) {
  auto store = NewStore();
  Federation other;  // its agency is not in fed_'s directory
  Client stranger(other.agency, fed_.directory(), "tcp://127.0.0.1:1", *store);
  EXPECT_TRUE(HasCode(stranger.Start(), Status::Code::kFailedPrecondition));

  auto unknown = test::MakeIdentity("nobody-here", schema::PartyKind::kAgency, fed_.now);
  Client nobody(unknown, fed_.directory(), "tcp://127.0.0.1:1", *store);
  EXPECT_TRUE(HasCode(nobody.Start(), Status::Code::kNotFound));

  Client ok(fed_.agency, fed_.directory(), "tcp://127.0.0.1:1", *store);
  EXPECT_TRUE(HasCode(ok.Submit(fed_.Seal(fed_.agency, test::kPeerId)),
                      Status::Code::kFailedPrecondition));  // not started
  EXPECT_TRUE(IsOk(ok.Start()));
  EXPECT_TRUE(HasError(ok.Start(), Status::Code::kFailedPrecondition, "already"));
}

TEST_F(ClientTest, SubmitRefusesWhatThisAgencyDidNotSeal) {
  auto store = NewStore();
  Client client(fed_.agency, fed_.directory(), "tcp://127.0.0.1:1", *store);
  ASSERT_TRUE(IsOk(client.Start()));
  EXPECT_TRUE(HasCode(client.Submit(fed_.Seal(fed_.peer)), Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(client.Submit(keys::RandomBytes(64)), Status::Code::kMalformed));
  // A refused batch queues nothing.
  std::vector<Bytes> batch = {fed_.Seal(fed_.agency, test::kPeerId), keys::RandomBytes(64)};
  EXPECT_FALSE(client.SubmitBatch(batch).ok());
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
  EXPECT_EQ(client.outstanding(), 0u);
}

// ---------------------------------------------------------------- control frames

TEST_F(ClientTest, ControlFramesReachTheBrokerAndAreAckedAsControl) {
  auto broker = NewBroker();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  const std::vector<FrameType> types = {FrameType::kGrantRegister, FrameType::kGrantRevoke,
                                        FrameType::kAttest};
  std::vector<Bytes> ids;
  std::vector<schema::Frame> frames;
  for (FrameType t : types) {
    ids.push_back(keys::RandomBytes(16));
    frames.push_back(Control(t, ids.back()));
    ASSERT_TRUE(IsOk(client->SubmitControl(ids.back(), frames.back())));
  }
  // Durable before anything is sent, as control records.
  EXPECT_EQ(Must(store->OutboxIds()), ids);
  for (const Bytes& id : ids) {
    EXPECT_TRUE(Must(store->OutboxEntry(id)).control);
    EXPECT_TRUE(HasCode(store->OutboxEnvelope(id), Status::Code::kFailedPrecondition));
  }

  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return EventsOf(Type::kAcked).size() == 3; }));
  EXPECT_TRUE(IsOk(poll_error_));
  ASSERT_EQ(broker->controls.size(), 3u);
  std::set<uint64_t> request_ids;
  for (size_t i = 0; i < 3; ++i) {
    const schema::Frame& got = broker->controls[i];
    EXPECT_EQ(got.type, types[i]) << i;
    EXPECT_EQ(test::ControlPayload(got), test::ControlPayload(frames[i])) << i;
    EXPECT_NE(got.request_id, 0u) << i;
    request_ids.insert(got.request_id);
  }
  EXPECT_EQ(request_ids.size(), 3u);
  EXPECT_TRUE(broker->controls[2].attest.signed_access.empty());
  EXPECT_TRUE(broker->submitted_ids.empty());  // no Submit frame for a control item

  auto acked = EventsOf(Type::kAcked);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(acked[i].message_id, ids[i]) << i;
    EXPECT_TRUE(acked[i].control) << i;
    EXPECT_FALSE(acked[i].duplicate) << i;
  }
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
  EXPECT_EQ(client->outstanding(), 0u);
  EXPECT_EQ(client->counters().submitted, 3u);
  EXPECT_EQ(client->counters().acked, 3u);
}

TEST_F(ClientTest, EnvelopeEventsAreNotMarkedControl) {
  auto broker = NewBroker();
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes id = Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId)));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kAcked).empty(); }));
  EXPECT_EQ(EventsOf(Type::kAcked)[0].message_id, id);
  EXPECT_FALSE(EventsOf(Type::kAcked)[0].control);
}

TEST_F(ClientTest, ControlFinalNackIsRefusedAndLeavesTheOutbox) {
  auto broker = NewBroker();
  broker->nack_next.emplace_back(schema::NackReason::kConsentExpired, 0);
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes id = keys::RandomBytes(16);
  ASSERT_TRUE(IsOk(client->SubmitControl(id, Control(FrameType::kGrantRegister, id))));

  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kRefused).empty(); }));
  auto refused = EventsOf(Type::kRefused);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].message_id, id);
  EXPECT_TRUE(refused[0].control);
  EXPECT_EQ(refused[0].reason, schema::NackReason::kConsentExpired);
  EXPECT_EQ(refused[0].detail, "scripted by the test");
  EXPECT_TRUE(EventsOf(Type::kAcked).empty());
  EXPECT_EQ(broker->controls.size(), 1u);
  EXPECT_EQ(client->outstanding(), 0u);
  EXPECT_EQ(client->counters().refused, 1u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
}

TEST_F(ClientTest, ControlBackPressureNackKeepsItAndRetriesWithFreshRequestIds) {
  auto broker = NewBroker();
  broker->nack_next.emplace_back(schema::NackReason::kQuotaExceeded, 50);
  broker->nack_next.emplace_back(schema::NackReason::kStorageFull, 0);
  auto store = NewStore();
  ClientOptions o = FastOptions();
  o.default_retry_after_ms = 50;
  auto client = NewClient(*store, broker->endpoint(), o);
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes id = keys::RandomBytes(16);
  schema::Frame f = Control(FrameType::kGrantRevoke, id);
  ASSERT_TRUE(IsOk(client->SubmitControl(id, f)));

  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kAcked).empty(); }));
  EXPECT_EQ(EventsOf(Type::kAcked)[0].message_id, id);
  EXPECT_TRUE(EventsOf(Type::kAcked)[0].control);
  EXPECT_TRUE(EventsOf(Type::kRefused).empty());
  ASSERT_EQ(broker->controls.size(), 3u);
  std::set<uint64_t> request_ids;
  for (const auto& got : broker->controls) {
    EXPECT_EQ(got.type, FrameType::kGrantRevoke);
    EXPECT_EQ(got.grant_revoke.signed_revocation, f.grant_revoke.signed_revocation);
    request_ids.insert(got.request_id);
  }
  EXPECT_EQ(request_ids.size(), 3u);
  EXPECT_EQ(client->counters().backpressure, 2u);
  EXPECT_EQ(client->counters().resent, 2u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
}

TEST_F(ClientTest, UnansweredControlFrameIsSentAgainAfterTheTimeout) {
  auto broker = NewBroker();
  broker->drop_submits = 1;
  auto store = NewStore();
  ClientOptions o = FastOptions();
  o.submit_timeout_ms = 100;
  auto client = NewClient(*store, broker->endpoint(), o);
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes id = keys::RandomBytes(16);
  ASSERT_TRUE(IsOk(client->SubmitControl(id, Control(FrameType::kAttest, id))));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kAcked).empty(); }));
  EXPECT_GE(broker->controls.size(), 2u);
  EXPECT_GE(client->counters().resent, 1u);
  EXPECT_EQ(EventsOf(Type::kAcked).size(), 1u);
  EXPECT_TRUE(EventsOf(Type::kAcked)[0].control);
}

TEST_F(ClientTest, UnansweredControlFrameSurvivesAnAgentRestart) {
  auto broker = NewBroker();
  broker->drop_submits = 2;  // the agent "crashes" before any answer
  Bytes id = keys::RandomBytes(16);
  schema::Frame f = Control(FrameType::kGrantRegister, id);
  Bytes env_id;
  {
    auto store = NewStore();
    auto client = NewClient(*store, broker->endpoint(), FastOptions());
    ASSERT_TRUE(IsOk(client->Start()));
    ASSERT_TRUE(IsOk(client->SubmitControl(id, f)));
    env_id = Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId)));
    ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return broker->arrivals.size() == 2; }));
    EXPECT_TRUE(events_.empty());
  }
  auto store = NewStore();
  EXPECT_EQ(Must(store->OutboxIds()), (std::vector<Bytes>{id, env_id}));
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  EXPECT_EQ(client->counters().recovered, 2u);
  EXPECT_EQ(client->outstanding(), 2u);
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return EventsOf(Type::kAcked).size() == 2; }));
  auto acked = EventsOf(Type::kAcked);
  EXPECT_EQ(acked[0].message_id, id);  // resubmitted oldest first, each as its own kind
  EXPECT_TRUE(acked[0].control);
  EXPECT_EQ(acked[1].message_id, env_id);
  EXPECT_FALSE(acked[1].control);
  ASSERT_EQ(broker->controls.size(), 2u);
  EXPECT_EQ(broker->controls[1].type, FrameType::kGrantRegister);
  EXPECT_EQ(broker->controls[1].grant_register.signed_grant, f.grant_register.signed_grant);
  EXPECT_NE(broker->controls[1].request_id, 0u);
  EXPECT_EQ(broker->SubmitCount(env_id), 2u);
  EXPECT_EQ(client->counters().resent, 2u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
}

TEST_F(ClientTest, EnvelopesAndControlFramesInterleaveInOrderWithinTheWindow) {
  auto broker = NewBroker();
  broker->hold_submits = true;
  auto store = NewStore();
  ClientOptions o = FastOptions();
  o.window = 2;
  o.submit_timeout_ms = 600000;  // no timeout resends in this test
  auto client = NewClient(*store, broker->endpoint(), o);
  ASSERT_TRUE(IsOk(client->Start()));
  std::vector<Bytes> order;
  for (int i = 0; i < 7; ++i) {
    if (i % 2 == 0) {
      order.push_back(Must(client->Submit(fed_.Seal(fed_.agency, test::kPeerId))));
    } else {
      Bytes id = keys::RandomBytes(16);
      ASSERT_TRUE(IsOk(client->SubmitControl(id, Control(FrameType::kAttest, id))));
      order.push_back(id);
    }
  }
  EXPECT_EQ(Must(store->OutboxIds()), order);

  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] {
    if (broker->held() >= 2 || (broker->held() > 0 && client->unsent() == 0)) broker->ReleaseHeld();
    return EventsOf(Type::kAcked).size() == 7;
  }));
  EXPECT_EQ(broker->max_held, 2u);
  EXPECT_EQ(broker->arrivals, order);  // each sent once, in submission order
  EXPECT_EQ(client->counters().resent, 0u);
  std::vector<Bytes> acked;
  for (const auto& e : EventsOf(Type::kAcked)) acked.push_back(e.message_id);
  EXPECT_EQ(acked, order);
  for (size_t i = 0; i < acked.size(); ++i) {
    EXPECT_EQ(EventsOf(Type::kAcked)[i].control, i % 2 == 1) << i;
  }
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
}

TEST_F(ClientTest, SubmitControlTwiceIsANoOpAndOtherBytesAreRefused) {
  auto broker = NewBroker();
  broker->hold_submits = true;
  auto store = NewStore();
  ClientOptions o = FastOptions();
  o.submit_timeout_ms = 600000;
  auto client = NewClient(*store, broker->endpoint(), o);
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes id = keys::RandomBytes(16);
  schema::Frame f = Control(FrameType::kGrantRegister, id);
  ASSERT_TRUE(IsOk(client->SubmitControl(id, f)));
  // The same frame again, with fields SubmitControl does not store set differently.
  schema::Frame again = f;
  again.request_id = 77;
  again.hello.party_id = "ignored";
  EXPECT_TRUE(IsOk(client->SubmitControl(id, again)));
  EXPECT_EQ(client->outstanding(), 1u);
  EXPECT_EQ(client->counters().submitted, 1u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 1u);

  // The same id with other bytes, or as another kind of frame, is refused.
  EXPECT_TRUE(HasCode(client->SubmitControl(id, Control(FrameType::kGrantRegister, id)),
                      Status::Code::kAlreadyExists));
  schema::Frame as_revoke;
  as_revoke.type = FrameType::kGrantRevoke;
  as_revoke.grant_revoke.signed_revocation = f.grant_register.signed_grant;
  EXPECT_TRUE(HasCode(client->SubmitControl(id, as_revoke), Status::Code::kAlreadyExists));
  // Envelope ids and control ids share the outbox's namespace.
  Bytes env = fed_.Seal(fed_.agency, test::kPeerId);
  Bytes env_id = Must(client->Submit(env));
  EXPECT_TRUE(HasCode(client->SubmitControl(env_id, Control(FrameType::kAttest, env_id)),
                      Status::Code::kAlreadyExists));
  EXPECT_EQ(Must(store->OutboxEntry(id)).envelope, schema::EncodeFrame([&] {
              schema::Frame stored;
              stored.type = FrameType::kGrantRegister;
              stored.grant_register = f.grant_register;
              return stored;
            }()));

  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] {
    if (broker->held() > 0) broker->ReleaseHeld();
    return EventsOf(Type::kAcked).size() == 2;
  }));
  EXPECT_EQ(broker->controls.size(), 1u);  // sent once
  EXPECT_EQ(EventsOf(Type::kAcked)[0].message_id, id);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
}

TEST_F(ClientTest, ControlAnswerNamingAnotherIdIsMatchedByRequestId) {
  // refbus-broker acks an Attest with an id derived from the statement's hash; the Client
  // must not resend forever because the caller named the item differently.
  auto broker = NewBroker();
  broker->control_answers_name_hash = true;
  broker->nack_next.emplace_back(schema::NackReason::kStorageFull, 20);
  auto store = NewStore();
  auto client = NewClient(*store, broker->endpoint(), FastOptions());
  ASSERT_TRUE(IsOk(client->Start()));
  Bytes acked_id = keys::RandomBytes(16), refused_id = keys::RandomBytes(16);
  ASSERT_TRUE(IsOk(client->SubmitControl(acked_id, Control(FrameType::kAttest, acked_id))));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kAcked).empty(); }));
  EXPECT_EQ(EventsOf(Type::kAcked)[0].message_id, acked_id);
  EXPECT_TRUE(EventsOf(Type::kAcked)[0].control);
  EXPECT_EQ(client->counters().backpressure, 1u);  // the nack found it too

  broker->nack_next.emplace_back(schema::NackReason::kBadSignature, 0);
  ASSERT_TRUE(IsOk(client->SubmitControl(refused_id, Control(FrameType::kAttest, refused_id))));
  ASSERT_TRUE(RunUntil(*client, broker.get(), [&] { return !EventsOf(Type::kRefused).empty(); }));
  EXPECT_EQ(EventsOf(Type::kRefused)[0].message_id, refused_id);
  EXPECT_TRUE(EventsOf(Type::kRefused)[0].control);
  EXPECT_EQ(client->outstanding(), 0u);
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
  EXPECT_EQ(broker->controls.size(), 3u);
}

TEST_F(ClientTest, SubmitControlRefusesWhatIsNotAControlFrame) {
  auto store = NewStore();
  Client client(fed_.agency, fed_.directory(), "tcp://127.0.0.1:1", *store);
  Bytes id = keys::RandomBytes(16);
  EXPECT_TRUE(HasCode(client.SubmitControl(id, Control(FrameType::kGrantRegister, id)),
                      Status::Code::kFailedPrecondition));  // not started
  ASSERT_TRUE(IsOk(client.Start()));
  EXPECT_TRUE(HasCode(client.SubmitControl(Bytes(15, 1), Control(FrameType::kGrantRegister, id)),
                      Status::Code::kInvalidArgument));
  schema::Frame submit;
  submit.type = FrameType::kSubmit;
  submit.submit.envelope = fed_.Seal(fed_.agency, test::kPeerId);
  EXPECT_TRUE(HasCode(client.SubmitControl(id, submit), Status::Code::kInvalidArgument));
  schema::Frame empty;
  empty.type = FrameType::kGrantRevoke;
  EXPECT_TRUE(HasCode(client.SubmitControl(id, empty), Status::Code::kInvalidArgument));
  schema::Frame both = Control(FrameType::kAttest, id);
  both.attest.signed_access = both.attest.signed_purge;
  EXPECT_TRUE(HasCode(client.SubmitControl(id, both), Status::Code::kInvalidArgument));
  EXPECT_EQ(Must(store->Counters()).outbox_messages, 0u);
  EXPECT_EQ(client.outstanding(), 0u);
}

}  // namespace
}  // namespace refbus::agent
