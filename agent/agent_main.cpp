// refbus-agent: for now a send/receive harness over the agent client library, for
// integration tests and benchmarks (a later issue turns it into the agency daemon).
//
//   refbus-agent send    seals N random envelopes to agencies and submits them; appends
//                        each id the broker acknowledged to --acked-log
//   refbus-agent receive stores deliveries; appends each new message id, exactly once
//                        across restarts, to --received-log
//
// Both survive broker restarts (they keep reconnecting until --timeout), and stop cleanly
// on SIGTERM or SIGINT: what was committed stays committed, unacknowledged submissions
// stay in the outbox in --data for the next run. Output: a summary of "key: value" lines
// on stdout; logs (ids, counts, codes; never content) on stderr.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/client.h"
#include "agent/store.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/log.h"
#include "keys/ceremony.h"
#include "keys/directory.h"
#include "keys/envelope.h"
#include "keys/keyfile.h"
#include "keys/secret.h"
#include "schema/codec.h"

namespace {

using namespace refbus;  // NOLINT(google-build-using-namespace)
using SteadyClock = std::chrono::steady_clock;

constexpr char kFooter[] = R"(
Signals: SIGTERM/SIGINT stop cleanly (send: stop sending, wait up to 2 s for answers to what
is in flight; receive: store and acknowledge what has arrived), then exit 0. Unanswered
envelopes stay in the outbox in --data and are resubmitted by the next run.
Exit codes: 0 done (send: every envelope acknowledged or refused for good; receive: --expect
reached, or idle without --expect), 1 error or --timeout, 2 usage error.)";

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

int Main(int argc, char** argv) {
  if (!keys::InitSodium().ok()) {
    std::cerr << "refbus-agent: libsodium failed to initialize\n";
    return 1;
  }
  CLI::App app{"refbus-agent: send and receive harness over the refbus agent client"};
  app.require_subcommand(1);
  app.footer(kFooter);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off")
      ->capture_default_str();

  CommonOptions send_common, recv_common;
  SendOptions so;
  auto* send = app.add_subcommand("send", "seal N random envelopes and submit them");
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
  auto* recv = app.add_subcommand("receive", "store deliveries and log each new message once");
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
  InstallSignalHandlers();
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
