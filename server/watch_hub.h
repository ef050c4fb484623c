#ifndef STRATA_SERVER_WATCH_HUB_H_
#define STRATA_SERVER_WATCH_HUB_H_

// The watch hub: every Watch stream of the server, fed from the engine's
// change log (docs/revisions.md, "Watch").
//
// Each watcher is in one of two modes:
//   live  the dispatcher thread, which hears of every commit from the
//         engine (storage::CommitListener), appends the watcher's events to
//         its queue as they commit;
//   pull  a task on the blocking pool reads the changes from the
//         watcher's position on, from the hub's cache of recent commits or,
//         further back, from the engine's retained WAL
//         (DB::GetUpdatesSince), and appends them.
// A watcher starts live if it starts at a revision the dispatcher has not
// reached yet, else in pull mode; a live watcher whose queue is full goes
// to pull mode (its position is where the dispatcher left it: nothing is
// dropped); a pull watcher that reaches the dispatcher's revision goes
// live. Watchers that want previous values (prev_kv) stay in pull mode:
// the previous values are point reads at revision - 1, which may block.
// So every change is delivered exactly once, in revision order, and a
// watcher never holds more than about `buffer_bytes` of queued messages.
//
// Threads: the engine's commit thread (OnCommit: queues the batches and
// returns), the dispatcher thread (owned here), blocking-pool tasks (pull
// mode), and the stream's threads (TakeMessage, Remove). hub_mu_ guards
// the registry, the modes and positions and the cache; each watcher's mu
// guards its message queue. Lock order: hub_mu_, then a watcher's mu.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/keyspace.h"
#include "server/rpc_observer.h"
#include "server/server_options.h"
#include "server/thread_pool.h"
#include "strata/storage/db.h"
#include "strata/v1/kv.pb.h"

namespace strata::server {

// The stream a watcher feeds (implemented by the Watch call).
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // The watcher has something to send and no write in flight: take it
  // with WatchHub::TakeMessage (and keep taking after each completed
  // write until it returns kIdle). Called from hub threads, without hub
  // locks held; must not block.
  virtual void MessagesReady() = 0;
};

// Counters for metrics; monotonic unless noted.
struct WatchHubStats {
  int64_t watchers = 0;             // Gauge: open watch streams.
  int64_t pulling_watchers = 0;     // Gauge: in pull mode.
  uint64_t events_sent = 0;         // Events queued to streams.
  uint64_t disk_catch_ups = 0;      // Times a watcher read the WAL.
  uint64_t compacted_streams = 0;   // Streams ended by compaction.
};

// Thread safety: all public methods may be called from any thread.
class WatchHub final : public storage::CommitListener {
 public:
  class Watcher;
  // What TakeMessage produced.
  enum class Take { kMessage, kIdle, kFinish };

  // `db`, `pool` and `observer` (nullptr = none; hears of watch events for
  // metrics) must outlive the hub. Registers itself as the DB's commit
  // listener and starts the dispatcher thread.
  WatchHub(storage::DB* db, ThreadPool* pool, WatchHubOptions options,
           RpcObserver* observer = nullptr);
  // Calls Shutdown().
  ~WatchHub() override;
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Starts a watcher for `request` over namespace `ns` (it sees only that
  // namespace's changes; docs/namespaces.md), feeding `sink` (which must
  // stay valid until Remove). Errors: InvalidArgument for a bad range; OutOfRange if
  // start_revision is at or below the compacted revision (the message
  // names it; *compacted is set); Unavailable after Shutdown.
  absl::StatusOr<std::shared_ptr<Watcher>> Add(const v1::WatchRequest& request,
                                               const KeyspaceView& ns,
                                               WatchSink* sink,
                                               int64_t* compacted);
  // Stops feeding the watcher (its stream is over): no MessagesReady call
  // is in progress or will come once this returns. Returns whether the
  // stream holds the writer token (a write or Finish is in flight, or
  // TakeMessage handed out kMessage/kFinish not yet acted on); if not, the
  // caller must finish the stream itself. Idempotent. Later TakeMessage
  // calls return kFinish with CANCELLED.
  bool Remove(const std::shared_ptr<Watcher>& watcher);

  // Takes the watcher's next message. kMessage: send *out, then call again
  // when the write completed. kFinish: the stream must end with *status
  // (and *out as its last message when it has events or
  // compact_revision; out->ByteSizeLong() == 0 otherwise). kIdle: nothing
  // to send; MessagesReady will be called when there is.
  Take TakeMessage(Watcher* watcher, v1::WatchResponse* out,
                   absl::Status* status);

  // Ends every stream with `status` (at shutdown: UNAVAILABLE), stops the
  // dispatcher and unregisters from the DB. Idempotent.
  void Shutdown(const absl::Status& status = absl::UnavailableError(
                    "server shutting down; watch again from the last "
                    "revision received + 1"));

  WatchHubStats stats();

  // CommitListener: queues the batches for the dispatcher.
  void OnCommit(const std::vector<storage::ChangeBatch>& batches) override;

 private:
  struct Cached {
    storage::ChangeBatch batch;
    size_t bytes;
  };

  void DispatcherMain();
  void Dispatch(const storage::ChangeBatch& batch,
                std::vector<std::shared_ptr<Watcher>>* kick)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_mu_);
  void ProgressTick(std::vector<std::shared_ptr<Watcher>>* kick)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_mu_);
  void MakeLive(Watcher* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_mu_);
  void MakePull(Watcher* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_mu_);
  void SchedulePull(const std::shared_ptr<Watcher>& w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_mu_);
  // One round of pull mode for w (blocking pool).
  void Pull(std::shared_ptr<Watcher> w);
  // Appends w's events of `batch` (if any) to its queue; with
  // respect_bound, *fit is false (and nothing appended) if they do not fit.
  // Errors: those of reading previous values (prev_kv), e.g. OutOfRange.
  absl::Status Deliver(Watcher* w, const storage::ChangeBatch& batch,
                       bool respect_bound, bool* fit, bool* kick);
  // Moves every live watcher to pull mode from `from` (and empties the
  // cache): when the dispatcher cannot vouch for what it holds.
  void DemoteAllLive(storage::Revision from)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(hub_mu_);
  // Finishes w's stream with `status` (after what is queued).
  void FinishWatcher(Watcher* w, absl::Status status, int64_t compacted,
                     bool* kick);
  static void Kick(const std::vector<std::shared_ptr<Watcher>>& kick);

  // Counter updates (stats() and the observer).
  void CountPulling(int delta);
  void CountCompacted();

  storage::DB* const db_;
  ThreadPool* const pool_;
  const WatchHubOptions options_;
  RpcObserver* const observer_;

  // Commits not yet dispatched, from OnCommit.
  absl::Mutex inbox_mu_;
  std::deque<storage::ChangeBatch> inbox_ ABSL_GUARDED_BY(inbox_mu_);
  absl::CondVar inbox_cv_;  // Wakes the dispatcher.
  bool stopping_ ABSL_GUARDED_BY(inbox_mu_) = false;

  absl::Mutex hub_mu_ ABSL_ACQUIRED_BEFORE(inbox_mu_);
  bool shut_down_ ABSL_GUARDED_BY(hub_mu_) = false;
  // The last revision dispatched to live watchers (every commit up to it
  // has been matched against them).
  storage::Revision dispatched_ ABSL_GUARDED_BY(hub_mu_) = 0;
  std::deque<Cached> cache_ ABSL_GUARDED_BY(hub_mu_);
  size_t cache_bytes_ ABSL_GUARDED_BY(hub_mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(hub_mu_) = 1;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Watcher>> watchers_
      ABSL_GUARDED_BY(hub_mu_);
  // Live watchers of one key, by key; live watchers of a range.
  absl::flat_hash_map<std::string, absl::flat_hash_set<Watcher*>> live_keys_
      ABSL_GUARDED_BY(hub_mu_);
  absl::flat_hash_set<Watcher*> live_ranges_ ABSL_GUARDED_BY(hub_mu_);
  // Pull watchers waiting for the dispatcher to move.
  absl::flat_hash_set<Watcher*> waiting_for_commits_ ABSL_GUARDED_BY(hub_mu_);

  std::atomic<int64_t> pulling_{0};
  std::atomic<uint64_t> events_sent_{0}, disk_catch_ups_{0},
      compacted_streams_{0};

  std::thread dispatcher_;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_WATCH_HUB_H_
