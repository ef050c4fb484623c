// What only the POSIX Env does (env_test.cc checks the shared contract):
// errno values become Status codes carrying the path and the errno text,
// and the database lock is an flock visible to other processes.

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "env/io_error.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "strata/storage/env.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using ::testing::HasSubstr;

struct ErrnoCase {
  int err;
  absl::StatusCode code;
};

TEST(IOErrorTest, ErrnoMapsToACodeAndTheMessageNamesOperationPathAndErrno) {
  const ErrnoCase cases[] = {
      {ENOENT, absl::StatusCode::kNotFound},
      // Conditions an operator can fix: retry after fixing.
      {ENOSPC, absl::StatusCode::kUnavailable},
      {EDQUOT, absl::StatusCode::kUnavailable},
      {EIO, absl::StatusCode::kUnavailable},
      {EAGAIN, absl::StatusCode::kUnavailable},
      {EROFS, absl::StatusCode::kUnavailable},
      {EMFILE, absl::StatusCode::kUnavailable},
      {ENFILE, absl::StatusCode::kUnavailable},
      // Everything else.
      {EACCES, absl::StatusCode::kInternal},
      {EISDIR, absl::StatusCode::kInternal},
      {ENOTDIR, absl::StatusCode::kInternal},
      {EBADF, absl::StatusCode::kInternal},
  };
  for (const ErrnoCase& c : cases) {
    SCOPED_TRACE(std::strerror(c.err));
    absl::Status s = IOError("fdatasync", "/data/000007.wal", c.err);
    EXPECT_EQ(s.code(), c.code) << s;
    EXPECT_EQ(std::string(s.message()),
              std::string("fdatasync /data/000007.wal: ") + std::strerror(c.err));
  }
}

// A child process that holds an flock on path until told to exit.
class LockHolder {
 public:
  explicit LockHolder(const std::string& path) {
    int ready[2], done[2];
    EXPECT_EQ(::pipe(ready), 0);
    EXPECT_EQ(::pipe(done), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      // Child: only async-signal-safe calls until _exit.
      ::close(ready[0]);
      ::close(done[1]);
      int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      char ok = (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0) ? 'y' : 'n';
      if (::write(ready[1], &ok, 1) != 1) ::_exit(2);
      char c;
      while (::read(done[0], &c, 1) < 0 && errno == EINTR) {
      }
      ::_exit(ok == 'y' ? 0 : 1);
    }
    ::close(ready[1]);
    ::close(done[0]);
    done_fd_ = done[1];
    char ok = 'n';
    EXPECT_EQ(::read(ready[0], &ok, 1), 1);  // Blocks until the child locked.
    ::close(ready[0]);
    locked_ = ok == 'y';
  }

  ~LockHolder() { Release(); }

  bool locked() const { return locked_; }

  // Lets the child exit (releasing the lock) and waits for it.
  void Release() {
    if (pid_ <= 0) return;
    ::close(done_fd_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int done_fd_ = -1;
  bool locked_ = false;
};

TEST(PosixEnvTest, LockHeldByAnotherProcessIsFailedPrecondition) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/LOCK";
  LockHolder holder(path);
  ASSERT_TRUE(holder.locked());
  auto lock = Env::Default()->LockFile(path);
  ASSERT_FALSE(lock.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(lock.status())) << lock.status();
  EXPECT_THAT(std::string(lock.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(lock.status().message()),
              HasSubstr("another process"));
  holder.Release();
  auto retry = Env::Default()->LockFile(path);
  ASSERT_OK(retry);
}

TEST(PosixEnvTest, LockIsVisibleToOtherProcesses) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/LOCK";
  auto lock = Env::Default()->LockFile(path);
  ASSERT_OK(lock);
  {
    LockHolder holder(path);
    EXPECT_FALSE(holder.locked());
  }
  lock->reset();
  LockHolder holder(path);
  EXPECT_TRUE(holder.locked());
}

// Open file descriptors of this process.
int OpenDescriptors() {
  auto names = Env::Default()->GetChildren("/proc/self/fd");
  EXPECT_OK(names);
  return names.ok() ? static_cast<int>(names->size()) : -1;
}

// A mapped file holds no descriptor (a table cache of mapped tables does
// not count against RLIMIT_NOFILE) and its bytes are resident once read.
TEST(PosixEnvTest, MappedFileHoldsNoDescriptorAndKnowsWhatIsInMemory) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/000001.sst";
  const std::string contents(3 * 4096 + 100, 'x');
  testing::WriteFileOrDie(path, contents);
  const int before = OpenDescriptors();
  auto file = Env::Default()->NewMappedRandomAccessFile(path);
  ASSERT_OK(file);
  EXPECT_EQ(OpenDescriptors(), before);
  std::string_view m = (*file)->Mapping();
  ASSERT_EQ(m, contents);
  // Just written and read: in the page cache.
  EXPECT_TRUE((*file)->InMemory(0, contents.size()));
  EXPECT_TRUE((*file)->InMemory(4000, 200));
  // Outside the file: never.
  EXPECT_FALSE((*file)->InMemory(contents.size(), 1));
  EXPECT_FALSE((*file)->InMemory(0, 0));
  file->reset();
  EXPECT_EQ(OpenDescriptors(), before);
}

// An empty file cannot be mapped: it is read with pread instead.
TEST(PosixEnvTest, EmptyFileIsReadWithPreadInsteadOfMapped) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/empty";
  testing::WriteFileOrDie(path, "");
  auto file = Env::Default()->NewMappedRandomAccessFile(path);
  ASSERT_OK(file);
  EXPECT_TRUE((*file)->Mapping().empty());
  EXPECT_FALSE((*file)->InMemory(0, 1));
  char scratch[4];
  auto r = (*file)->Read(0, sizeof(scratch), scratch);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "");
}

TEST(PosixEnvTest, DefaultIsOneSharedInstance) {
  EXPECT_EQ(Env::Default(), Env::Default());
}

}  // namespace
}  // namespace strata::storage
