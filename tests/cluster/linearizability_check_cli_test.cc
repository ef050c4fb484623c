// strata-linearizability-check end to end: exit codes and output on files,
// as a Python harness would call it.

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cluster/linearizability.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster/history_gen.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::cluster {
namespace {

using ::testing::HasSubstr;
using strata::testing::BinaryPath;
using strata::testing::ProcessResult;
using strata::testing::RunProcess;

class LinearizabilityCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = BinaryPath("cluster/strata-linearizability-check");
    ASSERT_FALSE(binary_.empty()) << "STRATA_BINARY_DIR is not set";
  }

  std::string WriteHistory(const std::string& name, const History& h) {
    std::string text;
    for (const Operation& op : h) absl::StrAppend(&text, ToJsonLine(op), "\n");
    const std::string path = absl::StrCat(dir_.path(), "/", name);
    strata::testing::WriteFileOrDie(path, text);
    return path;
  }

  ProcessResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), binary_);
    return RunProcess(args, "", absl::Seconds(60));
  }

  static History Generated(uint64_t seed) {
    strata::testing::HistoryGenOptions g;
    g.seed = seed;
    g.operations = 4000;
    return strata::testing::GenerateHistory(g);
  }

  std::string binary_;
  strata::testing::TempDir dir_;
};

TEST_F(LinearizabilityCliTest, LinearizableHistoryExitsZero) {
  const History h = Generated(7);
  // Split across two files (one per half of the clients): one history.
  History a, b;
  for (const Operation& op : h) (op.client < 8 ? a : b).push_back(op);
  const ProcessResult r =
      Run({WriteHistory("a.jsonl", a), WriteHistory("b.jsonl", b)});
  ASSERT_TRUE(r.exited) << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("verdict: linearizable (4000 operations, 10 keys"));
  EXPECT_THAT(r.out, HasSubstr("key \"k3\": linearizable"));
}

TEST_F(LinearizabilityCliTest, ViolationExitsOneWithExplanation) {
  History h = Generated(8);
  const std::optional<size_t> bad = strata::testing::CorruptWithStaleRead(&h, 8);
  ASSERT_TRUE(bad.has_value());
  const ProcessResult r = Run({"--quiet", WriteHistory("h.jsonl", h)});
  ASSERT_TRUE(r.exited) << r.err;
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("key \"", h[*bad].key,
                                            "\": not linearizable")));
  EXPECT_THAT(r.out, HasSubstr("longest linearizable prefix"));
  EXPECT_THAT(r.out, HasSubstr("verdict: not linearizable"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("\": linearizable")));
}

TEST_F(LinearizabilityCliTest, TimeLimitExitsTwo) {
  // Every write concurrent with every read and with a read of a value never
  // written: exponential to refute.
  History h;
  for (int i = 0; i < 40; ++i) {
    Operation w;
    w.client = i;
    w.key = "k";
    w.type = OpType::kWrite;
    w.value = absl::StrCat("v", i);
    w.invoke_ns = 0;
    w.complete_ns = 1000;
    h.push_back(w);
    Operation r = w;
    r.client = 100 + i;
    r.type = OpType::kRead;
    r.value = absl::StrCat("v", (i + 1) % 40);
    h.push_back(r);
  }
  h.back().value = "never";
  const ProcessResult r =
      Run({"--time_limit=300ms", WriteHistory("hard.jsonl", h)});
  ASSERT_TRUE(r.exited) << r.err;
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("verdict: unknown"));
}

TEST_F(LinearizabilityCliTest, BadInputExitsTwo) {
  const std::string path = absl::StrCat(dir_.path(), "/bad.jsonl");
  strata::testing::WriteFileOrDie(path, "{\"client\": 0}\n");
  ProcessResult r = Run({path});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("bad.jsonl:1: "));

  r = Run({absl::StrCat(dir_.path(), "/missing.jsonl")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("missing.jsonl"));

  r = Run({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("usage"));

  r = Run({"--no_such_flag", path});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace strata::cluster
