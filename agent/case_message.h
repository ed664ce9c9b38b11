// Sealing and opening case messages with the agents' two consent checks (the broker's is
// the third; PROTOCOL.md 9.1).
//
// Sending: SealCase() refuses to seal a message whose fields carry a category the grant
// does not allow, or that is addressed to a party outside the grant, before any bytes
// exist. The header declares exactly the categories the content carries.
// Receiving: OpenCase() verifies and opens the envelope, then checks what arrived: the
// body matches the envelope's kind, every field's category is one the header declared,
// the ids inside agree with the signed header, the grant (carried inside, or already
// known) is genuine, is the one the header names, and allows the message.
//
// Errors: kPermissionDenied for anything outside the consent (the message says which
// field, category or recipient), kMalformed/kUnauthenticated for broken or forged bytes.
// Messages name ids, field names and categories, never field values.
//
// Thread safety: free functions, thread-safe. Opened content lives in schema::CaseMessage
// strings: callers that keep it must store it encrypted (agent store) and drop it soon.
#ifndef REFBUS_AGENT_CASE_MESSAGE_H_
#define REFBUS_AGENT_CASE_MESSAGE_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/identity.h"
#include "schema/types.h"
#include "schema/workflow.h"

namespace refbus::agent {

// A grant the agent knows, with whether it has been revoked.
struct KnownGrant {
  schema::SignedConsentGrant grant;
  bool revoked = false;
};
// Looks up a grant by id (nullopt: unknown).
using GrantLookup = std::function<std::optional<KnownGrant>(ByteView grant_id)>;

struct SealCaseRequest {
  schema::CaseMessage message;
  std::vector<std::string> recipients;
  schema::Purpose purpose = schema::Purpose::kUnspecified;
  UnixMillis now = 0;
  UnixMillis lifetime_ms = 30 * kMillisPerDay;
  // Prekeys the recipients published since the directory (keys::NewestPrekey checks each
  // against the directory): the newest valid one is sealed to.
  std::vector<schema::SignedPrekey> published;
};

// The categories a message carries: its fields' categories, plus what its kind implies
// (CASE_STATUS for metadata kinds, CONTENT_LOCATIONS for deletion requests,
// DELETION_STATUS for status reports). Sorted, without duplicates.
std::vector<schema::DataCategory> CategoriesOf(const schema::CaseMessage& message);

// Checks the message against grant (the sending agent's check) and seals it. Returns the
// serialized envelope. REQUIRES: grant verified by the caller.
Result<Bytes> SealCase(const keys::Identity& sender, const schema::Directory& directory,
                       const KnownGrant& grant, const SealCaseRequest& request);

struct OpenedCase {
  schema::SealedEnvelope envelope;
  schema::CaseMessage message;
  schema::SignedConsentGrant grant;  // the grant it was checked against
};

// Verifies, opens and checks a delivered envelope (the receiving agent's check). The
// grant comes from the message itself (referral, handoff, deletion request) or from
// known_grants.
Result<OpenedCase> OpenCase(const keys::Identity& recipient, ByteView envelope,
                            const schema::Directory& directory, const GrantLookup& known_grants,
                            UnixMillis now);

// A message that names no grant: a deletion center's watch list (PROTOCOL.md 9.1, 10.3).
// SealGrantless checks keys::CheckGrantless (deletion role at both ends) before any bytes
// exist; `purpose` and the case are not used. OpenGrantless verifies and opens it, checks
// the same rule against the receiver's directory and that the body matches the kind.
Result<Bytes> SealGrantless(const keys::Identity& sender, const schema::Directory& directory,
                            const SealCaseRequest& request);
struct OpenedGrantless {
  schema::SealedEnvelope envelope;
  schema::CaseMessage message;
};
Result<OpenedGrantless> OpenGrantless(const keys::Identity& recipient, ByteView envelope,
                                      const schema::Directory& directory, UnixMillis now);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_CASE_MESSAGE_H_
