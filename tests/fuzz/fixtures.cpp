#include "tests/fuzz/fixtures.h"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "keys/crypto.h"
#include "keys/secret.h"
#include "schema/codec.h"

namespace refbus::fuzz {
namespace {

[[noreturn]] void Die(const char* what, const Status& s) {
  std::fprintf(stderr, "fuzz fixture: %s: %s\n", what, s.ToString().c_str());
  std::abort();
}

template <typename T>
T Take(Result<T> r, const char* what) {
  if (!r.ok()) Die(what, r.status());
  return std::move(*r);
}

// BLAKE2b-256("refbus-fuzz/<use>/" || party_id) into out (32 bytes).
void Derive(std::string_view use, const std::string& party_id, uint8_t* out) {
  std::string in = "refbus-fuzz/" + std::string(use) + "/" + party_id;
  crypto_generichash(out, 32, reinterpret_cast<const uint8_t*>(in.data()), in.size(), nullptr, 0);
}

Fixture Build() {
  if (Status s = keys::InitSodium(); !s.ok()) Die("libsodium", s);
  const auto agency = [](std::string_view id) {
    return FixedIdentity(std::string(id), schema::PartyKind::kAgency);
  };
  keys::Identity authority =
      FixedIdentity(std::string(kAuthorityId), schema::PartyKind::kAuthority);
  keys::Identity broker = FixedIdentity(std::string(kBrokerId), schema::PartyKind::kBroker);
  keys::Identity sender = agency(kSenderId);
  keys::Identity recipient = agency(kRecipientId);
  keys::Identity auditor = FixedIdentity(std::string(kAuditorId), schema::PartyKind::kAuditor);

  const UnixMillis issued = kNow - kMillisPerHour;
  keys::DirectoryEdit edit;
  keys::Listing broker_listing;
  broker_listing.display_name = "Fuzz regional broker";
  broker_listing.region = "fuzz";
  broker_listing.endpoint = "tcp://127.0.0.1:7450";
  edit.upserts.push_back(
      Take(keys::MakePartyRecord(broker, broker_listing, issued, nullptr), "broker record"));
  keys::Listing a;
  a.display_name = "Fuzz Wee Center";
  a.agency_type = schema::AgencyType::kWeeCenter;
  a.region = "fuzz";
  a.home_broker = std::string(kBrokerId);
  edit.upserts.push_back(Take(keys::MakePartyRecord(sender, a, issued, nullptr), "sender record"));
  keys::Listing b = a;
  b.display_name = "Fuzz Counseling Center";
  b.agency_type = schema::AgencyType::kCounselingCenter;
  edit.upserts.push_back(
      Take(keys::MakePartyRecord(recipient, b, issued, nullptr), "recipient record"));
  keys::Listing auditor_listing;
  auditor_listing.display_name = "Fuzz audit office";
  auditor_listing.region = "fuzz";
  edit.upserts.push_back(
      Take(keys::MakePartyRecord(auditor, auditor_listing, issued, nullptr), "auditor record"));
  schema::Directory d = Take(keys::NextDirectory(nullptr, std::string(kFederation), edit, issued,
                                                 keys::kDefaultDirectoryValidityMs),
                             "directory");
  schema::SignedDirectory sd = keys::SignDirectory(d, authority);
  Bytes sd_bytes = schema::EncodeSignedDirectory(sd);
  keys::TrustAnchor anchor{authority.party_id(), authority.signing_public_key(),
                           authority.signing_key_id()};
  keys::NoteVerifier log_key =
      Take(keys::NoteVerifier::Create(std::string(kLogOrigin), keys::NoteKeyType::kEd25519,
                                      broker.signing_public_key()),
           "log key");
  keys::NoteVerifier cosigner_key =
      Take(keys::NoteVerifier::Create(std::string(kCosignerName), keys::NoteKeyType::kCosignatureV1,
                                      auditor.signing_public_key()),
           "cosigner key");
  return Fixture{std::move(authority),   std::move(broker),  std::move(sender),
                 std::move(recipient),   std::move(auditor), std::move(sd),
                 std::move(sd_bytes),    std::move(anchor),  std::move(log_key),
                 std::move(cosigner_key)};
}

}  // namespace

keys::Identity FixedIdentity(const std::string& party_id, schema::PartyKind kind) {
  if (Status s = keys::InitSodium(); !s.ok()) Die("libsodium", s);
  auto signing = Take(keys::SecretKey<keys::kSigningSecretBytes>::Allocate(), "signing key");
  {
    keys::StackSecret<crypto_sign_SEEDBYTES> seed;
    Derive("signing", party_id, seed.data());
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_seed_keypair(pk, signing.data(), seed.data());
  }
  std::unique_ptr<keys::SecretKey<keys::kX25519SecretBytes>> transport;
  if (kind != schema::PartyKind::kAuthority) {
    auto t = Take(keys::SecretKey<keys::kX25519SecretBytes>::Allocate(), "transport key");
    Derive("transport", party_id, t.data());
    transport = std::make_unique<keys::SecretKey<keys::kX25519SecretBytes>>(std::move(t));
  }
  std::vector<keys::PrekeyEntry> prekeys;
  if (kind == schema::PartyKind::kAgency) {
    auto secret = Take(keys::SecretKey<keys::kX25519SecretBytes>::Allocate(), "prekey");
    Derive("prekey", party_id, secret.data());
    schema::Prekey p;
    p.owner_id = party_id;
    p.public_key.resize(crypto_scalarmult_BYTES);
    crypto_scalarmult_base(p.public_key.data(), secret.data());
    p.not_before_ms = kNow - kMillisPerDay;
    p.not_after_ms = p.not_before_ms + keys::kPrekeyLifetimeMs;
    schema::SignedPrekey sp;
    sp.prekey_bytes = schema::EncodePrekey(p);
    // What Identity::AddPrekey signs, made here because the identity does not exist yet.
    Bytes in = keys::SignatureInput(keys::kLabelPrekey, sp.prekey_bytes);
    sp.signature.resize(crypto_sign_BYTES);
    crypto_sign_detached(sp.signature.data(), nullptr, in.data(), in.size(), signing.data());
    sp.prekey = std::move(p);
    Bytes id = keys::KeyId(keys::KeyUse::kPrekey, sp.prekey.public_key);
    prekeys.push_back(keys::PrekeyEntry{std::move(sp), std::move(id), std::move(secret)});
  }
  return Take(keys::Identity::FromSecrets(party_id, kind, std::move(signing), std::move(transport),
                                          std::move(prekeys)),
              "identity");
}

const keys::MemoryTree& Tree() {
  static const keys::MemoryTree tree = [] {
    keys::MemoryTree t;
    for (uint64_t i = 0; i < kTreeLeaves; ++i) {
      t.AppendEntry(AsBytes("refbus-fuzz leaf " + std::to_string(i)));
    }
    return t;
  }();
  return tree;
}

const Fixture& Get() {
  static const Fixture fixture = Build();
  return fixture;
}

}  // namespace refbus::fuzz
