// Signing and verifying consent grants (the scope under which case data is shared).
//
// A grant is signed by the agency that recorded it, with that agency's directory key.
// An emergency override (basis EMERGENCY_LIFE_SAFETY or emergency_override set) is valid
// only with a second operator's countersignature over the same grant bytes. Enforcing a
// grant's scope against envelopes is the broker's and the agents' job (later issues); this
// file establishes who signed what.
//
// Thread safety: free functions, thread-safe.
#ifndef REFBUS_KEYS_CONSENT_H_
#define REFBUS_KEYS_CONSENT_H_

#include "core/clock.h"
#include "core/status.h"
#include "keys/identity.h"
#include "schema/types.h"
#include "schema/workflow.h"

namespace refbus::keys {

// REQUIRES: grant.recorded_by == recorder.party_id().
Result<schema::SignedConsentGrant> SignConsentGrant(const Identity& recorder,
                                                    const schema::ConsentGrant& grant);

// Adds a countersignature by a second operator holding countersigner (an operator key;
// its public key is carried in the countersignature and recorded for auditors).
Status Countersign(schema::SignedConsentGrant& grant, const std::string& operator_ref,
                   const Identity& countersigner);

// Signature by the recording agency's key per the directory; countersignature present
// and valid where the grant is an emergency override.
Status VerifyConsentGrant(const schema::SignedConsentGrant& grant,
                          const schema::Directory& directory, UnixMillis now);

bool IsEmergencyOverride(const schema::ConsentGrant& grant);

// Signed statements (schema/workflow.h): consent revocations, purge confirmations and
// access records, each signed by an agency with its directory signing key under its own
// label, so one kind can never pass for another.
enum class StatementType { kConsentRevocation, kPurgeConfirmation, kAccessRecord };

// Signs the serialized statement as it is.
schema::SignedStatement SignStatement(const Identity& signer, StatementType type, Bytes statement);

// Checks the signature by signer_id's key per the directory (a key retired after
// signed_at_ms still verifies; a revoked one never does).
[[nodiscard]] Status VerifyStatement(const schema::SignedStatement& statement, StatementType type,
                                     const std::string& signer_id, UnixMillis signed_at_ms,
                                     const schema::Directory& directory, UnixMillis now);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_CONSENT_H_
