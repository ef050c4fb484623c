#include "table/block.h"

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "table/block_builder.h"
#include "tests/support/test_util.h"
#include "util/coding.h"

namespace strata::storage {
namespace {

using Entries = std::vector<std::pair<std::string, std::string>>;

BlockContents Contents(std::string_view data) {
  BlockContents c;
  c.buffer = std::make_unique<char[]>(data.size() + 1);
  std::memcpy(c.buffer.get(), data.data(), data.size());
  c.data = std::string_view(c.buffer.get(), data.size());
  return c;
}

// Keys with long shared prefixes, so prefix compression matters.
Entries MakeEntries(int n) {
  Entries e;
  for (int i = 0; i < n; i++) {
    e.emplace_back(absl::StrFormat("user/%08d/suffix", i * 2),
                   absl::StrFormat("value-%d", i));
  }
  return e;
}

std::string Build(const Entries& entries, int restart_interval) {
  BlockBuilder b(restart_interval);
  for (const auto& [k, v] : entries) b.Add(k, v);
  EXPECT_EQ(b.num_entries(), static_cast<int>(entries.size()));
  size_t estimate = b.CurrentSizeEstimate();
  std::string out(b.Finish());
  EXPECT_EQ(out.size(), estimate);
  return out;
}

class BlockRoundTripTest : public ::testing::TestWithParam<int> {};

TEST_P(BlockRoundTripTest, IteratesForwardAndBackward) {
  const Entries entries = MakeEntries(100);
  Block block(Contents(Build(entries, GetParam())));
  ASSERT_FALSE(block.malformed());
  std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator()));
  size_t i = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), i++) {
    ASSERT_LT(i, entries.size());
    EXPECT_EQ(it->key(), entries[i].first);
    EXPECT_EQ(it->value(), entries[i].second);
  }
  EXPECT_EQ(i, entries.size());
  EXPECT_OK(it->status());
  i = entries.size();
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    ASSERT_GT(i, 0u);
    i--;
    EXPECT_EQ(it->key(), entries[i].first);
    EXPECT_EQ(it->value(), entries[i].second);
  }
  EXPECT_EQ(i, 0u);
  EXPECT_OK(it->status());
}

TEST_P(BlockRoundTripTest, SeeksToEveryKeyAndBetweenKeys) {
  const Entries entries = MakeEntries(100);
  Block block(Contents(Build(entries, GetParam())));
  std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator()));
  for (size_t i = 0; i < entries.size(); i++) {
    it->Seek(entries[i].first);
    ASSERT_TRUE(it->Valid());
    EXPECT_EQ(it->key(), entries[i].first);
    // Just below key i lands on key i.
    std::string before = entries[i].first;
    before.back()--;
    it->Seek(before);
    ASSERT_TRUE(it->Valid());
    EXPECT_EQ(it->key(), entries[i].first);
    // Just above key i lands on key i+1 (or nothing).
    it->Seek(entries[i].first + "\x01");
    if (i + 1 < entries.size()) {
      ASSERT_TRUE(it->Valid());
      EXPECT_EQ(it->key(), entries[i + 1].first);
    } else {
      EXPECT_FALSE(it->Valid());
    }
  }
  it->Seek("");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), entries[0].first);
  it->Seek("zzz");
  EXPECT_FALSE(it->Valid());
  EXPECT_OK(it->status());
}

TEST_P(BlockRoundTripTest, SeeksFromAPositionInBothDirections) {
  // Exercises the seek shortcut that starts from the current entry.
  const Entries entries = MakeEntries(60);
  Block block(Contents(Build(entries, GetParam())));
  std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator()));
  std::mt19937 rnd(7);
  it->SeekToFirst();
  for (int n = 0; n < 500; n++) {
    size_t target = rnd() % entries.size();
    it->Seek(entries[target].first);
    ASSERT_TRUE(it->Valid());
    ASSERT_EQ(it->key(), entries[target].first);
    if (target > 0) {
      it->Prev();
      ASSERT_TRUE(it->Valid());
      ASSERT_EQ(it->key(), entries[target - 1].first);
      it->Next();
      ASSERT_EQ(it->key(), entries[target].first);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(RestartIntervals, BlockRoundTripTest,
                         ::testing::Values(1, 2, 3, 16, 1000));

TEST(BlockTest, RestartPointsAreWhereExpected) {
  const Entries entries = MakeEntries(10);
  std::string data = Build(entries, 4);
  uint32_t num_restarts = DecodeFixed32(data.data() + data.size() - 4);
  EXPECT_EQ(num_restarts, 3u);  // Entries 0, 4 and 8.
  uint32_t restart0 = DecodeFixed32(data.data() + data.size() - 16);
  EXPECT_EQ(restart0, 0u);
  // The entry at each restart point stores its whole key.
  uint32_t restart1 = DecodeFixed32(data.data() + data.size() - 12);
  std::string_view entry(data.data() + restart1, 3);
  EXPECT_EQ(entry[0], 0);  // shared == 0
  EXPECT_EQ(static_cast<size_t>(entry[1]), entries[4].first.size());
}

TEST(BlockTest, PrefixCompressionSharesKeyPrefixes) {
  const Entries entries = MakeEntries(64);
  size_t raw = 0;
  for (const auto& [k, v] : entries) raw += k.size() + v.size();
  std::string compressed = Build(entries, 16);
  std::string uncompressed = Build(entries, 1);
  EXPECT_LT(compressed.size(), uncompressed.size());
  EXPECT_LT(compressed.size(), raw);
  // Second entry: shares "user/0000000" (12 bytes) with the first.
  const size_t first_entry = 3 + entries[0].first.size() + entries[0].second.size();
  EXPECT_EQ(compressed[first_entry], 12);
}

TEST(BlockTest, EmptyBlockHasNoEntries) {
  BlockBuilder builder(16);
  std::string data(builder.Finish());
  EXPECT_EQ(data.size(), 8u);
  Block block(Contents(data));
  ASSERT_FALSE(block.malformed());
  std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator()));
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  it->SeekToLast();
  EXPECT_FALSE(it->Valid());
  it->Seek("a");
  EXPECT_FALSE(it->Valid());
  EXPECT_OK(it->status());
}

TEST(BlockTest, BuilderResetStartsANewBlock) {
  BlockBuilder builder(2);
  builder.Add("a", "1");
  builder.Finish();
  builder.Reset();
  EXPECT_TRUE(builder.empty());
  builder.Add("b", "2");
  Block block(Contents(builder.Finish()));
  std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator()));
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "b");
  it->Next();
  EXPECT_FALSE(it->Valid());
}

TEST(BlockTest, LongKeysAndEmptyValues) {
  Entries entries;
  for (int i = 0; i < 20; i++) {
    entries.emplace_back(std::string(300 + i, 'k') + absl::StrFormat("%03d", i),
                         i % 2 ? "" : std::string(1000, 'v'));
  }
  std::sort(entries.begin(), entries.end());
  Block block(Contents(Build(entries, 4)));
  std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator()));
  size_t i = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), i++) {
    EXPECT_EQ(it->key(), entries[i].first);
    EXPECT_EQ(it->value(), entries[i].second);
  }
  EXPECT_EQ(i, entries.size());
  it->Seek(entries[13].first);
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->value(), entries[13].second);
}

TEST(BlockTest, StackIteratorCanBeReinitialized) {
  const Entries a = MakeEntries(5);
  Block block_a(Contents(Build(a, 2)));
  Block block_b(Contents(Build({{"x", "1"}}, 2)));
  BlockIter it;
  EXPECT_FALSE(it.Valid());
  it.Init(&block_a, BytewiseComparator(), nullptr);
  it.SeekToLast();
  ASSERT_TRUE(it.Valid());
  EXPECT_EQ(it.key(), a.back().first);
  it.Init(&block_b, BytewiseComparator(), nullptr);
  EXPECT_FALSE(it.Valid());
  it.SeekToFirst();
  ASSERT_TRUE(it.Valid());
  EXPECT_EQ(it.key(), "x");
}

// --- Malformed blocks: DataLoss, never an out-of-bounds read. ---

void ExpectMalformed(std::string data, std::string_view what) {
  Block block(Contents(data), /*file_offset=*/4096);
  EXPECT_TRUE(block.malformed()) << what;
  const std::string name = "000007.sst";
  std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator(), &name));
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(it->status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(it->status().message().find("000007.sst"), std::string::npos);
  EXPECT_NE(it->status().message().find("4096"), std::string::npos);
}

TEST(BlockCorruptionTest, TooShortBlockIsDataLoss) {
  ExpectMalformed("", "empty");
  ExpectMalformed("abc", "3 bytes");
}

TEST(BlockCorruptionTest, BadRestartCountIsDataLoss) {
  std::string data = Build(MakeEntries(10), 4);
  std::string zero = data;
  EncodeFixed32(zero.data() + zero.size() - 4, 0);
  ExpectMalformed(zero, "zero restarts");
  std::string huge = data;
  EncodeFixed32(huge.data() + huge.size() - 4, 0xffffffff);
  ExpectMalformed(huge, "huge restart count");
}

TEST(BlockCorruptionTest, RestartPointOutsideEntriesIsDataLoss) {
  std::string data = Build(MakeEntries(10), 4);
  EncodeFixed32(data.data() + data.size() - 8, 0x7fffffff);
  ExpectMalformed(data, "restart past entries");
  std::string first = Build(MakeEntries(10), 4);
  EncodeFixed32(first.data() + first.size() - 16, 3);
  ExpectMalformed(first, "first restart not 0");
}

TEST(BlockCorruptionTest, TruncatedEntryIsDataLossOnRead) {
  // A value length that runs past the restart array.
  BlockBuilder b(16);
  b.Add("a", "1");
  b.Add("b", "2");
  std::string data(b.Finish());
  data[2] = 100;  // value_length of entry 0.
  Block block(Contents(data), 10);
  ASSERT_FALSE(block.malformed());
  std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator()));
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(it->status().code(), absl::StatusCode::kDataLoss);
  // The error sticks.
  it->Seek("a");
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(it->status().code(), absl::StatusCode::kDataLoss);
}

TEST(BlockCorruptionTest, SharedLongerThanPreviousKeyIsDataLoss) {
  BlockBuilder b(16);
  b.Add("a", "1");
  b.Add("ab", "2");
  std::string data(b.Finish());
  data[5] = 9;  // shared of entry 1 (entry 0 is 5 bytes).
  Block block(Contents(data));
  std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator()));
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  it->Next();
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(it->status().code(), absl::StatusCode::kDataLoss);
}

TEST(BlockCorruptionTest, RandomGarbageNeverReadsOutOfBounds) {
  // Random mutations of a real block: every operation must either work or
  // report DataLoss (run under ASan to catch stray reads).
  const Entries entries = MakeEntries(40);
  const std::string good = Build(entries, 4);
  std::mt19937 rnd(301);
  for (int trial = 0; trial < 3000; trial++) {
    std::string data = good;
    int flips = 1 + rnd() % 4;
    for (int f = 0; f < flips; f++) {
      data[rnd() % data.size()] ^= static_cast<char>(1 + rnd() % 255);
    }
    if (trial % 5 == 0) data.resize(rnd() % data.size());
    Block block(Contents(data));
    std::unique_ptr<Iterator> it(block.NewIterator(BytewiseComparator()));
    int steps = 0;
    for (it->SeekToFirst(); it->Valid() && steps < 200; it->Next()) steps++;
    for (it->SeekToLast(); it->Valid() && steps < 400; it->Prev()) steps++;
    it->Seek(entries[rnd() % entries.size()].first);
    if (it->Valid()) it->Prev();
    if (!it->status().ok()) {
      EXPECT_EQ(it->status().code(), absl::StatusCode::kDataLoss);
    }
  }
}

}  // namespace
}  // namespace strata::storage
