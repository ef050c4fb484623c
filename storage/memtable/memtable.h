#ifndef STRATA_STORAGE_MEMTABLE_MEMTABLE_H_
#define STRATA_STORAGE_MEMTABLE_MEMTABLE_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "memtable/arena.h"
#include "memtable/memtable_bloom.h"
#include "memtable/skiplist.h"
#include "strata/storage/iterator.h"
#include "util/dbformat.h"

namespace strata::storage {

// The in-memory write buffer: every Put and Delete since the last flush, as
// internal-key entries in a skiplist, until it becomes immutable and is
// written to a level-0 SSTable.
//
// Entry encoding in the arena (LevelDB's), one allocation per Add:
//   varint32(internal_key_len) | internal_key | varint32(value_len) | value
//   internal_key := user_key | fixed64(sequence << 8 | type)
//
// Reference counting: a new MemTable has a count of 0; its owner calls
// Ref() at once. Ref and Unref are thread-safe; the Unref that drops the
// count to 0 deletes the memtable. Whoever holds a reference may read it;
// an iterator needs a reference for its lifetime (register an Unref
// cleanup on it).
//
// Thread safety: one writer (Add) at a time, by external synchronization
// (the write-group leader); any number of readers (Get, NewIterator,
// ApproximateMemoryUsage, empty) concurrently with the writer and with each
// other, without locks. Readers see every Add that happened-before their
// call and possibly some concurrent ones, never a partial entry.
class MemTable {
 public:
  // comparator is copied; its user comparator must outlive the memtable.
  // bloom_bytes > 0 adds a bloom filter of about that many bytes over the
  // user keys (memtable/memtable_bloom.h), so Gets of keys not in this
  // memtable skip the skiplist search; 0 means none.
  explicit MemTable(const InternalKeyComparator& comparator,
                    size_t bloom_bytes = 0);
  MemTable(const MemTable&) = delete;
  MemTable& operator=(const MemTable&) = delete;

  // Thread-safe reference counting; see the class comment.
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Adds the entry (key, seq, type) -> value. A deletion (kTypeDeletion)
  // has an empty value. Copies key and value into the arena.
  // REQUIRES: external synchronization among writers; no entry with the
  // same user key and sequence number exists; seq <= kMaxSequenceNumber.
  void Add(SequenceNumber seq, ValueType type, std::string_view key,
           std::string_view value);

  // Looks up the newest entry for key.user_key() with a sequence number <=
  // the lookup key's. Returns true and fills *result (kFound with the
  // stored value, or kDeleted) if there is one; returns false, leaving
  // *result alone, if this memtable holds no such entry.
  bool Get(const LookupKey& key, LookupResult* result);

  // A new iterator over the entries in ascending internal-key order (user
  // key ascending, then newest first): key() is the internal key, value()
  // the value (empty for deletions). It needs no locks, sees entries added
  // before its creation and maybe later ones, and its status() is always
  // OK. The caller owns it (delete it); the memtable must stay referenced
  // while it lives. Seek takes an internal key.
  Iterator* NewIterator();

  // Bytes of memory held (the arena's blocks and the bloom filter), from
  // any thread.
  size_t ApproximateMemoryUsage() const {
    return arena_.MemoryUsage() + (bloom_ != nullptr ? bloom_->bytes() : 0);
  }

  // True if nothing has been added. Any thread.
  bool empty() const { return table_.empty(); }

 private:
  // Orders arena entries (length-prefixed internal keys) by the internal
  // key comparator.
  struct KeyComparator {
    const InternalKeyComparator comparator;
    explicit KeyComparator(const InternalKeyComparator& c) : comparator(c) {}
    int operator()(const char* a, const char* b) const;
  };
  using Table = SkipList<const char*, KeyComparator>;
  class MemTableIterator;

  ~MemTable();  // Only Unref deletes.

  const KeyComparator comparator_;
  std::atomic<int> refs_{0};
  Arena arena_;
  Table table_;
  // Null when disabled. Written by Add before the skiplist insert publishes
  // the entry.
  const std::unique_ptr<MemTableBloom> bloom_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_MEMTABLE_MEMTABLE_H_
