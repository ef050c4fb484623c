#include "cluster/node/forwarding.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cluster/replication/service.h"
#include "google/protobuf/descriptor.h"
#include "strata/v1/kv.pb.h"

namespace strata::cluster {

namespace {

// Headers gRPC sets itself (or that describe this hop, not the call): never
// copied from one call to the other.
bool IsHopHeader(std::string_view key) {
  return key.empty() || key.front() == ':' ||
         key.substr(0, 5) == "grpc-" || key == "user-agent" ||
         key == "te" || key == "content-type" || key == "host" ||
         key == kForwardedByKey || key == kNoForwardKey;
}

std::string_view View(grpc::string_ref s) { return {s.data(), s.size()}; }

bool WantsNoForward(const grpc::GenericCallbackServerContext& ctx) {
  auto range = ctx.client_metadata().equal_range(
      grpc::string_ref(kNoForwardKey.data(), kNoForwardKey.size()));
  for (auto it = range.first; it != range.second; ++it) {
    std::string value(View(it->second));
    absl::AsciiStrToLower(&value);
    if (value == "1" || value == "true") return true;
  }
  return false;
}

// A health check asks about this node: forwarding it would report the
// primary's health as this node's (and make every replica Ready where a
// readiness probe relies on "only the primary is Ready").
bool IsHealthCheck(std::string_view method) {
  return method.substr(0, 23) == "/grpc.health.v1.Health/";
}

bool WasForwarded(const grpc::GenericCallbackServerContext& ctx) {
  return ctx.client_metadata().count(grpc::string_ref(
             kForwardedByKey.data(), kForwardedByKey.size())) > 0;
}

// The client presented a certificate the server verified (mutual TLS).
bool HasCertificateIdentity(const grpc::GenericCallbackServerContext& ctx) {
  const std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  return auth != nullptr && auth->IsPeerAuthenticated();
}

// Answers with a fixed status (trailing metadata already added).
class FinishReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit FinishReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

// One forwarded call: the client's side (Downstream, a server reactor) and
// the primary's (Upstream, a client reactor), pumped by each other's
// reactions. Every reaction takes mu_, updates the state and starts the
// next operations while holding it: gRPC never runs a (non-inlineable)
// reaction inside the Start* call that started it, so this cannot
// self-deadlock, and it makes "decide, then start" atomic.
//
// Upstream operations are started from Downstream's reactions, so the
// upstream call carries two holds (its OnDone cannot run while one is
// held): the request pump's (client read -> upstream write, released at
// the client's half-close, when an upstream write fails, or when the
// upstream's responses end — a read of the client then still in flight is
// abandoned) and the response pump's (upstream read -> client write,
// released when the upstream's responses end or a client write fails).
// Downstream is finished only from Upstream::OnDone, after which nothing
// starts a Downstream operation but a pending read's completion. The
// object is deleted after both OnDone reactions.
class ForwardingService::Call {
 public:
  Call(ForwardingService* service, grpc::GenericCallbackServerContext* ctx,
       std::shared_ptr<grpc::GenericStub> stub, size_t slot)
      : service_(service),
        ctx_(ctx),
        stub_(std::move(stub)),
        slot_(slot),
        downstream_(this),
        upstream_(this) {
    for (const auto& [key, value] : ctx->client_metadata()) {
      if (IsHopHeader(View(key))) continue;
      upstream_ctx_.AddMetadata(std::string(View(key)),
                                std::string(View(value)));
    }
    upstream_ctx_.AddMetadata(std::string(kForwardedByKey),
                              service->options_.node_id);
    upstream_ctx_.set_deadline(ctx->raw_deadline());
  }

  grpc::ServerGenericBidiReactor* Start() {
    absl::MutexLock lock(&mu_);
    stub_->PrepareBidiStreamingCall(&upstream_ctx_, ctx_->method(),
                                    grpc::StubOptions(), &upstream_);
    upstream_.AddMultipleHolds(2);  // The request and response pumps.
    upstream_.StartCall();
    downstream_.StartRead(&request_);  // Backlogged until bound.
    return &downstream_;
  }

 private:
  class Downstream final : public grpc::ServerGenericBidiReactor {
   public:
    explicit Downstream(Call* call) : call_(call) {}
    void OnReadDone(bool ok) override { call_->OnClientRead(ok); }
    void OnWriteDone(bool ok) override { call_->OnClientWritten(ok); }
    void OnCancel() override { call_->upstream_ctx_.TryCancel(); }
    void OnDone() override { call_->Unref(); }

   private:
    Call* const call_;
  };

  class Upstream final
      : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit Upstream(Call* call) : call_(call) {}
    void OnReadInitialMetadataDone(bool ok) override {
      call_->OnUpstreamHeaders(ok);
    }
    void OnReadDone(bool ok) override { call_->OnUpstreamRead(ok); }
    void OnWriteDone(bool ok) override { call_->OnUpstreamWritten(ok); }
    void OnDone(const grpc::Status& s) override { call_->OnUpstreamDone(s); }

   private:
    Call* const call_;
  };

  // Request pump.
  void OnClientRead(bool ok) {
    absl::MutexLock lock(&mu_);
    if (!request_hold_) return;  // Abandoned: the upstream has ended.
    if (ok) {
      upstream_writing_ = true;
      upstream_.StartWrite(&request_);
    } else {  // Half-close (or cancellation, which OnCancel passes on).
      upstream_.StartWritesDone();
      ReleaseRequestHold();
    }
  }
  void OnUpstreamWritten(bool ok) {
    absl::MutexLock lock(&mu_);
    upstream_writing_ = false;
    if (!ok || upstream_ended_) {
      ReleaseRequestHold();
      return;
    }
    downstream_.StartRead(&request_);
  }
  void ReleaseRequestHold() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!request_hold_) return;
    request_hold_ = false;
    upstream_.RemoveHold();
  }

  // Response pump.
  void OnUpstreamHeaders(bool ok) {
    absl::MutexLock lock(&mu_);
    if (ok) {
      for (const auto& [key, value] : upstream_ctx_.GetServerInitialMetadata()) {
        if (IsHopHeader(View(key))) continue;
        ctx_->AddInitialMetadata(std::string(View(key)),
                                 std::string(View(value)));
      }
    }
    upstream_.StartRead(&response_);
  }
  void OnUpstreamRead(bool ok) {
    absl::MutexLock lock(&mu_);
    if (ok) {
      client_writing_ = true;
      downstream_.StartWrite(&response_);
      return;
    }
    // The upstream's responses have ended; its status follows.
    upstream_ended_ = true;
    ReleaseResponseHold();
    if (!upstream_writing_) ReleaseRequestHold();
  }
  void OnClientWritten(bool ok) {
    absl::MutexLock lock(&mu_);
    client_writing_ = false;
    if (ok) {
      upstream_.StartRead(&response_);
    } else {  // The client is gone.
      upstream_ctx_.TryCancel();
      ReleaseResponseHold();
    }
    MaybeFinish();
  }
  void ReleaseResponseHold() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!response_hold_) return;
    response_hold_ = false;
    upstream_.RemoveHold();
  }

  void OnUpstreamDone(const grpc::Status& s) {
    {
      absl::MutexLock lock(&mu_);
      status_ = s;
      upstream_done_ = true;
      for (const auto& [key, value] :
           upstream_ctx_.GetServerTrailingMetadata()) {
        if (IsHopHeader(View(key))) continue;
        ctx_->AddTrailingMetadata(std::string(View(key)),
                                  std::string(View(value)));
      }
      MaybeFinish();
    }
    Unref();
  }
  // Finishes the client's call with the upstream's status once the
  // upstream is done and no client write is in flight.
  void MaybeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!upstream_done_ || client_writing_ || finished_) return;
    finished_ = true;
    service_->CountForwarded(slot_, status_.error_code());
    downstream_.Finish(status_);
  }

  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  ForwardingService* const service_;
  grpc::GenericCallbackServerContext* const ctx_;
  const std::shared_ptr<grpc::GenericStub> stub_;  // Keeps the channel.
  const size_t slot_;
  grpc::ClientContext upstream_ctx_;
  Downstream downstream_;
  Upstream upstream_;
  // Both OnDone reactions.
  std::atomic<int> refs_{2};

  absl::Mutex mu_;
  grpc::ByteBuffer request_ ABSL_GUARDED_BY(mu_);   // Client -> upstream.
  grpc::ByteBuffer response_ ABSL_GUARDED_BY(mu_);  // Upstream -> client.
  bool request_hold_ ABSL_GUARDED_BY(mu_) = true;
  bool response_hold_ ABSL_GUARDED_BY(mu_) = true;
  bool upstream_writing_ ABSL_GUARDED_BY(mu_) = false;
  bool client_writing_ ABSL_GUARDED_BY(mu_) = false;
  bool upstream_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool upstream_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

ForwardingService::ForwardingService(Options options)
    : options_(std::move(options)) {
  const google::protobuf::ServiceDescriptor* kv =
      v1::PutRequest::descriptor()->file()->FindServiceByName("KV");
  for (int i = 0; kv != nullptr && i < kv->method_count(); ++i) {
    const google::protobuf::MethodDescriptor* m = kv->method(i);
    slots_.emplace("/" + std::string(kv->full_name()) + "/" +
                       std::string(m->name()),
                   labels_.size());
    labels_.push_back(std::string(m->name()));
  }
  const size_t n = (labels_.size() + 1) * kNumCodes;
  counts_ = std::make_unique<std::atomic<uint64_t>[]>(n);
  for (size_t i = 0; i < n; ++i) counts_[i].store(0);
}

ForwardingService::~ForwardingService() = default;

grpc::ServerGenericBidiReactor* ForwardingService::CreateReactor(
    grpc::GenericCallbackServerContext* ctx) {
  Route route = options_.route();
  const bool has_identity = HasCertificateIdentity(*ctx);
  if (absl::IsFailedPrecondition(route.not_primary) && options_.forward &&
      !route.primary_address.empty() && !IsHealthCheck(ctx->method()) &&
      !WantsNoForward(*ctx) && !WasForwarded(*ctx) && !has_identity) {
    Call* call = new Call(this, ctx, StubFor(route.primary_address),
                          MethodSlot(ctx->method()));
    return call->Start();
  }
  if (absl::IsFailedPrecondition(route.not_primary)) {
    if (has_identity && options_.forward && !IsHealthCheck(ctx->method())) {
      route.not_primary = absl::FailedPreconditionError(absl::StrCat(
          route.not_primary.message(),
          "; calls made with a client certificate are not forwarded (the "
          "primary would see this node's identity, not yours): call the "
          "primary directly"));
    }
    if (!route.primary_address.empty()) {
      ctx->AddTrailingMetadata(std::string(kPrimaryTrailer),
                               route.primary_address);
    }
    if (std::string map = options_.range_map(); !map.empty()) {
      ctx->AddTrailingMetadata(std::string(kRangeMapTrailer), map);
    }
  }
  return new FinishReactor(replication::ToGrpc(route.not_primary));
}

size_t ForwardingService::MethodSlot(std::string_view method) const {
  auto it = slots_.find(method);
  return it == slots_.end() ? labels_.size() : it->second;
}

void ForwardingService::CountForwarded(size_t slot, grpc::StatusCode code) {
  const int c = static_cast<int>(code);
  if (c < 0 || c >= kNumCodes) return;
  counts_[slot * kNumCodes + c].fetch_add(1, std::memory_order_relaxed);
}

std::vector<ForwardingService::ForwardedCount>
ForwardingService::ForwardedCounts() const {
  std::vector<ForwardedCount> out;
  for (size_t slot = 0; slot <= labels_.size(); ++slot) {
    const std::string& label =
        slot < labels_.size() ? labels_[slot] : std::string("other");
    for (int c = 0; c < kNumCodes; ++c) {
      const uint64_t n =
          counts_[slot * kNumCodes + c].load(std::memory_order_relaxed);
      if (n == 0 && c != 0) continue;
      out.push_back({label, static_cast<grpc::StatusCode>(c), n});
    }
  }
  return out;
}

std::shared_ptr<grpc::GenericStub> ForwardingService::StubFor(
    const std::string& address) {
  absl::MutexLock lock(&mu_);
  if (stub_ == nullptr || stub_address_ != address) {
    // The client's limits were applied by this node's server; the primary
    // applies its own: this hop adds none (gRPC's default would cap
    // responses at 4 MiB).
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    stub_ = std::make_shared<grpc::GenericStub>(grpc::CreateCustomChannel(
        address,
        options_.credentials != nullptr ? options_.credentials
                                        : grpc::InsecureChannelCredentials(),
        args));
    stub_address_ = address;
  }
  return stub_;
}

namespace {

class WithoutReflectionOption final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(
      std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins)
      override {
    // grpc::reflection::ProtoServerReflectionPlugin's name.
    std::erase_if(*plugins, [](const auto& plugin) {
      return plugin->name() == "proto_server_reflection";
    });
  }
};

}  // namespace

std::unique_ptr<grpc::ServerBuilderOption> WithoutLocalReflection() {
  return std::make_unique<WithoutReflectionOption>();
}

}  // namespace strata::cluster
