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

namespace {

// Every namespace a Txn's compares and ops name (docs/namespaces.md).
std::vector<std::string_view> TxnNamespaces(const v1::TxnRequest& request) {
  std::vector<std::string_view> names;
  for (const v1::Compare& c : request.compare()) names.push_back(c.namespace_());
  for (const auto* branch : {&request.success(), &request.failure()}) {
    for (const v1::RequestOp& op : *branch) {
      switch (op.request_case()) {
        case v1::RequestOp::kGet:
          names.push_back(op.get().namespace_());
          break;
        case v1::RequestOp::kPut:
          names.push_back(op.put().namespace_());
          break;
        case v1::RequestOp::kDelete:
          names.push_back(op.delete_().namespace_());
          break;
        case v1::RequestOp::kScan:
          names.push_back(op.scan().namespace_());
          break;
        case v1::RequestOp::kIncrement:
          names.push_back(op.increment().namespace_());
          break;
        case v1::RequestOp::kJsonGet:
          names.push_back(op.json_get().namespace_());
          break;
        case v1::RequestOp::kJsonUpdate:
          names.push_back(op.json_update().namespace_());
          break;
        case v1::RequestOp::REQUEST_NOT_SET:
          break;
      }
    }
  }
  return names;
}

}  // namespace

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
  for (const v1::Mutation& m : request.mutations()) {
    if (m.has_put()) {
      if (RefusedByWriteGate(call)) return;
      break;
    }
  }
  std::vector<std::string_view> names;
  for (const v1::Mutation& m : request.mutations()) {
    names.push_back(m.has_put() ? m.put().namespace_()
                                : m.delete_().namespace_());
  }
  std::optional<NamespaceViews> ns =
      ResolveAllOrFinish(call, request.namespace_(), names);
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
