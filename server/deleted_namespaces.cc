#include "server/deleted_namespaces.h"

#include <algorithm>

#include "server/keyspace.h"

namespace strata::server {

void DeletedNamespaces::Add(uint64_t id, storage::Revision revision) {
  absl::MutexLock l(&mu_);
  auto [it, inserted] = deleted_.emplace(id, revision);
  if (!inserted) it->second = std::min(it->second, revision);
}

bool DeletedNamespaces::Contains(uint64_t id) const {
  absl::ReaderMutexLock l(&mu_);
  return deleted_.contains(id);
}

std::optional<storage::Revision> DeletedNamespaces::UnreachableSince(
    std::string_view user_key) const {
  // "\xff\xff\x01" varint64(id) key: anything else is not a namespace's.
  if (user_key.size() < 4 || user_key.substr(0, 2) != kReservedPrefix ||
      user_key[2] != kNamespaceTag) {
    return std::nullopt;
  }
  std::string_view rest = user_key.substr(3);
  uint64_t id = 0;
  if (!ConsumeVarint64(&rest, &id)) return std::nullopt;
  absl::ReaderMutexLock l(&mu_);
  auto it = deleted_.find(id);
  if (it == deleted_.end()) return std::nullopt;
  return it->second;
}

}  // namespace strata::server
