// The referral state machine: every (from, to, side) combination against the table in
// agent/workflow.h, written out here independently.
#include "agent/workflow.h"

#include <gtest/gtest.h>

#include <set>
#include <tuple>

namespace refbus::agent {
namespace {

using schema::ReferralState;
using S = ReferralState;
using R = ReferralSide;

// (from, to, side) moves the table allows, besides WITHDRAWN on revocation.
const std::set<std::tuple<S, S, R>>& Allowed() {
  static const std::set<std::tuple<S, S, R>> kAllowed = {
      {S::kRequested, S::kAccepted, R::kReceiver},  {S::kRequested, S::kDeclined, R::kReceiver},
      {S::kAccepted, S::kInProgress, R::kReceiver}, {S::kAccepted, S::kOnHold, R::kReceiver},
      {S::kInProgress, S::kOnHold, R::kReceiver},   {S::kInProgress, S::kCompleted, R::kReceiver},
      {S::kOnHold, S::kInProgress, R::kReceiver},   {S::kRequested, S::kCancelled, R::kReferrer},
      {S::kAccepted, S::kCancelled, R::kReferrer},  {S::kInProgress, S::kCancelled, R::kReferrer},
      {S::kOnHold, S::kCancelled, R::kReferrer},
  };
  return kAllowed;
}

std::vector<S> AllStates() {
  return {S::kRequested, S::kAccepted,  S::kDeclined,  S::kInProgress,
          S::kOnHold,    S::kCompleted, S::kCancelled, S::kWithdrawn};
}

TEST(ReferralStateMachineTest, EveryMoveMatchesTheTable) {
  int allowed = 0;
  for (S from : AllStates()) {
    for (S to : AllStates()) {
      if (to == S::kWithdrawn) continue;
      for (R side : {R::kReferrer, R::kReceiver}) {
        SCOPED_TRACE(std::string(schema::Name(from)) + "->" + std::string(schema::Name(to)) +
                     (side == R::kReceiver ? " receiver" : " referrer"));
        bool want = Allowed().count({from, to, side}) > 0;
        Status s = CheckTransition(from, to, side, "a reason", false);
        EXPECT_EQ(s.ok(), want) << s.ToString();
        if (!want) {
          EXPECT_EQ(s.code(), Status::Code::kFailedPrecondition);
        }
        allowed += s.ok() ? 1 : 0;
      }
    }
  }
  EXPECT_EQ(allowed, static_cast<int>(Allowed().size()));
}

TEST(ReferralStateMachineTest, DeclineHoldAndCancelNeedAReason) {
  EXPECT_FALSE(CheckTransition(S::kRequested, S::kDeclined, R::kReceiver, "", false).ok());
  EXPECT_FALSE(CheckTransition(S::kAccepted, S::kOnHold, R::kReceiver, "", false).ok());
  EXPECT_FALSE(CheckTransition(S::kAccepted, S::kCancelled, R::kReferrer, "", false).ok());
  Status s = CheckTransition(S::kRequested, S::kDeclined, R::kReceiver, "", false);
  EXPECT_NE(s.message().find("reason"), std::string::npos) << s.message();
  EXPECT_TRUE(CheckTransition(S::kRequested, S::kAccepted, R::kReceiver, "", false).ok());
  EXPECT_TRUE(CheckTransition(S::kInProgress, S::kCompleted, R::kReceiver, "", false).ok());
}

TEST(ReferralStateMachineTest, WithdrawnOnlyOnRevocationAndFromOpenStates) {
  for (S from : AllStates()) {
    for (R side : {R::kReferrer, R::kReceiver}) {
      EXPECT_FALSE(CheckTransition(from, S::kWithdrawn, side, "", false).ok());
      EXPECT_EQ(CheckTransition(from, S::kWithdrawn, side, "", true).ok(), !IsFinal(from))
          << schema::Name(from);
    }
  }
}

TEST(ReferralStateMachineTest, RefusalSaysWhatIsAllowedInstead) {
  Status s = CheckTransition(S::kRequested, S::kCompleted, R::kReceiver, "", false);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("accepted"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("declined"), std::string::npos) << s.message();
  Status referrer = CheckTransition(S::kRequested, S::kAccepted, R::kReferrer, "", false);
  ASSERT_FALSE(referrer.ok());
  EXPECT_NE(referrer.message().find("referring agency"), std::string::npos);
  Status final = CheckTransition(S::kCompleted, S::kInProgress, R::kReceiver, "", false);
  ASSERT_FALSE(final.ok());
  EXPECT_NE(final.message().find("final"), std::string::npos);
}

}  // namespace
}  // namespace refbus::agent
