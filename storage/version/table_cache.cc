#include "version/table_cache.h"

#include "strata/storage/db.h"
#include "util/coding.h"
#include "util/filename.h"
#include "util/status_macros.h"

namespace strata::storage {
namespace {

void DeleteTable(std::string_view, void* value) {
  delete static_cast<Table*>(value);
}

std::string CacheKey(uint64_t number) {
  std::string key;
  PutFixed64(&key, number);
  return key;
}

}  // namespace

TableCache::TableCache(std::string dbname, Env* env,
                       const TableOptions& table_options, int max_open_files)
    : dbname_(std::move(dbname)),
      env_(env),
      table_options_(table_options),
      // One shard: the capacity is a small count of tables, and sharding
      // would split it into uselessly small pieces.
      cache_(NewLRUCache(static_cast<size_t>(max_open_files > 10
                                                 ? max_open_files - 10
                                                 : 1),
                         0)) {}

TableCache::~TableCache() = default;

absl::StatusOr<Cache::Handle*> TableCache::FindTable(uint64_t number,
                                                     uint64_t file_size,
                                                     bool cache_only) {
  std::string key = CacheKey(number);
  if (Cache::Handle* h = cache_->Lookup(key)) {
    counters_.hits.Add();
    return h;
  }
  counters_.misses.Add();
  if (cache_only) return WouldBlockError();
  std::string fname = TableFileName(dbname_, number);
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file,
                   env_->NewRandomAccessFile(fname));
  ASSIGN_OR_RETURN(std::unique_ptr<Table> table,
                   Table::Open(table_options_, fname, std::move(file),
                               file_size));
  return cache_->Insert(key, table.release(), 1, &DeleteTable);
}

Iterator* TableCache::NewIterator(const ReadOptions& options, uint64_t number,
                                  uint64_t file_size) {
  auto handle = FindTable(number, file_size, /*cache_only=*/false);
  if (!handle.ok()) return NewErrorIterator(handle.status());
  Cache::Handle* h = *handle;
  auto* table = static_cast<Table*>(cache_->Value(h));
  Iterator* it = table->NewIterator(options);
  Cache* cache = cache_.get();
  it->RegisterCleanup([cache, h] { cache->Release(h); });
  return it;
}

absl::Status TableCache::Get(
    const ReadOptions& options, uint64_t number, uint64_t file_size,
    std::string_view internal_key,
    absl::FunctionRef<void(std::string_view, std::string_view)> found) {
  ASSIGN_OR_RETURN(Cache::Handle * h,
                   FindTable(number, file_size, options.cache_only));
  auto* table = static_cast<Table*>(cache_->Value(h));
  absl::Status s = table->InternalGet(options, internal_key, found);
  cache_->Release(h);
  return s;
}

void TableCache::Evict(uint64_t number) { cache_->Erase(CacheKey(number)); }

}  // namespace strata::storage
