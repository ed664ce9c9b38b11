// Server: envelopes that name no consent grant (PROTOCOL.md 9.1 and 10.3). Two kinds may:
// OPAQUE transport tests, where the operator's policy allows them, and a deletion center's
// watch list (DELETION_WATCH_LIST), which carries content hashes and no case data, and
// only between agencies the directory gives the deletion role (keys::CheckGrantless). The
// caller refuses with the answer; Reject records the refusal in the audit log.
#include "broker/server.h"
#include "keys/scope.h"

namespace refbus::broker {

std::optional<std::pair<schema::NackReason, std::string>> Server::GrantlessRefusal(
    const schema::EnvelopeHeader& h) const {
  if (h.kind == schema::MessageKind::kOpaque) {
    if (config_.allow_unscoped_opaque) return std::nullopt;
    return std::make_pair(schema::NackReason::kConsentOutOfScope,
                          std::string("this broker accepts no envelope without a consent grant "
                                      "(policy.allow_unscoped_opaque is off)"));
  }
  auto refusal = keys::CheckGrantless(keys::ScopeSubjectOf(h, directory_.directory));
  if (!refusal) return std::nullopt;
  return std::make_pair(refusal->reason, std::move(refusal->detail));
}

}  // namespace refbus::broker
