#ifndef STRATA_CLUSTER_NODE_CLUSTER_METRICS_H_
#define STRATA_CLUSTER_NODE_CLUSTER_METRICS_H_

// The cluster node's Prometheus families (docs/metrics.md, "Cluster"),
// gathered on scrape from ClusterNode::GetStats. Exported only in cluster
// mode (strata-server --cluster_etcd).
//
// Thread safety: Collect (and ClusterEngineSource's reader) is
// thread-safe. `node` must outlive the collector's registration (the
// metrics server is stopped first).

#include <memory>

#include "cluster/node/cluster_node.h"
#include "server/metrics/engine_source.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace strata::cluster {

std::shared_ptr<prometheus::Collectable> MakeClusterCollector(
    const ClusterNode* node);

// The engine source of a node whose metrics server has no fixed database
// (a replica: its sink replaces the database on a re-sync): every scrape
// reads the range's current database through node->ReadDb, and
// strata_disk_free_bytes from the volume of the node's --data_dir (a
// replica has no write gate to report it). `node` must outlive the
// metrics server, which must be destroyed before node->Stop().
server::metrics::EngineSource ClusterEngineSource(const ClusterNode* node);

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_NODE_CLUSTER_METRICS_H_
