#ifndef STRATA_SERVER_METRICS_METRICS_SERVER_H_
#define STRATA_SERVER_METRICS_METRICS_SERVER_H_

// The Prometheus endpoint of a strata-server: GET /metrics in the text
// exposition format, served by prometheus-cpp's Exposer (civetweb) on its
// own threads. Everything is gathered on scrape: RPC counters (RpcMetrics,
// also the server's RpcObserver), engine statistics (EngineCollector, of
// the database an EngineSource names),
// gRPC connections (ConnectionCollector) and process readings
// (ProcessCollector). docs/metrics.md lists every metric.
//
// Wiring (server/main.cc):
//   MetricsServer metrics(db, BuildInfo{STRATA_VERSION, STRATA_GIT_SHA});
//   RETURN_IF_ERROR(metrics.Listen("127.0.0.1:9090"));
//   KvServer server(options, db, metrics.rpc_observer());
//   ... server.Shutdown(); then destroy metrics; then close the DB.
// A cluster replica passes EngineSource(reader, data_dir) instead
// (cluster/node/cluster_metrics.h, ClusterEngineSource).

#include <sys/socket.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "server/metrics/engine_source.h"
#include "server/metrics/process_collector.h"
#include "server/rpc_observer.h"
#include "strata/storage/db.h"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace strata::server::metrics {

class RpcMetrics;

// OK if `address` is host:port with a numeric port 0..65535 and a non-empty
// host (an IPv4 address or a host name); InvalidArgument naming the problem
// otherwise. IPv6 is refused: Debian's civetweb is built without it.
absl::Status ValidateMetricsAddress(const std::string& address);

// Thread safety: rpc_observer() may be used from any thread; Listen, port,
// bound_address must be called by the owner; Scrape is thread-safe.
// Destruction stops the HTTP server and waits for in-progress scrapes.
class MetricsServer {
 public:
  static constexpr size_t kDefaultNamespaceLimit = 32;

  // `engine`: the database every scrape reads (db->GetStatistics() and the
  // namespace catalog) and where disk free space comes from
  // (engine_source.h). A plain DB* (not owned; nullptr = no engine
  // metrics) must stay open until this object is destroyed; a DbReader
  // (a cluster replica's, whose database a re-sync replaces) pins the
  // database during each scrape, and what it captures must outlive this
  // object. `namespace_limit`: how many named namespaces get their own
  // per-namespace series (--metrics_namespace_limit; NamespaceMetrics).
  MetricsServer(EngineSource engine, BuildInfo build,
                size_t namespace_limit = kDefaultNamespaceLimit);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Adds families gathered on scrape after the built-in ones (cluster
  // mode's, cluster/node/cluster_metrics.h). REQUIRES: before Listen.
  void AddCollectable(std::shared_ptr<prometheus::Collectable> collectable) {
    collectables_.push_back(std::move(collectable));
  }
  // The observer to pass to KvServer; lives as long as this object.
  RpcObserver* rpc_observer();

  // Starts serving GET /metrics on `address` (host:port; port 0 picks a
  // free port). InvalidArgument for a malformed address, Unavailable if it
  // cannot be bound (in use, not a local address). REQUIRES: called at
  // most once.
  absl::Status Listen(const std::string& address);

  // The bound port and "host:port" with it. REQUIRES: Listen returned OK.
  int port() const { return port_; }
  std::string bound_address() const;

  // The exposition text a scrape would return right now (no HTTP): for
  // tests and debugging.
  std::string Scrape() const;

 private:
  // In the order they appear in the output.
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::shared_ptr<RpcMetrics> rpc_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string host_;
  int port_ = 0;
  // Where to connect to wake the listener at destruction (see StopExposer
  // in the .cc); wake_len_ == 0 if unknown.
  sockaddr_storage wake_addr_{};
  socklen_t wake_len_ = 0;
};

}  // namespace strata::server::metrics

#endif  // STRATA_SERVER_METRICS_METRICS_SERVER_H_
