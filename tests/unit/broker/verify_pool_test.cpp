// VerifyPool: every index of a batch runs exactly once, on the caller and the workers, and
// the pool serves batch after batch (the broker's loop hands it one burst at a time).
#include "broker/verify_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace refbus::broker {
namespace {

TEST(VerifyPoolTest, EveryIndexRunsOnceInEveryBatch) {
  for (unsigned workers : {0u, 1u, 3u}) {
    VerifyPool pool(workers);
    EXPECT_EQ(pool.workers(), workers);
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, size_t{64}, size_t{1000}}) {
      for (int round = 0; round < 20; ++round) {
        std::vector<std::atomic<int>> runs(n);
        pool.ForEach(n, [&](size_t i) { runs[i].fetch_add(1, std::memory_order_relaxed); });
        for (size_t i = 0; i < n; ++i) {
          ASSERT_EQ(runs[i].load(), 1)
              << "index " << i << " of " << n << ", " << workers << " workers, round " << round;
        }
      }
    }
  }
}

TEST(VerifyPoolTest, WorkersTakePartWhenTasksTakeTime) {
  // With tasks that take a while, some run on a thread other than the caller's: the pool
  // really spreads the work (the broker's point in having it).
  VerifyPool pool(2);
  std::set<std::thread::id> seen;
  std::mutex mu;
  for (int round = 0; round < 50 && seen.size() < 2; ++round) {
    pool.ForEach(16, [&](size_t) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      std::lock_guard<std::mutex> lock(mu);
      seen.insert(std::this_thread::get_id());
    });
  }
  EXPECT_GE(seen.size(), 2u);
}

TEST(VerifyPoolTest, ResultsWrittenByTasksAreSeenByTheCaller) {
  VerifyPool pool(3);
  std::vector<uint64_t> out(4096, 0);
  pool.ForEach(out.size(), [&](size_t i) { out[i] = i * i + 1; });
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], i * i + 1);
}

}  // namespace
}  // namespace refbus::broker
