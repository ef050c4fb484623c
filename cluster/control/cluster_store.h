#ifndef STRATA_CLUSTER_CONTROL_CLUSTER_STORE_H_
#define STRATA_CLUSTER_CONTROL_CLUSTER_STORE_H_

// The cluster's state in etcd (project issue 18, docs/cluster.md "etcd
// layout"), under a prefix p (`--cluster_prefix`, default "strata/"):
//
//   <p>config          {"format":1,"replication_factor":3,"min_in_sync":2};
//                      written once, by InitCluster
//   <p>members/<id>    the node's address: the nodes that may hold data
//                      (persistent; AddMember / RemoveMember)
//   <p>nodes/<id>      the node's address, bound to the node's lease
//                      (liveness: gone when the lease ends)
//   <p>ranges/<id>     one range (range_map.h for the JSON); changed only by
//                      a Txn comparing its mod_revision (UpdateRange)
//   <p>controller      the controller's node id, bound to its lease
//                      (LeaderElection; create_revision = term)
//
// ClusterStore is the typed access to that layout: no policy (which range
// goes where is the controller's, controller.h). Every call is one or a
// few etcd calls with EtcdClient's deadline; errors are EtcdClient's
// (DeadlineExceeded/Unavailable when etcd is slow or gone: the call may
// have taken effect) plus those listed per method.
//
// Thread safety: a ClusterStore is immutable after construction; calls may
// run concurrently from any thread. `client` must outlive it.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cluster/control/range_map.h"
#include "cluster/etcd_client.h"

namespace strata::cluster {

inline constexpr std::string_view kDefaultClusterPrefix = "strata/";

struct ClusterConfig {
  // Replicas per range, on distinct nodes.
  int replication_factor = 3;
  // The smallest in-sync set a range may be reduced to by removing a
  // member; the data plane refuses writes below it.
  int min_in_sync = 2;
};

struct Member {
  NodeId id;
  std::string address;  // host:port other nodes and clients dial.
};

struct InitOptions {
  // Split keys (stored keys, strictly ascending, none empty): k keys make
  // k + 1 ranges. If empty, `num_ranges` equal ranges (EqualSplitKeys).
  std::vector<std::string> split_keys;
  int num_ranges = 1;
  ClusterConfig config;
  // The first members; at least replication_factor of them. Range i gets
  // members[(i + j) % n] for j in [0, RF) as replicas, the first as
  // primary, all in sync, epoch 1.
  std::vector<Member> members;
};

// The initial ranges InitCluster writes (pure; exposed for tests and
// `strata cluster init --dry_run`). InvalidArgument for bad options.
absl::StatusOr<std::vector<RangeDescriptor>> PlanInitialRanges(
    const InitOptions& options);

class ClusterStore {
 public:
  // REQUIRES: `prefix` is non-empty (DeletePrefix refuses "").
  ClusterStore(EtcdClient* client, std::string prefix);

  EtcdClient* client() const { return client_; }
  const std::string& prefix() const { return prefix_; }
  std::string ConfigKey() const;
  std::string MemberKey(std::string_view id) const;
  std::string MembersPrefix() const;
  std::string NodeKey(std::string_view id) const;
  std::string NodesPrefix() const;
  std::string RangeKey(RangeId id) const;
  std::string RangesPrefix() const;
  std::string ControllerKey() const;

  // Writes config, members and ranges in one Txn that requires the config
  // key to be absent. AlreadyExists if the cluster is initialized;
  // InvalidArgument for bad options or more keys than one etcd Txn takes
  // (128 operations: ranges + members + 1).
  absl::Status InitCluster(const InitOptions& options);
  // NotFound if the cluster is not initialized; DataLoss if the config is
  // not what InitCluster writes.
  absl::StatusOr<ClusterConfig> ReadConfig();

  // Every range at one etcd revision. NotFound if there are none (not
  // initialized); DataLoss (naming the key) for a value DecodeRange
  // rejects, a key whose id is not the JSON's, or ranges that do not form
  // a valid map. Each descriptor carries its mod_revision.
  absl::StatusOr<RangeMap> ReadRangeMap();

  // Replaces range `updated.id` if its key's mod_revision is still
  // `updated.mod_revision` and every compare in `guards` holds (the
  // controller adds its term). Returns the new mod_revision. Aborted if a
  // compare failed (someone changed the range first: re-read and re-plan);
  // InvalidArgument if ValidateRange fails or mod_revision is 0. The caller
  // keeps start/end unchanged (split and merge are a later step).
  absl::StatusOr<int64_t> UpdateRange(const RangeDescriptor& updated,
                                      const std::vector<Compare>& guards = {});

  // Liveness: puts nodes/<id> = address bound to `lease_id`. The caller
  // keeps the lease alive (LeaseKeeper). InvalidArgument for a bad id;
  // NotFound if the lease is gone.
  absl::Status RegisterNode(const Member& node, int64_t lease_id);
  // The nodes whose liveness key exists now: id -> address. Errors:
  // EtcdClient's.
  absl::StatusOr<std::map<NodeId, std::string>> ListLiveNodes();

  // Membership. AddMember creates or updates members/<id>; InvalidArgument
  // for a bad id. RemoveMember deletes it (NotFound if absent); it does not
  // touch ranges (controller.h's RemoveMember does that first).
  absl::Status AddMember(const Member& member);
  absl::Status RemoveMember(std::string_view id);
  // The members: id -> address. Errors: EtcdClient's.
  absl::StatusOr<std::map<NodeId, std::string>> ListMembers();

  // The controller's node id and term, NotFound if there is none.
  absl::StatusOr<KeyValue> Controller();

 private:
  // The keys under `prefix` (members/ or nodes/): id (the key after
  // `prefix`) -> address (the value), at one etcd revision.
  absl::StatusOr<std::map<NodeId, std::string>> ListAddresses(
      const std::string& prefix);

  EtcdClient* const client_;
  const std::string prefix_;
};

// Keeps an up-to-date RangeMap: reads it, then watches <p>ranges/ and
// re-reads it (one linearizable read) after every change newer than the
// map, calling `on_change` with each new map from the watcher's thread (so
// every map it sees is a consistent snapshot, never half a Txn). While etcd
// is unreachable the last map stays current (traffic continues on it); a
// re-read that fails is retried with backoff (20 ms doubling to 1 s) until
// it works or Stop(), with last_error() saying why meanwhile. If etcd
// compacted the history the watch needs (it was disconnected while etcd
// compacted), the watch re-reads the map at etcd's current revision and
// watches again from there (Watcher's resync), so the map never stays
// stale once etcd is reachable.
// Thread safety: Start, Stop and the destructor from one thread (they
// write watcher_ without a lock); current, last_error and WaitFor from any
// thread. `store` must outlive it.
class RangeMapWatch {
 public:
  using ChangeCallback = std::function<void(const RangeMap&)>;

  explicit RangeMapWatch(ClusterStore* store, ChangeCallback on_change = {});
  ~RangeMapWatch();  // Stop().
  RangeMapWatch(const RangeMapWatch&) = delete;
  RangeMapWatch& operator=(const RangeMapWatch&) = delete;

  // Reads the map and starts watching (after stopping a previous watch).
  // Errors as ReadRangeMap's. Not from `on_change`.
  absl::Status Start();
  // Stops watching and joins the watcher's thread; current() keeps the
  // last map. Idempotent. Not from `on_change`.
  void Stop();
  // The latest map, nullptr before Start succeeded.
  std::shared_ptr<const RangeMap> current() const;
  // The last error re-reading the map (OK if the last re-read worked).
  absl::Status last_error() const;
  // Times the watch re-synced after etcd compacted its history. From the
  // thread that calls Start and Stop.
  int64_t resyncs() const;
  // Blocks until the current map satisfies `pred` or `deadline` passes;
  // returns whether it does. `pred` runs under the watch's lock, which is
  // not reentrant: it must not call current() or last_error() (it would
  // deadlock); it gets the map as its argument.
  bool WaitFor(const std::function<bool(const RangeMap&)>& pred,
               absl::Time deadline);

 private:
  void OnEvent(const WatchEvent& event);
  // Reads the map and publishes it if it is newer than map_; returns the
  // revision it was read at. Errors as ReadRangeMap's (also in last_error_).
  absl::StatusOr<int64_t> Refresh();

  ClusterStore* const store_;
  const ChangeCallback on_change_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const RangeMap> map_ ABSL_GUARDED_BY(mu_);
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  // Set by Stop() before it stops the watcher: ends a re-read's backoff.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Owned by Start/Stop (not guarded: the watcher's callbacks take mu_,
  // and Stop joins the watcher's thread, so it must not hold mu_).
  std::unique_ptr<Watcher> watcher_;
};

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_CONTROL_CLUSTER_STORE_H_
