#include "broker/server.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "broker/status.h"
#include "core/file.h"
#include "keys/checkpoint.h"
#include "keys/consent.h"
#include "keys/crypto.h"
#include "keys/envelope.h"
#include "keys/keyfile.h"
#include "keys/scope.h"
#include "keys/witness.h"
#include "schema/codec.h"

namespace refbus::broker {
namespace {

using schema::Frame;
using schema::NackReason;

constexpr const char* kKeyProperty = "X-Transport-Key";
constexpr UnixMillis kTimerPeriodMs = 500;
constexpr UnixMillis kExpiryPeriodMs = 60 * kMillisPerSecond;
constexpr uint32_t kQuotaRetryMs = 1000;
constexpr uint32_t kStorageRetryMs = 5000;
constexpr UnixMillis kStatusPeriodMs = 1000;
constexpr UnixMillis kLinkLogPeriodMs = 30 * kMillisPerSecond;

long FileMtime(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<long>(st.st_mtim.tv_sec) * 1000000000L + st.st_mtim.tv_nsec;
}

std::string Short(ByteView message_id) { return HexEncode(message_id); }

NackReason ReasonFor(keys::EnvelopeCheck check, const Status& s) {
  switch (check) {
    case keys::EnvelopeCheck::kMalformed:
      return s.message().find("version") != std::string::npos ? NackReason::kUnsupportedVersion
                                                              : NackReason::kMalformed;
    case keys::EnvelopeCheck::kTime:
      return NackReason::kExpired;
    case keys::EnvelopeCheck::kSenderKey:
      return NackReason::kUnknownSenderKey;
    case keys::EnvelopeCheck::kSignature:
      return NackReason::kBadSignature;
    case keys::EnvelopeCheck::kOk:
      break;
  }
  return NackReason::kInternal;
}

Frame NackFrame(uint64_t request_id, ByteView message_id, NackReason reason, std::string detail,
                uint32_t retry_after_ms) {
  Frame f;
  f.type = Frame::Type::kNack;
  f.request_id = request_id;
  f.nack.message_id.assign(message_id.begin(), message_id.end());
  f.nack.reason = reason;
  f.nack.detail = std::move(detail);
  f.nack.retry_after_ms = retry_after_ms;
  return f;
}

// What an audit query asks for, for the log and the audit entry: ids and ranges only.
std::string DescribeAuditQuery(const Frame& f) {
  switch (f.type) {
    case Frame::Type::kAuditCheckpoint:
      return "audit query: sign and return a checkpoint";
    case Frame::Type::kAuditEntries:
      return "audit query: entries from index " + std::to_string(f.audit_entries.from_index) +
             ", at most " + std::to_string(f.audit_entries.max);
    case Frame::Type::kAuditProof:
      return "audit query: inclusion proof of entry " + std::to_string(f.audit_proof.index) +
             " in tree size " + std::to_string(f.audit_proof.tree_size);
    case Frame::Type::kAuditConsistency:
      return "audit query: consistency proof from tree size " +
             std::to_string(f.audit_consistency.old_size) + " to " +
             std::to_string(f.audit_consistency.new_size);
    case Frame::Type::kAuditCheckpoints:
      return "audit query: checkpoints from tree size " +
             std::to_string(f.audit_checkpoints.from_size) + ", at most " +
             std::to_string(f.audit_checkpoints.max);
    default:
      return "audit query";
  }
}

Bytes HashBytes(const keys::Hash& h) { return Bytes(h.begin(), h.end()); }

schema::WitnessRefusal RefusalFor(keys::WitnessVerdict v) {
  switch (v) {
    case keys::WitnessVerdict::kCosign:
      return schema::WitnessRefusal::kNone;
    case keys::WitnessVerdict::kConflict:
      return schema::WitnessRefusal::kConflict;
    case keys::WitnessVerdict::kUnknownLog:
      return schema::WitnessRefusal::kUnknownLog;
    case keys::WitnessVerdict::kBadSignature:
      return schema::WitnessRefusal::kBadSignature;
    case keys::WitnessVerdict::kBadRequest:
      return schema::WitnessRefusal::kBadRequest;
    case keys::WitnessVerdict::kInconsistent:
      return schema::WitnessRefusal::kInconsistent;
  }
  return schema::WitnessRefusal::kBadRequest;
}

std::string Clip(std::string s, size_t n) {
  if (s.size() > n) s.resize(n);
  return s;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Create(const Config& config) {
  std::unique_ptr<Server> s(new Server());
  s->config_ = config;
  s->verify_pool_ = std::make_unique<VerifyPool>(static_cast<unsigned>(config.verify_threads));
  UnixMillis now = SystemClock::Get().NowMillis();

  std::optional<keys::SecretBuffer> pass;
  if (!config.passphrase_file.empty()) {
    REFBUS_ASSIGN_OR_RETURN(auto p, keys::ReadPassphraseFile(config.passphrase_file));
    pass = std::move(p);
  }
  REFBUS_ASSIGN_OR_RETURN(keys::Identity id,
                          keys::LoadIdentity(config.key_file, pass ? &*pass : nullptr));
  if (id.kind() != schema::PartyKind::kBroker || id.party_id() != config.id) {
    return InvalidArgument(config.key_file + " holds the keys of " +
                           std::string(schema::Name(id.kind())) + " " + id.party_id() +
                           ", not of broker " + config.id);
  }
  s->identity_ = std::make_unique<keys::Identity>(std::move(id));
  REFBUS_ASSIGN_OR_RETURN(s->anchor_, keys::LoadTrustAnchor(config.anchor));
  REFBUS_ASSIGN_OR_RETURN(keys::TrustState ts, keys::TrustState::Open(config.trust_state));
  s->trust_ = std::make_unique<keys::TrustState>(std::move(ts));
  s->directory_mtime_ = FileMtime(config.directory);
  REFBUS_ASSIGN_OR_RETURN(
      auto v, keys::LoadAndAcceptDirectory(config.directory, s->anchor_, *s->trust_, now));
  if (v.in_grace) {
    spdlog::error("directory serial {} has EXPIRED and is in its grace period: install a new one",
                  v.signed_directory.directory.serial);
  }
  s->directory_ = std::move(v.signed_directory);
  const schema::Party* me = s->directory_.directory.Find(config.id);
  if (me == nullptr || me->kind != schema::PartyKind::kBroker ||
      me->status != schema::PartyStatus::kActive) {
    return FailedPrecondition("broker " + config.id +
                              " is not an active broker in directory serial " +
                              std::to_string(s->directory_.directory.serial));
  }
  const schema::KeyRecord* keys = me->ActiveKeys();
  if (keys == nullptr || keys->transport_key != s->identity_->transport_public_key()) {
    return FailedPrecondition("the transport key in " + config.key_file + " is not broker " +
                              config.id +
                              "'s active key in the directory "
                              "(was the key rotated without a new directory?)");
  }
  // Auditors verify checkpoints with the signing key the directory lists for this broker.
  if (keys->signing_key != s->identity_->signing_public_key()) {
    return FailedPrecondition("the signing key in " + config.key_file + " is not broker " +
                              config.id + "'s active signing key in the directory");
  }
  REFBUS_ASSIGN_OR_RETURN(s->origin_,
                          CheckpointOrigin(s->directory_.directory.federation, config.id));
  REFBUS_ASSIGN_OR_RETURN(s->witness_name_,
                          keys::WitnessName(s->directory_.directory.federation, config.id));

  StoreOptions so;
  so.dir = config.data_dir;
  so.broker_id = config.id;
  so.map_size_bytes = static_cast<size_t>(config.map_size_mb) << 20;
  so.mailbox_quota = config.mailbox_quota;
  so.sender_quota = config.sender_quota;
  REFBUS_ASSIGN_OR_RETURN(s->store_, Store::Open(so));
  // A log that no longer extends the checkpoint this broker signed last was rewritten or
  // damaged: starting would only append to it, and every later checkpoint would be refused.
  if (Status c = s->store_->CheckLatestCheckpoint(s->origin_); !c.ok()) {
    return c.WithContext("audit log in " + config.data_dir);
  }
  s->last_checkpoint_ = now;
  s->started_ms_ = now;
  s->last_link_log_ = now;
  REFBUS_RETURN_IF_ERROR(s->Bind());
  LinkOptions lo;
  lo.broker_id = config.id;
  lo.endpoints = config.peer_endpoints;
  lo.endpoint_files = config.peer_endpoint_files;
  lo.timeout_ms = static_cast<UnixMillis>(config.link_timeout_ms);
  lo.window = static_cast<size_t>(config.link_window);
  s->links_ = std::make_unique<Links>(s->context_, *s->identity_, std::move(lo));
  if (!config.witness_peers.empty()) {
    WitnessClientOptions wo;
    wo.broker_id = config.id;
    wo.federation = s->directory_.directory.federation;
    wo.origin = s->origin_;
    wo.peers = config.witness_peers;
    wo.interval_ms = config.witness_interval_ms;
    wo.timeout_ms = config.witness_timeout_ms;
    s->witness_client_ = std::make_unique<WitnessClient>(*s->links_, wo);
    // Witnessing resumes from the latest stored checkpoint (and what cosigned it).
    REFBUS_ASSIGN_OR_RETURN(auto latest, s->store_->LatestCheckpoint());
    if (latest) s->witness_client_->Offer(*latest);
  }
  s->done_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->done_fd_ < 0) return IoError("eventfd: " + std::string(std::strerror(errno)));
  // From here on only the writer writes to the store; ~Server joins it.
  s->writer_ = std::thread([p = s.get()] { p->WriterMain(); });

  schema::AuditEntry started;
  started.event = schema::AuditEvent::kBrokerStarted;
  started.directory_serial = s->directory_.directory.serial;
  started.detail = "listening on " + s->endpoint_;
  s->pending_events_.push_back(std::move(started));
  schema::AuditEntry loaded;
  loaded.event = schema::AuditEvent::kDirectoryLoaded;
  loaded.directory_serial = s->directory_.directory.serial;
  s->pending_events_.push_back(std::move(loaded));
  // The directory may have moved agencies while this broker was down.
  s->PlanReroutes(s->directory_.directory);
  s->Dispatch(now, false, false);
  {
    std::unique_lock<std::mutex> lock(s->mu_);
    s->done_cv_.wait(lock, [&] { return !s->done_.empty(); });
  }
  std::unique_ptr<Job> started_job = s->TakeDone();
  s->busy_ = false;
  REFBUS_RETURN_IF_ERROR(started_job->status);
  spdlog::info("broker {} listening on {} (directory serial {}, audit log {} entries)", config.id,
               s->endpoint_, s->directory_.directory.serial, started_job->result.audit_size);
  return s;
}

Server::~Server() {
  if (writer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writer_exit_ = true;
    }
    cv_.notify_all();
    writer_.join();
  }
  if (done_fd_ >= 0) ::close(done_fd_);
}

Status Server::Bind() {
  try {
    REFBUS_ASSIGN_OR_RETURN(zap_, zmqx::ZapHandler::Bind(context_));
    router_ = zmq::socket_t(context_, zmq::socket_type::router);
    REFBUS_RETURN_IF_ERROR(zmqx::ConfigureCurveServer(
        router_, identity_->transport_secret_key().view(), directory_.directory.federation));
    REFBUS_RETURN_IF_ERROR(zmqx::ConfigureHeartbeat(router_, zmqx::Heartbeat{}));
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

void Server::Reject(Turn& turn, const std::string& routing_id, uint64_t request_id,
                    const std::string& peer, NackReason reason, std::string detail,
                    const schema::SealedEnvelope* env, ByteView envelope_bytes) {
  ++stats_.rejected;
  // An envelope (decoded or not); frame-level and control refusals pass neither.
  if (env != nullptr || !envelope_bytes.empty()) {
    stats_.CountEnvelope(env != nullptr ? env->header.kind : schema::MessageKind::kUnspecified,
                         EnvelopeOutcome::kRefused);
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
  r.reason = reason;
  r.detail = std::move(detail);
  turn.replies.push_back(std::move(r));
}

Server::Verified Server::Verify(ByteView envelope, UnixMillis now) const {
  keys::EnvelopeCheck check = keys::EnvelopeCheck::kOk;
  auto env = keys::VerifyEnvelope(envelope, directory_.directory, now, &check);
  return Verified{std::move(env), check};
}

void Server::Precheck(std::vector<Incoming>& burst, UnixMillis now) {
  auto check = [&](size_t i) {
    Incoming& in = burst[i];
    if (in.parts.size() != 2 || in.parts[1].size() > config_.max_frame_bytes) return;
    const zmq::message_t& body = in.parts[1];
    in.frame = schema::DecodeFrame(ByteView(static_cast<const uint8_t*>(body.data()), body.size()));
    if (!in.frame->ok()) return;
    const Frame& f = **in.frame;
    const Bytes* envelope = nullptr;
    if (f.type == Frame::Type::kSubmit) envelope = &f.submit.envelope;
    if (f.type == Frame::Type::kRelay && f.relay.signed_revocation.empty()) {
      envelope = &f.relay.envelope;
    }
    if (envelope != nullptr) in.verified.emplace(Verify(*envelope, now));
  };
  // Worth handing out only when there are several envelopes to check.
  size_t envelopes = 0;
  for (const auto& in : burst) {
    if (in.parts.size() == 2 && in.parts[1].size() > 256) ++envelopes;
  }
  if (envelopes >= 2 && verify_pool_ != nullptr) {
    verify_pool_->ForEach(burst.size(), check);
  } else {
    for (size_t i = 0; i < burst.size(); ++i) check(i);
  }
}

void Server::HandleMessage(Incoming& in, Turn& turn, UnixMillis now) {
  std::vector<zmq::message_t>& parts = in.parts;
  if (parts.size() != 2) {
    spdlog::warn("dropped a message with {} parts (expected routing id and one frame)",
                 parts.size());
    return;
  }
  std::string routing_id = parts[0].to_string();
  const zmq::message_t& body = parts[1];
  std::string peer_id = zmqx::UserId(body).value_or("");
  ByteView bytes(static_cast<const uint8_t*>(body.data()), body.size());
  if (bytes.size() > config_.max_frame_bytes) {
    Reject(turn, routing_id, 0, peer_id, NackReason::kTooLarge,
           "frame of " + std::to_string(bytes.size()) + " bytes is over the limit of " +
               std::to_string(config_.max_frame_bytes),
           nullptr, {});
    return;
  }
  Result<Frame> frame = in.frame.has_value() ? std::move(*in.frame) : schema::DecodeFrame(bytes);
  if (!frame.ok()) {
    Reject(turn, routing_id, 0, peer_id, NackReason::kMalformed, frame.status().message(), nullptr,
           {});
    return;
  }
  // ZAP ran at the handshake; the directory may have changed since: check every frame.
  auto peer = CurrentPeer(body);
  if (!peer.ok()) {
    Reject(turn, routing_id, frame->request_id, peer_id, NackReason::kUnknownSenderKey,
           peer.status().message(), nullptr, {});
    return;
  }
  switch (frame->type) {
    case Frame::Type::kHello: {
      if (frame->hello.party_id != peer_id) {
        Reject(turn, routing_id, frame->request_id, peer_id, NackReason::kSenderMismatch,
               "hello names " + frame->hello.party_id + " but the connection is " + peer_id,
               nullptr, {});
        return;
      }
      Frame w;
      w.type = Frame::Type::kWelcome;
      w.request_id = frame->request_id;
      w.welcome.broker_id = config_.id;
      w.welcome.directory_serial = directory_.directory.serial;
      w.welcome.max_frame_bytes = static_cast<uint32_t>(config_.max_frame_bytes);
      if ((*peer)->kind == schema::PartyKind::kBroker) {
        // A peer broker's link (or its keepalive): it relays here; nothing is delivered to
        // it on this connection (this broker relays to it over its own link).
        turn.direct.emplace_back(routing_id, std::move(w));
        return;
      }
      Peer& p = peers_[peer_id];
      // A new session: everything unacked is sent again, in order.
      for (auto it = inflight_.begin(); it != inflight_.end();) {
        it = it->second.recipient == peer_id ? inflight_.erase(it) : std::next(it);
      }
      p.routing_id = routing_id;
      p.last_sent_seq = 0;
      p.inflight = 0;
      p.online = true;
      dirty_.insert(peer_id);
      turn.direct.emplace_back(routing_id, std::move(w));
      spdlog::info("{} connected (directory serial {})", peer_id, frame->hello.directory_serial);
      return;
    }
    case Frame::Type::kSubmit:
      HandleSubmit(routing_id, peer_id, frame->request_id, std::move(frame->submit.envelope),
                   std::move(in.verified), turn, now);
      return;
    case Frame::Type::kRelay:
      HandleRelay(routing_id, **peer, frame->request_id, std::move(frame->relay),
                  std::move(in.verified), turn, now);
      return;
    case Frame::Type::kAck: {
      auto it = inflight_.find(frame->request_id);
      if (it == inflight_.end() || it->second.recipient != peer_id ||
          it->second.message_id != frame->ack.message_id) {
        return;  // an ack from an earlier session: the redelivery will be acked again
      }
      RecipientAck ack;
      ack.recipient = peer_id;
      ack.seq = it->second.seq;
      ack.message_id = it->second.message_id;
      turn.batch.acks.push_back(std::move(ack));
      auto p = peers_.find(peer_id);
      if (p != peers_.end()) {
        if (p->second.inflight > 0) --p->second.inflight;
        p->second.acks_uncommitted.insert(it->second.seq);
      }
      inflight_.erase(it);
      dirty_.insert(peer_id);
      return;
    }
    case Frame::Type::kNack: {
      auto it = inflight_.find(frame->request_id);
      if (it != inflight_.end() && it->second.recipient == peer_id) {
        spdlog::error("{} refused delivery of message {}: {} ({}); kept for redelivery", peer_id,
                      Short(it->second.message_id), schema::Name(frame->nack.reason),
                      frame->nack.detail);
      }
      return;
    }
    case Frame::Type::kGrantRegister:
      HandleGrantRegister(routing_id, peer_id, frame->request_id,
                          std::move(frame->grant_register.signed_grant), turn, now);
      return;
    case Frame::Type::kGrantRevoke:
      HandleGrantRevoke(routing_id, peer_id, frame->request_id,
                        frame->grant_revoke.signed_revocation, turn, now);
      return;
    case Frame::Type::kAttest:
      HandleAttest(routing_id, peer_id, frame->request_id, frame->attest, turn, now);
      return;
    case Frame::Type::kAuditCheckpoint:
    case Frame::Type::kAuditEntries:
    case Frame::Type::kAuditProof:
    case Frame::Type::kAuditConsistency:
    case Frame::Type::kAuditCheckpoints:
      HandleAuditQuery(routing_id, **peer, *frame, turn);
      return;
    case Frame::Type::kWitnessRequest:
      HandleWitnessRequest(routing_id, **peer, *frame, turn);
      return;
    case Frame::Type::kAddCosignature:
      HandleAddCosignature(routing_id, **peer, *frame, turn);
      return;
    case Frame::Type::kDirectoryFetch: {
      Frame r;
      r.type = Frame::Type::kDirectoryReply;
      r.request_id = frame->request_id;
      if (frame->directory_fetch.have_serial < directory_.directory.serial) {
        r.directory_reply.signed_directory = schema::EncodeSignedDirectory(directory_);
      }
      turn.direct.emplace_back(routing_id, std::move(r));
      return;
    }
    default:
      Reject(turn, routing_id, frame->request_id, peer_id, NackReason::kMalformed,
             "a client may not send this frame type", nullptr, {});
      return;
  }
}

void Server::HandleSubmit(const std::string& routing_id, const std::string& peer,
                          uint64_t request_id, Bytes envelope, std::optional<Verified> verified,
                          Turn& turn, UnixMillis now) {
  const schema::Directory& dir = directory_.directory;
  if (!verified.has_value()) verified.emplace(Verify(envelope, now));
  keys::EnvelopeCheck check = verified->check;
  Result<schema::SealedEnvelope>& env = verified->envelope;
  if (!env.ok()) {
    // A header that decodes is worth auditing in full even when the envelope is refused.
    auto decoded = schema::DecodeEnvelope(envelope);
    Reject(turn, routing_id, request_id, peer, ReasonFor(check, env.status()),
           env.status().message(), decoded.ok() ? &*decoded : nullptr, envelope);
    return;
  }
  const auto& h = env->header;
  if (h.sender_id != peer) {
    Reject(turn, routing_id, request_id, peer, NackReason::kSenderMismatch,
           "envelope sender " + h.sender_id + " is not the authenticated peer " + peer, &*env,
           envelope);
    return;
  }
  for (const auto& r : h.recipients) {
    const schema::Party* p = dir.Find(r.agency_id);
    if (p == nullptr || p->kind != schema::PartyKind::kAgency) {
      Reject(turn, routing_id, request_id, peer, NackReason::kUnknownRecipient,
             "recipient " + r.agency_id + " is not an agency in the directory", &*env, envelope);
      return;
    }
    if (p->status != schema::PartyStatus::kActive) {
      Reject(turn, routing_id, request_id, peer, NackReason::kRevokedRecipient,
             "recipient " + r.agency_id + " is revoked", &*env, envelope);
      return;
    }
  }
  std::vector<std::string> recipients;
  for (const auto& r : h.recipients) recipients.push_back(r.agency_id);
  std::string why;
  std::string route_detail;
  std::map<std::string, std::vector<std::string>> serves;
  std::vector<std::string> targets = Route(recipients, 0, &why, &route_detail, &serves);
  if (targets.empty()) {
    Reject(turn, routing_id, request_id, peer, NackReason::kUnknownRecipient, why, &*env, envelope);
    return;
  }
  // Consent: an envelope names its grant (checked against the stored grant when it is
  // committed), or is an OPAQUE transport test where the operator allows those.
  if (h.consent_grant_id.empty()) {
    if (h.kind != schema::MessageKind::kOpaque) {
      Reject(turn, routing_id, request_id, peer, NackReason::kConsentOutOfScope,
             std::string("a ") + std::string(schema::Name(h.kind)) +
                 " envelope must name the consent grant it is shared under",
             &*env, envelope);
      return;
    }
    if (!config_.allow_unscoped_opaque) {
      Reject(turn, routing_id, request_id, peer, NackReason::kConsentOutOfScope,
             "this broker accepts no envelope without a consent grant "
             "(policy.allow_unscoped_opaque is off)",
             &*env, envelope);
      return;
    }
  }
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = h.message_id;
  reply.accepted_index = static_cast<int>(turn.batch.accepted.size());
  turn.replies.push_back(std::move(reply));
  Accepted a;
  a.envelope = std::move(envelope);  // env is a decoded copy: it does not point into these
  a.actor = peer;
  a.directory_serial = dir.serial;
  if (!h.consent_grant_id.empty()) a.scope = keys::ScopeSubjectOf(h, dir);
  a.mailboxes = std::move(targets);
  a.serves = std::move(serves);
  a.audit_detail = std::move(route_detail);
  turn.batch.accepted.push_back(std::move(a));
  turn.decoded.push_back(std::move(*env));
}

std::vector<std::string> Server::Route(
    const std::vector<std::string>& recipients, uint32_t hops, std::string* why,
    std::string* detail, std::map<std::string, std::vector<std::string>>* serves) const {
  const schema::Directory& dir = directory_.directory;
  std::vector<std::string> targets;
  std::vector<std::string> via;
  for (const auto& id : recipients) {
    const schema::Party* p = dir.Find(id);
    if (p == nullptr || p->kind != schema::PartyKind::kAgency) {
      *why = "recipient " + id + " is not an agency in the directory";
      return {};
    }
    std::string target = id;
    if (p->home_broker != config_.id) {
      const schema::Party* home = dir.Find(p->home_broker);
      if (home == nullptr || home->kind != schema::PartyKind::kBroker ||
          home->status != schema::PartyStatus::kActive) {
        *why = "recipient " + id + " is homed at " + p->home_broker +
               ", which is not an active broker in directory serial " + std::to_string(dir.serial);
        return {};
      }
      if (hops >= config_.max_hops) {
        *why = "recipient " + id + " is homed at " + p->home_broker + " and the envelope has " +
               "passed " + std::to_string(hops) + " brokers (federation.max_hops " +
               std::to_string(config_.max_hops) + ")";
        return {};
      }
      target = p->home_broker;
      if (std::find(via.begin(), via.end(), target) == via.end()) via.push_back(target);
      (*serves)[target].push_back(id);
    }
    if (std::find(targets.begin(), targets.end(), target) == targets.end()) {
      targets.push_back(std::move(target));
    }
  }
  if (!via.empty()) {
    *detail = "queued for broker";
    for (const auto& b : via) *detail += " " + b;
  }
  return targets;
}

std::optional<std::pair<NackReason, std::string>> Server::VetGrant(
    const schema::SignedConsentGrant& g, UnixMillis now) const {
  const schema::ConsentGrant& grant = g.grant;
  if (Status s = keys::VerifyConsentGrant(g, directory_.directory, now); !s.ok()) {
    return std::make_pair(s.code() == Status::Code::kPermissionDenied
                              ? NackReason::kConsentOutOfScope
                              : NackReason::kBadSignature,
                          s.message());
  }
  if (now > grant.expires_at_ms) {
    return std::make_pair(NackReason::kConsentExpired,
                          "grant expired at " + FormatUtc(grant.expires_at_ms));
  }
  if (grant.issued_at_ms > now + keys::kClockSkewMs) {
    return std::make_pair(NackReason::kExpired,
                          "grant issued in the future (" + FormatUtc(grant.issued_at_ms) + ")");
  }
  if (!schema::IsValidCaseRef(grant.case_ref) || grant.purposes.empty() ||
      (grant.allowed_recipients.empty() && grant.allowed_agency_types.empty())) {
    return std::make_pair(NackReason::kMalformed, "grant names no case, purpose or recipient");
  }
  return std::nullopt;
}

void Server::HandleRelay(const std::string& routing_id, const schema::Party& peer,
                         uint64_t request_id, schema::Relay relay, std::optional<Verified> verified,
                         Turn& turn, UnixMillis now) {
  const schema::Directory& dir = directory_.directory;
  const std::string& from = peer.id;
  Bytes& envelope = relay.envelope;
  auto refuse = [&](NackReason reason, std::string detail, const schema::SealedEnvelope* env) {
    ++stats_.relays_refused;
    Reject(turn, routing_id, request_id, from, reason, "relayed by broker " + from + ": " + detail,
           env, envelope);
  };
  if (peer.kind != schema::PartyKind::kBroker || from == config_.id) {
    refuse(NackReason::kNotPermitted, "only another broker may relay", nullptr);
    return;
  }
  if (!relay.signed_revocation.empty()) {
    HandleRelayedRevocation(routing_id, from, request_id, std::move(relay.signed_revocation), turn,
                            now);
    return;
  }
  // The relaying broker is not trusted with content or signatures: everything is checked here.
  if (!verified.has_value()) verified.emplace(Verify(envelope, now));
  keys::EnvelopeCheck check = verified->check;
  Result<schema::SealedEnvelope>& env = verified->envelope;
  if (!env.ok()) {
    auto decoded = schema::DecodeEnvelope(envelope);
    refuse(ReasonFor(check, env.status()), env.status().message(),
           decoded.ok() ? &*decoded : nullptr);
    return;
  }
  const auto& h = env->header;
  const schema::Party* sender = dir.Find(h.sender_id);
  if (relay.hops == 0 && (sender == nullptr || sender->home_broker != from)) {
    refuse(NackReason::kSenderMismatch,
           "sender " + h.sender_id + " is homed at " +
               (sender != nullptr ? sender->home_broker : std::string("?")) +
               ", not at the broker that says it accepted it first",
           &*env);
    return;
  }
  for (const auto& id : relay.for_recipients) {
    bool named = false;
    for (const auto& r : h.recipients) named = named || r.agency_id == id;
    if (!named) {
      refuse(NackReason::kMalformed, id + " is not a recipient of the envelope", &*env);
      return;
    }
    const schema::Party* p = dir.Find(id);
    if (p != nullptr && p->status != schema::PartyStatus::kActive) {
      refuse(NackReason::kRevokedRecipient, "recipient " + id + " is revoked", &*env);
      return;
    }
  }
  const uint32_t hops_here = relay.hops + 1;
  std::string why;
  std::string route_detail;
  std::map<std::string, std::vector<std::string>> serves;
  std::vector<std::string> targets =
      Route(relay.for_recipients, hops_here, &why, &route_detail, &serves);
  if (targets.empty()) {
    refuse(NackReason::kUnknownRecipient, why, &*env);
    return;
  }
  if (std::find(targets.begin(), targets.end(), from) != targets.end()) {
    refuse(NackReason::kUnknownRecipient,
           "a recipient is homed at the relaying broker itself (directories differ?)", &*env);
    return;
  }
  if (h.consent_grant_id.empty()) {
    if (h.kind != schema::MessageKind::kOpaque || !config_.allow_unscoped_opaque) {
      refuse(NackReason::kConsentOutOfScope,
             "the envelope names no consent grant and this broker accepts none without", &*env);
      return;
    }
  } else {
    // The grant travels with the envelope: its recorder's signature is checked here and it
    // is registered (once) before the envelope's scope is checked in the commit.
    if (relay.signed_grant.empty()) {
      refuse(NackReason::kConsentOutOfScope, "the relay does not carry the envelope's grant",
             &*env);
      return;
    }
    auto g = schema::DecodeSignedConsentGrant(relay.signed_grant);
    if (!g.ok()) {
      refuse(NackReason::kMalformed, "its consent grant: " + g.status().message(), &*env);
      return;
    }
    if (g->grant.grant_id != h.consent_grant_id) {
      refuse(NackReason::kConsentOutOfScope, "the grant it carries is not the envelope's", &*env);
      return;
    }
    if (auto refusal = VetGrant(*g, now)) {
      refuse(refusal->first, "its consent grant: " + refusal->second, &*env);
      return;
    }
    GrantRegistration r;
    r.decoded = std::move(*g);
    r.signed_grant = std::move(relay.signed_grant);
    r.actor = from;
    r.directory_serial = dir.serial;
    turn.batch.grants.push_back(std::move(r));
  }
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = h.message_id;
  reply.accepted_index = static_cast<int>(turn.batch.accepted.size());
  turn.replies.push_back(std::move(reply));
  Accepted a;
  a.envelope = std::move(envelope);
  a.actor = from;
  a.directory_serial = dir.serial;
  if (!h.consent_grant_id.empty()) a.scope = keys::ScopeSubjectOf(h, dir);
  a.mailboxes = std::move(targets);
  a.serves = std::move(serves);
  a.hops = static_cast<uint8_t>(hops_here);
  a.audit_detail = "relayed by broker " + from + " (hop " + std::to_string(hops_here) + ")" +
                   (route_detail.empty() ? "" : "; " + route_detail);
  turn.batch.accepted.push_back(std::move(a));
  turn.decoded.push_back(std::move(*env));
}

void Server::RejectControl(Turn& turn, const std::string& routing_id, uint64_t request_id,
                           const std::string& peer, NackReason reason, std::string detail,
                           ByteView id, ByteView statement_bytes) {
  Reject(turn, routing_id, request_id, peer, reason, std::move(detail), nullptr, {});
  schema::AuditEntry& e = turn.batch.events.back();
  if (!statement_bytes.empty()) e.statement_sha256 = Sha256(statement_bytes);
  if (id.size() == schema::kGrantIdBytes) {
    turn.replies.back().message_id.assign(id.begin(), id.end());
  }
}

void Server::HandleGrantRegister(const std::string& routing_id, const std::string& peer,
                                 uint64_t request_id, Bytes signed_grant, Turn& turn,
                                 UnixMillis now) {
  auto g = schema::DecodeSignedConsentGrant(signed_grant);
  if (!g.ok()) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kMalformed,
                  "consent grant: " + g.status().message(), {}, signed_grant);
    return;
  }
  const schema::ConsentGrant& grant = g->grant;
  auto reject = [&](NackReason reason, std::string detail) {
    RejectControl(turn, routing_id, request_id, peer, reason, std::move(detail), grant.grant_id,
                  signed_grant);
    schema::AuditEntry& e = turn.batch.events.back();
    e.consent_grant_id = grant.grant_id;
    e.case_ref = grant.case_ref;
  };
  if (grant.recorded_by != peer) {
    reject(NackReason::kSenderMismatch,
           "grant recorded by " + grant.recorded_by + " registered by " + peer);
    return;
  }
  if (auto refusal = VetGrant(*g, now)) {
    reject(refusal->first, refusal->second);
    return;
  }
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = grant.grant_id;
  reply.grant_index = static_cast<int>(turn.batch.grants.size());
  turn.replies.push_back(std::move(reply));
  GrantRegistration r;
  r.decoded = std::move(*g);
  r.signed_grant = std::move(signed_grant);
  r.actor = peer;
  r.directory_serial = directory_.directory.serial;
  turn.batch.grants.push_back(std::move(r));
}

void Server::HandleGrantRevoke(const std::string& routing_id, const std::string& peer,
                               uint64_t request_id, const Bytes& signed_revocation, Turn& turn,
                               UnixMillis now) {
  auto st = schema::DecodeSignedStatement(signed_revocation);
  auto rev = st.ok() ? schema::DecodeConsentRevocation(st->statement)
                     : Result<schema::ConsentRevocation>(st.status());
  if (!rev.ok()) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kMalformed,
                  "consent revocation: " + rev.status().message(), {}, signed_revocation);
    return;
  }
  auto reject = [&](NackReason reason, std::string detail) {
    RejectControl(turn, routing_id, request_id, peer, reason, std::move(detail), rev->grant_id,
                  signed_revocation);
    schema::AuditEntry& e = turn.batch.events.back();
    e.consent_grant_id = rev->grant_id;
    e.case_ref = rev->case_ref;
  };
  if (rev->revoked_by != peer) {
    reject(NackReason::kSenderMismatch,
           "revocation by " + rev->revoked_by + " handed over by " + peer);
    return;
  }
  if (Status s = keys::VerifyStatement(*st, keys::StatementType::kConsentRevocation, peer,
                                       rev->revoked_at_ms, directory_.directory, now);
      !s.ok()) {
    reject(NackReason::kBadSignature, s.message());
    return;
  }
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = AttestationId(signed_revocation);  // statements are named by their hash
  reply.revocation_index = static_cast<int>(turn.batch.revocations.size());
  turn.replies.push_back(std::move(reply));
  GrantRevocation r;
  r.revocation = std::move(*rev);
  r.statement_sha256 = Sha256(signed_revocation);
  r.actor = peer;
  r.directory_serial = directory_.directory.serial;
  r.signed_statement = signed_revocation;
  turn.batch.revocations.push_back(std::move(r));
}

void Server::HandleRelayedRevocation(const std::string& routing_id, const std::string& from,
                                     uint64_t request_id, Bytes signed_revocation, Turn& turn,
                                     UnixMillis now) {
  auto st = schema::DecodeSignedStatement(signed_revocation);
  auto rev = st.ok() ? schema::DecodeConsentRevocation(st->statement)
                     : Result<schema::ConsentRevocation>(st.status());
  if (!rev.ok()) {
    ++stats_.relays_refused;
    RejectControl(turn, routing_id, request_id, from, NackReason::kMalformed,
                  "relayed consent revocation: " + rev.status().message(), {}, signed_revocation);
    return;
  }
  // The relaying broker is not trusted: the recorder's signature is checked here.
  if (Status s =
          keys::VerifyStatement(*st, keys::StatementType::kConsentRevocation, rev->revoked_by,
                                rev->revoked_at_ms, directory_.directory, now);
      !s.ok()) {
    ++stats_.relays_refused;
    RejectControl(turn, routing_id, request_id, from, NackReason::kBadSignature,
                  "relayed consent revocation: " + s.message(), rev->grant_id, signed_revocation);
    schema::AuditEntry& e = turn.batch.events.back();
    e.consent_grant_id = rev->grant_id;
    e.case_ref = rev->case_ref;
    return;
  }
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  reply.message_id = AttestationId(signed_revocation);
  reply.revocation_index = static_cast<int>(turn.batch.revocations.size());
  turn.replies.push_back(std::move(reply));
  GrantRevocation r;
  r.revocation = std::move(*rev);
  r.statement_sha256 = Sha256(signed_revocation);
  r.actor = from;
  r.directory_serial = directory_.directory.serial;
  r.signed_statement = std::move(signed_revocation);
  r.via_peer = true;
  turn.batch.revocations.push_back(std::move(r));
}

void Server::HandleAttest(const std::string& routing_id, const std::string& peer,
                          uint64_t request_id, const schema::Attest& attest, Turn& turn,
                          UnixMillis now) {
  const bool access = !attest.signed_access.empty();
  const Bytes& bytes = access ? attest.signed_access : attest.signed_purge;
  auto st = schema::DecodeSignedStatement(bytes);
  if (!st.ok()) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kMalformed,
                  "attestation: " + st.status().message(), {}, bytes);
    return;
  }
  schema::AuditEntry e;
  e.actor = peer;
  e.directory_serial = directory_.directory.serial;
  e.statement_sha256 = Sha256(bytes);
  std::string signer;
  UnixMillis signed_at = 0;
  if (access) {
    auto rec = schema::DecodeAccessRecord(st->statement);
    if (!rec.ok()) {
      RejectControl(turn, routing_id, request_id, peer, NackReason::kMalformed,
                    "access record: " + rec.status().message(), {}, bytes);
      return;
    }
    e.event = schema::AuditEvent::kEnvelopeOpened;
    e.message_id = rec->message_id;
    e.case_ref = rec->case_ref;
    e.consent_grant_id = rec->consent_grant_id;
    e.kind = rec->kind;
    e.sender_id = rec->owner_agency;
    e.recipients = {rec->agency_id};
    e.operator_ref = rec->operator_ref;
    e.detail = "opened at " + FormatUtc(rec->opened_at_ms);
    signer = rec->agency_id;
    signed_at = rec->opened_at_ms;
  } else {
    auto conf = schema::DecodePurgeConfirmation(st->statement);
    if (!conf.ok()) {
      RejectControl(turn, routing_id, request_id, peer, NackReason::kMalformed,
                    "purge confirmation: " + conf.status().message(), {}, bytes);
      return;
    }
    e.event = schema::AuditEvent::kPurgeConfirmed;
    e.case_ref = conf->case_ref;
    e.consent_grant_id = conf->grant_id;
    e.recipients = {conf->agency_id};
    e.detail = std::to_string(conf->messages_purged) + " messages purged at " +
               FormatUtc(conf->purged_at_ms);
    signer = conf->agency_id;
    signed_at = conf->purged_at_ms;
  }
  if (signer != peer) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kSenderMismatch,
                  "statement by " + signer + " handed over by " + peer, AttestationId(bytes),
                  bytes);
    return;
  }
  auto type = access ? keys::StatementType::kAccessRecord : keys::StatementType::kPurgeConfirmation;
  if (Status s = keys::VerifyStatement(*st, type, peer, signed_at, directory_.directory, now);
      !s.ok()) {
    RejectControl(turn, routing_id, request_id, peer, NackReason::kBadSignature, s.message(),
                  AttestationId(bytes), bytes);
    return;
  }
  turn.batch.events.push_back(std::move(e));
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = request_id;
  // The answer names the statement itself (first 16 bytes of its SHA-256): an agency may
  // attest to many accesses of one message, each its own outbox item.
  reply.message_id = AttestationId(bytes);
  reply.attest = true;
  turn.replies.push_back(std::move(reply));
}

void Server::HandleAuditQuery(const std::string& routing_id, const schema::Party& peer,
                              const Frame& query, Turn& turn) {
  std::string what = DescribeAuditQuery(query);
  // The party as the current directory lists it (CurrentPeer checked it for this frame).
  if (peer.kind != schema::PartyKind::kAuditor || !peer.HasRole(schema::Role::kAudit)) {
    ++stats_.audit_refused;
    std::string who = peer.kind == schema::PartyKind::kAuditor
                          ? "auditor " + peer.id + " lacks the audit role"
                          : peer.id + " is a party of kind " + std::string(schema::Name(peer.kind));
    Reject(turn, routing_id, query.request_id, peer.id, NackReason::kNotPermitted,
           "only auditors with the audit role in the directory may query the audit log; " + who,
           nullptr, {});
    schema::AuditEntry& e = turn.batch.events.back();
    e.event = schema::AuditEvent::kAuditorQuery;
    e.detail = what + ", refused: " + e.detail;
    return;
  }
  schema::AuditEntry e;
  e.event = schema::AuditEvent::kAuditorQuery;
  e.actor = peer.id;
  e.directory_serial = directory_.directory.serial;
  e.detail = what;
  turn.batch.events.push_back(std::move(e));
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = query.request_id;
  reply.audit_query = static_cast<int>(turn.audit_queries.size());
  turn.replies.push_back(std::move(reply));
  turn.audit_queries.push_back(query);
  if (query.type == Frame::Type::kAuditCheckpoint) turn.checkpoint_asked = true;
  spdlog::info("{} from {}", what, peer.id);
}

Frame Server::AnswerAuditQuery(const Frame& query, uint64_t request_id, const Job& job) {
  auto internal = [&](const std::string& detail) {
    spdlog::error("cannot answer an audit query: {}", detail);
    return NackFrame(request_id, {}, NackReason::kInternal, detail, kStorageRetryMs);
  };
  if (!job.committed) {
    // Not logged, so not answered: the auditor asks again.
    return internal("the query could not be written to the audit log; retry later");
  }
  auto out_of_range = [&](const std::string& detail) {
    return NackFrame(request_id, {}, NackReason::kOutOfRange, detail, 0);
  };
  Frame f;
  f.type = Frame::Type::kAuditReply;
  f.request_id = request_id;
  schema::AuditReply& r = f.audit_reply;
  if (query.type == Frame::Type::kAuditCheckpoint) {
    if (!job.checkpoint) return internal("no checkpoint was signed for this query");
    if (!job.checkpoint_status.ok()) {
      return internal("the broker did not sign a checkpoint: " + job.checkpoint_status.message());
    }
    r.checkpoints.push_back(job.checkpoint_outcome.stored.note);
    r.log_size = job.checkpoint_outcome.stored.checkpoint.size;
    ++stats_.audit_queries;
    return f;
  }
  auto size = store_->AuditSize();
  if (!size.ok()) return internal(size.status().message());
  r.log_size = *size;
  switch (query.type) {
    case Frame::Type::kAuditEntries: {
      const schema::AuditEntriesQuery& q = query.audit_entries;
      if (q.from_index > *size) {
        return out_of_range("the audit log has " + std::to_string(*size) + " entries; index " +
                            std::to_string(q.from_index) + " is beyond it");
      }
      auto read = store_->AuditEntriesFrom(q.from_index, q.max, schema::kMaxAuditReplyPayloadBytes);
      if (!read.ok()) return internal(read.status().message());
      if (!read->damaged.empty()) {
        std::string list;
        for (uint64_t i : read->damaged) list += (list.empty() ? "" : ", ") + std::to_string(i);
        spdlog::critical(
            "AUDIT LOG DAMAGED: entries {} do not match their stored leaf hashes (served to "
            "the auditor as stored)",
            list);
      }
      r.entries = std::move(read->entries);
      r.first_index = q.from_index;
      r.log_size = read->log_size;
      r.more = read->more;
      break;
    }
    case Frame::Type::kAuditProof: {
      const schema::AuditProofQuery& q = query.audit_proof;
      if (q.tree_size > *size) {
        return out_of_range("the audit log has " + std::to_string(*size) +
                            " entries, fewer than tree size " + std::to_string(q.tree_size));
      }
      auto proof = store_->InclusionProof(q.index, q.tree_size);
      if (!proof.ok()) return internal(proof.status().message());
      for (const auto& h : *proof) r.hashes.push_back(HashBytes(h));
      r.first_index = q.index;
      break;
    }
    case Frame::Type::kAuditConsistency: {
      const schema::AuditConsistencyQuery& q = query.audit_consistency;
      if (q.new_size > *size) {
        return out_of_range("the audit log has " + std::to_string(*size) +
                            " entries, fewer than tree size " + std::to_string(q.new_size));
      }
      auto proof = store_->ConsistencyProof(q.old_size, q.new_size);
      if (!proof.ok()) return internal(proof.status().message());
      for (const auto& h : *proof) r.hashes.push_back(HashBytes(h));
      break;
    }
    case Frame::Type::kAuditCheckpoints: {
      const schema::AuditCheckpointsQuery& q = query.audit_checkpoints;
      // One more than asked for tells whether more follow.
      auto stored = store_->Checkpoints(q.from_size, size_t{q.max} + 1);
      if (!stored.ok()) return internal(stored.status().message());
      size_t bytes = 0;
      for (auto& c : *stored) {
        if (r.checkpoints.size() == q.max ||
            (!r.checkpoints.empty() &&
             bytes + c.note.size() > schema::kMaxAuditReplyPayloadBytes)) {
          r.more = true;
          break;
        }
        bytes += c.note.size();
        r.checkpoints.push_back(std::move(c.note));
      }
      break;
    }
    default:
      return internal("not an audit query");
  }
  ++stats_.audit_queries;
  return f;
}

void Server::RefuseWitnessFrame(Turn& turn, const std::string& routing_id, uint64_t request_id,
                                const std::string& peer, NackReason reason, std::string detail) {
  ++stats_.witness_refused;
  Reject(turn, routing_id, request_id, peer, reason, std::move(detail), nullptr, {});
  schema::AuditEntry& e = turn.batch.events.back();
  e.event = schema::AuditEvent::kWitnessRefused;
}

void Server::HandleWitnessRequest(const std::string& routing_id, const schema::Party& peer,
                                  const Frame& frame, Turn& turn) {
  const schema::Directory& dir = directory_.directory;
  const uint64_t rid = frame.request_id;
  if (peer.kind != schema::PartyKind::kBroker) {
    RefuseWitnessFrame(turn, routing_id, rid, peer.id, NackReason::kNotPermitted,
                       "witness request refused: only brokers ask a broker to witness their "
                       "logs; " +
                           peer.id + " is a party of kind " + std::string(schema::Name(peer.kind)));
    return;
  }
  if (peer.id == config_.id) {
    RefuseWitnessFrame(turn, routing_id, rid, peer.id, NackReason::kNotPermitted,
                       "witness request refused: a broker does not witness its own log");
    return;
  }
  const schema::Party* me = dir.Find(config_.id);
  if (me == nullptr || !me->HasRole(schema::Role::kWitness)) {
    RefuseWitnessFrame(turn, routing_id, rid, peer.id, NackReason::kNotPermitted,
                       "witness request refused: broker " + config_.id +
                           " does not have the witness role in directory serial " +
                           std::to_string(dir.serial));
    return;
  }
  auto origin = CheckpointOrigin(dir.federation, peer.id);
  auto log_keys = keys::LogVerifiers(dir, peer.id);
  if (!origin.ok() || !log_keys.ok()) {
    RefuseWitnessFrame(turn, routing_id, rid, peer.id, NackReason::kNotPermitted,
                       "witness request refused: " +
                           (origin.ok() ? log_keys.status() : origin.status()).message());
    return;
  }
  WitnessItem item;
  item.requester = peer.id;
  item.origin = std::move(*origin);
  item.log_keys = std::move(*log_keys);
  item.request = frame.witness_request;
  item.directory_serial = dir.serial;
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = rid;
  reply.witness_index = static_cast<int>(turn.batch.witness.size());
  turn.replies.push_back(std::move(reply));
  turn.batch.witness.push_back(std::move(item));
}

void Server::HandleAddCosignature(const std::string& routing_id, const schema::Party& peer,
                                  const Frame& frame, Turn& turn) {
  const schema::Directory& dir = directory_.directory;
  const uint64_t rid = frame.request_id;
  const std::string& note = frame.add_cosignature.checkpoint;
  auto refuse = [&](NackReason reason, const std::string& why) {
    RefuseWitnessFrame(turn, routing_id, rid, peer.id, reason, "cosignature refused: " + why);
  };
  auto keys = keys::WitnessVerifiersOf(dir, peer.id);
  if (!keys.ok() || peer.id == config_.id) {
    refuse(NackReason::kNotPermitted,
           "only witnesses (brokers and auditors with the witness role in the directory, other "
           "than this broker) may add cosignatures; " +
               (keys.ok() ? peer.id + " is this broker" : keys.status().message()));
    return;
  }
  auto parsed = keys::ParseSignedNote(note);
  if (!parsed.ok()) {
    refuse(NackReason::kMalformed, parsed.status().message());
    return;
  }
  auto own = keys::NoteVerifier::Create(origin_, keys::NoteKeyType::kEd25519,
                                        identity_->signing_public_key());
  auto opened = own.ok() ? keys::OpenCheckpoint(note, origin_, *own)
                         : Result<keys::VerifiedCheckpoint>(own.status());
  if (!opened.ok()) {
    refuse(NackReason::kBadSignature,
           "the note is not a checkpoint this broker signed (" + opened.status().message() + ")");
    return;
  }
  // Every line by one of the witness's keys must verify (signed-note rule), and one must.
  std::optional<keys::NoteSignature> valid;
  for (const keys::NoteSignature& sig : parsed->signatures) {
    for (const keys::NoteVerifier& k : *keys) {
      if (k.name() != sig.name || k.key_id() != sig.key_id) continue;
      auto t = keys::VerifyCosignature(opened->body, sig, k);
      if (!t.ok()) {
        refuse(NackReason::kBadSignature, t.status().message());
        return;
      }
      valid = sig;
    }
  }
  if (!valid) {
    refuse(NackReason::kBadSignature, "the note carries no cosignature by " + peer.id);
    return;
  }
  Reply reply;
  reply.routing_id = routing_id;
  reply.request_id = rid;
  reply.message_id = AttestationId(AsBytes(note));
  reply.cosignature_index = static_cast<int>(turn.batch.cosignatures.size());
  turn.replies.push_back(std::move(reply));
  turn.batch.cosignatures.push_back(
      {opened->checkpoint.size, opened->checkpoint.root, peer.id, std::move(*valid)});
}

Frame Server::AnswerWitness(const Reply& r, const Job& job) {
  if (!job.committed) {
    return NackFrame(r.request_id, {}, NackReason::kInternal,
                     "the broker could not commit; retry later", kStorageRetryMs);
  }
  const WitnessItem& item = job.turn.batch.witness[static_cast<size_t>(r.witness_index)];
  const WitnessOutcome& o = job.result.witness[static_cast<size_t>(r.witness_index)];
  if (!o.error.ok()) {
    spdlog::critical("WITNESS STATE DAMAGED: cannot decide a request of {} for {}: {}",
                     item.requester, item.origin, o.error.ToString());
    return NackFrame(r.request_id, {}, NackReason::kInternal,
                     "this witness cannot read its state for " + item.origin, kStorageRetryMs);
  }
  Frame f;
  f.type = Frame::Type::kWitnessReply;
  f.request_id = r.request_id;
  f.witness_reply.refusal = RefusalFor(o.verdict);
  f.witness_reply.cosignature = o.cosignature;
  f.witness_reply.detail = Clip(o.detail, schema::kMaxWitnessDetailBytes);
  f.witness_reply.witness_size = o.witness_size;
  switch (o.verdict) {
    case keys::WitnessVerdict::kCosign:
      ++stats_.witness_cosigned;
      spdlog::debug("witnessed {}: cosigned size {}", item.origin, o.witness_size);
      break;
    case keys::WitnessVerdict::kConflict:
      spdlog::info("witnessing {}: {} asked from size {}; answered with this witness's size {}",
                   item.origin, item.requester, item.request.old_size, o.witness_size);
      break;
    case keys::WitnessVerdict::kInconsistent:
      ++stats_.witness_refused;
      ++stats_.witness_inconsistent;
      spdlog::critical(
          "WITNESS: REFUSED AN INCONSISTENT CHECKPOINT of {} from {}: {}; both checkpoints are "
          "kept as evidence record {} and the refusal is in this broker's audit log",
          item.origin, item.requester, o.detail, o.evidence ? *o.evidence : 0);
      break;
    default:
      ++stats_.witness_refused;
      spdlog::warn("witnessing {}: refused a checkpoint from {}: {} ({})", item.origin,
                   item.requester, keys::Name(o.verdict), o.detail);
      break;
  }
  return f;
}

void Server::Dispatch(UnixMillis now, bool expire, bool checkpoint) {
  for (auto& e : pending_events_) turn_.batch.events.push_back(std::move(e));
  pending_events_.clear();
  for (auto& c : pending_cosignatures_) turn_.batch.cosignatures.push_back(std::move(c));
  pending_cosignatures_.clear();
  turn_.batch.witness_signer = {identity_.get(), witness_name_};
  if (!turn_.batch.revocations.empty()) {
    for (const auto& b : directory_.directory.brokers) {
      if (b.id != config_.id && b.status == schema::PartyStatus::kActive) {
        turn_.batch.revocation_peers.push_back(b.id);
      }
    }
  }
  // An auditor's AuditCheckpoint: signed right after this turn's commit, so the note
  // covers the query's own AUDITOR_QUERY entry.
  checkpoint = checkpoint || turn_.checkpoint_asked;
  if (turn_.Empty() && !expire && !checkpoint) return;
  auto job = std::make_unique<Job>();
  job->turn = std::move(turn_);
  turn_ = Turn();
  job->now = now;
  job->expire = expire;
  job->checkpoint = checkpoint;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  busy_ = true;
}

std::unique_ptr<Server::Job> Server::TakeDone() {
  std::unique_ptr<Job> job;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!done_.empty()) {
      job = std::move(done_.front());
      done_.pop_front();
    }
    done_ready_.store(!done_.empty(), std::memory_order_release);
  }
  // Clears the wake-up (EAGAIN when there was nothing to take).
  uint64_t count = 0;
  ssize_t n = ::read(done_fd_, &count, sizeof(count));
  (void)n;
  return job;
}

void Server::WriterMain() {
  while (true) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return writer_exit_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // asked to exit, with nothing left to write
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    CommitJob(*job);
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_.push_back(std::move(job));
      done_ready_.store(true, std::memory_order_release);
      // Under the lock: whoever takes the job afterwards also clears this wake-up, so the
      // eventfd is never left readable with nothing to take (the loop would spin).
      uint64_t one = 1;
      ssize_t n = ::write(done_fd_, &one, sizeof(one));  // fails only if the counter overflows
      (void)n;
    }
    done_cv_.notify_all();
  }
}

void Server::CommitJob(Job& job) {
  Turn& turn = job.turn;
  if (!turn.batch.accepted.empty() || !turn.batch.acks.empty() || !turn.batch.events.empty() ||
      !turn.batch.grants.empty() || !turn.batch.revocations.empty() ||
      !turn.batch.witness.empty() || !turn.batch.cosignatures.empty() ||
      !turn.batch.reroutes.empty() || !turn.batch.control_ends.empty()) {
    for (size_t i = 0; i < turn.batch.accepted.size(); ++i) {
      turn.batch.accepted[i].decoded = &turn.decoded[i];
    }
    const auto commit_start = std::chrono::steady_clock::now();
    auto result = store_->Commit(turn.batch, job.now);
    if (!result.ok() && result.status().code() == Status::Code::kResourceExhausted &&
        (!turn.batch.accepted.empty() || !turn.batch.grants.empty() ||
         !turn.batch.revocations.empty())) {
      // Full: refuse the new envelopes (they stay with their senders, who retry), but keep
      // delivering: acks free room.
      spdlog::critical("STORAGE FULL: refusing new submissions ({}); deliveries continue",
                       result.status().message());
      job.storage_full = true;
      Batch rest;
      rest.acks = std::move(turn.batch.acks);
      rest.events = std::move(turn.batch.events);
      // Witness decisions write little; a cosignature handed back replaces a line.
      rest.witness = std::move(turn.batch.witness);
      rest.witness_signer = turn.batch.witness_signer;
      rest.cosignatures = std::move(turn.batch.cosignatures);
      rest.reroutes = std::move(turn.batch.reroutes);  // moves entries, grows little
      rest.control_ends = std::move(turn.batch.control_ends);
      for (auto& r : turn.replies) {
        if (r.accepted_index < 0 && r.grant_index < 0 && r.revocation_index < 0) continue;
        if (r.accepted_index >= 0) {
          job.refused_uncommitted.push_back(
              turn.decoded[static_cast<size_t>(r.accepted_index)].header.kind);
        }
        r.accepted_index = r.grant_index = r.revocation_index = -1;
        r.reason = NackReason::kStorageFull;
        r.detail = "the broker's storage is full; retry later";
        r.retry_after_ms = kStorageRetryMs;
      }
      turn.batch = std::move(rest);
      result = store_->Commit(turn.batch, job.now);
    }
    job.commit_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_start).count();
    if (!result.ok()) {
      spdlog::error("commit failed: {}", result.status().ToString());
      for (auto& r : turn.replies) {
        if (r.accepted_index < 0 && r.grant_index < 0 && r.revocation_index < 0 && !r.attest) {
          continue;
        }
        if (r.accepted_index >= 0) {
          job.refused_uncommitted.push_back(
              turn.decoded[static_cast<size_t>(r.accepted_index)].header.kind);
        }
        r.accepted_index = r.grant_index = r.revocation_index = -1;
        r.attest = false;
        r.reason = result.status().code() == Status::Code::kResourceExhausted
                       ? NackReason::kStorageFull
                       : NackReason::kInternal;
        r.detail = "the broker could not store the envelope; retry later";
        r.retry_after_ms = kStorageRetryMs;
      }
      // Acks not applied: the recipients will get those messages again (and dedup them).
      job.status = result.status();
    } else {
      job.committed = true;
      job.result = std::move(*result);
    }
  }
  if (job.expire) {
    auto n = store_->ExpireOld(job.now, 10000);
    if (!n.ok())
      spdlog::error("expiry sweep failed: {}", n.status().ToString());
    else if (*n > 0)
      spdlog::info("expired {} old message ids", *n);
  }
  if (job.checkpoint) {
    // After this job's commit and expiry: the checkpoint covers them.
    auto c = store_->SignCheckpoint(origin_, *identity_);
    if (c.ok()) {
      job.checkpoint_outcome = std::move(*c);
    } else {
      job.checkpoint_status = c.status();
    }
  }
}

Status Server::Finish(Job& job) {
  Turn& turn = job.turn;
  // Committed or not, these acks are no longer pending: a failed one is redelivered with
  // the recipient's next session.
  for (const auto& a : turn.batch.acks) {
    if (a.kind == RecipientAck::Kind::kForwarded || a.kind == RecipientAck::Kind::kRefusedByPeer) {
      continue;  // link ends: the links keep their own
    }
    auto p = peers_.find(a.recipient);
    if (p != peers_.end()) p->second.acks_uncommitted.erase(a.seq);
  }
  links_->Committed(turn.batch.acks, turn.batch.control_ends);
  if (!job.status.ok()) spdlog::error("turn not committed: {}", job.status.ToString());
  if (job.commit_seconds >= 0) stats_.ObserveCommit(job.commit_seconds);
  for (schema::MessageKind k : job.refused_uncommitted) {
    stats_.CountEnvelope(k, EnvelopeOutcome::kRefused);
  }
  // For readiness: storage full until a commit with new envelopes goes through again.
  const UnixMillis finish_now = SystemClock::Get().NowMillis();
  if (job.storage_full) {
    if (storage_full_since_ == 0) storage_full_since_ = finish_now;
  } else if (job.committed && !turn.batch.accepted.empty()) {
    if (storage_full_since_ != 0) spdlog::warn("storage has room again: submissions accepted");
    storage_full_since_ = 0;
  }
  if (job.committed || job.status.ok()) {
    last_commit_error_.clear();
  } else {
    last_commit_error_ = job.status.message().substr(0, 300);
  }
  Status checkpoint_status;
  if (job.checkpoint) {
    if (!job.checkpoint_status.ok()) {
      checkpoint_status = job.checkpoint_status;
      spdlog::critical("AUDIT CHECKPOINT NOT SIGNED: {}", checkpoint_status.ToString());
    } else {
      const keys::Checkpoint& c = job.checkpoint_outcome.stored.checkpoint;
      last_checkpoint_size_ = c.size;
      if (job.checkpoint_outcome.signed_now) {
        ++stats_.checkpoints;
        last_checkpoint_signed_ms_ = finish_now;
        spdlog::info("signed audit checkpoint: {} entries, root {}", c.size, HexEncode(c.root));
        if (witness_client_) witness_client_->Offer(job.checkpoint_outcome.stored);
      }
      latest_checkpoint_ = job.checkpoint_outcome.stored.note;
    }
  }
  if (job.committed) {
    const CommitResult& result = job.result;
    ++stats_.commits;
    for (size_t i = 0; i < result.accepted.size(); ++i) {
      Outcome o = result.accepted[i];
      stats_.CountEnvelope(turn.decoded[i].header.kind, o);
      if (o == Outcome::kStored) {
        ++stats_.accepted;
        const Accepted& a = turn.batch.accepted[i];
        if (a.hops > 0) ++stats_.relays_accepted;
        for (const auto& m : a.mailboxes) {
          const schema::Party* p = directory_.directory.Find(m);
          if (p != nullptr && p->kind == schema::PartyKind::kBroker) {
            ++stats_.routed_out;
            links_->MarkDirty(m);
          } else {
            dirty_.insert(m);
          }
        }
        if (a.mailboxes.empty()) {
          for (const auto& r : turn.decoded[i].header.recipients) dirty_.insert(r.agency_id);
        }
      } else if (o == Outcome::kDuplicate) {
        ++stats_.duplicates;
      }
    }
    for (bool applied : result.acks_applied) stats_.acked += applied ? 1 : 0;
    auto mark = [&](const std::string& m) {
      const schema::Party* p = directory_.directory.Find(m);
      if (p != nullptr && p->kind == schema::PartyKind::kBroker) {
        links_->MarkDirty(m);
      } else {
        dirty_.insert(m);
      }
    };
    for (size_t i = 0; i < result.reroutes_applied.size(); ++i) {
      if (!result.reroutes_applied[i]) continue;
      for (const auto& t : turn.batch.reroutes[i].to) mark(t);
    }
    for (const auto& a : turn.batch.accepted) {
      for (const auto& t : a.added) mark(t);
    }
    for (size_t i = 0; i < result.cosignatures.size(); ++i) {
      const CheckpointCosignature& c = turn.batch.cosignatures[i];
      if (result.cosignatures[i].ok()) {
        ++stats_.cosignatures_stored;
        spdlog::info("checkpoint of size {} cosigned by witness {}", c.size, c.witness_id);
      } else {
        spdlog::warn("cosignature by {} of size {} not stored: {}", c.witness_id, c.size,
                     result.cosignatures[i].message());
      }
    }
    for (auto& r : turn.replies) {
      const ControlOutcome* control = nullptr;
      if (r.grant_index >= 0) control = &result.grants[static_cast<size_t>(r.grant_index)];
      if (r.revocation_index >= 0) {
        control = &result.revocations[static_cast<size_t>(r.revocation_index)];
      }
      if (control != nullptr) {
        const char* what = r.grant_index >= 0 ? "registration" : "revocation";
        r.duplicate = control->duplicate;
        if (!control->ok) {
          ++stats_.rejected;
          r.grant_index = r.revocation_index = -1;
          r.reason = control->reason;
          r.detail = control->detail;
          spdlog::warn("refused a consent {}: {} ({})", what, schema::Name(r.reason), r.detail);
        }
        continue;
      }
      if (r.accepted_index < 0) continue;
      Outcome o = result.accepted[static_cast<size_t>(r.accepted_index)];
      if (o == Outcome::kRefused) {
        ++stats_.rejected;
        const keys::ScopeRefusal& why = result.refusals[static_cast<size_t>(r.accepted_index)];
        r.accepted_index = -1;
        r.reason = why.reason;
        r.detail = why.detail;
        spdlog::warn("refused message {}: {} ({})", Short(r.message_id), schema::Name(r.reason),
                     r.detail);
        continue;
      }
      if (o == Outcome::kQuotaExceeded) {
        ++stats_.rejected;
        r.reason = NackReason::kQuotaExceeded;
        const std::string why = result.refusals[static_cast<size_t>(r.accepted_index)].detail;
        r.accepted_index = -1;
        r.detail = (why.empty() ? "mailbox of " + result.quota_recipient + " is full" : why) +
                   "; retry later";
        r.retry_after_ms = kQuotaRetryMs;
        spdlog::warn("refused message {}: quota-exceeded ({}; back-pressure, retry in {} ms)",
                     Short(r.message_id), r.detail, kQuotaRetryMs);
      } else if (o == Outcome::kDuplicate) {
        r.duplicate = true;
      }
    }
  }
  for (const auto& r : turn.replies) {
    if (r.witness_index >= 0) {
      Send(r.routing_id, AnswerWitness(r, job));
      continue;
    }
    if (r.cosignature_index >= 0) {
      const Status* stored =
          job.committed ? &job.result.cosignatures[static_cast<size_t>(r.cosignature_index)]
                        : nullptr;
      if (stored != nullptr && stored->ok()) {
        Frame f;
        f.type = Frame::Type::kAck;
        f.request_id = r.request_id;
        f.ack.message_id = r.message_id;
        Send(r.routing_id, f);
      } else if (stored != nullptr) {
        Send(r.routing_id, NackFrame(r.request_id, r.message_id, NackReason::kOutOfRange,
                                     "cosignature not stored: " + stored->message(), 0));
      } else {
        Send(r.routing_id, NackFrame(r.request_id, r.message_id, NackReason::kInternal,
                                     "the broker could not commit; retry later", kStorageRetryMs));
      }
      continue;
    }
    if (r.audit_query >= 0) {
      Send(r.routing_id, AnswerAuditQuery(turn.audit_queries[static_cast<size_t>(r.audit_query)],
                                          r.request_id, job));
      continue;
    }
    if (r.accepted_index >= 0 || r.grant_index >= 0 || r.revocation_index >= 0 ||
        (r.attest && job.committed)) {
      Frame f;
      f.type = Frame::Type::kAck;
      f.request_id = r.request_id;
      f.ack.message_id = r.message_id;
      f.ack.duplicate = r.duplicate;
      Send(r.routing_id, f);
    } else {
      Send(r.routing_id,
           NackFrame(r.request_id, r.message_id, r.reason, r.detail, r.retry_after_ms));
    }
  }
  return job.status.ok() ? checkpoint_status : job.status;
}

void Server::PumpDeliveries(UnixMillis now) {
  std::set<std::string> work;
  work.swap(dirty_);
  for (const auto& id : work) {
    auto it = peers_.find(id);
    if (it == peers_.end() || !it->second.online) continue;
    Peer& p = it->second;
    if (p.inflight >= config_.delivery_window) continue;
    auto pending = store_->ReadMailbox(id, p.last_sent_seq, config_.delivery_window - p.inflight);
    if (!pending.ok()) {
      spdlog::critical("cannot read the mailbox of {}: {}", id, pending.status().ToString());
      continue;
    }
    for (auto& m : *pending) {
      if (p.acks_uncommitted.count(m.seq) != 0) {
        p.last_sent_seq = m.seq;  // acked; its removal is being committed
        continue;
      }
      if (!m.damage.empty()) {
        // Never delivered as if sound; taken aside so the rest of the mailbox flows.
        spdlog::critical("DAMAGED stored envelope {} in the mailbox of {}: {}; quarantined",
                         Short(m.message_id), id, m.damage);
        RecipientAck q;
        q.recipient = id;
        q.seq = m.seq;
        q.message_id = m.message_id;
        q.kind = RecipientAck::Kind::kQuarantined;
        q.detail = m.damage;
        turn_.batch.acks.push_back(std::move(q));
        p.acks_uncommitted.insert(m.seq);
        p.last_sent_seq = m.seq;
        continue;
      }
      Frame f;
      f.type = Frame::Type::kDeliver;
      f.request_id = next_delivery_id_++;
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
      inflight_[f.request_id] = Inflight{id, m.seq, m.message_id, now};
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
}

void Server::CheckTimers(UnixMillis now) {
  if (now - last_timer_check_ < kTimerPeriodMs) return;
  last_timer_check_ = now;
  // Unacked deliveries past the deadline: start that recipient over from its oldest
  // pending message (order is kept; the agent deduplicates).
  std::set<std::string> restart;
  for (const auto& [id, f] : inflight_) {
    if (now - f.sent_at >= config_.redelivery_ms) restart.insert(f.recipient);
  }
  for (const auto& r : restart) {
    for (auto it = inflight_.begin(); it != inflight_.end();) {
      it = it->second.recipient == r ? inflight_.erase(it) : std::next(it);
    }
    Peer& p = peers_[r];
    p.last_sent_seq = 0;
    p.inflight = 0;
    dirty_.insert(r);
    spdlog::info("redelivering to {} (unacked past {} ms)", r, config_.redelivery_ms);
  }
  if (reload_.exchange(false) || FileMtime(config_.directory) != directory_mtime_) {
    ReloadDirectory(now, true);
  }
  if (now - last_expiry_ >= kExpiryPeriodMs) {
    last_expiry_ = now;
    expiry_due_ = true;  // a write: the writer runs it with the next job
  }
}

void Server::CheckCheckpointTimer(UnixMillis now) {
  if (checkpoint_requested_.exchange(false)) checkpoint_due_ = true;
  if (now - last_checkpoint_ >= config_.checkpoint_interval_ms) checkpoint_due_ = true;
  // The interval restarts when the request goes out (in dispatch), not when it is due.
}

void Server::ReloadDirectory(UnixMillis now, bool forced) {
  (void)forced;
  directory_mtime_ = FileMtime(config_.directory);
  auto v = keys::LoadAndAcceptDirectory(config_.directory, anchor_, *trust_, now);
  if (!v.ok()) {
    spdlog::error("new directory refused, keeping serial {}: {}", directory_.directory.serial,
                  v.status().ToString());
    return;
  }
  uint64_t serial = v->signed_directory.directory.serial;
  if (serial == directory_.directory.serial) return;
  const schema::Directory& old = directory_.directory;
  const schema::Directory& next = v->signed_directory.directory;
  for (const auto* list : {&next.agencies, &next.brokers, &next.auditors}) {
    for (const auto& p : *list) {
      const schema::Party* before = old.Find(p.id);
      bool was_active = before != nullptr && before->status == schema::PartyStatus::kActive;
      const schema::KeyRecord* old_key = before != nullptr ? before->ActiveKeys() : nullptr;
      const schema::KeyRecord* new_key = p.ActiveKeys();
      bool revoked = was_active && p.status != schema::PartyStatus::kActive;
      bool rotated =
          old_key != nullptr && new_key != nullptr && old_key->signing_key != new_key->signing_key;
      if (!revoked && !rotated) continue;
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kKeyRevoked;
      e.actor = p.id;
      e.directory_serial = serial;
      e.detail = revoked ? "party revoked" : "keys rotated";
      pending_events_.push_back(std::move(e));
      if (revoked) {
        peers_.erase(p.id);
        for (auto it = inflight_.begin(); it != inflight_.end();) {
          it = it->second.recipient == p.id ? inflight_.erase(it) : std::next(it);
        }
        spdlog::warn("{} is revoked by directory serial {}: cut off", p.id, serial);
      }
    }
  }
  schema::AuditEntry loaded;
  loaded.event = schema::AuditEvent::kDirectoryLoaded;
  loaded.directory_serial = serial;
  pending_events_.push_back(std::move(loaded));
  bool moved = false;
  for (const auto& a : next.agencies) {
    const schema::Party* before = old.Find(a.id);
    moved = moved || (before != nullptr && before->home_broker != a.home_broker);
  }
  directory_ = std::move(v->signed_directory);
  spdlog::info("loaded directory serial {}", serial);
  if (moved) PlanReroutes(directory_.directory);
}

void Server::PlanReroutes(const schema::Directory& dir) {
  constexpr size_t kMaxScan = 1000000;
  // Where a recipient's copy goes from here ("" if nowhere: revoked or unroutable, it is
  // left where it is until it expires).
  auto target_of = [&](const std::string& recipient) -> std::string {
    const schema::Party* p = dir.Find(recipient);
    if (p == nullptr || p->status != schema::PartyStatus::kActive) return "";
    if (p->home_broker == config_.id) return recipient;
    const schema::Party* home = dir.Find(p->home_broker);
    if (home == nullptr || home->status != schema::PartyStatus::kActive) return "";
    return p->home_broker;
  };
  auto boxes = store_->NonEmptyMailboxes();
  if (!boxes.ok()) {
    spdlog::critical("re-routing: cannot list mailboxes: {}", boxes.status().ToString());
    return;
  }
  size_t planned = 0;
  for (const auto& [box, depth] : *boxes) {
    const schema::Party* owner = dir.Find(box);
    if (owner == nullptr) continue;
    const bool is_link = owner->kind == schema::PartyKind::kBroker;
    if (!is_link &&
        (owner->kind != schema::PartyKind::kAgency || owner->home_broker == config_.id)) {
      continue;
    }
    auto entries = store_->ReadMailboxIndex(box, kMaxScan);
    if (!entries.ok()) {
      spdlog::critical("re-routing: cannot read mailbox {}: {}", box, entries.status().ToString());
      continue;
    }
    for (const auto& m : *entries) {
      const std::vector<std::string> served = is_link ? m.serves : std::vector<std::string>{box};
      Reroute rr;
      rr.from = box;
      rr.seq = m.seq;
      rr.message_id = m.message_id;
      rr.directory_serial = dir.serial;
      bool moves = false;
      for (const auto& r : served) {
        std::string t = target_of(r);
        if (t.empty()) continue;
        if (t == box) {
          rr.keep = true;
          continue;
        }
        moves = true;
        if (std::find(rr.to.begin(), rr.to.end(), t) == rr.to.end()) rr.to.push_back(t);
        if (t != r) rr.serves[t].push_back(r);
      }
      if (!moves) continue;
      turn_.batch.reroutes.push_back(std::move(rr));
      ++planned;
    }
  }
  if (planned > 0) {
    spdlog::warn(
        "directory serial {}: {} held envelopes wait where their recipients are no "
        "longer routed; re-routing them",
        dir.serial, planned);
  }
}

void Server::WriteStatus(UnixMillis now) {
  BrokerStatus st;
  st.broker_id = config_.id;
  st.time_ms = now;
  st.started_ms = started_ms_;
  st.running = !stop_.load();
  st.directory_serial = directory_.directory.serial;
  st.directory_expires_ms = directory_.directory.expires_at_ms;
  auto audit_size = store_->AuditSize();
  st.audit_size = audit_size.ok() ? *audit_size : 0;
  // mdb_env_info reads the current meta page: safe beside the writer's transaction.
  if (auto usage = store_->env().Usage(); usage.ok()) {
    st.storage_used_bytes = usage->first;
    st.storage_map_bytes = usage->second;
  }
  st.counters = {{"accepted", stats_.accepted},
                 {"duplicates", stats_.duplicates},
                 {"refused", stats_.rejected},
                 {"delivered", stats_.delivered},
                 {"acked", stats_.acked},
                 {"commits", stats_.commits},
                 {"connections_refused", stats_.zap_refused},
                 {"checkpoints", stats_.checkpoints},
                 {"relays_accepted", stats_.relays_accepted},
                 {"relays_refused", stats_.relays_refused},
                 {"routed_out", stats_.routed_out}};
  st.links = links_->Status(now, *store_);
  for (size_t k = 0; k < stats_.envelopes.size(); ++k) {
    for (size_t o = 0; o < kEnvelopeOutcomes; ++o) {
      st.envelopes.push_back({std::string(schema::Name(static_cast<schema::MessageKind>(k))),
                              kEnvelopeOutcomeNames[o], stats_.envelopes[k][o]});
    }
  }
  for (size_t r = 0; r < stats_.nacks.size(); ++r) {
    st.nacks.emplace_back(std::string(schema::Name(static_cast<NackReason>(r))), stats_.nacks[r]);
  }
  st.commit_buckets.assign(stats_.commit_buckets.begin(), stats_.commit_buckets.end());
  st.commit_seconds_sum = stats_.commit_seconds_sum;
  st.last_checkpoint_ms = last_checkpoint_signed_ms_;
  st.last_checkpoint_size = last_checkpoint_size_;
  // Every agency homed here (empty ones too, so each has a series), and any other mailbox
  // still holding something (an agency moved away); link mailboxes are in st.links.
  std::map<std::string, MailboxStatus> boxes;
  for (const auto& a : directory_.directory.agencies) {
    if (a.home_broker == config_.id) boxes[a.id] = MailboxStatus{a.id, 0, 0};
  }
  if (auto backlogs = store_->MailboxBacklogs(kMaxMailboxesInStatus); backlogs.ok()) {
    for (const auto& b : *backlogs) {
      const schema::Party* p = directory_.directory.Find(b.mailbox);
      if (p != nullptr && p->kind == schema::PartyKind::kBroker) continue;
      boxes[b.mailbox] = MailboxStatus{b.mailbox, b.depth, b.oldest_accepted_ms};
    }
  }
  for (auto& [id, m] : boxes) {
    if (st.mailboxes.size() == kMaxMailboxesInStatus) {
      st.mailboxes_truncated = true;
      break;
    }
    st.mailboxes.push_back(std::move(m));
  }
  st.storage_full_since_ms = storage_full_since_;
  st.last_commit_error = last_commit_error_;
  if (Status s = WriteStatusFile(config_.status_file, st); !s.ok()) {
    spdlog::warn("status file not written: {}", s.message());
  }
  {
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    snapshot_ = st;
  }
  // Now and then, the links that need an operator's eye, in the log too.
  if (now - last_link_log_ >= kLinkLogPeriodMs) {
    last_link_log_ = now;
    for (const auto& l : st.links) {
      if (l.state == "up" && l.backlog == 0) continue;
      spdlog::warn("federation link to {}: {} for {} s, backlog {}, oldest queued {} s{}{}", l.peer,
                   l.state, (now - l.state_since_ms) / 1000, l.backlog,
                   l.oldest_queued_ms == 0 ? 0 : (now - l.oldest_queued_ms) / 1000,
                   l.problem.empty() ? "" : "; ", l.problem);
    }
  }
}

Status Server::Run() {
  Status final_status;
  bool stopping = false;
  bool final_checkpoint = false;  // dispatched, once everything else is committed
  auto take_done = [&] {
    if (!busy_ && !done_ready_.load(std::memory_order_acquire)) return;
    std::unique_ptr<Job> job = TakeDone();
    if (job == nullptr) return;
    busy_ = false;
    Status s = Finish(*job);
    if (stopping && !s.ok()) final_status = s;
  };
  auto dispatch = [&](UnixMillis now) {
    if (busy_) return;
    bool expire = expiry_due_ && !stopping;
    bool checkpoint = checkpoint_due_;
    Dispatch(now, expire, checkpoint);
    if (expire) expiry_due_ = false;
    if (checkpoint) {
      checkpoint_due_ = false;
      last_checkpoint_ = now;
    }
  };
  while (true) {
    if (!stopping && stop_.load()) stopping = true;
    if (stopping && !busy_ && turn_.Empty() && pending_events_.empty() &&
        pending_cosignatures_.empty()) {
      if (final_checkpoint) break;
      // Everything is committed: the last checkpoint covers the whole log.
      final_checkpoint = true;
      checkpoint_due_ = true;
      dispatch(SystemClock::Get().NowMillis());
    }
    const bool reading = !stopping && turn_.frames < config_.max_batch;
    std::vector<zmq::pollitem_t> items = {
        {router_.handle(), 0, static_cast<short>(reading ? ZMQ_POLLIN : 0), 0},
        {zap_->socket().handle(), 0, ZMQ_POLLIN, 0},
        {nullptr, done_fd_, ZMQ_POLLIN, 0}};
    if (!stopping) links_->AppendPollItems(items);
    bool work_now = !dirty_.empty() || (!stopping && links_->Busy()) ||
                    (!busy_ && (!turn_.Empty() || !pending_events_.empty() ||
                                !pending_cosignatures_.empty() || checkpoint_due_));
    try {
      zmq::poll(items, std::chrono::milliseconds(work_now ? 0 : 100));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) return IoError(std::string("poll failed: ") + e.what());
    }
    UnixMillis now = SystemClock::Get().NowMillis();
    if (items[1].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 64; ++i) {
        Status s = HandleZap();
        if (!s.ok()) break;  // nothing more waiting
      }
    }
    // The commit in flight returned: answer it and start the next one at once, with what
    // accumulated meanwhile.
    take_done();
    dispatch(now);
    if (reading) {
      // Read what is waiting (up to the batch limit), check its envelopes on every core,
      // then handle it in arrival order.
      std::vector<Incoming> burst;
      while (turn_.frames + burst.size() < config_.max_batch) {
        // The writer is free again: hand it what we have before reading on.
        if (busy_ && done_ready_.load(std::memory_order_acquire)) break;
        auto parts = zmqx::RecvMultipart(router_);
        if (!parts.ok()) {
          spdlog::error("receive failed: {}", parts.status().ToString());
          break;
        }
        if (!parts->has_value()) break;
        burst.push_back(Incoming{std::move(**parts), std::nullopt, std::nullopt});
      }
      Precheck(burst, now);
      for (Incoming& in : burst) {
        HandleMessage(in, turn_, now);
        ++turn_.frames;
      }
    }
    for (auto& [rid, f] : turn_.direct) Send(rid, f);
    turn_.direct.clear();
    take_done();
    dispatch(now);
    if (!stopping) {
      PumpDeliveries(now);
      CheckTimers(now);
      CheckCheckpointTimer(now);
      if (witness_client_) {
        witness_client_->Pump(now, directory_.directory, *store_, pending_cosignatures_);
      }
      links_->Pump(now, directory_.directory, *store_, turn_.batch.acks, turn_.batch.control_ends);
      if (now - last_status_ >= kStatusPeriodMs) {
        last_status_ = now;
        WriteStatus(now);
      }
    }
  }
  WriteStatus(SystemClock::Get().NowMillis());
  spdlog::info("broker {} stopped: {} accepted, {} duplicates, {} refused, {} acked", config_.id,
               stats_.accepted, stats_.duplicates, stats_.rejected, stats_.acked);
  return final_status;
}

}  // namespace refbus::broker
