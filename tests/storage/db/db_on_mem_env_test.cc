// The engine on the in-memory Env (Options::env = NewMemEnv()): a whole
// database lives in memory, survives reopening, and loses exactly what was
// not made durable when the Env simulates a power loss.

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "env/mem_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using ::testing::Contains;
using ::testing::EndsWith;

// A path no test machine has; the in-memory Env must never create it.
constexpr char kDbName[] = "/strata-mem-env-test/db";

class DBOnMemEnvTest : public ::testing::Test {
 protected:
  DBOnMemEnvTest() {
    EXPECT_OK(env_.CreateDir("/strata-mem-env-test"));
    options_.env = &env_;
    options_.block_cache_bytes = 1 << 20;
    options_.target_file_size = 64 << 10;
    options_.max_bytes_for_level_base = 256 << 10;
  }

  void Open() {
    db_.reset();
    auto db = DB::Open(options_, kDbName);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }

  std::string Get(std::string_view key) {
    auto v = db_->Get(ReadOptions(), key);
    if (absl::IsNotFound(v.status())) return "NOT_FOUND";
    if (!v.ok()) return "ERROR: " + v.status().ToString();
    return *v;
  }

  static std::string Key(int i) { return absl::StrFormat("key%06d", i); }
  static std::string Value(int i) {
    return absl::StrFormat("value-%d-%s", i, std::string(100, 'v'));
  }

  MemEnv env_;
  Options options_;
  std::unique_ptr<DB> db_;
};

TEST_F(DBOnMemEnvTest, OpensWritesReopensAndReadsWithoutTouchingTheDisk) {
  ASSERT_NO_FATAL_FAILURE(Open());
  WriteOptions wo;
  constexpr int kKeys = 3000;
  for (int i = 0; i < kKeys; i++) ASSERT_OK(db_->Put(wo, Key(i), Value(i)));
  ASSERT_OK(db_->Flush());
  for (int i = 0; i < kKeys; i += 3) ASSERT_OK(db_->Delete(wo, Key(i)));
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  ASSERT_OK(db_->Put(wo, "unflushed", "in the WAL only"));

  ASSERT_NO_FATAL_FAILURE(Open());
  for (int i = 0; i < kKeys; i++) {
    ASSERT_EQ(Get(Key(i)), i % 3 == 0 ? "NOT_FOUND" : Value(i)) << i;
  }
  EXPECT_EQ(Get("unflushed"), "in the WAL only");

  // Every file is in the Env, tables included; none is on the disk.
  auto children = env_.GetChildren(kDbName);
  ASSERT_OK(children);
  EXPECT_THAT(*children, Contains("CURRENT"));
  EXPECT_THAT(*children, Contains("LOCK"));
  EXPECT_THAT(*children, Contains(EndsWith(".sst")));
  EXPECT_FALSE(std::filesystem::exists("/strata-mem-env-test"));
}

TEST_F(DBOnMemEnvTest, SecondOpenIsRefusedByTheEnvLock) {
  ASSERT_NO_FATAL_FAILURE(Open());
  auto second = DB::Open(options_, kDbName);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
}

TEST_F(DBOnMemEnvTest, PowerLossKeepsSyncedWritesAndDropsUnsyncedOnes) {
  ASSERT_NO_FATAL_FAILURE(Open());
  WriteOptions synced, unsynced;
  unsynced.sync = false;
  ASSERT_OK(db_->Put(synced, "table", "flushed"));
  ASSERT_OK(db_->Flush());
  ASSERT_OK(db_->Put(synced, "wal", "synced"));
  ASSERT_OK(db_->Put(unsynced, "lost", "never synced"));
  EXPECT_EQ(Get("lost"), "never synced");

  // No flush or compaction is running: the DB is idle between writes.
  env_.ResetToSyncedState();
  db_.reset();  // Its last WAL sync fails: the file predates the power loss.
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(Get("table"), "flushed");
  EXPECT_EQ(Get("wal"), "synced");
  EXPECT_EQ(Get("lost"), "NOT_FOUND");

  // The recovered database keeps working across another reopen.
  ASSERT_OK(db_->Put(synced, "after", "crash"));
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(Get("after"), "crash");
  EXPECT_EQ(Get("wal"), "synced");
}

TEST_F(DBOnMemEnvTest, PowerLossRightAfterOpenLeavesAnOpenableDatabase) {
  ASSERT_NO_FATAL_FAILURE(Open());
  env_.ResetToSyncedState();
  db_.reset();
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_OK(db_->Put(WriteOptions(), "k", "v"));
  EXPECT_EQ(Get("k"), "v");
}

}  // namespace
}  // namespace strata::storage
