#ifndef STRATA_SERVER_NAMESPACE_CATALOG_H_
#define STRATA_SERVER_NAMESPACE_CATALOG_H_

// The namespace catalog (docs/namespaces.md, "Catalog layout"): which
// namespaces exist, their ids and quotas. Durable in system keys
// (keyspace.h), written only by commit functions, so a namespace is
// created, changed or deleted at one revision, serialized with every
// write:
//
//   SystemKey("ns/name/" name) -> record: u8 format (1), varint64 id,
//                                 varint64 quota_bytes, varint64 quota_keys
//   SystemKey("ns/next_id")    -> varint64: the id the next namespace gets
//                                 (absent = 1). Ids are never reused.
//   SystemKey("ns/usage/" varint64(id))
//                              -> varint64 keys, varint64 bytes: what the
//                                 namespace holds (user key + value bytes of
//                                 its live keys), updated in the same batch
//                                 as every write into it (absent = 0, 0).
//
// A copy of the catalog is kept in memory (loaded by Load, updated by Apply
// after each admin write commits), so a request resolves its namespace
// without touching the engine. The copy can lag the durable catalog by the
// admin writes in flight: a write therefore re-checks, inside its own
// commit function (Guard), that every namespace it writes still exists
// with the id it resolved, so no write lands in a namespace deleted just
// before it commits.
//
// Thread safety: safe for concurrent use; the in-memory copy is guarded by
// a mutex held only for map lookups and updates (never across I/O).

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/deleted_namespaces.h"
#include "server/keyspace.h"
#include "strata/storage/db.h"
#include "strata/storage/write_batch.h"

namespace strata::server {

// One namespace's catalog record.
struct NamespaceEntry {
  uint64_t id = 0;           // > 0; its keys' prefix (keyspace.h).
  uint64_t quota_bytes = 0;  // 0 = unlimited.
  uint64_t quota_keys = 0;   // 0 = unlimited.
};

// The stored key of `name`'s catalog record, of the next-id counter and of
// namespace `id`'s usage record.
std::string NamespaceCatalogKey(std::string_view name);
std::string NamespaceNextIdKey();
std::string NamespaceUsageKey(uint64_t id);

// What a namespace holds (its usage record).
struct NamespaceUsage {
  uint64_t keys = 0;
  uint64_t bytes = 0;  // User key + value bytes of its live keys.
};
// The record's stored form, and back (DataLoss for malformed bytes).
std::string EncodeNamespaceEntry(const NamespaceEntry& entry);
absl::StatusOr<NamespaceEntry> DecodeNamespaceEntry(std::string_view bytes);

class NamespaceCatalog {
 public:
  // `db` must outlive the catalog, and so must `deleted` (may be null: then
  // deletions are not recorded for compaction).
  explicit NamespaceCatalog(storage::DB* db,
                            DeletedNamespaces* deleted = nullptr)
      : db_(db), deleted_(deleted) {}
  NamespaceCatalog(const NamespaceCatalog&) = delete;
  NamespaceCatalog& operator=(const NamespaceCatalog&) = delete;

  // Reads the durable catalog into memory. Once, before the server serves.
  // Records every id below the next id without a catalog record as deleted
  // (in `deleted`, at revision 0). DataLoss for a malformed record or next
  // id; the engine's read errors as they are.
  absl::Status Load();

  // OK if `name` is a valid namespace name: 1..255 bytes of
  // [A-Za-z0-9._/-]; InvalidArgument (saying why) otherwise.
  static absl::Status ValidateName(std::string_view name);

  // The view of namespace `name` ("" = the default). InvalidArgument for a
  // malformed name, NotFound "namespace \"n\" does not exist" for an
  // unknown one.
  absl::StatusOr<KeyspaceView> Resolve(std::string_view name) const;

  // Resolves a request's namespace (`fallback`, for the parts that name
  // none) and every name in `names` (empty ones are skipped). Errors as
  // Resolve, for the first name that fails.
  absl::StatusOr<NamespaceViews> ResolveAll(
      std::string_view fallback, const std::vector<std::string_view>& names)
      const;

  // Makes `batch` commit only if every non-default namespace of `views`
  // still exists with the id it resolved to: wraps the batch's commit
  // function (if any) in one that checks the catalog records first, on the
  // CommitView, and fails the write with NotFound otherwise (nothing is
  // written). After the wrapped function ran, it updates the usage record
  // of every named namespace the batch writes and enforces the quotas:
  // ResourceExhausted (naming the namespace and the quota; nothing is
  // written) if the batch would take a namespace's keys or bytes above a
  // non-zero quota. A batch that only shrinks a namespace (deletes, smaller
  // values) is always allowed. Costs one CommitView lookup per key written
  // into a named namespace, on the commit thread. A batch of the default
  // namespace only is left unchanged.
  static void Guard(const NamespaceViews& views, storage::WriteBatch* batch);

  // Makes `batch` (deletes by the server itself: expiry, leases) keep the
  // usage records of the named namespaces it writes up to date, without
  // quota checks: wraps its commit function.
  static void AccountUsage(storage::WriteBatch* batch);

  // The usage record of namespace `id` (keys; bytes of user keys plus
  // values), as of the latest revision. A blocking engine read: call it on
  // the blocking pool, never on a polling thread. DataLoss for a malformed
  // record; the engine's read errors (DataLoss, Unavailable) as they are.
  absl::StatusOr<NamespaceUsage> ReadUsage(uint64_t id) const;

  // Admin writes. Each returns a batch whose commit function checks and
  // writes the durable catalog at commit time; hand it to DB::WriteAsync
  // and, once it committed at revision r, call Apply(name, *result, r)
  // (`result` is filled at commit time).
  //   Create: AlreadyExists if `name` exists; takes the next id.
  //   Delete: NotFound if it does not exist; *result is the entry that was
  //   deleted (call Apply with nullopt, and RecordDeleted with its id).
  //   Update: NotFound if it does not exist; sets each quota given (nullopt:
  //   keeps that one).
  // The name must have passed ValidateName. The commit functions also
  // return DataLoss for a malformed catalog record or next id. *result is
  // written by the engine's commit thread when the batch commits (cleared
  // first, so a retried group does not see a stale value) and may be read
  // in the write's callback, which runs after it.
  using Result = std::shared_ptr<std::optional<NamespaceEntry>>;
  static storage::WriteBatch CreateBatch(std::string name,
                                         uint64_t quota_bytes,
                                         uint64_t quota_keys, Result result);
  static storage::WriteBatch DeleteBatch(std::string name, Result result);
  static storage::WriteBatch UpdateBatch(std::string name,
                                         std::optional<uint64_t> quota_bytes,
                                         std::optional<uint64_t> quota_keys,
                                         Result result);

  // Records that `name` is `entry` (nullopt: deleted) as of `revision`,
  // unless the copy already holds a later revision's state of it (admin
  // callbacks may run out of commit order).
  void Apply(const std::string& name,
             const std::optional<NamespaceEntry>& entry,
             storage::Revision revision);

  // Records that namespace `id` was deleted at `revision` (durably), for
  // compaction to drop its keys. No-op without `deleted`.
  void RecordDeleted(uint64_t id, storage::Revision revision);

  // Every namespace whose name starts with `prefix`, in name order.
  std::vector<std::pair<std::string, NamespaceEntry>> List(
      std::string_view prefix) const;

 private:
  struct Known {
    std::optional<NamespaceEntry> entry;  // nullopt: deleted.
    storage::Revision revision = 0;       // Of the write that set it.
  };

  storage::DB* const db_;
  DeletedNamespaces* const deleted_;
  mutable absl::Mutex mu_;
  std::map<std::string, Known, std::less<>> known_ ABSL_GUARDED_BY(mu_);
};

}  // namespace strata::server

#endif  // STRATA_SERVER_NAMESPACE_CATALOG_H_
