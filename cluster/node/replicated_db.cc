#include "cluster/node/replicated_db.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace strata::cluster {

using storage::ChangeBatch;
using storage::Revision;
using storage::Snapshot;

class ReplicatedDB::FanOut final : public storage::CommitListener {
 public:
  explicit FanOut(ReplicatedDB* db) : db_(db) {}
  void OnCommit(const std::vector<ChangeBatch>& batches) override {
    db_->OnCommit(batches);
  }

 private:
  ReplicatedDB* const db_;
};

namespace {

// A change iterator that ends before the first batch above `limit`.
class BoundedChangeIterator final : public storage::ChangeIterator {
 public:
  BoundedChangeIterator(std::unique_ptr<storage::ChangeIterator> base,
                        Revision limit)
      : base_(std::move(base)), limit_(limit) {}
  bool Next() override {
    if (done_) return false;
    if (!base_->Next()) return false;
    if (base_->batch().revision > limit_) {
      done_ = true;
      return false;
    }
    return true;
  }
  const ChangeBatch& batch() const override { return base_->batch(); }
  absl::Status status() const override { return base_->status(); }

 private:
  std::unique_ptr<storage::ChangeIterator> base_;
  const Revision limit_;
  bool done_ = false;
};

}  // namespace

ReplicatedDB::ReplicatedDB(storage::DB* base,
                           replication::ReplicationSource* source,
                           Options options)
    : base_(base),
      source_(source),
      options_(std::move(options)),
      fan_out_(std::make_unique<FanOut>(this)),
      gate_(std::make_shared<DeliveryGate>()) {
  {
    absl::MutexLock lock(&gate_->mu);
    gate_->db = this;
  }
  base_->SetCommitListener(fan_out_.get());
}

ReplicatedDB::~ReplicatedDB() {
  {
    // Waits for a delivery in progress; later ones find nullptr.
    absl::MutexLock lock(&gate_->mu);
    gate_->db = nullptr;
  }
  Detach();
}

void ReplicatedDB::Detach() { base_->SetCommitListener(nullptr); }

void ReplicatedDB::Fence(const absl::Status& why) {
  {
    absl::MutexLock lock(&mu_);
    if (fenced_.ok()) fenced_ = why;
  }
  source_->Fence(why);
}

bool ReplicatedDB::fenced() const {
  absl::MutexLock lock(&mu_);
  return !fenced_.ok();
}

absl::Status ReplicatedDB::InSyncShortfall() const {
  const size_t in_sync = source_->in_sync_size();
  if (options_.min_in_sync > 1 &&
      in_sync < static_cast<size_t>(options_.min_in_sync)) {
    return absl::UnavailableError(absl::StrCat(
        "only ", in_sync, " of range ", options_.range_id,
        "'s replicas are in sync (the primary included); writes need ",
        options_.min_in_sync,
        " (the cluster's min_in_sync) and resume once a replica catches "
        "up; nothing was written"));
  }
  return absl::OkStatus();
}

absl::Status ReplicatedDB::FenceReason() const {
  {
    absl::MutexLock lock(&mu_);
    if (!fenced_.ok()) return fenced_;
  }
  if (options_.lease_deadline && absl::Now() >= options_.lease_deadline()) {
    return absl::UnavailableError(
        "this node's etcd lease may have expired (no renewal within its "
        "TTL)");
  }
  return absl::OkStatus();
}

absl::Status ReplicatedDB::CheckWritable() {
  const absl::Status why = FenceReason();
  if (!why.ok() && !fenced()) Fence(why);  // A lapsed lease: for good.
  if (why.ok()) return InSyncShortfall();
  fenced_writes_.fetch_add(1);
  return absl::FailedPreconditionError(absl::StrCat(
      "not the primary of range ", options_.range_id, " any more (epoch ",
      options_.epoch, "): ", why.message(),
      "; ask any node's strata.v1.Cluster/GetRangeMap for the primary"));
}

void ReplicatedDB::WriteAsync(const storage::WriteOptions& options,
                              storage::WriteBatch batch, WriteCallback done) {
  if (absl::Status s = CheckWritable(); !s.ok()) {
    done(s);
    return;
  }
  const absl::Duration timeout = options_.replication_timeout;
  replication::ReplicationSource* source = source_;
  base_->WriteAsync(
      options, std::move(batch),
      [source, timeout,
       done = std::move(done)](absl::StatusOr<Revision> committed) mutable {
        if (!committed.ok()) {
          done(std::move(committed));
          return;
        }
        const Revision revision = *committed;
        source->WaitReplicated(
            revision, absl::Now() + timeout,
            [revision, done = std::move(done)](absl::Status s) {
              if (s.ok()) {
                done(revision);
              } else {
                done(absl::Status(
                    s.code(),
                    absl::StrCat("committed at revision ", revision,
                                 " on the primary but not acknowledged by "
                                 "every in-sync replica (the write may or "
                                 "may not survive a failover): ",
                                 s.message())));
              }
            });
      });
}

absl::StatusOr<Revision> ReplicatedDB::Write(
    const storage::WriteOptions& options, storage::WriteBatch* batch) {
  absl::Notification finished;
  absl::StatusOr<Revision> result;
  WriteAsync(options, std::move(*batch),
             [&](absl::StatusOr<Revision> r) {
               result = std::move(r);
               finished.Notify();
             });
  *batch = storage::WriteBatch();
  finished.WaitForNotification();
  return result;
}

absl::StatusOr<Revision> ReplicatedDB::Put(const storage::WriteOptions& options,
                                           std::string_view key,
                                           std::string_view value) {
  storage::WriteBatch batch;
  batch.Put(key, value);
  return Write(options, &batch);
}

absl::StatusOr<Revision> ReplicatedDB::Delete(
    const storage::WriteOptions& options, std::string_view key) {
  storage::WriteBatch batch;
  batch.Delete(key);
  return Write(options, &batch);
}

absl::StatusOr<const Snapshot*> ReplicatedDB::WatermarkSnapshot() {
  const Snapshot* latest = base_->GetSnapshot();
  // The watermark only grows: read after the snapshot, a watermark at or
  // above its revision means the whole snapshot is replicated.
  const Revision watermark = source_->replicated_revision();
  if (latest->revision() <= watermark) return latest;
  base_->ReleaseSnapshot(latest);
  if (watermark == 0) {
    return absl::UnavailableError(
        "the primary is waiting for its in-sync replicas to acknowledge "
        "(nothing replicated yet); retry");
  }
  absl::StatusOr<const Snapshot*> at = base_->GetSnapshotAt(watermark);
  if (!at.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "cannot read at the replicated revision ", watermark, ": ",
        at.status().message()));
  }
  return at;
}

absl::Status ReplicatedDB::PrepareRead(storage::ReadOptions* options,
                                       const Snapshot** taken) {
  *taken = nullptr;
  if (options->snapshot != nullptr) return absl::OkStatus();
  absl::StatusOr<const Snapshot*> snap = WatermarkSnapshot();
  if (!snap.ok()) return snap.status();
  *taken = *snap;
  options->snapshot = *snap;
  options->hide_expired_history = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReplicatedDB::Get(
    const storage::ReadOptions& options, std::string_view key) {
  storage::ReadOptions ro = options;
  const Snapshot* taken = nullptr;
  if (absl::Status s = PrepareRead(&ro, &taken); !s.ok()) return s;
  absl::StatusOr<std::string> r = base_->Get(ro, key);
  if (taken != nullptr) base_->ReleaseSnapshot(taken);
  return r;
}

absl::StatusOr<storage::GetResult> ReplicatedDB::GetWithMetadata(
    const storage::ReadOptions& options, std::string_view key) {
  storage::ReadOptions ro = options;
  const Snapshot* taken = nullptr;
  if (absl::Status s = PrepareRead(&ro, &taken); !s.ok()) return s;
  absl::StatusOr<storage::GetResult> r = base_->GetWithMetadata(ro, key);
  if (taken != nullptr) base_->ReleaseSnapshot(taken);
  return r;
}

std::unique_ptr<storage::Iterator> ReplicatedDB::NewIterator(
    const storage::ReadOptions& options) {
  storage::ReadOptions ro = options;
  const Snapshot* taken = nullptr;
  if (absl::Status s = PrepareRead(&ro, &taken); !s.ok()) {
    return std::unique_ptr<storage::Iterator>(storage::NewErrorIterator(s));
  }
  std::unique_ptr<storage::Iterator> it = base_->NewIterator(ro);
  if (taken != nullptr) {
    storage::DB* base = base_;
    it->RegisterCleanup([base, taken] { base->ReleaseSnapshot(taken); });
  }
  return it;
}

const Snapshot* ReplicatedDB::GetSnapshot() {
  absl::StatusOr<const Snapshot*> snap = WatermarkSnapshot();
  // The DB interface has no error here: before anything is replicated the
  // caller gets the latest snapshot, whose reads then go through the same
  // watermark rule only if they pass no snapshot. Fall back to the oldest
  // one the engine has, which never shows an unreplicated write.
  if (snap.ok()) return *snap;
  absl::StatusOr<const Snapshot*> oldest =
      base_->GetSnapshotAt(base_->CompactedRevision());
  if (oldest.ok()) return *oldest;
  return base_->GetSnapshot();
}

absl::StatusOr<const Snapshot*> ReplicatedDB::GetSnapshotAt(
    Revision revision) {
  const Revision watermark = source_->replicated_revision();
  if (revision > watermark) {
    return absl::OutOfRangeError(absl::StrCat(
        "revision ", revision, " is not yet replicated (the replicated "
        "revision is ", watermark, ")"));
  }
  return base_->GetSnapshotAt(revision);
}

void ReplicatedDB::ReleaseSnapshot(const Snapshot* snapshot) {
  base_->ReleaseSnapshot(snapshot);
}

Revision ReplicatedDB::CurrentRevision() {
  const Revision current = base_->CurrentRevision();
  const Revision watermark = source_->replicated_revision();
  return std::min(current, watermark);
}

Revision ReplicatedDB::CompactedRevision() {
  return base_->CompactedRevision();
}

absl::Status ReplicatedDB::CompactHistory(Revision revision) {
  return base_->CompactHistory(
      std::min(revision, source_->replicated_revision()));
}

absl::StatusOr<std::unique_ptr<storage::ChangeIterator>>
ReplicatedDB::GetUpdatesSince(Revision revision) {
  const Revision watermark = source_->replicated_revision();
  absl::StatusOr<std::unique_ptr<storage::ChangeIterator>> it =
      base_->GetUpdatesSince(revision);
  if (!it.ok()) return it;
  return std::unique_ptr<storage::ChangeIterator>(
      new BoundedChangeIterator(*std::move(it), watermark));
}

void ReplicatedDB::SetCommitListener(storage::CommitListener* listener) {
  absl::MutexLock lock(&deliver_mu_);
  delayed_ = listener;
}

void ReplicatedDB::OnCommit(const std::vector<ChangeBatch>& batches) {
  source_->OnCommit(batches);
  if (batches.empty()) return;
  {
    absl::MutexLock lock(&queue_mu_);
    for (const ChangeBatch& b : batches) pending_.push_back(b);
  }
  // Runs on the source's notifier thread, possibly after this object is
  // gone (the source outlived it): the gate says whether it still exists.
  source_->WaitReplicated(batches.back().revision, absl::InfiniteFuture(),
                          [gate = gate_](absl::Status s) {
                            if (!s.ok()) return;
                            absl::MutexLock lock(&gate->mu);
                            if (gate->db != nullptr) {
                              gate->db->DeliverReplicated();
                            }
                          });
}

void ReplicatedDB::DeliverReplicated() {
  absl::MutexLock deliver(&deliver_mu_);
  const Revision watermark = source_->replicated_revision();
  std::vector<ChangeBatch> ready;
  {
    absl::MutexLock lock(&queue_mu_);
    while (!pending_.empty() && pending_.front().revision <= watermark) {
      ready.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
  }
  if (!ready.empty() && delayed_ != nullptr) delayed_->OnCommit(ready);
}

absl::Status ReplicatedDB::SyncWAL() { return base_->SyncWAL(); }
absl::Status ReplicatedDB::Flush() { return base_->Flush(); }
absl::Status ReplicatedDB::CompactRange(std::optional<std::string_view> begin,
                                        std::optional<std::string_view> end) {
  return base_->CompactRange(begin, end);
}
absl::StatusOr<Revision> ReplicatedDB::CreateCheckpoint(
    const std::string& dir) {
  return base_->CreateCheckpoint(dir);
}
absl::Status ReplicatedDB::ApplyCommittedBatch(const storage::WriteOptions&,
                                               const ChangeBatch&) {
  return absl::FailedPreconditionError(
      "a primary's database is written by its clients, not by "
      "ApplyCommittedBatch");
}
absl::Status ReplicatedDB::WriteAvailability() {
  return base_->WriteAvailability();
}
absl::Status ReplicatedDB::PrimaryWriteReadiness() const {
  if (const absl::Status why = FenceReason(); !why.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "this node is fenced as the primary of range ", options_.range_id,
        " (epoch ", options_.epoch, "): ", why.message()));
  }
  if (absl::Status shortfall = InSyncShortfall(); !shortfall.ok()) {
    return shortfall;
  }
  if (absl::Status shortfall = AcknowledgingShortfall(); !shortfall.ok()) {
    return shortfall;
  }
  return ReplicaDiskReserve();
}

absl::Status ReplicatedDB::ReplicaDiskReserve() const {
  return source_->InSyncDiskReserve();
}

absl::Status ReplicatedDB::AcknowledgingShortfall() const {
  if (options_.min_in_sync <= 1) return absl::OkStatus();
  const replication::ReplicationSource::Stats stats = source_->GetStats();
  int acknowledging = 1;  // The primary.
  for (const replication::ReplicationSource::ReplicaStats& r :
       stats.replicas) {
    if (r.in_sync && r.connected &&
        r.lag_seconds < absl::ToDoubleSeconds(options_.lag_timeout)) {
      ++acknowledging;
    }
  }
  if (acknowledging >= options_.min_in_sync) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "only ", acknowledging, " of range ", options_.range_id,
      "'s in-sync replicas (the primary included) are connected and keeping "
      "up; writes need ",
      options_.min_in_sync,
      " (the cluster's min_in_sync) and wait for the others until they "
      "catch up or the writes time out"));
}

storage::Statistics ReplicatedDB::GetStatistics() {
  return base_->GetStatistics();
}

}  // namespace strata::cluster
