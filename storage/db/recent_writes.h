#ifndef STRATA_STORAGE_DB_RECENT_WRITES_H_
#define STRATA_STORAGE_DB_RECENT_WRITES_H_

// The recent-write index: for the last `capacity` written keys, the
// revision of each key's newest write (put or delete), so a commit can ask
// "did any key in [start, end) change after revision R?" without scanning
// the data. FoundationDB's resolvers keep the same kind of window for the
// same reason (read-range conflict checks); a transaction whose reads are
// older than the window is refused as too old rather than checked by a
// scan whose cost has no bound.

#include <cstddef>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "strata/storage/key_metadata.h"

namespace strata::storage {

// Thread safety: none; the DB uses it from the commit leader only (one
// thread at a time, ordered by the DB mutex between leaders).
class RecentWriteIndex {
 public:
  // Remembers up to `capacity` writes (0: none: every range question is
  // FailedPrecondition). Writes at or below `floor` are not known.
  RecentWriteIndex(size_t capacity, Revision floor)
      : capacity_(capacity), floor_(floor) {}

  // A write of `key` committed at `revision` (revisions only grow).
  void Record(std::string_view key, Revision revision);

  // The newest revision after `since` at which a key in [start, end) was
  // written (end empty: no upper bound), or 0 if none; with `first` (may
  // be null), also the smallest key written after `since` in the range
  // (untouched if none). FailedPrecondition if writes after `since` may
  // have been forgotten (since < floor()), with a message naming both.
  // Cost: one ordered walk over the remembered keys in the range (at most
  // the capacity).
  absl::StatusOr<Revision> NewestInRange(std::string_view start,
                                         std::string_view end, Revision since,
                                         std::string* first = nullptr) const;

  // Every write with a revision above this is remembered.
  Revision floor() const { return floor_; }
  size_t size() const { return order_.size(); }

 private:
  const size_t capacity_;
  Revision floor_;
  std::map<std::string, Revision, std::less<>> newest_;
  // Every remembered write, oldest first (for eviction).
  std::deque<std::pair<Revision, std::string>> order_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_DB_RECENT_WRITES_H_
