// The registration of RPCs (server/rpc_registry.h) and the call core
// (server/async_call.h), through a test service registered next to
// strata.v1.KV exactly as a new service would be: a method's own in-flight
// cap and the flag it names, the server-wide default, a stream written and
// finished from a thread that is not a poller, write completions, client
// cancellation of a parked stream, and the method names the observer hears.

#include "server/rpc_registry.h"

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "rpc_registry_test.grpc.pb.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"

namespace strata::server {
namespace {

using ::strata::testing::InProcessServer;
using ::strata::testing::TestServerOptions;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

// The server side of strata.test.RegistryTest. Hold calls wait until the
// test releases them; a Feed stream is parked (no operation pending)
// whenever it waits for the test thread to write to it or finish it.
class TestService {
 public:
  using Service = test::RegistryTest::AsyncService;
  using HoldCall = UnaryCall<test::HoldRequest, test::HoldResponse>;
  using FeedCall = ServerStreamingCall<test::FeedRequest, test::FeedResponse>;

  static constexpr int kMaxHolds = 2;

  // The two steps of docs/server.md's "How to add an RPC": a Register line
  // per method, and the handlers below.
  void RegisterMethods(RpcRegistry* registry) {
    auto test = registry->AddService(&service_, this);
    test.Register(&Service::RequestHold, &TestService::HandleHold,
                  MethodOptions().MaxInflight(kMaxHolds, "--max_test_holds"));
    test.Register(&Service::RequestFeed, &TestService::HandleFeed);
  }

  // Waits until n Hold calls are held.
  bool WaitForHolds(size_t n) {
    absl::MutexLock lock(&mu_);
    auto held = [&] {
      mu_.AssertHeld();
      return holds_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&held), kWait);
  }
  // Answers every held call (echoing its tag) from this thread.
  void ReleaseHolds() {
    std::vector<HoldCall*> holds;
    {
      absl::MutexLock lock(&mu_);
      holds.swap(holds_);
    }
    for (HoldCall* call : holds) {
      call->mutable_response()->set_tag(call->request().tag());
      call->Finish(absl::OkStatus());
    }
  }

  // Waits for the Feed stream to be parked, leaving it there.
  bool WaitForParked() {
    absl::MutexLock lock(&mu_);
    return AwaitParked();
  }
  // Waits for the Feed stream to be parked and takes it; null on timeout.
  FeedCall* TakeFeed() {
    absl::MutexLock lock(&mu_);
    if (!AwaitParked()) return nullptr;
    FeedCall* call = parked_;
    parked_ = nullptr;
    return call;
  }
  // Waits until the Feed handler has heard `event` `n` times.
  bool WaitForEvents(StreamEvent event, int n) {
    absl::MutexLock lock(&mu_);
    auto heard = [&] {
      mu_.AssertHeld();
      return Count(event) >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&heard), kWait);
  }
  std::vector<StreamEvent> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  void HandleHold(HoldCall* call) {
    absl::MutexLock lock(&mu_);
    holds_.push_back(call);
  }

  void HandleFeed(FeedCall* call, StreamEvent event) {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      events_.push_back(event);
      switch (event) {
        case StreamEvent::kStarted:
        case StreamEvent::kWriteDone:
          parked_ = call;  // The test thread may write or finish now.
          break;
        case StreamEvent::kWriteFailed:
          finish = true;
          break;
        case StreamEvent::kCancelled:
          // Only a parked stream is ours to finish: otherwise the test
          // thread holds it and a write or finish is pending.
          finish = parked_ == call;
          if (finish) parked_ = nullptr;
          break;
      }
    }
    if (finish) call->Finish(absl::CancelledError("feed cancelled"));
  }

  bool AwaitParked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto parked = [&] {
      mu_.AssertHeld();
      return parked_ != nullptr;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&parked), kWait);
  }
  int Count(StreamEvent event) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int n = 0;
    for (StreamEvent e : events_) n += e == event;
    return n;
  }

  Service service_;
  absl::Mutex mu_;
  std::vector<HoldCall*> holds_ ABSL_GUARDED_BY(mu_);
  FeedCall* parked_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<StreamEvent> events_ ABSL_GUARDED_BY(mu_);
};

// Records the method and code of every RPC end.
class EndObserver : public RpcObserver {
 public:
  void OnRpcEnd(std::string_view method, grpc::StatusCode code, double, size_t,
                size_t) override {
    absl::MutexLock lock(&mu_);
    ends_.push_back(absl::StrFormat("%s %d", std::string(method), code));
  }
  bool WaitFor(const std::string& end) {
    absl::MutexLock lock(&mu_);
    auto seen = [&] {
      mu_.AssertHeld();
      return std::find(ends_.begin(), ends_.end(), end) != ends_.end();
    };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), kWait);
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> ends_ ABSL_GUARDED_BY(mu_);
};

class RpcRegistryTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options = TestServerOptions()) {
    options.TEST_register_services = [this](RpcRegistry* registry) {
      service_.RegisterMethods(registry);
    };
    absl::StatusOr<std::unique_ptr<InProcessServer>> s =
        InProcessServer::Start(std::move(options), &observer_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    channel_ = grpc::CreateChannel(server_->address(),
                                   grpc::InsecureChannelCredentials());
    stub_ = test::RegistryTest::NewStub(channel_);
  }

  // A Hold RPC; the tag the server echoed lands in *echoed if not null.
  grpc::Status Hold(const std::string& tag, std::string* echoed = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    test::HoldRequest request;
    request.set_tag(tag);
    test::HoldResponse response;
    grpc::Status status = stub_->Hold(&ctx, request, &response);
    if (echoed != nullptr) *echoed = response.tag();
    return status;
  }
  // Hold on its own thread; its status lands in *status once joined.
  std::thread StartHold(const std::string& tag, grpc::Status* status,
                        std::string* echoed) {
    return std::thread(
        [this, tag, status, echoed] { *status = Hold(tag, echoed); });
  }

  // Declared first: the server (and its calls) go before the service.
  TestService service_;
  EndObserver observer_;
  std::unique_ptr<InProcessServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<test::RegistryTest::Stub> stub_;
};

TEST(FindMethodNameTest, NamesTheMethodOfTheTypesAndKind) {
  EXPECT_EQ(*FindMethodName(v1::GetRequest::descriptor(),
                            v1::GetResponse::descriptor(), false),
            "Get");
  EXPECT_EQ(*FindMethodName(v1::ScanRequest::descriptor(),
                            v1::ScanResponse::descriptor(), true),
            "Scan");
  // grpc.health.v1's Check and Watch share their messages; the kind
  // tells them apart.
  using grpc::health::v1::HealthCheckRequest;
  using grpc::health::v1::HealthCheckResponse;
  EXPECT_EQ(*FindMethodName(HealthCheckRequest::descriptor(),
                            HealthCheckResponse::descriptor(), false),
            "Check");
  EXPECT_EQ(*FindMethodName(HealthCheckRequest::descriptor(),
                            HealthCheckResponse::descriptor(), true),
            "Watch");
}

TEST(FindMethodNameTest, NoOrSeveralMatchingMethodsAreErrors) {
  absl::StatusOr<std::string_view> wrong_kind = FindMethodName(
      v1::GetRequest::descriptor(), v1::GetResponse::descriptor(), true);
  EXPECT_TRUE(absl::IsNotFound(wrong_kind.status())) << wrong_kind.status();
  absl::StatusOr<std::string_view> wrong_pair = FindMethodName(
      v1::GetRequest::descriptor(), v1::PutResponse::descriptor(), false);
  EXPECT_TRUE(absl::IsNotFound(wrong_pair.status())) << wrong_pair.status();
  absl::StatusOr<std::string_view> twins = FindMethodName(
      test::TwinRequest::descriptor(), test::TwinResponse::descriptor(), false);
  EXPECT_TRUE(absl::IsInvalidArgument(twins.status())) << twins.status();
  EXPECT_THAT(twins.status().message(), HasSubstr("of its own"));
}

// A method whose name cannot be deduced stops the start: no server runs
// with a method the metrics could not name.
class TwinService {
 public:
  using Service = test::RegistryTest::AsyncService;
  using TwinCall = UnaryCall<test::TwinRequest, test::TwinResponse>;
  void RegisterMethods(RpcRegistry* registry) {
    registry->AddService(&service_, this)
        .Register(&Service::RequestTwinA, &TwinService::HandleTwin);
  }

 private:
  void HandleTwin(TwinCall* call) { call->Finish(absl::OkStatus()); }
  Service service_;
};

TEST(RpcRegistryStartTest, AnUnnameableMethodFailsTheStart) {
  TwinService twins;
  ServerOptions options = TestServerOptions();
  options.TEST_register_services = [&twins](RpcRegistry* registry) {
    twins.RegisterMethods(registry);
  };
  absl::StatusOr<std::unique_ptr<InProcessServer>> s =
      InProcessServer::Start(std::move(options));
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
}

TEST_F(RpcRegistryTest, AMethodsOwnCapIsEnforcedAndNamesItsFlag) {
  ServerOptions options = TestServerOptions();
  options.max_inflight_rpcs = 1;  // Below Hold's own cap of 2.
  StartServer(options);

  grpc::Status held[TestService::kMaxHolds];
  std::string echoed[TestService::kMaxHolds];
  std::vector<std::thread> holders;
  for (int i = 0; i < TestService::kMaxHolds; ++i) {
    holders.push_back(StartHold(absl::StrCat("h", i), &held[i], &echoed[i]));
  }
  // Both are admitted: Hold's cap replaces the server-wide 1.
  ASSERT_TRUE(service_.WaitForHolds(TestService::kMaxHolds));

  const grpc::Status refused = Hold("over");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(),
              HasSubstr("too many Hold RPCs in progress; the limit is 2 "
                        "(--max_test_holds)"));
  // Other methods keep their own count.
  auto kv = v1::KV::NewStub(channel_);
  grpc::ClientContext get_ctx;
  v1::GetRequest get;
  get.set_key("k");
  v1::GetResponse got;
  EXPECT_TRUE(kv->Get(&get_ctx, get, &got).ok());

  // Answered from the test thread, not a poller.
  service_.ReleaseHolds();
  for (std::thread& t : holders) t.join();
  for (int i = 0; i < TestService::kMaxHolds; ++i) {
    EXPECT_TRUE(held[i].ok()) << held[i].error_message();
    EXPECT_EQ(echoed[i], absl::StrCat("h", i));
  }
  // Both slots are free again.
  grpc::Status again[TestService::kMaxHolds];
  holders.clear();
  for (int i = 0; i < TestService::kMaxHolds; ++i) {
    holders.push_back(StartHold("again", &again[i], &echoed[i]));
  }
  ASSERT_TRUE(service_.WaitForHolds(TestService::kMaxHolds));
  service_.ReleaseHolds();
  for (std::thread& t : holders) t.join();
  for (const grpc::Status& s : again) EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(RpcRegistryTest, AMethodWithoutOptionsHasTheServerWideCap) {
  ServerOptions options = TestServerOptions();
  options.max_inflight_rpcs = 1;
  StartServer(options);

  grpc::ClientContext first_ctx;
  first_ctx.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  std::unique_ptr<grpc::ClientReader<test::FeedResponse>> first =
      stub_->Feed(&first_ctx, test::FeedRequest());
  TestService::FeedCall* call = service_.TakeFeed();
  ASSERT_NE(call, nullptr);

  grpc::ClientContext second_ctx;
  second_ctx.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  std::unique_ptr<grpc::ClientReader<test::FeedResponse>> second =
      stub_->Feed(&second_ctx, test::FeedRequest());
  test::FeedResponse message;
  EXPECT_FALSE(second->Read(&message));
  const grpc::Status refused = second->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("(--max_inflight_rpcs)"));

  call->Finish(absl::OkStatus());
  EXPECT_FALSE(first->Read(&message));
  EXPECT_TRUE(first->Finish().ok());
  // The refused stream never reached the handler.
  EXPECT_THAT(service_.events(), ElementsAre(StreamEvent::kStarted));
}

TEST_F(RpcRegistryTest, AStreamIsWrittenAndFinishedFromAnotherThread) {
  StartServer();
  constexpr int kMessages = 5;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  std::unique_ptr<grpc::ClientReader<test::FeedResponse>> reader =
      stub_->Feed(&ctx, test::FeedRequest());

  // The feeder writes only when the previous write has completed
  // (kWriteDone parks the stream again), then finishes.
  std::thread feeder([this] {
    for (int seq = 1; seq <= kMessages; ++seq) {
      TestService::FeedCall* call = service_.TakeFeed();
      ASSERT_NE(call, nullptr);
      call->mutable_response()->set_seq(seq);
      call->Write(*call->mutable_response());
    }
    TestService::FeedCall* call = service_.TakeFeed();
    ASSERT_NE(call, nullptr);
    call->Finish(absl::OkStatus());
  });
  std::vector<int64_t> received;
  test::FeedResponse message;
  while (reader->Read(&message)) received.push_back(message.seq());
  feeder.join();
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(received, ElementsAre(1, 2, 3, 4, 5));
  EXPECT_TRUE(service_.WaitForEvents(StreamEvent::kWriteDone, kMessages));
  EXPECT_TRUE(observer_.WaitFor(absl::StrFormat("Feed %d", grpc::OK)));
  EXPECT_TRUE(server_->WaitForIdle(kWait));
}

TEST_F(RpcRegistryTest, ACancelledParkedStreamIsToldAndFinished) {
  StartServer();
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<test::FeedResponse>> reader =
      stub_->Feed(&ctx, test::FeedRequest());
  // One message, so the stream is parked again after a completed write.
  TestService::FeedCall* call = service_.TakeFeed();
  ASSERT_NE(call, nullptr);
  call->mutable_response()->set_seq(1);
  call->Write(*call->mutable_response());
  test::FeedResponse message;
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_TRUE(service_.WaitForEvents(StreamEvent::kWriteDone, 1));

  ctx.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The handler heard of it and finished the parked stream; the call is
  // recycled and the observer counts it as cancelled.
  EXPECT_TRUE(service_.WaitForEvents(StreamEvent::kCancelled, 1));
  EXPECT_TRUE(server_->WaitForIdle(kWait));
  EXPECT_TRUE(observer_.WaitFor(absl::StrFormat("Feed %d", grpc::CANCELLED)));
  EXPECT_THAT(service_.events(),
              ElementsAre(StreamEvent::kStarted, StreamEvent::kWriteDone,
                          StreamEvent::kCancelled));
}

TEST_F(RpcRegistryTest, ShutdownCancelsAParkedStreamThroughItsHandler) {
  ServerOptions options = TestServerOptions();
  options.shutdown_grace = absl::Milliseconds(100);
  StartServer(options);
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<test::FeedResponse>> reader =
      stub_->Feed(&ctx, test::FeedRequest());
  // Parked with nothing to send, as a Watch waiting for a change.
  ASSERT_TRUE(service_.WaitForParked());

  // The stream holds the drain until the grace period ends; then the
  // server cancels it, the handler hears kCancelled and finishes it, and
  // the shutdown completes (rather than closing the queues under a call).
  server_->Shutdown();
  EXPECT_THAT(service_.events(),
              ElementsAre(StreamEvent::kStarted, StreamEvent::kCancelled));
  EXPECT_EQ(server_->server()->TEST_live_calls(), 0);
  EXPECT_FALSE(reader->Finish().ok());
}

}  // namespace
}  // namespace strata::server
