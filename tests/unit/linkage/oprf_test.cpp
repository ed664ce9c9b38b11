// RFC 9497 OPRF and VOPRF, ristretto255-SHA512 (linkage/oprf.h), against the RFC's test
// vectors and against hostile input.
//
// The vectors are typed in from RFC 9497 Appendix A.1 ("ristretto255-SHA512"): A.1.1 OPRF
// Mode and A.1.2 VOPRF Mode, test vectors 1 and 2 (batch size 1) and, for VOPRF, test
// vector 3 (batch size 2). Seed, KeyInfo, skSm, pkSm, Blind and ProofRandomScalar are the
// RFC's inputs; BlindedElement, EvaluationElement, Proof and Output are what it expects.
#include "linkage/oprf.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

#include "tests/unit/test_util.h"

namespace refbus::linkage::oprf {
namespace {

using test::IsOk;

Bytes Hex(std::string_view hex) {
  auto b = HexDecode(hex);
  if (!b.ok()) ADD_FAILURE() << "bad hex in the test: " << hex;
  return b.ok() ? *b : Bytes{};
}

template <size_t N>
std::array<uint8_t, N> HexArray(std::string_view hex) {
  std::array<uint8_t, N> out{};
  const Bytes b = Hex(hex);
  EXPECT_EQ(b.size(), N) << hex;
  std::copy_n(b.begin(), std::min(N, b.size()), out.begin());
  return out;
}

template <size_t N>
std::string ToHex(const std::array<uint8_t, N>& a) {
  return HexEncode(ByteView(a.data(), a.size()));
}

// A ScalarSource that hands out the given scalars in order (the RFC's Blind and
// ProofRandomScalar values), and fails the test if asked for more.
ScalarSource Fixed(std::vector<std::string> hex_scalars) {
  auto remaining = std::make_shared<std::vector<std::string>>(std::move(hex_scalars));
  return [remaining](std::span<uint8_t, kScalarBytes> out) {
    if (remaining->empty()) {
      ADD_FAILURE() << "more random scalars drawn than the RFC vector provides";
      crypto_core_ristretto255_scalar_random(out.data());
      return;
    }
    const auto s = HexArray<kScalarBytes>(remaining->front());
    remaining->erase(remaining->begin());
    std::copy(s.begin(), s.end(), out.begin());
  };
}

// RFC 9497 Appendix A.1: the same Seed and KeyInfo for every mode.
constexpr std::string_view kSeed =
    "a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3";
constexpr std::string_view kKeyInfo = "74657374206b6579";  // "test key"
constexpr std::string_view kBlind =
    "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706";
constexpr std::string_view kInput1 = "00";
constexpr std::string_view kInput2 = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

// --- RFC 9497 Appendix A.1.1, OPRF mode ----------------------------------------------
constexpr std::string_view kOprfSkSm =
    "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e";

struct OprfVector {
  std::string_view input, blinded, evaluated, output;
};
const OprfVector kOprfVectors[] = {
    {kInput1, "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
     "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
     "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
     "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6"},
    {kInput2, "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
     "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
     "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
     "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73"},
};

TEST(OprfRfc9497Test, DeriveKeyPairOprfMode) {
  auto key = ServerKey::Derive(Mode::kOprf, Hex(kSeed), Hex(kKeyInfo));
  ASSERT_TRUE(IsOk(key));
  EXPECT_EQ(HexEncode(key->private_scalar()), kOprfSkSm);
}

TEST(OprfRfc9497Test, OprfModeVectors) {
  auto key = ServerKey::Derive(Mode::kOprf, Hex(kSeed), Hex(kKeyInfo));
  ASSERT_TRUE(IsOk(key));
  for (const auto& v : kOprfVectors) {
    SCOPED_TRACE(v.input);
    auto state = Blind(Mode::kOprf, Hex(v.input), Fixed({std::string(kBlind)}));
    ASSERT_TRUE(IsOk(state));
    EXPECT_EQ(ToHex(state->blinded_element()), v.blinded);
    auto eval = BlindEvaluate(*key, state->blinded_element(), Fixed({}));
    ASSERT_TRUE(IsOk(eval));
    EXPECT_EQ(ToHex(eval->evaluated), v.evaluated);
    auto out = Finalize(Mode::kOprf, Hex(v.input), *state, *eval, key->public_key());
    ASSERT_TRUE(IsOk(out));
    EXPECT_EQ(ToHex(*out), v.output);
    auto direct = Evaluate(*key, Hex(v.input));
    ASSERT_TRUE(IsOk(direct));
    EXPECT_EQ(ToHex(*direct), v.output);
  }
}

// --- RFC 9497 Appendix A.1.2, VOPRF mode ---------------------------------------------
constexpr std::string_view kVoprfSkSm =
    "e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909";
constexpr std::string_view kVoprfPkSm =
    "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e";
constexpr std::string_view kProofRandomScalar =
    "222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e";

struct VoprfVector {
  std::string_view input, blinded, evaluated, proof, output;
};
const VoprfVector kVoprfVectors[] = {
    {kInput1, "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945",
     "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e",
     "ddef93772692e535d1a53903db24367355cc2cc78de93b3be5a8ffcc6985dd06"
     "6d4346421d17bf5117a2a1ff0fcb2a759f58a539dfbe857a40bce4cf49ec600d",
     "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d"
     "a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c"},
    {kInput2, "cc0b2a350101881d8a4cba4c80241d74fb7dcbfde4a61fde2f91443c2bf9ef0c",
     "60a59a57208d48aca71e9e850d22674b611f752bed48b36f7a91b372bd7ad468",
     "401a0da6264f8cf45bb2f5264bc31e109155600babb3cd4e5af7d181a2c9dc0a"
     "67154fabf031fd936051dec80b0b6ae29c9503493dde7393b722eafdf5a50b02",
     "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60"
     "356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6"},
};

TEST(OprfRfc9497Test, DeriveKeyPairVoprfMode) {
  auto key = ServerKey::Derive(Mode::kVoprf, Hex(kSeed), Hex(kKeyInfo));
  ASSERT_TRUE(IsOk(key));
  EXPECT_EQ(HexEncode(key->private_scalar()), kVoprfSkSm);
  EXPECT_EQ(ToHex(key->public_key()), kVoprfPkSm);
}

TEST(OprfRfc9497Test, VoprfModeVectorsBatchSizeOne) {
  auto key = ServerKey::Derive(Mode::kVoprf, Hex(kSeed), Hex(kKeyInfo));
  ASSERT_TRUE(IsOk(key));
  for (const auto& v : kVoprfVectors) {
    SCOPED_TRACE(v.input);
    auto state = Blind(Mode::kVoprf, Hex(v.input), Fixed({std::string(kBlind)}));
    ASSERT_TRUE(IsOk(state));
    EXPECT_EQ(ToHex(state->blinded_element()), v.blinded);
    auto eval =
        BlindEvaluate(*key, state->blinded_element(), Fixed({std::string(kProofRandomScalar)}));
    ASSERT_TRUE(IsOk(eval));
    EXPECT_EQ(ToHex(eval->evaluated), v.evaluated);
    EXPECT_EQ(HexEncode(eval->proof.Serialize()), v.proof);
    auto out = Finalize(Mode::kVoprf, Hex(v.input), *state, *eval, key->public_key());
    ASSERT_TRUE(IsOk(out));
    EXPECT_EQ(ToHex(*out), v.output);
    auto direct = Evaluate(*key, Hex(v.input));
    ASSERT_TRUE(IsOk(direct));
    EXPECT_EQ(ToHex(*direct), v.output);
  }
}

// Test Vector 3, Batch Size 2: two inputs, two blinds, one proof over both.
TEST(OprfRfc9497Test, VoprfModeVectorBatchSizeTwo) {
  auto key = ServerKey::Derive(Mode::kVoprf, Hex(kSeed), Hex(kKeyInfo));
  ASSERT_TRUE(IsOk(key));
  auto s1 = Blind(Mode::kVoprf, Hex(kInput1), Fixed({std::string(kBlind)}));
  auto s2 = Blind(Mode::kVoprf, Hex(kInput2),
                  Fixed({"222a5e897cf59db8145db8d16e597e8facb80ae7d4e26d9881aa6f61d645fc0e"}));
  ASSERT_TRUE(IsOk(s1));
  ASSERT_TRUE(IsOk(s2));
  EXPECT_EQ(ToHex(s1->blinded_element()),
            "863f330cc1a1259ed5a5998a23acfd37fb4351a793a5b3c090b642ddc439b945");
  EXPECT_EQ(ToHex(s2->blinded_element()),
            "90a0145ea9da29254c3a56be4fe185465ebb3bf2a1801f7124bbbadac751e654");
  const std::vector<Element> blinded = {s1->blinded_element(), s2->blinded_element()};
  auto batch = BlindEvaluateBatch(
      *key, blinded, Fixed({"419c4f4f5052c53c45f3da494d2b67b220d02118e0857cdbcf037f9ea84bbe0c"}));
  ASSERT_TRUE(IsOk(batch));
  ASSERT_EQ(batch->evaluated.size(), 2u);
  EXPECT_EQ(ToHex(batch->evaluated[0]),
            "aa8fa048764d5623868679402ff6108d2521884fa138cd7f9c7669a9a014267e");
  EXPECT_EQ(ToHex(batch->evaluated[1]),
            "cc5ac221950a49ceaa73c8db41b82c20372a4c8d63e5dded2db920b7eee36a2a");
  EXPECT_EQ(HexEncode(batch->proof.Serialize()),
            "cc203910175d786927eeb44ea847328047892ddf8590e723c37205cb74600b0a"
            "5ab5337c8eb4ceae0494c2cf89529dcf94572ed267473d567aeed6ab873dee08");
  EXPECT_TRUE(
      VerifyProof(Mode::kVoprf, key->public_key(), blinded, batch->evaluated, batch->proof));
  auto out2 = Unblind(*s2, batch->evaluated[1]);
  ASSERT_TRUE(IsOk(out2));
  EXPECT_EQ(ToHex(FinalizeHash(Hex(kInput2), *out2)),
            "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60"
            "356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6");
}

// --- Hostile and faulty input --------------------------------------------------------

TEST(OprfTest, FinalizeRefusesAProofMadeUnderAnotherKey) {
  auto key = ServerKey::Generate(Mode::kVoprf);
  auto other = ServerKey::Generate(Mode::kVoprf);
  ASSERT_TRUE(IsOk(key));
  ASSERT_TRUE(IsOk(other));
  const Bytes input = ToBytes("some identifier");
  auto state = Blind(Mode::kVoprf, input, RandomScalars());
  ASSERT_TRUE(IsOk(state));
  auto eval = BlindEvaluate(*other, state->blinded_element(), RandomScalars());
  ASSERT_TRUE(IsOk(eval));
  auto out = Finalize(Mode::kVoprf, input, *state, *eval, key->public_key());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), Status::Code::kUnauthenticated) << out.status().ToString();
  // The same evaluation is accepted against the key that made it.
  EXPECT_TRUE(IsOk(Finalize(Mode::kVoprf, input, *state, *eval, other->public_key())));
}

TEST(OprfTest, FinalizeRefusesAnEditedProofOrElement) {
  auto key = ServerKey::Generate(Mode::kVoprf);
  ASSERT_TRUE(IsOk(key));
  const Bytes input = ToBytes("some identifier");
  auto state = Blind(Mode::kVoprf, input, RandomScalars());
  ASSERT_TRUE(IsOk(state));
  auto eval = BlindEvaluate(*key, state->blinded_element(), RandomScalars());
  ASSERT_TRUE(IsOk(eval));
  {
    Evaluation bad = *eval;
    bad.proof.s[0] ^= 1;
    auto out = Finalize(Mode::kVoprf, input, *state, bad, key->public_key());
    EXPECT_EQ(out.status().code(), Status::Code::kUnauthenticated) << out.status().ToString();
  }
  {
    // A server that answers with another valid element (its key times something else).
    Evaluation bad = *eval;
    crypto_core_ristretto255_add(bad.evaluated.data(), eval->evaluated.data(),
                                 key->public_key().data());
    auto out = Finalize(Mode::kVoprf, input, *state, bad, key->public_key());
    EXPECT_EQ(out.status().code(), Status::Code::kUnauthenticated) << out.status().ToString();
  }
  {
    Evaluation bad = *eval;
    bad.evaluated.fill(0);  // the identity
    auto out = Finalize(Mode::kVoprf, input, *state, bad, key->public_key());
    EXPECT_EQ(out.status().code(), Status::Code::kMalformed) << out.status().ToString();
  }
}

TEST(OprfTest, ServerRefusesInvalidAndIdentityElements) {
  auto key = ServerKey::Generate(Mode::kVoprf);
  ASSERT_TRUE(IsOk(key));
  Element identity{};
  Element not_canonical;
  not_canonical.fill(0xff);
  for (const Element& e : {identity, not_canonical}) {
    auto eval = BlindEvaluate(*key, e, RandomScalars());
    ASSERT_FALSE(eval.ok());
    EXPECT_EQ(eval.status().code(), Status::Code::kMalformed);
    EXPECT_FALSE(DeserializeElement(e).ok());
  }
  EXPECT_FALSE(DeserializeElement(Bytes(31, 1)).ok());
}

TEST(OprfTest, ProofDeserializeRefusesWrongSizeAndUnreducedScalars) {
  EXPECT_EQ(Proof::Deserialize(Bytes(63, 0)).status().code(), Status::Code::kMalformed);
  Bytes unreduced(64, 0xff);
  EXPECT_EQ(Proof::Deserialize(unreduced).status().code(), Status::Code::kMalformed);
  EXPECT_TRUE(IsOk(Proof::Deserialize(Bytes(64, 1))));
}

TEST(OprfTest, BlindRefusesAnOversizedInput) {
  auto state = Blind(Mode::kVoprf, Bytes(kMaxInputBytes + 1, 'a'), RandomScalars());
  EXPECT_EQ(state.status().code(), Status::Code::kInvalidArgument);
}

// A scalar source that hands out zero or an unreduced value (a broken injected source, or a
// broken RNG) is refused rather than used: a zero blind would send the identity, an
// unreduced one a different scalar than the caller thinks.
TEST(OprfTest, BadScalarsFromTheSourceAreRefused) {
  auto key = ServerKey::Generate(Mode::kVoprf);
  ASSERT_TRUE(IsOk(key));
  const std::string zero(64, '0');
  const std::string unreduced(64, 'f');
  for (const std::string& bad : {zero, unreduced}) {
    auto state = Blind(Mode::kVoprf, ToBytes("x"), Fixed({bad}));
    EXPECT_EQ(state.status().code(), Status::Code::kInvalidArgument) << bad;
    auto good = Blind(Mode::kVoprf, ToBytes("x"), RandomScalars());
    ASSERT_TRUE(IsOk(good));
    auto eval = BlindEvaluate(*key, good->blinded_element(), Fixed({bad}));
    EXPECT_EQ(eval.status().code(), Status::Code::kInternal) << bad;
  }
}

TEST(OprfTest, DeriveRefusesAShortSeed) {
  auto key = ServerKey::Derive(Mode::kVoprf, Bytes(31, 0xa3), Hex(kKeyInfo));
  EXPECT_EQ(key.status().code(), Status::Code::kInvalidArgument);
}

TEST(OprfTest, FromPrivateRoundTripsAndRefusesZeroAndUnreduced) {
  auto key = ServerKey::Generate(Mode::kVoprf);
  ASSERT_TRUE(IsOk(key));
  auto copy = ServerKey::FromPrivate(Mode::kVoprf, key->private_scalar());
  ASSERT_TRUE(IsOk(copy));
  EXPECT_EQ(copy->public_key(), key->public_key());
  EXPECT_FALSE(ServerKey::FromPrivate(Mode::kVoprf, Bytes(32, 0)).ok());
  EXPECT_FALSE(ServerKey::FromPrivate(Mode::kVoprf, Bytes(32, 0xff)).ok());
  EXPECT_FALSE(ServerKey::FromPrivate(Mode::kVoprf, Bytes(31, 1)).ok());
}

}  // namespace
}  // namespace refbus::linkage::oprf
