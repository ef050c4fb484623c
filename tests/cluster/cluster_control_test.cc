// The control plane against a real etcd (one per test, on free ports,
// stopped by PID): the etcd layout (init, CAS, corrupt values, the watched
// map), and the controller (failover on a node's lease ending, no promotion
// of an out-of-sync replica, controller takeover, drain, membership).
// Waits are on the watched range map or on a polled condition, each with a
// deadline; no sleeps.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cluster/control/cluster_rpc.h"
#include "cluster/control/cluster_store.h"
#include "cluster/control/controller.h"
#include "cluster/control/range_map.h"
#include "cluster/etcd_client.h"
#include "gmock/gmock.h"
#include "grpc/grpc.h"
#include "gtest/gtest.h"
#include "tests/cluster/etcd_process.h"
#include "tests/cluster/fault/tcp_proxy.h"
#include "tests/support/test_util.h"

namespace strata::cluster {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::PollUntil;
using ::testing::IsEmpty;

// The nodes' lease TTL: short, so failover tests are quick, but long enough
// that a loaded CI machine renews it in time (renewals run every TTL/3).
constexpr absl::Duration kLeaseTtl = absl::Seconds(2);
// Controllers wait this long into a term before failing over a primary
// they never saw live (the nodes of a test register one after another).
constexpr absl::Duration kStartupGrace = absl::Seconds(1);
// How long after a lease ends the new primary must be in the map.
constexpr absl::Duration kFailoverBound = absl::Seconds(10);

// One cluster member as the wiring round will run it: a lease kept alive,
// its liveness key, and a controller.
struct TestNode {
  NodeId id;
  Lease lease;
  std::unique_ptr<LeaseKeeper> keeper;
  std::unique_ptr<Controller> controller;
};

class ClusterControlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
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
    EtcdClientOptions options;
    options.endpoint = etcd_->endpoint();
    client_ = std::make_unique<EtcdClient>(options);
    store_ = std::make_unique<ClusterStore>(client_.get(), "strata/");
  }

  void TearDown() override {
    for (auto& n : nodes_) {
      if (n->controller) n->controller->Stop();
      if (n->keeper) n->keeper->Stop();
    }
    if (HasFailure() && etcd_ != nullptr) {
      std::fprintf(stderr, "--- etcd log ---\n%s\n", etcd_->Log().c_str());
    }
  }

  static std::vector<Member> Members(int n) {
    std::vector<Member> out;
    for (int i = 1; i <= n; ++i) {
      out.push_back({absl::StrCat("n", i), absl::StrCat("127.0.0.1:", 1000 + i)});
    }
    return out;
  }

  // Initializes `ranges` ranges over n1..n<members>, RF 3.
  void Init(int ranges, int members, ClusterConfig config = {3, 2}) {
    InitOptions o;
    o.num_ranges = ranges;
    o.config = config;
    o.members = Members(members);
    ASSERT_OK(store_->InitCluster(o));
  }

  // Registers node `id` (lease, keeper, liveness key) and, unless
  // `controller` is false, starts its controller.
  TestNode* StartNode(const NodeId& id, bool controller = true,
                      absl::Duration startup_grace = kStartupGrace) {
    auto node = std::make_unique<TestNode>();
    node->id = id;
    auto lease = client_->LeaseGrant(kLeaseTtl);
    EXPECT_OK(lease);
    if (!lease.ok()) return nullptr;
    node->lease = *lease;
    node->keeper = std::make_unique<LeaseKeeper>(client_.get(), node->lease,
                                                 [](const absl::Status&) {});
    EXPECT_OK(store_->RegisterNode({id, "127.0.0.1:1"}, node->lease.id));
    if (controller) {
      ControllerOptions options;
      options.campaign_slice = absl::Milliseconds(100);
      options.reconcile_interval = absl::Milliseconds(200);
      options.startup_grace = startup_grace;
      node->controller = std::make_unique<Controller>(
          store_.get(), id, node->lease.id, options);
      node->controller->Start();
    }
    nodes_.push_back(std::move(node));
    return nodes_.back().get();
  }

  TestNode* Node(const NodeId& id) {
    for (auto& n : nodes_) {
      if (n->id == id) return n.get();
    }
    return nullptr;
  }

  // The node whose controller leads, once one does.
  TestNode* WaitForLeader(const NodeId& not_this = "") {
    TestNode* leader = nullptr;
    PollUntil([&] {
      for (auto& n : nodes_) {
        if (n->id != not_this && n->controller && n->controller->is_leader()) {
          leader = n.get();
          return true;
        }
      }
      return false;
    });
    return leader;
  }

  // Ends a node's lease at once (its liveness and controller keys go).
  void Kill(TestNode* node) {
    node->keeper->Stop();
    ASSERT_OK(client_->LeaseRevoke(node->lease.id));
  }

  strata::testing::TempDir dir_;
  std::unique_ptr<testing::EtcdProcess> etcd_;
  std::unique_ptr<EtcdClient> client_;
  std::unique_ptr<ClusterStore> store_;
  std::vector<std::unique_ptr<TestNode>> nodes_;
};

TEST_F(ClusterControlTest, InitWritesTheLayoutOnceThenAlreadyExists) {
  Init(4, 3);
  ASSERT_OK_AND_ASSIGN(const ClusterConfig config, store_->ReadConfig());
  EXPECT_EQ(config.replication_factor, 3);
  EXPECT_EQ(config.min_in_sync, 2);
  ASSERT_OK_AND_ASSIGN(const auto members, store_->ListMembers());
  EXPECT_EQ(members.size(), 3u);
  EXPECT_EQ(members.at("n2"), "127.0.0.1:1002");
  ASSERT_OK_AND_ASSIGN(const RangeMap map, store_->ReadRangeMap());
  ASSERT_EQ(map.ranges().size(), 4u);
  EXPECT_GT(map.revision(), 0);
  for (const RangeDescriptor& r : map.ranges()) {
    EXPECT_EQ(r.epoch, 1u);
    EXPECT_GT(r.mod_revision, 0);
  }
  EXPECT_EQ(map.Lookup("\x90").id, 2u);

  InitOptions again;
  again.num_ranges = 2;
  again.members = Members(3);
  const absl::Status s = store_->InitCluster(again);
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  // Nothing of the second init landed.
  ASSERT_OK_AND_ASSIGN(const RangeMap after, store_->ReadRangeMap());
  EXPECT_EQ(after.ranges().size(), 4u);

  // Another prefix is another cluster.
  ClusterStore other(client_.get(), "other/");
  EXPECT_TRUE(absl::IsNotFound(other.ReadRangeMap().status()));
  EXPECT_TRUE(absl::IsNotFound(other.ReadConfig().status()));
  ASSERT_OK(other.InitCluster(again));
}

// Members (persistent) and live nodes (bound to a lease) are listed from
// their own prefixes: a registered node is not a member, and a member that
// has not registered is not live.
TEST_F(ClusterControlTest, ListMembersAndListLiveNodesReadTheirOwnKeys) {
  Init(1, 3);
  TestNode* n4 = StartNode("n4", /*controller=*/false);
  ASSERT_NE(n4, nullptr);
  ASSERT_OK_AND_ASSIGN(const auto live, store_->ListLiveNodes());
  EXPECT_THAT(live, ElementsAre(std::pair<const NodeId, std::string>(
                        "n4", "127.0.0.1:1")));
  ASSERT_OK_AND_ASSIGN(const auto members, store_->ListMembers());
  EXPECT_EQ(members.size(), 3u);
  EXPECT_FALSE(members.contains("n4"));
  EXPECT_EQ(members.at("n1"), "127.0.0.1:1001");

  Kill(n4);
  ASSERT_OK_AND_ASSIGN(const auto after, store_->ListLiveNodes());
  EXPECT_THAT(after, IsEmpty());
}

TEST_F(ClusterControlTest, InitRefusesMoreKeysThanOneTxn) {
  InitOptions o;
  o.num_ranges = 200;
  o.members = Members(3);
  EXPECT_TRUE(absl::IsInvalidArgument(store_->InitCluster(o)));
  EXPECT_TRUE(absl::IsNotFound(store_->ReadConfig().status()));
}

TEST_F(ClusterControlTest, ConcurrentUpdatesOfOneRangeOneWinsOtherAborted) {
  Init(2, 3);
  ASSERT_OK_AND_ASSIGN(const RangeMap map, store_->ReadRangeMap());
  RangeDescriptor a = *map.Find(0);
  RangeDescriptor b = *map.Find(0);
  a.primary = "n2";
  a.epoch = 2;
  b.primary = "n3";
  b.epoch = 2;
  ASSERT_OK_AND_ASSIGN(const int64_t rev, store_->UpdateRange(a));
  const auto lost = store_->UpdateRange(b);
  EXPECT_TRUE(absl::IsAborted(lost.status())) << lost.status();
  ASSERT_OK_AND_ASSIGN(const RangeMap after, store_->ReadRangeMap());
  EXPECT_EQ(after.Find(0)->primary, "n2");
  EXPECT_EQ(after.Find(0)->mod_revision, rev);
  // The other range is untouched by either.
  EXPECT_EQ(after.Find(1)->mod_revision, map.Find(1)->mod_revision);
  // An invalid update never reaches etcd.
  RangeDescriptor bad = *after.Find(0);
  bad.primary = "n9";
  EXPECT_TRUE(absl::IsInvalidArgument(store_->UpdateRange(bad).status()));
}

TEST_F(ClusterControlTest, CorruptRangeValueIsDataLossNamingTheKey) {
  Init(2, 3);
  ASSERT_OK(client_->Put("strata/ranges/1", "{\"format\":1"));
  const auto map = store_->ReadRangeMap();
  EXPECT_TRUE(absl::IsDataLoss(map.status()));
  EXPECT_THAT(map.status().message(), HasSubstr("strata/ranges/1"));
  // A value under the wrong id.
  ASSERT_OK_AND_ASSIGN(const auto kv, client_->Get("strata/ranges/0"));
  ASSERT_OK(client_->Put("strata/ranges/1", kv->value));
  EXPECT_THAT(store_->ReadRangeMap().status().message(),
              HasSubstr("holds range id 0"));
  // A missing range is a gap: the map as a whole is DataLoss.
  ASSERT_OK(client_->Delete("strata/ranges/1"));
  const auto gap = store_->ReadRangeMap();
  EXPECT_TRUE(absl::IsDataLoss(gap.status()));
  EXPECT_THAT(gap.status().message(), HasSubstr("gap"));
  ASSERT_OK(client_->Put("strata/config", "{}"));
  EXPECT_TRUE(absl::IsDataLoss(store_->ReadConfig().status()));
}

TEST_F(ClusterControlTest, RangeMapWatchFollowsUpdates) {
  Init(2, 3);
  std::atomic<int> changes{0};
  RangeMapWatch watch(store_.get(), [&](const RangeMap&) { ++changes; });
  ASSERT_OK(watch.Start());
  ASSERT_NE(watch.current(), nullptr);
  RangeDescriptor r = *watch.current()->Find(1);
  r.primary = "n3";
  r.epoch = 2;
  ASSERT_OK_AND_ASSIGN(const int64_t rev, store_->UpdateRange(r));
  ASSERT_TRUE(watch.WaitFor(
      [&](const RangeMap& m) { return m.revision() >= rev; },
      absl::Now() + absl::Seconds(10)));
  EXPECT_EQ(watch.current()->Find(1)->primary, "n3");
  EXPECT_EQ(watch.current()->Find(1)->epoch, 2u);
  // on_change runs just after the map is published.
  EXPECT_TRUE(PollUntil([&] { return changes.load() >= 1; }));
  EXPECT_OK(watch.last_error());
}

// A watch cut off from etcd (a TCP proxy severs its connection) while the
// map changes and etcd compacts its history past the watch's revision:
// when the link heals, the watch cannot resume (the events are gone); it
// re-reads the map at the current revision, watches on from there, and
// current() reaches the new map. Then a later change still arrives.
TEST_F(ClusterControlTest, RangeMapWatchResyncsAfterCompactionWhileCutOff) {
  Init(2, 3);
  ASSERT_OK_AND_ASSIGN(auto proxy, testing::TcpProxy::Start(etcd_->endpoint()));
  EtcdClientOptions options;
  options.endpoint = proxy->address();
  options.call_timeout = absl::Seconds(2);
  EtcdClient cut_client(options);
  ClusterStore cut_store(&cut_client, "strata/");
  RangeMapWatch watch(&cut_store);
  ASSERT_OK(watch.Start());
  // The watch is live: it follows a change.
  RangeDescriptor r = *watch.current()->Find(1);
  r.epoch = 2;
  ASSERT_OK_AND_ASSIGN(r.mod_revision, store_->UpdateRange(r));
  const int64_t seen = r.mod_revision;
  ASSERT_TRUE(watch.WaitFor([&](const RangeMap& m) { return m.revision() >= seen; },
                            absl::Now() + absl::Seconds(10)));

  proxy->Sever();
  r.primary = "n3";
  r.epoch = 3;
  ASSERT_OK_AND_ASSIGN(r.mod_revision, store_->UpdateRange(r));
  ASSERT_OK(client_->Put("strata/unrelated", "x"));
  ASSERT_OK_AND_ASSIGN(const int64_t now, client_->Put("strata/unrelated", "y"));
  ASSERT_OK(client_->Compact(now));
  EXPECT_EQ(watch.current()->Find(1)->epoch, 2u);  // Cut off: still stale.
  proxy->Heal();

  ASSERT_TRUE(watch.WaitFor(
      [](const RangeMap& m) { return m.Find(1)->epoch == 3; },
      absl::Now() + absl::Seconds(15)))
      << watch.last_error();
  EXPECT_EQ(watch.current()->Find(1)->primary, "n3");
  // Counted just after the re-read map is published.
  EXPECT_TRUE(PollUntil([&] { return watch.resyncs() >= 1; }));
  EXPECT_OK(watch.last_error());

  // Watching again after the resync: the next change arrives too.
  r.epoch = 4;
  ASSERT_OK(store_->UpdateRange(r));
  EXPECT_TRUE(watch.WaitFor(
      [](const RangeMap& m) { return m.Find(1)->epoch == 4; },
      absl::Now() + absl::Seconds(10)));
}

// The controller's own watch, cut off the same way while the primary of
// range 0 dies and etcd compacts: with reconcile_interval far beyond the
// test's deadline, only the watch can make the leader act, so the failover
// happening at all shows the watch re-synced (and woke the leader).
TEST_F(ClusterControlTest, ControllerWatchResyncsAfterCompactionWhileCutOff) {
  Init(1, 3);
  for (const char* id : {"n1", "n2", "n3"}) {
    ASSERT_NE(StartNode(id, /*controller=*/false), nullptr);
  }
  ASSERT_OK_AND_ASSIGN(auto proxy, testing::TcpProxy::Start(etcd_->endpoint()));
  EtcdClientOptions options;
  options.endpoint = proxy->address();
  options.call_timeout = absl::Seconds(2);
  EtcdClient cut_client(options);
  ClusterStore cut_store(&cut_client, "strata/");
  ControllerOptions co;
  co.campaign_slice = absl::Milliseconds(100);
  co.reconcile_interval = absl::Hours(1);
  co.startup_grace = absl::ZeroDuration();
  Controller controller(&cut_store, "n3", Node("n3")->lease.id, co);
  controller.Start();
  ASSERT_TRUE(PollUntil([&] { return controller.is_leader(); }));
  // The watch is live: a change under the prefix makes the leader
  // reconcile once more.
  ASSERT_TRUE(PollUntil([&] { return controller.stats().reconciles >= 1; }));
  const int64_t before = controller.stats().reconciles;
  ASSERT_OK(client_->Put("strata/poke", "1"));
  ASSERT_TRUE(PollUntil([&] { return controller.stats().reconciles > before; }));

  proxy->Sever();
  Kill(Node("n1"));
  ASSERT_OK_AND_ASSIGN(const int64_t now, client_->Put("strata/poke", "2"));
  ASSERT_OK(client_->Compact(now));
  proxy->Heal();

  RangeMapWatch watch(store_.get());
  ASSERT_OK(watch.Start());
  EXPECT_TRUE(watch.WaitFor(
      [](const RangeMap& m) { return m.Find(0)->primary == "n2"; },
      absl::Now() + kFailoverBound));
  EXPECT_TRUE(PollUntil([&] { return controller.stats().watch_resyncs >= 1; }));
  controller.Stop();
}

// Three nodes; the primary of range 0 (n1) loses its lease: the controller
// (whichever node leads) moves range 0 to n2 (the next in-sync replica),
// bumps its epoch and drops n1 from in_sync; ranges n1 does not lead keep
// their epoch.
TEST_F(ClusterControlTest, FailoverOnRevokedLeasePromotesInSyncLiveReplica) {
  Init(3, 3);
  for (const char* id : {"n1", "n2", "n3"}) ASSERT_NE(StartNode(id), nullptr);
  ASSERT_NE(WaitForLeader(), nullptr);
  RangeMapWatch watch(store_.get());
  ASSERT_OK(watch.Start());
  const RangeDescriptor before = *watch.current()->Find(0);
  ASSERT_EQ(before.primary, "n1");

  Kill(Node("n1"));
  ASSERT_TRUE(watch.WaitFor(
      [](const RangeMap& m) { return m.Find(0)->primary != "n1"; },
      absl::Now() + kFailoverBound));
  const std::shared_ptr<const RangeMap> map = watch.current();
  const RangeDescriptor& r0 = *map->Find(0);
  EXPECT_EQ(r0.primary, "n2");
  EXPECT_EQ(r0.epoch, before.epoch + 1);
  EXPECT_THAT(r0.in_sync, ElementsAre("n2", "n3"));
  EXPECT_THAT(r0.replicas, ElementsAre("n1", "n2", "n3"));
  EXPECT_EQ(map->Find(1)->epoch, 1u);  // led by n2: untouched
  EXPECT_EQ(map->Find(2)->epoch, 1u);  // led by n3: untouched
  // Exactly one primary change: epochs move by one per failover. (The
  // counter moves just after the Txn the watch saw.)
  auto failovers = [&] {
    int64_t sum = 0;
    for (auto& n : nodes_) sum += n->controller->stats().failovers;
    return sum;
  };
  EXPECT_TRUE(PollUntil([&] { return failovers() >= 1; }));
  EXPECT_EQ(failovers(), 1);
}

// Failover time when a node just stops (its keep-alives end and etcd expires
// its lease): p50 and max over a few runs, each on its own cluster prefix.
TEST_F(ClusterControlTest, FailoverOnExpiredLeaseWithinTtlPlusBound) {
  constexpr int kRuns = 3;
  std::vector<double> seconds;
  for (int run = 0; run < kRuns; ++run) {
    for (auto& n : nodes_) {
      n->controller->Stop();
      n->keeper->Stop();
    }
    nodes_.clear();
    store_ = std::make_unique<ClusterStore>(client_.get(),
                                            absl::StrCat("run", run, "/"));
    Init(1, 3);
    for (const char* id : {"n1", "n2", "n3"}) ASSERT_NE(StartNode(id), nullptr);
    ASSERT_NE(WaitForLeader(), nullptr);
    RangeMapWatch watch(store_.get());
    ASSERT_OK(watch.Start());
    // n1 (the primary) stops renewing: from here until the map changes.
    TestNode* n1 = Node("n1");
    n1->controller->Stop();
    n1->keeper->Stop();
    const absl::Time stopped = absl::Now();
    ASSERT_TRUE(watch.WaitFor(
        [](const RangeMap& m) { return m.Find(0)->primary != "n1"; },
        stopped + kLeaseTtl + kFailoverBound));
    seconds.push_back(absl::ToDoubleSeconds(absl::Now() - stopped));
    EXPECT_EQ(watch.current()->Find(0)->primary, "n2");
    EXPECT_EQ(watch.current()->Find(0)->epoch, 2u);
  }
  std::sort(seconds.begin(), seconds.end());
  std::printf("failover after the primary stops (lease TTL %s): p50 %.3f s, "
              "max %.3f s over %d runs (%s)\n",
              absl::FormatDuration(kLeaseTtl).c_str(), seconds[kRuns / 2],
              seconds.back(), kRuns,
              absl::StrJoin(seconds, " ", [](std::string* out, double s) {
                absl::StrAppend(out, absl::StrFormat("%.3f", s));
              }).c_str());
  // Never before etcd could have expired the lease (the TTL, less the
  // renewal interval already elapsed when the keeper stopped).
  EXPECT_GE(seconds.front(), absl::ToDoubleSeconds(kLeaseTtl) * 2 / 3 - 0.1);
}

// Regression: nodes that register after the first controller started
// looked dead to it and lost their ranges at bootstrap.
TEST_F(ClusterControlTest, NodesRegisteringAfterTheControllerKeepTheirRanges) {
  Init(3, 3);
  TestNode* n1 = StartNode("n1", true, /*startup_grace=*/absl::Seconds(60));
  ASSERT_NE(n1, nullptr);
  ASSERT_TRUE(PollUntil([&] {
    return n1->controller->is_leader() &&
           n1->controller->stats().reconciles >= 2;
  }));
  // n2 and n3 (primaries of ranges 1 and 2) have not registered yet.
  ASSERT_OK_AND_ASSIGN(const RangeMap map, store_->ReadRangeMap());
  for (const RangeDescriptor& r : map.ranges()) {
    EXPECT_EQ(r.epoch, 1u) << r.id;
    EXPECT_EQ(r.primary, r.replicas.front()) << r.id;
  }
  EXPECT_EQ(n1->controller->stats().failovers, 0);
  // Once seen live, a node's loss is acted on at once, grace or not.
  ASSERT_NE(StartNode("n2", /*controller=*/false), nullptr);
  ASSERT_TRUE(PollUntil([&] {
    // Two passes after the registration: the second began after it.
    return n1->controller->stats().reconciles >= 4;
  }));
  RangeMapWatch watch(store_.get());
  ASSERT_OK(watch.Start());
  Kill(Node("n2"));
  ASSERT_TRUE(watch.WaitFor(
      [](const RangeMap& m) { return m.Find(1)->primary != "n2"; },
      absl::Now() + kFailoverBound));
  // Range 1's replicas are n2 n3 n1: n3 is spared as a primary by the
  // grace, but not live, so never promoted; n1 is.
  EXPECT_EQ(watch.current()->Find(1)->primary, "n1");
  EXPECT_EQ(watch.current()->Find(1)->epoch, 2u);
  EXPECT_EQ(watch.current()->Find(2)->epoch, 1u);  // n3's: still spared
  EXPECT_EQ(n1->controller->stats().lost_races, 0);
}

TEST_F(ClusterControlTest, OutOfSyncReplicaIsNeverPromoted) {
  Init(1, 3);
  // Range 0: primary n1; n2 fell behind (the data plane took it out).
  ASSERT_OK_AND_ASSIGN(const RangeMap map, store_->ReadRangeMap());
  RangeDescriptor r = *map.Find(0);
  r.in_sync = {"n1", "n3"};
  ASSERT_OK(store_->UpdateRange(r));
  // n3 (in sync) is not running; n2 (out of sync) is.
  ASSERT_NE(StartNode("n1"), nullptr);
  ASSERT_NE(StartNode("n2"), nullptr);
  ASSERT_NE(WaitForLeader(), nullptr);
  Kill(Node("n1"));
  TestNode* n2 = Node("n2");
  ASSERT_TRUE(PollUntil([&] {
    return n2->controller->is_leader() &&
           n2->controller->stats().stranded_ranges == 1;
  }));
  ASSERT_OK_AND_ASSIGN(const RangeMap after, store_->ReadRangeMap());
  EXPECT_EQ(after.Find(0)->primary, "n1");
  EXPECT_EQ(after.Find(0)->epoch, 1u);
  EXPECT_EQ(n2->controller->stats().failovers, 0);
  // n3 comes back: it takes the range, not n2.
  RangeMapWatch watch(store_.get());
  ASSERT_OK(watch.Start());
  ASSERT_NE(StartNode("n3"), nullptr);
  ASSERT_TRUE(watch.WaitFor(
      [](const RangeMap& m) { return m.Find(0)->primary != "n1"; },
      absl::Now() + kFailoverBound));
  EXPECT_EQ(watch.current()->Find(0)->primary, "n3");
  EXPECT_EQ(watch.current()->Find(0)->epoch, 2u);
  EXPECT_THAT(watch.current()->Find(0)->in_sync, ElementsAre("n3"));
}

// The controller's node dies: another node's controller takes over and
// handles the next failover; the old term can no longer write.
TEST_F(ClusterControlTest, SecondControllerTakesOverAndOldTermIsFenced) {
  Init(3, 3);
  for (const char* id : {"n1", "n2", "n3"}) ASSERT_NE(StartNode(id), nullptr);
  TestNode* first = WaitForLeader();
  ASSERT_NE(first, nullptr);
  const int64_t old_term = first->controller->term();
  // Stop the leader's controller without ending the lease... then end it.
  first->controller->Stop();
  Kill(first);
  TestNode* second = WaitForLeader(first->id);
  ASSERT_NE(second, nullptr);
  EXPECT_GT(second->controller->term(), old_term);

  RangeMapWatch watch(store_.get());
  ASSERT_OK(watch.Start());
  // The failover of the dead leader's own range happened (or happens).
  const RangeId first_range = first->id == "n1" ? 0 : first->id == "n2" ? 1 : 2;
  ASSERT_TRUE(watch.WaitFor(
      [&](const RangeMap& m) {
        return m.Find(first_range)->primary != first->id;
      },
      absl::Now() + kFailoverBound));
  // A write guarded by the old term is refused.
  RangeDescriptor r = *watch.current()->Find(first_range);
  r.epoch += 1;
  const auto fenced = store_->UpdateRange(
      r, {Compare::CreateRevisionIs(store_->ControllerKey(), old_term)});
  EXPECT_TRUE(absl::IsAborted(fenced.status())) << fenced.status();
}

TEST_F(ClusterControlTest, ClusterStatusShowsRangesNodesAndController) {
  EXPECT_TRUE(absl::IsNotFound(ReadClusterStatus(*store_).status()));
  Init(3, 3);
  ASSERT_NE(StartNode("n1"), nullptr);
  ASSERT_NE(StartNode("n2", /*controller=*/false), nullptr);
  TestNode* leader = WaitForLeader();
  ASSERT_NE(leader, nullptr);
  ASSERT_OK_AND_ASSIGN(const v1::GetClusterStatusResponse status,
                       ReadClusterStatus(*store_));
  EXPECT_EQ(status.ranges_size(), 3);
  EXPECT_EQ(status.ranges(0).primary_address(), "127.0.0.1:1001");
  EXPECT_EQ(status.controller(), "n1");
  EXPECT_EQ(status.controller_term(), leader->controller->term());
  EXPECT_EQ(status.replication_factor(), 3u);
  EXPECT_EQ(status.min_in_sync(), 2u);
  ASSERT_EQ(status.nodes_size(), 3);
  EXPECT_TRUE(status.nodes(0).live());   // n1
  EXPECT_TRUE(status.nodes(1).live());   // n2
  EXPECT_FALSE(status.nodes(2).live());  // n3 never started
  EXPECT_TRUE(status.nodes(2).member());
}

TEST_F(ClusterControlTest, DrainMovesPrimariesOffANode) {
  Init(3, 3);
  // No controllers: the drain alone changes the map.
  for (const char* id : {"n1", "n2", "n3"}) {
    ASSERT_NE(StartNode(id, /*controller=*/false), nullptr);
  }
  ASSERT_OK_AND_ASSIGN(const DrainResult drained, Drain(*store_, "n2"));
  EXPECT_THAT(drained.moved, ElementsAre(1));
  EXPECT_THAT(drained.stuck, IsEmpty());
  ASSERT_OK_AND_ASSIGN(const RangeMap map, store_->ReadRangeMap());
  EXPECT_EQ(map.Find(1)->primary, "n3");
  EXPECT_EQ(map.Find(1)->epoch, 2u);
  for (const RangeDescriptor& r : map.ranges()) EXPECT_NE(r.primary, "n2");
  // Draining again is a no-op.
  ASSERT_OK_AND_ASSIGN(const DrainResult again, Drain(*store_, "n2"));
  EXPECT_THAT(again.moved, IsEmpty());
  // With every other replica down, n1 cannot be drained.
  Kill(Node("n2"));
  Kill(Node("n3"));
  ASSERT_OK_AND_ASSIGN(const DrainResult stuck, Drain(*store_, "n1"));
  EXPECT_THAT(stuck.moved, IsEmpty());
  EXPECT_THAT(stuck.stuck, ElementsAre(0));
}

TEST_F(ClusterControlTest, RemoveMemberRefusesThenAddMemberRefills) {
  Init(2, 4, {3, 3});  // min_in_sync 3 = RF: no replica may go
  ASSERT_OK_AND_ASSIGN(const RangeMap map, store_->ReadRangeMap());
  // n3 holds replicas of both ranges, in sync.
  ASSERT_TRUE(map.Find(0)->IsInSync("n3"));
  absl::Status refused = RemoveMember(*store_, "n3");
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("min_in_sync 3"));
  refused = RemoveMember(*store_, "n1");
  EXPECT_TRUE(absl::IsFailedPrecondition(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("primary of range 0"));
  ASSERT_OK_AND_ASSIGN(const RangeMap same, store_->ReadRangeMap());
  EXPECT_EQ(same.revision(), map.revision());  // nothing written
  ASSERT_OK_AND_ASSIGN(auto members, store_->ListMembers());
  EXPECT_TRUE(members.contains("n3"));

  // n4 holds only range 1's replica (n2 n3 n4) and not range 0's; with
  // range 1 out of sync on n4, it can go.
  RangeDescriptor r1 = *same.Find(1);
  r1.in_sync = {"n2", "n3"};
  ASSERT_OK(store_->UpdateRange(r1));
  ASSERT_OK(RemoveMember(*store_, "n4"));
  ASSERT_OK_AND_ASSIGN(const RangeMap removed, store_->ReadRangeMap());
  EXPECT_THAT(removed.Find(1)->replicas, ElementsAre("n2", "n3"));
  ASSERT_OK_AND_ASSIGN(members, store_->ListMembers());
  EXPECT_FALSE(members.contains("n4"));

  // A new member refills the under-replicated range, out of sync.
  ASSERT_OK_AND_ASSIGN(const auto placed,
                       AddMember(*store_, {"n5", "127.0.0.1:1005"}));
  EXPECT_THAT(placed, ElementsAre(1));
  ASSERT_OK_AND_ASSIGN(const RangeMap added, store_->ReadRangeMap());
  EXPECT_THAT(added.Find(1)->replicas, ElementsAre("n2", "n3", "n5"));
  EXPECT_THAT(added.Find(1)->in_sync, ElementsAre("n2", "n3"));
  ASSERT_OK_AND_ASSIGN(members, store_->ListMembers());
  EXPECT_EQ(members.at("n5"), "127.0.0.1:1005");
  EXPECT_TRUE(absl::IsNotFound(RemoveMember(*store_, "n9")));
}

}  // namespace
}  // namespace strata::cluster
