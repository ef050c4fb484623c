// Integration tests: a real KvServer on a real DB, called over 127.0.0.1
// with the generated stubs.

#include "server/kv_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::InProcessServer;
using ::strata::testing::TestServerOptions;
using ::testing::HasSubstr;
using HealthResponse = grpc::health::v1::HealthCheckResponse;

constexpr absl::Duration kWait = absl::Seconds(20);

// A count that tests wait on (bounded), bumped from server threads.
class Counter {
 public:
  void Add() {
    absl::MutexLock l(&mu_);
    n_++;
  }
  int value() {
    absl::MutexLock l(&mu_);
    return n_;
  }
  bool WaitFor(int n) {
    absl::MutexLock l(&mu_);
    auto cond = [&] {
      mu_.AssertHeld();
      return n_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&cond), kWait);
  }

 private:
  absl::Mutex mu_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};

// Records every RPC end; lets a test wait for one.
class RecordingObserver : public RpcObserver {
 public:
  struct End {
    std::string method;
    grpc::StatusCode code;
    size_t request_bytes;
    size_t response_bytes;
  };
  void OnRpcStart(std::string_view) override {
    absl::MutexLock l(&mu_);
    starts_++;
  }
  void OnRpcEnd(std::string_view method, grpc::StatusCode code, double seconds,
                size_t request_bytes, size_t response_bytes) override {
    EXPECT_GE(seconds, 0);
    absl::MutexLock l(&mu_);
    ends_.push_back({std::string(method), code, request_bytes, response_bytes});
  }
  // Waits (bounded) for the n-th end of `method` (1-based); returns it.
  std::optional<End> WaitForEnd(const std::string& method, int n = 1) {
    absl::MutexLock l(&mu_);
    auto count = [&] {
      mu_.AssertHeld();  // Await evaluates the condition under mu_.
      int c = 0;
      for (const End& e : ends_) c += e.method == method;
      return c;
    };
    auto cond = [&] { return count() >= n; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&cond), kWait)) return {};
    int c = 0;
    for (const End& e : ends_) {
      if (e.method == method && ++c == n) return e;
    }
    return {};
  }
  int starts() {
    absl::MutexLock l(&mu_);
    return starts_;
  }
  void OnGetCoalesced() override { coalesced_.Add(); }
  // Waits (bounded) until n Gets have joined another's lookup.
  bool WaitForCoalesced(int n) { return coalesced_.WaitFor(n); }
  int coalesced() { return coalesced_.value(); }

 private:
  absl::Mutex mu_;
  int starts_ ABSL_GUARDED_BY(mu_) = 0;
  Counter coalesced_;
  std::vector<End> ends_ ABSL_GUARDED_BY(mu_);
};

// Forwards to the real DB, with injectable failures.
class FaultDB : public storage::DB {
 public:
  explicit FaultDB(storage::DB* base) : base_(base) {}
  bool would_block = false;          // cache_only Gets return "would block".
  absl::Status write_error;          // WriteAsync fails with this.
  absl::Status iterator_error;       // NewIterator returns this error.
  std::atomic<int> blocking_gets{0};
  // Runs on the pool after a blocking Get has read (and before it
  // returns); may block to hold a pool thread. Set before the server starts.
  std::function<void(std::string_view key)> after_blocking_read;

  absl::StatusOr<storage::Revision> Put(const storage::WriteOptions& o,
                                        std::string_view k,
                                        std::string_view v) override {
    return base_->Put(o, k, v);
  }
  absl::StatusOr<storage::Revision> Delete(const storage::WriteOptions& o,
                                           std::string_view k) override {
    return base_->Delete(o, k);
  }
  absl::StatusOr<storage::Revision> Write(const storage::WriteOptions& o,
                                          storage::WriteBatch* b) override {
    return base_->Write(o, b);
  }
  void WriteAsync(const storage::WriteOptions& o, storage::WriteBatch b,
                  WriteCallback done) override {
    if (!write_error.ok()) {
      // Like the engine: the callback comes from another thread.
      std::thread([done = std::move(done), s = write_error] { done(s); })
          .detach();
      return;
    }
    base_->WriteAsync(o, std::move(b), std::move(done));
  }
  absl::StatusOr<std::string> Get(const storage::ReadOptions& o,
                                  std::string_view k) override {
    absl::StatusOr<storage::GetResult> r = GetWithMetadata(o, k);
    if (!r.ok()) return r.status();
    if (!r->found) return absl::NotFoundError("key not found");
    return std::move(r->value);
  }
  absl::StatusOr<storage::GetResult> GetWithMetadata(
      const storage::ReadOptions& o, std::string_view k) override {
    if (o.cache_only && would_block) {
      return storage::WouldBlockError();
    }
    if (o.cache_only) return base_->GetWithMetadata(o, k);
    blocking_gets++;
    absl::StatusOr<storage::GetResult> result = base_->GetWithMetadata(o, k);
    if (after_blocking_read) after_blocking_read(k);
    return result;
  }
  std::unique_ptr<storage::Iterator> NewIterator(
      const storage::ReadOptions& o) override {
    if (!iterator_error.ok()) {
      return std::unique_ptr<storage::Iterator>(
          storage::NewErrorIterator(iterator_error));
    }
    return base_->NewIterator(o);
  }
  const storage::Snapshot* GetSnapshot() override {
    return base_->GetSnapshot();
  }
  absl::StatusOr<const storage::Snapshot*> GetSnapshotAt(
      storage::Revision r) override {
    return base_->GetSnapshotAt(r);
  }
  void ReleaseSnapshot(const storage::Snapshot* s) override {
    base_->ReleaseSnapshot(s);
  }
  storage::Revision CurrentRevision() override {
    return base_->CurrentRevision();
  }
  storage::Revision CompactedRevision() override {
    return base_->CompactedRevision();
  }
  absl::Status CompactHistory(storage::Revision r) override {
    return base_->CompactHistory(r);
  }
  absl::StatusOr<std::unique_ptr<storage::ChangeIterator>> GetUpdatesSince(
      storage::Revision r) override {
    return base_->GetUpdatesSince(r);
  }
  void SetCommitListener(storage::CommitListener* l) override {
    base_->SetCommitListener(l);
  }
  absl::Status SyncWAL() override { return base_->SyncWAL(); }
  absl::Status Flush() override { return base_->Flush(); }
  absl::Status CompactRange(std::optional<std::string_view> b,
                            std::optional<std::string_view> e) override {
    return base_->CompactRange(b, e);
  }
  storage::Statistics GetStatistics() override {
    return base_->GetStatistics();
  }

 private:
  storage::DB* const base_;
};

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d = kWait) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(d));
}

class KvServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(TestServerOptions()); }

  void StartServer(ServerOptions options, InProcessServer::DbWrapper wrap = {}) {
    server_.reset();
    options.TEST_before_scan_batch = [this](int batch,
                                            grpc::ServerContext* context) {
      std::function<void(int, grpc::ServerContext*)> hook;
      {
        absl::MutexLock l(&hook_mu_);
        hook = scan_hook_;
      }
      if (hook) hook(batch, context);
    };
    auto s = InProcessServer::Start(std::move(options), &observer_,
                                    std::move(wrap));
    ASSERT_OK(s);
    server_ = *std::move(s);
    channel_ = MakeChannel(server_->address());
    stub_ = v1::KV::NewStub(channel_);
  }

  void SetScanHook(std::function<void(int, grpc::ServerContext*)> hook) {
    absl::MutexLock l(&hook_mu_);
    scan_hook_ = std::move(hook);
  }

  grpc::Status Put(const std::string& key, const std::string& value) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    v1::PutResponse resp;
    return stub_->Put(&ctx, req, &resp);
  }
  grpc::Status Delete(const std::string& key) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::DeleteRequest req;
    req.set_key(key);
    v1::DeleteResponse resp;
    return stub_->Delete(&ctx, req, &resp);
  }
  grpc::Status Get(const std::string& key, v1::GetResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::GetRequest req;
    req.set_key(key);
    return stub_->Get(&ctx, req, resp);
  }
  // The value, "<missing>" when not found, "<error: ...>" on error.
  std::string GetValue(const std::string& key) {
    v1::GetResponse resp;
    grpc::Status s = Get(key, &resp);
    if (!s.ok()) return "<error: " + s.error_message() + ">";
    return resp.found() ? resp.value() : "<missing>";
  }
  grpc::Status Write(const v1::WriteRequest& req) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::WriteResponse resp;
    return stub_->Write(&ctx, req, &resp);
  }
  grpc::Status Scan(const v1::ScanRequest& req,
                    std::vector<v1::ScanResponse>* messages) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto reader = stub_->Scan(&ctx, req);
    v1::ScanResponse resp;
    while (reader->Read(&resp)) messages->push_back(resp);
    return reader->Finish();
  }
  static std::vector<std::string> Keys(
      const std::vector<v1::ScanResponse>& messages) {
    std::vector<std::string> keys;
    for (const auto& m : messages) {
      for (const auto& kv : m.pairs()) keys.push_back(kv.key());
    }
    return keys;
  }
  // Writes n keys prefix+"%02d" with values of value_bytes, in Writes of 10.
  void Fill(const std::string& prefix, int n, size_t value_bytes) {
    for (int i = 0; i < n; i += 10) {
      v1::WriteRequest w;
      for (int j = i; j < std::min(n, i + 10); ++j) {
        auto* p = w.add_mutations()->mutable_put();
        p->set_key(absl::StrFormat("%s%02d", prefix, j));
        p->set_value(std::string(value_bytes, static_cast<char>('a' + j % 26)));
      }
      ASSERT_TRUE(Write(w).ok());
    }
  }
  bool WaitForIdle() { return server_->WaitForIdle(kWait); }

  // Waits (bounded) until n RPCs have started and not ended.
  bool WaitForRpcsInFlight(int n) {
    return server_->WaitForRpcs([n](int64_t k) { return k >= n; }, kWait);
  }

  RecordingObserver observer_;
  std::unique_ptr<InProcessServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::KV::Stub> stub_;
  absl::Mutex hook_mu_;
  std::function<void(int, grpc::ServerContext*)> scan_hook_
      ABSL_GUARDED_BY(hook_mu_);
};

// ---- Basic RPCs ----

TEST_F(KvServerTest, PutGetDelete) {
  ASSERT_TRUE(Put("hello", "world").ok());
  EXPECT_EQ(GetValue("hello"), "world");
  ASSERT_TRUE(Put("hello", "again").ok());
  EXPECT_EQ(GetValue("hello"), "again");
  ASSERT_TRUE(Delete("hello").ok());
  EXPECT_EQ(GetValue("hello"), "<missing>");
}

TEST_F(KvServerTest, GetMissingIsOkWithFoundFalse) {
  v1::GetResponse resp;
  resp.set_found(true);
  grpc::Status s = Get("nothing-here", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(resp.found());
  EXPECT_EQ(resp.value(), "");
}

TEST_F(KvServerTest, DeleteMissingIsOk) {
  EXPECT_TRUE(Delete("never-written").ok());
}

TEST_F(KvServerTest, EmptyValueIsFound) {
  ASSERT_TRUE(Put("empty", "").ok());
  v1::GetResponse resp;
  ASSERT_TRUE(Get("empty", &resp).ok());
  EXPECT_TRUE(resp.found());
  EXPECT_EQ(resp.value(), "");
}

TEST_F(KvServerTest, BinaryKeysAndValues) {
  const std::string key("\0k\xff\n", 4);
  const std::string value("\0\x01\xfe\xff", 4);
  ASSERT_TRUE(Put(key, value).ok());
  EXPECT_EQ(GetValue(key), value);
}

TEST_F(KvServerTest, ObserverSeesEveryRpcWithSizes) {
  ASSERT_TRUE(Put("obs", "value").ok());
  auto end = observer_.WaitForEnd("Put");
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->code, grpc::StatusCode::OK);
  v1::PutRequest sent;
  sent.set_key("obs");
  sent.set_value("value");
  EXPECT_EQ(end->request_bytes, sent.ByteSizeLong());
  v1::GetResponse resp;
  ASSERT_TRUE(Get("obs", &resp).ok());
  end = observer_.WaitForEnd("Get");
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->response_bytes, resp.ByteSizeLong());
  ASSERT_TRUE(Put("", "bad").error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  end = observer_.WaitForEnd("Put", 2);
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->code, grpc::StatusCode::INVALID_ARGUMENT);
}

// ---- Write ----

TEST_F(KvServerTest, WriteIsAtomicAndLaterMutationsWin) {
  v1::WriteRequest w;
  auto put = [&](const std::string& k, const std::string& v) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key(k);
    p->set_value(v);
  };
  put("a", "1");
  put("b", "2");
  w.add_mutations()->mutable_delete_()->set_key("a");
  put("c", "3");
  put("b", "4");
  ASSERT_TRUE(Write(w).ok());
  EXPECT_EQ(GetValue("a"), "<missing>");
  EXPECT_EQ(GetValue("b"), "4");
  EXPECT_EQ(GetValue("c"), "3");
}

TEST_F(KvServerTest, EmptyWriteIsOk) {
  EXPECT_TRUE(Write(v1::WriteRequest()).ok());
}

// ---- Limits: INVALID_ARGUMENT naming the limit, nothing written ----

void ExpectInvalid(const grpc::Status& s, const std::string& text) {
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr(text));
}

TEST_F(KvServerTest, KeyLimits) {
  ExpectInvalid(Put("", "v"), "key is empty; keys must be 1..8192 bytes");
  ExpectInvalid(Put(std::string(8193, 'k'), "v"),
                "key is 8193 bytes; the limit is 8192 (--max_key_bytes)");
  EXPECT_EQ(GetValue(std::string(8193, 'k')).substr(0, 7), "<error:");
  ASSERT_TRUE(Put(std::string(8192, 'k'), "at-limit").ok());
  EXPECT_EQ(GetValue(std::string(8192, 'k')), "at-limit");

  v1::GetResponse resp;
  ExpectInvalid(Get("", &resp), "--max_key_bytes");
  ExpectInvalid(Get(std::string(8193, 'k'), &resp), "--max_key_bytes");
  ExpectInvalid(Delete(""), "--max_key_bytes");
  ExpectInvalid(Delete(std::string(8193, 'k')), "--max_key_bytes");
}

TEST_F(KvServerTest, ValueLimit) {
  ExpectInvalid(Put("big", std::string((2 << 20) + 1, 'v')),
                "value is 2097153 bytes; the limit is 2097152 "
                "(--max_value_bytes)");
  EXPECT_EQ(GetValue("big"), "<missing>");
  const std::string at_limit(2 << 20, 'v');
  ASSERT_TRUE(Put("big", at_limit).ok());
  EXPECT_EQ(GetValue("big"), at_limit);
}

TEST_F(KvServerTest, MutationCountLimitWritesNothing) {
  v1::WriteRequest w;
  for (int i = 0; i < 10001; ++i) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key("m" + std::to_string(i));
    p->set_value("v");
  }
  ExpectInvalid(Write(w), "write has 10001 mutations; the limit is 10000 "
                          "(--max_batch_mutations)");
  EXPECT_EQ(GetValue("m0"), "<missing>");
  w.mutable_mutations()->RemoveLast();
  ASSERT_TRUE(Write(w).ok());  // Exactly at the limit.
  EXPECT_EQ(GetValue("m9999"), "v");
}

TEST_F(KvServerTest, OneBadMutationRejectsTheWholeWrite) {
  v1::WriteRequest w;
  for (int i = 0; i < 5; ++i) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key("w" + std::to_string(i));
    p->set_value("v");
  }
  w.mutable_mutations(3)->mutable_put()->set_value(
      std::string((2 << 20) + 1, 'x'));
  ExpectInvalid(Write(w), "mutation 3: value is 2097153 bytes");
  w.mutable_mutations(3)->Clear();
  ExpectInvalid(Write(w), "mutation 3 has no operation");
  w.mutable_mutations(3)->mutable_delete_()->set_key("");
  ExpectInvalid(Write(w), "mutation 3: key is empty");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(GetValue("w" + std::to_string(i)), "<missing>");
  }
}

TEST_F(KvServerTest, OversizedRequestMessage) {
  // 9 x 2 MiB = 18 MiB: above --max_message_bytes (16 MiB), below gRPC's
  // receive limit (32 MiB): our INVALID_ARGUMENT.
  v1::WriteRequest w;
  for (int i = 0; i < 9; ++i) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key("o" + std::to_string(i));
    p->set_value(std::string(2 << 20, 'o'));
  }
  ExpectInvalid(Write(w), "the limit is 16777216 (--max_message_bytes)");
  EXPECT_EQ(GetValue("o0"), "<missing>");
  // 17 x 2 MiB = 34 MiB: above twice the limit, gRPC refuses it itself.
  for (int i = 9; i < 17; ++i) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key("o" + std::to_string(i));
    p->set_value(std::string(2 << 20, 'o'));
  }
  EXPECT_EQ(Write(w).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(GetValue("o0"), "<missing>");
  // The server is fine afterwards.
  ASSERT_TRUE(Put("after", "ok").ok());
  EXPECT_EQ(GetValue("after"), "ok");
}

// ---- Scan ----

TEST_F(KvServerTest, ScanBoundsLimitAndKeysOnly) {
  v1::WriteRequest w;
  for (int i = 0; i < 100; ++i) {
    auto* p = w.add_mutations()->mutable_put();
    p->set_key(absl::StrFormat("k%02d", i));
    p->set_value(absl::StrFormat("v%02d", i));
  }
  w.add_mutations()->mutable_put()->set_key("j");  // Before the range.
  w.add_mutations()->mutable_put()->set_key("l");  // After it.
  ASSERT_TRUE(Write(w).ok());

  v1::ScanRequest req;
  req.set_start_key("k10");
  req.set_end_key("k20");
  std::vector<v1::ScanResponse> msgs;
  ASSERT_TRUE(Scan(req, &msgs).ok());
  auto keys = Keys(msgs);
  ASSERT_EQ(keys.size(), 10u);
  EXPECT_EQ(keys.front(), "k10");
  EXPECT_EQ(keys.back(), "k19");
  EXPECT_EQ(msgs[0].pairs(0).value(), "v10");

  // Empty end: unbounded.
  req.set_start_key("k95");
  req.clear_end_key();
  msgs.clear();
  ASSERT_TRUE(Scan(req, &msgs).ok());
  EXPECT_EQ(Keys(msgs), std::vector<std::string>(
                            {"k95", "k96", "k97", "k98", "k99", "l"}));

  // Limit.
  req = v1::ScanRequest();
  req.set_start_key("k");
  req.set_limit(7);
  msgs.clear();
  ASSERT_TRUE(Scan(req, &msgs).ok());
  keys = Keys(msgs);
  ASSERT_EQ(keys.size(), 7u);
  EXPECT_EQ(keys.back(), "k06");

  // Keys only.
  req = v1::ScanRequest();
  req.set_start_key("k50");
  req.set_end_key("k53");
  req.set_keys_only(true);
  msgs.clear();
  ASSERT_TRUE(Scan(req, &msgs).ok());
  ASSERT_EQ(Keys(msgs).size(), 3u);
  for (const auto& m : msgs) {
    for (const auto& kv : m.pairs()) EXPECT_EQ(kv.value(), "");
  }

  // Whole database: everything, in order.
  msgs.clear();
  ASSERT_TRUE(Scan(v1::ScanRequest(), &msgs).ok());
  keys = Keys(msgs);
  EXPECT_EQ(keys.size(), 102u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));

  // end <= start: empty, OK.
  req = v1::ScanRequest();
  req.set_start_key("k50");
  req.set_end_key("k10");
  msgs.clear();
  ASSERT_TRUE(Scan(req, &msgs).ok());
  EXPECT_TRUE(Keys(msgs).empty());
}

TEST_F(KvServerTest, ScanOfEmptyDatabase) {
  std::vector<v1::ScanResponse> msgs;
  ASSERT_TRUE(Scan(v1::ScanRequest(), &msgs).ok());
  EXPECT_TRUE(Keys(msgs).empty());
}

TEST_F(KvServerTest, ScanBatchesIntoOneMebibyteMessagesAndLargePairAlone) {
  Fill("b", 40, 100 << 10);  // 4 MB in 100 KiB values.
  ASSERT_TRUE(Put("b20x", std::string(1536 << 10, 'L')).ok());  // 1.5 MiB.
  std::vector<v1::ScanResponse> msgs;
  ASSERT_TRUE(Scan(v1::ScanRequest(), &msgs).ok());
  auto keys = Keys(msgs);
  ASSERT_EQ(keys.size(), 41u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_GE(msgs.size(), 5u);
  bool large_alone = false;
  for (const auto& m : msgs) {
    size_t bytes = 0;
    for (const auto& kv : m.pairs()) bytes += kv.key().size() + kv.value().size();
    if (m.pairs_size() == 1 && m.pairs(0).key() == "b20x") {
      large_alone = true;
      EXPECT_EQ(m.pairs(0).value().size(), 1536u << 10);
    } else {
      EXPECT_LE(bytes, kScanBatchBytes);
      EXPECT_GE(m.pairs_size(), 1);
    }
  }
  EXPECT_TRUE(large_alone);
}

TEST_F(KvServerTest, ScanReadsOneSnapshotWhileWritesContinue) {
  Fill("s", 30, 100 << 10);  // ~3 batches of 10 pairs.
  absl::Notification writes_done;
  SetScanHook([&](int batch, grpc::ServerContext*) {
    if (batch == 1) writes_done.WaitForNotificationWithTimeout(kWait);
  });
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub_->Scan(&ctx, v1::ScanRequest());
  std::vector<v1::ScanResponse> msgs(1);
  ASSERT_TRUE(reader->Read(&msgs[0]));
  // The scan is paused before its second batch. Change the data under it.
  ASSERT_TRUE(Put("s05", "new").ok());   // Already sent.
  ASSERT_TRUE(Put("s15", "new").ok());   // Not sent yet.
  ASSERT_TRUE(Delete("s16").ok());
  ASSERT_TRUE(Put("s155", "inserted").ok());
  ASSERT_TRUE(Put("s99", "appended").ok());
  writes_done.Notify();
  v1::ScanResponse resp;
  while (reader->Read(&resp)) msgs.push_back(resp);
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_GE(msgs.size(), 3u);
  std::map<std::string, std::string> seen;
  for (const auto& m : msgs) {
    for (const auto& kv : m.pairs()) seen[kv.key()] = kv.value();
  }
  EXPECT_EQ(seen.size(), 30u);
  EXPECT_EQ(seen["s15"], std::string(100 << 10, 'a' + 15));
  EXPECT_TRUE(seen.count("s16"));
  EXPECT_FALSE(seen.count("s155"));
  EXPECT_FALSE(seen.count("s99"));
  // The writes did happen.
  EXPECT_EQ(GetValue("s15"), "new");
  EXPECT_EQ(GetValue("s16"), "<missing>");
}

TEST_F(KvServerTest, ScanCancelledByClientStopsPromptlyAndFreesTheCall) {
  Fill("c", 60, 100 << 10);  // ~6 batches.
  absl::Notification cancelled;
  std::atomic<int> max_batch{-1};
  SetScanHook([&](int batch, grpc::ServerContext* context) {
    max_batch = std::max(max_batch.load(), batch);
    if (batch != 1) return;
    cancelled.WaitForNotificationWithTimeout(kWait);
    // Let the server notice the cancellation before it goes on (bounded).
    const absl::Time deadline = absl::Now() + kWait;
    while (!context->IsCancelled() && absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub_->Scan(&ctx, v1::ScanRequest());
  v1::ScanResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  ctx.TryCancel();
  cancelled.Notify();
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);

  auto end = observer_.WaitForEnd("Scan");
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->code, grpc::StatusCode::CANCELLED);
  EXPECT_EQ(max_batch.load(), 1);  // Stopped at the next batch.
  EXPECT_TRUE(WaitForIdle());
  // Still serving.
  ASSERT_TRUE(Put("after-cancel", "ok").ok());
  EXPECT_EQ(GetValue("after-cancel"), "ok");
}

TEST_F(KvServerTest, ScanDeadlineExceeded) {
  Fill("d", 30, 100 << 10);
  absl::Notification client_gave_up;
  SetScanHook([&](int batch, grpc::ServerContext*) {
    if (batch == 1) client_gave_up.WaitForNotificationWithTimeout(kWait);
  });
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Milliseconds(300));
  auto reader = stub_->Scan(&ctx, v1::ScanRequest());
  v1::ScanResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  client_gave_up.Notify();
  auto end = observer_.WaitForEnd("Scan");
  ASSERT_TRUE(end.has_value());
  EXPECT_NE(end->code, grpc::StatusCode::OK);
  EXPECT_TRUE(WaitForIdle());
  ASSERT_TRUE(Put("after-deadline", "ok").ok());
}

TEST_F(KvServerTest, UnaryDeadlineExceeded) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() -
                   std::chrono::milliseconds(1));
  v1::PutRequest req;
  req.set_key("late");
  v1::PutResponse resp;
  EXPECT_EQ(stub_->Put(&ctx, req, &resp).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
}

// Load shedding: a request whose deadline passed while it waited (in the
// transport or the queue) is answered DEADLINE_EXCEEDED before its handler
// runs, so an overloaded node spends nothing on work nobody waits for. The
// server's deadline clock is shifted an hour ahead: every request with a
// deadline looks expired when its handler would start.
TEST_F(KvServerTest, ARequestPastItsDeadlineIsShedWithoutWork) {
  ServerOptions options = TestServerOptions();
  options.TEST_deadline_clock_offset = std::chrono::hours(1);
  StartServer(options);
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    v1::PutRequest req;
    req.set_key("shed");
    req.set_value("v");
    v1::PutResponse resp;
    grpc::Status s = stub_->Put(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    EXPECT_THAT(s.error_message(), HasSubstr("nothing was done"));
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    auto reader = stub_->Scan(&ctx, v1::ScanRequest());
    v1::ScanResponse resp;
    EXPECT_FALSE(reader->Read(&resp));
    EXPECT_EQ(reader->Finish().error_code(),
              grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  // Without a deadline nothing is shed, and the shed Put wrote nothing.
  grpc::ClientContext ctx;
  v1::GetRequest req;
  req.set_key("shed");
  v1::GetResponse resp;
  ASSERT_TRUE(stub_->Get(&ctx, req, &resp).ok());
  EXPECT_FALSE(resp.found());
  EXPECT_TRUE(WaitForIdle());
}

TEST_F(KvServerTest, InFlightCapReturnsResourceExhausted) {
  ServerOptions options = TestServerOptions();
  options.max_inflight_rpcs = 1;
  StartServer(options);
  Fill("f", 20, 100 << 10);
  absl::Notification release;
  SetScanHook([&](int batch, grpc::ServerContext*) {
    if (batch == 1) release.WaitForNotificationWithTimeout(kWait);
  });
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub_->Scan(&ctx, v1::ScanRequest());
  v1::ScanResponse resp;
  ASSERT_TRUE(reader->Read(&resp));  // The first scan is in flight.
  std::vector<v1::ScanResponse> msgs;
  grpc::Status second = Scan(v1::ScanRequest(), &msgs);
  EXPECT_EQ(second.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(second.error_message(), HasSubstr("--max_inflight_rpcs"));
  EXPECT_EQ(GetValue("f00"), std::string(100 << 10, 'a'));  // Other methods.
  release.Notify();
  while (reader->Read(&resp)) {
  }
  EXPECT_TRUE(reader->Finish().ok());
}

// ---- Engine errors and the blocking pool ----

TEST_F(KvServerTest, GetThatWouldBlockIsServedByThePool) {
  FaultDB* fault = nullptr;
  StartServer(TestServerOptions(), [&](storage::DB* db) {
    auto f = std::make_unique<FaultDB>(db);
    f->would_block = true;
    fault = f.get();
    return f;
  });
  ASSERT_TRUE(Put("cold", "value").ok());
  EXPECT_EQ(GetValue("cold"), "value");
  EXPECT_EQ(GetValue("absent"), "<missing>");
  EXPECT_EQ(fault->blocking_gets.load(), 2);
}


// Occupies both pool threads with lookups of "x" and "y", then sends eight
// concurrent Gets of "hot": with coalescing they wait in one group and one
// lookup answers all of them; without it, each does its own.
TEST_F(KvServerTest, ConcurrentGetsOfAColdKeyShareOneLookup) {
  for (bool coalesce : {true, false}) {
    SCOPED_TRACE(coalesce ? "coalesce_gets" : "no coalescing");
    FaultDB* fault = nullptr;
    absl::Notification release;
    Counter holding;
    ServerOptions options = TestServerOptions();
    options.io_threads = 2;
    options.coalesce_gets = coalesce;
    const int coalesced_before = observer_.coalesced();
    StartServer(options, [&](storage::DB* db) {
      auto f = std::make_unique<FaultDB>(db);
      f->would_block = true;
      f->after_blocking_read = [&](std::string_view key) {
        if (key == "hot") return;
        holding.Add();
        release.WaitForNotificationWithTimeout(kWait);
      };
      fault = f.get();
      return f;
    });
    ASSERT_TRUE(Put("hot", "value").ok());
    std::vector<std::thread> threads;
    std::vector<std::string> got(10);
    threads.emplace_back([&] { got[8] = GetValue("x"); });
    threads.emplace_back([&] { got[9] = GetValue("y"); });
    ASSERT_TRUE(holding.WaitFor(2));  // Both pool threads are held.
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&, i] { got[i] = GetValue("hot"); });
    }
    if (coalesce) {
      // Seven joined the first one's queued lookup.
      EXPECT_TRUE(observer_.WaitForCoalesced(coalesced_before + 7));
    } else {
      ASSERT_TRUE(WaitForRpcsInFlight(10));
    }
    release.Notify();
    for (std::thread& t : threads) t.join();
    for (int i = 0; i < 8; ++i) EXPECT_EQ(got[i], "value") << i;
    EXPECT_EQ(got[8], "<missing>");
    EXPECT_EQ(fault->blocking_gets.load(), coalesce ? 3 : 10);
    EXPECT_EQ(observer_.coalesced(), coalesced_before + (coalesce ? 7 : 0));
  }
}

// A Get must never take the answer of a lookup that started before it
// arrived: it could miss a write acknowledged in between.
TEST_F(KvServerTest, GetDoesNotJoinALookupThatAlreadyRead) {
  absl::Notification release;
  Counter first_read;
  std::atomic<int> hot_reads{0};
  StartServer(TestServerOptions(), [&](storage::DB* db) {
    auto f = std::make_unique<FaultDB>(db);
    f->would_block = true;
    f->after_blocking_read = [&](std::string_view key) {
      if (key != "hot" || hot_reads.fetch_add(1) != 0) return;
      first_read.Add();  // The first lookup has read "v1" and is held.
      release.WaitForNotificationWithTimeout(kWait);
    };
    return f;
  });
  ASSERT_TRUE(Put("hot", "v1").ok());
  std::string first;
  std::thread reader([&] { first = GetValue("hot"); });
  ASSERT_TRUE(first_read.WaitFor(1));
  ASSERT_TRUE(Put("hot", "v2").ok());
  EXPECT_EQ(GetValue("hot"), "v2");
  release.Notify();
  reader.join();
  EXPECT_EQ(first, "v1");
}

TEST_F(KvServerTest, EngineWriteErrorIsReturnedWithItsCode) {
  StartServer(TestServerOptions(), [&](storage::DB* db) {
    auto f = std::make_unique<FaultDB>(db);
    f->write_error = absl::UnavailableError("WAL sync failed: EIO");
    return f;
  });
  grpc::Status s = Put("k", "v");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "WAL sync failed: EIO");
  EXPECT_EQ(GetValue("k"), "<missing>");
}

TEST_F(KvServerTest, IteratorErrorEndsTheScanWithItsCode) {
  // The error starts after the server has started (a server that cannot
  // read its lease records at start does not start); no expirer thread
  // reads meanwhile.
  FaultDB* fault = nullptr;
  ServerOptions options = TestServerOptions();
  options.expiry.background = false;
  StartServer(options, [&](storage::DB* db) {
    auto f = std::make_unique<FaultDB>(db);
    fault = f.get();
    return f;
  });
  fault->iterator_error = absl::DataLossError("000007.sst: bad block at 4096");
  std::vector<v1::ScanResponse> msgs;
  grpc::Status s = Scan(v1::ScanRequest(), &msgs);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(s.error_message(), "000007.sst: bad block at 4096");
}

// ---- Reflection and health ----

// Calls ServerReflectionInfo with list_services and returns the names.
// The request/response types come from the descriptors that
// libgrpc++_reflection registers (Debian ships no reflection headers).
std::vector<std::string> ListServicesByReflection(
    const std::shared_ptr<grpc::Channel>& channel) {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* req_type = pool->FindMessageTypeByName(
      "grpc.reflection.v1alpha.ServerReflectionRequest");
  const auto* resp_type = pool->FindMessageTypeByName(
      "grpc.reflection.v1alpha.ServerReflectionResponse");
  EXPECT_NE(req_type, nullptr);
  EXPECT_NE(resp_type, nullptr);
  if (req_type == nullptr || resp_type == nullptr) return {};
  auto* factory = google::protobuf::MessageFactory::generated_factory();
  std::unique_ptr<google::protobuf::Message> req(
      factory->GetPrototype(req_type)->New());
  req->GetReflection()->SetString(
      req.get(), req_type->FindFieldByName("list_services"), "");
  std::string bytes = req->SerializeAsString();

  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      &cq);
  auto step = [&](intptr_t want) {
    void* tag;
    bool ok = false;
    auto r = cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() +
                                         std::chrono::seconds(20));
    EXPECT_EQ(r, grpc::CompletionQueue::GOT_EVENT);
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  EXPECT_TRUE(step(1));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  EXPECT_TRUE(step(2));
  call->WritesDone(reinterpret_cast<void*>(3));
  EXPECT_TRUE(step(3));
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(4));
  EXPECT_TRUE(step(4));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(status.ok()) << status.error_message();
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }

  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(in.Dump(&slices).ok());
  std::string resp_bytes;
  for (const auto& s : slices) {
    resp_bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  std::unique_ptr<google::protobuf::Message> resp(
      factory->GetPrototype(resp_type)->New());
  EXPECT_TRUE(resp->ParseFromString(resp_bytes));
  const auto* list_field = resp_type->FindFieldByName("list_services_response");
  const auto& list = resp->GetReflection()->GetMessage(*resp, list_field);
  const auto* service_field = list.GetDescriptor()->FindFieldByName("service");
  std::vector<std::string> names;
  const int n = list.GetReflection()->FieldSize(list, service_field);
  for (int i = 0; i < n; ++i) {
    const auto& svc =
        list.GetReflection()->GetRepeatedMessage(list, service_field, i);
    names.push_back(svc.GetReflection()->GetString(
        svc, svc.GetDescriptor()->FindFieldByName("name")));
  }
  return names;
}

TEST_F(KvServerTest, ReflectionListsTheKvService) {
  std::vector<std::string> names = ListServicesByReflection(channel_);
  EXPECT_THAT(names, ::testing::Contains("strata.v1.KV"));
  EXPECT_THAT(names, ::testing::Contains("grpc.health.v1.Health"));
}

TEST_F(KvServerTest, HealthIsServingForServerAndKvService) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const std::string service : {"", "strata.v1.KV"}) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    HealthResponse resp;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok()) << service;
    EXPECT_EQ(resp.status(), HealthResponse::SERVING) << service;
  }
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("no.such.Service");
  HealthResponse resp;
  EXPECT_EQ(health->Check(&ctx, req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(KvServerTest, HealthTurnsNotServingAsShutdownStartsAndEndsWatches) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("strata.v1.KV");
  auto watch = health->Watch(&ctx, req);
  HealthResponse resp;
  ASSERT_TRUE(watch->Read(&resp));
  EXPECT_EQ(resp.status(), HealthResponse::SERVING);
  const absl::Time start = absl::Now();
  std::thread stopper([&] { server_->Shutdown(); });
  ASSERT_TRUE(watch->Read(&resp));
  EXPECT_EQ(resp.status(), HealthResponse::NOT_SERVING);
  // The server ends the stream itself: an open Watch must not hold the
  // shutdown for its whole grace period.
  EXPECT_FALSE(watch->Read(&resp));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  stopper.join();
  EXPECT_LT(absl::Now() - start, TestServerOptions().shutdown_grace);
}

TEST_F(KvServerTest, HealthWatchCancelledByClientIsRecycled) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto watch = health->Watch(&ctx, grpc::health::v1::HealthCheckRequest());
    HealthResponse resp;
    ASSERT_TRUE(watch->Read(&resp));
    EXPECT_EQ(resp.status(), HealthResponse::SERVING);
    // The server now holds the stream with nothing to send.
    ctx.TryCancel();
    while (watch->Read(&resp)) {
    }
    EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(WaitForIdle());
}

TEST_F(KvServerTest, HealthWatchOfUnknownServiceSaysServiceUnknown) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("no.such.Service");
  auto watch = health->Watch(&ctx, req);
  HealthResponse resp;
  ASSERT_TRUE(watch->Read(&resp));
  EXPECT_EQ(resp.status(), HealthResponse::SERVICE_UNKNOWN);
  ctx.TryCancel();
  while (watch->Read(&resp)) {
  }
  watch->Finish();
}

TEST_F(KvServerTest, HealthRpcsAreNotKvRpcs) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  ASSERT_TRUE(Put("k", "v").ok());
  ASSERT_TRUE(observer_.WaitForEnd("Put").has_value());
  const int starts = observer_.starts();
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  HealthResponse resp;
  ASSERT_TRUE(
      health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp).ok());
  EXPECT_TRUE(WaitForIdle());
  EXPECT_EQ(observer_.starts(), starts);
}

// ---- Shutdown ----

TEST_F(KvServerTest, ShutdownLetsAnInFlightScanFinish) {
  Fill("z", 30, 100 << 10);
  absl::Notification shutdown_started;
  SetScanHook([&](int batch, grpc::ServerContext*) {
    if (batch == 1) shutdown_started.WaitForNotificationWithTimeout(kWait);
  });
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub_->Scan(&ctx, v1::ScanRequest());
  std::vector<v1::ScanResponse> msgs(1);
  ASSERT_TRUE(reader->Read(&msgs[0]));
  std::thread stopper([&] { server_->Shutdown(); });
  // Shutdown is now waiting for the scan (there is no direct signal for
  // "Shutdown has begun"; the scan must finish either way).
  shutdown_started.Notify();
  v1::ScanResponse resp;
  while (reader->Read(&resp)) msgs.push_back(resp);
  grpc::Status s = reader->Finish();
  stopper.join();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Keys(msgs).size(), 30u);
  EXPECT_EQ(server_->server()->TEST_live_calls(), 0);
}

TEST_F(KvServerTest, ShutdownWithIdleServerIsQuickAndIdempotent) {
  ASSERT_TRUE(Put("k", "v").ok());
  const absl::Time start = absl::Now();
  server_->Shutdown();
  server_->Shutdown();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(server_->server()->TEST_live_calls(), 0);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, absl::Seconds(2));
  v1::GetRequest req;
  req.set_key("k");
  v1::GetResponse resp;
  EXPECT_FALSE(stub_->Get(&ctx, req, &resp).ok());
}

TEST(KvServerStartTest, BadOptionsAndBusyPortFailToStart) {
  strata::testing::PinGrpcLibrary();
  strata::testing::TempDir dir;
  auto db = storage::DB::Open(storage::Options(), dir.path() + "/db");
  ASSERT_OK(db);
  ServerOptions options = TestServerOptions();
  options.limits.max_key_bytes = 0;
  KvServer bad((options), db->get());
  EXPECT_TRUE(absl::IsInvalidArgument(bad.Start()));

  KvServer first(TestServerOptions(), db->get());
  ASSERT_OK(first.Start());
  ServerOptions same_port = TestServerOptions();
  same_port.listen = first.bound_address();
  KvServer second(same_port, db->get());
  EXPECT_TRUE(absl::IsUnavailable(second.Start()));
}

}  // namespace
}  // namespace strata::server
