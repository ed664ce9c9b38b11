// Engine: cases. The timeline, local case numbers, closing a case (sent and received),
// and the case view.
#include <spdlog/spdlog.h>

#include <map>

#include "agent/engine_impl.h"
#include "agent/engine_requests.h"

namespace refbus::agent {

using schema::CaseMessage;

Result<CaseRecord> Engine::Impl::LoadCase(const CaseStore::Txn& txn, const std::string& case_ref) {
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<CaseRecord>(txn, case_ref));
  if (rec) return std::move(*rec);
  return NewCase(case_ref);
}

Status Engine::Impl::AddGrantToCase(CaseStore::Txn& txn, const std::string& case_ref,
                                    const std::string& grant_hex) {
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, case_ref));
  auto& g = c.grants;
  if (std::find(g.begin(), g.end(), grant_hex) == g.end()) g.push_back(grant_hex);
  return Save(txn, case_ref, c);
}

Status Engine::Impl::Timeline(CaseStore::Txn& txn, const std::string& case_ref,
                              TimelineEvent event) {
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, case_ref));
  event.at_ms = Now();
  c.timeline.push_back(std::move(event));
  return Save(txn, case_ref, c);
}

Result<std::string> Engine::Impl::ResolveCase(const CaseStore::Txn& txn, const std::string& ref) {
  REFBUS_ASSIGN_OR_RETURN(auto c, Load<CaseRecord>(txn, ref));
  if (c) return ref;
  REFBUS_ASSIGN_OR_RETURN(auto l, Load<LocalCaseRecord>(txn, ref));
  if (l) return l->case_ref;
  return NotFound("no case '" + ref + "' (neither a case pseudonym nor a local case number)");
}

// The lead closed the case.
Status Engine::Impl::OnCaseClosed(CaseStore::Txn& txn, const OpenedCase& oc) {
  const std::string& from = oc.envelope.header.sender_id;
  const auto& cc = oc.message.case_closed;
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, cc.case_ref));
  if (cc.closed_by != from || (!c.lead.empty() && c.lead != from)) {
    return PermissionDenied("case " + cc.case_ref + " closed by " + from +
                            ", which does not hold the lead");
  }
  c.closed = true;
  REFBUS_ASSIGN_OR_RETURN(c.closed_reason, SealText(HexEncode(oc.envelope.header.consent_grant_id),
                                                    ClosedReasonPlace(cc.case_ref), cc.reason));
  c.closed_by = from;
  c.closed_message_id = HexEncode(oc.envelope.header.message_id);
  REFBUS_RETURN_IF_ERROR(Save(txn, cc.case_ref, c));
  TimelineEvent ev = Event("case-closed");
  ev.from = from;
  return Timeline(txn, cc.case_ref, std::move(ev));
}

// ---- commands ----

namespace {

// Every agency involved in the case, with the grant it was involved under.
Result<std::map<std::string, std::string>> PeersOf(const CaseStore::Txn& txn,
                                                   const std::string& case_ref) {
  std::map<std::string, std::string> peers;
  REFBUS_ASSIGN_OR_RETURN(auto referrals, LoadAll<ReferralRecord>(txn));
  for (const auto& [k, r] : referrals) {
    if (r.case_ref == case_ref) peers[r.peer] = r.grant_id;
  }
  REFBUS_ASSIGN_OR_RETURN(auto handoffs, LoadAll<HandoffRecord>(txn));
  for (const auto& [k, r] : handoffs) {
    if (r.case_ref == case_ref) peers[r.peer] = r.grant_id;
  }
  REFBUS_ASSIGN_OR_RETURN(auto deletions, LoadAll<DeletionRecord>(txn));
  for (const auto& [k, r] : deletions) {
    if (r.case_ref == case_ref) peers[r.peer] = r.grant_id;
  }
  return peers;
}

}  // namespace

// The lead's own closing reason, sealed under the first of the case's grants whose data
// is still held (the peers' first); none left: the reason is not kept.
Result<CaseText> Engine::Impl::SealClosedReason(const CaseRecord& c,
                                                const std::map<std::string, std::string>& peers,
                                                const std::string& reason) {
  std::vector<std::string> grants;
  for (const auto& [peer, g] : peers) grants.push_back(g);
  grants.insert(grants.end(), c.grants.begin(), c.grants.end());
  for (const auto& g : grants) {
    auto sealed = SealText(g, ClosedReasonPlace(c.case_ref), reason);
    if (sealed.ok() || sealed.status().code() != Status::Code::kFailedPrecondition) return sealed;
  }
  return CaseText{};  // not kept: no grant of the case holds data any more
}

Result<Json> Engine::CloseCase(const std::string& case_ref_in, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(CloseCaseRequest req, ParseCloseCaseRequest(body));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(std::string case_ref, d.ResolveCase(txn, case_ref_in));
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, d.LoadCase(txn, case_ref));
  if (c.lead != d.me()) {
    return FailedPrecondition("case " + case_ref + " is led by " + c.lead +
                              "; only the lead closes it");
  }
  if (c.closed) return FailedPrecondition("case " + case_ref + " is already closed");
  // Tell every agency involved, under the grant they were involved under.
  REFBUS_ASSIGN_OR_RETURN(auto peers, PeersOf(txn, case_ref));
  std::vector<std::string> notified;
  for (const auto& [peer, grant_hex] : peers) {
    REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, d.RequireGrant(txn, grant_hex));
    if (grant.known.revoked) continue;
    CaseMessage m;
    m.type = CaseMessage::Type::kCaseClosed;
    m.case_closed = {case_ref, d.me(), req.reason, req.operator_ref, Impl::Now()};
    auto sent =
        d.SendCase(txn, grant.known, std::move(m), {peer}, grant.FirstPurpose(), "case-closed");
    if (sent.ok()) {
      notified.push_back(peer);
    } else {
      spdlog::warn("agent {}: cannot tell {} that case {} closed: {}", d.me(), peer, case_ref,
                   sent.status().message());
    }
  }
  c.closed = true;
  REFBUS_ASSIGN_OR_RETURN(c.closed_reason, d.SealClosedReason(c, peers, req.reason));
  c.closed_by = d.me();
  REFBUS_RETURN_IF_ERROR(Save(txn, case_ref, c));
  TimelineEvent ev = Event("case-closed");
  ev.operator_ref = req.operator_ref;
  ev.notified = notified;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return NotifiedJson("case_ref", case_ref, notified);
}

Result<Json> Engine::SetLocalCase(const std::string& case_ref_in, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(std::string local, ParseLocalCaseRequest(body));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(std::string case_ref, d.ResolveCase(txn, case_ref_in));
  REFBUS_ASSIGN_OR_RETURN(auto taken, Load<LocalCaseRecord>(txn, local));
  if (taken && taken->case_ref != case_ref) {
    return FailedPrecondition("local case number " + local + " is already used for " +
                              taken->case_ref);
  }
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, d.LoadCase(txn, case_ref));
  if (!c.local_case.empty() && c.local_case != local) {
    REFBUS_RETURN_IF_ERROR(txn.Del(Table::kLocal, c.local_case));
  }
  c.local_case = local;
  REFBUS_RETURN_IF_ERROR(Save(txn, local, LocalCaseRecord{case_ref}));
  REFBUS_RETURN_IF_ERROR(Save(txn, case_ref, c));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  return Case(case_ref);
}

}  // namespace refbus::agent
