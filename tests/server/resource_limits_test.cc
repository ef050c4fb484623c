// Resource bounds (docs/security.md, "Resource bounds"): the in-flight cap
// under a burst and its recovery, max concurrent streams per connection,
// keepalive enforcement, the per-message Scan caps, option validation, and
// the flags of the real binary.

#include <signal.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "server/kv_server.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using server::ServerOptions;

constexpr absl::Duration kWait = absl::Seconds(20);

// Holds every Scan at its first batch until opened. Install with
// Hook(); thread-safe.
class ScanGate {
 public:
  std::function<void(int, grpc::ServerContext*)> Hook() {
    return [this](int batch, grpc::ServerContext*) {
      if (batch == 0) Arrive();
    };
  }
  // Waits (bounded) until n scans are held. False at the timeout.
  bool WaitForHeld(int n) {
    absl::MutexLock l(&mu_);
    auto cond = [&] {
      mu_.AssertHeld();
      return held_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), kWait);
  }
  void Open() {
    absl::MutexLock l(&mu_);
    open_ = true;
  }
  // Holds the scans that start from now on.
  void Close() {
    absl::MutexLock l(&mu_);
    open_ = false;
    held_ = 0;
  }

 private:
  void Arrive() {
    absl::MutexLock l(&mu_);
    if (open_) return;
    held_++;
    mu_.AwaitWithTimeout(absl::Condition(&open_), kWait);
  }

  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = false;
  int held_ ABSL_GUARDED_BY(mu_) = 0;
};

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address,
                                          grpc::ChannelArguments args = {}) {
  // A connection of its own, not shared with other channels.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d) {
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + d));
}

// A whole Scan; the sizes of its messages go to *sizes if not null.
grpc::Status RunScan(v1::KV::Stub* stub, const v1::ScanRequest& request,
                     std::vector<int>* sizes = nullptr,
                     absl::Duration deadline = kWait) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline);
  auto reader = stub->Scan(&ctx, request);
  v1::ScanResponse resp;
  while (reader->Read(&resp)) {
    if (sizes != nullptr) sizes->push_back(resp.pairs_size());
  }
  return reader->Finish();
}

grpc::Status Get(v1::KV::Stub* stub, absl::Duration deadline = kWait) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, deadline);
  v1::GetRequest req;
  req.set_key("k");
  v1::GetResponse resp;
  return stub->Get(&ctx, req, &resp);
}

grpc::Status Put(v1::KV::Stub* stub, const std::string& key) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, kWait);
  v1::PutRequest req;
  req.set_key(key);
  req.set_value("v");
  v1::PutResponse resp;
  return stub->Put(&ctx, req, &resp);
}

class ResourceLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override { PinGrpcLibrary(); }

  void StartServer(ServerOptions options) {
    options.TEST_before_scan_batch = gate_.Hook();
    auto s = InProcessServer::Start(std::move(options));
    ASSERT_OK(s.status());
    server_ = *std::move(s);
    channel_ = NewChannel(server_->address());
    stub_ = v1::KV::NewStub(channel_);
  }

  // Starts n Scans on threads; their statuses land in *statuses once
  // joined.
  std::vector<std::thread> StartScans(int n,
                                      std::vector<grpc::Status>* statuses) {
    statuses->assign(n, grpc::Status());
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([this, i, statuses] {
        (*statuses)[i] = RunScan(stub_.get(), v1::ScanRequest());
      });
    }
    return threads;
  }

  ScanGate gate_;
  std::unique_ptr<InProcessServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KV::Stub> stub_;
};

TEST_F(ResourceLimitsTest, DefaultsMatchTheDocumentedFlags) {
  ServerOptions o;
  EXPECT_EQ(o.max_inflight_rpcs, 4096);
  EXPECT_EQ(o.transport.max_concurrent_streams, 256);
  EXPECT_EQ(o.transport.keepalive_time, absl::Seconds(60));
  EXPECT_EQ(o.transport.keepalive_timeout, absl::Seconds(20));
  EXPECT_EQ(o.transport.min_client_ping_interval, absl::Seconds(10));
  EXPECT_EQ(o.transport.max_ping_strikes, 2);
  EXPECT_EQ(o.scan_batch_bytes, size_t{1} << 20);
  EXPECT_EQ(o.scan_batch_max_pairs, 10000u);
  EXPECT_EQ(o.tls.reload_interval, absl::Seconds(60));
  EXPECT_FALSE(o.tls.enabled());
}

TEST_F(ResourceLimitsTest, InFlightCapRejectsABurstAndRecovers) {
  constexpr int kCap = 3;
  ServerOptions options = TestServerOptions();
  options.max_inflight_rpcs = kCap;
  options.io_threads = kCap;  // Every held scan holds a pool thread.
  StartServer(options);
  ASSERT_TRUE(Put(stub_.get(), "a").ok());

  std::vector<grpc::Status> held;
  std::vector<std::thread> holders = StartScans(kCap, &held);
  ASSERT_TRUE(gate_.WaitForHeld(kCap));

  // A burst above the cap: every extra Scan is refused at once.
  std::vector<grpc::Status> burst;
  std::vector<std::thread> bursters = StartScans(16, &burst);
  for (std::thread& t : bursters) t.join();
  for (const grpc::Status& s : burst) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(s.error_message(), HasSubstr("--max_inflight_rpcs"));
  }
  // The cap is per method: other methods are unaffected.
  EXPECT_TRUE(Put(stub_.get(), "b").ok());
  EXPECT_TRUE(Get(stub_.get()).ok());

  gate_.Open();
  for (std::thread& t : holders) t.join();
  for (const grpc::Status& s : held) EXPECT_TRUE(s.ok()) << s.error_message();

  // Recovered: scans run again, and exactly kCap slots are free (none
  // leaked by the refused or finished calls).
  for (int i = 0; i < 5; ++i) {
    std::vector<int> sizes;
    EXPECT_TRUE(RunScan(stub_.get(), v1::ScanRequest(), &sizes).ok());
    EXPECT_THAT(sizes, ElementsAre(2));
  }
  gate_.Close();
  holders = StartScans(kCap, &held);
  ASSERT_TRUE(gate_.WaitForHeld(kCap));
  EXPECT_EQ(RunScan(stub_.get(), v1::ScanRequest()).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  gate_.Open();
  for (std::thread& t : holders) t.join();
  for (const grpc::Status& s : held) EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(ResourceLimitsTest, StreamsBeyondTheConnectionLimitWait) {
  ServerOptions options = TestServerOptions();
  options.transport.max_concurrent_streams = 1;
  StartServer(options);
  // One completed RPC: the client has read the server's SETTINGS.
  ASSERT_TRUE(Get(stub_.get()).ok());

  std::vector<grpc::Status> held;
  std::vector<std::thread> holder = StartScans(1, &held);
  ASSERT_TRUE(gate_.WaitForHeld(1));
  // The connection's only stream is taken: a second RPC on it waits (and
  // here runs out of time) instead of failing...
  EXPECT_EQ(Get(stub_.get(), absl::Milliseconds(300)).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  // ...while another connection is served.
  auto other = v1::KV::NewStub(NewChannel(server_->address()));
  EXPECT_TRUE(Get(other.get()).ok());
  gate_.Open();
  holder[0].join();
  EXPECT_TRUE(held[0].ok());
  EXPECT_TRUE(Get(stub_.get()).ok());
}

TEST_F(ResourceLimitsTest, TooFrequentClientPingsCloseTheConnection) {
  StartServer(TestServerOptions());  // Default enforcement: 10 s, 2 strikes.
  // A client that keeps pinging (every 20 ms, as far as gRPC's own client
  // throttling allows) while its scan is quiet; the server tolerates two
  // strikes. Takes a few seconds here.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS, 0);
  auto pinger = v1::KV::NewStub(NewChannel(server_->address(), args));
  grpc::Status s = RunScan(pinger.get(), v1::ScanRequest(), nullptr,
                           absl::Seconds(30));
  // The server sent GOAWAY (ENHANCE_YOUR_CALM, too_many_pings) long before
  // the deadline, failing the stream.
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  gate_.Open();
  // Well-behaved clients are unaffected.
  EXPECT_TRUE(Get(stub_.get()).ok());
  EXPECT_TRUE(RunScan(stub_.get(), v1::ScanRequest()).ok());
}

TEST_F(ResourceLimitsTest, ScanMessagesAreCappedByPairsAndBytes) {
  ServerOptions options = TestServerOptions();
  options.scan_batch_max_pairs = 3;
  StartServer(options);
  gate_.Open();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Put(stub_.get(), absl::StrFormat("k%02d", i)).ok());
  }
  std::vector<int> sizes;
  ASSERT_TRUE(RunScan(stub_.get(), v1::ScanRequest(), &sizes).ok());
  EXPECT_THAT(sizes, ElementsAre(3, 3, 3, 1));
  v1::ScanRequest limited;
  limited.set_limit(7);
  sizes.clear();
  ASSERT_TRUE(RunScan(stub_.get(), limited, &sizes).ok());
  EXPECT_THAT(sizes, ElementsAre(3, 3, 1));

  // Bytes: keys of 3 bytes with 1-byte values, 10 bytes per message.
  server_.reset();
  options = TestServerOptions();
  options.scan_batch_bytes = 10;
  StartServer(options);
  gate_.Open();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Put(stub_.get(), absl::StrFormat("k%02d", i)).ok());
  }
  sizes.clear();
  ASSERT_TRUE(RunScan(stub_.get(), v1::ScanRequest(), &sizes).ok());
  EXPECT_THAT(sizes, ElementsAre(2, 2, 1));
}

TEST_F(ResourceLimitsTest, InvalidBoundsAreRefusedAtStart) {
  auto refused = [](ServerOptions o) {
    auto s = InProcessServer::Start(std::move(o));
    return !s.ok() && absl::IsInvalidArgument(s.status());
  };
  ServerOptions o = TestServerOptions();
  o.max_inflight_rpcs = -1;
  EXPECT_TRUE(refused(o));
  o = TestServerOptions();
  o.transport.max_concurrent_streams = 0;
  EXPECT_TRUE(refused(o));
  o = TestServerOptions();
  o.transport.keepalive_time = absl::ZeroDuration();
  EXPECT_TRUE(refused(o));
  o = TestServerOptions();
  o.transport.max_ping_strikes = -1;
  EXPECT_TRUE(refused(o));
  o = TestServerOptions();
  o.scan_batch_max_pairs = 0;
  EXPECT_TRUE(refused(o));
  o = TestServerOptions();
  o.scan_batch_bytes = 0;
  EXPECT_TRUE(refused(o));
}

TEST(ResourceFlagsTest, FlagsReachTheServer) {
  ASSERT_FALSE(BinaryPath("server/strata-server").empty())
      << "STRATA_BINARY_DIR is not set (run through ctest)";
  TempDir dir;
  auto p = ServerProcess::Start(
      dir.path() + "/data",
      {"--max_inflight_rpcs=7", "--max_concurrent_streams=9",
       "--keepalive_time=90s", "--min_client_ping_interval=5s",
       "--max_ping_strikes=4", "--scan_batch_bytes=65536",
       "--scan_batch_max_pairs=100"});
  ASSERT_OK(p.status());
  (*p)->Signal(SIGTERM);
  absl::StatusOr<ExitInfo> exit = (*p)->Wait(absl::Seconds(10));
  ASSERT_OK(exit.status());
  EXPECT_TRUE(exit->exited) << "signal " << exit->term_signal;
  const std::string log = (*p)->Stderr();
  EXPECT_THAT(log, HasSubstr("max_inflight_rpcs=7 max_concurrent_streams=9 "
                             "keepalive_time=1m30s keepalive_timeout=20s "
                             "min_client_ping_interval=5s max_ping_strikes=4 "
                             "scan_batch_bytes=65536 scan_batch_max_pairs=100"));
  EXPECT_THAT(log, HasSubstr("tls=off"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("PLAINTEXT")));  // Loopback.

  ProcessResult r = RunProcess({BinaryPath("server/strata-server"), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--tls_cert", "--tls_key", "--tls_client_ca", "--tls_reload_interval",
        "--max_inflight_rpcs", "--max_concurrent_streams", "--keepalive_time",
        "--min_client_ping_interval", "--max_ping_strikes",
        "--scan_batch_max_pairs"}) {
    EXPECT_THAT(r.out + r.err, HasSubstr(flag));
  }
}

}  // namespace
}  // namespace strata::testing
