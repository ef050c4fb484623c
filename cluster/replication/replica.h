#ifndef STRATA_CLUSTER_REPLICATION_REPLICA_H_
#define STRATA_CLUSTER_REPLICATION_REPLICA_H_

// The replica side of one range (docs/replication.md): what the
// Replication service's Append handler does with what a primary sends.
//
// A ReplicaSink keeps, in the epoch file of the range's directory, the
// highest epoch it has accepted a primary at and the range's epoch history
// (epoch_history.h); it refuses a primary of an older epoch, applies
// batches at their own revisions (DB::ApplyCommittedBatch, fsynced before
// it acknowledges), and rebuilds its database from a checkpoint of the
// primary when its tail diverged from the primary's log or the primary no
// longer retains the changes it needs (Resync).
//
// Thread safety: all methods are thread-safe; Start, Apply and Resync are
// serialized (one range has one primary stream at a time; a second one of
// the same or a newer epoch simply takes over).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cluster/replication/checkpoint_transfer.h"
#include "cluster/replication/epoch_history.h"
#include "strata/storage/db.h"
#include "strata/v1/replication.grpc.pb.h"

namespace strata::cluster::replication {

// The epoch file's name inside a range's directory.
inline constexpr char kEpochFileName[] = "EPOCHS";

class ReplicaSink {
 public:
  // What a swap hook leaves behind: `status` says whether the checkpoint
  // replaced the database; `db` is the database open in its place now —
  // the checkpoint's on success; on failure the old one (the same object,
  // or the old directory reopened as a new one), or nullptr if none could
  // be opened. The caller owns it.
  struct SwapResult {
    absl::Status status;
    storage::DB* db = nullptr;
  };
  // Replaces the replica's database by the verified, fsynced checkpoint in
  // directory `checkpoint_dir` (on the same file system as the range's
  // directory). The hook must: stop every other user of the current DB,
  // close (destroy) it, move `checkpoint_dir` into the DB's place
  // (ReplaceDirectory), open it with the range's Options (which must have
  // allow_committed_batches), and return it. The sink applies nothing
  // and lets no ReadDb read while it runs, and uses only the returned `db`
  // afterwards (never the one it had before). On failure the hook should
  // leave the old database open in place and return it; if it returns no
  // database the sink is broken: every later call returns UNAVAILABLE
  // naming the error, until the node is restarted.
  using SwapHook =
      std::function<SwapResult(const std::string& checkpoint_dir)>;
  // A stub for the Replication service of node `node` (to fetch a
  // checkpoint from the primary).
  using Connect = std::function<std::unique_ptr<v1::Replication::StubInterface>(
      const NodeId& node)>;

  struct Options {
    RangeId range_id = 0;
    // The range's directory: holds the epoch file (kEpochFileName) and,
    // while a re-sync runs, the checkpoint being received ("resync-<n>").
    std::string range_dir;
    Connect connect;
    SwapHook swap;
    // How long fetching a checkpoint may take before it is abandoned.
    absl::Duration fetch_timeout = absl::Minutes(30);
  };

  // Opens the sink over `db` (not owned; it must outlive the sink, or be
  // replaced through the swap hook; it must have been opened with
  // Options::allow_committed_batches). Reads the epoch file, or creates an
  // empty one (highest epoch 0) if it is missing, and removes what an
  // interrupted re-sync left ("resync-*"). Errors: InvalidArgument
  // for a missing hook or directory; the epoch file's (DataLoss for a
  // corrupt one, naming it; a range id other than options.range_id too).
  static absl::StatusOr<std::unique_ptr<ReplicaSink>> Open(storage::DB* db,
                                                           Options options);

  // What Start decided.
  struct StartResult {
    // The primary may ship from durable_revision + 1.
    Revision durable_revision = 0;
    // Set instead when this replica must be rebuilt (Resync) first: why.
    std::string resync_reason;
  };

  // A primary of `epoch` with `history` (its last entry is `epoch`) opens a
  // stream. Records the epoch durably. If this replica's log is a prefix of
  // the primary's (CheckNotDiverged) it adopts the primary's history and
  // returns its durable revision (its WAL is synced first, so every
  // revision it holds is); otherwise it returns the reason to re-sync.
  // Errors: StaleEpochError (FailedPrecondition naming both epochs, marked:
  // the only error that fences the primary) if `epoch` is older than the
  // highest seen; InvalidArgument for a bad history; Unavailable while
  // a re-sync runs; the epoch file's and the WAL sync's I/O errors.
  absl::StatusOr<StartResult> Start(Epoch epoch, const NodeId& primary,
                                    const EpochHistory& history);

  // Applies consecutive committed batches from the primary of `epoch`, the
  // last one fsynced, and returns the durable revision (the last one).
  // Errors: StaleEpochError if a newer epoch has been seen since (the
  // sender is superseded); OutOfRange if a batch's revision is not the next
  // one (naming both); DataLoss for a record that does not decode;
  // InvalidArgument if a record's revision differs from the batch's;
  // Unavailable while a re-sync runs; the engine's write errors (among them
  // an unmarked FailedPrecondition if the DB lacks allow_committed_batches
  // or is shutting down: a misconfigured replica, not a newer primary).
  absl::StatusOr<Revision> Apply(Epoch epoch, const v1::AppendBatches& batches);

  // Rebuilds the database from a checkpoint fetched from `primary` (the
  // primary of `epoch`): receives it into a new directory in the range's
  // directory, checks every checksum, swaps it in through the hook, adopts
  // the checkpoint's epoch history, and returns the new durable revision.
  // Errors (the database is unchanged): DataLoss for a corrupt checkpoint;
  // StaleEpochError for a stale epoch; Unavailable if a re-sync already
  // runs or the primary cannot be reached; the primary's error if it ends
  // the fetch (NotFound if it is not the range's primary; its
  // FailedPrecondition, at another epoch there, as Unavailable); the
  // hook's.
  absl::StatusOr<Revision> Resync(Epoch epoch, const NodeId& primary);

  // Stops the sink: every later call (and the running stream's next one)
  // fails with Unavailable, and once Close returns the sink no longer
  // touches the database, so the caller may close it (the range is
  // removed from this node, or the node shuts down). Waits for a running
  // Start or Apply (or a Resync's swap) and for running ReadDb calls.
  // Safe during a Resync: Close does not wait for its fetch, and a
  // checkpoint fetched after Close is discarded, never swapped in (that
  // Resync returns Unavailable).
  void Close();

  // For the server's metrics and for tests.
  struct Stats {
    Epoch highest_epoch = 0;
    Revision durable_revision = 0;
    uint64_t resyncs = 0;          // Completed re-syncs.
    uint64_t refused_stale = 0;    // Streams or batches of a stale epoch.
    uint64_t batches_applied = 0;
  };
  Stats GetStats() const;
  EpochHistory epoch_history() const;

  // Calls `read` with the current database pinned: a re-sync's swap (the
  // hook closes the old database) and Close wait until `read` returns, so
  // the database stays open and in place while `read` runs; the next call
  // sees the re-synced one. `read` gets nullptr once Close has begun (the
  // caller may close the database as soon as Close returns). For readers
  // outside the replication stream: the metrics endpoint (its engine and
  // namespace families; server/metrics/engine_source.h).
  //
  // Thread safety: any thread; calls run concurrently with each other and
  // with Start and Apply (the engine is thread-safe), never with a swap.
  // `read` must be brief (a waiting swap holds the sink's lock, which
  // Apply needs) and must not call this sink. Lock order: the sink's lock,
  // then the pin.
  void ReadDb(absl::FunctionRef<void(storage::DB*)> read) const;

  ~ReplicaSink() = default;
  ReplicaSink(const ReplicaSink&) = delete;
  ReplicaSink& operator=(const ReplicaSink&) = delete;

 private:
  ReplicaSink(storage::DB* db, Options options, EpochFileContents contents);
  absl::Status CheckUsable(Epoch epoch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Persist() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<ReceivedCheckpoint> Fetch(Epoch epoch, const NodeId& primary,
                                           const std::string& dir);

  const Options options_;
  const std::string epoch_path_;

  mutable absl::Mutex mu_;
  storage::DB* db_ ABSL_GUARDED_BY(mu_);
  // The pin ReadDb holds (as a reader) while it reads; a swap and Close
  // hold it exclusively, under mu_. pinned_db_ is db_, or nullptr once
  // Close has begun.
  mutable absl::Mutex pin_mu_ ABSL_ACQUIRED_AFTER(mu_);
  storage::DB* pinned_db_ ABSL_GUARDED_BY(pin_mu_);
  EpochFileContents state_ ABSL_GUARDED_BY(mu_);
  bool resyncing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  uint64_t resync_counter_ ABSL_GUARDED_BY(mu_) = 0;
  // GetStats fills highest_epoch from state_. durable_revision is kept
  // here, not read from db_: GetStats may run after Close (when the DB may
  // be gone), and a failed Apply can leave revisions that are not fsynced.
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace strata::cluster::replication

#endif  // STRATA_CLUSTER_REPLICATION_REPLICA_H_
