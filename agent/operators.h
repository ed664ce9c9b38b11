// Operator accounts of an agency's agent (issue 18 item 1): the people who act through the
// agent, each with a password, a role and an Ed25519 key pair of their own.
//
// The store is one JSON file, <data_dir>/operators.json, mode 0600, replaced atomically on
// every change under an exclusive flock of <file>.lock (the administrator's CLI and the
// daemon's logins may run at once). Per operator it holds:
//   - the password's Argon2id hash (crypto_pwhash_str, INTERACTIVE limits or more; the
//     salt is inside the string);
//   - the public signing key, and the secret key sealed with XChaCha20-Poly1305 under a
//     key derived from the password by crypto_pwhash (Argon2id) with a salt of its own,
//     the operator's name and public key as associated data: the agent can sign as the
//     operator only while they are logged in (Unlock);
//   - role (caseworker, supervisor, administrator, read-only) and whether the account is
//     active. A disabled account keeps its record and key (audit history) and refuses login.
// Neither a password nor a secret key is ever in the file, a log line or an error message.
//
// Thread safety: OperatorStore has no state besides its path; concurrent calls (threads or
// processes) are serialised by the flock. OperatorKey is immutable once made.
#ifndef REFBUS_AGENT_OPERATORS_H_
#define REFBUS_AGENT_OPERATORS_H_

#include <sodium.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/operator_roster.h"
#include "keys/secret.h"

namespace refbus::agent {

enum class OperatorRole { kCaseworker, kSupervisor, kAdministrator, kReadOnly };

std::string_view RoleName(OperatorRole role);  // "caseworker", ..., "read-only"
Result<OperatorRole> ParseRole(std::string_view name);

// Operator names: 1 to 32 of [a-z0-9._-], starting with a letter or digit. The names
// "service" and "service:*" are reserved for the API token's service account.
Status CheckOperatorName(std::string_view name);

// Passwords: 10 to 1024 bytes.
inline constexpr size_t kMinPasswordBytes = 10;
inline constexpr size_t kMaxPasswordBytes = 1024;

// A label no record uses (the key tests sign with it); the actions operators sign have
// one label per record type, in keys/operator_signature.h.
inline constexpr std::string_view kLabelOperatorAction = "refbus/v1/operator-action";

// One account as stored (no secret in the clear).
struct OperatorRecord {
  std::string name;
  OperatorRole role = OperatorRole::kCaseworker;
  bool active = true;
  std::string password_hash;  // crypto_pwhash_str's string
  Bytes public_key;           // Ed25519, 32 bytes
  Bytes key_salt;             // crypto_pwhash_SALTBYTES
  Bytes key_nonce;            // crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
  Bytes sealed_secret;        // the 64-byte Ed25519 secret key, sealed (+16 bytes tag)
  UnixMillis created_at_ms = 0;
  UnixMillis changed_at_ms = 0;
};

// A logged-in operator's unsealed signing key. Move-only; the secret lives in sodium_malloc
// memory and is wiped when the OperatorKey is destroyed.
class OperatorKey {
 public:
  OperatorKey(std::string name, OperatorRole role, Bytes public_key,
              keys::SecretKey<crypto_sign_SECRETKEYBYTES> secret)
      : name_(std::move(name)),
        role_(role),
        public_key_(std::move(public_key)),
        secret_(std::move(secret)) {}

  const std::string& name() const { return name_; }
  OperatorRole role() const { return role_; }
  const Bytes& public_key() const { return public_key_; }
  // Ed25519 over label || 0x00 || body (keys/crypto.h), verifiable with VerifySignature.
  Bytes Sign(std::string_view label, ByteView body) const;

 private:
  std::string name_;
  OperatorRole role_;
  Bytes public_key_;
  keys::SecretKey<crypto_sign_SECRETKEYBYTES> secret_;
};

// The store file of the agent with this data directory.
inline std::string OperatorStorePath(const std::string& data_dir) {
  return data_dir + "/operators.json";
}

class OperatorStore {
 public:
  // path: the store file (<data_dir>/operators.json); it need not exist yet.
  explicit OperatorStore(std::string path) : path_(std::move(path)) {}

  const std::string& path() const { return path_; }

  // A new active account with a fresh key pair. AlreadyExists for a taken name.
  Status Add(const std::string& name, OperatorRole role, ByteView password, UnixMillis now);
  // Every account, in name order; an empty list when the file does not exist.
  Result<std::vector<OperatorRecord>> List() const;
  Result<OperatorRecord> Find(const std::string& name) const;  // NotFound if absent
  Status SetActive(const std::string& name, bool active, UnixMillis now);
  Status SetRole(const std::string& name, OperatorRole role, UnixMillis now);
  // With old_password: the same key pair, re-sealed under the new password (the old one
  // must be right). Without (the administrator resets a forgotten password): a new key
  // pair, since the old secret cannot be unsealed; the roster shows the new public key.
  Status SetPassword(const std::string& name, std::optional<ByteView> old_password,
                     ByteView new_password, UnixMillis now);

  // Checks the password and unseals the key. Unauthenticated for an unknown name or a
  // wrong password (the same message for both); PermissionDenied for a disabled account.
  Result<OperatorKey> Unlock(const std::string& name, ByteView password) const;

 private:
  std::string path_;
};

// The agency's roster of every account (keys/operator_roster.h; unsigned). Its version is
// the time of the latest change to any account, so a later roster is larger.
keys::OperatorRoster RosterOf(const std::string& agency, const std::vector<OperatorRecord>& records,
                              UnixMillis now);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_OPERATORS_H_
