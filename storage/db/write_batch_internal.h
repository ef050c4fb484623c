#ifndef STRATA_STORAGE_DB_WRITE_BATCH_INTERNAL_H_
#define STRATA_STORAGE_DB_WRITE_BATCH_INTERNAL_H_

#include <string_view>

#include "absl/status/status.h"
#include "strata/storage/write_batch.h"
#include "util/dbformat.h"

namespace strata::storage {

class MemTable;

// Engine-side access to a WriteBatch's representation (the WAL payload).
class WriteBatchInternal {
 public:
  // Size of the fixed header: sequence (8) + count (4).
  static constexpr size_t kHeader = 12;

  static void SetCount(WriteBatch* b, uint32_t n);
  static SequenceNumber Sequence(const WriteBatch* b);
  // The sequence number of the first operation; the i-th operation gets
  // Sequence() + i.
  static void SetSequence(WriteBatch* b, SequenceNumber seq);
  static std::string_view Contents(const WriteBatch* b) { return b->rep_; }
  static size_t ByteSize(const WriteBatch* b) { return b->rep_.size(); }
  // Replaces the batch with an encoded representation read from the WAL.
  // Returns DataLoss if it is shorter than the header.
  static absl::Status SetContents(WriteBatch* b, std::string_view contents);
  // Inserts every operation into the memtable with consecutive sequence
  // numbers starting at Sequence(b).
  static absl::Status InsertInto(const WriteBatch* b, MemTable* memtable);
  // Bytes of user keys and values (for statistics).
  static uint64_t UserBytes(const WriteBatch* b);
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_DB_WRITE_BATCH_INTERNAL_H_
