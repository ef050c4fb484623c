#ifndef STRATA_BENCH_DBBENCH_BENCH_ENGINE_H_
#define STRATA_BENCH_DBBENCH_BENCH_ENGINE_H_

// The narrow key-value interface strata-dbbench drives, with one adapter
// per engine: Strata (always), LevelDB and RocksDB (only when built with
// -DSTRATA_BENCH_COMPARE=ON and the Debian packages are installed; they are
// comparison targets and never linked into the product).
//
// Thread safety: a BenchEngine is safe for concurrent use from many
// threads (every engine behind it is). A BenchIterator is used by one
// thread.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace strata::bench {

// The settings aligned across engines (docs/benchmarks.md).
struct EngineSettings {
  // Memtable size in bytes before a flush to a level-0 table.
  size_t write_buffer_bytes = 64u << 20;
  // LRU block cache capacity in bytes.
  size_t block_cache_bytes = 64u << 20;
  // Uncompressed data block size in bytes.
  size_t block_size = 4096;
  // Bloom filter bits per key (0 = no filter).
  int bloom_bits_per_key = 10;
  // Most table files kept open.
  int max_open_files = 1000;
  // Compression is always off (the values are incompressible anyway).
  // Strata only: memory-mapped table reads, and checksums verified per read.
  bool strata_mmap_reads = true;
  bool strata_verify_checksums = true;
};

// An ordered cursor. key()/value() are valid until the next move.
class BenchIterator {
 public:
  virtual ~BenchIterator() = default;
  virtual void Seek(std::string_view target) = 0;
  virtual void SeekToFirst() = 0;
  virtual bool Valid() const = 0;
  virtual void Next() = 0;
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
  // OK unless an error stopped the iteration.
  virtual absl::Status status() const = 0;
};

class BenchEngine {
 public:
  virtual ~BenchEngine() = default;

  // Sets key to value; with sync, returns only once the write-ahead log is
  // on stable storage (fdatasync; concurrent syncers may share one).
  virtual absl::Status Put(std::string_view key, std::string_view value,
                           bool sync) = 0;
  // Removes key (OK if absent).
  virtual absl::Status Delete(std::string_view key, bool sync) = 0;
  // Reads key into *value. OK with *found = false when absent.
  virtual absl::Status Get(std::string_view key, std::string* value,
                           bool* found) = 0;
  // A new iterator over the latest state; the caller owns it and deletes
  // it before the engine.
  virtual std::unique_ptr<BenchIterator> NewIterator() = 0;
  // A few engine-specific counters for the end-of-run report (stalls,
  // compactions, group commit); empty if the engine has none.
  virtual std::string StatsReport() { return std::string(); }
};

// Opens (creating) a database in `dir` with `settings`. `engine` is
// "strata", "leveldb" or "rocksdb". InvalidArgument for an engine this
// binary was not built with.
absl::StatusOr<std::unique_ptr<BenchEngine>> OpenEngine(
    const std::string& engine, const EngineSettings& settings,
    const std::string& dir);

// The engines compiled into this binary, e.g. {"strata", "leveldb"}.
std::vector<std::string> AvailableEngines();

// "strata 0.1.0", "leveldb 1.23", "rocksdb 7.8.3".
std::string EngineVersion(const std::string& engine);

// Per-engine openers (bench_engine.cc dispatches to them).
absl::StatusOr<std::unique_ptr<BenchEngine>> OpenStrata(
    const EngineSettings& settings, const std::string& dir);
std::string StrataVersion();
#ifdef STRATA_BENCH_HAVE_LEVELDB
absl::StatusOr<std::unique_ptr<BenchEngine>> OpenLevelDB(
    const EngineSettings& settings, const std::string& dir);
std::string LevelDBVersion();
#endif
#ifdef STRATA_BENCH_HAVE_ROCKSDB
absl::StatusOr<std::unique_ptr<BenchEngine>> OpenRocksDB(
    const EngineSettings& settings, const std::string& dir);
std::string RocksDBVersion();
#endif

}  // namespace strata::bench

#endif  // STRATA_BENCH_DBBENCH_BENCH_ENGINE_H_
