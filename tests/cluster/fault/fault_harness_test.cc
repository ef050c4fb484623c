// The fault-injection harness's own tests (tests/cluster/fault/): the TCP
// proxy that cuts a node from etcd, the process control, the client
// workload and its history, and the invariant checks, against a real etcd
// and a standalone strata-server, so the harness is proven before (and
// independently of) the cluster runs in cluster_fault_test.cc.

#include <signal.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster/fault/fault_harness.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

using cluster::OpOutcome;
using cluster::OpType;

// Waits (bounded) until the workload has `n` more acknowledged writes than
// `from`.
bool WaitForAcks(const Workload& w, int64_t from, int64_t n,
                 absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (w.acknowledged_writes() < from + n) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // Poll.
  }
  return true;
}

// Stops the workload, reads every key at the end and checks the whole
// history; returns it.
std::vector<LoggedOp> FinishAndCheck(Workload& w) {
  w.Stop();
  std::vector<LoggedOp> ops = w.Operations();
  auto final_reads = w.FinalReads(absl::Seconds(20));
  EXPECT_TRUE(final_reads.ok()) << final_reads.status();
  if (final_reads.ok()) ops.insert(ops.end(), final_reads->begin(), final_reads->end());
  auto result = CheckLogged(ops, absl::Seconds(30));
  EXPECT_TRUE(result.ok()) << result.status();
  if (result.ok()) {
    EXPECT_EQ(result->verdict, cluster::Verdict::kLinearizable);
    for (const auto& k : result->keys) {
      EXPECT_EQ(k.verdict, cluster::Verdict::kLinearizable)
          << k.key << ": " << k.explanation;
    }
  }
  return ops;
}

NodeSpec StandaloneSpec(const std::string& dir) {
  NodeSpec spec;
  spec.binary = BinaryPath("server/strata-server");
  spec.data_dir = dir + "/node";
  spec.log_path = dir + "/node.log";
  spec.flags = {"--memtable_bytes=65536"};
  return spec;
}

TEST(TcpProxyTest, ForwardsUntilSeveredAndAgainAfterHeal) {
  TempDir dir;
  auto etcd = EtcdProcess::Start(dir.path() + "/etcd");
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  auto proxy = TcpProxy::Start((*etcd)->endpoint());
  ASSERT_TRUE(proxy.ok()) << proxy.status();

  cluster::EtcdClientOptions o;
  o.endpoint = (*proxy)->address();
  o.call_timeout = absl::Milliseconds(500);
  cluster::EtcdClient client(o);
  ASSERT_TRUE(client.Put("a", "1").ok());
  EXPECT_GE((*proxy)->connections_forwarded(), 1);

  (*proxy)->Sever();
  EXPECT_FALSE(client.Get("a").ok()) << "a severed link still answered";
  EXPECT_FALSE(client.Put("a", "2").ok());

  (*proxy)->Heal();
  // The client's channel reconnects with backoff: bounded retries.
  bool back = false;
  for (int i = 0; i < 40 && !back; ++i) back = client.Get("a").ok();
  ASSERT_TRUE(back) << "no answer through the healed proxy";
  auto v = client.Get("a");
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->value, "1");  // The Put during the cut never arrived.
}

TEST(TcpProxyTest, RejectsABadTarget) {
  EXPECT_FALSE(TcpProxy::Start("localhost").ok());
  EXPECT_FALSE(TcpProxy::Start("example:12").ok());
  EXPECT_FALSE(TcpProxy::Start("127.0.0.1:0").ok());
}

// SIGKILL mid-load and restart on the same port and directory: clients
// see connection failures (indeterminate writes), then carry on; the
// history with the final reads is linearizable and the restart time is
// measured like a failover.
TEST(HarnessStandaloneTest, KillAndRestartKeepsAHistoryThatChecks) {
  TempDir dir;
  NodeSpec spec = StandaloneSpec(dir.path());
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  spec.port = *port;
  auto node = NodeProcess::Start(spec);
  ASSERT_TRUE(node.ok()) << node.status();

  Workload w({(*node)->address()}, WorkloadOptions{});
  w.Start();
  ASSERT_TRUE(WaitForAcks(w, 0, 150, absl::Seconds(20)));
  const int64_t fault_ns = MonotonicNs();
  (*node)->Kill();
  EXPECT_FALSE((*node)->running());
  ASSERT_TRUE((*node)->Restart().ok()) << (*node)->LogTail();
  const int64_t acked = w.acknowledged_writes();
  ASSERT_TRUE(WaitForAcks(w, acked, 100, absl::Seconds(20)));
  std::vector<LoggedOp> ops = FinishAndCheck(w);
  // The same node came back: measure from the kill to its first ack.
  auto back = FailoverTime(ops, fault_ns, /*old_node=*/-1);
  ASSERT_TRUE(back.has_value());
  EXPECT_LT(*back, absl::Seconds(20));
  std::printf("standalone restart: writes resumed after %s\n",
              absl::FormatDuration(*back).c_str());
}

// SIGSTOP longer than the clients' deadline, then SIGCONT: operations in
// flight time out (indeterminate: they may still be applied when the
// process resumes) and the history still checks.
TEST(HarnessStandaloneTest, PauseLongerThanTheDeadlineGivesIndeterminateOps) {
  TempDir dir;
  NodeSpec spec = StandaloneSpec(dir.path());
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  spec.port = *port;
  auto node = NodeProcess::Start(spec);
  ASSERT_TRUE(node.ok()) << node.status();

  WorkloadOptions wo;
  wo.rpc_timeout = absl::Milliseconds(300);
  Workload w({(*node)->address()}, wo);
  w.Start();
  ASSERT_TRUE(WaitForAcks(w, 0, 100, absl::Seconds(20)));
  (*node)->Pause();
  const int64_t paused = w.acknowledged_writes();
  // Every thread's call in flight has to time out: 3 deadlines.
  std::this_thread::sleep_for(std::chrono::milliseconds(900));  // The fault's length.
  EXPECT_LE(w.acknowledged_writes(), paused + wo.threads)
      << "a stopped server acknowledged writes";
  (*node)->Resume();
  ASSERT_TRUE(WaitForAcks(w, w.acknowledged_writes(), 100, absl::Seconds(20)));
  std::vector<LoggedOp> ops = FinishAndCheck(w);
  int unknown = 0;
  for (const LoggedOp& o : ops) unknown += o.op.outcome == OpOutcome::kUnknown;
  EXPECT_GT(unknown, 0) << "no operation timed out during the pause";
}

// A node under libfaketime (its clocks at half speed) serves a history
// that checks: the harness's clock-skew mechanism works with gRPC's
// threads. Skipped where it cannot run (FaketimeUnavailableReason).
TEST(HarnessStandaloneTest, SkewedClockNodeServes) {
  if (const std::string why = FaketimeUnavailableReason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  const std::string lib = FaketimeLibrary();
  TempDir dir;
  NodeSpec spec = StandaloneSpec(dir.path());
  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  spec.port = *port;
  spec.env = {"LD_PRELOAD=" + lib, "FAKETIME=-1h x0.5"};
  auto node = NodeProcess::Start(spec);
  ASSERT_TRUE(node.ok()) << node.status();
  Workload w({(*node)->address()}, WorkloadOptions{});
  w.Start();
  ASSERT_TRUE(WaitForAcks(w, 0, 150, absl::Seconds(20)));
  FinishAndCheck(w);
}

TEST(EpochCheckTest, OnePrimaryPerEpochAndNoGoingBack) {
  std::vector<RangeEvent> good = {{1, 1, 1, "n1"}, {2, 1, 1, "n1"},
                                  {3, 1, 2, "n2"}, {4, 1, 3, "n3"},
                                  {5, 2, 1, "n3"}};
  EXPECT_TRUE(CheckEpochs(good).empty());
  std::vector<RangeEvent> two = {{1, 1, 1, "n1"}, {2, 1, 1, "n2"}};
  EXPECT_EQ(CheckEpochs(two).size(), 1u);
  std::vector<RangeEvent> back = {{1, 1, 2, "n1"}, {2, 1, 1, "n1"}};
  EXPECT_EQ(CheckEpochs(back).size(), 1u);
}

// The oracle the fault runs rely on, on the shapes they produce: a final
// read that misses an acknowledged write (a lost write), or a deposed
// primary acknowledging a write the new one never saw, is refused; an
// indeterminate write may or may not show.
TEST(CheckLoggedTest, CatchesALostAcknowledgedWrite) {
  auto op = [](OpType t, OpOutcome o, std::optional<std::string> v,
               int64_t inv, std::optional<int64_t> c) {
    LoggedOp lo;
    lo.op.key = "k0";
    lo.op.type = t;
    lo.op.outcome = o;
    lo.op.value = std::move(v);
    lo.op.invoke_ns = inv;
    lo.op.complete_ns = c;
    return lo;
  };
  const std::vector<LoggedOp> lost = {
      op(OpType::kWrite, OpOutcome::kOk, "a", 0, 10),
      op(OpType::kRead, OpOutcome::kOk, std::nullopt, 20, 30)};  // Final read.
  auto r = CheckLogged(lost, absl::Seconds(5));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->verdict, cluster::Verdict::kNotLinearizable);

  const std::vector<LoggedOp> zombie = {
      op(OpType::kWrite, OpOutcome::kOk, "a", 0, 10),
      op(OpType::kWrite, OpOutcome::kOk, "b", 20, 30),   // New primary.
      op(OpType::kWrite, OpOutcome::kOk, "z", 40, 50),   // Zombie acks.
      op(OpType::kRead, OpOutcome::kOk, "b", 60, 70)};   // Final read.
  r = CheckLogged(zombie, absl::Seconds(5));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->verdict, cluster::Verdict::kNotLinearizable);

  for (const char* final_value : {"a", "u"}) {
    const std::vector<LoggedOp> maybe = {
        op(OpType::kWrite, OpOutcome::kOk, "a", 0, 10),
        op(OpType::kWrite, OpOutcome::kUnknown, "u", 20, std::nullopt),
        op(OpType::kRead, OpOutcome::kOk, final_value, 60, 70)};
    r = CheckLogged(maybe, absl::Seconds(5));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->verdict, cluster::Verdict::kLinearizable) << final_value;
  }
}

TEST(FailoverTimeTest, FirstAckAtAnotherNodeAfterTheFault) {
  auto op = [](OpType t, OpOutcome o, int64_t inv, std::optional<int64_t> c,
               int node) {
    LoggedOp lo;
    lo.op.type = t;
    lo.op.outcome = o;
    lo.op.invoke_ns = inv;
    lo.op.complete_ns = c;
    lo.node = node;
    return lo;
  };
  std::vector<LoggedOp> ops = {
      op(OpType::kWrite, OpOutcome::kOk, 50, 60, 0),        // Before.
      op(OpType::kRead, OpOutcome::kOk, 110, 120, 1),       // A read.
      op(OpType::kWrite, OpOutcome::kUnknown, 105, {}, -1),  // No answer.
      op(OpType::kWrite, OpOutcome::kOk, 120, 130, 0),      // Old node.
      op(OpType::kCas, OpOutcome::kFailed, 120, 125, 1),    // Wrote nothing.
      op(OpType::kWrite, OpOutcome::kOk, 140, 170, 2),
      op(OpType::kCas, OpOutcome::kOk, 130, 160, 1),        // The first.
  };
  auto t = FailoverTime(ops, 100, 0);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, absl::Nanoseconds(60));
  EXPECT_FALSE(FailoverTime(ops, 1000, 0).has_value());
}

}  // namespace
}  // namespace strata::testing
