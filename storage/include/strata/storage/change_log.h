#ifndef STRATA_STORAGE_CHANGE_LOG_H_
#define STRATA_STORAGE_CHANGE_LOG_H_

// The change log: every committed write, in revision order, as the engine
// keeps it (the retained WAL, docs/revisions.md). Read it from a past
// revision with DB::GetUpdatesSince (RocksDB's name), and hear of new
// writes as they commit with a CommitListener.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "strata/storage/key_metadata.h"

namespace strata::storage {

// One change of one key inside a committed write.
struct Change {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  std::string_view key;
  // The new value (kPut); empty for kDelete.
  std::string_view value;
  // The key's metadata after a kPut (mod_revision = the batch's revision);
  // for kDelete only mod_revision is set (the revision of the deletion).
  KeyMetadata metadata;
};

// One committed write: every change made at one revision, in the order the
// batch applied them (at most one change per key). The string_views point
// into `record`, which the batch shares: copying a ChangeBatch is cheap and
// keeps the bytes alive.
struct ChangeBatch {
  Revision revision = 0;
  std::vector<Change> changes;
  std::shared_ptr<const std::string> record;

  // Decodes a committed batch record (the WAL payload). Returns DataLoss if
  // it is malformed.
  static absl::Status Decode(std::shared_ptr<const std::string> record,
                             ChangeBatch* out);
};

// Reads committed batches in revision order (DB::GetUpdatesSince).
//
// Thread safety: one thread at a time. The DB must outlive it.
class ChangeIterator {
 public:
  virtual ~ChangeIterator() = default;
  // Moves to the next batch. Returns false at the end (every batch that was
  // committed when the iterator was created has been returned) or on error
  // (then status() says which: DataLoss for a damaged WAL naming the file
  // and offset; OutOfRange if the revisions it needs were compacted while
  // it read).
  virtual bool Next() = 0;
  // The current batch. REQUIRES: the last Next() returned true.
  virtual const ChangeBatch& batch() const = 0;
  virtual absl::Status status() const = 0;
};

// Hears of every committed write right after it becomes visible to reads,
// in revision order, with no gaps.
class CommitListener {
 public:
  virtual ~CommitListener() = default;
  // `batches`: the writes of one commit group, oldest first, consecutive
  // revisions. Runs on the committing thread with the engine's write lock
  // held: it must not block or call into the DB; it should queue what it
  // needs (ChangeBatch copies are cheap) and return.
  virtual void OnCommit(const std::vector<ChangeBatch>& batches) = 0;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_CHANGE_LOG_H_
