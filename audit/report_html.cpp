// The HTML page of the auditor's report (audit/report.h), in the language of its catalog
// (audit/report_text.h).
#include <algorithm>
#include <optional>

#include "audit/report.h"
#include "audit/report_text.h"

namespace refbus::audit {
namespace {

using schema::AuditEntry;
using schema::AuditEvent;
using schema::NackReason;

// The page's only styling; no @import, no url(): nothing leaves the file.
constexpr char kStyle[] = R"(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;margin:0 auto;max-width:1200px;padding:16px 24px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:18px;border-bottom:2px solid #d0d7de;padding-bottom:3px;margin-top:28px}
h3{font-size:15px;margin:18px 0 6px}
.meta{color:#57606a;margin:0 0 12px}
.verdict{border:3px solid;border-radius:6px;padding:12px 16px;margin:14px 0}
.verdict .word{font-size:34px;font-weight:800;letter-spacing:2px;margin:0}
.verdict.pass{border-color:#1a7f37;background:#dafbe1}.verdict.pass .word{color:#1a7f37}
.verdict.fail{border-color:#cf222e;background:#ffebe9}.verdict.fail .word{color:#cf222e}
.warn{border-left:4px solid #bf8700;background:#fff8c5;padding:8px 12px;margin:10px 0}
table{border-collapse:collapse;margin:6px 0 12px;width:100%}
th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa}table.kv th{width:220px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
code.ref{word-break:normal;white-space:nowrap}td.t{white-space:nowrap}
tr.group th{background:#ffebe9}
.badge{display:inline-block;border-radius:3px;padding:0 5px;font-size:12px;font-weight:700}
.emergency{background:#cf222e;color:#fff}.revoked{background:#6e7781;color:#fff}
.none{color:#57606a;font-style:italic}
.good{background:#1a7f37;color:#fff}.bad{background:#cf222e;color:#fff}.plain{background:#eaeef2;color:#1b1f24}
nav a{margin-right:12px}
footer{color:#57606a;border-top:1px solid #d0d7de;margin-top:28px;padding-top:6px;font-size:12px}
@media print{nav{display:none}.verdict{break-inside:avoid}}
)";

// Stored problems and rows shown before the page says "and N more".
constexpr size_t kMaxProblemsShown = 500;

std::string E(std::string_view s) { return HtmlEscape(s); }

// "2026-11-22T06:07:14.123Z": the log's events come many to a second.
std::string TimeMs(UnixMillis t) {
  std::string s = FormatUtc(t);
  if (s.size() == 20 && s.back() == 'Z') {
    std::string ms = std::to_string(t % kMillisPerSecond);
    s.insert(19, "." + std::string(3 - ms.size(), '0') + ms);
  }
  return s;
}

std::string Code(std::string_view s) { return "<code>" + E(s) + "</code>"; }
// Case pseudonyms, broker ids and origins: short, and read whole.
std::string Ref(std::string_view s) { return "<code class=\"ref\">" + E(s) + "</code>"; }
std::string RefOrNone(std::string_view s) {
  return s.empty() ? std::string("<span class=\"none\">-</span>") : Ref(s);
}
std::string CodeOrNone(std::string_view s) {
  return s.empty() ? std::string("<span class=\"none\">-</span>") : Code(s);
}
std::string TextOrNone(std::string_view s) {
  return s.empty() ? std::string("<span class=\"none\">-</span>") : E(s);
}
std::string Joined(const std::vector<std::string>& v) {
  if (v.empty()) return "<span class=\"none\">-</span>";
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + E(v[i]);
  return out;
}
std::string Num(uint64_t n) { return std::to_string(n); }

std::string None(std::string_view s) {
  return "<span class=\"none\">" + std::string(s) + "</span>";
}

// A time as the page shows it: UTC in English; Korea Standard Time, then UTC, in Korean.
std::string When(const ReportText& t, UnixMillis ms) {
  if (std::string_view(t.html_lang) == "en") return E(TimeMs(ms));
  return E(KstTime(ms)) + " (" + E(TimeMs(ms)) + ")";
}

std::string Badge(const ReportText& t) {
  return " <span class=\"badge emergency\">" + std::string(t.emergency) + "</span>";
}

// An event's name in the page's language (the schema's name where the catalog has none).
std::string EventText(const ReportText& t, schema::AuditEvent event) {
  const auto i = static_cast<size_t>(event);
  if (i < t.event_names.size() && t.event_names[i] != nullptr) return t.event_names[i];
  return std::string(schema::Name(event));
}

// A verify finding in the page's language (verify's message where the catalog has none).
std::string ProblemText(const ReportText& t, const VerifyProblem& p) {
  const auto i = static_cast<size_t>(p.kind);
  if (i < t.problem_texts.size() && t.problem_texts[i] != nullptr) {
    return FillList(t.problem_texts[i], p.args);
  }
  return p.message;
}

// Why a row is listed, in the page's language.
std::string NoteText(const ReportText& t, const AuditRow& row) {
  const auto i = static_cast<size_t>(row.note_code);
  if (i < t.note_texts.size() && t.note_texts[i] != nullptr)
    return FillList(t.note_texts[i], row.note_args);
  return row.note;
}

// Why an operator check says what it says, in the page's language.
std::string WhyText(const ReportText& t, const keys::OperatorCheck& c) {
  const auto i = static_cast<size_t>(c.why_code);
  if (i < t.why_texts.size() && t.why_texts[i] != nullptr)
    return FillList(t.why_texts[i], c.why_args);
  return c.why;
}

// An operator verdict in the page's language.
std::string VerdictText(const ReportText& t, keys::OperatorVerdict verdict) {
  const auto i = static_cast<size_t>(verdict);
  if (i < t.verdict_names.size() && t.verdict_names[i] != nullptr) return t.verdict_names[i];
  return std::string(keys::VerdictName(verdict));
}

// The verdict's headline from the catalog (verify's own English one where it has none).
std::string HeadlineText(const ReportText& t, const VerifyReport& v) {
  if (t.headline_ok == nullptr) return v.Headline();
  if (!v.ok()) return Fill(t.headline_failed, {Num(v.problems.size())});
  std::string out = Fill(t.headline_ok, {Num(v.entries), v.origin, Num(v.checkpoints),
                                         Num(v.verified_size), HexEncode(v.verified_root)});
  if (v.witnessed_size) {
    std::string names;
    for (const auto& c : v.cosigned) {
      if (c.size != *v.witnessed_size) continue;
      for (const auto& w : c.witnesses) names += (names.empty() ? "" : ", ") + w;
    }
    out += Fill(t.headline_witnessed, {Num(*v.witnessed_size), names});
  }
  if (!v.witnessed) out += t.headline_unwitnessed;
  if (v.evidence_checked > 0) out += Fill(t.headline_evidence, {Num(v.evidence_checked)});
  return out;
}

// The operator verdict as a badge: green for valid, red for a failing one.
std::string VerdictBadge(const ReportText& t, const keys::OperatorCheck& c) {
  const char* cls = keys::VerdictFails(c.verdict)                ? "bad"
                    : c.verdict == keys::OperatorVerdict::kValid ? "good"
                                                                 : "plain";
  return "<span class=\"badge " + std::string(cls) + "\">" + E(VerdictText(t, c.verdict)) +
         "</span>";
}

std::string GrantCell(const ReportText& t, const AuditReport& r, ByteView grant_id,
                      bool emergency_entry) {
  if (grant_id.empty()) return None(t.no_grant);
  std::string out = Code(HexEncode(grant_id));
  auto it = r.grants.find(Bytes(grant_id.begin(), grant_id.end()));
  if (it == r.grants.end() || !it->second.granted) {
    out += " " + None(t.not_granted_here);
    if (emergency_entry) out += Badge(t);
    return out;
  }
  const ReportGrant& g = it->second;
  if (!g.basis.empty()) out += "<br>" + std::string(t.basis) + " " + E(g.basis);
  if (g.emergency_override || emergency_entry) out += Badge(t);
  if (g.revoked_index) {
    out +=
        " <span class=\"badge revoked\">" + Fill(t.revoked_at, {Num(*g.revoked_index)}) + "</span>";
  }
  return out;
}

// What an entry says beyond its index, time, event and actor.
std::string EntryDetails(const ReportText& t, const AuditReport& r, const AuditEntry& e) {
  std::vector<std::string> parts;
  if (!e.sender_id.empty()) parts.push_back(t.from + E(e.sender_id));
  if (!e.recipients.empty()) parts.push_back(t.to_ + E(RecipientList(e)));
  if (e.kind != schema::MessageKind::kUnspecified) {
    parts.push_back(std::string(t.kind) + " " + E(schema::Name(e.kind)));
  }
  if (e.purpose != schema::Purpose::kUnspecified) {
    parts.push_back(t.purpose + E(schema::Name(e.purpose)));
  }
  if (e.reason != NackReason::kUnspecified) {
    parts.push_back("<b>" + std::string(t.reason) + " " + E(schema::Name(e.reason)) + "</b>");
  }
  if (!e.operator_ref.empty()) {
    auto o = r.openings.find(e.index);
    parts.push_back(t.operator_lc + E(e.operator_ref) +
                    (o == r.openings.end() ? "" : " " + VerdictBadge(t, o->second.check)));
  }
  if (!e.consent_grant_id.empty()) {
    auto g = r.grants.find(e.consent_grant_id);
    const bool emergency =
        e.emergency_override || (g != r.grants.end() && g->second.emergency_override);
    parts.push_back(std::string(t.grant) + " " + Code(HexEncode(e.consent_grant_id)) +
                    (emergency ? Badge(t) : ""));
  } else if (e.emergency_override) {
    parts.push_back(Badge(t));
  }
  if (!e.detail.empty()) parts.push_back("<q>" + E(e.detail) + "</q>");
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "; " : "") + parts[i];
  return out.empty() ? None("-") : out;
}

void RenderVerdict(const ReportText& t, const AuditReport& r, std::string& h) {
  const VerifyReport& v = r.verify;
  h += "<section id=\"verification\"><h2>" + std::string(t.nav_verification) + "</h2>\n";
  h += std::string("<div class=\"verdict ") + (v.ok() ? "pass" : "fail") +
       "\" id=\"verdict\"><p class=\"word\">" + (v.ok() ? t.pass : t.fail) + "</p>\n";
  h += "<p>" + E(HeadlineText(t, v)) + "</p>\n";
  if (!v.ok() && v.first_bad_entry) {
    h += "<p id=\"first-bad-entry\"><b>" + Fill(t.first_bad_entry, {Num(*v.first_bad_entry)}) +
         "</b></p>\n";
  }
  if (!v.ok() && v.first_bad_checkpoint_seq) {
    std::string size;
    for (const auto& p : v.problems) {
      if (p.where == VerifyProblem::Where::kCheckpoint && p.seq == *v.first_bad_checkpoint_seq) {
        size = Fill(t.size_suffix, {Num(p.index)});
        break;
      }
    }
    h += "<p id=\"first-bad-checkpoint\"><b>" +
         Fill(t.first_bad_checkpoint, {Num(*v.first_bad_checkpoint_seq), size}) + "</b></p>\n";
  }
  h += "</div>\n<p>" + std::string(t.checks_explained) + "</p>\n";
  if (!v.problems.empty()) {
    h += "<h3>" + Fill(t.problems, {Num(v.problems.size())}) +
         "</h3>\n<table id=\"problems\"><tr><th>" + t.where + "</th><th>" + t.problem +
         "</th></tr>\n";
    size_t shown = 0;
    for (const auto& p : v.problems) {
      if (++shown > kMaxProblemsShown) {
        h += "<tr><td colspan=\"2\">" +
             Fill(t.more_problems, {Num(v.problems.size() - kMaxProblemsShown)}) + "</td></tr>\n";
        break;
      }
      const bool entry = p.where == VerifyProblem::Where::kEntry;
      h += "<tr><td>" +
           (entry ? Fill(t.entry_n, {Num(p.index)})
                  : Fill(t.checkpoint_n, {Num(p.seq), Num(p.index)})) +
           "</td><td>" + E(ProblemText(t, p)) + "</td></tr>\n";
    }
    h += "</table>\n";
  }
  h += "</section>\n";
}

void RenderCosigned(const ReportText& t, const VerifyReport& v, std::string& h) {
  if (v.cosigned.empty()) return;
  h += "<h3>" + std::string(t.cosigned_checkpoints) +
       "</h3>\n<table id=\"cosigned\"><tr><th class=\"num\">" + t.size + "</th><th>" + t.arrivals +
       "</th><th>" + t.witnesses_valid + "</th></tr>\n";
  const size_t from = v.cosigned.size() > 20 ? v.cosigned.size() - 20 : 0;
  if (from > 0) {
    h += "<tr><td colspan=\"3\">" + Fill(t.smaller_not_shown, {Num(from)}) + "</td></tr>\n";
  }
  for (size_t i = from; i < v.cosigned.size(); ++i) {
    const auto& c = v.cosigned[i];
    std::vector<std::string> seqs;
    for (uint64_t s : c.seqs) seqs.push_back("#" + Num(s));
    h += "<tr><td class=\"num\">" + Num(c.size) + "</td><td>" + Joined(seqs) + "</td><td>" +
         Joined(c.witnesses) + "</td></tr>\n";
  }
  h += "</table>\n";
}

void RenderLog(const ReportText& t, const AuditReport& r, std::string& h) {
  const VerifyReport& v = r.verify;
  h += "<section id=\"log\"><h2>" + std::string(t.log) + "</h2>\n<table class=\"kv\">\n";
  auto row = [&](std::string_view k, const std::string& value) {
    h += "<tr><th>" + std::string(k) + "</th><td>" + value + "</td></tr>\n";
  };
  row(t.broker, Ref(r.binding.broker_id));
  row(t.origin, Ref(r.binding.origin));
  row(t.key_at_fetch, CodeOrNone(r.key_fingerprint));
  row(t.entries_in_store, Num(r.entries));
  row(t.checkpoints_in_store, Fill(t.checkpoints_desc, {Num(v.checkpoints), Num(v.signatures_ok)}));
  row(t.verified_size, Num(v.verified_size) +
                           (v.verified_size > 0 ? t.root + Code(HexEncode(v.verified_root)) : ""));
  if (r.latest) {
    std::string latest = Fill(t.latest_desc, {Num(r.latest->size), Num(r.latest->seq),
                                              When(t, r.latest->received_at_ms)});
    if (v.verified_size == r.latest->size && v.verified_size > 0) {
      latest += t.root + Code(HexEncode(v.verified_root));
    } else {
      latest += t.not_verified;
    }
    row(t.latest_checkpoint, latest);
    row(t.cosigners, r.latest_cosigners.empty() ? None(t.none) : Joined(r.latest_cosigners));
  } else {
    row(t.latest_checkpoint, None(t.none_stored));
  }
  row(t.witnessed, v.witnessed ? Fill(t.witnessed_up_to, {Num(*v.witnessed_size)})
                               : "<b>" + std::string(t.unwitnessed) + "</b>");
  if (v.min_cosignatures > 0) row(t.cosignatures_required, Num(v.min_cosignatures));
  if (v.unknown_signatures > 0) {
    row(t.unknown_signatures, Fill(t.unknown_signatures_desc, {Num(v.unknown_signatures)}));
  }
  row(t.time_range,
      r.first_ms ? When(t, *r.first_ms) + t.to + When(t, *r.last_ms) : None(t.no_entries));
  if (!r.undecodable.empty()) {
    std::vector<std::string> idx;
    for (uint64_t i : r.undecodable) {
      if (idx.size() == 50) {
        idx.push_back("...");
        break;
      }
      idx.push_back(Num(i));
    }
    row(t.undecodable, Num(r.undecodable.size()) + ": " + Joined(idx));
  }
  h += "</table>\n";
  RenderCosigned(t, v, h);
  h += "</section>\n";
}

void RenderCounts(const ReportText& t, const AuditReport& r, std::string& h) {
  h += "<section id=\"counts\"><h2>" + std::string(t.counts) + "</h2>\n<h3>" + t.by_event +
       "</h3>\n<table id=\"event-counts\"><tr><th>" + t.event + "</th><th class=\"num\">" +
       t.entries + "</th></tr>\n";
  uint64_t total = 0;
  for (const auto& [event, n] : r.event_counts) {
    h += "<tr><td>" + E(EventText(t, event)) + "</td><td class=\"num\">" + Num(n) + "</td></tr>\n";
    total += n;
  }
  h += "<tr><th>" + std::string(t.total) + "</th><th class=\"num\">" + Num(total) +
       "</th></tr>\n</table>\n<h3>" + t.by_reason + "</h3>\n";
  if (r.reason_counts.empty()) {
    h += "<p class=\"none\" id=\"reason-counts\">" + std::string(t.no_reason) + "</p>\n";
  } else {
    h += "<table id=\"reason-counts\"><tr><th>" + std::string(t.reason) +
         "</th><th class=\"num\">" + t.entries + "</th><th class=\"num\">" + t.refusals +
         "</th><th>" + t.in_events + "</th></tr>\n";
    for (const auto& [reason, events] : r.reason_counts) {
      uint64_t n = 0;
      std::vector<std::string> in;
      for (const auto& [event, k] : events) {
        n += k;
        in.push_back(EventText(t, event) + " " + Num(k));
      }
      auto refused = r.refusal_counts.find(reason);
      h += "<tr><td>" + E(schema::Name(reason)) + "</td><td class=\"num\">" + Num(n) +
           "</td><td class=\"num\">" +
           Num(refused == r.refusal_counts.end() ? 0 : refused->second) + "</td><td>" + Joined(in) +
           "</td></tr>\n";
    }
    h += "</table>\n";
    if (r.refusal_aggregates > 0) {
      h += "<p id=\"refusal-aggregates\">" + Fill(t.aggregates, {Num(r.refusal_aggregates)}) +
           "</p>\n";
    }
  }
  h += "</section>\n";
}

void RenderGrants(const ReportText& t, const AuditReport& r, std::string& h) {
  h += "<section id=\"grants\"><h2>" + std::string(t.grants) + "</h2>\n";
  std::vector<const ReportGrant*> shown;
  for (const auto& [id, g] : r.grants) {
    if (r.case_filter && g.case_ref != *r.case_filter) continue;
    shown.push_back(&g);
  }
  std::sort(shown.begin(), shown.end(),
            [](const ReportGrant* a, const ReportGrant* b) { return a->index < b->index; });
  if (shown.empty()) {
    h += "<p class=\"none\">" +
         std::string(r.case_filter ? t.no_grant_for_case : t.no_grant_in_log) +
         "</p>\n</section>\n";
    return;
  }
  h += "<table><tr><th>" + std::string(t.grant) + "</th><th>" + t.case_ + "</th><th>" +
       t.recorded_by + "</th><th>" + t.basis + "</th><th>" + t.granted + "</th><th>" + t.revoked +
       "</th><th>" + t.detail + "</th></tr>\n";
  for (const ReportGrant* g : shown) {
    h +=
        "<tr><td>" + Code(HexEncode(g->grant_id)) + (g->emergency_override ? Badge(t) : "") +
        "</td><td>" + RefOrNone(g->case_ref) + "</td><td>" + TextOrNone(g->recorded_by) +
        "</td><td>" + TextOrNone(g->basis) + "</td><td>" +
        (g->granted ? Fill(t.entry_at, {Num(g->index), When(t, g->time_ms)}) : None(t.not_in_log)) +
        "</td><td>" +
        (g->revoked_index ? Fill(t.entry_at, {Num(*g->revoked_index), When(t, g->revoked_ms)})
                          : None("-")) +
        "</td><td>" + TextOrNone(g->detail) + "</td></tr>\n";
  }
  h += "</table>\n</section>\n";
}

struct QuerySection {
  std::string_view id, title, intro, empty;
  bool grouped = false;
};

void RenderQuery(const ReportText& t, const Result<QueryResult>& q, const QuerySection& s,
                 std::string& h) {
  h += "<section id=\"" + std::string(s.id) + "\"><h2>" + std::string(s.title) + "</h2>\n<p>" +
       std::string(s.intro) + "</p>\n";
  if (!q.ok()) {
    h += "<p class=\"warn\">" + std::string(t.not_available) +
         (t.query_refused != nullptr ? std::string(t.query_refused) : E(q.status().ToString())) +
         "</p>\n</section>\n";
    return;
  }
  if (q->rows.empty()) {
    h += "<p class=\"none\">" + std::string(s.empty) + "</p>\n</section>\n";
    return;
  }
  h += "<table><tr><th class=\"num\">" + std::string(t.entries) + "</th><th>" + t.time +
       "</th><th>" + t.event + "</th><th>" + t.actor + "</th><th>" + t.message + "</th><th>" +
       t.case_ + "</th><th>" + t.sender + "</th><th>" + t.recipients + "</th><th>" + t.grant +
       "</th><th>" + t.operator_ + "</th><th>" + t.why_listed + "</th></tr>\n";
  std::optional<std::string> group;
  for (const AuditRow& row : q->rows) {
    const AuditEntry& e = row.entry;
    if (s.grouped && group != row.group) {
      group = row.group;
      h += "<tr class=\"group\"><th colspan=\"11\">" + std::string(t.override_group) +
           Code(row.group) + "</th></tr>\n";
    }
    h += "<tr><td class=\"num\">" + Num(e.index) + "</td><td class=\"t\">" + When(t, e.time_ms) +
         "</td><td>" + E(EventText(t, e.event)) + "</td><td>" + TextOrNone(e.actor) + "</td><td>" +
         CodeOrNone(HexEncode(e.message_id)) + "</td><td>" + RefOrNone(row.case_ref) + "</td><td>" +
         TextOrNone(row.sender_id) + "</td><td>" + TextOrNone(RecipientList(e)) + "</td><td>" +
         CodeOrNone(HexEncode(row.consent_grant_id)) + "</td><td>" + TextOrNone(e.operator_ref) +
         "</td><td>" + TextOrNone(row.note.empty() ? e.detail : NoteText(t, row)) + "</td></tr>\n";
  }
  h += "</table>\n<p>" +
       Fill(t.rows_from, {Num(q->rows.size()), Num(q->entries_scanned), Num(q->checkpoint_size)}) +
       "</p>\n</section>\n";
}

// Who opened what: every OPENED entry with its operator and the verdict on their signature.
void RenderOpenings(const ReportText& t, const AuditReport& r, std::string& h) {
  h += "<section id=\"operators\"><h2>" + std::string(t.operators_title) + "</h2>\n<p>" +
       t.operators_intro + "</p>\n";
  if (r.operator_failures > 0) {
    h += "<p class=\"warn\" id=\"operator-failures\"><b>" +
         Fill(t.operators_failing, {Num(r.operator_failures)}) + "</b></p>\n";
  }
  if (r.openings.empty()) {
    h += "<p class=\"none\">" + std::string(t.operators_none) + "</p>\n</section>\n";
    return;
  }
  h += "<table id=\"openings\"><tr><th class=\"num\">" + std::string(t.entries) + "</th><th>" +
       t.time + "</th><th>" + t.actor + "</th><th>" + t.message + "</th><th>" + t.case_ +
       "</th><th>" + t.operator_ + "</th><th>" + t.operator_signature + "</th></tr>\n";
  for (const auto& [index, o] : r.openings) {
    const AuditEntry& e = o.entry;
    h += "<tr><td class=\"num\">" + Num(index) + "</td><td class=\"t\">" + When(t, e.time_ms) +
         "</td><td>" + TextOrNone(e.actor) + "</td><td>" + CodeOrNone(HexEncode(e.message_id)) +
         "</td><td>" + RefOrNone(e.case_ref) + "</td><td>" + TextOrNone(e.operator_ref) +
         "</td><td>" + VerdictBadge(t, o.check) + " " + E(WhyText(t, o.check)) + "</td></tr>\n";
  }
  h += "</table>\n</section>\n";
}

// "agency (operator NAME: verdict)" for each opening of a message.
std::string OpenedCell(const ReportText& t, const AuditReport& r, const ReportMessage& m) {
  std::vector<std::string> cells;
  for (uint64_t i : m.opened_entries) {
    auto o = r.openings.find(i);
    if (o == r.openings.end()) continue;
    const AuditEntry& e = o->second.entry;
    std::string cell = Fill(
        t.opened_as, {E(e.actor), E(e.operator_ref), E(VerdictText(t, o->second.check.verdict))});
    if (std::find(cells.begin(), cells.end(), cell) == cells.end()) cells.push_back(cell);
  }
  if (cells.empty()) return Joined(m.opened_by);
  std::string out;
  for (size_t i = 0; i < cells.size(); ++i) out += (i ? ", " : "") + cells[i];
  return out;
}

void RenderMessages(const ReportText& t, const AuditReport& r, const ReportCase& c,
                    std::string& h) {
  if (c.messages.empty()) return;
  h += "<table class=\"messages\"><tr><th>" + std::string(t.message) + "</th><th>" + t.kind +
       "</th><th>" + t.sender + "</th><th>" + t.recipients + "</th><th>" + t.accepted_from +
       "</th><th>" + t.relayed + "</th><th>" + t.delivered_to + "</th><th>" + t.acked_by +
       "</th><th>" + t.opened_by + "</th><th>" + t.consent_grant + "</th></tr>\n";
  for (const ReportMessage& m : c.messages) {
    std::vector<std::string> relayed;
    for (const auto& f : m.forwarded_to) relayed.push_back(Fill(t.forwarded_to, {f}));
    for (const auto& x : m.rerouted) relayed.push_back(Fill(t.rerouted, {x}));
    h += "<tr><td>" + Code(HexEncode(m.message_id)) +
         (m.accepted ? "<br>" + Fill(t.accepted_at, {When(t, m.accepted_ms)})
                     : "<br>" + None(t.no_accepted)) +
         "</td><td>" +
         (m.kind == schema::MessageKind::kUnspecified ? None("-") : E(schema::Name(m.kind))) +
         "</td><td>" + TextOrNone(m.sender_id) + "</td><td>" + Joined(m.recipients) + "</td><td>" +
         Joined(m.accepted_from) + "</td><td>" + Joined(relayed) + "</td><td>" +
         Joined(m.delivered_to) + "</td><td>" + Joined(m.acked_by) + "</td><td>" +
         OpenedCell(t, r, m) + "</td><td>" + GrantCell(t, r, m.consent_grant_id, false) +
         "</td></tr>\n";
    if (!m.refused.empty()) {
      h += "<tr><td></td><td colspan=\"9\"><b>" + std::string(t.refused) + "</b> " +
           Joined(m.refused) + "</td></tr>\n";
    }
  }
  h += "</table>\n";
}

void RenderCases(const ReportText& t, const AuditReport& r, std::string& h) {
  h += "<section id=\"timelines\"><h2>" + std::string(t.timelines) + "</h2>\n";
  if (r.cases.empty()) {
    h += "<p class=\"none\">" +
         Fill(t.no_case_entry,
              {r.case_filter ? Fill(t.case_n, {Ref(*r.case_filter)}) : std::string(t.any_case)}) +
         "</p>\n</section>\n";
    return;
  }
  h += "<p>" + std::string(t.timelines_intro) + "</p>\n<p>";
  for (size_t i = 0; i < r.cases.size(); ++i) {
    h += "<a href=\"#case-" + Num(i) + "\">" + E(r.cases[i].case_ref) + "</a>\n";
  }
  h += "</p>\n";
  for (size_t i = 0; i < r.cases.size(); ++i) {
    const ReportCase& c = r.cases[i];
    h += "<article class=\"case\" id=\"case-" + Num(i) + "\"><h3>" +
         Fill(t.case_n, {Ref(c.case_ref)}) + "</h3>\n";
    RenderMessages(t, r, c, h);
    h += "<table class=\"timeline\"><tr><th class=\"num\">" + std::string(t.entries) + "</th><th>" +
         t.time + "</th><th>" + t.event + "</th><th>" + t.actor + "</th><th>" + t.message +
         "</th><th>" + t.details + "</th></tr>\n";
    for (const AuditEntry& e : c.entries) {
      h += "<tr><td class=\"num\">" + Num(e.index) + "</td><td class=\"t\">" + When(t, e.time_ms) +
           "</td><td>" + E(EventText(t, e.event)) + "</td><td>" + TextOrNone(e.actor) +
           "</td><td>" + CodeOrNone(HexEncode(e.message_id)) + "</td><td>" + EntryDetails(t, r, e) +
           "</td></tr>\n";
    }
    h += "</table>\n</article>\n";
  }
  h += "</section>\n";
}

void RenderHead(const ReportText& t, const AuditReport& r, std::string& h) {
  const bool ok = r.verify.ok();
  h += "<!DOCTYPE html>\n<html lang=\"" + std::string(t.html_lang) +
       "\">\n<head>\n<meta charset=\"utf-8\">\n"
       // No script and nothing from outside, whatever a string from the log might say.
       "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
       "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">\n"
       "<meta name=\"referrer\" content=\"no-referrer\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
       Fill(t.title, {ok ? t.pass : t.fail, E(r.binding.origin)}) + "</title>\n<style>" + kStyle +
       "</style>\n</head>\n<body>\n<header>\n<h1>" + t.heading + Ref(r.binding.origin) +
       "</h1>\n<p class=\"meta\">" + t.meta_broker + Ref(r.binding.broker_id) + t.meta_store +
       CodeOrNone(r.store_label) + Fill(t.meta_generated, {When(t, r.generated_at_ms)}) +
       (r.case_filter ? " &middot; <b>" + Fill(t.meta_case_only, {Ref(*r.case_filter)}) + "</b>"
                      : std::string()) +
       "</p>\n<nav><a href=\"#verification\">" + t.nav_verification + "</a><a href=\"#log\">" +
       t.nav_log + "</a><a href=\"#counts\">" + t.nav_counts + "</a><a href=\"#grants\">" +
       t.nav_grants + "</a><a href=\"#operators\">" + t.operators_title +
       "</a><a href=\"#unconsented\">" + t.nav_unconsented + "</a><a href=\"#overrides\">" +
       t.nav_overrides + "</a><a href=\"#timelines\">" + t.nav_timelines +
       "</a></nav>\n</header>\n<main>\n";
}

}  // namespace

std::string RenderAuditReportHtml(const AuditReport& r, ReportLang lang) {
  const ReportText& t = ReportTextFor(lang);
  std::string h;
  h.reserve(size_t{64} << 10);
  RenderHead(t, r, h);
  RenderVerdict(t, r, h);
  if (!r.verify.ok())
    h += "<p class=\"warn\" id=\"unverified\">" + std::string(t.unverified) + "</p>\n";
  RenderLog(t, r, h);
  RenderCounts(t, r, h);
  RenderGrants(t, r, h);
  RenderOpenings(t, r, h);
  RenderQuery(t, r.unconsented,
              {"unconsented", t.unconsented_title, t.unconsented_intro, t.unconsented_empty, false},
              h);
  RenderQuery(t, r.overrides,
              {"overrides", t.overrides_title, t.overrides_intro, t.overrides_empty, true}, h);
  RenderCases(t, r, h);
  h += "</main>\n<footer>" + Fill(t.footer, {Num(r.entries), std::to_string(r.seconds)}) +
       "</footer>\n</body>\n</html>\n";
  return h;
}

}  // namespace refbus::audit
