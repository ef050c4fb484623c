#include "server/metrics/families.h"

#include <limits>
#include <utility>

namespace strata::server::metrics {

prometheus::MetricFamily MakeFamily(std::string name, std::string help,
                                    prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void AddCounter(prometheus::MetricFamily* family, double value,
                Labels labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  family->metric.push_back(std::move(m));
}

void AddGauge(prometheus::MetricFamily* family, double value, Labels labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  family->metric.push_back(std::move(m));
}

void AddHistogram(prometheus::MetricFamily* family,
                  const std::vector<double>& bounds,
                  const std::vector<uint64_t>& counts, double sum,
                  uint64_t fallback_count, Labels labels) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  if (counts.size() == bounds.size() + 1) {
    m.histogram.bucket.reserve(counts.size());
    for (size_t i = 0; i < bounds.size(); ++i) {
      cumulative += counts[i];
      m.histogram.bucket.push_back({cumulative, bounds[i]});
    }
    cumulative += counts.back();
  } else {
    cumulative = fallback_count;
  }
  m.histogram.bucket.push_back(
      {cumulative, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum;
  family->metric.push_back(std::move(m));
}

prometheus::MetricFamily CounterFamily(std::string name, std::string help,
                                       double value) {
  prometheus::MetricFamily f = MakeFamily(std::move(name), std::move(help),
                                          prometheus::MetricType::Counter);
  AddCounter(&f, value);
  return f;
}

prometheus::MetricFamily GaugeFamily(std::string name, std::string help,
                                     double value) {
  prometheus::MetricFamily f = MakeFamily(std::move(name), std::move(help),
                                          prometheus::MetricType::Gauge);
  AddGauge(&f, value);
  return f;
}

}  // namespace strata::server::metrics
