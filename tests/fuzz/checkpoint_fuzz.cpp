// libFuzzer target: signed audit-log checkpoints in the C2SP formats (what auditors,
// witnesses and agents read from a broker).
//
// Input: one selector byte, then the text.
//   0  keys::ParseCheckpointBody
//   1  keys::ParseSignedNote
//   2  keys::OpenCheckpoint with the fixture log key and cosigner, no cosignature needed
//   3  the same, one cosignature required
//   4  keys::ParseSignatureLine (a witness's reply), then keys::AddNoteSignature of the
//      line to a checkpoint signed and cosigned by the fixture keys
// Checks beyond "does not crash": ParseCheckpointBody accepts exactly the texts
// FormatCheckpointBody makes (Format(Parse(x)) == x, and Parse(Format(c)) == c);
// FormatSignedNote(ParseSignedNote(x)) == x; an opened checkpoint's body is the note text,
// canonical, of the right origin, with enough cosignatures; every signature line by a
// known key is byte for byte the one that key makes (Ed25519 is deterministic: nothing
// malleated verifies); OpenCheckpoint refuses one cosignature more than it counted; a
// parsed signature line formats back to itself, and adding it to a note keeps the note's
// text and every other key's line, and gives a note that parses back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "keys/checkpoint.h"
#include "tests/fuzz/checks.h"
#include "tests/fuzz/fixtures.h"

namespace {

namespace keys = refbus::keys;

// A checkpoint of the fixture tree, signed by the log and cosigned by the auditor.
const std::string& BaseNote() {
  static const std::string note = [] {
    const auto& fx = refbus::fuzz::Get();
    keys::Checkpoint c;
    c.origin = std::string(refbus::fuzz::kLogOrigin);
    c.size = refbus::fuzz::kTreeLeaves;
    c.root = refbus::fuzz::Tree().Root();
    auto signed_note = keys::SignCheckpoint(c, fx.broker);
    FUZZ_CHECK(signed_note.ok(), "cannot sign the fixture checkpoint");
    auto cosigned = keys::AddCosignature(*signed_note, refbus::fuzz::kCosignerName, fx.auditor,
                                         refbus::fuzz::kNow / 1000);
    FUZZ_CHECK(cosigned.ok(), "cannot cosign the fixture checkpoint");
    return *cosigned;
  }();
  return note;
}

void CheckSignatureLine(std::string_view line) {
  auto sig = keys::ParseSignatureLine(line);
  if (!sig.ok()) return;
  auto formatted = keys::FormatSignatureLine(*sig);
  FUZZ_CHECK(formatted.ok(), "a parsed signature line does not format");
  std::string want(line);
  if (want.empty() || want.back() != '\n') want += '\n';
  FUZZ_CHECK(*formatted == want,
             "ParseSignatureLine accepted a line FormatSignatureLine does not make");
  const std::string& base = BaseNote();
  auto added = keys::AddNoteSignature(base, *sig);
  if (!added.ok()) return;
  auto before = keys::ParseSignedNote(base);
  auto after = keys::ParseSignedNote(*added);
  FUZZ_CHECK(after.ok(), "AddNoteSignature made a note that does not parse");
  FUZZ_CHECK(after->text == before->text, "AddNoteSignature changed the note's text");
  FUZZ_CHECK(!after->signatures.empty() && after->signatures.back().name == sig->name &&
                 after->signatures.back().key_id == sig->key_id &&
                 after->signatures.back().signature == sig->signature,
             "AddNoteSignature did not add the line last");
  for (const auto& s : before->signatures) {
    if (s.name == sig->name && s.key_id == sig->key_id) continue;
    bool kept = false;
    for (const auto& t : after->signatures) {
      kept = kept || (t.name == s.name && t.key_id == s.key_id && t.signature == s.signature);
    }
    FUZZ_CHECK(kept, "AddNoteSignature dropped another key's signature");
  }
  refbus::fuzz::CheckSignedNote(*added);
  refbus::fuzz::CheckCheckpointNote(*added, 1);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  (void)refbus::fuzz::Get();
  (void)BaseNote();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace refbus::fuzz;  // NOLINT(google-build-using-namespace)
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0:
      CheckCheckpointBody(text);
      break;
    case 1:
      CheckSignedNote(text);
      break;
    case 2:
      CheckCheckpointNote(text, 0);
      break;
    case 3:
      CheckCheckpointNote(text, 1);
      break;
    default:
      CheckSignatureLine(text);
      break;
  }
  return 0;
}
