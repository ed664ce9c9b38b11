// libFuzzer target: case messages (the plaintext an agent decodes after opening an
// envelope) and the signed statements agencies hand their broker.
//
// Input: one selector byte, then the bytes to decode.
//   0  CaseMessage (its nested grants and statements are checked as in consent_fuzz)
//   1  SignedStatement holding an AccessRecord, then keys::VerifyStatement
//   2  AccessRecord
//   3  SignedStatement holding a PurgeConfirmation, then keys::VerifyStatement
//   4  PurgeConfirmation
// Checks beyond "does not crash": each message type's contract (ids, sizes, case
// pseudonyms, field and item limits, operator references); decode -> encode -> decode is
// a fixed point and keeps the type; every nested signed grant decodes (codec.h promises
// it); statements verify only under their own label, and a changed one is refused.
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
  using refbus::keys::StatementType;
  if (size == 0) return 0;
  refbus::ByteView in(data + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      CheckCaseMessage(in);
      break;
    case 1:
      CheckSignedStatement(in, StatementType::kAccessRecord);
      break;
    case 2:
      CheckAccessRecord(in);
      break;
    case 3:
      CheckSignedStatement(in, StatementType::kPurgeConfirmation);
      break;
    default:
      CheckPurgeConfirmation(in);
      break;
  }
  return 0;
}
