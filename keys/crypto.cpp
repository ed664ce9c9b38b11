#include "keys/crypto.h"

#include <sodium.h>

#include "schema/types.h"

namespace refbus::keys {

Bytes KeyId(KeyUse use, ByteView public_key) {
  std::string_view label;
  switch (use) {
    case KeyUse::kSigning:
      label = "refbus/v1/key-id/signing";
      break;
    case KeyUse::kTransport:
      label = "refbus/v1/key-id/transport";
      break;
    case KeyUse::kPrekey:
      label = "refbus/v1/key-id/prekey";
      break;
  }
  Bytes in = SignatureInput(label, public_key);
  uint8_t h[crypto_generichash_BYTES];
  crypto_generichash(h, sizeof(h), in.data(), in.size(), nullptr, 0);
  return Bytes(h, h + schema::kKeyIdBytes);
}

Bytes SignatureInput(std::string_view label, ByteView body) {
  Bytes out;
  out.reserve(label.size() + 1 + body.size());
  Append(out, AsBytes(label));
  out.push_back(0);
  Append(out, body);
  return out;
}

bool VerifySignature(ByteView public_key, std::string_view label, ByteView body,
                     ByteView signature) {
  if (public_key.size() != crypto_sign_PUBLICKEYBYTES || signature.size() != crypto_sign_BYTES) {
    return false;
  }
  Bytes in = SignatureInput(label, body);
  return crypto_sign_verify_detached(signature.data(), in.data(), in.size(), public_key.data()) ==
         0;
}

bool ConstantTimeEquals(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string Fingerprint(ByteView key_id) {
  std::string hex = HexEncode(key_id);
  std::string out;
  for (size_t i = 0; i < hex.size(); ++i) {
    if (i > 0 && i % 4 == 0) out.push_back('-');
    out.push_back(hex[i]);
  }
  return out;
}

}  // namespace refbus::keys
