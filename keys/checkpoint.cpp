#include "keys/checkpoint.h"

#include <sodium.h>

#include <algorithm>
#include <cstdio>

#include "core/hash.h"

namespace refbus::keys {
namespace {

constexpr std::string_view kSigPrefix = "\xE2\x80\x94 ";  // U+2014 em dash, then a space
constexpr std::string_view kCosignatureHeader = "cosignature/v1\n";
constexpr size_t kEd25519PublicKeyBytes = crypto_sign_PUBLICKEYBYTES;
constexpr size_t kEd25519SignatureBytes = crypto_sign_BYTES;
constexpr size_t kKeyIdBytes = 4;
constexpr size_t kTimestampBytes = 8;
static_assert(kEd25519PublicKeyBytes == 32 && kEd25519SignatureBytes == 64);

// Decodes the UTF-8 sequence at text[i], advancing i. False for anything that is not the
// shortest encoding of a scalar value (overlong forms, surrogates, above U+10FFFF,
// truncated sequences): one text, one meaning.
bool NextCodePoint(std::string_view text, size_t& i, char32_t& cp) {
  auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t b0 = byte(i);
  size_t len = 0;
  char32_t min = 0;
  if (b0 < 0x80) {
    cp = b0;
    ++i;
    return true;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1F;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0F;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return false;
  }
  if (text.size() - i < len) return false;
  for (size_t k = 1; k < len; ++k) {
    const uint8_t b = byte(i + k);
    if ((b & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  i += len;
  return true;
}

// Unicode White_Space (what Go's unicode.IsSpace, used by the reference implementation,
// accepts): ASCII \t \n \v \f \r and space, U+0085, U+00A0 and the Z categories.
bool IsUnicodeSpace(char32_t cp) {
  switch (cp) {
    case U'\t':
    case U'\n':
    case U'\v':
    case U'\f':
    case U'\r':
    case U' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

// signed-note: valid UTF-8 and no ASCII control character but newline.
Status CheckNoteChars(std::string_view text, std::string_view what) {
  size_t i = 0;
  while (i < text.size()) {
    const size_t at = i;
    char32_t cp = 0;
    if (!NextCodePoint(text, i, cp)) {
      return Malformed(std::string(what) + " is not valid UTF-8 (byte " + std::to_string(at) + ")");
    }
    if (cp < 0x20 && cp != U'\n') {
      return Malformed(std::string(what) + " has a control character (byte " + std::to_string(at) +
                       ")");
    }
  }
  return Status::Ok();
}

std::string KeyLabel(std::string_view name, uint32_t key_id) {
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", key_id);
  return std::string(name) + "+" + hex;
}

uint32_t ReadU32(ByteView b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

uint64_t ReadU64(ByteView b) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | b[i];
  return v;
}

// "0", or a digit 1-9 followed by digits, no larger than 2^64 - 1.
Result<uint64_t> ParseCanonicalDecimal(std::string_view s, std::string_view what) {
  if (s.empty()) return Malformed(std::string(what) + " is empty");
  if (s.size() > 1 && s[0] == '0') {
    return Malformed(std::string(what) + " has a leading zero");
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return Malformed(std::string(what) + " is not a decimal number (digits 0-9 only)");
    }
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return Malformed(std::string(what) + " exceeds 2^64 - 1");
    v = v * 10 + d;
  }
  return v;
}

std::vector<std::string_view> SplitLines(std::string_view text) {
  // REQUIRES: text ends with '\n'. Returns the lines without their newlines.
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

Bytes CosignedMessage(std::string_view body, uint64_t timestamp_s) {
  Bytes m;
  m.reserve(kCosignatureHeader.size() + 32 + body.size());
  Append(m, AsBytes(kCosignatureHeader));
  Append(m, AsBytes("time " + std::to_string(timestamp_s) + "\n"));
  Append(m, AsBytes(body));
  return m;
}

Bytes SignWith(const Identity& signer, ByteView message) {
  Bytes sig(kEd25519SignatureBytes);
  // The secret key is read in place from the Identity's locked memory.
  crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(),
                       signer.signing_secret_key().data());
  return sig;
}

Result<std::array<uint8_t, 32>> SigningPublicKey(const Identity& signer) {
  const Bytes& pk = signer.signing_public_key();
  if (pk.size() != kEd25519PublicKeyBytes) {
    return Internal("identity has a signing public key of " + std::to_string(pk.size()) + " bytes");
  }
  std::array<uint8_t, 32> out;
  std::copy(pk.begin(), pk.end(), out.begin());
  return out;
}

// Checks one signature (the bytes after the key id) by v over text. For cosignatures,
// *timestamp_s receives the signed time.
Status VerifyOne(const NoteVerifier& v, std::string_view text, ByteView sig,
                 uint64_t* timestamp_s) {
  const std::string who = KeyLabel(v.name(), v.key_id());
  switch (v.type()) {
    case NoteKeyType::kEd25519: {
      if (sig.size() != kEd25519SignatureBytes) {
        return Unauthenticated("signature by " + who + " has " + std::to_string(sig.size()) +
                               " bytes, an Ed25519 signature has 64");
      }
      if (crypto_sign_verify_detached(sig.data(), reinterpret_cast<const uint8_t*>(text.data()),
                                      text.size(), v.public_key().data()) != 0) {
        return Unauthenticated("signature by " + who + " does not verify");
      }
      *timestamp_s = 0;
      return Status::Ok();
    }
    case NoteKeyType::kCosignatureV1: {
      if (sig.size() != kTimestampBytes + kEd25519SignatureBytes) {
        return Unauthenticated("cosignature by " + who + " has " + std::to_string(sig.size()) +
                               " bytes, a cosignature/v1 has 72");
      }
      const uint64_t t = ReadU64(sig);
      if (t > kMaxCosignatureTime) {
        return Unauthenticated("cosignature by " + who + " has a timestamp above 2^63 - 1");
      }
      Bytes m = CosignedMessage(text, t);
      if (crypto_sign_verify_detached(sig.data() + kTimestampBytes, m.data(), m.size(),
                                      v.public_key().data()) != 0) {
        return Unauthenticated("cosignature by " + who + " does not verify");
      }
      *timestamp_s = t;
      return Status::Ok();
    }
  }
  return Internal("unknown note key type");
}

}  // namespace

// ---- Checkpoint body -----------------------------------------------------------------

bool IsValidKeyName(std::string_view name) {
  if (name.empty() || name.size() > kMaxKeyNameBytes) return false;
  size_t i = 0;
  while (i < name.size()) {
    char32_t cp = 0;
    if (!NextCodePoint(name, i, cp)) return false;
    if (cp < 0x20 || cp == U'+' || IsUnicodeSpace(cp)) return false;
  }
  return true;
}

Result<std::string> FormatCheckpointBody(const Checkpoint& checkpoint) {
  if (!IsValidKeyName(checkpoint.origin)) {
    return InvalidArgument(
        "checkpoint origin must be 1 to 255 bytes of UTF-8 without spaces, '+' or control "
        "characters");
  }
  std::string body = checkpoint.origin + "\n" + std::to_string(checkpoint.size) + "\n" +
                     Base64Encode(checkpoint.root) + "\n";
  for (const std::string& ext : checkpoint.extensions) {
    if (ext.empty()) return InvalidArgument("checkpoint extension lines must not be empty");
    if (ext.find('\n') != std::string::npos) {
      return InvalidArgument("checkpoint extension line holds a newline");
    }
    Status s = CheckNoteChars(ext, "checkpoint extension line");
    if (!s.ok()) return InvalidArgument(s.message());
    body += ext;
    body += '\n';
  }
  if (body.size() > kMaxNoteBytes) {
    return InvalidArgument("checkpoint text would exceed 16 KiB");
  }
  return body;
}

Result<Checkpoint> ParseCheckpointBody(std::string_view body) {
  if (body.size() > kMaxNoteBytes) {
    return Malformed("checkpoint text has " + std::to_string(body.size()) +
                     " bytes, more than 16 KiB");
  }
  if (body.empty() || body.back() != '\n') {
    return Malformed("checkpoint text does not end with a newline");
  }
  REFBUS_RETURN_IF_ERROR(CheckNoteChars(body, "checkpoint text"));
  std::vector<std::string_view> lines = SplitLines(body);
  if (lines.size() < 3) {
    return Malformed("checkpoint text has " + std::to_string(lines.size()) +
                     " lines; origin, size and root hash are required");
  }
  Checkpoint c;
  if (lines[0].empty()) return Malformed("checkpoint origin line is empty");
  if (!IsValidKeyName(lines[0])) {
    return Malformed(
        "checkpoint origin is not a valid key name (at most 255 bytes, no spaces, no '+')");
  }
  c.origin = std::string(lines[0]);
  auto size = ParseCanonicalDecimal(lines[1], "checkpoint tree size");
  if (!size.ok()) return size.status();
  c.size = *size;
  auto root = Base64Decode(lines[2]);
  if (!root.ok()) return Malformed("checkpoint root hash: " + root.status().message());
  if (root->size() != kMerkleHashBytes) {
    return Malformed("checkpoint root hash has " + std::to_string(root->size()) +
                     " bytes, a SHA-256 root has 32");
  }
  std::copy(root->begin(), root->end(), c.root.begin());
  for (size_t i = 3; i < lines.size(); ++i) {
    if (lines[i].empty()) {
      return Malformed("checkpoint extension line " + std::to_string(i - 2) + " is empty");
    }
    c.extensions.emplace_back(lines[i]);
  }
  return c;
}

// ---- Signed notes --------------------------------------------------------------------

Result<SignedNote> ParseSignedNote(std::string_view note) {
  if (note.size() > kMaxNoteBytes) {
    return ResourceExhausted("signed note has " + std::to_string(note.size()) +
                             " bytes, more than the 16 KiB limit");
  }
  REFBUS_RETURN_IF_ERROR(CheckNoteChars(note, "signed note"));
  // The text ends at the last blank line; the signature block follows it.
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return Malformed("signed note has no blank line before its signatures");
  }
  SignedNote out;
  out.text = std::string(note.substr(0, split + 1));
  std::string_view block = note.substr(split + 2);
  if (block.empty()) return Malformed("signed note has no signature lines");
  if (block.back() != '\n') {
    return Malformed("signed note's last signature line does not end with a newline");
  }
  std::vector<std::string_view> lines = SplitLines(block);
  if (lines.size() > kMaxNoteSignatures) {
    return ResourceExhausted("signed note has " + std::to_string(lines.size()) +
                             " signature lines, more than the limit of 100");
  }
  for (size_t n = 0; n < lines.size(); ++n) {
    std::string_view line = lines[n];
    const std::string where = "signature line " + std::to_string(n + 1);
    if (line.substr(0, kSigPrefix.size()) != kSigPrefix) {
      return Malformed(where + " does not start with an em dash (U+2014) and a space");
    }
    line.remove_prefix(kSigPrefix.size());
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) {
      return Malformed(where + " has no space between key name and signature");
    }
    std::string_view name = line.substr(0, space);
    std::string_view b64 = line.substr(space + 1);
    if (!IsValidKeyName(name)) {
      return Malformed(where + " has an invalid key name (empty, too long, a space or '+')");
    }
    if (b64.empty()) return Malformed(where + " has an empty signature");
    auto raw = Base64Decode(b64);
    if (!raw.ok()) return Malformed(where + ": " + raw.status().message());
    if (raw->size() <= kKeyIdBytes) {
      return Malformed(where + " holds " + std::to_string(raw->size()) +
                       " bytes, less than a key id and a signature");
    }
    NoteSignature sig;
    sig.name = std::string(name);
    sig.key_id = ReadU32(*raw);
    sig.signature.assign(raw->begin() + kKeyIdBytes, raw->end());
    out.signatures.push_back(std::move(sig));
  }
  return out;
}

Result<std::string> FormatSignedNote(const SignedNote& note) {
  if (note.text.empty() || note.text.back() != '\n') {
    return InvalidArgument("note text must end with a newline");
  }
  if (note.signatures.empty()) return InvalidArgument("a signed note needs a signature");
  std::string out = note.text;
  out += '\n';
  for (const NoteSignature& sig : note.signatures) {
    if (!IsValidKeyName(sig.name)) return InvalidArgument("invalid key name in a signature");
    if (sig.signature.empty()) return InvalidArgument("empty signature");
    Bytes raw;
    AppendU32BigEndian(raw, sig.key_id);
    Append(raw, sig.signature);
    out += kSigPrefix;
    out += sig.name;
    out += ' ';
    out += Base64Encode(raw);
    out += '\n';
  }
  // What we write must read back as the same note (text limits, sizes, counts).
  auto check = ParseSignedNote(out);
  if (!check.ok()) return InvalidArgument("note cannot be written: " + check.status().message());
  if (check->text != note.text) {
    return InvalidArgument("note text would not read back unchanged");
  }
  return out;
}

Result<NoteSignature> ParseSignatureLine(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (line.empty()) return Malformed("signature line is empty");
  if (line.find('\n') != std::string_view::npos) {
    return Malformed("signature line holds more than one line");
  }
  // The smallest note that carries exactly this line: the parser's checks, nothing else.
  std::string note = "-\n\n";
  note += line;
  note += '\n';
  REFBUS_ASSIGN_OR_RETURN(SignedNote parsed, ParseSignedNote(note));
  if (parsed.signatures.size() != 1) return Malformed("not exactly one signature line");
  return std::move(parsed.signatures[0]);
}

Result<std::string> FormatSignatureLine(const NoteSignature& sig) {
  SignedNote note;
  note.text = "-\n";
  note.signatures.push_back(sig);
  REFBUS_ASSIGN_OR_RETURN(std::string formatted, FormatSignedNote(note));
  return formatted.substr(note.text.size() + 1);  // after the text and the blank line
}

Result<std::string> AddNoteSignature(std::string_view signed_note, const NoteSignature& sig) {
  REFBUS_ASSIGN_OR_RETURN(SignedNote note, ParseSignedNote(signed_note));
  std::erase_if(note.signatures, [&](const NoteSignature& s) {
    return s.name == sig.name && s.key_id == sig.key_id;
  });
  note.signatures.push_back(sig);
  if (note.signatures.size() > kMaxNoteSignatures) {
    return ResourceExhausted("the note would have more than 100 signature lines");
  }
  auto out = FormatSignedNote(note);
  if (!out.ok()) return ResourceExhausted(out.status().message());
  return out;
}

uint32_t NoteKeyId(std::string_view name, NoteKeyType type, std::span<const uint8_t, 32> key) {
  Sha256Hasher h;
  h.Update(AsBytes(name));
  h.Update(uint8_t{0x0A});
  h.Update(static_cast<uint8_t>(type));
  h.Update(key);
  Sha256Digest d = h.Finish();
  return ReadU32(d);
}

Result<NoteVerifier> NoteVerifier::Create(std::string name, NoteKeyType type, ByteView public_key) {
  if (!IsValidKeyName(name)) {
    return InvalidArgument("note key name must be 1 to 255 bytes without spaces or '+'");
  }
  if (public_key.size() != kEd25519PublicKeyBytes) {
    return InvalidArgument("Ed25519 public key has " + std::to_string(public_key.size()) +
                           " bytes, not 32");
  }
  if (type != NoteKeyType::kEd25519 && type != NoteKeyType::kCosignatureV1) {
    return InvalidArgument("unsupported note key type");
  }
  NoteVerifier v;
  v.name_ = std::move(name);
  v.type_ = type;
  std::copy(public_key.begin(), public_key.end(), v.public_key_.begin());
  v.key_id_ = NoteKeyId(v.name_, type, v.public_key_);
  return v;
}

Result<OpenedNote> OpenSignedNote(std::string_view note, std::span<const NoteVerifier> known) {
  for (size_t i = 0; i < known.size(); ++i) {
    for (size_t j = i + 1; j < known.size(); ++j) {
      if (known[i].name() == known[j].name() && known[i].key_id() == known[j].key_id()) {
        return InvalidArgument("two known keys share the name and key id " +
                               KeyLabel(known[i].name(), known[i].key_id()));
      }
    }
  }
  REFBUS_ASSIGN_OR_RETURN(SignedNote parsed, ParseSignedNote(note));
  OpenedNote out;
  for (const NoteSignature& sig : parsed.signatures) {
    auto v = std::find_if(known.begin(), known.end(), [&](const NoteVerifier& k) {
      return k.name() == sig.name && k.key_id() == sig.key_id;
    });
    if (v == known.end()) {
      ++out.ignored;
      continue;
    }
    uint64_t t = 0;
    REFBUS_RETURN_IF_ERROR(VerifyOne(*v, parsed.text, sig.signature, &t));
    const bool seen = std::any_of(
        out.verified.begin(), out.verified.end(),
        [&](const VerifiedSignature& s) { return s.name == sig.name && s.key_id == sig.key_id; });
    if (!seen) out.verified.push_back({sig.name, sig.key_id, v->type(), t});
  }
  if (out.verified.empty()) {
    return Unauthenticated("note has no signature from a known key (" +
                           std::to_string(out.ignored) + " from unknown keys)");
  }
  out.text = std::move(parsed.text);
  return out;
}

// ---- Checkpoints ---------------------------------------------------------------------

Result<std::string> SignCheckpoint(const Checkpoint& checkpoint, const Identity& log) {
  REFBUS_ASSIGN_OR_RETURN(std::string body, FormatCheckpointBody(checkpoint));
  REFBUS_ASSIGN_OR_RETURN(auto pk, SigningPublicKey(log));
  SignedNote note;
  note.text = body;
  note.signatures.push_back({checkpoint.origin,
                             NoteKeyId(checkpoint.origin, NoteKeyType::kEd25519, pk),
                             SignWith(log, AsBytes(body))});
  return FormatSignedNote(note);
}

Result<NoteSignature> CosignCheckpoint(std::string_view checkpoint_body,
                                       std::string_view cosigner_name, const Identity& cosigner,
                                       uint64_t timestamp_s) {
  auto parsed = ParseCheckpointBody(checkpoint_body);
  if (!parsed.ok()) return parsed.status().WithContext("refusing to cosign");
  if (!IsValidKeyName(cosigner_name)) {
    return InvalidArgument("cosigner name must be 1 to 255 bytes without spaces or '+'");
  }
  if (timestamp_s > kMaxCosignatureTime) {
    return InvalidArgument("cosignature timestamp exceeds 2^63 - 1");
  }
  REFBUS_ASSIGN_OR_RETURN(auto pk, SigningPublicKey(cosigner));
  NoteSignature sig;
  sig.name = std::string(cosigner_name);
  sig.key_id = NoteKeyId(cosigner_name, NoteKeyType::kCosignatureV1, pk);
  AppendU64BigEndian(sig.signature, timestamp_s);
  Append(sig.signature, SignWith(cosigner, CosignedMessage(checkpoint_body, timestamp_s)));
  return sig;
}

Result<std::string> AddCosignature(std::string_view signed_note, std::string_view cosigner_name,
                                   const Identity& cosigner, uint64_t timestamp_s) {
  REFBUS_ASSIGN_OR_RETURN(SignedNote note, ParseSignedNote(signed_note));
  REFBUS_ASSIGN_OR_RETURN(NoteSignature sig,
                          CosignCheckpoint(note.text, cosigner_name, cosigner, timestamp_s));
  std::erase_if(note.signatures, [&](const NoteSignature& s) {
    return s.name == sig.name && s.key_id == sig.key_id;
  });
  note.signatures.push_back(std::move(sig));
  return FormatSignedNote(note);
}

Result<uint64_t> VerifyCosignature(std::string_view checkpoint_body, const NoteSignature& sig,
                                   const NoteVerifier& cosigner) {
  if (cosigner.type() != NoteKeyType::kCosignatureV1) {
    return InvalidArgument("key " + KeyLabel(cosigner.name(), cosigner.key_id()) +
                           " is not a cosignature/v1 key");
  }
  if (sig.name != cosigner.name() || sig.key_id != cosigner.key_id()) {
    return Unauthenticated("signature is not by cosigner " +
                           KeyLabel(cosigner.name(), cosigner.key_id()));
  }
  uint64_t t = 0;
  REFBUS_RETURN_IF_ERROR(VerifyOne(cosigner, checkpoint_body, sig.signature, &t));
  return t;
}

Result<VerifiedCheckpoint> OpenCheckpoint(std::string_view note, std::string_view origin,
                                          const NoteVerifier& log_key,
                                          std::span<const NoteVerifier> cosigners,
                                          size_t min_cosignatures) {
  if (log_key.type() != NoteKeyType::kEd25519) {
    return InvalidArgument("the log key must be an Ed25519 note key (type 0x01)");
  }
  if (log_key.name() != origin) {
    return InvalidArgument("the log key's name must be the log's origin");
  }
  std::vector<NoteVerifier> known;
  known.reserve(cosigners.size() + 1);
  known.push_back(log_key);
  for (const NoteVerifier& c : cosigners) {
    if (c.type() != NoteKeyType::kCosignatureV1) {
      return InvalidArgument("cosigner key " + KeyLabel(c.name(), c.key_id()) +
                             " is not a cosignature/v1 key (type 0x04)");
    }
    known.push_back(c);
  }
  REFBUS_ASSIGN_OR_RETURN(OpenedNote opened, OpenSignedNote(note, known));
  VerifiedCheckpoint out;
  bool log_signed = false;
  for (VerifiedSignature& s : opened.verified) {
    if (s.type == NoteKeyType::kEd25519) {
      log_signed = true;
    } else {
      out.cosignatures.push_back(std::move(s));
    }
  }
  if (!log_signed) {
    return Unauthenticated("checkpoint is not signed by the log key " +
                           KeyLabel(log_key.name(), log_key.key_id()));
  }
  if (out.cosignatures.size() < min_cosignatures) {
    return Unauthenticated("checkpoint has " + std::to_string(out.cosignatures.size()) +
                           " valid cosignatures from known cosigners, " +
                           std::to_string(min_cosignatures) + " required");
  }
  REFBUS_ASSIGN_OR_RETURN(out.checkpoint, ParseCheckpointBody(opened.text));
  if (out.checkpoint.origin != origin) {
    return Unauthenticated("checkpoint is signed by the log key but names another origin");
  }
  out.body = std::move(opened.text);
  return out;
}

}  // namespace refbus::keys
