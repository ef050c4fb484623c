#ifndef STRATA_STORAGE_DB_DB_COUNTERS_H_
#define STRATA_STORAGE_DB_DB_COUNTERS_H_

// The statistics DBImpl keeps itself: one struct per part of the public
// Statistics (strata/storage/statistics.h), bumped where the event happens
// and copied by Snapshot(). The other parts are kept by the components
// they describe (FilterCounters in table/, TableCacheCounters in version/,
// the block cache's own hits and misses in cache/).
//
// A new counter is a field of its Statistics struct plus, here, the
// Counter that feeds it and its line in Snapshot() (docs/metrics.md, "How
// to add an engine metric").
//
// Thread safety: every member may be bumped and read from any thread
// (relaxed atomics; see Counter).

#include <atomic>
#include <vector>

#include "strata/storage/statistics.h"
#include "util/counters.h"
#include "util/histogram.h"

namespace strata::storage {

// Bucket bounds of the engine's duration histograms, in seconds: 10 us
// doubling up to ~10.5 s.
inline std::vector<double> DurationBounds() {
  return AtomicHistogram::ExponentialBounds(10e-6, 2, 21);
}

// Appends and syncs by group-commit leaders (db_write.cc).
struct WalCounters {
  Counter appended_bytes;
  Counter records;
  Counter syncs;
  AtomicHistogram sync_seconds{DurationBounds()};
  // Batches per group: 1, 2, 4, ..., 2048.
  AtomicHistogram writes_per_group_commit{
      AtomicHistogram::ExponentialBounds(1, 2, 12)};

  Statistics::Wal Snapshot() const {
    return {.appended_bytes = appended_bytes.Load(),
            .records = records.Load(),
            .syncs = syncs.Load(),
            .sync_seconds = sync_seconds.Snapshot(),
            .writes_per_group_commit = writes_per_group_commit.Snapshot()};
  }
};

// Writes accepted, and write stalls (db_write.cc).
struct WriteCounters {
  using StallState = Statistics::Writes::StallState;

  Counter user_bytes;
  Counter keys;
  Counter stall_micros;
  Counter expired_in_queue;
  std::atomic<StallState> stall_state{StallState::kNone};  // Gauge.

  Statistics::Writes Snapshot() const {
    return {.user_bytes = user_bytes.Load(),
            .keys = keys.Load(),
            .stall_seconds = static_cast<double>(stall_micros.Load()) / 1e6,
            .expired_in_queue = expired_in_queue.Load(),
            .stall_state = stall_state.load(std::memory_order_relaxed)};
  }
};

// Memtable flushes (db_flush.cc).
struct FlushCounters {
  Counter count;
  Counter written_bytes;
  AtomicHistogram seconds{DurationBounds()};

  Statistics::Flush Snapshot() const {
    return {.count = count.Load(),
            .written_bytes = written_bytes.Load(),
            .seconds = seconds.Snapshot()};
  }
};

// Compactions (db_compaction.cc). pending_bytes is a gauge of the current
// version, filled in by GetStatistics under the DB mutex.
struct CompactionCounters {
  Counter count;
  Counter read_bytes;
  Counter written_bytes;
  Counter filtered_entries;
  AtomicHistogram seconds{DurationBounds()};

  Statistics::Compaction Snapshot() const {
    return {.count = count.Load(),
            .read_bytes = read_bytes.Load(),
            .written_bytes = written_bytes.Load(),
            .seconds = seconds.Snapshot(),
            .filtered_entries = filtered_entries.Load()};
  }
};

// Reads (db_impl.cc).
struct ReadCounters {
  Counter gets;
  Counter iterators_created;

  Statistics::Reads Snapshot() const {
    return {.gets = gets.Load(), .iterators_created = iterators_created.Load()};
  }
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_DB_DB_COUNTERS_H_
