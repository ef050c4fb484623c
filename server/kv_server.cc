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
#include "grpcpp/resource_quota.h"
#include "grpcpp/server_builder.h"
#include "server/credentials.h"
#include "server/usable_cpus.h"
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

// The checks of KvServer::Start on its options, in the order they report.
absl::Status ValidateServerOptions(const ServerOptions& o) {
  if (absl::Status s = ValidateLimits(o.limits); !s.ok()) return s;
  if (absl::Status s = ValidateExpiryOptions(o.expiry); !s.ok()) return s;
  if (o.cq_threads < 0 || o.io_threads < 1 || o.calls_per_method < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cq_threads must be >= 0 (0 = one per core), io_threads and "
        "calls_per_method >= 1; got %d, %d, %d",
        o.cq_threads, o.io_threads, o.calls_per_method));
  }
  if (absl::Status s = ValidateInflightBytes(o.max_inflight_bytes, o.limits);
      !s.ok()) {
    return s;
  }
  if (o.max_inflight_rpcs < 0) {
    return absl::InvalidArgumentError(
        "max_inflight_rpcs must be >= 0 (0 = unlimited)");
  }
  const TransportLimits& t = o.transport;
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
  if (!o.authz_policy_file.empty() && o.tls.client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--authz_policy needs mutual TLS (--tls_cert, --tls_key and "
        "--tls_client_ca): the policy grants by client certificate, and "
        "without one no client can be identified");
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
  if (t.stream_window_bytes > 0) {
    builder->AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    builder->AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
                                t.stream_window_bytes);
  }
}

// Receive and send message limits from the request limits.
void SetMessageSizeLimits(const ServerOptions& o,
                          grpc::ServerBuilder* builder) {
  // Twice the limit, so a request between the two gets our
  // INVALID_ARGUMENT naming --max_message_bytes rather than gRPC's
  // RESOURCE_EXHAUSTED.
  const Limits& limits = o.limits;
  builder->SetMaxReceiveMessageSize(ClampToInt(2 * limits.max_message_bytes));
  // A Scan batch is ~1 MiB but a single pair travels alone; values written
  // under a larger --max_value_bytes must still be readable.
  builder->SetMaxSendMessageSize(ClampToInt(
      std::max(2 * limits.max_message_bytes,
               limits.max_key_bytes + limits.max_value_bytes +
                   o.scan_batch_bytes)));
}

}  // namespace

void ConfigureConnections(const ServerOptions& options,
                          grpc::ServerBuilder* builder) {
  SetMessageSizeLimits(options, builder);
  // Without this, Linux lets a second server bind the same port and the
  // kernel splits connections between them.
  builder->AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  AddTransportLimits(options.transport, builder);
  // The quota must live while the server does; gRPC keeps its own
  // reference, so a local is enough.
  if (options.transport_memory_bytes > 0) {
    grpc::ResourceQuota quota("strata-transport");
    quota.Resize(options.transport_memory_bytes);
    builder->SetResourceQuota(quota);
  }
}

std::string BoundAddress(const std::string& listen, int port) {
  const size_t colon = listen.rfind(':');
  const std::string host =
      colon == std::string::npos ? listen : listen.substr(0, colon);
  return absl::StrFormat("%s:%d", host, port);
}

KvServer::KvServer(ServerOptions options, storage::DB* db,
                   RpcObserver* observer)
    : options_(std::move(options)),
      db_(db),
      observer_(observer != nullptr ? observer : NoopRpcObserver()),
      inflight_bytes_(options_.max_inflight_bytes, "--max_inflight_bytes"),
      health_({std::string(v1::KV::service_full_name())},
              std::string(kWriteHealthName)) {}

KvServer::~KvServer() {
  Shutdown();
  // The gRPC server goes before the completion queues it was built with,
  // then the (recycled) calls, then the services and methods they used.
  server_.reset();
  factories_.clear();
  cq_states_.clear();
  cqs_.clear();
}

absl::Status KvServer::Start() {
  if (started_) return absl::FailedPreconditionError("server already started");
  if (absl::Status s = ValidateServerOptions(options_); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options_);
  if (!credentials.ok()) return credentials.status();
  absl::Status s = RegisterServices();
  if (s.ok()) s = BuildServer(*std::move(credentials));
  if (!s.ok()) {  // Nothing serves: drop what RegisterServices made.
    registry_.reset();
    kv_.reset();
    authorizer_.reset();
    write_gate_.reset();
    pool_.reset();
    return s;
  }
  started_ = true;
  StartPollers();
  health_.SetServing(true);
  write_gate_->Start();
  if (authorizer_) authorizer_->StartReloading(options_.tls.reload_interval);
  return absl::OkStatus();
}

absl::Status KvServer::RegisterServices() {
  pool_ = std::make_unique<ThreadPool>(options_.io_threads, "strata-io");
  registry_ = std::make_unique<RpcRegistry>(options_.max_inflight_rpcs,
                                            options_.limits);
  registry_->set_deadline_clock_offset(options_.TEST_deadline_clock_offset);
  registry_->set_inflight_bytes(&inflight_bytes_);
  write_gate_ = std::make_unique<WriteGate>(
      options_.disk_space, db_, observer_,
      [this](bool writable) { health_.SetWritable(writable); },
      options_.write_readiness);
  if (!options_.authz_policy_file.empty()) {
    absl::StatusOr<std::unique_ptr<Authorizer>> authz =
        Authorizer::Create(options_.authz_policy_file, observer_);
    if (!authz.ok()) return authz.status();
    authorizer_ = *std::move(authz);
  }
  kv_ = std::make_unique<KvService>(options_, db_, observer_, pool_.get(),
                                    write_gate_.get(), authorizer_.get());
  registry_->set_authorizer(authorizer_.get());  // KV methods only.
  kv_->RegisterMethods(registry_.get());
  registry_->set_authorizer(nullptr);
  if (absl::Status s = kv_->StartExpiry(); !s.ok()) return s;
  health_.RegisterMethods(registry_.get());
  if (options_.TEST_register_services) {
    options_.TEST_register_services(registry_.get());
  }
  return registry_->status();
}

absl::Status KvServer::BuildServer(
    std::shared_ptr<grpc::ServerCredentials> credentials) {
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Our own health service (server/health_service.h), not gRPC's built-in
  // callback one. Registering the generated service makes reflection list
  // and describe grpc.health.v1.Health.
  grpc::EnableDefaultHealthCheckService(false);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, std::move(credentials), &port_);
  for (grpc::Service* service : registry_->services()) {
    builder.RegisterService(service);
  }
  for (grpc::Service* service : options_.extra_services) {
    builder.RegisterService(service);  // Cluster mode only.
  }
  ConfigureConnections(options_, &builder);
  const int num_cqs =
      options_.cq_threads > 0
          ? options_.cq_threads
          : DetectUsableCpus().count;
  for (int i = 0; i < num_cqs; ++i) {
    cqs_.push_back(builder.AddCompletionQueue(/*is_frequently_polled=*/true));
  }
  server_ = builder.BuildAndStart();
  if (server_ != nullptr && port_ != 0) return absl::OkStatus();
  for (auto& cq : cqs_) {
    cq->Shutdown();
    void* tag;
    bool ok;
    while (cq->Next(&tag, &ok)) {
    }
  }
  cqs_.clear();
  server_.reset();
  return absl::UnavailableError(absl::StrFormat(
      "cannot listen on %s (address in use, or invalid)", options_.listen));
}

void KvServer::StartPollers() {
  factories_.resize(cqs_.size());
  for (size_t i = 0; i < cqs_.size(); ++i) {
    cq_states_.push_back(std::make_unique<CqState>(cqs_[i].get(), observer_,
                                                   &draining_, &drain_mu_));
    factories_[i] = registry_->MakeFactories(cq_states_[i].get());
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
}

std::string KvServer::bound_address() const {
  return BoundAddress(options_.listen, port_);
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
  write_gate_->Stop();
  if (authorizer_) authorizer_->Stop();
  health_.Shutdown();
  kv_->Shutdown();  // Ends Watch streams, which would hold the drain.
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


}  // namespace strata::server
