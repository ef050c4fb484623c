#include "client/cli_util.h"

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

ABSL_FLAG(bool, dashed_name, false, "a flag for NormalizeFlagDashes");

namespace strata::cli {
namespace {

TEST(PrefixSuccessorTest, IncrementsTheLastByte) {
  EXPECT_EQ(PrefixSuccessor("abc"), "abd");
  EXPECT_EQ(PrefixSuccessor("lib"), "lic");
  EXPECT_EQ(PrefixSuccessor(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(PrefixSuccessor(std::string("a\xfe", 2)), std::string("a\xff", 2));
}

TEST(PrefixSuccessorTest, UnboundedWhenNoSuccessorExists) {
  EXPECT_EQ(PrefixSuccessor(""), "");
  EXPECT_EQ(PrefixSuccessor(std::string("\xff\xff", 2)), "");
}

TEST(ParseImportLineTest, SplitsAtTheFirstTab) {
  ASSERT_OK_AND_ASSIGN(Mutation m, ParseImportLine("key\tvalue"));
  EXPECT_EQ(m.op, Mutation::Op::kPut);
  EXPECT_EQ(m.key, "key");
  EXPECT_EQ(m.value, "value");
  ASSERT_OK_AND_ASSIGN(m, ParseImportLine("k\tv\twith\ttabs"));
  EXPECT_EQ(m.value, "v\twith\ttabs");
  ASSERT_OK_AND_ASSIGN(m, ParseImportLine("k\t"));
  EXPECT_EQ(m.value, "");
}

TEST(ParseImportLineTest, RejectsMissingTabAndEmptyKey) {
  EXPECT_TRUE(absl::IsInvalidArgument(ParseImportLine("no tab").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseImportLine("\tvalue").status()));
}

TEST(ImportBatcherTest, SplitsByCount) {
  ImportBatcher b(3, 1 << 20);
  std::vector<size_t> sizes;
  for (int i = 0; i < 10; ++i) {
    Mutation m = Mutation::Put("k" + std::to_string(i), "v");
    if (b.WouldOverflow(m)) sizes.push_back(b.Take().size());
    b.Add(std::move(m));
  }
  sizes.push_back(b.Take().size());
  EXPECT_EQ(sizes, std::vector<size_t>({3, 3, 3, 1}));
  EXPECT_TRUE(b.empty());
}

TEST(ImportBatcherTest, SplitsByBytesAndLargePairGoesAlone) {
  ImportBatcher b(1000, 1000);
  std::vector<size_t> sizes;
  for (size_t value_bytes : {300, 300, 300, 5000, 300}) {
    Mutation m = Mutation::Put("k", std::string(value_bytes, 'v'));
    if (b.WouldOverflow(m)) sizes.push_back(b.Take().size());
    b.Add(std::move(m));
  }
  sizes.push_back(b.Take().size());
  EXPECT_EQ(sizes, std::vector<size_t>({3, 1, 1}));
}

TEST(NormalizeFlagDashesTest, RewritesOnlyRegisteredFlagsBeforeDoubleDash) {
  std::vector<std::string> args = {"strata",        "--dashed-name",
                                   "--dashed-name=true", "--not-a-flag",
                                   "-x-y",          "--",
                                   "--dashed-name"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  NormalizeFlagDashes(static_cast<int>(argv.size()), argv.data());
  EXPECT_STREQ(argv[1], "--dashed_name");
  EXPECT_STREQ(argv[2], "--dashed_name=true");
  EXPECT_STREQ(argv[3], "--not-a-flag");
  EXPECT_STREQ(argv[4], "-x-y");
  EXPECT_STREQ(argv[6], "--dashed-name");  // After "--": a positional.
}

}  // namespace
}  // namespace strata::cli
