#ifndef STRATA_STORAGE_UTIL_COUNTERS_H_
#define STRATA_STORAGE_UTIL_COUNTERS_H_

// The engine's statistics are kept by the components they describe: each
// owns a small struct of Counters (and AtomicHistograms, util/histogram.h)
// with a Snapshot() that returns its part of the public Statistics
// (strata/storage/statistics.h). DB::GetStatistics() puts the parts
// together.

#include <atomic>
#include <cstdint>

namespace strata::storage {

// A cumulative count. Add is a relaxed atomic add: no lock and no ordering
// with other memory, so hot paths (reads, group commits) may bump it
// freely. Load is a relaxed load, for snapshots.
//
// Thread safety: every method may be called from any thread.
class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Load() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_UTIL_COUNTERS_H_
