#ifndef STRATA_STORAGE_MEMTABLE_SKIPLIST_H_
#define STRATA_STORAGE_MEMTABLE_SKIPLIST_H_

// A sorted set of keys in an Arena, in the style of LevelDB's skiplist: one
// writer and any number of lock-free readers. Entries are never removed; the
// whole list is freed with its arena.
//
// Thread safety:
//   - Insert requires external synchronization (one writer at a time).
//   - Contains, empty and Iterator need no locks and may run concurrently
//     with the writer and with each other; they see every insert that
//     happened-before their call and possibly some concurrent ones.
//   - The SkipList and its Arena must outlive every reader.
//
// Memory ordering argument:
//   1. A new node x is published at level i by one release store into its
//      predecessor's link, prev[i]->SetNext(i, x), levels 0 upwards. Before
//      that store the writer has written x's key (and the arena bytes it
//      points to) and x's links at levels 0..i (relaxed stores suffice:
//      nobody can reach x through level i yet).
//   2. Readers follow links only with acquire loads (Next). An acquire load
//      that returns x synchronizes with the release store that published
//      it, so the reader sees x's key bytes and x's links at levels <= i as
//      written. A reader that reached x through level i only ever reads
//      x's links at levels <= i (searches only descend).
//   3. A link prev -> a only ever changes to prev -> x (with x -> a
//      already set, prev < x < a), so a reader that loads the old or the
//      new value still walks a sorted list; it may miss a concurrent insert
//      but never sees a partial node or an out-of-order key.
//   4. max_height_ is read and written relaxed. A reader that sees a larger
//      height before the new node's upper links are in head_ finds nullptr
//      there (head_'s links start as nullptr), which sorts after every key,
//      so it just descends a level. A reader that sees the old height never
//      uses the new levels.
//   5. Node memory is never reused while the list lives (arena), so there is
//      no ABA and no reclamation problem.

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <new>

#include "memtable/arena.h"

namespace strata::storage {

// Key: a cheap, copyable handle (the memtable uses const char*).
// Comparator: `int operator()(const Key& a, const Key& b) const` returning
// <0, 0, >0; a strict total order over the keys inserted.
template <typename Key, class Comparator>
class SkipList {
 private:
  struct Node;

 public:
  // arena: where nodes are allocated; not owned, must outlive the list.
  SkipList(Comparator cmp, Arena* arena);
  SkipList(const SkipList&) = delete;
  SkipList& operator=(const SkipList&) = delete;

  // Inserts key. REQUIRES: nothing equal to key is in the list; external
  // synchronization among writers.
  void Insert(const Key& key);

  // True if an entry equal to key is in the list.
  bool Contains(const Key& key) const;

  // True if the list has no entries.
  bool empty() const { return head_->Next(0) == nullptr; }

  // A cursor over the list, ascending. Not thread-safe itself (one per
  // thread); needs no locks with respect to the writer.
  class Iterator {
   public:
    // Initially not Valid(). list must outlive the iterator.
    explicit Iterator(const SkipList* list) : list_(list) {}

    // True when positioned at an entry.
    bool Valid() const { return node_ != nullptr; }
    // The current key. REQUIRES: Valid().
    const Key& key() const {
      assert(Valid());
      return node_->key;
    }
    // Moves to the next entry. REQUIRES: Valid().
    void Next() {
      assert(Valid());
      node_ = node_->Next(0);
    }
    // Moves to the previous entry (a search from the head: O(log n)).
    // REQUIRES: Valid().
    void Prev() {
      assert(Valid());
      node_ = list_->FindLessThan(node_->key);
      if (node_ == list_->head_) node_ = nullptr;
    }
    // Positions at the first entry >= target.
    void Seek(const Key& target) {
      node_ = list_->FindGreaterOrEqual(target, nullptr);
    }
    // Positions at the first entry, if any.
    void SeekToFirst() { node_ = list_->head_->Next(0); }
    // Positions at the last entry, if any.
    void SeekToLast() {
      node_ = list_->FindLast();
      if (node_ == list_->head_) node_ = nullptr;
    }

   private:
    const SkipList* list_;
    Node* node_ = nullptr;
  };

 private:
  static constexpr int kMaxHeight = 12;
  // Each level holds about 1/kBranching of the nodes of the level below.
  static constexpr uint32_t kBranching = 4;

  int GetMaxHeight() const {
    return max_height_.load(std::memory_order_relaxed);
  }
  Node* NewNode(const Key& key, int height);
  int RandomHeight();
  // True if key sorts after n's key (nullptr is after every key).
  bool KeyIsAfterNode(const Key& key, Node* n) const {
    return n != nullptr && compare_(n->key, key) < 0;
  }
  // The first node >= key, or nullptr. Fills prev[level] with the last
  // node < key at each level if prev is not nullptr.
  Node* FindGreaterOrEqual(const Key& key, Node** prev) const;
  // The last node < key, or head_.
  Node* FindLessThan(const Key& key) const;
  // The last node, or head_ if the list is empty.
  Node* FindLast() const;

  const Comparator compare_;
  Arena* const arena_;
  Node* const head_;
  std::atomic<int> max_height_{1};
  uint64_t rnd_ = 0x2545F4914F6CDD1Dull;  // Writer only.
};

// The links follow the node in the same arena allocation:
//   [Node: key][atomic<Node*> link 0]...[link height-1]
template <typename Key, class Comparator>
struct SkipList<Key, Comparator>::Node {
  explicit Node(const Key& k) : key(k) {}

  const Key key;

  // Acquire: the returned node is seen fully initialized.
  Node* Next(int level) {
    return link(level)->load(std::memory_order_acquire);
  }
  // Release: publishes x (and everything written before) to readers.
  void SetNext(int level, Node* x) {
    link(level)->store(x, std::memory_order_release);
  }
  // For the writer only, where no ordering is needed.
  Node* NoBarrierNext(int level) {
    return link(level)->load(std::memory_order_relaxed);
  }
  void NoBarrierSetNext(int level, Node* x) {
    link(level)->store(x, std::memory_order_relaxed);
  }

  std::atomic<Node*>* link(int level) {
    assert(level >= 0 && level < kMaxHeight);
    return reinterpret_cast<std::atomic<Node*>*>(this + 1) + level;
  }
};

template <typename Key, class Comparator>
typename SkipList<Key, Comparator>::Node* SkipList<Key, Comparator>::NewNode(
    const Key& key, int height) {
  static_assert(sizeof(Node) % alignof(std::atomic<Node*>) == 0);
  static_assert(alignof(Node) <= 8 && alignof(std::atomic<Node*>) <= 8);
  char* mem = arena_->AllocateAligned(
      sizeof(Node) + sizeof(std::atomic<Node*>) * static_cast<size_t>(height));
  Node* node = new (mem) Node(key);
  for (int i = 0; i < height; ++i) {
    new (node->link(i)) std::atomic<Node*>(nullptr);
  }
  return node;
}

template <typename Key, class Comparator>
SkipList<Key, Comparator>::SkipList(Comparator cmp, Arena* arena)
    : compare_(cmp), arena_(arena), head_(NewNode(Key(), kMaxHeight)) {}

template <typename Key, class Comparator>
int SkipList<Key, Comparator>::RandomHeight() {
  int height = 1;
  while (height < kMaxHeight) {
    // xorshift64*: cheap, and good enough for coin flips.
    rnd_ ^= rnd_ >> 12;
    rnd_ ^= rnd_ << 25;
    rnd_ ^= rnd_ >> 27;
    const uint64_t r = (rnd_ * 0x2545F4914F6CDD1Dull) >> 32;
    if (r % kBranching != 0) break;
    ++height;
  }
  return height;
}

template <typename Key, class Comparator>
typename SkipList<Key, Comparator>::Node*
SkipList<Key, Comparator>::FindGreaterOrEqual(const Key& key,
                                              Node** prev) const {
  Node* x = head_;
  int level = GetMaxHeight() - 1;
  while (true) {
    Node* next = x->Next(level);
    if (KeyIsAfterNode(key, next)) {
      x = next;
    } else {
      if (prev != nullptr) prev[level] = x;
      if (level == 0) return next;
      --level;
    }
  }
}

template <typename Key, class Comparator>
typename SkipList<Key, Comparator>::Node*
SkipList<Key, Comparator>::FindLessThan(const Key& key) const {
  Node* x = head_;
  int level = GetMaxHeight() - 1;
  while (true) {
    Node* next = x->Next(level);
    if (next != nullptr && compare_(next->key, key) < 0) {
      x = next;
    } else {
      if (level == 0) return x;
      --level;
    }
  }
}

template <typename Key, class Comparator>
typename SkipList<Key, Comparator>::Node* SkipList<Key, Comparator>::FindLast()
    const {
  Node* x = head_;
  int level = GetMaxHeight() - 1;
  while (true) {
    Node* next = x->Next(level);
    if (next != nullptr) {
      x = next;
    } else {
      if (level == 0) return x;
      --level;
    }
  }
}

template <typename Key, class Comparator>
void SkipList<Key, Comparator>::Insert(const Key& key) {
  Node* prev[kMaxHeight];
  Node* x = FindGreaterOrEqual(key, prev);
  assert(x == nullptr || compare_(key, x->key) != 0);
  (void)x;

  const int height = RandomHeight();
  const int max_height = GetMaxHeight();
  if (height > max_height) {
    for (int i = max_height; i < height; ++i) prev[i] = head_;
    // See the ordering argument, point 4.
    max_height_.store(height, std::memory_order_relaxed);
  }

  x = NewNode(key, height);
  for (int i = 0; i < height; ++i) {
    x->NoBarrierSetNext(i, prev[i]->NoBarrierNext(i));
    prev[i]->SetNext(i, x);  // Publishes x at level i.
  }
}

template <typename Key, class Comparator>
bool SkipList<Key, Comparator>::Contains(const Key& key) const {
  Node* x = FindGreaterOrEqual(key, nullptr);
  return x != nullptr && compare_(key, x->key) == 0;
}

}  // namespace strata::storage

#endif  // STRATA_STORAGE_MEMTABLE_SKIPLIST_H_
