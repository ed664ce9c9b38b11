// The pseudonym under two evaluators' keys (linkage/two_party.h, PROTOCOL.md 13.3): the
// same identifier gives the same pseudonym at every agency, one key alone gives another
// value, and a wrong proof from either evaluator is refused.
#include "linkage/two_party.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include "tests/unit/test_util.h"

namespace refbus::linkage {
namespace {

using test::IsOk;

struct Evaluators {
  oprf::ServerKey a;
  oprf::ServerKey b;
};

Evaluators MakeEvaluators() {
  auto a = oprf::ServerKey::Generate(oprf::Mode::kVoprf);
  auto b = oprf::ServerKey::Generate(oprf::Mode::kVoprf);
  if (!a.ok() || !b.ok()) std::abort();
  return {std::move(a).value(), std::move(b).value()};
}

CanonicalIdentifier Phone(std::string_view raw) {
  auto id = Canonicalize(IdentifierKind::kPhone, raw);
  if (!id.ok()) std::abort();
  return *id;
}

// One agency's full run: blind, A, verify, B, verify, finalize.
Result<Pseudonym> RunAgency(const Evaluators& ev, const CanonicalIdentifier& id) {
  REFBUS_ASSIGN_OR_RETURN(auto req, PseudonymRequest::Start(id, oprf::RandomScalars()));
  REFBUS_ASSIGN_OR_RETURN(auto eval_a,
                          EvaluateForAgency(ev.a, req.first_request(), oprf::RandomScalars()));
  REFBUS_ASSIGN_OR_RETURN(auto to_b, req.AcceptFirst(ev.a.public_key(), eval_a));
  REFBUS_ASSIGN_OR_RETURN(auto eval_b, EvaluateForAgency(ev.b, to_b, oprf::RandomScalars()));
  return req.Finish(ev.b.public_key(), eval_b);
}

// The pseudonym computed with both keys in one place (what no party can do in the
// protocol): the RFC's Finalize over k_A k_B H(input).
Pseudonym Direct(const Evaluators& ev, const CanonicalIdentifier& id) {
  const Bytes input = id.OprfInput();
  const oprf::Element h = oprf::HashToGroup(oprf::Mode::kVoprf, input);
  oprf::Element ah, abh;
  if (crypto_scalarmult_ristretto255(ah.data(), ev.a.private_scalar().data(), h.data()) != 0 ||
      crypto_scalarmult_ristretto255(abh.data(), ev.b.private_scalar().data(), ah.data()) != 0)
    std::abort();
  return oprf::FinalizeHash(input, abh);
}

TEST(TwoPartyTest, SameIdentifierGivesTheSamePseudonymAcrossAgencies) {
  const Evaluators ev = MakeEvaluators();
  // Two agencies typed the number differently; each blinds with its own random scalar.
  auto incheon = RunAgency(ev, Phone("010-1234-5678"));
  auto seoul = RunAgency(ev, Phone("+82 10 1234 5678"));
  ASSERT_TRUE(IsOk(incheon));
  ASSERT_TRUE(IsOk(seoul));
  EXPECT_EQ(*incheon, *seoul);
  EXPECT_EQ(*incheon, Direct(ev, Phone("01012345678")));
  auto other = RunAgency(ev, Phone("010-1234-5679"));
  ASSERT_TRUE(IsOk(other));
  EXPECT_NE(*incheon, *other);
}

TEST(TwoPartyTest, OneEvaluatorsKeyAloneGivesADifferentValue) {
  const Evaluators ev = MakeEvaluators();
  const auto id = Phone("010-1234-5678");
  auto both = RunAgency(ev, id);
  ASSERT_TRUE(IsOk(both));
  for (const oprf::ServerKey* k : {&ev.a, &ev.b}) {
    auto alone = oprf::Evaluate(*k, id.OprfInput());
    ASSERT_TRUE(IsOk(alone));
    EXPECT_NE(*alone, *both);
  }
  // A new key at either party gives a different pseudonym too.
  auto b_copy = oprf::ServerKey::FromPrivate(oprf::Mode::kVoprf, ev.b.private_scalar());
  auto new_a = oprf::ServerKey::Generate(oprf::Mode::kVoprf);
  ASSERT_TRUE(IsOk(b_copy));
  ASSERT_TRUE(IsOk(new_a));
  const Evaluators mixed_ev{std::move(new_a).value(), std::move(b_copy).value()};
  auto mixed = RunAgency(mixed_ev, id);
  ASSERT_TRUE(IsOk(mixed));
  EXPECT_NE(*mixed, *both);
}

TEST(TwoPartyTest, AWrongProofFromEitherEvaluatorIsRefused) {
  const Evaluators ev = MakeEvaluators();
  const Evaluators impostor = MakeEvaluators();
  const auto id = Phone("010-1234-5678");
  {  // A answers with another key than the one listed for it.
    auto req = PseudonymRequest::Start(id, oprf::RandomScalars());
    ASSERT_TRUE(IsOk(req));
    auto eval = EvaluateForAgency(impostor.a, req->first_request(), oprf::RandomScalars());
    ASSERT_TRUE(IsOk(eval));
    auto r = req->AcceptFirst(ev.a.public_key(), *eval);
    EXPECT_EQ(r.status().code(), Status::Code::kUnauthenticated) << r.status().ToString();
  }
  {  // B's proof is edited.
    auto req = PseudonymRequest::Start(id, oprf::RandomScalars());
    ASSERT_TRUE(IsOk(req));
    auto eval_a = EvaluateForAgency(ev.a, req->first_request(), oprf::RandomScalars());
    ASSERT_TRUE(IsOk(eval_a));
    auto to_b = req->AcceptFirst(ev.a.public_key(), *eval_a);
    ASSERT_TRUE(IsOk(to_b));
    auto eval_b = EvaluateForAgency(ev.b, *to_b, oprf::RandomScalars());
    ASSERT_TRUE(IsOk(eval_b));
    oprf::Evaluation forged = *eval_b;
    forged.proof.c[3] ^= 0x10;
    auto r = req->Finish(ev.b.public_key(), forged);
    EXPECT_EQ(r.status().code(), Status::Code::kUnauthenticated) << r.status().ToString();
    // B evaluated the agency's original element instead of A's output: a proof that is
    // valid for another statement is refused too.
    auto skipped = EvaluateForAgency(ev.b, req->first_request(), oprf::RandomScalars());
    ASSERT_TRUE(IsOk(skipped));
    r = req->Finish(ev.b.public_key(), *skipped);
    EXPECT_EQ(r.status().code(), Status::Code::kUnauthenticated) << r.status().ToString();
    // One evaluator answering both steps is not two evaluators.
    auto again = EvaluateForAgency(ev.a, *to_b, oprf::RandomScalars());
    ASSERT_TRUE(IsOk(again));
    r = req->Finish(ev.a.public_key(), *again);
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << r.status().ToString();
    // The genuine answer still completes the request.
    EXPECT_TRUE(IsOk(req->Finish(ev.b.public_key(), *eval_b)));
  }
}

TEST(TwoPartyTest, StepsOutOfOrderAreRefused) {
  const Evaluators ev = MakeEvaluators();
  auto req = PseudonymRequest::Start(Phone("010-1234-5678"), oprf::RandomScalars());
  ASSERT_TRUE(IsOk(req));
  auto eval_a = EvaluateForAgency(ev.a, req->first_request(), oprf::RandomScalars());
  ASSERT_TRUE(IsOk(eval_a));
  EXPECT_EQ(req->Finish(ev.b.public_key(), *eval_a).status().code(),
            Status::Code::kFailedPrecondition);
  ASSERT_TRUE(IsOk(req->AcceptFirst(ev.a.public_key(), *eval_a)));
  EXPECT_EQ(req->AcceptFirst(ev.a.public_key(), *eval_a).status().code(),
            Status::Code::kFailedPrecondition);
}

TEST(TwoPartyTest, AnOprfModeKeyIsNotAnEvaluatorKey) {
  auto key = oprf::ServerKey::Generate(oprf::Mode::kOprf);
  ASSERT_TRUE(IsOk(key));
  auto req = PseudonymRequest::Start(Phone("010-1234-5678"), oprf::RandomScalars());
  ASSERT_TRUE(IsOk(req));
  EXPECT_EQ(EvaluateForAgency(*key, req->first_request(), oprf::RandomScalars()).status().code(),
            Status::Code::kFailedPrecondition);
}

}  // namespace
}  // namespace refbus::linkage

namespace refbus::linkage {
namespace {

schema::Party EvaluatorParty(std::string id, const oprf::ServerKey& key) {
  schema::Party p;
  p.id = std::move(id);
  p.kind = schema::PartyKind::kAgency;
  p.roles = {schema::Role::kRefer, schema::Role::kLinkageEvaluator};
  schema::KeyRecord k;
  k.linkage_key = Bytes(key.public_key().begin(), key.public_key().end());
  p.keys.push_back(k);
  return p;
}

TEST(TwoPartyTest, EvaluatorKeysComeFromTheDirectory) {
  const Evaluators ev = MakeEvaluators();
  schema::Directory d;
  d.agencies.push_back(EvaluatorParty("central-dsc", ev.a));
  d.agencies.push_back(EvaluatorParty("second-eval", ev.b));
  schema::Party plain = EvaluatorParty("incheon-dsc", ev.a);
  plain.roles = {schema::Role::kRefer};
  d.agencies.push_back(plain);
  schema::Party revoked = EvaluatorParty("old-eval", ev.a);
  revoked.status = schema::PartyStatus::kRevoked;
  d.agencies.push_back(revoked);

  auto a = ListedEvaluatorKey(d, "central-dsc");
  ASSERT_TRUE(IsOk(a));
  EXPECT_EQ(*a, ev.a.public_key());
  EXPECT_EQ(ListedEvaluatorKey(d, "nobody").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(ListedEvaluatorKey(d, "incheon-dsc").status().code(), Status::Code::kPermissionDenied);
  EXPECT_EQ(ListedEvaluatorKey(d, "old-eval").status().code(), Status::Code::kRevoked);

  // A full run with the listed keys.
  const auto id = Phone("010-1234-5678");
  auto req = PseudonymRequest::Start(id, oprf::RandomScalars());
  ASSERT_TRUE(IsOk(req));
  auto eval_a = EvaluateForAgency(ev.a, req->first_request(), oprf::RandomScalars());
  ASSERT_TRUE(IsOk(eval_a));
  auto to_b = req->AcceptFirst(*a, *eval_a);
  ASSERT_TRUE(IsOk(to_b));
  auto eval_b = EvaluateForAgency(ev.b, *to_b, oprf::RandomScalars());
  ASSERT_TRUE(IsOk(eval_b));
  auto b = ListedEvaluatorKey(d, "second-eval");
  ASSERT_TRUE(IsOk(b));
  auto pseudonym = req->Finish(*b, *eval_b);
  ASSERT_TRUE(IsOk(pseudonym));
  EXPECT_EQ(*pseudonym, Direct(ev, id));
}

}  // namespace
}  // namespace refbus::linkage
