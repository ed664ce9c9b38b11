// A small pool of threads that runs one batch of independent tasks at a time, with the
// calling thread taking part. The broker's event loop uses it to check the signatures of a
// burst of envelopes read in one go on every core (Ed25519 verification is the largest cost
// of a submission on the loop), then handles the frames in the order they arrived.
//
// Thread safety: ForEach may be called from one thread at a time (the loop's). The tasks
// run concurrently and must only touch what their index owns plus shared read-only data.
#ifndef REFBUS_BROKER_VERIFY_POOL_H_
#define REFBUS_BROKER_VERIFY_POOL_H_

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace refbus::broker {

class VerifyPool {
 public:
  // workers: threads besides the caller (0: ForEach runs everything on the caller).
  // The threads are started here: create the pool while the signals the process handles
  // on its main thread are blocked, so the workers inherit the block.
  explicit VerifyPool(unsigned workers);
  ~VerifyPool();
  VerifyPool(const VerifyPool&) = delete;
  VerifyPool& operator=(const VerifyPool&) = delete;

  // Runs task(i) for every i in [0, n) and returns when all have returned. Tasks must not
  // throw.
  void ForEach(size_t n, const std::function<void(size_t)>& task);

  unsigned workers() const { return static_cast<unsigned>(threads_.size()); }

 private:
  void WorkerMain();
  // Takes and runs tasks of the current batch until none is left; returns how many it ran.
  size_t Drain();

  std::mutex mu_;
  std::condition_variable work_cv_;                    // workers wait here for a batch (or stop)
  std::condition_variable done_cv_;                    // ForEach waits here for the batch to finish
  const std::function<void(size_t)>* task_ = nullptr;  // guarded by mu_
  size_t size_ = 0;                                    // guarded by mu_
  size_t next_ = 0;                                    // guarded by mu_
  size_t finished_ = 0;                                // guarded by mu_
  unsigned long generation_ = 0;                       // guarded by mu_
  bool stop_ = false;                                  // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_VERIFY_POOL_H_
