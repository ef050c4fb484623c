#ifndef STRATA_BENCH_COMMON_PROC_STATS_H_
#define STRATA_BENCH_COMMON_PROC_STATS_H_

// Process and file-system numbers the benchmarks report, read from /proc
// (Linux only). Every function returns 0 for a value it cannot read.

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <system_error>

namespace strata::bench {

// From /proc/<pid>/io.
struct ProcIo {
  uint64_t wchar = 0;        // Bytes passed to write()-like calls.
  uint64_t write_bytes = 0;  // Bytes the process caused to reach the block
                             // layer (0 in some containers).
  uint64_t cancelled_write_bytes = 0;
};

inline ProcIo ReadProcIo(const std::string& pid = "self") {
  ProcIo io;
  std::ifstream in("/proc/" + pid + "/io");
  std::string name;
  uint64_t value = 0;
  while (in >> name >> value) {
    if (name == "wchar:") io.wchar = value;
    if (name == "write_bytes:") io.write_bytes = value;
    if (name == "cancelled_write_bytes:") io.cancelled_write_bytes = value;
  }
  return io;
}

// A "VmXXX:" line of /proc/<pid>/status, in KiB.
inline uint64_t ProcStatusKiB(const std::string& field,
                              const std::string& pid = "self") {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stoull(line.substr(field.size() + 1));
    }
  }
  return 0;
}

// Peak resident set size (VmHWM) in KiB.
inline uint64_t PeakRssKiB(const std::string& pid = "self") {
  return ProcStatusKiB("VmHWM", pid);
}
// Current resident set size (VmRSS) in KiB.
inline uint64_t RssKiB(const std::string& pid = "self") {
  return ProcStatusKiB("VmRSS", pid);
}

// User + system CPU seconds consumed so far by process `pid` (all its
// threads), from /proc/<pid>/stat.
inline double ProcessCpuSecondsOf(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  uint64_t utime = 0;
  uint64_t stime = 0;
  // Fields after "(comm)" start at field 3 (state); utime is 14, stime 15.
  for (int i = 3; i <= 15 && (fields >> field); ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  const long ticks = sysconf(_SC_CLK_TCK);
  return ticks > 0 ? static_cast<double>(utime + stime) / ticks : 0.0;
}

// Total size in bytes of the regular files under dir (recursively).
inline uint64_t DirectoryBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      const uint64_t size = it->file_size(size_ec);
      if (!size_ec) total += size;
    }
  }
  return total;
}

}  // namespace strata::bench

#endif  // STRATA_BENCH_COMMON_PROC_STATS_H_
