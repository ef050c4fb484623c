#ifndef STRATA_CLUSTER_NODE_CLUSTER_NODE_H_
#define STRATA_CLUSTER_NODE_CLUSTER_NODE_H_

// ClusterNode: what makes a strata-server process a member of a cluster
// (`--cluster_etcd`; docs/cluster.md, "Running a cluster"). It registers
// the node in etcd (liveness key under its lease, kept alive by a
// LeaseKeeper), runs the Controller, watches the range map, opens the
// range's database and takes the role the map gives this node for range 0
// at the moment it starts:
//
// - primary: a ReplicationSource ships every commit to the other replicas,
//   and serving_db() is a ReplicatedDB (replicated_db.h) the KvServer runs
//   on. The node fences itself (refuses writes) when its lease's
//   alive_until passes, the map names another primary or a newer epoch, or
//   a replica refuses its epoch. It removes a lagging in-sync replica from
//   the in-sync set (etcd CAS) and adds a caught-up one back.
// - replica: a ReplicaSink applies the primary's stream; the node serves
//   strata.v1.Replication and strata.v1.Cluster itself and forwards every
//   other RPC to the primary (forwarding.h), or answers it
//   FAILED_PRECONDITION naming the primary (not_primary_status) when the
//   client or the node asked not to forward.
//
// A role is never changed in place: when the map (or the lease) says this
// node's role must change, the node fences if it was primary and calls
// `on_role_change` once; the process then shuts down and starts again
// (main.cc re-executes itself), so everything the server derives from the
// database at start (namespace catalog, lease table, expiry index, Watch
// hub) is rebuilt from the promoted database by the ordinary start-up
// path. One range only: a map with more ranges is refused at Start.
//
// Layout on disk: <data_dir>/ranges/0/ holds the epoch file (EPOCHS) and
// db/ (the range's database; while a re-sync swaps it, also db.replaced/
// and resync-<n>/, which the next start recovers or removes:
// RecoverReplaceDirectory, ReplicaSink::Open); <data_dir>/cluster-tmp/ the checkpoints
// FetchCheckpoint serves (same file system, so SSTables are linked).
//
// Thread safety: Start and Stop from the owner's thread; the accessors and
// services are thread-safe. Threads and what they touch:
//   - the owner's (Start, Stop, WaitForReplicas): creates and destroys
//     every member; the unique_ptrs below are written only here.
//   - the LeaseKeeper's (on_lost), the map watch's (OnMap), the
//     maintenance thread, and the ReplicationSource's shipper threads
//     (on_superseded) and notifier thread (on_lagging, WaitReplicated
//     callbacks): they may call RoleChange, which fences the ReplicatedDB
//     through fence_target_ (under mu_; set once the ReplicatedDB exists,
//     so a source callback during StartPrimary finds none), and read
//     members_/in_sync_/lagging_ under mu_.
//   - the Controller's: its own state only.
// Stop ends them in that order (maintenance, watch, controller, keeper,
// then the source, whose destructor joins its threads) before it destroys
// the ReplicatedDB, so no callback outlives what it uses.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "cluster/control/cluster_store.h"
#include "cluster/control/controller.h"
#include "cluster/control/range_map.h"
#include "cluster/etcd_client.h"
#include "cluster/node/forwarding.h"
#include "cluster/node/replicated_db.h"
#include "cluster/replication/primary.h"
#include "cluster/replication/replica.h"
#include "cluster/replication/service.h"
#include "grpcpp/grpcpp.h"
#include "strata/storage/db.h"
#include "strata/storage/options.h"
#include "strata/v1/cluster.grpc.pb.h"

namespace strata::cluster {

struct ClusterNodeOptions {
  std::string etcd_endpoint;  // --cluster_etcd (one host:port or several,
                              // comma-separated: EtcdClientOptions)
  // --cluster_etcd_ca/_cert/_key: TLS to etcd (plaintext without a CA).
  EtcdTlsOptions etcd_tls;
  // --cluster_etcd_user/_password_file: etcd user authentication (none
  // without a user; LoadEtcdAuth reads the flags).
  EtcdAuthOptions etcd_auth;
  std::string prefix = std::string(kDefaultClusterPrefix);  // --cluster_prefix
  NodeId node_id;                                  // --node_id
  std::string advertise_address;                   // --advertise_address
  std::string data_dir;                            // --data_dir
  // The node's etcd lease (liveness and the controller's election).
  absl::Duration lease_ttl = absl::Seconds(5);
  // ReplicatedDB::Options::replication_timeout.
  absl::Duration replication_timeout = absl::Seconds(10);
  // How long Start waits for `strata cluster init` (the config key).
  absl::Duration init_wait = absl::Minutes(5);
  // ReplicationSource::Options::lag_timeout.
  absl::Duration lag_timeout = absl::Seconds(5);
  ControllerOptions controller;
  // --cluster_forward: a node that is not the primary forwards the calls
  // it does not serve to the primary (false: answers them
  // FAILED_PRECONDITION naming the primary).
  bool forward = true;
  // How this node dials the others (replication, checkpoints, forwarding):
  // server::MakeNodeChannelCredentials (TLS when the nodes serve TLS).
  // nullptr: plaintext.
  std::shared_ptr<grpc::ChannelCredentials> peer_credentials;
  // As a replica, fills in its free disk space and reserve for each ack to
  // the primary, which refuses writes that add data while an in-sync
  // replica is below its reserve (ReplicationService::Options::disk_space;
  // main.cc: statvfs of --data_dir and --min_free_disk_bytes). Empty: not
  // reported.
  std::function<bool(v1::ReplicaDiskSpace* out)> disk_space;
  // The engine options of the range's database (allow_committed_batches and
  // keep_history are forced on).
  storage::Options engine;
  // Called once, from a background thread, when this node's role must
  // change (the process should shut down and start again). Must not block.
  std::function<void(const std::string& why)> on_role_change;
};

class ClusterNode {
 public:
  enum class Role { kPrimary, kReplica };

  // Registers the node, starts the controller and the map watch, opens the
  // range's database and takes its role. Errors: InvalidArgument for bad
  // options; FailedPrecondition if the map has more than one range, this
  // node holds no replica of range 0, or the epoch file has seen a newer
  // epoch than the map's (wait for the map); DeadlineExceeded if the
  // cluster is not initialized within init_wait; etcd's and the engine's
  // errors. A primary must then serve services() and
  // not_primary_service() while it calls WaitForReplicas(), and only after
  // that serve clients from serving_db().
  static absl::StatusOr<std::unique_ptr<ClusterNode>> Start(
      ClusterNodeOptions options);
  // Stop().
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  // Stops the maintenance thread, the controller, the watch, the lease
  // keeper (without revoking the lease: a node that restarts keeps its
  // liveness key through the restart), the source or sink, and syncs and
  // closes the database. Idempotent. REQUIRES: no server uses
  // serving_db() or services() any more.
  void Stop();

  // The accessors below are thread-safe once Start has returned; the
  // objects they return are owned by the node and valid until Stop().
  Role role() const { return role_; }
  Epoch epoch() const { return epoch_.load(); }
  // Primary: the ReplicatedDB for the KvServer. Replica: nullptr.
  storage::DB* serving_db();
  // Primary: the ReplicatedDB's PrimaryWriteReadiness, for
  // ServerOptions::write_readiness (valid until Stop). Replica: empty.
  std::function<absl::Status()> write_readiness();
  // Primary: the ReplicatedDB's ReplicaDiskReserve, for
  // DiskSpaceOptions::replicas_reserve (valid until Stop). Replica: empty.
  std::function<absl::Status()> replicas_disk_reserve();
  // Calls `read` with the range's current database pinned open for the
  // call (the metrics endpoint's engine and namespace families; a
  // replica's database is replaced when it re-syncs). Replica: through
  // ReplicaSink::ReadDb (a re-sync's swap waits for `read`); primary: the
  // database under a reader lock. `read` gets nullptr if the database is
  // closed; it must be brief and must not call this node. Thread-safe.
  // REQUIRES: Start has returned and Stop has not begun (main.cc destroys
  // the metrics server before it stops the node).
  void ReadDb(absl::FunctionRef<void(storage::DB*)> read) const;
  // --data_dir (the volume strata_disk_free_bytes watches).
  const std::string& data_dir() const { return options_.data_dir; }
  // The services to register on the node's gRPC server: Replication and
  // Cluster.
  std::vector<grpc::Service*> services();
  // The generic service for every other method (forwarding.h): a
  // replica's, and a new primary's until WaitForReplicas returns (which
  // answers UNAVAILABLE: it becomes the primary).
  grpc::CallbackGenericService* not_primary_service();
  // The same, for its counters (the metrics endpoint).
  const ForwardingService* forwarding() const { return forwarding_.get(); }
  // What a client gets from a node that is not the primary and does not
  // forward: FAILED_PRECONDITION "not the primary of range 0 (epoch E); the
  // primary is NODE at ADDR" (with the strata-primary trailer; old clients
  // parse the last part of the message); UNAVAILABLE with no map yet or
  // while this node becomes the primary.
  absl::Status not_primary_status() const;

  // Primary, before it serves clients: waits (up to replication_timeout)
  // until the in-sync replicas hold every revision this node has — its
  // tail may hold revisions the previous primary never had acknowledged,
  // which no read may show before they are replicated. The node's gRPC
  // port must serve services() meanwhile: a replica with a divergent tail
  // re-syncs from this node's checkpoint (FetchCheckpoint) before it can
  // acknowledge anything. Unavailable if they do not catch up in time (the
  // caller starts over from the map). Blocks; call from main's thread.
  absl::Status WaitForReplicas();

  // Numbers for the metrics endpoint (docs/metrics.md, "Cluster"), read
  // without I/O. Thread-safe.
  struct Stats {
    bool primary = false;
    Epoch epoch = 0;
    uint64_t in_sync_size = 0;
    uint64_t lag_revisions = 0;  // Max over the in-sync replicas.
    double lag_seconds = 0;      // Seconds; max over the in-sync replicas.
    int64_t fenced_writes = 0;
    bool fenced = false;
    ControllerStats controller;
  };
  Stats GetStats() const;
  // Primary: fills `out` with its range's replication (lag per replica,
  // for GetClusterStatus) and returns true. Replica: false, `out`
  // untouched. Thread-safe.
  bool FillReplication(v1::RangeReplication* out) const;

 private:
  class ClusterService;

  explicit ClusterNode(ClusterNodeOptions options);
  absl::Status Init();
  absl::Status OpenDb();
  absl::Status StartPrimary(const RangeDescriptor& range);
  absl::Status StartReplica(const RangeDescriptor& range);
  void OnMap(const RangeMap& map);
  void RoleChange(const std::string& why);
  void Maintain();
  void HandleLagging();
  void ReAddCaughtUp();
  std::string AddressOf(const NodeId& id) const;
  // options_.peer_credentials, or plaintext.
  std::shared_ptr<grpc::ChannelCredentials> PeerCredentials() const;
  ForwardingService::Route Route() const;
  std::string RangeMapBytes() const;

  const ClusterNodeOptions options_;
  const std::string range_dir_;
  const std::string db_dir_;

  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<ClusterStore> store_;
  std::unique_ptr<LeaseKeeper> keeper_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<RangeMapWatch> watch_;
  ClusterConfig config_;

  // Set once in Init; read by the lease keeper's and watch's threads.
  std::atomic<Role> role_{Role::kReplica};
  // Set (once) when the role is taken; 0 before (OnMap ignores maps).
  std::atomic<Epoch> epoch_{0};
  std::vector<NodeId> replicas_;  // Of range 0 at start.

  // The database: owned here (a re-sync replaces it through the swap hook).
  mutable absl::Mutex db_mu_;
  std::unique_ptr<storage::DB> db_ ABSL_GUARDED_BY(db_mu_);

  std::unique_ptr<replication::ReplicationService> repl_service_;
  std::unique_ptr<ClusterService> cluster_service_;
  std::unique_ptr<ForwardingService> forwarding_;
  std::unique_ptr<replication::ReplicationSource> source_;
  std::unique_ptr<ReplicatedDB> replicated_db_;
  std::shared_ptr<replication::ReplicaSink> sink_;

  mutable absl::Mutex mu_;
  std::map<NodeId, std::string> members_ ABSL_GUARDED_BY(mu_);
  // Primary: the in-sync set the source waits for (and etcd holds, once a
  // change is written).
  std::vector<NodeId> in_sync_ ABSL_GUARDED_BY(mu_);
  std::vector<NodeId> lagging_ ABSL_GUARDED_BY(mu_);
  // replicated_db_.get() once it exists (primary), for RoleChange from
  // other threads; cleared by Stop before it destroys the ReplicatedDB.
  ReplicatedDB* fence_target_ ABSL_GUARDED_BY(mu_) = nullptr;

  std::atomic<bool> role_changed_{false};
  absl::Notification stop_;
  std::thread maintenance_;
  bool stopped_ = false;
};

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_NODE_CLUSTER_NODE_H_
