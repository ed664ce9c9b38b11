// Decode-and-check helpers shared by the fuzz targets.
//
// Each Check* runs one decoder on its input. When the input decodes, it checks what the
// decoder promises (schema/codec.h, keys/*.h) and aborts with a message on the first
// violation, which libFuzzer reports as a crash:
//   - the contract: every size, id and enum rule the header states holds for the value;
//   - the round trip: encode(decode(x)) decodes, and encoding that again gives the same
//     bytes (decode -> encode -> decode is a fixed point);
//   - signed objects keep the bytes that were signed verbatim (they occur in the input and
//     survive re-encoding of the wrapper byte for byte);
//   - verification against the fixture keys (tests/fuzz/fixtures.h): what verifies is
//     really signed by the key it names, a one-bit change to a signature or signed bytes
//     is refused, and a statement signed under one label never verifies under another.
// Every Check* returns whether the input decoded, so callers can nest them the way the
// broker and the agent nest decoders (a frame holds an envelope, a case message a grant).
//
// Thread safety: as the functions they call (all thread-safe); the fixture is built once.
#ifndef REFBUS_TESTS_FUZZ_CHECKS_H_
#define REFBUS_TESTS_FUZZ_CHECKS_H_

#include <cstddef>
#include <string_view>

#include "core/bytes.h"
#include "keys/consent.h"

// Aborts with file, line, condition and message when cond is false. what is evaluated
// only on failure, so it may build strings freely.
#define FUZZ_CHECK(cond, what)                                            \
  do {                                                                    \
    if (!(cond)) ::refbus::fuzz::Fail(__FILE__, __LINE__, #cond, (what)); \
  } while (0)

namespace refbus::fuzz {

[[noreturn]] void Fail(const char* file, int line, const char* cond, std::string_view what);

// True if needle occurs in haystack (an empty needle always does).
bool Contains(ByteView haystack, ByteView needle);

// Transport and envelopes.
bool CheckFrame(ByteView in);
bool CheckEnvelopeHeader(ByteView in);
bool CheckEnvelope(ByteView in);

// Directory.
bool CheckPrekey(ByteView in);
bool CheckDirectory(ByteView in);
bool CheckSignedDirectory(ByteView in);
bool CheckPartyRecord(ByteView in);
bool CheckSignedPartyRecord(ByteView in);

// Consent and signed statements.
bool CheckConsentGrant(ByteView in);
bool CheckSignedConsentGrant(ByteView in);
bool CheckAccessRecord(ByteView in);
bool CheckConsentRevocation(ByteView in);
bool CheckPurgeConfirmation(ByteView in);
// A SignedStatement that should hold a statement of this type.
bool CheckSignedStatement(ByteView in, keys::StatementType type);

// Case messages (the plaintext of envelopes).
bool CheckCaseMessage(ByteView in);

// Audit log.
bool CheckAuditEntry(ByteView in);
bool CheckCheckpointBody(std::string_view text);
bool CheckSignedNote(std::string_view note);
// OpenCheckpoint with the fixture's log key and cosigner.
bool CheckCheckpointNote(std::string_view note, size_t min_cosignatures);

// Key files: the SecretKeyFile container (without its magic line).
bool CheckSecretKeyFile(ByteView in);

}  // namespace refbus::fuzz

#endif  // REFBUS_TESTS_FUZZ_CHECKS_H_
