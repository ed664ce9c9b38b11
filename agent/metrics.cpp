#include "agent/metrics.h"

#include <cstdio>

#include "keys/directory.h"
#include "schema/types.h"

namespace refbus::agent {
namespace {

constexpr char kPrefix[] = "refbus_agent_";

double SecondsOf(UnixMillis ms) { return static_cast<double>(ms) / 1000.0; }

// Seconds from then to now; 0 when then is unknown (0) or not in the past.
double AgeSeconds(UnixMillis now, UnixMillis then) {
  if (then == 0 || now <= then) return 0;
  return SecondsOf(now - then);
}

std::string SecondsText(UnixMillis ms) {
  char buf[64];
  int n = std::snprintf(buf, sizeof(buf), "%.3f", SecondsOf(ms));
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

double D(uint64_t v) { return static_cast<double>(v); }

}  // namespace

CheckResult CheckAgentHealth(const AgentStatus& st, UnixMillis now) {
  if (st.time_ms == 0) {
    return {false, "the daemon's loop has not refreshed the status yet (the agent is starting)"};
  }
  if (!st.running) return {false, "the agent is stopping"};
  if (now > st.time_ms && now - st.time_ms > kAgentHealthyStatusAgeMs) {
    return {false, "the daemon's loop last refreshed the status " + SecondsText(now - st.time_ms) +
                       " s ago (it does so every second; more than " +
                       std::to_string(kAgentHealthyStatusAgeMs / 1000) +
                       " s means it is stuck or starved)"};
  }
  return {true, "ok"};
}

CheckResult CheckAgentReady(const AgentStatus& st, UnixMillis now) {
  CheckResult health = CheckAgentHealth(st, now);
  if (!health.ok) return {false, "not healthy: " + health.reason};
  const EngineSnapshot& e = st.engine;
  if (e.directory_serial == 0) return {false, "no directory loaded"};
  if (e.directory_expires_ms != 0 && now >= e.directory_expires_ms) {
    return {false, "directory serial " + std::to_string(e.directory_serial) + " expired at " +
                       FormatUtc(e.directory_expires_ms) +
                       "; it is still accepted during the grace period until " +
                       FormatUtc(e.directory_expires_ms + keys::kDirectoryGraceMs) +
                       ": install a new directory from the authority"};
  }
  if (!e.session_ready) {
    return {false, "no session with the home broker " + e.broker +
                       " (not connected, or not welcomed yet); submissions wait in the outbox"};
  }
  return {true, "ok"};
}

std::string FormatAgentMetrics(const AgentStatus& st, UnixMillis now) {
  Exposition e(kPrefix);
  const CheckResult health = CheckAgentHealth(st, now);
  const CheckResult ready = CheckAgentReady(st, now);
  e.Gauge("healthy",
          "1 while the daemon's loop refreshes the status (GET /healthz answers 200), else 0.", {},
          health.ok ? 1 : 0);
  e.Gauge("ready",
          "1 when healthy, in a session with the home broker and with a current directory "
          "(GET /readyz answers 200), else 0.",
          {}, ready.ok ? 1 : 0);
  if (st.time_ms == 0) return e.Text();  // nothing refreshed yet: nothing else to tell

  const EngineSnapshot& s = st.engine;
  const ClientCounters& c = s.client;
  e.Gauge("info", "The agency's id and its home broker's, as labels (always 1).",
          {{"agency", st.agency_id}, {"broker", s.broker}}, 1);
  e.Gauge("start_time_seconds", "When the agent started, in Unix seconds.", {},
          SecondsOf(st.started_ms));
  e.Gauge("status_age_seconds",
          "Seconds since the daemon's loop last refreshed the status (it does so every second).",
          {}, AgeSeconds(now, st.time_ms));
  e.Gauge("connected",
          "1 while a session with the home broker is up (connected and welcomed), else 0.", {},
          s.session_ready ? 1 : 0);
  e.Gauge("directory_serial", "Serial of the signed directory in force.", {},
          D(s.directory_serial));
  if (s.directory_expires_ms != 0) {
    e.Gauge("directory_expiry_timestamp_seconds",
            "When the directory in force expires, in Unix seconds.", {},
            SecondsOf(s.directory_expires_ms));
  }
  e.Gauge("outbox_depth",
          "Envelopes and control frames queued for the broker and not yet acked or refused.", {},
          D(s.outbox));
  e.Gauge("inbox_messages", "Messages held in the inbox (delivered, opened or not).", {},
          D(s.inbox));
  e.Gauge("inbox_unprocessed", "Messages received and not yet taken up by the workflows.", {},
          D(s.inbox_unprocessed));
  if (c.last_ack_ms != 0) {
    e.Gauge("last_ack_age_seconds",
            "Seconds since the broker last acked a submission (absent before the first ack "
            "since the agent started).",
            {}, AgeSeconds(now, c.last_ack_ms));
  }

  const char* since = " Since the agent started.";
  e.Counter("submitted_total",
            std::string("Envelopes and control frames queued for the broker.") + since, {},
            D(c.submitted));
  e.Counter("sent_total", std::string("Submissions sent to the broker, resends included.") + since,
            {}, D(c.sent));
  e.Counter("resent_total",
            std::string("Submissions sent again (timeout, reconnect, back-pressure).") + since, {},
            D(c.resent));
  e.Counter(
      "acked_total",
      std::string("Submissions the broker acked (stored durably), duplicates included.") + since,
      {}, D(c.acked));
  e.Counter("refused_total", std::string("Submissions the broker refused for good.") + since, {},
            D(c.refused));
  for (size_t r = 0; r < c.nacks.size(); ++r) {
    e.Counter("nacks_total",
              std::string("Nacks from the broker for submissions, by reason (quota-exceeded, "
                          "storage-full and internal are retried; the others are final).") +
                  since,
              {{"reason", std::string(schema::Name(static_cast<schema::NackReason>(r)))}},
              D(c.nacks[r]));
  }
  e.Counter("received_total",
            std::string("New messages delivered by the broker and stored in the inbox.") + since,
            {}, D(c.delivered));
  e.Counter("duplicate_deliveries_total",
            std::string("Deliveries of messages already in the inbox (acked again).") + since, {},
            D(c.duplicate_deliveries));
  e.Counter("id_reused_deliveries_total",
            std::string("Deliveries refused: other bytes under a message id already in the "
                        "inbox (never stored, never acked).") +
                since,
            {}, D(c.id_reused_deliveries));
  e.Counter("reconnects_total",
            std::string("Connections to the broker after the first (CURVE handshakes).") + since,
            {}, D(c.connects > 0 ? c.connects - 1 : 0));
  e.Counter("sessions_total", std::string("Sessions the broker welcomed.") + since, {},
            D(c.sessions));
  e.Counter("handshake_failures_total",
            std::string("Connections the broker refused at the handshake (for example a key "
                        "not in its directory).") +
                since,
            {}, D(c.handshake_failures));
  e.Counter("store_errors_total", std::string("Failed local store operations.") + since, {},
            D(c.store_errors));
  return e.Text();
}

}  // namespace refbus::agent
