#include "core/hash.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <utility>

namespace refbus {
namespace {

// Fetched once: an implicit fetch per EVP_DigestInit (passing EVP_sha256()) costs more
// than hashing a 65-byte Merkle node. Never freed: it lives as long as the process.
const EVP_MD* FetchedSha256() {
  static const EVP_MD* const md = [] {
    EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (m == nullptr) std::abort();  // no SHA-256 in libcrypto's default provider
    return m;
  }();
  return md;
}

// The hasher behind the one-shot functions: one per thread, made on first use.
Sha256Hasher& ThreadHasher() {
  thread_local Sha256Hasher hasher;
  return hasher;
}

}  // namespace

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) std::abort();  // libcrypto could not allocate a context
  Start();
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }

Sha256Hasher::Sha256Hasher(Sha256Hasher&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)) {}

Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}

void Sha256Hasher::Start() {
  if (EVP_DigestInit_ex2(ctx_, FetchedSha256(), nullptr) != 1) std::abort();
}

void Sha256Hasher::Update(ByteView data) {
  // REQUIRES: not moved from (ctx_ != nullptr); EVP_DigestUpdate fails on a null context.
  if (EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1) std::abort();
}

void Sha256Hasher::Finish(std::span<uint8_t, kSha256DigestBytes> out) {
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx_, out.data(), &n) != 1 || n != kSha256DigestBytes) std::abort();
  Start();
}

Bytes Sha256(ByteView data) {
  Bytes out(kSha256DigestBytes);
  Sha256Hasher& h = ThreadHasher();
  h.Update(data);
  h.Finish(std::span<uint8_t, kSha256DigestBytes>(out.data(), kSha256DigestBytes));
  return out;
}

Sha256Digest Sha256Array(ByteView data) {
  Sha256Hasher& h = ThreadHasher();
  h.Update(data);
  return h.Finish();
}

}  // namespace refbus
