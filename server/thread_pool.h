#ifndef STRATA_SERVER_THREAD_POOL_H_
#define STRATA_SERVER_THREAD_POOL_H_

// A small fixed-size pool of threads for work that may block on disk (Gets
// that miss the block cache, Scan batches), so completion-queue threads
// never do.

#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace strata::server {

// Runs scheduled tasks in FIFO order on `num_threads` threads.
//
// Thread safety: Schedule and Shutdown may be called from any thread.
// Tasks run on the pool's threads and may themselves call Schedule.
class ThreadPool {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  // Starts num_threads threads (at least 1), named "<name>-<i>" (truncated
  // to the kernel's 15 characters).
  ThreadPool(int num_threads, const std::string& name);
  // Calls Shutdown().
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues task to run on a pool thread. Returns false (and drops the task)
  // if Shutdown has started; the caller must then do the work itself.
  bool Schedule(Task task);

  // Stops accepting tasks, runs every task already queued, and joins the
  // threads. Idempotent. REQUIRES: not called from a pool thread.
  void Shutdown();

  int num_threads() const { return static_cast<int>(threads_.size()); }

 private:
  void WorkerLoop();

  absl::Mutex mu_;
  absl::CondVar work_cv_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;  // Fixed after construction.
};

}  // namespace strata::server

#endif  // STRATA_SERVER_THREAD_POOL_H_
