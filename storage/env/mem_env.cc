// The in-memory Env: a tree of directories and files under one mutex.
// Files are shared nodes, so an open file outlives its name (as an inode
// does), and each directory keeps, beside its entries, a copy of them as of
// its last SyncDir: a simulated power loss puts those copies back and cuts
// every file to its synced length.

#include "env/mem_env.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "env/io_error.h"
#include "util/mutex.h"
#include "util/status_macros.h"

namespace strata::storage {
namespace {

struct Node;
using NodeRef = std::shared_ptr<Node>;
using Entries = std::map<std::string, NodeRef, std::less<>>;

// A file or a directory. Every field but is_dir is guarded by the mutex of
// the MemFileSystem that holds the node.
struct Node {
  explicit Node(bool dir) : is_dir(dir) {}
  const bool is_dir;
  // Files: the contents, and how many leading bytes survive a power loss.
  std::string data;
  size_t synced = 0;
  // Directories: the entries, and the entries as of the last SyncDir.
  Entries entries;
  Entries synced_entries;
};

// The names along path: "/a//b/" and "a/b" both give {"a", "b"}; "/" gives
// none (the root).
std::vector<std::string> Components(std::string_view path) {
  std::vector<std::string> parts;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (!part.empty()) parts.emplace_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

// Copies up to n bytes of data from offset into scratch.
std::string_view ReadAt(const std::string& data, uint64_t offset, size_t n,
                        char* scratch) {
  if (offset >= data.size()) return std::string_view(scratch, 0);
  size_t len = std::min<uint64_t>(n, data.size() - offset);
  std::memcpy(scratch, data.data() + offset, len);
  return std::string_view(scratch, len);
}

}  // namespace

class MemFileSystem {
 public:
  // Where the entry for a path is, or would be created.
  struct Slot {
    Node* dir = nullptr;  // The directory holding it; nullptr for the root.
    std::string name;
    NodeRef node;  // The entry; nullptr if there is none.
  };

  // Fails with `op` and `path` if path is empty or a directory on the way
  // to it is missing (NotFound) or a file (Internal, ENOTDIR).
  absl::StatusOr<Slot> Locate(std::string_view op, const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (path.empty()) return IOError(op, path, ENOENT);
    std::vector<std::string> parts = Components(path);
    Slot slot;
    if (parts.empty()) {
      slot.node = root;
      return slot;
    }
    Node* dir = root.get();
    for (size_t i = 0; i + 1 < parts.size(); i++) {
      auto it = dir->entries.find(parts[i]);
      if (it == dir->entries.end()) return IOError(op, path, ENOENT);
      if (!it->second->is_dir) return IOError(op, path, ENOTDIR);
      dir = it->second.get();
    }
    slot.dir = dir;
    slot.name = parts.back();
    auto it = dir->entries.find(slot.name);
    if (it != dir->entries.end()) slot.node = it->second;
    return slot;
  }

  // The existing node at path.
  absl::StatusOr<NodeRef> Find(std::string_view op, const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ASSIGN_OR_RETURN(Slot slot, Locate(op, path));
    if (slot.node == nullptr) return IOError(op, path, ENOENT);
    return slot.node;
  }

  // The existing file at path.
  absl::StatusOr<NodeRef> FindFile(std::string_view op,
                                   const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ASSIGN_OR_RETURN(NodeRef node, Find(op, path));
    if (node->is_dir) return IOError(op, path, EISDIR);
    return node;
  }

  // The existing directory at path.
  absl::StatusOr<NodeRef> FindDir(std::string_view op, const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ASSIGN_OR_RETURN(NodeRef node, Find(op, path));
    if (!node->is_dir) return IOError(op, path, ENOTDIR);
    return node;
  }

  // The file at path, created empty if absent (not yet durable).
  absl::StatusOr<NodeRef> OpenOrCreateFile(std::string_view op,
                                           const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ASSIGN_OR_RETURN(Slot slot, Locate(op, path));
    if (slot.node != nullptr) {
      if (slot.node->is_dir) return IOError(op, path, EISDIR);
      return slot.node;
    }
    auto node = std::make_shared<Node>(/*dir=*/false);
    slot.dir->entries.emplace(slot.name, node);
    return node;
  }

  // Puts every directory back to its synced entries and every file back to
  // its synced bytes.
  static void ResetDir(Node* dir) {
    dir->entries = dir->synced_entries;
    for (auto& [name, node] : dir->entries) {
      if (node->is_dir) {
        ResetDir(node.get());
      } else {
        node->data.resize(node->synced);
      }
    }
  }

  Mutex mu;
  const NodeRef root = std::make_shared<Node>(/*dir=*/true);
  // Bumped by every simulated power loss; files written before fail after.
  uint64_t epoch ABSL_GUARDED_BY(mu) = 0;
  // Locked paths, as Components joined by '/'.
  std::set<std::string> locks ABSL_GUARDED_BY(mu);
};

namespace {

class MemSequentialFile final : public SequentialFile {
 public:
  MemSequentialFile(std::shared_ptr<MemFileSystem> fs, NodeRef node)
      : fs_(std::move(fs)), node_(std::move(node)) {}

  absl::StatusOr<std::string_view> Read(size_t n, char* scratch) override {
    MutexLock l(&fs_->mu);
    std::string_view result = ReadAt(node_->data, pos_, n, scratch);
    pos_ += result.size();
    return result;
  }

  absl::Status Skip(uint64_t n) override {
    pos_ += n;  // Past the end, reads return nothing, like lseek.
    return absl::OkStatus();
  }

 private:
  const std::shared_ptr<MemFileSystem> fs_;
  const NodeRef node_;
  uint64_t pos_ = 0;
};

class MemRandomAccessFile final : public RandomAccessFile {
 public:
  MemRandomAccessFile(std::shared_ptr<MemFileSystem> fs, NodeRef node)
      : fs_(std::move(fs)), node_(std::move(node)) {}

  absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n,
                                        char* scratch) const override {
    MutexLock l(&fs_->mu);
    return ReadAt(node_->data, offset, n, scratch);
  }

 private:
  const std::shared_ptr<MemFileSystem> fs_;
  const NodeRef node_;
};

class MemWritableFile final : public WritableFile {
 public:
  MemWritableFile(std::shared_ptr<MemFileSystem> fs, NodeRef node,
                  std::string path, uint64_t epoch)
      : fs_(std::move(fs)),
        node_(std::move(node)),
        path_(std::move(path)),
        epoch_(epoch) {}

  absl::Status Append(std::string_view data) override {
    MutexLock l(&fs_->mu);
    RETURN_IF_ERROR(CheckWritable("append to"));
    node_->data.append(data.data(), data.size());
    return absl::OkStatus();
  }

  absl::Status Flush() override {
    MutexLock l(&fs_->mu);
    return CheckWritable("flush");
  }

  absl::Status Sync() override {
    MutexLock l(&fs_->mu);
    RETURN_IF_ERROR(CheckWritable("sync"));
    node_->synced = node_->data.size();
    return absl::OkStatus();
  }

  absl::Status Close() override {
    MutexLock l(&fs_->mu);
    if (closed_) return absl::OkStatus();
    closed_ = true;
    return fs_->epoch == epoch_ ? absl::OkStatus() : PowerLossError("close");
  }

 private:
  absl::Status CheckWritable(std::string_view op)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(fs_->mu) {
    if (closed_) {
      return absl::FailedPreconditionError(
          absl::StrCat(std::string(op), " closed file ", path_));
    }
    if (fs_->epoch != epoch_) return PowerLossError(op);
    return absl::OkStatus();
  }

  absl::Status PowerLossError(std::string_view op) const {
    return absl::UnavailableError(absl::StrCat(
        std::string(op), " ", path_,
        ": file opened before a simulated power loss"));
  }

  const std::shared_ptr<MemFileSystem> fs_;
  const NodeRef node_;
  const std::string path_;
  const uint64_t epoch_;
  bool closed_ = false;  // Guarded by fs_->mu.
};

class MemFileLock final : public FileLock {
 public:
  MemFileLock(std::shared_ptr<MemFileSystem> fs, std::string key)
      : fs_(std::move(fs)), key_(std::move(key)) {}
  ~MemFileLock() override {
    MutexLock l(&fs_->mu);
    fs_->locks.erase(key_);
  }

 private:
  const std::shared_ptr<MemFileSystem> fs_;
  const std::string key_;
};

}  // namespace

MemEnv::MemEnv() : fs_(std::make_shared<MemFileSystem>()) {}
MemEnv::~MemEnv() = default;

void MemEnv::ResetToSyncedState() {
  MutexLock l(&fs_->mu);
  fs_->epoch++;
  MemFileSystem::ResetDir(fs_->root.get());
}

absl::StatusOr<std::unique_ptr<SequentialFile>> MemEnv::NewSequentialFile(
    const std::string& path) {
  MutexLock l(&fs_->mu);
  ASSIGN_OR_RETURN(NodeRef node, fs_->FindFile("open", path));
  return std::make_unique<MemSequentialFile>(fs_, std::move(node));
}

absl::StatusOr<std::unique_ptr<RandomAccessFile>> MemEnv::NewRandomAccessFile(
    const std::string& path) {
  MutexLock l(&fs_->mu);
  ASSIGN_OR_RETURN(NodeRef node, fs_->FindFile("open", path));
  return std::make_unique<MemRandomAccessFile>(fs_, std::move(node));
}

absl::StatusOr<std::unique_ptr<WritableFile>> MemEnv::NewWritableFile(
    const std::string& path) {
  MutexLock l(&fs_->mu);
  ASSIGN_OR_RETURN(NodeRef node, fs_->OpenOrCreateFile("open", path));
  node->data.clear();
  node->synced = 0;
  return std::make_unique<MemWritableFile>(fs_, std::move(node), path,
                                           fs_->epoch);
}

bool MemEnv::FileExists(const std::string& path) {
  MutexLock l(&fs_->mu);
  return fs_->Find("access", path).ok();
}

absl::StatusOr<std::vector<std::string>> MemEnv::GetChildren(
    const std::string& dir) {
  MutexLock l(&fs_->mu);
  ASSIGN_OR_RETURN(NodeRef node, fs_->FindDir("opendir", dir));
  std::vector<std::string> names;
  names.reserve(node->entries.size());
  for (const auto& [name, child] : node->entries) names.push_back(name);
  return names;
}

absl::Status MemEnv::RemoveFile(const std::string& path) {
  MutexLock l(&fs_->mu);
  ASSIGN_OR_RETURN(MemFileSystem::Slot slot, fs_->Locate("unlink", path));
  if (slot.node == nullptr) return IOError("unlink", path, ENOENT);
  if (slot.node->is_dir) return IOError("unlink", path, EISDIR);
  slot.dir->entries.erase(slot.name);
  return absl::OkStatus();
}

absl::Status MemEnv::CreateDir(const std::string& dir) {
  MutexLock l(&fs_->mu);
  ASSIGN_OR_RETURN(MemFileSystem::Slot slot, fs_->Locate("mkdir", dir));
  if (slot.node != nullptr) {
    return slot.node->is_dir ? absl::OkStatus() : IOError("mkdir", dir, EEXIST);
  }
  auto node = std::make_shared<Node>(/*dir=*/true);
  // Durable at once: in the parent's synced entries too.
  slot.dir->entries.emplace(slot.name, node);
  slot.dir->synced_entries.emplace(slot.name, node);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> MemEnv::GetFileSize(const std::string& path) {
  MutexLock l(&fs_->mu);
  ASSIGN_OR_RETURN(NodeRef node, fs_->FindFile("stat", path));
  return node->data.size();
}

absl::Status MemEnv::RenameFile(const std::string& from,
                                const std::string& to) {
  const std::string op = absl::StrCat("rename ", from, " to");
  MutexLock l(&fs_->mu);
  ASSIGN_OR_RETURN(MemFileSystem::Slot src, fs_->Locate("rename", from));
  if (src.node == nullptr) return IOError("rename", from, ENOENT);
  if (src.node->is_dir) return IOError("rename", from, EISDIR);
  ASSIGN_OR_RETURN(MemFileSystem::Slot dst, fs_->Locate(op, to));
  if (dst.node == src.node) return absl::OkStatus();  // Same file: no-op.
  if (dst.node != nullptr && dst.node->is_dir) return IOError(op, to, EISDIR);
  dst.dir->entries[dst.name] = src.node;
  src.dir->entries.erase(src.name);
  return absl::OkStatus();
}

absl::Status MemEnv::LinkFile(const std::string& from,
                              const std::string& to) {
  const std::string op = absl::StrCat("link ", from, " to");
  MutexLock l(&fs_->mu);
  ASSIGN_OR_RETURN(MemFileSystem::Slot src, fs_->Locate("link", from));
  if (src.node == nullptr) return IOError("link", from, ENOENT);
  if (src.node->is_dir) return IOError("link", from, EPERM);
  ASSIGN_OR_RETURN(MemFileSystem::Slot dst, fs_->Locate(op, to));
  if (dst.node != nullptr) return IOError(op, to, EEXIST);
  dst.dir->entries[dst.name] = src.node;  // One file, two names.
  return absl::OkStatus();
}

absl::Status MemEnv::SyncDir(const std::string& dir) {
  MutexLock l(&fs_->mu);
  ASSIGN_OR_RETURN(NodeRef node, fs_->FindDir("open", dir));
  node->synced_entries = node->entries;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FileLock>> MemEnv::LockFile(
    const std::string& path) {
  MutexLock l(&fs_->mu);
  RETURN_IF_ERROR(fs_->OpenOrCreateFile("open", path).status());
  std::string key;
  for (const std::string& part : Components(path)) {
    absl::StrAppend(&key, "/", part);
  }
  if (!fs_->locks.insert(key).second) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lock ", path, ": already held through this in-memory Env"));
  }
  return std::make_unique<MemFileLock>(fs_, std::move(key));
}

uint64_t MemEnv::NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<Env> NewMemEnv() { return std::make_unique<MemEnv>(); }

}  // namespace strata::storage
