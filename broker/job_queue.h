// The hand-over of Jobs between the broker's loop and its writer thread (broker/server.h):
// the loop pushes a Job, the writer pops it, commits it and pushes it back as done; an
// eventfd, written after each done Job, wakes the loop's poll.
//
// Thread safety: every method may run on any thread; the mutex guards both queues. The
// loop calls Push, TakeDone, WaitDone, done_ready and fd; the writer calls Pop and
// PushDone; Close (at destruction of the server) makes Pop return null once jobs run out.
#ifndef REFBUS_BROKER_JOB_QUEUE_H_
#define REFBUS_BROKER_JOB_QUEUE_H_

#include <atomic>
#include <deque>
#include <memory>

#include "broker/turn.h"
#include "core/mutex.h"
#include "core/status.h"

namespace refbus::broker {

class JobQueue {
 public:
  JobQueue() = default;
  ~JobQueue();  // closes the eventfd
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Makes the eventfd. REQUIRES: called once, before any other method.
  Status Open();
  // Loop: hands job to the writer.
  void Push(std::unique_ptr<Job> job) EXCLUDES(mu_);
  // Writer: the next job, waiting for one; null once Close() ran and none is left.
  std::unique_ptr<Job> Pop() EXCLUDES(mu_);
  // Writer: hands a committed job back and wakes the loop.
  void PushDone(std::unique_ptr<Job> job) EXCLUDES(mu_);
  // Loop: the writer's finished job, if there is one (clears the eventfd).
  std::unique_ptr<Job> TakeDone() EXCLUDES(mu_);
  // Loop: blocks until a finished job waits (for Create's first commit).
  void WaitDone() EXCLUDES(mu_);
  // Asks the writer to exit once no job is left.
  void Close() EXCLUDES(mu_);
  // A hint for the loop's read loop: a finished job waits.
  bool done_ready() const { return done_ready_.load(std::memory_order_acquire); }
  // The eventfd the loop polls (readable while a finished job waits).
  int fd() const { return done_fd_; }

 private:
  Mutex mu_;
  CondVar cv_{&mu_};                                       // signals jobs_ and exit_ to the writer
  std::deque<std::unique_ptr<Job>> jobs_ GUARDED_BY(mu_);  // loop -> writer
  std::deque<std::unique_ptr<Job>> done_ GUARDED_BY(mu_);  // writer -> loop
  bool exit_ GUARDED_BY(mu_) = false;
  CondVar done_cv_{&mu_};                // signals done_ (Create's blocking wait)
  std::atomic<bool> done_ready_{false};  // a hint for the loop's read loop: done_ filled
  int done_fd_ = -1;                     // eventfd, written by the writer after done_
};

}  // namespace refbus::broker

#endif  // REFBUS_BROKER_JOB_QUEUE_H_
