#include "cache/lru_cache.h"

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace strata::storage {
namespace {

// Values are heap-allocated ints; deleted keys are recorded.
class LRUCacheTest : public ::testing::Test {
 protected:
  static std::vector<std::string>* deleted_keys;
  static std::vector<int>* deleted_values;

  static void Deleter(std::string_view key, void* v) {
    deleted_keys->emplace_back(key);
    deleted_values->push_back(*static_cast<int*>(v));
    delete static_cast<int*>(v);
  }

  void SetUp() override {
    deleted_keys = new std::vector<std::string>;
    deleted_values = new std::vector<int>;
    // One shard so capacity and LRU order are exact.
    cache_ = NewLRUCache(1000, /*num_shard_bits=*/0);
  }
  void TearDown() override {
    cache_.reset();
    delete deleted_keys;
    delete deleted_values;
  }

  // Inserts and releases; returns nothing (like a fill).
  void Put(const std::string& key, int value, size_t charge = 1) {
    cache_->Release(cache_->Insert(key, new int(value), charge, &Deleter));
  }
  Cache::Handle* PutPinned(const std::string& key, int value,
                           size_t charge = 1) {
    return cache_->Insert(key, new int(value), charge, &Deleter);
  }
  // The value for key, or -1 when absent.
  int Get(const std::string& key) {
    Cache::Handle* h = cache_->Lookup(key);
    if (h == nullptr) return -1;
    int v = *static_cast<int*>(cache_->Value(h));
    cache_->Release(h);
    return v;
  }

  std::unique_ptr<Cache> cache_;
};
std::vector<std::string>* LRUCacheTest::deleted_keys = nullptr;
std::vector<int>* LRUCacheTest::deleted_values = nullptr;

TEST_F(LRUCacheTest, HitAndMiss) {
  EXPECT_EQ(Get("a"), -1);
  Put("a", 101);
  EXPECT_EQ(Get("a"), 101);
  EXPECT_EQ(Get("b"), -1);
  Put("b", 201);
  EXPECT_EQ(Get("a"), 101);
  EXPECT_EQ(Get("b"), 201);
  EXPECT_EQ(cache_->hits(), 3u);
  EXPECT_EQ(cache_->misses(), 2u);
}

TEST_F(LRUCacheTest, InsertReplacesAndDeletesOldValue) {
  Put("a", 1);
  Put("a", 2);
  EXPECT_EQ(Get("a"), 2);
  ASSERT_EQ(deleted_values->size(), 1u);
  EXPECT_EQ((*deleted_keys)[0], "a");
  EXPECT_EQ((*deleted_values)[0], 1);
  EXPECT_EQ(cache_->TotalCharge(), 1u);
}

TEST_F(LRUCacheTest, ReplacedValueStaysAliveWhilePinned) {
  Cache::Handle* h = PutPinned("a", 1);
  Put("a", 2);
  EXPECT_EQ(*static_cast<int*>(cache_->Value(h)), 1);
  EXPECT_TRUE(deleted_values->empty());
  cache_->Release(h);
  ASSERT_EQ(deleted_values->size(), 1u);
  EXPECT_EQ((*deleted_values)[0], 1);
  EXPECT_EQ(Get("a"), 2);
}

TEST_F(LRUCacheTest, EraseRemovesEntry) {
  cache_->Erase("missing");
  Put("a", 1);
  Put("b", 2);
  cache_->Erase("a");
  EXPECT_EQ(Get("a"), -1);
  EXPECT_EQ(Get("b"), 2);
  ASSERT_EQ(deleted_values->size(), 1u);
  EXPECT_EQ((*deleted_values)[0], 1);
  EXPECT_EQ(cache_->TotalCharge(), 1u);
}

TEST_F(LRUCacheTest, EraseWhilePinnedDefersDeletion) {
  Cache::Handle* h = PutPinned("a", 7);
  cache_->Erase("a");
  EXPECT_EQ(Get("a"), -1);
  EXPECT_EQ(cache_->TotalCharge(), 0u);
  EXPECT_TRUE(deleted_values->empty());
  EXPECT_EQ(*static_cast<int*>(cache_->Value(h)), 7);
  cache_->Release(h);
  ASSERT_EQ(deleted_values->size(), 1u);
  EXPECT_EQ((*deleted_values)[0], 7);
}

TEST_F(LRUCacheTest, CapacityInBytesIsRespected) {
  for (int i = 0; i < 100; i++) Put(std::to_string(i), i, 100);
  EXPECT_LE(cache_->TotalCharge(), 1000u);
  EXPECT_EQ(cache_->TotalCharge(), 1000u);
  EXPECT_EQ(cache_->Capacity(), 1000u);
  // The ten newest survive.
  for (int i = 0; i < 90; i++) EXPECT_EQ(Get(std::to_string(i)), -1) << i;
  for (int i = 90; i < 100; i++) EXPECT_EQ(Get(std::to_string(i)), i);
  EXPECT_EQ(deleted_values->size(), 90u);
}

TEST_F(LRUCacheTest, EvictsLeastRecentlyUsed) {
  Put("a", 1, 400);
  Put("b", 2, 400);
  EXPECT_EQ(Get("a"), 1);  // "b" is now the oldest.
  Put("c", 3, 400);
  EXPECT_EQ(Get("b"), -1);
  EXPECT_EQ(Get("a"), 1);
  EXPECT_EQ(Get("c"), 3);
}

TEST_F(LRUCacheTest, PinnedEntriesAreNeverEvicted) {
  Cache::Handle* pinned = PutPinned("pinned", 42, 600);
  for (int i = 0; i < 50; i++) Put(std::to_string(i), i, 100);
  EXPECT_EQ(Get("pinned"), 42);
  // Usage exceeds capacity only by what is pinned.
  EXPECT_LE(cache_->TotalCharge(), 1000u);
  cache_->Release(pinned);
  EXPECT_EQ(Get("pinned"), 42);  // Still cached: it fits.
}

TEST_F(LRUCacheTest, UsageFallsBackUnderCapacityWhenPinsAreReleased) {
  std::vector<Cache::Handle*> pins;
  for (int i = 0; i < 20; i++) pins.push_back(PutPinned(std::to_string(i), i, 100));
  EXPECT_EQ(cache_->TotalCharge(), 2000u);  // Over capacity: all pinned.
  EXPECT_TRUE(deleted_values->empty());
  for (Cache::Handle* h : pins) cache_->Release(h);
  EXPECT_LE(cache_->TotalCharge(), 1000u);
  EXPECT_EQ(deleted_values->size(), 10u);
  // The most recently released (unpinned) entries survive.
  for (int i = 10; i < 20; i++) EXPECT_EQ(Get(std::to_string(i)), i);
}

TEST_F(LRUCacheTest, EntryLargerThanCapacityIsEvictedOnRelease) {
  Put("small", 1, 10);
  Cache::Handle* h = PutPinned("huge", 2, 5000);
  EXPECT_EQ(*static_cast<int*>(cache_->Value(h)), 2);
  EXPECT_EQ(Get("small"), -1);  // Evicted to make room.
  cache_->Release(h);
  EXPECT_EQ(Get("huge"), -1);
  EXPECT_EQ(cache_->TotalCharge(), 0u);
  EXPECT_EQ(deleted_values->size(), 2u);
}

TEST_F(LRUCacheTest, ZeroCapacityCachesNothingUnpinned) {
  cache_ = NewLRUCache(0, 0);
  Cache::Handle* h = PutPinned("a", 1);
  EXPECT_EQ(Get("a"), 1);  // Visible while pinned.
  cache_->Release(h);
  EXPECT_EQ(Get("a"), -1);
}

TEST_F(LRUCacheTest, NewIdIsUnique) {
  uint64_t a = cache_->NewId();
  uint64_t b = cache_->NewId();
  EXPECT_NE(a, b);
}

TEST_F(LRUCacheTest, DestructorDeletesRemainingEntries) {
  Put("a", 1);
  Put("b", 2);
  cache_.reset();
  EXPECT_EQ(deleted_values->size(), 2u);
}

TEST_F(LRUCacheTest, CacheHandleReleasesOnDestruction) {
  {
    CacheHandle h(cache_.get(), PutPinned("a", 5));
    cache_->Erase("a");
    EXPECT_EQ(*static_cast<int*>(h.value()), 5);
    CacheHandle moved = std::move(h);
    EXPECT_FALSE(h);
    EXPECT_TRUE(moved);
    EXPECT_TRUE(deleted_values->empty());
  }
  EXPECT_EQ(deleted_values->size(), 1u);
}

TEST_F(LRUCacheTest, ShardedCacheSplitsCapacity) {
  cache_ = NewLRUCache(16 * 1000, 4);
  for (int i = 0; i < 2000; i++) Put("key" + std::to_string(i), i, 100);
  EXPECT_LE(cache_->TotalCharge(), 16u * 1000);
  EXPECT_GT(cache_->TotalCharge(), 16u * 1000 / 2);
  EXPECT_EQ(Get("key1999"), 1999);
}

// Several threads insert, look up, pin and erase overlapping keys; checks
// that values are never mixed up or freed while pinned and that capacity
// holds once every pin is released.
TEST(LRUCacheConcurrencyTest, ConcurrentInsertLookupEraseIsSafe) {
  std::unique_ptr<Cache> cache = NewLRUCache(64 * 100, 2);
  static std::atomic<int> live{0};
  struct Value {
    explicit Value(int k) : key(k) { live.fetch_add(1); }
    ~Value() { live.fetch_sub(1); }
    int key;
  };
  auto deleter = [](std::string_view, void* v) { delete static_cast<Value*>(v); };
  constexpr int kThreads = 4;
  constexpr int kIterations = 20000;
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      uint32_t x = 12345 + t;
      for (int i = 0; i < kIterations; i++) {
        x = x * 1103515245 + 12345;
        int k = (x >> 8) % 200;
        std::string key = "k" + std::to_string(k);
        switch ((x >> 20) % 4) {
          case 0:
            cache->Release(cache->Insert(key, new Value(k), 100, deleter));
            break;
          case 1:
          case 2: {
            Cache::Handle* h = cache->Lookup(key);
            if (h != nullptr) {
              if (static_cast<Value*>(cache->Value(h))->key != k) errors++;
              cache->Release(h);
            }
            break;
          }
          case 3:
            cache->Erase(key);
            break;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_LE(cache->TotalCharge(), 64u * 100);
  EXPECT_EQ(cache->hits() + cache->misses() > 0, true);
  cache.reset();
  EXPECT_EQ(live.load(), 0);
}

}  // namespace
}  // namespace strata::storage
