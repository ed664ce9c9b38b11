#include "keys/secret.h"

#include <algorithm>

namespace refbus::keys {

Status InitSodium() {
  if (sodium_init() < 0) return Internal("libsodium failed to initialize");
  return Status::Ok();
}

Result<SecretBuffer> SecretBuffer::Allocate(size_t n) {
  SecretBuffer b;
  if (n == 0) return b;
  void* p = sodium_malloc(n);
  if (p == nullptr) return ResourceExhausted("cannot allocate locked memory for a secret");
  sodium_memzero(p, n);
  b.p_ = static_cast<uint8_t*>(p);
  b.n_ = n;
  return b;
}

Result<SecretBuffer> SecretBuffer::CopyOf(ByteView bytes) {
  auto b = Allocate(bytes.size());
  if (!b.ok()) return b.status();
  std::copy(bytes.begin(), bytes.end(), b->data());
  return b;
}

SecretBuffer& SecretBuffer::operator=(SecretBuffer&& o) noexcept {
  if (this != &o) {
    if (p_ != nullptr) sodium_free(p_);
    p_ = std::exchange(o.p_, nullptr);
    n_ = std::exchange(o.n_, 0);
  }
  return *this;
}

SecretBuffer::~SecretBuffer() {
  if (p_ != nullptr) sodium_free(p_);
}

Bytes RandomBytes(size_t n) {
  Bytes out(n);
  randombytes_buf(out.data(), n);
  return out;
}

}  // namespace refbus::keys
