// The operator of every access, checked against the agencies' signed operator rosters
// (issue 18 item 1; keys/operator_signature.h, PROTOCOL.md 9.2).
//
// An OPENED entry names the operator who opened the message (operator_ref). When a
// logged-in operator opened it, the entry also holds their public key, their signature
// and the exact AccessRecord bytes they signed (the broker checked the signature with
// that key; it cannot tell whose key it is). CheckEntryOperator decides, offline, what the
// auditor can say: the signed record is this entry's access (message, case, agency,
// operator), the signature verifies, and the key is the one the agency's roster lists for
// that name: "valid"; "no signature (service account)" for the API token; "UNSIGNED" for a
// person's name without a signature (entries from before operator signatures); "NO
// ROSTER" when no roster of the agency is at hand; "NOT IN ROSTER" and "INVALID" fail.
//
// Thread safety: free functions over values.
#ifndef REFBUS_AUDIT_OPERATOR_CHECK_H_
#define REFBUS_AUDIT_OPERATOR_CHECK_H_

#include <string>
#include <vector>

#include "audit/query.h"
#include "keys/operator_roster.h"
#include "keys/operator_signature.h"
#include "schema/types.h"

namespace refbus::audit {

// A CONSENT_REVOKED entry that carries an operator signature is checked the same way,
// over the signed ConsentRevocation.
// REQUIRES: e.event == OPENED, or CONSENT_REVOKED with an operator signature.
keys::OperatorCheck CheckEntryOperator(const schema::AuditEntry& e,
                                       const std::vector<keys::OperatorRoster>& rosters);

// Sets operator_check on every OPENED row (and signed CONSENT_REVOKED row); returns the rows whose
// verdict fails (keys::VerdictFails), in row order.
std::vector<const AuditRow*> CheckRowOperators(QueryResult& result,
                                               const std::vector<keys::OperatorRoster>& rosters);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_OPERATOR_CHECK_H_
