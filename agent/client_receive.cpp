// Client: what comes from the broker. Frames are read, acks and final nacks complete
// submissions (after their outbox removal commits), retryable nacks back off, and
// deliveries are stored in the inbox before they are acknowledged (client.h).
#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/client.h"
#include "agent/client_internal.h"
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

// Frames read per Poll turn, so that a flood of deliveries cannot starve timers and sends.
constexpr int kMaxFramesPerTurn = 4096;
// A broker may ask for back-pressure delays; a hostile or broken one must not park a
// referral for weeks.
constexpr uint32_t kMaxRetryAfterMs = 10 * 60 * 1000;

// Nacks after which the envelope is kept and sent again later: the two back-pressure
// reasons, and INTERNAL, which is not back-pressure but is not a verdict on the envelope
// either: transport.proto documents it as "retry later", and refbus-broker sends it (with
// retry_after_ms) when its commit failed, that is when it did NOT store the envelope.
// Treating it as final would drop a referral that nobody holds. Every other reason is a
// verdict on the envelope itself and final.
bool IsRetryable(schema::NackReason r) {
  return r == schema::NackReason::kQuotaExceeded || r == schema::NackReason::kStorageFull ||
         r == schema::NackReason::kInternal;
}

}  // namespace

Status Client::HandleIncoming() {
  Status first;
  auto keep = [&first](Status s) {
    if (first.ok() && !s.ok()) first = std::move(s);
  };
  std::vector<IncomingDelivery> deliveries;
  for (int i = 0; i < kMaxFramesPerTurn; ++i) {
    auto parts = zmqx::RecvMultipart(dealer_);
    if (!parts.ok()) {
      keep(parts.status());
      break;
    }
    if (!*parts) break;
    auto& p = **parts;
    // One Frame per message; tolerate empty delimiter parts in front of it.
    bool shape_ok = !p.empty();
    for (size_t j = 0; shape_ok && j + 1 < p.size(); ++j) shape_ok = p[j].size() == 0;
    if (!shape_ok || p.back().size() > schema::kMaxFrameBytes) {
      ++counters_.bad_frames;
      spdlog::warn("agent: ignoring a message from broker {} with {} parts and {} bytes",
                   broker_id_, p.size(), p.empty() ? 0 : p.back().size());
      continue;
    }
    ByteView body(static_cast<const uint8_t*>(p.back().data()), p.back().size());
    auto frame = schema::DecodeFrame(body);
    if (!frame.ok()) {
      ++counters_.bad_frames;
      spdlog::warn("agent: ignoring a frame from broker {} that does not decode: {}", broker_id_,
                   frame.status().ToString());
      continue;
    }
    HandleFrame(std::move(frame).value(), deliveries);
    if (deliveries.size() >= options_.max_deliveries_per_commit) {
      keep(FlushDeliveries(deliveries));
    }
  }
  keep(FlushDeliveries(deliveries));
  keep(FlushCompletions());
  return first;
}

void Client::HandleFrame(schema::Frame f, std::vector<IncomingDelivery>& deliveries) {
  using T = schema::Frame::Type;
  switch (f.type) {
    case T::kWelcome:
      if (!awaiting_welcome_ || f.request_id != hello_request_id_) {
        spdlog::debug("agent: ignoring a Welcome for an earlier Hello ({})", f.request_id);
        return;
      }
      awaiting_welcome_ = false;
      welcomed_ = true;
      ++counters_.sessions;
      broker_directory_serial_ = f.welcome.directory_serial;
      broker_max_frame_bytes_ =
          f.welcome.max_frame_bytes != 0
              ? std::min<size_t>(f.welcome.max_frame_bytes, schema::kMaxFrameBytes)
              : schema::kMaxFrameBytes;
      if (f.welcome.broker_id != broker_id_) {
        spdlog::warn("agent: broker at {} calls itself {}, the directory says {}", endpoint_,
                     f.welcome.broker_id, broker_id_);
      }
      spdlog::info(
          "agent {}: session with broker {} (its directory serial {}, ours {}); {} "
          "submissions waiting",
          identity_.party_id(), broker_id_, f.welcome.directory_serial, directory_.serial,
          pending_.size());
      return;
    case T::kAck:
      HandleAck(f);
      return;
    case T::kNack:
      HandleNack(f);
      return;
    case T::kDeliver: {
      auto env = schema::DecodeEnvelope(f.deliver.envelope);
      if (!env.ok()) {
        ++counters_.malformed_deliveries;
        spdlog::warn("agent: delivery {} from broker {} does not decode ({}); refusing it",
                     f.request_id, broker_id_, CodeName(env.status().code()));
        schema::Frame nack;
        nack.type = T::kNack;
        nack.request_id = f.request_id;
        nack.nack.reason = schema::NackReason::kMalformed;
        nack.nack.detail = "envelope does not decode";
        auto sent = SendFrame(nack);
        if (!sent.ok() || !*sent) spdlog::debug("agent: could not send a Nack now");
        return;
      }
      deliveries.push_back(
          IncomingDelivery{f.request_id, env->header.message_id, std::move(f.deliver.envelope)});
      return;
    }
    case T::kPrekeyUpdate: {
      // A prekey the broker holds (PROTOCOL.md "Prekey publication"): unverified here; the
      // engine checks it against its directory before keeping it.
      ClientEvent ev;
      ev.type = ClientEvent::Type::kPrekey;
      ev.signed_prekey = std::move(f.prekey_update.signed_prekey);
      events_.push_back(std::move(ev));
      return;
    }
    case T::kDirectoryReply:
      if (!fetch_in_flight_ || f.request_id != fetch_request_id_) {
        spdlog::debug("agent: ignoring a directory reply to an earlier request");
        return;
      }
      fetch_in_flight_ = false;
      fetch_have_serial_.reset();
      {
        ClientEvent ev;
        ev.type = ClientEvent::Type::kDirectoryReply;
        ev.signed_directory = std::move(f.directory_reply.signed_directory);
        events_.push_back(std::move(ev));
      }
      return;
    case T::kHello:
    case T::kSubmit:
    case T::kDirectoryFetch:
    case T::kGrantRegister:
    case T::kGrantRevoke:
    case T::kAttest:
    case T::kAuditCheckpoint:
    case T::kAuditEntries:
    case T::kAuditProof:
    case T::kAuditConsistency:
    case T::kAuditCheckpoints:
    case T::kAuditReply:  // answers audit queries, which agents never send
    case T::kWitnessRequest:
    case T::kWitnessReply:
    case T::kAddCosignature:    // witnessing is between brokers and auditors
    case T::kRelay:             // broker to broker
    case T::kLinkageEvaluate:   // agency to an evaluator broker
    case T::kLinkageEvaluated:  // answered on the linkage client's own session
    case T::kRosterUpdate:      // agency to its home broker
    case T::kLinkageTally:      // agency to its home broker, on the tally's own session
      ++counters_.bad_frames;
      spdlog::warn("agent: broker {} sent a frame of a type only clients send; ignoring it",
                   broker_id_);
      return;
  }
}

std::string Client::ControlByRequest(uint64_t request_id) const {
  if (request_id == 0) return {};
  auto r = request_to_id_.find(request_id);
  if (r == request_to_id_.end()) return {};
  auto it = pending_.find(r->second);
  if (it == pending_.end() || !it->second.control || it->second.request_id != request_id) {
    return {};
  }
  return r->second;
}

void Client::HandleAck(const schema::Frame& f) {
  std::string key = Key(f.ack.message_id);
  if (pending_.count(key) == 0) {
    // The broker names a control frame by an id it derives from the frame; if the caller
    // chose another id, the request id still says which frame this answers.
    key = ControlByRequest(f.request_id);
    if (key.empty()) {
      // A late answer to a resend that was already answered: nothing to do.
      spdlog::debug("agent: ack for message {} that is not outstanding",
                    HexEncode(f.ack.message_id));
      return;
    }
    spdlog::debug("agent: ack naming {} answers control frame {} (request {})",
                  HexEncode(f.ack.message_id), Hex(key), f.request_id);
  }
  if (!f.ack.latest_checkpoint.empty()) NoteCheckpoint(f.ack.latest_checkpoint);
  ++counters_.acked;
  if (f.ack.duplicate) ++counters_.acked_duplicate;
  counters_.last_ack_ms = SystemClock::Get().NowMillis();
  ClientEvent ev;
  ev.type = ClientEvent::Type::kAcked;
  ev.message_id = Bytes(IdOf(key).begin(), IdOf(key).end());
  ev.duplicate = f.ack.duplicate;
  Finish(key, std::move(ev));
}

void Client::HandleNack(const schema::Frame& f) {
  std::string key;
  if (!f.nack.message_id.empty()) {
    key = Key(f.nack.message_id);
    if (pending_.count(key) == 0) {
      // As for acks: a control frame's answer may name an id the caller did not choose.
      if (std::string c = ControlByRequest(f.request_id); !c.empty()) key = std::move(c);
    }
  } else if (auto r = request_to_id_.find(f.request_id); r != request_to_id_.end()) {
    key = r->second;
  }
  if (key.empty() && f.request_id != 0 && f.request_id == hello_request_id_) {
    // The broker refused the session (say, our key was revoked or rotated out by a newer
    // directory there). The welcome timer keeps asking, in case that changes.
    spdlog::error("agent {}: broker {} refused Hello: {}", identity_.party_id(), broker_id_,
                  schema::Name(f.nack.reason));
    return;
  }
  auto it = key.empty() ? pending_.end() : pending_.find(key);
  if (it == pending_.end()) {
    spdlog::debug("agent: nack (reason {}) for request {} that is not outstanding",
                  schema::Name(f.nack.reason), f.request_id);
    return;
  }
  Pending& p = it->second;
  const auto reason_index = static_cast<size_t>(f.nack.reason);
  ++counters_.nacks[reason_index < counters_.nacks.size() ? reason_index : 0];
  if (IsRetryable(f.nack.reason)) {
    ++counters_.backpressure;
    uint32_t delay =
        f.nack.retry_after_ms != 0 ? f.nack.retry_after_ms : options_.default_retry_after_ms;
    delay = std::min(delay, kMaxRetryAfterMs);
    in_flight_.erase(key);
    backoff_.insert(key);
    p.state = Pending::State::kBackoff;
    p.deadline = Clock::now() + milliseconds(delay);
    p.payload.clear();  // read back when due: backing-off entries must not pile up in memory
    p.payload.shrink_to_fit();
    spdlog::info("agent: broker {} is pushing back on {} {} ({}); retrying in {} ms", broker_id_,
                 KindName(p.control), Hex(key), schema::Name(f.nack.reason), delay);
    return;
  }
  ++counters_.refused;
  spdlog::warn("agent: broker {} refused {} {} for good: {}", broker_id_, KindName(p.control),
               Hex(key), schema::Name(f.nack.reason));
  ClientEvent ev;
  ev.type = ClientEvent::Type::kRefused;
  ev.message_id = Bytes(IdOf(key).begin(), IdOf(key).end());
  ev.reason = f.nack.reason;
  ev.detail = f.nack.detail;
  Finish(key, std::move(ev));
}

void Client::Finish(const std::string& key, ClientEvent event) {
  auto it = pending_.find(key);
  if (it == pending_.end()) return;
  event.control = it->second.control;
  request_to_id_.erase(it->second.request_id);
  in_flight_.erase(key);
  backoff_.erase(key);
  pending_.erase(it);  // a stale copy of key in queue_ is skipped by Pump
  Bytes id(IdOf(key).begin(), IdOf(key).end());
  completions_.push_back(Completion{std::move(id), std::move(event)});
}

Status Client::FlushCompletions() {
  if (completions_.empty()) return Status::Ok();
  std::vector<Bytes> ids;
  ids.reserve(completions_.size());
  for (const auto& c : completions_) ids.push_back(c.message_id);
  Status s = store_.RemoveFromOutbox(ids);
  if (!s.ok()) {
    // The broker's answer stands; the entries stay in the outbox and a later run resends
    // them, which the broker answers as duplicates.
    ++counters_.store_errors;
    spdlog::error("agent: could not remove {} answered envelopes from the outbox: {}", ids.size(),
                  s.ToString());
  }
  for (auto& c : completions_) events_.push_back(std::move(c.event));
  completions_.clear();
  return s;
}

void Client::RefuseReusedId(uint64_t request_id, const Bytes& message_id) {
  // Never acked (the broker keeps it for redelivery and logs the refusal), never stored.
  ++counters_.id_reused_deliveries;
  spdlog::error(
      "agent: broker {} delivered message {} with other bytes than the envelope held under "
      "that id; refused, the held one is kept",
      broker_id_, HexEncode(message_id));
  schema::Frame nack;
  nack.type = schema::Frame::Type::kNack;
  nack.request_id = request_id;
  nack.nack.reason = schema::NackReason::kIdReused;
  nack.nack.detail = "this agency holds that message id with other bytes";
  auto sent = SendFrame(nack);
  if (!sent.ok() || !*sent) spdlog::debug("agent: could not send a Nack now");
}

Status Client::FlushDeliveries(std::vector<IncomingDelivery>& deliveries) {
  if (deliveries.empty()) return Status::Ok();
  std::vector<Delivery> batch;
  batch.reserve(deliveries.size());
  for (auto& d : deliveries) batch.push_back(Delivery{d.message_id, std::move(d.envelope)});
  auto outcomes = store_.StoreDeliveries(batch, WallNow());
  if (!outcomes.ok()) {
    // Nothing is acknowledged, so the broker still holds every one of these. A Hello
    // later makes it deliver them again (PROTOCOL: resend to the latest Hello).
    ++counters_.store_errors;
    spdlog::error("agent: could not store {} deliveries ({}); asking for redelivery in {} ms",
                  deliveries.size(), outcomes.status().ToString(), options_.store_retry_ms);
    redelivery_hello_at_ = Clock::now() + milliseconds(options_.store_retry_ms);
    deliveries.clear();
    return outcomes.status();
  }
  ++counters_.delivery_commits;
  for (size_t i = 0; i < batch.size(); ++i) {
    const DeliveryOutcome& o = (*outcomes)[i];
    if (o.id_reused) {
      RefuseReusedId(deliveries[i].request_id, batch[i].message_id);
      continue;
    }
    schema::Frame ack;
    ack.type = schema::Frame::Type::kAck;
    ack.request_id = deliveries[i].request_id;
    ack.ack.message_id = batch[i].message_id;
    ack.ack.duplicate = o.duplicate;
    auto sent = SendFrame(ack);
    if (!sent.ok() || !*sent) {
      // Stored but not acknowledged: the broker redelivers and gets a duplicate Ack.
      spdlog::debug("agent: could not send the ack for message {} now",
                    HexEncode(batch[i].message_id));
    }
    if (o.duplicate) {
      ++counters_.duplicate_deliveries;
      continue;
    }
    ++counters_.delivered;
    ClientEvent ev;
    ev.type = ClientEvent::Type::kDelivered;
    ev.message_id = std::move(batch[i].message_id);
    ev.envelope = std::move(batch[i].envelope);
    ev.inbox_sequence = o.sequence;
    events_.push_back(std::move(ev));
  }
  deliveries.clear();
  return Status::Ok();
}

}  // namespace refbus::agent
