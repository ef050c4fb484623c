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
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "cache/lru_cache.h"
#include "compaction/compaction.h"
#include "db/db_counters.h"
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

  absl::Status Put(const WriteOptions& options, std::string_view key,
                   std::string_view value) override;
  absl::Status Delete(const WriteOptions& options,
                      std::string_view key) override;
  absl::Status Write(const WriteOptions& options, WriteBatch* batch) override;
  void WriteAsync(const WriteOptions& options, WriteBatch batch,
                  WriteCallback done) override;
  absl::StatusOr<std::string> Get(const ReadOptions& options,
                                  std::string_view key) override;
  std::unique_ptr<Iterator> NewIterator(const ReadOptions& options) override;
  const Snapshot* GetSnapshot() override;
  void ReleaseSnapshot(const Snapshot* snapshot) override;
  absl::Status SyncWAL() override;
  absl::Status Flush() override;
  absl::Status CompactRange(std::optional<std::string_view> begin,
                            std::optional<std::string_view> end) override;
  Statistics GetStatistics() override;

  // Test hooks.
  int TEST_NumFilesAtLevel(int level);
  // Called (if set) at named points of flush and compaction
  // ("flush:table_written", "compaction:outputs_written"); a non-OK status
  // aborts that job as if the I/O had failed.
  std::function<absl::Status(std::string_view point)> TEST_hook;

 private:
  struct PendingWrite;
  struct SuperVersion;
  class SnapshotImpl;
  struct ImmutableMemTable {
    MemTable* mem;
    uint64_t wal_number;  // The WAL holding its data.
  };

  // ---- write path (db_write.cc)
  void EnqueueWrite(PendingWrite* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LeadGroupCommit(PendingWrite* leader)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  WriteBatch* BuildBatchGroup(PendingWrite** last_member)
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
  void RecordBackgroundError(const absl::Status& s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SequenceNumber OldestSnapshotSequence() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Iterator* NewInternalIterator(const ReadOptions& options,
                                std::shared_ptr<const SuperVersion> sv);

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

  // Memtables. mem_ is replaced only by the write leader (under mu_).
  MemTable* mem_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::deque<ImmutableMemTable> imm_ ABSL_GUARDED_BY(mu_);  // Oldest first.
  // The WAL the active memtable's writes go to, and its file number.
  std::unique_ptr<record::Writer> wal_ ABSL_GUARDED_BY(mu_);
  uint64_t wal_number_ ABSL_GUARDED_BY(mu_) = 0;

  // Readers' view.
  Mutex sv_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::shared_ptr<const SuperVersion> sv_ ABSL_GUARDED_BY(sv_mu_);

  // Write queue (group commit).
  std::deque<PendingWrite*> write_queue_ ABSL_GUARDED_BY(mu_);
  CondVar commit_cv_;  // Wakes the commit thread.
  std::unique_ptr<WriteBatch> group_batch_ ABSL_GUARDED_BY(mu_);

  // Background work.
  CondVar flush_cv_;       // Wakes the flush thread.
  CondVar compaction_cv_;  // Wakes compaction threads.
  CondVar bg_done_cv_;     // Signalled when a flush/compaction ends.
  int running_compactions_ ABSL_GUARDED_BY(mu_) = 0;
  int manual_compactions_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<uint64_t> pending_outputs_ ABSL_GUARDED_BY(mu_);
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
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_DB_DB_IMPL_H_
