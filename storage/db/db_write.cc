// The write path: a queue of writers, group commit, revisions, memtable
// switching and write stalls.
//
// Every writer (synchronous or asynchronous) joins write_queue_. The writer at
// the front leads: it gathers the batches queued behind it into a group
// and commits them one after the other, each at the next revision
// (GroupCommit below): it runs the batch's CommitFunction, drops
// operations a later one of the same batch overrides and deletes of
// absent keys, looks up each key's current metadata (create revision,
// version) and encodes the batch in its committed form, one WAL record per
// revision. Then it appends the group's records to the WAL, fsyncs once if
// any member asked for sync, inserts them into the memtable, publishes the
// last revision, tells the commit listener and completes every member. A
// synchronous writer leads on its own thread; a group whose front is
// asynchronous is led by the commit thread, so WriteAsync never blocks its
// caller.

#include <chrono>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "db/db_impl.h"
#include "db/db_iter.h"
#include "db/write_batch_internal.h"
#include "env/io_error.h"
#include "spdlog/spdlog.h"
#include "table/merging_iterator.h"
#include "util/filename.h"
#include "util/status_macros.h"
#include "util/stored_value.h"

namespace strata::storage {

struct DBImpl::PendingWrite {
  WriteBatch* batch = nullptr;
  WriteBatch owned_batch;  // Async writers keep their batch here.
  bool sync = false;
  // WriteOptions::deadline.
  std::chrono::system_clock::time_point deadline =
      std::chrono::system_clock::time_point::max();
  bool done = false;
  absl::Status status;
  Revision revision = 0;   // Set when the write committed (or was a no-op).
  WriteCallback callback;  // Set for asynchronous writers.
  // Set by ApplyCommittedBatch: committed elsewhere, appended as it is.
  const ChangeBatch* committed = nullptr;
  CondVar cv;              // Signalled for synchronous writers.

  bool is_async() const { return static_cast<bool>(callback); }
  absl::StatusOr<Revision> result() const {
    if (!status.ok()) return status;
    return revision;
  }
};

namespace {
// A group holds at most this many bytes of batches.
constexpr size_t kMaxGroupBytes = 4 << 20;

// One operation of a user batch, pointing into the batch.
struct PendingOp {
  bool is_put = false;
  std::string_view key;
  std::string_view value;
  PutAttributes attributes;
};

class OpCollector final : public WriteBatch::Handler {
 public:
  explicit OpCollector(std::vector<PendingOp>* ops) : ops_(ops) {}
  void Put(std::string_view key, std::string_view value,
           const PutAttributes& attributes) override {
    ops_->push_back({true, key, value, attributes});
  }
  void Delete(std::string_view key) override {
    ops_->push_back({false, key, {}, {}});
  }

 private:
  std::vector<PendingOp>* const ops_;
};

// Keeps only the last operation of each key, in the order of those last
// operations (a later operation of the same key in one batch wins).
void DropOverriddenOps(std::vector<PendingOp>* ops) {
  if (ops->size() < 2) return;
  absl::flat_hash_map<std::string_view, size_t> last;
  last.reserve(ops->size());
  for (size_t i = 0; i < ops->size(); i++) last[(*ops)[i].key] = i;
  if (last.size() == ops->size()) return;
  size_t out = 0;
  for (size_t i = 0; i < ops->size(); i++) {
    if (last[(*ops)[i].key] == i) (*ops)[out++] = (*ops)[i];
  }
  ops->resize(out);
}

absl::Status DecodeChanges(
    const std::vector<std::shared_ptr<const std::string>>& records,
    std::vector<ChangeBatch>* changes) {
  changes->resize(records.size());
  for (size_t i = 0; i < records.size(); i++) {
    RETURN_IF_ERROR(ChangeBatch::Decode(records[i], &(*changes)[i]));
  }
  return absl::OkStatus();
}

}  // namespace

// Encodes one group's batches in their committed form. Reads go to the
// pinned SuperVersion at the last published revision, plus an overlay
// memtable holding what earlier batches of the same group wrote (there is
// one only when the group has more than one batch). Runs on the leader
// without the DB mutex.
class DBImpl::GroupCommit final : public CommitView {
 public:
  // `compacted`: the compacted revision, read under the DB mutex together
  // with `sv` (so no table in sv dropped a change above it).
  GroupCommit(DBImpl* db, std::shared_ptr<const SuperVersion> sv,
              SequenceNumber base, SequenceNumber compacted,
              bool needs_overlay)
      : db_(db),
        sv_(std::move(sv)),
        base_(base),
        compacted_(compacted),
        now_unix_ms_(db->env_->NowUnixMillis()),
        next_(base + 1) {
    if (needs_overlay) {
      overlay_ = new MemTable(db_->icmp_);
      overlay_->Ref();
    }
  }
  ~GroupCommit() override {
    if (overlay_ != nullptr) overlay_->Unref();
  }

  // Commits `batch` at the next revision. Returns the revision (or the
  // last revision so far when the batch changed nothing), or the error of
  // its CommitFunction or of a lookup; the batch then writes nothing.
  absl::StatusOr<Revision> Add(WriteBatch* batch) {
    if (batch->commit_function()) {
      RETURN_IF_ERROR(batch->commit_function()(this, batch));
    }
    ops_.clear();
    OpCollector collector(&ops_);
    RETURN_IF_ERROR(batch->Iterate(&collector));
    DropOverriddenOps(&ops_);
    CommittedBatchBuilder builder(next_);
    for (const PendingOp& op : ops_) {
      LookupResult current;
      KeyMetadata meta;
      RETURN_IF_ERROR(LookupLatest(op.key, &current, &meta));
      // An expired key is absent (a put re-creates it) but still on disk
      // until deleted (a delete writes its tombstone).
      const bool present = current.state == LookupResult::State::kFound;
      const bool live = present && !Expired(meta);
      if (op.is_put) {
        KeyMetadata next;
        next.mod_revision = next_;
        next.create_revision = live ? meta.create_revision : next_;
        next.version = live ? meta.version + 1 : 1;
        next.attributes = op.attributes;
        builder.Put(op.key, next, op.value);
        user_bytes_ += op.key.size() + op.value.size();
      } else if (present) {
        builder.Delete(op.key);
        user_bytes_ += op.key.size();
      } else {
        continue;
      }
      db_->recent_writes_->Record(op.key, next_);
    }
    if (builder.count() == 0) return next_ - 1;
    return AppendRecord(&builder);
  }

  // Appends a batch committed elsewhere (DB::ApplyCommittedBatch) at its
  // own revision, with its own metadata: no lookups, nothing dropped.
  absl::StatusOr<Revision> AddCommitted(const ChangeBatch& batch) {
    if (batch.revision != next_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "committed batch at revision %d, but the next revision is %d",
          batch.revision, next_));
    }
    if (batch.changes.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "committed batch at revision %d has no change", batch.revision));
    }
    // Checked whole before anything is recorded: a bad batch leaves no
    // trace (no window entries, no statistics).
    absl::flat_hash_set<std::string_view> seen;
    for (const Change& c : batch.changes) {
      if (c.key.empty() || !seen.insert(c.key).second) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "committed batch at revision %d: an empty or repeated key",
            batch.revision));
      }
      const KeyMetadata& m = c.metadata;
      if (c.type == Change::Type::kPut &&
          (m.mod_revision != next_ || m.create_revision == 0 ||
           m.create_revision > next_ || m.version == 0)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "committed batch at revision %d: impossible metadata (create "
            "revision %d, mod revision %d, version %d)",
            batch.revision, m.create_revision, m.mod_revision, m.version));
      }
    }
    CommittedBatchBuilder builder(next_);
    for (const Change& c : batch.changes) {
      if (c.type == Change::Type::kPut) {
        builder.Put(c.key, c.metadata, c.value);
        user_bytes_ += c.key.size() + c.value.size();
      } else {
        builder.Delete(c.key);
        user_bytes_ += c.key.size();
      }
      db_->recent_writes_->Record(c.key, next_);
    }
    return AppendRecord(&builder);
  }

  // Seals the batch `builder` holds as revision next_: its record joins the
  // group's, and the overlay for later batches of the group.
  absl::StatusOr<Revision> AppendRecord(CommittedBatchBuilder* builder) {
    keys_ += builder->count();
    records_.push_back(std::make_shared<const std::string>(builder->Finish()));
    if (overlay_ != nullptr) {
      RETURN_IF_ERROR(
          WriteBatchInternal::InsertCommitted(*records_.back(), overlay_));
    }
    return next_++;
  }

  // The committed batches, one per revision from base + 1 on.
  const std::vector<std::shared_ptr<const std::string>>& records() const {
    return records_;
  }
  SequenceNumber last_revision() const { return next_ - 1; }
  // Keys written and bytes of their keys and values (for statistics).
  uint64_t keys() const { return keys_; }
  uint64_t user_bytes() const { return user_bytes_; }

  // CommitView.
  Revision revision() const override { return next_; }
  Revision base_revision() const override { return next_ - 1; }
  absl::Status Get(std::string_view key, std::string* value,
                   KeyMetadata* metadata) override {
    return GetLatest(key, /*include_expired=*/false, value, metadata);
  }
  absl::Status GetStored(std::string_view key, std::string* value,
                         KeyMetadata* metadata) override {
    return GetLatest(key, /*include_expired=*/true, value, metadata);
  }

  std::unique_ptr<Iterator> NewIterator() override {
    std::vector<Iterator*> extra;
    if (overlay_ != nullptr) {
      overlay_->Ref();
      Iterator* it = overlay_->NewIterator();
      MemTable* overlay = overlay_;
      it->RegisterCleanup([overlay] { overlay->Unref(); });
      extra.push_back(it);
    }
    Iterator* internal =
        db_->NewInternalIterator(ReadOptions(), sv_, std::move(extra));
    return std::unique_ptr<Iterator>(NewDBIterator(
        db_->icmp_.user_comparator(), internal, next_ - 1, now_unix_ms_,
        db_->options_.lease_deadlines));
  }
  absl::StatusOr<Revision> LastChangeRevision(std::string_view key) override {
    LookupResult current;
    KeyMetadata meta;
    RETURN_IF_ERROR(LookupLatest(key, &current, &meta));
    return current.state == LookupResult::State::kNotFound ? 0
                                                           : current.sequence;
  }
  absl::StatusOr<Revision> LastChangeInRange(
      std::string_view start, std::string_view end, Revision since,
      std::string* first_changed) override {
    return db_->recent_writes_->NewestInRange(start, end, since,
                                              first_changed);
  }
  Revision compacted_revision() const override { return compacted_; }
  uint64_t now_unix_ms() const override { return now_unix_ms_; }

 private:
  absl::Status GetLatest(std::string_view key, bool include_expired,
                         std::string* value, KeyMetadata* metadata) {
    LookupResult current;
    RETURN_IF_ERROR(LookupLatest(key, &current, metadata));
    if (current.state != LookupResult::State::kFound ||
        (!include_expired && Expired(*metadata))) {
      return absl::NotFoundError("key not found");
    }
    std::string_view v;
    RETURN_IF_ERROR(DecodeStoredValue(current.type, current.sequence,
                                      current.stored_value, metadata, &v));
    value->assign(v.data(), v.size());
    return absl::OkStatus();
  }
  // The newest entry of key: in the overlay, else as of base_. Fills *meta
  // when it is a value.
  absl::Status LookupLatest(std::string_view key, LookupResult* result,
                            KeyMetadata* meta) {
    result->state = LookupResult::State::kNotFound;
    bool found = false;
    if (overlay_ != nullptr) {
      found = overlay_->Get(LookupKey(key, kMaxSequenceNumber), result);
    }
    if (!found) {
      LookupKey lkey(key, base_);
      found = sv_->mem->Get(lkey, result);
      for (size_t i = 0; !found && i < sv_->imm.size(); i++) {
        found = sv_->imm[i]->Get(lkey, result);
      }
      if (!found) {
        RETURN_IF_ERROR(sv_->current->Get(ReadOptions(), lkey, result));
      }
    }
    if (result->state != LookupResult::State::kFound) return absl::OkStatus();
    std::string_view unused;
    return DecodeStoredValue(result->type, result->sequence,
                             result->stored_value, meta, &unused);
  }

  bool Expired(const KeyMetadata& m) const {
    return IsExpired(m.attributes, now_unix_ms_, db_->options_.lease_deadlines);
  }

  DBImpl* const db_;
  const std::shared_ptr<const SuperVersion> sv_;
  const SequenceNumber base_;
  const SequenceNumber compacted_;
  // The wall clock this group judges expiry by.
  const uint64_t now_unix_ms_;
  SequenceNumber next_;  // The revision the next non-empty batch gets.
  MemTable* overlay_ = nullptr;
  std::vector<PendingOp> ops_;  // Scratch, reused per batch.
  std::vector<std::shared_ptr<const std::string>> records_;
  uint64_t keys_ = 0;
  uint64_t user_bytes_ = 0;
};

absl::StatusOr<Revision> DBImpl::Put(const WriteOptions& options,
                                     std::string_view key,
                                     std::string_view value) {
  WriteBatch batch;
  batch.Put(key, value);
  return Write(options, &batch);
}

absl::StatusOr<Revision> DBImpl::Delete(const WriteOptions& options,
                                        std::string_view key) {
  WriteBatch batch;
  batch.Delete(key);
  return Write(options, &batch);
}

absl::StatusOr<Revision> DBImpl::Write(const WriteOptions& options,
                                       WriteBatch* batch) {
  if (batch == nullptr) return absl::InvalidArgumentError("null write batch");
  if (shutting_down_.load()) {
    return absl::FailedPreconditionError("database is shutting down");
  }
  PendingWrite w;
  w.batch = batch;
  w.sync = options.sync;
  w.deadline = options.deadline;
  RunSynchronousWrite(&w);
  return w.result();
}

void DBImpl::RunSynchronousWrite(PendingWrite* w) {
  MutexLock l(&mu_);
  EnqueueWrite(w);
  while (!w->done && write_queue_.front() != w) w->cv.Wait(&mu_);
  if (!w->done) LeadGroupCommit(w);
}

absl::Status DBImpl::ApplyCommittedBatch(const WriteOptions& options,
                                         const ChangeBatch& batch) {
  if (!options_.allow_committed_batches) {
    return absl::FailedPreconditionError(
        "ApplyCommittedBatch is for restores only "
        "(Options::allow_committed_batches is off)");
  }
  if (shutting_down_.load()) {
    return absl::FailedPreconditionError("database is shutting down");
  }
  WriteBatch empty;
  PendingWrite w;
  w.batch = &empty;
  w.committed = &batch;
  w.sync = options.sync;
  RunSynchronousWrite(&w);
  return w.status;
}

void DBImpl::WriteAsync(const WriteOptions& options, WriteBatch batch,
                        WriteCallback done) {
  {
    MutexLock l(&mu_);
    // Checked under the lock: the destructor sets the flag under it, and
    // the commit thread completes every writer queued before that.
    if (!shutting_down_.load()) {
      auto* w = new PendingWrite;
      w->owned_batch = std::move(batch);
      w->batch = &w->owned_batch;
      w->sync = options.sync;
      w->deadline = options.deadline;
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

size_t DBImpl::BuildGroup(std::vector<PendingWrite*>* group) {
  size_t size = 0;
  for (PendingWrite* w : write_queue_) {
    size_t bytes = WriteBatchInternal::ByteSize(w->batch);
    if (!group->empty() && size + bytes > kMaxGroupBytes) break;
    size += bytes;
    group->push_back(w);
  }
  return size;
}

void DBImpl::LeadGroupCommit(PendingWrite* leader) {
  absl::Status status = MakeRoomForWrite(/*force=*/false);
  std::vector<PendingWrite*> group;
  if (!status.ok()) {
    group.push_back(leader);  // Fail the leader alone; the next one retries.
  } else {
    BuildGroup(&group);
    bool any_sync = false;
    for (PendingWrite* w : group) any_sync |= w->sync;
    const bool sync = any_sync && options_.wal_sync == WalSyncMode::kSync;
    record::Writer* log = wal_.get();
    MemTable* mem = mem_;
    const SequenceNumber base = versions_->LastSequence();
    const bool decode_changes = commit_listener_ != nullptr;
    GroupCommit commit(this, GetSuperVersion(), base,
                       CompactedRevisionLocked(), group.size() > 1);

    // The leader is the only thread touching the WAL and the memtable's
    // write side, so the lock is released for lookups and I/O.
    leader_active_ = true;
    mu_.Unlock();
    // One clock read per group, only when some writer has a deadline.
    std::optional<std::chrono::system_clock::time_point> now;
    for (PendingWrite* w : group) {
      if (w->deadline != std::chrono::system_clock::time_point::max()) {
        if (!now.has_value()) now = std::chrono::system_clock::now();
        if (*now >= w->deadline) {
          w->status = absl::DeadlineExceededError(
              "the write's deadline passed while it waited in the write "
              "queue; nothing was written");
          w->revision = 0;
          write_counters_.expired_in_queue.Add();
          continue;
        }
      }
      absl::StatusOr<Revision> r = w->committed != nullptr
                                       ? commit.AddCommitted(*w->committed)
                                       : commit.Add(w->batch);
      w->status = r.status();
      w->revision = r.ok() ? *r : 0;
    }
    const auto& records = commit.records();
    uint64_t wal_bytes = 0;
    for (const auto& record : records) {
      if (!status.ok()) break;
      status = log->AddRecord(*record);
      wal_bytes += record->size();
    }
    if (status.ok() && sync && !records.empty()) {
      uint64_t start = env_->NowMicros();
      status = log->Sync();
      wal_counters_.syncs.Add();
      wal_counters_.sync_seconds.Observe((env_->NowMicros() - start) / 1e6);
    }
    // (AddRecord already handed the bytes to the OS, so a process crash
    // cannot lose them even without sync.)
    for (size_t i = 0; status.ok() && i < records.size(); i++) {
      status = WriteBatchInternal::InsertCommitted(*records[i], mem);
    }
    std::vector<ChangeBatch> changes;
    if (status.ok() && decode_changes) status = DecodeChanges(records, &changes);
    mu_.Lock();
    leader_active_ = false;
    // The flush thread's retry may be waiting for this leader to finish.
    if (!space_error_.ok()) bg_done_cv_.SignalAll();

    wal_counters_.appended_bytes.Add(wal_bytes);
    wal_counters_.records.Add(records.size());
    wal_counters_.writes_per_group_commit.Observe(
        static_cast<double>(group.size()));
    if (status.ok()) {
      if (!records.empty()) {
        versions_->SetLastSequence(commit.last_revision());
        published_wal_offset_ = log->BytesWritten();
        if (commit_listener_ != nullptr) {
          // Decoding our own encoding cannot fail; a listener set while
          // the lock was released gets the group decoded now (rare).
          absl::Status ds = changes.empty() ? DecodeChanges(records, &changes)
                                            : absl::OkStatus();
          if (ds.ok()) {
            commit_listener_->OnCommit(changes);
          } else {
            spdlog::error("commit listener skipped revisions {}..{}: {}",
                          base + 1, commit.last_revision(), ds.ToString());
          }
        }
      }
      write_counters_.keys.Add(commit.keys());
      write_counters_.user_bytes.Add(commit.user_bytes());
    } else {
      // The WAL may now hold a partial or unsynced record: acknowledge
      // nothing more, and never append after it. Out of space, the retry
      // cuts the WAL back to its published bytes (db_space.cc); anything
      // else leaves the database read-only until reopened.
      if (IsOutOfSpace(status)) wal_broken_ = true;
      RecordBackgroundError(status);
      if (!WriteRefusal().ok()) status = WriteRefusal();
    }
  }

  // Complete every member of the group, then wake the next leader.
  std::vector<PendingWrite*> async_done;
  for (PendingWrite* w : group) {
    write_queue_.pop_front();
    if (!status.ok()) w->status = status;
    w->done = true;
    if (w->is_async()) {
      async_done.push_back(w);
    } else if (w != leader) {
      w->cv.Signal();
    }
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
      w->callback(w->result());
      delete w;
    }
    mu_.Lock();
  }
}

absl::Status DBImpl::MakeRoomForWrite(bool force) {
  versions_->AssertHeld();
  using StallState = WriteCounters::StallState;
  bool allow_delay = !force;
  uint64_t stall_start = 0;
  absl::Status s;
  while (true) {
    if (!bg_error_.ok() || !space_error_.ok()) {
      s = WriteRefusal();
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
  versions_->AssertHeld();
  uint64_t number = versions_->NewFileNumber();
  auto file = env_->NewWritableFile(WalFileName(dbname_, number));
  if (!file.ok()) {
    RecordBackgroundError(file.status());
    return WriteRefusal();
  }
  // The old WAL's data must be durable before writes go to the new one, so
  // recovery never sees a newer WAL after a torn older one. (A broken WAL
  // was already closed and cut back, durably, by RepairWalTail.)
  if (wal_ != nullptr && !wal_broken_) {
    absl::Status s = wal_->Sync();
    if (s.ok()) s = wal_->Close();
    if (!s.ok()) {
      env_->RemoveFile(WalFileName(dbname_, number)).IgnoreError();
      if (IsOutOfSpace(s)) wal_broken_ = true;
      RecordBackgroundError(s);
      return WriteRefusal();
    }
  }
  // The new WAL's directory entry must survive power loss before writes to
  // it are acknowledged (fdatasync of the file alone does not promise that).
  absl::Status dir_status = env_->SyncDir(dbname_);
  if (!dir_status.ok()) {
    env_->RemoveFile(WalFileName(dbname_, number)).IgnoreError();
    // The old WAL is closed: the retry must not sync or append to it.
    if (IsOutOfSpace(dir_status)) wal_broken_ = true;
    RecordBackgroundError(dir_status);
    return WriteRefusal();
  }
  auto new_wal = std::make_unique<record::Writer>(std::move(*file),
                                                  record::kWalFormatVersion);
  // The new WAL's file header must be durable before the WAL is used: a
  // power loss may otherwise leave garbage in its place, which recovery
  // rightly refuses (DATA_LOSS), even though no acknowledged write lives
  // there yet. One fdatasync per memtable switch.
  if (absl::Status s = new_wal->Sync(); !s.ok()) {
    env_->RemoveFile(WalFileName(dbname_, number)).IgnoreError();
    if (IsOutOfSpace(s)) wal_broken_ = true;  // The old WAL is closed.
    RecordBackgroundError(s);
    return WriteRefusal();
  }
  wal_ = std::move(new_wal);
  wal_broken_ = false;
  imm_.push_back(ImmutableMemTable{mem_, wal_number_});
  wal_number_ = number;
  published_wal_offset_ = wal_->BytesWritten();
  wal_first_revision_[number] = versions_->LastSequence() + 1;
  mem_ = NewMemTable();
  mem_->Ref();
  InstallSuperVersion();
  flush_cv_.Signal();
  return absl::OkStatus();
}

}  // namespace strata::storage
