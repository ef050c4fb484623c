#ifndef STRATA_SERVER_DELETED_NAMESPACES_H_
#define STRATA_SERVER_DELETED_NAMESPACES_H_

// The namespaces that were deleted, as the engine's CompactionFilter: the
// keys of a deleted namespace are dropped by the compactions that merge
// them, so DeleteNamespace's space comes back without a synchronous
// rewrite (docs/namespaces.md, "Deleting: what happens to the data").
//
// Why dropping them is safe (the CompactionFilter contract: nobody reads
// such a key again at any revision): every request names its namespace by
// name and resolves it to an id in the catalog as it is now; a deleted
// namespace's name no longer resolves to its id, ids are never reused, and
// a write still in flight to it fails in its commit function (Guard). So
// from the deletion's revision on, no Get, Scan, Txn, Watch or read at a
// past revision can reach the id's keys: the history window keeps nothing
// a client could ask for. Requests that resolved the id just before the
// deletion and read through a snapshot are protected by the engine (a key
// is dropped only when every live snapshot is at or after the deletion);
// iterators pin the files they read. The change log (WAL files within the
// history window) keeps the namespace's writes: incremental backups still
// carry them, and the DeleteNamespace after them, so a restore ends with
// the namespace deleted too (and its own compactions drop the keys).
// Checkpoints and full backups already taken keep their files; those taken
// later simply lack keys nobody could read.
//
// Filled by the namespace catalog: at Load with every id below the next id
// that has no catalog record, and after each DeleteNamespace is durable
// (never before: a failed delete must not lose live keys). Memory: one
// entry (about 32 bytes) per namespace ever deleted.
//
// Thread safety: safe for concurrent use; UnreachableSince runs on the
// engine's compaction threads, Add on engine callback threads.

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "strata/storage/options.h"

namespace strata::server {

class DeletedNamespaces final : public storage::CompactionFilter {
 public:
  // Records that namespace `id` was deleted at `revision` (0: before any
  // reader of this process, as at start). A second Add keeps the earlier
  // revision.
  void Add(uint64_t id, storage::Revision revision);

  // Whether namespace `id` is recorded as deleted.
  bool Contains(uint64_t id) const;

  // For a stored key of a deleted namespace (keyspace.h), the revision it
  // was deleted at; nullopt for every other key (default namespace, system
  // keys, live namespaces). Cheap for keys outside named namespaces (no
  // lock); otherwise a varint decode and a hash lookup under a reader lock.
  std::optional<storage::Revision> UnreachableSince(
      std::string_view user_key) const override;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, storage::Revision> deleted_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace strata::server

#endif  // STRATA_SERVER_DELETED_NAMESPACES_H_
