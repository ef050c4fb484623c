#include "client/strata_client.h"

#include <algorithm>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/client_channel.h"
#include "client/watch_cursor.h"
#include "common/pem_file.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "strata/v1/cluster.grpc.pb.h"
#include "strata/v1/kv.grpc.pb.h"

namespace strata {
namespace {

// The only place that decides the channel's transport security.
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const ClientOptions& options) {
  if (!options.tls.has_value()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.tls->root_certs_pem;
  ssl.pem_private_key = options.tls->private_key_pem;
  ssl.pem_cert_chain = options.tls->cert_chain_pem;
  return grpc::SslCredentials(ssl);
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMicroseconds(timeout));
}

// Moves the fields out of a wire KeyValue.
KeyValue FromWire(v1::KeyValue* kv) {
  KeyValue out;
  out.key = std::move(*kv->mutable_key());
  out.value = std::move(*kv->mutable_value());
  out.create_revision = kv->create_revision();
  out.mod_revision = kv->mod_revision();
  out.version = kv->version();
  out.type = static_cast<ValueType>(kv->type());
  return out;
}

// The key's state from a GetResponse (or a BatchGet result); nullopt when
// not found.
std::optional<KeyValue> FromWire(std::string key, v1::GetResponse* r) {
  if (!r->found()) return std::nullopt;
  KeyValue out;
  out.key = std::move(key);
  out.value = std::move(*r->mutable_value());
  out.create_revision = r->create_revision();
  out.mod_revision = r->mod_revision();
  out.version = r->version();
  out.type = static_cast<ValueType>(r->type());
  return out;
}

WatchBatch FromWire(v1::WatchResponse* msg) {
  WatchBatch batch;
  batch.revision = msg->header().revision();
  batch.events.reserve(static_cast<size_t>(msg->events_size()));
  for (v1::Event& e : *msg->mutable_events()) {
    WatchEvent& out = batch.events.emplace_back();
    out.type = e.type() == v1::Event::DELETE ? WatchEvent::Type::kDelete
                                             : WatchEvent::Type::kPut;
    out.kv = FromWire(e.mutable_kv());
    if (e.has_prev_kv()) out.prev_kv = FromWire(e.mutable_prev_kv());
  }
  return batch;
}

}  // namespace

namespace internal {

std::shared_ptr<grpc::Channel> MakeClientChannel(const std::string& target,
                                                 const ClientOptions& options,
                                                 bool own_subchannels) {
  grpc::ChannelArguments args;
  // Values may be up to the server's --max_value_bytes and a Scan message
  // carries one pair of any size: accept whatever the server sends.
  args.SetMaxReceiveMessageSize(-1);
  if (options.tls.has_value() && !options.tls->server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls->server_name);
  }
  if (own_subchannels) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A restarted server is back within seconds; gRPC's default reconnect
  // backoff (1 s growing to 2 min) would keep calls failing long after.
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS stays at its default: C-core also
  // uses it as the minimum connect timeout (20 s), and at 100 ms a TLS
  // handshake on a loaded machine is cut off ("Handshake read failed").
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(target, MakeChannelCredentials(options),
                                   args);
}

}  // namespace internal

namespace {

// Resume backoff: 50 ms, doubling, at most 2 s.
constexpr absl::Duration kResumeBackoffInitial = absl::Milliseconds(50);
constexpr absl::Duration kResumeBackoffMax = absl::Seconds(2);

}  // namespace

std::string ValueTypeName(ValueType type) {
  switch (type) {
    case ValueType::kBytes:
      return "bytes";
    case ValueType::kText:
      return "text";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kJson:
      return "json";
  }
  return absl::StrFormat("type %d", static_cast<int>(type));
}

absl::StatusOr<ValueType> ParseValueType(std::string_view name) {
  for (ValueType t : {ValueType::kBytes, ValueType::kText, ValueType::kInt64,
                      ValueType::kJson}) {
    if (absl::EqualsIgnoreCase(absl::string_view(name.data(), name.size()),
                               ValueTypeName(t))) {
      return t;
    }
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown value type '%s' (bytes, text, int64 or json)",
      std::string(name)));
}

absl::StatusOr<ClientTlsOptions> LoadClientTlsFiles(
    const std::string& ca_file, const std::string& cert_file,
    const std::string& key_file, const std::string& server_name) {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key must be given together");
  }
  ClientTlsOptions tls;
  tls.server_name = server_name;
  const struct {
    std::string_view flag;
    const std::string& path;
    std::string* out;
  } files[] = {{"--tls_ca", ca_file, &tls.root_certs_pem},
               {"--tls_cert", cert_file, &tls.cert_chain_pem},
               {"--tls_key", key_file, &tls.private_key_pem}};
  for (const auto& f : files) {
    if (f.path.empty()) continue;
    absl::StatusOr<std::string> pem = ReadPemFile(f.flag, f.path);
    if (!pem.ok()) return pem.status();
    *f.out = *std::move(pem);
  }
  return tls;
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  // grpc::StatusCode and absl::StatusCode share the canonical values.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

struct Client::Stubs {
  std::unique_ptr<v1::KV::Stub> kv;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
};

struct Client::Route {
  // Whether the next routed call first asks `target` for the range map.
  enum class MapState {
    kWanted,         // Before the first routed call, and after a forget.
    kDone,           // Asked (answered or failed) since.
    kUnimplemented,  // A standalone server: never asked again.
  };
  absl::Mutex mu;
  // The primary a cluster node (or its range map) named (null: `target`).
  std::shared_ptr<v1::KV::Stub> kv ABSL_GUARDED_BY(mu);
  MapState map ABSL_GUARDED_BY(mu) = MapState::kWanted;
};

Client::Client(const std::string& target, const ClientOptions& options)
    : options_(options),
      target_(target),
      channel_(internal::MakeClientChannel(target, options,
                                           /*own_subchannels=*/false)),
      stubs_(std::make_unique<Stubs>()),
      route_(std::make_unique<Route>()) {
  stubs_->kv = v1::KV::NewStub(channel_);
  stubs_->health = grpc::health::v1::Health::NewStub(channel_);
}

Client::~Client() = default;

namespace {

// Whether a call to a followed primary failed because that node is no
// longer (reachable as) the primary: UNAVAILABLE (gone or unreachable), or
// FAILED_PRECONDITION (a fenced old primary; the caller has checked that
// it names no primary, which would be followed instead).
bool LostPrimary(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
}

// The address in a cluster node's "not the primary" answer, or "" if it
// is not one: its strata-primary trailer, else (servers before the
// trailer) the end of its message "...; the primary is NODE at HOST:PORT".
std::string NamedPrimary(const grpc::Status& s,
                         const grpc::ClientContext& ctx) {
  if (s.error_code() != grpc::StatusCode::FAILED_PRECONDITION) return "";
  const auto& trailers = ctx.GetServerTrailingMetadata();
  if (auto it = trailers.find("strata-primary");
      it != trailers.end() && it->second.size() > 0) {
    return std::string(it->second.data(), it->second.size());
  }
  const std::string& m = s.error_message();
  constexpr std::string_view kMarker = "; the primary is ";
  const size_t at = m.rfind(kMarker);
  if (at == std::string::npos) return "";
  const size_t addr = m.find(" at ", at + kMarker.size());
  if (addr == std::string::npos) return "";
  std::string address = m.substr(addr + 4);
  if (address.empty() || address.find(' ') != std::string::npos) return "";
  return address;
}

// Where the server stores default-namespace key `key` (server/keyspace.h):
// as is, except keys starting "\xff\xff", which move to "\xff\xff\xff"
// key[2:].
std::string DefaultNamespaceStoredKey(std::string_view key) {
  if (key.size() >= 2 && key[0] == '\xff' && key[1] == '\xff') {
    return std::string("\xff\xff\xff").append(key.substr(2));
  }
  return std::string(key);
}

// The primary address of the range holding `key` of namespace `ns`, or ""
// (no such range, no address). A named namespace's stored key needs its id,
// which the client does not know: then only a map of exactly one range
// answers.
std::string PrimaryFor(const v1::GetRangeMapResponse& map,
                       std::string_view ns, std::string_view key) {
  if (!ns.empty()) {
    return map.ranges_size() == 1 ? map.ranges(0).primary_address() : "";
  }
  const std::string stored = DefaultNamespaceStoredKey(key);
  for (const v1::Range& r : map.ranges()) {
    if (stored >= r.start_key() &&
        (r.end_key().empty() || stored < r.end_key())) {
      return r.primary_address();
    }
  }
  return "";
}

// How long routing waits for the range map before it gives up and sends
// the call to `target` (at most the call's own timeout).
constexpr absl::Duration kRangeMapTimeout = absl::Seconds(2);

}  // namespace

std::string Client::PrimaryFromRangeMap(std::string_view key) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, std::min(kRangeMapTimeout, options_.timeout));
  v1::GetRangeMapResponse map;
  const grpc::Status s = v1::Cluster::NewStub(channel_)->GetRangeMap(
      &ctx, v1::GetRangeMapRequest(), &map);
  if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    absl::MutexLock lock(&route_->mu);
    route_->map = Route::MapState::kUnimplemented;
    return "";
  }
  if (!s.ok()) return "";
  std::string primary = PrimaryFor(map, options_.ns, key);
  return primary == target_ ? "" : primary;
}

grpc::Status Client::RoutedKv(
    std::string_view key,
    const std::function<grpc::Status(void* kv_stub, grpc::ClientContext* ctx)>&
        call) {
  std::shared_ptr<v1::KV::Stub> routed;
  bool ask_map = false;
  {
    absl::MutexLock lock(&route_->mu);
    routed = route_->kv;
    if (routed == nullptr && route_->map == Route::MapState::kWanted) {
      route_->map = Route::MapState::kDone;
      ask_map = true;
    }
  }
  if (ask_map) {
    if (std::string primary = PrimaryFromRangeMap(key); !primary.empty()) {
      routed = std::shared_ptr<v1::KV::Stub>(v1::KV::NewStub(
          internal::MakeClientChannel(primary, options_,
                                      /*own_subchannels=*/false)));
      absl::MutexLock lock(&route_->mu);
      // Another call may have followed a trailer meanwhile: keep that one.
      if (route_->kv == nullptr) route_->kv = routed;
      routed = route_->kv;
    }
  }
  // Forgets the followed primary `failed` (issue 18: after a failover it is
  // dead or fenced), so the next call goes to `target` again, which
  // forwards or names the new primary. Another call may have followed a
  // newer primary since: that one is kept. Calls still running on `failed`
  // hold their own reference, so its channel closes when the last ends.
  auto unfollow = [this](const std::shared_ptr<v1::KV::Stub>& failed) {
    absl::MutexLock lock(&route_->mu);
    if (route_->kv != failed) return;
    route_->kv = nullptr;
    // A miss: the next call asks the map again (once per forget).
    if (route_->map == Route::MapState::kDone) {
      route_->map = Route::MapState::kWanted;
    }
  };
  std::string primary;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, options_.timeout);
    grpc::Status s =
        call(routed != nullptr ? routed.get() : stubs_->kv.get(), &ctx);
    primary = NamedPrimary(s, ctx);
    if (primary.empty()) {
      if (routed != nullptr && LostPrimary(s)) unfollow(routed);
      return s;
    }
  }
  routed = std::shared_ptr<v1::KV::Stub>(v1::KV::NewStub(
      internal::MakeClientChannel(primary, options_,
                                      /*own_subchannels=*/false)));
  {
    absl::MutexLock lock(&route_->mu);
    route_->kv = routed;
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  grpc::Status s = call(routed.get(), &ctx);
  if (LostPrimary(s) && NamedPrimary(s, ctx).empty()) unfollow(routed);
  return s;
}

absl::StatusOr<std::optional<std::string>> Client::Get(std::string_view key) {
  v1::GetRequest request;
  request.set_namespace_(options_.ns);
  request.set_key(key.data(), key.size());
  v1::GetResponse response;
  grpc::Status s = RoutedKv(key, [&](void* kv, grpc::ClientContext* ctx) {
    return static_cast<v1::KV::Stub*>(kv)->Get(ctx, request, &response);
  });
  if (!s.ok()) return FromGrpcStatus(s);
  if (!response.found()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(*response.mutable_value()));
}

absl::StatusOr<GetResult> Client::GetWithMetadata(std::string_view key,
                                                   Revision revision) {
  v1::GetRequest request;
  request.set_namespace_(options_.ns);
  request.set_key(key.data(), key.size());
  request.set_revision(revision);
  v1::GetResponse response;
  grpc::Status s = RoutedKv(key, [&](void* kv, grpc::ClientContext* ctx) {
    return static_cast<v1::KV::Stub*>(kv)->Get(ctx, request, &response);
  });
  if (!s.ok()) return FromGrpcStatus(s);
  GetResult result;
  result.revision = response.header().revision();
  result.kv = FromWire(std::string(key), &response);
  return result;
}

absl::StatusOr<BatchGetResult> Client::BatchGet(
    const std::vector<std::string>& keys, Revision revision) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::BatchGetRequest request;
  request.set_namespace_(options_.ns);
  request.mutable_keys()->Reserve(static_cast<int>(keys.size()));
  for (const std::string& key : keys) request.add_keys(key);
  request.set_revision(revision);
  v1::BatchGetResponse response;
  grpc::Status s = stubs_->kv->BatchGet(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  if (response.results_size() != request.keys_size()) {
    return absl::InternalError(absl::StrFormat(
        "BatchGet: asked for %d keys, the server answered %d",
        request.keys_size(), response.results_size()));
  }
  BatchGetResult result;
  result.revision = response.header().revision();
  result.kvs.reserve(keys.size());
  for (int i = 0; i < response.results_size(); ++i) {
    result.kvs.push_back(FromWire(keys[static_cast<size_t>(i)],
                                  response.mutable_results(i)));
  }
  return result;
}

absl::StatusOr<Revision> Client::Put(std::string_view key,
                                     std::string_view value) {
  return Put(key, value, ValueType::kBytes);
}

absl::StatusOr<Revision> Client::Put(std::string_view key,
                                     std::string_view value, ValueType type) {
  PutOptions options;
  options.type = type;
  return Put(key, value, options);
}

absl::StatusOr<Revision> Client::Put(std::string_view key,
                                     std::string_view value,
                                     const PutOptions& options) {
  v1::PutRequest request;
  request.set_namespace_(options_.ns);
  request.set_key(key.data(), key.size());
  request.set_value(value.data(), value.size());
  request.set_ttl_ms(options.ttl_ms);
  request.set_lease(options.lease);
  request.set_type(static_cast<v1::ValueType>(options.type));
  v1::PutResponse response;
  grpc::Status s = RoutedKv(key, [&](void* kv, grpc::ClientContext* ctx) {
    return static_cast<v1::KV::Stub*>(kv)->Put(ctx, request, &response);
  });
  if (!s.ok()) return FromGrpcStatus(s);
  return response.header().revision();
}

absl::StatusOr<int64_t> Client::LeaseGrant(int64_t ttl_seconds, int64_t id) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::LeaseGrantRequest request;
  request.set_ttl_seconds(ttl_seconds);
  request.set_id(id);
  v1::LeaseGrantResponse response;
  grpc::Status s = stubs_->kv->LeaseGrant(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.id();
}

absl::StatusOr<Revision> Client::LeaseRevoke(int64_t id) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::LeaseRevokeRequest request;
  request.set_id(id);
  v1::LeaseRevokeResponse response;
  grpc::Status s = stubs_->kv->LeaseRevoke(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.header().revision();
}

absl::StatusOr<int64_t> Client::LeaseKeepAlive(int64_t id) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::LeaseKeepAliveRequest request;
  request.set_id(id);
  v1::LeaseKeepAliveResponse response;
  grpc::Status s = stubs_->kv->LeaseKeepAlive(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.ttl_seconds();
}

absl::StatusOr<LeaseInfo> Client::LeaseTimeToLive(int64_t id, bool keys) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::LeaseTimeToLiveRequest request;
  request.set_id(id);
  request.set_keys(keys);
  v1::LeaseTimeToLiveResponse response;
  grpc::Status s = stubs_->kv->LeaseTimeToLive(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  LeaseInfo info;
  info.id = response.id();
  info.ttl_seconds = response.ttl_seconds();
  info.granted_ttl = response.granted_ttl();
  info.keys.assign(response.keys().begin(), response.keys().end());
  return info;
}

absl::StatusOr<std::vector<int64_t>> Client::LeaseLeases() {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::LeaseLeasesResponse response;
  grpc::Status s =
      stubs_->kv->LeaseLeases(&ctx, v1::LeaseLeasesRequest(), &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return std::vector<int64_t>(response.ids().begin(), response.ids().end());
}

absl::StatusOr<Revision> Client::Delete(std::string_view key) {
  v1::DeleteRequest request;
  request.set_namespace_(options_.ns);
  request.set_key(key.data(), key.size());
  v1::DeleteResponse response;
  grpc::Status s = RoutedKv(key, [&](void* kv, grpc::ClientContext* ctx) {
    return static_cast<v1::KV::Stub*>(kv)->Delete(ctx, request, &response);
  });
  if (!s.ok()) return FromGrpcStatus(s);
  return response.header().revision();
}

absl::StatusOr<Revision> Client::Write(const std::vector<Mutation>& mutations) {
  if (mutations.empty()) return Revision{0};
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::WriteRequest request;
  request.set_namespace_(options_.ns);
  request.mutable_mutations()->Reserve(static_cast<int>(mutations.size()));
  for (const Mutation& m : mutations) {
    v1::Mutation* out = request.add_mutations();
    if (m.op == Mutation::Op::kPut) {
      out->mutable_put()->set_key(m.key);
      out->mutable_put()->set_value(m.value);
      out->mutable_put()->set_type(static_cast<v1::ValueType>(m.type));
    } else {
      out->mutable_delete_()->set_key(m.key);
    }
  }
  v1::WriteResponse response;
  grpc::Status s = stubs_->kv->Write(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.header().revision();
}

absl::StatusOr<IncrementResult> Client::Increment(
    std::string_view key, int64_t delta, const IncrementOptions& options) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::IncrementRequest request;
  request.set_key(key.data(), key.size());
  request.set_delta(delta);
  request.set_must_exist(options.must_exist);
  request.set_ttl_ms(options.ttl_ms);
  request.set_namespace_(options.ns.empty() ? options_.ns : options.ns);
  v1::IncrementResponse response;
  grpc::Status s = stubs_->kv->Increment(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return IncrementResult{response.value(), response.header().revision()};
}

absl::StatusOr<JsonResult> Client::JsonGet(std::string_view key,
                                           std::string_view pointer) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::JsonGetRequest request;
  request.set_namespace_(options_.ns);
  request.set_key(key.data(), key.size());
  request.set_pointer(pointer.data(), pointer.size());
  v1::JsonGetResponse response;
  grpc::Status s = stubs_->kv->JsonGet(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return JsonResult{std::move(*response.mutable_json()),
                    response.header().revision()};
}

absl::StatusOr<JsonResult> Client::JsonUpdate(std::string_view key,
                                              JsonPatchKind kind,
                                              std::string_view patch) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::JsonUpdateRequest request;
  request.set_namespace_(options_.ns);
  request.set_key(key.data(), key.size());
  if (kind == JsonPatchKind::kMergePatch) {
    request.set_merge_patch(patch.data(), patch.size());
  } else {
    request.set_json_patch(patch.data(), patch.size());
  }
  v1::JsonUpdateResponse response;
  grpc::Status s = stubs_->kv->JsonUpdate(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return JsonResult{std::move(*response.mutable_json()),
                    response.header().revision()};
}

absl::StatusOr<DeleteRangeResult> Client::DeleteRange(std::string_view start,
                                                      std::string_view end,
                                                      bool prev_kv) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::DeleteRangeRequest request;
  request.set_namespace_(options_.ns);
  request.set_start_key(start.data(), start.size());
  request.set_end_key(end.data(), end.size());
  request.set_prev_kv(prev_kv);
  v1::DeleteRangeResponse response;
  grpc::Status s = stubs_->kv->DeleteRange(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  DeleteRangeResult result;
  result.revision = response.header().revision();
  result.deleted = response.deleted();
  result.prev_kvs.reserve(static_cast<size_t>(response.prev_kvs_size()));
  for (v1::KeyValue& kv : *response.mutable_prev_kvs()) {
    result.prev_kvs.push_back(FromWire(&kv));
  }
  return result;
}

absl::StatusOr<Revision> Client::Compact(Revision revision) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::CompactRequest request;
  request.set_revision(revision);
  v1::CompactResponse response;
  grpc::Status s = stubs_->kv->Compact(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.header().revision();
}

namespace {

void ToWire(const Compare& c, v1::Compare* out) {
  out->set_key(c.key);
  out->set_range_end(c.range_end);
  switch (c.result) {
    case Compare::Result::kEqual:
      out->set_result(v1::Compare::EQUAL);
      break;
    case Compare::Result::kGreater:
      out->set_result(v1::Compare::GREATER);
      break;
    case Compare::Result::kLess:
      out->set_result(v1::Compare::LESS);
      break;
    case Compare::Result::kNotEqual:
      out->set_result(v1::Compare::NOT_EQUAL);
      break;
  }
  switch (c.target) {
    case Compare::Target::kVersion:
      out->set_target(v1::Compare::VERSION);
      out->set_version(c.number);
      break;
    case Compare::Target::kCreate:
      out->set_target(v1::Compare::CREATE);
      out->set_create_revision(c.number);
      break;
    case Compare::Target::kMod:
      out->set_target(v1::Compare::MOD);
      out->set_mod_revision(c.number);
      break;
    case Compare::Target::kValue:
      out->set_target(v1::Compare::VALUE);
      out->set_value(c.value);
      break;
    case Compare::Target::kInt64Value:
      out->set_target(v1::Compare::INT64_VALUE);
      out->set_int64_value(c.number);
      break;
  }
}

void ToWire(const TxnOp& op, v1::RequestOp* out) {
  switch (op.type) {
    case TxnOp::Type::kGet:
      out->mutable_get()->set_key(op.key);
      break;
    case TxnOp::Type::kPut:
      out->mutable_put()->set_key(op.key);
      out->mutable_put()->set_value(op.value);
      break;
    case TxnOp::Type::kDelete:
      out->mutable_delete_()->set_key(op.key);
      break;
    case TxnOp::Type::kScan: {
      v1::ScanRequest* scan = out->mutable_scan();
      scan->set_start_key(op.scan.start);
      scan->set_end_key(op.scan.end);
      scan->set_limit(op.scan.limit);
      scan->set_keys_only(op.scan.keys_only);
      scan->set_revision(op.scan.revision);
      scan->set_reverse(op.scan.reverse);
      break;
    }
    case TxnOp::Type::kIncrement: {
      v1::IncrementRequest* inc = out->mutable_increment();
      inc->set_key(op.key);
      inc->set_delta(op.delta);
      inc->set_must_exist(op.must_exist);
      break;
    }
    case TxnOp::Type::kJsonGet:
      out->mutable_json_get()->set_key(op.key);
      out->mutable_json_get()->set_pointer(op.pointer);
      break;
    case TxnOp::Type::kJsonUpdate: {
      v1::JsonUpdateRequest* update = out->mutable_json_update();
      update->set_key(op.key);
      if (op.patch_kind == JsonPatchKind::kMergePatch) {
        update->set_merge_patch(op.value);
      } else {
        update->set_json_patch(op.value);
      }
      break;
    }
  }
}

}  // namespace

absl::StatusOr<TxnResult> Client::Txn(const std::vector<Compare>& compares,
                                      const std::vector<TxnOp>& success,
                                      const std::vector<TxnOp>& failure) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::TxnRequest request;
  request.set_namespace_(options_.ns);
  for (const Compare& c : compares) ToWire(c, request.add_compare());
  for (const TxnOp& op : success) ToWire(op, request.add_success());
  for (const TxnOp& op : failure) ToWire(op, request.add_failure());
  v1::TxnResponse response;
  grpc::Status s = stubs_->kv->Txn(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  TxnResult result;
  result.succeeded = response.succeeded();
  result.revision = response.header().revision();
  const std::vector<TxnOp>& ops = result.succeeded ? success : failure;
  if (static_cast<size_t>(response.responses_size()) != ops.size()) {
    return absl::InternalError(absl::StrFormat(
        "Txn: the branch has %d ops, the server answered %d", ops.size(),
        response.responses_size()));
  }
  result.results.reserve(ops.size());
  for (int i = 0; i < response.responses_size(); ++i) {
    const TxnOp& op = ops[static_cast<size_t>(i)];
    v1::ResponseOp* wire = response.mutable_responses(i);
    TxnOpResult& out = result.results.emplace_back();
    out.type = op.type;
    switch (op.type) {
      case TxnOp::Type::kGet:
        out.kv = FromWire(op.key, wire->mutable_get());
        break;
      case TxnOp::Type::kScan:
        out.kvs.reserve(static_cast<size_t>(wire->scan().pairs_size()));
        for (v1::KeyValue& kv : *wire->mutable_scan()->mutable_pairs()) {
          out.kvs.push_back(FromWire(&kv));
        }
        break;
      case TxnOp::Type::kIncrement:
        out.counter = wire->increment().value();
        break;
      case TxnOp::Type::kJsonGet:
        out.json = std::move(*wire->mutable_json_get()->mutable_json());
        break;
      case TxnOp::Type::kJsonUpdate:
        out.json = std::move(*wire->mutable_json_update()->mutable_json());
        break;
      case TxnOp::Type::kPut:
      case TxnOp::Type::kDelete:
        break;
    }
  }
  return result;
}

absl::StatusOr<Revision> Client::Commit(
    Revision read_revision, const std::vector<std::string>& read_keys,
    const std::vector<KeyRange>& read_ranges,
    const std::vector<Mutation>& mutations) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::CommitRequest request;
  request.set_namespace_(options_.ns);
  request.set_read_revision(read_revision);
  for (const std::string& k : read_keys) request.add_read_keys(k);
  for (const KeyRange& r : read_ranges) {
    v1::KeyRange* out = request.add_read_ranges();
    out->set_start_key(r.start);
    out->set_end_key(r.end);
  }
  for (const Mutation& m : mutations) {
    v1::Mutation* out = request.add_mutations();
    if (m.op == Mutation::Op::kPut) {
      out->mutable_put()->set_key(m.key);
      out->mutable_put()->set_value(m.value);
    } else {
      out->mutable_delete_()->set_key(m.key);
    }
  }
  v1::CommitResponse response;
  grpc::Status s = stubs_->kv->Commit(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.header().revision();
}

absl::Status Client::Scan(std::string_view start, std::string_view end,
                          uint32_t limit, bool keys_only,
                          ScanCallback callback) {
  ScanOptions options;
  options.start = std::string(start);
  options.end = std::string(end);
  options.limit = limit;
  options.keys_only = keys_only;
  return Scan(options, [&callback](const KeyValue& kv) {
           return callback(kv.key, kv.value);
         })
      .status();
}

absl::StatusOr<Revision> Client::Scan(const ScanOptions& options,
                                      ScanKvCallback callback) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::ScanRequest request;
  request.set_namespace_(options_.ns);
  request.set_start_key(options.start);
  request.set_end_key(options.end);
  request.set_limit(options.limit);
  request.set_keys_only(options.keys_only);
  request.set_revision(options.revision);
  request.set_reverse(options.reverse);
  std::unique_ptr<grpc::ClientReader<v1::ScanResponse>> reader =
      stubs_->kv->Scan(&ctx, request);
  v1::ScanResponse response;
  Revision revision = 0;
  bool stopped = false;
  while (!stopped && reader->Read(&response)) {
    // Every message carries the same header (the first one always comes,
    // even for an empty range).
    revision = response.header().revision();
    for (v1::KeyValue& wire : *response.mutable_pairs()) {
      if (!callback(FromWire(&wire))) {
        stopped = true;
        break;
      }
    }
  }
  if (stopped) {
    // Tell the server to stop, then collect the (CANCELLED) status.
    ctx.TryCancel();
    while (reader->Read(&response)) {
    }
    reader->Finish().ok();
    return revision;
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return FromGrpcStatus(s);
  return revision;
}

namespace {

// The backup file's framing (docs/backup-format.md; the reader is
// server/backup_archive.cc): magic, fixed32le format version, then each
// message as fixed32le length + serialized BackupResponse.
constexpr std::string_view kBackupMagic = "STRATABK";
constexpr uint32_t kBackupFileFormat = 1;

void AppendFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; i++) out->push_back(static_cast<char>(v >> (8 * i)));
}

absl::Status FileError(std::string_view what, const std::string& path) {
  const int err = errno;
  std::string msg = absl::StrFormat("%s %s: %s", what, path,
                                    std::strerror(err));
  if (err == ENOSPC || err == EIO || err == EDQUOT) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

}  // namespace

absl::StatusOr<Client::BackupResult> Client::Backup(
    const std::string& path, BackupProgressCallback progress,
    Revision since_revision) {
  const std::string partial = path + ".partial";
  std::FILE* out = std::fopen(partial.c_str(), "wb");
  if (out == nullptr) return FileError("open", partial);
  auto fail = [&](absl::Status s) {
    std::fclose(out);
    std::remove(partial.c_str());
    return s;
  };
  // The header goes out with the first message: its version is the
  // BackupBegin's (1 for a full backup, 2 for an incremental).
  std::string frame;
  bool have_header = false;
  grpc::ClientContext ctx;  // No deadline: a backup may take long.
  v1::BackupRequest request;
  request.set_since_revision(static_cast<int64_t>(since_revision));
  request.set_namespace_(options_.ns);
  std::unique_ptr<grpc::ClientReader<v1::BackupResponse>> reader =
      stubs_->kv->Backup(&ctx, request);
  v1::BackupResponse response;
  BackupProgress p;
  BackupResult result;
  bool have_manifest = false;
  while (reader->Read(&response)) {
    p.revision = response.header().revision();
    if (!have_header) {
      frame.append(kBackupMagic);
      const uint32_t version = response.has_begin()
                                   ? response.begin().format_version()
                                   : 0;
      AppendFixed32(&frame, version != 0 ? version : kBackupFileFormat);
      have_header = true;
    }
    if (response.has_begin()) {
      p.total_bytes = response.begin().total_bytes();
      p.from_revision = static_cast<Revision>(response.begin().from_revision());
      p.last_revision = p.from_revision;
    }
    if (response.has_chunk()) p.bytes += response.chunk().data().size();
    if (response.has_keys()) p.bytes += response.keys().data().size();
    if (response.has_changes()) {
      p.bytes += response.changes().data().size();
      p.last_revision =
          static_cast<Revision>(response.changes().last_revision());
    }
    if (response.has_manifest()) {
      have_manifest = true;
      result.files = response.manifest().files_size();
      result.batches = response.manifest().batches();
      result.changes = response.manifest().changes();
      result.ns = response.manifest().namespace_();
    }
    AppendFixed32(&frame, static_cast<uint32_t>(response.ByteSizeLong()));
    response.AppendToString(&frame);
    if (std::fwrite(frame.data(), 1, frame.size(), out) != frame.size()) {
      absl::Status s = FileError("write", partial);
      ctx.TryCancel();
      while (reader->Read(&response)) {
      }
      reader->Finish().ok();
      return fail(s);
    }
    frame.clear();
    progress(p);
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return fail(FromGrpcStatus(status));
  if (!have_manifest) {
    return fail(absl::DataLossError(
        "the backup stream ended without its manifest"));
  }
  if (!frame.empty() &&
      std::fwrite(frame.data(), 1, frame.size(), out) != frame.size()) {
    return fail(FileError("write", partial));
  }
  if (std::fflush(out) != 0 || ::fsync(::fileno(out)) != 0) {
    return fail(FileError("sync", partial));
  }
  if (std::fclose(out) != 0) {
    std::remove(partial.c_str());
    return FileError("close", partial);
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    absl::Status s = FileError("rename", partial);
    std::remove(partial.c_str());
    return s;
  }
  result.revision = p.revision;
  result.bytes = p.bytes;
  result.from_revision = p.from_revision;
  return result;
}

// The Watch stream's state. The reader thread (Next) owns everything but
// what mu guards; Cancel runs on any thread.
struct WatchStream::Impl {
  Impl(std::shared_ptr<grpc::Channel> channel,
       std::function<std::shared_ptr<grpc::Channel>()> new_channel,
       WatchOptions options)
      : new_channel(std::move(new_channel)),
        options(std::move(options)),
        channel(std::move(channel)),
        stub(v1::KV::NewStub(this->channel)),
        cursor(this->options.start_revision) {}

  // Starts a stream from the cursor's position (or the options' start).
  // Returns false if the stream was cancelled.
  bool Open() ABSL_LOCKS_EXCLUDED(mu);
  // Finishes the open stream and returns its status.
  absl::Status Close() ABSL_LOCKS_EXCLUDED(mu);
  // Ends the stream for good with `status`.
  absl::Status Fail(absl::Status status) {
    final_status = std::move(status);
    return final_status;
  }
  bool Cancelled() ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock l(&mu);
    return cancelled_;
  }
  // Waits for `d` or until cancelled; returns false if cancelled.
  bool SleepUnlessCancelled(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu);

  // Makes a channel of its own for a resumed stream.
  const std::function<std::shared_ptr<grpc::Channel>()> new_channel;
  const WatchOptions options;

  // Reader thread only.
  // The client's channel, then one of its own after each break: after an
  // outage, gRPC keeps a channel in TRANSIENT_FAILURE (failing calls at
  // once) until its reconnect backoff, up to minutes, runs out, while a
  // new channel connects at once.
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::KV::Stub> stub;
  internal::WatchCursor cursor;
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader;
  absl::Status final_status;  // Not OK once the stream is over.
  bool opened = false;        // A message was received (ever).
  bool resuming = false;      // Between a break and the next message.
  absl::Time broken_at;       // When the current break began.
  absl::Duration backoff = kResumeBackoffInitial;
  Revision compact_revision = 0;
  int resumes = 0;

  absl::Mutex mu;
  bool cancelled_ ABSL_GUARDED_BY(mu) = false;
  // The open stream's context (the reader uses it through `reader`).
  std::unique_ptr<grpc::ClientContext> ctx ABSL_GUARDED_BY(mu);
};

bool WatchStream::Impl::Open() {
  v1::WatchRequest request;
  request.set_key(options.key);
  request.set_range_end(options.range_end);
  request.set_start_revision(cursor.positioned() ? cursor.resume_from()
                                                 : options.start_revision);
  request.set_prev_kv(options.prev_kv);
  request.set_progress_notify(options.progress_notify);
  request.set_namespace_(options.ns);
  grpc::ClientContext* ctx_ptr;
  {
    absl::MutexLock l(&mu);
    if (cancelled_) return false;
    ctx = std::make_unique<grpc::ClientContext>();
    ctx_ptr = ctx.get();
  }
  // Outside mu: starting the call may wait for a connection attempt, and
  // Cancel must not wait for that (TryCancel is safe meanwhile).
  reader = stub->Watch(ctx_ptr, request);
  return true;
}

absl::Status WatchStream::Impl::Close() {
  grpc::Status s = reader->Finish();
  reader.reset();
  absl::MutexLock l(&mu);
  ctx.reset();
  if (cancelled_) return absl::CancelledError("watch cancelled by the client");
  if (s.ok()) {
    // The server never ends a watch with OK; treat it as a break.
    return absl::UnavailableError("watch stream ended by the server");
  }
  return FromGrpcStatus(s);
}

bool WatchStream::Impl::SleepUnlessCancelled(absl::Duration d) {
  absl::MutexLock l(&mu);
  mu.AwaitWithTimeout(absl::Condition(&cancelled_), d);
  return !cancelled_;
}

WatchStream::WatchStream(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

WatchStream::~WatchStream() {
  if (impl_->reader != nullptr) {
    Cancel();
    impl_->Close().IgnoreError();
  }
}

void WatchStream::Cancel() {
  absl::MutexLock l(&impl_->mu);
  impl_->cancelled_ = true;
  if (impl_->ctx != nullptr) impl_->ctx->TryCancel();
}

Revision WatchStream::revision() const { return impl_->cursor.complete(); }

Revision WatchStream::compact_revision() const {
  return impl_->compact_revision;
}

int WatchStream::resumes() const { return impl_->resumes; }

absl::StatusOr<WatchBatch> WatchStream::Next() {
  Impl& st = *impl_;
  if (!st.final_status.ok()) return st.final_status;
  while (true) {
    if (st.reader == nullptr && !st.Open()) {
      return st.Fail(absl::CancelledError("watch cancelled"));
    }
    v1::WatchResponse msg;
    if (st.reader->Read(&msg)) {
      if (msg.compact_revision() > 0) {
        // The last message before OUT_OF_RANGE.
        st.compact_revision = msg.compact_revision();
        continue;
      }
      st.opened = true;
      st.resuming = false;
      absl::StatusOr<std::optional<WatchBatch>> batch =
          st.cursor.Accept(FromWire(&msg));
      if (!batch.ok()) {
        Cancel();
        st.Close().IgnoreError();
        return st.Fail(batch.status());
      }
      if (batch->has_value()) return **std::move(batch);
      continue;
    }
    absl::Status status = st.Close();
    // A stream we did not cancel that ends with CANCELLED was cancelled by
    // the server (a call that arrives while it shuts down): a break too.
    const bool broke = absl::IsUnavailable(status) ||
                       (absl::IsCancelled(status) && !st.Cancelled());
    const bool resumable = broke && st.opened &&
                           st.cursor.positioned() &&
                           st.options.resume_timeout > absl::ZeroDuration();
    if (!resumable) return st.Fail(std::move(status));
    const absl::Time now = absl::Now();
    if (!st.resuming) {
      // A new break: the first attempt goes at once (a dropped connection
      // to a live server reconnects immediately).
      st.resuming = true;
      st.broken_at = now;
      st.backoff = kResumeBackoffInitial;
      if (st.options.on_resume) {
        st.options.on_resume(status, st.cursor.resume_from());
      }
    } else {
      const absl::Time give_up = st.broken_at + st.options.resume_timeout;
      if (now >= give_up) {
        return st.Fail(absl::UnavailableError(absl::StrFormat(
            "%s (gave up resuming the watch from revision %d after %s)",
            std::string(status.message()), st.cursor.resume_from(),
            absl::FormatDuration(st.options.resume_timeout))));
      }
      if (!st.SleepUnlessCancelled(std::min(st.backoff, give_up - now))) {
        return st.Fail(absl::CancelledError("watch cancelled"));
      }
      st.backoff = std::min(st.backoff * 2, kResumeBackoffMax);
    }
    st.channel = st.new_channel();
    st.stub = v1::KV::NewStub(st.channel);
    st.cursor.Resume();
    st.resumes++;
  }
}

std::unique_ptr<WatchStream> Client::Watch(const WatchOptions& given) {
  WatchOptions options = given;
  if (options.ns.empty()) options.ns = options_.ns;
  auto new_channel = [target = target_, client_options = options_] {
    return internal::MakeClientChannel(target, client_options,
                                       /*own_subchannels=*/true);
  };
  return std::unique_ptr<WatchStream>(new WatchStream(
      std::make_unique<WatchStream::Impl>(channel_, new_channel, options)));
}

absl::StatusOr<Revision> Client::CreateNamespace(std::string_view name,
                                                 uint64_t quota_bytes,
                                                 uint64_t quota_keys) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::CreateNamespaceRequest request;
  request.set_name(name.data(), name.size());
  request.set_quota_bytes(quota_bytes);
  request.set_quota_keys(quota_keys);
  v1::CreateNamespaceResponse response;
  grpc::Status s = stubs_->kv->CreateNamespace(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.header().revision();
}

absl::StatusOr<Revision> Client::DeleteNamespace(std::string_view name) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::DeleteNamespaceRequest request;
  request.set_name(name.data(), name.size());
  v1::DeleteNamespaceResponse response;
  grpc::Status s = stubs_->kv->DeleteNamespace(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.header().revision();
}

absl::StatusOr<Revision> Client::UpdateNamespace(
    std::string_view name, std::optional<uint64_t> quota_bytes,
    std::optional<uint64_t> quota_keys) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::UpdateNamespaceRequest request;
  request.set_name(name.data(), name.size());
  request.set_quota_bytes(quota_bytes.value_or(0));
  request.set_keep_quota_bytes(!quota_bytes.has_value());
  request.set_quota_keys(quota_keys.value_or(0));
  request.set_keep_quota_keys(!quota_keys.has_value());
  v1::UpdateNamespaceResponse response;
  grpc::Status s = stubs_->kv->UpdateNamespace(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.header().revision();
}

absl::StatusOr<std::vector<NamespaceInfo>> Client::ListNamespaces(
    std::string_view prefix) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::ListNamespacesRequest request;
  request.set_prefix(prefix.data(), prefix.size());
  v1::ListNamespacesResponse response;
  grpc::Status s = stubs_->kv->ListNamespaces(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  std::vector<NamespaceInfo> out;
  for (const v1::NamespaceInfo& n : response.namespaces()) {
    out.push_back(NamespaceInfo{n.name(), n.quota_bytes(), n.quota_keys(),
                                n.approximate_keys(), n.approximate_bytes()});
  }
  return out;
}

absl::StatusOr<bool> Client::Health(std::string_view service) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(std::string(service));
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = stubs_->health->Check(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.status() ==
         grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace strata
