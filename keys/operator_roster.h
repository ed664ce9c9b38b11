// An agency's signed roster of its operators' public keys (issue 18 item 1).
//
// The agency's agent keeps operator accounts (agent/operators.h), each with an Ed25519 key
// pair; operators countersign emergency overrides with them (PROTOCOL.md 9.2). The roster
// is how an auditor ties such a key to a named person: the agency signs, with its directory
// signing key under the label refbus/v1/operator-roster, the exact bytes of
//   {"agency", "version", "issued_at_ms", "operators": [{"name", "role", "public_key",
//    "active"}]}
// (JSON; public keys in hex), and the roster file carries those bytes as a string beside
// the signer's key id and the signature, so verification works on what was signed.
// Disabled operators stay in the roster (active false): their past signatures stay
// attributable. A later roster has a larger version.
//
// Thread safety: free functions, thread-safe.
#ifndef REFBUS_KEYS_OPERATOR_ROSTER_H_
#define REFBUS_KEYS_OPERATOR_ROSTER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/identity.h"
#include "schema/types.h"

namespace refbus::keys {

inline constexpr std::string_view kLabelOperatorRoster = "refbus/v1/operator-roster";

struct RosterOperator {
  std::string name;
  std::string role;  // caseworker, supervisor, administrator, read-only
  Bytes public_key;  // Ed25519, 32 bytes
  bool active = true;
};

struct OperatorRoster {
  std::string agency;
  uint64_t version = 0;
  UnixMillis issued_at_ms = 0;
  std::vector<RosterOperator> operators;
  // Set by VerifyOperatorRoster: the key id of the agency's signing key that signed it.
  Bytes signer_key_id;

  // The operator whose key this is, or nullptr.
  const RosterOperator* FindKey(ByteView public_key) const;
};

// The roster file's text, signed by agency (REQUIRES: roster.agency == agency.party_id()).
Result<std::string> SignOperatorRoster(const Identity& agency, const OperatorRoster& roster);

// Parses a roster file and checks its signature by the named agency's signing key in the
// directory (at issued_at_ms). Malformed for a file that is not a roster;
// Unauthenticated for a bad signature; the directory's errors for an unknown agency or key.
Result<OperatorRoster> VerifyOperatorRoster(std::string_view file_text,
                                            const schema::Directory& directory, UnixMillis now);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_OPERATOR_ROSTER_H_
