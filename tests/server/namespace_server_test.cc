// Namespaces over gRPC (docs/namespaces.md): the same key in two namespaces
// never crosses through Get, BatchGet, Scan, Watch, DeleteRange, Txn or
// Commit; a Write spans namespaces atomically; an unknown namespace is
// NOT_FOUND (a malformed one INVALID_ARGUMENT) on every RPC that names a
// key; a deleted namespace's keys vanish at once and a re-created one of the
// same name is empty; the catalog survives a restart; the admin RPCs'
// errors.

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "server/kv_server.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::TempDir;

constexpr absl::Duration kWait = absl::Seconds(20);

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(kWait));
}

template <class Msg>
Msg Parse(const std::string& text) {
  Msg m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m)) << text;
  return m;
}

// A KvServer on a DB in a temp dir; can be stopped and started again on the
// same directory.
class NamespaceServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override { Stop(); }

  void Start() {
    strata::testing::PinGrpcLibrary();
    options_ = strata::testing::TestServerOptions();
    // As in strata-server: compaction drops deleted namespaces' keys. A
    // fresh filter per start: the catalog's Load refills it.
    options_.deleted_namespaces = std::make_shared<DeletedNamespaces>();
    options_.TEST_namespace_reclaimed = [this](uint64_t id,
                                               const absl::Status& s) {
      absl::MutexLock l(&reclaim_mu_);
      reclaimed_.emplace_back(id, s);
    };
    storage::Options engine;
    engine.create_if_missing = true;
    engine.keep_history = true;
    engine.compaction_filter = options_.deleted_namespaces;
    auto db = storage::DB::Open(engine, dir_.path() + "/db");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    server_ = std::make_unique<KvServer>(options_, db_.get());
    ASSERT_OK(server_->Start());
    stub_ = v1::KV::NewStub(grpc::CreateChannel(
        server_->bound_address(), grpc::InsecureChannelCredentials()));
  }
  void Stop() {
    stub_.reset();
    if (server_) server_->Shutdown();
    server_.reset();
    db_.reset();
  }
  absl::Mutex reclaim_mu_;
  // (id, status) of every reclaim compaction that ended, in order.
  std::vector<std::pair<uint64_t, absl::Status>> reclaimed_
      ABSL_GUARDED_BY(reclaim_mu_);

  void Restart() {
    Stop();
    Start();
  }

  grpc::StatusCode Create(const std::string& name, uint64_t quota_bytes = 0,
                          uint64_t quota_keys = 0) {
    v1::CreateNamespaceRequest req;
    req.set_name(name);
    req.set_quota_bytes(quota_bytes);
    req.set_quota_keys(quota_keys);
    v1::CreateNamespaceResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->CreateNamespace(&ctx, req, &resp);
    if (s.ok()) {
      EXPECT_GT(resp.header().revision(), 0);
    }
    return s.error_code();
  }
  grpc::StatusCode Drop(const std::string& name) {
    v1::DeleteNamespaceRequest req;
    req.set_name(name);
    v1::DeleteNamespaceResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub_->DeleteNamespace(&ctx, req, &resp).error_code();
  }
  v1::ListNamespacesResponse List(const std::string& prefix = "") {
    v1::ListNamespacesRequest req;
    req.set_prefix(prefix);
    v1::ListNamespacesResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->ListNamespaces(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }
  grpc::Status Put(const std::string& ns, const std::string& k,
                   const std::string& v) {
    v1::PutRequest req;
    req.set_namespace_(ns);
    req.set_key(k);
    req.set_value(v);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub_->Put(&ctx, req, &resp);
  }
  // The value, "<missing>", or the status code's number after "error ".
  std::string Get(const std::string& ns, const std::string& k,
                  int64_t* mod_revision = nullptr) {
    v1::GetRequest req;
    req.set_namespace_(ns);
    req.set_key(k);
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Get(&ctx, req, &resp);
    if (!s.ok()) return "error " + std::to_string(s.error_code());
    if (mod_revision != nullptr) *mod_revision = resp.mod_revision();
    return resp.found() ? resp.value() : "<missing>";
  }
  // "k=v," for every pair of a whole-namespace scan, or the error.
  std::string Scan(const std::string& ns) {
    v1::ScanRequest req;
    req.set_namespace_(ns);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto reader = stub_->Scan(&ctx, req);
    std::string out;
    v1::ScanResponse resp;
    while (reader->Read(&resp)) {
      for (const v1::KeyValue& kv : resp.pairs()) {
        out += kv.key() + "=" + kv.value() + ",";
      }
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return "error " + std::to_string(s.error_code());
    return out;
  }

  TempDir dir_;
  ServerOptions options_;
  std::unique_ptr<storage::DB> db_;
  std::unique_ptr<KvServer> server_;
  std::unique_ptr<v1::KV::Stub> stub_;
};

TEST_F(NamespaceServerTest, TheSameKeyInTwoNamespacesNeverCrosses) {
  ASSERT_EQ(Create("a"), grpc::OK);
  ASSERT_EQ(Create("team/b"), grpc::OK);
  ASSERT_TRUE(Put("", "k", "default").ok());
  ASSERT_TRUE(Put("a", "k", "A").ok());
  ASSERT_TRUE(Put("team/b", "k", "B").ok());
  ASSERT_TRUE(Put("a", "only-a", "1").ok());
  // A default-namespace key that begins like the reserved area.
  ASSERT_TRUE(Put("", "\xff\xff" "x", "esc").ok());

  EXPECT_EQ(Get("", "k"), "default");
  EXPECT_EQ(Get("a", "k"), "A");
  EXPECT_EQ(Get("team/b", "k"), "B");
  EXPECT_EQ(Get("team/b", "only-a"), "<missing>");
  EXPECT_EQ(Scan(""), "k=default,\xff\xff" "x=esc,");
  EXPECT_EQ(Scan("a"), "k=A,only-a=1,");
  EXPECT_EQ(Scan("team/b"), "k=B,");

  v1::BatchGetRequest bg;
  bg.set_namespace_("team/b");
  bg.add_keys("k");
  bg.add_keys("only-a");
  v1::BatchGetResponse bgr;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->BatchGet(&ctx, bg, &bgr).ok());
  }
  ASSERT_EQ(bgr.results_size(), 2);
  EXPECT_EQ(bgr.results(0).value(), "B");
  EXPECT_FALSE(bgr.results(1).found());

  // DeleteRange of everything in one namespace leaves the others alone.
  v1::DeleteRangeRequest dr;
  dr.set_namespace_("a");
  v1::DeleteRangeResponse drr;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->DeleteRange(&ctx, dr, &drr).ok());
  }
  EXPECT_EQ(drr.deleted(), 2);
  EXPECT_EQ(Scan("a"), "");
  EXPECT_EQ(Scan("team/b"), "k=B,");
  EXPECT_EQ(Get("", "k"), "default");
}

TEST_F(NamespaceServerTest, AWatcherSeesOnlyItsNamespace) {
  ASSERT_EQ(Create("a"), grpc::OK);
  ASSERT_EQ(Create("b"), grpc::OK);
  v1::WatchRequest wr;
  wr.set_namespace_("a");
  wr.set_key("k");
  wr.set_range_end(std::string(1, '\0'));  // Every key >= "k" of a.
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  auto reader = stub_->Watch(&ctx, wr);
  v1::WatchResponse resp;
  ASSERT_TRUE(reader->Read(&resp));  // The opening message: registered.
  // Changes to the same keys elsewhere first, then one in a.
  ASSERT_TRUE(Put("b", "k", "B").ok());
  ASSERT_TRUE(Put("", "k", "default").ok());
  ASSERT_TRUE(Put("", "kz", "default").ok());
  ASSERT_TRUE(Put("a", "k", "A").ok());
  std::vector<std::string> seen;
  while (seen.empty() && reader->Read(&resp)) {
    for (const v1::Event& e : resp.events()) {
      seen.push_back(e.kv().key() + "=" + e.kv().value());
    }
  }
  ctx.TryCancel();
  reader->Finish();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "k=A");
}

TEST_F(NamespaceServerTest, ATxnReadsAndWritesEachOpsOwnNamespace) {
  ASSERT_EQ(Create("a"), grpc::OK);
  ASSERT_EQ(Create("b"), grpc::OK);
  ASSERT_TRUE(Put("a", "k", "A").ok());
  ASSERT_TRUE(Put("b", "k", "B").ok());
  // The compare is in the request's namespace (a); ops name their own.
  auto req = Parse<v1::TxnRequest>(R"pb(
    namespace: "a"
    compare { key: "k" target: VALUE result: EQUAL value: "A" }
    success { get { key: "k" namespace: "b" } }
    success { put { key: "k" value: "B2" namespace: "b" } }
    success { put { key: "n" value: "A-new" } }
    success { scan { namespace: "b" } }
    success { get { key: "k" } }
  )pb");
  v1::TxnResponse resp;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Txn(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  ASSERT_TRUE(resp.succeeded());
  ASSERT_EQ(resp.responses_size(), 5);
  EXPECT_EQ(resp.responses(0).get().value(), "B");
  ASSERT_EQ(resp.responses(3).scan().pairs_size(), 1);
  EXPECT_EQ(resp.responses(3).scan().pairs(0).value(), "B2");  // Own write.
  EXPECT_EQ(resp.responses(4).get().value(), "A");
  EXPECT_EQ(Get("b", "k"), "B2");
  EXPECT_EQ(Get("a", "k"), "A");
  EXPECT_EQ(Get("a", "n"), "A-new");
  EXPECT_EQ(Get("b", "n"), "<missing>");
  EXPECT_EQ(Get("", "n"), "<missing>");

  // A compare naming b sees b's value, not a's.
  auto in_b = Parse<v1::TxnRequest>(R"pb(
    namespace: "a"
    compare { key: "k" target: VALUE result: EQUAL value: "A" namespace: "b" }
  )pb");
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->Txn(&ctx, in_b, &resp).ok());
  }
  EXPECT_FALSE(resp.succeeded());

  // The same key written in two namespaces by one branch is allowed.
  auto both = Parse<v1::TxnRequest>(R"pb(
    success { put { key: "z" value: "1" namespace: "a" } }
    success { put { key: "z" value: "2" namespace: "b" } }
  )pb");
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Txn(&ctx, both, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(Get("a", "z"), "1");
  EXPECT_EQ(Get("b", "z"), "2");
}

TEST_F(NamespaceServerTest, ACommitChecksReadsInItsNamespace) {
  ASSERT_EQ(Create("a"), grpc::OK);
  ASSERT_TRUE(Put("a", "k", "A").ok());
  int64_t rev = 0;
  ASSERT_EQ(Get("a", "k", &rev), "A");
  // A later write of "k" in the default namespace is no conflict...
  ASSERT_TRUE(Put("", "k", "D").ok());
  auto req = Parse<v1::CommitRequest>(R"pb(
    namespace: "a" read_keys: "k"
    mutations { put { key: "k" value: "A2" } }
  )pb");
  req.set_read_revision(rev);
  v1::CommitResponse resp;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Commit(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_EQ(Get("a", "k"), "A2");
  EXPECT_EQ(Get("", "k"), "D");
  // ...but one in a is.
  req.set_read_revision(resp.header().revision());
  ASSERT_TRUE(Put("a", "k", "A3").ok());
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  EXPECT_EQ(stub_->Commit(&ctx, req, &resp).error_code(), grpc::ABORTED);
}

TEST_F(NamespaceServerTest, AWriteSpansNamespacesAtomically) {
  ASSERT_EQ(Create("a"), grpc::OK);
  ASSERT_EQ(Create("b"), grpc::OK);
  ASSERT_TRUE(Put("", "d", "old").ok());
  // The request's namespace (a) for mutations that name none.
  auto req = Parse<v1::WriteRequest>(R"pb(
    namespace: "a"
    mutations { put { key: "x" value: "in a" } }
    mutations { put { key: "x" value: "in b" namespace: "b" } }
    mutations { delete { key: "d" } }
  )pb");
  v1::WriteResponse resp;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->Write(&ctx, req, &resp).ok());
  }
  int64_t ra = 0, rb = 0;
  EXPECT_EQ(Get("a", "x", &ra), "in a");
  EXPECT_EQ(Get("b", "x", &rb), "in b");
  EXPECT_EQ(ra, resp.header().revision());
  EXPECT_EQ(rb, resp.header().revision());
  EXPECT_EQ(Get("", "d"), "old");  // The delete was of a's "d".

  // One mutation in a namespace that does not exist: nothing is written.
  auto bad = Parse<v1::WriteRequest>(R"pb(
    mutations { put { key: "y" value: "1" namespace: "a" } }
    mutations { put { key: "y" value: "2" namespace: "nope" } }
  )pb");
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  EXPECT_EQ(stub_->Write(&ctx, bad, &resp).error_code(), grpc::NOT_FOUND);
  EXPECT_EQ(Get("a", "y"), "<missing>");
}

TEST_F(NamespaceServerTest, EveryKeyRpcRefusesAnUnknownOrMalformedNamespace) {
  for (const auto& [ns, code] :
       std::vector<std::pair<std::string, grpc::StatusCode>>{
           {"nope", grpc::NOT_FOUND}, {"bad name", grpc::INVALID_ARGUMENT}}) {
    SCOPED_TRACE(ns);
    auto call = [&](auto rpc, auto req, auto resp) {
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      return (stub_.get()->*rpc)(&ctx, req, &resp).error_code();
    };
    v1::GetRequest get;
    get.set_key("k");
    get.set_namespace_(ns);
    EXPECT_EQ(call(&v1::KV::Stub::Get, get, v1::GetResponse()), code);
    EXPECT_EQ(Put(ns, "k", "v").error_code(), code);
    v1::DeleteRequest del;
    del.set_key("k");
    del.set_namespace_(ns);
    EXPECT_EQ(call(&v1::KV::Stub::Delete, del, v1::DeleteResponse()), code);
    v1::WriteRequest write;
    write.set_namespace_(ns);
    write.add_mutations()->mutable_put()->set_key("k");
    EXPECT_EQ(call(&v1::KV::Stub::Write, write, v1::WriteResponse()), code);
    v1::BatchGetRequest bg;
    bg.add_keys("k");
    bg.set_namespace_(ns);
    EXPECT_EQ(call(&v1::KV::Stub::BatchGet, bg, v1::BatchGetResponse()), code);
    v1::DeleteRangeRequest dr;
    dr.set_namespace_(ns);
    EXPECT_EQ(call(&v1::KV::Stub::DeleteRange, dr, v1::DeleteRangeResponse()),
              code);
    v1::TxnRequest txn;
    txn.add_success()->mutable_get()->set_key("k");
    txn.mutable_success(0)->mutable_get()->set_namespace_(ns);
    EXPECT_EQ(call(&v1::KV::Stub::Txn, txn, v1::TxnResponse()), code);
    v1::CommitRequest commit;
    commit.set_namespace_(ns);
    commit.add_read_keys("k");
    EXPECT_EQ(call(&v1::KV::Stub::Commit, commit, v1::CommitResponse()), code);
    v1::IncrementRequest inc;
    inc.set_key("k");
    inc.set_namespace_(ns);
    EXPECT_EQ(call(&v1::KV::Stub::Increment, inc, v1::IncrementResponse()),
              code);
    v1::JsonGetRequest jg;
    jg.set_key("k");
    jg.set_namespace_(ns);
    EXPECT_EQ(call(&v1::KV::Stub::JsonGet, jg, v1::JsonGetResponse()), code);
    v1::JsonUpdateRequest ju;
    ju.set_key("k");
    ju.set_merge_patch("{}");
    ju.set_namespace_(ns);
    EXPECT_EQ(call(&v1::KV::Stub::JsonUpdate, ju, v1::JsonUpdateResponse()),
              code);
    EXPECT_EQ(Scan(ns), "error " + std::to_string(code));
    v1::WatchRequest wr;
    wr.set_key("k");
    wr.set_namespace_(ns);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto reader = stub_->Watch(&ctx, wr);
    v1::WatchResponse wresp;
    while (reader->Read(&wresp)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), code);
  }
  EXPECT_EQ(Scan(""), "");  // Nothing was written anywhere.
}

TEST_F(NamespaceServerTest, DeletedKeysVanishAtOnceAndARecreatedNameIsEmpty) {
  ASSERT_EQ(Create("a"), grpc::OK);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(Put("a", "k" + std::to_string(i), "v").ok());
  }
  ASSERT_TRUE(Put("", "k1", "default").ok());
  ASSERT_EQ(Drop("a"), grpc::OK);
  EXPECT_EQ(Get("a", "k1"), "error " + std::to_string(grpc::NOT_FOUND));
  EXPECT_EQ(Put("a", "k1", "v").error_code(), grpc::NOT_FOUND);
  ASSERT_EQ(Create("a"), grpc::OK);
  EXPECT_EQ(Scan("a"), "");
  EXPECT_EQ(Get("a", "k1"), "<missing>");
  EXPECT_EQ(Get("", "k1"), "default");
}

// Writes `count` keys of `value_bytes` random (incompressible) bytes into
// namespace `ns`, 100 per Write.
void FillNamespace(v1::KV::Stub* stub, const std::string& ns, int count,
                   size_t value_bytes, std::mt19937_64* rng) {
  for (int first = 0; first < count; first += 100) {
    v1::WriteRequest req;
    req.set_namespace_(ns);
    for (int i = first; i < std::min(count, first + 100); ++i) {
      auto* p = req.add_mutations()->mutable_put();
      p->set_key(absl::StrFormat("k%06d", i));
      std::string v(value_bytes, '\0');
      for (char& c : v) c = static_cast<char>((*rng)());
      p->set_value(std::move(v));
    }
    v1::WriteResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->Write(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
}

// The issue's "space reclaimed after compaction": a deleted namespace's
// bytes leave the SSTables at the next compaction of its range, down to
// what the other namespaces hold, even inside the history window (nobody
// can read a deleted namespace's history), while a snapshot taken before
// the delete keeps them until it is released.
TEST_F(NamespaceServerTest, DeletedNamespaceSpaceIsReclaimedByCompaction) {
  constexpr int kBigKeys = 2000;
  constexpr int kSmallKeys = 100;
  constexpr size_t kValueBytes = 4096;
  std::mt19937_64 rng(16);
  ASSERT_EQ(Create("big"), grpc::OK);
  ASSERT_EQ(Create("small"), grpc::OK);
  ASSERT_NO_FATAL_FAILURE(
      FillNamespace(stub_.get(), "big", kBigKeys, kValueBytes, &rng));
  ASSERT_NO_FATAL_FAILURE(
      FillNamespace(stub_.get(), "small", kSmallKeys, kValueBytes, &rng));
  ASSERT_OK(db_->Flush());
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  const uint64_t before = db_->GetStatistics().levels.live_sst_bytes;
  ASSERT_GE(before, (kBigKeys + kSmallKeys) * kValueBytes);

  // A reader that started before the delete.
  const storage::Snapshot* snapshot = db_->GetSnapshot();
  ASSERT_EQ(Drop("big"), grpc::OK);
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  EXPECT_GE(db_->GetStatistics().levels.live_sst_bytes,
            (kBigKeys + kSmallKeys) * kValueBytes)
      << "dropped what a snapshot from before the delete still reads";
  db_->ReleaseSnapshot(snapshot);

  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  const uint64_t after = db_->GetStatistics().levels.live_sst_bytes;
  RecordProperty("live_sst_bytes_before", std::to_string(before));
  RecordProperty("live_sst_bytes_after", std::to_string(after));
  // The small namespace's values, plus block and index overhead.
  EXPECT_GE(after, kSmallKeys * kValueBytes);
  EXPECT_LT(after, 2 * kSmallKeys * kValueBytes)
      << "before " << before << " bytes, after " << after << " bytes";
  EXPECT_GE(db_->GetStatistics().compaction.filtered_entries,
            static_cast<uint64_t>(kBigKeys));
  EXPECT_EQ(Get("small", "k000000").size(), kValueBytes);
  EXPECT_EQ(Get("small", absl::StrFormat("k%06d", kSmallKeys - 1)).size(),
            kValueBytes);
  // A namespace of the same name is new and empty.
  ASSERT_EQ(Create("big"), grpc::OK);
  EXPECT_EQ(Scan("big"), "");
}

// DeleteNamespace itself compacts the namespace's range (on the blocking
// pool, after it answered): the space comes back without waiting for
// ordinary compactions; and a deletion found at start (catalog Load) is
// reclaimed too.
TEST_F(NamespaceServerTest, DeleteNamespaceCompactsItsRangeByItself) {
  constexpr int kKeys = 1000;
  constexpr size_t kValueBytes = 4096;
  std::mt19937_64 rng(7);
  ASSERT_EQ(Create("a"), grpc::OK);
  ASSERT_EQ(Create("b"), grpc::OK);
  ASSERT_NO_FATAL_FAILURE(
      FillNamespace(stub_.get(), "a", kKeys, kValueBytes, &rng));
  ASSERT_NO_FATAL_FAILURE(
      FillNamespace(stub_.get(), "b", kKeys, kValueBytes, &rng));
  ASSERT_OK(db_->Flush());
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  ASSERT_GE(db_->GetStatistics().levels.live_sst_bytes,
            2 * kKeys * kValueBytes);

  ASSERT_EQ(Drop("a"), grpc::OK);
  {
    absl::MutexLock l(&reclaim_mu_);
    ASSERT_TRUE(reclaim_mu_.AwaitWithTimeout(
        absl::Condition(
            +[](std::vector<std::pair<uint64_t, absl::Status>>* r) {
              return !r->empty();
            },
            &reclaimed_),
        kWait));
    ASSERT_EQ(reclaimed_.size(), 1u);
    EXPECT_EQ(reclaimed_[0].first, 1u);  // "a" had the first id.
    EXPECT_OK(reclaimed_[0].second);
  }
  uint64_t live = db_->GetStatistics().levels.live_sst_bytes;
  EXPECT_GE(live, kKeys * kValueBytes);
  EXPECT_LT(live, 3 * kKeys * kValueBytes / 2) << live << " bytes";
  EXPECT_EQ(Get("b", "k000000").size(), kValueBytes);

  // "b" deleted just before a restart that leaves no time for its own
  // reclaim to matter: the catalog's Load records it, and the next
  // compaction drops it.
  ASSERT_EQ(Drop("b"), grpc::OK);
  Restart();
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  live = db_->GetStatistics().levels.live_sst_bytes;
  EXPECT_LT(live, kKeys * kValueBytes / 4) << live << " bytes";
}

TEST_F(NamespaceServerTest, TheCatalogSurvivesARestart) {
  ASSERT_EQ(Create("keep", 1000, 10), grpc::OK);
  ASSERT_EQ(Create("gone"), grpc::OK);
  ASSERT_TRUE(Put("keep", "k", "v").ok());
  ASSERT_TRUE(Put("gone", "k", "old").ok());
  ASSERT_EQ(Drop("gone"), grpc::OK);
  Restart();
  v1::ListNamespacesResponse list = List();
  ASSERT_EQ(list.namespaces_size(), 1);
  EXPECT_EQ(list.namespaces(0).name(), "keep");
  EXPECT_EQ(list.namespaces(0).quota_bytes(), 1000u);
  EXPECT_EQ(list.namespaces(0).quota_keys(), 10u);
  EXPECT_EQ(Get("keep", "k"), "v");
  EXPECT_EQ(Get("gone", "k"), "error " + std::to_string(grpc::NOT_FOUND));
  // A new namespace of the old name never shows the old keys (new id).
  ASSERT_EQ(Create("gone"), grpc::OK);
  EXPECT_EQ(Scan("gone"), "");
}

TEST_F(NamespaceServerTest, AdminErrorsAndUpdate) {
  EXPECT_EQ(Create(""), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Create(std::string(256, 'a')), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Create("a*b"), grpc::INVALID_ARGUMENT);
  EXPECT_EQ(Create(std::string(255, 'a')), grpc::OK);
  EXPECT_EQ(Create("x"), grpc::OK);
  EXPECT_EQ(Create("x"), grpc::ALREADY_EXISTS);
  EXPECT_EQ(Drop("y"), grpc::NOT_FOUND);
  EXPECT_EQ(Drop("bad name"), grpc::INVALID_ARGUMENT);

  v1::UpdateNamespaceRequest up;
  up.set_name("x");
  up.set_quota_bytes(7);
  up.set_quota_keys(8);
  v1::UpdateNamespaceResponse upr;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->UpdateNamespace(&ctx, up, &upr).ok());
  }
  v1::ListNamespacesResponse list = List("x");
  ASSERT_EQ(list.namespaces_size(), 1);
  EXPECT_EQ(list.namespaces(0).quota_bytes(), 7u);
  EXPECT_EQ(list.namespaces(0).quota_keys(), 8u);
  EXPECT_EQ(List("").namespaces_size(), 2);
  // keep_quota_*: that quota stays (its value field is ignored).
  up.set_quota_bytes(70);
  up.set_quota_keys(999);
  up.set_keep_quota_keys(true);
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->UpdateNamespace(&ctx, up, &upr).ok());
  }
  list = List("x");
  EXPECT_EQ(list.namespaces(0).quota_bytes(), 70u);
  EXPECT_EQ(list.namespaces(0).quota_keys(), 8u);
  up.set_keep_quota_keys(false);
  up.set_keep_quota_bytes(true);
  up.set_quota_keys(0);
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->UpdateNamespace(&ctx, up, &upr).ok());
  }
  list = List("x");
  EXPECT_EQ(list.namespaces(0).quota_bytes(), 70u);
  EXPECT_EQ(list.namespaces(0).quota_keys(), 0u);
  up.set_name("y");
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  EXPECT_EQ(stub_->UpdateNamespace(&ctx, up, &upr).error_code(),
            grpc::NOT_FOUND);
}

// What ListNamespaces says namespace `name` holds: "keys/bytes".
std::string Usage(const v1::ListNamespacesResponse& list,
                  const std::string& name) {
  for (const v1::NamespaceInfo& n : list.namespaces()) {
    if (n.name() == name) {
      return std::to_string(n.approximate_keys()) + "/" +
             std::to_string(n.approximate_bytes());
    }
  }
  return "<absent>";
}

TEST_F(NamespaceServerTest, AKeyQuotaHoldsAtTheBoundaryAndDeletesAlwaysPass) {
  ASSERT_EQ(Create("q", 0, 3), grpc::OK);
  ASSERT_TRUE(Put("q", "a", "1").ok());
  ASSERT_TRUE(Put("q", "b", "1").ok());
  ASSERT_TRUE(Put("q", "c", "1").ok());  // Exactly at the quota.
  grpc::Status s = Put("q", "d", "1");
  EXPECT_EQ(s.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("\"q\""), std::string::npos)
      << s.error_message();
  EXPECT_NE(s.error_message().find("quota_keys"), std::string::npos);
  EXPECT_EQ(Get("q", "d"), "<missing>");
  EXPECT_TRUE(Put("q", "a", "22").ok());  // Overwrite: no new key.
  EXPECT_EQ(Usage(List(), "q"), "3/7");  // a22 b1 c1.

  // A quota lowered below what the namespace holds: deletes and shrinking
  // writes pass, growth does not.
  v1::UpdateNamespaceRequest up;
  up.set_name("q");
  up.set_quota_keys(1);
  v1::UpdateNamespaceResponse upr;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->UpdateNamespace(&ctx, up, &upr).ok());
  }
  EXPECT_TRUE(Put("q", "a", "1").ok());
  EXPECT_EQ(Put("q", "e", "1").error_code(), grpc::RESOURCE_EXHAUSTED);
  v1::DeleteRequest del;
  del.set_namespace_("q");
  del.set_key("b");
  v1::DeleteResponse delr;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_TRUE(stub_->Delete(&ctx, del, &delr).ok());
  }
  EXPECT_EQ(Usage(List(), "q"), "2/4");
}

TEST_F(NamespaceServerTest, AByteQuotaCountsKeysAndValuesExactly) {
  ASSERT_EQ(Create("qb", 10, 0), grpc::OK);
  ASSERT_TRUE(Put("qb", "k1", "123").ok());  // 5 bytes.
  EXPECT_EQ(Put("qb", "k2", "1234").error_code(), grpc::RESOURCE_EXHAUSTED);
  ASSERT_TRUE(Put("qb", "k2", "123").ok());  // 10 bytes: exactly the quota.
  EXPECT_EQ(Usage(List(), "qb"), "2/10");
  // One over-quota mutation refuses the whole Write, in every namespace.
  auto w = Parse<v1::WriteRequest>(R"pb(
    mutations { put { key: "d" value: "x" } }
    mutations { put { key: "k1" value: "1234" namespace: "qb" } }
  )pb");
  v1::WriteResponse wr;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Write(&ctx, w, &wr);
    EXPECT_EQ(s.error_code(), grpc::RESOURCE_EXHAUSTED);
    EXPECT_NE(s.error_message().find("quota_bytes"), std::string::npos);
  }
  EXPECT_EQ(Get("", "d"), "<missing>");
  EXPECT_EQ(Get("qb", "k1"), "123");
  // The default namespace has no quota and no usage record.
  ASSERT_TRUE(Put("", "big", std::string(100, 'x')).ok());
}

TEST_F(NamespaceServerTest, UsageFollowsEveryWritePathAndSurvivesARestart) {
  ASSERT_EQ(Create("u"), grpc::OK);
  auto txn = Parse<v1::TxnRequest>(R"pb(
    namespace: "u"
    success { put { key: "t1" value: "abc" } }
    success { put { key: "t2" value: "abc" } }
  )pb");
  v1::TxnResponse tr;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->Txn(&ctx, txn, &tr).ok());
  }
  v1::IncrementRequest inc;
  inc.set_namespace_("u");
  inc.set_key("n");
  inc.set_delta(42);
  v1::IncrementResponse ir;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->Increment(&ctx, inc, &ir).ok());
  }
  EXPECT_EQ(Usage(List(), "u"), "3/13");  // t1abc t2abc n42.
  Restart();
  EXPECT_EQ(Usage(List(), "u"), "3/13");
  v1::DeleteRangeRequest dr;
  dr.set_namespace_("u");
  dr.set_start_key("t");
  v1::DeleteRangeResponse drr;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->DeleteRange(&ctx, dr, &drr).ok());
  }
  EXPECT_EQ(Usage(List(), "u"), "1/3");
  // A deleted and re-created namespace starts from nothing.
  ASSERT_EQ(Drop("u"), grpc::OK);
  ASSERT_EQ(Create("u"), grpc::OK);
  EXPECT_EQ(Usage(List(), "u"), "0/0");
}

}  // namespace
}  // namespace strata::server
