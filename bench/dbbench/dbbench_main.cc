// strata-dbbench: db_bench-style workloads against Strata, and (when built
// with -DSTRATA_BENCH_COMPARE=ON) LevelDB and RocksDB with aligned settings.
// See docs/benchmarks.md for the workloads, the settings and the results.
//
// Keys are 16 decimal digits: the i-th key of the key space is the number
// 10*i, so a key that is never written (10*i+5, "readmissing") sorts between
// two written ones and only a filter or a block read can rule it out.
// Values are slices of a random (incompressible) buffer. Every random
// sequence is seeded from --seed, the workload name and the thread index,
// so each engine sees the same operations in the same order.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/common/histogram.h"
#include "bench/common/proc_stats.h"
#include "bench/dbbench/bench_engine.h"

constexpr char kDefaultBenchmarks[] =
    "fillseq,fillrandom,overwrite,readrandom,readrandom:2,readmissing,"
    "seekrandom,readseq,mixed:2,deleterandom,fillsync,fillsync:16";

ABSL_FLAG(std::string, engine, "strata",
          "Engine to drive: strata, leveldb or rocksdb (the last two only "
          "when built with -DSTRATA_BENCH_COMPARE=ON).");
ABSL_FLAG(std::string, benchmarks, kDefaultBenchmarks,
          "Comma-separated workloads, each NAME or NAME:THREADS. Names: "
          "fillseq fillrandom overwrite readrandom readmissing seekrandom "
          "readseq mixed deleterandom fillsync. fill* workloads start from "
          "an empty database.");
ABSL_FLAG(int64_t, num, 1000000, "Entries in the key space / writes per fill.");
ABSL_FLAG(int64_t, reads, -1,
          "Operations of each read workload (readrandom, readmissing, "
          "seekrandom, readseq, mixed); -1 = --num.");
ABSL_FLAG(int64_t, sync_num, -1,
          "Writes of each fillsync workload (all threads together); -1 = "
          "--num / 50.");
ABSL_FLAG(int32_t, value_size, 100, "Value size in bytes (incompressible).");
ABSL_FLAG(int32_t, max_seconds, 0,
          "Stop any workload after this many seconds (0 = run all its "
          "operations); the report uses the operations done.");
ABSL_FLAG(std::string, db, "",
          "Database directory (removed and recreated); default "
          "/tmp/strata-dbbench-<engine>-<pid>.");
ABSL_FLAG(bool, keep_db, false, "Leave the database directory at the end.");
ABSL_FLAG(bool, use_existing_db, false,
          "Start from the database already in --db (e.g. left by --keep_db) "
          "instead of an empty one; fill* workloads still empty it.");
ABSL_FLAG(std::string, results, "",
          "Append one tab-separated row per workload (and a summary row) to "
          "this file, for bench/compare.sh.");
ABSL_FLAG(uint64_t, seed, 301, "Base seed of every random sequence.");
ABSL_FLAG(bool, stats, false,
          "Print the engine's own counters after each workload.");
ABSL_FLAG(uint64_t, write_buffer_bytes, 64u << 20, "Memtable size in bytes.");
ABSL_FLAG(uint64_t, cache_bytes, 64u << 20, "Block cache size in bytes.");
ABSL_FLAG(int32_t, bloom_bits, 10, "Bloom filter bits per key (0 = none).");
ABSL_FLAG(bool, strata_mmap_reads, true,
          "Strata only: read table files through a memory mapping "
          "(Options::mmap_table_reads); false reads them with pread through "
          "the block cache.");
ABSL_FLAG(bool, strata_verify_checksums, true,
          "Strata only: ReadOptions::verify_checksums of every read.");

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kKeySize = 16;

// splitmix64: fast, good enough, and identical everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t Uniform(uint64_t n) { return Next() % n; }

 private:
  uint64_t state_;
};

// User + system CPU seconds of the whole process (every thread, including
// the engine's background threads).
double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

// Writes the 16-digit decimal form of n into out (which holds kKeySize).
void FormatKey(uint64_t n, char* out) {
  for (int i = kKeySize - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + n % 10);
    n /= 10;
  }
}

// Slices of one random buffer: incompressible values without per-op cost.
class ValueSource {
 public:
  explicit ValueSource(uint64_t seed) : data_(1 << 20, '\0') {
    Rng rng(seed);
    for (char& c : data_) c = static_cast<char>(rng.Next());
  }
  std::string_view Next(size_t len, size_t* pos) const {
    if (*pos + len > data_.size()) *pos = 0;
    std::string_view v(data_.data() + *pos, len);
    *pos += len;
    return v;
  }

 private:
  std::string data_;
};

enum class Kind {
  kFillSeq,
  kFillRandom,
  kOverwrite,
  kReadRandom,
  kReadMissing,
  kSeekRandom,
  kReadSeq,
  kMixed,
  kDeleteRandom,
  kFillSync,
};

struct WorkloadSpec {
  const char* name;
  Kind kind;
  bool fresh_db;  // Starts from an empty database.
};

constexpr WorkloadSpec kWorkloads[] = {
    {"fillseq", Kind::kFillSeq, true},
    {"fillrandom", Kind::kFillRandom, true},
    {"overwrite", Kind::kOverwrite, false},
    {"readrandom", Kind::kReadRandom, false},
    {"readmissing", Kind::kReadMissing, false},
    {"seekrandom", Kind::kSeekRandom, false},
    {"readseq", Kind::kReadSeq, false},
    {"mixed", Kind::kMixed, false},
    {"deleterandom", Kind::kDeleteRandom, false},
    {"fillsync", Kind::kFillSync, true},
};

struct Workload {
  const WorkloadSpec* spec;
  int threads;
  std::string label;  // "readrandom" or "readrandom:2".
};

struct Config {
  std::string engine;
  EngineSettings settings;
  int64_t num;
  int64_t reads;
  int64_t sync_num;
  size_t value_size;
  uint64_t seed;
  int max_seconds;
};

// What one thread did.
struct ThreadResult {
  Histogram latency;
  uint64_t ops = 0;
  uint64_t bytes = 0;       // Keys + values moved.
  uint64_t user_bytes_written = 0;
  uint64_t found = 0;       // Reads that found their key.
  Clock::time_point end;
  absl::Status status;
};

struct WorkloadResult {
  Histogram latency;
  uint64_t ops = 0;
  uint64_t bytes = 0;
  uint64_t user_bytes_written = 0;
  uint64_t found = 0;
  uint64_t reads = 0;       // Point reads issued (for "found x of y").
  double seconds = 0;
  absl::Status status;
};

class Runner {
 public:
  Runner(Config config, BenchEngine* engine, const ValueSource* values)
      : config_(std::move(config)), engine_(engine), values_(values) {}

  WorkloadResult Run(const Workload& w) {
    const int threads = w.threads;
    std::vector<ThreadResult> results(threads);
    std::latch start(threads + 1);
    Clock::time_point begin;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        start.arrive_and_wait();
        RunThread(w, t, &results[t]);
        results[t].end = Clock::now();
      });
    }
    start.arrive_and_wait();
    begin = Clock::now();
    for (std::thread& th : pool) th.join();

    WorkloadResult r;
    Clock::time_point end = begin;
    for (const ThreadResult& tr : results) {
      r.latency.Merge(tr.latency);
      r.ops += tr.ops;
      r.bytes += tr.bytes;
      r.user_bytes_written += tr.user_bytes_written;
      r.found += tr.found;
      end = std::max(end, tr.end);
      if (r.status.ok() && !tr.status.ok()) r.status = tr.status;
    }
    r.seconds = std::chrono::duration<double>(end - begin).count();
    const Kind k = w.spec->kind;
    if (k == Kind::kReadRandom || k == Kind::kReadMissing) r.reads = r.ops;
    return r;
  }

 private:
  // Operations of workload `w` for thread t of w.threads.
  int64_t OpsFor(const Workload& w, int t) const {
    int64_t total = config_.num;
    switch (w.spec->kind) {
      case Kind::kReadRandom:
      case Kind::kReadMissing:
      case Kind::kSeekRandom:
      case Kind::kMixed:
        total = config_.reads;
        break;
      case Kind::kReadSeq:
        return config_.reads;  // Each thread scans on its own.
      case Kind::kFillSync:
        total = config_.sync_num;
        break;
      default:
        break;
    }
    return total / w.threads + (t < total % w.threads ? 1 : 0);
  }

  void RunThread(const Workload& w, int t, ThreadResult* out) {
    Rng rng(config_.seed ^ Fnv1a(w.spec->name) ^
            (0x1000193ull * static_cast<uint64_t>(t + 1)));
    size_t value_pos = static_cast<size_t>(rng.Uniform(1 << 19));
    const int64_t n = OpsFor(w, t);
    const uint64_t num = static_cast<uint64_t>(config_.num);
    const std::optional<Clock::time_point> deadline =
        config_.max_seconds > 0
            ? std::optional(Clock::now() + std::chrono::seconds(config_.max_seconds))
            : std::nullopt;
    char key[kKeySize];
    const std::string_view key_view(key, kKeySize);
    std::string value;

    auto put = [&](uint64_t index, bool sync) {
      FormatKey(index * 10, key);
      const std::string_view v = values_->Next(config_.value_size, &value_pos);
      out->bytes += kKeySize + v.size();
      out->user_bytes_written += kKeySize + v.size();
      return engine_->Put(key_view, v, sync);
    };
    auto get = [&](uint64_t key_number) {
      FormatKey(key_number, key);
      bool found = false;
      absl::Status s = engine_->Get(key_view, &value, &found);
      if (found) {
        ++out->found;
        out->bytes += kKeySize + value.size();
      }
      return s;
    };

    std::unique_ptr<BenchIterator> scan;  // readseq's one iterator.
    if (w.spec->kind == Kind::kReadSeq) {
      scan = engine_->NewIterator();
      scan->SeekToFirst();
    }
    // Sequential fills split the key space into one range per thread.
    const int64_t seq_base =
        w.spec->kind == Kind::kFillSeq ? (config_.num / w.threads) * t : 0;

    for (int64_t i = 0; i < n; ++i) {
      if (deadline && (i & 255) == 0 && Clock::now() >= *deadline) break;
      const Clock::time_point t0 = Clock::now();
      absl::Status s;
      bool at_end = false;  // readseq ran off the end: not an operation.
      switch (w.spec->kind) {
        case Kind::kFillSeq:
          s = put(static_cast<uint64_t>(seq_base + i), false);
          break;
        case Kind::kFillRandom:
        case Kind::kOverwrite:
          s = put(rng.Uniform(num), false);
          break;
        case Kind::kFillSync:
          s = put(rng.Uniform(num), true);
          break;
        case Kind::kReadRandom:
          s = get(rng.Uniform(num) * 10);
          break;
        case Kind::kReadMissing:
          s = get(rng.Uniform(num) * 10 + 5);
          break;
        case Kind::kSeekRandom: {
          FormatKey(rng.Uniform(num) * 10, key);
          std::unique_ptr<BenchIterator> it = engine_->NewIterator();
          it->Seek(key_view);
          for (int j = 0; j < 11 && it->Valid(); ++j) {  // Seek + 10 Next.
            out->bytes += it->key().size() + it->value().size();
            if (j < 10) it->Next();
          }
          s = it->status();
          break;
        }
        case Kind::kReadSeq:
          if (!scan->Valid()) {
            s = scan->status();
            at_end = true;
            break;
          }
          out->bytes += scan->key().size() + scan->value().size();
          scan->Next();
          break;
        case Kind::kMixed:
          if (rng.Uniform(10) == 0) {
            s = put(rng.Uniform(num), false);
          } else {
            s = get(rng.Uniform(num) * 10);
          }
          break;
        case Kind::kDeleteRandom:
          FormatKey(rng.Uniform(num) * 10, key);
          out->user_bytes_written += kKeySize;
          s = engine_->Delete(key_view, false);
          break;
      }
      if (at_end) {
        out->status = s;
        break;
      }
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          Clock::now() - t0)
                          .count();
      out->latency.Add(static_cast<uint64_t>(ns));
      ++out->ops;
      if (!s.ok()) {
        out->status = s;
        break;
      }
    }
  }

  const Config config_;
  BenchEngine* const engine_;
  const ValueSource* const values_;
};

std::optional<std::vector<Workload>> ParseWorkloads(const std::string& list) {
  std::vector<Workload> out;
  for (absl::string_view item : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ':');
    int threads = 1;
    if (parts.size() > 2 ||
        (parts.size() == 2 &&
         (!absl::SimpleAtoi(parts[1], &threads) || threads < 1 ||
          threads > 1024))) {
      std::fprintf(stderr, "strata-dbbench: bad workload '%s'\n",
                   std::string(item).c_str());
      return std::nullopt;
    }
    const WorkloadSpec* spec = nullptr;
    for (const WorkloadSpec& s : kWorkloads) {
      if (parts[0] == s.name) spec = &s;
    }
    if (spec == nullptr) {
      std::fprintf(stderr, "strata-dbbench: unknown workload '%s'\n",
                   std::string(parts[0]).c_str());
      return std::nullopt;
    }
    out.push_back(Workload{spec, threads,
                           threads == 1 ? std::string(spec->name)
                                        : absl::StrFormat("%s:%d", spec->name,
                                                          threads)});
  }
  return out;
}

class ResultsFile {
 public:
  explicit ResultsFile(const std::string& path) {
    if (!path.empty()) out_.open(path, std::ios::app);
  }
  void Row(const std::vector<std::string>& cells) {
    if (out_.is_open()) out_ << absl::StrJoin(cells, "\t") << "\n" << std::flush;
  }

 private:
  std::ofstream out_;
};

int Main() {
  Config config;
  config.engine = absl::GetFlag(FLAGS_engine);
  config.num = absl::GetFlag(FLAGS_num);
  config.reads = absl::GetFlag(FLAGS_reads) < 0 ? config.num
                                                : absl::GetFlag(FLAGS_reads);
  config.sync_num = absl::GetFlag(FLAGS_sync_num) < 0
                        ? std::max<int64_t>(1, config.num / 50)
                        : absl::GetFlag(FLAGS_sync_num);
  config.value_size = static_cast<size_t>(absl::GetFlag(FLAGS_value_size));
  config.seed = absl::GetFlag(FLAGS_seed);
  config.max_seconds = absl::GetFlag(FLAGS_max_seconds);
  config.settings.write_buffer_bytes = absl::GetFlag(FLAGS_write_buffer_bytes);
  config.settings.block_cache_bytes = absl::GetFlag(FLAGS_cache_bytes);
  config.settings.bloom_bits_per_key = absl::GetFlag(FLAGS_bloom_bits);
  config.settings.strata_mmap_reads = absl::GetFlag(FLAGS_strata_mmap_reads);
  config.settings.strata_verify_checksums =
      absl::GetFlag(FLAGS_strata_verify_checksums);
  if (config.num < 1 || absl::GetFlag(FLAGS_value_size) < 0 ||
      config.value_size > (512u << 10)) {
    std::fprintf(stderr, "strata-dbbench: --num must be >= 1 and "
                         "--value_size 0..524288\n");
    return 2;
  }
  const std::optional<std::vector<Workload>> workloads =
      ParseWorkloads(absl::GetFlag(FLAGS_benchmarks));
  if (!workloads) return 2;

  std::string dir = absl::GetFlag(FLAGS_db);
  if (dir.empty()) {
    dir = absl::StrFormat("/tmp/strata-dbbench-%s-%d", config.engine, getpid());
  }
  std::error_code ec;
  if (!absl::GetFlag(FLAGS_use_existing_db)) std::filesystem::remove_all(dir, ec);

  const ValueSource values(config.seed);
  ResultsFile results(absl::GetFlag(FLAGS_results));

  std::printf("strata-dbbench: %s\n", EngineVersion(config.engine).c_str());
  std::printf(
      "entries %lld, keys %d bytes, values %zu bytes (incompressible), "
      "reads %lld, sync writes %lld, db %s\n",
      static_cast<long long>(config.num), kKeySize, config.value_size,
      static_cast<long long>(config.reads),
      static_cast<long long>(config.sync_num), dir.c_str());
  std::printf(
      "settings: memtable %zu MiB, block cache %zu MiB, block %zu B, bloom "
      "%d bits/key, compression none\n",
      config.settings.write_buffer_bytes >> 20,
      config.settings.block_cache_bytes >> 20, config.settings.block_size,
      config.settings.bloom_bits_per_key);
  std::printf("%-16s %10s %10s %8s %9s %9s %9s %8s  %s\n", "workload", "ops",
              "ops/s", "MB/s", "p50(us)", "p99(us)", "cpu us/op", "db(MiB)",
              "notes");
  std::fflush(stdout);

  std::unique_ptr<BenchEngine> engine;
  auto open = [&]() -> bool {
    absl::StatusOr<std::unique_ptr<BenchEngine>> e =
        OpenEngine(config.engine, config.settings, dir);
    if (!e.ok()) {
      std::fprintf(stderr, "strata-dbbench: open %s: %s\n", dir.c_str(),
                   e.status().ToString().c_str());
      return false;
    }
    engine = *std::move(e);
    return true;
  };
  if (!open()) return 1;

  uint64_t user_bytes_written = 0;
  uint64_t max_db_bytes = 0;
  int exit_code = 0;
  for (const Workload& w : *workloads) {
    if (w.spec->fresh_db) {
      engine.reset();
      std::filesystem::remove_all(dir, ec);
      if (!open()) return 1;
    }
    Runner runner(config, engine.get(), &values);
    const double cpu_before = ProcessCpuSeconds();
    const WorkloadResult r = runner.Run(w);
    // CPU per operation is steadier than ops/s on a shared machine.
    const double cpu_us_per_op =
        r.ops > 0 ? (ProcessCpuSeconds() - cpu_before) * 1e6 / r.ops : 0.0;
    user_bytes_written += r.user_bytes_written;
    const double ops_per_sec = r.seconds > 0 ? r.ops / r.seconds : 0.0;
    const double mb_per_sec =
        r.seconds > 0 ? r.bytes / 1048576.0 / r.seconds : 0.0;
    const double p50 = r.latency.Percentile(50) / 1000.0;
    const double p99 = r.latency.Percentile(99) / 1000.0;
    std::string notes;
    if (r.reads > 0) {
      notes = absl::StrFormat("(%d of %d found)", r.found, r.reads);
    }
    if (!r.status.ok()) {
      notes += " ERROR: " + r.status.ToString();
      exit_code = 1;
    }
    // Size on disk right after the workload (background work may still be
    // running); the largest is reported at the end.
    const uint64_t db_bytes = DirectoryBytes(dir);
    max_db_bytes = std::max(max_db_bytes, db_bytes);
    std::printf("%-16s %10llu %10.0f %8.1f %9.2f %9.2f %9.2f %8.1f  %s\n",
                w.label.c_str(), static_cast<unsigned long long>(r.ops),
                ops_per_sec, mb_per_sec, p50, p99, cpu_us_per_op,
                db_bytes / 1048576.0, notes.c_str());
    std::fflush(stdout);
    results.Row({config.engine, w.label, absl::StrCat(w.threads),
                 absl::StrCat(r.ops), absl::StrFormat("%.3f", r.seconds),
                 absl::StrFormat("%.0f", ops_per_sec),
                 absl::StrFormat("%.2f", mb_per_sec),
                 absl::StrFormat("%.2f", p50), absl::StrFormat("%.2f", p99),
                 absl::StrCat(r.found), absl::StrCat(db_bytes),
                 absl::StrFormat("%.3f", cpu_us_per_op)});
    if (absl::GetFlag(FLAGS_stats)) {
      std::printf("  %s\n", engine->StatsReport().c_str());
    }
    if (!r.status.ok()) break;
  }

  // Closing waits for background work, so the I/O below is complete.
  engine.reset();
  const uint64_t db_bytes = DirectoryBytes(dir);
  const ProcIo io = ReadProcIo();
  const uint64_t hwm_kib = PeakRssKiB();
  const bool use_wchar = io.write_bytes == 0;
  const uint64_t written = use_wchar ? io.wchar : io.write_bytes;
  const double amp =
      user_bytes_written > 0 ? static_cast<double>(written) / user_bytes_written
                             : 0.0;
  std::printf(
      "db size on disk %.1f MiB at the end, %.1f MiB at most; written by the process %.1f MiB (%s) for "
      "%.1f MiB of user keys+values: write amplification %.2f; peak RSS "
      "%.1f MiB\n",
      db_bytes / 1048576.0, max_db_bytes / 1048576.0, written / 1048576.0,
      use_wchar ? "/proc/self/io wchar: write_bytes is 0 in this container, "
                  "so this counts write() calls, not device writes"
                : "/proc/self/io write_bytes",
      user_bytes_written / 1048576.0, amp, hwm_kib / 1024.0);
  results.Row({config.engine, "summary", absl::StrCat(max_db_bytes),
               absl::StrCat(written), use_wchar ? "wchar" : "write_bytes",
               absl::StrCat(user_bytes_written),
               absl::StrFormat("%.2f", amp), absl::StrCat(hwm_kib)});
  if (!absl::GetFlag(FLAGS_keep_db)) std::filesystem::remove_all(dir, ec);
  return exit_code;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "db_bench-style workloads against Strata (and LevelDB/RocksDB when "
      "built with -DSTRATA_BENCH_COMPARE=ON).\n\nUsage: strata-dbbench "
      "[--engine=strata|leveldb|rocksdb] [--num=N] [--benchmarks=a,b:2,...] "
      "[--db=DIR]");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::fprintf(stderr, "strata-dbbench: unexpected argument '%s'\n", rest[1]);
    return 2;
  }
  return strata::bench::Main();
}
