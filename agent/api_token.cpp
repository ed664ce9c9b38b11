// The local API's token file (agent/api.h): 64 lowercase hex digits, created 0600 at first
// start, read back with its mode and owner checked. The bytes are wiped after use.
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "agent/api.h"
#include "core/bytes.h"
#include "core/file.h"
#include "keys/secret.h"

namespace refbus::agent {
namespace {

bool IsLowerHex(ByteView b) {
  return std::all_of(b.begin(), b.end(),
                     [](uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

Result<keys::SecretBuffer> ReadTokenFile(const std::string& path) {
  if (Status s = CheckPrivateFile(path); !s.ok()) {
    return s.WithContext("the API token file");
  }
  REFBUS_ASSIGN_OR_RETURN(Bytes raw, ReadFile(path, 256));
  size_t n = raw.size();
  while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r' || raw[n - 1] == ' ')) --n;
  if (n != 2 * kApiTokenBytes || !IsLowerHex(ByteView(raw).first(n))) {
    sodium_memzero(raw.data(), raw.size());
    return Malformed("the API token file " + path + " does not hold 64 lowercase hex digits; " +
                     "delete it and restart refbus-agent run to make a new token");
  }
  auto token = keys::SecretBuffer::CopyOf(ByteView(raw).first(n));
  sodium_memzero(raw.data(), raw.size());
  return token;
}

Result<keys::SecretBuffer> CreateTokenFile(const std::string& path) {
  keys::StackSecret<kApiTokenBytes> random;
  randombytes_buf(random.data(), random.size());
  REFBUS_ASSIGN_OR_RETURN(keys::SecretBuffer hex,
                          keys::SecretBuffer::Allocate(2 * kApiTokenBytes + 1));
  sodium_bin2hex(reinterpret_cast<char*>(hex.data()), hex.size(), random.data(), random.size());
  hex.data()[2 * kApiTokenBytes] = '\n';  // the file's content: 64 hex digits and a newline
  REFBUS_RETURN_IF_ERROR(WriteFileAtomic(path, hex.view(), kPrivateFileMode));
  return keys::SecretBuffer::CopyOf(hex.view().first(2 * kApiTokenBytes));
}

}  // namespace

Result<keys::SecretBuffer> ReadApiToken(const std::string& path) {
  if (!PathExists(path)) {
    return NotFound("no API token file " + path + " (refbus-agent run creates it at first start)");
  }
  return ReadTokenFile(path);
}

Result<keys::SecretBuffer> LoadOrCreateApiToken(const std::string& path) {
  if (PathExists(path)) return ReadTokenFile(path);
  auto created = CreateTokenFile(path);
  if (!created.ok()) return created.status().WithContext("cannot create the API token file");
  spdlog::info("api: created a new API token in {} (mode 0600)", path);
  return created;
}

}  // namespace refbus::agent
