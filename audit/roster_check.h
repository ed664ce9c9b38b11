// Emergency overrides checked against agencies' signed operator rosters (issue 18 items
// 1-2; keys/operator_roster.h).
//
// The broker's CONSENT_GRANTED entry of an override lists each countersigner as
// "NAME (requested|approved) [key FINGERPRINT]" (its signature verified at registration,
// else ", INVALID SIGNATURE" inside the brackets). CheckOverridesWithRosters annotates
// each override's grant row with what the roster of the recording agency says: each
// countersigner's key is the rostered key of that name (and their role), and the
// two-person rule holds (a requester and a different approver with the supervisor role,
// both in the roster). A row it cannot vouch for says why in capitals (NOT IN ROSTER,
// KEY MISMATCH, NO ROSTER, TWO-PERSON RULE NOT SHOWN).
//
// Thread safety: free functions over values.
#ifndef REFBUS_AUDIT_ROSTER_CHECK_H_
#define REFBUS_AUDIT_ROSTER_CHECK_H_

#include <string>
#include <string_view>
#include <vector>

#include "audit/query.h"
#include "keys/operator_roster.h"

namespace refbus::audit {

struct Countersigner {
  std::string name;         // the operator's name
  std::string part;         // "requested", "approved", or "" (a key-file countersigner)
  std::string fingerprint;  // keys::Fingerprint of the key id
  bool valid = true;        // the broker verified the signature
};

// The countersigners an override entry's detail lists (empty if it lists none).
std::vector<Countersigner> CountersignersOf(std::string_view detail);

// Adds the roster verdict to the note of every override grant row (rows of
// QueryOverrides). Returns how many overrides the rosters vouch for.
size_t CheckOverridesWithRosters(QueryResult& overrides,
                                 const std::vector<keys::OperatorRoster>& rosters);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_ROSTER_CHECK_H_
