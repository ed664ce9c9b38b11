// Signing, verification and key ids with refbus's domain separation (PROTOCOL.md).
//
// Every signature refbus makes is Ed25519 over  label || 0x00 || body,  where label names
// the object type ("refbus/v1/directory"): a signature over one type of object can never
// be replayed as another. Verification is [[nodiscard]] and works on the exact bytes that
// were received.
//
// Thread safety: free functions, thread-safe.
#ifndef REFBUS_KEYS_CRYPTO_H_
#define REFBUS_KEYS_CRYPTO_H_

#include <string>
#include <string_view>

#include "core/bytes.h"

namespace refbus::keys {

// Domain-separation labels. Never change one: stored signatures depend on them.
inline constexpr std::string_view kLabelDirectory = "refbus/v1/directory";
inline constexpr std::string_view kLabelPartyRecord = "refbus/v1/party-record";
inline constexpr std::string_view kLabelPrekey = "refbus/v1/prekey";
inline constexpr std::string_view kLabelEnvelope = "refbus/v1/envelope";
inline constexpr std::string_view kLabelConsentGrant = "refbus/v1/consent-grant";
inline constexpr std::string_view kLabelConsentCountersign = "refbus/v1/consent-countersign";
inline constexpr std::string_view kLabelConsentRevocation = "refbus/v1/consent-revocation";
inline constexpr std::string_view kLabelPurgeConfirmation = "refbus/v1/purge-confirmation";
inline constexpr std::string_view kLabelAccessRecord = "refbus/v1/access-record";
inline constexpr std::string_view kLabelContent = "refbus/v1/content";
inline constexpr std::string_view kLabelWrap = "refbus/v1/wrap";
inline constexpr std::string_view kLabelKeyCommitment = "refbus/v1/key-commitment";
inline constexpr std::string_view kLabelKeyFileChecksum = "refbus/v1/keyfile-checksum";
inline constexpr std::string_view kLabelKeyFileAead = "refbus/v1/keyfile";

// What a public key is for; part of its key id.
enum class KeyUse { kSigning, kTransport, kPrekey };

// Key id: the first 16 bytes of BLAKE2b-256("refbus/v1/key-id/<use>" || 0x00 || public_key).
Bytes KeyId(KeyUse use, ByteView public_key);

// label || 0x00 || body
Bytes SignatureInput(std::string_view label, ByteView body);

// Ed25519 verification of a signature made by SignDetached (identity.h) with the same
// label. False for any wrong size, key, label, body or signature.
[[nodiscard]] bool VerifySignature(ByteView public_key, std::string_view label, ByteView body,
                                   ByteView signature);

// Constant-time equality of two byte strings (false if sizes differ).
[[nodiscard]] bool ConstantTimeEquals(ByteView a, ByteView b);

// Short fingerprint for people: key id as hex in groups of four ("3f2a-91c0-...").
std::string Fingerprint(ByteView key_id);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_CRYPTO_H_
