// The signed federation directory: making it (authority), verifying it (everyone), and
// looking up keys in it.
//
// Trust: the authority's signing key is the trust anchor, held by every party as the
// authority's self-signed public record (authority.pub), checked out of band by its
// fingerprint. A directory is accepted only if its signature verifies under the anchor,
// it has not expired beyond the grace period, and its serial is not lower than the
// highest one this verifier has ever accepted (persisted in a TrustState file, so a
// rollback is refused across restarts too). Same serial, different bytes: refused.
//
// The key ceremony (PROTOCOL.md "Key ceremony"): a party generates its keys on its own
// machine and hands the authority only a SignedPartyRecord; the authority verifies each
// record's proof of possession and prekey signatures and issues the next directory.
//
// Thread safety: free functions are thread-safe; a TrustState is not synchronized.
#ifndef REFBUS_KEYS_DIRECTORY_H_
#define REFBUS_KEYS_DIRECTORY_H_

#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/identity.h"
#include "schema/types.h"

namespace refbus::keys {

// Time rules (PROTOCOL.md "Time").
inline constexpr UnixMillis kClockSkewMs = 5 * kMillisPerMinute;
inline constexpr UnixMillis kDirectoryGraceMs = 72 * kMillisPerHour;
inline constexpr UnixMillis kDefaultDirectoryValidityMs = 30 * kMillisPerDay;
inline constexpr UnixMillis kPrekeyLifetimeMs = 30 * kMillisPerDay;
inline constexpr UnixMillis kPrekeyKeepAfterExpiryMs = 30 * kMillisPerDay;
inline constexpr UnixMillis kRetiredKeyAcceptMs = 30 * kMillisPerDay;

// ---- Trust anchor ----

struct TrustAnchor {
  std::string authority_id;
  Bytes signing_key;  // Ed25519 public key
  Bytes key_id;
};

// The authority's public record, self-signed. Files: schema::kPartyRecordFileMagic.
Result<TrustAnchor> LoadTrustAnchor(const std::string& path);

// ---- Party records (party side) ----

struct Listing {
  std::string display_name;
  schema::AgencyType agency_type = schema::AgencyType::kUnspecified;
  std::string region;
  std::string home_broker;
  std::vector<schema::Role> roles;  // empty: DefaultRoles
  std::string endpoint;
  // Linkage evaluators (role linkage-evaluator): the VOPRF public key, 32 bytes
  // (PROTOCOL.md 13.3). No proof of possession is needed: an evaluator answering without
  // the matching private key fails every agency's DLEQ check.
  Bytes linkage_key;
};

std::vector<schema::Role> DefaultRoles(schema::PartyKind kind, schema::AgencyType type);

// The public record a party hands to the authority. previous: the identity being rotated
// out (its signature endorses the new keys), or nullptr for a new party.
Result<schema::SignedPartyRecord> MakePartyRecord(const Identity& identity, const Listing& listing,
                                                  UnixMillis now, const Identity* previous);

// Proof of possession and prekey signatures; the record lists exactly one ACTIVE key.
Status VerifyPartyRecord(const schema::SignedPartyRecord& record);

Result<schema::SignedPartyRecord> ReadPartyRecordFile(const std::string& path);
Status WritePartyRecordFile(const std::string& path, const schema::SignedPartyRecord& record);

// ---- Issuing (authority side) ----

struct DirectoryEdit {
  // New parties, listing changes, prekey updates and key rotations.
  std::vector<schema::SignedPartyRecord> upserts;
  // Parties to revoke: cut off, all keys revoked.
  std::vector<std::string> revoke;
  // Rotations whose old key was compromised: the old key becomes REVOKED, not RETIRED.
  std::vector<std::string> compromised;
  // Accept a rotation that the old key did not endorse (the authority has checked the
  // party out of band, for example after the old key was lost).
  bool allow_unendorsed_rotation = false;
};

// The next directory: base (or nothing for the first) with the edit applied, serial + 1.
Result<schema::Directory> NextDirectory(const schema::Directory* base,
                                        const std::string& federation, const DirectoryEdit& edit,
                                        UnixMillis now, UnixMillis validity_ms);

// REQUIRES: authority.kind() == kAuthority.
schema::SignedDirectory SignDirectory(const schema::Directory& directory,
                                      const Identity& authority);

Result<schema::SignedDirectory> ReadDirectoryFile(const std::string& path);
Status WriteDirectoryFile(const std::string& path, const schema::SignedDirectory& directory);
Bytes DirectoryHash(const schema::SignedDirectory& directory);

// ---- Verifying ----

struct VerifiedDirectory {
  schema::SignedDirectory signed_directory;
  bool in_grace = false;  // expired, but within kDirectoryGraceMs: warn loudly
};

// Signature under the anchor and expiry (not rollback: see TrustState).
Result<VerifiedDirectory> VerifyDirectory(ByteView signed_directory_bytes,
                                          const TrustAnchor& anchor, UnixMillis now);

// The highest directory serial (and its hash) a verifier has accepted, in a file.
class TrustState {
 public:
  // A missing file is a fresh state (serial 0); a damaged file is an error.
  static Result<TrustState> Open(const std::string& path);

  uint64_t highest_serial() const { return serial_; }

  // Refuses a lower serial, or the same serial with different bytes.
  Status Check(const schema::SignedDirectory& directory) const;
  // Check, then persist the new highest serial (atomic write).
  Status Accept(const schema::SignedDirectory& directory);

 private:
  std::string path_;
  uint64_t serial_ = 0;
  Bytes hash_;
};

// VerifyDirectory, then TrustState::Accept.
Result<VerifiedDirectory> LoadAndAcceptDirectory(const std::string& directory_path,
                                                 const TrustAnchor& anchor, TrustState& state,
                                                 UnixMillis now);

// ---- Lookups ----

// The key a party signed with, if it may be trusted for a signature made at signed_at:
// ACTIVE keys of active parties; RETIRED keys for signatures made before retirement
// and checked within kRetiredKeyAcceptMs of it; never REVOKED keys or revoked parties.
Result<const schema::KeyRecord*> FindSigningKey(const schema::Directory& directory,
                                                std::string_view party_id, ByteView key_id,
                                                UnixMillis signed_at, UnixMillis now);

// A signed prekey of owner's key generation `keys`: signed by its signing key, naming
// owner, an X25519 key, valid for a non-empty window of at most kPrekeyLifetimeMs.
Status CheckSignedPrekey(const schema::Party& owner, const schema::KeyRecord& keys,
                         const schema::SignedPrekey& prekey);

struct RecipientPrekey {
  std::string agency_id;
  Bytes public_key;
  Bytes prekey_id;
};

// The newest valid prekey of an active agency, its signature checked.
Result<RecipientPrekey> CurrentPrekey(const schema::Directory& directory,
                                      std::string_view agency_id, UnixMillis now);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_DIRECTORY_H_
