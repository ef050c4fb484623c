// Engine behaviour through the public API: reads and writes, recovery,
// snapshots, atomic batches, iterators, flush and compaction. The database
// lives in an in-memory Env: these behaviours do not depend on the file
// system (the POSIX Env runs under the fault-injection, corruption and
// server tests).

#include "strata/storage/db.h"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "util/mutex.h"
#include "gtest/gtest.h"
#include "strata/storage/env.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

class DBTest : public ::testing::Test {
 protected:
  DBTest() {
    options_.memtable_bytes = 64 << 10;
    options_.block_cache_bytes = 1 << 20;
    options_.max_bytes_for_level_base = 256 << 10;
    options_.target_file_size = 64 << 10;
    Reopen();
  }

  void Reopen() {
    db_.reset();
    options_.env = env_.get();
    auto db = DB::Open(options_, kDbName);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }

  DBImpl* impl() { return static_cast<DBImpl*>(db_.get()); }

  std::string Get(std::string_view key, const Snapshot* snap = nullptr) {
    ReadOptions ro;
    ro.snapshot = snap;
    auto v = db_->Get(ro, key);
    if (absl::IsNotFound(v.status())) return "NOT_FOUND";
    if (!v.ok()) return "ERROR: " + v.status().ToString();
    return *v;
  }

  // "k1=v1,k2=v2" of the whole database in iterator order.
  std::string Contents(const Snapshot* snap = nullptr) {
    ReadOptions ro;
    ro.snapshot = snap;
    auto it = db_->NewIterator(ro);
    std::string out;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (!out.empty()) out += ",";
      absl::StrAppendFormat(&out, "%s=%s", std::string(it->key()),
                            std::string(it->value()));
    }
    EXPECT_OK(it->status());
    return out;
  }

  static constexpr char kDbName[] = "/db";
  const std::unique_ptr<Env> env_ = NewMemEnv();
  Options options_;
  std::unique_ptr<DB> db_;
  WriteOptions wo_;
};

TEST_F(DBTest, GetMissingKeyIsNotFound) {
  EXPECT_EQ(Get("nope"), "NOT_FOUND");
}

TEST_F(DBTest, PutGetDeleteOverwrite) {
  ASSERT_OK(db_->Put(wo_, "a", "1"));
  EXPECT_EQ(Get("a"), "1");
  ASSERT_OK(db_->Put(wo_, "a", "2"));
  EXPECT_EQ(Get("a"), "2");
  ASSERT_OK(db_->Delete(wo_, "a"));
  EXPECT_EQ(Get("a"), "NOT_FOUND");
  ASSERT_OK(db_->Delete(wo_, "never-existed"));
}

TEST_F(DBTest, EmptyValueIsAValue) {
  ASSERT_OK(db_->Put(wo_, "k", ""));
  EXPECT_EQ(Get("k"), "");
}

TEST_F(DBTest, WritesSurviveReopen) {
  ASSERT_OK(db_->Put(wo_, "a", "1"));
  ASSERT_OK(db_->Put(wo_, "b", "2"));
  ASSERT_OK(db_->Delete(wo_, "a"));
  Reopen();
  EXPECT_EQ(Get("a"), "NOT_FOUND");
  EXPECT_EQ(Get("b"), "2");
  ASSERT_OK(db_->Put(wo_, "c", "3"));
  Reopen();
  Reopen();
  EXPECT_EQ(Contents(), "b=2,c=3");
}

TEST_F(DBTest, SecondOpenOfSameDirectoryIsRefused) {
  auto second = DB::Open(options_, kDbName);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  // The first is undisturbed.
  ASSERT_OK(db_->Put(wo_, "k", "v"));
  EXPECT_EQ(Get("k"), "v");
}

TEST_F(DBTest, OpenWithoutCreateIfMissingIsNotFound) {
  Options o = options_;
  o.create_if_missing = false;
  auto db = DB::Open(o, "/absent");
  EXPECT_TRUE(absl::IsNotFound(db.status())) << db.status();
}

TEST_F(DBTest, WriteBatchIsAtomicAndLaterOperationsWin) {
  ASSERT_OK(db_->Put(wo_, "gone", "x"));
  WriteBatch batch;
  batch.Put("a", "1");
  batch.Put("b", "2");
  batch.Delete("gone");
  batch.Put("a", "3");
  ASSERT_OK(db_->Write(wo_, &batch));
  EXPECT_EQ(Contents(), "a=3,b=2");
  Reopen();
  EXPECT_EQ(Contents(), "a=3,b=2");
}

TEST_F(DBTest, SnapshotSeesStateAtItsCreation) {
  ASSERT_OK(db_->Put(wo_, "a", "1"));
  const Snapshot* snap = db_->GetSnapshot();
  ASSERT_OK(db_->Put(wo_, "a", "2"));
  ASSERT_OK(db_->Put(wo_, "b", "new"));
  ASSERT_OK(db_->Delete(wo_, "a"));
  EXPECT_EQ(Get("a", snap), "1");
  EXPECT_EQ(Get("b", snap), "NOT_FOUND");
  EXPECT_EQ(Contents(snap), "a=1");
  // Survives flush and compaction while held.
  ASSERT_OK(db_->Flush());
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  EXPECT_EQ(Get("a", snap), "1");
  EXPECT_EQ(Contents(snap), "a=1");
  EXPECT_EQ(Contents(), "b=new");
  db_->ReleaseSnapshot(snap);
}

TEST_F(DBTest, IteratorSeekNextPrev) {
  for (const char* k : {"b", "d", "f", "h"}) ASSERT_OK(db_->Put(wo_, k, k));
  ASSERT_OK(db_->Delete(wo_, "d"));
  auto it = db_->NewIterator(ReadOptions());
  it->Seek("c");
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "f");
  it->Prev();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "b");
  it->Next();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "f");
  it->SeekToLast();
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->key(), "h");
  it->Next();
  EXPECT_FALSE(it->Valid());
  it->Seek("z");
  EXPECT_FALSE(it->Valid());
}

TEST_F(DBTest, IteratorIsStableWhileWritesContinue) {
  for (int i = 0; i < 100; i++) {
    ASSERT_OK(db_->Put(wo_, absl::StrFormat("k%03d", i), "old"));
  }
  auto it = db_->NewIterator(ReadOptions());
  for (int i = 0; i < 100; i++) {
    ASSERT_OK(db_->Put(wo_, absl::StrFormat("k%03d", i), "new"));
    ASSERT_OK(db_->Put(wo_, absl::StrFormat("k%03da", i), "added"));
  }
  ASSERT_OK(db_->Flush());
  int n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), n++) {
    EXPECT_EQ(it->value(), "old");
  }
  EXPECT_EQ(n, 100);
}

TEST_F(DBTest, FlushWritesLevel0TableAndDataStaysReadable) {
  for (int i = 0; i < 1000; i++) {
    ASSERT_OK(db_->Put(wo_, absl::StrFormat("key%05d", i), std::string(100, 'v')));
  }
  ASSERT_OK(db_->Flush());
  Statistics stats = db_->GetStatistics();
  EXPECT_GE(stats.flush.count, 1u);
  EXPECT_GT(stats.levels.live_sst_bytes, 0u);
  for (int i = 0; i < 1000; i += 37) {
    EXPECT_EQ(Get(absl::StrFormat("key%05d", i)), std::string(100, 'v'));
  }
  Reopen();
  EXPECT_EQ(Get("key00999"), std::string(100, 'v'));
}

TEST_F(DBTest, CompactionDropsOverwrittenVersionsAndTombstones) {
  // Only CompactRange compacts, so `before` counts all five versions: a
  // background L0 compaction that raced ahead made the ratio flaky.
  options_.level0_compaction_trigger = 100;
  Reopen();
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < 500; i++) {
      ASSERT_OK(db_->Put(wo_, absl::StrFormat("key%05d", i),
                         absl::StrFormat("value-%d-%s", round, std::string(200, 'x'))));
    }
    ASSERT_OK(db_->Flush());
  }
  for (int i = 0; i < 250; i++) {
    ASSERT_OK(db_->Delete(wo_, absl::StrFormat("key%05d", i)));
  }
  uint64_t before = db_->GetStatistics().levels.live_sst_bytes;
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  Statistics stats = db_->GetStatistics();
  EXPECT_GE(stats.compaction.count, 1u);
  EXPECT_LT(stats.levels.live_sst_bytes, before / 3);
  EXPECT_EQ(Get("key00000"), "NOT_FOUND");
  EXPECT_EQ(Get("key00400").substr(0, 8), "value-4-");
  EXPECT_EQ(impl()->TEST_NumFilesAtLevel(0), 0);
}

TEST_F(DBTest, ConcurrentWritersAreAllDurable) {
  constexpr int kThreads = 8, kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; i++) {
        ASSERT_OK(db_->Put(wo_, absl::StrFormat("t%d-%04d", t, i), "v"));
      }
    });
  }
  for (auto& th : threads) th.join();
  Statistics stats = db_->GetStatistics();
  EXPECT_EQ(stats.writes.keys, uint64_t{kThreads * kPerThread});
  Reopen();
  for (int t = 0; t < kThreads; t++) {
    EXPECT_EQ(Get(absl::StrFormat("t%d-%04d", t, kPerThread - 1)), "v");
  }
}

TEST_F(DBTest, WriteAsyncCallsBackOnceDurable) {
  constexpr int kWrites = 500;
  Mutex mu;
  CondVar cv;
  int done = 0;
  absl::Status first_error;
  for (int i = 0; i < kWrites; i++) {
    WriteBatch b;
    b.Put(absl::StrFormat("async%04d", i), "v");
    db_->WriteAsync(wo_, std::move(b), [&](absl::StatusOr<Revision> r) {
      MutexLock l(&mu);
      if (!r.ok() && first_error.ok()) first_error = r.status();
      done++;
      cv.SignalAll();
    });
  }
  {
    MutexLock l(&mu);
    while (done < kWrites) cv.Wait(&mu);
  }
  ASSERT_OK(first_error);
  EXPECT_EQ(Get("async0499"), "v");
  Reopen();
  EXPECT_EQ(Get("async0000"), "v");
}

// A write whose deadline has passed when its commit group forms is dropped
// unwritten (an overloaded server's client has given up on it): no
// revision, no commit function, DeadlineExceeded; the writes around it in
// the same queue commit as usual.
TEST_F(DBTest, AWriteQueuedPastItsDeadlineIsNotWritten) {
  const Revision before = db_->CurrentRevision();
  WriteOptions late = wo_;
  late.deadline = std::chrono::system_clock::now() - std::chrono::seconds(1);
  WriteBatch b;
  b.Put("late", "v");
  bool commit_function_ran = false;
  b.SetCommitFunction([&](CommitView*, WriteBatch*) {
    commit_function_ran = true;
    return absl::OkStatus();
  });
  absl::StatusOr<Revision> r = db_->Write(late, &b);
  EXPECT_TRUE(absl::IsDeadlineExceeded(r.status())) << r.status();
  EXPECT_FALSE(commit_function_ran);
  EXPECT_EQ(Get("late"), "NOT_FOUND");
  EXPECT_EQ(db_->CurrentRevision(), before);

  // Asynchronous writers: every other one is late; the others commit.
  constexpr int kWrites = 100;
  Mutex mu;
  CondVar cv;
  int done = 0;
  int expired = 0;
  WriteOptions in_time = wo_;
  in_time.deadline = std::chrono::system_clock::now() + std::chrono::hours(1);
  for (int i = 0; i < kWrites; i++) {
    WriteBatch w;
    w.Put(absl::StrFormat("k%03d", i), "v");
    db_->WriteAsync(i % 2 == 0 ? late : in_time, std::move(w),
                    [&](absl::StatusOr<Revision> result) {
                      MutexLock l(&mu);
                      if (absl::IsDeadlineExceeded(result.status())) expired++;
                      done++;
                      cv.SignalAll();
                    });
  }
  {
    MutexLock l(&mu);
    while (done < kWrites) cv.Wait(&mu);
  }
  EXPECT_EQ(expired, kWrites / 2);
  EXPECT_EQ(Get("k000"), "NOT_FOUND");
  EXPECT_EQ(Get("k001"), "v");
  EXPECT_EQ(db_->CurrentRevision(), before + kWrites / 2);
  EXPECT_EQ(db_->GetStatistics().writes.expired_in_queue, 1u + kWrites / 2);
}

TEST_F(DBTest, CacheOnlyGetWouldBlockOnColdTable) {
  ASSERT_OK(db_->Put(wo_, "cold", "v"));
  ASSERT_OK(db_->Flush());
  Reopen();  // Empty block and table caches.
  ReadOptions ro;
  ro.cache_only = true;
  auto v = db_->Get(ro, "cold");
  EXPECT_TRUE(IsWouldBlock(v.status())) << v.status();
  EXPECT_EQ(Get("cold"), "v");  // Warms the caches.
  auto warm = db_->Get(ro, "cold");
  ASSERT_OK(warm);
  EXPECT_EQ(*warm, "v");
}

TEST_F(DBTest, CrashDuringFlushLosesNothing) {
  ASSERT_OK(db_->Put(wo_, "a", "1"));
  impl()->TEST_hook = [](std::string_view point) {
    return point == "flush:table_written"
               ? absl::UnavailableError("injected crash before install")
               : absl::OkStatus();
  };
  EXPECT_FALSE(db_->Flush().ok());
  // The engine is read-only now; reads still work.
  EXPECT_EQ(Get("a"), "1");
  EXPECT_FALSE(db_->Put(wo_, "b", "2").ok());
  impl()->TEST_hook = nullptr;
  Reopen();
  EXPECT_EQ(Contents(), "a=1");
  ASSERT_OK(db_->Put(wo_, "b", "2"));
  ASSERT_OK(db_->Flush());
  Reopen();
  EXPECT_EQ(Contents(), "a=1,b=2");
}

TEST_F(DBTest, CrashDuringCompactionLosesAndResurrectsNothing) {
  for (int i = 0; i < 300; i++) {
    ASSERT_OK(db_->Put(wo_, absl::StrFormat("k%04d", i), "v1"));
  }
  ASSERT_OK(db_->Flush());
  for (int i = 0; i < 300; i += 2) {
    ASSERT_OK(db_->Delete(wo_, absl::StrFormat("k%04d", i)));
  }
  ASSERT_OK(db_->Flush());
  impl()->TEST_hook = [](std::string_view point) {
    return point == "compaction:outputs_written"
               ? absl::UnavailableError("injected crash before install")
               : absl::OkStatus();
  };
  EXPECT_FALSE(db_->CompactRange(std::nullopt, std::nullopt).ok());
  impl()->TEST_hook = nullptr;
  Reopen();
  for (int i = 0; i < 300; i++) {
    EXPECT_EQ(Get(absl::StrFormat("k%04d", i)), i % 2 == 0 ? "NOT_FOUND" : "v1");
  }
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  Reopen();
  for (int i = 0; i < 300; i++) {
    EXPECT_EQ(Get(absl::StrFormat("k%04d", i)), i % 2 == 0 ? "NOT_FOUND" : "v1");
  }
}

}  // namespace
}  // namespace strata::storage
