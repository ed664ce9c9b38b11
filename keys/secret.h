// Secret memory for refbus (libsodium).
//
// SecretKey<N>: a fixed-size secret (private key, seed, shared secret) in sodium_malloc'd
// memory: guarded pages, locked against swapping, excluded from core dumps, and wiped
// (sodium_free zeroes it) when the owner is destroyed, on every path. Move-only; compared
// in constant time; it has no formatter or stream operator, so it cannot be logged.
// sodium_malloc costs tens of microseconds: use SecretKey for long-lived keys, and stack
// arrays wiped with sodium_memzero (StackSecret) for per-message secrets.
//
// SecretBuffer: the same for a variable-size secret (a passphrase, a key-file payload).
//
// REQUIRES: InitSodium() has returned ok (call it once in main before threads start).
// Thread safety: distinct objects may be used from distinct threads; one object is not
// synchronized.
#ifndef REFBUS_KEYS_SECRET_H_
#define REFBUS_KEYS_SECRET_H_

#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <utility>

#include "core/bytes.h"
#include "core/status.h"

namespace refbus::keys {

// Initializes libsodium. Safe to call more than once; call it in main first.
Status InitSodium();

template <size_t N>
class SecretKey {
 public:
  // A zero-filled key; fill it through data() from a keygen helper.
  static Result<SecretKey> Allocate() {
    void* p = sodium_malloc(N);
    if (p == nullptr) return ResourceExhausted("cannot allocate locked memory for a key");
    sodium_memzero(p, N);
    return SecretKey(static_cast<uint8_t*>(p));
  }

  SecretKey(SecretKey&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  SecretKey& operator=(SecretKey&& o) noexcept {
    if (this != &o) {
      Free();
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  ~SecretKey() { Free(); }

  uint8_t* data() { return p_; }
  const uint8_t* data() const { return p_; }
  static constexpr size_t size() { return N; }
  std::span<const uint8_t, N> view() const { return std::span<const uint8_t, N>(p_, N); }

  // Constant-time comparison.
  [[nodiscard]] bool Equals(const SecretKey& o) const { return sodium_memcmp(p_, o.p_, N) == 0; }

  // A copy in new locked memory.
  Result<SecretKey> Clone() const {
    auto r = Allocate();
    if (!r.ok()) return r.status();
    std::copy(p_, p_ + N, r->data());
    return r;
  }

 private:
  explicit SecretKey(uint8_t* p) : p_(p) {}
  void Free() {
    if (p_ != nullptr) sodium_free(p_);  // sodium_free wipes before unmapping
    p_ = nullptr;
  }
  uint8_t* p_;
};

class SecretBuffer {
 public:
  static Result<SecretBuffer> Allocate(size_t n);
  // Copies bytes into new locked memory. The caller still wipes its own copy.
  static Result<SecretBuffer> CopyOf(ByteView bytes);

  SecretBuffer() = default;
  SecretBuffer(SecretBuffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  SecretBuffer& operator=(SecretBuffer&& o) noexcept;
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  ~SecretBuffer();

  uint8_t* data() { return p_; }
  const uint8_t* data() const { return p_; }
  size_t size() const { return n_; }
  ByteView view() const { return {p_, n_}; }
  bool empty() const { return n_ == 0; }

 private:
  uint8_t* p_ = nullptr;
  size_t n_ = 0;
};

// A per-message secret on the stack, wiped when it goes out of scope.
template <size_t N>
struct StackSecret {
  std::array<uint8_t, N> bytes{};
  StackSecret() = default;
  StackSecret(const StackSecret&) = delete;
  StackSecret& operator=(const StackSecret&) = delete;
  ~StackSecret() { sodium_memzero(bytes.data(), N); }
  uint8_t* data() { return bytes.data(); }
  const uint8_t* data() const { return bytes.data(); }
  static constexpr size_t size() { return N; }
};

// Plaintext case content: ordinary heap memory that is wiped when released. Move-only.
class Plaintext {
 public:
  Plaintext() = default;
  explicit Plaintext(size_t n) : b_(n) {}
  Plaintext(Plaintext&&) noexcept = default;
  Plaintext& operator=(Plaintext&& o) noexcept {
    Wipe();
    b_ = std::move(o.b_);
    return *this;
  }
  Plaintext(const Plaintext&) = delete;
  Plaintext& operator=(const Plaintext&) = delete;
  ~Plaintext() { Wipe(); }

  uint8_t* data() { return b_.data(); }
  const uint8_t* data() const { return b_.data(); }
  size_t size() const { return b_.size(); }
  ByteView view() const { return b_; }
  void resize(size_t n) { b_.resize(n); }

 private:
  void Wipe() {
    if (!b_.empty()) sodium_memzero(b_.data(), b_.size());
  }
  Bytes b_;
};

// Random bytes from the OS CSPRNG.
Bytes RandomBytes(size_t n);

}  // namespace refbus::keys

#endif  // REFBUS_KEYS_SECRET_H_
