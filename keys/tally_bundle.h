// Joint evidence bundles of linkage tallies (PROTOCOL.md 13.7): for one linkage id, each
// linked agency's signed tally (keys/linkage_tally.h) with the evidence that the agency's
// broker recorded it: the LINKAGE_TALLY audit entry (its bytes), the entry's RFC 9162
// inclusion proof and the broker's signed checkpoint (with the witnesses' cosignatures it
// carried). The lead agency assembles it; anyone holding the verified directory checks it
// offline (refbus-audit check-bundle).
//
// Files are JSON, format "refbus-linkage-bundle/1", read strictly (exact fields, lowercase
// hex of exact sizes, bounded counts): see PROTOCOL.md 13.7 for the layout.
//
// Thread safety: free functions over values.
#ifndef REFBUS_KEYS_TALLY_BUNDLE_H_
#define REFBUS_KEYS_TALLY_BUNDLE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/linkage_tally.h"
#include "keys/merkle.h"
#include "schema/types.h"

namespace refbus::keys {

inline constexpr std::string_view kTallyBundleFormat = "refbus-linkage-bundle/1";
inline constexpr size_t kMaxBundleTallies = 64;
inline constexpr size_t kMaxTallyBundleBytes = 8u << 20;
inline constexpr size_t kMaxTallyEntryBytes = 64u << 10;

// One agency's tally and the evidence that its broker logged it.
struct TallyEvidence {
  std::string agency;
  std::string signed_tally;  // exactly the bytes the log's entry hashes
  std::string broker_id;
  uint64_t index = 0;  // of the LINKAGE_TALLY entry in broker_id's log
  Bytes entry;         // the entry's bytes (the Merkle leaf)
  std::vector<Hash> proof;
  std::string checkpoint;  // the broker's signed note, with any cosignature lines
};

// One evidence object as JSON text, and back (strict; InvalidArgument or Malformed).
std::string TallyEvidenceJson(const TallyEvidence& evidence);
Result<TallyEvidence> ParseTallyEvidence(std::string_view json_text);

// A bundle file's text. REQUIRES: linkage_id is kTallyLinkageIdBytes.
std::string MakeTallyBundle(ByteView linkage_id, const std::vector<TallyEvidence>& tallies);

struct ParsedTallyBundle {
  Bytes linkage_id;
  std::vector<TallyEvidence> tallies;
};
// The bundle's fields, strictly: Malformed for text that is not JSON, InvalidArgument for
// a field missing, extra, of the wrong type or size, or more than kMaxBundleTallies.
Result<ParsedTallyBundle> ParseTallyBundle(std::string_view text);

// What one tally of a bundle showed.
struct CheckedTally {
  std::string agency;
  std::string broker_id;
  std::optional<LinkageTally> tally;  // set when it passed
  uint64_t index = 0;
  uint64_t tree_size = 0;
  std::vector<std::string> cosigners;  // witness party ids whose cosignatures verified
  std::string problem;                 // empty when it passed
  bool ok() const { return problem.empty(); }
};

// Checks one tally about linkage_id: the signature by the agency's directory key, that the
// entry is a LINKAGE_TALLY of that agency at that index and broker whose statement hash is
// the tally's SHA-256, the checkpoint's signature by the broker's directory key and every
// cosignature by a directory witness on it, and the inclusion proof. The status's message
// says what failed.
Result<CheckedTally> CheckTallyEvidence(const TallyEvidence& evidence, ByteView linkage_id,
                                        const schema::Directory& directory, UnixMillis now);

struct CheckedTallyBundle {
  Bytes linkage_id;
  std::vector<CheckedTally> tallies;  // in the bundle's order, passing or not
  size_t failed = 0;
  // Over the tallies that passed:
  uint64_t victims = 0;
  uint64_t deletion_items = 0;
  std::string from_date, to_date;
};

// Checks every tally (CheckTallyEvidence; a second tally of one agency fails too). The
// status is an error only for a bundle that does not parse; failing tallies are named in
// the result.
Result<CheckedTallyBundle> CheckTallyBundle(std::string_view text,
                                            const schema::Directory& directory, UnixMillis now);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_TALLY_BUNDLE_H_
