// Prometheus metrics and health checks for refbus programs: the text exposition (built with
// prometheus-cpp's core library) and a loopback-only HTTP listener (cpp-httplib) serving
//
//   GET /metrics  the exposition, text format 0.0.4
//   GET /healthz  200 "ok" or 503 with the reason as text
//   GET /readyz   the same for readiness
//
// Each program decides what its answers hold (broker/metrics.h, agent/metrics.h); this
// file knows no domain. The listener binds to a loopback address only (ParseLoopbackBind
// refuses others): the answers carry no secrets, but they tell who a program talks with
// and how busy it is, and the listener has no authentication.
//
// Why a registry per scrape (Exposition) rather than long-lived prometheus-cpp metrics:
// the programs count in plain fields on their own threads (no atomics or locks on the hot
// path) and copy them into a status snapshot once a second; a scrape turns that snapshot
// into text. The formatting stays a pure function of the snapshot, testable without a
// running program.
//
// Thread safety: Exposition is single-threaded (one per scrape). ProbeServer answers on
// threads of its own and calls the handlers from them (they must be thread-safe); Start
// and Stop from one thread.
#ifndef REFBUS_CORE_METRICS_H_
#define REFBUS_CORE_METRICS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace refbus {

struct LoopbackAddress {
  std::string host;  // "127.0.0.1" (any of 127.0.0.0/8) or "::1"
  int port = 0;      // 0: any free port
};

// "127.0.0.1:9470", "127.0.0.2:0" or "[::1]:9470". The error text reads after the name of
// the setting ("is ... ; use ...").
Result<LoopbackAddress> ParseLoopbackBind(std::string_view bind);

inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// One scrape's exposition. Families come out grouped by type (counters, then gauges, then
// histograms), each type in the order its families were first added; the samples of a
// family in no fixed order; a family without samples is left out. Label values are
// escaped by prometheus-cpp; HELP texts are escaped here (prometheus-cpp 1.0 does not).
// A name or label name that Prometheus would refuse is a programming error: the sample is
// dropped and logged, never thrown.
class Exposition {
 public:
  // prefix: prepended to every name ("refbus_broker_").
  explicit Exposition(std::string prefix);
  ~Exposition();
  Exposition(const Exposition&) = delete;
  Exposition& operator=(const Exposition&) = delete;

  // A counter (name ends in _total) with value; the same labels twice add up.
  void Counter(std::string_view name, std::string_view help, const MetricLabels& labels,
               double value);
  // A gauge; the same labels twice keep the last value.
  void Gauge(std::string_view name, std::string_view help, const MetricLabels& labels,
             double value);
  // A histogram from counts kept elsewhere: bounds ascending (upper bounds, without +Inf),
  // buckets the observations per bucket, not cumulative, bounds.size() + 1 of them (the
  // last for +Inf), sum the sum of the observed values.
  void Histogram(std::string_view name, std::string_view help, const std::vector<double>& bounds,
                 const std::vector<uint64_t>& buckets, double sum);
  // The same, one series per labels.
  void Histogram(std::string_view name, std::string_view help, const MetricLabels& labels,
                 const std::vector<double>& bounds, const std::vector<uint64_t>& buckets,
                 double sum);

  std::string Text() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct CheckResult {
  bool ok = false;
  std::string reason;  // "ok", or why not (for people)
};

struct ProbeOptions {
  std::string bind;      // ParseLoopbackBind's syntax
  std::string url_file;  // optional: "http://HOST:PORT\n" written here once listening
  std::string program;   // "broker", "agent": named in errors and logs
};

struct ProbeHandlers {
  std::function<std::string()> metrics;  // the /metrics body
  std::function<CheckResult()> health;
  std::function<CheckResult()> ready;
};

class ProbeServer {
 public:
  // Binds and starts answering. The listener's threads block SIGTERM, SIGINT and SIGHUP,
  // so those signals reach the program's main thread.
  // REQUIRES: the handlers are thread-safe and outlive the server (or its Stop()).
  static Result<std::unique_ptr<ProbeServer>> Start(const ProbeOptions& options,
                                                    ProbeHandlers handlers);
  ~ProbeServer();  // Stop()
  ProbeServer(const ProbeServer&) = delete;
  ProbeServer& operator=(const ProbeServer&) = delete;

  // Stops listening, waits for the answers in progress, removes the url_file it wrote.
  // Idempotent.
  void Stop();
  // "http://127.0.0.1:PORT", with the port bound.
  const std::string& url() const;

 private:
  struct Impl;
  explicit ProbeServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace refbus

#endif  // REFBUS_CORE_METRICS_H_
