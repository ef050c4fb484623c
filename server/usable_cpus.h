#ifndef STRATA_SERVER_USABLE_CPUS_H_
#define STRATA_SERVER_USABLE_CPUS_H_

// How many CPUs this process may actually use, and the thread counts the
// server derives from it when a flag is left at 0 (--cq_threads,
// --io_threads, --compaction_threads). A container with a one-CPU limit on
// a 64-core host must not start 64 completion-queue threads: the count is
// the smaller of the affinity mask (sched_getaffinity, e.g. `taskset`,
// Kubernetes' static CPU manager) and the cgroup v2 CPU quota
// (cpu.max "QUOTA PERIOD", rounded up), as Go does for GOMAXPROCS.
// cgroup v1 and a missing or unreadable cgroup file mean "no quota".
//
// Thread safety: pure functions, except DetectUsableCpus, which reads
// /proc and /sys; all are safe from any thread.

#include <optional>
#include <string>
#include <string_view>

namespace strata::server {

struct UsableCpus {
  // min(affinity, ceil(quota)); always >= 1.
  int count = 1;
  // CPUs in the affinity mask (>= 1).
  int affinity = 1;
  // The cgroup v2 quota in CPUs (quota / period), if one is set.
  std::optional<double> cgroup_quota;

  // "usable CPUs 2: affinity 2, cgroup quota none" / "... quota 1.50".
  std::string Describe() const;
};

// Where DetectUsableCpus reads; tests point these at a fake tree.
struct CpuSources {
  // The process's cgroup membership ("0::/kubepods/pod1/ctr" on v2).
  std::string proc_self_cgroup = "/proc/self/cgroup";
  // Where the cgroup v2 hierarchy is mounted.
  std::string cgroup_root = "/sys/fs/cgroup";
  // CPUs in the affinity mask; unset = sched_getaffinity of this process.
  std::optional<int> affinity;
};

// The cgroup v2 quota in CPUs from the text of a cpu.max file
// ("max 100000" -> none, "150000 100000" -> 1.5). Unset when there is no
// quota or the text is malformed.
std::optional<double> ParseCpuMax(std::string_view cpu_max);

// The cgroup v2 path of this process from the text of /proc/self/cgroup
// (the "0::PATH" line), e.g. "/kubepods/pod1/ctr". Unset for cgroup v1 only
// (no "0::" line) or malformed text.
std::optional<std::string> ParseCgroupV2Path(std::string_view proc_self_cgroup);

// Reads the affinity mask and the cpu.max of the process's cgroup (and of
// each parent up to the root: the tightest quota wins). Never fails: what
// cannot be read is treated as "no limit".
UsableCpus DetectUsableCpus(const CpuSources& sources = {});

// The thread counts derived from the usable CPUs (each flag's value when
// it is not 0).
struct ThreadDefaults {
  int cq_threads;          // one completion queue per usable CPU
  int io_threads;          // 2 per usable CPU, 2..64 (they block on disk)
  int compaction_threads;  // one per 2 usable CPUs, 1..4
};
ThreadDefaults DeriveThreadDefaults(int usable_cpus);

}  // namespace strata::server

#endif  // STRATA_SERVER_USABLE_CPUS_H_
