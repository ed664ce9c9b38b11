// Engine: retention. A grant carries the time until which data shared under it may be
// kept (retention_until_ms, from the recorder's retention_days); once it has passed, the
// agency purges the grant's data as a revocation's purge does: its messages tombstoned,
// its data key destroyed (so the text sealed under it is gone everywhere), a signed purge
// confirmation to the broker's audit log and to the recorder.
#include <spdlog/spdlog.h>

#include "agent/engine_impl.h"

namespace refbus::agent {

Status Engine::Impl::EnforceRetention() {
  const UnixMillis now = Now();
  REFBUS_RETURN_IF_ERROR(ExpireLinkage());
  std::vector<std::pair<std::string, GrantRecord>> due;
  std::vector<std::pair<std::string, MessageRecord>> msgs;
  {
    // One LMDB transaction per thread at a time: this read ends before any write.
    REFBUS_ASSIGN_OR_RETURN(auto rtxn, case_store->Begin(false));
    REFBUS_ASSIGN_OR_RETURN(auto grants, LoadAll<GrantRecord>(rtxn));
    for (auto& [key, g] : grants) {
      if (g.purged_at_ms) continue;
      REFBUS_ASSIGN_OR_RETURN(KnownGrant k, KnownFrom(g));
      UnixMillis until = k.grant.grant.retention_until_ms;
      if (until != 0 && until <= now) due.emplace_back(key, std::move(g));
    }
    if (due.empty()) return Status::Ok();
    REFBUS_ASSIGN_OR_RETURN(msgs, LoadAll<MessageRecord>(rtxn));
  }
  for (const auto& [key, g] : due) {
    spdlog::info("agent {}: the retention of grant {} has passed; purging its data", me(), key);
    REFBUS_RETURN_IF_ERROR(PurgeGrant(key, g, msgs, "retention passed"));
  }
  return Status::Ok();
}

}  // namespace refbus::agent
