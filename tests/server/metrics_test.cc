// /metrics end to end: a real KvServer on a real DB with the MetricsServer
// on 127.0.0.1 port 0, scraped over HTTP and parsed; plus unit tests of the
// collectors and the strata-server binary's --metrics_listen flag.

#include "server/metrics/metrics_server.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "server/kv_server.h"
#include "server/metrics/connection_collector.h"
#include "server/metrics/engine_collector.h"
#include "server/metrics/families.h"
#include "server/metrics/rpc_metrics.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/server/metrics_text.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::server::metrics {
namespace {

using ::strata::testing::Exposition;
using ::strata::testing::HttpGet;
using ::strata::testing::LabelList;
using ::strata::testing::ParseExposition;
using ::strata::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kWait = absl::Seconds(20);

// Forwards to the metrics observer, then lets the test wait until a number
// of RPCs have ended (the server calls OnRpcEnd after the client already
// has its reply, so a scrape right after an RPC could miss it).
class EndWaiter : public RpcObserver {
 public:
  explicit EndWaiter(RpcObserver* inner) : inner_(inner) {}
  void OnRpcStart(std::string_view method) override {
    inner_->OnRpcStart(method);
  }
  void OnRpcEnd(std::string_view method, grpc::StatusCode code,
                double seconds, size_t request_bytes,
                size_t response_bytes) override {
    inner_->OnRpcEnd(method, code, seconds, request_bytes, response_bytes);
    absl::MutexLock l(&mu_);
    ++ends_;
  }
  void OnNamespaceRpcEnd(std::string_view ns, std::string_view method,
                         grpc::StatusCode code) override {
    inner_->OnNamespaceRpcEnd(ns, method, code);
  }
  // True once at least n RPCs have ended (false after kWait).
  bool WaitForEnds(int64_t n) {
    absl::MutexLock l(&mu_);
    auto done = [&] {
      mu_.AssertHeld();
      return ends_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), kWait);
  }

 private:
  RpcObserver* const inner_;
  absl::Mutex mu_;
  int64_t ends_ ABSL_GUARDED_BY(mu_) = 0;
};

storage::Options EngineOptions() {
  storage::Options o;
  o.block_cache_bytes = 1 << 20;
  return o;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { strata::testing::PinGrpcLibrary(); }

  void StartServer(
      ServerOptions options = strata::testing::TestServerOptions(),
      size_t namespace_limit = MetricsServer::kDefaultNamespaceLimit) {
    ASSERT_OK_AND_ASSIGN(db_, storage::DB::Open(EngineOptions(),
                                                dir_.path() + "/db"));
    metrics_ = std::make_unique<MetricsServer>(
        db_.get(), BuildInfo{"9.9.9-test", "abc123def456"}, namespace_limit);
    ASSERT_OK(metrics_->Listen("127.0.0.1:0"));
    ASSERT_GT(metrics_->port(), 0);
    waiter_ = std::make_unique<EndWaiter>(metrics_->rpc_observer());
    server_ = std::make_unique<KvServer>(std::move(options), db_.get(),
                                         waiter_.get());
    ASSERT_OK(server_->Start());
    stub_ = v1::KV::NewStub(grpc::CreateChannel(
        server_->bound_address(), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    server_.reset();
    metrics_.reset();  // Before the DB: scrapes read it.
    db_.reset();
  }

  // Scrapes over HTTP, checks the response and parses it.
  Exposition Scrape() {
    auto r = HttpGet(metrics_->port(), "/metrics");
    EXPECT_OK(r);
    if (!r.ok()) return {};
    EXPECT_EQ(r->status, 200);
    auto e = ParseExposition(r->body);
    EXPECT_OK(e);
    return e.ok() ? *std::move(e) : Exposition{};
  }

  // Waits until every RPC issued so far has been recorded.
  void WaitForRecordedRpcs() { ASSERT_TRUE(waiter_->WaitForEnds(rpcs_)); }

  grpc::Status Put(const std::string& key, const std::string& value,
                   size_t* request_bytes = nullptr,
                   size_t* response_bytes = nullptr) {
    v1::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    ++rpcs_;
    if (request_bytes) *request_bytes += req.ByteSizeLong();
    grpc::Status s = stub_->Put(&ctx, req, &resp);
    if (response_bytes && s.ok()) *response_bytes += resp.ByteSizeLong();
    return s;
  }
  grpc::Status Get(const std::string& key, size_t* request_bytes,
                   size_t* response_bytes) {
    v1::GetRequest req;
    req.set_key(key);
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    ++rpcs_;
    *request_bytes += req.ByteSizeLong();
    grpc::Status s = stub_->Get(&ctx, req, &resp);
    if (s.ok()) *response_bytes += resp.ByteSizeLong();
    return s;
  }

  TempDir dir_;
  std::unique_ptr<storage::DB> db_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<EndWaiter> waiter_;
  std::unique_ptr<KvServer> server_;
  std::unique_ptr<v1::KV::Stub> stub_;
  int64_t rpcs_ = 0;
};

LabelList MC(const std::string& method, const std::string& code) {
  return {{"method", method}, {"code", code}};
}
LabelList M(const std::string& method) { return {{"method", method}}; }

// ---- docs/metrics.md ----------------------------------------------------

// docs/metrics.md, or "" (with a test failure) if it cannot be read.
std::string ReadMetricsDoc() {
  std::ifstream in(std::string(STRATA_SOURCE_DIR) + "/docs/metrics.md");
  EXPECT_TRUE(in) << "docs/metrics.md missing";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The metric families a document lists, name -> type: one table row
// "| `name` | type | ..." each (labels in braces after the name are
// ignored). With `section`, only the rows under the heading
// "### <section>" (up to the next "##" or "###" heading).
std::map<std::string, std::string> DocumentedFamilies(
    const std::string& doc, const std::string& section = "") {
  static const std::regex kRow(
      R"(^\| `([a-z0-9_]+)(\{[^`]*\})?` \| (counter|gauge|histogram|summary) \|.*)");
  std::map<std::string, std::string> out;
  bool in_section = section.empty();
  std::istringstream lines(doc);
  for (std::string line; std::getline(lines, line);) {
    if (!section.empty() && (line.rfind("## ", 0) == 0 ||
                             line.rfind("### ", 0) == 0)) {
      in_section = line == "### " + section;
    }
    std::smatch m;
    if (in_section && std::regex_match(line, m, kRow)) out[m[1]] = m[3];
  }
  return out;
}

// Where `exported` and `documented` (both name -> type) disagree, one line
// each; empty when every exported family is documented with its type and
// every documented one is exported.
std::vector<std::string> DocMismatches(
    const std::map<std::string, std::string>& exported,
    const std::map<std::string, std::string>& documented) {
  std::vector<std::string> out;
  for (const auto& [name, type] : exported) {
    auto it = documented.find(name);
    if (it == documented.end()) {
      out.push_back(name + " is exported but not in docs/metrics.md");
    } else if (it->second != type) {
      out.push_back(name + " is exported as a " + type +
                    " but documented as a " + it->second);
    }
  }
  for (const auto& [name, type] : documented) {
    if (!exported.count(name)) {
      out.push_back(name + " is in docs/metrics.md but not exported");
    }
  }
  return out;
}

std::string TypeName(prometheus::MetricType type) {
  switch (type) {
    case prometheus::MetricType::Counter:
      return "counter";
    case prometheus::MetricType::Gauge:
      return "gauge";
    case prometheus::MetricType::Histogram:
      return "histogram";
    case prometheus::MetricType::Summary:
      return "summary";
    case prometheus::MetricType::Untyped:
      break;
  }
  return "untyped";
}

// The engine collector's table as name -> type.
std::map<std::string, std::string> EngineTable() {
  std::map<std::string, std::string> out;
  for (const EngineMetric& m : EngineMetrics()) {
    out[std::string(m.name)] = TypeName(m.type);
  }
  return out;
}

double Delta(const Exposition& after, const Exposition& before,
             const std::string& name, const LabelList& labels = {}) {
  return after.ValueOr0(name, labels) - before.ValueOr0(name, labels);
}

TEST_F(MetricsTest, RpcCountersByMethodAndCodeAreExact) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Exposition before = Scrape();
  // Every method has its OK series (0) before any request; error codes
  // appear only once they happen.
  for (const char* m : {"Get", "Put", "Delete", "Scan", "Write", "Watch",
                        "Compact", "BatchGet", "DeleteRange", "Increment",
                        "JsonGet", "JsonUpdate"}) {
    EXPECT_EQ(before.Get("strata_rpc_requests_total", MC(m, "OK")), 0) << m;
    EXPECT_EQ(before.Get("strata_rpc_requests_in_flight", M(m)), 0) << m;
  }
  EXPECT_FALSE(
      before.Get("strata_rpc_requests_total", MC("Put", "INVALID_ARGUMENT")));
  EXPECT_EQ(before.Get("strata_get_coalesced_total", {}), 0);

  size_t put_in = 0, put_out = 0, get_in = 0, get_out = 0;
  ASSERT_TRUE(Put("a", "1", &put_in, &put_out).ok());
  ASSERT_TRUE(Put("b", "22", &put_in, &put_out).ok());
  ASSERT_TRUE(Put("c", "333", &put_in, &put_out).ok());
  EXPECT_EQ(Put("", "x", &put_in, &put_out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Get("a", &get_in, &get_out).ok());
  ASSERT_TRUE(Get("missing", &get_in, &get_out).ok());  // found=false is OK.
  EXPECT_EQ(Get("", &get_in, &get_out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  size_t delete_in = 0;
  {
    v1::DeleteRequest req;
    req.set_key("b");
    v1::DeleteResponse resp;
    grpc::ClientContext ctx;
    ++rpcs_;
    delete_in += req.ByteSizeLong();
    ASSERT_TRUE(stub_->Delete(&ctx, req, &resp).ok());
  }
  size_t write_in = 0;
  {
    v1::WriteRequest req;
    req.add_mutations()->mutable_put()->set_key("d");
    req.add_mutations()->mutable_delete_()->set_key("c");
    v1::WriteResponse resp;
    grpc::ClientContext ctx;
    ++rpcs_;
    write_in += req.ByteSizeLong();
    ASSERT_TRUE(stub_->Write(&ctx, req, &resp).ok());
  }
  {
    v1::WriteRequest req;
    req.add_mutations();  // No operation: INVALID_ARGUMENT.
    v1::WriteResponse resp;
    grpc::ClientContext ctx;
    ++rpcs_;
    write_in += req.ByteSizeLong();
    EXPECT_EQ(stub_->Write(&ctx, req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  size_t scan_in = 0, scan_out = 0;
  int pairs = 0;
  {
    v1::ScanRequest req;
    grpc::ClientContext ctx;
    ++rpcs_;
    scan_in += req.ByteSizeLong();
    auto reader = stub_->Scan(&ctx, req);
    v1::ScanResponse resp;
    while (reader->Read(&resp)) {
      scan_out += resp.ByteSizeLong();
      pairs += resp.pairs_size();
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  EXPECT_EQ(pairs, 2);  // a, d.
  WaitForRecordedRpcs();
  const Exposition after = Scrape();

  const std::string req = "strata_rpc_requests_total";
  EXPECT_EQ(Delta(after, before, req, MC("Put", "OK")), 3);
  EXPECT_EQ(Delta(after, before, req, MC("Put", "INVALID_ARGUMENT")), 1);
  EXPECT_EQ(Delta(after, before, req, MC("Get", "OK")), 2);
  EXPECT_EQ(Delta(after, before, req, MC("Get", "INVALID_ARGUMENT")), 1);
  EXPECT_EQ(Delta(after, before, req, MC("Delete", "OK")), 1);
  EXPECT_EQ(Delta(after, before, req, MC("Write", "OK")), 1);
  EXPECT_EQ(Delta(after, before, req, MC("Write", "INVALID_ARGUMENT")), 1);
  EXPECT_EQ(Delta(after, before, req, MC("Scan", "OK")), 1);
  // No other series appeared: 24 OK (one per method, Backup and the
  // namespace RPCs included) + 3 INVALID_ARGUMENT.
  EXPECT_EQ(after.Series(req).size(), 27u);
  EXPECT_FALSE(after.Get(req, MC("other", "OK")));

  const std::string dur = "strata_rpc_duration_seconds";
  const std::map<std::string, int> per_method = {
      {"Put", 4}, {"Get", 3}, {"Delete", 1}, {"Write", 2}, {"Scan", 1}};
  for (const auto& [method, n] : per_method) {
    EXPECT_EQ(Delta(after, before, dur + "_count", M(method)), n) << method;
    EXPECT_EQ(after.Get(dur + "_bucket", {{"method", method}, {"le", "+Inf"}}),
              n)
        << method;
    EXPECT_GT(Delta(after, before, dur + "_sum", M(method)), 0) << method;
    EXPECT_EQ(after.Get("strata_rpc_requests_in_flight", M(method)), 0);
  }
  // Bucket bounds 50 µs .. 10 s, cumulative counts.
  std::vector<std::pair<double, double>> buckets;
  for (const auto& [labels, value] : after.Series(dur + "_bucket")) {
    std::string method, le;
    for (const auto& [k, v] : labels) (k == "method" ? method : le) = v;
    if (method != "Put") continue;
    buckets.push_back({std::strtod(le.c_str(), nullptr), value});
  }
  std::sort(buckets.begin(), buckets.end());
  ASSERT_EQ(buckets.size(), kRpcDurationBounds.size() + 1);
  EXPECT_DOUBLE_EQ(buckets.front().first, 50e-6);
  EXPECT_DOUBLE_EQ(buckets[buckets.size() - 2].first, 10);
  EXPECT_TRUE(std::isinf(buckets.back().first));
  for (size_t i = 1; i < buckets.size(); ++i) {
    EXPECT_LE(buckets[i - 1].second, buckets[i].second);
  }

  // Message bytes, exactly as serialized (errors send no message).
  EXPECT_EQ(Delta(after, before, "strata_rpc_received_bytes_total", M("Put")),
            put_in);
  EXPECT_EQ(Delta(after, before, "strata_rpc_received_bytes_total", M("Get")),
            get_in);
  EXPECT_EQ(
      Delta(after, before, "strata_rpc_received_bytes_total", M("Delete")),
      delete_in);
  EXPECT_EQ(
      Delta(after, before, "strata_rpc_received_bytes_total", M("Write")),
      write_in);
  EXPECT_EQ(Delta(after, before, "strata_rpc_received_bytes_total", M("Scan")),
            scan_in);
  EXPECT_EQ(Delta(after, before, "strata_rpc_sent_bytes_total", M("Get")),
            get_out);
  EXPECT_GT(get_out, 0u);
  EXPECT_EQ(Delta(after, before, "strata_rpc_sent_bytes_total", M("Scan")),
            scan_out);
  EXPECT_GT(scan_out, 0u);
  // A Put's reply is its header (the revision it committed at).
  EXPECT_EQ(Delta(after, before, "strata_rpc_sent_bytes_total", M("Put")),
            put_out);
  EXPECT_GT(put_out, 0u);
}

// Per-namespace series: the default namespace, then the first
// --metrics_namespace_limit namespaces seen to exist (an OK answer or the
// catalog), the rest (and names that do not exist) summed as "other"; keys
// and bytes from the usage records.
TEST_F(MetricsTest, PerNamespaceSeriesAreBoundedByTheLimit) {
  ASSERT_NO_FATAL_FAILURE(
      StartServer(strata::testing::TestServerOptions(), /*namespace_limit=*/2));
  for (const char* name : {"a", "b", "c"}) {
    v1::CreateNamespaceRequest req;
    req.set_name(name);
    v1::CreateNamespaceResponse resp;
    grpc::ClientContext ctx;
    ++rpcs_;
    ASSERT_TRUE(stub_->CreateNamespace(&ctx, req, &resp).ok());
  }
  auto put = [&](const std::string& ns, const std::string& key,
                 const std::string& value) {
    v1::PutRequest req;
    req.set_namespace_(ns);
    req.set_key(key);
    req.set_value(value);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    ++rpcs_;
    return stub_->Put(&ctx, req, &resp).error_code();
  };
  // "c" then "a" take the two slots; "b" comes too late; "nope" does not
  // exist (NOT_FOUND) and never gets one.
  ASSERT_EQ(put("c", "k1", "v1"), grpc::StatusCode::OK);
  ASSERT_EQ(put("c", "k2", "value"), grpc::StatusCode::OK);
  ASSERT_EQ(put("a", "k", "v"), grpc::StatusCode::OK);
  ASSERT_EQ(put("b", "kb", "vb"), grpc::StatusCode::OK);
  ASSERT_EQ(put("nope", "k", "v"), grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(put("", "k", "v"), grpc::StatusCode::OK);
  size_t unused = 0;
  ASSERT_TRUE(Get("k", &unused, &unused).ok());
  WaitForRecordedRpcs();

  const Exposition e = Scrape();
  const std::string req = "strata_namespace_requests_total";
  auto nmc = [](const std::string& ns, const std::string& method,
                const std::string& code) -> LabelList {
    return {{"namespace", ns}, {"method", method}, {"code", code}};
  };
  EXPECT_EQ(e.Get(req, nmc("c", "Put", "OK")), 2);
  EXPECT_EQ(e.Get(req, nmc("a", "Put", "OK")), 1);
  EXPECT_EQ(e.Get(req, nmc("other", "Put", "OK")), 1);  // "b"
  EXPECT_EQ(e.Get(req, nmc("other", "Put", "NOT_FOUND")), 1);  // "nope"
  EXPECT_EQ(e.Get(req, nmc("(default)", "Put", "OK")), 1);
  EXPECT_EQ(e.Get(req, nmc("(default)", "Get", "OK")), 1);
  EXPECT_EQ(e.Get("strata_namespace_keys", {{"namespace", "c"}}), 2);
  EXPECT_EQ(e.Get("strata_namespace_bytes", {{"namespace", "c"}}),
            std::string("k1v1k2value").size());
  EXPECT_EQ(e.Get("strata_namespace_keys", {{"namespace", "a"}}), 1);
  EXPECT_EQ(e.Get("strata_namespace_keys", {{"namespace", "other"}}), 1);
  EXPECT_EQ(e.Get("strata_namespace_bytes", {{"namespace", "other"}}), 4);
  // At most limit + 2 namespace label values, none of them "b" or "nope".
  std::set<std::string> seen;
  for (const char* family :
       {"strata_namespace_requests_total", "strata_namespace_keys",
        "strata_namespace_bytes"}) {
    for (const auto& [labels, value] : e.Series(family)) {
      for (const auto& [k, v] : labels) {
        if (k == "namespace") seen.insert(v);
      }
    }
  }
  EXPECT_EQ(seen, (std::set<std::string>{"(default)", "a", "c", "other"}));
}

TEST_F(MetricsTest, InFlightGaugeCountsAFrozenScan) {
  absl::Notification entered, release;
  ServerOptions options = strata::testing::TestServerOptions();
  options.TEST_before_scan_batch = [&](int, grpc::ServerContext*) {
    entered.Notify();
    release.WaitForNotificationWithTimeout(kWait);
  };
  ASSERT_NO_FATAL_FAILURE(StartServer(std::move(options)));
  ASSERT_TRUE(Put("k", "v").ok());
  WaitForRecordedRpcs();
  ++rpcs_;
  std::thread scan([&] {
    v1::ScanRequest req;
    grpc::ClientContext ctx;
    auto reader = stub_->Scan(&ctx, req);
    v1::ScanResponse resp;
    while (reader->Read(&resp)) {
    }
    EXPECT_TRUE(reader->Finish().ok());
  });
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(kWait));
  const Exposition during = Scrape();
  EXPECT_EQ(during.Get("strata_rpc_requests_in_flight", M("Scan")), 1);
  EXPECT_EQ(during.Get("strata_rpc_requests_in_flight", M("Put")), 0);
  release.Notify();
  scan.join();
  WaitForRecordedRpcs();
  const Exposition after = Scrape();
  EXPECT_EQ(after.Get("strata_rpc_requests_in_flight", M("Scan")), 0);
  EXPECT_EQ(after.Get("strata_rpc_requests_total", MC("Scan", "OK")), 1);
}

TEST_F(MetricsTest, EngineCountersFollowWritesFlushAndCompaction) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Exposition before = Scrape();
  EXPECT_EQ(before.Get("strata_block_cache_capacity_bytes"), 1 << 20);
  EXPECT_EQ(before.Get("strata_write_stall_state", {{"state", "none"}}), 1);
  EXPECT_EQ(before.Get("strata_write_stall_state", {{"state", "stop"}}), 0);
  EXPECT_EQ(before.Get("strata_level_files", {{"level", "0"}}), 0);
  EXPECT_EQ(before.Get("strata_live_sst_bytes"), 0);

  // Sequential writes: each is its own group commit, WAL record and fsync.
  constexpr int kKeys = 40;
  size_t user_bytes = 0;
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = absl::StrFormat("key%03d", i);
    const std::string value(100, static_cast<char>('a' + i % 26));
    user_bytes += key.size() + value.size();
    ASSERT_TRUE(Put(key, value).ok());
  }
  WaitForRecordedRpcs();
  const Exposition written = Scrape();
  EXPECT_EQ(Delta(written, before, "strata_wal_records_total"), kKeys);
  EXPECT_EQ(Delta(written, before, "strata_wal_syncs_total"), kKeys);
  EXPECT_EQ(Delta(written, before, "strata_wal_sync_duration_seconds_count"),
            kKeys);
  EXPECT_EQ(Delta(written, before, "strata_wal_writes_per_group_commit_count"),
            kKeys);
  EXPECT_EQ(Delta(written, before, "strata_wal_writes_per_group_commit_sum"),
            kKeys);
  EXPECT_GT(Delta(written, before, "strata_wal_appended_bytes_total"),
            user_bytes);
  EXPECT_EQ(Delta(written, before, "strata_write_keys_total"), kKeys);
  EXPECT_EQ(Delta(written, before, "strata_write_user_bytes_total"),
            user_bytes);
  EXPECT_GT(written.ValueOr0("strata_memtable_active_bytes"), user_bytes);

  ASSERT_OK(db_->Flush());
  const Exposition flushed = Scrape();
  EXPECT_EQ(Delta(flushed, before, "strata_flushes_total"), 1);
  EXPECT_EQ(Delta(flushed, before, "strata_flush_duration_seconds_count"), 1);
  EXPECT_GT(Delta(flushed, before, "strata_flush_written_bytes_total"), 0);
  EXPECT_EQ(flushed.Get("strata_level_files", {{"level", "0"}}), 1);
  EXPECT_GT(flushed.ValueOr0("strata_level_bytes", {{"level", "0"}}), 0);
  EXPECT_EQ(flushed.Get("strata_live_sst_bytes"),
            flushed.Get("strata_level_bytes", {{"level", "0"}}));
  EXPECT_EQ(flushed.Get("strata_memtable_immutable"), 0);

  for (int i = 0; i < kKeys; i += 2) {
    ASSERT_TRUE(Put(absl::StrFormat("key%03d", i), "new").ok());
  }
  ASSERT_OK(db_->Flush());
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  WaitForRecordedRpcs();
  const Exposition compacted = Scrape();
  EXPECT_EQ(Delta(compacted, before, "strata_flushes_total"), 2);
  const double compactions =
      Delta(compacted, before, "strata_compactions_total");
  EXPECT_GE(compactions, 1);
  EXPECT_EQ(Delta(compacted, before, "strata_compaction_duration_seconds_count"),
            compactions);
  EXPECT_GT(Delta(compacted, before, "strata_compaction_read_bytes_total"), 0);
  EXPECT_GT(Delta(compacted, before, "strata_compaction_written_bytes_total"),
            0);
  EXPECT_EQ(compacted.Get("strata_level_files", {{"level", "0"}}), 0);
  double files = 0, bytes = 0;
  for (const auto& [labels, v] : compacted.Series("strata_level_files")) {
    files += v;
  }
  for (const auto& [labels, v] : compacted.Series("strata_level_bytes")) {
    bytes += v;
  }
  EXPECT_GE(files, 1);
  EXPECT_EQ(bytes, compacted.ValueOr0("strata_live_sst_bytes"));
  EXPECT_EQ(compacted.Series("strata_level_files").size(),
            db_->GetStatistics().levels.per_level.size());
  EXPECT_TRUE(compacted.Get("strata_compaction_pending_bytes"));
  EXPECT_EQ(compacted.Get("strata_background_errors_total"), 0);

  // Reads now go to the SSTable: the engine, cache, table cache and bloom
  // filter counters move.
  size_t in = 0, out = 0;
  ASSERT_TRUE(Get("key001", &in, &out).ok());
  ASSERT_TRUE(Get("key001", &in, &out).ok());
  ASSERT_TRUE(Get("nope", &in, &out).ok());
  WaitForRecordedRpcs();
  const Exposition read = Scrape();
  EXPECT_GE(Delta(read, compacted, "strata_engine_gets_total"), 3);
  EXPECT_GE(Delta(read, compacted, "strata_bloom_filter_checks_total"), 2);
  EXPECT_GE(Delta(read, compacted, "strata_block_cache_hits_total") +
                Delta(read, compacted, "strata_block_cache_misses_total"),
            2);
  EXPECT_GE(Delta(read, compacted, "strata_table_cache_hits_total") +
                Delta(read, compacted, "strata_table_cache_misses_total"),
            2);
  EXPECT_GT(read.ValueOr0("strata_block_cache_usage_bytes"), 0);
}

TEST_F(MetricsTest, BuildInfoAndProcessMetrics) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const Exposition e = Scrape();
  EXPECT_EQ(e.Get("strata_build_info",
                  {{"version", "9.9.9-test"}, {"git_sha", "abc123def456"}}),
            1);
  EXPECT_EQ(e.Series("strata_build_info").size(), 1u);
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  const double start = e.ValueOr0("process_start_time_seconds");
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 24 * 3600);
  EXPECT_GT(e.ValueOr0("process_open_fds"), 3);
  EXPECT_GE(e.ValueOr0("process_max_fds"), e.ValueOr0("process_open_fds"));
  EXPECT_GT(e.ValueOr0("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(e.ValueOr0("process_virtual_memory_bytes"),
            e.ValueOr0("process_resident_memory_bytes"));
  // A fresh test process may not have used a whole clock tick yet.
  EXPECT_GE(e.Get("process_cpu_seconds_total").value_or(-1), 0);

  // Open fds are counted live: 16 more files show up in the next scrape
  // (give or take a few that the engine's and gRPC's own threads may open or
  // close between the two scrapes).
  const double fds = Scrape().ValueOr0("process_open_fds");
  std::vector<int> extra;
  for (int i = 0; i < 16; ++i) {
    extra.push_back(dup(0));
    ASSERT_GE(extra.back(), 0);
  }
  EXPECT_NEAR(Scrape().ValueOr0("process_open_fds") - fds, 16, 3);
  for (int fd : extra) close(fd);
}

TEST_F(MetricsTest, ConnectionsGaugeFollowsClientConnections) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  const std::string name = "strata_rpc_connections";
  // The fixture's stub has not connected yet (channels connect lazily).
  const double base = Scrape().ValueOr0(name);
  // Separate subchannel pools: each channel opens its own connection.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 2; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(grpc::CreateCustomChannel(
        server_->bound_address(), grpc::InsecureChannelCredentials(), args));
    ASSERT_TRUE(channels.back()->WaitForConnected(
        std::chrono::system_clock::now() + std::chrono::seconds(20)));
  }
  // The server registers a connection a moment after the client sees it
  // ready, and drops it a moment after the client closes: poll (bounded).
  auto wait_for = [&](double want) {
    const absl::Time deadline = absl::Now() + kWait;
    double got = -1;
    while (absl::Now() < deadline) {
      got = Scrape().ValueOr0(name);
      if (got == want) return got;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return got;
  };
  EXPECT_EQ(wait_for(base + 2), base + 2);
  channels.clear();
  EXPECT_EQ(wait_for(base), base);
}

// Exposition hygiene, and docs/metrics.md documents exactly what is
// exported.
TEST_F(MetricsTest, ExpositionFollowsConventionsAndMatchesDocs) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  size_t unused = 0;
  ASSERT_TRUE(Get("x", &unused, &unused).ok());
  WaitForRecordedRpcs();
  ASSERT_OK_AND_ASSIGN(auto http, HttpGet(metrics_->port(), "/metrics"));
  EXPECT_EQ(http.status, 200);
  EXPECT_NE(http.content_type.find("text/plain"), std::string::npos)
      << http.content_type;
  ASSERT_OK_AND_ASSIGN(Exposition e, ParseExposition(http.body));

  // exposer_*: prometheus-cpp's own scrape statistics.
  const std::regex family_name("(strata|process|exposer)_[a-z0-9_]+");
  std::set<std::string> families;
  for (const auto& [family, type] : e.type) {
    families.insert(family);
    EXPECT_TRUE(std::regex_match(family, family_name)) << family;
    EXPECT_FALSE(e.help[family].empty()) << family << " has no help";
    if (type == "counter") {
      EXPECT_TRUE(family.size() > 6 &&
                  family.compare(family.size() - 6, 6, "_total") == 0)
          << family;
    }
    if (type == "histogram") {
      // Every series: cumulative buckets, +Inf == _count.
      std::map<std::string, std::vector<std::pair<double, double>>> series;
      for (const auto& [labels, v] : e.Series(family + "_bucket")) {
        LabelList rest;
        double le = 0;
        for (const auto& [k, val] : labels) {
          if (k == "le") {
            le = std::strtod(val.c_str(), nullptr);
          } else {
            rest.push_back({k, val});
          }
        }
        series[strata::testing::SeriesKey(family, rest)].push_back({le, v});
      }
      EXPECT_FALSE(series.empty()) << family;
      for (auto& [key, buckets] : series) {
        std::sort(buckets.begin(), buckets.end());
        ASSERT_TRUE(std::isinf(buckets.back().first)) << key;
        for (size_t i = 1; i < buckets.size(); ++i) {
          EXPECT_LE(buckets[i - 1].second, buckets[i].second) << key;
        }
        const std::string count_key =
            family + "_count" + key.substr(family.size());
        EXPECT_EQ(e.samples[count_key], buckets.back().second) << key;
      }
    }
  }
  for (const std::string& sample : e.sample_names) {
    std::string family = sample;
    for (const char* suffix : {"_bucket", "_count", "_sum"}) {
      const std::string s = suffix;
      if (!e.type.count(family) && family.size() > s.size() &&
          family.compare(family.size() - s.size(), s.size(), s) == 0) {
        family = family.substr(0, family.size() - s.size());
      }
    }
    EXPECT_TRUE(e.type.count(family)) << sample << " has no TYPE";
  }
  for (const char* required :
       {"strata_rpc_requests_total", "strata_rpc_duration_seconds",
        "strata_rpc_requests_in_flight", "strata_rpc_received_bytes_total",
        "strata_rpc_sent_bytes_total", "strata_rpc_connections",
        "strata_wal_sync_duration_seconds",
        "strata_wal_writes_per_group_commit", "strata_memtable_active_bytes",
        "strata_level_files", "strata_compaction_pending_bytes",
        "strata_write_stall_seconds_total", "strata_write_stall_state",
        "strata_block_cache_hits_total", "strata_build_info",
        "process_start_time_seconds", "process_open_fds",
        "process_resident_memory_bytes"}) {
    EXPECT_TRUE(families.count(required)) << required;
  }

  // docs/metrics.md documents exactly what is exported, with its type.
  const std::string doc = ReadMetricsDoc();
  ASSERT_FALSE(doc.empty());
  // The "Cluster" section is exported only in cluster mode
  // (tests/cluster/cluster_node_e2e_test.cc checks it).
  std::map<std::string, std::string> documented = DocumentedFamilies(doc);
  for (const auto& [name, type] : DocumentedFamilies(doc, "Cluster")) {
    documented.erase(name);
  }
  EXPECT_THAT(DocMismatches(e.type, documented), IsEmpty());
}

// ---- Units without HTTP ------------------------------------------------

TEST(RpcMetricsTest, UnknownMethodsAndCodesAndBucketEdges) {
  RpcMetrics m({"Get"});
  m.OnRpcStart("Get");
  m.OnRpcEnd("Get", grpc::StatusCode::OK, 50e-6, 3, 4);  // Exactly on a bound.
  m.OnRpcStart("Get");
  m.OnRpcEnd("Get", grpc::StatusCode::DATA_LOSS, 11, 0, 0);  // Above 10 s.
  m.OnRpcStart("Mystery");
  m.OnRpcEnd("Mystery", static_cast<grpc::StatusCode>(99), -1, 1, 1);
  m.OnRpcStart("Get");  // Still running.
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, m.Collect());
  ASSERT_OK_AND_ASSIGN(Exposition e, ParseExposition(text.str()));
  EXPECT_EQ(e.Get("strata_rpc_requests_total", MC("Get", "OK")), 1);
  EXPECT_EQ(e.Get("strata_rpc_requests_total", MC("Get", "DATA_LOSS")), 1);
  EXPECT_EQ(e.Get("strata_rpc_requests_total", MC("other", "UNKNOWN")), 1);
  EXPECT_EQ(e.Get("strata_rpc_requests_in_flight", M("Get")), 1);
  EXPECT_EQ(e.Get("strata_rpc_requests_in_flight", M("other")), 0);
  // le="5e-05" holds the 50 µs observation; the 11 s one only +Inf.
  double first = -1, last_bound = -1;
  for (const auto& [labels, v] : e.Series("strata_rpc_duration_seconds_bucket")) {
    std::string method, le;
    for (const auto& [k, val] : labels) (k == "method" ? method : le) = val;
    if (method != "Get") continue;
    const double bound = std::strtod(le.c_str(), nullptr);
    if (bound == 50e-6) first = v;
    if (bound == 10) last_bound = v;
  }
  EXPECT_EQ(first, 1);
  EXPECT_EQ(last_bound, 1);
  EXPECT_EQ(e.Get("strata_rpc_duration_seconds_count", M("Get")), 2);
  EXPECT_NEAR(*e.Get("strata_rpc_duration_seconds_sum", M("Get")), 11.00005,
              1e-9);
  EXPECT_EQ(e.Get("strata_rpc_duration_seconds_sum", M("other")), 0);
  EXPECT_EQ(e.Get("strata_rpc_received_bytes_total", M("Get")), 3);
  EXPECT_EQ(e.Get("strata_rpc_sent_bytes_total", M("Get")), 4);
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::INVALID_ARGUMENT),
            "INVALID_ARGUMENT");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
}

TEST(RpcMetricsTest, ConcurrentObserversLoseNothing) {
  RpcMetrics m;
  constexpr int kThreads = 4, kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        m.OnRpcStart("Put");
        m.OnRpcEnd("Put", grpc::StatusCode::OK, 1e-4, 10, 0);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, m.Collect());
  ASSERT_OK_AND_ASSIGN(Exposition e, ParseExposition(text.str()));
  EXPECT_EQ(e.Get("strata_rpc_requests_total", MC("Put", "OK")),
            kThreads * kPerThread);
  EXPECT_EQ(e.Get("strata_rpc_received_bytes_total", M("Put")),
            10.0 * kThreads * kPerThread);
  EXPECT_EQ(e.Get("strata_rpc_requests_in_flight", M("Put")), 0);
}

TEST(EngineFamiliesTest, HistogramsAreCumulativeAndMalformedOnesSurvive) {
  storage::Statistics s;
  s.wal.sync_seconds.bounds = {0.001, 0.01 * 1.0000000000000002};
  s.wal.sync_seconds.counts = {2, 3, 1};
  s.wal.sync_seconds.sum = 0.5;
  s.wal.sync_seconds.count = 6;
  s.flush.seconds.count = 7;  // No bounds/counts: only +Inf.
  s.flush.seconds.sum = 1.5;
  s.levels.per_level = {{0, 2, 100}, {1, 3, 1000}};
  s.writes.stall_state = storage::Statistics::Writes::StallState::kStop;
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, EngineFamilies(s));
  ASSERT_OK_AND_ASSIGN(Exposition e, ParseExposition(text.str()));
  const std::string h = "strata_wal_sync_duration_seconds";
  EXPECT_EQ(e.Get(h + "_bucket", {{"le", "0.001"}}), 2);
  EXPECT_EQ(e.Get(h + "_bucket", {{"le", "0.01"}}), 5);
  EXPECT_EQ(e.Get(h + "_bucket", {{"le", "+Inf"}}), 6);
  EXPECT_EQ(e.Get(h + "_count"), 6);
  EXPECT_EQ(e.Get(h + "_sum"), 0.5);
  EXPECT_EQ(e.Get("strata_flush_duration_seconds_bucket", {{"le", "+Inf"}}),
            7);
  EXPECT_EQ(e.Series("strata_flush_duration_seconds_bucket").size(), 1u);
  EXPECT_EQ(e.Get("strata_level_files", {{"level", "1"}}), 3);
  EXPECT_EQ(e.Get("strata_level_bytes", {{"level", "0"}}), 100);
  EXPECT_EQ(e.Get("strata_write_stall_state", {{"state", "stop"}}), 1);
  EXPECT_EQ(e.Get("strata_write_stall_state", {{"state", "none"}}), 0);
  EXPECT_EQ(e.Get("strata_write_stall_state", {{"state", "slowdown"}}), 0);
}

// ---- The engine's table and docs/metrics.md ----------------------------

TEST(EngineMetricsTest, TableIsWellFormed) {
  const std::regex name_pattern("strata_[a-z0-9_]+");
  std::set<std::string_view> names;
  for (const EngineMetric& m : EngineMetrics()) {
    const std::string name(m.name);
    EXPECT_TRUE(names.insert(m.name).second) << name << " is listed twice";
    EXPECT_TRUE(std::regex_match(name, name_pattern)) << name;
    EXPECT_FALSE(m.help.empty()) << name;
    const bool is_total = name.size() > 6 && name.ends_with("_total");
    EXPECT_EQ(is_total, m.type == prometheus::MetricType::Counter)
        << name << ": counters, and only counters, end in _total";
    const bool reads_histogram =
        std::holds_alternative<EngineMetric::Histogram>(m.get);
    EXPECT_EQ(reads_histogram, m.type == prometheus::MetricType::Histogram)
        << name << ": histograms, and only histograms, read a histogram";
    EXPECT_TRUE(m.type == prometheus::MetricType::Counter ||
                m.type == prometheus::MetricType::Gauge ||
                m.type == prometheus::MetricType::Histogram)
        << name;
  }
}

// EngineFamilies exports one family per row, in order, with its type.
TEST(EngineMetricsTest, FamiliesFollowTheTable) {
  storage::Statistics s;
  s.levels.per_level = {{0, 1, 10}};
  const std::vector<prometheus::MetricFamily> families = EngineFamilies(s);
  const std::span<const EngineMetric> table = EngineMetrics();
  ASSERT_EQ(families.size(), table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    EXPECT_EQ(families[i].name, table[i].name);
    EXPECT_EQ(families[i].help, table[i].help);
    EXPECT_EQ(families[i].type, table[i].type);
    EXPECT_FALSE(families[i].metric.empty()) << families[i].name;
  }
}

// The section "Engine" of docs/metrics.md lists exactly the table's rows,
// with their types (the whole document is compared with a real scrape in
// ExpositionFollowsConventionsAndMatchesDocs).
TEST(EngineMetricsTest, EveryRowIsDocumentedAndEveryDocumentedOneExported) {
  const std::string doc = ReadMetricsDoc();
  ASSERT_FALSE(doc.empty());
  const std::map<std::string, std::string> documented =
      DocumentedFamilies(doc, "Engine");
  ASSERT_GE(documented.size(), 20u) << "no \"### Engine\" section?";
  EXPECT_THAT(DocMismatches(EngineTable(), documented), IsEmpty());
}

TEST(EngineMetricsTest, DocCheckFailsOnAMissingOrExtraName) {
  const std::string doc = ReadMetricsDoc();
  const std::string row = "| `strata_wal_syncs_total` |";
  const size_t at = doc.find(row);
  ASSERT_NE(at, std::string::npos);

  // The row deleted: exported but undocumented.
  std::string without = doc;
  without.erase(at, without.find('\n', at) + 1 - at);
  EXPECT_THAT(
      DocMismatches(EngineTable(), DocumentedFamilies(without, "Engine")),
      ElementsAre("strata_wal_syncs_total is exported but not in "
                  "docs/metrics.md"));

  // A row for a metric nobody exports: documented but not exported.
  std::string extra = doc;
  extra.insert(at, "| `strata_wal_imaginary_total` | counter | x | y | z |\n");
  EXPECT_THAT(
      DocMismatches(EngineTable(), DocumentedFamilies(extra, "Engine")),
      ElementsAre("strata_wal_imaginary_total is in docs/metrics.md but not "
                  "exported"));
}

TEST(EngineMetricsTest, DocCheckReportsEachKindOfMismatch) {
  const std::string doc =
      "## Reference\n"
      "### RPCs\n"
      "| `strata_rpc_x_total{method}` | counter | . | . | . |\n"
      "### Engine\n"
      "Prose with `strata_not_a_row` in it.\n"
      "#### Write path\n"
      "| metric | type | unit | meaning | action |\n"
      "| `strata_a_total` | counter | . | . | . |\n"
      "| `strata_b{level}` | gauge | . | . | . |\n"
      "| `strata_c` | histogram | . | . | . |\n"
      "### Process and build\n"
      "| `process_y` | gauge | . | . | . |\n";
  const std::map<std::string, std::string> engine =
      DocumentedFamilies(doc, "Engine");
  EXPECT_EQ(engine, (std::map<std::string, std::string>{
                        {"strata_a_total", "counter"},
                        {"strata_b", "gauge"},
                        {"strata_c", "histogram"}}));
  EXPECT_EQ(DocumentedFamilies(doc).size(), 5u);
  EXPECT_THAT(DocMismatches({{"strata_a_total", "counter"},
                             {"strata_b", "counter"},
                             {"strata_d_total", "counter"}},
                            engine),
              ElementsAre(HasSubstr("strata_b is exported as a counter but "
                                    "documented as a gauge"),
                          HasSubstr("strata_d_total is exported but not"),
                          HasSubstr("strata_c is in docs/metrics.md but not "
                                    "exported")));
}

TEST(ChannelzIdsTest, ParsesQuotedAndBareIds) {
  EXPECT_EQ(ChannelzIds(R"({"socketRef":[{"name":"x","socketId":"6"},)"
                        R"({"socketId":13}],"end":true})",
                        "socketId"),
            (std::vector<int64_t>{6, 13}));
  EXPECT_TRUE(ChannelzIds(R"({"socketId":"x"})", "socketId").empty());
  EXPECT_TRUE(ChannelzIds("", "serverId").empty());
}

TEST(MetricsServerTest, AddressValidationAndBindErrors) {
  EXPECT_OK(ValidateMetricsAddress("127.0.0.1:9090"));
  EXPECT_OK(ValidateMetricsAddress("0.0.0.0:0"));
  EXPECT_OK(ValidateMetricsAddress("localhost:9090"));
  for (const char* bad : {"9090", ":9090", "127.0.0.1:", "127.0.0.1:99999",
                          "127.0.0.1:90s", "127.0.0.1:x", "[::1]:9090",
                          "::1:9090"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ValidateMetricsAddress(bad))) << bad;
  }
  MetricsServer a(nullptr, BuildInfo{"v", "s"});
  ASSERT_OK(a.Listen("127.0.0.1:0"));
  EXPECT_TRUE(absl::IsFailedPrecondition(a.Listen("127.0.0.1:0")));
  MetricsServer b(nullptr, BuildInfo{"v", "s"});
  const absl::Status in_use =
      b.Listen(absl::StrFormat("127.0.0.1:%d", a.port()));
  EXPECT_TRUE(absl::IsUnavailable(in_use)) << in_use;
  // Without a DB there are no engine families, the rest is served.
  ASSERT_OK_AND_ASSIGN(auto r, HttpGet(a.port(), "/metrics"));
  EXPECT_NE(r.body.find("strata_build_info{"), std::string::npos);
  EXPECT_EQ(r.body.find("strata_wal_"), std::string::npos);
  EXPECT_NE(a.Scrape().find("strata_rpc_requests_total"), std::string::npos);
}

// A node without a write gate (a cluster replica) reads free space at
// scrape time; a database reached through a DbReader is read only while
// the reader hands one out.
TEST(MetricsServerTest, DiskFreeAtScrapeAndEngineThroughADbReader) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<storage::DB> db,
                       storage::DB::Open(EngineOptions(), dir.path() + "/db"));
  std::atomic<bool> open{true};
  std::atomic<int> reads{0};
  MetricsServer m(
      EngineSource(
          [&](absl::FunctionRef<void(storage::DB*)> read) {
            reads++;
            read(open.load() ? db.get() : nullptr);
          },
          dir.path()),
      BuildInfo{"v", "s"});
  ASSERT_OK_AND_ASSIGN(Exposition e, ParseExposition(m.Scrape()));
  EXPECT_GT(e.Get("strata_disk_free_bytes").value_or(0), 0.0);
  EXPECT_EQ(e.Get("strata_revision"), 0.0);
  EXPECT_TRUE(e.Get("strata_wal_syncs_total").has_value());
  // Engine and namespace collectors, once each per scrape.
  EXPECT_EQ(reads.load(), 2);
  // No database right now: no engine families.
  open = false;
  ASSERT_OK_AND_ASSIGN(e, ParseExposition(m.Scrape()));
  EXPECT_FALSE(e.Get("strata_revision").has_value());
  EXPECT_GT(e.Get("strata_disk_free_bytes").value_or(0), 0.0);

  // An unreadable directory: the scrape still answers (0: nothing read yet).
  MetricsServer missing(EngineSource(FixedDb(nullptr), dir.path() + "/nope"),
                        BuildInfo{"v", "s"});
  ASSERT_OK_AND_ASSIGN(e, ParseExposition(missing.Scrape()));
  EXPECT_EQ(e.Get("strata_disk_free_bytes"), 0.0);
  EXPECT_FALSE(e.Get("strata_revision").has_value());
}

// ---- The binary --------------------------------------------------------

TEST(MetricsProcessTest, ServerBinaryServesMetricsOnItsPrintedPort) {
  TempDir dir;
  auto p = strata::testing::ServerProcess::Start(dir.path() + "/data");
  ASSERT_OK(p);
  // ServerProcess passes --metrics_listen=127.0.0.1:0.
  ASSERT_OK_AND_ASSIGN(
      std::string address,
      (*p)->WaitForStdoutLine("strata-server metrics on ", kWait));
  ASSERT_EQ(address.rfind("127.0.0.1:", 0), 0u) << address;
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(address.substr(10), &port)) << address;
  ASSERT_GT(port, 0);

  auto stub = v1::KV::NewStub(grpc::CreateChannel(
      (*p)->address(), grpc::InsecureChannelCredentials()));
  v1::PutRequest req;
  v1::PutResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->Put(&ctx, req, &resp).error_code() ==
              grpc::StatusCode::INVALID_ARGUMENT);  // Empty key.
  // OnRpcEnd may trail the reply: poll (bounded) for the counter.
  const absl::Time deadline = absl::Now() + kWait;
  Exposition e;
  while (absl::Now() < deadline) {
    ASSERT_OK_AND_ASSIGN(auto r, HttpGet(port, "/metrics"));
    ASSERT_OK_AND_ASSIGN(e, ParseExposition(r.body));
    if (e.Get("strata_rpc_requests_total", MC("Put", "INVALID_ARGUMENT"))) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(e.Get("strata_rpc_requests_total", MC("Put", "INVALID_ARGUMENT")),
            1);
  const auto info = e.Series("strata_build_info");
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].second, 1);
  for (const auto& [k, v] : info[0].first) {
    EXPECT_FALSE(v.empty()) << k;
  }
  EXPECT_TRUE(e.Get("strata_wal_syncs_total"));
  (*p)->Signal(SIGTERM);
  ASSERT_OK_AND_ASSIGN(auto exit, (*p)->Wait(kWait));
  EXPECT_TRUE(exit.exited);
  EXPECT_EQ(exit.exit_code, 0);
}

TEST(MetricsProcessTest, BadOrBusyMetricsAddressFailsAtStart) {
  const std::string binary =
      strata::testing::BinaryPath("server/strata-server");
  ASSERT_FALSE(binary.empty());
  TempDir dir;
  auto bad = strata::testing::RunProcess(
      {binary, "--listen=127.0.0.1:0", "--metrics_listen=localhost",
       "--data_dir=" + dir.path() + "/a"});
  EXPECT_TRUE(bad.exited);
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--metrics_listen"), std::string::npos) << bad.err;

  // A port someone else holds: exit 1 with a clear message.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int busy_port = ntohs(addr.sin_port);
  auto busy = strata::testing::RunProcess(
      {binary, "--listen=127.0.0.1:0",
       absl::StrFormat("--metrics_listen=127.0.0.1:%d", busy_port),
       "--data_dir=" + dir.path() + "/b"});
  close(fd);
  EXPECT_TRUE(busy.exited);
  EXPECT_EQ(busy.exit_code, 1) << busy.err;
  EXPECT_NE(busy.err.find("metrics"), std::string::npos) << busy.err;
  EXPECT_EQ(busy.out.find("listening"), std::string::npos) << busy.out;
}

TEST(RpcMetricsTest, CountsCoalescedGets) {
  RpcMetrics metrics;
  metrics.OnGetCoalesced();
  metrics.OnGetCoalesced();
  bool found = false;
  for (const prometheus::MetricFamily& f : metrics.Collect()) {
    if (f.name != "strata_get_coalesced_total") continue;
    found = true;
    ASSERT_EQ(f.metric.size(), 1u);
    EXPECT_EQ(f.metric[0].counter.value, 2);
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace strata::server::metrics
