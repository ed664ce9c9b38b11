// Inclusion-proof bundles: one message's audit entries with their Merkle inclusion proofs
// against a signed checkpoint of the broker's log, made from the auditor's local store and
// checked without it (schema/PROTOCOL.md section 11).
//
// Bundles are JSON, format "refbus-audit-proof/1", with every field checked by
// CheckProofBundle (a bundle with any byte changed outside JSON whitespace is refused).
//
// Thread safety: free functions over values; a store is used by one thread at a time.
#ifndef REFBUS_AUDIT_PROOF_BUNDLE_H_
#define REFBUS_AUDIT_PROOF_BUNDLE_H_

#include <string>
#include <string_view>
#include <vector>

#include "audit/local_store.h"
#include "core/bytes.h"
#include "core/status.h"
#include "schema/types.h"

namespace refbus::audit {

inline constexpr std::string_view kProofBundleFormat = "refbus-audit-proof/1";

// A bundle proving every entry of the local log whose message_id is message_id, against
// the largest stored checkpoint that verifies with the key recorded at fetch and matches
// the local entries. NotFound if no entry concerns the message. Returns the JSON text.
Result<std::string> MakeProofBundle(const LocalAuditStore& store, ByteView message_id);

struct CheckedProof {
  std::string broker_id;
  std::string origin;
  std::string key_fingerprint;
  uint64_t tree_size = 0;
  Bytes message_id;
  std::vector<schema::AuditEntry> entries;  // decoded from the proven bytes
  double verify_us_per_entry = 0;           // inclusion proof verification only
};

// Verifies bundle_json without the log: the checkpoint's signature with the broker's key
// from directory, every entry's inclusion in it, and that every other field agrees with
// what the signed bytes say. Malformed for a bundle that does not parse, Unauthenticated
// when a signature or proof fails, InvalidArgument when a field disagrees.
Result<CheckedProof> CheckProofBundle(std::string_view bundle_json,
                                      const schema::Directory& directory);

}  // namespace refbus::audit

#endif  // REFBUS_AUDIT_PROOF_BUNDLE_H_
