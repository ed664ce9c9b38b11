// refbus-agent: an agency's agent. The daemon, the command-line client of its local API,
// and the send/receive harness that integration tests and benchmarks use.
//
//   refbus-agent run -c agent.toml   the daemon: keys, stores, the session with the home
//                                    broker, the workflows, and the local HTTP API
//                                    (agent/daemon.h, agent/API.md)
//   refbus-agent backup -c agent.toml --out DIR
//   refbus-agent restore -c agent.toml --from DIR
//                                    a hot copy of the daemon's stores with a manifest, and
//                                    its checked restore into an empty data_dir
//                                    (agent/backup.h)
//   refbus-agent consent | consents | send-referral | inbox | open | accept | decline |
//                state | referrals | handoff | ack-handoff | request-deletion |
//                deletion-status | deletions | revoke-consent | close | set-local-case |
//                case | status
//                                    commands for people, each one call to the daemon's API
//                                    (--json prints the reply as it came)
//   refbus-agent send    seals N random envelopes to agencies and submits them; appends
//                        each id the broker acknowledged to --acked-log
//   refbus-agent receive stores deliveries; appends each new message id, exactly once
//                        across restarts, to --received-log
//
// send and receive survive broker restarts (they keep reconnecting until --timeout), and
// stop cleanly on SIGTERM or SIGINT: what was committed stays committed, unacknowledged
// submissions stay in the outbox in --data for the next run. Their output: a summary of
// "key: value" lines on stdout; logs (ids, counts, codes; never content) on stderr.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "agent/api.h"
#include "agent/backup.h"
#include "agent/client.h"
#include "agent/daemon.h"
#include "agent/store.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/log.h"
#include "core/table.h"
#include "keys/ceremony.h"
#include "keys/directory.h"
#include "keys/envelope.h"
#include "keys/keyfile.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "schema/workflow.h"

namespace {

using namespace refbus;  // NOLINT(google-build-using-namespace)
using SteadyClock = std::chrono::steady_clock;

constexpr char kFooter[] = R"(
Signals: SIGTERM/SIGINT stop cleanly (send: stop sending, wait up to 2 s for answers to what
is in flight; receive: store and acknowledge what has arrived), then exit 0. Unanswered
envelopes stay in the outbox in --data and are resubmitted by the next run.
Exit codes: 0 done (send: every envelope acknowledged or refused for good; receive: --expect
reached, or idle without --expect), 1 error or --timeout, 2 usage error.)";

constexpr char kRunFooter[] = R"(
Signals: SIGTERM/SIGINT stop cleanly (requests still waiting are answered 503; the engine
waits up to 2 s for answers to what is in flight), then exit 0. SIGHUP reloads the directory
(it is also reloaded when its file changes).
Exit codes: 0 clean stop, 1 configuration or start-up error, 2 usage error, 3 runtime
failure.)";

volatile std::sig_atomic_t g_stop = 0;

void OnSignal(int) { g_stop = 1; }

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: the poll wait returns at once (EINTR)
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

UnixMillis Now() { return SystemClock::Get().NowMillis(); }

// strerror is not thread-safe; libzmq runs threads of its own in this process.
std::string ErrnoText(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof(buf));  // GNU strerror_r: returns the text
}

int Fail(std::string_view command, const Status& s) {
  std::cerr << "refbus-agent " << command << ": " << s.ToString() << "\n";
  return 1;
}

struct CommonOptions {
  std::string party_dir;
  std::string data_dir;
  std::string endpoint;
  std::string passphrase_file;
  size_t map_size_mb = 1024;
  int timeout_s = 120;
  int submit_timeout_ms = 3000;
};

struct Party {
  keys::Identity identity;
  schema::Directory directory;
};

Result<Party> LoadParty(const CommonOptions& o, UnixMillis now) {
  std::optional<keys::SecretBuffer> passphrase;
  if (!o.passphrase_file.empty()) {
    REFBUS_ASSIGN_OR_RETURN(passphrase, keys::ReadPassphraseFile(o.passphrase_file));
  }
  REFBUS_ASSIGN_OR_RETURN(keys::Identity identity,
                          keys::LoadIdentity(keys::JoinPath(o.party_dir, keys::kIdentityFile),
                                             passphrase ? &*passphrase : nullptr));
  auto verified = keys::AcceptDirectoryInFolder(o.party_dir, "", now);
  if (!verified.ok()) return verified.status().WithContext("directory in " + o.party_dir);
  if (verified->in_grace) {
    spdlog::warn(
        "the directory (serial {}) has EXPIRED and is accepted only within the grace period: "
        "ask the authority for a new one",
        verified->signed_directory.directory.serial);
  }
  return Party{std::move(identity), std::move(verified->signed_directory.directory)};
}

// An append-only file of lines (message ids in hex). Each line is one write(2) on an
// O_APPEND descriptor, so a process killed at any moment leaves whole lines only; a torn
// last line (power loss) is cut off when the file is opened again.
class LineLog {
 public:
  static Result<LineLog> Open(const std::string& path, std::set<std::string>* existing) {
    if (path.empty()) return LineLog(-1);
    if (PathExists(path)) {
      REFBUS_ASSIGN_OR_RETURN(Bytes content, ReadFile(path, size_t{1} << 30));
      size_t keep = content.size();
      while (keep > 0 && content[keep - 1] != '\n') --keep;
      if (keep != content.size() && ::truncate(path.c_str(), static_cast<off_t>(keep)) != 0) {
        return IoError("cannot cut the torn last line of " + path + ": " + ErrnoText(errno));
      }
      if (existing != nullptr) {
        std::string_view text = AsChars(ByteView(content).first(keep));
        while (!text.empty()) {
          size_t nl = text.find('\n');
          std::string_view line = text.substr(0, nl);
          if (!line.empty()) existing->emplace(line);
          text.remove_prefix(nl + 1);
        }
      }
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return IoError("cannot open " + path + ": " + ErrnoText(errno));
    return LineLog(fd);
  }

  LineLog(LineLog&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  LineLog& operator=(LineLog&&) = delete;
  LineLog(const LineLog&) = delete;
  LineLog& operator=(const LineLog&) = delete;
  ~LineLog() {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(std::string_view line) {
    if (fd_ < 0) return Status::Ok();
    std::string buf(line);
    buf.push_back('\n');
    size_t done = 0;
    while (done < buf.size()) {
      ssize_t n = ::write(fd_, buf.data() + done, buf.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return IoError(std::string("cannot append to the log: ") + ErrnoText(errno));
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

 private:
  explicit LineLog(int fd) : fd_(fd) {}
  int fd_;
};

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

double Seconds(SteadyClock::time_point since) {
  return std::chrono::duration<double>(SteadyClock::now() - since).count();
}

agent::ClientOptions ClientOptionsFrom(const CommonOptions& o, size_t window) {
  agent::ClientOptions co;
  co.window = window;
  co.submit_timeout_ms = o.submit_timeout_ms;
  return co;
}

// ---------------------------------------------------------------- send

struct SendOptions {
  std::string to;
  uint64_t count = 0;
  size_t size = 1024;
  size_t window = 64;
  std::string acked_log;
};

int RunSend(const CommonOptions& o, const SendOptions& so) {
  constexpr std::string_view kCmd = "send";
  auto started = SteadyClock::now();
  auto party = LoadParty(o, Now());
  if (!party.ok()) return Fail(kCmd, party.status());
  std::vector<keys::RecipientPrekey> recipients;
  for (const auto& id : SplitCommas(so.to)) {
    auto pk = keys::CurrentPrekey(party->directory, id, Now());
    if (!pk.ok()) return Fail(kCmd, pk.status());
    recipients.push_back(std::move(pk).value());
  }
  if (recipients.empty()) return Fail(kCmd, InvalidArgument("--to names no agency"));
  if (so.window == 0) return Fail(kCmd, InvalidArgument("--window must be at least 1"));

  auto store = agent::AgentStore::Open(o.data_dir, {o.map_size_mb << 20});
  if (!store.ok()) return Fail(kCmd, store.status());
  auto log = LineLog::Open(so.acked_log, nullptr);
  if (!log.ok()) return Fail(kCmd, log.status());
  agent::Client client(party->identity, party->directory, o.endpoint, **store,
                       ClientOptionsFrom(o, so.window));
  if (Status s = client.Start(); !s.ok()) return Fail(kCmd, s);

  uint64_t sealed = 0, acked = 0, acked_duplicate = 0, refused = 0;
  std::map<std::string, uint64_t> refused_by_reason;
  const size_t keep_queued = 2 * so.window;  // sealed ahead of the window, no more
  auto deadline = started + std::chrono::seconds(o.timeout_s);
  bool timed_out = false;
  Status last_error;
  auto take_events = [&]() -> Status {
    for (auto& ev : client.TakeEvents()) {
      if (ev.type == agent::ClientEvent::Type::kAcked) {
        ++acked;
        if (ev.duplicate) ++acked_duplicate;
        REFBUS_RETURN_IF_ERROR(log->Append(HexEncode(ev.message_id)));
      } else if (ev.type == agent::ClientEvent::Type::kRefused) {
        ++refused;
        ++refused_by_reason[std::string(schema::Name(ev.reason))];
      }
    }
    return Status::Ok();
  };

  while (g_stop == 0) {
    // Seal lazily: a large --count never sits in memory, only what the window needs next.
    while (sealed < so.count && client.unsent() < keep_queued) {
      uint64_t n = std::min<uint64_t>({so.count - sealed, keep_queued - client.unsent(), 256});
      std::vector<Bytes> batch;
      batch.reserve(n);
      UnixMillis now = Now();
      for (uint64_t i = 0; i < n; ++i) {
        keys::SealRequest req;
        req.kind = schema::MessageKind::kOpaque;
        req.recipients = recipients;
        req.case_ref = "bench-case-" + std::to_string(100000 + ((sealed + i + 1) % 900000));
        req.now = now;
        keys::Plaintext content(so.size);
        randombytes_buf(content.data(), content.size());
        auto env = keys::SealEnvelope(party->identity, req, content.view());
        if (!env.ok()) return Fail(kCmd, env.status());
        batch.push_back(std::move(env).value());
      }
      auto ids = client.SubmitBatch(std::move(batch));
      if (!ids.ok()) return Fail(kCmd, ids.status());
      sealed += n;
    }

    if (Status s = client.Poll(100); !s.ok() && s.message() != last_error.message()) {
      // Local trouble (a full disk, say) is retried by the client; say it once.
      spdlog::error("send: {}", s.ToString());
      last_error = s;
    }
    if (Status s = take_events(); !s.ok()) return Fail(kCmd, s);
    if (sealed >= so.count && client.outstanding() == 0) break;
    if (SteadyClock::now() >= deadline) {
      timed_out = true;
      break;
    }
  }
  if (g_stop != 0) {
    // Stop sending, and give what is in flight a moment to be answered, so that the
    // broker's acks are recorded now rather than come back as duplicates next run.
    client.PauseSubmissions(true);
    auto drain_until = SteadyClock::now() + std::chrono::seconds(2);
    while (client.in_flight() > 0 && SteadyClock::now() < drain_until) {
      (void)client.Poll(50);
      if (Status s = take_events(); !s.ok()) return Fail(kCmd, s);
    }
  }
  client.Close(0);

  const auto& c = client.counters();
  double secs = Seconds(started);
  std::cout << "sealed: " << sealed << "\n"
            << "recovered from outbox: " << c.recovered << "\n"
            << "acked: " << acked << "\n"
            << "acked duplicate: " << acked_duplicate << "\n"
            << "refused: " << refused << "\n";
  for (const auto& [reason, n] : refused_by_reason) {
    std::cout << "refused " << reason << ": " << n << "\n";
  }
  std::cout << "resent: " << c.resent << "\n"
            << "backpressure: " << c.backpressure << "\n"
            << "sessions: " << c.sessions << "\n"
            << "unacknowledged: " << client.outstanding() << "\n"
            << "elapsed s: " << secs << "\n"
            << "acked per s: " << (secs > 0 ? static_cast<double>(acked) / secs : 0.0) << "\n";
  if (g_stop != 0) {
    std::cerr << "refbus-agent send: stopped by signal; " << client.outstanding()
              << " unacknowledged envelopes stay in the outbox in " << o.data_dir
              << " and are resubmitted by the next run\n";
    return 0;
  }
  if (timed_out) {
    std::cerr << "refbus-agent send: timed out after " << o.timeout_s << " s: " << acked
              << " acknowledged, " << refused << " refused, " << client.outstanding()
              << " still unacknowledged (kept in the outbox in " << o.data_dir
              << "; is the broker at " << o.endpoint << " running?)\n";
    return 1;
  }
  return 0;
}

// ---------------------------------------------------------------- receive

struct ReceiveOptions {
  uint64_t expect = 0;  // 0: no target
  std::string received_log;
  int idle_exit_s = 0;  // 0: never
};

// Appends inbox records the application has not finished with (after a crash) to the log,
// skipping ids the log already holds, and moves the application cursor past them.
Status CatchUp(agent::AgentStore& store, LineLog& log, std::set<std::string>& logged,
               uint64_t* appended) {
  REFBUS_ASSIGN_OR_RETURN(agent::StoreCounters c, store.Counters());
  uint64_t cursor = c.app_cursor;
  while (true) {
    REFBUS_ASSIGN_OR_RETURN(auto records, store.ReadInbox(cursor, 512));
    if (records.empty()) return Status::Ok();
    for (const auto& r : records) {
      std::string hex = HexEncode(r.message_id);
      if (logged.insert(hex).second) {
        REFBUS_RETURN_IF_ERROR(log.Append(hex));
        ++*appended;
      }
      cursor = r.sequence;
    }
    REFBUS_RETURN_IF_ERROR(store.SetAppCursor(cursor));
  }
}

int RunReceive(const CommonOptions& o, const ReceiveOptions& ro) {
  constexpr std::string_view kCmd = "receive";
  auto started = SteadyClock::now();
  auto party = LoadParty(o, Now());
  if (!party.ok()) return Fail(kCmd, party.status());
  auto store = agent::AgentStore::Open(o.data_dir, {o.map_size_mb << 20});
  if (!store.ok()) return Fail(kCmd, store.status());
  std::set<std::string> logged;
  auto log = LineLog::Open(ro.received_log, &logged);
  if (!log.ok()) return Fail(kCmd, log.status());

  uint64_t caught_up = 0;
  if (Status s = CatchUp(**store, *log, logged, &caught_up); !s.ok()) return Fail(kCmd, s);
  auto counters = (*store)->Counters();
  if (!counters.ok()) return Fail(kCmd, counters.status());
  const uint64_t initial = counters->inbox_messages;
  if (caught_up > 0) {
    spdlog::info("receive: {} stored messages were not yet in the log; appended", caught_up);
  }

  agent::Client client(party->identity, party->directory, o.endpoint, **store,
                       ClientOptionsFrom(o, 64));
  uint64_t received = 0;  // new this run
  bool timed_out = false, idle = false;
  auto deadline = started + std::chrono::seconds(o.timeout_s);
  auto last_activity = SteadyClock::now();
  Status last_error;
  auto reached = [&] { return ro.expect > 0 && initial + received >= ro.expect; };

  if (!reached()) {
    if (Status s = client.Start(); !s.ok()) return Fail(kCmd, s);
    // New messages go to the log first, then the cursor moves past them: a crash in
    // between is repaired by CatchUp on the next start (the log is checked for each id).
    auto take_events = [&]() -> Status {
      uint64_t cursor = 0;
      for (auto& ev : client.TakeEvents()) {
        if (ev.type != agent::ClientEvent::Type::kDelivered) continue;
        ++received;
        std::string hex = HexEncode(ev.message_id);
        if (logged.insert(hex).second) REFBUS_RETURN_IF_ERROR(log->Append(hex));
        cursor = std::max(cursor, ev.inbox_sequence);
      }
      if (cursor > 0) REFBUS_RETURN_IF_ERROR((*store)->SetAppCursor(cursor));
      return Status::Ok();
    };
    uint64_t seen = 0;
    while (g_stop == 0) {
      if (Status s = client.Poll(100); !s.ok() && s.message() != last_error.message()) {
        spdlog::error("receive: {}", s.ToString());
        last_error = s;
      }
      if (Status s = take_events(); !s.ok()) return Fail(kCmd, s);
      const auto& c = client.counters();
      if (c.delivered + c.duplicate_deliveries != seen) {
        seen = c.delivered + c.duplicate_deliveries;
        last_activity = SteadyClock::now();
      }
      if (reached()) break;
      if (ro.idle_exit_s > 0 &&
          SteadyClock::now() - last_activity >= std::chrono::seconds(ro.idle_exit_s)) {
        idle = true;
        break;
      }
      if (SteadyClock::now() >= deadline) {
        timed_out = true;
        break;
      }
    }
    if (g_stop != 0) {
      // Store and acknowledge what has already arrived; the rest is redelivered later.
      (void)client.Poll(0);
      if (Status s = take_events(); !s.ok()) return Fail(kCmd, s);
    }
    // The last acks are queued in the socket: give them a moment to leave.
    client.Close(500);
  }

  const auto& c = client.counters();
  auto all = (*store)->Counters();
  std::cout << "received: " << received << "\n"
            << "inbox total: " << (all.ok() ? all->inbox_messages : initial + received) << "\n"
            << "duplicates: " << c.duplicate_deliveries << "\n"
            << "duplicates all runs: " << (all.ok() ? all->duplicate_deliveries : 0) << "\n"
            << "malformed: " << c.malformed_deliveries << "\n"
            << "commits: " << c.delivery_commits << "\n"
            << "sessions: " << c.sessions << "\n"
            << "elapsed s: " << Seconds(started) << "\n";
  if (g_stop != 0) return 0;
  if (timed_out) {
    std::cerr << "refbus-agent receive: timed out after " << o.timeout_s << " s with "
              << initial + received << " of " << ro.expect << " messages\n";
    return 1;
  }
  if (idle && ro.expect > 0 && !reached()) {
    std::cerr << "refbus-agent receive: idle for " << ro.idle_exit_s << " s with "
              << initial + received << " of " << ro.expect << " messages\n";
    return 1;
  }
  return 0;
}

void AddCommon(CLI::App* cmd, CommonOptions& o) {
  cmd->add_option("--dir", o.party_dir, "party folder (identity.key, authority.pub, directory)")
      ->required();
  cmd->add_option("--data", o.data_dir, "agent data directory (LMDB outbox and inbox)")->required();
  cmd->add_option("--broker-endpoint", o.endpoint,
                  "home broker endpoint, e.g. tcp://127.0.0.1:7001")
      ->required();
  cmd->add_option("--passphrase-file", o.passphrase_file, "passphrase of identity.key (0600 file)");
  cmd->add_option("--timeout", o.timeout_s, "give up after this many seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--map-size-mb", o.map_size_mb, "largest size of the LMDB store")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--submit-timeout-ms", o.submit_timeout_ms,
                  "resend a submission not answered within this")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

// ---------------------------------------------------------------- run (the daemon)

volatile std::sig_atomic_t g_reload = 0;

void OnReload(int) { g_reload = 1; }

int RunDaemonCommand(const std::string& config_path, bool check_only) {
  auto config = agent::LoadAgentConfig(config_path);
  if (!config.ok()) {
    std::cerr << "refbus-agent run: " << config.status().message() << "\n";
    return 1;
  }
  if (check_only) {
    std::cout << "configuration " << config_path << " is valid\n";
    return 0;
  }
  struct sigaction sa {};
  sa.sa_handler = OnReload;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGHUP, &sa, nullptr);
  Status s = agent::RunDaemon(*config, {&g_stop, &g_reload});
  if (!s.ok()) {
    std::cerr << "refbus-agent run: " << s.ToString() << "\n";
    return s.message().rfind("cannot start", 0) == 0 ? 1 : 3;
  }
  return 0;
}

// ---------------------------------------------------------------- backup, restore

constexpr char kBackupFooter[] = R"(
Run as the user the agent runs as (or root). backup works beside a running daemon: each of
the two stores (cases, transport) is copied as one consistent snapshot. It holds sealed
envelopes and case records, never key files, operator-keys/ or the API token. restore needs
data_dir/transport and data_dir/cases absent or empty with no daemon running, and checks the
backup (each file's SHA-256, the stores' start-up checks, the inbox and outbox counts)
before anything is put in place.
Exit codes: 0 done, 1 refused (configuration, folder not empty, daemon running, a check
failed; nothing was changed), 2 usage error, 3 failed (I/O error, disk full).)";

int BackupExitCode(const Status& s) {
  return s.code() == Status::Code::kIoError || s.code() == Status::Code::kResourceExhausted ||
                 s.code() == Status::Code::kInternal
             ? 3
             : 1;
}

int RunBackupCommand(bool backup, const std::string& config_path, const std::string& dir) {
  const std::string who = std::string("refbus-agent ") + (backup ? "backup" : "restore") + ": ";
  auto config = agent::LoadAgentConfig(config_path);
  if (!config.ok()) {
    std::cerr << who << config.status().message() << "\n";
    return 1;
  }
  if (backup) {
    auto r = agent::BackupAgent(config->data_dir, config->id, dir);
    if (!r.ok()) {
      std::cerr << who << r.status().ToString() << "\n";
      return BackupExitCode(r.status());
    }
    std::cout << "backup: " << dir << "\n"
              << "agent: " << config->id << "\n";
    for (const auto& e : r->manifest.environments) {
      std::cout << "file " << e.file << ": " << e.bytes << " bytes, sha256 " << e.sha256
                << ", copied in " << e.copy_seconds << " s\n";
    }
    std::cout << "seconds: " << r->seconds << "\n"
              << "manifest sha256: " << r->manifest_sha256
              << " (keep it apart from the backup; restore prints it again)\n";
    return 0;
  }
  auto r = agent::RestoreAgent(config->data_dir, config->id, dir);
  if (!r.ok()) {
    std::cerr << who << r.status().ToString() << "\n"
              << who << "nothing was restored into " << config->data_dir << "\n";
    return BackupExitCode(r.status());
  }
  const auto& m = r->manifest;
  std::cout << "restored: " << dir << " -> " << config->data_dir << "\n"
            << "agent: " << m.id << "\n"
            << "backup taken: " << FormatUtc(m.created_ms) << " on "
            << (m.host.empty() ? "?" : m.host) << "\n";
  for (const auto& e : m.environments) {
    std::cout << "checked " << e.file << ": " << e.bytes << " bytes, SHA-256 as in the manifest\n";
  }
  std::cout << "start-up checks: passed (transport and case stores open)\n"
            << "inbox: " << r->counters.inbox_messages << " (as in the manifest)\n"
            << "outbox: " << r->counters.outbox_messages
            << " (as in the manifest; resubmitted when the daemon starts)\n"
            << "cases: " << r->cases << "\n";
  if (r->owner_uid >= 0) std::cout << "owner: uid " << r->owner_uid << "\n";
  std::cout << "manifest sha256: " << r->manifest_sha256 << "\n"
            << "the daemon makes a new API token at start: give it to the case-management "
               "software\n";
  return 0;
}

// ---------------------------------------------------------------- commands over the API

using agent::Json;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

constexpr char kApiFooter[] = R"(
Where the daemon is: --data DIR (its data_dir: DIR/api.url, DIR/api.token), -c agent.toml
(its [api] url_file and token_file), or --url URL with --token-file FILE.
Exit codes: 0 ok, 1 refused or failed (the agent's message says why), 2 usage error,
3 cannot reach the daemon.)";

struct ApiTarget {
  std::string config;
  std::string data_dir;
  std::string url;
  std::string token_file;
  std::string operator_ref;
  bool json = false;
  int timeout_s = 40;
};

// A failure of the command line itself: what to print and the exit code.
struct CliFailure {
  int exit_code;
  std::string message;
};

std::string Trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

// Percent-encodes one path segment (ids, case references, local case numbers).
std::string PathSegment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Finds the daemon's URL and token, and checks that the token goes to loopback only.
std::variant<agent::ApiClient, CliFailure> Connect(const ApiTarget& t) {
  std::string url = t.url, token_file = t.token_file, url_file, where;
  if (!t.data_dir.empty()) {
    url_file = (std::filesystem::path(t.data_dir) / "api.url").string();
    if (token_file.empty()) token_file = (std::filesystem::path(t.data_dir) / "api.token").string();
    where = "data directory " + t.data_dir;
  } else if (!t.config.empty()) {
    auto c = agent::LoadAgentConfig(t.config);
    if (!c.ok()) return CliFailure{kExitUsage, c.status().message()};
    url_file = c->api_url_file;
    if (token_file.empty()) token_file = c->api_token_file;
    where = "configuration " + t.config;
  } else if (url.empty()) {
    return CliFailure{kExitUsage,
                      "say where the daemon is: --data DIR, -c agent.toml, or --url URL with "
                      "--token-file FILE"};
  }
  if (url.empty()) {
    auto raw = ReadFile(url_file, 1024);
    if (!raw.ok()) {
      return CliFailure{kExitUnreachable, "no API URL file " + url_file +
                                              ": is `refbus-agent run` started with this " + where +
                                              "?"};
    }
    url = Trimmed(std::string(AsChars(*raw)));
  }
  if (token_file.empty()) {
    return CliFailure{kExitUsage, "--url needs --token-file (or --data DIR / -c agent.toml)"};
  }
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0 || !agent::ParseLoopbackListen(url.substr(kScheme.size())).ok()) {
    return CliFailure{kExitUsage, "refusing to send the API token to '" + url +
                                      "': the agent's API is on http://127.0.0.1:PORT only"};
  }
  auto token = agent::ReadApiToken(token_file);
  if (!token.ok()) {
    if (token.status().code() == Status::Code::kNotFound) {
      return CliFailure{kExitUnreachable, token.status().message() +
                                              "; is the daemon running with this " +
                                              (where.empty() ? "token file" : where) + "?"};
    }
    return CliFailure{kExitRefused, token.status().message() +
                                        " (run the command as the user the daemon runs as)"};
  }
  return agent::ApiClient(url, std::move(token).value(), t.timeout_s);
}

std::string HintFor(int http_status, std::string_view code, std::string_view command) {
  switch (http_status) {
    case 400:
      return "check the command's options: refbus-agent " + std::string(command) + " --help";
    case 401:
      return "check --token-file: is the daemon running with this data directory?";
    case 403:
      return "outside the consent: check the grant's purposes, categories and recipients "
             "(refbus-agent consents), or record a consent that covers this";
    case 404:
      return "check the id: refbus-agent inbox, referrals, consents and deletions list them";
    case 409:
      return "not allowed in the current state: see refbus-agent case CASE or referrals";
    case 503:
      return code == "resource-exhausted"
                 ? "the agent is busy: retry in a moment"
                 : "the agent is not connected to its broker or is stopping: see refbus-agent "
                   "status and the agent's log";
    default:
      return "the agent failed: see its log";
  }
}

// ---- formatting

std::string Cell(const Json& j, const std::string& key);

std::string Scalar(const Json& v, const std::string& key = "") {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_number_unsigned() || v.is_number_integer()) {
    bool is_time = key.size() > 3 && key.compare(key.size() - 3, 3, "_ms") == 0;
    if (is_time && v.get<int64_t>() > 0) return FormatUtc(v.get<UnixMillis>());
    return std::to_string(v.get<int64_t>());
  }
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) {
      if (!out.empty()) out += ", ";
      out += e.is_object() ? e.dump() : Scalar(e);
    }
    return out.empty() ? "-" : out;
  }
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string Cell(const Json& j, const std::string& key) {
  if (!j.is_object() || !j.contains(key)) return "-";
  return Scalar(j[key], key);
}

struct Column {
  std::string header;
  std::function<std::string(const Json&)> cell;
};

Column Col(std::string header, std::string key) {
  return {std::move(header), [key](const Json& j) { return Cell(j, key); }};
}

void PrintTable(const Json& list, const std::vector<Column>& columns, std::string_view empty) {
  if (!list.is_array() || list.empty()) {
    std::cout << empty << "\n";
    return;
  }
  std::vector<std::string> header;
  for (const auto& c : columns) header.push_back(c.header);
  Table table(header);
  for (const auto& item : list) {
    std::vector<std::string> row;
    for (const auto& c : columns) row.push_back(c.cell(item));
    table.AddRow(std::move(row));
  }
  table.Print(std::cout);
}

// "key: value" lines for the scalar members, then one line per element of each list.
void PrintObject(const Json& j, const std::string& indent = "") {
  if (!j.is_object()) {
    std::cout << indent << Scalar(j) << "\n";
    return;
  }
  size_t width = 0;
  for (const auto& [k, v] : j.items()) {
    if (!v.is_object() && !(v.is_array() && !v.empty() && v.front().is_object())) {
      width = std::max(width, k.size());
    }
  }
  for (const auto& [k, v] : j.items()) {
    if (v.is_object() || (v.is_array() && !v.empty() && v.front().is_object())) continue;
    std::cout << indent << k << ": " << std::string(width - k.size(), ' ') << Scalar(v, k) << "\n";
  }
  for (const auto& [k, v] : j.items()) {
    if (v.is_object()) {
      std::cout << indent << k << ":\n";
      PrintObject(v, indent + "  ");
    } else if (v.is_array() && !v.empty() && v.front().is_object()) {
      std::cout << indent << k << " (" << v.size() << "):\n";
      for (const auto& e : v) {
        std::string line;
        for (const auto& [ek, ev] : e.items()) {
          if (ev.is_object() || (ev.is_array() && !ev.empty() && ev.front().is_object())) continue;
          line += (line.empty() ? "" : "  ") + ek + "=" + Scalar(ev, ek);
        }
        std::cout << indent << "  - " << line << "\n";
      }
    }
  }
}

// Runs one API call and prints the reply: JSON with --json, else print(body).
int CallApi(const ApiTarget& t, std::string_view command, std::string_view method,
            const std::string& path, const Json* body,
            const std::function<void(const Json&)>& print) {
  auto connected = Connect(t);
  if (auto* f = std::get_if<CliFailure>(&connected)) {
    std::cerr << "refbus-agent " << command << ": " << f->message << "\n";
    return f->exit_code;
  }
  auto& client = std::get<agent::ApiClient>(connected);
  auto reply = client.Call(method, path, body);
  if (!reply.ok()) {
    bool unreachable = reply.status().code() == Status::Code::kUnavailable;
    std::cerr << "refbus-agent " << command << ": " << reply.status().message() << "\n";
    if (unreachable) {
      std::cerr << "  is `refbus-agent run` started? (url " << client.url() << ")\n";
    }
    return unreachable ? kExitUnreachable : kExitRefused;
  }
  if (reply->http_status >= 400) {
    if (t.json) std::cout << reply->body.dump(2) << "\n";
    std::string code = "error", message = "HTTP " + std::to_string(reply->http_status);
    if (reply->body.is_object() && reply->body.contains("error") &&
        reply->body["error"].is_object()) {
      code = reply->body["error"].value("code", code);
      message = reply->body["error"].value("message", message);
    }
    std::cerr << "refbus-agent " << command << ": refused (" << reply->http_status << " " << code
              << "): " << message << "\n"
              << "  " << HintFor(reply->http_status, code, command) << "\n";
    return kExitRefused;
  }
  if (t.json) {
    std::cout << reply->body.dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  } else {
    print(reply->body);
  }
  return kExitOk;
}

// ---- parsing of repeated values

// "category:name=value"
std::optional<Json> ParseField(const std::string& s) {
  size_t colon = s.find(':');
  size_t eq = s.find('=', colon == std::string::npos ? 0 : colon);
  if (colon == std::string::npos || colon == 0 || eq == std::string::npos || eq == colon + 1) {
    return std::nullopt;
  }
  return Json{{"category", s.substr(0, colon)},
              {"name", s.substr(colon + 1, eq - colon - 1)},
              {"value", s.substr(eq + 1)}};
}

// Lines from a file, or from stdin for "-"; blank lines and '#' comments skipped.
std::variant<std::vector<std::string>, CliFailure> ReadLines(const std::string& path) {
  std::vector<std::string> lines;
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
  } else {
    auto raw = ReadFile(path, size_t{16} << 20);
    if (!raw.ok()) return CliFailure{kExitUsage, raw.status().message()};
    text.assign(AsChars(*raw));
  }
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    std::string line = Trimmed(text.substr(start, nl - start));
    if (!line.empty() && line[0] != '#') lines.push_back(line);
    start = nl + 1;
  }
  return lines;
}

// --field values and --fields-file (lines "category:name=value", or a JSON array).
std::variant<Json, CliFailure> CollectFields(const std::vector<std::string>& fields,
                                             const std::string& fields_file) {
  Json out = Json::array();
  for (const auto& f : fields) {
    auto parsed = ParseField(f);
    if (!parsed) {
      return CliFailure{kExitUsage,
                        "--field '" + f.substr(0, f.find('=')) + "...' is not CATEGORY:NAME=VALUE"};
    }
    out.push_back(*parsed);
  }
  if (!fields_file.empty()) {
    auto lines = ReadLines(fields_file);
    if (auto* f = std::get_if<CliFailure>(&lines)) return *f;
    const auto& l = std::get<std::vector<std::string>>(lines);
    if (!l.empty() && l.front().front() == '[') {
      std::string all;
      for (const auto& line : l) all += line + "\n";
      Json arr = Json::parse(all, nullptr, false);
      if (!arr.is_array()) {
        return CliFailure{kExitUsage,
                          fields_file + ": not a JSON array of {category, name, value}"};
      }
      for (auto& e : arr) out.push_back(std::move(e));
    } else {
      size_t n = 0;
      for (const auto& line : l) {
        ++n;
        auto parsed = ParseField(line);
        if (!parsed) {
          return CliFailure{kExitUsage, fields_file + " line " + std::to_string(n) +
                                            " is not CATEGORY:NAME=VALUE"};
        }
        out.push_back(*parsed);
      }
    }
  }
  return out;
}

bool IsSha256Hex(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

// "ID,URL[,SHA256[,PLATFORM]]"; the URL may itself contain commas: the optional parts are
// recognized from the right (a SHA-256 is 64 hex digits).
std::optional<Json> ParseItem(const std::string& s) {
  size_t comma = s.find(',');
  if (comma == std::string::npos || comma == 0 || comma + 1 == s.size()) return std::nullopt;
  Json item = {{"item_id", s.substr(0, comma)}};
  std::string rest = s.substr(comma + 1);
  size_t last = rest.rfind(',');
  if (last != std::string::npos && IsSha256Hex(rest.substr(last + 1))) {
    item["sha256"] = rest.substr(last + 1);
    rest.resize(last);
  } else if (last != std::string::npos) {
    size_t before = rest.rfind(',', last - 1);
    if (before != std::string::npos && last > 0 &&
        IsSha256Hex(rest.substr(before + 1, last - before - 1))) {
      item["platform"] = rest.substr(last + 1);
      item["sha256"] = rest.substr(before + 1, last - before - 1);
      rest.resize(before);
    }
  }
  if (rest.empty()) return std::nullopt;
  item["url"] = rest;
  return item;
}

template <typename E>
std::vector<std::string> NamesOf(int first = 1) {
  std::vector<std::string> names;
  for (int i = first; i < 64; ++i) {
    std::string_view n = schema::Name(static_cast<E>(i));
    if (n == "unknown") break;
    names.emplace_back(n);
  }
  return names;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// ---- the commands

struct Commands {
  ApiTarget t;
  std::vector<std::pair<CLI::App*, std::function<int()>>> handlers;

  // Options every API command takes. acts: the operator is recorded, so it is required.
  void Common(CLI::App* cmd, bool acts) {
    cmd->add_option("-c,--config", t.config, "the daemon's configuration (agent.toml)");
    cmd->add_option("--data", t.data_dir, "the daemon's data directory (api.url, api.token)");
    cmd->add_option("--url", t.url, "the daemon's API URL (http://127.0.0.1:PORT)");
    cmd->add_option("--token-file", t.token_file, "the API token file");
    cmd->add_flag("--json", t.json, "print the API's JSON reply");
    cmd->add_option("--timeout", t.timeout_s, "seconds to wait for the reply")
        ->capture_default_str()
        ->check(CLI::Range(1, 600));
    if (acts) {
      cmd->add_option("--operator", t.operator_ref,
                      "who does this (recorded with the action; default $REFBUS_OPERATOR)");
    }
    cmd->footer(kApiFooter);
  }

  void On(CLI::App* cmd, std::function<int()> run) { handlers.emplace_back(cmd, std::move(run)); }

  // The operator for an acting command, or a usage failure.
  std::optional<std::string> Operator(std::string_view command) {
    if (t.operator_ref.empty()) {
      if (const char* env = std::getenv("REFBUS_OPERATOR"); env != nullptr) t.operator_ref = env;
    }
    if (t.operator_ref.empty()) {
      std::cerr << "refbus-agent " << command
                << ": give --operator REF (or set REFBUS_OPERATOR): the agent records who "
                   "acted\n";
      return std::nullopt;
    }
    return t.operator_ref;
  }

  int Call(std::string_view command, std::string_view method, const std::string& path,
           const Json* body, const std::function<void(const Json&)>& print) {
    return CallApi(t, command, method, path, body, print);
  }
};

// Prints a failure from a parsing helper and returns its exit code.
int Report(std::string_view command, const CliFailure& f) {
  std::cerr << "refbus-agent " << command << ": " << f.message << "\n";
  return f.exit_code;
}

void AddApiCommands(CLI::App& app, Commands& c) {
  static const std::vector<std::string> kBases = NamesOf<schema::LegalBasis>();
  static const std::vector<std::string> kPurposes = NamesOf<schema::Purpose>();
  static const std::vector<std::string> kCategories = NamesOf<schema::DataCategory>();
  static const std::vector<std::string> kConsenters = NamesOf<schema::Consenter>();
  static const std::vector<std::string> kAgencyTypes = NamesOf<schema::AgencyType>();
  static const std::vector<std::string> kReasons = NamesOf<schema::RevocationReason>();
  static const std::vector<std::string> kItemStates = NamesOf<schema::DeletionItemStatus>();
  static const std::vector<std::string> kStates = NamesOf<schema::ReferralState>(2);

  auto show = [](const Json& j) { PrintObject(j); };

  // consent
  {
    struct Consent {
      std::string case_ref, local_case, basis, legal_article, countersigner_key,
          countersigner_operator;
      std::vector<std::string> consenters, purposes, categories, recipients, recipient_types;
      bool assent = false, onward = false, emergency = false, representative_conflict = false;
      int days = 0, retention_days = 0;
    };
    auto o = std::make_shared<Consent>();
    auto* cmd = app.add_subcommand("consent", "record a consent grant (or a legal basis)");
    c.Common(cmd, true);
    cmd->add_option("--basis", o->basis, "the legal basis")
        ->required()
        ->check(CLI::IsMember(kBases));
    cmd->add_option("--legal-article", o->legal_article, "the article it rests on");
    cmd->add_option("--case-ref", o->case_ref, "an existing case (default: a new pseudonym)");
    cmd->add_option("--local-case", o->local_case, "this agency's own case number");
    cmd->add_option("--consenter", o->consenters, "who consented (repeatable or comma-separated)")
        ->delimiter(',')
        ->check(CLI::IsMember(kConsenters));
    cmd->add_flag("--assent", o->assent, "the young person assented too");
    cmd->add_option("--purpose", o->purposes, "purposes (repeatable or comma-separated)")
        ->required()
        ->delimiter(',')
        ->check(CLI::IsMember(kPurposes));
    cmd->add_option("--category", o->categories, "data categories that may be shared")
        ->delimiter(',')
        ->check(CLI::IsMember(kCategories));
    cmd->add_option("--recipient", o->recipients, "agencies allowed to receive (ids)")
        ->delimiter(',');
    cmd->add_option("--recipient-type", o->recipient_types, "agency types allowed to receive")
        ->delimiter(',')
        ->check(CLI::IsMember(kAgencyTypes));
    cmd->add_flag("--onward", o->onward, "recipients may share onward within the grant");
    cmd->add_option("--days", o->days, "valid for this many days (agent default: 30)")
        ->check(CLI::Range(1, 3650));
    cmd->add_option("--retention-days", o->retention_days,
                    "keep the data this many days (default: --days)")
        ->check(CLI::Range(1, 3650));
    cmd->add_flag("--representative-conflict", o->representative_conflict,
                  "the legal representative may be the suspect (flagged for auditors)");
    cmd->add_flag("--emergency", o->emergency,
                  "emergency override (needs a second operator's countersignature; auditors "
                  "are alerted)");
    cmd->add_option("--countersigner-key", o->countersigner_key,
                    "name of the second operator's key file in the daemon's "
                    "<data_dir>/operator-keys/ folder");
    cmd->add_option("--countersigner-operator", o->countersigner_operator,
                    "the second operator's reference");
    c.On(cmd, [&c, o] {
      auto op = c.Operator("consent");
      if (!op) return kExitUsage;
      if (o->emergency && (o->countersigner_key.empty() || o->countersigner_operator.empty())) {
        std::cerr << "refbus-agent consent: --emergency needs --countersigner-key and "
                     "--countersigner-operator (a second person)\n";
        return kExitUsage;
      }
      Json body = {{"basis", o->basis},
                   {"consenters", o->consenters},
                   {"subject_assent", o->assent},
                   {"purposes", o->purposes},
                   {"categories", o->categories},
                   {"recipients", o->recipients},
                   {"recipient_types", o->recipient_types},
                   {"onward_sharing", o->onward},
                   {"emergency_override", o->emergency},
                   {"representative_conflict", o->representative_conflict},
                   {"operator", *op}};
      if (!o->case_ref.empty()) body["case_ref"] = o->case_ref;
      if (!o->local_case.empty()) body["local_case"] = o->local_case;
      if (!o->legal_article.empty()) body["legal_article"] = o->legal_article;
      if (o->days > 0) body["valid_days"] = o->days;
      if (o->retention_days > 0) body["retention_days"] = o->retention_days;
      if (!o->countersigner_key.empty()) {
        body["countersigner_key"] = o->countersigner_key;
        body["countersigner_operator"] = o->countersigner_operator;
      }
      return c.Call("consent", "POST", "/v1/consents", &body, [](const Json& r) {
        std::cout << "consent grant " << Cell(r, "grant_id") << " recorded\n"
                  << "  case:    " << Cell(r, "case_ref") << " (local " << Cell(r, "local_case")
                  << ")\n"
                  << "  expires: " << Cell(r, "expires_at_ms") << "\n";
        if (r.value("emergency_override", false)) {
          std::cout << "  emergency override: countersigned; the auditors are alerted\n";
        }
      });
    });
  }

  // consents
  {
    auto* cmd = app.add_subcommand("consents", "list consent grants");
    c.Common(cmd, false);
    c.On(cmd, [&c] {
      return c.Call("consents", "GET", "/v1/consents", nullptr, [](const Json& r) {
        PrintTable(r,
                   {Col("GRANT", "grant_id"),
                    Col("CASE", "case_ref"),
                    Col("BASIS", "basis"),
                    Col("PURPOSES", "purposes"),
                    Col("CATEGORIES", "categories"),
                    {"RECIPIENTS",
                     [](const Json& j) {
                       std::string a = Cell(j, "recipients"), b = Cell(j, "recipient_types");
                       if (a == "-") return b;
                       return b == "-" ? a : a + ", " + b;
                     }},
                    Col("EXPIRES", "expires_at_ms"),
                    {"STATE",
                     [](const Json& j) {
                       if (j.value("revoked", false)) return std::string("revoked");
                       return std::string(j.value("registered", false) ? "registered"
                                                                       : "not yet registered");
                     }}},
                   "no consent grants");
      });
    });
  }

  // send-referral and handoff share the field options.
  struct Send {
    std::string grant, to, purpose, reason, fields_file;
    std::vector<std::string> fields;
  };
  auto add_fields = [](CLI::App* cmd, Send& s) {
    cmd->add_option("--field", s.fields,
                    "CATEGORY:NAME=VALUE (repeatable; values on the command line are visible "
                    "to other users in the process list: prefer --fields-file)");
    cmd->add_option("--fields-file", s.fields_file,
                    "lines CATEGORY:NAME=VALUE, or a JSON array of {category,name,value}; - "
                    "for stdin");
  };
  {
    auto s = std::make_shared<Send>();
    auto* cmd = app.add_subcommand("send-referral", "refer a case to another agency");
    c.Common(cmd, true);
    cmd->add_option("--grant", s->grant, "the consent grant id")->required();
    cmd->add_option("--to", s->to, "the receiving agency id")->required();
    cmd->add_option("--purpose", s->purpose, "the purpose (one the grant names)")
        ->required()
        ->check(CLI::IsMember(kPurposes));
    add_fields(cmd, *s);
    c.On(cmd, [&c, s] {
      auto op = c.Operator("send-referral");
      if (!op) return kExitUsage;
      auto fields = CollectFields(s->fields, s->fields_file);
      if (auto* f = std::get_if<CliFailure>(&fields)) return Report("send-referral", *f);
      Json body = {{"grant_id", s->grant},
                   {"to", s->to},
                   {"purpose", s->purpose},
                   {"fields", std::get<Json>(fields)},
                   {"operator", *op}};
      return c.Call("send-referral", "POST", "/v1/referrals", &body, [](const Json& r) {
        std::cout << "referral " << Cell(r, "referral_id") << " sent (message "
                  << Cell(r, "message_id") << ")\n"
                  << "  case:  " << Cell(r, "case_ref") << "\n"
                  << "  state: " << Cell(r, "state") << "\n";
      });
    });
  }
  {
    auto s = std::make_shared<Send>();
    auto* cmd = app.add_subcommand("handoff", "hand the case lead to another agency");
    c.Common(cmd, true);
    cmd->add_option("--grant", s->grant, "the consent grant id")->required();
    cmd->add_option("--to", s->to, "the new lead agency id")->required();
    cmd->add_option("--reason", s->reason, "why")->required();
    cmd->add_option("--purpose", s->purpose, "purpose (default: the grant's first)")
        ->check(CLI::IsMember(kPurposes));
    add_fields(cmd, *s);
    c.On(cmd, [&c, s] {
      auto op = c.Operator("handoff");
      if (!op) return kExitUsage;
      auto fields = CollectFields(s->fields, s->fields_file);
      if (auto* f = std::get_if<CliFailure>(&fields)) return Report("handoff", *f);
      Json body = {{"grant_id", s->grant},
                   {"to", s->to},
                   {"reason", s->reason},
                   {"fields", std::get<Json>(fields)},
                   {"operator", *op}};
      if (!s->purpose.empty()) body["purpose"] = s->purpose;
      return c.Call("handoff", "POST", "/v1/handoffs", &body, [](const Json& r) {
        std::cout << "handoff " << Cell(r, "handoff_id") << " sent (message "
                  << Cell(r, "message_id") << "); the new lead must acknowledge it\n";
      });
    });
  }

  // ack-handoff
  {
    struct Ack {
      std::string id, reason;
      bool refuse = false;
    };
    auto a = std::make_shared<Ack>();
    auto* cmd = app.add_subcommand("ack-handoff", "accept (or refuse) a handoff of case lead");
    c.Common(cmd, true);
    cmd->add_option("handoff", a->id, "the handoff id")->required();
    cmd->add_flag("--refuse", a->refuse, "refuse the handoff (with --reason)");
    cmd->add_option("--reason", a->reason, "why (required with --refuse)");
    c.On(cmd, [&c, a] {
      auto op = c.Operator("ack-handoff");
      if (!op) return kExitUsage;
      if (a->refuse && a->reason.empty()) {
        std::cerr << "refbus-agent ack-handoff: --refuse needs --reason\n";
        return kExitUsage;
      }
      Json body = {{"accepted", !a->refuse}, {"operator", *op}};
      if (!a->reason.empty()) body["reason"] = a->reason;
      bool refused = a->refuse;
      return c.Call("ack-handoff", "POST", "/v1/handoffs/" + PathSegment(a->id) + "/ack", &body,
                    [refused](const Json& r) {
                      std::cout << "handoff " << Cell(r, "handoff_id")
                                << (refused ? " refused" : " accepted")
                                << "; case lead: " << Cell(r, "lead") << "\n";
                    });
    });
  }

  // referrals, inbox, deletions
  {
    auto* cmd = app.add_subcommand("referrals", "list referrals sent and received");
    c.Common(cmd, false);
    c.On(cmd, [&c] {
      return c.Call("referrals", "GET", "/v1/referrals", nullptr, [](const Json& r) {
        PrintTable(
            r,
            {Col("REFERRAL", "referral_id"), Col("CASE", "case_ref"), Col("LOCAL", "local_case"),
             Col("SIDE", "side"), Col("PEER", "peer"), Col("PURPOSE", "purpose"),
             Col("STATE", "state"), Col("UPDATED", "updated_at_ms")},
            "no referrals");
      });
    });
  }
  {
    auto* cmd = app.add_subcommand("inbox", "list delivered messages");
    c.Common(cmd, false);
    c.On(cmd, [&c] {
      return c.Call("inbox", "GET", "/v1/inbox", nullptr, [](const Json& r) {
        PrintTable(r,
                   {Col("MESSAGE", "message_id"),
                    Col("FROM", "from"),
                    Col("KIND", "kind"),
                    Col("CASE", "case_ref"),
                    Col("LOCAL", "local_case"),
                    Col("RECEIVED", "received_at_ms"),
                    Col("OPENED", "opened"),
                    {"STATUS",
                     [](const Json& j) {
                       std::string s = Cell(j, "status");
                       std::string why = Cell(j, "refusal");
                       return why == "-" ? s : s + ": " + why;
                     }}},
                   "the inbox is empty");
      });
    });
  }
  {
    auto* cmd = app.add_subcommand("deletions", "list deletion requests and their item counts");
    c.Common(cmd, false);
    auto count = [](const char* key) {
      return [key](const Json& j) {
        return j.contains("counts") ? Cell(j["counts"], key) : std::string("-");
      };
    };
    c.On(cmd, [&c, count] {
      return c.Call("deletions", "GET", "/v1/deletions", nullptr, [count](const Json& r) {
        PrintTable(r,
                   {Col("REQUEST", "request_id"),
                    Col("CASE", "case_ref"),
                    Col("SIDE", "side"),
                    Col("PEER", "peer"),
                    {"ITEMS",
                     [](const Json& j) {
                       return j.contains("items") && j["items"].is_array()
                                  ? std::to_string(j["items"].size())
                                  : (j.contains("items") && j["items"].is_object()
                                         ? std::to_string(j["items"].size())
                                         : std::string("-"));
                     }},
                    {"RECEIVED", count("received")},
                    {"NOTIFIED", count("notified")},
                    {"REMOVED", count("removed")},
                    {"REAPPEARED", count("reappeared")},
                    {"WITHDRAWN", count("withdrawn")},
                    Col("REPORT", "report_seq")},
                   "no deletion requests");
      });
    });
  }

  // open
  {
    auto id = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand(
        "open", "open a message (records the access and notifies the sending agency)");
    c.Common(cmd, true);
    cmd->add_option("message", *id, "the message id (refbus-agent inbox)")->required();
    c.On(cmd, [&c, id] {
      auto op = c.Operator("open");
      if (!op) return kExitUsage;
      Json body = {{"operator", *op}};
      return c.Call(
          "open", "POST", "/v1/messages/" + PathSegment(*id) + "/open", &body, [](const Json& r) {
            std::cout << "message " << Cell(r, "message_id") << " from " << Cell(r, "from") << " ("
                      << Cell(r, "kind") << ", case " << Cell(r, "case_ref") << ")\n"
                      << "access recorded; the sender is notified\n";
            const Json content = r.contains("content") ? r["content"] : Json();
            const Json* fields = nullptr;
            if (content.is_object() && content.contains("fields") && content["fields"].is_array()) {
              fields = &content["fields"];
            }
            if (fields != nullptr) {
              Json rest = content;
              rest.erase("fields");
              PrintObject(rest, "  ");
              PrintTable(*fields,
                         {Col("CATEGORY", "category"), Col("NAME", "name"), Col("VALUE", "value")},
                         "  (no fields)");
            } else if (!content.is_null()) {
              PrintObject(content, "  ");
            }
          });
    });
  }

  // accept, decline, state
  auto change_state = [&c](std::string_view command, const std::string& id,
                           const std::string& state, const std::string& reason) {
    auto op = c.Operator(command);
    if (!op) return kExitUsage;
    Json body = {{"state", state}, {"operator", *op}};
    if (!reason.empty()) body["reason"] = reason;
    return c.Call(command, "POST", "/v1/referrals/" + PathSegment(id) + "/state", &body,
                  [](const Json& r) {
                    std::cout << "referral " << Cell(r, "referral_id") << " is now "
                              << Cell(r, "state") << "\n";
                  });
  };
  struct StateArgs {
    std::string id, state, reason;
  };
  {
    auto a = std::make_shared<StateArgs>();
    auto* cmd = app.add_subcommand("accept", "accept a referral");
    c.Common(cmd, true);
    cmd->add_option("referral", a->id, "the referral id")->required();
    c.On(cmd, [a, change_state] { return change_state("accept", a->id, "accepted", ""); });
  }
  {
    auto a = std::make_shared<StateArgs>();
    auto* cmd = app.add_subcommand("decline", "decline a referral, with a reason");
    c.Common(cmd, true);
    cmd->add_option("referral", a->id, "the referral id")->required();
    cmd->add_option("--reason", a->reason, "why (the referring agency sees it)")->required();
    c.On(cmd, [a, change_state] { return change_state("decline", a->id, "declined", a->reason); });
  }
  {
    auto a = std::make_shared<StateArgs>();
    auto* cmd = app.add_subcommand("state", "move a referral to another state");
    c.Common(cmd, true);
    cmd->add_option("referral", a->id, "the referral id")->required();
    cmd->add_option("state", a->state, "the new state")->required()->check(CLI::IsMember(kStates));
    cmd->add_option("--reason", a->reason, "why");
    c.On(cmd, [a, change_state] { return change_state("state", a->id, a->state, a->reason); });
  }

  // request-deletion
  {
    struct Deletion {
      std::string grant, to, items_file;
      std::vector<std::string> items, report_to;
      bool monitor = false;
    };
    auto d = std::make_shared<Deletion>();
    auto* cmd =
        app.add_subcommand("request-deletion", "task a deletion center with taking content down");
    c.Common(cmd, true);
    cmd->add_option("--grant", d->grant, "the consent grant id")->required();
    cmd->add_option("--to", d->to, "the deletion center's agency id")->required();
    cmd->add_option("--item", d->items, "ID,URL[,SHA256[,PLATFORM]] (repeatable)");
    cmd->add_option("--items-file", d->items_file, "one ID,URL[,SHA256[,PLATFORM]] per line");
    cmd->add_option("--report-to", d->report_to, "also report status to these agencies")
        ->delimiter(',');
    cmd->add_flag("--monitor", d->monitor, "keep monitoring for re-uploads");
    c.On(cmd, [&c, d] {
      auto op = c.Operator("request-deletion");
      if (!op) return kExitUsage;
      std::vector<std::string> lines = d->items;
      if (!d->items_file.empty()) {
        auto read = ReadLines(d->items_file);
        if (auto* f = std::get_if<CliFailure>(&read)) return Report("request-deletion", *f);
        for (auto& l : std::get<std::vector<std::string>>(read)) lines.push_back(std::move(l));
      }
      if (lines.empty()) {
        std::cerr << "refbus-agent request-deletion: give at least one --item or --items-file\n";
        return kExitUsage;
      }
      Json items = Json::array();
      for (const auto& l : lines) {
        auto item = ParseItem(l);
        if (!item) {
          std::cerr << "refbus-agent request-deletion: item '" << l.substr(0, l.find(','))
                    << ",...' is not ID,URL[,SHA256[,PLATFORM]]\n";
          return kExitUsage;
        }
        items.push_back(*item);
      }
      Json body = {{"grant_id", d->grant},      {"to", d->to},           {"items", items},
                   {"report_to", d->report_to}, {"monitor", d->monitor}, {"operator", *op}};
      size_t n = items.size();
      return c.Call("request-deletion", "POST", "/v1/deletions", &body, [n](const Json& r) {
        std::cout << "deletion request " << Cell(r, "request_id") << " sent with " << n
                  << " items (message " << Cell(r, "message_id") << ")\n";
      });
    });
  }

  // deletion-status
  {
    struct DeletionReport {
      std::string id;
      std::vector<std::string> items;
    };
    auto a = std::make_shared<DeletionReport>();
    auto* cmd = app.add_subcommand("deletion-status", "report per-item deletion status");
    c.Common(cmd, true);
    cmd->add_option("request", a->id, "the deletion request id")->required();
    cmd->add_option("--item", a->items,
                    "ITEM-ID:STATUS (repeatable); status: " + JoinNames(kItemStates))
        ->required();
    c.On(cmd, [&c, a] {
      auto op = c.Operator("deletion-status");
      if (!op) return kExitUsage;
      Json updates = Json::array();
      for (const auto& i : a->items) {
        size_t colon = i.rfind(':');
        std::string status = colon == std::string::npos ? "" : i.substr(colon + 1);
        if (colon == 0 ||
            std::find(kItemStates.begin(), kItemStates.end(), status) == kItemStates.end()) {
          std::cerr << "refbus-agent deletion-status: --item '" << i
                    << "' is not ITEM-ID:STATUS with STATUS one of " << JoinNames(kItemStates)
                    << "\n";
          return kExitUsage;
        }
        updates.push_back({{"item_id", i.substr(0, colon)}, {"status", status}});
      }
      Json body = {{"updates", updates}, {"operator", *op}};
      return c.Call(
          "deletion-status", "POST", "/v1/deletions/" + PathSegment(a->id) + "/status", &body,
          [](const Json& r) {
            std::cout << "status report #" << Cell(r, "report_seq") << " for request "
                      << Cell(r, "request_id") << " sent to " << Cell(r, "sent_to") << "\n";
            if (r.contains("counts")) {
              std::cout << "  counts:";
              for (const char* k : {"received", "notified", "removed", "reappeared", "withdrawn"}) {
                std::cout << " " << k << " " << Cell(r["counts"], k);
              }
              std::cout << "\n";
            }
          });
    });
  }

  // revoke-consent, close
  {
    auto a = std::make_shared<StateArgs>();
    auto* cmd = app.add_subcommand("revoke-consent",
                                   "withdraw a consent grant: every recipient is told and purges");
    c.Common(cmd, true);
    cmd->add_option("grant", a->id, "the consent grant id")->required();
    cmd->add_option("--reason", a->reason, "why the consent ends")
        ->required()
        ->check(CLI::IsMember(kReasons));
    c.On(cmd, [&c, a] {
      auto op = c.Operator("revoke-consent");
      if (!op) return kExitUsage;
      Json body = {{"reason", a->reason}, {"operator", *op}};
      return c.Call("revoke-consent", "POST", "/v1/consents/" + PathSegment(a->id) + "/revoke",
                    &body, [](const Json& r) {
                      std::cout << "consent " << Cell(r, "grant_id")
                                << " revoked; notified: " << Cell(r, "notified") << "\n"
                                << "each recipient purges the data and confirms (refbus-agent "
                                   "case shows the confirmations)\n";
                    });
    });
  }
  {
    auto a = std::make_shared<StateArgs>();
    auto* cmd = app.add_subcommand("close", "close a case");
    c.Common(cmd, true);
    cmd->add_option("case", a->id, "the case reference or local case number")->required();
    cmd->add_option("--reason", a->reason, "why")->required();
    c.On(cmd, [&c, a] {
      auto op = c.Operator("close");
      if (!op) return kExitUsage;
      Json body = {{"reason", a->reason}, {"operator", *op}};
      return c.Call("close", "POST", "/v1/cases/" + PathSegment(a->id) + "/close", &body,
                    [](const Json& r) {
                      std::cout << "case " << Cell(r, "case_ref")
                                << " closed; notified: " << Cell(r, "notified") << "\n";
                    });
    });
  }

  // set-local-case, case, status
  {
    auto a = std::make_shared<StateArgs>();
    auto* cmd = app.add_subcommand("set-local-case", "map a case to this agency's case number");
    c.Common(cmd, false);
    cmd->add_option("case", a->id, "the case reference")->required();
    cmd->add_option("local", a->state, "this agency's case number")->required();
    c.On(cmd, [&c, a, show] {
      Json body = {{"local_case", a->state}};
      return c.Call("set-local-case", "PUT", "/v1/cases/" + PathSegment(a->id) + "/local", &body,
                    show);
    });
  }
  {
    auto id = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("case", "show a case: grants, referrals, notices, purges");
    c.Common(cmd, false);
    cmd->add_option("case", *id, "the case reference or local case number")->required();
    c.On(cmd, [&c, id, show] {
      return c.Call("case", "GET", "/v1/cases/" + PathSegment(*id), nullptr, show);
    });
  }
  {
    auto* cmd = app.add_subcommand("status", "the agent's session and counts");
    c.Common(cmd, false);
    c.On(cmd, [&c, show] { return c.Call("status", "GET", "/v1/status", nullptr, show); });
  }
}

int Main(int argc, char** argv) {
  if (!keys::InitSodium().ok()) {
    std::cerr << "refbus-agent: libsodium failed to initialize\n";
    return 1;
  }
  CLI::App app{"refbus-agent: an agency's refbus agent (daemon, API commands, test harness)"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off")
      ->capture_default_str();

  std::string run_config;
  bool check_only = false;
  auto* run = app.add_subcommand("run", "the agency daemon: broker session, workflows, local API");
  run->add_option("-c,--config", run_config, "configuration file (TOML; agent/daemon.h)")
      ->required();
  run->add_flag("--check-config", check_only, "validate the configuration and exit");
  run->footer(kRunFooter);

  std::string backup_config, backup_dir, restore_config, restore_dir;
  auto* backup_cmd = app.add_subcommand(
      "backup", "a hot copy of the agent's stores (cases, transport) with a manifest");
  backup_cmd->add_option("-c,--config", backup_config, "configuration file (TOML; agent/daemon.h)")
      ->required();
  backup_cmd->add_option("--out", backup_dir, "a new (or empty) folder for the backup")->required();
  backup_cmd->footer(kBackupFooter);
  auto* restore_cmd = app.add_subcommand(
      "restore", "put a checked backup into the agent's data_dir (transport, cases empty)");
  restore_cmd->add_option("-c,--config", restore_config, "configuration file (TOML)")->required();
  restore_cmd->add_option("--from", restore_dir, "the backup folder")->required();
  restore_cmd->footer(kBackupFooter);

  Commands commands;
  AddApiCommands(app, commands);

  CommonOptions send_common, recv_common;
  SendOptions so;
  auto* send = app.add_subcommand("send", "test harness: seal N random envelopes and submit them");
  send->footer(kFooter);
  AddCommon(send, send_common);
  send->add_option("--to", so.to, "recipient agency ids, comma-separated")->required();
  send->add_option("--count", so.count, "number of envelopes")->required();
  send->add_option("--size", so.size, "content bytes per envelope")
      ->capture_default_str()
      ->check(CLI::Range(size_t{0}, size_t{3} << 20));
  send->add_option("--window", so.window, "submissions in flight at most")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  send->add_option("--acked-log", so.acked_log, "append each acknowledged message id (hex)");

  ReceiveOptions ro;
  auto* recv =
      app.add_subcommand("receive", "test harness: store deliveries and log each new message once");
  recv->footer(kFooter);
  AddCommon(recv, recv_common);
  recv->add_option("--expect", ro.expect, "stop once this many distinct messages are stored");
  recv->add_option("--received-log", ro.received_log, "append each new message id (hex), once");
  recv->add_option("--idle-exit", ro.idle_exit_s, "stop after this many seconds without deliveries")
      ->check(CLI::NonNegativeNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (Status s = InitLogging("refbus-agent", LogFormat::kText, log_level); !s.ok()) {
    std::cerr << "refbus-agent: " << s.ToString() << "\n";
    return 2;
  }
  // A closed connection to the API must be an error return, never a fatal signal.
  std::signal(SIGPIPE, SIG_IGN);
  for (const auto& [cmd, handler] : commands.handlers) {
    if (cmd->parsed()) return handler();
  }
  if (backup_cmd->parsed()) return RunBackupCommand(true, backup_config, backup_dir);
  if (restore_cmd->parsed()) return RunBackupCommand(false, restore_config, restore_dir);
  InstallSignalHandlers();
  if (run->parsed()) return RunDaemonCommand(run_config, check_only);
  if (send->parsed()) return RunSend(send_common, so);
  return RunReceive(recv_common, ro);
}

}  // namespace

int main(int argc, char** argv) {
  // Library code returns Status; what could still throw here (allocation, CLI11 setup) is
  // reported instead of terminating without a word.
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "refbus-agent: " << e.what() << "\n";
    return 1;
  }
}
