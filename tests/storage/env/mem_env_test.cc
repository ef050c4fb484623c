// What the in-memory Env adds to the Env contract (env_test.cc checks the
// contract itself): simulated power loss, path normalization, isolation
// between instances, lifetimes and thread safety.

#include "env/mem_env.h"

#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class MemEnvTest : public ::testing::Test {
 protected:
  MemEnvTest() { EXPECT_OK(env_.CreateDir("/db")); }

  std::unique_ptr<WritableFile> Create(const std::string& path) {
    auto file = env_.NewWritableFile(path);
    EXPECT_OK(file);
    return file.ok() ? std::move(*file) : nullptr;
  }

  // The whole file, or "<absent>".
  std::string Contents(const std::string& path) {
    auto size = env_.GetFileSize(path);
    if (absl::IsNotFound(size.status())) return "<absent>";
    EXPECT_OK(size);
    auto file = env_.NewRandomAccessFile(path);
    EXPECT_OK(file);
    if (!size.ok() || !file.ok()) return "<error>";
    std::string scratch(*size, '\0');
    auto r = (*file)->Read(0, scratch.size(), scratch.data());
    EXPECT_OK(r);
    return r.ok() ? std::string(*r) : "<error>";
  }

  // A file whose bytes and directory entry are both durable.
  void CreateDurable(const std::string& path, std::string_view contents) {
    auto f = Create(path);
    ASSERT_NE(f, nullptr);
    ASSERT_OK(f->Append(contents));
    ASSERT_OK(f->Sync());
    ASSERT_OK(f->Close());
    ASSERT_OK(env_.SyncDir("/db"));
  }

  MemEnv env_;
};

// ------------------------------------------------------------ power loss

TEST_F(MemEnvTest, PowerLossKeepsSyncedBytesAndDropsTheRest) {
  auto f = Create("/db/f");
  ASSERT_OK(env_.SyncDir("/db"));
  ASSERT_OK(f->Append("synced"));
  ASSERT_OK(f->Sync());
  ASSERT_OK(f->Append("+flushed"));
  ASSERT_OK(f->Flush());
  EXPECT_EQ(Contents("/db/f"), "synced+flushed");
  env_.ResetToSyncedState();
  EXPECT_EQ(Contents("/db/f"), "synced");
}

TEST_F(MemEnvTest, PowerLossEmptiesAFileNeverSynced) {
  auto f = Create("/db/f");
  ASSERT_OK(env_.SyncDir("/db"));
  ASSERT_OK(f->Append("never synced"));
  env_.ResetToSyncedState();
  EXPECT_EQ(Contents("/db/f"), "");
}

TEST_F(MemEnvTest, FileCreatedAfterTheLastSyncDirIsLost) {
  auto f = Create("/db/f");
  ASSERT_OK(f->Append("data"));
  ASSERT_OK(f->Sync());  // The bytes, but not the directory entry.
  env_.ResetToSyncedState();
  EXPECT_EQ(Contents("/db/f"), "<absent>");
  auto children = env_.GetChildren("/db");
  ASSERT_OK(children);
  EXPECT_TRUE(children->empty());
}

TEST_F(MemEnvTest, RenameAfterTheLastSyncDirIsUndone) {
  CreateDurable("/db/CURRENT", "old");
  CreateDurable("/db/tmp", "new");
  ASSERT_OK(env_.RenameFile("/db/tmp", "/db/CURRENT"));
  EXPECT_EQ(Contents("/db/CURRENT"), "new");
  env_.ResetToSyncedState();
  EXPECT_EQ(Contents("/db/CURRENT"), "old");
  EXPECT_EQ(Contents("/db/tmp"), "new");
}

TEST_F(MemEnvTest, RenameFollowedBySyncDirSurvives) {
  CreateDurable("/db/CURRENT", "old");
  CreateDurable("/db/tmp", "new");
  ASSERT_OK(env_.RenameFile("/db/tmp", "/db/CURRENT"));
  ASSERT_OK(env_.SyncDir("/db"));
  env_.ResetToSyncedState();
  EXPECT_EQ(Contents("/db/CURRENT"), "new");
  EXPECT_EQ(Contents("/db/tmp"), "<absent>");
}

TEST_F(MemEnvTest, RemovalAfterTheLastSyncDirIsUndone) {
  CreateDurable("/db/f", "synced");
  ASSERT_OK(env_.RemoveFile("/db/f"));
  env_.ResetToSyncedState();
  EXPECT_EQ(Contents("/db/f"), "synced");

  ASSERT_OK(env_.RemoveFile("/db/f"));
  ASSERT_OK(env_.SyncDir("/db"));
  env_.ResetToSyncedState();
  EXPECT_EQ(Contents("/db/f"), "<absent>");
}

TEST_F(MemEnvTest, SyncDirCoversOnlyItsOwnDirectory) {
  ASSERT_OK(env_.CreateDir("/db/sub"));
  auto f = Create("/db/sub/f");
  ASSERT_OK(f->Sync());
  ASSERT_OK(env_.SyncDir("/db"));  // Not /db/sub.
  env_.ResetToSyncedState();
  EXPECT_TRUE(env_.FileExists("/db/sub"));  // CreateDir is durable at once.
  EXPECT_EQ(Contents("/db/sub/f"), "<absent>");
}

TEST_F(MemEnvTest, TruncationIsDurableAtOnce) {
  CreateDurable("/db/f", "old contents");
  auto f = Create("/db/f");
  ASSERT_OK(f->Append("new, unsynced"));
  env_.ResetToSyncedState();
  EXPECT_EQ(Contents("/db/f"), "");
}

TEST_F(MemEnvTest, WritableFilesOpenedBeforeAPowerLossFailAfterIt) {
  auto f = Create("/db/f");
  ASSERT_OK(env_.SyncDir("/db"));
  ASSERT_OK(f->Append("before"));
  ASSERT_OK(f->Sync());
  env_.ResetToSyncedState();
  for (absl::Status s : {f->Append("after"), f->Flush(), f->Sync()}) {
    EXPECT_TRUE(absl::IsUnavailable(s)) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("/db/f"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("simulated power loss"));
  }
  EXPECT_FALSE(f->Close().ok());
  EXPECT_EQ(Contents("/db/f"), "before");
  // Files opened after the power loss work.
  auto g = Create("/db/f");
  ASSERT_OK(g->Append("rebooted"));
  ASSERT_OK(g->Close());
  EXPECT_EQ(Contents("/db/f"), "rebooted");
}

TEST_F(MemEnvTest, ReadersOpenedBeforeAPowerLossKeepWorking) {
  CreateDurable("/db/f", "durable");
  auto reader = env_.NewSequentialFile("/db/f");
  ASSERT_OK(reader);
  env_.ResetToSyncedState();
  char scratch[16];
  auto r = (*reader)->Read(sizeof(scratch), scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "durable");
}

TEST_F(MemEnvTest, LocksSurviveAPowerLossUntilReleased) {
  auto lock = env_.LockFile("/db/LOCK");
  ASSERT_OK(lock);
  env_.ResetToSyncedState();
  EXPECT_TRUE(absl::IsFailedPrecondition(env_.LockFile("/db/LOCK").status()));
  lock->reset();
  EXPECT_OK(env_.LockFile("/db/LOCK"));
}

// --------------------------------------------------- paths and instances

TEST_F(MemEnvTest, RepeatedTrailingAndMissingLeadingSlashesNameTheSameFile) {
  CreateDurable("/db/f", "x");
  EXPECT_EQ(Contents("//db///f"), "x");
  EXPECT_EQ(Contents("db/f"), "x");
  EXPECT_TRUE(env_.FileExists("/db/"));
  auto lock = env_.LockFile("/db/LOCK");
  ASSERT_OK(lock);
  EXPECT_FALSE(env_.LockFile("db//LOCK").ok());
}

TEST_F(MemEnvTest, RootAlwaysExists) {
  EXPECT_TRUE(env_.FileExists("/"));
  ASSERT_OK(env_.CreateDir("/"));
  ASSERT_OK(env_.SyncDir("/"));
  auto children = env_.GetChildren("/");
  ASSERT_OK(children);
  EXPECT_THAT(*children, ElementsAre("db"));
  EXPECT_FALSE(env_.FileExists(""));
  EXPECT_TRUE(absl::IsNotFound(env_.NewWritableFile("").status()));
}

TEST_F(MemEnvTest, CreateDirOverAFileIsAnError) {
  CreateDurable("/db/f", "x");
  absl::Status s = env_.CreateDir("/db/f");
  EXPECT_TRUE(absl::IsInternal(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("/db/f"));
}

TEST_F(MemEnvTest, DirectoriesCannotBeRenamed) {
  ASSERT_OK(env_.CreateDir("/db/sub"));
  EXPECT_TRUE(absl::IsInternal(env_.RenameFile("/db/sub", "/db/other")));
  CreateDurable("/db/f", "x");
  EXPECT_TRUE(absl::IsInternal(env_.RenameFile("/db/f", "/db/sub")));
  EXPECT_EQ(Contents("/db/f"), "x");
}

TEST_F(MemEnvTest, RenameOfAFileOntoItselfChangesNothing) {
  CreateDurable("/db/f", "x");
  ASSERT_OK(env_.RenameFile("/db/f", "//db/f"));
  EXPECT_EQ(Contents("/db/f"), "x");
}

TEST_F(MemEnvTest, TwoInstancesShareNoFilesAndNoLocks) {
  MemEnv other;
  CreateDurable("/db/f", "mine");
  EXPECT_FALSE(other.FileExists("/db/f"));
  ASSERT_OK(other.CreateDir("/db"));
  auto a = env_.LockFile("/db/LOCK");
  auto b = other.LockFile("/db/LOCK");
  EXPECT_OK(a);
  EXPECT_OK(b);
}

TEST(MemEnvLifetimeTest, FilesAndLocksOutliveTheEnv) {
  std::unique_ptr<Env> env = NewMemEnv();
  ASSERT_OK(env->CreateDir("/d"));
  auto writer = env->NewWritableFile("/d/f");
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Append("abc"));
  auto reader = env->NewRandomAccessFile("/d/f");
  ASSERT_OK(reader);
  auto lock = env->LockFile("/d/LOCK");
  ASSERT_OK(lock);
  env.reset();
  ASSERT_OK((*writer)->Append("def"));
  char scratch[8];
  auto r = (*reader)->Read(0, sizeof(scratch), scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "abcdef");
  lock->reset();
  ASSERT_OK((*writer)->Close());
}

// ------------------------------------------------------ thread safety

TEST_F(MemEnvTest, ConcurrentUsersOfOneEnvSeeConsistentFiles) {
  // Each thread writes, syncs, renames and reads back its own files while
  // the others list and sync the shared directory. Bounded: 4 x 200 files.
  constexpr int kThreads = 4, kFiles = 200;
  std::vector<std::thread> threads;
  std::vector<int> errors(kThreads, 0);
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFiles; i++) {
        std::string tmp = absl::StrCat("/db/t", t, "-", i, ".tmp");
        std::string final_name = absl::StrCat("/db/t", t, "-", i);
        std::string contents = absl::StrCat("thread ", t, " file ", i);
        auto f = env_.NewWritableFile(tmp);
        if (!f.ok() || !(*f)->Append(contents).ok() || !(*f)->Sync().ok() ||
            !(*f)->Close().ok() || !env_.RenameFile(tmp, final_name).ok() ||
            !env_.SyncDir("/db").ok() || !env_.GetChildren("/db").ok()) {
          errors[t]++;
          continue;
        }
        auto r = env_.NewSequentialFile(final_name);
        char scratch[64];
        if (!r.ok()) {
          errors[t]++;
          continue;
        }
        auto got = (*r)->Read(sizeof(scratch), scratch);
        if (!got.ok() || *got != contents) errors[t]++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_THAT(errors, ::testing::Each(0));
  auto children = env_.GetChildren("/db");
  ASSERT_OK(children);
  EXPECT_EQ(children->size(), size_t{kThreads * kFiles});
  env_.ResetToSyncedState();  // Everything was synced: nothing is lost.
  children = env_.GetChildren("/db");
  ASSERT_OK(children);
  EXPECT_EQ(children->size(), size_t{kThreads * kFiles});
}

}  // namespace
}  // namespace strata::storage
