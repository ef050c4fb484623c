#ifndef STRATA_TESTS_STORAGE_TABLE_TABLE_TEST_UTIL_H_
#define STRATA_TESTS_STORAGE_TABLE_TABLE_TEST_UTIL_H_

// In-memory files and a vector-backed iterator for the table tests.

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
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
// offers a copy of the string as its Mapping(), as a memory-mapped file
// does, so a Table reads blocks in place from it. The mapping is resident
// (InMemory) until set_resident(false), which also makes its pages
// inaccessible: touching them then raises SIGSEGV, as touching an evicted
// page would read the disk. Read() is unaffected.
class StringSource final : public RandomAccessFile {
 public:
  explicit StringSource(std::string contents, bool mapped = false)
      : contents_(std::move(contents)) {
    if (!mapped || contents_.empty()) return;
    void* p = mmap(nullptr, contents_.size(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();  // Test setup only.
    std::memcpy(p, contents_.data(), contents_.size());
    mapping_ = std::string_view(static_cast<const char*>(p), contents_.size());
    set_resident(true);
  }
  ~StringSource() override {
    if (!mapping_.empty()) {
      munmap(const_cast<char*>(mapping_.data()), mapping_.size());
    }
  }
  StringSource(const StringSource&) = delete;
  StringSource& operator=(const StringSource&) = delete;

  // REQUIRES: mapped. Not concurrently with reads of the mapping.
  void set_resident(bool resident) {
    if (mprotect(const_cast<char*>(mapping_.data()), mapping_.size(),
                 resident ? PROT_READ : PROT_NONE) != 0) {
      std::abort();  // Test setup only.
    }
    resident_.store(resident);
  }

  std::string_view Mapping() const override { return mapping_; }
  bool InMemory(uint64_t, size_t) const override {
    return !mapping_.empty() && resident_.load();
  }
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
  std::string_view mapping_;  // Anonymous memory; empty unless mapped.
  std::atomic<bool> resident_{false};
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
