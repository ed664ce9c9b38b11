// The evaluator's key file (see evaluator_key.h).
#include "linkage/evaluator_key.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "core/file.h"

namespace refbus::linkage {
namespace {

constexpr std::string_view kMagic = "refbus-linkage-key/1\n";
constexpr std::string_view kChecksumLabel = "refbus/v1/linkage-keyfile";
constexpr size_t kChecksumBytes = 32;
constexpr size_t kBodyBytes = kMagic.size() + 1 + oprf::kScalarBytes;
static_assert(kBodyBytes + kChecksumBytes == kEvaluatorKeyFileBytes);

void Checksum(const uint8_t* body, uint8_t* out) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, kChecksumBytes);
  crypto_generichash_update(&st, reinterpret_cast<const uint8_t*>(kChecksumLabel.data()),
                            kChecksumLabel.size());
  const uint8_t zero = 0;
  crypto_generichash_update(&st, &zero, 1);
  crypto_generichash_update(&st, body, kBodyBytes);
  crypto_generichash_final(&st, out, kChecksumBytes);
}

// Reads the whole file (at most one byte more than a key file) through one descriptor
// opened without following links, after checking that descriptor's mode and owner.
Status ReadPrivate(const std::string& path, std::array<uint8_t, kEvaluatorKeyFileBytes + 1>& buf,
                   size_t& n) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return NotFound(path + ": no linkage key file");
    return IoError(path + ": cannot open the linkage key file: " + std::strerror(err));
  }
  struct stat st {};
  Status s;
  if (::fstat(fd, &st) != 0) {
    s = IoError(path + ": cannot stat the linkage key file");
  } else if (!S_ISREG(st.st_mode)) {
    s = PermissionDenied(path + ": the linkage key file is not a regular file");
  } else {
    s = CheckPrivateMode(path, st.st_mode, st.st_uid);
  }
  n = 0;
  while (s.ok() && n < buf.size()) {
    const ssize_t r = ::read(fd, buf.data() + n, buf.size() - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) s = IoError(path + ": cannot read the linkage key file");
    if (r <= 0) break;
    n += static_cast<size_t>(r);
  }
  ::close(fd);
  return s;
}

}  // namespace

Status SaveEvaluatorKey(const oprf::ServerKey& key, const std::string& path) {
  if (key.mode() != oprf::Mode::kVoprf)
    return InvalidArgument("a linkage evaluator key must be a VOPRF key");
  std::array<uint8_t, kEvaluatorKeyFileBytes> file{};
  std::memcpy(file.data(), kMagic.data(), kMagic.size());
  file[kMagic.size()] = static_cast<uint8_t>(oprf::Mode::kVoprf);
  const auto sk = key.private_scalar();
  std::memcpy(file.data() + kMagic.size() + 1, sk.data(), sk.size());
  Checksum(file.data(), file.data() + kBodyBytes);
  Status s = WriteFileAtomic(path, file, kPrivateFileMode);
  sodium_memzero(file.data(), file.size());
  return s.ok() ? s : s.WithContext("writing the linkage key file");
}

Result<oprf::ServerKey> LoadEvaluatorKey(const std::string& path) {
  std::array<uint8_t, kEvaluatorKeyFileBytes + 1> buf{};
  size_t n = 0;
  Status s = ReadPrivate(path, buf, n);
  uint8_t sum[kChecksumBytes];
  if (s.ok() && n != kEvaluatorKeyFileBytes) {
    s = Malformed(path + ": not a linkage key file (wrong size)");
  } else if (s.ok() && std::memcmp(buf.data(), kMagic.data(), kMagic.size()) != 0) {
    s = Malformed(path + ": not a linkage key file (no refbus-linkage-key/1 line)");
  } else if (s.ok() && buf[kMagic.size()] != static_cast<uint8_t>(oprf::Mode::kVoprf)) {
    s = Malformed(path + ": linkage key file of an unknown mode");
  } else if (s.ok()) {
    Checksum(buf.data(), sum);
    if (sodium_memcmp(sum, buf.data() + kBodyBytes, kChecksumBytes) != 0)
      s = Malformed(path + ": the linkage key file is damaged (checksum)");
  }
  Result<oprf::ServerKey> key = s.ok() ? Result<oprf::ServerKey>(Internal("unset")) : s;
  if (s.ok()) {
    key = oprf::ServerKey::FromPrivate(
        oprf::Mode::kVoprf, ByteView(buf.data() + kMagic.size() + 1, oprf::kScalarBytes));
    if (!key.ok()) key = Malformed(path + ": the linkage key file holds no valid key");
  }
  sodium_memzero(buf.data(), buf.size());
  return key;
}

}  // namespace refbus::linkage
