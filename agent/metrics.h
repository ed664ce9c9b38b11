// Prometheus metrics and health checks for refbus-agent run, on a loopback-only HTTP
// listener (the [metrics] section of agent/daemon.h; absent: no listener; core/metrics.h
// serves it).
//
//   GET /metrics  the text exposition format 0.0.4 (prometheus-cpp), built from the
//                 AgentStatus the daemon's loop refreshes every second: whether a session
//                 with the home broker is up, submissions sent, acked and nacked by reason,
//                 messages received, outbox and inbox depths, reconnects, the age of the
//                 latest ack, the directory serial and expiry, and the two checks below.
//   GET /healthz  200 "ok" while the daemon's loop refreshes the status (within
//                 kAgentHealthyStatusAgeMs), else 503 with the reason as text.
//   GET /readyz   200 "ok" when healthy, in a session with its home broker (welcomed) and
//                 with a directory that has not expired, else 503 with the reason.
//
// Every answer holds the agency's and broker's ids, enum names and numbers: no content,
// no keys, no case references, no message ids.
//
// Thread safety: the functions are pure.
#ifndef REFBUS_AGENT_METRICS_H_
#define REFBUS_AGENT_METRICS_H_

#include <string>

#include "agent/engine.h"
#include "core/clock.h"
#include "core/metrics.h"

namespace refbus::agent {

// The loop refreshes the status every second; API commands run on the same thread between
// engine turns and may hold it for a few seconds, so the limit is wider than the broker's.
inline constexpr UnixMillis kAgentHealthyStatusAgeMs = 10 * kMillisPerSecond;

struct AgentStatus {
  std::string agency_id;
  UnixMillis time_ms = 0;     // when the loop last refreshed it (0: not yet)
  UnixMillis started_ms = 0;  // when the daemon started
  bool running = true;        // false once the daemon is stopping
  EngineSnapshot engine;
};

std::string FormatAgentMetrics(const AgentStatus& status, UnixMillis now);
CheckResult CheckAgentHealth(const AgentStatus& status, UnixMillis now);
CheckResult CheckAgentReady(const AgentStatus& status, UnixMillis now);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_METRICS_H_
