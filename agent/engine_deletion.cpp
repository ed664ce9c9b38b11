// Engine: deletion requests. A requester asks a deletion center to remove items; the
// center reports each item's status to the requester and to the agencies named in
// report_to (observers). Requests travel in chunks with a manifest
// (engine_deletion_chunks.cpp); status reports carry only what changed (a delta), in parts
// when large, and the requester and observers keep each item's reported history.
#include <spdlog/spdlog.h>

#include "agent/deletion_bulk.h"
#include "agent/engine_impl.h"
#include "agent/engine_requests.h"
#include "keys/scope.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "schema/deletion_list.h"

namespace refbus::agent {

using schema::CaseMessage;
using schema::Purpose;

// A requester asks this agency (a deletion center) to remove items.
Status Engine::Impl::OnDeletionRequest(CaseStore::Txn& txn, const OpenedCase& oc,
                                       MessageRecord& msg) {
  if (oc.message.deletion_request.manifest) return OnDeletionChunk(txn, oc, msg);
  const auto& h = oc.envelope.header;
  const std::string& from = h.sender_id;
  REFBUS_RETURN_IF_ERROR(RememberGrant(txn, oc.grant, from));
  const auto& dr = oc.message.deletion_request;
  std::string qid = HexEncode(dr.request_id);
  DeletionRecord rec;
  rec.request_id = qid;
  rec.case_ref = dr.case_ref;
  rec.side = DeletionSide::kDeletionCenter;
  rec.peer = from;
  rec.grant_id = HexEncode(h.consent_grant_id);
  rec.report_to = dr.report_to;
  rec.monitor = dr.monitor;
  for (const auto& i : dr.items) rec.items[i.item_id] = "requested";
  REFBUS_RETURN_IF_ERROR(Save(txn, qid, rec));
  REFBUS_RETURN_IF_ERROR(LinkWorkItems(txn, rec, dr.items));
  msg.request_id = qid;
  TimelineEvent ev = Event("deletion-requested");
  ev.from = from;
  ev.request_id = qid;
  ev.items = dr.items.size();
  return Timeline(txn, dr.case_ref, std::move(ev));
}

// Each update newer than what the item's history holds is applied and recorded (who, which
// report, when); an older or repeated one is skipped, so parts and reports may arrive in
// any order and more than once.
Status Engine::Impl::ApplyDeletionUpdates(CaseStore::Txn& txn, DeletionRecord& r,
                                          const schema::DeletionStatusReport& ds,
                                          const std::string& from, MessageRecord& msg) {
  size_t applied = 0;
  uint64_t reappeared = 0;
  const UnixMillis now = Now();
  for (const auto& u : ds.updates) {
    if (r.items.count(u.item_id) == 0 && r.side == DeletionSide::kRequester) {
      return NotFound("deletion status for item '" + u.item_id + "', which request " +
                      r.request_id + " does not hold");
    }
  }
  for (const auto& u : ds.updates) {
    const std::string key = r.request_id + "/" + u.item_id;
    REFBUS_ASSIGN_OR_RETURN(auto hist, Load<DeletionHistoryRecord>(txn, key));
    DeletionHistoryRecord hr = hist.value_or(DeletionHistoryRecord{});
    if (!hr.steps.empty() && hr.steps.back().report_seq >= ds.report_seq) continue;
    std::string status(schema::Name(u.status));
    hr.steps.push_back({status, from, ds.report_seq, u.at_ms, now});
    REFBUS_RETURN_IF_ERROR(Save(txn, key, hr));
    if (u.status == schema::DeletionItemStatus::kReappeared) ++reappeared;
    r.items[u.item_id] = std::move(status);
    ++applied;
  }
  if (applied == 0 && !ds.updates.empty()) msg.stale = true;
  if (reappeared == 0) return Status::Ok();
  // Material the victim asked to have removed is up again: an alert for crisis support
  // (PROTOCOL.md 10.3), shown with the message in the inbox and on the case.
  msg.alert = "reappeared";
  msg.alert_items = reappeared;
  msg.crisis_support = true;
  spdlog::warn("agent {}: deletion request {}: {} items reported reappeared by {}: crisis support",
               me(), r.request_id, reappeared, from);
  TimelineEvent ev = Event("deletion-reappeared-alert");
  ev.from = from;
  ev.request_id = r.request_id;
  ev.items = reappeared;
  return Timeline(txn, r.case_ref, std::move(ev));
}

// A deletion center's report, to the requester or to an observer (a first report creates
// the observer's record). A report on the list itself (complete, or chunks missing) goes
// to the requester, who sends missing chunks again.
Status Engine::Impl::OnDeletionStatus(CaseStore::Txn& txn, const OpenedCase& oc,
                                      MessageRecord& msg) {
  const auto& h = oc.envelope.header;
  const std::string& from = h.sender_id;
  const auto& ds = oc.message.deletion_status;
  std::string qid = HexEncode(ds.request_id);
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<DeletionRecord>(txn, qid));
  if (!rec) {
    rec.emplace();
    rec->request_id = qid;
    rec->case_ref = ds.case_ref;
    rec->side = DeletionSide::kObserver;
    rec->peer = from;
    rec->grant_id = HexEncode(h.consent_grant_id);
  }
  DeletionRecord& r = *rec;
  if (r.peer != from || r.side == DeletionSide::kDeletionCenter) {
    return PermissionDenied("deletion status for request " + qid + " from " + from +
                            ", which is not the deletion center handling it");
  }
  REFBUS_RETURN_IF_ERROR(ApplyDeletionUpdates(txn, r, ds, from, msg));
  const bool newest = ds.report_seq >= r.report_seq;
  if (newest) {
    r.report_seq = ds.report_seq;
    r.counts = ds.counts;
    if (ds.items_held > 0) r.items_held = ds.items_held;
    if (ds.list_complete) r.list_complete = true;
  }
  if (!ds.missing_chunks.empty() && r.side == DeletionSide::kRequester && newest) {
    REFBUS_RETURN_IF_ERROR(ResendDeletionChunks(txn, r, ds.missing_chunks, "service:resend"));
  }
  REFBUS_RETURN_IF_ERROR(Save(txn, qid, r));
  if (ds.part_index != 0 ||
      (ds.updates.empty() && ds.missing_chunks.empty() && !ds.list_complete)) {
    return Status::Ok();  // one timeline entry per report
  }
  const char* what = !ds.updates.empty()          ? "deletion-status"
                     : !ds.missing_chunks.empty() ? "deletion-chunks-asked"
                                                  : "deletion-list-held";
  TimelineEvent ev = Event(what);
  ev.from = from;
  ev.request_id = qid;
  ev.report_seq = ds.report_seq;
  ev.counts = ds.counts;
  return Timeline(txn, ds.case_ref, std::move(ev));
}

// ---- commands ----

Result<Json> Engine::RequestDeletion(const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(DeletionRequestRequest req, ParseDeletionRequest(body));
  const auto cuts = schema::CutDeletionChunks(req.items);
  REFBUS_ASSIGN_OR_RETURN(schema::DeletionManifest manifest,
                          schema::MakeDeletionManifest(req.items, cuts));
  schema::DeletionRequest base;
  base.request_id = keys::RandomBytes(schema::kWorkflowIdBytes);
  base.monitor = req.monitor;
  base.report_to = req.report_to;
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, d.RequireGrant(txn, req.grant_id));
  const auto& g = grant.grant();
  for (const auto& a : req.report_to) {
    keys::ScopeParty p;
    p.id = a;
    if (const schema::Party* party = d.dir().Find(a)) p.type = party->agency_type;
    if (!keys::MayReceive(g, p)) {
      return PermissionDenied("'report_to' agency " + a + " is not within the consent grant");
    }
  }
  base.case_ref = g.case_ref;
  base.signed_grant = schema::EncodeSignedConsentGrant(grant.known.grant);
  base.operator_ref = req.operator_ref;
  base.sent_at_ms = Impl::Now();
  std::string qid = HexEncode(base.request_id);
  DeletionRecord rec;
  rec.request_id = qid;
  rec.case_ref = g.case_ref;
  rec.side = DeletionSide::kRequester;
  rec.peer = req.to;
  rec.grant_id = HexEncode(g.grant_id);
  rec.report_to = req.report_to;
  rec.monitor = base.monitor;
  rec.manifest = manifest;
  rec.list_complete = false;
  for (const auto& i : req.items) rec.items[i.item_id] = "requested";
  std::string first_mid;
  const bool drop_all =
      d.options.test_skip_deletion_chunk == kSkipAllDeletionChunks && !d.chunk_dropped;
  for (uint32_t c = 0; c < cuts.size(); ++c) {
    std::span<const schema::DeletionItem> items(req.items.data() + cuts[c].first,
                                                cuts[c].second - cuts[c].first);
    if (drop_all ||
        (static_cast<int64_t>(c) == d.options.test_skip_deletion_chunk && !d.chunk_dropped)) {
      d.chunk_dropped = true;  // kept, not sent: the deletion center will ask for it
      REFBUS_RETURN_IF_ERROR(d.StoreDeletionChunk(txn, rec.grant_id, qid, c, items, ""));
      continue;
    }
    REFBUS_RETURN_IF_ERROR(d.SendDeletionChunk(txn, grant, rec, base, c, items));
    if (first_mid.empty()) {
      REFBUS_ASSIGN_OR_RETURN(auto kept, Load<DeletionChunkRecord>(txn, DeletionChunkKey(qid, c)));
      first_mid = kept ? kept->message_id : "";
    }
  }
  rec.last_chunk_at_ms = Impl::Now();  // the requester: when the chunks were last sent
  REFBUS_RETURN_IF_ERROR(Save(txn, qid, rec));
  REFBUS_RETURN_IF_ERROR(d.RecordShare(txn, grant, req.to));
  d.unanswered_deletions[qid] = Impl::Now();
  TimelineEvent ev = Event("deletion-sent");
  ev.to = req.to;
  ev.request_id = qid;
  ev.items = req.items.size();
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, g.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  Json out = ToJson(Sent{"request_id", qid, first_mid, g.case_ref});
  out["item_count"] = req.items.size();
  out["chunks"] = cuts.size();
  return out;
}

Result<Json> Engine::Deletions() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, impl_->case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAll<DeletionRecord>(txn));
  Json out = Json::array();
  for (const auto& [key, rec] : all) out.push_back(DeletionJson(rec));
  return out;
}

Result<Json> Engine::ReportDeletionStatus(const std::string& request_id, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(DeletionStatusRequest req, ParseDeletionStatusRequest(request_id, body));
  std::string qid = HexEncode(req.request_id);
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<DeletionRecord>(txn, qid));
  if (!rec || rec->side != DeletionSide::kDeletionCenter) {
    return NotFound("no deletion request " + qid + " handled by this agency");
  }
  DeletionRecord& r = *rec;
  std::vector<StatusLine> wanted;
  wanted.reserve(req.updates.size());
  for (const auto& u : req.updates) wanted.push_back({u.item_id, u.parsed, u.line});
  REFBUS_ASSIGN_OR_RETURN(std::vector<StatusLine> delta, StatusDelta(r.items, wanted));
  REFBUS_RETURN_IF_ERROR(req.update_error);
  REFBUS_ASSIGN_OR_RETURN(DeletionReported out,
                          d.SendDeletionDelta(txn, r, delta, req.operator_ref));
  if (out.parts == 0) return ToJson(out);  // nothing changed: nothing to report
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return ToJson(out);
}

// The deletion center reports a delta of one request to its requester and observers, in
// parts of kMaxDeletionChunkItems, and records it (the caller commits). Nothing changed:
// nothing is sent.
Result<DeletionReported> Engine::Impl::SendDeletionDelta(CaseStore::Txn& txn, DeletionRecord& r,
                                                         const std::vector<StatusLine>& delta,
                                                         const std::string& operator_ref) {
  const std::string& qid = r.request_id;
  std::vector<std::string> to = {r.peer};
  for (const auto& a : r.report_to.value_or(std::vector<std::string>())) {
    if (std::find(to.begin(), to.end(), a) == to.end()) to.push_back(a);
  }
  if (delta.empty()) return DeletionReported{qid, r.report_seq, CountsOf(r.items), {}, "", 0, 0};
  REFBUS_ASSIGN_OR_RETURN(Bytes request_id, HexDecode(qid));
  const UnixMillis now = Now();
  for (const auto& u : delta) r.items[u.item_id] = std::string(schema::Name(u.status));
  const schema::DeletionCounts counts = CountsOf(r.items);
  const uint64_t seq = r.report_seq + 1;
  const size_t per = schema::kMaxDeletionChunkItems;
  const auto parts = static_cast<uint32_t>((delta.size() + per - 1) / per);
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, RequireGrant(txn, r.grant_id));
  std::string first_mid;
  for (uint32_t p = 0; p < parts; ++p) {
    schema::DeletionStatusReport rep;
    rep.request_id = request_id;
    rep.case_ref = r.case_ref;
    for (size_t i = p * per; i < std::min(delta.size(), (p + 1) * per); ++i) {
      rep.updates.push_back({delta[i].item_id, delta[i].status, now});
    }
    rep.counts = counts;
    rep.report_seq = seq;
    rep.part_index = p;
    rep.part_count = parts;
    rep.items_held = static_cast<uint32_t>(r.items.size());
    rep.list_complete = r.manifest && r.list_complete.value_or(false);
    CaseMessage m;
    m.type = CaseMessage::Type::kDeletionStatus;
    m.deletion_status = std::move(rep);
    REFBUS_ASSIGN_OR_RETURN(Bytes mid, SendCase(txn, grant.known, std::move(m), to,
                                                Purpose::kDeletion, "deletion-status"));
    if (p == 0) first_mid = HexEncode(mid);
  }
  r.report_seq = seq;
  r.counts = counts;
  REFBUS_RETURN_IF_ERROR(Save(txn, qid, r));
  TimelineEvent ev = Event("deletion-status-sent");
  ev.request_id = qid;
  ev.report_seq = seq;
  ev.counts = counts;
  ev.items = delta.size();
  ev.operator_ref = operator_ref;
  REFBUS_RETURN_IF_ERROR(Timeline(txn, r.case_ref, std::move(ev)));
  return DeletionReported{qid, seq, counts, to, first_mid, delta.size(), parts};
}

Result<Json> Engine::ExportDeletionItems(const std::string& request_id, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string op, ParseOperatorOnly(body));
  REFBUS_ASSIGN_OR_RETURN(Bytes id, IdOf("request id", request_id));
  const std::string qid = HexEncode(id);
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<DeletionRecord>(txn, qid));
  if (!rec) return NotFound("no deletion request " + qid);
  const DeletionRecord& r = *rec;
  std::vector<schema::DeletionItem> items;
  if (r.manifest && r.side != DeletionSide::kObserver) {
    for (uint32_t c = 0; c < r.manifest->chunk_count; ++c) {
      auto chunk = d.LoadDeletionChunk(txn, qid, c);
      if (!chunk.ok() && chunk.status().code() != Status::Code::kNotFound) return chunk.status();
      if (chunk.ok()) items.insert(items.end(), chunk->begin(), chunk->end());
    }
  }
  if (items.empty()) {  // sent in one message, or an observer: ids and states only
    for (const auto& [item, st] : r.items) items.push_back({item, "", {}, "", ""});
  }
  if (r.side == DeletionSide::kDeletionCenter && !items.empty() && r.manifest) {
    REFBUS_RETURN_IF_ERROR(d.RecordChunkAccess(txn, r, op));
  }
  REFBUS_ASSIGN_OR_RETURN(auto hist, LoadPrefix<DeletionHistoryRecord>(txn, qid + "/"));
  std::map<std::string, const DeletionItemStep*> last;
  for (const auto& [key, h] : hist) {
    if (!h.steps.empty()) last[key.substr(qid.size() + 1)] = &h.steps.back();
  }
  std::string csv = "item_id,url,sha256,platform,note,status,updated_at_ms,updated_by\n";
  for (const auto& i : items) {
    auto st = r.items.find(i.item_id);
    auto l = last.find(i.item_id);
    csv += CsvField(i.item_id) + "," + CsvField(i.url) + "," + HexEncode(i.content_sha256) + "," +
           CsvField(i.platform) + "," + CsvField(i.note) + "," +
           (st != r.items.end() ? st->second : std::string()) + "," +
           (l != last.end() ? std::to_string(l->second->at_ms) + "," + CsvField(l->second->by)
                            : std::string(",")) +
           "\n";
  }
  TimelineEvent ev = Event("deletion-items-exported");
  ev.request_id = qid;
  ev.items = items.size();
  ev.operator_ref = op;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, r.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();  // the access notices of a center's export
  return Json(std::move(csv));
}

Result<Json> Engine::DeletionSummary(const std::string& request_id) {
  REFBUS_ASSIGN_OR_RETURN(Bytes id, IdOf("request id", request_id));
  const std::string qid = HexEncode(id);
  REFBUS_ASSIGN_OR_RETURN(auto txn, impl_->case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<DeletionRecord>(txn, qid));
  if (!rec) return NotFound("no deletion request " + qid);
  const size_t n = rec->items.size();
  const size_t held = rec->chunks_held ? rec->chunks_held->size() : 0;
  Json j = DeletionJson(*rec);
  j.erase("items");
  j["item_count"] = n;
  if (rec->chunks_held) j["chunks_held"] = held;
  if (j.contains("manifest")) j["manifest"].erase("chunk_sha256");
  return j;
}

Result<Json> Engine::DeletionItemHistory(const std::string& request_id,
                                         const std::string& item_id) {
  REFBUS_ASSIGN_OR_RETURN(Bytes id, IdOf("request id", request_id));
  const std::string qid = HexEncode(id);
  REFBUS_ASSIGN_OR_RETURN(auto txn, impl_->case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<DeletionRecord>(txn, qid));
  if (!rec) return NotFound("no deletion request " + qid);
  auto st = rec->items.find(item_id);
  if (st == rec->items.end()) {
    return NotFound("item '" + item_id.substr(0, 64) + "' is not in deletion request " + qid);
  }
  REFBUS_ASSIGN_OR_RETURN(auto hist, Load<DeletionHistoryRecord>(txn, qid + "/" + item_id));
  Json steps = Json::array();
  for (const auto& s : hist.value_or(DeletionHistoryRecord{}).steps) {
    steps.push_back({{"status", s.status},
                     {"by", s.by},
                     {"report_seq", s.report_seq},
                     {"at_ms", s.at_ms},
                     {"received_ms", s.received_ms}});
  }
  return Json{
      {"request_id", qid}, {"item_id", item_id}, {"status", st->second}, {"history", steps}};
}

}  // namespace refbus::agent
