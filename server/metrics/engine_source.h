#ifndef STRATA_SERVER_METRICS_ENGINE_SOURCE_H_
#define STRATA_SERVER_METRICS_ENGINE_SOURCE_H_

// Where the metrics endpoint reads the storage engine from: the engine
// families (EngineCollector), the namespace gauges (NamespaceMetrics) and,
// on a node without a write gate, strata_disk_free_bytes.
//
// A standalone server or a cluster primary has one database for the whole
// life of its MetricsServer: EngineSource(db). A cluster replica's database
// is replaced when it re-syncs from a checkpoint (the ReplicaSink's swap
// hook closes the old one), so a scrape must not hold a raw pointer across
// scrapes, nor read it while it is being replaced: it asks a DbReader for
// the database each time, and the reader keeps that database open for
// exactly as long as the scrape uses it (ReplicaSink::ReadDb).

#include <functional>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "strata/storage/db.h"

namespace strata::server::metrics {

// Calls `read` once, on the caller's thread, with the current database
// pinned: it stays open (is neither closed nor replaced) until `read`
// returns. `read` gets nullptr if there is no database right now (none was
// given, or its owner is closing it). `read` must only read the database
// (GetStatistics, reads) and must not wait for anything that replaces it.
//
// Thread safety: a DbReader is called concurrently by scrapes (every
// collector, from prometheus-cpp's HTTP threads); it must be thread-safe.
using DbReader =
    std::function<void(absl::FunctionRef<void(storage::DB*)> read)>;

// A DbReader for a database that outlives the MetricsServer (or nullptr:
// no engine metrics). No locking: nothing replaces it.
inline DbReader FixedDb(storage::DB* db) {
  return [db](absl::FunctionRef<void(storage::DB*)> read) { read(db); };
}

struct EngineSource {
  // A database open for the MetricsServer's whole life (nullptr: none; no
  // engine families, no namespace gauges). Implicit on purpose: a plain
  // DB* is the common case (standalone, cluster primary).
  // NOLINTNEXTLINE(google-explicit-constructor)
  EngineSource(storage::DB* db = nullptr) : read_db(FixedDb(db)) {}
  // A database that may be replaced while the server runs (a cluster
  // replica's), read through `reader` at every scrape. `disk_free_dir`: see
  // below.
  EngineSource(DbReader reader, std::string disk_free_dir)
      : read_db(std::move(reader)), disk_free_dir(std::move(disk_free_dir)) {}

  DbReader read_db;
  // Non-empty: strata_disk_free_bytes is read (statvfs of this directory,
  // server::FreeDiskBytes) at every scrape, on the scrape's thread. For a
  // node that has no WriteGate to report it (RpcObserver::OnDiskFree): a
  // cluster replica. Empty: the write gate reports it.
  std::string disk_free_dir;
};

}  // namespace strata::server::metrics

#endif  // STRATA_SERVER_METRICS_ENGINE_SOURCE_H_
