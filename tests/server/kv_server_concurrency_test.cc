// Many clients at once against one in-process server: each thread owns a
// slice of the key space and checks every read against its own model while
// scanners check ordering; at the end one scan must equal the union of the
// models.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::InProcessServer;
using ::strata::testing::TestServerOptions;

constexpr int kThreads = 32;
constexpr int kOpsPerThread = 200;
constexpr int kKeysPerThread = 20;

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
}

std::string KeyOf(int thread, int k) {
  return absl::StrFormat("t%02d/k%02d", thread, k);
}

// One client thread: random Put/Delete/Write/Get on its own keys, checking
// each Get against its model. Returns the final model.
std::map<std::string, std::string> RunClient(
    int t, const std::shared_ptr<grpc::Channel>& channel,
    std::atomic<int>* failures) {
  auto stub = v1::KV::NewStub(channel);
  std::mt19937 rng(1000 + t);
  std::map<std::string, std::string> model;
  for (int op = 0; op < kOpsPerThread; ++op) {
    const std::string key = KeyOf(t, static_cast<int>(rng() % kKeysPerThread));
    const std::string value = absl::StrFormat("v%d-%d", t, op);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s;
    switch (rng() % 4) {
      case 0: {
        v1::PutRequest req;
        req.set_key(key);
        req.set_value(value);
        v1::PutResponse resp;
        s = stub->Put(&ctx, req, &resp);
        if (s.ok()) model[key] = value;
        break;
      }
      case 1: {
        v1::DeleteRequest req;
        req.set_key(key);
        v1::DeleteResponse resp;
        s = stub->Delete(&ctx, req, &resp);
        if (s.ok()) model.erase(key);
        break;
      }
      case 2: {
        // Two puts and a delete, atomically.
        const std::string other =
            KeyOf(t, static_cast<int>(rng() % kKeysPerThread));
        v1::WriteRequest req;
        auto* p = req.add_mutations()->mutable_put();
        p->set_key(key);
        p->set_value(value);
        p = req.add_mutations()->mutable_put();
        p->set_key(other);
        p->set_value(value + "b");
        req.add_mutations()->mutable_delete_()->set_key(key);
        v1::WriteResponse resp;
        s = stub->Write(&ctx, req, &resp);
        if (s.ok()) {
          model[other] = value + "b";
          model.erase(key);
        }
        break;
      }
      default: {
        v1::GetRequest req;
        req.set_key(key);
        v1::GetResponse resp;
        s = stub->Get(&ctx, req, &resp);
        if (s.ok()) {
          auto it = model.find(key);
          const bool expect_found = it != model.end();
          if (resp.found() != expect_found ||
              (expect_found && resp.value() != it->second)) {
            failures->fetch_add(1);
          }
        }
        break;
      }
    }
    if (!s.ok()) {
      ADD_FAILURE() << "thread " << t << " op " << op << ": "
                    << s.error_message();
      failures->fetch_add(1);
    }
  }
  return model;
}

TEST(KvServerConcurrencyTest, ManyClientsThenConsistentScan) {
  storage::Options engine;
  engine.wal_sync = storage::WalSyncMode::kNoSync;  // Speed; not durability.
  auto started = InProcessServer::Start(TestServerOptions(), nullptr, nullptr,
                                        engine);
  ASSERT_OK(started);
  std::unique_ptr<InProcessServer> server = *std::move(started);
  // Several channels, so several connections share the completion queues.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 4; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", i);  // Distinct channels, not shared.
    channels.push_back(grpc::CreateCustomChannel(
        server->address(), grpc::InsecureChannelCredentials(), args));
  }

  std::atomic<int> failures{0};
  std::atomic<bool> writers_done{false};
  std::vector<std::map<std::string, std::string>> models(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      models[t] = RunClient(t, channels[t % channels.size()], &failures);
    });
  }
  // Scanners running alongside: every scan must be sorted and complete.
  std::atomic<int> scans{0};
  std::vector<std::thread> scanners;
  for (int i = 0; i < 2; ++i) {
    scanners.emplace_back([&, i] {
      auto stub = v1::KV::NewStub(channels[i]);
      for (int round = 0; round < 1000 && !writers_done.load(); ++round) {
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        auto reader = stub->Scan(&ctx, v1::ScanRequest());
        v1::ScanResponse resp;
        std::string last;
        bool sorted = true;
        while (reader->Read(&resp)) {
          for (const auto& kv : resp.pairs()) {
            sorted = sorted && (last.empty() || kv.key() > last);
            last = kv.key();
          }
        }
        if (!reader->Finish().ok() || !sorted) failures.fetch_add(1);
        scans.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  writers_done = true;
  for (auto& t : scanners) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(scans.load(), 0);

  std::map<std::string, std::string> expected;
  for (const auto& m : models) expected.insert(m.begin(), m.end());
  auto stub = v1::KV::NewStub(channels[0]);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub->Scan(&ctx, v1::ScanRequest());
  v1::ScanResponse resp;
  std::map<std::string, std::string> actual;
  while (reader->Read(&resp)) {
    for (const auto& kv : resp.pairs()) actual[kv.key()] = kv.value();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(actual, expected);
}

// Gets of a few hot keys that live only on disk (no block cache), from many
// threads at once, so they go through read coalescing on the blocking pool;
// meanwhile a writer fills other keys and health Watch streams open and are
// cancelled. Every Get must see its key's value (run under TSan).
TEST(KvServerConcurrencyTest, HotKeysOnDiskWithWritersAndHealthWatches) {
  storage::Options engine;
  engine.wal_sync = storage::WalSyncMode::kNoSync;
  engine.block_cache_bytes = 0;  // Every table read is a "would block".
  engine.memtable_bytes = 256 << 10;
  auto started =
      InProcessServer::Start(TestServerOptions(), nullptr, nullptr, engine);
  ASSERT_OK(started);
  std::unique_ptr<InProcessServer> server = *std::move(started);
  auto channel = grpc::CreateChannel(server->address(),
                                     grpc::InsecureChannelCredentials());
  constexpr int kHot = 4;
  auto hot_key = [](int i) { return absl::StrFormat("hot%d", i); };
  auto hot_value = [](int i) { return absl::StrFormat("value-of-hot%d", i); };
  {
    auto stub = v1::KV::NewStub(channel);
    for (int i = 0; i < kHot; ++i) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      v1::PutRequest req;
      req.set_key(hot_key(i));
      req.set_value(hot_value(i));
      v1::PutResponse resp;
      ASSERT_TRUE(stub->Put(&ctx, req, &resp).ok());
    }
  }
  ASSERT_OK(server->db()->Flush());  // The hot keys now live in a table.

  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto stub = v1::KV::NewStub(channel);
      for (int op = 0; op < 100; ++op) {
        const int i = (t + op) % kHot;
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        v1::GetRequest req;
        req.set_key(hot_key(i));
        v1::GetResponse resp;
        grpc::Status s = stub->Get(&ctx, req, &resp);
        if (!s.ok() || !resp.found() || resp.value() != hot_value(i)) {
          failures.fetch_add(1);
        }
      }
    });
  }
  threads.emplace_back([&] {
    auto stub = v1::KV::NewStub(channel);
    for (int op = 0; op < 300; ++op) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      v1::PutRequest req;
      req.set_key(absl::StrFormat("cold%04d", op));
      req.set_value(std::string(1000, 'c'));
      v1::PutResponse resp;
      if (!stub->Put(&ctx, req, &resp).ok()) failures.fetch_add(1);
    }
  });
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&] {
      auto health = grpc::health::v1::Health::NewStub(channel);
      for (int round = 0; round < 20; ++round) {
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        auto watch =
            health->Watch(&ctx, grpc::health::v1::HealthCheckRequest());
        grpc::health::v1::HealthCheckResponse resp;
        if (!watch->Read(&resp) ||
            resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
          failures.fetch_add(1);
        }
        ctx.TryCancel();
        while (watch->Read(&resp)) {
        }
        watch->Finish();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace strata::server
