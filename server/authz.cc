#include "server/authz.h"

#include <chrono>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpc/grpc_security_constants.h"
#include "server/handlers.h"
#include "server/txn.h"
#include "spdlog/spdlog.h"
#include "strata/v1/kv.pb.h"

namespace strata::server {
namespace {

// ---- What each RPC needs -------------------------------------------------

class Needs {
 public:
  explicit Needs(std::vector<AccessNeed>* out) : out_(out) {}
  void Add(Permission p, std::string_view ns) {
    const AccessNeed need{p, ns};
    if (out_->empty() || !(out_->back() == need)) out_->push_back(need);
  }
  // A part that names no namespace is in the request's.
  void Add(Permission p, std::string_view own, std::string_view request_ns) {
    Add(p, own.empty() ? request_ns : own);
  }

 private:
  std::vector<AccessNeed>* const out_;
};

void MutationNeeds(
    const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations,
    std::string_view request_ns, Needs* needs) {
  for (std::string_view ns : MutationNamespaces(mutations)) {
    needs->Add(Permission::kWrite, ns, request_ns);
  }
}

void OpNeeds(const v1::RequestOp& op, std::string_view request_ns,
             Needs* needs) {
  const std::string_view ns = OpNamespace(op);
  switch (op.request_case()) {
    case v1::RequestOp::kGet:
    case v1::RequestOp::kScan:
    case v1::RequestOp::kJsonGet:
      needs->Add(Permission::kRead, ns, request_ns);
      return;
    case v1::RequestOp::kPut:
    case v1::RequestOp::kDelete:
      needs->Add(Permission::kWrite, ns, request_ns);
      return;
    case v1::RequestOp::kIncrement:
    case v1::RequestOp::kJsonUpdate:
      needs->Add(Permission::kRead, ns, request_ns);
      needs->Add(Permission::kWrite, ns, request_ns);
      return;
    case v1::RequestOp::REQUEST_NOT_SET:
      return;  // PrepareTxn refuses it (INVALID_ARGUMENT).
  }
}

// Rule bodies, typed; Entry<Req, Fn> erases the type.
template <class Req>
using TypedRule = void (*)(const Req&, Needs*);

template <class Req, TypedRule<Req> kFn>
void Erased(const google::protobuf::Message& request,
            std::vector<AccessNeed>* out) {
  Needs needs(out);
  // The registry only pairs a rule with its own request type (KvAccessRule
  // compares descriptors), so the cast is safe.
  kFn(static_cast<const Req&>(request), &needs);
}

// Requests with one `namespace_()` and one permission.
template <class Req, Permission kP>
void OnOwnNamespace(const Req& r, Needs* n) {
  n->Add(kP, r.namespace_());
}
template <class Req>
void ReadWriteOwn(const Req& r, Needs* n) {
  n->Add(Permission::kRead, r.namespace_());
  n->Add(Permission::kWrite, r.namespace_());
}
template <class Req, Permission kP>
void OnDefault(const Req&, Needs* n) {
  n->Add(kP, "");
}
template <class Req>
void AdminOnName(const Req& r, Needs* n) {
  n->Add(Permission::kAdmin, r.name());
}
template <class Req>
void AdminOnNode(const Req&, Needs* n) {
  n->Add(Permission::kAdmin, AuthzPolicy::kWholeNode);
}
template <class Req>
void Nothing(const Req&, Needs*) {}

void WriteRule(const v1::WriteRequest& r, Needs* n) {
  MutationNeeds(r.mutations(), r.namespace_(), n);
}
void DeleteRangeRule(const v1::DeleteRangeRequest& r, Needs* n) {
  if (r.prev_kv()) n->Add(Permission::kRead, r.namespace_());
  n->Add(Permission::kWrite, r.namespace_());
}
void TxnRule(const v1::TxnRequest& r, Needs* n) {
  for (const v1::Compare& c : r.compare()) {
    n->Add(Permission::kRead, c.namespace_(), r.namespace_());
  }
  for (const auto* branch : {&r.success(), &r.failure()}) {
    for (const v1::RequestOp& op : *branch) OpNeeds(op, r.namespace_(), n);
  }
}
// A whole-node backup reads every namespace and the node's own metadata;
// a backup of one namespace (BackupRequest.namespace) reads only that
// namespace and what belongs to it, so admin on it is enough.
void BackupRule(const v1::BackupRequest& r, Needs* n) {
  n->Add(Permission::kAdmin,
         r.namespace_().empty() ? AuthzPolicy::kWholeNode : r.namespace_());
}
void CommitRule(const v1::CommitRequest& r, Needs* n) {
  if (!r.read_keys().empty() || !r.read_ranges().empty()) {
    n->Add(Permission::kRead, r.namespace_());
  }
  MutationNeeds(r.mutations(), r.namespace_(), n);
}

struct RuleEntry {
  const google::protobuf::Descriptor* request;
  AccessRule rule;
};

template <class Req, TypedRule<Req> kFn>
std::pair<std::string_view, RuleEntry> Entry(std::string_view method) {
  return {method, RuleEntry{Req::descriptor(), &Erased<Req, kFn>}};
}

constexpr Permission kR = Permission::kRead;
constexpr Permission kW = Permission::kWrite;

// Every method of strata.v1.KV. A new RPC needs a line here (authz_test
// fails until it has one; the server refuses it under a policy).
const absl::flat_hash_map<std::string_view, RuleEntry>& RuleTable() {
  using namespace v1;  // NOLINT: the table reads better without prefixes.
  static const auto* table =
      new absl::flat_hash_map<std::string_view, RuleEntry>{
          Entry<GetRequest, OnOwnNamespace<GetRequest, kR>>("Get"),
          Entry<PutRequest, OnOwnNamespace<PutRequest, kW>>("Put"),
          Entry<DeleteRequest, OnOwnNamespace<DeleteRequest, kW>>("Delete"),
          Entry<ScanRequest, OnOwnNamespace<ScanRequest, kR>>("Scan"),
          Entry<WriteRequest, WriteRule>("Write"),
          Entry<WatchRequest, OnOwnNamespace<WatchRequest, kR>>("Watch"),
          Entry<CompactRequest, AdminOnNode<CompactRequest>>("Compact"),
          Entry<BatchGetRequest, OnOwnNamespace<BatchGetRequest, kR>>(
              "BatchGet"),
          Entry<DeleteRangeRequest, DeleteRangeRule>("DeleteRange"),
          Entry<TxnRequest, TxnRule>("Txn"),
          Entry<CommitRequest, CommitRule>("Commit"),
          Entry<IncrementRequest, ReadWriteOwn<IncrementRequest>>(
              "Increment"),
          Entry<JsonGetRequest, OnOwnNamespace<JsonGetRequest, kR>>(
              "JsonGet"),
          Entry<JsonUpdateRequest, ReadWriteOwn<JsonUpdateRequest>>(
              "JsonUpdate"),
          Entry<LeaseGrantRequest, OnDefault<LeaseGrantRequest, kW>>(
              "LeaseGrant"),
          Entry<LeaseRevokeRequest, OnDefault<LeaseRevokeRequest, kW>>(
              "LeaseRevoke"),
          Entry<LeaseKeepAliveRequest, OnDefault<LeaseKeepAliveRequest, kW>>(
              "LeaseKeepAlive"),
          Entry<LeaseTimeToLiveRequest,
                OnDefault<LeaseTimeToLiveRequest, kR>>("LeaseTimeToLive"),
          Entry<LeaseLeasesRequest, OnDefault<LeaseLeasesRequest, kR>>(
              "LeaseLeases"),
          Entry<BackupRequest, BackupRule>("Backup"),
          Entry<CreateNamespaceRequest, AdminOnName<CreateNamespaceRequest>>(
              "CreateNamespace"),
          Entry<DeleteNamespaceRequest, AdminOnName<DeleteNamespaceRequest>>(
              "DeleteNamespace"),
          Entry<ListNamespacesRequest, Nothing<ListNamespacesRequest>>(
              "ListNamespaces"),
          Entry<UpdateNamespaceRequest, AdminOnName<UpdateNamespaceRequest>>(
              "UpdateNamespace"),
      };
  return *table;
}

// ---- Messages --------------------------------------------------------------

std::string NamespaceForHumans(std::string_view ns) {
  if (ns.empty()) return "the default namespace (\"\")";
  if (ns == AuthzPolicy::kWholeNode) return "the whole node (namespace \"*\")";
  return "namespace \"" + std::string(ns) + "\"";
}

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

AccessRule KvAccessRule(std::string_view method,
                        const google::protobuf::Descriptor* request) {
  const auto& table = RuleTable();
  auto it = table.find(method);
  if (it == table.end() || it->second.request != request) return nullptr;
  return it->second.rule;
}

ClientIdentity IdentityOf(const grpc::ServerContext& context) {
  ClientIdentity id;
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return id;
  id.authenticated = true;
  for (const grpc::string_ref& v :
       auth->FindPropertyValues(GRPC_X509_SAN_PROPERTY_NAME)) {
    id.sans.emplace_back(v.data(), v.size());
  }
  for (const grpc::string_ref& v :
       auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
    id.common_name.assign(v.data(), v.size());
    break;
  }
  return id;
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(
    std::string policy_file, RpcObserver* observer) {
  absl::StatusOr<std::string> bytes = ReadAuthzPolicyFile(policy_file);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<AuthzPolicy> policy =
      ParseAuthzPolicyFile(policy_file, *bytes);
  if (!policy.ok()) return policy.status();
  spdlog::info("authorization: policy {} with {} grant(s); every KV RPC is "
               "checked against it",
               policy_file, policy->num_grants());
  return std::unique_ptr<Authorizer>(new Authorizer(
      std::move(policy_file), observer,
      std::make_shared<const AuthzPolicy>(*std::move(policy)),
      *std::move(bytes)));
}

Authorizer::Authorizer(std::string policy_file, RpcObserver* observer,
                       std::shared_ptr<const AuthzPolicy> policy,
                       std::string bytes)
    : policy_file_(std::move(policy_file)),
      observer_(observer),
      policy_(std::move(policy)),
      last_bytes_(std::move(bytes)) {}

Authorizer::~Authorizer() { Stop(); }

std::shared_ptr<const AuthzPolicy> Authorizer::policy() const {
  absl::ReaderMutexLock lock(&mu_);
  return policy_;
}

absl::Status Authorizer::Check(std::string_view method, AccessRule rule,
                               const grpc::ServerContext& context,
                               const google::protobuf::Message& request) const {
  if (rule == nullptr) {
    const std::string message = absl::StrFormat(
        "permission denied: %s has no authorization rule in this server, so "
        "it is refused while --authz_policy is set",
        std::string(method));
    observer_->OnAuthzDenied(method, "admin");
    LogDenial(message);
    return absl::PermissionDeniedError(message);
  }
  std::vector<AccessNeed> needs;
  rule(request, &needs);
  if (needs.empty()) return absl::OkStatus();
  const std::shared_ptr<const AuthzPolicy> policy = this->policy();
  const ClientIdentity who = IdentityOf(context);
  for (const AccessNeed& need : needs) {
    if (policy->Allows(who, need.ns, need.permission)) continue;
    const std::string message = absl::StrFormat(
        "permission denied: client \"%s\" has no \"%s\" grant on %s (%s; "
        "authorization policy)",
        who.DisplayName(), std::string(PermissionName(need.permission)),
        NamespaceForHumans(need.ns), std::string(method));
    observer_->OnAuthzDenied(method, PermissionName(need.permission));
    LogDenial(message);
    return absl::PermissionDeniedError(message);
  }
  return absl::OkStatus();
}

std::function<bool(std::string_view)> Authorizer::NamespaceFilter(
    const grpc::ServerContext& context) const {
  return [policy = this->policy(), who = IdentityOf(context)](
             std::string_view ns) { return policy->AnyGrant(who, ns); };
}

void Authorizer::LogDenial(const std::string& message) const {
  const int64_t now = SteadyNanos();
  int64_t next = next_log_ns_.load(std::memory_order_relaxed);
  if (now < next || !next_log_ns_.compare_exchange_strong(
                        next, now + 1'000'000'000, std::memory_order_relaxed)) {
    unlogged_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const uint64_t skipped = unlogged_.exchange(0, std::memory_order_relaxed);
  if (skipped > 0) {
    spdlog::warn("authorization: {} ({} more denial(s) not logged in the "
                 "last second; see strata_authz_denials_total)",
                 message, skipped);
  } else {
    spdlog::warn("authorization: {}", message);
  }
}

absl::Status Authorizer::ReloadNow() {
  absl::MutexLock lock(&reload_mu_);
  absl::StatusOr<std::string> bytes = ReadAuthzPolicyFile(policy_file_);
  if (bytes.ok() ? last_bytes_ == *bytes
                 : last_error_ == bytes.status().message()) {
    // Nothing new: the same policy, or the same problem already reported
    // (returned again, not counted again).
    if (!bytes.ok()) return bytes.status();
    return last_error_.empty() ? absl::OkStatus()
                               : absl::InvalidArgumentError(last_error_);
  }
  absl::StatusOr<AuthzPolicy> policy =
      bytes.ok() ? ParseAuthzPolicyFile(policy_file_, *bytes)
                 : absl::StatusOr<AuthzPolicy>(bytes.status());
  last_bytes_ = bytes.ok() ? std::optional<std::string>(*bytes) : std::nullopt;
  if (!policy.ok()) {
    last_error_ = std::string(policy.status().message());
    observer_->OnAuthzPolicyReload(false);
    spdlog::error("authorization: reload failed, keeping the policy in "
                  "force: {}",
                  last_error_);
    return policy.status();
  }
  last_error_.clear();
  const size_t grants = policy->num_grants();
  {
    absl::MutexLock l(&mu_);
    policy_ = std::make_shared<const AuthzPolicy>(*std::move(policy));
  }
  observer_->OnAuthzPolicyReload(true);
  spdlog::info("authorization: reloaded {} ({} grant(s)); in force from the "
               "next RPC",
               policy_file_, grants);
  return absl::OkStatus();
}

void Authorizer::StartReloading(absl::Duration interval) {
  if (interval <= absl::ZeroDuration() || reloader_.joinable()) return;
  reloader_ = std::thread([this, interval] {
    for (;;) {
      {
        absl::MutexLock lock(&stop_mu_);
        if (stop_mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) {
          return;
        }
      }
      (void)ReloadNow();  // Logs and counts its own failures.
    }
  });
}

void Authorizer::Stop() {
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;
  }
  if (reloader_.joinable()) reloader_.join();
}

}  // namespace strata::server
