#include "tools/verify.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "db/write_batch_internal.h"
#include "strata/storage/change_log.h"
#include "record/reader.h"
#include "table/table.h"
#include "util/checksum.h"
#include "util/comparator.h"
#include "util/dbformat.h"
#include "util/filename.h"
#include "util/status_macros.h"
#include "version/version_edit.h"

namespace strata::storage {
namespace {

struct LiveTable {
  int level = 0;
  FileMetaData meta;
};

// What the manifest says.
struct Tree {
  std::map<uint64_t, LiveTable> tables;  // By file number.
  uint64_t min_wal_number = 0;
  uint64_t next_file = 0;
  SequenceNumber last_sequence = 0;
};

class Verifier {
 public:
  Verifier(std::string dir, const VerifyOptions& options)
      : dir_(std::move(dir)),
        env_(options.env != nullptr ? options.env : Env::Default()),
        verbose_(options.verbose),
        icmp_(BytewiseComparator()) {}

  absl::StatusOr<VerifyReport> Run();

 private:
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Error(const std::string& file, const std::string& what) {
    report_.errors.push_back(absl::StrFormat("%s: %s", file, what));
  }
  void Warn(const std::string& file, const std::string& what) {
    report_.warnings.push_back(absl::StrFormat("%s: %s", file, what));
  }
  void Info(const std::string& file, const std::string& what) {
    if (verbose_) report_.info.push_back(absl::StrFormat("%s: %s", file, what));
  }

  std::optional<std::string> CheckCurrent();
  std::optional<Tree> CheckManifest(const std::string& name);
  void CheckLevels(const Tree& tree);
  void CheckTable(uint64_t number, const LiveTable* live, const Tree& tree);
  void CheckWal(uint64_t number, bool newest);

  const std::string dir_;
  Env* const env_;
  const bool verbose_;
  const InternalKeyComparator icmp_;
  VerifyReport report_;
};

std::optional<std::string> Verifier::CheckCurrent() {
  const std::string path = CurrentFileName(dir_);
  report_.files_checked++;
  auto file = env_->NewSequentialFile(path);
  if (!file.ok()) {
    Error(path, file.status().ToString());
    return std::nullopt;
  }
  char buf[256];
  auto data = (*file)->Read(sizeof(buf), buf);
  if (!data.ok()) {
    Error(path, data.status().ToString());
    return std::nullopt;
  }
  std::string_view line = *data;
  auto bad = [&](const char* what) {
    Error(path + " at offset 0", what);  // The engine's wording.
    return std::nullopt;
  };
  if (line.empty() || line.back() != '\n') return bad("truncated");
  line.remove_suffix(1);
  const size_t space = line.rfind(' ');
  if (space == std::string_view::npos) return bad("malformed");
  std::string_view body = line.substr(0, space);
  std::string hex(line.substr(space + 1));
  uint32_t checksum = 0;
  if (hex.size() != 8 ||
      !absl::SimpleHexAtoi(absl::string_view(hex.data(), hex.size()),
                           &checksum) ||
      checksum != Checksum32(body)) {
    return bad("checksum mismatch");
  }
  std::vector<std::string> fields = absl::StrSplit(std::string(body), ' ');
  if (fields.size() != 3 || fields[0] != "strata-current") {
    return bad("bad magic");
  }
  if (fields[1] != "1") return bad("unknown format version");
  uint64_t number;
  FileType type;
  if (!ParseFileName(fields[2], &number, &type) || type != FileType::kManifest) {
    return bad("does not name a manifest");
  }
  Info(path, "names " + fields[2]);
  return fields[2];
}

std::optional<Tree> Verifier::CheckManifest(const std::string& name) {
  const std::string path = Path(name);
  report_.files_checked++;
  auto file = env_->NewSequentialFile(path);
  if (!file.ok()) {
    Error(path, absl::StrFormat("named by CURRENT but unreadable: %s",
                                file.status().ToString()));
    return std::nullopt;
  }
  record::Reader reader(std::move(*file), path);
  Tree tree;
  std::optional<uint64_t> min_wal_number, next_file, last_sequence;
  std::string scratch;
  std::string_view record;
  int edits = 0;
  while (true) {
    auto more = reader.ReadRecord(&record, &scratch);
    if (!more.ok()) {
      Error(path, more.status().ToString());
      return std::nullopt;
    }
    if (!*more) break;
    VersionEdit edit;
    absl::Status s = edit.DecodeFrom(record);
    if (!s.ok()) {
      Error(path, absl::StrFormat("record at offset %d: %s",
                                  reader.LastRecordOffset(),
                                  std::string(s.message())));
      return std::nullopt;
    }
    if (edit.comparator() && *edit.comparator() != BytewiseComparator()->Name()) {
      Error(path, absl::StrFormat("record at offset %d: comparator %s, not %s",
                                  reader.LastRecordOffset(), *edit.comparator(),
                                  BytewiseComparator()->Name()));
      return std::nullopt;
    }
    for (const auto& [level, number] : edit.deleted_files()) {
      auto it = tree.tables.find(number);
      if (it != tree.tables.end() && it->second.level == level) {
        tree.tables.erase(it);
      }
    }
    for (const auto& [level, f] : edit.new_files()) {
      tree.tables[f.number] = LiveTable{level, f};
    }
    if (edit.min_wal_number()) min_wal_number = edit.min_wal_number();
    if (edit.next_file_number()) next_file = edit.next_file_number();
    if (edit.last_sequence()) last_sequence = edit.last_sequence();
    edits++;
  }
  if (reader.dropped_torn_tail()) {
    Warn(path, absl::StrFormat("torn final record (%d bytes) dropped, as after "
                               "a crash during a manifest write",
                               reader.dropped_bytes()));
  }
  if (edits == 0 || !min_wal_number || !next_file || !last_sequence) {
    Error(path, "manifest has no complete snapshot");
    return std::nullopt;
  }
  tree.min_wal_number = *min_wal_number;
  tree.next_file = *next_file;
  tree.last_sequence = *last_sequence;
  Info(path, absl::StrFormat("%d edits, %d live tables, minimum WAL number "
                             "%d, next file %d, last sequence %d",
                             edits, tree.tables.size(), tree.min_wal_number,
                             tree.next_file, tree.last_sequence));
  return tree;
}

void Verifier::CheckLevels(const Tree& tree) {
  const Comparator* ucmp = icmp_.user_comparator();
  std::map<int, std::vector<const FileMetaData*>> levels;
  for (const auto& [number, t] : tree.tables) {
    if (t.meta.number >= tree.next_file) {
      Error(TableFileName(dir_, number),
            absl::StrFormat("file number is not below the manifest's next "
                            "file number %d",
                            tree.next_file));
    }
    if (t.level > 0) levels[t.level].push_back(&t.meta);
  }
  for (auto& [level, files] : levels) {
    std::sort(files.begin(), files.end(),
              [this](const FileMetaData* a, const FileMetaData* b) {
                return icmp_.Compare(a->smallest.Encode(), b->smallest.Encode()) < 0;
              });
    for (size_t i = 1; i < files.size(); i++) {
      if (ucmp->Compare(files[i - 1]->largest.user_key(),
                        files[i]->smallest.user_key()) >= 0) {
        Error(TableFileName(dir_, files[i]->number),
              absl::StrFormat("level %d: key range overlaps %06d.sst", level,
                              files[i - 1]->number));
      }
    }
  }
}

void Verifier::CheckTable(uint64_t number, const LiveTable* live,
                          const Tree& tree) {
  const std::string path = TableFileName(dir_, number);
  report_.files_checked++;
  // A table the manifest does not list is a leftover of an interrupted
  // flush or compaction: it may be partial, and the next open deletes it,
  // so its damage is only a warning.
  auto problem = [&](const std::string& what) {
    if (live != nullptr) {
      Error(path, what);
    } else {
      Warn(path, "not listed in the manifest (a leftover of an interrupted "
                 "flush or compaction; deleted at the next open) and "
                 "unreadable: " + what);
    }
  };
  auto size = env_->GetFileSize(path);
  if (!size.ok()) {
    problem(size.status().ToString());
    return;
  }
  if (live != nullptr && *size != live->meta.file_size) {
    problem(absl::StrFormat("file is %d bytes; the manifest says %d", *size,
                                live->meta.file_size));
    return;
  }
  auto file = env_->NewRandomAccessFile(path);
  if (!file.ok()) {
    problem(file.status().ToString());
    return;
  }
  TableOptions topts;
  topts.comparator = &icmp_;
  auto table = Table::Open(topts, path, std::move(*file), *size);
  if (!table.ok()) {
    problem(table.status().ToString());
    return;
  }
  ReadOptions ro;
  ro.verify_checksums = true;
  ro.fill_cache = false;
  std::unique_ptr<Iterator> it((*table)->NewIterator(ro));
  std::string prev, first;
  uint64_t entries = 0;
  bool bad = false;
  for (it->SeekToFirst(); it->Valid() && !bad; it->Next()) {
    std::string_view key = it->key();
    ParsedInternalKey parsed;
    if (!ParseInternalKey(key, &parsed)) {
      problem(absl::StrFormat("entry %d: malformed internal key", entries));
      bad = true;
      break;
    }
    if (entries > 0 && icmp_.Compare(prev, key) >= 0) {
      problem(absl::StrFormat("entry %d: keys out of order", entries));
      bad = true;
      break;
    }
    if (live != nullptr && parsed.sequence > tree.last_sequence) {
      problem(absl::StrFormat("entry %d: sequence %d is above the "
                                  "manifest's last sequence %d",
                                  entries, parsed.sequence, tree.last_sequence));
      bad = true;
      break;
    }
    if (entries == 0) first.assign(key.data(), key.size());
    prev.assign(key.data(), key.size());
    entries++;
  }
  if (!it->status().ok()) {
    problem(it->status().ToString());
    return;
  }
  if (bad) return;
  if (entries != (*table)->properties().num_entries) {
    problem(absl::StrFormat("%d entries; the properties block says %d",
                                entries, (*table)->properties().num_entries));
  }
  if (live != nullptr && entries > 0 &&
      (first != live->meta.smallest.Encode() ||
       prev != live->meta.largest.Encode())) {
    problem("first or last key differs from the manifest's key range");
  }
  if (live == nullptr) {
    Warn(path, "not listed in the manifest (left by an interrupted flush or "
               "compaction; deleted at the next open)");
  }
  Info(path, absl::StrFormat("%s%d entries, %d bytes",
                             live != nullptr
                                 ? absl::StrFormat("level %d, ", live->level)
                                 : std::string(),
                             entries, *size));
}

// Counts the operations of a write batch.
class CountingHandler final : public WriteBatch::Handler {
 public:
  void Put(std::string_view, std::string_view, const PutAttributes&) override {
    n++;
  }
  void Delete(std::string_view) override { n++; }
  uint32_t n = 0;
};

// Checks one WAL record: a committed batch (format 2) or a user-form batch
// of a format-1 WAL. Sets *first and *last to the sequence numbers it
// uses and *ops to its operation count.
absl::Status CheckWalRecord(uint32_t format, std::string_view record,
                            SequenceNumber* first, SequenceNumber* last,
                            uint64_t* ops) {
  if (format == record::kWalFormatVersion) {
    ChangeBatch batch;
    RETURN_IF_ERROR(ChangeBatch::Decode(
        std::make_shared<const std::string>(record), &batch));
    if (batch.changes.empty()) {
      return absl::DataLossError("committed batch with no operations");
    }
    *first = *last = batch.revision;
    *ops = batch.changes.size();
    return absl::OkStatus();
  }
  WriteBatch batch;
  RETURN_IF_ERROR(WriteBatchInternal::SetContents(&batch, record));
  CountingHandler counter;
  RETURN_IF_ERROR(batch.Iterate(&counter));
  if (counter.n != batch.Count()) {
    return absl::DataLossError(absl::StrFormat(
        "batch count %d but %d operations", batch.Count(), counter.n));
  }
  *first = WriteBatchInternal::GetRevision(record);
  *last = *first + batch.Count() - 1;
  *ops = batch.Count();
  return absl::OkStatus();
}

void Verifier::CheckWal(uint64_t number, bool newest) {
  const std::string path = WalFileName(dir_, number);
  report_.files_checked++;
  auto file = env_->NewSequentialFile(path);
  if (!file.ok()) {
    Error(path, file.status().ToString());
    return;
  }
  record::Reader reader(std::move(*file), path, record::kWalFormatVersion);
  std::string scratch;
  std::string_view record;
  uint64_t records = 0, ops = 0;
  SequenceNumber last = 0;
  while (true) {
    auto more = reader.ReadRecord(&record, &scratch);
    if (!more.ok()) {
      Error(path, more.status().ToString());
      return;
    }
    if (!*more) break;
    SequenceNumber first = 0, end = 0;
    uint64_t n = 0;
    absl::Status s =
        CheckWalRecord(reader.format_version(), record, &first, &end, &n);
    if (!s.ok()) {
      Error(path, absl::StrFormat("record at offset %d: %s",
                                  reader.LastRecordOffset(),
                                  std::string(s.message())));
      return;
    }
    if (n > 0) {
      if (first <= last) {
        Error(path, absl::StrFormat("record at offset %d: sequence %d does not "
                                    "follow %d",
                                    reader.LastRecordOffset(), first, last));
        return;
      }
      last = end;
    }
    records++;
    ops += n;
  }
  if (reader.dropped_torn_tail()) {
    Warn(path, absl::StrFormat(
                   "torn final record (%d bytes) dropped, as after a crash%s",
                   reader.dropped_bytes(),
                   newest ? "" : " (not the newest WAL: a crash during recovery "
                                 "or a memtable switch)"));
  }
  Info(path, absl::StrFormat("%d records, %d operations", records, ops));
}

absl::StatusOr<VerifyReport> Verifier::Run() {
  if (!env_->FileExists(dir_)) {
    return absl::NotFoundError(absl::StrFormat("%s does not exist", dir_));
  }
  if (!env_->FileExists(CurrentFileName(dir_))) {
    return absl::NotFoundError(
        absl::StrFormat("%s: no database here (CURRENT is missing)", dir_));
  }
  auto lock = env_->LockFile(LockFileName(dir_));
  if (!lock.ok()) return lock.status();
  auto children = env_->GetChildren(dir_);
  if (!children.ok()) return children.status();
  std::sort(children->begin(), children->end());

  std::optional<std::string> manifest = CheckCurrent();
  std::optional<Tree> tree;
  if (manifest) tree = CheckManifest(*manifest);

  std::set<uint64_t> tables_on_disk;
  std::vector<uint64_t> wals;
  for (const std::string& name : *children) {
    uint64_t number;
    FileType type;
    if (!ParseFileName(name, &number, &type)) continue;
    switch (type) {
      case FileType::kTable:
        tables_on_disk.insert(number);
        break;
      case FileType::kWal:
        wals.push_back(number);
        break;
      case FileType::kManifest:
        if (manifest && name != *manifest) {
          Warn(Path(name), "stale manifest (deleted at the next open)");
        }
        break;
      case FileType::kTemp:
        Warn(Path(name), "temporary file (deleted at the next open)");
        break;
      case FileType::kCurrent:
      case FileType::kLock:
        break;
    }
  }
  if (!tree) {
    // Without a manifest every file is an orphan; still check their bytes.
    for (uint64_t n : tables_on_disk) CheckTable(n, nullptr, Tree());
    for (uint64_t n : wals) CheckWal(n, n == wals.back());
    return report_;
  }

  CheckLevels(*tree);
  for (const auto& [number, live] : tree->tables) {
    if (!tables_on_disk.count(number)) {
      Error(TableFileName(dir_, number),
            absl::StrFormat("listed in the manifest at level %d but missing",
                            live.level));
    }
  }
  for (uint64_t number : tables_on_disk) {
    auto it = tree->tables.find(number);
    CheckTable(number, it == tree->tables.end() ? nullptr : &it->second, *tree);
  }
  std::vector<uint64_t> live_wals;
  for (uint64_t number : wals) {
    if (number >= tree->min_wal_number) {
      live_wals.push_back(number);
    } else {
      Warn(WalFileName(dir_, number),
           "obsolete WAL (below the minimum WAL number; deleted at the "
           "next open)");
    }
  }
  for (uint64_t number : live_wals) CheckWal(number, number == live_wals.back());
  return report_;
}

}  // namespace

absl::StatusOr<VerifyReport> VerifyDatabase(const std::string& dir,
                                            const VerifyOptions& options) {
  return Verifier(dir, options).Run();
}

}  // namespace strata::storage
