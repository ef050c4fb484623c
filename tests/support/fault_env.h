#ifndef STRATA_TESTS_SUPPORT_FAULT_ENV_H_
#define STRATA_TESTS_SUPPORT_FAULT_ENV_H_

// A fault-injecting Env for crash and I/O-error tests (the Env idea of
// LevelDB's FaultInjectionTestEnv and Pebble's errorfs): it forwards to a
// real, POSIX-backed Env and can
//
//   * fail chosen operations (create, append, flush, sync, read, rename,
//     remove, directory sync) on chosen file kinds with an errno of the
//     test's choice (EIO, ENOSPC, ...), after N successful calls, once,
//     N times or until cleared;
//   * make an append a short write (a prefix of the data reaches the file
//     before the error), or a read return silently flipped bytes;
//   * simulate a process crash (HaltWrites: nothing written from now on
//     reaches the files; data still in the engine's user-space buffers is
//     lost, data handed to the OS survives), and a power loss
//     (DropUnsyncedData: every file loses what was not fsynced, and, unless
//     disabled, files created or renamed since their directory's last
//     SyncDir lose that directory entry);
//   * make a disk slow: delay every fsync of chosen file kinds, or hold
//     them until the test releases them (a latch the test can wait on, so
//     it observes the engine during an fsync that has not returned without
//     sleeping), and count the fsyncs that returned.
//
// Model of durability (what a POSIX file system guarantees, no more):
//   Append    bytes sit in a user-space buffer (lost by a process crash);
//   Flush     bytes reach the OS (survive a process crash, not power loss);
//   Sync      bytes up to here survive power loss;
//   SyncDir   creations and renames of entries of that directory survive
//             power loss.
// Removals and CreateDir are treated as durable at once (a removed file
// never reappears). Only files written through this Env since the last
// Restart() are tracked; anything else is assumed durable.
//
// Every error message contains "injected" so a test can tell a simulated
// failure from a real one.
//
// Thread safety: all methods are safe to call concurrently. A write in
// progress when HaltWrites is called either completes before the halt or
// fails; nothing reaches a file after HaltWrites returns.

#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "strata/storage/env.h"
#include "util/mutex.h"

namespace strata::testing {

// File kinds, as a bitmask, from the engine's file names
// (storage/util/filename.h).
enum FileKind : uint32_t {
  kWalFile = 1u << 0,       // <n>.wal
  kTableFile = 1u << 1,     // <n>.sst
  kManifestFile = 1u << 2,  // MANIFEST-<n>
  kCurrentFile = 1u << 3,   // CURRENT
  kTempFile = 1u << 4,      // <n>.tmp (the next CURRENT)
  kOtherFile = 1u << 5,     // LOCK and names the engine does not own
  kAnyFile = (1u << 6) - 1,
};

// The kind of the file at `path` (by its base name).
FileKind FileKindOf(std::string_view path);

// An operation a fault can target.
enum class FaultOp {
  kCreate,   // Env::NewWritableFile
  kAppend,   // WritableFile::Append
  kFlush,    // WritableFile::Flush (and the flush inside Sync and Close)
  kSync,     // WritableFile::Sync (after its flush succeeded)
  kRead,     // SequentialFile::Read and RandomAccessFile::Read
  kOpen,     // Env::NewSequentialFile and NewRandomAccessFile
  kRename,   // Env::RenameFile (the kind of the source file is matched)
  kRemove,   // Env::RemoveFile
  kSyncDir,  // Env::SyncDir (file kinds are not checked)
  kLink,     // Env::LinkFile (the kind of the source file is matched)
};

std::string_view FaultOpName(FaultOp op);

struct Fault {
  FaultOp op = FaultOp::kSync;
  // FileKind bits the fault applies to.
  uint32_t files = kAnyFile;
  // Matching calls that succeed before the fault starts firing.
  int64_t after = 0;
  // Failures before the fault retires; -1 = until ClearFaults.
  int64_t times = -1;
  // errno of the failure: EIO and ENOSPC give Unavailable, like the POSIX
  // Env (storage/env/io_error.h).
  int error = EIO;
  // kAppend only: the first half of the data (and anything buffered before
  // it) reaches the file before the error, as a write() that ran out of
  // space part-way would leave it.
  bool short_write = false;
  // kRead only: the read succeeds but one byte of the returned data is
  // flipped (a disk returning bad data); no error is reported.
  bool corrupt_read = false;
};

// What power loss leaves of the bytes written after a file's last sync.
enum class PowerLossMode {
  kDropUnsynced,      // nothing: the file is cut at its synced size
  kKeepRandomPrefix,  // a random prefix of them
  kGarbageTail,       // a random prefix, then random bytes up to the
                      // file's unsynced length (pages half written)
};

class FaultInjectionEnv final : public storage::Env {
 public:
  // base is not owned and must outlive this; its paths must be real files
  // (power loss truncates and rewrites them with POSIX calls).
  explicit FaultInjectionEnv(storage::Env* base = storage::Env::Default());
  ~FaultInjectionEnv() override;
  FaultInjectionEnv(const FaultInjectionEnv&) = delete;
  FaultInjectionEnv& operator=(const FaultInjectionEnv&) = delete;

  // ---- faults
  // Adds a fault; it is checked on every matching operation until it
  // retires (Fault::times) or ClearFaults.
  void Inject(const Fault& fault);
  // Removes every fault (the "disk is fixed").
  void ClearFaults();
  // Failures (and corrupted reads) injected so far.
  int64_t injected() const;
  // Called before every operation with its kind and path (the directory
  // for kSyncDir), outside any lock of this Env, so it may call
  // HaltWrites to crash at a precise point. Set it before the DB opens.
  void SetHook(std::function<void(FaultOp, const std::string& path)> hook);

  // ---- a slow disk
  // From now on every Sync of a file whose kind is in `files` waits
  // `delay` (real time) after its flush and before the bytes reach the
  // disk, as an fsync during a latency spike would. ZeroDuration (the
  // default) or files = 0 ends the spike. Syncs already waiting keep their
  // delay.
  void SetSyncDelay(uint32_t files, absl::Duration delay);
  // From now on every Sync of a file whose kind is in `files` stops after
  // its flush, before the bytes reach the disk, until ReleaseSyncs: an
  // fsync that does not return. Its bytes are not synced meanwhile (power
  // loss drops them). HaltWrites does not release it.
  void HoldSyncs(uint32_t files);
  // Lets every held Sync go on, and holds no later one.
  void ReleaseSyncs();
  // Waits until at least n Syncs are held at once; false if `timeout`
  // passes first.
  bool WaitForHeldSyncs(int n, absl::Duration timeout);
  // Syncs of files whose kind is in `files` that returned OK so far (after
  // their delay or hold): the fsyncs the engine could count on.
  int64_t syncs_done(uint32_t files) const;

  // ---- crashes
  // The machine stops: from now on every create, append, flush, sync,
  // rename, remove and directory sync fails with Unavailable ("injected
  // crash") and changes nothing; data the engine buffered in user space is
  // lost. Reads keep working. Alone, this is a process crash (kill -9).
  void HaltWrites();
  bool halted() const;
  // Power loss, after HaltWrites (which it calls if needed): every file
  // written since Restart loses what was not synced (per `mode`, random
  // choices from `seed`), and entries created or renamed since their
  // directory's last SyncDir are undone (creations removed, renames
  // reverted with the old target restored), unless
  // set_lose_unsynced_dir_entries(false). Returns the first error of the
  // underlying file operations.
  absl::Status DropUnsyncedData(PowerLossMode mode = PowerLossMode::kDropUnsynced,
                                uint64_t seed = 0);
  // The machine is back: writes work again and every file counts as
  // durable. Faults stay.
  void Restart();
  // Default true. False models a file system that keeps directory entries
  // in order with data (e.g. ext4 data=ordered in practice).
  void set_lose_unsynced_dir_entries(bool lose);
  // Paths with bytes not yet synced, and entries awaiting a SyncDir (for
  // failure messages).
  std::vector<std::string> UnsyncedFiles() const;

  // ---- storage::Env
  absl::StatusOr<std::unique_ptr<storage::SequentialFile>> NewSequentialFile(
      const std::string& path) override;
  absl::StatusOr<std::unique_ptr<storage::RandomAccessFile>>
  NewRandomAccessFile(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<storage::WritableFile>> NewWritableFile(
      const std::string& path) override;
  bool FileExists(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> GetChildren(
      const std::string& dir) override;
  absl::Status RemoveFile(const std::string& path) override;
  absl::Status CreateDir(const std::string& dir) override;
  absl::StatusOr<uint64_t> GetFileSize(const std::string& path) override;
  absl::Status RenameFile(const std::string& from,
                          const std::string& to) override;
  // A new name for a file: undone by power loss until its directory's
  // SyncDir, like a creation. (A copy made by the base Env's fallback is
  // synced by it.) Fails after HaltWrites.
  absl::Status LinkFile(const std::string& from,
                        const std::string& to) override;
  absl::Status SyncDir(const std::string& dir) override;
  // Forwards; the new length counts as synced. Never faulted (ftruncate
  // needs no space), but refused after HaltWrites.
  absl::Status TruncateFile(const std::string& path, uint64_t size) override;
  absl::StatusOr<std::unique_ptr<storage::FileLock>> LockFile(
      const std::string& path) override;
  uint64_t NowMicros() override;
  uint64_t NowUnixMillis() override;

 private:
  friend class FaultWritableFile;
  friend class FaultSequentialFile;
  friend class FaultRandomAccessFile;

  // Durability of one file written through this Env.
  struct FileState {
    uint64_t size = 0;    // Bytes handed to the OS.
    uint64_t synced = 0;  // Bytes that survive power loss.
  };
  // A directory change not yet made durable by SyncDir.
  struct DirOp {
    enum Type { kCreate, kRename } type = kCreate;
    std::string from;  // kCreate: the created path.
    std::string to;
    bool to_existed = false;  // kRename: `to` was replaced.
    std::string old_to;       // kRename: its contents then.
  };
  enum class Check { kOk, kFail, kCorrupt };

  // Runs the hook, then decides whether this operation fails. Sets *fault
  // to the firing fault's copy.
  Check CheckFault(FaultOp op, const std::string& path, Fault* fault);
  absl::Status InjectedError(FaultOp op, const std::string& path,
                             int error) const;
  static absl::Status HaltedError(FaultOp op, const std::string& path);
  void NoteFlushed(const std::string& path, uint64_t size);
  void NoteSynced(const std::string& path);
  // The slow-disk part of a Sync: its delay, then its hold, if any.
  void SlowDownSync(const std::string& path);

  storage::Env* const base_;

  // Held shared by every operation that changes a file, exclusively by
  // HaltWrites, so no write straddles the halt.
  mutable std::shared_mutex io_mu_;
  bool halted_ = false;  // Written under io_mu_ exclusively.

  mutable storage::Mutex mu_;
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mu_);
  int64_t injected_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void(FaultOp, const std::string&)> hook_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, FileState> files_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<DirOp>> dir_ops_ ABSL_GUARDED_BY(mu_);
  bool lose_dir_entries_ ABSL_GUARDED_BY(mu_) = true;
  uint32_t sync_delay_files_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration sync_delay_ ABSL_GUARDED_BY(mu_);
  // Syncs that returned OK, by FileKind bit (index = bit number).
  int64_t syncs_done_[6] ABSL_GUARDED_BY(mu_) = {};

  // The hold (a latch); a std::mutex so waits can time out.
  std::mutex hold_mu_;
  std::condition_variable hold_cv_;
  uint32_t hold_files_ = 0;    // Guarded by hold_mu_.
  uint64_t hold_epoch_ = 0;    // Guarded by hold_mu_; ReleaseSyncs bumps it.
  int held_ = 0;               // Guarded by hold_mu_: Syncs held now.
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_SUPPORT_FAULT_ENV_H_
