#ifndef STRATA_SERVER_METRICS_RPC_METRICS_H_
#define STRATA_SERVER_METRICS_RPC_METRICS_H_

// Per-RPC metrics: an RpcObserver that the call templates invoke for every
// KV RPC, backed by plain atomics, and a prometheus::Collectable that turns
// them into the strata_rpc_* families when /metrics is scraped.
//
// Why not prometheus::Family<Counter/Histogram>: prometheus-cpp 1.0's
// Histogram::Observe takes a mutex, and every RPC of every completion-queue
// thread would serialize on it. Here every method has a fixed slot (found by
// comparing the method name against a handful of short names: no map, no
// string building) and an RPC costs seven relaxed atomic adds (one at the
// start, six at the end).

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grpcpp/support/status_code_enum.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/rpc_observer.h"

namespace strata::server::metrics {

// Upper bounds (seconds) of strata_rpc_duration_seconds: 50 µs .. 10 s.
inline constexpr std::array<double, 17> kRpcDurationBounds = {
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
    50e-3, 100e-3, 250e-3, 500e-3, 1,    2.5,    5,    10};

// Upper bounds (seconds) of strata_expiry_lag_seconds: 1 ms .. 60 s.
inline constexpr std::array<double, 14> kExpiryLagBounds = {
    1e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
    1,    2.5,  5,     10,    30,    60};

// The gRPC code name of `code` ("OK", "INVALID_ARGUMENT", ...), as in
// grpc::StatusCode; "UNKNOWN" for a value outside 0..16.
std::string_view GrpcCodeName(grpc::StatusCode code);

// Counts every KV RPC by method and status code, its latency, its message
// bytes, and the RPCs in flight.
//
// Exported families (docs/metrics.md):
//   strata_rpc_requests_total{method,code}          counter
//   strata_rpc_duration_seconds{method}             histogram
//   strata_rpc_requests_in_flight{method}           gauge
//   strata_rpc_received_bytes_total{method}         counter
//   strata_rpc_sent_bytes_total{method}             counter
//   strata_get_coalesced_total                      counter
//   strata_watchers                                 gauge
//   strata_watchers_catching_up                     gauge
//   strata_watch_events_total                       counter
//   strata_watch_disk_reads_total                   counter
//   strata_watch_compacted_total                    counter
//   strata_leases                                   gauge   (expiry)
//   strata_ttl_keys                                 gauge
//   strata_expired_keys_total                       counter
//   strata_expiry_lag_seconds                       histogram
//   strata_disk_free_bytes                          gauge   (write gate)
//   strata_write_refusals_total{reason}             counter
//   strata_authz_denials_total{method,permission}   counter (authz)
//   strata_authz_policy_reloads_total{result}       counter
// requests_total has a code="OK" sample per method from the start (so rates
// exist before the first request); other codes appear once they occur.
//
// Thread safety: OnRpcStart/OnRpcEnd are lock-free and may be called from
// any number of threads; Collect may run concurrently with them (each value
// is read atomically; a scrape may see an RPC in one family and not yet in
// another).
class NamespaceMetrics;

class RpcMetrics final : public RpcObserver, public prometheus::Collectable {
 public:
  // `methods`: the method names the server reports ("Get", "Put", ...).
  // Any other name is counted under method="other".
  explicit RpcMetrics(
      const std::vector<std::string>& methods = {
          "Get", "Put", "Delete", "Scan", "Write", "Watch", "Compact",
          "BatchGet", "DeleteRange", "Txn", "Commit", "Increment",
          "JsonGet", "JsonUpdate", "LeaseGrant", "LeaseRevoke",
          "LeaseKeepAlive", "LeaseTimeToLive", "LeaseLeases", "Backup",
          // Namespaces (docs/namespaces.md).
          "CreateNamespace", "DeleteNamespace", "ListNamespaces",
          "UpdateNamespace"});
  ~RpcMetrics() override;
  RpcMetrics(const RpcMetrics&) = delete;
  RpcMetrics& operator=(const RpcMetrics&) = delete;

  // RpcObserver.
  void OnRpcStart(std::string_view method) override;
  void OnRpcEnd(std::string_view method, grpc::StatusCode code,
                double seconds, size_t request_bytes,
                size_t response_bytes) override;
  // Forwarded to the NamespaceMetrics set by SetNamespaceMetrics, if any.
  void OnNamespaceRpcEnd(std::string_view ns, std::string_view method,
                         grpc::StatusCode code) override;
  void OnGetCoalesced() override;
  void OnWatchOpened(int delta) override;
  void OnWatchEvents(uint64_t n) override;
  void OnWatchCatchingUp(int delta) override;
  void OnWatchDiskRead() override;
  void OnWatchCompacted() override;
  void OnExpiryGauges(int64_t leases, int64_t ttl_keys) override;
  void OnKeysExpired(uint64_t keys, double lag_seconds) override;
  void OnBackupStarted() override;
  void OnBackupBytes(uint64_t n) override;
  void OnBackupFinished(bool ok, double seconds) override;
  void OnDiskFree(uint64_t free_bytes) override;
  void OnWriteRefused(std::string_view reason) override;
  // Authorization (authz_metrics.cc).
  void OnAuthzDenied(std::string_view method,
                     std::string_view permission) override;
  void OnAuthzPolicyReload(bool ok) override;

  // The method labels by number: the known methods, then "other"
  // (NamespaceMetrics numbers its methods the same way).
  std::vector<std::string> MethodLabels() const;
  // Makes every Collect read strata_disk_free_bytes from the volume of
  // `dir` (server::FreeDiskBytes, a statvfs on the collecting thread)
  // instead of reporting the last OnDiskFree: for a node without a
  // WriteGate (a cluster replica). If statvfs fails, the last value read
  // stays (a warning is logged). REQUIRES: before the first Collect.
  void ReadDiskFreeAtScrape(std::string dir) {
    disk_free_dir_ = std::move(dir);
  }
  // Sends OnNamespaceRpcEnd to `ns` (not owned; must outlive this object).
  // REQUIRES: before the server reports its first RPC.
  void SetNamespaceMetrics(NamespaceMetrics* ns) { namespaces_ = ns; }

  // prometheus::Collectable: the families above.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  static constexpr size_t kNumCodes = 17;  // grpc::StatusCode 0..16.
  static constexpr size_t kNumBounds = kRpcDurationBounds.size();

  // One method's counters; own cache line(s) so methods do not contend.
  struct alignas(64) MethodStats {
    std::string name;
    std::atomic<int64_t> in_flight{0};
    std::array<std::atomic<uint64_t>, kNumCodes> requests{};
    // Per bucket (not cumulative); the last counts > 10 s.
    std::array<std::atomic<uint64_t>, kNumBounds + 1> duration_buckets{};
    std::atomic<uint64_t> duration_nanos{0};
    std::atomic<uint64_t> received_bytes{0};
    std::atomic<uint64_t> sent_bytes{0};
  };

  MethodStats* Find(std::string_view method);

  // Fixed after construction: the known methods, then "other".
  const size_t num_methods_;
  const std::unique_ptr<MethodStats[]> stats_;
  NamespaceMetrics* namespaces_ = nullptr;
  alignas(64) std::atomic<uint64_t> coalesced_gets_{0};
  alignas(64) std::atomic<int64_t> watchers_{0};
  std::atomic<int64_t> watchers_catching_up_{0};
  std::atomic<uint64_t> watch_events_{0};
  std::atomic<uint64_t> watch_disk_reads_{0};
  std::atomic<uint64_t> watch_compacted_{0};
  // Expiry: appended to Collect by CollectExpiry.
  void CollectExpiry(std::vector<prometheus::MetricFamily>* out) const;
  // Full disk: appended to Collect by CollectDisk. Refusal reasons in the
  // order of kWriteRefusalReasons (rpc_metrics.cc).
  void CollectDisk(std::vector<prometheus::MetricFamily>* out) const;
  // Written by OnDiskFree, or by CollectDisk if disk_free_dir_ is set.
  alignas(64) mutable std::atomic<uint64_t> disk_free_bytes_{0};
  std::string disk_free_dir_;  // Fixed before the first Collect.
  std::array<std::atomic<uint64_t>, 4> write_refusals_{};
  alignas(64) std::atomic<int64_t> leases_{0};
  std::atomic<int64_t> ttl_keys_{0};
  std::atomic<uint64_t> expired_keys_{0};
  std::array<std::atomic<uint64_t>, kExpiryLagBounds.size() + 1> lag_buckets_{};
  std::atomic<uint64_t> lag_micros_{0};
  // Backups: appended to Collect by CollectBackups.
  void CollectBackups(std::vector<prometheus::MetricFamily>* out) const;
  alignas(64) std::atomic<int64_t> backups_running_{0};
  std::atomic<uint64_t> backup_sent_bytes_{0};
  std::atomic<uint64_t> backups_ok_{0};
  std::atomic<uint64_t> backups_failed_{0};
  // Unix time in milliseconds of the last successful backup's end (0:
  // none yet), and its duration in microseconds.
  std::atomic<uint64_t> last_backup_unix_ms_{0};
  std::atomic<uint64_t> last_backup_micros_{0};
  // Authorization (authz_metrics.cc): denials per method slot (as stats_)
  // and permission (read, write, admin); policy reloads by result.
  void CollectAuthz(std::vector<prometheus::MetricFamily>* out) const;
  const std::unique_ptr<std::array<std::atomic<uint64_t>, 3>[]>
      authz_denials_;
  alignas(64) std::atomic<uint64_t> authz_reloads_ok_{0};
  std::atomic<uint64_t> authz_reloads_error_{0};
};

}  // namespace strata::server::metrics

#endif  // STRATA_SERVER_METRICS_RPC_METRICS_H_
