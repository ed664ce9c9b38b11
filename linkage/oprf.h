// RFC 9497 oblivious PRF, suite ristretto255-SHA512, in OPRF (mode 0x00) and verifiable
// VOPRF (mode 0x01) modes, on libsodium's ristretto255 functions.
//
// The client (an agency) blinds an input: blinded = r * HashToGroup(input). The server (an
// evaluator) multiplies by its key k and, in VOPRF mode, proves with a DLEQ proof that it
// used the k whose public key pk = k * G the client holds. The client checks the proof,
// unblinds (r^-1) and hashes: Finalize. The server never sees the input or the output; the
// client never learns k. Function names and steps follow the RFC's sections 2 and 3 so that
// a reviewer can read them side by side; the RFC's test vectors (Appendix A.1) are in
// tests/unit/linkage/oprf_test.cpp.
//
// Secrets: the private key lives in a SecretKey (sodium_malloc, wiped on free); a blind is
// a per-request secret (with the blinded element it reveals the input's group element): it
// lives in a BlindState, which wipes it on destruction. Proof nonces are wiped before the
// function that made them returns. Nothing here logs.
//
// Randomness: every random scalar comes from a ScalarSource; the default draws from
// libsodium (crypto_core_ristretto255_scalar_random, uniform in [1, L-1]). Tests inject
// fixed scalars to reproduce the RFC's vectors.
//
// Elements received from a peer are checked: a canonical ristretto255 encoding, not the
// identity (RFC 9497 section 4.1, DeserializeElement). Anything else is Malformed.
//
// Thread safety: free functions; a ServerKey may be used from several threads at once
// (it is only read); one BlindState belongs to one thread.
#ifndef REFBUS_LINKAGE_OPRF_H_
#define REFBUS_LINKAGE_OPRF_H_

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "keys/secret.h"

namespace refbus::linkage::oprf {

enum class Mode : uint8_t { kOprf = 0x00, kVoprf = 0x01 };

inline constexpr size_t kElementBytes = 32;  // Ne
inline constexpr size_t kScalarBytes = 32;   // Ns
inline constexpr size_t kProofBytes = 64;    // c || s
inline constexpr size_t kOutputBytes = 64;   // Nh (SHA-512)
inline constexpr size_t kMaxInputBytes = 65535;

using Element = std::array<uint8_t, kElementBytes>;
using Scalar = std::array<uint8_t, kScalarBytes>;
using Output = std::array<uint8_t, kOutputBytes>;

// Writes a scalar in [1, L-1] into out. Default: libsodium's uniform random scalar.
using ScalarSource = std::function<void(std::span<uint8_t, kScalarBytes>)>;
ScalarSource RandomScalars();

// "OPRFV1-" || I2OSP(mode, 1) || "-ristretto255-SHA512"
Bytes ContextString(Mode mode);

// expand_message_xmd with SHA-512 (RFC 9380 section 5.3.1). InvalidArgument if the DST is
// longer than 255 bytes or out is longer than 255 * 64 bytes.
Status ExpandMessageXmdSha512(ByteView msg, ByteView dst, std::span<uint8_t> out);

// hash_to_ristretto255 (RFC 9380 appendix B) with DST "HashToGroup-" || contextString.
Element HashToGroup(Mode mode, ByteView input);
// 64 bytes of expand_message_xmd reduced modulo the group order; DST "HashToScalar-" ||
// contextString unless given.
Scalar HashToScalar(Mode mode, ByteView input);
Scalar HashToScalarWithDst(ByteView input, ByteView dst);
// True if s is 32 bytes encoding a scalar below the group order L. Constant time.
bool IsCanonicalScalar(ByteView s);

// DLEQ proof: c || s, two scalars.
struct Proof {
  Scalar c{};
  Scalar s{};
  std::array<uint8_t, kProofBytes> Serialize() const;
  static Result<Proof> Deserialize(ByteView bytes);  // Malformed unless 64 canonical bytes
};

// An evaluator's key pair. The private scalar stays in locked memory.
class ServerKey {
 public:
  // RFC 9497 section 3.2.1 DeriveKeyPair(seed, info): deterministic, for tests and for a
  // key ceremony that wants one. InvalidArgument if seed is not 32 bytes or info is over
  // 65535 bytes; Internal in the (2^-250) case of 256 zero scalars.
  static Result<ServerKey> Derive(Mode mode, ByteView seed, ByteView info);
  // A random key pair (RFC 9497 section 3.2, GenerateKeyPair).
  static Result<ServerKey> Generate(Mode mode);
  // From a stored private scalar (32 bytes, little-endian, in [1, L-1]). The caller wipes
  // its copy of the bytes.
  static Result<ServerKey> FromPrivate(Mode mode, ByteView private_scalar);

  Mode mode() const { return mode_; }
  const Element& public_key() const { return public_key_; }
  // The private scalar, for writing a key file. Who reads it wipes what they copy.
  std::span<const uint8_t, kScalarBytes> private_scalar() const { return sk_.view(); }

 private:
  ServerKey(Mode mode, keys::SecretKey<kScalarBytes> sk, const Element& pk)
      : mode_(mode), sk_(std::move(sk)), public_key_(pk) {}
  Mode mode_;
  keys::SecretKey<kScalarBytes> sk_;
  Element public_key_;
};

// The client's state between Blind and Finalize. Move-only; wipes the blind when destroyed.
class BlindState {
 public:
  BlindState() = default;
  BlindState(BlindState&& o) noexcept;
  BlindState& operator=(BlindState&& o) noexcept;
  BlindState(const BlindState&) = delete;
  BlindState& operator=(const BlindState&) = delete;
  ~BlindState();

  const Scalar& blind() const { return blind_; }
  const Element& blinded_element() const { return blinded_; }

 private:
  friend Result<BlindState> Blind(Mode, ByteView, const ScalarSource&);
  Scalar blind_{};
  Element blinded_{};
};

// RFC 9497 section 3.3.1 Blind. InvalidArgument if input is over kMaxInputBytes or maps
// to the identity (probability 2^-252; the RFC's InvalidInputError).
Result<BlindState> Blind(Mode mode, ByteView input, const ScalarSource& scalars);

// A server's answer to one blinded element; proof is set in VOPRF mode.
struct Evaluation {
  Element evaluated{};
  Proof proof;
};

// RFC 9497 sections 3.3.1 (OPRF) and 3.3.2 (VOPRF) BlindEvaluate, batched: one evaluated
// element per blinded element and one proof over the batch (ComputeCompositesFast). The
// proof's nonce comes from scalars. Malformed for an invalid or identity element.
struct BatchEvaluation {
  std::vector<Element> evaluated;
  Proof proof;
};
Result<BatchEvaluation> BlindEvaluateBatch(const ServerKey& key,
                                           std::span<const Element> blinded_elements,
                                           const ScalarSource& scalars);
Result<Evaluation> BlindEvaluate(const ServerKey& key, const Element& blinded_element,
                                 const ScalarSource& scalars);

// RFC 9497 section 2.2.2 VerifyProof over (A = G, B = pk, C = blinded, D = evaluated).
[[nodiscard]] bool VerifyProof(Mode mode, const Element& public_key,
                               std::span<const Element> blinded_elements,
                               std::span<const Element> evaluated_elements, const Proof& proof);

// RFC 9497 Finalize. In VOPRF mode the proof is verified first: Unauthenticated if it does
// not verify against public_key (the RFC's VerifyError). OPRF mode ignores public_key and
// the proof. Malformed for an invalid evaluated element.
Result<Output> Finalize(Mode mode, ByteView input, const BlindState& state,
                        const Evaluation& evaluation, const Element& public_key);

// The Finalize hash alone over an already unblinded element N:
// SHA-512(I2OSP(len(input), 2) || input || I2OSP(32, 2) || N || "Finalize").
Output FinalizeHash(ByteView input, const Element& unblinded);

// Unblinds: blind^-1 * element. Malformed for an invalid element.
Result<Element> Unblind(const BlindState& state, const Element& evaluated);

// The server's direct evaluation (RFC 9497 section 3.3.1/3.3.2 Evaluate), for tests.
Result<Output> Evaluate(const ServerKey& key, ByteView input);

// Malformed unless bytes are a canonical ristretto255 encoding of a non-identity element.
Result<Element> DeserializeElement(ByteView bytes);

}  // namespace refbus::linkage::oprf

#endif  // REFBUS_LINKAGE_OPRF_H_
