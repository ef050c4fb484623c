#ifndef STRATA_STORAGE_TABLE_BLOCK_BUILDER_H_
#define STRATA_STORAGE_TABLE_BLOCK_BUILDER_H_

// Builds a block: sorted key/value entries with prefix-compressed keys and
// a restart array (LevelDB's block format). Part of the on-disk format; see
// docs/sstable-format.md.
//
//   block   := entry* restart:fixed32 * num_restarts num_restarts:fixed32
//   entry   := shared:varint32 unshared:varint32 value_length:varint32
//              key_delta:byte[unshared] value:byte[value_length]
//
// An entry's key is the first `shared` bytes of the previous entry's key
// followed by key_delta. Every block_restart_interval entries a "restart
// point" stores its key whole (shared == 0); restart[i] is the offset of
// the i-th restart point in the block, so readers can binary-search them.
// A block always has at least one restart point (an empty block is just
// fixed32(0) fixed32(1)).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::storage {

// Not thread-safe: one builder per table being written.
class BlockBuilder {
 public:
  // REQUIRES: restart_interval >= 1 (smaller values are treated as 1).
  explicit BlockBuilder(int restart_interval);
  BlockBuilder(const BlockBuilder&) = delete;
  BlockBuilder& operator=(const BlockBuilder&) = delete;

  // Starts a new, empty block (keeps allocated memory).
  void Reset();

  // Appends an entry. REQUIRES: Finish() not called since the last Reset();
  // key is larger than every key added before (by the table's comparator).
  void Add(std::string_view key, std::string_view value);

  // Appends the restart array and returns the whole block, valid until the
  // next Reset() or destruction.
  std::string_view Finish();

  // Size in bytes of the block Finish() would return now.
  size_t CurrentSizeEstimate() const;

  bool empty() const { return buffer_.empty(); }
  // Entries added since the last Reset().
  int num_entries() const { return num_entries_; }

 private:
  const int restart_interval_;
  std::string buffer_;
  std::vector<uint32_t> restarts_;
  int counter_ = 0;  // Entries since the last restart point.
  int num_entries_ = 0;
  std::string last_key_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TABLE_BLOCK_BUILDER_H_
