#include "table/bloom.h"

#include <string>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace strata::storage {
namespace {

std::string Key(int i) { return absl::StrFormat("key%08d", i); }

TEST(BloomTest, EmptyFilterMatchesNothingMuch) {
  BloomFilterBuilder builder(10);
  std::string filter = builder.Finish();
  ASSERT_TRUE(BloomFilterReader::IsValid(filter));
  BloomFilterReader reader(filter);
  EXPECT_FALSE(reader.KeyMayMatch("hello"));
  EXPECT_FALSE(reader.KeyMayMatch(""));
}

TEST(BloomTest, DefaultReaderMatchesEverything) {
  BloomFilterReader reader;
  EXPECT_TRUE(reader.KeyMayMatch("anything"));
}

TEST(BloomTest, SmallFilterHasNoFalseNegatives) {
  BloomFilterBuilder builder(10);
  builder.AddKey("hello");
  builder.AddKey("world");
  builder.AddKey("");
  EXPECT_EQ(builder.num_keys(), 3u);
  std::string filter = builder.Finish();
  BloomFilterReader reader(filter);
  EXPECT_TRUE(reader.KeyMayMatch("hello"));
  EXPECT_TRUE(reader.KeyMayMatch("world"));
  EXPECT_TRUE(reader.KeyMayMatch(""));
  EXPECT_FALSE(reader.KeyMayMatch("x"));
  EXPECT_FALSE(reader.KeyMayMatch("foo"));
}

TEST(BloomTest, ConsecutiveDuplicateKeysAreCountedOnce) {
  BloomFilterBuilder builder(10);
  for (int i = 0; i < 5; i++) builder.AddKey("same");
  builder.AddKey("other");
  EXPECT_EQ(builder.num_keys(), 2u);
}

TEST(BloomTest, FalsePositiveRateAtTenBitsPerKeyIsAtMostTwoPercent) {
  constexpr int kKeys = 10000;
  BloomFilterBuilder builder(10);
  for (int i = 0; i < kKeys; i++) builder.AddKey(Key(i));
  std::string filter = builder.Finish();
  EXPECT_LE(filter.size(), kKeys * 10 / 8 + 16u);
  BloomFilterReader reader(filter);
  for (int i = 0; i < kKeys; i++) {
    ASSERT_TRUE(reader.KeyMayMatch(Key(i))) << "false negative for " << i;
  }
  int false_positives = 0;
  constexpr int kProbes = 100000;
  for (int i = 0; i < kProbes; i++) {
    if (reader.KeyMayMatch(Key(i + 1000000000))) false_positives++;
  }
  double rate = static_cast<double>(false_positives) / kProbes;
  EXPECT_LE(rate, 0.02) << rate;
  EXPECT_GT(rate, 0.0001) << "suspiciously low: " << rate;
}

TEST(BloomTest, RateIsReasonableAcrossSizes) {
  for (int n : {1, 10, 100, 1000, 5000}) {
    BloomFilterBuilder builder(10);
    for (int i = 0; i < n; i++) builder.AddKey(Key(i));
    std::string filter = builder.Finish();
    BloomFilterReader reader(filter);
    for (int i = 0; i < n; i++) ASSERT_TRUE(reader.KeyMayMatch(Key(i)));
    int fp = 0;
    for (int i = 0; i < 10000; i++) fp += reader.KeyMayMatch(Key(i + 1000000000));
    EXPECT_LE(fp, 300) << "n=" << n;  // <= 3% even for tiny filters.
  }
}

TEST(BloomTest, FewerBitsPerKeyMeansMoreFalsePositives) {
  auto rate = [](int bits) {
    BloomFilterBuilder builder(bits);
    for (int i = 0; i < 5000; i++) builder.AddKey(Key(i));
    std::string filter = builder.Finish();
    BloomFilterReader reader(filter);
    int fp = 0;
    for (int i = 0; i < 20000; i++) fp += reader.KeyMayMatch(Key(i + 1000000000));
    return fp;
  };
  EXPECT_GT(rate(4), rate(16));
}

TEST(BloomTest, MalformedFiltersAreRejected) {
  EXPECT_FALSE(BloomFilterReader::IsValid(""));
  EXPECT_FALSE(BloomFilterReader::IsValid(std::string(8, '\0')));
  std::string zero_probes(9, '\0');
  EXPECT_FALSE(BloomFilterReader::IsValid(zero_probes));
  std::string too_many(9, '\0');
  too_many.back() = 31;
  EXPECT_FALSE(BloomFilterReader::IsValid(too_many));
  too_many.back() = 30;
  EXPECT_TRUE(BloomFilterReader::IsValid(too_many));
}

}  // namespace
}  // namespace strata::storage
