#include "cluster/control/cluster_rpc.h"

#include <set>

#include "common/status_macros.h"

namespace strata::cluster {
namespace {

void FillRange(const RangeDescriptor& r, const std::string& primary_address,
               v1::Range* out) {
  out->set_id(r.id);
  out->set_start_key(r.start);
  out->set_end_key(r.end);
  out->set_epoch(r.epoch);
  out->set_primary(r.primary);
  out->set_primary_address(primary_address);
  for (const NodeId& n : r.replicas) out->add_replicas(n);
  for (const NodeId& n : r.in_sync) out->add_in_sync(n);
}

std::string AddressOf(const NodeId& id,
                      const std::map<NodeId, std::string>& members,
                      const std::map<NodeId, std::string>& live) {
  if (auto it = members.find(id); it != members.end()) return it->second;
  if (auto it = live.find(id); it != live.end()) return it->second;
  return "";
}

// Every node in `ids`, with what is known of it.
template <typename Nodes>
void FillNodes(const std::set<NodeId>& ids,
               const std::map<NodeId, std::string>& members,
               const std::map<NodeId, std::string>& live, Nodes* out) {
  for (const NodeId& id : ids) {
    v1::ClusterNode* n = out->Add();
    n->set_id(id);
    n->set_address(AddressOf(id, members, live));
    n->set_member(members.contains(id));
    n->set_live(live.contains(id));
  }
}

}  // namespace

void FillGetRangeMapResponse(const RangeMap& map,
                             const std::map<NodeId, std::string>& members,
                             const std::map<NodeId, std::string>& live,
                             v1::GetRangeMapResponse* response) {
  response->Clear();
  response->set_etcd_revision(map.revision());
  std::set<NodeId> named;
  for (const RangeDescriptor& r : map.ranges()) {
    FillRange(r, AddressOf(r.primary, members, live), response->add_ranges());
    named.insert(r.replicas.begin(), r.replicas.end());
  }
  FillNodes(named, members, live, response->mutable_nodes());
}

absl::StatusOr<v1::GetClusterStatusResponse> ReadClusterStatus(
    ClusterStore& store) {
  ASSIGN_OR_RETURN(const ClusterConfig config, store.ReadConfig());
  ASSIGN_OR_RETURN(const RangeMap map, store.ReadRangeMap());
  ASSIGN_OR_RETURN(const auto members, store.ListMembers());
  ASSIGN_OR_RETURN(const auto live, store.ListLiveNodes());
  v1::GetClusterStatusResponse out;
  out.set_etcd_revision(map.revision());
  std::set<NodeId> ids;
  for (const RangeDescriptor& r : map.ranges()) {
    FillRange(r, AddressOf(r.primary, members, live), out.add_ranges());
    ids.insert(r.replicas.begin(), r.replicas.end());
  }
  for (const auto& [id, address] : members) ids.insert(id);
  for (const auto& [id, address] : live) ids.insert(id);
  FillNodes(ids, members, live, out.mutable_nodes());
  absl::StatusOr<KeyValue> controller = store.Controller();
  if (controller.ok()) {
    out.set_controller(controller->value);
    out.set_controller_term(controller->create_revision);
  } else if (!absl::IsNotFound(controller.status())) {
    return controller.status();
  }
  out.set_replication_factor(static_cast<uint32_t>(config.replication_factor));
  out.set_min_in_sync(static_cast<uint32_t>(config.min_in_sync));
  return out;
}

}  // namespace strata::cluster
