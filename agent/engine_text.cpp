// Engine: case text at rest. Free text is sealed under its grant's data key when it is
// stored (agent/case_crypto.h); the case view shows it only through ReadCase, which
// records the read.
#include <spdlog/spdlog.h>

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
  REFBUS_ASSIGN_OR_RETURN(
      Json view, d.CaseView(txn, case_ref, [&d](const CaseText& t, const std::string& place) {
        return d.ReadText(t, place);
      }));
  REFBUS_RETURN_IF_ERROR(txn.Commit());
  spdlog::info("agent {}: operator {} read the text of case {}", d.me(), op, case_ref);
  return view;
}

}  // namespace refbus::agent
