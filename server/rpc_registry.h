#ifndef STRATA_SERVER_RPC_REGISTRY_H_
#define STRATA_SERVER_RPC_REGISTRY_H_

// Registration of gRPC methods with their handlers: one line per method.
//
//   void KvService::RegisterMethods(RpcRegistry* registry) {
//     auto kv = registry->AddService(&service_, this);
//     kv.Register(&Service::RequestGet, &KvService::HandleGet);
//     kv.Register(&Service::RequestScan, &KvService::HandleScan);
//     kv.Register(&Service::RequestWatch, &KvService::HandleWatch,
//                 MethodOptions().MaxInflight(options_.max_watch_streams,
//                                             "--max_watch_streams"));
//   }
//
// Register deduces everything else from the generated Request<Method>
// function: the request and response types, whether the method is unary
// or server-streaming (from the writer type), and the method's name (from
// the protobuf descriptors: the method of the request message's file with
// exactly these request and response types and this kind). The handler is
// a member function of the service's owner:
//
//   unary             void HandleX(UnaryCall<XRequest, XResponse>* call);
//   server-streaming  void HandleX(ServerStreamingCall<XRequest, XResponse,
//                                  State>* call, StreamEvent event);
//
// (State: the per-call state of the stream, see async_call.h.) The server
// (kv_server.cc) registers every service with the ServerBuilder and makes
// one CallFactory per method per completion queue; the call life cycle is
// in async_call.h.
//
// Thread safety: registration happens before the server starts, on one
// thread; afterwards the registry is read-only and the Method objects it
// owns are shared by every completion queue.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/impl/service_type.h"
#include "grpcpp/server_context.h"
#include "server/async_call.h"
#include "server/authz.h"
#include "server/limits.h"

namespace strata::server {

// How one method is served, beyond its handler. The defaults suit a KV
// method; the setters chain, so a registration stays one line:
//   MethodOptions().MaxInflight(options_.max_watch_streams,
//                               "--max_watch_streams")
class MethodOptions {
 public:
  // Most RPCs of the method in progress at once, counted from the request's
  // arrival until its status is sent; the next one fails at once with
  // RESOURCE_EXHAUSTED naming `flag` (the flag that sets `max`), before its
  // handler runs. 0 = unlimited. `flag` must have static storage (a
  // literal). Default: the server-wide cap
  // (ServerOptions::max_inflight_rpcs, --max_inflight_rpcs), per method.
  MethodOptions& MaxInflight(int max, std::string_view flag) {
    max_inflight_ = max;
    max_inflight_flag_ = flag;
    return *this;
  }
  // The RpcObserver (metrics) does not hear of the method's RPCs (health
  // probes are not KV traffic). Default: it does.
  MethodOptions& Unobserved() {
    observed_ = false;
    return *this;
  }

  const std::optional<int>& max_inflight() const { return max_inflight_; }
  std::string_view max_inflight_flag() const { return max_inflight_flag_; }
  bool observed() const { return observed_; }

 private:
  std::optional<int> max_inflight_;
  std::string_view max_inflight_flag_;
  bool observed_ = true;
};

// The name of the RPC method (e.g. "Get") that takes `request` and returns
// `response` (a stream of them if `server_streaming`), among the services
// of the file that defines `request`. The string has static storage.
// NotFound if there is none, InvalidArgument if several match.
absl::StatusOr<std::string_view> FindMethodName(
    const google::protobuf::Descriptor* request,
    const google::protobuf::Descriptor* response, bool server_streaming);

// The methods of every service the server serves.
class RpcRegistry {
 public:
  // The Register calls of one service; see AddService.
  template <class Owner, class Service>
  class ServiceMethods;

  // `default_max_inflight`: the in-flight cap of a method whose options set
  // none (ServerOptions::max_inflight_rpcs); `limits`: the request limits
  // every method is held to.
  RpcRegistry(int default_max_inflight, const Limits& limits)
      : default_max_inflight_(default_max_inflight), limits_(limits) {}
  // Tests only (ServerOptions::TEST_deadline_clock_offset): applies to the
  // methods registered after the call.
  void set_deadline_clock_offset(std::chrono::nanoseconds offset) {
    deadline_clock_offset_ = offset;
  }
  // Authorization: every method registered after the call (until it is
  // called again with null) is checked by `authorizer` (not owned; must
  // outlive the server) with its rule from KvAccessRule (authz.h). The
  // server sets it around strata.v1.KV's registration only.
  void set_authorizer(const Authorizer* authorizer) {
    authorizer_ = authorizer;
  }
  // The byte budget of requests in progress, shared by every method
  // registered after the call (null = none). Not owned; must outlive the
  // server.
  void set_inflight_bytes(InflightBytes* budget) { inflight_bytes_ = budget; }
  RpcRegistry(const RpcRegistry&) = delete;
  RpcRegistry& operator=(const RpcRegistry&) = delete;

  // Adds a service: `service` is its generated AsyncService, `owner` the
  // object whose member functions handle its methods. Both must outlive
  // the server. Register each method on the returned object.
  template <class Owner, class Service>
  ServiceMethods<Owner, Service> AddService(Service* service, Owner* owner) {
    services_.push_back(service);
    return ServiceMethods<Owner, Service>(this, service, owner);
  }

  // OK, or the first registration error (a method whose name could not be
  // found, see FindMethodName); the server refuses to start with it.
  const absl::Status& status() const { return status_; }
  // The services, for ServerBuilder::RegisterService.
  const std::vector<grpc::Service*>& services() const { return services_; }
  size_t num_methods() const { return methods_.size(); }
  // One CallFactory per registered method, for the queue `cq`.
  std::vector<std::unique_ptr<CallFactoryBase>> MakeFactories(
      CqState* cq) const {
    std::vector<std::unique_ptr<CallFactoryBase>> factories;
    for (const auto& m : methods_) factories.push_back(m->MakeFactory(cq));
    return factories;
  }

 private:
  // A registered method of any call type.
  class Entry {
   public:
    virtual ~Entry() = default;
    virtual std::unique_ptr<CallFactoryBase> MakeFactory(CqState* cq) = 0;
  };
  template <class Call>
  class TypedEntry final : public Entry {
   public:
    typename Call::Method method;
    std::unique_ptr<CallFactoryBase> MakeFactory(CqState* cq) override {
      return std::make_unique<CallFactory<Call>>(&method, cq);
    }
  };

  template <class Call>
  void Add(decltype(Call::Method::request) request,
           typename Call::Handler handler, const MethodOptions& options) {
    using Req = typename Call::Request;
    using Resp = typename Call::Response;
    absl::StatusOr<std::string_view> name =
        FindMethodName(Req::descriptor(), Resp::descriptor(), Call::kStreaming);
    if (!name.ok()) {
      if (status_.ok()) status_ = name.status();
      return;
    }
    auto entry = std::make_unique<TypedEntry<Call>>();
    MethodInfo& info = entry->method.info;
    info.name = *name;
    info.max_inflight = options.max_inflight().value_or(default_max_inflight_);
    info.max_inflight_flag = options.max_inflight().has_value()
                                 ? options.max_inflight_flag()
                                 : "--max_inflight_rpcs";
    info.limits = limits_;
    info.observed = options.observed();
    info.deadline_clock_offset = deadline_clock_offset_;
    info.authorizer = authorizer_;
    if (authorizer_ != nullptr) {
      info.access_rule = KvAccessRule(*name, Req::descriptor());
    }
    info.inflight_bytes = inflight_bytes_;
    entry->method.request = std::move(request);
    entry->method.handler = std::move(handler);
    methods_.push_back(std::move(entry));
  }

  const int default_max_inflight_;
  const Limits limits_;
  std::chrono::nanoseconds deadline_clock_offset_{0};
  const Authorizer* authorizer_ = nullptr;
  InflightBytes* inflight_bytes_ = nullptr;
  absl::Status status_;
  std::vector<grpc::Service*> services_;
  std::vector<std::unique_ptr<Entry>> methods_;
};

// The generated Request<Method> functions of an AsyncService, declared in
// its WithAsyncMethod_<Method> base `Base`.
template <class Base, class Req, class Resp>
using UnaryRequestFn = void (Base::*)(grpc::ServerContext*, Req*,
                                      grpc::ServerAsyncResponseWriter<Resp>*,
                                      grpc::CompletionQueue*,
                                      grpc::ServerCompletionQueue*, void*);
template <class Base, class Req, class Resp>
using ServerStreamingRequestFn = void (Base::*)(grpc::ServerContext*, Req*,
                                                grpc::ServerAsyncWriter<Resp>*,
                                                grpc::CompletionQueue*,
                                                grpc::ServerCompletionQueue*,
                                                void*);

template <class Owner, class Service>
class RpcRegistry::ServiceMethods {
 public:
  // A unary method: `request` is &Service::Request<Method>, `handler` a
  // member function of Owner taking UnaryCall<Req, Resp>*.
  template <class Base, class Req, class Resp, class Call>
  void Register(UnaryRequestFn<Base, Req, Resp> request,
                void (Owner::*handler)(Call*),
                MethodOptions options = MethodOptions()) {
    static_assert(std::is_same_v<Call, UnaryCall<Req, Resp>>,
                  "the handler of a unary method takes "
                  "UnaryCall<Request, Response>*");
    Owner* owner = owner_;
    registry_->Add<Call>(
        RequestFor<Call>(request),
        [owner, handler](Call* call) { (owner->*handler)(call); }, options);
  }

  // A server-streaming method: `handler` is a member function of Owner
  // taking ServerStreamingCall<Req, Resp, State>* and a StreamEvent.
  template <class Base, class Req, class Resp, class Call>
  void Register(ServerStreamingRequestFn<Base, Req, Resp> request,
                void (Owner::*handler)(Call*, StreamEvent),
                MethodOptions options = MethodOptions()) {
    static_assert(
        std::is_same_v<
            Call, ServerStreamingCall<Req, Resp, typename Call::CallState>>,
        "the handler of a server-streaming method takes "
        "ServerStreamingCall<Request, Response, State>* and a StreamEvent");
    Owner* owner = owner_;
    registry_->Add<Call>(
        RequestFor<Call>(request),
        [owner, handler](Call* call, StreamEvent event) {
          (owner->*handler)(call, event);
        },
        options);
  }

 private:
  friend class RpcRegistry;
  ServiceMethods(RpcRegistry* registry, Service* service, Owner* owner)
      : registry_(registry), service_(service), owner_(owner) {}

  // Binds the generated request function to the service object.
  template <class Call, class Fn>
  decltype(Call::Method::request) RequestFor(Fn request) {
    static_assert(std::is_member_function_pointer_v<Fn>);
    Service* service = service_;
    return [service, request](grpc::ServerContext* ctx,
                              typename Call::Request* req,
                              typename Call::Writer* writer,
                              grpc::ServerCompletionQueue* cq, void* tag) {
      (service->*request)(ctx, req, writer, cq, cq, tag);
    };
  }

  RpcRegistry* const registry_;
  Service* const service_;
  Owner* const owner_;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_RPC_REGISTRY_H_
