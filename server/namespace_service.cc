// The namespace administration RPCs of strata.v1.KV (docs/namespaces.md):
// CreateNamespace, DeleteNamespace, UpdateNamespace run like Write (a
// CommitFunction checks and writes the durable catalog at commit time;
// namespace_catalog.h) and, once the write is durable, the engine callback
// updates the catalog's copy in memory before it answers, so a client that
// got the answer sees the change in its next request. ListNamespaces lists
// the copy in memory with each namespace's usage record, on the blocking
// pool.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "server/kv_service.h"
#include "server/namespace_catalog.h"

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
// the Result; nullopt = deleted) in the catalog's copy, sets the header and
// finishes the call. The name lives in the request, which outlives the
// engine's callback.
template <class Call>
void CommitAdmin(
    storage::DB* db, const storage::WriteOptions& options,
    NamespaceCatalog* catalog, Call* call,
    absl::FunctionRef<storage::WriteBatch(NamespaceCatalog::Result)> make) {
  const std::string& name = call->request().name();
  if (absl::Status s = NamespaceCatalog::ValidateName(name); !s.ok()) {
    call->Finish(s);
    return;
  }
  auto result = std::make_shared<std::optional<NamespaceEntry>>();
  db->WriteAsync(options, make(result),
                 [catalog, call, &name, result](
                     absl::StatusOr<storage::Revision> r) {
                   if (r.ok()) {
                     catalog->Apply(name, *result, *r);
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
  CommitAdmin(db_, WriteOptionsFor(call), &catalog_, call,
              [call](NamespaceCatalog::Result) {
                return NamespaceCatalog::DeleteBatch(call->request().name());
              });
}

void KvService::HandleUpdateNamespace(UpdateNamespaceCall* call) {
  const v1::UpdateNamespaceRequest& request = call->request();
  CommitAdmin(db_, WriteOptionsFor(call), &catalog_, call,
              [&request](NamespaceCatalog::Result result) {
                return NamespaceCatalog::UpdateBatch(
                    request.name(), request.quota_bytes(),
                    request.quota_keys(), std::move(result));
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
