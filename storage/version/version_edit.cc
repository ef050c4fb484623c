#include "version/version_edit.h"

#include "absl/strings/str_format.h"
#include "util/coding.h"

namespace strata::storage {
namespace {

// Part of the on-disk format: never change or reuse a value.
enum Tag : uint32_t {
  kComparator = 1,
  kMinWalNumber = 2,
  kNextFileNumber = 3,
  kLastSequence = 4,
  kDeletedFile = 5,
  kNewFile = 6,
  kCompactedRevision = 7,
  kDatabaseFormatTag = 8,
};

bool GetLevel(std::string_view* input, int* level) {
  uint32_t v;
  if (!GetVarint32(input, &v) || v >= static_cast<uint32_t>(kNumLevels)) {
    return false;
  }
  *level = static_cast<int>(v);
  return true;
}

bool GetInternalKey(std::string_view* input, InternalKey* key) {
  std::string_view s;
  if (!GetLengthPrefixed(input, &s) || s.size() < 8) return false;
  key->DecodeFrom(s);
  return true;
}

}  // namespace

void VersionEdit::EncodeTo(std::string* dst) const {
  PutFixed32(dst, kFormatVersion);
  if (comparator_) {
    PutVarint32(dst, kComparator);
    PutLengthPrefixed(dst, *comparator_);
  }
  if (min_wal_number_) {
    PutVarint32(dst, kMinWalNumber);
    PutVarint64(dst, *min_wal_number_);
  }
  if (next_file_number_) {
    PutVarint32(dst, kNextFileNumber);
    PutVarint64(dst, *next_file_number_);
  }
  if (last_sequence_) {
    PutVarint32(dst, kLastSequence);
    PutVarint64(dst, *last_sequence_);
  }
  if (compacted_revision_) {
    PutVarint32(dst, kCompactedRevision);
    PutVarint64(dst, *compacted_revision_);
  }
  if (database_format_) {
    PutVarint32(dst, kDatabaseFormatTag);
    PutVarint32(dst, *database_format_);
  }
  for (const auto& [level, number] : deleted_files_) {
    PutVarint32(dst, kDeletedFile);
    PutVarint32(dst, static_cast<uint32_t>(level));
    PutVarint64(dst, number);
  }
  for (const auto& [level, f] : new_files_) {
    PutVarint32(dst, kNewFile);
    PutVarint32(dst, static_cast<uint32_t>(level));
    PutVarint64(dst, f.number);
    PutVarint64(dst, f.file_size);
    PutLengthPrefixed(dst, f.smallest.Encode());
    PutLengthPrefixed(dst, f.largest.Encode());
  }
}

absl::Status VersionEdit::DecodeFrom(std::string_view src) {
  *this = VersionEdit();
  std::string_view input = src;
  uint32_t version;
  if (!GetFixed32(&input, &version)) {
    return absl::DataLossError("version edit: truncated format version");
  }
  if (version != 1 && version != kFormatVersion) {
    return absl::DataLossError(
        absl::StrFormat("version edit: unknown format version %u", version));
  }
  while (!input.empty()) {
    uint32_t tag;
    const char* field = "tag";
    bool ok = GetVarint32(&input, &tag);
    if (ok) {
      switch (tag) {
        case kComparator: {
          field = "comparator";
          std::string_view name;
          ok = GetLengthPrefixed(&input, &name);
          if (ok) comparator_ = std::string(name);
          break;
        }
        case kMinWalNumber: {
          field = "minimum WAL number";
          uint64_t v;
          ok = GetVarint64(&input, &v);
          if (ok) min_wal_number_ = v;
          break;
        }
        case kNextFileNumber: {
          field = "next file number";
          uint64_t v;
          ok = GetVarint64(&input, &v);
          if (ok) next_file_number_ = v;
          break;
        }
        case kLastSequence: {
          field = "last sequence";
          uint64_t v;
          ok = GetVarint64(&input, &v);
          if (ok) last_sequence_ = v;
          break;
        }
        case kDeletedFile: {
          field = "deleted file";
          int level;
          uint64_t number;
          ok = GetLevel(&input, &level) && GetVarint64(&input, &number);
          if (ok) deleted_files_.emplace(level, number);
          break;
        }
        case kNewFile: {
          field = "new file";
          int level;
          FileMetaData f;
          ok = GetLevel(&input, &level) && GetVarint64(&input, &f.number) &&
               GetVarint64(&input, &f.file_size) &&
               GetInternalKey(&input, &f.smallest) &&
               GetInternalKey(&input, &f.largest);
          if (ok) new_files_.emplace_back(level, f);
          break;
        }
        case kCompactedRevision: {
          field = "compacted revision";
          uint64_t v;
          ok = version >= 2 && GetVarint64(&input, &v);
          if (ok) compacted_revision_ = v;
          break;
        }
        case kDatabaseFormatTag: {
          field = "database format";
          uint32_t v;
          ok = version >= 2 && GetVarint32(&input, &v);
          if (ok) database_format_ = v;
          break;
        }
        default:
          return absl::DataLossError(
              absl::StrFormat("version edit: unknown tag %u at byte %d", tag,
                              src.size() - input.size()));
      }
    }
    if (!ok) {
      return absl::DataLossError(
          absl::StrFormat("version edit: malformed %s field at byte %d", field,
                          src.size() - input.size()));
    }
  }
  return absl::OkStatus();
}

}  // namespace strata::storage
