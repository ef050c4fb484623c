#ifndef STRATA_STORAGE_TABLE_TABLE_H_
#define STRATA_STORAGE_TABLE_TABLE_H_

// Reading an SSTable written by TableBuilder (format in table/format.h and
// docs/sstable-format.md).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache/lru_cache.h"
#include "strata/storage/env.h"
#include "strata/storage/iterator.h"
#include "strata/storage/options.h"
#include "strata/storage/statistics.h"
#include "table/block.h"
#include "table/bloom.h"
#include "table/format.h"
#include "table/table_properties.h"
#include "util/comparator.h"
#include "util/counters.h"

namespace strata::storage {

// Bloom filter statistics, bumped by Table::InternalGet of every table that
// shares them (through TableOptions).
struct FilterCounters {
  Counter checks;     // The filter was consulted.
  Counter negatives;  // It ruled the key out.

  Statistics::Filter Snapshot() const {
    return {.checks = checks.Load(), .negatives = negatives.Load()};
  }
};

struct TableOptions {
  // The order the table was built with. Not owned; must outlive the table.
  const Comparator* comparator = nullptr;
  // When set, data blocks are cached here (subject to ReadOptions) and the
  // index and filter blocks are inserted at Open and pinned for the table's
  // life (see Table). Not owned; must outlive the table.
  Cache* block_cache = nullptr;
  // Bumped by InternalGet. Not owned; may be nullptr.
  FilterCounters* filter_counters = nullptr;
  // Keys are internal keys; the filter holds their user keys. Must match
  // TableBuilderOptions::keys_are_internal.
  bool keys_are_internal = true;
};

// An open, immutable SSTable.
//
// Memory: the index and filter blocks are read at Open and held for the
// table's whole life (a point lookup needs both, so evicting them would
// only cost re-reads). With a block cache they are also inserted into it
// and stay pinned there, so the cache's TotalCharge() accounts for them;
// they are erased from the cache when the table is destroyed. A table
// therefore holds index_bytes + filter_bytes (see properties()) beyond the
// cache's data blocks, and the cache may exceed its capacity by that pinned
// amount over all open tables. Without a cache, data blocks are read per
// access and freed when no longer used.
//
// Memory-mapped files (RandomAccessFile::Mapping non-empty, from
// Env::NewMappedRandomAccessFile): an uncompressed data block is read in
// place from the mapping, with no copy, no heap buffer and no block cache
// entry (the kernel's page cache holds it, and its pages count in the
// process's RSS as file-backed, reclaimable memory while mapped); its
// checksum is verified per ReadOptions::verify_checksums on every read,
// since a page evicted from the page cache is read from disk again.
// Compressed blocks are decompressed from the mapping into the block cache
// as with pread. The index, filter and properties blocks are copied at
// Open as for any file. Open rejects (DataLoss) a mapped file whose size
// is not file_size, so no block is ever read past the end of the mapping;
// a file truncated by another process after Open raises SIGBUS on the next
// read of a page past its new end (see RandomAccessFile::Mapping).
//
// Thread safety: all methods are safe for concurrent use.
class Table {
 public:
  // Reads and verifies the footer, the index block, the filter block and
  // the properties. Returns DataLoss naming the file and the offset of the
  // bad structure on corruption or truncation, FailedPrecondition for a
  // table of an unknown format version, InvalidArgument if options lack a
  // comparator, or the file's I/O error.
  static absl::StatusOr<std::unique_ptr<Table>> Open(
      const TableOptions& options, std::string filename,
      std::unique_ptr<RandomAccessFile> file, uint64_t file_size);

  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;
  ~Table();

  // Returns an iterator over every entry (the caller owns it). It reads
  // data blocks as it moves (through the cache, per options) and keeps the
  // current block pinned. A corrupt block stops it with a DataLoss status;
  // with options.cache_only a block not in the cache stops it with
  // WouldBlockError(). REQUIRES: the table outlives the iterator.
  Iterator* NewIterator(const ReadOptions& options) const;

  // Point lookup. If the filter says the user key of internal_key (or the
  // key itself when keys are not internal) may be present, seeks to the
  // first entry >= internal_key and calls found(key, value) with it, if
  // there is one; key and value are valid only during the call. Returns OK
  // whether or not found was called; DataLoss on corruption;
  // WouldBlockError() when options.cache_only and the data block
  // is not cached (for a mapped file: its pages are not resident; no I/O
  // is done); InvalidArgument for an internal key
  // shorter than 8 bytes. Bumps filter_counters->checks, and ->negatives
  // when the filter rules the key out.
  //
  // With internal keys, an entry with the same user key is always in the
  // block the index points to, so when the seek runs off that block's end
  // found is not called (the next entry has another user key).
  absl::Status InternalGet(
      const ReadOptions& options, std::string_view internal_key,
      absl::FunctionRef<void(std::string_view key, std::string_view value)>
          found) const;

  // The approximate file offset where key's entries begin (or would), for
  // size estimates: the offset of the data block that holds it, or the end
  // of the data blocks when key is past the last entry.
  uint64_t ApproximateOffsetOf(std::string_view key) const;

  const std::string& filename() const { return filename_; }
  uint64_t file_size() const { return file_size_; }
  const TableProperties& properties() const { return properties_; }
  bool has_filter() const { return filter_ != nullptr; }

 private:
  struct FilterBlock;
  struct PinnedBlock;
  class PinnedBlockIter;

  Table(const TableOptions& options, std::string filename,
        std::unique_ptr<RandomAccessFile> file, uint64_t file_size);
  absl::Status ReadMetaBlocks(const Footer& footer);

  // Finds the data block at handle in the cache or reads it.
  absl::Status GetBlock(const ReadOptions& options, const BlockHandle& handle,
                        PinnedBlock* out) const;
  // BlockFunction for the two-level iterator; arg is the Table.
  static Iterator* BlockReader(void* arg, const ReadOptions& options,
                               std::string_view index_value);
  absl::Status BadIndexEntry() const;

  const TableOptions options_;
  const std::string filename_;
  const std::unique_ptr<RandomAccessFile> file_;
  const uint64_t file_size_;
  // The whole file if it is memory-mapped (RandomAccessFile::Mapping), else
  // empty.
  const std::string_view mapped_;
  Cache* const cache_;
  uint64_t cache_id_ = 0;      // Prefix of this table's cache keys.
  uint64_t index_offset_ = 0;
  uint64_t data_end_ = 0;      // Offset past the last data block.
  TableProperties properties_;
  // Held for the table's life (owned, or pinned in cache_).
  const Block* index_block_ = nullptr;
  std::unique_ptr<Block> owned_index_;
  CacheHandle index_pin_;
  const FilterBlock* filter_ = nullptr;
  std::unique_ptr<FilterBlock> owned_filter_;
  CacheHandle filter_pin_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TABLE_TABLE_H_
