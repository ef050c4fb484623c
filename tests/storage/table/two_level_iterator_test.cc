#include "table/two_level_iterator.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/storage/table/table_test_util.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using testing::VectorIterator;
using Entries = VectorIterator::Entries;

VectorIterator* Vec(Entries entries) { return new VectorIterator(std::move(entries)); }

// The index maps a block's last key to the block's name; blocks live in a
// map. Block "bad" fails with DataLoss.
struct Blocks {
  std::map<std::string, Entries> blocks;
  int opened = 0;

  static Iterator* Open(void* arg, const ReadOptions&, std::string_view name) {
    auto* self = static_cast<Blocks*>(arg);
    self->opened++;
    if (name == "bad") return NewErrorIterator(absl::DataLossError("bad block"));
    return new VectorIterator(self->blocks.at(std::string(name)));
  }
};

TEST(TwoLevelIteratorTest, WalksBlocksSkippingEmptyOnesBothWays) {
  Blocks b;
  b.blocks["b1"] = {{"a", "1"}, {"b", "2"}};
  b.blocks["b2"] = {};
  b.blocks["b3"] = {{"c", "3"}};
  b.blocks["b4"] = {};
  auto* index = Vec(
      {{"b", "b1"}, {"bb", "b2"}, {"c", "b3"}, {"d", "b4"}});
  std::unique_ptr<Iterator> it(
      NewTwoLevelIterator(index, &Blocks::Open, &b, ReadOptions()));
  std::string keys;
  for (it->SeekToFirst(); it->Valid(); it->Next()) keys += it->key();
  EXPECT_EQ(keys, "abc");
  keys.clear();
  for (it->SeekToLast(); it->Valid(); it->Prev()) keys += it->key();
  EXPECT_EQ(keys, "cba");
  it->Seek("bb");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  it->Seek("d");
  EXPECT_FALSE(it->Valid());
  EXPECT_OK(it->status());
}

TEST(TwoLevelIteratorTest, ReusesTheCurrentBlock) {
  Blocks b;
  b.blocks["b1"] = {{"a", "1"}, {"b", "2"}, {"c", "3"}};
  auto* index = Vec({{"c", "b1"}});
  std::unique_ptr<Iterator> it(
      NewTwoLevelIterator(index, &Blocks::Open, &b, ReadOptions()));
  it->Seek("a");
  it->Seek("b");
  it->Seek("c");
  EXPECT_EQ(it->key(), "c");
  EXPECT_EQ(b.opened, 1);
}

TEST(TwoLevelIteratorTest, BlockErrorStopsIteration) {
  Blocks b;
  b.blocks["b1"] = {{"a", "1"}};
  b.blocks["b3"] = {{"c", "3"}};
  auto* index = Vec({{"a", "b1"}, {"b", "bad"}, {"c", "b3"}});
  std::unique_ptr<Iterator> it(
      NewTwoLevelIterator(index, &Blocks::Open, &b, ReadOptions()));
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid());
  it->Next();
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(it->status().code(), absl::StatusCode::kDataLoss);
  // Seeking past the bad block works again.
  it->Seek("c");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  EXPECT_OK(it->status());
}

TEST(TwoLevelIteratorTest, IndexErrorIsReported) {
  Blocks b;
  auto* index = Vec({{"a", "b1"}});
  index->FailWith(absl::DataLossError("index broke"));
  std::unique_ptr<Iterator> it(
      NewTwoLevelIterator(index, &Blocks::Open, &b, ReadOptions()));
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(it->status().message(), "index broke");
}

}  // namespace
}  // namespace strata::storage
