// The Backup RPC (docs/backup.md): a consistent online backup of the whole
// store, streamed as chunks of the files of a checkpoint
// (DB::CreateCheckpoint) made in ServerOptions::backup_tmp_dir.
//
// Where it runs: every step (the checkpoint, each chunk's read) is a
// blocking-pool task; the polling thread only reacts to write completions
// by scheduling the next step, so at most one task or write of a backup is
// pending at any time and the BackupState needs no lock. The checkpoint's
// SSTables are hard links, so the live database's compactions never wait
// for a backup and the engine's pins last only while the checkpoint is
// made. Whatever ends the stream (done, an error, the client cancelling or
// going away, shutdown) removes the checkpoint directory at once.

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

#include "absl/strings/str_format.h"
#include "server/backup_archive.h"
#include "server/kv_service.h"
#include "spdlog/spdlog.h"

namespace strata::server {
namespace {

void RemoveDirectory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) spdlog::warn("backup: removing {}: {}", dir, ec.message());
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       start)
      .count();
}

}  // namespace

void BackupState::Reset() {
  file.reset();
  if (hash != nullptr) XXH64_freeState(hash);
  hash = nullptr;
  dir.clear();
  revision = 0;
  files.clear();
  next_file = 0;
  offset = 0;
  manifest.Clear();
  sent_bytes = 0;
  begun = false;
  observed = false;
}

void KvService::HandleBackup(BackupCall* call, StreamEvent event) {
  switch (event) {
    case StreamEvent::kStarted:
      if (call->request().since_revision() != 0) {
        call->Finish(absl::UnimplementedError(
            "incremental backups (since_revision) are not supported yet: "
            "take a full backup (since_revision = 0)"));
        return;
      }
      if (options_.backup_tmp_dir.empty()) {
        call->Finish(absl::FailedPreconditionError(
            "backups are not configured on this server (no backup "
            "directory)"));
        return;
      }
      call->state().start = std::chrono::steady_clock::now();
      ScheduleBackupStep(call);
      return;
    case StreamEvent::kWriteDone:
    case StreamEvent::kWriteFailed:
      // After a failed write cancelled() is true: the next step ends it.
      call->mutable_response()->Clear();
      ScheduleBackupStep(call);
      return;
    case StreamEvent::kCancelled:
      // A step or a write is pending until Finish; the next step sees
      // cancelled() and cleans up.
      return;
  }
}

void KvService::ScheduleBackupStep(BackupCall* call) {
  if (!pool_->Schedule([this, call] { BackupStep(call); })) {
    // Pool stopped (shutdown only): clean up here.
    EndBackup(call, absl::UnavailableError("server is shutting down"));
  }
}

void KvService::EndBackup(BackupCall* call, const absl::Status& status,
                          const v1::BackupResponse* last) {
  BackupState& st = call->state();
  st.file.reset();
  if (!st.dir.empty()) RemoveDirectory(st.dir);
  st.dir.clear();
  if (st.observed) {
    observer_->OnBackupFinished(status.ok(), SecondsSince(st.start));
    st.observed = false;
  }
  if (status.ok()) {
    spdlog::info("backup at revision {} done: {} files, {} bytes in {:.1f} s",
                 st.revision, st.files.size(), st.sent_bytes,
                 SecondsSince(st.start));
  } else {
    spdlog::warn("backup ended: {}", status.ToString());
  }
  call->Finish(status, last);
}

absl::Status KvService::BackupBegin(BackupCall* call) {
  BackupState& st = call->state();
  storage::Env* env = storage::Env::Default();
  if (absl::Status s = env->CreateDir(options_.backup_tmp_dir); !s.ok()) {
    return s;
  }
  st.dir = absl::StrFormat("%s/backup-%d-%d", options_.backup_tmp_dir,
                           ::getpid(), backup_counter_.fetch_add(1));
  absl::StatusOr<storage::Revision> revision = db_->CreateCheckpoint(st.dir);
  if (!revision.ok()) {
    // A failed checkpoint removes its files; the directory is ours.
    return revision.status();
  }
  st.revision = *revision;
  absl::StatusOr<std::vector<std::string>> names = env->GetChildren(st.dir);
  if (!names.ok()) return names.status();
  std::sort(names->begin(), names->end());
  uint64_t total = 0;
  for (const std::string& name : *names) {
    absl::StatusOr<uint64_t> size = env->GetFileSize(st.dir + "/" + name);
    if (!size.ok()) return size.status();
    st.files.emplace_back(name, *size);
    total += *size;
  }
  st.hash = XXH64_createState();
  XXH64_reset(st.hash, 0);
  st.manifest.set_format_version(kBackupFormatVersion);
  st.manifest.set_revision(ToWire(st.revision));
  v1::BackupResponse* out = call->mutable_response();
  out->mutable_header()->set_revision(ToWire(st.revision));
  v1::BackupBegin* begin = out->mutable_begin();
  begin->set_format_version(kBackupFormatVersion);
  begin->set_revision(ToWire(st.revision));
  begin->set_total_bytes(total);
  begin->set_files(static_cast<uint32_t>(st.files.size()));
  st.begun = true;
  st.observed = true;
  observer_->OnBackupStarted();
  spdlog::info("backup at revision {}: {} files, {} bytes", st.revision,
               st.files.size(), total);
  return absl::OkStatus();
}

absl::Status KvService::BackupNextChunk(BackupCall* call, bool* last) {
  BackupState& st = call->state();
  storage::Env* env = storage::Env::Default();
  v1::BackupResponse* out = call->mutable_response();
  out->mutable_header()->set_revision(ToWire(st.revision));
  // Files done (and empty ones) go into the manifest.
  while (st.next_file < st.files.size() &&
         st.offset == st.files[st.next_file].second) {
    v1::BackupFileInfo* info = st.manifest.add_files();
    info->set_name(st.files[st.next_file].first);
    info->set_size(st.files[st.next_file].second);
    info->set_xxh64(XXH64_digest(st.hash));
    XXH64_reset(st.hash, 0);
    st.file.reset();
    st.next_file++;
    st.offset = 0;
  }
  if (st.next_file == st.files.size()) {
    *out->mutable_manifest() = st.manifest;
    *last = true;
    return absl::OkStatus();
  }
  const auto& [name, size] = st.files[st.next_file];
  const std::string path = st.dir + "/" + name;
  if (st.file == nullptr) {
    absl::StatusOr<std::unique_ptr<storage::SequentialFile>> f =
        env->NewSequentialFile(path);
    if (!f.ok()) return f.status();
    st.file = *std::move(f);
  }
  const size_t want = static_cast<size_t>(std::min<uint64_t>(
      options_.backup_chunk_bytes, size - st.offset));
  v1::BackupChunk* chunk = out->mutable_chunk();
  std::string* data = chunk->mutable_data();
  data->resize(want);
  size_t got = 0;
  while (got < want) {
    absl::StatusOr<std::string_view> r =
        st.file->Read(want - got, data->data() + got);
    if (!r.ok()) return r.status();
    if (r->empty()) break;
    if (r->data() != data->data() + got) {
      std::memmove(data->data() + got, r->data(), r->size());
    }
    got += r->size();
  }
  if (got != want) {
    return absl::InternalError(absl::StrFormat(
        "backup: %s ended at %d bytes, expected %d", path, st.offset + got,
        size));
  }
  chunk->set_file(name);
  chunk->set_offset(st.offset);
  chunk->set_xxh64(XXH64(data->data(), data->size(), 0));
  XXH64_update(st.hash, data->data(), data->size());
  st.offset += got;
  st.sent_bytes += got;
  observer_->OnBackupBytes(got);
  *last = false;
  return absl::OkStatus();
}

void KvService::BackupStep(BackupCall* call) {
  BackupState& st = call->state();
  if (call->cancelled()) {
    EndBackup(call, absl::CancelledError("backup cancelled"));
    return;
  }
  if (stopping_.load()) {
    EndBackup(call, absl::UnavailableError("server is shutting down"));
    return;
  }
  if (!st.begun) {
    absl::Status s = BackupBegin(call);
    if (!s.ok()) {
      EndBackup(call, s);
      return;
    }
    call->Write(*call->mutable_response());
    return;
  }
  // The rate limit: this chunk goes no earlier than the bytes sent so far
  // allow. Waits in short slices so cancellation and shutdown are prompt.
  if (const uint64_t rate = options_.backup_rate_limit_bytes; rate > 0) {
    const auto due =
        st.start + std::chrono::microseconds(static_cast<int64_t>(
                       static_cast<double>(st.sent_bytes) * 1e6 /
                       static_cast<double>(rate)));
    while (std::chrono::steady_clock::now() < due) {
      if (call->cancelled()) {
        EndBackup(call, absl::CancelledError("backup cancelled"));
        return;
      }
      if (stopping_.load()) {
        EndBackup(call, absl::UnavailableError("server is shutting down"));
        return;
      }
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(
              due - std::chrono::steady_clock::now(),
              std::chrono::milliseconds(50)));
    }
  }
  bool last = false;
  absl::Status s = BackupNextChunk(call, &last);
  if (!s.ok()) {
    EndBackup(call, s);
    return;
  }
  if (last) {
    EndBackup(call, absl::OkStatus(), call->mutable_response());
    return;
  }
  call->Write(*call->mutable_response());
}

}  // namespace strata::server
