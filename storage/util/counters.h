#ifndef STRATA_STORAGE_UTIL_COUNTERS_H_
#define STRATA_STORAGE_UTIL_COUNTERS_H_

// Hot-path counters bumped by engine components with relaxed atomics (no
// locks on the read path) and copied into a Statistics snapshot on demand.

#include <atomic>
#include <cstdint>

namespace strata::storage {

struct EngineCounters {
  std::atomic<uint64_t> bloom_checks{0};
  std::atomic<uint64_t> bloom_negatives{0};
  std::atomic<uint64_t> table_cache_hits{0};
  std::atomic<uint64_t> table_cache_misses{0};
  std::atomic<uint64_t> gets{0};
  std::atomic<uint64_t> iterators_created{0};

  static void Bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
    c.fetch_add(n, std::memory_order_relaxed);
  }
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_UTIL_COUNTERS_H_
