// Engine: case text at rest. Free text is sealed under its grant's data key when it is
// stored (agent/case_crypto.h); the case view shows it only through ReadCase, which
// records the read.
#include <spdlog/spdlog.h>

#include <set>
#include <utility>

#include "agent/engine_impl.h"
#include "agent/engine_requests.h"

namespace refbus::agent {

Result<CaseText> Engine::Impl::SealText(const std::string& grant_hex, const std::string& place,
                                        const std::string& text) {
  CaseText out;
  if (text.empty()) return out;
  REFBUS_ASSIGN_OR_RETURN(SealedText s, grant_keys->Seal(grant_hex, place, text));
  out.sealed = std::move(s);
  return out;
}

// Stores written before case text was sealed hold reasons in the clear: each is sealed at
// start under its record's grant, or dropped if that grant's data was purged. (Old copies
// stay in the store's freed pages until LMDB reuses them.)
Status Engine::Impl::SealLegacyText() {
  REFBUS_ASSIGN_OR_RETURN(auto txn, case_store->Begin(true));
  size_t sealed = 0;
  auto seal = [&](CaseText& t, const std::string& grant, const std::string& place) -> Status {
    if (t.sealed || t.plain.empty()) return Status::Ok();
    auto s = grant.empty() ? Result<CaseText>(FailedPrecondition("no grant"))
                           : SealText(grant, place, t.plain);
    if (!s.ok() && s.status().code() != Status::Code::kFailedPrecondition) return s.status();
    t = s.ok() ? std::move(*s) : CaseText{};
    ++sealed;
    return Status::Ok();
  };
  REFBUS_ASSIGN_OR_RETURN(auto referrals, LoadAll<ReferralRecord>(txn));
  for (auto& [key, r] : referrals) {
    const size_t before = sealed;
    for (size_t i = 0; i < r.history.size(); ++i) {
      auto& reason = r.history[i].reason;
      if (!reason || reason->plain == kRevokedWords) continue;
      REFBUS_RETURN_IF_ERROR(seal(*reason, r.grant_id, HistoryReasonPlace(key, i)));
    }
    if (sealed != before) REFBUS_RETURN_IF_ERROR(Save(txn, key, r));
  }
  REFBUS_ASSIGN_OR_RETURN(auto handoffs, LoadAll<HandoffRecord>(txn));
  for (auto& [key, h] : handoffs) {
    const size_t before = sealed;
    REFBUS_RETURN_IF_ERROR(seal(h.reason, h.grant_id, HandoffReasonPlace(key)));
    if (sealed != before) REFBUS_RETURN_IF_ERROR(Save(txn, key, h));
  }
  REFBUS_ASSIGN_OR_RETURN(auto cases, LoadAll<CaseRecord>(txn));
  for (auto& [key, c] : cases) {
    if (!c.closed_reason) continue;
    const size_t before = sealed;
    const std::string grant = c.grants.empty() ? "" : c.grants.front();
    REFBUS_RETURN_IF_ERROR(seal(*c.closed_reason, grant, ClosedReasonPlace(key)));
    if (sealed != before) REFBUS_RETURN_IF_ERROR(Save(txn, key, c));
  }
  REFBUS_ASSIGN_OR_RETURN(size_t notices, SealLegacyNoticeAnswers(txn));
  sealed += notices;
  if (sealed == 0) return Status::Ok();  // nothing written: the transaction is dropped
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  spdlog::info("agent {}: sealed {} text fields an older version had stored in the clear", me(),
               sealed);
  return Status::Ok();
}

Json Engine::Impl::ReadText(const CaseText& text, const std::string& place) {
  if (!text.sealed) return text.plain;
  auto opened = grant_keys->Unseal(*text.sealed, place);
  if (opened.ok()) return *opened;
  if (opened.status().code() == Status::Code::kFailedPrecondition) {
    return "[purged: the data of grant " + text.sealed->grant_id + " was purged]";
  }
  spdlog::error("agent {}: case text at {} is unreadable: {}", me(), place,
                opened.status().message());
  return "[unreadable: " + opened.status().message() + "]";
}

Result<Json> Engine::Impl::CaseView(const CaseStore::Txn& txn, const std::string& case_ref,
                                    const TextReader& read) {
  REFBUS_ASSIGN_OR_RETURN(CaseRecord c, LoadCase(txn, case_ref));
  std::vector<ReferralRecord> referrals;
  std::vector<HandoffRecord> handoffs;
  std::vector<DeletionRecord> deletions;
  REFBUS_ASSIGN_OR_RETURN(auto all_referrals, LoadAll<ReferralRecord>(txn));
  for (auto& [k, r] : all_referrals) {
    if (r.case_ref == case_ref) referrals.push_back(std::move(r));
  }
  REFBUS_ASSIGN_OR_RETURN(auto all_handoffs, LoadAll<HandoffRecord>(txn));
  for (auto& [k, r] : all_handoffs) {
    if (r.case_ref == case_ref) handoffs.push_back(std::move(r));
  }
  REFBUS_ASSIGN_OR_RETURN(auto all_deletions, LoadAll<DeletionRecord>(txn));
  for (auto& [k, r] : all_deletions) {
    if (r.case_ref == case_ref) deletions.push_back(std::move(r));
  }
  return CaseJson(c, referrals, handoffs, deletions, read);
}

Result<Json> Engine::Case(const std::string& case_ref_or_local) {
  Impl& d = *impl_;
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(false));
  REFBUS_ASSIGN_OR_RETURN(std::string case_ref, d.ResolveCase(txn, case_ref_or_local));
  return d.CaseView(txn, case_ref, SealedMark);
}

namespace {

// A piece of another agency's text a read shows: the agency told, and what it is told.
struct TextAccess {
  std::string owner;
  std::string grant_id;    // hex
  std::string message_id;  // hex: the message that brought the text (or its record's id)
  schema::MessageKind kind = schema::MessageKind::kUnspecified;
  schema::Purpose purpose = schema::Purpose::kUnspecified;  // kUnspecified: the grant's first
};

bool Sealed(const CaseText& t) { return t.sealed.has_value(); }

// Every sealed text of the case written by another agency, with whose words it is.
Result<std::vector<TextAccess>> OthersTextOf(const CaseStore::Txn& txn, const std::string& case_ref,
                                             const std::string& me) {
  std::vector<TextAccess> out;
  REFBUS_ASSIGN_OR_RETURN(auto referrals, LoadAll<ReferralRecord>(txn));
  for (const auto& [rid, r] : referrals) {
    if (r.case_ref != case_ref) continue;
    for (const auto& step : r.history) {
      if (step.by == me || !step.reason || !Sealed(*step.reason)) continue;
      out.push_back({step.by, r.grant_id, step.message_id.value_or(rid),
                     schema::MessageKind::kReferralState, r.purpose});
    }
  }
  REFBUS_ASSIGN_OR_RETURN(auto handoffs, LoadAll<HandoffRecord>(txn));
  for (const auto& [hid, h] : handoffs) {
    if (h.case_ref != case_ref || !Sealed(h.reason)) continue;
    // The handoff's reason is the lead's; at the lead, an answer's reason replaces it.
    if (h.side == HandoffSide::kTo) {
      out.push_back({h.peer, h.grant_id, h.message_id, schema::MessageKind::kHandoff, {}});
    } else if (h.state != HandoffState::kPending) {
      out.push_back({h.peer,
                     h.grant_id,
                     h.answer_message_id.value_or(hid),
                     schema::MessageKind::kHandoffAck,
                     {}});
    }
  }
  REFBUS_ASSIGN_OR_RETURN(auto c, Load<CaseRecord>(txn, case_ref));
  if (c && c->closed_reason && Sealed(*c->closed_reason)) {
    const std::string by = c->closed_by.value_or(c->lead);
    // Closed by another agency, in a record older than closed_message_id: recorded here only.
    if (!by.empty() && by != me && c->closed_message_id) {
      out.push_back({by,
                     c->closed_reason->sealed->grant_id,
                     *c->closed_message_id,
                     schema::MessageKind::kCaseClosed,
                     {}});
    }
  }
  return out;
}

}  // namespace

// Reading another agency's words is an access like opening its message: each gets a
// signed access record, to the broker's audit log and to the agency whose words they are
// (one per message the text came with). Reading this agency's own words is recorded here
// only (the timeline and the log). Text whose grant was purged is not shown, so not told.
Status Engine::Impl::RecordTextAccess(CaseStore::Txn& txn, const std::string& case_ref,
                                      const std::string& operator_ref) {
  REFBUS_ASSIGN_OR_RETURN(std::vector<TextAccess> reads, OthersTextOf(txn, case_ref, me()));
  std::set<std::pair<std::string, std::string>> told;
  const UnixMillis now = Now();
  for (const auto& a : reads) {
    if (!grant_keys->Has(a.grant_id) || !told.insert({a.owner, a.message_id}).second) continue;
    auto mid = HexDecode(a.message_id);
    auto gid = HexDecode(a.grant_id);
    if (!mid.ok() || mid->size() != 16 || !gid.ok()) continue;
    REFBUS_ASSIGN_OR_RETURN(auto known, LoadGrant(txn, *gid));
    if (!known) continue;
    schema::Purpose purpose = a.purpose;
    const auto& purposes = known->grant.grant.purposes;
    if (purpose == schema::Purpose::kUnspecified && !purposes.empty()) purpose = purposes[0];
    schema::AccessRecord ar{*mid, case_ref, me(), operator_ref, now, *gid, a.kind, a.owner};
    REFBUS_RETURN_IF_ERROR(RecordAccess(txn, ar, *known, purpose));
  }
  return Status::Ok();
}

Result<Json> Engine::ReadCase(const std::string& case_ref_or_local, const Json& body) {
  Impl& d = *impl_;
  if (!body.is_object() || !body.contains("operator") || !body["operator"].is_string() ||
      body["operator"].get<std::string>().empty()) {
    return InvalidArgument("'operator' is required: who reads the case's text");
  }
  const std::string op = body["operator"].get<std::string>();
  if (op.size() > schema::kMaxReasonBytes) return InvalidArgument("'operator' is too long");
  REFBUS_ASSIGN_OR_RETURN(auto txn, d.case_store->Begin(true));
  REFBUS_ASSIGN_OR_RETURN(std::string case_ref, d.ResolveCase(txn, case_ref_or_local));
  // The read is recorded before the text is handed out.
  TimelineEvent ev = Event("case-text-read");
  ev.operator_ref = op;
  REFBUS_RETURN_IF_ERROR(d.Timeline(txn, case_ref, std::move(ev)));
  REFBUS_RETURN_IF_ERROR(d.RecordTextAccess(txn, case_ref, op));
  REFBUS_ASSIGN_OR_RETURN(
      Json view, d.CaseView(txn, case_ref, [&d](const CaseText& t, const std::string& place) {
        return d.ReadText(t, place);
      }));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  d.FlushAfterCommit();
  spdlog::info("agent {}: operator {} read the text of case {}", d.me(), op, case_ref);
  return view;
}

}  // namespace refbus::agent
