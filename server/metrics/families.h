#ifndef STRATA_SERVER_METRICS_FAMILIES_H_
#define STRATA_SERVER_METRICS_FAMILIES_H_

// Small builders for prometheus::MetricFamily values, used by the
// collectors that export counters owned elsewhere (the engine's atomics, our
// own RPC atomics, /proc). prometheus-cpp serializes what these build; we
// never write the exposition format ourselves.
//
// Thread safety: pure functions over their arguments.

#include <cstdint>
#include <string>
#include <vector>

#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace strata::server::metrics {

using Labels = std::vector<prometheus::ClientMetric::Label>;

// An empty family. `name` follows Prometheus conventions (counters end in
// _total, base units in the name); `help` is one line.
prometheus::MetricFamily MakeFamily(std::string name, std::string help,
                                    prometheus::MetricType type);

// Appends one sample to a Counter / Gauge family.
void AddCounter(prometheus::MetricFamily* family, double value,
                Labels labels = {});
void AddGauge(prometheus::MetricFamily* family, double value,
              Labels labels = {});

// Appends one histogram sample. `counts` are per bucket, NOT cumulative:
// counts[i] counts observations in (bounds[i-1], bounds[i]], and
// counts[bounds.size()] those above the last bound (the shape of
// storage::HistogramSnapshot). The +Inf bucket and _count are the total of
// `counts`, so the exported histogram is self-consistent even if the
// counters were read while being updated. If counts.size() !=
// bounds.size() + 1 (a malformed snapshot) only the +Inf bucket is
// exported, with `fallback_count`.
void AddHistogram(prometheus::MetricFamily* family,
                  const std::vector<double>& bounds,
                  const std::vector<uint64_t>& counts, double sum,
                  uint64_t fallback_count, Labels labels = {});

// One-family shortcuts for the common single-sample case.
prometheus::MetricFamily CounterFamily(std::string name, std::string help,
                                       double value);
prometheus::MetricFamily GaugeFamily(std::string name, std::string help,
                                     double value);

}  // namespace strata::server::metrics

#endif  // STRATA_SERVER_METRICS_FAMILIES_H_
