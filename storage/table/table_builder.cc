#include "table/table_builder.h"

#include "util/coding.h"
#include "util/dbformat.h"

namespace strata::storage {

TableBuilder::TableBuilder(const TableBuilderOptions& options,
                           WritableFile* file)
    : options_(options),
      file_(file),
      data_block_(options.block_restart_interval),
      // Index keys are few and searched often: every entry is a restart
      // point, so a seek is a pure binary search.
      index_block_(1) {
  if (options_.bloom_bits_per_key > 0) {
    filter_ = std::make_unique<BloomFilterBuilder>(options_.bloom_bits_per_key);
  }
  props_.compression = static_cast<uint64_t>(options_.compression);
  props_.bloom_bits_per_key =
      options_.bloom_bits_per_key > 0 ? options_.bloom_bits_per_key : 0;
}

TableBuilder::~TableBuilder() = default;

absl::Status TableBuilder::Add(std::string_view key, std::string_view value) {
  if (closed_) {
    return absl::FailedPreconditionError("TableBuilder::Add after Finish");
  }
  if (!status_.ok()) return status_;
  if (props_.num_entries > 0 &&
      options_.comparator->Compare(key, last_key_) <= 0) {
    return absl::InvalidArgumentError(
        "TableBuilder::Add: keys must be added in strictly increasing order");
  }
  if (options_.keys_are_internal && key.size() < 8) {
    return absl::InvalidArgumentError(
        "TableBuilder::Add: internal key shorter than 8 bytes");
  }
  if (pending_index_entry_) AddIndexEntry(key, /*last=*/false);
  if (filter_ != nullptr) {
    filter_->AddKey(options_.keys_are_internal ? ExtractUserKey(key) : key);
  }
  last_key_.assign(key.data(), key.size());
  props_.num_entries++;
  props_.raw_key_bytes += key.size();
  props_.raw_value_bytes += value.size();
  data_block_.Add(key, value);
  if (data_block_.CurrentSizeEstimate() >= options_.block_size) {
    FlushDataBlock();
  }
  return status_;
}

void TableBuilder::AddIndexEntry(std::string_view next_key, bool last) {
  // A key >= every key of the finished block and < next_key, as short as
  // the comparator can make it (the last block uses a short successor).
  if (last) {
    options_.comparator->FindShortSuccessor(&last_key_);
  } else {
    options_.comparator->FindShortestSeparator(&last_key_, next_key);
  }
  handle_encoding_.clear();
  pending_handle_.EncodeTo(&handle_encoding_);
  index_block_.Add(last_key_, handle_encoding_);
  pending_index_entry_ = false;
}

void TableBuilder::FlushDataBlock() {
  if (data_block_.empty() || !status_.ok()) return;
  std::string_view raw = data_block_.Finish();
  std::string_view contents = raw;
  CompressionType type = CompressionType::kNone;
  if (options_.compression != CompressionType::kNone &&
      CompressBlock(options_.compression, raw, &compressed_) &&
      compressed_.size() < raw.size() - raw.size() / 8) {
    contents = compressed_;
    type = options_.compression;
  }
  const uint64_t start = offset_;
  WriteRawBlock(contents, type, &pending_handle_);
  props_.data_bytes += offset_ - start;
  props_.num_data_blocks++;
  data_block_.Reset();
  pending_index_entry_ = true;
}

void TableBuilder::WriteRawBlock(std::string_view contents,
                                 CompressionType type, BlockHandle* handle) {
  if (!status_.ok()) return;
  handle->set_offset(offset_);
  handle->set_size(contents.size());
  char trailer[kBlockTrailerSize];
  trailer[0] = static_cast<char>(type);
  EncodeFixed32(trailer + 1, BlockChecksum(contents, type));
  status_ = file_->Append(contents);
  if (status_.ok()) {
    status_ = file_->Append(std::string_view(trailer, kBlockTrailerSize));
  }
  if (status_.ok()) offset_ += contents.size() + kBlockTrailerSize;
}

absl::Status TableBuilder::Finish() {
  if (closed_) {
    return absl::FailedPreconditionError("TableBuilder::Finish called twice");
  }
  FlushDataBlock();
  closed_ = true;
  Footer footer;
  if (filter_ != nullptr && status_.ok()) {
    std::string filter = filter_->Finish();
    WriteRawBlock(filter, CompressionType::kNone, &footer.filter_handle);
    props_.filter_bytes = filter.size() + kBlockTrailerSize;
  }
  if (pending_index_entry_) AddIndexEntry({}, /*last=*/true);
  WriteRawBlock(index_block_.Finish(), CompressionType::kNone,
                &footer.index_handle);
  props_.index_bytes = footer.index_handle.size() + kBlockTrailerSize;
  WriteRawBlock(props_.Encode(), CompressionType::kNone,
                &footer.properties_handle);
  if (status_.ok()) {
    std::string encoded;
    footer.EncodeTo(&encoded);
    status_ = file_->Append(encoded);
    if (status_.ok()) offset_ += encoded.size();
  }
  return status_;
}

void TableBuilder::Abandon() { closed_ = true; }

}  // namespace strata::storage
