#include "agent/operators.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "keys/crypto.h"

namespace refbus::agent {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxStoreBytes = size_t{4} << 20;
constexpr int kFormat = 1;
constexpr size_t kKeyBytes = crypto_aead_xchacha20poly1305_ietf_KEYBYTES;

// Argon2id at libsodium's INTERACTIVE limits (the floor the design sets).
constexpr unsigned long long kOpsLimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
constexpr size_t kMemLimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;

Status CheckPassword(ByteView password) {
  if (password.size() < kMinPasswordBytes || password.size() > kMaxPasswordBytes) {
    return InvalidArgument("a password must be " + std::to_string(kMinPasswordBytes) + " to " +
                           std::to_string(kMaxPasswordBytes) + " bytes long");
  }
  return Status::Ok();
}

// The associated data of a sealed secret: the key belongs to this name and public key.
Bytes SealAd(const std::string& name, ByteView public_key) {
  Bytes ad(name.begin(), name.end());
  ad.push_back(0);
  ad.insert(ad.end(), public_key.begin(), public_key.end());
  return ad;
}

// The sealing key from the password and salt, in locked memory.
Result<keys::SecretKey<kKeyBytes>> SealingKey(ByteView password, ByteView salt) {
  REFBUS_ASSIGN_OR_RETURN(auto key, keys::SecretKey<kKeyBytes>::Allocate());
  if (crypto_pwhash(key.data(), kKeyBytes, reinterpret_cast<const char*>(password.data()),
                    password.size(), salt.data(), kOpsLimit, kMemLimit,
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return ResourceExhausted("not enough memory to derive a key from the password");
  }
  return key;
}

// Fills the record's password hash and sealed secret for password; secret is the Ed25519
// secret key (the caller wipes it).
Status Seal(OperatorRecord& r, ByteView password, const uint8_t* secret) {
  std::string hash(crypto_pwhash_STRBYTES, '\0');
  if (crypto_pwhash_str(hash.data(), reinterpret_cast<const char*>(password.data()),
                        password.size(), kOpsLimit, kMemLimit) != 0) {
    return ResourceExhausted("not enough memory to hash the password");
  }
  hash.resize(std::strlen(hash.c_str()));
  r.password_hash = std::move(hash);
  r.key_salt.resize(crypto_pwhash_SALTBYTES);
  randombytes_buf(r.key_salt.data(), r.key_salt.size());
  r.key_nonce.resize(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  randombytes_buf(r.key_nonce.data(), r.key_nonce.size());
  REFBUS_ASSIGN_OR_RETURN(auto key, SealingKey(password, r.key_salt));
  Bytes ad = SealAd(r.name, r.public_key);
  r.sealed_secret.resize(crypto_sign_SECRETKEYBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned long long n = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(r.sealed_secret.data(), &n, secret,
                                             crypto_sign_SECRETKEYBYTES, ad.data(), ad.size(),
                                             nullptr, r.key_nonce.data(), key.data());
  return Status::Ok();
}

// A fresh key pair for r, sealed under password.
Status NewKeyPair(OperatorRecord& r, ByteView password) {
  REFBUS_ASSIGN_OR_RETURN(auto secret, keys::SecretKey<crypto_sign_SECRETKEYBYTES>::Allocate());
  r.public_key.resize(crypto_sign_PUBLICKEYBYTES);
  crypto_sign_keypair(r.public_key.data(), secret.data());
  return Seal(r, password, secret.data());
}

[[nodiscard]] bool PasswordMatches(const OperatorRecord& r, ByteView password) {
  return crypto_pwhash_str_verify(r.password_hash.c_str(),
                                  reinterpret_cast<const char*>(password.data()),
                                  password.size()) == 0;
}

Result<keys::SecretKey<crypto_sign_SECRETKEYBYTES>> Unseal(const OperatorRecord& r,
                                                           ByteView password) {
  if (r.sealed_secret.size() !=
          crypto_sign_SECRETKEYBYTES + crypto_aead_xchacha20poly1305_ietf_ABYTES ||
      r.key_nonce.size() != crypto_aead_xchacha20poly1305_ietf_NPUBBYTES ||
      r.key_salt.size() != crypto_pwhash_SALTBYTES) {
    return Malformed("operator " + r.name + "'s sealed key has the wrong size");
  }
  REFBUS_ASSIGN_OR_RETURN(auto key, SealingKey(password, r.key_salt));
  REFBUS_ASSIGN_OR_RETURN(auto secret, keys::SecretKey<crypto_sign_SECRETKEYBYTES>::Allocate());
  Bytes ad = SealAd(r.name, r.public_key);
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(secret.data(), &n, nullptr, r.sealed_secret.data(),
                                                 r.sealed_secret.size(), ad.data(), ad.size(),
                                                 r.key_nonce.data(), key.data()) != 0) {
    return Unauthenticated("operator " + r.name + "'s key does not open with this password");
  }
  // The public key in the record must be the secret's own (a swapped public key in the
  // file fails the AD check above; this catches a corrupted secret).
  uint8_t pk[crypto_sign_PUBLICKEYBYTES];
  crypto_sign_ed25519_sk_to_pk(pk, secret.data());
  if (!keys::ConstantTimeEquals(ByteView(pk, sizeof pk), r.public_key)) {
    return Malformed("operator " + r.name + "'s sealed key does not match its public key");
  }
  return secret;
}

// ---- the file ----

Json ToJson(const OperatorRecord& r) {
  return Json{{"name", r.name},
              {"role", std::string(RoleName(r.role))},
              {"active", r.active},
              {"password_hash", r.password_hash},
              {"public_key", HexEncode(r.public_key)},
              {"key_salt", HexEncode(r.key_salt)},
              {"key_nonce", HexEncode(r.key_nonce)},
              {"sealed_secret", HexEncode(r.sealed_secret)},
              {"created_at_ms", r.created_at_ms},
              {"changed_at_ms", r.changed_at_ms}};
}

Result<Bytes> HexField(const Json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_string()) {
    return Malformed(std::string("an operator record has no '") + name + "'");
  }
  return HexDecode(j[name].get<std::string>());
}

Result<OperatorRecord> FromJson(const Json& j) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("role") ||
      !j["role"].is_string() || !j.contains("password_hash") || !j["password_hash"].is_string() ||
      !j.contains("active") || !j["active"].is_boolean()) {
    return Malformed("an operator record lacks name, role, active or password_hash");
  }
  OperatorRecord r;
  r.name = j["name"].get<std::string>();
  REFBUS_RETURN_IF_ERROR(CheckOperatorName(r.name));
  REFBUS_ASSIGN_OR_RETURN(r.role, ParseRole(j["role"].get<std::string>()));
  r.active = j["active"].get<bool>();
  r.password_hash = j["password_hash"].get<std::string>();
  REFBUS_ASSIGN_OR_RETURN(r.public_key, HexField(j, "public_key"));
  REFBUS_ASSIGN_OR_RETURN(r.key_salt, HexField(j, "key_salt"));
  REFBUS_ASSIGN_OR_RETURN(r.key_nonce, HexField(j, "key_nonce"));
  REFBUS_ASSIGN_OR_RETURN(r.sealed_secret, HexField(j, "sealed_secret"));
  r.created_at_ms = j.value("created_at_ms", UnixMillis{0});
  r.changed_at_ms = j.value("changed_at_ms", UnixMillis{0});
  if (r.public_key.size() != crypto_sign_PUBLICKEYBYTES) {
    return Malformed("operator " + r.name + "'s public key is not 32 bytes");
  }
  return r;
}

Result<std::vector<OperatorRecord>> ReadStore(const std::string& path) {
  std::vector<OperatorRecord> out;
  if (!PathExists(path)) return out;
  REFBUS_RETURN_IF_ERROR(CheckPrivateFile(path).WithContext("the operator store"));
  REFBUS_ASSIGN_OR_RETURN(Bytes raw, ReadFile(path, kMaxStoreBytes));
  Json j = Json::parse(raw.begin(), raw.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || j.value("format", 0) != kFormat ||
      !j.contains("operators") || !j["operators"].is_array()) {
    return Malformed("the operator store " + path + " is not a format-1 operator file");
  }
  for (const auto& e : j["operators"]) {
    auto r = FromJson(e);
    if (!r.ok()) return r.status().WithContext("the operator store " + path);
    out.push_back(std::move(*r));
  }
  return out;
}

Status WriteStore(const std::string& path, std::vector<OperatorRecord> ops) {
  std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  Json list = Json::array();
  for (const auto& r : ops) list.push_back(ToJson(r));
  std::string text = Json{{"format", kFormat}, {"operators", list}}.dump(1) + "\n";
  return WriteFileAtomic(path, AsBytes(text), kPrivateFileMode);
}

// An exclusive flock of <path>.lock for one read-modify-write (released when destroyed).
class StoreLock {
 public:
  static Result<StoreLock> Take(const std::string& path) {
    std::string lock = path + ".lock";
    int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return IoError("cannot open " + lock);
    if (::flock(fd, LOCK_EX) != 0) {
      ::close(fd);
      return IoError("cannot lock " + lock);
    }
    return StoreLock(fd);
  }
  StoreLock(StoreLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  StoreLock& operator=(StoreLock&&) = delete;
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;
  ~StoreLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit StoreLock(int fd) : fd_(fd) {}
  int fd_;
};

// Runs change on the named record under the lock and writes the store back.
Status Modify(const std::string& path, const std::string& name,
              const std::function<Status(OperatorRecord&)>& change) {
  REFBUS_ASSIGN_OR_RETURN(StoreLock lock, StoreLock::Take(path));
  REFBUS_ASSIGN_OR_RETURN(auto ops, ReadStore(path));
  auto it = std::find_if(ops.begin(), ops.end(), [&](const auto& r) { return r.name == name; });
  if (it == ops.end()) return NotFound("no operator '" + name + "' (refbus-agent operator list)");
  REFBUS_RETURN_IF_ERROR(change(*it));
  return WriteStore(path, std::move(ops));
}

}  // namespace

std::string_view RoleName(OperatorRole role) {
  switch (role) {
    case OperatorRole::kCaseworker:
      return "caseworker";
    case OperatorRole::kSupervisor:
      return "supervisor";
    case OperatorRole::kAdministrator:
      return "administrator";
    case OperatorRole::kReadOnly:
      return "read-only";
  }
  return "unknown";
}

Result<OperatorRole> ParseRole(std::string_view name) {
  for (auto r : {OperatorRole::kCaseworker, OperatorRole::kSupervisor, OperatorRole::kAdministrator,
                 OperatorRole::kReadOnly}) {
    if (RoleName(r) == name) return r;
  }
  return InvalidArgument("unknown role '" + std::string(name.substr(0, 32)) +
                         "' (caseworker, supervisor, administrator, read-only)");
}

Status CheckOperatorName(std::string_view name) {
  auto ok_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  };
  bool ok = !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), ok_char) &&
            name[0] != '.' && name[0] != '_' && name[0] != '-';
  if (!ok) {
    return InvalidArgument(
        "an operator name is 1 to 32 of a-z, 0-9, '.', '_', '-', starting with a letter or "
        "digit");
  }
  if (name == "service") return InvalidArgument("'service' is the API token's account");
  return Status::Ok();
}

Bytes OperatorKey::Sign(std::string_view label, ByteView body) const {
  Bytes in = keys::SignatureInput(label, body);
  Bytes sig(crypto_sign_BYTES);
  crypto_sign_detached(sig.data(), nullptr, in.data(), in.size(), secret_.data());
  return sig;
}

Status OperatorStore::Add(const std::string& name, OperatorRole role, ByteView password,
                          UnixMillis now) {
  REFBUS_RETURN_IF_ERROR(CheckOperatorName(name));
  REFBUS_RETURN_IF_ERROR(CheckPassword(password));
  REFBUS_ASSIGN_OR_RETURN(StoreLock lock, StoreLock::Take(path_));
  REFBUS_ASSIGN_OR_RETURN(auto ops, ReadStore(path_));
  for (const auto& r : ops) {
    if (r.name == name) return AlreadyExists("operator '" + name + "' exists");
  }
  OperatorRecord r;
  r.name = name;
  r.role = role;
  r.created_at_ms = now;
  r.changed_at_ms = now;
  REFBUS_RETURN_IF_ERROR(NewKeyPair(r, password));
  ops.push_back(std::move(r));
  return WriteStore(path_, std::move(ops));
}

Result<std::vector<OperatorRecord>> OperatorStore::List() const {
  REFBUS_ASSIGN_OR_RETURN(StoreLock lock, StoreLock::Take(path_));
  return ReadStore(path_);
}

Result<OperatorRecord> OperatorStore::Find(const std::string& name) const {
  REFBUS_ASSIGN_OR_RETURN(auto ops, List());
  for (auto& r : ops) {
    if (r.name == name) return std::move(r);
  }
  return NotFound("no operator '" + name.substr(0, 32) + "'");
}

Status OperatorStore::SetActive(const std::string& name, bool active, UnixMillis now) {
  return Modify(path_, name, [&](OperatorRecord& r) {
    r.active = active;
    r.changed_at_ms = now;
    return Status::Ok();
  });
}

Status OperatorStore::SetRole(const std::string& name, OperatorRole role, UnixMillis now) {
  return Modify(path_, name, [&](OperatorRecord& r) {
    r.role = role;
    r.changed_at_ms = now;
    return Status::Ok();
  });
}

Status OperatorStore::SetPassword(const std::string& name, std::optional<ByteView> old_password,
                                  ByteView new_password, UnixMillis now) {
  REFBUS_RETURN_IF_ERROR(CheckPassword(new_password));
  return Modify(path_, name, [&](OperatorRecord& r) -> Status {
    r.changed_at_ms = now;
    if (!old_password) return NewKeyPair(r, new_password);
    if (!PasswordMatches(r, *old_password)) {
      return Unauthenticated("the old password of operator '" + name + "' is wrong");
    }
    REFBUS_ASSIGN_OR_RETURN(auto secret, Unseal(r, *old_password));
    return Seal(r, new_password, secret.data());
  });
}

Result<OperatorKey> OperatorStore::Unlock(const std::string& name, ByteView password) const {
  auto r = Find(name);
  const Status wrong = Unauthenticated("wrong operator name or password");
  if (!r.ok()) {
    if (r.status().code() != Status::Code::kNotFound) return r.status();
    // The same work as for a known name, so that timing does not tell names apart.
    OperatorRecord dummy;
    dummy.password_hash =
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$" + std::string(43, 'A');
    (void)PasswordMatches(dummy, password);
    return wrong;
  }
  if (!PasswordMatches(*r, password)) return wrong;
  if (!r->active) return PermissionDenied("operator '" + name + "' is disabled");
  REFBUS_ASSIGN_OR_RETURN(auto secret, Unseal(*r, password));
  return OperatorKey(r->name, r->role, r->public_key, std::move(secret));
}

keys::OperatorRoster RosterOf(const std::string& agency, const std::vector<OperatorRecord>& records,
                              UnixMillis now) {
  keys::OperatorRoster roster;
  roster.agency = agency;
  roster.issued_at_ms = now;
  for (const auto& r : records) {
    roster.version = std::max<uint64_t>(roster.version, static_cast<uint64_t>(r.changed_at_ms));
    roster.operators.push_back({r.name, std::string(RoleName(r.role)), r.public_key, r.active});
  }
  return roster;
}

}  // namespace refbus::agent
