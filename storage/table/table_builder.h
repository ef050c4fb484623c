#ifndef STRATA_STORAGE_TABLE_TABLE_BUILDER_H_
#define STRATA_STORAGE_TABLE_TABLE_BUILDER_H_

// Writes an SSTable (format in table/format.h and docs/sstable-format.md)
// from keys added in sorted order.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "strata/storage/env.h"
#include "strata/storage/options.h"
#include "table/block_builder.h"
#include "table/bloom.h"
#include "table/format.h"
#include "table/table_properties.h"
#include "util/comparator.h"

namespace strata::storage {

struct TableBuilderOptions {
  // Orders the keys added (an InternalKeyComparator in the engine). Not
  // owned; must outlive the builder. Must not be nullptr.
  const Comparator* comparator = nullptr;
  // Uncompressed size in bytes at which a data block is closed. Larger
  // blocks compress better and make the index smaller; smaller blocks make
  // point reads read (and cache) less.
  size_t block_size = 4096;
  // Keys between restart points in data blocks: larger saves space through
  // prefix compression, smaller makes seeks within a block faster.
  int block_restart_interval = 16;
  // Bloom filter bits per distinct user key (10: ~1% false positives);
  // 0 writes no filter.
  int bloom_bits_per_key = 10;
  // Compression for data blocks. A block that does not shrink by at least
  // 1/8 is stored uncompressed. Index, filter and properties blocks are
  // never compressed.
  CompressionType compression = CompressionType::kLZ4;
  // When true, keys are internal keys (util/dbformat.h) and the filter is
  // built over their user keys; every key must then be >= 8 bytes.
  bool keys_are_internal = true;
};

// Builds one table into a file. Not thread-safe: one thread drives a
// builder. The first I/O error is sticky: later calls return it.
class TableBuilder {
 public:
  // `file` is not owned and must outlive the builder; the table is written
  // from the file's current position, which must be its start.
  TableBuilder(const TableBuilderOptions& options, WritableFile* file);
  TableBuilder(const TableBuilder&) = delete;
  TableBuilder& operator=(const TableBuilder&) = delete;
  ~TableBuilder();

  // Appends an entry. Returns InvalidArgument (and adds nothing) if key is
  // not strictly greater than the previous key by the comparator, or if
  // keys are internal and key is shorter than 8 bytes; FailedPrecondition
  // after Finish or Abandon; the file's error on I/O failure.
  absl::Status Add(std::string_view key, std::string_view value);

  // Writes the last data block, the filter, the index, the properties and
  // the footer. Does not Sync or Close the file. Returns the first error.
  absl::Status Finish();

  // Gives up on the table: nothing more is written (the caller deletes the
  // file).
  void Abandon();

  // The first I/O error, or OK.
  absl::Status status() const { return status_; }
  // Entries added so far.
  uint64_t NumEntries() const { return props_.num_entries; }
  // Bytes handed to the file so far (the final file size after Finish).
  uint64_t FileSize() const { return offset_; }
  // What Finish wrote (complete after Finish returns OK).
  const TableProperties& properties() const { return props_; }

 private:
  // Writes the buffered data block, if any, and remembers its handle for
  // the index entry added with the next key (or in Finish).
  void FlushDataBlock();
  // Writes contents and its trailer; sets *handle.
  void WriteRawBlock(std::string_view contents, CompressionType type,
                     BlockHandle* handle);
  // Adds the pending block's index entry; next_key is the first key of the
  // following block unless `last`.
  void AddIndexEntry(std::string_view next_key, bool last);

  const TableBuilderOptions options_;
  WritableFile* const file_;
  absl::Status status_;
  uint64_t offset_ = 0;
  bool closed_ = false;

  BlockBuilder data_block_;
  BlockBuilder index_block_;
  std::unique_ptr<BloomFilterBuilder> filter_;
  std::string last_key_;
  // Set after a data block is written, until its index entry is added:
  // the separator needs the first key of the next block.
  bool pending_index_entry_ = false;
  BlockHandle pending_handle_;
  std::string compressed_;     // Reused compression output.
  std::string handle_encoding_;
  TableProperties props_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TABLE_TABLE_BUILDER_H_
