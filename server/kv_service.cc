#include "server/kv_service.h"

#include <chrono>
#include <utility>
#include <vector>

namespace strata::server {

void ScanState::Reset() {
  cursor = ScanCursor();
  batch = 0;
  // Released by KvService::ReleaseScan before the call finished.
  iterator.reset();
  snapshot = nullptr;
}

KvService::KvService(const ServerOptions& options, storage::DB* db,
                     RpcObserver* observer, ThreadPool* pool)
    : options_(options),
      db_(db),
      observer_(observer),
      pool_(pool),
      write_options_{.sync = options.sync_writes} {}

void KvService::RegisterMethods(RpcRegistry* registry) {
  auto kv = registry->AddService(&service_, this);
  kv.Register(&Service::RequestGet, &KvService::HandleGet);
  kv.Register(&Service::RequestPut, &KvService::HandlePut);
  kv.Register(&Service::RequestDelete, &KvService::HandleDelete);
  kv.Register(&Service::RequestScan, &KvService::HandleScan);
  kv.Register(&Service::RequestWrite, &KvService::HandleWrite);
}

void KvService::HandleGet(GetCall* call) {
  const v1::GetRequest& request = call->request();
  if (absl::Status s = ValidateGet(request, options_.limits); !s.ok()) {
    call->Finish(s);
    return;
  }
  storage::ReadOptions read_options;
  read_options.cache_only = true;
  absl::StatusOr<std::string> result = db_->Get(read_options, request.key());
  if (result.ok() || !storage::IsWouldBlock(result.status())) {
    call->Finish(FillGetResponse(std::move(result), call->mutable_response()));
    return;
  }
  // The value is on disk: read it on the blocking pool.
  if (!options_.coalesce_gets) {
    if (!pool_->Schedule([this, call] { FinishGetBlocking(call); })) {
      FinishGetBlocking(call);  // Pool stopped: only during shutdown.
    }
    return;
  }
  if (get_groups_.Join(request.key(), call)) {
    observer_->OnGetCoalesced();  // A queued lookup will answer it.
    return;
  }
  if (!pool_->Schedule(
          [this, key = std::string(request.key())] { FinishGetGroup(key); })) {
    FinishGetGroup(request.key());  // Pool stopped: only during shutdown.
  }
}

void KvService::FinishGetBlocking(GetCall* call) {
  absl::StatusOr<std::string> result =
      db_->Get(storage::ReadOptions(), call->request().key());
  call->Finish(FillGetResponse(std::move(result), call->mutable_response()));
}

void KvService::FinishGetGroup(const std::string& key) {
  // Close the group before reading: every member arrived before the read
  // starts, so each sees what it would have seen with a lookup of its own.
  std::vector<GetCall*> group = get_groups_.Take(key);
  if (group.empty()) return;
  absl::StatusOr<std::string> result = db_->Get(storage::ReadOptions(), key);
  // Each member gets its own copy; the last one takes the original.
  for (size_t i = 0; i + 1 < group.size(); ++i) {
    group[i]->Finish(FillGetResponse(result, group[i]->mutable_response()));
  }
  group.back()->Finish(
      FillGetResponse(std::move(result), group.back()->mutable_response()));
}

template <class Call>
void KvService::SubmitWrite(Call* call,
                            absl::StatusOr<storage::WriteBatch> batch) {
  if (!batch.ok()) {
    call->Finish(batch.status());
    return;
  }
  if (batch->Count() == 0) {  // An empty Write: nothing to make durable.
    call->Finish(absl::OkStatus());
    return;
  }
  // The callback runs on an engine thread once the batch is durable;
  // Finish only queues the reply, so it does not block the engine.
  db_->WriteAsync(write_options_, *std::move(batch),
                  [call](absl::StatusOr<storage::Revision> r) {
                    call->Finish(r.status());
                  });
}

void KvService::HandlePut(PutCall* call) {
  SubmitWrite(call, PutToBatch(call->request(), options_.limits));
}

void KvService::HandleDelete(DeleteCall* call) {
  SubmitWrite(call, DeleteToBatch(call->request(), options_.limits));
}

void KvService::HandleWrite(WriteCall* call) {
  SubmitWrite(call, WriteToBatch(call->request(), options_.limits));
}

void KvService::HandleScan(ScanCall* call, StreamEvent event) {
  switch (event) {
    case StreamEvent::kStarted:
      ScanStart(call);
      return;
    case StreamEvent::kWriteDone:
    case StreamEvent::kWriteFailed:
      // After a failed write cancelled() is true; the next batch sees it
      // and finishes (releasing the iterator on the pool, not here).
      call->mutable_response()->Clear();
      ScheduleScanBatch(call);
      return;
    case StreamEvent::kCancelled:
      // A batch or a write is always pending until Finish, and the next
      // batch checks cancelled(): nothing to do here.
      return;
  }
}

void KvService::ScanStart(ScanCall* call) {
  if (absl::Status s = ValidateScan(call->request(), options_.limits);
      !s.ok()) {
    call->Finish(s);
    return;
  }
  // The snapshot is taken as the call starts: the scan sees exactly the
  // writes acknowledged before it arrived.
  call->state().snapshot = db_->GetSnapshot();
  ScheduleScanBatch(call);
}

void KvService::ScheduleScanBatch(ScanCall* call) {
  if (!pool_->Schedule([this, call] { ScanBatch(call); })) {
    ReleaseScan(&call->state());  // Pool stopped: only during shutdown.
    call->Finish(absl::UnavailableError("server is shutting down"));
  }
}

void KvService::ScanBatch(ScanCall* call) {
  ScanState& st = call->state();
  if (options_.TEST_before_scan_batch) {
    options_.TEST_before_scan_batch(st.batch, call->context());
  }
  if (call->cancelled()) {
    ReleaseScan(&st);
    call->Finish(absl::CancelledError("scan cancelled"));
    return;
  }
  if (std::chrono::system_clock::now() > call->context()->deadline()) {
    ReleaseScan(&st);
    call->Finish(absl::DeadlineExceededError("scan deadline exceeded"));
    return;
  }
  if (st.iterator == nullptr) {
    storage::ReadOptions read_options;
    read_options.snapshot = st.snapshot;
    st.iterator = db_->NewIterator(read_options);
  }
  v1::ScanResponse* batch = call->mutable_response();
  const absl::Status s = FillScanResponse(st.iterator.get(), call->request(),
                                          options_.scan_batch_bytes, &st.cursor,
                                          batch, options_.scan_batch_max_pairs);
  st.batch++;
  if (!s.ok() || st.cursor.done) {
    ReleaseScan(&st);
    call->Finish(s, batch->pairs_size() > 0 ? batch : nullptr);
    return;
  }
  call->Write(*batch);  // Not done: the batch holds at least one pair.
}

void KvService::ReleaseScan(ScanState* state) {
  state->iterator.reset();
  if (state->snapshot != nullptr) {
    db_->ReleaseSnapshot(state->snapshot);
    state->snapshot = nullptr;
  }
}

}  // namespace strata::server
