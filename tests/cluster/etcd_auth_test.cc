// The etcd client against a real etcd with authentication enabled
// (EtcdAuthOptions): the token from Auth.Authenticate on every call and
// stream, the errors without it or with a wrong password, and its renewal
// after etcd forgot it (a restarted member). One fresh single-member etcd
// per test on free ports (tests/cluster/etcd_process.h).

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cluster/etcd_client.h"
#include "gmock/gmock.h"
#include "grpc/grpc.h"
#include "gtest/gtest.h"
#include "tests/cluster/etcd_process.h"
#include "tests/support/test_util.h"

namespace strata::cluster {
namespace {

using ::testing::HasSubstr;
using testing::PollUntil;
using ::testing::Not;

constexpr char kRootPassword[] = "r00t-pw";

class EtcdAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Keep gRPC initialized for the whole process (see etcd_client_test).
    static const bool pinned = [] {
      grpc_init();
      return true;
    }();
    (void)pinned;
  }

  void SetUp() override {
    auto etcd = testing::EtcdProcess::Start(dir_.path() + "/etcd");
    ASSERT_OK(etcd);
    etcd_ = *std::move(etcd);
    ASSERT_OK(etcd_->EnableAuth(kRootPassword, {{"nobody", "nobody-pw"}}));
  }

  void TearDown() override {
    if (HasFailure() && etcd_ != nullptr) {
      std::fprintf(stderr, "--- etcd log ---\n%s\n", etcd_->Log().c_str());
    }
  }

  std::unique_ptr<EtcdClient> NewClient(EtcdAuthOptions auth) {
    EtcdClientOptions options;
    options.endpoint = etcd_->endpoint();
    options.call_timeout = absl::Seconds(5);
    options.auth = std::move(auth);
    return std::make_unique<EtcdClient>(options);
  }
  static EtcdAuthOptions Auth(std::string user, std::string password) {
    EtcdAuthOptions auth;
    auth.user = std::move(user);
    auth.password = std::move(password);
    return auth;
  }

  strata::testing::TempDir dir_;
  std::unique_ptr<testing::EtcdProcess> etcd_;
};

// Collects a watcher's events.
class EventLog {
 public:
  void Add(const WatchEvent& e) {
    absl::MutexLock lock(&mu_);
    keys_.push_back(e.kv.key);
  }
  bool Has(const std::string& key) const {
    absl::MutexLock lock(&mu_);
    for (const std::string& k : keys_) {
      if (k == key) return true;
    }
    return false;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> keys_;
};

TEST_F(EtcdAuthTest, RightPasswordWorksForCallsLeasesAndWatches) {
  auto client = NewClient(etcd_->root_auth());
  ASSERT_OK(client->Put("a/1", "one"));
  auto got = client->Get("a/1");
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->value, "one");
  ASSERT_OK(client->Txn(
      TxnRequest{{Compare::Exists("a/1")}, {TxnOp::Put("a/2", "two")}, {}}));

  auto lease = client->LeaseGrant(absl::Seconds(3));
  ASSERT_OK(lease);
  ASSERT_OK(client->Put("a/leased", "x", lease->id));
  std::atomic<bool> lost{false};
  LeaseKeeper keeper(client.get(), *lease,
                     [&](const absl::Status&) { lost = true; });
  EXPECT_TRUE(PollUntil([&] { return keeper.renewals() >= 2; }));
  EXPECT_FALSE(lost.load());
  ASSERT_OK(client->LeaseKeepAliveOnce(lease->id));
  ASSERT_OK(client->LeaseTimeToLive(lease->id));

  EventLog events;
  Watcher watcher(
      client.get(), "a/", 0, [&](const WatchEvent& e) { events.Add(e); },
      [](const absl::Status&) {});
  ASSERT_TRUE(PollUntil([&] { return watcher.connected(); }));
  ASSERT_OK(client->Put("a/3", "three"));
  EXPECT_TRUE(PollUntil([&] { return events.Has("a/3"); }));

  // One token served every call and stream.
  EXPECT_EQ(client->authentications(), 1);
  watcher.Stop();
  keeper.Stop();
  ASSERT_OK(client->LeaseRevoke(lease->id));
}

TEST_F(EtcdAuthTest, NoCredentialsOrAWrongPasswordFailClearly) {
  auto anonymous = NewClient({});
  absl::Status s = anonymous->Put("k", "v").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  EXPECT_THAT(s.message(), HasSubstr("etcd requires a user"));
  s = anonymous->Get("k").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;

  auto wrong = NewClient(Auth("root", "not-the-password"));
  s = wrong->Put("k", "v").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  EXPECT_THAT(s.message(), HasSubstr("etcd Authenticate as user \"root\""));
  EXPECT_THAT(s.message(), HasSubstr("invalid user ID or password"));
  EXPECT_THAT(s.message(), Not(HasSubstr("not-the-password")));
  // Streams fail the same way, within the call's deadline.
  s = wrong->WaitForDeletion("k", 0, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  EXPECT_EQ(wrong->authentications(), 0);

  auto unknown = NewClient(Auth("ghost", "pw"));
  s = unknown->Get("k").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  EXPECT_THAT(s.message(), HasSubstr("user \"ghost\""));

  // Authenticated, but its role grants nothing.
  auto nobody = NewClient(Auth("nobody", "nobody-pw"));
  s = nobody->Put("k", "v").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  s = nobody->WaitForDeletion("k", 0, absl::Now() + absl::Seconds(5));
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(s.message(), HasSubstr("permission denied"));
}

// etcd refuses a token it no longer holds: simple tokens expire after
// --auth-token-ttl without use, live only in a member's memory, and are
// dropped when the user's password changes. The test revokes root's tokens
// that last way (deterministic: a restart alone may bring a token back, as
// etcd re-applies the Authenticate entries its backend had not committed)
// and restarts etcd so the streams reconnect. Calls get a fresh token and
// go on without an error reaching the caller; so do the lease keeper and
// the watcher (on a client of their own, so each path renews by itself).
TEST_F(EtcdAuthTest, TokenRefusedAfterRestartIsRenewedTransparently) {
  auto calls = NewClient(etcd_->root_auth());
  auto streams = NewClient(etcd_->root_auth());
  ASSERT_OK(calls->Put("a/before", "1"));
  auto lease = streams->LeaseGrant(absl::Seconds(5));
  ASSERT_OK(lease);
  std::atomic<bool> lost{false};
  LeaseKeeper keeper(streams.get(), *lease,
                     [&](const absl::Status&) { lost = true; });
  EventLog events;
  Watcher watcher(
      streams.get(), "a/", 0, [&](const WatchEvent& e) { events.Add(e); },
      [](const absl::Status&) {});
  ASSERT_TRUE(PollUntil([&] { return watcher.connected(); }));
  ASSERT_EQ(calls->authentications(), 1);
  ASSERT_EQ(streams->authentications(), 1);

  ASSERT_OK(etcd_->RevokeRootTokens());
  ASSERT_OK(etcd_->Restart());

  // Several threads find the old token refused at once: each call succeeds
  // and one Authenticate serves them all.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        if (!calls->Put(absl::StrCat("b/", t, "/", i), "v").ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(calls->authentications(), 2);

  // The watch stream reopened with a fresh token and sees new changes.
  ASSERT_OK(calls->Put("a/after", "2"));
  EXPECT_TRUE(PollUntil([&] { return events.Has("a/after"); }));
  EXPECT_EQ(streams->authentications(), 2);
  const int64_t renewals = keeper.renewals();
  EXPECT_TRUE(PollUntil([&] { return keeper.renewals() > renewals; }));
  EXPECT_FALSE(lost.load());
  ASSERT_OK(streams->LeaseTimeToLive(lease->id));
  watcher.Stop();
  keeper.Stop();
}

TEST(EtcdAuthOptionsTest, LoadEtcdAuthReadsThePasswordFileAndNamesTheFlag) {
  strata::testing::TempDir dir;
  auto none = LoadEtcdAuth("", "", "--x_");
  ASSERT_OK(none);
  EXPECT_FALSE(none->enabled());

  const std::string file = dir.path() + "/pw";
  for (const auto& [contents, password] :
       std::vector<std::pair<std::string, std::string>>{
           {"secret", "secret"},
           {"secret\n", "secret"},
           {"secret\r\n", "secret"},
           {"two\n\n", "two\n"},  // Only one trailing newline goes.
           {" spaced ", " spaced "}}) {
    strata::testing::WriteFileOrDie(file, contents);
    auto auth = LoadEtcdAuth("strata", file, "--x_");
    ASSERT_OK(auth);
    EXPECT_TRUE(auth->enabled());
    EXPECT_EQ(auth->user, "strata");
    EXPECT_EQ(auth->password, password);
  }

  strata::testing::WriteFileOrDie(file, "\n");
  struct Case {
    std::string user, file, error;
  };
  for (const Case& c : std::vector<Case>{
           {"strata", "", "--x_user needs --x_password_file"},
           {"", file, "--x_password_file needs --x_user"},
           {"strata", dir.path() + "/missing",
            "--x_password_file file " + dir.path() + "/missing: No such file"},
           {"strata", file, "--x_password_file file " + file + ": empty"}}) {
    auto auth = LoadEtcdAuth(c.user, c.file, "--x_");
    ASSERT_FALSE(auth.ok()) << c.error;
    EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(auth.status().message(), HasSubstr(c.error));
  }
}

}  // namespace
}  // namespace strata::cluster
