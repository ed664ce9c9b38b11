// The pseudonym of an identifier under two evaluators' keys (PROTOCOL.md section 13.3).
//
// Each evaluator i holds a VOPRF key k_i with public key pk_i = k_i * G, listed in the
// directory. The pseudonym of identifier x is the RFC 9497 VOPRF output under the product
// key k = k_A * k_B:
//
//   pseudonym(x) = SHA-512(I2OSP(len(in), 2) || in || I2OSP(32, 2) || k_A k_B H(in) || "Finalize")
//   with in = CanonicalIdentifier::OprfInput() and H the RFC's HashToGroup (mode 0x01).
//
// The agency computes it in one blinding and two sequential evaluations:
//   1. blinded = r * H(in)                                    (agency; r random)
//   2. Z_A = k_A * blinded, with a DLEQ proof against pk_A     (evaluator A)
//   3. the agency verifies A's proof, then sends Z_A to B
//   4. Z_B = k_B * Z_A, with a DLEQ proof against pk_B         (evaluator B)
//   5. the agency verifies B's proof, unblinds r^-1 * Z_B = k_A k_B H(in), and hashes.
// Each evaluator sees one uniformly random group element (blinded by r); neither key alone
// determines the pseudonym; each proof binds the evaluator to its listed key, so an
// evaluator cannot answer one agency under a different key to single it out.
//
// Thread safety: a PseudonymRequest belongs to one thread.
#ifndef REFBUS_LINKAGE_TWO_PARTY_H_
#define REFBUS_LINKAGE_TWO_PARTY_H_

#include <optional>

#include "core/status.h"
#include "linkage/identifier.h"
#include "linkage/oprf.h"
#include "schema/types.h"

namespace refbus::linkage {

using Pseudonym = oprf::Output;

// The VOPRF public key the directory lists for evaluator `id`: an active party with the
// role linkage-evaluator and a valid linkage key in its active generation. NotFound,
// Revoked, PermissionDenied (no role) or Malformed otherwise. Agencies check every proof
// against this key, never against one an evaluator sends.
Result<oprf::Element> ListedEvaluatorKey(const schema::Directory& directory, std::string_view id);

// Evaluator side: one evaluation of a blinded element in VOPRF mode, with its proof.
// Malformed for an element that is not a valid non-identity ristretto255 encoding.
Result<oprf::Evaluation> EvaluateForAgency(const oprf::ServerKey& key, const oprf::Element& blinded,
                                           const oprf::ScalarSource& scalars);

// Agency side. Usage:
//   auto req = PseudonymRequest::Start(id, oprf::RandomScalars());
//   send req->first_request() to A;            get eval_a
//   auto to_b = req->AcceptFirst(pk_a, eval_a); send *to_b to B; get eval_b
//   auto pseudonym = req->Finish(pk_b, eval_b);
class PseudonymRequest {
 public:
  static Result<PseudonymRequest> Start(const CanonicalIdentifier& id,
                                        const oprf::ScalarSource& scalars);

  // The element for evaluator A (blinded; reveals nothing about the identifier).
  const oprf::Element& first_request() const { return state_.blinded_element(); }

  // Verifies A's proof against pk_a; returns the element for evaluator B.
  // Unauthenticated if the proof fails; FailedPrecondition if called twice.
  Result<oprf::Element> AcceptFirst(const oprf::Element& pk_a, const oprf::Evaluation& eval_a);

  // Verifies B's proof against pk_b (over A's output as B's input) and finalizes.
  // Unauthenticated if the proof fails; FailedPrecondition before AcceptFirst. Refuses
  // pk_b == pk_a (one evaluator answering twice is not two evaluators).
  Result<Pseudonym> Finish(const oprf::Element& pk_b, const oprf::Evaluation& eval_b);

  PseudonymRequest(PseudonymRequest&&) noexcept = default;
  PseudonymRequest& operator=(PseudonymRequest&&) noexcept = default;
  ~PseudonymRequest();  // wipes the copy of the identifier

 private:
  PseudonymRequest(Bytes input, oprf::BlindState state)
      : input_(std::move(input)), state_(std::move(state)) {}
  Bytes input_;
  oprf::BlindState state_;
  std::optional<oprf::Element> pk_a_;
  std::optional<oprf::Element> from_a_;
};

}  // namespace refbus::linkage

#endif  // REFBUS_LINKAGE_TWO_PARTY_H_
