// RefusalLimiter: the first refusals per (peer, reason) and window are audited one by one,
// the rest are counted into one aggregate per window; a cut-off party's refusals only into
// the aggregate; the open windows stay bounded; nothing is lost at a final flush. Times are
// given, never read from a clock.
#include "broker/refusals.h"

#include <gtest/gtest.h>

namespace refbus::broker {
// Named after the file, not anonymous: its helpers share names with other test files
// compiled in the same unity batch (tests/CMakeLists.txt).
namespace refusals_test {

using schema::NackReason;

constexpr UnixMillis kT0 = 1'800'000'000'000;

RefusalLimits Limits(uint64_t per_window, size_t max_tracked = 4096) {
  RefusalLimits l;
  l.audited_per_window = per_window;
  l.window_ms = 60'000;
  l.max_tracked = max_tracked;
  return l;
}

uint64_t CountedIn(const std::vector<schema::AuditEntry>& entries) {
  uint64_t n = 0;
  for (const auto& e : entries) n += e.refusal_count;
  return n;
}

TEST(RefusalLimiterTest, FirstRefusalsAuditedTheRestAggregatedWhenTheWindowCloses) {
  RefusalLimiter l(Limits(3));
  size_t audited = 0;
  for (int i = 0; i < 100; ++i) {
    audited += l.Note("police", NackReason::kMalformed, kT0 + static_cast<UnixMillis>(i)) ? 1 : 0;
  }
  EXPECT_EQ(audited, 3u);
  std::vector<schema::AuditEntry> out;
  l.TakeDue(kT0 + 59'999, false, 7, out);
  EXPECT_TRUE(out.empty()) << "the window is still open";
  l.TakeDue(kT0 + 60'000, false, 7, out);
  ASSERT_EQ(out.size(), 1u);
  const schema::AuditEntry& e = out[0];
  EXPECT_EQ(e.event, schema::AuditEvent::kEnvelopeRejected);
  EXPECT_EQ(e.actor, "police");
  EXPECT_EQ(e.reason, NackReason::kMalformed);
  EXPECT_EQ(e.refusal_count, 97u);
  EXPECT_EQ(e.Refusals(), 97u);
  EXPECT_EQ(e.first_refused_ms, kT0 + 3);
  EXPECT_EQ(e.last_refused_ms, kT0 + 99);
  EXPECT_EQ(e.directory_serial, 7u);
  EXPECT_EQ(l.tracked(), 0u);
  // A new window: audited one by one again.
  EXPECT_TRUE(l.Note("police", NackReason::kMalformed, kT0 + 60'001));
}

TEST(RefusalLimiterTest, PeersAndReasonsHaveWindowsOfTheirOwn) {
  RefusalLimiter l(Limits(1));
  EXPECT_TRUE(l.Note("police", NackReason::kMalformed, kT0));
  EXPECT_FALSE(l.Note("police", NackReason::kMalformed, kT0));
  EXPECT_TRUE(l.Note("police", NackReason::kBadSignature, kT0));
  EXPECT_TRUE(l.Note("wee", NackReason::kMalformed, kT0));
  EXPECT_EQ(l.tracked(), 3u);
  std::vector<schema::AuditEntry> out;
  l.TakeDue(kT0, true, 1, out);
  ASSERT_EQ(out.size(), 1u) << "only the window with counted refusals has an aggregate";
  EXPECT_EQ(out[0].actor, "police");
  EXPECT_EQ(out[0].refusal_count, 1u);
}

TEST(RefusalLimiterTest, ARefusalInAnExpiredWindowClosesItAndOpensANewOne) {
  RefusalLimiter l(Limits(1));
  EXPECT_TRUE(l.Note("police", NackReason::kMalformed, kT0));
  EXPECT_FALSE(l.Note("police", NackReason::kMalformed, kT0 + 1));
  EXPECT_TRUE(l.Note("police", NackReason::kMalformed, kT0 + 61'000));
  std::vector<schema::AuditEntry> out;
  l.TakeDue(kT0 + 61'000, false, 1, out);
  ASSERT_EQ(out.size(), 1u) << "the first window's aggregate waits for TakeDue";
  EXPECT_EQ(out[0].refusal_count, 1u);
  EXPECT_EQ(l.tracked(), 1u);
}

TEST(RefusalLimiterTest, ACutOffPartysRefusalsAreOnlyCounted) {
  RefusalLimiter l(Limits(10));
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(l.Note("police", NackReason::kUnknownSenderKey, kT0, /*may_audit=*/false));
  }
  std::vector<schema::AuditEntry> out;
  l.TakeDue(kT0, true, 2, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].refusal_count, 5u);
  EXPECT_EQ(out[0].reason, NackReason::kUnknownSenderKey);
}

TEST(RefusalLimiterTest, OpenWindowsAreCappedAndAnEvictedWindowKeepsItsCount) {
  RefusalLimiter l(Limits(0, 4));
  uint64_t noted = 0;
  for (int p = 0; p < 50; ++p) {
    for (int i = 0; i < 3; ++i) {
      EXPECT_FALSE(l.Note("peer-" + std::to_string(p), NackReason::kMalformed,
                          kT0 + static_cast<UnixMillis>(p)));
      ++noted;
    }
    EXPECT_LE(l.tracked(), 4u);
  }
  std::vector<schema::AuditEntry> out;
  l.TakeDue(kT0 + 100, true, 1, out);
  EXPECT_EQ(out.size(), 50u);
  EXPECT_EQ(CountedIn(out), noted) << "evicting a window must not lose its count";
  EXPECT_EQ(l.tracked(), 0u);
}

TEST(RefusalLimiterTest, AClockThatGoesBackKeepsTheWindowOpen) {
  RefusalLimiter l(Limits(1));
  EXPECT_TRUE(l.Note("police", NackReason::kMalformed, kT0));
  EXPECT_FALSE(l.Note("police", NackReason::kMalformed, kT0 - 5'000));
  std::vector<schema::AuditEntry> out;
  l.TakeDue(kT0 - 10'000, false, 1, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(l.tracked(), 1u);
}

TEST(RefusalLimiterTest, RefusalsDecidedLaterShareAnAllowanceAndAreCountedUnderTheirReason) {
  // The commit's refusals: whether one is audited is decided when the envelope is admitted.
  constexpr NackReason kBucket = NackReason::kUnspecified;
  RefusalLimiter l(Limits(2));
  EXPECT_TRUE(l.MayAudit("police", kBucket, kT0));
  EXPECT_EQ(l.tracked(), 0u) << "asking opens no window";
  l.NoteAudited("police", kBucket, kT0);
  EXPECT_TRUE(l.MayAudit("police", kBucket, kT0));
  l.NoteAudited("police", kBucket, kT0);
  EXPECT_FALSE(l.MayAudit("police", kBucket, kT0));
  // Several let through before the first came back: all counted as audited, no aggregate.
  l.NoteAudited("police", kBucket, kT0);
  EXPECT_FALSE(l.Note("police", NackReason::kQuotaExceeded, kT0 + 5, /*may_audit=*/false));
  EXPECT_FALSE(l.Note("police", NackReason::kConsentRevoked, kT0 + 6, /*may_audit=*/false));
  EXPECT_TRUE(l.MayAudit("police", kBucket, kT0 + 60'000)) << "a new window";
  std::vector<schema::AuditEntry> out;
  l.TakeDue(kT0 + 60'010, false, 1, out);
  ASSERT_EQ(out.size(), 2u);
  for (const auto& e : out) {
    EXPECT_TRUE(e.reason == NackReason::kQuotaExceeded || e.reason == NackReason::kConsentRevoked)
        << schema::Name(e.reason);
    EXPECT_EQ(e.refusal_count, 1u);
  }
  EXPECT_NE(out[0].reason, out[1].reason);
}

}  // namespace refusals_test
}  // namespace refbus::broker
