// The queries auditors ask of a local audit store (audit/local_store.h): a case's
// history, an agency's accesses, accesses without consent, emergency overrides; and how
// their rows are printed (table, JSON, CSV).
//
// Thread safety: free functions over values; a store is used by one thread at a time.
#ifndef REFBUS_AUDIT_QUERY_H_
#define REFBUS_AUDIT_QUERY_H_

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "audit/local_store.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/operator_signature.h"
#include "schema/types.h"

namespace refbus::audit {

struct AuditRow {
  schema::AuditEntry entry;
  // From the ACCEPTED entry of the same message, where this entry does not say (DELIVERED,
  // ACKED and EXPIRED entries carry only the message id).
  std::string case_ref;
  std::string sender_id;
  schema::MessageKind kind = schema::MessageKind::kUnspecified;
  Bytes consent_grant_id;
  std::string group;  // overrides: the emergency grant (hex) a row belongs to
  std::string note;   // why the row is listed (unconsented), or empty
  // Which sentence note is, for a report in another language, with its values in order:
  enum class Note {
    kNone,                 // (note empty, or not one of these)
    kOpenedBy,             // operator
    kNoGrant,              // (none)
    kNeverGranted,         // grant
    kGrantedAfter,         // grant, entry
    kRevokedBefore,        // grant, entry, time (UTC)
    kOverrideGranted,      // the grant entry's detail
    kSharedUnderOverride,  // (none)
  };
  Note note_code = Note::kNone;
  std::vector<std::string> note_args;
  // OPENED rows, once checked (audit/operator_check.h): what the auditor can say about the
  // operator who opened the message.
  std::optional<keys::OperatorCheck> operator_check;
};

struct QueryResult {
  std::vector<AuditRow> rows;
  uint64_t entries_scanned = 0;
  uint64_t checkpoint_size = 0;  // the latest stored checkpoint, matched by the entries
};

// Every query scans the local entries once and first checks that they are exactly the log
// of the latest stored checkpoint (root and size; run verify for the signatures and the
// full check): FailedPrecondition otherwise.
Result<QueryResult> QueryCase(const LocalAuditStore& store, std::string_view case_ref);
// DELIVERED, ACKED and OPENED entries of agency with from_ms <= time < to_ms.
Result<QueryResult> QueryAccesses(const LocalAuditStore& store, std::string_view agency,
                                  UnixMillis from_ms, UnixMillis to_ms);
// OPENED entries naming no grant, a grant not CONSENT_GRANTED in this log before the
// access, or one CONSENT_REVOKED before the access (log order).
Result<QueryResult> QueryUnconsented(const LocalAuditStore& store);
// CONSENT_GRANTED entries with emergency_override, each followed by what was shared under
// it (entries naming the grant, and the deliveries of those messages).
Result<QueryResult> QueryOverrides(const LocalAuditStore& store);

enum class OutputFormat { kTable, kJson, kCsv };
void PrintRows(const QueryResult& result, OutputFormat format, std::ostream& out);

// "2024-05-01", "2024-05-01T09:30:00Z" (UTC) or Unix milliseconds.
Result<UnixMillis> ParseTime(std::string_view text);

// RFC 4180 field quoting; a field that starts with = + - @ TAB or CR is quoted with a
// leading ' so that a spreadsheet keeps it as text instead of running it as a formula.
std::string CsvField(std::string_view s);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_QUERY_H_
