#include "db/db_impl.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "db/db_iter.h"
#include "db/write_batch_internal.h"
#include "env/io_error.h"
#include "util/stored_value.h"
#include "spdlog/spdlog.h"
#include "table/merging_iterator.h"
#include "util/filename.h"
#include "util/status_macros.h"

namespace strata::storage {

class DBImpl::SnapshotImpl final : public Snapshot {
 public:
  SnapshotImpl(SequenceNumber seq, uint64_t now_unix_ms)
      : sequence(seq), expiry_now_unix_ms(now_unix_ms) {}
  ~SnapshotImpl() override = default;
  Revision revision() const override { return sequence; }
  const SequenceNumber sequence;
  // The wall clock keys' expiry is judged by (when the snapshot was taken);
  // 0 for a snapshot of a past revision: history shows keys as they were.
  const uint64_t expiry_now_unix_ms;
};

namespace {

Options SanitizeOptions(Options o) {
  if (o.env == nullptr) o.env = Env::Default();
  o.memtable_bytes = std::max<size_t>(o.memtable_bytes, 64 << 10);
  o.max_immutable_memtables = std::max(o.max_immutable_memtables, 1);
  o.block_size = std::max<size_t>(o.block_size, 256);
  o.block_restart_interval = std::max(o.block_restart_interval, 1);
  o.max_open_files = std::max(o.max_open_files, 20);
  o.level0_compaction_trigger = std::max(o.level0_compaction_trigger, 2);
  o.level0_slowdown_writes_trigger =
      std::max(o.level0_slowdown_writes_trigger, o.level0_compaction_trigger);
  o.level0_stop_writes_trigger =
      std::max(o.level0_stop_writes_trigger, o.level0_slowdown_writes_trigger);
  o.compaction_threads = std::clamp(o.compaction_threads, 1, 8);
  o.target_file_size = std::max<size_t>(o.target_file_size, 64 << 10);
  // NaN and negatives disable the memtable bloom; more than 1/4 of the
  // memtable would be memory for nothing.
  if (!(o.memtable_bloom_size_ratio > 0)) o.memtable_bloom_size_ratio = 0;
  o.memtable_bloom_size_ratio = std::min(o.memtable_bloom_size_ratio, 0.25);
  return o;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DB>> DB::Open(const Options& options,
                                             const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("empty database path");
  auto db = std::make_unique<DBImpl>(options, path);
  RETURN_IF_ERROR(db->Open());
  return std::unique_ptr<DB>(std::move(db));
}

DBImpl::DBImpl(const Options& options, std::string dbname)
    : options_(SanitizeOptions(options)),
      dbname_(std::move(dbname)),
      env_(options_.env),
      icmp_(BytewiseComparator()),
      block_cache_(NewLRUCache(options_.block_cache_bytes)) {
  TableOptions topts;
  topts.comparator = &icmp_;
  topts.block_cache = block_cache_.get();
  topts.filter_counters = &filter_counters_;
  table_cache_ = std::make_unique<TableCache>(
      dbname_, env_, topts, options_.max_open_files,
      options_.mmap_table_reads ? options_.max_mapped_table_bytes : 0);
  versions_ = std::make_unique<VersionSet>(dbname_, options_,
                                           table_cache_.get(), &icmp_, &mu_);
}

absl::Status DBImpl::Open() {
  if (options_.create_if_missing) RETURN_IF_ERROR(env_->CreateDir(dbname_));
  ASSIGN_OR_RETURN(db_lock_, env_->LockFile(LockFileName(dbname_)));
  {
    MutexLock l(&mu_);
    RETURN_IF_ERROR(Recover());
    recent_writes_ = std::make_unique<RecentWriteIndex>(
        options_.conflict_window_keys, versions_->LastSequence());
    InstallSuperVersion();
    DeleteObsoleteFiles();
  }
  threads_.emplace_back([this] { CommitThreadMain(); });
  threads_.emplace_back([this] { FlushThreadMain(); });
  for (int i = 0; i < options_.compaction_threads; i++) {
    threads_.emplace_back([this] { CompactionThreadMain(); });
  }
  MutexLock l(&mu_);
  MaybeScheduleCompaction();
  return absl::OkStatus();
}

DBImpl::~DBImpl() {
  {
    MutexLock l(&mu_);
    shutting_down_.store(true);
    commit_cv_.SignalAll();
    flush_cv_.SignalAll();
    compaction_cv_.SignalAll();
    bg_done_cv_.SignalAll();
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  {
    MutexLock l(&mu_);
    if (wal_ != nullptr && wal_broken_) {
      // Never let the close complete a refused record: cut the WAL back
      // to its acknowledged bytes, as the retry would have.
      absl::Status s = RepairWalTail();
      if (!s.ok()) spdlog::error("closing WAL: {}", s.ToString());
      wal_.reset();
    } else if (wal_ != nullptr) {
      absl::Status s = wal_->Sync();
      if (s.ok()) s = wal_->Close();
      if (!s.ok()) spdlog::error("closing WAL: {}", s.ToString());
      wal_.reset();
    }
  }
  {
    MutexLock l(&sv_mu_);
    sv_.reset();
  }
  MutexLock l(&mu_);
  if (mem_ != nullptr) mem_->Unref();
  for (auto& imm : imm_) imm.mem->Unref();
  imm_.clear();
  versions_.reset();
  table_cache_.reset();
  block_cache_.reset();
  db_lock_.reset();
}

void DBImpl::InstallSuperVersion() {
  versions_->AssertHeld();
  auto sv = std::make_shared<SuperVersion>();
  sv->mem = mem_;
  mem_->Ref();
  for (auto it = imm_.rbegin(); it != imm_.rend(); ++it) {
    it->mem->Ref();
    sv->imm.push_back(it->mem);
  }
  sv->current = versions_->current();
  sv->current->Ref();
  std::shared_ptr<const SuperVersion> old;
  {
    MutexLock l(&sv_mu_);
    old = std::move(sv_);
    sv_ = std::move(sv);
  }
  // `old` is released here, outside sv_mu_ (it may delete memtables).
}

std::shared_ptr<const DBImpl::SuperVersion> DBImpl::GetSuperVersion() {
  MutexLock l(&sv_mu_);
  return sv_;
}

DBImpl::ReadPoint DBImpl::ReadPointFor(const ReadOptions& options) const {
  if (options.snapshot != nullptr) {
    const auto* s = static_cast<const SnapshotImpl*>(options.snapshot);
    // A past revision's snapshot judges no expiry, unless asked to judge
    // it by the clock now.
    const uint64_t now =
        s->expiry_now_unix_ms == 0 && options.hide_expired_history
            ? env_->NowUnixMillis()
            : s->expiry_now_unix_ms;
    return {s->sequence, now};
  }
  return {versions_->LastSequence(), env_->NowUnixMillis()};
}

absl::Status DBImpl::LookupEntry(const ReadOptions& options,
                                 std::string_view key, SequenceNumber sequence,
                                 LookupResult* result) {
  read_counters_.gets.Add();
  std::shared_ptr<const SuperVersion> sv = GetSuperVersion();
  LookupKey lkey(key, sequence);
  result->state = LookupResult::State::kNotFound;
  if (sv->mem->Get(lkey, result)) return absl::OkStatus();
  for (MemTable* m : sv->imm) {
    if (m->Get(lkey, result)) return absl::OkStatus();
  }
  return sv->current->Get(options, lkey, result);
}

absl::StatusOr<std::string> DBImpl::Get(const ReadOptions& options,
                                        std::string_view key) {
  ASSIGN_OR_RETURN(GetResult r, GetWithMetadata(options, key));
  if (!r.found) return absl::NotFoundError("key not found");
  return std::move(r.value);
}

absl::StatusOr<GetResult> DBImpl::GetWithMetadata(const ReadOptions& options,
                                                  std::string_view key) {
  GetResult r;
  const ReadPoint at = ReadPointFor(options);
  r.revision = at.sequence;
  LookupResult found;
  RETURN_IF_ERROR(LookupEntry(options, key, at.sequence, &found));
  if (found.state != LookupResult::State::kFound ||
      IsExpired(found.type, found.stored_value, at.now_unix_ms,
                options_.lease_deadlines)) {
    return r;
  }
  std::string_view value;
  RETURN_IF_ERROR(DecodeStoredValue(found.type, found.sequence,
                                    found.stored_value, &r.metadata, &value));
  r.found = true;
  r.value.assign(value.data(), value.size());
  return r;
}

Iterator* DBImpl::NewInternalIterator(const ReadOptions& options,
                                      std::shared_ptr<const SuperVersion> sv,
                                      std::vector<Iterator*> extra) {
  std::vector<Iterator*> children = std::move(extra);
  children.push_back(sv->mem->NewIterator());
  for (MemTable* m : sv->imm) children.push_back(m->NewIterator());
  sv->current->AddIterators(options, &children);
  Iterator* it = NewMergingIterator(&icmp_, std::move(children));
  it->RegisterCleanup([sv = std::move(sv)]() mutable { sv.reset(); });
  return it;
}

std::unique_ptr<Iterator> DBImpl::NewIterator(const ReadOptions& options) {
  read_counters_.iterators_created.Add();
  const ReadPoint at = ReadPointFor(options);
  Iterator* internal = NewInternalIterator(options, GetSuperVersion());
  return std::unique_ptr<Iterator>(NewDBIterator(
      icmp_.user_comparator(), internal, at.sequence, at.now_unix_ms,
      options_.lease_deadlines));
}

const Snapshot* DBImpl::GetSnapshot() {
  MutexLock l(&mu_);
  SequenceNumber seq = versions_->LastSequence();
  snapshots_.insert(seq);
  return new SnapshotImpl(seq, env_->NowUnixMillis());
}

absl::StatusOr<const Snapshot*> DBImpl::GetSnapshotAt(Revision revision) {
  MutexLock l(&mu_);
  const SequenceNumber current = versions_->LastSequence();
  const SequenceNumber compacted = CompactedRevisionLocked();
  if (revision < compacted || revision > current) {
    return absl::OutOfRangeError(absl::StrFormat(
        "revision %d is not readable: history is kept from the compacted "
        "revision %d up to the current revision %d",
        revision, compacted, current));
  }
  snapshots_.insert(revision);
  return new SnapshotImpl(revision, /*now_unix_ms=*/0);
}

void DBImpl::ReleaseSnapshot(const Snapshot* snapshot) {
  if (snapshot == nullptr) return;
  const auto* s = static_cast<const SnapshotImpl*>(snapshot);
  {
    MutexLock l(&mu_);
    auto it = snapshots_.find(s->sequence);
    if (it != snapshots_.end()) snapshots_.erase(it);
  }
  delete s;
}

SequenceNumber DBImpl::OldestSnapshotSequence() {
  SequenceNumber oldest = CompactedRevisionLocked();
  if (!snapshots_.empty()) oldest = std::min(oldest, *snapshots_.begin());
  return oldest;
}

Revision DBImpl::CompactedRevision() {
  MutexLock l(&mu_);
  return CompactedRevisionLocked();
}

SequenceNumber DBImpl::CompactedRevisionLocked() const {
  return options_.keep_history ? versions_->CompactedRevision()
                               : versions_->LastSequence();
}

void DBImpl::SetCommitListener(CommitListener* listener) {
  // Leaders call the listener with mu_ held, so once this returns the old
  // one is never called again.
  MutexLock l(&mu_);
  commit_listener_ = listener;
}

void DBImpl::RecordBackgroundError(const absl::Status& s) {
  background_errors_.Add();
  if (!bg_error_.ok()) return;
  if (IsOutOfSpace(s)) {
    space_errors_.Add();
    if (!space_error_.ok()) return;
    spdlog::warn("writes paused: out of disk space ({}); retrying in the "
                 "background, writes resume once space is freed",
                 std::string(s.message()));
    space_error_ = absl::ResourceExhaustedError(absl::StrFormat(
        "writes paused: the disk is out of space (%s); the database resumes "
        "writes by itself once space is freed",
        s.message()));
    // Keeps the errno, so IsOutOfSpace(space_error_) holds (a retry that
    // fails with it is still out of space, not a new failure).
    if (auto err = s.GetPayload(kErrnoPayloadUrl)) {
      space_error_.SetPayload(kErrnoPayloadUrl, *err);
    }
    space_pauses_.Add();
    space_retry_micros_ = options_.out_of_space_retry_initial_micros;
    PublishWriteAvailability();
    bg_done_cv_.SignalAll();
    flush_cv_.SignalAll();
    return;
  }
  spdlog::error("engine entering read-only mode after error: {}",
                s.ToString());
  bg_error_ = absl::UnavailableError(absl::StrFormat(
      "database is read-only after an I/O error: %s", s.message()));
  PublishWriteAvailability();
  bg_done_cv_.SignalAll();
  flush_cv_.SignalAll();
}

absl::Status DBImpl::WriteRefusal() const {
  return bg_error_.ok() ? space_error_ : bg_error_;
}

void DBImpl::PublishWriteAvailability() {
  MutexLock l(&availability_mu_);
  availability_ = WriteRefusal();
  write_availability_.store(!bg_error_.ok() ? 2 : !space_error_.ok() ? 1 : 0);
}

absl::Status DBImpl::WriteAvailability() {
  if (write_availability_.load() == 0) return absl::OkStatus();
  MutexLock l(&availability_mu_);
  return availability_;
}

absl::Status DBImpl::SyncWAL() {
  MutexLock l(&mu_);
  if (wal_ == nullptr) return absl::OkStatus();
  // Serialize with the write leader by waiting for an empty write queue.
  while (!write_queue_.empty()) bg_done_cv_.Wait(&mu_);
  if (wal_broken_) return WriteRefusal();
  absl::Status s = wal_->Sync();
  if (!s.ok()) {
    if (IsOutOfSpace(s)) wal_broken_ = true;
    RecordBackgroundError(s);
  }
  return s;
}

absl::Status DBImpl::Flush() {
  MutexLock l(&mu_);
  RETURN_IF_ERROR(WriteRefusal());
  // Wait for the write queue to drain so no leader is using mem_.
  while (!write_queue_.empty()) bg_done_cv_.Wait(&mu_);
  RETURN_IF_ERROR(WriteRefusal());
  if (!mem_->empty()) RETURN_IF_ERROR(SwitchMemTable());
  while (!imm_.empty() && WriteRefusal().ok() && !shutting_down_.load()) {
    bg_done_cv_.Wait(&mu_);
  }
  return WriteRefusal();
}

void DBImpl::DeleteObsoleteFiles() {
  versions_->AssertHeld();
  if (!bg_error_.ok()) return;  // Unknown state: keep everything.
  std::set<uint64_t> live = pending_outputs_;
  versions_->AddLiveFiles(&live);
  uint64_t min_wal = versions_->MinWalNumber();
  uint64_t manifest = versions_->ManifestFileNumber();
  auto children = env_->GetChildren(dbname_);
  if (!children.ok()) return;
  for (const std::string& name : *children) {
    uint64_t number;
    FileType type;
    if (!ParseFileName(name, &number, &type)) continue;
    bool keep = true;
    switch (type) {
      case FileType::kWal:
        keep = number >= min_wal || number == wal_number_ ||
               WalNeededForHistory(number) || pinned_files_.count(number) > 0;
        if (!keep) wal_first_revision_.erase(number);
        break;
      case FileType::kTable:
        keep = live.count(number) > 0 || pinned_files_.count(number) > 0;
        break;
      case FileType::kManifest:
        keep = number >= manifest;
        break;
      case FileType::kTemp:
        keep = live.count(number) > 0;
        break;
      case FileType::kCurrent:
      case FileType::kLock:
        break;
    }
    if (keep) continue;
    if (type == FileType::kTable) table_cache_->Evict(number);
    absl::Status s = env_->RemoveFile(dbname_ + "/" + name);
    if (!s.ok()) spdlog::warn("deleting obsolete file: {}", s.ToString());
  }
}

int DBImpl::TEST_NumFilesAtLevel(int level) {
  MutexLock l(&mu_);
  versions_->AssertHeld();
  return versions_->current()->NumFiles(level);
}

Statistics DBImpl::GetStatistics() {
  Statistics s;
  s.wal = wal_counters_.Snapshot();
  s.writes = write_counters_.Snapshot();
  s.flush = flush_counters_.Snapshot();
  s.compaction = compaction_counters_.Snapshot();
  s.block_cache = BlockCacheStatistics(*block_cache_);
  s.table_cache = table_cache_->counters().Snapshot();
  s.filter = filter_counters_.Snapshot();
  s.reads = read_counters_.Snapshot();
  s.revisions.current = versions_->LastSequence();
  s.background_errors = background_errors_.Load();
  s.out_of_space.errors = space_errors_.Load();
  s.out_of_space.pauses = space_pauses_.Load();
  s.out_of_space.resumes = space_resumes_.Load();
  s.out_of_space.writes_paused = write_availability_.load() == 1;
  // The gauges of the memtables and the current version.
  MutexLock l(&mu_);
  versions_->AssertHeld();
  s.revisions.compacted = CompactedRevisionLocked();
  s.memtable.active_bytes = mem_->ApproximateMemoryUsage();
  s.memtable.immutable = static_cast<int>(imm_.size());
  Version* v = versions_->current();
  for (int level = 0; level < kNumLevels; level++) {
    const Statistics::Levels::Level stats{.level = level,
                                          .num_files = v->NumFiles(level),
                                          .bytes = v->LevelBytes(level)};
    s.levels.live_sst_bytes += stats.bytes;
    s.levels.per_level.push_back(stats);
  }
  s.compaction.pending_bytes = EstimatePendingCompactionBytes(options_, v);
  return s;
}

}  // namespace strata::storage
