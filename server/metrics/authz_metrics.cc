// The authorization metrics of RpcMetrics (server/authz.h,
// docs/metrics.md "Authorization").

#include <string>

#include "server/authz_policy.h"
#include "server/metrics/families.h"
#include "server/metrics/rpc_metrics.h"

namespace strata::server::metrics {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;
constexpr Permission kPermissions[] = {Permission::kRead, Permission::kWrite,
                                       Permission::kAdmin};

}  // namespace

void RpcMetrics::OnAuthzDenied(std::string_view method,
                               std::string_view permission) {
  const size_t slot = static_cast<size_t>(Find(method) - stats_.get());
  for (Permission p : kPermissions) {
    if (PermissionName(p) == permission) {
      authz_denials_[slot][static_cast<size_t>(p)].fetch_add(1, kRelaxed);
      return;
    }
  }
}

void RpcMetrics::OnAuthzPolicyReload(bool ok) {
  (ok ? authz_reloads_ok_ : authz_reloads_error_).fetch_add(1, kRelaxed);
}

void RpcMetrics::CollectAuthz(
    std::vector<prometheus::MetricFamily>* out) const {
  prometheus::MetricFamily denials = MakeFamily(
      "strata_authz_denials_total",
      "KV RPCs refused PERMISSION_DENIED by the --authz_policy, by method "
      "and the permission missing (series appear with the first denial).",
      prometheus::MetricType::Counter);
  for (size_t slot = 0; slot <= num_methods_; ++slot) {
    for (Permission p : kPermissions) {
      const uint64_t n =
          authz_denials_[slot][static_cast<size_t>(p)].load(kRelaxed);
      if (n == 0) continue;  // 25 methods x 3: only what happened.
      AddCounter(&denials, static_cast<double>(n),
                 {{"method", stats_[slot].name},
                  {"permission", std::string(PermissionName(p))}});
    }
  }
  out->push_back(std::move(denials));
  prometheus::MetricFamily reloads = MakeFamily(
      "strata_authz_policy_reloads_total",
      "Changes of the --authz_policy file seen by the periodic re-read, by "
      "result: ok (the new policy is in force), error (invalid or "
      "unreadable; the previous policy stays in force).",
      prometheus::MetricType::Counter);
  AddCounter(&reloads, static_cast<double>(authz_reloads_ok_.load(kRelaxed)),
             {{"result", "ok"}});
  AddCounter(&reloads,
             static_cast<double>(authz_reloads_error_.load(kRelaxed)),
             {{"result", "error"}});
  out->push_back(std::move(reloads));
}

}  // namespace strata::server::metrics
