#include "broker/refusals.h"

#include <spdlog/spdlog.h>

namespace refbus::broker {

RefusalLimiter::Window& RefusalLimiter::Open(const Key& key, UnixMillis now) {
  auto it = windows_.find(key);
  if (it != windows_.end() && Closed(it->second, now)) {
    Close(it->first, it->second);
    windows_.erase(it);
    it = windows_.end();
  }
  if (it == windows_.end()) {
    if (windows_.size() >= limits_.max_tracked) EvictOldest();
    it = windows_.emplace(key, Window{now, 0, 0, 0, 0}).first;
  }
  return it->second;
}

bool RefusalLimiter::MayAudit(const std::string& peer, schema::NackReason reason,
                              UnixMillis now) const {
  auto it = windows_.find(Key(peer, reason));
  return it == windows_.end() || Closed(it->second, now) ||
         it->second.audited < limits_.audited_per_window;
}

void RefusalLimiter::NoteAudited(const std::string& peer, schema::NackReason reason,
                                 UnixMillis now) {
  ++Open(Key(peer, reason), now).audited;
}

bool RefusalLimiter::Note(const std::string& peer, schema::NackReason reason, UnixMillis now,
                          bool may_audit) {
  Window& w = Open(Key(peer, reason), now);
  if (may_audit && w.audited < limits_.audited_per_window) {
    ++w.audited;
    return true;
  }
  if (w.counted == 0) {
    w.first = now;
    spdlog::warn(
        "refusals ({}) from {}: {} audited one by one in this {} s window; further ones are "
        "counted and recorded together when it closes",
        schema::Name(reason), peer.empty() ? "?" : peer, w.audited,
        limits_.window_ms / kMillisPerSecond);
  }
  ++w.counted;
  w.last = std::max(w.last, now);
  return false;
}

void RefusalLimiter::TakeDue(UnixMillis now, bool everything, uint64_t directory_serial,
                             std::vector<schema::AuditEntry>& out) {
  for (auto it = windows_.begin(); it != windows_.end();) {
    if (everything || Closed(it->second, now)) {
      Close(it->first, it->second);
      it = windows_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& e : closed_) {
    e.directory_serial = directory_serial;
    out.push_back(std::move(e));
  }
  closed_.clear();
}

void RefusalLimiter::Close(const Key& key, const Window& w) {
  if (w.counted == 0) return;
  schema::AuditEntry e;
  e.event = schema::AuditEvent::kEnvelopeRejected;
  e.actor = key.first;
  e.reason = key.second;
  e.refusal_count = w.counted;
  e.first_refused_ms = w.first;
  e.last_refused_ms = w.last;
  e.detail = std::to_string(w.counted) + " refusals not recorded one by one (" +
             std::to_string(w.audited) + " were, in the window opened at " +
             std::to_string(w.start) + ")";
  spdlog::warn("refusals ({}) from {}: {} more in the window, recorded as one audit entry",
               schema::Name(key.second), key.first.empty() ? "?" : key.first, w.counted);
  closed_.push_back(std::move(e));
}

void RefusalLimiter::EvictOldest() {
  auto oldest = windows_.begin();
  for (auto it = windows_.begin(); it != windows_.end(); ++it) {
    if (it->second.start < oldest->second.start) oldest = it;
  }
  if (oldest == windows_.end()) return;
  Close(oldest->first, oldest->second);
  windows_.erase(oldest);
}

}  // namespace refbus::broker
