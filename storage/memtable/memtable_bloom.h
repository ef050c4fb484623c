#ifndef STRATA_STORAGE_MEMTABLE_MEMTABLE_BLOOM_H_
#define STRATA_STORAGE_MEMTABLE_MEMTABLE_BLOOM_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace strata::storage {

// An in-memory bloom filter over the user keys of one memtable, so a Get
// of a key the memtable does not hold costs one cache line instead of a
// skiplist search (about 20 dependent cache misses on a full 64 MiB
// memtable). Every Get probes the mutable memtable and each immutable one
// before the SSTables, so this matters for all reads of keys that are not
// in memory, most of all for missing keys. The idea is RocksDB's memtable
// bloom (memtable_whole_key_filtering).
//
// Layout: a cache-line-blocked bloom filter (Putze, Sanders, Singler,
// "Cache-, Hash- and Space-Efficient Bloom Filters", 2007): the key's
// 64-bit XXH3 hash picks one 64-byte block, and kProbes bits are set inside
// that block, derived from the hash by double hashing. In memory only;
// never written to disk.
//
// Thread safety: one writer (Add) at a time, any number of concurrent
// readers (MayContain) without locks. Bits are set with relaxed atomic ORs;
// a reader that happens-after an Add (the engine publishes writes by
// sequence number with release/acquire) sees its bits, so there are no
// false negatives for writes a reader is entitled to see.
class MemTableBloom {
 public:
  // A filter of `bytes` bytes, rounded up to whole 64-byte blocks (at least
  // one). Memory is zeroed and owned by the filter.
  explicit MemTableBloom(size_t bytes);
  MemTableBloom(const MemTableBloom&) = delete;
  MemTableBloom& operator=(const MemTableBloom&) = delete;

  // Records `user_key`. REQUIRES: external synchronization among writers.
  void Add(std::string_view user_key);

  // False if `user_key` was certainly never added; true if it may have been
  // (false positives at a rate that depends on bits per key: about 1% at
  // 10 bits, 0.1% at 16). Any thread.
  bool MayContain(std::string_view user_key) const;

  // Bytes of memory held.
  size_t bytes() const { return num_blocks_ * kBlockBytes; }

 private:
  static constexpr size_t kBlockBytes = 64;
  static constexpr size_t kWordsPerBlock = kBlockBytes / 8;
  static constexpr int kProbes = 6;

  struct alignas(kBlockBytes) Block {
    std::atomic<uint64_t> words[kWordsPerBlock];
  };

  // The block for `hash` (mutable: the words are atomics).
  Block& BlockFor(uint64_t hash) const;

  const size_t num_blocks_;
  const std::unique_ptr<Block[]> blocks_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_MEMTABLE_MEMTABLE_BLOOM_H_
