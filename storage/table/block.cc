#include "table/block.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace strata::storage {

namespace {

const std::string kUnnamedFile = "(block)";

// Decodes an entry header at p. Returns a pointer to the key delta, or
// nullptr if the header is malformed or the key delta and value do not fit
// before limit.
inline const char* DecodeEntry(const char* p, const char* limit,
                               uint32_t* shared, uint32_t* non_shared,
                               uint32_t* value_length) {
  if (limit - p < 3) return nullptr;
  *shared = static_cast<uint8_t>(p[0]);
  *non_shared = static_cast<uint8_t>(p[1]);
  *value_length = static_cast<uint8_t>(p[2]);
  if ((*shared | *non_shared | *value_length) < 128) {
    p += 3;  // Fast path: all three fit in one byte.
  } else {
    if ((p = GetVarint32Ptr(p, limit, shared)) == nullptr) return nullptr;
    if ((p = GetVarint32Ptr(p, limit, non_shared)) == nullptr) return nullptr;
    if ((p = GetVarint32Ptr(p, limit, value_length)) == nullptr) return nullptr;
  }
  if (static_cast<uint64_t>(limit - p) <
      static_cast<uint64_t>(*non_shared) + *value_length) {
    return nullptr;
  }
  return p;
}

}  // namespace

Block::Block(BlockContents contents, uint64_t file_offset)
    : contents_(std::move(contents)),
      data_(contents_.data),
      file_offset_(file_offset) {
  if (data_.size() < sizeof(uint32_t)) {
    error_ = "block too short for a restart count";
    return;
  }
  if (data_.size() > UINT32_MAX) {
    error_ = "block larger than 4 GiB";
    return;
  }
  const uint32_t size = static_cast<uint32_t>(data_.size());
  const uint32_t num = DecodeFixed32(data_.data() + size - sizeof(uint32_t));
  const uint32_t max_restarts = (size - sizeof(uint32_t)) / sizeof(uint32_t);
  if (num == 0 || num > max_restarts) {
    error_ = "bad restart count";
    return;
  }
  const uint32_t restart_offset = size - (1 + num) * sizeof(uint32_t);
  // Restart points must start at 0 and strictly increase inside the entry
  // area, so iterators can trust them without further checks.
  uint32_t prev = 0;
  for (uint32_t i = 0; i < num; i++) {
    uint32_t r = DecodeFixed32(data_.data() + restart_offset + i * 4);
    bool ok = (i == 0) ? r == 0 : (r > prev && r < restart_offset);
    if (!ok) {
      error_ = "bad restart array";
      return;
    }
    prev = r;
  }
  if (restart_offset == 0 && num != 1) {
    error_ = "bad restart array";
    return;
  }
  restart_offset_ = restart_offset;
  num_restarts_ = num;
}

Iterator* Block::NewIterator(const Comparator* cmp,
                             const std::string* filename) const {
  auto* iter = new BlockIter;
  iter->Init(this, cmp, filename);
  return iter;
}

void KeyBuffer::Grow(size_t n) {
  size_t new_capacity = std::max(capacity_ * 2, size_ + n);
  auto bigger = std::make_unique<char[]>(new_capacity);
  std::memcpy(bigger.get(), data_, size_);
  heap_ = std::move(bigger);
  data_ = heap_.get();
  capacity_ = new_capacity;
}

void BlockIter::Init(const Block* block, const Comparator* cmp,
                     const std::string* filename) {
  cmp_ = cmp;
  filename_ = filename;
  file_offset_ = block->file_offset_;
  data_ = block->data_.data();
  key_.clear();
  value_ = std::string_view();
  if (block->error_ != nullptr) {
    restarts_ = num_restarts_ = current_ = restart_index_ = 0;
    status_ = TableCorruption(filename_ ? *filename_ : kUnnamedFile,
                              file_offset_, block->error_);
    return;
  }
  status_ = absl::OkStatus();
  restarts_ = block->restart_offset_;
  num_restarts_ = block->num_restarts_;
  current_ = restarts_;
  restart_index_ = num_restarts_;
}

void BlockIter::Corruption(uint32_t entry_offset) {
  status_ = TableCorruption(
      filename_ ? *filename_ : kUnnamedFile, file_offset_,
      absl::StrFormat("bad block entry at byte %d", entry_offset));
  current_ = restarts_;
  restart_index_ = num_restarts_;
  key_.clear();
  value_ = std::string_view();
}

bool BlockIter::ParseNextKey() {
  current_ = NextEntryOffset();
  const char* p = data_ + current_;
  const char* limit = data_ + restarts_;
  if (p >= limit) {  // No more entries.
    current_ = restarts_;
    restart_index_ = num_restarts_;
    return false;
  }
  uint32_t shared, non_shared, value_length;
  p = DecodeEntry(p, limit, &shared, &non_shared, &value_length);
  if (p == nullptr || key_.size() < shared) {
    Corruption(current_);
    return false;
  }
  key_.Truncate(shared);
  key_.Append(p, non_shared);
  value_ = std::string_view(p + non_shared, value_length);
  while (restart_index_ + 1 < num_restarts_ &&
         GetRestartPoint(restart_index_ + 1) < current_) {
    ++restart_index_;
  }
  return true;
}

void BlockIter::SeekToFirst() {
  if (!status_.ok() || num_restarts_ == 0) return;
  SeekToRestartPoint(0);
  ParseNextKey();
}

void BlockIter::SeekToLast() {
  if (!status_.ok() || num_restarts_ == 0) return;
  SeekToRestartPoint(num_restarts_ - 1);
  while (ParseNextKey() && NextEntryOffset() < restarts_) {
  }
}

void BlockIter::Next() {
  if (!Valid()) return;
  ParseNextKey();
}

void BlockIter::Prev() {
  if (!Valid()) return;
  // Back up to the restart point before the current entry, then scan
  // forward to the entry just before it.
  const uint32_t original = current_;
  while (GetRestartPoint(restart_index_) >= original) {
    if (restart_index_ == 0) {  // No entry before the first.
      current_ = restarts_;
      restart_index_ = num_restarts_;
      return;
    }
    restart_index_--;
  }
  SeekToRestartPoint(restart_index_);
  do {
    if (!ParseNextKey()) return;
  } while (NextEntryOffset() < original);
}

void BlockIter::Seek(std::string_view target) {
  if (!status_.ok() || num_restarts_ == 0) return;
  // Binary search for the last restart point whose key is < target; the
  // current position, if any, narrows the range first.
  uint32_t left = 0;
  uint32_t right = num_restarts_ - 1;
  int current_key_compare = 0;
  if (Valid()) {
    current_key_compare = Compare(key_.view(), target);
    if (current_key_compare < 0) {
      left = restart_index_;
    } else if (current_key_compare > 0) {
      right = restart_index_;
    } else {
      return;  // Already there.
    }
  }
  while (left < right) {
    const uint32_t mid = (left + right + 1) / 2;
    const uint32_t region_offset = GetRestartPoint(mid);
    uint32_t shared, non_shared, value_length;
    const char* p = DecodeEntry(data_ + region_offset, data_ + restarts_,
                                &shared, &non_shared, &value_length);
    if (p == nullptr || shared != 0) {
      Corruption(region_offset);
      return;
    }
    if (Compare(std::string_view(p, non_shared), target) < 0) {
      left = mid;
    } else {
      right = mid - 1;
    }
  }
  // Scanning on from the current entry is cheaper than from the restart
  // point when both are in the same region.
  if (!(left == restart_index_ && current_key_compare < 0)) {
    SeekToRestartPoint(left);
  }
  while (ParseNextKey()) {
    if (Compare(key_.view(), target) >= 0) return;
  }
}

}  // namespace strata::storage
