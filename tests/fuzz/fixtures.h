// Fixed keys and a signed directory for the fuzz targets and their seed generator.
//
// Every key here is derived from its party id (BLAKE2b of a label and the id), so the
// fuzz targets and make_seeds.cpp build the very same identities: seeds signed by
// make_seeds verify inside the targets, and the fuzzer reaches the code behind the
// signature checks (lookups, unwrapping, decryption) instead of stopping at them.
// These are test keys, public by construction: never use them for anything else.
//
// Thread safety: Get() builds the fixture once (a function-local static) and returns a
// const reference valid until exit.
#ifndef REFBUS_TESTS_FUZZ_FIXTURES_H_
#define REFBUS_TESTS_FUZZ_FIXTURES_H_

#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/clock.h"
#include "keys/checkpoint.h"
#include "keys/directory.h"
#include "keys/identity.h"
#include "keys/merkle.h"
#include "schema/types.h"

namespace refbus::fuzz {

// The fixture's "now": the directory is valid around it, seeds are made at it.
inline constexpr UnixMillis kNow = 1790000000000;
inline constexpr std::string_view kFederation = "refbus-fuzz";
inline constexpr std::string_view kAuthorityId = "fuzz-authority";
inline constexpr std::string_view kBrokerId = "fuzz-broker";
inline constexpr std::string_view kSenderId = "fuzz-agency-a";
inline constexpr std::string_view kRecipientId = "fuzz-agency-b";
inline constexpr std::string_view kAuditorId = "fuzz-auditor";
// The broker's audit log: its checkpoint origin (broker/audit_log.cpp's form) and the
// auditor's cosigner name.
inline constexpr std::string_view kLogOrigin = "refbus/refbus-fuzz/fuzz-broker";
inline constexpr std::string_view kCosignerName = "fuzz-auditor";
// The passphrase of the protected key-file seeds (keyfile_fuzz).
inline constexpr std::string_view kPassphrase = "fuzz passphrase";

struct Fixture {
  keys::Identity authority;
  keys::Identity broker;
  keys::Identity sender;     // agency, signs envelopes, grants and statements
  keys::Identity recipient;  // agency, opens envelopes
  keys::Identity auditor;    // cosigns checkpoints
  schema::SignedDirectory directory;
  Bytes directory_bytes;  // EncodeSignedDirectory(directory)
  keys::TrustAnchor anchor;
  keys::NoteVerifier log_key;       // the broker's checkpoint key, named kLogOrigin
  keys::NoteVerifier cosigner_key;  // the auditor's cosignature/v1 key
};

// Initializes libsodium and builds the fixture on first use. Aborts if it cannot: a
// fuzz run without its fixture would only test the early refusals.
const Fixture& Get();

// A Merkle tree of kTreeLeaves leaves, leaf i = LeafHash("refbus-fuzz leaf <i>"): the
// tree the proof and checkpoint seeds are made from (audit_fuzz, checkpoint_fuzz).
inline constexpr uint64_t kTreeLeaves = 100;
const keys::MemoryTree& Tree();

// The deterministic identity of party_id (agencies get one prekey, valid from a day
// before kNow for 30 days). Exposed for make_seeds.
keys::Identity FixedIdentity(const std::string& party_id, schema::PartyKind kind);

}  // namespace refbus::fuzz

#endif  // REFBUS_TESTS_FUZZ_FIXTURES_H_
