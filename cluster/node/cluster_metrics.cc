#include "cluster/node/cluster_metrics.h"

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/metrics/families.h"
#include "server/metrics/rpc_metrics.h"

namespace strata::cluster {

namespace {

using server::metrics::AddCounter;
using server::metrics::AddGauge;
using server::metrics::CounterFamily;
using server::metrics::GaugeFamily;
using server::metrics::MakeFamily;

class ClusterCollector final : public prometheus::Collectable {
 public:
  explicit ClusterCollector(const ClusterNode* node) : node_(node) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    const ClusterNode::Stats s = node_->GetStats();
    std::vector<prometheus::MetricFamily> out;
    prometheus::MetricFamily role =
        MakeFamily("strata_cluster_role",
                   "This node's role for range 0 (1 for the role it has).",
                   prometheus::MetricType::Gauge);
    AddGauge(&role, s.primary ? 1 : 0, {{"range", "0"}, {"role", "primary"}});
    AddGauge(&role, s.primary ? 0 : 1, {{"range", "0"}, {"role", "replica"}});
    out.push_back(std::move(role));
    out.push_back(GaugeFamily("strata_cluster_epoch",
                              "Epoch of range 0 this node took its role at.",
                              static_cast<double>(s.epoch)));
    out.push_back(GaugeFamily(
        "strata_cluster_in_sync_replicas",
        "Primary: members of range 0's in-sync set the writes wait for, "
        "itself included (0 on a replica).",
        static_cast<double>(s.in_sync_size)));
    out.push_back(GaugeFamily(
        "strata_cluster_replication_lag_revisions",
        "Primary: revisions committed but not yet acknowledged by the most "
        "lagging in-sync replica.",
        static_cast<double>(s.lag_revisions)));
    out.push_back(GaugeFamily(
        "strata_cluster_replication_lag_seconds",
        "Primary: seconds since the most lagging in-sync replica was last "
        "caught up (0 if all are).",
        s.lag_seconds));
    out.push_back(CounterFamily(
        "strata_cluster_fenced_writes_total",
        "Writes refused because this primary was fenced or its lease had "
        "run out.",
        static_cast<double>(s.fenced_writes)));
    out.push_back(CounterFamily(
        "strata_cluster_failovers_total",
        "Primary changes written by this node's controller.",
        static_cast<double>(s.controller.failovers)));
    out.push_back(CounterFamily(
        "strata_cluster_controller_terms_total",
        "Times this node became the cluster's controller.",
        static_cast<double>(s.controller.terms_won)));
    out.push_back(CounterFamily(
        "strata_cluster_controller_lost_races_total",
        "Range updates by this node's controller that lost a CAS race.",
        static_cast<double>(s.controller.lost_races)));
    out.push_back(GaugeFamily(
        "strata_cluster_stranded_ranges",
        "Ranges without a live in-sync replica to promote, at this node's "
        "controller's last reconcile.",
        static_cast<double>(s.controller.stranded_ranges)));
    prometheus::MetricFamily forwarded = MakeFamily(
        "strata_cluster_forwarded_requests_total",
        "Calls this node forwarded to the primary that ended, by method "
        "(strata.v1.KV's, else other) and the status code the client got.",
        prometheus::MetricType::Counter);
    if (node_->forwarding() != nullptr) {
      for (const ForwardingService::ForwardedCount& c :
           node_->forwarding()->ForwardedCounts()) {
        AddCounter(&forwarded, static_cast<double>(c.count),
                   {{"method", c.method},
                    {"code", std::string(server::metrics::GrpcCodeName(
                                 c.code))}});
      }
    }
    out.push_back(std::move(forwarded));
    return out;
  }

 private:
  const ClusterNode* const node_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeClusterCollector(
    const ClusterNode* node) {
  return std::make_shared<ClusterCollector>(node);
}

server::metrics::EngineSource ClusterEngineSource(const ClusterNode* node) {
  return server::metrics::EngineSource(
      [node](absl::FunctionRef<void(storage::DB*)> read) {
        node->ReadDb(read);
      },
      node->data_dir());
}

}  // namespace strata::cluster
