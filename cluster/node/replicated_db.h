#ifndef STRATA_CLUSTER_NODE_REPLICATED_DB_H_
#define STRATA_CLUSTER_NODE_REPLICATED_DB_H_

// ReplicatedDB: the storage::DB a cluster node's KvService runs on while
// the node is the primary of range 0 (docs/cluster.md, "The write and read
// rules"). It decorates the range's own DB so that no RPC handler knows
// about replication:
//
// - Writes (Put, Delete, Write, WriteAsync) are refused with
//   FAILED_PRECONDITION once the node is fenced (Fence: the range map names
//   another primary or a higher epoch) or its etcd lease may have ended
//   (now >= lease_deadline()); otherwise they commit locally and their
//   result is held back until ReplicationSource::WaitReplicated says every
//   in-sync replica has the revision. A failure after the local commit
//   (UNAVAILABLE: fenced while waiting; DEADLINE_EXCEEDED: not replicated
//   within replication_timeout) is indeterminate: the write may or may not
//   survive a failover.
// - Reads at the latest revision (no snapshot in ReadOptions), GetSnapshot
//   and CurrentRevision are served at the replicated watermark, never at a
//   revision a failover could un-happen. Before any replica acknowledged
//   (watermark 0 with data committed) reads answer UNAVAILABLE.
// - The commit listener (the Watch hub) hears a batch only once it is
//   replicated, and GetUpdatesSince stops at the watermark, so Watch never
//   shows an event a failover could un-happen.
// - ApplyCommittedBatch is refused (only a replica's sink applies batches).
// - WriteAvailability is the base DB's (the write gate admits on it).
//   PrimaryWriteReadiness says UNAVAILABLE when this primary's writes
//   would be refused: fenced (or its lease deadline passed), with the
//   reason, or an in-sync set below min_in_sync ("only N of range R's
//   replicas are in sync ..."). The node hands it to the server as
//   ServerOptions::write_readiness (health's `strata.v1.KV.write`); the
//   writes themselves answer those refusals (FAILED_PRECONDITION /
//   UNAVAILABLE as above, counted in fenced_writes). It also reports an
//   in-sync replica short of disk space (ReplicaDiskReserve), which the
//   write gate applies before a write that adds data reaches this DB.
//
// Thread safety: thread-safe, as storage::DB. `base` must outlive it; it
// installs itself as base's commit listener (forwarding every commit to
// `source` at once) and removes itself on Detach() or destruction. Threads
// that call into it: the server's (the DB interface), base's committing
// thread (OnCommit), and the source's notifier thread (the callbacks it
// registers with WaitReplicated, which deliver replicated commits to the
// listener). Destruction is safe in either order with the source: a
// notifier callback that runs after the destructor has started does
// nothing, and the destructor waits for one that is running. The owner
// that destroys the source first calls Detach() before (the source must no
// longer hear commits) and destroys this after; `source` is used only by
// calls made before then.

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cluster/replication/primary.h"
#include "strata/storage/db.h"

namespace strata::cluster {

class ReplicatedDB final : public storage::DB {
 public:
  struct Options {
    // How long a committed write waits for its replicas before the client
    // hears DEADLINE_EXCEEDED (indeterminate).
    absl::Duration replication_timeout = absl::Seconds(10);
    // The instant after which this node may no longer act as primary (its
    // etcd lease's alive_until). Unset: no lease check.
    std::function<absl::Time()> lease_deadline;
    // The fewest members of the in-sync set (the primary included) with
    // which a write is taken: below it, writes are refused UNAVAILABLE
    // before they commit, as Kafka's min.insync.replicas does, until a
    // replica catches up and rejoins the set (the cluster's min_in_sync;
    // a failover can leave the set smaller than that).
    int min_in_sync = 1;
    // An in-sync replica that is disconnected, or has been behind for this
    // long, does not count as acknowledging for PrimaryWriteReadiness
    // (the source's lag_timeout: after it, the node tries to drop it).
    absl::Duration lag_timeout = absl::Seconds(5);
    // Range and epoch, for the error messages.
    uint32_t range_id = 0;
    uint64_t epoch = 0;
  };

  ReplicatedDB(storage::DB* base, replication::ReplicationSource* source,
               Options options);
  ~ReplicatedDB() override;

  // Refuses every later write with FAILED_PRECONDITION naming `why`, and
  // fences the source (waiting writes fail UNAVAILABLE). Idempotent.
  void Fence(const absl::Status& why);
  // Stops forwarding base's commits to the source (removes itself as
  // base's commit listener). Idempotent. After it, the source may be
  // destroyed before this object; no write may be made through it then.
  void Detach();
  bool fenced() const;
  // Writes refused because the node was fenced or its lease had run out.
  int64_t fenced_writes() const { return fenced_writes_.load(); }

  absl::StatusOr<storage::Revision> Put(const storage::WriteOptions& options,
                                        std::string_view key,
                                        std::string_view value) override;
  absl::StatusOr<storage::Revision> Delete(const storage::WriteOptions& options,
                                           std::string_view key) override;
  absl::StatusOr<storage::Revision> Write(const storage::WriteOptions& options,
                                          storage::WriteBatch* batch) override;
  void WriteAsync(const storage::WriteOptions& options,
                  storage::WriteBatch batch, WriteCallback done) override;

  absl::StatusOr<std::string> Get(const storage::ReadOptions& options,
                                  std::string_view key) override;
  absl::StatusOr<storage::GetResult> GetWithMetadata(
      const storage::ReadOptions& options, std::string_view key) override;
  std::unique_ptr<storage::Iterator> NewIterator(
      const storage::ReadOptions& options) override;

  // The snapshot at the replicated watermark; before any write is
  // replicated, the one at CompactedRevision() (DB::GetSnapshot has no
  // error, unlike Get, which answers Unavailable then).
  const storage::Snapshot* GetSnapshot() override;
  // OutOfRange above the replicated watermark (not yet on every in-sync
  // replica); otherwise the engine's GetSnapshotAt.
  absl::StatusOr<const storage::Snapshot*> GetSnapshotAt(
      storage::Revision revision) override;
  void ReleaseSnapshot(const storage::Snapshot* snapshot) override;

  storage::Revision CurrentRevision() override;
  storage::Revision CompactedRevision() override;
  absl::Status CompactHistory(storage::Revision revision) override;
  absl::StatusOr<std::unique_ptr<storage::ChangeIterator>> GetUpdatesSince(
      storage::Revision revision) override;
  void SetCommitListener(storage::CommitListener* listener) override;

  absl::Status SyncWAL() override;
  absl::Status Flush() override;
  absl::Status CompactRange(std::optional<std::string_view> begin,
                            std::optional<std::string_view> end) override;
  absl::StatusOr<storage::Revision> CreateCheckpoint(
      const std::string& dir) override;
  absl::Status ApplyCommittedBatch(const storage::WriteOptions& options,
                                   const storage::ChangeBatch& batch) override;
  absl::Status WriteAvailability() override;
  storage::Statistics GetStatistics() override;

  // OK while this primary can acknowledge writes; UNAVAILABLE with the
  // reason when it is fenced, its lease deadline has passed, fewer than
  // min_in_sync replicas are in sync (writes are refused), or fewer than
  // min_in_sync members of the in-sync set (the primary included) are
  // acknowledging: connected and behind for less than lag_timeout (writes
  // would wait for the others, and the set may not shrink below
  // min_in_sync, so they would time out). Readiness only: nothing is
  // counted or fenced. Cheap (two mutexes, no I/O); thread-safe.
  absl::Status PrimaryWriteReadiness() const;

  // OK, or RESOURCE_EXHAUSTED naming an in-sync replica whose data volume
  // is below its reserve (ReplicationSource::InSyncDiskReserve). Writes
  // are not refused here (deletes must pass): the node hands this to the
  // write gate (DiskSpaceOptions::replicas_reserve), which refuses the
  // writes that add data. One atomic load while no replica is short;
  // thread-safe.
  absl::Status ReplicaDiskReserve() const;

 private:
  class FanOut;
  // What the source's notifier callbacks reach this object through: the
  // destructor clears `db` (waiting for a callback that holds `mu`), so a
  // callback that runs later finds nullptr instead of a destroyed object.
  struct DeliveryGate {
    absl::Mutex mu;
    ReplicatedDB* db ABSL_GUARDED_BY(mu);
  };
  // OK, or the FAILED_PRECONDITION a write gets now (counted).
  absl::Status CheckWritable();
  // Why this primary may not write: fenced_, or its lease deadline has
  // passed (UNAVAILABLE); OK otherwise. Does not fence.
  absl::Status FenceReason() const;
  // OK, or UNAVAILABLE if the in-sync set is below min_in_sync.
  absl::Status InSyncShortfall() const;
  // OK, or UNAVAILABLE if fewer than min_in_sync members of the in-sync
  // set are acknowledging (see PrimaryWriteReadiness).
  absl::Status AcknowledgingShortfall() const;
  // A snapshot at min(latest, watermark), or UNAVAILABLE.
  absl::StatusOr<const storage::Snapshot*> WatermarkSnapshot();
  // Reads with options.snapshot unset get a watermark snapshot (`*taken`
  // is set so the caller releases it).
  absl::Status PrepareRead(storage::ReadOptions* options,
                           const storage::Snapshot** taken);
  // From base's commit listener: forward to the source, queue for the
  // delayed listener.
  void OnCommit(const std::vector<storage::ChangeBatch>& batches);
  // Hands the delayed listener every queued batch at or below the
  // watermark, in order.
  void DeliverReplicated();

  storage::DB* const base_;
  replication::ReplicationSource* const source_;
  const Options options_;
  std::unique_ptr<FanOut> fan_out_;
  const std::shared_ptr<DeliveryGate> gate_;
  std::atomic<int64_t> fenced_writes_{0};

  mutable absl::Mutex mu_;
  absl::Status fenced_ ABSL_GUARDED_BY(mu_);

  // Serializes deliveries to the delayed listener (the hub expects commits
  // in order, one call at a time).
  absl::Mutex deliver_mu_ ABSL_ACQUIRED_BEFORE(queue_mu_);
  storage::CommitListener* delayed_ ABSL_GUARDED_BY(deliver_mu_) = nullptr;
  absl::Mutex queue_mu_;
  std::deque<storage::ChangeBatch> pending_ ABSL_GUARDED_BY(queue_mu_);
};

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_NODE_REPLICATED_DB_H_
