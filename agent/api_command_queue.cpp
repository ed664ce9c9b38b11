// The local API's command queue (agent/api.h): HTTP threads hand commands to the agent's loop
// thread, which runs them between polls.
#include "agent/api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <utility>

namespace refbus::agent {
namespace {

int64_t QueueSteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

CommandQueue::CommandQueue() : last_drain_ms_(QueueSteadyNowMs()) {}

Status CommandQueue::Run(std::function<void()> fn, std::chrono::milliseconds timeout) {
  auto task = std::make_shared<Task>();
  task->fn = std::move(fn);
  auto settled = [&task] {
    return task->state == TaskState::kDone || task->state == TaskState::kWithdrawn;
  };
  MutexLock lock(&mu_);
  if (closed_) return Unavailable("the agent is stopping; retry when it has restarted");
  tasks_.push_back(task);
  changed_.SignalAll();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!settled()) {
    if (!changed_.WaitUntil(deadline)) break;
  }
  const bool finished = settled();
  if (!finished && task->state == TaskState::kQueued) {
    // Not started: withdraw it, so the caller's answer ("not done") is the truth.
    task->state = TaskState::kWithdrawn;
    std::erase(tasks_, task);
    return ResourceExhausted("agent busy: the command did not start within " +
                             std::to_string(timeout.count()) + " ms and was not run; retry");
  }
  // Started: it finishes, however long it takes (its effects are committed by then).
  while (!settled()) changed_.Wait();
  if (task->state == TaskState::kWithdrawn) {
    return Unavailable(
        "the agent is stopping; the command was not run; retry when it has restarted");
  }
  return Status::Ok();
}

size_t CommandQueue::RunPending() {
  last_drain_ms_.store(QueueSteadyNowMs(), std::memory_order_relaxed);
  size_t ran = 0;
  MutexLock lock(&mu_);
  size_t budget = tasks_.size();  // what was queued when the call began: Poll gets its turn
  while (budget-- > 0 && !tasks_.empty()) {
    std::shared_ptr<Task> task = std::move(tasks_.front());
    tasks_.pop_front();
    if (task->state != TaskState::kQueued) continue;
    task->state = TaskState::kRunning;
    lock.Unlock();
    try {
      task->fn();
    } catch (const std::exception& e) {
      spdlog::error("api: a command threw: {}", e.what());
    } catch (...) {
      spdlog::error("api: a command threw an unknown exception");
    }
    lock.Lock();
    task->state = TaskState::kDone;
    ++ran;
    changed_.SignalAll();
  }
  return ran;
}

void CommandQueue::Close() {
  MutexLock lock(&mu_);
  closed_ = true;
  for (auto& t : tasks_) {
    if (t->state == TaskState::kQueued) t->state = TaskState::kWithdrawn;
  }
  tasks_.clear();
  changed_.SignalAll();
}

}  // namespace refbus::agent
