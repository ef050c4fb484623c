#ifndef STRATA_STORAGE_TABLE_TABLE_PROPERTIES_H_
#define STRATA_STORAGE_TABLE_TABLE_PROPERTIES_H_

// Statistics about one table, stored in its properties block: a block (the
// usual block format, restart interval 1) of bytewise-sorted name ->
// varint64 entries. Part of the on-disk format. Readers ignore names they
// do not know and default missing ones to 0, so properties may be added
// without a format version change.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace strata::storage {

struct TableProperties {
  uint64_t num_entries = 0;       // Key/value pairs.
  uint64_t num_data_blocks = 0;
  uint64_t raw_key_bytes = 0;     // Sum of key sizes, uncompressed.
  uint64_t raw_value_bytes = 0;   // Sum of value sizes, uncompressed.
  uint64_t data_bytes = 0;        // Data blocks on disk, with trailers.
  uint64_t index_bytes = 0;       // Index block on disk, with trailer.
  uint64_t filter_bytes = 0;      // Filter block on disk (0: no filter).
  uint64_t compression = 0;       // CompressionType asked for data blocks.
  uint64_t bloom_bits_per_key = 0;

  // Returns the properties block contents.
  std::string Encode() const;
  // Parses a properties block. Returns false if the block is malformed.
  bool Decode(std::string_view block);
  // One "name: value" line per property, for inspection tools.
  std::string ToString() const;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TABLE_TABLE_PROPERTIES_H_
