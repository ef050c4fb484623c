#include "memtable/skiplist.h"

#include <cstdint>
#include <iterator>
#include <random>
#include <set>

#include "gtest/gtest.h"
#include "memtable/arena.h"

namespace strata::storage {
namespace {

using Key = uint64_t;

struct Compare {
  int operator()(const Key& a, const Key& b) const {
    return a < b ? -1 : (a > b ? 1 : 0);
  }
};
using List = SkipList<Key, Compare>;

TEST(SkipListTest, Empty) {
  Arena arena;
  List list(Compare(), &arena);
  EXPECT_TRUE(list.empty());
  EXPECT_FALSE(list.Contains(10));

  List::Iterator iter(&list);
  EXPECT_FALSE(iter.Valid());
  iter.SeekToFirst();
  EXPECT_FALSE(iter.Valid());
  iter.Seek(100);
  EXPECT_FALSE(iter.Valid());
  iter.SeekToLast();
  EXPECT_FALSE(iter.Valid());
}

TEST(SkipListTest, RandomInsertsMatchStdSet) {
  constexpr int kN = 2000;
  constexpr Key kRange = 5000;
  std::mt19937_64 rng(1001);
  Arena arena;
  List list(Compare(), &arena);
  std::set<Key> model;
  for (int i = 0; i < kN; ++i) {
    Key k = rng() % kRange;
    if (model.insert(k).second) list.Insert(k);
  }
  EXPECT_FALSE(list.empty());

  for (Key k = 0; k < kRange; ++k) {
    ASSERT_EQ(list.Contains(k), model.count(k) == 1) << k;
  }

  // Forward iteration visits exactly the model, in order.
  List::Iterator iter(&list);
  iter.SeekToFirst();
  for (Key k : model) {
    ASSERT_TRUE(iter.Valid());
    ASSERT_EQ(iter.key(), k);
    iter.Next();
  }
  EXPECT_FALSE(iter.Valid());

  // Backward iteration.
  iter.SeekToLast();
  for (auto it = model.rbegin(); it != model.rend(); ++it) {
    ASSERT_TRUE(iter.Valid());
    ASSERT_EQ(iter.key(), *it);
    iter.Prev();
  }
  EXPECT_FALSE(iter.Valid());

  // Seek lands on the first key >= target; Next and Prev agree with the
  // model from there.
  for (Key target = 0; target < kRange + 10; target += 7) {
    iter.Seek(target);
    auto it = model.lower_bound(target);
    if (it == model.end()) {
      EXPECT_FALSE(iter.Valid());
      continue;
    }
    ASSERT_TRUE(iter.Valid());
    ASSERT_EQ(iter.key(), *it);
    iter.Next();
    if (std::next(it) == model.end()) {
      EXPECT_FALSE(iter.Valid());
    } else {
      ASSERT_TRUE(iter.Valid());
      EXPECT_EQ(iter.key(), *std::next(it));
    }
    iter.Seek(target);
    iter.Prev();
    if (it == model.begin()) {
      EXPECT_FALSE(iter.Valid());
    } else {
      ASSERT_TRUE(iter.Valid());
      EXPECT_EQ(iter.key(), *std::prev(it));
    }
  }
}

TEST(SkipListTest, AscendingAndDescendingInserts) {
  Arena arena;
  List list(Compare(), &arena);
  for (Key k = 1000; k < 2000; ++k) list.Insert(k);
  for (Key k = 999; k > 0; --k) list.Insert(k);
  List::Iterator iter(&list);
  Key expect = 1;
  for (iter.SeekToFirst(); iter.Valid(); iter.Next()) {
    ASSERT_EQ(iter.key(), expect++);
  }
  EXPECT_EQ(expect, 2000u);
}

}  // namespace
}  // namespace strata::storage
