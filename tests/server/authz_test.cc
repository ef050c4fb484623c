// Authorization (server/authz.h, docs/security.md "Authorization") on a
// real server with mutual TLS and real client certificates from a test CA:
// the matrix identity x namespace x every RPC of strata.v1.KV (taken from
// the proto's service descriptor, so a new RPC without a case here fails),
// ListNamespaces filtering, the health service staying open, policy
// reloads while a client stays connected, and the start-up refusals.
//
// Identities (certificates made once per binary with openssl):
//   svc-a   SAN URI spiffe://strata.test/svc-a
//   svc-b   SAN DNS svc-b.example
//   ops     no SAN, CN=ops-admin
//   client  gen-test-certs.sh's client (CN=strata-client): no grant of its
//           own, only the policy's "*" identity

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "server/authz.h"
#include "server/metrics/rpc_metrics.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/server/process_util.h"
#include "tests/server/test_pki.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using server::Permission;
using server::ServerOptions;

// ---- Certificates ----------------------------------------------------------

// gen-test-certs.sh's files plus client certificates with the identities
// the policy names, signed by the same CA; made once per binary.
constexpr char kClientCertsScript[] = R"sh(set -euo pipefail
cd "$1"
leaf() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -noenc \
    -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth" \
    "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key \
    -set_serial "0x$(openssl rand -hex 16)" -days 2 -out "$1.crt" \
    -extfile "$1.ext" 2>/dev/null
}
leaf svc-a /CN=svc-a-cn "subjectAltName=URI:spiffe://strata.test/svc-a"
leaf svc-b /CN=svc-b-cn "subjectAltName=DNS:svc-b.example"
leaf ops /CN=ops-admin ""
)sh";

const TestPki& Pki() {
  static TestPki* pki = new TestPki(kClientCertsScript);
  return *pki;
}

// ---- The policy and what it grants ------------------------------------------

constexpr char kPolicy[] = R"({"version": 1, "grants": [
  {"identity": "spiffe://strata.test/svc-a",
   "namespaces": ["team/a", "team/a/*"], "permissions": ["read", "write"]},
  {"identity": "svc-b.example", "namespaces": ["team/a"],
   "permissions": ["read"]},
  {"identity": "svc-b.example", "namespaces": ["team/b", "team/b/*"],
   "permissions": ["read", "write", "admin"]},
  {"identity": "CN=ops-admin", "namespaces": ["*"],
   "permissions": ["read", "write", "admin"]},
  {"identity": "*", "namespaces": [""], "permissions": ["read"]}
]})";

const std::vector<std::string>& Identities() {
  static const auto* ids =
      new std::vector<std::string>{"svc-a", "svc-b", "ops", "client"};
  return *ids;
}
// Rows of the matrix: the default namespace and three named ones.
const std::vector<std::string>& Rows() {
  static const auto* rows =
      new std::vector<std::string>{"", "team/a", "team/a/x", "team/b"};
  return *rows;
}

bool Under(std::string_view ns, std::string_view name) {
  return ns == name || ns.substr(0, name.size() + 1) == std::string(name) + "/";
}

// kPolicy, written out by hand: the specification the server must meet.
// `ns` "*" is the whole node.
bool Granted(const std::string& who, std::string_view ns, Permission p) {
  if (who == "ops") return true;
  if (ns == "*") return false;
  if (ns.empty()) return p == Permission::kRead;
  if (who == "svc-a") return Under(ns, "team/a") && p != Permission::kAdmin;
  if (who == "svc-b") {
    if (ns == "team/a") return p == Permission::kRead;
    return Under(ns, "team/b");
  }
  return false;
}

// ---- The RPCs ---------------------------------------------------------------

// Where a need applies, for a matrix row `row`.
enum class Target {
  kRow,       // The row's namespace.
  kAdminRow,  // "<row>/victim" ("victim" for the default row): admin RPCs.
  kDefault,   // The default namespace (leases).
  kNode,      // The whole node (Compact, Backup).
};
std::string TargetNamespace(Target t, const std::string& row) {
  switch (t) {
    case Target::kRow:
      return row;
    case Target::kAdminRow:
      return row.empty() ? "victim" : row + "/victim";
    case Target::kDefault:
      return "";
    case Target::kNode:
      return "*";
  }
  return "?";
}

using Stub = v1::KV::Stub;
struct Env {
  Stub* stub;
  storage::DB* db;
};
using CallFn = std::function<grpc::Status(const Env&, const std::string& row,
                                          grpc::ClientContext*)>;

struct Case {
  std::vector<std::pair<Permission, Target>> needs;
  CallFn call;
};

template <class Resp>
grpc::Status DrainStream(grpc::ClientReader<Resp>* reader) {
  Resp r;
  while (reader->Read(&r)) {
  }
  return reader->Finish();
}

// Reads one message of an endless (or long) stream, then cancels it.
template <class Resp>
grpc::Status FirstMessage(grpc::ClientContext* ctx,
                          grpc::ClientReader<Resp>* reader) {
  Resp r;
  if (reader->Read(&r)) {
    ctx->TryCancel();
    while (reader->Read(&r)) {
    }
    grpc::Status s = reader->Finish();
    return s.error_code() == grpc::StatusCode::CANCELLED ? grpc::Status::OK
                                                         : s;
  }
  return reader->Finish();
}

constexpr auto R = Permission::kRead;
constexpr auto W = Permission::kWrite;
constexpr auto A = Permission::kAdmin;

// One case per RPC of strata.v1.KV: what it needs, and a request for a
// row that succeeds (or fails for another reason than authorization)
// when allowed.
std::map<std::string, Case> Cases() {
  std::map<std::string, Case> c;
  c["Get"] = {{{R, Target::kRow}}, [](const Env& e, const std::string& ns,
                                      grpc::ClientContext* ctx) {
                v1::GetRequest req;
                req.set_key("k");
                req.set_namespace_(ns);
                v1::GetResponse resp;
                return e.stub->Get(ctx, req, &resp);
              }};
  c["Put"] = {{{W, Target::kRow}}, [](const Env& e, const std::string& ns,
                                      grpc::ClientContext* ctx) {
                v1::PutRequest req;
                req.set_key("p");
                req.set_value("x");
                req.set_namespace_(ns);
                v1::PutResponse resp;
                return e.stub->Put(ctx, req, &resp);
              }};
  c["Delete"] = {{{W, Target::kRow}}, [](const Env& e, const std::string& ns,
                                         grpc::ClientContext* ctx) {
                   v1::DeleteRequest req;
                   req.set_key("p");
                   req.set_namespace_(ns);
                   v1::DeleteResponse resp;
                   return e.stub->Delete(ctx, req, &resp);
                 }};
  c["Scan"] = {{{R, Target::kRow}}, [](const Env& e, const std::string& ns,
                                       grpc::ClientContext* ctx) {
                 v1::ScanRequest req;
                 req.set_namespace_(ns);
                 auto reader = e.stub->Scan(ctx, req);
                 return DrainStream(reader.get());
               }};
  // The namespace on the mutation, not the request: each mutation counts.
  c["Write"] = {{{W, Target::kRow}}, [](const Env& e, const std::string& ns,
                                        grpc::ClientContext* ctx) {
                  v1::WriteRequest req;
                  v1::PutRequest* put = req.add_mutations()->mutable_put();
                  put->set_key("w");
                  put->set_value("x");
                  put->set_namespace_(ns);
                  v1::WriteResponse resp;
                  return e.stub->Write(ctx, req, &resp);
                }};
  c["Watch"] = {{{R, Target::kRow}}, [](const Env& e, const std::string& ns,
                                        grpc::ClientContext* ctx) {
                  v1::WatchRequest req;
                  req.set_key("k");
                  req.set_start_revision(1);  // History: a message at once.
                  req.set_namespace_(ns);
                  auto reader = e.stub->Watch(ctx, req);
                  return FirstMessage(ctx, reader.get());
                }};
  c["Compact"] = {{{A, Target::kNode}}, [](const Env& e, const std::string&,
                                           grpc::ClientContext* ctx) {
                    v1::CompactRequest req;
                    req.set_revision(
                        static_cast<int64_t>(e.db->CurrentRevision()));
                    v1::CompactResponse resp;
                    return e.stub->Compact(ctx, req, &resp);
                  }};
  c["BatchGet"] = {{{R, Target::kRow}}, [](const Env& e, const std::string& ns,
                                           grpc::ClientContext* ctx) {
                     v1::BatchGetRequest req;
                     req.add_keys("k");
                     req.set_namespace_(ns);
                     v1::BatchGetResponse resp;
                     return e.stub->BatchGet(ctx, req, &resp);
                   }};
  c["DeleteRange"] = {{{W, Target::kRow}},
                      [](const Env& e, const std::string& ns,
                         grpc::ClientContext* ctx) {
                        v1::DeleteRangeRequest req;
                        req.set_start_key("dr0");
                        req.set_end_key("dr9");
                        req.set_namespace_(ns);
                        v1::DeleteRangeResponse resp;
                        return e.stub->DeleteRange(ctx, req, &resp);
                      }};
  // A compare (read) and a put in the branch that runs (write).
  c["Txn"] = {{{R, Target::kRow}, {W, Target::kRow}},
              [](const Env& e, const std::string& ns,
                 grpc::ClientContext* ctx) {
                v1::TxnRequest req;
                req.set_namespace_(ns);
                v1::Compare* cmp = req.add_compare();
                cmp->set_key("absent");
                cmp->set_target(v1::Compare::VERSION);
                cmp->set_result(v1::Compare::EQUAL);
                cmp->set_version(0);
                v1::PutRequest* put = req.add_success()->mutable_put();
                put->set_key("t");
                put->set_value("x");
                v1::TxnResponse resp;
                return e.stub->Txn(ctx, req, &resp);
              }};
  c["Commit"] = {{{R, Target::kRow}, {W, Target::kRow}},
                 [](const Env& e, const std::string& ns,
                    grpc::ClientContext* ctx) {
                   v1::CommitRequest req;
                   req.set_namespace_(ns);
                   req.set_read_revision(
                       static_cast<int64_t>(e.db->CurrentRevision()));
                   req.add_read_keys("k");
                   v1::PutRequest* put = req.add_mutations()->mutable_put();
                   put->set_key("c");
                   put->set_value("x");
                   v1::CommitResponse resp;
                   return e.stub->Commit(ctx, req, &resp);
                 }};
  c["Increment"] = {{{R, Target::kRow}, {W, Target::kRow}},
                    [](const Env& e, const std::string& ns,
                       grpc::ClientContext* ctx) {
                      v1::IncrementRequest req;
                      req.set_key("ctr");
                      req.set_delta(1);
                      req.set_namespace_(ns);
                      v1::IncrementResponse resp;
                      return e.stub->Increment(ctx, req, &resp);
                    }};
  c["JsonGet"] = {{{R, Target::kRow}}, [](const Env& e, const std::string& ns,
                                          grpc::ClientContext* ctx) {
                    v1::JsonGetRequest req;
                    req.set_key("json");
                    req.set_namespace_(ns);
                    v1::JsonGetResponse resp;
                    return e.stub->JsonGet(ctx, req, &resp);
                  }};
  c["JsonUpdate"] = {{{R, Target::kRow}, {W, Target::kRow}},
                     [](const Env& e, const std::string& ns,
                        grpc::ClientContext* ctx) {
                       v1::JsonUpdateRequest req;
                       req.set_key("json");
                       req.set_merge_patch(R"({"b":2})");
                       req.set_namespace_(ns);
                       v1::JsonUpdateResponse resp;
                       return e.stub->JsonUpdate(ctx, req, &resp);
                     }};
  c["LeaseGrant"] = {{{W, Target::kDefault}},
                     [](const Env& e, const std::string&,
                        grpc::ClientContext* ctx) {
                       v1::LeaseGrantRequest req;
                       req.set_ttl_seconds(600);
                       v1::LeaseGrantResponse resp;
                       return e.stub->LeaseGrant(ctx, req, &resp);
                     }};
  c["LeaseRevoke"] = {{{W, Target::kDefault}},
                      [](const Env& e, const std::string&,
                         grpc::ClientContext* ctx) {
                        v1::LeaseRevokeRequest req;
                        req.set_id(77);
                        v1::LeaseRevokeResponse resp;
                        return e.stub->LeaseRevoke(ctx, req, &resp);
                      }};
  c["LeaseKeepAlive"] = {{{W, Target::kDefault}},
                         [](const Env& e, const std::string&,
                            grpc::ClientContext* ctx) {
                           v1::LeaseKeepAliveRequest req;
                           req.set_id(78);
                           v1::LeaseKeepAliveResponse resp;
                           return e.stub->LeaseKeepAlive(ctx, req, &resp);
                         }};
  c["LeaseTimeToLive"] = {{{R, Target::kDefault}},
                          [](const Env& e, const std::string&,
                             grpc::ClientContext* ctx) {
                            v1::LeaseTimeToLiveRequest req;
                            req.set_id(78);
                            req.set_keys(true);
                            v1::LeaseTimeToLiveResponse resp;
                            return e.stub->LeaseTimeToLive(ctx, req, &resp);
                          }};
  c["LeaseLeases"] = {{{R, Target::kDefault}},
                      [](const Env& e, const std::string&,
                         grpc::ClientContext* ctx) {
                        v1::LeaseLeasesRequest req;
                        v1::LeaseLeasesResponse resp;
                        return e.stub->LeaseLeases(ctx, req, &resp);
                      }};
  c["Backup"] = {{{A, Target::kNode}}, [](const Env& e, const std::string&,
                                          grpc::ClientContext* ctx) {
                   v1::BackupRequest req;
                   auto reader = e.stub->Backup(ctx, req);
                   return FirstMessage(ctx, reader.get());
                 }};
  c["CreateNamespace"] = {{{A, Target::kAdminRow}},
                          [](const Env& e, const std::string& ns,
                             grpc::ClientContext* ctx) {
                            v1::CreateNamespaceRequest req;
                            req.set_name(TargetNamespace(Target::kAdminRow, ns));
                            v1::CreateNamespaceResponse resp;
                            return e.stub->CreateNamespace(ctx, req, &resp);
                          }};
  c["DeleteNamespace"] = {{{A, Target::kAdminRow}},
                          [](const Env& e, const std::string& ns,
                             grpc::ClientContext* ctx) {
                            v1::DeleteNamespaceRequest req;
                            req.set_name(TargetNamespace(Target::kAdminRow, ns));
                            v1::DeleteNamespaceResponse resp;
                            return e.stub->DeleteNamespace(ctx, req, &resp);
                          }};
  c["UpdateNamespace"] = {{{A, Target::kAdminRow}},
                          [](const Env& e, const std::string& ns,
                             grpc::ClientContext* ctx) {
                            v1::UpdateNamespaceRequest req;
                            req.set_name(TargetNamespace(Target::kAdminRow, ns));
                            req.set_quota_keys(100);
                            v1::UpdateNamespaceResponse resp;
                            return e.stub->UpdateNamespace(ctx, req, &resp);
                          }};
  // Open to every authenticated client; what it lists is filtered
  // (ListNamespacesShowsOnlyGrantedNamespaces).
  c["ListNamespaces"] = {{}, [](const Env& e, const std::string&,
                                grpc::ClientContext* ctx) {
                           v1::ListNamespacesRequest req;
                           v1::ListNamespacesResponse resp;
                           return e.stub->ListNamespaces(ctx, req, &resp);
                         }};
  return c;
}

// ---- Fixture ------------------------------------------------------------------

// Counts what the authorizer reports (and forwards to RpcMetrics, so the
// exported families are checked too).
class CountingObserver : public server::RpcObserver {
 public:
  void OnAuthzDenied(std::string_view method,
                     std::string_view permission) override {
    denials.fetch_add(1);
    metrics_.OnAuthzDenied(method, permission);
  }
  void OnAuthzPolicyReload(bool ok) override {
    (ok ? reloads_ok : reloads_error).fetch_add(1);
    metrics_.OnAuthzPolicyReload(ok);
  }
  std::string Text() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, metrics_.Collect());
    return out.str();
  }
  server::metrics::RpcMetrics metrics_;
  std::atomic<int> denials{0};
  std::atomic<int> reloads_ok{0};
  std::atomic<int> reloads_error{0};
};

class AuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PinGrpcLibrary();
    ASSERT_EQ(Pki().error(), "");
    policy_path_ = dir_.path() + "/policy.json";
    WriteFileOrDie(policy_path_, kPolicy);
  }

  ServerOptions Options(absl::Duration reload = absl::ZeroDuration()) const {
    const TestPki& pki = Pki();
    ServerOptions o = TestServerOptions();
    o.tls.cert_file = pki.Path("server.crt");
    o.tls.key_file = pki.Path("server.key");
    o.tls.client_ca_file = pki.Path("ca.crt");
    o.tls.reload_interval = reload;
    o.authz_policy_file = policy_path_;
    o.backup_tmp_dir = dir_.path() + "/backup-tmp";
    return o;
  }

  void Start(ServerOptions o) {
    auto s = InProcessServer::Start(std::move(o), &observer_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& who) const {
    const TestPki& pki = Pki();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pki.Pem("ca.crt");
    ssl.pem_cert_chain = pki.Pem(who + ".crt");
    ssl.pem_private_key = pki.Pem(who + ".key");
    return grpc::CreateChannel(server_->address(), grpc::SslCredentials(ssl));
  }
  std::unique_ptr<Stub> StubFor(const std::string& who) const {
    return v1::KV::NewStub(Channel(who));
  }

  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    return ctx;
  }

  // As ops: the named rows' namespaces, and in every row's namespace a key
  // "k" = "v0", a JSON document "json", and lease 78 (KeepAlive/TimeToLive
  // target) plus lease 77 (LeaseRevoke target).
  void Populate() {
    auto ops = StubFor("ops");
    for (const std::string& ns : Rows()) {
      if (!ns.empty()) {
        v1::CreateNamespaceRequest req;
        req.set_name(ns);
        v1::CreateNamespaceResponse resp;
        ASSERT_TRUE(ops->CreateNamespace(Ctx().get(), req, &resp).ok()) << ns;
      }
      v1::WriteRequest w;
      w.set_namespace_(ns);
      v1::PutRequest* put = w.add_mutations()->mutable_put();
      put->set_key("k");
      put->set_value("v0");
      put = w.add_mutations()->mutable_put();
      put->set_key("json");
      put->set_value(R"({"a":1})");
      put->set_type(v1::JSON);
      v1::WriteResponse wr;
      grpc::Status s = ops->Write(Ctx().get(), w, &wr);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
    for (int64_t id : {77, 78}) {
      v1::LeaseGrantRequest req;
      req.set_id(id);
      req.set_ttl_seconds(3600);
      v1::LeaseGrantResponse resp;
      ASSERT_TRUE(ops->LeaseGrant(Ctx().get(), req, &resp).ok());
    }
  }

  grpc::Status PutAs(Stub* stub, const std::string& ns) {
    v1::PutRequest req;
    req.set_key("r");
    req.set_value("x");
    req.set_namespace_(ns);
    v1::PutResponse resp;
    return stub->Put(Ctx().get(), req, &resp);
  }

  TempDir dir_;
  std::string policy_path_;
  CountingObserver observer_;
  std::unique_ptr<InProcessServer> server_;
};

// ---- Tests --------------------------------------------------------------------

const google::protobuf::ServiceDescriptor* KvService() {
  return v1::GetRequest::descriptor()->file()->FindServiceByName("KV");
}

TEST_F(AuthzTest, EveryKvRpcHasARuleForItsRequestType) {
  const google::protobuf::ServiceDescriptor* kv = KvService();
  for (int i = 0; i < kv->method_count(); ++i) {
    const google::protobuf::MethodDescriptor* m = kv->method(i);
    EXPECT_NE(server::KvAccessRule(m->name(), m->input_type()), nullptr)
        << m->name() << " has no authorization rule (server/authz.cc)";
  }
  // A rule is only found for its own request type.
  EXPECT_EQ(server::KvAccessRule("Get", v1::PutRequest::descriptor()), nullptr);
  EXPECT_EQ(server::KvAccessRule("NoSuchRpc", v1::GetRequest::descriptor()),
            nullptr);
}

TEST_F(AuthzTest, MatrixOfIdentitiesNamespacesAndEveryRpc) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  ASSERT_NO_FATAL_FAILURE(Populate());
  std::map<std::string, std::unique_ptr<Stub>> stubs;
  for (const std::string& who : Identities()) stubs[who] = StubFor(who);
  const std::map<std::string, Case> cases = Cases();
  storage::DB* db = server_->db();
  int allowed = 0, denied = 0;
  const google::protobuf::ServiceDescriptor* kv = KvService();
  for (int i = 0; i < kv->method_count(); ++i) {
    const std::string method = kv->method(i)->name();
    auto it = cases.find(method);
    if (it == cases.end()) {
      ADD_FAILURE() << method << " has no case in authz_test's Cases(): "
                    << "classify the new RPC (server/authz.cc) and add one";
      continue;
    }
    const Case& c = it->second;
    for (const std::string& who : Identities()) {
      for (const std::string& row : Rows()) {
        bool expect_allowed = true;
        for (const auto& [perm, target] : c.needs) {
          expect_allowed = expect_allowed &&
                           Granted(who, TargetNamespace(target, row), perm);
        }
        const storage::Revision rev = db->CurrentRevision();
        const storage::Revision compacted = db->CompactedRevision();
        const int denials = observer_.denials.load();
        auto ctx = Ctx();
        grpc::Status s = c.call(Env{stubs[who].get(), db}, row, ctx.get());
        const std::string where =
            absl::StrCat(method, " as ", who, " on \"", row, "\": ",
                         s.error_code(), " ", s.error_message());
        if (expect_allowed) {
          ++allowed;
          EXPECT_NE(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
              << where;
          EXPECT_EQ(observer_.denials.load(), denials) << where;
        } else {
          ++denied;
          EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
              << where;
          EXPECT_THAT(s.error_message(), HasSubstr("grant on")) << where;
          EXPECT_THAT(s.error_message(), HasSubstr(method)) << where;
          // Nothing changed: no revision written, no history dropped.
          EXPECT_EQ(db->CurrentRevision(), rev) << where;
          EXPECT_EQ(db->CompactedRevision(), compacted) << where;
          EXPECT_EQ(observer_.denials.load(), denials + 1) << where;
        }
      }
    }
  }
  EXPECT_GT(allowed, 50);
  EXPECT_GT(denied, 50);
  // The data every denied write aimed at is as it was.
  auto ops = StubFor("ops");
  for (const std::string& ns : Rows()) {
    v1::GetRequest req;
    req.set_key("k");
    req.set_namespace_(ns);
    v1::GetResponse resp;
    ASSERT_TRUE(ops->Get(Ctx().get(), req, &resp).ok());
    EXPECT_EQ(resp.value(), "v0") << ns;
  }
  const std::string text = observer_.Text();
  EXPECT_THAT(text, HasSubstr("strata_authz_denials_total{method=\"Put\","
                              "permission=\"write\"}"));
}

TEST_F(AuthzTest, AllowedCallsSucceed) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  ASSERT_NO_FATAL_FAILURE(Populate());
  auto a = StubFor("svc-a");
  EXPECT_TRUE(PutAs(a.get(), "team/a").ok());
  EXPECT_TRUE(PutAs(a.get(), "team/a/x").ok());
  v1::GetRequest get;
  get.set_key("r");
  get.set_namespace_("team/a");
  v1::GetResponse got;
  ASSERT_TRUE(a->Get(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.value(), "x");
  // svc-b: admin under team/b creates a namespace and writes into it.
  auto b = StubFor("svc-b");
  v1::CreateNamespaceRequest create;
  create.set_name("team/b/new");
  v1::CreateNamespaceResponse created;
  ASSERT_TRUE(b->CreateNamespace(Ctx().get(), create, &created).ok());
  EXPECT_TRUE(PutAs(b.get(), "team/b/new").ok());
  // Anyone may read the default namespace ("*" identity).
  get.set_key("k");
  get.set_namespace_("");
  ASSERT_TRUE(StubFor("client")->Get(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.value(), "v0");
}

TEST_F(AuthzTest, RefusalNamesIdentityPermissionAndNamespaceOnly) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  ASSERT_NO_FATAL_FAILURE(Populate());
  auto a = StubFor("svc-a");
  grpc::Status s = PutAs(a.get(), "team/b");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(s.error_message(),
            "permission denied: client \"spiffe://strata.test/svc-a\" has no "
            "\"write\" grant on namespace \"team/b\" (Put; authorization "
            "policy)");
  // A namespace that does not exist is refused the same way: a client
  // without a grant learns nothing about which namespaces exist.
  grpc::Status missing = PutAs(a.get(), "team/zzz");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(missing.error_message(), HasSubstr("namespace \"team/zzz\""));
  // The CN identity, and the whole node.
  v1::CompactRequest compact;
  compact.set_revision(1);
  v1::CompactResponse compacted;
  s = StubFor("client")->Compact(Ctx().get(), compact, &compacted);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("client \"CN=strata-client\" has no \"admin\" grant "
                        "on the whole node"));
  // A Write spanning namespaces is refused whole if one part is not
  // granted, and writes nothing.
  const storage::Revision rev = server_->db()->CurrentRevision();
  v1::WriteRequest w;
  w.set_namespace_("team/a");
  w.add_mutations()->mutable_put()->set_key("ok");
  v1::PutRequest* other = w.add_mutations()->mutable_put();
  other->set_key("not-ok");
  other->set_namespace_("team/b");
  v1::WriteResponse wr;
  s = a->Write(Ctx().get(), w, &wr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("namespace \"team/b\""));
  EXPECT_EQ(server_->db()->CurrentRevision(), rev);
}

// A backup of one namespace needs admin on that namespace only; a backup of
// the whole node needs admin on "*".
TEST_F(AuthzTest, NamespaceBackupNeedsAdminOnThatNamespaceOnly) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  ASSERT_NO_FATAL_FAILURE(Populate());
  auto backup = [&](const std::string& who, const std::string& ns) {
    v1::BackupRequest req;
    req.set_namespace_(ns);
    auto ctx = Ctx();
    auto reader = StubFor(who)->Backup(ctx.get(), req);
    v1::BackupResponse resp;
    while (reader->Read(&resp)) {
    }
    return reader->Finish();
  };
  // svc-b holds admin on team/b.
  grpc::Status s = backup("svc-b", "team/b");
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = backup("svc-b", "team/a");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("\"admin\" grant on namespace \"team/a\""));
  s = backup("svc-b", "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("the whole node"));
  // svc-a may read and write team/a but not administer it.
  EXPECT_EQ(backup("svc-a", "team/a").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  s = backup("ops", "");
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(AuthzTest, ListNamespacesShowsOnlyGrantedNamespaces) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  ASSERT_NO_FATAL_FAILURE(Populate());
  auto names = [&](const std::string& who) {
    v1::ListNamespacesRequest req;
    v1::ListNamespacesResponse resp;
    grpc::Status s = StubFor(who)->ListNamespaces(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << who << ": " << s.error_message();
    std::vector<std::string> out;
    for (const auto& info : resp.namespaces()) out.push_back(info.name());
    return out;
  };
  EXPECT_THAT(names("ops"), ElementsAre("team/a", "team/a/x", "team/b"));
  EXPECT_THAT(names("svc-a"), ElementsAre("team/a", "team/a/x"));
  EXPECT_THAT(names("svc-b"), ElementsAre("team/a", "team/b"));
  EXPECT_THAT(names("client"), ElementsAre());
}

TEST_F(AuthzTest, HealthStaysOpen) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  // Grants nothing at all.
  WriteFileOrDie(policy_path_, R"({"version": 1, "grants": []})");
  ASSERT_TRUE(server_->server()->TEST_authorizer()->ReloadNow().ok());
  auto health = grpc::health::v1::Health::NewStub(Channel("client"));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("strata.v1.KV");
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = health->Check(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(PutAs(StubFor("ops").get(), "").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AuthzTest, ReloadAppliesToAConnectedClientAndBadFileKeepsOldPolicy) {
  ASSERT_NO_FATAL_FAILURE(Start(Options()));
  ASSERT_NO_FATAL_FAILURE(Populate());
  auto a = StubFor("svc-a");  // One connection for the whole test.
  ASSERT_EQ(PutAs(a.get(), "team/b").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  server::Authorizer* authz = server_->server()->TEST_authorizer();
  ASSERT_NE(authz, nullptr);
  // Unchanged file: nothing happens.
  ASSERT_TRUE(authz->ReloadNow().ok());
  EXPECT_EQ(observer_.reloads_ok.load(), 0);

  WriteFileOrDie(policy_path_, R"({"version": 1, "grants": [
      {"identity": "spiffe://strata.test/svc-a", "namespaces": ["team/b"],
       "permissions": ["write"]}]})");
  ASSERT_TRUE(authz->ReloadNow().ok());
  EXPECT_EQ(observer_.reloads_ok.load(), 1);
  EXPECT_TRUE(PutAs(a.get(), "team/b").ok());
  // The new policy replaced the old one: team/a is no longer granted.
  EXPECT_EQ(PutAs(a.get(), "team/a").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // An invalid file: logged, counted once, the policy in force is kept.
  WriteFileOrDie(policy_path_, R"({"version": 1, "grants": [{"identity": 1}]})");
  absl::Status s = authz->ReloadNow();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(policy_path_));
  EXPECT_EQ(observer_.reloads_error.load(), 1);
  EXPECT_TRUE(PutAs(a.get(), "team/b").ok());
  EXPECT_FALSE(authz->ReloadNow().ok());  // Same problem: not counted again.
  EXPECT_EQ(observer_.reloads_error.load(), 1);
  // A missing file too.
  std::filesystem::remove(policy_path_);
  EXPECT_FALSE(authz->ReloadNow().ok());
  EXPECT_EQ(observer_.reloads_error.load(), 2);
  EXPECT_TRUE(PutAs(a.get(), "team/b").ok());
  const std::string text = observer_.Text();
  EXPECT_THAT(text, HasSubstr("strata_authz_policy_reloads_total{result=\"ok\"} 1"));
  EXPECT_THAT(text,
              HasSubstr("strata_authz_policy_reloads_total{result=\"error\"} 2"));
}

TEST_F(AuthzTest, PeriodicReloadOnTheTlsInterval) {
  ASSERT_NO_FATAL_FAILURE(Start(Options(absl::Seconds(1))));
  auto ops = StubFor("ops");
  ASSERT_TRUE(PutAs(ops.get(), "").ok());
  WriteFileOrDie(policy_path_, R"({"version": 1, "grants": [
      {"identity": "CN=ops-admin", "namespaces": ["*"],
       "permissions": ["read"]}]})");
  // The reload thread re-reads every second: wait (bounded) for it to see
  // the change, by its counter.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (observer_.reloads_ok.load() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(observer_.reloads_ok.load(), 1);
  EXPECT_EQ(PutAs(ops.get(), "").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AuthzTest, StartRefusesWithoutMutualTlsOrWithABadPolicy) {
  ServerOptions no_ca = Options();
  no_ca.tls.client_ca_file.clear();
  auto s = InProcessServer::Start(no_ca);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("--authz_policy needs mutual TLS"));

  WriteFileOrDie(policy_path_, R"({"version": 1, "grants": [
      {"identity": "a", "namespaces": ["a"], "permissions": ["all"]}]})");
  s = InProcessServer::Start(Options());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("unknown permission \"all\""));
}

TEST_F(AuthzTest, ServerBinaryRefusesBadPolicyFlags) {
  const std::string server_bin = BinaryPath("server/strata-server");
  ASSERT_FALSE(server_bin.empty()) << "STRATA_BINARY_DIR is not set";
  const TestPki& pki = Pki();
  const std::string data = "--data_dir=" + dir_.path() + "/data";
  const std::vector<std::string> tls = {
      "--tls_cert=" + pki.Path("server.crt"),
      "--tls_key=" + pki.Path("server.key")};
  std::vector<std::string> args = {server_bin, "--listen=127.0.0.1:0", data,
                                   tls[0], tls[1],
                                   "--authz_policy=" + policy_path_};
  ProcessResult r = RunProcess(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--authz_policy needs mutual TLS"));

  WriteFileOrDie(policy_path_, "{not json");
  args.push_back("--tls_client_ca=" + pki.Path("ca.crt"));
  r = RunProcess(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--authz_policy file " + policy_path_ +
                               ": not valid JSON"));
  // Refused before the data directory was made.
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/data"));
}

}  // namespace
}  // namespace strata::testing
