#include "tests/support/fault_env.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <random>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "env/io_error.h"
#include "util/filename.h"

namespace strata::testing {

using storage::Env;
using storage::FileLock;
using storage::MutexLock;
using storage::RandomAccessFile;
using storage::SequentialFile;
using storage::WritableFile;

namespace {

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

absl::Status PosixError(std::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrFormat("%s %s: %s", what, path,
                                             std::strerror(errno)));
}

// Reads a whole file with POSIX calls (power-loss bookkeeping only).
absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PosixError("open", path);
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t r = ::read(fd, buf, sizeof(buf));
    if (r < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return PosixError("read", path);
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  return out;
}

absl::Status WriteWhole(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return PosixError("open", path);
  while (!data.empty()) {
    ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return PosixError("write", path);
    }
    data.remove_prefix(static_cast<size_t>(w));
  }
  ::close(fd);
  return absl::OkStatus();
}

}  // namespace

FileKind FileKindOf(std::string_view path) {
  size_t slash = path.rfind('/');
  std::string_view name =
      slash == std::string_view::npos ? path : path.substr(slash + 1);
  uint64_t number;
  storage::FileType type;
  if (!storage::ParseFileName(name, &number, &type)) return kOtherFile;
  switch (type) {
    case storage::FileType::kWal:
      return kWalFile;
    case storage::FileType::kTable:
      return kTableFile;
    case storage::FileType::kManifest:
      return kManifestFile;
    case storage::FileType::kCurrent:
      return kCurrentFile;
    case storage::FileType::kTemp:
      return kTempFile;
    case storage::FileType::kLock:
      return kOtherFile;
  }
  return kOtherFile;
}

std::string_view FaultOpName(FaultOp op) {
  switch (op) {
    case FaultOp::kCreate:
      return "create";
    case FaultOp::kAppend:
      return "append";
    case FaultOp::kFlush:
      return "flush";
    case FaultOp::kSync:
      return "sync";
    case FaultOp::kRead:
      return "read";
    case FaultOp::kOpen:
      return "open";
    case FaultOp::kRename:
      return "rename";
    case FaultOp::kRemove:
      return "remove";
    case FaultOp::kLink:
      return "link";
    case FaultOp::kSyncDir:
      return "syncdir";
  }
  return "?";
}

// ------------------------------------------------------------------ files

// Keeps appended bytes in its own buffer and hands them to the base file
// (Append + Flush together) only on Flush, Sync, Close or when 64 KiB
// accumulate, so the base file never holds unflushed bytes of its own: a
// halt can drop exactly the user-space buffer.
class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultInjectionEnv* env, std::string path,
                    std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}
  ~FaultWritableFile() override {
    if (!closed_) Close().IgnoreError();
  }

  absl::Status Append(std::string_view data) override {
    Fault fault;
    auto check = env_->CheckFault(FaultOp::kAppend, path_, &fault);
    std::shared_lock<std::shared_mutex> io(env_->io_mu_);
    if (env_->halted_) return FaultInjectionEnv::HaltedError(FaultOp::kAppend, path_);
    if (check == FaultInjectionEnv::Check::kFail) {
      if (fault.short_write) {
        buf_.append(data.data(), data.size() / 2);
        WriteBuffer().IgnoreError();
      }
      return env_->InjectedError(FaultOp::kAppend, path_, fault.error);
    }
    buf_.append(data.data(), data.size());
    if (buf_.size() >= kBufferSize) return WriteBuffer();
    return absl::OkStatus();
  }

  absl::Status Flush() override {
    Fault fault;
    auto check = env_->CheckFault(FaultOp::kFlush, path_, &fault);
    std::shared_lock<std::shared_mutex> io(env_->io_mu_);
    if (env_->halted_) return FaultInjectionEnv::HaltedError(FaultOp::kFlush, path_);
    if (check == FaultInjectionEnv::Check::kFail) {
      return env_->InjectedError(FaultOp::kFlush, path_, fault.error);
    }
    return WriteBuffer();
  }

  absl::Status Sync() override {
    absl::Status s = Flush();
    if (!s.ok()) return s;
    Fault fault;
    auto check = env_->CheckFault(FaultOp::kSync, path_, &fault);
    std::shared_lock<std::shared_mutex> io(env_->io_mu_);
    if (env_->halted_) return FaultInjectionEnv::HaltedError(FaultOp::kSync, path_);
    if (check == FaultInjectionEnv::Check::kFail) {
      return env_->InjectedError(FaultOp::kSync, path_, fault.error);
    }
    io.unlock();  // A slow fsync must not block HaltWrites.
    env_->SlowDownSync(path_);
    io.lock();
    if (env_->halted_) return FaultInjectionEnv::HaltedError(FaultOp::kSync, path_);
    s = base_->Sync();
    if (s.ok()) env_->NoteSynced(path_);
    return s;
  }

  absl::Status Close() override {
    if (closed_) return absl::OkStatus();
    absl::Status s = Flush();
    // The base file holds nothing unflushed, so closing it writes nothing.
    absl::Status c = base_->Close();
    closed_ = true;
    return s.ok() ? c : s;
  }

 private:
  static constexpr size_t kBufferSize = 64 << 10;

  // REQUIRES: io_mu_ held shared and not halted.
  absl::Status WriteBuffer() {
    if (buf_.empty()) return absl::OkStatus();
    absl::Status s = base_->Append(buf_);
    if (s.ok()) s = base_->Flush();
    if (s.ok()) {
      size_ += buf_.size();
      env_->NoteFlushed(path_, size_);
    }
    buf_.clear();
    return s;
  }

  FaultInjectionEnv* const env_;
  const std::string path_;
  const std::unique_ptr<WritableFile> base_;
  std::string buf_;
  uint64_t size_ = 0;
  bool closed_ = false;
};

class FaultSequentialFile final : public SequentialFile {
 public:
  FaultSequentialFile(FaultInjectionEnv* env, std::string path,
                      std::unique_ptr<SequentialFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}

  absl::StatusOr<std::string_view> Read(size_t n, char* scratch) override {
    Fault fault;
    auto check = env_->CheckFault(FaultOp::kRead, path_, &fault);
    if (check == FaultInjectionEnv::Check::kFail) {
      return env_->InjectedError(FaultOp::kRead, path_, fault.error);
    }
    auto r = base_->Read(n, scratch);
    if (r.ok() && check == FaultInjectionEnv::Check::kCorrupt && !r->empty()) {
      if (r->data() != scratch) std::memcpy(scratch, r->data(), r->size());
      scratch[r->size() / 2] ^= 0x5a;
      return std::string_view(scratch, r->size());
    }
    return r;
  }

  absl::Status Skip(uint64_t n) override { return base_->Skip(n); }

 private:
  FaultInjectionEnv* const env_;
  const std::string path_;
  const std::unique_ptr<SequentialFile> base_;
};

class FaultRandomAccessFile final : public RandomAccessFile {
 public:
  FaultRandomAccessFile(FaultInjectionEnv* env, std::string path,
                        std::unique_ptr<RandomAccessFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}

  absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n,
                                        char* scratch) const override {
    Fault fault;
    auto check = env_->CheckFault(FaultOp::kRead, path_, &fault);
    if (check == FaultInjectionEnv::Check::kFail) {
      return env_->InjectedError(FaultOp::kRead, path_, fault.error);
    }
    auto r = base_->Read(offset, n, scratch);
    if (r.ok() && check == FaultInjectionEnv::Check::kCorrupt && !r->empty()) {
      if (r->data() != scratch) std::memcpy(scratch, r->data(), r->size());
      scratch[r->size() / 2] ^= 0x5a;
      return std::string_view(scratch, r->size());
    }
    return r;
  }

 private:
  FaultInjectionEnv* const env_;
  const std::string path_;
  const std::unique_ptr<RandomAccessFile> base_;
};

// -------------------------------------------------------------------- env

FaultInjectionEnv::FaultInjectionEnv(Env* base) : base_(base) {}
FaultInjectionEnv::~FaultInjectionEnv() = default;

void FaultInjectionEnv::Inject(const Fault& fault) {
  MutexLock l(&mu_);
  faults_.push_back(fault);
}

void FaultInjectionEnv::ClearFaults() {
  MutexLock l(&mu_);
  faults_.clear();
}

int64_t FaultInjectionEnv::injected() const {
  MutexLock l(&mu_);
  return injected_;
}

void FaultInjectionEnv::SetHook(
    std::function<void(FaultOp, const std::string&)> hook) {
  MutexLock l(&mu_);
  hook_ = std::move(hook);
}

FaultInjectionEnv::Check FaultInjectionEnv::CheckFault(FaultOp op,
                                                       const std::string& path,
                                                       Fault* fired) {
  std::function<void(FaultOp, const std::string&)> hook;
  {
    MutexLock l(&mu_);
    hook = hook_;
  }
  if (hook) hook(op, path);
  MutexLock l(&mu_);
  const uint32_t kind = op == FaultOp::kSyncDir ? kAnyFile : FileKindOf(path);
  Check result = Check::kOk;
  for (auto it = faults_.begin(); it != faults_.end();) {
    Fault& f = *it;
    if (f.op != op || (f.files & kind) == 0) {
      ++it;
      continue;
    }
    if (f.after > 0) {
      f.after--;
      ++it;
      continue;
    }
    if (result == Check::kOk) {
      *fired = f;
      result = f.corrupt_read ? Check::kCorrupt : Check::kFail;
      injected_++;
      if (f.times > 0) f.times--;
    }
    if (f.times == 0) {
      it = faults_.erase(it);
    } else {
      ++it;
    }
  }
  return result;
}

absl::Status FaultInjectionEnv::InjectedError(FaultOp op,
                                              const std::string& path,
                                              int error) const {
  return storage::IOError(
      absl::StrFormat("injected %s fault:", std::string(FaultOpName(op))),
      path, error);
}

absl::Status FaultInjectionEnv::HaltedError(FaultOp op,
                                            const std::string& path) {
  return absl::UnavailableError(absl::StrFormat(
      "%s %s: file system halted (injected crash)",
      std::string(FaultOpName(op)), path));
}

void FaultInjectionEnv::NoteFlushed(const std::string& path, uint64_t size) {
  MutexLock l(&mu_);
  FileState& st = files_[path];
  st.size = std::max(st.size, size);
}

void FaultInjectionEnv::NoteSynced(const std::string& path) {
  MutexLock l(&mu_);
  auto it = files_.find(path);
  if (it != files_.end()) it->second.synced = it->second.size;
  const uint32_t kind = FileKindOf(path);
  for (int bit = 0; bit < 6; bit++) {
    if (kind == (1u << bit)) syncs_done_[bit]++;
  }
}

void FaultInjectionEnv::SetSyncDelay(uint32_t files, absl::Duration delay) {
  MutexLock l(&mu_);
  sync_delay_files_ = files;
  sync_delay_ = delay;
}

void FaultInjectionEnv::HoldSyncs(uint32_t files) {
  std::lock_guard<std::mutex> lock(hold_mu_);
  hold_files_ = files;
}

void FaultInjectionEnv::ReleaseSyncs() {
  {
    std::lock_guard<std::mutex> lock(hold_mu_);
    hold_files_ = 0;
    hold_epoch_++;
  }
  hold_cv_.notify_all();
}

bool FaultInjectionEnv::WaitForHeldSyncs(int n, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(hold_mu_);
  return hold_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                           [&] { return held_ >= n; });
}

int64_t FaultInjectionEnv::syncs_done(uint32_t files) const {
  MutexLock l(&mu_);
  int64_t n = 0;
  for (int bit = 0; bit < 6; bit++) {
    if (files & (1u << bit)) n += syncs_done_[bit];
  }
  return n;
}

void FaultInjectionEnv::SlowDownSync(const std::string& path) {
  const uint32_t kind = FileKindOf(path);
  absl::Duration delay;
  {
    MutexLock l(&mu_);
    if (sync_delay_files_ & kind) delay = sync_delay_;
  }
  // The simulated fsync latency itself, not a wait for another thread.
  if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
  std::unique_lock<std::mutex> lock(hold_mu_);
  if ((hold_files_ & kind) == 0) return;
  const uint64_t epoch = hold_epoch_;
  held_++;
  hold_cv_.notify_all();
  hold_cv_.wait(lock, [&] { return hold_epoch_ != epoch; });
  held_--;
}

void FaultInjectionEnv::HaltWrites() {
  std::unique_lock<std::shared_mutex> io(io_mu_);
  halted_ = true;
}

bool FaultInjectionEnv::halted() const {
  std::shared_lock<std::shared_mutex> io(io_mu_);
  return halted_;
}

void FaultInjectionEnv::Restart() {
  std::unique_lock<std::shared_mutex> io(io_mu_);
  MutexLock l(&mu_);
  files_.clear();
  dir_ops_.clear();
  halted_ = false;
}

void FaultInjectionEnv::set_lose_unsynced_dir_entries(bool lose) {
  MutexLock l(&mu_);
  lose_dir_entries_ = lose;
}

std::vector<std::string> FaultInjectionEnv::UnsyncedFiles() const {
  MutexLock l(&mu_);
  std::vector<std::string> out;
  for (const auto& [path, st] : files_) {
    if (st.size > st.synced) {
      out.push_back(absl::StrFormat("%s (%d of %d bytes synced)", path,
                                    st.synced, st.size));
    }
  }
  for (const auto& [dir, ops] : dir_ops_) {
    for (const DirOp& op : ops) {
      out.push_back(op.type == DirOp::kCreate
                        ? absl::StrFormat("%s (created, directory not synced)",
                                          op.from)
                        : absl::StrFormat("%s -> %s (renamed, directory not "
                                          "synced)",
                                          op.from, op.to));
    }
  }
  return out;
}

absl::Status FaultInjectionEnv::DropUnsyncedData(PowerLossMode mode,
                                                 uint64_t seed) {
  HaltWrites();
  std::unique_lock<std::shared_mutex> io(io_mu_);
  MutexLock l(&mu_);
  std::mt19937_64 rng(seed);
  absl::Status result;
  auto note = [&result](absl::Status s) {
    if (result.ok() && !s.ok()) result = std::move(s);
  };
  for (const auto& [path, st] : files_) {
    if (st.size <= st.synced || ::access(path.c_str(), F_OK) != 0) continue;
    const uint64_t unsynced = st.size - st.synced;
    uint64_t keep = 0;
    if (mode != PowerLossMode::kDropUnsynced) {
      keep = std::uniform_int_distribution<uint64_t>(0, unsynced)(rng);
    }
    if (::truncate(path.c_str(), static_cast<off_t>(st.synced + keep)) != 0) {
      note(PosixError("truncate", path));
      continue;
    }
    if (mode == PowerLossMode::kGarbageTail && keep < unsynced) {
      std::string garbage(unsynced - keep, '\0');
      for (char& c : garbage) c = static_cast<char>(rng());
      int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 ||
          ::pwrite(fd, garbage.data(), garbage.size(),
                   static_cast<off_t>(st.synced + keep)) !=
              static_cast<ssize_t>(garbage.size())) {
        note(PosixError("pwrite", path));
      }
      if (fd >= 0) ::close(fd);
    }
  }
  if (lose_dir_entries_) {
    for (auto& [dir, ops] : dir_ops_) {
      for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
        if (it->type == DirOp::kCreate) {
          if (::unlink(it->from.c_str()) != 0 && errno != ENOENT) {
            note(PosixError("unlink", it->from));
          }
          continue;
        }
        // Undo the rename: the new contents go back to `from`, and `to`
        // gets what it held before (or disappears).
        if (::access(it->to.c_str(), F_OK) == 0 &&
            ::rename(it->to.c_str(), it->from.c_str()) != 0) {
          note(PosixError("rename", it->to));
        }
        if (it->to_existed) note(WriteWhole(it->to, it->old_to));
      }
    }
  }
  files_.clear();
  dir_ops_.clear();
  return result;
}

absl::StatusOr<std::unique_ptr<SequentialFile>>
FaultInjectionEnv::NewSequentialFile(const std::string& path) {
  Fault fault;
  if (CheckFault(FaultOp::kOpen, path, &fault) == Check::kFail) {
    return InjectedError(FaultOp::kOpen, path, fault.error);
  }
  auto base = base_->NewSequentialFile(path);
  if (!base.ok()) return base.status();
  return std::unique_ptr<SequentialFile>(
      new FaultSequentialFile(this, path, std::move(*base)));
}

absl::StatusOr<std::unique_ptr<RandomAccessFile>>
FaultInjectionEnv::NewRandomAccessFile(const std::string& path) {
  Fault fault;
  if (CheckFault(FaultOp::kOpen, path, &fault) == Check::kFail) {
    return InjectedError(FaultOp::kOpen, path, fault.error);
  }
  auto base = base_->NewRandomAccessFile(path);
  if (!base.ok()) return base.status();
  return std::unique_ptr<RandomAccessFile>(
      new FaultRandomAccessFile(this, path, std::move(*base)));
}

absl::StatusOr<std::unique_ptr<WritableFile>> FaultInjectionEnv::NewWritableFile(
    const std::string& path) {
  Fault fault;
  auto check = CheckFault(FaultOp::kCreate, path, &fault);
  std::shared_lock<std::shared_mutex> io(io_mu_);
  if (halted_) return HaltedError(FaultOp::kCreate, path);
  if (check == Check::kFail) {
    return InjectedError(FaultOp::kCreate, path, fault.error);
  }
  const bool existed = base_->FileExists(path);
  auto base = base_->NewWritableFile(path);
  if (!base.ok()) return base.status();
  {
    MutexLock l(&mu_);
    files_[path] = FileState{};
    if (!existed) {
      DirOp op;
      op.type = DirOp::kCreate;
      op.from = path;
      dir_ops_[DirName(path)].push_back(std::move(op));
    }
  }
  return std::unique_ptr<WritableFile>(
      new FaultWritableFile(this, path, std::move(*base)));
}

bool FaultInjectionEnv::FileExists(const std::string& path) {
  return base_->FileExists(path);
}

absl::StatusOr<std::vector<std::string>> FaultInjectionEnv::GetChildren(
    const std::string& dir) {
  return base_->GetChildren(dir);
}

absl::Status FaultInjectionEnv::RemoveFile(const std::string& path) {
  Fault fault;
  auto check = CheckFault(FaultOp::kRemove, path, &fault);
  std::shared_lock<std::shared_mutex> io(io_mu_);
  if (halted_) return HaltedError(FaultOp::kRemove, path);
  if (check == Check::kFail) {
    return InjectedError(FaultOp::kRemove, path, fault.error);
  }
  absl::Status s = base_->RemoveFile(path);
  if (s.ok()) {
    MutexLock l(&mu_);
    files_.erase(path);
  }
  return s;
}

absl::Status FaultInjectionEnv::CreateDir(const std::string& dir) {
  std::shared_lock<std::shared_mutex> io(io_mu_);
  if (halted_) return HaltedError(FaultOp::kCreate, dir);
  return base_->CreateDir(dir);
}

absl::StatusOr<uint64_t> FaultInjectionEnv::GetFileSize(
    const std::string& path) {
  return base_->GetFileSize(path);
}

absl::Status FaultInjectionEnv::RenameFile(const std::string& from,
                                           const std::string& to) {
  Fault fault;
  auto check = CheckFault(FaultOp::kRename, from, &fault);
  std::shared_lock<std::shared_mutex> io(io_mu_);
  if (halted_) return HaltedError(FaultOp::kRename, from);
  if (check == Check::kFail) {
    return InjectedError(FaultOp::kRename, from, fault.error);
  }
  DirOp op;
  op.type = DirOp::kRename;
  op.from = from;
  op.to = to;
  op.to_existed = base_->FileExists(to);
  if (op.to_existed) {
    auto old = ReadWhole(to);
    if (!old.ok()) return old.status();
    op.old_to = std::move(*old);
  }
  absl::Status s = base_->RenameFile(from, to);
  if (!s.ok()) return s;
  MutexLock l(&mu_);
  auto it = files_.find(from);
  if (it != files_.end()) {
    files_[to] = it->second;
    files_.erase(from);
  } else {
    files_.erase(to);
  }
  dir_ops_[DirName(to)].push_back(std::move(op));
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::LinkFile(const std::string& from,
                                         const std::string& to) {
  Fault fault;
  auto check = CheckFault(FaultOp::kLink, from, &fault);
  std::shared_lock<std::shared_mutex> io(io_mu_);
  if (halted_) return HaltedError(FaultOp::kLink, from);
  if (check == Check::kFail) {
    return InjectedError(FaultOp::kLink, from, fault.error);
  }
  absl::Status s = base_->LinkFile(from, to);
  if (!s.ok()) return s;
  MutexLock l(&mu_);
  // The new name shares the source's durability state (its bytes are the
  // source's); files written only through the base Env count as durable.
  auto it = files_.find(from);
  if (it != files_.end()) files_[to] = it->second;
  DirOp op;
  op.type = DirOp::kCreate;
  op.from = to;
  dir_ops_[DirName(to)].push_back(std::move(op));
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::TruncateFile(const std::string& path,
                                             uint64_t size) {
  std::shared_lock<std::shared_mutex> io(io_mu_);
  if (halted_) return HaltedError(FaultOp::kFlush, path);
  absl::Status s = base_->TruncateFile(path, size);
  if (!s.ok()) return s;
  MutexLock l(&mu_);
  auto it = files_.find(path);
  if (it != files_.end()) {
    it->second.size = std::min(it->second.size, size);
    it->second.synced = it->second.size;
  }
  return absl::OkStatus();
}

absl::Status FaultInjectionEnv::SyncDir(const std::string& dir) {
  Fault fault;
  auto check = CheckFault(FaultOp::kSyncDir, dir, &fault);
  std::shared_lock<std::shared_mutex> io(io_mu_);
  if (halted_) return HaltedError(FaultOp::kSyncDir, dir);
  if (check == Check::kFail) {
    return InjectedError(FaultOp::kSyncDir, dir, fault.error);
  }
  absl::Status s = base_->SyncDir(dir);
  if (s.ok()) {
    MutexLock l(&mu_);
    dir_ops_.erase(dir);
  }
  return s;
}

absl::StatusOr<std::unique_ptr<FileLock>> FaultInjectionEnv::LockFile(
    const std::string& path) {
  return base_->LockFile(path);
}

uint64_t FaultInjectionEnv::NowMicros() { return base_->NowMicros(); }
uint64_t FaultInjectionEnv::NowUnixMillis() { return base_->NowUnixMillis(); }

}  // namespace strata::testing
