#include "server/watch_hub.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"
#include "server/handlers.h"
#include "spdlog/spdlog.h"

namespace strata::server {
namespace {

using storage::Change;
using storage::ChangeBatch;
using storage::Revision;

// Batches a pull round takes before it yields its pool thread.
constexpr int kPullBatchesPerRound = 256;
// Commits waiting for the dispatcher beyond which live watchers are moved
// to pull mode (they then read the WAL) so memory stays bounded.
constexpr size_t kMaxInboxBytes = 64 << 20;

size_t BatchBytes(const ChangeBatch& b) {
  return (b.record != nullptr ? b.record->size() : 0) +
         b.changes.size() * sizeof(Change) + sizeof(ChangeBatch);
}

// `user_key`: the change's key as the watcher's namespace names it.
void FillKeyValue(const Change& c, std::string_view user_key,
                  Revision revision, v1::KeyValue* kv) {
  kv->set_key(user_key.data(), user_key.size());
  kv->set_mod_revision(ToWire(revision));
  if (c.type == Change::Type::kPut) {
    kv->set_value(c.value.data(), c.value.size());
    kv->set_create_revision(ToWire(c.metadata.create_revision));
    kv->set_version(static_cast<int64_t>(c.metadata.version));
    kv->set_type(static_cast<v1::ValueType>(c.metadata.attributes.value_type));
  }
}

}  // namespace

class WatchHub::Watcher {
 public:
  Watcher(uint64_t id, const v1::WatchRequest& r, const KeyspaceView& ns,
          WatchSink* sink)
      : id(id),
        view(ns),
        key(r.key()),
        range_end(r.range_end()),
        prev_kv(r.prev_kv()),
        progress_notify(r.progress_notify()),
        sink(sink) {}

  bool single_key() const { return range_end.empty(); }
  // Whether a user key is in the watched range.
  bool InRange(std::string_view k) const {
    if (range_end.empty()) return k == key;
    if (k < std::string_view(key)) return false;
    if (range_end.size() == 1 && range_end[0] == '\0') return true;
    return k < std::string_view(range_end);
  }
  // Whether a stored key (a change's) is in the watched range of the
  // watcher's namespace; sets *user to its user key.
  bool Matches(std::string_view stored, std::string* user) const {
    return view.Decode(stored, user) && InRange(*user);
  }

  const uint64_t id;
  const KeyspaceView view;  // The namespace watched.
  const std::string key;    // User keys.
  const std::string range_end;
  const bool prev_kv;
  const bool progress_notify;
  WatchSink* const sink;

  // Guarded by the hub's hub_mu_.
  bool live = false;
  bool finished = false;        // FinishWatcher ran: feed nothing more.
  bool pull_scheduled = false;  // A Pull task is queued or running.
  Revision position = 0;        // Pull mode: the next revision to read.
  Revision start = 0;           // Report only revisions >= start.
  // Pull mode's WAL reader; used only by the (single) Pull task.
  std::unique_ptr<storage::ChangeIterator> disk;

  absl::Mutex mu;
  std::deque<v1::WatchResponse> queue ABSL_GUARDED_BY(mu);
  size_t queued_bytes ABSL_GUARDED_BY(mu) = 0;
  // Whether the stream holds the "writer token": a message is being sent
  // or MessagesReady is about to be called.
  bool writing ABSL_GUARDED_BY(mu) = false;
  bool finishing ABSL_GUARDED_BY(mu) = false;
  absl::Status finish_status ABSL_GUARDED_BY(mu);
  int64_t finish_compacted ABSL_GUARDED_BY(mu) = 0;
  bool removed ABSL_GUARDED_BY(mu) = false;
  int kicking ABSL_GUARDED_BY(mu) = 0;  // MessagesReady calls in progress.
  // The writer token was taken for a MessagesReady call not made yet (a
  // Kick to come). If the stream is removed first, that Kick is skipped and
  // the token is free again: Remove must not report it as held.
  bool kick_pending ABSL_GUARDED_BY(mu) = false;
  absl::CondVar kick_done;                // kicking dropped to 0.
  bool waiting_for_space ABSL_GUARDED_BY(mu) = false;  // Pull parked.
  absl::Time last_activity ABSL_GUARDED_BY(mu) = absl::Now();

  // Appends events to the queue. REQUIRES: mu. Returns whether the stream
  // must be kicked (it was idle).
  bool Append(v1::WatchResponse msg, size_t max_message_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const size_t bytes = msg.ByteSizeLong();
    if (!queue.empty() && !msg.events().empty() &&
        !queue.back().events().empty() &&
        queue.back().ByteSizeLong() + bytes <= max_message_bytes) {
      // Coalesce whole revisions into the last queued message.
      v1::WatchResponse& last = queue.back();
      const size_t before = last.ByteSizeLong();
      for (v1::Event& e : *msg.mutable_events()) {
        *last.add_events() = std::move(e);
      }
      *last.mutable_header() = msg.header();
      queued_bytes += last.ByteSizeLong() - before;
    } else {
      queue.push_back(std::move(msg));
      queued_bytes += bytes;
    }
    if (writing) return false;
    writing = true;
    kick_pending = true;
    return true;
  }
};

WatchHub::WatchHub(storage::DB* db, ThreadPool* pool, WatchHubOptions options,
                   RpcObserver* observer)
    : db_(db),
      pool_(pool),
      options_(options),
      observer_(observer != nullptr ? observer : NoopRpcObserver()) {
  // Listen first: every commit published after CurrentRevision() is read
  // reaches OnCommit (the engine calls the listener in the same critical
  // section that publishes a revision).
  db_->SetCommitListener(this);
  {
    absl::MutexLock l(&hub_mu_);
    dispatched_ = db_->CurrentRevision();
  }
  dispatcher_ = std::thread([this] { DispatcherMain(); });
}

WatchHub::~WatchHub() { Shutdown(); }

void WatchHub::CountPulling(int delta) {
  pulling_.fetch_add(delta, std::memory_order_relaxed);
  observer_->OnWatchCatchingUp(delta);
}

void WatchHub::CountCompacted() {
  compacted_streams_.fetch_add(1, std::memory_order_relaxed);
  observer_->OnWatchCompacted();
}

void WatchHub::OnCommit(const std::vector<ChangeBatch>& batches) {
  absl::MutexLock l(&inbox_mu_);
  if (stopping_) return;
  for (const ChangeBatch& b : batches) inbox_.push_back(b);
  inbox_cv_.Signal();
}

absl::StatusOr<std::shared_ptr<WatchHub::Watcher>> WatchHub::Add(
    const v1::WatchRequest& request, const KeyspaceView& ns, WatchSink* sink,
    int64_t* compacted) {
  *compacted = 0;
  if (request.key().empty() && request.range_end().empty()) {
    return absl::InvalidArgumentError(
        "watch needs a key (or range_end \"\\0\" with an empty key for "
        "every key)");
  }
  const bool to_end =
      request.range_end().size() == 1 && request.range_end()[0] == '\0';
  if (!request.range_end().empty() && !to_end &&
      request.range_end() <= request.key()) {
    return absl::InvalidArgumentError(
        "watch range_end must be empty, \"\\0\" or greater than key");
  }
  if (request.start_revision() < 0) {
    return absl::InvalidArgumentError("start_revision must be >= 0");
  }
  absl::MutexLock l(&hub_mu_);
  if (shut_down_) return absl::UnavailableError("server shutting down");
  const Revision current = db_->CurrentRevision();
  const Revision compacted_rev = db_->CompactedRevision();
  const Revision start = request.start_revision() > 0
                             ? static_cast<Revision>(request.start_revision())
                             : current + 1;
  if (start <= compacted_rev) {
    *compacted = ToWire(compacted_rev);
    CountCompacted();
    return absl::OutOfRangeError(absl::StrFormat(
        "watch from revision %d: changes up to the compacted revision %d are "
        "gone; read the range at revision %d and watch from %d",
        start, compacted_rev, compacted_rev, compacted_rev + 1));
  }
  auto w = std::make_shared<Watcher>(next_id_++, request, ns, sink);
  w->start = start;
  w->position = start;
  watchers_[w->id] = w;
  observer_->OnWatchOpened(1);
  {
    // The first message: the stream is open, complete up to start - 1 (or
    // the current revision, for a watch that starts in the future).
    absl::MutexLock wl(&w->mu);
    v1::WatchResponse hello;
    hello.mutable_header()->set_revision(ToWire(std::min(start - 1, current)));
    w->Append(std::move(hello), options_.max_message_bytes);
    // The caller sends it (WatchSend right after Add): no Kick will.
    w->kick_pending = false;
  }
  if (!w->prev_kv && start > dispatched_) {
    MakeLive(w.get());
  } else {
    CountPulling(1);
    SchedulePull(w);
  }
  return w;
}

bool WatchHub::Remove(const std::shared_ptr<Watcher>& w) {
  {
    absl::MutexLock l(&hub_mu_);
    if (watchers_.erase(w->id) > 0) {
      if (w->live) {
        if (w->single_key()) {
          auto it = live_keys_.find(w->view.Encode(w->key));
          if (it != live_keys_.end()) {
            it->second.erase(w.get());
            if (it->second.empty()) live_keys_.erase(it);
          }
        } else {
          live_ranges_.erase(w.get());
        }
        w->live = false;
      } else {
        CountPulling(-1);
      }
      waiting_for_commits_.erase(w.get());
      w->finished = true;
      observer_->OnWatchOpened(-1);
    }
  }
  absl::MutexLock l(&w->mu);
  w->removed = true;
  // A concurrent MessagesReady must not outlive the sink.
  while (w->kicking > 0) w->kick_done.Wait(&w->mu);
  // A token taken for a Kick that will now be skipped is not held.
  const bool held = w->writing && !w->kick_pending;
  w->kick_pending = false;
  return held;
}

WatchHub::Take WatchHub::TakeMessage(Watcher* w, v1::WatchResponse* out,
                                     absl::Status* status) {
  bool resume_pull = false;
  Take result;
  {
    absl::MutexLock l(&w->mu);
    if (w->removed) {
      *status = absl::CancelledError("watch cancelled");
      out->Clear();
      w->writing = true;
      return Take::kFinish;
    }
    if (!w->queue.empty()) {
      *out = std::move(w->queue.front());
      w->queue.pop_front();
      // Exact: Append accounts each queued message's current size.
      w->queued_bytes = w->queue.empty()
                            ? 0
                            : w->queued_bytes - std::min(w->queued_bytes,
                                                         out->ByteSizeLong());
      w->writing = true;
      w->last_activity = absl::Now();
      if (w->waiting_for_space &&
          w->queued_bytes <= options_.buffer_bytes / 2) {
        w->waiting_for_space = false;
        resume_pull = true;
      }
      result = Take::kMessage;
    } else if (w->finishing) {
      *status = w->finish_status;
      out->Clear();
      if (w->finish_compacted > 0) {
        out->set_compact_revision(w->finish_compacted);
        out->mutable_header()->set_revision(w->finish_compacted);
      }
      w->writing = true;  // Finished: nothing more will be sent.
      return Take::kFinish;
    } else {
      w->writing = false;
      return Take::kIdle;
    }
  }
  if (resume_pull) {
    absl::MutexLock l(&hub_mu_);
    auto it = watchers_.find(w->id);
    if (it != watchers_.end()) SchedulePull(it->second);
  }
  return result;
}

void WatchHub::Kick(const std::vector<std::shared_ptr<Watcher>>& kick) {
  for (const auto& w : kick) {
    {
      absl::MutexLock l(&w->mu);
      if (w->removed) continue;
      w->kick_pending = false;
      w->kicking++;
    }
    w->sink->MessagesReady();
    absl::MutexLock l(&w->mu);
    if (--w->kicking == 0) w->kick_done.SignalAll();
  }
}

void WatchHub::MakeLive(Watcher* w) {
  w->live = true;
  w->start = std::max(w->start, w->position);
  if (w->single_key()) {
    live_keys_[w->view.Encode(w->key)].insert(w);
  } else {
    live_ranges_.insert(w);
  }
}

void WatchHub::MakePull(Watcher* w) {
  if (w->single_key()) {
    auto it = live_keys_.find(w->view.Encode(w->key));
    if (it != live_keys_.end()) {
      it->second.erase(w);
      if (it->second.empty()) live_keys_.erase(it);
    }
  } else {
    live_ranges_.erase(w);
  }
  w->live = false;
  CountPulling(1);
}

void WatchHub::DemoteAllLive(Revision from) {
  for (auto& [id, w] : watchers_) {
    if (!w->live) continue;
    MakePull(w.get());
    w->position = std::max(from, w->start);
    SchedulePull(w);
  }
  cache_.clear();
  cache_bytes_ = 0;
}

void WatchHub::SchedulePull(const std::shared_ptr<Watcher>& w) {
  if (w->pull_scheduled || w->finished) return;
  w->pull_scheduled = true;
  if (!pool_->Schedule([this, w] { Pull(w); })) w->pull_scheduled = false;
}

absl::Status WatchHub::Deliver(Watcher* w, const ChangeBatch& batch,
                               bool respect_bound, bool* fit, bool* kick) {
  *fit = true;
  if (batch.revision < w->start) return absl::OkStatus();
  // Previous values (pull mode only): the state at revision - 1.
  const storage::Snapshot* before = nullptr;
  std::vector<v1::WatchResponse> messages;
  v1::WatchResponse msg;
  size_t bytes = 0;
  absl::Status prev_error;
  std::string user_key;
  for (const Change& c : batch.changes) {
    if (!w->Matches(c.key, &user_key)) continue;
    v1::Event* e = msg.add_events();
    e->set_type(c.type == Change::Type::kPut ? v1::Event::PUT
                                             : v1::Event::DELETE);
    FillKeyValue(c, user_key, batch.revision, e->mutable_kv());
    if (w->prev_kv && prev_error.ok()) {
      if (before == nullptr) {
        auto snap = db_->GetSnapshotAt(batch.revision - 1);
        if (!snap.ok()) {
          prev_error = snap.status();
        } else {
          before = *snap;
        }
      }
      if (before != nullptr) {
        storage::ReadOptions ro;
        ro.snapshot = before;
        auto prev = db_->GetWithMetadata(ro, c.key);
        if (prev.ok() && prev->found) {
          v1::KeyValue* kv = e->mutable_prev_kv();
          kv->set_key(user_key);
          kv->set_value(prev->value);
          FillMetadata(prev->metadata, kv);
        } else if (!prev.ok()) {
          prev_error = prev.status();
        }
      }
    }
    bytes = msg.ByteSizeLong();
    if (bytes >= options_.max_message_bytes) {
      // Split a large revision: earlier parts report the revision before.
      msg.mutable_header()->set_revision(ToWire(batch.revision - 1));
      messages.push_back(std::move(msg));
      msg = v1::WatchResponse();
    }
  }
  if (before != nullptr) db_->ReleaseSnapshot(before);
  if (!prev_error.ok()) return prev_error;
  if (msg.events_size() > 0) {
    msg.mutable_header()->set_revision(ToWire(batch.revision));
    messages.push_back(std::move(msg));
  }
  if (messages.empty()) return absl::OkStatus();
  absl::MutexLock l(&w->mu);
  if (respect_bound && !w->queue.empty() &&
      w->queued_bytes + bytes > options_.buffer_bytes) {
    *fit = false;
    return absl::OkStatus();
  }
  size_t events = 0;
  for (v1::WatchResponse& m : messages) {
    events += static_cast<size_t>(m.events_size());
    *kick |= w->Append(std::move(m), options_.max_message_bytes);
  }
  events_sent_.fetch_add(events, std::memory_order_relaxed);
  observer_->OnWatchEvents(events);
  return absl::OkStatus();
}

void WatchHub::FinishWatcher(Watcher* w, absl::Status status,
                             int64_t compacted, bool* kick) {
  absl::MutexLock l(&w->mu);
  if (w->finishing) return;
  w->finishing = true;
  w->finish_status = std::move(status);
  w->finish_compacted = compacted;
  if (compacted > 0) CountCompacted();
  if (!w->writing) {
    w->writing = true;
    w->kick_pending = true;
    *kick = true;
  }
}

void WatchHub::Dispatch(const ChangeBatch& batch,
                        std::vector<std::shared_ptr<Watcher>>* kick) {
  if (batch.revision <= dispatched_) return;  // Before the hub started.
  if (batch.revision != dispatched_ + 1) {
    // Cannot happen (the engine reports every revision); if it did, live
    // watchers read what they missed from the WAL rather than skip it.
    spdlog::error("watch hub: revision {} follows {}; live watchers resync "
                  "from the WAL", batch.revision, dispatched_);
    DemoteAllLive(dispatched_ + 1);
  }
  // The cache of recent commits (contiguous revisions).
  if (!cache_.empty() && cache_.back().batch.revision + 1 != batch.revision) {
    cache_.clear();
    cache_bytes_ = 0;
  }
  const size_t bytes = BatchBytes(batch);
  cache_.push_back({batch, bytes});
  cache_bytes_ += bytes;
  while (cache_bytes_ > options_.cache_bytes && cache_.size() > 1) {
    cache_bytes_ -= cache_.front().bytes;
    cache_.pop_front();
  }

  // Live watchers with an event in this batch.
  absl::flat_hash_set<Watcher*> matched;
  if (!live_keys_.empty()) {
    for (const Change& c : batch.changes) {
      auto it = live_keys_.find(absl::string_view(c.key.data(), c.key.size()));
      if (it != live_keys_.end()) matched.insert(it->second.begin(), it->second.end());
    }
  }
  std::string user_key;
  for (Watcher* w : live_ranges_) {
    for (const Change& c : batch.changes) {
      if (w->Matches(c.key, &user_key)) {
        matched.insert(w);
        break;
      }
    }
  }
  for (Watcher* w : matched) {
    bool fit = true, k = false;
    // Live watchers want no previous values: nothing here can fail.
    Deliver(w, batch, /*respect_bound=*/true, &fit, &k).IgnoreError();
    if (!fit) {
      // Its queue is full: it continues from this batch in pull mode.
      MakePull(w);
      w->position = batch.revision;
      SchedulePull(watchers_.at(w->id));
    }
    if (k) kick->push_back(watchers_.at(w->id));
  }
  dispatched_ = batch.revision;
  // Pull watchers that were waiting for this.
  if (!waiting_for_commits_.empty()) {
    for (Watcher* w : waiting_for_commits_) SchedulePull(watchers_.at(w->id));
    waiting_for_commits_.clear();
  }
}

void WatchHub::ProgressTick(std::vector<std::shared_ptr<Watcher>>* kick) {
  const absl::Time now = absl::Now();
  for (auto& [id, w] : watchers_) {
    if (!w->progress_notify || w->finished) continue;
    const Revision reached = w->live ? dispatched_ : w->position - 1;
    absl::MutexLock l(&w->mu);
    if (w->finishing || w->writing || !w->queue.empty() ||
        now - w->last_activity < options_.progress_interval) {
      continue;
    }
    v1::WatchResponse msg;
    msg.mutable_header()->set_revision(ToWire(std::max(reached, w->start - 1)));
    w->last_activity = now;
    if (w->Append(std::move(msg), options_.max_message_bytes)) {
      kick->push_back(w);
    }
  }
}

void WatchHub::DispatcherMain() {
  absl::Time next_tick = absl::Now() + absl::Seconds(1);
  while (true) {
    std::deque<ChangeBatch> batches;
    {
      absl::MutexLock l(&inbox_mu_);
      while (inbox_.empty() && !stopping_) {
        if (inbox_cv_.WaitWithDeadline(&inbox_mu_, next_tick)) break;
      }
      if (stopping_) return;
      batches.swap(inbox_);
    }
    std::vector<std::shared_ptr<Watcher>> kick;
    {
      absl::MutexLock l(&hub_mu_);
      size_t inbox_bytes = 0;
      for (const ChangeBatch& b : batches) inbox_bytes += BatchBytes(b);
      if (inbox_bytes > kMaxInboxBytes) {
        // Far behind: every live watcher reads the WAL from where it is.
        DemoteAllLive(dispatched_ + 1);
        dispatched_ = batches.back().revision;
        batches.clear();
      }
      for (const ChangeBatch& b : batches) Dispatch(b, &kick);
      if (absl::Now() >= next_tick) {
        ProgressTick(&kick);
        next_tick = absl::Now() + absl::Seconds(1);
      }
    }
    Kick(kick);
  }
}

void WatchHub::Pull(std::shared_ptr<Watcher> w) {
  std::vector<ChangeBatch> batches;
  bool from_disk = false;
  {
    absl::MutexLock l(&hub_mu_);
    if (w->finished || shut_down_) {
      w->pull_scheduled = false;
      w->disk.reset();
      return;
    }
    if (w->position > dispatched_) {
      w->disk.reset();
      w->pull_scheduled = false;
      if (!w->prev_kv) {
        MakeLive(w.get());
        CountPulling(-1);
      } else {
        waiting_for_commits_.insert(w.get());
      }
      return;
    }
    {
      absl::MutexLock wl(&w->mu);
      if (w->queued_bytes >= options_.buffer_bytes) {
        w->waiting_for_space = true;
        w->pull_scheduled = false;
        // A stream waiting for its client holds no change-log reader: it
        // would keep WAL files open (their space is not freed while a
        // client is slow), and a compaction meanwhile must end the stream
        // with its compact_revision rather than be read around.
        w->disk.reset();
        return;
      }
    }
    if (!cache_.empty() && w->position >= cache_.front().batch.revision) {
      size_t i = w->position - cache_.front().batch.revision;
      for (; i < cache_.size() && batches.size() < kPullBatchesPerRound; i++) {
        batches.push_back(cache_[i].batch);
      }
      w->disk.reset();
    } else {
      from_disk = true;
    }
  }

  absl::Status error;
  if (from_disk) {
    if (w->disk == nullptr) {
      auto it = db_->GetUpdatesSince(w->position);
      if (it.ok()) {
        w->disk = std::move(*it);
        disk_catch_ups_.fetch_add(1, std::memory_order_relaxed);
        observer_->OnWatchDiskRead();
      } else {
        error = it.status();
      }
    }
    while (w->disk != nullptr && batches.size() < kPullBatchesPerRound) {
      if (w->disk->Next()) {
        batches.push_back(w->disk->batch());
        continue;
      }
      error = w->disk->status();
      w->disk.reset();  // Exhausted (or failed): reopen from the position.
    }
  }

  bool kick = false;
  Revision position;
  {
    absl::MutexLock l(&hub_mu_);
    position = w->position;
  }
  for (const ChangeBatch& b : batches) {
    if (!error.ok()) break;
    if (b.revision < position) continue;
    if (b.revision != position) {
      error = absl::InternalError(absl::StrFormat(
          "watch: expected revision %d, read %d", position, b.revision));
      break;
    }
    bool fit;
    error = Deliver(w.get(), b, /*respect_bound=*/false, &fit, &kick);
    if (error.ok()) position = b.revision + 1;
  }

  {
    absl::MutexLock l(&hub_mu_);
    w->position = position;
    w->pull_scheduled = false;
    if (!error.ok() && !w->finished) {
      const bool compacted = absl::IsOutOfRange(error);
      FinishWatcher(w.get(), error,
                    compacted ? ToWire(db_->CompactedRevision()) : 0, &kick);
      w->finished = true;
      w->disk.reset();
    } else if (!w->finished) {
      SchedulePull(w);  // Next round: more batches, or go live.
    }
  }
  if (kick) Kick({w});
}

void WatchHub::Shutdown(const absl::Status& status) {
  std::vector<std::shared_ptr<Watcher>> kick;
  {
    absl::MutexLock l(&hub_mu_);
    if (shut_down_) return;
    shut_down_ = true;
    for (auto& [id, w] : watchers_) {
      bool k = false;
      FinishWatcher(w.get(), status, 0, &k);
      w->finished = true;
      if (k) kick.push_back(w);
    }
  }
  db_->SetCommitListener(nullptr);
  {
    absl::MutexLock l(&inbox_mu_);
    stopping_ = true;
    inbox_.clear();
    inbox_cv_.Signal();
  }
  if (dispatcher_.joinable()) dispatcher_.join();
  if (options_.TEST_before_shutdown_kick) options_.TEST_before_shutdown_kick();
  Kick(kick);
}

WatchHubStats WatchHub::stats() {
  WatchHubStats s;
  {
    absl::MutexLock l(&hub_mu_);
    s.watchers = static_cast<int64_t>(watchers_.size());
  }
  s.pulling_watchers = pulling_.load(std::memory_order_relaxed);
  s.events_sent = events_sent_.load(std::memory_order_relaxed);
  s.disk_catch_ups = disk_catch_ups_.load(std::memory_order_relaxed);
  s.compacted_streams = compacted_streams_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace strata::server
