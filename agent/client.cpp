#include "agent/client.h"

#include <spdlog/spdlog.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "agent/client_internal.h"
#include "core/clock.h"
#include "schema/codec.h"

namespace refbus::agent {
namespace {

using client_internal::Clock;
using client_internal::Hex;
using client_internal::IdOf;
using client_internal::Key;
using client_internal::KindName;
using client_internal::WallNow;
using std::chrono::milliseconds;

// The monitor lives in the Client's own ZeroMQ context, so one fixed name is unique.
constexpr char kMonitorEndpoint[] = "inproc://refbus-agent-monitor";
constexpr int kMonitorEvents =
    ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
    ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

// After a Hello could not be sent on a live connection (a race with the pipe attaching,
// or a full queue), try again this soon.
constexpr int kHelloRetryMs = 10;

int Remaining(Clock::time_point deadline, Clock::time_point now) {
  if (deadline <= now) return 0;
  auto ms = std::chrono::duration_cast<milliseconds>(deadline - now).count() + 1;
  return static_cast<int>(std::min<int64_t>(ms, INT32_MAX));
}

Status ZmqError(const zmq::error_t& e, std::string_view what) {
  return IoError(std::string(what) + ": " + e.what());
}

bool IsControlType(schema::Frame::Type t) {
  return t == schema::Frame::Type::kGrantRegister || t == schema::Frame::Type::kGrantRevoke ||
         t == schema::Frame::Type::kAttest || t == schema::Frame::Type::kPrekeyUpdate ||
         t == schema::Frame::Type::kRosterUpdate;
}

}  // namespace

Client::Client(const keys::Identity& identity, schema::Directory directory, std::string endpoint,
               TransportStore& store, ClientOptions options)
    : identity_(identity),
      directory_(std::move(directory)),
      endpoint_(std::move(endpoint)),
      store_(store),
      options_(std::move(options)) {
  if (options_.window == 0) options_.window = 1;
  if (options_.max_deliveries_per_commit == 0) options_.max_deliveries_per_commit = 1;
}

Client::~Client() { Close(0); }

Status Client::Start() {
  // After a failure past the directory checks, sockets may exist: such a Client is not
  // restarted (make a new one), so no socket outlives the context it was made in.
  if (started_ || context_) return FailedPrecondition("Start was already called on this client");
  if (!identity_.has_transport()) {
    return FailedPrecondition("identity " + identity_.party_id() + " has no transport key");
  }
  const schema::Party* me = directory_.Find(identity_.party_id());
  if (me == nullptr || me->kind != schema::PartyKind::kAgency) {
    return NotFound("agency " + identity_.party_id() + " is not in the directory");
  }
  if (me->status != schema::PartyStatus::kActive) {
    return Revoked("agency " + me->id + " is revoked in the directory");
  }
  const schema::KeyRecord* mine = me->ActiveKeys();
  if (mine == nullptr || mine->transport_key != identity_.transport_public_key()) {
    return FailedPrecondition("this identity's transport key is not the active key of " + me->id +
                              " in the directory (rotated keys? use the current identity.key "
                              "and a directory that lists it)");
  }
  if (me->home_broker.empty())
    return FailedPrecondition("agency " + me->id + " has no home broker");
  const schema::Party* broker = directory_.Find(me->home_broker);
  if (broker == nullptr || broker->kind != schema::PartyKind::kBroker) {
    return NotFound("home broker " + me->home_broker + " is not a broker in the directory");
  }
  if (broker->status != schema::PartyStatus::kActive) {
    return Revoked("home broker " + broker->id + " is revoked in the directory");
  }
  const schema::KeyRecord* bk = broker->ActiveKeys();
  if (bk == nullptr || bk->transport_key.size() != zmqx::kCurveKeyBytes) {
    return FailedPrecondition("home broker " + broker->id +
                              " has no active transport key in the directory");
  }
  broker_id_ = broker->id;
  broker_key_ = bk->transport_key;

  // Resubmit what an earlier process left unacknowledged, oldest first.
  REFBUS_ASSIGN_OR_RETURN(std::vector<Bytes> ids, store_.OutboxIds());
  for (auto& id : ids) {
    std::string key = Key(id);
    if (pending_.count(key) != 0) continue;
    Pending p;
    p.order = next_order_++;
    p.sent_before = true;  // it may have reached the broker before the restart
    pending_.emplace(key, std::move(p));
    queue_.push_back(std::move(key));
    ++counters_.recovered;
  }
  if (!ids.empty()) {
    spdlog::info(
        "agent: {} unacknowledged submissions (envelopes and control frames) from an earlier "
        "run will be resubmitted",
        ids.size());
  }

  try {
    context_.emplace();
    dealer_ = zmq::socket_t(*context_, zmq::socket_type::dealer);
    REFBUS_RETURN_IF_ERROR(zmqx::ConfigureCurveClient(dealer_, broker_key_,
                                                      identity_.transport_public_key(),
                                                      identity_.transport_secret_key().view()));
    REFBUS_RETURN_IF_ERROR(zmqx::ConfigureHeartbeat(dealer_, options_.heartbeat));
    dealer_.set(zmq::sockopt::reconnect_ivl, options_.reconnect_interval_ms);
    dealer_.set(zmq::sockopt::reconnect_ivl_max, options_.reconnect_interval_max_ms);
    // Frames are queued only on a live connection: what was in flight when a connection
    // died is resent by this Client after the next Hello, not replayed by libzmq before it.
    dealer_.set(zmq::sockopt::immediate, true);
    dealer_.set(zmq::sockopt::linger, 0);
    if (zmq_socket_monitor(dealer_.handle(), kMonitorEndpoint, kMonitorEvents) != 0) {
      return IoError(std::string("cannot monitor the broker socket: ") + zmq_strerror(zmq_errno()));
    }
    monitor_ = zmq::socket_t(*context_, zmq::socket_type::pair);
    monitor_.set(zmq::sockopt::linger, 0);
    monitor_.connect(kMonitorEndpoint);
    dealer_.connect(endpoint_);
  } catch (const zmq::error_t& e) {
    return ZmqError(e, "connecting to broker " + broker_id_ + " at " + endpoint_);
  }
  started_ = true;
  last_hello_ = Clock::now();
  spdlog::info("agent {}: connecting to home broker {} at {}", identity_.party_id(), broker_id_,
               endpoint_);
  return Status::Ok();
}

// ---------------------------------------------------------------- submit

Result<Bytes> Client::Submit(Bytes envelope) {
  std::vector<Bytes> one;
  one.push_back(std::move(envelope));
  REFBUS_ASSIGN_OR_RETURN(std::vector<Bytes> ids, SubmitBatch(std::move(one)));
  return std::move(ids.front());
}

Result<std::vector<Bytes>> Client::SubmitBatch(std::vector<Bytes> envelopes) {
  if (!started_ || closed_) return FailedPrecondition("the client is not running");
  std::vector<OutboxItem> items;
  items.reserve(envelopes.size());
  for (size_t i = 0; i < envelopes.size(); ++i) {
    auto env = schema::DecodeEnvelope(envelopes[i]);
    if (!env.ok())
      return env.status().WithContext("envelope " + std::to_string(i) + " of the batch");
    if (env->header.sender_id != identity_.party_id()) {
      return InvalidArgument("envelope " + HexEncode(env->header.message_id) + " is sent by " +
                             env->header.sender_id + ", not by " + identity_.party_id());
    }
    items.push_back(OutboxItem{env->header.message_id, std::move(envelopes[i])});
  }
  REFBUS_ASSIGN_OR_RETURN(std::vector<bool> added, store_.AddToOutbox(items, WallNow()));
  std::vector<Bytes> ids;
  ids.reserve(items.size());
  for (const auto& it : items) ids.push_back(it.message_id);
  Track(std::move(items), added);
  // The envelopes are queued durably: that is what this call promises. A failure to send
  // them right now is retried and reported by Poll, not here (a caller that saw an error
  // would otherwise be tempted to seal them again under new ids).
  if (Status s = Pump(); !s.ok()) spdlog::debug("agent: sending after submit: {}", s.ToString());
  return ids;
}

Status Client::SubmitControl(Bytes id, const schema::Frame& frame) {
  if (!started_ || closed_) return FailedPrecondition("the client is not running");
  if (id.size() != schema::kMessageIdBytes) {
    return InvalidArgument("a control frame's id must be " +
                           std::to_string(schema::kMessageIdBytes) + " bytes");
  }
  // Only the type and its body are stored: version and request_id are the Client's (a
  // fresh request_id per send), and members of other bodies must not make one control
  // frame differ from itself when it is queued twice.
  schema::Frame stored;
  stored.type = frame.type;
  switch (frame.type) {
    case schema::Frame::Type::kGrantRegister:
      stored.grant_register = frame.grant_register;
      break;
    case schema::Frame::Type::kGrantRevoke:
      stored.grant_revoke = frame.grant_revoke;
      break;
    case schema::Frame::Type::kAttest:
      stored.attest = frame.attest;
      break;
    case schema::Frame::Type::kPrekeyUpdate:
      stored.prekey_update = frame.prekey_update;
      break;
    case schema::Frame::Type::kRosterUpdate:
      stored.roster_update = frame.roster_update;
      break;
    default:
      return InvalidArgument(
          "SubmitControl takes GrantRegister, GrantRevoke, Attest, PrekeyUpdate or RosterUpdate "
          "frames");
  }
  Bytes encoded = schema::EncodeFrame(stored);
  // What the broker's decoder would refuse (an empty body, an Attest without exactly one
  // statement, a frame over the hard limit) is refused here, before it is queued.
  if (auto check = schema::DecodeFrame(encoded); !check.ok()) {
    return InvalidArgument("control frame " + HexEncode(id) + ": " + check.status().message());
  }
  std::vector<OutboxItem> items;
  items.push_back(OutboxItem{std::move(id), std::move(encoded), true});
  REFBUS_ASSIGN_OR_RETURN(std::vector<bool> added, store_.AddToOutbox(items, WallNow()));
  Track(std::move(items), added);
  // Queued durably: as for Submit, sending problems are Poll's to report.
  if (Status s = Pump(); !s.ok()) spdlog::debug("agent: sending after submit: {}", s.ToString());
  return Status::Ok();
}

void Client::Track(std::vector<OutboxItem> items, const std::vector<bool>& added) {
  for (size_t i = 0; i < items.size(); ++i) {
    std::string key = Key(items[i].message_id);
    if (pending_.count(key) != 0) continue;  // already queued by this process
    Pending p;
    p.order = next_order_++;
    p.control = items[i].control;
    // Keep the bytes only for what is likely to leave at once; the rest is read back from
    // the outbox when its turn comes, so a long queue does not sit in memory twice.
    if (queue_.size() < options_.window) p.payload = std::move(items[i].envelope);
    pending_.emplace(key, std::move(p));
    queue_.push_back(std::move(key));
    if (added[i]) ++counters_.submitted;
  }
}

size_t Client::unsent() const { return pending_.size() - in_flight_.size(); }

// ---------------------------------------------------------------- directory

Status Client::FetchDirectory(uint64_t have_serial) {
  if (!started_ || closed_) return FailedPrecondition("the client is not running");
  fetch_have_serial_ = have_serial;
  fetch_in_flight_ = false;
  if (Status s = Pump(); !s.ok()) spdlog::debug("agent: sending after fetch: {}", s.ToString());
  return Status::Ok();
}

std::vector<ClientEvent> Client::TakeEvents() {
  std::vector<ClientEvent> out;
  out.swap(events_);
  return out;
}

// ---------------------------------------------------------------- event loop

Status Client::Poll(int timeout_ms) {
  if (!started_ || closed_) return FailedPrecondition("the client is not running");
  Status first;
  auto keep = [&first](Status s) {
    if (first.ok() && !s.ok()) first = std::move(s);
  };
  keep(Pump());
  zmq_pollitem_t items[2] = {{dealer_.handle(), 0, ZMQ_POLLIN, 0},
                             {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
  int rc = zmq_poll(items, 2, MillisUntilNextTimer(std::max(timeout_ms, 0)));
  if (rc < 0) {
    int err = zmq_errno();
    // A signal (SIGTERM from the operator) interrupts the wait: not an error; the caller
    // looks at its flag and decides.
    if (err != EINTR) keep(IoError(std::string("polling the broker socket: ") + zmq_strerror(err)));
    return first;
  }
  if ((items[1].revents & ZMQ_POLLIN) != 0) keep(HandleMonitor());
  if ((items[0].revents & ZMQ_POLLIN) != 0) keep(HandleIncoming());
  HandleTimers();
  keep(Pump());
  return first;
}

int Client::MillisUntilNextTimer(int cap) const {
  auto now = Clock::now();
  int ms = cap;
  if (need_hello_ && connected_) ms = std::min(ms, kHelloRetryMs);
  if (!welcomed_ && !need_hello_) {
    ms = std::min(ms, Remaining(last_hello_ + milliseconds(options_.welcome_timeout_ms), now));
  }
  if (welcomed_ && !paused_) {
    for (const auto& key : in_flight_) {
      auto it = pending_.find(key);
      if (it != pending_.end()) ms = std::min(ms, Remaining(it->second.deadline, now));
    }
  }
  if (welcomed_) {
    if (fetch_in_flight_) ms = std::min(ms, Remaining(fetch_deadline_, now));
  }
  for (const auto& key : backoff_) {
    auto it = pending_.find(key);
    if (it != pending_.end()) ms = std::min(ms, Remaining(it->second.deadline, now));
  }
  if (redelivery_hello_at_) ms = std::min(ms, Remaining(*redelivery_hello_at_, now));
  return std::max(ms, 0);
}

Status Client::HandleMonitor() {
  for (int i = 0; i < 64; ++i) {
    REFBUS_ASSIGN_OR_RETURN(auto parts, zmqx::RecvMultipart(monitor_));
    if (!parts) return Status::Ok();
    if (parts->empty() || (*parts)[0].size() < 6) continue;
    // Monitor events (ZeroMQ v1 format): u16 event and u32 value in host order, then the
    // endpoint in a second part.
    uint16_t event = 0;
    uint32_t value = 0;
    std::memcpy(&event, (*parts)[0].data(), sizeof(event));
    std::memcpy(&value, static_cast<const uint8_t*>((*parts)[0].data()) + 2, sizeof(value));
    switch (event) {
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        ++counters_.connects;
        connected_ = true;
        welcomed_ = false;
        awaiting_welcome_ = false;
        need_hello_ = true;
        fetch_in_flight_ = false;
        // Whatever was in flight on the old connection may be lost: send it again after
        // the new Welcome (the broker answers a repeat with a duplicate Ack).
        RequeueInFlight();
        spdlog::info("agent {}: connected to broker {} (CURVE handshake done)",
                     identity_.party_id(), broker_id_);
        break;
      case ZMQ_EVENT_DISCONNECTED:
        if (connected_) {
          ++counters_.disconnects;
          spdlog::warn("agent {}: disconnected from broker {}; reconnecting", identity_.party_id(),
                       broker_id_);
        }
        connected_ = false;
        welcomed_ = false;
        awaiting_welcome_ = false;
        need_hello_ = false;
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        if (const int err = static_cast<int>(value);
            err == EPIPE || err == ECONNRESET || err == ECONNABORTED) {
          // The connection dropped during the handshake (a broker restarting): not a refusal.
          spdlog::info(
              "agent {}: connection to broker {} dropped during the handshake ({}); "
              "reconnecting",
              identity_.party_id(), broker_id_, std::strerror(err));
          break;
        }
        [[fallthrough]];
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        ++counters_.handshake_failures;
        // Logged on the first failure and then sparsely: the broker keeps refusing while
        // the agent keeps reconnecting with backoff.
        if (counters_.handshake_failures == 1 || counters_.handshake_failures % 20 == 0) {
          spdlog::error(
              "agent {}: broker {} refused the CURVE handshake (event 0x{:x}, code {}; {} "
              "failures so far): is this agency's key in the broker's directory?",
              identity_.party_id(), broker_id_, event, value, counters_.handshake_failures);
        }
        break;
      default:
        break;
    }
  }
  return Status::Ok();
}

void Client::RequeueInFlight() {
  std::vector<std::pair<uint64_t, std::string>> keys;
  for (const auto& key : in_flight_) {
    auto it = pending_.find(key);
    if (it == pending_.end()) continue;
    it->second.state = Pending::State::kQueued;
    keys.emplace_back(it->second.order, key);
  }
  in_flight_.clear();
  // Front of the queue, oldest first.
  std::sort(keys.begin(), keys.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& k : keys) queue_.push_front(std::move(k.second));
}

void Client::HandleTimers() {
  auto now = Clock::now();
  // No Welcome in time (or never a handshake event): say Hello again.
  if (!welcomed_ && !need_hello_ &&
      now >= last_hello_ + milliseconds(options_.welcome_timeout_ms)) {
    if (awaiting_welcome_) {
      spdlog::info("agent: no Welcome from broker {} within {} ms; sending Hello again", broker_id_,
                   options_.welcome_timeout_ms);
    }
    need_hello_ = true;
  }
  if (redelivery_hello_at_ && now >= *redelivery_hello_at_) {
    redelivery_hello_at_.reset();
    need_hello_ = true;
  }

  std::vector<std::pair<uint64_t, std::string>> due;
  if (welcomed_ && !paused_) {
    for (const auto& key : in_flight_) {
      auto it = pending_.find(key);
      if (it != pending_.end() && now >= it->second.deadline)
        due.emplace_back(it->second.order, key);
    }
    if (!due.empty()) {
      spdlog::info("agent: {} submissions unanswered after {} ms; sending them again", due.size(),
                   options_.submit_timeout_ms);
    }
  }
  if (welcomed_ && fetch_in_flight_ && now >= fetch_deadline_) fetch_in_flight_ = false;
  for (const auto& key : backoff_) {
    auto it = pending_.find(key);
    if (it != pending_.end() && now >= it->second.deadline) due.emplace_back(it->second.order, key);
  }
  if (due.empty()) return;
  std::sort(due.begin(), due.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& d : due) {
    in_flight_.erase(d.second);
    backoff_.erase(d.second);
    pending_[d.second].state = Pending::State::kQueued;
    queue_.push_front(std::move(d.second));
  }
}

Result<bool> Client::SendFrame(const schema::Frame& frame) {
  return SendBytes(schema::EncodeFrame(frame));
}

Result<bool> Client::SendBytes(const Bytes& b) {
  try {
    auto r = dealer_.send(zmq::const_buffer(b.data(), b.size()), zmq::send_flags::dontwait);
    return r.has_value();
  } catch (const zmq::error_t& e) {
    if (e.num() == EAGAIN || e.num() == EHOSTUNREACH) return false;
    return ZmqError(e, "sending to broker " + broker_id_);
  }
}

Result<bool> Client::SendHello() {
  schema::Frame f;
  f.type = schema::Frame::Type::kHello;
  f.request_id = NextRequestId();
  f.hello.party_id = identity_.party_id();
  f.hello.directory_serial = directory_.serial;
  f.hello.software = options_.software;
  REFBUS_ASSIGN_OR_RETURN(bool sent, SendFrame(f));
  if (sent) {
    hello_request_id_ = f.request_id;
    ++counters_.hellos;
  }
  return sent;
}

Status Client::PumpHello(SteadyTime now) {
  if (!need_hello_) return Status::Ok();
  REFBUS_ASSIGN_OR_RETURN(bool sent, SendHello());
  if (sent) {
    need_hello_ = false;
    awaiting_welcome_ = true;
    last_hello_ = now;
  } else if (!connected_) {
    // No connection: the next handshake event (or the welcome timer) brings it back.
    need_hello_ = false;
    last_hello_ = now;
  }
  return Status::Ok();
}

Status Client::PumpDirectoryFetch(SteadyTime now) {
  if (!fetch_have_serial_ || fetch_in_flight_) return Status::Ok();
  schema::Frame f;
  f.type = schema::Frame::Type::kDirectoryFetch;
  f.request_id = NextRequestId();
  f.directory_fetch.have_serial = *fetch_have_serial_;
  REFBUS_ASSIGN_OR_RETURN(bool sent, SendFrame(f));
  if (sent) {
    fetch_in_flight_ = true;
    fetch_request_id_ = f.request_id;
    fetch_deadline_ = now + milliseconds(options_.submit_timeout_ms);
  }
  return Status::Ok();
}

// Bytes that cannot be trusted, or a record this Client cannot send, are not sent; the
// record stays in the outbox for the operator, and the application hears of it now.
// REQUIRES: key is at the front of queue_ and in pending_.
void Client::DropUnsendable(const std::string& key, const char* detail) {
  auto it = pending_.find(key);
  Pending& p = it->second;
  ++counters_.store_errors;
  spdlog::error("agent: outbox record of {} {}: {}; it cannot be sent", KindName(p.control),
                Hex(key), detail);
  ClientEvent ev;
  ev.type = ClientEvent::Type::kRefused;
  ev.message_id = Bytes(IdOf(key).begin(), IdOf(key).end());
  ev.reason = schema::NackReason::kMalformed;
  ev.detail = std::string("the local outbox record ") + detail;
  ev.control = p.control;
  events_.push_back(std::move(ev));
  request_to_id_.erase(p.request_id);
  in_flight_.erase(key);
  backoff_.erase(key);
  pending_.erase(it);
  queue_.pop_front();
}

Status Client::Pump() {
  if (!started_ || closed_) return Status::Ok();
  auto now = Clock::now();
  REFBUS_RETURN_IF_ERROR(PumpHello(now));
  if (!welcomed_) return Status::Ok();
  REFBUS_RETURN_IF_ERROR(PumpDirectoryFetch(now));

  while (!paused_ && in_flight_.size() < options_.window && !queue_.empty()) {
    const std::string key = queue_.front();
    auto it = pending_.find(key);
    if (it == pending_.end() || it->second.state != Pending::State::kQueued) {
      queue_.pop_front();  // answered or already re-queued elsewhere
      continue;
    }
    Pending& p = it->second;
    if (p.payload.empty()) {
      auto item = store_.OutboxEntry(IdOf(key));
      if (!item.ok()) {
        if (item.status().code() == Status::Code::kNotFound) {
          pending_.erase(it);
          queue_.pop_front();
          continue;
        }
        if (item.status().code() == Status::Code::kMalformed) {
          DropUnsendable(key, "is damaged");
          continue;
        }
        return item.status();
      }
      p.control = item->control;
      p.payload = std::move(item->envelope);
    }
    const uint64_t request_id = NextRequestId();
    auto encoded_or = EncodeSubmission(p, request_id);
    if (!encoded_or.ok()) {
      DropUnsendable(key, "is not a control frame this client can send");
      continue;
    }
    Bytes encoded = std::move(encoded_or).value();
    if (encoded.size() > broker_max_frame_bytes_) {
      // The broker would refuse the frame without being able to name the request; say it
      // here, once, as the broker would have.
      ++counters_.refused;
      spdlog::warn("agent: {} {} ({} bytes as a frame) is over broker {}'s limit of {}",
                   KindName(p.control), Hex(key), encoded.size(), broker_id_,
                   broker_max_frame_bytes_);
      ClientEvent ev;
      ev.type = ClientEvent::Type::kRefused;
      ev.message_id = Bytes(IdOf(key).begin(), IdOf(key).end());
      ev.reason = schema::NackReason::kTooLarge;
      ev.detail = "frame of " + std::to_string(encoded.size()) +
                  " bytes is over the broker's limit of " + std::to_string(broker_max_frame_bytes_);
      queue_.pop_front();
      Finish(key, std::move(ev));
      continue;
    }
    auto sent = SendBytes(encoded);
    if (!sent.ok()) return sent.status();
    if (!*sent) break;  // no connection or a full queue: try again next turn
    queue_.pop_front();
    request_to_id_.erase(p.request_id);
    p.request_id = request_id;
    request_to_id_[p.request_id] = key;
    p.state = Pending::State::kInFlight;
    p.deadline = now + milliseconds(options_.submit_timeout_ms);
    in_flight_.insert(key);
    ++counters_.sent;
    if (p.sent_before) ++counters_.resent;
    p.sent_before = true;
  }
  return FlushCompletions();
}

Result<Bytes> Client::EncodeSubmission(Pending& p, uint64_t request_id) {
  if (!p.control) {
    schema::Frame f;
    f.type = schema::Frame::Type::kSubmit;
    f.request_id = request_id;
    f.submit.envelope = std::move(p.payload);
    Bytes encoded = schema::EncodeFrame(f);
    p.payload = std::move(f.submit.envelope);
    return encoded;
  }
  // Stored with request_id 0 (and checked by its hash on the way out of the store): decode
  // it to give this send its own request id.
  REFBUS_ASSIGN_OR_RETURN(schema::Frame f, schema::DecodeFrame(p.payload));
  if (!IsControlType(f.type)) return Malformed("the stored frame is not a control frame");
  f.request_id = request_id;
  return schema::EncodeFrame(f);
}

void Client::Close(int linger_ms) {
  if (closed_) return;
  closed_ = true;
  try {
    if (dealer_.handle() != nullptr) {
      zmq_socket_monitor(dealer_.handle(), nullptr, 0);
      dealer_.set(zmq::sockopt::linger, std::max(linger_ms, 0));
      dealer_.close();
    }
    if (monitor_.handle() != nullptr) monitor_.close();
  } catch (const zmq::error_t& e) {
    spdlog::warn("agent: closing the broker socket: {}", e.what());
  }
}

}  // namespace refbus::agent
