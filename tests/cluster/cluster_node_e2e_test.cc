// The cluster wired into strata-server, end to end (docs/cluster.md,
// "Running a cluster"): a real etcd and three strata-server processes in
// cluster mode on 127.0.0.1, one range with RF 3, tiny memtables.
//
// What it checks: writes acknowledged by the primary are readable there; a
// replica refuses a client with FAILED_PRECONDITION naming the primary;
// after the primary is SIGKILLed another node becomes primary (higher
// epoch) and serves writes within the lease TTL plus a bound, with every
// acknowledged write present; the killed node, restarted, catches up as a
// replica and is back in the in-sync set. Every wait is bounded; every
// process is killed by PID when the test ends.

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/strata_client.h"
#include "cluster/control/cluster_store.h"
#include "cluster/etcd_client.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/cluster/etcd_process.h"
#include "tests/server/metrics_text.h"
#include "tests/server/process_util.h"
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
        EtcdClientOptions{.endpoint = etcd_->endpoint()});
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
      const std::string& id) {
    return ServerProcess::Start(
        absl::StrCat(dir_.path(), "/", id),
        {absl::StrCat("--listen=", addresses_[id]),
         absl::StrCat("--cluster_etcd=", etcd_->endpoint()),
         absl::StrCat("--node_id=", id),
         absl::StrCat("--advertise_address=", addresses_[id]),
         absl::StrCat("--cluster_lease_ttl=",
                      absl::FormatDuration(kLeaseTtl)),
         "--replication_timeout=5s", "--metrics_listen=127.0.0.1:0",
         "--memtable_bytes=65536", "--wal_sync=none", "--cq_threads=1",
         "--io_threads=2", "--compaction_threads=1", "--malloc_tuning=false"});
  }

  std::unique_ptr<v1::KV::Stub> Kv(const std::string& id) {
    return v1::KV::NewStub(grpc::CreateChannel(
        addresses_[id], grpc::InsecureChannelCredentials()));
  }

  grpc::Status Put(const std::string& id, const std::string& key,
                   const std::string& value) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    v1::PutResponse resp;
    return Kv(id)->Put(&ctx, req, &resp);
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

  // A replica names the primary.
  grpc::Status refused = Put("n2", "k", "v");
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
  grpc::Status from_replica = Put("n1", "k", "v");
  EXPECT_EQ(from_replica.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << from_replica.error_message();
}

}  // namespace
}  // namespace strata
