// Typed values over gRPC (docs/values.md): Put with a type, the type in
// Get, Scan, BatchGet and Watch; Increment, JsonGet and JsonUpdate with
// every error path; expiry through Increment's ttl_ms (a manual clock);
// types across flush, compaction and a restart of the real binary; and the
// typed operations run inside one commit function, as Txn runs them.

#include <signal.h>

#include <chrono>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "server/keyspace.h"
#include "server/typed_ops.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/server/process_util.h"
#include "tests/support/manual_clock_env.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::InProcessServer;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(kWait));
}

// RPC helpers over a stub.
class TypedClient {
 public:
  explicit TypedClient(const std::string& address)
      : stub_(v1::KV::NewStub(grpc::CreateChannel(
            address, grpc::InsecureChannelCredentials()))) {}

  grpc::Status Put(const std::string& k, const std::string& v,
                   v1::ValueType type, int64_t* revision = nullptr) {
    v1::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    req.set_type(type);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Put(&ctx, req, &resp);
    if (revision != nullptr) *revision = resp.header().revision();
    return s;
  }
  v1::GetResponse Get(const std::string& k) {
    v1::GetRequest req;
    req.set_key(k);
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Get(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }
  int64_t Revision() { return Get("any").header().revision(); }
  grpc::Status Increment(const v1::IncrementRequest& req,
                         v1::IncrementResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub_->Increment(&ctx, req, resp);
  }
  grpc::Status Incr(const std::string& k, int64_t delta, int64_t* value,
                    int64_t ttl_ms = 0) {
    v1::IncrementRequest req;
    req.set_key(k);
    req.set_delta(delta);
    req.set_ttl_ms(ttl_ms);
    v1::IncrementResponse resp;
    grpc::Status s = Increment(req, &resp);
    if (value != nullptr) *value = resp.value();
    return s;
  }
  grpc::Status JsonGet(const std::string& k, const std::string& pointer,
                       std::string* json) {
    v1::JsonGetRequest req;
    req.set_key(k);
    req.set_pointer(pointer);
    v1::JsonGetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->JsonGet(&ctx, req, &resp);
    if (json != nullptr) *json = resp.json();
    return s;
  }
  grpc::Status JsonUpdate(const v1::JsonUpdateRequest& req,
                          v1::JsonUpdateResponse* resp) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub_->JsonUpdate(&ctx, req, resp);
  }
  grpc::Status Merge(const std::string& k, const std::string& patch,
                     std::string* json = nullptr) {
    v1::JsonUpdateRequest req;
    req.set_key(k);
    req.set_merge_patch(patch);
    v1::JsonUpdateResponse resp;
    grpc::Status s = JsonUpdate(req, &resp);
    if (json != nullptr) *json = resp.json();
    return s;
  }
  grpc::Status Patch(const std::string& k, const std::string& patch,
                     std::string* json = nullptr) {
    v1::JsonUpdateRequest req;
    req.set_key(k);
    req.set_json_patch(patch);
    v1::JsonUpdateResponse resp;
    grpc::Status s = JsonUpdate(req, &resp);
    if (json != nullptr) *json = resp.json();
    return s;
  }
  v1::KV::Stub* stub() { return stub_.get(); }

 private:
  std::unique_ptr<v1::KV::Stub> stub_;
};

class TypedServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(storage::Options engine = storage::Options(),
             ServerOptions options = strata::testing::TestServerOptions()) {
    client_.reset();
    server_.reset();
    engine.keep_history = true;
    engine.history_retention_seconds = 0;
    auto s = InProcessServer::Start(options, nullptr, nullptr, engine);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    client_ = std::make_unique<TypedClient>(server_->address());
  }

  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<TypedClient> client_;
};

#define EXPECT_CODE(status, code, substring)                      \
  do {                                                            \
    const grpc::Status& s_ = (status);                            \
    EXPECT_EQ(s_.error_code(), grpc::StatusCode::code)            \
        << s_.error_message();                                    \
    EXPECT_THAT(s_.error_message(), HasSubstr(substring));        \
  } while (0)

TEST_F(TypedServerTest, PutChecksTheTypeAndGetReturnsIt) {
  TypedClient& c = *client_;
  ASSERT_TRUE(c.Put("b", "\xff raw", v1::BYTES).ok());
  ASSERT_TRUE(c.Put("t", "gr\xc3\xbc\xc3\x9f" "e", v1::TEXT).ok());
  ASSERT_TRUE(c.Put("i", "-9223372036854775808", v1::INT64).ok());
  ASSERT_TRUE(c.Put("j", R"({ "b": [1, 2.0], "a": null })", v1::JSON).ok());
  ASSERT_TRUE(c.Put("n", "null", v1::JSON).ok());
  const struct {
    const char* key;
    const char* value;
    v1::ValueType type;
  } want[] = {{"b", "\xff raw", v1::BYTES},
              {"t", "gr\xc3\xbc\xc3\x9f" "e", v1::TEXT},
              {"i", "-9223372036854775808", v1::INT64},
              {"j", R"({"a":null,"b":[1,2.0]})", v1::JSON},  // Normalized.
              {"n", "null", v1::JSON}};
  for (const auto& w : want) {
    v1::GetResponse g = c.Get(w.key);
    EXPECT_TRUE(g.found()) << w.key;
    EXPECT_EQ(g.value(), w.value) << w.key;
    EXPECT_EQ(g.type(), w.type) << w.key;
  }
}

TEST_F(TypedServerTest, InvalidTypedValueIsInvalidArgumentAndWritesNothing) {
  TypedClient& c = *client_;
  ASSERT_TRUE(c.Put("k", "1", v1::INT64).ok());
  const int64_t before = c.Revision();
  EXPECT_CODE(c.Put("k", "9223372036854775808", v1::INT64), INVALID_ARGUMENT,
              "value is not an INT64");
  EXPECT_CODE(c.Put("k", "bad \xc0\xaf", v1::TEXT), INVALID_ARGUMENT,
              "value is not valid UTF-8: bad byte sequence at offset 4");
  EXPECT_CODE(c.Put("k", "{\"a\":", v1::JSON), INVALID_ARGUMENT,
              "value is not valid JSON");
  EXPECT_CODE(c.Put("k", std::string(200, '[') + std::string(200, ']'),
                    v1::JSON),
              INVALID_ARGUMENT, "nests more than 128 levels");
  EXPECT_CODE(c.Put("k", "1", static_cast<v1::ValueType>(9)),
              INVALID_ARGUMENT, "unknown value type 9");
  // In a Write, nothing of the batch is written and the mutation is named.
  v1::WriteRequest req;
  auto* p = req.add_mutations()->mutable_put();
  p->set_key("other");
  p->set_value("x");
  p = req.add_mutations()->mutable_put();
  p->set_key("k");
  p->set_value("[1,]");
  p->set_type(v1::JSON);
  v1::WriteResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  EXPECT_CODE(c.stub()->Write(&ctx, req, &resp), INVALID_ARGUMENT,
              "mutation 1: value is not valid JSON");
  EXPECT_EQ(c.Revision(), before);
  EXPECT_FALSE(c.Get("other").found());
  EXPECT_EQ(c.Get("k").value(), "1");
}

TEST_F(TypedServerTest, NormalizedJsonAboveTheValueLimitIsRefused) {
  // 1e2 is stored as 100.0: the normalized text is what must fit.
  ServerOptions options = strata::testing::TestServerOptions();
  options.limits.max_value_bytes = 64;
  ASSERT_NO_FATAL_FAILURE(Start(storage::Options(), options));
  TypedClient& c = *client_;
  std::string text = "[";
  while (text.size() < 60) text += "1e2,";
  text += "1]";
  ASSERT_LE(text.size(), 64u);
  EXPECT_CODE(c.Put("k", text, v1::JSON), INVALID_ARGUMENT,
              "normalized JSON value is");
}

TEST_F(TypedServerTest, ScanBatchGetAndWatchCarryTheType) {
  TypedClient& c = *client_;
  int64_t first = 0;
  ASSERT_TRUE(c.Put("a", "x", v1::TEXT, &first).ok());
  ASSERT_TRUE(c.Put("b", "[1]", v1::JSON).ok());
  ASSERT_TRUE(c.Put("c", "y", v1::BYTES).ok());
  int64_t v = 0;
  ASSERT_TRUE(c.Incr("d", 3, &v).ok());
  ASSERT_TRUE(c.Merge("b", R"({"z":1})").ok());  // [1] -> {"z":1}
  ASSERT_TRUE(c.Put("a", "7", v1::INT64).ok());

  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto reader = c.stub()->Scan(&ctx, v1::ScanRequest());
    v1::ScanResponse m;
    std::string got;
    while (reader->Read(&m)) {
      for (const auto& kv : m.pairs()) {
        got += kv.key() + ":" + v1::ValueType_Name(kv.type()) + " ";
      }
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(got, "a:INT64 b:JSON c:BYTES d:INT64 ");
  }
  {
    v1::BatchGetRequest req;
    for (const char* k : {"d", "b", "missing"}) req.add_keys(k);
    v1::BatchGetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(c.stub()->BatchGet(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.results(0).type(), v1::INT64);
    EXPECT_EQ(resp.results(1).type(), v1::JSON);
    EXPECT_EQ(resp.results(2).type(), v1::BYTES);
  }
  // Watch from the first write: every event carries its type, and prev_kv
  // the previous one's.
  v1::WatchRequest req;
  req.set_range_end(std::string(1, '\0'));
  req.set_start_revision(first);
  req.set_prev_kv(true);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = c.stub()->Watch(&ctx, req);
  std::vector<std::string> events;
  v1::WatchResponse m;
  while (events.size() < 6 && reader->Read(&m)) {
    for (const v1::Event& e : m.events()) {
      std::string s = e.kv().key() + "=" + e.kv().value() + ":" +
                      v1::ValueType_Name(e.kv().type());
      if (e.has_prev_kv()) {
        s += " prev " + v1::ValueType_Name(e.prev_kv().type());
      }
      events.push_back(s);
    }
  }
  ctx.TryCancel();
  reader->Finish();
  EXPECT_EQ(events, (std::vector<std::string>{
                        "a=x:TEXT", "b=[1]:JSON", "c=y:BYTES", "d=3:INT64",
                        "b={\"z\":1}:JSON prev JSON", "a=7:INT64 prev TEXT"}));
}

TEST_F(TypedServerTest, IncrementCountsAndReportsItsRevision) {
  TypedClient& c = *client_;
  int64_t v = 0;
  ASSERT_TRUE(c.Incr("n", 1, &v).ok());
  EXPECT_EQ(v, 1);
  v1::IncrementRequest req;
  req.set_key("n");
  req.set_delta(-11);
  req.set_must_exist(true);
  v1::IncrementResponse resp;
  ASSERT_TRUE(c.Increment(req, &resp).ok());
  EXPECT_EQ(resp.value(), -10);
  EXPECT_EQ(resp.header().revision(), c.Revision());
  v1::GetResponse g = c.Get("n");
  EXPECT_EQ(g.value(), "-10");
  EXPECT_EQ(g.type(), v1::INT64);
  EXPECT_EQ(g.version(), 2);
  EXPECT_EQ(g.mod_revision(), resp.header().revision());
  // A Put of INT64 text is a counter too.
  ASSERT_TRUE(c.Put("p", "41", v1::INT64).ok());
  ASSERT_TRUE(c.Incr("p", 1, &v).ok());
  EXPECT_EQ(v, 42);
}

TEST_F(TypedServerTest, IncrementErrorsWriteNothing) {
  TypedClient& c = *client_;
  ASSERT_TRUE(c.Put("text", "5", v1::TEXT).ok());
  ASSERT_TRUE(c.Put("bytes", "5", v1::BYTES).ok());
  ASSERT_TRUE(
      c.Put("max", "9223372036854775807", v1::INT64).ok());
  const int64_t before = c.Revision();
  int64_t v = 0;
  EXPECT_CODE(c.Incr("text", 1, &v), FAILED_PRECONDITION,
              "Increment: the key holds a TEXT value, not INT64");
  EXPECT_CODE(c.Incr("bytes", 1, &v), FAILED_PRECONDITION,
              "holds a BYTES value");
  EXPECT_CODE(c.Incr("max", 1, &v), OUT_OF_RANGE, "overflows int64");
  v1::IncrementRequest req;
  req.set_key("missing");
  req.set_delta(1);
  req.set_must_exist(true);
  v1::IncrementResponse resp;
  EXPECT_CODE(c.Increment(req, &resp), NOT_FOUND, "key not found");
  req.set_must_exist(false);
  req.set_namespace_("tenant-a");
  EXPECT_CODE(c.Increment(req, &resp), NOT_FOUND,
              "namespace \"tenant-a\" does not exist");
  req.set_namespace_("");
  req.set_ttl_ms(-5);
  EXPECT_CODE(c.Increment(req, &resp), INVALID_ARGUMENT, "ttl_ms is -5");
  req.set_ttl_ms(0);
  req.set_key("");
  EXPECT_CODE(c.Increment(req, &resp), INVALID_ARGUMENT, "key is empty");
  EXPECT_EQ(c.Revision(), before);
  EXPECT_EQ(c.Get("max").value(), "9223372036854775807");
  EXPECT_FALSE(c.Get("missing").found());
}

TEST_F(TypedServerTest, IncrementTtlExpiresTheCounter) {
  strata::testing::ManualClockEnv clock;
  storage::Options engine;
  engine.env = &clock;
  ASSERT_NO_FATAL_FAILURE(Start(engine));
  TypedClient& c = *client_;
  int64_t v = 0;
  ASSERT_TRUE(c.Incr("hits", 1, &v, /*ttl_ms=*/1000).ok());
  clock.Advance(600);
  // No ttl_ms: the counter keeps the deadline it had.
  ASSERT_TRUE(c.Incr("hits", 1, &v).ok());
  EXPECT_EQ(v, 2);
  clock.Advance(399);
  EXPECT_TRUE(c.Get("hits").found());
  clock.Advance(1);  // 1000 ms after the first increment.
  EXPECT_FALSE(c.Get("hits").found());
  // An expired counter counts from 0 again, with a new deadline.
  ASSERT_TRUE(c.Incr("hits", 5, &v, 50).ok());
  EXPECT_EQ(v, 5);
  clock.Advance(49);
  EXPECT_TRUE(c.Get("hits").found());
  clock.Advance(1);
  EXPECT_FALSE(c.Get("hits").found());
  server_.reset();  // Before the clock goes.
}

TEST_F(TypedServerTest, JsonGetResolvesPointersAndTellsMissesApart) {
  TypedClient& c = *client_;
  ASSERT_TRUE(c.Put("doc", R"({"a":{"b":[10,20]},"x/y":1,"m~n":2})",
                    v1::JSON).ok());
  std::string json;
  ASSERT_TRUE(c.JsonGet("doc", "", &json).ok());
  EXPECT_EQ(json, R"({"a":{"b":[10,20]},"m~n":2,"x/y":1})");
  ASSERT_TRUE(c.JsonGet("doc", "/a/b/1", &json).ok());
  EXPECT_EQ(json, "20");
  ASSERT_TRUE(c.JsonGet("doc", "/x~1y", &json).ok());
  EXPECT_EQ(json, "1");
  ASSERT_TRUE(c.JsonGet("doc", "/m~0n", &json).ok());
  EXPECT_EQ(json, "2");
  EXPECT_CODE(c.JsonGet("nope", "/a", &json), NOT_FOUND, "key not found");
  EXPECT_CODE(c.JsonGet("doc", "/a/c", &json), NOT_FOUND,
              "pointer \"/a/c\" does not resolve");
  EXPECT_CODE(c.JsonGet("doc", "a", &json), INVALID_ARGUMENT,
              "is not a JSON Pointer");
  ASSERT_TRUE(c.Put("t", "{}", v1::TEXT).ok());
  EXPECT_CODE(c.JsonGet("t", "", &json), FAILED_PRECONDITION,
              "JsonGet: the key holds a TEXT value, not JSON");
}

TEST_F(TypedServerTest, JsonGetOfADocumentOnDiskAndOfALargeOne) {
  // A tiny block cache: after a flush the document is read on the pool.
  storage::Options engine;
  engine.block_cache_bytes = 0;
  ASSERT_NO_FATAL_FAILURE(Start(engine));
  TypedClient& c = *client_;
  std::string big = R"({"list":[)";
  for (int i = 0; i < 20000; i++) big += absl::StrFormat("%d,", i);
  big += R"(0],"name":"big"})";
  ASSERT_GT(big.size(), 64u << 10);
  ASSERT_TRUE(c.Put("big", big, v1::JSON).ok());
  ASSERT_TRUE(c.Put("small", R"({"k":[1,2,3]})", v1::JSON).ok());
  std::string json;
  ASSERT_TRUE(c.JsonGet("big", "/list/19999", &json).ok());  // Memtable.
  EXPECT_EQ(json, "19999");
  ASSERT_OK(server_->db()->Flush());
  ASSERT_TRUE(c.JsonGet("big", "/name", &json).ok());
  EXPECT_EQ(json, "\"big\"");
  ASSERT_TRUE(c.JsonGet("small", "/k/2", &json).ok());
  EXPECT_EQ(json, "3");
}

TEST_F(TypedServerTest, JsonUpdateMergesAndPatchesAtOneRevision) {
  TypedClient& c = *client_;
  ASSERT_TRUE(c.Put("doc", R"({"a":1,"tags":["x"]})", v1::JSON).ok());
  std::string json;
  ASSERT_TRUE(c.Merge("doc", R"({"a":null,"b":{"c":2}})", &json).ok());
  EXPECT_EQ(json, R"({"b":{"c":2},"tags":["x"]})");
  v1::JsonUpdateRequest req;
  req.set_key("doc");
  req.set_json_patch(R"([{"op":"add","path":"/tags/-","value":"y"},
                         {"op":"copy","from":"/b/c","path":"/d"},
                         {"op":"test","path":"/d","value":2}])");
  v1::JsonUpdateResponse resp;
  ASSERT_TRUE(c.JsonUpdate(req, &resp).ok());
  EXPECT_EQ(resp.json(), R"({"b":{"c":2},"d":2,"tags":["x","y"]})");
  v1::GetResponse g = c.Get("doc");
  EXPECT_EQ(g.value(), resp.json());
  EXPECT_EQ(g.type(), v1::JSON);
  EXPECT_EQ(g.version(), 3);
  EXPECT_EQ(g.mod_revision(), resp.header().revision());
}

TEST_F(TypedServerTest, JsonUpdateErrorsWriteNothing) {
  TypedClient& c = *client_;
  ASSERT_TRUE(c.Put("doc", R"({"a":1})", v1::JSON).ok());
  ASSERT_TRUE(c.Put("bytes", R"({"a":1})", v1::BYTES).ok());
  const int64_t before = c.Revision();
  // A failed test: the replace before it is not kept.
  EXPECT_CODE(c.Patch("doc", R"([{"op":"replace","path":"/a","value":2},
                                {"op":"test","path":"/a","value":3}])"),
              FAILED_PRECONDITION, "operation 1 (test /a) does not apply");
  EXPECT_CODE(c.Patch("doc", R"([{"op":"remove","path":"/zz"}])"),
              FAILED_PRECONDITION, "operation 0 (remove /zz)");
  EXPECT_CODE(c.Patch("doc", R"({"op":"remove"})"), INVALID_ARGUMENT,
              "not an array of operations");
  EXPECT_CODE(c.Patch("doc", R"([{"op":"remove","path":"/a"}] junk)"),
              INVALID_ARGUMENT, "json_patch is not valid JSON");
  EXPECT_CODE(c.Merge("doc", "{"), INVALID_ARGUMENT,
              "merge_patch is not valid JSON");
  EXPECT_CODE(c.Merge("missing", "{}"), NOT_FOUND, "key not found");
  EXPECT_CODE(c.Merge("bytes", "{}"), FAILED_PRECONDITION,
              "JsonUpdate: the key holds a BYTES value, not JSON");
  v1::JsonUpdateRequest none;
  none.set_key("doc");
  v1::JsonUpdateResponse resp;
  EXPECT_CODE(c.JsonUpdate(none, &resp), INVALID_ARGUMENT, "has no patch");
  EXPECT_EQ(c.Revision(), before);
  EXPECT_EQ(c.Get("doc").value(), R"({"a":1})");
}

TEST_F(TypedServerTest, TypesSurviveFlushAndCompaction) {
  // No watch cache: a watch from the past reads the change log on disk.
  ServerOptions options = strata::testing::TestServerOptions();
  options.watch.cache_bytes = 0;
  ASSERT_NO_FATAL_FAILURE(Start(storage::Options(), options));
  TypedClient& c = *client_;
  ASSERT_TRUE(c.Put("j", "[1,2]", v1::JSON).ok());
  ASSERT_TRUE(c.Put("t", "text", v1::TEXT).ok());
  int64_t v = 0;
  ASSERT_TRUE(c.Incr("i", 7, &v).ok());
  ASSERT_OK(server_->db()->Flush());
  ASSERT_TRUE(c.Incr("i", 1, &v).ok());  // Reads the flushed value.
  EXPECT_EQ(v, 8);
  ASSERT_TRUE(c.Merge("j", "{}").ok());
  ASSERT_OK(server_->db()->Flush());
  ASSERT_OK(server_->db()->CompactRange(std::nullopt, std::nullopt));
  EXPECT_EQ(c.Get("j").type(), v1::JSON);
  EXPECT_EQ(c.Get("j").value(), "{}");
  EXPECT_EQ(c.Get("t").type(), v1::TEXT);
  EXPECT_EQ(c.Get("i").type(), v1::INT64);
  EXPECT_EQ(c.Get("i").value(), "8");
  // The change log (read back from the WAL by a watch from revision 1)
  // has the types too, flushed or not.
  v1::WatchRequest req;
  req.set_range_end(std::string(1, '\0'));
  req.set_start_revision(1);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = c.stub()->Watch(&ctx, req);
  std::string types;
  v1::WatchResponse m;
  while (types.size() < 5 && reader->Read(&m)) {
    for (const v1::Event& e : m.events()) {
      types += v1::ValueType_Name(e.kv().type()).substr(0, 1);
    }
  }
  ctx.TryCancel();
  reader->Finish();
  EXPECT_EQ(types, "JTIIJ");
}

// Txn's use of typed_ops.h: two increments and a document update in one
// commit function commit at one revision, or, when one fails, not at all.
TEST(TypedOpsInOneBatchTest, IncrementsAndAJsonUpdateCommitTogether) {
  strata::testing::TempDir dir;
  storage::Options options;
  options.create_if_missing = true;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<storage::DB> db,
                       storage::DB::Open(options, dir.path() + "/db"));
  const KeyspaceView ns;
  storage::WriteBatch setup;
  storage::PutAttributes json;
  json.value_type = v1::JSON;
  setup.Put(ns.Encode("doc"), R"({"n":0})", json);
  ASSERT_OK(db->Write(storage::WriteOptions(), &setup).status());

  auto run = [&](int64_t delta_b) -> absl::StatusOr<storage::Revision> {
    v1::IncrementRequest a, b;
    a.set_key("a");
    a.set_delta(1);
    b.set_key("b");
    b.set_delta(delta_b);
    v1::JsonUpdateRequest u;
    u.set_key("doc");
    u.set_json_patch(R"([{"op":"replace","path":"/n","value":1}])");
    absl::StatusOr<JsonUpdatePatch> patch = PrepareJsonUpdate(u, Limits());
    if (!patch.ok()) return patch.status();
    storage::WriteBatch batch;
    batch.SetCommitFunction([&](storage::CommitView* view,
                                storage::WriteBatch* out) -> absl::Status {
      for (const v1::IncrementRequest* r : {&a, &b}) {
        const std::string key = ns.Encode(r->key());
        absl::StatusOr<IncrementResult> inc = IncrementAt(view, key, *r);
        if (!inc.ok()) return inc.status();
        out->Put(key, inc->put.value, inc->put.attributes);
      }
      const std::string key = ns.Encode("doc");
      absl::StatusOr<TypedPut> doc = JsonUpdateAt(view, key, *patch, Limits());
      if (!doc.ok()) return doc.status();
      out->Put(key, doc->value, doc->attributes);
      return absl::OkStatus();
    });
    return db->Write(storage::WriteOptions(), &batch);
  };
  ASSERT_OK_AND_ASSIGN(storage::Revision r, run(5));
  for (const char* k : {"a", "b", "doc"}) {
    ASSERT_OK_AND_ASSIGN(storage::GetResult g,
                         db->GetWithMetadata(storage::ReadOptions(), k));
    EXPECT_EQ(g.metadata.mod_revision, r) << k;
  }
  EXPECT_EQ(*db->Get(storage::ReadOptions(), "b"), "5");
  EXPECT_EQ(*db->Get(storage::ReadOptions(), "doc"), R"({"n":1})");
  // b overflows: a's increment and the document update are not written.
  const absl::Status overflow =
      run(std::numeric_limits<int64_t>::max()).status();
  EXPECT_TRUE(absl::IsOutOfRange(overflow)) << overflow;
  EXPECT_EQ(db->CurrentRevision(), r);
  EXPECT_EQ(*db->Get(storage::ReadOptions(), "a"), "1");
}

// The real binary, SIGKILLed: types and counters come back from the WAL.
TEST(TypedProcessTest, TypesAndCountersSurviveKill9) {
  ASSERT_FALSE(strata::testing::BinaryPath("server/strata-server").empty())
      << "STRATA_BINARY_DIR is not set (run through ctest)";
  strata::testing::TempDir dir;
  const std::string data = dir.path() + "/data";
  {
    auto server = strata::testing::ServerProcess::Start(data);
    ASSERT_TRUE(server.ok()) << server.status();
    TypedClient c((*server)->address());
    ASSERT_TRUE(c.Put("j", R"({"a" : 1})", v1::JSON).ok());
    int64_t v = 0;
    for (int i = 0; i < 10; i++) ASSERT_TRUE(c.Incr("n", 2, &v).ok());
    (*server)->Signal(SIGKILL);
    ASSERT_TRUE((*server)->Wait(absl::Seconds(10)).ok());
  }
  auto server = strata::testing::ServerProcess::Start(data);
  ASSERT_TRUE(server.ok()) << server.status();
  TypedClient c((*server)->address());
  EXPECT_EQ(c.Get("j").type(), v1::JSON);
  EXPECT_EQ(c.Get("j").value(), R"({"a":1})");
  EXPECT_EQ(c.Get("n").type(), v1::INT64);
  int64_t v = 0;
  ASSERT_TRUE(c.Incr("n", 1, &v).ok());
  EXPECT_EQ(v, 21);
}

}  // namespace
}  // namespace strata::server
