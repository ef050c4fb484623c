#ifndef STRATA_STORAGE_ITERATOR_H_
#define STRATA_STORAGE_ITERATOR_H_

#include <functional>
#include <string_view>

#include "absl/status/status.h"
#include "strata/storage/key_metadata.h"

namespace strata::storage {

// An ordered cursor over key/value pairs.
//
// Thread safety: an Iterator is not safe for concurrent use; use one per
// thread. Different iterators over the same DB may be used concurrently.
// Lifetime: key() and value() stay valid until the next call that moves the
// iterator or its destruction.
class Iterator {
 public:
  Iterator() = default;
  Iterator(const Iterator&) = delete;
  Iterator& operator=(const Iterator&) = delete;
  // Runs the registered cleanup functions.
  virtual ~Iterator();

  // True when positioned at a pair. False past the end or on error.
  virtual bool Valid() const = 0;
  // Positions at the first pair, if any.
  virtual void SeekToFirst() = 0;
  // Positions at the last pair, if any.
  virtual void SeekToLast() = 0;
  // Positions at the first pair whose key is >= target.
  virtual void Seek(std::string_view target) = 0;
  // Moves to the next pair. REQUIRES: Valid().
  virtual void Next() = 0;
  // Moves to the previous pair. REQUIRES: Valid().
  virtual void Prev() = 0;
  // The current key. REQUIRES: Valid().
  virtual std::string_view key() const = 0;
  // The current value. REQUIRES: Valid().
  virtual std::string_view value() const = 0;
  // The current key's metadata (revisions, version, attributes), for
  // iterators over a DB (DB::NewIterator, CommitView::NewIterator); other
  // iterators return an empty KeyMetadata. REQUIRES: Valid().
  virtual KeyMetadata metadata() const { return KeyMetadata(); }
  // OK unless an error (e.g. DataLoss for a corrupt block) stopped the
  // iteration; an iterator with a non-OK status is not Valid().
  virtual absl::Status status() const = 0;

  // Registers fn to run when the iterator is destroyed (releases pinned
  // blocks, versions, memtables).
  void RegisterCleanup(std::function<void()> fn);

 private:
  struct Cleanup {
    std::function<void()> fn;
    Cleanup* next = nullptr;
  };
  Cleanup* cleanup_head_ = nullptr;
};

// An iterator over nothing, with the given status (OK or an error).
Iterator* NewEmptyIterator();
Iterator* NewErrorIterator(const absl::Status& status);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_ITERATOR_H_
