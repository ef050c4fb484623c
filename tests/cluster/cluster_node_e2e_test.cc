// The cluster wired into strata-server, end to end (docs/cluster.md,
// "Running a cluster"): a real etcd and three strata-server processes in
// cluster mode on 127.0.0.1, one range with RF 3, tiny memtables.
//
// What it checks: writes acknowledged by the primary are readable there; a
// replica asked not to forward refuses a client with FAILED_PRECONDITION
// naming the primary; after the primary is SIGKILLed another node becomes
// primary (higher epoch) and serves writes within the lease TTL plus a
// bound, with every acknowledged write present; the killed node,
// restarted, catches up as a replica and is back in the in-sync set. And a
// replica forwards what it does not serve to the primary (unary, Watch,
// unknown methods, cancellation), but not health checks, a second hop, or
// with --cluster_forward=false. A replica killed in the middle of a
// re-sync's directory swap recovers its database at restart. Every wait is
// bounded; every process is killed by PID when the test ends.

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/strata_client.h"
#include "cluster/control/cluster_store.h"
#include "cluster/etcd_client.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "strata/v1/cluster.grpc.pb.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/cluster/etcd_process.h"
#include "tests/server/metrics_text.h"
#include "tests/server/process_util.h"
#include "tests/server/test_pki.h"
#include "tests/support/test_util.h"

namespace strata {
namespace {

using cluster::ClusterStore;
using cluster::EtcdClient;
using cluster::EtcdClientOptions;
using testing::EtcdProcess;
using testing::ServerProcess;

constexpr absl::Duration kLeaseTtl = absl::Seconds(2);
// Lease TTL + etcd's expiry check + the controller + the promoted node's
// restart, with room for a loaded machine.
constexpr absl::Duration kFailoverBound = absl::Seconds(20);

// A free TCP port on 127.0.0.1 (bound to 0, then closed), as EtcdProcess
// picks its ports: the node's address must be in the cluster's membership
// before the node starts.
// The families documented under "### Cluster" in docs/metrics.md, as
// "name type".
std::set<std::string> DocumentedClusterFamilies() {
  std::ifstream in(std::string(STRATA_SOURCE_DIR) + "/docs/metrics.md");
  static const std::regex kRow(
      R"(^\| `([a-z0-9_]+)(\{[^`]*\})?` \| (counter|gauge|histogram) \|.*)");
  std::set<std::string> out;
  bool in_section = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0 || line.rfind("### ", 0) == 0) {
      in_section = line == "### Cluster";
    }
    std::smatch m;
    if (in_section && std::regex_match(line, m, kRow)) {
      out.insert(std::string(m[1]) + " " + std::string(m[3]));
    }
  }
  return out;
}

// The strata_cluster_* families a /metrics body declares, as "name type".
std::set<std::string> ExportedClusterFamilies(const std::string& body) {
  std::set<std::string> out;
  std::istringstream lines(body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE strata_cluster_", 0) == 0) {
      out.insert(line.substr(std::string("# TYPE ").size()));
    }
  }
  return out;
}

class ClusterNodeE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::PinGrpcLibrary();
    if (testing::BinaryPath("server/strata-server").empty()) {
      GTEST_SKIP() << "STRATA_BINARY_DIR is not set (run through ctest)";
    }
    auto etcd = EtcdProcess::Start(absl::StrCat(dir_.path(), "/etcd"));
    if (absl::IsFailedPrecondition(etcd.status())) {
      GTEST_SKIP() << etcd.status();
    }
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = *std::move(etcd);
    client_ = std::make_unique<EtcdClient>(
        EtcdClientOptions{
            .endpoint = etcd_->endpoint(), .tls = {}, .auth = {}});
    store_ = std::make_unique<ClusterStore>(client_.get(), "strata/");
    for (const char* id : {"n1", "n2", "n3"}) {
      absl::StatusOr<int> port = testing::PickFreePort();
      addresses_[id] = absl::StrCat("127.0.0.1:", port.value_or(0));
    }
  }

  absl::Status Init() {
    cluster::InitOptions o;
    o.num_ranges = 1;
    for (const auto& [id, address] : addresses_) {
      o.members.push_back({id, address});
    }
    return store_->InitCluster(o);
  }

  absl::StatusOr<std::unique_ptr<ServerProcess>> StartNode(
      const std::string& id, const std::string& extra_flag = "") {
    std::vector<std::string> extra;
    if (!extra_flag.empty()) extra.push_back(extra_flag);
    return StartNode(id, extra);
  }

  absl::StatusOr<std::unique_ptr<ServerProcess>> StartNode(
      const std::string& id, const std::vector<std::string>& extra_flags) {
    std::vector<std::string> flags = {
         absl::StrCat("--listen=", addresses_[id]),
         absl::StrCat("--cluster_etcd=", etcd_->endpoint()),
         absl::StrCat("--node_id=", id),
         absl::StrCat("--advertise_address=", addresses_[id]),
         absl::StrCat("--cluster_lease_ttl=",
                      absl::FormatDuration(kLeaseTtl)),
         "--replication_timeout=5s", "--metrics_listen=127.0.0.1:0",
         "--memtable_bytes=65536", "--wal_sync=none", "--cq_threads=1",
         "--io_threads=2", "--compaction_threads=1", "--malloc_tuning=false"};
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    return ServerProcess::Start(absl::StrCat(dir_.path(), "/", id), flags);
  }

  std::unique_ptr<v1::KV::Stub> Kv(const std::string& id) {
    return v1::KV::NewStub(grpc::CreateChannel(
        addresses_[id], grpc::InsecureChannelCredentials()));
  }

  grpc::Status Put(const std::string& id, const std::string& key,
                   const std::string& value, bool no_forward = false,
                   v1::PutResponse* out = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    if (no_forward) ctx.AddMetadata("strata-no-forward", "1");
    v1::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    v1::PutResponse resp;
    return Kv(id)->Put(&ctx, req, out != nullptr ? out : &resp);
  }

  grpc::Status Delete(const std::string& id, const std::string& key) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1::DeleteRequest req;
    req.set_key(key);
    v1::DeleteResponse resp;
    return Kv(id)->Delete(&ctx, req, &resp);
  }

  grpc::Status Get(const std::string& id, const std::string& key,
                   v1::GetResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1::GetRequest req;
    req.set_key(key);
    return Kv(id)->Get(&ctx, req, resp);
  }

  // The range map's range 0 as etcd holds it now.
  absl::StatusOr<cluster::RangeDescriptor> Range() {
    absl::StatusOr<cluster::RangeMap> map = store_->ReadRangeMap();
    if (!map.ok()) return map.status();
    return map->ranges().front();
  }

  // The body of node `id`'s /metrics.
  absl::StatusOr<std::string> Scrape(const std::string& id) {
    absl::StatusOr<std::string> metrics = nodes_[id]->WaitForStdoutLine(
        "strata-server metrics on ", absl::Seconds(5));
    if (!metrics.ok()) return metrics.status();
    const int port = std::stoi(metrics->substr(metrics->rfind(':') + 1));
    absl::StatusOr<testing::HttpResponse> scraped =
        testing::HttpGet(port, "/metrics");
    if (!scraped.ok()) return scraped.status();
    return scraped->body;
  }

  // The value of the sample `name{labels}` in node `id`'s /metrics (labels
  // as prometheus-cpp prints them), or -1 if absent.
  double Sample(const std::string& id, const std::string& series) {
    absl::StatusOr<std::string> body = Scrape(id);
    if (!body.ok()) return -1;
    std::istringstream lines(*body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(series + " ", 0) == 0) {
        return std::stod(line.substr(series.size() + 1));
      }
    }
    return -1;
  }

  // Starts n1, n2, n3 with the same extra `flags` (the cluster is
  // initialized already). False (a test failure logged) if one does not
  // start.
  bool StartAllNodes(const std::vector<std::string>& flags) {
    for (const char* id : {"n1", "n2", "n3"}) {
      auto p = StartNode(id, flags);
      EXPECT_TRUE(p.ok()) << p.status() << Logs();
      if (!p.ok()) return false;
      nodes_[id] = *std::move(p);
    }
    return true;
  }

  // Initializes the cluster and starts n1, n2, n3 (n1 the primary), each
  // with its flag in `extra` if it has one. False (a test failure logged)
  // if one does not start.
  bool InitAndStartNodes(const std::map<std::string, std::string>& extra) {
    EXPECT_TRUE(Init().ok());
    for (const char* id : {"n1", "n2", "n3"}) {
      auto flag = extra.find(id);
      auto p = StartNode(id, flag != extra.end() ? flag->second : "");
      EXPECT_TRUE(p.ok()) << p.status() << Logs();
      if (!p.ok()) return false;
      nodes_[id] = *std::move(p);
    }
    return true;
  }

  // Starts n1, n2, n3 (n1 the primary; n3 with --cluster_forward=false)
  // and waits until n1 acknowledges a write (its replicas have connected).
  // Returns that write's revision.
  int64_t StartClusterAndWrite() {
    if (!InitAndStartNodes({{"n3", "--cluster_forward=false"}})) return -1;
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      v1::PutResponse resp;
      if (Put("n1", "first", "1", false, &resp).ok()) {
        return resp.header().revision();
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "n1 acknowledged no write within 20 s" << Logs();
    return -1;
  }

  // Calls `method` on node `id` with an empty request message, without a
  // generated stub (so any method name can be called).
  grpc::Status EmptyUnaryCall(const std::string& id,
                              const std::string& method) {
    grpc::GenericStub stub(grpc::CreateChannel(
        addresses_[id], grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer response;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status st) {
                     status = std::move(st);
                     done.Notify();
                   });
    // The deadline ends the call well before this.
    if (!done.WaitForNotificationWithTimeout(absl::Seconds(30))) {
      ADD_FAILURE() << method << " did not end";
      ctx.TryCancel();
      done.WaitForNotification();
    }
    return status;
  }

  // The health status node `id` reports for `service`, or -1 if the check
  // failed.
  int Health(const std::string& id, const std::string& service) {
    auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
        addresses_[id], grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    if (!health->Check(&ctx, req, &resp).ok()) return -1;
    return resp.status();
  }

  // Polls Health(id, service) until it is `want`, for at most `timeout`.
  bool WaitForHealth(const std::string& id, const std::string& service,
                     int want, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (Health(id, service) == want) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return Health(id, service) == want;
  }

  // Starts replica `id` again (its old process is gone) with the default
  // flags, then expects n1 to turn ready for writes and to acknowledge a
  // Put within 30 s each.
  void RestartAndWriteThroughN1(const std::string& id) {
    auto restarted = StartNode(id);
    ASSERT_TRUE(restarted.ok()) << restarted.status();
    nodes_[id] = *std::move(restarted);
    EXPECT_TRUE(WaitForHealth("n1", "strata.v1.KV.write",
                              grpc::health::v1::HealthCheckResponse::SERVING,
                              absl::Seconds(30)))
        << Logs();
    grpc::Status put;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    do {
      put = Put("n1", "after", absl::StrCat(id, "-back"));
    } while (!put.ok() && absl::Now() < deadline);
    EXPECT_TRUE(put.ok()) << put.error_message() << Logs();
  }

  std::string Logs() {
    std::string out;
    for (const auto& [id, p] : nodes_) {
      if (p != nullptr) absl::StrAppend(&out, "--- ", id, ":\n", p->Stderr());
    }
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<EtcdProcess> etcd_;
  std::unique_ptr<EtcdClient> client_;
  std::unique_ptr<ClusterStore> store_;
  std::map<std::string, std::string> addresses_;
  std::map<std::string, std::unique_ptr<ServerProcess>> nodes_;
};

TEST_F(ClusterNodeE2ETest, FailoverKeepsEveryAcknowledgedWrite) {
  ASSERT_TRUE(Init().ok());
  for (const char* id : {"n1", "n2", "n3"}) {
    auto p = StartNode(id);
    ASSERT_TRUE(p.ok()) << p.status() << Logs();
    nodes_[id] = *std::move(p);
  }

  // n1 is the first member, so the primary at epoch 1. Its first writes
  // wait until both replicas have connected.
  std::map<std::string, std::string> acked;
  const absl::Time writes_deadline = absl::Now() + absl::Seconds(20);
  for (int i = 0; i < 40 && absl::Now() < writes_deadline;) {
    const std::string key = absl::StrCat("key", i);
    const std::string value = absl::StrCat("v", i);
    grpc::Status s = Put("n1", key, value);
    if (s.ok()) {
      acked[key] = value;
      ++i;
    }
  }
  ASSERT_EQ(acked.size(), 40u) << Logs();
  for (const auto& [key, value] : acked) {
    v1::GetResponse resp;
    grpc::Status s = Get("n1", key, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(resp.found()) << key;
    EXPECT_EQ(resp.value(), value);
  }

  // A replica asked not to forward names the primary.
  grpc::Status refused = Put("n2", "k", "v", /*no_forward=*/true);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(refused.error_message().find(
                absl::StrCat("the primary is n1 at ", addresses_["n1"])),
            std::string::npos)
      << refused.error_message();

  // The primary exports the cluster families docs/metrics.md documents.
  {
    absl::StatusOr<std::string> metrics = nodes_["n1"]->WaitForStdoutLine(
        "strata-server metrics on ", absl::Seconds(5));
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    const int port = std::stoi(metrics->substr(metrics->rfind(':') + 1));
    absl::StatusOr<testing::HttpResponse> scraped =
        testing::HttpGet(port, "/metrics");
    ASSERT_TRUE(scraped.ok()) << scraped.status();
    const std::set<std::string> documented = DocumentedClusterFamilies();
    EXPECT_FALSE(documented.empty());
    EXPECT_EQ(ExportedClusterFamilies(scraped->body), documented);
    EXPECT_NE(scraped->body.find(
                  "strata_cluster_role{range=\"0\",role=\"primary\"} 1"),
              std::string::npos)
        << scraped->body;
  }

  // The C++ client, pointed at a replica, follows it to the primary.
  {
    Client routed(addresses_["n3"]);
    absl::StatusOr<Revision> put = routed.Put("routed", "r");
    ASSERT_TRUE(put.ok()) << put.status();
    absl::StatusOr<std::optional<std::string>> got = routed.Get("routed");
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->value_or(""), "r");
    acked["routed"] = "r";
  }

  // Kill the primary; another in-sync node takes over.
  nodes_["n1"]->Signal(SIGKILL);
  ASSERT_TRUE(nodes_["n1"]->Wait(absl::Seconds(10)).ok());
  const absl::Time killed = absl::Now();
  std::string primary;
  absl::Time resumed;
  while (absl::Now() < killed + kFailoverBound) {
    absl::StatusOr<cluster::RangeDescriptor> r = Range();
    if (r.ok() && r->primary != "n1") {
      if (Put(r->primary, "after-failover", "x").ok()) {
        primary = r->primary;
        resumed = absl::Now();
        break;
      }
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_FALSE(primary.empty())
      << "no new primary serving writes within "
      << absl::FormatDuration(kFailoverBound) << Logs();
  std::fprintf(stderr, "failover: writes resumed on %s %.2f s after SIGKILL\n",
               primary.c_str(), absl::ToDoubleSeconds(resumed - killed));
  absl::StatusOr<cluster::RangeDescriptor> after = Range();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->epoch, 2u) << "the first promoted node must keep the role";
  EXPECT_FALSE(after->IsInSync("n1"));

  for (const auto& [key, value] : acked) {
    v1::GetResponse resp;
    grpc::Status s = Get(primary, key, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(resp.found()) << key << " lost in the failover";
    EXPECT_EQ(resp.value(), value);
  }

  // The killed node comes back as a replica, catches up and rejoins the
  // in-sync set.
  auto restarted = StartNode("n1");
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  nodes_["n1"] = *std::move(restarted);
  ASSERT_TRUE(Put(primary, "after-restart", "y").ok());
  bool rejoined = false;
  const absl::Time rejoin_deadline = absl::Now() + absl::Seconds(20);
  while (!rejoined && absl::Now() < rejoin_deadline) {
    absl::StatusOr<cluster::RangeDescriptor> r = Range();
    rejoined = r.ok() && r->IsInSync("n1");
    if (!rejoined) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(rejoined) << Logs();
  if (getenv("STRATA_E2E_LOGS") != nullptr) std::fprintf(stderr, "%s", Logs().c_str());
  grpc::Status from_replica = Put("n1", "k", "v", /*no_forward=*/true);
  EXPECT_EQ(from_replica.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << from_replica.error_message();
}

// A replica forwards what it does not serve to the primary (docs/cluster.md,
// "What a client sees"): unary and streaming calls, unknown methods (the
// primary's answer), the opt-out with its trailers, the metric, and a
// client's cancellation ending the upstream call.
TEST_F(ClusterNodeE2ETest, ReplicaForwardsToThePrimary) {
  const int64_t first = StartClusterAndWrite();
  ASSERT_GT(first, 0);

  // Unary, through the replica n2.
  v1::PutResponse put;
  grpc::Status s = Put("n2", "fwd", "through-n2", false, &put);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message() << Logs();
  v1::GetResponse got;
  s = Get("n2", "fwd", &got);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(got.found());
  EXPECT_EQ(got.value(), "through-n2");
  got.Clear();
  ASSERT_TRUE(Get("n1", "fwd", &got).ok());
  EXPECT_EQ(got.value(), "through-n2") << "the write went to the primary";

  // A Watch stream through the replica n2 sees a Put made on the primary.
  // start_revision makes the stream start at the next revision whenever
  // the primary registers it (no race with the Put).
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v1::WatchRequest req;
    req.set_key("watched");
    req.set_start_revision(put.header().revision() + 1);
    std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> stream =
        Kv("n2")->Watch(&ctx, req);
    ASSERT_TRUE(Put("n1", "watched", "w1").ok());
    v1::WatchResponse resp;
    bool seen = false;
    while (!seen && stream->Read(&resp)) {
      for (const v1::Event& e : resp.events()) {
        seen = seen || (e.kv().key() == "watched" && e.kv().value() == "w1");
      }
    }
    ASSERT_TRUE(seen) << stream->Finish().error_message();
    // The primary serves the stream; cancelling it through the replica
    // ends it there too.
    EXPECT_EQ(Sample("n1", R"(strata_rpc_requests_in_flight{method="Watch"})"),
              1);
    ctx.TryCancel();
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
    double in_flight = -1;
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      in_flight =
          Sample("n1", R"(strata_rpc_requests_in_flight{method="Watch"})");
      if (in_flight == 0) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    EXPECT_EQ(in_flight, 0) << "the primary's Watch outlived the client's";
  }

  // The opt-out: FAILED_PRECONDITION with the primary and the map as
  // trailers.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    ctx.AddMetadata("strata-no-forward", "true");
    v1::GetRequest req;
    req.set_key("fwd");
    v1::GetResponse resp;
    s = Kv("n2")->Get(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    const auto& trailers = ctx.GetServerTrailingMetadata();
    auto primary = trailers.find("strata-primary");
    ASSERT_NE(primary, trailers.end());
    EXPECT_EQ(std::string(primary->second.data(), primary->second.size()),
              addresses_["n1"]);
    auto map = trailers.find("strata-range-map-bin");
    ASSERT_NE(map, trailers.end());
    v1::GetRangeMapResponse parsed;
    ASSERT_TRUE(parsed.ParseFromArray(map->second.data(),
                                      static_cast<int>(map->second.size())));
    ASSERT_EQ(parsed.ranges_size(), 1);
    EXPECT_EQ(parsed.ranges(0).primary(), "n1");
    EXPECT_EQ(parsed.ranges(0).primary_address(), addresses_["n1"]);
  }

  // A method nobody serves: the primary's UNIMPLEMENTED (the replica
  // itself would answer FAILED_PRECONDITION).
  grpc::Status unknown = EmptyUnaryCall("n2", "/strata.v1.KV/NoSuchMethod");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNIMPLEMENTED)
      << unknown.error_message();
  // A bidirectional stream (server reflection, which the primary serves):
  // two requests on one stream through the replica, each answered.
  {
    grpc::GenericStub stub(grpc::CreateChannel(
        addresses_["n2"], grpc::InsecureChannelCredentials()));
    grpc::CompletionQueue cq;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
        stub.PrepareCall(&ctx,
                         "/grpc.reflection.v1alpha.ServerReflection/"
                         "ServerReflectionInfo",
                         &cq);
    // Each step's tag is its number; the deadline bounds every wait.
    auto step = [&](intptr_t tag) {
      void* got = nullptr;
      bool ok = false;
      return cq.Next(&got, &ok) && got == reinterpret_cast<void*>(tag) && ok;
    };
    // The exchange; any failure leaves it (the call is then cancelled and
    // the queue drained below).
    auto exchange = [&]() -> std::string {
      call->StartCall(reinterpret_cast<void*>(1));
      if (!step(1)) return "start";
      // ServerReflectionRequest{list_services: ""} (field 7, length 0).
      const std::string list_services("\x3a\x00", 2);
      for (intptr_t round = 0; round < 2; ++round) {
        grpc::Slice slice(list_services);
        grpc::ByteBuffer request(&slice, 1);
        call->Write(request, reinterpret_cast<void*>(10 + round));
        if (!step(10 + round)) return absl::StrCat("write ", round);
        grpc::ByteBuffer response;
        call->Read(&response, reinterpret_cast<void*>(20 + round));
        if (!step(20 + round)) return absl::StrCat("read ", round);
        std::vector<grpc::Slice> slices;
        if (!response.Dump(&slices).ok()) return "dump";
        std::string bytes;
        for (const grpc::Slice& piece : slices) {
          bytes.append(reinterpret_cast<const char*>(piece.begin()),
                       piece.size());
        }
        if (bytes.find("strata.v1.KV") == std::string::npos) {
          return absl::StrCat("round ", round, ": no strata.v1.KV in \"",
                              absl::CHexEscape(bytes), "\"");
        }
      }
      call->WritesDone(reinterpret_cast<void*>(30));
      if (!step(30)) return "writes done";
      grpc::Status status;
      call->Finish(&status, reinterpret_cast<void*>(40));
      if (!step(40)) return "finish";
      if (!status.ok()) return status.error_message();
      return "";
    };
    const std::string failed = exchange();
    EXPECT_EQ(failed, "") << "the reflection stream through n2 failed";
    ctx.TryCancel();
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  }

  // A health check describes the replica itself: not forwarded.
  grpc::Status health = EmptyUnaryCall("n2", "/grpc.health.v1.Health/Check");
  EXPECT_EQ(health.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << health.error_message();

  // No second hop: a call already forwarded by another node is answered
  // with the primary's address (a stale map cannot make a loop).
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    ctx.AddMetadata("strata-forwarded-by", "n3");
    v1::PutRequest req;
    req.set_key("hop");
    v1::PutResponse resp;
    s = Kv("n2")->Put(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    auto primary = ctx.GetServerTrailingMetadata().find("strata-primary");
    ASSERT_NE(primary, ctx.GetServerTrailingMetadata().end());
    EXPECT_EQ(std::string(primary->second.data(), primary->second.size()),
              addresses_["n1"]);
  }

  // The replicas count what they forwarded.
  EXPECT_GE(Sample("n2", R"(strata_cluster_forwarded_requests_total{method="Put",code="OK"})"),
            1);
  EXPECT_GE(Sample("n2", R"(strata_cluster_forwarded_requests_total{method="Get",code="OK"})"),
            1);
  EXPECT_EQ(Sample("n2", R"(strata_cluster_forwarded_requests_total{method="other",code="UNIMPLEMENTED"})"),
            1);
  EXPECT_EQ(Sample("n2", R"(strata_cluster_forwarded_requests_total{method="Watch",code="CANCELLED"})"),
            1);
  // A replica exports the engine of its own database (the sink's) and the
  // free space of its own volume (-1: absent).
  EXPECT_GE(Sample("n2", "strata_wal_syncs_total"), 0);
  EXPECT_GE(Sample("n2", "strata_revision"), 0);
  EXPECT_GT(Sample("n2", "strata_disk_free_bytes"), 0);

  // A node started with --cluster_forward=false names the primary instead.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1::PutRequest req;
    req.set_key("not-forwarded");
    v1::PutResponse resp;
    s = Kv("n3")->Put(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << s.error_message();
    auto primary = ctx.GetServerTrailingMetadata().find("strata-primary");
    ASSERT_NE(primary, ctx.GetServerTrailingMetadata().end());
    EXPECT_EQ(std::string(primary->second.data(), primary->second.size()),
              addresses_["n1"]);
    EXPECT_EQ(Sample("n3", R"(strata_cluster_forwarded_requests_total{method="Put",code="OK"})"),
              0);
  }
}

// Readiness on the primary tells the truth when its replicas are gone
// (docs/cluster.md, "What a node does"): with min_in_sync 2 every write
// would wait for a replica that cannot answer, so `strata.v1.KV.write`
// turns NOT_SERVING (a Kubernetes readiness probe takes the pod out) while
// `strata.v1.KV` stays SERVING (reads go on); it turns SERVING again once a
// replica is back and keeping up.
TEST_F(ClusterNodeE2ETest, PrimaryWithoutItsReplicasIsNotWriteReady) {
  ASSERT_GT(StartClusterAndWrite(), 0);
  constexpr int kServing = grpc::health::v1::HealthCheckResponse::SERVING;
  constexpr int kNotServing =
      grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  ASSERT_TRUE(WaitForHealth("n1", "strata.v1.KV.write", kServing,
                            absl::Seconds(5)))
      << Logs();

  for (const char* id : {"n2", "n3"}) {
    nodes_[id]->Signal(SIGKILL);
    ASSERT_TRUE(nodes_[id]->Wait(absl::Seconds(10)).ok());
  }
  EXPECT_TRUE(WaitForHealth("n1", "strata.v1.KV.write", kNotServing,
                            absl::Seconds(10)))
      << Logs();
  EXPECT_EQ(Health("n1", "strata.v1.KV"), kServing);
  v1::GetResponse got;
  grpc::Status read = Get("n1", "first", &got);
  EXPECT_TRUE(read.ok()) << read.error_message();

  // One replica back: it reconnects, catches up, and writes flow again.
  // The first writes wait for n3 (still in the set, silent) until the
  // primary drops it after the lag timeout (5 s): the set may shrink to
  // min_in_sync again, so that wait is bounded.
  RestartAndWriteThroughN1("n2");
}

// A replica whose primary has just died passes on the failed upstream
// call's UNAVAILABLE (retryable: clients retry or re-route) rather than
// holding the call until its deadline.
TEST_F(ClusterNodeE2ETest, ForwardingToADeadPrimaryAnswersUnavailable) {
  ASSERT_GT(StartClusterAndWrite(), 0);
  ASSERT_TRUE(Put("n2", "warm", "x").ok()) << Logs();  // Channel to n1 up.
  nodes_["n1"]->Signal(SIGKILL);
  ASSERT_TRUE(nodes_["n1"]->Wait(absl::Seconds(10)).ok());

  // A deadline shorter than the lease TTL: a forwarder that waited for the
  // primary to come back would end in DEADLINE_EXCEEDED before a failover
  // (which ends n2's connections as it changes role) could intervene.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(1000));
  v1::PutRequest req;
  req.set_key("k");
  req.set_value("v");
  v1::PutResponse resp;
  grpc::Status s = Kv("n2")->Put(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
      << s.error_code() << " " << s.error_message() << Logs();
}

// `strata cluster status` shows the lag per replica, which only the
// primary knows: GetClusterStatus on the primary carries its range's
// replication (none on a replica), and the CLI asks each range's primary.
TEST_F(ClusterNodeE2ETest, ClusterStatusShowsLagPerReplicaFromThePrimary) {
  const int64_t revision = StartClusterAndWrite();
  ASSERT_GT(revision, 0);
  auto status_from = [&](const std::string& id) {
    auto stub = v1::Cluster::NewStub(grpc::CreateChannel(
        addresses_[id], grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1::GetClusterStatusResponse resp;
    grpc::Status s = stub->GetClusterStatus(&ctx, {}, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  };
  const v1::GetClusterStatusResponse primary = status_from("n1");
  ASSERT_EQ(primary.replication_size(), 1);
  const v1::RangeReplication& r = primary.replication(0);
  EXPECT_EQ(r.primary(), "n1");
  EXPECT_GE(r.replicated_revision(), revision);
  ASSERT_EQ(r.replicas_size(), 2);
  for (const v1::ReplicaProgress& p : r.replicas()) {
    EXPECT_TRUE(p.connected()) << p.id();
    EXPECT_TRUE(p.in_sync()) << p.id();
    EXPECT_GE(p.acked_revision(), revision) << p.id();
    EXPECT_TRUE(p.disk_known()) << p.id();
    EXPECT_GT(p.disk_free_bytes(), 0u) << p.id();
  }
  EXPECT_EQ(status_from("n2").replication_size(), 0);

  testing::ProcessResult cli = testing::RunProcess(
      {testing::BinaryPath("client/strata"), "--timeout=10", "cluster",
       "status", absl::StrCat("--etcd=", etcd_->endpoint())},
      "", absl::Seconds(60));
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out, ::testing::HasSubstr("replication (from each primary)"));
  EXPECT_THAT(cli.out, ::testing::ContainsRegex("0 +n2 +yes +yes +[0-9]+ +0 "));
  EXPECT_THAT(cli.out, ::testing::ContainsRegex("0 +n3 +yes +yes "));
}

// A replica whose data volume is below its reserve (--min_free_disk_bytes
// larger than any disk here) tells the primary with its acks: the primary
// refuses writes that add data with RESOURCE_EXHAUSTED naming the replica
// (readiness for writes down, liveness up, the refusal counted), takes
// deletes, and takes writes again once the replica restarts with room.
TEST_F(ClusterNodeE2ETest, ReplicaBelowItsDiskReserveStopsWritesAtThePrimary) {
  ASSERT_TRUE(
      InitAndStartNodes({{"n2", "--min_free_disk_bytes=1000000000000000000"}}));
  grpc::Status put;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (true) {
    put = Put("n1", "k", "v");
    if (put.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
        absl::Now() >= deadline) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(put.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << put.error_code() << " " << put.error_message() << Logs();
  EXPECT_NE(put.error_message().find("disk space below reserve on replica n2"),
            std::string::npos)
      << put.error_message();
  constexpr int kServing = grpc::health::v1::HealthCheckResponse::SERVING;
  EXPECT_TRUE(WaitForHealth("n1", "strata.v1.KV.write",
                            grpc::health::v1::HealthCheckResponse::NOT_SERVING,
                            absl::Seconds(5)))
      << Logs();
  EXPECT_EQ(Health("n1", "strata.v1.KV"), kServing);
  grpc::Status del = Delete("n1", "k");
  EXPECT_TRUE(del.ok()) << del.error_message();
  EXPECT_GE(Sample("n1",
                   "strata_write_refusals_total{reason=\"replica_disk_reserve\"}"),
            1);

  // n2 back with the default reserve: writes resume, no primary restart.
  nodes_["n2"]->Signal(SIGTERM);
  ASSERT_TRUE(nodes_["n2"]->Wait(absl::Seconds(10)).ok());
  RestartAndWriteThroughN1("n2");
}

// Transport security between nodes (docs/cluster.md, "Transport
// security"): with --tls_cert every node's port serves TLS (a replica's
// too), and the nodes dial each other over TLS verified against
// --cluster_tls_ca. Writes are acknowledged only once both replicas have
// them, so an acknowledged write shows replication over TLS works; a Put
// through a replica shows forwarding does. etcd is reached over mutual TLS
// too (--cluster_etcd_ca/_cert/_key against an https etcd that requires
// client certificates): the nodes register, find the map and elect.
TEST_F(ClusterNodeE2ETest, NodesReplicateAndForwardOverTls) {
  const testing::TestPki& pki = testing::TestPki::Get();
  if (!pki.error().empty()) GTEST_SKIP() << pki.error();
  const testing::EtcdServerTls etcd_server = testing::MutualTlsEtcd(
      [&](const std::string& name) { return pki.Path(name); });
  const cluster::EtcdTlsOptions& etcd_client = etcd_server.probe;
  store_.reset();
  client_.reset();
  etcd_.reset();
  auto etcd = EtcdProcess::Start(absl::StrCat(dir_.path(), "/etcd-tls"),
                                 absl::Seconds(30), etcd_server);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  etcd_ = *std::move(etcd);
  client_ = std::make_unique<EtcdClient>(
      EtcdClientOptions{.endpoint = etcd_->endpoint(),
                        .tls = etcd_client,
                        .auth = {}});
  store_ = std::make_unique<ClusterStore>(client_.get(), "strata/");
  ASSERT_TRUE(Init().ok());
  const std::vector<std::string> tls = {
      absl::StrCat("--tls_cert=", pki.Path("server.crt")),
      absl::StrCat("--tls_key=", pki.Path("server.key")),
      absl::StrCat("--cluster_tls_ca=", pki.Path("ca.crt")),
      absl::StrCat("--cluster_etcd_ca=", etcd_client.ca_file),
      absl::StrCat("--cluster_etcd_cert=", etcd_client.cert_file),
      absl::StrCat("--cluster_etcd_key=", etcd_client.key_file)};
  ASSERT_TRUE(StartAllNodes(tls));
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pki.Pem("ca.crt");
  auto kv = [&](const std::string& id) {
    return v1::KV::NewStub(
        grpc::CreateChannel(addresses_[id], grpc::SslCredentials(ssl)));
  };
  auto put = [&](const std::string& id, const std::string& key) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1::PutRequest req;
    req.set_key(key);
    req.set_value("tls");
    v1::PutResponse resp;
    return kv(id)->Put(&ctx, req, &resp);
  };
  grpc::Status first;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  do {
    first = put("n1", "first");
  } while (!first.ok() && absl::Now() < deadline);
  ASSERT_TRUE(first.ok()) << first.error_message() << Logs();

  grpc::Status forwarded = put("n2", "via-n2");
  EXPECT_TRUE(forwarded.ok()) << forwarded.error_code() << " "
                              << forwarded.error_message() << Logs();
  // The replica's port serves TLS only.
  grpc::Status plaintext = Put("n2", "plain", "x");
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE)
      << plaintext.error_message();

  // `strata cluster status` reaches etcd and the primary over TLS too.
  testing::ProcessResult cli = testing::RunProcess(
      {testing::BinaryPath("client/strata"), "--timeout=10", "cluster",
       "status", absl::StrCat("--etcd=", etcd_->endpoint()),
       absl::StrCat("--etcd_ca=", etcd_client.ca_file),
       absl::StrCat("--etcd_cert=", etcd_client.cert_file),
       absl::StrCat("--etcd_key=", etcd_client.key_file),
       absl::StrCat("--tls_ca=", pki.Path("ca.crt"))},
      "", absl::Seconds(60));
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_THAT(cli.out, ::testing::ContainsRegex("0 +n2 +yes +yes "))
      << cli.out;
}

// The nodes reach an etcd with authentication enabled as an etcd user
// (--cluster_etcd_user/--cluster_etcd_password_file): they register, find
// the map, elect a controller, replicate (a write is acknowledged once both
// replicas have it) and forward.
TEST_F(ClusterNodeE2ETest, NodesUseAnEtcdWithUserAuthentication) {
  const absl::Status enabled = etcd_->EnableAuth("root-pw");
  ASSERT_TRUE(enabled.ok()) << enabled;
  store_.reset();
  client_ = std::make_unique<EtcdClient>(
      EtcdClientOptions{.endpoint = etcd_->endpoint(),
                        .tls = {},
                        .auth = etcd_->root_auth()});
  store_ = std::make_unique<ClusterStore>(client_.get(), "strata/");
  ASSERT_TRUE(Init().ok());
  const std::string password_file = absl::StrCat(dir_.path(), "/etcd-pw");
  testing::WriteFileOrDie(password_file, "root-pw\n");
  ASSERT_TRUE(StartAllNodes(
      {"--cluster_etcd_user=root",
       absl::StrCat("--cluster_etcd_password_file=", password_file)}));
  grpc::Status first;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  do {
    first = Put("n1", "first", "auth");
  } while (!first.ok() && absl::Now() < deadline);
  ASSERT_TRUE(first.ok()) << first.error_message() << Logs();
  grpc::Status forwarded = Put("n2", "via-n2", "auth");
  EXPECT_TRUE(forwarded.ok()) << forwarded.error_message() << Logs();

  // A user without its password file, or an empty file, is a usage error
  // naming the flag (exit 2), before the node touches etcd.
  const std::string empty_file = absl::StrCat(dir_.path(), "/empty-pw");
  testing::WriteFileOrDie(empty_file, "");
  for (const auto& [flags, error] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--cluster_etcd_user=root"},
            "--cluster_etcd_user needs --cluster_etcd_password_file"},
           {{"--cluster_etcd_user=root",
             absl::StrCat("--cluster_etcd_password_file=", empty_file)},
            absl::StrCat("--cluster_etcd_password_file file ", empty_file)}}) {
    std::vector<std::string> args = {
        testing::BinaryPath("server/strata-server"),
        "--listen=127.0.0.1:0",
        absl::StrCat("--data_dir=", dir_.path(), "/n9"),
        absl::StrCat("--cluster_etcd=", etcd_->endpoint()),
        "--node_id=n9",
        "--advertise_address=127.0.0.1:1"};
    args.insert(args.end(), flags.begin(), flags.end());
    testing::ProcessResult r = testing::RunProcess(args, "", absl::Seconds(60));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, ::testing::HasSubstr(error));
  }
}

// A node whose certificate does not name the address it advertises (n2 at
// 127.0.0.2; the certificate has IP:127.0.0.1 and DNS:localhost) gets no
// replication stream: the primary checks the name it dials and refuses the
// handshake, so n2 never holds a revision, and once it is dropped from the
// in-sync set as lagging the range goes on with n1 and n3.
TEST_F(ClusterNodeE2ETest, PeerWhoseCertificateDoesNotNameItsAddressIsRefused) {
  const testing::TestPki& pki = testing::TestPki::Get();
  if (!pki.error().empty()) GTEST_SKIP() << pki.error();
  absl::StatusOr<int> port = testing::PickFreePort();
  ASSERT_TRUE(port.ok()) << port.status();
  addresses_["n2"] = absl::StrCat("127.0.0.2:", *port);
  ASSERT_TRUE(Init().ok());
  const std::vector<std::string> tls = {
      absl::StrCat("--tls_cert=", pki.Path("server.crt")),
      absl::StrCat("--tls_key=", pki.Path("server.key")),
      absl::StrCat("--cluster_tls_ca=", pki.Path("ca.crt"))};
  ASSERT_TRUE(StartAllNodes(tls));
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pki.Pem("ca.crt");
  auto kv = v1::KV::NewStub(
      grpc::CreateChannel(addresses_["n1"], grpc::SslCredentials(ssl)));
  grpc::Status put;
  const absl::Time deadline = absl::Now() + absl::Seconds(40);
  do {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1::PutRequest req;
    req.set_key("k");
    req.set_value("v");
    v1::PutResponse resp;
    put = kv->Put(&ctx, req, &resp);
  } while (!put.ok() && absl::Now() < deadline);
  ASSERT_TRUE(put.ok()) << put.error_message() << Logs();
  absl::StatusOr<cluster::RangeDescriptor> range = Range();
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_THAT(range->in_sync, ::testing::Not(::testing::Contains("n2")));
  EXPECT_GE(Sample("n3", "strata_revision"), 1);
  EXPECT_EQ(Sample("n2", "strata_revision"), 0);  // Up, and empty.

  // The cause is the name, not reachability: dialing n2 with the name its
  // certificate does carry gets an answer from it; as 127.0.0.2, the
  // handshake fails.
  auto health_status = [&](const std::string& name_override) {
    grpc::ChannelArguments args;
    if (!name_override.empty()) {
      args.SetSslTargetNameOverride(name_override);
    }
    auto health = grpc::health::v1::Health::NewStub(grpc::CreateCustomChannel(
        addresses_["n2"], grpc::SslCredentials(ssl), args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    grpc::health::v1::HealthCheckResponse resp;
    return health->Check(&ctx, {}, &resp).error_code();
  };
  EXPECT_NE(health_status("localhost"), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(health_status(""), grpc::StatusCode::UNAVAILABLE);
}

// With mutual TLS a replica does not forward a call made with a client
// certificate (the primary would authorize this node's identity instead):
// it answers FAILED_PRECONDITION naming the primary, whom the client then
// calls itself. The nodes present their own certificates to each other.
TEST_F(ClusterNodeE2ETest, MutualTlsCallsGoToThePrimaryNotThroughAReplica) {
  const testing::TestPki& pki = testing::TestPki::Get();
  if (!pki.error().empty()) GTEST_SKIP() << pki.error();
  ASSERT_TRUE(Init().ok());
  const std::vector<std::string> mtls = {
      absl::StrCat("--tls_cert=", pki.Path("server.crt")),
      absl::StrCat("--tls_key=", pki.Path("server.key")),
      absl::StrCat("--tls_client_ca=", pki.Path("ca.crt"))};
  ASSERT_TRUE(StartAllNodes(mtls));
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pki.Pem("ca.crt");
  ssl.pem_cert_chain = pki.Pem("client.crt");
  ssl.pem_private_key = pki.Pem("client.key");
  auto put = [&](const std::string& id, grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
    v1::PutRequest req;
    req.set_key("k");
    req.set_value("mtls");
    v1::PutResponse resp;
    return v1::KV::NewStub(grpc::CreateChannel(addresses_[id],
                                               grpc::SslCredentials(ssl)))
        ->Put(ctx, req, &resp);
  };
  grpc::Status first;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  do {
    grpc::ClientContext ctx;
    first = put("n1", &ctx);
  } while (!first.ok() && absl::Now() < deadline);
  ASSERT_TRUE(first.ok()) << first.error_message() << Logs();

  grpc::ClientContext ctx;
  grpc::Status via_replica = put("n2", &ctx);
  EXPECT_EQ(via_replica.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << via_replica.error_message();
  EXPECT_NE(via_replica.error_message().find("client certificate"),
            std::string::npos)
      << via_replica.error_message();
  auto primary = ctx.GetServerTrailingMetadata().find("strata-primary");
  ASSERT_NE(primary, ctx.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(primary->second.data(), primary->second.size()),
            addresses_["n1"]);
}

// A crash between the two renames of a re-sync's directory swap leaves
// ranges/0/db.replaced and no db/ (docs/replication.md, "The directory
// swap and its recovery"), plus the received checkpoint: the restarted
// node puts its database back and removes the leftovers (without the
// recovery it would open a new, empty db/ and leak db.replaced), and
// rejoins as an in-sync replica.
TEST_F(ClusterNodeE2ETest, ReplicaRestartedMidSwapRecoversItsDatabase) {
  ASSERT_GT(StartClusterAndWrite(), 0);
  ASSERT_TRUE(Put("n1", "before", "b").ok());
  nodes_["n2"]->Signal(SIGKILL);
  ASSERT_TRUE(nodes_["n2"]->Wait(absl::Seconds(10)).ok());
  const std::string range = absl::StrCat(dir_.path(), "/n2/ranges/0");
  std::filesystem::rename(range + "/db", range + "/db.replaced");
  std::filesystem::create_directories(range + "/resync-3");
  auto restarted = StartNode("n2");
  ASSERT_TRUE(restarted.ok()) << restarted.status() << Logs();
  nodes_["n2"] = *std::move(restarted);
  EXPECT_TRUE(std::filesystem::exists(range + "/db"));
  EXPECT_FALSE(std::filesystem::exists(range + "/db.replaced"));
  EXPECT_FALSE(std::filesystem::exists(range + "/resync-3"));
  // It catches up and is (back) in the in-sync set: serving as a replica.
  ASSERT_TRUE(Put("n1", "after", "a").ok()) << Logs();
  bool rejoined = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  absl::StatusOr<cluster::RangeDescriptor> r;
  while (!rejoined && absl::Now() < deadline) {
    r = Range();
    rejoined = r.ok() && r->IsInSync("n2");
    if (!rejoined) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(rejoined) << Logs();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->epoch, 1u);
}

}  // namespace
}  // namespace strata
