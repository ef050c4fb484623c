#ifndef STRATA_TESTS_STORAGE_TABLE_TABLE_TEST_UTIL_H_
#define STRATA_TESTS_STORAGE_TABLE_TABLE_TEST_UTIL_H_

// In-memory files and a vector-backed iterator for the table tests.

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "strata/storage/env.h"
#include "strata/storage/iterator.h"
#include "util/comparator.h"

namespace strata::storage::testing {

// A WritableFile appending to a string.
class StringSink final : public WritableFile {
 public:
  absl::Status Append(std::string_view data) override {
    contents_.append(data.data(), data.size());
    return absl::OkStatus();
  }
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::Status Sync() override { return absl::OkStatus(); }
  absl::Status Close() override { return absl::OkStatus(); }
  const std::string& contents() const { return contents_; }
  std::string* mutable_contents() { return &contents_; }

 private:
  std::string contents_;
};

// A RandomAccessFile over a string; counts reads. With `mapped`, it also
// offers the string as its Mapping(), as a memory-mapped file does (all of
// it InMemory), so a Table reads blocks in place from it.
class StringSource final : public RandomAccessFile {
 public:
  explicit StringSource(std::string contents, bool mapped = false)
      : contents_(std::move(contents)), mapped_(mapped) {}
  std::string_view Mapping() const override {
    return mapped_ ? std::string_view(contents_) : std::string_view();
  }
  bool InMemory(uint64_t, size_t) const override { return mapped_; }
  absl::StatusOr<std::string_view> Read(uint64_t offset, size_t n,
                                        char* scratch) const override {
    reads_.fetch_add(1);
    if (offset >= contents_.size()) return std::string_view(scratch, 0);
    n = std::min<uint64_t>(n, contents_.size() - offset);
    std::memcpy(scratch, contents_.data() + offset, n);
    return std::string_view(scratch, n);
  }
  int reads() const { return reads_.load(); }

 private:
  const std::string contents_;
  const bool mapped_;
  mutable std::atomic<int> reads_{0};
};

// An iterator over a sorted vector of pairs (bytewise order unless a
// comparator is given), optionally failing with `error` once positioned
// past `fail_after` entries.
class VectorIterator final : public Iterator {
 public:
  using Entries = std::vector<std::pair<std::string, std::string>>;
  explicit VectorIterator(Entries entries,
                          const Comparator* cmp = BytewiseComparator())
      : entries_(std::move(entries)), cmp_(cmp) {}

  // Makes every positioning call fail with status (iterator invalid).
  void FailWith(absl::Status status) { error_ = std::move(status); }

  bool Valid() const override {
    return error_.ok() && pos_ >= 0 && pos_ < static_cast<int>(entries_.size());
  }
  void SeekToFirst() override { pos_ = 0; }
  void SeekToLast() override { pos_ = static_cast<int>(entries_.size()) - 1; }
  void Seek(std::string_view target) override {
    pos_ = 0;
    while (pos_ < static_cast<int>(entries_.size()) &&
           cmp_->Compare(entries_[pos_].first, target) < 0) {
      pos_++;
    }
  }
  void Next() override { pos_++; }
  void Prev() override { pos_--; }
  std::string_view key() const override { return entries_[pos_].first; }
  std::string_view value() const override { return entries_[pos_].second; }
  absl::Status status() const override { return error_; }

 private:
  Entries entries_;
  const Comparator* cmp_;
  int pos_ = -1;
  absl::Status error_;
};

}  // namespace strata::storage::testing

#endif  // STRATA_TESTS_STORAGE_TABLE_TABLE_TEST_UTIL_H_
