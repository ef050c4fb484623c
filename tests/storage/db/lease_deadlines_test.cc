// Options::lease_deadlines: a key attached to a lease is absent, wherever
// the engine judges expiry, once the lease's deadline has passed; and
// ReadOptions::hide_expired_history makes reads of a past revision judge
// expiry too.

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/manual_clock_env.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using ::strata::testing::ManualClockEnv;
using ::strata::testing::TempDir;

// Deadlines a test sets by hand.
class FakeLeases final : public LeaseDeadlines {
 public:
  void Set(uint64_t id, uint64_t deadline) {
    absl::MutexLock l(&mu_);
    deadlines_[id] = deadline;
  }
  uint64_t DeadlineUnixMs(uint64_t id) const override {
    absl::MutexLock l(&mu_);
    auto it = deadlines_.find(id);
    return it == deadlines_.end() ? 0 : it->second;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<uint64_t, uint64_t> deadlines_;
};

class LeaseDeadlinesTest : public ::testing::Test {
 protected:
  LeaseDeadlinesTest() {
    options_.env = &env_;
    options_.keep_history = true;
    options_.history_retention_seconds = 0;
    options_.lease_deadlines = &leases_;
    auto db = DB::Open(options_, dir_.path());
    EXPECT_TRUE(db.ok()) << db.status();
    if (db.ok()) db_ = std::move(*db);
  }
  Revision PutAttached(const std::string& k, const std::string& v,
                       uint64_t lease, uint64_t expire_at = 0) {
    WriteBatch b;
    PutAttributes a;
    a.lease = lease;
    a.expire_at_unix_ms = expire_at;
    b.Put(k, v, a);
    auto r = db_->Write(WriteOptions(), &b);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : 0;
  }
  std::string Get(const std::string& k, ReadOptions ro = ReadOptions()) {
    auto r = db_->GetWithMetadata(ro, k);
    if (!r.ok()) return r.status().ToString();
    return r->found ? r->value : "NOT_FOUND";
  }
  std::string Scan(ReadOptions ro = ReadOptions(), bool reverse = false) {
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
  uint64_t Now() const { return env_.now_unix_ms.load(); }

  ManualClockEnv env_;
  FakeLeases leases_;
  TempDir dir_;
  Options options_;
  std::unique_ptr<DB> db_;
};

TEST_F(LeaseDeadlinesTest, KeysOfAnExpiredLeaseAreAbsentForLatestReads) {
  leases_.Set(7, Now() + 100);
  ASSERT_OK(db_->Put(WriteOptions(), "a", "1"));
  PutAttached("b", "2", 7);
  PutAttached("c", "3", 8);  // Lease 8 has no deadline: never expires.
  env_.Advance(99);
  EXPECT_EQ(Get("b"), "2");
  EXPECT_EQ(Scan(), "a,b,c,");
  env_.Advance(1);  // Exactly the lease's deadline.
  EXPECT_EQ(Get("b"), "NOT_FOUND");
  EXPECT_EQ(Scan(), "a,c,");
  EXPECT_EQ(Scan(ReadOptions(), /*reverse=*/true), "c,a,");
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  EXPECT_EQ(Get("b"), "NOT_FOUND");
  // The engine asks on every read: a later deadline shows the key again
  // (the server never moves a passed deadline; see docs/expiry.md).
  leases_.Set(7, Now() + 100);
  EXPECT_EQ(Get("b"), "2");
}

TEST_F(LeaseDeadlinesTest, TheEarlierOfOwnAndLeaseDeadlineCounts) {
  leases_.Set(1, Now() + 1000);
  PutAttached("own-first", "x", 1, Now() + 10);
  leases_.Set(2, Now() + 10);
  PutAttached("lease-first", "y", 2, Now() + 1000);
  env_.Advance(10);
  EXPECT_EQ(Get("own-first"), "NOT_FOUND");
  EXPECT_EQ(Get("lease-first"), "NOT_FOUND");
}

TEST_F(LeaseDeadlinesTest, SnapshotsJudgeByTheirOwnClock) {
  leases_.Set(7, Now() + 100);
  PutAttached("k", "v", 7);
  const Snapshot* before = db_->GetSnapshot();
  env_.Advance(100);
  ReadOptions ro;
  ro.snapshot = before;
  EXPECT_EQ(Get("k", ro), "v");  // Taken before the deadline.
  EXPECT_EQ(Get("k"), "NOT_FOUND");
  db_->ReleaseSnapshot(before);
}

TEST_F(LeaseDeadlinesTest, CommitViewTreatsLeaseExpiredKeysAsAbsent) {
  leases_.Set(7, Now() + 100);
  PutAttached("k", "v", 7);
  env_.Advance(100);
  std::string seen;
  WriteBatch batch;
  batch.SetCommitFunction([&](CommitView* view, WriteBatch* b) {
    std::string value;
    KeyMetadata meta;
    seen = view->Get("k", &value, &meta).ok() ? "present" : "absent";
    auto it = view->NewIterator();
    it->SeekToFirst();
    seen += it->Valid() ? " iter:present" : " iter:absent";
    b->Put("k", "new");  // Re-creates it.
    return absl::OkStatus();
  });
  ASSERT_OK(db_->Write(WriteOptions(), &batch));
  EXPECT_EQ(seen, "absent iter:absent");
  ASSERT_OK_AND_ASSIGN(GetResult g, db_->GetWithMetadata(ReadOptions(), "k"));
  EXPECT_EQ(g.metadata.version, 1u);
}

TEST_F(LeaseDeadlinesTest, HistoryShowsExpiredKeysUnlessAskedToHideThem) {
  const Revision r = PutAttached("own", "1", 0, Now() + 10);
  leases_.Set(7, Now() + 10);
  const Revision r2 = PutAttached("leased", "2", 7);
  ASSERT_GT(r2, r);
  env_.Advance(10);
  auto snap = db_->GetSnapshotAt(r2);
  ASSERT_OK(snap);
  ReadOptions history;
  history.snapshot = *snap;
  EXPECT_EQ(Get("own", history), "1");
  EXPECT_EQ(Get("leased", history), "2");
  EXPECT_EQ(Scan(history), "leased,own,");
  ReadOptions hidden = history;
  hidden.hide_expired_history = true;
  EXPECT_EQ(Get("own", hidden), "NOT_FOUND");
  EXPECT_EQ(Get("leased", hidden), "NOT_FOUND");
  EXPECT_EQ(Scan(hidden), "");
  EXPECT_EQ(Scan(hidden, /*reverse=*/true), "");
  db_->ReleaseSnapshot(*snap);
}

}  // namespace
}  // namespace strata::storage
