// A party's secret keys: its Identity.
//
// An Identity holds, in locked memory:
//   - the Ed25519 signing key (signs envelopes, consent grants, prekeys, party records,
//     and for brokers checkpoints; for the authority, directories);
//   - the CURVE (X25519) transport key for ZeroMQ (not for the authority);
//   - the X25519 prekey secrets (agencies), each with its signed public Prekey.
// Keys are made only by Generate/AddPrekey (libsodium keygen); callers never supply key
// bytes. Secrets are freed and wiped with the Identity; a pruned prekey's secret is wiped
// at once (forward secrecy for messages sealed to it).
//
// Thread safety: const methods may be called concurrently; mutations need external
// synchronization.
#ifndef REFBUS_KEYS_IDENTITY_H_
#define REFBUS_KEYS_IDENTITY_H_

#include <memory>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/secret.h"
#include "schema/types.h"

namespace refbus::keys {

inline constexpr size_t kSigningSecretBytes = 64;  // libsodium Ed25519: seed || public key
inline constexpr size_t kX25519SecretBytes = 32;

struct PrekeyEntry {
  schema::SignedPrekey signed_prekey;
  Bytes id;  // KeyId(kPrekey, public key)
  SecretKey<kX25519SecretBytes> secret;
};

class Identity {
 public:
  // New keys for a party. Agencies also get one prekey valid from now for prekey_lifetime.
  static Result<Identity> Generate(std::string party_id, schema::PartyKind kind, UnixMillis now,
                                   UnixMillis prekey_lifetime_ms);

  Identity(Identity&&) noexcept = default;
  Identity& operator=(Identity&&) noexcept = default;

  const std::string& party_id() const { return party_id_; }
  schema::PartyKind kind() const { return kind_; }

  const Bytes& signing_public_key() const { return signing_public_; }
  const Bytes& signing_key_id() const { return signing_key_id_; }
  bool has_transport() const { return !transport_public_.empty(); }
  const Bytes& transport_public_key() const { return transport_public_; }
  // For the ZeroMQ CURVE socket option only. Valid while the Identity lives.
  const SecretKey<kX25519SecretBytes>& transport_secret_key() const { return *transport_secret_; }

  // Ed25519 over label || 0x00 || body (crypto.h).
  Bytes Sign(std::string_view label, ByteView body) const;

  // Makes a new prekey, signs it, keeps its secret. Returns the signed public prekey.
  Result<schema::SignedPrekey> AddPrekey(UnixMillis not_before_ms, UnixMillis not_after_ms);
  // The prekey with this id, or nullptr (unknown or already pruned).
  const PrekeyEntry* FindPrekey(ByteView prekey_id) const;
  const std::vector<PrekeyEntry>& prekeys() const { return prekeys_; }
  // Takes the prekeys of `fresh` (the same party's key file, read again after another
  // process added or pruned prekeys) in place of this identity's: secrets that `fresh` no
  // longer holds are wiped. kFailedPrecondition if fresh is another party or another
  // signing key (a rotated identity needs a restart, with its new directory).
  Status AdoptPrekeys(Identity&& fresh);
  // Wipes prekey secrets whose not_after is more than keep_after_expiry_ms before now.
  // Returns how many were removed; if wiped is not null, appends their public prekeys.
  size_t PrunePrekeys(UnixMillis now, UnixMillis keep_after_expiry_ms,
                      std::vector<schema::Prekey>* wiped = nullptr);

  // Key-file support (keyfile.cpp): the raw secrets, for serialization into locked memory.
  const SecretKey<kSigningSecretBytes>& signing_secret_key() const { return *signing_secret_; }
  static Result<Identity> FromSecrets(std::string party_id, schema::PartyKind kind,
                                      SecretKey<kSigningSecretBytes> signing,
                                      std::unique_ptr<SecretKey<kX25519SecretBytes>> transport,
                                      std::vector<PrekeyEntry> prekeys);

 private:
  Identity() = default;

  std::string party_id_;
  schema::PartyKind kind_ = schema::PartyKind::kUnspecified;
  // unique_ptr keeps Identity movable while SecretKey stays at a fixed address.
  std::unique_ptr<SecretKey<kSigningSecretBytes>> signing_secret_;
  Bytes signing_public_;
  Bytes signing_key_id_;
  std::unique_ptr<SecretKey<kX25519SecretBytes>> transport_secret_;
  Bytes transport_public_;
  std::vector<PrekeyEntry> prekeys_;
};

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_IDENTITY_H_
