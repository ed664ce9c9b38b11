// libFuzzer target: transport frames (schema::DecodeFrame), the first decoder every byte
// from a peer meets after the CURVE handshake, on broker and agent alike.
//
// Input: the frame bytes. Checks (tests/fuzz/checks.h): the frame's contract and round
// trip, then what the receiver decodes next from the same bytes: a submitted or
// delivered envelope (verified against the fixture directory), a directory reply, a
// registered grant, a revocation or attestation statement, and an audit reply's entries
// and checkpoint notes.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/checks.h"
#include "tests/fuzz/fixtures.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  (void)refbus::fuzz::Get();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  refbus::fuzz::CheckFrame(refbus::ByteView(data, size));
  return 0;
}
