#ifndef STRATA_STORAGE_UTIL_CHECKSUM_H_
#define STRATA_STORAGE_UTIL_CHECKSUM_H_

// The checksum of every on-disk structure: the low 32 bits of xxHash's
// XXH3_64bits (libxxhash, seeded), chosen for speed. Part of the on-disk
// format.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <xxhash.h>

namespace strata::storage {

// Checksum of data, seeded so that the same bytes in different roles (a WAL
// record type, a block type) checksum differently.
inline uint32_t Checksum32(const void* data, size_t n, uint64_t seed = 0) {
  return static_cast<uint32_t>(XXH3_64bits_withSeed(data, n, seed));
}
inline uint32_t Checksum32(std::string_view data, uint64_t seed = 0) {
  return Checksum32(data.data(), data.size(), seed);
}

// 64-bit hash for bloom filters and cache sharding.
inline uint64_t Hash64(std::string_view data) {
  return XXH3_64bits(data.data(), data.size());
}

}  // namespace strata::storage

#endif  // STRATA_STORAGE_UTIL_CHECKSUM_H_
