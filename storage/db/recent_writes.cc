#include "db/recent_writes.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace strata::storage {

void RecentWriteIndex::Record(std::string_view key, Revision revision) {
  if (capacity_ == 0) {
    floor_ = std::max(floor_, revision);
    return;
  }
  auto it = newest_.find(key);
  if (it == newest_.end()) {
    newest_.emplace(std::string(key), revision);
  } else {
    it->second = revision;
  }
  order_.emplace_back(revision, std::string(key));
  while (order_.size() > capacity_) {
    const auto& [r, k] = order_.front();
    auto old = newest_.find(k);
    if (old != newest_.end() && old->second == r) newest_.erase(old);
    // Writes up to r may now be forgotten (r's own, and older ones of the
    // same revision that go next).
    floor_ = std::max(floor_, r);
    order_.pop_front();
  }
}

absl::StatusOr<Revision> RecentWriteIndex::NewestInRange(
    std::string_view start, std::string_view end, Revision since,
    std::string* first) const {
  if (capacity_ == 0) {
    return absl::FailedPreconditionError(
        "range conflict checks are off (conflict window of 0 keys)");
  }
  if (since < floor_) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "reads at revision %d are too old to check ranges for conflicts: "
        "the engine remembers writes after revision %d only",
        since, floor_));
  }
  Revision newest = 0;
  for (auto it = newest_.lower_bound(start);
       it != newest_.end() && (end.empty() || it->first < end); ++it) {
    if (it->second <= since) continue;
    if (newest == 0 && first != nullptr) *first = it->first;  // Key order.
    newest = std::max(newest, it->second);
  }
  return newest;
}

}  // namespace strata::storage
