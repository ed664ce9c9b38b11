// Checkpoints, signed notes and cosignatures (keys/checkpoint.h).
//
// Published values used here:
//   - golang.org/x/mod sumdb/note/note_test.go: the PeterNeumann and EnochRoot keys (vkey,
//     and PeterNeumann's skey), the two-line note text and both signature lines.
//   - github.com/C2SP/C2SP tlog-checkpoint.md and tlog-cosignature.md: the example
//     checkpoint and its example witness cosignature line ("time 1679315147").
//   - github.com/transparency-dev/formats note/note_cosigv1_test.go (TestCoSigV1Timestamp):
//     a cosignature/v1 signature whose timestamp is 1727964367.
#include "keys/checkpoint.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

#include "core/hash.h"
#include "keys/secret.h"
#include "tests/unit/test_util.h"

namespace refbus::keys {
namespace {

using test::HasCode;
using test::HasError;
using test::IsOk;
using test::Must;

constexpr std::string_view kDash = "\xE2\x80\x94 ";  // U+2014 and a space

// note_test.go (golang.org/x/mod/sumdb/note).
constexpr std::string_view kPeterVkey =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr std::string_view kPeterSkeyPayload = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
constexpr std::string_view kEnochVkey =
    "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
constexpr std::string_view kNoteText =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
const std::string kPeterSig =
    std::string(kDash) +
    "PeterNeumann "
    "x08go/ZJkuBS9UG/"
    "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const std::string kEnochSig = std::string(kDash) +
                              "EnochRoot "
                              "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/"
                              "5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

// C2SP tlog-checkpoint.md / tlog-cosignature.md example.
constexpr std::string_view kExampleBody =
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
const std::string kExampleNote =
    std::string(kExampleBody) + "\n" + std::string(kDash) +
    "example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
    "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n" +
    std::string(kDash) +
    "witness.example.com/w1 "
    "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/"
    "zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";

// A vkey "<name>+<hex id>+<base64(type || key)>": the verifier and the published id.
struct Vkey {
  NoteVerifier verifier;
  uint32_t published_id;
};
Vkey ParseVkey(std::string_view vkey) {
  size_t p1 = vkey.find('+');
  size_t p2 = vkey.find('+', p1 + 1);
  Bytes key = Must(Base64Decode(vkey.substr(p2 + 1)));
  if (key.size() != 33 || key[0] != 0x01) throw std::runtime_error("not an Ed25519 vkey");
  Bytes id = Must(HexDecode(vkey.substr(p1 + 1, p2 - p1 - 1)));
  uint32_t published =
      (uint32_t{id[0]} << 24) | (uint32_t{id[1]} << 16) | (uint32_t{id[2]} << 8) | id[3];
  auto v = NoteVerifier::Create(std::string(vkey.substr(0, p1)), NoteKeyType::kEd25519,
                                ByteView(key).subspan(1));
  return {Must(std::move(v)), published};
}

// An Identity holding a published test seed (never do this with a real key).
Identity IdentityFromSeed(ByteView seed) {
  auto sk = Must(SecretKey<kSigningSecretBytes>::Allocate());
  Bytes pk(crypto_sign_PUBLICKEYBYTES);
  crypto_sign_seed_keypair(pk.data(), sk.data(), seed.data());
  return Must(Identity::FromSecrets("peter-neumann", schema::PartyKind::kBroker, std::move(sk),
                                    nullptr, {}));
}

Identity NewIdentity(const std::string& party) {
  return Must(Identity::Generate(party, schema::PartyKind::kBroker, 0, 0));
}

Hash SomeRoot(std::string_view seed) { return LeafHash(AsBytes(seed)); }

Checkpoint SampleCheckpoint() {
  Checkpoint c;
  c.origin = "refbus.example/seoul-broker";
  c.size = 1234;
  c.root = SomeRoot("root");
  return c;
}

NoteVerifier LogKey(const std::string& origin, const Identity& id) {
  return Must(NoteVerifier::Create(origin, NoteKeyType::kEd25519, id.signing_public_key()));
}

NoteVerifier CosignerKey(const std::string& name, const Identity& id) {
  return Must(NoteVerifier::Create(name, NoteKeyType::kCosignatureV1, id.signing_public_key()));
}

// ---- Known answers -------------------------------------------------------------------

TEST(CheckpointTest, GoNoteVectorsVerify) {
  const Vkey peter = ParseVkey(kPeterVkey);
  const Vkey enoch = ParseVkey(kEnochVkey);
  EXPECT_EQ(peter.verifier.key_id(), peter.published_id);
  EXPECT_EQ(peter.verifier.key_id(), 0xc74f20a3u);
  EXPECT_EQ(enoch.verifier.key_id(), 0xaf0cfe78u);

  const std::string both = std::string(kNoteText) + "\n" + kPeterSig + kEnochSig;
  std::vector<NoteVerifier> known{peter.verifier};
  auto one = OpenSignedNote(both, known);
  ASSERT_TRUE(IsOk(one));
  EXPECT_EQ(one->text, kNoteText);
  ASSERT_EQ(one->verified.size(), 1u);
  EXPECT_EQ(one->verified[0].name, "PeterNeumann");
  EXPECT_EQ(one->ignored, 1u);  // EnochRoot is unknown here: ignored, not an error

  known.push_back(enoch.verifier);
  auto two = OpenSignedNote(both, known);
  ASSERT_TRUE(IsOk(two));
  EXPECT_EQ(two->verified.size(), 2u);
  EXPECT_EQ(two->ignored, 0u);

  EXPECT_TRUE(HasError(OpenSignedNote(both, {}), Status::Code::kUnauthenticated,
                       "no signature from a known key"));
  // Repeated signatures count once (note_test.go "Duplicated verified ... signatures").
  auto dup = OpenSignedNote(std::string(kNoteText) + "\n" + kPeterSig + kPeterSig + kEnochSig,
                            std::vector<NoteVerifier>{peter.verifier});
  ASSERT_TRUE(IsOk(dup));
  EXPECT_EQ(dup->verified.size(), 1u);
  // Two configured keys with one name and id: ambiguous, refused.
  EXPECT_TRUE(
      HasError(OpenSignedNote(
                   both, std::vector<NoteVerifier>{enoch.verifier, peter.verifier, enoch.verifier}),
               Status::Code::kInvalidArgument, "share the name and key id"));
  // note_test.go "Invalid signature": four characters inserted into Peter's signature.
  std::string broken = kPeterSig.substr(0, 60) + "ABCD" + kPeterSig.substr(60);
  EXPECT_TRUE(HasCode(OpenSignedNote(std::string(kNoteText) + "\n" + broken,
                                     std::vector<NoteVerifier>{peter.verifier}),
                      Status::Code::kUnauthenticated));
  // A known key's failing signature refuses the note even when another one verifies.
  std::string flipped = kEnochSig;
  flipped[kDash.size() + 20] = flipped[kDash.size() + 20] == 'A' ? 'B' : 'A';
  EXPECT_TRUE(HasError(OpenSignedNote(std::string(kNoteText) + "\n" + kPeterSig + flipped, known),
                       Status::Code::kUnauthenticated, "EnochRoot+af0cfe78"));
}

TEST(CheckpointTest, GoNoteMalformedMessagesAreRefused) {
  // note_test.go TestOpen `badMsgs`, plus its 101-signature case.
  const std::string text(kNoteText);
  const std::vector<NoteVerifier> known{ParseVkey(kPeterVkey).verifier};
  const std::vector<std::string> bad = {
      text,
      text + "\n",
      text + "\n" + kPeterSig.substr(0, kPeterSig.size() - 1),
      "\x01" + text + "\n" + kPeterSig,
      "\xff" + text + "\n" + kPeterSig,
      text + "\n" + std::string(kDash) +
          "Bad Name "
          "x08go/ZJkuBS9UG/"
          "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
      text + "\n" + kPeterSig + "Unexpected line.\n",
  };
  for (const std::string& msg : bad) {
    auto r = OpenSignedNote(msg, known);
    EXPECT_TRUE(HasCode(r, Status::Code::kMalformed)) << msg;
  }
  std::string many = text + "\n";
  for (int i = 0; i < 101; ++i) many += kPeterSig;
  EXPECT_TRUE(HasError(OpenSignedNote(many, known), Status::Code::kResourceExhausted,
                       "more than the limit of 100"));
  std::string hundred = text + "\n";
  for (int i = 0; i < 100; ++i) hundred += kPeterSig;
  EXPECT_TRUE(IsOk(OpenSignedNote(hundred, known)));
}

TEST(CheckpointTest, SigningWithThePublishedKeyMatchesItsVerifierKey) {
  // PeterNeumann's skey payload is 0x01 || seed. Our signer, holding that seed, must
  // produce the published key id and signatures the published vkey accepts.
  Bytes skey = Must(Base64Decode(kPeterSkeyPayload));
  ASSERT_EQ(skey.size(), 33u);
  ASSERT_EQ(skey[0], 0x01);
  Identity peter = IdentityFromSeed(ByteView(skey).subspan(1));
  sodium_memzero(skey.data(), skey.size());
  const Vkey vkey = ParseVkey(kPeterVkey);
  EXPECT_TRUE(std::equal(vkey.verifier.public_key().begin(), vkey.verifier.public_key().end(),
                         peter.signing_public_key().begin(), peter.signing_public_key().end()));

  Checkpoint c = SampleCheckpoint();
  c.origin = "PeterNeumann";
  std::string note = Must(SignCheckpoint(c, peter));
  SignedNote parsed = Must(ParseSignedNote(note));
  ASSERT_EQ(parsed.signatures.size(), 1u);
  EXPECT_EQ(parsed.signatures[0].name, "PeterNeumann");
  EXPECT_EQ(parsed.signatures[0].key_id, 0xc74f20a3u);
  auto opened = OpenCheckpoint(note, "PeterNeumann", vkey.verifier);
  ASSERT_TRUE(IsOk(opened));
  EXPECT_EQ(opened->checkpoint.size, c.size);
  // The signature is plain Ed25519 over the note text, nothing prepended.
  EXPECT_EQ(crypto_sign_verify_detached(parsed.signatures[0].signature.data(),
                                        reinterpret_cast<const uint8_t*>(parsed.text.data()),
                                        parsed.text.size(), vkey.verifier.public_key().data()),
            0);
}

TEST(CheckpointTest, C2spExamplesParse) {
  auto body = ParseCheckpointBody(kExampleBody);
  ASSERT_TRUE(IsOk(body));
  EXPECT_EQ(body->origin, "example.com/behind-the-sofa");
  EXPECT_EQ(body->size, 20852163u);
  EXPECT_EQ(Base64Encode(body->root), "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=");
  EXPECT_TRUE(body->extensions.empty());
  EXPECT_EQ(Must(FormatCheckpointBody(*body)), kExampleBody);

  auto note = ParseSignedNote(kExampleNote);
  ASSERT_TRUE(IsOk(note));
  EXPECT_EQ(note->text, kExampleBody);
  ASSERT_EQ(note->signatures.size(), 2u);
  EXPECT_EQ(note->signatures[0].name, "example.com/behind-the-sofa");
  EXPECT_EQ(note->signatures[0].signature.size(), 64u);  // Ed25519
  // The witness line is a cosignature/v1: u64be timestamp || Ed25519 signature, and its
  // timestamp is the one of the spec's signed-message example.
  const NoteSignature& w = note->signatures[1];
  EXPECT_EQ(w.name, "witness.example.com/w1");
  ASSERT_EQ(w.signature.size(), 72u);
  uint64_t t = 0;
  for (int i = 0; i < 8; ++i) t = (t << 8) | w.signature[static_cast<size_t>(i)];
  EXPECT_EQ(t, 1679315147u);
  EXPECT_EQ(Must(FormatSignedNote(*note)), kExampleNote);

  // transparency-dev/formats TestCoSigV1Timestamp "works".
  Bytes raw =
      Must(Base64Decode("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/"
                        "iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA=="));
  ASSERT_EQ(raw.size(), 4u + 8u + 64u);
  t = 0;
  for (size_t i = 4; i < 12; ++i) t = (t << 8) | raw[i];
  EXPECT_EQ(t, 1727964367u);
}

// ---- Checkpoint bodies ---------------------------------------------------------------

TEST(CheckpointTest, BodyRoundTrip) {
  for (uint64_t size : {uint64_t{0}, uint64_t{1}, uint64_t{1234}, UINT64_MAX}) {
    Checkpoint c = SampleCheckpoint();
    c.size = size;
    std::string body = Must(FormatCheckpointBody(c));
    Checkpoint back = Must(ParseCheckpointBody(body));
    EXPECT_EQ(back.origin, c.origin);
    EXPECT_EQ(back.size, size);
    EXPECT_EQ(back.root, c.root);
    EXPECT_EQ(Must(FormatCheckpointBody(back)), body);
  }
  Checkpoint c = SampleCheckpoint();
  c.extensions = {"Timestamp: 1689177396617352539", "ext two \xC3\xA9"};
  Checkpoint back = Must(ParseCheckpointBody(Must(FormatCheckpointBody(c))));
  EXPECT_EQ(back.extensions, c.extensions);
  EXPECT_EQ(
      Must(ParseCheckpointBody("a\n18446744073709551615\n" + Base64Encode(c.root) + "\n")).size,
      UINT64_MAX);
}

TEST(CheckpointTest, HostileBodiesAreRefusedWithTheReason) {
  const std::string root = Base64Encode(SomeRoot("r"));
  const std::string origin = "example.com/log";
  auto body = [&](const std::string& o, const std::string& size, const std::string& r) {
    return o + "\n" + size + "\n" + r + "\n";
  };
  struct Case {
    std::string text;
    std::string why;
  };
  const std::vector<Case> cases = {
      {origin + "\n1\n" + root, "does not end with a newline"},
      {"", "does not end with a newline"},
      {body(origin, "01", root), "leading zero"},
      {body(origin, "00", root), "leading zero"},
      {body(origin, "+1", root), "decimal"},
      {body(origin, "-1", root), "decimal"},
      {body(origin, " 1", root), "decimal"},
      {body(origin, "1 ", root), "decimal"},
      {body(origin, "", root), "tree size is empty"},
      {body(origin, "0x10", root), "leading zero"},
      {body(origin, "1x0", root), "decimal"},
      {body(origin, "1e3", root), "decimal"},
      {body(origin, "18446744073709551616", root), "exceeds"},
      {body(origin, "99999999999999999999999", root), "exceeds"},
      {body(origin, "1", "!!!!"), "invalid character"},
      {body(origin, "1", root.substr(0, 43)), "multiple of 4"},
      {body(origin, "1", "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J="), "not canonical"},
      {body(origin, "1", Base64Encode(Bytes(31, 7))), "has 31 bytes"},
      {body(origin, "1", Base64Encode(Bytes(33, 7))), "has 33 bytes"},
      {body(origin, "1", ""), "has 0 bytes"},
      {body("", "1", root), "origin line is empty"},
      {body("example.com log", "1", root), "valid key name"},
      {body("example.com+log", "1", root), "valid key name"},
      {body("example.com\xC2\xA0log", "1", root), "valid key name"},      // U+00A0
      {body("example.com\xE2\x80\x83log", "1", root), "valid key name"},  // U+2003
      {body(std::string(256, 'o'), "1", root), "valid key name"},
      {body("example.com\tlog", "1", root), "control character"},
      {body("example.com\xFFlog", "1", root), "not valid UTF-8"},
      {body("example.com\xC0\xAFlog", "1", root), "not valid UTF-8"},      // overlong '/'
      {body("example.com\xED\xA0\x80log", "1", root), "not valid UTF-8"},  // surrogate
      {body(origin + "\r", "1", root), "control character"},
      {std::string(origin) + "\n1\n" + root + "\n\n", "extension line 1 is empty"},
      {std::string(origin) + "\n1\n" + root + "\next\n\n", "extension line 2 is empty"},
      {std::string(origin) + "\n1\n" + root + std::string("\nex\0t\n", 6), "control character"},
      {origin + "\n1\n", "2 lines"},
      {body(origin, "1", root) + std::string(kMaxNoteBytes, 'x') + "\n", "16 KiB"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(HasError(ParseCheckpointBody(c.text), Status::Code::kMalformed, c.why)) << c.text;
  }
}

TEST(CheckpointTest, FormattingRefusesTextThatWouldReadBackDifferently) {
  Checkpoint c = SampleCheckpoint();
  c.origin = "evil\n999";
  EXPECT_TRUE(HasCode(FormatCheckpointBody(c), Status::Code::kInvalidArgument));
  c.origin = "";
  EXPECT_TRUE(HasCode(FormatCheckpointBody(c), Status::Code::kInvalidArgument));
  c.origin = "has space";
  EXPECT_TRUE(HasCode(FormatCheckpointBody(c), Status::Code::kInvalidArgument));
  c = SampleCheckpoint();
  c.extensions = {"two\nlines"};
  EXPECT_TRUE(HasError(FormatCheckpointBody(c), Status::Code::kInvalidArgument, "newline"));
  c.extensions = {""};
  EXPECT_TRUE(HasError(FormatCheckpointBody(c), Status::Code::kInvalidArgument, "empty"));
  c.extensions = {std::string("nul\0here", 8)};  // would collide with refbus's label || 0x00
  EXPECT_TRUE(HasError(FormatCheckpointBody(c), Status::Code::kInvalidArgument, "control"));
  Identity id = NewIdentity("seoul-broker");
  EXPECT_TRUE(HasCode(SignCheckpoint(c, id), Status::Code::kInvalidArgument));
}

// ---- Signed-note syntax ----------------------------------------------------------------

TEST(CheckpointTest, HostileNotesAreRefusedWithTheReason) {
  const std::string text(kExampleBody);
  const std::string sig = "name AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
  struct Case {
    std::string note;
    Status::Code code;
    std::string why;
  };
  const std::vector<Case> cases = {
      {text, Status::Code::kMalformed, "no blank line"},
      {text + "\n", Status::Code::kMalformed, "no signature lines"},
      {text + "\n" + std::string(kDash) + sig.substr(0, sig.size() - 1), Status::Code::kMalformed,
       "does not end with a newline"},
      {text + "\n- " + sig, Status::Code::kMalformed, "em dash"},
      {text + "\n\xE2\x80\x94" + sig, Status::Code::kMalformed, "em dash"},
      {text + "\n" + std::string(kDash) + "nameonly\n", Status::Code::kMalformed, "no space"},
      {text + "\n" + std::string(kDash) + " AAAAAAAA\n", Status::Code::kMalformed,
       "invalid key name"},
      {text + "\n" + std::string(kDash) + "a+b AAAAAAAA\n", Status::Code::kMalformed,
       "invalid key name"},
      {text + "\n" + std::string(kDash) + "name \n", Status::Code::kMalformed, "empty signature"},
      {text + "\n" + std::string(kDash) + "name AAAA AAA\n", Status::Code::kMalformed,
       "invalid character"},
      {text + "\n" + std::string(kDash) + "name AAAAAA==\n", Status::Code::kMalformed,
       "less than a key id"},
      {text + "\n" + std::string(kDash) + "name AAAAAAB=\n", Status::Code::kMalformed,
       "not canonical"},
      {text + "\n" + std::string(kDash) + sig + "\n", Status::Code::kMalformed,
       "no signature lines"},
      {text + "\n" + std::string(kDash) + "na\tme AAAAAAAA\n", Status::Code::kMalformed,
       "control character"},
      {"\xC3" + text + "\n" + std::string(kDash) + sig, Status::Code::kMalformed, "UTF-8"},
      {std::string(kMaxNoteBytes, 'x') + "\n\n" + std::string(kDash) + sig,
       Status::Code::kResourceExhausted, "16 KiB"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(HasError(ParseSignedNote(c.note), c.code, c.why)) << c.note;
  }
  // The text of a note may hold blank lines: the last one separates the signatures.
  auto ok = ParseSignedNote("a\n\nb\n\n" + std::string(kDash) + sig);
  ASSERT_TRUE(IsOk(ok));
  EXPECT_EQ(ok->text, "a\n\nb\n");
  EXPECT_EQ(Must(FormatSignedNote(*ok)), "a\n\nb\n\n" + std::string(kDash) + sig);
}

// ---- Signing and verifying checkpoints -----------------------------------------------

TEST(CheckpointTest, SignedCheckpointRoundTrip) {
  Identity log = NewIdentity("seoul-broker");
  const Checkpoint c = SampleCheckpoint();
  const std::string note = Must(SignCheckpoint(c, log));
  const NoteVerifier key = LogKey(c.origin, log);
  auto v = OpenCheckpoint(note, c.origin, key);
  ASSERT_TRUE(IsOk(v));
  EXPECT_EQ(v->checkpoint.origin, c.origin);
  EXPECT_EQ(v->checkpoint.size, c.size);
  EXPECT_EQ(v->checkpoint.root, c.root);
  EXPECT_EQ(v->body, Must(FormatCheckpointBody(c)));
  EXPECT_TRUE(v->cosignatures.empty());
  // The key id on the line is SHA-256(name || 0x0A || 0x01 || public key)[:4].
  SignedNote parsed = Must(ParseSignedNote(note));
  Bytes id_input = ToBytes(c.origin);
  id_input.push_back(0x0A);
  id_input.push_back(0x01);
  Append(id_input, log.signing_public_key());
  Bytes digest = Sha256(id_input);
  EXPECT_EQ(parsed.signatures[0].key_id, (uint32_t{digest[0]} << 24) | (uint32_t{digest[1]} << 16) |
                                             (uint32_t{digest[2]} << 8) | digest[3]);
}

TEST(CheckpointTest, WrongKeyIsRefused) {
  Identity log = NewIdentity("seoul-broker");
  Identity other = NewIdentity("busan-broker");
  const Checkpoint c = SampleCheckpoint();
  const std::string by_other = Must(SignCheckpoint(c, other));
  // Another key under the same name has another key id: its signature is unknown.
  EXPECT_TRUE(HasError(OpenCheckpoint(by_other, c.origin, LogKey(c.origin, log)),
                       Status::Code::kUnauthenticated, "no signature from a known key"));
  // Another key's signature relabelled with the log's key id fails verification.
  SignedNote forged = Must(ParseSignedNote(by_other));
  forged.signatures[0].key_id = LogKey(c.origin, log).key_id();
  EXPECT_TRUE(
      HasError(OpenCheckpoint(Must(FormatSignedNote(forged)), c.origin, LogKey(c.origin, log)),
               Status::Code::kUnauthenticated, "does not verify"));
  // A checkpoint of another origin, even by the same key, is another log's.
  Checkpoint elsewhere = c;
  elsewhere.origin = "refbus.example/busan-broker";
  EXPECT_FALSE(
      OpenCheckpoint(Must(SignCheckpoint(elsewhere, log)), c.origin, LogKey(c.origin, log)).ok());
  // The log key must be named after the origin, and be a log (not cosigner) key.
  EXPECT_TRUE(HasCode(
      OpenCheckpoint(Must(SignCheckpoint(c, log)), c.origin, LogKey("refbus.example/other", log)),
      Status::Code::kInvalidArgument));
  EXPECT_TRUE(
      HasCode(OpenCheckpoint(Must(SignCheckpoint(c, log)), c.origin, CosignerKey(c.origin, log)),
              Status::Code::kInvalidArgument));
}

TEST(CheckpointTest, SignatureUnderTheOriginNameOverAnotherOriginIsRefused) {
  // Built by hand: SignCheckpoint always names the key after the origin.
  Identity log = NewIdentity("seoul-broker");
  const Checkpoint c = SampleCheckpoint();
  Checkpoint other = c;
  other.origin = "refbus.example/elsewhere";
  SignedNote n;
  n.text = Must(FormatCheckpointBody(other));
  Bytes sig(crypto_sign_BYTES);
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const uint8_t*>(n.text.data()),
                       n.text.size(), log.signing_secret_key().data());
  n.signatures.push_back({c.origin, LogKey(c.origin, log).key_id(), sig});
  EXPECT_TRUE(HasError(OpenCheckpoint(Must(FormatSignedNote(n)), c.origin, LogKey(c.origin, log)),
                       Status::Code::kUnauthenticated, "another origin"));
}

TEST(CheckpointTest, EveryAlteredByteOfTheBodyIsRefused) {
  Identity log = NewIdentity("seoul-broker");
  const Checkpoint c = SampleCheckpoint();
  const std::string note = Must(SignCheckpoint(c, log));
  const NoteVerifier key = LogKey(c.origin, log);
  const size_t body_len = Must(FormatCheckpointBody(c)).size();
  for (size_t i = 0; i < body_len; ++i) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x20}}) {
      std::string bad = note;
      bad[i] = static_cast<char>(static_cast<uint8_t>(bad[i]) ^ mask);
      EXPECT_FALSE(OpenCheckpoint(bad, c.origin, key).ok()) << "byte " << i;
    }
  }
  // And every byte of the signature line.
  for (size_t i = body_len + 1; i + 1 < note.size(); ++i) {
    std::string bad = note;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(OpenCheckpoint(bad, c.origin, key).ok()) << "byte " << i;
  }
}

TEST(CheckpointTest, UnknownSignaturesAreIgnoredKnownBadOnesAreNot) {
  Identity log = NewIdentity("seoul-broker");
  Identity stranger = NewIdentity("stranger-broker");
  const Checkpoint c = SampleCheckpoint();
  const NoteVerifier key = LogKey(c.origin, log);
  std::string note = Must(SignCheckpoint(c, log));
  // A stranger's cosignature: unknown key, ignored.
  std::string with_stranger =
      Must(AddCosignature(note, "stranger.example/w", stranger, 1700000000));
  auto v = OpenCheckpoint(with_stranger, c.origin, key);
  ASSERT_TRUE(IsOk(v));
  EXPECT_TRUE(v->cosignatures.empty());
  // A bad signature line from the known log key next to a good one: refused.
  SignedNote parsed = Must(ParseSignedNote(note));
  NoteSignature bad = parsed.signatures[0];
  bad.signature[10] ^= 1;
  parsed.signatures.push_back(bad);
  EXPECT_TRUE(HasError(OpenCheckpoint(Must(FormatSignedNote(parsed)), c.origin, key),
                       Status::Code::kUnauthenticated, "does not verify"));
}

// ---- Cosignatures ------------------------------------------------------------------------

TEST(CheckpointTest, CosignatureRoundTripAndTimestampBinding) {
  Identity log = NewIdentity("seoul-broker");
  Identity witness = NewIdentity("witness-one");
  const std::string wname = "witness.example/w1";
  const Checkpoint c = SampleCheckpoint();
  const NoteVerifier key = LogKey(c.origin, log);
  const NoteVerifier wkey = CosignerKey(wname, witness);
  const std::vector<NoteVerifier> cosigners{wkey};
  const uint64_t t = 1700000000;

  const std::string note = Must(AddCosignature(Must(SignCheckpoint(c, log)), wname, witness, t));
  auto v = OpenCheckpoint(note, c.origin, key, cosigners, 1);
  ASSERT_TRUE(IsOk(v));
  ASSERT_EQ(v->cosignatures.size(), 1u);
  EXPECT_EQ(v->cosignatures[0].name, wname);
  EXPECT_EQ(v->cosignatures[0].timestamp_s, t);
  EXPECT_EQ(v->cosignatures[0].type, NoteKeyType::kCosignatureV1);

  // The line carries key id (type 0x04) || u64be time || Ed25519 over
  // "cosignature/v1\ntime <t>\n" || body, checked here with libsodium directly.
  SignedNote parsed = Must(ParseSignedNote(note));
  ASSERT_EQ(parsed.signatures.size(), 2u);
  const NoteSignature& cs = parsed.signatures[1];
  EXPECT_EQ(cs.key_id,
            NoteKeyId(wname, NoteKeyType::kCosignatureV1,
                      std::span<const uint8_t, 32>(witness.signing_public_key().data(), 32)));
  ASSERT_EQ(cs.signature.size(), 72u);
  uint64_t on_line = 0;
  for (size_t i = 0; i < 8; ++i) on_line = (on_line << 8) | cs.signature[i];
  EXPECT_EQ(on_line, t);
  const std::string message = "cosignature/v1\ntime 1700000000\n" + parsed.text;
  EXPECT_EQ(crypto_sign_verify_detached(cs.signature.data() + 8,
                                        reinterpret_cast<const uint8_t*>(message.data()),
                                        message.size(), witness.signing_public_key().data()),
            0);
  EXPECT_EQ(Must(VerifyCosignature(parsed.text, cs, wkey)), t);

  // The timestamp is bound into the signature: change it on the line and it fails.
  for (uint64_t other : {t + 1, t - 1, uint64_t{0}}) {
    SignedNote moved = parsed;
    Bytes& s = moved.signatures[1].signature;
    for (size_t i = 0; i < 8; ++i) s[i] = static_cast<uint8_t>(other >> (56 - 8 * i));
    EXPECT_TRUE(HasError(OpenCheckpoint(Must(FormatSignedNote(moved)), c.origin, key, cosigners, 1),
                         Status::Code::kUnauthenticated, "cosignature by witness.example/w1"));
    EXPECT_FALSE(VerifyCosignature(parsed.text, moved.signatures[1], wkey).ok());
  }
  // A cosignature over another checkpoint does not carry over.
  Checkpoint next = c;
  next.size += 1;
  EXPECT_FALSE(VerifyCosignature(Must(FormatCheckpointBody(next)), cs, wkey).ok());
}

TEST(CheckpointTest, CosignatureRulesAndLimits) {
  Identity log = NewIdentity("seoul-broker");
  Identity witness = NewIdentity("witness-one");
  Identity witness2 = NewIdentity("witness-two");
  const Checkpoint c = SampleCheckpoint();
  const std::string body = Must(FormatCheckpointBody(c));
  const NoteVerifier key = LogKey(c.origin, log);
  const std::string signed_note = Must(SignCheckpoint(c, log));

  // Timestamps above 2^63 - 1 are refused by the spec.
  EXPECT_TRUE(HasCode(CosignCheckpoint(body, "w.example/1", witness, kMaxCosignatureTime + 1),
                      Status::Code::kInvalidArgument));
  EXPECT_TRUE(IsOk(CosignCheckpoint(body, "w.example/1", witness, kMaxCosignatureTime)));
  {
    // A correctly signed line whose time is 2^63 is still refused (built by hand).
    const uint64_t t = kMaxCosignatureTime + 1;
    const std::string msg = "cosignature/v1\ntime " + std::to_string(t) + "\n" + body;
    NoteSignature s{"w.example/1", CosignerKey("w.example/1", witness).key_id(), {}};
    AppendU64BigEndian(s.signature, t);
    Bytes sig(crypto_sign_BYTES);
    crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const uint8_t*>(msg.data()),
                         msg.size(), witness.signing_secret_key().data());
    Append(s.signature, sig);
    EXPECT_TRUE(HasError(VerifyCosignature(body, s, CosignerKey("w.example/1", witness)),
                         Status::Code::kUnauthenticated, "2^63 - 1"));
  }
  // Only checkpoints are cosigned.
  EXPECT_TRUE(HasError(CosignCheckpoint("free text\n", "w.example/1", witness, 1),
                       Status::Code::kMalformed, "refusing to cosign"));
  EXPECT_TRUE(
      HasCode(CosignCheckpoint(body, "bad name", witness, 1), Status::Code::kInvalidArgument));

  // Cosigning twice replaces the earlier line.
  std::string once = Must(AddCosignature(signed_note, "w.example/1", witness, 100));
  std::string twice = Must(AddCosignature(once, "w.example/1", witness, 200));
  SignedNote n = Must(ParseSignedNote(twice));
  ASSERT_EQ(n.signatures.size(), 2u);
  const std::vector<NoteVerifier> one{CosignerKey("w.example/1", witness)};
  EXPECT_EQ(Must(OpenCheckpoint(twice, c.origin, key, one, 1)).cosignatures[0].timestamp_s, 200u);

  // Thresholds count distinct known cosigners.
  const std::vector<NoteVerifier> both{CosignerKey("w.example/1", witness),
                                       CosignerKey("w.example/2", witness2)};
  EXPECT_TRUE(HasError(OpenCheckpoint(twice, c.origin, key, both, 2),
                       Status::Code::kUnauthenticated, "1 valid cosignatures"));
  std::string two = Must(AddCosignature(twice, "w.example/2", witness2, 300));
  EXPECT_EQ(Must(OpenCheckpoint(two, c.origin, key, both, 2)).cosignatures.size(), 2u);
  // A cosignature alone is not a log signature.
  SignedNote only_cosig = Must(ParseSignedNote(two));
  only_cosig.signatures.erase(only_cosig.signatures.begin());
  EXPECT_TRUE(HasError(OpenCheckpoint(Must(FormatSignedNote(only_cosig)), c.origin, key, both),
                       Status::Code::kUnauthenticated, "not signed by the log key"));
  // A cosigner configured as a plain Ed25519 key is refused: the types do not mix.
  const std::vector<NoteVerifier> wrong_type{LogKey("w.example/1", witness)};
  EXPECT_TRUE(
      HasCode(OpenCheckpoint(two, c.origin, key, wrong_type), Status::Code::kInvalidArgument));
  EXPECT_TRUE(
      HasCode(VerifyCosignature(body, only_cosig.signatures[0], LogKey("w.example/1", witness)),
              Status::Code::kInvalidArgument));
  // A cosignature checked against another cosigner's key.
  EXPECT_TRUE(HasCode(
      VerifyCosignature(body, only_cosig.signatures[0], CosignerKey("w.example/2", witness2)),
      Status::Code::kUnauthenticated));
}

TEST(CheckpointTest, VerifierKeysAreValidated) {
  Bytes pk(32, 1);
  EXPECT_TRUE(
      HasCode(NoteVerifier::Create("", NoteKeyType::kEd25519, pk), Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(NoteVerifier::Create("a b", NoteKeyType::kEd25519, pk),
                      Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(NoteVerifier::Create("a+b", NoteKeyType::kEd25519, pk),
                      Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(NoteVerifier::Create("ok", NoteKeyType::kEd25519, Bytes(31, 1)),
                      Status::Code::kInvalidArgument));
  EXPECT_TRUE(HasCode(NoteVerifier::Create("ok", static_cast<NoteKeyType>(0x02), pk),
                      Status::Code::kInvalidArgument));
  // One key, two types: two different key ids.
  EXPECT_NE(Must(NoteVerifier::Create("ok", NoteKeyType::kEd25519, pk)).key_id(),
            Must(NoteVerifier::Create("ok", NoteKeyType::kCosignatureV1, pk)).key_id());
  EXPECT_TRUE(IsValidKeyName("example.com/log42"));
  EXPECT_TRUE(IsValidKeyName("\xC3\xA9t\xC3\xA9"));
  EXPECT_FALSE(
      IsValidKeyName("a\xE3\x80\x80"
                     "b"));  // U+3000 ideographic space
  EXPECT_FALSE(IsValidKeyName(std::string(256, 'a')));
  EXPECT_TRUE(IsValidKeyName(std::string(255, 'a')));
}

}  // namespace
}  // namespace refbus::keys
