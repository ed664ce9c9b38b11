// The key ceremony: the steps each party runs on its own machine, in its own folder.
//
// Party folder (agency, broker, auditor):
//   identity.key   secret keys, 0600, optionally passphrase-protected
//   <id>.record    public record to hand to the authority
//   authority.pub  the authority's public record (trust anchor), received out of band
//   directory      the current signed directory, received from the authority or broker
//   trust-state    highest directory serial accepted here (rollback protection), 0600
// Authority folder:
//   identity.key   the authority's signing key (keep it offline)
//   authority.pub  the trust anchor to give every party
//   directory      the last directory it issued (the base of the next one)
//
// Only public files ever cross between folders. refbus-keys and `federation init` both
// use these functions, so the demo and tests run the same ceremony as a real federation.
//
// Thread safety: functions touch files; do not run two on one folder at once.
#ifndef REFBUS_KEYS_CEREMONY_H_
#define REFBUS_KEYS_CEREMONY_H_

#include <ostream>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "keys/directory.h"
#include "keys/identity.h"
#include "keys/secret.h"

namespace refbus::keys {

inline constexpr char kIdentityFile[] = "identity.key";
inline constexpr char kAnchorFile[] = "authority.pub";
inline constexpr char kDirectoryFile[] = "directory";
inline constexpr char kTrustStateFile[] = "trust-state";

std::string JoinPath(const std::string& dir, const std::string& name);
std::string RecordFileName(const std::string& party_id);  // "<id>.record"

// A linkage evaluator's public key as refbus-broker linkage-key prints it (64 hex digits)
// for a listing; InvalidArgument otherwise. The directory checks the point itself.
Result<Bytes> ParseLinkageKeyHex(std::string_view hex);

// Authority: new signing key in dir, and dir/authority.pub. Refuses to overwrite keys.
Result<TrustAnchor> InitAuthority(const std::string& dir, const std::string& authority_id,
                                  const SecretBuffer* passphrase, UnixMillis now);

// Party: new keys in dir, and dir/<id>.record. Refuses to overwrite keys.
Result<schema::SignedPartyRecord> InitParty(const std::string& dir, const std::string& party_id,
                                            schema::PartyKind kind, const Listing& listing,
                                            const SecretBuffer* passphrase, UnixMillis now);

// Party: adds a prekey valid from now, wipes prekey secrets expired for longer than
// kPrekeyKeepAfterExpiryMs, rewrites identity.key and <id>.record (listing unchanged).
Result<schema::SignedPartyRecord> RotatePrekey(const std::string& dir,
                                               const SecretBuffer* passphrase, UnixMillis now);

// Party: new identity; the old key file moves to dir/retired/<key id>.key; the new record
// is endorsed by the old key. Rewrites identity.key and <id>.record.
Result<schema::SignedPartyRecord> RotateIdentity(const std::string& dir,
                                                 const SecretBuffer* passphrase, UnixMillis now);

// Agency: the same keys under a new home broker (its mailbox moves there once the authority
// issues a directory with this record; brokers re-route what they hold for it). Rewrites
// <id>.record; identity.key is unchanged.
Result<schema::SignedPartyRecord> MoveHome(const std::string& dir, const std::string& home_broker,
                                           const SecretBuffer* passphrase, UnixMillis now);

struct IssueRequest {
  std::string authority_dir;
  const SecretBuffer* passphrase = nullptr;
  std::string federation;  // required for the first directory
  std::vector<std::string> record_paths;
  DirectoryEdit edit;  // upserts are filled from record_paths
  UnixMillis validity_ms = kDefaultDirectoryValidityMs;
  std::string out_path;  // also written to authority_dir/directory
};

// Authority: next directory from its last one (or the first), signed.
Result<schema::SignedDirectory> IssueDirectory(const IssueRequest& request, UnixMillis now);

// Any party: verify dir/directory (or path) against dir/authority.pub and dir/trust-state.
Result<VerifiedDirectory> AcceptDirectoryInFolder(const std::string& dir,
                                                  const std::string& directory_path,
                                                  UnixMillis now);

// Runs the whole ceremony from a TOML manifest into out_dir: one folder per party (keys
// generated there), public records exchanged through out_dir/exchange, the authority's
// directory distributed back, and every party verifying its copy. Progress goes to log.
Status FederationInit(const std::string& manifest_path, const std::string& out_dir, UnixMillis now,
                      std::ostream& log);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_CEREMONY_H_
