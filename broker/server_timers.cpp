// broker::Server's periodic work on the loop thread: redeliveries, directory reloads (and
// the re-routing of held entries a new directory calls for), the expiry and checkpoint
// timers, and the status file with its snapshot for metrics.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "broker/server.h"
#include "broker/server_internal.h"

namespace refbus::broker {

using server_internal::FileMtime;
using server_internal::kExpiryPeriodMs;
using server_internal::kLinkLogPeriodMs;
using server_internal::kTimerPeriodMs;

void Server::CheckTimers(UnixMillis now) {
  if (now - timers_.timer_check < kTimerPeriodMs) return;
  timers_.timer_check = now;
  CheckRedeliveries(now);
  FlushRefusals(now, false);
  if (reload_.exchange(false) || FileMtime(config_.directory) != directory_mtime_) {
    ReloadDirectory(now, true);
  }
  if (now - timers_.expiry >= kExpiryPeriodMs) {
    timers_.expiry = now;
    timers_.expiry_due = true;  // a write: the writer runs it with the next job
  }
}

void Server::CheckCheckpointTimer(UnixMillis now) {
  if (checkpoint_requested_.exchange(false)) timers_.checkpoint_due = true;
  if (now - timers_.checkpoint >= config_.checkpoint_interval_ms) timers_.checkpoint_due = true;
  // The interval restarts when the request goes out (in dispatch), not when it is due.
}

void Server::NoteKeyChanges(const schema::Directory& old, const schema::Directory& next) {
  for (const auto* list : {&old.agencies, &old.brokers, &old.auditors}) {
    for (const auto& before : *list) {
      const schema::Party* p = next.Find(before.id);
      const bool was_active = before.status == schema::PartyStatus::kActive;
      const schema::KeyRecord* old_key = before.ActiveKeys();
      const schema::KeyRecord* new_key = p != nullptr ? p->ActiveKeys() : nullptr;
      const bool revoked =
          was_active && (p == nullptr || p->status != schema::PartyStatus::kActive);
      const bool rotated =
          old_key != nullptr && new_key != nullptr && old_key->signing_key != new_key->signing_key;
      // Connections made with the old transport key are no longer admitted (CurrentPeer).
      const bool key_out = was_active && !revoked && old_key != nullptr &&
                           (new_key == nullptr || new_key->transport_key != old_key->transport_key);
      if (!revoked && !rotated && !key_out) continue;
      schema::AuditEntry e;
      e.event = schema::AuditEvent::kKeyRevoked;
      e.actor = before.id;
      e.directory_serial = next.serial;
      e.detail = revoked ? (p == nullptr ? "party dropped from the directory" : "party revoked")
                         : "keys rotated";
      pending_events_.push_back(std::move(e));
      if (!revoked && !key_out) continue;
      // Its connections stay open (a ROUTER cannot close one peer's), but its session is
      // forgotten: nothing more is delivered to it, and every frame it sends is refused
      // before it is read (RefuseCutOff). A reconnection is refused by ZAP.
      deliveries_.peers.erase(before.id);
      deliveries_.DropInflight(before.id);
      if (revoked) {
        spdlog::warn("{} is revoked by directory serial {}: cut off", before.id, next.serial);
      } else {
        spdlog::warn(
            "{} has another transport key in directory serial {}: its connections "
            "are cut off",
            before.id, next.serial);
      }
    }
  }
}

void Server::ReloadDirectory(UnixMillis now, bool forced) {
  (void)forced;
  directory_mtime_ = FileMtime(config_.directory);
  auto v = keys::LoadAndAcceptDirectory(config_.directory, anchor_, *trust_, now);
  if (!v.ok()) {
    spdlog::error("new directory refused, keeping serial {}: {}", directory_.directory.serial,
                  v.status().ToString());
    return;
  }
  uint64_t serial = v->signed_directory.directory.serial;
  if (serial == directory_.directory.serial) return;
  const schema::Directory& old = directory_.directory;
  const schema::Directory& next = v->signed_directory.directory;
  NoteKeyChanges(old, next);
  schema::AuditEntry loaded;
  loaded.event = schema::AuditEvent::kDirectoryLoaded;
  loaded.directory_serial = serial;
  pending_events_.push_back(std::move(loaded));
  bool moved = false;
  for (const auto& a : next.agencies) {
    const schema::Party* before = old.Find(a.id);
    moved = moved || (before != nullptr && before->home_broker != a.home_broker);
  }
  directory_ = std::move(v->signed_directory);
  vetted_grants_.clear();  // checked against the new directory from now on
  spdlog::info("loaded directory serial {}", serial);
  if (moved) PlanReroutes(directory_.directory);
}

void Server::PlanReroutes(const schema::Directory& dir) {
  auto boxes = store_->NonEmptyMailboxes();
  if (!boxes.ok()) {
    spdlog::critical("re-routing: cannot list mailboxes: {}", boxes.status().ToString());
    return;
  }
  size_t planned = 0;
  for (const auto& [box, depth] : *boxes) {
    const schema::Party* owner = dir.Find(box);
    if (owner == nullptr) continue;
    const bool is_link = owner->kind == schema::PartyKind::kBroker;
    if (!is_link &&
        (owner->kind != schema::PartyKind::kAgency || owner->home_broker == config_.id)) {
      continue;
    }
    planned += PlanMailboxReroutes(dir, box, is_link);
  }
  if (planned > 0) {
    spdlog::warn(
        "directory serial {}: {} held envelopes wait where their recipients are no "
        "longer routed; re-routing them",
        dir.serial, planned);
  }
}

size_t Server::PlanMailboxReroutes(const schema::Directory& dir, const std::string& box,
                                   bool is_link) {
  constexpr size_t kMaxScan = 1000000;
  // Where a recipient's copy goes from here ("" if nowhere: revoked or unroutable, it is
  // left where it is until it expires).
  auto target_of = [&](const std::string& recipient) -> std::string {
    const schema::Party* p = dir.Find(recipient);
    if (p == nullptr || p->status != schema::PartyStatus::kActive) return "";
    if (p->home_broker == config_.id) return recipient;
    const schema::Party* home = dir.Find(p->home_broker);
    if (home == nullptr || home->status != schema::PartyStatus::kActive) return "";
    return p->home_broker;
  };
  auto entries = store_->ReadMailboxIndex(box, kMaxScan);
  if (!entries.ok()) {
    spdlog::critical("re-routing: cannot read mailbox {}: {}", box, entries.status().ToString());
    return 0;
  }
  size_t planned = 0;
  for (const auto& m : *entries) {
    const std::vector<std::string> served = is_link ? m.serves : std::vector<std::string>{box};
    Reroute rr;
    rr.from = box;
    rr.seq = m.seq;
    rr.message_id = m.message_id;
    rr.directory_serial = dir.serial;
    bool moves = false;
    for (const auto& r : served) {
      std::string t = target_of(r);
      if (t.empty()) continue;
      if (t == box) {
        rr.keep = true;
        continue;
      }
      moves = true;
      if (std::find(rr.to.begin(), rr.to.end(), t) == rr.to.end()) rr.to.push_back(t);
      if (t != r) rr.serves[t].push_back(r);
    }
    if (!moves) continue;
    turn_.batch.reroutes.push_back(std::move(rr));
    ++planned;
  }
  return planned;
}

void Server::FillStatusMailboxes(BrokerStatus& st) const {
  // Every agency homed here (empty ones too, so each has a series), and any other mailbox
  // still holding something (an agency moved away); link mailboxes are in st.links.
  std::map<std::string, MailboxStatus> boxes;
  for (const auto& a : directory_.directory.agencies) {
    if (a.home_broker == config_.id) boxes[a.id] = MailboxStatus{a.id, 0, 0};
  }
  if (auto backlogs = store_->MailboxBacklogs(kMaxMailboxesInStatus); backlogs.ok()) {
    for (const auto& b : *backlogs) {
      const schema::Party* p = directory_.directory.Find(b.mailbox);
      if (p != nullptr && p->kind == schema::PartyKind::kBroker) continue;
      boxes[b.mailbox] = MailboxStatus{b.mailbox, b.depth, b.oldest_accepted_ms};
    }
  }
  for (auto& [id, m] : boxes) {
    if (st.mailboxes.size() == kMaxMailboxesInStatus) {
      st.mailboxes_truncated = true;
      break;
    }
    st.mailboxes.push_back(std::move(m));
  }
}

void Server::LogLinks(const BrokerStatus& st, UnixMillis now) {
  if (now - timers_.link_log < kLinkLogPeriodMs) return;
  timers_.link_log = now;
  for (const auto& l : st.links) {
    if (l.state == "up" && l.backlog == 0) continue;
    spdlog::warn("federation link to {}: {} for {} s, backlog {}, oldest queued {} s{}{}", l.peer,
                 l.state, (now - l.state_since_ms) / 1000, l.backlog,
                 l.oldest_queued_ms == 0 ? 0 : (now - l.oldest_queued_ms) / 1000,
                 l.problem.empty() ? "" : "; ", l.problem);
  }
}

void Server::WriteStatus(UnixMillis now) {
  BrokerStatus st;
  st.broker_id = config_.id;
  st.time_ms = now;
  st.started_ms = health_.started_ms;
  st.running = !stop_.load();
  st.directory_serial = directory_.directory.serial;
  st.directory_expires_ms = directory_.directory.expires_at_ms;
  auto audit_size = store_->AuditSize();
  st.audit_size = audit_size.ok() ? *audit_size : 0;
  // mdb_env_info reads the current meta page: safe beside the writer's transaction.
  if (auto usage = store_->env().Usage(); usage.ok()) {
    st.storage_used_bytes = usage->first;
    st.storage_map_bytes = usage->second;
  }
  st.counters = {{"accepted", stats_.accepted},
                 {"duplicates", stats_.duplicates},
                 {"refused", stats_.rejected},
                 {"delivered", stats_.delivered},
                 {"acked", stats_.acked},
                 {"commits", stats_.commits},
                 {"connections_refused", stats_.zap_refused},
                 {"checkpoints", stats_.checkpoints},
                 {"relays_accepted", stats_.relays_accepted},
                 {"relays_refused", stats_.relays_refused},
                 {"relayed_grant_checks", stats_.relayed_grant_checks},
                 {"routed_out", stats_.routed_out}};
  st.links = links_->Status(now, *store_);
  for (size_t k = 0; k < stats_.envelopes.size(); ++k) {
    for (size_t o = 0; o < kEnvelopeOutcomes; ++o) {
      st.envelopes.push_back({std::string(schema::Name(static_cast<schema::MessageKind>(k))),
                              kEnvelopeOutcomeNames[o], stats_.envelopes[k][o]});
    }
  }
  for (size_t r = 0; r < stats_.nacks.size(); ++r) {
    st.nacks.emplace_back(std::string(schema::Name(static_cast<schema::NackReason>(r))),
                          stats_.nacks[r]);
  }
  st.commit_buckets.assign(stats_.commit_buckets.begin(), stats_.commit_buckets.end());
  st.commit_seconds_sum = stats_.commit_seconds_sum;
  st.commit_envelope_buckets.assign(stats_.commit_envelope_buckets.begin(),
                                    stats_.commit_envelope_buckets.end());
  st.commit_envelopes_sum = stats_.commit_envelopes_sum;
  st.last_checkpoint_ms = health_.last_checkpoint_signed_ms;
  st.last_checkpoint_size = health_.last_checkpoint_size;
  FillStatusMailboxes(st);
  st.storage_full_since_ms = health_.storage_full_since;
  st.last_commit_error = health_.last_commit_error;
  if (Status s = WriteStatusFile(config_.status_file, st); !s.ok()) {
    spdlog::warn("status file not written: {}", s.message());
  }
  snapshot_.Set(st);
  LogLinks(st, now);
}

}  // namespace refbus::broker
