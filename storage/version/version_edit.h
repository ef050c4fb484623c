#ifndef STRATA_STORAGE_VERSION_VERSION_EDIT_H_
#define STRATA_STORAGE_VERSION_VERSION_EDIT_H_

// A VersionEdit is one manifest record: the difference between two
// versions of the LSM tree (files added and removed per level) plus the
// counters that must survive a restart. Encoding (docs/manifest-format.md):
//
//   edit   := fixed32(format version = 2) field*   (1: tags 1-6 only)
//   field  := varint32(tag) payload
//   tags   := 1 comparator name (length-prefixed)
//             2 minimum WAL number (varint64): WALs below it are obsolete
//             3 next file number (varint64)
//             4 last sequence (varint64)
//             5 deleted file: varint32(level) varint64(number)
//             6 new file: varint32(level) varint64(number) varint64(size)
//               lp(smallest internal key) lp(largest internal key)
//             7 compacted revision (varint64)          (edit version 2)
//             8 database format version (varint32)     (edit version 2)
//
// Database format versions: 1 = before revisions (one sequence number per
// operation, values without metadata); 2 = revisions (one per batch,
// values with metadata, WAL format version 2). A manifest that never
// names one is format 1.
//
// Tag values are part of the on-disk format: never change or reuse one.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "util/dbformat.h"

namespace strata::storage {

inline constexpr int kNumLevels = 7;

// An SSTable as the version set knows it. Immutable once installed (which
// files a running compaction holds is the DB's state, not the file's).
struct FileMetaData {
  uint64_t number = 0;
  uint64_t file_size = 0;  // Bytes.
  InternalKey smallest;    // Smallest internal key in the table.
  InternalKey largest;     // Largest internal key in the table.
};

class VersionEdit {
 public:
  // The edit encoding written; DecodeFrom also reads version 1.
  static constexpr uint32_t kFormatVersion = 2;
  // The database format this build writes (see the file comment).
  static constexpr uint32_t kDatabaseFormat = 2;

  void SetComparatorName(std::string name) { comparator_ = std::move(name); }
  // The oldest WAL still needed: every WAL numbered below it is fully
  // flushed to installed tables.
  void SetMinWalNumber(uint64_t n) { min_wal_number_ = n; }
  void SetNextFile(uint64_t n) { next_file_number_ = n; }
  void SetLastSequence(SequenceNumber s) { last_sequence_ = s; }
  void SetCompactedRevision(SequenceNumber r) { compacted_revision_ = r; }
  void SetDatabaseFormat(uint32_t v) { database_format_ = v; }
  void AddFile(int level, const FileMetaData& f) {
    new_files_.emplace_back(level, f);
  }
  void RemoveFile(int level, uint64_t number) {
    deleted_files_.emplace(level, number);
  }

  const std::optional<std::string>& comparator() const { return comparator_; }
  const std::optional<uint64_t>& min_wal_number() const {
    return min_wal_number_;
  }
  const std::optional<uint64_t>& next_file_number() const {
    return next_file_number_;
  }
  const std::optional<SequenceNumber>& last_sequence() const {
    return last_sequence_;
  }
  const std::optional<SequenceNumber>& compacted_revision() const {
    return compacted_revision_;
  }
  const std::optional<uint32_t>& database_format() const {
    return database_format_;
  }
  const std::set<std::pair<int, uint64_t>>& deleted_files() const {
    return deleted_files_;
  }
  const std::vector<std::pair<int, FileMetaData>>& new_files() const {
    return new_files_;
  }

  void EncodeTo(std::string* dst) const;
  // Parses an encoded edit. Returns DataLoss describing the first problem
  // (unknown version or tag, truncated field, level out of range).
  absl::Status DecodeFrom(std::string_view src);

 private:
  std::optional<std::string> comparator_;
  std::optional<uint64_t> min_wal_number_;
  std::optional<uint64_t> next_file_number_;
  std::optional<SequenceNumber> last_sequence_;
  std::optional<SequenceNumber> compacted_revision_;
  std::optional<uint32_t> database_format_;
  std::set<std::pair<int, uint64_t>> deleted_files_;
  std::vector<std::pair<int, FileMetaData>> new_files_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_VERSION_VERSION_EDIT_H_
