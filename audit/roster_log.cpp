#include "audit/roster_log.h"

#include "audit/operator_check.h"
#include "schema/codec.h"

namespace refbus::audit {

void RosterHistory::Add(const schema::AuditEntry& e, const schema::Directory& directory,
                        UnixMillis now) {
  if (e.event != schema::AuditEvent::kOperatorRoster) return;
  auto roster = keys::VerifyOperatorRoster(AsChars(e.signed_roster), directory, now);
  if (!roster.ok()) {
    problems_.push_back("entry " + std::to_string(e.index) + ": the operator roster of " +
                        e.sender_id + " is left out: " + roster.status().message());
    return;
  }
  if (roster->agency != e.sender_id) {
    problems_.push_back("entry " + std::to_string(e.index) + ": a roster of " + roster->agency +
                        " recorded as " + e.sender_id + "'s is left out");
    return;
  }
  // Only who could act then: a disabled account's key vouches for nothing after it.
  std::erase_if(roster->operators, [](const keys::RosterOperator& o) { return !o.active; });
  rosters_[roster->agency][e.index] = std::move(*roster);
  ++count_;
}

Result<RosterHistory> RosterHistory::FromStore(const LocalAuditStore& store,
                                               const schema::Directory& directory, UnixMillis now) {
  RosterHistory h;
  REFBUS_RETURN_IF_ERROR(store.ForEachEntry([&](uint64_t, ByteView bytes) -> Status {
    auto e = schema::DecodeAuditEntry(bytes);
    if (e.ok()) h.Add(*e, directory, now);  // verify names entries that do not decode
    return Status::Ok();
  }));
  return h;
}

std::vector<keys::OperatorRoster> RosterHistory::InEffect(const std::string& agency,
                                                          uint64_t index) const {
  auto a = rosters_.find(agency);
  if (a == rosters_.end()) return {};
  auto after = a->second.lower_bound(index);  // the first recorded at or after the entry
  if (after == a->second.begin()) return {};
  return {std::prev(after)->second};
}

keys::OperatorCheck RosterHistory::Check(const schema::AuditEntry& e) const {
  // An access is the actor's; a revocation the revoking agency's (sender_id).
  const std::string& agency =
      e.event == schema::AuditEvent::kConsentRevoked ? e.sender_id : e.actor;
  return CheckEntryOperator(e, InEffect(agency, e.index));
}

std::vector<const AuditRow*> CheckRowOperatorsByLog(QueryResult& result,
                                                    const RosterHistory& history) {
  std::vector<const AuditRow*> failing;
  for (AuditRow& row : result.rows) {
    const bool revoked_by_operator = row.entry.event == schema::AuditEvent::kConsentRevoked &&
                                     !row.entry.operator_signature.empty();
    if (row.entry.event != schema::AuditEvent::kEnvelopeOpened && !revoked_by_operator) continue;
    row.operator_check = history.Check(row.entry);
    if (keys::VerdictFails(row.operator_check->verdict)) failing.push_back(&row);
  }
  return failing;
}

}  // namespace refbus::audit
