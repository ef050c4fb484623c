#ifndef STRATA_STORAGE_RECORD_FORMAT_H_
#define STRATA_STORAGE_RECORD_FORMAT_H_

// The record format, version 1: a file of checksummed records, written by
// record::Writer and read by record::Reader. It has two users, the
// write-ahead log (one WriteBatch per record) and the manifest (one
// VersionEdit per record); docs/wal-format.md has the byte diagrams, a
// worked example and the torn-tail rules. The magic says "WL" because the
// WAL was its first user; it is the same in manifests.
//
//   file        := file_header block*            (the header is in block 0)
//   file_header := "STRATAWL" | version: fixed32 (=1)
//                | checksum: fixed32 = Checksum32(magic | version, seed 0)
//   block       := fragment* trailer?            (32 KiB; the last may be short)
//   fragment    := checksum: fixed32 | length: fixed16 | type: u8
//                | payload[length]
//     checksum  = Checksum32(payload, seed = type)  (util/checksum.h)
//   trailer     := 0x00{0..6}   (a block never starts a fragment header in
//                                its last 6 bytes)
//   record      := FULL | FIRST MIDDLE* LAST      (payload = concatenation)
//
// Everything here is part of the on-disk format: never change or reuse a
// value.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace strata::storage::record {

// Fragment types. Part of the on-disk format: never change or reuse a value.
enum FragmentType : uint8_t {
  // Never written; what a zero-filled (torn) tail decodes to.
  kZeroType = 0,
  kFullType = 1,
  // Fragments of a record that does not fit in the rest of its block.
  kFirstType = 2,
  kMiddleType = 3,
  kLastType = 4,
};
inline constexpr uint8_t kMaxFragmentType = kLastType;

// Bytes per block. A fragment never crosses a block boundary.
inline constexpr size_t kBlockSize = 32768;

// Fragment header: checksum (4) + length (2) + type (1).
inline constexpr size_t kHeaderSize = 4 + 2 + 1;

// The file header at offset 0, before the first fragment of block 0.
inline constexpr std::string_view kFileMagic = "STRATAWL";
// Format versions. The container (blocks, fragments) is the same in
// both; the version says what the payloads mean: 1 = the manifest's
// version edits, and the WAL's user-form batches of databases before
// revisions (one sequence number per operation); 2 = the WAL's committed
// batches, one per revision (db/write_batch_internal.h).
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint32_t kWalFormatVersion = 2;
inline constexpr uint32_t kMaxFormatVersion = 2;
inline constexpr size_t kFileHeaderSize = 8 + 4 + 4;

// The 16 bytes every record file (WAL or manifest) of a format version starts with (the header has
// no variable fields, so it is a constant per version). REQUIRES: 1 <=
// version <= kMaxFormatVersion.
std::string_view FileHeader(uint32_t version = kFormatVersion);

}  // namespace strata::storage::record

#endif  // STRATA_STORAGE_RECORD_FORMAT_H_
