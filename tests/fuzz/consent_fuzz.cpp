// libFuzzer target: consent grants and their revocations (what a broker checks before it
// routes case data, and what agents register and revoke).
//
// Input: one selector byte, then the bytes to decode.
//   0  SignedConsentGrant, then keys::VerifyConsentGrant against the fixture directory
//   1  ConsentGrant
//   2  SignedStatement holding a ConsentRevocation, then keys::VerifyStatement
//   3  ConsentRevocation
// Checks beyond "does not crash": the grant and revocation contracts (sizes, ids, case
// pseudonyms, enum values, validity order); decode -> encode -> decode is a fixed point;
// the signed grant and statement bytes occur in the input and survive re-encoding; a
// verified grant is signed by its recorder's directory key and, for an emergency
// override, countersigned by a second key; a verified revocation never verifies under the
// purge or access label; a changed signature or statement is refused.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/checks.h"
#include "tests/fuzz/fixtures.h"

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  (void)refbus::fuzz::Get();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace refbus::fuzz;  // NOLINT(google-build-using-namespace)
  if (size == 0) return 0;
  refbus::ByteView in(data + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      CheckSignedConsentGrant(in);
      break;
    case 1:
      CheckConsentGrant(in);
      break;
    case 2:
      CheckSignedStatement(in, refbus::keys::StatementType::kConsentRevocation);
      break;
    default:
      CheckConsentRevocation(in);
      break;
  }
  return 0;
}
