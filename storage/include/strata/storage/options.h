#ifndef STRATA_STORAGE_OPTIONS_H_
#define STRATA_STORAGE_OPTIONS_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "strata/storage/key_metadata.h"

namespace strata::storage {

class Env;
class Snapshot;

// The deadlines of the leases keys may be attached to
// (PutAttributes::lease), supplied by the layer that manages leases (the
// server). Wherever the engine judges expiry (reads at the latest revision,
// snapshots from DB::GetSnapshot, commit functions), a key attached to a
// lease is treated like a key whose expire_at_unix_ms is the lease's
// deadline (the earlier of the two counts when it has both).
//
// Thread safety: DeadlineUnixMs is called from any thread, on every read of
// a key attached to a lease, sometimes on the commit leader's thread: it
// must be thread-safe, quick, and must not call into the DB.
class LeaseDeadlines {
 public:
  virtual ~LeaseDeadlines() = default;
  // Wall-clock deadline (ms since the Unix epoch) of lease `id`, or 0 if it
  // has none (its keys do not expire by it).
  virtual uint64_t DeadlineUnixMs(uint64_t id) const = 0;
};

// Tells compaction which keys the layer above can never read again, so
// their space comes back without rewriting anything synchronously (the
// server drops a deleted namespace's keys this way, docs/namespaces.md).
//
// Compaction asks once per user key it merges (not per version; push-down
// compactions, and DB::CompactRange, which also rewrites the range's
// bottom level in place for this). When the
// answer is a revision R and every reader the engine still serves is at or
// after R (every live snapshot, from DB::GetSnapshot or GetSnapshotAt, is
// at a revision >= R; iterators pin the files they read, so they are
// unaffected), compaction drops every version and tombstone of that key in
// its inputs. Versions of it in other files stay until those are compacted
// in turn; nothing else changes: the WAL files that keep the change log
// (DB::GetUpdatesSince) and checkpoints already taken are left as they are.
// The revision history window does not hold such a key back: the contract
// below says no read at any revision reaches it any more.
//
// Contract for implementations: answering R promises that from revision R
// on nobody reads `user_key` at any revision, current or past, except
// through a snapshot already held (those are protected as above); and the
// answer for a key never goes back from a revision to nullopt (the key is
// gone for good: e.g. the server never reuses a namespace id). The engine
// then needs no further coordination with the caller.
//
// Thread safety: UnreachableSince is called on compaction threads (and by
// DB::CompactRange's caller), concurrently, with the DB mutex NOT held: it
// must be thread-safe and quick (it runs once per key compacted), and must
// not call into the DB.
class CompactionFilter {
 public:
  virtual ~CompactionFilter() = default;
  // The revision from which no reader can reach `user_key` (any version),
  // or nullopt if it may still be read (the common case).
  virtual std::optional<Revision> UnreachableSince(
      std::string_view user_key) const = 0;
};

// Per-block compression of SSTable data blocks. Part of the on-disk format:
// the numeric value is stored in every block trailer; never change or reuse
// a value.
enum class CompressionType : uint8_t {
  kNone = 0,
  kSnappy = 1,
  kLZ4 = 2,
  kZstd = 3,
};

// When an acknowledged write is durable.
enum class WalSyncMode {
  // fdatasync the WAL before acknowledging a write whose WriteOptions::sync
  // is true (the default for the server). Concurrent writers share one
  // fsync (group commit). Survives kill -9 and power loss.
  kSync,
  // Never fsync on the write path; data reaches the OS page cache before
  // the write is acknowledged. Survives kill -9 of the process, not power
  // loss.
  kNoSync,
};

// Options that control a whole database. Fixed at DB::Open.
struct Options {
  // File system used for every file the engine touches. Not owned; must
  // outlive the DB. nullptr means Env::Default() (POSIX).
  Env* env = nullptr;

  // Create the database directory and an empty database if missing.
  bool create_if_missing = true;
  // Fail Open with AlreadyExists if the database already exists.
  bool error_if_exists = false;

  // Size in bytes the memtable may reach before it becomes immutable and is
  // flushed to a level-0 SSTable (the server's --memtable_bytes; at least
  // 64 KiB). Larger means fewer, larger L0 tables and a longer WAL replay
  // after a crash; memory use is up to (1 + max_immutable_memtables) times
  // this.
  size_t memtable_bytes = 64 << 20;
  // How many immutable memtables may wait for flush before writes stall.
  int max_immutable_memtables = 2;

  // WAL durability policy; see WalSyncMode.
  WalSyncMode wal_sync = WalSyncMode::kSync;

  // Uncompressed size in bytes of an SSTable data block.
  size_t block_size = 4096;
  // Keys between restart points in a block (prefix compression resets at
  // each restart point).
  int block_restart_interval = 16;
  // Bloom filter bits per key; 10 gives about 1% false positives. 0
  // disables filters.
  int bloom_bits_per_key = 10;
  // Size of each memtable's in-memory bloom filter over user keys, as a
  // fraction of memtable_bytes (1/64: 1 MiB for a 64 MiB memtable, about
  // 18 bits per key with 100-byte values). Lets a Get of a key that is not
  // in a memtable skip that memtable's skiplist search. 0 disables it.
  double memtable_bloom_size_ratio = 1.0 / 64;
  // Compression for data blocks. A block that does not shrink by at least
  // 1/8 is stored uncompressed.
  CompressionType compression = CompressionType::kLZ4;
  // Target size in bytes of one SSTable produced by compaction.
  size_t target_file_size = 64 << 20;

  // Capacity in bytes of the LRU block cache (data, index and filter
  // blocks).
  size_t block_cache_bytes = 256 << 20;
  // Upper bound on SSTable file descriptors kept open by the table cache.
  int max_open_files = 1000;

  // Read SSTables through a read-only memory mapping (Env::
  // NewMappedRandomAccessFile; LevelDB's default read path): an
  // uncompressed data block is read in place, with no copy, no system call
  // and no block cache entry, and its checksum is still verified on every
  // read (ReadOptions::verify_checksums). Compressed blocks still go
  // through the block cache. A mapped table needs no file descriptor. Only
  // the POSIX Env maps files (others read with pread). Off by default on
  // 32-bit builds (address space).
  //
  // Memory: mapped pages are the kernel's page cache (which pread fills
  // too), clean and file-backed: the kernel drops them under memory
  // pressure (a cgroup's memory.max reclaims them rather than OOM-killing),
  // but while touched they count in the process's RSS (RssFile), up to
  // max_mapped_table_bytes.
  //
  // SIGBUS: the engine never modifies a table file once written, and a
  // deleted file stays mapped and readable. A file already shorter than
  // the manifest says is DataLoss when the table is opened; but if another
  // process truncates a table file while it is mapped, the next read of a
  // page past the new end kills the process with SIGBUS (as LevelDB's
  // mmap reads do). Nothing but the engine may write to its directory.
  bool mmap_table_reads = sizeof(void*) >= 8;
  // At most this many bytes of table files are mapped at once; a table
  // opened beyond it is read with pread through the block cache (LevelDB
  // caps mmaps at 1000 files of 2 MiB). Bounds the RSS the mappings can add
  // (see mmap_table_reads). 0 maps nothing.
  uint64_t max_mapped_table_bytes = 1ull << 30;

  // Level-0 file count that triggers an L0->L1 compaction.
  int level0_compaction_trigger = 4;
  // Level-0 file count at which each write is delayed (1 ms) to let
  // compaction catch up.
  int level0_slowdown_writes_trigger = 8;
  // Level-0 file count at which writes stop until compaction catches up.
  int level0_stop_writes_trigger = 12;
  // Target total size in bytes of level 1; each deeper level is 10x.
  uint64_t max_bytes_for_level_base = 256ull << 20;
  // Threads that run compactions in the background (flushes have their own
  // thread).
  int compaction_threads = 1;

  // Running out of disk space (ENOSPC, EDQUOT) is not fatal: the engine
  // pauses writes (they fail with ResourceExhausted naming the cause),
  // retries the failed WAL switch or flush after this backoff, doubling up
  // to the maximum, and resumes writes by itself once a retry succeeds. A
  // failed compaction is retried on the same schedule without pausing
  // writes. Other I/O errors (EIO, corruption) still make the database
  // read-only until it is reopened.
  uint64_t out_of_space_retry_initial_micros = 100'000;
  uint64_t out_of_space_retry_max_micros = 5'000'000;

  // History (docs/revisions.md). With keep_history, the engine keeps every
  // version of every key and every change (the WAL files that hold them)
  // newer than the compacted revision, so reads at a past revision
  // (DB::GetSnapshotAt) and the change log (DB::GetUpdatesSince) reach
  // back that far; compaction reclaims only what is older. Without it, no
  // history is kept: the compacted revision is always the current one, as
  // in LevelDB.
  bool keep_history = false;
  // With keep_history, the engine advances the compacted revision by
  // itself so that at least this much history is kept: the newest revision
  // that is at least history_retention_seconds old (by the Env's clock,
  // sampled about once a second while the DB is open: after a restart the
  // window starts again, so more is kept, never less) and at least
  // history_retention_revisions behind the current revision. A limit of 0
  // does not constrain; when both are 0 only DB::CompactHistory advances
  // it.
  uint64_t history_retention_seconds = 3600;
  uint64_t history_retention_revisions = 0;

  // How many of the most recent writes (key, revision) the engine
  // remembers for CommitView::LastChangeInRange (range conflict checks of
  // optimistic transactions). Memory: about (key size + 80) bytes each.
  // 0 turns range conflict checks off.
  size_t conflict_window_keys = 0;

  // Lease deadlines (see LeaseDeadlines). Not owned; must outlive the DB.
  // nullptr: a key's lease does not make it expire.
  const LeaseDeadlines* lease_deadlines = nullptr;

  // Keys the layer above can never read again (see CompactionFilter), for
  // compaction to drop. Shared with the caller, which may keep updating
  // what it answers while the DB is open. nullptr: compaction drops only
  // what the LSM rules (overwritten, deleted, outside the history window)
  // allow.
  std::shared_ptr<const CompactionFilter> compaction_filter;

  // Restore only: allows DB::ApplyCommittedBatch, which appends batches
  // committed by another database (an incremental backup's change log) at
  // their own revisions with their own metadata. A serving database never
  // sets it, so nothing but a restore can write a revision or metadata
  // the engine did not compute itself (docs/backup.md).
  bool allow_committed_batches = false;
};

// Options for a read.
struct ReadOptions {
  // Verify block checksums on every read (they are always verified when a
  // block is first loaded into the block cache).
  bool verify_checksums = true;
  // Insert blocks read by this operation into the block cache. Long scans
  // may set false to avoid evicting the working set.
  bool fill_cache = true;
  // Read as of this snapshot (from DB::GetSnapshot). nullptr means the
  // latest state at the start of the read.
  const Snapshot* snapshot = nullptr;
  // When true, a Get that would have to read a block from disk returns
  // WouldBlockError() (Unavailable "would block"; IsWouldBlock tells it
  // apart, see db.h) instead of doing I/O. Lets an event-loop thread answer cache hits inline and hand
  // the rest to a thread that may block.
  bool cache_only = false;
  // With a snapshot from DB::GetSnapshotAt (a past revision): also treat
  // keys whose expiry deadline (own or lease's) is at or before the wall
  // clock now (when the read or iterator starts) as absent, as reads at the
  // latest revision do. False: history shows every key as it was at the
  // revision, deadlines passed since or not.
  bool hide_expired_history = false;
};

// Options for a write.
struct WriteOptions {
  // When true (and Options::wal_sync is kSync) the write is fsynced to the
  // WAL before it is acknowledged.
  bool sync = true;
  // The caller's deadline (wall clock; max() = none). A write still queued
  // when it passes is not applied: when the commit group that would hold
  // it is formed at or after the deadline, the write completes with
  // DeadlineExceeded and nothing of it (nor its CommitFunction) runs. An
  // overloaded server thereby drops writes whose client has given up
  // instead of spending the WAL, an fsync and a revision on them. A write
  // whose group formed in time commits even if it finishes after the
  // deadline (the caller then learns the outcome only from a later read).
  // Compared with the real wall clock (std::chrono::system_clock, as gRPC
  // deadlines are), not Options::env's: a test's manual clock does not
  // expire it. DB::ApplyCommittedBatch ignores it.
  std::chrono::system_clock::time_point deadline =
      std::chrono::system_clock::time_point::max();
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_OPTIONS_H_
