// Sealing and opening envelopes (PROTOCOL.md "Envelope").
//
// Seal: a fresh content key K encrypts the content with XChaCha20-Poly1305, with the
// serialized header as associated data; the header carries a key commitment to K and K
// wrapped to each recipient's signed X25519 prekey through an ephemeral X25519 key; the
// sender signs header and ciphertext with Ed25519 (non-repudiation: auditors can prove
// who sent what). Recipients are inside the signature, so nobody can re-address it.
//
// VerifyEnvelope is what a broker runs on a relayed envelope, and a recipient on every
// one: times, sender key, signature; no secrets needed. CheckEnvelopeExceptSignature is
// what the sender's home broker runs on an envelope submitted on the sender's own CURVE
// session (SECURITY.md, "The home broker does not check the envelope signature").
// OpenEnvelope is what a recipient runs: VerifyEnvelope, then its own wrapped key, prekey
// validity, key commitment and content decryption. Every failure is a distinct,
// readable Status; no failure aborts.
//
// Secrets: K, the ephemeral secret and shared secrets live on the stack and are wiped
// before return on every path. Opened content is returned in a Plaintext, which wipes
// itself.
//
// Thread safety: free functions, thread-safe for distinct outputs.
#ifndef REFBUS_KEYS_ENVELOPE_H_
#define REFBUS_KEYS_ENVELOPE_H_

#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/status.h"
#include "keys/directory.h"
#include "keys/identity.h"
#include "keys/secret.h"
#include "schema/types.h"

namespace refbus::keys {

// Longest an envelope may stay valid (expires_at - created_at).
inline constexpr UnixMillis kMaxEnvelopeLifetimeMs = 90 * kMillisPerDay;

struct SealRequest {
  schema::MessageKind kind = schema::MessageKind::kUnspecified;
  std::vector<RecipientPrekey> recipients;  // from CurrentPrekey
  std::string case_ref;
  Bytes consent_grant_id;  // empty or 16 bytes
  schema::Purpose purpose = schema::Purpose::kUnspecified;
  std::vector<schema::DataCategory> categories;
  UnixMillis now = 0;
  UnixMillis lifetime_ms = 30 * kMillisPerDay;
  Bytes message_id;  // empty: a random one
};

// Returns the serialized SealedEnvelope (what is submitted, stored and delivered).
Result<Bytes> SealEnvelope(const Identity& sender, const SealRequest& request, ByteView content);

// Which check refused an envelope (for nack reasons and audit entries).
enum class EnvelopeCheck { kOk, kMalformed, kTime, kSenderKey, kSignature };

// Decodes and checks an envelope without opening it: version, lifetime and clock skew,
// sender key in the directory (FindSigningKey), signature. If failed is not null it is
// set to the check that refused the envelope.
Result<schema::SealedEnvelope> VerifyEnvelope(ByteView envelope_bytes,
                                              const schema::Directory& directory, UnixMillis now,
                                              EnvelopeCheck* failed = nullptr);

// VerifyEnvelope without the Ed25519 check: decode, lifetime and clock skew, the sender's
// signing key in the directory for the envelope's time, the sender an agency. Never
// kSignature in failed.
Result<schema::SealedEnvelope> CheckEnvelopeExceptSignature(ByteView envelope_bytes,
                                                            const schema::Directory& directory,
                                                            UnixMillis now,
                                                            EnvelopeCheck* failed = nullptr);

struct OpenedEnvelope {
  schema::SealedEnvelope envelope;
  Plaintext content;
};

Result<OpenedEnvelope> OpenEnvelope(const Identity& recipient, ByteView envelope_bytes,
                                    const schema::Directory& directory, UnixMillis now);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_ENVELOPE_H_
