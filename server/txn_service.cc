// The transaction RPCs of strata.v1.KV (docs/transactions.md): Txn and
// Commit. Both run like Write: the polling thread validates the request and
// encodes its writes (server/txn.h), then hands a batch with a
// CommitFunction to DB::WriteAsync. The engine's commit thread runs the
// function at commit time, serialized with every other write and grouped
// with them (one fsync per group), and the engine callback finishes the
// call once the batch is durable.

#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "server/kv_service.h"
#include "server/txn.h"

namespace strata::server {


void KvService::HandleTxn(TxnCall* call) {
  if (RefusedByWriteGate(call)) return;
  std::optional<NamespaceViews> ns = ResolveAllOrFinish(
      call, call->request().namespace_(), TxnNamespaces(call->request()));
  if (!ns) return;
  absl::StatusOr<PreparedTxn> prepared =
      PrepareTxn(call->request(), options_.limits, *ns);
  if (!prepared.ok()) {
    call->Finish(prepared.status());
    return;
  }
  // The request and response live in the call, which is not finished
  // before the engine calls back; the response is filled at commit time.
  const v1::TxnRequest& request = call->request();
  v1::TxnResponse* response = call->mutable_response();
  const Limits& limits = options_.limits;
  auto branches = std::make_shared<const PreparedTxn>(*std::move(prepared));
  storage::WriteBatch batch;
  batch.SetCommitFunction(
      [&request, response, &limits, branches, ns = *ns](
          storage::CommitView* view, storage::WriteBatch* b) -> absl::Status {
        return ExecuteTxn(request, *branches, limits, ns, view, b, response);
      });
  NamespaceCatalog::Guard(*ns, &batch);
  db_->WriteAsync(WriteOptionsFor(call), std::move(batch),
                  [call](absl::StatusOr<storage::Revision> r) {
                    v1::TxnResponse* response = call->mutable_response();
                    if (r.ok()) {
                      response->mutable_header()->set_revision(ToWire(*r));
                    } else {
                      response->Clear();
                    }
                    call->Finish(r.status());
                  });
}

void KvService::HandleCommit(CommitCall* call) {
  const v1::CommitRequest& request = call->request();
  if (HasPut(request.mutations()) && RefusedByWriteGate(call)) return;
  std::optional<NamespaceViews> ns = ResolveAllOrFinish(
      call, request.namespace_(), MutationNamespaces(request.mutations()));
  if (!ns) return;
  absl::StatusOr<storage::WriteBatch> batch =
      PrepareCommit(request, options_.limits, *ns);
  if (!batch.ok()) {
    call->Finish(batch.status());
    return;
  }
  const bool reads =
      request.read_keys_size() > 0 || request.read_ranges_size() > 0;
  if (!reads && batch->Count() == 0) {  // Nothing to check or write.
    call->mutable_response()->mutable_header()->set_revision(
        ToWire(db_->CurrentRevision()));
    call->Finish(absl::OkStatus());
    return;
  }
  // The conflict check runs at commit time, on the state the mutations
  // commit on top of: nothing can commit between the check and the write.
  batch->SetCommitFunction(
      [&request, ns = *ns](storage::CommitView* view,
                           storage::WriteBatch*) -> absl::Status {
        return CheckCommitConflicts(request, ns, view);
      });
  NamespaceCatalog::Guard(*ns, &*batch);
  db_->WriteAsync(WriteOptionsFor(call), *std::move(batch),
                  [call](absl::StatusOr<storage::Revision> r) {
                    if (r.ok()) {
                      call->mutable_response()->mutable_header()->set_revision(
                          ToWire(*r));
                    }
                    call->Finish(r.status());
                  });
}

}  // namespace strata::server
