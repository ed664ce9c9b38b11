// RFC 9497 ristretto255-SHA512 on libsodium (see oprf.h). Section numbers below are the
// RFC's. Group operations: crypto_scalarmult_ristretto255 refuses (returns -1) an identity
// result or an invalid point; crypto_core_ristretto255_add refuses invalid points. Scalars
// are 32-byte little-endian values below the group order L.
#include "linkage/oprf.h"

#include <sodium.h>

#include <algorithm>
#include <string_view>

namespace refbus::linkage::oprf {
namespace {

constexpr std::string_view kSuite = "ristretto255-SHA512";
constexpr size_t kSha512Bytes = crypto_hash_sha512_BYTES;  // 64
constexpr size_t kSha512BlockBytes = 128;

void AppendI2osp2(Bytes& out, size_t n) {
  out.push_back(static_cast<uint8_t>(n >> 8));
  out.push_back(static_cast<uint8_t>(n & 0xff));
}

// I2OSP(len(x), 2) || x
void AppendPrefixed(Bytes& out, ByteView x) {
  AppendI2osp2(out, x.size());
  Append(out, x);
}

Bytes Dst(std::string_view prefix, Mode mode) {
  Bytes dst = ToBytes(prefix);
  Append(dst, ContextString(mode));
  return dst;
}

bool IsIdentity(const Element& e) { return sodium_is_zero(e.data(), e.size()) == 1; }

// A scalar a ScalarSource produced: reduced and not zero.
bool IsUsableScalar(ByteView s) {
  return IsCanonicalScalar(s) && sodium_is_zero(s.data(), s.size()) != 1;
}

// out = k * p; false for an invalid point or an identity result.
[[nodiscard]] bool Mul(Element& out, const uint8_t* k, const Element& p) {
  return crypto_scalarmult_ristretto255(out.data(), k, p.data()) == 0;
}

// out = a*P + b*Q
[[nodiscard]] bool MulAdd(Element& out, const Scalar& a, const Element& p, const Scalar& b,
                          const Element& q) {
  Element ap, bq;
  if (!Mul(ap, a.data(), p) || !Mul(bq, b.data(), q)) return false;
  return crypto_core_ristretto255_add(out.data(), ap.data(), bq.data()) == 0;
}

Element Generator() {
  Scalar one{};
  one[0] = 1;
  Element g;
  crypto_scalarmult_ristretto255_base(g.data(), one.data());
  return g;
}

// Section 2.2.1 ComputeComposites / ComputeCompositesFast. With k (the prover), Z = k*M;
// without (the verifier), Z = sum d_i * D_i. False for an invalid element.
[[nodiscard]] bool ComputeComposites(Mode mode, const uint8_t* k, const Element& b,
                                     std::span<const Element> c, std::span<const Element> d,
                                     Element& m, Element& z) {
  Bytes seed_transcript;
  AppendPrefixed(seed_transcript, b);
  AppendPrefixed(seed_transcript, Dst("Seed-", mode));
  uint8_t seed[kSha512Bytes];
  crypto_hash_sha512(seed, seed_transcript.data(), seed_transcript.size());
  for (size_t i = 0; i < c.size(); ++i) {
    Bytes composite;
    AppendPrefixed(composite, ByteView(seed, sizeof seed));
    AppendI2osp2(composite, i);
    AppendPrefixed(composite, c[i]);
    AppendPrefixed(composite, d[i]);
    Append(composite, AsBytes("Composite"));
    const Scalar di = HashToScalar(mode, composite);
    Element mi, zi;
    if (!Mul(mi, di.data(), c[i])) return false;
    if (k == nullptr && !Mul(zi, di.data(), d[i])) return false;
    if (i == 0) {
      m = mi;
      if (k == nullptr) z = zi;
      continue;
    }
    if (crypto_core_ristretto255_add(m.data(), m.data(), mi.data()) != 0) return false;
    if (k == nullptr && crypto_core_ristretto255_add(z.data(), z.data(), zi.data()) != 0)
      return false;
  }
  return k == nullptr || Mul(z, k, m);
}

// The challenge of sections 2.2.1 and 2.2.2.
Scalar Challenge(Mode mode, const Element& b, const Element& m, const Element& z, const Element& t2,
                 const Element& t3) {
  Bytes transcript;
  for (const Element* e : {&b, &m, &z, &t2, &t3}) AppendPrefixed(transcript, *e);
  Append(transcript, AsBytes("Challenge"));
  return HashToScalar(mode, transcript);
}

// Section 2.2.1 GenerateProof with A = G, B = pk.
Result<Proof> GenerateProof(Mode mode, const uint8_t* k, const Element& pk,
                            std::span<const Element> c, std::span<const Element> d,
                            const ScalarSource& scalars) {
  Element m, z;
  if (!ComputeComposites(mode, k, pk, c, d, m, z)) return Malformed("invalid group element");
  keys::StackSecret<kScalarBytes> r;
  scalars(std::span<uint8_t, kScalarBytes>(r.bytes));
  if (!IsUsableScalar(r.bytes)) return Internal("the proof nonce source gave an unusable scalar");
  Element t2, t3;
  if (crypto_scalarmult_ristretto255_base(t2.data(), r.data()) != 0 || !Mul(t3, r.data(), m))
    return Internal("proof nonce is zero");
  Proof proof;
  proof.c = Challenge(mode, pk, m, z, t2, t3);
  keys::StackSecret<kScalarBytes> ck;
  crypto_core_ristretto255_scalar_mul(ck.data(), proof.c.data(), k);
  crypto_core_ristretto255_scalar_sub(proof.s.data(), r.data(), ck.data());
  return proof;
}

}  // namespace

bool IsCanonicalScalar(ByteView s) {
  if (s.size() != kScalarBytes) return false;
  uint8_t wide[64] = {};
  std::copy(s.begin(), s.end(), wide);
  uint8_t reduced[kScalarBytes];
  crypto_core_ristretto255_scalar_reduce(reduced, wide);
  const bool same = sodium_memcmp(reduced, s.data(), kScalarBytes) == 0;
  sodium_memzero(wide, sizeof wide);
  sodium_memzero(reduced, sizeof reduced);
  return same;
}

ScalarSource RandomScalars() {
  return [](std::span<uint8_t, kScalarBytes> out) {
    crypto_core_ristretto255_scalar_random(out.data());
  };
}

Bytes ContextString(Mode mode) {
  Bytes out = ToBytes("OPRFV1-");
  out.push_back(static_cast<uint8_t>(mode));
  out.push_back('-');
  Append(out, AsBytes(kSuite));
  return out;
}

Status ExpandMessageXmdSha512(ByteView msg, ByteView dst, std::span<uint8_t> out) {
  const size_t ell = (out.size() + kSha512Bytes - 1) / kSha512Bytes;
  if (ell > 255 || out.size() > 65535 || dst.size() > 255 || out.empty())
    return InvalidArgument("expand_message_xmd: output or DST too long");
  Bytes dst_prime(dst.begin(), dst.end());
  dst_prime.push_back(static_cast<uint8_t>(dst.size()));
  const uint8_t z_pad[kSha512BlockBytes] = {};
  const uint8_t l_i_b[2] = {static_cast<uint8_t>(out.size() >> 8),
                            static_cast<uint8_t>(out.size() & 0xff)};
  const uint8_t zero = 0;
  uint8_t b0[kSha512Bytes];
  crypto_hash_sha512_state st;
  crypto_hash_sha512_init(&st);
  crypto_hash_sha512_update(&st, z_pad, sizeof z_pad);
  crypto_hash_sha512_update(&st, msg.data(), msg.size());
  crypto_hash_sha512_update(&st, l_i_b, sizeof l_i_b);
  crypto_hash_sha512_update(&st, &zero, 1);
  crypto_hash_sha512_update(&st, dst_prime.data(), dst_prime.size());
  crypto_hash_sha512_final(&st, b0);
  uint8_t bi[kSha512Bytes] = {};  // b_0 xor b_(i-1) for i > 1; b_0 for i = 1
  uint8_t prev[kSha512Bytes] = {};
  for (size_t i = 1; i <= ell; ++i) {
    for (size_t j = 0; j < kSha512Bytes; ++j) bi[j] = static_cast<uint8_t>(b0[j] ^ prev[j]);
    const uint8_t counter = static_cast<uint8_t>(i);
    crypto_hash_sha512_init(&st);
    crypto_hash_sha512_update(&st, bi, sizeof bi);
    crypto_hash_sha512_update(&st, &counter, 1);
    crypto_hash_sha512_update(&st, dst_prime.data(), dst_prime.size());
    crypto_hash_sha512_final(&st, prev);
    const size_t off = (i - 1) * kSha512Bytes;
    std::copy_n(prev, std::min(kSha512Bytes, out.size() - off), out.data() + off);
  }
  sodium_memzero(b0, sizeof b0);
  sodium_memzero(bi, sizeof bi);
  sodium_memzero(prev, sizeof prev);
  return Status::Ok();
}

Element HashToGroup(Mode mode, ByteView input) {
  uint8_t uniform[64];
  // Cannot fail: the DST is short and the length fixed.
  if (!ExpandMessageXmdSha512(input, Dst("HashToGroup-", mode), uniform).ok()) std::abort();
  Element e;
  crypto_core_ristretto255_from_hash(e.data(), uniform);
  sodium_memzero(uniform, sizeof uniform);
  return e;
}

Scalar HashToScalarWithDst(ByteView input, ByteView dst) {
  uint8_t uniform[64];
  if (!ExpandMessageXmdSha512(input, dst, uniform).ok()) std::abort();
  Scalar s;
  crypto_core_ristretto255_scalar_reduce(s.data(), uniform);
  sodium_memzero(uniform, sizeof uniform);
  return s;
}

Scalar HashToScalar(Mode mode, ByteView input) {
  return HashToScalarWithDst(input, Dst("HashToScalar-", mode));
}

std::array<uint8_t, kProofBytes> Proof::Serialize() const {
  std::array<uint8_t, kProofBytes> out;
  std::copy(c.begin(), c.end(), out.begin());
  std::copy(s.begin(), s.end(), out.begin() + kScalarBytes);
  return out;
}

Result<Proof> Proof::Deserialize(ByteView bytes) {
  if (bytes.size() != kProofBytes) return Malformed("proof: not 64 bytes");
  if (!IsCanonicalScalar(bytes.first(kScalarBytes)) ||
      !IsCanonicalScalar(bytes.subspan(kScalarBytes)))
    return Malformed("proof: a scalar is not reduced modulo the group order");
  Proof p;
  std::copy_n(bytes.begin(), kScalarBytes, p.c.begin());
  std::copy_n(bytes.begin() + kScalarBytes, kScalarBytes, p.s.begin());
  return p;
}

Result<Element> DeserializeElement(ByteView bytes) {
  if (bytes.size() != kElementBytes) return Malformed("group element: not 32 bytes");
  Element e;
  std::copy(bytes.begin(), bytes.end(), e.begin());
  if (IsIdentity(e)) return Malformed("group element: the identity");
  if (crypto_core_ristretto255_is_valid_point(e.data()) != 1)
    return Malformed("group element: not a canonical ristretto255 encoding");
  return e;
}

Result<ServerKey> ServerKey::FromPrivate(Mode mode, ByteView private_scalar) {
  if (!IsCanonicalScalar(private_scalar) ||
      sodium_is_zero(private_scalar.data(), private_scalar.size()) == 1)
    return InvalidArgument("OPRF private key: not a scalar in [1, L-1]");
  REFBUS_ASSIGN_OR_RETURN(auto sk, keys::SecretKey<kScalarBytes>::Allocate());
  std::copy(private_scalar.begin(), private_scalar.end(), sk.data());
  Element pk;
  if (crypto_scalarmult_ristretto255_base(pk.data(), sk.data()) != 0)
    return Internal("OPRF public key is the identity");
  return ServerKey(mode, std::move(sk), pk);
}

Result<ServerKey> ServerKey::Derive(Mode mode, ByteView seed, ByteView info) {
  if (seed.size() != 32) return InvalidArgument("DeriveKeyPair: the seed must be 32 bytes");
  if (info.size() > 65535) return InvalidArgument("DeriveKeyPair: info over 65535 bytes");
  keys::Plaintext derive_input(seed.size() + 2 + info.size() + 1);
  uint8_t* p = derive_input.data();
  p = std::copy(seed.begin(), seed.end(), p);
  *p++ = static_cast<uint8_t>(info.size() >> 8);
  *p++ = static_cast<uint8_t>(info.size() & 0xff);
  std::copy(info.begin(), info.end(), p);
  const Bytes dst = Dst("DeriveKeyPair", mode);
  for (unsigned counter = 0; counter <= 255; ++counter) {
    derive_input.data()[derive_input.size() - 1] = static_cast<uint8_t>(counter);
    Scalar sk = HashToScalarWithDst(derive_input.view(), dst);
    const bool zero = sodium_is_zero(sk.data(), sk.size()) == 1;
    auto key = zero ? Result<ServerKey>(Internal("zero")) : FromPrivate(mode, sk);
    sodium_memzero(sk.data(), sk.size());
    if (!zero) return key;
  }
  return Internal("DeriveKeyPair: no non-zero scalar in 256 tries");
}

Result<ServerKey> ServerKey::Generate(Mode mode) {
  Scalar sk;
  crypto_core_ristretto255_scalar_random(sk.data());
  auto key = FromPrivate(mode, sk);
  sodium_memzero(sk.data(), sk.size());
  return key;
}

BlindState::BlindState(BlindState&& o) noexcept : blind_(o.blind_), blinded_(o.blinded_) {
  sodium_memzero(o.blind_.data(), o.blind_.size());
}

BlindState& BlindState::operator=(BlindState&& o) noexcept {
  if (this != &o) {
    blind_ = o.blind_;
    blinded_ = o.blinded_;
    sodium_memzero(o.blind_.data(), o.blind_.size());
  }
  return *this;
}

BlindState::~BlindState() { sodium_memzero(blind_.data(), blind_.size()); }

Result<BlindState> Blind(Mode mode, ByteView input, const ScalarSource& scalars) {
  if (input.size() > kMaxInputBytes) return InvalidArgument("OPRF input over 65535 bytes");
  BlindState state;
  scalars(std::span<uint8_t, kScalarBytes>(state.blind_));
  if (!IsUsableScalar(state.blind_))
    return InvalidArgument("OPRF blind: the scalar source gave zero or an unreduced value");
  const Element input_element = HashToGroup(mode, input);
  if (IsIdentity(input_element)) return InvalidArgument("OPRF input maps to the identity");
  if (!Mul(state.blinded_, state.blind_.data(), input_element))
    return InvalidArgument("OPRF blind is zero");
  return state;
}

Result<BatchEvaluation> BlindEvaluateBatch(const ServerKey& key,
                                           std::span<const Element> blinded_elements,
                                           const ScalarSource& scalars) {
  if (blinded_elements.empty() || blinded_elements.size() > 65535)
    return InvalidArgument("BlindEvaluate: between 1 and 65535 elements");
  BatchEvaluation out;
  out.evaluated.resize(blinded_elements.size());
  for (size_t i = 0; i < blinded_elements.size(); ++i) {
    REFBUS_ASSIGN_OR_RETURN(const Element b, DeserializeElement(blinded_elements[i]));
    if (!Mul(out.evaluated[i], key.private_scalar().data(), b))
      return Malformed("blinded element: not a valid group element");
  }
  if (key.mode() == Mode::kOprf) return out;
  REFBUS_ASSIGN_OR_RETURN(out.proof,
                          GenerateProof(key.mode(), key.private_scalar().data(), key.public_key(),
                                        blinded_elements, out.evaluated, scalars));
  return out;
}

Result<Evaluation> BlindEvaluate(const ServerKey& key, const Element& blinded_element,
                                 const ScalarSource& scalars) {
  REFBUS_ASSIGN_OR_RETURN(auto batch, BlindEvaluateBatch(key, {&blinded_element, 1}, scalars));
  return Evaluation{batch.evaluated[0], batch.proof};
}

bool VerifyProof(Mode mode, const Element& public_key, std::span<const Element> blinded_elements,
                 std::span<const Element> evaluated_elements, const Proof& proof) {
  if (blinded_elements.empty() || blinded_elements.size() != evaluated_elements.size() ||
      blinded_elements.size() > 65535)
    return false;
  if (!IsCanonicalScalar(proof.c) || !IsCanonicalScalar(proof.s)) return false;
  if (!DeserializeElement(public_key).ok()) return false;
  for (size_t i = 0; i < blinded_elements.size(); ++i) {
    if (!DeserializeElement(blinded_elements[i]).ok()) return false;
    if (!DeserializeElement(evaluated_elements[i]).ok()) return false;
  }
  Element m, z;
  if (!ComputeComposites(mode, nullptr, public_key, blinded_elements, evaluated_elements, m, z))
    return false;
  // t2 = s*G + c*pk, t3 = s*M + c*Z. An identity term (s = 0 or c = 0) only comes from a
  // forged proof: refused by Mul.
  Element t2, t3;
  if (!MulAdd(t2, proof.s, Generator(), proof.c, public_key)) return false;
  if (!MulAdd(t3, proof.s, m, proof.c, z)) return false;
  const Scalar expected = Challenge(mode, public_key, m, z, t2, t3);
  return sodium_memcmp(expected.data(), proof.c.data(), kScalarBytes) == 0;
}

Output FinalizeHash(ByteView input, const Element& unblinded) {
  Bytes hash_input;
  AppendPrefixed(hash_input, input);
  AppendPrefixed(hash_input, unblinded);
  Append(hash_input, AsBytes("Finalize"));
  Output out;
  crypto_hash_sha512(out.data(), hash_input.data(), hash_input.size());
  sodium_memzero(hash_input.data(), hash_input.size());
  return out;
}

Result<Element> Unblind(const BlindState& state, const Element& evaluated) {
  REFBUS_ASSIGN_OR_RETURN(const Element e, DeserializeElement(evaluated));
  keys::StackSecret<kScalarBytes> inverse;
  if (crypto_core_ristretto255_scalar_invert(inverse.data(), state.blind().data()) != 0)
    return FailedPrecondition("OPRF blind is zero (state was moved from)");
  Element n;
  if (!Mul(n, inverse.data(), e)) return Malformed("evaluated element: not a group element");
  return n;
}

Result<Output> Finalize(Mode mode, ByteView input, const BlindState& state,
                        const Evaluation& evaluation, const Element& public_key) {
  if (input.size() > kMaxInputBytes) return InvalidArgument("OPRF input over 65535 bytes");
  REFBUS_RETURN_IF_ERROR(DeserializeElement(evaluation.evaluated).status());
  if (mode == Mode::kVoprf) {
    const Element& blinded = state.blinded_element();
    if (!VerifyProof(mode, public_key, {&blinded, 1}, {&evaluation.evaluated, 1}, evaluation.proof))
      return Unauthenticated("OPRF evaluation: the proof does not verify against the key");
  }
  REFBUS_ASSIGN_OR_RETURN(const Element n, Unblind(state, evaluation.evaluated));
  return FinalizeHash(input, n);
}

Result<Output> Evaluate(const ServerKey& key, ByteView input) {
  if (input.size() > kMaxInputBytes) return InvalidArgument("OPRF input over 65535 bytes");
  const Element input_element = HashToGroup(key.mode(), input);
  if (IsIdentity(input_element)) return InvalidArgument("OPRF input maps to the identity");
  Element n;
  if (!Mul(n, key.private_scalar().data(), input_element)) return Internal("identity result");
  return FinalizeHash(input, n);
}

}  // namespace refbus::linkage::oprf
