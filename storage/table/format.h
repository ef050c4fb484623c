#ifndef STRATA_STORAGE_TABLE_FORMAT_H_
#define STRATA_STORAGE_TABLE_FORMAT_H_

// The physical layout of an SSTable: block handles, the footer, the block
// trailer and compression. Part of the on-disk format; see
// docs/sstable-format.md for the byte diagram and a worked example.
//
//   sstable      := data_block* filter_block? index_block properties_block
//                   footer
//   block        := contents trailer
//   trailer      := type:uint8 checksum:fixed32      (kBlockTrailerSize)
//   checksum     := Checksum32(contents | type, kBlockChecksumSeed)
//   contents     := raw block                         if type == kNone
//                 | snappy(raw block)                 if type == kSnappy
//                 | varint32(raw size) lz4(raw block)  if type == kLZ4
//                 | varint32(raw size) zstd(raw block) if type == kZstd
//   block_handle := offset:varint64 size:varint64     (size excludes trailer)
//   footer       := filter_handle index_handle properties_handle
//                   zero padding to 60 bytes
//                   format_version:fixed32
//                   checksum:fixed32   (Checksum32 of the 64 bytes before it,
//                                       kFooterChecksumSeed)
//                   magic:fixed64      (kTableMagicNumber)

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "strata/storage/env.h"
#include "strata/storage/options.h"

namespace strata::storage {

// Part of the on-disk format: never change these values.
inline constexpr uint64_t kTableMagicNumber = 0x5453535441525453ull;  // "STRATSST"
inline constexpr uint32_t kTableFormatVersion = 1;
inline constexpr size_t kBlockTrailerSize = 5;
inline constexpr uint64_t kBlockChecksumSeed = 0x626c6f636bull;   // "block"
inline constexpr uint64_t kFooterChecksumSeed = 0x666f6f746572ull;  // "footer"

// A decompressed block never exceeds max(kMaxCompressionRatio * compressed
// size, kMinUncompressedLimit) bytes: readers reject larger claims (so a
// corrupt length never causes a huge allocation) and writers store blocks
// that would break the rule uncompressed.
inline constexpr uint64_t kMaxCompressionRatio = 1024;
inline constexpr uint64_t kMinUncompressedLimit = 8u << 20;
inline uint64_t MaxUncompressedSize(uint64_t compressed_size) {
  uint64_t by_ratio = compressed_size * kMaxCompressionRatio;
  return by_ratio > kMinUncompressedLimit ? by_ratio : kMinUncompressedLimit;
}

// The position of a block in the file: its offset and the size of its
// contents (not counting the 5-byte trailer).
class BlockHandle {
 public:
  // Two varint64s.
  static constexpr size_t kMaxEncodedLength = 20;

  BlockHandle() = default;
  BlockHandle(uint64_t offset, uint64_t size) : offset_(offset), size_(size) {}

  uint64_t offset() const { return offset_; }
  uint64_t size() const { return size_; }
  void set_offset(uint64_t offset) { offset_ = offset; }
  void set_size(uint64_t size) { size_ = size; }
  // Offset one past the block's trailer. REQUIRES: FitsBefore(some limit).
  uint64_t end() const { return offset_ + size_ + kBlockTrailerSize; }
  // True if the block and its trailer end at or before `limit` (checked
  // without overflow).
  bool FitsBefore(uint64_t limit) const;

  void EncodeTo(std::string* dst) const;
  // Parses a handle from the front of *input and consumes it. Returns false
  // on a truncated or overlong varint.
  bool DecodeFrom(std::string_view* input);

 private:
  uint64_t offset_ = 0;
  uint64_t size_ = 0;
};

// The fixed-size tail of every table. A filter handle of size 0 means the
// table has no filter.
struct Footer {
  static constexpr size_t kHandleAreaLength = 3 * BlockHandle::kMaxEncodedLength;
  // handles (60) + version (4) + checksum (4) + magic (8).
  static constexpr size_t kEncodedLength = kHandleAreaLength + 16;

  BlockHandle filter_handle;
  BlockHandle index_handle;
  BlockHandle properties_handle;
  uint32_t format_version = kTableFormatVersion;

  // Appends exactly kEncodedLength bytes.
  void EncodeTo(std::string* dst) const;
  // Parses the footer of `filename`, read at file offset `offset`. DataLoss
  // (naming file and offset) on a bad magic number, checksum, version or
  // handle.
  static absl::StatusOr<Footer> DecodeFrom(std::string_view input,
                                           const std::string& filename,
                                           uint64_t offset);
};

// The contents of one block, decompressed, in a buffer it owns, or (from
// ReadMappedBlock, buffer null) in a file's memory mapping. Move-only.
struct BlockContents {
  std::unique_ptr<char[]> buffer;
  std::string_view data;  // Points into buffer, or into a mapping.
};

// The DataLoss status for corruption in `filename` at byte `offset`:
// "<filename>: corrupt sstable at offset <offset>: <what>".
absl::Status TableCorruption(const std::string& filename, uint64_t offset,
                             std::string_view what);

// Reads the block at `handle` (contents and trailer) from `file`.
// Verifies the checksum when options.verify_checksums, then decompresses.
// Returns DataLoss naming filename and the block's offset on a bad
// checksum, an unknown compression type, a decompression failure or a short
// read (past end of file); an I/O error from the file as is.
// `file_size` bounds the allocation: a handle reaching past it is
// DataLoss without reading. Thread-safe if `file` is.
absl::StatusOr<BlockContents> ReadBlock(const RandomAccessFile* file,
                                        const std::string& filename,
                                        const ReadOptions& options,
                                        const BlockHandle& handle,
                                        uint64_t file_size);
// As above for callers that do not know the file size: a handle larger than
// 1 MiB is first checked to end inside the file with a one-byte read, so a
// garbage size never causes a huge allocation.
absl::StatusOr<BlockContents> ReadBlock(const RandomAccessFile* file,
                                        const std::string& filename,
                                        const ReadOptions& options,
                                        const BlockHandle& handle);

// ReadBlock for a table whose bytes are all in memory: `file` is the whole
// file (RandomAccessFile::Mapping of a memory-mapped SSTable). An
// uncompressed block is not copied: the result has no buffer and its data
// points into `file`, valid as long as `file` is. A compressed block is
// decompressed into a new buffer. Verifies the checksum when
// options.verify_checksums. Returns DataLoss naming filename and the
// block's offset on a handle reaching past the end of `file`, a bad
// checksum, an unknown compression type or a decompression failure; never
// reads outside `file`. Thread-safe.
absl::StatusOr<BlockContents> ReadMappedBlock(std::string_view file,
                                              const std::string& filename,
                                              const ReadOptions& options,
                                              const BlockHandle& handle);

// The trailer checksum of a block: Checksum32 over contents followed by the
// type byte. Equal to Checksum32(p, contents.size() + 1, kBlockChecksumSeed)
// when the type byte directly follows the contents in memory.
uint32_t BlockChecksum(std::string_view contents, CompressionType type);

// Compresses raw with `type` into *out (replacing its contents), in the
// block contents encoding above. Returns false if `type` is kNone or
// unknown or the library failed; *out is then unspecified.
// REQUIRES: raw.size() < 4 GiB.
bool CompressBlock(CompressionType type, std::string_view raw,
                   std::string* out);

// Decodes block contents of the given type into a new buffer. Returns
// DataLoss (naming filename and offset) if the data does not decompress,
// its size claim is above MaxUncompressedSize, or the type is unknown.
absl::StatusOr<BlockContents> UncompressBlock(uint8_t type,
                                              std::string_view contents,
                                              const std::string& filename,
                                              uint64_t offset);

// The name of a compression type ("none", "snappy", "lz4", "zstd") or
// "unknown(<n>)".
std::string CompressionTypeName(uint8_t type);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TABLE_FORMAT_H_
