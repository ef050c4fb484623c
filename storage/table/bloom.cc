#include "table/bloom.h"

#include <algorithm>
#include <cmath>

#include "util/checksum.h"

namespace strata::storage {

namespace {

constexpr int kMaxProbes = 30;

inline uint64_t Delta(uint64_t h) { return ((h >> 21) | (h << 43)) | 1; }

// Maps a 64-bit hash uniformly onto [0, n) without a division.
inline uint64_t FastRange(uint64_t h, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(h) * n) >> 64);
}

}  // namespace

BloomFilterBuilder::BloomFilterBuilder(int bits_per_key)
    : bits_per_key_(std::max(bits_per_key, 1)) {}

void BloomFilterBuilder::AddKey(std::string_view key) {
  uint64_t h = Hash64(key);
  if (!hashes_.empty() && hashes_.back() == h) return;
  hashes_.push_back(h);
}

std::string BloomFilterBuilder::Finish() {
  // k = bits_per_key * ln 2 minimizes the false-positive rate.
  int num_probes = static_cast<int>(std::lround(bits_per_key_ * 0.69));
  num_probes = std::clamp(num_probes, 1, kMaxProbes);
  uint64_t bits = static_cast<uint64_t>(hashes_.size()) * bits_per_key_;
  bits = std::max<uint64_t>(bits, 64);
  const uint64_t bytes = (bits + 7) / 8;
  bits = bytes * 8;

  std::string filter(bytes + 1, '\0');
  auto* array = reinterpret_cast<uint8_t*>(filter.data());
  for (uint64_t h : hashes_) {
    const uint64_t delta = Delta(h);
    for (int i = 0; i < num_probes; i++) {
      const uint64_t b = FastRange(h, bits);
      array[b >> 3] |= static_cast<uint8_t>(1u << (b & 7));
      h += delta;
    }
  }
  filter[bytes] = static_cast<char>(num_probes);
  hashes_.clear();
  return filter;
}

bool BloomFilterReader::IsValid(std::string_view filter) {
  if (filter.size() < 9) return false;
  int probes = static_cast<uint8_t>(filter.back());
  return probes >= 1 && probes <= kMaxProbes;
}

BloomFilterReader::BloomFilterReader(std::string_view filter)
    : bits_(reinterpret_cast<const uint8_t*>(filter.data())),
      num_bits_(static_cast<uint64_t>(filter.size() - 1) * 8),
      num_probes_(static_cast<uint8_t>(filter.back())) {}

bool BloomFilterReader::KeyMayMatch(std::string_view key) const {
  if (num_probes_ == 0) return true;
  uint64_t h = Hash64(key);
  const uint64_t delta = Delta(h);
  for (int i = 0; i < num_probes_; i++) {
    const uint64_t b = FastRange(h, num_bits_);
    if ((bits_[b >> 3] & (1u << (b & 7))) == 0) return false;
    h += delta;
  }
  return true;
}

}  // namespace strata::storage
