#ifndef STRATA_STORAGE_VERSION_TABLE_CACHE_H_
#define STRATA_STORAGE_VERSION_TABLE_CACHE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "cache/lru_cache.h"
#include "strata/storage/env.h"
#include "strata/storage/iterator.h"
#include "strata/storage/options.h"
#include "strata/storage/statistics.h"
#include "table/table.h"
#include "util/counters.h"

namespace strata::storage {

// Table cache statistics, bumped by every lookup.
struct TableCacheCounters {
  Counter hits;    // The table was open.
  Counter misses;  // The table had to be opened (or, cache_only, would be).

  Statistics::TableCache Snapshot() const {
    return {.hits = hits.Load(), .misses = misses.Load()};
  }
};

// Keeps up to `max_open_files` SSTables open (file descriptor or mapping,
// footer, index and filter), evicting the least recently used; tables in
// use by a reader stay open until released. Open tables are memory-mapped
// (Env::NewMappedRandomAccessFile; see Options::mmap_table_reads) while
// their files total at most `max_mapped_bytes`; a table that would exceed
// it is read with pread, and its bytes are freed when a mapped table is
// closed.
//
// Thread safety: safe for concurrent use.
class TableCache {
 public:
  // env and the block cache and filter counters of table_options are not
  // owned and must outlive this. max_mapped_bytes 0 maps no table.
  TableCache(std::string dbname, Env* env, const TableOptions& table_options,
             int max_open_files, uint64_t max_mapped_bytes = 0);
  ~TableCache();

  // An iterator over table `number` (of file_size bytes). The table stays
  // open while the iterator lives. Errors (missing file: Unavailable/NotFound;
  // corrupt footer or index: DataLoss) come back as an error iterator.
  Iterator* NewIterator(const ReadOptions& options, uint64_t number,
                        uint64_t file_size);

  // Point lookup through Table::InternalGet. Returns the open or I/O error;
  // with options.cache_only returns WouldBlockError() when the
  // table is not open or a block is not cached.
  absl::Status Get(const ReadOptions& options, uint64_t number,
                   uint64_t file_size, std::string_view internal_key,
                   absl::FunctionRef<void(std::string_view, std::string_view)>
                       found);

  // Drops table `number` (called when its file is deleted).
  void Evict(uint64_t number);

  const TableCacheCounters& counters() const { return counters_; }
  // Bytes of the open tables read through a memory mapping now.
  uint64_t mapped_bytes() const { return mapped_bytes_.load(); }

 private:
  // Opens table file fname of file_size bytes: mapped if that fits under
  // max_mapped_bytes, else read with pread.
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> OpenFile(
      const std::string& fname, uint64_t file_size);
  absl::StatusOr<Cache::Handle*> FindTable(uint64_t number, uint64_t file_size,
                                           bool cache_only);

  const std::string dbname_;
  Env* const env_;
  const TableOptions table_options_;
  TableCacheCounters counters_;
  const uint64_t max_mapped_bytes_;
  // Bytes of the mapped tables open (reserved before mapping, returned when
  // the table's file is closed). Declared before cache_ so it outlives the
  // tables cache_ deletes.
  std::atomic<uint64_t> mapped_bytes_{0};
  std::unique_ptr<Cache> cache_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_VERSION_TABLE_CACHE_H_
