#include "server/kv_service.h"

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"

namespace strata::server {

void WatchState::Reset() {
  watcher.reset();
  sink.service = nullptr;
  sink.call = nullptr;
}

void WatchState::Sink::MessagesReady() { service->WatchSend(call); }

void ScanState::Reset() {
  cursor = ScanCursor();
  batch = 0;
  // Released by KvService::ReleaseScan before the call finished.
  iterator.reset();
  snapshot = nullptr;
}

KvService::KvService(const ServerOptions& options, storage::DB* db,
                     RpcObserver* observer, ThreadPool* pool,
                     WriteGate* gate, const Authorizer* authz)
    : options_(options),
      db_(db),
      gate_(gate),
      authz_(authz),
      observer_(observer),
      pool_(pool),
      write_options_{.sync = options.sync_writes},
      catalog_(db, options.deleted_namespaces.get()),
      hub_(db, pool, options.watch, observer),
      expiry_(db, options.limits, options.expiry, observer) {}

void KvService::Shutdown() {
  stopping_.store(true);
  expiry_.Stop();
  hub_.Shutdown();
}

void KvService::RegisterMethods(RpcRegistry* registry) {
  auto kv = registry->AddService(&service_, this);
  kv.Register(&Service::RequestGet, &KvService::HandleGet);
  kv.Register(&Service::RequestPut, &KvService::HandlePut);
  kv.Register(&Service::RequestDelete, &KvService::HandleDelete);
  kv.Register(&Service::RequestScan, &KvService::HandleScan);
  kv.Register(&Service::RequestWrite, &KvService::HandleWrite);
  kv.Register(&Service::RequestWatch, &KvService::HandleWatch,
              MethodOptions().MaxInflight(options_.max_watch_streams,
                                          "--max_watch_streams"));
  kv.Register(&Service::RequestCompact, &KvService::HandleCompact);
  kv.Register(&Service::RequestBatchGet, &KvService::HandleBatchGet);
  kv.Register(&Service::RequestDeleteRange, &KvService::HandleDeleteRange);
  kv.Register(&Service::RequestTxn, &KvService::HandleTxn);
  kv.Register(&Service::RequestCommit, &KvService::HandleCommit);
  kv.Register(&Service::RequestIncrement, &KvService::HandleIncrement);
  kv.Register(&Service::RequestJsonGet, &KvService::HandleJsonGet);
  kv.Register(&Service::RequestJsonUpdate, &KvService::HandleJsonUpdate);
  RegisterExpiryMethods(&kv);
  RegisterNamespaceMethods(&kv);
  kv.Register(&Service::RequestBackup, &KvService::HandleBackup,
              MethodOptions().MaxInflight(options_.max_backups,
                                          "--max_backups"));
}

void KvService::HandleGet(GetCall* call) {
  const v1::GetRequest& request = call->request();
  if (absl::Status s = ValidateGet(request, options_.limits); !s.ok()) {
    call->Finish(s);
    return;
  }
  const std::optional<KeyspaceView> ns =
      ResolveOrFinish(call, request.namespace_());
  if (!ns) return;
  if (request.revision() != 0) {
    // A read at a past revision pins it (the DB mutex) and may read old
    // versions from disk: always on the blocking pool.
    if (!pool_->Schedule([this, call, ns] { FinishGetBlocking(call, *ns); })) {
      FinishGetBlocking(call, *ns);  // Pool stopped: only during shutdown.
    }
    return;
  }
  storage::ReadOptions read_options;
  read_options.cache_only = true;
  const std::string key = ns->Encode(request.key());
  absl::StatusOr<storage::GetResult> result =
      db_->GetWithMetadata(read_options, key);
  if (result.ok() || !storage::IsWouldBlock(result.status())) {
    call->Finish(FillGetResponse(std::move(result), call->mutable_response()));
    return;
  }
  // The value is on disk: read it on the blocking pool.
  if (!options_.coalesce_gets) {
    if (!pool_->Schedule([this, call, ns] { FinishGetBlocking(call, *ns); })) {
      FinishGetBlocking(call, *ns);  // Pool stopped: only during shutdown.
    }
    return;
  }
  // Groups by stored key (one lookup answers them all).
  if (get_groups_.Join(key, call)) {
    observer_->OnGetCoalesced();  // A queued lookup will answer it.
    return;
  }
  if (!pool_->Schedule([this, key] { FinishGetGroup(key); })) {
    FinishGetGroup(key);  // Pool stopped: only during shutdown.
  }
}

void KvService::FinishGetBlocking(GetCall* call, KeyspaceView ns) {
  const v1::GetRequest& request = call->request();
  storage::ReadOptions read_options;
  const storage::Snapshot* snapshot = nullptr;
  if (request.revision() != 0) {
    absl::StatusOr<const storage::Snapshot*> at =
        db_->GetSnapshotAt(static_cast<storage::Revision>(request.revision()));
    if (!at.ok()) {
      call->Finish(at.status());
      return;
    }
    snapshot = *at;
    read_options.snapshot = snapshot;
    // Never serve an expired key, at any revision (docs/expiry.md).
    read_options.hide_expired_history = true;
  }
  absl::StatusOr<storage::GetResult> result =
      db_->GetWithMetadata(read_options, ns.Encode(request.key()));
  if (snapshot != nullptr) db_->ReleaseSnapshot(snapshot);
  call->Finish(FillGetResponse(std::move(result), call->mutable_response()));
}

void KvService::FinishGetGroup(const std::string& key) {
  // Close the group before reading: every member arrived before the read
  // starts, so each sees what it would have seen with a lookup of its own.
  std::vector<GetCall*> group = get_groups_.Take(key);
  if (group.empty()) return;
  absl::StatusOr<storage::GetResult> result =
      db_->GetWithMetadata(storage::ReadOptions(), key);
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
  if (batch->Count() == 0 && !batch->commit_function()) {
    // An empty Write: nothing to make durable.
    call->mutable_response()->mutable_header()->set_revision(
        ToWire(db_->CurrentRevision()));
    call->Finish(absl::OkStatus());
    return;
  }
  // The callback runs on an engine thread once the batch is durable;
  // Finish only queues the reply, so it does not block the engine.
  db_->WriteAsync(WriteOptionsFor(call), *std::move(batch),
                  [call](absl::StatusOr<storage::Revision> r) {
                    if (r.ok()) {
                      call->mutable_response()->mutable_header()->set_revision(
                          ToWire(*r));
                    }
                    call->Finish(r.status());
                  });
}

void KvService::HandlePut(PutCall* call) {
  if (RefusedByWriteGate(call)) return;
  const v1::PutRequest& request = call->request();
  const std::optional<KeyspaceView> ns =
      ResolveOrFinish(call, request.namespace_());
  if (!ns) return;
  absl::StatusOr<storage::WriteBatch> batch =
      request.ttl_ms() != 0 || request.lease() != 0
          ? expiry_.PutBatch(request, *ns)
          : PutToBatch(request, options_.limits, *ns);
  if (batch.ok()) {
    NamespaceCatalog::Guard(NamespaceViews(request.namespace_(), *ns),
                            &*batch);
  }
  SubmitWrite(call, std::move(batch));
}

void KvService::HandleDelete(DeleteCall* call) {
  const v1::DeleteRequest& request = call->request();
  const std::optional<KeyspaceView> ns =
      ResolveOrFinish(call, request.namespace_());
  if (!ns) return;
  absl::StatusOr<storage::WriteBatch> batch =
      DeleteToBatch(request, options_.limits, *ns);
  if (batch.ok()) {
    NamespaceCatalog::Guard(NamespaceViews(request.namespace_(), *ns),
                            &*batch);
  }
  SubmitWrite(call, std::move(batch));
}

void KvService::HandleWrite(WriteCall* call) {
  const v1::WriteRequest& request = call->request();
  // A Write of deletes only is how space is freed: never refused.
  if (HasPut(request.mutations()) && RefusedByWriteGate(call)) return;
  std::optional<NamespaceViews> ns = ResolveAllOrFinish(
      call, request.namespace_(), MutationNamespaces(request.mutations()));
  if (!ns) return;
  absl::StatusOr<storage::WriteBatch> batch =
      HasExpiry(request) ? expiry_.WriteBatchFor(request, *ns)
                         : WriteToBatch(request, options_.limits, *ns);
  if (batch.ok()) NamespaceCatalog::Guard(*ns, &*batch);
  SubmitWrite(call, std::move(batch));
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
  const std::optional<KeyspaceView> ns =
      ResolveOrFinish(call, call->request().namespace_());
  if (!ns) return;
  call->state().ns = *ns;
  // The snapshot is taken as the call starts: the scan sees exactly the
  // writes acknowledged before it arrived. One at a past revision is taken
  // by the first batch, on the blocking pool.
  if (call->request().revision() == 0) {
    call->state().snapshot = db_->GetSnapshot();
  }
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
  if (st.snapshot == nullptr) {
    absl::StatusOr<const storage::Snapshot*> at = db_->GetSnapshotAt(
        static_cast<storage::Revision>(call->request().revision()));
    if (!at.ok()) {
      call->Finish(at.status());
      return;
    }
    st.snapshot = *at;
  }
  if (st.iterator == nullptr) {
    storage::ReadOptions read_options;
    read_options.snapshot = st.snapshot;
    read_options.hide_expired_history = true;  // docs/expiry.md.
    st.iterator = st.ns.NewIterator(db_->NewIterator(read_options));
  }
  v1::ScanResponse* batch = call->mutable_response();
  batch->mutable_header()->set_revision(ToWire(st.snapshot->revision()));
  const absl::Status s = FillScanResponse(st.iterator.get(), call->request(),
                                          options_.scan_batch_bytes, &st.cursor,
                                          batch, options_.scan_batch_max_pairs);
  st.batch++;
  if (!s.ok() || st.cursor.done) {
    ReleaseScan(&st);
    // The first message always goes (its header says which revision the
    // scan read, even when it found nothing).
    call->Finish(s, batch->pairs_size() > 0 || st.batch == 1 ? batch : nullptr);
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

void KvService::HandleWatch(WatchCall* call, StreamEvent event) {
  WatchState& st = call->state();
  switch (event) {
    case StreamEvent::kStarted:
      WatchStart(call);
      return;
    case StreamEvent::kWriteDone:
      WatchSend(call);
      return;
    case StreamEvent::kWriteFailed:
      // The client is gone; this thread holds the writer token.
      if (st.watcher != nullptr) hub_.Remove(st.watcher);
      call->Finish(absl::CancelledError("watch cancelled"));
      return;
    case StreamEvent::kCancelled:
      // Whoever holds the writer token (a write in flight, or a Finish)
      // ends the stream; if nobody does, end it here.
      if (st.watcher != nullptr && !hub_.Remove(st.watcher)) {
        call->Finish(absl::CancelledError("watch cancelled"));
      }
      return;
  }
}

void KvService::WatchStart(WatchCall* call) {
  WatchState& st = call->state();
  st.sink.service = this;
  st.sink.call = call;
  int64_t compacted = 0;
  absl::StatusOr<KeyspaceView> ns = catalog_.Resolve(call->request().namespace_());
  absl::StatusOr<std::shared_ptr<WatchHub::Watcher>> watcher =
      ns.ok() ? hub_.Add(call->request(), *ns, &st.sink, &compacted)
              : ns.status();
  if (!watcher.ok()) {
    v1::WatchResponse* last = call->mutable_response();
    if (compacted > 0) {
      last->set_compact_revision(compacted);
      last->mutable_header()->set_revision(compacted);
    }
    call->Finish(watcher.status(), compacted > 0 ? last : nullptr);
    return;
  }
  // The hub already holds the opening message and the writer token (its
  // first MessagesReady cannot come before st.watcher is set: the hub
  // kicks only after Add returns for an idle stream, and Add itself took
  // the token), so send it from here.
  st.watcher = *std::move(watcher);
  WatchSend(call);
}

void KvService::WatchSend(WatchCall* call) {
  WatchState& st = call->state();
  v1::WatchResponse* msg = call->mutable_response();
  absl::Status status;
  switch (hub_.TakeMessage(st.watcher.get(), msg, &status)) {
    case WatchHub::Take::kMessage:
      call->Write(*msg);
      return;
    case WatchHub::Take::kFinish:
      call->Finish(status, msg->ByteSizeLong() > 0 ? msg : nullptr);
      return;
    case WatchHub::Take::kIdle:
      return;
  }
}

void KvService::HandleCompact(CompactCall* call) {
  if (call->request().revision() <= 0) {
    call->Finish(absl::InvalidArgumentError(
        "compact revision must be > 0 (the new compacted revision)"));
    return;
  }
  // A manifest write and fsync: on the blocking pool.
  auto compact = [this, call] {
    absl::Status s = db_->CompactHistory(
        static_cast<storage::Revision>(call->request().revision()));
    call->mutable_response()->mutable_header()->set_revision(
        ToWire(db_->CurrentRevision()));
    call->Finish(s);
  };
  if (!pool_->Schedule(compact)) compact();
}

void KvService::HandleBatchGet(BatchGetCall* call) {
  if (absl::Status s = ValidateBatchGet(call->request(), options_.limits);
      !s.ok()) {
    call->Finish(s);
    return;
  }
  const std::optional<KeyspaceView> ns =
      ResolveOrFinish(call, call->request().namespace_());
  if (!ns) return;
  if (!pool_->Schedule([this, call, ns] { BatchGetBlocking(call, *ns); })) {
    BatchGetBlocking(call, *ns);  // Pool stopped: only during shutdown.
  }
}

void KvService::BatchGetBlocking(BatchGetCall* call, KeyspaceView ns) {
  const v1::BatchGetRequest& request = call->request();
  absl::StatusOr<const storage::Snapshot*> snapshot =
      request.revision() == 0
          ? db_->GetSnapshot()
          : db_->GetSnapshotAt(static_cast<storage::Revision>(request.revision()));
  if (!snapshot.ok()) {
    call->Finish(snapshot.status());
    return;
  }
  storage::ReadOptions read_options;
  read_options.snapshot = *snapshot;
  read_options.hide_expired_history = true;  // docs/expiry.md.
  v1::BatchGetResponse* response = call->mutable_response();
  response->mutable_header()->set_revision(ToWire((*snapshot)->revision()));
  absl::Status status;
  for (const std::string& key : request.keys()) {
    v1::GetResponse* result = response->add_results();
    status = FillGetResponse(db_->GetWithMetadata(read_options, ns.Encode(key)),
                             result);
    if (!status.ok()) break;
    result->clear_header();  // The response's header says it once.
  }
  db_->ReleaseSnapshot(*snapshot);
  if (!status.ok()) response->Clear();
  call->Finish(status);
}

void KvService::HandleDeleteRange(DeleteRangeCall* call) {
  const v1::DeleteRangeRequest& request = call->request();
  if (absl::Status s = ValidateDeleteRange(request, options_.limits);
      !s.ok()) {
    call->Finish(s);
    return;
  }
  const std::optional<KeyspaceView> view =
      ResolveOrFinish(call, request.namespace_());
  if (!view) return;
  if (!request.end_key().empty() && request.end_key() <= request.start_key()) {
    call->mutable_response()->mutable_header()->set_revision(
        ToWire(db_->CurrentRevision()));
    call->Finish(absl::OkStatus());  // An empty range: nothing to delete.
    return;
  }
  // The keys are listed at commit time, on the engine's commit thread, so
  // the whole range is deleted at one revision with nothing committed in
  // between. The response is filled there too (the call is not finished
  // before the engine calls back).
  v1::DeleteRangeResponse* response = call->mutable_response();
  const size_t max_prev = options_.limits.max_batch_mutations;
  storage::WriteBatch batch;
  batch.SetCommitFunction([&request, response, max_prev, ns = *view](
                              storage::CommitView* view,
                              storage::WriteBatch* b) -> absl::Status {
    response->Clear();
    std::unique_ptr<storage::Iterator> it = ns.NewIterator(view->NewIterator());
    const std::string_view end = request.end_key();
    int64_t deleted = 0;
    for (it->Seek(request.start_key());
         it->Valid() && (end.empty() || it->key() < end); it->Next()) {
      b->Delete(ns.Encode(it->key()));
      deleted++;
      if (!request.prev_kv()) continue;
      if (static_cast<size_t>(deleted) > max_prev) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "delete range with prev_kv covers more than %d keys "
            "(--max_batch_mutations); nothing was deleted; delete without "
            "prev_kv or in smaller ranges",
            max_prev));
      }
      v1::KeyValue* kv = response->add_prev_kvs();
      kv->set_key(it->key().data(), it->key().size());
      kv->set_value(it->value().data(), it->value().size());
      FillMetadata(it->metadata(), kv);
    }
    if (!it->status().ok()) return it->status();
    response->set_deleted(deleted);
    return absl::OkStatus();
  });
  NamespaceCatalog::Guard(NamespaceViews(request.namespace_(), *view), &batch);
  db_->WriteAsync(WriteOptionsFor(call), std::move(batch),
                  [call](absl::StatusOr<storage::Revision> r) {
                    v1::DeleteRangeResponse* response = call->mutable_response();
                    if (r.ok()) {
                      response->mutable_header()->set_revision(ToWire(*r));
                    } else {
                      response->Clear();
                    }
                    call->Finish(r.status());
                  });
}

}  // namespace strata::server
