// Engine: deletion requests. A requester asks a deletion center to remove items; the
// center reports each item's status to the requester and to the agencies named in
// report_to (observers).
#include "agent/engine_impl.h"
#include "agent/engine_requests.h"
#include "keys/scope.h"
#include "keys/secret.h"
#include "schema/codec.h"

namespace refbus::agent {

using schema::CaseMessage;
using schema::Purpose;

// A requester asks this agency (a deletion center) to remove items.
Status Engine::Impl::OnDeletionRequest(CaseStore::Txn& txn, const OpenedCase& oc,
                                       MessageRecord& msg) {
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
  msg.request_id = qid;
  TimelineEvent ev = Event("deletion-requested");
  ev.from = from;
  ev.request_id = qid;
  ev.items = dr.items.size();
  return Timeline(txn, dr.case_ref, std::move(ev));
}

// A deletion center's report, to the requester or to an observer (a first report creates
// the observer's record). Reports apply in report_seq order; older ones are marked stale.
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
  if (r.peer != from) {
    return PermissionDenied("deletion status for request " + qid + " from " + from +
                            ", which is not the deletion center handling it");
  }
  if (ds.report_seq <= r.report_seq) {
    msg.stale = true;
    return Status::Ok();  // an older report: the newer one already applied
  }
  for (const auto& u : ds.updates) r.items[u.item_id] = std::string(schema::Name(u.status));
  r.report_seq = ds.report_seq;
  r.counts = ds.counts;
  REFBUS_RETURN_IF_ERROR(Save(txn, qid, r));
  TimelineEvent ev = Event("deletion-status");
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
  schema::DeletionRequest dr;
  dr.request_id = keys::RandomBytes(schema::kWorkflowIdBytes);
  dr.items = std::move(req.items);
  dr.monitor = req.monitor;
  dr.report_to = req.report_to;
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
  dr.case_ref = g.case_ref;
  dr.signed_grant = schema::EncodeSignedConsentGrant(grant.known.grant);
  dr.operator_ref = req.operator_ref;
  dr.sent_at_ms = Impl::Now();
  std::string qid = HexEncode(dr.request_id);
  DeletionRecord rec;
  rec.request_id = qid;
  rec.case_ref = g.case_ref;
  rec.side = DeletionSide::kRequester;
  rec.peer = req.to;
  rec.grant_id = HexEncode(g.grant_id);
  rec.report_to = req.report_to;
  rec.monitor = dr.monitor;
  for (const auto& i : dr.items) rec.items[i.item_id] = "requested";
  const uint64_t item_count = dr.items.size();
  CaseMessage m;
  m.type = CaseMessage::Type::kDeletionRequest;
  m.deletion_request = std::move(dr);
  REFBUS_ASSIGN_OR_RETURN(Bytes mid, d.SendCase(txn, grant.known, std::move(m), {req.to},
                                                Purpose::kDeletion, "deletion-request"));
  REFBUS_RETURN_IF_ERROR(Save(txn, qid, rec));
  REFBUS_RETURN_IF_ERROR(d.RecordShare(txn, grant, req.to));
  TimelineEvent ev = Event("deletion-sent");
  ev.to = req.to;
  ev.request_id = qid;
  ev.items = item_count;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, g.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return ToJson(Sent{"request_id", qid, HexEncode(mid), g.case_ref});
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
  schema::DeletionStatusReport rep;
  rep.request_id = req.request_id;
  rep.case_ref = r.case_ref;
  for (const auto& u : req.updates) {
    if (r.items.count(u.item_id) == 0) {
      return NotFound("item '" + u.item_id + "' is not in deletion request " + qid);
    }
    r.items[u.item_id] = u.status;
    rep.updates.push_back({u.item_id, u.parsed, Impl::Now()});
  }
  REFBUS_RETURN_IF_ERROR(req.update_error);
  rep.counts = CountsOf(r.items);
  rep.report_seq = r.report_seq + 1;
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, d.RequireGrant(txn, r.grant_id));
  std::vector<std::string> to = {r.peer};
  for (const auto& a : r.report_to.value_or(std::vector<std::string>())) {
    if (std::find(to.begin(), to.end(), a) == to.end()) to.push_back(a);
  }
  CaseMessage m;
  m.type = CaseMessage::Type::kDeletionStatus;
  m.deletion_status = rep;
  REFBUS_ASSIGN_OR_RETURN(Bytes mid, d.SendCase(txn, grant.known, std::move(m), to,
                                                Purpose::kDeletion, "deletion-status"));
  r.report_seq = rep.report_seq;
  r.counts = rep.counts;
  REFBUS_RETURN_IF_ERROR(Save(txn, qid, r));
  TimelineEvent ev = Event("deletion-status-sent");
  ev.request_id = qid;
  ev.report_seq = rep.report_seq;
  ev.counts = rep.counts;
  ev.operator_ref = req.operator_ref;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, rep.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return ToJson(DeletionReported{qid, rep.report_seq, rep.counts, to, HexEncode(mid)});
}

}  // namespace refbus::agent
