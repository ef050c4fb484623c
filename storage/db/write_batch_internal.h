#ifndef STRATA_STORAGE_DB_WRITE_BATCH_INTERNAL_H_
#define STRATA_STORAGE_DB_WRITE_BATCH_INTERNAL_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "strata/storage/key_metadata.h"
#include "strata/storage/write_batch.h"
#include "util/coding.h"
#include "util/dbformat.h"

namespace strata::storage {

class MemTable;

// Batch op tags. Part of the on-disk format (docs/wal-format.md): never
// change or reuse a value. kOpDelete and kOpPutCommitted equal the
// internal-key ValueTypes they become.
enum BatchOp : uint8_t {
  kOpDelete = kTypeDeletion,          // 0: key
  kOpPut = kTypeValue,                // 1: key value (user batches; v1 WALs)
  kOpPutCommitted = kTypeValueMeta,   // 2: key stored_value (committed)
  kOpPutWithAttributes = 3,           // 3: key attributes value (user)
};

// Engine-side access to a WriteBatch's representation.
//
// Two forms share the layout `revision:fixed64 count:fixed32 op*`:
//  - a *user* batch, as WriteBatch builds it: ops kOpPut,
//    kOpPutWithAttributes, kOpDelete; its revision field is unused;
//  - a *committed* batch, as the commit leader encodes it and the WAL
//    (format version 2) stores it, one record per revision: ops
//    kOpPutCommitted (with the key's new metadata) and kOpDelete, at most
//    one per key, all at the batch's revision.
// WALs of format version 1 hold user-form batches whose i-th op had
// sequence number revision + i.
class WriteBatchInternal {
 public:
  // Size of the fixed header: revision (8) + count (4).
  static constexpr size_t kHeader = 12;

  static void SetCount(WriteBatch* b, uint32_t n);
  static Revision GetRevision(std::string_view rep) {
    return DecodeFixed64(rep.data());
  }
  static uint32_t GetCount(std::string_view rep) {
    return DecodeFixed32(rep.data() + 8);
  }
  static std::string_view Contents(const WriteBatch* b) { return b->rep_; }
  static size_t ByteSize(const WriteBatch* b) { return b->rep_.size(); }
  // Replaces the batch with an encoded representation. Returns DataLoss if
  // it is shorter than the header.
  static absl::Status SetContents(WriteBatch* b, std::string_view contents);

  // Inserts every op of a committed batch (its ops at the batch's
  // revision) into the memtable. Returns DataLoss if it does not parse.
  static absl::Status InsertCommitted(std::string_view rep, MemTable* mem);
  // Inserts every op of a user-form batch read from a WAL of format
  // version 1, the i-th at revision + i. Returns the last sequence used.
  static absl::StatusOr<SequenceNumber> InsertVersion1(std::string_view rep,
                                                       MemTable* mem);
};

// Builds a committed batch (the commit leader's encoding).
class CommittedBatchBuilder {
 public:
  explicit CommittedBatchBuilder(Revision revision);
  void Put(std::string_view key, const KeyMetadata& meta,
           std::string_view value);
  void Delete(std::string_view key);
  uint32_t count() const { return count_; }
  // The encoded batch; the builder is empty afterwards.
  std::string Finish();

 private:
  std::string rep_;
  uint32_t count_ = 0;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_DB_WRITE_BATCH_INTERNAL_H_
