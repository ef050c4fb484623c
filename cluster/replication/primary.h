#ifndef STRATA_CLUSTER_REPLICATION_PRIMARY_H_
#define STRATA_CLUSTER_REPLICATION_PRIMARY_H_

// The primary side of one range (docs/replication.md): ships every
// committed batch of the range's database to each replica over an Append
// stream, tracks what each replica has durably (its acks), and keeps the
// replicated watermark: the highest revision every member of the in-sync
// set holds. The server's write path acknowledges a client only once
// WaitReplicated says its revision is there; reads are served at the
// watermark.
//
// Threads: one shipper thread per replica (a blocking gRPC stream, plus a
// reader thread for its acks while it is connected) and one notifier
// thread that runs WaitReplicated callbacks and the lagging callback, so
// neither the committing thread nor a completion-queue thread ever waits.
//
// Thread safety: thread-safe. OnCommit is called by the engine with its
// write lock held; it only queues and signals.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cluster/replication/epoch_history.h"
#include "grpcpp/grpcpp.h"
#include "strata/storage/change_log.h"
#include "strata/storage/db.h"
#include "strata/v1/replication.grpc.pb.h"

namespace strata::cluster::replication {

class ReplicationSource final : public storage::CommitListener {
 public:
  struct Replica {
    NodeId id;
    std::shared_ptr<grpc::ChannelInterface> channel;
  };
  struct Options {
    RangeId range_id = 0;
    // This primary's epoch and the range's history; its last entry must be
    // `epoch` (ExtendEpochHistory makes it on promotion).
    Epoch epoch = 0;
    EpochHistory history;
    NodeId self;
    // Every other replica of the range (the primary is not listed).
    std::vector<Replica> replicas;
    // An in-sync replica that has not been caught up (acked everything
    // committed) for this long is reported through on_lagging, once per
    // lagging spell.
    absl::Duration lag_timeout = absl::Seconds(5);
    // Called on the notifier thread; the control plane decides whether to
    // drop the replica from the in-sync set (SetInSync).
    std::function<void(const NodeId& replica, absl::Duration lag)> on_lagging;
    // Called once, on a shipper thread, when a replica refused this
    // primary's epoch as stale (a StaleEpochError: FAILED_PRECONDITION with
    // the kStaleEpochTrailer trailer): the source has fenced itself. Any
    // other refusal, an unmarked FAILED_PRECONDITION included, is that
    // replica failing: the source retries it with backoff and it lags
    // (on_lagging); it never fences the source.
    std::function<void(const absl::Status& why)> on_superseded;
    // About how many bytes of batches one AppendBatches carries.
    uint64_t max_message_bytes = 1 << 20;
    // Recent batches kept in memory for the streams; a replica further
    // behind reads the change log (DB::GetUpdatesSince).
    size_t buffer_batches = 4096;
    // Reconnect backoff after a broken stream: doubles up to the maximum.
    absl::Duration min_backoff = absl::Milliseconds(20);
    absl::Duration max_backoff = absl::Seconds(1);
    // While a replica reports its disk below its reserve, an idle stream
    // sends it an empty AppendBatches this often, so its next ack says
    // when it has room again (no write reaches it meanwhile: they are
    // refused, see InSyncDiskReserve).
    absl::Duration disk_probe_interval = absl::Milliseconds(200);
  };

  // Starts shipping to every replica. `db` is not owned and must outlive
  // the source; it needs Options::keep_history for catch-up (without it a
  // replica that falls behind can only re-sync from a checkpoint). The
  // caller must make the source hear of commits (DB::SetCommitListener,
  // or forward OnCommit from its own listener) before the first write it
  // will wait for. The in-sync set starts with every replica.
  // InvalidArgument for a bad history or a replica without a channel.
  static absl::StatusOr<std::unique_ptr<ReplicationSource>> Create(
      storage::DB* db, Options options);
  // Fences (if not yet) and joins every thread.
  // REQUIRES: no longer the DB's commit listener.
  ~ReplicationSource() override;

  void OnCommit(const std::vector<storage::ChangeBatch>& batches) override;

  // The replicas the watermark waits for (the primary's own id, if listed,
  // is ignored; an id that is not a replica keeps the watermark where it
  // is). The watermark never moves back.
  void SetInSync(const std::vector<NodeId>& in_sync);

  // The highest revision every in-sync replica holds durably (and this
  // primary has committed).
  Revision replicated_revision() const;
  // Members of the in-sync set, this primary included (so at least 1).
  size_t in_sync_size() const;

  // Calls `done` once, on the notifier thread: OK when the replicated
  // watermark reaches `revision`; DeadlineExceeded if `deadline` passes
  // first; Unavailable (naming why) if the source is or becomes fenced.
  // Never calls it on the caller's thread. `done` must not block.
  using WaitCallback = std::function<void(absl::Status)>;
  void WaitReplicated(Revision revision, absl::Time deadline,
                      WaitCallback done);

  // OK, or RESOURCE_EXHAUSTED naming the first connected in-sync replica
  // whose last AppendAccepted/AppendAck put the free space of its data
  // volume below its reserve (its --min_free_disk_bytes): "disk space
  // below reserve on replica N of range R: F bytes free
  // (--min_free_disk_bytes=M there); deletes are still accepted". A write
  // that adds data should be refused then: every in-sync replica must
  // apply it, and a replica that runs out of space stops acknowledging
  // (as etcd's NOSPACE alarm stops the whole cluster's writes when one
  // member is out of quota). A replica that disconnects stops counting
  // (its report may be stale; a silent replica lags and leaves the set).
  // Cheap while no replica is short (one atomic load): callable for every
  // write, from any thread.
  absl::Status InSyncDiskReserve() const;

  // Stops shipping and fails every waiter (and every later one) with
  // Unavailable carrying `why`: the lease was lost or the epoch
  // superseded. Idempotent (the first reason stays).
  void Fence(const absl::Status& why);
  bool fenced() const;

  // Plain numbers for the server's metrics (docs/replication.md).
  struct ReplicaStats {
    NodeId id;
    bool connected = false;
    bool in_sync = false;
    Revision acked_revision = 0;
    uint64_t lag_revisions = 0;
    double lag_seconds = 0;  // Since it was last caught up; 0 if it is.
    uint64_t resyncs = 0;    // Re-syncs it reported (AppendResyncing).
    // Its last disk report while connected (ReplicaDiskSpace); unknown
    // when it sent none.
    bool disk_known = false;
    uint64_t disk_free_bytes = 0;
    uint64_t disk_min_free_bytes = 0;
  };
  struct Stats {
    Revision committed_revision = 0;
    Revision replicated_revision = 0;
    size_t in_sync_size = 0;  // Replicas in the set, the primary included.
    uint64_t resyncs = 0;
    bool fenced = false;
    std::vector<ReplicaStats> replicas;
  };
  Stats GetStats() const;

  ReplicationSource(const ReplicationSource&) = delete;
  ReplicationSource& operator=(const ReplicationSource&) = delete;

 private:
  struct Peer;
  struct Waiter {
    absl::Time deadline;
    WaitCallback done;
  };
  struct Ready {
    WaitCallback done;
    absl::Status status;
  };

  ReplicationSource(storage::DB* db, Options options);
  void RunPeer(Peer* peer);
  absl::Status RunStream(Peer* peer, bool* accepted);
  // The replica's durable revision once it accepted the stream; its disk
  // report (if it sent one) in `*disk`.
  absl::StatusOr<Revision> Handshake(
      Peer* peer,
      grpc::ClientReaderWriterInterface<v1::AppendRequest, v1::AppendResponse>*
          stream,
      std::optional<v1::ReplicaDiskSpace>* disk);
  void ReadAcks(Peer* peer,
                grpc::ClientReaderWriterInterface<v1::AppendRequest,
                                                  v1::AppendResponse>* stream);
  // Records a replica's disk report (`space` null: unknown) and updates
  // reserve_short_.
  void SetDiskSpaceLocked(Peer* peer, const v1::ReplicaDiskSpace* space)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateReserveShortLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The first connected in-sync replica whose report is below its
  // reserve, or nullptr.
  const Peer* ShortInSyncPeerLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Fills `out` with batches from `*next` on; false when the stream should
  // end (broken, fenced, stopped) or *error is set. True with `out` empty
  // and *probe set: send it as a probe (the replica reported its disk short
  // and nothing was committed for disk_probe_interval).
  bool NextBatches(Peer* peer, Revision* next,
                   std::unique_ptr<storage::ChangeIterator>* log,
                   v1::AppendBatches* out, absl::Status* error, bool* probe);
  void RunNotifier();
  void UpdateWatermarkLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FenceLocked(const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  storage::DB* const db_;
  const Options options_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;    // Shippers: new commits, broken, fenced.
  absl::CondVar notify_cv_;  // Notifier: ready callbacks, new deadlines.
  std::deque<storage::ChangeBatch> recent_ ABSL_GUARDED_BY(mu_);
  Revision committed_ ABSL_GUARDED_BY(mu_) = 0;
  Revision watermark_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<NodeId> in_sync_ ABSL_GUARDED_BY(mu_);
  std::multimap<Revision, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  std::vector<Ready> ready_ ABSL_GUARDED_BY(mu_);
  absl::Status fenced_ ABSL_GUARDED_BY(mu_);
  // Whether InSyncDiskReserve would refuse: some connected in-sync
  // replica reported its disk below its reserve. Written under mu_.
  std::atomic<bool> reserve_short_{false};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t resyncs_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::unique_ptr<Peer>> peers_;  // Fixed after construction.
  std::thread notifier_;
};

}  // namespace strata::cluster::replication

#endif  // STRATA_CLUSTER_REPLICATION_PRIMARY_H_
