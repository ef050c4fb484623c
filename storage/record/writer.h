#ifndef STRATA_STORAGE_RECORD_WRITER_H_
#define STRATA_STORAGE_RECORD_WRITER_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "record/format.h"
#include "strata/storage/env.h"

namespace strata::storage::record {

// Appends records to a new file in the record format (record/format.h): a
// WAL or a manifest.
//
// Thread safety: one thread at a time (for the WAL, the group-commit
// leader); no internal locking.
//
// Errors are sticky: once an append, flush or sync of the file fails, the
// file may end in a partial record and its durable state is unknown, so
// every later call returns the same error. (Appending a valid record after
// a partial one would turn a harmless torn tail into corruption that
// recovery must refuse.) The caller should switch to a new file or stop
// accepting writes.
class Writer {
 public:
  // Takes ownership of file, which must be empty (freshly created). The file
  // header is appended at once (buffered); an error doing so is returned by
  // the first later call.
  // `version` is the file header's format version (record/format.h).
  explicit Writer(std::unique_ptr<WritableFile> file,
                  uint32_t version = kFormatVersion);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Appends payload as one record (any size, including 0; it is split into
  // fragments at block boundaries) and hands it to the operating system
  // (WritableFile::Flush), so it survives a process crash once this returns
  // OK. It is durable against power loss only after Sync().
  // Errors: the file's Append/Flush status (Unavailable, Internal), or the
  // sticky error of an earlier failure.
  absl::Status AddRecord(std::string_view payload);

  // Makes every record added so far durable (WritableFile::Sync).
  // Errors: as AddRecord.
  absl::Status Sync();

  // Flushes and closes the file (without syncing). Later calls return
  // FailedPrecondition. Returns the first error the writer saw, if any.
  absl::Status Close();

  // Size of the file in bytes so far: the header plus every record
  // appended (including fragment headers and block trailers).
  uint64_t BytesWritten() const { return offset_; }

 private:
  absl::Status EmitFragment(FragmentType type, const char* data, size_t n);
  // Records the first error so later calls fail too.
  absl::Status Check(absl::Status s);

  std::unique_ptr<WritableFile> file_;
  uint64_t offset_ = 0;   // Bytes appended to the file.
  absl::Status status_;   // First error, sticky.
};

}  // namespace strata::storage::record

#endif  // STRATA_STORAGE_RECORD_WRITER_H_
