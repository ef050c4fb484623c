// The `strata` CLI end to end against a real strata-server process.

#include <signal.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class StrataCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto p = ServerProcess::Start(dir_->path() + "/data");
    // No ASSERT here: a failure in SetUpTestSuite would only skip the
    // tests. SetUp fails each test with the reason instead.
    if (p.ok()) {
      server_ = p->release();
    } else {
      start_error_ = new std::string(p.status().ToString());
    }
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      server_->Signal(SIGTERM);
      auto exit = server_->Wait(absl::Seconds(10));
      EXPECT_TRUE(exit.ok() && exit->exited && exit->exit_code == 0);
    }
    delete server_;
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    ASSERT_FALSE(BinaryPath("client/strata").empty())
        << "STRATA_BINARY_DIR is not set (run through ctest)";
    ASSERT_NE(server_, nullptr)
        << (start_error_ != nullptr ? *start_error_ : "no server");
  }

  // Runs `strata --addr=<server> args...`.
  static ProcessResult Strata(std::vector<std::string> args,
                              const std::string& stdin_data = "") {
    args.insert(args.begin(), "--addr=" + server_->address());
    return StrataAt(std::move(args), stdin_data);
  }
  // Runs `strata args...` (no --addr added).
  static ProcessResult StrataAt(std::vector<std::string> args,
                                const std::string& stdin_data = "") {
    args.insert(args.begin(), BinaryPath("client/strata"));
    ProcessResult r = RunProcess(args, stdin_data, absl::Seconds(60));
    EXPECT_FALSE(r.timed_out);
    EXPECT_TRUE(r.exited) << "signal " << r.term_signal;
    return r;
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static std::string* start_error_;
};
TempDir* StrataCliTest::dir_ = nullptr;
ServerProcess* StrataCliTest::server_ = nullptr;
std::string* StrataCliTest::start_error_ = nullptr;

TEST_F(StrataCliTest, PutGetDelete) {
  ProcessResult r = Strata({"put", "cli/hello", "world"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  r = Strata({"get", "cli/hello"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "world\n");
  r = Strata({"delete", "cli/hello"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Strata({"get", "cli/hello"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("not found"));
  r = Strata({"delete", "cli/never-there"});
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(StrataCliTest, ValuesStartingWithDashAfterDoubleDash) {
  ProcessResult r = Strata({"put", "--", "cli/dash", "-v-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Strata({"get", "cli/dash"});
  EXPECT_EQ(r.out, "-v-\n");
}

TEST_F(StrataCliTest, ScanPrefixStartEndLimitKeysOnly) {
  for (const char* k : {"scan/a1", "scan/a2", "scan/b1", "scan/b2", "scan/c1",
                        "scam", "scao"}) {
    ASSERT_EQ(Strata({"put", k, absl::StrCat("v-", k)}).exit_code, 0);
  }
  ProcessResult r = Strata({"scan", "--prefix", "scan/"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "scan/a1\tv-scan/a1\nscan/a2\tv-scan/a2\nscan/b1\tv-scan/b1\n"
            "scan/b2\tv-scan/b2\nscan/c1\tv-scan/c1\n");

  r = Strata({"scan", "--start=scan/a2", "--end=scan/c1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "scan/a2\tv-scan/a2\nscan/b1\tv-scan/b1\nscan/b2\tv-scan/b2\n");

  r = Strata({"scan", "--prefix=scan/", "--limit=2", "--keys-only"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "scan/a1\nscan/a2\n");

  r = Strata({"scan", "--prefix=scan/b", "--keys_only"});
  EXPECT_EQ(r.out, "scan/b1\nscan/b2\n");

  r = Strata({"scan", "--start", "scao", "--end", "scao0"});
  EXPECT_EQ(r.out, "scao\tv-scao\n");

  r = Strata({"scan", "--prefix=nothing-has-this-prefix"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
}

TEST_F(StrataCliTest, ImportFromFileInBatches) {
  std::string data;
  for (int i = 0; i < 2500; ++i) {
    absl::StrAppend(&data, absl::StrFormat("imp/%04d\tvalue %d\twith tab\n", i, i));
  }
  data += "\n";  // Blank lines are skipped.
  const std::string path = dir_->path() + "/import.tsv";
  WriteFileOrDie(path, data);
  ProcessResult r = Strata({"import", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("imported 2500 pairs"));
  EXPECT_THAT(r.out, HasSubstr("in 3 writes"));  // <= 1000 per Write.
  r = Strata({"get", "imp/1234"});
  EXPECT_EQ(r.out, "value 1234\twith tab\n");
  r = Strata({"scan", "--prefix=imp/", "--keys_only"});
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2500);
}

TEST_F(StrataCliTest, ImportFromStdin) {
  ProcessResult r = Strata({"import", "-"}, "stdin/a\t1\nstdin/b\t2\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("imported 2 pairs"));
  r = Strata({"scan", "--prefix=stdin/"});
  EXPECT_EQ(r.out, "stdin/a\t1\nstdin/b\t2\n");
}

TEST_F(StrataCliTest, ImportRejectsBadLinesAndMissingFiles) {
  ProcessResult r = Strata({"import", "-"}, "bad/a\t1\nno tab here\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("<stdin>:2"));
  r = Strata({"get", "bad/a"});
  EXPECT_EQ(r.exit_code, 1);  // The batch before the bad line was not sent.
  r = Strata({"import", dir_->path() + "/does-not-exist"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("cannot open"));
}

TEST_F(StrataCliTest, HealthPrintsServing) {
  ProcessResult r = Strata({"health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
}

TEST_F(StrataCliTest, ServerErrorsExitThreeWithTheStatus) {
  ProcessResult r = Strata({"put", std::string(9000, 'k'), "v"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("strata: INVALID_ARGUMENT: key is 9000 bytes; "
                               "the limit is 8192 (--max_key_bytes)"));
}

TEST_F(StrataCliTest, UsageErrorsExitTwo) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {},
           {"frobnicate"},
           {"get"},
           {"get", "a", "b"},
           {"put", "only-key"},
           {"delete"},
           {"import"},
           {"health", "extra"},
           {"scan", "positional"},
           {"scan", "--prefix=a", "--start=b"},
           {"get", "k", "--limit=3"},
           {"--no_such_flag", "get", "k"},
           {"--limit=abc", "scan"},
           {"--timeout=0", "get", "k"},
       }) {
    ProcessResult r = Strata(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << "\n" << r.err;
    EXPECT_FALSE(r.err.empty()) << absl::StrJoin(args, " ");
  }
}

TEST_F(StrataCliTest, HelpExitsZero) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"help"}, {"--help"}}) {
    ProcessResult r = StrataAt(args);
    EXPECT_EQ(r.exit_code, 0) << args[0];
    EXPECT_THAT(r.out, HasSubstr("usage: strata")) << args[0];
    EXPECT_THAT(r.out, HasSubstr("import FILE")) << args[0];
  }
}

TEST_F(StrataCliTest, ServerNotRunningExitsThree) {
  // A port that was just used by a stopped server.
  TempDir dir;
  auto p = ServerProcess::Start(dir.path() + "/data");
  ASSERT_TRUE(p.ok()) << p.status();
  const std::string address = (*p)->address();
  (*p)->Signal(SIGTERM);
  ASSERT_TRUE((*p)->Wait(absl::Seconds(10)).ok());
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"get", "k"}, {"put", "k", "v"}, {"health"}, {"scan"}}) {
    std::vector<std::string> full = {"--addr=" + address, "--timeout=5"};
    full.insert(full.end(), args.begin(), args.end());
    ProcessResult r = StrataAt(full);
    EXPECT_EQ(r.exit_code, 3) << args[0];
    EXPECT_THAT(r.err, StartsWith("strata: UNAVAILABLE: ")) << args[0];
  }
}

}  // namespace
}  // namespace strata::testing
