// Test-only stand-ins for the agent tests: a small federation (authority, one broker, three
// agencies) made in memory, and FakeBroker, a ZeroMQ ROUTER that speaks the broker's side
// of the session protocol (PROTOCOL.md section 6) just well enough to drive agent::Client.
//
// FakeBroker is CURVE server with a ZAP handler (core/zmq.h) that admits only the agency
// keys it was given, answers Hello with Welcome, Submit with Ack (or with scripted Nacks,
// silence, or holds them until released), DirectoryFetch with a reply, and can Deliver
// envelopes to the connection that sent the latest Hello. It keeps nothing on disk.
// Control frames (GrantRegister, GrantRevoke, Attest) are submissions like Submit: the
// same scripts apply, in arrival order. The fake does not parse their statements: by
// test convention the first 16 bytes of a control frame's payload are its id (as a real
// broker reads the grant id out of the signed grant), which it acks with.
//
// Thread safety: none. A test drives the broker and the client from its one thread,
// alternating their Poll calls, so every exchange is deterministic in order.
#ifndef REFBUS_TESTS_UNIT_AGENT_FAKE_BROKER_H_
#define REFBUS_TESTS_UNIT_AGENT_FAKE_BROKER_H_

#include <zmq.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "agent/transport_store.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/zmq.h"
#include "keys/directory.h"
#include "keys/envelope.h"
#include "keys/identity.h"
#include "schema/codec.h"
#include "schema/types.h"
#include "tests/unit/test_util.h"

namespace refbus::agent::test {

using refbus::test::Must;

inline constexpr char kFederation[] = "refbus-test";
inline constexpr char kBrokerId[] = "test-broker";
inline constexpr char kAgencyId[] = "test-agency-a";    // the agent under test
inline constexpr char kPeerId[] = "test-agency-b";      // sends to it
inline constexpr char kOutsiderId[] = "test-agency-c";  // listed, but the broker refuses it

inline keys::Identity MakeIdentity(const std::string& id, schema::PartyKind kind, UnixMillis now) {
  return Must(keys::Identity::Generate(id, kind, now, keys::kPrekeyLifetimeMs));
}

struct Federation {
  UnixMillis now;
  keys::Identity authority;
  keys::Identity broker;
  keys::Identity agency;
  keys::Identity peer;
  keys::Identity outsider;
  schema::SignedDirectory signed_directory;

  Federation()
      : now(SystemClock::Get().NowMillis()),
        authority(MakeIdentity("test-authority", schema::PartyKind::kAuthority, now)),
        broker(MakeIdentity(kBrokerId, schema::PartyKind::kBroker, now)),
        agency(MakeIdentity(kAgencyId, schema::PartyKind::kAgency, now)),
        peer(MakeIdentity(kPeerId, schema::PartyKind::kAgency, now)),
        outsider(MakeIdentity(kOutsiderId, schema::PartyKind::kAgency, now)) {
    keys::Listing bl;
    bl.display_name = "Test broker";
    bl.region = "test";
    keys::DirectoryEdit edit;
    edit.upserts.push_back(Must(keys::MakePartyRecord(broker, bl, now, nullptr)));
    for (const keys::Identity* a : {&agency, &peer, &outsider}) {
      keys::Listing al;
      al.display_name = "Agency " + a->party_id();
      al.agency_type = schema::AgencyType::kCounselingCenter;
      al.region = "test";
      al.home_broker = kBrokerId;
      edit.upserts.push_back(Must(keys::MakePartyRecord(*a, al, now, nullptr)));
    }
    schema::Directory d = Must(
        keys::NextDirectory(nullptr, kFederation, edit, now, keys::kDefaultDirectoryValidityMs));
    signed_directory = keys::SignDirectory(d, authority);
  }

  const schema::Directory& directory() const { return signed_directory.directory; }

  // An envelope from sender to the agency under test, with random content.
  // message_id: empty for a random one.
  Bytes Seal(const keys::Identity& sender, const std::string& to = kAgencyId,
             size_t content_bytes = 64, const Bytes& message_id = {}) const {
    keys::SealRequest req;
    req.message_id = message_id;
    req.kind = schema::MessageKind::kOpaque;
    req.recipients.push_back(Must(keys::CurrentPrekey(directory(), to, now)));
    req.case_ref = "test-case-0001";
    req.now = SystemClock::Get().NowMillis();
    Bytes content = keys::RandomBytes(content_bytes);
    return Must(keys::SealEnvelope(sender, req, content));
  }
};

inline Bytes MessageIdOf(ByteView envelope) {
  return Must(schema::DecodeEnvelope(envelope)).header.message_id;
}

inline bool IsControl(const schema::Frame& f) {
  return f.type == schema::Frame::Type::kGrantRegister ||
         f.type == schema::Frame::Type::kGrantRevoke || f.type == schema::Frame::Type::kAttest;
}

// The statement a control frame carries.
inline const Bytes& ControlPayload(const schema::Frame& f) {
  switch (f.type) {
    case schema::Frame::Type::kGrantRegister:
      return f.grant_register.signed_grant;
    case schema::Frame::Type::kGrantRevoke:
      return f.grant_revoke.signed_revocation;
    default:
      return f.attest.signed_access.empty() ? f.attest.signed_purge : f.attest.signed_access;
  }
}

// Test convention (see above): a control payload starts with its 16-byte id.
inline Bytes ControlIdOf(const schema::Frame& f) {
  const Bytes& p = ControlPayload(f);
  return Bytes(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(16, p.size())));
}

class FakeBroker {
 public:
  // allowed: CURVE public key -> party id, the keys ZAP admits.
  FakeBroker(const keys::Identity& identity, uint64_t directory_serial,
             std::map<Bytes, std::string> allowed, const std::string& bind_endpoint)
      : serial_(directory_serial), allowed_(std::move(allowed)) {
    // The ZAP handler must be bound before the first connection reaches the router.
    zap_ = Must(zmqx::ZapHandler::Bind(ctx_));
    router_ = zmq::socket_t(ctx_, zmq::socket_type::router);
    Must(zmqx::ConfigureCurveServer(router_, identity.transport_secret_key().view(), kFederation));
    router_.set(zmq::sockopt::router_mandatory, true);
    router_.bind(bind_endpoint);
    endpoint_ = Must(zmqx::LastEndpoint(router_));
  }
  ~FakeBroker() {
    router_.close();
    zap_.reset();
  }

  const std::string& endpoint() const { return endpoint_; }

  // ---- Behaviour, set by the test ----
  std::deque<std::pair<schema::NackReason, uint32_t>> nack_next;  // answers to next submits
  int drop_submits = 0;       // leave this many submits unanswered
  int drop_hellos = 0;        // leave this many Hellos unanswered
  bool hold_submits = false;  // keep submits unanswered until ReleaseHeld()
  Bytes directory_bytes;      // served to DirectoryFetch with an older serial
  // Answer control frames naming another id than the test's (first 16 bytes of the
  // payload's SHA-256, as refbus-broker names attestations), leaving only request_id.
  bool control_answers_name_hash = false;
  uint32_t max_frame_bytes = static_cast<uint32_t>(schema::kMaxFrameBytes);  // in Welcome
  std::string ack_checkpoint;  // Ack.latest_checkpoint of every Ack to a submission

  // ---- Observations ----
  std::vector<schema::Frame> hellos;
  std::vector<std::string> hello_user_ids;  // ZAP User-Id of each Hello's connection
  std::vector<Bytes> submitted_ids;         // every Submit, in arrival order
  std::vector<schema::Frame> controls;      // every control frame, in arrival order
  std::vector<Bytes> arrivals;              // ids of Submits and control frames, in order
  std::set<Bytes> stored;
  std::vector<schema::Frame> agent_replies;  // the agent's Acks and Nacks to deliveries
  int zap_denied = 0;
  size_t max_held = 0;

  size_t SubmitCount(const Bytes& id) const {
    return static_cast<size_t>(std::count(submitted_ids.begin(), submitted_ids.end(), id));
  }
  size_t held() const { return held_.size(); }
  bool has_session() const { return !latest_.empty(); }

  // One turn: answers ZAP and frames that are waiting (waits up to timeout_ms for one).
  void Poll(int timeout_ms) {
    zmq_pollitem_t items[2] = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                               {zap_->socket().handle(), 0, ZMQ_POLLIN, 0}};
    if (zmq_poll(items, 2, timeout_ms) <= 0) return;
    if ((items[1].revents & ZMQ_POLLIN) != 0) {
      Must(zap_->HandleOne([this](const zmqx::ZapRequest& r) {
        zmqx::ZapDecision d;
        auto it = allowed_.find(r.client_key);
        if (r.mechanism != "CURVE" || it == allowed_.end()) {
          ++zap_denied;
          d.status_text = "unknown key";
          return d;
        }
        d.allow = true;
        d.user_id = it->second;
        d.status_text = "OK";
        return d;
      }));
    }
    while ((items[0].revents & ZMQ_POLLIN) != 0) {
      auto parts = Must(zmqx::RecvMultipart(router_));
      if (!parts) break;
      if (parts->size() != 2) continue;
      Bytes rid(static_cast<const uint8_t*>((*parts)[0].data()),
                static_cast<const uint8_t*>((*parts)[0].data()) + (*parts)[0].size());
      std::string user = zmqx::UserId((*parts)[1]).value_or("");
      ByteView body(static_cast<const uint8_t*>((*parts)[1].data()), (*parts)[1].size());
      auto f = schema::DecodeFrame(body);
      if (!f.ok()) continue;
      Handle(rid, user, std::move(f).value());
    }
  }

  // Sends a Deliver to the connection of the latest Hello; returns its request id.
  uint64_t Deliver(Bytes envelope, uint32_t attempt = 0) {
    schema::Frame f;
    f.type = schema::Frame::Type::kDeliver;
    f.request_id = next_request_id_++;
    f.deliver.envelope = std::move(envelope);
    f.deliver.attempt = attempt;
    Send(latest_, f);
    return f.request_id;
  }

  void ReleaseHeld() {
    auto held = std::move(held_);
    held_.clear();
    for (auto& [rid, f] : held) AnswerSubmit(rid, f);
  }

 private:
  void Handle(const Bytes& rid, const std::string& user, schema::Frame f) {
    using T = schema::Frame::Type;
    switch (f.type) {
      case T::kHello: {
        hellos.push_back(f);
        hello_user_ids.push_back(user);
        if (drop_hellos > 0) {
          --drop_hellos;
          return;
        }
        latest_ = rid;
        schema::Frame w;
        w.type = T::kWelcome;
        w.request_id = f.request_id;
        w.welcome.broker_id = kBrokerId;
        w.welcome.directory_serial = serial_;
        w.welcome.max_frame_bytes = max_frame_bytes;
        Send(rid, w);
        return;
      }
      case T::kSubmit:
      case T::kGrantRegister:
      case T::kGrantRevoke:
      case T::kAttest: {
        if (f.type == T::kSubmit) {
          submitted_ids.push_back(MessageIdOf(f.submit.envelope));
          arrivals.push_back(submitted_ids.back());
        } else {
          controls.push_back(f);
          arrivals.push_back(ControlIdOf(f));
        }
        if (drop_submits > 0) {
          --drop_submits;
          return;
        }
        if (hold_submits) {
          held_.emplace_back(rid, std::move(f));
          max_held = std::max(max_held, held_.size());
          return;
        }
        AnswerSubmit(rid, f);
        return;
      }
      case T::kAck:
      case T::kNack:
        agent_replies.push_back(std::move(f));
        return;
      case T::kDirectoryFetch: {
        schema::Frame r;
        r.type = T::kDirectoryReply;
        r.request_id = f.request_id;
        if (f.directory_fetch.have_serial < serial_)
          r.directory_reply.signed_directory = directory_bytes;
        Send(rid, r);
        return;
      }
      default:
        return;
    }
  }

  void AnswerSubmit(const Bytes& rid, const schema::Frame& f) {
    Bytes id = IsControl(f) ? ControlIdOf(f) : MessageIdOf(f.submit.envelope);
    if (IsControl(f) && control_answers_name_hash) {
      Bytes h = refbus::Sha256(ControlPayload(f));
      id.assign(h.begin(), h.begin() + 16);
    }
    schema::Frame r;
    r.request_id = f.request_id;
    if (!nack_next.empty()) {
      r.type = schema::Frame::Type::kNack;
      r.nack.message_id = id;
      r.nack.reason = nack_next.front().first;
      r.nack.retry_after_ms = nack_next.front().second;
      r.nack.detail = "scripted by the test";
      nack_next.pop_front();
    } else {
      r.type = schema::Frame::Type::kAck;
      r.ack.message_id = id;
      r.ack.duplicate = !stored.insert(id).second;
      r.ack.latest_checkpoint = ack_checkpoint;
    }
    Send(rid, r);
  }

  void Send(const Bytes& rid, const schema::Frame& f) {
    if (rid.empty()) return;
    Bytes body = schema::EncodeFrame(f);
    try {
      router_.send(zmq::const_buffer(rid.data(), rid.size()), zmq::send_flags::sndmore);
      router_.send(zmq::const_buffer(body.data(), body.size()), zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      // EHOSTUNREACH (ROUTER_MANDATORY): that connection is gone; the agent reconnects.
    }
  }

  uint64_t serial_;
  std::map<Bytes, std::string> allowed_;
  zmq::context_t ctx_;
  std::unique_ptr<zmqx::ZapHandler> zap_;
  zmq::socket_t router_;
  std::string endpoint_;
  Bytes latest_;  // routing id of the latest Hello's connection
  uint64_t next_request_id_ = 1000;
  std::vector<std::pair<Bytes, schema::Frame>> held_;
};

}  // namespace refbus::agent::test

#endif  // REFBUS_TESTS_UNIT_AGENT_FAKE_BROKER_H_
