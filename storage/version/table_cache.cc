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

// A mapped table file holding `bytes` of the table cache's mapping budget,
// returned when the file is closed.
class MappedTableFile final : public RandomAccessFile {
 public:
  MappedTableFile(std::unique_ptr<RandomAccessFile> file, uint64_t bytes,
                  std::atomic<uint64_t>* budget_used)
      : file_(std::move(file)), bytes_(bytes), budget_used_(budget_used) {}
  ~MappedTableFile() override { budget_used_->fetch_sub(bytes_); }

  absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n,
                                        char* scratch) const override {
    return file_->Read(offset, n, scratch);
  }
  std::string_view Mapping() const override { return file_->Mapping(); }
  bool InMemory(uint64_t offset, size_t n) const override {
    return file_->InMemory(offset, n);
  }

 private:
  const std::unique_ptr<RandomAccessFile> file_;
  const uint64_t bytes_;
  std::atomic<uint64_t>* const budget_used_;
};

std::string CacheKey(uint64_t number) {
  std::string key;
  PutFixed64(&key, number);
  return key;
}

}  // namespace

TableCache::TableCache(std::string dbname, Env* env,
                       const TableOptions& table_options, int max_open_files,
                       uint64_t max_mapped_bytes)
    : dbname_(std::move(dbname)),
      env_(env),
      table_options_(table_options),
      max_mapped_bytes_(max_mapped_bytes),
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
                   OpenFile(fname, file_size));
  ASSIGN_OR_RETURN(std::unique_ptr<Table> table,
                   Table::Open(table_options_, fname, std::move(file),
                               file_size));
  return cache_->Insert(key, table.release(), 1, &DeleteTable);
}

absl::StatusOr<std::unique_ptr<RandomAccessFile>> TableCache::OpenFile(
    const std::string& fname, uint64_t file_size) {
  // Reserve the bytes first, so concurrent opens never exceed the budget.
  if (file_size > 0 && file_size <= max_mapped_bytes_ &&
      mapped_bytes_.fetch_add(file_size) <= max_mapped_bytes_ - file_size) {
    auto file = env_->NewMappedRandomAccessFile(fname);
    if (file.ok() && !(*file)->Mapping().empty()) {
      return std::make_unique<MappedTableFile>(std::move(file).value(),
                                               file_size, &mapped_bytes_);
    }
    mapped_bytes_.fetch_sub(file_size);
    return file;  // An error, or a file the Env reads with pread.
  }
  if (file_size > 0 && file_size <= max_mapped_bytes_) {
    mapped_bytes_.fetch_sub(file_size);
  }
  return env_->NewRandomAccessFile(fname);
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
