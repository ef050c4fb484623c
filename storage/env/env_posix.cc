// The POSIX Env: pread/write/fdatasync on file descriptors, flock for the
// database lock.

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>
#include <optional>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "util/mutex.h"
#include "strata/storage/env.h"
#include "env/io_error.h"

namespace strata::storage {

namespace {
// The Status code for an errno (see io_error.h).
absl::Status StatusForErrno(int err, const std::string& msg) {
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case EAGAIN:
    case EROFS:
    case EMFILE:
    case ENFILE:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}
}  // namespace

absl::Status IOError(std::string_view context, const std::string& path,
                     int err) {
  std::string msg =
      absl::StrCat(std::string(context), " ", path, ": ", std::strerror(err));
  absl::Status s = StatusForErrno(err, msg);
  s.SetPayload(kErrnoPayloadUrl, absl::Cord(std::to_string(err)));
  return s;
}

bool IsOutOfSpace(const absl::Status& s) {
  auto payload = s.GetPayload(kErrnoPayloadUrl);
  if (!payload.has_value()) return false;
  const std::string err(*payload);
  return err == std::to_string(ENOSPC) || err == std::to_string(EDQUOT);
}

absl::Status Env::TruncateFile(const std::string& path, uint64_t) {
  return absl::UnimplementedError("truncate " + path +
                                  ": not supported by this Env");
}

namespace {

class PosixSequentialFile final : public SequentialFile {
 public:
  PosixSequentialFile(std::string path, int fd)
      : path_(std::move(path)), fd_(fd) {}
  ~PosixSequentialFile() override { ::close(fd_); }

  absl::StatusOr<std::string_view> Read(size_t n, char* scratch) override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::read(fd_, scratch + done, n - done);
      if (r < 0) {
        if (errno == EINTR) continue;
        return IOError("read", path_, errno);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return std::string_view(scratch, done);
  }

  absl::Status Skip(uint64_t n) override {
    if (::lseek(fd_, static_cast<off_t>(n), SEEK_CUR) == -1) {
      return IOError("seek", path_, errno);
    }
    return absl::OkStatus();
  }

 private:
  const std::string path_;
  const int fd_;
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd)
      : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }

  absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n,
                                        char* scratch) const override {
    size_t done = 0;
    while (done < n) {
      ssize_t r = ::pread(fd_, scratch + done, n - done,
                          static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return IOError("pread", path_, errno);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return std::string_view(scratch, done);
  }

 private:
  const std::string path_;
  const int fd_;
};

// A file read through a read-only shared mapping of all of it (LevelDB's
// PosixMmapReadableFile). Reads return views into the mapping; the file
// descriptor is closed once the mapping exists.
class PosixMmapRandomAccessFile final : public RandomAccessFile {
 public:
  PosixMmapRandomAccessFile(const char* base, size_t size)
      : base_(base), size_(size) {}
  ~PosixMmapRandomAccessFile() override {
    ::munmap(const_cast<char*>(base_), size_);
  }

  absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n,
                                        char* /*scratch*/) const override {
    if (offset >= size_) return std::string_view(base_ + size_, 0);
    n = static_cast<size_t>(std::min<uint64_t>(n, size_ - offset));
    return std::string_view(base_ + offset, n);
  }

  std::string_view Mapping() const override { return {base_, size_}; }

  bool InMemory(uint64_t offset, size_t n) const override {
    if (offset >= size_ || n == 0) return false;
    n = static_cast<size_t>(std::min<uint64_t>(n, size_ - offset));
    static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t start = reinterpret_cast<uintptr_t>(base_ + offset);
    const uintptr_t first = start & ~(page - 1);
    const size_t pages = (start + n - first + page - 1) / page;
    // Blocks are a few KiB: a small vector on the stack covers them.
    unsigned char small[16];
    std::vector<unsigned char> large;
    unsigned char* vec = small;
    if (pages > sizeof(small)) {
      large.resize(pages);
      vec = large.data();
    }
    if (::mincore(reinterpret_cast<void*>(first), pages * page, vec) != 0) {
      return false;
    }
    for (size_t i = 0; i < pages; i++) {
      if ((vec[i] & 1) == 0) return false;
    }
    return true;
  }

 private:
  const char* const base_;
  const size_t size_;
};

// Buffers appends in user space (64 KiB) to keep small WAL records cheap.
class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd)
      : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) Close().IgnoreError();
  }

  absl::Status Append(std::string_view data) override {
    if (fd_ < 0) return absl::FailedPreconditionError("append to closed file " + path_);
    if (buf_.size() + data.size() <= kBufferSize) {
      buf_.append(data.data(), data.size());
      return absl::OkStatus();
    }
    absl::Status s = FlushBuffer();
    if (!s.ok()) return s;
    if (data.size() <= kBufferSize) {
      buf_.append(data.data(), data.size());
      return absl::OkStatus();
    }
    return WriteRaw(data);
  }

  absl::Status Flush() override { return FlushBuffer(); }

  absl::Status Sync() override {
    absl::Status s = FlushBuffer();
    if (!s.ok()) return s;
    if (::fdatasync(fd_) != 0) return IOError("fdatasync", path_, errno);
    return absl::OkStatus();
  }

  absl::Status Close() override {
    if (fd_ < 0) return absl::OkStatus();
    absl::Status s = FlushBuffer();
    if (::close(fd_) != 0 && s.ok()) s = IOError("close", path_, errno);
    fd_ = -1;
    return s;
  }

 private:
  static constexpr size_t kBufferSize = 64 << 10;

  absl::Status FlushBuffer() {
    absl::Status s = WriteRaw(buf_);
    buf_.clear();
    return s;
  }

  absl::Status WriteRaw(std::string_view data) {
    while (!data.empty()) {
      ssize_t w = ::write(fd_, data.data(), data.size());
      if (w < 0) {
        if (errno == EINTR) continue;
        return IOError("write", path_, errno);
      }
      data.remove_prefix(static_cast<size_t>(w));
    }
    return absl::OkStatus();
  }

  const std::string path_;
  int fd_;
  std::string buf_;
};

// flock() locks are per open file description, so two DBs in one process
// would both succeed; the set catches that case.
class LockTable {
 public:
  bool Insert(const std::string& path) {
    MutexLock l(&mu_);
    return paths_.insert(path).second;
  }
  void Remove(const std::string& path) {
    MutexLock l(&mu_);
    paths_.erase(path);
  }

 private:
  Mutex mu_;
  std::set<std::string> paths_ ABSL_GUARDED_BY(mu_);
};

class PosixFileLock final : public FileLock {
 public:
  PosixFileLock(LockTable* table, std::string path, int fd)
      : table_(table), path_(std::move(path)), fd_(fd) {}
  ~PosixFileLock() override {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    table_->Remove(path_);
  }

 private:
  LockTable* const table_;
  const std::string path_;
  const int fd_;
};

class PosixEnv final : public Env {
 public:
  absl::StatusOr<std::unique_ptr<SequentialFile>> NewSequentialFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IOError("open", path, errno);
    return std::make_unique<PosixSequentialFile>(path, fd);
  }

  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IOError("open", path, errno);
    return std::make_unique<PosixRandomAccessFile>(path, fd);
  }

  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewMappedRandomAccessFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IOError("open", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return IOError("fstat", path, err);
    }
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size > 0 && size <= SIZE_MAX) {
      void* base = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ,
                          MAP_SHARED, fd, 0);
      if (base != MAP_FAILED) {
        ::close(fd);
        return std::make_unique<PosixMmapRandomAccessFile>(
            static_cast<const char*>(base), static_cast<size_t>(size));
      }
    }
    // Empty, too large for the address space, or mmap failed (ENOMEM when
    // the address space or vm.max_map_count is exhausted): read with pread.
    return std::make_unique<PosixRandomAccessFile>(path, fd);
  }

  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(), O_TRUNC | O_WRONLY | O_CREAT | O_CLOEXEC,
                    0644);
    if (fd < 0) return IOError("open", path, errno);
    return std::make_unique<PosixWritableFile>(path, fd);
  }

  bool FileExists(const std::string& path) override {
    return ::access(path.c_str(), F_OK) == 0;
  }

  absl::StatusOr<std::vector<std::string>> GetChildren(
      const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return IOError("opendir", dir, errno);
    std::vector<std::string> result;
    while (struct dirent* e = ::readdir(d)) {
      std::string_view name(e->d_name);
      if (name == "." || name == "..") continue;
      result.emplace_back(name);
    }
    ::closedir(d);
    return result;
  }

  absl::Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return IOError("unlink", path, errno);
    return absl::OkStatus();
  }

  absl::Status CreateDir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return IOError("mkdir", dir, errno);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> GetFileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return IOError("stat", path, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  absl::Status RenameFile(const std::string& from,
                          const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return IOError("rename", from, errno);
    }
    return absl::OkStatus();
  }

  absl::Status LinkFile(const std::string& from,
                        const std::string& to) override {
    if (::link(from.c_str(), to.c_str()) == 0) return absl::OkStatus();
    const int err = errno;
    // Another file system, or one without hard links: copy instead.
    if (err == EXDEV || err == EPERM || err == EMLINK || err == ENOTSUP ||
        err == EOPNOTSUPP) {
      if (FileExists(to)) return IOError("link " + from + " to", to, EEXIST);
      return CopyFile(this, from, to).status();
    }
    if (err == EEXIST) return IOError("link " + from + " to", to, err);
    return IOError("link", from, err);
  }

  absl::Status TruncateFile(const std::string& path, uint64_t size) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return IOError("open", path, errno);
    absl::Status s;
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      s = IOError("ftruncate", path, errno);
    } else if (::fsync(fd) != 0) {
      s = IOError("fsync", path, errno);
    }
    ::close(fd);
    return s;
  }

  absl::Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return IOError("open", dir, errno);
    absl::Status s;
    if (::fsync(fd) != 0) s = IOError("fsync", dir, errno);
    ::close(fd);
    return s;
  }

  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path) override {
    if (!locks_.Insert(path)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "lock ", path, ": already held by another DB in this process"));
    }
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      locks_.Remove(path);
      return IOError("open", path, errno);
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(fd);
      locks_.Remove(path);
      if (err == EWOULDBLOCK) {
        return absl::FailedPreconditionError(absl::StrCat(
            "lock ", path,
            ": held by another process (is another strata-server using "
            "this data directory?)"));
      }
      return IOError("flock", path, err);
    }
    return std::make_unique<PosixFileLock>(&locks_, path, fd);
  }

  uint64_t NowMicros() override {
    struct timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
  }

 private:
  LockTable locks_;
};

}  // namespace

uint64_t Env::NowUnixMillis() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

Env* Env::Default() {
  static PosixEnv* env = new PosixEnv();
  return env;
}

}  // namespace strata::storage
