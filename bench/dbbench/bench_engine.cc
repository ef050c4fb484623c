// Dispatch from an engine name to its adapter.

#include "bench/dbbench/bench_engine.h"

#include <string>
#include <vector>

#include "absl/strings/str_format.h"

namespace strata::bench {

absl::StatusOr<std::unique_ptr<BenchEngine>> OpenEngine(
    const std::string& engine, const EngineSettings& settings,
    const std::string& dir) {
  if (engine == "strata") return OpenStrata(settings, dir);
#ifdef STRATA_BENCH_HAVE_LEVELDB
  if (engine == "leveldb") return OpenLevelDB(settings, dir);
#endif
#ifdef STRATA_BENCH_HAVE_ROCKSDB
  if (engine == "rocksdb") return OpenRocksDB(settings, dir);
#endif
  return absl::InvalidArgumentError(absl::StrFormat(
      "engine '%s' is not built into this binary (rebuild with "
      "-DSTRATA_BENCH_COMPARE=ON and libleveldb-dev/librocksdb-dev "
      "installed)",
      engine));
}

std::vector<std::string> AvailableEngines() {
  std::vector<std::string> engines = {"strata"};
#ifdef STRATA_BENCH_HAVE_LEVELDB
  engines.push_back("leveldb");
#endif
#ifdef STRATA_BENCH_HAVE_ROCKSDB
  engines.push_back("rocksdb");
#endif
  return engines;
}

std::string EngineVersion(const std::string& engine) {
  if (engine == "strata") return StrataVersion();
#ifdef STRATA_BENCH_HAVE_LEVELDB
  if (engine == "leveldb") return LevelDBVersion();
#endif
#ifdef STRATA_BENCH_HAVE_ROCKSDB
  if (engine == "rocksdb") return RocksDBVersion();
#endif
  return engine + " (not built)";
}

}  // namespace strata::bench
