#ifndef STRATA_STORAGE_DB_DB_IMPL_H_
#define STRATA_STORAGE_DB_DB_IMPL_H_

// The engine coordinator. Threads and what they own:
//
//  * Client threads call Put/Delete/Write/Get/NewIterator. A synchronous
//    writer that reaches the front of the write queue becomes the group
//    commit leader: it appends the whole group to the WAL, fsyncs once,
//    inserts into the memtable and wakes the others.
//  * The commit thread leads groups whose front write is asynchronous
//    (WriteAsync from an event loop), so event-loop threads never block.
//  * The flush thread turns the oldest immutable memtable into a level-0
//    SSTable and installs it.
//  * Compaction threads (Options::compaction_threads) merge levels.
//
// mu_ guards the write queue, memtable switching, the version set and the
// background-work state. Readers take no lock on the lookup path: they pin a
// SuperVersion (memtable, immutable memtables, current version) through a
// shared_ptr copied under the short sv_mu_.

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "cache/lru_cache.h"
#include "compaction/compaction.h"
#include "db/db_counters.h"
#include "db/recent_writes.h"
#include "memtable/memtable.h"
#include "record/writer.h"
#include "strata/storage/db.h"
#include "strata/storage/env.h"
#include "util/dbformat.h"
#include "util/mutex.h"
#include "version/table_cache.h"
#include "version/version_set.h"

namespace strata::storage {

class DBImpl final : public DB {
 public:
  DBImpl(const Options& options, std::string dbname);
  ~DBImpl() override;

  // Locks the directory, recovers the manifest and WALs and starts the
  // background threads. Called once by DB::Open.
  absl::Status Open();

  absl::StatusOr<Revision> Put(const WriteOptions& options,
                               std::string_view key,
                               std::string_view value) override;
  absl::StatusOr<Revision> Delete(const WriteOptions& options,
                                  std::string_view key) override;
  absl::StatusOr<Revision> Write(const WriteOptions& options,
                                 WriteBatch* batch) override;
  void WriteAsync(const WriteOptions& options, WriteBatch batch,
                  WriteCallback done) override;
  absl::StatusOr<std::string> Get(const ReadOptions& options,
                                  std::string_view key) override;
  absl::StatusOr<GetResult> GetWithMetadata(const ReadOptions& options,
                                            std::string_view key) override;
  std::unique_ptr<Iterator> NewIterator(const ReadOptions& options) override;
  const Snapshot* GetSnapshot() override;
  absl::StatusOr<const Snapshot*> GetSnapshotAt(Revision revision) override;
  void ReleaseSnapshot(const Snapshot* snapshot) override;
  Revision CurrentRevision() override { return versions_->LastSequence(); }
  Revision CompactedRevision() override;
  absl::Status CompactHistory(Revision revision) override;
  absl::StatusOr<std::unique_ptr<ChangeIterator>> GetUpdatesSince(
      Revision revision) override;
  void SetCommitListener(CommitListener* listener) override;
  absl::Status SyncWAL() override;
  absl::Status Flush() override;
  absl::Status CompactRange(std::optional<std::string_view> begin,
                            std::optional<std::string_view> end) override;
  Statistics GetStatistics() override;
  absl::StatusOr<Revision> CreateCheckpoint(const std::string& dir) override;
  absl::Status ApplyCommittedBatch(const WriteOptions& options,
                                   const ChangeBatch& batch) override;
  absl::Status WriteAvailability() override;

  // Test hooks.
  int TEST_NumFilesAtLevel(int level);
  // Bytes of the open tables read through a memory mapping now.
  uint64_t TEST_MappedTableBytes() const {
    return table_cache_->mapped_bytes();
  }
  // Runs one step of automatic history retention now (it also runs about
  // once a second on the flush thread).
  void TEST_AdvanceHistory();
  // WAL files on disk that the change log still needs, by number.
  std::vector<uint64_t> TEST_RetainedWals();
  // Called (if set) at named points of flush and compaction
  // ("flush:table_written", "compaction:outputs_written",
  // "checkpoint:files_pinned" once a checkpoint has captured its state and
  // before it links or copies anything); a non-OK status
  // aborts that job as if the I/O had failed.
  std::function<absl::Status(std::string_view point)> TEST_hook;
  // While writes are paused for lack of space: makes the flush thread retry
  // now instead of after its backoff, waits for that attempt and returns
  // WriteAvailability() after it. Returns it at once otherwise.
  absl::Status TEST_RetryOutOfSpaceNow();

 private:
  struct PendingWrite;
  // What a reader pins: every memtable and table it may need to look at.
  struct SuperVersion {
    MemTable* mem = nullptr;
    std::vector<MemTable*> imm;  // Newest first.
    Version* current = nullptr;

    SuperVersion() = default;
    SuperVersion(const SuperVersion&) = delete;
    SuperVersion& operator=(const SuperVersion&) = delete;
    ~SuperVersion() {
      mem->Unref();
      for (MemTable* m : imm) m->Unref();
      current->Unref();
    }
  };

  class SnapshotImpl;
  class GroupCommit;
  class WalChangeIterator;
  struct ImmutableMemTable {
    MemTable* mem;
    uint64_t wal_number;  // The WAL holding its data.
  };

  // ---- write path (db_write.cc)
  void EnqueueWrite(PendingWrite* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a synchronous writer (Write, ApplyCommittedBatch) and returns
  // once it is done: it waits for its turn and leads the group commit if
  // no earlier leader took it along.
  void RunSynchronousWrite(PendingWrite* w) ABSL_LOCKS_EXCLUDED(mu_);
  void LeadGroupCommit(PendingWrite* leader)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends the writes at the front of the queue that commit together
  // (up to a byte limit) to *group; returns their batches' bytes.
  size_t BuildGroup(std::vector<PendingWrite*>* group)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status MakeRoomForWrite(bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A new memtable with the configured bloom filter (count 0: Ref it).
  MemTable* NewMemTable() const;
  absl::Status SwitchMemTable() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CommitThreadMain();

  // ---- recovery (db_recovery.cc)
  absl::Status Recover() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReplayWal(uint64_t number, VersionEdit* edit,
                         SequenceNumber* max_sequence, MemTable** mem)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Database format 2 reserves user keys beginning with \xff\xff for the
  // layers above (kReservedKeyPrefix); a format-1 database holding one is
  // refused (FailedPrecondition) rather than upgraded. CheckNoReservedKeys
  // looks at the tables, CheckNoReservedKeysIn at one format-1 WAL record.
  absl::Status CheckNoReservedKeys() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static absl::Status CheckNoReservedKeysIn(std::string_view record);
  // Writes a replayed memtable to a level-0 table, or, out of space (or
  // after an earlier flush ran out), keeps it as an immutable memtable for
  // the flush thread. Takes over the caller's reference to mem.
  absl::Status FlushRecoveredMemTable(MemTable* mem, VersionEdit* edit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads the first revision of a WAL kept for history into
  // wal_first_revision_ (nothing for a format-1 WAL).
  absl::Status NoteWalFirstRevision(uint64_t number)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ---- flush (db_flush.cc)
  void FlushThreadMain();
  absl::Status FlushOldestImmutable() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes mem to a new level-0 table; adds it to edit (nothing if empty).
  absl::Status WriteLevel0Table(MemTable* mem, VersionEdit* edit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ---- compaction (db_compaction.cc)
  void CompactionThreadMain();
  absl::Status RunCompaction(Compaction* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DoCompactionWork(Compaction* c, VersionEdit* edit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeScheduleCompaction() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ---- shared state
  void InstallSuperVersion() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<const SuperVersion> GetSuperVersion();
  void DeleteObsoleteFiles() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A failure of background work or of the WAL: out of space (IsOutOfSpace)
  // pauses writes until the flush thread's retry succeeds; anything else
  // makes the database read-only until reopened.
  void RecordBackgroundError(const absl::Status& s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Why writes are refused now (bg_error_, else space_error_), or OK.
  absl::Status WriteRefusal() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ---- out of space (db_space.cc)
  // Flush thread, while writes are paused for lack of space: waits for the
  // backoff (or a TEST_ request, or shutdown), then tries to resume.
  void WaitForOutOfSpaceRetry() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RetryAfterOutOfSpace() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Redoes what failed: drops a possibly torn WAL tail and switches to a
  // fresh WAL, then flushes every immutable memtable. OK means writes may
  // resume.
  absl::Status ResumeAfterOutOfSpace() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes the WAL a failed append or sync left in an unknown state and
  // cuts it back to its published (acknowledged) bytes.
  absl::Status RepairWalTail() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Compaction threads: waits `micros` (or until shutdown).
  void CompactionBackoff(uint64_t micros) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // CompactRange's steps: runs `c` on the caller's thread, records a
  // failure as a background error (out of space: counted, not fatal),
  // deletes obsolete files; returns RunCompaction's status.
  absl::Status RunManualCompaction(std::unique_ptr<Compaction> c)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // CompactRange with a CompactionFilter: rewrites the files of the
  // deepest level overlapping [b, e] (nullptr = unbounded) in place, once.
  absl::Status CompactBottomInPlace(const InternalKey* b, const InternalKey* e)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The oldest revision a read may still need: compaction keeps the
  // newest entry of each key at or below it and everything above it. With
  // keep_history it is at most the compacted revision.
  SequenceNumber OldestSnapshotSequence() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // CompactedRevision() for callers holding mu_.
  SequenceNumber CompactedRevisionLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // What a read with these options sees: the revision, and the wall clock
  // expiry is judged by (0: none, for reads of a past revision).
  struct ReadPoint {
    SequenceNumber sequence;
    uint64_t now_unix_ms;
  };
  ReadPoint ReadPointFor(const ReadOptions& options) const;
  // Looks key up as of sequence; fills *result.
  absl::Status LookupEntry(const ReadOptions& options, std::string_view key,
                           SequenceNumber sequence, LookupResult* result);
  // A merging iterator over sv's memtables and tables plus `extra`
  // (owned by the result).
  Iterator* NewInternalIterator(const ReadOptions& options,
                                std::shared_ptr<const SuperVersion> sv,
                                std::vector<Iterator*> extra = {});

  // ---- history (db_history.cc)
  // Advances the compacted revision per Options::history_retention_*;
  // called about once a second from the flush thread.
  void MaybeAdvanceHistory() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether history retention needs MaybeAdvanceHistory calls.
  bool HistoryRetentionIsTimed() const {
    return options_.keep_history && (options_.history_retention_seconds > 0 ||
                                     options_.history_retention_revisions > 0);
  }
  absl::Status SetCompactedRevision(SequenceNumber revision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether WAL `number` may hold changes after the compacted revision
  // (and must be kept for GetUpdatesSince).
  bool WalNeededForHistory(uint64_t number) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Fixed at construction.
  const Options options_;
  const std::string dbname_;
  Env* const env_;
  const InternalKeyComparator icmp_;
  // Bumped by every table through TableOptions, so declared before them.
  FilterCounters filter_counters_;
  std::unique_ptr<Cache> block_cache_;
  std::unique_ptr<TableCache> table_cache_;
  std::unique_ptr<FileLock> db_lock_;

  Mutex mu_;
  std::unique_ptr<VersionSet> versions_;  // Guarded by mu_ (see its notes).
  std::atomic<bool> shutting_down_{false};
  absl::Status bg_error_ ABSL_GUARDED_BY(mu_);
  // Set (ResourceExhausted) while writes are paused for lack of space; the
  // flush thread clears it once a retry succeeds (db_space.cc).
  absl::Status space_error_ ABSL_GUARDED_BY(mu_);
  // The current WAL saw a failed append or sync for lack of space: it may
  // end in a torn or unacknowledged record, so nothing is appended to it
  // again; the retry cuts it back and switches to a fresh WAL.
  bool wal_broken_ ABSL_GUARDED_BY(mu_) = false;
  // A group commit leader is writing the WAL and memtable without mu_.
  bool leader_active_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t space_retry_micros_ ABSL_GUARDED_BY(mu_) = 0;  // Next backoff.
  uint64_t retry_requests_ ABSL_GUARDED_BY(mu_) = 0;  // TEST_ requests.
  uint64_t retry_attempts_ ABSL_GUARDED_BY(mu_) = 0;  // ...answered.
  // Recovery: once a replayed memtable could not be flushed for lack of
  // space, later ones are kept as immutable memtables too (level-0 tables
  // must be written oldest data first); the WAL the memtable being
  // replayed starts in.
  bool defer_recovery_flushes_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t recovery_mem_first_wal_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status recovery_space_error_ ABSL_GUARDED_BY(mu_);
  // 0: writes accepted; 1: paused for lack of space; 2: read-only. For
  // WriteAvailability without mu_ (which may be held across I/O); the
  // refusal itself is copied under availability_mu_, which never is.
  std::atomic<int> write_availability_{0};
  Mutex availability_mu_ ABSL_ACQUIRED_AFTER(mu_);
  absl::Status availability_ ABSL_GUARDED_BY(availability_mu_);
  // Sets write_availability_ and availability_ from bg_error_ and
  // space_error_.
  void PublishWriteAvailability() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Memtables. mem_ is replaced only by the write leader (under mu_).
  MemTable* mem_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::deque<ImmutableMemTable> imm_ ABSL_GUARDED_BY(mu_);  // Oldest first.
  // The WAL the active memtable's writes go to, and its file number.
  std::unique_ptr<record::Writer> wal_ ABSL_GUARDED_BY(mu_);
  uint64_t wal_number_ ABSL_GUARDED_BY(mu_) = 0;
  // Bytes of the current WAL that hold published (visible) revisions: the
  // change log reads the live WAL only up to here.
  uint64_t published_wal_offset_ ABSL_GUARDED_BY(mu_) = 0;
  // The first revision each WAL (format 2) may hold, by WAL number: WAL n
  // holds [first(n), first(next WAL)). For history retention.
  std::map<uint64_t, SequenceNumber> wal_first_revision_ ABSL_GUARDED_BY(mu_);
  CommitListener* commit_listener_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Recent writes for range conflict checks; set by Open, then used only by
  // the commit leader (one at a time, ordered by mu_).
  std::unique_ptr<RecentWriteIndex> recent_writes_;
  // (time in microseconds, revision) samples for time-based retention,
  // oldest first.
  std::deque<std::pair<uint64_t, SequenceNumber>> history_samples_
      ABSL_GUARDED_BY(mu_);
  uint64_t last_history_advance_micros_ ABSL_GUARDED_BY(mu_) = 0;

  // Readers' view.
  Mutex sv_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::shared_ptr<const SuperVersion> sv_ ABSL_GUARDED_BY(sv_mu_);

  // Write queue (group commit).
  std::deque<PendingWrite*> write_queue_ ABSL_GUARDED_BY(mu_);
  CondVar commit_cv_;  // Wakes the commit thread.

  // Background work.
  CondVar flush_cv_;       // Wakes the flush thread.
  CondVar compaction_cv_;  // Wakes compaction threads.
  CondVar bg_done_cv_;     // Signalled when a flush/compaction ends.
  int running_compactions_ ABSL_GUARDED_BY(mu_) = 0;
  int manual_compactions_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<uint64_t> pending_outputs_ ABSL_GUARDED_BY(mu_);
  // Tables and WALs (by number) that a checkpoint being written still
  // needs: DeleteObsoleteFiles keeps them even once obsolete. A multiset:
  // concurrent checkpoints pin the same files.
  std::multiset<uint64_t> pinned_files_ ABSL_GUARDED_BY(mu_);
  CompactionPickerState picker_state_ ABSL_GUARDED_BY(mu_);
  // Inputs of running compactions; the policy never picks them again.
  FilesInProgress compacting_files_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;

  // Snapshots, oldest first.
  std::multiset<SequenceNumber> snapshots_ ABSL_GUARDED_BY(mu_);

  // Statistics (db_counters.h; GetStatistics copies them).
  WalCounters wal_counters_;
  WriteCounters write_counters_;
  FlushCounters flush_counters_;
  CompactionCounters compaction_counters_;
  ReadCounters read_counters_;
  Counter background_errors_;
  Counter space_errors_;
  Counter space_pauses_;
  Counter space_resumes_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_DB_DB_IMPL_H_
