// History: the compacted revision, automatic retention, which WAL files the
// change log still needs, and the change log reader (GetUpdatesSince).
// docs/revisions.md explains the model.

#include <algorithm>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "db/write_batch_internal.h"
#include "spdlog/spdlog.h"
#include "util/filename.h"
#include "util/status_macros.h"
#include "record/reader.h"

namespace strata::storage {
namespace {

// How often the automatic retention may write a manifest edit.
constexpr uint64_t kMinAdvanceIntervalMicros = 5'000'000;

// Reads a file up to a byte limit: the part of the live WAL that holds
// published revisions (bytes after it may be a record being appended).
class LimitedSequentialFile final : public SequentialFile {
 public:
  LimitedSequentialFile(std::unique_ptr<SequentialFile> file, uint64_t limit)
      : file_(std::move(file)), left_(limit) {}
  absl::StatusOr<std::string_view> Read(size_t n, char* scratch) override {
    if (left_ == 0) return std::string_view();
    ASSIGN_OR_RETURN(std::string_view got,
                     file_->Read(static_cast<size_t>(std::min<uint64_t>(n, left_)),
                                 scratch));
    left_ -= got.size();
    return got;
  }
  absl::Status Skip(uint64_t n) override {
    n = std::min(n, left_);
    left_ -= n;
    return file_->Skip(n);
  }

 private:
  std::unique_ptr<SequentialFile> file_;
  uint64_t left_;
};

}  // namespace

// Reads committed batches from the WAL files that hold them, in order.
class DBImpl::WalChangeIterator final : public ChangeIterator {
 public:
  struct File {
    uint64_t number;
    uint64_t limit;  // Bytes to read (UINT64_MAX: all).
  };
  WalChangeIterator(DBImpl* db, std::vector<File> files, Revision from,
                    Revision upper)
      : db_(db), files_(std::move(files)), next_(from), upper_(upper) {}

  bool Next() override {
    if (!status_.ok() || next_ > upper_) return false;
    while (true) {
      if (reader_ == nullptr && !OpenNextFile()) return false;
      std::string_view record;
      absl::StatusOr<bool> more = reader_->ReadRecord(&record, &scratch_);
      if (!more.ok()) return Fail(more.status());
      if (!*more) {
        reader_.reset();
        continue;
      }
      if (reader_->format_version() != record::kWalFormatVersion ||
          record.size() < WriteBatchInternal::kHeader) {
        return Fail(absl::DataLossError(absl::StrFormat(
            "%s: record at offset %d is not a committed batch", path_,
            reader_->LastRecordOffset())));
      }
      const Revision revision = WriteBatchInternal::GetRevision(record);
      if (revision < next_) continue;  // Before the requested start.
      if (revision > next_) {
        // Revisions are consecutive: the WAL holding next_ is gone.
        return Fail(absl::OutOfRangeError(absl::StrFormat(
            "changes from revision %d are no longer retained (the change log "
            "continues at %d; compacted revision %d)",
            next_, revision, db_->CompactedRevision())));
      }
      absl::Status s = ChangeBatch::Decode(
          std::make_shared<const std::string>(record), &batch_);
      if (!s.ok()) {
        return Fail(absl::DataLossError(absl::StrFormat(
            "%s: record at offset %d: %s", path_, reader_->LastRecordOffset(),
            std::string(s.message()))));
      }
      next_ = revision + 1;
      return true;
    }
  }
  const ChangeBatch& batch() const override { return batch_; }
  absl::Status status() const override { return status_; }

 private:
  bool Fail(absl::Status s) {
    status_ = std::move(s);
    reader_.reset();
    return false;
  }

  bool OpenNextFile() {
    if (index_ == files_.size()) {
      if (next_ <= upper_) {
        return Fail(absl::OutOfRangeError(absl::StrFormat(
            "changes from revision %d are no longer retained", next_)));
      }
      return false;
    }
    const File& f = files_[index_++];
    path_ = WalFileName(db_->dbname_, f.number);
    auto file = db_->env_->NewSequentialFile(path_);
    if (!file.ok()) {
      if (absl::IsNotFound(file.status())) {
        return Fail(absl::OutOfRangeError(absl::StrFormat(
            "changes from revision %d are no longer retained (%s was "
            "deleted after compaction)",
            next_, path_)));
      }
      return Fail(file.status());
    }
    std::unique_ptr<SequentialFile> source = std::move(*file);
    if (f.limit != UINT64_MAX) {
      source = std::make_unique<LimitedSequentialFile>(std::move(source),
                                                       f.limit);
    }
    reader_ = std::make_unique<record::Reader>(std::move(source), path_,
                                            record::kWalFormatVersion);
    return true;
  }

  DBImpl* const db_;
  const std::vector<File> files_;
  size_t index_ = 0;
  Revision next_;
  const Revision upper_;
  std::string path_;
  std::unique_ptr<record::Reader> reader_;
  std::string scratch_;
  ChangeBatch batch_;
  absl::Status status_;
};

absl::StatusOr<std::unique_ptr<ChangeIterator>> DBImpl::GetUpdatesSince(
    Revision revision) {
  MutexLock l(&mu_);
  const SequenceNumber current = versions_->LastSequence();
  const SequenceNumber compacted = CompactedRevisionLocked();
  if (revision <= compacted || revision > current + 1) {
    return absl::OutOfRangeError(absl::StrFormat(
        "changes from revision %d are not available: the change log holds "
        "revisions %d to %d (compacted revision %d)",
        revision, compacted + 1, current, compacted));
  }
  // The WAL holding `revision` is the last one that starts at or before it.
  std::vector<WalChangeIterator::File> files;
  auto it = wal_first_revision_.upper_bound(wal_number_);
  for (auto w = wal_first_revision_.begin(); w != it; ++w) {
    auto following = std::next(w);
    const bool holds_later = following == it || following->second > revision;
    if (!holds_later && w->first != wal_number_) continue;
    files.push_back({w->first, w->first == wal_number_ ? published_wal_offset_
                                                        : UINT64_MAX});
  }
  return std::unique_ptr<ChangeIterator>(
      new WalChangeIterator(this, std::move(files), revision, current));
}

bool DBImpl::WalNeededForHistory(uint64_t number) {
  if (!options_.keep_history) return false;
  auto it = wal_first_revision_.find(number);
  if (it == wal_first_revision_.end()) return false;  // Format 1 or unknown.
  auto following = std::next(it);
  if (following == wal_first_revision_.end()) return true;  // The live WAL.
  // Holds revisions [it->second, following->second).
  return following->second > versions_->CompactedRevision() + 1;
}

absl::Status DBImpl::SetCompactedRevision(SequenceNumber revision) {
  versions_->AssertHeld();
  VersionEdit edit;
  edit.SetCompactedRevision(revision);
  absl::Status s = versions_->LogAndApply(&edit);
  if (!s.ok()) {
    RecordBackgroundError(s);
    return s;
  }
  DeleteObsoleteFiles();
  return absl::OkStatus();
}

absl::Status DBImpl::CompactHistory(Revision revision) {
  MutexLock l(&mu_);
  if (!options_.keep_history) {
    return absl::FailedPreconditionError(
        "history is not kept (Options::keep_history is off)");
  }
  const SequenceNumber current = versions_->LastSequence();
  const SequenceNumber compacted = versions_->CompactedRevision();
  if (revision > current || revision <= compacted) {
    return absl::OutOfRangeError(absl::StrFormat(
        "cannot compact to revision %d: it must be above the compacted "
        "revision %d and at most the current revision %d",
        revision, compacted, current));
  }
  if (!bg_error_.ok()) return bg_error_;
  return SetCompactedRevision(revision);
}

void DBImpl::MaybeAdvanceHistory() {
  if (!HistoryRetentionIsTimed() || !bg_error_.ok()) return;
  const uint64_t now = env_->NowMicros();
  const SequenceNumber current = versions_->LastSequence();
  if (history_samples_.empty() ||
      now >= history_samples_.back().first + 1'000'000) {
    history_samples_.emplace_back(now, current);
  }
  SequenceNumber target = current;
  if (options_.history_retention_seconds > 0) {
    const uint64_t window = options_.history_retention_seconds * 1'000'000;
    // The newest sample at least `window` old; older ones are not needed.
    SequenceNumber old_enough = 0;
    while (!history_samples_.empty() &&
           history_samples_.front().first + window <= now) {
      old_enough = history_samples_.front().second;
      if (history_samples_.size() > 1 &&
          history_samples_[1].first + window <= now) {
        history_samples_.pop_front();
        continue;
      }
      break;
    }
    target = std::min(target, old_enough);
  }
  if (options_.history_retention_revisions > 0) {
    target = std::min(target,
                      current > options_.history_retention_revisions
                          ? current - options_.history_retention_revisions
                          : 0);
  }
  if (target <= versions_->CompactedRevision()) return;
  if (now < last_history_advance_micros_ + kMinAdvanceIntervalMicros) return;
  last_history_advance_micros_ = now;
  absl::Status s = SetCompactedRevision(target);
  if (!s.ok()) spdlog::error("advancing the compacted revision: {}", s.ToString());
}

void DBImpl::TEST_AdvanceHistory() {
  MutexLock l(&mu_);
  MaybeAdvanceHistory();
}

std::vector<uint64_t> DBImpl::TEST_RetainedWals() {
  MutexLock l(&mu_);
  std::vector<uint64_t> out;
  for (const auto& [number, first] : wal_first_revision_) {
    if (env_->FileExists(WalFileName(dbname_, number))) out.push_back(number);
  }
  return out;
}

}  // namespace strata::storage
