#ifndef STRATA_STORAGE_DB_TABLE_FILE_WRITER_H_
#define STRATA_STORAGE_DB_TABLE_FILE_WRITER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "strata/storage/env.h"
#include "strata/storage/options.h"
#include "table/table_builder.h"
#include "version/version_edit.h"

namespace strata::storage {

// Writes one SSTable file (flush and compaction output) and tracks its
// metadata. Thread safety: one thread at a time.
class TableFileWriter {
 public:
  // Creates <dbname>/<number>.sst. Errors: the Env's.
  static absl::StatusOr<std::unique_ptr<TableFileWriter>> Create(
      Env* env, const std::string& dbname, const Options& options,
      const Comparator* icmp, uint64_t number);

  // REQUIRES: internal keys in increasing order.
  absl::Status Add(std::string_view internal_key, std::string_view value);
  // Finishes the table, fsyncs and closes the file. meta() is then
  // complete.
  absl::Status Finish();
  // Abandons the table and deletes the file.
  void Abandon();

  uint64_t FileSize() const { return builder_->FileSize(); }
  uint64_t NumEntries() const { return builder_->NumEntries(); }
  const FileMetaData& meta() const { return meta_; }

 private:
  TableFileWriter() = default;
  Env* env_ = nullptr;
  std::string path_;
  std::unique_ptr<WritableFile> file_;
  std::unique_ptr<TableBuilder> builder_;
  FileMetaData meta_;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_DB_TABLE_FILE_WRITER_H_
