// `strata cluster ...` end to end: the CLI binary against a real etcd (one
// per test, on free ports, stopped by PID).

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cluster/control/cluster_store.h"
#include "cluster/etcd_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster/etcd_process.h"
#include "tests/server/process_util.h"
#include "tests/server/test_pki.h"
#include "tests/support/test_util.h"

namespace strata::cluster {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using strata::testing::BinaryPath;
using strata::testing::ProcessResult;
using strata::testing::RunProcess;

class ClusterCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    binary_ = BinaryPath("client/strata");
    ASSERT_FALSE(binary_.empty()) << "STRATA_BINARY_DIR is not set";
    auto etcd = testing::EtcdProcess::Start(dir_.path() + "/etcd");
    ASSERT_OK(etcd);
    etcd_ = *std::move(etcd);
  }

  ProcessResult Cluster(std::vector<std::string> args) {
    args.insert(args.begin(), {binary_, "--timeout=10", "cluster"});
    args.push_back(absl::StrCat("--etcd=", etcd_->endpoint()));
    return RunProcess(args, "", absl::Seconds(60));
  }

  ProcessResult Init() {
    return Cluster({"init", "--nodes=n1=127.0.0.1:1001,n2=127.0.0.1:1002,"
                    "n3=127.0.0.1:1003",
                    "--split_keys=m,t"});
  }

  strata::testing::TempDir dir_;
  std::string binary_;
  std::unique_ptr<testing::EtcdProcess> etcd_;
};

TEST_F(ClusterCliTest, InitStatusAndInitAgain) {
  ProcessResult r = Init();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("3 ranges, 3 members"));
  r = Init();
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("ALREADY_EXISTS"));

  r = Cluster({"status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("replication_factor 3, min_in_sync 2"));
  EXPECT_THAT(r.out, HasSubstr("controller: none"));
  EXPECT_THAT(r.out, HasSubstr("127.0.0.1:1002"));
  // Range 1 is ["m", "t"), led by n2, which is not running.
  EXPECT_THAT(r.out, HasSubstr("\"m\""));
  EXPECT_THAT(r.out, HasSubstr("n2(down)"));
  EXPECT_THAT(r.out, HasSubstr("n2,n3,n1"));
  // No node runs: the lag per replica names the unreachable primaries.
  EXPECT_THAT(r.out, HasSubstr("(primary n2 at 127.0.0.1:1002: "));

  // Another prefix is not initialized.
  r = Cluster({"status", "--cluster_prefix=other/"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
}

TEST_F(ClusterCliTest, UsageErrors) {
  EXPECT_EQ(Cluster({"init"}).exit_code, 2);  // no --nodes
  EXPECT_EQ(Cluster({"init", "--nodes=n1=h:1"}).exit_code, 2);  // < RF
  EXPECT_EQ(Cluster({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(Cluster({"drain"}).exit_code, 2);
  ProcessResult r = RunProcess({binary_, "cluster", "status"}, "",
                               absl::Seconds(60));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--etcd"));
  r = RunProcess({binary_, "get", "k", "--etcd=127.0.0.1:1"}, "",
                 absl::Seconds(60));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--etcd applies to cluster only"));
}

// `strata cluster` against an etcd that serves https and requires client
// certificates: --etcd_ca/--etcd_cert/--etcd_key (etcdctl's --cacert,
// --cert, --key) reach it; a client certificate without a CA is a usage
// error; without the flags the command fails instead of hanging.
TEST_F(ClusterCliTest, EtcdOverMutualTls) {
  const strata::testing::TestPki& pki = strata::testing::TestPki::Get();
  if (!pki.error().empty()) GTEST_SKIP() << pki.error();
  const testing::EtcdServerTls tls = testing::MutualTlsEtcd(
      [&](const std::string& name) { return pki.Path(name); });
  etcd_.reset();
  auto etcd = testing::EtcdProcess::Start(dir_.path() + "/etcd-tls",
                                          absl::Seconds(30), tls);
  ASSERT_OK(etcd);
  etcd_ = *std::move(etcd);
  const std::vector<std::string> flags = {
      absl::StrCat("--etcd_ca=", tls.probe.ca_file),
      absl::StrCat("--etcd_cert=", tls.probe.cert_file),
      absl::StrCat("--etcd_key=", tls.probe.key_file)};
  std::vector<std::string> init = {
      "init", "--nodes=n1=127.0.0.1:1001,n2=127.0.0.1:1002,n3=127.0.0.1:1003"};
  init.insert(init.end(), flags.begin(), flags.end());
  ProcessResult r = Cluster(init);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> status = {"status"};
  status.insert(status.end(), flags.begin(), flags.end());
  r = Cluster(status);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("127.0.0.1:1002"));

  r = Cluster({"status", flags[1], flags[2]});  // No CA.
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--etcd_cert needs --etcd_ca"));
  r = RunProcess({binary_, "--timeout=2", "cluster", "status",
                  absl::StrCat("--etcd=", etcd_->endpoint())},
                 "", absl::Seconds(60));
  EXPECT_NE(r.exit_code, 0);
}

// `strata cluster` against an etcd with authentication enabled:
// --etcd_user/--etcd_password_file (etcdctl's --user) reach it; without
// them, or with a wrong password, the command fails naming the cause; a
// user without a password file (or the reverse), a missing or an empty
// password file are usage errors naming the flag.
TEST_F(ClusterCliTest, EtcdWithUserAuthentication) {
  ASSERT_OK(etcd_->EnableAuth("s3cret-root"));
  const std::string password_file = dir_.path() + "/etcd-password";
  strata::testing::WriteFileOrDie(password_file, "s3cret-root\n");
  const std::vector<std::string> flags = {
      "--etcd_user=root",
      absl::StrCat("--etcd_password_file=", password_file)};
  std::vector<std::string> init = {
      "init", "--nodes=n1=127.0.0.1:1001,n2=127.0.0.1:1002,n3=127.0.0.1:1003"};
  init.insert(init.end(), flags.begin(), flags.end());
  ProcessResult r = Cluster(init);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> status = {"status"};
  status.insert(status.end(), flags.begin(), flags.end());
  r = Cluster(status);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("127.0.0.1:1002"));

  r = Cluster({"status"});  // No credentials.
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(r.err, HasSubstr("requires a user"));

  const std::string wrong_file = dir_.path() + "/wrong-password";
  strata::testing::WriteFileOrDie(wrong_file, "not-it");
  r = Cluster({"status", "--etcd_user=root",
               absl::StrCat("--etcd_password_file=", wrong_file)});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(r.err, HasSubstr("user \"root\""));
  EXPECT_THAT(r.err, Not(HasSubstr("not-it")));

  const std::string empty_file = dir_.path() + "/empty-password";
  strata::testing::WriteFileOrDie(empty_file, "\n");
  struct Case {
    std::vector<std::string> flags;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {{"--etcd_user=root"}, "--etcd_user needs --etcd_password_file"},
           {{flags[1]}, "--etcd_password_file needs --etcd_user"},
           {{"--etcd_user=root",
             absl::StrCat("--etcd_password_file=", dir_.path(), "/missing")},
            absl::StrCat("--etcd_password_file file ", dir_.path(), "/missing")},
           {{"--etcd_user=root",
             absl::StrCat("--etcd_password_file=", empty_file)},
            "empty"}}) {
    std::vector<std::string> args = {"status"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    r = Cluster(args);
    EXPECT_EQ(r.exit_code, 2) << c.error;
    EXPECT_THAT(r.err, HasSubstr(c.error));
  }
}

TEST_F(ClusterCliTest, DrainAddAndRemoveNodes) {
  ASSERT_EQ(Init().exit_code, 0);
  // Only n1 and n3 are live.
  EtcdClientOptions options;
  options.endpoint = etcd_->endpoint();
  EtcdClient client(options);
  ClusterStore store(&client, "strata/");
  ASSERT_OK_AND_ASSIGN(const Lease lease, client.LeaseGrant(absl::Seconds(60)));
  ASSERT_OK(store.RegisterNode({"n1", "127.0.0.1:1001"}, lease.id));
  ASSERT_OK(store.RegisterNode({"n3", "127.0.0.1:1003"}, lease.id));

  ProcessResult r = Cluster({"drain", "n1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("moved primaries of ranges: 0"));
  ASSERT_OK_AND_ASSIGN(const RangeMap map, store.ReadRangeMap());
  EXPECT_EQ(map.Find(0)->primary, "n3");  // n2 is down: skipped
  EXPECT_EQ(map.Find(0)->epoch, 2u);

  // n3 is now a primary: refused. n1 holds in-sync replicas, but with
  // min_in_sync 2 and 3 in sync it may go, leaving every range with two.
  r = Cluster({"remove-node", "n3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(r.err, HasSubstr("primary of range"));
  r = Cluster({"remove-node", "n1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Now each range has two in sync: n2 cannot go.
  r = Cluster({"remove-node", "n2"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("min_in_sync 2"));

  r = Cluster({"add-node", "n4", "127.0.0.1:1004"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("out-of-sync replica of ranges: 0,1,2"));
  r = Cluster({"status"});
  EXPECT_THAT(r.out, HasSubstr("n2,n3,n4"));
  // n1 is still running (live) but no longer a member or a replica.
  EXPECT_THAT(r.out, ::testing::ContainsRegex("n1 +127.0.0.1:1001 +not-member live"));
  EXPECT_THAT(r.out, Not(HasSubstr("n1,")));

  // n3 leads ranges 0 and 2; their only other in-sync replica, n2, is down
  // (n4 is not in sync yet).
  r = Cluster({"drain", "n3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("still leads ranges 0,2"));
}

}  // namespace
}  // namespace strata::cluster
