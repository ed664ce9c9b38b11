// The running broker's status, for operators: a small JSON file the broker rewrites every
// second (and once more when it stops), and `refbus-broker --status`, which prints it.
//
// The file holds counters, the directory serial and expiry, the audit log's size, the LMDB
// store's use of its map and, per federation link, its state (up, down, connecting),
// backlog and the age of its oldest queued envelope. It holds ids and numbers only (no
// content, no keys). It is replaced by rename, so a reader never sees half of one. The same
// BrokerStatus feeds the metrics and health checks (broker/metrics.h).
//
// Thread safety: functions only; no shared state, but for StatusBoard (its own mutex).
#ifndef REFBUS_BROKER_STATUS_H_
#define REFBUS_BROKER_STATUS_H_

#include <array>
#include <iosfwd>
#include <string>
#include <vector>

#include "broker/link.h"
#include "core/clock.h"
#include "core/mutex.h"
#include "core/status.h"

namespace refbus::broker {

// Upper bounds (seconds) of the commit latency histogram's buckets: an fsync on a fast
// SSD takes about a millisecond, a loaded disk tens; a second is an outage.
inline constexpr std::array<double, 11> kCommitSecondsBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};

// Upper bounds of the histogram of envelopes stored per commit (group commit batch size).
inline constexpr std::array<double, 11> kCommitEnvelopesBounds = {1,  2,   4,   8,   16,  32,
                                                                  64, 128, 256, 512, 1024};

// Envelopes (submitted by agencies or relayed by peer brokers) of one kind with one outcome.
struct EnvelopeCount {
  std::string kind;     // schema::Name(MessageKind): "referral", ...; "unspecified" when the
                        // envelope did not decode
  std::string outcome;  // "accepted", "duplicate", "refused"
  uint64_t count = 0;
};

// The queue of one agency's mailbox on this broker (link mailboxes are LinkStatus).
struct MailboxStatus {
  std::string mailbox;              // the agency id
  uint64_t depth = 0;               // envelopes waiting for it
  UnixMillis oldest_queued_ms = 0;  // when the oldest of them was committed (0: none)
};

struct BrokerStatus {
  std::string broker_id;
  UnixMillis time_ms = 0;
  UnixMillis started_ms = 0;
  bool running = true;                  // false in the file written at a clean stop
  uint64_t directory_serial = 0;        // 0: no directory loaded
  UnixMillis directory_expires_ms = 0;  // the loaded directory's expiry (0: unknown)
  uint64_t audit_size = 0;
  // The LMDB store: its high-water mark (pages ever used times the page size; LMDB reuses
  // freed pages below it, so it does not shrink) and its map size, the most it may grow to.
  // A commit that needs a page past the map fails as storage full. 0: unknown.
  uint64_t storage_used_bytes = 0;
  uint64_t storage_map_bytes = 0;
  // Since when commits refuse new envelopes as storage full (0: they do not); the last
  // commit that failed outright, if the latest one did (empty: it did not).
  UnixMillis storage_full_since_ms = 0;
  std::string last_commit_error;
  std::vector<std::pair<std::string, uint64_t>> counters;
  std::vector<LinkStatus> links;
  // Since the broker started: envelopes by kind and outcome (every pair, zeros included),
  // and the Nack frames it sent by reason (schema::Name(NackReason), every reason).
  std::vector<EnvelopeCount> envelopes;
  std::vector<std::pair<std::string, uint64_t>> nacks;
  // Every agency homed here, and any other mailbox still holding something, at most
  // kMaxMailboxesInStatus of them (mailboxes_truncated: more were left out).
  std::vector<MailboxStatus> mailboxes;
  bool mailboxes_truncated = false;
  // LMDB commits' durations (the writer's Store::Commit calls, fsync included): per bucket
  // of kCommitSecondsBounds and a last one for longer (not cumulative), and their sum.
  // Empty before the first refresh.
  std::vector<uint64_t> commit_buckets;
  double commit_seconds_sum = 0;
  // Envelopes (submitted or relayed) per commit that stored any: per bucket of
  // kCommitEnvelopesBounds, then a last one for more; and their sum.
  std::vector<uint64_t> commit_envelope_buckets;
  double commit_envelopes_sum = 0;
  // The latest audit checkpoint this broker signed since it started (0: none yet; the
  // signing time of an earlier run's checkpoints is not stored), and the log size the
  // latest checkpoint covers (0: unknown yet).
  UnixMillis last_checkpoint_ms = 0;
  uint64_t last_checkpoint_size = 0;
};

// Per-mailbox series are bounded: a directory lists a few hundred agencies, and a scrape
// or status file must not grow with a misconfigured store.
inline constexpr size_t kMaxMailboxesInStatus = 1000;

std::string EncodeStatus(const BrokerStatus& status);

// Writes the status file (temporary file and rename; not fsynced: it is rewritten soon).
Status WriteStatusFile(const std::string& path, const BrokerStatus& status);

// Prints the status file for people (or as it is, with json), with ages relative to now.
// A file older than stale_ms is reported as stale: the broker may have stopped or hung.
Status PrintStatusFile(const std::string& path, bool json, UnixMillis now, UnixMillis stale_ms,
                       std::ostream& out);

// The latest BrokerStatus, set by the broker's loop (every second, and at stop) and read
// from any thread (metrics, health checks).
class StatusBoard {
 public:
  void Set(const BrokerStatus& status) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    status_ = status;
  }
  BrokerStatus Get() const EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    return status_;
  }

 private:
  mutable Mutex mu_;
  BrokerStatus status_ GUARDED_BY(mu_);
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_STATUS_H_
