#include "audit/report.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "audit/roster_log.h"
#include "keys/crypto.h"
#include "schema/codec.h"

namespace refbus::audit {
namespace {

using schema::AuditEntry;
using schema::AuditEvent;
using schema::NackReason;

void AddUnique(std::vector<std::string>& v, std::string s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(std::move(s));
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
      m.opened_entries.push_back(e.index);
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

}  // namespace

std::string RecipientList(const AuditEntry& e) {
  std::string s;
  for (const auto& r : e.recipients) s += (s.empty() ? "" : ", ") + r;
  return s;
}

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
  RosterHistory history;
  REFBUS_RETURN_IF_ERROR(store.ForEachEntry([&](uint64_t key, ByteView bytes) -> Status {
    ++r.entries;
    auto decoded = schema::DecodeAuditEntry(bytes);
    if (!decoded.ok()) {
      r.undecodable.push_back(key);
      return Status::Ok();
    }
    const AuditEntry& e = *decoded;
    if (options.roster_directory)
      history.Add(e, *options.roster_directory, options.generated_at_ms);
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
    if (e.event == AuditEvent::kEnvelopeOpened &&
        (!options.case_ref || e.case_ref == *options.case_ref)) {
      auto check =
          options.roster_directory ? history.Check(e) : CheckEntryOperator(e, options.rosters);
      if (keys::VerdictFails(check.verdict)) ++r.operator_failures;
      r.openings[e.index] = {e, std::move(check)};
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

}  // namespace refbus::audit
