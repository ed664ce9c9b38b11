// A small pool of threads that runs one batch of independent tasks at a time, with the
// calling thread taking part. The broker's event loop uses it to check the signatures of a
// burst of envelopes read in one go on every core (Ed25519 verification is the largest cost
// of a submission on the loop), then handles the frames in the order they arrived.
//
// Thread safety: ForEach may be called from one thread at a time (the loop's). The tasks
// run concurrently and must only touch what their index owns plus shared read-only data.
#ifndef REFBUS_BROKER_VERIFY_POOL_H_
#define REFBUS_BROKER_VERIFY_POOL_H_

#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

#include "core/mutex.h"

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
  void ForEach(size_t n, const std::function<void(size_t)>& task) EXCLUDES(mu_);

  unsigned workers() const { return static_cast<unsigned>(threads_.size()); }

 private:
  void WorkerMain();
  // Takes and runs tasks of the current batch until none is left; returns how many it ran.
  size_t Drain() EXCLUDES(mu_);

  Mutex mu_;
  CondVar work_cv_{&mu_};  // workers wait here for a batch (or stop)
  CondVar done_cv_{&mu_};  // ForEach waits here for the batch to finish
  const std::function<void(size_t)>* task_ GUARDED_BY(mu_) = nullptr;
  size_t size_ GUARDED_BY(mu_) = 0;
  size_t next_ GUARDED_BY(mu_) = 0;
  size_t finished_ GUARDED_BY(mu_) = 0;
  unsigned long generation_ GUARDED_BY(mu_) = 0;
  bool stop_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_VERIFY_POOL_H_
