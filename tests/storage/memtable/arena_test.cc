#include "memtable/arena.h"

#include <cstdint>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace strata::storage {
namespace {

TEST(ArenaTest, EmptyArenaHoldsNoMemory) {
  Arena arena;
  EXPECT_EQ(arena.MemoryUsage(), 0u);
}

TEST(ArenaTest, AllocationsKeepTheirContents) {
  Arena arena;
  std::mt19937 rng(7);
  std::vector<std::pair<char*, size_t>> allocated;
  size_t bytes = 0;
  for (int i = 0; i < 5000; ++i) {
    size_t n = (i % 500 == 0) ? 6000 + i  // Larger than a block.
               : (i % 10 == 0) ? rng() % 2000
                               : rng() % 20;
    if (n == 0) n = 1;
    char* p = (i % 3 == 0) ? arena.AllocateAligned(n) : arena.Allocate(n);
    if (i % 3 == 0) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 8, 0u) << i;
    }
    std::memset(p, i % 256, n);
    allocated.emplace_back(p, n);
    bytes += n;
    EXPECT_GE(arena.MemoryUsage(), bytes);
    // Waste stays bounded: at most a quarter block per block, plus headers.
    EXPECT_LE(arena.MemoryUsage(), bytes * 2 + 8192);
  }
  for (size_t i = 0; i < allocated.size(); ++i) {
    const auto [p, n] = allocated[i];
    for (size_t j = 0; j < n; ++j) {
      ASSERT_EQ(static_cast<unsigned char>(p[j]), i % 256) << i;
    }
  }
}

TEST(ArenaTest, LargeAllocationLeavesTheCurrentBlockUsable) {
  Arena arena;
  char* a = arena.Allocate(10);
  const size_t after_small = arena.MemoryUsage();
  arena.Allocate(100000);
  const size_t after_large = arena.MemoryUsage();
  EXPECT_GE(after_large, after_small + 100000);
  char* b = arena.Allocate(10);
  EXPECT_EQ(b, a + 10);  // Still carved from the first block.
  EXPECT_EQ(arena.MemoryUsage(), after_large);
}

}  // namespace
}  // namespace strata::storage
