// broker::Server's deliveries to the agencies connected here (schema/PROTOCOL.md section
// 5): a Hello starts a session, mailboxes are pushed in order up to a window, recipient
// acks are committed with the next turn, and unacked deliveries are sent again after
// config redelivery_ms. Damaged stored envelopes are never delivered: they are taken out
// of the mailbox into quarantine with the next commit.
#include <spdlog/spdlog.h>

#include "broker/server.h"
#include "broker/server_internal.h"
#include "schema/codec.h"

namespace refbus::broker {

using schema::Frame;
using schema::NackReason;
using server_internal::Short;

namespace {

// Why the stored envelope must not be handed to the owner of mailbox id ("" if it may):
// only its own recipients ever get its bytes, whatever a mailbox entry says.
std::string NotForOwner(const std::string& id, ByteView envelope) {
  auto env = schema::DecodeEnvelope(envelope);
  if (!env.ok()) return "stored envelope does not decode: " + env.status().message();
  for (const auto& r : env->header.recipients) {
    if (r.agency_id == id) return "";
  }
  return "the mailbox owner " + id + " is not a recipient of the stored envelope (sender " +
         env->header.sender_id + ")";
}

}  // namespace

void Server::Deliveries::DropInflight(const std::string& recipient) {
  for (auto it = inflight.begin(); it != inflight.end();) {
    it = it->second.recipient == recipient ? inflight.erase(it) : std::next(it);
  }
}

void Server::HandleHello(const std::string& routing_id, const std::string& peer_id,
                         const schema::Party& peer, const Frame& frame, Turn& turn) {
  if (frame.hello.party_id != peer_id) {
    Reject(turn, routing_id, frame.request_id, peer_id, NackReason::kSenderMismatch,
           "hello names " + frame.hello.party_id + " but the connection is " + peer_id, nullptr,
           {});
    return;
  }
  Frame w;
  w.type = Frame::Type::kWelcome;
  w.request_id = frame.request_id;
  w.welcome.broker_id = config_.id;
  w.welcome.directory_serial = directory_.directory.serial;
  w.welcome.max_frame_bytes = static_cast<uint32_t>(config_.max_frame_bytes);
  if (peer.kind == schema::PartyKind::kBroker) {
    // A peer broker's link (or its keepalive): it relays here; nothing is delivered to
    // it on this connection (this broker relays to it over its own link).
    turn.direct.emplace_back(routing_id, std::move(w));
    return;
  }
  Peer& p = deliveries_.peers[peer_id];
  // A new session: everything unacked is sent again, in order.
  deliveries_.DropInflight(peer_id);
  p.routing_id = routing_id;
  p.last_sent_seq = 0;
  p.inflight = 0;
  p.online = true;
  deliveries_.dirty.insert(peer_id);
  turn.direct.emplace_back(routing_id, std::move(w));
  ServePrekeys(routing_id, turn);  // after the Welcome: the newest prekey of every agency
  spdlog::info("{} connected (directory serial {})", peer_id, frame.hello.directory_serial);
}

void Server::HandleRecipientAck(const std::string& peer_id, const Frame& frame, Turn& turn) {
  auto it = deliveries_.inflight.find(frame.request_id);
  if (it == deliveries_.inflight.end() || it->second.recipient != peer_id ||
      it->second.message_id != frame.ack.message_id) {
    return;  // an ack from an earlier session: the redelivery will be acked again
  }
  RecipientAck ack;
  ack.recipient = peer_id;
  ack.seq = it->second.seq;
  ack.message_id = it->second.message_id;
  turn.batch.acks.push_back(std::move(ack));
  auto p = deliveries_.peers.find(peer_id);
  if (p != deliveries_.peers.end()) {
    if (p->second.inflight > 0) --p->second.inflight;
    p->second.acks_uncommitted.insert(it->second.seq);
  }
  deliveries_.inflight.erase(it);
  deliveries_.dirty.insert(peer_id);
}

void Server::HandleRecipientNack(const std::string& peer_id, const Frame& frame) const {
  auto it = deliveries_.inflight.find(frame.request_id);
  if (it != deliveries_.inflight.end() && it->second.recipient == peer_id) {
    spdlog::error("{} refused delivery of message {}: {} ({}); kept for redelivery", peer_id,
                  Short(it->second.message_id), schema::Name(frame.nack.reason), frame.nack.detail);
  }
}

void Server::PumpDeliveries(UnixMillis now) {
  std::set<std::string> work;
  work.swap(deliveries_.dirty);
  for (const auto& id : work) {
    auto it = deliveries_.peers.find(id);
    if (it == deliveries_.peers.end() || !it->second.online) continue;
    PumpMailbox(id, it->second, now);
  }
}

void Server::PumpMailbox(const std::string& id, Peer& p, UnixMillis now) {
  if (p.inflight >= config_.delivery_window) return;
  auto pending = store_->ReadMailbox(id, p.last_sent_seq, config_.delivery_window - p.inflight);
  if (!pending.ok()) {
    spdlog::critical("cannot read the mailbox of {}: {}", id, pending.status().ToString());
    return;
  }
  for (auto& m : *pending) {
    if (p.acks_uncommitted.count(m.seq) != 0) {
      p.last_sent_seq = m.seq;  // acked; its removal is being committed
      continue;
    }
    const std::string not_for_owner = m.damage.empty() ? NotForOwner(id, m.envelope) : "";
    if (!m.damage.empty() || !not_for_owner.empty()) {
      // Never delivered as if sound, nor to anyone but its recipients; taken aside so the
      // rest of the mailbox flows.
      if (m.damage.empty()) {
        spdlog::critical("MISADDRESSED mailbox entry: stored envelope {}: {}; quarantined",
                         Short(m.message_id), not_for_owner);
      } else {
        spdlog::critical("DAMAGED stored envelope {} in the mailbox of {}: {}; quarantined",
                         Short(m.message_id), id, m.damage);
      }
      RecipientAck q;
      q.recipient = id;
      q.seq = m.seq;
      q.message_id = m.message_id;
      q.kind = RecipientAck::Kind::kQuarantined;
      q.detail = m.damage.empty() ? not_for_owner : m.damage;
      turn_.batch.acks.push_back(std::move(q));
      p.acks_uncommitted.insert(m.seq);
      p.last_sent_seq = m.seq;
      continue;
    }
    Frame f;
    f.type = Frame::Type::kDeliver;
    f.request_id = deliveries_.next_id++;
    f.deliver.envelope = std::move(m.envelope);
    Bytes body = schema::EncodeFrame(f);
    try {
      auto ok = router_.send(zmq::buffer(p.routing_id),
                             zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      if (!ok) break;  // high-water mark: try again next turn
      router_.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::info("{} went offline ({}); its mailbox waits", id, e.what());
      p.online = false;
      break;
    }
    deliveries_.inflight[f.request_id] = Inflight{id, m.seq, m.message_id, now};
    p.last_sent_seq = m.seq;
    ++p.inflight;
    ++stats_.delivered;
    schema::AuditEntry e;
    e.event = schema::AuditEvent::kEnvelopeDelivered;
    e.actor = id;
    e.message_id = std::move(m.message_id);
    e.recipients = {id};
    pending_events_.push_back(std::move(e));
  }
}

void Server::CheckRedeliveries(UnixMillis now) {
  // Unacked deliveries past the deadline: start that recipient over from its oldest
  // pending message (order is kept; the agent deduplicates).
  std::set<std::string> restart;
  for (const auto& [id, f] : deliveries_.inflight) {
    if (now - f.sent_at >= config_.redelivery_ms) restart.insert(f.recipient);
  }
  for (const auto& r : restart) {
    deliveries_.DropInflight(r);
    Peer& p = deliveries_.peers[r];
    p.last_sent_seq = 0;
    p.inflight = 0;
    deliveries_.dirty.insert(r);
    spdlog::info("redelivering to {} (unacked past {} ms)", r, config_.redelivery_ms);
  }
}

}  // namespace refbus::broker
