// Expiry over gRPC (docs/expiry.md): per-key TTLs and leases, with a manual
// clock and the expirer driven by hand (Expiry::RunOnce), so nothing
// sleeps. A key is invisible from its deadline on through every read path,
// before the expirer has deleted it; the expirer's deletions are real
// revisions (DELETE events); a lease's keys all go at one revision;
// grants, attachments and deadlines survive a restart; and a randomized
// model test mixes all of it with simulated time.

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "server/kv_server.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/support/manual_clock_env.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::ManualClockEnv;
using ::strata::testing::TempDir;

constexpr absl::Duration kWait = absl::Seconds(20);

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(kWait));
}

// A KvServer on a DB in `dir` with a manual clock and no background
// expirer; can be stopped and started again on the same directory.
class ExpiryServerTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override { Stop(); }

  void Start() {
    strata::testing::PinGrpcLibrary();
    options_ = strata::testing::TestServerOptions();
    options_.expiry.env = &clock_;
    options_.expiry.background = false;
    options_.expiry.max_leases = max_leases_;
    options_.expiry.max_keys_per_lease = max_keys_per_lease_;
    options_.expiry.max_ttl_seconds = 3600;
    leases_ = std::make_shared<LeaseTable>();
    options_.expiry.leases = leases_;
    storage::Options engine;
    engine.env = &clock_;
    engine.create_if_missing = true;
    engine.keep_history = true;
    engine.history_retention_seconds = 0;
    engine.lease_deadlines = leases_.get();
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
  void Restart() {
    Stop();
    Start();
  }
  ExpiryRound Expire() {
    absl::StatusOr<ExpiryRound> r = server_->TEST_expiry()->RunOnce();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ExpiryRound();
  }

  grpc::Status Put(const std::string& k, const std::string& v,
                   int64_t ttl_ms = 0, int64_t lease = 0,
                   int64_t* revision = nullptr) {
    v1::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    req.set_ttl_ms(ttl_ms);
    req.set_lease(lease);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Put(&ctx, req, &resp);
    if (revision != nullptr) *revision = resp.header().revision();
    return s;
  }
  // "value" or "<missing>" (or the error).
  std::string Get(const std::string& k, int64_t revision = 0) {
    v1::GetRequest req;
    req.set_key(k);
    req.set_revision(revision);
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->Get(&ctx, req, &resp);
    if (!s.ok()) return "error: " + s.error_message();
    return resp.found() ? resp.value() : "<missing>";
  }
  // "k=v,..." of a whole scan.
  std::string Scan(bool reverse = false, int64_t revision = 0) {
    v1::ScanRequest req;
    req.set_reverse(reverse);
    req.set_revision(revision);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto reader = stub_->Scan(&ctx, req);
    v1::ScanResponse resp;
    std::string out;
    while (reader->Read(&resp)) {
      for (const auto& kv : resp.pairs()) out += kv.key() + "=" + kv.value() + ",";
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return "error: " + s.error_message();
    return out;
  }
  int64_t Grant(int64_t ttl_seconds, int64_t id = 0) {
    v1::LeaseGrantRequest req;
    req.set_ttl_seconds(ttl_seconds);
    req.set_id(id);
    v1::LeaseGrantResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->LeaseGrant(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.ttl_seconds(), ttl_seconds);
    return resp.id();
  }
  grpc::Status GrantStatus(int64_t ttl_seconds, int64_t id = 0) {
    v1::LeaseGrantRequest req;
    req.set_ttl_seconds(ttl_seconds);
    req.set_id(id);
    v1::LeaseGrantResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub_->LeaseGrant(&ctx, req, &resp);
  }
  grpc::Status Revoke(int64_t id, int64_t* revision = nullptr) {
    v1::LeaseRevokeRequest req;
    req.set_id(id);
    v1::LeaseRevokeResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->LeaseRevoke(&ctx, req, &resp);
    if (revision != nullptr) *revision = resp.header().revision();
    return s;
  }
  grpc::Status KeepAlive(int64_t id) {
    v1::LeaseKeepAliveRequest req;
    req.set_id(id);
    v1::LeaseKeepAliveResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub_->LeaseKeepAlive(&ctx, req, &resp);
  }
  grpc::Status TimeToLive(int64_t id, bool keys,
                          v1::LeaseTimeToLiveResponse* resp) {
    v1::LeaseTimeToLiveRequest req;
    req.set_id(id);
    req.set_keys(keys);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub_->LeaseTimeToLive(&ctx, req, resp);
  }
  std::vector<int64_t> Leases() {
    v1::LeaseLeasesResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_TRUE(stub_->LeaseLeases(&ctx, v1::LeaseLeasesRequest(), &resp).ok());
    return {resp.ids().begin(), resp.ids().end()};
  }
  // The events of revisions >= from, up to the current one.
  std::vector<v1::Event> EventsSince(int64_t from) {
    const int64_t until = static_cast<int64_t>(db_->CurrentRevision());
    v1::WatchRequest req;
    req.set_key(std::string(1, '\0'));
    req.set_range_end(std::string(1, '\0'));
    req.set_start_revision(from);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto reader = stub_->Watch(&ctx, req);
    std::vector<v1::Event> events;
    v1::WatchResponse resp;
    while (reader->Read(&resp)) {
      for (const auto& e : resp.events()) events.push_back(e);
      if (resp.header().revision() >= until) break;
    }
    ctx.TryCancel();
    reader->Finish();
    return events;
  }

  ManualClockEnv clock_;
  TempDir dir_;
  int64_t max_leases_ = 100;
  int64_t max_keys_per_lease_ = 2000;
  ServerOptions options_;
  std::shared_ptr<LeaseTable> leases_;
  std::unique_ptr<storage::DB> db_;
  std::unique_ptr<KvServer> server_;
  std::unique_ptr<v1::KV::Stub> stub_;
};

TEST_F(ExpiryServerTest, TtlKeyIsInvisibleFromItsDeadlineThroughEveryReadPath) {
  ASSERT_TRUE(Put("a", "1").ok());
  int64_t r = 0;
  ASSERT_TRUE(Put("b", "2", /*ttl_ms=*/1000, 0, &r).ok());
  ASSERT_TRUE(Put("c", "3").ok());
  clock_.Advance(999);
  EXPECT_EQ(Get("b"), "2");
  EXPECT_EQ(Scan(), "a=1,b=2,c=3,");
  clock_.Advance(1);  // Exactly the deadline; the expirer has not run.
  EXPECT_EQ(Get("b"), "<missing>");
  EXPECT_EQ(Scan(), "a=1,c=3,");
  EXPECT_EQ(Scan(/*reverse=*/true), "c=3,a=1,");
  // Reads at an explicit revision (the one that wrote it, and the latest).
  EXPECT_EQ(Get("b", r), "<missing>");
  EXPECT_EQ(Scan(false, r), "a=1,");
  EXPECT_EQ(Scan(true, r + 1), "c=3,a=1,");
  {
    v1::BatchGetRequest req;
    req.add_keys("b");
    req.add_keys("a");
    v1::BatchGetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->BatchGet(&ctx, req, &resp).ok());
    EXPECT_FALSE(resp.results(0).found());
    EXPECT_TRUE(resp.results(1).found());
  }
  {  // A commit-time read (DeleteRange lists keys in a commit function).
    v1::DeleteRangeRequest req;
    req.set_start_key("b");
    req.set_end_key("c");
    req.set_prev_kv(true);
    v1::DeleteRangeResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->DeleteRange(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.prev_kvs_size(), 0);
  }
}

TEST_F(ExpiryServerTest, TheExpirerDeletesAtARealRevisionThatWatchersSee) {
  ASSERT_TRUE(Put("k", "v", 50).ok());
  ASSERT_TRUE(Put("plain", "p").ok());
  const int64_t before = static_cast<int64_t>(db_->CurrentRevision());
  clock_.Advance(49);
  EXPECT_EQ(Expire().ttl_keys_deleted, 0);
  EXPECT_EQ(static_cast<int64_t>(db_->CurrentRevision()), before);
  clock_.Advance(1);
  EXPECT_EQ(Expire().ttl_keys_deleted, 1);
  const std::vector<v1::Event> events = EventsSince(before + 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), v1::Event::DELETE);
  EXPECT_EQ(events[0].kv().key(), "k");
  EXPECT_EQ(events[0].kv().mod_revision(), before + 1);
  EXPECT_EQ(Get("plain"), "p");
  EXPECT_EQ(Expire().ttl_keys_deleted, 0);  // Nothing left to do.
}

// A counter incremented with ttl_ms expires like a put with a TTL: the
// expirer writes its DELETE revision; a TTL above --max_ttl is refused.
TEST_F(ExpiryServerTest, AnIncrementWithTtlIsDeletedAtItsDeadline) {
  auto incr = [&](int64_t ttl_ms) {
    v1::IncrementRequest req;
    req.set_key("hits");
    req.set_delta(1);
    req.set_ttl_ms(ttl_ms);
    v1::IncrementResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub_->Increment(&ctx, req, &resp);
  };
  ASSERT_TRUE(incr(100).ok());
  ASSERT_TRUE(incr(0).ok());  // Keeps the deadline.
  EXPECT_EQ(Get("hits"), "2");
  EXPECT_EQ(incr(int64_t{1} << 50).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  const int64_t before = static_cast<int64_t>(db_->CurrentRevision());
  clock_.Advance(100);
  EXPECT_EQ(Get("hits"), "<missing>");
  EXPECT_EQ(Expire().ttl_keys_deleted, 1);
  const std::vector<v1::Event> events = EventsSince(before + 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), v1::Event::DELETE);
  EXPECT_EQ(events[0].kv().key(), "hits");
}

TEST_F(ExpiryServerTest, APutWithoutTtlClearsItAndALaterTtlReplacesIt) {
  ASSERT_TRUE(Put("cleared", "1", 100).ok());
  ASSERT_TRUE(Put("cleared", "2").ok());
  ASSERT_TRUE(Put("later", "1", 100).ok());
  ASSERT_TRUE(Put("later", "2", 500).ok());
  clock_.Advance(100);
  Expire();
  EXPECT_EQ(Get("cleared"), "2");
  EXPECT_EQ(Get("later"), "2");
  clock_.Advance(400);
  EXPECT_EQ(Get("later"), "<missing>");
  EXPECT_EQ(Expire().ttl_keys_deleted, 1);
  EXPECT_EQ(Get("cleared"), "2");
}

TEST_F(ExpiryServerTest, TtlInsideAWriteAppliesPerMutationInOrder) {
  v1::WriteRequest req;
  auto* p1 = req.add_mutations()->mutable_put();
  p1->set_key("x");
  p1->set_value("ttl");
  p1->set_ttl_ms(10);
  auto* p2 = req.add_mutations()->mutable_put();
  p2->set_key("y");
  p2->set_value("keep");
  auto* p3 = req.add_mutations()->mutable_put();
  p3->set_key("y");
  p3->set_value("ttl-wins");
  p3->set_ttl_ms(10);
  v1::WriteResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ASSERT_TRUE(stub_->Write(&ctx, req, &resp).ok());
  EXPECT_EQ(Scan(), "x=ttl,y=ttl-wins,");
  clock_.Advance(10);
  EXPECT_EQ(Scan(), "");
}

// A typed value keeps its type and normalized form when it also has a TTL
// or a lease, alone or inside a Write that takes the expiry path.
TEST_F(ExpiryServerTest, TypedValuesWithTtlOrLeaseKeepTheirType) {
  const int64_t lease = Grant(60);
  auto typed_get = [&](const std::string& k) {
    v1::GetRequest req;
    req.set_key(k);
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    EXPECT_TRUE(stub_->Get(&ctx, req, &resp).ok());
    return std::make_pair(resp.value(), resp.type());
  };
  {
    v1::PutRequest req;
    req.set_key("doc");
    req.set_value("{ \"b\": 1, \"a\": [ 2 ] }");
    req.set_type(v1::JSON);
    req.set_ttl_ms(60000);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->Put(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(typed_get("doc"),
            std::make_pair(std::string("{\"a\":[2],\"b\":1}"), v1::JSON));
  {
    v1::WriteRequest req;
    auto* counter = req.add_mutations()->mutable_put();
    counter->set_key("counter");
    counter->set_value("41");
    counter->set_type(v1::INT64);
    counter->set_lease(lease);
    auto* text = req.add_mutations()->mutable_put();
    text->set_key("text");
    text->set_value("plain, no expiry");
    text->set_type(v1::TEXT);
    v1::WriteResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->Write(&ctx, req, &resp).ok());
  }
  EXPECT_EQ(typed_get("counter"), std::make_pair(std::string("41"), v1::INT64));
  EXPECT_EQ(typed_get("text"),
            std::make_pair(std::string("plain, no expiry"), v1::TEXT));
  // And a value that is not of its type is still refused on this path.
  v1::PutRequest bad;
  bad.set_key("bad");
  bad.set_value("{");
  bad.set_type(v1::JSON);
  bad.set_ttl_ms(1000);
  v1::PutResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  EXPECT_EQ(stub_->Put(&ctx, bad, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Get("bad"), "<missing>");
}

TEST_F(ExpiryServerTest, BadValuesAreInvalidArgumentAndWriteNothing) {
  const int64_t before = static_cast<int64_t>(db_->CurrentRevision());
  EXPECT_EQ(Put("k", "v", -1).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Put("k", "v", 3600 * 1000 + 1).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Put("k", "v", 0, -5).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GrantStatus(0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GrantStatus(3601).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GrantStatus(10, -1).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Revoke(0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(KeepAlive(-1).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(static_cast<int64_t>(db_->CurrentRevision()), before);
  EXPECT_EQ(Get("k"), "<missing>");
}

TEST_F(ExpiryServerTest, UnknownLeaseIsNotFoundAndNothingIsWritten) {
  const int64_t before = static_cast<int64_t>(db_->CurrentRevision());
  grpc::Status s = Put("k", "v", 0, 12345);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("lease 12345"), std::string::npos);
  // In a Write, one bad mutation fails all of them.
  v1::WriteRequest req;
  auto* ok = req.add_mutations()->mutable_put();
  ok->set_key("a");
  ok->set_value("1");
  auto* bad = req.add_mutations()->mutable_put();
  bad->set_key("b");
  bad->set_value("2");
  bad->set_lease(12345);
  v1::WriteResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  EXPECT_EQ(stub_->Write(&ctx, req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(static_cast<int64_t>(db_->CurrentRevision()), before);
  EXPECT_EQ(Scan(), "");
  EXPECT_EQ(KeepAlive(12345).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Revoke(12345).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::LeaseTimeToLiveResponse ttl;
  EXPECT_EQ(TimeToLive(12345, false, &ttl).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ExpiryServerTest, ALeaseOf1000KeysExpiresInOneRevisionOf1000Deletes) {
  const int64_t id = Grant(10);
  ASSERT_GT(id, 0);
  v1::WriteRequest req;
  for (int i = 0; i < 1000; ++i) {
    auto* p = req.add_mutations()->mutable_put();
    p->set_key(absl::StrFormat("lease/%04d", i));
    p->set_value("v");
    p->set_lease(id);
  }
  {
    v1::WriteResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->Write(&ctx, req, &resp).ok());
  }
  ASSERT_TRUE(Put("other", "stays").ok());
  v1::LeaseTimeToLiveResponse ttl;
  ASSERT_TRUE(TimeToLive(id, true, &ttl).ok());
  EXPECT_EQ(ttl.ttl_seconds(), 10);
  EXPECT_EQ(ttl.granted_ttl(), 10);
  EXPECT_EQ(ttl.keys_size(), 1000);
  EXPECT_EQ(ttl.keys(0), "lease/0000");
  EXPECT_EQ(Leases(), std::vector<int64_t>{id});

  // A watcher from the next revision on.
  const int64_t from = static_cast<int64_t>(db_->CurrentRevision()) + 1;
  clock_.Advance(10'000);
  // Past the deadline: gone for every read before the expirer runs.
  EXPECT_EQ(Get("lease/0000"), "<missing>");
  EXPECT_EQ(Scan(), "other=stays,");
  EXPECT_TRUE(Leases().empty());
  EXPECT_EQ(TimeToLive(id, false, &ttl).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(KeepAlive(id).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Put("late", "x", 0, id).error_code(), grpc::StatusCode::NOT_FOUND);

  const ExpiryRound round = Expire();
  EXPECT_EQ(round.leases_expired, 1);
  EXPECT_EQ(round.lease_keys_deleted, 1000);
  EXPECT_EQ(static_cast<int64_t>(db_->CurrentRevision()), from);  // One.
  const std::vector<v1::Event> events = EventsSince(from);
  ASSERT_EQ(events.size(), 1000u);
  for (const v1::Event& e : events) {
    EXPECT_EQ(e.type(), v1::Event::DELETE);
    EXPECT_EQ(e.kv().mod_revision(), from);
  }
  EXPECT_EQ(Get("other"), "stays");
  EXPECT_EQ(Revoke(id).error_code(), grpc::StatusCode::NOT_FOUND);
}

// What TiKV users report missing: the disk space of expired keys comes back.
// The expirer deletes them with tombstones; once the deletions leave the
// history window (here: CompactHistory to the current revision, what
// --history_retention does on its own after its window) compaction drops the
// values and the tombstones, and the SSTables shrink to the live keys.
TEST_F(ExpiryServerTest, ExpiredKeysSpaceIsReclaimedByCompaction) {
  constexpr int kExpiring = 2000;
  constexpr int kStaying = 100;
  constexpr size_t kValueBytes = 4096;
  std::mt19937_64 rng(17);
  auto random_value = [&] {
    std::string v(kValueBytes, '\0');
    for (char& c : v) c = static_cast<char>(rng());  // Incompressible.
    return v;
  };
  for (int batch = 0; batch < (kExpiring + kStaying) / 100; ++batch) {
    v1::WriteRequest req;
    for (int i = batch * 100; i < (batch + 1) * 100; ++i) {
      auto* p = req.add_mutations()->mutable_put();
      p->set_key(absl::StrFormat("k%05d", i));
      p->set_value(random_value());
      if (i % ((kExpiring + kStaying) / kStaying) != 0) p->set_ttl_ms(1000);
    }
    v1::WriteResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->Write(&ctx, req, &resp).ok());
  }
  ASSERT_OK(db_->Flush());
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  const uint64_t before = db_->GetStatistics().levels.live_sst_bytes;
  EXPECT_GE(before, (kExpiring + kStaying) * kValueBytes);

  clock_.Advance(1000);
  int64_t deleted = 0;
  for (int round = 0; round < 10 && deleted < kExpiring; ++round) {
    deleted += Expire().ttl_keys_deleted;
  }
  ASSERT_EQ(deleted, kExpiring);
  ASSERT_OK(db_->CompactHistory(db_->CurrentRevision()));
  ASSERT_OK(db_->Flush());
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  const uint64_t after = db_->GetStatistics().levels.live_sst_bytes;
  RecordProperty("live_sst_bytes_before", std::to_string(before));
  RecordProperty("live_sst_bytes_after", std::to_string(after));
  // The staying keys' values, plus block and index overhead.
  EXPECT_GE(after, kStaying * kValueBytes);
  EXPECT_LT(after, 2 * kStaying * kValueBytes)
      << "before " << before << " bytes, after " << after << " bytes";
  EXPECT_EQ(Get("k00000").size(), kValueBytes);
  EXPECT_EQ(Get("k00001"), "<missing>");
}

// A namespace's usage (ListNamespaces, the quotas) follows expiry: a key
// whose TTL or lease ends leaves the record when the expirer deletes it, and
// a quota that was full takes writes again. (The accounting reads what is
// stored; reads already hid the expired keys.)
TEST_F(ExpiryServerTest, ExpiredKeysLeaveTheirNamespacesUsage) {
  {
    v1::CreateNamespaceRequest req;
    req.set_name("sessions");
    req.set_quota_keys(2);
    v1::CreateNamespaceResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub_->CreateNamespace(&ctx, req, &resp).ok());
  }
  auto usage = [&]() -> int64_t {
    v1::ListNamespacesRequest req;
    req.set_prefix("sessions");
    v1::ListNamespacesResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub_->ListNamespaces(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.namespaces_size() == 1
               ? static_cast<int64_t>(resp.namespaces(0).approximate_keys())
               : -1;
  };
  auto put = [&](const std::string& k, int64_t ttl_ms, int64_t lease) {
    v1::PutRequest req;
    req.set_namespace_("sessions");
    req.set_key(k);
    req.set_value("v");
    req.set_ttl_ms(ttl_ms);
    req.set_lease(lease);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub_->Put(&ctx, req, &resp);
  };
  const int64_t lease = Grant(5);
  ASSERT_TRUE(put("ttl", 1000, 0).ok());
  ASSERT_TRUE(put("leased", 0, lease).ok());
  EXPECT_EQ(usage(), 2);
  EXPECT_EQ(put("third", 0, 0).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  clock_.Advance(1000);
  EXPECT_EQ(Expire().ttl_keys_deleted, 1);
  EXPECT_EQ(usage(), 1);
  clock_.Advance(4000);
  EXPECT_EQ(Expire().lease_keys_deleted, 1);
  EXPECT_EQ(usage(), 0);
  ASSERT_TRUE(put("third", 0, 0).ok());
  ASSERT_TRUE(put("fourth", 0, 0).ok());
  EXPECT_EQ(usage(), 2);
}

TEST_F(ExpiryServerTest, KeepAliveKeepsTheKeys) {
  const int64_t id = Grant(10);
  ASSERT_TRUE(Put("k", "v", 0, id).ok());
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(6'000);
    ASSERT_TRUE(KeepAlive(id).ok()) << i;
    Expire();
    EXPECT_EQ(Get("k"), "v") << i;
  }
  v1::LeaseTimeToLiveResponse ttl;
  ASSERT_TRUE(TimeToLive(id, false, &ttl).ok());
  EXPECT_EQ(ttl.ttl_seconds(), 10);
  clock_.Advance(9'999);
  EXPECT_EQ(Get("k"), "v");
  clock_.Advance(1);
  EXPECT_EQ(Get("k"), "<missing>");
  EXPECT_EQ(KeepAlive(id).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ExpiryServerTest, RevokeDeletesAtOnceAtOneRevision) {
  const int64_t id = Grant(100);
  const int64_t other = Grant(100);
  ASSERT_TRUE(Put("a", "1", 0, id).ok());
  ASSERT_TRUE(Put("b", "2", 0, id).ok());
  ASSERT_TRUE(Put("c", "3", 0, other).ok());
  // b is overwritten without a lease: no longer attached.
  ASSERT_TRUE(Put("b", "mine").ok());
  int64_t r = 0;
  ASSERT_TRUE(Revoke(id, &r).ok());
  EXPECT_EQ(r, static_cast<int64_t>(db_->CurrentRevision()));
  EXPECT_EQ(Scan(), "b=mine,c=3,");
  const std::vector<v1::Event> events = EventsSince(r);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kv().key(), "a");
  EXPECT_EQ(events[0].type(), v1::Event::DELETE);
  EXPECT_EQ(Revoke(id).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Leases(), std::vector<int64_t>{other});
  // Its id may be granted again: a new lease, with nothing attached.
  EXPECT_EQ(Grant(5, id), id);
  v1::LeaseTimeToLiveResponse ttl;
  ASSERT_TRUE(TimeToLive(id, true, &ttl).ok());
  EXPECT_EQ(ttl.keys_size(), 0);
}

TEST_F(ExpiryServerTest, LimitsOnLeasesAndKeysPerLease) {
  Stop();
  max_leases_ = 2;
  max_keys_per_lease_ = 2;
  Start();
  const int64_t id = Grant(100);
  Grant(100);
  EXPECT_EQ(GrantStatus(100).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(GrantStatus(100, id).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  ASSERT_TRUE(Put("a", "1", 0, id).ok());
  ASSERT_TRUE(Put("b", "1", 0, id).ok());
  ASSERT_TRUE(Put("a", "2", 0, id).ok());  // Already attached: no new key.
  EXPECT_EQ(Put("c", "1", 0, id).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Get("c"), "<missing>");
  // Detaching one (an overwrite without the lease) makes room.
  ASSERT_TRUE(Put("a", "3").ok());
  ASSERT_TRUE(Put("c", "1", 0, id).ok());
}

TEST_F(ExpiryServerTest, GrantsAttachmentsAndDeadlinesSurviveARestart) {
  const int64_t live = Grant(30);
  const int64_t revoked = Grant(30);
  const int64_t short_lived = Grant(5);
  ASSERT_TRUE(Put("live", "1", 0, live).ok());
  ASSERT_TRUE(Put("revoked", "1", 0, revoked).ok());
  ASSERT_TRUE(Put("short", "1", 0, short_lived).ok());
  ASSERT_TRUE(Put("ttl", "1", 20'000).ok());
  ASSERT_TRUE(Revoke(revoked).ok());
  clock_.Advance(10'000);  // live: 20 s left; short_lived: expired.
  EXPECT_EQ(Get("short"), "<missing>");
  Restart();  // The expirer never ran before the stop.
  EXPECT_EQ(Get("revoked"), "<missing>");
  EXPECT_EQ(Revoke(revoked).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Get("short"), "<missing>");  // Expired before: stays expired.
  EXPECT_EQ(Get("live"), "1");
  v1::LeaseTimeToLiveResponse ttl;
  ASSERT_TRUE(TimeToLive(live, true, &ttl).ok());
  EXPECT_EQ(ttl.ttl_seconds(), 30);  // Full TTL again from the restart.
  ASSERT_EQ(ttl.keys_size(), 1);
  ASSERT_TRUE(KeepAlive(live).ok());
  const ExpiryRound round = Expire();
  EXPECT_EQ(round.leases_expired, 1);  // short_lived.
  EXPECT_EQ(round.lease_keys_deleted, 1);
  EXPECT_EQ(Get("live"), "1");
  clock_.Advance(10'000);  // The TTL key's own deadline holds across restarts.
  EXPECT_EQ(Get("ttl"), "<missing>");
  EXPECT_EQ(Expire().ttl_keys_deleted, 1);
  Restart();  // The extension was durable: still alive 10 s later.
  EXPECT_EQ(Get("live"), "1");
  clock_.Advance(30'000);
  EXPECT_EQ(Get("live"), "<missing>");
  Restart();  // Expired while running: never comes back.
  EXPECT_EQ(Get("live"), "<missing>");
  EXPECT_EQ(Expire().leases_expired, 1);
  EXPECT_TRUE(Leases().empty());
}

// The randomized model test: puts (plain, TTL, leased), deletes, grants,
// keep-alives, revokes, simulated time and expirer rounds against a model of
// what must be visible.
TEST_F(ExpiryServerTest, ModelWithSimulatedTime) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrFormat("seed %d", seed));
  std::mt19937 rng(seed);
  struct Key {
    std::string value;
    uint64_t expire_at = 0;  // 0 = none.
    int64_t lease = 0;
  };
  struct Lease {
    int64_t ttl_ms;
    uint64_t deadline;
    bool ended = false;
  };
  std::map<std::string, Key> keys;
  std::map<int64_t, Lease> leases;
  auto now = [&] { return clock_.now_unix_ms.load(); };
  auto visible = [&](const Key& k) {
    if (k.expire_at != 0 && k.expire_at <= now()) return false;
    if (k.lease == 0) return true;
    const Lease& l = leases.at(k.lease);
    return !l.ended && l.deadline > now();
  };
  auto end_lease = [&](int64_t id) {
    leases[id].ended = true;
    for (auto it = keys.begin(); it != keys.end();) {
      it = it->second.lease == id ? keys.erase(it) : std::next(it);
    }
  };
  auto pick_lease = [&]() -> int64_t {
    if (leases.empty()) return 777;  // Never granted.
    auto it = leases.begin();
    std::advance(it, rng() % leases.size());
    return it->first;
  };
  for (int step = 0; step < 600; ++step) {
    const std::string key = absl::StrFormat("k%02d", rng() % 20);
    const int op = static_cast<int>(rng() % 100);
    SCOPED_TRACE(absl::StrFormat("step %d op %d key %s", step, op, key));
    if (op < 20) {
      ASSERT_TRUE(Put(key, std::to_string(step)).ok());
      keys[key] = {std::to_string(step), 0, 0};
    } else if (op < 40) {
      const int64_t ttl = 1 + rng() % 3000;
      ASSERT_TRUE(Put(key, std::to_string(step), ttl).ok());
      keys[key] = {std::to_string(step), now() + ttl, 0};
    } else if (op < 52) {
      const int64_t id = pick_lease();
      const bool live = leases.count(id) && !leases[id].ended &&
                        leases[id].deadline > now();
      const int64_t ttl = rng() % 2 ? 0 : 1 + rng() % 3000;
      grpc::Status s = Put(key, std::to_string(step), ttl, id);
      ASSERT_EQ(s.ok(), live) << s.error_message();
      if (live) {
        keys[key] = {std::to_string(step), ttl ? now() + ttl : 0, id};
      }
    } else if (op < 58) {
      v1::DeleteRequest req;
      req.set_key(key);
      v1::DeleteResponse resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      ASSERT_TRUE(stub_->Delete(&ctx, req, &resp).ok());
      keys.erase(key);
    } else if (op < 64) {
      const int64_t ttl_s = 1 + rng() % 4;
      const int64_t id = Grant(ttl_s);
      leases[id] = {ttl_s * 1000, now() + ttl_s * 1000};
    } else if (op < 72) {
      const int64_t id = pick_lease();
      const bool live = leases.count(id) && !leases[id].ended &&
                        leases[id].deadline > now();
      ASSERT_EQ(KeepAlive(id).ok(), live);
      if (live) leases[id].deadline = now() + leases[id].ttl_ms;
    } else if (op < 76) {
      const int64_t id = pick_lease();
      // A lease past its deadline that the expirer has not ended yet may
      // still be revoked (its keys are already invisible).
      const bool exists = leases.count(id) && !leases[id].ended;
      ASSERT_EQ(Revoke(id).ok(), exists);
      if (exists) end_lease(id);
    } else if (op < 90) {
      clock_.Advance(rng() % 700);
    } else {
      const ExpiryRound round = Expire();
      (void)round;
      for (auto& [id, l] : leases) {
        if (!l.ended && l.deadline <= now()) end_lease(id);
      }
      for (auto it = keys.begin(); it != keys.end();) {
        it = visible(it->second) ? std::next(it) : keys.erase(it);
      }
    }
    if (step % 10 == 0 || op >= 90) {
      std::string want;
      for (const auto& [k, v] : keys) {
        if (visible(v)) want += k + "=" + v.value + ",";
      }
      ASSERT_EQ(Scan(), want);
      for (int i = 0; i < 20; ++i) {
        const std::string k = absl::StrFormat("k%02d", i);
        auto it = keys.find(k);
        ASSERT_EQ(Get(k), it != keys.end() && visible(it->second)
                              ? it->second.value
                              : "<missing>")
            << k;
      }
      std::vector<int64_t> live_leases;
      for (const auto& [id, l] : leases) {
        if (!l.ended && l.deadline > now()) live_leases.push_back(id);
      }
      ASSERT_EQ(Leases(), live_leases);
    }
    if (step == 300) {
      Restart();
      // A restart gives every live lease its full TTL again.
      for (auto& [id, l] : leases) {
        if (!l.ended && l.deadline > now()) l.deadline = now() + l.ttl_ms;
      }
    }
  }
}

}  // namespace
}  // namespace strata::server
