#ifndef STRATA_SERVER_METRICS_ENGINE_COLLECTOR_H_
#define STRATA_SERVER_METRICS_ENGINE_COLLECTOR_H_

// Engine metrics: the storage engine keeps its own counters (relaxed
// atomics, no Prometheus dependency in storage/) and hands out a
// storage::Statistics snapshot; EngineMetrics() is the one table that says
// which family each exported value becomes. Engine counters are exported as
// Prometheus counters, engine histograms as histograms with the engine's
// own bucket bounds. docs/metrics.md documents every row, and
// metrics_test checks that the table and the document agree.

#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"
#include "server/metrics/engine_source.h"
#include "server/metrics/families.h"
#include "strata/storage/db.h"
#include "strata/storage/statistics.h"

namespace strata::server::metrics {

// One exported engine metric family: {name, help, type, get}.
struct EngineMetric {
  // How the family's samples are read from a snapshot; which one a row
  // uses follows from its type:
  //   Value      the one sample of an unlabelled counter or gauge;
  //   Histogram  the one sample of a histogram;
  //   Series     labelled samples of a counter or gauge (per level, per
  //              stall state).
  using Value = double (*)(const storage::Statistics&);
  using Histogram =
      const storage::HistogramSnapshot& (*)(const storage::Statistics&);
  using Series =
      std::vector<std::pair<Labels, double>> (*)(const storage::Statistics&);

  std::string_view name;        // Prometheus conventions: _total for counters.
  std::string_view help;        // One line.
  prometheus::MetricType type;  // Counter, Gauge or Histogram.
  std::variant<Value, Histogram, Series> get;
};

// Every engine metric family, in exposition order.
std::span<const EngineMetric> EngineMetrics();

// The families of one snapshot: one per EngineMetrics() row. Pure;
// thread-safe.
std::vector<prometheus::MetricFamily> EngineFamilies(
    const storage::Statistics& stats);

// On every scrape, takes a Statistics snapshot of the database `read_db`
// pins (db->GetStatistics(); it takes the DB mutex briefly) and returns
// EngineFamilies of it; no families while read_db has no database (a
// replica's sink is closing it).
//
// Thread safety: Collect may run on any thread, concurrently.
// Ownership: whatever `read_db` captures must outlive this collector's
// registration (MetricsServer stops serving before its owner goes).
class EngineCollector final : public prometheus::Collectable {
 public:
  explicit EngineCollector(DbReader read_db) : read_db_(std::move(read_db)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::optional<storage::Statistics> stats;
    read_db_([&](storage::DB* db) {
      if (db != nullptr) stats = db->GetStatistics();
    });
    if (!stats.has_value()) return {};
    return EngineFamilies(*stats);
  }

 private:
  const DbReader read_db_;
};

}  // namespace strata::server::metrics

#endif  // STRATA_SERVER_METRICS_ENGINE_COLLECTOR_H_
