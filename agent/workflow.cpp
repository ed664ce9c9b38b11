#include "agent/workflow.h"

#include <string>

namespace refbus::agent {
namespace {

using schema::ReferralState;
using S = ReferralState;

bool NeedsReason(ReferralState to) {
  return to == S::kDeclined || to == S::kOnHold || to == S::kCancelled;
}

// The receiver's moves.
bool ReceiverMay(ReferralState from, ReferralState to) {
  switch (from) {
    case S::kRequested:
      return to == S::kAccepted || to == S::kDeclined;
    case S::kAccepted:
      return to == S::kInProgress || to == S::kOnHold;
    case S::kInProgress:
      return to == S::kOnHold || to == S::kCompleted;
    case S::kOnHold:
      return to == S::kInProgress;
    default:
      return false;
  }
}

std::string Allowed(ReferralState from, ReferralSide side) {
  std::string out;
  for (int i = 1; i <= static_cast<int>(S::kWithdrawn); ++i) {
    auto to = static_cast<ReferralState>(i);
    bool ok = side == ReferralSide::kReceiver ? ReceiverMay(from, to)
                                              : (!IsFinal(from) && to == S::kCancelled);
    if (ok) out += (out.empty() ? "" : ", ") + std::string(schema::Name(to));
  }
  return out.empty() ? "nothing" : out;
}

}  // namespace

bool IsFinal(ReferralState s) {
  return s == S::kDeclined || s == S::kCompleted || s == S::kCancelled || s == S::kWithdrawn;
}

Status CheckTransition(ReferralState from, ReferralState to, ReferralSide side,
                       std::string_view reason, bool consent_revoked) {
  const std::string who =
      side == ReferralSide::kReceiver ? "the receiving agency" : "the referring agency";
  const std::string move = std::string(schema::Name(from)) + " -> " + std::string(schema::Name(to));
  if (IsFinal(from)) {
    return FailedPrecondition("referral is " + std::string(schema::Name(from)) +
                              ", which is final; " + move + " is not possible");
  }
  if (to == S::kWithdrawn) {
    if (!consent_revoked) {
      return FailedPrecondition(move +
                                ": a referral is withdrawn only when its consent is "
                                "revoked (revoke the consent instead)");
    }
    return Status::Ok();
  }
  bool ok = side == ReferralSide::kReceiver ? ReceiverMay(from, to) : to == S::kCancelled;
  if (!ok) {
    return FailedPrecondition(move + " may not be made by " + who + "; from " +
                              std::string(schema::Name(from)) + " it may move to " +
                              Allowed(from, side));
  }
  if (NeedsReason(to) && reason.empty()) {
    return FailedPrecondition(move + " needs a reason (--reason)");
  }
  return Status::Ok();
}

}  // namespace refbus::agent
