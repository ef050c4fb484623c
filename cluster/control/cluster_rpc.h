#ifndef STRATA_CLUSTER_CONTROL_CLUSTER_RPC_H_
#define STRATA_CLUSTER_CONTROL_CLUSTER_RPC_H_

// strata.v1.Cluster's answers (proto/strata/v1/cluster.proto) from the
// control plane's types. Plain functions, no gRPC types: the server's
// handler (the wiring round) reads the watched map and calls these.
//
// Thread safety: pure functions.

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "cluster/control/cluster_store.h"
#include "cluster/control/range_map.h"
#include "strata/v1/cluster.pb.h"

namespace strata::cluster {

// The range map with each primary's address. `members` and `live` map node
// ids to addresses (a member's address wins over a live key's); a node in
// neither has an empty address.
void FillGetRangeMapResponse(const RangeMap& map,
                             const std::map<NodeId, std::string>& members,
                             const std::map<NodeId, std::string>& live,
                             v1::GetRangeMapResponse* response);

// Everything `strata cluster status` shows, read from etcd now. Errors as
// ClusterStore's (NotFound if the cluster is not initialized). The
// controller fields are empty if no controller leads.
absl::StatusOr<v1::GetClusterStatusResponse> ReadClusterStatus(
    ClusterStore& store);

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_CONTROL_CLUSTER_RPC_H_
