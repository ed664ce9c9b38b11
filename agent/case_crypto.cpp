#include "agent/case_crypto.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/file.h"

namespace refbus::agent {
namespace {

constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr uint8_t kFileVersion = 1;
constexpr size_t kFileBytes = 1 + kNonce + kDataKeyBytes + kTag;
constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "rbgrntky";

bool IsGrantHex(const std::string& s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
         });
}

Status BadGrant(const std::string& g) {
  return InvalidArgument("not a grant id: '" + g.substr(0, 40) + "'");
}

std::string KeyAd(const std::string& grant_hex) { return "refbus grant data key v1|" + grant_hex; }

std::string TextAd(const std::string& grant_hex, std::string_view place) {
  return "refbus case text v1|" + grant_hex + "|" + std::string(place);
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open " + dir + " to fsync it");
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return IoError("cannot fsync " + dir);
  return Status::Ok();
}

// Overwrites a file's bytes with zeros in place and fsyncs it (before it is unlinked).
Status ZeroFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return errno == ENOENT ? Status::Ok() : IoError("cannot open " + path + " to wipe it");
  struct stat st {};
  Status s = Status::Ok();
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    Bytes zeros(static_cast<size_t>(st.st_size), 0);
    if (::pwrite(fd, zeros.data(), zeros.size(), 0) != static_cast<ssize_t>(zeros.size()) ||
        ::fsync(fd) != 0) {
      s = IoError("cannot wipe " + path);
    }
  }
  ::close(fd);
  return s;
}

}  // namespace

std::string TextPlace(std::string_view table, std::string_view key, std::string_view field) {
  std::string out(table);
  out += '/';
  out += key;
  out += '/';
  out += field;
  return out;
}

Result<std::unique_ptr<GrantKeys>> GrantKeys::Open(const std::string& dir,
                                                   const keys::Identity& identity) {
  REFBUS_RETURN_IF_ERROR(MakeDirectories(dir, 0700));
  if (::chmod(dir.c_str(), 0700) != 0) return IoError("cannot make " + dir + " private (0700)");
  REFBUS_ASSIGN_OR_RETURN(auto wrap, keys::SecretKey<kDataKeyBytes>::Allocate());
  static_assert(crypto_kdf_KEYBYTES <= keys::kSigningSecretBytes);
  // libsodium's Ed25519 secret key is seed || public key: the seed is the master key.
  crypto_kdf_derive_from_key(wrap.data(), kDataKeyBytes, 1, kKdfContext,
                             identity.signing_secret_key().data());
  return std::unique_ptr<GrantKeys>(new GrantKeys(dir, std::move(wrap)));
}

std::string GrantKeys::PathOf(const std::string& g) const { return dir_ + "/" + g + ".key"; }
std::string GrantKeys::TombPathOf(const std::string& g) const {
  return dir_ + "/" + g + ".destroyed";
}

bool GrantKeys::Has(const std::string& g) const {
  return IsGrantHex(g) && (cache_.count(g) > 0 || PathExists(PathOf(g)));
}

Result<const keys::SecretKey<kDataKeyBytes>*> GrantKeys::Load(const std::string& g, bool create) {
  if (!IsGrantHex(g)) return BadGrant(g);
  if (auto it = cache_.find(g); it != cache_.end()) return &it->second;
  REFBUS_ASSIGN_OR_RETURN(auto key, keys::SecretKey<kDataKeyBytes>::Allocate());
  const std::string path = PathOf(g);
  const std::string ad = KeyAd(g);
  if (PathExists(path)) {
    REFBUS_RETURN_IF_ERROR(CheckPrivateFile(path));
    REFBUS_ASSIGN_OR_RETURN(Bytes file, ReadFile(path, 4096));
    if (file.size() != kFileBytes || file[0] != kFileVersion ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(key.data(), nullptr, nullptr,
                                                   file.data() + 1 + kNonce, kDataKeyBytes + kTag,
                                                   reinterpret_cast<const uint8_t*>(ad.data()),
                                                   ad.size(), file.data() + 1, wrap_.data()) != 0) {
      return Malformed("grant data key " + path + " does not open with this agency's identity");
    }
  } else {
    if (PathExists(TombPathOf(g))) {
      return FailedPrecondition("the data of grant " + g + " was purged (its data key destroyed)");
    }
    if (!create) {
      return FailedPrecondition("no data key for grant " + g + " (purged, or never made)");
    }
    crypto_aead_xchacha20poly1305_ietf_keygen(key.data());
    Bytes file(kFileBytes);
    file[0] = kFileVersion;
    randombytes_buf(file.data() + 1, kNonce);
    crypto_aead_xchacha20poly1305_ietf_encrypt(file.data() + 1 + kNonce, nullptr, key.data(),
                                               kDataKeyBytes,
                                               reinterpret_cast<const uint8_t*>(ad.data()),
                                               ad.size(), nullptr, file.data() + 1, wrap_.data());
    REFBUS_RETURN_IF_ERROR(WriteFileAtomic(path, file, kPrivateFileMode));
  }
  auto [it, inserted] = cache_.emplace(g, std::move(key));
  return &it->second;
}

Result<const keys::SecretKey<kDataKeyBytes>*> GrantKeys::KeyOf(const std::string& g) {
  return Load(g, false);
}

Result<SealedText> GrantKeys::Seal(const std::string& g, std::string_view place,
                                   std::string_view text) {
  REFBUS_ASSIGN_OR_RETURN(const keys::SecretKey<kDataKeyBytes>* key, Load(g, true));
  SealedText s;
  s.grant_id = g;
  s.place = std::string(place);
  s.nonce = keys::RandomBytes(kNonce);
  s.box.resize(text.size() + kTag);
  const std::string ad = TextAd(g, place);
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      s.box.data(), nullptr, reinterpret_cast<const uint8_t*>(text.data()), text.size(),
      reinterpret_cast<const uint8_t*>(ad.data()), ad.size(), nullptr, s.nonce.data(), key->data());
  return s;
}

bool TryUnseal(const SealedText& s, std::string_view place, const uint8_t* key, std::string* out) {
  if (s.nonce.size() != kNonce || s.box.size() < kTag) return false;
  const std::string ad = TextAd(s.grant_id, place);
  std::string text(s.box.size() - kTag, '\0');
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<uint8_t*>(text.data()), nullptr, nullptr, s.box.data(), s.box.size(),
          reinterpret_cast<const uint8_t*>(ad.data()), ad.size(), s.nonce.data(), key) != 0) {
    return false;
  }
  *out = std::move(text);
  return true;
}

Result<std::string> GrantKeys::Unseal(const SealedText& s, std::string_view place) {
  auto key = Load(s.grant_id, false);
  if (!key.ok()) {
    if (key.status().code() == Status::Code::kFailedPrecondition) {
      return FailedPrecondition("purged: the data of grant " + s.grant_id +
                                " was purged; its text can no longer be read");
    }
    return key.status();
  }
  std::string out;
  if (!TryUnseal(s, place, (*key)->data(), &out)) {
    return Malformed("sealed text at " + std::string(place) + " does not open under grant " +
                     s.grant_id + "'s data key (damaged or moved)");
  }
  return out;
}

Status GrantKeys::Destroy(const std::string& g) {
  if (!IsGrantHex(g)) return BadGrant(g);
  // The marker first: once it is durable no new key is made for the grant.
  REFBUS_RETURN_IF_ERROR(WriteFileAtomic(TombPathOf(g), {}, kPrivateFileMode));
  cache_.erase(g);  // SecretKey wipes on free
  const std::string path = PathOf(g);
  REFBUS_RETURN_IF_ERROR(ZeroFile(path));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return IoError("cannot remove " + path);
  return FsyncDir(dir_);
}

Bytes EncodeSealedBlob(const SealedText& s) {
  Bytes out(kSealedBlobMagic.begin(), kSealedBlobMagic.end());
  auto grant = HexDecode(s.grant_id);
  if (grant.ok()) out.insert(out.end(), grant->begin(), grant->end());
  out.insert(out.end(), s.nonce.begin(), s.nonce.end());
  out.push_back(static_cast<uint8_t>(s.place.size() >> 8));
  out.push_back(static_cast<uint8_t>(s.place.size() & 0xff));
  out.insert(out.end(), s.place.begin(), s.place.end());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>((s.box.size() >> shift) & 0xff));
  }
  out.insert(out.end(), s.box.begin(), s.box.end());
  return out;
}

Result<SealedText> DecodeSealedBlob(ByteView b) {
  const Status bad = Malformed("not a sealed form (damaged or of another kind)");
  constexpr size_t kFixed = kSealedBlobMagic.size() + 16 + kNonce;
  if (b.size() < kFixed + 2 ||
      !std::equal(kSealedBlobMagic.begin(), kSealedBlobMagic.end(), b.begin(),
                  [](char c, uint8_t x) { return static_cast<uint8_t>(c) == x; })) {
    return bad;
  }
  SealedText s;
  s.grant_id = HexEncode(b.subspan(kSealedBlobMagic.size(), 16));
  s.nonce.assign(b.begin() + kSealedBlobMagic.size() + 16, b.begin() + kFixed);
  size_t at = kFixed;
  const size_t place_len = (size_t{b[at]} << 8) | b[at + 1];
  at += 2;
  if (b.size() < at + place_len + 4) return bad;
  s.place.assign(reinterpret_cast<const char*>(b.data()) + at, place_len);
  at += place_len;
  size_t box_len = 0;
  for (size_t i = 0; i < 4; ++i) box_len = (box_len << 8) | b[at + i];
  at += 4;
  if (b.size() != at + box_len || box_len < kTag) return bad;
  s.box.assign(b.begin() + static_cast<std::ptrdiff_t>(at), b.end());
  return s;
}

Result<std::vector<std::string>> GrantKeys::Grants() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    std::string name = e.path().filename().string();
    if (name.size() == 36 && name.ends_with(".key") && IsGrantHex(name.substr(0, 32))) {
      out.push_back(name.substr(0, 32));
    }
  }
  if (ec) return IoError("cannot list " + dir_ + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace refbus::agent
