#include "broker/verify_pool.h"

namespace refbus::broker {

VerifyPool::VerifyPool(unsigned workers) {
  threads_.reserve(workers);
  for (unsigned i = 0; i < workers; ++i) threads_.emplace_back([this] { WorkerMain(); });
}

VerifyPool::~VerifyPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void VerifyPool::ForEach(size_t n, const std::function<void(size_t)>& task) {
  if (n == 0) return;
  if (threads_.empty() || n == 1) {
    for (size_t i = 0; i < n; ++i) task(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    task_ = &task;
    size_ = n;
    next_ = 0;
    finished_ = 0;
    ++generation_;
  }
  work_cv_.notify_all();
  Drain();
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return finished_ == size_; });
  // Workers that wake up late find no batch and go back to waiting.
  task_ = nullptr;
  size_ = 0;
}

size_t VerifyPool::Drain() {
  size_t ran = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (task_ != nullptr && next_ < size_) {
    const size_t i = next_++;
    const std::function<void(size_t)>* task = task_;
    lock.unlock();
    (*task)(i);
    ++ran;
    lock.lock();
    if (++finished_ == size_) done_cv_.notify_one();
  }
  return ran;
}

void VerifyPool::WorkerMain() {
  unsigned long seen = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || (generation_ != seen && task_ != nullptr); });
      if (stop_) return;
      seen = generation_;
    }
    Drain();
  }
}

}  // namespace refbus::broker
