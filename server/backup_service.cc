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
//
// An incremental backup (since_revision > 0) streams the change log
// instead (DB::GetUpdatesSince, the retained WAL): the same steps, each
// converting the next batches into a BackupChangeChunk of about
// backup_chunk_bytes; no checkpoint, nothing to remove. Format 2 of
// docs/backup-format.md.

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <set>
#include <thread>

#include "absl/strings/str_format.h"
#include "server/backup_archive.h"
#include "server/keyspace.h"
#include "server/kv_service.h"
#include "server/namespace_catalog.h"
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

// ---- Incremental backups (docs/backup-format.md, format 2) ----

// Fills the BackupBegin of an incremental backup of the changes after
// `since` and opens the change log. OUT_OF_RANGE (naming the oldest
// revision an incremental can start from) when those changes are gone.
absl::Status BeginIncrementalBackup(storage::DB* db, storage::Revision since,
                                    BackupState* st, v1::BackupResponse* out,
                                    RpcObserver* observer) {
  const storage::Revision compacted = db->CompactedRevision();
  const storage::Revision current = db->CurrentRevision();
  auto gone = [&](storage::Revision oldest) {
    return absl::OutOfRangeError(absl::StrFormat(
        "incremental backup since revision %d: the changes after it are no "
        "longer retained (the oldest revision an incremental backup can "
        "start from is %d, the compacted revision; see "
        "--history_retention): take a full backup",
        since, oldest));
  };
  if (since < compacted) return gone(compacted);
  if (since > current) {
    return absl::OutOfRangeError(absl::StrFormat(
        "incremental backup since revision %d: above the current revision "
        "%d",
        since, current));
  }
  absl::StatusOr<std::unique_ptr<storage::ChangeIterator>> changes =
      db->GetUpdatesSince(since + 1);
  if (!changes.ok()) {
    if (absl::IsOutOfRange(changes.status())) {
      return gone(db->CompactedRevision());
    }
    return changes.status();
  }
  st->changes = *std::move(changes);
  // The iterator ends at the revision current when it was made, at or
  // above `current`: the backup stops at `current`, named in its begin.
  st->from_revision = since;
  st->revision = current;
  st->hash = XXH64_createState();
  XXH64_reset(st->hash, 0);
  st->manifest.set_format_version(kBackupIncrementalFormatVersion);
  st->manifest.set_from_revision(ToWire(since));
  out->mutable_header()->set_revision(ToWire(st->revision));
  v1::BackupBegin* begin = out->mutable_begin();
  begin->set_format_version(kBackupIncrementalFormatVersion);
  begin->set_from_revision(ToWire(since));
  begin->set_revision(ToWire(st->revision));
  st->begun = true;
  st->observed = true;
  observer->OnBackupStarted();
  spdlog::info("incremental backup of revisions {}..{}", since + 1,
               st->revision);
  return absl::OkStatus();
}

void ToBackupBatch(const storage::ChangeBatch& in, v1::BackupChangeBatch* out) {
  out->set_revision(static_cast<int64_t>(in.revision));
  for (const storage::Change& c : in.changes) {
    v1::BackupChange* change = out->add_changes();
    change->set_key(c.key.data(), c.key.size());
    if (c.type == storage::Change::Type::kDelete) {
      change->set_deleted(true);
      continue;
    }
    change->set_value(c.value.data(), c.value.size());
    change->set_create_revision(static_cast<int64_t>(c.metadata.create_revision));
    change->set_version(static_cast<int64_t>(c.metadata.version));
    change->set_expire_at_unix_ms(
        static_cast<int64_t>(c.metadata.attributes.expire_at_unix_ms));
    change->set_lease(static_cast<int64_t>(c.metadata.attributes.lease));
    change->set_value_type(c.metadata.attributes.value_type);
  }
}

// Fills the next BackupChangeChunk (consecutive batches, about
// `chunk_bytes` of them or one), or at the end the manifest (*last).
absl::Status NextIncrementalChunk(uint64_t chunk_bytes, BackupState* st,
                                  v1::BackupResponse* out,
                                  RpcObserver* observer, bool* last) {
  out->mutable_header()->set_revision(ToWire(st->revision));
  v1::BackupChangeBatches batches;
  uint64_t size = 0;
  while (!st->changes_done) {
    if (!st->change_pending) {
      if (!st->changes->Next()) {
        const absl::Status& s = st->changes->status();
        if (absl::IsOutOfRange(s)) {
          // History retention passed while the backup streamed and removed
          // a WAL it had not read yet: the backup cannot be completed.
          return absl::OutOfRangeError(absl::StrFormat(
              "incremental backup since revision %d: the change log was "
              "trimmed while the backup streamed (--history_retention "
              "passed): take a full backup (%s)",
              st->from_revision, s.message()));
        }
        if (!s.ok()) return s;
        st->changes_done = true;
        break;
      }
      st->change_pending = true;
    }
    const storage::ChangeBatch& b = st->changes->batch();
    if (b.revision > st->revision) {  // Committed after the backup began.
      st->change_pending = false;
      st->changes_done = true;
      break;
    }
    const storage::Revision expected =
        st->from_revision + st->manifest.batches() + batches.batches_size() + 1;
    if (b.revision != expected) {
      return absl::InternalError(absl::StrFormat(
          "incremental backup: the change log gave revision %d, expected %d",
          b.revision, expected));
    }
    v1::BackupChangeBatch converted;
    ToBackupBatch(b, &converted);
    const uint64_t n = converted.ByteSizeLong() + 8;
    if (n > kBackupMaxChangeBatchBytes) {
      // Only a batch committed with --max_message_bytes raised can be this
      // large; its chunk would be a message every reader refuses as
      // corrupt, so refuse it here, naming it, instead of writing a backup
      // that cannot be restored.
      return absl::FailedPreconditionError(absl::StrFormat(
          "incremental backup: the batch committed at revision %d is %d "
          "bytes, above the %d bytes a backup chunk can carry (it was "
          "written with --max_message_bytes raised): take a full backup "
          "(which copies files, not batches) instead",
          b.revision, n, kBackupMaxChangeBatchBytes));
    }
    if (batches.batches_size() > 0 && size + n > chunk_bytes) break;
    size += n;
    *batches.add_batches() = std::move(converted);
    st->change_pending = false;
  }
  if (batches.batches_size() == 0) {
    const storage::Revision end =
        st->from_revision + st->manifest.batches();
    if (end != st->revision) {
      return absl::InternalError(absl::StrFormat(
          "incremental backup: the change log ended at revision %d, expected "
          "%d",
          end, st->revision));
    }
    st->manifest.set_revision(ToWire(st->revision));
    st->manifest.set_changes_xxh64(XXH64_digest(st->hash));
    *out->mutable_manifest() = st->manifest;
    *last = true;
    return absl::OkStatus();
  }
  v1::BackupChangeChunk* chunk = out->mutable_changes();
  chunk->set_first_revision(batches.batches(0).revision());
  chunk->set_last_revision(batches.batches(batches.batches_size() - 1).revision());
  uint64_t changes = 0;
  for (const v1::BackupChangeBatch& b : batches.batches()) {
    changes += static_cast<uint64_t>(b.changes_size());
  }
  std::string* data = chunk->mutable_data();
  if (!batches.SerializeToString(data)) {
    return absl::InternalError("incremental backup: cannot serialize a chunk");
  }
  chunk->set_xxh64(XXH64(data->data(), data->size(), 0));
  XXH64_update(st->hash, data->data(), data->size());
  st->manifest.set_batches(st->manifest.batches() +
                           static_cast<uint64_t>(batches.batches_size()));
  st->manifest.set_changes(st->manifest.changes() + changes);
  st->sent_bytes += data->size();
  observer->OnBackupBytes(data->size());
  *last = false;
  return absl::OkStatus();
}

// ---- Namespace backups (docs/backup-format.md, format 3) ----

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// A put of a stored entry as read (value and attributes; a restore writes
// it anew, so create revision and version are not carried).
v1::BackupChange ToBackupEntry(std::string_view key, std::string_view value,
                               const storage::KeyMetadata& metadata) {
  v1::BackupChange e;
  e.set_key(key.data(), key.size());
  e.set_value(value.data(), value.size());
  e.set_expire_at_unix_ms(
      static_cast<int64_t>(metadata.attributes.expire_at_unix_ms));
  e.set_lease(static_cast<int64_t>(metadata.attributes.lease));
  e.set_value_type(metadata.attributes.value_type);
  return e;
}

// Fills the BackupBegin of a backup of namespace `name` at a new snapshot
// and collects the system entries that belong to it: its catalog record,
// the next-id counter (so a restored node never reuses an id), its usage
// record, the TTL and lease index entries of its keys and the records of
// the leases they are attached to. Stored layouts: namespace_catalog.h,
// expiry.h. NOT_FOUND / INVALID_ARGUMENT for the name as Resolve says.
absl::Status BeginNamespaceBackup(storage::DB* db,
                                  const NamespaceCatalog& catalog,
                                  const std::string& name, BackupState* st,
                                  v1::BackupResponse* out,
                                  RpcObserver* observer) {
  if (absl::StatusOr<KeyspaceView> view = catalog.Resolve(name); !view.ok()) {
    return view.status();
  }
  st->snapshot = db->GetSnapshot();
  storage::ReadOptions ro;
  ro.snapshot = st->snapshot;
  st->revision = st->snapshot->revision();
  // The record as of the snapshot (the copy in memory may lag a delete).
  const std::string record_key = NamespaceCatalogKey(name);
  absl::StatusOr<storage::GetResult> got = db->GetWithMetadata(ro, record_key);
  if (!got.ok()) return got.status();
  const storage::GetResult& record = *got;
  if (!record.found) {
    return absl::NotFoundError(
        absl::StrFormat("namespace \"%s\" does not exist", name));
  }
  absl::StatusOr<NamespaceEntry> entry = DecodeNamespaceEntry(record.value);
  if (!entry.ok()) return entry.status();
  st->ns_name = name;
  st->ns_prefix = KeyspaceView(entry->id).Encode("");
  st->ns_pending.push_back(
      ToBackupEntry(record_key, record.value, record.metadata));
  for (const std::string& key :
       {NamespaceNextIdKey(), NamespaceUsageKey(entry->id)}) {
    absl::StatusOr<storage::GetResult> r = db->GetWithMetadata(ro, key);
    if (!r.ok()) return r.status();
    if (r->found) {
      st->ns_pending.push_back(ToBackupEntry(key, r->value, r->metadata));
    }
  }
  // Index entries are "tag/" be64 stored_key: keep this namespace's.
  std::set<std::string> leases;  // Lease record keys, in order.
  std::unique_ptr<storage::Iterator> it(db->NewIterator(ro));
  for (const char* tag : {"ttl/", "leasekey/"}) {
    const std::string prefix = SystemKey(tag);
    for (it->Seek(prefix); it->Valid() && StartsWith(it->key(), prefix);
         it->Next()) {
      std::string_view rest = it->key().substr(prefix.size());
      if (rest.size() < 8 || !StartsWith(rest.substr(8), st->ns_prefix)) {
        continue;
      }
      st->ns_pending.push_back(
          ToBackupEntry(it->key(), it->value(), it->metadata()));
      if (std::string_view(tag) == "leasekey/") {
        leases.insert(SystemKey("lease/") + std::string(rest.substr(0, 8)));
      }
    }
    if (!it->status().ok()) return it->status();
  }
  for (const std::string& key : leases) {
    absl::StatusOr<storage::GetResult> r = db->GetWithMetadata(ro, key);
    if (!r.ok()) return r.status();
    if (r->found) {
      st->ns_pending.push_back(ToBackupEntry(key, r->value, r->metadata));
    }
  }
  it->Seek(st->ns_prefix);
  st->ns_keys = std::move(it);
  st->hash = XXH64_createState();
  XXH64_reset(st->hash, 0);
  st->manifest.set_format_version(kBackupNamespaceFormatVersion);
  st->manifest.set_namespace_(name);
  out->mutable_header()->set_revision(ToWire(st->revision));
  v1::BackupBegin* begin = out->mutable_begin();
  begin->set_format_version(kBackupNamespaceFormatVersion);
  begin->set_revision(ToWire(st->revision));
  begin->set_namespace_(name);
  st->begun = true;
  st->observed = true;
  observer->OnBackupStarted();
  spdlog::info("backup of namespace {} at revision {}", name, st->revision);
  return absl::OkStatus();
}

// Fills the next BackupKeysChunk (entries of about `chunk_bytes`, or one),
// or at the end the manifest (*last).
absl::Status NextNamespaceChunk(uint64_t chunk_bytes, BackupState* st,
                                v1::BackupResponse* out,
                                RpcObserver* observer, bool* last) {
  out->mutable_header()->set_revision(ToWire(st->revision));
  v1::BackupChangeBatch batch;
  batch.set_revision(ToWire(st->revision));
  uint64_t size = 0;
  auto add = [&](v1::BackupChange e) -> absl::Status {
    const uint64_t n = e.ByteSizeLong() + 8;
    if (n > kBackupMaxChangeBatchBytes) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "namespace backup: key of %d bytes with its value is above the %d "
          "bytes a backup chunk can carry (written with --max_message_bytes "
          "raised): take a backup of the whole node",
          n, kBackupMaxChangeBatchBytes));
    }
    size += n;
    *batch.add_changes() = std::move(e);
    return absl::OkStatus();
  };
  while (!st->ns_pending.empty() && size < chunk_bytes) {
    if (absl::Status s = add(std::move(st->ns_pending.front())); !s.ok()) {
      return s;
    }
    st->ns_pending.pop_front();
  }
  while (size < chunk_bytes && st->ns_keys != nullptr &&
         st->ns_keys->Valid() && StartsWith(st->ns_keys->key(), st->ns_prefix)) {
    absl::Status s = add(ToBackupEntry(st->ns_keys->key(), st->ns_keys->value(),
                                       st->ns_keys->metadata()));
    if (!s.ok()) return s;
    st->ns_keys->Next();
  }
  if (st->ns_keys != nullptr && !st->ns_keys->status().ok()) {
    return st->ns_keys->status();
  }
  if (batch.changes_size() == 0) {
    st->manifest.set_revision(ToWire(st->revision));
    st->manifest.set_changes_xxh64(XXH64_digest(st->hash));
    *out->mutable_manifest() = st->manifest;
    *last = true;
    return absl::OkStatus();
  }
  v1::BackupKeysChunk* chunk = out->mutable_keys();
  std::string* data = chunk->mutable_data();
  if (!batch.SerializeToString(data)) {
    return absl::InternalError("namespace backup: cannot serialize a chunk");
  }
  chunk->set_xxh64(XXH64(data->data(), data->size(), 0));
  XXH64_update(st->hash, data->data(), data->size());
  st->manifest.set_changes(st->manifest.changes() +
                           static_cast<uint64_t>(batch.changes_size()));
  st->sent_bytes += data->size();
  observer->OnBackupBytes(data->size());
  *last = false;
  return absl::OkStatus();
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
  from_revision = 0;
  changes.reset();
  change_pending = false;
  changes_done = false;
  ns_name.clear();
  ns_prefix.clear();
  snapshot = nullptr;  // EndBackup released it.
  ns_pending.clear();
  ns_keys.reset();
}

void KvService::HandleBackup(BackupCall* call, StreamEvent event) {
  switch (event) {
    case StreamEvent::kStarted:
      if (call->request().since_revision() < 0) {
        call->Finish(absl::InvalidArgumentError(absl::StrFormat(
            "since_revision %d is negative (0 = a full backup)",
            call->request().since_revision())));
        return;
      }
      if (!call->request().namespace_().empty() &&
          call->request().since_revision() > 0) {
        call->Finish(absl::UnimplementedError(absl::StrFormat(
            "incremental backups of one namespace (\"%s\") are not "
            "supported: take a full backup of the namespace, or an "
            "incremental backup of the whole node (no namespace)",
            call->request().namespace_())));
        return;
      }
      if (call->request().since_revision() == 0 &&
          call->request().namespace_().empty() &&
          options_.backup_tmp_dir.empty()) {
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
  st.changes.reset();  // Before the DB may go away.
  st.ns_keys.reset();
  if (st.snapshot != nullptr) db_->ReleaseSnapshot(st.snapshot);
  st.snapshot = nullptr;
  if (!st.dir.empty()) RemoveDirectory(st.dir);
  st.dir.clear();
  if (st.observed) {
    observer_->OnBackupFinished(status.ok(), SecondsSince(st.start));
    st.observed = false;
  }
  if (status.ok() && !st.ns_name.empty()) {
    spdlog::info(
        "backup of namespace {} at revision {} done: {} entries, {} bytes in "
        "{:.1f} s",
        st.ns_name, st.revision, st.manifest.changes(), st.sent_bytes,
        SecondsSince(st.start));
  } else if (status.ok() && st.from_revision > 0) {
    spdlog::info(
        "incremental backup of revisions {}..{} done: {} batches, {} changes, "
        "{} bytes in {:.1f} s",
        st.from_revision + 1, st.revision, st.manifest.batches(),
        st.manifest.changes(), st.sent_bytes, SecondsSince(st.start));
  } else if (status.ok()) {
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
  if (call->request().since_revision() > 0) {
    return BeginIncrementalBackup(
        db_, static_cast<storage::Revision>(call->request().since_revision()),
        &st, call->mutable_response(), observer_);
  }
  if (!call->request().namespace_().empty()) {
    return BeginNamespaceBackup(db_, catalog_, call->request().namespace_(),
                                &st, call->mutable_response(), observer_);
  }
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
  st.manifest.set_format_version(kBackupFullFormatVersion);
  st.manifest.set_revision(ToWire(st.revision));
  v1::BackupResponse* out = call->mutable_response();
  out->mutable_header()->set_revision(ToWire(st.revision));
  v1::BackupBegin* begin = out->mutable_begin();
  begin->set_format_version(kBackupFullFormatVersion);
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
  if (st.from_revision > 0) {
    return NextIncrementalChunk(options_.backup_chunk_bytes, &st,
                                call->mutable_response(), observer_, last);
  }
  if (!st.ns_name.empty()) {
    return NextNamespaceChunk(options_.backup_chunk_bytes, &st,
                              call->mutable_response(), observer_, last);
  }
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
