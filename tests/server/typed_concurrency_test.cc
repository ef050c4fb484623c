// Server-side read-modify-write under concurrency (runs under TSan):
// Increment and JsonUpdate from many clients on one key lose no update and
// apply none twice, while other writes of the same key and of other keys
// go on.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"

namespace strata::server {
namespace {

using ::strata::testing::InProcessServer;

// Every call waits for its connection (a client thread's first call on a
// loaded machine may otherwise fail UNAVAILABLE before the channel is up)
// and gives up after 60 s.
void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_wait_for_ready(true);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
}

class TypedConcurrencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = InProcessServer::Start();
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }
  // One channel (one connection) per client thread.
  std::unique_ptr<v1::KV::Stub> NewStub() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return v1::KV::NewStub(grpc::CreateCustomChannel(
        server_->address(), grpc::InsecureChannelCredentials(), args));
  }

  std::unique_ptr<InProcessServer> server_;
};

TEST_F(TypedConcurrencyTest, ThirtyTwoClientsTimesAThousandIncrementsOfOneKey) {
  constexpr int kClients = 32;
  constexpr int kIncrements = 1000;
  // Every response's value: each of 1..32000 exactly once means no
  // increment was lost and none applied twice.
  std::vector<std::vector<int64_t>> seen(kClients);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; t++) {
    threads.emplace_back([&, t] {
      auto stub = NewStub();
      for (int i = 0; i < kIncrements; i++) {
        v1::IncrementRequest req;
        req.set_key("hot");
        req.set_delta(1);
        v1::IncrementResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        grpc::Status s = stub->Increment(&ctx, req, &resp);
        if (!s.ok()) {
          ADD_FAILURE() << s.error_message();
          failures++;
          return;
        }
        seen[t].push_back(resp.value());
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  std::vector<int64_t> all;
  for (const auto& s : seen) {
    // Each client's own increments are ordered.
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    all.insert(all.end(), s.begin(), s.end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<size_t>(kClients * kIncrements));
  for (size_t i = 0; i < all.size(); i++) {
    ASSERT_EQ(all[i], static_cast<int64_t>(i + 1));
  }
  auto stub = NewStub();
  v1::GetRequest req;
  req.set_key("hot");
  v1::GetResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ASSERT_TRUE(stub->Get(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.value(), "32000");
  EXPECT_EQ(resp.type(), v1::INT64);
  EXPECT_EQ(resp.version(), kClients * kIncrements);
}

TEST_F(TypedConcurrencyTest, JsonPatchesAndIncrementsInterleaveWithPuts) {
  constexpr int kPatchers = 8;
  constexpr int kPatches = 60;
  constexpr int kCounters = 50;
  {
    auto stub = NewStub();
    v1::PutRequest req;
    req.set_key("doc");
    req.set_value(R"({"log":[]})");
    req.set_type(v1::JSON);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub->Put(&ctx, req, &resp).ok());
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  // Patchers append their own entries to one document.
  for (int t = 0; t < kPatchers; t++) {
    threads.emplace_back([&, t] {
      auto stub = NewStub();
      for (int i = 0; i < kPatches; i++) {
        v1::JsonUpdateRequest req;
        req.set_key("doc");
        req.set_json_patch(absl::StrFormat(
            R"([{"op":"add","path":"/log/-","value":"%d-%d"}])", t, i));
        v1::JsonUpdateResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        grpc::Status s = stub->JsonUpdate(&ctx, req, &resp);
        ASSERT_TRUE(s.ok()) << s.error_message();
      }
    });
  }
  // Incrementers spread over many counters, and a writer puts other keys
  // meanwhile (until the rest are done, at most 2,000 puts).
  std::atomic<int64_t> counted{0};
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      auto stub = NewStub();
      for (int i = 0; i < 250; i++) {
        v1::IncrementRequest req;
        req.set_key(absl::StrFormat("c%03d", (t * 250 + i) % kCounters));
        req.set_delta(1);
        v1::IncrementResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        grpc::Status s = stub->Increment(&ctx, req, &resp);
        ASSERT_TRUE(s.ok()) << s.error_message();
        counted++;
      }
    });
  }
  threads.emplace_back([&] {
    auto stub = NewStub();
    for (int i = 0; i < 2000 && !stop.load(); i++) {
      v1::PutRequest req;
      req.set_key(absl::StrFormat("other%02d", i % 20));
      req.set_value("v");
      v1::PutResponse resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      ASSERT_TRUE(stub->Put(&ctx, req, &resp).ok());
    }
  });
  for (size_t i = 0; i + 1 < threads.size(); i++) threads[i].join();
  stop = true;
  threads.back().join();

  auto stub = NewStub();
  v1::JsonGetRequest req;
  req.set_key("doc");
  req.set_pointer("/log");
  v1::JsonGetResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ASSERT_TRUE(stub->JsonGet(&ctx, req, &resp).ok());
  // Every patcher's entries, each once, in its own order.
  for (int t = 0; t < kPatchers; t++) {
    size_t pos = 0;
    for (int i = 0; i < kPatches; i++) {
      const std::string item = absl::StrFormat("\"%d-%d\"", t, i);
      const size_t at = resp.json().find(item, pos);
      ASSERT_NE(at, std::string::npos) << item;
      EXPECT_EQ(resp.json().find(item, at + 1), std::string::npos) << item;
      pos = at;
    }
  }
  int64_t total = 0;
  for (int k = 0; k < kCounters; k++) {
    v1::GetRequest g;
    g.set_key(absl::StrFormat("c%03d", k));
    v1::GetResponse gr;
    grpc::ClientContext gctx;
    SetDeadline(&gctx);
    ASSERT_TRUE(stub->Get(&gctx, g, &gr).ok());
    total += std::stoll(gr.value());
  }
  EXPECT_EQ(total, counted.load());
  EXPECT_EQ(total, 1000);
}

}  // namespace
}  // namespace strata::server
