#include "agent/daemon.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "core/clock.h"
#include "core/file.h"
#include "core/mutex.h"
#include "keys/crypto.h"
#include "keys/directory.h"
#include "keys/identity.h"
#include "keys/key_upkeep.h"
#include "keys/keyfile.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "schema/types.h"

#include "agent/engine.h"
#include "agent/metrics.h"
#include "agent/operators.h"
#include "agent/overrides.h"
#include "core/metrics.h"
#include "keys/consent.h"

namespace refbus::agent {
namespace {

// The agent's latest status: written by the daemon's loop (every second, and at stop), read
// by the metrics listener's threads (which never touch the engine).
class StatusBoard {
 public:
  AgentStatus Get() const EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    return status_;
  }
  void Update(const std::function<void(AgentStatus&)>& change) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    change(status_);
  }

 private:
  mutable Mutex mu_;
  AgentStatus status_ GUARDED_BY(mu_);
};

UnixMillis Now() { return SystemClock::Get().NowMillis(); }

int64_t MtimeNs(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// The operator roster through the broker (PROTOCOL.md 9.3). `refbus-agent operator add |
// disable | enable | role | passwd` change operators.json from another process, whether or
// not the daemon runs: the daemon looks at the file at start and then every 2 s (it is
// replaced atomically, so its mtime changes) and publishes the roster when its version is
// newer than the last it queued (Engine::PublishRoster keeps that version).
class RosterWatch {
 public:
  explicit RosterWatch(const AgentConfig& config) : config_(config) {}

  void Check(Engine& engine) {
    const std::string path = OperatorStorePath(config_.data_dir);
    const int64_t mtime = MtimeNs(path);
    if (seen_ && *seen_ == mtime) return;
    auto records = OperatorStore(path).List();
    if (!records.ok()) {
      spdlog::error("agent {}: operator roster not read: {}", config_.id,
                    records.status().ToString());
      return;  // read again at the next look
    }
    seen_ = mtime;
    if (records->empty()) return;
    auto queued = engine.PublishRoster(RosterOf(config_.id, *records, Now()));
    if (!queued.ok()) {
      spdlog::error("agent {}: operator roster not queued: {}", config_.id,
                    queued.status().ToString());
      seen_.reset();
    } else if (*queued) {
      spdlog::info("agent {}: operator roster ({} operators) queued for the home broker",
                   config_.id, records->size());
    }
  }

 private:
  const AgentConfig& config_;
  std::optional<int64_t> seen_;
};

// The agency's keys and its verified view of the federation.
struct Party {
  std::unique_ptr<keys::Identity> identity;  // moved into the Engine
  Bytes signing_key;                         // its public keys, for directory reloads
  Bytes transport_key;
  keys::TrustAnchor anchor;
  std::unique_ptr<keys::TrustState> trust;
  schema::SignedDirectory directory;
};

// The identity and directory must describe one active agency with these very keys: a
// mismatch (a rotated key without a new directory, the wrong key file) is caught here
// with a clear message rather than as refused envelopes later.
Status CheckListed(const AgentConfig& c, ByteView signing_key, ByteView transport_key,
                   const schema::Directory& directory) {
  const schema::Party* me = directory.Find(c.id);
  if (me == nullptr || me->kind != schema::PartyKind::kAgency ||
      me->status != schema::PartyStatus::kActive) {
    return FailedPrecondition("agency " + c.id + " is not an active agency in directory serial " +
                              std::to_string(directory.serial) + " (" + c.directory + ")");
  }
  const schema::KeyRecord* keys = me->ActiveKeys();
  if (keys == nullptr || !std::ranges::equal(keys->signing_key, signing_key) ||
      !std::ranges::equal(keys->transport_key, transport_key)) {
    return FailedPrecondition("the keys in " + c.key_file + " are not agency " + c.id +
                              "'s active keys in directory serial " +
                              std::to_string(directory.serial) +
                              " (was the key rotated without a new directory?)");
  }
  return Status::Ok();
}

// The agency's key file (at start, and again when a message is sealed to a prekey the
// running engine does not hold, or on SIGHUP).
Result<keys::Identity> LoadKeys(const AgentConfig& c) {
  std::optional<keys::SecretBuffer> pass;
  if (!c.passphrase_file.empty()) {
    REFBUS_ASSIGN_OR_RETURN(auto pf, keys::ReadPassphraseFile(c.passphrase_file));
    pass = std::move(pf);
  }
  REFBUS_ASSIGN_OR_RETURN(keys::Identity id,
                          keys::LoadIdentity(c.key_file, pass ? &*pass : nullptr));
  if (id.kind() != schema::PartyKind::kAgency || id.party_id() != c.id) {
    return InvalidArgument(c.key_file + " holds the keys of " +
                           std::string(schema::Name(id.kind())) + " " + id.party_id() +
                           ", not of agency " + c.id + " (setting agent.id in " + c.path + ")");
  }
  return id;
}

// The newest of this agency's prekeys (by not_before), or nullptr.
const keys::PrekeyEntry* NewestOwnPrekey(const keys::Identity& id) {
  const keys::PrekeyEntry* best = nullptr;
  for (const auto& e : id.prekeys()) {
    if (best == nullptr ||
        e.signed_prekey.prekey.not_before_ms > best->signed_prekey.prekey.not_before_ms) {
      best = &e;
    }
  }
  return best;
}

// Prekeys rotate by themselves ([keys] prekey_rotate_days): when the newest is that old, a
// new one is made (libsodium keygen, signed by the identity key, as `refbus-keys party
// rotate-prekey` does) and the key file rewritten (atomic, 0600) before it is published.
// Returns the prekey to publish: the new one, or at start the newest held (the broker acks
// one it holds already; a crash between the key file and the outbox loses nothing).
Result<std::optional<schema::SignedPrekey>> RotatePrekeyIfDue(const AgentConfig& c,
                                                              keys::Identity& id,
                                                              const keys::SecretBuffer* pass,
                                                              bool at_start) {
  const UnixMillis now = Now();
  const keys::PrekeyEntry* newest = NewestOwnPrekey(id);
  if (newest != nullptr && now - newest->signed_prekey.prekey.not_before_ms <
                               static_cast<UnixMillis>(c.prekey_rotate_ms)) {
    if (!at_start) return std::optional<schema::SignedPrekey>();
    return std::optional<schema::SignedPrekey>(newest->signed_prekey);
  }
  REFBUS_ASSIGN_OR_RETURN(schema::SignedPrekey sp,
                          id.AddPrekey(now, now + static_cast<UnixMillis>(c.prekey_lifetime_ms)));
  REFBUS_RETURN_IF_ERROR(keys::SaveIdentity(id, c.key_file, pass));
  spdlog::info("agent {}: made prekey {} (valid until {})", c.id,
               keys::Fingerprint(keys::KeyId(keys::KeyUse::kPrekey, sp.prekey.public_key)),
               FormatUtc(sp.prekey.not_after_ms));
  return std::optional<schema::SignedPrekey>(std::move(sp));
}

// Forward secrecy without an operator: prekeys rotate when due (and are published through
// the home broker), and prekey secrets and retired key files past their window are wiped
// (keys/key_upkeep.h), each with a log line. At start and then at a quarter of the rotation
// period (at most every hour): returns when to run it next.
std::chrono::steady_clock::time_point UpkeepKeys(const AgentConfig& c, Engine& engine,
                                                 bool at_start) {
  std::optional<schema::SignedPrekey> publish;
  Status s = engine.UpdateKeys([&](keys::Identity& id) -> Status {
    std::optional<keys::SecretBuffer> pass;
    if (!c.passphrase_file.empty()) {
      REFBUS_ASSIGN_OR_RETURN(auto pf, keys::ReadPassphraseFile(c.passphrase_file));
      pass = std::move(pf);
    }
    REFBUS_ASSIGN_OR_RETURN(publish, RotatePrekeyIfDue(c, id, pass ? &*pass : nullptr, at_start));
    keys::KeyUpkeepRequest req;
    req.key_path = c.key_file;
    req.retired_dir = (std::filesystem::path(c.key_file).parent_path() / "retired").string();
    req.passphrase = pass ? &*pass : nullptr;
    req.now = Now();
    req.keep_after_expiry_ms = static_cast<UnixMillis>(c.prekey_keep_after_expiry_ms);
    REFBUS_ASSIGN_OR_RETURN(auto lines, keys::WipeExpiredKeys(id, req));
    for (const auto& line : lines) spdlog::info("agent {}: {}", c.id, line);
    return Status::Ok();
  });
  if (!s.ok()) spdlog::error("agent {}: key upkeep failed: {}", c.id, s.ToString());
  if (publish) {
    Status p = engine.PublishPrekey(*publish);
    if (p.ok()) {
      spdlog::info(
          "agent {}: published prekey {} through the home broker (queued until acked)", c.id,
          keys::Fingerprint(keys::KeyId(keys::KeyUse::kPrekey, publish->prekey.public_key)));
    } else {
      spdlog::error("agent {}: the prekey was not queued for publication: {}", c.id, p.ToString());
    }
  }
  const auto period =
      std::min<uint64_t>(3600 * 1000, std::max<uint64_t>(100, c.prekey_rotate_ms / 4));
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(period);
}

// SIGHUP: prekeys another process added to the key file (refbus-keys party rotate-prekey).
void ReadKeysAgain(Engine& engine) {
  if (Status s = engine.ReloadKeys(); !s.ok()) {
    spdlog::error("agent: the key file was not read again: {}", s.ToString());
  }
}

Result<Party> LoadParty(const AgentConfig& c) {
  Party p;
  REFBUS_ASSIGN_OR_RETURN(keys::Identity id, LoadKeys(c));
  p.signing_key = id.signing_public_key();
  p.transport_key = id.transport_public_key();
  p.identity = std::make_unique<keys::Identity>(std::move(id));
  REFBUS_ASSIGN_OR_RETURN(p.anchor, keys::LoadTrustAnchor(c.anchor));
  REFBUS_ASSIGN_OR_RETURN(keys::TrustState ts, keys::TrustState::Open(c.trust_state));
  p.trust = std::make_unique<keys::TrustState>(std::move(ts));
  REFBUS_ASSIGN_OR_RETURN(auto v,
                          keys::LoadAndAcceptDirectory(c.directory, p.anchor, *p.trust, Now()));
  if (v.in_grace) {
    spdlog::error("directory serial {} has EXPIRED and is in its grace period: install a new one",
                  v.signed_directory.directory.serial);
  }
  REFBUS_RETURN_IF_ERROR(
      CheckListed(c, p.signing_key, p.transport_key, v.signed_directory.directory));
  p.directory = std::move(v.signed_directory);
  return p;
}

// GET /v1/deletion-work/overdue/{as_of_ms}: a time in Unix milliseconds.
Result<Json> WorkQuery(const std::string& as_of_ms) {
  if (as_of_ms.empty() || as_of_ms.size() > 16 ||
      !std::all_of(as_of_ms.begin(), as_of_ms.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgument("the time is Unix milliseconds (1 to 16 digits)");
  }
  return Json{{"overdue", true}, {"as_of_ms", std::stoull(as_of_ms)}};
}

// The local API over the Engine. Runs on the loop thread (CommandQueue).
class EngineHandler final : public CommandHandler {
 public:
  // Publishes the operator roster before any command can run (RosterWatch).
  EngineHandler(Engine& engine, const AgentConfig& config) : engine_(engine), roster_(config) {
    roster_.Check(engine_);
  }
  // The daemon's loop, every 2 s: operators.json changed by `refbus-agent operator`.
  void CheckRoster() { roster_.Check(engine_); }

  Result<Json> Handle(const ApiRequest& r) override {
    // An operator acts only after the roster naming them is queued ahead of what they do.
    if (r.operator_key) roster_.Check(engine_);
    ActingOperator acting(engine_, r.operator_key);
    switch (r.route) {
      case Route::kRecordConsent:
        return RecordConsent(r);
      case Route::kOverrides:
        return overrides_.List(Now());
      case Route::kApproveOverride:
        if (!r.operator_key) {
          return PermissionDenied(
              "a supervisor approves an override with their own login, "
              "not with the API token");
        }
        return overrides_.Approve(engine_, *r.operator_key, r.id, Now());
      case Route::kConsents:
        return engine_.Consents();
      case Route::kSendReferral:
        return engine_.SendReferral(r.body);
      case Route::kReferrals:
        return engine_.Referrals();
      case Route::kChangeState:
        return engine_.ChangeState(r.id, r.body);
      case Route::kInbox:
        return engine_.Inbox();
      case Route::kOpen:
        return engine_.Open(r.id, r.body);
      case Route::kHandoff:
        return engine_.Handoff(r.body);
      case Route::kAckHandoff:
        return engine_.AckHandoff(r.id, r.body);
      case Route::kRequestDeletion:
        return engine_.RequestDeletion(r.body);
      case Route::kDeletions:
        return engine_.Deletions();
      case Route::kReportDeletionStatus:
        return engine_.ReportDeletionStatus(r.id, r.body);
      case Route::kExportDeletionItems:
        return engine_.ExportDeletionItems(r.id, r.body);
      case Route::kDeletionItem:
        return engine_.DeletionItemHistory(r.id, r.item);
      case Route::kDeletion:
        return engine_.DeletionSummary(r.id);
      case Route::kDeletionWork:
        return engine_.DeletionWork(Json::object());
      case Route::kDeletionWorkOverdue:
        return engine_.DeletionWork(Json{{"overdue", true}});
      case Route::kDeletionWorkDueBy: {
        REFBUS_ASSIGN_OR_RETURN(Json q, WorkQuery(r.id));
        return engine_.DeletionWork(q);
      }
      case Route::kDeletionWorkStatus:
        return engine_.SetDeletionWorkStatus(r.id, r.body);
      case Route::kTakedownNotice:
        return engine_.RecordTakedownNotice(r.id, r.body);
      case Route::kPublishWatchList:
        return engine_.PublishWatchList(r.body);
      case Route::kImportWatchList:
        return engine_.ImportWatchList(r.body);
      case Route::kDeletionStats:
        return engine_.DeletionStats(r.id);
      case Route::kAddLink:
      case Route::kCaseLinks:
      case Route::kLinks:
      case Route::kLinkageMatches:
      case Route::kLinkageTally:
      case Route::kLinkageBundle:
      case Route::kLinkageSend:
      case Route::kLinkageTallies:
        return HandleLinkage(r);
      case Route::kRevokeConsent:
        return engine_.RevokeConsent(r.id, r.body);
      case Route::kCloseCase:
        return engine_.CloseCase(r.id, r.body);
      case Route::kSetLocalCase:
        return engine_.SetLocalCase(r.id, r.body);
      case Route::kCase:
        return engine_.Case(r.id);
      case Route::kReadCase:
        return engine_.ReadCase(r.id, r.body);
      case Route::kStatus:
        return engine_.GetStatus();
      case Route::kDirectory:
        return engine_.Agencies();
      case Route::kReady: {
        REFBUS_ASSIGN_OR_RETURN(Json status, engine_.GetStatus());
        bool ready = status.is_object() && status.value("session_ready", false);
        return Json{{"ready", ready}};
      }
      case Route::kHealth:
      case Route::kLogin:
      case Route::kLogout:
      case Route::kSession:
        break;  // answered by the server
    }
    return Internal("no handler for this route");
  }

 private:
  // The linkage routes (PROTOCOL.md 13.6-13.8).
  Result<Json> HandleLinkage(const ApiRequest& r) {
    switch (r.route) {
      case Route::kAddLink:
        return engine_.AddLink(r.id, r.body);
      case Route::kCaseLinks:
        return engine_.Links(r.id);
      case Route::kLinks:
        return engine_.Links("");
      case Route::kLinkageMatches:
        return engine_.LinkageMatches();
      case Route::kLinkageTally:
        return engine_.RecordTally(r.id, r.body);
      case Route::kLinkageBundle:
        return engine_.LinkageBundle(r.id, r.body);
      case Route::kLinkageSend:
        return engine_.SendTally(r.id, r.body);
      case Route::kLinkageTallies:
        return engine_.LinkageTallies(r.id);
      default:
        return Internal("not a linkage route");
    }
  }

  // An operator's emergency override waits for a supervisor (agent/overrides.h); the
  // service account's keeps the countersigner key file of operator-keys/.
  Result<Json> RecordConsent(const ApiRequest& r) {
    if (!r.operator_key) return engine_.RecordConsent(r.body);
    REFBUS_ASSIGN_OR_RETURN(schema::SignedConsentGrant grant, engine_.PrepareConsent(r.body));
    if (!keys::IsEmergencyOverride(grant.grant)) {
      // The recording operator countersigns the grant bytes as an override's requester
      // does (label consent-countersign): "NAME (recorded)" (PROTOCOL.md 9.2).
      const OperatorKey& op = *r.operator_key;
      grant.countersignatures.push_back(
          {op.name() + " (recorded)", op.public_key(),
           op.Sign(keys::kLabelConsentCountersign, grant.grant_bytes)});
      return engine_.CommitConsent(r.body, grant);
    }
    return overrides_.Request(*r.operator_key, r.body, std::move(grant), Now());
  }

  Engine& engine_;
  RosterWatch roster_;
  OverrideDesk overrides_;
};

// A new directory (on SIGHUP, or its file changed): verified, checked to still list this
// agency with its keys, and handed to the engine; a refused one is logged and the current
// one kept.
void ReloadDirectory(const AgentConfig& config, Party& party, Engine& engine) {
  auto v = keys::LoadAndAcceptDirectory(config.directory, party.anchor, *party.trust, Now());
  Status s = v.ok() ? CheckListed(config, party.signing_key, party.transport_key,
                                  v->signed_directory.directory)
                    : v.status();
  if (s.ok()) s = engine.UpdateDirectory(v->signed_directory);
  if (s.ok()) {
    spdlog::info("agent: directory serial {} loaded", v->signed_directory.directory.serial);
  } else {
    spdlog::error("agent: the new directory was refused, keeping the current one: {}",
                  s.ToString());
  }
}

// The metrics and health listener over the loop's status snapshots; none (nullptr) when
// no [metrics] bind is configured.
Result<std::unique_ptr<ProbeServer>> StartMetrics(const AgentConfig& config,
                                                  std::function<AgentStatus()> snapshot) {
  if (config.metrics_bind.empty()) return std::unique_ptr<ProbeServer>();
  ProbeHandlers h;
  h.metrics = [snapshot] { return FormatAgentMetrics(snapshot(), Now()); };
  h.health = [snapshot] { return CheckAgentHealth(snapshot(), Now()); };
  h.ready = [snapshot] { return CheckAgentReady(snapshot(), Now()); };
  return ProbeServer::Start({config.metrics_bind, config.metrics_url_file, "agent"}, h);
}

EngineOptions EngineOptionsOf(const AgentConfig& config) {
  EngineOptions eo;
  eo.data_dir = config.data_dir;
  eo.broker_endpoint = config.broker_endpoint;
  eo.grant_key_dir = config.grant_key_dir;
  eo.reload_keys = [&config] { return LoadKeys(config); };
  eo.deletion_chunk_timeout_ms = static_cast<int64_t>(config.deletion_chunk_timeout_ms);
  eo.test_skip_deletion_chunk = config.deletion_test_skip_chunk;
  eo.test_skip_watch_part = config.deletion_test_skip_watch_part;
  eo.deletion_overdue_days = static_cast<int64_t>(config.deletion_overdue_days);
  eo.linkage.first = {config.linkage_first, config.linkage_first_endpoint};
  eo.linkage.second = {config.linkage_second, config.linkage_second_endpoint};
  eo.linkage.timeout_ms = static_cast<int>(config.linkage_timeout_ms);
  eo.escrow_threshold = static_cast<uint32_t>(config.linkage_threshold);
  eo.linkage_escrow = config.linkage_escrow;
  return eo;
}

ApiOptions ApiOptionsOf(const AgentConfig& config) {
  ApiOptions ao;
  ao.listen = config.api_listen;
  ao.token_file = config.api_token_file;
  ao.url_file = config.api_url_file;
  ao.command_timeout = std::chrono::milliseconds(config.api_command_timeout_ms);
  ao.allowed_hosts = config.api_allowed_hosts;
  ao.operators_file = OperatorStorePath(config.data_dir);
  ao.tls_cert = config.console_tls_cert;
  ao.tls_key = config.console_tls_key;
  ao.sessions.idle_timeout = std::chrono::milliseconds(config.api_session_idle_timeout_ms);
  ao.sessions.lockout_after = static_cast<int>(config.api_lockout_after);
  ao.sessions.lockout_for = std::chrono::milliseconds(config.api_lockout_ms);
  return ao;
}

}  // namespace

Status RunDaemon(const AgentConfig& config, const DaemonSignals& signals) {
  auto party = LoadParty(config);
  if (!party.ok()) return party.status().WithContext("cannot start");
  if (!PathExists(config.data_dir)) {
    REFBUS_RETURN_IF_ERROR(MakeDirectories(config.data_dir, 0700).WithContext("cannot start"));
  }
  // The token file is checked (or created) before the broker session starts, so that a
  // file others may read stops the start with its chmod fix and nothing else done.
  if (auto token = LoadOrCreateApiToken(config.api_token_file); !token.ok()) {
    return token.status().WithContext("cannot start");
  }
  auto engine =
      Engine::Create(std::move(*party->identity), party->directory, EngineOptionsOf(config));
  if (!engine.ok()) return engine.status().WithContext("cannot start");

  CommandQueue queue;
  EngineHandler handler(**engine, config);
  auto api = ApiServer::Start(ApiOptionsOf(config), queue, handler);
  if (!api.ok()) {
    (*engine)->Shutdown(0);
    return api.status().WithContext("cannot start");
  }
  spdlog::info("agent {}: running; local API at {} (token in {}, URL in {})", config.id,
               (*api)->url(), config.api_token_file, config.api_url_file);

  // Metrics and health: the loop refreshes the status every second; the listener's threads
  // only copy it (the engine is the loop's alone).
  StatusBoard status;
  status.Update([&](AgentStatus& st) {
    st.agency_id = config.id;
    st.started_ms = Now();
  });
  auto snapshot = [&status] { return status.Get(); };
  auto metrics = StartMetrics(config, snapshot);
  if (!metrics.ok()) {
    (*api)->Stop();
    (*engine)->Shutdown(0);
    return metrics.status().WithContext("cannot start");
  }
  auto refresh_status = [&](bool running) {
    auto snap = (*engine)->Snapshot();
    if (!snap.ok()) spdlog::warn("agent: metrics not refreshed: {}", snap.status().message());
    status.Update([&](AgentStatus& st) {
      st.time_ms = Now();
      st.running = running;
      if (snap.ok()) st.engine = std::move(*snap);
    });
  };
  auto next_status = std::chrono::steady_clock::now();

  auto next_upkeep = UpkeepKeys(config, **engine, /*at_start=*/true);
  int64_t directory_mtime = MtimeNs(config.directory);
  auto next_directory_check = std::chrono::steady_clock::now();
  auto next_retention = std::chrono::steady_clock::now();
  Status last_error;
  while (*signals.stop == 0) {
    if (Status s = (*engine)->Poll(10); !s.ok() && s.message() != last_error.message()) {
      spdlog::error("agent: {}", s.ToString());  // said once; the engine retries
      last_error = s;
    }
    queue.RunPending();

    // A new directory: on SIGHUP, or when the file changes (checked every 2 s).
    auto now = std::chrono::steady_clock::now();
    if (now >= next_upkeep) next_upkeep = UpkeepKeys(config, **engine, false);
    if (now >= next_status) {
      next_status = now + std::chrono::seconds(1);
      refresh_status(true);
    }
    if (now >= next_retention) {
      next_retention = now + std::chrono::seconds(2);
      handler.CheckRoster();
      if (Status s = (*engine)->EnforceRetention(); !s.ok()) {
        spdlog::error("agent: enforcing retention failed: {}", s.ToString());
      }
    }
    bool forced = signals.reload != nullptr && *signals.reload != 0;
    if (forced || now >= next_directory_check) {
      next_directory_check = now + std::chrono::seconds(2);
      int64_t mtime = MtimeNs(config.directory);
      if (forced || mtime != directory_mtime) {
        directory_mtime = mtime;
        ReloadDirectory(config, *party, **engine);
      }
      if (forced) {
        ReadKeysAgain(**engine);
        *signals.reload = 0;
      }
    }
  }
  spdlog::info("agent {}: stopping", config.id);
  refresh_status(false);  // health and readiness say "stopping" until the listener closes
  if (*metrics) (*metrics)->Stop();
  (*api)->Stop();
  (*engine)->Shutdown(2000);
  spdlog::info("agent {}: stopped cleanly", config.id);
  return Status::Ok();
}

}  // namespace refbus::agent
