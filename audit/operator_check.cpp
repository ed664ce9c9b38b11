#include "audit/operator_check.h"

#include "schema/codec.h"

namespace refbus::audit {

namespace {

// A CONSENT_REVOKED entry's operator: the signed revocation must be this entry's.
keys::OperatorCheck CheckRevocationOperator(const schema::AuditEntry& e,
                                            const std::vector<keys::OperatorRoster>& rosters) {
  auto rev = schema::DecodeConsentRevocation(e.operator_statement);
  if (!rev.ok() || rev->grant_id != e.consent_grant_id || rev->case_ref != e.case_ref ||
      rev->revoked_by != e.sender_id) {
    return {keys::OperatorVerdict::kInvalid,
            "the signed revocation is not this entry's (grant, case or agency differ)",
            keys::OperatorWhy::kNotThisEntry,
            {}};
  }
  schema::OperatorSignature sig{e.operator_ref, e.operator_public_key, e.operator_signature};
  return keys::CheckOperatorSignature(keys::OperatorAction::kConsentRevocation, e.sender_id,
                                      e.operator_ref, e.operator_statement, sig, rosters);
}

}  // namespace

keys::OperatorCheck CheckEntryOperator(const schema::AuditEntry& e,
                                       const std::vector<keys::OperatorRoster>& rosters) {
  using keys::OperatorVerdict;
  if (e.event == schema::AuditEvent::kConsentRevoked) return CheckRevocationOperator(e, rosters);
  if (e.operator_signature.empty()) {
    return keys::CheckOperatorSignature(keys::OperatorAction::kAccessRecord, e.actor,
                                        e.operator_ref, {}, std::nullopt, rosters);
  }
  // The signed bytes must be this entry's access, or a valid signature over some other
  // access could be shown as this one's.
  auto rec = schema::DecodeAccessRecord(e.operator_statement);
  if (!rec.ok()) {
    return {OperatorVerdict::kInvalid,
            "the signed access record does not decode: " + rec.status().message(),
            keys::OperatorWhy::kRecordUnreadable,
            {}};
  }
  if (rec->message_id != e.message_id || rec->case_ref != e.case_ref || rec->agency_id != e.actor ||
      rec->operator_ref != e.operator_ref || rec->owner_agency != e.sender_id) {
    return {OperatorVerdict::kInvalid,
            "the signed access record is not this entry's (message, case, agency or operator "
            "differ)",
            keys::OperatorWhy::kNotThisEntry,
            {}};
  }
  schema::OperatorSignature sig{e.operator_ref, e.operator_public_key, e.operator_signature};
  return keys::CheckOperatorSignature(keys::OperatorAction::kAccessRecord, e.actor, e.operator_ref,
                                      e.operator_statement, sig, rosters);
}

std::vector<const AuditRow*> CheckRowOperators(QueryResult& result,
                                               const std::vector<keys::OperatorRoster>& rosters) {
  std::vector<const AuditRow*> failing;
  for (AuditRow& row : result.rows) {
    const bool revoked_by_operator = row.entry.event == schema::AuditEvent::kConsentRevoked &&
                                     !row.entry.operator_signature.empty();
    if (row.entry.event != schema::AuditEvent::kEnvelopeOpened && !revoked_by_operator) continue;
    row.operator_check = CheckEntryOperator(row.entry, rosters);
    if (keys::VerdictFails(row.operator_check->verdict)) failing.push_back(&row);
  }
  return failing;
}

}  // namespace refbus::audit
