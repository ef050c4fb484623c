#ifndef STRATA_SERVER_KV_SERVER_H_
#define STRATA_SERVER_KV_SERVER_H_

// KvServer serves the strata.v1.KV service over gRPC's asynchronous
// completion-queue API on an open storage::DB, plus server reflection and
// the standard grpc.health.v1.Health service. This class is the server's
// life cycle: start, drain, shutdown. The services register their methods
// and handlers (kv_service.h, health_service.h) in an RpcRegistry
// (rpc_registry.h); the call life cycle is in async_call.h, the threading
// model in docs/server.md.
//
// Threads:
//   cq-<i>    one per completion queue (ServerOptions::cq_threads): polls
//             its queue and runs handlers. Never blocks on disk: Gets try
//             the cache inline (ReadOptions::cache_only), writes go to
//             DB::WriteAsync.
//   io-<i>    the blocking pool (ServerOptions::io_threads): Gets that
//             would block (one lookup per coalesced group of Gets of the
//             same key), every Scan batch.
//   engine    DB::WriteAsync callbacks finish write RPCs from the engine's
//             commit thread.

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/async_call.h"
#include "server/authz.h"
#include "server/health_service.h"
#include "server/kv_service.h"
#include "server/rpc_observer.h"
#include "server/rpc_registry.h"
#include "server/server_options.h"
#include "server/thread_pool.h"
#include "strata/storage/db.h"

namespace strata::server {

// What every listener on the node's port gets from `options`, whichever
// services it serves: the message size limits (--max_message_bytes), no
// SO_REUSEPORT, the HTTP/2 transport limits (keepalive, ping strikes,
// streams, stream window) and the --transport_memory_bytes ResourceQuota.
// Not the credentials, the services or the completion queues.
void ConfigureConnections(const ServerOptions& options,
                          grpc::ServerBuilder* builder);

// "host:port" from a --listen address (its host part) and the port the
// server bound (for --listen=...:0).
std::string BoundAddress(const std::string& listen, int port);

// The gRPC server of one storage node.
//
// Thread safety: Start and Shutdown must be called from one thread (the
// owner); port() and the accessors are safe from any thread after Start.
class KvServer {
 public:
  // `db` must stay open until Shutdown has returned (the caller then syncs
  // and closes it). `observer` (nullptr = no-op) must outlive the server.
  KvServer(ServerOptions options, storage::DB* db,
           RpcObserver* observer = nullptr);
  // Calls Shutdown().
  ~KvServer();
  KvServer(const KvServer&) = delete;
  KvServer& operator=(const KvServer&) = delete;

  // Binds options.listen, starts the completion-queue and blocking-pool
  // threads and marks the health service SERVING for "" and "strata.v1.KV".
  // Returns InvalidArgument for bad options (limits, listen address) and
  // Unavailable if the address cannot be bound. REQUIRES: called once.
  absl::Status Start();

  // The bound port (useful with port 0). REQUIRES: Start returned OK.
  int port() const { return port_; }
  // The listen address with the bound port, e.g. "127.0.0.1:41234".
  std::string bound_address() const;

  // Stops the server, in this order: health NOT_SERVING; gRPC Shutdown
  // (no new RPCs) letting in-flight KV RPCs finish for up to
  // options.shutdown_grace; then every remaining call and connection is
  // cancelled (idle client connections and health watches would otherwise
  // hold the shutdown for the whole grace period); wait for every call to
  // be recycled (engine callbacks and pool tasks have all finished); shut
  // down and drain every completion queue; join the polling threads; stop
  // the blocking pool. The DB is untouched (the caller syncs and closes
  // it). Idempotent; blocks for at most shutdown_grace + ~3 s.
  void Shutdown();

  // The expirer (server/expiry.h), to drive it by hand (TEST ONLY).
  // REQUIRES: Start returned OK.
  Expiry* TEST_expiry() { return kv_->TEST_expiry(); }
  // The write gate (full disk), to refresh it by hand (TEST ONLY).
  WriteGate* TEST_write_gate() { return write_gate_.get(); }

  // The authorization policy holder (null without --authz_policy), to
  // reload it by hand (TEST ONLY). REQUIRES: Start returned OK.
  Authorizer* TEST_authorizer() { return authorizer_.get(); }

  // Number of call objects armed or serving (TEST ONLY).
  int64_t TEST_live_calls() const;
  // TEST_live_calls() of a started server with no RPC in progress: every
  // method's posted requests on every queue (TEST ONLY).
  int64_t TEST_idle_calls() const {
    if (registry_ == nullptr) return 0;
    return static_cast<int64_t>(cqs_.size() * registry_->num_methods()) *
           options_.calls_per_method;
  }

 private:
  // Start, in order: the services register their methods (with the
  // blocking pool they hand work to); the gRPC server is built and bound;
  // the pollers post their requests and start polling.
  absl::Status RegisterServices();
  absl::Status BuildServer(
      std::shared_ptr<grpc::ServerCredentials> credentials);
  void StartPollers();

  void PollLoop(size_t index);
  int64_t LiveCalls() const;
  // Waits until every call object is recycled; false at the deadline.
  // REQUIRES: draining_ is set.
  bool WaitForCallsToDrain(absl::Time deadline);

  // Fixed after construction.
  const ServerOptions options_;
  storage::DB* const db_;
  RpcObserver* const observer_;
  // --max_inflight_bytes, shared by every method's calls (which it
  // outlives).
  InflightBytes inflight_bytes_;

  HealthService health_;

  // Set by Start. The services and the registry outlive server_ (it holds
  // the services) and the calls (they hold the registry's methods).
  std::unique_ptr<ThreadPool> pool_;
  // Full disk: admits writes and drives the "strata.v1.KV.write" health
  // name. Outlives kv_, which asks it.
  std::unique_ptr<WriteGate> write_gate_;
  // --authz_policy (null without one). Outlives kv_ and the calls, which
  // ask it.
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<KvService> kv_;
  std::unique_ptr<RpcRegistry> registry_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs_;
  std::vector<std::unique_ptr<CqState>> cq_states_;
  // factories_[i]: the factories of queue i, touched by its poller only.
  std::vector<std::vector<std::unique_ptr<CallFactoryBase>>> factories_;
  std::vector<std::thread> pollers_;
  int port_ = 0;
  bool started_ = false;
  bool shut_down_ = false;

  // Shutdown handshake with CqState::CallRecycled.
  std::atomic<bool> draining_{false};
  absl::Mutex drain_mu_;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_KV_SERVER_H_
