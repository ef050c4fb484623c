// GetCoalescer: the grouping rules that read coalescing relies on. The
// end-to-end behaviour (one disk lookup for a burst, no stale answers) is in
// kv_server_test.cc.

#include "server/get_coalescer.h"

#include <algorithm>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(GetCoalescerTest, FirstJoinOpensAGroupLaterOnesJoinIt) {
  GetCoalescer<int> c;
  EXPECT_FALSE(c.Join("k", 1));  // Opens: the caller queues the lookup.
  EXPECT_TRUE(c.Join("k", 2));
  EXPECT_TRUE(c.Join("k", 3));
  EXPECT_FALSE(c.Join("other", 4));  // Keys are grouped separately.
  EXPECT_THAT(c.Take("k"), ElementsAre(1, 2, 3));
  EXPECT_THAT(c.Take("other"), ElementsAre(4));
  EXPECT_EQ(c.TEST_open_groups(), 0u);
}

TEST(GetCoalescerTest, TakeClosesTheGroupSoLaterGetsOpenANewOne) {
  GetCoalescer<int> c;
  EXPECT_FALSE(c.Join("k", 1));
  EXPECT_THAT(c.Take("k"), ElementsAre(1));
  // The lookup has started: a new arrival must not share it.
  EXPECT_FALSE(c.Join("k", 2));
  EXPECT_THAT(c.Take("k"), ElementsAre(2));
  EXPECT_THAT(c.Take("k"), IsEmpty());
}

TEST(GetCoalescerTest, KeysAreComparedAsBytes) {
  GetCoalescer<int> c;
  const std::string with_nul("a\0b", 3);
  EXPECT_FALSE(c.Join(with_nul, 1));
  EXPECT_FALSE(c.Join("a", 2));
  EXPECT_THAT(c.Take(with_nul), ElementsAre(1));
  EXPECT_THAT(c.Take("a"), ElementsAre(2));
}

// Every waiter ends up in exactly one group, and every group has exactly one
// opener, however joins and takes interleave.
TEST(GetCoalescerTest, ConcurrentJoinsAndTakesLoseNobody) {
  GetCoalescer<int> c;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::vector<int>> taken(kThreads);
  std::vector<int> opened(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key = (i % 2 == 0) ? "hot" : "warm";
        if (!c.Join(key, t * kPerThread + i)) opened[t]++;
        if (i % 3 == 0) {
          for (int w : c.Take(key)) taken[t].push_back(w);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::vector<int> all;
  for (const char* key : {"hot", "warm"}) {
    for (int w : c.Take(key)) all.push_back(w);
  }
  for (const auto& v : taken) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  for (int i = 0; i < kThreads * kPerThread; ++i) ASSERT_EQ(all[i], i);
  EXPECT_GT(opened[0] + opened[1] + opened[2] + opened[3], 0);
}

}  // namespace
}  // namespace strata::server
