#ifndef STRATA_SERVER_WRITE_GATE_H_
#define STRATA_SERVER_WRITE_GATE_H_

// Whether the node takes writes now: the free-space reserve of the data
// volume (--min_free_disk_bytes) and the engine's own write state (paused
// for lack of space, or read-only after an I/O error). Handlers of writes
// that add data (Put, Write with a put, Txn, Commit, Increment,
// JsonUpdate, LeaseGrant) ask Admit() first; deletes do not, so an
// operator can always free space. The readiness name of the health
// service ("strata.v1.KV.write") follows Writable().
//
// Free space is read (statvfs of the data directory, or an injected
// source) by a background thread every refresh_interval, never on a
// completion-queue thread: Admit() only reads atomics. Flushes and
// compactions are not gated, so they may use the reserve; that is what it
// is for (the engine never has to stop for lack of space).
//
// Thread safety: every method is safe from any thread.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/rpc_observer.h"
#include "strata/storage/db.h"

namespace strata::server {

struct DiskSpaceOptions {
  // Free bytes the data volume keeps for flushes, compactions and deletes;
  // below it, writes that add data get RESOURCE_EXHAUSTED. 0 disables the
  // check. --min_free_disk_bytes.
  uint64_t min_free_bytes = 256ull << 20;
  // The directory whose volume is watched (statvfs). Empty: free space is
  // not read (only the engine's state gates writes).
  std::string data_dir;
  // How often free space and the engine's state are re-read.
  absl::Duration refresh_interval = absl::Milliseconds(100);
  // A cluster primary's further reserve: RESOURCE_EXHAUSTED while an
  // in-sync replica's data volume is below its own reserve
  // (ReplicatedDB::ReplicaDiskReserve), OK otherwise. Admit() applies it
  // like the local reserve (counted as "replica_disk_reserve"); it is
  // called for every write that adds data, on a completion-queue thread,
  // so it must be cheap, non-blocking and thread-safe. Empty: none.
  std::function<absl::Status()> replicas_reserve;
  // TEST ONLY: replaces statvfs (free bytes, or an error: then the last
  // known value stays).
  std::function<absl::StatusOr<uint64_t>()> TEST_free_bytes;
};

// Free bytes available to an unprivileged user on the volume of `dir`
// (statvfs f_bavail * f_frsize). Unavailable/Internal with the errno text.
absl::StatusOr<uint64_t> FreeDiskBytes(const std::string& dir);

class WriteGate {
 public:
  // `db` and `observer` are not owned and must outlive this.
  // `on_writable_change` (may be empty) runs on the refresh thread (or the
  // caller of Refresh) whenever Writable() changes, and once at Start.
  // `readiness` (may be empty) is a further condition of Writable() that
  // Admit() does not apply: a refusal the writes answer themselves (a
  // cluster primary that is fenced or short of in-sync replicas answers
  // FAILED_PRECONDITION/UNAVAILABLE from its DB), which readiness must
  // still report. It runs on the refresh thread (or Refresh's caller) and
  // must be cheap and thread-safe; it must stay callable until Stop().
  WriteGate(DiskSpaceOptions options, storage::DB* db, RpcObserver* observer,
            std::function<void(bool writable)> on_writable_change,
            std::function<absl::Status()> readiness = nullptr);
  ~WriteGate();
  WriteGate(const WriteGate&) = delete;
  WriteGate& operator=(const WriteGate&) = delete;

  // Reads free space once, then starts the refresh thread.
  void Start();
  // Stops the refresh thread (idempotent; the destructor calls it).
  void Stop();
  // Re-reads free space and the engine's state now.
  void Refresh();

  // OK, or why a write that adds data is refused: RESOURCE_EXHAUSTED
  // "disk space below reserve: N bytes free (--min_free_disk_bytes=M)",
  // RESOURCE_EXHAUSTED from options' replicas_reserve (a replica's disk),
  // or the engine's WriteAvailability() (RESOURCE_EXHAUSTED while paused
  // for lack of space, UNAVAILABLE when read-only). Not the `readiness`
  // condition: the write itself answers that. Counts refusals by reason
  // (RpcObserver::OnWriteRefused). Never blocks.
  absl::Status Admit();

  // Whether writes are taken: above the reserve (as of the last refresh),
  // the engine's WriteAvailability() and, at the last refresh, the
  // `readiness` condition all OK.
  bool Writable() const;
  // Free bytes as of the last refresh (0 before the first one).
  uint64_t free_bytes() const { return free_bytes_.load(); }

 private:
  void RefreshLoop();

  const DiskSpaceOptions options_;
  storage::DB* const db_;
  RpcObserver* const observer_;
  const std::function<void(bool)> on_change_;

  std::atomic<uint64_t> free_bytes_{0};
  std::atomic<bool> below_reserve_{false};
  const std::function<absl::Status()> readiness_;
  std::atomic<bool> ready_{true};  // readiness_() at the last refresh.

  std::mutex mu_;  // Guards the fields below and serializes Refresh.
  std::condition_variable cv_;
  bool stop_ = false;
  bool started_ = false;
  int last_writable_ = -1;  // -1 before the first report.
  std::thread thread_;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_WRITE_GATE_H_
