#ifndef STRATA_SERVER_METRICS_NAMESPACE_METRICS_H_
#define STRATA_SERVER_METRICS_NAMESPACE_METRICS_H_

// Per-namespace metrics with bounded label cardinality (docs/metrics.md,
// "Namespaces"; --metrics_namespace_limit):
//
//   strata_namespace_requests_total{namespace,method,code}  counter
//   strata_namespace_keys{namespace}                         gauge
//   strata_namespace_bytes{namespace}                        gauge
//
// Which namespaces get their own series: the default namespace always
// (namespace="(default)", a value no namespace name can take); then, up to
// `limit`, named namespaces in the order this process first sees that they
// exist: a request naming it answered OK (an unknown name is NOT_FOUND or
// INVALID_ARGUMENT, so made-up names never get a series), or a scrape
// listing the catalog (in name order). Everything else is summed as
// namespace="other", and so is a namespace that is itself called "other".
// A namespace keeps its series until the server restarts, also after it
// is deleted (its gauges then leave the output; its counters stay, as
// counters must). So at most limit + 2 namespace label values exist.
//
// The gauges come from the namespaces' usage records (exact at every
// revision; docs/namespaces.md, "Quotas"), read at each scrape: one catalog
// listing and one engine read per namespace, on the scrape's thread.
//
// Thread safety: OnRequestEnd may be called from any number of threads
// (lock-free once a namespace has its slot; a reader lock for the name
// lookup); Collect may run concurrently with it.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/status_code_enum.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/metrics/engine_source.h"
#include "strata/storage/db.h"

namespace strata::server::metrics {

class NamespaceMetrics final : public prometheus::Collectable {
 public:
  // The label values of the default namespace and of the rest.
  static constexpr std::string_view kDefaultLabel = "(default)";
  static constexpr std::string_view kOtherLabel = "other";

  // `read_db` pins the database whose catalog a scrape reads, for the
  // whole catalog read (EngineSource; no database: no gauges); what it
  // captures must outlive this object's registration. `methods`: the
  // method labels, by index (as RpcMetrics numbers them; the last is
  // "other"). `limit`: named namespaces with their own series.
  NamespaceMetrics(DbReader read_db, std::vector<std::string> methods,
                   size_t limit);
  NamespaceMetrics(const NamespaceMetrics&) = delete;
  NamespaceMetrics& operator=(const NamespaceMetrics&) = delete;

  // An RPC of method number `method` (< methods.size()) naming namespace
  // `ns` ("" = the default) ended with `code`.
  void OnRequestEnd(std::string_view ns, size_t method, grpc::StatusCode code);

  // prometheus::Collectable: the three families above.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  static constexpr size_t kNumCodes = 17;  // grpc::StatusCode 0..16.
  // Slot 0: the default namespace; 1: other; 2..: named, in order given.
  static constexpr size_t kDefaultSlot = 0;
  static constexpr size_t kOtherSlot = 1;

  // The slot of named namespace `ns`; with `exists`, gives it a free slot
  // if it has none.
  size_t SlotOf(std::string_view ns, bool exists) const;
  std::atomic<uint64_t>& Counter(size_t slot, size_t method, size_t code) const {
    return counts_[(slot * methods_.size() + method) * kNumCodes + code];
  }

  const DbReader read_db_;
  const std::vector<std::string> methods_;
  const size_t limit_;
  // (limit + 2) x methods x codes request counts.
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  mutable absl::Mutex mu_;
  // Named namespace -> slot; names_[slot] is its label.
  mutable absl::flat_hash_map<std::string, size_t> slots_ ABSL_GUARDED_BY(mu_);
  mutable std::vector<std::string> names_ ABSL_GUARDED_BY(mu_);
};

}  // namespace strata::server::metrics

#endif  // STRATA_SERVER_METRICS_NAMESPACE_METRICS_H_
