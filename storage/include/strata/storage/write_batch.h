#ifndef STRATA_STORAGE_WRITE_BATCH_H_
#define STRATA_STORAGE_WRITE_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "strata/storage/iterator.h"
#include "strata/storage/key_metadata.h"

namespace strata::storage {

class CommitView;
class WriteBatch;

// A function the engine runs when a batch commits, with read access to the
// state the batch commits on top of (see CommitView). It may append
// operations to `batch` (after those put in up front) and read whatever it
// needs; this is how guarded and read-modify-write operations (range
// deletes, compare-and-set, increments) stay atomic without locks around
// them. Returning a non-OK status fails this write alone: none of its
// operations are applied and the status is what the writer receives.
//
// It runs on the commit leader's thread, serialized with every other
// write, so it must be quick and must not call into the DB (only into the
// view). It is called exactly once per successful commit attempt, or not
// at all if the write fails before (e.g. the DB is read-only).
using CommitFunction = std::function<absl::Status(CommitView* view,
                                                  WriteBatch* batch)>;

// An ordered list of Put and Delete operations applied atomically by
// DB::Write at one revision: after a crash either all of them are visible
// or none is. When a key appears more than once, its last operation wins
// (the earlier ones are dropped, not applied one after the other). A
// Delete of a key that does not exist is dropped; a batch left with no
// operation commits nothing and takes no revision.
//
// Thread safety: not safe for concurrent mutation; const methods may be
// called concurrently.
//
// Representation (docs/wal-format.md, "Batches"):
//   revision: fixed64 | count: fixed32 | op*
//   op := 0x01 varstring(key) varstring(value)                   (Put)
//       | 0x03 varstring(key) attributes varstring(value)        (Put with
//                                                                 attributes)
//       | 0x00 varstring(key)                                    (Delete)
class WriteBatch {
 public:
  // Receives the operations of a batch in order.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void Put(std::string_view key, std::string_view value,
                     const PutAttributes& attributes) = 0;
    virtual void Delete(std::string_view key) = 0;
  };

  WriteBatch();
  WriteBatch(const WriteBatch&) = default;
  WriteBatch& operator=(const WriteBatch&) = default;
  WriteBatch(WriteBatch&&) = default;
  WriteBatch& operator=(WriteBatch&&) = default;

  // Appends "set key to value".
  void Put(std::string_view key, std::string_view value);
  // Appends "set key to value" with attributes (expiry, lease, type).
  void Put(std::string_view key, std::string_view value,
           const PutAttributes& attributes);
  // Appends "remove key" (a tombstone; removing a missing key is a no-op).
  void Delete(std::string_view key);
  // Removes every operation and the commit function.
  void Clear();
  // Number of operations.
  uint32_t Count() const;
  // Bytes of the encoded batch; the memory and WAL cost of the write.
  size_t ApproximateSize() const { return rep_.size(); }
  // Appends every operation of `source` to this batch (not its commit
  // function).
  void Append(const WriteBatch& source);

  // Sets the function the engine runs at commit time (see CommitFunction);
  // replaces any earlier one.
  void SetCommitFunction(CommitFunction fn) { commit_fn_ = std::move(fn); }
  const CommitFunction& commit_function() const { return commit_fn_; }

  // Calls handler for each operation in order. Returns DataLoss if the
  // representation is malformed (only possible for a batch decoded from
  // bytes).
  absl::Status Iterate(Handler* handler) const;

 private:
  friend class WriteBatchInternal;
  std::string rep_;
  CommitFunction commit_fn_;
};

// What a CommitFunction may read: the latest committed state plus the
// writes of the batches committing just before it in the same group (so
// it sees exactly what it will commit on top of).
//
// Thread safety: used only inside the CommitFunction call it is passed to.
class CommitView {
 public:
  virtual ~CommitView() = default;
  // The revision this batch will commit at if it writes anything.
  virtual Revision revision() const = 0;
  // The revision the view shows (revision() - 1).
  virtual Revision base_revision() const = 0;
  // The current value and metadata of key. NotFound if absent; DataLoss or
  // Unavailable if the lookup failed (the write then fails too).
  virtual absl::Status Get(std::string_view key, std::string* value,
                           KeyMetadata* metadata) = 0;
  // Like Get, but a key whose TTL or lease has ended and that no delete has
  // removed yet is returned too: what is still stored, for accounting the
  // space a batch frees or takes (namespace quotas). Same errors as Get.
  virtual absl::Status GetStored(std::string_view key, std::string* value,
                                 KeyMetadata* metadata) = 0;
  // An iterator over the same state (metadata() gives each key's metadata).
  // The caller owns it and deletes it before returning.
  virtual std::unique_ptr<Iterator> NewIterator() = 0;
  // The revision of the newest change to key (a put or a delete) still
  // known, or 0 if there is none (never written, or only changes at or
  // below the compacted revision, which compaction may have dropped). For
  // optimistic transactions: a key read at revision R is unchanged iff
  // this is <= R (with R at or above the compacted revision). Errors: as
  // Get.
  virtual absl::StatusOr<Revision> LastChangeRevision(std::string_view key) = 0;
  // The newest revision after `since` at which any key in [start, end) was
  // written (end empty: no upper bound; deletes and creations count, so a
  // range read at `since` sees no phantom), or 0 if none. With
  // `first_changed` (optional), also the smallest such key (left untouched
  // when there is none), to name a conflict. Answered from the engine's
  // window of recent writes (Options::conflict_window_keys), not by
  // scanning: FailedPrecondition if writes after `since` may have left the
  // window (or the window is off), with a message naming the oldest
  // revision it covers.
  virtual absl::StatusOr<Revision> LastChangeInRange(
      std::string_view start, std::string_view end, Revision since,
      std::string* first_changed = nullptr) = 0;
  // The compacted revision as of this view (DB::CompactedRevision() when
  // the group's state was pinned; it may advance while the commit runs,
  // but nothing this view reads is affected). Every change above it is
  // known to LastChangeRevision, so a read at R > compacted_revision() can
  // be checked exactly; at or below it, a deletion may have been forgotten.
  virtual Revision compacted_revision() const = 0;
  // The wall clock (Env::NowUnixMillis) this commit judges expiry by: a key
  // whose deadline is at or before it is absent for Get and NewIterator.
  virtual uint64_t now_unix_ms() const = 0;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_WRITE_BATCH_H_
