// Recovery at Open: rebuild the current version from the manifest, replay
// every WAL not yet covered by an installed table into memtables, write
// them to level-0 tables, and start a fresh WAL.

#include <algorithm>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "db/db_iter.h"
#include "table/merging_iterator.h"
#include "db/write_batch_internal.h"
#include "env/io_error.h"
#include "record/reader.h"
#include "spdlog/spdlog.h"
#include "util/filename.h"
#include "util/status_macros.h"

namespace strata::storage {

absl::Status DBImpl::Recover() {
  versions_->AssertHeld();
  std::string current = CurrentFileName(dbname_);
  if (!env_->FileExists(current)) {
    if (!options_.create_if_missing) {
      return absl::NotFoundError(absl::StrFormat(
          "%s: no database (CURRENT is missing) and create_if_missing is off",
          dbname_));
    }
    // The new database holds no WAL yet: anything lying around is junk.
    mu_.Unlock();
    absl::Status s = versions_->CreateNew();
    mu_.Lock();
    RETURN_IF_ERROR(s);
  } else {
    if (options_.error_if_exists) {
      return absl::AlreadyExistsError(
          absl::StrFormat("%s: database exists (error_if_exists)", dbname_));
    }
    RETURN_IF_ERROR(versions_->Recover());
  }

  // Every table the manifest lists must exist; unknown numbers are
  // reserved so new files never collide with leftovers.
  ASSIGN_OR_RETURN(std::vector<std::string> children,
                   env_->GetChildren(dbname_));
  std::set<uint64_t> expected;
  versions_->AddLiveFiles(&expected);
  std::vector<uint64_t> wals;
  std::vector<uint64_t> retained_wals;  // Older, kept for the change log.
  for (const std::string& name : children) {
    uint64_t number;
    FileType type;
    if (!ParseFileName(name, &number, &type)) continue;
    versions_->MarkFileNumberUsed(number);
    if (type == FileType::kTable) expected.erase(number);
    if (type == FileType::kWal) {
      (number >= versions_->MinWalNumber() ? wals : retained_wals)
          .push_back(number);
    }
  }
  if (!expected.empty()) {
    return absl::DataLossError(absl::StrFormat(
        "%s: %d table file(s) listed in the manifest are missing, e.g. %06d.sst",
        dbname_, expected.size(), *expected.begin()));
  }
  // The manifest's minimum WAL number is always the number of a WAL that
  // existed when that edit was written, and a WAL is deleted only after a
  // later edit moving past it is durable. So if it is missing, a later edit was
  // lost (e.g. a damaged final manifest record dropped as a torn tail) and
  // the writes that WAL held are gone: refuse to open rather than lose
  // them silently.
  const uint64_t min_wal = versions_->MinWalNumber();
  if (min_wal != 0 &&
      std::find(wals.begin(), wals.end(), min_wal) == wals.end()) {
    return absl::DataLossError(absl::StrFormat(
        "%s: the manifest needs WAL %06d.wal, which is missing: a later "
        "manifest edit was lost or the WAL was deleted; recent writes may be "
        "gone",
        dbname_, min_wal));
  }

  std::sort(wals.begin(), wals.end());
  if (versions_->DatabaseFormat() < VersionEdit::kDatabaseFormat) {
    RETURN_IF_ERROR(CheckNoReservedKeys());
  }
  VersionEdit edit;
  SequenceNumber max_sequence = versions_->LastSequence();
  MemTable* mem = nullptr;
  defer_recovery_flushes_ = false;
  for (uint64_t number : wals) {
    absl::Status s = ReplayWal(number, &edit, &max_sequence, &mem);
    if (!s.ok()) {
      if (mem != nullptr) mem->Unref();
      return s;
    }
  }
  if (options_.keep_history) {
    // Newest first, so an empty one can take its successor's first revision.
    std::sort(retained_wals.rbegin(), retained_wals.rend());
    for (uint64_t number : retained_wals) {
      absl::Status s = NoteWalFirstRevision(number);
      if (!s.ok()) {
        if (mem != nullptr) mem->Unref();
        return s;
      }
    }
  }
  if (mem != nullptr) {
    RETURN_IF_ERROR(FlushRecoveredMemTable(mem, &edit));
  }

  // A fresh WAL; the replayed ones become obsolete once the edit is in.
  uint64_t number = versions_->NewFileNumber();
  ASSIGN_OR_RETURN(auto file, env_->NewWritableFile(WalFileName(dbname_, number)));
  wal_ = std::make_unique<record::Writer>(std::move(file),
                                          record::kWalFormatVersion);
  // A durable file header, so a power loss cannot leave garbage there
  // (see SwitchMemTable).
  RETURN_IF_ERROR(wal_->Sync());
  wal_number_ = number;
  // Durable directory entry for the new WAL before anything is written to
  // it (the manifest edit below fsyncs the manifest, not the directory).
  RETURN_IF_ERROR(env_->SyncDir(dbname_));
  versions_->SetLastSequence(max_sequence);
  // Replayed memtables not flushed for lack of space still need their WALs.
  edit.SetMinWalNumber(imm_.empty() ? number : imm_.front().wal_number);
  if (versions_->DatabaseFormat() < VersionEdit::kDatabaseFormat) {
    // A database written before revisions: its older history was not kept
    // (and its WALs are format 1), so it starts with everything up to now
    // compacted. Recorded in the same edit as the new format.
    spdlog::info("{}: upgrading database format {} to {} at revision {}",
                 dbname_, versions_->DatabaseFormat(),
                 VersionEdit::kDatabaseFormat, max_sequence);
    edit.SetDatabaseFormat(VersionEdit::kDatabaseFormat);
    edit.SetCompactedRevision(max_sequence);
  }
  absl::Status s = versions_->LogAndApply(&edit);
  for (const auto& [level, f] : edit.new_files()) {
    pending_outputs_.erase(f.number);
  }
  RETURN_IF_ERROR(s);
  mem_ = NewMemTable();
  mem_->Ref();
  published_wal_offset_ = wal_->BytesWritten();
  wal_first_revision_[number] = max_sequence + 1;
  if (!wals.empty()) {
    spdlog::info("recovered {} WAL file(s); last sequence {}", wals.size(),
                 max_sequence);
  }
  if (!imm_.empty()) {
    // Opened on a full disk: reads work, writes wait for the flush thread
    // to write these memtables (db_space.cc).
    spdlog::warn("{}: {} replayed memtable(s) kept in memory: out of disk "
                 "space",
                 dbname_, imm_.size());
    RecordBackgroundError(recovery_space_error_);
    recovery_space_error_ = absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status DBImpl::FlushRecoveredMemTable(MemTable* mem,
                                            VersionEdit* edit) {
  if (!defer_recovery_flushes_) {
    absl::Status s = WriteLevel0Table(mem, edit);
    if (s.ok() || !IsOutOfSpace(s)) {
      mem->Unref();
      return s;
    }
    // Open anyway: the memtable stays in memory (its WALs stay on disk)
    // until the flush thread can write it.
    defer_recovery_flushes_ = true;
    recovery_space_error_ = s;
  }
  imm_.push_back(ImmutableMemTable{mem, recovery_mem_first_wal_});
  return absl::OkStatus();
}

absl::Status DBImpl::ReplayWal(uint64_t number, VersionEdit* edit,
                               SequenceNumber* max_sequence, MemTable** mem) {
  std::string path = WalFileName(dbname_, number);
  ASSIGN_OR_RETURN(auto file, env_->NewSequentialFile(path));
  record::Reader reader(std::move(file), path, record::kWalFormatVersion);
  std::string scratch;
  std::string_view record;
  uint64_t records = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool more, reader.ReadRecord(&record, &scratch));
    if (!more) break;
    if (*mem == nullptr) {
      *mem = NewMemTable();
      (*mem)->Ref();
      recovery_mem_first_wal_ = number;
    }
    absl::Status s;
    SequenceNumber last = 0;
    if (reader.format_version() == record::kWalFormatVersion) {
      // One committed batch: one revision.
      s = WriteBatchInternal::InsertCommitted(record, *mem);
      if (s.ok()) {
        last = WriteBatchInternal::GetRevision(record);
        if (records == 0) wal_first_revision_[number] = last;
      }
    } else {
      // Format 1: the i-th operation had sequence number first + i.
      s = CheckNoReservedKeysIn(record);
      absl::StatusOr<SequenceNumber> r =
          s.ok() ? WriteBatchInternal::InsertVersion1(record, *mem)
                 : absl::StatusOr<SequenceNumber>(s);
      s = r.status();
      if (s.ok()) last = *r;
    }
    if (absl::IsFailedPrecondition(s)) return s;
    if (!s.ok()) {
      return absl::DataLossError(absl::StrFormat(
          "%s: record at offset %d: %s", path, reader.LastRecordOffset(),
          std::string(s.message())));
    }
    records++;
    if (last > *max_sequence) *max_sequence = last;
    if ((*mem)->ApproximateMemoryUsage() > options_.memtable_bytes) {
      absl::Status fs = FlushRecoveredMemTable(*mem, edit);
      *mem = nullptr;
      RETURN_IF_ERROR(fs);
    }
  }
  if (records == 0 && reader.format_version() == record::kWalFormatVersion) {
    // Empty: it holds nothing from the next WAL's first revision on.
    wal_first_revision_[number] = *max_sequence + 1;
  }
  if (reader.dropped_torn_tail()) {
    spdlog::warn("{}: dropped a torn final record ({} bytes) left by a crash",
                 path, reader.dropped_bytes());
  }
  spdlog::debug("replayed {}: {} records", path, records);
  return absl::OkStatus();
}

namespace {

absl::Status ReservedKeyError(std::string_view key) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "database format 1 holds a key beginning with 0xffff (%d bytes); "
      "format 2 reserves such keys for the server (docs/revisions.md, "
      "\"On disk\"): copy them under other names with the previous strata "
      "release first",
      key.size()));
}

}  // namespace

absl::Status DBImpl::CheckNoReservedKeys() {
  versions_->AssertHeld();
  ReadOptions ro;
  ro.fill_cache = false;
  std::vector<Iterator*> children;
  versions_->current()->AddIterators(ro, &children);
  std::unique_ptr<Iterator> it(NewDBIterator(
      icmp_.user_comparator(), NewMergingIterator(&icmp_, std::move(children)),
      kMaxSequenceNumber));
  it->Seek(kReservedKeyPrefix);
  if (it->Valid()) return ReservedKeyError(it->key());
  return it->status();
}

absl::Status DBImpl::CheckNoReservedKeysIn(std::string_view record) {
  WriteBatch batch;
  RETURN_IF_ERROR(WriteBatchInternal::SetContents(&batch, record));
  struct Checker final : WriteBatch::Handler {
    void Put(std::string_view key, std::string_view,
             const PutAttributes&) override {
      Check(key);
    }
    void Delete(std::string_view) override {}
    void Check(std::string_view key) {
      if (status.ok() && key.substr(0, 2) == kReservedKeyPrefix) {
        status = ReservedKeyError(key);
      }
    }
    absl::Status status;
  } checker;
  RETURN_IF_ERROR(batch.Iterate(&checker));
  return checker.status;
}

absl::Status DBImpl::NoteWalFirstRevision(uint64_t number) {
  std::string path = WalFileName(dbname_, number);
  ASSIGN_OR_RETURN(auto file, env_->NewSequentialFile(path));
  record::Reader reader(std::move(file), path, record::kWalFormatVersion);
  std::string scratch;
  std::string_view record;
  ASSIGN_OR_RETURN(bool any, reader.ReadRecord(&record, &scratch));
  if (reader.format_version() != record::kWalFormatVersion) {
    return absl::OkStatus();  // Format 1: no history; deleted as obsolete.
  }
  if (!any || record.size() < WriteBatchInternal::kHeader) {
    // Empty: it takes the first revision of the WAL after it.
    auto next = wal_first_revision_.upper_bound(number);
    wal_first_revision_[number] =
        next != wal_first_revision_.end() ? next->second : kMaxSequenceNumber;
    return absl::OkStatus();
  }
  wal_first_revision_[number] = WriteBatchInternal::GetRevision(record);
  return absl::OkStatus();
}

}  // namespace strata::storage
