#include "table/table.h"

#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "table/table_builder.h"
#include "tests/storage/table/table_test_util.h"
#include "tests/support/test_util.h"
#include "util/coding.h"
#include "util/dbformat.h"

namespace strata::storage {
namespace {

using testing::StringSink;
using testing::StringSource;
using Entries = std::vector<std::pair<std::string, std::string>>;

const InternalKeyComparator kIcmp(BytewiseComparator());

std::string IKey(std::string_view user_key, SequenceNumber seq,
                 ValueType type = kTypeValue) {
  return std::string(InternalKey(user_key, seq, type).Encode());
}
std::string UserKey(int i) { return absl::StrFormat("user-key-%06d", i); }

// n internal keys (user keys 0, 2, 4, ... so odd ones are absent) with
// compressible values.
Entries MakeEntries(int n, size_t value_size = 100) {
  Entries e;
  for (int i = 0; i < n; i++) {
    std::string value = absl::StrFormat("value-%d-", i);
    while (value.size() < value_size) value += "abcdefgh";
    value.resize(value_size);
    e.emplace_back(IKey(UserKey(2 * i), 1000 + i), value);
  }
  return e;
}

TableBuilderOptions BuilderOptions(
    CompressionType compression = CompressionType::kLZ4) {
  TableBuilderOptions o;
  o.comparator = &kIcmp;
  o.block_size = 1024;
  o.compression = compression;
  return o;
}

std::string BuildTable(const TableBuilderOptions& options,
                       const Entries& entries) {
  StringSink sink;
  TableBuilder builder(options, &sink);
  for (const auto& [k, v] : entries) {
    EXPECT_OK(builder.Add(k, v));
  }
  EXPECT_OK(builder.Finish());
  EXPECT_EQ(builder.NumEntries(), entries.size());
  EXPECT_EQ(builder.FileSize(), sink.contents().size());
  return sink.contents();
}

// An open in-memory table; keeps a pointer to its source to count reads
// (and, mapped, to evict its pages).
struct OpenedTable {
  std::unique_ptr<Table> table;
  StringSource* source = nullptr;
};

// With `mapped`, the table reads its blocks in place from the source's
// Mapping(), as from a memory-mapped file.
absl::StatusOr<OpenedTable> OpenTable(const std::string& contents,
                                      TableOptions options = {},
                                      bool mapped = false) {
  if (options.comparator == nullptr) options.comparator = &kIcmp;
  auto source = std::make_unique<StringSource>(contents, mapped);
  OpenedTable t;
  t.source = source.get();
  auto table = Table::Open(options, "mem.sst", std::move(source),
                           contents.size());
  if (!table.ok()) return table.status();
  t.table = std::move(table).value();
  return t;
}

// Calls InternalGet; returns {found, key, value}.
struct GetResult {
  absl::Status status;
  bool found = false;
  std::string key, value;
};
GetResult Get(const Table& table, std::string_view ikey,
              const ReadOptions& ro = ReadOptions()) {
  GetResult r;
  r.status = table.InternalGet(ro, ikey, [&](std::string_view k,
                                             std::string_view v) {
    r.found = true;
    r.key = std::string(k);
    r.value = std::string(v);
  });
  return r;
}

void ExpectScanMatches(const Table& table, const Entries& entries,
                       const ReadOptions& ro = ReadOptions()) {
  std::unique_ptr<Iterator> it(table.NewIterator(ro));
  size_t i = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), i++) {
    ASSERT_LT(i, entries.size());
    ASSERT_EQ(it->key(), entries[i].first) << i;
    ASSERT_EQ(it->value(), entries[i].second) << i;
  }
  ASSERT_OK(it->status());
  ASSERT_EQ(i, entries.size());
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    ASSERT_GT(i, 0u);
    i--;
    ASSERT_EQ(it->key(), entries[i].first) << i;
  }
  ASSERT_OK(it->status());
  ASSERT_EQ(i, 0u);
}

// --- Round trips ---

// Every compression type, read with pread and (mapped) in place from a
// memory mapping: the same entries either way.
class TableRoundTripTest
    : public ::testing::TestWithParam<std::tuple<CompressionType, bool>> {
 protected:
  static CompressionType Compression() { return std::get<0>(GetParam()); }
  static bool Mapped() { return std::get<1>(GetParam()); }
};

TEST_P(TableRoundTripTest, ManyKeysAcrossManyBlocks) {
  const Entries entries = MakeEntries(3000);
  std::string contents = BuildTable(BuilderOptions(Compression()), entries);
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents, {}, Mapped()));
  const TableProperties& p = t.table->properties();
  EXPECT_EQ(p.num_entries, entries.size());
  EXPECT_GT(p.num_data_blocks, 100u);
  EXPECT_EQ(p.compression, static_cast<uint64_t>(Compression()));
  if (Compression() != CompressionType::kNone) {
    // Values are repetitive: compression must have kicked in.
    EXPECT_LT(p.data_bytes, (p.raw_key_bytes + p.raw_value_bytes) / 2);
  }
  ExpectScanMatches(*t.table, entries);
  std::unique_ptr<Iterator> it(t.table->NewIterator(ReadOptions()));
  for (size_t i = 0; i < entries.size(); i += 7) {
    it->Seek(entries[i].first);
    ASSERT_TRUE(it->Valid());
    EXPECT_EQ(it->key(), entries[i].first);
    GetResult r = Get(*t.table, entries[i].first);
    ASSERT_OK(r.status);
    ASSERT_TRUE(r.found);
    EXPECT_EQ(r.key, entries[i].first);
    EXPECT_EQ(r.value, entries[i].second);
  }
}

TEST_P(TableRoundTripTest, LargeValuesSpanOwnBlocks) {
  Entries entries;
  std::mt19937 rnd(5);
  for (int i = 0; i < 20; i++) {
    std::string v(100000 + i, 'x');
    for (size_t j = 0; j < v.size(); j += 97) v[j] = static_cast<char>(rnd());
    entries.emplace_back(IKey(UserKey(i), 5), v);
  }
  std::string contents = BuildTable(BuilderOptions(Compression()), entries);
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents, {}, Mapped()));
  ExpectScanMatches(*t.table, entries);
  GetResult r = Get(*t.table, entries[11].first);
  ASSERT_TRUE(r.found);
  EXPECT_EQ(r.value, entries[11].second);
}

INSTANTIATE_TEST_SUITE_P(
    AllCompressionTypes, TableRoundTripTest,
    ::testing::Combine(::testing::Values(CompressionType::kNone,
                                         CompressionType::kSnappy,
                                         CompressionType::kLZ4,
                                         CompressionType::kZstd),
                       ::testing::Bool()),
    [](const auto& info) {
      return CompressionTypeName(
                 static_cast<uint8_t>(std::get<0>(info.param))) +
             (std::get<1>(info.param) ? "_mapped" : "_pread");
    });

TEST(TableTest, EmptyTableHasNoEntries) {
  std::string contents = BuildTable(BuilderOptions(), {});
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents));
  std::unique_ptr<Iterator> it(t.table->NewIterator(ReadOptions()));
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  it->SeekToLast();
  EXPECT_FALSE(it->Valid());
  EXPECT_OK(it->status());
  GetResult r = Get(*t.table, IKey("a", 1));
  EXPECT_OK(r.status);
  EXPECT_FALSE(r.found);
  EXPECT_EQ(t.table->properties().num_entries, 0u);
}

TEST(TableTest, PlainKeysWithoutInternalFormat) {
  TableBuilderOptions o;
  o.comparator = BytewiseComparator();
  o.keys_are_internal = false;
  o.block_size = 256;
  Entries entries;
  for (int i = 0; i < 500; i++) entries.emplace_back(UserKey(i * 2), "v" + std::to_string(i));
  std::string contents = BuildTable(o, entries);
  TableOptions to;
  to.comparator = BytewiseComparator();
  to.keys_are_internal = false;
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents, to));
  ExpectScanMatches(*t.table, entries);
  for (int i = 0; i < 500; i++) {
    GetResult hit = Get(*t.table, UserKey(i * 2));
    ASSERT_TRUE(hit.found);
    EXPECT_EQ(hit.value, "v" + std::to_string(i));
  }
  // Keys between blocks: the first entry >= target is reported even when it
  // lives in the next block (plain keys have no user-key shortcut).
  int found_next = 0;
  for (int i = 0; i < 499; i++) {
    GetResult r = Get(*t.table, UserKey(i * 2) + "~");
    if (r.found) {
      EXPECT_EQ(r.key, UserKey(i * 2 + 2));
      found_next++;
    }
  }
  // The bloom filter skips most absent keys; some get through.
  EXPECT_LT(found_next, 50);
}

TEST(TableTest, FindsNewestVisibleVersionAcrossBlocks) {
  // 50 versions of one user key span several 256-byte blocks.
  Entries entries;
  for (int seq = 100; seq > 50; seq--) {
    entries.emplace_back(IKey("hot", seq), absl::StrFormat("v%d-padding-padding", seq));
  }
  entries.emplace_back(IKey("later", 7), "x");
  TableBuilderOptions o = BuilderOptions();
  o.block_size = 256;
  std::string contents = BuildTable(o, entries);
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents));
  EXPECT_GT(t.table->properties().num_data_blocks, 3u);
  for (int snapshot = 120; snapshot > 50; snapshot -= 3) {
    LookupKey lk("hot", snapshot);
    GetResult r = Get(*t.table, lk.internal_key());
    ASSERT_OK(r.status);
    ASSERT_TRUE(r.found);
    ParsedInternalKey parsed;
    ASSERT_TRUE(ParseInternalKey(r.key, &parsed));
    EXPECT_EQ(parsed.user_key, "hot");
    EXPECT_EQ(parsed.sequence, static_cast<SequenceNumber>(std::min(snapshot, 100)));
  }
  // Below the oldest version: the next entry belongs to another user key.
  GetResult r = Get(*t.table, LookupKey("hot", 10).internal_key());
  ASSERT_OK(r.status);
  if (r.found) {
    EXPECT_EQ(ExtractUserKey(r.key), "later");
  }
}

TEST(TableTest, AbsentKeysAreFilteredAndCounted) {
  const Entries entries = MakeEntries(2000);
  std::string contents = BuildTable(BuilderOptions(), entries);
  FilterCounters counters;
  TableOptions to;
  to.filter_counters = &counters;
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents, to));
  ASSERT_TRUE(t.table->has_filter());
  const int reads_after_open = t.source->reads();
  int wrong = 0;
  for (int i = 0; i < 2000; i++) {
    GetResult r = Get(*t.table, LookupKey(UserKey(2 * i + 1), 5000).internal_key());
    ASSERT_OK(r.status);
    if (r.found && ExtractUserKey(r.key) == UserKey(2 * i + 1)) wrong++;
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(counters.checks.Load(), 2000u);
  EXPECT_GE(counters.negatives.Load(), 2000u * 97 / 100);
  // Filtered lookups do no I/O.
  EXPECT_LE(t.source->reads() - reads_after_open,
            static_cast<int>(2000 - counters.negatives.Load()));
}

TEST(TableTest, NoFilterWhenBitsPerKeyIsZero) {
  TableBuilderOptions o = BuilderOptions();
  o.bloom_bits_per_key = 0;
  const Entries entries = MakeEntries(100);
  std::string contents = BuildTable(o, entries);
  FilterCounters counters;
  TableOptions to;
  to.filter_counters = &counters;
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents, to));
  EXPECT_FALSE(t.table->has_filter());
  EXPECT_EQ(t.table->properties().filter_bytes, 0u);
  GetResult r = Get(*t.table, entries[50].first);
  EXPECT_TRUE(r.found);
  EXPECT_EQ(counters.checks.Load(), 0u);
}

TEST(TableTest, ApproximateOffsetsIncreaseWithKeys) {
  const Entries entries = MakeEntries(2000);
  std::string contents = BuildTable(BuilderOptions(CompressionType::kNone), entries);
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents));
  EXPECT_EQ(t.table->ApproximateOffsetOf(entries[0].first), 0u);
  uint64_t prev = 0;
  for (size_t i = 0; i < entries.size(); i += 100) {
    uint64_t off = t.table->ApproximateOffsetOf(entries[i].first);
    EXPECT_GE(off, prev);
    prev = off;
  }
  uint64_t mid = t.table->ApproximateOffsetOf(entries[1000].first);
  uint64_t end = t.table->ApproximateOffsetOf(IKey("zzz", 1));
  EXPECT_NEAR(static_cast<double>(mid), end / 2.0, end * 0.1);
  EXPECT_EQ(end, t.table->properties().data_bytes);
}

TEST(TableBuilderTest, RejectsOutOfOrderAndShortKeys) {
  StringSink sink;
  TableBuilder builder(BuilderOptions(), &sink);
  ASSERT_OK(builder.Add(IKey("b", 5), "1"));
  EXPECT_EQ(builder.Add(IKey("a", 5), "2").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(builder.Add(IKey("b", 5), "2").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(builder.Add("short", "2").code(), absl::StatusCode::kInvalidArgument);
  ASSERT_OK(builder.Add(IKey("b", 4), "3"));  // Older version sorts after.
  EXPECT_EQ(builder.NumEntries(), 2u);
  ASSERT_OK(builder.Finish());
  EXPECT_EQ(builder.Add(IKey("c", 1), "x").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(builder.Finish().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(TableBuilderTest, IncompressibleBlocksAreStoredRaw) {
  Entries entries;
  std::mt19937 rnd(9);
  for (int i = 0; i < 200; i++) {
    std::string v(200, ' ');
    for (char& c : v) c = static_cast<char>(rnd());
    entries.emplace_back(IKey(UserKey(i), 1), v);
  }
  std::string contents = BuildTable(BuilderOptions(CompressionType::kZstd), entries);
  // The first data block starts at 0; find its trailer through the index.
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents));
  uint64_t second_block = t.table->ApproximateOffsetOf(entries[10].first);
  ASSERT_GT(second_block, 0u);
  EXPECT_EQ(contents[second_block - kBlockTrailerSize],
            static_cast<char>(CompressionType::kNone));
  ExpectScanMatches(*t.table, entries);
}

// A sink that fails every Append after the first `ok_appends`.
class FailingSink final : public WritableFile {
 public:
  explicit FailingSink(int ok_appends) : ok_appends_(ok_appends) {}
  absl::Status Append(std::string_view) override {
    if (ok_appends_-- > 0) return absl::OkStatus();
    return absl::UnavailableError("disk full");
  }
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::Status Sync() override { return absl::OkStatus(); }
  absl::Status Close() override { return absl::OkStatus(); }

 private:
  int ok_appends_;
};

TEST(TableBuilderTest, WriteErrorIsStickyAndReturnedByFinish) {
  FailingSink sink(3);
  TableBuilderOptions o = BuilderOptions();
  o.block_size = 64;
  TableBuilder builder(o, &sink);
  absl::Status first_error;
  const Entries entries = MakeEntries(100);
  for (const auto& [k, v] : entries) {
    absl::Status s = builder.Add(k, v);
    if (!s.ok()) {
      first_error = s;
      break;
    }
  }
  EXPECT_EQ(first_error.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(builder.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(builder.Add(IKey("zzz", 1), "v").code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(builder.Finish().code(), absl::StatusCode::kUnavailable);
}

TEST(TableBuilderTest, AbandonStopsFurtherWrites) {
  StringSink sink;
  TableBuilder builder(BuilderOptions(), &sink);
  ASSERT_OK(builder.Add(IKey("a", 1), "v"));
  builder.Abandon();
  EXPECT_EQ(builder.Add(IKey("b", 1), "v").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sink.contents().empty());  // Nothing was flushed yet.
}

// A file whose reads fail after the first `ok_reads`.
class FailingSource final : public RandomAccessFile {
 public:
  FailingSource(std::string contents, int ok_reads)
      : source_(std::move(contents)), ok_reads_(ok_reads) {}
  absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n,
                                        char* scratch) const override {
    if (ok_reads_.fetch_sub(1) <= 0) return absl::InternalError("EIO on read");
    return source_.Read(offset, n, scratch);
  }

 private:
  StringSource source_;
  mutable std::atomic<int> ok_reads_;
};

TEST(TableTest, ReadErrorsPassThroughUnchanged) {
  const Entries entries = MakeEntries(500);
  std::string contents = BuildTable(BuilderOptions(), entries);
  TableOptions to;
  to.comparator = &kIcmp;
  // Footer read fails.
  auto failed_open = Table::Open(
      to, "f.sst", std::make_unique<FailingSource>(contents, 0), contents.size());
  EXPECT_EQ(failed_open.status().code(), absl::StatusCode::kInternal);
  // Open reads footer, properties, index and filter; data reads then fail.
  ASSERT_OK_AND_ASSIGN(
      auto table, Table::Open(to, "f.sst",
                              std::make_unique<FailingSource>(contents, 4),
                              contents.size()));
  GetResult r = Get(*table, entries[10].first);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInternal);
  std::unique_ptr<Iterator> it(table->NewIterator(ReadOptions()));
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(it->status().code(), absl::StatusCode::kInternal);
}

// --- Block cache ---

class TableCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    entries_ = MakeEntries(2000);
    contents_ = BuildTable(BuilderOptions(), entries_);
    cache_ = NewLRUCache(1 << 20, 0);
  }
  absl::StatusOr<OpenedTable> Open() {
    TableOptions to;
    to.block_cache = cache_.get();
    return OpenTable(contents_, to);
  }
  Entries entries_;
  std::string contents_;
  std::unique_ptr<Cache> cache_;
};

TEST_F(TableCacheTest, IndexAndFilterArePinnedWhileTableIsOpen) {
  {
    ASSERT_OK_AND_ASSIGN(OpenedTable t, Open());
    const TableProperties& p = t.table->properties();
    size_t charged = cache_->TotalCharge();
    EXPECT_GE(charged, p.index_bytes + p.filter_bytes - 2 * kBlockTrailerSize);
    EXPECT_LE(charged, p.index_bytes + p.filter_bytes + 1024);
  }
  EXPECT_EQ(cache_->TotalCharge(), 0u);
}

TEST_F(TableCacheTest, CacheOnlyGetIsUnavailableOnColdCacheAndHitsWhenWarm) {
  ASSERT_OK_AND_ASSIGN(OpenedTable t, Open());
  ReadOptions cache_only;
  cache_only.cache_only = true;
  const int reads = t.source->reads();
  GetResult cold = Get(*t.table, entries_[123].first, cache_only);
  EXPECT_EQ(cold.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(cold.status.message(), "would block");
  EXPECT_TRUE(IsWouldBlock(cold.status));
  EXPECT_FALSE(cold.found);
  EXPECT_EQ(t.source->reads(), reads);  // No I/O.

  GetResult warm_up = Get(*t.table, entries_[123].first);
  ASSERT_OK(warm_up.status);
  ASSERT_TRUE(warm_up.found);
  const int reads_after_warm = t.source->reads();
  GetResult hit = Get(*t.table, entries_[123].first, cache_only);
  ASSERT_OK(hit.status);
  ASSERT_TRUE(hit.found);
  EXPECT_EQ(hit.value, entries_[123].second);
  EXPECT_EQ(t.source->reads(), reads_after_warm);
  EXPECT_GE(cache_->hits(), 1u);
}

TEST_F(TableCacheTest, CacheOnlyIteratorStopsWithUnavailable) {
  ASSERT_OK_AND_ASSIGN(OpenedTable t, Open());
  ReadOptions cache_only;
  cache_only.cache_only = true;
  std::unique_ptr<Iterator> it(t.table->NewIterator(cache_only));
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(it->status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TableCacheTest, FillCacheFalseLeavesCacheUntouched) {
  ASSERT_OK_AND_ASSIGN(OpenedTable t, Open());
  const size_t charge = cache_->TotalCharge();
  ReadOptions no_fill;
  no_fill.fill_cache = false;
  ExpectScanMatches(*t.table, entries_, no_fill);
  EXPECT_TRUE(Get(*t.table, entries_[5].first, no_fill).found);
  EXPECT_EQ(cache_->TotalCharge(), charge);
  ExpectScanMatches(*t.table, entries_);
  EXPECT_GT(cache_->TotalCharge(), charge);
}

TEST_F(TableCacheTest, ScanWorksWithAZeroCapacityCache) {
  cache_ = NewLRUCache(0, 0);
  ASSERT_OK_AND_ASSIGN(OpenedTable t, Open());
  ExpectScanMatches(*t.table, entries_);
  EXPECT_TRUE(Get(*t.table, entries_[1999].first).found);
  // Only the pinned index and filter remain.
  const TableProperties& p = t.table->properties();
  EXPECT_LE(cache_->TotalCharge(), p.index_bytes + p.filter_bytes + 1024);
}

TEST_F(TableCacheTest, SecondScanIsServedFromCache) {
  ASSERT_OK_AND_ASSIGN(OpenedTable t, Open());
  ExpectScanMatches(*t.table, entries_);
  const int reads = t.source->reads();
  ExpectScanMatches(*t.table, entries_);
  EXPECT_EQ(t.source->reads(), reads);
}

TEST_F(TableCacheTest, ConcurrentGetsAndScansAgree) {
  cache_ = NewLRUCache(64 << 10, 2);  // Small: forces evictions.
  ASSERT_OK_AND_ASSIGN(OpenedTable t, Open());
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int th = 0; th < 4; th++) {
    threads.emplace_back([&, th] {
      std::mt19937 rnd(th);
      for (int n = 0; n < 2000; n++) {
        size_t i = rnd() % entries_.size();
        GetResult r = Get(*t.table, entries_[i].first);
        if (!r.status.ok() || !r.found || r.value != entries_[i].second) errors++;
      }
      std::unique_ptr<Iterator> it(t.table->NewIterator(ReadOptions()));
      size_t i = 0;
      for (it->SeekToFirst(); it->Valid(); it->Next(), i++) {
        if (i >= entries_.size() || it->key() != entries_[i].first) errors++;
      }
      if (i != entries_.size()) errors++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
}

// --- Memory-mapped tables ---

// Uncompressed blocks of a mapped table are read in place: no Read call on
// the file and nothing added to the block cache (the page cache holds them).
TEST(MappedTableTest, UncompressedBlocksSkipTheBlockCacheAndTheFileReads) {
  const Entries entries = MakeEntries(2000);
  const std::string contents =
      BuildTable(BuilderOptions(CompressionType::kNone), entries);
  std::unique_ptr<Cache> cache = NewLRUCache(1 << 20, 0);
  TableOptions to;
  to.block_cache = cache.get();
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents, to, /*mapped=*/true));
  const size_t pinned = cache->TotalCharge();  // Index and filter.
  const int reads_at_open = t.source->reads();
  ExpectScanMatches(*t.table, entries);
  for (size_t i = 0; i < entries.size(); i += 13) {
    GetResult r = Get(*t.table, entries[i].first);
    ASSERT_OK(r.status);
    EXPECT_EQ(r.value, entries[i].second);
  }
  EXPECT_EQ(cache->TotalCharge(), pinned);
  EXPECT_EQ(t.source->reads(), reads_at_open);
}

// Compressed blocks of a mapped table are decompressed from the mapping
// into the block cache, as with pread, and served from it afterwards.
TEST(MappedTableTest, CompressedBlocksAreDecompressedIntoTheBlockCache) {
  const Entries entries = MakeEntries(2000);
  const std::string contents =
      BuildTable(BuilderOptions(CompressionType::kLZ4), entries);
  std::unique_ptr<Cache> cache = NewLRUCache(4 << 20, 0);
  TableOptions to;
  to.block_cache = cache.get();
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents, to, /*mapped=*/true));
  const size_t pinned = cache->TotalCharge();
  const int reads_at_open = t.source->reads();
  ExpectScanMatches(*t.table, entries);
  EXPECT_GT(cache->TotalCharge(), pinned);
  EXPECT_EQ(t.source->reads(), reads_at_open);
  // Now cached: a cache_only lookup needs nothing else.
  ReadOptions ro;
  ro.cache_only = true;
  GetResult r = Get(*t.table, entries[1234].first, ro);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.value, entries[1234].second);
}

// A cache_only read of a mapped block is served when its pages are in
// memory (StringSource says they always are), with no block cache at all.
TEST(MappedTableTest, CacheOnlyGetIsServedFromResidentPages) {
  const Entries entries = MakeEntries(500);
  const std::string contents =
      BuildTable(BuilderOptions(CompressionType::kNone), entries);
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents, {}, /*mapped=*/true));
  ReadOptions ro;
  ro.cache_only = true;
  GetResult r = Get(*t.table, entries[77].first, ro);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.value, entries[77].second);
}

// A cache_only read of an uncompressed block whose pages are not resident
// is WouldBlock without touching the mapping (touching an evicted page would
// read the disk on the caller's thread; here it would raise SIGSEGV).
TEST(MappedTableTest, CacheOnlyGetOfANonResidentBlockWouldBlock) {
  const Entries entries = MakeEntries(500);
  const std::string contents =
      BuildTable(BuilderOptions(CompressionType::kNone), entries);
  std::unique_ptr<Cache> cache = NewLRUCache(1 << 20, 0);
  TableOptions to;
  to.block_cache = cache.get();
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents, to, /*mapped=*/true));
  t.source->set_resident(false);
  ReadOptions ro;
  ro.cache_only = true;
  GetResult r = Get(*t.table, entries[77].first, ro);
  EXPECT_TRUE(IsWouldBlock(r.status)) << r.status;
  EXPECT_FALSE(r.found);
  t.source->set_resident(true);
  r = Get(*t.table, entries[77].first, ro);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.value, entries[77].second);
}

// A cache_only read of a compressed block already in the block cache is
// served from the cache whether or not its pages are resident, and never
// touches the mapping to find out the block is compressed.
TEST(MappedTableTest, CacheOnlyGetOfACachedBlockNeedsNoResidentPages) {
  const Entries entries = MakeEntries(500);
  const std::string contents =
      BuildTable(BuilderOptions(CompressionType::kLZ4), entries);
  std::unique_ptr<Cache> cache = NewLRUCache(4 << 20, 0);
  TableOptions to;
  to.block_cache = cache.get();
  ASSERT_OK_AND_ASSIGN(OpenedTable t, OpenTable(contents, to, /*mapped=*/true));
  ASSERT_OK(Get(*t.table, entries[77].first).status);  // Fills the cache.
  t.source->set_resident(false);
  ReadOptions ro;
  ro.cache_only = true;
  GetResult r = Get(*t.table, entries[77].first, ro);
  ASSERT_OK(r.status);
  EXPECT_EQ(r.value, entries[77].second);
  // A block not in the cache would block.
  r = Get(*t.table, entries[400].first, ro);
  EXPECT_TRUE(IsWouldBlock(r.status)) << r.status;
}

// A mapping shorter or longer than the table's size (a file truncated or
// appended to since it was written) is DataLoss at Open: a read past the
// end of a mapping would raise SIGBUS instead of failing.
TEST(MappedTableTest, MappingOfTheWrongSizeIsDataLoss) {
  const std::string contents = BuildTable(BuilderOptions(), MakeEntries(100));
  for (const std::string& file :
       {contents.substr(0, contents.size() - 100), contents + "garbage"}) {
    TableOptions to;
    to.comparator = &kIcmp;
    auto table =
        Table::Open(to, "mem.sst", std::make_unique<StringSource>(file, true),
                    contents.size());
    EXPECT_EQ(table.status().code(), absl::StatusCode::kDataLoss)
        << table.status();
    EXPECT_NE(table.status().message().find("truncated or modified"),
              std::string::npos)
        << table.status();
  }
}

// --- Corruption: DataLoss naming file and offset, never a wrong value ---

class TableCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    entries_ = MakeEntries(1000);
    contents_ = BuildTable(BuilderOptions(), entries_);
    path_ = dir_.path() + "/000123.sst";
    ::strata::testing::WriteFileOrDie(path_, contents_);
    std::string_view f(contents_.data() + contents_.size() - Footer::kEncodedLength,
                       Footer::kEncodedLength);
    auto footer = Footer::DecodeFrom(f, "x", 0);
    ASSERT_OK(footer);
    footer_ = *footer;
  }

  // With `mapped`, through a memory mapping of the file.
  absl::StatusOr<std::unique_ptr<Table>> Open(Cache* cache = nullptr,
                                              bool mapped = false) {
    Env* env = Env::Default();
    auto size = env->GetFileSize(path_);
    if (!size.ok()) return size.status();
    auto file = mapped ? env->NewMappedRandomAccessFile(path_)
                       : env->NewRandomAccessFile(path_);
    if (!file.ok()) return file.status();
    TableOptions to;
    to.comparator = &kIcmp;
    to.block_cache = cache;
    return Table::Open(to, path_, std::move(file).value(), *size);
  }

  void ExpectDataLoss(const absl::Status& s, uint64_t offset) {
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_NE(s.message().find(path_), std::string::npos) << s;
    EXPECT_NE(s.message().find(absl::StrFormat("offset %d", offset)),
              std::string::npos)
        << s;
  }

  ::strata::testing::TempDir dir_;
  std::string path_;
  Entries entries_;
  std::string contents_;
  Footer footer_;
};

TEST_F(TableCorruptionTest, FlippedByteInDataBlockIsDataLoss) {
  ::strata::testing::FlipByte(path_, 10);  // Inside the first data block.
  for (int mode = 0; mode < 4; mode++) {
    const bool with_cache = mode & 1, mapped = mode & 2;
    SCOPED_TRACE(absl::StrFormat("cache %d mapped %d", with_cache, mapped));
    std::unique_ptr<Cache> cache = NewLRUCache(1 << 20);
    ASSERT_OK_AND_ASSIGN(auto table,
                         Open(with_cache ? cache.get() : nullptr, mapped));
    GetResult r = Get(*table, entries_[0].first);
    ExpectDataLoss(r.status, 0);
    EXPECT_FALSE(r.found);
    std::unique_ptr<Iterator> it(table->NewIterator(ReadOptions()));
    it->SeekToFirst();
    EXPECT_FALSE(it->Valid());
    ExpectDataLoss(it->status(), 0);
    // Blocks elsewhere still read fine.
    GetResult other = Get(*table, entries_[900].first);
    ASSERT_OK(other.status);
    EXPECT_EQ(other.value, entries_[900].second);
  }
}

TEST_F(TableCorruptionTest, ScanStopsAtCorruptBlockInsteadOfSkippingIt) {
  const uint64_t second = [&] {
    auto t = Open();
    return (*t)->ApproximateOffsetOf(entries_[500].first);
  }();
  ASSERT_GT(second, 0u);
  ::strata::testing::FlipByte(path_, second + 3);
  ASSERT_OK_AND_ASSIGN(auto table, Open());
  std::unique_ptr<Iterator> it(table->NewIterator(ReadOptions()));
  size_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) n++;
  EXPECT_LT(n, 500u);
  ExpectDataLoss(it->status(), second);
}

TEST_F(TableCorruptionTest, FlippedByteInIndexBlockIsDataLoss) {
  ::strata::testing::FlipByte(path_, footer_.index_handle.offset() + 5);
  auto table = Open();
  ExpectDataLoss(table.status(), footer_.index_handle.offset());
}

TEST_F(TableCorruptionTest, FlippedByteInFilterBlockIsDataLoss) {
  ASSERT_GT(footer_.filter_handle.size(), 0u);
  ::strata::testing::FlipByte(path_, footer_.filter_handle.offset() + 17);
  auto table = Open();
  ExpectDataLoss(table.status(), footer_.filter_handle.offset());
}

TEST_F(TableCorruptionTest, FlippedByteInPropertiesBlockIsDataLoss) {
  ::strata::testing::FlipByte(path_, footer_.properties_handle.offset() + 2);
  auto table = Open();
  ExpectDataLoss(table.status(), footer_.properties_handle.offset());
}

TEST_F(TableCorruptionTest, FlippedByteInFooterIsDataLoss) {
  const uint64_t footer_offset = contents_.size() - Footer::kEncodedLength;
  for (size_t i : {0ul, 30ul, 61ul, 66ul, 70ul, 75ul}) {
    ::strata::testing::WriteFileOrDie(path_, contents_);
    ::strata::testing::FlipByte(path_, footer_offset + i);
    auto table = Open();
    ExpectDataLoss(table.status(), footer_offset);
  }
}

TEST_F(TableCorruptionTest, FooterHandlesOutOfRangeAreDataLoss) {
  // Well-formed footers (valid checksum) whose handles are impossible.
  const uint64_t footer_offset = contents_.size() - Footer::kEncodedLength;
  auto with_footer = [&](const Footer& f) {
    std::string bad = contents_.substr(0, footer_offset);
    f.EncodeTo(&bad);
    ::strata::testing::WriteFileOrDie(path_, bad);
  };
  Footer f = footer_;
  f.properties_handle.set_size(footer_offset);  // Runs into the footer.
  with_footer(f);
  ExpectDataLoss(Open().status(), footer_offset);
  f = footer_;
  f.index_handle.set_size(~0ull);  // Would overflow.
  with_footer(f);
  ExpectDataLoss(Open().status(), footer_offset);
  f = footer_;
  f.filter_handle.set_offset(footer_.index_handle.offset() + 1);  // Overlaps.
  with_footer(f);
  ExpectDataLoss(Open().status(), footer_offset);
}

TEST_F(TableCorruptionTest, FlippedBlockTrailerIsDataLoss) {
  // The type byte of the index block.
  ::strata::testing::FlipByte(path_, footer_.index_handle.offset() +
                                         footer_.index_handle.size());
  ExpectDataLoss(Open().status(), footer_.index_handle.offset());
}

TEST_F(TableCorruptionTest, TruncatedFileIsDataLoss) {
  for (size_t n : {size_t{0}, size_t{10}, size_t{75}, contents_.size() / 2,
                   contents_.size() - 1}) {
    ::strata::testing::WriteFileOrDie(path_, contents_.substr(0, n));
    for (bool mapped : {false, true}) {
      // The size the manifest would give: the table as written.
      Env* env = Env::Default();
      auto file = mapped ? env->NewMappedRandomAccessFile(path_)
                         : env->NewRandomAccessFile(path_);
      ASSERT_OK(file);
      TableOptions to;
      to.comparator = &kIcmp;
      auto table = Table::Open(to, path_, std::move(file).value(),
                               contents_.size());
      EXPECT_EQ(table.status().code(), absl::StatusCode::kDataLoss)
          << n << " " << mapped;
      EXPECT_NE(table.status().message().find(path_), std::string::npos);
    }
    auto table = Open();
    EXPECT_EQ(table.status().code(), absl::StatusCode::kDataLoss) << n;
    EXPECT_NE(table.status().message().find(path_), std::string::npos);
  }
}

TEST_F(TableCorruptionTest, GarbageAppendedAfterFooterIsDataLoss) {
  ::strata::testing::WriteFileOrDie(path_, contents_ + "garbage");
  EXPECT_EQ(Open().status().code(), absl::StatusCode::kDataLoss);
}

// Every single-byte flip in a small table is either detected (DataLoss) or
// harmless; reads never return a wrong value.
TEST(TableFuzzTest, EveryFlippedByteIsDetectedNeverAWrongValue) {
  Entries entries = MakeEntries(60, 20);
  // Mapped uncompressed blocks are read in place; compressed ones are
  // decompressed from the mapping.
  for (int mode = 0; mode < 4; mode++) {
    const bool mapped = mode & 1;
    TableBuilderOptions o = BuilderOptions(
        mode & 2 ? CompressionType::kNone : CompressionType::kSnappy);
    o.block_size = 256;
    const std::string good = BuildTable(o, entries);
    SCOPED_TRACE(absl::StrFormat("mapped %d compressed %d", mapped,
                                 (mode & 2) == 0));
    int detected = 0;
    for (size_t pos = 0; pos < good.size(); pos++) {
      std::string bad = good;
      bad[pos] ^= 0x20;
      auto t = OpenTable(bad, {}, mapped);
      if (!t.ok()) {
        EXPECT_EQ(t.status().code(), absl::StatusCode::kDataLoss) << pos;
        detected++;
        continue;
      }
      bool error = false;
      std::unique_ptr<Iterator> it(t->table->NewIterator(ReadOptions()));
      size_t i = 0;
      for (it->SeekToFirst(); it->Valid(); it->Next(), i++) {
        ASSERT_LT(i, entries.size()) << pos;
        ASSERT_EQ(it->key(), entries[i].first) << pos;
        ASSERT_EQ(it->value(), entries[i].second) << pos;
      }
      if (!it->status().ok()) {
        EXPECT_EQ(it->status().code(), absl::StatusCode::kDataLoss) << pos;
        error = true;
      } else {
        EXPECT_EQ(i, entries.size()) << pos;
      }
      for (const auto& [k, v] : entries) {
        GetResult r = Get(*t->table, k);
        if (!r.status.ok()) {
          EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << pos;
          error = true;
        } else if (r.found && ExtractUserKey(r.key) == ExtractUserKey(k)) {
          ASSERT_EQ(r.value, v) << pos;
        }
      }
      if (error) detected++;
    }
    // Every byte is covered by a checksum or the magic number.
    EXPECT_EQ(detected, static_cast<int>(good.size()));
  }
}

// Without checksum verification corrupt blocks reach the parsers; they must
// report DataLoss or return garbage, never crash or read out of bounds.
TEST(TableFuzzTest, UnverifiedGarbageNeverCrashes) {
  Entries entries = MakeEntries(200, 30);
  for (CompressionType type :
       {CompressionType::kNone, CompressionType::kSnappy, CompressionType::kLZ4,
        CompressionType::kZstd}) {
    TableBuilderOptions o = BuilderOptions(type);
    o.block_size = 512;
    const std::string good = BuildTable(o, entries);
    auto probe = OpenTable(good);
    ASSERT_OK(probe);
    const uint64_t data_end = probe->table->properties().data_bytes;
    std::mt19937 rnd(static_cast<int>(type));
    ReadOptions ro;
    ro.verify_checksums = false;
    for (int trial = 0; trial < 300; trial++) {
      std::string bad = good;
      for (int f = 0; f < 3; f++) bad[rnd() % data_end] ^= static_cast<char>(1 + rnd() % 255);
      auto t = OpenTable(bad, {}, /*mapped=*/trial % 2 == 1);
      ASSERT_OK(t);  // Only data blocks were touched.
      std::unique_ptr<Iterator> it(t->table->NewIterator(ro));
      int steps = 0;
      for (it->SeekToFirst(); it->Valid() && steps < 1000; it->Next()) steps++;
      for (it->SeekToLast(); it->Valid() && steps < 2000; it->Prev()) steps++;
      if (!it->status().ok()) {
        EXPECT_EQ(it->status().code(), absl::StatusCode::kDataLoss);
      }
      for (int i = 0; i < 20; i++) {
        absl::Status s = Get(*t->table, entries[rnd() % entries.size()].first, ro).status;
        if (!s.ok()) {
          EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
        }
      }
    }
  }
}

}  // namespace
}  // namespace strata::storage
