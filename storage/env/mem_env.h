#ifndef STRATA_STORAGE_ENV_MEM_ENV_H_
#define STRATA_STORAGE_ENV_MEM_ENV_H_

// The in-memory Env. Its contract as an Env is documented with NewMemEnv()
// in strata/storage/env.h; this class adds the simulated power loss that
// crash tests need.
//
// Model of durability (that of a POSIX file system, as in Pebble's strict
// MemFS):
//   Append    bytes reach the file at once (there is no user-space buffer:
//             a process crash loses nothing that was appended);
//   Sync      the file's bytes so far survive power loss;
//   SyncDir   the directory's entries as they are now survive power loss:
//             files created, renamed in or out, or removed since the last
//             SyncDir of their directory are undone by a power loss (a
//             removed file comes back with its synced bytes);
//   CreateDir and the truncation by NewWritableFile are durable at once.

#include <memory>
#include <string>
#include <vector>

#include "strata/storage/env.h"

namespace strata::storage {

// The state of one in-memory file system (defined in mem_env.cc).
class MemFileSystem;

class MemEnv final : public Env {
 public:
  MemEnv();
  ~MemEnv() override;
  MemEnv(const MemEnv&) = delete;
  MemEnv& operator=(const MemEnv&) = delete;

  // Simulates a power loss and reboot: every directory goes back to the
  // entries it had at its last SyncDir (or its creation), and every file to
  // the bytes it had at its last Sync. Every WritableFile opened before the
  // call fails from then on (Unavailable, "simulated power loss"), so the
  // DB that was running cannot write into the state after the crash
  // through them; reads through files opened before keep working. Locks
  // are kept: destroy that DB (its writes now fail) before opening the
  // database again.
  // REQUIRES: the DB that was running creates, renames and removes no file
  // during or after the call: call it while that DB has no flush or
  // compaction in progress.
  void ResetToSyncedState();

  // ---- Env
  absl::StatusOr<std::unique_ptr<SequentialFile>> NewSequentialFile(
      const std::string& path) override;
  absl::StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override;
  absl::StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(
      const std::string& path) override;
  bool FileExists(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> GetChildren(
      const std::string& dir) override;
  absl::Status RemoveFile(const std::string& path) override;
  absl::Status CreateDir(const std::string& dir) override;
  absl::StatusOr<uint64_t> GetFileSize(const std::string& path) override;
  absl::Status RenameFile(const std::string& from,
                          const std::string& to) override;
  absl::Status LinkFile(const std::string& from,
                        const std::string& to) override;
  absl::Status SyncDir(const std::string& dir) override;
  absl::StatusOr<std::unique_ptr<FileLock>> LockFile(
      const std::string& path) override;
  uint64_t NowMicros() override;

 private:
  // Shared with every open file and lock, so they outlive the Env safely.
  const std::shared_ptr<MemFileSystem> fs_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_ENV_MEM_ENV_H_
