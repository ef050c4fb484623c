#include "table/table.h"

#include <optional>
#include <utility>

#include "absl/strings/str_format.h"
#include "strata/storage/db.h"
#include "table/two_level_iterator.h"
#include "util/coding.h"
#include "util/dbformat.h"
#include "util/status_macros.h"

namespace strata::storage {

// The filter block's bytes and the reader over them.
struct Table::FilterBlock {
  explicit FilterBlock(BlockContents c)
      : contents(std::move(c)), reader(contents.data) {}
  const BlockContents contents;
  const BloomFilterReader reader;
};

// A data block kept alive for a reader: pinned in the cache, owned, or
// (read in place from a memory-mapped file) held here over the mapping,
// which needs no allocation. Not movable: GetBlock fills it where it lives.
struct Table::PinnedBlock {
  const Block* block = nullptr;
  CacheHandle cache_pin;
  std::unique_ptr<Block> owned;
  std::optional<Block> mapped;
};

// A block iterator that holds its block's pin: one allocation per block
// visited, no cleanup closure.
class Table::PinnedBlockIter final : public BlockIter {
 public:
  PinnedBlock* pin() { return &pin_; }

 private:
  PinnedBlock pin_;
};

namespace {

constexpr size_t kCacheKeyLength = 16;

// cache id (fixed64) | block offset (fixed64).
void BlockCacheKey(uint64_t cache_id, uint64_t offset,
                   char (&key)[kCacheKeyLength]) {
  EncodeFixed64(key, cache_id);
  EncodeFixed64(key + 8, offset);
}

void DeleteCachedBlock(std::string_view, void* value) {
  delete static_cast<Block*>(value);
}

}  // namespace

Table::Table(const TableOptions& options, std::string filename,
             std::unique_ptr<RandomAccessFile> file, uint64_t file_size)
    : options_(options),
      filename_(std::move(filename)),
      file_(std::move(file)),
      file_size_(file_size),
      mapped_(file_->Mapping()),
      cache_(options.block_cache) {}

Table::~Table() {
  // Nobody can look these up again (the cache id dies with the table), so
  // free them now instead of letting them age out.
  if (cache_ != nullptr) {
    char key[kCacheKeyLength];
    if (index_pin_) {
      BlockCacheKey(cache_id_, index_offset_, key);
      cache_->Erase(std::string_view(key, kCacheKeyLength));
    }
    if (filter_pin_) {
      BlockCacheKey(cache_id_, data_end_, key);
      cache_->Erase(std::string_view(key, kCacheKeyLength));
    }
  }
}

absl::StatusOr<std::unique_ptr<Table>> Table::Open(
    const TableOptions& options, std::string filename,
    std::unique_ptr<RandomAccessFile> file, uint64_t file_size) {
  if (options.comparator == nullptr) {
    return absl::InvalidArgumentError("TableOptions::comparator is required");
  }
  if (file_size < Footer::kEncodedLength) {
    return TableCorruption(
        filename, 0,
        absl::StrFormat("file of %d bytes is too short to be an sstable",
                        file_size));
  }
  const std::string_view mapping = file->Mapping();
  if (!mapping.empty() && mapping.size() != file_size) {
    // The file changed since it was written (the manifest's size is the
    // table's). Blocks are read in place only inside the mapping, so a
    // file shorter than the mapping would be SIGBUS later; refuse it now.
    return TableCorruption(
        filename, 0,
        absl::StrFormat("file is %d bytes, the table is %d (truncated or "
                        "modified)",
                        mapping.size(), file_size));
  }

  const uint64_t footer_offset = file_size - Footer::kEncodedLength;
  char space[Footer::kEncodedLength];
  ASSIGN_OR_RETURN(std::string_view input,
                   file->Read(footer_offset, Footer::kEncodedLength, space));
  ASSIGN_OR_RETURN(Footer footer,
                   Footer::DecodeFrom(input, filename, footer_offset));
  // Every block must lie before the footer, in the documented order.
  const BlockHandle& index = footer.index_handle;
  const BlockHandle& filter = footer.filter_handle;
  const BlockHandle& props = footer.properties_handle;
  const bool has_filter = filter.size() != 0;
  const bool in_order = props.FitsBefore(footer_offset) &&
                        index.FitsBefore(props.offset()) &&
                        (!has_filter || filter.FitsBefore(index.offset()));
  if (!in_order) {
    return TableCorruption(filename, footer_offset,
                           "footer block handles out of range");
  }

  std::unique_ptr<Table> table(
      new Table(options, std::move(filename), std::move(file), file_size));
  RETURN_IF_ERROR(table->ReadMetaBlocks(footer));
  return table;
}

absl::Status Table::ReadMetaBlocks(const Footer& footer) {
  // Always verified: these are read once and trusted for the table's life.
  ReadOptions verify;
  verify.verify_checksums = true;
  index_offset_ = footer.index_handle.offset();
  const bool has_filter = footer.filter_handle.size() != 0;
  data_end_ = has_filter ? footer.filter_handle.offset() : index_offset_;

  ASSIGN_OR_RETURN(BlockContents props,
                   ReadBlock(file_.get(), filename_, verify,
                             footer.properties_handle, file_size_));
  if (!properties_.Decode(props.data)) {
    return TableCorruption(filename_, footer.properties_handle.offset(),
                           "malformed properties block");
  }

  ASSIGN_OR_RETURN(BlockContents index_contents,
                   ReadBlock(file_.get(), filename_, verify,
                             footer.index_handle, file_size_));
  auto index = std::make_unique<Block>(std::move(index_contents),
                                       index_offset_);
  if (index->malformed()) {
    return TableCorruption(filename_, index_offset_, "malformed index block");
  }

  std::unique_ptr<FilterBlock> filter;
  if (has_filter) {
    ASSIGN_OR_RETURN(BlockContents filter_contents,
                     ReadBlock(file_.get(), filename_, verify,
                               footer.filter_handle, file_size_));
    if (!BloomFilterReader::IsValid(filter_contents.data)) {
      return TableCorruption(filename_, data_end_, "malformed filter block");
    }
    filter = std::make_unique<FilterBlock>(std::move(filter_contents));
  }

  index_block_ = index.get();
  filter_ = filter.get();
  if (cache_ == nullptr) {
    owned_index_ = std::move(index);
    owned_filter_ = std::move(filter);
    return absl::OkStatus();
  }
  cache_id_ = cache_->NewId();
  char key[kCacheKeyLength];
  BlockCacheKey(cache_id_, index_offset_, key);
  const size_t index_charge = index->charge();
  index_pin_ = CacheHandle(
      cache_, cache_->Insert(std::string_view(key, kCacheKeyLength),
                             index.release(), index_charge,
                             &DeleteCachedBlock));
  if (filter != nullptr) {
    BlockCacheKey(cache_id_, data_end_, key);
    const size_t filter_charge =
        filter->contents.data.size() + sizeof(FilterBlock);
    filter_pin_ = CacheHandle(
        cache_, cache_->Insert(std::string_view(key, kCacheKeyLength),
                               filter.release(), filter_charge,
                               [](std::string_view, void* v) {
                                 delete static_cast<FilterBlock*>(v);
                               }));
  }
  return absl::OkStatus();
}

absl::Status Table::GetBlock(const ReadOptions& options,
                             const BlockHandle& handle,
                             PinnedBlock* out) const {
  // A cache_only read touches the mapping (even its type byte) only if
  // the block's pages are resident: a page fault would read the disk on
  // the caller's thread. Otherwise the block cache alone decides: the
  // cached block (a compressed one) or WouldBlock.
  if (!mapped_.empty() && handle.FitsBefore(mapped_.size()) &&
      (!options.cache_only ||
       file_->InMemory(handle.offset(),
                       handle.size() + kBlockTrailerSize)) &&
      static_cast<uint8_t>(mapped_[handle.offset() + handle.size()]) ==
          static_cast<uint8_t>(CompressionType::kNone)) {
    // An uncompressed block of a mapped file is read in place and never
    // cached: the page cache already holds it.
    ASSIGN_OR_RETURN(BlockContents contents,
                     ReadMappedBlock(mapped_, filename_, options, handle));
    out->block = &out->mapped.emplace(std::move(contents), handle.offset());
    return absl::OkStatus();
  }
  char key[kCacheKeyLength];
  if (cache_ != nullptr) {
    BlockCacheKey(cache_id_, handle.offset(), key);
    Cache::Handle* h = cache_->Lookup(std::string_view(key, kCacheKeyLength));
    if (h != nullptr) {
      out->block = static_cast<const Block*>(cache_->Value(h));
      out->cache_pin = CacheHandle(cache_, h);
      return absl::OkStatus();
    }
  }
  if (options.cache_only) return WouldBlockError();
  const bool fill = cache_ != nullptr && options.fill_cache;
  ReadOptions read_options = options;
  if (fill) read_options.verify_checksums = true;  // Cached blocks are trusted.
  // A compressed block of a mapped file is decompressed from the mapping
  // (no copy before) into a buffer the block cache then holds.
  ASSIGN_OR_RETURN(
      BlockContents contents,
      mapped_.empty()
          ? ReadBlock(file_.get(), filename_, read_options, handle, file_size_)
          : ReadMappedBlock(mapped_, filename_, read_options, handle));
  auto block = std::make_unique<Block>(std::move(contents), handle.offset());
  if (fill && !block->malformed()) {
    const size_t charge = block->charge();
    out->block = block.get();
    out->cache_pin = CacheHandle(
        cache_, cache_->Insert(std::string_view(key, kCacheKeyLength),
                               block.release(), charge, &DeleteCachedBlock));
  } else {
    out->block = block.get();
    out->owned = std::move(block);
  }
  return absl::OkStatus();
}

absl::Status Table::BadIndexEntry() const {
  return TableCorruption(filename_, index_offset_,
                         "bad block handle in index block");
}

Iterator* Table::BlockReader(void* arg, const ReadOptions& options,
                             std::string_view index_value) {
  const auto* table = static_cast<const Table*>(arg);
  BlockHandle handle;
  if (!handle.DecodeFrom(&index_value)) {
    return NewErrorIterator(table->BadIndexEntry());
  }
  auto it = std::make_unique<PinnedBlockIter>();
  absl::Status s = table->GetBlock(options, handle, it->pin());
  if (!s.ok()) return NewErrorIterator(s);
  it->Init(it->pin()->block, table->options_.comparator, &table->filename_);
  return it.release();
}

Iterator* Table::NewIterator(const ReadOptions& options) const {
  return NewTwoLevelIterator(
      index_block_->NewIterator(options_.comparator, &filename_),
      &Table::BlockReader, const_cast<Table*>(this), options);
}

absl::Status Table::InternalGet(
    const ReadOptions& options, std::string_view internal_key,
    absl::FunctionRef<void(std::string_view, std::string_view)> found) const {
  if (options_.keys_are_internal && internal_key.size() < 8) {
    return absl::InvalidArgumentError(
        "Table::InternalGet: internal key shorter than 8 bytes");
  }
  if (filter_ != nullptr) {
    std::string_view filter_key = options_.keys_are_internal
                                      ? ExtractUserKey(internal_key)
                                      : internal_key;
    FilterCounters* counters = options_.filter_counters;
    if (counters != nullptr) counters->checks.Add();
    if (!filter_->reader.KeyMayMatch(filter_key)) {
      if (counters != nullptr) counters->negatives.Add();
      return absl::OkStatus();
    }
  }
  BlockIter index_iter;
  index_iter.Init(index_block_, options_.comparator, &filename_);
  index_iter.Seek(internal_key);
  while (index_iter.Valid()) {
    BlockHandle handle;
    std::string_view encoded = index_iter.value();
    if (!handle.DecodeFrom(&encoded)) return BadIndexEntry();
    PinnedBlock pin;
    RETURN_IF_ERROR(GetBlock(options, handle, &pin));
    BlockIter data_iter;
    data_iter.Init(pin.block, options_.comparator, &filename_);
    data_iter.Seek(internal_key);
    if (data_iter.Valid()) {
      found(data_iter.key(), data_iter.value());
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(data_iter.status());
    // The key is past this block's last entry but not past its separator.
    // With internal keys the next entry has another user key (see the
    // header), so only plain keys go on to the next block.
    if (options_.keys_are_internal) return absl::OkStatus();
    index_iter.Next();
  }
  return index_iter.status();
}

uint64_t Table::ApproximateOffsetOf(std::string_view key) const {
  BlockIter index_iter;
  index_iter.Init(index_block_, options_.comparator, &filename_);
  index_iter.Seek(key);
  if (index_iter.Valid()) {
    BlockHandle handle;
    std::string_view encoded = index_iter.value();
    if (handle.DecodeFrom(&encoded)) return handle.offset();
  }
  return data_end_;
}

}  // namespace strata::storage
