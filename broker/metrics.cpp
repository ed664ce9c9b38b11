#include "broker/metrics.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "core/file.h"
#include "keys/directory.h"

namespace refbus::broker {
namespace {

constexpr char kPrefix[] = "refbus_broker_";
constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kTextContentType[] = "text/plain; charset=utf-8";

// HELP texts of the counters the server reports (BrokerStatus::counters); a counter not
// listed here (added later) gets a generic one.
constexpr std::pair<std::string_view, std::string_view> kCounterHelp[] = {
    {"accepted", "Envelopes accepted and committed (first copies)."},
    {"duplicates", "Envelopes submitted again that were already held (acked as duplicates)."},
    {"refused",
     "Frames refused with a nack (malformed, forged, not permitted, over quota, "
     "storage full, ...)."},
    {"delivered", "Delivery frames sent to recipients, redeliveries included."},
    {"acked", "Recipient acks applied."},
    {"commits", "Group commits (LMDB write transactions) completed."},
    {"connections_refused", "Connections refused by the ZAP handler (unknown or revoked keys)."},
    {"checkpoints", "Audit checkpoints signed."},
    {"relays_accepted", "Envelopes relayed by peer brokers and committed here."},
    {"relays_refused", "Relays from peer brokers refused (forged, malformed, out of scope, ...)."},
    {"routed_out", "Envelopes queued for a peer broker."},
};

std::string EscapeHelp(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// A metric name from a counter key: [a-z0-9_] kept, anything else becomes '_'.
std::string NamePart(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c - 'A' + 'a');
    } else {
      out += keep ? c : '_';
    }
  }
  return out;
}

std::string Seconds(double s) {
  char buf[64];
  int n = std::snprintf(buf, sizeof(buf), "%.3f", s);
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

std::string AgeSeconds(UnixMillis now, UnixMillis then) {
  if (then == 0 || now <= then) return "0";
  return Seconds(static_cast<double>(now - then) / 1000.0);
}

// One metric family: its HELP and TYPE lines, then its samples; a family without samples
// is left out.
class Exposition {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    name_ = std::string(kPrefix) + std::string(name);
    type_ = type;
    help_ = help;
    announced_ = false;
  }
  // labels: already formatted ("peer=\"...\""), or empty.
  void Sample(const std::string& labels, const std::string& value) {
    if (!announced_) {
      out_ += "# HELP " + name_ + " " + EscapeHelp(help_) + "\n";
      out_ += "# TYPE " + name_ + " " + type_ + "\n";
      announced_ = true;
    }
    out_ += name_;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += " " + value + "\n";
  }
  void Sample(const std::string& value) { Sample(std::string(), value); }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
  std::string name_, type_, help_;
  bool announced_ = false;
};

std::string Label(std::string_view name, std::string_view value) {
  return std::string(name) + "=\"" + EscapeLabelValue(value) + "\"";
}

}  // namespace

Result<LoopbackAddress> ParseLoopbackBind(std::string_view bind) {
  const std::string quoted = "\"" + std::string(bind.substr(0, 80)) + "\"";
  LoopbackAddress a;
  std::string_view port_text;
  bool v6 = false;
  if (!bind.empty() && bind.front() == '[') {
    size_t close = bind.find("]:");
    if (close == std::string_view::npos) {
      return InvalidArgument("is " + quoted + ", not HOST:PORT; use \"127.0.0.1:9470\"");
    }
    a.host = std::string(bind.substr(1, close - 1));
    port_text = bind.substr(close + 2);
    v6 = true;
  } else {
    size_t colon = bind.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return InvalidArgument("is " + quoted + ", not HOST:PORT; use \"127.0.0.1:9470\"");
    }
    a.host = std::string(bind.substr(0, colon));
    port_text = bind.substr(colon + 1);
  }
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), a.port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      a.port < 0 || a.port > 65535) {
    return InvalidArgument("is " + quoted +
                           ": the port must be a number from 0 (any free port) to 65535");
  }
  bool loopback = false;
  if (v6) {
    in6_addr addr6{};
    if (::inet_pton(AF_INET6, a.host.c_str(), &addr6) != 1) {
      return InvalidArgument("is " + quoted + ": the host must be an address literal");
    }
    loopback = IN6_IS_ADDR_LOOPBACK(&addr6);
  } else {
    in_addr addr{};
    if (::inet_pton(AF_INET, a.host.c_str(), &addr) != 1) {
      return InvalidArgument("is " + quoted +
                             ": the host must be a loopback address literal, not a host name; "
                             "use \"127.0.0.1:" +
                             std::string(port_text) + "\"");
    }
    loopback = (ntohl(addr.s_addr) >> 24) == 127;
  }
  if (!loopback) {
    return InvalidArgument(
        "is " + quoted +
        ", not a loopback address: the metrics and health answers have no authentication and "
        "must not be reachable from other machines. Use \"127.0.0.1:" +
        std::string(port_text) + "\" (or \"[::1]:" + std::string(port_text) +
        "\") and scrape through a Prometheus agent on this machine or an authenticated proxy");
  }
  return a;
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

CheckResult CheckHealth(const BrokerStatus& st, UnixMillis now) {
  if (st.time_ms == 0) {
    return {false, "the event loop has not refreshed the status yet (the broker is starting)"};
  }
  if (!st.running) return {false, "the broker is stopping"};
  if (now > st.time_ms && now - st.time_ms > kHealthyStatusAgeMs) {
    return {false, "the event loop last refreshed the status " +
                       Seconds(static_cast<double>(now - st.time_ms) / 1000.0) +
                       " s ago (it does so every second; more than " +
                       std::to_string(kHealthyStatusAgeMs / 1000) +
                       " s means it is stuck or starved)"};
  }
  return {true, "ok"};
}

CheckResult CheckReady(const BrokerStatus& st, UnixMillis now) {
  CheckResult health = CheckHealth(st, now);
  if (!health.ok) return {false, "not healthy: " + health.reason};
  if (st.directory_serial == 0) return {false, "no directory loaded"};
  if (st.directory_expires_ms != 0 && now >= st.directory_expires_ms) {
    return {false, "directory serial " + std::to_string(st.directory_serial) + " expired at " +
                       FormatUtc(st.directory_expires_ms) +
                       "; it is still accepted during the grace period until " +
                       FormatUtc(st.directory_expires_ms + keys::kDirectoryGraceMs) +
                       ": install a new directory from the authority"};
  }
  if (st.storage_full_since_ms != 0) {
    return {false, "storage full since " + FormatUtc(st.storage_full_since_ms) +
                       ": new submissions are refused (deliveries go on); free room or raise "
                       "[limits] map_size_mb and restart the broker"};
  }
  if (!st.last_commit_error.empty()) {
    return {false, "the last commit failed: " + st.last_commit_error};
  }
  return {true, "ok"};
}

std::string FormatMetrics(const BrokerStatus& st, UnixMillis now) {
  Exposition e;
  const CheckResult health = CheckHealth(st, now);
  const CheckResult ready = CheckReady(st, now);
  e.Family("healthy", "gauge",
           "1 while the event loop refreshes the status (GET /healthz answers 200), else 0.");
  e.Sample(health.ok ? "1" : "0");
  e.Family("ready", "gauge",
           "1 when healthy with a current directory and room in the store (GET /readyz "
           "answers 200), else 0.");
  e.Sample(ready.ok ? "1" : "0");
  if (st.time_ms == 0) return e.Take();  // nothing refreshed yet: nothing else to tell

  e.Family("info", "gauge", "The broker's id, as a label (always 1).");
  e.Sample(Label("broker", st.broker_id), "1");
  e.Family("start_time_seconds", "gauge", "When the broker started, in Unix seconds.");
  e.Sample(Seconds(static_cast<double>(st.started_ms) / 1000.0));
  e.Family("status_age_seconds", "gauge",
           "Seconds since the event loop last refreshed the status (it does so every second).");
  e.Sample(AgeSeconds(now, st.time_ms));

  for (const auto& [key, value] : st.counters) {
    std::string help = "refbus-broker counter " + key + ".";
    for (const auto& [k, h] : kCounterHelp) {
      if (k == key) help = std::string(h);
    }
    e.Family(NamePart(key) + "_total", "counter", help + " Since the broker started.");
    e.Sample(std::to_string(value));
  }

  e.Family("directory_serial", "gauge", "Serial of the signed directory in force.");
  e.Sample(std::to_string(st.directory_serial));
  if (st.directory_expires_ms != 0) {
    e.Family("directory_expiry_timestamp_seconds", "gauge",
             "When the directory in force expires, in Unix seconds.");
    e.Sample(Seconds(static_cast<double>(st.directory_expires_ms) / 1000.0));
  }
  e.Family("audit_log_entries", "gauge", "Entries in the audit log (its size).");
  e.Sample(std::to_string(st.audit_size));
  if (st.storage_map_bytes != 0) {
    e.Family("storage_used_bytes", "gauge",
             "High-water mark of the LMDB store (pages ever used times the page size).");
    e.Sample(std::to_string(st.storage_used_bytes));
    e.Family("storage_map_bytes", "gauge",
             "LMDB map size: the most the store may grow to ([limits] map_size_mb).");
    e.Sample(std::to_string(st.storage_map_bytes));
  }

  // Per federation link, one family at a time (the format wants a family's samples together).
  struct LinkMetric {
    const char* name;
    const char* type;
    const char* help;
    std::string (*value)(const LinkStatus&, UnixMillis);
  };
  static const LinkMetric kLinkMetrics[] = {
      {"link_up", "gauge", "1 while the federation link to the peer broker is up, else 0.",
       [](const LinkStatus& l, UnixMillis) { return std::string(l.state == "up" ? "1" : "0"); }},
      {"link_backlog", "gauge", "Envelopes waiting in the link mailbox for the peer broker.",
       [](const LinkStatus& l, UnixMillis) { return std::to_string(l.backlog); }},
      {"link_control_backlog", "gauge",
       "Consent revocations waiting to be passed on to the peer broker.",
       [](const LinkStatus& l, UnixMillis) { return std::to_string(l.control_backlog); }},
      {"link_oldest_queued_age_seconds", "gauge",
       "Age of the oldest envelope queued for the peer broker (0: none queued).",
       [](const LinkStatus& l, UnixMillis at) { return AgeSeconds(at, l.oldest_queued_ms); }},
      {"link_inflight", "gauge", "Relays sent to the peer broker and not yet answered.",
       [](const LinkStatus& l, UnixMillis) { return std::to_string(l.inflight); }},
      {"link_forwarded_total", "counter",
       "Envelopes the peer broker acked. Since the broker started.",
       [](const LinkStatus& l, UnixMillis) { return std::to_string(l.forwarded); }},
      {"link_refused_total", "counter",
       "Envelopes the peer broker refused for good. Since the broker started.",
       [](const LinkStatus& l, UnixMillis) { return std::to_string(l.refused); }},
      {"link_sessions_total", "counter",
       "Sessions started with the peer broker (reconnects + 1). Since the broker started.",
       [](const LinkStatus& l, UnixMillis) { return std::to_string(l.sessions); }},
  };
  for (const auto& m : kLinkMetrics) {
    e.Family(m.name, m.type, m.help);
    for (const auto& l : st.links) e.Sample(Label("peer", l.peer), m.value(l, now));
  }
  return e.Take();
}

// ---------------------------------------------------------------- MetricsServer

struct MetricsServer::Impl {
  MetricsOptions options;
  SnapshotFn snapshot;
  httplib::Server server;
  std::thread thread;
  std::string url;
  bool stopped = false;
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsServer::~MetricsServer() { Stop(); }

const std::string& MetricsServer::url() const { return impl_->url; }

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const MetricsOptions& options,
                                                            SnapshotFn snapshot) {
  auto parsed = ParseLoopbackBind(options.bind);
  if (!parsed.ok()) {
    return InvalidArgument("metrics bind " + parsed.status().message());
  }
  const LoopbackAddress listen = *parsed;
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->snapshot = std::move(snapshot);
  Impl* p = impl.get();
  httplib::Server& svr = impl->server;
  // Scrapes and probes are rare and quick: two threads are plenty.
  svr.new_task_queue = [] { return new httplib::ThreadPool(2); };
  // Not SO_REUSEPORT (httplib's default): no other process may share the port.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  svr.set_payload_max_length(4096);
  svr.set_read_timeout(5, 0);
  svr.set_write_timeout(5, 0);
  svr.set_keep_alive_timeout(2);
  svr.set_default_headers({{"Cache-Control", "no-store"}, {"X-Content-Type-Options", "nosniff"}});
  svr.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
        spdlog::error("metrics: {} {}: unexpected exception", req.method, req.path.substr(0, 100));
        res.status = 500;
        res.set_content("internal error; see the broker's log\n", kTextContentType);
      });
  svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("metrics: {} {} -> {}", req.method, req.path.substr(0, 100), res.status);
  });
  svr.Get("/metrics", [p](const httplib::Request&, httplib::Response& res) {
    BrokerStatus st = p->snapshot();
    res.set_content(FormatMetrics(st, SystemClock::Get().NowMillis()), kMetricsContentType);
  });
  auto check = [p](bool ready) {
    return [p, ready](const httplib::Request&, httplib::Response& res) {
      BrokerStatus st = p->snapshot();
      UnixMillis now = SystemClock::Get().NowMillis();
      CheckResult r = ready ? CheckReady(st, now) : CheckHealth(st, now);
      res.status = r.ok ? 200 : 503;
      res.set_content(r.reason + "\n", kTextContentType);
    };
  };
  svr.Get("/healthz", check(false));
  svr.Get("/readyz", check(true));

  errno = 0;
  int port = listen.port == 0 ? svr.bind_to_any_port(listen.host)
                              : (svr.bind_to_port(listen.host, listen.port) ? listen.port : -1);
  if (port <= 0) {
    int err = errno;
    return Unavailable("cannot listen for metrics on " + options.bind +
                       (err != 0 ? " (" + std::system_category().message(err) + ")" : "") +
                       "; is another broker using this [metrics] bind? Use port 0 for any free "
                       "port");
  }
  const bool v6 = listen.host.find(':') != std::string::npos;
  impl->url = "http://" + (v6 ? "[" + listen.host + "]" : listen.host) + ":" + std::to_string(port);
  // The listener and its pool (made on the listener's thread) inherit this mask: SIGTERM,
  // SIGINT and SIGHUP go to the event loop's thread, whose poll they interrupt.
  sigset_t block, previous;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &block, &previous);
  impl->thread = std::thread([p] { p->server.listen_after_bind(); });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  std::unique_ptr<MetricsServer> server(new MetricsServer(std::move(impl)));
  // stop() does nothing before the accept loop runs: wait for it, so Stop always works.
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!svr.is_running() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!svr.is_running()) return Internal("the metrics listener did not start within 5 s");
  if (!options.url_file.empty()) {
    std::string line = server->impl_->url + "\n";
    if (Status s = WriteFileAtomic(options.url_file, AsBytes(line), kPublicFileMode); !s.ok()) {
      return s.WithContext("cannot write the metrics url_file");
    }
  }
  spdlog::info("metrics: listening on {} (/metrics, /healthz, /readyz)", server->impl_->url);
  return server;
}

void MetricsServer::Stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  if (!impl_->options.url_file.empty()) {
    // Only our own URL: a stale file must not point a scraper at another process.
    auto content = ReadFile(impl_->options.url_file, 1024);
    if (content.ok() && AsChars(*content) == impl_->url + "\n") {
      ::unlink(impl_->options.url_file.c_str());
    }
  }
  spdlog::info("metrics: stopped");
}

}  // namespace refbus::broker
