#include "cluster/replication/checkpoint_transfer.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <system_error>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cluster/replication/service.h"
#include "strata/storage/env.h"
#include "xxhash.h"

namespace strata::cluster::replication {
namespace {

std::atomic<uint64_t> g_checkpoint_counter{0};

void RemoveAll(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

bool IsValidFileName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Streams the files of the checkpoint in `dir` at `revision`.
absl::Status SendFiles(const std::string& dir, Revision revision,
                       const EpochHistory& history, uint64_t chunk_bytes,
                       const CheckpointSend& send) {
  storage::Env* env = storage::Env::Default();
  absl::StatusOr<std::vector<std::string>> names = env->GetChildren(dir);
  if (!names.ok()) return names.status();
  std::sort(names->begin(), names->end());
  std::vector<uint64_t> sizes;
  v1::FetchCheckpointResponse begin;
  uint64_t total = 0;
  for (const std::string& name : *names) {
    absl::StatusOr<uint64_t> size = env->GetFileSize(dir + "/" + name);
    if (!size.ok()) return size.status();
    sizes.push_back(*size);
    total += *size;
  }
  begin.mutable_begin()->set_revision(static_cast<int64_t>(revision));
  begin.mutable_begin()->set_files(static_cast<uint32_t>(names->size()));
  begin.mutable_begin()->set_total_bytes(total);
  EpochHistoryToProto(history, begin.mutable_begin()->mutable_epoch_history());
  if (!send(begin)) return absl::CancelledError("checkpoint: stream gone");
  v1::FetchCheckpointResponse manifest;
  std::string buf(std::max<uint64_t>(chunk_bytes, 1), '\0');
  for (size_t i = 0; i < names->size(); ++i) {
    const std::string path = dir + "/" + (*names)[i];
    absl::StatusOr<std::unique_ptr<storage::SequentialFile>> f =
        env->NewSequentialFile(path);
    if (!f.ok()) return f.status();
    XXH64_state_t* hash = XXH64_createState();
    std::unique_ptr<XXH64_state_t, XXH_errorcode (*)(XXH64_state_t*)> owner(
        hash, XXH64_freeState);
    XXH64_reset(hash, 0);
    uint64_t offset = 0;
    while (offset < sizes[i]) {
      const size_t want = static_cast<size_t>(
          std::min<uint64_t>(buf.size(), sizes[i] - offset));
      size_t got = 0;
      while (got < want) {
        absl::StatusOr<std::string_view> r =
            (*f)->Read(want - got, buf.data() + got);
        if (!r.ok()) return r.status();
        if (r->empty()) break;
        if (r->data() != buf.data() + got) {
          std::memmove(buf.data() + got, r->data(), r->size());
        }
        got += r->size();
      }
      if (got != want) {
        return absl::InternalError(absl::StrFormat(
            "checkpoint: %s ended at %d bytes, expected %d", path,
            offset + got, sizes[i]));
      }
      v1::FetchCheckpointResponse msg;
      v1::CheckpointChunk* chunk = msg.mutable_chunk();
      chunk->set_file((*names)[i]);
      chunk->set_offset(offset);
      chunk->set_data(buf.data(), got);
      chunk->set_xxh64(XXH64(buf.data(), got, 0));
      XXH64_update(hash, buf.data(), got);
      offset += got;
      if (!send(msg)) return absl::CancelledError("checkpoint: stream gone");
    }
    v1::CheckpointFile* file = manifest.mutable_manifest()->add_files();
    file->set_name((*names)[i]);
    file->set_size(sizes[i]);
    file->set_xxh64(XXH64_digest(hash));
  }
  if (!send(manifest)) return absl::CancelledError("checkpoint: stream gone");
  return absl::OkStatus();
}

// One file being received.
struct Incoming {
  std::unique_ptr<storage::WritableFile> file;
  uint64_t size = 0;
  XXH64_state_t* hash = nullptr;
  ~Incoming() {
    if (hash != nullptr) XXH64_freeState(hash);
  }
};

absl::StatusOr<ReceivedCheckpoint> ReceiveInto(const CheckpointRead& read,
                                               const std::string& dir) {
  storage::Env* env = storage::Env::Default();
  auto corrupt = [&](const std::string& what) {
    return absl::DataLossError(
        absl::StrFormat("checkpoint into %s: %s", dir, what));
  };
  v1::FetchCheckpointResponse msg;
  if (!read(&msg)) return corrupt("the stream ended before its begin");
  if (!msg.has_begin()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint into ", dir, ": first message is not a begin"));
  }
  ReceivedCheckpoint out;
  out.revision = static_cast<Revision>(msg.begin().revision());
  out.history = EpochHistoryFromProto(msg.begin().epoch_history());
  if (absl::Status s = ValidateEpochHistory(out.history); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint into ", dir, ": ", s.message()));
  }
  const uint64_t want_files = msg.begin().files();
  const uint64_t want_bytes = msg.begin().total_bytes();
  std::map<std::string, Incoming> files;
  while (true) {
    if (!read(&msg)) return corrupt("the stream ended before its manifest");
    if (msg.has_manifest()) break;
    if (!msg.has_chunk()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint into ", dir, ": unexpected message after the begin"));
    }
    const v1::CheckpointChunk& c = msg.chunk();
    if (!IsValidFileName(c.file())) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "checkpoint into %s: bad file name \"%s\"", dir, c.file()));
    }
    if (XXH64(c.data().data(), c.data().size(), 0) != c.xxh64()) {
      return corrupt(absl::StrFormat(
          "chunk of %s at offset %d: checksum mismatch", c.file(), c.offset()));
    }
    Incoming& in = files[c.file()];
    if (in.file == nullptr) {
      absl::StatusOr<std::unique_ptr<storage::WritableFile>> f =
          env->NewWritableFile(dir + "/" + c.file());
      if (!f.ok()) return f.status();
      in.file = *std::move(f);
      in.hash = XXH64_createState();
      XXH64_reset(in.hash, 0);
    }
    if (c.offset() != in.size) {
      return corrupt(absl::StrFormat("chunk of %s at offset %d, expected %d",
                                     c.file(), c.offset(), in.size));
    }
    if (absl::Status s = in.file->Append(c.data()); !s.ok()) return s;
    XXH64_update(in.hash, c.data().data(), c.data().size());
    in.size += c.data().size();
  }
  const v1::CheckpointManifest& m = msg.manifest();
  if (m.files_size() != static_cast<int>(want_files)) {
    return corrupt(absl::StrFormat("the manifest lists %d files, the begin %d",
                                   m.files_size(), want_files));
  }
  uint64_t total = 0;
  // A name listed twice would let the count check below pass with a file
  // the manifest never describes.
  std::set<std::string> listed;
  for (const v1::CheckpointFile& f : m.files()) {
    if (!IsValidFileName(f.name())) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "checkpoint into %s: bad file name \"%s\"", dir, f.name()));
    }
    if (!listed.insert(f.name()).second) {
      return corrupt(absl::StrFormat("the manifest lists %s twice", f.name()));
    }
    Incoming& in = files[f.name()];
    if (in.file == nullptr && f.size() != 0) {
      return corrupt(absl::StrFormat("%s: no chunks received", f.name()));
    }
    if (in.file == nullptr) {  // An empty file has no chunks.
      absl::StatusOr<std::unique_ptr<storage::WritableFile>> nf =
          env->NewWritableFile(dir + "/" + f.name());
      if (!nf.ok()) return nf.status();
      in.file = *std::move(nf);
      in.hash = XXH64_createState();
      XXH64_reset(in.hash, 0);
    }
    if (in.size != f.size()) {
      return corrupt(absl::StrFormat("%s: %d bytes received, the manifest says %d",
                                     f.name(), in.size, f.size()));
    }
    if (XXH64_digest(in.hash) != f.xxh64()) {
      return corrupt(absl::StrFormat("%s: file checksum mismatch", f.name()));
    }
    total += in.size;
  }
  if (files.size() != static_cast<size_t>(m.files_size())) {
    return corrupt("chunks of files the manifest does not list");
  }
  if (total != want_bytes) {
    return corrupt(absl::StrFormat("%d bytes received, the begin said %d",
                                   total, want_bytes));
  }
  for (auto& [name, in] : files) {
    if (absl::Status s = in.file->Sync(); !s.ok()) return s;
    if (absl::Status s = in.file->Close(); !s.ok()) return s;
  }
  if (absl::Status s = env->SyncDir(dir); !s.ok()) return s;
  out.files = files.size();
  out.bytes = total;
  return out;
}

}  // namespace

absl::Status SendCheckpoint(storage::DB* db, const std::string& scratch_dir,
                            const EpochHistory& history, uint64_t chunk_bytes,
                            const CheckpointSend& send) {
  storage::Env* env = storage::Env::Default();
  if (absl::Status s = env->CreateDir(scratch_dir); !s.ok()) return s;
  const std::string dir =
      absl::StrFormat("%s/replication-checkpoint-%d-%d", scratch_dir,
                      ::getpid(), g_checkpoint_counter.fetch_add(1));
  absl::StatusOr<Revision> revision = db->CreateCheckpoint(dir);
  if (!revision.ok()) {
    RemoveAll(dir);
    return revision.status();
  }
  absl::Status s = SendFiles(dir, *revision, history, chunk_bytes, send);
  RemoveAll(dir);
  return s;
}

absl::StatusOr<ReceivedCheckpoint> ReceiveCheckpoint(const CheckpointRead& read,
                                                     const std::string& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint into ", dir, ": the directory exists"));
  }
  if (!std::filesystem::create_directory(dir, ec)) {
    return absl::UnavailableError(
        absl::StrCat("checkpoint into ", dir, ": mkdir: ", ec.message()));
  }
  absl::StatusOr<ReceivedCheckpoint> out = ReceiveInto(read, dir);
  if (!out.ok()) {
    RemoveAll(dir);
    return out.status();
  }
  if (absl::Status s = storage::Env::Default()->SyncDir(Parent(dir));
      !s.ok()) {
    RemoveAll(dir);
    return s;
  }
  return out;
}

// The directory protocol (docs/replication.md, "The directory swap and its
// recovery"), with what a crash after each step leaves and what
// RecoverReplaceDirectory makes of it:
//   1. recover what an earlier swap left        (as for that swap)
//   2. rename <to> -> <to>.replaced             <to> missing: rename back
//   3. rename <from> -> <to>                    both: remove <to>.replaced
//   4. fsync the parent                         both: remove <to>.replaced
//   5. remove <to>.replaced                     a part of it: remove it
// <from> is never touched by recovery: it is a "resync-<n>" directory that
// ReplicaSink::Open removes.
absl::Status RecoverReplaceDirectory(const std::string& to) {
  std::error_code ec;
  const std::string old = to + kReplacedSuffix;
  const bool had_old = std::filesystem::exists(old, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrFormat("stat %s: %s", old, ec.message()));
  }
  if (!had_old) return absl::OkStatus();
  const bool has_to = std::filesystem::exists(to, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrFormat("stat %s: %s", to, ec.message()));
  }
  if (!has_to) {
    // Stopped between the two renames: the old database is whole (it was
    // closed before the swap); the epoch file describes it or holds the
    // empty history ReplicaSink::Resync writes before a swap.
    std::filesystem::rename(old, to, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrFormat(
          "rename %s back to %s: %s", old, to, ec.message()));
    }
    return storage::Env::Default()->SyncDir(Parent(to));
  }
  // The new directory is in place (or <to>.replaced is a partly removed
  // leftover): the old one is garbage.
  std::filesystem::remove_all(old, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrFormat("remove %s: %s", old, ec.message()));
  }
  return absl::OkStatus();
}

absl::Status ReplaceDirectory(const std::string& from, const std::string& to) {
  if (absl::Status s = RecoverReplaceDirectory(to); !s.ok()) return s;
  std::error_code ec;
  const std::string old = to + kReplacedSuffix;
  const bool had = std::filesystem::exists(to, ec);
  if (had) {
    std::filesystem::rename(to, old, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrFormat(
          "rename %s to %s: %s", to, old, ec.message()));
    }
  }
  std::filesystem::rename(from, to, ec);
  if (ec) {
    const absl::Status moved = absl::UnavailableError(
        absl::StrFormat("rename %s to %s: %s", from, to, ec.message()));
    // Put the old directory back: the caller reopens it.
    if (had) {
      std::error_code back;
      std::filesystem::rename(old, to, back);
      if (back) {
        return absl::UnavailableError(absl::StrFormat(
            "%s; renaming %s back to %s: %s (the next start recovers it)",
            moved.message(), old, to, back.message()));
      }
    }
    return moved;
  }
  if (absl::Status s = storage::Env::Default()->SyncDir(Parent(to)); !s.ok()) {
    return s;
  }
  if (had) std::filesystem::remove_all(old, ec);
  return absl::OkStatus();
}

}  // namespace strata::cluster::replication
