#include "server/metrics/engine_collector.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "server/metrics/families.h"

namespace strata::server::metrics {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

double D(uint64_t v) { return static_cast<double>(v); }

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

MetricFamily HistogramFamily(std::string name, std::string help,
                             const storage::HistogramSnapshot& h) {
  MetricFamily f =
      MakeFamily(std::move(name), std::move(help), MetricType::Histogram);
  AddHistogram(&f, CleanBounds(h.bounds), h.counts, h.sum, h.count);
  return f;
}

void AddWal(const storage::Statistics& s, std::vector<MetricFamily>* out) {
  out->push_back(CounterFamily(
      "strata_wal_appended_bytes_total",
      "Write batch bytes appended to the write-ahead log (record payloads, "
      "without the log's block headers).",
      D(s.wal_bytes_appended)));
  out->push_back(CounterFamily(
      "strata_wal_records_total",
      "Records appended to the write-ahead log (one per group commit).",
      D(s.wal_records)));
  out->push_back(CounterFamily("strata_wal_syncs_total",
                               "fdatasync calls on the write-ahead log.",
                               D(s.wal_syncs)));
  out->push_back(HistogramFamily("strata_wal_sync_duration_seconds",
                                 "Duration of one write-ahead log fdatasync.",
                                 s.wal_sync_seconds));
  out->push_back(HistogramFamily(
      "strata_wal_writes_per_group_commit",
      "Write batches committed together by one write-ahead log record (and "
      "at most one fsync).",
      s.writes_per_group_commit));
  out->push_back(CounterFamily(
      "strata_write_user_bytes_total",
      "Key and value bytes accepted by writes (the denominator of write "
      "amplification).",
      D(s.user_bytes_written)));
  out->push_back(CounterFamily("strata_write_keys_total",
                               "Put and Delete operations written.",
                               D(s.keys_written)));
}

void AddMemtableAndLevels(const storage::Statistics& s,
                          std::vector<MetricFamily>* out) {
  out->push_back(GaugeFamily("strata_memtable_active_bytes",
                             "Arena bytes of the active memtable.",
                             D(s.memtable_bytes)));
  out->push_back(GaugeFamily(
      "strata_memtable_immutable",
      "Immutable memtables waiting to be flushed to level 0.",
      static_cast<double>(s.immutable_memtables)));
  MetricFamily files =
      MakeFamily("strata_level_files", "Live SSTable files per LSM level.",
                 MetricType::Gauge);
  MetricFamily bytes =
      MakeFamily("strata_level_bytes", "Bytes of live SSTables per LSM level.",
                 MetricType::Gauge);
  for (const storage::LevelStats& l : s.levels) {
    const std::string level = std::to_string(l.level);
    AddGauge(&files, static_cast<double>(l.num_files), {{"level", level}});
    AddGauge(&bytes, D(l.bytes), {{"level", level}});
  }
  out->push_back(std::move(files));
  out->push_back(std::move(bytes));
  out->push_back(GaugeFamily("strata_live_sst_bytes",
                             "Bytes of all live SSTables on disk.",
                             D(s.live_sst_bytes)));
}

void AddFlushAndCompaction(const storage::Statistics& s,
                           std::vector<MetricFamily>* out) {
  out->push_back(CounterFamily("strata_flushes_total",
                               "Memtable flushes to level-0 SSTables.",
                               D(s.flushes)));
  out->push_back(CounterFamily("strata_flush_written_bytes_total",
                               "SSTable bytes written by flushes.",
                               D(s.flush_bytes_written)));
  out->push_back(HistogramFamily("strata_flush_duration_seconds",
                                 "Duration of one memtable flush.",
                                 s.flush_seconds));
  out->push_back(CounterFamily("strata_compactions_total",
                               "Compactions finished.", D(s.compactions)));
  out->push_back(CounterFamily("strata_compaction_read_bytes_total",
                               "SSTable bytes read by compactions.",
                               D(s.compaction_bytes_read)));
  out->push_back(CounterFamily("strata_compaction_written_bytes_total",
                               "SSTable bytes written by compactions.",
                               D(s.compaction_bytes_written)));
  out->push_back(HistogramFamily("strata_compaction_duration_seconds",
                                 "Duration of one compaction.",
                                 s.compaction_seconds));
  out->push_back(GaugeFamily(
      "strata_compaction_pending_bytes",
      "Estimated bytes compaction must rewrite to bring every level under "
      "its target size.",
      D(s.pending_compaction_bytes)));
  out->push_back(CounterFamily(
      "strata_background_errors_total",
      "Flush or compaction errors (the first one makes the engine refuse "
      "writes until restart).",
      D(s.background_errors)));
}

void AddStalls(const storage::Statistics& s, std::vector<MetricFamily>* out) {
  out->push_back(CounterFamily(
      "strata_write_stall_seconds_total",
      "Time writers spent delayed or stopped by a write stall.",
      s.stall_seconds));
  MetricFamily state = MakeFamily(
      "strata_write_stall_state",
      "1 for the engine's current write stall state (none, slowdown or "
      "stop), 0 for the others.",
      MetricType::Gauge);
  using State = storage::Statistics::StallState;
  for (auto [value, name] : {std::pair{State::kNone, "none"},
                             std::pair{State::kSlowdown, "slowdown"},
                             std::pair{State::kStop, "stop"}}) {
    AddGauge(&state, s.stall_state == value ? 1 : 0, {{"state", name}});
  }
  out->push_back(std::move(state));
}

void AddCaches(const storage::Statistics& s, std::vector<MetricFamily>* out) {
  out->push_back(CounterFamily("strata_block_cache_hits_total",
                               "Block cache lookups that found the block.",
                               D(s.block_cache_hits)));
  out->push_back(CounterFamily(
      "strata_block_cache_misses_total",
      "Block cache lookups that did not find the block (a Get that misses "
      "counts twice; compaction reads count too).",
      D(s.block_cache_misses)));
  out->push_back(GaugeFamily("strata_block_cache_usage_bytes",
                             "Bytes charged to the block cache.",
                             D(s.block_cache_usage_bytes)));
  out->push_back(GaugeFamily("strata_block_cache_capacity_bytes",
                             "Capacity of the block cache (--block_cache_bytes).",
                             D(s.block_cache_capacity_bytes)));
  out->push_back(CounterFamily(
      "strata_table_cache_hits_total",
      "Table cache lookups that found the SSTable open.",
      D(s.table_cache_hits)));
  out->push_back(CounterFamily(
      "strata_table_cache_misses_total",
      "Table cache lookups that had to open the SSTable (index and filter "
      "read).",
      D(s.table_cache_misses)));
  out->push_back(CounterFamily(
      "strata_bloom_filter_checks_total",
      "Bloom filter checks for point lookups.", D(s.bloom_checks)));
  out->push_back(CounterFamily(
      "strata_bloom_filter_negatives_total",
      "Bloom filter checks that ruled the SSTable out (a read saved).",
      D(s.bloom_negatives)));
  out->push_back(CounterFamily("strata_engine_gets_total",
                               "Point lookups run by the engine (a Get RPC "
                               "that misses the cache runs two).",
                               D(s.gets)));
  out->push_back(CounterFamily("strata_engine_iterators_created_total",
                               "Engine iterators created (one per Scan).",
                               D(s.iterators_created)));
}

}  // namespace

std::vector<prometheus::MetricFamily> EngineFamilies(
    const storage::Statistics& stats) {
  std::vector<MetricFamily> out;
  out.reserve(40);
  AddWal(stats, &out);
  AddMemtableAndLevels(stats, &out);
  AddFlushAndCompaction(stats, &out);
  AddStalls(stats, &out);
  AddCaches(stats, &out);
  return out;
}

}  // namespace strata::server::metrics
