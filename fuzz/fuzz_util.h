#ifndef STRATA_FUZZ_FUZZ_UTIL_H_
#define STRATA_FUZZ_FUZZ_UTIL_H_

// In-memory files for the fuzz targets: the readers under test take Env
// file objects, and a fuzzer must not touch the disk.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "strata/storage/env.h"

namespace strata::fuzz {

// Reads a string from start to end. Not thread-safe.
class StringSequentialFile final : public storage::SequentialFile {
 public:
  explicit StringSequentialFile(std::string_view data) : data_(data) {}
  absl::StatusOr<std::string_view> Read(size_t n, char* scratch) override {
    n = std::min(n, data_.size() - pos_);
    std::memcpy(scratch, data_.data() + pos_, n);
    pos_ += n;
    return std::string_view(scratch, n);
  }
  absl::Status Skip(uint64_t n) override {
    pos_ += static_cast<size_t>(std::min<uint64_t>(n, data_.size() - pos_));
    return absl::OkStatus();
  }

 private:
  const std::string data_;
  size_t pos_ = 0;
};

// Reads a string at any offset. Thread-safe (immutable).
class StringRandomAccessFile final : public storage::RandomAccessFile {
 public:
  explicit StringRandomAccessFile(std::string_view data) : data_(data) {}
  absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n,
                                        char* scratch) const override {
    if (offset >= data_.size()) return std::string_view(scratch, 0);
    n = static_cast<size_t>(std::min<uint64_t>(n, data_.size() - offset));
    std::memcpy(scratch, data_.data() + offset, n);
    return std::string_view(scratch, n);
  }

 private:
  const std::string data_;
};

// Appends to a string (for building seeds and valid inputs).
class StringWritableFile final : public storage::WritableFile {
 public:
  explicit StringWritableFile(std::string* out) : out_(out) {}
  absl::Status Append(std::string_view data) override {
    out_->append(data.data(), data.size());
    return absl::OkStatus();
  }
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::Status Sync() override { return absl::OkStatus(); }
  absl::Status Close() override { return absl::OkStatus(); }

 private:
  std::string* const out_;
};

// Consumes bytes from the front of a fuzz input.
class Input {
 public:
  Input(const uint8_t* data, size_t size)
      : data_(reinterpret_cast<const char*>(data), size) {}
  bool empty() const { return data_.empty(); }
  size_t size() const { return data_.size(); }
  uint8_t Byte() {
    if (data_.empty()) return 0;
    uint8_t b = static_cast<uint8_t>(data_[0]);
    data_.remove_prefix(1);
    return b;
  }
  // Up to n bytes.
  std::string_view Bytes(size_t n) {
    n = std::min(n, data_.size());
    std::string_view out = data_.substr(0, n);
    data_.remove_prefix(n);
    return out;
  }
  std::string_view Rest() {
    std::string_view out = data_;
    data_ = {};
    return out;
  }

 private:
  std::string_view data_;
};

}  // namespace strata::fuzz

#endif  // STRATA_FUZZ_FUZZ_UTIL_H_
