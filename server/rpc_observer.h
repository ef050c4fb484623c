#ifndef STRATA_SERVER_RPC_OBSERVER_H_
#define STRATA_SERVER_RPC_OBSERVER_H_

// A hook the call core (async_call.h) invokes at the start and end of every
// KV RPC, so metrics (Prometheus, a later issue) and tests can watch the
// server without touching the call code.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "grpcpp/support/status_code_enum.h"

namespace strata::server {

// Receives RPC life-cycle events. The default methods do nothing.
//
// Thread safety: called concurrently from every completion-queue thread;
// implementations must be thread-safe and must not block (they run on the
// threads that serve every RPC).
class RpcObserver {
 public:
  virtual ~RpcObserver() = default;

  // A request for `method` ("Get", "Put", "Delete", "Scan", "Write": the
  // RPC's name in the proto; a string with static storage) has arrived.
  // Called once per RPC, before the handler runs.
  virtual void OnRpcStart(std::string_view /*method*/) {}

  // The RPC has ended: `code` is the status sent to the client (CANCELLED
  // when the client went away before the status could be delivered),
  // `seconds` the time from arrival to completion, `request_bytes` the
  // serialized request size and `response_bytes` the serialized size of all
  // response messages sent. Called exactly once per OnRpcStart.
  virtual void OnRpcEnd(std::string_view /*method*/, grpc::StatusCode /*code*/,
                        double /*seconds*/, size_t /*request_bytes*/,
                        size_t /*response_bytes*/) {}

  // An RPC whose request names a namespace (a `namespace` field; "" = the
  // default namespace, as the client sent it: it may not exist) ended with
  // `code`. Called right before its OnRpcEnd, for per-namespace metrics.
  virtual void OnNamespaceRpcEnd(std::string_view /*ns*/,
                                 std::string_view /*method*/,
                                 grpc::StatusCode /*code*/) {}

  // A Get was answered by a disk lookup that another Get of the same key
  // had queued (read coalescing, server/get_coalescer.h). Called once per
  // such Get, between its OnRpcStart and OnRpcEnd.
  virtual void OnGetCoalesced() {}

  // Watch streams (server/watch_hub.h). A watch stream opened (OnWatch
  // Opened(+1)) or closed (-1).
  virtual void OnWatchOpened(int /*delta*/) {}
  // `n` events were queued to watch streams.
  virtual void OnWatchEvents(uint64_t /*n*/) {}
  // A watcher fell behind the live feed and started catching up
  // (+1), or caught up (-1).
  virtual void OnWatchCatchingUp(int /*delta*/) {}
  // A catching-up watcher started reading the change log from disk.
  virtual void OnWatchDiskRead() {}
  // A watch stream ended (or was refused) because the changes it needed
  // were compacted.
  virtual void OnWatchCompacted() {}

  // Expiry (server/expiry.h, docs/expiry.md). The live leases and the TTL
  // puts whose deadline the expirer has not processed yet, now (reported
  // after every expirer round).
  virtual void OnExpiryGauges(int64_t /*leases*/, int64_t /*ttl_keys*/) {}
  // The expirer deleted `keys` keys `lag_seconds` after their deadline (the
  // expiry lag; called from the expirer's thread, may block briefly).
  virtual void OnKeysExpired(uint64_t /*keys*/, double /*lag_seconds*/) {}
  // Backups (the Backup RPC, docs/backup.md). A backup started streaming
  // (after its checkpoint was made).
  virtual void OnBackupStarted() {}
  // It sent `n` more bytes of file data.
  virtual void OnBackupBytes(uint64_t /*n*/) {}
  // It ended, `ok` if the whole backup was sent, after `seconds` (from
  // the request); exactly once per OnBackupStarted.
  virtual void OnBackupFinished(bool /*ok*/, double /*seconds*/) {}

  // Full disk (server/write_gate.h). Free bytes of the data volume, read
  // about every 100 ms by the write gate's thread.
  virtual void OnDiskFree(uint64_t /*free_bytes*/) {}
  // A write was refused before reaching the engine; `reason` is one of
  // "disk_reserve", "engine_out_of_space", "engine_read_only",
  // "replica_disk_reserve" (static storage). May be called from the polling threads: must not block.
  virtual void OnWriteRefused(std::string_view /*reason*/) {}

  // Authorization (server/authz.h, docs/security.md). An RPC of `method`
  // was refused PERMISSION_DENIED for lack of `permission` ("read",
  // "write", "admin"; both static storage). Polling threads: must not
  // block.
  virtual void OnAuthzDenied(std::string_view /*method*/,
                             std::string_view /*permission*/) {}
  // The policy file changed and was re-read: `ok` if the new policy took
  // effect, false if it was invalid (the old one stays in force).
  virtual void OnAuthzPolicyReload(bool /*ok*/) {}
};

// A process-wide observer that does nothing. Never null; never destroyed.
RpcObserver* NoopRpcObserver();

}  // namespace strata::server

#endif  // STRATA_SERVER_RPC_OBSERVER_H_
