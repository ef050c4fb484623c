#include "cluster/replication/replica.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpcpp/grpcpp.h"
#include "spdlog/spdlog.h"
#include "strata/storage/change_log.h"

namespace strata::cluster::replication {

absl::StatusOr<std::unique_ptr<ReplicaSink>> ReplicaSink::Open(
    storage::DB* db, Options options) {
  if (db == nullptr || !options.swap || !options.connect ||
      options.range_dir.empty()) {
    return absl::InvalidArgumentError(
        "ReplicaSink: db, range_dir, connect and swap are required");
  }
  const std::string path =
      absl::StrCat(options.range_dir, "/", kEpochFileName);
  absl::StatusOr<EpochFileContents> contents = ReadEpochFile(path);
  if (absl::IsNotFound(contents.status())) {
    EpochFileContents fresh;
    fresh.range_id = options.range_id;
    if (absl::Status s = WriteEpochFile(path, fresh); !s.ok()) return s;
    contents = fresh;
  }
  if (!contents.ok()) return contents.status();
  // A re-sync interrupted by a crash leaves its partial checkpoint.
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator(options.range_dir, ec)) {
    if (e.path().filename().string().rfind("resync-", 0) == 0) {
      std::filesystem::remove_all(e.path(), ec);
    }
  }
  if (contents->range_id != options.range_id) {
    return absl::DataLossError(absl::StrFormat(
        "epoch file %s belongs to range %d, not %d", path, contents->range_id,
        options.range_id));
  }
  return std::unique_ptr<ReplicaSink>(
      new ReplicaSink(db, std::move(options), *std::move(contents)));
}

ReplicaSink::ReplicaSink(storage::DB* db, Options options,
                         EpochFileContents contents)
    : options_(std::move(options)),
      epoch_path_(absl::StrCat(options_.range_dir, "/", kEpochFileName)),
      db_(db),
      pinned_db_(db),
      state_(std::move(contents)) {
  stats_.durable_revision = db_->CurrentRevision();
}

absl::Status ReplicaSink::CheckUsable(Epoch epoch) {
  if (!broken_.ok()) return broken_;
  if (resyncing_) {
    return absl::UnavailableError(absl::StrFormat(
        "range %d: this replica is being rebuilt from a checkpoint",
        options_.range_id));
  }
  if (epoch < state_.highest_epoch) {
    stats_.refused_stale++;
    return StaleEpochError(options_.range_id, epoch, state_.highest_epoch);
  }
  return absl::OkStatus();
}

absl::Status ReplicaSink::Persist() {
  return WriteEpochFile(epoch_path_, state_);
}

absl::StatusOr<ReplicaSink::StartResult> ReplicaSink::Start(
    Epoch epoch, const NodeId& primary, const EpochHistory& history) {
  if (absl::Status s = ValidateEpochHistory(history); !s.ok()) return s;
  if (history.empty() || history.back().epoch != epoch) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "range %d: the epoch history of %s does not end with its epoch %d",
        options_.range_id, primary, epoch));
  }
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckUsable(epoch); !s.ok()) return s;
  const Revision last = db_->CurrentRevision();
  // A failed Apply may have left batches applied but not fsynced: the
  // revision offered as durable must be.
  if (absl::Status s = db_->SyncWAL(); !s.ok()) return s;
  StartResult out;
  out.durable_revision = last;
  const EpochFileContents before = state_;
  state_.highest_epoch = epoch;
  if (absl::Status d = CheckNotDiverged(state_.history, last, history);
      !d.ok()) {
    out.resync_reason = std::string(d.message());
  } else {
    // This log is a prefix of the primary's: from now on the primary's
    // history describes it.
    state_.history = history;
  }
  if (!(state_ == before)) {
    if (absl::Status s = Persist(); !s.ok()) {
      state_ = before;
      return s;
    }
  }
  spdlog::info("range {}: primary {} at epoch {} {}", options_.range_id,
               primary, epoch,
               out.resync_reason.empty()
                   ? absl::StrCat("ships from revision ", last + 1)
                   : absl::StrCat("needs a re-sync: ", out.resync_reason));
  return out;
}

absl::StatusOr<Revision> ReplicaSink::Apply(Epoch epoch,
                                            const v1::AppendBatches& batches) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckUsable(epoch); !s.ok()) return s;
  const int n = batches.batches_size();
  for (int i = 0; i < n; ++i) {
    const v1::AppendBatch& b = batches.batches(i);
    storage::ChangeBatch batch;
    if (absl::Status s = storage::ChangeBatch::Decode(
            std::make_shared<const std::string>(b.record()), &batch);
        !s.ok()) {
      return absl::DataLossError(absl::StrFormat(
          "range %d: batch at revision %d: %s", options_.range_id,
          b.revision(), s.message()));
    }
    if (static_cast<int64_t>(batch.revision) != b.revision()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "range %d: batch sent as revision %d holds revision %d",
          options_.range_id, b.revision(), batch.revision));
    }
    const Revision expected = db_->CurrentRevision() + 1;
    if (batch.revision != expected) {
      return absl::OutOfRangeError(absl::StrFormat(
          "range %d: batch at revision %d, this replica expects %d",
          options_.range_id, batch.revision, expected));
    }
    storage::WriteOptions wo;
    // One fsync covers the message: the WAL is written in order.
    wo.sync = i + 1 == n;
    if (absl::Status s = db_->ApplyCommittedBatch(wo, batch); !s.ok()) {
      return s;
    }
    stats_.batches_applied++;
  }
  stats_.durable_revision = db_->CurrentRevision();
  return stats_.durable_revision;
}

namespace {

// A failed FetchCheckpoint as this replica's error. FAILED_PRECONDITION
// there (the primary is at another epoch by now) becomes Unavailable (try
// again): it is no stale-epoch refusal of this replica, and a primary
// built before the stale-epoch trailer takes any FAILED_PRECONDITION on
// the Append stream for one and fences itself.
absl::Status FetchError(RangeId range, const NodeId& primary,
                        const grpc::Status& rpc) {
  absl::StatusCode code = static_cast<absl::StatusCode>(rpc.error_code());
  if (code == absl::StatusCode::kFailedPrecondition) {
    code = absl::StatusCode::kUnavailable;
  }
  return absl::Status(
      code, absl::StrFormat("range %d: fetching a checkpoint from %s: %s",
                            range, primary, rpc.error_message()));
}

}  // namespace

absl::StatusOr<ReceivedCheckpoint> ReplicaSink::Fetch(Epoch epoch,
                                                      const NodeId& primary,
                                                      const std::string& dir) {
  std::unique_ptr<v1::Replication::StubInterface> stub =
      options_.connect(primary);
  if (stub == nullptr) {
    return absl::UnavailableError(absl::StrFormat(
        "range %d: no connection to primary %s", options_.range_id, primary));
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.fetch_timeout));
  v1::FetchCheckpointRequest req;
  req.set_range_id(options_.range_id);
  req.set_epoch(epoch);
  std::unique_ptr<grpc::ClientReaderInterface<v1::FetchCheckpointResponse>>
      reader = stub->FetchCheckpoint(&ctx, req);
  bool ended = false;  // The stream ended (a Read failed).
  absl::StatusOr<ReceivedCheckpoint> got = ReceiveCheckpoint(
      [&](v1::FetchCheckpointResponse* m) {
        ended = !reader->Read(m);
        return !ended;
      },
      dir);
  if (!got.ok()) {
    // If the primary (or the deadline) ended the stream, its status says
    // why; cancelling it first would replace that status by CANCELLED.
    // Otherwise what was received was wrong: stop the primary sending.
    if (!ended) ctx.TryCancel();
    grpc::Status rpc = reader->Finish();
    if (!rpc.ok() && rpc.error_code() != grpc::StatusCode::CANCELLED) {
      return FetchError(options_.range_id, primary, rpc);
    }
    return got.status();
  }
  // The stream must end after the manifest.
  v1::FetchCheckpointResponse extra;
  if (reader->Read(&extra)) {
    ctx.TryCancel();
    reader->Finish();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return absl::DataLossError(absl::StrFormat(
        "range %d: checkpoint from %s: messages after the manifest",
        options_.range_id, primary));
  }
  grpc::Status rpc = reader->Finish();
  if (!rpc.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return FetchError(options_.range_id, primary, rpc);
  }
  return got;
}

absl::StatusOr<Revision> ReplicaSink::Resync(Epoch epoch,
                                             const NodeId& primary) {
  std::string dir;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckUsable(epoch); !s.ok()) return s;
    resyncing_ = true;
    dir = absl::StrFormat("%s/resync-%d", options_.range_dir,
                          resync_counter_++);
  }
  std::error_code ec;
  spdlog::info("range {}: re-syncing from a checkpoint of {} (epoch {})",
               options_.range_id, primary, epoch);
  absl::StatusOr<ReceivedCheckpoint> got = Fetch(epoch, primary, dir);
  absl::MutexLock lock(&mu_);
  resyncing_ = false;
  if (got.ok() && !broken_.ok()) {  // Closed while fetching.
    std::filesystem::remove_all(dir, ec);
    return broken_;
  }
  if (!got.ok()) {
    spdlog::warn("range {}: re-sync failed: {}", options_.range_id,
                 got.status().ToString());
    return got.status();
  }
  if (got->history.empty() || got->history.back().epoch != epoch) {
    std::filesystem::remove_all(dir, ec);
    return absl::UnavailableError(absl::StrFormat(
        "range %d: the checkpoint from %s is not of epoch %d",
        options_.range_id, primary, epoch));
  }
  if (epoch < state_.highest_epoch) {  // Superseded while fetching.
    std::filesystem::remove_all(dir, ec);
    stats_.refused_stale++;
    return StaleEpochError(options_.range_id, epoch, state_.highest_epoch);
  }
  // While the swap runs the epoch file describes neither database: after a
  // crash that left the checkpoint in place but the old history in the
  // file, the checkpoint's revisions would be attributed to this replica's
  // old epochs, which can hide a divergence. An empty history over a
  // database that holds revisions makes the next Start re-sync instead.
  const EpochHistory old_history = state_.history;
  state_.history.clear();
  if (absl::Status s = Persist(); !s.ok()) {
    state_.history = old_history;
    std::filesystem::remove_all(dir, ec);
    return s;
  }
  SwapResult swapped;
  {
    // No ReadDb may read the old database while the hook closes it.
    absl::MutexLock pin(&pin_mu_);
    swapped = options_.swap(dir);
    pinned_db_ = swapped.db;
  }
  // The object the sink had may be gone (closed, maybe reopened anew).
  db_ = swapped.db;
  if (swapped.status.ok() && db_ == nullptr) {
    swapped.status = absl::InternalError("the swap hook returned no database");
  }
  if (!swapped.status.ok()) {
    std::filesystem::remove_all(dir, ec);
    if (db_ == nullptr) {
      broken_ = absl::UnavailableError(absl::StrFormat(
          "range %d: no database is open after a failed re-sync swap (%s); "
          "restart the node",
          options_.range_id, swapped.status.ToString()));
      spdlog::error("{}", std::string(broken_.message()));
      return swapped.status;
    }
    // The old database is still in place: so is its history.
    state_.history = old_history;
    if (absl::Status s = Persist(); !s.ok()) {
      spdlog::warn("range {}: restoring the epoch file after a failed swap: "
                   "{} (the next start re-syncs)",
                   options_.range_id, s.ToString());
    }
    return swapped.status;
  }
  state_.highest_epoch = epoch;
  state_.history = got->history;
  if (absl::Status s = Persist(); !s.ok()) {
    // The database is the checkpoint now but the epoch file still
    // describes the old one: refuse everything until restarted.
    broken_ = s;
    return s;
  }
  stats_.resyncs++;
  stats_.durable_revision = db_->CurrentRevision();
  spdlog::info("range {}: re-synced to revision {} ({} files, {} bytes)",
               options_.range_id, got->revision, got->files, got->bytes);
  return stats_.durable_revision;
}

void ReplicaSink::Close() {
  absl::MutexLock lock(&mu_);
  if (broken_.ok()) {
    broken_ = absl::UnavailableError(absl::StrFormat(
        "range %d: this replica is closed", options_.range_id));
  }
  // Waits for running ReadDb calls; later ones get nullptr.
  absl::MutexLock pin(&pin_mu_);
  pinned_db_ = nullptr;
}

ReplicaSink::Stats ReplicaSink::GetStats() const {
  absl::MutexLock lock(&mu_);
  Stats out = stats_;
  out.highest_epoch = state_.highest_epoch;
  return out;
}

EpochHistory ReplicaSink::epoch_history() const {
  absl::MutexLock lock(&mu_);
  return state_.history;
}

void ReplicaSink::ReadDb(absl::FunctionRef<void(storage::DB*)> read) const {
  absl::ReaderMutexLock pin(&pin_mu_);
  read(pinned_db_);
}

}  // namespace strata::cluster::replication
