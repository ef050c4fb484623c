// Revisions over gRPC: response headers, key metadata, reads at a
// revision, consistent paging, reverse scans, Compact, BatchGet,
// DeleteRange and Watch (events, compaction, cancellation, shutdown).

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::InProcessServer;

constexpr absl::Duration kWait = absl::Seconds(20);

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d = kWait) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(d));
}

class RevisionsServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(ServerOptions options = strata::testing::TestServerOptions()) {
    server_.reset();
    storage::Options engine;
    engine.keep_history = true;
    engine.history_retention_seconds = 0;
    engine.memtable_bytes = 256 << 10;
    auto s = InProcessServer::Start(options, nullptr, nullptr, engine);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    stub_ = v1::KV::NewStub(grpc::CreateChannel(
        server_->address(), grpc::InsecureChannelCredentials()));
  }

  int64_t Put(const std::string& k, const std::string& v) {
    v1::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Put(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.header().revision();
  }
  int64_t Delete(const std::string& k) {
    v1::DeleteRequest req;
    req.set_key(k);
    v1::DeleteResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Delete(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.header().revision();
  }
  grpc::Status Get(const std::string& k, int64_t revision,
                   v1::GetResponse* resp) {
    v1::GetRequest req;
    req.set_key(k);
    req.set_revision(revision);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub_->Get(&ctx, req, resp);
  }
  // Every message of a Scan.
  grpc::Status Scan(const v1::ScanRequest& req,
                    std::vector<v1::ScanResponse>* out) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto reader = stub_->Scan(&ctx, req);
    v1::ScanResponse resp;
    while (reader->Read(&resp)) out->push_back(resp);
    return reader->Finish();
  }
  std::string Keys(const std::vector<v1::ScanResponse>& msgs) {
    std::string out;
    for (const auto& m : msgs) {
      for (const auto& kv : m.pairs()) {
        if (!out.empty()) out += ",";
        out += kv.key() + "=" + kv.value();
      }
    }
    return out;
  }

  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::KV::Stub> stub_;
};

TEST_F(RevisionsServerTest, WritesReportTheirRevisionAndReadsTheirs) {
  EXPECT_EQ(Put("a", "1"), 1);
  EXPECT_EQ(Put("a", "2"), 2);
  {
    v1::WriteRequest req;
    auto* p = req.add_mutations()->mutable_put();
    p->set_key("b");
    p->set_value("1");
    req.add_mutations()->mutable_delete_()->set_key("a");
    v1::WriteResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->Write(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.header().revision(), 3);  // Both at one revision.
  }
  EXPECT_EQ(Delete("missing"), 3);  // Nothing changed: the current one.
  v1::GetResponse g;
  ASSERT_TRUE(Get("b", 0, &g).ok());
  EXPECT_TRUE(g.found());
  EXPECT_EQ(g.header().revision(), 3);
  EXPECT_EQ(g.create_revision(), 3);
  EXPECT_EQ(g.mod_revision(), 3);
  EXPECT_EQ(g.version(), 1);
  ASSERT_TRUE(Get("a", 2, &g).ok());  // Before the delete.
  EXPECT_TRUE(g.found());
  EXPECT_EQ(g.value(), "2");
  EXPECT_EQ(g.version(), 2);
  EXPECT_EQ(g.header().revision(), 2);
  ASSERT_TRUE(Get("a", 0, &g).ok());
  EXPECT_FALSE(g.found());
  EXPECT_EQ(g.header().revision(), 3);
  grpc::Status future = Get("a", 4, &g);
  EXPECT_EQ(future.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(future.error_message().find("current revision 3"),
            std::string::npos)
      << future.error_message();
  EXPECT_EQ(Get("a", -1, &g).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RevisionsServerTest, CompactRefusesReadsBelowIt) {
  for (int i = 0; i < 5; i++) Put("k", std::to_string(i));
  v1::CompactRequest req;
  req.set_revision(3);
  v1::CompactResponse resp;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->Compact(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.header().revision(), 5);
  }
  v1::GetResponse g;
  grpc::Status s = Get("k", 2, &g);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(s.error_message().find("compacted revision 3"), std::string::npos)
      << s.error_message();
  ASSERT_TRUE(Get("k", 3, &g).ok());
  EXPECT_EQ(g.value(), "2");
  {
    grpc::ClientContext ctx;  // Not above the compacted revision.
    SetDeadline(&ctx);
    EXPECT_EQ(stub_->Compact(&ctx, req, &resp).error_code(),
              grpc::StatusCode::OUT_OF_RANGE);
  }
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    req.set_revision(0);
    EXPECT_EQ(stub_->Compact(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
}

TEST_F(RevisionsServerTest, ScanAtARevisionForwardAndReverse) {
  for (const char* k : {"a", "b", "c", "d"}) Put(k, "1");  // 1..4
  Put("b", "2");                                          // 5
  Delete("c");                                            // 6
  v1::ScanRequest req;
  std::vector<v1::ScanResponse> msgs;
  ASSERT_TRUE(Scan(req, &msgs).ok());
  EXPECT_EQ(Keys(msgs), "a=1,b=2,d=1");
  for (const auto& m : msgs) EXPECT_EQ(m.header().revision(), 6);
  EXPECT_EQ(msgs[0].pairs(1).mod_revision(), 5);
  EXPECT_EQ(msgs[0].pairs(1).create_revision(), 2);
  EXPECT_EQ(msgs[0].pairs(1).version(), 2);
  msgs.clear();
  req.set_revision(4);
  ASSERT_TRUE(Scan(req, &msgs).ok());
  EXPECT_EQ(Keys(msgs), "a=1,b=1,c=1,d=1");
  EXPECT_EQ(msgs[0].header().revision(), 4);
  msgs.clear();
  req.set_reverse(true);
  req.set_start_key("b");
  req.set_end_key("d");
  ASSERT_TRUE(Scan(req, &msgs).ok());
  EXPECT_EQ(Keys(msgs), "c=1,b=1");
  msgs.clear();
  req.set_start_key("");
  req.set_end_key("");
  req.set_limit(2);
  req.set_revision(0);
  ASSERT_TRUE(Scan(req, &msgs).ok());
  EXPECT_EQ(Keys(msgs), "d=1,b=2");
  // Nothing found still says which revision was read.
  msgs.clear();
  v1::ScanRequest empty;
  empty.set_start_key("x");
  ASSERT_TRUE(Scan(empty, &msgs).ok());
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].pairs_size(), 0);
  EXPECT_EQ(msgs[0].header().revision(), 6);
  // Outside the history.
  msgs.clear();
  empty.set_revision(99);
  EXPECT_EQ(Scan(empty, &msgs).error_code(), grpc::StatusCode::OUT_OF_RANGE);
}

// Pages through 1,000 pages at the first page's revision while writers
// keep changing every key: the pages together are exactly the state at
// that revision.
TEST_F(RevisionsServerTest, ConsistentPagingWhileWritesContinue) {
  constexpr int kKeys = 3000;
  {
    v1::WriteRequest req;
    for (int i = 0; i < kKeys; i++) {
      auto* p = req.add_mutations()->mutable_put();
      p->set_key(absl::StrFormat("key%05d", i));
      p->set_value("v0");
      if (req.mutations_size() == 1000) {
        grpc::ClientContext ctx;
        v1::WriteResponse resp;
        ASSERT_TRUE(stub_->Write(&ctx, req, &resp).ok());
        req.Clear();
      }
    }
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    auto stub = v1::KV::NewStub(grpc::CreateChannel(
        server_->address(), grpc::InsecureChannelCredentials()));
    for (int round = 1; !stop.load() && round < 1000; round++) {
      for (int i = 0; i < kKeys && !stop.load(); i += 7) {
        v1::PutRequest req;
        req.set_key(absl::StrFormat("key%05d", i));
        req.set_value(absl::StrFormat("v%d", round));
        v1::PutResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        stub->Put(&ctx, req, &resp);
      }
    }
  });
  int64_t revision = 0;
  std::string start;
  int pages = 0, seen = 0;
  std::string last_key;
  while (pages < 1000) {
    v1::ScanRequest req;
    req.set_start_key(start);
    req.set_limit(3);
    req.set_revision(revision);
    std::vector<v1::ScanResponse> msgs;
    ASSERT_TRUE(Scan(req, &msgs).ok());
    pages++;
    if (revision == 0) revision = msgs[0].header().revision();
    int n = 0;
    for (const auto& m : msgs) {
      EXPECT_EQ(m.header().revision(), revision);
      for (const auto& kv : m.pairs()) {
        EXPECT_GT(kv.key(), last_key);
        last_key = kv.key();
        // At the first page's revision every key still had v0 or the value
        // of the same round as at that revision: read it back by Get.
        v1::GetResponse g;
        ASSERT_TRUE(Get(kv.key(), revision, &g).ok());
        EXPECT_EQ(kv.value(), g.value());
        EXPECT_LE(kv.mod_revision(), revision);
        n++;
      }
    }
    seen += n;
    if (n < 3) break;
    start = last_key + std::string(1, '\0');
  }
  stop = true;
  writer.join();
  EXPECT_EQ(pages, 1000);
  EXPECT_EQ(seen, 3000);
}

TEST_F(RevisionsServerTest, BatchGetReadsEveryKeyAtOneRevision) {
  Put("a", "1");  // 1
  Put("b", "1");  // 2
  Put("a", "2");  // 3
  v1::BatchGetRequest req;
  for (const char* k : {"b", "missing", "a"}) req.add_keys(k);
  req.set_revision(2);
  v1::BatchGetResponse resp;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->BatchGet(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(resp.header().revision(), 2);
  ASSERT_EQ(resp.results_size(), 3);
  EXPECT_EQ(resp.results(0).value(), "1");
  EXPECT_FALSE(resp.results(1).found());
  EXPECT_EQ(resp.results(2).value(), "1");
  EXPECT_EQ(resp.results(2).mod_revision(), 1);
  req.set_revision(0);
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->BatchGet(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(resp.header().revision(), 3);
  EXPECT_EQ(resp.results(2).value(), "2");
  req.clear_keys();
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  EXPECT_EQ(stub_->BatchGet(&ctx, req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(RevisionsServerTest, DeleteRangeDeletesAtOneRevision) {
  for (const char* k : {"a", "b1", "b2", "b3", "c"}) Put(k, "v");  // 1..5
  v1::DeleteRangeRequest req;
  req.set_start_key("b");
  req.set_end_key("c");
  req.set_prev_kv(true);
  v1::DeleteRangeResponse resp;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->DeleteRange(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(resp.header().revision(), 6);
  EXPECT_EQ(resp.deleted(), 3);
  ASSERT_EQ(resp.prev_kvs_size(), 3);
  EXPECT_EQ(resp.prev_kvs(0).key(), "b1");
  EXPECT_EQ(resp.prev_kvs(2).mod_revision(), 4);
  std::vector<v1::ScanResponse> msgs;
  ASSERT_TRUE(Scan(v1::ScanRequest(), &msgs).ok());
  EXPECT_EQ(Keys(msgs), "a=v,c=v");
  // An empty range changes nothing and takes no revision.
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->DeleteRange(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(resp.header().revision(), 6);
  EXPECT_EQ(resp.deleted(), 0);
}

TEST_F(RevisionsServerTest, DeleteRangeWithPrevKvOverTheLimitDeletesNothing) {
  ServerOptions options = strata::testing::TestServerOptions();
  options.limits.max_batch_mutations = 2;
  Start(options);
  for (const char* k : {"a", "b", "c"}) Put(k, "v");
  v1::DeleteRangeRequest req;
  req.set_prev_kv(true);
  v1::DeleteRangeResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  grpc::Status s = stub_->DeleteRange(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  std::vector<v1::ScanResponse> msgs;
  ASSERT_TRUE(Scan(v1::ScanRequest(), &msgs).ok());
  EXPECT_EQ(Keys(msgs), "a=v,b=v,c=v");
}

// Reads a Watch stream on its own thread.
class WatchReader {
 public:
  WatchReader(v1::KV::Stub* stub, const v1::WatchRequest& req) {
    reader_ = stub->Watch(&ctx_, req);
    thread_ = std::thread([this] {
      v1::WatchResponse resp;
      while (reader_->Read(&resp)) {
        absl::MutexLock l(&mu_);
        messages_.push_back(resp);
        changed_.SignalAll();
      }
      grpc::Status s = reader_->Finish();
      absl::MutexLock l(&mu_);
      status_ = s;
      done_ = true;
      changed_.SignalAll();
    });
  }
  ~WatchReader() {
    ctx_.TryCancel();
    thread_.join();
  }
  // "rev:PUT key=value" / "rev:DELETE key", in order.
  std::vector<std::string> Events() {
    absl::MutexLock l(&mu_);
    std::vector<std::string> out;
    for (const auto& m : messages_) {
      for (const auto& e : m.events()) {
        out.push_back(absl::StrFormat(
            "%d:%s %s%s", e.kv().mod_revision(),
            e.type() == v1::Event::PUT ? "PUT" : "DELETE", e.kv().key(),
            e.type() == v1::Event::PUT ? "=" + e.kv().value() : ""));
      }
    }
    return out;
  }
  bool WaitForEvents(size_t n) {
    return WaitUntil([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      size_t events = 0;
      for (const auto& m : messages_) events += m.events_size();
      return events >= n || done_;
    });
  }
  bool WaitDone() {
    return WaitUntil(
        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; });
  }
  grpc::Status status() {
    absl::MutexLock l(&mu_);
    return status_;
  }
  std::vector<v1::WatchResponse> messages() {
    absl::MutexLock l(&mu_);
    return messages_;
  }

 private:
  // A CondVar loop: the predicate is evaluated by this thread only.
  bool WaitUntil(const std::function<bool()>& pred) {
    absl::MutexLock l(&mu_);
    const absl::Time deadline = absl::Now() + kWait;
    while (!pred()) {
      if (changed_.WaitWithDeadline(&mu_, deadline)) return pred();
    }
    return true;
  }

  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader_;
  absl::Mutex mu_;
  absl::CondVar changed_;
  std::vector<v1::WatchResponse> messages_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

TEST_F(RevisionsServerTest, WatchStreamsChangesFromARevision) {
  Put("cfg/a", "1");  // 1
  Put("other", "x");  // 2
  v1::WatchRequest req;
  req.set_key("cfg/");
  req.set_range_end("cfg0");
  req.set_start_revision(1);
  WatchReader w(stub_.get(), req);
  Delete("cfg/a");    // 3
  Put("cfg/b", "2");  // 4
  ASSERT_TRUE(w.WaitForEvents(3));
  EXPECT_EQ(w.Events(), (std::vector<std::string>{"1:PUT cfg/a=1",
                                                  "3:DELETE cfg/a",
                                                  "4:PUT cfg/b=2"}));
  // The first message opens the stream (complete up to start - 1).
  EXPECT_EQ(w.messages()[0].header().revision(), 0);
}

TEST_F(RevisionsServerTest, WatchFromACompactedRevisionEndsWithItsRevision) {
  for (int i = 0; i < 5; i++) Put("k", std::to_string(i));
  {
    v1::CompactRequest req;
    req.set_revision(4);
    v1::CompactResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->Compact(&ctx, req, &resp).ok());
  }
  v1::WatchRequest req;
  req.set_key("k");
  req.set_start_revision(2);
  WatchReader w(stub_.get(), req);
  ASSERT_TRUE(w.WaitDone());
  EXPECT_EQ(w.status().error_code(), grpc::StatusCode::OUT_OF_RANGE);
  ASSERT_EQ(w.messages().size(), 1u);
  EXPECT_EQ(w.messages()[0].compact_revision(), 4);
}

TEST_F(RevisionsServerTest, CancelledWatchIsRecycled) {
  {
    v1::WatchRequest req;
    req.set_key("k");
    WatchReader w(stub_.get(), req);
    Put("k", "1");
    ASSERT_TRUE(w.WaitForEvents(1));
  }  // Cancelled here.
  EXPECT_TRUE(server_->WaitForIdle(kWait));
}

TEST_F(RevisionsServerTest, ShutdownEndsOpenWatchesAtOnce) {
  v1::WatchRequest req;
  req.set_key("k");
  WatchReader w(stub_.get(), req);
  Put("k", "1");
  ASSERT_TRUE(w.WaitForEvents(1));
  const absl::Time start = absl::Now();
  server_->Shutdown();
  ASSERT_TRUE(w.WaitDone());
  EXPECT_EQ(w.status().error_code(), grpc::StatusCode::UNAVAILABLE);
  // Well inside the 2 s grace period: the watch does not hold the drain.
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST_F(RevisionsServerTest, BadWatchRequestsAreInvalidArgument) {
  v1::WatchRequest req;  // No key.
  WatchReader w(stub_.get(), req);
  ASSERT_TRUE(w.WaitDone());
  EXPECT_EQ(w.status().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace strata::server
