#include "keys/scope.h"

#include <algorithm>

#include "keys/directory.h"

namespace refbus::keys {
namespace {

using schema::DataCategory;
using schema::MessageKind;
using schema::NackReason;
using schema::Purpose;
using schema::Role;

template <typename T>
bool Contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

ScopeRefusal Out(std::string detail) {
  return ScopeRefusal{NackReason::kConsentOutOfScope, std::move(detail)};
}

// Status reports flow from a recipient to other parties in scope without onward sharing:
// they describe work done, not the young person.
bool IsStatusCategory(DataCategory c) {
  return c == DataCategory::kCaseStatus || c == DataCategory::kDeletionStatus;
}

}  // namespace

bool ScopeParty::Has(Role r) const { return Contains(roles, r); }

bool IsMetadataKind(MessageKind kind) {
  switch (kind) {
    case MessageKind::kReferralState:
    case MessageKind::kHandoffAck:
    case MessageKind::kAccessNotice:
    case MessageKind::kConsentRevocation:
    case MessageKind::kPurgeConfirmation:
    case MessageKind::kCaseClosed:
    case MessageKind::kLinkageEntry:
    case MessageKind::kLinkageNotice:
    case MessageKind::kLinkageTally:
      return true;
    default:
      return false;
  }
}

ScopeParty ScopePartyOf(const schema::Directory& dir, const std::string& id) {
  ScopeParty p;
  p.id = id;
  if (const schema::Party* d = dir.Find(id); d != nullptr) {
    p.type = d->agency_type;
    p.roles = d->roles;
  }
  return p;
}

ScopeSubject ScopeSubjectOf(const schema::EnvelopeHeader& h, const schema::Directory& dir) {
  auto party = [&](const std::string& id) { return ScopePartyOf(dir, id); };
  ScopeSubject s;
  s.kind = h.kind;
  s.purpose = h.purpose;
  s.categories = h.categories;
  s.case_ref = h.case_ref;
  s.sender = party(h.sender_id);
  for (const auto& r : h.recipients) s.recipients.push_back(party(r.agency_id));
  return s;
}

bool MayReceive(const schema::ConsentGrant& g, const ScopeParty& p) {
  return p.id == g.recorded_by || Contains(g.allowed_recipients, p.id) ||
         (p.type != schema::AgencyType::kUnspecified && Contains(g.allowed_agency_types, p.type));
}

namespace {

// The rules of CheckScope, in the order it applies them; each returns the first refusal
// it finds. `grant` names the grant in details ("grant for case ...").

// Who may send a consent revocation, and where purge confirmations go.
std::optional<ScopeRefusal> CheckWindingDown(const schema::ConsentGrant& g, const ScopeSubject& s) {
  // A revocation comes from the recording agency, or is forwarded by a party within the
  // grant to those it shared with (the content is the recorder's signed statement, which
  // every receiver verifies).
  if (s.kind == MessageKind::kConsentRevocation && s.sender.id != g.recorded_by &&
      !MayReceive(g, s.sender)) {
    return Out("a consent revocation comes from the recording agency " + g.recorded_by +
               " or a party within the grant, not " + s.sender.id);
  }
  if (s.kind == MessageKind::kPurgeConfirmation) {
    for (const auto& r : s.recipients) {
      if (r.id != g.recorded_by) {
        return Out("purge confirmations go to the recording agency " + g.recorded_by + ", not " +
                   r.id);
      }
    }
  }
  return std::nullopt;
}

// The grant is in force: not revoked, not expired, already issued (with clock skew).
std::optional<ScopeRefusal> CheckInForce(const schema::ConsentGrant& g, bool revoked,
                                         UnixMillis now, const std::string& grant) {
  if (revoked) {
    return ScopeRefusal{NackReason::kConsentRevoked,
                        "the " + grant + " recorded by " + g.recorded_by + " has been revoked"};
  }
  if (now > g.expires_at_ms) {
    return ScopeRefusal{NackReason::kConsentExpired,
                        "the " + grant + " expired at " + FormatUtc(g.expires_at_ms)};
  }
  if (now + kClockSkewMs < g.issued_at_ms) {
    return Out("the " + grant + " is not valid before " + FormatUtc(g.issued_at_ms));
  }
  return std::nullopt;
}

// The kind may carry case data, the purpose is in the grant, and deletion kinds have
// purpose deletion.
std::optional<ScopeRefusal> CheckKindAndPurpose(const schema::ConsentGrant& g,
                                                const ScopeSubject& s, const std::string& grant) {
  if (s.kind == MessageKind::kOpaque || s.kind == MessageKind::kUnspecified ||
      s.kind == MessageKind::kDeletionWatchList) {
    return Out("kind " + std::string(schema::Name(s.kind)) + " may not carry case data");
  }
  if (!Contains(g.purposes, s.purpose)) {
    return Out("purpose " + std::string(schema::Name(s.purpose)) + " is not in the " + grant);
  }
  if (s.kind == MessageKind::kDeletionRequest || s.kind == MessageKind::kDeletionStatus) {
    if (s.purpose != Purpose::kDeletion) {
      return Out(std::string(schema::Name(s.kind)) + " needs purpose deletion");
    }
  }
  const bool linkage = s.kind == MessageKind::kLinkageEntry ||
                       s.kind == MessageKind::kLinkageNotice ||
                       s.kind == MessageKind::kLinkageTally;
  if (linkage && s.purpose != Purpose::kLinkage) {
    return Out(std::string(schema::Name(s.kind)) + " needs purpose linkage");
  }
  // A tally is its agency's own statement about its own case: it travels under a grant that
  // agency recorded, never one it only received (PROTOCOL.md 13.8).
  if (s.kind == MessageKind::kLinkageTally && s.sender.id != g.recorded_by) {
    return Out("a linkage tally travels under a grant its sender recorded; the " + grant +
               " was recorded by " + g.recorded_by + ", not " + s.sender.id);
  }
  return std::nullopt;
}

// Roles the kind needs in the directory: deletion requests go to parties with the
// deletion role and deletion status reports come from one; a handoff goes to parties
// that may hold the case lead.
std::optional<ScopeRefusal> CheckKindRoles(const ScopeSubject& s) {
  if (s.kind == MessageKind::kDeletionRequest) {
    for (const auto& r : s.recipients) {
      if (!r.Has(Role::kDeletion)) {
        return Out("recipient " + r.id + " has no deletion role in the directory");
      }
    }
  }
  if (s.kind == MessageKind::kDeletionStatus && !s.sender.Has(Role::kDeletion)) {
    return Out("sender " + s.sender.id + " has no deletion role in the directory");
  }
  // Linkage entries go to the escrow only; notices come from it only (PROTOCOL.md 13.6).
  if (s.kind == MessageKind::kLinkageEntry) {
    for (const auto& r : s.recipients) {
      if (!r.Has(Role::kLinkageEscrow)) {
        return Out("recipient " + r.id + " has no linkage-escrow role in the directory");
      }
    }
  }
  if (s.kind == MessageKind::kLinkageNotice && !s.sender.Has(Role::kLinkageEscrow)) {
    return Out("sender " + s.sender.id + " has no linkage-escrow role in the directory");
  }
  // A tally goes from one agency of a match to another, never to itself (PROTOCOL.md 13.8).
  if (s.kind == MessageKind::kLinkageTally) {
    for (const auto& r : s.recipients) {
      if (r.id == s.sender.id) return Out("a linkage tally goes to another agency, not its sender");
    }
  }
  if (s.kind == MessageKind::kHandoff) {
    for (const auto& r : s.recipients) {
      if (!r.Has(Role::kCaseLead)) {
        return Out("recipient " + r.id + " may not hold the case lead (no case-lead role)");
      }
    }
  }
  return std::nullopt;
}

// Categories: workflow metadata (CASE_STATUS) is always allowed; metadata kinds carry
// nothing else.
std::optional<ScopeRefusal> CheckCategories(const schema::ConsentGrant& g, const ScopeSubject& s,
                                            const std::string& grant) {
  for (DataCategory c : s.categories) {
    if (IsMetadataKind(s.kind) && c != DataCategory::kCaseStatus) {
      return Out(std::string(schema::Name(s.kind)) + " carries workflow metadata only, not " +
                 std::string(schema::Name(c)));
    }
    if (c != DataCategory::kCaseStatus && !Contains(g.categories, c)) {
      return Out("data category " + std::string(schema::Name(c)) + " is not in the " + grant);
    }
  }
  return std::nullopt;
}

// Sender: the recording agency, or a party within scope. Without onward sharing, a party
// within scope sends case data back to the recording agency only; status reports may go
// to any party within scope.
std::optional<ScopeRefusal> CheckSender(const schema::ConsentGrant& g, const ScopeSubject& s,
                                        const std::string& grant) {
  if (s.sender.id == g.recorded_by) return std::nullopt;
  if (!MayReceive(g, s.sender)) {
    return Out("sender " + s.sender.id + " is not within the " + grant);
  }
  if (g.onward_sharing) return std::nullopt;
  // Status reports are metadata kinds or deletion status reports declaring status
  // categories only; any other kind counts as case data, whatever it declares.
  bool status_kind = IsMetadataKind(s.kind) || s.kind == MessageKind::kDeletionStatus;
  bool status_only =
      status_kind && std::all_of(s.categories.begin(), s.categories.end(), IsStatusCategory);
  for (const auto& r : s.recipients) {
    if (r.id != g.recorded_by && !status_only) {
      return Out("the " + grant + " does not allow onward sharing from " + s.sender.id + " to " +
                 r.id);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<ScopeRefusal> CheckScope(const schema::ConsentGrant& g, bool revoked,
                                       const ScopeSubject& s, UnixMillis now) {
  const std::string grant = "grant for case " + g.case_ref;
  if (s.case_ref != g.case_ref) {
    return Out("the message is for case " + s.case_ref + " but its " + grant);
  }
  if (auto refusal = CheckWindingDown(g, s)) return refusal;
  // Revocation notices and purge confirmations must still flow after a revocation (and
  // after expiry): they are how the revocation is carried out.
  const bool winding_down =
      s.kind == MessageKind::kConsentRevocation || s.kind == MessageKind::kPurgeConfirmation;
  if (!winding_down) {
    if (auto refusal = CheckInForce(g, revoked, now, grant)) return refusal;
  }
  if (auto refusal = CheckKindAndPurpose(g, s, grant)) return refusal;
  if (auto refusal = CheckKindRoles(s)) return refusal;
  if (auto refusal = CheckCategories(g, s, grant)) return refusal;
  for (const auto& r : s.recipients) {
    if (!MayReceive(g, r)) {
      return Out("recipient " + r.id + " is not allowed by the " + grant);
    }
  }
  return CheckSender(g, s, grant);
}

std::optional<ScopeRefusal> CheckGrantless(const ScopeSubject& s) {
  if (s.kind != MessageKind::kDeletionWatchList) {
    return Out("a " + std::string(schema::Name(s.kind)) +
               " envelope must name the consent grant it is shared under");
  }
  if (!s.case_ref.empty() || s.purpose != Purpose::kUnspecified || !s.categories.empty()) {
    return Out("a deletion-watch-list envelope names no case, purpose or data category");
  }
  if (!s.sender.Has(Role::kDeletion)) {
    return ScopeRefusal{NackReason::kNotPermitted,
                        "a deletion-watch-list envelope comes only from a party with the "
                        "deletion role; sender " +
                            s.sender.id + " has none in the directory"};
  }
  for (const auto& r : s.recipients) {
    if (!r.Has(Role::kDeletion)) {
      return ScopeRefusal{NackReason::kNotPermitted,
                          "a deletion-watch-list envelope goes only to parties with the "
                          "deletion role; recipient " +
                              r.id + " has none in the directory"};
    }
  }
  return std::nullopt;
}

}  // namespace refbus::keys
