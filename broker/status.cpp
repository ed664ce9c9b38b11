#include "broker/status.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <ostream>

#include "core/file.h"

namespace refbus::broker {
namespace {

constexpr size_t kMaxStatusBytes = 1 << 20;

std::string Age(UnixMillis now, UnixMillis then) {
  if (then == 0 || now < then) return "-";
  UnixMillis s = (now - then) / 1000;
  if (s < 120) return std::to_string(s) + " s";
  if (s < 7200) return std::to_string(s / 60) + " min";
  return std::to_string(s / 3600) + " h";
}

}  // namespace

std::string EncodeStatus(const BrokerStatus& st) {
  nlohmann::ordered_json j;
  j["broker"] = st.broker_id;
  j["time_ms"] = st.time_ms;
  j["started_ms"] = st.started_ms;
  j["running"] = st.running;
  j["directory_serial"] = st.directory_serial;
  j["directory_expires_ms"] = st.directory_expires_ms;
  j["audit_size"] = st.audit_size;
  j["storage_used_bytes"] = st.storage_used_bytes;
  j["storage_map_bytes"] = st.storage_map_bytes;
  j["storage_full_since_ms"] = st.storage_full_since_ms;
  j["last_commit_error"] = st.last_commit_error;
  nlohmann::ordered_json counters = nlohmann::ordered_json::object();
  for (const auto& [k, v] : st.counters) counters[k] = v;
  j["counters"] = counters;
  nlohmann::ordered_json links = nlohmann::ordered_json::array();
  for (const auto& l : st.links) {
    nlohmann::ordered_json o;
    o["peer"] = l.peer;
    o["state"] = l.state;
    o["endpoint"] = l.endpoint;
    o["state_since_ms"] = l.state_since_ms;
    o["backlog"] = l.backlog;
    o["control_backlog"] = l.control_backlog;
    o["oldest_queued_ms"] = l.oldest_queued_ms;
    o["inflight"] = l.inflight;
    o["forwarded"] = l.forwarded;
    o["refused"] = l.refused;
    o["sessions"] = l.sessions;
    o["problem"] = l.problem;
    o["queue_wait_buckets"] = l.queue_wait.buckets;
    o["queue_wait_seconds_sum"] = l.queue_wait.sum;
    o["round_trip_buckets"] = l.round_trip.buckets;
    o["round_trip_seconds_sum"] = l.round_trip.sum;
    links.push_back(std::move(o));
  }
  j["links"] = links;
  j["commit_buckets"] = st.commit_buckets;
  j["commit_seconds_sum"] = st.commit_seconds_sum;
  j["commit_envelope_buckets"] = st.commit_envelope_buckets;
  j["commit_envelopes_sum"] = st.commit_envelopes_sum;
  j["last_checkpoint_ms"] = st.last_checkpoint_ms;
  j["last_checkpoint_size"] = st.last_checkpoint_size;
  nlohmann::ordered_json mailboxes = nlohmann::ordered_json::array();
  for (const auto& m : st.mailboxes) {
    if (m.depth == 0) continue;  // the file lists backlogs; metrics list every mailbox
    nlohmann::ordered_json o;
    o["mailbox"] = m.mailbox;
    o["depth"] = m.depth;
    o["oldest_queued_ms"] = m.oldest_queued_ms;
    mailboxes.push_back(std::move(o));
  }
  j["mailboxes"] = mailboxes;
  return j.dump(2) + "\n";
}

Status WriteStatusFile(const std::string& path, const BrokerStatus& status) {
  const std::string text = EncodeStatus(status);
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, kPublicFileMode);
  if (fd < 0) return IoError("cannot write " + tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return IoError("cannot write " + tmp + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return IoError("cannot rename " + tmp + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status PrintStatusFile(const std::string& path, bool json, UnixMillis now, UnixMillis stale_ms,
                       std::ostream& out) {
  auto bytes = ReadFile(path, kMaxStatusBytes);
  if (!bytes.ok()) {
    return bytes.status().WithContext("no status (is the broker running?)");
  }
  nlohmann::json j = nlohmann::json::parse(AsChars(*bytes), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Malformed(path + " is not a status file");
  if (json) {
    out << AsChars(*bytes);
    return Status::Ok();
  }
  UnixMillis t = j.value("time_ms", UnixMillis{0});
  bool running = j.value("running", false);
  out << "broker " << j.value("broker", std::string("?"))
      << (running ? (now > t && now - t > stale_ms ? "  STALE: no update for " + Age(now, t)
                                                   : std::string("  running"))
                  : std::string("  stopped"))
      << "  (up " << Age(now, j.value("started_ms", UnixMillis{0})) << ")\n";
  out << "directory serial " << j.value("directory_serial", uint64_t{0}) << ", audit log "
      << j.value("audit_size", uint64_t{0}) << " entries\n";
  const uint64_t used = j.value("storage_used_bytes", uint64_t{0});
  const uint64_t map = j.value("storage_map_bytes", uint64_t{0});
  if (map > 0) {
    out << "storage " << used / (1024 * 1024) << " of " << map / (1024 * 1024) << " MiB ("
        << used * 100 / map << "% of the map, high-water mark)\n";
  }
  if (j.contains("counters") && j["counters"].is_object()) {
    out << "counters:";
    for (const auto& [k, v] : j["counters"].items()) out << " " << k << "=" << v;
    out << "\n";
  }
  if (j.contains("mailboxes") && j["mailboxes"].is_array() && !j["mailboxes"].empty()) {
    out << "mailboxes with a backlog:\n";
    for (const auto& m : j["mailboxes"]) {
      out << "  " << m.value("mailbox", std::string("?")) << "  " << m.value("depth", uint64_t{0})
          << " waiting (oldest " << Age(now, m.value("oldest_queued_ms", UnixMillis{0})) << ")\n";
    }
  }
  if (j.contains("links") && j["links"].is_array() && !j["links"].empty()) {
    out << "federation links:\n";
    for (const auto& l : j["links"]) {
      out << "  " << l.value("peer", std::string("?")) << "  " << l.value("state", std::string("?"))
          << " for " << Age(now, l.value("state_since_ms", UnixMillis{0})) << "  backlog "
          << l.value("backlog", uint64_t{0}) << " (oldest "
          << Age(now, l.value("oldest_queued_ms", UnixMillis{0})) << ")  forwarded "
          << l.value("forwarded", uint64_t{0}) << "  refused " << l.value("refused", uint64_t{0})
          << "  " << l.value("endpoint", std::string());
      std::string problem = l.value("problem", std::string());
      if (!problem.empty()) out << "\n      " << problem;
      out << "\n";
    }
  }
  return Status::Ok();
}

}  // namespace refbus::broker
