#ifndef STRATA_SERVER_GET_COALESCER_H_
#define STRATA_SERVER_GET_COALESCER_H_

// Read coalescing for Gets that must read from disk: while a lookup of a key
// is queued on the blocking pool and has not started, further Gets of the
// same key join it instead of queueing lookups of their own, and every
// member of the group is answered from the one engine lookup. Under a
// hot-key burst on a cold block cache this turns N disk reads (and N pool
// tasks) into one. The idea is request batching/coalescing as in
// singleflight (golang.org/x/sync/singleflight), with one rule added for
// consistency:
//
//   A Get may join a group only while the group's lookup has NOT started.
//   The lookup task calls Take() immediately before it reads, which closes
//   the group; later Gets start a new group. So every member arrived
//   before the read began, and each sees every write acknowledged before
//   it arrived, exactly as if it had done its own lookup.
//
// Gets answered inline from memory (memtable, block cache) never come
// here: they cost less than the bookkeeping.
//
// Thread safety: all methods are thread-safe (one mutex; it is held only to
// update the map, never across a lookup).

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace strata::server {

// `Waiter` identifies one waiting Get (the server uses its call object).
template <class Waiter>
class GetCoalescer {
 public:
  GetCoalescer() = default;
  GetCoalescer(const GetCoalescer&) = delete;
  GetCoalescer& operator=(const GetCoalescer&) = delete;

  // Adds `waiter` to the open group for `key`. Returns true if it joined a
  // group whose lookup is already queued (the caller does nothing more),
  // false if it opened a new group: the caller must then arrange a lookup
  // that calls Take(key) before reading.
  bool Join(std::string_view key, Waiter waiter) {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = groups_.try_emplace(AsAbsl(key));
    it->second.push_back(std::move(waiter));
    return !inserted;
  }

  // Closes the group for `key` and returns its members (the one that opened
  // it first). Later Joins of `key` open a new group. Call right before
  // the lookup reads; an empty result means no group was open.
  std::vector<Waiter> Take(std::string_view key) {
    absl::MutexLock lock(&mu_);
    auto it = groups_.find(AsAbsl(key));
    if (it == groups_.end()) return {};
    std::vector<Waiter> waiters = std::move(it->second);
    groups_.erase(it);
    return waiters;
  }

  // Number of open groups (TEST ONLY).
  size_t TEST_open_groups() {
    absl::MutexLock lock(&mu_);
    return groups_.size();
  }

 private:
  // Debian's Abseil has its own string_view type.
  static absl::string_view AsAbsl(std::string_view s) {
    return absl::string_view(s.data(), s.size());
  }

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<Waiter>> groups_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace strata::server

#endif  // STRATA_SERVER_GET_COALESCER_H_
