// broker::Server: start (Create), the event loop (Run) and stop. The loop's work lives in
// the files named in server.h: session and ZAP (server_session.cpp), intake and routing
// (server_intake.cpp), consent control frames (server_consent.cpp), audit queries
// (server_audit.cpp), witnessing (server_witness.cpp), deliveries (server_delivery.cpp),
// the writer and the commit (server_commit.cpp), timers, directory reloads, re-routing and
// the status file (server_timers.cpp).
#include "broker/server.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>

#include "broker/server_internal.h"
#include "keys/keyfile.h"
#include "keys/witness.h"

namespace refbus::broker {

namespace server_internal {

long FileMtime(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<long>(st.st_mtim.tv_sec) * 1000000000L + st.st_mtim.tv_nsec;
}

schema::NackReason ReasonFor(keys::EnvelopeCheck check, const Status& s) {
  using schema::NackReason;
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

schema::Frame NackFrame(uint64_t request_id, ByteView message_id, schema::NackReason reason,
                        std::string detail, uint32_t retry_after_ms) {
  schema::Frame f;
  f.type = schema::Frame::Type::kNack;
  f.request_id = request_id;
  f.nack.message_id.assign(message_id.begin(), message_id.end());
  f.nack.reason = reason;
  f.nack.detail = std::move(detail);
  f.nack.retry_after_ms = retry_after_ms;
  return f;
}

schema::Frame AckFrame(uint64_t request_id, ByteView message_id, bool duplicate) {
  schema::Frame f;
  f.type = schema::Frame::Type::kAck;
  f.request_id = request_id;
  f.ack.message_id.assign(message_id.begin(), message_id.end());
  f.ack.duplicate = duplicate;
  return f;
}

}  // namespace server_internal

using server_internal::FileMtime;
using server_internal::kStatusPeriodMs;

Result<std::unique_ptr<Server>> Server::Create(const Config& config) {
  std::unique_ptr<Server> s(new Server());
  s->config_ = config;
  // Before the first socket: libzmq fixes its I/O threads when it starts.
  s->context_.set(zmq::ctxopt::io_threads, static_cast<int>(config.io_threads));
  RefusalLimits limits;
  limits.audited_per_window = config.refusals_audited_per_minute;
  s->refusals_ = RefusalLimiter(limits);
  s->verify_pool_ = std::make_unique<VerifyPool>(static_cast<unsigned>(config.verify_threads));
  UnixMillis now = SystemClock::Get().NowMillis();
  REFBUS_RETURN_IF_ERROR(s->LoadIdentity(config, now));
  REFBUS_RETURN_IF_ERROR(s->OpenStore(now));
  REFBUS_RETURN_IF_ERROR(s->StartLinkage());
  REFBUS_RETURN_IF_ERROR(s->Bind());
  REFBUS_RETURN_IF_ERROR(s->StartLinks());
  REFBUS_RETURN_IF_ERROR(s->StartWriter(now));
  return s;
}

Status Server::LoadIdentity(const Config& config, UnixMillis now) {
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
  identity_ = std::make_unique<keys::Identity>(std::move(id));
  REFBUS_ASSIGN_OR_RETURN(anchor_, keys::LoadTrustAnchor(config.anchor));
  REFBUS_ASSIGN_OR_RETURN(keys::TrustState ts, keys::TrustState::Open(config.trust_state));
  trust_ = std::make_unique<keys::TrustState>(std::move(ts));
  directory_mtime_ = FileMtime(config.directory);
  REFBUS_ASSIGN_OR_RETURN(auto v,
                          keys::LoadAndAcceptDirectory(config.directory, anchor_, *trust_, now));
  if (v.in_grace) {
    spdlog::error("directory serial {} has EXPIRED and is in its grace period: install a new one",
                  v.signed_directory.directory.serial);
  }
  directory_ = std::move(v.signed_directory);
  const schema::Party* me = directory_.directory.Find(config.id);
  if (me == nullptr || me->kind != schema::PartyKind::kBroker ||
      me->status != schema::PartyStatus::kActive) {
    return FailedPrecondition("broker " + config.id +
                              " is not an active broker in directory serial " +
                              std::to_string(directory_.directory.serial));
  }
  const schema::KeyRecord* keys = me->ActiveKeys();
  if (keys == nullptr || keys->transport_key != identity_->transport_public_key()) {
    return FailedPrecondition("the transport key in " + config.key_file + " is not broker " +
                              config.id +
                              "'s active key in the directory "
                              "(was the key rotated without a new directory?)");
  }
  // Auditors verify checkpoints with the signing key the directory lists for this broker.
  if (keys->signing_key != identity_->signing_public_key()) {
    return FailedPrecondition("the signing key in " + config.key_file + " is not broker " +
                              config.id + "'s active signing key in the directory");
  }
  REFBUS_ASSIGN_OR_RETURN(origin_, CheckpointOrigin(directory_.directory.federation, config.id));
  REFBUS_ASSIGN_OR_RETURN(witness_name_,
                          keys::WitnessName(directory_.directory.federation, config.id));
  return Status::Ok();
}

Status Server::OpenStore(UnixMillis now) {
  StoreOptions so;
  so.dir = config_.data_dir;
  so.broker_id = config_.id;
  so.map_size_bytes = static_cast<size_t>(config_.map_size_mb) << 20;
  so.mailbox_quota = config_.mailbox_quota;
  so.sender_quota = config_.sender_quota;
  REFBUS_ASSIGN_OR_RETURN(store_, Store::Open(so));
  // A log that no longer extends the checkpoint this broker signed last was rewritten or
  // damaged: starting would only append to it, and every later checkpoint would be refused.
  if (Status c = store_->CheckLatestCheckpoint(origin_); !c.ok()) {
    return c.WithContext("audit log in " + config_.data_dir);
  }
  // Acks carry the latest checkpoint from the first one on (PROTOCOL.md section 6).
  REFBUS_ASSIGN_OR_RETURN(auto latest, store_->LatestCheckpoint());
  if (latest) health_.latest_checkpoint = latest->note;
  REFBUS_ASSIGN_OR_RETURN(roster_versions_, store_->RosterVersions());
  timers_.checkpoint = now;
  health_.started_ms = now;
  timers_.link_log = now;
  return Status::Ok();
}

Status Server::StartLinks() {
  LinkOptions lo;
  lo.broker_id = config_.id;
  lo.endpoints = config_.peer_endpoints;
  lo.endpoint_files = config_.peer_endpoint_files;
  lo.timeout_ms = static_cast<UnixMillis>(config_.link_timeout_ms);
  lo.window = static_cast<size_t>(config_.link_window);
  links_ = std::make_unique<Links>(context_, *identity_, std::move(lo));
  if (config_.witness_peers.empty()) return Status::Ok();
  WitnessClientOptions wo;
  wo.broker_id = config_.id;
  wo.federation = directory_.directory.federation;
  wo.origin = origin_;
  wo.peers = config_.witness_peers;
  wo.interval_ms = config_.witness_interval_ms;
  wo.timeout_ms = config_.witness_timeout_ms;
  witness_client_ = std::make_unique<WitnessClient>(*links_, wo);
  // Witnessing resumes from the latest stored checkpoint (and what cosigned it).
  REFBUS_ASSIGN_OR_RETURN(auto latest, store_->LatestCheckpoint());
  if (latest) witness_client_->Offer(*latest);
  return Status::Ok();
}

Status Server::StartWriter(UnixMillis now) {
  REFBUS_RETURN_IF_ERROR(queue_.Open());
  // From here on only the writer writes to the store; ~Server joins it.
  writer_ = std::thread([this] { WriterMain(); });

  schema::AuditEntry started;
  started.event = schema::AuditEvent::kBrokerStarted;
  started.directory_serial = directory_.directory.serial;
  started.detail = "listening on " + endpoint_;
  pending_events_.push_back(std::move(started));
  schema::AuditEntry loaded;
  loaded.event = schema::AuditEvent::kDirectoryLoaded;
  loaded.directory_serial = directory_.directory.serial;
  pending_events_.push_back(std::move(loaded));
  // The directory may have moved agencies while this broker was down.
  PlanReroutes(directory_.directory);
  Dispatch(now, false, false);
  queue_.WaitDone();
  std::unique_ptr<Job> started_job = queue_.TakeDone();
  busy_ = false;
  REFBUS_RETURN_IF_ERROR(started_job->status);
  spdlog::info("broker {} listening on {} (directory serial {}, audit log {} entries)", config_.id,
               endpoint_, directory_.directory.serial, started_job->result.audit_size);
  return Status::Ok();
}

Server::~Server() {
  if (writer_.joinable()) {
    queue_.Close();
    writer_.join();
  }
}

void Server::TakeAndFinish(UnixMillis now, bool stopping, Status* final_status) {
  if (!busy_ && !queue_.done_ready()) return;
  std::unique_ptr<Job> job = queue_.TakeDone();
  if (job == nullptr) return;
  busy_ = false;
  // The writer need not wait for this job's replies: the next turn was gathered while it
  // committed and depends on nothing Finish does (what Finish adds goes to the turn after).
  DispatchDue(now, stopping);
  Status s = Finish(*job);
  if (stopping && !s.ok()) *final_status = s;
}

bool Server::HoldUnowed(UnixMillis now, bool expire, bool checkpoint, bool stopping) {
  const size_t unowed =
      turn_.batch.acks.size() + turn_.batch.events.size() + pending_events_.size();
  const bool only_unowed =
      unowed > 0 && turn_.NothingButAcksAndEvents() && pending_cosignatures_.empty();
  if (!only_unowed || expire || checkpoint || stopping || unowed >= server_internal::kHoldMax) {
    hold_since_ = 0;
    return false;
  }
  if (hold_since_ == 0) hold_since_ = now;
  if (now - hold_since_ < server_internal::kHoldMs) return true;
  hold_since_ = 0;
  return false;
}

void Server::DispatchDue(UnixMillis now, bool stopping) {
  if (busy_) return;
  bool expire = timers_.expiry_due && !stopping;
  bool checkpoint = timers_.checkpoint_due;
  if (HoldUnowed(now, expire, checkpoint, stopping)) return;
  Dispatch(now, expire, checkpoint);
  if (expire) timers_.expiry_due = false;
  if (checkpoint) {
    timers_.checkpoint_due = false;
    timers_.checkpoint = now;
  }
}

void Server::ReadBurst(UnixMillis now) {
  // Read what is waiting (up to the batch limit), check its envelopes on every core,
  // then handle it in arrival order.
  std::vector<Incoming> burst;
  while (turn_.frames + burst.size() < config_.max_batch) {
    // The writer is free again: hand it what we have before reading on.
    if (busy_ && queue_.done_ready()) break;
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

void Server::Housekeep(UnixMillis now) {
  PumpDeliveries(now);
  CheckTimers(now);
  CheckCheckpointTimer(now);
  if (witness_client_) {
    witness_client_->Pump(now, directory_.directory, *store_, pending_cosignatures_);
  }
  links_->Pump(now, directory_.directory, *store_, turn_.batch.acks, turn_.batch.control_ends);
  if (now - timers_.status >= kStatusPeriodMs) {
    timers_.status = now;
    WriteStatus(now);
  }
}

bool Server::WorkNow(bool stopping) const {
  return !deliveries_.dirty.empty() || (!stopping && links_->Busy()) ||
         (!busy_ && hold_since_ == 0 &&
          (!turn_.Empty() || !pending_events_.empty() || !pending_cosignatures_.empty() ||
           timers_.checkpoint_due));
}

Status Server::Run() {
  Status final_status;
  bool stopping = false;
  bool final_checkpoint = false;  // dispatched, once everything else is committed
  while (true) {
    if (!stopping && stop_.load()) {
      stopping = true;
      // Every refusal counted so far is on record in the final commits.
      FlushRefusals(SystemClock::Get().NowMillis(), true);
    }
    if (stopping && !busy_ && turn_.Empty() && pending_events_.empty() &&
        pending_cosignatures_.empty()) {
      if (final_checkpoint) break;
      // Everything is committed: the last checkpoint covers the whole log.
      final_checkpoint = true;
      timers_.checkpoint_due = true;
      DispatchDue(SystemClock::Get().NowMillis(), stopping);
    }
    const bool reading = !stopping && turn_.frames < config_.max_batch;
    std::vector<zmq::pollitem_t> items = {
        {router_.handle(), 0, static_cast<short>(reading ? ZMQ_POLLIN : 0), 0},
        {zap_->socket().handle(), 0, ZMQ_POLLIN, 0},
        {nullptr, queue_.fd(), ZMQ_POLLIN, 0}};
    if (!stopping) links_->AppendPollItems(items);
    try {
      // A turn held for a submission (HoldUnowed): wake within a millisecond to send it on.
      const int idle_ms = hold_since_ != 0 && !busy_ ? 1 : 100;
      zmq::poll(items, std::chrono::milliseconds(WorkNow(stopping) ? 0 : idle_ms));
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
    TakeAndFinish(now, stopping, &final_status);
    DispatchDue(now, stopping);
    if (reading) ReadBurst(now);
    for (auto& [rid, f] : turn_.direct) Send(rid, f);
    turn_.direct.clear();
    TakeAndFinish(now, stopping, &final_status);
    DispatchDue(now, stopping);
    if (!stopping) Housekeep(now);
  }
  WriteStatus(SystemClock::Get().NowMillis());
  spdlog::info("broker {} stopped: {} accepted, {} duplicates, {} refused, {} acked", config_.id,
               stats_.accepted, stats_.duplicates, stats_.rejected, stats_.acked);
  return final_status;
}

}  // namespace refbus::broker
