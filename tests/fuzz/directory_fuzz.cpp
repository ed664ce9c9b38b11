// libFuzzer target: the federation directory and party records (what every party reads
// from the authority, and the authority from every party in the key ceremony).
//
// Input: one selector byte, then the bytes to decode.
//   0  SignedDirectory, then keys::VerifyDirectory under the fixture anchor
//   1  Directory
//   2  SignedPartyRecord, then keys::VerifyPartyRecord (proof of possession)
//   3  PartyRecord
//   4  Prekey
//   5  a directory file: schema::StripMagic with the directory magic, then as 0
// Checks beyond "does not crash": the directory contract (ids unique across the lists,
// each party in the list of its kind, key and signature sizes, prekeys owned by their
// party, Find() returns each party); decode -> encode -> decode is a fixed point; the
// signed directory, record and prekey bytes occur in the input and survive re-encoding;
// FindSigningKey never returns a revoked key or a key of a revoked party, CurrentPrekey
// only a valid signed prekey of an active agency; a verified directory is signed by the
// anchor and a verified record by its own key, and a changed signature is refused.
#include <cstddef>
#include <cstdint>

#include "schema/codec.h"
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
  switch (data[0] % 6) {
    case 0:
      CheckSignedDirectory(in);
      break;
    case 1:
      CheckDirectory(in);
      break;
    case 2:
      CheckSignedPartyRecord(in);
      break;
    case 3:
      CheckPartyRecord(in);
      break;
    case 4:
      CheckPrekey(in);
      break;
    default: {
      namespace schema = refbus::schema;
      auto body = schema::StripMagic(schema::kDirectoryFileMagic, in, "refbus directory");
      if (!body.ok()) break;
      FUZZ_CHECK(schema::WithMagic(schema::kDirectoryFileMagic, *body) ==
                     refbus::Bytes(in.begin(), in.end()),
                 "StripMagic then WithMagic does not give the file back");
      CheckSignedDirectory(*body);
      break;
    }
  }
  return 0;
}
