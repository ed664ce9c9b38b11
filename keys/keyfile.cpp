#include "keys/keyfile.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "core/file.h"
#include "keys/crypto.h"
#include "schema/codec.h"

namespace refbus::keys {
namespace {

constexpr uint8_t kBundleVersion = 1;
constexpr size_t kSaltBytes = crypto_pwhash_SALTBYTES;
constexpr uint64_t kMaxMemlimit = 1ull << 30;  // refuse files that ask for more than 1 GiB

// Writes into a SecretBuffer at a cursor; sizes are computed in advance.
class Writer {
 public:
  explicit Writer(SecretBuffer& b) : b_(b) {}
  void Put(const uint8_t* p, size_t n) {
    std::memcpy(b_.data() + pos_, p, n);
    pos_ += n;
  }
  void U8(uint8_t v) { Put(&v, 1); }
  void U16(uint16_t v) {
    uint8_t x[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    Put(x, 2);
  }
  void U32(uint32_t v) {
    uint8_t x[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                    static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    Put(x, 4);
  }
  size_t pos() const { return pos_; }

 private:
  SecretBuffer& b_;
  size_t pos_ = 0;
};

class Reader {
 public:
  explicit Reader(ByteView b) : b_(b) {}
  bool Take(size_t n, const uint8_t** out) {
    if (b_.size() - pos_ < n) return false;
    *out = b_.data() + pos_;
    pos_ += n;
    return true;
  }
  bool U8(uint8_t* v) {
    const uint8_t* p;
    if (!Take(1, &p)) return false;
    *v = p[0];
    return true;
  }
  bool U16(uint16_t* v) {
    const uint8_t* p;
    if (!Take(2, &p)) return false;
    *v = static_cast<uint16_t>((p[0] << 8) | p[1]);
    return true;
  }
  bool U32(uint32_t* v) {
    const uint8_t* p;
    if (!Take(4, &p)) return false;
    *v = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    return true;
  }
  bool AtEnd() const { return pos_ == b_.size(); }

 private:
  ByteView b_;
  size_t pos_ = 0;
};

// Bundle: u8 version | u8 has_transport | 64 signing | [32 transport] | u16 n |
//         n x (u32 len | prekey bytes | 64 signature | 32 secret)
Result<SecretBuffer> EncodeBundle(const Identity& id) {
  size_t n = 2 + kSigningSecretBytes + (id.has_transport() ? kX25519SecretBytes : 0) + 2;
  for (const auto& p : id.prekeys()) {
    n += 4 + p.signed_prekey.prekey_bytes.size() + schema::kSignatureBytes + kX25519SecretBytes;
  }
  REFBUS_ASSIGN_OR_RETURN(SecretBuffer b, SecretBuffer::Allocate(n));
  Writer w(b);
  w.U8(kBundleVersion);
  w.U8(id.has_transport() ? 1 : 0);
  w.Put(id.signing_secret_key().data(), kSigningSecretBytes);
  if (id.has_transport()) w.Put(id.transport_secret_key().data(), kX25519SecretBytes);
  w.U16(static_cast<uint16_t>(id.prekeys().size()));
  for (const auto& p : id.prekeys()) {
    const Bytes& pb = p.signed_prekey.prekey_bytes;
    w.U32(static_cast<uint32_t>(pb.size()));
    w.Put(pb.data(), pb.size());
    w.Put(p.signed_prekey.signature.data(), schema::kSignatureBytes);
    w.Put(p.secret.data(), kX25519SecretBytes);
  }
  if (w.pos() != n) std::abort();
  return b;
}

Status BundleDamaged() {
  return Malformed("key file is damaged: its secret bundle does not decode");
}

Result<Identity> DecodeBundle(const std::string& party_id, schema::PartyKind kind,
                              ByteView bundle) {
  Reader r(bundle);
  uint8_t version = 0, has_transport = 0;
  if (!r.U8(&version) || !r.U8(&has_transport)) return BundleDamaged();
  if (version != kBundleVersion) {
    return Malformed("key file bundle version " + std::to_string(version) +
                     " is not one this refbus reads (1)");
  }
  const uint8_t* p = nullptr;
  if (!r.Take(kSigningSecretBytes, &p)) return BundleDamaged();
  REFBUS_ASSIGN_OR_RETURN(auto signing, SecretKey<kSigningSecretBytes>::Allocate());
  std::memcpy(signing.data(), p, kSigningSecretBytes);
  std::unique_ptr<SecretKey<kX25519SecretBytes>> transport;
  if (has_transport > 1) return BundleDamaged();
  if (has_transport == 1) {
    if (!r.Take(kX25519SecretBytes, &p)) return BundleDamaged();
    REFBUS_ASSIGN_OR_RETURN(auto t, SecretKey<kX25519SecretBytes>::Allocate());
    std::memcpy(t.data(), p, kX25519SecretBytes);
    transport = std::make_unique<SecretKey<kX25519SecretBytes>>(std::move(t));
  }
  uint16_t count = 0;
  if (!r.U16(&count)) return BundleDamaged();
  std::vector<PrekeyEntry> prekeys;
  for (uint16_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    if (!r.U32(&len) || len > schema::kMaxRecordBytes || !r.Take(len, &p)) return BundleDamaged();
    schema::SignedPrekey sp;
    sp.prekey_bytes.assign(p, p + len);
    REFBUS_ASSIGN_OR_RETURN(sp.prekey, schema::DecodePrekey(sp.prekey_bytes));
    if (!r.Take(schema::kSignatureBytes, &p)) return BundleDamaged();
    sp.signature.assign(p, p + schema::kSignatureBytes);
    if (!r.Take(kX25519SecretBytes, &p)) return BundleDamaged();
    REFBUS_ASSIGN_OR_RETURN(auto secret, SecretKey<kX25519SecretBytes>::Allocate());
    std::memcpy(secret.data(), p, kX25519SecretBytes);
    Bytes id = KeyId(KeyUse::kPrekey, sp.prekey.public_key);
    prekeys.push_back(PrekeyEntry{std::move(sp), std::move(id), std::move(secret)});
  }
  if (!r.AtEnd()) return BundleDamaged();
  return Identity::FromSecrets(party_id, kind, std::move(signing), std::move(transport),
                               std::move(prekeys));
}

// Binds the outer fields to the payload (checksum input or AEAD associated data).
Bytes Binding(std::string_view label, const schema::SecretKeyFile& f) {
  Bytes out = SignatureInput(label, AsBytes(f.party_id));
  out.push_back(0);
  out.push_back(static_cast<uint8_t>(f.kind));
  out.push_back(static_cast<uint8_t>(f.protection));
  Append(out, f.kdf_salt);
  AppendU64BigEndian(out, f.kdf_opslimit);
  AppendU64BigEndian(out, f.kdf_memlimit);
  return out;
}

Bytes Checksum(const schema::SecretKeyFile& f, ByteView payload) {
  Bytes in = Binding(kLabelKeyFileChecksum, f);
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 32);
  crypto_generichash_update(&st, in.data(), in.size());
  crypto_generichash_update(&st, payload.data(), payload.size());
  Bytes out(32);
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

Result<SecretKey<32>> DeriveKey(const SecretBuffer& passphrase, const schema::SecretKeyFile& f) {
  REFBUS_ASSIGN_OR_RETURN(auto key, SecretKey<32>::Allocate());
  if (crypto_pwhash(key.data(), key.size(), reinterpret_cast<const char*>(passphrase.data()),
                    passphrase.size(), f.kdf_salt.data(), f.kdf_opslimit,
                    static_cast<size_t>(f.kdf_memlimit), crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return ResourceExhausted("not enough memory to derive the key-file key (Argon2id)");
  }
  return key;
}

// A private file read whole into locked memory, and what fstat said of the descriptor it
// was read through.
struct PrivateFile {
  SecretBuffer bytes;
  mode_t mode = 0;
  uid_t owner = 0;
};

// Opens path once (refusing a symbolic link, whose target could change between a check and
// a read, and not waiting on a FIFO), checks the descriptor with fstat (a regular file of
// at most max_bytes), and reads it straight into locked memory: the bytes never pass
// through ordinary memory (PROTOCOL.md section 7). The caller checks mode and owner
// (CheckPrivateMode) when it is ready to; they are those of the very file read.
Result<PrivateFile> ReadPrivateFile(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return NotFound("no such file: " + path);
    if (err == ELOOP) {
      return InvalidArgument(path + " is a symbolic link; name the file itself");
    }
    if (err == EACCES)
      return PermissionDenied("cannot read " + path + ": " + std::system_category().message(err));
    return IoError("cannot open " + path + ": " + std::system_category().message(err));
  }
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return IoError("cannot stat " + path + ": " + std::system_category().message(errno));
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return ResourceExhausted(path + " is " + std::to_string(st.st_size) +
                             " bytes, more than the limit of " + std::to_string(max_bytes));
  }
  PrivateFile out;
  out.mode = st.st_mode;
  out.owner = st.st_uid;
  REFBUS_ASSIGN_OR_RETURN(SecretBuffer buf,
                          SecretBuffer::Allocate(static_cast<size_t>(st.st_size)));
  size_t done = 0;
  while (done < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("cannot read " + path + ": " + std::system_category().message(errno));
    if (n == 0) break;  // the file shrank while being read: refused below
    done += static_cast<size_t>(n);
  }
  if (done != buf.size()) return IoError(path + " changed while it was being read");
  out.bytes = std::move(buf);
  return out;
}

Result<schema::SecretKeyFile> ReadContainer(const std::string& path) {
  REFBUS_ASSIGN_OR_RETURN(PrivateFile file, ReadPrivateFile(path, schema::kMaxRecordBytes));
  // What the file is comes first: a public record given by mistake is named as such, and
  // nobody is advised to chmod it.
  auto body =
      schema::StripMagic(schema::kSecretKeyFileMagic, file.bytes.view(), "refbus secret key");
  if (!body.ok()) return body.status().WithContext(path);
  REFBUS_RETURN_IF_ERROR(CheckPrivateMode(path, file.mode, file.owner));
  auto f = schema::DecodeSecretKeyFile(*body);
  if (!f.ok()) return f.status().WithContext(path + " is damaged or not a key file");
  return f;
}

}  // namespace

KdfCost DefaultKdfCost() {
  return {crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE};
}

KdfCost AuthorityKdfCost() {
  return {crypto_pwhash_OPSLIMIT_MODERATE, crypto_pwhash_MEMLIMIT_MODERATE};
}

KdfCost LeastKdfCost() {
  return {crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE};
}

Status SaveIdentity(const Identity& identity, const std::string& path,
                    const SecretBuffer* passphrase, KdfCost cost) {
  REFBUS_ASSIGN_OR_RETURN(SecretBuffer bundle, EncodeBundle(identity));
  schema::SecretKeyFile f;
  f.party_id = identity.party_id();
  f.kind = identity.kind();
  if (passphrase == nullptr) {
    f.protection = schema::KeyProtection::kNone;
    f.payload.assign(bundle.data(), bundle.data() + bundle.size());
    f.checksum = Checksum(f, bundle.view());
  } else {
    if (passphrase->empty()) return InvalidArgument("the passphrase is empty");
    f.protection = schema::KeyProtection::kArgon2idXChaCha20Poly1305;
    f.kdf_salt = RandomBytes(kSaltBytes);
    f.kdf_opslimit = cost.opslimit;
    f.kdf_memlimit = cost.memlimit;
    f.nonce = RandomBytes(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    REFBUS_ASSIGN_OR_RETURN(auto key, DeriveKey(*passphrase, f));
    Bytes ad = Binding(kLabelKeyFileAead, f);
    f.payload.resize(bundle.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(f.payload.data(), &clen, bundle.data(),
                                               bundle.size(), ad.data(), ad.size(), nullptr,
                                               f.nonce.data(), key.data());
  }
  Bytes body = schema::EncodeSecretKeyFile(f);
  f.WipePayload();
  Bytes file = schema::WithMagic(schema::kSecretKeyFileMagic, body);
  sodium_memzero(body.data(), body.size());
  Status s = WriteFileAtomic(path, file, kPrivateFileMode);
  sodium_memzero(file.data(), file.size());
  return s;
}

Result<Identity> LoadIdentity(const std::string& path, const SecretBuffer* passphrase,
                              KdfCost least) {
  REFBUS_ASSIGN_OR_RETURN(schema::SecretKeyFile f, ReadContainer(path));
  struct WipeFile {
    schema::SecretKeyFile& f;
    ~WipeFile() { f.WipePayload(); }
  } wipe{f};
  if (f.protection == schema::KeyProtection::kNone) {
    if (!ConstantTimeEquals(Checksum(f, f.payload), f.checksum)) {
      return Malformed(path + " is damaged: its checksum does not match (restore it from backup)");
    }
    auto id = DecodeBundle(f.party_id, f.kind, f.payload);
    if (!id.ok()) return id.status().WithContext(path);
    return id;
  }
  if (passphrase == nullptr) {
    return FailedPrecondition(path +
                              " is protected by a passphrase: give it with --passphrase-file");
  }
  if (f.kdf_opslimit < crypto_pwhash_OPSLIMIT_MIN ||
      f.kdf_opslimit > crypto_pwhash_OPSLIMIT_SENSITIVE ||
      f.kdf_memlimit < crypto_pwhash_MEMLIMIT_MIN || f.kdf_memlimit > kMaxMemlimit) {
    return Malformed(path + " asks for Argon2id costs outside the accepted range");
  }
  if (f.kdf_opslimit < least.opslimit || f.kdf_memlimit < least.memlimit) {
    return FailedPrecondition(
        path + " is protected with Argon2id costs (" + std::to_string(f.kdf_opslimit) +
        " passes, " + std::to_string(f.kdf_memlimit >> 20) + " MiB) below the least accepted (" +
        std::to_string(least.opslimit) + " passes, " + std::to_string(least.memlimit >> 20) +
        " MiB): its passphrase is too cheap to guess. Make a new key file with refbus-keys");
  }
  if (f.payload.size() < crypto_aead_xchacha20poly1305_ietf_ABYTES) {
    return Malformed(path + " is damaged: its payload is truncated");
  }
  REFBUS_ASSIGN_OR_RETURN(auto key, DeriveKey(*passphrase, f));
  Bytes ad = Binding(kLabelKeyFileAead, f);
  REFBUS_ASSIGN_OR_RETURN(
      SecretBuffer bundle,
      SecretBuffer::Allocate(f.payload.size() - crypto_aead_xchacha20poly1305_ietf_ABYTES));
  unsigned long long mlen = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(bundle.data(), &mlen, nullptr, f.payload.data(),
                                                 f.payload.size(), ad.data(), ad.size(),
                                                 f.nonce.data(), key.data()) != 0) {
    return Unauthenticated("cannot open " + path + ": wrong passphrase, or the file is damaged");
  }
  auto id = DecodeBundle(f.party_id, f.kind, bundle.view());
  if (!id.ok()) return id.status().WithContext(path);
  return id;
}

Result<bool> IsProtected(const std::string& path) {
  REFBUS_ASSIGN_OR_RETURN(schema::SecretKeyFile f, ReadContainer(path));
  f.WipePayload();
  return f.protection == schema::KeyProtection::kArgon2idXChaCha20Poly1305;
}

Result<SecretBuffer> ReadPassphraseFile(const std::string& path) {
  REFBUS_ASSIGN_OR_RETURN(PrivateFile file, ReadPrivateFile(path, 4096));
  REFBUS_RETURN_IF_ERROR(CheckPrivateMode(path, file.mode, file.owner));
  const uint8_t* raw = file.bytes.data();
  size_t n = file.bytes.size();
  while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r')) --n;
  if (n == 0) return InvalidArgument("passphrase file " + path + " is empty");
  return SecretBuffer::CopyOf(file.bytes.view().first(n));  // locked to locked
}

}  // namespace refbus::keys
