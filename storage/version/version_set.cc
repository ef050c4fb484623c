#include "version/version_set.h"

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "record/reader.h"
#include "spdlog/spdlog.h"
#include "util/checksum.h"
#include "util/filename.h"
#include "util/status_macros.h"
#include "version/level_iterator.h"

namespace strata::storage {

uint64_t MaxBytesForLevel(const Options& options, int level) {
  uint64_t result = options.max_bytes_for_level_base;
  for (int l = 1; l < level; l++) result *= 10;
  return result;
}

// ---------------------------------------------------------------- Version

namespace {

// Orders the files of one level as a Version keeps them: level 0 newest
// (highest number) first, deeper levels by smallest key.
void SortLevel(const InternalKeyComparator* icmp, int level,
               std::vector<FileRef>* files) {
  if (level == 0) {
    std::sort(files->begin(), files->end(),
              [](const FileRef& a, const FileRef& b) {
                return a->number > b->number;
              });
  } else {
    std::sort(files->begin(), files->end(),
              [icmp](const FileRef& a, const FileRef& b) {
                return icmp->Compare(a->smallest.Encode(),
                                     b->smallest.Encode()) < 0;
              });
  }
}

}  // namespace

Version* Version::NewDetached(const InternalKeyComparator* icmp,
                              std::vector<FileRef> files[kNumLevels]) {
  Version* v = new Version(nullptr, icmp);
  for (int level = 0; level < kNumLevels; level++) {
    v->files_[level] = std::move(files[level]);
    SortLevel(icmp, level, &v->files_[level]);
  }
  v->Ref();
  return v;
}

void Version::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    if (vset_ != nullptr) vset_->RemoveVersion(this);
    delete this;
  }
}

uint64_t Version::LevelBytes(int level) const {
  uint64_t sum = 0;
  for (const auto& f : files_[level]) sum += f->file_size;
  return sum;
}

absl::Status Version::Get(const ReadOptions& options, const LookupKey& key,
                          LookupResult* result) const {
  const Comparator* ucmp = icmp_->user_comparator();
  std::string_view user_key = key.user_key();
  std::string_view ikey = key.internal_key();
  result->state = LookupResult::State::kNotFound;
  absl::Status parse_error;

  auto found = [&](std::string_view k, std::string_view v) {
    ParsedInternalKey parsed;
    if (!ParseInternalKey(k, &parsed)) {
      parse_error = absl::DataLossError("SSTable holds a malformed internal key");
      return;
    }
    if (ucmp->Compare(parsed.user_key, user_key) != 0) return;
    result->sequence = parsed.sequence;
    result->type = parsed.type;
    if (IsValueType(parsed.type)) {
      result->state = LookupResult::State::kFound;
      result->stored_value.assign(v.data(), v.size());
    } else {
      result->state = LookupResult::State::kDeleted;
      result->stored_value.clear();
    }
  };

  auto search = [&](const FileMetaData& f) -> absl::Status {
    RETURN_IF_ERROR(vset_->table_cache()->Get(options, f.number, f.file_size,
                                              ikey, found));
    return parse_error;
  };

  // Level 0: tables may overlap; newest first.
  for (const auto& f : files_[0]) {
    if (ucmp->Compare(user_key, f->smallest.user_key()) < 0 ||
        ucmp->Compare(user_key, f->largest.user_key()) > 0) {
      continue;
    }
    RETURN_IF_ERROR(search(*f));
    if (result->state != LookupResult::State::kNotFound) return absl::OkStatus();
  }
  // Deeper levels: at most one table per level can hold the key.
  for (int level = 1; level < kNumLevels; level++) {
    const auto& files = files_[level];
    auto it = std::lower_bound(
        files.begin(), files.end(), ikey,
        [this](const FileRef& f, std::string_view k) {
          return icmp_->Compare(f->largest.Encode(), k) < 0;
        });
    if (it == files.end()) continue;
    if (ucmp->Compare(user_key, (*it)->smallest.user_key()) < 0) continue;
    RETURN_IF_ERROR(search(**it));
    if (result->state != LookupResult::State::kNotFound) return absl::OkStatus();
  }
  return absl::OkStatus();
}

void Version::AddIterators(const ReadOptions& options,
                           std::vector<Iterator*>* iters) const {
  for (const auto& f : files_[0]) {
    iters->push_back(
        vset_->table_cache()->NewIterator(options, f->number, f->file_size));
  }
  for (int level = 1; level < kNumLevels; level++) {
    if (!files_[level].empty()) {
      iters->push_back(NewLevelIterator(options, vset_->table_cache(),
                                        icmp_, files_[level]));
    }
  }
}

std::vector<FileRef> Version::GetOverlappingInputs(
    int level, const InternalKey* begin, const InternalKey* end) const {
  const Comparator* ucmp = icmp_->user_comparator();
  std::string user_begin, user_end;
  if (begin != nullptr) user_begin = std::string(begin->user_key());
  if (end != nullptr) user_end = std::string(end->user_key());
  std::vector<FileRef> inputs;
  for (size_t i = 0; i < files_[level].size();) {
    const FileRef& f = files_[level][i++];
    std::string_view file_start = f->smallest.user_key();
    std::string_view file_limit = f->largest.user_key();
    if (begin != nullptr && ucmp->Compare(file_limit, user_begin) < 0) continue;
    if (end != nullptr && ucmp->Compare(file_start, user_end) > 0) continue;
    inputs.push_back(f);
    if (level == 0) {
      // Widen the range to this file's and restart if it grew, so every
      // overlapping L0 file is included.
      bool restart = false;
      if (begin != nullptr && ucmp->Compare(file_start, user_begin) < 0) {
        user_begin = std::string(file_start);
        restart = true;
      }
      if (end != nullptr && ucmp->Compare(file_limit, user_end) > 0) {
        user_end = std::string(file_limit);
        restart = true;
      }
      if (restart) {
        inputs.clear();
        i = 0;
      }
    }
  }
  return inputs;
}

bool Version::OverlapInLevel(int level, std::string_view smallest_user_key,
                             std::string_view largest_user_key) const {
  const Comparator* ucmp = icmp_->user_comparator();
  for (const auto& f : files_[level]) {
    if (ucmp->Compare(f->largest.user_key(), smallest_user_key) < 0) continue;
    if (ucmp->Compare(f->smallest.user_key(), largest_user_key) > 0) continue;
    return true;
  }
  return false;
}

// --------------------------------------------------------------- Builder

// Applies edits to a base version: file sets per level.
class VersionSet::Builder {
 public:
  Builder(VersionSet* vset, const Version* base) : vset_(vset) {
    if (base != nullptr) {
      for (int level = 0; level < kNumLevels; level++) {
        for (const auto& f : base->files_[level]) {
          files_[level].emplace(f->number, f);
        }
      }
    }
  }

  void Apply(const VersionEdit& edit) {
    for (const auto& [level, number] : edit.deleted_files()) {
      files_[level].erase(number);
    }
    for (const auto& [level, f] : edit.new_files()) {
      files_[level][f.number] = std::make_shared<FileMetaData>(f);
    }
  }

  void SaveTo(Version* v) const {
    for (int level = 0; level < kNumLevels; level++) {
      auto& out = v->files_[level];
      for (const auto& [number, f] : files_[level]) out.push_back(f);
      SortLevel(vset_->icmp(), level, &out);
    }
  }

 private:
  VersionSet* const vset_;
  std::map<uint64_t, FileRef> files_[kNumLevels];
};

// ------------------------------------------------------------ VersionSet

VersionSet::VersionSet(std::string dbname, const Options& options,
                       TableCache* table_cache,
                       const InternalKeyComparator* icmp, Mutex* mu)
    : dbname_(std::move(dbname)),
      options_(options),
      env_(options.env),
      table_cache_(table_cache),
      icmp_(icmp),
      mu_(mu) {}

VersionSet::~VersionSet() {
  if (current_ != nullptr) current_->Unref();
}

void VersionSet::AppendVersion(Version* v) {
  v->Ref();
  {
    MutexLock l(&versions_mu_);
    versions_.push_back(v);
  }
  Version* old = current_;
  current_ = v;
  if (old != nullptr) old->Unref();
}

void VersionSet::RemoveVersion(Version* v) {
  MutexLock l(&versions_mu_);
  versions_.remove(v);
}

void VersionSet::AddLiveFiles(std::set<uint64_t>* live) {
  MutexLock l(&versions_mu_);
  for (const Version* v : versions_) {
    for (int level = 0; level < kNumLevels; level++) {
      for (const auto& f : v->files_[level]) live->insert(f->number);
    }
  }
}

void VersionSet::MarkFileNumberUsed(uint64_t number) {
  if (next_file_number_ <= number) next_file_number_ = number + 1;
}

absl::Status SetCurrentFile(Env* env, const std::string& dbname,
                            uint64_t manifest_number, bool* renamed) {
  *renamed = false;
  std::string name = absl::StrFormat("MANIFEST-%06u", manifest_number);
  std::string body = absl::StrFormat("strata-current 1 %s", name);
  std::string contents =
      absl::StrFormat("%s %08x\n", body, Checksum32(body));
  std::string tmp = TempFileName(dbname, manifest_number);
  absl::Status s;
  {
    auto file = env->NewWritableFile(tmp);
    s = file.status();
    if (s.ok()) s = (*file)->Append(contents);
    if (s.ok()) s = (*file)->Sync();
    if (s.ok()) s = (*file)->Close();
  }
  if (s.ok()) s = env->RenameFile(tmp, CurrentFileName(dbname));
  if (!s.ok()) {
    env->RemoveFile(tmp).IgnoreError();
    return s;
  }
  *renamed = true;
  return env->SyncDir(dbname);
}

absl::Status VersionSet::ReadCurrentFile(std::string* manifest_name) {
  std::string path = CurrentFileName(dbname_);
  ASSIGN_OR_RETURN(auto file, env_->NewSequentialFile(path));
  char buf[256];
  ASSIGN_OR_RETURN(std::string_view data, file->Read(sizeof(buf), buf));
  auto corrupt = [&](const char* what) {
    return absl::DataLossError(
        absl::StrFormat("%s at offset 0: %s", path, what));
  };
  if (data.empty() || data.back() != '\n') return corrupt("truncated");
  data.remove_suffix(1);
  size_t last_space = data.rfind(' ');
  if (last_space == std::string_view::npos) return corrupt("malformed");
  std::string_view body = data.substr(0, last_space);
  uint32_t checksum = 0;
  std::string hex(data.substr(last_space + 1));
  if (hex.size() != 8 || !absl::SimpleHexAtoi(hex, &checksum) ||
      checksum != Checksum32(body)) {
    return corrupt("checksum mismatch");
  }
  std::vector<std::string> fields =
      absl::StrSplit(std::string(body), ' ');
  if (fields.size() != 3 || fields[0] != "strata-current") {
    return corrupt("bad magic");
  }
  if (fields[1] != "1") return corrupt("unknown format version");
  *manifest_name = fields[2];
  uint64_t number;
  FileType type;
  if (!ParseFileName(*manifest_name, &number, &type) ||
      type != FileType::kManifest) {
    return corrupt("does not name a manifest");
  }
  return absl::OkStatus();
}

VersionEdit VersionSet::SnapshotEdit(const Version* v) const {
  return SnapshotEdit(v, CompactedRevision());
}

VersionEdit VersionSet::SnapshotEdit(const Version* v,
                                     SequenceNumber compacted) const {
  VersionEdit edit;
  edit.SetComparatorName(icmp_->user_comparator()->Name());
  edit.SetMinWalNumber(min_wal_number_);
  edit.SetNextFile(next_file_number_);
  edit.SetLastSequence(LastSequence());
  edit.SetCompactedRevision(compacted);
  edit.SetDatabaseFormat(database_format_);
  if (v != nullptr) {
    for (int level = 0; level < kNumLevels; level++) {
      for (const auto& f : v->files_[level]) edit.AddFile(level, *f);
    }
  }
  return edit;
}

absl::Status WriteManifestFile(Env* env, const std::string& dir,
                               uint64_t manifest_number,
                               const VersionEdit& edit) {
  std::string path = ManifestFileName(dir, manifest_number);
  ASSIGN_OR_RETURN(auto file, env->NewWritableFile(path));
  record::Writer manifest(std::move(file));
  std::string record;
  edit.EncodeTo(&record);
  absl::Status s = manifest.AddRecord(record);
  if (s.ok()) s = manifest.Sync();
  absl::Status closed = manifest.Close();
  if (s.ok()) s = closed;
  if (s.ok()) s = env->SyncDir(dir);
  bool renamed = false;
  if (s.ok()) s = SetCurrentFile(env, dir, manifest_number, &renamed);
  return s;
}

absl::Status VersionSet::WriteSnapshot(record::Writer* manifest,
                                       const Version* v,
                                       SequenceNumber compacted) {
  VersionEdit edit = SnapshotEdit(v, compacted);
  std::string record;
  edit.EncodeTo(&record);
  RETURN_IF_ERROR(manifest->AddRecord(record));
  manifest_bytes_ = record.size();
  return absl::OkStatus();
}

absl::Status VersionSet::StartNewManifest() {
  bool renamed = false;
  return StartNewManifest(current_, CompactedRevision(), &renamed);
}

absl::Status VersionSet::StartNewManifest(const Version* v,
                                          SequenceNumber compacted,
                                          bool* renamed) {
  *renamed = false;
  uint64_t number = NewFileNumber();
  std::string path = ManifestFileName(dbname_, number);
  ASSIGN_OR_RETURN(auto file, env_->NewWritableFile(path));
  auto manifest = std::make_unique<record::Writer>(std::move(file));
  absl::Status s = WriteSnapshot(manifest.get(), v, compacted);
  // The manifest's entry must be durable before CURRENT names it.
  if (s.ok()) s = manifest->Sync();
  if (s.ok()) s = env_->SyncDir(dbname_);
  if (s.ok()) s = SetCurrentFile(env_, dbname_, number, renamed);
  if (!s.ok()) {
    manifest->Close().IgnoreError();
    // Once CURRENT has been renamed it may name this manifest (even though
    // the directory fsync failed): keep the file, or the database could not
    // be opened again.
    if (!*renamed) env_->RemoveFile(path).IgnoreError();
    return s;
  }
  manifest_ = std::move(manifest);
  manifest_file_number_ = number;
  return absl::OkStatus();
}

absl::Status VersionSet::CreateNew() {
  MutexLock l(mu_);
  next_file_number_ = 1;
  database_format_ = VersionEdit::kDatabaseFormat;
  AppendVersion(new Version(this, icmp_));
  return StartNewManifest();
}

absl::Status VersionSet::Recover() {
  std::string manifest_name;
  RETURN_IF_ERROR(ReadCurrentFile(&manifest_name));
  std::string path = dbname_ + "/" + manifest_name;
  ASSIGN_OR_RETURN(auto file, env_->NewSequentialFile(path));
  record::Reader reader(std::move(file), path);

  Builder builder(this, nullptr);
  std::optional<uint64_t> min_wal_number, next_file, last_sequence;
  std::optional<uint64_t> compacted_revision;
  std::optional<uint32_t> database_format;
  std::string scratch;
  std::string_view record;
  int edits = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool more, reader.ReadRecord(&record, &scratch));
    if (!more) break;
    VersionEdit edit;
    absl::Status s = edit.DecodeFrom(record);
    if (!s.ok()) {
      return absl::DataLossError(absl::StrFormat(
          "%s: record at offset %d: %s", path, reader.LastRecordOffset(),
          std::string(s.message())));
    }
    if (edit.comparator() &&
        *edit.comparator() != icmp_->user_comparator()->Name()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: database uses comparator %s, not %s", path, *edit.comparator(),
          icmp_->user_comparator()->Name()));
    }
    builder.Apply(edit);
    if (edit.min_wal_number()) min_wal_number = edit.min_wal_number();
    if (edit.next_file_number()) next_file = edit.next_file_number();
    if (edit.last_sequence()) last_sequence = edit.last_sequence();
    if (edit.compacted_revision()) {
      compacted_revision = edit.compacted_revision();
    }
    if (edit.database_format()) database_format = edit.database_format();
    edits++;
  }
  if (edits == 0 || !next_file || !min_wal_number || !last_sequence) {
    return absl::DataLossError(
        absl::StrFormat("%s: manifest has no complete snapshot", path));
  }
  Version* v = new Version(this, icmp_);
  builder.SaveTo(v);
  AppendVersion(v);
  next_file_number_ = *next_file;
  min_wal_number_ = *min_wal_number;
  SetLastSequence(*last_sequence);
  compacted_revision_.store(compacted_revision.value_or(0),
                            std::memory_order_release);
  database_format_ = database_format.value_or(1);
  if (database_format_ > VersionEdit::kDatabaseFormat) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: database format version %d is newer than this build supports "
        "(%d); use a newer strata",
        path, database_format_, VersionEdit::kDatabaseFormat));
  }
  uint64_t old_number;
  FileType type;
  ParseFileName(manifest_name, &old_number, &type);
  MarkFileNumberUsed(old_number);
  spdlog::info("recovered manifest {}: {} edits, next file {}, last sequence {}",
               path, edits, next_file_number_, LastSequence());
  return StartNewManifest();
}

absl::Status VersionSet::LogAndApply(VersionEdit* edit) {
  while (manifest_busy_) manifest_cv_.Wait(mu_);
  manifest_busy_ = true;

  const uint64_t old_min_wal_number = min_wal_number_;
  if (edit->min_wal_number()) {
    min_wal_number_ = std::max(min_wal_number_, *edit->min_wal_number());
  }
  edit->SetMinWalNumber(min_wal_number_);
  edit->SetNextFile(next_file_number_);
  edit->SetLastSequence(LastSequence());
  if (!options_.keep_history) {
    // No history is kept: compactions may drop anything up to now, so a
    // later open with keep_history must not offer reads below it.
    edit->SetCompactedRevision(LastSequence());
  }
  const uint32_t old_format = database_format_;
  if (edit->database_format()) database_format_ = *edit->database_format();
  edit->SetDatabaseFormat(database_format_);

  Version* v = new Version(this, icmp_);
  {
    Builder builder(this, current_);
    builder.Apply(*edit);
    builder.SaveTo(v);
  }

  std::string record;
  edit->EncodeTo(&record);
  // Roll over to a fresh manifest (a snapshot) once this one is large, so
  // recovery stays fast.
  // A manifest whose last write failed may end in a partial record, so it
  // is never appended to again.
  bool roll = manifest_ == nullptr || manifest_bytes_ > (64u << 20);
  absl::Status s;
  // manifest_busy_ keeps every other writer off the manifest while the
  // mutex is released.
  record::Writer* const manifest = manifest_.get();
  mu_->Unlock();
  if (!roll) {
    s = manifest->AddRecord(record);
    if (s.ok()) s = manifest->Sync();
  }
  mu_->Lock();
  SequenceNumber compacted = CompactedRevision();
  if (edit->compacted_revision() && *edit->compacted_revision() > compacted) {
    compacted = *edit->compacted_revision();
  }
  bool renamed = false;
  if (roll) {
    // The snapshot holds the new version: if it cannot be written, the
    // edit is not applied (as when an append fails), so the caller may
    // retry the same work (e.g. after running out of space).
    s = StartNewManifest(v, compacted, &renamed);
  }
  if (s.ok() || renamed) {
    if (s.ok()) manifest_bytes_ += roll ? 0 : record.size();
    // Durable now, or perhaps (CURRENT renamed, then a failure): install
    // it, as recovery may find it. The failure then is not a transient
    // one for the caller (its errno is dropped): writes stop for good.
    compacted_revision_.store(compacted, std::memory_order_release);
    AppendVersion(v);
    if (!s.ok()) {
      manifest_.reset();
      s = absl::UnavailableError(absl::StrCat(
          "manifest switch failed after CURRENT was renamed: ", s.message()));
    }
  } else {
    delete v;
    min_wal_number_ = old_min_wal_number;
    database_format_ = old_format;
    manifest_.reset();
    spdlog::error("manifest write failed: {}", s.ToString());
  }
  manifest_busy_ = false;
  manifest_cv_.SignalAll();
  return s;
}

}  // namespace strata::storage
