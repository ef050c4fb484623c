// The etcd client against a real etcd: one fresh single-member etcd per
// test on free ports (tests/cluster/etcd_process.h), stopped by PID at the
// end even when the test fails.

#include "cluster/etcd_client.h"

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
#include "gmock/gmock.h"
#include "grpc/grpc.h"
#include "gtest/gtest.h"
#include "tests/cluster/etcd_process.h"
#include "tests/cluster/fault/tcp_proxy.h"
#include "tests/server/test_pki.h"
#include "tests/support/test_util.h"

namespace strata::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::PollUntil;

class EtcdClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Keep gRPC initialized for the whole process, so destroying the last
    // channel does not run gRPC's slow synchronous shutdown.
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
    client_ = NewClient();
  }

  void TearDown() override {
    if (HasFailure() && etcd_ != nullptr) {
      std::fprintf(stderr, "--- etcd log ---\n%s\n", etcd_->Log().c_str());
    }
  }

  std::unique_ptr<EtcdClient> NewClient() {
    EtcdClientOptions options;
    options.endpoint = etcd_->endpoint();
    options.call_timeout = absl::Seconds(5);
    return std::make_unique<EtcdClient>(options);
  }

  strata::testing::TempDir dir_;
  std::unique_ptr<testing::EtcdProcess> etcd_;
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(EtcdClientTest, PutGetDelete) {
  ASSERT_OK_AND_ASSIGN(const int64_t rev1, client_->Put("nodes/1", "a"));
  ASSERT_OK_AND_ASSIGN(const auto kv, client_->Get("nodes/1"));
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->key, "nodes/1");
  EXPECT_EQ(kv->value, "a");
  EXPECT_EQ(kv->create_revision, rev1);
  EXPECT_EQ(kv->mod_revision, rev1);
  EXPECT_EQ(kv->version, 1);
  EXPECT_EQ(kv->lease, 0);

  ASSERT_OK_AND_ASSIGN(const int64_t rev2, client_->Put("nodes/1", "b"));
  EXPECT_GT(rev2, rev1);
  ASSERT_OK_AND_ASSIGN(const auto kv2, client_->Get("nodes/1"));
  EXPECT_EQ(kv2->value, "b");
  EXPECT_EQ(kv2->create_revision, rev1);
  EXPECT_EQ(kv2->mod_revision, rev2);
  EXPECT_EQ(kv2->version, 2);

  ASSERT_OK_AND_ASSIGN(const int64_t deleted, client_->Delete("nodes/1"));
  EXPECT_EQ(deleted, 1);
  ASSERT_OK_AND_ASSIGN(const auto gone, client_->Get("nodes/1"));
  EXPECT_FALSE(gone.has_value());
  ASSERT_OK_AND_ASSIGN(const int64_t again, client_->Delete("nodes/1"));
  EXPECT_EQ(again, 0);
}

TEST_F(EtcdClientTest, PrefixReadsAndDeletes) {
  for (const char* k : {"ranges/2", "ranges/1", "ranges/3", "rangesX", "nodes/1"}) {
    ASSERT_OK(client_->Put(k, k));
  }
  ASSERT_OK_AND_ASSIGN(const RangeResult all, client_->GetPrefix("ranges/"));
  std::vector<std::string> keys;
  for (const KeyValue& kv : all.kvs) keys.push_back(kv.key);
  EXPECT_THAT(keys, ElementsAre("ranges/1", "ranges/2", "ranges/3"));
  EXPECT_EQ(all.count, 3);
  EXPECT_FALSE(all.more);
  EXPECT_GT(all.revision, 0);

  ASSERT_OK_AND_ASSIGN(const RangeResult two, client_->GetPrefix("ranges/", 2));
  EXPECT_EQ(two.kvs.size(), 2u);
  EXPECT_TRUE(two.more);
  EXPECT_EQ(two.count, 3);

  ASSERT_OK_AND_ASSIGN(const RangeResult everything, client_->GetPrefix(""));
  EXPECT_EQ(everything.count, 5);

  ASSERT_OK_AND_ASSIGN(const int64_t deleted, client_->DeletePrefix("ranges/"));
  EXPECT_EQ(deleted, 3);
  ASSERT_OK_AND_ASSIGN(const RangeResult after, client_->GetPrefix("ranges"));
  ASSERT_EQ(after.kvs.size(), 1u);
  EXPECT_EQ(after.kvs[0].key, "rangesX");
  EXPECT_EQ(client_->DeletePrefix("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EtcdClientTest, TxnCompareAndSetOnModRevision) {
  // The range map's update rule: change ranges/<id> only if nobody changed
  // it since we read it.
  ASSERT_OK_AND_ASSIGN(const int64_t rev, client_->Put("ranges/7", "epoch=1"));
  TxnRequest cas;
  cas.compares = {Compare::ModRevisionIs("ranges/7", rev)};
  cas.success = {TxnOp::Put("ranges/7", "epoch=2")};
  cas.failure = {TxnOp::Get("ranges/7")};
  ASSERT_OK_AND_ASSIGN(const TxnResult won, client_->Txn(cas));
  EXPECT_TRUE(won.succeeded);
  EXPECT_GT(won.revision, rev);
  ASSERT_EQ(won.results.size(), 1u);
  EXPECT_EQ(won.results[0].kind, TxnOp::Kind::kPut);

  // The same compare again is stale now: the failure branch shows why.
  cas.success = {TxnOp::Put("ranges/7", "epoch=2-lost")};
  ASSERT_OK_AND_ASSIGN(const TxnResult lost, client_->Txn(cas));
  EXPECT_FALSE(lost.succeeded);
  EXPECT_EQ(lost.revision, won.revision);  // Nothing was written.
  ASSERT_EQ(lost.results.size(), 1u);
  EXPECT_EQ(lost.results[0].kind, TxnOp::Kind::kGet);
  ASSERT_EQ(lost.results[0].kvs.size(), 1u);
  EXPECT_EQ(lost.results[0].kvs[0].value, "epoch=2");
  EXPECT_EQ(lost.results[0].kvs[0].mod_revision, won.revision);
  ASSERT_OK_AND_ASSIGN(const auto now, client_->Get("ranges/7"));
  EXPECT_EQ(now->value, "epoch=2");
}

TEST_F(EtcdClientTest, TxnCreateIfAbsentValueAndVersionCompares) {
  TxnRequest create;
  create.compares = {Compare::Absent("ranges/9")};
  create.success = {TxnOp::Put("ranges/9", "v1"), TxnOp::Get("ranges/9")};
  ASSERT_OK_AND_ASSIGN(const TxnResult first, client_->Txn(create));
  EXPECT_TRUE(first.succeeded);
  ASSERT_EQ(first.results.size(), 2u);
  ASSERT_EQ(first.results[1].kvs.size(), 1u);
  EXPECT_EQ(first.results[1].kvs[0].value, "v1");
  ASSERT_OK_AND_ASSIGN(const TxnResult second, client_->Txn(create));
  EXPECT_FALSE(second.succeeded);
  EXPECT_TRUE(second.results.empty());

  TxnRequest by_value;
  by_value.compares = {Compare::ValueIs("ranges/9", "v1"),
                       Compare::VersionIs("ranges/9", 1)};
  by_value.success = {TxnOp::Put("ranges/9", "v2"), TxnOp::Delete("other")};
  ASSERT_OK_AND_ASSIGN(const TxnResult swapped, client_->Txn(by_value));
  EXPECT_TRUE(swapped.succeeded);
  ASSERT_EQ(swapped.results.size(), 2u);
  EXPECT_EQ(swapped.results[1].kind, TxnOp::Kind::kDelete);
  EXPECT_EQ(swapped.results[1].deleted, 0);
  ASSERT_OK_AND_ASSIGN(const TxnResult stale, client_->Txn(by_value));
  EXPECT_FALSE(stale.succeeded);

  Compare greater{"ranges/9", Compare::Target::kVersion,
                  Compare::Op::kGreater, 1, ""};
  ASSERT_OK_AND_ASSIGN(const TxnResult g, client_->Txn({{greater}, {}, {}}));
  EXPECT_TRUE(g.succeeded);  // Version is 2.
}

TEST_F(EtcdClientTest, TxnExistsHoldsOnlyWhileTheKeyExists) {
  TxnRequest if_exists;
  if_exists.compares = {Compare::Exists("nodes/5")};
  if_exists.success = {TxnOp::Put("ranges/5", "primary=5")};
  ASSERT_OK_AND_ASSIGN(const TxnResult missing, client_->Txn(if_exists));
  EXPECT_FALSE(missing.succeeded);  // Never written.

  ASSERT_OK(client_->Put("nodes/5", "10.0.0.5:7000"));
  ASSERT_OK_AND_ASSIGN(const TxnResult present, client_->Txn(if_exists));
  EXPECT_TRUE(present.succeeded);
  ASSERT_OK_AND_ASSIGN(const auto written, client_->Get("ranges/5"));
  ASSERT_TRUE(written.has_value());
  EXPECT_EQ(written->value, "primary=5");

  ASSERT_OK_AND_ASSIGN(const int64_t deleted, client_->Delete("nodes/5"));
  EXPECT_EQ(deleted, 1);
  ASSERT_OK_AND_ASSIGN(const TxnResult gone, client_->Txn(if_exists));
  EXPECT_FALSE(gone.succeeded);  // Deleted: its version is 0 again.
}

TEST_F(EtcdClientTest, LeaseExpiryDeletesBoundKey) {
  ASSERT_OK_AND_ASSIGN(const Lease lease, client_->LeaseGrant(absl::Seconds(1)));
  EXPECT_NE(lease.id, 0);
  EXPECT_EQ(lease.ttl, absl::Seconds(1));
  const absl::Time granted = absl::Now();
  ASSERT_OK(client_->Put("nodes/3", "10.0.0.3:7000", lease.id));
  ASSERT_OK_AND_ASSIGN(const auto bound, client_->Get("nodes/3"));
  EXPECT_EQ(bound->lease, lease.id);
  ASSERT_OK_AND_ASSIGN(const absl::Duration left,
                       client_->LeaseTimeToLive(lease.id));
  EXPECT_LE(left, absl::Seconds(1));

  // Nobody renews it: etcd deletes the key once the TTL runs out.
  EXPECT_TRUE(PollUntil([&] {
    auto kv = client_->Get("nodes/3");
    return kv.ok() && !kv->has_value();
  }));
  EXPECT_GE(absl::Now() - granted, absl::Milliseconds(900));
  EXPECT_EQ(client_->LeaseTimeToLive(lease.id).status().code(),
            absl::StatusCode::kNotFound);
  const absl::Status put = client_->Put("nodes/3", "x", lease.id).status();
  EXPECT_EQ(put.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(put.message()),
              HasSubstr("etcd Put: etcdserver: requested lease not found"));
  EXPECT_EQ(client_->LeaseKeepAliveOnce(lease.id).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(EtcdClientTest, KeepAliveKeepsLeaseThenReportsRevocation) {
  // 2 s rather than 1 s: margin for a loaded machine (renewals every 2/3 s).
  ASSERT_OK_AND_ASSIGN(const Lease lease, client_->LeaseGrant(absl::Seconds(2)));
  ASSERT_OK(client_->Put("nodes/4", "up", lease.id));
  absl::Mutex mu;
  std::vector<absl::Status> losses;
  LeaseKeeper keeper(client_.get(), lease, [&](const absl::Status& s) {
    absl::MutexLock lock(&mu);
    losses.push_back(s);
  });

  // Past twice the TTL the key must still be there, checked all along.
  const absl::Time start = absl::Now();
  bool always_present = true;
  EXPECT_TRUE(PollUntil([&] {
    auto kv = client_->Get("nodes/4");
    always_present &= kv.ok() && kv->has_value();
    return absl::Now() - start > 2 * lease.ttl && keeper.renewals() >= 4;
  }));
  EXPECT_TRUE(always_present);
  EXPECT_FALSE(keeper.lost());
  EXPECT_GT(keeper.alive_until(), absl::Now());
  ASSERT_OK_AND_ASSIGN(const auto kv, client_->Get("nodes/4"));
  EXPECT_TRUE(kv.has_value());

  // Revoked behind its back: the next renewal reports the loss, once.
  ASSERT_OK(client_->LeaseRevoke(lease.id));
  EXPECT_TRUE(PollUntil([&] { return keeper.lost(); }));
  keeper.Stop();
  absl::MutexLock lock(&mu);
  ASSERT_EQ(losses.size(), 1u);
  EXPECT_EQ(losses[0].code(), absl::StatusCode::kNotFound);
  ASSERT_OK_AND_ASSIGN(const auto gone, client_->Get("nodes/4"));
  EXPECT_FALSE(gone.has_value());
  EXPECT_EQ(client_->LeaseRevoke(lease.id).code(), absl::StatusCode::kNotFound);
}

TEST_F(EtcdClientTest, KeeperReportsLossWhenEtcdIsGoneForATtl) {
  ASSERT_OK_AND_ASSIGN(const Lease lease, client_->LeaseGrant(absl::Seconds(1)));
  std::atomic<int> losses{0};
  std::atomic<int> code{0};
  LeaseKeeper keeper(client_.get(), lease, [&](const absl::Status& s) {
    code = static_cast<int>(s.code());
    ++losses;
  });
  ASSERT_TRUE(PollUntil([&] { return keeper.renewals() >= 1; }));
  ASSERT_OK(etcd_->Stop());
  EXPECT_TRUE(PollUntil([&] { return keeper.lost(); }));
  EXPECT_GE(absl::Now(), keeper.alive_until());
  EXPECT_EQ(losses.load(), 1);
  EXPECT_EQ(code.load(), static_cast<int>(absl::StatusCode::kDeadlineExceeded));
}

struct Recorded {
  WatchEvent::Type type;
  std::string key;
  std::string value;
  int64_t revision;
};

class EventLog {
 public:
  void Add(const WatchEvent& e) {
    absl::MutexLock lock(&mu_);
    events_.push_back({e.type, e.kv.key, e.kv.value, e.kv.mod_revision});
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return events_.size();
  }
  std::vector<Recorded> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<Recorded> events_;
};

TEST_F(EtcdClientTest, WatchSeesPrefixChangesInOrderAndResumesAfterRestart) {
  EventLog log;
  std::atomic<int> errors{0};
  Watcher watcher(
      client_.get(), "ranges/", 0, [&](const WatchEvent& e) { log.Add(e); },
      [&](const absl::Status&) { ++errors; });
  ASSERT_TRUE(PollUntil([&] { return watcher.connected(); }));

  ASSERT_OK(client_->Put("ranges/a", "1"));
  ASSERT_OK(client_->Put("nodes/x", "not watched"));
  ASSERT_OK(client_->Put("ranges/b", "1"));
  ASSERT_OK(client_->Delete("ranges/a"));
  TxnRequest both;  // Two changes at one revision.
  both.success = {TxnOp::Put("ranges/c", "1"), TxnOp::Put("ranges/d", "1")};
  ASSERT_OK_AND_ASSIGN(const TxnResult txn, client_->Txn(both));
  ASSERT_TRUE(PollUntil([&] { return log.size() >= 5; }));

  // etcd goes away and comes back; changes made right after it is back
  // (before the watcher has reconnected, likely) must not be lost.
  ASSERT_OK(etcd_->Restart());
  ASSERT_OK(client_->Put("ranges/e", "2"));
  ASSERT_OK(client_->Delete("ranges/b"));
  ASSERT_TRUE(PollUntil([&] { return log.size() >= 7; }));
  ASSERT_OK_AND_ASSIGN(const int64_t last, client_->Put("ranges/f", "3"));
  ASSERT_TRUE(PollUntil([&] { return log.size() >= 8; }));

  const std::vector<Recorded> events = log.events();
  ASSERT_EQ(events.size(), 8u);
  std::vector<std::string> seen;
  for (const Recorded& r : events) {
    seen.push_back((r.type == WatchEvent::Type::kPut ? "put " : "delete ") +
                   r.key);
  }
  EXPECT_THAT(seen, ElementsAre("put ranges/a", "put ranges/b",
                                "delete ranges/a", "put ranges/c",
                                "put ranges/d", "put ranges/e",
                                "delete ranges/b", "put ranges/f"));
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GE(events[i].revision, events[i - 1].revision) << i;
  }
  EXPECT_EQ(events[3].revision, txn.revision);
  EXPECT_EQ(events[4].revision, txn.revision);
  EXPECT_EQ(events[7].revision, last);
  EXPECT_EQ(watcher.next_revision(), last + 1);
  EXPECT_GE(watcher.streams_opened(), 2);
  EXPECT_EQ(errors.load(), 0);
}

TEST_F(EtcdClientTest, WatchReplaysFromAPastRevision) {
  ASSERT_OK_AND_ASSIGN(const int64_t first, client_->Put("ranges/1", "a"));
  ASSERT_OK(client_->Put("ranges/1", "b"));
  ASSERT_OK(client_->Put("ranges/2", "c"));
  EventLog log;
  Watcher watcher(
      client_.get(), "ranges/", first, [&](const WatchEvent& e) { log.Add(e); },
      [](const absl::Status&) {});
  ASSERT_TRUE(PollUntil([&] { return log.size() >= 3; }));
  const std::vector<Recorded> events = log.events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].value, "a");
  EXPECT_EQ(events[0].revision, first);
  EXPECT_EQ(events[1].value, "b");
  EXPECT_EQ(events[2].key, "ranges/2");
}

// A watch that must resume from a compacted revision: without a resync
// callback it reports OutOfRange and stops; with one it calls it (the
// owner re-reads), resumes after the revision the resync returns and keeps
// delivering later changes.
TEST_F(EtcdClientTest, WatchFromACompactedRevisionResyncsAndGoesOn) {
  ASSERT_OK_AND_ASSIGN(const int64_t first, client_->Put("ranges/1", "a"));
  ASSERT_OK(client_->Put("ranges/1", "b"));
  ASSERT_OK_AND_ASSIGN(const int64_t compacted, client_->Put("ranges/2", "c"));
  ASSERT_OK(client_->Compact(compacted));
  // Compacting it again is etcd's OutOfRange.
  EXPECT_EQ(client_->Compact(compacted).code(), absl::StatusCode::kOutOfRange);

  std::atomic<int> stopped{0};
  absl::Status error;
  {
    Watcher plain(
        client_.get(), "ranges/", first, [](const WatchEvent&) {},
        [&](const absl::Status& s) {
          error = s;
          ++stopped;
        });
    ASSERT_TRUE(PollUntil([&] { return stopped.load() > 0; }));
  }
  EXPECT_EQ(error.code(), absl::StatusCode::kOutOfRange) << error;

  EventLog log;
  std::atomic<int64_t> resynced_at{0};
  std::atomic<int> failing_resyncs{1};  // The first one fails: retried.
  Watcher watcher(
      client_.get(), "ranges/", first, [&](const WatchEvent& e) { log.Add(e); },
      [&]() -> absl::StatusOr<int64_t> {
        if (failing_resyncs.fetch_sub(1) > 0) {
          return absl::UnavailableError("etcd unreachable (simulated)");
        }
        const absl::StatusOr<RangeResult> r = client_->GetPrefix("ranges/");
        if (!r.ok()) return r.status();
        resynced_at = r->revision;
        return r->revision;
      });
  ASSERT_TRUE(PollUntil([&] { return watcher.resyncs() == 1; }));
  EXPECT_EQ(resynced_at.load(), compacted);
  ASSERT_OK_AND_ASSIGN(const int64_t later, client_->Put("ranges/3", "d"));
  ASSERT_TRUE(PollUntil([&] { return log.size() >= 1; }));
  const std::vector<Recorded> events = log.events();
  ASSERT_EQ(events.size(), 1u);  // Nothing from before the resync.
  EXPECT_EQ(events[0].key, "ranges/3");
  EXPECT_EQ(events[0].revision, later);
  EXPECT_EQ(watcher.next_revision(), later + 1);
  EXPECT_EQ(watcher.resyncs(), 1);
}

TEST(EtcdChannelPlanTest, OneEndpointAsGivenLiteralListsOneChannelNamesOneEach) {
  ASSERT_OK_AND_ASSIGN(EtcdChannelPlan one, PlanEtcdChannels("etcd-0.etcd:2379"));
  EXPECT_THAT(one.targets, ElementsAre("etcd-0.etcd:2379"));
  EXPECT_FALSE(one.round_robin);

  ASSERT_OK_AND_ASSIGN(EtcdChannelPlan v4,
                       PlanEtcdChannels("10.0.0.1:2379, 10.0.0.2:2379,10.0.0.3:2380"));
  EXPECT_THAT(v4.targets,
              ElementsAre("ipv4:10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2380"));
  EXPECT_TRUE(v4.round_robin);

  ASSERT_OK_AND_ASSIGN(EtcdChannelPlan v6, PlanEtcdChannels("[::1]:1,[fe80::2]:2"));
  EXPECT_THAT(v6.targets, ElementsAre("ipv6:[::1]:1,[fe80::2]:2"));
  EXPECT_TRUE(v6.round_robin);

  // Host names (or mixed families): one channel per endpoint.
  ASSERT_OK_AND_ASSIGN(EtcdChannelPlan names,
                       PlanEtcdChannels("etcd-0.etcd:2379,etcd-1.etcd:2379"));
  EXPECT_THAT(names.targets, ElementsAre("etcd-0.etcd:2379", "etcd-1.etcd:2379"));
  EXPECT_FALSE(names.round_robin);
  ASSERT_OK_AND_ASSIGN(EtcdChannelPlan mixed, PlanEtcdChannels("10.0.0.1:1,[::1]:2"));
  EXPECT_EQ(mixed.targets.size(), 2u);

  // With TLS, literal addresses get a channel each too (each member's
  // certificate is checked against its own address).
  ASSERT_OK_AND_ASSIGN(EtcdChannelPlan tls,
                       PlanEtcdChannels("10.0.0.1:2379,10.0.0.2:2379", true));
  EXPECT_THAT(tls.targets, ElementsAre("10.0.0.1:2379", "10.0.0.2:2379"));
  EXPECT_FALSE(tls.round_robin);

  for (const char* bad : {"", "a:1,", "a:1,,b:2", "noport", "a:", "a:12x"}) {
    EXPECT_EQ(PlanEtcdChannels(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

// TLS to etcd (EtcdTlsOptions), against an etcd serving https with
// --client-cert-auth: a client with the CA and a client certificate works,
// through two endpoints too (a channel each, each member checked against
// its address); one without a client certificate, with the wrong CA, or
// in plaintext gets no answer.
TEST(EtcdTlsTest, MutualTlsWorksAndEveryOtherClientIsRefused) {
  const strata::testing::TestPki& pki = strata::testing::TestPki::Get();
  if (!pki.error().empty()) GTEST_SKIP() << pki.error();
  strata::testing::TempDir dir;
  const testing::EtcdServerTls server = testing::MutualTlsEtcd(
      [&](const std::string& name) { return pki.Path(name); });
  const EtcdTlsOptions good = server.probe;
  auto etcd = testing::EtcdProcess::Start(dir.path() + "/etcd",
                                          absl::Seconds(30), server);
  if (absl::IsFailedPrecondition(etcd.status())) GTEST_SKIP() << etcd.status();
  ASSERT_OK(etcd);

  auto client = [&](const EtcdTlsOptions& tls, const std::string& endpoint) {
    EtcdClientOptions options;
    options.endpoint = endpoint;
    options.call_timeout = absl::Seconds(2);
    options.tls = tls;
    return std::make_unique<EtcdClient>(options);
  };
  const std::string endpoint = (*etcd)->endpoint();
  ASSERT_OK(client(good, endpoint)->Put("k", "over-tls").status());
  // A closed port first: the second channel serves.
  ASSERT_OK_AND_ASSIGN(int closed, testing::PickFreePort());
  auto two = client(good, absl::StrCat("127.0.0.1:", closed, ",", endpoint));
  EXPECT_EQ(two->channels(), 2u);
  ASSERT_OK_AND_ASSIGN(std::optional<KeyValue> got, two->Get("k"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->value, "over-tls");

  EtcdTlsOptions no_client_cert;
  no_client_cert.ca_file = pki.Path("ca.crt");
  EtcdTlsOptions wrong_ca = good;
  wrong_ca.ca_file = pki.Path("other-ca.crt");
  for (const auto& [name, tls] :
       std::vector<std::pair<std::string, EtcdTlsOptions>>{
           {"no client certificate", no_client_cert},
           {"wrong CA", wrong_ca},
           {"plaintext", EtcdTlsOptions{}}}) {
    absl::Status s = client(tls, endpoint)->Get("k").status();
    EXPECT_FALSE(s.ok()) << name;
    EXPECT_TRUE(absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s))
        << name << ": " << s;
  }
}

TEST(EtcdTlsTest, ValidateNamesTheFlagOfABadSetting) {
  const strata::testing::TestPki& pki = strata::testing::TestPki::Get();
  if (!pki.error().empty()) GTEST_SKIP() << pki.error();
  EXPECT_OK(ValidateEtcdTls({}, "--x_"));
  EtcdTlsOptions ca_only;
  ca_only.ca_file = pki.Path("ca.crt");
  EXPECT_OK(ValidateEtcdTls(ca_only, "--x_"));
  struct Case {
    EtcdTlsOptions tls;
    std::string want;
  };
  EtcdTlsOptions cert_without_ca;
  cert_without_ca.cert_file = pki.Path("client.crt");
  cert_without_ca.key_file = pki.Path("client.key");
  EtcdTlsOptions cert_without_key = ca_only;
  cert_without_key.cert_file = pki.Path("client.crt");
  EtcdTlsOptions missing_ca;
  missing_ca.ca_file = pki.Path("no-such.crt");
  EtcdTlsOptions not_pem = ca_only;
  not_pem.cert_file = "/proc/self/cmdline";
  not_pem.key_file = pki.Path("client.key");
  for (const Case& c : std::vector<Case>{
           {cert_without_ca, "--x_cert needs --x_ca"},
           {cert_without_key, "--x_cert and --x_key go together"},
           {missing_ca, "--x_ca file " + pki.Path("no-such.crt") + ": No such file"},
           {not_pem, "--x_cert file /proc/self/cmdline: no PEM block"}}) {
    absl::Status s = ValidateEtcdTls(c.tls, "--x_");
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(c.want));
  }
}

// Several endpoints, the first of them a closed port (nothing listens):
// calls, a lease kept alive and a watch all work through the live one.
// Both plans: literal IPs (one round_robin channel) and host names (one
// channel each).
TEST_F(EtcdClientTest, SeveralEndpointsWorkWithOneOfThemDown) {
  ASSERT_OK_AND_ASSIGN(const int closed, testing::PickFreePort());
  const std::string port = etcd_->endpoint().substr(etcd_->endpoint().rfind(':') + 1);
  for (const std::string& endpoints :
       {absl::StrCat("127.0.0.1:", closed, ",", etcd_->endpoint()),
        absl::StrCat("localhost:", closed, ",localhost:", port)}) {
    SCOPED_TRACE(endpoints);
    EtcdClientOptions options;
    options.endpoint = endpoints;
    options.call_timeout = absl::Seconds(5);
    EtcdClient several(options);
    EXPECT_EQ(several.channels(), endpoints.starts_with("localhost") ? 2u : 1u);
    for (int i = 0; i < 5; ++i) {  // Round robin would hit the dead one.
      ASSERT_OK_AND_ASSIGN(const int64_t rev,
                           several.Put("k", absl::StrCat(endpoints, i)));
      ASSERT_OK_AND_ASSIGN(const auto kv, several.Get("k"));
      ASSERT_TRUE(kv.has_value());
      EXPECT_EQ(kv->mod_revision, rev);
    }
    ASSERT_OK_AND_ASSIGN(const Lease lease, several.LeaseGrant(absl::Seconds(2)));
    LeaseKeeper keeper(&several, lease, [](const absl::Status&) {});
    EventLog log;
    Watcher watcher(
        &several, "w/", 0, [&](const WatchEvent& e) { log.Add(e); },
        [](const absl::Status&) {});
    ASSERT_TRUE(PollUntil([&] { return watcher.connected(); }));
    ASSERT_OK(client_->Put("w/1", "x"));
    EXPECT_TRUE(PollUntil([&] { return log.size() >= 1; }));
    EXPECT_TRUE(PollUntil([&] { return keeper.renewals() >= 2; }));
    EXPECT_FALSE(keeper.lost());
    ASSERT_OK(client_->Delete("w/1"));
  }
}

// Two endpoints (TCP proxies to the one etcd, standing in for two
// members); each goes down in turn while a lease is kept alive and a watch
// runs: both carry on through the other, and calls keep working.
TEST_F(EtcdClientTest, LeaseAndWatchSurviveOneEndpointGoingDown) {
  ASSERT_OK_AND_ASSIGN(auto a, testing::TcpProxy::Start(etcd_->endpoint()));
  ASSERT_OK_AND_ASSIGN(auto b, testing::TcpProxy::Start(etcd_->endpoint()));
  EtcdClientOptions options;
  options.endpoint = absl::StrCat(a->address(), ",", b->address());
  options.call_timeout = absl::Seconds(2);
  EtcdClient several(options);
  ASSERT_OK_AND_ASSIGN(const Lease lease, several.LeaseGrant(absl::Seconds(3)));
  std::atomic<bool> lost{false};
  LeaseKeeper keeper(&several, lease, [&](const absl::Status&) { lost = true; });
  EventLog log;
  Watcher watcher(
      &several, "w/", 0, [&](const WatchEvent& e) { log.Add(e); },
      [](const absl::Status&) {});
  ASSERT_TRUE(PollUntil([&] { return watcher.connected(); }));

  size_t expected = 0;
  for (testing::TcpProxy* down : {a.get(), b.get()}) {
    down->Sever();
    const int64_t renewed = keeper.renewals();
    ASSERT_OK(client_->Put("w/k", absl::StrCat("v", expected)));
    ++expected;
    EXPECT_TRUE(PollUntil([&] { return log.size() >= expected; }))
        << "the watch did not carry on";
    EXPECT_TRUE(PollUntil([&] { return keeper.renewals() >= renewed + 2; }))
        << "the lease was not renewed";
    ASSERT_OK_AND_ASSIGN(const auto kv, several.Get("w/k"));
    ASSERT_TRUE(kv.has_value());
    ASSERT_OK(several.Put("other", "x"));
    down->Heal();
  }
  EXPECT_FALSE(lost.load());
  ASSERT_OK_AND_ASSIGN(const absl::Duration ttl, several.LeaseTimeToLive(lease.id));
  EXPECT_GT(ttl, absl::ZeroDuration());
}

TEST_F(EtcdClientTest, ElectionHasOneLeaderAndTheOtherTakesOver) {
  auto other = NewClient();
  // Long enough not to expire during the test: only the revocation below
  // ends a's leadership.
  ASSERT_OK_AND_ASSIGN(const Lease lease_a, client_->LeaseGrant(absl::Seconds(30)));
  ASSERT_OK_AND_ASSIGN(const Lease lease_b, other->LeaseGrant(absl::Seconds(30)));
  LeaderElection a(client_.get(), "controller", "node-a", lease_a.id);
  LeaderElection b(other.get(), "controller", "node-b", lease_b.id);

  ASSERT_OK_AND_ASSIGN(const int64_t term_a,
                       a.Campaign(absl::Now() + absl::Seconds(5)));
  ASSERT_OK_AND_ASSIGN(const KeyValue leader, b.Leader());
  EXPECT_EQ(leader.value, "node-a");
  EXPECT_EQ(leader.create_revision, term_a);
  EXPECT_EQ(leader.lease, lease_a.id);
  // Campaigning again while leading is a no-op returning the same term.
  ASSERT_OK_AND_ASSIGN(const int64_t again,
                       a.Campaign(absl::Now() + absl::Seconds(5)));
  EXPECT_EQ(again, term_a);

  // b cannot win while a leads.
  EXPECT_EQ(b.Campaign(absl::Now() + absl::Milliseconds(500)).status().code(),
            absl::StatusCode::kDeadlineExceeded);

  // b campaigns in the background; a's lease is revoked (a crashed node's
  // lease expiring is the same event to etcd); b takes over.
  absl::StatusOr<int64_t> term_b;
  std::atomic<bool> done{false};
  std::thread campaigner([&] {
    term_b = b.Campaign(absl::Now() + absl::Seconds(15));
    done = true;
  });
  EXPECT_FALSE(done.load());
  ASSERT_OK(client_->LeaseRevoke(lease_a.id));
  EXPECT_TRUE(PollUntil([&] { return done.load(); }));
  campaigner.join();
  ASSERT_OK(term_b);
  EXPECT_GT(*term_b, term_a);
  ASSERT_OK_AND_ASSIGN(const KeyValue now, a.Leader());
  EXPECT_EQ(now.value, "node-b");

  // a's term is over: resigning it changes nothing; a fresh campaign by a
  // fails since its lease is gone.
  EXPECT_EQ(a.Resign(term_a).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.Campaign(absl::Now() + absl::Milliseconds(300)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ASSERT_OK(b.Resign(*term_b));
  EXPECT_EQ(a.Leader().status().code(), absl::StatusCode::kNotFound);
  // With the seat free, a's campaign reaches etcd's verdict on its lease.
  EXPECT_EQ(a.Campaign(absl::Now() + absl::Seconds(5)).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(EtcdClientTest, ErrorsCarryEtcdsMessageAndDeadlinesHold) {
  const absl::Status revoke = client_->LeaseRevoke(424242);
  EXPECT_EQ(revoke.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(revoke.message()),
              HasSubstr("etcd LeaseRevoke: etcdserver: requested lease not found"));

  // A stopped etcd: every call fails within its timeout, none hangs.
  ASSERT_OK(etcd_->Stop());
  EtcdClientOptions options;
  options.endpoint = etcd_->endpoint();
  options.call_timeout = absl::Milliseconds(300);
  EtcdClient dead(options);
  const absl::Time start = absl::Now();
  const absl::StatusCode code = dead.Get("k").status().code();
  EXPECT_TRUE(code == absl::StatusCode::kUnavailable ||
              code == absl::StatusCode::kDeadlineExceeded)
      << code;
  EXPECT_FALSE(dead.Put("k", "v").ok());
  EXPECT_FALSE(dead.LeaseGrant(absl::Seconds(1)).ok());
  EXPECT_FALSE(dead.LeaseKeepAliveOnce(1).ok());
  EXPECT_EQ(dead.WaitForDeletion("k", 0, absl::Now() + absl::Milliseconds(300))
                .code() == absl::StatusCode::kOk,
            false);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace strata::cluster
