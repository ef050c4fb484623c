#include "server/backup_archive.h"

#include <xxhash.h>

#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "strata/storage/db.h"
#include "strata/storage/env.h"

namespace strata::server {
namespace {

void PutFixed32(std::string* dst, uint32_t v) {
  for (int i = 0; i < 4; i++) dst->push_back(static_cast<char>(v >> (8 * i)));
}

uint32_t GetFixed32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}

absl::Status ErrnoError(std::string_view what, const std::string& path,
                        int err) {
  std::string msg = absl::StrCat(std::string(what), " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == ENOSPC || err == EIO || err == EDQUOT || err == EROFS) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// One file being unpacked.
struct OpenFile {
  std::string name;
  uint64_t size = 0;
  XXH64_state_t* hash = nullptr;
  std::unique_ptr<storage::WritableFile> out;  // Null when only checking.
  OpenFile() : hash(XXH64_createState()) { XXH64_reset(hash, 0); }
  ~OpenFile() { XXH64_freeState(hash); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
};

// Removes `dir` and everything in it, ignoring errors.
void RemoveAll(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace

bool IsValidBackupFileName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

absl::Status BackupFileWriter::WriteHeader() {
  std::string header(kBackupMagic);
  PutFixed32(&header, kBackupFormatVersion);
  if (std::fwrite(header.data(), 1, header.size(), file_) != header.size()) {
    return ErrnoError("write", "backup file", errno);
  }
  return absl::OkStatus();
}

absl::Status BackupFileWriter::Write(const v1::BackupResponse& message) {
  std::string frame;
  PutFixed32(&frame, static_cast<uint32_t>(message.ByteSizeLong()));
  if (!message.AppendToString(&frame)) {
    return absl::InternalError("cannot serialize a backup message");
  }
  if (std::fwrite(frame.data(), 1, frame.size(), file_) != frame.size()) {
    return ErrnoError("write", "backup file", errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<BackupSummary> ReadBackupFile(const std::string& path,
                                             const std::string& out_dir) {
  std::unique_ptr<std::FILE, FileCloser> in(std::fopen(path.c_str(), "rb"));
  if (in == nullptr) return ErrnoError("open", path, errno);
  auto corrupt = [&path](const std::string& what) {
    return absl::DataLossError(absl::StrFormat("backup %s: %s", path, what));
  };
  unsigned char header[12];
  if (std::fread(header, 1, sizeof(header), in.get()) != sizeof(header) ||
      std::string_view(reinterpret_cast<char*>(header), 8) != kBackupMagic) {
    return corrupt("not a strata backup file (bad magic)");
  }
  BackupSummary summary;
  summary.format_version = GetFixed32(header + 8);
  if (summary.format_version == 0) return corrupt("format version 0");
  if (summary.format_version > kBackupFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "backup %s has format version %d; this build reads up to %d: use a "
        "newer strata",
        path, summary.format_version, kBackupFormatVersion));
  }
  storage::Env* env = storage::Env::Default();
  if (!out_dir.empty()) {
    if (env->FileExists(out_dir)) {
      auto children = env->GetChildren(out_dir);
      if (!children.ok()) return children.status();
      if (!children->empty()) {
        return absl::FailedPreconditionError(
            absl::StrFormat("%s is not empty", out_dir));
      }
    }
    if (absl::Status s = env->CreateDir(out_dir); !s.ok()) return s;
  }

  std::map<std::string, std::pair<uint64_t, uint64_t>> done;  // size, xxh64
  std::unique_ptr<OpenFile> current;
  auto finish_file = [&]() -> absl::Status {
    if (current == nullptr) return absl::OkStatus();
    if (current->out != nullptr) {
      absl::Status s = current->out->Sync();
      if (s.ok()) s = current->out->Close();
      if (!s.ok()) return s;
    }
    done[current->name] = {current->size, XXH64_digest(current->hash)};
    summary.files++;
    current.reset();
    return absl::OkStatus();
  };
  bool begun = false;
  bool have_manifest = false;
  v1::BackupManifest manifest;
  std::string buffer;
  uint64_t offset = sizeof(header);
  while (true) {
    unsigned char len_bytes[4];
    size_t got = std::fread(len_bytes, 1, 4, in.get());
    if (got == 0 && std::feof(in.get())) break;
    if (got != 4) {
      return corrupt(absl::StrFormat("truncated at offset %d", offset));
    }
    const uint32_t n = GetFixed32(len_bytes);
    if (n > kBackupMaxMessageBytes) {
      return corrupt(absl::StrFormat(
          "message of %d bytes at offset %d (corrupt length)", n, offset));
    }
    buffer.resize(n);
    if (std::fread(buffer.data(), 1, n, in.get()) != n) {
      return corrupt(absl::StrFormat("truncated at offset %d", offset));
    }
    v1::BackupResponse message;
    if (!message.ParseFromString(buffer)) {
      return corrupt(absl::StrFormat("unreadable message at offset %d", offset));
    }
    const uint64_t message_offset = offset;
    offset += 4 + n;
    if (have_manifest) {
      return corrupt(absl::StrFormat("data after the manifest at offset %d",
                                     message_offset));
    }
    switch (message.kind_case()) {
      case v1::BackupResponse::kBegin:
        if (begun) return corrupt("a second BackupBegin");
        begun = true;
        summary.revision = message.begin().revision();
        break;
      case v1::BackupResponse::kChunk: {
        if (!begun) return corrupt("a chunk before BackupBegin");
        const v1::BackupChunk& chunk = message.chunk();
        if (!IsValidBackupFileName(chunk.file())) {
          return corrupt(absl::StrFormat("bad file name at offset %d",
                                         message_offset));
        }
        if (current == nullptr || current->name != chunk.file()) {
          if (absl::Status s = finish_file(); !s.ok()) return s;
          if (done.count(chunk.file()) > 0) {
            return corrupt(absl::StrFormat("file %s: chunks out of order",
                                           chunk.file()));
          }
          current = std::make_unique<OpenFile>();
          current->name = chunk.file();
          if (!out_dir.empty()) {
            auto out = env->NewWritableFile(out_dir + "/" + chunk.file());
            if (!out.ok()) return out.status();
            current->out = *std::move(out);
          }
        }
        if (chunk.offset() != current->size) {
          return corrupt(absl::StrFormat(
              "file %s: chunk at offset %d, expected %d", chunk.file(),
              chunk.offset(), current->size));
        }
        if (XXH64(chunk.data().data(), chunk.data().size(), 0) !=
            chunk.xxh64()) {
          return corrupt(absl::StrFormat(
              "file %s: chunk at offset %d: checksum mismatch (the backup is "
              "corrupt)",
              chunk.file(), chunk.offset()));
        }
        XXH64_update(current->hash, chunk.data().data(), chunk.data().size());
        current->size += chunk.data().size();
        summary.bytes += chunk.data().size();
        if (current->out != nullptr) {
          if (absl::Status s = current->out->Append(chunk.data()); !s.ok()) {
            return s;
          }
        }
        break;
      }
      case v1::BackupResponse::kManifest:
        if (!begun) return corrupt("a manifest before BackupBegin");
        manifest = message.manifest();
        have_manifest = true;
        if (absl::Status s = finish_file(); !s.ok()) return s;
        break;
      default:
        return corrupt(absl::StrFormat("unknown message at offset %d",
                                       message_offset));
    }
  }
  if (std::ferror(in.get())) return ErrnoError("read", path, errno);
  if (!have_manifest) {
    return corrupt("truncated: the manifest (the final message) is missing");
  }
  if (manifest.revision() != summary.revision) {
    return corrupt("the manifest's revision differs from BackupBegin's");
  }
  std::set<std::string> listed;
  for (const v1::BackupFileInfo& f : manifest.files()) {
    listed.insert(f.name());
    auto it = done.find(f.name());
    if (it == done.end() && f.size() == 0) {
      // An empty file has no chunks.
      if (!IsValidBackupFileName(f.name())) return corrupt("bad file name");
      if (!out_dir.empty()) {
        auto out = env->NewWritableFile(out_dir + "/" + f.name());
        if (!out.ok()) return out.status();
        absl::Status s = (*out)->Sync();
        if (s.ok()) s = (*out)->Close();
        if (!s.ok()) return s;
      }
      done[f.name()] = {0, XXH64(nullptr, 0, 0)};
      summary.files++;
      it = done.find(f.name());
    }
    if (it == done.end()) {
      return corrupt(absl::StrFormat("file %s: listed in the manifest, missing",
                                     f.name()));
    }
    if (it->second.first != f.size() || it->second.second != f.xxh64()) {
      return corrupt(absl::StrFormat(
          "file %s: %d bytes with XXH64 %016x, the manifest says %d bytes "
          "with %016x",
          f.name(), it->second.first, it->second.second, f.size(), f.xxh64()));
    }
  }
  for (const auto& [name, info] : done) {
    if (listed.count(name) == 0) {
      return corrupt(absl::StrFormat("file %s: not in the manifest", name));
    }
  }
  if (!out_dir.empty()) {
    if (absl::Status s = env->SyncDir(out_dir); !s.ok()) return s;
  }
  return summary;
}

namespace {

// Opens the database unpacked in `dir` and counts its keys.
absl::Status CountKeys(const std::string& dir, BackupSummary* summary) {
  storage::Options options;
  options.create_if_missing = false;
  options.keep_history = true;  // Change nothing about its history.
  options.compaction_threads = 1;
  auto db = storage::DB::Open(options, dir);
  if (!db.ok()) return db.status();
  if ((*db)->CurrentRevision() != static_cast<uint64_t>(summary->revision)) {
    return absl::DataLossError(absl::StrFormat(
        "the restored database is at revision %d, the backup says %d",
        (*db)->CurrentRevision(), summary->revision));
  }
  std::unique_ptr<storage::Iterator> it((*db)->NewIterator({}));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    summary->keys++;
    if (it->key().substr(0, 2) == storage::kReservedKeyPrefix) {
      summary->system_keys++;
    }
  }
  return it->status();
}

std::string ParentOf(const std::string& path) {
  std::filesystem::path p(path);
  std::filesystem::path parent = p.lexically_normal().parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

absl::StatusOr<BackupSummary> VerifyBackup(const std::string& path,
                                           const std::string& scratch_dir) {
  std::string base = scratch_dir;
  if (base.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  std::string dir = base + "/strata-verify-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) {
    return ErrnoError("mkdtemp", dir, errno);
  }
  absl::StatusOr<BackupSummary> summary = ReadBackupFile(path, dir + "/db");
  if (summary.ok()) {
    absl::Status s = CountKeys(dir + "/db", &*summary);
    if (!s.ok()) summary = s;
  }
  RemoveAll(dir);
  return summary;
}

absl::StatusOr<BackupSummary> RestoreBackup(const std::string& path,
                                            const std::string& data_dir_arg,
                                            bool force) {
  std::string data_dir = data_dir_arg;
  while (data_dir.size() > 1 && data_dir.back() == '/') data_dir.pop_back();
  storage::Env* env = storage::Env::Default();
  bool non_empty = false;
  if (env->FileExists(data_dir)) {
    auto children = env->GetChildren(data_dir);
    if (!children.ok()) return children.status();
    non_empty = !children->empty();
  }
  if (non_empty && !force) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "data directory %s is not empty: a restore never overwrites one "
        "(pass --force to replace what it holds)",
        data_dir));
  }
  const std::string parent = ParentOf(data_dir);
  if (absl::Status s = env->CreateDir(parent); !s.ok()) return s;
  const std::string staging =
      absl::StrCat(data_dir, ".restore-tmp");
  RemoveAll(staging);  // A previous restore that was killed.
  absl::StatusOr<BackupSummary> summary = ReadBackupFile(path, staging);
  if (summary.ok()) {
    absl::Status s = CountKeys(staging, &*summary);
    if (!s.ok()) summary = s;
  }
  if (!summary.ok()) {
    RemoveAll(staging);
    return summary;
  }
  // CountKeys opened it: the LOCK file it left is harmless.
  RemoveAll(data_dir);
  std::error_code ec;
  std::filesystem::rename(staging, data_dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrFormat(
        "rename %s to %s: %s", staging, data_dir, ec.message()));
  }
  if (absl::Status s = env->SyncDir(parent); !s.ok()) return s;
  return summary;
}

}  // namespace strata::server
