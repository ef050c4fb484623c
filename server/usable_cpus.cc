#include "server/usable_cpus.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace strata::server {
namespace {

absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// Whole file, or unset if it cannot be opened.
std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int AffinityCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

}  // namespace

std::string UsableCpus::Describe() const {
  return absl::StrFormat(
      "usable CPUs %d: affinity %d, cgroup quota %s", count, affinity,
      cgroup_quota ? absl::StrFormat("%.2f", *cgroup_quota) : "none");
}

std::optional<double> ParseCpuMax(std::string_view cpu_max) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(ToAbsl(cpu_max), absl::ByAnyChar(" \t\n"),
                     absl::SkipEmpty());
  if (fields.empty() || fields[0] == "max") return std::nullopt;
  int64_t quota = 0;
  int64_t period = 100000;  // The kernel's default when only one is given.
  if (!absl::SimpleAtoi(fields[0], &quota) || quota <= 0) return std::nullopt;
  if (fields.size() > 1 &&
      (!absl::SimpleAtoi(fields[1], &period) || period <= 0)) {
    return std::nullopt;
  }
  return static_cast<double>(quota) / static_cast<double>(period);
}

std::optional<std::string> ParseCgroupV2Path(
    std::string_view proc_self_cgroup) {
  for (absl::string_view line :
       absl::StrSplit(ToAbsl(proc_self_cgroup), '\n', absl::SkipEmpty())) {
    if (line.substr(0, 3) == "0::") {
      absl::string_view path = line.substr(3);
      if (path.empty() || path[0] != '/') return std::nullopt;
      return std::string(path);
    }
  }
  return std::nullopt;
}

UsableCpus DetectUsableCpus(const CpuSources& sources) {
  UsableCpus cpus;
  cpus.affinity = std::max(1, sources.affinity.value_or(AffinityCount()));
  cpus.count = cpus.affinity;
  std::optional<std::string> membership =
      ReadSmallFile(sources.proc_self_cgroup);
  std::optional<std::string> path =
      membership ? ParseCgroupV2Path(*membership) : std::nullopt;
  if (!path) return cpus;  // cgroup v1, or no /proc: no quota we honour.
  // A quota on any ancestor limits this cgroup too: the tightest one wins.
  std::string dir = *path;
  while (true) {
    std::string file = sources.cgroup_root;
    if (dir != "/") file += dir;
    std::optional<std::string> cpu_max = ReadSmallFile(file + "/cpu.max");
    std::optional<double> quota =
        cpu_max ? ParseCpuMax(*cpu_max) : std::nullopt;
    if (quota && (!cpus.cgroup_quota || *quota < *cpus.cgroup_quota)) {
      cpus.cgroup_quota = quota;
    }
    if (dir == "/" || dir.empty()) break;
    const size_t slash = dir.rfind('/');
    dir = slash == 0 ? "/" : dir.substr(0, slash);
  }
  if (cpus.cgroup_quota) {
    const int ceil_quota =
        std::max(1, static_cast<int>(std::ceil(*cpus.cgroup_quota - 1e-9)));
    cpus.count = std::min(cpus.count, ceil_quota);
  }
  return cpus;
}

ThreadDefaults DeriveThreadDefaults(int usable_cpus) {
  const int c = std::max(1, usable_cpus);
  return ThreadDefaults{
      .cq_threads = c,
      .io_threads = std::clamp(2 * c, 2, 64),
      .compaction_threads = std::clamp(c / 2, 1, 4),
  };
}

}  // namespace strata::server
