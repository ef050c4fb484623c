#ifndef STRATA_STORAGE_TABLE_ITERATOR_WRAPPER_H_
#define STRATA_STORAGE_TABLE_ITERATOR_WRAPPER_H_

// A thin owner of an Iterator that caches Valid() and key(), saving two
// virtual calls (and key() recomputation) per comparison in merging and
// two-level iteration.

#include <string_view>
#include <utility>

#include "strata/storage/iterator.h"

namespace strata::storage {

// Owns its iterator (deleted on Set or destruction). Not thread-safe.
class IteratorWrapper {
 public:
  IteratorWrapper() = default;
  explicit IteratorWrapper(Iterator* iter) { Set(iter); }
  IteratorWrapper(IteratorWrapper&& other) noexcept
      : iter_(std::exchange(other.iter_, nullptr)),
        valid_(other.valid_),
        key_(other.key_) {}
  IteratorWrapper& operator=(IteratorWrapper&&) = delete;
  IteratorWrapper(const IteratorWrapper&) = delete;
  IteratorWrapper& operator=(const IteratorWrapper&) = delete;
  ~IteratorWrapper() { delete iter_; }

  Iterator* iter() const { return iter_; }

  // Takes ownership of iter (may be nullptr), deleting the previous one.
  void Set(Iterator* iter) {
    delete iter_;
    iter_ = iter;
    if (iter_ == nullptr) {
      valid_ = false;
    } else {
      Update();
    }
  }
  // Gives up ownership without deleting.
  Iterator* Release() {
    valid_ = false;
    return std::exchange(iter_, nullptr);
  }

  // Iterator interface; REQUIRES: iter() != nullptr except for Valid().
  bool Valid() const { return valid_; }
  std::string_view key() const { return key_; }
  std::string_view value() const { return iter_->value(); }
  absl::Status status() const { return iter_->status(); }
  void Next() { iter_->Next(); Update(); }
  void Prev() { iter_->Prev(); Update(); }
  void Seek(std::string_view k) { iter_->Seek(k); Update(); }
  void SeekToFirst() { iter_->SeekToFirst(); Update(); }
  void SeekToLast() { iter_->SeekToLast(); Update(); }

 private:
  void Update() {
    valid_ = iter_->Valid();
    if (valid_) key_ = iter_->key();
  }

  Iterator* iter_ = nullptr;
  bool valid_ = false;
  std::string_view key_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TABLE_ITERATOR_WRAPPER_H_
