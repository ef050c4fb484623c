// Revisions through the engine's public API: one revision per committed
// write, key metadata (create/mod revision, version), reads at a past
// revision, history retention and compaction of history, the change log
// (GetUpdatesSince, CommitListener), commit functions, and opening a
// database written before revisions.

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "db/write_batch_internal.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/manual_clock_env.h"
#include "tests/support/test_util.h"
#include "util/coding.h"
#include "util/filename.h"
#include "util/mutex.h"
#include "version/version_set.h"
#include "record/writer.h"

namespace strata::storage {
namespace {

using ::strata::testing::ManualClockEnv;
using ::strata::testing::TempDir;

class RevisionsTest : public ::testing::Test {
 protected:
  RevisionsTest() {
    options_.env = &env_;
    options_.keep_history = true;
    options_.history_retention_seconds = 0;  // Manual unless a test sets it.
    options_.memtable_bytes = 64 << 10;
    options_.max_bytes_for_level_base = 256 << 10;
    options_.target_file_size = 64 << 10;
    Reopen();
  }

  void Reopen() {
    db_.reset();
    auto db = DB::Open(options_, dir_.path());
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }
  DBImpl* impl() { return static_cast<DBImpl*>(db_.get()); }

  Revision Put(std::string_view k, std::string_view v) {
    auto r = db_->Put(wo_, k, v);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : 0;
  }
  Revision Delete(std::string_view k) {
    auto r = db_->Delete(wo_, k);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : 0;
  }

  // "value@create/mod/version", "NOT_FOUND" or the error.
  std::string GetAt(std::string_view key, Revision at = 0) {
    ReadOptions ro;
    const Snapshot* snap = nullptr;
    if (at != 0) {
      auto s = db_->GetSnapshotAt(at);
      if (!s.ok()) return s.status().ToString();
      snap = *s;
      ro.snapshot = snap;
    }
    auto r = db_->GetWithMetadata(ro, key);
    if (snap != nullptr) db_->ReleaseSnapshot(snap);
    if (!r.ok()) return r.status().ToString();
    if (!r->found) return "NOT_FOUND";
    return absl::StrFormat("%s@%d/%d/%d", r->value, r->metadata.create_revision,
                           r->metadata.mod_revision, r->metadata.version);
  }

  // "key=value@mod" of every key at a revision (0 = now), forward.
  std::string ContentsAt(Revision at = 0, bool reverse = false) {
    ReadOptions ro;
    const Snapshot* snap = nullptr;
    if (at != 0) {
      auto s = db_->GetSnapshotAt(at);
      if (!s.ok()) return s.status().ToString();
      snap = *s;
      ro.snapshot = snap;
    }
    std::string out;
    {
      auto it = db_->NewIterator(ro);
      auto add = [&] {
        if (!out.empty()) out += ",";
        out += absl::StrFormat("%s=%s@%d", it->key(), it->value(),
                               it->metadata().mod_revision);
      };
      if (reverse) {
        for (it->SeekToLast(); it->Valid(); it->Prev()) add();
      } else {
        for (it->SeekToFirst(); it->Valid(); it->Next()) add();
      }
      EXPECT_OK(it->status());
    }
    if (snap != nullptr) db_->ReleaseSnapshot(snap);
    return out;
  }

  // Every change from `from` on as "rev:P key=value v<version>" /
  // "rev:D key", or the error.
  std::vector<std::string> ChangesSince(Revision from) {
    std::vector<std::string> out;
    auto it = db_->GetUpdatesSince(from);
    if (!it.ok()) return {it.status().ToString()};
    while ((*it)->Next()) {
      const ChangeBatch& b = (*it)->batch();
      for (const Change& c : b.changes) {
        if (c.type == Change::Type::kPut) {
          out.push_back(absl::StrFormat("%d:P %s=%s v%d", b.revision, c.key,
                                        c.value, c.metadata.version));
        } else {
          out.push_back(absl::StrFormat("%d:D %s", b.revision, c.key));
        }
      }
    }
    if (!(*it)->status().ok()) out.push_back((*it)->status().ToString());
    return out;
  }

  ManualClockEnv env_;
  TempDir dir_;
  Options options_;
  WriteOptions wo_;
  std::unique_ptr<DB> db_;
};

TEST_F(RevisionsTest, EveryWriteTakesTheNextRevision) {
  EXPECT_EQ(db_->CurrentRevision(), 0u);
  EXPECT_EQ(Put("a", "1"), 1u);
  EXPECT_EQ(Put("b", "1"), 2u);
  EXPECT_EQ(Delete("a"), 3u);
  EXPECT_EQ(db_->CurrentRevision(), 3u);
}

TEST_F(RevisionsTest, RevisionsSurviveReopenAndAreNeverReused) {
  Put("a", "1");
  Put("a", "2");
  ASSERT_OK(db_->Flush());
  Put("a", "3");  // Only in the WAL.
  Reopen();
  EXPECT_EQ(db_->CurrentRevision(), 3u);
  EXPECT_EQ(Put("b", "1"), 4u);
  Reopen();
  EXPECT_EQ(Put("c", "1"), 5u);
  EXPECT_EQ(GetAt("a"), "3@1/3/3");
}

TEST_F(RevisionsTest, AllOperationsOfOneWriteShareItsRevision) {
  WriteBatch b;
  b.Put("x", "1");
  b.Put("y", "1");
  b.Put("x", "2");  // Overrides the first put of x.
  b.Delete("z");    // Absent: dropped.
  ASSERT_OK_AND_ASSIGN(Revision r, db_->Write(wo_, &b));
  EXPECT_EQ(r, 1u);
  EXPECT_EQ(GetAt("x"), "2@1/1/1");
  EXPECT_EQ(GetAt("y"), "1@1/1/1");
  EXPECT_EQ(ChangesSince(1),
            (std::vector<std::string>{"1:P y=1 v1", "1:P x=2 v1"}));
}

TEST_F(RevisionsTest, LaterDeleteOfAKeyInOneWriteWins) {
  Put("k", "old");
  WriteBatch b;
  b.Put("k", "new");
  b.Delete("k");
  ASSERT_OK_AND_ASSIGN(Revision r, db_->Write(wo_, &b));
  EXPECT_EQ(r, 2u);
  EXPECT_EQ(GetAt("k"), "NOT_FOUND");
}

TEST_F(RevisionsTest, AWriteThatChangesNothingTakesNoRevision) {
  Put("a", "1");
  EXPECT_EQ(Delete("missing"), 1u);  // The current revision.
  WriteBatch empty;
  ASSERT_OK_AND_ASSIGN(Revision r, db_->Write(wo_, &empty));
  EXPECT_EQ(r, 1u);
  EXPECT_EQ(db_->CurrentRevision(), 1u);
  EXPECT_EQ(Put("b", "1"), 2u);
}

TEST_F(RevisionsTest, MetadataAfterPutOverwriteDeleteAndRecreate) {
  Put("k", "a");  // 1: created
  EXPECT_EQ(GetAt("k"), "a@1/1/1");
  Put("other", "x");  // 2
  Put("k", "b");      // 3: overwritten
  EXPECT_EQ(GetAt("k"), "b@1/3/2");
  Put("k", "c");  // 4
  EXPECT_EQ(GetAt("k"), "c@1/4/3");
  Delete("k");  // 5
  EXPECT_EQ(GetAt("k"), "NOT_FOUND");
  Put("k", "d");  // 6: re-created
  EXPECT_EQ(GetAt("k"), "d@6/6/1");
  // The same after the data moves to tables and down the levels.
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  Put("k", "e");  // 7: the lookup of its predecessor reads a table
  EXPECT_EQ(GetAt("k"), "e@6/7/2");
  Reopen();
  EXPECT_EQ(GetAt("k"), "e@6/7/2");
}

TEST_F(RevisionsTest, MetadataWithinOneGroupSeesEarlierWritesOfTheGroup) {
  // Concurrent writers of one key commit in groups; versions must count
  // every put exactly once whatever the grouping.
  constexpr int kThreads = 8, kPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([this] {
      for (int i = 0; i < kPerThread; i++) ASSERT_OK(db_->Put(wo_, "hot", "v"));
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(GetAt("hot"), absl::StrFormat("v@1/%d/%d", kThreads * kPerThread,
                                          kThreads * kPerThread));
}

TEST_F(RevisionsTest, ReadsAtAPastRevisionSeeExactlyThatState) {
  Put("a", "1");  // 1
  Put("b", "1");  // 2
  Put("a", "2");  // 3
  Delete("b");    // 4
  Put("c", "1");  // 5
  EXPECT_EQ(ContentsAt(1), "a=1@1");
  EXPECT_EQ(ContentsAt(2), "a=1@1,b=1@2");
  EXPECT_EQ(ContentsAt(3), "a=2@3,b=1@2");
  EXPECT_EQ(ContentsAt(4), "a=2@3");
  EXPECT_EQ(ContentsAt(5), "a=2@3,c=1@5");
  EXPECT_EQ(ContentsAt(3, /*reverse=*/true), "b=1@2,a=2@3");
  EXPECT_EQ(GetAt("a", 2), "1@1/1/1");
  EXPECT_EQ(GetAt("b", 4), "NOT_FOUND");
  // History survives flush, compaction to the bottom level and reopen.
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  Reopen();
  EXPECT_EQ(ContentsAt(2), "a=1@1,b=1@2");
  EXPECT_EQ(ContentsAt(4), "a=2@3");
  EXPECT_EQ(GetAt("a", 1), "1@1/1/1");
}

TEST_F(RevisionsTest, ReadsOutsideTheRetainedHistoryAreOutOfRange) {
  for (int i = 0; i < 5; i++) Put("k", std::to_string(i));
  auto above = db_->GetSnapshotAt(6);
  EXPECT_TRUE(absl::IsOutOfRange(above.status())) << above.status();
  ASSERT_OK(db_->CompactHistory(3));
  EXPECT_EQ(db_->CompactedRevision(), 3u);
  auto below = db_->GetSnapshotAt(2);
  EXPECT_TRUE(absl::IsOutOfRange(below.status())) << below.status();
  EXPECT_NE(below.status().message().find("compacted revision 3"),
            std::string_view::npos)
      << below.status();
  EXPECT_EQ(GetAt("k", 3), "2@1/3/3");
  // Compacting backwards or beyond now is refused.
  EXPECT_TRUE(absl::IsOutOfRange(db_->CompactHistory(3)));
  EXPECT_TRUE(absl::IsOutOfRange(db_->CompactHistory(9)));
  // The compacted revision is durable.
  Reopen();
  EXPECT_EQ(db_->CompactedRevision(), 3u);
  EXPECT_TRUE(absl::IsOutOfRange(db_->GetSnapshotAt(2).status()));
}

TEST_F(RevisionsTest, CompactionKeepsExactlyTheHistoryAboveTheCompactedRevision) {
  // Many versions of few keys; after compacting history and the LSM tree
  // every revision from the compacted one up still reads correctly.
  std::map<Revision, std::map<std::string, std::string>> states;
  std::map<std::string, std::string> model;
  for (int i = 0; i < 400; i++) {
    std::string k = absl::StrFormat("k%02d", i % 13);
    std::string v = absl::StrFormat("v%04d-%s", i, std::string(100, 'x'));
    Revision r;
    if (i % 7 == 3) {
      r = Delete(k);
      if (model.erase(k) == 0) continue;  // No-op delete: no revision.
    } else {
      r = Put(k, v);
      model[k] = v;
    }
    states[r] = model;
  }
  const Revision compacted = 200;
  ASSERT_OK(db_->CompactHistory(compacted));
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  for (const auto& [rev, state] : states) {
    if (rev < compacted) continue;
    auto snap = db_->GetSnapshotAt(rev);
    ASSERT_OK(snap);
    ReadOptions ro;
    ro.snapshot = *snap;
    std::map<std::string, std::string> seen;
    auto it = db_->NewIterator(ro);
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      seen[std::string(it->key())] = std::string(it->value());
    }
    it.reset();
    db_->ReleaseSnapshot(*snap);
    ASSERT_EQ(seen, state) << "at revision " << rev;
  }
}

TEST_F(RevisionsTest, WithoutKeepHistoryOnlyTheCurrentRevisionIsReadable) {
  options_.keep_history = false;
  Reopen();
  Put("a", "1");
  Put("a", "2");
  EXPECT_EQ(db_->CompactedRevision(), 2u);
  EXPECT_TRUE(absl::IsOutOfRange(db_->GetSnapshotAt(1).status()));
  EXPECT_EQ(GetAt("a", 2), "2@1/2/2");
  EXPECT_TRUE(absl::IsFailedPrecondition(db_->CompactHistory(1)));
  // Turning history on later does not pretend that history exists: what
  // flushes and compactions may have dropped is below the compacted
  // revision they recorded.
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  options_.keep_history = true;
  Reopen();
  EXPECT_EQ(db_->CompactedRevision(), 2u);
  EXPECT_TRUE(absl::IsOutOfRange(db_->GetSnapshotAt(1).status()));
}

TEST_F(RevisionsTest, ChangeLogReturnsEveryWriteInOrder) {
  Put("a", "1");          // 1
  Put("b", "1");          // 2
  Put("a", "2");          // 3
  Delete("b");            // 4
  EXPECT_EQ(ChangesSince(1),
            (std::vector<std::string>{"1:P a=1 v1", "2:P b=1 v1", "3:P a=2 v2",
                                      "4:D b"}));
  EXPECT_EQ(ChangesSince(3),
            (std::vector<std::string>{"3:P a=2 v2", "4:D b"}));
  EXPECT_TRUE(ChangesSince(5).empty());  // Nothing yet: not an error.
  auto future = db_->GetUpdatesSince(6);
  EXPECT_TRUE(absl::IsOutOfRange(future.status()));
}

TEST_F(RevisionsTest, ChangeLogSpansMemtableSwitchesAndReopens) {
  std::string big(2000, 'v');
  for (int i = 1; i <= 300; i++) {  // Several 64 KiB memtables.
    Put(absl::StrFormat("key%03d", i % 50), big);
    if (i == 150) Reopen();
  }
  ASSERT_GT(impl()->TEST_RetainedWals().size(), 2u);
  std::vector<std::string> got = ChangesSince(1);
  ASSERT_EQ(got.size(), 300u);
  for (size_t i = 0; i < got.size(); i++) {
    // Versions: key k is put for the n-th time at its n-th occurrence.
    const int rev = static_cast<int>(i) + 1;
    const int nth = (rev - (rev % 50 == 0 ? 50 : rev % 50)) / 50 + 1;
    ASSERT_EQ(got[i], absl::StrFormat("%d:P key%03d=%s v%d", rev, rev % 50,
                                      big, nth));
  }
  EXPECT_EQ(ChangesSince(290).size(), 11u);
}

TEST_F(RevisionsTest, CompactingHistoryDropsTheChangeLogBelowIt) {
  std::string big(2000, 'v');
  for (int i = 0; i < 200; i++) Put(absl::StrFormat("k%d", i % 10), big);
  const size_t wals_before = impl()->TEST_RetainedWals().size();
  ASSERT_GT(wals_before, 2u);
  ASSERT_OK(db_->Flush());
  ASSERT_OK(db_->CompactHistory(190));
  EXPECT_LT(impl()->TEST_RetainedWals().size(), wals_before);
  auto gone = db_->GetUpdatesSince(150);
  EXPECT_TRUE(absl::IsOutOfRange(gone.status())) << gone.status();
  EXPECT_EQ(ChangesSince(191).size(), 10u);
  Reopen();
  EXPECT_EQ(ChangesSince(191).size(), 10u);
  EXPECT_TRUE(absl::IsOutOfRange(db_->GetUpdatesSince(190).status()));
}

TEST_F(RevisionsTest, RetentionByRevisionCountAdvancesTheCompactedRevision) {
  options_.history_retention_revisions = 10;
  Reopen();
  for (int i = 0; i < 50; i++) Put("k", std::to_string(i));
  env_.now_micros += 10'000'000;  // Past the minimum interval between edits.
  impl()->TEST_AdvanceHistory();
  EXPECT_EQ(db_->CompactedRevision(), 40u);
  EXPECT_TRUE(absl::IsOutOfRange(db_->GetSnapshotAt(39).status()));
  EXPECT_EQ(GetAt("k", 40), "39@1/40/40");
}

TEST_F(RevisionsTest, RetentionByTimeKeepsTheLastWindow) {
  options_.history_retention_seconds = 60;
  Reopen();
  impl()->TEST_AdvanceHistory();  // Sample (t0, 0).
  for (int i = 0; i < 10; i++) Put("k", std::to_string(i));
  env_.now_micros += 30'000'000;  // t0 + 30 s: sample (t0+30, 10).
  impl()->TEST_AdvanceHistory();
  EXPECT_EQ(db_->CompactedRevision(), 0u);  // Nothing is a minute old.
  for (int i = 0; i < 10; i++) Put("k", std::to_string(i));
  env_.now_micros += 40'000'000;  // t0 + 70 s: the t0+30 sample is not old.
  impl()->TEST_AdvanceHistory();
  EXPECT_EQ(db_->CompactedRevision(), 0u);  // Only (t0, 0) is a minute old.
  env_.now_micros += 30'000'000;  // t0 + 100 s: (t0+30, 10) is old enough.
  impl()->TEST_AdvanceHistory();
  EXPECT_EQ(db_->CompactedRevision(), 10u);
}

TEST_F(RevisionsTest, CommitListenerHearsEveryCommitInOrder) {
  struct Recorder : CommitListener {
    Mutex mu;
    std::vector<Revision> revisions ABSL_GUARDED_BY(mu);
    void OnCommit(const std::vector<ChangeBatch>& batches) override {
      MutexLock l(&mu);
      for (const ChangeBatch& b : batches) revisions.push_back(b.revision);
    }
  } recorder;
  db_->SetCommitListener(&recorder);
  constexpr int kThreads = 4, kPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kPerThread; i++) {
        ASSERT_OK(db_->Put(wo_, absl::StrFormat("t%d-%d", t, i), "v"));
      }
    });
  }
  for (auto& th : threads) th.join();
  db_->SetCommitListener(nullptr);
  MutexLock l(&recorder.mu);
  ASSERT_EQ(recorder.revisions.size(), size_t{kThreads * kPerThread});
  for (size_t i = 0; i < recorder.revisions.size(); i++) {
    ASSERT_EQ(recorder.revisions[i], i + 1);
  }
}

// A read-modify-write through a commit function: the engine serializes it
// with every other write, so concurrent increments never lose an update.
TEST_F(RevisionsTest, CommitFunctionsReadModifyWriteWithoutLostUpdates) {
  constexpr int kThreads = 8, kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([this] {
      for (int i = 0; i < kPerThread; i++) {
        WriteBatch b;
        b.SetCommitFunction([](CommitView* view, WriteBatch* batch) {
          std::string value;
          KeyMetadata meta;
          absl::Status s = view->Get("counter", &value, &meta);
          if (!s.ok() && !absl::IsNotFound(s)) return s;
          const int n = s.ok() ? std::stoi(value) : 0;
          batch->Put("counter", std::to_string(n + 1));
          return absl::OkStatus();
        });
        ASSERT_OK(db_->Write(wo_, &b));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(GetAt("counter"), absl::StrFormat("%d@1/%d/%d", kThreads * kPerThread,
                                              kThreads * kPerThread,
                                              kThreads * kPerThread));
}

TEST_F(RevisionsTest, AFailingCommitFunctionFailsOnlyItsOwnWrite) {
  WriteBatch b;
  b.Put("written-anyway?", "no");
  b.SetCommitFunction([](CommitView*, WriteBatch*) {
    return absl::AbortedError("guard failed");
  });
  auto r = db_->Write(wo_, &b);
  EXPECT_TRUE(absl::IsAborted(r.status()));
  EXPECT_EQ(GetAt("written-anyway?"), "NOT_FOUND");
  EXPECT_EQ(db_->CurrentRevision(), 0u);
  EXPECT_EQ(Put("next", "1"), 1u);  // Nothing consumed, nothing stuck.
}

TEST_F(RevisionsTest, CommitViewIteratesTheStateItCommitsOn) {
  for (int i = 0; i < 5; i++) Put(absl::StrFormat("r%d", i), "v");
  Put("s", "v");
  // Delete every key in [r, s): a range delete at one revision.
  WriteBatch b;
  int deleted = 0;
  b.SetCommitFunction([&deleted](CommitView* view, WriteBatch* batch) {
    auto it = view->NewIterator();
    for (it->Seek("r"); it->Valid() && it->key() < "s"; it->Next()) {
      batch->Delete(it->key());
      deleted++;
    }
    return it->status();
  });
  ASSERT_OK_AND_ASSIGN(Revision r, db_->Write(wo_, &b));
  EXPECT_EQ(r, 7u);
  EXPECT_EQ(deleted, 5);
  EXPECT_EQ(ContentsAt(), "s=v@6");
  EXPECT_EQ(ChangesSince(7).size(), 5u);
}

// A database written before revisions (format 1): WAL records in user
// form, one sequence number per operation, values without metadata.
// Replaces the database in `dir` (made by a format-2 Open) with what format
// 1 wrote: a manifest of edit format 1 (comparator, log number 2, next file
// 3, last sequence 0) and WAL 000002.wal (format 1) holding `batch`.
void WriteFormatOneDatabase(const std::string& dir, const std::string& batch) {
  ASSERT_OK_AND_ASSIGN(std::vector<std::string> children,
                       Env::Default()->GetChildren(dir));
  for (const std::string& name : children) {
    uint64_t number;
    FileType type;
    if (ParseFileName(name, &number, &type) &&
        (type == FileType::kWal || type == FileType::kManifest ||
         type == FileType::kCurrent)) {
      ASSERT_OK(Env::Default()->RemoveFile(dir + "/" + name));
    }
  }
  std::string edit;
  PutFixed32(&edit, 1);
  PutVarint32(&edit, 1);
  PutLengthPrefixed(&edit, BytewiseComparator()->Name());
  PutVarint32(&edit, 2);
  PutVarint64(&edit, 2);
  PutVarint32(&edit, 3);
  PutVarint64(&edit, 3);
  PutVarint32(&edit, 4);
  PutVarint64(&edit, 0);
  auto file = Env::Default()->NewWritableFile(ManifestFileName(dir, 1));
  ASSERT_OK(file);
  record::Writer manifest(std::move(*file), 1);
  ASSERT_OK(manifest.AddRecord(edit));
  ASSERT_OK(manifest.Sync());
  ASSERT_OK(manifest.Close());
  bool renamed = false;
  ASSERT_OK(SetCurrentFile(Env::Default(), dir, 1, &renamed));
  auto wal_file = Env::Default()->NewWritableFile(WalFileName(dir, 2));
  ASSERT_OK(wal_file);
  record::Writer wal(std::move(*wal_file), 1);
  ASSERT_OK(wal.AddRecord(batch));
  ASSERT_OK(wal.Sync());
  ASSERT_OK(wal.Close());
}

TEST(UpgradeTest, AFormatOneDatabaseWithAReservedKeyIsRefused) {
  TempDir dir;
  Options options;
  ASSERT_OK(DB::Open(options, dir.path()));
  std::string batch;  // sequence 1: Put "\xff\xffk" = v.
  PutFixed64(&batch, 1);
  PutFixed32(&batch, 1);
  batch.push_back(1);
  PutLengthPrefixed(&batch, "\xff\xffk");
  PutLengthPrefixed(&batch, "v");
  ASSERT_NO_FATAL_FAILURE(WriteFormatOneDatabase(dir.path(), batch));
  auto db = DB::Open(options, dir.path());
  EXPECT_TRUE(absl::IsFailedPrecondition(db.status())) << db.status();
  EXPECT_NE(db.status().message().find("reserves such keys"),
            std::string_view::npos)
      << db.status();
  // Refused again, not half-upgraded.
  EXPECT_TRUE(absl::IsFailedPrecondition(DB::Open(options, dir.path()).status()));
}

TEST(UpgradeTest, DatabaseOfFormatOneOpensAndIsUpgraded) {
  TempDir dir;
  Options options;
  options.keep_history = true;
  // An empty new database, then its manifest and WAL replaced by the bytes
  // format 1 wrote: sequence 1, Put k1=v1, Put k2=v2, Delete k3.
  ASSERT_OK(DB::Open(options, dir.path()));
  std::string batch;
  PutFixed64(&batch, 1);
  PutFixed32(&batch, 3);
  batch.push_back(1);
  PutLengthPrefixed(&batch, "k1");
  PutLengthPrefixed(&batch, "v1");
  batch.push_back(1);
  PutLengthPrefixed(&batch, "k2");
  PutLengthPrefixed(&batch, "v2");
  batch.push_back(0);
  PutLengthPrefixed(&batch, "k3");
  ASSERT_NO_FATAL_FAILURE(WriteFormatOneDatabase(dir.path(), batch));
  auto db = DB::Open(options, dir.path());
  ASSERT_OK(db);
  // Old values read with what is known of them; history starts now.
  EXPECT_EQ((*db)->CurrentRevision(), 3u);
  EXPECT_EQ((*db)->CompactedRevision(), 3u);
  ASSERT_OK_AND_ASSIGN(GetResult k2, (*db)->GetWithMetadata(ReadOptions(), "k2"));
  EXPECT_EQ(k2.value, "v2");
  EXPECT_EQ(k2.metadata.create_revision, 2u);
  EXPECT_EQ(k2.metadata.mod_revision, 2u);
  EXPECT_EQ(k2.metadata.version, 1u);
  EXPECT_TRUE(absl::IsOutOfRange((*db)->GetSnapshotAt(2).status()));
  // New writes continue the numbering, on top of the old metadata.
  ASSERT_OK_AND_ASSIGN(Revision r, (*db)->Put(WriteOptions(), "k2", "v2b"));
  EXPECT_EQ(r, 4u);
  ASSERT_OK_AND_ASSIGN(k2, (*db)->GetWithMetadata(ReadOptions(), "k2"));
  EXPECT_EQ(k2.metadata.create_revision, 2u);
  EXPECT_EQ(k2.metadata.version, 2u);
  db->reset();
  // Reopened, it is a format-2 database and keeps its state.
  auto again = DB::Open(options, dir.path());
  ASSERT_OK(again);
  EXPECT_EQ((*again)->CurrentRevision(), 4u);
  EXPECT_EQ((*again)->CompactedRevision(), 3u);
  ASSERT_OK_AND_ASSIGN(GetResult k1,
                       (*again)->GetWithMetadata(ReadOptions(), "k1"));
  EXPECT_EQ(k1.value, "v1");
}

TEST(UpgradeTest, ADatabaseOfANewerFormatIsRefusedClearly) {
  TempDir dir;
  Options options;
  ASSERT_OK(DB::Open(options, dir.path()));
  {
    // A manifest whose snapshot names database format 3.
    VersionEdit edit;
    edit.SetComparatorName(BytewiseComparator()->Name());
    edit.SetMinWalNumber(0);
    edit.SetNextFile(10);
    edit.SetLastSequence(0);
    edit.SetDatabaseFormat(3);
    std::string record;
    edit.EncodeTo(&record);
    auto file = Env::Default()->NewWritableFile(ManifestFileName(dir.path(), 9));
    ASSERT_OK(file);
    record::Writer manifest(std::move(*file));
    ASSERT_OK(manifest.AddRecord(record));
    ASSERT_OK(manifest.Close());
    bool renamed = false;
    ASSERT_OK(SetCurrentFile(Env::Default(), dir.path(), 9, &renamed));
  }
  auto db = DB::Open(options, dir.path());
  EXPECT_TRUE(absl::IsFailedPrecondition(db.status())) << db.status();
  EXPECT_NE(db.status().message().find("database format version 3"),
            std::string_view::npos)
      << db.status();
}

}  // namespace
}  // namespace strata::storage
