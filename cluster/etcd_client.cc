#include "cluster/etcd_client.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cluster/proto/etcd/rpc.grpc.pb.h"
#include "common/pem_file.h"
#include "common/tls_channel.h"
#include "grpcpp/grpcpp.h"

namespace strata::cluster {

struct EtcdClient::Stubs {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<etcdserverpb::KV::Stub> kv;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  std::unique_ptr<etcdserverpb::Auth::Stub> auth;
};

namespace {

// etcd's answer to a call without a token when authentication is enabled
// (rpctypes.ErrGRPCUserEmpty, INVALID_ARGUMENT).
constexpr char kUserEmpty[] = "etcdserver: user name is empty";

absl::Status FromGrpc(const grpc::Status& s, const char* rpc) {
  if (s.ok()) return absl::OkStatus();
  if (s.error_message() == kUserEmpty) {
    // Not a malformed request, as etcd's code says: credentials missing.
    return absl::UnauthenticatedError(
        absl::StrCat("etcd ", rpc,
                     ": etcd requires a user (authentication is enabled) "
                     "and none was given (",
                     s.error_message(), ")"));
  }
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("etcd ", rpc, ": ", s.error_message()));
}

// Whether etcd refused the token a call carried in a way a fresh token
// cures (what etcd's Go client re-authenticates on): expired or forgotten
// (a restarted member), issued before a change to users or roles, or
// missing (the first calls were made while etcd had authentication off).
bool IsStaleToken(const absl::Status& s) {
  if (s.ok()) return false;
  const std::string_view msg(s.message().data(), s.message().size());
  return s.code() == absl::StatusCode::kUnauthenticated ||
         msg.find("etcdserver: invalid auth token") != std::string_view::npos ||
         msg.find("etcdserver: revision of auth store is old") !=
             std::string_view::npos ||
         msg.find(kUserEmpty) != std::string_view::npos;
}

// Why etcd cancelled a watch, as the status a unary call would have got:
// etcd refuses to create a watch the stream's token does not allow with
// the error text as cancel_reason (and the stream stays open). Anything
// else (e.g. the watch was cancelled while etcd shut down) is Unavailable.
absl::Status WatchCanceled(const etcdserverpb::WatchResponse& resp) {
  const std::string& reason = resp.cancel_reason();
  grpc::StatusCode code = grpc::StatusCode::UNAVAILABLE;
  if (reason == "etcdserver: invalid auth token") {
    code = grpc::StatusCode::UNAUTHENTICATED;
  } else if (reason == kUserEmpty ||
             reason == "etcdserver: revision of auth store is old") {
    code = grpc::StatusCode::INVALID_ARGUMENT;
  } else if (reason.find("permission denied") != std::string::npos) {
    code = grpc::StatusCode::PERMISSION_DENIED;
  }
  if (code == grpc::StatusCode::UNAVAILABLE) {
    return absl::UnavailableError(absl::StrCat(
        "etcd Watch: cancelled by etcd", reason.empty() ? "" : ": ", reason));
  }
  return FromGrpc(grpc::Status(code, reason), "Watch");
}

// Every call waits for a connection (up to its deadline) rather than
// failing at once while the channel reconnects, e.g. just after etcd
// restarted.
void SetDeadline(grpc::ClientContext* ctx, absl::Time deadline) {
  ctx->set_deadline(absl::ToChronoTime(deadline));
  ctx->set_wait_for_ready(true);
}

KeyValue FromProto(const mvccpb::KeyValue& p) {
  KeyValue kv;
  kv.key = p.key();
  kv.value = p.value();
  kv.create_revision = p.create_revision();
  kv.mod_revision = p.mod_revision();
  kv.version = p.version();
  kv.lease = p.lease();
  return kv;
}

// The range_end that makes [prefix, end) every key with the prefix
// (etcd's clientv3.GetPrefixRangeEnd): the prefix with its last byte below
// 0xff incremented and the rest dropped; "\0" (every key) if there is none.
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

void ToProto(const Compare& c, etcdserverpb::Compare* p) {
  p->set_key(c.key);
  switch (c.op) {
    case Compare::Op::kEqual:
      p->set_result(etcdserverpb::Compare::EQUAL);
      break;
    case Compare::Op::kNotEqual:
      p->set_result(etcdserverpb::Compare::NOT_EQUAL);
      break;
    case Compare::Op::kLess:
      p->set_result(etcdserverpb::Compare::LESS);
      break;
    case Compare::Op::kGreater:
      p->set_result(etcdserverpb::Compare::GREATER);
      break;
  }
  switch (c.target) {
    case Compare::Target::kVersion:
      p->set_target(etcdserverpb::Compare::VERSION);
      p->set_version(c.number);
      break;
    case Compare::Target::kCreateRevision:
      p->set_target(etcdserverpb::Compare::CREATE);
      p->set_create_revision(c.number);
      break;
    case Compare::Target::kModRevision:
      p->set_target(etcdserverpb::Compare::MOD);
      p->set_mod_revision(c.number);
      break;
    case Compare::Target::kValue:
      p->set_target(etcdserverpb::Compare::VALUE);
      p->set_value(c.value);
      break;
  }
}

void ToProto(const TxnOp& op, etcdserverpb::RequestOp* p) {
  switch (op.kind) {
    case TxnOp::Kind::kGet: {
      auto* r = p->mutable_request_range();
      r->set_key(op.key);
      r->set_range_end(op.range_end);
      break;
    }
    case TxnOp::Kind::kPut: {
      auto* r = p->mutable_request_put();
      r->set_key(op.key);
      r->set_value(op.value);
      r->set_lease(op.lease);
      break;
    }
    case TxnOp::Kind::kDelete: {
      auto* r = p->mutable_request_delete_range();
      r->set_key(op.key);
      r->set_range_end(op.range_end);
      break;
    }
  }
}

}  // namespace

// --- Compare / TxnOp builders. -------------------------------------------------

Compare Compare::ModRevisionIs(std::string key, int64_t revision) {
  return Compare{std::move(key), Target::kModRevision, Op::kEqual, revision,
                 ""};
}
Compare Compare::CreateRevisionIs(std::string key, int64_t revision) {
  return Compare{std::move(key), Target::kCreateRevision, Op::kEqual, revision,
                 ""};
}
Compare Compare::Absent(std::string key) {
  return CreateRevisionIs(std::move(key), 0);
}
Compare Compare::Exists(std::string key) {
  return Compare{std::move(key), Target::kVersion, Op::kGreater, 0, ""};
}
Compare Compare::VersionIs(std::string key, int64_t version) {
  return Compare{std::move(key), Target::kVersion, Op::kEqual, version, ""};
}
Compare Compare::ValueIs(std::string key, std::string value) {
  return Compare{std::move(key), Target::kValue, Op::kEqual, 0,
                 std::move(value)};
}

TxnOp TxnOp::Get(std::string key) {
  return TxnOp{Kind::kGet, std::move(key), "", 0, ""};
}
TxnOp TxnOp::Put(std::string key, std::string value, int64_t lease) {
  return TxnOp{Kind::kPut, std::move(key), std::move(value), lease, ""};
}
TxnOp TxnOp::Delete(std::string key) {
  return TxnOp{Kind::kDelete, std::move(key), "", 0, ""};
}

// --- EtcdClient. ---------------------------------------------------------------

absl::StatusOr<EtcdChannelPlan> PlanEtcdChannels(std::string_view endpoints,
                                                 bool tls) {
  enum class Kind { kIpv4, kIpv6, kName };
  std::vector<std::string> entries;
  std::vector<Kind> kinds;
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(endpoints.data(), endpoints.size()),
                      ',')) {
    const std::string entry(absl::StripAsciiWhitespace(part));
    const size_t colon = entry.rfind(':');
    if (entry.empty() || colon == std::string::npos ||
        colon + 1 == entry.size() ||
        !std::all_of(entry.begin() + static_cast<long>(colon) + 1,
                     entry.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return absl::InvalidArgumentError(absl::StrCat(
          "etcd endpoints \"", std::string(endpoints),
          "\": want host:port[,host:port...], got \"", entry, "\""));
    }
    const std::string host = entry.substr(0, colon);
    unsigned char buf[sizeof(struct in6_addr)];
    Kind kind = Kind::kName;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']' &&
        inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), buf) ==
            1) {
      kind = Kind::kIpv6;
    } else if (inet_pton(AF_INET, host.c_str(), buf) == 1) {
      kind = Kind::kIpv4;
    }
    entries.push_back(entry);
    kinds.push_back(kind);
  }
  EtcdChannelPlan plan;
  if (entries.size() == 1) {
    plan.targets = entries;
    return plan;
  }
  const bool one_literal_family =
      !tls && kinds.front() != Kind::kName &&
      std::all_of(kinds.begin(), kinds.end(),
                  [&](Kind k) { return k == kinds.front(); });
  if (one_literal_family) {
    plan.targets.push_back(absl::StrCat(
        kinds.front() == Kind::kIpv4 ? "ipv4:" : "ipv6:",
        absl::StrJoin(entries, ",")));
    plan.round_robin = true;
    return plan;
  }
  plan.targets = entries;
  return plan;
}

namespace {

// Plaintext, or TLS verifying each member's certificate against the CA
// bundle and the name dialed (see EtcdTlsOptions).
std::shared_ptr<grpc::ChannelCredentials> EtcdChannelCredentials(
    const EtcdTlsOptions& tls) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  return FileWatcherTlsChannelCredentials(
      tls.ca_file, tls.cert_file, tls.key_file,
      static_cast<unsigned int>(
          std::max<int64_t>(1, absl::ToInt64Seconds(tls.reload_interval))));
}

// round_robin over the members, and gRPC's retries for the calls that are
// safe to repeat (reads; a lease's TTL). Writes are left to the caller:
// after a lost answer a Txn may have taken effect.
constexpr char kRoundRobinServiceConfig[] = R"json({
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "etcdserverpb.KV", "method": "Range"},
             {"service": "etcdserverpb.Lease", "method": "LeaseTimeToLive"}],
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.05s",
      "maxBackoff": "0.5s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
})json";

}  // namespace

absl::Status ValidateEtcdTls(const EtcdTlsOptions& tls,
                             std::string_view flag_prefix) {
  const std::string ca_flag = absl::StrCat(std::string(flag_prefix), "ca");
  const std::string cert_flag = absl::StrCat(std::string(flag_prefix), "cert");
  const std::string key_flag = absl::StrCat(std::string(flag_prefix), "key");
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        cert_flag, " and ", key_flag, " go together (etcd's client "
        "certificate and its private key)"));
  }
  if (!tls.enabled()) {
    if (!tls.cert_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          cert_flag, " needs ", ca_flag,
          ": the CA bundle that verifies etcd's server certificates (TLS "
          "to etcd is on only with it)"));
    }
    return absl::OkStatus();
  }
  for (const auto& [flag, path] :
       {std::pair{ca_flag, tls.ca_file}, std::pair{cert_flag, tls.cert_file},
        std::pair{key_flag, tls.key_file}}) {
    if (path.empty()) continue;  // No client certificate.
    if (absl::StatusOr<std::string> pem = ReadPemFile(flag, path); !pem.ok()) {
      return pem.status();
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<EtcdAuthOptions> LoadEtcdAuth(std::string user,
                                             const std::string& password_file,
                                             std::string_view flag_prefix) {
  const std::string user_flag = absl::StrCat(std::string(flag_prefix), "user");
  const std::string file_flag =
      absl::StrCat(std::string(flag_prefix), "password_file");
  if (user.empty() && password_file.empty()) return EtcdAuthOptions{};
  if (user.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(file_flag, " needs ",
                                                   user_flag,
                                                   ": the etcd user it is the "
                                                   "password of"));
  }
  if (password_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(user_flag, " needs ", file_flag,
                     ": a file holding the password of "
                     "etcd user \"",
                     user, "\""));
  }
  std::ifstream in(password_file, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        file_flag, " file ", password_file, ": ", std::strerror(errno)));
  }
  std::string password((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_flag, " file ", password_file, ": read error"));
  }
  if (!password.empty() && password.back() == '\n') password.pop_back();
  if (!password.empty() && password.back() == '\r') password.pop_back();
  if (password.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_flag, " file ", password_file,
                     ": empty (want the password of etcd "
                     "user \"",
                     user, "\")"));
  }
  EtcdAuthOptions auth;
  auth.user = std::move(user);
  auth.password = std::move(password);
  return auth;
}

EtcdClient::EtcdClient(EtcdClientOptions options)
    : options_(std::move(options)) {
  absl::StatusOr<EtcdChannelPlan> plan =
      PlanEtcdChannels(options_.endpoint, options_.tls.enabled());
  const std::shared_ptr<grpc::ChannelCredentials> credentials =
      EtcdChannelCredentials(options_.tls);
  if (!plan.ok()) {
    // The constructor cannot fail: use the text as one target, whose calls
    // then fail (UNAVAILABLE/DEADLINE_EXCEEDED) naming nothing better.
    // Callers that take the flag validate it first (PlanEtcdChannels).
    plan = EtcdChannelPlan{{options_.endpoint}, false};
  }
  for (const std::string& target : plan->targets) {
    // Reconnect quickly after etcd comes back (gRPC's default backoff
    // grows to two minutes).
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    if (plan->round_robin) {
      args.SetServiceConfigJSON(kRoundRobinServiceConfig);
    }
    auto stubs = std::make_unique<Stubs>();
    stubs->channel = grpc::CreateCustomChannel(target, credentials, args);
    stubs->kv = etcdserverpb::KV::NewStub(stubs->channel);
    stubs->watch = etcdserverpb::Watch::NewStub(stubs->channel);
    stubs->lease = etcdserverpb::Lease::NewStub(stubs->channel);
    stubs->auth = etcdserverpb::Auth::NewStub(stubs->channel);
    stubs_.push_back(std::move(stubs));
  }
}

EtcdClient::Stubs& EtcdClient::stubs() {
  const size_t n = stubs_.size();
  if (n == 1) return *stubs_.front();
  // Several host names, one channel each. Calls wait for a connection
  // (wait_for_ready), so one sent to a member that is down would wait out
  // its deadline: pick a READY channel, waiting a little for one to
  // connect (try_to_connect starts every idle one); failing that, one not
  // known to be failing, else the next after the preferred one, so a
  // retrying caller walks the list.
  const absl::Time give_up =
      absl::Now() + std::min(options_.call_timeout / 2, absl::Seconds(1));
  const size_t start = preferred_.load();
  while (true) {
    size_t fallback = n;
    for (size_t i = 0; i < n; ++i) {
      const size_t at = (start + i) % n;
      const grpc_connectivity_state state =
          stubs_[at]->channel->GetState(/*try_to_connect=*/true);
      if (state == GRPC_CHANNEL_READY) {
        preferred_.store(at);
        return *stubs_[at];
      }
      if (fallback == n && state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
          state != GRPC_CHANNEL_SHUTDOWN) {
        fallback = at;
      }
    }
    const absl::Time now = absl::Now();
    if (now >= give_up) {
      if (fallback == n) fallback = (start + 1) % n;
      preferred_.store(fallback);
      return *stubs_[fallback];
    }
    // Wake on the preferred channel's next state change, or soon, to look
    // at all of them again.
    Stubs& watched = *stubs_[start % n];
    watched.channel->WaitForStateChange(
        watched.channel->GetState(false),
        absl::ToChronoTime(std::min(give_up, now + absl::Milliseconds(20))));
  }
}

EtcdClient::~EtcdClient() = default;

int64_t EtcdClient::authentications() const {
  absl::MutexLock lock(&auth_mu_);
  return authentications_;
}

absl::StatusOr<std::string> EtcdClient::Token(absl::Time deadline) {
  if (!options_.auth.enabled()) return std::string();
  {
    absl::MutexLock lock(&auth_mu_);
    // One Authenticate at a time: the others wait for its token.
    while (true) {
      if (token_.has_value()) return *token_;
      if (!authenticating_) break;
      if (!auth_mu_.AwaitWithDeadline(
              absl::Condition(this, &EtcdClient::TokenSettled), deadline)) {
        return absl::DeadlineExceededError(absl::StrCat(
            "etcd Authenticate as user \"", options_.auth.user,
            "\": timed out waiting for the authentication in flight"));
      }
    }
    authenticating_ = true;
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline);
  etcdserverpb::AuthenticateRequest req;
  req.set_name(options_.auth.user);
  req.set_password(options_.auth.password);
  etcdserverpb::AuthenticateResponse resp;
  const grpc::Status g = stubs().auth->Authenticate(&ctx, req, &resp);
  absl::MutexLock lock(&auth_mu_);
  authenticating_ = false;
  if (g.ok()) {
    token_ = resp.token();
    ++authentications_;
    return *token_;
  }
  if (g.error_message().find("authentication is not enabled") !=
      std::string::npos) {
    // Send no token until etcd asks for one (etcd's Go client does the
    // same): credentials can be configured before auth is enabled.
    token_ = std::string();
    return *token_;
  }
  const std::string what =
      absl::StrCat("etcd Authenticate as user \"", options_.auth.user,
                   "\": ", g.error_message());
  if (g.error_message().find("authentication failed") != std::string::npos) {
    // etcd says INVALID_ARGUMENT; the request was fine, the credentials
    // were not.
    return absl::UnauthenticatedError(
        absl::StrCat(what, " (check the user name and its password file)"));
  }
  return absl::Status(static_cast<absl::StatusCode>(g.error_code()), what);
}

void EtcdClient::DropToken(const std::string& stale) {
  absl::MutexLock lock(&auth_mu_);
  if (token_.has_value() && *token_ == stale) token_.reset();
}

absl::Status EtcdClient::PrepareContext(grpc::ClientContext* ctx,
                                        absl::Time deadline,
                                        std::string* token) {
  if (deadline != absl::InfiniteFuture()) {
    ctx->set_deadline(absl::ToChronoTime(deadline));
  }
  ctx->set_wait_for_ready(true);
  absl::StatusOr<std::string> t = Token(
      deadline != absl::InfiniteFuture() ? deadline
                                         : absl::Now() + options_.call_timeout);
  if (!t.ok()) return t.status();
  if (!t->empty()) ctx->AddMetadata("token", *t);
  *token = *std::move(t);
  return absl::OkStatus();
}

absl::Status EtcdClient::Unary(
    absl::Time deadline,
    absl::FunctionRef<absl::Status(Stubs&, grpc::ClientContext*)> call) {
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext ctx;
    std::string token;
    if (absl::Status s = PrepareContext(&ctx, deadline, &token); !s.ok()) {
      return s;
    }
    absl::Status s = call(stubs(), &ctx);
    if (attempt == 0 && options_.auth.enabled() && IsStaleToken(s)) {
      // etcd refuses the token before acting on the request, so even a
      // write is safe to send again.
      DropToken(token);
      continue;
    }
    return s;
  }
}

absl::StatusOr<absl::Duration> EtcdClient::KeepAliveOnce(
    int64_t id, absl::Duration timeout) {
  etcdserverpb::LeaseKeepAliveResponse resp;
  absl::Status s = Unary(
      absl::Now() + timeout, [&](Stubs& st, grpc::ClientContext* ctx) {
        auto stream = st.lease->LeaseKeepAlive(ctx);
        etcdserverpb::LeaseKeepAliveRequest req;
        req.set_id(id);
        if (!(stream->Write(req) && stream->WritesDone() &&
              stream->Read(&resp))) {
          absl::Status f = FromGrpc(stream->Finish(), "LeaseKeepAlive");
          return f.ok() ? absl::UnavailableError(
                              "etcd LeaseKeepAlive: stream ended early")
                        : f;
        }
        ctx->TryCancel();  // Done with the stream; its final status is moot.
        stream->Finish();
        return absl::OkStatus();
      });
  if (!s.ok()) return s;
  if (resp.ttl() <= 0) {
    return absl::NotFoundError(
        absl::StrCat("etcd LeaseKeepAlive: lease ", id, " not found"));
  }
  return absl::Seconds(resp.ttl());
}

absl::StatusOr<std::optional<KeyValue>> EtcdClient::Get(std::string_view key) {
  etcdserverpb::RangeRequest req;
  req.set_key(key.data(), key.size());
  etcdserverpb::RangeResponse resp;
  if (auto s = Unary(absl::Now() + options_.call_timeout,
                     [&](Stubs& st, grpc::ClientContext* ctx) {
                       return FromGrpc(st.kv->Range(ctx, req, &resp), "Range");
                     });
      !s.ok()) {
    return s;
  }
  if (resp.kvs_size() == 0) return std::optional<KeyValue>();
  return std::optional<KeyValue>(FromProto(resp.kvs(0)));
}

absl::StatusOr<RangeResult> EtcdClient::GetPrefix(std::string_view prefix,
                                                  int64_t limit) {
  etcdserverpb::RangeRequest req;
  req.set_key(prefix.empty() ? std::string(1, '\0') : std::string(prefix));
  req.set_range_end(PrefixEnd(prefix));
  req.set_limit(limit);
  etcdserverpb::RangeResponse resp;
  if (auto s = Unary(absl::Now() + options_.call_timeout,
                     [&](Stubs& st, grpc::ClientContext* ctx) {
                       return FromGrpc(st.kv->Range(ctx, req, &resp), "Range");
                     });
      !s.ok()) {
    return s;
  }
  RangeResult out;
  out.revision = resp.header().revision();
  out.more = resp.more();
  out.count = resp.count();
  for (const auto& kv : resp.kvs()) out.kvs.push_back(FromProto(kv));
  return out;
}

absl::StatusOr<int64_t> EtcdClient::Put(std::string_view key,
                                        std::string_view value, int64_t lease) {
  etcdserverpb::PutRequest req;
  req.set_key(key.data(), key.size());
  req.set_value(value.data(), value.size());
  req.set_lease(lease);
  etcdserverpb::PutResponse resp;
  if (auto s = Unary(absl::Now() + options_.call_timeout,
                     [&](Stubs& st, grpc::ClientContext* ctx) {
                       return FromGrpc(st.kv->Put(ctx, req, &resp), "Put");
                     });
      !s.ok()) {
    return s;
  }
  return resp.header().revision();
}

absl::StatusOr<int64_t> EtcdClient::Delete(std::string_view key) {
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(key.data(), key.size());
  etcdserverpb::DeleteRangeResponse resp;
  if (auto s = Unary(absl::Now() + options_.call_timeout,
                     [&](Stubs& st, grpc::ClientContext* ctx) {
                       return FromGrpc(st.kv->DeleteRange(ctx, req, &resp),
                                       "DeleteRange");
                     });
      !s.ok()) {
    return s;
  }
  return resp.deleted();
}

absl::StatusOr<int64_t> EtcdClient::DeletePrefix(std::string_view prefix) {
  if (prefix.empty()) {
    return absl::InvalidArgumentError(
        "DeletePrefix: an empty prefix would delete every key");
  }
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(prefix.data(), prefix.size());
  req.set_range_end(PrefixEnd(prefix));
  etcdserverpb::DeleteRangeResponse resp;
  if (auto s = Unary(absl::Now() + options_.call_timeout,
                     [&](Stubs& st, grpc::ClientContext* ctx) {
                       return FromGrpc(st.kv->DeleteRange(ctx, req, &resp),
                                       "DeleteRange");
                     });
      !s.ok()) {
    return s;
  }
  return resp.deleted();
}

absl::StatusOr<TxnResult> EtcdClient::Txn(const TxnRequest& request) {
  etcdserverpb::TxnRequest req;
  for (const Compare& c : request.compares) ToProto(c, req.add_compare());
  for (const TxnOp& op : request.success) ToProto(op, req.add_success());
  for (const TxnOp& op : request.failure) ToProto(op, req.add_failure());
  etcdserverpb::TxnResponse resp;
  if (auto s = Unary(absl::Now() + options_.call_timeout,
                     [&](Stubs& st, grpc::ClientContext* ctx) {
                       return FromGrpc(st.kv->Txn(ctx, req, &resp), "Txn");
                     });
      !s.ok()) {
    return s;
  }
  TxnResult out;
  out.succeeded = resp.succeeded();
  out.revision = resp.header().revision();
  for (const auto& r : resp.responses()) {
    TxnOpResult one;
    if (r.has_response_range()) {
      one.kind = TxnOp::Kind::kGet;
      for (const auto& kv : r.response_range().kvs()) {
        one.kvs.push_back(FromProto(kv));
      }
    } else if (r.has_response_put()) {
      one.kind = TxnOp::Kind::kPut;
    } else if (r.has_response_delete_range()) {
      one.kind = TxnOp::Kind::kDelete;
      one.deleted = r.response_delete_range().deleted();
    }
    out.results.push_back(std::move(one));
  }
  return out;
}

absl::Status EtcdClient::Compact(int64_t revision) {
  etcdserverpb::CompactionRequest req;
  req.set_revision(revision);
  // Wait until the compaction is applied, so a watch started after this
  // returns is told its start is compacted.
  req.set_physical(true);
  etcdserverpb::CompactionResponse resp;
  return Unary(absl::Now() + options_.call_timeout,
               [&](Stubs& st, grpc::ClientContext* ctx) {
                 return FromGrpc(st.kv->Compact(ctx, req, &resp), "Compact");
               });
}

absl::StatusOr<Lease> EtcdClient::LeaseGrant(absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("LeaseGrant: ttl must be positive");
  }
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(absl::ToInt64Seconds(absl::Ceil(ttl, absl::Seconds(1))));
  etcdserverpb::LeaseGrantResponse resp;
  if (auto s = Unary(absl::Now() + options_.call_timeout,
                     [&](Stubs& st, grpc::ClientContext* ctx) {
                       return FromGrpc(st.lease->LeaseGrant(ctx, req, &resp),
                                       "LeaseGrant");
                     });
      !s.ok()) {
    return s;
  }
  if (!resp.error().empty()) {
    return absl::UnavailableError(
        absl::StrCat("etcd LeaseGrant: ", resp.error()));
  }
  return Lease{resp.id(), absl::Seconds(resp.ttl())};
}

absl::Status EtcdClient::LeaseRevoke(int64_t id) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(id);
  etcdserverpb::LeaseRevokeResponse resp;
  return Unary(absl::Now() + options_.call_timeout,
               [&](Stubs& st, grpc::ClientContext* ctx) {
                 return FromGrpc(st.lease->LeaseRevoke(ctx, req, &resp),
                                 "LeaseRevoke");
               });
}

absl::StatusOr<absl::Duration> EtcdClient::LeaseKeepAliveOnce(int64_t id) {
  return KeepAliveOnce(id, options_.call_timeout);
}

absl::StatusOr<absl::Duration> EtcdClient::LeaseTimeToLive(int64_t id) {
  etcdserverpb::LeaseTimeToLiveRequest req;
  req.set_id(id);
  etcdserverpb::LeaseTimeToLiveResponse resp;
  if (auto s = Unary(absl::Now() + options_.call_timeout,
                     [&](Stubs& st, grpc::ClientContext* ctx) {
                       return FromGrpc(
                           st.lease->LeaseTimeToLive(ctx, req, &resp),
                           "LeaseTimeToLive");
                     });
      !s.ok()) {
    return s;
  }
  if (resp.ttl() < 0) {
    return absl::NotFoundError(
        absl::StrCat("etcd LeaseTimeToLive: lease ", id, " not found"));
  }
  return absl::Seconds(resp.ttl());
}

absl::Status EtcdClient::WaitForDeletion(std::string_view key,
                                         int64_t after_revision,
                                         absl::Time deadline) {
  return Unary(deadline, [&](Stubs& st, grpc::ClientContext* ctx) {
    auto stream = st.watch->Watch(ctx);
    etcdserverpb::WatchRequest req;
    auto* create = req.mutable_create_request();
    create->set_key(key.data(), key.size());
    create->set_start_revision(after_revision + 1);
    create->add_filters(etcdserverpb::WatchCreateRequest::NOPUT);
    bool deleted = false;
    absl::Status canceled;
    if (stream->Write(req)) {
      etcdserverpb::WatchResponse resp;
      while (!deleted && stream->Read(&resp)) {
        // Compacted: the deletion may be in the lost history; the caller
        // re-reads.
        if (resp.compact_revision() > 0) deleted = true;
        if (resp.canceled()) {
          if (!deleted) canceled = WatchCanceled(resp);
          break;
        }
        for (const auto& ev : resp.events()) {
          if (ev.type() == mvccpb::Event::DELETE) deleted = true;
        }
      }
    }
    if (deleted || !canceled.ok()) {
      // etcd keeps the stream open after cancelling a watch on it.
      ctx->TryCancel();
      stream->Finish();
      return canceled;
    }
    absl::Status f = FromGrpc(stream->Finish(), "Watch");
    return f.ok() ? absl::UnavailableError("etcd Watch: stream ended") : f;
  });
}

// --- LeaseKeeper. --------------------------------------------------------------

LeaseKeeper::LeaseKeeper(EtcdClient* client, Lease lease, LostCallback on_lost)
    : client_(client), lease_(lease), on_lost_(std::move(on_lost)) {
  {
    absl::MutexLock lock(&mu_);
    alive_until_ = absl::Now() + lease_.ttl;
  }
  thread_ = std::thread([this] { Run(); });
}

LeaseKeeper::~LeaseKeeper() { Stop(); }

void LeaseKeeper::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool LeaseKeeper::lost() const {
  absl::MutexLock lock(&mu_);
  return lost_;
}

int64_t LeaseKeeper::renewals() const {
  absl::MutexLock lock(&mu_);
  return renewals_;
}

absl::Time LeaseKeeper::alive_until() const {
  absl::MutexLock lock(&mu_);
  return alive_until_;
}

void LeaseKeeper::Run() {
  // A renewal must finish well within the TTL to be of any use.
  const absl::Duration period = lease_.ttl / 3;
  const absl::Duration timeout =
      std::min(client_->options().call_timeout, lease_.ttl / 2);
  const absl::Duration retry = std::min(period / 4, absl::Milliseconds(250));
  absl::Time next = absl::Now() + period;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(&stop_), next);
      if (stop_) return;
    }
    const absl::Time sent = absl::Now();
    const absl::StatusOr<absl::Duration> ttl =
        client_->KeepAliveOnce(lease_.id, timeout);
    absl::Status lost;
    {
      absl::MutexLock lock(&mu_);
      if (ttl.ok()) {
        ++renewals_;
        alive_until_ = sent + *ttl;
        next = sent + *ttl / 3;
        continue;
      }
      if (ttl.status().code() == absl::StatusCode::kNotFound) {
        lost = ttl.status();
      } else if (absl::Now() >= alive_until_) {
        lost = absl::DeadlineExceededError(absl::StrCat(
            "lease ", lease_.id, " may have expired: no renewal succeeded "
            "within its TTL; last error: ", ttl.status().ToString()));
      } else {
        next = std::min(absl::Now() + retry, alive_until_);
        continue;
      }
      lost_ = true;
    }
    on_lost_(lost);
    return;
  }
}

// --- Watcher. ------------------------------------------------------------------

struct Watcher::Stream {
  grpc::ClientContext ctx;
};

Watcher::Watcher(EtcdClient* client, std::string prefix,
                 int64_t start_revision, EventCallback on_event,
                 ErrorCallback on_error)
    : client_(client),
      prefix_(std::move(prefix)),
      on_event_(std::move(on_event)),
      on_error_(std::move(on_error)) {
  {
    absl::MutexLock lock(&mu_);
    next_revision_ = start_revision;
  }
  thread_ = std::thread([this] { Run(); });
}

Watcher::Watcher(EtcdClient* client, std::string prefix,
                 int64_t start_revision, EventCallback on_event,
                 ResyncCallback resync)
    : client_(client),
      prefix_(std::move(prefix)),
      on_event_(std::move(on_event)),
      resync_(std::move(resync)) {
  {
    absl::MutexLock lock(&mu_);
    next_revision_ = start_revision;
  }
  thread_ = std::thread([this] { Run(); });
}

Watcher::~Watcher() { Stop(); }

void Watcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (stream_ != nullptr) stream_->ctx.TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

int64_t Watcher::next_revision() const {
  absl::MutexLock lock(&mu_);
  return next_revision_;
}

int64_t Watcher::streams_opened() const {
  absl::MutexLock lock(&mu_);
  return streams_opened_;
}

bool Watcher::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

int64_t Watcher::resyncs() const {
  absl::MutexLock lock(&mu_);
  return resyncs_;
}

namespace {
constexpr absl::Duration kWatchMinBackoff = absl::Milliseconds(20);
constexpr absl::Duration kWatchMaxBackoff = absl::Seconds(1);
}  // namespace

void Watcher::Run() {
  absl::Duration backoff = kWatchMinBackoff;
  while (true) {
    const int64_t opened_before = streams_opened();
    absl::Status compacted;
    const StreamEnd end = RunStream(&compacted);
    if (end == StreamEnd::kStopped) return;
    if (end == StreamEnd::kCompacted) {
      if (!resync_) {
        on_error_(compacted);
        return;
      }
      if (!Resync()) return;
      backoff = kWatchMinBackoff;
      continue;  // Resume at once from the re-read revision.
    }
    absl::MutexLock lock(&mu_);
    // A stream that got as far as etcd's confirmation resets the backoff.
    if (streams_opened_ > opened_before && next_revision_ > 0) {
      backoff = kWatchMinBackoff;
    }
    mu_.AwaitWithTimeout(absl::Condition(&stop_), backoff);
    if (stop_) return;
    backoff = std::min(backoff * 2, kWatchMaxBackoff);
  }
}

bool Watcher::Resync() {
  absl::Duration backoff = kWatchMinBackoff;
  while (true) {
    const absl::StatusOr<int64_t> revision = resync_();
    absl::MutexLock lock(&mu_);
    if (stop_) return false;
    if (revision.ok()) {
      next_revision_ = *revision + 1;
      ++resyncs_;
      return true;
    }
    mu_.AwaitWithTimeout(absl::Condition(&stop_), backoff);
    if (stop_) return false;
    backoff = std::min(backoff * 2, kWatchMaxBackoff);
  }
}

Watcher::StreamEnd Watcher::RunStream(absl::Status* compacted) {
  auto stream = std::make_unique<Stream>();
  // No deadline: the stream lives until it breaks or Stop() cancels it.
  // Waiting for a connection makes a down etcd a wait, not a busy loop.
  // Failing to get a token (etcd unreachable, or refusing the password) is
  // a broken stream: retried with backoff.
  std::string token;
  if (!client_->PrepareContext(&stream->ctx, absl::InfiniteFuture(), &token)
           .ok()) {
    return StreamEnd::kBroken;
  }
  int64_t start;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return StreamEnd::kStopped;
    stream_ = stream.get();
    start = next_revision_;
  }
  auto rw = client_->stubs().watch->Watch(&stream->ctx);
  etcdserverpb::WatchRequest req;
  auto* create = req.mutable_create_request();
  create->set_key(prefix_.empty() ? std::string(1, '\0') : prefix_);
  create->set_range_end(PrefixEnd(prefix_));
  create->set_start_revision(start);
  absl::Status fatal;
  if (rw->Write(req)) {
    etcdserverpb::WatchResponse resp;
    while (rw->Read(&resp)) {
      if (resp.compact_revision() > 0) {
        fatal = absl::OutOfRangeError(absl::StrCat(
            "etcd Watch: revision ", start,
            " has been compacted; the oldest available is ",
            resp.compact_revision()));
        break;
      }
      if (resp.canceled()) {
        // Reconnect; if etcd refused the token, with a fresh one.
        if (IsStaleToken(WatchCanceled(resp))) client_->DropToken(token);
        break;
      }
      if (resp.created()) {
        absl::MutexLock lock(&mu_);
        ++streams_opened_;
        connected_ = true;
        if (next_revision_ == 0) next_revision_ = resp.header().revision() + 1;
      }
      for (const auto& ev : resp.events()) {
        WatchEvent event;
        event.type = ev.type() == mvccpb::Event::DELETE
                         ? WatchEvent::Type::kDelete
                         : WatchEvent::Type::kPut;
        event.kv = FromProto(ev.kv());
        on_event_(event);
      }
      if (resp.events_size() > 0) {
        absl::MutexLock lock(&mu_);
        next_revision_ =
            resp.events(resp.events_size() - 1).kv().mod_revision() + 1;
      }
    }
  }
  stream->ctx.TryCancel();
  if (IsStaleToken(FromGrpc(rw->Finish(), "Watch"))) {
    client_->DropToken(token);
  }
  bool stopped;
  {
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
    connected_ = false;
    stopped = stop_;
  }
  if (stopped) return StreamEnd::kStopped;
  if (!fatal.ok()) {
    *compacted = fatal;
    return StreamEnd::kCompacted;
  }
  return StreamEnd::kBroken;
}

// --- LeaderElection. -----------------------------------------------------------

LeaderElection::LeaderElection(EtcdClient* client, std::string key,
                               std::string candidate, int64_t lease_id)
    : client_(client),
      key_(std::move(key)),
      candidate_(std::move(candidate)),
      lease_id_(lease_id) {}

absl::StatusOr<int64_t> LeaderElection::Campaign(absl::Time deadline) {
  const absl::Duration kRetry = absl::Milliseconds(50);
  while (true) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("campaign for ", key_, ": deadline passed"));
    }
    TxnRequest txn;
    txn.compares.push_back(Compare::Absent(key_));
    txn.success.push_back(TxnOp::Put(key_, candidate_, lease_id_));
    txn.failure.push_back(TxnOp::Get(key_));
    absl::StatusOr<TxnResult> r = client_->Txn(txn);
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kNotFound) return r.status();
      // Transient (etcd unreachable, or a call timed out): try again.
      absl::SleepFor(std::min(kRetry, deadline - absl::Now()));
      continue;
    }
    if (r->succeeded) return r->revision;
    if (r->results.empty() || r->results[0].kvs.empty()) continue;
    const KeyValue& holder = r->results[0].kvs[0];
    if (holder.lease == lease_id_) return holder.create_revision;
    const absl::Status s =
        client_->WaitForDeletion(key_, holder.mod_revision, deadline);
    if (!s.ok() && s.code() != absl::StatusCode::kDeadlineExceeded) {
      absl::SleepFor(std::min(kRetry, deadline - absl::Now()));
    }
  }
}

absl::Status LeaderElection::Resign(int64_t term) {
  TxnRequest txn;
  txn.compares.push_back(Compare::CreateRevisionIs(key_, term));
  txn.success.push_back(TxnOp::Delete(key_));
  absl::StatusOr<TxnResult> r = client_->Txn(txn);
  if (!r.ok()) return r.status();
  if (!r->succeeded) {
    return absl::FailedPreconditionError(
        absl::StrCat("resign ", key_, ": term ", term, " is not current"));
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyValue> LeaderElection::Leader() {
  absl::StatusOr<std::optional<KeyValue>> kv = client_->Get(key_);
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) {
    return absl::NotFoundError(absl::StrCat("no leader on ", key_));
  }
  return **kv;
}

}  // namespace strata::cluster
