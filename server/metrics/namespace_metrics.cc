#include "server/metrics/namespace_metrics.h"

#include <map>
#include <utility>

#include "server/metrics/families.h"
#include "server/metrics/rpc_metrics.h"
#include "server/namespace_catalog.h"
#include "spdlog/spdlog.h"

namespace strata::server::metrics {

NamespaceMetrics::NamespaceMetrics(DbReader read_db,
                                   std::vector<std::string> methods,
                                   size_t limit)
    : read_db_(std::move(read_db)),
      methods_(std::move(methods)),
      limit_(limit),
      counts_(new std::atomic<uint64_t>[(limit + 2) * methods_.size() *
                                        kNumCodes]()) {
  names_ = {std::string(kDefaultLabel), std::string(kOtherLabel)};
}

size_t NamespaceMetrics::SlotOf(std::string_view ns, bool exists) const {
  const absl::string_view key(ns.data(), ns.size());
  {
    absl::ReaderMutexLock l(&mu_);
    auto it = slots_.find(key);
    if (it != slots_.end()) return it->second;
    if (!exists || names_.size() >= limit_ + 2 || ns == kOtherLabel) {
      return kOtherSlot;
    }
  }
  absl::MutexLock l(&mu_);
  auto it = slots_.find(key);
  if (it != slots_.end()) return it->second;
  if (names_.size() >= limit_ + 2) return kOtherSlot;
  const size_t slot = names_.size();
  names_.emplace_back(ns);
  slots_.emplace(std::string(ns), slot);
  return slot;
}

void NamespaceMetrics::OnRequestEnd(std::string_view ns, size_t method,
                                    grpc::StatusCode code) {
  if (method >= methods_.size()) method = methods_.size() - 1;
  int c = static_cast<int>(code);
  if (c < 0 || c >= static_cast<int>(kNumCodes)) {
    c = static_cast<int>(grpc::StatusCode::UNKNOWN);
  }
  // Only an OK answer proves the namespace exists.
  const size_t slot = ns.empty() ? kDefaultSlot
                                 : SlotOf(ns, code == grpc::StatusCode::OK);
  Counter(slot, method, static_cast<size_t>(c))
      .fetch_add(1, std::memory_order_relaxed);
}

std::vector<prometheus::MetricFamily> NamespaceMetrics::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;

  // Gauges first: listing the catalog may give namespaces their slots.
  prometheus::MetricFamily keys = MakeFamily(
      "strata_namespace_keys",
      "Live keys of a namespace (its usage record); namespace=\"other\" sums "
      "the namespaces beyond --metrics_namespace_limit.",
      MetricType::Gauge);
  prometheus::MetricFamily bytes = MakeFamily(
      "strata_namespace_bytes",
      "User key + value bytes of a namespace's live keys (its usage record); "
      "namespace=\"other\" sums the rest.",
      MetricType::Gauge);
  std::map<size_t, NamespaceUsage> usage;  // By slot.
  usage[kOtherSlot] = NamespaceUsage();
  read_db_([&](storage::DB* db) {
    if (db == nullptr) return;
    NamespaceCatalog catalog(db);
    absl::Status s = catalog.Load();
    for (const auto& [name, entry] : s.ok() ? catalog.List("")
                                            : decltype(catalog.List(""))()) {
      absl::StatusOr<NamespaceUsage> u = catalog.ReadUsage(entry.id);
      if (!u.ok()) {
        s = u.status();
        break;
      }
      NamespaceUsage& sum = usage[SlotOf(name, /*exists=*/true)];
      sum.keys += u->keys;
      sum.bytes += u->bytes;
    }
    if (!s.ok()) {
      spdlog::warn("metrics: cannot read the namespace catalog: {}",
                   s.ToString());
    }
  });
  std::vector<std::string> names;
  {
    absl::ReaderMutexLock l(&mu_);
    names = names_;
  }
  for (const auto& [slot, u] : usage) {
    AddGauge(&keys, static_cast<double>(u.keys), {{"namespace", names[slot]}});
    AddGauge(&bytes, static_cast<double>(u.bytes),
             {{"namespace", names[slot]}});
  }

  prometheus::MetricFamily requests = MakeFamily(
      "strata_namespace_requests_total",
      "RPCs naming a namespace, by namespace, method and status code "
      "(the first --metrics_namespace_limit namespaces seen; the rest as "
      "namespace=\"other\").",
      MetricType::Counter);
  for (size_t slot = 0; slot < names.size(); ++slot) {
    for (size_t m = 0; m < methods_.size(); ++m) {
      for (size_t c = 0; c < kNumCodes; ++c) {
        const uint64_t n = Counter(slot, m, c).load(std::memory_order_relaxed);
        if (n == 0) continue;
        AddCounter(&requests, static_cast<double>(n),
                   {{"namespace", names[slot]},
                    {"method", methods_[m]},
                    {"code", std::string(GrpcCodeName(
                                 static_cast<grpc::StatusCode>(c)))}});
      }
    }
  }
  out.push_back(std::move(requests));
  out.push_back(std::move(keys));
  out.push_back(std::move(bytes));
  return out;
}

}  // namespace strata::server::metrics
