#include "server/backup_archive.h"

#include <xxhash.h>

#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "strata/storage/db.h"
#include "strata/storage/env.h"
#include "strata/storage/write_batch.h"

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

// A running XXH64 (seed 0) over a sequence of byte strings; owns its state.
class Xxh64Hasher {
 public:
  Xxh64Hasher() : state_(XXH64_createState()) { XXH64_reset(state_, 0); }
  ~Xxh64Hasher() { XXH64_freeState(state_); }
  Xxh64Hasher(const Xxh64Hasher&) = delete;
  Xxh64Hasher& operator=(const Xxh64Hasher&) = delete;

  void Update(std::string_view data) {
    XXH64_update(state_, data.data(), data.size());
  }
  // The XXH64 of everything given to Update so far.
  uint64_t Digest() const { return XXH64_digest(state_); }

 private:
  XXH64_state_t* state_;
};

// One file being unpacked.
struct OpenFile {
  std::string name;
  uint64_t size = 0;
  Xxh64Hasher hash;
  std::unique_ptr<storage::WritableFile> out;  // Null when only checking.
};

// Removes `dir` and everything in it, ignoring errors.
void RemoveAll(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// Reads a backup file's header and its messages, checking the framing.
// Errors are DataLoss naming the backup file.
class MessageReader {
 public:
  explicit MessageReader(std::string path) : path_(std::move(path)) {}

  absl::Status Corrupt(const std::string& what) const {
    return absl::DataLossError(absl::StrFormat("backup %s: %s", path_, what));
  }

  // Opens the file and reads the header (magic and version).
  absl::Status Open() {
    in_.reset(std::fopen(path_.c_str(), "rb"));
    if (in_ == nullptr) return ErrnoError("open", path_, errno);
    unsigned char header[12];
    if (std::fread(header, 1, sizeof(header), in_.get()) != sizeof(header) ||
        std::string_view(reinterpret_cast<char*>(header), 8) != kBackupMagic) {
      return Corrupt("not a strata backup file (bad magic)");
    }
    version_ = GetFixed32(header + 8);
    if (version_ == 0) return Corrupt("format version 0");
    if (version_ > kBackupFormatVersion) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "backup %s has format version %d; this build reads up to %d: use a "
          "newer strata",
          path_, version_, kBackupFormatVersion));
    }
    offset_ = sizeof(header);
    return absl::OkStatus();
  }

  // Reads the next message; false at the end of the file. *offset: where
  // the message starts in the file.
  absl::StatusOr<bool> Next(v1::BackupResponse* message, uint64_t* offset) {
    unsigned char len_bytes[4];
    size_t got = std::fread(len_bytes, 1, 4, in_.get());
    if (got == 0 && std::feof(in_.get())) return false;
    if (got != 4) {
      if (std::ferror(in_.get())) return ErrnoError("read", path_, errno);
      return Corrupt(absl::StrFormat("truncated at offset %d", offset_));
    }
    const uint32_t n = GetFixed32(len_bytes);
    if (n > kBackupMaxMessageBytes) {
      return Corrupt(absl::StrFormat(
          "message of %d bytes at offset %d (corrupt length)", n, offset_));
    }
    buffer_.resize(n);
    if (std::fread(buffer_.data(), 1, n, in_.get()) != n) {
      if (std::ferror(in_.get())) return ErrnoError("read", path_, errno);
      return Corrupt(absl::StrFormat("truncated at offset %d", offset_));
    }
    message->Clear();
    if (!message->ParseFromString(buffer_)) {
      return Corrupt(absl::StrFormat("unreadable message at offset %d", offset_));
    }
    *offset = offset_;
    offset_ += 4 + n;
    return true;
  }

  uint32_t version() const { return version_; }
  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  std::unique_ptr<std::FILE, FileCloser> in_;
  uint32_t version_ = 0;
  uint64_t offset_ = 0;
  std::string buffer_;
};

}  // namespace

bool IsValidBackupFileName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

absl::Status BackupFileWriter::WriteHeader(uint32_t version) {
  std::string header(kBackupMagic);
  PutFixed32(&header, version);
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
  MessageReader reader(path);
  if (absl::Status s = reader.Open(); !s.ok()) return s;
  auto corrupt = [&reader](const std::string& what) {
    return reader.Corrupt(what);
  };
  BackupSummary summary;
  summary.format_version = reader.version();
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
    done[current->name] = {current->size, current->hash.Digest()};
    summary.files++;
    current.reset();
    return absl::OkStatus();
  };
  bool begun = false;
  bool have_manifest = false;
  v1::BackupManifest manifest;
  v1::BackupResponse message;
  while (true) {
    uint64_t message_offset = 0;
    absl::StatusOr<bool> more = reader.Next(&message, &message_offset);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if (have_manifest) {
      return corrupt(absl::StrFormat("data after the manifest at offset %d",
                                     message_offset));
    }
    switch (message.kind_case()) {
      case v1::BackupResponse::kBegin:
        if (begun) return corrupt("a second BackupBegin");
        if (message.begin().from_revision() != 0) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "backup %s is an incremental backup (revisions %d to %d), not "
              "a full one: restore a full backup first, then it "
              "(--restore_from=FULL,INCREMENTAL...)",
              path, message.begin().from_revision() + 1,
              message.begin().revision()));
        }
        if (!message.begin().namespace_().empty()) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "backup %s is a backup of namespace \"%s\", not of a whole "
              "node",
              path, message.begin().namespace_()));
        }
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
        current->hash.Update(chunk.data());
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

absl::StatusOr<BackupSummary> ReadBackupBegin(const std::string& path) {
  MessageReader reader(path);
  if (absl::Status s = reader.Open(); !s.ok()) return s;
  v1::BackupResponse message;
  uint64_t offset = 0;
  absl::StatusOr<bool> more = reader.Next(&message, &offset);
  if (!more.ok()) return more.status();
  if (!*more || !message.has_begin()) {
    return reader.Corrupt("the first message is not a BackupBegin");
  }
  BackupSummary summary;
  summary.format_version = reader.version();
  summary.revision = message.begin().revision();
  summary.from_revision = message.begin().from_revision();
  summary.namespace_name = message.begin().namespace_();
  return summary;
}

namespace {

// The messages of a namespace or incremental backup after the header: one
// BackupBegin, chunks of changes, and the manifest last. Each reader states
// what its begin and its chunks mean; the order is checked here.
struct ChangeBackupHandlers {
  // The message kind holding this backup's chunks; one before the
  // BackupBegin is corrupt.
  v1::BackupResponse::KindCase chunk_kind;
  // Checks the (first and only) BackupBegin and fills the summary from it.
  std::function<absl::Status(const v1::BackupBegin&)> on_begin;
  // Handles every message that is neither a begin nor the manifest, with the
  // offset it starts at: a chunk of `chunk_kind` (after the begin), or an
  // error for any other kind.
  std::function<absl::Status(const v1::BackupResponse&, uint64_t offset)>
      on_message;
};

// Reads the messages after `reader`'s header until the end of the file.
// Returns the manifest, for the caller to compare with what the chunks held;
// DataLoss (from `reader`) when the order is wrong or the manifest is
// missing, or the first error of a handler.
absl::StatusOr<v1::BackupManifest> ReadChangeBackupMessages(
    MessageReader& reader, const ChangeBackupHandlers& handlers) {
  bool begun = false;
  bool have_manifest = false;
  v1::BackupManifest manifest;
  v1::BackupResponse message;
  while (true) {
    uint64_t offset = 0;
    absl::StatusOr<bool> more = reader.Next(&message, &offset);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if (have_manifest) {
      return reader.Corrupt(
          absl::StrFormat("data after the manifest at offset %d", offset));
    }
    if (message.kind_case() == v1::BackupResponse::kBegin) {
      if (begun) return reader.Corrupt("a second BackupBegin");
      if (absl::Status s = handlers.on_begin(message.begin()); !s.ok()) {
        return s;
      }
      begun = true;
    } else if (message.kind_case() == v1::BackupResponse::kManifest) {
      if (!begun) return reader.Corrupt("a manifest before BackupBegin");
      manifest = message.manifest();
      have_manifest = true;
    } else {
      if (message.kind_case() == handlers.chunk_kind && !begun) {
        return reader.Corrupt("a chunk before BackupBegin");
      }
      if (absl::Status s = handlers.on_message(message, offset); !s.ok()) {
        return s;
      }
    }
  }
  if (!have_manifest) {
    return reader.Corrupt(
        "truncated: the manifest (the final message) is missing");
  }
  return manifest;
}

// Checks a chunk's data against its XXH64 and adds it to `hash` (over all
// chunks, for the manifest) and to `summary->bytes`. DataLoss naming `where`
// on a mismatch.
absl::Status AddChunkData(const MessageReader& reader, std::string_view where,
                          const std::string& data, uint64_t xxh64,
                          Xxh64Hasher* hash, BackupSummary* summary) {
  if (XXH64(data.data(), data.size(), 0) != xxh64) {
    return reader.Corrupt(absl::StrFormat(
        "%s: checksum mismatch (the backup is corrupt)", where));
  }
  hash->Update(data);
  summary->bytes += data.size();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BackupSummary> ReadNamespaceBackup(
    const std::string& path, const BackupEntriesFunction& apply) {
  MessageReader reader(path);
  if (absl::Status s = reader.Open(); !s.ok()) return s;
  BackupSummary summary;
  summary.format_version = reader.version();
  Xxh64Hasher hash;
  v1::BackupChangeBatch entries;
  ChangeBackupHandlers handlers;
  handlers.chunk_kind = v1::BackupResponse::kKeys;
  handlers.on_begin = [&](const v1::BackupBegin& begin) -> absl::Status {
    if (begin.namespace_().empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("backup %s is not a namespace backup", path));
    }
    if (begin.from_revision() != 0 || begin.revision() < 0) {
      return reader.Corrupt("impossible revisions in BackupBegin");
    }
    summary.revision = begin.revision();
    summary.namespace_name = begin.namespace_();
    return absl::OkStatus();
  };
  handlers.on_message = [&](const v1::BackupResponse& message,
                            uint64_t offset) -> absl::Status {
    if (message.kind_case() != v1::BackupResponse::kKeys) {
      return reader.Corrupt(absl::StrFormat(
          "a message other than a keys chunk at offset %d", offset));
    }
    const v1::BackupKeysChunk& chunk = message.keys();
    const std::string where = absl::StrFormat("keys chunk at offset %d", offset);
    if (absl::Status s = AddChunkData(reader, where, chunk.data(),
                                      chunk.xxh64(), &hash, &summary);
        !s.ok()) {
      return s;
    }
    if (!entries.ParseFromString(chunk.data()) ||
        entries.changes_size() == 0 || entries.revision() != summary.revision) {
      return reader.Corrupt(absl::StrFormat("%s: unreadable", where));
    }
    for (const v1::BackupChange& e : entries.changes()) {
      if (e.deleted() || e.key().empty()) {
        return reader.Corrupt(absl::StrFormat(
            "%s: an entry that is not a put of a key", where));
      }
    }
    summary.changes += static_cast<uint64_t>(entries.changes_size());
    if (apply) return apply(entries);
    return absl::OkStatus();
  };
  absl::StatusOr<v1::BackupManifest> manifest =
      ReadChangeBackupMessages(reader, handlers);
  if (!manifest.ok()) return manifest.status();
  if (manifest->namespace_() != summary.namespace_name ||
      manifest->revision() != summary.revision ||
      manifest->changes() != summary.changes ||
      manifest->changes_xxh64() != hash.Digest()) {
    return reader.Corrupt(absl::StrFormat(
        "the manifest (namespace \"%s\", revision %d, %d entries) does not "
        "match the chunks (namespace \"%s\", revision %d, %d entries, or "
        "their XXH64)",
        manifest->namespace_(), manifest->revision(), manifest->changes(),
        summary.namespace_name, summary.revision, summary.changes));
  }
  return summary;
}

absl::StatusOr<BackupSummary> ReadIncrementalBackup(
    const std::string& path, const BackupBatchFunction& apply) {
  MessageReader reader(path);
  if (absl::Status s = reader.Open(); !s.ok()) return s;
  BackupSummary summary;
  summary.format_version = reader.version();
  Xxh64Hasher hash;
  v1::BackupChangeBatches batches;
  ChangeBackupHandlers handlers;
  handlers.chunk_kind = v1::BackupResponse::kChanges;
  handlers.on_begin = [&](const v1::BackupBegin& begin) -> absl::Status {
    if (begin.from_revision() == 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "backup %s is a full backup%s (revision %d), not an "
          "incremental one",
          path,
          begin.namespace_().empty()
              ? ""
              : absl::StrFormat(" of namespace \"%s\"", begin.namespace_()),
          begin.revision()));
    }
    if (begin.from_revision() < 0 ||
        begin.revision() < begin.from_revision()) {
      return reader.Corrupt(
          absl::StrFormat("impossible revisions %d to %d in BackupBegin",
                          begin.from_revision(), begin.revision()));
    }
    summary.from_revision = begin.from_revision();
    summary.revision = begin.revision();
    return absl::OkStatus();
  };
  handlers.on_message = [&](const v1::BackupResponse& message,
                            uint64_t offset) -> absl::Status {
    if (message.kind_case() == v1::BackupResponse::kChunk) {
      return reader.Corrupt(absl::StrFormat(
          "a file chunk in an incremental backup at offset %d", offset));
    }
    if (message.kind_case() != v1::BackupResponse::kChanges) {
      return reader.Corrupt(
          absl::StrFormat("unknown message at offset %d", offset));
    }
    const v1::BackupChangeChunk& chunk = message.changes();
    const std::string where = absl::StrFormat(
        "changes chunk at offset %d (revisions %d to %d)", offset,
        chunk.first_revision(), chunk.last_revision());
    if (absl::Status s = AddChunkData(reader, where, chunk.data(),
                                      chunk.xxh64(), &hash, &summary);
        !s.ok()) {
      return s;
    }
    if (!batches.ParseFromString(chunk.data()) || batches.batches_size() == 0) {
      return reader.Corrupt(absl::StrFormat("%s: unreadable", where));
    }
    if (batches.batches(0).revision() != chunk.first_revision() ||
        batches.batches(batches.batches_size() - 1).revision() !=
            chunk.last_revision()) {
      return reader.Corrupt(absl::StrFormat("%s: holds other revisions", where));
    }
    for (const v1::BackupChangeBatch& b : batches.batches()) {
      const int64_t expected =
          summary.from_revision + static_cast<int64_t>(summary.batches) + 1;
      if (b.revision() != expected) {
        return reader.Corrupt(
            absl::StrFormat("%s: batch at revision %d, expected %d", where,
                            b.revision(), expected));
      }
      if (b.revision() > summary.revision || b.changes_size() == 0) {
        return reader.Corrupt(absl::StrFormat(
            "%s: batch at revision %d is past the end or empty", where,
            b.revision()));
      }
      summary.batches++;
      summary.changes += static_cast<uint64_t>(b.changes_size());
      if (apply) {
        if (absl::Status s = apply(b); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  };
  absl::StatusOr<v1::BackupManifest> manifest =
      ReadChangeBackupMessages(reader, handlers);
  if (!manifest.ok()) return manifest.status();
  if (manifest->from_revision() != summary.from_revision ||
      manifest->revision() != summary.revision ||
      manifest->batches() != summary.batches ||
      manifest->changes() != summary.changes ||
      manifest->changes_xxh64() != hash.Digest()) {
    return reader.Corrupt(absl::StrFormat(
        "the manifest (revisions %d to %d, %d batches, %d changes) does not "
        "match the chunks (revisions %d to %d, %d batches, %d changes, or "
        "their XXH64)",
        manifest->from_revision() + 1, manifest->revision(),
        manifest->batches(), manifest->changes(), summary.from_revision + 1,
        summary.revision, summary.batches, summary.changes));
  }
  if (summary.from_revision + static_cast<int64_t>(summary.batches) !=
      summary.revision) {
    return reader.Corrupt(absl::StrFormat(
        "the batches end at revision %d, the backup says %d",
        summary.from_revision + static_cast<int64_t>(summary.batches),
        summary.revision));
  }
  return summary;
}

namespace {

storage::Options RestoreEngineOptions() {
  storage::Options options;
  options.create_if_missing = false;
  options.keep_history = true;  // Change nothing about its history.
  options.history_retention_seconds = 0;
  options.history_retention_revisions = 0;
  options.compaction_threads = 1;
  return options;
}

// Opens the database unpacked in `dir` and counts its keys.
absl::Status CountKeys(const std::string& dir, BackupSummary* summary) {
  auto db = storage::DB::Open(RestoreEngineOptions(), dir);
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

// The engine's form of a batch of an incremental backup. Its string_views
// point into `in`.
storage::ChangeBatch ToChangeBatch(const v1::BackupChangeBatch& in) {
  storage::ChangeBatch out;
  out.revision = static_cast<storage::Revision>(in.revision());
  out.changes.reserve(static_cast<size_t>(in.changes_size()));
  for (const v1::BackupChange& c : in.changes()) {
    storage::Change change;
    change.key = c.key();
    change.metadata.mod_revision = out.revision;
    if (c.deleted()) {
      change.type = storage::Change::Type::kDelete;
    } else {
      change.type = storage::Change::Type::kPut;
      change.value = c.value();
      change.metadata.create_revision =
          static_cast<storage::Revision>(c.create_revision());
      change.metadata.version = static_cast<uint64_t>(c.version());
      change.metadata.attributes.expire_at_unix_ms =
          static_cast<uint64_t>(c.expire_at_unix_ms());
      change.metadata.attributes.lease = static_cast<uint64_t>(c.lease());
      change.metadata.attributes.value_type =
          static_cast<uint8_t>(c.value_type());
    }
    out.changes.push_back(change);
  }
  return out;
}

// Applies the incremental backups `paths[1..]` to the database in `dir`
// (at summary->revision, the full backup's), up to `to_revision` (0 =
// all). Updates summary's revision, batches and changes.
absl::Status ApplyIncrementals(const std::vector<std::string>& paths,
                               const std::string& dir, int64_t to_revision,
                               BackupSummary* summary) {
  storage::Options options = RestoreEngineOptions();
  options.allow_committed_batches = true;
  auto db = storage::DB::Open(options, dir);
  if (!db.ok()) return db.status();
  // `current`: the revision applied so far; `chain_end`: the last one the
  // backups read so far hold (above current only past to_revision).
  int64_t current = static_cast<int64_t>((*db)->CurrentRevision());
  int64_t chain_end = current;
  std::string reached_by = paths[0];  // The file that ends at chain_end.
  const int64_t limit = to_revision > 0 ? to_revision : INT64_MAX;
  storage::WriteOptions wo;
  wo.sync = false;  // One SyncWAL at the end.
  for (size_t i = 1; i < paths.size(); i++) {
    const std::string& path = paths[i];
    absl::StatusOr<BackupSummary> begin = ReadBackupBegin(path);
    if (!begin.ok()) return begin.status();
    if (begin->from_revision == 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "backup %s is a full backup: only the first backup of a restore "
          "may be full, the others must be incremental",
          path));
    }
    if (begin->from_revision > chain_end) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "gap in the backup chain: incremental backup %s holds revisions %d "
          "to %d, but the backups before it (up to %s) end at revision %d: "
          "revisions %d to %d are missing (give the incrementals in order, "
          "each starting at or below where the previous one ended)",
          path, begin->from_revision + 1, begin->revision, reached_by,
          chain_end, chain_end + 1, begin->from_revision));
    }
    absl::StatusOr<BackupSummary> read = ReadIncrementalBackup(
        path, [&](const v1::BackupChangeBatch& b) -> absl::Status {
          if (b.revision() <= current || b.revision() > limit) {
            return absl::OkStatus();  // Already applied, or past the target.
          }
          absl::Status s = (*db)->ApplyCommittedBatch(wo, ToChangeBatch(b));
          if (absl::IsInvalidArgument(s)) {
            return absl::DataLossError(absl::StrFormat(
                "backup %s: batch at revision %d: %s", path, b.revision(),
                s.message()));
          }
          if (!s.ok()) return s;
          current = b.revision();
          summary->batches++;
          summary->changes += static_cast<uint64_t>(b.changes_size());
          return absl::OkStatus();
        });
    if (!read.ok()) return read.status();
    if (read->revision > chain_end) {
      chain_end = read->revision;
      reached_by = path;
    }
  }
  if (to_revision > chain_end) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--restore_to_revision=%d is above the last revision the backups "
        "hold, %d (%s)",
        to_revision, chain_end, reached_by));
  }
  summary->revision = current;
  return (*db)->SyncWAL();
}

// Writes the namespace backup at `path` into a new database in `dir`, one
// write per chunk (a new history: revisions from 1). Sets summary's
// revision to the restored database's.
absl::Status RestoreNamespace(const std::string& path, const std::string& dir,
                              BackupSummary* summary) {
  storage::Options options = RestoreEngineOptions();
  options.create_if_missing = true;
  auto db = storage::DB::Open(options, dir);
  if (!db.ok()) return db.status();
  storage::WriteOptions wo;
  wo.sync = false;  // One SyncWAL at the end.
  absl::StatusOr<BackupSummary> read = ReadNamespaceBackup(
      path, [&](const v1::BackupChangeBatch& entries) -> absl::Status {
        storage::WriteBatch batch;
        for (const v1::BackupChange& e : entries.changes()) {
          storage::PutAttributes a;
          a.expire_at_unix_ms = static_cast<uint64_t>(e.expire_at_unix_ms());
          a.lease = static_cast<uint64_t>(e.lease());
          a.value_type = static_cast<uint8_t>(e.value_type());
          batch.Put(e.key(), e.value(), a);
        }
        return (*db)->Write(wo, &batch).status();
      });
  if (!read.ok()) return read.status();
  *summary = *read;
  summary->revision = static_cast<int64_t>((*db)->CurrentRevision());
  return (*db)->SyncWAL();
}

}  // namespace

absl::StatusOr<BackupSummary> VerifyBackup(const std::string& path,
                                           const std::string& scratch_dir) {
  absl::StatusOr<BackupSummary> begin = ReadBackupBegin(path);
  if (!begin.ok()) return begin.status();
  if (begin->from_revision != 0) return ReadIncrementalBackup(path, nullptr);
  if (!begin->namespace_name.empty()) {
    absl::StatusOr<BackupSummary> summary = ReadNamespaceBackup(path, nullptr);
    if (summary.ok()) summary->keys = summary->changes;
    return summary;
  }
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
                                            const std::string& data_dir,
                                            bool force) {
  return RestoreBackup(std::vector<std::string>{path}, data_dir, force);
}

absl::StatusOr<BackupSummary> RestoreBackup(
    const std::vector<std::string>& paths, const std::string& data_dir_arg,
    bool force, int64_t to_revision) {
  if (paths.empty()) {
    return absl::InvalidArgumentError("no backup to restore from");
  }
  if (to_revision < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--restore_to_revision=%d is negative", to_revision));
  }
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
  // Cheap checks first: the full backup's revision against the target.
  absl::StatusOr<BackupSummary> full = ReadBackupBegin(paths[0]);
  if (!full.ok()) return full.status();
  if (full->from_revision == 0 && to_revision > 0 &&
      to_revision < full->revision) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--restore_to_revision=%d is below the revision of the full backup "
        "%s, %d: a restore cannot go back before its full backup",
        to_revision, paths[0], full->revision));
  }
  const bool is_namespace = !full->namespace_name.empty();
  if (is_namespace && (paths.size() > 1 || to_revision > 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "backup %s is a backup of namespace \"%s\": it restores alone, "
        "with no incrementals and no --restore_to_revision",
        paths[0], full->namespace_name));
  }
  const std::string parent = ParentOf(data_dir);
  if (absl::Status s = env->CreateDir(parent); !s.ok()) return s;
  const std::string staging =
      absl::StrCat(data_dir, ".restore-tmp");
  RemoveAll(staging);  // A previous restore that was killed.
  absl::StatusOr<BackupSummary> summary;
  if (is_namespace) {
    summary = BackupSummary();
    absl::Status s = RestoreNamespace(paths[0], staging, &*summary);
    if (!s.ok()) summary = s;
  } else {
    summary = ReadBackupFile(paths[0], staging);
  }
  if (summary.ok() && (paths.size() > 1 || to_revision > 0)) {
    absl::Status s = ApplyIncrementals(paths, staging, to_revision, &*summary);
    if (!s.ok()) summary = s;
  }
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
