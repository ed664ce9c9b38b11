// Engine: the deletion center's work queue, its watch list and its statistics (PROTOCOL.md
// 10.2-10.4; the values and pure steps are agent/deletion_work.h). Every item of a request
// held whole is linked to the one work item of its canonical URL or content hash; a status
// set on the work item is reported to each linked requester under that requester's own
// request and grant (no new message kind: an ordinary DeletionStatusReport delta).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <set>

#include "agent/deletion_work.h"
#include "agent/engine_impl.h"
#include "keys/scope.h"

namespace refbus::agent {
namespace {

constexpr const char* kWorkPublishedKey = "watch-list-published";

Result<std::optional<WorkItem>> LoadWork(const CaseStore::Txn& txn, const std::string& id) {
  REFBUS_ASSIGN_OR_RETURN(auto j, txn.Get(Table::kDeletionWork, id));
  if (!j) return std::optional<WorkItem>();
  REFBUS_ASSIGN_OR_RETURN(WorkItem w, WorkItemFromJson(*j));
  return std::optional<WorkItem>(std::move(w));
}

Result<std::vector<WorkItem>> LoadAllWork(const CaseStore::Txn& txn) {
  REFBUS_ASSIGN_OR_RETURN(auto all, txn.List(Table::kDeletionWork));
  std::vector<WorkItem> out;
  out.reserve(all.size());
  for (const auto& [key, j] : all) {
    REFBUS_ASSIGN_OR_RETURN(WorkItem w, WorkItemFromJson(j));
    out.push_back(std::move(w));
  }
  return out;
}

// Every watch list this center imported, by publisher.
Result<std::vector<WatchHeld>> LoadHeldLists(const CaseStore::Txn& txn) {
  REFBUS_ASSIGN_OR_RETURN(auto all, txn.ListPrefix(Table::kMeta, kWatchHeldPrefix));
  std::vector<WatchHeld> out;
  for (const auto& [key, j] : all) {
    REFBUS_ASSIGN_OR_RETURN(WatchHeld h, WatchHeldFromJson(j));
    out.push_back(std::move(h));
  }
  return out;
}

void NoteKnownFrom(WorkItem& w, const std::vector<WatchHeld>& held) {
  if (w.content_sha256.empty()) return;
  for (const auto& h : held) {
    if (h.hashes.count(w.content_sha256) != 0 &&
        std::find(w.known_from.begin(), w.known_from.end(), h.publisher) == w.known_from.end()) {
      w.known_from.push_back(h.publisher);
    }
  }
}

// Opens a notice's sealed answer (the first copy whose grant's key is still held), or
// says why it cannot be shown.
using AnswerReader = std::function<std::string(const TakedownNotice&, size_t)>;

Json WorkJson(const WorkItem& w, UnixMillis as_of, int64_t overdue_days, const AnswerReader& read) {
  std::set<std::string> requesters;
  for (const auto& l : w.links) requesters.insert(l.requester);
  Json j = WorkItemToJson(w);
  for (size_t i = 0; i < w.notices.size(); ++i) {
    Json& n = j["notices"][i];
    n.erase("answer_sealed");
    if (!w.notices[i].answer_sealed.empty()) n["answer"] = read(w.notices[i], i);
  }
  j["overdue"] = w.Overdue(as_of, overdue_days);
  j["monitored"] = w.Monitored();
  j["requesters"] = requesters;
  return j;
}

// The hashes a center's watch list holds now: monitored work items with a content hash
// (they stay after removal).
std::set<std::string> WatchedHashes(const std::vector<WorkItem>& all) {
  std::set<std::string> out;
  for (const auto& w : all) {
    if (w.Monitored() && !w.content_sha256.empty()) out.insert(w.content_sha256);
  }
  return out;
}

// The platform's answer of notice `index`, sealed under the data key of each grant linked
// to the work item and in force (PROTOCOL.md 10.2); none when no grant is in force.
Result<std::vector<SealedText>> SealNoticeAnswer(GrantKeys& keys, const CaseStore::Txn& txn,
                                                 const WorkItem& w, size_t index,
                                                 const std::string& answer) {
  std::vector<SealedText> out;
  if (answer.empty()) return out;
  std::set<std::string> grants;
  for (const auto& l : w.links) grants.insert(l.grant_id);
  for (const auto& g : grants) {
    REFBUS_ASSIGN_OR_RETURN(auto rec, Load<GrantRecord>(txn, g));
    if (!rec || rec->revoked) continue;
    auto sealed = keys.Seal(g, NoticeAnswerPlace(w.work_id, index), answer);
    if (!sealed.ok()) {
      if (sealed.status().code() == Status::Code::kFailedPrecondition) continue;  // purged
      return sealed.status();
    }
    out.push_back(std::move(*sealed));
  }
  return out;
}

// The answer from the first copy whose grant's key is still held, or why it cannot be
// shown.
std::string ReadNoticeAnswer(GrantKeys& keys, const WorkItem& w, const TakedownNotice& n,
                             size_t index) {
  std::string why = "[purged: the data of every grant it was sealed under was purged]";
  for (const auto& x : n.answer_sealed) {
    auto opened = keys.Unseal(x, NoticeAnswerPlace(w.work_id, index));
    if (opened.ok()) return *opened;
    if (opened.status().code() != Status::Code::kFailedPrecondition) {
      why = "[unreadable: " + opened.status().message() + "]";
    }
  }
  return why;
}

}  // namespace

Status Engine::Impl::LinkWorkItems(CaseStore::Txn& txn, const DeletionRecord& r,
                                   const std::vector<schema::DeletionItem>& items) {
  REFBUS_ASSIGN_OR_RETURN(auto held, LoadHeldLists(txn));
  const UnixMillis now = Now();
  std::map<std::string, WorkItem> touched;  // work id -> item, written once at the end
  size_t created = 0;
  for (const auto& item : items) {
    const std::vector<std::string> keys = WorkKeys(item);
    std::string id;
    for (const auto& k : keys) {  // the first key already indexed names the work item
      REFBUS_ASSIGN_OR_RETURN(auto j, txn.Get(Table::kDeletionWorkIndex, k));
      if (j && j->is_string()) {
        id = j->get<std::string>();
        break;
      }
    }
    if (id.empty()) id = WorkIdFor(keys.front());
    auto it = touched.find(id);
    if (it == touched.end()) {
      REFBUS_ASSIGN_OR_RETURN(auto w, LoadWork(txn, id));
      if (!w) {
        w.emplace();
        w->work_id = id;
        w->platform = WorkPlatform(item.platform);
        w->created_at_ms = now;
        ++created;
      }
      it = touched.emplace(id, std::move(*w)).first;
    }
    WorkItem& w = it->second;
    for (const auto& k : keys) {
      if (k.starts_with("u:") && w.url_key.empty()) w.url_key = k.substr(2);
      if (k.starts_with("h:") && w.content_sha256.empty()) w.content_sha256 = k.substr(2);
      REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletionWorkIndex, k, Json(id)));
    }
    if (w.platform.empty()) w.platform = WorkPlatform(item.platform);
    w.links.push_back(
        {r.request_id, item.item_id, r.peer, r.grant_id, now, r.monitor.value_or(false)});
    w.updated_at_ms = now;
    NoteKnownFrom(w, held);
  }
  for (const auto& [id, w] : touched) {
    REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletionWork, id, WorkItemToJson(w)));
  }
  TimelineEvent ev = Event("deletion-work-linked");
  ev.request_id = r.request_id;
  ev.items = items.size();
  spdlog::info("agent {}: deletion request {}: {} items linked to {} work items ({} new)", me(),
               r.request_id, items.size(), touched.size(), created);
  return Timeline(txn, r.case_ref, std::move(ev));
}

Status Engine::Impl::EndWatching(CaseStore::Txn& txn, const std::string& grant_key,
                                 const std::string& reason, const std::string& by) {
  const std::string why = "consent revoked (" + reason + ")";
  // The requester (and observers): monitored requests under the grant stop, and say why.
  REFBUS_ASSIGN_OR_RETURN(auto requests, LoadAll<DeletionRecord>(txn));
  for (auto& [qid, r] : requests) {
    if (r.grant_id != grant_key || r.side == DeletionSide::kDeletionCenter) continue;
    if (!r.monitor.value_or(false) || r.monitoring_stopped) continue;
    r.monitoring_stopped = why;
    REFBUS_RETURN_IF_ERROR(Save(txn, qid, r));
    TimelineEvent ev = Event("deletion-monitoring-stopped");
    ev.request_id = qid;
    ev.to = r.peer;
    ev.by = by;
    ev.reason = reason;
    REFBUS_RETURN_IF_ERROR(Timeline(txn, r.case_ref, std::move(ev)));
  }
  // The deletion center: the grant's links leave the queue; watching ends where no
  // monitoring requester is left.
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAllWork(txn));
  std::map<std::string, std::pair<std::string, uint64_t>> per_request;  // -> case, count
  for (auto& w : all) {
    const bool watched = w.Monitored();
    const auto keep = std::stable_partition(
        w.links.begin(), w.links.end(), [&](const WorkLink& l) { return l.grant_id != grant_key; });
    if (keep == w.links.end()) continue;
    for (auto l = keep; l != w.links.end(); ++l) per_request[l->request_id].second++;
    w.unlinked += static_cast<uint64_t>(w.links.end() - keep);
    w.links.erase(keep, w.links.end());
    if (watched && !w.Monitored()) w.watch_ended = why;
    w.updated_at_ms = Now();
    REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletionWork, w.work_id, WorkItemToJson(w)));
  }
  for (const auto& [qid, n] : per_request) {
    REFBUS_ASSIGN_OR_RETURN(auto r, Load<DeletionRecord>(txn, qid));
    if (!r) continue;
    TimelineEvent ev = Event("deletion-work-unlinked");
    ev.request_id = qid;
    ev.items = n.second;
    ev.reason = reason;
    REFBUS_RETURN_IF_ERROR(Timeline(txn, r->case_ref, std::move(ev)));
  }
  return Status::Ok();
}

Result<size_t> Engine::Impl::SealLegacyNoticeAnswers(CaseStore::Txn& txn) {
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAllWork(txn));
  size_t sealed = 0;
  for (auto& w : all) {
    bool changed = false;
    for (size_t i = 0; i < w.notices.size(); ++i) {
      TakedownNotice& n = w.notices[i];
      if (n.answer.empty() || !n.answer_sealed.empty()) continue;
      REFBUS_ASSIGN_OR_RETURN(n.answer_sealed, SealNoticeAnswer(*grant_keys, txn, w, i, n.answer));
      n.answer.clear();  // sealed, or dropped: no grant in force to keep it under
      changed = true;
      ++sealed;
    }
    if (changed) {
      REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletionWork, w.work_id, WorkItemToJson(w)));
    }
  }
  return sealed;
}

// ---- commands ----

Result<Json> Engine::DeletionWork(const Json& query) {
  Impl& d = *impl_;
  const bool only_overdue = query.value("overdue", false);
  const std::string platform = query.value("platform", "");
  const UnixMillis as_of = query.value("as_of_ms", Impl::Now());
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAllWork(txn));
  const int64_t days = d.options.deletion_overdue_days;
  std::map<std::string, Json> groups;
  size_t overdue = 0;
  for (const auto& w : all) {
    const bool late = w.Overdue(as_of, days);
    overdue += late ? 1 : 0;
    if ((only_overdue && !late) || (!platform.empty() && w.platform != platform)) continue;
    auto& g = groups[w.platform];
    if (g.is_null()) g = Json::array();
    g.push_back(WorkJson(w, as_of, days, [&](const TakedownNotice& n, size_t i) {
      return ReadNoticeAnswer(*d.grant_keys, w, n, i);
    }));
  }
  Json platforms = Json::array();
  for (auto& [p, items] : groups) platforms.push_back({{"platform", p}, {"items", items}});
  return Json{{"overdue_days", days},
              {"as_of_ms", as_of},
              {"work_items", all.size()},
              {"overdue", overdue},
              {"platforms", platforms}};
}

Result<Json> Engine::SetDeletionWorkStatus(const std::string& work_id, const Json& body) {
  Impl& d = *impl_;
  if (!body.is_object() || !body.contains("status") || !body["status"].is_string()) {
    return InvalidArgument("expected {status, operator}");
  }
  auto status = schema::ParseDeletionItemStatus(body["status"].get<std::string>());
  if (!status) return InvalidArgument("'status' is not a deletion item status");
  REFBUS_ASSIGN_OR_RETURN(std::string op,
                          ParseOperatorOnly(Json{{"operator", body.value("operator", "")}}));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto found, LoadWork(txn, work_id));
  if (!found) return NotFound("no deletion work item " + work_id.substr(0, 64));
  WorkItem& w = *found;
  w.status = std::string(schema::Name(*status));
  w.updated_at_ms = Impl::Now();
  std::map<std::string, std::vector<StatusLine>> wanted;  // request -> its items
  std::set<std::string> told, unlinked;
  std::vector<WorkLink> kept;
  for (const auto& l : w.links) {
    REFBUS_ASSIGN_OR_RETURN(auto g, Load<GrantRecord>(txn, l.grant_id));
    if (!g || g->revoked) {  // consent revoked: not told, and the link goes
      unlinked.insert(l.requester);
      ++w.unlinked;
      continue;
    }
    kept.push_back(l);
    wanted[l.request_id].push_back({l.item_id, *status, 0});
  }
  w.links = std::move(kept);
  if (!w.Monitored() && w.watch_ended.empty() && !unlinked.empty()) {
    w.watch_ended = "consent revoked";
  }
  for (const auto& [qid, lines] : wanted) {
    REFBUS_ASSIGN_OR_RETURN(auto r, Load<DeletionRecord>(txn, qid));
    if (!r || r->side != DeletionSide::kDeletionCenter) continue;
    REFBUS_ASSIGN_OR_RETURN(std::vector<StatusLine> delta, StatusDelta(r->items, lines));
    REFBUS_ASSIGN_OR_RETURN(DeletionReported rep, d.SendDeletionDelta(txn, *r, delta, op));
    if (rep.parts > 0) told.insert(r->peer);
  }
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletionWork, w.work_id, WorkItemToJson(w)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return Json{{"work_id", w.work_id}, {"status", w.status}, {"told", told}, {"unlinked", unlinked}};
}

Result<Json> Engine::RecordTakedownNotice(const std::string& work_id, const Json& body) {
  Impl& d = *impl_;
  if (!body.is_object() || !body.contains("platform") || !body["platform"].is_string() ||
      body["platform"].get<std::string>().empty() ||
      body["platform"].get<std::string>().size() > 128) {
    return InvalidArgument(
        "expected {platform (1 to 128 bytes), sent_at_ms?, answer?, removed?, operator}");
  }
  if (body.contains("answer") &&
      (!body["answer"].is_string() || body["answer"].get<std::string>().size() > 1024)) {
    return InvalidArgument("'answer' must be text of at most 1024 bytes");
  }
  REFBUS_ASSIGN_OR_RETURN(std::string op,
                          ParseOperatorOnly(Json{{"operator", body.value("operator", "")}}));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto found, LoadWork(txn, work_id));
  if (!found) return NotFound("no deletion work item " + work_id.substr(0, 64));
  WorkItem& w = *found;
  TakedownNotice n;
  n.recorded_at_ms = Impl::Now();
  n.sent_at_ms = body.contains("sent_at_ms") && body["sent_at_ms"].is_number_unsigned()
                     ? body["sent_at_ms"].get<UnixMillis>()
                     : n.recorded_at_ms;
  n.platform = WorkPlatform(body["platform"].get<std::string>());
  // The answer is kept only sealed under the linked requesters' grants (none in force:
  // not kept, and the answer says so).
  const std::string answer = body.value("answer", "");
  REFBUS_ASSIGN_OR_RETURN(n.answer_sealed,
                          SealNoticeAnswer(*d.grant_keys, txn, w, w.notices.size(), answer));
  const bool answer_kept = answer.empty() || !n.answer_sealed.empty();
  n.removed = body.value("removed", false);
  n.operator_ref = op;
  w.notices.push_back(std::move(n));
  w.updated_at_ms = Impl::Now();
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletionWork, w.work_id, WorkItemToJson(w)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  Json out = WorkJson(
      w, Impl::Now(), d.options.deletion_overdue_days,
      [&](const TakedownNotice& t, size_t i) { return ReadNoticeAnswer(*d.grant_keys, w, t, i); });
  if (!answer_kept) {
    out["answer_not_kept"] =
        "no requester's consent is in force to seal the platform's answer under";
  }
  return out;
}

Result<Json> Engine::PublishWatchList(const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, ParseOperatorOnly(body));
  if (body.contains("send") && !body["send"].is_boolean()) {
    return InvalidArgument("'send' must be true or false");
  }
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAllWork(txn));
  const std::set<std::string> now_set = WatchedHashes(all);
  REFBUS_ASSIGN_OR_RETURN(auto prev_json, txn.Get(Table::kMeta, kWorkPublishedKey));
  WatchHeld prev;
  if (prev_json) {
    REFBUS_ASSIGN_OR_RETURN(prev, WatchHeldFromJson(*prev_json));
  }
  WatchList full;
  full.publisher = d.me();
  full.version = prev.version + 1;
  full.issued_at_ms = Impl::Now();
  full.added = now_set;
  Json out = {{"version", full.version}, {"hashes", now_set.size()}, {"operator", op}};
  out["full"] = SignWatchList(full, d.identity);
  if (prev.version > 0) {
    WatchList delta = full;
    delta.base_version = prev.version;
    delta.added.clear();
    std::set_difference(now_set.begin(), now_set.end(), prev.hashes.begin(), prev.hashes.end(),
                        std::inserter(delta.added, delta.added.end()));
    std::set_difference(prev.hashes.begin(), prev.hashes.end(), now_set.begin(), now_set.end(),
                        std::inserter(delta.removed, delta.removed.end()));
    out["delta"] = SignWatchList(delta, d.identity);
  }
  prev.publisher = d.me();
  prev.version = full.version;
  prev.hashes = now_set;
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kMeta, kWorkPublishedKey, WatchHeldToJson(prev)));
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kMeta, kWatchPublishedFileKey, out["full"]));
  // Over the bus (10.3) unless the operator carries it: the delta when there is one (a
  // center without its base asks for the full list).
  if (body.value("send", true)) {
    REFBUS_ASSIGN_OR_RETURN(
        out["bus"],
        d.SendWatchListToCenters(txn, out.contains("delta") ? out["delta"] : out["full"]));
  }
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  spdlog::info("agent {}: watch list version {} published ({} hashes) by {}", d.me(), full.version,
               now_set.size(), op);
  return out;
}

Result<Json> Engine::Impl::ImportWatchFile(CaseStore::Txn& txn, const Json& file,
                                           const std::string& from) {
  REFBUS_ASSIGN_OR_RETURN(WatchList list, VerifyWatchList(file, dir(), Now()));
  if (list.publisher == me()) return InvalidArgument("this center's own watch list");
  if (!from.empty() && list.publisher != from) {
    return PermissionDenied("a watch list sent by " + from + " names publisher " + list.publisher +
                            ": a center sends its own list only");
  }
  const std::string key = kWatchHeldPrefix + list.publisher;
  REFBUS_ASSIGN_OR_RETURN(auto held_json, txn.Get(Table::kMeta, key));
  WatchHeld held;
  if (held_json) {
    REFBUS_ASSIGN_OR_RETURN(held, WatchHeldFromJson(*held_json));
  }
  if (NeedsFullList(held, list)) {
    return Json{
        {"needs_full",
         "watch list delta " + std::to_string(list.version) + " from " + list.publisher +
             " applies to version " + std::to_string(list.base_version) + "; version " +
             std::to_string(held.version) + " is held: ask the publisher for the full list"},
        {"publisher", list.publisher},
        {"held_version", held.version}};
  }
  Status applied = ApplyWatchList(held, list);
  if (!applied.ok()) {
    spdlog::warn("agent {}: watch list from {} refused: {}", me(), list.publisher,
                 applied.message());
    return applied;
  }
  REFBUS_RETURN_IF_ERROR(txn.Put(Table::kMeta, key, WatchHeldToJson(held)));
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAllWork(txn));
  size_t recognized = 0;
  for (auto& w : all) {
    const size_t before = w.known_from.size();
    NoteKnownFrom(w, {held});
    if (w.known_from.size() == before) continue;
    ++recognized;
    REFBUS_RETURN_IF_ERROR(txn.Put(Table::kDeletionWork, w.work_id, WorkItemToJson(w)));
  }
  return Json{{"publisher", held.publisher},
              {"version", held.version},
              {"hashes", held.hashes.size()},
              {"recognized", recognized}};
}

Result<Json> Engine::ImportWatchList(const Json& body) {
  Impl& d = *impl_;
  if (!body.is_object() || !body.contains("file")) return InvalidArgument("expected {file}");
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(Json out, d.ImportWatchFile(txn, body["file"], ""));
  if (out.contains("needs_full")) {
    spdlog::warn("agent {}: watch list refused: {}", d.me(), out["needs_full"].get<std::string>());
    return FailedPrecondition(out["needs_full"].get<std::string>());
  }
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return out;
}

Result<Json> Engine::DeletionStats(const std::string& month) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(auto range, MonthRange(month));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAllWork(txn));
  std::map<StatsCell, uint64_t> counts;
  for (const auto& w : all) {
    for (const auto& l : w.links) {
      if (l.linked_at_ms < range.first || l.linked_at_ms >= range.second) continue;
      const schema::Party* p = d.dir().Find(l.requester);
      StatsCell c;
      c.agency_type = p != nullptr ? std::string(schema::Name(p->agency_type)) : "unknown";
      c.region = p != nullptr && !p->region.empty() ? p->region : "unknown";
      c.outcome = w.status;
      counts[c]++;
    }
  }
  std::vector<StatsCell> cells;
  for (const auto& [cell, n] : counts) {
    StatsCell c = cell;
    c.count = n;
    cells.push_back(std::move(c));
  }
  return Json(StatsCsv(month, std::move(cells)));
}

}  // namespace refbus::agent
