#include "schema/types.h"

#include "schema/workflow.h"

#include <algorithm>
#include <array>
#include <functional>
#include <tuple>
#include <utility>

namespace refbus::schema {
namespace {

template <typename E, size_t N>
std::string_view Lookup(const std::array<std::string_view, N>& names, E v) {
  auto i = static_cast<size_t>(v);
  return i < N ? names[i] : std::string_view("unknown");
}

template <typename E, size_t N>
std::optional<E> Reverse(const std::array<std::string_view, N>& names, std::string_view s) {
  for (size_t i = 1; i < N; ++i) {
    if (names[i] == s) return static_cast<E>(i);
  }
  return std::nullopt;
}

constexpr std::array<std::string_view, 5> kPartyKind = {"unspecified", "authority", "agency",
                                                        "broker", "auditor"};
constexpr std::array<std::string_view, 7> kAgencyType = {
    "-",      "wee-center", "police-unit", "counseling-center", "deletion-center", "support-center",
    "hotline"};
constexpr std::array<std::string_view, 11> kRole = {
    "unspecified", "refer",   "receive", "deletion",          "investigation", "case-lead",
    "relay",       "witness", "audit",   "linkage-evaluator", "linkage-escrow"};
constexpr std::array<std::string_view, 4> kKeyState = {"unspecified", "active", "retired",
                                                       "revoked"};
constexpr std::array<std::string_view, 3> kPartyStatus = {"unspecified", "active", "revoked"};
constexpr std::array<std::string_view, 10> kPurpose = {
    "unspecified",   "counseling", "deletion",  "investigation", "legal",
    "psychological", "family",     "emergency", "academic",      "linkage"};
constexpr std::array<std::string_view, 10> kDataCategory = {
    "unspecified",       "identity",      "contact", "incident-summary", "counseling-notes",
    "content-locations", "investigation", "health",  "deletion-status",  "case-status"};
constexpr std::array<std::string_view, 16> kMessageKind = {
    "unspecified",        "referral",           "referral-state",      "handoff",
    "handoff-ack",        "deletion-request",   "deletion-status",     "access-notice",
    "consent-revocation", "purge-confirmation", "case-closed",         "opaque",
    "linkage-entry",      "linkage-notice",     "deletion-watch-list", "linkage-tally"};
constexpr std::array<std::string_view, 11> kLegalBasis = {
    "unspecified",         "consent-subject",         "consent-legal-representative",
    "statutory-provision", "mandatory-report",        "police-notify-support-center",
    "deletion-support",    "police-deletion-request", "investigation-request",
    "court-order",         "emergency-life-safety"};
constexpr std::array<std::string_view, 4> kConsenter = {"unspecified", "subject", "guardian",
                                                        "legal-representative"};
constexpr std::array<std::string_view, 19> kNackReason = {"unspecified",
                                                          "malformed",
                                                          "too-large",
                                                          "sender-mismatch",
                                                          "unknown-recipient",
                                                          "revoked-recipient",
                                                          "bad-signature",
                                                          "expired",
                                                          "quota-exceeded",
                                                          "unknown-sender-key",
                                                          "consent-out-of-scope",
                                                          "consent-expired",
                                                          "consent-revoked",
                                                          "storage-full",
                                                          "unsupported-version",
                                                          "internal",
                                                          "not-permitted",
                                                          "out-of-range",
                                                          "id-reused"};
static_assert(kMessageKind.size() == kMessageKindCount && kNackReason.size() == kNackReasonCount,
              "schema/types.h counts every value");

constexpr std::array<std::string_view, 22> kAuditEvent = {
    "unspecified",     "accepted",        "rejected",         "forwarded",
    "delivered",       "acked",           "opened",           "consent-granted",
    "consent-revoked", "purge-confirmed", "directory-loaded", "key-revoked",
    "auditor-query",   "broker-started",  "expired",          "witness-refused",
    "rerouted",        "quarantined",     "prekey-published", "linkage-evaluation",
    "operator-roster", "linkage-tally"};
constexpr std::array<std::string_view, 6> kWitnessRefusal = {
    "none", "conflict", "unknown-log", "bad-signature", "bad-request", "inconsistent"};

constexpr std::array<std::string_view, 9> kReferralState = {
    "unspecified", "requested", "accepted",  "declined", "in-progress",
    "on-hold",     "completed", "cancelled", "withdrawn"};
constexpr std::array<std::string_view, 6> kDeletionItemStatus = {
    "unspecified", "received", "notified", "removed", "reappeared", "withdrawn"};
constexpr std::array<std::string_view, 6> kRevocationReason = {
    "unspecified",           "withdrawn-by-subject",
    "withdrawn-by-guardian", "withdrawn-by-representative",
    "recorded-in-error",     "basis-ended"};

}  // namespace

std::string_view Name(ReferralState v) { return Lookup(kReferralState, v); }
std::string_view Name(DeletionItemStatus v) { return Lookup(kDeletionItemStatus, v); }
std::string_view Name(RevocationReason v) { return Lookup(kRevocationReason, v); }
std::optional<ReferralState> ParseReferralState(std::string_view s) {
  return Reverse<ReferralState>(kReferralState, s);
}
std::optional<DeletionItemStatus> ParseDeletionItemStatus(std::string_view s) {
  return Reverse<DeletionItemStatus>(kDeletionItemStatus, s);
}
std::optional<RevocationReason> ParseRevocationReason(std::string_view s) {
  return Reverse<RevocationReason>(kRevocationReason, s);
}
std::optional<Purpose> ParsePurpose(std::string_view s) { return Reverse<Purpose>(kPurpose, s); }
std::optional<DataCategory> ParseDataCategory(std::string_view s) {
  return Reverse<DataCategory>(kDataCategory, s);
}
std::optional<LegalBasis> ParseLegalBasis(std::string_view s) {
  return Reverse<LegalBasis>(kLegalBasis, s);
}
std::optional<Consenter> ParseConsenter(std::string_view s) {
  return Reverse<Consenter>(kConsenter, s);
}

uint64_t WatchListPartSize(uint64_t total_bytes, uint32_t index) {
  const uint64_t start = uint64_t{index} * kWatchListPartBytes;
  if (start >= total_bytes) return 0;
  return std::min<uint64_t>(kWatchListPartBytes, total_bytes - start);
}

uint32_t WatchListPartCount(uint64_t total_bytes) {
  const uint64_t n = (total_bytes + kWatchListPartBytes - 1) / kWatchListPartBytes;
  return n > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(n);
}

MessageKind KindOf(CaseMessage::Type type) {
  switch (type) {
    case CaseMessage::Type::kReferral:
      return MessageKind::kReferral;
    case CaseMessage::Type::kStateChange:
      return MessageKind::kReferralState;
    case CaseMessage::Type::kHandoff:
      return MessageKind::kHandoff;
    case CaseMessage::Type::kHandoffAck:
      return MessageKind::kHandoffAck;
    case CaseMessage::Type::kDeletionRequest:
      return MessageKind::kDeletionRequest;
    case CaseMessage::Type::kDeletionStatus:
      return MessageKind::kDeletionStatus;
    case CaseMessage::Type::kAccessNotice:
      return MessageKind::kAccessNotice;
    case CaseMessage::Type::kConsentRevocation:
      return MessageKind::kConsentRevocation;
    case CaseMessage::Type::kPurgeConfirmation:
      return MessageKind::kPurgeConfirmation;
    case CaseMessage::Type::kCaseClosed:
      return MessageKind::kCaseClosed;
    case CaseMessage::Type::kLinkageEntry:
      return MessageKind::kLinkageEntry;
    case CaseMessage::Type::kLinkageNotice:
      return MessageKind::kLinkageNotice;
    case CaseMessage::Type::kDeletionWatchList:
      return MessageKind::kDeletionWatchList;
    case CaseMessage::Type::kLinkageTally:
      return MessageKind::kLinkageTally;
  }
  return MessageKind::kUnspecified;
}

std::string_view Name(AuditEvent v) { return Lookup(kAuditEvent, v); }
std::string_view Name(WitnessRefusal v) { return Lookup(kWitnessRefusal, v); }
std::string_view Name(PartyKind v) { return Lookup(kPartyKind, v); }
std::string_view Name(AgencyType v) { return Lookup(kAgencyType, v); }
std::string_view Name(Role v) { return Lookup(kRole, v); }
std::string_view Name(KeyState v) { return Lookup(kKeyState, v); }
std::string_view Name(PartyStatus v) { return Lookup(kPartyStatus, v); }
std::string_view Name(Purpose v) { return Lookup(kPurpose, v); }
std::string_view Name(DataCategory v) { return Lookup(kDataCategory, v); }
std::string_view Name(MessageKind v) { return Lookup(kMessageKind, v); }
std::string_view Name(LegalBasis v) { return Lookup(kLegalBasis, v); }
std::string_view Name(Consenter v) { return Lookup(kConsenter, v); }
std::string_view Name(NackReason v) { return Lookup(kNackReason, v); }

std::optional<PartyKind> ParsePartyKind(std::string_view s) {
  return Reverse<PartyKind>(kPartyKind, s);
}
std::optional<AgencyType> ParseAgencyType(std::string_view s) {
  return Reverse<AgencyType>(kAgencyType, s);
}
std::optional<Role> ParseRole(std::string_view s) { return Reverse<Role>(kRole, s); }

bool Party::HasRole(Role r) const {
  return std::find(roles.begin(), roles.end(), r) != roles.end();
}

const KeyRecord* Party::ActiveKeys() const {
  for (const auto& k : keys) {
    if (k.state == KeyState::kActive) return &k;
  }
  return nullptr;
}

const std::vector<Party>& Directory::List(uint32_t list) const {
  return list == 0 ? agencies : list == 1 ? brokers : auditors;
}

const Party* Directory::ScanFor(std::string_view id) const {
  for (const auto* list : {&agencies, &brokers, &auditors}) {
    for (const auto& p : *list) {
      if (p.id == id) return &p;
    }
  }
  return nullptr;
}

const Party* Directory::Find(std::string_view id) const {
  const size_t h = std::hash<std::string_view>{}(id);
  auto it = std::lower_bound(index_.begin(), index_.end(), h,
                             [](const IndexEntry& e, size_t v) { return e.id_hash < v; });
  for (; it != index_.end() && it->id_hash == h; ++it) {
    const std::vector<Party>& list = List(it->list);
    // A stale entry (the lists changed since BuildIndex) fails this check and is passed.
    if (it->pos < list.size() && list[it->pos].id == id) return &list[it->pos];
  }
  return ScanFor(id);
}

void Directory::BuildIndex() {
  std::vector<IndexEntry> index;
  uint32_t list_number = 0;
  for (const auto* list : {&agencies, &brokers, &auditors}) {
    for (size_t i = 0; i < list->size(); ++i) {
      index.push_back(
          {std::hash<std::string_view>{}((*list)[i].id), list_number, static_cast<uint32_t>(i)});
    }
    ++list_number;
  }
  // Equal hashes keep list order, so a repeated id finds its first party, as the scan does.
  std::sort(index.begin(), index.end(), [](const IndexEntry& a, const IndexEntry& b) {
    return std::tie(a.id_hash, a.list, a.pos) < std::tie(b.id_hash, b.list, b.pos);
  });
  index_ = std::move(index);
}

}  // namespace refbus::schema
