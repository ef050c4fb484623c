#ifndef STRATA_TESTS_SERVER_WRITE_GATE_FIXTURE_H_
#define STRATA_TESTS_SERVER_WRITE_GATE_FIXTURE_H_

// A fixture base for write-gate tests over gRPC (a full disk, a slow or
// failing one): an in-process server whose engine runs on a
// FaultInjectionEnv, an observer counting write refusals, and KV and health
// stubs on one channel. Header-only: the tests that include it link gtest.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "server/rpc_observer.h"
#include "server/server_options.h"
#include "strata/storage/db.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/support/fault_env.h"

namespace strata::testing {

// Counts write refusals by reason and keeps the last free-space reading.
// Thread-safe.
class RefusalCounter final : public server::RpcObserver {
 public:
  void OnWriteRefused(std::string_view reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    counts_[std::string(reason)]++;
  }
  void OnDiskFree(uint64_t free_bytes) override { free_ = free_bytes; }
  int count(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_[reason];
  }
  uint64_t free() const { return free_.load(); }

 private:
  std::mutex mu_;
  std::map<std::string, int> counts_;
  std::atomic<uint64_t> free_{0};
};

// Derived fixtures call StartServer from SetUp or from each test; a derived
// TearDown calls this one last.
class WriteGateServerTest : public ::testing::Test {
 protected:
  // Starts the server with `options` and `engine` on env_, observed by
  // observer_, and connects kv_ and health_. Fails the test (ASSERT) if the
  // server does not start.
  void StartServer(server::ServerOptions options, storage::Options engine) {
    PinGrpcLibrary();
    engine.env = &env_;
    auto server = InProcessServer::Start(options, &observer_, nullptr, engine);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel(server_->address(),
                                       grpc::InsecureChannelCredentials());
    kv_ = v1::KV::NewStub(channel);
    health_ = grpc::health::v1::Health::NewStub(channel);
  }
  void TearDown() override {
    kv_.reset();
    health_.reset();
    server_.reset();
  }

  // Puts `k` = `v` through kv_ with the given deadline.
  grpc::Status Put(const std::string& k, const std::string& v,
                   std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    v1::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    return kv_->Put(&ctx, req, &resp);
  }
  // What the health service says of `service` (20 s deadline); a failed
  // check fails the test and returns UNKNOWN.
  grpc::health::v1::HealthCheckResponse::ServingStatus Health(
      const std::string& service) {
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(20));
    grpc::Status s = health_->Check(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << service << ": " << s.error_message();
    return resp.status();
  }

  FaultInjectionEnv env_;
  RefusalCounter observer_;
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::KV::Stub> kv_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_SERVER_WRITE_GATE_FIXTURE_H_
