#ifndef STRATA_SERVER_KV_SERVER_H_
#define STRATA_SERVER_KV_SERVER_H_

// KvServer serves the strata.v1.KV service over gRPC's asynchronous
// completion-queue API on an open storage::DB, plus server reflection and
// the standard grpc.health.v1.Health service. See docs/server.md for the
// threading model and server/async_call.h for the call life cycle.
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

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "server/async_call.h"
#include "server/get_coalescer.h"
#include "server/health_service.h"
#include "server/rpc_observer.h"
#include "server/server_options.h"
#include "server/thread_pool.h"
#include "strata/storage/db.h"
#include "strata/v1/kv.grpc.pb.h"

namespace strata::server {

// Per-call state of a Scan (see KvServer::ScanBatch).
struct ScanState {
  const storage::Snapshot* snapshot = nullptr;
  std::unique_ptr<storage::Iterator> iterator;
  ScanCursor cursor;
  v1::ScanResponse response;
  int batch = 0;  // Batches filled so far.
  // Drops what a finished scan left (snapshot and iterator are released
  // before Finish, on the blocking pool).
  void Reset();
};

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

  // Number of call objects armed or serving (TEST ONLY).
  int64_t TEST_live_calls() const;
  // TEST_live_calls() of a started server with no RPC in progress: every
  // method's posted requests on every queue (TEST ONLY).
  int64_t TEST_idle_calls() const {
    return static_cast<int64_t>(cqs_.size() * factory_makers_.size()) *
           options_.calls_per_method;
  }

 private:
  using Service = v1::KV::AsyncService;
  using GetCall = UnaryCall<Service, v1::GetRequest, v1::GetResponse>;
  using PutCall = UnaryCall<Service, v1::PutRequest, v1::PutResponse>;
  using DeleteCall = UnaryCall<Service, v1::DeleteRequest, v1::DeleteResponse>;
  using WriteCall = UnaryCall<Service, v1::WriteRequest, v1::WriteResponse>;
  using ScanCall =
      ServerStreamingCall<Service, v1::ScanRequest, v1::ScanResponse, ScanState>;

  // Registration, in RegisterMethods(): AddUnary for a unary method;
  // AddMethod registers any call kind and returns its Method for the caller
  // to fill in before Start. `observed`: whether the RpcObserver (metrics)
  // hears of the method's RPCs.
  template <class Svc, class Req, class Resp>
  void AddUnary(Svc* service, std::string_view name,
                typename UnaryCall<Svc, Req, Resp>::RequestFn request,
                std::function<void(UnaryCall<Svc, Req, Resp>*)> handler,
                bool observed = true);
  template <class Call>
  typename Call::Method* AddMethod(std::string_view name,
                                   bool observed = true);
  void RegisterMethods();

  // Handlers (polling thread unless noted).
  void HandleGet(GetCall* call);
  void FinishGetBlocking(GetCall* call);  // Blocking pool.
  // Blocking pool: one lookup of `key` answers its whole coalesced group.
  void FinishGetGroup(const std::string& key);
  void HandlePut(PutCall* call);
  void HandleDelete(DeleteCall* call);
  void HandleWrite(WriteCall* call);
  template <class Call>
  void SubmitWrite(Call* call, absl::StatusOr<storage::WriteBatch> batch);
  void ScanStart(ScanCall* call);
  void ScanWriteDone(ScanCall* call, bool ok);
  void ScheduleScanBatch(ScanCall* call);
  void ScanBatch(ScanCall* call);  // Blocking pool.
  void ReleaseScan(ScanState* state);

  void PollLoop(size_t index);
  int64_t LiveCalls() const;
  // Waits until every call object is recycled; false at the deadline.
  // REQUIRES: draining_ is set.
  bool WaitForCallsToDrain(absl::Time deadline);

  // Fixed after construction.
  const ServerOptions options_;
  storage::DB* const db_;
  RpcObserver* const observer_;
  const storage::WriteOptions write_options_;

  Service service_;
  HealthService health_;
  // Gets waiting for a queued disk lookup, by key (--coalesce_gets).
  GetCoalescer<GetCall*> get_groups_;
  // Method descriptions (shared by all queues) and how to make a per-queue
  // factory for each.
  std::vector<std::shared_ptr<void>> methods_;
  std::vector<std::function<std::unique_ptr<CallFactoryBase>(CqState*)>>
      factory_makers_;

  // Set by Start.
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs_;
  std::vector<std::unique_ptr<CqState>> cq_states_;
  // factories_[i]: the factories of queue i, touched by its poller only.
  std::vector<std::vector<std::unique_ptr<CallFactoryBase>>> factories_;
  std::vector<std::thread> pollers_;
  std::unique_ptr<ThreadPool> pool_;
  int port_ = 0;
  bool started_ = false;
  bool shut_down_ = false;

  // Shutdown handshake with CqState::CallRecycled.
  std::atomic<bool> draining_{false};
  absl::Mutex drain_mu_;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_KV_SERVER_H_
