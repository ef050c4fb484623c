#ifndef STRATA_STORAGE_ENV_H_
#define STRATA_STORAGE_ENV_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace strata::storage {

// The file-system interface the engine uses for all of its I/O (the idea of
// LevelDB's Env). Two implementations come with the engine: Env::Default()
// on the POSIX file system, and NewMemEnv() (below), a file system in
// memory. Tests run the engine on the in-memory Env when they need no real
// disk, and wrap an Env in a fault-injecting one (tests/support/fault_env.h)
// to simulate full disks, failed fsyncs and power loss without killing
// processes.
//
// Errors: every method returns Unavailable (ENOSPC, EIO, EDQUOT, ...) or
// Internal (other errno values) with the path and the errno text, NotFound
// when the file does not exist, and never throws.

// A file read from start to end (WAL and manifest replay).
// Thread safety: one thread at a time.
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  // Reads up to n bytes into scratch and returns a view of what was read
  // (which may point into scratch). An empty view means end of file.
  // REQUIRES: scratch has room for n bytes.
  virtual absl::StatusOr<std::string_view> Read(size_t n, char* scratch) = 0;
  // Skips n bytes.
  virtual absl::Status Skip(uint64_t n) = 0;
};

// A file read at arbitrary offsets (SSTables).
// Thread safety: safe for concurrent use by multiple threads.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to n bytes at offset. A view shorter than n means the read
  // reached end of file. The view points into scratch or, for a
  // memory-mapped file, into the mapping (valid while this object lives).
  // REQUIRES: scratch has room for n bytes.
  virtual absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n,
                                                char* scratch) const = 0;

  // For a memory-mapped file (Env::NewMappedRandomAccessFile): the whole
  // file, as it was when opened, as one view into a read-only shared
  // mapping that stays valid while this object lives. Reading it copies
  // nothing and needs no system call; a page not in memory is read from
  // disk by a page fault. Empty for files read with pread (the default).
  //
  // Only a file nobody modifies may be mapped: if another process
  // truncates it, touching a page past the new end raises SIGBUS and kills
  // the process (the engine maps only SSTables, which are immutable once
  // written and only ever deleted; a deleted file stays mapped and
  // readable).
  virtual std::string_view Mapping() const { return {}; }

  // Whether bytes [offset, offset + n) of a mapped file are in memory now,
  // so reading them through Mapping() does no disk I/O. One mincore(2)
  // system call per call. A hint only: pages may be evicted right after,
  // so a read may still fault. Always false for files that are not mapped
  // (and for n == 0 or offset past the end).
  virtual bool InMemory(uint64_t /*offset*/, size_t /*n*/) const {
    return false;
  }
};

// A file written sequentially (WAL, SSTables, manifest).
// Thread safety: one thread at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends data; may buffer in user space until Flush or Sync.
  virtual absl::Status Append(std::string_view data) = 0;
  // Hands buffered data to the operating system (survives a process crash).
  virtual absl::Status Flush() = 0;
  // Flushes and makes the data durable (fdatasync; survives power loss).
  virtual absl::Status Sync() = 0;
  // Flushes and closes. Further calls fail.
  virtual absl::Status Close() = 0;
};

// An exclusive advisory lock on a file, held until released or the process
// exits.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX Env. Never deleted; thread-safe.
  static Env* Default();

  virtual absl::StatusOr<std::unique_ptr<SequentialFile>> NewSequentialFile(
      const std::string& path) = 0;
  virtual absl::StatusOr<std::unique_ptr<RandomAccessFile>>
  NewRandomAccessFile(const std::string& path) = 0;
  // A RandomAccessFile whose bytes are memory-mapped (see
  // RandomAccessFile::Mapping), for files that are never modified once
  // written (SSTables). The mapping needs no file descriptor once made.
  // Where the Env cannot map a file (mmap fails, e.g. for lack of address
  // space, or an empty file) it returns a file read with pread instead, so
  // callers must check Mapping(). Errors: those of NewRandomAccessFile.
  // The default implementation, which every Env but the POSIX one uses
  // (EnvWrapper does not forward it, so a wrapper's own NewRandomAccessFile
  // and its fault injection stay in the read path), is
  // NewRandomAccessFile(path).
  virtual absl::StatusOr<std::unique_ptr<RandomAccessFile>>
  NewMappedRandomAccessFile(const std::string& path);
  // Creates or truncates path.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) = 0;

  virtual bool FileExists(const std::string& path) = 0;
  // Names (not paths) of the entries of dir, without "." and "..".
  virtual absl::StatusOr<std::vector<std::string>> GetChildren(
      const std::string& dir) = 0;
  virtual absl::Status RemoveFile(const std::string& path) = 0;
  // Creates dir; OK if it already exists.
  virtual absl::Status CreateDir(const std::string& dir) = 0;
  virtual absl::StatusOr<uint64_t> GetFileSize(const std::string& path) = 0;
  // Atomically replaces `to` with `from`.
  virtual absl::Status RenameFile(const std::string& from,
                                  const std::string& to) = 0;
  // Makes the directory entries of dir durable (fsync on the directory), so
  // a created or renamed file survives power loss.
  virtual absl::Status SyncDir(const std::string& dir) = 0;
  // Cuts the file at path to its first `size` bytes and makes the new
  // length durable (ftruncate + fsync). The engine uses it to drop a WAL
  // tail that a failed append or sync may have left torn, so the WAL ends
  // at its last acknowledged record. Never needs free space. The default
  // returns Unimplemented (an Env without it cannot resume writes after an
  // out-of-space WAL failure: the engine stays read-only instead).
  virtual absl::Status TruncateFile(const std::string& path, uint64_t size);

  // Makes `to` a second name of the file `from` (a hard link), or, where
  // the file system cannot link them (`to` on another file system, no hard
  // links), a copy of it, fsynced. Either way `to` then holds the bytes of
  // `from` and survives the removal of `from`; the directory entry of `to`
  // needs a SyncDir to survive power loss. Use it only for files nobody
  // writes any more (SSTables): a write through either name may show
  // through the other. Errors: NotFound if `from` is missing; Internal
  // (EEXIST) if `to` exists; otherwise the Env's I/O errors, naming the
  // path. The default implementation copies (CopyFile below).
  virtual absl::Status LinkFile(const std::string& from,
                                const std::string& to);

  // Takes an exclusive lock on path (creating it). Returns
  // FailedPrecondition naming the path if another process (or another DB in
  // this process) holds it.
  virtual absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path) = 0;

  // Microseconds on a monotonic clock, for durations.
  virtual uint64_t NowMicros() = 0;
  // Wall-clock time, milliseconds since the Unix epoch: the clock key
  // expiry (PutAttributes::expire_at_unix_ms) is judged by. The default
  // reads the system clock; a test Env may override it to move time by
  // hand. Thread-safe.
  virtual uint64_t NowUnixMillis();
};

// An Env that forwards every call to another one (LevelDB's EnvWrapper):
// derive from it and override only what you change, e.g. a clock a test
// moves by hand or a hook before each fsync. `target` is not owned and must
// outlive the wrapper; thread safety is the target's.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(Env* target) : target_(target) {}

  Env* target() const { return target_; }

  absl::StatusOr<std::unique_ptr<SequentialFile>> NewSequentialFile(
      const std::string& path) override {
    return target_->NewSequentialFile(path);
  }
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    return target_->NewRandomAccessFile(path);
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) override {
    return target_->NewWritableFile(path);
  }
  bool FileExists(const std::string& path) override {
    return target_->FileExists(path);
  }
  absl::StatusOr<std::vector<std::string>> GetChildren(
      const std::string& dir) override {
    return target_->GetChildren(dir);
  }
  absl::Status RemoveFile(const std::string& path) override {
    return target_->RemoveFile(path);
  }
  absl::Status CreateDir(const std::string& dir) override {
    return target_->CreateDir(dir);
  }
  absl::StatusOr<uint64_t> GetFileSize(const std::string& path) override {
    return target_->GetFileSize(path);
  }
  absl::Status RenameFile(const std::string& from,
                          const std::string& to) override {
    return target_->RenameFile(from, to);
  }
  absl::Status SyncDir(const std::string& dir) override {
    return target_->SyncDir(dir);
  }
  absl::Status LinkFile(const std::string& from,
                        const std::string& to) override {
    return target_->LinkFile(from, to);
  }
  absl::Status TruncateFile(const std::string& path, uint64_t size) override {
    return target_->TruncateFile(path, size);
  }
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path) override {
    return target_->LockFile(path);
  }
  uint64_t NowMicros() override { return target_->NowMicros(); }
  uint64_t NowUnixMillis() override { return target_->NowUnixMillis(); }

 private:
  Env* const target_;
};
// Copies the first `max_bytes` bytes of `from` (all of it by default; fewer
// if the file is shorter) to a new file `to` (truncated if it exists) and
// fsyncs it, through `env`. Returns the bytes copied. Errors: the Env's,
// naming the path. Thread safety: as the Env's.
absl::StatusOr<uint64_t> CopyFile(Env* env, const std::string& from,
                                  const std::string& to,
                                  uint64_t max_bytes = UINT64_MAX);

// A new, empty file system held in memory (LevelDB's helpers/memenv,
// Pebble's vfs.MemFS): every file, directory and lock lives in the returned
// object and nothing touches the disk. Use it through Options::env for a DB
// that needs no real disk (tests, simulations); the caller owns it and it
// must outlive every DB using it. Files and locks opened from it stay
// valid even after it is destroyed.
//
// It behaves like the POSIX Env on a local file system:
//   * Paths are '/'-separated; repeated and trailing slashes are ignored and
//     a path not starting with '/' is taken from the root ("db" is "/db");
//     "." and ".." are ordinary names. The root directory always exists.
//   * A file's directory must exist: creating, locking or renaming into a
//     missing one is NotFound. CreateDir creates one level (its parent must
//     exist), is OK if the directory exists and Internal if a file has its
//     name.
//   * NewWritableFile truncates an existing file. Open files refer to the
//     file, not its name: reads and writes through them keep working after
//     the file is renamed or removed, and readers see later appends.
//   * RenameFile replaces `to` atomically; it renames files only.
//     LinkFile gives a file a second name (a hard link: one file, two
//     names); `to` must not exist (Internal, "File exists").
//     RemoveFile removes files only. GetChildren lists files and
//     subdirectories, sorted by name.
//   * LockFile creates the file if needed; locking a path that is already
//     locked through this Env is FailedPrecondition naming the path, until
//     the first FileLock is destroyed. Two in-memory Envs are two machines:
//     they share no files and no locks.
//   * Errors carry the operation, the path and the text POSIX would give:
//     NotFound for a missing file or directory, Internal for a directory
//     where a file is expected or the reverse, FailedPrecondition for a
//     write to a closed file. Nothing is ever out of space: Unavailable
//     comes only from writing through a file opened before a simulated
//     power loss.
//   * NowMicros is the real monotonic clock.
//   * Durability follows the POSIX model: WritableFile::Sync makes the bytes
//     written so far durable, and SyncDir makes a directory's current
//     entries durable (creations, renames and removals in it); CreateDir
//     and truncation are durable at once. This is observable only through
//     the simulated power loss of the implementation class (MemEnv in
//     storage/env/mem_env.h).
//
// Thread safety: the Env and its RandomAccessFiles are safe for concurrent
// use; other files follow the rules of their classes above.
std::unique_ptr<Env> NewMemEnv();

}  // namespace strata::storage

#endif  // STRATA_STORAGE_ENV_H_
