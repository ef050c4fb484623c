#ifndef STRATA_CLUSTER_NODE_CLUSTER_METRICS_H_
#define STRATA_CLUSTER_NODE_CLUSTER_METRICS_H_

// The cluster node's Prometheus families (docs/metrics.md, "Cluster"),
// gathered on scrape from ClusterNode::GetStats. Exported only in cluster
// mode (strata-server --cluster_etcd).
//
// Thread safety: Collect is thread-safe. `node` must outlive the
// collector's registration (the metrics server is stopped first).

#include <memory>

#include "cluster/node/cluster_node.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace strata::cluster {

std::shared_ptr<prometheus::Collectable> MakeClusterCollector(
    const ClusterNode* node);

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_NODE_CLUSTER_METRICS_H_
