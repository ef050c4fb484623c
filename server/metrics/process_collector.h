#ifndef STRATA_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define STRATA_SERVER_METRICS_PROCESS_COLLECTOR_H_

// Process metrics read from /proc on every scrape, plus strata_build_info.
// The process_* names are the standard ones every Prometheus client library
// exports (so stock dashboards and alerts work); only build_info is ours.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace strata::server::metrics {

// What strata_build_info reports.
struct BuildInfo {
  std::string version;  // e.g. "0.1.0" (STRATA_VERSION).
  std::string git_sha;  // e.g. "09fe8f9a1b2c" (STRATA_GIT_SHA).
};

// Readings of this process from /proc (Linux). Each is nullopt if its file
// could not be read or parsed.
struct ProcessStats {
  std::optional<double> start_time_seconds;  // Unix time the process started.
  std::optional<double> cpu_seconds;         // User + system CPU time.
  std::optional<int64_t> open_fds;           // Entries of /proc/self/fd.
  std::optional<int64_t> max_fds;            // RLIMIT_NOFILE soft limit.
  std::optional<int64_t> resident_bytes;     // RSS (/proc/self/statm).
  std::optional<int64_t> virtual_bytes;      // VSZ (/proc/self/statm).
};

// Reads the current values. Costs a few small file reads and one
// directory listing; thread-safe.
ProcessStats ReadProcessStats();

// Exports:
//   strata_build_info{version,git_sha}  gauge, always 1
//   process_start_time_seconds          gauge
//   process_cpu_seconds_total           counter
//   process_open_fds, process_max_fds   gauges
//   process_resident_memory_bytes       gauge
//   process_virtual_memory_bytes        gauge
// A process_* family whose reading failed is left out of that scrape.
//
// Thread safety: Collect may run concurrently on any thread.
class ProcessCollector final : public prometheus::Collectable {
 public:
  explicit ProcessCollector(BuildInfo build);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const BuildInfo build_;
  // Read once: it does not change.
  const std::optional<double> start_time_seconds_;
};

}  // namespace strata::server::metrics

#endif  // STRATA_SERVER_METRICS_PROCESS_COLLECTOR_H_
