#include "keys/identity.h"

#include <sodium.h>

#include <algorithm>

#include "keys/crypto.h"
#include "schema/codec.h"

namespace refbus::keys {

Result<Identity> Identity::Generate(std::string party_id, schema::PartyKind kind, UnixMillis now,
                                    UnixMillis prekey_lifetime_ms) {
  if (!schema::IsValidPartyId(party_id)) {
    return InvalidArgument("'" + party_id +
                           "' is not a valid party id: use 3 to 48 characters a-z, 0-9 and '-'");
  }
  REFBUS_ASSIGN_OR_RETURN(auto signing, SecretKey<kSigningSecretBytes>::Allocate());
  Bytes signing_public(crypto_sign_PUBLICKEYBYTES);
  crypto_sign_keypair(signing_public.data(), signing.data());

  std::unique_ptr<SecretKey<kX25519SecretBytes>> transport;
  if (kind != schema::PartyKind::kAuthority) {
    REFBUS_ASSIGN_OR_RETURN(auto t, SecretKey<kX25519SecretBytes>::Allocate());
    randombytes_buf(t.data(), t.size());
    transport = std::make_unique<SecretKey<kX25519SecretBytes>>(std::move(t));
  }
  REFBUS_ASSIGN_OR_RETURN(Identity id, FromSecrets(std::move(party_id), kind, std::move(signing),
                                                   std::move(transport), {}));
  if (kind == schema::PartyKind::kAgency) {
    REFBUS_ASSIGN_OR_RETURN(auto unused, id.AddPrekey(now, now + prekey_lifetime_ms));
    (void)unused;
  }
  return id;
}

Result<Identity> Identity::FromSecrets(std::string party_id, schema::PartyKind kind,
                                       SecretKey<kSigningSecretBytes> signing,
                                       std::unique_ptr<SecretKey<kX25519SecretBytes>> transport,
                                       std::vector<PrekeyEntry> prekeys) {
  Identity id;
  id.party_id_ = std::move(party_id);
  id.kind_ = kind;
  id.signing_public_.resize(crypto_sign_PUBLICKEYBYTES);
  // The public key is the second half of libsodium's Ed25519 secret key; recompute it
  // from the seed so a damaged file cannot pair a seed with a foreign public key.
  {
    StackSecret<crypto_sign_SEEDBYTES> seed;
    crypto_sign_ed25519_sk_to_seed(seed.data(), signing.data());
    StackSecret<crypto_sign_SECRETKEYBYTES> check;
    crypto_sign_seed_keypair(id.signing_public_.data(), check.data(), seed.data());
    if (sodium_memcmp(check.data(), signing.data(), crypto_sign_SECRETKEYBYTES) != 0) {
      return Unauthenticated("signing key is inconsistent (seed and public key do not match)");
    }
  }
  id.signing_key_id_ = KeyId(KeyUse::kSigning, id.signing_public_);
  id.signing_secret_ = std::make_unique<SecretKey<kSigningSecretBytes>>(std::move(signing));
  if (transport != nullptr) {
    id.transport_public_.resize(crypto_scalarmult_BYTES);
    crypto_scalarmult_base(id.transport_public_.data(), transport->data());
    id.transport_secret_ = std::move(transport);
  }
  for (auto& p : prekeys) {
    Bytes pub(crypto_scalarmult_BYTES);
    crypto_scalarmult_base(pub.data(), p.secret.data());
    if (pub != p.signed_prekey.prekey.public_key) {
      return Unauthenticated("a prekey secret does not match its public key");
    }
  }
  id.prekeys_ = std::move(prekeys);
  return id;
}

Bytes Identity::Sign(std::string_view label, ByteView body) const {
  Bytes in = SignatureInput(label, body);
  Bytes sig(crypto_sign_BYTES);
  crypto_sign_detached(sig.data(), nullptr, in.data(), in.size(), signing_secret_->data());
  return sig;
}

Result<schema::SignedPrekey> Identity::AddPrekey(UnixMillis not_before_ms,
                                                 UnixMillis not_after_ms) {
  if (not_after_ms <= not_before_ms) return InvalidArgument("prekey lifetime is empty");
  REFBUS_ASSIGN_OR_RETURN(auto secret, SecretKey<kX25519SecretBytes>::Allocate());
  randombytes_buf(secret.data(), secret.size());
  schema::Prekey p;
  p.owner_id = party_id_;
  p.public_key.resize(crypto_scalarmult_BYTES);
  crypto_scalarmult_base(p.public_key.data(), secret.data());
  p.not_before_ms = not_before_ms;
  p.not_after_ms = not_after_ms;
  schema::SignedPrekey sp;
  sp.prekey_bytes = schema::EncodePrekey(p);
  sp.signature = Sign(kLabelPrekey, sp.prekey_bytes);
  sp.prekey = std::move(p);
  PrekeyEntry e{sp, KeyId(KeyUse::kPrekey, sp.prekey.public_key), std::move(secret)};
  prekeys_.push_back(std::move(e));
  return sp;
}

const PrekeyEntry* Identity::FindPrekey(ByteView prekey_id) const {
  for (const auto& p : prekeys_) {
    if (ConstantTimeEquals(p.id, prekey_id)) return &p;
  }
  return nullptr;
}

Status Identity::AdoptPrekeys(Identity&& fresh) {
  if (fresh.party_id_ != party_id_ || fresh.kind_ != kind_ ||
      !ConstantTimeEquals(fresh.signing_public_, signing_public_)) {
    return FailedPrecondition("the key file now holds other keys than the ones " + party_id_ +
                              " runs with (" + Fingerprint(fresh.signing_key_id_) + " instead of " +
                              Fingerprint(signing_key_id_) + "): restart with its new directory");
  }
  prekeys_ = std::move(fresh.prekeys_);  // the replaced entries wipe their secrets
  return Status::Ok();
}

size_t Identity::PrunePrekeys(UnixMillis now, UnixMillis keep_after_expiry_ms,
                              std::vector<schema::Prekey>* wiped) {
  auto old = std::stable_partition(prekeys_.begin(), prekeys_.end(), [&](const PrekeyEntry& p) {
    return p.signed_prekey.prekey.not_after_ms + keep_after_expiry_ms >= now;
  });
  size_t n = static_cast<size_t>(prekeys_.end() - old);
  if (wiped != nullptr) {
    for (auto it = old; it != prekeys_.end(); ++it) wiped->push_back(it->signed_prekey.prekey);
  }
  prekeys_.erase(old, prekeys_.end());  // SecretKey destructors wipe the secrets
  return n;
}

}  // namespace refbus::keys
