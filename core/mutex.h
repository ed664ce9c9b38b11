// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with clang's
// thread-safety annotations, so that a member declared `GUARDED_BY(mu_)` is checked at
// compile time (clang -Wthread-safety, run by tests/guards/thread_safety.sh) instead of
// promised in a comment. libstdc++'s own types carry no annotations, hence the wrappers.
//
// The annotation macros expand to nothing under GCC (the product build); clang checks them.
// A function that expects its caller to hold a mutex says so with REQUIRES(mu_); one that
// takes it itself with EXCLUDES(mu_).
//
// Waiting: write the loop out (`while (!ready_) cv_.Wait();`) rather than passing a
// predicate lambda: the analysis cannot see that a lambda runs under the lock, and the loop
// keeps the guarded reads where it can check them.
//
// Thread safety: Mutex and CondVar are used from any thread, as their std counterparts.
#ifndef REFBUS_CORE_MUTEX_H_
#define REFBUS_CORE_MUTEX_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define REFBUS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define REFBUS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) REFBUS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY REFBUS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) REFBUS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) REFBUS_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) REFBUS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) REFBUS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) REFBUS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) REFBUS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) REFBUS_THREAD_ANNOTATION(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS REFBUS_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace refbus {

class CondVar;

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // Tells the analysis that the caller holds the mutex (no run-time check).
  void AssertHeld() ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds mu for its scope. Unlock()/Lock() release and retake it inside the scope (to run
// work outside the lock); the destructor releases only if held.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_->Unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() {
    held_ = false;
    mu_->Unlock();
  }
  void Lock() ACQUIRE() {
    mu_->Lock();
    held_ = true;
  }

 private:
  Mutex* const mu_;
  bool held_ = true;
};

// A condition variable bound to one Mutex, which every call requires held.
class CondVar {
 public:
  explicit CondVar(Mutex* mu) : mu_(mu) {}
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // REQUIRES: *mu held. Releases it while waiting; held again on return (also spuriously).
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // REQUIRES: *mu held. As Wait, returning false once deadline has passed.
  bool WaitUntil(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_->mu_, std::adopt_lock);
    const bool woke = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return woke;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  Mutex* const mu_;
  std::condition_variable cv_;
};

}  // namespace refbus

#endif  // REFBUS_CORE_MUTEX_H_
