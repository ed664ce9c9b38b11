// Signed audit-log checkpoints in the C2SP text formats, so that tools outside refbus
// (witnesses, monitors) can read and cosign them:
//   - c2sp.org/signed-note: text ending in a newline, a blank line, then signature lines
//     "— <key name> <base64(u32be key id || signature)>\n" (U+2014 em dash, then a space).
//     Ed25519 (signature type 0x01) signs the note text itself;
//     key id = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4].
//   - c2sp.org/tlog-checkpoint: note text "<origin>\n<decimal size>\n<base64 root>\n" and
//     optional non-empty extension lines. A refbus log's key name is its origin.
//   - c2sp.org/tlog-cosignature, Ed25519 cosignature/v1 (signature type 0x04): Ed25519 over
//     "cosignature/v1\ntime <T>\n" || checkpoint text, where T is POSIX *seconds* (not the
//     milliseconds used elsewhere in refbus); the line carries
//     base64(key id || u64be T || 64-byte signature).
//
// Parsing is strict and bounded: a note over 16 KiB or with more than 100 signature lines
// is refused before any signature is checked; every refusal names what was wrong.
// Verification follows signed-note: signatures from unknown keys (name and key id not
// both matching a known key) are ignored; a signature from a known key that fails makes
// the whole note fail; at least one known signature must verify.
//
// Domain separation: refbus's own signatures cover label || 0x00 || body (crypto.h), and
// note texts may not contain 0x00 (no control characters but newline), so no note or
// cosignature signature can be replayed as a refbus one, nor the other way round. A
// checkpoint's second line is a decimal number and a cosigned message's is "time T", so
// a log signature and a cosignature by the same key never cover the same bytes either.
// Only checkpoints are signed here, never caller-chosen text.
//
// Secrets: signing reads the Ed25519 key inside the Identity (locked memory) in place;
// nothing here copies it.
//
// Thread safety: free functions and values; thread-safe.
#ifndef REFBUS_KEYS_CHECKPOINT_H_
#define REFBUS_KEYS_CHECKPOINT_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "keys/identity.h"
#include "keys/merkle.h"

namespace refbus::keys {

inline constexpr size_t kMaxNoteBytes = 16 * 1024;
inline constexpr size_t kMaxNoteSignatures = 100;
// Origins and key names: at most 255 bytes (what the ML-DSA cosignature format can carry).
inline constexpr size_t kMaxKeyNameBytes = 255;
// tlog-cosignature: a timestamp MUST NOT exceed 2^63 - 1.
inline constexpr uint64_t kMaxCosignatureTime = (uint64_t{1} << 63) - 1;

// ---- Checkpoint body -----------------------------------------------------------------

struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  Hash root{};
  std::vector<std::string> extensions;  // NOT RECOMMENDED by the spec; refbus writes none
};

// A valid key name: non-empty, at most 255 bytes of UTF-8 with no control character, no
// Unicode space and no '+'. refbus requires its origins to be valid key names too.
[[nodiscard]] bool IsValidKeyName(std::string_view name);

// The note text of a checkpoint. InvalidArgument for an origin that is not a valid key
// name or an extension line that is empty or holds a newline or control character: the
// text would otherwise parse as a different checkpoint.
Result<std::string> FormatCheckpointBody(const Checkpoint& checkpoint);
// Exactly the texts FormatCheckpointBody makes: the final newline, a canonical decimal
// size ("0" or no leading zero, no sign), a canonical base64 root of 32 bytes.
Result<Checkpoint> ParseCheckpointBody(std::string_view body);

// ---- Signed notes --------------------------------------------------------------------

enum class NoteKeyType : uint8_t {
  kEd25519 = 0x01,        // signed-note Ed25519: a log signing its checkpoints
  kCosignatureV1 = 0x04,  // tlog-cosignature Ed25519 cosignature/v1: a witness
};

struct NoteSignature {
  std::string name;
  uint32_t key_id = 0;
  Bytes signature;  // the bytes after the key id (for cosignatures: timestamp || signature)
};

struct SignedNote {
  std::string text;  // includes its final newline, not the blank separator line
  std::vector<NoteSignature> signatures;
};

// Strict parse of the signed-note format; checks no signature.
Result<SignedNote> ParseSignedNote(std::string_view note);
// The note's bytes. InvalidArgument for text not ending in a newline, invalid names, or
// anything ParseSignedNote would refuse.
Result<std::string> FormatSignedNote(const SignedNote& note);

// One signature line, "— <key name> <base64(key id || signature)>", with or without its
// final newline (nothing else: one line). Malformed for anything ParseSignedNote would
// refuse in a signature block.
Result<NoteSignature> ParseSignatureLine(std::string_view line);
// The line for sig, ending in a newline. InvalidArgument for an invalid name or an empty
// signature.
Result<std::string> FormatSignatureLine(const NoteSignature& sig);
// signed_note with sig added at the end, replacing an earlier signature with the same key
// name and key id. Checks no signature: the caller has verified sig. The note's text and
// its other signature lines stay as they were, so every signature in it still verifies.
// ResourceExhausted when the result would pass the note limits (16 KiB, 100 lines).
Result<std::string> AddNoteSignature(std::string_view signed_note, const NoteSignature& sig);

// A known public key, as configured by an operator. Values; cheap to copy.
class NoteVerifier {
 public:
  // InvalidArgument for an invalid key name or a public key that is not 32 bytes.
  static Result<NoteVerifier> Create(std::string name, NoteKeyType type, ByteView public_key);

  const std::string& name() const { return name_; }
  NoteKeyType type() const { return type_; }
  uint32_t key_id() const { return key_id_; }
  const std::array<uint8_t, 32>& public_key() const { return public_key_; }

 private:
  NoteVerifier() = default;
  std::string name_;
  NoteKeyType type_ = NoteKeyType::kEd25519;
  uint32_t key_id_ = 0;
  std::array<uint8_t, 32> public_key_{};
};

// SHA-256(name || 0x0A || type || public_key)[:4] as a big-endian integer.
uint32_t NoteKeyId(std::string_view name, NoteKeyType type, std::span<const uint8_t, 32> key);

struct VerifiedSignature {
  std::string name;
  uint32_t key_id = 0;
  NoteKeyType type = NoteKeyType::kEd25519;
  uint64_t timestamp_s = 0;  // cosignatures only: the time the cosigner signed
};

struct OpenedNote {
  std::string text;
  std::vector<VerifiedSignature> verified;  // one per known key, in note order
  size_t ignored = 0;                       // signature lines from unknown keys
};

// Parses note and checks every signature from a key in known. Unauthenticated when a
// known key's signature fails or none verifies; InvalidArgument when known lists two keys
// with the same name and key id.
Result<OpenedNote> OpenSignedNote(std::string_view note, std::span<const NoteVerifier> known);

// ---- Checkpoints: sign, cosign, verify ------------------------------------------------

// The signed note for checkpoint, signed by log's Ed25519 key under the key name
// checkpoint.origin.
Result<std::string> SignCheckpoint(const Checkpoint& checkpoint, const Identity& log);

// A cosignature/v1 line payload over checkpoint_body (which must parse as a checkpoint)
// at timestamp_s (POSIX seconds, at most 2^63 - 1).
// REQUIRES: the cosigner has verified the log's signature and the consistency of this
// checkpoint with the last one it cosigned for the origin: that is what a cosignature says.
Result<NoteSignature> CosignCheckpoint(std::string_view checkpoint_body,
                                       std::string_view cosigner_name, const Identity& cosigner,
                                       uint64_t timestamp_s);
// signed_note with a cosignature by cosigner added (replacing an earlier one by the same
// key). Same REQUIRES as CosignCheckpoint.
Result<std::string> AddCosignature(std::string_view signed_note, std::string_view cosigner_name,
                                   const Identity& cosigner, uint64_t timestamp_s);

// Checks one cosignature line against one cosigner key; returns its timestamp.
Result<uint64_t> VerifyCosignature(std::string_view checkpoint_body, const NoteSignature& sig,
                                   const NoteVerifier& cosigner);

struct VerifiedCheckpoint {
  Checkpoint checkpoint;
  std::string body;                             // the exact signed text
  std::vector<VerifiedSignature> cosignatures;  // verified, from distinct cosigners
};

// Parses and verifies a checkpoint note from the log named origin: a valid signature by
// log_key (type kEd25519, name == origin) is required, and at least min_cosignatures
// valid cosignatures by distinct keys in cosigners (type kCosignatureV1). Any failing
// signature from a known key refuses the note. Unauthenticated for signature failures,
// Malformed for bad syntax, InvalidArgument for a log key that does not fit origin.
Result<VerifiedCheckpoint> OpenCheckpoint(std::string_view note, std::string_view origin,
                                          const NoteVerifier& log_key,
                                          std::span<const NoteVerifier> cosigners = {},
                                          size_t min_cosignatures = 0);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_CHECKPOINT_H_
