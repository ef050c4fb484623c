// Flush: the oldest immutable memtable becomes a level-0 SSTable.

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "db/table_file_writer.h"
#include "spdlog/spdlog.h"
#include "util/status_macros.h"

namespace strata::storage {

void DBImpl::FlushThreadMain() {
  MutexLock l(&mu_);
  while (true) {
    while (!shutting_down_.load() && (imm_.empty() || !bg_error_.ok())) {
      if (bg_error_.ok() && !space_error_.ok()) break;
      if (HistoryRetentionIsTimed()) {
        // Wake about once a second to advance the compacted revision.
        flush_cv_.WaitForMicros(&mu_, 1'000'000);
        MaybeAdvanceHistory();
      } else {
        flush_cv_.Wait(&mu_);
      }
    }
    // On shutdown the WAL still holds the immutable memtables' data.
    if (shutting_down_.load()) return;
    if (!space_error_.ok()) {
      // Writes are paused for lack of space: retry what failed, with
      // backoff.
      WaitForOutOfSpaceRetry();
      if (shutting_down_.load()) return;
      RetryAfterOutOfSpace();
      continue;
    }
    // Also between flushes, which may follow each other without a wait.
    if (HistoryRetentionIsTimed()) MaybeAdvanceHistory();
    absl::Status s = FlushOldestImmutable();
    if (!s.ok()) RecordBackgroundError(s);
    bg_done_cv_.SignalAll();
  }
}

absl::Status DBImpl::WriteLevel0Table(MemTable* mem, VersionEdit* edit) {
  versions_->AssertHeld();
  uint64_t start = env_->NowMicros();
  uint64_t number = versions_->NewFileNumber();
  pending_outputs_.insert(number);
  absl::Status s;
  std::unique_ptr<TableFileWriter> writer;
  {
    mu_.Unlock();
    auto created = TableFileWriter::Create(env_, dbname_, options_, &icmp_,
                                           number);
    s = created.status();
    if (s.ok()) {
      writer = std::move(*created);
      std::unique_ptr<Iterator> it(mem->NewIterator());
      for (it->SeekToFirst(); s.ok() && it->Valid(); it->Next()) {
        s = writer->Add(it->key(), it->value());
      }
      if (s.ok()) s = it->status();
      if (s.ok() && writer->NumEntries() > 0) {
        s = writer->Finish();
        if (s.ok()) s = env_->SyncDir(dbname_);
      }
      if (s.ok() && TEST_hook) s = TEST_hook("flush:table_written");
      if (!s.ok() || writer->NumEntries() == 0) writer->Abandon();
    }
    mu_.Lock();
  }
  // The caller removes `number` from pending_outputs_ once the edit is
  // installed (or abandoned), so it is never deleted as obsolete meanwhile.
  if (!s.ok() || writer->NumEntries() == 0) pending_outputs_.erase(number);
  if (!s.ok()) return s;
  if (writer->NumEntries() > 0) {
    edit->AddFile(0, writer->meta());
    flush_counters_.count.Add();
    flush_counters_.written_bytes.Add(writer->meta().file_size);
    flush_counters_.seconds.Observe((env_->NowMicros() - start) / 1e6);
    spdlog::debug("flushed memtable to {:06d}.sst: {} entries, {} bytes",
                  number, writer->NumEntries(), writer->meta().file_size);
  }
  return absl::OkStatus();
}

absl::Status DBImpl::FlushOldestImmutable() {
  versions_->AssertHeld();
  ImmutableMemTable imm = imm_.front();
  VersionEdit edit;
  // Keep the table file out of DeleteObsoleteFiles until it is installed.
  RETURN_IF_ERROR(WriteLevel0Table(imm.mem, &edit));
  // Every WAL older than the next memtable's is now redundant.
  uint64_t min_wal = imm_.size() > 1 ? imm_[1].wal_number : wal_number_;
  edit.SetMinWalNumber(min_wal);
  absl::Status s = versions_->LogAndApply(&edit);
  for (const auto& [level, f] : edit.new_files()) pending_outputs_.erase(f.number);
  RETURN_IF_ERROR(s);
  imm_.pop_front();
  imm.mem->Unref();
  InstallSuperVersion();
  DeleteObsoleteFiles();
  MaybeScheduleCompaction();
  return absl::OkStatus();
}

}  // namespace strata::storage
