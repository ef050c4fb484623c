// The `strata` CLI end to end against a real strata-server process.

#include <signal.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/cli_process.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

constexpr absl::Duration kWait = absl::Seconds(30);

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

  // `put -w KEY VALUE`: the revision it committed at (-1 on failure).
  static int64_t PutRevision(const std::string& key,
                             const std::string& value) {
    ProcessResult r = Strata({"put", "-w", key, value});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    int64_t revision = -1;
    EXPECT_TRUE(absl::SimpleAtoi(absl::StripPrefix(absl::StripSuffix(r.out, "\n"),
                                                   "revision "),
                                 &revision))
        << r.out;
    return revision;
  }

  // Starts `strata --addr=<address> args...` in the background.
  std::unique_ptr<CliProcess> StartCli(const std::string& address,
                                       std::vector<std::string> args) {
    args.insert(args.begin(), "--addr=" + address);
    auto p = CliProcess::Start(
        args, absl::StrFormat("%s/cli-%d.stderr", dir_->path(), ++clis_));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static std::string* start_error_;
  int clis_ = 0;
};
TempDir* StrataCliTest::dir_ = nullptr;
ServerProcess* StrataCliTest::server_ = nullptr;
std::string* StrataCliTest::start_error_ = nullptr;

// `strata txn`: a lock taken with compare-and-put, read back in the same
// transaction; the second attempt runs the else branch and exits 1.
TEST_F(StrataCliTest, TxnRunsOneBranchFromStdin) {
  const std::string script = R"(# take the lock if nobody holds it
compare cli-txn/lock version = 0
then put cli-txn/lock "node 1"
then get cli-txn/lock
then scan-prefix cli-txn/
else get cli-txn/lock
else get cli-txn/missing
)";
  ProcessResult r = Strata({"txn", "-w"}, script);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const int64_t rev = PutRevision("cli-txn/other", "x") - 1;
  EXPECT_EQ(r.out, absl::StrFormat("SUCCESS\nOK\ncli-txn/lock\tnode 1\n"
                                   "cli-txn/lock\tnode 1\nrevision %d\n",
                                   rev));
  r = Strata({"txn"}, script);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "FAILURE\ncli-txn/lock\tnode 1\n(not found) "
                   "cli-txn/missing\n");
  // Range compares; a file argument.
  const std::string file = dir_->path() + "/txn.txt";
  WriteFileOrDie(file,
                 "compare-prefix cli-txn/ mod > 0\n"
                 "compare-range cli-txn/a \"\" value != \"\\x00\"\n"
                 "then delete cli-txn/other\n");
  r = Strata({"txn", file});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SUCCESS\nOK\n");
  r = Strata({"get", "cli-txn/other"});
  EXPECT_EQ(r.exit_code, 1);
}

// `strata txn` with typed ops: a numeric compare on a counter guards an
// increment and a JSON update; each prints its result.
TEST_F(StrataCliTest, TxnRunsTypedOpsAndPrintsTheirResults) {
  ProcessResult r = Strata({"put", "--type=int64", "cli-ttxn/stock", "10"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Strata({"put", "--type=json", "cli-ttxn/order", R"({"qty": 1})"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string script = R"(compare cli-ttxn/stock int > 9
then incr cli-ttxn/stock -1
then incr cli-ttxn/sold 1
then json-merge cli-ttxn/order "{\"paid\": true}"
then json-get cli-ttxn/order /paid
else json-patch cli-ttxn/order "[{\"op\": \"replace\", \"path\": \"/qty\", \"value\": 0}]"
else json-get cli-ttxn/order
)";
  r = Strata({"txn"}, script);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SUCCESS\n9\n1\n{\"paid\":true,\"qty\":1}\ntrue\n");
  // Stock is 9 now (10 > 9 numerically; as bytes "10" < "9"): else runs.
  r = Strata({"txn"}, script);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "FAILURE\n{\"paid\":true,\"qty\":0}\n"
                   "{\"paid\":true,\"qty\":0}\n");
  // A typed op that fails fails the whole txn: exit 3, nothing written.
  r = Strata({"txn"}, "then incr cli-ttxn/sold 1\n"
                      "then incr cli-ttxn/order 1\n");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(r.err, HasSubstr("success op 1: "));
  r = Strata({"get", "cli-ttxn/sold"});
  EXPECT_EQ(r.out, "1\n");
}

TEST_F(StrataCliTest, TxnScriptErrorsNameTheLine) {
  ProcessResult r = Strata({"txn"}, "compare k version = 0\nthen frob k\n");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("txn <stdin>: line 2: then takes get KEY"));
  // A server-side limit: INVALID_ARGUMENT, exit 3.
  r = Strata({"txn"}, "then put k 1\nthen put k 2\n");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(r.err, HasSubstr("a second time"));
}

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

TEST_F(StrataCliTest, TtlAndLeaseCommands) {
  ProcessResult r = Strata({"put", "--ttl=1h", "cli/ttl", "v"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Strata({"get", "cli/ttl"}).out, "v\n");
  EXPECT_EQ(Strata({"put", "--ttl=-1s", "cli/ttl", "v"}).exit_code, 2);
  EXPECT_EQ(Strata({"get", "--ttl=1s", "cli/ttl"}).exit_code, 2);  // put only.
  r = Strata({"lease", "grant", "60s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id(absl::StripSuffix(r.out, "\n"));
  r = Strata({"put", "--lease=" + id, "cli/leased", "v"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Strata({"lease", "ttl", id, "--keys"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("lease " + id + " ttl "));
  EXPECT_THAT(r.out, HasSubstr(" granted 60\ncli/leased\n"));
  EXPECT_THAT(Strata({"lease", "list"}).out, HasSubstr(id + "\n"));
  r = Strata({"lease", "revoke", id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("revision "));
  EXPECT_EQ(Strata({"get", "cli/leased"}).exit_code, 1);
  r = Strata({"lease", "revoke", id});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(Strata({"put", "--lease=" + id, "cli/late", "v"}).exit_code, 3);
  EXPECT_EQ(Strata({"lease", "grant", "0s"}).exit_code, 2);
  EXPECT_EQ(Strata({"lease", "keepalive", "x"}).exit_code, 2);
}

TEST_F(StrataCliTest, NamespaceCommandsAndTheNamespaceFlag) {
  ProcessResult r = Strata(
      {"ns", "create", "cli/ns-a", "--quota_bytes=100", "--quota_keys=5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("revision "));
  ASSERT_EQ(Strata({"ns", "create", "cli/ns-b"}).exit_code, 0);
  r = Strata({"ns", "create", "cli/ns-a"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("ALREADY_EXISTS"));
  EXPECT_EQ(Strata({"ns", "list", "cli/ns-"}).out,
            "cli/ns-a\t100\t5\ncli/ns-b\t0\t0\n");
  EXPECT_EQ(Strata({"-n", "cli/ns-a", "put", "cli/k", "A"}).exit_code, 0);
  EXPECT_EQ(Strata({"--namespace=cli/ns-b", "put", "cli/k", "B"}).exit_code,
            0);
  EXPECT_EQ(Strata({"-n", "cli/ns-a", "get", "cli/k"}).out, "A\n");
  EXPECT_EQ(Strata({"-n", "cli/ns-b", "scan", "--prefix=cli/"}).out,
            "cli/k\tB\n");
  EXPECT_EQ(Strata({"get", "cli/k"}).exit_code, 1);  // Not in the default.
  r = Strata({"ns", "update", "cli/ns-b", "--quota_keys=9"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Strata({"ns", "list", "cli/ns-b"}).out, "cli/ns-b\t0\t9\n");
  EXPECT_EQ(Strata({"ns", "delete", "cli/ns-a"}).exit_code, 0);
  r = Strata({"-n", "cli/ns-a", "get", "cli/k"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(Strata({"ns", "delete", "cli/ns-a"}).exit_code, 3);
  EXPECT_EQ(Strata({"ns", "create", "bad name"}).exit_code, 3);
  EXPECT_EQ(Strata({"ns", "rename", "x"}).exit_code, 2);
  EXPECT_EQ(Strata({"put", "--quota_keys=1", "k", "v"}).exit_code, 2);
  EXPECT_EQ(
      Strata({"-n", "cli/ns-a", "--namespace=cli/ns-b", "get", "k"}).exit_code,
      2);
}

// ns update changes only the quotas it is given: one flag once reset the
// other quota to 0 (unlimited). An explicit 0 still means unlimited, and an
// update with no quota at all is a usage error.
TEST_F(StrataCliTest, NamespaceUpdateKeepsTheQuotaItIsNotGiven) {
  ASSERT_EQ(Strata({"ns", "create", "cli/upd", "--quota_bytes=1000",
                    "--quota_keys=10"})
                .exit_code,
            0);
  ProcessResult r = Strata({"ns", "update", "cli/upd", "--quota_keys=20"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Strata({"ns", "list", "cli/upd"}).out, "cli/upd\t1000\t20\n");
  r = Strata({"ns", "update", "cli/upd", "--quota_bytes=2000"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Strata({"ns", "list", "cli/upd"}).out, "cli/upd\t2000\t20\n");
  r = Strata({"ns", "update", "cli/upd", "--quota_keys=0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Strata({"ns", "list", "cli/upd"}).out, "cli/upd\t2000\t0\n");
  r = Strata({"ns", "update", "cli/upd", "--quota_bytes=5", "--quota_keys=6"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Strata({"ns", "list", "cli/upd"}).out, "cli/upd\t5\t6\n");
  r = Strata({"ns", "update", "cli/upd"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--quota_bytes"));
  EXPECT_EQ(Strata({"ns", "list", "cli/upd"}).out, "cli/upd\t5\t6\n");
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
  // The names a readiness probe asks about (docs/operations.md).
  for (const char* service : {"strata.v1.KV", "strata.v1.KV.write"}) {
    r = Strata({"health", service});
    EXPECT_EQ(r.exit_code, 0) << service << ": " << r.err;
    EXPECT_EQ(r.out, "SERVING\n") << service;
  }
  r = Strata({"health", "no.such.Service"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
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
           {"health", "strata.v1.KV", "extra"},
           {"scan", "positional"},
           {"scan", "--prefix=a", "--start=b"},
           {"get", "k", "--limit=3"},
           {"--no_such_flag", "get", "k"},
           {"--limit=abc", "scan"},
           {"--timeout=0", "get", "k"},
           {"get", "--revision=-1", "k"},
           {"get", "--reverse", "k"},
           {"put", "--revision=3", "k", "v"},
           {"scan", "--from=3"},
           {"batch-get"},
           {"delete-range"},
           {"delete-range", "a"},
           {"delete-range", "b", "a"},
           {"delete-range", "a", ""},
           {"delete-range", "a", "b", "--prefix=p"},
           {"delete-range", "--all", "--prefix=p"},
           {"compact"},
           {"compact", "x"},
           {"compact", "0"},
           {"compact", "1", "2"},
           {"watch"},
           {"watch", "a", "b"},
           {"watch", "k", "--prefix=p"},
           {"watch", "--all", "k"},
           {"watch", "k", "--from=-1"},
           {"watch", "k", "--resume_timeout=-1"},
           {"watch", "k", "--limit=1"},
           {"health", "-w"},
           {"put", "--type=yaml", "k", "v"},
           {"get", "--type=json", "k"},
           {"incr"},
           {"incr", "k", "x"},
           {"incr", "k", "1", "2"},
           {"incr", "--json_patch", "k"},
           {"json"},
           {"json", "get"},
           {"json", "put", "k", "{}"},
           {"json", "patch", "k"},
           {"json", "get", "k", "/a", "extra"},
           {"json", "--must_exist", "get", "k"},
       }) {
    ProcessResult r = Strata(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << "\n" << r.err;
    EXPECT_FALSE(r.err.empty()) << absl::StrJoin(args, " ");
  }
}

TEST_F(StrataCliTest, TypedPutGetIncrAndJson) {
  ProcessResult r =
      Strata({"put", "--type", "json", "cli/doc", R"({"a": 1, "b": {"c": [1, 2]}})"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Strata({"get", "cli/doc"});
  EXPECT_EQ(r.out, "{\"a\":1,\"b\":{\"c\":[1,2]}}\n");  // Normalized.
  r = Strata({"get", "-w", "cli/doc"});
  EXPECT_THAT(r.out, HasSubstr("version 1, type json (read at revision"));
  r = Strata({"json", "get", "cli/doc", "/b/c/1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "2\n");
  r = Strata({"json", "patch", "cli/doc", R"({"a":2,"b":null})"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"a\":2}\n");
  r = Strata({"json", "patch", "-w", "--json_patch", "cli/doc",
              R"([{"op":"add","path":"/tags","value":["x"]}])"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("{\"a\":2,\"tags\":[\"x\"]}\nrevision "));

  r = Strata({"incr", "cli/n"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1\n");
  r = Strata({"incr", "cli/n", "41"});
  EXPECT_EQ(r.out, "42\n");
  r = Strata({"incr", "cli/n", "--", "-50"});
  EXPECT_EQ(r.out, "-8\n");
  r = Strata({"get", "-w", "cli/n"});
  EXPECT_THAT(r.out, HasSubstr("cli/n = -8\n"));
  EXPECT_THAT(r.out, HasSubstr("version 3, type int64"));
  r = Strata({"put", "--type=text", "cli/t", "caf\xc3\xa9"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(StrataCliTest, TypedErrorsExitOneForMissingAndThreeOtherwise) {
  ProcessResult r = Strata({"incr", "--must_exist", "cli/absent"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("strata: key not found"));
  r = Strata({"json", "get", "cli/absent"});
  EXPECT_EQ(r.exit_code, 1);
  ASSERT_EQ(Strata({"put", "--type=json", "cli/d2", "{}"}).exit_code, 0);
  r = Strata({"json", "get", "cli/d2", "/x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("pointer \"/x\" does not resolve"));
  r = Strata({"incr", "cli/d2"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("strata: FAILED_PRECONDITION: Increment: the "
                               "key holds a JSON value, not INT64"));
  r = Strata({"put", "--type=int64", "cli/i", "1.5"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("strata: INVALID_ARGUMENT: value is not an INT64"));
  r = Strata({"json", "patch", "--json_patch", "cli/d2",
              R"([{"op":"test","path":"/a","value":1}])"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("FAILED_PRECONDITION"));
}

TEST_F(StrataCliTest, HelpExitsZero) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"help"}, {"--help"}}) {
    ProcessResult r = StrataAt(args);
    EXPECT_EQ(r.exit_code, 0) << args[0];
    EXPECT_THAT(r.out, HasSubstr("usage: strata")) << args[0];
    EXPECT_THAT(r.out, HasSubstr("import FILE")) << args[0];
    EXPECT_THAT(r.out, HasSubstr("watch KEY | --prefix=P | --all")) << args[0];
  }
}

TEST_F(StrataCliTest, PutAndDeleteWithWPrintTheirRevision) {
  const int64_t first = PutRevision("rev/a", "1");
  ASSERT_GT(first, 0);
  ProcessResult r = Strata({"put", "-w", "rev/a", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrFormat("revision %d\n", first + 1));
  r = Strata({"delete", "-w", "rev/a"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrFormat("revision %d\n", first + 2));
  // Nothing to delete: nothing written, the current revision.
  r = Strata({"delete", "-w", "rev/a"});
  EXPECT_EQ(r.out, absl::StrFormat("revision %d\n", first + 2));
  // Without -w, nothing is printed.
  r = Strata({"put", "rev/b", "1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(StrataCliTest, GetWithWPrintsMetadataAndGetReadsAtARevision) {
  ASSERT_EQ(Strata({"put", "meta/before", "x"}).exit_code, 0);
  const int64_t created = PutRevision("meta/cfg", "a");
  const int64_t modified = PutRevision("meta/cfg", "b");
  ProcessResult r = Strata({"get", "-w", "meta/cfg"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrFormat(
                       "meta/cfg = b\ncreate_revision %d, mod_revision %d, "
                       "version 2 (read at revision %d)\n",
                       created, modified, modified));
  r = Strata({"get", absl::StrFormat("--revision=%d", created), "meta/cfg"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "a\n");
  r = Strata({"get", "-w", "--revision", std::to_string(created), "meta/cfg"});
  EXPECT_EQ(r.out, absl::StrFormat(
                       "meta/cfg = a\ncreate_revision %d, mod_revision %d, "
                       "version 1 (read at revision %d)\n",
                       created, created, created));
  // Missing at that revision.
  r = Strata({"get", "-w", absl::StrFormat("--revision=%d", created - 1),
              "meta/cfg"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr(absl::StrFormat(
                         "key not found (read at revision %d)", created - 1)));
  // Beyond the current revision.
  r = Strata({"get", "--revision=999999999", "meta/cfg"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, StartsWith("strata: OUT_OF_RANGE: "));
}

TEST_F(StrataCliTest, ScanAtARevisionInReverse) {
  ASSERT_EQ(Strata({"put", "rscan/a", "1"}).exit_code, 0);
  ASSERT_EQ(Strata({"put", "rscan/b", "1"}).exit_code, 0);
  const int64_t before = PutRevision("rscan/c", "1");
  ASSERT_EQ(Strata({"put", "rscan/b", "2"}).exit_code, 0);
  ASSERT_EQ(Strata({"delete", "rscan/a"}).exit_code, 0);
  ProcessResult r = Strata({"scan", "--prefix=rscan/"});
  EXPECT_EQ(r.out, "rscan/b\t2\nrscan/c\t1\n");
  r = Strata({"scan", "--prefix=rscan/",
              absl::StrFormat("--revision=%d", before)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "rscan/a\t1\nrscan/b\t1\nrscan/c\t1\n");
  r = Strata({"scan", "--prefix=rscan/", "--revision", std::to_string(before),
              "--reverse", "--limit=2"});
  EXPECT_EQ(r.out, "rscan/c\t1\nrscan/b\t1\n");
  r = Strata({"scan", "--start=rscan/a", "--end=rscan/c", "--reverse",
              "--keys_only", "-w",
              absl::StrFormat("--revision=%d", before)});
  EXPECT_EQ(r.out, absl::StrFormat("rscan/b\nrscan/a\n(read at revision %d)\n",
                                   before));
  r = Strata({"scan", "--prefix=rscan/", "--revision=999999999"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, StartsWith("strata: OUT_OF_RANGE: "));
}

TEST_F(StrataCliTest, BatchGetReadsKeysAtOneRevision) {
  const int64_t first = PutRevision("bg/a", "1");
  ASSERT_EQ(Strata({"put", "bg/b", "1"}).exit_code, 0);
  const int64_t last = PutRevision("bg/a", "2");
  ProcessResult r = Strata({"batch-get", "bg/b", "bg/a"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "bg/b\t1\nbg/a\t2\n");
  r = Strata({"batch-get", "-w", absl::StrFormat("--revision=%d", first),
              "bg/a", "bg/b", "bg/missing"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, absl::StrFormat("bg/a\t1\n(read at revision %d)\n", first));
  EXPECT_THAT(r.err, HasSubstr("strata: key not found: bg/b\n"));
  EXPECT_THAT(r.err, HasSubstr("strata: key not found: bg/missing\n"));
  r = Strata({"batch-get", "-w", "bg/a"});
  EXPECT_EQ(r.out, absl::StrFormat("bg/a\t2\n(read at revision %d)\n", last));
}

TEST_F(StrataCliTest, DeleteRangeNeedsExplicitBounds) {
  for (const char* k : {"dr/a", "dr/b1", "dr/b2", "dr/c", "drx"}) {
    ASSERT_EQ(Strata({"put", k, absl::StrCat("v-", k)}).exit_code, 0);
  }
  ProcessResult r = Strata({"delete-range", "dr/b", "dr/c", "--prev_kv", "-w"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const int64_t deleted_at = PutRevision("dr/marker", "x") - 1;
  EXPECT_EQ(r.out, absl::StrFormat(
                       "dr/b1\tv-dr/b1\ndr/b2\tv-dr/b2\ndeleted 2\n"
                       "revision %d\n",
                       deleted_at));
  r = Strata({"delete-range", "dr/b", "dr/c"});
  EXPECT_EQ(r.out, "deleted 0\n");
  r = Strata({"delete-range", "--prefix=dr/"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deleted 3\n");  // dr/a, dr/c, dr/marker; not drx.
  r = Strata({"scan", "--start=dr", "--end=dz"});
  EXPECT_EQ(r.out, "drx\tv-drx\n");
}

TEST_F(StrataCliTest, DeleteRangeAllDeletesEverything) {
  TempDir dir;  // A server of its own: this deletes every key.
  auto p = ServerProcess::Start(dir.path() + "/data");
  ASSERT_TRUE(p.ok()) << p.status();
  for (const char* k : {"a", "b", "c"}) {
    ASSERT_EQ(StrataAt({"--addr=" + (*p)->address(), "put", k, "v"}).exit_code,
              0);
  }
  ProcessResult r = StrataAt({"--addr=" + (*p)->address(), "delete-range"});
  EXPECT_EQ(r.exit_code, 2);  // Not without --all.
  r = StrataAt({"--addr=" + (*p)->address(), "delete-range", "--all"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deleted 3\n");
  r = StrataAt({"--addr=" + (*p)->address(), "scan"});
  EXPECT_EQ(r.out, "");
}

TEST_F(StrataCliTest, CompactMakesOlderRevisionsUnreadable) {
  const int64_t old_revision = PutRevision("cmp/k", "old");
  const int64_t compact_at = PutRevision("cmp/k", "new");
  ProcessResult r = Strata({"compact", std::to_string(compact_at)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  r = Strata({"get", absl::StrFormat("--revision=%d", old_revision), "cmp/k"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, StartsWith("strata: OUT_OF_RANGE: "));
  EXPECT_THAT(r.err, HasSubstr(absl::StrFormat("compacted revision %d",
                                               compact_at)));
  r = Strata({"get", absl::StrFormat("--revision=%d", compact_at), "cmp/k"});
  EXPECT_EQ(r.out, "new\n");
  // Not above the compacted revision.
  r = Strata({"compact", std::to_string(compact_at)});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, StartsWith("strata: OUT_OF_RANGE: "));
}

TEST_F(StrataCliTest, WatchPrintsEventsAsAnotherClientWritesUntilSigint) {
  const int64_t start = PutRevision("w/other", "x") + 1;
  std::unique_ptr<CliProcess> watch =
      StartCli(server_->address(), {"watch", "--prefix=w/", "--from",
                                    std::to_string(start)});
  ASSERT_NE(watch, nullptr);
  ASSERT_EQ(Strata({"put", "w/a", "1"}).exit_code, 0);          // start
  ASSERT_EQ(Strata({"put", "x/not-watched", "1"}).exit_code, 0);
  ASSERT_EQ(Strata({"put", "w/a", "two words"}).exit_code, 0);  // start + 2
  ASSERT_EQ(Strata({"delete", "w/a"}).exit_code, 0);            // start + 3
  EXPECT_THAT(watch->WaitForLines(3, kWait),
              ElementsAre(absl::StrFormat("PUT w/a 1 %d", start),
                          absl::StrFormat("PUT w/a two words %d", start + 2),
                          absl::StrFormat("DELETE w/a %d", start + 3)))
      << watch->err();
  // Each line is flushed as it comes: one more write, one more line.
  ASSERT_EQ(Strata({"put", "w/b", "2"}).exit_code, 0);
  EXPECT_EQ(watch->WaitForLines(4, kWait).back(),
            absl::StrFormat("PUT w/b 2 %d", start + 4));
  watch->Signal(SIGINT);
  auto exit = watch->Wait(kWait);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited) << "signal " << exit->term_signal;
  EXPECT_EQ(exit->exit_code, 0) << watch->err();
  EXPECT_EQ(watch->err(), "");
}

TEST_F(StrataCliTest, WatchFromNowStopsOnSigterm) {
  std::unique_ptr<CliProcess> watch =
      StartCli(server_->address(), {"watch", "now/k"});
  ASSERT_NE(watch, nullptr);
  // The watch starts at "now", which this test cannot observe: write until
  // the first line shows up (bounded), then check what follows it.
  std::vector<std::string> lines;
  for (int i = 0; i < 200 && lines.empty(); i++) {
    ASSERT_EQ(Strata({"put", "now/k", absl::StrCat("v", i)}).exit_code, 0);
    lines = watch->WaitForLines(1, absl::Milliseconds(100));
  }
  ASSERT_EQ(lines.size(), 1u) << watch->err();
  EXPECT_THAT(lines[0], StartsWith("PUT now/k v"));
  const int64_t next = PutRevision("now/k", "last");
  EXPECT_EQ(watch->WaitForLines(2, kWait).back(),
            absl::StrFormat("PUT now/k last %d", next));
  watch->Signal(SIGTERM);
  auto exit = watch->Wait(kWait);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited) << "signal " << exit->term_signal;
  EXPECT_EQ(exit->exit_code, 0) << watch->err();
}

TEST_F(StrataCliTest, WatchWithPrevKvPrintsThePreviousState) {
  const int64_t first = PutRevision("pkv/k", "old");
  std::unique_ptr<CliProcess> watch = StartCli(
      server_->address(),
      {"watch", "pkv/k", "--prev_kv", absl::StrFormat("--from=%d", first)});
  ASSERT_NE(watch, nullptr);
  ASSERT_EQ(Strata({"put", "pkv/k", "new"}).exit_code, 0);
  ASSERT_EQ(Strata({"delete", "pkv/k"}).exit_code, 0);
  EXPECT_THAT(watch->WaitForLines(5, kWait),
              ElementsAre(absl::StrFormat("PUT pkv/k old %d", first),
                          absl::StrFormat("PUT pkv/k new %d", first + 1),
                          absl::StrFormat("PREV pkv/k old %d", first),
                          absl::StrFormat("DELETE pkv/k %d", first + 2),
                          absl::StrFormat("PREV pkv/k new %d", first + 1)))
      << watch->err();
  watch->Signal(SIGINT);
  auto exit = watch->Wait(kWait);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 0);
}

TEST_F(StrataCliTest, WatchFromACompactedRevisionExitsThreeWithWhatToDo) {
  const int64_t old_revision = PutRevision("wc/k", "1");
  const int64_t compacted = PutRevision("wc/k", "2");
  ASSERT_EQ(Strata({"compact", std::to_string(compacted)}).exit_code, 0);
  ProcessResult r =
      Strata({"watch", "wc/k", "--from", std::to_string(old_revision)});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, StartsWith("strata: OUT_OF_RANGE: "));
  EXPECT_THAT(r.err,
              HasSubstr(absl::StrFormat(
                  "the changes up to revision %d are compacted: read the "
                  "state at revision %d (strata scan --revision=%d ...), "
                  "then watch --from=%d",
                  compacted, compacted, compacted, compacted + 1)));
}

// strata-server restarts (same data, same address) under a running
// `strata watch`: it reconnects and prints every change once, including
// those committed while it was away.
TEST_F(StrataCliTest, WatchResumesAcrossAServerRestart) {
  TempDir dir;
  const std::string data = dir.path() + "/data";
  auto first = ServerProcess::Start(data);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string address = (*first)->address();
  auto put = [&](const std::string& k, const std::string& v) {
    return StrataAt({"--addr=" + address, "put", k, v}).exit_code;
  };
  ASSERT_EQ(put("k", "1"), 0);  // 1
  std::unique_ptr<CliProcess> watch =
      StartCli(address, {"watch", "k", "--from=1", "--resume_timeout=60"});
  ASSERT_NE(watch, nullptr);
  ASSERT_EQ(watch->WaitForLines(1, kWait).size(), 1u) << watch->err();
  (*first)->Signal(SIGTERM);
  auto stopped = (*first)->Wait(kWait);
  ASSERT_TRUE(stopped.ok() && stopped->exited && stopped->exit_code == 0);
  // The same address again (the port was just freed).
  auto second = ServerProcess::Start(data, {"--listen=" + address});
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ((*second)->address(), address);
  ASSERT_EQ(put("k", "2"), 0);  // 2
  ASSERT_EQ(put("k", "3"), 0);  // 3
  EXPECT_THAT(watch->WaitForLines(3, kWait),
              ElementsAre("PUT k 1 1", "PUT k 2 2", "PUT k 3 3"))
      << watch->err();
  EXPECT_THAT(watch->err(), HasSubstr("resuming from revision 2"));
  watch->Signal(SIGINT);
  auto exit = watch->Wait(kWait);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_EQ(watch->out(), "PUT k 1 1\nPUT k 2 2\nPUT k 3 3\n");
}

TEST_F(StrataCliTest, WatchExitsThreeWhenTheServerStopsForGood) {
  TempDir dir;
  auto p = ServerProcess::Start(dir.path() + "/data");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(StrataAt({"--addr=" + (*p)->address(), "put", "k", "1"}).exit_code,
            0);
  std::unique_ptr<CliProcess> watch = StartCli(
      (*p)->address(), {"watch", "k", "--from=1", "--resume_timeout=0.5"});
  ASSERT_NE(watch, nullptr);
  ASSERT_EQ(watch->WaitForLines(1, kWait).size(), 1u) << watch->err();
  (*p)->Signal(SIGTERM);
  auto exit = watch->Wait(kWait);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited);
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_THAT(watch->err(), HasSubstr("gave up resuming"));
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
           {"get", "k"}, {"put", "k", "v"}, {"health"}, {"scan"},
           {"watch", "k"}, {"compact", "5"}}) {
    std::vector<std::string> full = {"--addr=" + address, "--timeout=5"};
    full.insert(full.end(), args.begin(), args.end());
    ProcessResult r = StrataAt(full);
    EXPECT_EQ(r.exit_code, 3) << args[0];
    EXPECT_THAT(r.err, StartsWith("strata: UNAVAILABLE: ")) << args[0];
  }
}

}  // namespace
}  // namespace strata::testing
