// The engine on a real, really full file system: a small tmpfs that the
// test mounts itself (needs root, i.e. CAP_SYS_ADMIN; skipped with a
// message otherwise) and unmounts at the end. A filler file leaves little
// room; puts go until the engine refuses one for lack of space
// (RESOURCE_EXHAUSTED, never read-only); reads keep working; the filler is
// removed and the engine's retry resumes writes in this process; after a
// reopen every acknowledged write is there and no refused one.

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

constexpr uint64_t kFsBytes = 8 << 20;

class TmpfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::strata::testing::QuietLogs();
    mount_point_ = dir_.path() + "/fs";
    ASSERT_EQ(::mkdir(mount_point_.c_str(), 0755), 0) << std::strerror(errno);
    const std::string opts = absl::StrFormat("size=%d", kFsBytes);
    if (::mount("tmpfs", mount_point_.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      const int err = errno;
      ::rmdir(mount_point_.c_str());
      GTEST_SKIP() << "cannot mount a tmpfs (" << std::strerror(err)
                   << "); this test needs root (CAP_SYS_ADMIN)";
    }
    mounted_ = true;
  }
  void TearDown() override {
    db_.reset();
    if (mounted_) {
      EXPECT_EQ(::umount2(mount_point_.c_str(), MNT_DETACH), 0)
          << std::strerror(errno);
      ::rmdir(mount_point_.c_str());
    }
    ::strata::testing::RestoreLogs();
  }

  absl::Status Open() {
    db_.reset();
    Options options;
    options.create_if_missing = true;
    options.memtable_bytes = 256 << 10;
    options.target_file_size = 256 << 10;
    options.compression = CompressionType::kNone;
    options.block_cache_bytes = 1 << 20;
    // Long: the test drives the retry (TEST_RetryOutOfSpaceNow).
    options.out_of_space_retry_initial_micros = 3'600'000'000;
    options.out_of_space_retry_max_micros = 3'600'000'000;
    auto db = DB::Open(options, mount_point_ + "/db");
    if (!db.ok()) return db.status();
    db_ = std::move(*db);
    return absl::OkStatus();
  }
  DBImpl* impl() { return static_cast<DBImpl*>(db_.get()); }

  // Fills the file system with a file of `bytes` (written through, so
  // tmpfs allocates its pages).
  void WriteFiller(uint64_t bytes) {
    std::ofstream f(mount_point_ + "/filler", std::ios::binary);
    std::string chunk(64 << 10, 'f');
    for (uint64_t n = 0; n < bytes; n += chunk.size()) f << chunk;
    f.close();
    ASSERT_TRUE(f.good());
  }

  strata::testing::TempDir dir_;
  std::string mount_point_;
  bool mounted_ = false;
  std::unique_ptr<DB> db_;
};

TEST_F(TmpfsTest, RealEnospcPausesWritesAndFreeingSpaceResumesThem) {
  ASSERT_OK(Open());
  // Leave about 1.5 MiB for the database.
  WriteFiller(kFsBytes - (3 << 19));
  WriteOptions sync;
  sync.sync = true;
  std::map<std::string, std::string> acked;
  std::string refused;
  absl::Status s;
  for (int i = 0; i < 5000; i++) {
    const std::string key = absl::StrFormat("k%05d", i);
    const std::string value(4096, static_cast<char>('a' + i % 26));
    s = db_->Put(sync, key, value).status();
    if (!s.ok()) {
      refused = key;
      break;
    }
    acked[key] = value;
  }
  ASSERT_FALSE(s.ok()) << "the file system never filled up";
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_NE(s.message().find("No space left on device"), std::string_view::npos)
      << s;
  EXPECT_TRUE(absl::IsResourceExhausted(db_->Put(sync, "x", "y").status()));
  // Reads go on.
  for (const auto& [k, v] : acked) {
    auto got = db_->Get(ReadOptions(), k);
    ASSERT_TRUE(got.ok()) << k << ": " << got.status();
    ASSERT_EQ(*got, v) << k;
  }
  // Still full: the retry fails and writes stay paused, or it fits in the
  // pages the cut-back WAL gave back and writes resume; either is right,
  // which one depends on where the file system filled up.
  const absl::Status retry = impl()->TEST_RetryOutOfSpaceNow();
  EXPECT_TRUE(retry.ok() || absl::IsResourceExhausted(retry)) << retry;

  ASSERT_EQ(::unlink((mount_point_ + "/filler").c_str()), 0);
  ASSERT_OK(impl()->TEST_RetryOutOfSpaceNow());
  ASSERT_OK(db_->Put(sync, "after", "1").status());
  acked["after"] = "1";

  ASSERT_OK(Open());
  for (const auto& [k, v] : acked) {
    auto got = db_->Get(ReadOptions(), k);
    ASSERT_TRUE(got.ok()) << k << ": " << got.status();
    ASSERT_EQ(*got, v) << k;
  }
  EXPECT_TRUE(absl::IsNotFound(db_->Get(ReadOptions(), refused).status()));
  EXPECT_TRUE(absl::IsNotFound(db_->Get(ReadOptions(), "x").status()));
  // Nothing else is in the database.
  auto it = db_->NewIterator(ReadOptions());
  size_t n = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) n++;
  ASSERT_OK(it->status());
  EXPECT_EQ(n, acked.size());
}

}  // namespace
}  // namespace strata::storage
