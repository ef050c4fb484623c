#include "memtable/memtable_bloom.h"

#include <string>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace strata::storage {
namespace {

TEST(MemTableBloomTest, EmptyFilterContainsNothing) {
  MemTableBloom bloom(1024);
  EXPECT_FALSE(bloom.MayContain("a"));
  EXPECT_FALSE(bloom.MayContain(""));
  EXPECT_FALSE(bloom.MayContain(std::string(1000, 'x')));
}

TEST(MemTableBloomTest, SizeIsRoundedUpToWholeBlocks) {
  EXPECT_EQ(MemTableBloom(1).bytes(), 64u);
  EXPECT_EQ(MemTableBloom(64).bytes(), 64u);
  EXPECT_EQ(MemTableBloom(65).bytes(), 128u);
  EXPECT_EQ(MemTableBloom(1 << 20).bytes(), size_t{1} << 20);
}

// No false negatives, ever, whatever the load (down to 0.5 bits per key).
TEST(MemTableBloomTest, EveryAddedKeyIsFound) {
  for (size_t bytes : {64u, 4096u, 1u << 20}) {
    MemTableBloom bloom(bytes);
    for (int i = 0; i < 100000; ++i) bloom.Add(absl::StrFormat("key%08d", i));
    bloom.Add("");
    for (int i = 0; i < 100000; ++i) {
      ASSERT_TRUE(bloom.MayContain(absl::StrFormat("key%08d", i)))
          << bytes << " " << i;
    }
    EXPECT_TRUE(bloom.MayContain(""));
  }
}

// At the default sizing (1/64 of a memtable, ~18 bits per key with 100-byte
// values) the filter must answer "no" for almost every absent key, or it
// saves nothing; at 10 bits per key a blocked filter with 6 probes should
// stay near 1%.
TEST(MemTableBloomTest, FalsePositiveRateAtTenBitsPerKey) {
  constexpr int kKeys = 50000;
  MemTableBloom bloom(kKeys * 10 / 8);
  for (int i = 0; i < kKeys; ++i) bloom.Add(absl::StrFormat("present%d", i));
  int false_positives = 0;
  constexpr int kProbes = 100000;
  for (int i = 0; i < kProbes; ++i) {
    false_positives += bloom.MayContain(absl::StrFormat("absent%d", i));
  }
  const double rate = static_cast<double>(false_positives) / kProbes;
  EXPECT_LT(rate, 0.03) << rate;
}

}  // namespace
}  // namespace strata::storage
