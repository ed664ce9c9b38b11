// An agency's linkage tally (PROTOCOL.md 13.7): after a match (13.6), each linked agency
// states what it holds about one linkage id (victims supported, deletion items handled,
// the date range) and signs that statement with its directory signing key under the label
// refbus/v1/linkage-tally. The statement is a fixed sequence of lines, one canonical
// encoding per tally (ParseTallyStatement re-encodes and compares), so a signed tally has
// exactly one byte string and its SHA-256 names it in the broker's audit log.
//
// The signed tally (what travels, what the log's entry hashes) is the statement followed by
// one line "signature <signer key id, 32 hex> <Ed25519 signature, 128 hex>\n". A random
// 16-byte nonce in the statement keeps the hash from revealing the counts to anyone who
// knows the linkage id and guesses them.
//
// What a tally proves is only that the agency said it: the counts are the agency's own
// statement, signed and logged, not checked against any case file.
//
// Thread safety: free functions, thread-safe.
#ifndef REFBUS_KEYS_LINKAGE_TALLY_H_
#define REFBUS_KEYS_LINKAGE_TALLY_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/identity.h"
#include "schema/types.h"

namespace refbus::keys {

inline constexpr std::string_view kLabelLinkageTally = "refbus/v1/linkage-tally";
inline constexpr size_t kTallyLinkageIdBytes = 16;  // BLAKE2b-128, PROTOCOL.md 13.6
inline constexpr size_t kTallyNonceBytes = 16;
inline constexpr uint64_t kMaxTallyVictims = 1'000'000;
inline constexpr uint64_t kMaxTallyDeletionItems = 1'000'000'000;

struct LinkageTally {
  std::string agency;
  Bytes linkage_id;  // kTallyLinkageIdBytes
  uint64_t victims = 0;
  uint64_t deletion_items = 0;
  std::string from_date;  // YYYY-MM-DD (UTC), from <= to
  std::string to_date;
  UnixMillis made_at_ms = 0;
  Bytes nonce;  // kTallyNonceBytes, random
  // Set by VerifyLinkageTally: the key id of the agency's signing key that signed it.
  Bytes signer_key_id;
};

// A valid calendar date written YYYY-MM-DD, years 1970 to 9999.
[[nodiscard]] bool IsTallyDate(std::string_view date);

// The canonical statement; InvalidArgument naming the field that is out of range.
Result<std::string> TallyStatement(const LinkageTally& tally);
// The statement's fields; Malformed unless text is exactly TallyStatement of them.
Result<LinkageTally> ParseTallyStatement(std::string_view text);

// The signed tally of agency (REQUIRES: tally.agency == agency.party_id(); an empty nonce
// is filled with fresh random bytes).
Result<std::string> SignLinkageTally(const Identity& agency, LinkageTally tally);

// Parses a signed tally and checks its signature with the agency's signing key that the
// directory lists under the signer key id (FindSigningKey at made_at_ms). Malformed for a
// text that is not a signed tally; Unauthenticated for a bad signature; the directory's
// errors for an unknown agency or key.
Result<LinkageTally> VerifyLinkageTally(std::string_view signed_tally,
                                        const schema::Directory& directory, UnixMillis now);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_LINKAGE_TALLY_H_
