// Record reader: reassembles records from fragments and tells a torn tail
// (a crash mid-append) from corruption. See reader.h and
// docs/wal-format.md.

#include "record/reader.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_format.h"
#include "util/checksum.h"
#include "util/coding.h"
#include "util/status_macros.h"

namespace strata::storage::record {

Reader::Reader(std::unique_ptr<SequentialFile> file, std::string filename,
               uint32_t max_version)
    : max_version_(std::min(max_version, kMaxFormatVersion)),
      file_(std::move(file)),
      filename_(std::move(filename)),
      block_(new char[kBlockSize]) {}

Reader::~Reader() = default;

absl::StatusOr<bool> Reader::ReadRecord(std::string_view* record,
                                        std::string* scratch) {
  if (!status_.ok()) return status_;
  if (done_) return false;
  absl::StatusOr<bool> r = ReadRecordImpl(record, scratch);
  if (!r.ok()) status_ = r.status();
  return r;
}

absl::StatusOr<bool> Reader::ReadRecordImpl(std::string_view* record,
                                            std::string* scratch) {
  if (!started_) {
    started_ = true;
    ASSIGN_OR_RETURN(bool has_records, ReadFileHeader());
    if (!has_records) return false;
  }
  scratch->clear();
  bool in_record = false;
  uint64_t record_start = 0;
  Fragment f;
  const char* what = nullptr;
  while (true) {
    ASSIGN_OR_RETURN(Next next, NextFragment(&f, &what));
    if (next == Next::kEnd) {
      if (!in_record) {
        done_ = true;
        return false;
      }
      return OnDamage(record_start, "incomplete record", record_start,
                      end_of_block());
    }
    if (next == Next::kDamaged) {
      return OnDamage(f.offset, what, in_record ? record_start : f.offset,
                      f.offset + 1);
    }
    const uint64_t after = f.offset + kHeaderSize + f.payload.size();
    switch (f.type) {
      case kFullType:
      case kFirstType:
        if (in_record) {
          // The fragment itself may be fine: let the probe see it.
          return OnDamage(record_start, "record without a LAST fragment",
                          record_start, f.offset);
        }
        if (f.type == kFullType) {
          *record = f.payload;
          last_record_offset_ = f.offset;
          return true;
        }
        scratch->assign(f.payload.data(), f.payload.size());
        in_record = true;
        record_start = f.offset;
        break;
      case kMiddleType:
      case kLastType:
        if (!in_record) {
          return OnDamage(f.offset, "MIDDLE or LAST fragment without FIRST",
                          f.offset, after);
        }
        scratch->append(f.payload.data(), f.payload.size());
        if (f.type == kLastType) {
          *record = *scratch;
          last_record_offset_ = record_start;
          return true;
        }
        break;
      default:  // ParseFragmentAt admits no other type.
        return absl::InternalError("record reader: unexpected fragment type");
    }
  }
}

absl::StatusOr<bool> Reader::ReadFileHeader() {
  ASSIGN_OR_RETURN(bool any, ReadBlock());
  if (!any) {  // 0 bytes: created, then the process stopped.
    done_ = true;
    return false;
  }
  const std::string_view have(block_.get(),
                              std::min(block_len_, kFileHeaderSize));
  for (uint32_t version = 1; version <= max_version_; version++) {
    const std::string_view want = FileHeader(version);
    if (have != want.substr(0, have.size())) continue;
    if (have.size() == kFileHeaderSize) {
      pos_ = kFileHeaderSize;
      format_version_ = version;
      return true;
    }
    return OnDamage(0, "truncated file header", 0, end_of_block());
  }
  if (std::all_of(have.begin(), have.end(), [](char c) { return c == 0; })) {
    return OnDamage(0, "zero-filled file header", 0, have.size());
  }
  // A damaged header on a file no longer than a header: the WAL was being
  // created when the machine stopped (the engine syncs a new WAL's header
  // before using it), and the file holds no record, so nothing acknowledged
  // can be in it. Handled like a torn tail, not as data loss.
  if (block_len_ <= kFileHeaderSize) {
    return OnDamage(0, "damaged file header of a WAL with no records", 0,
                    have.size());
  }
  // Not something a crash produces: a foreign, damaged or newer file.
  std::string what = "bad file header";
  if (have.size() == kFileHeaderSize) {
    if (have.substr(0, kFileMagic.size()) != kFileMagic) {
      what = "bad file header magic (not a WAL file)";
    } else if (Checksum32(have.substr(0, 12)) != DecodeFixed32(&have[12])) {
      what = "file header checksum mismatch";
    } else {
      what = absl::StrFormat("unsupported WAL format version %u",
                             DecodeFixed32(&have[8]));
    }
  }
  return absl::DataLossError(
      absl::StrFormat("%s: %s at offset 0", filename_, what));
}

absl::StatusOr<bool> Reader::ReadBlock() {
  if (eof_) return false;
  block_start_ += block_len_;
  block_len_ = 0;
  pos_ = 0;
  // SequentialFile::Read may return less than asked before the end.
  while (block_len_ < kBlockSize) {
    char* dst = block_.get() + block_len_;
    ASSIGN_OR_RETURN(std::string_view got,
                     file_->Read(kBlockSize - block_len_, dst));
    if (got.empty()) break;
    if (got.data() != dst) std::memmove(dst, got.data(), got.size());
    block_len_ += got.size();
  }
  eof_ = block_len_ < kBlockSize;
  return block_len_ > 0;
}

absl::StatusOr<Reader::Next> Reader::NextFragment(Fragment* f,
                                                  const char** what) {
  while (block_len_ - pos_ < kHeaderSize) {
    if (block_len_ < kBlockSize && pos_ < block_len_) {
      // The file ends inside a fragment header (never inside a trailer: a
      // trailer is only written together with the next fragment).
      f->offset = block_start_ + pos_;
      *what = "truncated fragment header";
      return Next::kDamaged;
    }
    ASSIGN_OR_RETURN(bool more, ReadBlock());
    if (!more) return Next::kEnd;
  }
  if (!ParseFragmentAt(pos_, f, what)) {
    f->offset = block_start_ + pos_;
    return Next::kDamaged;
  }
  pos_ += kHeaderSize + f->payload.size();
  return Next::kFragment;
}

bool Reader::ParseFragmentAt(size_t pos, Fragment* f,
                             const char** what) const {
  const char* h = block_.get() + pos;
  const uint8_t type = static_cast<uint8_t>(h[6]);
  const size_t length = static_cast<uint8_t>(h[4]) |
                        (static_cast<size_t>(static_cast<uint8_t>(h[5])) << 8);
  if (type == kZeroType || type > kMaxFragmentType) {
    *what = type == kZeroType ? "zero fragment type" : "bad fragment type";
    return false;
  }
  if (pos + kHeaderSize + length > block_len_) {
    *what = pos + kHeaderSize + length > kBlockSize ? "bad fragment length"
                                                    : "truncated fragment";
    return false;
  }
  if (Checksum32(h + kHeaderSize, length, type) != DecodeFixed32(h)) {
    *what = "checksum mismatch";
    return false;
  }
  f->type = static_cast<FragmentType>(type);
  f->payload = std::string_view(h + kHeaderSize, length);
  f->offset = block_start_ + pos;
  return true;
}

absl::StatusOr<bool> Reader::OnDamage(uint64_t offset, std::string_view what,
                                      uint64_t drop_from,
                                      uint64_t probe_from) {
  ASSIGN_OR_RETURN(bool valid_after, ValidRecordFollows(probe_from));
  if (valid_after) {
    return absl::DataLossError(
        absl::StrFormat("%s: %s at offset %d", filename_, what, offset));
  }
  done_ = true;
  dropped_torn_tail_ = true;
  dropped_bytes_ = end_of_block() - drop_from;
  spdlog::warn(
      "{}: dropping a torn tail of {} bytes at offset {} ({}, no valid "
      "record after it): the last write before a crash was incomplete",
      filename_, dropped_bytes_, drop_from, what);
  return false;
}

absl::StatusOr<bool> Reader::ValidRecordFollows(uint64_t from) {
  pos_ = from - block_start_;
  // Scans byte by byte through damage and fragment by fragment through
  // valid data. A FIRST or MIDDLE fragment fills its block, so a record
  // continues at the start of the next block.
  bool in_record = false;
  Fragment f;
  const char* what = nullptr;
  while (true) {
    if (block_len_ - pos_ < kHeaderSize) {
      ASSIGN_OR_RETURN(bool more, ReadBlock());
      if (!more) return false;
      continue;
    }
    if (!ParseFragmentAt(pos_, &f, &what)) {
      in_record = false;
      ++pos_;
      continue;
    }
    switch (f.type) {
      case kFullType:
        return true;
      case kFirstType:
        in_record = true;
        break;
      case kLastType:
        if (in_record) return true;
        break;
      default:
        break;
    }
    pos_ += kHeaderSize + f.payload.size();
  }
}

}  // namespace strata::storage::record
