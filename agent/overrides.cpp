#include "agent/overrides.h"

#include <spdlog/spdlog.h>

#include "keys/crypto.h"
#include "keys/secret.h"

namespace refbus::agent {

void OverrideDesk::DropExpired(UnixMillis now) {
  std::erase_if(pending_, [now](const auto& e) {
    if (now - e.second.requested_at_ms <= kOverrideWaitMs) return false;
    spdlog::warn("overrides: override {} requested by {} expired unapproved", e.first,
                 e.second.requester);
    return true;
  });
}

Result<Json> OverrideDesk::Request(const OperatorKey& requester, const Json& body,
                                   schema::SignedConsentGrant grant, UnixMillis now) {
  DropExpired(now);
  if (requester.role() == OperatorRole::kReadOnly) {
    return PermissionDenied("operator " + requester.name() + " is read-only");
  }
  // The requester signs the very grant bytes the supervisor will approve.
  grant.countersignatures.push_back(
      {requester.name() + " (requested)", requester.public_key(),
       requester.Sign(keys::kLabelConsentCountersign, grant.grant_bytes)});
  const std::string id = HexEncode(keys::RandomBytes(16));
  const std::string case_ref = grant.grant.case_ref;
  pending_[id] = Pending{body, std::move(grant), requester.name(), requester.public_key(), now};
  spdlog::warn(
      "overrides: emergency override {} for case {} requested by {}; a supervisor "
      "must approve it",
      id, case_ref, requester.name());
  return Json{{"override_id", id},
              {"state", "awaiting-supervisor"},
              {"case_ref", case_ref},
              {"requested_by", requester.name()},
              {"expires_at_ms", now + kOverrideWaitMs}};
}

Json OverrideDesk::List(UnixMillis now) {
  DropExpired(now);
  Json out = Json::array();
  for (const auto& [id, p] : pending_) {
    out.push_back({{"override_id", id},
                   {"case_ref", p.grant.grant.case_ref},
                   {"basis", std::string(schema::Name(p.grant.grant.basis))},
                   {"requested_by", p.requester},
                   {"requested_at_ms", p.requested_at_ms},
                   {"expires_at_ms", p.requested_at_ms + kOverrideWaitMs}});
  }
  return out;
}

Result<Json> OverrideDesk::Approve(Engine& engine, const OperatorKey& approver,
                                   const std::string& id, UnixMillis now) {
  DropExpired(now);
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    return NotFound("no emergency override " + id.substr(0, 64) +
                    " awaiting approval (approved, expired, or the agent restarted)");
  }
  Pending& p = it->second;
  if (approver.name() == p.requester || approver.public_key() == p.requester_key) {
    spdlog::warn("overrides: {} tried to approve their own override {}", approver.name(), id);
    return PermissionDenied(
        "the operator who asked for an override cannot approve it: a "
        "different supervisor must");
  }
  if (approver.role() != OperatorRole::kSupervisor) {
    spdlog::warn("overrides: {} ({}) tried to approve override {}", approver.name(),
                 RoleName(approver.role()), id);
    return PermissionDenied(
        "only an operator with the supervisor role can approve an "
        "emergency override (" +
        approver.name() + " is " + std::string(RoleName(approver.role())) + ")");
  }
  schema::SignedConsentGrant grant = p.grant;
  grant.countersignatures.push_back(
      {approver.name() + " (approved)", approver.public_key(),
       approver.Sign(keys::kLabelConsentCountersign, grant.grant_bytes)});
  REFBUS_ASSIGN_OR_RETURN(Json out, engine.CommitConsent(p.body, grant));
  out["requested_by"] = p.requester;
  out["approved_by"] = approver.name();
  spdlog::warn("overrides: emergency override {} (grant {}) requested by {}, approved by {}", id,
               out.value("grant_id", ""), p.requester, approver.name());
  pending_.erase(it);
  return out;
}

}  // namespace refbus::agent
