#include "server/thread_pool.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace strata::server {
namespace {

TEST(ThreadPoolTest, RunsEveryTaskFromManyProducers) {
  ThreadPool pool(3, "test-pool");
  EXPECT_EQ(pool.num_threads(), 3);
  constexpr int kProducers = 4, kTasks = 500;
  std::atomic<int> ran{0};
  absl::BlockingCounter done(kProducers * kTasks);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&] {
      for (int i = 0; i < kTasks; ++i) {
        ASSERT_TRUE(pool.Schedule([&] {
          ran.fetch_add(1);
          done.DecrementCount();
        }));
      }
    });
  }
  for (auto& t : producers) t.join();
  done.Wait();
  EXPECT_EQ(ran.load(), kProducers * kTasks);
}

TEST(ThreadPoolTest, ShutdownRunsQueuedTasksThenRefusesNewOnes) {
  ThreadPool pool(1, "test-pool");
  absl::Notification release;
  std::atomic<int> ran{0};
  // Occupy the only thread so the next tasks queue up.
  ASSERT_TRUE(pool.Schedule([&] { release.WaitForNotification(); }));
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(pool.Schedule([&] { ran.fetch_add(1); }));
  }
  std::thread stopper([&] { pool.Shutdown(); });
  release.Notify();
  stopper.join();
  EXPECT_EQ(ran.load(), 10);
  EXPECT_FALSE(pool.Schedule([&] { ran.fetch_add(1); }));
  pool.Shutdown();  // Idempotent.
  EXPECT_EQ(ran.load(), 10);
}

TEST(ThreadPoolTest, TasksMayScheduleTasks) {
  ThreadPool pool(2, "test-pool");
  absl::Notification done;
  std::atomic<int> depth{0};
  std::function<void()> step = [&] {
    if (depth.fetch_add(1) + 1 == 50) {
      done.Notify();
      return;
    }
    ASSERT_TRUE(pool.Schedule([&] { step(); }));
  };
  ASSERT_TRUE(pool.Schedule([&] { step(); }));
  done.WaitForNotification();
  EXPECT_EQ(depth.load(), 50);
}

TEST(ThreadPoolTest, AtLeastOneThread) {
  ThreadPool pool(0, "test-pool");
  EXPECT_EQ(pool.num_threads(), 1);
  absl::Notification ran;
  ASSERT_TRUE(pool.Schedule([&] { ran.Notify(); }));
  ran.WaitForNotification();
}

}  // namespace
}  // namespace strata::server
