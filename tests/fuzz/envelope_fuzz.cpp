// libFuzzer target: envelopes (what a broker parses from every submission and an agent
// from every delivery).
//
// Input: one selector byte, then the bytes to decode.
//   0  SealedEnvelope (schema::DecodeEnvelope), then keys::VerifyEnvelope against an
//      empty and the fixture directory, and keys::OpenEnvelope as the fixture recipient
//   1  EnvelopeHeader on its own (schema::DecodeEnvelopeHeader)
// Checks beyond "does not crash": the header contract; decode -> encode -> decode is a
// fixed point; the signed header bytes occur in the input and survive re-encoding byte
// for byte; nothing verifies against an empty directory; a verified envelope's sender is
// an agency, and one changed bit in its signature or ciphertext is refused; an envelope
// that opens also verifies, is addressed to the recipient, and its content size matches.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/checks.h"
#include "tests/fuzz/fixtures.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  (void)refbus::fuzz::Get();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  refbus::ByteView in(data + 1, size - 1);
  switch (data[0] % 2) {
    case 0:
      refbus::fuzz::CheckEnvelope(in);
      break;
    default:
      refbus::fuzz::CheckEnvelopeHeader(in);
      break;
  }
  return 0;
}
