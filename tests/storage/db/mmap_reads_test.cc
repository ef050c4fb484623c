// Memory-mapped table reads (Options::mmap_table_reads) seen through the
// DB: the same answers as pread for Get, Seek and scans in both directions,
// with and without compression and with the mapping cap reached; an
// iterator keeps reading its tables while compactions replace them.

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using Model = std::map<std::string, std::string>;

std::string Key(int i) { return absl::StrFormat("key-%06d", i); }

class MmapReadsTest : public ::testing::TestWithParam<CompressionType> {
 protected:
  // Small memtables and tables: a few thousand keys make a dozen tables
  // over several levels.
  Options BaseOptions() const {
    Options o;
    o.memtable_bytes = 64 << 10;
    o.target_file_size = 64 << 10;
    o.max_bytes_for_level_base = 256 << 10;
    o.block_cache_bytes = 256 << 10;
    o.compression = GetParam();
    return o;
  }

  void Open(const Options& options) {
    db_.reset();
    auto db = DB::Open(options, dir_.path());
    ASSERT_OK(db);
    db_ = std::move(db).value();
  }
  DBImpl* impl() { return static_cast<DBImpl*>(db_.get()); }

  // Puts, overwrites and deletes over 4000 keys, with flushes and a full
  // compaction in between, mirrored in model_.
  void Load() {
    Open(BaseOptions());
    std::mt19937 rnd(42);
    WriteOptions wo;
    wo.sync = false;
    for (int round = 0; round < 3; round++) {
      for (int n = 0; n < 3000; n++) {
        const int i = static_cast<int>(rnd() % 4000);
        if (rnd() % 8 == 0) {
          ASSERT_OK(db_->Delete(wo, Key(i)));
          model_.erase(Key(i));
        } else {
          // Half random, half repeated: LZ4 shrinks blocks by about half.
          std::string v = absl::StrFormat("v%d-%d-", round, n);
          for (int c = 0; c < 60; c++) v += static_cast<char>('a' + rnd() % 26);
          v += std::string(40 + rnd() % 40, 'z');
          ASSERT_OK(db_->Put(wo, Key(i), v));
          model_[Key(i)] = v;
        }
      }
      ASSERT_OK(db_->Flush());
      if (round == 1) ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
    }
  }

  // Every key (present or not), 300 seeks and full scans both ways agree
  // with model_.
  void ExpectMatchesModel() {
    for (int i = 0; i < 4000; i++) {
      auto got = db_->Get(ReadOptions(), Key(i));
      auto want = model_.find(Key(i));
      if (want == model_.end()) {
        ASSERT_TRUE(absl::IsNotFound(got.status())) << i << got.status();
      } else {
        ASSERT_OK(got);
        ASSERT_EQ(*got, want->second) << i;
      }
    }
    std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions());
    auto m = model_.begin();
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++m) {
      ASSERT_NE(m, model_.end());
      ASSERT_EQ(it->key(), m->first);
      ASSERT_EQ(it->value(), m->second);
    }
    ASSERT_OK(it->status());
    ASSERT_EQ(m, model_.end());
    auto r = model_.rbegin();
    for (it->SeekToLast(); it->Valid(); it->Prev(), ++r) {
      ASSERT_NE(r, model_.rend());
      ASSERT_EQ(it->key(), r->first);
    }
    ASSERT_OK(it->status());
    ASSERT_EQ(r, model_.rend());
    std::mt19937 rnd(7);
    for (int n = 0; n < 300; n++) {
      const std::string target = absl::StrFormat("key-%06d", rnd() % 4100);
      it->Seek(target);
      auto want = model_.lower_bound(target);
      if (want == model_.end()) {
        ASSERT_FALSE(it->Valid()) << target;
        continue;
      }
      ASSERT_TRUE(it->Valid()) << target;
      ASSERT_EQ(it->key(), want->first);
      ASSERT_EQ(it->value(), want->second);
    }
  }

  ::strata::testing::TempDir dir_;
  std::unique_ptr<DB> db_;
  Model model_;
};

TEST_P(MmapReadsTest, MappedPreadAndCappedReadsGiveTheSameAnswers) {
  Load();
  // Several tables (of at most 64 KiB).
  const uint64_t live = impl()->GetStatistics().levels.live_sst_bytes;
  ASSERT_GT(live, 256u << 10);

  // Background compactions may still open and close tables: the mapped
  // bytes are checked against bounds, not exact figures.
  Options mapped = BaseOptions();  // The default: mapped.
  Open(mapped);
  ExpectMatchesModel();
  EXPECT_GT(impl()->TEST_MappedTableBytes(), live / 2);

  Options pread = BaseOptions();
  pread.mmap_table_reads = false;
  Open(pread);
  ExpectMatchesModel();
  EXPECT_EQ(impl()->TEST_MappedTableBytes(), 0u);

  Options capped = BaseOptions();
  capped.max_mapped_table_bytes = live / 3;  // The rest are read with pread.
  Open(capped);
  ExpectMatchesModel();
  EXPECT_GT(impl()->TEST_MappedTableBytes(), 0u);
  EXPECT_LE(impl()->TEST_MappedTableBytes(), live / 3);
}

// An iterator pins the tables it reads: while compactions replace them
// (and delete the files nobody else holds), it goes on reading its own.
TEST_P(MmapReadsTest, IteratorReadsItsTablesWhileCompactionsReplaceThem) {
  Load();
  Open(BaseOptions());
  const Model before = model_;
  std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions());
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  WriteOptions wo;
  wo.sync = false;
  for (int i = 0; i < 4000; i += 2) {
    ASSERT_OK(db_->Put(wo, Key(i), "new"));
  }
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  auto m = before.begin();
  for (; it->Valid(); it->Next(), ++m) {
    ASSERT_NE(m, before.end());
    ASSERT_EQ(it->key(), m->first);
    ASSERT_EQ(it->value(), m->second);
  }
  ASSERT_OK(it->status());
  EXPECT_EQ(m, before.end());
  it.reset();
  auto got = db_->Get(ReadOptions(), Key(0));
  ASSERT_OK(got);
  EXPECT_EQ(*got, "new");
}

INSTANTIATE_TEST_SUITE_P(Compression, MmapReadsTest,
                         ::testing::Values(CompressionType::kNone,
                                           CompressionType::kLZ4),
                         [](const auto& info) {
                           return std::string(
                               info.param == CompressionType::kNone ? "None"
                                                                    : "LZ4");
                         });

}  // namespace
}  // namespace strata::storage
