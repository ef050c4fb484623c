#ifndef STRATA_SERVER_LEASE_TABLE_H_
#define STRATA_SERVER_LEASE_TABLE_H_

// The server's leases in memory (docs/expiry.md): the authority on which
// leases are live and until when, while the server runs. Every change is
// made by a commit function (server/expiry.h), in commit order, together
// with the durable lease record it mirrors, so this table and the records
// agree at every revision; at start it is rebuilt from the records.
//
// It is also the engine's storage::LeaseDeadlines (Options::
// lease_deadlines): a key attached to a lease is absent for reads once the
// lease's deadline has passed, before the expirer has deleted it.
//
// Thread safety: all methods are thread-safe (one mutex; readers share
// it). DeadlineUnixMs is on the read path of every key attached to a lease
// and never blocks on anything but that mutex.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "strata/storage/options.h"

namespace strata::server {

class LeaseTable final : public storage::LeaseDeadlines {
 public:
  struct Lease {
    int64_t id = 0;
    // Granted TTL (what a keep-alive renews to), seconds.
    int64_t ttl_seconds = 0;
    // Wall-clock deadline, ms since the Unix epoch.
    uint64_t deadline_ms = 0;
    // Keys attached (index entries; may count keys detached since by an
    // overwrite until the next prune, see Expiry::AppendPut).
    int64_t keys = 0;
  };

  // How long (and how many) ended leases are remembered with the time they
  // ended, so a snapshot taken before the end still shows their keys.
  explicit LeaseTable(uint64_t ended_retention_ms = 10 * 60 * 1000,
                      size_t ended_max = 100000)
      : ended_retention_ms_(ended_retention_ms), ended_max_(ended_max) {}

  // storage::LeaseDeadlines: a live lease's deadline; an ended lease's end
  // time; 1 (long past) for any other id: a lease that is not live never
  // keeps a key alive.
  uint64_t DeadlineUnixMs(uint64_t id) const override;

  // The lease, if it has not ended (it may be past its deadline, waiting
  // for the expirer).
  std::optional<Lease> Find(int64_t id) const;
  // Inserts or replaces a lease (grant, keep-alive, rebuild).
  void Put(const Lease& lease);
  // Adds `delta` to a lease's key count (no-op for an unknown id).
  void AddKeys(int64_t id, int64_t delta);
  // Ends a lease at `ended_at_ms` (revoke, expiry). No-op if unknown.
  void End(int64_t id, uint64_t ended_at_ms);

  // Up to `max` leases whose deadline is at or before now_ms, earliest
  // first.
  std::vector<int64_t> Due(uint64_t now_ms, size_t max) const;
  // The earliest deadline of any lease, if there is one.
  std::optional<uint64_t> NextDeadline() const;
  // Every lease that has not ended, in id order.
  std::vector<int64_t> Ids() const;
  // Leases that have not ended.
  size_t size() const;

 private:
  void PruneEnded(uint64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint64_t ended_retention_ms_;
  const size_t ended_max_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<int64_t, Lease> live_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<uint64_t, int64_t>> by_deadline_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, uint64_t> ended_ ABSL_GUARDED_BY(mu_);
  // (ended at, id), oldest first.
  std::deque<std::pair<uint64_t, int64_t>> ended_order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace strata::server

#endif  // STRATA_SERVER_LEASE_TABLE_H_
