// The transaction logic (server/txn.h) on a real DB, without a server:
// every compare target and result (existing and missing keys, ranges),
// both branches, reads that see the Txn's own writes, every validation
// rule and limit, and the conflict checks of Commit (keys, ranges and
// phantoms, the window of recent writes, too-old reads).

#include "server/txn.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::strata::testing::TempDir;
using storage::Revision;

v1::TxnRequest ParseTxn(const std::string& text) {
  v1::TxnRequest req;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &req))
      << text;
  return req;
}

class TxnTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }

  void Open(size_t window = 1000) {
    db_.reset();
    storage::Options options;
    options.create_if_missing = true;
    options.keep_history = true;
    options.history_retention_seconds = 0;
    options.conflict_window_keys = window;
    auto db = storage::DB::Open(options, dir_.path() + "/db");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }

  Revision Put(const std::string& k, const std::string& v) {
    auto r = db_->Put(storage::WriteOptions(), KeyspaceView().Encode(k), v);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : 0;
  }
  Revision Delete(const std::string& k) {
    auto r = db_->Delete(storage::WriteOptions(), KeyspaceView().Encode(k));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : 0;
  }
  std::string Value(const std::string& k) {
    auto r = db_->Get(storage::ReadOptions(), KeyspaceView().Encode(k));
    if (absl::IsNotFound(r.status())) return "<absent>";
    return r.ok() ? *r : r.status().ToString();
  }

  // Runs a Txn through the engine as the server does; the response's
  // header is the revision it committed at.
  absl::StatusOr<v1::TxnResponse> Txn(const v1::TxnRequest& req) {
    absl::StatusOr<PreparedTxn> prepared = PrepareTxn(req, limits_);
    if (!prepared.ok()) return prepared.status();
    v1::TxnResponse resp;
    storage::WriteBatch batch;
    batch.SetCommitFunction(
        [&](storage::CommitView* view, storage::WriteBatch* b) {
          return ExecuteTxn(req, *prepared, limits_, KeyspaceView(), view, b,
                            &resp);
        });
    absl::StatusOr<Revision> r = db_->Write(storage::WriteOptions(), &batch);
    if (!r.ok()) return r.status();
    resp.mutable_header()->set_revision(static_cast<int64_t>(*r));
    return resp;
  }
  absl::StatusOr<v1::TxnResponse> Txn(const std::string& text) {
    return Txn(ParseTxn(text));
  }
  // Whether a Txn with this one compare (and nothing else) succeeds.
  bool Holds(const std::string& compare) {
    auto r = Txn("compare { " + compare + " }");
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && r->succeeded();
  }

  absl::StatusOr<Revision> Commit(const v1::CommitRequest& req) {
    absl::StatusOr<storage::WriteBatch> batch = PrepareCommit(req, limits_);
    if (!batch.ok()) return batch.status();
    batch->SetCommitFunction(
        [&](storage::CommitView* view, storage::WriteBatch*) {
          return CheckCommitConflicts(req, KeyspaceView(), view);
        });
    return db_->Write(storage::WriteOptions(), &*batch);
  }
  // A commit that read `keys` and `ranges` ("start..end") at `at` and
  // puts "written" = "1".
  absl::StatusOr<Revision> Commit(Revision at, std::vector<std::string> keys,
                                  std::vector<std::pair<std::string,
                                                        std::string>> ranges) {
    v1::CommitRequest req;
    req.set_read_revision(static_cast<int64_t>(at));
    for (auto& k : keys) req.add_read_keys(k);
    for (auto& [s, e] : ranges) {
      v1::KeyRange* r = req.add_read_ranges();
      r->set_start_key(s);
      r->set_end_key(e);
    }
    v1::PutRequest* put = req.add_mutations()->mutable_put();
    put->set_key("written");
    put->set_value("1");
    return Commit(req);
  }

  TempDir dir_;
  std::unique_ptr<storage::DB> db_;
  Limits limits_;
};

// ---- Compares

TEST_F(TxnTest, EveryTargetAndResultOnAnExistingKey) {
  const Revision created = Put("k", "b");
  const Revision modified = Put("k", "m");  // version 2, value "m".
  struct Case {
    std::string target;  // VERSION / CREATE / MOD / VALUE
    std::string field;   // the constant's field
    std::string low, equal, high;  // constants below, at, above the key's
  } cases[] = {
      {"VERSION", "version", "1", "2", "3"},
      {"CREATE", "create_revision", absl::StrFormat("%d", created - 1),
       absl::StrFormat("%d", created), absl::StrFormat("%d", created + 1)},
      {"MOD", "mod_revision", absl::StrFormat("%d", modified - 1),
       absl::StrFormat("%d", modified), absl::StrFormat("%d", modified + 1)},
      {"VALUE", "value", "\"a\"", "\"m\"", "\"z\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.target);
    auto compare = [&](const std::string& result, const std::string& constant) {
      return Holds(absl::StrFormat("key: \"k\" target: %s result: %s %s: %s",
                                   c.target, result, c.field, constant));
    };
    EXPECT_TRUE(compare("EQUAL", c.equal));
    EXPECT_FALSE(compare("EQUAL", c.low));
    EXPECT_FALSE(compare("EQUAL", c.high));
    EXPECT_TRUE(compare("NOT_EQUAL", c.low));
    EXPECT_TRUE(compare("NOT_EQUAL", c.high));
    EXPECT_FALSE(compare("NOT_EQUAL", c.equal));
    EXPECT_TRUE(compare("GREATER", c.low));
    EXPECT_FALSE(compare("GREATER", c.equal));
    EXPECT_FALSE(compare("GREATER", c.high));
    EXPECT_TRUE(compare("LESS", c.high));
    EXPECT_FALSE(compare("LESS", c.equal));
    EXPECT_FALSE(compare("LESS", c.low));
  }
  // An unset constant is 0 (or the empty value).
  EXPECT_TRUE(Holds("key: \"k\" target: VERSION result: GREATER"));
  EXPECT_TRUE(Holds("key: \"k\" target: VALUE result: GREATER"));
}

TEST_F(TxnTest, AMissingKeyComparesAsZeroAndItsValueNever) {
  Put("gone", "x");
  Delete("gone");
  for (const std::string key : {"never", "gone"}) {
    SCOPED_TRACE(key);
    const std::string k = "key: \"" + key + "\" ";
    EXPECT_TRUE(Holds(k + "target: VERSION result: EQUAL version: 0"));
    EXPECT_TRUE(Holds(k + "target: CREATE result: EQUAL create_revision: 0"));
    EXPECT_TRUE(Holds(k + "target: MOD result: LESS mod_revision: 1"));
    EXPECT_FALSE(Holds(k + "target: VERSION result: GREATER version: 0"));
    EXPECT_FALSE(Holds(k + "target: MOD result: NOT_EQUAL mod_revision: 0"));
    // etcd: no way to tell a missing value from an empty one, so a VALUE
    // compare on a missing key is false whatever its result.
    EXPECT_FALSE(Holds(k + "target: VALUE result: EQUAL value: \"\""));
    EXPECT_FALSE(Holds(k + "target: VALUE result: NOT_EQUAL value: \"x\""));
    EXPECT_FALSE(Holds(k + "target: VALUE result: LESS value: \"x\""));
  }
  // "Create if absent": VERSION EQUAL 0.
  auto r = Txn(R"pb(compare { key: "new" target: VERSION result: EQUAL }
                    success { put { key: "new" value: "1" } }
                    failure { get { key: "new" } })pb");
  ASSERT_OK(r);
  EXPECT_TRUE(r->succeeded());
  r = Txn(R"pb(compare { key: "new" target: VERSION result: EQUAL }
               success { put { key: "new" value: "2" } }
               failure { get { key: "new" } })pb");
  ASSERT_OK(r);
  EXPECT_FALSE(r->succeeded());
  EXPECT_EQ(r->responses(0).get().value(), "1");
  EXPECT_EQ(Value("new"), "1");
}

TEST_F(TxnTest, RangeComparesHoldForEveryKeyInTheRange) {
  Put("r/a", "5");
  Put("r/b", "7");
  Put("r/c", "9");
  Put("s", "1");
  Put("r/b", "7");  // version 2
  // [r/a, r/d): every key's value > "4"; not every key's > "5".
  EXPECT_TRUE(Holds(R"(key: "r/a" range_end: "r/d" target: VALUE
                       result: GREATER value: "4")"));
  EXPECT_FALSE(Holds(R"(key: "r/a" range_end: "r/d" target: VALUE
                        result: GREATER value: "5")"));
  EXPECT_FALSE(Holds(R"(key: "r/" range_end: "r0" target: VERSION
                        result: EQUAL version: 1)"));  // r/b is at 2
  EXPECT_TRUE(Holds(R"(key: "r/c" range_end: "r0" target: VERSION
                       result: EQUAL version: 1)"));
  // "\0": every key >= key (here r/c and s).
  EXPECT_TRUE(Holds(R"(key: "r/c" range_end: "\000" target: VERSION
                       result: EQUAL version: 1)"));
  EXPECT_FALSE(Holds(R"(key: "r/c" range_end: "\000" target: VALUE
                        result: EQUAL value: "9")"));  // s = "1"
  // An empty range compares as one missing key.
  EXPECT_TRUE(Holds(R"(key: "q/" range_end: "q0" target: VERSION
                       result: EQUAL version: 0)"));
  EXPECT_FALSE(Holds(R"(key: "q/" range_end: "q0" target: VALUE
                        result: EQUAL value: "")"));
  EXPECT_TRUE(Holds(R"(key: "z" range_end: "a" target: CREATE
                       result: EQUAL create_revision: 0)"));
  // Deleted keys are not in the range.
  Delete("r/b");
  EXPECT_TRUE(Holds(R"(key: "r/" range_end: "r0" target: VERSION
                       result: EQUAL version: 1)"));
  // Empty key with "\0": every key.
  EXPECT_TRUE(Holds(R"(key: "" range_end: "\000" target: MOD
                       result: GREATER mod_revision: 0)"));
}

TEST_F(TxnTest, RangeComparesExamineABoundedNumberOfKeys) {
  limits_.max_batch_mutations = 3;
  for (int i = 0; i < 4; i++) Put(absl::StrFormat("k%d", i), "v");
  // Three keys: fine; four: FAILED_PRECONDITION, nothing written.
  EXPECT_TRUE(Holds(R"(key: "k0" range_end: "k3" target: VERSION
                       result: EQUAL version: 1)"));
  auto r = Txn(R"pb(compare { key: "k" range_end: "l" target: VERSION
                              result: EQUAL version: 1 }
                    success { put { key: "x" value: "1" } })pb");
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_EQ(Value("x"), "<absent>");
  // A compare that fails early stops early.
  EXPECT_FALSE(Holds(R"(key: "k" range_end: "l" target: VERSION
                        result: EQUAL version: 2)"));
}

// ---- Branches and ops

TEST_F(TxnTest, TheSuccessOrTheFailureBranchRunsAtOneRevision) {
  const Revision base = Put("lock", "free");
  const std::string txn = R"pb(
    compare { key: "lock" target: VALUE result: EQUAL value: "free" }
    success { put { key: "lock" value: "taken" } }
    success { put { key: "owner" value: "me" } }
    success { get { key: "owner" } }
    failure { get { key: "lock" } }
    failure { delete { key: "owner" } })pb";
  ASSERT_OK_AND_ASSIGN(v1::TxnResponse r, Txn(txn));
  EXPECT_TRUE(r.succeeded());
  EXPECT_EQ(r.header().revision(), static_cast<int64_t>(base + 1));
  ASSERT_EQ(r.responses_size(), 3);
  EXPECT_TRUE(r.responses(0).has_put());
  EXPECT_TRUE(r.responses(1).has_put());
  // Read-your-writes: the get sees the Txn's own put, with the metadata it
  // has once committed.
  EXPECT_EQ(r.responses(2).get().value(), "me");
  EXPECT_EQ(r.responses(2).get().mod_revision(), r.header().revision());
  EXPECT_EQ(r.responses(2).get().create_revision(), r.header().revision());
  EXPECT_EQ(r.responses(2).get().version(), 1);
  EXPECT_FALSE(r.responses(2).get().has_header());
  auto meta = db_->GetWithMetadata(storage::ReadOptions(), "lock");
  ASSERT_OK(meta);
  EXPECT_EQ(meta->metadata.mod_revision, base + 1);  // Both at one revision.

  ASSERT_OK_AND_ASSIGN(r, Txn(txn));
  EXPECT_FALSE(r.succeeded());
  EXPECT_EQ(r.header().revision(), static_cast<int64_t>(base + 2));
  ASSERT_EQ(r.responses_size(), 2);
  EXPECT_EQ(r.responses(0).get().value(), "taken");
  EXPECT_EQ(r.responses(0).get().version(), 2);
  EXPECT_TRUE(r.responses(1).has_delete_());
  EXPECT_EQ(Value("owner"), "<absent>");
  EXPECT_EQ(Value("lock"), "taken");
}

TEST_F(TxnTest, ATxnThatWritesNothingTakesNoRevision) {
  const Revision base = Put("a", "1");
  ASSERT_OK_AND_ASSIGN(v1::TxnResponse r, Txn(R"pb(
      success { get { key: "a" } }
      success { delete { key: "missing" } })pb"));
  EXPECT_TRUE(r.succeeded());  // No compare: success.
  EXPECT_EQ(r.header().revision(), static_cast<int64_t>(base));
  EXPECT_EQ(r.responses(0).get().value(), "1");
  ASSERT_OK_AND_ASSIGN(r, Txn(""));
  EXPECT_TRUE(r.succeeded());
  EXPECT_EQ(r.responses_size(), 0);
  EXPECT_EQ(db_->CurrentRevision(), base);
}

TEST_F(TxnTest, ReadsSeeTheTxnsOwnWrites) {
  Put("s/a", "old-a");
  Put("s/b", "old-b");
  Put("s/d", "old-d");
  ASSERT_OK_AND_ASSIGN(v1::TxnResponse r, Txn(R"pb(
      success { put { key: "s/b" value: "new-b" } }
      success { put { key: "s/c" value: "new-c" } }
      success { delete { key: "s/d" } }
      success { get { key: "s/d" } }
      success { get { key: "s/b" } }
      success { scan { start_key: "s/" end_key: "s0" } }
      success { scan { start_key: "s/" end_key: "s0" reverse: true } }
      success { scan { start_key: "s/b" limit: 1 keys_only: true } }
      success { scan { end_key: "s/c" reverse: true limit: 1 } })pb"));
  const int64_t rev = r.header().revision();
  EXPECT_FALSE(r.responses(3).get().found());
  EXPECT_EQ(r.responses(4).get().value(), "new-b");
  EXPECT_EQ(r.responses(4).get().version(), 2);
  EXPECT_EQ(r.responses(4).get().mod_revision(), rev);
  auto show = [](const v1::ScanResponse& s) {
    std::vector<std::string> out;
    for (const auto& kv : s.pairs()) {
      out.push_back(absl::StrFormat("%s=%s@%d", kv.key(), kv.value(),
                                    kv.version()));
    }
    return absl::StrJoin(out, " ");
  };
  EXPECT_EQ(show(r.responses(5).scan()), "s/a=old-a@1 s/b=new-b@2 s/c=new-c@1");
  EXPECT_EQ(show(r.responses(6).scan()), "s/c=new-c@1 s/b=new-b@2 s/a=old-a@1");
  EXPECT_EQ(show(r.responses(7).scan()), "s/b=@2");
  EXPECT_EQ(show(r.responses(8).scan()), "s/b=new-b@2");
  EXPECT_EQ(r.responses(5).scan().pairs(2).mod_revision(), rev);
  EXPECT_FALSE(r.responses(5).scan().has_header());
}

TEST_F(TxnTest, AResponseAboveTheMessageLimitWritesNothing) {
  limits_.max_message_bytes = 1000;
  Put("big", std::string(600, 'x'));
  auto r = Txn(R"pb(success { put { key: "other" value: "1" } }
                    success { get { key: "big" } }
                    success { get { key: "big" } })pb");
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("--max_message_bytes"),
            std::string::npos);
  EXPECT_EQ(Value("other"), "<absent>");
  r = Txn(R"pb(success { scan { start_key: "a" } }
               success { scan { start_key: "a" } })pb");
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  // One read fits.
  EXPECT_OK(Txn(R"pb(success { get { key: "big" } })pb"));
}

// ---- Validation

TEST_F(TxnTest, ReadsOfTheTxnsOwnTypedWritesCarryTheTypeAndStoredForm) {
  ASSERT_OK_AND_ASSIGN(v1::TxnResponse r, Txn(R"pb(
      success { put { key: "doc" value: "{ \"b\": 1, \"a\": 2 }" type: JSON } }
      success { get { key: "doc" } }
      success { scan { start_key: "doc" end_key: "doc0" } })pb"));
  EXPECT_EQ(r.responses(1).get().value(), R"({"a":2,"b":1})");
  EXPECT_EQ(r.responses(1).get().type(), v1::JSON);
  ASSERT_EQ(r.responses(2).scan().pairs_size(), 1);
  EXPECT_EQ(r.responses(2).scan().pairs(0).value(), R"({"a":2,"b":1})");
  EXPECT_EQ(r.responses(2).scan().pairs(0).type(), v1::JSON);
  EXPECT_EQ(Value("doc"), R"({"a":2,"b":1})");
}

// ---- Typed operations inside a Txn (docs/values.md, issue 17)

TEST_F(TxnTest, IncrementTwoCountersAndSetADocumentAtOneRevision) {
  ASSERT_OK_AND_ASSIGN(v1::TxnResponse seeded, Txn(R"pb(
      success { put { key: "stock" value: "10" type: INT64 } })pb"));
  ASSERT_OK_AND_ASSIGN(v1::TxnResponse r, Txn(R"pb(
      compare { key: "stock" target: INT64_VALUE result: GREATER int64_value: 0 }
      success { increment { key: "stock" delta: -1 } }
      success { increment { key: "sold" delta: 1 } }
      success { put { key: "order/1" value: "{\"qty\": 1}" type: JSON } }
      success { json_get { key: "order/1" pointer: "/qty" } }
      success { get { key: "sold" } })pb"));
  ASSERT_TRUE(r.succeeded());
  EXPECT_EQ(r.responses(0).increment().value(), 9);
  EXPECT_EQ(r.responses(1).increment().value(), 1);
  EXPECT_EQ(r.responses(3).json_get().json(), "1");  // Sees the Txn's put.
  EXPECT_EQ(r.responses(4).get().value(), "1");      // And its increment.
  EXPECT_EQ(r.responses(4).get().type(), v1::INT64);
  EXPECT_EQ(r.responses(4).get().version(), 1);
  EXPECT_EQ(Value("stock"), "9");
  EXPECT_EQ(Value("sold"), "1");
  // All three writes at the Txn's one revision.
  for (const char* k : {"stock", "sold", "order/1"}) {
    auto g = db_->GetWithMetadata(storage::ReadOptions(),
                                  KeyspaceView().Encode(k));
    ASSERT_TRUE(g.ok() && g->found) << k;
    EXPECT_EQ(static_cast<int64_t>(g->metadata.mod_revision),
              r.header().revision())
        << k;
  }
}

TEST_F(TxnTest, JsonUpdateInsideATxnPatchesAndReturnsTheDocument) {
  ASSERT_OK(Txn(R"pb(success {
                   put { key: "cfg" value: "{\"a\":1,\"b\":{\"c\":2}}" type: JSON }
                 })pb").status());
  ASSERT_OK_AND_ASSIGN(v1::TxnResponse r, Txn(R"pb(
      success { json_update { key: "cfg" merge_patch: "{\"b\":{\"c\":null,\"d\":3}}" } }
      success { get { key: "cfg" } })pb"));
  EXPECT_EQ(r.responses(0).json_update().json(), R"({"a":1,"b":{"d":3}})");
  EXPECT_EQ(r.responses(1).get().value(), R"({"a":1,"b":{"d":3}})");
  EXPECT_EQ(r.responses(1).get().type(), v1::JSON);
  EXPECT_EQ(Value("cfg"), R"({"a":1,"b":{"d":3}})");
}

TEST_F(TxnTest, AFailingTypedOpFailsTheWholeTxnAndWritesNothing) {
  Put("text", "not a number");
  const Revision before = db_->CurrentRevision();
  struct Case {
    std::string txn;
    absl::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"pb(success { put { key: "a" value: "1" } }
            success { increment { key: "text" delta: 1 } })pb",
       absl::StatusCode::kFailedPrecondition, "success op 1: "},
      {R"pb(success { put { key: "a" value: "1" } }
            success { increment { key: "none" delta: 1 must_exist: true } })pb",
       absl::StatusCode::kNotFound, "success op 1: "},
      {R"pb(success { json_update { key: "text" merge_patch: "{}" } })pb",
       absl::StatusCode::kFailedPrecondition, "success op 0: "},
      {R"pb(compare { key: "text" target: INT64_VALUE result: EQUAL int64_value: 1 }
            success { put { key: "a" value: "1" } })pb",
       absl::StatusCode::kFailedPrecondition, "compare of key \"text\""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<v1::TxnResponse> r = Txn(c.txn);
    EXPECT_EQ(r.status().code(), c.code) << c.txn << " -> " << r.status();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos)
        << r.status();
  }
  EXPECT_EQ(db_->CurrentRevision(), before);
  EXPECT_EQ(Value("a"), "<absent>");
}

TEST_F(TxnTest, Int64ValueComparesNumericallyWhereValueComparesBytes) {
  ASSERT_OK(Txn(R"pb(success { put { key: "n" value: "10" type: INT64 } })pb")
                .status());
  // Bytes: "10" < "9"; numbers: 10 > 9.
  EXPECT_TRUE(Holds(R"pb(key: "n" target: VALUE result: LESS value: "9")pb"));
  EXPECT_TRUE(Holds(
      R"pb(key: "n" target: INT64_VALUE result: GREATER int64_value: 9)pb"));
  EXPECT_TRUE(Holds(
      R"pb(key: "n" target: INT64_VALUE result: EQUAL int64_value: 10)pb"));
  EXPECT_FALSE(Holds(
      R"pb(key: "n" target: INT64_VALUE result: NOT_EQUAL int64_value: 10)pb"));
  // A missing key never satisfies it (like VALUE).
  EXPECT_FALSE(Holds(
      R"pb(key: "none" target: INT64_VALUE result: NOT_EQUAL int64_value: 1)pb"));
  // Ranges: every counter in [c/, c0) must hold.
  ASSERT_OK(Txn(R"pb(success { increment { key: "c/1" delta: 5 } }
                     success { increment { key: "c/2" delta: -5 } })pb")
                .status());
  EXPECT_TRUE(Holds(R"pb(key: "c/" range_end: "c0" target: INT64_VALUE
                         result: LESS int64_value: 6)pb"));
  EXPECT_FALSE(Holds(R"pb(key: "c/" range_end: "c0" target: INT64_VALUE
                          result: GREATER int64_value: 0)pb"));
}

TEST_F(TxnTest, TypedOpsAreValidatedBeforeAnythingRuns) {
  struct Case {
    std::string txn;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"pb(success { increment { key: "k" delta: 1 ttl_ms: 1000 } })pb",
       "success op 0: ttl_ms is not supported on an increment inside Txn"},
      {R"pb(success { put { key: "k" value: "1" } }
            success { increment { key: "k" delta: 1 } })pb",
       "writes key \"k\" a second time"},
      {R"pb(failure { json_update { key: "k" merge_patch: "{" } })pb",
       "failure op 0: "},
      {R"pb(success { json_update { key: "k" merge_patch: "{}" } }
            success { increment { key: "k" delta: 1 } })pb",
       "writes key \"k\" a second time"},
      {R"pb(success { json_get { key: "k" pointer: "no-slash" } })pb",
       "success op 0: "},
      {R"pb(compare { key: "k" target: INT64_VALUE value: "1" })pb",
       "target INT64_VALUE compares the int64_value field"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<v1::TxnResponse> r = Txn(c.txn);
    EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << c.txn << " -> "
                                                     << r.status();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos)
        << r.status();
  }
}

TEST_F(TxnTest, ValidationNamesThePartAndTheLimit) {
  limits_.max_batch_mutations = 2;
  limits_.max_key_bytes = 8;
  limits_.max_value_bytes = 4;
  struct Case {
    const char* txn;
    const char* message;
  } cases[] = {
      {"compare { key: 'a' } compare { key: 'a' } compare { key: 'a' }",
       "txn has 3 compares; the limit is 2 (--max_batch_mutations)"},
      {"success { get { key: 'a' } } success { get { key: 'a' } } "
       "success { get { key: 'a' } }",
       "txn has 3 success ops; the limit is 2 (--max_batch_mutations)"},
      {"failure { get { key: 'a' } } failure { get { key: 'a' } } "
       "failure { get { key: 'a' } }",
       "txn has 3 failure ops; the limit is 2 (--max_batch_mutations)"},
      {"compare { target: VERSION }",
       "compare 0: key is empty; keys must be 1..8 bytes (--max_key_bytes)"},
      {"compare { key: 'a' } compare { key: '123456789' }",
       "compare 1: key is 9 bytes; the limit is 8 (--max_key_bytes)"},
      {"compare { key: 'a' range_end: '123456789' }",
       "compare 0: range_end is 9 bytes; the limit is 8 (--max_key_bytes)"},
      {"compare { key: 'a' target: MOD version: 3 }",
       "compare 0: target MOD compares the mod_revision field; another "
       "target's field is set"},
      {"success { }",
       "success op 0 has no operation (set get, put, delete, scan, "
       "increment, json_get or json_update)"},
      {"failure { get { key: 'a' } } failure { put { key: 'a' value: '12345' } }",
       "failure op 1: value is 5 bytes; the limit is 4 (--max_value_bytes)"},
      {"success { delete { key: '' } }",
       "success op 0: key is empty; keys must be 1..8 bytes"},
      {"success { get { key: 'a' revision: 3 } }",
       "success op 0: reads in a Txn are made at the Txn's revision; "
       "revision must be 0"},
      {"success { scan { start_key: 'a' revision: 3 } }",
       "success op 0: reads in a Txn are made at the Txn's revision"},
      {"success { scan { end_key: '123456789' } }",
       "success op 0: end_key is 9 bytes; the limit is 8"},
      {"success { put { key: 'a' ttl_ms: 1000 } }",
       "success op 0: ttl_ms and lease are not supported on a put inside "
       "Txn or Commit yet"},
      {"failure { put { key: 'a' lease: 7 } }",
       "failure op 0: ttl_ms and lease are not supported"},
      {"success { put { key: 'a' value: '{' type: JSON } }",
       "success op 0: "},
      {"success { put { key: 'a' } } success { delete { key: 'a' } }",
       "success op 1: writes key \"a\" a second time (success op 0 writes it "
       "too); a Txn writes each key at most once"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.txn);
    absl::StatusOr<PreparedTxn> p = PrepareTxn(ParseTxn(c.txn), limits_);
    ASSERT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();
    EXPECT_NE(p.status().message().find(c.message), std::string::npos)
        << p.status().message();
  }
  // Enum values this server does not know.
  v1::TxnRequest unknown;
  v1::Compare* c = unknown.add_compare();
  c->set_key("a");
  c->set_target(static_cast<v1::Compare::CompareTarget>(9));
  auto p = PrepareTxn(unknown, limits_);
  EXPECT_TRUE(absl::IsInvalidArgument(p.status()));
  EXPECT_NE(p.status().message().find("compare 0: unknown target 9"),
            std::string::npos) << p.status();
  c->set_target(v1::Compare::MOD);
  c->set_result(static_cast<v1::Compare::CompareResult>(9));
  p = PrepareTxn(unknown, limits_);
  EXPECT_NE(p.status().message().find("compare 0: unknown result 9"),
            std::string::npos) << p.status();
  // The same key in both branches, and a read of a written key: fine.
  EXPECT_OK(PrepareTxn(ParseTxn("success { put { key: 'a' } } "
                                "success { get { key: 'a' } } "
                                "failure { delete { key: 'a' } }"),
                       limits_));
}

// ---- Commit

TEST_F(TxnTest, ACommitAbortsIfAReadKeyChangedAndNamesIt) {
  Put("a", "1");
  const Revision read = Put("b", "1");
  EXPECT_OK(Commit(read, {"a", "b", "never"}, {}));
  EXPECT_EQ(Value("written"), "1");
  Delete("written");
  // A change exactly at the read revision is what was read: no conflict.
  EXPECT_OK(Commit(read, {"b"}, {}));
  Delete("written");
  const Revision changed = Put("b", "2");
  auto r = Commit(read, {"a", "b"}, {});
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_NE(r.status().message().find(absl::StrFormat(
                "key \"b\" changed at revision %d, after read_revision %d",
                changed, read)),
            std::string::npos)
      << r.status();
  EXPECT_EQ(Value("written"), "<absent>");
  // A key created or deleted after the read conflicts too.
  const Revision before = db_->CurrentRevision();
  Put("never", "now");
  EXPECT_TRUE(absl::IsAborted(Commit(before, {"never"}, {}).status()));
  Delete("a");
  EXPECT_TRUE(absl::IsAborted(Commit(before, {"a"}, {}).status()));
}

TEST_F(TxnTest, RangeReadsSeePhantoms) {
  Put("acct/1", "x");
  const Revision read = Put("other", "x");
  const std::pair<std::string, std::string> empty_range{"p/", "p0"};
  EXPECT_OK(Commit(read, {}, {empty_range, {"acct/", "acct0"}}));
  Delete("written");
  const Revision base = db_->CurrentRevision();
  // A write just outside the range is no conflict.
  Put("p0", "x");
  Put("p", "x");
  EXPECT_OK(Commit(base, {}, {empty_range}));
  // A key created in a range that read empty: a phantom, aborted.
  Put("p/new", "x");
  auto r = Commit(base, {}, {{"a", "b"}, empty_range});
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("key \"p/new\" in read range 1"),
            std::string::npos)
      << r.status();
  // A key deleted from a range: aborted; the message names the first
  // changed key in key order.
  const Revision base2 = db_->CurrentRevision();
  Put("acct/3", "y");
  Delete("acct/1");
  r = Commit(base2, {}, {{"acct/", ""}});
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("key \"acct/1\""), std::string::npos)
      << r.status();
}

TEST_F(TxnTest, KeysBeginningWithTheReservedPrefixAreCheckedWhereTheyLive) {
  const Revision read = Put("a", "1");
  // The server's own metadata lives between ordinary and escaped keys: a
  // write there is not a write to any key of a full-range read.
  ASSERT_OK(db_->Put(storage::WriteOptions(), SystemKey("lease/1"), "x"));
  EXPECT_OK(Commit(read, {}, {{"", ""}}));
  Delete("written");
  const Revision read2 = db_->CurrentRevision();
  Put("\xff\xffuser", "1");  // Stored escaped, above the reserved area.
  auto r = Commit(read2, {}, {{"\xff", ""}});
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("\\xff\\xffuser"), std::string::npos)
      << r.status();
  EXPECT_TRUE(absl::IsAborted(Commit(read2, {"\xff\xffuser"}, {}).status()));
  EXPECT_OK(Commit(read2, {}, {{"", "\xff\xff"}}));
}

TEST_F(TxnTest, StoredRangesSkipTheReservedArea) {
  using Ranges = std::vector<std::pair<std::string, std::string>>;
  const KeyspaceView def;
  EXPECT_EQ(StoredRanges(def, "a", "b"), (Ranges{{"a", "b"}}));
  EXPECT_EQ(StoredRanges(def, "b", "a"), Ranges{});
  EXPECT_EQ(StoredRanges(def, "a", ""),
            (Ranges{{"a", "\xff\xff"}, {"\xff\xff\xff", ""}}));
  EXPECT_EQ(StoredRanges(def, "a", "\xff\xff"), (Ranges{{"a", "\xff\xff"}}));
  EXPECT_EQ(StoredRanges(def, "a", "\xff\xffm"),
            (Ranges{{"a", "\xff\xff"}, {"\xff\xff\xff", "\xff\xff\xffm"}}));
  EXPECT_EQ(StoredRanges(def, "\xff\xff" "c", ""),
            (Ranges{{"\xff\xff\xff" "c", ""}}));
  const KeyspaceView ns(5);
  EXPECT_EQ(StoredRanges(ns, "a", "b"),
            (Ranges{{ns.Encode("a"), ns.Encode("b")}}));
  EXPECT_EQ(StoredRanges(ns, "", ""),
            (Ranges{{ns.Encode(""), std::string("\xff\xff\x01\x06")}}));
}

TEST_F(TxnTest, TooOldAndFutureReadRevisions) {
  // An empty database: reads at revision 0 saw nothing.
  EXPECT_OK(Commit(0, {"a"}, {{"", ""}}));
  Delete("written");
  Put("a", "1");
  EXPECT_TRUE(absl::IsAborted(Commit(0, {"a"}, {}).status()));
  const Revision r2 = Put("a", "2");
  const Revision r3 = Put("b", "3");
  ASSERT_OK(db_->CompactHistory(r3));
  auto r = Commit(r2, {"a"}, {});
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("transaction too old"),
            std::string::npos);
  EXPECT_EQ(Value("written"), "<absent>");
  // At the compacted revision itself, reads are still served and every
  // later change is known: checked, not refused.
  EXPECT_OK(Commit(r3, {"a", "b"}, {}));
  Put("b", "4");
  EXPECT_TRUE(absl::IsAborted(Commit(r3, {"b"}, {}).status()));
  r = Commit(db_->CurrentRevision() + 1, {"a"}, {});
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  // A blind write (no reads) needs no read revision: it is not checked.
  v1::CommitRequest blind;
  blind.add_mutations()->mutable_put()->set_key("blind");
  EXPECT_OK(Commit(blind));
  EXPECT_EQ(Value("blind"), "");
}

TEST_F(TxnTest, ReadsOlderThanTheWindowAreCheckedOnTheDataOrRefused) {
  Open(/*window=*/4);
  Put("x", "1");
  const Revision read = Put("y", "1");
  for (int i = 0; i < 6; i++) Put(absl::StrFormat("filler%d", i), "f");
  // The window forgot everything up to `read`: a point read falls back to
  // the key's last change (exact)...
  EXPECT_OK(Commit(read, {"x", "y"}, {}));
  Delete("written");
  for (int i = 0; i < 6; i++) Put(absl::StrFormat("filler%d", i), "g");
  Put("y", "2");
  for (int i = 0; i < 6; i++) Put(absl::StrFormat("filler%d", i), "h");
  auto r = Commit(read, {"x", "y"}, {});
  ASSERT_TRUE(absl::IsAborted(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("key \"y\""), std::string::npos);
  // ...while a range read is refused as too old.
  r = Commit(read, {}, {{"x", "z"}});
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("too old for range reads"),
            std::string::npos)
      << r.status();
  EXPECT_NE(r.status().message().find("--txn_conflict_window_keys"),
            std::string::npos);
  // Within the window, both work.
  const Revision recent = db_->CurrentRevision();
  EXPECT_OK(Commit(recent, {"x"}, {{"x", "z"}}));
}

TEST_F(TxnTest, CommitValidation) {
  limits_.max_batch_mutations = 2;
  limits_.max_key_bytes = 8;
  struct Case {
    const char* request;
    const char* message;
  } cases[] = {
      {"read_revision: -1", "read_revision must be >= 0"},
      {"read_revision: 1 read_keys: 'a' read_keys: 'b' read_keys: 'c'",
       "commit has 3 read keys; the limit is 2 (--max_batch_mutations)"},
      {"read_revision: 1 read_ranges {} read_ranges {} read_ranges {}",
       "commit has 3 read ranges; the limit is 2"},
      {"mutations { put { key: 'a' } } mutations { put { key: 'a' } } "
       "mutations { put { key: 'a' } }",
       "commit has 3 mutations; the limit is 2"},
      {"read_revision: 1 read_keys: ''", "read key 0: key is empty"},
      {"read_revision: 1 read_ranges { end_key: '123456789' }",
       "read range 0: end_key is 9 bytes; the limit is 8"},
      {"mutations { put { key: 'a' } } mutations { }",
       "mutation 1 has no operation (set put or delete)"},
      {"mutations { delete { key: '123456789' } }",
       "mutation 0: key is 9 bytes; the limit is 8"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.request);
    v1::CommitRequest req;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(c.request, &req));
    auto p = PrepareCommit(req, limits_);
    ASSERT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();
    EXPECT_NE(p.status().message().find(c.message), std::string::npos)
        << p.status().message();
  }
}

}  // namespace
}  // namespace strata::server
