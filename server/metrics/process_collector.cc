#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

#include "server/metrics/families.h"

namespace strata::server::metrics {
namespace {

using prometheus::MetricType;

std::optional<std::string> ReadSmallFile(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Fields of /proc/self/stat after the command name, which is in parentheses
// and may itself contain spaces and parentheses: fields[0] is field 3
// (state) of proc(5).
std::optional<std::vector<std::string>> StatFields() {
  std::optional<std::string> stat = ReadSmallFile("/proc/self/stat");
  if (!stat) return std::nullopt;
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat->substr(close + 1));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(std::move(f));
  return fields;
}

std::optional<double> ParseDouble(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str()) return std::nullopt;
  return v;
}

// btime from /proc/stat: boot time in seconds since the epoch.
std::optional<double> BootTime() {
  std::optional<std::string> stat = ReadSmallFile("/proc/stat");
  if (!stat) return std::nullopt;
  std::istringstream in(*stat);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) return ParseDouble(line.substr(6));
  }
  return std::nullopt;
}

// proc(5): field 14 utime, 15 stime, 22 starttime, in clock ticks.
constexpr size_t kUtime = 14 - 3, kStime = 15 - 3, kStartTime = 22 - 3;

std::optional<double> ReadStartTime() {
  const long ticks = sysconf(_SC_CLK_TCK);
  std::optional<std::vector<std::string>> fields = StatFields();
  std::optional<double> boot = BootTime();
  if (ticks <= 0 || !fields || fields->size() <= kStartTime || !boot) {
    return std::nullopt;
  }
  std::optional<double> start = ParseDouble((*fields)[kStartTime]);
  if (!start) return std::nullopt;
  return *boot + *start / static_cast<double>(ticks);
}

std::optional<int64_t> CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  int64_t n = 0;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // The directory stream's own descriptor.
}

// Everything but the start time (which does not change).
ProcessStats ReadChangingStats() {
  ProcessStats p;
  const long ticks = sysconf(_SC_CLK_TCK);
  if (std::optional<std::vector<std::string>> f = StatFields();
      f && f->size() > kStime && ticks > 0) {
    std::optional<double> user = ParseDouble((*f)[kUtime]);
    std::optional<double> sys = ParseDouble((*f)[kStime]);
    if (user && sys) {
      p.cpu_seconds = (*user + *sys) / static_cast<double>(ticks);
    }
  }
  p.open_fds = CountOpenFds();
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      limit.rlim_cur != RLIM_INFINITY) {
    p.max_fds = static_cast<int64_t>(limit.rlim_cur);
  }
  // statm: size resident shared text lib data dt, in pages.
  if (std::optional<std::string> statm = ReadSmallFile("/proc/self/statm")) {
    std::istringstream in(*statm);
    int64_t size = 0, resident = 0;
    const long page = sysconf(_SC_PAGESIZE);
    if (in >> size >> resident && page > 0) {
      p.virtual_bytes = size * page;
      p.resident_bytes = resident * page;
    }
  }
  return p;
}

}  // namespace

ProcessStats ReadProcessStats() {
  ProcessStats p = ReadChangingStats();
  p.start_time_seconds = ReadStartTime();
  return p;
}

ProcessCollector::ProcessCollector(BuildInfo build)
    : build_(std::move(build)), start_time_seconds_(ReadStartTime()) {}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  prometheus::MetricFamily info = MakeFamily(
      "strata_build_info",
      "Always 1; the labels name the strata-server version and git commit.",
      MetricType::Gauge);
  AddGauge(&info, 1,
           {{"git_sha", build_.git_sha}, {"version", build_.version}});
  out.push_back(std::move(info));

  ProcessStats p = ReadChangingStats();
  p.start_time_seconds = start_time_seconds_;
  if (p.start_time_seconds) {
    out.push_back(GaugeFamily("process_start_time_seconds",
                              "Start time of the process since the Unix "
                              "epoch, in seconds.",
                              *p.start_time_seconds));
  }
  if (p.cpu_seconds) {
    out.push_back(CounterFamily("process_cpu_seconds_total",
                                "User and system CPU time spent, in seconds.",
                                *p.cpu_seconds));
  }
  if (p.open_fds) {
    out.push_back(GaugeFamily("process_open_fds",
                              "Open file descriptors.",
                              static_cast<double>(*p.open_fds)));
  }
  if (p.max_fds) {
    out.push_back(GaugeFamily("process_max_fds",
                              "Limit on open file descriptors "
                              "(RLIMIT_NOFILE).",
                              static_cast<double>(*p.max_fds)));
  }
  if (p.resident_bytes) {
    out.push_back(GaugeFamily("process_resident_memory_bytes",
                              "Resident memory size in bytes.",
                              static_cast<double>(*p.resident_bytes)));
  }
  if (p.virtual_bytes) {
    out.push_back(GaugeFamily("process_virtual_memory_bytes",
                              "Virtual memory size in bytes.",
                              static_cast<double>(*p.virtual_bytes)));
  }
  return out;
}

}  // namespace strata::server::metrics
