// Engine: linkage tallies over the bus (PROTOCOL.md 13.8). After a match, a linked agency
// sends its tally evidence (the signed tally, its LINKAGE_TALLY log entry, inclusion proof
// and checkpoint: 13.7) to another agency of the match, usually the lead, as a LINKAGE_TALLY
// case message under a grant the sender recorded for the case of its notice, with purpose
// linkage and that agency among its recipients. The receiver takes the tally's agency from
// the verified envelope's sender, checks the evidence as check-bundle does, and keeps it
// beside its own tally, where `link bundle` finds it.
//
// What the receiver learns: the sender's counts and dates for this linkage id, and the case
// pseudonym the sender's grant names; nothing about any other case.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/engine_impl.h"
#include "agent/engine_requests.h"
#include "core/hash.h"
#include "keys/linkage_tally.h"
#include "keys/scope.h"
#include "schema/codec.h"

namespace refbus::agent {

using schema::CaseMessage;

TallyRecord HeldTally(const keys::TallyEvidence& ev, UnixMillis made_at_ms, std::string source,
                      std::string message_id, UnixMillis received_at_ms) {
  return TallyRecord{ev.agency,         keys::TallyEvidenceJson(ev),
                     made_at_ms,        HexEncode(Sha256(AsBytes(ev.signed_tally))),
                     std::move(source), std::move(message_id),
                     received_at_ms};
}

namespace {

// Whether one of this agency's notices about the linkage id names `agency` as linked; the
// cases of those notices in *cases.
Result<bool> NoticesLink(const LinkageStore& store, const std::string& linkage_hex,
                         const std::string& agency, std::vector<std::string>* cases) {
  REFBUS_ASSIGN_OR_RETURN(auto matches, store.Matches());
  for (const MatchRecord& m : matches) {
    if (m.linkage_id != linkage_hex) continue;
    const bool names = std::any_of(m.others.begin(), m.others.end(),
                                   [&](const auto& o) { return o.agency_id == agency; });
    if (names) cases->push_back(m.case_ref);
  }
  return !cases->empty();
}

// The tally's statement fields of held evidence, unverified (it was checked when kept).
Result<keys::LinkageTally> HeldStatement(const std::string& evidence_json) {
  REFBUS_ASSIGN_OR_RETURN(keys::TallyEvidence ev, keys::ParseTallyEvidence(evidence_json));
  const size_t sig = ev.signed_tally.rfind("signature ");
  if (sig == std::string::npos) return Malformed("a held tally has no signature line");
  return keys::ParseTallyStatement(std::string_view(ev.signed_tally).substr(0, sig));
}

}  // namespace

Status Engine::Impl::KeepTallyEvidence(const std::string& linkage_hex, ByteView linkage_id,
                                       const keys::TallyEvidence& ev, const std::string& source,
                                       const std::string& message_id) {
  const UnixMillis now = Now();
  auto checked = keys::CheckTallyEvidence(ev, linkage_id, dir(), now);
  if (!checked.ok()) return checked.status().WithContext("the tally of " + ev.agency);
  if (!checked->tally.has_value()) return InvalidArgument("the tally of " + ev.agency + " fails");
  const UnixMillis made = checked->tally->made_at_ms;
  UnixMillis held = 0;
  REFBUS_ASSIGN_OR_RETURN(TallyPut put,
                          linkage_store->PutTallyIfNewer(
                              linkage_hex, HeldTally(ev, made, source, message_id, now), &held));
  if (put == TallyPut::kOlder) {
    return FailedPrecondition("a newer tally of " + ev.agency + " about linkage " + linkage_hex +
                              " is held (made at " + FormatUtc(held) + "); this one, made at " +
                              FormatUtc(made) + ", is not kept");
  }
  return Status::Ok();
}

// ---- the receiving agency ----

// Checks, in order: the linkage id is one of this agency's notices naming the sender; the
// evidence parses; its agency is the verified sender; it verifies (check-bundle's checks);
// it is not older than the sender's tally held. Nothing is written before all pass.
Status Engine::Impl::OnLinkageTally(CaseStore::Txn& txn, const OpenedCase& oc, MessageRecord& msg) {
  const std::string& from = oc.envelope.header.sender_id;  // verified by OpenCase
  const schema::LinkageTallyEvidence& m = oc.message.linkage_tally;
  const std::string linkage_hex = HexEncode(m.linkage_id);
  std::vector<std::string> cases;
  REFBUS_ASSIGN_OR_RETURN(bool linked, NoticesLink(*linkage_store, linkage_hex, from, &cases));
  if (!linked) {
    return PermissionDenied("a linkage tally about " + linkage_hex + " from " + from +
                            ", which no linkage notice of this agency links to it on that id");
  }
  REFBUS_ASSIGN_OR_RETURN(keys::TallyEvidence ev, keys::ParseTallyEvidence(m.evidence));
  if (ev.agency != from) {
    return PermissionDenied("the tally evidence is " + ev.agency +
                            "'s, but the message comes from " + from +
                            ": an agency sends its own tally only");
  }
  REFBUS_RETURN_IF_ERROR(KeepTallyEvidence(linkage_hex, m.linkage_id, ev, "bus", msg.message_id));
  REFBUS_RETURN_IF_ERROR(RememberGrant(txn, oc.grant, from));
  TimelineEvent e = Event("linkage-tally-received");
  e.from = from;
  e.message_id = msg.message_id;
  e.linkage_id = linkage_hex;
  spdlog::info("agent {}: linkage tally of {} about {} kept", me(), from, linkage_hex);
  return Timeline(txn, m.case_ref, std::move(e));
}

// ---- the sending agency ----

Result<StoredGrant> Engine::Impl::TallyGrant(const CaseStore::Txn& txn,
                                             const std::string& linkage_hex, const std::string& to,
                                             const std::string& grant_hex) {
  std::vector<std::string> cases;
  REFBUS_ASSIGN_OR_RETURN(bool linked, NoticesLink(*linkage_store, linkage_hex, to, &cases));
  if (!linked) {
    return FailedPrecondition("this agency's notices about linkage " + linkage_hex +
                              " do not name " + to +
                              ": a tally goes only to an agency of the match");
  }
  const keys::ScopeParty party = keys::ScopePartyOf(dir(), to);
  auto fits = [&](const StoredGrant& sg) {
    const schema::ConsentGrant& g = sg.grant();
    return std::find(cases.begin(), cases.end(), g.case_ref) != cases.end() &&
           g.recorded_by == me() && !sg.known.revoked && Now() <= g.expires_at_ms &&
           g.basis != schema::LegalBasis::kUnspecified &&
           std::find(g.purposes.begin(), g.purposes.end(), schema::Purpose::kLinkage) !=
               g.purposes.end() &&
           keys::MayReceive(g, party);
  };
  const std::string wanted =
      "recorded by this agency for the case of its notice (" + cases.front() +
      "), in force, with purpose linkage, a legal basis and " + to + " among its recipients";
  if (!grant_hex.empty()) {
    REFBUS_ASSIGN_OR_RETURN(StoredGrant sg, RequireGrant(txn, grant_hex));
    if (!fits(sg)) return FailedPrecondition("grant " + grant_hex + " is not a grant " + wanted);
    return sg;
  }
  for (const std::string& case_ref : cases) {
    REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, case_ref));
    for (auto it = c.grants.rbegin(); it != c.grants.rend(); ++it) {
      auto sg = RequireGrant(txn, *it);
      if (sg.ok() && fits(*sg)) return std::move(*sg);
    }
  }
  return FailedPrecondition("no consent grant " + wanted + ": record one first");
}

Result<Json> Engine::SendTally(const std::string& linkage_id, const Json& body) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(TallySendRequest req, ParseTallySendRequest(body));
  REFBUS_ASSIGN_OR_RETURN(Bytes id, d.linkage_store->HeldLinkageId(linkage_id));
  if (req.to == d.me()) return InvalidArgument("a tally goes to another agency, not this one");
  REFBUS_ASSIGN_OR_RETURN(auto held, d.linkage_store->TallyRecords(linkage_id));
  auto own = std::find_if(held.begin(), held.end(),
                          [&](const TallyRecord& t) { return t.agency == d.me(); });
  if (own == held.end()) {
    return FailedPrecondition("this agency has no tally about linkage " + linkage_id +
                              " yet: make one first (link tally)");
  }
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(StoredGrant grant, d.TallyGrant(txn, linkage_id, req.to, req.grant_id));
  const std::string case_ref = grant.grant().case_ref;
  CaseMessage m;
  m.type = CaseMessage::Type::kLinkageTally;
  m.linkage_tally = {case_ref,         id,
                     own->evidence,    schema::EncodeSignedConsentGrant(grant.known.grant),
                     req.operator_ref, Impl::Now()};
  REFBUS_ASSIGN_OR_RETURN(Bytes mid, d.SendCase(txn, grant.known, std::move(m), {req.to},
                                                schema::Purpose::kLinkage, "linkage-tally"));
  REFBUS_RETURN_IF_ERROR(d.RecordShare(txn, grant, req.to));
  TimelineEvent ev = Event("linkage-tally-sent");
  ev.to = req.to;
  ev.message_id = HexEncode(mid);
  ev.linkage_id = linkage_id;
  ev.operator_ref = req.operator_ref;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  return Json{{"linkage_id", linkage_id},
              {"to", req.to},
              {"case_ref", case_ref},
              {"grant_id", grant.key},
              {"message_id", HexEncode(mid)}};
}

Result<Json> Engine::LinkageTallies(const std::string& linkage_id) {
  Impl& d = *impl_;
  REFBUS_RETURN_IF_ERROR(d.linkage_store->HeldLinkageId(linkage_id).status());
  REFBUS_ASSIGN_OR_RETURN(auto held, d.linkage_store->TallyRecords(linkage_id));
  Json out = Json::array();
  for (const TallyRecord& t : held) {
    REFBUS_ASSIGN_OR_RETURN(keys::LinkageTally s, HeldStatement(t.evidence));
    out.push_back({{"agency", t.agency},
                   {"victims", s.victims},
                   {"deletion_items", s.deletion_items},
                   {"from", s.from_date},
                   {"to", s.to_date},
                   {"made_at_ms", s.made_at_ms},
                   {"source", t.source.empty() ? "own-or-file" : t.source},
                   {"message_id", t.message_id},
                   {"received_at_ms", t.received_at_ms}});
  }
  return out;
}

}  // namespace refbus::agent
