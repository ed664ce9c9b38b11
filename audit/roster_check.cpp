#include "audit/roster_check.h"

#include <algorithm>

#include "keys/crypto.h"

namespace refbus::audit {
namespace {

constexpr std::string_view kMarker = "countersigned by ";

// "NAME (part) [key FP]" or "NAME [key FP, INVALID SIGNATURE]", from s on; advances s.
bool NextCountersigner(std::string_view& s, Countersigner& out) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  size_t open = s.find(" [key ");
  size_t close = s.find(']', open == std::string_view::npos ? 0 : open);
  if (open == std::string_view::npos || close == std::string_view::npos) return false;
  std::string_view who = s.substr(0, open);
  std::string_view key = s.substr(open + 6, close - open - 6);
  out = Countersigner{};
  if (size_t p = who.find(" ("); p != std::string_view::npos && who.back() == ')') {
    out.part = std::string(who.substr(p + 2, who.size() - p - 3));
    who = who.substr(0, p);
  }
  out.name = std::string(who);
  if (size_t c = key.find(','); c != std::string_view::npos) {
    out.valid = false;
    key = key.substr(0, c);
  }
  out.fingerprint = std::string(key);
  s.remove_prefix(close + 1);
  return true;
}

// The verdict on one override's countersigners per the agency's roster.
std::string Verdict(const std::vector<Countersigner>& signers, const keys::OperatorRoster& roster,
                    bool* vouched) {
  std::string note = "roster v" + std::to_string(roster.version) + ":";
  std::string requester, approver;
  bool all_ok = true;
  for (const auto& c : signers) {
    const keys::RosterOperator* op = nullptr;
    for (const auto& o : roster.operators) {
      if (o.name == c.name) op = &o;
    }
    note += " " + c.name + (c.part.empty() ? "" : " (" + c.part + ")");
    if (!c.valid) {
      note += " INVALID SIGNATURE;";
      all_ok = false;
    } else if (op == nullptr) {
      note += " NOT IN ROSTER;";
      all_ok = false;
    } else if (keys::Fingerprint(keys::KeyId(keys::KeyUse::kSigning, op->public_key)) !=
               c.fingerprint) {
      note += " KEY MISMATCH;";
      all_ok = false;
    } else {
      note += " key matches, " + op->role + ";";
      if (c.part == "requested") requester = c.name;
      if (c.part == "approved" && op->role == "supervisor") approver = c.name;
    }
  }
  *vouched = all_ok && !requester.empty() && !approver.empty() && requester != approver;
  if (!*vouched) note += " TWO-PERSON RULE NOT SHOWN";
  return note;
}

}  // namespace

std::vector<Countersigner> CountersignersOf(std::string_view detail) {
  std::vector<Countersigner> out;
  size_t at = detail.find(kMarker);
  if (at == std::string_view::npos) return out;
  std::string_view s = detail.substr(at + kMarker.size());
  Countersigner c;
  while (NextCountersigner(s, c)) out.push_back(c);
  return out;
}

size_t CheckOverridesWithRosters(QueryResult& overrides,
                                 const std::vector<keys::OperatorRoster>& rosters) {
  size_t vouched = 0;
  for (auto& row : overrides.rows) {
    const auto& e = row.entry;
    if (e.event != schema::AuditEvent::kConsentGranted || !e.emergency_override) continue;
    // The latest roster of the recording agency.
    const keys::OperatorRoster* roster = nullptr;
    for (const auto& r : rosters) {
      if (r.agency == e.sender_id && (roster == nullptr || r.version > roster->version)) {
        roster = &r;
      }
    }
    if (roster == nullptr) {
      row.note += "; NO ROSTER for " + e.sender_id;
      continue;
    }
    bool ok = false;
    row.note += "; " + Verdict(CountersignersOf(e.detail), *roster, &ok);
    vouched += ok ? 1 : 0;
  }
  return vouched;
}

}  // namespace refbus::audit
