// DB::ApplyCommittedBatch (the restore of incremental backups): the change
// log of one database, applied to another at a later wall-clock time,
// gives exactly the same keys, values, metadata, history and change log,
// although keys have expired meanwhile (a replay through Write would
// recompute versions by today's clock); bad batches are refused and leave
// the database writable; the option guards it.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/manual_clock_env.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using ::strata::testing::ManualClockEnv;
using ::strata::testing::TempDir;

struct Entry {
  std::string key, value;
  KeyMetadata metadata;
  friend bool operator==(const Entry&, const Entry&) = default;
};

std::vector<Entry> ReadAll(DB* db, const Snapshot* snapshot) {
  ReadOptions ro;
  ro.snapshot = snapshot;
  std::unique_ptr<Iterator> it(db->NewIterator(ro));
  std::vector<Entry> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out.push_back({std::string(it->key()), std::string(it->value()),
                   it->metadata()});
  }
  EXPECT_OK(it->status());
  return out;
}

std::vector<Entry> ReadAt(DB* db, Revision revision) {
  auto snap = db->GetSnapshotAt(revision);
  EXPECT_OK(snap);
  if (!snap.ok()) return {};
  std::vector<Entry> out = ReadAll(db, *snap);
  db->ReleaseSnapshot(*snap);
  return out;
}

WriteOptions NoSync() {
  WriteOptions o;
  o.sync = false;
  return o;
}

Options HistoryOptions(Env* env) {
  Options o;
  o.env = env;
  o.memtable_bytes = 16 << 10;  // Flushes between the batches.
  o.keep_history = true;
  o.history_retention_seconds = 0;
  o.history_retention_revisions = 0;
  return o;
}

// Every batch of `db`'s change log after `since`.
std::vector<ChangeBatch> ChangesAfter(DB* db, Revision since) {
  auto it = db->GetUpdatesSince(since + 1);
  EXPECT_OK(it);
  std::vector<ChangeBatch> out;
  if (!it.ok()) return out;
  while ((*it)->Next()) out.push_back((*it)->batch());
  EXPECT_OK((*it)->status());
  return out;
}

TEST(ApplyCommittedBatchTest, ReproducesTheSourceDespiteExpiryMeanwhile) {
  TempDir tmp;
  ManualClockEnv clock;
  auto source = DB::Open(HistoryOptions(&clock), tmp.path() + "/source");
  ASSERT_OK(source);
  const uint64_t t0 = clock.now_unix_ms.load();
  PutAttributes ttl;
  ttl.expire_at_unix_ms = t0 + 60'000;  // A minute.
  ttl.value_type = 2;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 300; i++) {
      WriteBatch b;
      const std::string key = absl::StrFormat("k%04d", i);
      if (i % 7 == 3 && round > 0) {
        b.Delete(key);
      } else if (i % 5 == 0) {
        b.Put(key, absl::StrFormat("ttl-%d", round), ttl);
      } else {
        PutAttributes lease;
        lease.lease = 40 + static_cast<uint64_t>(round);
        b.Put(key, std::string(50 + i % 30, static_cast<char>('a' + round)),
              lease);
        b.Put(absl::StrFormat("other%04d", i), "x");
      }
      ASSERT_OK((*source)->Write(NoSync(), &b));
    }
  }
  const Revision end = (*source)->CurrentRevision();
  ASSERT_GT(end, 800u);

  // The target starts empty, 10 minutes later: every TTL key has expired
  // by its clock, so Write would make each re-put version 1.
  auto changes = ChangesAfter(source->get(), 0);
  ASSERT_EQ(changes.size(), end);
  clock.Advance(600'000);
  Options to = HistoryOptions(&clock);
  to.allow_committed_batches = true;
  auto target = DB::Open(to, tmp.path() + "/target");
  ASSERT_OK(target);
  for (const ChangeBatch& b : changes) {
    ASSERT_OK((*target)->ApplyCommittedBatch(NoSync(), b));
  }
  EXPECT_EQ((*target)->CurrentRevision(), end);
  // Read at the source's time, both agree on everything, at the end and
  // in the middle (history); and the target's change log is the source's.
  clock.now_unix_ms = t0;
  EXPECT_EQ(ReadAll(target->get(), nullptr), ReadAll(source->get(), nullptr));
  EXPECT_EQ(ReadAt(target->get(), end / 2), ReadAt(source->get(), end / 2));
  std::vector<ChangeBatch> again = ChangesAfter(target->get(), end / 3);
  std::vector<ChangeBatch> want = ChangesAfter(source->get(), end / 3);
  ASSERT_EQ(again.size(), want.size());
  for (size_t i = 0; i < want.size(); i++) {
    EXPECT_EQ(*again[i].record, *want[i].record) << "revision "
                                                 << want[i].revision;
  }
  // It survives a reopen (the WAL holds the batches) and then takes
  // ordinary writes at the next revision.
  target->reset();
  auto reopened = DB::Open(HistoryOptions(&clock), tmp.path() + "/target");
  ASSERT_OK(reopened);
  EXPECT_EQ(ReadAll(reopened->get(), nullptr), ReadAll(source->get(), nullptr));
  auto next = (*reopened)->Put(NoSync(), "after", "restore");
  ASSERT_OK(next);
  EXPECT_EQ(*next, end + 1);
}

TEST(ApplyCommittedBatchTest, RefusesBadBatchesAndNeedsTheOption) {
  TempDir tmp;
  auto plain = DB::Open(HistoryOptions(Env::Default()), tmp.path() + "/plain");
  ASSERT_OK(plain);
  ChangeBatch b;
  b.revision = 1;
  Change put;
  put.key = "k";
  put.value = "v";
  put.metadata.create_revision = 1;
  put.metadata.mod_revision = 1;
  put.metadata.version = 1;
  b.changes.push_back(put);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      (*plain)->ApplyCommittedBatch(NoSync(), b)));
  EXPECT_EQ((*plain)->CurrentRevision(), 0u);

  Options o = HistoryOptions(Env::Default());
  o.allow_committed_batches = true;
  auto db = DB::Open(o, tmp.path() + "/db");
  ASSERT_OK(db);
  ChangeBatch wrong_revision = b;
  wrong_revision.revision = 2;
  wrong_revision.changes[0].metadata.mod_revision = 2;
  wrong_revision.changes[0].metadata.create_revision = 2;
  EXPECT_TRUE(absl::IsInvalidArgument(
      (*db)->ApplyCommittedBatch(NoSync(), wrong_revision)));
  ChangeBatch empty;
  empty.revision = 1;
  EXPECT_TRUE(
      absl::IsInvalidArgument((*db)->ApplyCommittedBatch(NoSync(), empty)));
  ChangeBatch twice = b;
  twice.changes.push_back(put);
  EXPECT_TRUE(
      absl::IsInvalidArgument((*db)->ApplyCommittedBatch(NoSync(), twice)));
  ChangeBatch bad_meta = b;
  bad_meta.changes[0].metadata.version = 0;
  EXPECT_TRUE(
      absl::IsInvalidArgument((*db)->ApplyCommittedBatch(NoSync(), bad_meta)));
  bad_meta = b;
  bad_meta.changes[0].metadata.create_revision = 5;
  EXPECT_TRUE(
      absl::IsInvalidArgument((*db)->ApplyCommittedBatch(NoSync(), bad_meta)));
  // Nothing was written; the good batch still goes in at revision 1.
  EXPECT_EQ((*db)->CurrentRevision(), 0u);
  ASSERT_OK((*db)->ApplyCommittedBatch(NoSync(), b));
  auto got = (*db)->GetWithMetadata(ReadOptions(), "k");
  ASSERT_OK(got);
  EXPECT_TRUE(got->found);
  EXPECT_EQ(got->value, "v");
  EXPECT_EQ(got->metadata.version, 1u);
  EXPECT_EQ((*db)->CurrentRevision(), 1u);
}

}  // namespace
}  // namespace strata::storage
