#ifndef STRATA_STORAGE_MEMTABLE_ARENA_H_
#define STRATA_STORAGE_MEMTABLE_ARENA_H_

#include <atomic>
#include <cstddef>
#include <vector>

namespace strata::storage {

// A bump allocator for memtable entries and skiplist nodes: memory is carved
// from 4 KiB blocks and freed all at once when the arena is destroyed.
// Allocations larger than a quarter block get a block of their own, so at
// most a quarter block is wasted per block.
//
// Thread safety: Allocate and AllocateAligned require external
// synchronization (the memtable's single writer); MemoryUsage may be called
// from any thread at any time. Memory handed out stays valid (and in place)
// until the arena is destroyed.
class Arena {
 public:
  Arena() = default;
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Returns `bytes` bytes with no alignment guarantee.
  // REQUIRES: bytes > 0.
  char* Allocate(size_t bytes) {
    if (bytes <= alloc_bytes_remaining_) {
      char* result = alloc_ptr_;
      alloc_ptr_ += bytes;
      alloc_bytes_remaining_ -= bytes;
      return result;
    }
    return AllocateFallback(bytes);
  }

  // Returns `bytes` bytes aligned for any scalar or pointer type
  // (alignof(std::max_align_t) is not promised; 8 bytes is).
  // REQUIRES: bytes > 0.
  char* AllocateAligned(size_t bytes);

  // Bytes allocated from the system so far (blocks plus bookkeeping): the
  // memory the arena holds, not the bytes handed out.
  size_t MemoryUsage() const {
    return memory_usage_.load(std::memory_order_relaxed);
  }

 private:
  static constexpr size_t kBlockSize = 4096;
  static constexpr size_t kAlign = alignof(void*) > 8 ? alignof(void*) : 8;
  static_assert((kAlign & (kAlign - 1)) == 0, "alignment: a power of two");

  char* AllocateFallback(size_t bytes);
  char* AllocateNewBlock(size_t block_bytes);

  char* alloc_ptr_ = nullptr;  // Next free byte of the current block.
  size_t alloc_bytes_remaining_ = 0;
  std::vector<char*> blocks_;
  std::atomic<size_t> memory_usage_{0};
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_MEMTABLE_ARENA_H_
