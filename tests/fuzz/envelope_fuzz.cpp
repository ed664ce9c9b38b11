// libFuzzer target: the envelope decoder (what a broker parses from every submission).
//
// Properties checked beyond "does not crash": a decoded envelope re-encodes to bytes that
// decode to the same header bytes, ciphertext and signature (the signed bytes are carried,
// never re-encoded), and signature verification against an empty directory refuses it.
#include <cstdint>
#include <cstdlib>

#include "keys/envelope.h"
#include "schema/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  refbus::ByteView in(data, size);
  auto e = refbus::schema::DecodeEnvelope(in);
  if (!e.ok()) return 0;
  refbus::Bytes again = refbus::schema::EncodeEnvelope(*e);
  auto e2 = refbus::schema::DecodeEnvelope(again);
  if (!e2.ok() || e2->header_bytes != e->header_bytes || e2->ciphertext != e->ciphertext ||
      e2->signature != e->signature) {
    std::abort();
  }
  refbus::schema::Directory empty;
  if (refbus::keys::VerifyEnvelope(in, empty, e->header.created_at_ms).ok()) std::abort();
  return 0;
}
