#include "db/table_file_writer.h"

#include "spdlog/spdlog.h"
#include "util/filename.h"
#include "util/status_macros.h"

namespace strata::storage {

absl::StatusOr<std::unique_ptr<TableFileWriter>> TableFileWriter::Create(
    Env* env, const std::string& dbname, const Options& options,
    const Comparator* icmp, uint64_t number) {
  std::unique_ptr<TableFileWriter> w(new TableFileWriter);
  w->env_ = env;
  w->path_ = TableFileName(dbname, number);
  ASSIGN_OR_RETURN(w->file_, env->NewWritableFile(w->path_));
  TableBuilderOptions bopts;
  bopts.comparator = icmp;
  bopts.block_size = options.block_size;
  bopts.block_restart_interval = options.block_restart_interval;
  bopts.bloom_bits_per_key = options.bloom_bits_per_key;
  bopts.compression = options.compression;
  w->builder_ = std::make_unique<TableBuilder>(bopts, w->file_.get());
  w->meta_.number = number;
  spdlog::debug("creating table {}", w->path_);
  return w;
}

absl::Status TableFileWriter::Add(std::string_view internal_key,
                                  std::string_view value) {
  if (builder_->NumEntries() == 0) meta_.smallest.DecodeFrom(internal_key);
  meta_.largest.DecodeFrom(internal_key);
  return builder_->Add(internal_key, value);
}

absl::Status TableFileWriter::Finish() {
  RETURN_IF_ERROR(builder_->Finish());
  meta_.file_size = builder_->FileSize();
  RETURN_IF_ERROR(file_->Sync());
  return file_->Close();
}

void TableFileWriter::Abandon() {
  builder_->Abandon();
  file_->Close().IgnoreError();
  env_->RemoveFile(path_).IgnoreError();
}

}  // namespace strata::storage
