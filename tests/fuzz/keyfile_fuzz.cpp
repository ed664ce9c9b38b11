// libFuzzer target: key files and the other small trust files a party loads at start
// (a damaged, foreign or hostile file must give a clear error, never a crash).
//
// Input: one selector byte, then the file's bytes. Files are written to a private folder
// with mode 0600 (tests/fuzz/temp_dir.h) and loaded through the real loaders.
//   0  keys::LoadIdentity without a passphrase
//   1  keys::LoadIdentity with the fixture passphrase, when the file asks for cheap
//      Argon2id costs (opslimit <= 2, memlimit <= 64 KiB); otherwise without one
//   2  the SecretKeyFile container itself (schema::DecodeSecretKeyFile, no magic line)
//   3  keys::LoadTrustAnchor (authority.pub)
//   4  keys::TrustState::Open (trust-state), then Check against the fixture directory
//   5  keys::ReadPartyRecordFile
// Checks beyond "does not crash": an identity that loads saves and loads again with the
// same public keys and prekeys; the same bytes with mode 0640 are refused; a protected
// file never loads without its passphrase and never with a wrong one; the container's
// decode -> encode -> decode is a fixed point; an anchor is an authority whose key id
// matches its key; a party record file holds exactly a signed record that decodes on its
// own.
#include <cstddef>
#include <cstdint>
#include <string>

#include "keys/crypto.h"
#include "keys/directory.h"
#include "keys/keyfile.h"
#include "keys/secret.h"
#include "schema/codec.h"
#include "tests/fuzz/checks.h"
#include "tests/fuzz/fixtures.h"
#include "tests/fuzz/temp_dir.h"

namespace {

using refbus::Bytes;
using refbus::ByteView;
namespace keys = refbus::keys;
namespace schema = refbus::schema;

const refbus::fuzz::TempDir& Dir() {
  static const refbus::fuzz::TempDir dir;
  return dir;
}

const keys::SecretBuffer& Passphrase(bool wrong) {
  static const keys::SecretBuffer right =
      keys::SecretBuffer::CopyOf(refbus::AsBytes(refbus::fuzz::kPassphrase)).value();
  static const keys::SecretBuffer other =
      keys::SecretBuffer::CopyOf(refbus::AsBytes("wrong")).value();
  return wrong ? other : right;
}

void SameKeys(const keys::Identity& a, const keys::Identity& b) {
  FUZZ_CHECK(a.party_id() == b.party_id() && a.kind() == b.kind(), "reloaded identity: id, kind");
  FUZZ_CHECK(a.signing_public_key() == b.signing_public_key() &&
                 a.transport_public_key() == b.transport_public_key(),
             "reloaded identity: public keys differ");
  FUZZ_CHECK(a.prekeys().size() == b.prekeys().size(), "reloaded identity: prekey count");
  for (size_t i = 0; i < a.prekeys().size(); ++i) {
    FUZZ_CHECK(a.prekeys()[i].id == b.prekeys()[i].id &&
                   a.prekeys()[i].signed_prekey.prekey_bytes ==
                       b.prekeys()[i].signed_prekey.prekey_bytes &&
                   a.prekeys()[i].secret.Equals(b.prekeys()[i].secret),
               "reloaded identity: prekeys differ");
  }
}

// What the container says about protection and costs, if it decodes.
bool CheapProtected(ByteView file, bool* is_protected) {
  *is_protected = false;
  auto body = schema::StripMagic(schema::kSecretKeyFileMagic, file, "refbus secret key");
  if (!body.ok()) return false;
  auto f = schema::DecodeSecretKeyFile(*body);
  if (!f.ok()) return false;
  f->WipePayload();
  *is_protected = f->protection == schema::KeyProtection::kArgon2idXChaCha20Poly1305;
  return *is_protected && f->kdf_opslimit <= 2 && f->kdf_memlimit <= 64 * 1024;
}

void CheckIdentityFile(ByteView file, bool with_passphrase) {
  const auto& dir = Dir();
  const std::string path = dir.Write("identity.key", file, 0600);
  bool is_protected = false;
  const bool cheap = CheapProtected(file, &is_protected);
  auto id = keys::LoadIdentity(path, nullptr);
  FUZZ_CHECK(!(id.ok() && is_protected), "a protected key file loads without a passphrase");
  keys::KdfCost cost{1, 8192};  // the minimum: the fixture seeds use it too
  const keys::SecretBuffer* pass = nullptr;
  if (with_passphrase && cheap) {
    // The floor lowered to the seeds' cost: loading them must reach the derivation.
    FUZZ_CHECK(!keys::LoadIdentity(path, &Passphrase(/*wrong=*/true), cost).ok(),
               "a protected key file loads with a wrong passphrase");
    id = keys::LoadIdentity(path, &Passphrase(/*wrong=*/false), cost);
    pass = &Passphrase(false);
  }
  if (!id.ok()) return;
  FUZZ_CHECK(schema::IsValidPartyId(id->party_id()), "a loaded identity has an invalid id");
  const std::string again = dir.path() + "/again.key";
  FUZZ_CHECK(keys::SaveIdentity(*id, again, pass, cost).ok(), "a loaded identity does not save");
  auto reloaded = keys::LoadIdentity(again, pass, cost);
  FUZZ_CHECK(reloaded.ok(), "a saved identity does not load: " + reloaded.status().ToString());
  SameKeys(*id, *reloaded);
  const std::string loose = dir.Write("loose.key", file, 0640);
  FUZZ_CHECK(!keys::LoadIdentity(loose, pass, cost).ok(), "a key file readable by its group loads");
}

void CheckAnchorFile(ByteView file) {
  auto a = keys::LoadTrustAnchor(Dir().Write("authority.pub", file, 0600));
  if (!a.ok()) return;
  FUZZ_CHECK(schema::IsValidPartyId(a->authority_id), "anchor id");
  FUZZ_CHECK(a->signing_key.size() == schema::kPublicKeyBytes, "anchor key size");
  FUZZ_CHECK(a->key_id == keys::KeyId(keys::KeyUse::kSigning, a->signing_key),
             "anchor key id does not match its key");
}

void CheckTrustStateFile(ByteView file) {
  auto s = keys::TrustState::Open(Dir().Write("trust-state", file, 0600));
  if (!s.ok()) return;
  const auto& d = refbus::fuzz::Get().directory;
  auto c = s->Check(d);
  if (d.directory.serial < s->highest_serial()) {
    FUZZ_CHECK(!c.ok(), "TrustState accepts a directory older than its serial");
  }
}

void CheckPartyRecordFile(ByteView file) {
  auto r = keys::ReadPartyRecordFile(Dir().Write("party.record", file, 0600));
  if (!r.ok()) return;
  auto body = schema::StripMagic(schema::kPartyRecordFileMagic, file, "refbus party record");
  FUZZ_CHECK(body.ok(), "a party record file loads without its magic line");
  FUZZ_CHECK(refbus::fuzz::CheckSignedPartyRecord(*body),
             "a party record file loads whose body does not decode");
  FUZZ_CHECK(schema::EncodeSignedPartyRecord(*r) ==
                 schema::EncodeSignedPartyRecord(*schema::DecodeSignedPartyRecord(*body)),
             "ReadPartyRecordFile and DecodeSignedPartyRecord disagree");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  (void)refbus::fuzz::Get();
  (void)Dir();
  (void)Passphrase(false);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ByteView in(data + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      CheckIdentityFile(in, false);
      break;
    case 1:
      CheckIdentityFile(in, true);
      break;
    case 2:
      refbus::fuzz::CheckSecretKeyFile(in);
      break;
    case 3:
      CheckAnchorFile(in);
      break;
    case 4:
      CheckTrustStateFile(in);
      break;
    default:
      CheckPartyRecordFile(in);
      break;
  }
  return 0;
}
