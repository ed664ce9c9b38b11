#include "core/metrics.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <exception>
#include <map>
#include <system_error>
#include <thread>

#include "core/bytes.h"
#include "core/file.h"

namespace refbus {
namespace {

constexpr char kTextContentType[] = "text/plain; charset=utf-8";

// The HELP line's escapes (backslash, newline): prometheus-cpp 1.0.1 writes HELP as given,
// and promtool refuses a lone backslash.
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

prometheus::Labels ToLabels(const MetricLabels& labels) {
  prometheus::Labels out;
  for (const auto& [k, v] : labels) out[k] = v;
  return out;
}

}  // namespace

// ---------------------------------------------------------------- ParseLoopbackBind

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

// ---------------------------------------------------------------- Exposition

struct Exposition::Impl {
  std::string prefix;
  prometheus::Registry registry;
  // By full name: a family is built once, then samples are added to it.
  std::map<std::string, prometheus::Family<prometheus::Counter>*> counters;
  std::map<std::string, prometheus::Family<prometheus::Gauge>*> gauges;
  std::map<std::string, prometheus::Family<prometheus::Histogram>*> histograms;

  // prometheus-cpp throws on names Prometheus would refuse (and on a name reused with
  // another type): a bug in the caller, but not one worth stopping a broker for.
  template <typename Fn>
  void Guarded(std::string_view name, Fn fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      spdlog::error("metrics: sample of {} dropped: {}", name, e.what());
    }
  }
};

Exposition::Exposition(std::string prefix) : impl_(std::make_unique<Impl>()) {
  impl_->prefix = std::move(prefix);
}

Exposition::~Exposition() = default;

void Exposition::Counter(std::string_view name, std::string_view help, const MetricLabels& labels,
                         double value) {
  impl_->Guarded(name, [&] {
    const std::string full = impl_->prefix + std::string(name);
    auto& family = impl_->counters[full];
    if (family == nullptr) {
      family =
          &prometheus::BuildCounter().Name(full).Help(EscapeHelp(help)).Register(impl_->registry);
    }
    family->Add(ToLabels(labels)).Increment(value);
  });
}

void Exposition::Gauge(std::string_view name, std::string_view help, const MetricLabels& labels,
                       double value) {
  impl_->Guarded(name, [&] {
    const std::string full = impl_->prefix + std::string(name);
    auto& family = impl_->gauges[full];
    if (family == nullptr) {
      family =
          &prometheus::BuildGauge().Name(full).Help(EscapeHelp(help)).Register(impl_->registry);
    }
    family->Add(ToLabels(labels)).Set(value);
  });
}

void Exposition::Histogram(std::string_view name, std::string_view help,
                           const std::vector<double>& bounds, const std::vector<uint64_t>& buckets,
                           double sum) {
  Histogram(name, help, {}, bounds, buckets, sum);
}

void Exposition::Histogram(std::string_view name, std::string_view help, const MetricLabels& labels,
                           const std::vector<double>& bounds, const std::vector<uint64_t>& buckets,
                           double sum) {
  impl_->Guarded(name, [&] {
    const std::string full = impl_->prefix + std::string(name);
    auto& family = impl_->histograms[full];
    if (family == nullptr) {
      family =
          &prometheus::BuildHistogram().Name(full).Help(EscapeHelp(help)).Register(impl_->registry);
    }
    // ObserveMultiple checks the length (bounds + 1) and throws otherwise.
    std::vector<double> increments(buckets.begin(), buckets.end());
    family->Add(ToLabels(labels), bounds).ObserveMultiple(increments, sum);
  });
}

std::string Exposition::Text() const {
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

// ---------------------------------------------------------------- ProbeServer

struct ProbeServer::Impl {
  ProbeOptions options;
  ProbeHandlers handlers;
  httplib::Server server;
  std::thread thread;
  std::string url;
  bool stopped = false;
};

ProbeServer::ProbeServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ProbeServer::~ProbeServer() { Stop(); }

const std::string& ProbeServer::url() const { return impl_->url; }

Result<std::unique_ptr<ProbeServer>> ProbeServer::Start(const ProbeOptions& options,
                                                        ProbeHandlers handlers) {
  auto parsed = ParseLoopbackBind(options.bind);
  if (!parsed.ok()) {
    return InvalidArgument("metrics bind " + parsed.status().message());
  }
  const LoopbackAddress listen = *parsed;
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handlers = std::move(handlers);
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
  const std::string program = options.program;
  svr.set_exception_handler(
      [program](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
        spdlog::error("metrics: {} {}: unexpected exception", req.method, req.path.substr(0, 100));
        res.status = 500;
        res.set_content("internal error; see the " + program + "'s log\n", kTextContentType);
      });
  svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("metrics: {} {} -> {}", req.method, req.path.substr(0, 100), res.status);
  });
  svr.Get("/metrics", [p](const httplib::Request&, httplib::Response& res) {
    res.set_content(p->handlers.metrics(), kMetricsContentType);
  });
  auto check = [p](bool ready) {
    return [p, ready](const httplib::Request&, httplib::Response& res) {
      CheckResult r = ready ? p->handlers.ready() : p->handlers.health();
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
                       "; is another " + program +
                       " using this [metrics] bind? Use port 0 for any free port");
  }
  const bool v6 = listen.host.find(':') != std::string::npos;
  impl->url = "http://" + (v6 ? "[" + listen.host + "]" : listen.host) + ":" + std::to_string(port);
  // The listener and its pool (made on the listener's thread) inherit this mask: SIGTERM,
  // SIGINT and SIGHUP go to the main thread, whose poll they interrupt.
  sigset_t block, previous;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &block, &previous);
  impl->thread = std::thread([p] { p->server.listen_after_bind(); });
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  std::unique_ptr<ProbeServer> server(new ProbeServer(std::move(impl)));
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

void ProbeServer::Stop() {
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

}  // namespace refbus
