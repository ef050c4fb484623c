#include "cluster/replication/primary.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "cluster/replication/service.h"
#include "spdlog/spdlog.h"

namespace strata::cluster::replication {

// One replica's stream. The fields below `thread` are guarded by the
// source's mu_.
struct ReplicationSource::Peer {
  NodeId id;
  std::unique_ptr<v1::Replication::Stub> stub;
  std::thread thread;

  bool connected = false;  // Accepted, shipping.
  bool broken = false;     // The current stream's reader saw its end.
  Revision acked = 0;
  absl::Time caught_up_at;  // When acked last reached committed_.
  bool lagging_reported = false;
  uint64_t resyncs = 0;
  // Its last ReplicaDiskSpace while connected (disk_known false: none).
  bool disk_known = false;
  uint64_t disk_free = 0;
  uint64_t disk_min_free = 0;
  // Whether that report puts it below its reserve (0: none).
  bool below_reserve() const {
    return disk_known && disk_min_free > 0 && disk_free < disk_min_free;
  }
  grpc::ClientContext* ctx = nullptr;  // The live stream's, for Fence.
  // Only the peer's thread: the last refusal logged (not repeated while the
  // replica keeps giving it).
  std::string last_refusal;
};

namespace {

// Whether a stream's status says that this primary has been replaced: only
// a replica's stale-epoch refusal (StaleEpochError, carried by the
// kStaleEpochTrailer trailer), and only if the epoch it has seen is above
// `mine` (anything else would be a confused replica, not a newer primary).
//
// Replicas built before the trailer existed refuse a stale epoch with a
// plain FAILED_PRECONDITION, indistinguishable from their other
// FAILED_PRECONDITIONs (a DB without allow_committed_batches, one shutting
// down). It is treated as a failing replica, never as a fence: fencing on
// it would let one misconfigured replica stop a healthy primary, while a
// primary that really was replaced is fenced anyway by the control plane
// (its lease, the range map's newer epoch) and cannot get a write
// acknowledged by that replica meanwhile (the watermark waits for it until
// the in-sync set drops it, a change the stale epoch cannot make in etcd).
bool IsSuperseded(const absl::Status& s, Epoch mine) {
  std::optional<Epoch> seen = StaleEpochOf(s);
  return seen.has_value() && *seen > mine;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReplicationSource>> ReplicationSource::Create(
    storage::DB* db, Options options) {
  if (db == nullptr) return absl::InvalidArgumentError("ReplicationSource: no db");
  if (absl::Status s = ValidateEpochHistory(options.history); !s.ok()) return s;
  if (options.history.empty() || options.history.back().epoch != options.epoch) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ReplicationSource: range %d: the epoch history does not end with "
        "epoch %d",
        options.range_id, options.epoch));
  }
  for (const Replica& r : options.replicas) {
    if (r.channel == nullptr || r.id.empty() || r.id == options.self) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "ReplicationSource: range %d: bad replica \"%s\"", options.range_id,
          r.id));
    }
  }
  return std::unique_ptr<ReplicationSource>(
      new ReplicationSource(db, std::move(options)));
}

ReplicationSource::ReplicationSource(storage::DB* db, Options options)
    : db_(db), options_(std::move(options)) {
  const Revision current = db_->CurrentRevision();
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    committed_ = current;
    for (const Replica& r : options_.replicas) in_sync_.push_back(r.id);
    UpdateWatermarkLocked();
  }
  for (const Replica& r : options_.replicas) {
    auto peer = std::make_unique<Peer>();
    peer->id = r.id;
    peer->stub = v1::Replication::NewStub(r.channel);
    peer->caught_up_at = now;
    peers_.push_back(std::move(peer));
  }
  notifier_ = std::thread([this] { RunNotifier(); });
  for (auto& peer : peers_) {
    Peer* p = peer.get();
    p->thread = std::thread([this, p] { RunPeer(p); });
  }
}

ReplicationSource::~ReplicationSource() {
  {
    absl::MutexLock lock(&mu_);
    FenceLocked(absl::UnavailableError("the replication source is shut down"));
    stopping_ = true;
    work_cv_.SignalAll();
    notify_cv_.SignalAll();
  }
  for (auto& peer : peers_) peer->thread.join();
  notifier_.join();
}

void ReplicationSource::OnCommit(
    const std::vector<storage::ChangeBatch>& batches) {
  if (batches.empty()) return;
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  for (auto& peer : peers_) {
    // It was caught up until this commit: its lag starts now.
    if (peer->acked >= committed_) peer->caught_up_at = now;
  }
  if (!recent_.empty() &&
      batches.front().revision != recent_.back().revision + 1) {
    // Commits were missed (the listener was away): the buffer must stay
    // consecutive, so start it again; the streams read the change log.
    recent_.clear();
  }
  for (const storage::ChangeBatch& b : batches) recent_.push_back(b);
  while (recent_.size() > options_.buffer_batches) recent_.pop_front();
  committed_ = batches.back().revision;
  UpdateWatermarkLocked();
  work_cv_.SignalAll();
}

void ReplicationSource::SetInSync(const std::vector<NodeId>& in_sync) {
  absl::MutexLock lock(&mu_);
  in_sync_.clear();
  for (const NodeId& id : in_sync) {
    if (id != options_.self) in_sync_.push_back(id);
  }
  UpdateWatermarkLocked();
  UpdateReserveShortLocked();
}

void ReplicationSource::SetDiskSpaceLocked(Peer* peer,
                                           const v1::ReplicaDiskSpace* space) {
  const bool was_below = peer->below_reserve();
  peer->disk_known = space != nullptr;
  peer->disk_free = space != nullptr ? space->free_bytes() : 0;
  peer->disk_min_free = space != nullptr ? space->min_free_bytes() : 0;
  const bool below = peer->below_reserve();
  if (below != was_below && peer->connected) {
    if (below) {
      spdlog::warn("range {}: replica {} reports its disk below its reserve "
                   "({} bytes free, --min_free_disk_bytes={} there)",
                   options_.range_id, peer->id, peer->disk_free,
                   peer->disk_min_free);
    } else if (space != nullptr) {
      spdlog::info("range {}: replica {} has disk space again ({} bytes "
                   "free)",
                   options_.range_id, peer->id, peer->disk_free);
    }
  }
  UpdateReserveShortLocked();
}

const ReplicationSource::Peer* ReplicationSource::ShortInSyncPeerLocked()
    const {
  for (const NodeId& id : in_sync_) {
    for (const auto& peer : peers_) {
      if (peer->id == id && peer->connected && peer->below_reserve()) {
        return peer.get();
      }
    }
  }
  return nullptr;
}

void ReplicationSource::UpdateReserveShortLocked() {
  reserve_short_.store(ShortInSyncPeerLocked() != nullptr,
                       std::memory_order_relaxed);
}

absl::Status ReplicationSource::InSyncDiskReserve() const {
  if (!reserve_short_.load(std::memory_order_relaxed)) {
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  const Peer* peer = ShortInSyncPeerLocked();
  if (peer == nullptr) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "disk space below reserve on replica %s of range %d: %d bytes free "
      "(--min_free_disk_bytes=%d there); deletes are still accepted",
      peer->id, options_.range_id, peer->disk_free, peer->disk_min_free));
}

Revision ReplicationSource::replicated_revision() const {
  absl::MutexLock lock(&mu_);
  return watermark_;
}

void ReplicationSource::UpdateWatermarkLocked() {
  Revision w = committed_;
  for (const NodeId& id : in_sync_) {
    Revision acked = 0;
    for (const auto& peer : peers_) {
      if (peer->id == id) acked = peer->acked;
    }
    w = std::min(w, acked);
  }
  if (w <= watermark_) return;
  watermark_ = w;
  auto end = waiters_.upper_bound(watermark_);
  for (auto it = waiters_.begin(); it != end; ++it) {
    ready_.push_back({std::move(it->second.done), absl::OkStatus()});
  }
  waiters_.erase(waiters_.begin(), end);
  notify_cv_.Signal();
}

void ReplicationSource::WaitReplicated(Revision revision, absl::Time deadline,
                                       WaitCallback done) {
  absl::MutexLock lock(&mu_);
  if (!fenced_.ok()) {
    ready_.push_back({std::move(done), fenced_});
  } else if (revision <= watermark_) {
    ready_.push_back({std::move(done), absl::OkStatus()});
  } else {
    waiters_.emplace(revision, Waiter{deadline, std::move(done)});
  }
  notify_cv_.Signal();
}

void ReplicationSource::FenceLocked(const absl::Status& why) {
  if (!fenced_.ok()) return;
  fenced_ = absl::UnavailableError(absl::StrFormat(
      "range %d: fenced at epoch %d: %s", options_.range_id, options_.epoch,
      why.message()));
  for (auto& [revision, w] : waiters_) {
    ready_.push_back({std::move(w.done), fenced_});
  }
  waiters_.clear();
  for (auto& peer : peers_) {
    if (peer->ctx != nullptr) peer->ctx->TryCancel();
  }
  work_cv_.SignalAll();
  notify_cv_.Signal();
}

void ReplicationSource::Fence(const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  FenceLocked(why);
}

bool ReplicationSource::fenced() const {
  absl::MutexLock lock(&mu_);
  return !fenced_.ok();
}

void ReplicationSource::RunNotifier() {
  const absl::Duration tick =
      std::max(options_.lag_timeout / 4, absl::Milliseconds(10));
  while (true) {
    std::vector<Ready> ready;
    std::vector<std::pair<NodeId, absl::Duration>> lagging;
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      absl::Time wake = absl::Now() + tick;
      if (!waiters_.empty()) {
        for (const auto& [revision, w] : waiters_) {
          wake = std::min(wake, w.deadline);
        }
      }
      if (ready_.empty() && !stopping_) notify_cv_.WaitWithDeadline(&mu_, wake);
      const absl::Time now = absl::Now();
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (it->second.deadline <= now) {
          ready_.push_back({std::move(it->second.done),
                            absl::DeadlineExceededError(absl::StrFormat(
                                "range %d: revision %d not replicated to the "
                                "in-sync set in time (replicated: %d)",
                                options_.range_id, it->first, watermark_))});
          it = waiters_.erase(it);
        } else {
          ++it;
        }
      }
      for (auto& peer : peers_) {
        if (peer->acked >= committed_) {
          peer->lagging_reported = false;
          continue;
        }
        // Only an in-sync replica holds the watermark back.
        if (std::find(in_sync_.begin(), in_sync_.end(), peer->id) ==
            in_sync_.end()) {
          continue;
        }
        const absl::Duration lag = now - peer->caught_up_at;
        if (lag >= options_.lag_timeout && !peer->lagging_reported &&
            fenced_.ok()) {
          peer->lagging_reported = true;
          lagging.emplace_back(peer->id, lag);
        }
      }
      ready.swap(ready_);
      stop = stopping_ && ready.empty();
    }
    for (Ready& r : ready) r.done(r.status);
    if (options_.on_lagging) {
      for (const auto& [id, lag] : lagging) options_.on_lagging(id, lag);
    }
    if (stop) return;
  }
}

void ReplicationSource::RunPeer(Peer* peer) {
  absl::Duration backoff = options_.min_backoff;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (!fenced_.ok() || stopping_) return;
    }
    bool accepted = false;
    absl::Status s = RunStream(peer, &accepted);
    {
      absl::MutexLock lock(&mu_);
      peer->connected = false;
      SetDiskSpaceLocked(peer, nullptr);  // Stale from now on.
      if (!fenced_.ok() || stopping_) return;
    }
    if (IsSuperseded(s, options_.epoch)) {
      spdlog::warn("range {}: replica {} refused epoch {}: {}",
                   options_.range_id, peer->id, options_.epoch, std::string(s.message()));
      Fence(s);
      if (options_.on_superseded) options_.on_superseded(s);
      return;
    }
    // Any other refusal (an unmarked FAILED_PRECONDITION included: a
    // misconfigured replica, or an old one's stale-epoch refusal; see
    // IsSuperseded) is this replica failing, not this primary: retry with
    // backoff; while it refuses it acks nothing, so it lags and is dropped
    // from the in-sync set the usual way (on_lagging, SetInSync). Logged
    // once per reason; the backoff keeps growing while it refuses, even if
    // it accepted the stream first (it may refuse every batch).
    const bool refused = absl::IsFailedPrecondition(s);
    if (s.message() != peer->last_refusal) {
      peer->last_refusal = std::string(s.message());
      if (refused) {
        spdlog::warn("range {}: replica {} refused the stream (not for a "
                     "stale epoch; treated as a failing replica): {}",
                     options_.range_id, peer->id, s.ToString());
      } else {
        spdlog::debug("range {}: stream to {} ended: {}", options_.range_id,
                      peer->id, s.ToString());
      }
    }
    if (accepted && !refused) {
      backoff = options_.min_backoff;
      peer->last_refusal.clear();
    }
    absl::MutexLock lock(&mu_);
    const absl::Time until = absl::Now() + backoff;
    while (fenced_.ok() && !stopping_ && absl::Now() < until) {
      work_cv_.WaitWithDeadline(&mu_, until);
    }
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::StatusOr<Revision> ReplicationSource::Handshake(
    Peer* peer,
    grpc::ClientReaderWriterInterface<v1::AppendRequest, v1::AppendResponse>*
        stream,
    std::optional<v1::ReplicaDiskSpace>* disk) {
  v1::AppendRequest req;
  v1::AppendStart* start = req.mutable_start();
  start->set_range_id(options_.range_id);
  start->set_epoch(options_.epoch);
  start->set_primary(options_.self);
  EpochHistoryToProto(options_.history, start->mutable_epoch_history());
  if (!stream->Write(req)) return absl::UnavailableError("stream broken");
  bool asked = false;  // Whether we asked for a re-sync already.
  v1::AppendResponse resp;
  while (stream->Read(&resp)) {
    if (resp.has_resyncing()) {
      absl::MutexLock lock(&mu_);
      peer->resyncs++;
      resyncs_++;
      continue;
    }
    if (!resp.has_accepted()) {
      return absl::InternalError("Append: expected an AppendAccepted");
    }
    const Revision durable =
        static_cast<Revision>(resp.accepted().durable_revision());
    if (resp.accepted().has_disk_space()) {
      *disk = resp.accepted().disk_space();
    } else {
      disk->reset();
    }
    Revision committed;
    {
      absl::MutexLock lock(&mu_);
      committed = committed_;
    }
    std::string reason;
    if (durable > committed) {
      reason = absl::StrFormat(
          "the replica holds revision %d, beyond the primary's %d", durable,
          committed);
    } else if (durable + 1 <= db_->CompactedRevision() &&
               durable < db_->CurrentRevision()) {
      reason = absl::StrFormat(
          "the changes after revision %d are no longer retained (compacted "
          "revision %d)",
          durable, db_->CompactedRevision());
    }
    if (reason.empty()) return durable;
    if (asked) {
      return absl::InternalError(absl::StrFormat(
          "replica %s still cannot be shipped to after a re-sync: %s",
          peer->id, reason));
    }
    asked = true;
    req.Clear();
    req.mutable_resync()->set_reason(reason);
    if (!stream->Write(req)) return absl::UnavailableError("stream broken");
  }
  return absl::UnavailableError("stream ended during the handshake");
}

void ReplicationSource::ReadAcks(
    Peer* peer,
    grpc::ClientReaderWriterInterface<v1::AppendRequest, v1::AppendResponse>*
        stream) {
  v1::AppendResponse resp;
  while (stream->Read(&resp)) {
    if (!resp.has_ack()) break;
    const Revision r = static_cast<Revision>(resp.ack().durable_revision());
    absl::MutexLock lock(&mu_);
    SetDiskSpaceLocked(peer, resp.ack().has_disk_space()
                                 ? &resp.ack().disk_space()
                                 : nullptr);
    if (r > peer->acked) peer->acked = r;
    if (peer->acked >= committed_) {
      peer->caught_up_at = absl::Now();
      peer->lagging_reported = false;
    }
    UpdateWatermarkLocked();
  }
  absl::MutexLock lock(&mu_);
  peer->broken = true;
  work_cv_.SignalAll();
}

bool ReplicationSource::NextBatches(
    Peer* peer, Revision* next, std::unique_ptr<storage::ChangeIterator>* log,
    v1::AppendBatches* out, absl::Status* error, bool* probe) {
  uint64_t bytes = 0;
  auto add = [&](const storage::ChangeBatch& b) {
    v1::AppendBatch* a = out->add_batches();
    a->set_revision(static_cast<int64_t>(b.revision));
    a->set_record(*b.record);
    bytes += b.record->size();
    *next = b.revision + 1;
  };
  if (*log == nullptr) {
    // Copies of the buffered batches (cheap: they share their records),
    // so the records are serialized without holding mu_.
    std::vector<storage::ChangeBatch> buffered;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return *next <= committed_ || peer->broken || !fenced_.ok() ||
               stopping_;
      };
      // Wakes every disk_probe_interval to probe a replica short of disk
      // space (its report may have come after this wait began).
      while (!mu_.AwaitWithTimeout(absl::Condition(&ready),
                                   options_.disk_probe_interval)) {
        if (peer->below_reserve()) {
          *probe = true;
          return true;
        }
      }
      if (peer->broken || !fenced_.ok() || stopping_) return false;
      if (!recent_.empty() && *next >= recent_.front().revision) {
        uint64_t size = 0;
        for (size_t i = static_cast<size_t>(*next - recent_.front().revision);
             i < recent_.size() && size < options_.max_message_bytes; ++i) {
          buffered.push_back(recent_[i]);
          size += recent_[i].record->size();
        }
      }
    }
    if (!buffered.empty()) {
      for (const storage::ChangeBatch& b : buffered) add(b);
      return true;
    }
  }
  // Too far behind the buffer: read the change log (without mu_: the DB
  // may not be called under it, OnCommit takes it with the write lock).
  if (*log == nullptr) {
    absl::StatusOr<std::unique_ptr<storage::ChangeIterator>> it =
        db_->GetUpdatesSince(*next);
    if (!it.ok()) {
      *error = it.status();
      return false;
    }
    *log = *std::move(it);
  }
  while (bytes < options_.max_message_bytes) {
    if (!(*log)->Next()) {
      *error = (*log)->status();
      log->reset();
      if (!error->ok()) return false;
      break;
    }
    if ((*log)->batch().revision != *next) {
      *error = absl::InternalError(absl::StrFormat(
          "range %d: the change log gave revision %d, expected %d",
          options_.range_id, (*log)->batch().revision, *next));
      return false;
    }
    add((*log)->batch());
  }
  return true;
}

absl::Status ReplicationSource::RunStream(Peer* peer, bool* accepted) {
  grpc::ClientContext ctx;
  {
    absl::MutexLock lock(&mu_);
    if (!fenced_.ok() || stopping_) return fenced_;
    peer->ctx = &ctx;
    peer->broken = false;
  }
  auto stream = peer->stub->Append(&ctx);
  std::optional<v1::ReplicaDiskSpace> disk;
  absl::StatusOr<Revision> durable = Handshake(peer, stream.get(), &disk);
  absl::Status result;
  if (durable.ok()) {
    *accepted = true;
    {
      absl::MutexLock lock(&mu_);
      peer->connected = true;
      SetDiskSpaceLocked(peer, disk.has_value() ? &*disk : nullptr);
      peer->acked = *durable;
      if (peer->acked >= committed_) peer->caught_up_at = absl::Now();
      UpdateWatermarkLocked();
    }
    std::thread reader([this, peer, &stream] { ReadAcks(peer, stream.get()); });
    Revision next = *durable + 1;
    std::unique_ptr<storage::ChangeIterator> log;
    // Whether the replica ended the stream (then its status says why and
    // must not be replaced by a cancellation).
    bool ended = false;
    while (true) {
      v1::AppendBatches batches;
      absl::Status error;
      bool probe = false;
      if (!NextBatches(peer, &next, &log, &batches, &error, &probe)) {
        result = error;
        absl::MutexLock lock(&mu_);
        ended = peer->broken;
        break;
      }
      if (batches.batches_size() == 0 && !probe) continue;
      v1::AppendRequest req;
      *req.mutable_batches() = std::move(batches);
      if (!stream->Write(req)) {  // The stream is over: Read ends too.
        ended = true;
        break;
      }
    }
    if (!ended) ctx.TryCancel();
    reader.join();
  } else {
    result = durable.status();
    // Only a protocol error leaves the stream open; a failed Read or
    // Write means it is over and Finish has the replica's status.
    if (absl::IsInternal(result)) ctx.TryCancel();
  }
  grpc::Status rpc = stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    peer->ctx = nullptr;
  }
  // The replica's own status says why the stream ended, if it ended it.
  if (!rpc.ok() && rpc.error_code() != grpc::StatusCode::CANCELLED) {
    return FromAppendStatus(rpc, ctx);
  }
  return result.ok() ? FromGrpc(rpc) : result;
}

size_t ReplicationSource::in_sync_size() const {
  absl::MutexLock lock(&mu_);
  return in_sync_.size() + 1;
}

ReplicationSource::Stats ReplicationSource::GetStats() const {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  Stats out;
  out.committed_revision = committed_;
  out.replicated_revision = watermark_;
  out.in_sync_size = in_sync_.size() + 1;
  out.resyncs = resyncs_;
  out.fenced = !fenced_.ok();
  for (const auto& peer : peers_) {
    ReplicaStats r;
    r.id = peer->id;
    r.connected = peer->connected;
    r.disk_known = peer->disk_known;
    r.disk_free_bytes = peer->disk_free;
    r.disk_min_free_bytes = peer->disk_min_free;
    r.in_sync =
        std::find(in_sync_.begin(), in_sync_.end(), peer->id) != in_sync_.end();
    r.acked_revision = peer->acked;
    r.lag_revisions = committed_ > peer->acked ? committed_ - peer->acked : 0;
    r.lag_seconds = peer->acked >= committed_
                        ? 0
                        : absl::ToDoubleSeconds(now - peer->caught_up_at);
    r.resyncs = peer->resyncs;
    out.replicas.push_back(std::move(r));
  }
  return out;
}

}  // namespace strata::cluster::replication
