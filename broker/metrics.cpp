#include "broker/metrics.h"

#include <cstdio>
#include <utility>
#include <vector>

#include "keys/directory.h"

namespace refbus::broker {
namespace {

constexpr char kPrefix[] = "refbus_broker_";

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
    {"relayed_grant_checks",
     "Signature checks of the consent grants relayed envelopes carry (once per grant and "
     "directory, not per envelope)."},
};

// A metric name from a counter key: [a-z0-9_] kept, upper case lowered, anything else '_'.
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

double SecondsOf(UnixMillis ms) { return static_cast<double>(ms) / 1000.0; }

// Seconds from then to now; 0 when then is unknown (0) or not in the past.
double AgeSeconds(UnixMillis now, UnixMillis then) {
  if (then == 0 || now <= then) return 0;
  return SecondsOf(now - then);
}

double D(uint64_t v) { return static_cast<double>(v); }

// Counters since the start: the status file's, envelopes by kind and outcome, nacks.
void AddCounters(Exposition& e, const BrokerStatus& st) {
  for (const auto& [key, value] : st.counters) {
    std::string help = "refbus-broker counter " + key + ".";
    for (const auto& [k, h] : kCounterHelp) {
      if (k == key) help = std::string(h);
    }
    e.Counter(NamePart(key) + "_total", help + " Since the broker started.", {}, D(value));
  }
  for (const auto& c : st.envelopes) {
    e.Counter("envelopes_total",
              "Envelopes submitted by agencies or relayed by peer brokers, by kind (unspecified: "
              "the envelope did not decode) and outcome (accepted and committed, duplicate of "
              "one held, refused with a nack). Since the broker started.",
              {{"kind", c.kind}, {"outcome", c.outcome}}, D(c.count));
  }
  for (const auto& [reason, count] : st.nacks) {
    e.Counter("nacks_total",
              "Nack frames sent, by reason: every refusal of an envelope, control frame, relay "
              "or query. Since the broker started.",
              {{"reason", reason}}, D(count));
  }
}

// The directory, the audit log and its checkpoints, the store's use of its map.
void AddStoreGauges(Exposition& e, const BrokerStatus& st, UnixMillis now) {
  e.Gauge("directory_serial", "Serial of the signed directory in force.", {},
          D(st.directory_serial));
  if (st.directory_expires_ms != 0) {
    e.Gauge("directory_expiry_timestamp_seconds",
            "When the directory in force expires, in Unix seconds.", {},
            SecondsOf(st.directory_expires_ms));
  }
  e.Gauge("audit_log_entries", "Entries in the audit log (its size).", {}, D(st.audit_size));
  if (st.last_checkpoint_size != 0) {
    e.Gauge("last_checkpoint_entries",
            "Audit log entries covered by the latest signed checkpoint (audit_log_entries "
            "minus this is what no checkpoint covers yet).",
            {}, D(st.last_checkpoint_size));
  }
  if (st.last_checkpoint_ms != 0) {
    e.Gauge("last_checkpoint_age_seconds",
            "Seconds since this broker signed its latest audit checkpoint (absent until it "
            "signs one after starting; none is signed while the log does not grow).",
            {}, AgeSeconds(now, st.last_checkpoint_ms));
  }
  if (st.storage_map_bytes != 0) {
    e.Gauge("storage_used_bytes",
            "High-water mark of the LMDB store (pages ever used times the page size).", {},
            D(st.storage_used_bytes));
    e.Gauge("storage_map_bytes",
            "LMDB map size: the most the store may grow to ([limits] map_size_mb).", {},
            D(st.storage_map_bytes));
  }
}

// Mailboxes and the commit latency histogram.
void AddMailboxMetrics(Exposition& e, const BrokerStatus& st, UnixMillis now) {
  for (const auto& m : st.mailboxes) {
    e.Gauge("mailbox_depth",
            "Envelopes waiting in an agency's mailbox on this broker (every agency homed here, "
            "and other mailboxes while they hold something).",
            {{"mailbox", m.mailbox}}, D(m.depth));
  }
  for (const auto& m : st.mailboxes) {
    e.Gauge("mailbox_oldest_queued_age_seconds",
            "Age of the oldest envelope waiting in an agency's mailbox (0: none waiting).",
            {{"mailbox", m.mailbox}}, AgeSeconds(now, m.oldest_queued_ms));
  }
  if (!st.mailboxes.empty()) {
    e.Gauge("mailboxes_truncated",
            "1 when more mailboxes hold something than the per-mailbox series show (at most "
            "1000), else 0.",
            {}, st.mailboxes_truncated ? 1 : 0);
  }
  if (st.commit_buckets.size() == kCommitSecondsBounds.size() + 1) {
    e.Histogram("commit_duration_seconds",
                "Duration of the writer's LMDB commits (group commits, fsync included).",
                std::vector<double>(kCommitSecondsBounds.begin(), kCommitSecondsBounds.end()),
                st.commit_buckets, st.commit_seconds_sum);
  }
  if (st.commit_envelope_buckets.size() == kCommitEnvelopesBounds.size() + 1) {
    e.Histogram("commit_envelopes",
                "Envelopes (submitted or relayed) stored per LMDB commit, of the commits that "
                "stored any: the group commit's batch size.",
                std::vector<double>(kCommitEnvelopesBounds.begin(), kCommitEnvelopesBounds.end()),
                st.commit_envelope_buckets, st.commit_envelopes_sum);
  }
}

// Per federation link.
void AddLinkMetrics(Exposition& e, const BrokerStatus& st, UnixMillis now) {
  for (const auto& l : st.links) {
    const MetricLabels peer = {{"peer", l.peer}};
    e.Gauge("link_up", "1 while the federation link to the peer broker is up, else 0.", peer,
            l.state == "up" ? 1 : 0);
    e.Gauge("link_backlog", "Envelopes waiting in the link mailbox for the peer broker.", peer,
            D(l.backlog));
    e.Gauge("link_control_backlog",
            "Consent revocations waiting to be passed on to the peer broker.", peer,
            D(l.control_backlog));
    e.Gauge("link_oldest_queued_age_seconds",
            "Age of the oldest envelope queued for the peer broker (0: none queued).", peer,
            AgeSeconds(now, l.oldest_queued_ms));
    e.Gauge("link_inflight", "Relays sent to the peer broker and not yet answered.", peer,
            D(l.inflight));
    e.Counter("link_forwarded_total", "Envelopes the peer broker acked. Since the broker started.",
              peer, D(l.forwarded));
    e.Counter("link_refused_total",
              "Envelopes the peer broker refused for good. Since the broker started.", peer,
              D(l.refused));
    const std::vector<double> bounds(kLinkSecondsBounds.begin(), kLinkSecondsBounds.end());
    e.Histogram("link_queue_wait_seconds",
                "How long relays waited in the link mailbox, from their commit here to their "
                "send to the peer broker (a resend counts again). Since the broker started.",
                peer, bounds, {l.queue_wait.buckets.begin(), l.queue_wait.buckets.end()},
                l.queue_wait.sum);
    e.Histogram("link_round_trip_seconds",
                "From a relay's send until the peer broker acked it (after its own commit). "
                "Since the broker started.",
                peer, bounds, {l.round_trip.buckets.begin(), l.round_trip.buckets.end()},
                l.round_trip.sum);
    e.Counter("link_sessions_total",
              "Sessions started with the peer broker (reconnects + 1). Since the broker started.",
              peer, D(l.sessions));
  }
}

}  // namespace

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
  Exposition e(kPrefix);
  const CheckResult health = CheckHealth(st, now);
  const CheckResult ready = CheckReady(st, now);
  e.Gauge("healthy",
          "1 while the event loop refreshes the status (GET /healthz answers 200), else 0.", {},
          health.ok ? 1 : 0);
  e.Gauge("ready",
          "1 when healthy with a current directory and room in the store (GET /readyz "
          "answers 200), else 0.",
          {}, ready.ok ? 1 : 0);
  if (st.time_ms == 0) return e.Text();  // nothing refreshed yet: nothing else to tell

  e.Gauge("info", "The broker's id, as a label (always 1).", {{"broker", st.broker_id}}, 1);
  e.Gauge("start_time_seconds", "When the broker started, in Unix seconds.", {},
          SecondsOf(st.started_ms));
  e.Gauge("status_age_seconds",
          "Seconds since the event loop last refreshed the status (it does so every second).", {},
          AgeSeconds(now, st.time_ms));

  AddCounters(e, st);
  AddStoreGauges(e, st, now);
  AddMailboxMetrics(e, st, now);
  AddLinkMetrics(e, st, now);
  return e.Text();
}

// ---------------------------------------------------------------- MetricsServer

MetricsServer::MetricsServer(std::unique_ptr<ProbeServer> probe) : probe_(std::move(probe)) {}

MetricsServer::~MetricsServer() { Stop(); }

const std::string& MetricsServer::url() const { return probe_->url(); }

void MetricsServer::Stop() { probe_->Stop(); }

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const MetricsOptions& options,
                                                            SnapshotFn snapshot) {
  ProbeHandlers h;
  h.metrics = [snapshot] { return FormatMetrics(snapshot(), SystemClock::Get().NowMillis()); };
  h.health = [snapshot] { return CheckHealth(snapshot(), SystemClock::Get().NowMillis()); };
  h.ready = [snapshot] { return CheckReady(snapshot(), SystemClock::Get().NowMillis()); };
  REFBUS_ASSIGN_OR_RETURN(auto probe,
                          ProbeServer::Start({options.bind, options.url_file, "broker"}, h));
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(probe)));
}

}  // namespace refbus::broker
