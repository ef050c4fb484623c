#include "server/metrics/engine_collector.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace strata::server::metrics {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;
using S = storage::Statistics;
using H = storage::HistogramSnapshot;
using Series = std::vector<std::pair<Labels, double>>;

constexpr MetricType kCounter = MetricType::Counter;
constexpr MetricType kGauge = MetricType::Gauge;
constexpr MetricType kHistogram = MetricType::Histogram;

// One sample per LSM level, labelled level="N", of `field`.
template <auto field>
Series PerLevel(const S& s) {
  Series out;
  for (const S::Levels::Level& l : s.levels.per_level) {
    out.push_back(
        {{{"level", std::to_string(l.level)}}, static_cast<double>(l.*field)});
  }
  return out;
}

// 1 for the current write stall state, 0 for the others.
Series StallStates(const S& s) {
  using State = S::Writes::StallState;
  Series out;
  for (auto [state, name] : {std::pair{State::kNone, "none"},
                             std::pair{State::kSlowdown, "slowdown"},
                             std::pair{State::kStop, "stop"}}) {
    out.push_back(
        {{{"state", name}}, s.writes.stall_state == state ? 1.0 : 0.0});
  }
  return out;
}

// The engine's metrics, in exposition order. A new engine metric is one row
// here (and one in docs/metrics.md; metrics_test compares the two).
constexpr EngineMetric kEngineMetrics[] = {
    // Write-ahead log and writes.
    {"strata_wal_appended_bytes_total",
     "Write batch bytes appended to the write-ahead log (record payloads, "
     "without the log's block headers).",
     kCounter, [](const S& s) -> double { return s.wal.appended_bytes; }},
    {"strata_wal_records_total",
     "Records appended to the write-ahead log (one per group commit).",
     kCounter, [](const S& s) -> double { return s.wal.records; }},
    {"strata_wal_syncs_total", "fdatasync calls on the write-ahead log.",
     kCounter, [](const S& s) -> double { return s.wal.syncs; }},
    {"strata_wal_sync_duration_seconds",
     "Duration of one write-ahead log fdatasync.", kHistogram,
     [](const S& s) -> const H& { return s.wal.sync_seconds; }},
    {"strata_wal_writes_per_group_commit",
     "Write batches committed together by one write-ahead log record (and "
     "at most one fsync).",
     kHistogram,
     [](const S& s) -> const H& { return s.wal.writes_per_group_commit; }},
    {"strata_write_user_bytes_total",
     "Key and value bytes accepted by writes (the denominator of write "
     "amplification).",
     kCounter, [](const S& s) -> double { return s.writes.user_bytes; }},
    {"strata_write_keys_total", "Put and Delete operations written.", kCounter,
     [](const S& s) -> double { return s.writes.keys; }},
    {"strata_writes_expired_in_queue_total",
     "Writes dropped unwritten because their deadline passed while they "
     "waited in the write queue.",
     kCounter, [](const S& s) -> double { return s.writes.expired_in_queue; }},

    // Revisions and history.
    {"strata_revision", "The latest committed revision.", kGauge,
     [](const S& s) -> double { return s.revisions.current; }},
    {"strata_compacted_revision",
     "The compacted revision: reads and watches reach back to it (history "
     "retention, Compact).",
     kGauge, [](const S& s) -> double { return s.revisions.compacted; }},

    // Memtables and levels.
    {"strata_memtable_active_bytes", "Arena bytes of the active memtable.",
     kGauge, [](const S& s) -> double { return s.memtable.active_bytes; }},
    {"strata_memtable_immutable",
     "Immutable memtables waiting to be flushed to level 0.", kGauge,
     [](const S& s) -> double { return s.memtable.immutable; }},
    {"strata_level_files", "Live SSTable files per LSM level.", kGauge,
     &PerLevel<&S::Levels::Level::num_files>},
    {"strata_level_bytes", "Bytes of live SSTables per LSM level.", kGauge,
     &PerLevel<&S::Levels::Level::bytes>},
    {"strata_live_sst_bytes", "Bytes of all live SSTables on disk.", kGauge,
     [](const S& s) -> double { return s.levels.live_sst_bytes; }},

    // Flush and compaction.
    {"strata_flushes_total", "Memtable flushes to level-0 SSTables.", kCounter,
     [](const S& s) -> double { return s.flush.count; }},
    {"strata_flush_written_bytes_total", "SSTable bytes written by flushes.",
     kCounter, [](const S& s) -> double { return s.flush.written_bytes; }},
    {"strata_flush_duration_seconds", "Duration of one memtable flush.",
     kHistogram, [](const S& s) -> const H& { return s.flush.seconds; }},
    {"strata_compactions_total", "Compactions finished.", kCounter,
     [](const S& s) -> double { return s.compaction.count; }},
    {"strata_compaction_read_bytes_total", "SSTable bytes read by compactions.",
     kCounter, [](const S& s) -> double { return s.compaction.read_bytes; }},
    {"strata_compaction_written_bytes_total",
     "SSTable bytes written by compactions.", kCounter,
     [](const S& s) -> double { return s.compaction.written_bytes; }},
    {"strata_compaction_duration_seconds", "Duration of one compaction.",
     kHistogram, [](const S& s) -> const H& { return s.compaction.seconds; }},
    {"strata_compaction_pending_bytes",
     "Estimated bytes compaction must rewrite to bring every level under "
     "its target size.",
     kGauge, [](const S& s) -> double { return s.compaction.pending_bytes; }},
    {"strata_compaction_filtered_entries_total",
     "Entries compactions dropped because no reader can reach their key any "
     "more (a deleted namespace's).",
     kCounter,
     [](const S& s) -> double { return s.compaction.filtered_entries; }},
    {"strata_background_errors_total",
     "WAL, flush or compaction errors (the first one that is not for lack "
     "of space makes the engine refuse writes until restart).",
     kCounter, [](const S& s) -> double { return s.background_errors; }},
    {"strata_out_of_space_errors_total",
     "WAL, flush or compaction failures for lack of disk space (ENOSPC, "
     "EDQUOT); retried with backoff.",
     kCounter, [](const S& s) -> double { return s.out_of_space.errors; }},
    {"strata_writes_paused",
     "1 while the engine refuses writes because the disk ran out of space "
     "(they resume by themselves once a retry succeeds), else 0.",
     kGauge,
     [](const S& s) -> double { return s.out_of_space.writes_paused ? 1 : 0; }},

    // Write stalls.
    {"strata_write_stall_seconds_total",
     "Time writers spent delayed or stopped by a write stall.", kCounter,
     [](const S& s) -> double { return s.writes.stall_seconds; }},
    {"strata_write_stall_state",
     "1 for the engine's current write stall state (none, slowdown or "
     "stop), 0 for the others.",
     kGauge, &StallStates},

    // Caches and filters.
    {"strata_block_cache_hits_total",
     "Block cache lookups that found the block.", kCounter,
     [](const S& s) -> double { return s.block_cache.hits; }},
    {"strata_block_cache_misses_total",
     "Block cache lookups that did not find the block (a Get that misses "
     "counts twice; compaction reads count too).",
     kCounter, [](const S& s) -> double { return s.block_cache.misses; }},
    {"strata_block_cache_usage_bytes", "Bytes charged to the block cache.",
     kGauge, [](const S& s) -> double { return s.block_cache.usage_bytes; }},
    {"strata_block_cache_capacity_bytes",
     "Capacity of the block cache (--block_cache_bytes).", kGauge,
     [](const S& s) -> double { return s.block_cache.capacity_bytes; }},
    {"strata_table_cache_hits_total",
     "Table cache lookups that found the SSTable open.", kCounter,
     [](const S& s) -> double { return s.table_cache.hits; }},
    {"strata_table_cache_misses_total",
     "Table cache lookups that had to open the SSTable (index and filter "
     "read).",
     kCounter, [](const S& s) -> double { return s.table_cache.misses; }},
    {"strata_bloom_filter_checks_total",
     "Bloom filter checks for point lookups.", kCounter,
     [](const S& s) -> double { return s.filter.checks; }},
    {"strata_bloom_filter_negatives_total",
     "Bloom filter checks that ruled the SSTable out (a read saved).", kCounter,
     [](const S& s) -> double { return s.filter.negatives; }},

    // Reads.
    {"strata_engine_gets_total",
     "Point lookups run by the engine (a Get RPC that misses the cache runs "
     "two).",
     kCounter, [](const S& s) -> double { return s.reads.gets; }},
    {"strata_engine_iterators_created_total",
     "Engine iterators created (one per Scan).", kCounter,
     [](const S& s) -> double { return s.reads.iterators_created; }},
};

// The engine computes exponential bounds by repeated multiplication
// (8.000000000000001e-05); 12 significant digits give clean `le` labels
// (8e-05) without moving any bound by more than a rounding error.
std::vector<double> CleanBounds(const std::vector<double>& bounds) {
  std::vector<double> out;
  out.reserve(bounds.size());
  for (double b : bounds) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.12g", b);
    out.push_back(std::strtod(text, nullptr));
  }
  return out;
}

// Appends one counter or gauge sample, as the family's type says.
void AddSample(MetricFamily* f, double value, Labels labels = {}) {
  if (f->type == kCounter) {
    AddCounter(f, value, std::move(labels));
  } else {
    AddGauge(f, value, std::move(labels));
  }
}

MetricFamily FamilyOf(const EngineMetric& m, const S& s) {
  MetricFamily f = MakeFamily(std::string(m.name), std::string(m.help), m.type);
  if (auto* value = std::get_if<EngineMetric::Value>(&m.get)) {
    AddSample(&f, (*value)(s));
  } else if (auto* histogram = std::get_if<EngineMetric::Histogram>(&m.get)) {
    const H& h = (*histogram)(s);
    AddHistogram(&f, CleanBounds(h.bounds), h.counts, h.sum, h.count);
  } else {
    for (auto& [labels, value] : std::get<EngineMetric::Series>(m.get)(s)) {
      AddSample(&f, value, std::move(labels));
    }
  }
  return f;
}

}  // namespace

std::span<const EngineMetric> EngineMetrics() { return kEngineMetrics; }

std::vector<prometheus::MetricFamily> EngineFamilies(
    const storage::Statistics& stats) {
  std::vector<MetricFamily> out;
  out.reserve(std::size(kEngineMetrics));
  for (const EngineMetric& m : kEngineMetrics)
    out.push_back(FamilyOf(m, stats));
  return out;
}

}  // namespace strata::server::metrics
