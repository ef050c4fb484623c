#ifndef STRATA_SERVER_SERVER_OPTIONS_H_
#define STRATA_SERVER_SERVER_OPTIONS_H_

// Everything a KvServer needs besides the open DB. main.cc fills it from the
// flags; tests fill it directly.

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "server/handlers.h"

namespace grpc {
class ServerContext;
}  // namespace grpc

namespace strata::server {

struct ServerOptions {
  // host:port to listen on. Port 0 picks a free port (KvServer::port()
  // reports it).
  std::string listen = "127.0.0.1:50051";

  // Completion queues, each with one polling thread. 0 means one per
  // hardware core.
  int cq_threads = 0;
  // Threads of the blocking pool that serves Gets missing the block cache
  // and Scan batches.
  int io_threads = 4;

  // Request limits (InvalidArgument when violated).
  Limits limits;

  // WriteOptions::sync for every write: true acknowledges a write only after
  // the WAL is fsynced (group commit), when the DB was opened with
  // WalSyncMode::kSync.
  bool sync_writes = true;

  // Most RPCs of one method in progress at once; 0 means unlimited. An RPC
  // above the cap ends at once with RESOURCE_EXHAUSTED. (A later issue
  // exposes it as --max_inflight_rpcs.)
  int max_inflight_rpcs = 0;

  // Requests kept posted per method per completion queue, so a burst of new
  // RPCs does not wait for a re-arm.
  int calls_per_method = 8;

  // How long Shutdown lets in-flight RPCs finish before cancelling them.
  absl::Duration shutdown_grace = absl::Seconds(5);

  // Transport security. Empty today (plaintext); TLS fields go here and are
  // consumed only by MakeServerCredentials (server/credentials.h).

  // TEST ONLY: called on a blocking-pool thread before each Scan batch is
  // filled, with the 0-based batch index and the call's context (whose
  // IsCancelled() turns true once the server has seen a cancellation). May
  // block (to freeze a scan mid-way). Must be thread-safe.
  std::function<void(int batch, grpc::ServerContext* context)>
      TEST_before_scan_batch;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_SERVER_OPTIONS_H_
