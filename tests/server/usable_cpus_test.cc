// The usable-CPU count (server/usable_cpus.h) against fake /proc and
// cgroup trees: affinity only, a quota on the process's cgroup or an
// ancestor, "max", cgroup v1, missing and malformed files.

#include "server/usable_cpus.h"

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::TempDir;
using ::strata::testing::WriteFileOrDie;

class UsableCpusTest : public ::testing::Test {
 protected:
  // Writes /proc/self/cgroup with `membership` and returns sources that
  // read the fake tree with `affinity` CPUs in the mask.
  CpuSources Sources(const std::string& membership, int affinity) {
    WriteFileOrDie(dir_.path() + "/cgroup", membership);
    CpuSources s;
    s.proc_self_cgroup = dir_.path() + "/cgroup";
    s.cgroup_root = dir_.path() + "/fs";
    s.affinity = affinity;
    return s;
  }
  // Writes <root>/<cgroup>/cpu.max.
  void CpuMax(const std::string& cgroup, const std::string& text) {
    const std::string d = dir_.path() + "/fs" + cgroup;
    std::filesystem::create_directories(d);
    WriteFileOrDie(d + "/cpu.max", text);
  }
  TempDir dir_;
};

TEST(ParseCpuMaxTest, QuotaOverPeriod) {
  EXPECT_DOUBLE_EQ(*ParseCpuMax("150000 100000\n"), 1.5);
  EXPECT_DOUBLE_EQ(*ParseCpuMax("50000 100000"), 0.5);
  EXPECT_DOUBLE_EQ(*ParseCpuMax("200000"), 2.0);  // Default period.
}

TEST(ParseCpuMaxTest, MaxOrMalformedMeansNoQuota) {
  EXPECT_FALSE(ParseCpuMax("max 100000\n").has_value());
  EXPECT_FALSE(ParseCpuMax("").has_value());
  EXPECT_FALSE(ParseCpuMax("lots 100000").has_value());
  EXPECT_FALSE(ParseCpuMax("100000 0").has_value());
  EXPECT_FALSE(ParseCpuMax("-5 100000").has_value());
}

TEST(ParseCgroupV2PathTest, FindsTheUnifiedLine) {
  EXPECT_EQ(*ParseCgroupV2Path("0::/kubepods/pod1/ctr\n"), "/kubepods/pod1/ctr");
  // Hybrid hosts list v1 controllers too; only the "0::" line counts.
  EXPECT_EQ(*ParseCgroupV2Path("12:cpu,cpuacct:/x\n0::/y\n"), "/y");
  EXPECT_FALSE(ParseCgroupV2Path("12:cpu,cpuacct:/x\n4:memory:/x\n"));
  EXPECT_FALSE(ParseCgroupV2Path(""));
}

TEST_F(UsableCpusTest, NoQuotaIsTheAffinityCount) {
  CpuMax("/svc", "max 100000\n");
  UsableCpus c = DetectUsableCpus(Sources("0::/svc\n", 8));
  EXPECT_EQ(c.count, 8);
  EXPECT_EQ(c.affinity, 8);
  EXPECT_FALSE(c.cgroup_quota.has_value());
  EXPECT_EQ(c.Describe(), "usable CPUs 8: affinity 8, cgroup quota none");
}

TEST_F(UsableCpusTest, QuotaIsRoundedUp) {
  CpuMax("/kubepods/pod1", "150000 100000\n");
  UsableCpus c = DetectUsableCpus(Sources("0::/kubepods/pod1\n", 8));
  EXPECT_EQ(c.count, 2);
  ASSERT_TRUE(c.cgroup_quota.has_value());
  EXPECT_DOUBLE_EQ(*c.cgroup_quota, 1.5);
  EXPECT_EQ(c.Describe(), "usable CPUs 2: affinity 8, cgroup quota 1.50");
}

TEST_F(UsableCpusTest, FractionalQuotaBelowOneIsOneCpu) {
  CpuMax("/a", "20000 100000\n");
  EXPECT_EQ(DetectUsableCpus(Sources("0::/a\n", 4)).count, 1);
}

TEST_F(UsableCpusTest, AffinitySmallerThanQuotaWins) {
  CpuMax("/a", "400000 100000\n");
  UsableCpus c = DetectUsableCpus(Sources("0::/a\n", 1));
  EXPECT_EQ(c.count, 1);
  EXPECT_DOUBLE_EQ(*c.cgroup_quota, 4.0);
}

TEST_F(UsableCpusTest, TightestAncestorQuotaWins) {
  CpuMax("/kubepods", "100000 100000\n");       // 1 CPU for the pod slice.
  CpuMax("/kubepods/pod1", "max 100000\n");     // None on the pod.
  CpuMax("/kubepods/pod1/ctr", "300000 100000\n");  // 3 on the container.
  UsableCpus c = DetectUsableCpus(Sources("0::/kubepods/pod1/ctr\n", 16));
  EXPECT_EQ(c.count, 1);
  EXPECT_DOUBLE_EQ(*c.cgroup_quota, 1.0);
}

TEST_F(UsableCpusTest, NamespacedRootCgroupReadsTheMountRoot) {
  // Inside a container with its own cgroup namespace the path is "/" and
  // the container's limit is in the mount's top-level cpu.max.
  CpuMax("", "200000 100000\n");
  EXPECT_EQ(DetectUsableCpus(Sources("0::/\n", 8)).count, 2);
}

TEST_F(UsableCpusTest, CgroupV1MeansNoQuota) {
  CpuMax("/x", "100000 100000\n");
  UsableCpus c =
      DetectUsableCpus(Sources("11:cpu,cpuacct:/x\n3:memory:/x\n", 6));
  EXPECT_EQ(c.count, 6);
  EXPECT_FALSE(c.cgroup_quota.has_value());
}

TEST_F(UsableCpusTest, MissingFilesMeanNoQuota) {
  // No cpu.max anywhere (controller not enabled).
  EXPECT_EQ(DetectUsableCpus(Sources("0::/nowhere\n", 3)).count, 3);
  // No /proc/self/cgroup at all.
  CpuSources s;
  s.proc_self_cgroup = dir_.path() + "/absent";
  s.cgroup_root = dir_.path() + "/fs";
  s.affinity = 5;
  EXPECT_EQ(DetectUsableCpus(s).count, 5);
}

TEST_F(UsableCpusTest, MalformedQuotaIsIgnored) {
  CpuMax("/a", "garbage\n");
  EXPECT_EQ(DetectUsableCpus(Sources("0::/a\n", 4)).count, 4);
}

TEST(UsableCpusRealTest, ThisProcessHasAtLeastOneCpu) {
  UsableCpus c = DetectUsableCpus();
  EXPECT_GE(c.count, 1);
  EXPECT_LE(c.count, c.affinity);
}

TEST(DeriveThreadDefaultsTest, OneCpuGetsOneCompletionQueue) {
  ThreadDefaults d = DeriveThreadDefaults(1);
  EXPECT_EQ(d.cq_threads, 1);
  EXPECT_EQ(d.io_threads, 2);
  EXPECT_EQ(d.compaction_threads, 1);
}

TEST(DeriveThreadDefaultsTest, ScalesAndClamps) {
  ThreadDefaults two = DeriveThreadDefaults(2);
  EXPECT_EQ(two.cq_threads, 2);
  EXPECT_EQ(two.io_threads, 4);  // The old fixed default on 2 cores.
  EXPECT_EQ(two.compaction_threads, 1);
  ThreadDefaults many = DeriveThreadDefaults(64);
  EXPECT_EQ(many.cq_threads, 64);
  EXPECT_EQ(many.io_threads, 64);
  EXPECT_EQ(many.compaction_threads, 4);
}

}  // namespace
}  // namespace strata::server
