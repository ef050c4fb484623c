#ifndef STRATA_STORAGE_WRITE_BATCH_H_
#define STRATA_STORAGE_WRITE_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace strata::storage {

// An ordered list of Put and Delete operations applied atomically by
// DB::Write: after a crash either all of them are visible or none is.
// Later operations on the same key win.
//
// Thread safety: not safe for concurrent mutation; const methods may be
// called concurrently.
//
// Representation (also the WAL record payload, see docs/wal-format.md):
//   sequence: fixed64 | count: fixed32 | record*
//   record := kTypeValue varstring(key) varstring(value)
//           | kTypeDeletion varstring(key)
class WriteBatch {
 public:
  // Receives the operations of a batch in order.
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void Put(std::string_view key, std::string_view value) = 0;
    virtual void Delete(std::string_view key) = 0;
  };

  WriteBatch();
  WriteBatch(const WriteBatch&) = default;
  WriteBatch& operator=(const WriteBatch&) = default;
  WriteBatch(WriteBatch&&) = default;
  WriteBatch& operator=(WriteBatch&&) = default;

  // Appends "set key to value".
  void Put(std::string_view key, std::string_view value);
  // Appends "remove key" (a tombstone; removing a missing key is fine).
  void Delete(std::string_view key);
  // Removes every operation.
  void Clear();
  // Number of operations.
  uint32_t Count() const;
  // Bytes of the encoded batch; the memory and WAL cost of the write.
  size_t ApproximateSize() const { return rep_.size(); }
  // Appends every operation of `source` to this batch.
  void Append(const WriteBatch& source);

  // Calls handler for each operation in order. Returns DataLoss if the
  // representation is malformed (only possible for a batch decoded from
  // bytes, e.g. during WAL replay).
  absl::Status Iterate(Handler* handler) const;

 private:
  friend class WriteBatchInternal;
  std::string rep_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_WRITE_BATCH_H_
