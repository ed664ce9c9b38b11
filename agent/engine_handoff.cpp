// Engine: handoffs of a case's lead. The lead hands over; the other agency accepts (and
// takes the lead) or refuses.
#include "agent/engine_impl.h"
#include "agent/engine_requests.h"
#include "keys/secret.h"
#include "schema/codec.h"

namespace refbus::agent {

using schema::CaseMessage;
using schema::Purpose;

// The lead offers this agency the case.
Status Engine::Impl::OnHandoff(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg) {
  const auto& h = oc.envelope.header;
  const std::string& from = h.sender_id;
  REFBUS_RETURN_IF_ERROR(RememberGrant(txn, oc.grant, from));
  const auto& ho = oc.message.handoff;
  std::string hid = HexEncode(ho.handoff_id);
  HandoffRecord rec;
  rec.handoff_id = hid;
  rec.case_ref = ho.case_ref;
  rec.side = HandoffSide::kTo;
  rec.peer = from;
  rec.grant_id = HexEncode(h.consent_grant_id);
  REFBUS_ASSIGN_OR_RETURN(rec.reason, SealText(rec.grant_id, HandoffReasonPlace(hid), ho.reason));
  rec.message_id = msg.message_id;
  rec.state = HandoffState::kPending;
  REFBUS_RETURN_IF_ERROR(Save(txn, hid, rec));
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, ho.case_ref));
  if (c.lead.empty()) c.lead = from;
  REFBUS_RETURN_IF_ERROR(Save(txn, ho.case_ref, c));
  msg.handoff_id = hid;
  TimelineEvent ev = Event("handoff-received");
  ev.from = from;
  ev.handoff_id = hid;
  return Timeline(txn, ho.case_ref, std::move(ev));
}

// The agency this agency offered the case to answered.
Status Engine::Impl::OnHandoffAck(CaseStore::Txn& txn, const OpenedCase& oc) {
  const std::string& from = oc.envelope.header.sender_id;
  const auto& ack = oc.message.handoff_ack;
  std::string hid = HexEncode(ack.handoff_id);
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<HandoffRecord>(txn, hid));
  if (!rec || rec->peer != from || rec->side != HandoffSide::kFrom) {
    return NotFound("handoff acknowledgement for unknown handoff " + hid);
  }
  rec->state = ack.accepted ? HandoffState::kAccepted : HandoffState::kRefused;
  REFBUS_ASSIGN_OR_RETURN(rec->reason,
                          SealText(rec->grant_id, HandoffReasonPlace(hid), ack.reason));
  rec->answer_message_id = HexEncode(oc.envelope.header.message_id);
  REFBUS_RETURN_IF_ERROR(Save(txn, hid, *rec));
  if (ack.accepted) {
    REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, ack.case_ref));
    c.lead = from;
    REFBUS_RETURN_IF_ERROR(Save(txn, ack.case_ref, c));
  }
  TimelineEvent ev = Event(ack.accepted ? "handoff-accepted" : "handoff-refused");
  ev.from = from;
  ev.handoff_id = hid;
  return Timeline(txn, ack.case_ref, std::move(ev));
}

// ---- commands ----

Result<Json> Engine::Handoff(const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(HandoffRequest req, ParseHandoffRequest(body));
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, d.RequireGrant(txn, req.grant_id));
  const auto& g = grant.grant();
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, d.LoadCase(txn, g.case_ref));
  if (c.lead != d.me()) {
    return FailedPrecondition("case " + g.case_ref + " is led by " + c.lead +
                              "; only the lead hands it over");
  }
  Purpose purpose = grant.FirstPurpose();
  if (!req.purpose.empty()) {
    auto p = schema::ParsePurpose(req.purpose);
    if (!p) return InvalidArgument("'purpose' has unknown value '" + req.purpose + "'");
    purpose = *p;
  }
  CaseMessage m;
  m.type = CaseMessage::Type::kHandoff;
  m.handoff.handoff_id = keys::RandomBytes(schema::kWorkflowIdBytes);
  m.handoff.case_ref = g.case_ref;
  m.handoff.from_lead = d.me();
  m.handoff.to_lead = req.to;
  m.handoff.reason = req.reason;
  m.handoff.fields = std::move(req.fields);
  m.handoff.signed_grant = schema::EncodeSignedConsentGrant(grant.known.grant);
  m.handoff.operator_ref = req.operator_ref;
  m.handoff.sent_at_ms = Impl::Now();
  std::string hid = HexEncode(m.handoff.handoff_id);
  REFBUS_ASSIGN_OR_RETURN(Bytes mid,
                          d.SendCase(txn, grant.known, std::move(m), {req.to}, purpose, "handoff"));
  REFBUS_ASSIGN_OR_RETURN(CaseText reason,
                          d.SealText(HexEncode(g.grant_id), HandoffReasonPlace(hid), req.reason));
  HandoffRecord rec{
      hid,    g.case_ref,     HandoffSide::kFrom,     req.to,      HexEncode(g.grant_id),
      reason, HexEncode(mid), HandoffState::kPending, std::nullopt};
  REFBUS_RETURN_IF_ERROR(Save(txn, hid, rec));
  REFBUS_RETURN_IF_ERROR(d.RecordShare(txn, grant, req.to));
  TimelineEvent ev = Event("handoff-sent");
  ev.to = req.to;
  ev.handoff_id = hid;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, g.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return ToJson(Sent{"handoff_id", hid, HexEncode(mid), g.case_ref});
}

Result<Json> Engine::AckHandoff(const std::string& handoff_id, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(HandoffAckRequest req, ParseHandoffAckRequest(handoff_id, body));
  std::string hid = HexEncode(req.handoff_id);
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(auto rec, Load<HandoffRecord>(txn, hid));
  if (!rec || rec->side != HandoffSide::kTo) {
    return NotFound("no handoff " + hid + " to this agency");
  }
  HandoffRecord& h = *rec;
  if (h.state != HandoffState::kPending) {
    return FailedPrecondition("handoff " + hid + " was already " + std::string(Name(h.state)));
  }
  if (!req.accepted && req.reason.empty()) {
    return FailedPrecondition("refusing a handoff needs a reason");
  }
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, d.RequireGrant(txn, h.grant_id));
  const auto& g = grant.grant();
  CaseMessage m;
  m.type = CaseMessage::Type::kHandoffAck;
  m.handoff_ack = {req.handoff_id, g.case_ref,       req.accepted,
                   req.reason,     req.operator_ref, Impl::Now()};
  REFBUS_ASSIGN_OR_RETURN(Bytes mid, d.SendCase(txn, grant.known, std::move(m), {h.peer},
                                                grant.FirstPurpose(), "handoff-ack"));
  h.state = req.accepted ? HandoffState::kAccepted : HandoffState::kRefused;
  REFBUS_RETURN_IF_ERROR(Save(txn, hid, h));
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, d.LoadCase(txn, g.case_ref));
  if (req.accepted) c.lead = d.me();
  REFBUS_RETURN_IF_ERROR(Save(txn, g.case_ref, c));
  TimelineEvent ev = Event(req.accepted ? "lead-taken" : "handoff-refused");
  ev.handoff_id = hid;
  ev.operator_ref = req.operator_ref;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, g.case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return ToJson(HandoffAcked{hid, c.lead, HexEncode(mid)});
}

}  // namespace refbus::agent
