// The running broker's status, for operators: a small JSON file the broker rewrites every
// second (and once more when it stops), and `refbus-broker --status`, which prints it.
//
// The file holds counters, the directory serial and expiry, the audit log's size, the LMDB
// store's use of its map and, per federation link, its state (up, down, connecting),
// backlog and the age of its oldest queued envelope. It holds ids and numbers only (no
// content, no keys). It is replaced by rename, so a reader never sees half of one. The same
// BrokerStatus feeds the metrics and health checks (broker/metrics.h).
//
// Thread safety: functions only; no shared state.
#ifndef REFBUS_BROKER_STATUS_H_
#define REFBUS_BROKER_STATUS_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "broker/link.h"
#include "core/clock.h"
#include "core/status.h"

namespace refbus::broker {

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
};

std::string EncodeStatus(const BrokerStatus& status);

// Writes the status file (temporary file and rename; not fsynced: it is rewritten soon).
Status WriteStatusFile(const std::string& path, const BrokerStatus& status);

// Prints the status file for people (or as it is, with json), with ages relative to now.
// A file older than stale_ms is reported as stale: the broker may have stopped or hung.
Status PrintStatusFile(const std::string& path, bool json, UnixMillis now, UnixMillis stale_ms,
                       std::ostream& out);

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_STATUS_H_
