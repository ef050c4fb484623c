#ifndef STRATA_BENCH_COMMON_HISTOGRAM_H_
#define STRATA_BENCH_COMMON_HISTOGRAM_H_

// A latency histogram for the benchmarks: log-linear buckets (values below
// 128 are exact, larger ones keep 7 significant bits, so a percentile is
// within ~1.6% of the true value), fixed size, no allocation on Add.
//
// Thread safety: none. Give each thread its own Histogram and Merge them at
// the end.

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <limits>

namespace strata::bench {

class Histogram {
 public:
  // Records one value (nanoseconds by convention; any unit works).
  void Add(uint64_t value) {
    ++buckets_[BucketFor(value)];
    ++count_;
    sum_ += value;
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }

  // Adds every value recorded in `other`.
  void Merge(const Histogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double Mean() const {
    return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_;
  }

  // The value below which `p` percent (0..100) of the recorded values lie:
  // the midpoint of the bucket holding that rank, clamped to [min, max].
  // 0 when empty.
  double Percentile(double p) const {
    if (count_ == 0) return 0.0;
    const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * count_;
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (buckets_[i] > 0 && static_cast<double>(seen) >= rank) {
        const double lo = static_cast<double>(BucketLow(i));
        const double hi = static_cast<double>(BucketLow(i + 1));
        const double mid = (lo + hi) / 2.0;
        return std::clamp(mid, static_cast<double>(min()),
                          static_cast<double>(max_));
      }
    }
    return static_cast<double>(max_);
  }

 private:
  // Values < 128 are exact; above, bucket = shift * 64 + (value >> shift)
  // where shift keeps the top 7 bits of the value.
  static constexpr size_t kBuckets = 64 * 58 + 128;

  static size_t BucketFor(uint64_t v) {
    if (v < 128) return static_cast<size_t>(v);
    const int msb = 63 - std::countl_zero(v);
    const int shift = msb - 6;
    return static_cast<size_t>(shift) * 64 + static_cast<size_t>(v >> shift);
  }
  // Smallest value of bucket i (i may be kBuckets, one past the end).
  static uint64_t BucketLow(size_t i) {
    if (i < 128) return i;
    const size_t shift = i / 64 - 1;
    if (shift >= 58) return std::numeric_limits<uint64_t>::max();
    return static_cast<uint64_t>(i - shift * 64) << shift;
  }

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = std::numeric_limits<uint64_t>::max();
  uint64_t max_ = 0;
};

}  // namespace strata::bench

#endif  // STRATA_BENCH_COMMON_HISTOGRAM_H_
