#ifndef STRATA_STORAGE_CACHE_LRU_CACHE_H_
#define STRATA_STORAGE_CACHE_LRU_CACHE_H_

// The block cache: a sharded LRU map from byte-string keys to opaque values,
// bounded by the total "charge" (bytes) of its entries.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

#include "strata/storage/statistics.h"

namespace strata::storage {

// A cache mapping keys to values with a capacity in bytes.
//
// Entries are reference-counted: Insert and Lookup return a pinned Handle,
// and the entry's value stays alive (and is never evicted) until every
// handle to it is Released. When the total charge of the entries exceeds
// the capacity, unpinned entries are evicted least-recently-used first;
// usage may exceed the capacity only by the charge of pinned entries (and
// falls back under it as soon as they are released). An evicted or erased
// entry's deleter runs once its last handle is released.
//
// Thread safety: all methods are safe for concurrent use. The cache is split
// into 2^num_shard_bits shards (by Hash64 of the key), each with its own
// mutex and an equal share of the capacity.
class Cache {
 public:
  // An opaque pinned entry. Owned by the cache; valid until Release.
  struct Handle;
  // Destroys a value once it has left the cache and is no longer pinned.
  // Called without any cache lock held, exactly once per inserted entry.
  using Deleter = void (*)(std::string_view key, void* value);

  Cache() = default;
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;
  // Runs the deleter of every remaining entry.
  // REQUIRES: no handle is still pinned.
  virtual ~Cache();

  // Inserts key -> value, charging `charge` bytes against the capacity, and
  // returns a handle pinning it; the caller must Release it. Replaces (and
  // erases) any existing entry with the same key. May evict unpinned
  // entries. Never fails: an entry larger than the capacity is still
  // returned pinned, and evicted once released.
  virtual Handle* Insert(std::string_view key, void* value, size_t charge,
                         Deleter deleter) = 0;

  // Returns a pinned handle for key (caller must Release), or nullptr if
  // absent. Marks the entry most-recently-used and counts a hit or a miss.
  virtual Handle* Lookup(std::string_view key) = 0;

  // Unpins an entry returned by Insert or Lookup.
  // REQUIRES: handle has not been released yet.
  virtual void Release(Handle* handle) = 0;

  // The value of a pinned entry. REQUIRES: handle not released.
  virtual void* Value(Handle* handle) = 0;

  // Removes key from the cache (no-op if absent). A pinned entry stays
  // alive, invisible to Lookup, until its last handle is released.
  virtual void Erase(std::string_view key) = 0;

  // A new number, unique within this cache, that clients use as a key
  // prefix (e.g. each open table's block keys).
  virtual uint64_t NewId() = 0;

  // Total charge in bytes of the entries currently in the cache (pinned or
  // not; erased-but-pinned entries are no longer counted).
  virtual size_t TotalCharge() const = 0;
  // The capacity in bytes given at construction.
  virtual size_t Capacity() const = 0;

  // Lookups that found / did not find their key, since construction.
  virtual uint64_t hits() const = 0;
  virtual uint64_t misses() const = 0;
};

// A sharded LRU cache with 2^num_shard_bits shards (0..20). The capacity is
// split evenly between shards, so with many shards an entry larger than
// capacity / 2^num_shard_bits evicts everything else in its shard.
std::unique_ptr<Cache> NewLRUCache(size_t capacity_bytes,
                                   int num_shard_bits = 4);

// The statistics of `cache` as the engine's block cache: its lookups
// (hits(), misses()) and charge (TotalCharge(), Capacity()).
Statistics::BlockCache BlockCacheStatistics(const Cache& cache);

// Owns one pin on a cache entry and releases it on destruction. Move-only.
// Not thread-safe (like any value type); the cache it refers to must
// outlive it.
class CacheHandle {
 public:
  CacheHandle() = default;
  // Takes over the pin `handle` (may be nullptr) on `cache`.
  CacheHandle(Cache* cache, Cache::Handle* handle)
      : cache_(cache), handle_(handle) {}
  CacheHandle(CacheHandle&& other) noexcept
      : cache_(other.cache_), handle_(std::exchange(other.handle_, nullptr)) {}
  CacheHandle& operator=(CacheHandle&& other) noexcept {
    if (this != &other) {
      reset();
      cache_ = other.cache_;
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  CacheHandle(const CacheHandle&) = delete;
  CacheHandle& operator=(const CacheHandle&) = delete;
  ~CacheHandle() { reset(); }

  explicit operator bool() const { return handle_ != nullptr; }
  Cache::Handle* get() const { return handle_; }
  Cache* cache() const { return cache_; }
  // The pinned value. REQUIRES: *this holds a handle.
  void* value() const { return cache_->Value(handle_); }
  // Releases the pin, if any.
  void reset() {
    if (handle_ != nullptr) cache_->Release(std::exchange(handle_, nullptr));
  }
  // Gives up ownership of the pin without releasing it.
  Cache::Handle* release() { return std::exchange(handle_, nullptr); }

 private:
  Cache* cache_ = nullptr;
  Cache::Handle* handle_ = nullptr;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_CACHE_LRU_CACHE_H_
