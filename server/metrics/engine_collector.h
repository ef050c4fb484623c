#ifndef STRATA_SERVER_METRICS_ENGINE_COLLECTOR_H_
#define STRATA_SERVER_METRICS_ENGINE_COLLECTOR_H_

// Engine metrics: the storage engine keeps its own counters (relaxed
// atomics, no Prometheus dependency in storage/) and hands out a
// storage::Statistics snapshot; this maps one snapshot to the strata_wal_*,
// strata_memtable_*, strata_level_*, strata_flush*, strata_compaction*,
// strata_write_stall_*, cache, bloom and read families. Engine counters are
// exported as Prometheus counters, engine histograms as histograms with the
// engine's own bucket bounds. docs/metrics.md lists every family.

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "strata/storage/db.h"
#include "strata/storage/statistics.h"

namespace strata::server::metrics {

// The families for one snapshot. Pure; thread-safe.
std::vector<prometheus::MetricFamily> EngineFamilies(
    const storage::Statistics& stats);

// Calls db->GetStatistics() on every scrape (it takes the DB mutex briefly)
// and returns EngineFamilies of it.
//
// Thread safety: Collect may run on any thread, concurrently.
// Ownership: `db` is not owned and must stay open while this collector can
// be scraped (MetricsServer stops serving before the DB is closed).
class EngineCollector final : public prometheus::Collectable {
 public:
  explicit EngineCollector(storage::DB* db) : db_(db) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    return EngineFamilies(db_->GetStatistics());
  }

 private:
  storage::DB* const db_;
};

}  // namespace strata::server::metrics

#endif  // STRATA_SERVER_METRICS_ENGINE_COLLECTOR_H_
