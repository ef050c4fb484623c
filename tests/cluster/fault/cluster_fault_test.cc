// The cluster fault-injection runs (issue 18, "A fault-injection test that
// proves it"; docs/cluster.md, "Fault-injection runs"). Each test is one
// fault, repeated STRATA_FAULT_RUNS times (default 1), on a fresh cluster:
// one etcd and 3 strata-server nodes (one range, RF 3) on 127.0.0.1, each
// node reaching etcd through its own TcpProxy. Clients (4 threads) run
// Put / Get / Txn compare-and-set with unique values over 10 keys, routed
// to the primary, for STRATA_FAULT_SECONDS (default 3) before the fault
// and until writes have resumed after it. Then, per run:
//   - no acknowledged write lost and every key linearizable: the final
//     reads at the (new) primary are appended to the history and the
//     whole history goes through the checker (cluster/linearizability.h);
//   - at most one primary per epoch, epochs never back (the range map's
//     history from an etcd watch that starts at revision 1);
//   - for faults that replace the primary: a new epoch is installed and
//     writes resume at another node within kFailoverBound; the failover
//     time (fault -> first acknowledged write at the new primary) is
//     printed, and p50/max over the runs at the end;
//   - a paused or cut-off old primary, once back, acknowledges no write.
// Environment: STRATA_FAULT_RUNS, STRATA_FAULT_SECONDS,
// STRATA_FAULT_NODE_FLAGS (extra strata-server flags, space-separated,
// e.g. a shorter lease; default --cluster_lease_ttl=2s), STRATA_FAULT_SKEW
// (libfaketime's FAKETIME for the skewed node; default "+0 x0.5": its
// clocks run at half speed), STRATA_FAULT_LOGS=1 (print the tail of every
// node's log after each run).
// Skipped (with the reason) while strata-server has no --cluster_etcd.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster/fault/fault_harness.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

using cluster::OpOutcome;

// Writes resume at a new primary within this after the old one dies: the
// lease TTL (5 s by default, docs/cluster.md), etcd's expiry check, the
// controller's Txn and the new primary taking over, with room for a
// loaded 2-core machine.
constexpr absl::Duration kFailoverBound = absl::Seconds(20);

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}
std::string EnvStr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

enum class Fault { kKillPrimary, kPausePrimary, kCutPrimary, kRestartReplica, kSkewPrimary };

const char* Name(Fault f) {
  switch (f) {
    case Fault::kKillPrimary: return "SIGKILL the primary";
    case Fault::kPausePrimary: return "SIGSTOP the primary past its lease";
    case Fault::kCutPrimary: return "cut the primary from etcd";
    case Fault::kRestartReplica: return "restart a replica";
    case Fault::kSkewPrimary: return "skew the primary's clock";
  }
  return "?";
}

bool WaitForAcks(const Workload& w, int64_t from, int64_t n,
                 absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (w.acknowledged_writes() < from + n) {
    if (absl::Now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // Poll.
  }
  return true;
}

class FaultTest : public ::testing::Test {
 protected:
  // One fault, STRATA_FAULT_RUNS times; failover times printed.
  void RunFault(Fault fault) {
    const int runs = std::max(1, EnvInt("STRATA_FAULT_RUNS", 1));
    std::vector<absl::Duration> failovers;
    for (int run = 0; run < runs && !HasFatalFailure(); ++run) {
      SCOPED_TRACE(absl::StrCat(Name(fault), ", run ", run + 1, "/", runs));
      std::optional<absl::Duration> t = OneRun(fault);
      if (t) failovers.push_back(*t);
    }
    if (!failovers.empty()) {
      std::sort(failovers.begin(), failovers.end());
      std::printf("failover (%s): runs %zu, p50 %s, max %s\n", Name(fault),
                  failovers.size(),
                  absl::FormatDuration(failovers[failovers.size() / 2]).c_str(),
                  absl::FormatDuration(failovers.back()).c_str());
    }
  }

  std::optional<absl::Duration> OneRun(Fault fault) {
    const absl::Duration phase = absl::Seconds(EnvInt("STRATA_FAULT_SECONDS", 3));
    TempDir dir;
    ClusterOptions co;
    // A 2 s lease (the default is 5 s) keeps each run short; the
    // failover bound holds for either.
    const std::string default_flags = "--cluster_lease_ttl=2s";
    for (const auto& f :
         absl::StrSplit(EnvStr("STRATA_FAULT_NODE_FLAGS", default_flags), ' ',
                        absl::SkipEmpty())) {
      co.node_flags.emplace_back(f);
    }
    if (fault == Fault::kSkewPrimary) {
      // `strata cluster init` makes the first member (n1) the primary.
      co.node_env[0] = {"LD_PRELOAD=" + FaketimeLibrary(),
                        "FAKETIME=" + EnvStr("STRATA_FAULT_SKEW", "+0 x0.5")};
    }
    auto c = FaultCluster::Start(dir.path(), co);
    if (!c.ok()) {
      ADD_FAILURE() << c.status();
      return std::nullopt;
    }
    FaultCluster& cluster = **c;
    Workload w(cluster.addresses(), WorkloadOptions{});
    w.Start();
    const absl::Time load_until = absl::Now() + phase;
    EXPECT_TRUE(WaitForAcks(w, 0, 50, absl::Seconds(20)))
        << "no progress before the fault\n" << cluster.Logs();
    while (absl::Now() < load_until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Load phase.
    }

    const RangeEvent before = cluster.Current();
    const int old = cluster.IndexOf(before.primary);
    EXPECT_GE(old, 0) << "range map names no known primary";
    if (old < 0) return std::nullopt;
    const int64_t fault_ns = MonotonicNs();
    std::optional<absl::Duration> failover;
    bool replaced = false;
    switch (fault) {
      case Fault::kKillPrimary:
        cluster.node(old).Kill();
        replaced = true;
        break;
      case Fault::kPausePrimary:
        cluster.node(old).Pause();
        replaced = true;
        break;
      case Fault::kCutPrimary:
        cluster.proxy(old).Sever();
        replaced = true;
        break;
      case Fault::kRestartReplica: {
        const int r = (old + 1) % cluster.size();
        cluster.node(r).Kill();
        EXPECT_TRUE(cluster.node(r).Restart().ok()) << cluster.node(r).LogTail();
        break;
      }
      case Fault::kSkewPrimary:
        break;  // The skew was there from the start: run on under it.
    }
    if (replaced) {
      auto next = cluster.WaitForEpochAbove(before.epoch, kFailoverBound);
      EXPECT_TRUE(next.ok()) << next.status();
      if (next.ok()) {
        EXPECT_NE(next->primary, before.primary);
      }
    }
    if (fault == Fault::kRestartReplica || fault == Fault::kSkewPrimary) {
      // Nothing here is a reason to change the primary.
      EXPECT_EQ(cluster.Current().primary, before.primary);
    }
    const int64_t acked = w.acknowledged_writes();
    EXPECT_TRUE(WaitForAcks(w, acked, 50, kFailoverBound))
        << "writes did not resume after: " << Name(fault) << "\n" << cluster.Logs();
    if (fault == Fault::kPausePrimary || fault == Fault::kCutPrimary) {
      // The zombie comes back: it must acknowledge nothing now.
      if (fault == Fault::kPausePrimary) cluster.node(old).Resume();
      if (fault == Fault::kCutPrimary) cluster.proxy(old).Heal();
      for (int i = 0; i < 5; ++i) {
        const int code = w.PutDirect(old, absl::StrCat("k", i),
                                     absl::StrCat("zombie-", i));
        EXPECT_NE(code, 0) << "the replaced primary acknowledged a write";
      }
    }
    // Load after the fault (the skew run keeps going under its skew).
    const absl::Time after_until = absl::Now() + phase;
    while (absl::Now() < after_until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Load phase.
    }
    w.Stop();

    std::vector<LoggedOp> ops = w.Operations();
    auto finals = w.FinalReads(absl::Seconds(20));
    EXPECT_TRUE(finals.ok()) << finals.status() << "\n" << cluster.Logs();
    if (finals.ok()) ops.insert(ops.end(), finals->begin(), finals->end());
    auto result = CheckLogged(ops, absl::Seconds(60));
    EXPECT_TRUE(result.ok()) << result.status();
    if (result.ok()) {
      for (const auto& k : result->keys) {
        EXPECT_EQ(k.verdict, cluster::Verdict::kLinearizable)
            << k.key << ": " << k.explanation;
      }
    }
    for (const std::string& bad : CheckEpochs(cluster.RangeHistory())) {
      ADD_FAILURE() << bad;
    }
    {
      int64_t acked = 0, unknown = 0;
      for (const LoggedOp& o : ops) {
        acked += o.op.type != cluster::OpType::kRead && o.op.outcome == OpOutcome::kOk;
        unknown += o.op.outcome == OpOutcome::kUnknown;
      }
      const std::vector<RangeEvent> history = cluster.RangeHistory();
      std::string epochs;
      for (const RangeEvent& e : history) {
        const std::string step = absl::StrCat(" ", e.epoch, ":", e.primary);
        if (!absl::EndsWith(epochs, step)) epochs += step;
      }
      std::printf("%s: %zu operations (%lld writes acknowledged, %lld "
                  "indeterminate); epoch:primary%s\n",
                  Name(fault), ops.size(), static_cast<long long>(acked),
                  static_cast<long long>(unknown), epochs.c_str());
    }
    if (EnvInt("STRATA_FAULT_LOGS", 0) != 0) {
      std::printf("%s\n", cluster.Logs().c_str());
    }
    if (replaced) {
      failover = FailoverTime(ops, fault_ns, old);
      EXPECT_TRUE(failover.has_value()) << "no write acknowledged at a new primary";
      if (failover) {
        EXPECT_LT(*failover, kFailoverBound);
        std::printf("%s: failover %s\n", Name(fault),
                    absl::FormatDuration(*failover).c_str());
      }
    }
    return failover;
  }
};

TEST_F(FaultTest, KillPrimary) { RunFault(Fault::kKillPrimary); }
TEST_F(FaultTest, PausePrimaryPastItsLease) { RunFault(Fault::kPausePrimary); }
TEST_F(FaultTest, CutPrimaryFromEtcd) { RunFault(Fault::kCutPrimary); }
TEST_F(FaultTest, RestartReplica) { RunFault(Fault::kRestartReplica); }
TEST_F(FaultTest, SkewPrimaryClock) {
  if (const std::string why = FaketimeUnavailableReason(); !why.empty()) {
    GTEST_SKIP() << why;
  }
  RunFault(Fault::kSkewPrimary);
}

}  // namespace
}  // namespace strata::testing
