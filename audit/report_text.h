// The words of the auditor's HTML report (audit/report.h), one catalog per language:
// Korean (the default of refbus-audit report: the auditors are Korean) and English.
//
// Every sentence the page says comes from here, event names and operator verdicts
// included; what comes from the log (ids, names, details, message kinds, purposes and
// reason names, which are the protocol's identifiers) and verify's problem messages (the
// technical detail under each problem's translated place) are shown as they are.
// Templates mark their values with {1}, {2}, ... (Fill). Times are shown in Korea
// Standard Time (UTC+9, no daylight saving) next to UTC.
//
// Thread safety: immutable data and free functions.
#ifndef REFBUS_AUDIT_REPORT_TEXT_H_
#define REFBUS_AUDIT_REPORT_TEXT_H_

#include <array>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace refbus::audit {

enum class ReportLang { kKorean, kEnglish };

// "ko" or "en".
Result<ReportLang> ParseReportLang(std::string_view name);

struct ReportText {
  const char* html_lang;
  // Header and navigation.
  const char* title;  // {1} verdict word, {2} origin
  const char* heading;
  const char* meta_broker;
  const char* meta_store;
  const char* meta_generated;  // {1} time
  const char* meta_case_only;  // {1} case
  const char* nav_verification;
  const char* nav_log;
  const char* nav_counts;
  const char* nav_grants;
  const char* nav_unconsented;
  const char* nav_overrides;
  const char* nav_timelines;
  // Verification.
  const char* pass;
  const char* fail;
  const char* first_bad_entry;       // {1}
  const char* first_bad_checkpoint;  // {1} seq, {2} size_suffix
  const char* size_suffix;           // {1}
  const char* checks_explained;
  const char* problems;  // {1} count
  const char* where;
  const char* problem;
  const char* more_problems;  // {1}
  const char* entry_n;        // {1}
  const char* checkpoint_n;   // {1} seq, {2} size
  const char* unverified;
  // The log.
  const char* log;
  const char* broker;
  const char* origin;
  const char* key_at_fetch;
  const char* entries_in_store;
  const char* checkpoints_in_store;
  const char* checkpoints_desc;  // {1} count, {2} with valid signatures
  const char* verified_size;
  const char* root;
  const char* latest_checkpoint;
  const char* latest_desc;  // {1} size, {2} seq, {3} received time
  const char* not_verified;
  const char* cosigners;
  const char* none;
  const char* none_stored;
  const char* witnessed;
  const char* witnessed_up_to;  // {1}
  const char* unwitnessed;
  const char* cosignatures_required;
  const char* unknown_signatures;
  const char* unknown_signatures_desc;  // {1}
  const char* time_range;
  const char* to;
  const char* no_entries;
  const char* undecodable;
  const char* cosigned_checkpoints;
  const char* size;
  const char* arrivals;
  const char* witnesses_valid;
  const char* smaller_not_shown;  // {1}
  // Counts.
  const char* counts;
  const char* by_event;
  const char* event;
  const char* entries;
  const char* total;
  const char* by_reason;
  const char* no_reason;
  const char* reason;
  const char* refusals;
  const char* in_events;
  const char* aggregates;  // {1}
  // Grants.
  const char* grants;
  const char* no_grant_in_log;
  const char* no_grant_for_case;
  const char* grant;
  const char* case_;
  const char* recorded_by;
  const char* basis;
  const char* granted;
  const char* revoked;
  const char* detail;
  const char* entry_at;  // {1} index, {2} time
  const char* not_in_log;
  const char* emergency;
  const char* revoked_at;  // {1}
  const char* no_grant;
  const char* not_granted_here;
  // Queries.
  const char* unconsented_title;
  const char* unconsented_intro;
  const char* unconsented_empty;
  const char* overrides_title;
  const char* overrides_intro;
  const char* overrides_empty;
  const char* not_available;
  const char* time;
  const char* actor;
  const char* message;
  const char* sender;
  const char* recipients;
  const char* operator_;
  const char* operator_lc;  // in running text
  const char* why_listed;
  const char* override_group;
  const char* rows_from;  // {1} rows, {2} entries, {3} checkpoint size
  // Operators.
  const char* operators_title;
  const char* operators_intro;
  const char* operators_none;
  const char* operator_signature;
  const char* operators_failing;  // {1}
  const char* opened_as;          // {1} agency, {2} operator, {3} verdict
  // Timelines.
  const char* timelines;
  const char* no_case_entry;  // {1} case or any
  const char* any_case;
  const char* case_n;  // {1}
  const char* timelines_intro;
  const char* kind;
  const char* accepted_from;
  const char* relayed;
  const char* delivered_to;
  const char* acked_by;
  const char* opened_by;
  const char* consent_grant;
  const char* accepted_at;  // {1}
  const char* no_accepted;
  const char* forwarded_to;  // {1}
  const char* rerouted;      // {1}
  const char* refused;
  const char* details;
  const char* from;
  const char* to_;
  const char* purpose;
  const char* footer;  // {1} entries, {2} seconds
  // The verdict's headline: {1} entries, {2} origin, {3} checkpoints, {4} size, {5} root;
  // failed: {1} problems. nullptr (English): verify's own Headline, which says the same in
  // English and names the first problem.
  const char* headline_ok;
  const char* headline_witnessed;  // {1} size, {2} witnesses
  const char* headline_unwitnessed;
  const char* headline_evidence;  // {1} evidence checkpoints
  const char* headline_failed;    // {1} problems
  // Event names by schema::AuditEvent number, and operator verdicts by
  // keys::OperatorVerdict number; nullptr (English): the schema's and keys' own names.
  std::array<const char*, 21> event_names;
  std::array<const char*, 6> verdict_names;
  // verify's findings by VerifyProblem::Kind, and the operator check's reasons by
  // keys::OperatorWhy, as templates over their args; nullptr (English, and kOther /
  // kNone): the English message as verify and the check wrote it.
  std::array<const char*, 17> problem_texts;
  std::array<const char*, 12> why_texts;
  std::array<const char*, 8> note_texts;  // by AuditRow::Note
  // A query the log refused (it did not verify); nullptr (English): the query's own error.
  const char* query_refused;
};

const ReportText& ReportTextFor(ReportLang lang);

// tmpl with {1}, {2}, ... replaced by values in order (values are inserted as they are:
// the caller escapes them).
std::string Fill(std::string_view tmpl, std::initializer_list<std::string_view> values);
// The same with values in a vector.
std::string FillList(std::string_view tmpl, const std::vector<std::string>& values);

// "2026-11-22 15:07:14.123 KST" (UTC+9).
std::string KstTime(UnixMillis t);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_REPORT_TEXT_H_
