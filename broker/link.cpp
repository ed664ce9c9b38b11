#include "broker/link.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/file.h"
#include "core/zmq.h"
#include "schema/codec.h"

namespace refbus::broker {
namespace {

using schema::Frame;
using schema::NackReason;

constexpr size_t kMaxEndpointFileBytes = 4096;
constexpr int kSocketQueue = 100000;
constexpr UnixMillis kMinPauseMs = 200;

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.remove_suffix(1);
  }
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return std::string(s);
}

// Whether every recipient a link entry is carried for is a recipient of the envelope.
bool CarriedForItsRecipients(const schema::SealedEnvelope& env,
                             const std::vector<std::string>& serves) {
  return std::all_of(serves.begin(), serves.end(), [&env](const std::string& r) {
    return std::any_of(env.header.recipients.begin(), env.header.recipients.end(),
                       [&r](const schema::RecipientKey& k) { return k.agency_id == r; });
  });
}

// A refusal the next broker may lift by itself: it is full or failing, or its directory
// does not yet know a party this broker's directory knows.
bool Retryable(NackReason r) {
  switch (r) {
    case NackReason::kQuotaExceeded:
    case NackReason::kStorageFull:
    case NackReason::kInternal:
    case NackReason::kUnknownRecipient:
    case NackReason::kRevokedRecipient:
    case NackReason::kUnknownSenderKey:
    case NackReason::kNotPermitted:
    case NackReason::kUnspecified:
      return true;
    default:
      return false;
  }
}

// The recipients a relay is carried for: those stored with the entry (re-routing keeps
// them current); entries without (none are written so now) fall back to the directory.
std::vector<std::string> RelayRecipients(const std::vector<std::string>& serves,
                                         const schema::SealedEnvelope& env,
                                         const schema::Directory& directory,
                                         const std::string& peer, const std::string& self) {
  std::vector<std::string> out = serves;
  if (out.empty()) {
    for (const auto& r : env.header.recipients) {
      const schema::Party* p = directory.Find(r.agency_id);
      if (p != nullptr && p->home_broker == peer) out.push_back(r.agency_id);
    }
  }
  if (out.empty()) {
    // Every recipient it was queued for has moved since (a new directory): the peer routes
    // it on; recipients homed here are never handed back (it would be a duplicate here).
    for (const auto& r : env.header.recipients) {
      const schema::Party* p = directory.Find(r.agency_id);
      if (p == nullptr || p->home_broker != self) out.push_back(r.agency_id);
    }
  }
  return out;
}

const char* StateName(int s) {
  switch (s) {
    case 0:
      return "connecting";
    case 1:
      return "up";
    default:
      return "down";
  }
}

}  // namespace

void LinkHistogram::Observe(double seconds) {
  size_t b = 0;
  while (b < kLinkSecondsBounds.size() && seconds > kLinkSecondsBounds[b]) ++b;
  ++buckets[b];
  sum += seconds;
}

double Links::SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

Links::Links(zmq::context_t& context, const keys::Identity& me, LinkOptions options)
    : context_(context), me_(me), options_(std::move(options)) {}

Links::~Links() {
  for (auto& [id, link] : links_) Close(link);
}

void Links::MarkDirty(const std::string& peer) {
  auto it = links_.find(peer);
  if (it != links_.end()) it->second.dirty = true;
}

void Links::AppendPollItems(std::vector<zmq::pollitem_t>& items) {
  for (auto& [id, link] : links_) {
    if (link.socket) items.push_back({link.socket->handle(), 0, ZMQ_POLLIN, 0});
    if (link.monitor) items.push_back({link.monitor->handle(), 0, ZMQ_POLLIN, 0});
  }
}

bool Links::Busy() const {
  for (const auto& [id, link] : links_) {
    if (link.state == Link::State::kUp && link.dirty && link.inflight.size() < options_.window) {
      return true;
    }
  }
  return false;
}

void Links::Problem(Link& link, int level, std::string message) {
  if (message == link.problem) return;
  link.problem = std::move(message);
  if (level >= 2) {
    spdlog::error("federation link to {}: {}", link.peer, link.problem);
  } else if (level == 1) {
    spdlog::warn("federation link to {}: {}", link.peer, link.problem);
  } else {
    spdlog::info("federation link to {}: {}", link.peer, link.problem);
  }
}

void Links::Close(Link& link) {
  if (link.monitor) {
    if (link.socket) zmq_socket_monitor(link.socket->handle(), nullptr, 0);
    link.monitor->set(zmq::sockopt::linger, 0);
    link.monitor->close();
    link.monitor.reset();
  }
  if (link.socket) {
    link.socket->set(zmq::sockopt::linger, 0);
    link.socket->close();
    link.socket.reset();
  }
  link.inflight.clear();
  link.inflight_bytes = 0;
  link.control_inflight.clear();
  link.other_inflight.clear();
  link.hello_id = 0;
}

void Links::Down(Link& link, UnixMillis now, std::string why) {
  const bool was_up = link.state == Link::State::kUp;
  Close(link);
  link.state = Link::State::kDown;
  link.state_since = now;
  link.last_sent_seq = 0;  // resend from the oldest unacked entry
  link.last_control_seq = 0;
  link.next_attempt_at = now + std::min<UnixMillis>(options_.timeout_ms, 1000);
  if (was_up) {
    spdlog::warn("federation link to {} DOWN: {}; its queue waits on this broker's disk", link.peer,
                 why);
    link.problem = why;
  } else {
    Problem(link, 1, why);
  }
}

void Links::Open(Link& link, UnixMillis now, const schema::Party& peer) {
  const schema::KeyRecord* keys = peer.ActiveKeys();
  if (keys == nullptr) {
    Down(link, now, "has no active key in the directory");
    return;
  }
  std::string endpoint;
  if (auto it = options_.endpoints.find(link.peer); it != options_.endpoints.end()) {
    endpoint = it->second;
  } else if (auto f = options_.endpoint_files.find(link.peer); f != options_.endpoint_files.end()) {
    auto text = ReadFile(f->second, kMaxEndpointFileBytes);
    if (!text.ok()) {
      Down(link, now,
           "its endpoint file " + f->second + " cannot be read: " + text.status().message());
      return;
    }
    endpoint = Trim(AsChars(*text));
  }
  if (endpoint.empty()) endpoint = peer.endpoint;
  if (endpoint.empty()) {
    Down(link, now,
         "has no endpoint: the directory lists none and federation.endpoints and "
         "federation.endpoint_files name none");
    return;
  }
  try {
    auto s = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
    refbus::Status c = zmqx::ConfigureCurveClient(
        *s, keys->transport_key, me_.transport_public_key(), me_.transport_secret_key().view());
    if (c.ok()) c = zmqx::ConfigureHeartbeat(*s, zmqx::Heartbeat{});
    if (!c.ok()) {
      Down(link, now, c.message());
      return;
    }
    // A peer cannot make this broker buffer more than one frame's worth.
    s->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(schema::kMaxFrameBytes + (64 << 10)));
    s->set(zmq::sockopt::sndhwm, kSocketQueue);
    s->set(zmq::sockopt::rcvhwm, kSocketQueue);
    // No silent reconnects: relays in flight on a connection that broke are lost with it,
    // and a reconnected socket would carry newer relays past them (the peer would store them
    // out of order). A broken connection ends the session; the next socket starts a new
    // one with Hello and resends from the oldest unacked entry.
    s->set(zmq::sockopt::reconnect_ivl, -1);
    // Its monitor tells a closed connection (the peer stopped or restarted) or a failed
    // connect at once: the next attempt comes a second later, not after timeout_ms.
    const std::string monitor_endpoint =
        "inproc://refbus-link-monitor-" + std::to_string(++monitors_);
    if (zmq_socket_monitor(
            s->handle(), monitor_endpoint.c_str(),
            ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
      Down(link, now, std::string("cannot monitor the link socket: ") + zmq_strerror(zmq_errno()));
      return;
    }
    auto m = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::pair);
    m->connect(monitor_endpoint);
    s->connect(endpoint);
    link.socket = std::move(s);
    link.monitor = std::move(m);
  } catch (const zmq::error_t& e) {
    Down(link, now, "cannot connect to " + endpoint + ": " + e.what());
    return;
  }
  link.server_key = keys->transport_key;
  link.endpoint = endpoint;
  link.state = Link::State::kConnecting;
  link.state_since = now;
  link.last_sent_seq = 0;
  link.last_control_seq = 0;
  link.inflight.clear();
  link.inflight_bytes = 0;
  link.control_inflight.clear();
  ++link.sessions;
  Frame hello;
  hello.type = Frame::Type::kHello;
  hello.request_id = next_request_++;
  hello.hello.party_id = options_.broker_id;
  hello.hello.software = "refbus-broker link";
  link.hello_id = hello.request_id;
  link.hello_sent_at = now;
  SendFrame(link, hello, nullptr);
  spdlog::info("federation link to {}: connecting to {}", link.peer, endpoint);
}

std::optional<std::string> Links::ReadMonitor(Link& link) {
  std::optional<std::string> why;
  for (int i = 0; i < 64 && link.monitor; ++i) {
    // An event is two frames: u16 event, u32 value (native byte order); the endpoint.
    auto parts = zmqx::RecvMultipart(*link.monitor);
    if (!parts.ok() || !parts->has_value()) break;
    const auto& msg = **parts;
    if (msg.size() != 2 || msg[0].size() < 6) continue;
    uint16_t event = 0;
    uint32_t value = 0;
    std::memcpy(&event, msg[0].data(), sizeof(event));
    std::memcpy(&value, static_cast<const uint8_t*>(msg[0].data()) + 2, sizeof(value));
    if (why) continue;
    switch (event) {
      case ZMQ_EVENT_DISCONNECTED:
        why = "the connection to " + link.endpoint + " closed (the peer stopped or restarted)";
        break;
      case ZMQ_EVENT_CLOSED:  // the connect failed, and the socket does not retry by itself
        why = "cannot connect to " + link.endpoint + " (is the peer running?)";
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        why = "the peer at " + link.endpoint + " refused this broker (ZAP status " +
              std::to_string(value) + ")";
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        why = "the CURVE handshake with " + link.endpoint +
              " failed (a server without the peer's key?)";
        break;
      default:
        break;
    }
  }
  return why;
}

void Links::SendFrame(Link& link, const Frame& frame, bool* full) {
  Bytes body = schema::EncodeFrame(frame);
  try {
    auto ok = link.socket->send(zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);
    if (!ok && full != nullptr) *full = true;
  } catch (const zmq::error_t& e) {
    if (full != nullptr) *full = true;
    spdlog::debug("federation link to {}: send failed: {}", link.peer, e.what());
  }
}

void Links::Pump(UnixMillis now, const schema::Directory& directory, const Store& store,
                 std::vector<RecipientAck>& out, std::vector<ControlEnd>& control_out) {
  // Follow the directory: a link per other active broker; revoked or removed ones closed.
  for (const auto& p : directory.brokers) {
    if (p.id == options_.broker_id || p.status != schema::PartyStatus::kActive) continue;
    auto [it, inserted] = links_.try_emplace(p.id);
    if (inserted) {
      it->second.peer = p.id;
      it->second.state_since = now;
    }
  }
  for (auto it = links_.begin(); it != links_.end();) {
    const schema::Party* p = directory.Find(it->first);
    if (p == nullptr || p->kind != schema::PartyKind::kBroker ||
        p->status != schema::PartyStatus::kActive) {
      spdlog::warn("federation link to {} closed: no longer an active broker in the directory",
                   it->first);
      Close(it->second);
      it = links_.erase(it);
      continue;
    }
    Link& link = it->second;
    const schema::KeyRecord* keys = p->ActiveKeys();
    if (link.socket && keys != nullptr && keys->transport_key != link.server_key) {
      Down(link, now, "the directory changed its key");
      link.next_attempt_at = now;
    }
    if (!link.socket && now >= link.next_attempt_at) Open(link, now, *p);
    if (link.socket) ReadReplies(link, now, out, control_out);
    if (link.socket) {
      // After the replies: what the peer answered before it went away still counts.
      if (auto why = ReadMonitor(link)) Down(link, now, *why);
    }
    if (link.socket && (!link.inflight.empty() || !link.control_inflight.empty())) {
      UnixMillis oldest = now;
      for (const auto& [rid, sent] : link.inflight) oldest = std::min(oldest, sent.sent_at);
      for (const auto& [rid, sent] : link.control_inflight) {
        oldest = std::min(oldest, sent.sent_at);
      }
      if (now - oldest >= options_.timeout_ms) {
        // The peer lives (it may answer keepalives) but lost these: a restarted process.
        Down(link, now,
             std::to_string(link.inflight.size()) + " relays unanswered for " +
                 std::to_string(options_.timeout_ms) + " ms");
      }
    }
    if (link.socket) {
      const bool waiting_hello = link.hello_id != 0;
      if (waiting_hello && now - link.hello_sent_at >= options_.timeout_ms) {
        Down(link, now,
             "no answer from " + link.endpoint + " for " + std::to_string(options_.timeout_ms) +
                 " ms");
      } else if (link.state == Link::State::kUp && !waiting_hello &&
                 now - link.last_rx >= options_.timeout_ms / 3) {
        // Idle, or acks are slow: a keepalive; its Welcome (or any frame) shows the peer lives.
        Frame hello;
        hello.type = Frame::Type::kHello;
        hello.request_id = next_request_++;
        hello.hello.party_id = options_.broker_id;
        link.hello_id = hello.request_id;
        link.hello_sent_at = now;
        SendFrame(link, hello, nullptr);
      }
    }
    if (link.state == Link::State::kUp && now >= link.paused_until) {
      SendControl(link, now, store);
      SendRelays(link, now, directory, store, out);
    }
    ++it;
  }
}

void Links::ReadReplies(Link& link, UnixMillis now, std::vector<RecipientAck>& out,
                        std::vector<ControlEnd>& control_out) {
  for (int i = 0; i < 4096 && link.socket; ++i) {
    auto parts = zmqx::RecvMultipart(*link.socket);
    if (!parts.ok() || !parts->has_value()) return;
    auto& msg = **parts;
    if (msg.size() != 1) continue;
    ByteView bytes(static_cast<const uint8_t*>(msg[0].data()), msg[0].size());
    auto f = schema::DecodeFrame(bytes);
    if (!f.ok()) {
      Problem(link, 1, "sent a frame that does not decode: " + f.status().message());
      continue;
    }
    link.last_rx = now;
    if (link.other_inflight.erase(f->request_id) != 0) {
      if (other_handler_) other_handler_(link.peer, std::move(*f));
      continue;
    }
    if (HandleControlReply(link, *f, now, control_out)) continue;
    HandleReply(link, *f, now, out, control_out);
  }
}

void Links::HandleReply(Link& link, const Frame& f, UnixMillis now, std::vector<RecipientAck>& out,
                        std::vector<ControlEnd>& control_out) {
  (void)control_out;
  switch (f.type) {
    case Frame::Type::kWelcome: {
      if (f.request_id != link.hello_id) return;
      link.hello_id = 0;
      if (f.welcome.broker_id != link.peer) {
        Down(link, now, "answered as " + f.welcome.broker_id);
        return;
      }
      if (link.state != Link::State::kUp) {
        link.state = Link::State::kUp;
        link.state_since = now;
        link.dirty = true;
        link.problem.clear();
        spdlog::info("federation link to {} UP at {} (peer directory serial {})", link.peer,
                     link.endpoint, f.welcome.directory_serial);
      }
      return;
    }
    case Frame::Type::kAck: {
      auto it = link.inflight.find(f.request_id);
      if (it == link.inflight.end() || it->second.message_id != f.ack.message_id) return;
      RecipientAck end;
      end.recipient = link.peer;
      end.seq = it->second.seq;
      end.message_id = it->second.message_id;
      end.kind = RecipientAck::Kind::kForwarded;
      link.round_trip.Observe(SteadySeconds() - it->second.sent_steady);
      link.ends_uncommitted.insert(end.seq);
      link.first_refused.erase(end.seq);
      link.inflight_bytes -= std::min(link.inflight_bytes, it->second.bytes);
      link.inflight.erase(it);
      ++link.forwarded;
      link.dirty = true;
      out.push_back(std::move(end));
      return;
    }
    case Frame::Type::kNack: {
      auto it = link.inflight.find(f.request_id);
      if (it == link.inflight.end()) {
        if (f.request_id == link.hello_id || f.nack.reason == NackReason::kUnknownSenderKey) {
          // The peer does not (yet) admit this broker: its directory may lag.
          Problem(link, 2, "refuses this broker: " + f.nack.detail);
        }
        return;
      }
      const Sent sent = it->second;
      UnixMillis& first = link.first_refused.try_emplace(sent.seq, now).first->second;
      if (Retryable(f.nack.reason) && now - first < kDirectoryLagMs) {
        // Start over from the oldest unacked entry after a pause: order is kept.
        Problem(link, 1,
                "refused message " + HexEncode(sent.message_id) + " for now (" +
                    std::string(schema::Name(f.nack.reason)) + ": " + f.nack.detail +
                    "); retrying");
        link.inflight.clear();
        link.inflight_bytes = 0;
        link.last_sent_seq = 0;
        link.paused_until =
            now + std::max<UnixMillis>(kMinPauseMs, static_cast<UnixMillis>(f.nack.retry_after_ms));
        link.dirty = true;
        return;
      }
      spdlog::error(
          "federation link to {}: message {} REFUSED by the peer ({}: {}); removed from the "
          "link queue and recorded as rejected",
          link.peer, HexEncode(sent.message_id), schema::Name(f.nack.reason), f.nack.detail);
      RecipientAck end;
      end.recipient = link.peer;
      end.seq = sent.seq;
      end.message_id = sent.message_id;
      end.kind = RecipientAck::Kind::kRefusedByPeer;
      end.reason = f.nack.reason;
      end.detail = f.nack.detail.substr(0, 512);
      link.ends_uncommitted.insert(end.seq);
      link.first_refused.erase(end.seq);
      link.inflight_bytes -= std::min(link.inflight_bytes, sent.bytes);
      link.inflight.erase(it);
      ++link.refused;
      link.dirty = true;
      out.push_back(std::move(end));
      return;
    }
    default:
      Problem(link, 1, "sent a frame a broker does not answer a relay with; ignored");
      return;
  }
}

bool Links::HandleControlReply(Link& link, const Frame& f, UnixMillis now,
                               std::vector<ControlEnd>& control_out) {
  if (f.type != Frame::Type::kAck && f.type != Frame::Type::kNack) return false;
  auto it = link.control_inflight.find(f.request_id);
  if (it == link.control_inflight.end()) return false;
  const Sent sent = it->second;
  ControlEnd end;
  end.peer = link.peer;
  end.seq = sent.seq;
  if (f.type == Frame::Type::kNack) {
    if (Retryable(f.nack.reason)) {
      Problem(link, 1,
              "refused a control item (consent revocation or prekey) for now (" +
                  std::string(schema::Name(f.nack.reason)) + ": " + f.nack.detail + "); retrying");
      link.control_inflight.clear();
      link.last_control_seq = 0;
      link.paused_until =
          now + std::max<UnixMillis>(kMinPauseMs, static_cast<UnixMillis>(f.nack.retry_after_ms));
      return true;
    }
    spdlog::error(
        "federation link to {}: control item (consent revocation or prekey) REFUSED by the peer "
        "({}: {})",
        link.peer, schema::Name(f.nack.reason), f.nack.detail);
    end.refused = true;
    end.reason = f.nack.reason;
    end.detail = f.nack.detail.substr(0, 512);
  }
  link.control_uncommitted.insert(end.seq);
  link.control_inflight.erase(it);
  link.dirty = true;
  control_out.push_back(std::move(end));
  return true;
}

void Links::SendControl(Link& link, UnixMillis now, const Store& store) {
  if (link.control_inflight.size() >= options_.window) return;
  auto items = store.ReadControlQueue(link.peer, link.last_control_seq,
                                      options_.window - link.control_inflight.size());
  if (!items.ok()) {
    spdlog::critical("cannot read the control queue for {}: {}", link.peer,
                     items.status().ToString());
    return;
  }
  for (auto& c : *items) {
    if (link.control_uncommitted.count(c.seq) != 0) {
      link.last_control_seq = c.seq;
      continue;
    }
    Frame f;
    f.type = Frame::Type::kRelay;
    f.request_id = next_request_++;
    f.relay.signed_revocation = std::move(c.signed_revocation);
    f.relay.signed_prekey = std::move(c.signed_prekey);
    bool full = false;
    SendFrame(link, f, &full);
    if (full) return;
    link.control_inflight[f.request_id] = Sent{c.seq, Bytes(), now};
    link.last_control_seq = c.seq;
  }
}

void Links::SendRelays(Link& link, UnixMillis now, const schema::Directory& directory,
                       const Store& store, std::vector<RecipientAck>& out) {
  if (!link.dirty || link.inflight.size() >= options_.window) return;
  link.dirty = false;
  const size_t want = options_.window - link.inflight.size();
  auto pending = store.ReadMailbox(link.peer, link.last_sent_seq, want);
  if (!pending.ok()) {
    spdlog::critical("cannot read the link queue for {}: {}", link.peer,
                     pending.status().ToString());
    return;
  }
  std::map<Bytes, Bytes> grants;  // grant id -> signed grant, for this round
  for (auto& m : *pending) {
    if (link.ends_uncommitted.count(m.seq) != 0) {
      link.last_sent_seq = m.seq;  // its end is being committed
      continue;
    }
    auto env = m.damage.empty() ? schema::DecodeEnvelope(m.envelope)
                                : Result<schema::SealedEnvelope>(Malformed(m.damage));
    if (env.ok() && !CarriedForItsRecipients(*env, m.serves)) {
      // Only the envelope's own recipients are ever relayed it (issue 17, item 1).
      env = Malformed(
          "the link entry is carried for a party that is not a recipient of the "
          "stored envelope (sender " +
          env->header.sender_id + ")");
    }
    if (!env.ok()) {
      // Never relayed as if sound; taken aside so the rest of the queue flows.
      spdlog::critical("DAMAGED stored envelope {} in the link queue for {}: {}; quarantined",
                       HexEncode(m.message_id), link.peer, env.status().message());
      RecipientAck q;
      q.recipient = link.peer;
      q.seq = m.seq;
      q.message_id = m.message_id;
      q.kind = RecipientAck::Kind::kQuarantined;
      q.detail = env.status().message();
      link.ends_uncommitted.insert(m.seq);
      link.last_sent_seq = m.seq;
      out.push_back(std::move(q));
      continue;
    }
    Frame f;
    f.type = Frame::Type::kRelay;
    f.request_id = next_request_++;
    f.relay.hops = m.hops;
    f.relay.for_recipients =
        RelayRecipients(m.serves, *env, directory, link.peer, options_.broker_id);
    const Bytes& grant_id = env->header.consent_grant_id;
    if (!grant_id.empty()) {
      auto g = grants.find(grant_id);
      if (g == grants.end()) {
        auto state = store.GetGrant(grant_id);
        Bytes signed_grant = state.ok() ? state->signed_grant : Bytes();
        if (!state.ok()) {
          Problem(link, 1,
                  "the grant of message " + HexEncode(m.message_id) +
                      " cannot be read: " + state.status().message());
        }
        g = grants.emplace(grant_id, std::move(signed_grant)).first;
      }
      f.relay.signed_grant = g->second;
    }
    if (!link.inflight.empty() && link.inflight_bytes + m.envelope.size() > kMaxInflightBytes) {
      return;  // the next ack frees room (and marks the link dirty)
    }
    const size_t bytes = m.envelope.size();
    f.relay.envelope = std::move(m.envelope);
    bool full = false;
    SendFrame(link, f, &full);
    if (full) {
      link.dirty = true;
      return;  // the socket's queue is full: next round
    }
    link.inflight[f.request_id] = Sent{m.seq, m.message_id, now, SteadySeconds(), bytes};
    link.inflight_bytes += bytes;
    link.last_sent_seq = m.seq;
    // Wall clock: the commit time is stored with the entry (a resend counts again).
    link.queue_wait.Observe(static_cast<double>(std::max<UnixMillis>(0, now - m.accepted_ms)) /
                            kMillisPerSecond);
  }
  // A full read means there may be more.
  if (pending->size() == want) link.dirty = true;
}

std::optional<uint64_t> Links::SendOther(const std::string& peer, Frame frame) {
  auto it = links_.find(peer);
  if (it == links_.end() || it->second.state != Link::State::kUp || !it->second.socket) {
    return std::nullopt;
  }
  frame.request_id = next_request_++;
  bool full = false;
  SendFrame(it->second, frame, &full);
  if (full) return std::nullopt;
  it->second.other_inflight.insert(frame.request_id);
  return frame.request_id;
}

bool Links::IsUp(const std::string& peer) const {
  auto it = links_.find(peer);
  return it != links_.end() && it->second.state == Link::State::kUp;
}

std::string Links::EndpointOf(const std::string& peer) const {
  auto it = links_.find(peer);
  return it == links_.end() ? std::string() : it->second.endpoint;
}

void Links::Committed(const std::vector<RecipientAck>& ends,
                      const std::vector<ControlEnd>& control) {
  for (const auto& e : ends) {
    auto it = links_.find(e.recipient);
    if (it != links_.end()) it->second.ends_uncommitted.erase(e.seq);
  }
  for (const auto& c : control) {
    auto it = links_.find(c.peer);
    if (it != links_.end()) it->second.control_uncommitted.erase(c.seq);
  }
}

std::vector<LinkStatus> Links::Status(UnixMillis now, const Store& store) const {
  std::vector<LinkStatus> out;
  for (const auto& [id, link] : links_) {
    LinkStatus s;
    s.peer = id;
    s.state = StateName(static_cast<int>(link.state));
    s.endpoint = link.endpoint;
    s.state_since_ms = link.state_since;
    auto depth = store.MailboxDepth(id);
    s.backlog = depth.ok() ? *depth : 0;
    auto control = store.ControlQueueDepth(id);
    s.control_backlog = control.ok() ? *control : 0;
    if (s.backlog > 0) {
      auto first = store.ReadMailbox(id, 0, 1);
      if (first.ok() && !first->empty()) s.oldest_queued_ms = first->front().accepted_ms;
    }
    s.inflight = link.inflight.size();
    s.forwarded = link.forwarded;
    s.refused = link.refused;
    s.sessions = link.sessions;
    s.queue_wait = link.queue_wait;
    s.round_trip = link.round_trip;
    s.problem = link.state == Link::State::kUp ? "" : link.problem;
    out.push_back(std::move(s));
  }
  (void)now;
  return out;
}

}  // namespace refbus::broker
