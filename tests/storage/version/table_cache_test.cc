// The table cache's choice between memory-mapped and pread table files:
// mapped up to max_mapped_bytes, pread beyond it and on Envs that cannot
// map, the same answers either way, and a mapped table whose file is
// deleted keeps serving the iterators that hold it.

#include "version/table_cache.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "strata/storage/env.h"
#include "table/table_builder.h"
#include "tests/support/test_util.h"
#include "util/dbformat.h"
#include "util/filename.h"

namespace strata::storage {
namespace {

const InternalKeyComparator kIcmp(BytewiseComparator());

std::string UserKey(int table, int i) {
  return absl::StrFormat("t%02d-key-%06d", table, i);
}
std::string Value(int table, int i) {
  return absl::StrFormat("value-%d-%d-", table, i) + std::string(80, 'v');
}
std::string IKey(std::string_view user_key) {
  return std::string(InternalKey(user_key, 7, kTypeValue).Encode());
}

class TableCacheTest : public ::testing::TestWithParam<bool> {
 protected:
  static constexpr int kTables = 4;
  static constexpr int kKeys = 500;

  TableCacheTest() {
    if (GetParam()) {
      mem_ = NewMemEnv();
      env_ = mem_.get();
      dbname_ = "/db";
      EXPECT_OK(env_->CreateDir(dbname_));
    } else {
      tmp_ = std::make_unique<::strata::testing::TempDir>();
      env_ = Env::Default();
      dbname_ = tmp_->path();
    }
    for (int t = 1; t <= kTables; t++) sizes_.push_back(Build(t));
    block_cache_ = NewLRUCache(1 << 20);
    table_options_.comparator = &kIcmp;
    table_options_.block_cache = block_cache_.get();
  }

  bool mem_env() const { return GetParam(); }

  // Writes table `number` (uncompressed, so mapped reads are in place).
  uint64_t Build(int number) {
    auto file = env_->NewWritableFile(TableFileName(dbname_, number));
    EXPECT_OK(file);
    TableBuilderOptions o;
    o.comparator = &kIcmp;
    o.compression = CompressionType::kNone;
    TableBuilder builder(o, file->get());
    for (int i = 0; i < kKeys; i++) {
      EXPECT_OK(builder.Add(IKey(UserKey(number, i)), Value(number, i)));
    }
    EXPECT_OK(builder.Finish());
    EXPECT_OK((*file)->Close());
    return builder.FileSize();
  }

  // Get of key i of table `number` through the cache.
  std::string Get(TableCache* cache, int number, int i) {
    std::string value = "NOT_FOUND";
    const std::string key = UserKey(number, i);
    absl::Status s = cache->Get(
        ReadOptions(), number, sizes_[number - 1], IKey(key),
        [&](std::string_view k, std::string_view v) {
          if (ExtractUserKey(k) == key) value = std::string(v);
        });
    if (!s.ok()) return "ERROR: " + s.ToString();
    return value;
  }

  // Every entry of table `number`, by a full scan through `it`.
  void ExpectScan(Iterator* it, int number) {
    int i = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next(), i++) {
      ASSERT_LT(i, kKeys);
      ASSERT_EQ(ExtractUserKey(it->key()), UserKey(number, i));
      ASSERT_EQ(it->value(), Value(number, i));
    }
    ASSERT_OK(it->status());
    EXPECT_EQ(i, kKeys);
  }

  std::unique_ptr<Env> mem_;
  std::unique_ptr<::strata::testing::TempDir> tmp_;
  Env* env_ = nullptr;
  std::string dbname_;
  std::vector<uint64_t> sizes_;
  std::unique_ptr<Cache> block_cache_;
  TableOptions table_options_;
};

TEST_P(TableCacheTest, MapsUpToTheCapThenReadsWithPread) {
  // The tables are the same size: two fit under the cap, not three.
  for (uint64_t size : sizes_) ASSERT_EQ(size, sizes_[0]);
  const uint64_t size = sizes_[0];
  TableCache cache(dbname_, env_, table_options_, /*max_open_files=*/100,
                   /*max_mapped_bytes=*/2 * size + size / 2);
  for (int t = 1; t <= kTables; t++) {
    for (int i = 0; i < kKeys; i += 17) {
      ASSERT_EQ(Get(&cache, t, i), Value(t, i)) << t << " " << i;
    }
    EXPECT_EQ(Get(&cache, t, kKeys), "NOT_FOUND");
  }
  // Only the POSIX Env maps; the in-memory one reads everything with pread.
  const uint64_t mapped = mem_env() ? 0 : size;
  EXPECT_EQ(cache.mapped_bytes(), 2 * mapped);
  // Closing a mapped table frees its bytes for the next one opened.
  cache.Evict(1);
  cache.Evict(3);
  EXPECT_EQ(cache.mapped_bytes(), mapped);
  ASSERT_EQ(Get(&cache, 3, 5), Value(3, 5));
  EXPECT_EQ(cache.mapped_bytes(), 2 * mapped);
  for (int t = 1; t <= kTables; t++) cache.Evict(t);
  EXPECT_EQ(cache.mapped_bytes(), 0u);
}

TEST_P(TableCacheTest, CapOfZeroMapsNothing) {
  TableCache cache(dbname_, env_, table_options_, 100, 0);
  for (int t = 1; t <= kTables; t++) {
    std::unique_ptr<Iterator> it(
        cache.NewIterator(ReadOptions(), t, sizes_[t - 1]));
    ExpectScan(it.get(), t);
  }
  EXPECT_EQ(cache.mapped_bytes(), 0u);
}

// What DeleteObsoleteFiles does to a table a reader still holds: evict it
// and remove its file. The reader keeps the table (and its mapping, or
// descriptor) and reads every entry.
TEST_P(TableCacheTest, DeletedTableStaysReadableThroughAnOpenIterator) {
  TableCache cache(dbname_, env_, table_options_, 100, 1 << 30);
  std::unique_ptr<Iterator> it(cache.NewIterator(ReadOptions(), 2, sizes_[1]));
  it->Seek(IKey(UserKey(2, 100)));
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(cache.mapped_bytes(), mem_env() ? 0 : sizes_[1]);
  cache.Evict(2);
  ASSERT_OK(env_->RemoveFile(TableFileName(dbname_, 2)));
  ExpectScan(it.get(), 2);
  EXPECT_EQ(cache.mapped_bytes(), mem_env() ? 0 : sizes_[1]);
  it.reset();  // The last holder: the table closes, its bytes free.
  EXPECT_EQ(cache.mapped_bytes(), 0u);
  // The file is gone for new readers.
  EXPECT_TRUE(absl::StartsWith(Get(&cache, 2, 1), "ERROR"));
}

INSTANTIATE_TEST_SUITE_P(Envs, TableCacheTest, ::testing::Bool(),
                         [](const auto& info) {
                           return std::string(info.param ? "Mem" : "Posix");
                         });

}  // namespace
}  // namespace strata::storage
