// The byte budget of requests in progress (server/limits.h, InflightBytes)
// and its flag check.

#include "server/limits.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace strata::server {
namespace {

using ::testing::HasSubstr;

TEST(InflightBytesTest, AdmitsUpToTheLimitThenRefusesNamingTheFlag) {
  InflightBytes budget(100, "--max_inflight_bytes");
  EXPECT_TRUE(budget.Acquire(60).ok());
  EXPECT_TRUE(budget.Acquire(40).ok());  // Exactly at the limit.
  absl::Status refused = budget.Acquire(1);
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("hold 100 bytes"));
  EXPECT_THAT(refused.message(), HasSubstr("of 1 bytes"));
  EXPECT_THAT(refused.message(), HasSubstr("limit of 100 (--max_inflight_bytes)"));
  EXPECT_EQ(budget.used(), 100u);  // A refusal takes nothing.
}

TEST(InflightBytesTest, ReleaseMakesRoomAgain) {
  InflightBytes budget(100, "--max_inflight_bytes");
  ASSERT_TRUE(budget.Acquire(80).ok());
  EXPECT_FALSE(budget.Acquire(30).ok());
  budget.Release(80);
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_TRUE(budget.Acquire(30).ok());
}

TEST(InflightBytesTest, ZeroLimitIsUnlimitedAndCountsNothing) {
  InflightBytes budget(0, "--max_inflight_bytes");
  EXPECT_TRUE(budget.Acquire(uint64_t{1} << 40).ok());
  EXPECT_EQ(budget.used(), 0u);
  budget.Release(uint64_t{1} << 40);
  EXPECT_EQ(budget.used(), 0u);
}

TEST(InflightBytesTest, ConcurrentTakersNeverPassTheLimit) {
  constexpr uint64_t kLimit = 1000;
  InflightBytes budget(kLimit, "--max_inflight_bytes");
  std::atomic<uint64_t> max_seen{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        if (!budget.Acquire(300).ok()) continue;
        uint64_t used = budget.used();
        uint64_t prev = max_seen.load();
        while (used > prev && !max_seen.compare_exchange_weak(prev, used)) {
        }
        budget.Release(300);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LE(max_seen.load(), kLimit);
  EXPECT_EQ(budget.used(), 0u);
}

TEST(ValidateInflightBytesTest, MustAdmitTheLargestRequest) {
  Limits limits;  // max_message_bytes 16 MiB.
  EXPECT_TRUE(ValidateInflightBytes(0, limits).ok());
  EXPECT_TRUE(ValidateInflightBytes(16u << 20, limits).ok());
  absl::Status s = ValidateInflightBytes((16u << 20) - 1, limits);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("--max_inflight_bytes"));
  EXPECT_THAT(s.message(), HasSubstr("--max_message_bytes"));
}

}  // namespace
}  // namespace strata::server
