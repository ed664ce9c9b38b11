// Prometheus metrics and health checks for refbus-broker, on a loopback-only HTTP listener
// (the [metrics] section of broker/config.h; absent: no listener; core/metrics.h serves it).
//
//   GET /metrics  the Prometheus text exposition format 0.0.4 (prometheus-cpp), built from
//                 the BrokerStatus the event loop refreshes every second (Server::Snapshot):
//                 its counters; envelopes by kind and outcome; Nacks sent by reason; per
//                 agency mailbox (label mailbox) the depth and the oldest queued age; the
//                 commit latency and batch size (envelopes per commit) histograms; the
//                 directory serial and expiry; the audit log's
//                 size, the latest checkpoint's size and age; the store's use of its map; per
//                 federation link (label peer) up, backlogs, oldest queued age, forwarded,
//                 refused and sessions, and histograms of a relay's wait in the link queue
//                 and of its round trip; the age of the status itself; and the outcomes of the
//                 two checks below as refbus_broker_healthy/ready gauges.
//   GET /healthz  200 "ok" while the event loop refreshes the status (within
//                 kHealthyStatusAgeMs), else 503 with the reason as text: the loop is hung,
//                 has not started, or the broker is stopping.
//   GET /readyz   200 "ok" when healthy, a directory is loaded and not expired, and the
//                 store has room (no commit refused as storage full since the last one that
//                 stored), else 503 with the reason as text.
//
// Every answer holds ids (agency, broker), enum names and numbers: no content, no keys, no
// case references. The listener binds to a loopback address only (ParseLoopbackBind in
// core/metrics.h refuses others).
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
#include "core/metrics.h"
#include "core/status.h"

namespace refbus::broker {

// The status is fresh while the loop rewrote it this recently (it does so every second).
inline constexpr UnixMillis kHealthyStatusAgeMs = 5 * kMillisPerSecond;
// Not ready once the store's high-water mark reaches this share of its map: the next
// commit that needs a new page may fail as storage full.
inline constexpr double kReadyStorageRatio = 0.98;

// The /metrics body for status, with ages relative to now.
std::string FormatMetrics(const BrokerStatus& status, UnixMillis now);

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
  explicit MetricsServer(std::unique_ptr<ProbeServer> probe);
  std::unique_ptr<ProbeServer> probe_;
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_METRICS_H_
