#include "broker/verify_pool.h"

#include <pthread.h>

namespace refbus::broker {

VerifyPool::VerifyPool(unsigned workers) {
  threads_.reserve(workers);
  for (unsigned i = 0; i < workers; ++i) threads_.emplace_back([this] { WorkerMain(); });
}

VerifyPool::~VerifyPool() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  work_cv_.SignalAll();
  for (auto& t : threads_) t.join();
}

void VerifyPool::ForEach(size_t n, const std::function<void(size_t)>& task) {
  if (n == 0) return;
  if (threads_.empty() || n == 1) {
    for (size_t i = 0; i < n; ++i) task(i);
    return;
  }
  {
    MutexLock lock(&mu_);
    task_ = &task;
    size_ = n;
    next_ = 0;
    finished_ = 0;
    ++generation_;
  }
  work_cv_.SignalAll();
  Drain();
  MutexLock lock(&mu_);
  while (finished_ != size_) done_cv_.Wait();
  // Workers that wake up late find no batch and go back to waiting.
  task_ = nullptr;
  size_ = 0;
}

size_t VerifyPool::Drain() {
  size_t ran = 0;
  MutexLock lock(&mu_);
  while (task_ != nullptr && next_ < size_) {
    const size_t i = next_++;
    const std::function<void(size_t)>* task = task_;
    lock.Unlock();
    (*task)(i);
    ++ran;
    lock.Lock();
    if (++finished_ == size_) done_cv_.Signal();
  }
  return ran;
}

void VerifyPool::WorkerMain() {
  pthread_setname_np(pthread_self(), "rb-verify");  // what top -H and /proc show
  unsigned long seen = 0;
  while (true) {
    {
      MutexLock lock(&mu_);
      while (!stop_ && (generation_ == seen || task_ == nullptr)) work_cv_.Wait();
      if (stop_) return;
      seen = generation_;
    }
    Drain();
  }
}

}  // namespace refbus::broker
