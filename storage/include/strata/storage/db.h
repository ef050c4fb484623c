#ifndef STRATA_STORAGE_DB_H_
#define STRATA_STORAGE_DB_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "strata/storage/iterator.h"
#include "strata/storage/options.h"
#include "strata/storage/statistics.h"
#include "strata/storage/write_batch.h"

namespace strata::storage {

// The status a cache_only read returns instead of doing I/O: Unavailable
// "would block". The caller should retry on a thread that may block.
absl::Status WouldBlockError();
// True for a status made by WouldBlockError().
bool IsWouldBlock(const absl::Status& status);

// An immutable view of the database as of one sequence number. Obtained from
// DB::GetSnapshot and released with DB::ReleaseSnapshot.
class Snapshot {
 protected:
  virtual ~Snapshot() = default;
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
  // options.sync / Options::wal_sync.
  virtual absl::Status Put(const WriteOptions& options, std::string_view key,
                           std::string_view value) = 0;
  // Removes key (OK if absent).
  virtual absl::Status Delete(const WriteOptions& options,
                              std::string_view key) = 0;
  // Applies batch atomically. Concurrent writers are committed together in
  // one WAL write and one fsync (group commit). Blocks until durable.
  virtual absl::Status Write(const WriteOptions& options,
                             WriteBatch* batch) = 0;

  // Called once when an asynchronous write is durable (OK) or has failed.
  // Runs on an engine thread that must not be blocked: it should only hand
  // the result on (e.g. finish an RPC).
  using WriteCallback = std::function<void(absl::Status)>;
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

  // Returns an iterator over the whole database as of options.snapshot (or
  // now). The caller owns it and must delete it before the DB. The
  // iterator pins the memtables and SSTables it reads.
  virtual std::unique_ptr<Iterator> NewIterator(const ReadOptions& options) = 0;

  // Returns a handle to the current state. Reads with it see exactly the
  // writes acknowledged before the call. Must be released.
  virtual const Snapshot* GetSnapshot() = 0;
  virtual void ReleaseSnapshot(const Snapshot* snapshot) = 0;

  // Makes every acknowledged write durable (fdatasync the WAL).
  virtual absl::Status SyncWAL() = 0;
  // Flushes the memtable to a level-0 SSTable and waits for it.
  virtual absl::Status Flush() = 0;
  // Compacts every level overlapping [begin, end] (nullopt = unbounded)
  // down to the bottom level, and waits.
  virtual absl::Status CompactRange(std::optional<std::string_view> begin,
                                    std::optional<std::string_view> end) = 0;

  // A copy of the engine's counters and gauges, one struct per component
  // (see Statistics for how current each field is). Takes the DB mutex
  // briefly; never does I/O.
  virtual Statistics GetStatistics() = 0;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_DB_H_
