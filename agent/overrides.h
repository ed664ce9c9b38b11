// Emergency overrides by two people (issue 18 item 2).
//
// A logged-in operator records an emergency-override consent (POST /v1/consents with
// emergency_override, or the emergency basis): the grant is built and signed by the agency
// (Engine::PrepareConsent) and countersigned by the requester's own key ("NAME
// (requested)"), and waits here, recorded nowhere yet. A different operator with the
// supervisor role approves it with their own session (POST /v1/overrides/{id}/approve): the
// grant gets their countersignature ("NAME (approved)") and is recorded and registered
// (Engine::CommitConsent). The broker's audit entry for the grant names both
// countersigners, and both signatures travel with the grant, so refbus-audit overrides
// shows both names. The requester approving their own request, an approver without the
// supervisor role, and a second approval are refused.
//
// Pending requests live in the daemon's memory for kOverrideWaitMs (a restart drops them:
// the caseworker asks again); nothing about them is written before approval.
//
// Thread safety: none; the daemon's loop thread (the CommandQueue's) calls every method.
#ifndef REFBUS_AGENT_OVERRIDES_H_
#define REFBUS_AGENT_OVERRIDES_H_

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/engine.h"
#include "agent/operators.h"
#include "core/clock.h"
#include "core/status.h"
#include "schema/types.h"

namespace refbus::agent {

inline constexpr UnixMillis kOverrideWaitMs = 60 * 60 * 1000;

class OverrideDesk {
 public:
  // The requester's request, with its grant from Engine::PrepareConsent (an emergency
  // override): -> {override_id, state: "awaiting-supervisor", case_ref, requested_by,
  // expires_at_ms}.
  Result<Json> Request(const OperatorKey& requester, const Json& body,
                       schema::SignedConsentGrant grant, UnixMillis now);
  // GET /v1/overrides: [{override_id, case_ref, basis, requested_by, requested_at_ms,
  // expires_at_ms}]
  Json List(UnixMillis now);
  // A supervisor's approval: -> the recorded consent (as POST /v1/consents answers) with
  // requested_by and approved_by.
  Result<Json> Approve(Engine& engine, const OperatorKey& approver, const std::string& id,
                       UnixMillis now);

 private:
  struct Pending {
    Json body;
    schema::SignedConsentGrant grant;
    std::string requester;
    Bytes requester_key;
    UnixMillis requested_at_ms = 0;
  };
  void DropExpired(UnixMillis now);

  std::map<std::string, Pending> pending_;
};

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_OVERRIDES_H_
