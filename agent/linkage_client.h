// The agency's side of linkage evaluation (PROTOCOL.md 13.3, 13.4): the pseudonym of an
// identifier from the two evaluators the directory lists, over a CURVE session with each
// (LinkageEvaluate, answered by LinkageEvaluated or a Nack).
//
// The identifier is blinded once (linkage::PseudonymRequest); evaluator A's answer is
// checked against the linkage key the directory lists for A before anything goes to B, and
// B's answer against B's listed key: an evaluator answering with another key (to tell one
// agency's requests apart, or by fault) is refused (Unauthenticated) and nothing comes out.
// The sessions authenticate the agency with its own transport key; the evaluators learn who
// asks from that, never from a field. Nothing here logs the identifier, an element or the
// pseudonym.
//
// Errors: ResourceExhausted when an evaluator refuses for the agency's daily quota;
// PermissionDenied when it evaluates nothing for this agency; Unavailable when it does not
// answer within the timeout; Unauthenticated for a proof that fails; NotFound, Revoked or
// PermissionDenied (no role) for an evaluator the directory does not list as one.
//
// Thread safety: a free function; each call opens and closes its own sockets.
#ifndef REFBUS_AGENT_LINKAGE_CLIENT_H_
#define REFBUS_AGENT_LINKAGE_CLIENT_H_

#include <optional>
#include <string>

#include "core/status.h"
#include "keys/identity.h"
#include "keys/tally_bundle.h"
#include "linkage/identifier.h"
#include "linkage/two_party.h"
#include "schema/types.h"

namespace refbus::agent {

struct LinkageEvaluatorAddress {
  std::string id;        // a broker with the role linkage-evaluator
  std::string endpoint;  // empty: the endpoint the directory lists for it
};

struct LinkageClientOptions {
  LinkageEvaluatorAddress first;
  LinkageEvaluatorAddress second;
  int timeout_ms = 5000;  // per evaluator
};

Result<linkage::Pseudonym> RequestPseudonym(const keys::Identity& me,
                                            const schema::Directory& directory,
                                            const LinkageClientOptions& options,
                                            const linkage::CanonicalIdentifier& identifier);

// Linkage tallies (PROTOCOL.md 13.7) at the agency's home broker.
struct TallyBroker {
  std::string id;        // the agency's home broker
  std::string endpoint;  // empty: the endpoint the directory lists for it
  int timeout_ms = 5000;
};

// Records signed_tally (this agency's, keys::SignLinkageTally) at the home broker, or with
// entry_index asks for a fresh proof of it against the broker's latest checkpoint (with
// the cosignatures it has gathered); returns the evidence, checked as check-bundle checks
// it. Errors: the broker's Nack (PermissionDenied, InvalidArgument, Unavailable),
// Unavailable without an answer, and any check that fails on the answer.
Result<keys::TallyEvidence> RecordLinkageTally(const keys::Identity& me,
                                               const schema::Directory& directory,
                                               const TallyBroker& broker,
                                               const std::string& signed_tally,
                                               std::optional<uint64_t> entry_index, UnixMillis now);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_LINKAGE_CLIENT_H_
