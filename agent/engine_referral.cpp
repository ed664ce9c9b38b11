// Engine: referrals. Sending one under a grant, moving it through its states (both sides
// run agent/workflow.h's table), and what arrives from the other side.
#include "agent/engine_impl.h"
#include "agent/engine_requests.h"
#include "agent/records_json.h"
#include "keys/secret.h"
#include "schema/codec.h"

namespace refbus::agent {

using schema::CaseMessage;
using schema::ReferralState;

// A referral from another agency: recorded as received, REQUESTED.
Status Engine::Impl::OnReferral(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg) {
  const auto& h = oc.envelope.header;
  const std::string& from = h.sender_id;
  REFBUS_RETURN_IF_ERROR(RememberGrant(txn, oc.grant, from));
  const auto& ref = oc.message.referral;
  std::string rid = HexEncode(ref.referral_id);
  REFBUS_ASSIGN_OR_RETURN(auto existing, Load<ReferralRecord>(txn, rid));
  if (existing) return FailedPrecondition("referral " + rid + " already received");
  ReferralRecord rec;
  rec.referral_id = rid;
  rec.case_ref = ref.case_ref;
  rec.side = ReferralSide::kReceiver;
  rec.peer = from;
  rec.purpose = ref.purpose;
  rec.grant_id = HexEncode(h.consent_grant_id);
  rec.message_id = msg.message_id;
  rec.state = ReferralState::kRequested;
  rec.updated_at_ms = Now();
  rec.history.push_back({ReferralState::kUnspecified, ReferralState::kRequested, from,
                         ref.operator_ref, std::nullopt, ref.sent_at_ms, msg.message_id});
  REFBUS_RETURN_IF_ERROR(Save(txn, rid, rec));
  msg.referral_id = rid;
  TimelineEvent ev = Event("referral-received");
  ev.from = from;
  ev.referral_id = rid;
  ev.purpose = std::string(schema::Name(ref.purpose));
  return Timeline(txn, ref.case_ref, std::move(ev));
}

// The other party moved a referral: checked against our copy's state and the table.
Status Engine::Impl::OnStateChange(CaseStore::Txn& txn, const OpenedCase& oc) {
  const auto& h = oc.envelope.header;
  const std::string& from = h.sender_id;
  const auto& sc = oc.message.state_change;
  std::string rid = HexEncode(sc.referral_id);
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<ReferralRecord>(txn, rid));
  if (!rec) return NotFound("state change for unknown referral " + rid);
  ReferralRecord& r = *rec;
  if (r.peer != from) {
    return PermissionDenied("state change for referral " + rid + " from " + from +
                            ", which is not the other party");
  }
  if (r.state != sc.from_state) {
    return FailedPrecondition("state change " + std::string(schema::Name(sc.from_state)) + " -> " +
                              std::string(schema::Name(sc.to_state)) + " but the referral is " +
                              std::string(schema::Name(r.state)));
  }
  ReferralSide their_side =
      r.side == ReferralSide::kReferrer ? ReferralSide::kReceiver : ReferralSide::kReferrer;
  REFBUS_ASSIGN_OR_RETURN(auto g, LoadGrant(txn, h.consent_grant_id));
  bool revoked = g && g->revoked;
  REFBUS_RETURN_IF_ERROR(
      CheckTransition(sc.from_state, sc.to_state, their_side, sc.reason, revoked));
  r.state = sc.to_state;
  r.updated_at_ms = Now();
  REFBUS_ASSIGN_OR_RETURN(
      CaseText reason, SealText(r.grant_id, HistoryReasonPlace(rid, r.history.size()), sc.reason));
  r.history.push_back({sc.from_state, sc.to_state, from, sc.operator_ref,
                       sc.reason.empty() ? std::nullopt : std::optional<CaseText>(reason),
                       sc.changed_at_ms, HexEncode(oc.envelope.header.message_id)});
  REFBUS_RETURN_IF_ERROR(Save(txn, rid, r));
  TimelineEvent ev = Event("referral-state");
  ev.from = from;
  ev.referral_id = rid;
  ev.state = std::string(schema::Name(sc.to_state));
  return Timeline(txn, sc.case_ref, std::move(ev));
}

// ---- commands ----

Result<Json> Engine::SendReferral(const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(ReferralRequest req, ParseReferralRequest(body));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, d.RequireGrant(txn, req.grant_id));
  const auto& g = grant.grant();
  CaseMessage m;
  m.type = CaseMessage::Type::kReferral;
  m.referral.referral_id = keys::RandomBytes(schema::kWorkflowIdBytes);
  m.referral.case_ref = g.case_ref;
  m.referral.referring_agency = d.me();
  m.referral.to_agency = req.to;
  m.referral.purpose = req.purpose;
  m.referral.fields = std::move(req.fields);
  m.referral.signed_grant = schema::EncodeSignedConsentGrant(grant.known.grant);
  m.referral.operator_ref = req.operator_ref;
  m.referral.sent_at_ms = Impl::Now();
  std::string rid = HexEncode(m.referral.referral_id);
  REFBUS_ASSIGN_OR_RETURN(
      Bytes mid, d.SendCase(txn, grant.known, std::move(m), {req.to}, req.purpose, "referral"));
  ReferralRecord rec;
  rec.referral_id = rid;
  rec.case_ref = g.case_ref;
  rec.side = ReferralSide::kReferrer;
  rec.peer = req.to;
  rec.purpose = req.purpose;
  rec.grant_id = HexEncode(g.grant_id);
  rec.message_id = HexEncode(mid);
  rec.state = ReferralState::kRequested;
  rec.updated_at_ms = Impl::Now();
  rec.history.push_back({ReferralState::kUnspecified, ReferralState::kRequested, d.me(),
                         req.operator_ref, std::nullopt, Impl::Now(), std::nullopt});
  REFBUS_RETURN_IF_ERROR(Save(txn, rid, rec));
  REFBUS_RETURN_IF_ERROR(d.RecordShare(txn, grant, req.to));
  TimelineEvent ev = Event("referral-sent");
  ev.to = req.to;
  ev.referral_id = rid;
  ev.operator_ref = req.operator_ref;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, g.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  Json out = ToJson(Sent{"referral_id", rid, HexEncode(mid), g.case_ref});
  out["state"] = schema::Name(ReferralState::kRequested);
  return out;
}

Result<Json> Engine::Referrals() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, impl_->case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(auto all, LoadAll<ReferralRecord>(txn));
  Json out = Json::array();
  for (const auto& [key, rec] : all) {
    REFBUS_ASSIGN_OR_RETURN(CaseRecord c, impl_->LoadCase(txn, rec.case_ref));
    out.push_back(ReferralJson(rec, c.local_case));
  }
  return out;
}

Result<Json> Engine::ChangeState(const std::string& referral_id, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(StateChangeRequest req, ParseStateChangeRequest(referral_id, body));
  std::string rid = HexEncode(req.referral_id);
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<ReferralRecord>(txn, rid));
  if (!rec) return NotFound("no referral " + rid + " (list them with: refbus-agent referrals)");
  ReferralRecord& r = *rec;
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, d.RequireGrant(txn, r.grant_id));
  REFBUS_RETURN_IF_ERROR(CheckTransition(r.state, req.to, r.side, req.reason, grant.known.revoked));
  CaseMessage m;
  m.type = CaseMessage::Type::kStateChange;
  m.state_change = {req.referral_id, r.case_ref,       r.state,    req.to,
                    req.reason,      req.operator_ref, Impl::Now()};
  REFBUS_ASSIGN_OR_RETURN(
      Bytes mid, d.SendCase(txn, grant.known, std::move(m), {r.peer}, r.purpose, "referral-state"));
  REFBUS_ASSIGN_OR_RETURN(
      CaseText reason,
      d.SealText(r.grant_id, HistoryReasonPlace(rid, r.history.size()), req.reason));
  r.history.push_back({r.state, req.to, d.me(), req.operator_ref,
                       req.reason.empty() ? std::nullopt : std::optional<CaseText>(reason),
                       Impl::Now(), std::nullopt});
  r.state = req.to;
  r.updated_at_ms = Impl::Now();
  REFBUS_RETURN_IF_ERROR(Save(txn, rid, r));
  TimelineEvent ev = Event("referral-state");
  ev.referral_id = rid;
  ev.state = std::string(schema::Name(req.to));
  ev.operator_ref = req.operator_ref;
  ev.message_id = HexEncode(mid);
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, r.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return ToJson(r);
}

}  // namespace refbus::agent
