#include "broker/job_queue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace refbus::broker {

JobQueue::~JobQueue() {
  if (done_fd_ >= 0) ::close(done_fd_);
}

Status JobQueue::Open() {
  done_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (done_fd_ < 0) return IoError("eventfd: " + std::string(std::strerror(errno)));
  return Status::Ok();
}

void JobQueue::Push(std::unique_ptr<Job> job) {
  {
    MutexLock lock(&mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.Signal();
}

std::unique_ptr<Job> JobQueue::Pop() {
  MutexLock lock(&mu_);
  while (!exit_ && jobs_.empty()) cv_.Wait();
  if (jobs_.empty()) return nullptr;  // asked to exit, with nothing left to write
  std::unique_ptr<Job> job = std::move(jobs_.front());
  jobs_.pop_front();
  return job;
}

void JobQueue::PushDone(std::unique_ptr<Job> job) {
  {
    MutexLock lock(&mu_);
    done_.push_back(std::move(job));
    done_ready_.store(true, std::memory_order_release);
    // Under the lock: whoever takes the job afterwards also clears this wake-up, so the
    // eventfd is never left readable with nothing to take (the loop would spin).
    uint64_t one = 1;
    ssize_t n = ::write(done_fd_, &one, sizeof(one));  // fails only if the counter overflows
    (void)n;
  }
  done_cv_.SignalAll();
}

std::unique_ptr<Job> JobQueue::TakeDone() {
  std::unique_ptr<Job> job;
  {
    MutexLock lock(&mu_);
    if (!done_.empty()) {
      job = std::move(done_.front());
      done_.pop_front();
    }
    done_ready_.store(!done_.empty(), std::memory_order_release);
  }
  // Clears the wake-up (EAGAIN when there was nothing to take).
  uint64_t count = 0;
  ssize_t n = ::read(done_fd_, &count, sizeof(count));
  (void)n;
  return job;
}

void JobQueue::WaitDone() {
  MutexLock lock(&mu_);
  while (done_.empty()) done_cv_.Wait();
}

void JobQueue::Close() {
  {
    MutexLock lock(&mu_);
    exit_ = true;
  }
  cv_.SignalAll();
}

}  // namespace refbus::broker
