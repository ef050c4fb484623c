// The LevelDB adapter of strata-dbbench (comparison only: built with
// -DSTRATA_BENCH_COMPARE=ON when Debian's libleveldb-dev is installed).

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "bench/dbbench/bench_engine.h"
#include "leveldb/cache.h"
#include "leveldb/db.h"
#include "leveldb/filter_policy.h"
#include "leveldb/options.h"
#include "leveldb/write_batch.h"

namespace strata::bench {
namespace {

leveldb::Slice ToSlice(std::string_view s) {
  return leveldb::Slice(s.data(), s.size());
}
std::string_view ToView(const leveldb::Slice& s) {
  return std::string_view(s.data(), s.size());
}
absl::Status ToStatus(const leveldb::Status& s) {
  if (s.ok()) return absl::OkStatus();
  if (s.IsNotFound()) return absl::NotFoundError(s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(s.ToString());
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(s.ToString());
  return absl::UnavailableError(s.ToString());
}

class LevelDBIterator final : public BenchIterator {
 public:
  explicit LevelDBIterator(leveldb::Iterator* it) : it_(it) {}
  void Seek(std::string_view target) override { it_->Seek(ToSlice(target)); }
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  std::string_view key() const override { return ToView(it_->key()); }
  std::string_view value() const override { return ToView(it_->value()); }
  absl::Status status() const override { return ToStatus(it_->status()); }

 private:
  std::unique_ptr<leveldb::Iterator> it_;
};

class LevelDBEngine final : public BenchEngine {
 public:
  LevelDBEngine(std::unique_ptr<leveldb::Cache> cache,
                std::unique_ptr<const leveldb::FilterPolicy> filter,
                leveldb::DB* db)
      : cache_(std::move(cache)), filter_(std::move(filter)), db_(db) {}
  // The DB goes first: it uses the cache and the filter policy.
  ~LevelDBEngine() override { db_.reset(); }

  absl::Status Put(std::string_view key, std::string_view value,
                   bool sync) override {
    leveldb::WriteOptions options;
    options.sync = sync;
    return ToStatus(db_->Put(options, ToSlice(key), ToSlice(value)));
  }
  absl::Status Delete(std::string_view key, bool sync) override {
    leveldb::WriteOptions options;
    options.sync = sync;
    return ToStatus(db_->Delete(options, ToSlice(key)));
  }
  absl::Status Get(std::string_view key, std::string* value,
                   bool* found) override {
    const leveldb::Status s =
        db_->Get(leveldb::ReadOptions(), ToSlice(key), value);
    *found = s.ok();
    if (s.IsNotFound()) return absl::OkStatus();
    return ToStatus(s);
  }
  std::unique_ptr<BenchIterator> NewIterator() override {
    return std::make_unique<LevelDBIterator>(
        db_->NewIterator(leveldb::ReadOptions()));
  }
  std::string StatsReport() override {
    std::string stats;
    db_->GetProperty("leveldb.stats", &stats);
    return "leveldb:\n" + stats;
  }

 private:
  std::unique_ptr<leveldb::Cache> cache_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  std::unique_ptr<leveldb::DB> db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BenchEngine>> OpenLevelDB(
    const EngineSettings& settings, const std::string& dir) {
  std::unique_ptr<leveldb::Cache> cache(
      leveldb::NewLRUCache(settings.block_cache_bytes));
  std::unique_ptr<const leveldb::FilterPolicy> filter(
      settings.bloom_bits_per_key > 0
          ? leveldb::NewBloomFilterPolicy(settings.bloom_bits_per_key)
          : nullptr);
  leveldb::Options options;
  options.create_if_missing = true;
  options.write_buffer_size = settings.write_buffer_bytes;
  options.block_cache = cache.get();
  options.block_size = settings.block_size;
  options.filter_policy = filter.get();
  options.max_open_files = settings.max_open_files;
  options.compression = leveldb::kNoCompression;
  leveldb::DB* db = nullptr;
  const leveldb::Status s = leveldb::DB::Open(options, dir, &db);
  if (!s.ok()) return ToStatus(s);
  return std::unique_ptr<BenchEngine>(std::make_unique<LevelDBEngine>(
      std::move(cache), std::move(filter), db));
}

std::string LevelDBVersion() {
  return absl::StrFormat("leveldb %d.%d", leveldb::kMajorVersion,
                         leveldb::kMinorVersion);
}

}  // namespace strata::bench
