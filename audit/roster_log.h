// The operator rosters agencies published through their brokers (OPERATOR_ROSTER entries,
// PROTOCOL.md 9.3), and the roster in effect at any entry of the log (issue 18 item 1).
//
// An auditor ties an access's operator key to a person with the agency's roster as it
// stood when the access was recorded: the last OPERATOR_ROSTER entry of that agency before
// the access in the same log, its signature checked again here against the auditor's
// directory (the broker's check is not taken on trust). Only the roster's active operators
// count at that point: a key added after the access, or an account disabled before it, is
// NOT IN ROSTER. A roster that does not verify is left out and named in problems().
// `refbus-audit --roster FILE` replaces all of this with the rosters given.
//
// Thread safety: a value; not for concurrent mutation.
#ifndef REFBUS_AUDIT_ROSTER_LOG_H_
#define REFBUS_AUDIT_ROSTER_LOG_H_

#include <map>
#include <string>
#include <vector>

#include "audit/local_store.h"
#include "audit/query.h"
#include "keys/operator_roster.h"
#include "keys/operator_signature.h"
#include "schema/types.h"

namespace refbus::audit {

class RosterHistory {
 public:
  // Takes the roster of e if it is an OPERATOR_ROSTER entry (others are ignored).
  // REQUIRES: entries come in index order.
  void Add(const schema::AuditEntry& e, const schema::Directory& directory, UnixMillis now);

  // Every OPERATOR_ROSTER entry of store, in index order.
  static Result<RosterHistory> FromStore(const LocalAuditStore& store,
                                         const schema::Directory& directory, UnixMillis now);

  // agency's roster in effect at entry index (recorded before it), with only the operators
  // active in it; empty if the agency had published none by then.
  std::vector<keys::OperatorRoster> InEffect(const std::string& agency, uint64_t index) const;

  // The operator verdict of an OPENED (or signed CONSENT_REVOKED) entry, by the roster in
  // effect at it (audit/operator_check.h).
  keys::OperatorCheck Check(const schema::AuditEntry& e) const;

  size_t size() const { return count_; }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  // agency -> (entry index -> roster), in index order.
  std::map<std::string, std::map<uint64_t, keys::OperatorRoster>> rosters_;
  size_t count_ = 0;
  std::vector<std::string> problems_;
};

// As CheckRowOperators (audit/operator_check.h), each row by the roster in effect at it.
std::vector<const AuditRow*> CheckRowOperatorsByLog(QueryResult& result,
                                                    const RosterHistory& history);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_ROSTER_LOG_H_
