// The namespace administration RPCs of strata.v1.KV (docs/namespaces.md):
// CreateNamespace, DeleteNamespace, UpdateNamespace run like Write (a
// CommitFunction checks and writes the durable catalog at commit time;
// namespace_catalog.h) and, once the write is durable, the engine callback
// updates the catalog's copy in memory before it answers, so a client that
// got the answer sees the change in its next request. ListNamespaces lists
// the copy in memory with each namespace's usage record, on the blocking
// pool.

#include <memory>
#include <optional>
#include <string>
#include <utility>

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

// Commits an admin batch; once durable, records `name`'s new state
// (*result; nullopt = deleted) in the catalog's copy, sets the header and
// finishes the call.
template <class Call>
void CommitAdmin(storage::DB* db, const storage::WriteOptions& options,
                 NamespaceCatalog* catalog, Call* call, std::string name,
                 storage::WriteBatch batch, NamespaceCatalog::Result result) {
  db->WriteAsync(options, std::move(batch),
                 [catalog, call, name = std::move(name), result](
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
  if (absl::Status s = NamespaceCatalog::ValidateName(request.name());
      !s.ok()) {
    call->Finish(s);
    return;
  }
  auto result = std::make_shared<std::optional<NamespaceEntry>>();
  CommitAdmin(db_, write_options_, &catalog_, call, request.name(),
              NamespaceCatalog::CreateBatch(request.name(),
                                            request.quota_bytes(),
                                            request.quota_keys(), result),
              result);
}

void KvService::HandleDeleteNamespace(DeleteNamespaceCall* call) {
  // Never refused by the write gate: deleting is how space is freed.
  const v1::DeleteNamespaceRequest& request = call->request();
  if (absl::Status s = NamespaceCatalog::ValidateName(request.name());
      !s.ok()) {
    call->Finish(s);
    return;
  }
  CommitAdmin(db_, write_options_, &catalog_, call, request.name(),
              NamespaceCatalog::DeleteBatch(request.name()),
              std::make_shared<std::optional<NamespaceEntry>>());
}

void KvService::HandleUpdateNamespace(UpdateNamespaceCall* call) {
  const v1::UpdateNamespaceRequest& request = call->request();
  if (absl::Status s = NamespaceCatalog::ValidateName(request.name());
      !s.ok()) {
    call->Finish(s);
    return;
  }
  auto result = std::make_shared<std::optional<NamespaceEntry>>();
  CommitAdmin(db_, write_options_, &catalog_, call, request.name(),
              NamespaceCatalog::UpdateBatch(request.name(),
                                            request.quota_bytes(),
                                            request.quota_keys(), result),
              result);
}

void KvService::HandleListNamespaces(ListNamespacesCall* call) {
  // The usage records are engine reads: on the blocking pool.
  auto list = [this, call] {
    v1::ListNamespacesResponse* response = call->mutable_response();
    response->mutable_header()->set_revision(ToWire(db_->CurrentRevision()));
    for (auto& [name, entry] : catalog_.List(call->request().prefix())) {
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
  if (!pool_->Schedule(list)) list();  // Pool stopped: only at shutdown.
}

}  // namespace strata::server
