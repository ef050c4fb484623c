// strata-server: the gRPC storage node. This file only parses flags, opens
// the DB, wires a KvServer and waits for SIGTERM/SIGINT; the logic lives in
// strata_server_lib (kv_server.h). main() runs the steps in order:
// ParseCommandLine, OpenEngine, StartServers, WaitForSignal, ShutDown.
//
// Exit codes: 0 clean shutdown; 1 the DB could not be opened, the address
// not bound, or the final WAL sync failed; 2 bad flags.

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "common/flag_parsing.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpc/grpc.h"
#include "server/authz_policy.h"
#include "server/credentials.h"
#include "server/kv_server.h"
#include "server/backup_archive.h"
#include "server/usable_cpus.h"
#include "server/metrics/metrics_server.h"
#include "server/write_gate.h"
#include "cluster/node/cluster_metrics.h"
#include "cluster/node/cluster_node.h"
#include "grpcpp/grpcpp.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"
#include "strata/storage/db.h"
#include "strata/storage/options.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "host:port to serve gRPC on. Port 0 picks a free port; the bound "
          "address is printed on stdout as 'strata-server listening on "
          "HOST:PORT'.");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9090",
          "host:port to serve Prometheus metrics on (GET /metrics, see "
          "docs/metrics.md); empty disables. Port 0 picks a free port; the "
          "bound address is printed on stdout as 'strata-server metrics on "
          "HOST:PORT' after the listening line.");
ABSL_FLAG(int32_t, metrics_namespace_limit, 32,
          "Named namespaces that get their own per-namespace metric series "
          "(the first ones seen to exist); the others are summed as "
          "namespace=\"other\" (docs/metrics.md, \"Namespaces\"). 0 = "
          "none.");
ABSL_FLAG(std::string, data_dir, "./data",
          "Directory of the database (created if missing). Only one server "
          "may use it at a time (LOCK file).");
ABSL_FLAG(int32_t, cq_threads, 0,
          "gRPC completion queues, each with one polling thread; 0 = derived: "
          "one per usable CPU (the CPUs of the affinity mask, capped by the "
          "cgroup v2 cpu.max quota rounded up; logged at start).");
ABSL_FLAG(int32_t, io_threads, 0,
          "Threads for work that may block on disk: Gets that miss the block "
          "cache, and Scan batches. 0 = derived: 2 per usable CPU, 2..64.");
ABSL_FLAG(bool, coalesce_gets, true,
          "Read coalescing: Gets of one key that arrive while a disk lookup "
          "of that key is queued share its result (one read for a burst on "
          "a hot key).");
ABSL_FLAG(std::string, wal_sync, "fsync",
          "When a write is acknowledged: 'fsync' = after the write-ahead log "
          "is fsynced (concurrent writes share one fsync: group commit; "
          "survives power loss); 'none' = after it reaches the OS (survives "
          "a process crash, not power loss).");
ABSL_FLAG(uint64_t, max_key_bytes, 8192,
          "Largest key in bytes (keys are 1..this). Larger keys get "
          "INVALID_ARGUMENT.");
ABSL_FLAG(uint64_t, max_value_bytes, 2u << 20,
          "Largest value in bytes. The default (2 MiB) lets any gRPC client "
          "with the default 4 MiB receive limit read every value.");
ABSL_FLAG(uint64_t, max_message_bytes, 16u << 20,
          "Largest request message in bytes; larger requests get "
          "INVALID_ARGUMENT, and above twice this gRPC itself answers "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(uint64_t, max_batch_mutations, 10000,
          "Most mutations in one Write request.");
ABSL_FLAG(uint64_t, memtable_bytes, 64u << 20,
          "Memtable size in bytes before it is flushed to an SSTable "
          "(storage Options::memtable_bytes). Larger = fewer flushes, "
          "longer WAL replay after a crash.");
ABSL_FLAG(uint64_t, block_cache_bytes, 256u << 20,
          "Capacity in bytes of the block cache.");
ABSL_FLAG(int32_t, max_open_files, 1000,
          "Most SSTable files kept open at once.");
ABSL_FLAG(std::string, compression, "lz4",
          "SSTable block compression: none, snappy, lz4 or zstd.");
ABSL_FLAG(int32_t, compaction_threads, 0,
          "Background compaction threads. 0 = derived: one per 2 usable "
          "CPUs, 1..4.");

// Transport security (docs/security.md).
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain (leaf first) to serve TLS with; needs "
          "--tls_key. Empty = plaintext.");
ABSL_FLAG(std::string, tls_key, "",
          "PEM private key (unencrypted) of --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM bundle of CAs for mutual TLS: every client must present a "
          "certificate signed by one of them. Needs --tls_cert/--tls_key.");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(60),
          "How often the TLS files are re-read; changed files apply to new "
          "connections without a restart. 0 = read once (rotate by "
          "restarting).");

// Authorization (docs/security.md, "Authorization").
ABSL_FLAG(std::string, authz_policy, "",
          "JSON policy file granting client certificate identities read, "
          "write or admin on namespaces; every KV RPC is checked against "
          "it (PERMISSION_DENIED otherwise). Needs mutual TLS "
          "(--tls_client_ca). Re-read every --tls_reload_interval. Empty = "
          "no authorization: every client may do anything.");

// Resource bounds (docs/security.md, "Resource bounds").
ABSL_FLAG(int32_t, max_inflight_rpcs, 4096,
          "Most RPCs of one method (Get, Put, ...) in progress at once; "
          "beyond it an RPC fails at once with RESOURCE_EXHAUSTED. 0 = "
          "unlimited.");
ABSL_FLAG(uint64_t, max_inflight_bytes, 64u << 20,
          "Most bytes of requests in progress at once, all methods together "
          "(from arrival until answered, including writes waiting on the "
          "engine); a request that would pass it fails at once with "
          "RESOURCE_EXHAUSTED. Each byte is held about twice (request and "
          "write batch). 0 = unlimited; else at least --max_message_bytes. "
          "docs/operations.md");
ABSL_FLAG(uint64_t, transport_memory_bytes, 256u << 20,
          "gRPC ResourceQuota: memory the transport may use for connection "
          "and message buffers before requests reach the server. A soft "
          "bound: over it gRPC reclaims memory, at worst by resetting "
          "streams or closing connections. 0 = no quota. "
          "docs/operations.md");
// Connections (docs/operations.md, "Connections").
ABSL_FLAG(bool, raise_nofile, true,
          "At start, raise the soft RLIMIT_NOFILE (open descriptors) to the "
          "hard limit: every client connection holds a descriptor, and a "
          "soft limit of 1,024 refuses connections long before memory runs "
          "out. The hard limit (ulimit -Hn, systemd LimitNOFILE=, the "
          "container runtime's) stays the ceiling; the start-up log says "
          "what was set. false = keep the inherited limit.");
ABSL_FLAG(bool, malloc_tuning, true,
          "Tune glibc malloc so memory freed after a burst of large requests "
          "goes back to the OS: M_MMAP_THRESHOLD 128 KiB, M_TRIM_THRESHOLD "
          "1 MiB, M_ARENA_MAX 4 x usable CPUs at start (a MALLOC_*_ "
          "environment variable set by the operator wins), and malloc_trim "
          "every 5 s. false = glibc's own adaptive defaults. "
          "docs/operations.md");
ABSL_FLAG(int32_t, stream_window_bytes, 0,
          "HTTP/2 receive window per stream in bytes, fixed (gRPC's "
          "bandwidth-delay probing off). 0 = gRPC's adaptive windows. It "
          "did not lower the peak memory of a burst of 2 MiB Puts in our "
          "measurement; docs/operations.md.");
ABSL_FLAG(int32_t, max_concurrent_streams, 256,
          "Most concurrent RPCs on one client connection (HTTP/2 streams); "
          "more wait on the client side.");
ABSL_FLAG(absl::Duration, keepalive_time, absl::Seconds(60),
          "Server keepalive: ping a client connection after this long "
          "without activity, to notice clients that vanished.");
ABSL_FLAG(absl::Duration, keepalive_timeout, absl::Seconds(20),
          "Close a connection whose keepalive ping is not acknowledged "
          "within this.");
ABSL_FLAG(absl::Duration, min_client_ping_interval, absl::Seconds(10),
          "Keepalive enforcement: client pings closer together than this "
          "(with no data in between) are strikes.");
ABSL_FLAG(int32_t, max_ping_strikes, 2,
          "Strikes tolerated before the connection is closed with GOAWAY "
          "ENHANCE_YOUR_CALM (too_many_pings); 0 = never close.");
ABSL_FLAG(uint64_t, scan_batch_bytes, 1u << 20,
          "Scan: most key+value bytes per response message (a single "
          "larger pair travels alone).");
ABSL_FLAG(uint64_t, scan_batch_max_pairs, 10000,
          "Scan: most pairs per response message. Each message is one unit "
          "of work on an I/O thread, so this bounds how long one Scan holds "
          "it before yielding.");

ABSL_FLAG(absl::Duration, history_retention, absl::Hours(1),
          "Keep at least this much history (older versions of keys and the "
          "change log Watch reads): reads at a revision and watches reach "
          "back this far. 0 = keep everything until Compact is called "
          "(unless --history_retention_revisions is set). "
          "docs/revisions.md");
ABSL_FLAG(uint64_t, history_retention_revisions, 0,
          "Keep at least this many revisions of history; 0 = no such "
          "limit. Both limits hold: to keep a revision count only, also "
          "set --history_retention=0.");
ABSL_FLAG(absl::Duration, watch_progress_interval, absl::Seconds(10),
          "Watch with progress_notify: send an empty response with the "
          "revision reached at least this often while nothing changes.");
ABSL_FLAG(uint64_t, watch_buffer_bytes, 64u << 10,
          "Watch: most queued (unsent) bytes per stream before it leaves the "
          "live feed and catches up from the cache or the change log.");
ABSL_FLAG(uint64_t, watch_cache_bytes, 16u << 20,
          "Watch: bytes of recent commits kept in memory for watchers that "
          "are a little behind.");
ABSL_FLAG(uint64_t, txn_conflict_window_keys, 100000,
          "Transactions (docs/transactions.md): how many recent writes "
          "(key, revision) are remembered to check read-write transactions "
          "for conflicts without reading data. A transaction that read a "
          "range must commit before this many more keys are written, else "
          "it fails with FAILED_PRECONDITION (too old for range reads). "
          "Memory: about (key size + 80) bytes each (~10 MiB for 100,000 "
          "keys of 16 bytes). 0 = no window: range reads cannot commit and "
          "point reads are checked on the data.");
ABSL_FLAG(int32_t, max_watch_streams, 20000,
          "Most Watch streams open at once (0 = unlimited); more get "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, max_ttl, absl::Hours(24 * 365),
          "Longest TTL of a key (PutRequest.ttl_ms) or a lease; longer gets "
          "INVALID_ARGUMENT. docs/expiry.md");
ABSL_FLAG(int64_t, max_leases, 100000,
          "Most live leases; a LeaseGrant beyond gets RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_keys_per_lease, 10000,
          "Most keys attached to one lease (all are deleted in one batch when "
          "it ends); a Put beyond gets RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, expiry_interval, absl::Milliseconds(100),
          "How often the expirer looks for keys and leases past their "
          "deadline when none is known to be due sooner (expired keys are "
          "never served in between; this bounds how late their DELETE "
          "revision comes).");
ABSL_FLAG(std::string, restore_from, "",
          "Build --data_dir from backup files before serving: "
          "FULL[,INCREMENTAL...], a full backup then incremental ones in "
          "order (strata backup create [--since REV]); each is checked "
          "(every checksum), the full one unpacked, the incrementals "
          "applied batch by batch at their own revisions, then it is served "
          "as usual. Refused if --data_dir is not empty, unless --force. "
          "docs/backup.md");
ABSL_FLAG(int64_t, restore_to_revision, 0,
          "With --restore_from: stop at this revision (point-in-time "
          "restore); 0 = everything the backups hold. It must be at least "
          "the full backup's revision and at most the last one the "
          "backups hold.");
ABSL_FLAG(bool, force, false,
          "With --restore_from: replace what --data_dir holds (once the "
          "backup has been read successfully).");
ABSL_FLAG(uint64_t, backup_rate_limit_bytes, 0,
          "Bytes per second a Backup stream sends at most (0 = unlimited).");
ABSL_FLAG(int32_t, max_backups, 1,
          "Most Backup streams at once (0 = unlimited); more get "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(uint64_t, min_free_disk_bytes, 256ull << 20,
          "Free bytes the data volume keeps in reserve: below it, writes "
          "that add data (Put, Write with a put, Txn, Commit, Increment, "
          "JsonUpdate, LeaseGrant) get RESOURCE_EXHAUSTED and the health "
          "name strata.v1.KV.write turns NOT_SERVING, while deletes, "
          "flushes and compactions go on. 0 disables. docs/operations.md");

// Cluster mode (docs/cluster.md, "Running a cluster"). Without
// --cluster_etcd the server is a standalone node, exactly as before.
ABSL_FLAG(std::string, cluster_etcd, "",
          "host:port of etcd's client endpoint, or several members' "
          "separated by commas (h1:p1,h2:p2,h3:p3): run as a node of the "
          "cluster "
          "whose state lives there under --cluster_prefix (initialized by "
          "strata cluster init --ranges=1). Needs --node_id and "
          "--advertise_address. Empty = standalone (no cluster).");
ABSL_FLAG(std::string, node_id, "",
          "Cluster mode: this node's id ([a-z0-9-]{1,63}), as in strata "
          "cluster init --members.");
ABSL_FLAG(std::string, advertise_address, "",
          "Cluster mode: host:port other nodes and clients dial to reach "
          "this node (its --listen address as seen from them).");
ABSL_FLAG(std::string, cluster_prefix, "strata/",
          "Cluster mode: the etcd key prefix of the cluster's state.");
ABSL_FLAG(absl::Duration, cluster_lease_ttl, absl::Seconds(5),
          "Cluster mode: TTL of the node's etcd lease (liveness). A dead "
          "primary is replaced about this long after it stops renewing; a "
          "primary cut from etcd stops accepting writes by then.");
ABSL_FLAG(absl::Duration, replication_timeout, absl::Seconds(10),
          "Cluster mode: how long a write committed on the primary waits "
          "for every in-sync replica before the client gets "
          "DEADLINE_EXCEEDED (the write's outcome is then unknown).");
ABSL_FLAG(std::string, cluster_etcd_ca, "",
          "Cluster mode: PEM bundle of the CAs that sign etcd's server "
          "certificates (etcdctl's --cacert); set, the connection to etcd "
          "is TLS and each member's certificate must name the address in "
          "--cluster_etcd it is dialed at. Empty = plaintext.");
ABSL_FLAG(std::string, cluster_etcd_cert, "",
          "Cluster mode with --cluster_etcd_ca: this node's client "
          "certificate for an etcd started with --client-cert-auth "
          "(etcdctl's --cert; with --cluster_etcd_key).");
ABSL_FLAG(std::string, cluster_etcd_key, "",
          "The private key of --cluster_etcd_cert (etcdctl's --key).");
ABSL_FLAG(std::string, cluster_etcd_user, "",
          "Cluster mode: etcd user to authenticate as, for an etcd with "
          "authentication enabled (etcdctl auth enable); needs "
          "--cluster_etcd_password_file. Its roles must allow reading and "
          "writing --cluster_prefix. Empty = no authentication.");
ABSL_FLAG(std::string, cluster_etcd_password_file, "",
          "Cluster mode: file holding the password of --cluster_etcd_user "
          "(one trailing newline is ignored), e.g. a mounted Kubernetes "
          "Secret; a file rather than a flag so the password does not show "
          "in the process list.");
ABSL_FLAG(std::string, cluster_tls_ca, "",
          "Cluster mode with --tls_cert: PEM bundle of the CAs that sign the "
          "other nodes' certificates; node-to-node calls (replication, "
          "checkpoints, forwarding) are TLS, verified against it, and "
          "present this node's --tls_cert. Empty = --tls_client_ca.");
ABSL_FLAG(bool, cluster_forward, true,
          "Cluster mode: a node that is not the primary forwards every "
          "client RPC (KV, reflection, ...; not health checks, which "
          "describe the node itself) to the primary, so any node can be "
          "dialed; false = it answers FAILED_PRECONDITION naming the "
          "primary (trailer strata-primary). A client can opt out per call "
          "with the metadata strata-no-forward: 1.");

namespace {

using strata::server::KvServer;
using strata::server::ServerOptions;
using strata::server::WatchHubOptions;
namespace storage = strata::storage;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::vector<char*> ParseFlagsOrExit(int argc, char** argv) {
  return strata::common::ParseFlagsOrExit(argc, argv, kExitOk, kExitUsage);
}

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "strata-server: %s\n", message.c_str());
  std::exit(kExitUsage);
}

// --tls_* and the resource-bound flags; exits with status 2 on an invalid
// value, including an unreadable or wrong TLS file.
void TlsAndBoundsFromFlags(ServerOptions* so) {
  so->tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  so->tls.key_file = absl::GetFlag(FLAGS_tls_key);
  so->tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  so->tls.reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  if (so->tls.cert_file.empty() != so->tls.key_file.empty()) {
    UsageError("--tls_cert and --tls_key must be given together");
  }
  if (!so->tls.client_ca_file.empty() && so->tls.cert_file.empty()) {
    UsageError("--tls_client_ca needs --tls_cert and --tls_key");
  }
  if (so->tls.reload_interval < absl::ZeroDuration()) {
    UsageError("--tls_reload_interval must be >= 0 (0 = never reload)");
  }
  if (so->tls.enabled()) {
    // Fail before opening (and maybe recovering) the DB.
    absl::StatusOr<strata::server::ServerTlsSummary> tls =
        strata::server::ValidateServerTls(so->tls);
    if (!tls.ok()) UsageError(std::string(tls.status().message()));
  }
  so->max_inflight_rpcs = absl::GetFlag(FLAGS_max_inflight_rpcs);
  if (so->max_inflight_rpcs < 0) {
    UsageError("--max_inflight_rpcs must be >= 0 (0 = unlimited)");
  }
  so->max_inflight_bytes = absl::GetFlag(FLAGS_max_inflight_bytes);
  if (absl::Status s = strata::server::ValidateInflightBytes(
          so->max_inflight_bytes, so->limits);
      !s.ok()) {
    UsageError(std::string(s.message()));
  }
  so->transport_memory_bytes = absl::GetFlag(FLAGS_transport_memory_bytes);
  so->transport.stream_window_bytes = absl::GetFlag(FLAGS_stream_window_bytes);
  if (so->transport.stream_window_bytes < 0) {
    UsageError("--stream_window_bytes must be >= 0 (0 = adaptive)");
  }
  so->transport.max_concurrent_streams =
      absl::GetFlag(FLAGS_max_concurrent_streams);
  if (so->transport.max_concurrent_streams < 1) {
    UsageError("--max_concurrent_streams must be >= 1");
  }
  so->transport.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);
  so->transport.keepalive_timeout = absl::GetFlag(FLAGS_keepalive_timeout);
  if (so->transport.keepalive_time < absl::Seconds(1) ||
      so->transport.keepalive_timeout < absl::Seconds(1)) {
    UsageError("--keepalive_time and --keepalive_timeout must be >= 1s");
  }
  so->transport.min_client_ping_interval =
      absl::GetFlag(FLAGS_min_client_ping_interval);
  if (so->transport.min_client_ping_interval < absl::ZeroDuration()) {
    UsageError("--min_client_ping_interval must be >= 0");
  }
  so->transport.max_ping_strikes = absl::GetFlag(FLAGS_max_ping_strikes);
  if (so->transport.max_ping_strikes < 0) {
    UsageError("--max_ping_strikes must be >= 0 (0 = never close)");
  }
  so->scan_batch_bytes = absl::GetFlag(FLAGS_scan_batch_bytes);
  so->scan_batch_max_pairs = absl::GetFlag(FLAGS_scan_batch_max_pairs);
  if (so->scan_batch_bytes < 1 || so->scan_batch_max_pairs < 1) {
    UsageError("--scan_batch_bytes and --scan_batch_max_pairs must be >= 1");
  }
}

// --authz_policy: needs mutual TLS, and the file must be a valid policy;
// exits with status 2 otherwise (before the DB is opened).
void AuthzFromFlags(ServerOptions* so) {
  so->authz_policy_file = absl::GetFlag(FLAGS_authz_policy);
  if (so->authz_policy_file.empty()) return;
  if (so->tls.client_ca_file.empty()) {
    UsageError(
        "--authz_policy needs mutual TLS (--tls_cert, --tls_key and "
        "--tls_client_ca): the policy grants by client certificate, and "
        "without one no client can be identified");
  }
  absl::StatusOr<strata::server::AuthzPolicy> policy =
      strata::server::LoadAuthzPolicyFile(so->authz_policy_file);
  if (!policy.ok()) UsageError(std::string(policy.status().message()));
}

// Printed to stderr once the server listens in plaintext on an address
// other machines can reach.
void WarnIfExposedPlaintext(const ServerOptions& so,
                            const std::string& bound_address) {
  if (so.tls.enabled() ||
      strata::server::IsLoopbackListenAddress(so.listen)) {
    return;
  }
  std::fprintf(
      stderr,
      "\n"
      "************************************************************\n"
      "* WARNING: strata-server is serving PLAINTEXT gRPC on %s\n"
      "* (not a loopback address). Anyone who can reach this port\n"
      "* can read and write every key. Serve TLS (--tls_cert,\n"
      "* --tls_key, and --tls_client_ca for mutual TLS), or make sure\n"
      "* a service mesh or network policy guards it.\n"
      "* See docs/security.md.\n"
      "************************************************************\n\n",
      bound_address.c_str());
  spdlog::warn("serving plaintext gRPC on non-loopback address {}; see "
               "docs/security.md",
               bound_address);
}

struct Config {
  ServerOptions server;
  storage::Options engine;
  std::string data_dir;
  std::string wal_sync;
  std::string compression;
  std::string metrics_listen;  // Empty: no metrics endpoint.
  size_t metrics_namespace_limit = 32;
  std::string restore_from;    // Empty: no restore.
  int64_t restore_to_revision = 0;
  bool force = false;
  // What the derived thread counts came from, and which were derived.
  strata::server::UsableCpus cpus;
  std::string derived_threads;
  bool malloc_tuning = true;
  bool raise_nofile = true;
};

// --history_retention*, --watch_* and --max_watch_streams; exits with
// status 2 on an invalid value.
void HistoryAndWatchFromFlags(Config* c) {
  const absl::Duration retention = absl::GetFlag(FLAGS_history_retention);
  const uint64_t revisions = absl::GetFlag(FLAGS_history_retention_revisions);
  if (retention < absl::ZeroDuration()) {
    UsageError("--history_retention must be >= 0");
  }
  c->engine.keep_history = true;
  // Both limits hold ("at least"); --history_retention=0 turns the time
  // window off, e.g. to keep a revision count only.
  c->engine.history_retention_seconds =
      static_cast<uint64_t>(absl::ToInt64Seconds(retention));
  c->engine.history_retention_revisions = revisions;
  WatchHubOptions& w = c->server.watch;
  w.progress_interval = absl::GetFlag(FLAGS_watch_progress_interval);
  if (w.progress_interval < absl::Milliseconds(100)) {
    UsageError("--watch_progress_interval must be at least 100ms");
  }
  w.buffer_bytes = absl::GetFlag(FLAGS_watch_buffer_bytes);
  w.cache_bytes = absl::GetFlag(FLAGS_watch_cache_bytes);
  if (w.buffer_bytes < 1024) UsageError("--watch_buffer_bytes must be >= 1024");
  c->server.max_watch_streams = absl::GetFlag(FLAGS_max_watch_streams);
  if (c->server.max_watch_streams < 0) {
    UsageError("--max_watch_streams must be >= 0 (0 = unlimited)");
  }
}

// --max_ttl, --max_leases, --max_keys_per_lease, --expiry_interval; exits
// with status 2 on an invalid value. The engine and the expirer share one
// lease table (the engine hides the keys of an expired lease).
void ExpiryFromFlags(Config* c) {
  strata::server::ExpiryOptions& e = c->server.expiry;
  e.max_ttl_seconds = absl::ToInt64Seconds(absl::GetFlag(FLAGS_max_ttl));
  e.max_leases = absl::GetFlag(FLAGS_max_leases);
  e.max_keys_per_lease = absl::GetFlag(FLAGS_max_keys_per_lease);
  e.interval = absl::GetFlag(FLAGS_expiry_interval);
  if (absl::Status s = strata::server::ValidateExpiryOptions(e); !s.ok()) {
    UsageError(std::string(s.message()));
  }
  e.leases = std::make_shared<strata::server::LeaseTable>();
  c->engine.lease_deadlines = e.leases.get();
}

// --cq_threads, --io_threads, --compaction_threads: each 0 takes the
// count derived from the usable CPUs (server/usable_cpus.h). Exits with
// status 2 on an invalid value.
void ThreadsFromFlags(Config* c) {
  c->cpus = strata::server::DetectUsableCpus();
  const strata::server::ThreadDefaults derived =
      strata::server::DeriveThreadDefaults(c->cpus.count);
  const int cq = absl::GetFlag(FLAGS_cq_threads);
  const int io = absl::GetFlag(FLAGS_io_threads);
  const int compaction = absl::GetFlag(FLAGS_compaction_threads);
  if (cq < 0 || cq > 1024) {
    UsageError("--cq_threads must be 0 (derived) .. 1024");
  }
  if (io < 0 || io > 1024) UsageError("--io_threads must be 0 (derived) .. 1024");
  if (compaction < 0 || compaction > 64) {
    UsageError("--compaction_threads must be 0 (derived) .. 64");
  }
  c->server.cq_threads = cq > 0 ? cq : derived.cq_threads;
  c->server.io_threads = io > 0 ? io : derived.io_threads;
  c->engine.compaction_threads =
      compaction > 0 ? compaction : derived.compaction_threads;
  std::vector<std::string> derived_names;
  if (cq == 0) derived_names.push_back("cq");
  if (io == 0) derived_names.push_back("pool");
  if (compaction == 0) derived_names.push_back("compaction");
  c->derived_threads = absl::StrJoin(derived_names, ",");
}

// Flags -> options; exits with status 2 on an invalid value.
Config ConfigFromFlags() {
  Config c;
  c.server.listen = absl::GetFlag(FLAGS_listen);
  if (c.server.listen.rfind(':') == std::string::npos) {
    UsageError(absl::StrFormat("--listen must be host:port (got '%s')",
                               c.server.listen));
  }
  c.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  if (absl::GetFlag(FLAGS_metrics_namespace_limit) < 0) {
    UsageError("--metrics_namespace_limit must be >= 0");
  }
  c.metrics_namespace_limit =
      static_cast<size_t>(absl::GetFlag(FLAGS_metrics_namespace_limit));
  if (!c.metrics_listen.empty()) {
    if (absl::Status s =
            strata::server::metrics::ValidateMetricsAddress(c.metrics_listen);
        !s.ok()) {
      UsageError(absl::StrFormat("--metrics_listen: %s", s.message()));
    }
  }
  c.data_dir = absl::GetFlag(FLAGS_data_dir);
  if (c.data_dir.empty()) UsageError("--data_dir must not be empty");
  ThreadsFromFlags(&c);
  c.malloc_tuning = absl::GetFlag(FLAGS_malloc_tuning);
  c.raise_nofile = absl::GetFlag(FLAGS_raise_nofile);
  c.server.coalesce_gets = absl::GetFlag(FLAGS_coalesce_gets);
  c.wal_sync = absl::GetFlag(FLAGS_wal_sync);
  if (c.wal_sync == "fsync") {
    c.engine.wal_sync = storage::WalSyncMode::kSync;
    c.server.sync_writes = true;
  } else if (c.wal_sync == "none") {
    c.engine.wal_sync = storage::WalSyncMode::kNoSync;
    c.server.sync_writes = false;
  } else {
    UsageError(absl::StrFormat("--wal_sync must be fsync or none (got '%s')",
                               c.wal_sync));
  }
  c.server.limits.max_key_bytes = absl::GetFlag(FLAGS_max_key_bytes);
  c.server.limits.max_value_bytes = absl::GetFlag(FLAGS_max_value_bytes);
  c.server.limits.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  c.server.limits.max_batch_mutations =
      absl::GetFlag(FLAGS_max_batch_mutations);
  if (absl::Status s = strata::server::ValidateLimits(c.server.limits);
      !s.ok()) {
    UsageError(std::string(s.message()));
  }

  c.engine.create_if_missing = true;
  c.engine.memtable_bytes = absl::GetFlag(FLAGS_memtable_bytes);
  if (c.engine.memtable_bytes < (64u << 10)) {
    UsageError("--memtable_bytes must be at least 65536");
  }
  c.engine.block_cache_bytes = absl::GetFlag(FLAGS_block_cache_bytes);
  c.engine.max_open_files = absl::GetFlag(FLAGS_max_open_files);
  if (c.engine.max_open_files < 16) {
    UsageError("--max_open_files must be at least 16");
  }
  c.compression = absl::GetFlag(FLAGS_compression);
  if (c.compression == "none") {
    c.engine.compression = storage::CompressionType::kNone;
  } else if (c.compression == "snappy") {
    c.engine.compression = storage::CompressionType::kSnappy;
  } else if (c.compression == "lz4") {
    c.engine.compression = storage::CompressionType::kLZ4;
  } else if (c.compression == "zstd") {
    c.engine.compression = storage::CompressionType::kZstd;
  } else {
    UsageError(absl::StrFormat(
        "--compression must be none, snappy, lz4 or zstd (got '%s')",
        c.compression));
  }
  TlsAndBoundsFromFlags(&c.server);
  AuthzFromFlags(&c.server);
  HistoryAndWatchFromFlags(&c);
  c.engine.conflict_window_keys = absl::GetFlag(FLAGS_txn_conflict_window_keys);
  if (c.engine.conflict_window_keys > (uint64_t{1} << 30)) {
    UsageError("--txn_conflict_window_keys must be at most 1073741824");
  }
  ExpiryFromFlags(&c);
  // Compaction drops the keys of deleted namespaces (docs/namespaces.md).
  c.server.deleted_namespaces =
      std::make_shared<strata::server::DeletedNamespaces>();
  c.engine.compaction_filter = c.server.deleted_namespaces;
  c.restore_from = absl::GetFlag(FLAGS_restore_from);
  c.force = absl::GetFlag(FLAGS_force);
  if (c.force && c.restore_from.empty()) {
    UsageError("--force applies to --restore_from only");
  }
  c.restore_to_revision = absl::GetFlag(FLAGS_restore_to_revision);
  if (c.restore_to_revision != 0 && c.restore_from.empty()) {
    UsageError("--restore_to_revision applies to --restore_from only");
  }
  if (c.restore_to_revision < 0) {
    UsageError("--restore_to_revision must be >= 0");
  }
  c.server.backup_tmp_dir = c.data_dir + "/backup-tmp";
  c.server.backup_rate_limit_bytes =
      absl::GetFlag(FLAGS_backup_rate_limit_bytes);
  c.server.max_backups = absl::GetFlag(FLAGS_max_backups);
  if (c.server.max_backups < 0) UsageError("--max_backups must be >= 0");
  c.server.disk_space.min_free_bytes = absl::GetFlag(FLAGS_min_free_disk_bytes);
  c.server.disk_space.data_dir = c.data_dir;
  return c;
}

std::string VersionString() {
  return absl::StrFormat("strata-server %s (%s)\n", STRATA_VERSION,
                         STRATA_GIT_SHA);
}

// Usage text, --help and --version, then the flags; exits with status 2 on
// a bad flag or argument.
Config ParseCommandLine(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "the Strata gRPC key-value storage node.\n\n"
      "Usage: strata-server [--listen=HOST:PORT] [--data_dir=DIR] [flags]\n\n"
      "Serves strata.v1.KV (Get/Put/Delete/Scan/Write), gRPC server "
      "reflection and grpc.health.v1.Health. SIGTERM or SIGINT shut it down "
      "cleanly (exit 0). See docs/server.md.");
  absl::FlagsUsageConfig usage_config;
  usage_config.version_string = VersionString;
  // --help lists this file's flags (Abseil's default looks for a file named
  // after the binary).
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "server/main.cc");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  usage_config.normalize_filename = [](absl::string_view path) {
    const size_t pos = path.rfind("server/main.cc");
    return std::string(pos == absl::string_view::npos ? path
                                                      : path.substr(pos));
  };
  absl::SetFlagsUsageConfig(usage_config);
  const std::vector<char*> positional = ParseFlagsOrExit(argc, argv);
  if (positional.size() > 1) {
    UsageError(absl::StrFormat("unexpected argument '%s' (try --help)",
                               positional[1]));
  }
  return ConfigFromFlags();
}

// Blocks the shutdown signals in this thread, and so in every thread
// started after it, and returns them for WaitForSignal. Call before any
// thread exists (the engine's and gRPC's threads inherit the mask;
// grpc_init already starts some, and one of those taking a SIGTERM would
// kill the process).
sigset_t BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  // SIGHUP (often sent to "reload") must not kill the server: TLS files
  // are re-read on their own (--tls_reload_interval).
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// --restore_from: builds the data directory from the backup. On failure
// prints why on stderr and returns false (nothing was changed).
bool RestoreDataDir(const Config& config) {
  std::vector<std::string> paths =
      absl::StrSplit(config.restore_from, ',', absl::SkipEmpty());
  absl::StatusOr<strata::server::BackupSummary> restored =
      strata::server::RestoreBackup(paths, config.data_dir, config.force,
                                    config.restore_to_revision);
  if (!restored.ok()) {
    std::fprintf(stderr, "strata-server: cannot restore %s from %s: %s\n",
                 config.data_dir.c_str(), config.restore_from.c_str(),
                 restored.status().ToString().c_str());
    return false;
  }
  spdlog::info(
      "restored {} from {}: revision {}, {} files, {} bytes, {} incremental "
      "batches ({} changes), {} keys",
      config.data_dir, config.restore_from, restored->revision,
      restored->files, restored->bytes, restored->batches, restored->changes,
      restored->keys);
  return true;
}

// Opens (or creates) the database; on failure prints why on stderr and
// returns null.
std::unique_ptr<storage::DB> OpenEngine(const Config& config) {
  absl::StatusOr<std::unique_ptr<storage::DB>> opened =
      storage::DB::Open(config.engine, config.data_dir);
  if (opened.ok()) return *std::move(opened);
  const absl::Status& s = opened.status();
  if (absl::IsFailedPrecondition(s)) {  // At Open: the LOCK file is held.
    std::fprintf(stderr,
                 "strata-server: data directory %s is in use by another "
                 "process (LOCK held)\n",
                 config.data_dir.c_str());
  } else {
    std::fprintf(stderr, "strata-server: cannot open data directory %s: %s\n",
                 config.data_dir.c_str(), s.ToString().c_str());
  }
  return nullptr;
}

// What serves the open DB. Destroyed in reverse order: the RPC server
// first, then the metrics endpoint (whose scrapes read the DB).
struct Servers {
  std::unique_ptr<strata::server::metrics::MetricsServer> metrics;
  std::unique_ptr<KvServer> kv;
};

// glibc malloc settings that return memory after a burst of large values
// (docs/operations.md, "Memory"). By default glibc raises its mmap
// threshold to the largest block freed (up to 32 MiB), so after the first
// 2 MiB value every later one comes from the heap and its arenas, which
// keep the memory after the burst. A fixed threshold keeps large buffers
// in mmap (returned at free), a low trim threshold gives back the top of
// the heap, and fewer arenas leave less memory stranded per thread. An
// environment variable the operator set (MALLOC_MMAP_THRESHOLD_, ...)
// wins over ours.
void TuneAllocator(int usable_cpus) {
  struct Setting {
    int param;
    const char* env;
    int value;
  };
  const Setting settings[] = {
      {M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 128 << 10},
      {M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 1 << 20},
      {M_ARENA_MAX, "MALLOC_ARENA_MAX", 4 * std::max(1, usable_cpus)},
  };
  for (const Setting& s : settings) {
    if (std::getenv(s.env) != nullptr) continue;
    if (mallopt(s.param, s.value) != 1) {
      spdlog::warn("mallopt({}) failed; glibc's default stays", s.env);
    }
  }
}

// Returns freed heap memory to the OS every kTrimInterval (malloc_trim):
// after a burst of large requests glibc's arenas keep the freed space
// (gRPC receives a request in many slices below the mmap threshold,
// interleaved with live ones), 1.5 GiB measured; malloc_trim gives back
// every whole free page inside them (87 MiB after). One pass over a large
// heap takes milliseconds and holds each arena's lock briefly.
class MallocTrimmer {
 public:
  static constexpr absl::Duration kTrimInterval = absl::Seconds(5);
  MallocTrimmer()
      : thread_([this] {
          while (!stop_.WaitForNotificationWithTimeout(kTrimInterval)) {
            malloc_trim(0);
          }
        }) {
    pthread_setname_np(thread_.native_handle(), "strata-trim");
  }
  ~MallocTrimmer() {
    stop_.Notify();
    thread_.join();
  }
  MallocTrimmer(const MallocTrimmer&) = delete;
  MallocTrimmer& operator=(const MallocTrimmer&) = delete;

 private:
  absl::Notification stop_;
  std::thread thread_;
};

// The descriptor limit before and after RaiseDescriptorLimit.
struct DescriptorLimit {
  uint64_t inherited = 0;  // soft limit the process started with
  uint64_t soft = 0;       // soft limit in force
  uint64_t hard = 0;
  std::string error;       // why it could not be read or raised
};

// Raises the soft RLIMIT_NOFILE to the hard limit (--raise_nofile): each
// connection is a descriptor, and gRPC refuses new ones (accept fails with
// EMFILE) once the soft limit is reached.
DescriptorLimit RaiseDescriptorLimit(bool raise) {
  DescriptorLimit d;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    d.error = absl::StrCat("getrlimit(RLIMIT_NOFILE): ", std::strerror(errno));
    return d;
  }
  d.inherited = d.soft = rl.rlim_cur;
  d.hard = rl.rlim_max;
  if (!raise || rl.rlim_cur >= rl.rlim_max) return d;
  const rlimit raised{rl.rlim_max, rl.rlim_max};
  if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    d.error = absl::StrCat("setrlimit(RLIMIT_NOFILE, ", rl.rlim_max,
                           "): ", std::strerror(errno));
    return d;
  }
  d.soft = rl.rlim_max;
  return d;
}

// gRPC 1.51 charges each idle connection ~14 KiB (its 8 KiB read buffer
// and transport state) to the ResourceQuota; when the quota is full its
// reclamation closes idle connections (GOAWAY "Buffers full"). Measured in
// docs/benchmarks.md, "Connections".
constexpr uint64_t kQuotaBytesPerIdleConnection = 14 << 10;

// The descriptor limit and how many idle connections the transport quota
// holds (docs/operations.md, "Connections").
void LogConnections(const DescriptorLimit& d, const Config& config) {
  if (!d.error.empty()) spdlog::warn("connections: {}", d.error);
  const uint64_t quota = config.server.transport_memory_bytes;
  spdlog::info(
      "connections: RLIMIT_NOFILE soft {} (inherited {}, hard {}{}); "
      "--transport_memory_bytes holds {} idle connections before gRPC "
      "closes idle ones (~{} KiB each)",
      d.soft, d.inherited, d.hard,
      config.raise_nofile ? "" : ", --raise_nofile=false",
      quota == 0 ? std::string("any number of")
                 : absl::StrCat("~", quota / kQuotaBytesPerIdleConnection),
      kQuotaBytesPerIdleConnection >> 10);
}

// The thread counts and where they came from (a flag, or the usable CPUs).
void LogThreads(const Config& config) {
  const strata::server::UsableCpus& cpus = config.cpus;
  spdlog::info(
      "threads: cq={} pool={} compaction={} (usable CPUs {}: affinity {}, "
      "cgroup quota {}; derived: {})",
      config.server.cq_threads, config.server.io_threads,
      config.engine.compaction_threads, cpus.count, cpus.affinity,
      cpus.cgroup_quota ? absl::StrFormat("%.2f", *cpus.cgroup_quota)
                        : std::string("none"),
      config.derived_threads.empty() ? std::string("none, all set by flags")
                                     : config.derived_threads);
}

// The full settings line of the start-up log.
void LogSettings(const Config& config, const std::string& bound_address) {
  const ServerOptions& so = config.server;
  spdlog::info(
      "strata-server {} ({}) listening on {}: data_dir={} cq_threads={} "
      "io_threads={} coalesce_gets={} wal_sync={} max_key_bytes={} max_value_bytes={} "
      "max_message_bytes={} max_batch_mutations={} memtable_bytes={} "
      "block_cache_bytes={} max_open_files={} compression={} "
      "compaction_threads={} tls={} max_inflight_rpcs={} "
      "max_concurrent_streams={} keepalive_time={} keepalive_timeout={} "
      "min_client_ping_interval={} max_ping_strikes={} scan_batch_bytes={} "
      "scan_batch_max_pairs={} history_retention={} "
      "history_retention_revisions={} max_watch_streams={} "
      "watch_buffer_bytes={} watch_cache_bytes={} "
      "txn_conflict_window_keys={} max_inflight_bytes={} "
      "transport_memory_bytes={} stream_window_bytes={} malloc_tuning={}",
      STRATA_VERSION, STRATA_GIT_SHA, bound_address, config.data_dir,
      so.cq_threads, so.io_threads, so.coalesce_gets, config.wal_sync, so.limits.max_key_bytes,
      so.limits.max_value_bytes, so.limits.max_message_bytes,
      so.limits.max_batch_mutations, config.engine.memtable_bytes,
      config.engine.block_cache_bytes, config.engine.max_open_files,
      config.compression, config.engine.compaction_threads,
      !so.tls.enabled()                  ? "off"
      : so.tls.client_ca_file.empty() ? "on"
                                      : "mutual",
      so.max_inflight_rpcs, so.transport.max_concurrent_streams,
      absl::FormatDuration(so.transport.keepalive_time),
      absl::FormatDuration(so.transport.keepalive_timeout),
      absl::FormatDuration(so.transport.min_client_ping_interval),
      so.transport.max_ping_strikes, so.scan_batch_bytes,
      so.scan_batch_max_pairs,
      absl::FormatDuration(
          absl::Seconds(config.engine.history_retention_seconds)),
      config.engine.history_retention_revisions, so.max_watch_streams,
      so.watch.buffer_bytes, so.watch.cache_bytes,
      config.engine.conflict_window_keys, so.max_inflight_bytes,
      so.transport_memory_bytes, so.transport.stream_window_bytes,
      config.malloc_tuning);
}

// Starts the metrics endpoint (if enabled) and then the RPC server on `db`,
// and announces both: the "listening" and "metrics on" lines on stdout,
// the settings on stderr. The metrics endpoint listens first, so a busy
// metrics port fails the start instead of leaving a server nobody can
// monitor. On failure nothing is left running and the error's message
// says what failed.
// The metrics endpoint on --metrics_listen (nullptr when it is empty):
// the engine's families for `db` (none if db is null), the RPC families,
// and `extra` (cluster mode) if given. The error names the flag.
absl::StatusOr<std::unique_ptr<strata::server::metrics::MetricsServer>>
StartMetrics(const Config& config, strata::server::metrics::EngineSource db,
             std::shared_ptr<prometheus::Collectable> extra) {
  if (config.metrics_listen.empty()) return nullptr;
  auto metrics = std::make_unique<strata::server::metrics::MetricsServer>(
      std::move(db),
      strata::server::metrics::BuildInfo{STRATA_VERSION, STRATA_GIT_SHA},
      config.metrics_namespace_limit);
  if (extra != nullptr) metrics->AddCollectable(std::move(extra));
  if (absl::Status s = metrics->Listen(config.metrics_listen); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("--metrics_listen: ", s.message()));
  }
  return metrics;
}

// The "listening" and "metrics on" lines on stdout, which tests and
// scripts wait for.
void AnnounceListening(const std::string& address,
                       const strata::server::metrics::MetricsServer* metrics) {
  std::printf("strata-server listening on %s\n", address.c_str());
  if (metrics != nullptr) {
    std::printf("strata-server metrics on %s\n",
                metrics->bound_address().c_str());
  }
  std::fflush(stdout);
}

absl::StatusOr<Servers> StartServers(
    const Config& config, storage::DB* db,
    std::shared_ptr<prometheus::Collectable> extra_metrics = nullptr) {
  Servers servers;
  absl::StatusOr<std::unique_ptr<strata::server::metrics::MetricsServer>>
      metrics = StartMetrics(config, db, std::move(extra_metrics));
  if (!metrics.ok()) return metrics.status();
  servers.metrics = *std::move(metrics);
  servers.kv = std::make_unique<KvServer>(
      config.server, db,
      servers.metrics ? servers.metrics->rpc_observer() : nullptr);
  if (absl::Status s = servers.kv->Start(); !s.ok()) return s;

  const std::string address = servers.kv->bound_address();
  AnnounceListening(address, servers.metrics.get());
  if (servers.metrics) {
    spdlog::info("metrics on http://{}/metrics",
                 servers.metrics->bound_address());
  } else {
    spdlog::info("metrics disabled (--metrics_listen is empty)");
  }
  WarnIfExposedPlaintext(config.server, address);
  LogThreads(config);
  LogSettings(config, address);
  return servers;
}

// Waits for a signal of `signals` other than SIGHUP (logged and ignored):
// SIGTERM or SIGINT, and SIGUSR1 (a role change) in cluster mode.
int WaitForSignal(const sigset_t& signals, const ServerOptions& so) {
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    spdlog::info(
        "received SIGHUP: nothing to reload by signal; {}",
        !so.tls.enabled() ? std::string("TLS is off")
        : so.tls.reload_interval > absl::ZeroDuration()
            ? absl::StrFormat("TLS files are re-read every %s",
                              absl::FormatDuration(so.tls.reload_interval))
            : std::string("TLS files are read once (restart to rotate)"));
  }
  return sig;
}

// The shutdown sequence (docs/server.md, "Shutdown"): the RPC server, the
// metrics endpoint, the final WAL sync, the DB. Returns the exit code: 1 if
// the WAL sync failed.
int ShutDown(int sig, Servers servers, std::unique_ptr<storage::DB> db) {
  const auto start = std::chrono::steady_clock::now();
  spdlog::info("received {}; shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  servers.kv->Shutdown();
  servers.kv.reset();
  servers.metrics.reset();  // Stops the scrapes that read the DB.
  int exit_code = kExitOk;
  if (absl::Status s = db->SyncWAL(); !s.ok()) {
    spdlog::error("shutdown: WAL sync failed: {}", s.ToString());
    exit_code = kExitFailure;
  }
  db.reset();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  spdlog::info("shutdown complete in {:.3f} s", seconds);
  return exit_code;
}

// Cluster mode: starts this program again with the same flags, on
// `listen` (the port it had). Returns only if exec failed (logged).
void ReExec(int argc, char** argv, const std::string& listen) {
  // The flags it was started with, but one --listen (each re-exec would
  // otherwise append another).
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i > 0 && (a.starts_with("--listen=") || a.starts_with("-listen="))) {
      continue;
    }
    args.emplace_back(a);
  }
  args.push_back(absl::StrCat("--listen=", listen));
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  spdlog::info("re-executing to take the node's role from the range map");
  spdlog::default_logger()->flush();
  execv("/proc/self/exe", cargs.data());
  std::fprintf(stderr, "strata-server: re-exec failed: %s\n",
               std::strerror(errno));
}

// Cluster mode (--cluster_etcd; cluster/node/cluster_node.h): the node
// takes the role the range map gives it. As primary it serves strata.v1.KV
// on the replicated DB, plus Replication and Cluster; as a replica only
// Replication and Cluster, answering everything else FAILED_PRECONDITION
// with the primary's address. When its role must change the node raises
// SIGUSR1 at itself; the process then shuts down and re-executes itself
// with the same flags (and --listen fixed to the port it had), so the new
// role starts from a clean process: everything derived from the database
// is rebuilt by the ordinary start-up. Returns the exit code (it does not
// return after a successful re-exec).
int RunClusterNode(Config config, const sigset_t& signals, int argc,
                   char** argv) {
  strata::cluster::ClusterNodeOptions o;
  o.etcd_endpoint = absl::GetFlag(FLAGS_cluster_etcd);
  o.etcd_tls.ca_file = absl::GetFlag(FLAGS_cluster_etcd_ca);
  o.etcd_tls.cert_file = absl::GetFlag(FLAGS_cluster_etcd_cert);
  o.etcd_tls.key_file = absl::GetFlag(FLAGS_cluster_etcd_key);
  absl::StatusOr<strata::cluster::EtcdAuthOptions> etcd_auth =
      strata::cluster::LoadEtcdAuth(
          absl::GetFlag(FLAGS_cluster_etcd_user),
          absl::GetFlag(FLAGS_cluster_etcd_password_file), "--cluster_etcd_");
  if (!etcd_auth.ok()) {
    std::fprintf(stderr, "strata-server: cluster: %s\n",
                 std::string(etcd_auth.status().message()).c_str());
    return kExitUsage;
  }
  o.etcd_auth = *std::move(etcd_auth);
  o.prefix = absl::GetFlag(FLAGS_cluster_prefix);
  o.node_id = absl::GetFlag(FLAGS_node_id);
  o.advertise_address = absl::GetFlag(FLAGS_advertise_address);
  o.data_dir = config.data_dir;
  o.lease_ttl = absl::GetFlag(FLAGS_cluster_lease_ttl);
  o.replication_timeout = absl::GetFlag(FLAGS_replication_timeout);
  o.forward = absl::GetFlag(FLAGS_cluster_forward);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> peer =
      strata::server::MakeNodeChannelCredentials(
          config.server.tls, absl::GetFlag(FLAGS_cluster_tls_ca));
  if (!peer.ok()) {
    std::fprintf(stderr, "strata-server: cluster: %s\n",
                 std::string(peer.status().message()).c_str());
    return kExitUsage;
  }
  o.peer_credentials = *std::move(peer);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> node_credentials =
      strata::server::MakeServerCredentials(config.server);
  if (!node_credentials.ok()) {
    std::fprintf(stderr, "strata-server: %s\n",
                 std::string(node_credentials.status().message()).c_str());
    return kExitUsage;
  }
  o.disk_space = [dir = config.data_dir,
                  reserve = config.server.disk_space.min_free_bytes](
                     strata::v1::ReplicaDiskSpace* out) {
    absl::StatusOr<uint64_t> free = strata::server::FreeDiskBytes(dir);
    if (!free.ok()) return false;
    out->set_free_bytes(*free);
    out->set_min_free_bytes(reserve);
    return true;
  };
  o.engine = config.engine;
  o.on_role_change = [](const std::string&) { kill(getpid(), SIGUSR1); };
  absl::StatusOr<std::unique_ptr<strata::cluster::ClusterNode>> started =
      strata::cluster::ClusterNode::Start(o);
  if (!started.ok()) {
    std::fprintf(stderr, "strata-server: cluster: %s\n",
                 started.status().ToString().c_str());
    return absl::IsInvalidArgument(started.status()) ? kExitUsage
                                                     : kExitFailure;
  }
  std::unique_ptr<strata::cluster::ClusterNode> node = *std::move(started);
  // Checkpoints are made elsewhere in cluster mode (cluster-tmp); backups
  // use the primary's server as usual.
  std::error_code ec;
  std::filesystem::remove_all(config.server.backup_tmp_dir, ec);

  // The node's own services (Replication, Cluster) and "not the primary"
  // for every other method, on the node's port: a replica's whole server,
  // and a new primary's until its replicas have caught up.
  auto serve_node_services =
      [&](std::string* bound_address) -> std::unique_ptr<grpc::Server> {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(config.server.listen, *node_credentials, &port);
    strata::server::ConfigureConnections(config.server, &builder);
    for (grpc::Service* service : node->services()) {
      builder.RegisterService(service);
    }
    builder.RegisterCallbackGenericService(node->not_primary_service());
    if (absl::GetFlag(FLAGS_cluster_forward)) {
      // Reflection calls go to the primary too, which describes every
      // service (this server's own would list only Replication, Cluster).
      builder.SetOption(strata::cluster::WithoutLocalReflection());
    }
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (server == nullptr || port == 0) {
      std::fprintf(stderr, "strata-server: cannot listen on %s\n",
                   config.server.listen.c_str());
      return nullptr;
    }
    *bound_address = strata::server::BoundAddress(config.server.listen, port);
    return server;
  };

  std::string bound;
  Servers servers;
  std::unique_ptr<grpc::Server> replica_server;
  if (node->role() == strata::cluster::ClusterNode::Role::kPrimary) {
    // Until the in-sync replicas hold this node's whole tail, the port
    // serves only the node's services: a replica with a divergent tail
    // re-syncs from this node's checkpoint before it can acknowledge.
    std::unique_ptr<grpc::Server> waiting = serve_node_services(&bound);
    if (waiting == nullptr) return kExitFailure;
    absl::Status caught_up = node->WaitForReplicas();
    waiting->Shutdown();
    waiting.reset();
    if (!caught_up.ok()) {
      std::fprintf(stderr, "strata-server: cluster: %s\n",
                   caught_up.ToString().c_str());
      node->Stop();
      ReExec(argc, argv, bound);  // Start over from the map.
      return kExitFailure;
    }
    config.server.extra_services = node->services();
    config.server.write_readiness = node->write_readiness();
    config.server.disk_space.replicas_reserve = node->replicas_disk_reserve();
    absl::StatusOr<Servers> s =
        StartServers(config, node->serving_db(),
                     strata::cluster::MakeClusterCollector(node.get()));
    if (!s.ok()) {
      std::fprintf(stderr, "strata-server: %s\n",
                   std::string(s.status().message()).c_str());
      return kExitFailure;
    }
    servers = *std::move(s);
    bound = servers.kv->bound_address();
  } else {
    replica_server = serve_node_services(&bound);
    if (replica_server == nullptr) return kExitFailure;
    // The engine families of the sink's DB, pinned per scrape (a re-sync
    // replaces it), disk free of --data_dir, and the cluster's families.
    absl::StatusOr<std::unique_ptr<strata::server::metrics::MetricsServer>>
        metrics = StartMetrics(config,
                               strata::cluster::ClusterEngineSource(node.get()),
                               strata::cluster::MakeClusterCollector(node.get()));
    if (!metrics.ok()) {
      std::fprintf(stderr, "strata-server: %s\n",
                   std::string(metrics.status().message()).c_str());
      return kExitFailure;
    }
    servers.metrics = *std::move(metrics);
    AnnounceListening(bound, servers.metrics.get());
    spdlog::info("replica of range 0 at epoch {} listening on {} "
                 "(strata.v1.Replication, strata.v1.Cluster; other RPCs "
                 "are {})",
                 node->epoch(), bound,
                 absl::GetFlag(FLAGS_cluster_forward)
                     ? "forwarded to the primary"
                     : "answered FAILED_PRECONDITION naming the primary");
  }

  const int sig = WaitForSignal(signals, config.server);
  const bool restart = sig == SIGUSR1;
  spdlog::info("{}; shutting down",
               restart ? "role change" : "received a shutdown signal");
  if (servers.kv) {
    servers.kv->Shutdown();
    servers.kv.reset();
  }
  servers.metrics.reset();
  if (replica_server) {
    replica_server->Shutdown(std::chrono::system_clock::now() +
                             std::chrono::seconds(1));
    replica_server.reset();
  }
  node->Stop();
  node.reset();
  if (!restart) return kExitOk;

  ReExec(argc, argv, bound);
  return kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  const Config config = ParseCommandLine(argc, argv);
  // Before any thread exists, so every arena is made under these settings.
  if (config.malloc_tuning) TuneAllocator(config.cpus.count);

  // Debian's Abseil is built with mutex deadlock detection on, which makes
  // every absl::Mutex operation (gRPC takes many per RPC) maintain a lock
  // graph. It is a debugging aid; a production server turns it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Before any thread exists; this thread collects them with sigwait.
  sigset_t signals = BlockShutdownSignals();
  const DescriptorLimit nofile = RaiseDescriptorLimit(config.raise_nofile);
  const bool cluster_mode = !absl::GetFlag(FLAGS_cluster_etcd).empty();
  if (cluster_mode) {  // A role change (RunClusterNode).
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
    sigaddset(&signals, SIGUSR1);
  }

  // Hold a gRPC library reference for the whole process. Otherwise the
  // last reference is dropped by ~Server, whose synchronous grpc_shutdown
  // joins gRPC's executor threads and can block for ~10 s on a pending
  // timer, breaking the shutdown deadline. The OS reclaims everything at
  // exit.
  grpc_init();

  // Logs go to stderr; stdout carries only the "listening" and "metrics on"
  // lines.
  spdlog::set_default_logger(spdlog::stderr_color_mt("strata"));

  if (!config.restore_from.empty() && !RestoreDataDir(config)) {
    return kExitFailure;
  }
  LogConnections(nofile, config);
  if (cluster_mode) return RunClusterNode(config, signals, argc, argv);
  std::unique_ptr<storage::DB> db = OpenEngine(config);
  if (db == nullptr) return kExitFailure;
  // Checkpoints of backups that were running when the server last stopped
  // (killed): nothing uses them any more.
  {
    std::error_code ec;
    std::filesystem::remove_all(config.server.backup_tmp_dir, ec);
    if (ec) {
      spdlog::warn("removing {}: {}", config.server.backup_tmp_dir,
                   ec.message());
    }
  }
  std::unique_ptr<MallocTrimmer> trimmer;
  if (config.malloc_tuning) trimmer = std::make_unique<MallocTrimmer>();
  absl::StatusOr<Servers> servers = StartServers(config, db.get());
  if (!servers.ok()) {
    std::fprintf(stderr, "strata-server: %s\n",
                 std::string(servers.status().message()).c_str());
    return kExitFailure;  // Whatever started is stopped before the DB.
  }
  const int sig = WaitForSignal(signals, config.server);
  return ShutDown(sig, *std::move(servers), std::move(db));
}
