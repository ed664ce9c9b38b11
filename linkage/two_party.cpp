// Two evaluators in sequence over one blinding (see two_party.h).
#include "linkage/two_party.h"

#include <sodium.h>

namespace refbus::linkage {

Result<oprf::Element> ListedEvaluatorKey(const schema::Directory& directory, std::string_view id) {
  const schema::Party* p = directory.Find(id);
  if (p == nullptr) return NotFound("linkage evaluator " + std::string(id) + " is not listed");
  if (p->status != schema::PartyStatus::kActive)
    return Revoked("linkage evaluator " + p->id + " is revoked");
  if (!p->HasRole(schema::Role::kLinkageEvaluator))
    return PermissionDenied(p->id + " does not hold the role linkage-evaluator");
  const schema::KeyRecord* k = p->ActiveKeys();
  if (k == nullptr) return Revoked("linkage evaluator " + p->id + " has no active keys");
  return oprf::DeserializeElement(k->linkage_key);
}

Result<oprf::Evaluation> EvaluateForAgency(const oprf::ServerKey& key, const oprf::Element& blinded,
                                           const oprf::ScalarSource& scalars) {
  if (key.mode() != oprf::Mode::kVoprf)
    return FailedPrecondition("linkage evaluator key is not a VOPRF key");
  return oprf::BlindEvaluate(key, blinded, scalars);
}

Result<PseudonymRequest> PseudonymRequest::Start(const CanonicalIdentifier& id,
                                                 const oprf::ScalarSource& scalars) {
  Bytes input = id.OprfInput();
  auto state = oprf::Blind(oprf::Mode::kVoprf, input, scalars);
  if (!state.ok()) {
    sodium_memzero(input.data(), input.size());
    return state.status();
  }
  return PseudonymRequest(std::move(input), std::move(state).value());
}

PseudonymRequest::~PseudonymRequest() { sodium_memzero(input_.data(), input_.size()); }

Result<oprf::Element> PseudonymRequest::AcceptFirst(const oprf::Element& pk_a,
                                                    const oprf::Evaluation& eval_a) {
  if (from_a_.has_value()) return FailedPrecondition("the first evaluation was already accepted");
  REFBUS_RETURN_IF_ERROR(oprf::DeserializeElement(eval_a.evaluated).status());
  const oprf::Element& blinded = state_.blinded_element();
  if (!oprf::VerifyProof(oprf::Mode::kVoprf, pk_a, {&blinded, 1}, {&eval_a.evaluated, 1},
                         eval_a.proof))
    return Unauthenticated("first evaluator's proof does not verify against its listed key");
  pk_a_ = pk_a;
  from_a_ = eval_a.evaluated;
  return *from_a_;
}

Result<Pseudonym> PseudonymRequest::Finish(const oprf::Element& pk_b,
                                           const oprf::Evaluation& eval_b) {
  if (!from_a_.has_value()) return FailedPrecondition("the first evaluation is missing");
  if (sodium_memcmp(pk_b.data(), pk_a_->data(), pk_b.size()) == 0)
    return InvalidArgument("both evaluations come from the same evaluator key");
  REFBUS_RETURN_IF_ERROR(oprf::DeserializeElement(eval_b.evaluated).status());
  if (!oprf::VerifyProof(oprf::Mode::kVoprf, pk_b, {&*from_a_, 1}, {&eval_b.evaluated, 1},
                         eval_b.proof))
    return Unauthenticated("second evaluator's proof does not verify against its listed key");
  REFBUS_ASSIGN_OR_RETURN(const oprf::Element n, oprf::Unblind(state_, eval_b.evaluated));
  return oprf::FinalizeHash(input_, n);
}

}  // namespace refbus::linkage
