#ifndef STRATA_STORAGE_TABLE_BLOCK_H_
#define STRATA_STORAGE_TABLE_BLOCK_H_

// Reading the blocks written by BlockBuilder (format in block_builder.h and
// docs/sstable-format.md).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "strata/storage/iterator.h"
#include "table/format.h"
#include "util/coding.h"
#include "util/comparator.h"

namespace strata::storage {

// An immutable, decompressed block. Validates its restart array on
// construction; a malformed block yields iterators whose status() is
// DataLoss. Thread-safe (immutable): any number of iterators may read it
// concurrently.
class Block {
 public:
  // Takes ownership of contents. `file_offset` is where the block starts in
  // its file, used in error messages.
  explicit Block(BlockContents contents, uint64_t file_offset = 0);
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  // Bytes of block contents.
  size_t size() const { return data_.size(); }
  // Approximate memory held, in bytes (what a cache should charge).
  size_t charge() const { return data_.size() + sizeof(Block); }
  uint64_t file_offset() const { return file_offset_; }
  // True if the restart array is malformed.
  bool malformed() const { return error_ != nullptr; }

  // Returns a new iterator over the block, ordered by cmp (the order the
  // block was built in); the caller owns it. `filename` (optional, may be
  // nullptr) names the file in DataLoss messages. REQUIRES: the block, cmp
  // and *filename outlive the iterator.
  Iterator* NewIterator(const Comparator* cmp,
                        const std::string* filename = nullptr) const;

 private:
  friend class BlockIter;

  const BlockContents contents_;
  const std::string_view data_;
  const uint64_t file_offset_;
  uint32_t restart_offset_ = 0;  // Offset of the restart array in data_.
  uint32_t num_restarts_ = 0;
  const char* error_ = nullptr;  // Why the block is malformed, if it is.
};

// A key assembled from prefix-compressed entries. Keys up to kInline bytes
// need no heap allocation, so an iterator on the stack costs none.
class KeyBuffer {
 public:
  static constexpr size_t kInline = 112;
  KeyBuffer() = default;
  KeyBuffer(const KeyBuffer&) = delete;
  KeyBuffer& operator=(const KeyBuffer&) = delete;

  std::string_view view() const { return {data_, size_}; }
  size_t size() const { return size_; }
  void clear() { size_ = 0; }
  // Keeps the first n bytes. REQUIRES: n <= size().
  void Truncate(size_t n) { size_ = n; }
  void Append(const char* p, size_t n) {
    if (n > capacity_ - size_) Grow(n);
    std::memcpy(data_ + size_, p, n);
    size_ += n;
  }

 private:
  void Grow(size_t n);

  char* data_ = inline_;
  size_t size_ = 0;
  size_t capacity_ = kInline;
  std::unique_ptr<char[]> heap_;
  char inline_[kInline];
};

// An iterator over one Block, exposed so hot paths (Table::InternalGet) can
// keep it on the stack and Table can derive an iterator that also pins its
// block. Any malformed entry makes it invalid with a DataLoss status that
// stays until Init; it never reads outside the block. Not thread-safe.
class BlockIter : public Iterator {
 public:
  // An empty iterator until Init.
  BlockIter() = default;
  // Positions nowhere over `block`. REQUIRES: block, cmp and *filename (may
  // be nullptr) outlive the iterator or the next Init.
  void Init(const Block* block, const Comparator* cmp,
            const std::string* filename);

  bool Valid() const override { return current_ < restarts_; }
  void SeekToFirst() override;
  void SeekToLast() override;
  void Seek(std::string_view target) override;
  void Next() override;
  void Prev() override;
  std::string_view key() const override { return key_.view(); }
  std::string_view value() const override { return value_; }
  absl::Status status() const override { return status_; }

 private:
  uint32_t GetRestartPoint(uint32_t index) const {
    return DecodeFixed32(data_ + restarts_ + index * sizeof(uint32_t));
  }
  uint32_t NextEntryOffset() const {
    return static_cast<uint32_t>(value_.data() + value_.size() - data_);
  }
  void SeekToRestartPoint(uint32_t index) {
    key_.clear();
    restart_index_ = index;
    value_ = std::string_view(data_ + GetRestartPoint(index), 0);
  }
  // Parses the entry after the current one; false at the end or on
  // corruption (then also invalid).
  bool ParseNextKey();
  void Corruption(uint32_t entry_offset);
  int Compare(std::string_view a, std::string_view b) const {
    return cmp_->Compare(a, b);
  }

  const Comparator* cmp_ = nullptr;
  const char* data_ = nullptr;
  uint32_t restarts_ = 0;       // Offset of the restart array.
  uint32_t num_restarts_ = 0;
  uint32_t current_ = 0;        // Offset of the current entry; >= restarts_
                                // when invalid.
  uint32_t restart_index_ = 0;  // Restart region of current_.
  std::string_view value_;
  KeyBuffer key_;
  absl::Status status_;
  const std::string* filename_ = nullptr;
  uint64_t file_offset_ = 0;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TABLE_BLOCK_H_
