// The namespace administration RPCs of strata.v1.KV (docs/namespaces.md):
// CreateNamespace, DeleteNamespace, UpdateNamespace run like Write (a
// CommitFunction checks and writes the durable catalog at commit time;
// namespace_catalog.h) and, once the write is durable, the engine callback
// updates the catalog's copy in memory before it answers, so a client that
// got the answer sees the change in its next request. ListNamespaces lists
// the copy in memory with each namespace's usage record, on the blocking
// pool.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "server/kv_service.h"
#include "server/namespace_catalog.h"
#include "spdlog/spdlog.h"

namespace strata::server {

void KvService::RegisterNamespaceMethods(
    RpcRegistry::ServiceMethods<KvService, Service>* kv) {
  kv->Register(&Service::RequestCreateNamespace,
               &KvService::HandleCreateNamespace);
  kv->Register(&Service::RequestDeleteNamespace,
               &KvService::HandleDeleteNamespace);
  kv->Register(&Service::RequestListNamespaces,
               &KvService::HandleListNamespaces);
  kv->Register(&Service::RequestUpdateNamespace,
               &KvService::HandleUpdateNamespace);
}

namespace {

// Validates the request's namespace name (INVALID_ARGUMENT, nothing
// written), commits the admin batch `make` builds and, once it is durable,
// records the name's new state (what the batch's commit function left in
// the Result; nullopt = deleted) in the catalog's copy, runs `durable`
// (if any; on the engine's callback thread: it must not block), sets the
// header and finishes the call. The name lives in the request, which
// outlives the engine's callback.
template <class Call>
void CommitAdmin(
    storage::DB* db, const storage::WriteOptions& options,
    NamespaceCatalog* catalog, Call* call,
    absl::FunctionRef<storage::WriteBatch(NamespaceCatalog::Result)> make,
    std::function<void(storage::Revision)> durable = nullptr) {
  const std::string& name = call->request().name();
  if (absl::Status s = NamespaceCatalog::ValidateName(name); !s.ok()) {
    call->Finish(s);
    return;
  }
  auto result = std::make_shared<std::optional<NamespaceEntry>>();
  db->WriteAsync(options, make(result),
                 [catalog, call, &name, result, durable = std::move(durable)](
                     absl::StatusOr<storage::Revision> r) {
                   if (r.ok()) {
                     catalog->Apply(name, *result, *r);
                     if (durable) durable(*r);
                     call->mutable_response()->mutable_header()->set_revision(
                         ToWire(*r));
                   }
                   call->Finish(r.status());
                 });
}

}  // namespace

void KvService::HandleCreateNamespace(CreateNamespaceCall* call) {
  if (RefusedByWriteGate(call)) return;
  const v1::CreateNamespaceRequest& request = call->request();
  CommitAdmin(db_, WriteOptionsFor(call), &catalog_, call,
              [&request](NamespaceCatalog::Result result) {
                return NamespaceCatalog::CreateBatch(
                    request.name(), request.quota_bytes(),
                    request.quota_keys(), std::move(result));
              });
}

void KvService::HandleDeleteNamespace(DeleteNamespaceCall* call) {
  // Never refused by the write gate: deleting is how space is freed.
  // The catalog's copy learns the name is gone (Apply with nullopt); the
  // deleted entry goes to the compaction filter once the delete is durable.
  auto deleted = std::make_shared<std::optional<NamespaceEntry>>();
  CommitAdmin(
      db_, WriteOptionsFor(call), &catalog_, call,
      [call, deleted](NamespaceCatalog::Result) {
        return NamespaceCatalog::DeleteBatch(call->request().name(), deleted);
      },
      [this, deleted](storage::Revision revision) {
        if (!deleted->has_value()) return;
        catalog_.RecordDeleted((*deleted)->id, revision);
        ReclaimNamespace((*deleted)->id);
      });
}

void KvService::ReclaimNamespace(uint64_t id) {
  // The namespace's stored keys are one contiguous range (keyspace.h):
  // ["\xff\xff\x01" varint64(id), the same with its last byte + 1), the
  // varint's last byte being < 0x80. CompactRange's end is inclusive: the
  // one key it may take in beyond the range only makes the compaction a
  // little wider.
  std::string begin = KeyspaceView(id).Encode("");
  std::string end = begin;
  end.back() = static_cast<char>(end.back() + 1);
  auto compact = [this, id, begin = std::move(begin), end = std::move(end)] {
    // Compaction drops the keys whole (DeletedNamespaces), level by level
    // down to the last one; minutes for many GiB, on one pool thread.
    const auto start = std::chrono::steady_clock::now();
    absl::Status s = db_->CompactRange(begin, end);
    const double seconds = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - start)
                               .count();
    if (s.ok()) {
      spdlog::info("deleted namespace id {}: its key range compacted in "
                   "{:.3f} s",
                   id, seconds);
    } else {
      // Not fatal: ordinary compactions drop the keys when they reach them.
      spdlog::warn("deleted namespace id {}: compacting its key range "
                   "failed after {:.3f} s: {}",
                   id, seconds, s.ToString());
    }
    if (options_.TEST_namespace_reclaimed) {
      options_.TEST_namespace_reclaimed(id, s);
    }
  };
  // Pool stopped (shutdown): ordinary compactions drop the keys later.
  (void)pool_->Schedule(std::move(compact));
}

void KvService::HandleUpdateNamespace(UpdateNamespaceCall* call) {
  const v1::UpdateNamespaceRequest& request = call->request();
  CommitAdmin(db_, WriteOptionsFor(call), &catalog_, call,
              [&request](NamespaceCatalog::Result result) {
                // keep_*: that quota stays as committed (no client-side
                // read-modify-write).
                return NamespaceCatalog::UpdateBatch(
                    request.name(),
                    request.keep_quota_bytes()
                        ? std::nullopt
                        : std::optional<uint64_t>(request.quota_bytes()),
                    request.keep_quota_keys()
                        ? std::nullopt
                        : std::optional<uint64_t>(request.quota_keys()),
                    std::move(result));
              });
}

void KvService::HandleListNamespaces(ListNamespacesCall* call) {
  // Under an authorization policy, only the namespaces the caller holds
  // some grant on (docs/security.md); decided here, on the polling thread.
  std::function<bool(std::string_view)> visible =
      authz_ != nullptr ? authz_->NamespaceFilter(*call->context()) : nullptr;
  // The usage records are engine reads: on the blocking pool.
  auto list = [this, call, visible = std::move(visible)] {
    v1::ListNamespacesResponse* response = call->mutable_response();
    response->mutable_header()->set_revision(ToWire(db_->CurrentRevision()));
    for (auto& [name, entry] : catalog_.List(call->request().prefix())) {
      if (visible && !visible(name)) continue;
      absl::StatusOr<NamespaceUsage> usage = catalog_.ReadUsage(entry.id);
      if (!usage.ok()) {
        response->Clear();
        call->Finish(usage.status());
        return;
      }
      v1::NamespaceInfo* info = response->add_namespaces();
      info->set_name(name);
      info->set_quota_bytes(entry.quota_bytes);
      info->set_quota_keys(entry.quota_keys);
      info->set_approximate_keys(usage->keys);
      info->set_approximate_bytes(usage->bytes);
    }
    call->Finish(absl::OkStatus());
  };
  if (!pool_->Schedule(std::move(list))) {
    // Pool stopped: only during shutdown.
    call->Finish(absl::UnavailableError("server is shutting down"));
  }
}

}  // namespace strata::server
