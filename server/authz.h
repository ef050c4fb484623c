#ifndef STRATA_SERVER_AUTHZ_H_
#define STRATA_SERVER_AUTHZ_H_

// Enforcement of the authorization policy (authz_policy.h,
// docs/security.md "Authorization"): the one check every strata.v1.KV RPC
// passes before its handler runs (AsyncCall::Started calls Check), the
// table of what each RPC needs (KvAccessRule), the client identity of a
// connection, and the periodic reload of the policy file.
//
// What each RPC needs (every namespace it names, "" = the default one):
//   read   Get, BatchGet, Scan, Watch, JsonGet; a Txn's compares and its
//          get/scan/json_get ops; a Commit with read_keys or read_ranges
//          (its conflict check reveals whether they changed);
//          LeaseTimeToLive, LeaseLeases (on the default namespace: leases
//          are node-wide)
//   write  Put, Delete, Write (each mutation's namespace), DeleteRange; a
//          Txn's put/delete ops (both branches: which one runs is not
//          known before the check); a Commit's mutations; LeaseGrant,
//          LeaseRevoke, LeaseKeepAlive (on the default namespace)
//   read+write  Increment, JsonUpdate, a Txn's increment/json_update ops,
//          DeleteRange with prev_kv (they return what they wrote over)
//   admin  CreateNamespace, DeleteNamespace, UpdateNamespace (on the name);
//          Compact and Backup on the whole node (a grant for "*")
//   none   ListNamespaces: any authenticated client; the answer lists only
//          the namespaces the caller holds some grant on (NamespaceFilter)
// A KV method missing from the table is refused for everyone while a
// policy is set (fail closed); authz_test checks the table covers the
// proto. Methods of other services (grpc.health.v1) are not checked.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/server_context.h"
#include "server/authz_policy.h"
#include "server/rpc_observer.h"

namespace strata::server {

// One permission a request needs on one namespace (a view into the
// request, or AuthzPolicy::kWholeNode).
struct AccessNeed {
  Permission permission;
  std::string_view ns;
  bool operator==(const AccessNeed&) const = default;
};

// Fills `out` with what `request` (of the method the rule belongs to)
// needs; duplicates are allowed (a push equal to the last is skipped).
using AccessRule = void (*)(const google::protobuf::Message& request,
                            std::vector<AccessNeed>* out);

// The rule of strata.v1.KV's method `method` ("Get") if the table has one
// for `request` (the method's request type), else nullptr.
AccessRule KvAccessRule(std::string_view method,
                        const google::protobuf::Descriptor* request);

// The identities a connection's verified client certificate proves.
ClientIdentity IdentityOf(const grpc::ServerContext& context);

// Holds the policy in force and checks RPCs against it.
//
// Thread safety: Check and NamespaceFilter run concurrently on every
// polling thread; ReloadNow and the reload thread swap the policy under a
// mutex (readers take it shared for a pointer copy).
class Authorizer {
 public:
  // Reads `policy_file` (InvalidArgument naming --authz_policy and the
  // file if it is unreadable or invalid). `observer` (not null) hears of
  // denials and reloads and must outlive the Authorizer.
  static absl::StatusOr<std::unique_ptr<Authorizer>> Create(
      std::string policy_file, RpcObserver* observer);
  ~Authorizer();
  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  // OK if the caller of `context` holds everything `rule` says `request`
  // needs; otherwise PERMISSION_DENIED naming the identity, the permission
  // and the namespace refused (never anything about keys), counted
  // (OnAuthzDenied) and logged at most once a second. A null rule (a KV
  // method without one) is refused. Runs on a polling thread; no I/O.
  absl::Status Check(std::string_view method, AccessRule rule,
                     const grpc::ServerContext& context,
                     const google::protobuf::Message& request) const;

  // For ListNamespaces: whether the caller of `context` holds any grant on
  // a namespace, by the policy in force now. The function keeps its own
  // copy of the policy and identity; call it from any thread.
  std::function<bool(std::string_view ns)> NamespaceFilter(
      const grpc::ServerContext& context) const;

  // Re-reads the file. Unchanged bytes: nothing happens (the status of the
  // last change is returned again, uncounted). A valid new
  // policy takes effect for the next RPC (on every connection) and counts
  // as a reload with result "ok"; an unreadable or invalid file is logged,
  // counted as "error", and the policy in force is kept. Returns what the
  // reload found. Thread-safe.
  absl::Status ReloadNow();

  // Starts a thread that calls ReloadNow every `interval` (no thread if
  // interval <= 0). Stop() ends it; the destructor calls Stop.
  void StartReloading(absl::Duration interval);
  void Stop();

  const std::string& policy_file() const { return policy_file_; }

 private:
  Authorizer(std::string policy_file, RpcObserver* observer,
             std::shared_ptr<const AuthzPolicy> policy, std::string bytes);
  std::shared_ptr<const AuthzPolicy> policy() const;
  void LogDenial(const std::string& message) const;

  const std::string policy_file_;
  RpcObserver* const observer_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const AuthzPolicy> policy_ ABSL_GUARDED_BY(mu_);

  // Serializes ReloadNow; what the file held at the last read (nullopt:
  // unreadable) and the problem last reported ("" none).
  absl::Mutex reload_mu_;
  std::optional<std::string> last_bytes_ ABSL_GUARDED_BY(reload_mu_);
  std::string last_error_ ABSL_GUARDED_BY(reload_mu_);
  // The reload thread and its stop signal.
  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread reloader_;

  // Denial log rate limit: the steady-clock time (ns) before which no line
  // is logged, and the denials not logged since the last line.
  mutable std::atomic<int64_t> next_log_ns_{0};
  mutable std::atomic<uint64_t> unlogged_{0};
};

}  // namespace strata::server

#endif  // STRATA_SERVER_AUTHZ_H_
