// DB::CreateCheckpoint and Env::LinkFile: a checkpoint taken under a
// concurrent write load opens as a database equal to the source at the
// checkpoint's revision; files it needs stay while compaction makes them
// obsolete; a non-empty directory is refused.

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "strata/storage/env.h"
#include "tests/support/fault_env.h"
#include "tests/support/test_util.h"
#include "util/filename.h"

namespace strata::storage {
namespace {

using ::strata::testing::FaultInjectionEnv;
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

// Durability is not what these tests are about: no fsync per write.
WriteOptions NoSync() {
  WriteOptions o;
  o.sync = false;
  return o;
}

Options SmallOptions(Env* env) {
  Options o;
  o.env = env;
  o.memtable_bytes = 32 << 10;  // Many flushes and compactions.
  o.target_file_size = 64 << 10;
  o.keep_history = true;
  o.history_retention_seconds = 0;
  o.history_retention_revisions = 0;
  return o;
}

// Opens the checkpoint in `dir` and checks it equals `source` at `revision`.
void ExpectCheckpointEquals(Env* env, const std::string& dir, DB* source,
                            Revision revision) {
  auto cp = DB::Open(SmallOptions(env), dir);
  ASSERT_OK(cp);
  EXPECT_EQ((*cp)->CurrentRevision(), revision);
  auto snap = source->GetSnapshotAt(revision);
  ASSERT_OK(snap);
  std::vector<Entry> want = ReadAll(source, *snap);
  source->ReleaseSnapshot(*snap);
  std::vector<Entry> got = ReadAll(cp->get(), nullptr);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); i++) {
    ASSERT_EQ(got[i], want[i]) << "entry " << i << " key " << want[i].key;
  }
}

TEST(CheckpointTest, UnderConcurrentWritesEqualsSourceAtItsRevision) {
  TempDir tmp;
  const std::string src = tmp.path() + "/db";
  auto db = DB::Open(SmallOptions(Env::Default()), src);
  ASSERT_OK(db);
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; i < 40000 && !stop.load(); i++) {
      WriteBatch b;
      PutAttributes attrs;
      attrs.lease = static_cast<uint64_t>(i % 7);
      b.Put(absl::StrFormat("key%05d", i % 3000),
            absl::StrFormat("value-%d-%s", i, std::string(40, 'x')), attrs);
      if (i % 11 == 0) b.Delete(absl::StrFormat("key%05d", (i * 7) % 3000));
      ASSERT_OK((*db)->Write(NoSync(), &b));
      written.fetch_add(1);
    }
  });
  // Checkpoints while the writer runs (bounded: the writer stops by itself).
  std::vector<std::pair<std::string, Revision>> cps;
  for (int n = 0; n < 3; n++) {
    while (written.load() < (n + 1) * 3000 && written.load() < 40000) {
      std::this_thread::yield();
    }
    std::string dir = absl::StrFormat("%s/cp%d", tmp.path(), n);
    auto rev = (*db)->CreateCheckpoint(dir);
    ASSERT_OK(rev);
    cps.emplace_back(dir, *rev);
  }
  stop.store(true);
  writer.join();
  EXPECT_GT((*db)->GetStatistics().flush.count, 0u);
  for (const auto& [dir, rev] : cps) {
    EXPECT_GT(rev, 0u);
    ExpectCheckpointEquals(Env::Default(), dir, db->get(), rev);
  }
}

TEST(CheckpointTest, PinnedFilesSurviveACompactionDuringTheCheckpoint) {
  TempDir tmp;
  const std::string src = tmp.path() + "/db";
  auto opened = DB::Open(SmallOptions(Env::Default()), src);
  ASSERT_OK(opened);
  DB* db = opened->get();
  for (int i = 0; i < 2000; i++) {
    ASSERT_OK(db->Put(NoSync(), absl::StrFormat("k%05d", i % 500),
                      std::string(100, static_cast<char>('a' + i % 26))));
  }
  ASSERT_OK(db->Flush());
  auto* impl = static_cast<DBImpl*>(db);
  std::vector<std::string> before = *Env::Default()->GetChildren(src);
  bool compacted = false;
  impl->TEST_hook = [&](std::string_view point) {
    if (point != "checkpoint:files_pinned") return absl::OkStatus();
    // Every table the checkpoint captured becomes obsolete now.
    absl::Status s = db->CompactRange(std::nullopt, std::nullopt);
    compacted = s.ok();
    return s;
  };
  auto rev = db->CreateCheckpoint(tmp.path() + "/cp");
  impl->TEST_hook = nullptr;
  ASSERT_OK(rev);
  ASSERT_TRUE(compacted);
  ExpectCheckpointEquals(Env::Default(), tmp.path() + "/cp", db, *rev);
  // Once the checkpoint is written, the pins go and the obsolete tables
  // with them.
  std::vector<std::string> after = *Env::Default()->GetChildren(src);
  for (const std::string& name : before) {
    uint64_t number;
    FileType type;
    if (ParseFileName(name, &number, &type) && type == FileType::kTable &&
        std::find(after.begin(), after.end(), name) != after.end()) {
      // Still live only if the compaction kept it (it rewrote everything).
      ADD_FAILURE() << name << " was not deleted after the checkpoint";
    }
  }
}

TEST(CheckpointTest, RefusesANonEmptyDirectory) {
  TempDir tmp;
  auto db = DB::Open(SmallOptions(Env::Default()), tmp.path() + "/db");
  ASSERT_OK(db);
  ASSERT_OK((*db)->Put(NoSync(), "a", "1"));
  const std::string dir = tmp.path() + "/cp";
  ASSERT_OK(Env::Default()->CreateDir(dir));
  testing::WriteFileOrDie(dir + "/precious", "keep me");
  auto rev = (*db)->CreateCheckpoint(dir);
  EXPECT_TRUE(absl::IsFailedPrecondition(rev.status())) << rev.status();
  EXPECT_EQ(testing::ReadFileOrDie(dir + "/precious"), "keep me");
  EXPECT_EQ(Env::Default()->GetChildren(dir)->size(), 1u);
}

TEST(CheckpointTest, OnTheInMemoryEnvAndTheFaultEnv) {
  std::unique_ptr<Env> mem = NewMemEnv();
  {
    auto db = DB::Open(SmallOptions(mem.get()), "/db");
    ASSERT_OK(db);
    for (int i = 0; i < 3000; i++) {
      ASSERT_OK((*db)->Put(NoSync(), absl::StrFormat("k%05d", i),
                           std::string(50, 'v')));
    }
    auto rev = (*db)->CreateCheckpoint("/cp");
    ASSERT_OK(rev);
    ASSERT_OK((*db)->Put(NoSync(), "after", "x"));
    ExpectCheckpointEquals(mem.get(), "/cp", db->get(), *rev);
  }
  TempDir tmp;
  FaultInjectionEnv fault;
  auto db = DB::Open(SmallOptions(&fault), tmp.path() + "/db");
  ASSERT_OK(db);
  for (int i = 0; i < 3000; i++) {
    ASSERT_OK((*db)->Put(NoSync(), absl::StrFormat("k%05d", i),
                         std::string(50, 'v')));
  }
  ASSERT_OK((*db)->Flush());
  // A failing link fails the checkpoint and leaves nothing behind.
  fault.Inject({.op = testing::FaultOp::kLink, .times = 1});
  auto failed = (*db)->CreateCheckpoint(tmp.path() + "/bad");
  EXPECT_FALSE(failed.ok());
  EXPECT_TRUE(Env::Default()->GetChildren(tmp.path() + "/bad")->empty());
  auto rev = (*db)->CreateCheckpoint(tmp.path() + "/cp");
  ASSERT_OK(rev);
  ExpectCheckpointEquals(&fault, tmp.path() + "/cp", db->get(), *rev);
}

TEST(LinkFileTest, LinksAndRefusesAnExistingTarget) {
  TempDir tmp;
  std::unique_ptr<Env> mem = NewMemEnv();
  for (auto [env, dir] : {std::pair<Env*, std::string>{Env::Default(), tmp.path()},
                          std::pair<Env*, std::string>{mem.get(), "/"}}) {
    const std::string a = dir + "/a", b = dir + "/b";
    {
      auto f = env->NewWritableFile(a);
      ASSERT_OK(f);
      ASSERT_OK((*f)->Append("hello"));
      ASSERT_OK((*f)->Close());
    }
    ASSERT_OK(env->LinkFile(a, b));
    ASSERT_OK(env->RemoveFile(a));
    EXPECT_EQ(*env->GetFileSize(b), 5u);
    EXPECT_TRUE(absl::IsNotFound(env->LinkFile(a, dir + "/c")));
    auto again = env->NewWritableFile(a);
    ASSERT_OK(again);
    ASSERT_OK((*again)->Close());
    absl::Status exists = env->LinkFile(a, b);
    EXPECT_TRUE(absl::IsInternal(exists)) << exists;
    // The default (copying) implementation, as used across file systems.
    auto copied = CopyFile(env, b, dir + "/d", 3);
    ASSERT_OK(copied);
    EXPECT_EQ(*copied, 3u);
    EXPECT_EQ(*env->GetFileSize(dir + "/d"), 3u);
  }
}

}  // namespace
}  // namespace strata::storage
