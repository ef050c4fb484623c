#ifndef STRATA_STORAGE_DB_H_
#define STRATA_STORAGE_DB_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "strata/storage/change_log.h"
#include "strata/storage/iterator.h"
#include "strata/storage/key_metadata.h"
#include "strata/storage/options.h"
#include "strata/storage/statistics.h"
#include "strata/storage/write_batch.h"

namespace strata::storage {

// Keys beginning with these two bytes are reserved for the layers above the
// engine (the server keeps its metadata and namespaces there,
// server/keyspace.h). The engine stores them like any other key; it only
// refuses to upgrade a database of format 1 that already holds one.
inline constexpr std::string_view kReservedKeyPrefix = "\xff\xff";

// The status a cache_only read returns instead of doing I/O: Unavailable
// "would block". The caller should retry on a thread that may block.
absl::Status WouldBlockError();
// True for a status made by WouldBlockError().
bool IsWouldBlock(const absl::Status& status);

// An immutable view of the database as of one revision. Obtained from
// DB::GetSnapshot or DB::GetSnapshotAt and released with
// DB::ReleaseSnapshot. While it is held, compaction keeps what reads at its
// revision need.
class Snapshot {
 public:
  // The revision reads through this snapshot see.
  virtual Revision revision() const = 0;

 protected:
  virtual ~Snapshot() = default;
};

// The answer to a point read with metadata (DB::GetWithMetadata).
struct GetResult {
  // Whether the key exists at `revision`; value and metadata are set only
  // when it does.
  bool found = false;
  std::string value;
  KeyMetadata metadata;
  // The revision the read saw (the latest one when it started, or its
  // snapshot's).
  Revision revision = 0;
};

// A persistent, ordered key-value store: an LSM tree with a write-ahead log,
// memtables, SSTables and leveled compaction (see docs/architecture.md).
// Keys are ordered bytewise (memcmp, shorter first on a common prefix).
//
// Thread safety: a DB is safe for concurrent access from multiple threads
// without external synchronization. One process may open a directory once;
// a second Open of the same directory (from any process) fails with
// FailedPrecondition until the first DB is destroyed.
//
// Errors, for every method:
//   InvalidArgument  bad arguments (e.g. an empty key).
//   DataLoss         corrupt bytes on disk, with the file name and offset.
//   Unavailable      I/O failure, with the path and errno text; also
//                    returned by writes after a WAL write or sync failed
//                    (the DB is then read-only until reopened).
//   FailedPrecondition  the DB is shutting down or locked by another user.
class DB {
 public:
  // Opens (and, with Options::create_if_missing, creates) the database in
  // directory `path`, replaying the WAL. Returns FailedPrecondition if the
  // directory is locked by another DB, DataLoss if a file is corrupt
  // (naming the file and offset), NotFound if it does not exist and
  // create_if_missing is false. The caller owns the result; destroying it
  // makes the WAL durable and closes the database.
  static absl::StatusOr<std::unique_ptr<DB>> Open(const Options& options,
                                                  const std::string& path);

  DB() = default;
  DB(const DB&) = delete;
  DB& operator=(const DB&) = delete;
  // Waits for background work, syncs the WAL and releases the lock.
  // REQUIRES: every iterator and snapshot has been released.
  virtual ~DB() = default;

  // Sets key to value. Blocks until the write is durable per
  // options.sync / Options::wal_sync. Returns the revision it committed at.
  virtual absl::StatusOr<Revision> Put(const WriteOptions& options,
                                       std::string_view key,
                                       std::string_view value) = 0;
  // Removes key. Deleting a missing key writes nothing and returns the
  // current revision.
  virtual absl::StatusOr<Revision> Delete(const WriteOptions& options,
                                          std::string_view key) = 0;
  // Applies batch atomically at one new revision, which it returns (or the
  // current revision if the batch turned out to change nothing). Runs the
  // batch's CommitFunction, if any, at commit time. Concurrent writers are
  // committed together in one WAL write and one fsync (group commit), each
  // at its own revision. Blocks until durable. Errors: those of the
  // CommitFunction; Unavailable after a WAL failure (read-only until
  // reopened); FailedPrecondition while shutting down.
  virtual absl::StatusOr<Revision> Write(const WriteOptions& options,
                                         WriteBatch* batch) = 0;

  // Called once when an asynchronous write is durable (its revision) or has
  // failed. Runs on an engine thread that must not be blocked: it should
  // only hand the result on (e.g. finish an RPC).
  using WriteCallback = std::function<void(absl::StatusOr<Revision>)>;
  // Like Write, but returns at once; `done` runs when the batch is durable
  // or has failed. The batch is moved into the engine. Never blocks on
  // disk, so an event-loop thread may call it.
  virtual void WriteAsync(const WriteOptions& options, WriteBatch batch,
                          WriteCallback done) = 0;

  // Returns the value of key, or NotFound if it is absent (or deleted).
  // With options.cache_only, returns WouldBlockError() (IsWouldBlock)
  // instead of reading from disk.
  virtual absl::StatusOr<std::string> Get(const ReadOptions& options,
                                          std::string_view key) = 0;

  // Like Get, with the key's metadata (revisions, version, attributes) and
  // the revision the read saw. An absent key is OK with found = false.
  virtual absl::StatusOr<GetResult> GetWithMetadata(const ReadOptions& options,
                                                    std::string_view key) = 0;

  // Returns an iterator over the whole database as of options.snapshot (or
  // now); metadata() gives each key's metadata. The caller owns it and must
  // delete it before the DB. The iterator pins the memtables and SSTables
  // it reads.
  virtual std::unique_ptr<Iterator> NewIterator(const ReadOptions& options) = 0;

  // Returns a handle to the current state. Reads with it see exactly the
  // writes acknowledged before the call. Must be released.
  virtual const Snapshot* GetSnapshot() = 0;
  // Returns a handle to the state at a past (or the current) revision.
  // OutOfRange if revision is below CompactedRevision() (that history is
  // gone) or above CurrentRevision(); the message names both. Must be
  // released.
  virtual absl::StatusOr<const Snapshot*> GetSnapshotAt(Revision revision) = 0;
  virtual void ReleaseSnapshot(const Snapshot* snapshot) = 0;

  // The revision of the latest committed write (0 for an empty database).
  virtual Revision CurrentRevision() = 0;
  // The oldest revision whose state can still be read: reads at revisions
  // >= it and changes after it (GetUpdatesSince(r) for r > it) are kept.
  // Without Options::keep_history it is the current revision.
  virtual Revision CompactedRevision() = 0;
  // Advances the compacted revision to `revision` (durably, before any
  // compaction uses it); older versions and changes become garbage that
  // compactions reclaim. OutOfRange if revision is above the current
  // revision or not above the compacted one (the message names both);
  // FailedPrecondition without Options::keep_history; Unavailable if the
  // manifest write failed.
  virtual absl::Status CompactHistory(Revision revision) = 0;

  // Reads the change log from `revision` on: every committed batch with a
  // revision >= `revision`, in order, up to the latest one committed when
  // the call was made. OutOfRange if `revision` <= CompactedRevision()
  // (those changes are gone) or above CurrentRevision() + 1.
  virtual absl::StatusOr<std::unique_ptr<ChangeIterator>> GetUpdatesSince(
      Revision revision) = 0;

  // Registers the listener that hears of every commit from now on
  // (nullptr removes it). Not owned; it must stay valid until replaced or
  // the DB is destroyed. At most one.
  virtual void SetCommitListener(CommitListener* listener) = 0;

  // Makes every acknowledged write durable (fdatasync the WAL).
  virtual absl::Status SyncWAL() = 0;
  // Flushes the memtable to a level-0 SSTable and waits for it.
  virtual absl::Status Flush() = 0;
  // Compacts every level overlapping [begin, end] (nullopt = unbounded)
  // down to the bottom level, and waits. With Options::compaction_filter,
  // it then rewrites the bottom level's files overlapping the range in
  // place, so the filter sees every key of the range (no other compaction
  // rewrites the bottom level of a range that gets no writes).
  virtual absl::Status CompactRange(std::optional<std::string_view> begin,
                                    std::optional<std::string_view> end) = 0;

  // Writes a checkpoint of the database into directory `dir`: a
  // consistent, openable database (DB::Open on it, with any Env that sees
  // the files) holding exactly the writes committed up to the returned
  // revision, with their revisions and metadata and the history and
  // change log this database still keeps. Its SSTables are hard links to
  // the live ones (copies where `dir` is on another file system:
  // Env::LinkFile); the WALs holding the newest writes (and, with
  // Options::keep_history, the change log) are copied up to the last
  // committed write; a new manifest names exactly that state. Writes are
  // never blocked (the state is captured under the DB mutex, no memtable
  // switch or flush); compaction keeps the files the checkpoint still
  // needs until it is written (they are pinned). Everything written to
  // `dir` is fsynced before it returns.
  //
  // `dir` must be missing or empty; its parent must exist. Errors:
  // FailedPrecondition if `dir` is not empty, or the DB is shutting down;
  // the background error after a failed flush or compaction; the Env's
  // I/O errors (the files written so far are removed again). Thread-safe;
  // concurrent checkpoints are fine (into different directories).
  virtual absl::StatusOr<Revision> CreateCheckpoint(const std::string& dir) {
    (void)dir;
    return absl::UnimplementedError("CreateCheckpoint");
  }
  // Restore only (Options::allow_committed_batches; docs/backup.md,
  // "Incremental backups"): appends `batch`, a write committed by the
  // database an incremental backup was taken of, exactly as it was
  // committed there: at its own revision, which must be CurrentRevision()
  // + 1, and with each put's metadata (create revision, version,
  // attributes) as given, not recomputed. That is what a replay through
  // Write could not do: Write judges expiry by today's clock and assigns
  // versions from it, so a key that was live when the source committed
  // a put, but has expired since, would come back with version 1. No
  // CommitFunction runs and nothing is dropped (a delete writes its
  // tombstone). The batch goes through the WAL and the memtable like any
  // write (durable per options.sync; options.deadline is ignored: a
  // restore has no client to give up) and reaches the change log and the
  // commit listener. `batch.record` is not used.
  //
  // Errors: FailedPrecondition without Options::allow_committed_batches;
  // InvalidArgument if batch.revision is not CurrentRevision() + 1, the
  // batch is empty, a key is empty or appears twice, or a put's metadata
  // is impossible (mod_revision other than the batch's revision,
  // create_revision above it or 0, version 0); the write path's errors
  // otherwise. Thread-safe, but meant for a database only the restore
  // writes to.
  virtual absl::Status ApplyCommittedBatch(const WriteOptions& options,
                                           const ChangeBatch& batch) {
    (void)options;
    (void)batch;
    return absl::UnimplementedError("ApplyCommittedBatch");
  }
  // Whether writes are accepted now, cheaply (no lock, no I/O), for health
  // checks: OK; ResourceExhausted while writes are paused because the disk
  // ran out of space (the engine retries the failed work with backoff and
  // resumes writes by itself, see Options::out_of_space_retry_*);
  // Unavailable once an I/O error (EIO, corruption) made the database
  // read-only until it is reopened. Thread-safe. A decorating DB reports
  // its base's answer here; refusals of its own (a fenced cluster primary)
  // its writes answer themselves.
  virtual absl::Status WriteAvailability() { return absl::OkStatus(); }

  // A copy of the engine's counters and gauges, one struct per component
  // (see Statistics for how current each field is). Takes the DB mutex
  // briefly; never does I/O.
  virtual Statistics GetStatistics() = 0;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_DB_H_
