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

// A point-in-time copy of the engine's counters and gauges, returned by
// DB::GetStatistics(), with one struct per part of the engine that keeps
// them (the shape of Pebble's Metrics). Counters are cumulative since Open
// (monotonic); gauges (marked) are current values. Units are in the field
// names (bytes, seconds).
//
// Gathering it takes the DB mutex briefly, for the memtable and level
// gauges; the hot paths only bump relaxed atomics, so two counters of one
// snapshot may be a moment apart (a write group may already be counted in
// wal.records but not yet in writes.keys).
//
// Adding a metric: a field here, and in the engine the counter that feeds
// it (docs/metrics.md, "How to add an engine metric").
struct Statistics {
  // The write-ahead log: one record, and at most one fdatasync, per group
  // commit.
  struct Wal {
    uint64_t appended_bytes = 0;  // Record payloads (write batches).
    uint64_t records = 0;         // One per write group.
    uint64_t syncs = 0;           // fdatasync calls.
    HistogramSnapshot sync_seconds;             // Duration of one fdatasync.
    HistogramSnapshot writes_per_group_commit;  // Batches per record.
  };

  // Writes accepted, and write stalls.
  struct Writes {
    uint64_t user_bytes = 0;   // Keys + values accepted by Write.
    uint64_t keys = 0;         // Put + Delete operations.
    double stall_seconds = 0;  // Time writers were delayed or stopped.
    // Writes dropped because their WriteOptions::deadline passed while
    // they waited in the write queue.
    uint64_t expired_in_queue = 0;
    enum class StallState { kNone = 0, kSlowdown = 1, kStop = 2 };
    StallState stall_state = StallState::kNone;  // Gauge.
  };

  // Memtables (gauges).
  struct Memtable {
    uint64_t active_bytes = 0;  // Arena bytes of the active memtable.
    int immutable = 0;          // Immutable memtables waiting for flush.
  };

  // The shape of the LSM tree (gauges).
  struct Levels {
    struct Level {
      int level = 0;
      int num_files = 0;
      uint64_t bytes = 0;
    };
    std::vector<Level> per_level;  // Every level, level 0 first.
    uint64_t live_sst_bytes = 0;   // Bytes of all live SSTables.
  };

  // Memtable flushes to level-0 SSTables.
  struct Flush {
    uint64_t count = 0;
    uint64_t written_bytes = 0;  // SSTable bytes written.
    HistogramSnapshot seconds;   // Duration of one flush.
  };

  // Compactions.
  struct Compaction {
    uint64_t count = 0;          // Finished.
    uint64_t read_bytes = 0;     // Input SSTable bytes.
    uint64_t written_bytes = 0;  // Output SSTable bytes.
    HistogramSnapshot seconds;   // Duration of one compaction.
    uint64_t pending_bytes = 0;  // Gauge: estimate of bytes over target.
    // Entries (versions and tombstones) dropped because the
    // CompactionFilter called their key unreachable.
    uint64_t filtered_entries = 0;
  };

  // The block cache (data, index and filter blocks).
  struct BlockCache {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t usage_bytes = 0;     // Gauge.
    uint64_t capacity_bytes = 0;  // Gauge.
  };

  // The table cache (open SSTables).
  struct TableCache {
    uint64_t hits = 0;
    uint64_t misses = 0;  // The SSTable had to be opened.
  };

  // SSTable bloom filters, for point lookups.
  struct Filter {
    uint64_t checks = 0;     // Filter consulted.
    uint64_t negatives = 0;  // Filter said "absent": table skipped.
  };

  // Reads.
  struct Reads {
    uint64_t gets = 0;
    uint64_t iterators_created = 0;
  };

  // Revisions and history (docs/revisions.md). Gauges.
  struct Revisions {
    uint64_t current = 0;    // The latest committed revision.
    uint64_t compacted = 0;  // History is kept from here on.
  };

  Revisions revisions;
  Wal wal;
  Writes writes;
  Memtable memtable;
  Levels levels;
  Flush flush;
  Compaction compaction;
  BlockCache block_cache;
  TableCache table_cache;
  Filter filter;
  Reads reads;
  // Failed WAL writes, flushes and compactions; the first one that is not
  // for lack of space makes the engine refuse writes until it is reopened.
  uint64_t background_errors = 0;

  // Running out of disk space (ENOSPC, EDQUOT): writes pause, the failed
  // work is retried with backoff and writes resume by themselves.
  struct OutOfSpace {
    uint64_t errors = 0;    // Out-of-space failures of WAL, flush, compaction.
    uint64_t pauses = 0;    // Times writes were paused for lack of space.
    uint64_t resumes = 0;   // Times writes resumed after such a pause.
    bool writes_paused = false;  // Gauge: writes refused for lack of space.
  };
  OutOfSpace out_of_space;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_STATISTICS_H_
