#include "cache/lru_cache.h"

#include <atomic>
#include <cstring>
#include <new>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "util/mutex.h"
#include "util/checksum.h"

namespace strata::storage {

struct Cache::Handle {};

Cache::~Cache() = default;

namespace {

// One entry. Lives in exactly one of its shard's two lists while in_cache:
//   lru_     refs == 1 (only the cache's reference): evictable, oldest first.
//   in_use_  refs >= 2 (pinned by clients): never evicted.
// An entry erased or evicted while pinned is in neither list and is freed
// when its last handle is released.
struct LRUHandle : Cache::Handle {
  void* value;
  Cache::Deleter deleter;
  LRUHandle* next_hash;  // Bucket chain of the HandleTable.
  LRUHandle* next;       // LRU / in-use list links.
  LRUHandle* prev;
  size_t charge;
  size_t key_length;
  uint64_t hash;
  uint32_t refs;
  bool in_cache;
  char key_data[1];  // The key's bytes follow (allocated with the handle).

  std::string_view key() const { return {key_data, key_length}; }

  static LRUHandle* New(std::string_view key) {
    void* mem = ::operator new(offsetof(LRUHandle, key_data) + key.size() + 1);
    auto* h = new (mem) LRUHandle;
    h->key_length = key.size();
    std::memcpy(h->key_data, key.data(), key.size());
    return h;
  }
  // Runs the deleter and frees the handle.
  void Destroy() {
    deleter(key(), value);
    this->~LRUHandle();
    ::operator delete(this);
  }
};

// A chained hash table of handles keyed by (hash, key), growing to keep
// chains at most one entry long on average. Cheaper than a generic map: the
// handle itself is the node.
class HandleTable {
 public:
  HandleTable() { Resize(); }
  ~HandleTable() { delete[] list_; }

  LRUHandle* Lookup(std::string_view key, uint64_t hash) {
    return *FindPointer(key, hash);
  }

  // Inserts h and returns the entry it replaced (or nullptr).
  LRUHandle* Insert(LRUHandle* h) {
    LRUHandle** ptr = FindPointer(h->key(), h->hash);
    LRUHandle* old = *ptr;
    h->next_hash = (old == nullptr ? nullptr : old->next_hash);
    *ptr = h;
    if (old == nullptr) {
      ++elems_;
      if (elems_ > length_) Resize();
    }
    return old;
  }

  LRUHandle* Remove(std::string_view key, uint64_t hash) {
    LRUHandle** ptr = FindPointer(key, hash);
    LRUHandle* result = *ptr;
    if (result != nullptr) {
      *ptr = result->next_hash;
      --elems_;
    }
    return result;
  }

 private:
  // The slot that points to the matching entry, or the trailing null slot
  // of its bucket.
  LRUHandle** FindPointer(std::string_view key, uint64_t hash) {
    LRUHandle** ptr = &list_[hash & (length_ - 1)];
    while (*ptr != nullptr &&
           ((*ptr)->hash != hash || (*ptr)->key() != key)) {
      ptr = &(*ptr)->next_hash;
    }
    return ptr;
  }

  void Resize() {
    size_t new_length = 16;
    while (new_length < elems_ * 3 / 2) new_length *= 2;
    auto** new_list = new LRUHandle*[new_length]();
    for (size_t i = 0; i < length_; i++) {
      LRUHandle* h = list_[i];
      while (h != nullptr) {
        LRUHandle* next = h->next_hash;
        LRUHandle** slot = &new_list[h->hash & (new_length - 1)];
        h->next_hash = *slot;
        *slot = h;
        h = next;
      }
    }
    delete[] list_;
    list_ = new_list;
    length_ = new_length;
  }

  size_t length_ = 0;
  size_t elems_ = 0;
  LRUHandle** list_ = nullptr;
};

// One shard: a mutex, its table and its two lists. Deleters run after the
// mutex is released (they may be slow), collected on a chain through
// next_hash.
class alignas(64) LRUShard {
 public:
  LRUShard() {
    lru_.next = lru_.prev = &lru_;
    in_use_.next = in_use_.prev = &in_use_;
  }
  ~LRUShard() {
    // Handles still pinned here would be a client bug; free what is left.
    for (LRUHandle* e = lru_.next; e != &lru_;) {
      LRUHandle* next = e->next;
      e->Destroy();
      e = next;
    }
  }

  void SetCapacity(size_t capacity) { capacity_ = capacity; }

  LRUHandle* Insert(std::string_view key, uint64_t hash, void* value,
                    size_t charge, Cache::Deleter deleter) {
    LRUHandle* e = LRUHandle::New(key);
    e->value = value;
    e->deleter = deleter;
    e->charge = charge;
    e->hash = hash;
    e->refs = 2;  // The cache's and the returned handle's.
    e->in_cache = true;
    LRUHandle* garbage = nullptr;
    {
      MutexLock lock(&mu_);
      Append(&in_use_, e);
      usage_ += charge;
      LRUHandle* old = table_.Insert(e);
      if (old != nullptr) FinishErase(old, &garbage);
      EvictToCapacity(&garbage);
    }
    DestroyChain(garbage);
    return e;
  }

  LRUHandle* Lookup(std::string_view key, uint64_t hash) {
    MutexLock lock(&mu_);
    LRUHandle* e = table_.Lookup(key, hash);
    if (e == nullptr) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    hits_.fetch_add(1, std::memory_order_relaxed);
    Ref(e);
    return e;
  }

  void Release(LRUHandle* e) {
    LRUHandle* garbage = nullptr;
    {
      MutexLock lock(&mu_);
      Unref(e, &garbage);
      if (e->in_cache && e->refs == 1) EvictToCapacity(&garbage);
    }
    DestroyChain(garbage);
  }

  void Erase(std::string_view key, uint64_t hash) {
    LRUHandle* garbage = nullptr;
    {
      MutexLock lock(&mu_);
      LRUHandle* e = table_.Remove(key, hash);
      if (e != nullptr) FinishErase(e, &garbage);
    }
    DestroyChain(garbage);
  }

  size_t usage() const {
    MutexLock lock(&mu_);
    return usage_;
  }
  uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }

 private:
  static void Remove(LRUHandle* e) {
    e->next->prev = e->prev;
    e->prev->next = e->next;
  }
  // Makes e the newest entry of list.
  static void Append(LRUHandle* list, LRUHandle* e) {
    e->next = list;
    e->prev = list->prev;
    e->prev->next = e;
    e->next->prev = e;
  }
  static void DestroyChain(LRUHandle* e) {
    while (e != nullptr) {
      LRUHandle* next = e->next_hash;
      e->Destroy();
      e = next;
    }
  }

  void Ref(LRUHandle* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (e->refs == 1 && e->in_cache) {  // Leaves the evictable list.
      Remove(e);
      Append(&in_use_, e);
    }
    e->refs++;
  }

  // Drops one reference; a dead entry is chained onto *garbage.
  void Unref(LRUHandle* e, LRUHandle** garbage)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    e->refs--;
    if (e->refs == 0) {
      e->next_hash = *garbage;
      *garbage = e;
    } else if (e->in_cache && e->refs == 1) {  // No longer pinned.
      Remove(e);
      Append(&lru_, e);
    }
  }

  // Takes e (already removed from table_) out of the cache.
  void FinishErase(LRUHandle* e, LRUHandle** garbage)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Remove(e);
    e->in_cache = false;
    usage_ -= e->charge;
    Unref(e, garbage);
  }

  void EvictToCapacity(LRUHandle** garbage)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (usage_ > capacity_ && lru_.next != &lru_) {
      LRUHandle* old = lru_.next;
      table_.Remove(old->key(), old->hash);
      FinishErase(old, garbage);
    }
  }

  size_t capacity_ = 0;
  mutable Mutex mu_;
  size_t usage_ ABSL_GUARDED_BY(mu_) = 0;
  LRUHandle lru_ ABSL_GUARDED_BY(mu_);     // Dummy head: next is oldest.
  LRUHandle in_use_ ABSL_GUARDED_BY(mu_);  // Dummy head.
  HandleTable table_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
};

class ShardedLRUCache final : public Cache {
 public:
  ShardedLRUCache(size_t capacity, int num_shard_bits)
      : capacity_(capacity),
        shard_bits_(num_shard_bits),
        shards_(size_t{1} << num_shard_bits) {
    const size_t n = shards_.size();
    for (LRUShard& s : shards_) s.SetCapacity((capacity + n - 1) / n);
  }

  Handle* Insert(std::string_view key, void* value, size_t charge,
                 Deleter deleter) override {
    uint64_t h = Hash64(key);
    return Shard(h).Insert(key, h, value, charge, deleter);
  }
  Handle* Lookup(std::string_view key) override {
    uint64_t h = Hash64(key);
    return Shard(h).Lookup(key, h);
  }
  void Release(Handle* handle) override {
    auto* e = static_cast<LRUHandle*>(handle);
    Shard(e->hash).Release(e);
  }
  void* Value(Handle* handle) override {
    return static_cast<LRUHandle*>(handle)->value;
  }
  void Erase(std::string_view key) override {
    uint64_t h = Hash64(key);
    Shard(h).Erase(key, h);
  }
  uint64_t NewId() override {
    return last_id_.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  size_t TotalCharge() const override {
    size_t total = 0;
    for (const LRUShard& s : shards_) total += s.usage();
    return total;
  }
  size_t Capacity() const override { return capacity_; }
  uint64_t hits() const override {
    uint64_t n = 0;
    for (const LRUShard& s : shards_) n += s.hits();
    return n;
  }
  uint64_t misses() const override {
    uint64_t n = 0;
    for (const LRUShard& s : shards_) n += s.misses();
    return n;
  }

 private:
  // The shard comes from the top bits; HandleTable uses the low bits.
  LRUShard& Shard(uint64_t hash) {
    return shards_[shard_bits_ == 0 ? 0 : hash >> (64 - shard_bits_)];
  }

  const size_t capacity_;
  const int shard_bits_;
  std::vector<LRUShard> shards_;
  std::atomic<uint64_t> last_id_{0};
};

}  // namespace

std::unique_ptr<Cache> NewLRUCache(size_t capacity_bytes, int num_shard_bits) {
  if (num_shard_bits < 0) num_shard_bits = 0;
  if (num_shard_bits > 20) num_shard_bits = 20;
  return std::make_unique<ShardedLRUCache>(capacity_bytes, num_shard_bits);
}

Statistics::BlockCache BlockCacheStatistics(const Cache& cache) {
  return {.hits = cache.hits(),
          .misses = cache.misses(),
          .usage_bytes = cache.TotalCharge(),
          .capacity_bytes = cache.Capacity()};
}

}  // namespace strata::storage
