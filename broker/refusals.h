// broker::RefusalLimiter: which refusals the audit log records one by one, and the
// aggregate entries that account for the rest (issue 17 item 2; schema/PROTOCOL.md
// section 6, "Refusals").
//
// A refusal costs the party that provokes it nothing, and an audit entry is for ever: one
// listed agency sending garbage would otherwise fill the broker's disk for everyone. So per
// (peer, reason) a window opens at the first refusal and lasts window_ms; the first
// audited_per_window refusals in it are audited individually as before (with their ids and
// hashes), and the rest are only counted. When the window closes (TakeDue), one
// ENVELOPE_REJECTED entry with refusal_count, first_refused_ms and last_refused_ms stands
// for the counted ones. Refusals of a party cut off by a newer directory (Note with
// may_audit false) are only counted: the directory change is on record (KEY_REVOKED), and
// each frame after it adds nothing but its number.
//
// Memory is bounded: at most max_tracked windows are open; opening one more closes the
// oldest early (its aggregate is emitted with the next TakeDue). Peers are parties that ZAP
// admitted, so their number is bounded by the directory anyway.
//
// Nothing is lost: every refusal is in exactly one entry, individual or aggregate, once
// TakeDue(..., everything = true) ran (the broker does that at a clean stop).
//
// Thread safety: none; one thread owns it (the broker's loop).
#ifndef REFBUS_BROKER_REFUSALS_H_
#define REFBUS_BROKER_REFUSALS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "schema/types.h"

namespace refbus::broker {

struct RefusalLimits {
  uint64_t audited_per_window = 10;  // config limits.refusals_audited_per_minute
  UnixMillis window_ms = 60 * kMillisPerSecond;
  size_t max_tracked = 4096;
};

class RefusalLimiter {
 public:
  explicit RefusalLimiter(RefusalLimits limits) : limits_(limits) {}

  // Counts one refusal of reason for peer at now. True: audit it individually (the caller
  // writes its entry); false: it is counted into the window's aggregate.
  [[nodiscard]] bool Note(const std::string& peer, schema::NackReason reason, UnixMillis now,
                          bool may_audit = true);

  // For refusals decided later (in the commit: consent scope, quota), where the caller must
  // say beforehand whether the refusal would be audited. MayAudit: whether peer's window for
  // reason still audits one by one (nothing is counted). NoteAudited: one refusal of that
  // window was audited (counted as audited even over the limit: several may have been let
  // through before the first came back).
  bool MayAudit(const std::string& peer, schema::NackReason reason, UnixMillis now) const;
  void NoteAudited(const std::string& peer, schema::NackReason reason, UnixMillis now);

  // Appends to out the aggregate entries of the windows closed by now (every window when
  // everything), and forgets those windows. directory_serial goes into the entries.
  void TakeDue(UnixMillis now, bool everything, uint64_t directory_serial,
               std::vector<schema::AuditEntry>& out);

  // Open windows (for tests and the status file).
  size_t tracked() const { return windows_.size(); }

 private:
  struct Window {
    UnixMillis start = 0;
    uint64_t audited = 0;  // refusals audited individually in this window
    uint64_t counted = 0;  // refusals only counted: the aggregate's refusal_count
    UnixMillis first = 0;  // of the counted ones
    UnixMillis last = 0;
  };
  using Key = std::pair<std::string, schema::NackReason>;

  // Whether w's window is over at now (a clock that went back keeps it open).
  bool Closed(const Window& w, UnixMillis now) const {
    return now >= w.start && now - w.start >= limits_.window_ms;
  }
  // The aggregate entry for a window with counted refusals, into closed_.
  void Close(const Key& key, const Window& w);
  // The open window of key at now (a new one if it has none or its window is over).
  Window& Open(const Key& key, UnixMillis now);
  // Makes room for one more window: closes the one that opened first.
  void EvictOldest();

  RefusalLimits limits_;
  std::map<Key, Window> windows_;
  std::vector<schema::AuditEntry> closed_;  // aggregates waiting for TakeDue
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_REFUSALS_H_
