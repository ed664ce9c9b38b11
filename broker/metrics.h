// Prometheus metrics and health checks for refbus-broker, on a loopback-only HTTP listener
// (the [metrics] section of broker/config.h; absent: no listener).
//
//   GET /metrics  the Prometheus text exposition format 0.0.4, built from the BrokerStatus
//                 the event loop refreshes every second (Server::Snapshot): its counters,
//                 the directory serial and expiry, the audit log's size, the store's use of
//                 its map, per federation link (label peer) up, backlogs, oldest queued age,
//                 forwarded, refused and sessions, the age of the status itself, and the
//                 outcomes of the two checks below as refbus_broker_healthy/ready gauges.
//   GET /healthz  200 "ok" while the event loop refreshes the status (within
//                 kHealthyStatusAgeMs), else 503 with the reason as text: the loop is hung,
//                 has not started, or the broker is stopping.
//   GET /readyz   200 "ok" when healthy, a directory is loaded and not expired, and the
//                 store has room (its high-water mark below kReadyStorageRatio of the map),
//                 else 503 with the reason as text.
//
// Every answer holds ids, numbers and reasons made from them: no content, no keys. The
// listener binds to a loopback address only (ParseLoopbackBind refuses others): the
// answers carry no secrets, but they tell who the broker links with and how busy it is,
// and the listener has no authentication.
//
// Thread safety: the formatting and check functions are pure. MetricsServer answers on
// threads of its own, calling the snapshot function from them (it must be thread-safe, as
// Server::Snapshot is); Start and Stop from one thread.
#ifndef REFBUS_BROKER_METRICS_H_
#define REFBUS_BROKER_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "broker/status.h"
#include "core/clock.h"
#include "core/status.h"

namespace refbus::broker {

// The status is fresh while the loop rewrote it this recently (it does so every second).
inline constexpr UnixMillis kHealthyStatusAgeMs = 5 * kMillisPerSecond;
// Not ready once the store's high-water mark reaches this share of its map: the next
// commit that needs a new page may fail as storage full.
inline constexpr double kReadyStorageRatio = 0.98;

struct LoopbackAddress {
  std::string host;  // "127.0.0.1" (any of 127.0.0.0/8) or "::1"
  int port = 0;      // 0: any free port
};

// "127.0.0.1:9470", "127.0.0.2:0" or "[::1]:9470". The error text reads after the name of
// the setting ("is ... ; use ...").
Result<LoopbackAddress> ParseLoopbackBind(std::string_view bind);

// A label value escaped for the text exposition format: backslash, double quote, newline.
std::string EscapeLabelValue(std::string_view value);

// The /metrics body for status, with ages relative to now.
std::string FormatMetrics(const BrokerStatus& status, UnixMillis now);

struct CheckResult {
  bool ok = false;
  std::string reason;  // "ok", or why not (for people)
};
CheckResult CheckHealth(const BrokerStatus& status, UnixMillis now);
CheckResult CheckReady(const BrokerStatus& status, UnixMillis now);

struct MetricsOptions {
  std::string bind;      // ParseLoopbackBind's syntax
  std::string url_file;  // optional: "http://HOST:PORT\n" written here once listening
};

class MetricsServer {
 public:
  using SnapshotFn = std::function<BrokerStatus()>;

  // Binds and starts answering. The listener's threads block SIGTERM, SIGINT and SIGHUP,
  // so those signals reach the event loop's thread.
  // REQUIRES: snapshot is thread-safe and outlives the server (or its Stop()).
  static Result<std::unique_ptr<MetricsServer>> Start(const MetricsOptions& options,
                                                      SnapshotFn snapshot);
  ~MetricsServer();  // Stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Stops listening, waits for the answers in progress, removes the url_file it wrote.
  // Idempotent.
  void Stop();
  // "http://127.0.0.1:PORT", with the port bound.
  const std::string& url() const;

 private:
  struct Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_METRICS_H_
