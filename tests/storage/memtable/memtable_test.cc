#include "memtable/memtable.h"

#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"
#include "util/comparator.h"
#include "util/dbformat.h"

namespace strata::storage {
namespace {

struct MemTableDeleter {
  void operator()(MemTable* m) const { m->Unref(); }
};
using MemTablePtr = std::unique_ptr<MemTable, MemTableDeleter>;

// Parameter: the memtable's bloom filter bytes (0 = none; 64 = one block,
// nearly every probe a false positive; 4096 = mostly true negatives).
// Every behaviour must be the same with and without the filter.
class MemTableTest : public ::testing::TestWithParam<size_t> {
 protected:
  MemTableTest() : icmp_(BytewiseComparator()), mem_(NewMemTable()) {}

  MemTablePtr NewMemTable() {
    auto* m = new MemTable(icmp_, GetParam());
    m->Ref();
    return MemTablePtr(m);
  }

  // "value", "<deleted>" or "<absent>" as of snapshot seq.
  std::string Get(std::string_view key, SequenceNumber seq) {
    LookupResult result;
    result.stored_value = "unchanged";
    if (!mem_->Get(LookupKey(key, seq), &result)) {
      EXPECT_EQ(result.stored_value, "unchanged");
      return "<absent>";
    }
    if (result.state == LookupResult::State::kDeleted) return "<deleted>";
    EXPECT_EQ(result.state, LookupResult::State::kFound);
    return result.stored_value;
  }

  std::vector<std::tuple<std::string, SequenceNumber, ValueType, std::string>>
  Entries() {
    std::vector<std::tuple<std::string, SequenceNumber, ValueType, std::string>>
        result;
    std::unique_ptr<Iterator> iter(mem_->NewIterator());
    for (iter->SeekToFirst(); iter->Valid(); iter->Next()) {
      ParsedInternalKey k;
      EXPECT_TRUE(ParseInternalKey(iter->key(), &k));
      result.emplace_back(std::string(k.user_key), k.sequence, k.type,
                          std::string(iter->value()));
    }
    EXPECT_OK(iter->status());
    return result;
  }

  const InternalKeyComparator icmp_;
  MemTablePtr mem_;
};

TEST_P(MemTableTest, EmptyMemTable) {
  EXPECT_TRUE(mem_->empty());
  EXPECT_EQ(Get("a", kMaxSequenceNumber), "<absent>");
  std::unique_ptr<Iterator> iter(mem_->NewIterator());
  iter->SeekToFirst();
  EXPECT_FALSE(iter->Valid());
  iter->SeekToLast();
  EXPECT_FALSE(iter->Valid());
}

TEST_P(MemTableTest, GetSeesTheNewestVersionAtOrBelowTheSnapshot) {
  mem_->Add(10, kTypeValue, "k", "v10");
  mem_->Add(20, kTypeValue, "k", "v20");
  mem_->Add(30, kTypeDeletion, "k", "");
  mem_->Add(40, kTypeValue, "k", "v40");
  EXPECT_FALSE(mem_->empty());

  EXPECT_EQ(Get("k", 9), "<absent>");
  EXPECT_EQ(Get("k", 10), "v10");
  EXPECT_EQ(Get("k", 19), "v10");
  EXPECT_EQ(Get("k", 20), "v20");
  EXPECT_EQ(Get("k", 29), "v20");
  EXPECT_EQ(Get("k", 30), "<deleted>");
  EXPECT_EQ(Get("k", 39), "<deleted>");
  EXPECT_EQ(Get("k", 40), "v40");
  EXPECT_EQ(Get("k", kMaxSequenceNumber), "v40");
}

TEST_P(MemTableTest, GetDoesNotConfuseNeighbouringKeys) {
  mem_->Add(1, kTypeValue, "a", "va");
  mem_->Add(2, kTypeValue, "ab", "vab");
  mem_->Add(3, kTypeValue, "b", "vb");
  mem_->Add(4, kTypeValue, "", "empty-key");
  EXPECT_EQ(Get("a", 100), "va");
  EXPECT_EQ(Get("ab", 100), "vab");
  EXPECT_EQ(Get("aa", 100), "<absent>");
  EXPECT_EQ(Get("abc", 100), "<absent>");
  EXPECT_EQ(Get("c", 100), "<absent>");
  EXPECT_EQ(Get("", 100), "empty-key");
  EXPECT_EQ(Get("", 3), "<absent>");
}

TEST_P(MemTableTest, TombstoneHidesOlderValue) {
  mem_->Add(5, kTypeValue, "x", "old");
  mem_->Add(6, kTypeDeletion, "x", "");
  EXPECT_EQ(Get("x", 6), "<deleted>");
  EXPECT_EQ(Get("x", 5), "old");
}

TEST_P(MemTableTest, LargeKeysAndValues) {
  const std::string key(300, 'k');        // Multi-byte varint lengths.
  const std::string value(100000, 'v');   // Its own arena block.
  mem_->Add(1, kTypeValue, key, value);
  mem_->Add(2, kTypeValue, "small", "");
  EXPECT_EQ(Get(key, 1), value);
  EXPECT_EQ(Get("small", 2), "");
  EXPECT_GE(mem_->ApproximateMemoryUsage(), value.size() + key.size());
}

TEST_P(MemTableTest, IteratorOrdersByUserKeyThenNewestFirst) {
  mem_->Add(3, kTypeValue, "b", "b3");
  mem_->Add(1, kTypeValue, "a", "a1");
  mem_->Add(7, kTypeDeletion, "b", "");
  mem_->Add(5, kTypeValue, "a", "a5");
  mem_->Add(2, kTypeValue, "c", "c2");
  using E = std::tuple<std::string, SequenceNumber, ValueType, std::string>;
  EXPECT_EQ(Entries(), (std::vector<E>{{"a", 5, kTypeValue, "a5"},
                                       {"a", 1, kTypeValue, "a1"},
                                       {"b", 7, kTypeDeletion, ""},
                                       {"b", 3, kTypeValue, "b3"},
                                       {"c", 2, kTypeValue, "c2"}}));
}

TEST_P(MemTableTest, IteratorSeekNextPrev) {
  for (int i = 0; i < 100; ++i) {
    mem_->Add(static_cast<SequenceNumber>(i + 1), kTypeValue,
              absl::StrFormat("key%03d", i * 2), absl::StrFormat("v%d", i));
  }
  std::unique_ptr<Iterator> iter(mem_->NewIterator());
  // Seek takes an internal key; (user key, max sequence) sorts before every
  // version of that user key.
  InternalKey target("key051", kMaxSequenceNumber, kValueTypeForSeek);
  iter->Seek(target.Encode());
  ASSERT_TRUE(iter->Valid());
  EXPECT_EQ(ExtractUserKey(iter->key()), "key052");
  EXPECT_EQ(iter->value(), "v26");
  iter->Next();
  ASSERT_TRUE(iter->Valid());
  EXPECT_EQ(ExtractUserKey(iter->key()), "key054");
  iter->Prev();
  iter->Prev();
  ASSERT_TRUE(iter->Valid());
  EXPECT_EQ(ExtractUserKey(iter->key()), "key050");

  iter->Seek(InternalKey("key200", kMaxSequenceNumber, kValueTypeForSeek)
                 .Encode());
  EXPECT_FALSE(iter->Valid());
  iter->SeekToLast();
  ASSERT_TRUE(iter->Valid());
  EXPECT_EQ(ExtractUserKey(iter->key()), "key198");
  iter->SeekToFirst();
  ASSERT_TRUE(iter->Valid());
  EXPECT_EQ(ExtractUserKey(iter->key()), "key000");
  iter->Prev();
  EXPECT_FALSE(iter->Valid());

  // Seeking to (key, seq) skips versions newer than seq.
  mem_->Add(500, kTypeValue, "key010", "newer");
  iter->Seek(InternalKey("key010", 100, kValueTypeForSeek).Encode());
  ASSERT_TRUE(iter->Valid());
  EXPECT_EQ(iter->value(), "v5");
}

TEST_P(MemTableTest, RandomOperationsMatchAModel) {
  std::mt19937 rng(42);
  // (user key, seq) -> value, or nullopt-like "<deleted>".
  std::map<std::string, std::map<SequenceNumber, std::string>> model;
  SequenceNumber seq = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string key = absl::StrFormat("k%d", rng() % 200);
    ++seq;
    if (rng() % 4 == 0) {
      mem_->Add(seq, kTypeDeletion, key, "");
      model[key][seq] = "<deleted>";
    } else {
      std::string value = absl::StrFormat("v%d-%d", i, rng() % 1000);
      mem_->Add(seq, kTypeValue, key, value);
      model[key][seq] = value;
    }
  }
  for (int i = 0; i < 2000; ++i) {
    std::string key = absl::StrFormat("k%d", rng() % 220);
    SequenceNumber snapshot = rng() % (seq + 10);
    std::string expect = "<absent>";
    auto it = model.find(key);
    if (it != model.end()) {
      auto v = it->second.upper_bound(snapshot);
      if (v != it->second.begin()) expect = std::prev(v)->second;
    }
    ASSERT_EQ(Get(key, snapshot), expect) << key << "@" << snapshot;
  }
  EXPECT_EQ(Entries().size(), 3000u);
}

TEST_P(MemTableTest, IteratorCanOutliveTheOwnersReference) {
  MemTable* m = new MemTable(icmp_);
  m->Ref();
  m->Add(1, kTypeValue, "k", "v");
  Iterator* iter = m->NewIterator();
  m->Ref();
  iter->RegisterCleanup([m] { m->Unref(); });
  m->Unref();  // The owner lets go; the iterator still holds a reference.
  iter->SeekToFirst();
  ASSERT_TRUE(iter->Valid());
  EXPECT_EQ(iter->value(), "v");
  delete iter;  // Drops the last reference (ASan would flag a leak or UAF).
}

TEST_P(MemTableTest, MemoryUsageGrows) {
  const size_t before = mem_->ApproximateMemoryUsage();
  for (int i = 0; i < 1000; ++i) {
    mem_->Add(static_cast<SequenceNumber>(i + 1), kTypeValue,
              absl::StrFormat("key%d", i), std::string(100, 'x'));
  }
  EXPECT_GE(mem_->ApproximateMemoryUsage(), before + 1000 * 100);
}

INSTANTIATE_TEST_SUITE_P(Bloom, MemTableTest,
                         ::testing::Values(size_t{0}, size_t{64},
                                           size_t{4096}),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return "bloom_bytes_" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace strata::storage
