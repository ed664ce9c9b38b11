// refbus-audit report: the auditor's report on one broker's audit log, as ONE self-contained
// HTML page, made offline from the local audit store (audit/local_store.h) that fetch filled.
//
// Contract:
//   - BuildAuditReport reads the store only (no network). It runs VerifyLocalLog with the
//     keys it is given (the same checks, keys and witnesses as `refbus-audit verify`), then
//     scans the entries once for the log's facts (time range, counts by event and by
//     refusal reason, consent grants, a timeline per case), and runs QueryUnconsented and
//     QueryOverrides (audit/tool.h) for the two exception lists.
//   - A store that fails verification still gets a report: the verdict FAIL and every
//     problem (the first bad entry or checkpoint named), and, marked as unverified, what the
//     store holds; the two queries then report why they refused (they need the local log to
//     be the latest checkpoint's log). Errors (a Status) only for a store that cannot be read.
//   - Timelines group entries by case as QueryCase does (an entry naming the case, and
//     every later entry of a message that one named it on), with each message's sender,
//     recipients, relaying brokers, deliveries, acks, openings (operator refs) and consent
//     grant (id, basis, emergency override) joined from its ACCEPTED and CONSENT_GRANTED
//     entries. case_ref (if set) narrows the case sections (timelines, unconsented,
//     overrides) to one case; the log's facts and counts stay whole-log.
//   - Every OPENED entry's operator is checked against the rosters of ReportOptions
//     (audit/operator_check.h); the page lists who opened what with the verdict, and says
//     how many openings fail (INVALID, NOT IN ROSTER).
//   - The page is in Korean or English (audit/report_text.h; times in KST next to UTC in
//     Korean); what the log says is shown as it is.
//   - RenderAuditReportHtml escapes every string that came from the log or the store
//     (HtmlEscape), in text and in attributes, and makes invisible reordering characters
//     visible; the page has inline CSS, no script, no external resource, and a
//     Content-Security-Policy that forbids both. The log holds no message content, so
//     neither does the report.
//
// Thread safety: free functions over values; a store is used by one thread at a time.
#ifndef REFBUS_AUDIT_REPORT_H_
#define REFBUS_AUDIT_REPORT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/local_store.h"
#include "audit/operator_check.h"
#include "audit/query.h"
#include "audit/report_text.h"
#include "audit/verify.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "schema/types.h"

namespace refbus::audit {

struct ReportOptions {
  VerifyOptions verify;  // witnesses and min_cosignatures, as for verify
  // The agencies' verified operator rosters: every opening's operator is checked against
  // them (audit/operator_check.h); none: signed openings say NO ROSTER.
  std::vector<keys::OperatorRoster> rosters;
  // Set when rosters is empty: the rosters the log recorded, verified against this
  // directory, each opening judged by the one in effect at it (audit/roster_log.h).
  std::optional<schema::Directory> roster_directory;
  std::optional<std::string> case_ref;  // only this case in the case sections
  std::string store_label;              // how the report names the store (its folder)
  UnixMillis generated_at_ms = 0;
};

// A consent grant as its CONSENT_GRANTED entry recorded it (the first in log order).
struct ReportGrant {
  Bytes grant_id;
  uint64_t index = 0;
  UnixMillis time_ms = 0;
  bool granted = false;  // false: only a CONSENT_REVOKED entry names it
  std::string case_ref;
  std::string recorded_by;
  std::string basis;   // "basis ..." from the entry's detail (up to its first ';'), or ""
  std::string detail;  // the entry's detail
  bool emergency_override = false;
  std::optional<uint64_t> revoked_index;
  UnixMillis revoked_ms = 0;
};

// One message of a case, joined over its entries.
struct ReportMessage {
  Bytes message_id;
  uint64_t first_index = 0;
  UnixMillis accepted_ms = 0;
  bool accepted = false;
  std::string sender_id;
  std::vector<std::string> recipients;
  schema::MessageKind kind = schema::MessageKind::kUnspecified;
  Bytes consent_grant_id;
  // Who handed it to this broker (ACCEPTED actors: the sender, or a peer broker relaying),
  // where it went on (FORWARDED actors: the next broker) and reroutes (REROUTED: "from -> to").
  std::vector<std::string> accepted_from;
  std::vector<std::string> forwarded_to;
  std::vector<std::string> rerouted;
  std::vector<std::string> delivered_to;
  std::vector<std::string> acked_by;
  std::vector<std::string> opened_by;    // "agency (operator op-...)"
  std::vector<uint64_t> opened_entries;  // the OPENED entries' indexes (AuditReport::openings)
  std::vector<std::string> refused;      // "EVENT REASON: detail" of REJECTED/EXPIRED/QUARANTINED
};

struct ReportCase {
  std::string case_ref;
  std::vector<schema::AuditEntry> entries;  // log order, as QueryCase lists them
  std::vector<ReportMessage> messages;      // in order of their first entry
  std::vector<Bytes> grants;                // grant ids named by the case's entries
};

struct AuditReport {
  std::string store_label;
  UnixMillis generated_at_ms = 0;
  std::optional<std::string> case_filter;
  AuditBinding binding;
  std::string key_fingerprint;  // of the broker key recorded at the last fetch
  VerifyReport verify;

  // The latest stored checkpoint (largest size, then latest arrival), if any.
  std::optional<LocalCheckpoint> latest;
  std::vector<std::string> latest_cosigners;  // valid cosignatures over its size

  uint64_t entries = 0;               // stored entries read
  std::vector<uint64_t> undecodable;  // indexes of stored entries that do not decode
  std::optional<UnixMillis> first_ms, last_ms;
  std::map<schema::AuditEvent, uint64_t> event_counts;
  // Refusal reason -> event -> count, over entries with a reason.
  std::map<schema::NackReason, std::map<schema::AuditEvent, uint64_t>> reason_counts;
  // Refusal reason -> refusals the ENVELOPE_REJECTED entries record (an aggregate entry
  // counts for its refusal_count), and how many of those entries are aggregates.
  std::map<schema::NackReason, uint64_t> refusal_counts;
  uint64_t refusal_aggregates = 0;

  std::map<Bytes, ReportGrant> grants;
  std::vector<ReportCase> cases;  // in order of their first entry

  // Every OPENED entry (of the case, with case_ref) with its operator's verdict, by index.
  struct Opening {
    schema::AuditEntry entry;
    keys::OperatorCheck check;
  };
  std::map<uint64_t, Opening> openings;
  size_t operator_failures = 0;  // openings whose verdict fails (keys::VerdictFails)

  Result<QueryResult> unconsented = Status(Status::Code::kInternal, "not run");
  Result<QueryResult> overrides = Status(Status::Code::kInternal, "not run");

  double seconds = 0;  // to build
};

// REQUIRES: keys come from the verified directory (BrokerLogKeys), as verify's do.
Result<AuditReport> BuildAuditReport(const LocalAuditStore& store, const LogKeys& keys,
                                     const ReportOptions& options);

// The page, in lang (audit/report_text.h). Deterministic for a given report and language.
std::string RenderAuditReportHtml(const AuditReport& report,
                                  ReportLang lang = ReportLang::kEnglish);

// Text for HTML element content and double- or single-quoted attribute values: & < > " '
// as character references; C0 controls (but tab and newline) and DEL as "\xHH"; bidi
// controls (U+061C, U+200E/F, U+202A..E, U+2066..9) as "[U+XXXX]" so that no string from
// the log can reorder what the page shows.
std::string HtmlEscape(std::string_view text);

// An entry's recipients as "a, b, c" (the report's text and its HTML rendering).
std::string RecipientList(const schema::AuditEntry& e);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_REPORT_H_
