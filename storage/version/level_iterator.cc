#include "version/level_iterator.h"

#include <algorithm>
#include <memory>

namespace strata::storage {
namespace {

class LevelIterator final : public Iterator {
 public:
  LevelIterator(const ReadOptions& options, TableCache* cache,
                const Comparator* icmp,
                std::vector<std::shared_ptr<FileMetaData>> files)
      : options_(options),
        cache_(cache),
        icmp_(icmp),
        files_(std::move(files)) {}

  bool Valid() const override { return table_ != nullptr && table_->Valid(); }
  std::string_view key() const override { return table_->key(); }
  std::string_view value() const override { return table_->value(); }
  absl::Status status() const override {
    if (!status_.ok()) return status_;
    return table_ != nullptr ? table_->status() : absl::OkStatus();
  }

  void SeekToFirst() override {
    OpenFile(0);
    if (table_ != nullptr) table_->SeekToFirst();
    SkipEmptyForward();
  }
  void SeekToLast() override {
    OpenFile(files_.size() - 1);
    if (table_ != nullptr) table_->SeekToLast();
    SkipEmptyBackward();
  }
  void Seek(std::string_view target) override {
    // First file whose largest key >= target.
    auto it = std::lower_bound(
        files_.begin(), files_.end(), target,
        [this](const std::shared_ptr<FileMetaData>& f, std::string_view t) {
          return icmp_->Compare(f->largest.Encode(), t) < 0;
        });
    OpenFile(static_cast<size_t>(it - files_.begin()));
    if (table_ != nullptr) table_->Seek(target);
    SkipEmptyForward();
  }
  void Next() override {
    table_->Next();
    SkipEmptyForward();
  }
  void Prev() override {
    table_->Prev();
    SkipEmptyBackward();
  }

 private:
  // Opens files_[index] (index out of range closes the current table).
  void OpenFile(size_t index) {
    if (table_ != nullptr && index == index_) return;
    if (table_ != nullptr && !table_->status().ok() && status_.ok()) {
      status_ = table_->status();
    }
    table_.reset();
    index_ = index;
    if (index >= files_.size()) return;
    table_.reset(cache_->NewIterator(options_, files_[index]->number,
                                     files_[index]->file_size));
  }

  void SkipEmptyForward() {
    while (table_ != nullptr && !table_->Valid()) {
      if (!table_->status().ok()) return;  // Stop on error.
      if (index_ + 1 >= files_.size()) {
        table_.reset();
        return;
      }
      OpenFile(index_ + 1);
      table_->SeekToFirst();
    }
  }

  void SkipEmptyBackward() {
    while (table_ != nullptr && !table_->Valid()) {
      if (!table_->status().ok()) return;
      if (index_ == 0) {
        table_.reset();
        return;
      }
      OpenFile(index_ - 1);
      table_->SeekToLast();
    }
  }

  const ReadOptions options_;
  TableCache* const cache_;
  const Comparator* const icmp_;
  const std::vector<std::shared_ptr<FileMetaData>> files_;
  std::unique_ptr<Iterator> table_;
  size_t index_ = 0;
  absl::Status status_;
};

}  // namespace

Iterator* NewLevelIterator(const ReadOptions& options, TableCache* cache,
                           const Comparator* icmp,
                           std::vector<std::shared_ptr<FileMetaData>> files) {
  if (files.empty()) return NewEmptyIterator();
  return new LevelIterator(options, cache, icmp, std::move(files));
}

}  // namespace strata::storage
