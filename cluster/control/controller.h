#ifndef STRATA_CLUSTER_CONTROL_CONTROLLER_H_
#define STRATA_CLUSTER_CONTROL_CONTROLLER_H_

// The cluster controller (project issue 18, docs/cluster.md "Failover"):
// the policy that decides which node is each range's primary, and the
// operator's membership actions.
//
// Policy is pure functions over a RangeMap and the set of live nodes (easy
// to table-test); the mechanism writes their result with
// ClusterStore::UpdateRange, one Txn per range comparing the range's
// mod_revision (and, for the controller, its election term), so two
// writers never both win and a deposed controller writes nothing.
//
// The failover rule: a range whose primary is not live gets as primary the
// first node of its replica list that is in sync, live and not the old
// primary; its epoch grows by one and the old primary leaves the in-sync
// set (it may hold a tail no other replica acknowledged; it rejoins
// through the data plane's catch-up). If no such node exists the range is
// left as it is, without a serving primary, and counted as stranded: an
// out-of-sync replica is never promoted, since it may lack acknowledged
// writes. It gets a primary again when an in-sync replica comes back.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cluster/control/cluster_store.h"
#include "cluster/control/range_map.h"
#include "cluster/etcd_client.h"

namespace strata::cluster {

// What a policy function wants written.
struct RangePlan {
  // New descriptors (mod_revision = the read one, for the CAS), key order.
  std::vector<RangeDescriptor> updates;
  // Ranges the policy could not fix (no eligible node), key order.
  std::vector<RangeId> stuck;
};

// Failover: for every range whose primary is not in `live`, the rule above.
// Ranges whose primary is live, or in `spared` (not yet seen: the
// controller's startup grace), are untouched; `spared` never makes a node
// eligible for promotion. Deterministic: the same inputs give the same plan.
RangePlan PlanFailover(const RangeMap& map, const std::set<NodeId>& live,
                       const std::set<NodeId>& spared = {});

// Drain: for every range whose primary is `node`, the first replica (in
// list order) that is in sync, live and not `node` becomes primary, epoch
// + 1 (Drain() writes it only if that node is still live at commit). The old primary stays in sync (it is alive and has every
// acknowledged write; the data plane truncates a tail the new epoch did
// not keep). Ranges with no such replica are `stuck`.
RangePlan PlanDrain(const RangeMap& map, const NodeId& node,
                    const std::set<NodeId>& live);

// Removing member `node`: drops it from every range's replicas and in_sync
// (epochs unchanged: no primary changes). FailedPrecondition, naming the
// range, if it is still a range's primary (drain it first) or if dropping
// it would leave a range's in-sync set below config.min_in_sync.
absl::StatusOr<RangePlan> PlanRemoveMember(const RangeMap& map,
                                           const NodeId& node,
                                           const ClusterConfig& config);

// Adding member `node`: appends it as a replica, not in sync, to every
// range with fewer than config.replication_factor replicas that it does
// not hold (the data plane copies the range and asks to join the in-sync
// set when it has caught up). A fully replicated range is left alone:
// moving a replica there is rebalancing, which needs a
// add-then-remove protocol (docs/cluster.md).
RangePlan PlanAddMember(const RangeMap& map, const NodeId& node,
                        const ClusterConfig& config);

// The operator's actions (`strata cluster ...`): read, plan, write each
// update with its CAS; on Aborted (someone else changed a range first)
// re-read and re-plan, at most `kOperatorAttempts` times, then Aborted.
//
// Blocking: each attempt is two reads plus one Txn per range its plan
// changes (R, at most the number of ranges), each etcd call bounded by
// EtcdClientOptions::call_timeout; so an action makes at most
// kOperatorAttempts * (2 + R) etcd calls, plus one for members/<id> in
// AddMember and RemoveMember.
//
// Not atomic: ranges are written one Txn each, so after an error (Aborted
// after too many races included) some ranges may already be updated; each
// such range is valid on its own. Re-running the action is safe: it
// re-plans from the current map and leaves done ranges alone (a
// RemoveMember whose earlier run already deleted members/<id> and every
// replica then answers NotFound).
inline constexpr int kOperatorAttempts = 5;

struct DrainResult {
  std::vector<RangeId> moved;  // Ranges whose primary moved off the node.
  std::vector<RangeId> stuck;  // Ranges it still leads: no live in-sync
                               // replica to take over.
};
// Errors: the store's, Aborted after too many lost races.
absl::StatusOr<DrainResult> Drain(ClusterStore& store, const NodeId& node);
// Records the member, then places it (PlanAddMember). InvalidArgument for
// a bad id or address.
absl::StatusOr<std::vector<RangeId>> AddMember(ClusterStore& store,
                                               const Member& member);
// Updates the ranges (PlanRemoveMember), then deletes members/<id>.
// FailedPrecondition as PlanRemoveMember; NotFound if it is no member and
// holds no replica.
absl::Status RemoveMember(ClusterStore& store, const NodeId& node);

struct ControllerOptions {
  // How long one Campaign call blocks before checking for Stop().
  absl::Duration campaign_slice = absl::Milliseconds(200);
  // While leading, re-plan at least this often even without a change in
  // etcd (a safety net for a missed event or a failed write).
  absl::Duration reconcile_interval = absl::Seconds(1);
  // A primary this controller has seen live since Start() (every
  // candidate watches the liveness keys, leading or not) is failed over as
  // soon as its liveness key is gone. One it has never seen live (the
  // cluster is starting and nodes are still registering, or it died before
  // this controller started) is failed over only once the controller has
  // run this long: long enough for a starting node to register.
  absl::Duration startup_grace = absl::Seconds(5);
};

// Counters a controller keeps (the wiring round exports them as metrics).
struct ControllerStats {
  int64_t terms_won = 0;       // Times this node became the controller.
  int64_t failovers = 0;       // Primary changes this controller wrote.
  int64_t stranded_ranges = 0; // Ranges without a live in-sync replica at
                               // the last reconcile.
  int64_t lost_races = 0;      // UpdateRange answered Aborted.
  int64_t reconciles = 0;      // Plan-and-write passes that read the map.
  int64_t watch_resyncs = 0;   // Re-reads after etcd compacted the
                               // history the watch needed.
};

// Runs on every node: campaigns for <p>controller with the node's lease
// and, while it leads, watches <p> and applies PlanFailover after every
// change (and every reconcile_interval), counting as live the nodes whose
// liveness key exists and, during startup_grace, the nodes it has not yet
// seen (see ControllerOptions). If etcd compacts the history the watch
// needs (it was cut off from etcd meanwhile), the watch re-lists the live
// nodes, counts that as a change (so a leader reconciles at once: the
// missed events may have been a node's death) and watches on from there.
// Each write is guarded by the
// election term, so a controller that lost the key (lease revoked or
// expired) can no longer change a range. If the lease itself is gone the
// controller stops campaigning (the node must re-register with a new lease
// and start a new Controller).
// Thread safety: one background thread from Start() to Stop(). Start, Stop
// and the destructor from one thread (they own the thread and the watcher
// without a lock); term, is_leader and stats from any thread. `store` must
// outlive it.
class Controller {
 public:
  // REQUIRES: lease_id names a live lease that the caller keeps alive.
  Controller(ClusterStore* store, NodeId self, int64_t lease_id,
             ControllerOptions options = {});
  ~Controller();  // Stop().
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Starts the thread. Once: a stopped controller is not restarted (make a
  // new one).
  void Start();
  // Stops the thread (does not resign: the lease's end hands over).
  // Idempotent.
  void Stop();

  // The term while leading, 0 otherwise.
  int64_t term() const;
  bool is_leader() const { return term() != 0; }
  ControllerStats stats() const;

 private:
  void Run();
  // Leads until it loses the election key or Stop().
  void Lead(int64_t term);
  // One plan-and-write pass. FailedPrecondition if no longer the leader.
  absl::Status Reconcile(int64_t term);
  void OnWatchEvent(const WatchEvent& event);
  // The watch's resync after a compaction: re-lists the liveness keys into
  // seen_live_ and counts a change. Returns the revision of that read.
  absl::StatusOr<int64_t> ResyncWatch();
  // Waits until a watch event after the `seen`-th, Stop() or `timeout`.
  void WaitForChange(int64_t seen, absl::Duration timeout);

  ClusterStore* const store_;
  const NodeId self_;
  const int64_t lease_id_;
  const ControllerOptions options_;

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t changes_ ABSL_GUARDED_BY(mu_) = 0;  // Watch events seen.
  int64_t term_ ABSL_GUARDED_BY(mu_) = 0;
  ControllerStats stats_ ABSL_GUARDED_BY(mu_);
  absl::Time started_ ABSL_GUARDED_BY(mu_);
  // Nodes whose liveness key this controller has seen since Start().
  std::set<NodeId> seen_live_ ABSL_GUARDED_BY(mu_);
  // Stranded (range, epoch) pairs already logged, so each is logged once.
  std::set<std::pair<RangeId, Epoch>> logged_stranded_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Watcher> watcher_;  // Start/Stop only.
  std::thread thread_;                // Start/Stop only.
};

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_CONTROL_CONTROLLER_H_
