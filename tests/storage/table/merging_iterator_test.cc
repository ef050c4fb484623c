#include "table/merging_iterator.h"

#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/storage/table/table_test_util.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using testing::VectorIterator;
using Entries = VectorIterator::Entries;

VectorIterator* Vec(Entries entries) { return new VectorIterator(std::move(entries)); }

std::vector<std::pair<std::string, std::string>> Collect(Iterator* it) {
  std::vector<std::pair<std::string, std::string>> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out.emplace_back(std::string(it->key()), std::string(it->value()));
  }
  return out;
}

TEST(MergingIteratorTest, NoChildrenIsEmpty) {
  std::unique_ptr<Iterator> it(NewMergingIterator(BytewiseComparator(), {}));
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  EXPECT_OK(it->status());
}

TEST(MergingIteratorTest, OneChildPassesThrough) {
  std::unique_ptr<Iterator> it(NewMergingIterator(
      BytewiseComparator(), {Vec({{"a", "1"}, {"b", "2"}})}));
  EXPECT_EQ(Collect(it.get()), (Entries{{"a", "1"}, {"b", "2"}}));
}

TEST(MergingIteratorTest, MergesInOrderWithEmptyChildren) {
  std::unique_ptr<Iterator> it(NewMergingIterator(
      BytewiseComparator(),
      {Vec({{"b", "1"}, {"e", "1"}}), Vec({}),
       Vec({{"a", "2"}, {"c", "2"}, {"f", "2"}}),
       Vec({{"d", "3"}})}));
  EXPECT_EQ(Collect(it.get()), (Entries{{"a", "2"}, {"b", "1"}, {"c", "2"},
                                        {"d", "3"}, {"e", "1"}, {"f", "2"}}));
  it->Seek("c");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "c");
  it->Prev();
  EXPECT_EQ(it->key(), "b");
  it->Prev();
  EXPECT_EQ(it->key(), "a");
  it->Prev();
  EXPECT_FALSE(it->Valid());
  it->SeekToLast();
  EXPECT_EQ(it->key(), "f");
}

TEST(MergingIteratorTest, EqualKeysComeInChildOrderBothWays) {
  std::unique_ptr<Iterator> it(NewMergingIterator(
      BytewiseComparator(),
      {Vec({{"k", "0"}, {"z", "0"}}),
       Vec({{"a", "1"}, {"k", "1"}}),
       Vec({{"k", "2"}})}));
  EXPECT_EQ(Collect(it.get()), (Entries{{"a", "1"}, {"k", "0"}, {"k", "1"},
                                        {"k", "2"}, {"z", "0"}}));
  // Backward is the exact reverse.
  std::vector<std::string> back;
  for (it->SeekToLast(); it->Valid(); it->Prev()) back.emplace_back(it->value());
  EXPECT_EQ(back, (std::vector<std::string>{"0", "2", "1", "0", "1"}));
  // Direction changes in the middle of equal keys.
  it->Seek("k");
  EXPECT_EQ(it->value(), "0");
  it->Next();
  EXPECT_EQ(it->value(), "1");
  it->Prev();
  EXPECT_EQ(it->value(), "0");
  it->Next();
  it->Next();
  EXPECT_EQ(it->value(), "2");
  it->Prev();
  EXPECT_EQ(it->value(), "1");
  it->Next();
  EXPECT_EQ(it->value(), "2");
  it->Next();
  EXPECT_EQ(it->key(), "z");
}

TEST(MergingIteratorTest, ChildErrorStopsIterationAndIsReported) {
  auto* bad = Vec({{"m", "x"}});
  bad->FailWith(absl::DataLossError("child 1 broke"));
  auto* worse = Vec({});
  worse->FailWith(absl::DataLossError("child 2 broke"));
  std::unique_ptr<Iterator> it(NewMergingIterator(
      BytewiseComparator(), {Vec({{"a", "1"}}), bad, worse}));
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  EXPECT_EQ(it->status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(it->status().message(), "child 1 broke");
}

// Random children against a std::map model, with random direction changes.
TEST(MergingIteratorTest, MatchesModelUnderRandomMoves) {
  std::mt19937 rnd(42);
  for (int round = 0; round < 20; round++) {
    std::map<std::string, std::string> model;
    std::vector<Iterator*> children;
    const int num_children = 1 + rnd() % 8;
    for (int c = 0; c < num_children; c++) {
      std::map<std::string, std::string> child;
      const int n = rnd() % 50;
      for (int i = 0; i < n; i++) {
        std::string k = absl::StrFormat("%04d", static_cast<int>(rnd() % 1000));
        if (model.count(k)) continue;  // Keys unique across children.
        child[k] = absl::StrFormat("c%d", c);
        model[k] = child[k];
      }
      children.push_back(Vec(Entries(child.begin(), child.end())));
    }
    std::unique_ptr<Iterator> it(NewMergingIterator(BytewiseComparator(), children));
    ASSERT_EQ(Collect(it.get()), Entries(model.begin(), model.end()));
    auto pos = model.end();
    it->SeekToFirst();
    pos = model.begin();
    for (int step = 0; step < 300; step++) {
      ASSERT_EQ(it->Valid(), pos != model.end()) << step;
      if (pos != model.end()) {
        ASSERT_EQ(it->key(), pos->first);
        ASSERT_EQ(it->value(), pos->second);
      }
      switch (rnd() % 6) {
        case 0:
        case 1:
          if (pos != model.end()) {
            it->Next();
            ++pos;
          }
          break;
        case 2:
        case 3:
          if (pos != model.end()) {
            it->Prev();
            pos = pos == model.begin() ? model.end() : std::prev(pos);
          }
          break;
        case 4: {
          std::string k = absl::StrFormat("%04d", static_cast<int>(rnd() % 1000));
          it->Seek(k);
          pos = model.lower_bound(k);
          break;
        }
        case 5:
          if (rnd() % 2) {
            it->SeekToFirst();
            pos = model.begin();
          } else {
            it->SeekToLast();
            pos = model.empty() ? model.end() : std::prev(model.end());
          }
          break;
      }
    }
  }
}

}  // namespace
}  // namespace strata::storage
