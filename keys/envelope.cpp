#include "keys/envelope.h"

#include <sodium.h>

#include "keys/crypto.h"
#include "schema/codec.h"

namespace refbus::keys {
namespace {

constexpr size_t kKeyBytes = crypto_aead_xchacha20poly1305_ietf_KEYBYTES;
constexpr size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kKeyBytes == 32 && kTagBytes == 16);
static_assert(schema::kWrappedKeyBytes == kKeyBytes + kTagBytes);

// commitment = BLAKE2b-256(key = K, "refbus/v1/key-commitment" || 0x00 || nonce)
void KeyCommitment(const uint8_t* k, ByteView nonce, uint8_t out[32]) {
  Bytes in = SignatureInput(kLabelKeyCommitment, nonce);
  crypto_generichash(out, 32, in.data(), in.size(), k, kKeyBytes);
}

// wrap key = BLAKE2b-256(key = X25519(e, P),
//   "refbus/v1/wrap" || 0x00 || e_pub || P || len(recipient) || recipient || message_id)
void WrapKey(const uint8_t shared[32], ByteView ephemeral_pub, ByteView prekey_pub,
             std::string_view recipient, ByteView message_id, uint8_t out[32]) {
  Bytes in = SignatureInput(kLabelWrap, ephemeral_pub);
  Append(in, prekey_pub);
  AppendLengthPrefixed(in, AsBytes(recipient));
  Append(in, message_id);
  crypto_generichash(out, 32, in.data(), in.size(), shared, 32);
}

// Associated data of a wrapped key: message id || prekey id.
// A new message id: the creation time in milliseconds (48 bits, big-endian), then 80 random
// bits. Ids made later sort later, so the stores that are keyed by message id (the broker's
// envelope records and its table of ids seen, the agents' inboxes) take new ids at the end
// of their B-trees instead of rewriting a random page each: a batch of 64 new envelopes
// dirties a few pages instead of 64 per table. The time says no more than the header's
// created_at does; 80 random bits keep ids from one millisecond apart.
Bytes NewMessageId(UnixMillis now) {
  Bytes id = RandomBytes(schema::kMessageIdBytes);
  uint64_t t = static_cast<uint64_t>(now);
  for (int i = 0; i < 6; ++i) id[static_cast<size_t>(i)] = static_cast<uint8_t>(t >> (8 * (5 - i)));
  return id;
}

Bytes WrapAd(ByteView message_id, ByteView prekey_id) {
  Bytes ad(message_id.begin(), message_id.end());
  Append(ad, prekey_id);
  return ad;
}

Bytes EnvelopeSignatureBody(ByteView header, ByteView ciphertext) {
  Bytes body;
  body.reserve(4 + header.size() + ciphertext.size());
  AppendLengthPrefixed(body, header);
  Append(body, ciphertext);
  return body;
}

const uint8_t kZeroNonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {};

}  // namespace

Result<Bytes> SealEnvelope(const Identity& sender, const SealRequest& req, ByteView content) {
  if (sender.kind() != schema::PartyKind::kAgency) {
    return InvalidArgument("only agencies seal envelopes");
  }
  if (req.recipients.empty()) return InvalidArgument("an envelope needs at least one recipient");
  if (req.recipients.size() > schema::kMaxRecipients) {
    return InvalidArgument("too many recipients (limit " + std::to_string(schema::kMaxRecipients) +
                           ")");
  }
  if (req.lifetime_ms == 0 || req.lifetime_ms > kMaxEnvelopeLifetimeMs) {
    return InvalidArgument("envelope lifetime must be between 1 ms and 90 days");
  }
  if (content.size() + 4096 > schema::kMaxEnvelopeBytes) {
    return ResourceExhausted("content of " + std::to_string(content.size()) +
                             " bytes is too large for one envelope");
  }
  schema::EnvelopeHeader h;
  h.message_id = req.message_id.empty() ? NewMessageId(req.now) : req.message_id;
  if (h.message_id.size() != schema::kMessageIdBytes) {
    return InvalidArgument("message id must be 16 bytes");
  }
  h.kind = req.kind;
  h.sender_id = sender.party_id();
  h.sender_key_id = sender.signing_key_id();
  h.case_ref = req.case_ref;
  h.consent_grant_id = req.consent_grant_id;
  h.purpose = req.purpose;
  h.categories = req.categories;
  h.created_at_ms = req.now;
  h.expires_at_ms = req.now + req.lifetime_ms;
  h.content_nonce = RandomBytes(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  h.key_commitment.resize(32);

  StackSecret<kKeyBytes> k;
  crypto_aead_xchacha20poly1305_ietf_keygen(k.data());
  KeyCommitment(k.data(), h.content_nonce, h.key_commitment.data());

  StackSecret<crypto_scalarmult_SCALARBYTES> eph;
  randombytes_buf(eph.data(), eph.size());
  h.ephemeral_key.resize(crypto_scalarmult_BYTES);
  crypto_scalarmult_base(h.ephemeral_key.data(), eph.data());

  for (const auto& r : req.recipients) {
    if (r.public_key.size() != crypto_scalarmult_BYTES ||
        r.prekey_id.size() != schema::kKeyIdBytes) {
      return InvalidArgument("recipient " + r.agency_id + " has a malformed prekey");
    }
    StackSecret<crypto_scalarmult_BYTES> shared;
    if (crypto_scalarmult(shared.data(), eph.data(), r.public_key.data()) != 0) {
      return Unauthenticated("prekey of recipient " + r.agency_id + " is a weak key");
    }
    StackSecret<kKeyBytes> wrap;
    WrapKey(shared.data(), h.ephemeral_key, r.public_key, r.agency_id, h.message_id, wrap.data());
    Bytes ad = WrapAd(h.message_id, r.prekey_id);
    schema::RecipientKey rk{r.agency_id, r.prekey_id, Bytes(schema::kWrappedKeyBytes)};
    crypto_aead_xchacha20poly1305_ietf_encrypt(rk.wrapped_key.data(), nullptr, k.data(), kKeyBytes,
                                               ad.data(), ad.size(), nullptr, kZeroNonce,
                                               wrap.data());
    h.recipients.push_back(std::move(rk));
  }

  schema::SealedEnvelope e;
  e.header_bytes = schema::EncodeEnvelopeHeader(h);
  // Refuse to emit what a receiver would refuse (bad ids, duplicate recipients, ...).
  REFBUS_ASSIGN_OR_RETURN(auto unused, schema::DecodeEnvelopeHeader(e.header_bytes));
  (void)unused;
  Bytes ad = SignatureInput(kLabelContent, e.header_bytes);
  e.ciphertext.resize(content.size() + kTagBytes);
  crypto_aead_xchacha20poly1305_ietf_encrypt(e.ciphertext.data(), nullptr, content.data(),
                                             content.size(), ad.data(), ad.size(), nullptr,
                                             h.content_nonce.data(), k.data());
  e.signature = sender.Sign(kLabelEnvelope, EnvelopeSignatureBody(e.header_bytes, e.ciphertext));
  return schema::EncodeEnvelope(e);
}

namespace {

Result<schema::SealedEnvelope> CheckEnvelopeFields(ByteView envelope_bytes,
                                                   const schema::Directory& directory,
                                                   UnixMillis now, bool check_signature,
                                                   EnvelopeCheck* failed) {
  EnvelopeCheck unused_check;
  EnvelopeCheck& check = failed != nullptr ? *failed : unused_check;
  check = EnvelopeCheck::kMalformed;
  REFBUS_ASSIGN_OR_RETURN(schema::SealedEnvelope e, schema::DecodeEnvelope(envelope_bytes));
  const auto& h = e.header;
  if (h.expires_at_ms - h.created_at_ms > kMaxEnvelopeLifetimeMs) {
    return Malformed("envelope lifetime is longer than 90 days");
  }
  check = EnvelopeCheck::kTime;
  if (h.created_at_ms > now + kClockSkewMs) {
    return Expired("envelope claims to be created at " + FormatUtc(h.created_at_ms) +
                   ", beyond the allowed clock skew; check the sender's clock");
  }
  if (now >= h.expires_at_ms) {
    return Expired("envelope expired at " + FormatUtc(h.expires_at_ms));
  }
  check = EnvelopeCheck::kSenderKey;
  auto key = FindSigningKey(directory, h.sender_id, h.sender_key_id, h.created_at_ms, now);
  if (!key.ok()) return key.status().WithContext("envelope sender");
  const schema::Party* sender = directory.Find(h.sender_id);
  if (sender->kind != schema::PartyKind::kAgency) {
    return PermissionDenied("envelope sender " + h.sender_id + " is not an agency");
  }
  check = EnvelopeCheck::kSignature;
  if (check_signature &&
      !VerifySignature((*key)->signing_key, kLabelEnvelope,
                       EnvelopeSignatureBody(e.header_bytes, e.ciphertext), e.signature)) {
    return Unauthenticated("envelope signature does not verify (altered, re-addressed or forged)");
  }
  check = EnvelopeCheck::kOk;
  return e;
}

}  // namespace

Result<schema::SealedEnvelope> VerifyEnvelope(ByteView envelope_bytes,
                                              const schema::Directory& directory, UnixMillis now,
                                              EnvelopeCheck* failed) {
  return CheckEnvelopeFields(envelope_bytes, directory, now, true, failed);
}

Result<schema::SealedEnvelope> CheckEnvelopeExceptSignature(ByteView envelope_bytes,
                                                            const schema::Directory& directory,
                                                            UnixMillis now, EnvelopeCheck* failed) {
  return CheckEnvelopeFields(envelope_bytes, directory, now, false, failed);
}

Result<OpenedEnvelope> OpenEnvelope(const Identity& recipient, ByteView envelope_bytes,
                                    const schema::Directory& directory, UnixMillis now) {
  REFBUS_ASSIGN_OR_RETURN(schema::SealedEnvelope e, VerifyEnvelope(envelope_bytes, directory, now));
  const auto& h = e.header;
  const schema::RecipientKey* mine = nullptr;
  for (const auto& r : h.recipients) {
    if (r.agency_id == recipient.party_id()) mine = &r;
  }
  if (mine == nullptr) {
    return PermissionDenied("envelope is not addressed to " + recipient.party_id());
  }
  const PrekeyEntry* prekey = recipient.FindPrekey(mine->prekey_id);
  if (prekey == nullptr) {
    return NotFound("envelope is sealed to prekey " + Fingerprint(mine->prekey_id) +
                    ", which this agency does not hold (unknown, or deleted after it expired)");
  }
  const schema::Prekey& pk = prekey->signed_prekey.prekey;
  if (h.created_at_ms >= pk.not_after_ms + kClockSkewMs ||
      h.created_at_ms + kClockSkewMs < pk.not_before_ms) {
    return Expired("envelope was sealed at " + FormatUtc(h.created_at_ms) + " to prekey " +
                   Fingerprint(mine->prekey_id) + ", which was valid only from " +
                   FormatUtc(pk.not_before_ms) + " to " + FormatUtc(pk.not_after_ms));
  }

  StackSecret<crypto_scalarmult_BYTES> shared;
  if (crypto_scalarmult(shared.data(), prekey->secret.data(), h.ephemeral_key.data()) != 0) {
    return Unauthenticated("envelope ephemeral key is a weak key");
  }
  StackSecret<kKeyBytes> wrap;
  WrapKey(shared.data(), h.ephemeral_key, pk.public_key, recipient.party_id(), h.message_id,
          wrap.data());
  Bytes ad = WrapAd(h.message_id, mine->prekey_id);
  StackSecret<kKeyBytes> k;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          k.data(), nullptr, nullptr, mine->wrapped_key.data(), mine->wrapped_key.size(), ad.data(),
          ad.size(), kZeroNonce, wrap.data()) != 0) {
    return Unauthenticated("content key for " + recipient.party_id() + " does not unwrap");
  }
  uint8_t commitment[32];
  KeyCommitment(k.data(), h.content_nonce, commitment);
  if (!ConstantTimeEquals(ByteView(commitment, 32), h.key_commitment)) {
    return Unauthenticated("content key does not match the header's key commitment");
  }
  OpenedEnvelope out;
  out.content.resize(e.ciphertext.size() - kTagBytes);
  Bytes cad = SignatureInput(kLabelContent, e.header_bytes);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          out.content.data(), nullptr, nullptr, e.ciphertext.data(), e.ciphertext.size(),
          cad.data(), cad.size(), h.content_nonce.data(), k.data()) != 0) {
    return Unauthenticated("envelope content does not decrypt (altered ciphertext)");
  }
  out.envelope = std::move(e);
  return out;
}

}  // namespace refbus::keys
