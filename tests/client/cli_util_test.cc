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

TEST(TxnScriptTest, SplitsWordsWithQuotesAndEscapes) {
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> w,
                       SplitTxnWords("  put  \"a b\" \"\\x00\\t\\\"\" x "));
  EXPECT_EQ(w, (std::vector<std::string>{"put", "a b", std::string("\0\t\"", 3),
                                         "x"}));
  ASSERT_OK_AND_ASSIGN(w, SplitTxnWords("\"\""));
  EXPECT_EQ(w, std::vector<std::string>{""});
  EXPECT_TRUE(absl::IsInvalidArgument(SplitTxnWords("put \"open").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(SplitTxnWords("\"\\q\"").status()));
}

TEST(TxnScriptTest, ParsesEveryStatement) {
  ASSERT_OK_AND_ASSIGN(TxnScript s, ParseTxnScript(R"(
# comment
compare k version = 0
compare k create != 3
compare-range a "" mod > 7
compare-prefix p/ value < "zz"
then put k v
then get k
else delete k
else scan a b 10
else scan-prefix p/
)"));
  ASSERT_EQ(s.compares.size(), 4u);
  EXPECT_EQ(s.compares[0].target, Compare::Target::kVersion);
  EXPECT_EQ(s.compares[0].result, Compare::Result::kEqual);
  EXPECT_EQ(s.compares[1].target, Compare::Target::kCreate);
  EXPECT_EQ(s.compares[1].result, Compare::Result::kNotEqual);
  EXPECT_EQ(s.compares[1].number, 3);
  EXPECT_EQ(s.compares[2].range_end, std::string(1, '\0'));
  EXPECT_EQ(s.compares[2].result, Compare::Result::kGreater);
  EXPECT_EQ(s.compares[3].key, "p/");
  EXPECT_EQ(s.compares[3].range_end, "p0");
  EXPECT_EQ(s.compares[3].value, "zz");
  EXPECT_EQ(s.compares[3].result, Compare::Result::kLess);
  ASSERT_EQ(s.success.size(), 2u);
  EXPECT_EQ(s.success[0].type, TxnOp::Type::kPut);
  EXPECT_EQ(s.success[0].value, "v");
  EXPECT_EQ(s.success[1].type, TxnOp::Type::kGet);
  ASSERT_EQ(s.failure.size(), 3u);
  EXPECT_EQ(s.failure[0].type, TxnOp::Type::kDelete);
  EXPECT_EQ(s.failure[1].scan.limit, 10u);
  EXPECT_EQ(s.failure[1].scan.end, "b");
  EXPECT_EQ(s.failure[2].scan.end, "p0");
}

TEST(TxnScriptTest, ParsesTypedOpsAndTheIntCompare) {
  ASSERT_OK_AND_ASSIGN(TxnScript s, ParseTxnScript(R"(
compare stock int > 0
compare-prefix c/ int < -5
then incr stock -1
then incr sold 1
then json-get order "/a~1b/0"
then json-get order
else json-merge order "{\"paid\": true}"
else json-patch order "[{\"op\": \"remove\", \"path\": \"/a\"}]"
)"));
  ASSERT_EQ(s.compares.size(), 2u);
  EXPECT_EQ(s.compares[0].target, Compare::Target::kInt64Value);
  EXPECT_EQ(s.compares[0].result, Compare::Result::kGreater);
  EXPECT_EQ(s.compares[0].number, 0);
  EXPECT_EQ(s.compares[1].target, Compare::Target::kInt64Value);
  EXPECT_EQ(s.compares[1].number, -5);
  EXPECT_EQ(s.compares[1].range_end, "c0");
  ASSERT_EQ(s.success.size(), 4u);
  EXPECT_EQ(s.success[0].type, TxnOp::Type::kIncrement);
  EXPECT_EQ(s.success[0].key, "stock");
  EXPECT_EQ(s.success[0].delta, -1);
  EXPECT_FALSE(s.success[0].must_exist);
  EXPECT_EQ(s.success[1].delta, 1);
  EXPECT_EQ(s.success[2].type, TxnOp::Type::kJsonGet);
  EXPECT_EQ(s.success[2].pointer, "/a~1b/0");
  EXPECT_EQ(s.success[3].pointer, "");
  ASSERT_EQ(s.failure.size(), 2u);
  EXPECT_EQ(s.failure[0].type, TxnOp::Type::kJsonUpdate);
  EXPECT_EQ(s.failure[0].patch_kind, JsonPatchKind::kMergePatch);
  EXPECT_EQ(s.failure[0].value, R"({"paid": true})");
  EXPECT_EQ(s.failure[1].type, TxnOp::Type::kJsonUpdate);
  EXPECT_EQ(s.failure[1].patch_kind, JsonPatchKind::kJsonPatch);
  EXPECT_EQ(s.failure[1].value, R"([{"op": "remove", "path": "/a"}])");
}

TEST(TxnScriptTest, ErrorsNameTheLine) {
  const struct {
    const char* script;
    const char* message;
  } cases[] = {
      {"frob k", "line 1: unknown statement 'frob'"},
      {"\ncompare k version =", "line 2: compare takes KEY TARGET OP X"},
      {"compare k size = 1", "line 1: unknown target 'size'"},
      {"compare k version >= 1", "line 1: unknown operator '>='"},
      {"compare k mod = x", "line 1: mod compares a number, not 'x'"},
      {"then put k", "line 1: then takes get KEY, put KEY VALUE"},
      {"else scan a b c", "line 1: bad LIMIT 'c'"},
      {"then get \"k", "line 1: unterminated quote"},
      {"compare k int = ten", "line 1: int compares a number, not 'ten'"},
      {"then incr k", "line 1: then takes get KEY"},
      {"then incr k 1.5", "line 1: incr: DELTA must be an integer, not '1.5'"},
      {"else json-merge k", "json-merge KEY PATCH"},
      {"then json-get k /a /b", "json-get KEY [POINTER]"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<TxnScript> s = ParseTxnScript(c.script);
    ASSERT_TRUE(absl::IsInvalidArgument(s.status())) << c.script;
    EXPECT_NE(s.status().message().find(c.message), std::string::npos)
        << s.status().message();
  }
}

}  // namespace
}  // namespace strata::cli
