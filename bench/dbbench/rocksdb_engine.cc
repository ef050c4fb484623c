// The RocksDB adapter of strata-dbbench (comparison only: built with
// -DSTRATA_BENCH_COMPARE=ON when Debian's librocksdb-dev is installed).

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "bench/dbbench/bench_engine.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/version.h"

namespace strata::bench {
namespace {

rocksdb::Slice ToSlice(std::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
}
std::string_view ToView(const rocksdb::Slice& s) {
  return std::string_view(s.data(), s.size());
}
absl::Status ToStatus(const rocksdb::Status& s) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound()) return absl::NotFoundError(s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(s.ToString());
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(s.ToString());
  return absl::UnavailableError(s.ToString());
}

class RocksDBIterator final : public BenchIterator {
 public:
  explicit RocksDBIterator(rocksdb::Iterator* it) : it_(it) {}
  void Seek(std::string_view target) override { it_->Seek(ToSlice(target)); }
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  std::string_view key() const override { return ToView(it_->key()); }
  std::string_view value() const override { return ToView(it_->value()); }
  absl::Status status() const override { return ToStatus(it_->status()); }

 private:
  std::unique_ptr<rocksdb::Iterator> it_;
};

class RocksDBEngine final : public BenchEngine {
 public:
  explicit RocksDBEngine(rocksdb::DB* db) : db_(db) {}

  absl::Status Put(std::string_view key, std::string_view value,
                   bool sync) override {
    rocksdb::WriteOptions options;
    options.sync = sync;
    return ToStatus(db_->Put(options, ToSlice(key), ToSlice(value)));
  }
  absl::Status Delete(std::string_view key, bool sync) override {
    rocksdb::WriteOptions options;
    options.sync = sync;
    return ToStatus(db_->Delete(options, ToSlice(key)));
  }
  absl::Status Get(std::string_view key, std::string* value,
                   bool* found) override {
    const rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), ToSlice(key), value);
    *found = s.ok();
    if (s.IsNotFound()) return absl::OkStatus();
    return ToStatus(s);
  }
  std::unique_ptr<BenchIterator> NewIterator() override {
    return std::make_unique<RocksDBIterator>(
        db_->NewIterator(rocksdb::ReadOptions()));
  }
  std::string StatsReport() override {
    std::string stall;
    db_->GetProperty("rocksdb.cfstats-no-file-histogram", &stall);
    return "rocksdb:\n" + stall;
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BenchEngine>> OpenRocksDB(
    const EngineSettings& settings, const std::string& dir) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(settings.block_cache_bytes);
  table.block_size = settings.block_size;
  if (settings.bloom_bits_per_key > 0) {
    table.filter_policy.reset(
        rocksdb::NewBloomFilterPolicy(settings.bloom_bits_per_key, false));
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  options.write_buffer_size = settings.write_buffer_bytes;
  options.max_open_files = settings.max_open_files;
  options.compression = rocksdb::kNoCompression;
  options.bottommost_compression = rocksdb::kNoCompression;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
  if (!s.ok()) return ToStatus(s);
  return std::unique_ptr<BenchEngine>(std::make_unique<RocksDBEngine>(db));
}

std::string RocksDBVersion() {
  return absl::StrFormat("rocksdb %d.%d.%d", ROCKSDB_MAJOR, ROCKSDB_MINOR,
                         ROCKSDB_PATCH);
}

}  // namespace strata::bench
