// The write path: the write queue, group commit, memtable switching and
// write stalls.
//
// Every write (synchronous or asynchronous) joins write_queue_ as a
// PendingWrite. The one at the front leads: it gathers the batches queued behind it into one group,
// appends the group to the WAL as one record, fsyncs once if any member
// asked for sync, inserts the group into the memtable, publishes the new
// last sequence number and completes every member. A synchronous writer
// leads on its own thread; a group whose front is asynchronous is led by
// the commit thread, so WriteAsync never blocks its caller.

#include <chrono>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "db/db_impl.h"
#include "db/write_batch_internal.h"
#include "spdlog/spdlog.h"
#include "util/filename.h"
#include "util/status_macros.h"

namespace strata::storage {

// One Write or WriteAsync call waiting in write_queue_ until a group commit
// completes it.
struct DBImpl::PendingWrite {
  WriteBatch* batch = nullptr;
  WriteBatch owned_batch;  // Asynchronous writes keep their batch here.
  bool sync = false;
  bool done = false;
  absl::Status status;
  WriteCallback callback;  // Set for asynchronous writes.
  CondVar cv;              // Signalled for synchronous writes.

  bool is_async() const { return static_cast<bool>(callback); }
};

namespace {
// A group holds at most this many bytes of batches (one WAL record).
constexpr size_t kMaxGroupBytes = 4 << 20;
}  // namespace

absl::Status DBImpl::Put(const WriteOptions& options, std::string_view key,
                         std::string_view value) {
  WriteBatch batch;
  batch.Put(key, value);
  return Write(options, &batch);
}

absl::Status DBImpl::Delete(const WriteOptions& options,
                            std::string_view key) {
  WriteBatch batch;
  batch.Delete(key);
  return Write(options, &batch);
}

absl::Status DBImpl::Write(const WriteOptions& options, WriteBatch* batch) {
  if (batch == nullptr) return absl::InvalidArgumentError("null write batch");
  if (shutting_down_.load()) {
    return absl::FailedPreconditionError("database is shutting down");
  }
  PendingWrite w;
  w.batch = batch;
  w.sync = options.sync;
  MutexLock l(&mu_);
  EnqueueWrite(&w);
  while (!w.done && write_queue_.front() != &w) w.cv.Wait(&mu_);
  if (w.done) return w.status;
  LeadGroupCommit(&w);
  return w.status;
}

void DBImpl::WriteAsync(const WriteOptions& options, WriteBatch batch,
                        WriteCallback done) {
  {
    MutexLock l(&mu_);
    // Checked under the lock: the destructor sets the flag under it, and
    // the commit thread completes every write queued before that.
    if (!shutting_down_.load()) {
      auto* w = new PendingWrite;
      w->owned_batch = std::move(batch);
      w->batch = &w->owned_batch;
      w->sync = options.sync;
      w->callback = std::move(done);
      EnqueueWrite(w);
      if (write_queue_.front() == w) commit_cv_.Signal();
      return;
    }
  }
  done(absl::FailedPreconditionError("database is shutting down"));
}

void DBImpl::EnqueueWrite(PendingWrite* w) { write_queue_.push_back(w); }

void DBImpl::CommitThreadMain() {
  MutexLock l(&mu_);
  while (true) {
    while (!(!write_queue_.empty() && write_queue_.front()->is_async()) &&
           !(shutting_down_.load() && write_queue_.empty())) {
      commit_cv_.Wait(&mu_);
    }
    if (write_queue_.empty()) return;  // Shutting down with nothing queued.
    LeadGroupCommit(write_queue_.front());
  }
}

WriteBatch* DBImpl::BuildBatchGroup(PendingWrite** last_member) {
  PendingWrite* first = write_queue_.front();
  WriteBatch* result = first->batch;
  size_t size = WriteBatchInternal::ByteSize(first->batch);
  *last_member = first;
  for (auto it = write_queue_.begin() + 1; it != write_queue_.end(); ++it) {
    PendingWrite* w = *it;
    size += WriteBatchInternal::ByteSize(w->batch);
    if (size > kMaxGroupBytes) break;
    if (result == first->batch) {
      // Switch to the shared group batch rather than modify the caller's.
      if (group_batch_ == nullptr) group_batch_ = std::make_unique<WriteBatch>();
      result = group_batch_.get();
      result->Clear();
      result->Append(*first->batch);
    }
    result->Append(*w->batch);
    *last_member = w;
  }
  return result;
}

void DBImpl::LeadGroupCommit(PendingWrite* leader) {
  absl::Status status = MakeRoomForWrite(/*force=*/false);
  PendingWrite* last_member = leader;
  if (status.ok()) {
    WriteBatch* group = BuildBatchGroup(&last_member);
    SequenceNumber last_sequence = versions_->LastSequence();
    WriteBatchInternal::SetSequence(group, last_sequence + 1);
    last_sequence += group->Count();
    bool any_sync = false;
    size_t members = 0;
    for (PendingWrite* w : write_queue_) {
      members++;
      any_sync |= w->sync;
      if (w == last_member) break;
    }
    bool sync = any_sync && options_.wal_sync == WalSyncMode::kSync;
    record::Writer* wal = wal_.get();
    MemTable* mem = mem_;
    std::string_view record = WriteBatchInternal::Contents(group);

    // The leader is the only thread touching the WAL and the memtable's
    // write side, so the lock is released for the I/O.
    mu_.Unlock();
    status = wal->AddRecord(record);
    if (status.ok()) {
      if (sync) {
        uint64_t start = env_->NowMicros();
        status = wal->Sync();
        wal_counters_.syncs.Add();
        wal_counters_.sync_seconds.Observe((env_->NowMicros() - start) / 1e6);
      }
      // (AddRecord already handed the bytes to the OS, so a process crash
      // cannot lose them even without sync.)
    }
    if (status.ok()) status = WriteBatchInternal::InsertInto(group, mem);
    mu_.Lock();

    wal_counters_.appended_bytes.Add(record.size());
    wal_counters_.records.Add();
    wal_counters_.writes_per_group_commit.Observe(
        static_cast<double>(members));
    if (status.ok()) {
      versions_->SetLastSequence(last_sequence);
      write_counters_.keys.Add(group->Count());
      write_counters_.user_bytes.Add(WriteBatchInternal::UserBytes(group));
    } else {
      // The WAL may now hold a partial or unsynced record: acknowledge
      // nothing more until the database is reopened.
      RecordBackgroundError(status);
      status = bg_error_;
    }
    if (group == group_batch_.get()) group->Clear();
  }

  // Complete every member of the group, then wake the next leader.
  std::vector<PendingWrite*> async_done;
  while (true) {
    PendingWrite* w = write_queue_.front();
    write_queue_.pop_front();
    w->status = status;
    w->done = true;
    if (w->is_async()) {
      async_done.push_back(w);
    } else if (w != leader) {
      w->cv.Signal();
    }
    if (w == last_member) break;
  }
  if (!write_queue_.empty()) {
    if (write_queue_.front()->is_async()) {
      commit_cv_.Signal();
    } else {
      write_queue_.front()->cv.Signal();
    }
  } else {
    bg_done_cv_.SignalAll();  // SyncWAL and Flush wait for an empty queue.
    // The commit thread exits on an empty queue once shutdown has begun.
    // Waking it on every empty queue cost each synchronous write two context
    // switches (about half of fillseq's CPU, see docs/benchmarks.md).
    if (shutting_down_.load()) commit_cv_.Signal();
  }
  if (!async_done.empty()) {
    // Callbacks run without the lock: they may call back into the DB.
    mu_.Unlock();
    for (PendingWrite* w : async_done) {
      w->callback(w->status);
      delete w;
    }
    mu_.Lock();
  }
}

absl::Status DBImpl::MakeRoomForWrite(bool force) {
  using StallState = WriteCounters::StallState;
  bool allow_delay = !force;
  uint64_t stall_start = 0;
  absl::Status s;
  while (true) {
    if (!bg_error_.ok()) {
      s = bg_error_;
      break;
    }
    int l0_files = versions_->current()->NumFiles(0);
    if (allow_delay && l0_files >= options_.level0_slowdown_writes_trigger) {
      // Slow down each write a little rather than stopping completely
      // later: gives compaction room and spreads the delay.
      write_counters_.stall_state.store(StallState::kSlowdown);
      uint64_t start = env_->NowMicros();
      mu_.Unlock();
      absl::SleepFor(absl::Milliseconds(1));
      mu_.Lock();
      write_counters_.stall_micros.Add(env_->NowMicros() - start);
      allow_delay = false;
      continue;
    }
    if (!force && mem_->ApproximateMemoryUsage() < options_.memtable_bytes) {
      break;  // Room in the current memtable.
    }
    if (static_cast<int>(imm_.size()) >= options_.max_immutable_memtables ||
        l0_files >= options_.level0_stop_writes_trigger) {
      // Stop until a flush or compaction catches up.
      if (shutting_down_.load()) {
        s = absl::FailedPreconditionError("database is shutting down");
        break;
      }
      write_counters_.stall_state.store(StallState::kStop);
      if (stall_start == 0) stall_start = env_->NowMicros();
      if (static_cast<int>(imm_.size()) >= options_.max_immutable_memtables) {
        flush_cv_.Signal();
      } else {
        compaction_cv_.SignalAll();
      }
      bg_done_cv_.Wait(&mu_);
      continue;
    }
    s = SwitchMemTable();
    force = false;
    if (!s.ok()) break;
  }
  if (stall_start != 0) {
    write_counters_.stall_micros.Add(env_->NowMicros() - stall_start);
  }
  write_counters_.stall_state.store(StallState::kNone);
  return s;
}

MemTable* DBImpl::NewMemTable() const {
  return new MemTable(icmp_, static_cast<size_t>(
                                 static_cast<double>(options_.memtable_bytes) *
                                 options_.memtable_bloom_size_ratio));
}

absl::Status DBImpl::SwitchMemTable() {
  uint64_t number = versions_->NewFileNumber();
  auto file = env_->NewWritableFile(WalFileName(dbname_, number));
  if (!file.ok()) {
    RecordBackgroundError(file.status());
    return bg_error_;
  }
  // The old WAL's data must be durable before writes go to the new one, so
  // recovery never sees a newer WAL after a torn older one.
  if (wal_ != nullptr) {
    absl::Status s = wal_->Sync();
    if (s.ok()) s = wal_->Close();
    if (!s.ok()) {
      env_->RemoveFile(WalFileName(dbname_, number)).IgnoreError();
      RecordBackgroundError(s);
      return bg_error_;
    }
  }
  // The new WAL's directory entry must survive power loss before writes to
  // it are acknowledged (fdatasync of the file alone does not promise that).
  absl::Status dir_status = env_->SyncDir(dbname_);
  if (!dir_status.ok()) {
    RecordBackgroundError(dir_status);
    return bg_error_;
  }
  auto new_wal = std::make_unique<record::Writer>(std::move(*file));
  // The new WAL's file header must be durable before the WAL is used: a
  // power loss may otherwise leave garbage in its place, which recovery
  // rightly refuses (DATA_LOSS), even though no acknowledged write lives
  // there yet. One fdatasync per memtable switch.
  if (absl::Status s = new_wal->Sync(); !s.ok()) {
    env_->RemoveFile(WalFileName(dbname_, number)).IgnoreError();
    RecordBackgroundError(s);
    return bg_error_;
  }
  wal_ = std::move(new_wal);
  imm_.push_back(ImmutableMemTable{mem_, wal_number_});
  wal_number_ = number;
  mem_ = NewMemTable();
  mem_->Ref();
  InstallSuperVersion();
  flush_cv_.Signal();
  return absl::OkStatus();
}

}  // namespace strata::storage
