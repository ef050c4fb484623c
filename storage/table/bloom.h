#ifndef STRATA_STORAGE_TABLE_BLOOM_H_
#define STRATA_STORAGE_TABLE_BLOOM_H_

// A bloom filter over the user keys of one table (a "full filter"): a point
// lookup skips the table when the filter says its key is absent. Part of
// the on-disk format (the table's filter block); see docs/sstable-format.md.
//
//   filter    := bits:byte[n] num_probes:uint8       (n >= 8)
//
// A key sets num_probes bits chosen by double hashing its Hash64 h:
//   g_0 = h, g_{i+1} = g_i + delta, delta = rotr64(h, 21) | 1
//   bit_i = (g_i * (8 * n)) >> 64     (128-bit product: "fast range")
// Bit b lives in byte b / 8 at position b % 8 (LSB first).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::storage {

// Accumulates key hashes and serializes the filter. Not thread-safe.
class BloomFilterBuilder {
 public:
  // bits_per_key: bits of filter per distinct key added (10 gives ~1% false
  // positives). REQUIRES: bits_per_key >= 1.
  explicit BloomFilterBuilder(int bits_per_key);

  // Adds a key; adding the same key twice in a row costs nothing extra.
  void AddKey(std::string_view key);
  // Keys added since construction or the last Finish (consecutive
  // duplicates counted once).
  size_t num_keys() const { return hashes_.size(); }
  // Returns the filter over every key added and resets the builder.
  std::string Finish();

 private:
  const int bits_per_key_;
  std::vector<uint64_t> hashes_;
};

// A view over a serialized filter (which must outlive it). Thread-safe.
class BloomFilterReader {
 public:
  // An empty reader matches every key.
  BloomFilterReader() = default;
  // REQUIRES: IsValid(filter).
  explicit BloomFilterReader(std::string_view filter);

  // True if `filter` is a well-formed filter (at least 8 bytes of bits and
  // 1..30 probes).
  static bool IsValid(std::string_view filter);

  // False only if key was certainly not added.
  bool KeyMayMatch(std::string_view key) const;

 private:
  const uint8_t* bits_ = nullptr;
  uint64_t num_bits_ = 0;
  int num_probes_ = 0;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TABLE_BLOOM_H_
