// One writer inserting while reader threads look up and iterate, checking
// the invariants the lock-free readers promise. Bounded work, no sleeps;
// meant to be run under ThreadSanitizer as well (-DSTRATA_SANITIZE=thread,
// `ctest -R Concurrent`).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "memtable/arena.h"
#include "memtable/memtable.h"
#include "memtable/skiplist.h"
#include "util/comparator.h"
#include "util/dbformat.h"

namespace strata::storage {
namespace {

// Reader passes are capped so the test stays bounded even if the writer is
// slow (e.g. under TSan); readers also stop once the writer is done.
constexpr int kMaxReaderPasses = 300;

// Spins until `count` threads have arrived, so the writer starts only once
// every reader runs (overlap without sleeps).
void ArriveAndWait(std::atomic<int>& arrived, int count) {
  arrived.fetch_add(1);
  while (arrived.load() < count) std::this_thread::yield();
}

struct U64Compare {
  int operator()(const uint64_t& a, const uint64_t& b) const {
    return a < b ? -1 : (a > b ? 1 : 0);
  }
};

TEST(SkipListConcurrentTest, OneWriterTwoReaders) {
  constexpr size_t kN = 20000;
  std::vector<uint64_t> keys(kN);
  std::iota(keys.begin(), keys.end(), 1);
  std::shuffle(keys.begin(), keys.end(), std::mt19937(5));

  Arena arena;
  SkipList<uint64_t, U64Compare> list(U64Compare(), &arena);
  std::atomic<size_t> published{0};  // keys[0, published) are inserted.
  std::atomic<bool> failed{false};

  std::atomic<int> arrived{0};
  auto reader = [&](uint32_t seed) {
    std::mt19937 rng(seed);
    ArriveAndWait(arrived, 3);
    for (int pass = 0; pass < kMaxReaderPasses; ++pass) {
      const size_t n = published.load(std::memory_order_acquire);
      if (n > 0) {
        // Everything published before we looked must be there.
        if (!list.Contains(keys[n - 1]) || !list.Contains(keys[rng() % n])) {
          failed = true;
        }
      }
      // A full scan is strictly ascending and at least n long.
      SkipList<uint64_t, U64Compare>::Iterator iter(&list);
      size_t count = 0;
      uint64_t last = 0;
      for (iter.SeekToFirst(); iter.Valid(); iter.Next()) {
        if (iter.key() <= last) failed = true;
        last = iter.key();
        ++count;
      }
      if (count < n) failed = true;
      // Seek lands at or after its target.
      const uint64_t target = rng() % (kN + 1);
      iter.Seek(target);
      if (iter.Valid() && iter.key() < target) failed = true;
      if (n == kN) break;  // Saw the final state.
    }
  };

  std::thread r1(reader, 1), r2(reader, 2);
  ArriveAndWait(arrived, 3);
  for (size_t i = 0; i < kN; ++i) {
    list.Insert(keys[i]);
    published.store(i + 1, std::memory_order_release);
  }
  r1.join();
  r2.join();
  EXPECT_FALSE(failed.load());
}

struct MemTableDeleter {
  void operator()(MemTable* m) const { m->Unref(); }
};

TEST(MemTableConcurrentTest, OneWriterThreeReaders) {
  constexpr size_t kN = 20000;
  constexpr size_t kKeys = 5000;  // Each user key gets ~4 versions.
  // Entry i: user key UserKey(order[i] % kKeys), sequence i + 1.
  std::vector<size_t> order(kN);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(9));
  auto user_key = [&](size_t i) {
    return absl::StrFormat("user-key-%06d", order[i] % kKeys);
  };
  auto value = [](size_t i) { return absl::StrFormat("value-%d", i); };

  const InternalKeyComparator icmp(BytewiseComparator());
  // With a small bloom filter (many false positives), so readers exercise
  // both the filter's racing bit reads and the skiplist.
  auto* raw = new MemTable(icmp, /*bloom_bytes=*/4096);
  raw->Ref();
  std::unique_ptr<MemTable, MemTableDeleter> mem(raw);
  std::atomic<size_t> published{0};  // Entries [0, published) are added.
  std::atomic<bool> failed{false};

  std::atomic<int> arrived{0};
  auto reader = [&](uint32_t seed) {
    std::mt19937 rng(seed);
    ArriveAndWait(arrived, 4);
    for (int pass = 0; pass < kMaxReaderPasses; ++pass) {
      const size_t n = published.load(std::memory_order_acquire);
      // Snapshot reads: as of sequence j + 1 the newest version of entry
      // j's key is entry j itself, whatever the writer adds meanwhile.
      for (int probe = 0; probe < 20 && n > 0; ++probe) {
        const size_t j = rng() % n;
        LookupResult r;
        if (!mem->Get(LookupKey(user_key(j), j + 1), &r) ||
            r.state != LookupResult::State::kFound ||
            r.stored_value != value(j)) {
          failed = true;
        }
      }
      // Iteration: internal keys strictly ascending, at least n entries.
      std::unique_ptr<Iterator> iter(mem->NewIterator());
      std::string last;
      size_t count = 0;
      for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
        if (count > 0 && icmp.Compare(last, iter->key()) >= 0) failed = true;
        last.assign(iter->key());
        ++count;
      }
      if (count < n) failed = true;
      if (n == kN) break;
    }
  };

  std::thread r1(reader, 1), r2(reader, 2), r3(reader, 3);
  ArriveAndWait(arrived, 4);
  for (size_t i = 0; i < kN; ++i) {
    mem->Add(i + 1, kTypeValue, user_key(i), value(i));
    published.store(i + 1, std::memory_order_release);
  }
  r1.join();
  r2.join();
  r3.join();
  EXPECT_FALSE(failed.load());
  EXPECT_GT(mem->ApproximateMemoryUsage(), kN * 20);
}

}  // namespace
}  // namespace strata::storage
