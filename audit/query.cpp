#include "audit/query.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "audit/scan.h"
#include "core/table.h"
#include "keys/crypto.h"
#include "schema/codec.h"

namespace refbus::audit {
namespace {

using json = nlohmann::json;
using schema::AuditEntry;
using schema::AuditEvent;

bool HasRecipient(const AuditEntry& e, std::string_view id) {
  return std::find(e.recipients.begin(), e.recipients.end(), id) != e.recipients.end();
}

// What the ACCEPTED entry of a message said, for rows whose entry carries only the id.
struct MessageInfo {
  std::string case_ref;
  std::string sender_id;
  schema::MessageKind kind = schema::MessageKind::kUnspecified;
  Bytes consent_grant_id;
};

MessageInfo InfoOf(const AuditEntry& e) {
  return {e.case_ref, e.sender_id, e.kind, e.consent_grant_id};
}

AuditRow RowOf(const AuditEntry& e) {
  AuditRow r;
  r.entry = e;
  r.case_ref = e.case_ref;
  r.sender_id = e.sender_id;
  r.kind = e.kind;
  r.consent_grant_id = e.consent_grant_id;
  return r;
}

void Join(AuditRow& r, const std::map<Bytes, MessageInfo>& info) {
  auto it = info.find(r.entry.message_id);
  if (it == info.end()) return;
  if (r.case_ref.empty()) r.case_ref = it->second.case_ref;
  if (r.sender_id.empty()) r.sender_id = it->second.sender_id;
  if (r.kind == schema::MessageKind::kUnspecified) r.kind = it->second.kind;
  if (r.consent_grant_id.empty()) r.consent_grant_id = it->second.consent_grant_id;
}

// Scans the decoded entries for a query, after checking that they are the log of the
// latest stored checkpoint.
Status ScanForQuery(const LocalAuditStore& store, QueryResult& result,
                    const std::function<void(const AuditEntry&)>& visit) {
  Scan scan;
  Status bad;
  REFBUS_RETURN_IF_ERROR(ScanEntries(store, scan, [&](uint64_t index, ByteView bytes) {
    if (!bad.ok()) return;
    auto e = schema::DecodeAuditEntry(bytes);
    if (!e.ok() || e->index != index) {
      bad = FailedPrecondition("local audit entry " + std::to_string(index) +
                               " is damaged or out of place: run refbus-audit verify");
      return;
    }
    visit(*e);
  }));
  if (scan.gap) return FailedPrecondition(GapMessage(scan) + ": run refbus-audit verify");
  REFBUS_RETURN_IF_ERROR(bad);
  REFBUS_ASSIGN_OR_RETURN(auto checkpoints, store.Checkpoints());
  const LocalCheckpoint* latest = nullptr;
  for (const auto& c : checkpoints) {
    if (latest == nullptr || c.size >= latest->size) latest = &c;
  }
  if (latest == nullptr) return FailedPrecondition("no checkpoint in the store: run fetch");
  auto cp = ParseUnverified(latest->note);
  auto root = keys::RootAt(scan.tree, std::min(latest->size, scan.tree.Size()));
  if (!cp || cp->size != scan.tree.Size() || !root.ok() || *root != cp->root) {
    return FailedPrecondition("the local entries are not the log of the latest stored " +
                              Describe(*latest, latest->size) + ": run refbus-audit verify");
  }
  result.entries_scanned = scan.tree.Size();
  result.checkpoint_size = cp->size;
  return Status::Ok();
}

std::string ShortId(ByteView id) {
  std::string h = HexEncode(id);
  return h.empty() ? "-" : h.substr(0, 8);
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

// The operator verdict of a checked OPENED row, or "" (not an access, or not checked).
std::string OperatorVerdictText(const AuditRow& r) {
  return r.operator_check ? std::string(keys::VerdictName(r.operator_check->verdict)) : "";
}

std::string Recipients(const AuditEntry& e, std::string_view sep) {
  std::string s;
  for (const auto& r : e.recipients) {
    if (!s.empty()) s += sep;
    s += r;
  }
  return s;
}

}  // namespace

// ---- Queries ---------------------------------------------------------------------------

Result<QueryResult> QueryCase(const LocalAuditStore& store, std::string_view case_ref) {
  QueryResult result;
  std::set<Bytes> messages;
  std::map<Bytes, MessageInfo> info;
  REFBUS_RETURN_IF_ERROR(ScanForQuery(store, result, [&](const AuditEntry& e) {
    if (e.case_ref == case_ref) {
      if (!e.message_id.empty()) {
        messages.insert(e.message_id);
        if (e.event == AuditEvent::kEnvelopeAccepted) info[e.message_id] = InfoOf(e);
      }
      result.rows.push_back(RowOf(e));
    } else if (!e.message_id.empty() && messages.count(e.message_id) != 0) {
      result.rows.push_back(RowOf(e));
    }
  }));
  for (auto& r : result.rows) Join(r, info);
  return result;
}

Result<QueryResult> QueryAccesses(const LocalAuditStore& store, std::string_view agency,
                                  UnixMillis from_ms, UnixMillis to_ms) {
  QueryResult result;
  std::map<Bytes, MessageInfo> info;
  REFBUS_RETURN_IF_ERROR(ScanForQuery(store, result, [&](const AuditEntry& e) {
    if (e.event == AuditEvent::kEnvelopeAccepted && HasRecipient(e, agency)) {
      info[e.message_id] = InfoOf(e);
    }
    if (e.time_ms < from_ms || e.time_ms >= to_ms) return;
    bool access = (e.event == AuditEvent::kEnvelopeDelivered && HasRecipient(e, agency)) ||
                  (e.event == AuditEvent::kEnvelopeAcked && e.actor == agency) ||
                  (e.event == AuditEvent::kEnvelopeOpened && e.actor == agency);
    if (!access) return;
    AuditRow r = RowOf(e);
    if (e.event == AuditEvent::kEnvelopeOpened) {
      r.note = "opened by operator " + e.operator_ref;
      r.note_code = AuditRow::Note::kOpenedBy;
      r.note_args = {e.operator_ref};
    }
    result.rows.push_back(std::move(r));
  }));
  for (auto& r : result.rows) Join(r, info);
  return result;
}

Result<QueryResult> QueryUnconsented(const LocalAuditStore& store) {
  QueryResult result;
  struct Grant {
    std::optional<AuditEntry> granted;
    std::optional<AuditEntry> revoked;
  };
  std::map<Bytes, Grant> grants;
  std::vector<AuditEntry> opened;
  REFBUS_RETURN_IF_ERROR(ScanForQuery(store, result, [&](const AuditEntry& e) {
    switch (e.event) {
      case AuditEvent::kConsentGranted:
        if (!grants[e.consent_grant_id].granted) grants[e.consent_grant_id].granted = e;
        break;
      case AuditEvent::kConsentRevoked:
        if (!grants[e.consent_grant_id].revoked) grants[e.consent_grant_id].revoked = e;
        break;
      case AuditEvent::kEnvelopeOpened:
        opened.push_back(e);
        break;
      default:
        break;
    }
  }));
  for (const AuditEntry& o : opened) {
    std::string why;
    AuditRow::Note code = AuditRow::Note::kNone;
    std::vector<std::string> args;
    auto it = grants.find(o.consent_grant_id);
    const std::string grant = HexEncode(o.consent_grant_id);
    if (o.consent_grant_id.empty()) {
      why = "names no consent grant";
      code = AuditRow::Note::kNoGrant;
    } else if (it == grants.end() || !it->second.granted) {
      why = "consent grant " + grant + " was never granted in this log";
      code = AuditRow::Note::kNeverGranted;
      args = {grant};
    } else if (it->second.granted->index > o.index) {
      const std::string at = std::to_string(it->second.granted->index);
      why = "consent grant " + grant + " was granted only after this access (entry " + at + ")";
      code = AuditRow::Note::kGrantedAfter;
      args = {grant, at};
    } else if (it->second.revoked && it->second.revoked->index < o.index) {
      const std::string at = std::to_string(it->second.revoked->index);
      const std::string when = FormatUtc(it->second.revoked->time_ms);
      why = "consent grant " + grant + " was revoked before this access (entry " + at + ", " +
            when + ")";
      code = AuditRow::Note::kRevokedBefore;
      args = {grant, at, when};
    } else {
      continue;
    }
    AuditRow r = RowOf(o);
    r.note = std::move(why);
    r.note_code = code;
    r.note_args = std::move(args);
    result.rows.push_back(std::move(r));
  }
  return result;
}

Result<QueryResult> QueryOverrides(const LocalAuditStore& store) {
  QueryResult result;
  std::map<Bytes, uint64_t> emergency;  // grant id -> its CONSENT_GRANTED index
  std::map<Bytes, Bytes> message_grant;
  std::map<Bytes, MessageInfo> info;
  REFBUS_RETURN_IF_ERROR(ScanForQuery(store, result, [&](const AuditEntry& e) {
    if (e.event == AuditEvent::kConsentGranted && e.emergency_override) {
      emergency.emplace(e.consent_grant_id, e.index);
      AuditRow r = RowOf(e);
      r.group = HexEncode(e.consent_grant_id);
      r.note = "EMERGENCY OVERRIDE granted: " + e.detail;
      r.note_code = AuditRow::Note::kOverrideGranted;
      r.note_args = {e.detail};
      result.rows.push_back(std::move(r));
      return;
    }
    Bytes grant;
    if (!e.consent_grant_id.empty() && emergency.count(e.consent_grant_id) != 0) {
      grant = e.consent_grant_id;
      if (!e.message_id.empty()) {
        message_grant[e.message_id] = grant;
        if (e.event == AuditEvent::kEnvelopeAccepted) info[e.message_id] = InfoOf(e);
      }
    } else if (!e.message_id.empty()) {
      auto it = message_grant.find(e.message_id);
      if (it == message_grant.end()) return;
      grant = it->second;
    } else {
      return;
    }
    AuditRow r = RowOf(e);
    r.group = HexEncode(grant);
    if (e.event == AuditEvent::kEnvelopeAccepted) {
      r.note = "shared under the override";
      r.note_code = AuditRow::Note::kSharedUnderOverride;
    }
    result.rows.push_back(std::move(r));
  }));
  for (auto& r : result.rows) Join(r, info);
  // Grouped by grant, in the order the grants were made; log order within each.
  std::map<std::string, uint64_t> order;
  for (const auto& [grant, index] : emergency) order[HexEncode(grant)] = index;
  std::stable_sort(
      result.rows.begin(), result.rows.end(),
      [&](const AuditRow& a, const AuditRow& b) { return order.at(a.group) < order.at(b.group); });
  return result;
}

std::string CsvField(std::string_view s) {
  // A spreadsheet runs a cell that starts with one of these as a formula: text from the
  // log (case references, details written by other agencies) is kept as text.
  const bool formula =
      !s.empty() && std::string_view("=+-@\t\r").find(s[0]) != std::string_view::npos;
  if (!formula && s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = formula ? "\"'" : "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

void PrintRows(const QueryResult& result, OutputFormat format, std::ostream& out) {
  if (format == OutputFormat::kJson) {
    json rows = json::array();
    for (const AuditRow& r : result.rows) {
      const AuditEntry& e = r.entry;
      const uint64_t refusals = e.event == AuditEvent::kEnvelopeRejected ? e.Refusals() : 0;
      const std::string first = e.refusal_count ? FormatUtc(e.first_refused_ms) : "";
      const std::string last = e.refusal_count ? FormatUtc(e.last_refused_ms) : "";
      rows.push_back({{"index", e.index},
                      {"time", FormatUtc(e.time_ms)},
                      {"time_ms", e.time_ms},
                      {"event", std::string(schema::Name(e.event))},
                      {"actor", e.actor},
                      {"message_id", HexEncode(e.message_id)},
                      {"case_ref", r.case_ref},
                      {"sender_id", r.sender_id},
                      {"recipients", e.recipients},
                      {"consent_grant_id", HexEncode(r.consent_grant_id)},
                      {"kind", std::string(schema::Name(r.kind))},
                      {"purpose", std::string(schema::Name(e.purpose))},
                      {"reason", std::string(schema::Name(e.reason))},
                      {"operator_ref", e.operator_ref},
                      {"emergency_override", e.emergency_override},
                      {"statement_sha256", HexEncode(e.statement_sha256)},
                      {"refusals", refusals},
                      {"first_refused", first},
                      {"last_refused", last},
                      {"detail", e.detail},
                      {"group", r.group},
                      {"note", r.note},
                      {"operator_check", OperatorVerdictText(r)},
                      {"operator_check_detail", r.operator_check ? r.operator_check->why : ""}});
    }
    out << json{{"checkpoint_size", result.checkpoint_size},
                {"entries_scanned", result.entries_scanned},
                {"rows", rows}}
               .dump(2)
        << "\n";
    return;
  }
  if (format == OutputFormat::kCsv) {
    out << "index,time,event,actor,message_id,case_ref,sender_id,recipients,consent_grant_id,"
           "kind,purpose,reason,operator_ref,emergency_override,detail,group,note,refusals,"
           "first_refused,last_refused,operator_check,operator_check_detail\r\n";
    for (const AuditRow& r : result.rows) {
      const AuditEntry& e = r.entry;
      std::vector<std::string> f = {std::to_string(e.index),
                                    FormatUtc(e.time_ms),
                                    std::string(schema::Name(e.event)),
                                    e.actor,
                                    HexEncode(e.message_id),
                                    r.case_ref,
                                    r.sender_id,
                                    Recipients(e, ";"),
                                    HexEncode(r.consent_grant_id),
                                    std::string(schema::Name(r.kind)),
                                    std::string(schema::Name(e.purpose)),
                                    std::string(schema::Name(e.reason)),
                                    e.operator_ref,
                                    e.emergency_override ? "true" : "false",
                                    e.detail,
                                    r.group,
                                    r.note,
                                    e.event == AuditEvent::kEnvelopeRejected
                                        ? std::to_string(e.Refusals())
                                        : std::string("0"),
                                    e.refusal_count ? FormatUtc(e.first_refused_ms) : "",
                                    e.refusal_count ? FormatUtc(e.last_refused_ms) : "",
                                    OperatorVerdictText(r),
                                    r.operator_check ? r.operator_check->why : ""};
      for (size_t i = 0; i < f.size(); ++i) out << (i ? "," : "") << CsvField(f[i]);
      out << "\r\n";
    }
    return;
  }
  Table t({"INDEX", "TIME", "EVENT", "ACTOR", "MESSAGE", "CASE", "SENDER", "RECIPIENTS", "GRANT",
           "KIND", "OPERATOR", "OPERATOR SIGNATURE", "NOTE"});
  for (const AuditRow& r : result.rows) {
    const AuditEntry& e = r.entry;
    std::string note = r.note.empty() ? e.detail : r.note;
    if (e.refusal_count != 0) {
      note = std::to_string(e.refusal_count) + " refusals " + FormatUtc(e.first_refused_ms) + ".." +
             FormatUtc(e.last_refused_ms) + ": " + note;
    }
    if (r.operator_check) note += (note.empty() ? "" : "; ") + r.operator_check->why;
    if (note.size() > 160) note = note.substr(0, 157) + "...";
    t.AddRow({std::to_string(e.index), FormatUtc(e.time_ms), std::string(schema::Name(e.event)),
              OrDash(e.actor), ShortId(e.message_id), OrDash(r.case_ref), OrDash(r.sender_id),
              OrDash(Recipients(e, ",")), ShortId(r.consent_grant_id),
              r.kind == schema::MessageKind::kUnspecified ? "-" : std::string(schema::Name(r.kind)),
              OrDash(e.operator_ref), OrDash(OperatorVerdictText(r)), OrDash(note)});
  }
  t.Print(out);
  out << "\n"
      << result.rows.size() << " rows from " << result.entries_scanned
      << " entries (the log of the latest stored checkpoint, size " << result.checkpoint_size
      << ")\n";
}

Result<UnixMillis> ParseTime(std::string_view text) {
  const std::string s(text);
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (s.size() > 15) return InvalidArgument("time '" + s + "' is too large");
    return static_cast<UnixMillis>(std::stoull(s));
  }
  // Fixed positions: "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ", digits where digits go.
  auto num = [&](size_t pos, size_t len) {
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return -1;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  const bool date_only = s.size() == 10;
  const bool full = s.size() == 20 && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[19] == 'Z';
  int y = -1, mo = -1, d = -1, h = 0, mi = 0, sec = 0;
  if ((date_only || full) && s[4] == '-' && s[7] == '-') {
    y = num(0, 4);
    mo = num(5, 2);
    d = num(8, 2);
    if (full) {
      h = num(11, 2);
      mi = num(14, 2);
      sec = num(17, 2);
    }
  }
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
      sec < 0 || sec > 59) {
    return InvalidArgument("time '" + s +
                           "' is not YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC) or Unix milliseconds");
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  std::time_t t = timegm(&tm);
  if (t < 0 || tm.tm_mday != d) return InvalidArgument("time '" + s + "' is not a real date");
  return static_cast<UnixMillis>(t) * kMillisPerSecond;
}

}  // namespace refbus::audit
