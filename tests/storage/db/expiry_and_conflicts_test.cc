// The engine's support for expiry and optimistic transactions: keys past
// their deadline are absent for reads at the latest revision (but not for
// reads of history), an expired key is re-created by a put and deleted for
// real by a delete; and a commit can ask what changed since a revision,
// for one key (exactly) and for a range (from the window of recent
// writes).

#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "db/recent_writes.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/manual_clock_env.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using ::strata::testing::ManualClockEnv;
using ::strata::testing::TempDir;

class ExpiryTest : public ::testing::Test {
 protected:
  ExpiryTest() {
    options_.env = &env_;
    options_.keep_history = true;
    options_.history_retention_seconds = 0;
    options_.conflict_window_keys = 100;
    Reopen();
  }
  void Reopen() {
    db_.reset();
    auto db = DB::Open(options_, dir_.path());
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }
  // Puts k=v expiring `ttl_ms` after the manual clock's now.
  Revision PutTtl(const std::string& k, const std::string& v, uint64_t ttl_ms) {
    WriteBatch b;
    PutAttributes a;
    a.expire_at_unix_ms = env_.now_unix_ms.load() + ttl_ms;
    b.Put(k, v, a);
    auto r = db_->Write(WriteOptions(), &b);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : 0;
  }
  std::string Get(const std::string& k, const Snapshot* snap = nullptr) {
    ReadOptions ro;
    ro.snapshot = snap;
    auto r = db_->GetWithMetadata(ro, k);
    if (!r.ok()) return r.status().ToString();
    if (!r->found) return "NOT_FOUND";
    return absl::StrFormat("%s v%d", r->value, r->metadata.version);
  }
  std::string Scan(const Snapshot* snap = nullptr, bool reverse = false) {
    ReadOptions ro;
    ro.snapshot = snap;
    auto it = db_->NewIterator(ro);
    std::string out;
    auto add = [&] { out += std::string(it->key()) + ","; };
    if (reverse) {
      for (it->SeekToLast(); it->Valid(); it->Prev()) add();
    } else {
      for (it->SeekToFirst(); it->Valid(); it->Next()) add();
    }
    return out;
  }

  ManualClockEnv env_;
  TempDir dir_;
  Options options_;
  std::unique_ptr<DB> db_;
};

TEST_F(ExpiryTest, AKeyIsAbsentFromItsDeadlineOnThroughEveryLatestRead) {
  ASSERT_OK(db_->Put(WriteOptions(), "a", "1"));
  PutTtl("b", "2", 1000);
  ASSERT_OK(db_->Put(WriteOptions(), "c", "3"));
  env_.Advance(999);
  EXPECT_EQ(Get("b"), "2 v1");
  EXPECT_EQ(Scan(), "a,b,c,");
  env_.Advance(1);  // Exactly the deadline.
  EXPECT_EQ(Get("b"), "NOT_FOUND");
  EXPECT_EQ(Scan(), "a,c,");
  EXPECT_EQ(Scan(nullptr, /*reverse=*/true), "c,a,");
  const Snapshot* now = db_->GetSnapshot();
  EXPECT_EQ(Get("b", now), "NOT_FOUND");
  db_->ReleaseSnapshot(now);
  // The same after the data moves to tables.
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  EXPECT_EQ(Get("b"), "NOT_FOUND");
  EXPECT_EQ(Scan(), "a,c,");
}

TEST_F(ExpiryTest, AnExpiredVersionHidesOlderOnes) {
  ASSERT_OK(db_->Put(WriteOptions(), "k", "old"));  // No deadline.
  PutTtl("k", "new", 10);
  env_.Advance(10);
  EXPECT_EQ(Get("k"), "NOT_FOUND");  // Not "old".
  EXPECT_EQ(Scan(), "");
  EXPECT_EQ(Scan(nullptr, true), "");
}

TEST_F(ExpiryTest, HistoryShowsTheKeyAsItWas) {
  const Revision r = PutTtl("k", "v", 10);
  env_.Advance(10);
  auto snap = db_->GetSnapshotAt(r);
  ASSERT_OK(snap);
  EXPECT_EQ(Get("k", *snap), "v v1");
  db_->ReleaseSnapshot(*snap);
}

TEST_F(ExpiryTest, PutRecreatesAndDeleteRemovesAnExpiredKey) {
  PutTtl("k", "1", 10);
  PutTtl("k", "2", 10);
  env_.Advance(10);
  // A put after the deadline starts a new life: version 1.
  ASSERT_OK_AND_ASSIGN(Revision r, db_->Put(WriteOptions(), "k", "3"));
  ASSERT_OK_AND_ASSIGN(GetResult g, db_->GetWithMetadata(ReadOptions(), "k"));
  EXPECT_EQ(g.metadata.version, 1u);
  EXPECT_EQ(g.metadata.create_revision, r);
  // A delete of an expired key still writes its tombstone (the key is on
  // disk until then): one more revision, visible to the change log.
  PutTtl("e", "x", 10);
  env_.Advance(10);
  ASSERT_OK_AND_ASSIGN(Revision d, db_->Delete(WriteOptions(), "e"));
  EXPECT_EQ(d, r + 2);
  ASSERT_OK_AND_ASSIGN(auto changes, db_->GetUpdatesSince(d));
  ASSERT_TRUE(changes->Next());
  EXPECT_EQ(changes->batch().changes[0].type, Change::Type::kDelete);
  // Deleting it again changes nothing.
  ASSERT_OK_AND_ASSIGN(Revision again, db_->Delete(WriteOptions(), "e"));
  EXPECT_EQ(again, d);
}

TEST_F(ExpiryTest, DeadlinesSurviveReopen) {
  PutTtl("k", "v", 1000);
  Reopen();
  EXPECT_EQ(Get("k"), "v v1");
  env_.Advance(1000);
  EXPECT_EQ(Get("k"), "NOT_FOUND");
}

TEST_F(ExpiryTest, CommitViewSeesExpiryAndChanges) {
  ASSERT_OK_AND_ASSIGN(Revision r1, db_->Put(WriteOptions(), "a", "1"));
  PutTtl("b", "2", 10);
  ASSERT_OK_AND_ASSIGN(Revision r3, db_->Delete(WriteOptions(), "a"));
  env_.Advance(10);
  WriteBatch batch;
  std::string seen;
  batch.SetCommitFunction([&](CommitView* view, WriteBatch*) -> absl::Status {
    std::string v;
    KeyMetadata m;
    // b expired: absent.
    seen += absl::IsNotFound(view->Get("b", &v, &m)) ? "b:absent " : "b:there ";
    // Changes: a was deleted at r3; b put at r1 + 1; c never.
    seen += absl::StrFormat("a@%d b@%d c@%d ", *view->LastChangeRevision("a"),
                            *view->LastChangeRevision("b"),
                            *view->LastChangeRevision("c"));
    seen += absl::StrFormat("range@%d ", *view->LastChangeInRange("a", "z", r1));
    seen += absl::StrFormat("none@%d", *view->LastChangeInRange("c", "", r1));
    return absl::OkStatus();
  });
  ASSERT_OK(db_->Write(WriteOptions(), &batch));
  EXPECT_EQ(seen, absl::StrFormat("b:absent a@%d b@%d c@0 range@%d none@0",
                                  r3, r1 + 1, r3));
}

// A range conflict names its first changed key (in key order), and a
// commit knows the compacted revision its view was taken at.
TEST_F(ExpiryTest, CommitViewNamesTheFirstChangedKeyAndTheCompactedRevision) {
  ASSERT_OK_AND_ASSIGN(Revision r1, db_->Put(WriteOptions(), "m", "1"));
  ASSERT_OK(db_->Put(WriteOptions(), "q", "2").status());
  ASSERT_OK(db_->Put(WriteOptions(), "n", "3").status());
  ASSERT_OK(db_->Delete(WriteOptions(), "m").status());  // After r1 too.
  ASSERT_OK(db_->CompactHistory(r1));
  WriteBatch batch;
  std::string seen;
  batch.SetCommitFunction([&](CommitView* view, WriteBatch*) -> absl::Status {
    std::string first = "untouched";
    Revision newest = *view->LastChangeInRange("a", "p", r1, &first);
    seen += absl::StrFormat("%d:%s ", newest, first);
    std::string none = "untouched";
    newest = *view->LastChangeInRange("r", "", r1, &none);
    seen += absl::StrFormat("%d:%s ", newest, none);
    seen += absl::StrFormat("compacted %d", view->compacted_revision());
    return absl::OkStatus();
  });
  ASSERT_OK(db_->Write(WriteOptions(), &batch));
  // m was deleted at r1 + 3, n written at r1 + 2: the newest is m's delete,
  // the first key in order is m.
  EXPECT_EQ(seen, absl::StrFormat("%d:m 0:untouched compacted %d", r1 + 3, r1));
}

TEST(RecentWriteIndexTest, NewestInRangeAndTheWindow) {
  RecentWriteIndex index(/*capacity=*/3, /*floor=*/10);
  index.Record("a", 11);
  index.Record("c", 12);
  index.Record("b", 13);
  EXPECT_EQ(*index.NewestInRange("a", "c", 10), 13u);  // a, b.
  std::string first;
  EXPECT_EQ(*index.NewestInRange("b", "", 10, &first), 13u);
  EXPECT_EQ(first, "b");  // The smallest changed key, not the newest.
  EXPECT_EQ(*index.NewestInRange("a", "", 11, &first), 13u);
  EXPECT_EQ(first, "b");  // a@11 is not after 11.
  EXPECT_EQ(*index.NewestInRange("c", "", 10), 12u);
  EXPECT_EQ(*index.NewestInRange("c", "", 12), 0u);    // Nothing after 12.
  EXPECT_EQ(*index.NewestInRange("x", "", 10), 0u);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      index.NewestInRange("a", "", 9).status()));  // Before the window.
  index.Record("d", 14);  // Evicts a@11: the window starts after 11.
  EXPECT_EQ(index.floor(), 11u);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      index.NewestInRange("a", "", 10).status()));
  EXPECT_EQ(*index.NewestInRange("a", "", 11), 14u);
  EXPECT_EQ(*index.NewestInRange("a", "b", 11), 0u);  // a's 11 is not > 11.
  RecentWriteIndex off(0, 5);
  off.Record("a", 6);
  EXPECT_TRUE(absl::IsFailedPrecondition(off.NewestInRange("a", "", 6).status()));
}

}  // namespace
}  // namespace strata::storage
