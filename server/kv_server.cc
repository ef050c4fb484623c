#include "server/kv_server.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/synchronization/blocking_counter.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/server_builder.h"
#include "server/credentials.h"
#include "spdlog/spdlog.h"

namespace strata::server {
namespace {

// How long Shutdown waits, after gRPC's own shutdown, for engine callbacks
// and pool tasks to hand their calls back before closing the queues.
constexpr absl::Duration kCallDrainTimeout = absl::Seconds(3);

int ClampToInt(size_t n) {
  return static_cast<int>(std::min<size_t>(n, static_cast<size_t>(INT_MAX)));
}

int ClampToIntMs(absl::Duration d) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 0,
                                              INT_MAX));
}

absl::Status ValidateResourceOptions(const ServerOptions& o) {
  const TransportLimits& t = o.transport;
  if (o.max_inflight_rpcs < 0) {
    return absl::InvalidArgumentError(
        "max_inflight_rpcs must be >= 0 (0 = unlimited)");
  }
  if (t.max_concurrent_streams < 1) {
    return absl::InvalidArgumentError("max_concurrent_streams must be >= 1");
  }
  if (t.keepalive_time < absl::Milliseconds(1) ||
      t.keepalive_timeout < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError(
        "keepalive_time and keepalive_timeout must be >= 1 ms");
  }
  if (t.min_client_ping_interval < absl::ZeroDuration() ||
      t.max_ping_strikes < 0) {
    return absl::InvalidArgumentError(
        "min_client_ping_interval and max_ping_strikes must be >= 0");
  }
  if (o.scan_batch_bytes < 1 || o.scan_batch_max_pairs < 1) {
    return absl::InvalidArgumentError(
        "scan_batch_bytes and scan_batch_max_pairs must be >= 1");
  }
  return absl::OkStatus();
}

// HTTP/2 bounds for every connection (docs/security.md).
void AddTransportLimits(const TransportLimits& t,
                        grpc::ServerBuilder* builder) {
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                              t.max_concurrent_streams);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                              ClampToIntMs(t.keepalive_time));
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                              ClampToIntMs(t.keepalive_timeout));
  // Clients may keep idle connections alive (NATs and load balancers drop
  // silent ones), as long as they respect the minimum interval.
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                              ClampToIntMs(t.min_client_ping_interval));
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES,
                              t.max_ping_strikes);
}

}  // namespace

void ScanState::Reset() {
  if (cursor.bytes > kMaxRetainedMessageBytes) {
    response = v1::ScanResponse();
  } else {
    response.Clear();
  }
  cursor = ScanCursor();
  batch = 0;
  // Released by KvServer::ReleaseScan before the call finished.
  iterator.reset();
  snapshot = nullptr;
}

KvServer::KvServer(ServerOptions options, storage::DB* db,
                   RpcObserver* observer)
    : options_(std::move(options)),
      db_(db),
      observer_(observer != nullptr ? observer : NoopRpcObserver()),
      write_options_{.sync = options_.sync_writes},
      health_({std::string(v1::KV::service_full_name())}) {
  RegisterMethods();
}

KvServer::~KvServer() {
  Shutdown();
  // The gRPC server goes before the completion queues it was built with,
  // then the (recycled) calls.
  server_.reset();
  factories_.clear();
  cq_states_.clear();
  cqs_.clear();
}

template <class Svc, class Req, class Resp>
void KvServer::AddUnary(
    Svc* service, std::string_view name,
    typename UnaryCall<Svc, Req, Resp>::RequestFn request,
    std::function<void(UnaryCall<Svc, Req, Resp>*)> handler, bool observed) {
  auto* method = AddMethod<UnaryCall<Svc, Req, Resp>>(name, observed);
  method->service = service;
  method->request = request;
  method->handler = std::move(handler);
}

template <class Call>
typename Call::Method* KvServer::AddMethod(std::string_view name,
                                           bool observed) {
  auto method = std::make_shared<typename Call::Method>();
  method->info.name = name;
  method->info.max_inflight = options_.max_inflight_rpcs;
  method->info.limits = options_.limits;
  method->info.observed = observed;
  typename Call::Method* raw = method.get();
  methods_.push_back(std::move(method));
  factory_makers_.push_back([raw](CqState* cq) {
    return std::make_unique<CallFactory<Call>>(raw, cq);
  });
  return raw;
}

void KvServer::RegisterMethods() {
  using v1::DeleteRequest, v1::DeleteResponse, v1::GetRequest,
      v1::GetResponse, v1::PutRequest, v1::PutResponse, v1::WriteRequest,
      v1::WriteResponse;
  AddUnary<Service, GetRequest, GetResponse>(
      &service_, "Get", &Service::RequestGet,
      [this](GetCall* call) { HandleGet(call); });
  AddUnary<Service, PutRequest, PutResponse>(
      &service_, "Put", &Service::RequestPut,
      [this](PutCall* call) { HandlePut(call); });
  AddUnary<Service, DeleteRequest, DeleteResponse>(
      &service_, "Delete", &Service::RequestDelete,
      [this](DeleteCall* call) { HandleDelete(call); });
  AddUnary<Service, WriteRequest, WriteResponse>(
      &service_, "Write", &Service::RequestWrite,
      [this](WriteCall* call) { HandleWrite(call); });
  ScanCall::Method* scan = AddMethod<ScanCall>("Scan");
  scan->service = &service_;
  scan->request = &Service::RequestScan;
  scan->on_start = [this](ScanCall* call) { ScanStart(call); };
  scan->on_write_done = [this](ScanCall* call, bool ok) {
    ScanWriteDone(call, ok);
  };

  // grpc.health.v1 on the same queues; probes are not KV traffic, so the
  // observer (metrics) does not hear of them.
  using HealthSvc = HealthService::Service;
  AddUnary<HealthSvc, HealthService::Request, HealthService::Response>(
      health_.service(), "Check", &HealthSvc::RequestCheck,
      [this](HealthService::CheckCall* call) { health_.HandleCheck(call); },
      /*observed=*/false);
  auto* watch =
      AddMethod<HealthService::WatchCall>("Watch", /*observed=*/false);
  watch->service = health_.service();
  watch->request = &HealthSvc::RequestWatch;
  watch->on_start = [this](HealthService::WatchCall* call) {
    health_.WatchStart(call);
  };
  watch->on_write_done = [this](HealthService::WatchCall* call, bool ok) {
    health_.WatchWriteDone(call, ok);
  };
  watch->on_cancelled = [this](HealthService::WatchCall* call) {
    health_.WatchCancelled(call);
  };
}

absl::Status KvServer::Start() {
  if (started_) return absl::FailedPreconditionError("server already started");
  if (absl::Status s = ValidateLimits(options_.limits); !s.ok()) return s;
  if (options_.cq_threads < 0 || options_.io_threads < 1 ||
      options_.calls_per_method < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cq_threads must be >= 0 (0 = one per core), io_threads and "
        "calls_per_method >= 1; got %d, %d, %d",
        options_.cq_threads, options_.io_threads, options_.calls_per_method));
  }
  const int num_cqs =
      options_.cq_threads > 0
          ? options_.cq_threads
          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Our own health service (server/health_service.h), not gRPC's built-in
  // callback one. Registering the generated service makes reflection list
  // and describe grpc.health.v1.Health.
  grpc::EnableDefaultHealthCheckService(false);
  if (absl::Status s = ValidateResourceOptions(options_); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options_);
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, *std::move(credentials), &port_);
  builder.RegisterService(&service_);
  builder.RegisterService(health_.service());
  // Twice the limit, so a request between the two gets our
  // INVALID_ARGUMENT naming --max_message_bytes rather than gRPC's
  // RESOURCE_EXHAUSTED.
  const Limits& limits = options_.limits;
  builder.SetMaxReceiveMessageSize(ClampToInt(2 * limits.max_message_bytes));
  // A Scan batch is ~1 MiB but a single pair travels alone; values written
  // under a larger --max_value_bytes must still be readable.
  builder.SetMaxSendMessageSize(ClampToInt(std::max(
      2 * limits.max_message_bytes,
      limits.max_key_bytes + limits.max_value_bytes +
          options_.scan_batch_bytes)));
  // Without this, Linux lets a second server bind the same port and the
  // kernel splits connections between them.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  AddTransportLimits(options_.transport, &builder);
  for (int i = 0; i < num_cqs; ++i) {
    cqs_.push_back(builder.AddCompletionQueue(/*is_frequently_polled=*/true));
  }
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    for (auto& cq : cqs_) {
      cq->Shutdown();
      void* tag;
      bool ok;
      while (cq->Next(&tag, &ok)) {
      }
    }
    cqs_.clear();
    server_.reset();
    return absl::UnavailableError(
        absl::StrFormat("cannot listen on %s (address in use, or invalid)",
                        options_.listen));
  }
  started_ = true;

  pool_ = std::make_unique<ThreadPool>(options_.io_threads, "strata-io");
  factories_.resize(cqs_.size());
  for (size_t i = 0; i < cqs_.size(); ++i) {
    cq_states_.push_back(std::make_unique<CqState>(cqs_[i].get(), observer_,
                                                   &draining_, &drain_mu_));
    for (auto& make : factory_makers_) {
      factories_[i].push_back(make(cq_states_[i].get()));
    }
  }
  // Each poller posts its own requests before polling (its factories are
  // single-threaded); wait for that so Shutdown never races a first post.
  absl::BlockingCounter primed(static_cast<int>(cqs_.size()));
  for (size_t i = 0; i < cqs_.size(); ++i) {
    pollers_.emplace_back([this, i, &primed] {
      for (auto& f : factories_[i]) f->Prime(options_.calls_per_method);
      primed.DecrementCount();
      PollLoop(i);
    });
    std::string name = "strata-cq-" + std::to_string(i);
    name.resize(std::min<size_t>(name.size(), 15));
    pthread_setname_np(pollers_.back().native_handle(), name.c_str());
  }
  primed.Wait();

  health_.SetServing(true);
  return absl::OkStatus();
}

std::string KvServer::bound_address() const {
  const std::string& listen = options_.listen;
  const size_t colon = listen.rfind(':');
  const std::string host =
      colon == std::string::npos ? listen : listen.substr(0, colon);
  return absl::StrFormat("%s:%d", host, port_);
}

void KvServer::PollLoop(size_t index) {
  grpc::ServerCompletionQueue* cq = cqs_[index].get();
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) {
    static_cast<CallBase*>(tag)->Proceed(ok);
  }
}

int64_t KvServer::LiveCalls() const {
  int64_t total = 0;
  for (const auto& s : cq_states_) total += s->live_calls();
  return total;
}

int64_t KvServer::TEST_live_calls() const { return LiveCalls(); }

bool KvServer::WaitForCallsToDrain(absl::Time deadline) {
  absl::MutexLock lock(&drain_mu_);
  return drain_mu_.AwaitWithDeadline(
      absl::Condition(
          +[](const KvServer* s) { return s->LiveCalls() == 0; },
          static_cast<const KvServer*>(this)),
      deadline);
}

void KvServer::Shutdown() {
  if (!started_ || shut_down_) return;
  shut_down_ = true;
  const auto start = std::chrono::steady_clock::now();
  spdlog::info("shutdown: health NOT_SERVING, finishing in-flight RPCs "
               "(grace {} ms)",
               absl::ToInt64Milliseconds(options_.shutdown_grace));
  health_.Shutdown();
  // gRPC's Shutdown stops accepting, fails every posted request and waits
  // for in-flight RPCs until the deadline, then cancels the rest. It also
  // waits for clients to close idle connections, which they may never do,
  // so it runs on a helper thread while this one watches our own calls:
  // once no KV RPC is left, the remaining connections and non-KV streams
  // (health watches) are cut at once. Pollers keep running meanwhile.
  const absl::Time deadline = absl::Now() + options_.shutdown_grace;
  std::thread grpc_shutdown([this, deadline] {
    server_->Shutdown(absl::ToChronoTime(deadline));
  });
  draining_.store(true);
  // Every call object is recycled once its RPC ends (posted requests fail
  // as soon as the shutdown starts).
  if (!WaitForCallsToDrain(deadline)) {
    spdlog::warn("shutdown: grace period over with {} RPCs in progress; "
                 "cancelling them",
                 LiveCalls());
  }
  grpc_server_cancel_all_calls(server_->c_server());
  grpc_shutdown.join();
  // A queue must not be shut down while a call can still start an operation
  // on it (an engine callback or pool task calling Finish would abort), so
  // wait again for the calls just cancelled to come back.
  if (!WaitForCallsToDrain(absl::Now() + kCallDrainTimeout)) {
    spdlog::error("shutdown: {} calls still in progress after {} ms; "
                  "closing the completion queues anyway",
                  LiveCalls(), absl::ToInt64Milliseconds(kCallDrainTimeout));
  }
  for (auto& cq : cqs_) cq->Shutdown();
  for (std::thread& t : pollers_) t.join();  // Each drains until Next false.
  pool_->Shutdown();
  const double seconds = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start)
                             .count();
  spdlog::info("shutdown: RPC server stopped in {:.3f} s", seconds);
}

// ---- Handlers ----

void KvServer::HandleGet(GetCall* call) {
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
  if (!pool_->Schedule([this, key = std::string(request.key())] {
        FinishGetGroup(key);
      })) {
    FinishGetGroup(request.key());  // Pool stopped: only during shutdown.
  }
}

void KvServer::FinishGetBlocking(GetCall* call) {
  absl::StatusOr<std::string> result =
      db_->Get(storage::ReadOptions(), call->request().key());
  call->Finish(FillGetResponse(std::move(result), call->mutable_response()));
}

void KvServer::FinishGetGroup(const std::string& key) {
  // Close the group before reading: every member arrived before the read
  // starts, so each sees what it would have seen with a lookup of its own.
  std::vector<GetCall*> group = get_groups_.Take(key);
  if (group.empty()) return;
  absl::StatusOr<std::string> result =
      db_->Get(storage::ReadOptions(), key);
  // Each member gets its own copy; the last one takes the original.
  for (size_t i = 0; i + 1 < group.size(); ++i) {
    group[i]->Finish(FillGetResponse(result, group[i]->mutable_response()));
  }
  group.back()->Finish(
      FillGetResponse(std::move(result), group.back()->mutable_response()));
}

template <class Call>
void KvServer::SubmitWrite(Call* call,
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

void KvServer::HandlePut(PutCall* call) {
  SubmitWrite(call, PutToBatch(call->request(), options_.limits));
}

void KvServer::HandleDelete(DeleteCall* call) {
  SubmitWrite(call, DeleteToBatch(call->request(), options_.limits));
}

void KvServer::HandleWrite(WriteCall* call) {
  SubmitWrite(call, WriteToBatch(call->request(), options_.limits));
}

void KvServer::ScanStart(ScanCall* call) {
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

void KvServer::ScanWriteDone(ScanCall* call, bool /*ok*/) {
  // On a failed write cancelled() is now true; the next batch sees it and
  // finishes (releasing the iterator on the pool, not here).
  call->state().response.Clear();
  ScheduleScanBatch(call);
}

void KvServer::ScheduleScanBatch(ScanCall* call) {
  if (!pool_->Schedule([this, call] { ScanBatch(call); })) {
    ReleaseScan(&call->state());  // Pool stopped: only during shutdown.
    call->Finish(absl::UnavailableError("server is shutting down"));
  }
}

void KvServer::ScanBatch(ScanCall* call) {
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
  const absl::Status s = FillScanResponse(
      st.iterator.get(), call->request(), options_.scan_batch_bytes,
      &st.cursor, &st.response, options_.scan_batch_max_pairs);
  st.batch++;
  if (!s.ok() || st.cursor.done) {
    ReleaseScan(&st);
    call->Finish(s, st.response.pairs_size() > 0 ? &st.response : nullptr);
    return;
  }
  call->Write(st.response);  // Not done: the batch holds at least one pair.
}

void KvServer::ReleaseScan(ScanState* state) {
  state->iterator.reset();
  if (state->snapshot != nullptr) {
    db_->ReleaseSnapshot(state->snapshot);
    state->snapshot = nullptr;
  }
}

}  // namespace strata::server
