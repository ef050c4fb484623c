#ifndef STRATA_STORAGE_RECORD_READER_H_
#define STRATA_STORAGE_RECORD_READER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "record/format.h"
#include "strata/storage/env.h"

namespace strata::storage::record {

// Reads the records of a file in the record format (record/format.h), a WAL
// or a manifest, from start to end, for recovery and inspection tools.
//
// Damage rule (docs/wal-format.md, "Torn tail or corruption"): a fragment
// that fails its checks (checksum, length, type, fragment sequence) or a
// record cut short by the end of the file is
//   - a TORN TAIL if no complete, valid record follows it anywhere in the
//     file: the write that was in progress when the machine crashed. The
//     rest of the file is dropped, logged once with spdlog::warn, and
//     ReadRecord returns false (end of file) with dropped_torn_tail() set;
//   - CORRUPTION otherwise (data that was once written and acknowledged is
//     damaged): ReadRecord returns DataLoss.
// Deciding this scans the rest of the file, but only once, when damage is
// met.
//
// File header: a 0-byte file has no records (crash right after creation).
// A file that ends inside the header with the bytes written so far correct,
// or whose header bytes are all zero with no valid record after them, is a
// torn tail (a crash before the header reached the disk). Any other bad
// header (wrong magic, checksum or version: a foreign, damaged or newer
// file) is DataLoss, whatever follows.
//
// Thread safety: one thread at a time.
class Reader {
 public:
  // Takes ownership of file, positioned at its start. filename is used in
  // error and log messages only.
  // Files of format versions 1..max_version are accepted (format_version()
  // tells which one was read); a newer one is DataLoss.
  Reader(std::unique_ptr<SequentialFile> file, std::string filename,
         uint32_t max_version = kFormatVersion);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Reads the next record into *record, which points into *scratch or into
  // the reader's own buffer and stays valid until the next ReadRecord call
  // or until *scratch is modified.
  // Returns true for a record, false at the end of the file (including after
  // dropping a torn tail).
  // Errors (sticky: every later call returns the same one):
  //   DataLoss "<filename>: <what> at offset <N>" for a bad file header or
  //     for damage that is followed by a valid record (N = the file offset
  //     of the damaged fragment, or of the incomplete record's first one);
  //   the SequentialFile's status for I/O errors.
  absl::StatusOr<bool> ReadRecord(std::string_view* record,
                                  std::string* scratch);

  // The file's format version, once its header has been read (by the
  // first ReadRecord); 0 before, or if the file holds no header.
  uint32_t format_version() const { return format_version_; }
  // True once a torn tail has been dropped.
  bool dropped_torn_tail() const { return dropped_torn_tail_; }
  // Bytes dropped as a torn tail: from the start of the damaged record to
  // the end of the file. 0 if none.
  uint64_t dropped_bytes() const { return dropped_bytes_; }
  // File offset at which the record last returned by ReadRecord started
  // (its first fragment header). 0 before the first record.
  uint64_t LastRecordOffset() const { return last_record_offset_; }

 private:
  struct Fragment {
    FragmentType type = kZeroType;
    std::string_view payload;  // Points into block_.
    uint64_t offset = 0;       // File offset of the fragment header.
  };
  enum class Next { kFragment, kEnd, kDamaged };

  absl::StatusOr<bool> ReadRecordImpl(std::string_view* record,
                                      std::string* scratch);
  // Checks the file header in block 0. False: no records (and done_).
  absl::StatusOr<bool> ReadFileHeader();
  // Reads the next block into block_. False at the end of the file.
  absl::StatusOr<bool> ReadBlock();
  // Next fragment of the file, skipping block trailers. kDamaged sets
  // f->offset and *what.
  absl::StatusOr<Next> NextFragment(Fragment* f, const char** what);
  // Checks the fragment whose header starts at block_[pos]. REQUIRES: at
  // least kHeaderSize bytes from pos in the block.
  bool ParseFragmentAt(size_t pos, Fragment* f, const char** what) const;
  // Damage at file offset `offset`: DataLoss if a valid record starts at or
  // after probe_from, else drops the tail from drop_from and returns false.
  absl::StatusOr<bool> OnDamage(uint64_t offset, std::string_view what,
                                uint64_t drop_from, uint64_t probe_from);
  // Whether a complete record with valid fragments starts at or after file
  // offset `from` (within or after the current block). Reads to the end of
  // the file when there is none.
  absl::StatusOr<bool> ValidRecordFollows(uint64_t from);
  uint64_t end_of_block() const { return block_start_ + block_len_; }

  const uint32_t max_version_;
  uint32_t format_version_ = 0;
  std::unique_ptr<SequentialFile> file_;
  const std::string filename_;
  const std::unique_ptr<char[]> block_;

  uint64_t block_start_ = 0;  // File offset of block_[0].
  size_t block_len_ = 0;      // Bytes in block_; < kBlockSize only at EOF.
  size_t pos_ = 0;            // Parse position in block_.
  bool eof_ = false;          // The file ends with the current block.
  bool started_ = false;      // The file header was checked.
  bool done_ = false;         // End of log reached.
  absl::Status status_;       // Sticky error.

  bool dropped_torn_tail_ = false;
  uint64_t dropped_bytes_ = 0;
  uint64_t last_record_offset_ = 0;
};

}  // namespace strata::storage::record

#endif  // STRATA_STORAGE_RECORD_READER_H_
