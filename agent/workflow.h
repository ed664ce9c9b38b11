// Referral state machine: which party may move a referral from which state to which.
//
//   REQUESTED   -> ACCEPTED | DECLINED (reason)          by the receiving agency
//   ACCEPTED    -> IN_PROGRESS | ON_HOLD (reason)        by the receiving agency
//   IN_PROGRESS -> ON_HOLD (reason) | COMPLETED          by the receiving agency
//   ON_HOLD     -> IN_PROGRESS                           by the receiving agency
//   REQUESTED | ACCEPTED | IN_PROGRESS | ON_HOLD
//               -> CANCELLED (reason)                    by the referring agency
//               -> WITHDRAWN                             by either, when the consent the
//                                                        referral rests on is revoked
// DECLINED, COMPLETED, CANCELLED and WITHDRAWN are final. Both sides run the same table:
// the sender before it sends a change, the receiver before it applies one (PROTOCOL.md
// "Referral states").
//
// Thread safety: free functions, thread-safe.
#ifndef REFBUS_AGENT_WORKFLOW_H_
#define REFBUS_AGENT_WORKFLOW_H_

#include <string_view>

#include "core/status.h"
#include "schema/workflow.h"

namespace refbus::agent {

// Which side of a referral a party is on.
enum class ReferralSide { kReferrer, kReceiver };

bool IsFinal(schema::ReferralState state);

// Ok if `side` may move a referral from `from` to `to` (with `reason` where one is needed);
// otherwise kFailedPrecondition naming the states, the side, and what is allowed instead.
// consent_revoked: the grant has been revoked (the only way to WITHDRAWN).
[[nodiscard]] Status CheckTransition(schema::ReferralState from, schema::ReferralState to,
                                     ReferralSide side, std::string_view reason,
                                     bool consent_revoked);

}  // namespace refbus::agent

#endif  // REFBUS_AGENT_WORKFLOW_H_
