#include "audit/report.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "keys/crypto.h"
#include "schema/codec.h"

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

void AddUnique(std::vector<std::string>& v, std::string s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
}

std::string RecipientList(const AuditEntry& e) {
  std::string s;
  for (const auto& r : e.recipients) s += (s.empty() ? "" : ", ") + r;
  return s;
}

// "basis X (article)" from a CONSENT_GRANTED detail ("basis X (article); expires ...").
std::string BasisOf(std::string_view detail) {
  constexpr std::string_view kPrefix = "basis ";
  if (detail.substr(0, kPrefix.size()) != kPrefix) return "";
  detail.remove_prefix(kPrefix.size());
  return std::string(detail.substr(0, detail.find(';')));
}

// Folds one entry of a case into the message it concerns.
void FoldMessage(ReportMessage& m, const AuditEntry& e) {
  switch (e.event) {
    case AuditEvent::kEnvelopeAccepted:
      // As QueryCase joins: the message's facts are those of its (latest) ACCEPTED entry.
      if (!m.accepted) m.accepted_ms = e.time_ms;
      m.accepted = true;
      m.sender_id = e.sender_id;
      m.kind = e.kind;
      m.consent_grant_id = e.consent_grant_id;
      for (const auto& r : e.recipients) AddUnique(m.recipients, r);
      AddUnique(m.accepted_from, e.actor);
      return;
    case AuditEvent::kEnvelopeForwarded:
      AddUnique(m.forwarded_to, e.actor);
      return;
    case AuditEvent::kEnvelopeRerouted:
      AddUnique(m.rerouted,
                e.actor + " -> " +
                    (e.recipients.empty() ? std::string("(already queued)") : RecipientList(e)));
      return;
    case AuditEvent::kEnvelopeDelivered:
      AddUnique(m.delivered_to, e.actor);
      return;
    case AuditEvent::kEnvelopeAcked:
      AddUnique(m.acked_by, e.actor);
      return;
    case AuditEvent::kEnvelopeOpened:
      AddUnique(m.opened_by,
                e.actor + (e.operator_ref.empty() ? "" : " (operator " + e.operator_ref + ")"));
      break;
    case AuditEvent::kEnvelopeRejected:
    case AuditEvent::kEnvelopeExpired:
    case AuditEvent::kEnvelopeQuarantined:
      m.refused.push_back(
          std::string(schema::Name(e.event)) +
          (e.reason == NackReason::kUnspecified ? "" : " " + std::string(schema::Name(e.reason))) +
          (e.detail.empty() ? "" : ": " + e.detail));
      break;
    default:
      break;
  }
  // Entries before (or without) an ACCEPTED one still say what they know.
  if (m.sender_id.empty()) m.sender_id = e.sender_id;
  if (m.kind == schema::MessageKind::kUnspecified) m.kind = e.kind;
  if (m.consent_grant_id.empty()) m.consent_grant_id = e.consent_grant_id;
}

// Collects cases as QueryCase selects rows: an entry belongs to the case it names, and to
// every case a message it concerns was named with before it (log order).
class CaseCollector {
 public:
  explicit CaseCollector(const std::optional<std::string>& only) : only_(only) {}

  void Add(const AuditEntry& e) {
    std::vector<std::string> cases;
    if (!e.case_ref.empty()) cases.push_back(e.case_ref);
    if (!e.message_id.empty()) {
      auto it = message_cases_.find(e.message_id);
      if (it != message_cases_.end()) {
        for (const auto& c : it->second) AddUnique(cases, c);
      }
      if (!e.case_ref.empty()) message_cases_[e.message_id].insert(e.case_ref);
    }
    for (const auto& c : cases) {
      if (only_ && c != *only_) continue;
      AddTo(c, e);
    }
  }

  std::vector<ReportCase> Take() { return std::move(cases_); }

 private:
  void AddTo(const std::string& case_ref, const AuditEntry& e) {
    auto [it, added] = case_index_.emplace(case_ref, cases_.size());
    if (added) {
      cases_.emplace_back();
      cases_.back().case_ref = case_ref;
    }
    ReportCase& c = cases_[it->second];
    c.entries.push_back(e);
    if (!e.consent_grant_id.empty() &&
        std::find(c.grants.begin(), c.grants.end(), e.consent_grant_id) == c.grants.end()) {
      c.grants.push_back(e.consent_grant_id);
    }
    if (e.message_id.empty()) return;
    auto [mit, madded] = message_index_[case_ref].emplace(e.message_id, c.messages.size());
    if (madded) {
      c.messages.emplace_back();
      c.messages.back().message_id = e.message_id;
      c.messages.back().first_index = e.index;
    }
    FoldMessage(c.messages[mit->second], e);
  }

  const std::optional<std::string>& only_;
  std::map<Bytes, std::set<std::string>> message_cases_;
  std::map<std::string, size_t> case_index_;
  std::map<std::string, std::map<Bytes, size_t>> message_index_;
  std::vector<ReportCase> cases_;
};

void FilterRows(Result<QueryResult>& r, const std::optional<std::string>& case_ref) {
  if (!r.ok() || !case_ref) return;
  auto& rows = r->rows;
  rows.erase(std::remove_if(rows.begin(), rows.end(),
                            [&](const AuditRow& row) { return row.case_ref != *case_ref; }),
             rows.end());
}

// ---- Rendering -------------------------------------------------------------------------

std::string GrantCell(const AuditReport& r, ByteView grant_id, bool emergency_entry) {
  if (grant_id.empty()) return "<span class=\"none\">no grant</span>";
  std::string out = Code(HexEncode(grant_id));
  auto it = r.grants.find(Bytes(grant_id.begin(), grant_id.end()));
  if (it == r.grants.end() || !it->second.granted) {
    out += " <span class=\"none\">(not granted in this log)</span>";
    if (emergency_entry) out += " <span class=\"badge emergency\">EMERGENCY OVERRIDE</span>";
    return out;
  }
  const ReportGrant& g = it->second;
  if (!g.basis.empty()) out += "<br>basis " + E(g.basis);
  if (g.emergency_override || emergency_entry) {
    out += " <span class=\"badge emergency\">EMERGENCY OVERRIDE</span>";
  }
  if (g.revoked_index) {
    out += " <span class=\"badge revoked\">revoked at entry " + Num(*g.revoked_index) + "</span>";
  }
  return out;
}

// What an entry says beyond its index, time, event and actor.
std::string EntryDetails(const AuditReport& r, const AuditEntry& e) {
  std::vector<std::string> parts;
  if (!e.sender_id.empty()) parts.push_back("from " + E(e.sender_id));
  if (!e.recipients.empty()) parts.push_back("to " + E(RecipientList(e)));
  if (e.kind != schema::MessageKind::kUnspecified) {
    parts.push_back("kind " + E(schema::Name(e.kind)));
  }
  if (e.purpose != schema::Purpose::kUnspecified) {
    parts.push_back("purpose " + E(schema::Name(e.purpose)));
  }
  if (e.reason != NackReason::kUnspecified) {
    parts.push_back("<b>reason " + E(schema::Name(e.reason)) + "</b>");
  }
  if (!e.operator_ref.empty()) parts.push_back("operator " + E(e.operator_ref));
  if (!e.consent_grant_id.empty()) {
    // The basis is in the message and grant tables; here the id and the override flag.
    auto g = r.grants.find(e.consent_grant_id);
    const bool emergency =
        e.emergency_override || (g != r.grants.end() && g->second.emergency_override);
    parts.push_back(
        "grant " + Code(HexEncode(e.consent_grant_id)) +
        (emergency ? " <span class=\"badge emergency\">EMERGENCY OVERRIDE</span>" : ""));
  } else if (e.emergency_override) {
    parts.push_back("<span class=\"badge emergency\">EMERGENCY OVERRIDE</span>");
  }
  if (!e.detail.empty()) parts.push_back("<q>" + E(e.detail) + "</q>");
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "; " : "") + parts[i];
  return out.empty() ? "<span class=\"none\">-</span>" : out;
}

void RenderVerdict(const AuditReport& r, std::string& h) {
  const VerifyReport& v = r.verify;
  h += "<section id=\"verification\"><h2>Verification</h2>\n";
  h += std::string("<div class=\"verdict ") + (v.ok() ? "pass" : "fail") +
       "\" id=\"verdict\"><p class=\"word\">" + (v.ok() ? "PASS" : "FAIL") + "</p>\n";
  h += "<p>" + E(v.Headline()) + "</p>\n";
  if (!v.ok()) {
    if (v.first_bad_entry) {
      h +=
          "<p id=\"first-bad-entry\"><b>First bad entry: " + Num(*v.first_bad_entry) + "</b></p>\n";
    }
    if (v.first_bad_checkpoint_seq) {
      std::string size;
      for (const auto& p : v.problems) {
        if (p.where == VerifyProblem::Where::kCheckpoint && p.seq == *v.first_bad_checkpoint_seq) {
          size = " (size " + Num(p.index) + ")";
          break;
        }
      }
      h += "<p id=\"first-bad-checkpoint\"><b>First bad checkpoint: #" +
           Num(*v.first_bad_checkpoint_seq) + size + "</b></p>\n";
    }
  }
  h += "</div>\n<p>The same checks as <code>refbus-audit verify</code>, offline: every stored "
       "entry against the Merkle tree, every stored checkpoint's signature with the broker's "
       "keys from the verified directory, every cosignature by a directory witness, and the "
       "consistency of the checkpoints with each other and with the entries.</p>\n";
  if (!v.problems.empty()) {
    h += "<h3>Problems (" + Num(v.problems.size()) +
         ")</h3>\n<table id=\"problems\"><tr>"
         "<th>Where</th><th>Problem</th></tr>\n";
    size_t shown = 0;
    for (const auto& p : v.problems) {
      if (++shown > kMaxProblemsShown) {
        h += "<tr><td colspan=\"2\">... and " + Num(v.problems.size() - kMaxProblemsShown) +
             " more (refbus-audit verify --json lists them all)</td></tr>\n";
        break;
      }
      const bool entry = p.where == VerifyProblem::Where::kEntry;
      h += "<tr><td>" +
           (entry ? "entry " + Num(p.index)
                  : "checkpoint #" + Num(p.seq) + " (size " + Num(p.index) + ")") +
           "</td><td>" + E(p.message) + "</td></tr>\n";
    }
    h += "</table>\n";
  }
  h += "</section>\n";
}

void RenderLog(const AuditReport& r, std::string& h) {
  const VerifyReport& v = r.verify;
  h += "<section id=\"log\"><h2>The log</h2>\n<table class=\"kv\">\n";
  auto row = [&](std::string_view k, const std::string& value) {
    h += "<tr><th>" + std::string(k) + "</th><td>" + value + "</td></tr>\n";
  };
  row("Broker", Ref(r.binding.broker_id));
  row("Origin", Ref(r.binding.origin));
  row("Signing key at the last fetch", CodeOrNone(r.key_fingerprint));
  row("Entries in the store", Num(r.entries));
  row("Checkpoints in the store",
      Num(v.checkpoints) + " (" + Num(v.signatures_ok) + " with a valid signature)");
  row("Verified size",
      Num(v.verified_size) +
          (v.verified_size > 0 ? ", root " + Code(HexEncode(v.verified_root)) : ""));
  if (r.latest) {
    std::string latest = "size " + Num(r.latest->size) + ", checkpoint #" + Num(r.latest->seq) +
                         ", received " + E(TimeMs(r.latest->received_at_ms));
    if (v.verified_size == r.latest->size && v.verified_size > 0) {
      latest += ", root " + Code(HexEncode(v.verified_root));
    } else {
      latest += " <b>(not verified: see above)</b>";
    }
    row("Latest checkpoint", latest);
    row("Its cosigners", r.latest_cosigners.empty()
                             ? std::string("<span class=\"none\">none</span>")
                             : Joined(r.latest_cosigners));
  } else {
    row("Latest checkpoint", "<span class=\"none\">none stored</span>");
  }
  row("Witnessed", v.witnessed ? "up to size " + Num(*v.witnessed_size)
                               : "<b>" + E(kUnwitnessedWarning) + "</b>");
  if (v.min_cosignatures > 0) row("Cosignatures required", Num(v.min_cosignatures));
  if (v.unknown_signatures > 0) {
    row("Signatures by unknown keys", Num(v.unknown_signatures) + " (ignored)");
  }
  row("Time range", r.first_ms ? E(TimeMs(*r.first_ms)) + " to " + E(TimeMs(*r.last_ms))
                               : std::string("<span class=\"none\">no entries</span>"));
  if (!r.undecodable.empty()) {
    std::vector<std::string> idx;
    for (uint64_t i : r.undecodable) {
      if (idx.size() == 50) {
        idx.push_back("...");
        break;
      }
      idx.push_back(Num(i));
    }
    row("Entries that do not decode", Num(r.undecodable.size()) + ": " + Joined(idx));
  }
  h += "</table>\n";
  if (!v.cosigned.empty()) {
    h += "<h3>Cosigned checkpoints</h3>\n<table id=\"cosigned\"><tr><th class=\"num\">Size</th>"
         "<th>Arrivals</th><th>Witnesses with a valid cosignature</th></tr>\n";
    const size_t from = v.cosigned.size() > 20 ? v.cosigned.size() - 20 : 0;
    if (from > 0) {
      h += "<tr><td colspan=\"3\">" + Num(from) +
           " smaller checkpoints not shown (refbus-audit verify --json lists them)</td></tr>\n";
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
  h += "</section>\n";
}

void RenderCounts(const AuditReport& r, std::string& h) {
  h += "<section id=\"counts\"><h2>Counts (whole log)</h2>\n<h3>By event</h3>\n"
       "<table id=\"event-counts\"><tr><th>Event</th><th class=\"num\">Entries</th></tr>\n";
  uint64_t total = 0;
  for (const auto& [event, n] : r.event_counts) {
    h += "<tr><td>" + E(schema::Name(event)) + "</td><td class=\"num\">" + Num(n) + "</td></tr>\n";
    total += n;
  }
  h += "<tr><th>total</th><th class=\"num\">" + Num(total) + "</th></tr>\n</table>\n";
  h += "<h3>By refusal reason</h3>\n";
  if (r.reason_counts.empty()) {
    h += "<p class=\"none\" id=\"reason-counts\">No entry carries a refusal reason.</p>\n";
  } else {
    h += "<table id=\"reason-counts\"><tr><th>Reason</th><th class=\"num\">Entries</th>"
         "<th class=\"num\">Refusals</th><th>In events</th></tr>\n";
    for (const auto& [reason, events] : r.reason_counts) {
      uint64_t n = 0;
      std::vector<std::string> in;
      for (const auto& [event, k] : events) {
        n += k;
        in.push_back(std::string(schema::Name(event)) + " " + Num(k));
      }
      auto refused = r.refusal_counts.find(reason);
      h += "<tr><td>" + E(schema::Name(reason)) + "</td><td class=\"num\">" + Num(n) +
           "</td><td class=\"num\">" +
           Num(refused == r.refusal_counts.end() ? 0 : refused->second) + "</td><td>" + Joined(in) +
           "</td></tr>\n";
    }
    h += "</table>\n";
    if (r.refusal_aggregates > 0) {
      h += "<p id=\"refusal-aggregates\">" + Num(r.refusal_aggregates) +
           " entries are aggregates: each stands for the refusals of one party and reason "
           "beyond the broker's per-minute limit, with their count and first and last "
           "times.</p>\n";
    }
  }
  h += "</section>\n";
}

void RenderGrants(const AuditReport& r, std::string& h) {
  h += "<section id=\"grants\"><h2>Consent grants</h2>\n";
  std::vector<const ReportGrant*> shown;
  for (const auto& [id, g] : r.grants) {
    if (r.case_filter && g.case_ref != *r.case_filter) continue;
    shown.push_back(&g);
  }
  std::sort(shown.begin(), shown.end(),
            [](const ReportGrant* a, const ReportGrant* b) { return a->index < b->index; });
  if (shown.empty()) {
    h += "<p class=\"none\">No consent grant in this log" +
         std::string(r.case_filter ? " for this case" : "") + ".</p>\n</section>\n";
    return;
  }
  h += "<table><tr><th>Grant</th><th>Case</th><th>Recorded by</th><th>Basis</th>"
       "<th>Granted</th><th>Revoked</th><th>Detail</th></tr>\n";
  for (const ReportGrant* g : shown) {
    h += "<tr><td>" + Code(HexEncode(g->grant_id)) +
         (g->emergency_override ? " <span class=\"badge emergency\">EMERGENCY OVERRIDE</span>"
                                : "") +
         "</td><td>" + RefOrNone(g->case_ref) + "</td><td>" + TextOrNone(g->recorded_by) +
         "</td><td>" + TextOrNone(g->basis) + "</td><td>" +
         (g->granted ? "entry " + Num(g->index) + ", " + E(TimeMs(g->time_ms))
                     : std::string("<span class=\"none\">not in this log</span>")) +
         "</td><td>" +
         (g->revoked_index ? "entry " + Num(*g->revoked_index) + ", " + E(TimeMs(g->revoked_ms))
                           : std::string("<span class=\"none\">-</span>")) +
         "</td><td>" + TextOrNone(g->detail) + "</td></tr>\n";
  }
  h += "</table>\n</section>\n";
}

void RenderQuery(const Result<QueryResult>& q, std::string_view id, std::string_view title,
                 std::string_view intro, std::string_view empty, bool grouped, std::string& h) {
  h += "<section id=\"" + std::string(id) + "\"><h2>" + std::string(title) + "</h2>\n<p>" +
       std::string(intro) + "</p>\n";
  if (!q.ok()) {
    h += "<p class=\"warn\">Not available: " + E(q.status().ToString()) + "</p>\n</section>\n";
    return;
  }
  if (q->rows.empty()) {
    h += "<p class=\"none\">" + std::string(empty) + "</p>\n</section>\n";
    return;
  }
  h += "<table><tr><th class=\"num\">Entry</th><th>Time</th><th>Event</th><th>Actor</th>"
       "<th>Message</th><th>Case</th><th>Sender</th><th>Recipients</th><th>Grant</th>"
       "<th>Operator</th><th>Why listed</th></tr>\n";
  std::optional<std::string> group;
  for (const AuditRow& row : q->rows) {
    const AuditEntry& e = row.entry;
    if (grouped && group != row.group) {
      group = row.group;
      h += "<tr class=\"group\"><th colspan=\"11\">Emergency override grant " + Code(row.group) +
           "</th></tr>\n";
    }
    h += "<tr><td class=\"num\">" + Num(e.index) + "</td><td class=\"t\">" + E(TimeMs(e.time_ms)) +
         "</td><td>" + E(schema::Name(e.event)) + "</td><td>" + TextOrNone(e.actor) + "</td><td>" +
         CodeOrNone(HexEncode(e.message_id)) + "</td><td>" + RefOrNone(row.case_ref) + "</td><td>" +
         TextOrNone(row.sender_id) + "</td><td>" + TextOrNone(RecipientList(e)) + "</td><td>" +
         CodeOrNone(HexEncode(row.consent_grant_id)) + "</td><td>" + TextOrNone(e.operator_ref) +
         "</td><td>" + TextOrNone(row.note.empty() ? e.detail : row.note) + "</td></tr>\n";
  }
  h += "</table>\n<p>" + Num(q->rows.size()) + " rows, from the " + Num(q->entries_scanned) +
       " entries of the latest stored checkpoint (size " + Num(q->checkpoint_size) +
       ").</p>\n</section>\n";
}

void RenderCases(const AuditReport& r, std::string& h) {
  h += "<section id=\"timelines\"><h2>Timelines by case</h2>\n";
  if (r.cases.empty()) {
    h += "<p class=\"none\">No entry of " +
         (r.case_filter ? "case " + Ref(*r.case_filter) : std::string("any case")) +
         " in this log.</p>\n</section>\n";
    return;
  }
  h += "<p>Per case pseudonym: each message (who sent it, to whom, which brokers relayed it, "
       "its deliveries, acks and openings, and the consent grant it was sent under), then "
       "every entry of the case in log order.</p>\n<p>";
  for (size_t i = 0; i < r.cases.size(); ++i) {
    h += "<a href=\"#case-" + Num(i) + "\">" + E(r.cases[i].case_ref) + "</a>\n";
  }
  h += "</p>\n";
  for (size_t i = 0; i < r.cases.size(); ++i) {
    const ReportCase& c = r.cases[i];
    h += "<article class=\"case\" id=\"case-" + Num(i) + "\"><h3>Case " + Ref(c.case_ref) +
         "</h3>\n";
    if (!c.messages.empty()) {
      h += "<table class=\"messages\"><tr><th>Message</th><th>Kind</th><th>Sender</th>"
           "<th>Recipients</th><th>Accepted from</th><th>Relayed</th><th>Delivered to</th>"
           "<th>Acked by</th><th>Opened by</th><th>Consent grant</th></tr>\n";
      for (const ReportMessage& m : c.messages) {
        std::vector<std::string> relayed;
        for (const auto& f : m.forwarded_to) relayed.push_back("forwarded to " + f);
        for (const auto& x : m.rerouted) relayed.push_back("rerouted " + x);
        std::string opened = Joined(m.opened_by);
        h += "<tr><td>" + Code(HexEncode(m.message_id)) +
             (m.accepted ? "<br>accepted " + E(TimeMs(m.accepted_ms))
                         : std::string("<br><span class=\"none\">no ACCEPTED entry</span>")) +
             "</td><td>" +
             (m.kind == schema::MessageKind::kUnspecified
                  ? std::string("<span class=\"none\">-</span>")
                  : E(schema::Name(m.kind))) +
             "</td><td>" + TextOrNone(m.sender_id) + "</td><td>" + Joined(m.recipients) +
             "</td><td>" + Joined(m.accepted_from) + "</td><td>" + Joined(relayed) + "</td><td>" +
             Joined(m.delivered_to) + "</td><td>" + Joined(m.acked_by) + "</td><td>" + opened +
             "</td><td>" + GrantCell(r, m.consent_grant_id, false) + "</td></tr>\n";
        if (!m.refused.empty()) {
          h += "<tr><td></td><td colspan=\"9\"><b>Refused, expired or quarantined:</b> " +
               Joined(m.refused) + "</td></tr>\n";
        }
      }
      h += "</table>\n";
    }
    h += "<table class=\"timeline\"><tr><th class=\"num\">Entry</th><th>Time</th>"
         "<th>Event</th><th>Actor</th><th>Message</th><th>Details</th></tr>\n";
    for (const AuditEntry& e : c.entries) {
      h += "<tr><td class=\"num\">" + Num(e.index) + "</td><td class=\"t\">" +
           E(TimeMs(e.time_ms)) + "</td><td>" + E(schema::Name(e.event)) + "</td><td>" +
           TextOrNone(e.actor) + "</td><td>" + CodeOrNone(HexEncode(e.message_id)) + "</td><td>" +
           EntryDetails(r, e) + "</td></tr>\n";
    }
    h += "</table>\n</article>\n";
  }
  h += "</section>\n";
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  static constexpr char kHexUpper[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    switch (c) {
      case '&':
        out += "&amp;";
        continue;
      case '<':
        out += "&lt;";
        continue;
      case '>':
        out += "&gt;";
        continue;
      case '"':
        out += "&quot;";
        continue;
      case '\'':
        out += "&#39;";
        continue;
      default:
        break;
    }
    if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
      continue;
    }
    // Bidi controls in UTF-8: U+061C (D8 9C), U+200E/F (E2 80 8E/8F), U+202A..E
    // (E2 80 AA..AE), U+2066..9 (E2 81 A6..A9).
    uint32_t bidi = 0;
    size_t len = 0;
    if (c == 0xd8 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x9c) {
      bidi = 0x061c;
      len = 2;
    } else if (c == 0xe2 && i + 2 < text.size()) {
      const auto b1 = static_cast<unsigned char>(text[i + 1]);
      const auto b2 = static_cast<unsigned char>(text[i + 2]);
      if (b1 == 0x80 && (b2 == 0x8e || b2 == 0x8f || (b2 >= 0xaa && b2 <= 0xae))) {
        bidi = 0x2000u + (b2 - 0x80u);
        len = 3;
      } else if (b1 == 0x81 && b2 >= 0xa6 && b2 <= 0xa9) {
        bidi = 0x2040u + (b2 - 0x80u);
        len = 3;
      }
    }
    if (len > 0) {
      out += "[U+";
      for (int shift = 12; shift >= 0; shift -= 4) {
        out += kHexUpper[(bidi >> shift) & 0xf];
      }
      out += "]";
      i += len - 1;
      continue;
    }
    out += static_cast<char>(c);
  }
  return out;
}

Result<AuditReport> BuildAuditReport(const LocalAuditStore& store, const LogKeys& keys,
                                     const ReportOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  AuditReport r;
  r.store_label = options.store_label;
  r.generated_at_ms = options.generated_at_ms;
  r.case_filter = options.case_ref;
  REFBUS_ASSIGN_OR_RETURN(auto binding, store.Binding());
  if (!binding) return FailedPrecondition("the audit store is empty: run refbus-audit fetch");
  r.binding = *binding;
  if (!r.binding.broker_signing_key.empty()) {
    r.key_fingerprint =
        keys::Fingerprint(keys::KeyId(keys::KeyUse::kSigning, r.binding.broker_signing_key));
  }

  REFBUS_ASSIGN_OR_RETURN(r.verify, VerifyLocalLog(store, keys, options.verify));

  REFBUS_ASSIGN_OR_RETURN(auto checkpoints, store.Checkpoints());
  for (auto& c : checkpoints) {
    if (!r.latest || c.size >= r.latest->size) r.latest = std::move(c);
  }
  if (r.latest) {
    for (const auto& c : r.verify.cosigned) {
      if (c.size == r.latest->size) r.latest_cosigners = c.witnesses;
    }
  }

  CaseCollector cases(options.case_ref);
  REFBUS_RETURN_IF_ERROR(store.ForEachEntry([&](uint64_t key, ByteView bytes) -> Status {
    ++r.entries;
    auto decoded = schema::DecodeAuditEntry(bytes);
    if (!decoded.ok()) {
      r.undecodable.push_back(key);
      return Status::Ok();
    }
    const AuditEntry& e = *decoded;
    if (!r.first_ms || e.time_ms < *r.first_ms) r.first_ms = e.time_ms;
    if (!r.last_ms || e.time_ms > *r.last_ms) r.last_ms = e.time_ms;
    ++r.event_counts[e.event];
    if (e.reason != NackReason::kUnspecified) ++r.reason_counts[e.reason][e.event];
    if (e.event == AuditEvent::kEnvelopeRejected) {
      r.refusal_counts[e.reason] += e.Refusals();
      if (e.refusal_count != 0) ++r.refusal_aggregates;
    }
    if (e.event == AuditEvent::kConsentGranted || e.event == AuditEvent::kConsentRevoked) {
      ReportGrant& g = r.grants[e.consent_grant_id];
      g.grant_id = e.consent_grant_id;
      if (g.case_ref.empty()) g.case_ref = e.case_ref;
      if (g.recorded_by.empty()) g.recorded_by = e.sender_id;
      if (e.event == AuditEvent::kConsentGranted && !g.granted) {
        g.granted = true;
        g.index = e.index;
        g.time_ms = e.time_ms;
        g.basis = BasisOf(e.detail);
        g.detail = e.detail;
        g.emergency_override = e.emergency_override;
      } else if (e.event == AuditEvent::kConsentRevoked && !g.revoked_index) {
        g.revoked_index = e.index;
        g.revoked_ms = e.time_ms;
      }
    }
    cases.Add(e);
    return Status::Ok();
  }));
  r.cases = cases.Take();

  r.unconsented = QueryUnconsented(store);
  FilterRows(r.unconsented, options.case_ref);
  r.overrides = QueryOverrides(store);
  FilterRows(r.overrides, options.case_ref);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

std::string RenderAuditReportHtml(const AuditReport& r) {
  const VerifyReport& v = r.verify;
  std::string h;
  h.reserve(size_t{64} << 10);
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       // No script and nothing from outside, whatever a string from the log might say.
       "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
       "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">\n"
       "<meta name=\"referrer\" content=\"no-referrer\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
       std::string(v.ok() ? "PASS" : "FAIL") + " - audit report of " + E(r.binding.origin) +
       "</title>\n<style>" + kStyle +
       "</style>\n</head>\n<body>\n<header>\n<h1>Audit report: " + Ref(r.binding.origin) +
       "</h1>\n<p class=\"meta\">Broker " + Ref(r.binding.broker_id) +
       " &middot; local audit store " + CodeOrNone(r.store_label) + " &middot; generated " +
       E(FormatUtc(r.generated_at_ms)) + " by refbus-audit report, offline" +
       (r.case_filter ? " &middot; <b>case " + Ref(*r.case_filter) + " only</b>" : std::string()) +
       "</p>\n<nav><a href=\"#verification\">Verification</a><a href=\"#log\">Log</a>"
       "<a href=\"#counts\">Counts</a><a href=\"#grants\">Consent grants</a>"
       "<a href=\"#unconsented\">Unconsented accesses</a><a href=\"#overrides\">Emergency "
       "overrides</a><a href=\"#timelines\">Timelines</a></nav>\n</header>\n<main>\n";
  RenderVerdict(r, h);
  if (!v.ok()) {
    h += "<p class=\"warn\" id=\"unverified\"><b>The log did not verify.</b> What follows is "
         "what the local store holds, read as it is: it is not what the broker signed where "
         "the problems above say so.</p>\n";
  }
  RenderLog(r, h);
  RenderCounts(r, h);
  RenderGrants(r, h);
  RenderQuery(r.unconsented, "unconsented", "Accesses without matching consent",
              "Every opening (OPENED entry) that names no consent grant, a grant not granted in "
              "this log before the access, or one revoked before it (as <code>refbus-audit "
              "unconsented</code>).",
              "None: every opening in this log was under a consent grant in force.", false, h);
  RenderQuery(r.overrides, "overrides", "Emergency overrides",
              "Every consent grant with an emergency override, followed by what was shared "
              "under it (as <code>refbus-audit overrides</code>).",
              "None: no emergency override was granted in this log.", true, h);
  RenderCases(r, h);
  h += "</main>\n<footer>This page holds only what the audit log holds: ids, case pseudonyms, "
       "operator refs, times, events and the broker's details. No message content is ever in "
       "the log. " +
       Num(r.entries) + " entries read in " + std::to_string(r.seconds) +
       " s.</footer>\n</body>\n</html>\n";
  return h;
}

}  // namespace refbus::audit
