#ifndef STRATA_SERVER_KV_SERVICE_H_
#define STRATA_SERVER_KV_SERVICE_H_

// The strata.v1.KV service: the registration of its methods and their
// handlers, which wire the request logic (handlers.h) to the engine, the
// blocking pool and the calls (async_call.h). The server's life cycle
// (start, drain, shutdown) is KvServer's (kv_server.h).
//
// Where each RPC runs (docs/server.md, "Where each RPC runs"):
//   Get      polling thread from memory (ReadOptions::cache_only); on a
//            cache miss the blocking pool, one lookup per coalesced group
//            of Gets of the same key (--coalesce_gets).
//   Put, Delete, Write
//            polling thread builds the WriteBatch and calls DB::WriteAsync;
//            the engine's commit thread finishes the call once durable.
//   Scan     polling thread takes the snapshot (a past revision's on the
//            blocking pool); every batch is read on the blocking pool; the
//            write loop runs on the polling thread.
//   Watch    polling thread registers the watcher with the hub
//            (watch_hub.h); messages are written from the hub's dispatcher,
//            a blocking-pool task (catching up) or the polling thread
//            (after each completed write).
//   Compact, BatchGet
//            blocking pool (a manifest write; several lookups).
//   DeleteRange
//            like Write; the engine's commit thread lists the range's keys
//            at commit time (a CommitFunction).
//   Txn, Commit
//            like Write: the polling thread validates and encodes the
//            writes (txn.h); the engine's commit thread evaluates the
//            compares and reads (Txn) or checks for conflicts (Commit) at
//            commit time (txn_service.cc).
//   Increment, JsonUpdate (kv_service_typed.cc)
//            like Write; the engine's commit thread reads the key, computes
//            and appends the new value at commit time (typed_ops.h).
//   JsonGet  like Get (memory on the polling thread, else the blocking
//            pool); a large document is parsed on the pool.
//   Put/Write with a TTL or lease, LeaseGrant, LeaseRevoke, LeaseKeepAlive
//            like Write, with a CommitFunction (server/expiry.h).
//   LeaseTimeToLive  blocking pool (reads the lease's keys).
//   LeaseLeases      polling thread (the lease table in memory).
//   Backup   blocking pool (backup_service.cc): the checkpoint, then each
//            chunk is read there; one task or write pending at a time.
//   CreateNamespace, DeleteNamespace, UpdateNamespace (namespace_service.cc)
//            like Write: a CommitFunction checks and writes the catalog.
//   ListNamespaces   blocking pool (the catalog's copy in memory and each
//                    namespace's usage record).
//
// Every RPC that names a key resolves its namespace first, on the polling
// thread, from the catalog's copy in memory (namespace_catalog.h); writes
// re-check it at commit time (NamespaceCatalog::Guard).
//
// Thread safety: handlers run on the polling threads (and hand calls to the
// engine callback thread or the blocking pool); they never block.

#include <xxhash.h>

#include <atomic>
#include <deque>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "server/async_call.h"
#include "server/expiry.h"
#include "server/get_coalescer.h"
#include "server/handlers.h"
#include "server/namespace_catalog.h"
#include "server/rpc_observer.h"
#include "server/rpc_registry.h"
#include "server/server_options.h"
#include "server/thread_pool.h"
#include "server/watch_hub.h"
#include "server/write_gate.h"
#include "strata/storage/db.h"
#include "strata/storage/write_batch.h"
#include "strata/v1/kv.grpc.pb.h"

namespace strata::server {

class KvService;

// Per-call state of a Watch: the hub's watcher and the sink it feeds (the
// call's stream). See KvService::HandleWatch.
struct WatchState {
  class Sink final : public WatchSink {
   public:
    void MessagesReady() override;
    KvService* service = nullptr;
    ServerStreamingCall<v1::WatchRequest, v1::WatchResponse, WatchState>*
        call = nullptr;
  };
  std::shared_ptr<WatchHub::Watcher> watcher;
  Sink sink;
  void Reset();
};

// Per-call state of a Scan (see KvService::ScanBatch). The batch being
// filled is the call's mutable_response().
struct ScanState {
  const storage::Snapshot* snapshot = nullptr;
  std::unique_ptr<storage::Iterator> iterator;
  ScanCursor cursor;
  int batch = 0;  // Batches filled so far.
  KeyspaceView ns;  // The namespace scanned.
  // Drops what a finished scan left (snapshot and iterator are released
  // before Finish, on the blocking pool).
  void Reset();
};

// Per-call state of a Backup (backup_service.cc): the checkpoint being
// streamed and where the stream is in it. Touched only by the task or
// write completion that holds the call (one at a time).
struct BackupState {
  std::string dir;  // The checkpoint's directory ("" before it exists).
  storage::Revision revision = 0;
  std::vector<std::pair<std::string, uint64_t>> files;  // Name, size.
  size_t next_file = 0;
  uint64_t offset = 0;  // Bytes of files[next_file] sent.
  std::unique_ptr<storage::SequentialFile> file;
  XXH64_state_t* hash = nullptr;  // Of files[next_file] so far.
  v1::BackupManifest manifest;
  uint64_t sent_bytes = 0;
  std::chrono::steady_clock::time_point start;
  bool begun = false;     // BackupBegin sent.
  bool observed = false;  // OnBackupStarted reported.
  // Incremental backups (since_revision > 0): the change log being
  // streamed instead of a checkpoint; `hash` covers every chunk's data and
  // `manifest` counts batches and changes.
  storage::Revision from_revision = 0;
  std::unique_ptr<storage::ChangeIterator> changes;
  bool change_pending = false;  // changes->batch() is not sent yet.
  bool changes_done = false;    // The change log is exhausted.
  // Namespace backups (BackupRequest.namespace, format 3): the stored
  // entries of one namespace read at `snapshot` (released by EndBackup):
  // first the system entries collected when it began (`ns_pending`), then
  // the namespace's keys (`ns_keys`, over its prefix `ns_prefix`); `hash`
  // covers every chunk's data and `manifest.changes` counts the entries.
  std::string ns_name;  // "" = not a namespace backup.
  std::string ns_prefix;
  const storage::Snapshot* snapshot = nullptr;
  std::deque<v1::BackupChange> ns_pending;
  std::unique_ptr<storage::Iterator> ns_keys;
  BackupState() = default;
  BackupState(const BackupState&) = delete;
  BackupState& operator=(const BackupState&) = delete;
  ~BackupState() { Reset(); }
  void Reset();
};

// The strata.v1.KV methods of one server, created by KvServer::Start.
class KvService {
 public:
  // Everything must outlive the service; `pool` must accept tasks until
  // every call has finished (KvServer::Shutdown stops it last). `gate`
  // (may be null: no gate) admits writes that add data. `authz` (may be
  // null: no policy) filters what ListNamespaces shows (the checks of
  // every RPC happen before the handlers, in async_call.h).
  KvService(const ServerOptions& options, storage::DB* db,
            RpcObserver* observer, ThreadPool* pool,
            WriteGate* gate = nullptr, const Authorizer* authz = nullptr);
  KvService(const KvService&) = delete;
  KvService& operator=(const KvService&) = delete;

  // Registers every strata.v1.KV method with its handler. Once, before the
  // server starts.
  void RegisterMethods(RpcRegistry* registry);

  // Loads the namespace catalog, rebuilds the lease table and starts the
  // expirer (server/expiry.h). Once, after RegisterMethods and before the
  // server serves.
  absl::Status StartExpiry();
  // The expirer, to drive it by hand (TEST ONLY).
  Expiry* TEST_expiry() { return &expiry_; }

  // Ends every Watch stream (UNAVAILABLE) so none holds the server's
  // shutdown, and stops the watch hub's dispatcher. Called by
  // KvServer::Shutdown before gRPC's shutdown.
  void Shutdown();

 private:
  using Service = v1::KV::AsyncService;
  using GetCall = UnaryCall<v1::GetRequest, v1::GetResponse>;
  using PutCall = UnaryCall<v1::PutRequest, v1::PutResponse>;
  using DeleteCall = UnaryCall<v1::DeleteRequest, v1::DeleteResponse>;
  using WriteCall = UnaryCall<v1::WriteRequest, v1::WriteResponse>;
  using ScanCall =
      ServerStreamingCall<v1::ScanRequest, v1::ScanResponse, ScanState>;
  using WatchCall =
      ServerStreamingCall<v1::WatchRequest, v1::WatchResponse, WatchState>;
  using CompactCall = UnaryCall<v1::CompactRequest, v1::CompactResponse>;
  using BatchGetCall = UnaryCall<v1::BatchGetRequest, v1::BatchGetResponse>;
  using DeleteRangeCall =
      UnaryCall<v1::DeleteRangeRequest, v1::DeleteRangeResponse>;
  using TxnCall = UnaryCall<v1::TxnRequest, v1::TxnResponse>;
  using CommitCall = UnaryCall<v1::CommitRequest, v1::CommitResponse>;
  using IncrementCall = UnaryCall<v1::IncrementRequest, v1::IncrementResponse>;
  using JsonGetCall = UnaryCall<v1::JsonGetRequest, v1::JsonGetResponse>;
  using JsonUpdateCall =
      UnaryCall<v1::JsonUpdateRequest, v1::JsonUpdateResponse>;
  // Expiry (kv_service_expiry.cc).
  using LeaseGrantCall = UnaryCall<v1::LeaseGrantRequest, v1::LeaseGrantResponse>;
  using LeaseRevokeCall =
      UnaryCall<v1::LeaseRevokeRequest, v1::LeaseRevokeResponse>;
  using LeaseKeepAliveCall =
      UnaryCall<v1::LeaseKeepAliveRequest, v1::LeaseKeepAliveResponse>;
  using LeaseTimeToLiveCall =
      UnaryCall<v1::LeaseTimeToLiveRequest, v1::LeaseTimeToLiveResponse>;
  using LeaseLeasesCall =
      UnaryCall<v1::LeaseLeasesRequest, v1::LeaseLeasesResponse>;
  using BackupCall = ServerStreamingCall<v1::BackupRequest,
                                         v1::BackupResponse, BackupState>;
  // Namespaces (namespace_service.cc).
  using CreateNamespaceCall =
      UnaryCall<v1::CreateNamespaceRequest, v1::CreateNamespaceResponse>;
  using DeleteNamespaceCall =
      UnaryCall<v1::DeleteNamespaceRequest, v1::DeleteNamespaceResponse>;
  using ListNamespacesCall =
      UnaryCall<v1::ListNamespacesRequest, v1::ListNamespacesResponse>;
  using UpdateNamespaceCall =
      UnaryCall<v1::UpdateNamespaceRequest, v1::UpdateNamespaceResponse>;
  friend class WatchState::Sink;

  // Handlers (polling thread unless noted).
  void HandleGet(GetCall* call);
  void FinishGetBlocking(GetCall* call, KeyspaceView ns);  // Blocking pool.
  // Blocking pool: one lookup of `key` answers its whole coalesced group.
  void FinishGetGroup(const std::string& key);
  void HandlePut(PutCall* call);
  void HandleDelete(DeleteCall* call);
  void HandleWrite(WriteCall* call);
  template <class Call>
  void SubmitWrite(Call* call, absl::StatusOr<storage::WriteBatch> batch);
  void HandleScan(ScanCall* call, StreamEvent event);
  void ScanStart(ScanCall* call);
  void ScheduleScanBatch(ScanCall* call);
  void ScanBatch(ScanCall* call);  // Blocking pool.
  void ReleaseScan(ScanState* state);
  void HandleWatch(WatchCall* call, StreamEvent event);
  void WatchStart(WatchCall* call);
  // Sends the watcher's next message (or finishes the stream) if it has
  // one; any thread that holds the stream's writer token.
  void WatchSend(WatchCall* call);
  void HandleCompact(CompactCall* call);
  void HandleBatchGet(BatchGetCall* call);
  void BatchGetBlocking(BatchGetCall* call, KeyspaceView ns);  // Pool.
  void HandleDeleteRange(DeleteRangeCall* call);
  // Transactions (txn_service.cc).
  void HandleTxn(TxnCall* call);
  void HandleCommit(CommitCall* call);
  // Typed values (kv_service_typed.cc).
  void HandleIncrement(IncrementCall* call);
  void HandleJsonGet(JsonGetCall* call);
  // Blocking pool: reads the key (and answers, as FinishJsonGet).
  void JsonGetBlocking(JsonGetCall* call, KeyspaceView ns);
  // Any thread: answers from the key's state as read.
  void FinishJsonGet(JsonGetCall* call,
                     absl::StatusOr<storage::GetResult> result);
  void HandleJsonUpdate(JsonUpdateCall* call);
  // Expiry (kv_service_expiry.cc).
  void RegisterExpiryMethods(RpcRegistry::ServiceMethods<KvService, Service>* kv);
  static bool HasExpiry(const v1::WriteRequest& request);
  template <class Call>
  void SubmitLeaseWrite(Call* call, absl::StatusOr<storage::WriteBatch> batch);
  void HandleLeaseGrant(LeaseGrantCall* call);
  void HandleLeaseRevoke(LeaseRevokeCall* call);
  void HandleLeaseKeepAlive(LeaseKeepAliveCall* call);
  void HandleLeaseTimeToLive(LeaseTimeToLiveCall* call);
  void HandleLeaseLeases(LeaseLeasesCall* call);
  // Backups (backup_service.cc).
  void HandleBackup(BackupCall* call, StreamEvent event);
  void ScheduleBackupStep(BackupCall* call);
  void BackupStep(BackupCall* call);  // Blocking pool.
  // Blocking pool: makes the checkpoint and fills the BackupBegin.
  absl::Status BackupBegin(BackupCall* call);
  // Blocking pool: fills the next chunk (or, at the end, the manifest:
  // *last set).
  absl::Status BackupNextChunk(BackupCall* call, bool* last);
  // Removes the checkpoint, reports the end and finishes the call.
  void EndBackup(BackupCall* call, const absl::Status& status,
                 const v1::BackupResponse* last = nullptr);
  // Namespaces (namespace_service.cc).
  void RegisterNamespaceMethods(
      RpcRegistry::ServiceMethods<KvService, Service>* kv);
  void HandleCreateNamespace(CreateNamespaceCall* call);
  void HandleDeleteNamespace(DeleteNamespaceCall* call);
  void HandleListNamespaces(ListNamespacesCall* call);
  void HandleUpdateNamespace(UpdateNamespaceCall* call);
  // After a DeleteNamespace of `id` is durable: compacts the id's key range
  // on the blocking pool, so the compaction filter (DeletedNamespaces)
  // drops its keys now rather than when ordinary compactions reach them.
  void ReclaimNamespace(uint64_t id);
  // Resolves a request's namespace; on error finishes the call with it
  // (InvalidArgument, NotFound) and returns nullopt.
  template <class Call>
  std::optional<KeyspaceView> ResolveOrFinish(Call* call,
                                              std::string_view name) {
    absl::StatusOr<KeyspaceView> ns = catalog_.Resolve(name);
    if (ns.ok()) return *ns;
    call->Finish(ns.status());
    return std::nullopt;
  }
  template <class Call>
  std::optional<NamespaceViews> ResolveAllOrFinish(
      Call* call, std::string_view fallback,
      const std::vector<std::string_view>& names) {
    absl::StatusOr<NamespaceViews> ns = catalog_.ResolveAll(fallback, names);
    if (ns.ok()) return *std::move(ns);
    call->Finish(ns.status());
    return std::nullopt;
  }

  const ServerOptions& options_;
  storage::DB* const db_;
  WriteGate* const gate_;
  const Authorizer* const authz_;
  // Writes that add data ask the gate first (full disk, write_gate.h):
  // finishes the call with its refusal and returns true if it refuses.
  template <class Call>
  bool RefusedByWriteGate(Call* call) {
    if (gate_ == nullptr) return false;
    absl::Status s = gate_->Admit();
    if (s.ok()) return false;
    call->Finish(s);
    return true;
  }
  // The engine's write options for a call: the server's, with the call's
  // deadline, so a write still queued in the engine when its client has
  // given up is dropped unwritten (DEADLINE_EXCEEDED; WriteOptions).
  template <class Call>
  storage::WriteOptions WriteOptionsFor(Call* call) const {
    storage::WriteOptions options = write_options_;
    options.deadline = call->context()->deadline();
    return options;
  }
  RpcObserver* const observer_;
  ThreadPool* const pool_;
  const storage::WriteOptions write_options_;

  Service service_;
  // Which namespaces exist (namespace_catalog.h).
  NamespaceCatalog catalog_;
  WatchHub hub_;
  // Gets waiting for a queued disk lookup, by key (--coalesce_gets).
  GetCoalescer<GetCall*> get_groups_;
  // TTLs, leases and the expirer.
  Expiry expiry_;
  // Set by Shutdown: running backups end (UNAVAILABLE) at their next step.
  std::atomic<bool> stopping_{false};
  // Names the backups' checkpoint directories.
  std::atomic<uint64_t> backup_counter_{0};
};

}  // namespace strata::server

#endif  // STRATA_SERVER_KV_SERVICE_H_
