// The C++ client's transactions against a real in-process server:
// Client::Txn and Client::Commit, and the Transaction object (snapshot
// reads, reading its own writes, conflicts, phantoms, read-only commits)
// with RunTransaction's retries.

#include "client/transaction.h"

#include <atomic>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/rpc_observer.h"
#include "tests/server/in_process_server.h"
#include "tests/support/test_util.h"

namespace strata {
namespace {

using ::strata::testing::InProcessServer;
using ::testing::HasSubstr;

// Counts the RPCs the server received, by method.
class CountingObserver final : public server::RpcObserver {
 public:
  void OnRpcStart(std::string_view method) override {
    absl::MutexLock l(&mu_);
    counts_[std::string(method)]++;
  }
  int count(const std::string& method) {
    absl::MutexLock l(&mu_);
    return counts_[method];
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> counts_ ABSL_GUARDED_BY(mu_);
};

class TransactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::Options engine;
    engine.keep_history = true;
    engine.history_retention_seconds = 0;
    engine.conflict_window_keys = 10000;
    server::ServerOptions options = strata::testing::TestServerOptions();
    options.sync_writes = false;
    auto s = InProcessServer::Start(options, &observer_, nullptr, engine);
    ASSERT_OK(s);
    server_ = *std::move(s);
    client_ = std::make_unique<Client>(server_->address());
    other_ = std::make_unique<Client>(server_->address());
  }

  std::string Value(const std::string& key) {
    auto v = client_->Get(key);
    if (!v.ok()) return v.status().ToString();
    return v->value_or("<absent>");
  }

  CountingObserver observer_;  // Outlives the server.
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<Client> other_;  // Another writer.
};

TEST_F(TransactionTest, TxnComparesAndBranches) {
  ASSERT_OK(client_->Put("cfg/a", "1"));
  ASSERT_OK(client_->Put("cfg/b", "2"));
  using R = Compare::Result;
  ScanOptions all_cfg;
  all_cfg.start = "cfg/";
  all_cfg.end = "cfg0";
  absl::StatusOr<TxnResult> r = client_->Txn(
      {Compare::Version("lock", R::kEqual, 0),
       Compare::Value("cfg/", R::kGreater, "0").InRange("cfg0")},
      {TxnOp::Put("lock", "me"), TxnOp::Get("lock"), TxnOp::Scan(all_cfg)},
      {TxnOp::Get("lock")});
  ASSERT_OK(r);
  EXPECT_TRUE(r->succeeded);
  ASSERT_EQ(r->results.size(), 3u);
  ASSERT_TRUE(r->results[1].kv.has_value());
  EXPECT_EQ(r->results[1].kv->key, "lock");
  EXPECT_EQ(r->results[1].kv->value, "me");
  EXPECT_EQ(r->results[1].kv->mod_revision, r->revision);
  ASSERT_EQ(r->results[2].kvs.size(), 2u);
  EXPECT_EQ(r->results[2].kvs[1].value, "2");
  // Now the lock exists: the failure branch runs, and writes nothing.
  r = client_->Txn({Compare::Version("lock", R::kEqual, 0)},
                   {TxnOp::Put("lock", "you")}, {TxnOp::Get("lock")});
  ASSERT_OK(r);
  EXPECT_FALSE(r->succeeded);
  ASSERT_TRUE(r->results[0].kv.has_value());
  EXPECT_EQ(r->results[0].kv->value, "me");
  EXPECT_EQ(Value("lock"), "me");
  // A branch that writes a key twice is refused.
  r = client_->Txn({}, {TxnOp::Put("x", "1"), TxnOp::Delete("x")});
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
}

// The typed operations inside a Txn (issue 17): take one from a stock
// counter guarded by a numeric compare, add one to a sold counter and patch
// the order document, all at one revision, each answering in its result.
TEST_F(TransactionTest, TxnRunsTypedOpsGuardedByANumericCompare) {
  using R = Compare::Result;
  ASSERT_OK(client_->Put("stock", "10", ValueType::kInt64));
  ASSERT_OK(client_->Put("order/1", R"({"qty": 1, "note": "x"})",
                         ValueType::kJson));
  // Bytes: "10" < "9"; as a number 10 > 9.
  absl::StatusOr<TxnResult> r = client_->Txn(
      {Compare::Int64Value("stock", R::kGreater, 9),
       Compare::Value("stock", R::kLess, "9")},
      {TxnOp::Increment("stock", -1), TxnOp::Increment("sold", 1),
       TxnOp::JsonMergePatch("order/1", R"({"note": null, "paid": true})"),
       TxnOp::JsonGet("order/1", "/paid"), TxnOp::Get("sold")});
  ASSERT_OK(r);
  ASSERT_TRUE(r->succeeded);
  ASSERT_EQ(r->results.size(), 5u);
  EXPECT_EQ(r->results[0].type, TxnOp::Type::kIncrement);
  EXPECT_EQ(r->results[0].counter, 9);
  EXPECT_EQ(r->results[1].counter, 1);
  EXPECT_EQ(r->results[2].type, TxnOp::Type::kJsonUpdate);
  EXPECT_EQ(r->results[2].json, R"({"paid":true,"qty":1})");
  EXPECT_EQ(r->results[3].json, "true");  // Sees the branch's patch.
  ASSERT_TRUE(r->results[4].kv.has_value());
  EXPECT_EQ(r->results[4].kv->value, "1");
  EXPECT_EQ(r->results[4].kv->type, ValueType::kInt64);
  for (const char* key : {"stock", "sold", "order/1"}) {
    ASSERT_OK_AND_ASSIGN(GetResult g, client_->GetWithMetadata(key));
    ASSERT_TRUE(g.kv.has_value()) << key;
    EXPECT_EQ(g.kv->mod_revision, r->revision) << key;
  }
  // Now stock is 9: the numeric compare fails and the else branch's JSON
  // Patch runs instead.
  r = client_->Txn({Compare::Int64Value("stock", R::kGreater, 9)},
                   {TxnOp::Increment("stock", -1)},
                   {TxnOp::JsonPatch(
                       "order/1", R"([{"op": "replace", "path": "/qty", "value": 0}])"),
                    TxnOp::JsonGet("order/1")});
  ASSERT_OK(r);
  EXPECT_FALSE(r->succeeded);
  EXPECT_EQ(r->results[0].json, R"({"paid":true,"qty":0})");
  EXPECT_EQ(r->results[1].json, R"({"paid":true,"qty":0})");
  EXPECT_EQ(Value("stock"), "9");
}

TEST_F(TransactionTest, AFailingTypedOpFailsTheTxnWithItsCode) {
  using R = Compare::Result;
  ASSERT_OK(client_->Put("text", "not a number"));
  ASSERT_OK(client_->Put("doc", "{}", ValueType::kJson));
  ASSERT_OK_AND_ASSIGN(Revision before, client_->Put("n", "1",
                                                     ValueType::kInt64));
  struct Case {
    std::vector<Compare> compares;
    std::vector<TxnOp> ops;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, {TxnOp::Put("a", "1"), TxnOp::Increment("none", 1, true)},
       absl::StatusCode::kNotFound, "success op 1: "},
      {{}, {TxnOp::Increment("text", 1)}, absl::StatusCode::kFailedPrecondition,
       "success op 0: "},
      {{}, {TxnOp::Increment("n", std::numeric_limits<int64_t>::max())},
       absl::StatusCode::kOutOfRange, "success op 0: "},
      {{}, {TxnOp::Put("a", "1"), TxnOp::JsonGet("doc", "/missing")},
       absl::StatusCode::kNotFound, "success op 1: "},
      {{},
       {TxnOp::JsonPatch("doc", R"([{"op": "test", "path": "/a", "value": 1}])")},
       absl::StatusCode::kFailedPrecondition, "success op 0: "},
      {{}, {TxnOp::JsonMergePatch("doc", "{")}, absl::StatusCode::kInvalidArgument,
       "success op 0: "},
      {{Compare::Int64Value("text", R::kEqual, 1)}, {TxnOp::Put("a", "1")},
       absl::StatusCode::kFailedPrecondition, "\"text\""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<TxnResult> r = client_->Txn(c.compares, c.ops);
    EXPECT_EQ(r.status().code(), c.code) << c.message << " -> " << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(c.message));
  }
  // Nothing was written.
  ASSERT_OK_AND_ASSIGN(GetResult g, client_->GetWithMetadata("any"));
  EXPECT_EQ(g.revision, before);
  EXPECT_EQ(Value("a"), "<absent>");
}

TEST_F(TransactionTest, ReadsAreOneSnapshotAndSeeTheTransactionsWrites) {
  ASSERT_OK(client_->Put("a", "1"));
  ASSERT_OK(client_->Put("b", "1"));
  ASSERT_OK(client_->Put("c", "1"));
  std::unique_ptr<Transaction> tx = client_->BeginTransaction();
  EXPECT_EQ(tx->read_revision(), 0);
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> a, tx->Get("a"));
  EXPECT_EQ(a, "1");
  const Revision pinned = tx->read_revision();
  EXPECT_GT(pinned, 0);
  // Another writer changes b after the snapshot: the transaction still
  // reads the snapshot.
  ASSERT_OK(other_->Put("b", "2"));
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> b, tx->Get("b"));
  EXPECT_EQ(b, "1");
  tx->Put("a", "10");
  tx->Delete("c");
  tx->Put("d", "new");
  ASSERT_OK_AND_ASSIGN(a, tx->Get("a"));
  EXPECT_EQ(a, "10");
  ASSERT_OK_AND_ASSIGN(std::vector<KeyValue> kvs, tx->Scan("a", ""));
  std::vector<std::string> seen;
  for (const KeyValue& kv : kvs) seen.push_back(kv.key + "=" + kv.value);
  EXPECT_THAT(seen, ::testing::ElementsAre("a=10", "b=1", "d=new"));
  // A limited scan fills its limit past a buffered delete.
  ASSERT_OK_AND_ASSIGN(kvs, tx->Scan("b", "", 2));
  ASSERT_EQ(kvs.size(), 2u);
  EXPECT_EQ(kvs[1].key, "d");
  EXPECT_EQ(tx->read_revision(), pinned);
  // It read b, which changed: the commit is ABORTED and writes nothing.
  absl::StatusOr<Revision> r = tx->Commit();
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("\"b\""));
  EXPECT_EQ(Value("a"), "1");
  EXPECT_EQ(Value("d"), "<absent>");
}

TEST_F(TransactionTest, APhantomInAScannedRangeAborts) {
  std::unique_ptr<Transaction> tx = client_->BeginTransaction();
  ASSERT_OK_AND_ASSIGN(std::vector<KeyValue> kvs, tx->Scan("job/", "job0"));
  EXPECT_TRUE(kvs.empty());
  tx->Put("job/1", "mine");
  ASSERT_OK(other_->Put("job/2", "theirs"));
  absl::StatusOr<Revision> r = tx->Commit();
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("job/2"));
  // Without the other writer it commits.
  tx = client_->BeginTransaction();
  ASSERT_OK(tx->Scan("task/", "task0").status());
  tx->Put("task/1", "mine");
  ASSERT_OK_AND_ASSIGN(Revision committed, tx->Commit());
  ASSERT_OK_AND_ASSIGN(GetResult g, client_->GetWithMetadata("task/1"));
  EXPECT_EQ(g.kv->mod_revision, committed);
}

TEST_F(TransactionTest, AReadOnlyTransactionNeverCallsCommit) {
  ASSERT_OK(client_->Put("a", "1"));
  std::unique_ptr<Transaction> tx = client_->BeginTransaction();
  ASSERT_OK(tx->Get("a").status());
  ASSERT_OK(other_->Put("a", "2"));  // Changed after the snapshot: fine.
  ASSERT_OK_AND_ASSIGN(Revision r, tx->Commit());
  EXPECT_EQ(r, tx->read_revision());
  EXPECT_EQ(observer_.count("Commit"), 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(tx->Commit().status()));
}

// A transaction whose first read found an empty store is pinned at
// revision 0: later reads must not see writes made since (revision 0 on the
// wire means "the latest").
TEST_F(TransactionTest, ASnapshotOfAnEmptyStoreStaysEmpty) {
  std::unique_ptr<Transaction> tx = client_->BeginTransaction();
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> a, tx->Get("a"));
  EXPECT_FALSE(a.has_value());
  EXPECT_EQ(tx->read_revision(), 0u);
  ASSERT_OK(other_->Put("b", "1"));
  ASSERT_OK_AND_ASSIGN(std::optional<std::string> b, tx->Get("b"));
  EXPECT_FALSE(b.has_value());
  ASSERT_OK_AND_ASSIGN(std::vector<KeyValue> all, tx->Scan("", "", 0));
  EXPECT_TRUE(all.empty());
}

TEST_F(TransactionTest, RunTransactionRetriesAConflictWithBackoff) {
  ASSERT_OK(client_->Put("n", "0"));
  std::vector<int> retried;
  TransactionOptions options;
  options.initial_backoff = absl::Milliseconds(1);
  options.on_retry = [&](int attempt, const absl::Status& s) {
    EXPECT_TRUE(absl::IsAborted(s)) << s;
    retried.push_back(attempt);
  };
  std::vector<int> attempts;
  absl::StatusOr<Revision> r = client_->RunTransaction(
      [&](Transaction& tx) -> absl::Status {
        attempts.push_back(tx.attempt());
        absl::StatusOr<std::optional<std::string>> n = tx.Get("n");
        if (!n.ok()) return n.status();
        // The first attempt races another writer, and loses.
        if (tx.attempt() == 1) {
          if (absl::Status s = other_->Put("n", "100").status(); !s.ok()) {
            return s;
          }
        }
        tx.Put("n", std::to_string(std::stoi(**n) + 1));
        return absl::OkStatus();
      },
      options);
  ASSERT_OK(r);
  EXPECT_THAT(attempts, ::testing::ElementsAre(1, 2));
  EXPECT_THAT(retried, ::testing::ElementsAre(1));
  EXPECT_EQ(Value("n"), "101");
}

TEST_F(TransactionTest, RunTransactionGivesUpAfterMaxAttemptsAndPassesErrors) {
  TransactionOptions options;
  options.max_attempts = 3;
  options.initial_backoff = absl::Milliseconds(1);
  int calls = 0;
  absl::StatusOr<Revision> r = client_->RunTransaction(
      [&](Transaction& tx) -> absl::Status {
        calls++;
        if (absl::Status s = tx.Get("hot").status(); !s.ok()) return s;
        tx.Put("out", "x");
        return other_->Put("hot", std::to_string(calls)).status();
      },
      options);
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(Value("out"), "<absent>");
  // An error from the function ends it at once, nothing committed.
  calls = 0;
  r = client_->RunTransaction([&](Transaction& tx) -> absl::Status {
    calls++;
    tx.Put("out", "x");
    return absl::NotFoundError("no such account");
  });
  EXPECT_TRUE(absl::IsNotFound(r.status()));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(Value("out"), "<absent>");
}

// 8 threads x 40 increments of one counter through RunTransaction: no
// increment is lost, and the contention shows up as retries.
TEST_F(TransactionTest, ConcurrentIncrementsRetryAndLoseNothing) {
  constexpr int kThreads = 8;
  constexpr int kIncrements = 40;
  ASSERT_OK(client_->Put("counter", "0"));
  std::atomic<int> retries{0};
  absl::Barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&] {
      Client client(server_->address());
      TransactionOptions options;
      options.max_attempts = 1000;
      options.initial_backoff = absl::Microseconds(200);
      options.max_backoff = absl::Milliseconds(20);
      options.on_retry = [&](int, const absl::Status&) { retries++; };
      start.Block();
      for (int i = 0; i < kIncrements; i++) {
        absl::StatusOr<Revision> r = client.RunTransaction(
            [](Transaction& tx) -> absl::Status {
              absl::StatusOr<std::optional<std::string>> n = tx.Get("counter");
              if (!n.ok()) return n.status();
              tx.Put("counter", std::to_string(std::stoi(**n) + 1));
              return absl::OkStatus();
            },
            options);
        ASSERT_OK(r);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Value("counter"), std::to_string(kThreads * kIncrements));
  EXPECT_GT(retries.load(), 0);
  EXPECT_EQ(observer_.count("Commit"), kThreads * kIncrements + retries.load());
  std::printf("%d increments, %d retries\n", kThreads * kIncrements,
              retries.load());
}

}  // namespace
}  // namespace strata
