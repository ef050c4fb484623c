// A full disk over gRPC (server/write_gate.h, storage/db/db_space.cc):
// below --min_free_disk_bytes writes that add data get RESOURCE_EXHAUSTED
// naming the reserve while deletes and reads go on; the health name
// "strata.v1.KV.write" is NOT_SERVING meanwhile and "" / "strata.v1.KV"
// stay SERVING; an engine that ran out of space (ENOSPC) refuses writes,
// then resumes by itself once space is back, with no restart; refusals are
// counted by reason.

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "server/health_service.h"
#include "server/kv_server.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/server/write_gate_fixture.h"
#include "tests/support/fault_env.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using HealthResponse = grpc::health::v1::HealthCheckResponse;
using ::strata::testing::FaultInjectionEnv;
using ::strata::testing::FaultOp;

constexpr uint64_t kReserve = 1 << 20;

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
}

class FullDiskServerTest : public strata::testing::WriteGateServerTest {
 protected:
  // `refresh`: how often the gate re-reads free space (a long one: the test
  // refreshes by hand).
  void Start(absl::Duration refresh = absl::Hours(1)) {
    ServerOptions options = strata::testing::TestServerOptions();
    options.disk_space.min_free_bytes = kReserve;
    options.disk_space.refresh_interval = refresh;
    options.disk_space.TEST_free_bytes = [this]() -> absl::StatusOr<uint64_t> {
      return free_bytes_.load();
    };
    options.disk_space.replicas_reserve = [this] {
      return replica_short_.load()
                 ? absl::ResourceExhaustedError(
                       "disk space below reserve on replica n2 of range 0")
                 : absl::OkStatus();
    };
    storage::Options engine;
    engine.out_of_space_retry_initial_micros = 1000;
    engine.out_of_space_retry_max_micros = 20'000;
    StartServer(options, engine);
  }

  grpc::Status Delete(const std::string& k) {
    v1::DeleteRequest req;
    req.set_key(k);
    v1::DeleteResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return kv_->Delete(&ctx, req, &resp);
  }
  absl::StatusOr<std::string> Get(const std::string& k) {
    v1::GetRequest req;
    req.set_key(k);
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = kv_->Get(&ctx, req, &resp);
    if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                                     s.error_message());
    if (!resp.found()) return absl::NotFoundError(k);
    return resp.value();
  }
  void Refresh() { server_->server()->TEST_write_gate()->Refresh(); }

  std::atomic<uint64_t> free_bytes_{uint64_t{1} << 40};
  // What the gate's replicas_reserve (a cluster primary's) reports.
  std::atomic<bool> replica_short_{false};
};

TEST_F(FullDiskServerTest, BelowReserveRefusesWritesThatAddDataButNotDeletes) {
  Start();
  ASSERT_TRUE(Put("a", "1").ok());
  ASSERT_TRUE(Put("b", "2").ok());
  EXPECT_EQ(Health(kWriteHealthName), HealthResponse::SERVING);

  free_bytes_ = 1000;
  Refresh();
  EXPECT_EQ(observer_.free(), 1000u);
  grpc::Status s = Put("c", "3");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find(absl::StrFormat(
                "disk space below reserve: 1000 bytes free "
                "(--min_free_disk_bytes=%d)",
                kReserve)),
            std::string::npos)
      << s.error_message();
  // Every kind of write that adds data is refused.
  {
    v1::WriteRequest req;
    req.add_mutations()->mutable_delete_()->set_key("a");
    auto* put = req.add_mutations()->mutable_put();
    put->set_key("w");
    put->set_value("x");
    v1::WriteResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_EQ(kv_->Write(&ctx, req, &resp).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {
    v1::IncrementRequest req;
    req.set_key("n");
    req.set_delta(1);
    v1::IncrementResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_EQ(kv_->Increment(&ctx, req, &resp).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {
    v1::TxnRequest req;
    req.add_success()->mutable_put()->set_key("t");
    v1::TxnResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_EQ(kv_->Txn(&ctx, req, &resp).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  {
    v1::LeaseGrantRequest req;
    req.set_ttl_seconds(60);
    v1::LeaseGrantResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_EQ(kv_->LeaseGrant(&ctx, req, &resp).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // Deletes free space: allowed, alone or in a Write of deletes only.
  EXPECT_TRUE(Delete("a").ok());
  {
    v1::WriteRequest req;
    req.add_mutations()->mutable_delete_()->set_key("b");
    v1::WriteResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_TRUE(kv_->Write(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(Get("a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(observer_.count("disk_reserve"), 5);
  // Readiness for writes is down; liveness is not.
  EXPECT_EQ(Health(kWriteHealthName), HealthResponse::NOT_SERVING);
  EXPECT_EQ(Health(""), HealthResponse::SERVING);
  EXPECT_EQ(Health("strata.v1.KV"), HealthResponse::SERVING);

  // Space is back: writes resume, no restart.
  free_bytes_ = 10 * kReserve;
  Refresh();
  EXPECT_EQ(Health(kWriteHealthName), HealthResponse::SERVING);
  ASSERT_TRUE(Put("c", "3").ok());
  EXPECT_EQ(*Get("c"), "3");
}

// A cluster primary's in-sync replica is short of disk space: the gate
// refuses what adds data with the replica's reason, passes deletes, and
// takes writes again at once when the replica has room (no refresh: the
// condition is read on every write).
TEST_F(FullDiskServerTest, ReplicaBelowItsReserveRefusesWritesThatAddData) {
  Start();
  ASSERT_TRUE(Put("a", "1").ok());
  replica_short_ = true;
  grpc::Status s = Put("b", "2");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("on replica n2"), std::string::npos)
      << s.error_message();
  EXPECT_TRUE(Delete("a").ok());
  EXPECT_EQ(observer_.count("replica_disk_reserve"), 1);
  EXPECT_EQ(observer_.count("disk_reserve"), 0);
  replica_short_ = false;
  EXPECT_TRUE(Put("b", "2").ok());
  EXPECT_EQ(*Get("b"), "2");
}

// The engine itself runs out of space (the reserve was not enough): writes
// are refused, readiness follows within one refresh, and once space is
// back the engine's retry (1 ms backoff here) and the gate's refresh
// (50 ms) bring both back by themselves. The test waits on a health Watch
// stream, not on time.
TEST_F(FullDiskServerTest, EngineOutOfSpaceRecoversByItselfAndReadinessFollows) {
  Start(absl::Milliseconds(50));
  ASSERT_TRUE(Put("a", "1").ok());
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(kWriteHealthName);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto watch = health_->Watch(&ctx, req);
  HealthResponse resp;
  ASSERT_TRUE(watch->Read(&resp));
  EXPECT_EQ(resp.status(), HealthResponse::SERVING);

  env_.Inject({.op = FaultOp::kAppend,
               .files = strata::testing::kWalFile,
               .error = ENOSPC});
  grpc::Status s = Put("b", "2");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("No space left on device"),
            std::string::npos)
      << s.error_message();
  ASSERT_TRUE(watch->Read(&resp));
  EXPECT_EQ(resp.status(), HealthResponse::NOT_SERVING);
  s = Put("c", "3");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_GE(observer_.count("engine_out_of_space"), 1);
  EXPECT_EQ(*Get("a"), "1");
  EXPECT_EQ(Health(""), HealthResponse::SERVING);

  env_.ClearFaults();
  ASSERT_TRUE(watch->Read(&resp));
  EXPECT_EQ(resp.status(), HealthResponse::SERVING);
  ctx.TryCancel();
  ASSERT_TRUE(Put("d", "4").ok());
  EXPECT_EQ(*Get("d"), "4");
  EXPECT_EQ(Get("b").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata::server
