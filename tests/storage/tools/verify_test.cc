// VerifyDatabase (the strata-verify tool): a healthy database and what a
// crash leaves behind verify clean; damage in any file kind is an error
// naming the file.

#include "tools/verify.h"

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/fault_env.h"
#include "tests/support/test_util.h"
#include "util/filename.h"

namespace strata::storage {
namespace {

using ::strata::testing::FlipByte;
using ::strata::testing::TempDir;
namespace fs = std::filesystem;

class VerifyTest : public ::testing::Test {
 protected:
  VerifyTest() {
    ::strata::testing::QuietLogs();
    options_.env = &env_;
    options_.memtable_bytes = 64 << 10;
    options_.block_size = 1024;
    options_.target_file_size = 64 << 10;
    options_.max_bytes_for_level_base = 128 << 10;
  }
  ~VerifyTest() override {
    db_.reset();
    ::strata::testing::RestoreLogs();
  }

  void Open() {
    db_.reset();
    auto db = DB::Open(options_, dir_.path());
    ASSERT_OK(db);
    db_ = std::move(*db);
  }

  // Several tables over two levels, and WAL data.
  void Populate() {
    Open();
    WriteOptions wo;
    wo.sync = false;
    for (int round = 0; round < 3; round++) {
      for (int i = 0; i < 600; i++) {
        ASSERT_OK(db_->Put(wo, absl::StrFormat("key%05d", (i * 7) % 1000),
                           absl::StrFormat("r%d-", round) + std::string(100, 'v')));
      }
      ASSERT_OK(db_->Flush());
    }
    ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
    // A reopen, so the WAL below holds only what follows.
    Open();
    for (int i = 0; i < 50; i++) {
      ASSERT_OK(db_->Delete(wo, absl::StrFormat("key%05d", i)));
    }
  }

  VerifyReport Verify() {
    auto r = VerifyDatabase(dir_.path(), VerifyOptions{.verbose = true});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : VerifyReport();
  }

  std::string AnyFile(FileType want) {
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      uint64_t number;
      FileType type;
      if (ParseFileName(e.path().filename().string(), &number, &type) &&
          type == want && e.file_size() > 100) {
        return e.path().string();
      }
    }
    ADD_FAILURE() << "no such file";
    return "";
  }

  TempDir dir_;
  testing::FaultInjectionEnv env_;
  Options options_;
  std::unique_ptr<DB> db_;
};

TEST_F(VerifyTest, HealthyDatabaseHasNoProblems) {
  Populate();
  db_.reset();
  VerifyReport r = Verify();
  EXPECT_TRUE(r.ok()) << absl::StrJoin(r.errors, "\n");
  EXPECT_TRUE(r.warnings.empty()) << absl::StrJoin(r.warnings, "\n");
  EXPECT_GE(r.files_checked, 4);
  EXPECT_FALSE(r.info.empty());
}

TEST_F(VerifyTest, CrashLeftoversAreWarningsNotErrors) {
  Populate();
  // A write cut in the middle of its WAL record, then a crash.
  env_.Inject({.op = testing::FaultOp::kAppend,
               .files = testing::kWalFile,
               .after = 1,
               .short_write = true});
  EXPECT_FALSE(db_->Put(WriteOptions(), "big", std::string(70000, 'b')).ok());
  env_.HaltWrites();
  db_.reset();
  env_.Restart();
  env_.ClearFaults();
  VerifyReport r = Verify();
  EXPECT_TRUE(r.ok()) << absl::StrJoin(r.errors, "\n");
  ASSERT_FALSE(r.warnings.empty());
  EXPECT_TRUE(absl::StrContains(absl::StrJoin(r.warnings, "\n"), "torn"))
      << absl::StrJoin(r.warnings, "\n");
}

TEST_F(VerifyTest, DatabaseInUseIsRefused) {
  Populate();
  auto r = VerifyDatabase(dir_.path());
  EXPECT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
}

TEST_F(VerifyTest, NotADatabaseIsNotFound) {
  auto r = VerifyDatabase(dir_.path() + "/nothing");
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
  r = VerifyDatabase(dir_.path());
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
}

TEST_F(VerifyTest, FlippedByteInTableIsAnError) {
  Populate();
  db_.reset();
  std::string sst = AnyFile(FileType::kTable);
  FlipByte(sst, 10);
  VerifyReport r = Verify();
  ASSERT_EQ(r.errors.size(), 1u) << absl::StrJoin(r.errors, "\n");
  EXPECT_TRUE(absl::StrContains(r.errors[0], sst)) << r.errors[0];
  EXPECT_TRUE(absl::StrContains(r.errors[0], "offset 0")) << r.errors[0];
}

TEST_F(VerifyTest, FlippedByteInTableFooterIsAnError) {
  Populate();
  db_.reset();
  std::string sst = AnyFile(FileType::kTable);
  FlipByte(sst, fs::file_size(sst) - 10);
  VerifyReport r = Verify();
  ASSERT_EQ(r.errors.size(), 1u) << absl::StrJoin(r.errors, "\n");
  EXPECT_TRUE(absl::StrContains(r.errors[0], sst)) << r.errors[0];
}

TEST_F(VerifyTest, FlippedByteInWalIsAnError) {
  Populate();
  db_.reset();
  std::string wal = AnyFile(FileType::kWal);
  FlipByte(wal, 30);
  VerifyReport r = Verify();
  ASSERT_EQ(r.errors.size(), 1u) << absl::StrJoin(r.errors, "\n");
  EXPECT_TRUE(absl::StrContains(r.errors[0], wal)) << r.errors[0];
  EXPECT_TRUE(absl::StrContains(r.errors[0], "offset 16")) << r.errors[0];
}

TEST_F(VerifyTest, FlippedByteInManifestIsAnError) {
  Populate();
  db_.reset();
  std::string manifest = AnyFile(FileType::kManifest);
  FlipByte(manifest, 30);
  VerifyReport r = Verify();
  ASSERT_FALSE(r.errors.empty());
  EXPECT_TRUE(absl::StrContains(r.errors[0], manifest)) << r.errors[0];
}

TEST_F(VerifyTest, FlippedByteInCurrentIsAnError) {
  Populate();
  db_.reset();
  FlipByte(CurrentFileName(dir_.path()), 5);
  VerifyReport r = Verify();
  ASSERT_FALSE(r.errors.empty());
  EXPECT_TRUE(absl::StrContains(r.errors[0], "CURRENT at offset 0"))
      << r.errors[0];
}

TEST_F(VerifyTest, MissingTableIsAnErrorAndOrphanIsAWarning) {
  Populate();
  db_.reset();
  std::string sst = AnyFile(FileType::kTable);
  std::string orphan = TableFileName(dir_.path(), 999999);
  fs::rename(sst, orphan);
  VerifyReport r = Verify();
  ASSERT_FALSE(r.errors.empty());
  EXPECT_TRUE(absl::StrContains(absl::StrJoin(r.errors, "\n"), "missing"))
      << absl::StrJoin(r.errors, "\n");
  EXPECT_TRUE(absl::StrContains(absl::StrJoin(r.warnings, "\n"), "999999.sst"))
      << absl::StrJoin(r.warnings, "\n");
}

TEST_F(VerifyTest, PartialOrphanTableIsAWarning) {
  Populate();
  db_.reset();
  // A kill during a flush leaves the table it was writing, unlisted.
  testing::WriteFileOrDie(TableFileName(dir_.path(), 999998), "");
  testing::WriteFileOrDie(TableFileName(dir_.path(), 999999),
                          std::string(3000, 'x'));
  VerifyReport r = Verify();
  EXPECT_TRUE(r.ok()) << absl::StrJoin(r.errors, "\n");
  EXPECT_EQ(r.warnings.size(), 2u) << absl::StrJoin(r.warnings, "\n");
}

TEST_F(VerifyTest, TruncatedTableIsAnError) {
  Populate();
  db_.reset();
  std::string sst = AnyFile(FileType::kTable);
  fs::resize_file(sst, fs::file_size(sst) - 1);
  VerifyReport r = Verify();
  ASSERT_EQ(r.errors.size(), 1u) << absl::StrJoin(r.errors, "\n");
  EXPECT_TRUE(absl::StrContains(r.errors[0], sst)) << r.errors[0];
  EXPECT_TRUE(absl::StrContains(r.errors[0], "the manifest says")) << r.errors[0];
}

// Regression (fixed): RunCompaction calls
// DeleteObsoleteFiles while the Compaction still pins its input version, so
// the input tables of a compaction stay on disk until the next flush,
// compaction or open. After a CompactRange and a clean close they are
// orphans (disk space held for no reader). Expected: no orphan warning.
TEST_F(VerifyTest, NoOrphanTablesAfterCompactionAndCleanClose) {
  Open();
  WriteOptions wo;
  wo.sync = false;
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < 300; i++) {
      ASSERT_OK(db_->Put(wo, absl::StrFormat("key%05d", i), std::string(100, 'v')));
    }
    ASSERT_OK(db_->Flush());
  }
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  db_.reset();
  VerifyReport r = Verify();
  EXPECT_TRUE(r.ok()) << absl::StrJoin(r.errors, "\n");
  EXPECT_TRUE(r.warnings.empty()) << absl::StrJoin(r.warnings, "\n");
}

}  // namespace
}  // namespace strata::storage
