// broker::Server's session with its peers: the ROUTER socket with CURVE, ZAP (who may
// connect), the per-frame check of the peer against the current directory, sending, and
// refusals (a Nack owed after the commit, with its REJECTED audit entry).
#include <spdlog/spdlog.h>

#include "broker/server.h"
#include "broker/server_internal.h"
#include "core/file.h"
#include "keys/crypto.h"
#include "keys/keyfile.h"
#include "schema/codec.h"

namespace refbus::broker {

using schema::Frame;
using schema::NackReason;
using server_internal::kKeyProperty;
using server_internal::Short;

Status Server::Bind() {
  try {
    REFBUS_ASSIGN_OR_RETURN(zap_, zmqx::ZapHandler::Bind(context_));
    router_ = zmq::socket_t(context_, zmq::socket_type::router);
    REFBUS_RETURN_IF_ERROR(zmqx::ConfigureCurveServer(
        router_, identity_->transport_secret_key().view(), directory_.directory.federation));
    // A PING every 10 s to each connection (agents' own every 2 s): libzmq 4.3 arms a
    // timer per PING and cancels it by walking the I/O thread's whole timer map, so with
    // 1,000 agencies the broker's 2 s PINGs cost a few % of a core idle (README,
    // performance). A silent agent is still dropped within the 10 s TTL its own PINGs
    // ask for; a peer that sends no PINGs within 30 s.
    REFBUS_RETURN_IF_ERROR(zmqx::ConfigureHeartbeat(
        router_, zmqx::Heartbeat{.interval_ms = 10000, .timeout_ms = 30000, .ttl_ms = 30000}));
    router_.set(zmq::sockopt::router_mandatory, 1);
    // libzmq drops a connection that sends more than this, before buffering it: a hard
    // memory bound. Frames between max_frame_bytes and this bound get a TOO_LARGE nack.
    router_.set(zmq::sockopt::maxmsgsize,
                static_cast<int64_t>(schema::kMaxFrameBytes + (64 << 10)));
    router_.set(zmq::sockopt::sndhwm, 100000);
    router_.set(zmq::sockopt::rcvhwm, 100000);
    router_.bind(config_.bind);
  } catch (const zmq::error_t& e) {
    return IoError("cannot bind " + config_.bind + ": " + e.what());
  }
  REFBUS_ASSIGN_OR_RETURN(endpoint_, zmqx::LastEndpoint(router_));
  if (!config_.endpoint_file.empty()) {
    REFBUS_RETURN_IF_ERROR(
        WriteFileAtomic(config_.endpoint_file, AsBytes(endpoint_ + "\n"), kPublicFileMode));
  }
  return Status::Ok();
}

Status Server::HandleZap() {
  return zap_->HandleOne([&](const zmqx::ZapRequest& req) {
    zmqx::ZapDecision d;
    const auto& dir = directory_.directory;
    if (req.domain != dir.federation || req.mechanism != "CURVE") {
      d.status_text = "wrong domain or mechanism";
    } else {
      for (const auto* list : {&dir.agencies, &dir.brokers, &dir.auditors}) {
        for (const auto& p : *list) {
          if (p.status != schema::PartyStatus::kActive) continue;
          const schema::KeyRecord* k = p.ActiveKeys();
          if (k != nullptr && k->transport_key == req.client_key) {
            d.allow = true;
            d.user_id = p.id;
            d.metadata.emplace_back(kKeyProperty, HexEncode(req.client_key));
          }
        }
      }
      if (!d.allow) d.status_text = "key not in the directory";
    }
    if (!d.allow) {
      ++stats_.zap_refused;
      spdlog::warn("refused a connection from {}: {} (key {})", req.address, d.status_text,
                   keys::Fingerprint(keys::KeyId(keys::KeyUse::kTransport, req.client_key)));
    }
    return d;
  });
}

Result<const schema::Party*> Server::CurrentPeer(const zmq::message_t& msg) const {
  auto user = zmqx::UserId(msg);
  auto key = zmqx::Property(msg, kKeyProperty);
  if (!user || !key) return Unauthenticated("connection is not authenticated");
  const schema::Party* p = directory_.directory.Find(*user);
  if (p == nullptr) return Unauthenticated(*user + " is no longer in the directory");
  if (p->status != schema::PartyStatus::kActive) return Revoked(*user + " is revoked");
  const schema::KeyRecord* k = p->ActiveKeys();
  if (k == nullptr || HexEncode(k->transport_key) != *key) {
    return Revoked("the key " + *user + " connected with is no longer its active key");
  }
  return p;
}

void Server::Send(const std::string& routing_id, const Frame& frame) {
  if (frame.type == Frame::Type::kNack) stats_.CountNack(frame.nack.reason);
  Bytes body = schema::EncodeFrame(frame);
  try {
    router_.send(zmq::buffer(routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    router_.send(zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    // EHOSTUNREACH: the peer is gone; it gets its answer (an ack is idempotent) on resend.
    spdlog::debug("send to a peer failed: {}", e.what());
  }
}

schema::AuditEntry* Server::Reject(Turn& turn, const std::string& routing_id, uint64_t request_id,
                                   const std::string& peer, NackReason reason, std::string detail,
                                   const schema::SealedEnvelope* env, ByteView envelope_bytes) {
  ++stats_.rejected;
  // An envelope (decoded or not); frame-level and control refusals pass neither.
  if (env != nullptr || !envelope_bytes.empty()) {
    stats_.CountEnvelope(env != nullptr ? env->header.kind : schema::MessageKind::kUnspecified,
                         EnvelopeOutcome::kRefused);
  }
  if (!refusals_.Note(peer, reason, SystemClock::Get().NowMillis())) {
    // Over this window's limit: counted into its aggregate entry; no log line, and the Nack
    // does not wait for a commit (there is nothing of it to commit).
    turn.direct.emplace_back(
        routing_id, server_internal::NackFrame(
                        request_id, env != nullptr ? ByteView(env->header.message_id) : ByteView(),
                        reason, std::move(detail), 0));
    return nullptr;
  }
  schema::AuditEntry e;
  if (env != nullptr) {
    e = EnvelopeAudit(schema::AuditEvent::kEnvelopeRejected, *env, envelope_bytes, peer,
                      directory_.directory.serial);
  } else {
    e.event = schema::AuditEvent::kEnvelopeRejected;
    e.actor = peer;
    e.directory_serial = directory_.directory.serial;
    if (!envelope_bytes.empty()) {
      e.envelope_sha256 = Sha256(envelope_bytes);
      e.envelope_bytes = envelope_bytes.size();
    }
  }
  e.reason = reason;
  e.detail = detail;
  Bytes mid = env != nullptr ? env->header.message_id : Bytes();
  spdlog::warn("refused {} from {}: {} ({})", mid.empty() ? "a frame" : "message " + Short(mid),
               peer.empty() ? "?" : peer, schema::Name(reason), detail);
  turn.batch.events.push_back(std::move(e));
  Reply r;
  r.routing_id = routing_id;
  r.request_id = request_id;
  r.message_id = std::move(mid);
  r.kind = Reply::Nack{reason, std::move(detail), 0};
  turn.replies.push_back(std::move(r));
  return &turn.batch.events.back();
}

void Server::RefuseCutOff(Turn& turn, const std::string& routing_id, const std::string& peer,
                          ByteView frame, std::string detail) {
  ++stats_.rejected;
  // The directory change that cut this party off is on record (KEY_REVOKED); what it sends
  // after that is only counted (broker/refusals.h).
  (void)refusals_.Note(peer, NackReason::kUnknownSenderKey, SystemClock::Get().NowMillis(),
                       /*may_audit=*/false);
  turn.direct.emplace_back(
      routing_id, server_internal::NackFrame(schema::PeekRequestId(frame), {},
                                             NackReason::kUnknownSenderKey, std::move(detail), 0));
}

void Server::FlushRefusals(UnixMillis now, bool everything) {
  refusals_.TakeDue(now, everything, directory_.directory.serial, pending_events_);
}

void Server::HandleDirectoryFetch(const std::string& routing_id, const Frame& frame, Turn& turn) {
  Frame r;
  r.type = Frame::Type::kDirectoryReply;
  r.request_id = frame.request_id;
  if (frame.directory_fetch.have_serial < directory_.directory.serial) {
    r.directory_reply.signed_directory = schema::EncodeSignedDirectory(directory_);
  }
  turn.direct.emplace_back(routing_id, std::move(r));
}

}  // namespace refbus::broker
