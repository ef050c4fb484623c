#ifndef STRATA_STORAGE_UTIL_HISTOGRAM_H_
#define STRATA_STORAGE_UTIL_HISTOGRAM_H_

// A fixed-bucket histogram updated with relaxed atomics (no lock), copied
// into a HistogramSnapshot for the statistics API.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "strata/storage/statistics.h"

namespace strata::storage {

class AtomicHistogram {
 public:
  // bounds: ascending bucket upper bounds (in the unit observed).
  explicit AtomicHistogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)),
        counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
    for (size_t i = 0; i <= bounds_.size(); i++) counts_[i] = 0;
  }

  // Thread-safe.
  void Observe(double value) {
    size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) i++;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    // Sum kept in nanounits to stay in an integer atomic.
    sum_nanos_.fetch_add(static_cast<uint64_t>(value * 1e9),
                         std::memory_order_relaxed);
  }

  HistogramSnapshot Snapshot() const {
    HistogramSnapshot s;
    s.bounds = bounds_;
    s.counts.resize(bounds_.size() + 1);
    for (size_t i = 0; i <= bounds_.size(); i++) {
      s.counts[i] = counts_[i].load(std::memory_order_relaxed);
    }
    s.count = count_.load(std::memory_order_relaxed);
    s.sum = static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
    return s;
  }

  // Exponential bounds: start, start*factor, ... (n bounds).
  static std::vector<double> ExponentialBounds(double start, double factor,
                                               int n) {
    std::vector<double> b;
    for (int i = 0; i < n; i++, start *= factor) b.push_back(start);
    return b;
  }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_nanos_{0};
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_UTIL_HISTOGRAM_H_
