#ifndef STRATA_STORAGE_STATISTICS_H_
#define STRATA_STORAGE_STATISTICS_H_

#include <cstdint>
#include <vector>

namespace strata::storage {

// Cumulative distribution with fixed bucket upper bounds, in the shape
// Prometheus histograms use. counts[i] is the number of observations
// <= bounds[i] and > bounds[i-1] (not cumulative); the last element of counts
// (counts.size() == bounds.size() + 1) counts observations above the last
// bound.
struct HistogramSnapshot {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  double sum = 0;
  uint64_t count = 0;
};

// Per-level shape of the LSM tree.
struct LevelStats {
  int level = 0;
  int num_files = 0;
  uint64_t bytes = 0;
};

// A point-in-time copy of the engine's counters, returned by
// DB::GetStatistics(). Counters are cumulative since Open (monotonic);
// gauges are current values. Units are in the field names (bytes, seconds).
// Gathering it takes the DB mutex briefly; the hot paths only bump relaxed
// atomics.
struct Statistics {
  // Write path.
  uint64_t wal_bytes_appended = 0;
  uint64_t wal_records = 0;          // One record per write group.
  uint64_t wal_syncs = 0;            // fdatasync calls on the WAL.
  HistogramSnapshot wal_sync_seconds;
  HistogramSnapshot writes_per_group_commit;
  uint64_t user_bytes_written = 0;   // Keys + values accepted by Write.
  uint64_t keys_written = 0;         // Put + Delete operations.

  // Memtables.
  uint64_t memtable_bytes = 0;       // Gauge: active memtable arena bytes.
  int immutable_memtables = 0;       // Gauge: waiting for flush.

  // Levels.
  std::vector<LevelStats> levels;
  uint64_t live_sst_bytes = 0;       // Gauge: bytes of all live SSTables.

  // Flush and compaction.
  uint64_t flushes = 0;
  uint64_t flush_bytes_written = 0;
  HistogramSnapshot flush_seconds;
  uint64_t compactions = 0;
  uint64_t compaction_bytes_read = 0;
  uint64_t compaction_bytes_written = 0;
  HistogramSnapshot compaction_seconds;
  uint64_t pending_compaction_bytes = 0;  // Gauge: estimate of bytes over target.
  uint64_t background_errors = 0;

  // Write stalls.
  double stall_seconds = 0;          // Total time writers were delayed/stopped.
  enum class StallState { kNone = 0, kSlowdown = 1, kStop = 2 };
  StallState stall_state = StallState::kNone;  // Gauge.

  // Caches and filters.
  uint64_t block_cache_hits = 0;
  uint64_t block_cache_misses = 0;
  uint64_t block_cache_usage_bytes = 0;     // Gauge.
  uint64_t block_cache_capacity_bytes = 0;  // Gauge.
  uint64_t table_cache_hits = 0;
  uint64_t table_cache_misses = 0;
  uint64_t bloom_checks = 0;        // Filter consulted for a point lookup.
  uint64_t bloom_negatives = 0;     // Filter said "absent": table skipped.

  // Reads.
  uint64_t gets = 0;
  uint64_t iterators_created = 0;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_STATISTICS_H_
