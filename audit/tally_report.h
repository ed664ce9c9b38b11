// What refbus-audit check-bundle prints for a checked joint evidence bundle of linkage
// tallies (PROTOCOL.md 13.7): each tally or why it failed, and the totals over those that
// verify; as text for people and as one JSON object (--json).
//
// Thread safety: free functions over values.
#ifndef REFBUS_AUDIT_TALLY_REPORT_H_
#define REFBUS_AUDIT_TALLY_REPORT_H_

#include <nlohmann/json.hpp>
#include <ostream>

#include "keys/tally_bundle.h"

namespace refbus::audit {

void PrintTallyBundle(std::ostream& out, const keys::CheckedTallyBundle& bundle);
nlohmann::json TallyBundleJson(const keys::CheckedTallyBundle& bundle);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_TALLY_REPORT_H_
