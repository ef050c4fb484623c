// The Env contract (strata/storage/env.h), checked against both Envs the
// engine ships: the POSIX Env in a temporary directory and the in-memory
// Env. The engine relies on exactly these behaviours, so the two must agree.

#include "strata/storage/env.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
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

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

enum class EnvKind { kPosix, kMem };

class EnvTest : public ::testing::TestWithParam<EnvKind> {
 protected:
  EnvTest() {
    if (GetParam() == EnvKind::kPosix) {
      tmp_.emplace();
      env_ = Env::Default();
      dir_ = tmp_->path();
    } else {
      mem_ = NewMemEnv();
      env_ = mem_.get();
      dir_ = "/env-test";
      EXPECT_OK(env_->CreateDir(dir_));
    }
  }

  std::string Path(std::string_view name) const {
    return absl::StrCat(dir_, "/", std::string(name));
  }

  void WriteFile(std::string_view name, std::string_view contents) {
    auto file = env_->NewWritableFile(Path(name));
    ASSERT_OK(file);
    ASSERT_OK((*file)->Append(contents));
    ASSERT_OK((*file)->Close());
  }

  // The whole file through a SequentialFile, in small reads.
  std::string ReadFile(std::string_view name) {
    auto file = env_->NewSequentialFile(Path(name));
    EXPECT_OK(file);
    if (!file.ok()) return "<error>";
    std::string out;
    char scratch[7];
    for (int reads = 0; reads < 100000; reads++) {
      auto chunk = (*file)->Read(sizeof(scratch), scratch);
      EXPECT_OK(chunk);
      if (!chunk.ok() || chunk->empty()) break;
      out.append(chunk->data(), chunk->size());
    }
    return out;
  }

  // An error of `code` whose message names `path` and gives the text of
  // `err`, as the POSIX Env words it.
  static void ExpectIOError(const absl::Status& s, absl::StatusCode code,
                            const std::string& path, int err) {
    EXPECT_EQ(s.code(), code) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(path));
    EXPECT_THAT(std::string(s.message()), HasSubstr(std::strerror(err)));
  }

  std::optional<testing::TempDir> tmp_;
  std::unique_ptr<Env> mem_;
  Env* env_ = nullptr;
  std::string dir_;
};

// ------------------------------------------------------------ file I/O

TEST_P(EnvTest, WrittenBytesReadBackSequentially) {
  auto file = env_->NewWritableFile(Path("f"));
  ASSERT_OK(file);
  ASSERT_OK((*file)->Append("hello "));
  ASSERT_OK((*file)->Flush());
  ASSERT_OK((*file)->Append(std::string(100000, 'x')));  // Past any buffer.
  ASSERT_OK((*file)->Sync());
  ASSERT_OK((*file)->Append("end"));
  ASSERT_OK((*file)->Close());
  EXPECT_EQ(ReadFile("f"), "hello " + std::string(100000, 'x') + "end");
}

TEST_P(EnvTest, EmptyFileReadsAsEndOfFile) {
  WriteFile("empty", "");
  auto file = env_->NewSequentialFile(Path("empty"));
  ASSERT_OK(file);
  char scratch[8];
  auto r = (*file)->Read(sizeof(scratch), scratch);
  ASSERT_OK(r);
  EXPECT_TRUE(r->empty());
}

TEST_P(EnvTest, SkipMovesTheSequentialReadPosition) {
  WriteFile("f", "0123456789");
  auto file = env_->NewSequentialFile(Path("f"));
  ASSERT_OK(file);
  char scratch[4];
  ASSERT_OK((*file)->Skip(3));
  auto r = (*file)->Read(4, scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "3456");
  ASSERT_OK((*file)->Skip(100));  // Past the end: nothing more to read.
  r = (*file)->Read(4, scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "");
}

TEST_P(EnvTest, PositionalReadsReturnShortViewsAtTheEnd) {
  WriteFile("f", "0123456789");
  auto file = env_->NewRandomAccessFile(Path("f"));
  ASSERT_OK(file);
  char scratch[8];
  auto r = (*file)->Read(2, 3, scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "234");
  r = (*file)->Read(0, 1, scratch);  // Any order.
  ASSERT_OK(r);
  EXPECT_EQ(*r, "0");
  r = (*file)->Read(7, 8, scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "789");
  r = (*file)->Read(10, 8, scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "");
  r = (*file)->Read(1000, 8, scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "");
}

TEST_P(EnvTest, ConcurrentPositionalReadsSeeTheirOwnBytes) {
  std::string contents;
  for (int i = 0; i < 4096; i++) contents += static_cast<char>('a' + i % 26);
  WriteFile("f", contents);
  auto file = env_->NewRandomAccessFile(Path("f"));
  ASSERT_OK(file);
  const RandomAccessFile* shared = file->get();
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      char scratch[64];
      for (int i = 0; i < 2000; i++) {
        uint64_t offset = (i * 37 + t * 101) % (contents.size() - 64);
        auto r = shared->Read(offset, 64, scratch);
        if (!r.ok() || *r != std::string_view(contents).substr(offset, 64)) {
          mismatches[t]++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_THAT(mismatches, ::testing::Each(0));
}

// The contract of NewMappedRandomAccessFile on every Env: the same bytes
// as NewRandomAccessFile, mapped (POSIX) or read with pread (others); the
// file keeps reading after its name is removed.
TEST_P(EnvTest, MappedFilesReadTheSameBytesAsPositionalReads) {
  std::string contents;
  for (int i = 0; i < 20000; i++) contents += static_cast<char>(i * 7 % 251);
  WriteFile("f", contents);
  auto mapped = env_->NewMappedRandomAccessFile(Path("f"));
  ASSERT_OK(mapped);
  auto plain = env_->NewRandomAccessFile(Path("f"));
  ASSERT_OK(plain);
  EXPECT_TRUE((*plain)->Mapping().empty());
  if (GetParam() == EnvKind::kPosix) {
    EXPECT_EQ((*mapped)->Mapping(), contents);
  } else {
    EXPECT_TRUE((*mapped)->Mapping().empty());  // Read with pread.
  }
  ASSERT_OK(env_->RemoveFile(Path("f")));
  char a[512], b[512];
  for (uint64_t offset : {0ul, 1ul, 4095ul, 4096ul, 19700ul, 19999ul, 20000ul,
                          30000ul}) {
    auto ra = (*mapped)->Read(offset, sizeof(a), a);
    auto rb = (*plain)->Read(offset, sizeof(b), b);
    ASSERT_OK(ra);
    ASSERT_OK(rb);
    EXPECT_EQ(*ra, *rb) << offset;
    EXPECT_EQ(*ra, std::string_view(contents).substr(
                       std::min<uint64_t>(offset, contents.size()), 512))
        << offset;
  }
}

TEST_P(EnvTest, MappedOpenOfAMissingFileIsNotFoundNamingThePath) {
  const std::string path = Path("missing");
  ExpectIOError(env_->NewMappedRandomAccessFile(path).status(),
                absl::StatusCode::kNotFound, path, ENOENT);
}

TEST_P(EnvTest, NewWritableFileTruncatesAnExistingFile) {
  WriteFile("f", "a long first version");
  WriteFile("f", "short");
  EXPECT_EQ(ReadFile("f"), "short");
  auto size = env_->GetFileSize(Path("f"));
  ASSERT_OK(size);
  EXPECT_EQ(*size, 5u);
}

TEST_P(EnvTest, FileSizeCountsFlushedBytes) {
  auto file = env_->NewWritableFile(Path("f"));
  ASSERT_OK(file);
  auto size = env_->GetFileSize(Path("f"));
  ASSERT_OK(size);
  EXPECT_EQ(*size, 0u);
  ASSERT_OK((*file)->Append("12345"));
  ASSERT_OK((*file)->Flush());
  size = env_->GetFileSize(Path("f"));
  ASSERT_OK(size);
  EXPECT_EQ(*size, 5u);
}

TEST_P(EnvTest, ReadersSeeBytesFlushedAfterTheyOpened) {
  auto writer = env_->NewWritableFile(Path("f"));
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Append("first"));
  ASSERT_OK((*writer)->Flush());
  auto reader = env_->NewRandomAccessFile(Path("f"));
  ASSERT_OK(reader);
  ASSERT_OK((*writer)->Append("+second"));
  ASSERT_OK((*writer)->Flush());
  char scratch[32];
  auto r = (*reader)->Read(0, sizeof(scratch), scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "first+second");
}

TEST_P(EnvTest, OpenFileKeepsWorkingAfterItsNameIsRemoved) {
  WriteFile("f", "still here");
  auto reader = env_->NewRandomAccessFile(Path("f"));
  ASSERT_OK(reader);
  ASSERT_OK(env_->RemoveFile(Path("f")));
  EXPECT_FALSE(env_->FileExists(Path("f")));
  char scratch[32];
  auto r = (*reader)->Read(0, sizeof(scratch), scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "still here");
}

TEST_P(EnvTest, WritesAfterARenameReachTheRenamedFile) {
  auto writer = env_->NewWritableFile(Path("old"));
  ASSERT_OK(writer);
  ASSERT_OK((*writer)->Append("before "));
  ASSERT_OK((*writer)->Flush());
  ASSERT_OK(env_->RenameFile(Path("old"), Path("new")));
  ASSERT_OK((*writer)->Append("after"));
  ASSERT_OK((*writer)->Close());
  EXPECT_FALSE(env_->FileExists(Path("old")));
  EXPECT_EQ(ReadFile("new"), "before after");
}

TEST_P(EnvTest, AppendAfterCloseIsFailedPrecondition) {
  auto file = env_->NewWritableFile(Path("f"));
  ASSERT_OK(file);
  ASSERT_OK((*file)->Close());
  ASSERT_OK((*file)->Close());  // Closing twice is harmless.
  absl::Status s = (*file)->Append("late");
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(Path("f")));
}

// ------------------------------------------------------------- errors

TEST_P(EnvTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = Path("missing");
  ExpectIOError(env_->NewSequentialFile(path).status(),
                absl::StatusCode::kNotFound, path, ENOENT);
  ExpectIOError(env_->NewRandomAccessFile(path).status(),
                absl::StatusCode::kNotFound, path, ENOENT);
  ExpectIOError(env_->GetFileSize(path).status(), absl::StatusCode::kNotFound,
                path, ENOENT);
  ExpectIOError(env_->RemoveFile(path), absl::StatusCode::kNotFound, path,
                ENOENT);
  ExpectIOError(env_->RenameFile(path, Path("to")),
                absl::StatusCode::kNotFound, path, ENOENT);
  EXPECT_FALSE(env_->FileExists(path));
  EXPECT_FALSE(env_->FileExists(Path("to")));
}

TEST_P(EnvTest, FileInAMissingDirectoryIsNotFound) {
  const std::string path = Path("no-such-dir/f");
  ExpectIOError(env_->NewWritableFile(path).status(),
                absl::StatusCode::kNotFound, path, ENOENT);
  ExpectIOError(env_->LockFile(path).status(), absl::StatusCode::kNotFound,
                path, ENOENT);
  ExpectIOError(env_->CreateDir(path), absl::StatusCode::kNotFound, path,
                ENOENT);
  ExpectIOError(env_->GetChildren(Path("no-such-dir")).status(),
                absl::StatusCode::kNotFound, Path("no-such-dir"), ENOENT);
  ExpectIOError(env_->SyncDir(Path("no-such-dir")),
                absl::StatusCode::kNotFound, Path("no-such-dir"), ENOENT);
  WriteFile("f", "x");
  EXPECT_FALSE(env_->RenameFile(Path("f"), path).ok());
  EXPECT_EQ(ReadFile("f"), "x");  // A failed rename leaves the source.
}

TEST_P(EnvTest, PathThroughAFileIsNotADirectory) {
  WriteFile("file", "x");
  const std::string path = Path("file/child");
  ExpectIOError(env_->NewWritableFile(path).status(),
                absl::StatusCode::kInternal, path, ENOTDIR);
  ExpectIOError(env_->NewSequentialFile(path).status(),
                absl::StatusCode::kInternal, path, ENOTDIR);
  ExpectIOError(env_->GetChildren(Path("file")).status(),
                absl::StatusCode::kInternal, Path("file"), ENOTDIR);
}

TEST_P(EnvTest, DirectoryIsNotAWritableFile) {
  ASSERT_OK(env_->CreateDir(Path("sub")));
  ExpectIOError(env_->NewWritableFile(Path("sub")).status(),
                absl::StatusCode::kInternal, Path("sub"), EISDIR);
  ExpectIOError(env_->RemoveFile(Path("sub")), absl::StatusCode::kInternal,
                Path("sub"), EISDIR);
  EXPECT_TRUE(env_->FileExists(Path("sub")));
}

// ------------------------------------------------- names and directories

TEST_P(EnvTest, RenameReplacesTheTarget) {
  WriteFile("a", "new contents");
  WriteFile("b", "old contents");
  ASSERT_OK(env_->RenameFile(Path("a"), Path("b")));
  EXPECT_FALSE(env_->FileExists(Path("a")));
  EXPECT_EQ(ReadFile("b"), "new contents");
}

TEST_P(EnvTest, RemoveFileRemovesOnlyThatFile) {
  WriteFile("a", "1");
  WriteFile("b", "2");
  ASSERT_OK(env_->RemoveFile(Path("a")));
  EXPECT_FALSE(env_->FileExists(Path("a")));
  EXPECT_TRUE(env_->FileExists(Path("b")));
  ExpectIOError(env_->RemoveFile(Path("a")), absl::StatusCode::kNotFound,
                Path("a"), ENOENT);
}

TEST_P(EnvTest, ChildrenAreNamesOfFilesAndDirectoriesWithoutDotEntries) {
  auto children = env_->GetChildren(dir_);
  ASSERT_OK(children);
  EXPECT_TRUE(children->empty());
  WriteFile("000001.wal", "");
  WriteFile("CURRENT", "");
  ASSERT_OK(env_->CreateDir(Path("sub")));
  WriteFile("sub/nested", "");  // Not a child of dir_.
  children = env_->GetChildren(dir_);
  ASSERT_OK(children);
  EXPECT_THAT(*children, UnorderedElementsAre("000001.wal", "CURRENT", "sub"));
  ASSERT_OK(env_->RemoveFile(Path("CURRENT")));
  children = env_->GetChildren(dir_);
  ASSERT_OK(children);
  EXPECT_THAT(*children, UnorderedElementsAre("000001.wal", "sub"));
}

TEST_P(EnvTest, CreateDirIsIdempotentAndCreatesOneLevel) {
  ASSERT_OK(env_->CreateDir(Path("d")));
  ASSERT_OK(env_->CreateDir(Path("d")));
  EXPECT_TRUE(env_->FileExists(Path("d")));
  ASSERT_OK(env_->CreateDir(Path("d/e")));
  WriteFile("d/e/f", "deep");
  EXPECT_EQ(ReadFile("d/e/f"), "deep");
  ASSERT_OK(env_->SyncDir(Path("d/e")));
}

TEST_P(EnvTest, SyncDirOfAFileIsNotADirectory) {
  WriteFile("f", "x");
  ExpectIOError(env_->SyncDir(Path("f")), absl::StatusCode::kInternal,
                Path("f"), ENOTDIR);
  ASSERT_OK(env_->SyncDir(dir_));
}

// ---------------------------------------------------------------- locks

TEST_P(EnvTest, LockHeldTwiceIsFailedPreconditionNamingThePath) {
  auto first = env_->LockFile(Path("LOCK"));
  ASSERT_OK(first);
  EXPECT_TRUE(env_->FileExists(Path("LOCK")));
  auto second = env_->LockFile(Path("LOCK"));
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(second.status())) << second.status();
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(Path("LOCK")));
  // Another path is another lock.
  auto other = env_->LockFile(Path("OTHER"));
  ASSERT_OK(other);
  // Released, it can be taken again.
  first->reset();
  auto third = env_->LockFile(Path("LOCK"));
  ASSERT_OK(third);
}

TEST_P(EnvTest, NowMicrosNeverGoesBack) {
  uint64_t last = env_->NowMicros();
  for (int i = 0; i < 1000; i++) {
    uint64_t now = env_->NowMicros();
    ASSERT_GE(now, last);
    last = now;
  }
}

INSTANTIATE_TEST_SUITE_P(Envs, EnvTest,
                         ::testing::Values(EnvKind::kPosix, EnvKind::kMem),
                         [](const auto& info) {
                           return info.param == EnvKind::kPosix
                                      ? std::string("Posix")
                                      : std::string("Mem");
                         });

}  // namespace
}  // namespace strata::storage
