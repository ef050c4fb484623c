// strata::Client against a real in-process server.

#include "client/strata_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/status.h"
#include "gtest/gtest.h"
#include "server/kv_server.h"
#include "strata/v1/cluster.grpc.pb.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/support/test_util.h"

namespace strata {
namespace {

using ::strata::testing::InProcessServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

// A 127.0.0.1 port with nothing listening (bound, then closed).
int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class StrataClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // History on, as strata-server runs it, but nothing expires by time.
    storage::Options engine;
    engine.keep_history = true;
    engine.history_retention_seconds = 0;
    auto s = InProcessServer::Start(strata::testing::TestServerOptions(),
                                    nullptr, nullptr, engine);
    ASSERT_OK(s);
    server_ = *std::move(s);
    client_ = std::make_unique<Client>(server_->address());
  }

  // What a server restart looks like to clients: the server stops
  // (UNAVAILABLE to open streams), then another serves the same DB on the
  // same address. Between the two, `while_down` runs (e.g. writes to the
  // DB).
  void Restart(const std::function<void(storage::DB*)>& while_down = {}) {
    server_->Shutdown();
    if (while_down) while_down(server_->db());
    server::ServerOptions options = strata::testing::TestServerOptions();
    options.listen = server_->address();
    restarted_ = std::make_unique<server::KvServer>(options, server_->db());
    ASSERT_OK(restarted_->Start());
  }

  std::vector<std::pair<std::string, std::string>> ScanAll(
      std::string_view start, std::string_view end, uint32_t limit = 0,
      bool keys_only = false) {
    std::vector<std::pair<std::string, std::string>> out;
    EXPECT_OK(client_->Scan(start, end, limit, keys_only,
                            [&](std::string_view k, std::string_view v) {
                              out.emplace_back(k, v);
                              return true;
                            }));
    return out;
  }

  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<server::KvServer> restarted_;  // Stopped before server_.
  std::unique_ptr<Client> client_;
};

TEST_F(StrataClientTest, PutGetDelete) {
  ASSERT_OK(client_->Put("k", "v"));
  ASSERT_OK_AND_ASSIGN(auto v, client_->Get("k"));
  EXPECT_EQ(v, std::optional<std::string>("v"));
  ASSERT_OK(client_->Delete("k"));
  ASSERT_OK_AND_ASSIGN(v, client_->Get("k"));
  EXPECT_FALSE(v.has_value());
  ASSERT_OK(client_->Delete("k"));  // Missing: still OK.
}

TEST_F(StrataClientTest, EmptyValueIsPresent) {
  ASSERT_OK(client_->Put("k", ""));
  ASSERT_OK_AND_ASSIGN(auto v, client_->Get("k"));
  EXPECT_EQ(v, std::optional<std::string>(""));
}

TEST_F(StrataClientTest, LargestValueRoundTrips) {
  const std::string big(2 << 20, 'x');
  ASSERT_OK(client_->Put("big", big));
  ASSERT_OK_AND_ASSIGN(auto v, client_->Get("big"));
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->size(), big.size());
}

TEST_F(StrataClientTest, WriteAppliesInOrder) {
  ASSERT_OK(client_->Write({Mutation::Put("a", "1"), Mutation::Put("b", "2"),
                            Mutation::Delete("a"), Mutation::Put("b", "3")}));
  ASSERT_OK_AND_ASSIGN(auto a, client_->Get("a"));
  EXPECT_FALSE(a.has_value());
  ASSERT_OK_AND_ASSIGN(auto b, client_->Get("b"));
  EXPECT_EQ(b, std::optional<std::string>("3"));
  EXPECT_OK(client_->Write({}));
}

TEST_F(StrataClientTest, TypedValuesIncrementAndJson) {
  ASSERT_OK(client_->Put("t", "text", ValueType::kText));
  ASSERT_OK(client_->Put("j", R"({"b": 1, "a": [true]})", ValueType::kJson));
  ASSERT_OK_AND_ASSIGN(GetResult g, client_->GetWithMetadata("j"));
  ASSERT_TRUE(g.kv.has_value());
  EXPECT_EQ(g.kv->type, ValueType::kJson);
  EXPECT_EQ(g.kv->value, R"({"a":[true],"b":1})");
  absl::Status bad = client_->Put("i", "x", ValueType::kInt64).status();
  EXPECT_TRUE(absl::IsInvalidArgument(bad)) << bad;

  ASSERT_OK_AND_ASSIGN(IncrementResult inc, client_->Increment("n"));
  EXPECT_EQ(inc.value, 1);
  ASSERT_OK_AND_ASSIGN(inc, client_->Increment("n", -5));
  EXPECT_EQ(inc.value, -4);
  ASSERT_OK_AND_ASSIGN(g, client_->GetWithMetadata("n"));
  EXPECT_EQ(g.kv->type, ValueType::kInt64);
  EXPECT_EQ(g.kv->mod_revision, inc.revision);
  IncrementOptions must;
  must.must_exist = true;
  EXPECT_TRUE(absl::IsNotFound(client_->Increment("none", 1, must).status()));
  EXPECT_TRUE(
      absl::IsFailedPrecondition(client_->Increment("t").status()));

  ASSERT_OK_AND_ASSIGN(JsonResult j, client_->JsonGet("j", "/a/0"));
  EXPECT_EQ(j.json, "true");
  ASSERT_OK_AND_ASSIGN(
      j, client_->JsonUpdate("j", JsonPatchKind::kMergePatch, R"({"b":null})"));
  EXPECT_EQ(j.json, R"({"a":[true]})");
  ASSERT_OK_AND_ASSIGN(
      j, client_->JsonUpdate("j", JsonPatchKind::kJsonPatch,
                             R"([{"op":"add","path":"/a/-","value":2}])"));
  EXPECT_EQ(j.json, R"({"a":[true,2]})");
  EXPECT_TRUE(absl::IsNotFound(client_->JsonGet("j", "/zz").status()));

  ASSERT_OK(client_->Write({Mutation::Put("w", "7", ValueType::kInt64)}));
  ASSERT_OK_AND_ASSIGN(inc, client_->Increment("w", 3));
  EXPECT_EQ(inc.value, 10);
  EXPECT_EQ(ValueTypeName(ValueType::kInt64), "int64");
  EXPECT_EQ(*ParseValueType("JSON"), ValueType::kJson);
  EXPECT_TRUE(absl::IsInvalidArgument(ParseValueType("yaml").status()));
}

TEST_F(StrataClientTest, ScanBoundsLimitKeysOnlyAndEarlyStop) {
  std::vector<Mutation> batch;
  for (int i = 0; i < 50; ++i) {
    batch.push_back(Mutation::Put(absl::StrFormat("s%02d", i), "v"));
  }
  ASSERT_OK(client_->Write(batch));
  EXPECT_EQ(ScanAll("s10", "s20").size(), 10u);
  EXPECT_EQ(ScanAll("s45", "").size(), 5u);
  auto limited = ScanAll("", "", 3);
  ASSERT_EQ(limited.size(), 3u);
  EXPECT_EQ(limited[0].first, "s00");
  for (const auto& [k, v] : ScanAll("s00", "s05", 0, true)) EXPECT_EQ(v, "");

  int seen = 0;
  ASSERT_OK(client_->Scan("", "", 0, false,
                          [&](std::string_view, std::string_view) {
                            return ++seen < 7;
                          }));
  EXPECT_EQ(seen, 7);
  // The server is still fine after the early stop.
  EXPECT_EQ(ScanAll("", "").size(), 50u);
}

TEST_F(StrataClientTest, ServerErrorsKeepCodeAndMessage) {
  absl::Status s = client_->Put("", "v").status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("--max_key_bytes"));
  s = client_->Write({Mutation::Put("ok", "v"), Mutation::Delete("")}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), HasSubstr("mutation 1"));
  EXPECT_TRUE(absl::IsInvalidArgument(client_->Get("").status()));
}

TEST_F(StrataClientTest, HealthIsServing) {
  ASSERT_OK_AND_ASSIGN(bool serving, client_->Health());
  EXPECT_TRUE(serving);
  ASSERT_OK_AND_ASSIGN(serving, client_->Health("strata.v1.KV"));
  EXPECT_TRUE(serving);
  EXPECT_TRUE(absl::IsNotFound(client_->Health("no.such.Service").status()));
}

// "rev:PUT key=value" / "rev:DELETE key" (+ " prev=value@rev").
std::string Describe(const WatchEvent& e) {
  std::string s = absl::StrFormat(
      "%d:%s %s", e.revision(),
      e.type == WatchEvent::Type::kPut ? "PUT" : "DELETE", e.kv.key);
  if (e.type == WatchEvent::Type::kPut) s += "=" + e.kv.value;
  if (e.prev_kv.has_value()) {
    s += absl::StrFormat(" prev=%s@%d", e.prev_kv->value,
                         e.prev_kv->mod_revision);
  }
  return s;
}

TEST_F(StrataClientTest, WritesReturnTheRevisionTheyCommittedAt) {
  ASSERT_OK_AND_ASSIGN(Revision r, client_->Put("a", "1"));
  EXPECT_EQ(r, 1);
  ASSERT_OK_AND_ASSIGN(r, client_->Put("a", "2"));
  EXPECT_EQ(r, 2);
  ASSERT_OK_AND_ASSIGN(
      r, client_->Write({Mutation::Put("b", "1"), Mutation::Delete("a")}));
  EXPECT_EQ(r, 3);  // Both changes at one revision.
  ASSERT_OK_AND_ASSIGN(r, client_->Delete("never-there"));
  EXPECT_EQ(r, 3);  // Nothing written: the current revision.
  ASSERT_OK_AND_ASSIGN(r, client_->Delete("b"));
  EXPECT_EQ(r, 4);
  ASSERT_OK_AND_ASSIGN(r, client_->Write({}));
  EXPECT_EQ(r, 0);  // No call at all.
}

TEST_F(StrataClientTest, GetWithMetadataAtARevision) {
  ASSERT_OK(client_->Put("k", "v1"));     // 1
  ASSERT_OK(client_->Put("k", "v2"));     // 2
  ASSERT_OK(client_->Put("other", "x"));  // 3
  ASSERT_OK_AND_ASSIGN(GetResult got, client_->GetWithMetadata("k"));
  EXPECT_EQ(got.revision, 3);
  ASSERT_TRUE(got.kv.has_value());
  EXPECT_EQ(got.kv->key, "k");
  EXPECT_EQ(got.kv->value, "v2");
  EXPECT_EQ(got.kv->create_revision, 1);
  EXPECT_EQ(got.kv->mod_revision, 2);
  EXPECT_EQ(got.kv->version, 2);

  ASSERT_OK_AND_ASSIGN(got, client_->GetWithMetadata("k", 1));
  EXPECT_EQ(got.revision, 1);
  ASSERT_TRUE(got.kv.has_value());
  EXPECT_EQ(got.kv->value, "v1");
  EXPECT_EQ(got.kv->version, 1);

  ASSERT_OK_AND_ASSIGN(got, client_->GetWithMetadata("other", 2));
  EXPECT_FALSE(got.kv.has_value());  // Not yet written at 2.
  EXPECT_EQ(got.revision, 2);

  absl::StatusOr<GetResult> future = client_->GetWithMetadata("k", 4);
  EXPECT_TRUE(absl::IsOutOfRange(future.status())) << future.status();
  EXPECT_TRUE(
      absl::IsInvalidArgument(client_->GetWithMetadata("k", -1).status()));
}

TEST_F(StrataClientTest, ScanAtARevisionForwardAndReverse) {
  ASSERT_OK(client_->Write({Mutation::Put("a", "1"), Mutation::Put("b", "1"),
                            Mutation::Put("c", "1")}));  // 1
  ASSERT_OK(client_->Put("b", "2"));                     // 2
  ASSERT_OK(client_->Delete("c"));                       // 3
  auto scan = [&](const ScanOptions& options, Revision* read_at) {
    std::vector<std::string> out;
    absl::StatusOr<Revision> r = client_->Scan(options, [&](const KeyValue& kv) {
      out.push_back(absl::StrFormat("%s=%s@%d/%d/%d", kv.key, kv.value,
                                    kv.create_revision, kv.mod_revision,
                                    kv.version));
      return true;
    });
    EXPECT_OK(r);
    *read_at = r.ok() ? *r : -1;
    return out;
  };
  Revision read_at = 0;
  ScanOptions options;
  EXPECT_THAT(scan(options, &read_at),
              ElementsAre("a=1@1/1/1", "b=2@1/2/2"));
  EXPECT_EQ(read_at, 3);
  options.revision = 1;
  EXPECT_THAT(scan(options, &read_at),
              ElementsAre("a=1@1/1/1", "b=1@1/1/1", "c=1@1/1/1"));
  EXPECT_EQ(read_at, 1);
  options.reverse = true;
  options.limit = 2;
  EXPECT_THAT(scan(options, &read_at),
              ElementsAre("c=1@1/1/1", "b=1@1/1/1"));
  options.start = "a";
  options.end = "c";
  options.limit = 0;
  options.keys_only = true;
  EXPECT_THAT(scan(options, &read_at), ElementsAre("b=@1/1/1", "a=@1/1/1"));

  // An empty range still says which revision it read.
  ScanOptions empty;
  empty.start = "x";
  EXPECT_TRUE(scan(empty, &read_at).empty());
  EXPECT_EQ(read_at, 3);

  // Stopping early still returns the revision.
  int seen = 0;
  absl::StatusOr<Revision> stopped = client_->Scan(
      ScanOptions(), [&](const KeyValue&) { return ++seen < 1; });
  ASSERT_OK(stopped);
  EXPECT_EQ(*stopped, 3);
  EXPECT_EQ(seen, 1);

  empty.revision = 99;
  EXPECT_TRUE(absl::IsOutOfRange(
      client_->Scan(empty, [](const KeyValue&) { return true; }).status()));
}

TEST_F(StrataClientTest, BatchGetReadsAtOneRevisionInRequestOrder) {
  ASSERT_OK(client_->Put("a", "1"));  // 1
  ASSERT_OK(client_->Put("b", "1"));  // 2
  ASSERT_OK(client_->Put("a", "2"));  // 3
  ASSERT_OK_AND_ASSIGN(BatchGetResult got,
                       client_->BatchGet({"b", "missing", "a"}, 2));
  EXPECT_EQ(got.revision, 2);
  ASSERT_EQ(got.kvs.size(), 3u);
  ASSERT_TRUE(got.kvs[0].has_value());
  EXPECT_EQ(got.kvs[0]->key, "b");
  EXPECT_EQ(got.kvs[0]->value, "1");
  EXPECT_FALSE(got.kvs[1].has_value());
  ASSERT_TRUE(got.kvs[2].has_value());
  EXPECT_EQ(got.kvs[2]->value, "1");
  EXPECT_EQ(got.kvs[2]->mod_revision, 1);
  ASSERT_OK_AND_ASSIGN(got, client_->BatchGet({"a"}));
  EXPECT_EQ(got.revision, 3);
  EXPECT_EQ(got.kvs[0]->value, "2");
  EXPECT_TRUE(absl::IsInvalidArgument(client_->BatchGet({}).status()));
  EXPECT_TRUE(absl::IsOutOfRange(client_->BatchGet({"a"}, 9).status()));
}

TEST_F(StrataClientTest, DeleteRangeDeletesAtOneRevision) {
  for (const char* k : {"a", "b1", "b2", "c"}) ASSERT_OK(client_->Put(k, k));
  ASSERT_OK_AND_ASSIGN(DeleteRangeResult r,
                       client_->DeleteRange("b", "c", /*prev_kv=*/true));
  EXPECT_EQ(r.revision, 5);
  EXPECT_EQ(r.deleted, 2);
  ASSERT_EQ(r.prev_kvs.size(), 2u);
  EXPECT_EQ(r.prev_kvs[0].key, "b1");
  EXPECT_EQ(r.prev_kvs[1].value, "b2");
  EXPECT_EQ(r.prev_kvs[1].mod_revision, 3);
  EXPECT_EQ(ScanAll("", "").size(), 2u);
  // Nothing left in the range: nothing deleted, no revision taken.
  ASSERT_OK_AND_ASSIGN(r, client_->DeleteRange("b", "c"));
  EXPECT_EQ(r.deleted, 0);
  EXPECT_EQ(r.revision, 5);
  EXPECT_TRUE(r.prev_kvs.empty());
  // Both bounds empty: everything.
  ASSERT_OK_AND_ASSIGN(r, client_->DeleteRange("", ""));
  EXPECT_EQ(r.deleted, 2);
  EXPECT_TRUE(ScanAll("", "").empty());
}

TEST_F(StrataClientTest, CompactDiscardsOlderRevisions) {
  for (int i = 1; i <= 4; i++) ASSERT_OK(client_->Put("k", std::to_string(i)));
  ASSERT_OK_AND_ASSIGN(Revision current, client_->Compact(3));
  EXPECT_EQ(current, 4);
  absl::Status s = client_->GetWithMetadata("k", 2).status();
  EXPECT_TRUE(absl::IsOutOfRange(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("compacted revision 3"));
  ASSERT_OK_AND_ASSIGN(GetResult at3, client_->GetWithMetadata("k", 3));
  EXPECT_EQ(at3.kv->value, "3");
  EXPECT_TRUE(absl::IsOutOfRange(client_->Compact(3).status()));  // Not above.
  EXPECT_TRUE(absl::IsOutOfRange(client_->Compact(5).status()));  // Future.
  EXPECT_TRUE(absl::IsInvalidArgument(client_->Compact(0).status()));
}

// Reads a WatchStream on its own thread, collecting events.
class WatchCollector {
 public:
  explicit WatchCollector(std::unique_ptr<WatchStream> stream)
      : stream_(std::move(stream)) {
    thread_ = std::thread([this] {
      while (true) {
        absl::StatusOr<WatchBatch> batch = stream_->Next();
        absl::MutexLock l(&mu_);
        if (!batch.ok()) {
          status_ = batch.status();
          done_ = true;
          return;
        }
        batches_++;
        if (batches_ == 1) first_revision_ = batch->revision;
        for (const WatchEvent& e : batch->events) {
          events_.push_back(Describe(e));
        }
      }
    });
  }
  ~WatchCollector() {
    stream_->Cancel();
    thread_.join();
  }

  // Waits until n events arrived or the stream ended; false at kWait.
  bool WaitForEvents(size_t n) {
    absl::MutexLock l(&mu_);
    auto cond = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return events_.size() >= n || done_;
    };
    return mu_.AwaitWithTimeout(
               absl::Condition(+[](decltype(cond)* c) { return (*c)(); },
                               &cond),
               kWait) &&
           events_.size() >= n;
  }
  // Waits for the first batch (the stream is open); false at kWait.
  bool WaitOpen() {
    absl::MutexLock l(&mu_);
    auto cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return batches_ > 0 || done_;
    };
    return mu_.AwaitWithTimeout(
               absl::Condition(+[](decltype(cond)* c) { return (*c)(); },
                               &cond),
               kWait) &&
           batches_ > 0;
  }
  // Waits for the stream to end; returns its status (DEADLINE_EXCEEDED
  // from the test if it did not end within kWait).
  absl::Status WaitDone() {
    absl::MutexLock l(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(&done_), kWait)) {
      return absl::DeadlineExceededError("watch did not end");
    }
    return status_;
  }
  std::vector<std::string> events() {
    absl::MutexLock l(&mu_);
    return events_;
  }
  Revision first_revision() {
    absl::MutexLock l(&mu_);
    return first_revision_;
  }
  WatchStream* stream() { return stream_.get(); }

 private:
  std::unique_ptr<WatchStream> stream_;
  absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
  int batches_ ABSL_GUARDED_BY(mu_) = 0;
  Revision first_revision_ ABSL_GUARDED_BY(mu_) = -1;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

TEST_F(StrataClientTest, WatchDeliversChangesInRevisionOrder) {
  ASSERT_OK(client_->Put("cfg/a", "1"));  // 1
  ASSERT_OK(client_->Put("other", "x"));  // 2
  WatchOptions options;
  options.key = "cfg/";
  options.range_end = "cfg0";
  options.start_revision = 1;
  options.prev_kv = true;
  WatchCollector w(client_->Watch(options));
  ASSERT_OK(client_->Put("cfg/a", "2"));                     // 3
  ASSERT_OK(client_->Write({Mutation::Put("cfg/b", "1"),     // 4
                            Mutation::Delete("cfg/a"),
                            Mutation::Put("other", "y")}));
  ASSERT_TRUE(w.WaitForEvents(4));
  // One revision's changes come in the order of the Write.
  EXPECT_THAT(w.events(),
              ElementsAre("1:PUT cfg/a=1", "3:PUT cfg/a=2 prev=1@1",
                          "4:PUT cfg/b=1", "4:DELETE cfg/a prev=2@3"));
  EXPECT_EQ(w.first_revision(), 0);  // The opening batch: start - 1.
  EXPECT_EQ(w.stream()->resumes(), 0);
}

TEST_F(StrataClientTest, WatchFromNowStartsAfterTheCurrentRevision) {
  ASSERT_OK(client_->Put("k", "old"));  // 1
  WatchOptions options;
  options.key = "k";
  WatchCollector w(client_->Watch(options));
  ASSERT_TRUE(w.WaitOpen());
  EXPECT_EQ(w.first_revision(), 1);
  ASSERT_OK(client_->Put("k", "new"));  // 2
  ASSERT_OK(client_->Put("j", "not watched"));
  ASSERT_OK(client_->Delete("k"));      // 4
  ASSERT_TRUE(w.WaitForEvents(2));
  EXPECT_THAT(w.events(), ElementsAre("2:PUT k=new", "4:DELETE k"));
}

TEST_F(StrataClientTest, CancelFromAnotherThreadEndsABlockedNext) {
  WatchOptions options;
  options.key = "quiet";
  std::unique_ptr<WatchStream> stream = client_->Watch(options);
  ASSERT_OK(stream->Next().status());  // Open; now nothing will come.
  std::thread canceller([&] {
    // Cancel while Next blocks, or before it: either way Next returns.
    stream->Cancel();
  });
  const absl::Time start = absl::Now();
  absl::Status s = stream->Next().status();
  canceller.join();
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(absl::IsCancelled(stream->Next().status()));  // It stays over.
  EXPECT_TRUE(server_->WaitForIdle(kWait));  // The server let it go.
}

TEST_F(StrataClientTest, WatchFromACompactedRevisionIsOutOfRange) {
  for (int i = 0; i < 5; i++) ASSERT_OK(client_->Put("k", std::to_string(i)));
  ASSERT_OK(client_->Compact(4));
  WatchOptions options;
  options.key = "k";
  options.start_revision = 2;
  options.resume_timeout = absl::Seconds(30);  // Never resumes this.
  std::unique_ptr<WatchStream> stream = client_->Watch(options);
  absl::Status s = stream->Next().status();
  EXPECT_TRUE(absl::IsOutOfRange(s)) << s;
  EXPECT_EQ(stream->compact_revision(), 4);
  EXPECT_THAT(std::string(s.message()), HasSubstr("compacted revision 4"));
  // From compact_revision + 1 it works.
  options.start_revision = 5;
  WatchCollector w(client_->Watch(options));
  ASSERT_TRUE(w.WaitForEvents(1));
  EXPECT_THAT(w.events(), ElementsAre("5:PUT k=4"));
}

TEST_F(StrataClientTest, BadWatchRequestsAreInvalidArgument) {
  WatchOptions no_key;
  EXPECT_TRUE(
      absl::IsInvalidArgument(client_->Watch(no_key)->Next().status()));
  WatchOptions backwards;
  backwards.key = "b";
  backwards.range_end = "a";
  EXPECT_TRUE(
      absl::IsInvalidArgument(client_->Watch(backwards)->Next().status()));
}

TEST_F(StrataClientTest, WatchWithoutResumeEndsWhenTheServerStops) {
  WatchOptions options;
  options.key = "k";
  WatchCollector w(client_->Watch(options));
  ASSERT_TRUE(w.WaitOpen());
  server_->Shutdown();
  absl::Status s = w.WaitDone();
  EXPECT_TRUE(absl::IsUnavailable(s) || absl::IsCancelled(s)) << s;
  EXPECT_FALSE(absl::IsDeadlineExceeded(s));
}

// The server restarts twice while changes keep coming, some of them
// committed while no server runs: the watcher sees every revision exactly
// once, in order.
TEST_F(StrataClientTest, WatchResumesAcrossServerRestarts) {
  std::vector<std::pair<absl::Status, Revision>> resumes;
  absl::Mutex resumes_mu;
  WatchOptions options;
  options.key = "k/";
  options.range_end = "k0";
  options.start_revision = 1;
  options.resume_timeout = kWait;
  options.on_resume = [&](const absl::Status& cause, Revision from) {
    absl::MutexLock l(&resumes_mu);
    resumes.emplace_back(cause, from);
  };
  WatchCollector w(client_->Watch(options));
  ASSERT_OK(client_->Put("k/1", "a"));  // 1
  ASSERT_OK(client_->Put("k/2", "a"));  // 2
  ASSERT_TRUE(w.WaitForEvents(2));

  storage::WriteOptions sync;
  Restart([&](storage::DB* db) {
    ASSERT_OK(db->Put(sync, "k/3", "while down"));  // 3
    ASSERT_OK(db->Put(sync, "x", "not watched"));   // 4
  });
  {
    Client writer(server_->address());  // Another client, after the restart.
    ASSERT_OK(writer.Put("k/5", "a"));  // 5
  }
  ASSERT_TRUE(w.WaitForEvents(4)) << ::testing::PrintToString(w.events());

  restarted_->Shutdown();
  restarted_.reset();
  ASSERT_OK(server_->db()->Delete(sync, "k/1"));  // 6
  server::ServerOptions again = strata::testing::TestServerOptions();
  again.listen = server_->address();
  restarted_ = std::make_unique<server::KvServer>(again, server_->db());
  ASSERT_OK(restarted_->Start());
  {
    Client writer(server_->address());
    ASSERT_OK(writer.Put("k/7", "a"));  // 7
  }
  ASSERT_TRUE(w.WaitForEvents(6)) << ::testing::PrintToString(w.events());
  EXPECT_THAT(w.events(),
              ElementsAre("1:PUT k/1=a", "2:PUT k/2=a", "3:PUT k/3=while down",
                          "5:PUT k/5=a", "6:DELETE k/1", "7:PUT k/7=a"));
  EXPECT_EQ(w.stream()->revision(), 7);
  absl::MutexLock l(&resumes_mu);
  ASSERT_EQ(resumes.size(), 2u);
  EXPECT_EQ(resumes[0].second, 3);
  EXPECT_EQ(resumes[1].second, 6);
  EXPECT_TRUE(absl::IsUnavailable(resumes[0].first) ||
              absl::IsCancelled(resumes[0].first))
      << resumes[0].first;
}

// Compaction while the watcher was away: the resumed stream cannot be
// served, and the caller is told so (not left blocked, not given a gap).
TEST_F(StrataClientTest, WatchResumeReportsCompactionDuringTheOutage) {
  WatchOptions options;
  options.key = "k";
  options.start_revision = 1;
  options.resume_timeout = kWait;
  WatchCollector w(client_->Watch(options));
  ASSERT_OK(client_->Put("k", "1"));  // 1
  ASSERT_TRUE(w.WaitForEvents(1));
  Restart([](storage::DB* db) {
    storage::WriteOptions sync;
    ASSERT_OK(db->Put(sync, "k", "2"));  // 2
    ASSERT_OK(db->Put(sync, "k", "3"));  // 3
    ASSERT_OK(db->CompactHistory(3));
  });
  absl::Status s = w.WaitDone();
  EXPECT_TRUE(absl::IsOutOfRange(s)) << s;
  EXPECT_EQ(w.stream()->compact_revision(), 3);
  EXPECT_THAT(w.events(), ElementsAre("1:PUT k=1"));
  EXPECT_EQ(w.stream()->revision(), 1);
}

TEST_F(StrataClientTest, WatchResumeGivesUpAfterItsTimeout) {
  WatchOptions options;
  options.key = "k";
  options.resume_timeout = absl::Milliseconds(300);
  WatchCollector w(client_->Watch(options));
  ASSERT_TRUE(w.WaitOpen());
  server_->Shutdown();  // For good.
  absl::Status s = w.WaitDone();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("gave up resuming"));
  EXPECT_GE(w.stream()->resumes(), 1);
}

TEST(StrataClientNoServerTest, UnreachableServerIsUnavailable) {
  strata::testing::PinGrpcLibrary();
  ClientOptions options;
  options.timeout = absl::Seconds(5);
  Client client(absl::StrFormat("127.0.0.1:%d", UnusedPort()), options);
  EXPECT_TRUE(absl::IsUnavailable(client.Put("k", "v").status()));
  EXPECT_TRUE(absl::IsUnavailable(client.Get("k").status()));
  EXPECT_TRUE(absl::IsUnavailable(client.Health().status()));
  EXPECT_TRUE(absl::IsUnavailable(client.Scan(
      "", "", 0, false, [](std::string_view, std::string_view) { return true; })));
  // A watch that never opened is not resumed, whatever resume_timeout.
  WatchOptions watch;
  watch.key = "k";
  watch.start_revision = 1;
  watch.resume_timeout = absl::Seconds(60);
  const absl::Time start = absl::Now();
  EXPECT_TRUE(absl::IsUnavailable(client.Watch(watch)->Next().status()));
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

// A cluster node that does not forward (strata-server --cluster_forward=
// false): every Put is FAILED_PRECONDITION, naming the primary in the
// strata-primary trailer and/or the message as configured.
class NotPrimaryKv final : public v1::KV::Service {
 public:
  NotPrimaryKv(std::string trailer, std::string message)
      : trailer_(std::move(trailer)), message_(std::move(message)) {}
  grpc::Status Put(grpc::ServerContext* ctx, const v1::PutRequest*,
                   v1::PutResponse*) override {
    if (!trailer_.empty()) ctx->AddTrailingMetadata("strata-primary", trailer_);
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, message_);
  }

 private:
  const std::string trailer_;
  const std::string message_;
};

// Serves `service` on 127.0.0.1:0; *address is where.
std::unique_ptr<grpc::Server> Serve(grpc::Service* service,
                                    std::string* address) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  *address = absl::StrFormat("127.0.0.1:%d", port);
  return server;
}

TEST_F(StrataClientTest, FollowsTheStrataPrimaryTrailer) {
  // The message names an address nothing listens on: only the trailer
  // leads to the real server.
  NotPrimaryKv replica(server_->address(),
                       absl::StrFormat("not the primary of range 0 (epoch 1); "
                                       "the primary is n1 at 127.0.0.1:%d",
                                       UnusedPort()));
  std::string address;
  std::unique_ptr<grpc::Server> fake = Serve(&replica, &address);
  ASSERT_NE(fake, nullptr);
  ClientOptions options;
  options.timeout = absl::Seconds(5);
  Client routed(address, options);
  ASSERT_OK(routed.Put("routed", "by-trailer"));
  absl::StatusOr<std::optional<std::string>> got = client_->Get("routed");
  ASSERT_OK(got);
  EXPECT_EQ(got->value_or(""), "by-trailer");
  fake->Shutdown();
}

TEST_F(StrataClientTest, FollowsThePrimaryInTheMessageWithoutTrailer) {
  NotPrimaryKv replica("", "not the primary of range 0 (epoch 1); the "
                           "primary is n1 at " + server_->address());
  std::string address;
  std::unique_ptr<grpc::Server> fake = Serve(&replica, &address);
  ASSERT_NE(fake, nullptr);
  ClientOptions options;
  options.timeout = absl::Seconds(5);
  Client routed(address, options);
  ASSERT_OK(routed.Put("routed", "by-message"));
  absl::StatusOr<std::optional<std::string>> got = client_->Get("routed");
  ASSERT_OK(got);
  EXPECT_EQ(got->value_or(""), "by-message");
  fake->Shutdown();
}

// A cluster node whose answer to Put the test sets: OK, FAILED_PRECONDITION
// naming a primary in the strata-primary trailer, or FAILED_PRECONDITION
// naming none (a fenced old primary). Counts the Puts it answered.
class ScriptedKv final : public v1::KV::Service {
 public:
  void AnswerOk() { Set("", false); }
  void NamePrimary(std::string address) { Set(std::move(address), false); }
  void Fence() { Set("", true); }
  int puts() {
    absl::MutexLock lock(&mu_);
    return puts_;
  }

  grpc::Status Put(grpc::ServerContext* ctx, const v1::PutRequest*,
                   v1::PutResponse*) override {
    absl::MutexLock lock(&mu_);
    ++puts_;
    if (!primary_.empty()) {
      ctx->AddTrailingMetadata("strata-primary", primary_);
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "not the primary of range 0 (epoch 1)");
    }
    if (fenced_) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "not the primary of range 0 any more");
    }
    return grpc::Status::OK;
  }

 private:
  void Set(std::string primary, bool fenced) {
    absl::MutexLock lock(&mu_);
    primary_ = std::move(primary);
    fenced_ = fenced;
  }

  absl::Mutex mu_;
  std::string primary_ ABSL_GUARDED_BY(mu_);
  bool fenced_ ABSL_GUARDED_BY(mu_) = false;
  int puts_ ABSL_GUARDED_BY(mu_) = 0;
};

// Issue 18: the followed primary dies (a failover moved the role); the
// call that finds it gone fails UNAVAILABLE and is not retried, and the
// next call goes back to the address the client was given.
TEST(StrataClientFollowTest, ForgetsAFollowedPrimaryThatIsGone) {
  strata::testing::PinGrpcLibrary();
  ScriptedKv replica, primary;
  std::string replica_address, primary_address;
  std::unique_ptr<grpc::Server> replica_server =
      Serve(&replica, &replica_address);
  std::unique_ptr<grpc::Server> primary_server =
      Serve(&primary, &primary_address);
  ASSERT_NE(replica_server, nullptr);
  ASSERT_NE(primary_server, nullptr);
  replica.NamePrimary(primary_address);
  ClientOptions options;
  options.timeout = absl::Seconds(5);
  Client client(replica_address, options);
  ASSERT_OK(client.Put("k", "1"));  // Followed to the primary.
  ASSERT_OK(client.Put("k", "2"));  // Straight to the primary.
  EXPECT_EQ(replica.puts(), 1);
  EXPECT_EQ(primary.puts(), 2);

  primary_server->Shutdown();
  primary_server->Wait();
  replica.AnswerOk();  // The failover made the replica the primary.
  EXPECT_TRUE(absl::IsUnavailable(client.Put("k", "3").status()));
  EXPECT_EQ(replica.puts(), 1);  // Not retried anywhere.
  ASSERT_OK(client.Put("k", "4"));
  EXPECT_EQ(replica.puts(), 2);
  replica_server->Shutdown();
}

// A followed primary that was fenced (FAILED_PRECONDITION naming no
// primary) is forgotten too; the next call goes back to the given address,
// which names the new primary, and the client follows that one.
TEST(StrataClientFollowTest, ForgetsAFencedPrimaryAndFollowsTheNewOne) {
  strata::testing::PinGrpcLibrary();
  ScriptedKv replica, old_primary, new_primary;
  std::string replica_address, old_address, new_address;
  std::unique_ptr<grpc::Server> replica_server =
      Serve(&replica, &replica_address);
  std::unique_ptr<grpc::Server> old_server = Serve(&old_primary, &old_address);
  std::unique_ptr<grpc::Server> new_server = Serve(&new_primary, &new_address);
  ASSERT_NE(replica_server, nullptr);
  ASSERT_NE(old_server, nullptr);
  ASSERT_NE(new_server, nullptr);
  replica.NamePrimary(old_address);
  ClientOptions options;
  options.timeout = absl::Seconds(5);
  Client client(replica_address, options);
  ASSERT_OK(client.Put("k", "1"));
  EXPECT_EQ(old_primary.puts(), 1);

  old_primary.Fence();
  replica.NamePrimary(new_address);
  absl::Status fenced = client.Put("k", "2").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(fenced)) << fenced;
  EXPECT_EQ(new_primary.puts(), 0);  // Not retried.
  ASSERT_OK(client.Put("k", "3"));   // Given address -> new primary.
  ASSERT_OK(client.Put("k", "4"));   // Straight to the new primary.
  EXPECT_EQ(old_primary.puts(), 2);
  EXPECT_EQ(replica.puts(), 2);
  EXPECT_EQ(new_primary.puts(), 2);
  replica_server->Shutdown();
  old_server->Shutdown();
  new_server->Shutdown();
}

// A cluster node's strata.v1.Cluster service: GetRangeMap answers the
// ranges the test sets (or UNIMPLEMENTED, as a standalone server's missing
// service does) and counts the calls.
class RangeMapService final : public v1::Cluster::Service {
 public:
  // One range per entry: {start_key, end_key, primary_address}.
  void SetRanges(std::vector<std::vector<std::string>> ranges) {
    absl::MutexLock lock(&mu_);
    ranges_ = std::move(ranges);
  }
  void AnswerUnimplemented() {
    absl::MutexLock lock(&mu_);
    unimplemented_ = true;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

  grpc::Status GetRangeMap(grpc::ServerContext*,
                           const v1::GetRangeMapRequest*,
                           v1::GetRangeMapResponse* response) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (unimplemented_) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
    }
    response->set_etcd_revision(9);
    for (size_t i = 0; i < ranges_.size(); ++i) {
      v1::Range* r = response->add_ranges();
      r->set_id(static_cast<uint32_t>(i));
      r->set_start_key(ranges_[i][0]);
      r->set_end_key(ranges_[i][1]);
      r->set_epoch(2);
      r->set_primary("n" + std::to_string(i));
      r->set_primary_address(ranges_[i][2]);
      r->add_replicas("n" + std::to_string(i));
    }
    return grpc::Status::OK;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::vector<std::string>> ranges_ ABSL_GUARDED_BY(mu_);
  bool unimplemented_ ABSL_GUARDED_BY(mu_) = false;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// A fake node serving KV and Cluster on 127.0.0.1:0.
struct FakeNode {
  ScriptedKv kv;
  RangeMapService cluster;
  std::string address;
  std::unique_ptr<grpc::Server> server;

  FakeNode() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0",
                             grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&kv);
    builder.RegisterService(&cluster);
    server = builder.BuildAndStart();
    address = absl::StrFormat("127.0.0.1:%d", port);
  }
  ~FakeNode() { Stop(); }
  void Stop() {
    if (server == nullptr) return;
    server->Shutdown();
    server->Wait();
    server = nullptr;
  }
};

ClientOptions FiveSeconds() {
  ClientOptions options;
  options.timeout = absl::Seconds(5);
  return options;
}

// Issue 18: a client given a replica's address asks it for the range map
// before its first call and sends that call (and the later ones) straight
// to the primary of the key's range: the replica sees no Put.
TEST(StrataClientRangeMapTest, FirstCallGoesToTheKeysPrimary) {
  strata::testing::PinGrpcLibrary();
  FakeNode replica, low, high;
  ASSERT_NE(replica.server, nullptr);
  ASSERT_NE(low.server, nullptr);
  ASSERT_NE(high.server, nullptr);
  replica.cluster.SetRanges(
      {{"", "m", low.address}, {"m", "", high.address}});
  Client client(replica.address, FiveSeconds());
  ASSERT_OK(client.Put("zebra", "1"));
  ASSERT_OK(client.Put("apple", "2"));  // Still the followed primary.
  EXPECT_EQ(replica.kv.puts(), 0);
  EXPECT_EQ(high.kv.puts(), 2);
  EXPECT_EQ(low.kv.puts(), 0);
  EXPECT_EQ(replica.cluster.calls(), 1);
}

// A node whose map names itself as the primary keeps the calls.
TEST(StrataClientRangeMapTest, MapNamingTheTargetKeepsTheCalls) {
  strata::testing::PinGrpcLibrary();
  FakeNode primary;
  ASSERT_NE(primary.server, nullptr);
  primary.cluster.SetRanges({{"", "", primary.address}});
  Client client(primary.address, FiveSeconds());
  ASSERT_OK(client.Put("k", "1"));
  ASSERT_OK(client.Put("k", "2"));
  EXPECT_EQ(primary.kv.puts(), 2);
  EXPECT_EQ(primary.cluster.calls(), 1);
}

// A standalone server (no Cluster service): one GetRangeMap answered
// UNIMPLEMENTED on first use, then plain calls, never asked again.
TEST(StrataClientRangeMapTest, StandaloneServerIsAskedOnce) {
  strata::testing::PinGrpcLibrary();
  FakeNode node;
  ASSERT_NE(node.server, nullptr);
  node.cluster.AnswerUnimplemented();
  Client client(node.address, FiveSeconds());
  ASSERT_OK(client.Put("k", "1"));
  ASSERT_OK(client.Put("k", "2"));
  EXPECT_EQ(node.kv.puts(), 2);
  EXPECT_EQ(node.cluster.calls(), 1);
}

// A primary followed by the map that dies is forgotten (that call fails
// UNAVAILABLE, not retried); the next call asks the map again and follows
// the new primary it names.
TEST(StrataClientRangeMapTest, AsksTheMapAgainAfterForgettingThePrimary) {
  strata::testing::PinGrpcLibrary();
  FakeNode replica, old_primary, new_primary;
  ASSERT_NE(replica.server, nullptr);
  ASSERT_NE(old_primary.server, nullptr);
  ASSERT_NE(new_primary.server, nullptr);
  replica.cluster.SetRanges({{"", "", old_primary.address}});
  Client client(replica.address, FiveSeconds());
  ASSERT_OK(client.Put("k", "1"));
  EXPECT_EQ(old_primary.kv.puts(), 1);

  old_primary.Stop();
  replica.cluster.SetRanges({{"", "", new_primary.address}});
  EXPECT_TRUE(absl::IsUnavailable(client.Put("k", "2").status()));
  EXPECT_EQ(replica.cluster.calls(), 1);  // Not before the forget.
  ASSERT_OK(client.Put("k", "3"));
  ASSERT_OK(client.Put("k", "4"));
  EXPECT_EQ(replica.cluster.calls(), 2);
  EXPECT_EQ(new_primary.kv.puts(), 2);
  EXPECT_EQ(replica.kv.puts(), 0);
}

// A namespace client cannot compute its stored keys: a map of several
// ranges is not used (the call goes to the given address), one of a
// single range is.
TEST(StrataClientRangeMapTest, NamespaceClientUsesOnlyASingleRangeMap) {
  strata::testing::PinGrpcLibrary();
  FakeNode replica, primary;
  ASSERT_NE(replica.server, nullptr);
  ASSERT_NE(primary.server, nullptr);
  ClientOptions options = FiveSeconds();
  options.ns = "tenant";
  replica.cluster.SetRanges(
      {{"", "m", primary.address}, {"m", "", primary.address}});
  Client split(replica.address, options);
  ASSERT_OK(split.Put("k", "1"));
  EXPECT_EQ(replica.kv.puts(), 1);

  replica.cluster.SetRanges({{"", "", primary.address}});
  Client single(replica.address, options);
  ASSERT_OK(single.Put("k", "1"));
  EXPECT_EQ(primary.kv.puts(), 1);
  EXPECT_EQ(replica.kv.puts(), 1);
}

TEST(FromGrpcStatusTest, SameCodeSameMessage) {
  EXPECT_OK(FromGrpcStatus(grpc::Status::OK));
  absl::Status s =
      FromGrpcStatus(grpc::Status(grpc::StatusCode::DATA_LOSS, "bad block"));
  EXPECT_TRUE(absl::IsDataLoss(s));
  EXPECT_EQ(s.message(), "bad block");
  EXPECT_TRUE(absl::IsResourceExhausted(FromGrpcStatus(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "x"))));
}

}  // namespace
}  // namespace strata
