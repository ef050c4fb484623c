#include "server/lease_table.h"

#include <algorithm>

namespace strata::server {

uint64_t LeaseTable::DeadlineUnixMs(uint64_t id) const {
  absl::ReaderMutexLock l(&mu_);
  const int64_t key = static_cast<int64_t>(id);
  if (auto it = live_.find(key); it != live_.end()) {
    return std::max<uint64_t>(it->second.deadline_ms, 1);
  }
  if (auto it = ended_.find(key); it != ended_.end()) {
    return std::max<uint64_t>(it->second, 1);
  }
  return 1;
}

std::optional<LeaseTable::Lease> LeaseTable::Find(int64_t id) const {
  absl::ReaderMutexLock l(&mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return std::nullopt;
  return it->second;
}

void LeaseTable::Put(const Lease& lease) {
  absl::MutexLock l(&mu_);
  auto [it, inserted] = live_.try_emplace(lease.id, lease);
  if (!inserted) {
    by_deadline_.erase({it->second.deadline_ms, lease.id});
    it->second = lease;
  }
  by_deadline_.insert({lease.deadline_ms, lease.id});
  ended_.erase(lease.id);  // A client may grant an ended lease's id again.
}

void LeaseTable::AddKeys(int64_t id, int64_t delta) {
  absl::MutexLock l(&mu_);
  auto it = live_.find(id);
  if (it != live_.end()) it->second.keys = std::max<int64_t>(0, it->second.keys + delta);
}

void LeaseTable::End(int64_t id, uint64_t ended_at_ms) {
  absl::MutexLock l(&mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return;
  // Never later than the deadline: a snapshot judged after the deadline
  // must keep judging the keys gone.
  const uint64_t end = std::min(ended_at_ms, it->second.deadline_ms);
  by_deadline_.erase({it->second.deadline_ms, id});
  live_.erase(it);
  ended_[id] = end;
  ended_order_.push_back({end, id});
  PruneEnded(ended_at_ms);
}

void LeaseTable::PruneEnded(uint64_t now_ms) {
  while (!ended_order_.empty() &&
         (ended_order_.size() > ended_max_ ||
          ended_order_.front().first + ended_retention_ms_ < now_ms)) {
    auto [at, id] = ended_order_.front();
    ended_order_.pop_front();
    auto it = ended_.find(id);
    if (it != ended_.end() && it->second == at) ended_.erase(it);
  }
}

std::vector<int64_t> LeaseTable::Due(uint64_t now_ms, size_t max) const {
  absl::ReaderMutexLock l(&mu_);
  std::vector<int64_t> due;
  for (auto it = by_deadline_.begin();
       it != by_deadline_.end() && it->first <= now_ms && due.size() < max;
       ++it) {
    due.push_back(it->second);
  }
  return due;
}

std::optional<uint64_t> LeaseTable::NextDeadline() const {
  absl::ReaderMutexLock l(&mu_);
  if (by_deadline_.empty()) return std::nullopt;
  return by_deadline_.begin()->first;
}

std::vector<int64_t> LeaseTable::Ids() const {
  absl::ReaderMutexLock l(&mu_);
  std::vector<int64_t> ids;
  ids.reserve(live_.size());
  for (const auto& [id, lease] : live_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

size_t LeaseTable::size() const {
  absl::ReaderMutexLock l(&mu_);
  return live_.size();
}

}  // namespace strata::server
