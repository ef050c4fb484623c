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

// A mapped table file holding one of the table cache's mapping slots,
// returned when the file is closed.
class MappingSlotFile final : public RandomAccessFile {
 public:
  MappingSlotFile(std::unique_ptr<RandomAccessFile> file,
                  std::atomic<int>* slots)
      : file_(std::move(file)), slots_(slots) {}
  ~MappingSlotFile() override { slots_->fetch_sub(1); }

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
  std::atomic<int>* const slots_;
};

std::string CacheKey(uint64_t number) {
  std::string key;
  PutFixed64(&key, number);
  return key;
}

}  // namespace

TableCache::TableCache(std::string dbname, Env* env,
                       const TableOptions& table_options, int max_open_files,
                       int max_mapped_tables)
    : dbname_(std::move(dbname)),
      env_(env),
      table_options_(table_options),
      max_mapped_tables_(max_mapped_tables),
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
  ASSIGN_OR_RETURN(std::unique_ptr<RandomAccessFile> file, OpenFile(fname));
  ASSIGN_OR_RETURN(std::unique_ptr<Table> table,
                   Table::Open(table_options_, fname, std::move(file),
                               file_size));
  return cache_->Insert(key, table.release(), 1, &DeleteTable);
}

absl::StatusOr<std::unique_ptr<RandomAccessFile>> TableCache::OpenFile(
    const std::string& fname) {
  // Take a mapping slot first, so concurrent opens never exceed the cap.
  if (max_mapped_tables_ > 0 &&
      mapped_tables_.fetch_add(1) < max_mapped_tables_) {
    auto file = env_->NewMappedRandomAccessFile(fname);
    if (file.ok() && !(*file)->Mapping().empty()) {
      return std::make_unique<MappingSlotFile>(std::move(file).value(),
                                               &mapped_tables_);
    }
    mapped_tables_.fetch_sub(1);
    return file;  // An error, or a file the Env read with pread.
  }
  if (max_mapped_tables_ > 0) mapped_tables_.fetch_sub(1);
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
