// SHA-256 from OpenSSL's libcrypto, for the audit log and every other hash refbus stores.
//
// libcrypto uses the CPU's SHA extensions where present (STYLE.md: "Hashing for the audit
// log"). The digest algorithm is fetched from the default provider once per process and
// each Sha256Hasher keeps its own EVP context, so hashing many short inputs (Merkle tree
// nodes are 65 bytes) pays neither a fetch nor an allocation per call.
//
// libcrypto failing to hash (no memory for a context, a broken provider) is not an input
// error a caller could handle: these functions abort, as for any broken invariant.
//
// Thread safety: the free functions are thread-safe (each thread uses its own context).
// One Sha256Hasher must not be used from two threads at once.
#ifndef REFBUS_CORE_HASH_H_
#define REFBUS_CORE_HASH_H_

#include <array>
#include <cstdint>
#include <span>

#include "core/bytes.h"

// libcrypto's context type, declared here so that callers do not include OpenSSL headers.
struct evp_md_ctx_st;

namespace refbus {

inline constexpr size_t kSha256DigestBytes = 32;
using Sha256Digest = std::array<uint8_t, kSha256DigestBytes>;

// Incremental SHA-256: Update() any number of times, then Finish(), which also makes the
// hasher ready for the next message. Move-only: it owns a libcrypto context.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&& other) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&& other) noexcept;
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(ByteView data);
  void Update(uint8_t byte) { Update(ByteView(&byte, 1)); }
  // Writes the digest of everything given since the last Finish and starts a new message.
  void Finish(std::span<uint8_t, kSha256DigestBytes> out);
  Sha256Digest Finish() {
    Sha256Digest d;
    Finish(d);
    return d;
  }

 private:
  void Start();
  evp_md_ctx_st* ctx_;
};

// One-shot SHA-256 of data.
Bytes Sha256(ByteView data);
Sha256Digest Sha256Array(ByteView data);

}  // namespace refbus

#endif  // REFBUS_CORE_HASH_H_
