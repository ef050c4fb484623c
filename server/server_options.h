#ifndef STRATA_SERVER_SERVER_OPTIONS_H_
#define STRATA_SERVER_SERVER_OPTIONS_H_

// Everything a KvServer needs besides the open DB. main.cc fills it from the
// flags; tests fill it directly.

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <memory>

#include "absl/time/time.h"
#include "server/deleted_namespaces.h"
#include "server/expiry.h"
#include "server/handlers.h"
#include "server/limits.h"
#include "server/write_gate.h"

namespace grpc {
class ServerContext;
class Service;
}  // namespace grpc

namespace strata::server {

class RpcRegistry;

// TLS for the listening port. Plaintext when cert_file is empty.
struct ServerTlsOptions {
  // PEM files: the server's certificate chain (leaf first) and its private
  // key. Both set = serve TLS only (plaintext clients fail the handshake);
  // both empty = plaintext.
  std::string cert_file;
  std::string key_file;
  // PEM bundle of the CAs that sign client certificates. Set = mutual TLS:
  // every client must present a certificate chaining to one of them, or
  // its handshake fails. REQUIRES: cert_file and key_file set.
  std::string client_ca_file;
  // How often the three files are re-read; a change (e.g. a rotated
  // Kubernetes Secret) applies to new connections without a restart, while
  // existing connections keep their session. Zero = read once at start
  // (rotate by restarting). Rounded up to whole seconds.
  absl::Duration reload_interval = absl::Seconds(60);

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
};

// HTTP/2 transport bounds, applied to every connection.
struct TransportLimits {
  // Most concurrent RPCs (HTTP/2 streams) on one connection; a client that
  // wants more waits for a free stream (its RPCs queue, they do not fail).
  int max_concurrent_streams = 256;
  // The server pings a connection that has been quiet this long, and
  // closes it if no ack arrives within keepalive_timeout (frees what a
  // vanished client held).
  absl::Duration keepalive_time = absl::Seconds(60);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Keepalive enforcement: a client ping arriving sooner than this after
  // the previous one (with no data in between) is a strike; after
  // max_ping_strikes strikes the connection is closed with GOAWAY
  // ENHANCE_YOUR_CALM ("too_many_pings"); 0 strikes = never close.
  // Clients may ping idle connections (keepalive without calls is
  // permitted).
  absl::Duration min_client_ping_interval = absl::Seconds(10);
  int max_ping_strikes = 2;
  // HTTP/2 receive window of each stream, in bytes, fixed (gRPC's
  // bandwidth-delay probing off); 0 = gRPC's adaptive windows. Meant to
  // bound what a burst of large requests buffers in the transport, but in
  // our measurement (gRPC 1.51, 2,000 streams of 2 MiB) it did not lower
  // the peak: gRPC still takes in the whole message of a stream it reads
  // (docs/operations.md, "Memory"). A small window costs throughput when
  // window / round-trip time is below the link's speed. --stream_window_bytes.
  int stream_window_bytes = 0;
};

// Settings of the watch hub (server/watch_hub.h, docs/revisions.md).
struct WatchHubOptions {
  // Bytes of queued (unsent) messages per watcher before it leaves the
  // live feed and catches up by itself (a single revision larger than this
  // still goes, alone). --watch_buffer_bytes.
  size_t buffer_bytes = 64 << 10;
  // Bytes of recent commits kept in memory for watchers that are a little
  // behind; further back they read the WAL. --watch_cache_bytes.
  size_t cache_bytes = 16 << 20;
  // Largest message (bytes of events) sent; a revision with more events is
  // split across consecutive messages.
  size_t max_message_bytes = 1 << 20;
  // progress_notify: an empty response at least this often while idle.
  // --watch_progress_interval.
  absl::Duration progress_interval = absl::Seconds(10);
  // TEST ONLY: runs in WatchHub::Shutdown after every stream was told to
  // finish and before their sinks are called.
  std::function<void()> TEST_before_shutdown_kick;
};

struct ServerOptions {
  // host:port to listen on. Port 0 picks a free port (KvServer::port()
  // reports it).
  std::string listen = "127.0.0.1:50051";

  // Completion queues, each with one polling thread. 0 means one per
  // usable CPU (server/usable_cpus.h: affinity mask and cgroup quota).
  int cq_threads = 0;
  // Threads of the blocking pool that serves Gets missing the block cache
  // and Scan batches.
  int io_threads = 4;
  // Read coalescing (server/get_coalescer.h): Gets of one key that arrive
  // while a disk lookup of that key is queued share its result.
  bool coalesce_gets = true;

  // Request limits (InvalidArgument when violated).
  Limits limits;

  // WriteOptions::sync for every write: true acknowledges a write only after
  // the WAL is fsynced (group commit), when the DB was opened with
  // WalSyncMode::kSync.
  bool sync_writes = true;

  // Most RPCs of one method in progress at once (counted per method, from
  // the moment the request arrives until its status is sent); 0 means
  // unlimited. An RPC above the cap ends at once with RESOURCE_EXHAUSTED
  // naming --max_inflight_rpcs, before its handler runs. The default of
  // every method; a method may set its own at registration
  // (MethodOptions::max_inflight, rpc_registry.h).
  int max_inflight_rpcs = 4096;

  // Most serialized bytes of requests in progress at once, all methods
  // together, from arrival until the status is sent (so including writes
  // waiting in the engine's write queue); a request that would pass it
  // ends at once with RESOURCE_EXHAUSTED naming --max_inflight_bytes. 0 =
  // unlimited; otherwise at least limits.max_message_bytes. Each byte
  // counted is held about twice (the parsed request and its write batch).
  // server/limits.h, InflightBytes.
  uint64_t max_inflight_bytes = 64u << 20;
  // gRPC's ResourceQuota for the transport (grpc::ResourceQuota on the
  // ServerBuilder): the memory gRPC may use for connection and message
  // buffers before a request reaches a handler. Under pressure gRPC
  // reclaims memory, at worst by resetting streams (RESOURCE_EXHAUSTED)
  // or closing connections (UNAVAILABLE): 64 MiB did that under 128
  // concurrent 2 MiB Puts, 256 MiB did not. 0 = no quota.
  uint64_t transport_memory_bytes = 256u << 20;

  // Tests only: added to the wall clock when the server checks whether a
  // request's deadline has passed before its handler starts (such a
  // request ends at once with DEADLINE_EXCEEDED, nothing done). A large
  // offset makes every request with a deadline look expired.
  std::chrono::nanoseconds TEST_deadline_clock_offset{0};

  // Requests kept posted per method per completion queue, so a burst of new
  // RPCs does not wait for a re-arm.
  int calls_per_method = 8;

  // The free-space reserve and the write gate (server/write_gate.h):
  // --min_free_disk_bytes, and the data directory whose volume is watched.
  DiskSpaceOptions disk_space;

  // How long Shutdown lets in-flight RPCs finish before cancelling them.
  absl::Duration shutdown_grace = absl::Seconds(5);

  // Transport security; read only by MakeServerCredentials
  // (server/credentials.h). Default: plaintext.
  ServerTlsOptions tls;

  // Transport bounds (docs/security.md, "Resource bounds").
  TransportLimits transport;

  // Scan: most key+value bytes per ScanResponse message (a single larger
  // pair still travels alone) and most pairs per message. Each message is
  // one task on the blocking pool, so these bound the work one Scan does
  // before it yields the thread to other RPCs.
  size_t scan_batch_bytes = kScanBatchBytes;
  size_t scan_batch_max_pairs = 10000;

  // Watch: the hub's settings, and the most Watch streams open at once (a
  // Watch above it ends at once with RESOURCE_EXHAUSTED naming
  // --max_watch_streams).
  WatchHubOptions watch;
  int max_watch_streams = 20000;

  // TTLs, leases and the expirer (server/expiry.h, docs/expiry.md).
  ExpiryOptions expiry;

  // The deleted namespaces, filled by the catalog; the same object must be
  // the engine's Options::compaction_filter, so compaction drops their keys
  // (server/deleted_namespaces.h). nullptr: a deleted namespace's keys keep
  // their space.
  std::shared_ptr<DeletedNamespaces> deleted_namespaces;

  // Backups (the Backup RPC, server/backup_service.cc, docs/backup.md).
  // The directory a backup's checkpoint is made in, one subdirectory per
  // backup, removed when it ends: it must be on the data directory's file
  // system (the checkpoint hard-links the SSTables) and is only the
  // server's (main.cc uses <data_dir>/backup-tmp and empties it at start).
  // Empty: the Backup RPC fails with FAILED_PRECONDITION.
  std::string backup_tmp_dir;
  // The most backups streaming at once (RESOURCE_EXHAUSTED naming
  // --max_backups above it).
  int max_backups = 1;
  // Bytes per second a backup streams at most; 0 = unlimited
  // (--backup_rate_limit_bytes).
  uint64_t backup_rate_limit_bytes = 0;
  // Bytes of file data per BackupChunk.
  size_t backup_chunk_bytes = 1 << 20;

  // Authorization (server/authz.h, docs/security.md "Authorization"): a
  // JSON policy file granting client identities read/write/admin on
  // namespaces; every KV RPC is checked against it. Empty = no policy
  // (every client that passes the handshake may do anything). REQUIRES
  // mutual TLS (tls.client_ca_file), else Start fails with
  // InvalidArgument. Re-read every tls.reload_interval (0 = read once).
  std::string authz_policy_file;

  // TEST ONLY: called on a blocking-pool thread before each Scan batch is
  // filled, with the 0-based batch index and the call's context (whose
  // IsCancelled() turns true once the server has seen a cancellation). May
  // block (to freeze a scan mid-way). Must be thread-safe.
  std::function<void(int batch, grpc::ServerContext* context)>
      TEST_before_scan_batch;

  // TEST ONLY: called by Start after the server's own services registered
  // theirs, to add more services and methods (a test service exercising
  // the call machinery). What it registers must outlive the server.
  std::function<void(RpcRegistry* registry)> TEST_register_services;

  // Cluster mode (--cluster_etcd; cluster/node/cluster_node.h): services
  // of gRPC's synchronous API registered on the same port next to
  // strata.v1.KV (strata.v1.Replication, strata.v1.Cluster: they block on
  // disk or etcd, so they run on gRPC's sync threads, never on a
  // completion queue). Not owned; they outlive the server. Empty in
  // standalone mode.
  std::vector<grpc::Service*> extra_services;

  // Cluster mode: why this node does not take writes although its engine
  // does (a primary that is fenced, whose lease lapsed, or whose in-sync
  // set is below min_in_sync): OK, or the reason. Readiness only (health's
  // "strata.v1.KV.write", through WriteGate's `readiness`); the writes
  // answer it themselves, so the write gate does not refuse on it. Called
  // on the write gate's refresh thread; must stay callable until Shutdown
  // has returned. Empty in standalone mode.
  std::function<absl::Status()> write_readiness;

  // TEST ONLY: called on a blocking-pool thread when the compaction of a
  // deleted namespace's key range (after DeleteNamespace) ended, with the
  // namespace's id and the compaction's status. Must be thread-safe.
  std::function<void(uint64_t id, const absl::Status& status)>
      TEST_namespace_reclaimed;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_SERVER_OPTIONS_H_
