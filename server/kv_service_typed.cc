// The typed-value RPCs of strata.v1.KV (docs/values.md): Increment, JsonGet
// and JsonUpdate. The rules are in typed_ops.h; this file wires them to the
// engine and the calls (KvService, kv_service.h).

#include <memory>
#include <string>
#include <utility>

#include "server/keyspace.h"
#include "server/kv_service.h"
#include "server/typed_ops.h"

namespace strata::server {
namespace {

// JsonGet parses documents up to this size on the polling thread (well
// under a millisecond); larger ones on the blocking pool.
constexpr size_t kInlineJsonBytes = 64 << 10;

// Hands a read-modify-write batch to the engine; the callback (engine
// thread) sets the header's revision, or clears what the commit function
// put in the response if the write failed, and finishes the call.
template <class Call>
void WriteAndFinish(storage::DB* db, const storage::WriteOptions& options,
                    Call* call, storage::WriteBatch batch) {
  db->WriteAsync(options, std::move(batch),
                 [call](absl::StatusOr<storage::Revision> r) {
                   auto* response = call->mutable_response();
                   if (r.ok()) {
                     response->mutable_header()->set_revision(ToWire(*r));
                   } else {
                     response->Clear();
                   }
                   call->Finish(r.status());
                 });
}

}  // namespace

void KvService::HandleIncrement(IncrementCall* call) {
  if (RefusedByWriteGate(call)) return;
  const v1::IncrementRequest& request = call->request();
  if (absl::Status s = ValidateIncrement(request, options_.limits); !s.ok()) {
    call->Finish(s);
    return;
  }
  if (absl::Status s = expiry_.ValidateTtl(request.ttl_ms()); !s.ok()) {
    call->Finish(s);
    return;
  }
  const std::optional<KeyspaceView> ns =
      ResolveOrFinish(call, request.namespace_());
  if (!ns) return;
  // The key is read and written at commit time, serialized with every
  // other write of the engine: no increment is lost, whatever the
  // concurrency. The request and response live as long as the call, which
  // is not finished before the engine calls back.
  v1::IncrementResponse* response = call->mutable_response();
  storage::WriteBatch batch;
  batch.SetCommitFunction(
      [this, &request, response, key = ns->Encode(request.key())](
          storage::CommitView* view, storage::WriteBatch* b) -> absl::Status {
        absl::StatusOr<IncrementResult> r = IncrementAt(view, key, request);
        if (!r.ok()) return r.status();
        b->Put(key, r->put.value, r->put.attributes);
        // A new deadline gets its TTL index entry (a kept one has its own).
        if (request.ttl_ms() > 0) {
          expiry_.AppendTtlIndex(b, key, r->put.attributes.expire_at_unix_ms);
        }
        response->set_value(r->value);
        return absl::OkStatus();
      });
  NamespaceCatalog::Guard(NamespaceViews(request.namespace_(), *ns), &batch);
  WriteAndFinish(db_, WriteOptionsFor(call), call, std::move(batch));
}

void KvService::HandleJsonGet(JsonGetCall* call) {
  const v1::JsonGetRequest& request = call->request();
  if (absl::Status s = ValidateJsonGet(request, options_.limits); !s.ok()) {
    call->Finish(s);
    return;
  }
  const std::optional<KeyspaceView> ns =
      ResolveOrFinish(call, request.namespace_());
  if (!ns) return;
  storage::ReadOptions read_options;
  read_options.cache_only = true;
  absl::StatusOr<storage::GetResult> result =
      db_->GetWithMetadata(read_options, ns->Encode(request.key()));
  const bool on_disk = !result.ok() && storage::IsWouldBlock(result.status());
  const bool large = result.ok() && result->found &&
                     !request.pointer().empty() &&
                     result->value.size() > kInlineJsonBytes;
  if (!on_disk && !large) {
    FinishJsonGet(call, std::move(result));
    return;
  }
  // A disk read, or a large document to parse: on the blocking pool.
  ThreadPool::Task task;
  if (on_disk) {
    task = [this, call, ns] { JsonGetBlocking(call, *ns); };
  } else {
    task = [this, call, r = std::move(result)]() mutable {
      FinishJsonGet(call, std::move(r));
    };
  }
  if (!pool_->Schedule(std::move(task))) {
    // Pool stopped: only during shutdown.
    call->Finish(absl::UnavailableError("server is shutting down"));
  }
}

void KvService::JsonGetBlocking(JsonGetCall* call, KeyspaceView ns) {
  FinishJsonGet(call, db_->GetWithMetadata(storage::ReadOptions(),
                                           ns.Encode(call->request().key())));
}

void KvService::FinishJsonGet(JsonGetCall* call,
                              absl::StatusOr<storage::GetResult> result) {
  if (!result.ok()) {
    call->Finish(result.status());
    return;
  }
  std::optional<StoredValue> current;
  if (result->found) {
    current = StoredValue{std::move(result->value), result->metadata};
  }
  absl::StatusOr<std::string> json = ComputeJsonGet(current, call->request());
  if (!json.ok()) {
    call->Finish(json.status());
    return;
  }
  v1::JsonGetResponse* response = call->mutable_response();
  response->mutable_header()->set_revision(ToWire(result->revision));
  response->set_json(*std::move(json));
  call->Finish(absl::OkStatus());
}

void KvService::HandleJsonUpdate(JsonUpdateCall* call) {
  if (RefusedByWriteGate(call)) return;
  const v1::JsonUpdateRequest& request = call->request();
  // The patch is checked and parsed here, so the commit thread only does
  // the work that depends on the document.
  absl::StatusOr<JsonUpdatePatch> patch =
      PrepareJsonUpdate(request, options_.limits);
  if (!patch.ok()) {
    call->Finish(patch.status());
    return;
  }
  const std::optional<KeyspaceView> ns =
      ResolveOrFinish(call, request.namespace_());
  if (!ns) return;
  v1::JsonUpdateResponse* response = call->mutable_response();
  storage::WriteBatch batch;
  batch.SetCommitFunction(
      [response, limits = options_.limits, patch = *std::move(patch),
       key = ns->Encode(request.key())](
          storage::CommitView* view, storage::WriteBatch* b) -> absl::Status {
        absl::StatusOr<TypedPut> put = JsonUpdateAt(view, key, patch, limits);
        if (!put.ok()) return put.status();
        b->Put(key, put->value, put->attributes);
        response->set_json(std::move(put->value));
        return absl::OkStatus();
      });
  NamespaceCatalog::Guard(NamespaceViews(request.namespace_(), *ns), &batch);
  WriteAndFinish(db_, WriteOptionsFor(call), call, std::move(batch));
}

}  // namespace strata::server
