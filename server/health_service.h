#ifndef STRATA_SERVER_HEALTH_SERVICE_H_
#define STRATA_SERVER_HEALTH_SERVICE_H_

// grpc.health.v1.Health (https://github.com/grpc/grpc/blob/master/doc/health-checking.md)
// served on the KV server's own completion queues.
//
// Why not grpc::EnableDefaultHealthCheckService: in gRPC 1.51 the built-in
// service is a callback service, and registering any callback service
// makes the server run a callback completion queue with its own threads
// that poll the same connections as our queues. Profiling the Get and Put
// benchmarks showed those threads taking ~40% of the server's CPU while
// serving no KV RPC (docs/benchmarks.md). Serving health on the queues we
// already poll costs nothing when nobody probes.
//
// Behaviour (as the built-in service): Check answers the status of a known
// service name and NOT_FOUND for an unknown one. Watch sends the current
// status at once (SERVICE_UNKNOWN for an unknown name) and then every
// change, until the client cancels or the server shuts down. Known names:
// "" (the whole server) and "strata.v1.KV" (liveness: SERVING while the
// server runs, whatever the disk), and "strata.v1.KV.write" (readiness for
// writes: NOT_SERVING while writes are refused for a full disk or an
// engine error, server/write_gate.h). Shutdown() turns every name
// NOT_SERVING for good, tells every watcher, and then ends every Watch
// stream with UNAVAILABLE (so no watcher holds the server's drain).
//
// Thread safety: every method is safe from any thread. Call handlers run on
// the polling threads and never block (the status table's lock is held
// only to read or update a few words).

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/async_call.h"
#include "server/rpc_registry.h"

namespace strata::server {

// The health name that reports whether the node takes writes.
inline constexpr char kWriteHealthName[] = "strata.v1.KV.write";

// Per-call state of a Watch.
struct HealthWatchState {
  // The status last written to the client (UNKNOWN before the first).
  grpc::health::v1::HealthCheckResponse::ServingStatus sent =
      grpc::health::v1::HealthCheckResponse::UNKNOWN;
  void Reset() { sent = grpc::health::v1::HealthCheckResponse::UNKNOWN; }
};

class HealthService {
 public:
  using Service = grpc::health::v1::Health::AsyncService;
  using Request = grpc::health::v1::HealthCheckRequest;
  using Response = grpc::health::v1::HealthCheckResponse;
  using CheckCall = UnaryCall<Request, Response>;
  using WatchCall = ServerStreamingCall<Request, Response, HealthWatchState>;

  // `services`: the names this server reports on besides "" (all start
  // NOT_SERVING). `write_name` (if not empty) is one more, SERVING only
  // while the others are and SetWritable(false) was not called.
  explicit HealthService(const std::vector<std::string>& services,
                         std::string write_name = "");
  HealthService(const HealthService&) = delete;
  HealthService& operator=(const HealthService&) = delete;

  // Registers Check and Watch, on the server's own completion queues. Their
  // RPCs are not reported to the RpcObserver: probes are not KV traffic.
  // Once, before the server starts.
  void RegisterMethods(RpcRegistry* registry);

  // Sets every known name SERVING (true) or NOT_SERVING (false) and writes
  // the change to every watcher. Ignored after Shutdown().
  void SetServing(bool serving);
  // Whether writes are taken (the write name's status while serving).
  void SetWritable(bool writable);
  // Every name NOT_SERVING, permanently; watchers are told. Idempotent.
  void Shutdown();

 private:
  // Call handlers (polling threads).
  void HandleCheck(CheckCall* call);
  void HandleWatch(WatchCall* call, StreamEvent event);
  void WatchStart(WatchCall* call);
  void WatchWriteDone(WatchCall* call, bool ok);
  void WatchCancelled(WatchCall* call);

  // Status of `name` (SERVICE_UNKNOWN if not a known name).
  Response::ServingStatus StatusLocked(const std::string& name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets every name from serving_ and writable_ and returns the parked
  // watchers whose last sent status differs, with their new status (now
  // unparked: the caller writes to them).
  std::vector<std::pair<WatchCall*, Response::ServingStatus>> UpdateLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes each new status.
  static void WriteChanged(
      const std::vector<std::pair<WatchCall*, Response::ServingStatus>>& c);
  // Writes `status` to a watcher that has no operation pending.
  static void WriteStatus(WatchCall* call, Response::ServingStatus status);
  // Ends a watcher's stream with UNAVAILABLE once the server shuts down.
  static void FinishShutDown(WatchCall* call);

  Service service_;
  absl::Mutex mu_;
  std::map<std::string, Response::ServingStatus> status_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  const std::string write_name_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  bool writable_ ABSL_GUARDED_BY(mu_) = true;
  // Watch streams with no write pending, waiting for a change. A call is
  // here, or has a write pending, or is finishing: whoever takes it out
  // under mu_ owns its next operation.
  std::vector<WatchCall*> parked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace strata::server

#endif  // STRATA_SERVER_HEALTH_SERVICE_H_
