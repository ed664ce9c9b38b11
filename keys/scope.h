// Consent scope: is a message within the grant it names? The same rules run three times
// (PROTOCOL.md "Consent scope"): in the sending agent before it seals, in the broker
// before it stores, and in the receiving agent before it accepts.
//
// What a message claims is taken from the signed envelope header (kind, purpose,
// categories, case, sender, recipients) plus what the directory says about those parties
// (agency type, roles); ScopeSubjectOf() builds it. CheckScope() is pure: no I/O, no
// clock of its own.
//
// Thread safety: free functions, thread-safe.
#ifndef REFBUS_KEYS_SCOPE_H_
#define REFBUS_KEYS_SCOPE_H_

#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "schema/types.h"

namespace refbus::keys {

// A party as the scope rules see it.
struct ScopeParty {
  std::string id;
  schema::AgencyType type = schema::AgencyType::kUnspecified;
  std::vector<schema::Role> roles;
  bool Has(schema::Role r) const;
};

// What a message claims.
struct ScopeSubject {
  schema::MessageKind kind = schema::MessageKind::kUnspecified;
  schema::Purpose purpose = schema::Purpose::kUnspecified;
  std::vector<schema::DataCategory> categories;
  std::string case_ref;
  ScopeParty sender;
  std::vector<ScopeParty> recipients;
};

// Why a message is outside its grant: reason is CONSENT_OUT_OF_SCOPE, CONSENT_EXPIRED or
// CONSENT_REVOKED; detail names the rule and the ids (never content).
struct ScopeRefusal {
  schema::NackReason reason = schema::NackReason::kConsentOutOfScope;
  std::string detail;
};

// Kinds that carry workflow metadata only (states, acknowledgements, notices): they may
// declare no category but CASE_STATUS.
bool IsMetadataKind(schema::MessageKind kind);

// A party as the directory lists it (id, agency type, roles); a party missing from the
// directory gets only its id.
ScopeParty ScopePartyOf(const schema::Directory& directory, const std::string& id);

// Builds the subject of an envelope header; parties missing from the directory get only
// their id (and then fail any rule that needs their type or roles).
ScopeSubject ScopeSubjectOf(const schema::EnvelopeHeader& header,
                            const schema::Directory& directory);

// nullopt when the message is within the grant. `revoked` says whether the grant has been
// revoked (the caller keeps that state). The grant's signature is the caller's to verify.
std::optional<ScopeRefusal> CheckScope(const schema::ConsentGrant& grant, bool revoked,
                                       const ScopeSubject& subject, UnixMillis now);

// The rule for an envelope naming no grant (PROTOCOL.md 9.1, 10.3): it must be of kind
// DELETION_WATCH_LIST (no case data: a deletion center's list of content hashes), from a
// party with the deletion role to parties with the deletion role only, with no case
// reference, purpose or data category. OPAQUE is the broker's own policy and is refused
// here. nullopt when allowed; the refusal's reason is NOT_PERMITTED for a role missing,
// CONSENT_OUT_OF_SCOPE otherwise.
std::optional<ScopeRefusal> CheckGrantless(const ScopeSubject& subject);

// Whether party may receive data under grant (named, or of an allowed agency type, or the
// recording agency itself).
bool MayReceive(const schema::ConsentGrant& grant, const ScopeParty& party);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_SCOPE_H_
