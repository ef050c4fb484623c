#include "memtable/memtable_bloom.h"

#include <algorithm>

#include <xxhash.h>

namespace strata::storage {
namespace {

uint64_t HashKey(std::string_view key) {
  return XXH3_64bits(key.data(), key.size());
}

}  // namespace

MemTableBloom::MemTableBloom(size_t bytes)
    : num_blocks_(std::max<size_t>(1, (bytes + kBlockBytes - 1) / kBlockBytes)),
      blocks_(new Block[num_blocks_]) {
  for (size_t b = 0; b < num_blocks_; ++b) {
    for (auto& w : blocks_[b].words) w.store(0, std::memory_order_relaxed);
  }
}

MemTableBloom::Block& MemTableBloom::BlockFor(uint64_t hash) const {
  // Lemire's multiply-shift maps the high half of the hash onto
  // [0, num_blocks_) without a division.
  const uint64_t index =
      static_cast<uint64_t>((static_cast<unsigned __int128>(hash >> 32) *
                             num_blocks_) >>
                            32);
  return blocks_[index];
}

void MemTableBloom::Add(std::string_view user_key) {
  const uint64_t hash = HashKey(user_key);
  Block& block = BlockFor(hash);
  // Double hashing on the low half picks kProbes bits of the block's 512.
  uint32_t h = static_cast<uint32_t>(hash);
  const uint32_t delta = (h >> 17) | (h << 15);
  for (int i = 0; i < kProbes; ++i) {
    const uint32_t bit = h % (kBlockBytes * 8);
    block.words[bit / 64].fetch_or(uint64_t{1} << (bit % 64),
                                   std::memory_order_relaxed);
    h += delta;
  }
}

bool MemTableBloom::MayContain(std::string_view user_key) const {
  const uint64_t hash = HashKey(user_key);
  const Block& block = BlockFor(hash);
  uint32_t h = static_cast<uint32_t>(hash);
  const uint32_t delta = (h >> 17) | (h << 15);
  for (int i = 0; i < kProbes; ++i) {
    const uint32_t bit = h % (kBlockBytes * 8);
    if ((block.words[bit / 64].load(std::memory_order_relaxed) &
         (uint64_t{1} << (bit % 64))) == 0) {
      return false;
    }
    h += delta;
  }
  return true;
}

}  // namespace strata::storage
