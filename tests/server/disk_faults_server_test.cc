// A slow or failing disk over gRPC (docs/operations.md, "Slow or failing
// disk"), with the engine on the fault-injecting Env:
//
//  * a Put whose deadline passes while its WAL fsync is in flight gets
//    DEADLINE_EXCEEDED, yet the write happened and is durable once the
//    fsync returns (the usual indeterminate outcome of a deadline); Gets and
//    health checks are answered while that fsync is held;
//  * after EIO on the WAL, writes get UNAVAILABLE ("read-only after an I/O
//    error") and keep getting it after the disk answers again, the health
//    name "strata.v1.KV.write" turns NOT_SERVING while "" and
//    "strata.v1.KV" stay SERVING, refusals are counted with reason
//    engine_read_only, and reads keep being served.
//
// The engine-level tests (tests/storage/db/slow_and_failing_disk_test.cc)
// cover the ack order, group commit under slow fsyncs and the restart.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <string>

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
namespace t = ::strata::testing;

void SetDeadline(grpc::ClientContext* ctx,
                 std::chrono::milliseconds in = std::chrono::seconds(20)) {
  ctx->set_deadline(std::chrono::system_clock::now() + in);
}

class DiskFaultsServerTest : public t::WriteGateServerTest {
 protected:
  void SetUp() override {
    ServerOptions options = t::TestServerOptions();
    // Free space is not what this test is about; the gate is refreshed by
    // hand.
    options.disk_space.min_free_bytes = 0;
    options.disk_space.refresh_interval = absl::Hours(1);
    StartServer(options, storage::Options());
  }
  void TearDown() override {
    env_.ReleaseSyncs();
    WriteGateServerTest::TearDown();
  }

  // The value, "NOT_FOUND", or "ERROR <code>: <message>".
  std::string Get(const std::string& k) {
    v1::GetRequest req;
    req.set_key(k);
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = kv_->Get(&ctx, req, &resp);
    if (!s.ok()) {
      return "ERROR " + std::to_string(s.error_code()) + ": " + s.error_message();
    }
    return resp.found() ? resp.value() : "NOT_FOUND";
  }
};

TEST_F(DiskFaultsServerTest, AWriteWhoseDeadlinePassesDuringItsFsyncIsDurable) {
  ASSERT_TRUE(Put("before", "b").ok());
  env_.HoldSyncs(t::kWalFile);
  // The client gives up at its deadline; the fsync has not returned.
  grpc::Status s = Put("slow", "s", std::chrono::milliseconds(1000));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_message();
  ASSERT_TRUE(env_.WaitForHeldSyncs(1, absl::Seconds(30)))
      << "the Put never reached its fsync";
  // Reads and health checks are answered while the fsync is held; the
  // write is not visible yet.
  EXPECT_EQ(Get("before"), "b");
  EXPECT_EQ(Get("slow"), "NOT_FOUND");
  EXPECT_EQ(Health(""), HealthResponse::SERVING);
  EXPECT_EQ(Health(kWriteHealthName), HealthResponse::SERVING);

  // The disk answers: the write the client saw fail was committed.
  env_.ReleaseSyncs();
  ASSERT_TRUE(server_->WaitForIdle(absl::Seconds(30)));
  EXPECT_EQ(Get("slow"), "s");
}

TEST_F(DiskFaultsServerTest, EioMakesWritesUnavailableForGoodReadsGoOnReadinessDown) {
  ASSERT_TRUE(Put("a", "1").ok());
  EXPECT_EQ(Health(kWriteHealthName), HealthResponse::SERVING);

  env_.Inject({.op = FaultOp::kAppend, .files = t::kWalFile, .error = EIO});
  grpc::Status s = Put("b", "2");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_NE(s.error_message().find("Input/output error"), std::string::npos)
      << s.error_message();
  env_.ClearFaults();  // EIO is not transient: nothing resumes.
  server_->server()->TEST_write_gate()->Refresh();
  EXPECT_EQ(Health(kWriteHealthName), HealthResponse::NOT_SERVING);
  EXPECT_EQ(Health(""), HealthResponse::SERVING);
  EXPECT_EQ(Health("strata.v1.KV"), HealthResponse::SERVING);
  for (int i = 0; i < 3; i++) {
    s = Put("c", "3");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_NE(s.error_message().find("read-only after an I/O error"),
              std::string::npos)
        << s.error_message();
  }
  EXPECT_EQ(observer_.count("engine_read_only"), 3);
  EXPECT_EQ(Get("a"), "1");
  EXPECT_EQ(Get("b"), "NOT_FOUND");
  EXPECT_EQ(Get("c"), "NOT_FOUND");
  server_->server()->TEST_write_gate()->Refresh();
  EXPECT_EQ(Health(kWriteHealthName), HealthResponse::NOT_SERVING);
}

}  // namespace
}  // namespace strata::server
