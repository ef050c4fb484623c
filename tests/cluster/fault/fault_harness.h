#ifndef STRATA_TESTS_CLUSTER_FAULT_FAULT_HARNESS_H_
#define STRATA_TESTS_CLUSTER_FAULT_FAULT_HARNESS_H_

// The cluster fault-injection harness (issue 18, "A fault-injection test
// that proves it"; docs/cluster.md, "Fault-injection runs"):
//   - Workload: client threads running Put / Get / Txn compare-and-set with
//     unique values over a few keys against a set of strata-server nodes,
//     routed to the primary (following the address a FAILED_PRECONDITION
//     names, else asking GetRangeMap), each operation logged with its
//     invocation and completion time in the linearizability checker's
//     model (cluster/linearizability.h).
//   - FaultCluster: one etcd and N strata-server processes on 127.0.0.1,
//     each node reaching etcd through its own TcpProxy (to cut it), a watch
//     on the range map recording every (epoch, primary) it ever held.
// Everything started is killed by PID when its owner is destroyed.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cluster/etcd_client.h"
#include "cluster/linearizability.h"
#include "tests/cluster/etcd_process.h"
#include "tests/cluster/fault/node_process.h"
#include "tests/cluster/fault/tcp_proxy.h"

namespace strata::testing {

// Nanoseconds of one monotonic clock (steady_clock) shared by every client
// thread and the fault injector, as the checker's format requires.
int64_t MonotonicNs();

// An operation as the workload logged it: the checker's Operation plus the
// node that answered (index into the workload's addresses; -1 when no
// answer came).
struct LoggedOp {
  cluster::Operation op;
  int node = -1;
};

struct WorkloadOptions {
  int threads = 4;
  int keys = 10;                  // "k0".."k<keys-1>".
  absl::Duration rpc_timeout = absl::Seconds(1);
  int64_t max_ops_per_thread = 200000;  // Bounds a run in count too.
  // How long a node that left an operation indeterminate is avoided when
  // a redirect names it (it may be stopped or cut off; the range map will
  // name a new primary).
  absl::Duration suspect_for = absl::Seconds(2);
};

// Client threads over `addresses` ("127.0.0.1:PORT", node i = index i).
class Workload {
 public:
  Workload(std::vector<std::string> addresses, WorkloadOptions options);
  ~Workload();  // Stop().
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  void Start();
  // Stops the threads (each finishes the operation in flight, at most
  // rpc_timeout) and joins them. Idempotent.
  void Stop();

  // Acknowledged writes/cas so far (any node), for waiting on progress.
  int64_t acknowledged_writes() const { return acked_writes_.load(); }
  // The operations of every thread, once stopped.
  std::vector<LoggedOp> Operations() const;

  // Reads every key at the current primary (retrying redirects and
  // errors until `timeout`), logged as reads invoked after everything
  // else. NotFound-style absence is a read of nothing. DeadlineExceeded if
  // a key could not be read in time.
  absl::StatusOr<std::vector<LoggedOp>> FinalReads(absl::Duration timeout);

  // Puts `value` to `key` at node `node` directly (no routing), once. The
  // result is logged like any operation (so an acknowledged write by a
  // deposed primary breaks the history too); returns the gRPC status code.
  int PutDirect(int node, const std::string& key, const std::string& value);

  // Asks each node in turn for the range map (GetRangeMap, 500 ms each)
  // and returns the index of the first range's primary (these runs have
  // one range), or NotFound if no node named a primary among `addresses`.
  absl::StatusOr<int> PrimaryFromRangeMap() const;

  const std::vector<std::string>& addresses() const { return addresses_; }

 private:
  struct Conn;
  class Client;
  int NodeOf(const std::string& address) const;

  std::vector<std::string> addresses_;
  WorkloadOptions options_;
  std::vector<std::unique_ptr<Conn>> conns_;  // One channel per node.
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> acked_writes_{0};
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  std::vector<LoggedOp> ops_;  // Merged from the threads as they end.
};

// The checker over a logged history: CheckHistory with a time limit.
// InvalidArgument if the history is malformed.
absl::StatusOr<cluster::CheckResult> CheckLogged(
    const std::vector<LoggedOp>& ops, absl::Duration time_limit);

// One value of a range key seen by the range-map watch.
struct RangeEvent {
  int64_t seen_ns = 0;  // MonotonicNs() when the watch delivered it.
  uint32_t range = 0;
  uint64_t epoch = 0;
  std::string primary;
};

struct ClusterOptions {
  int nodes = 3;
  // Extra strata-server flags for every node (e.g. a shorter lease).
  std::vector<std::string> node_flags;
  // Extra environment for node i (e.g. a skewed clock), by index.
  std::map<int, std::vector<std::string>> node_env;
};

class FaultCluster {
 public:
  // Starts etcd in root_dir/etcd, runs `strata cluster init` (one range,
  // RF = nodes) naming ports picked for the nodes, a TcpProxy to etcd per
  // node, the range-map watch, then every node (--cluster_etcd = its
  // proxy); waits until a Put through the routing succeeds.
  static absl::StatusOr<std::unique_ptr<FaultCluster>> Start(
      const std::string& root_dir, ClusterOptions options,
      absl::Duration timeout = absl::Seconds(60));
  ~FaultCluster();  // Kills every node, stops the watch, kills etcd.
  FaultCluster(const FaultCluster&) = delete;
  FaultCluster& operator=(const FaultCluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  NodeProcess& node(int i) { return *nodes_[static_cast<size_t>(i)]; }
  TcpProxy& proxy(int i) { return *proxies_[static_cast<size_t>(i)]; }
  const std::string& node_id(int i) const { return ids_[static_cast<size_t>(i)]; }
  int IndexOf(const std::string& node_id) const;  // -1 if unknown.
  std::vector<std::string> addresses() const;
  EtcdProcess& etcd() { return *etcd_; }

  // Every range-key value the watch has delivered so far, in order.
  std::vector<RangeEvent> RangeHistory() const;
  // Waits until the watch shows range 1 with an epoch > `epoch`; returns
  // that event. DeadlineExceeded at the timeout.
  absl::StatusOr<RangeEvent> WaitForEpochAbove(uint64_t epoch,
                                               absl::Duration timeout);
  // The latest event of range 1 (the watch starts from etcd revision 1, so
  // init's value is always there once the cluster started).
  RangeEvent Current() const;

  // The nodes' logs' tails, for failure messages.
  std::string Logs() const;

 private:
  FaultCluster() = default;

  std::unique_ptr<EtcdProcess> etcd_;
  std::vector<std::unique_ptr<TcpProxy>> proxies_;
  std::vector<std::unique_ptr<NodeProcess>> nodes_;
  std::vector<std::string> ids_;
  std::unique_ptr<cluster::EtcdClient> etcd_client_;
  std::unique_ptr<cluster::Watcher> watcher_;
  mutable std::mutex mu_;
  std::vector<RangeEvent> events_;
  std::string watch_error_;
};

// At most one primary per (range, epoch), and epochs never go back, in the
// watch's history. Returns a description of each violation (empty = ok).
std::vector<std::string> CheckEpochs(const std::vector<RangeEvent>& events);

// Failover time of one run: from `fault_ns` to the completion of the first
// acknowledged write (or successful cas) at a node other than `old_node`
// that was invoked after the fault. nullopt if none.
std::optional<absl::Duration> FailoverTime(const std::vector<LoggedOp>& ops,
                                           int64_t fault_ns, int old_node);

}  // namespace strata::testing

#endif  // STRATA_TESTS_CLUSTER_FAULT_FAULT_HARNESS_H_
