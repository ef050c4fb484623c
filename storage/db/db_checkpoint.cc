// Checkpoints: a consistent, openable copy of the database in another
// directory (DB::CreateCheckpoint), for online backups.
//
// The state is captured under mu_ in one step: the current version's
// tables, the WALs not yet covered by them (every immutable memtable's and
// the live one, the live one only up to the bytes holding published
// revisions), the WALs kept for the change log, and the last published
// revision. Those files are pinned (pinned_files_) so DeleteObsoleteFiles
// keeps them while they are linked and copied without the lock. The
// checkpoint's manifest holds that version with the minimum WAL of the
// oldest unflushed memtable: opening the checkpoint replays the copied
// WALs, which end exactly at the captured revision (replaying a WAL whose
// data is also in a table is harmless: same keys at the same revisions).

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "spdlog/spdlog.h"
#include "util/filename.h"
#include "util/status_macros.h"

namespace strata::storage {

absl::StatusOr<Revision> DBImpl::CreateCheckpoint(const std::string& dir) {
  if (env_->FileExists(dir)) {
    auto children = env_->GetChildren(dir);
    if (!children.ok()) return children.status();
    if (!children->empty()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "checkpoint directory %s is not empty (%d entries)", dir,
          children->size()));
    }
  }
  RETURN_IF_ERROR(env_->CreateDir(dir));

  struct WalCopy {
    uint64_t number;
    uint64_t bytes;  // UINT64_MAX: the whole (closed) file.
  };
  std::vector<uint64_t> tables;
  std::vector<WalCopy> wals;
  VersionEdit edit;
  SequenceNumber revision = 0;
  uint64_t manifest_number = 0;
  {
    MutexLock l(&mu_);
    versions_->AssertHeld();
    if (shutting_down_.load()) {
      return absl::FailedPreconditionError("database is shutting down");
    }
    if (!bg_error_.ok()) return bg_error_;
    revision = versions_->LastSequence();
    manifest_number = versions_->NewFileNumber();
    const Version* v = versions_->current();
    edit = versions_->SnapshotEdit(v);
    edit.SetLastSequence(revision);
    // The version's own minimum WAL may already be advanced by a flush
    // whose edit is being written (LogAndApply releases mu_) while current
    // still lacks its table; the oldest unflushed memtable's WAL is always
    // safe.
    const uint64_t min_wal =
        imm_.empty() ? wal_number_ : imm_.front().wal_number;
    edit.SetMinWalNumber(min_wal);
    for (int level = 0; level < kNumLevels; level++) {
      for (const auto& f : v->files(level)) tables.push_back(f->number);
    }
    std::set<uint64_t> wal_numbers;
    for (const ImmutableMemTable& imm : imm_) wal_numbers.insert(imm.wal_number);
    wal_numbers.insert(wal_number_);
    for (const auto& [number, first] : wal_first_revision_) {
      if (number < wal_number_ && WalNeededForHistory(number)) {
        wal_numbers.insert(number);
      }
    }
    for (uint64_t number : wal_numbers) {
      wals.push_back({number, number == wal_number_ ? published_wal_offset_
                                                    : UINT64_MAX});
    }
    for (uint64_t n : tables) pinned_files_.insert(n);
    for (const WalCopy& w : wals) pinned_files_.insert(w.number);
  }

  std::vector<std::string> written;
  absl::Status s;
  if (TEST_hook) s = TEST_hook("checkpoint:files_pinned");
  for (size_t i = 0; s.ok() && i < tables.size(); i++) {
    std::string to = TableFileName(dir, tables[i]);
    s = env_->LinkFile(TableFileName(dbname_, tables[i]), to);
    if (s.ok()) written.push_back(to);
  }
  for (size_t i = 0; s.ok() && i < wals.size(); i++) {
    std::string to = WalFileName(dir, wals[i].number);
    auto copied = CopyFile(env_, WalFileName(dbname_, wals[i].number), to,
                           wals[i].bytes);
    s = copied.status();
    if (s.ok()) written.push_back(to);
  }
  if (s.ok()) {
    written.push_back(ManifestFileName(dir, manifest_number));
    written.push_back(CurrentFileName(dir));
    s = WriteManifestFile(env_, dir, manifest_number, edit);
  }
  if (s.ok()) s = env_->SyncDir(dir);

  {
    MutexLock l(&mu_);
    for (uint64_t n : tables) pinned_files_.erase(pinned_files_.find(n));
    for (const WalCopy& w : wals) {
      pinned_files_.erase(pinned_files_.find(w.number));
    }
    DeleteObsoleteFiles();  // What only the checkpoint kept.
  }
  if (!s.ok()) {
    for (const std::string& path : written) {
      if (env_->FileExists(path)) env_->RemoveFile(path).IgnoreError();
    }
    return s;
  }
  spdlog::info("checkpoint {} at revision {}: {} tables linked, {} WALs copied",
               dir, revision, tables.size(), wals.size());
  return revision;
}

}  // namespace strata::storage
