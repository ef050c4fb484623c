#include "table/two_level_iterator.h"

#include <string>

#include "table/iterator_wrapper.h"

namespace strata::storage {

namespace {

class TwoLevelIterator final : public Iterator {
 public:
  TwoLevelIterator(Iterator* index_iter, BlockFunction block_function,
                   void* arg, const ReadOptions& options)
      : block_function_(block_function),
        arg_(arg),
        options_(options),
        index_iter_(index_iter) {}

  bool Valid() const override { return data_iter_.Valid(); }
  std::string_view key() const override { return data_iter_.key(); }
  std::string_view value() const override { return data_iter_.value(); }

  void Seek(std::string_view target) override {
    index_iter_.Seek(target);
    InitDataBlock();
    if (data_iter_.iter() != nullptr) data_iter_.Seek(target);
    SkipEmptyDataBlocksForward();
  }
  void SeekToFirst() override {
    index_iter_.SeekToFirst();
    InitDataBlock();
    if (data_iter_.iter() != nullptr) data_iter_.SeekToFirst();
    SkipEmptyDataBlocksForward();
  }
  void SeekToLast() override {
    index_iter_.SeekToLast();
    InitDataBlock();
    if (data_iter_.iter() != nullptr) data_iter_.SeekToLast();
    SkipEmptyDataBlocksBackward();
  }
  void Next() override {
    if (!Valid()) return;
    data_iter_.Next();
    SkipEmptyDataBlocksForward();
  }
  void Prev() override {
    if (!Valid()) return;
    data_iter_.Prev();
    SkipEmptyDataBlocksBackward();
  }

  absl::Status status() const override {
    if (index_iter_.iter() != nullptr && !index_iter_.status().ok()) {
      return index_iter_.status();
    }
    if (data_iter_.iter() != nullptr && !data_iter_.status().ok()) {
      return data_iter_.status();
    }
    return absl::OkStatus();
  }

 private:
  // True if the current data iterator stopped on an error: iteration ends
  // there rather than silently skipping the block.
  bool DataError() const {
    return data_iter_.iter() != nullptr && !data_iter_.status().ok();
  }

  void SkipEmptyDataBlocksForward() {
    while (!data_iter_.Valid() && !DataError()) {
      if (!index_iter_.Valid()) {
        SetDataIterator(nullptr);
        return;
      }
      index_iter_.Next();
      InitDataBlock();
      if (data_iter_.iter() != nullptr) data_iter_.SeekToFirst();
    }
  }
  void SkipEmptyDataBlocksBackward() {
    while (!data_iter_.Valid() && !DataError()) {
      if (!index_iter_.Valid()) {
        SetDataIterator(nullptr);
        return;
      }
      index_iter_.Prev();
      InitDataBlock();
      if (data_iter_.iter() != nullptr) data_iter_.SeekToLast();
    }
  }

  void SetDataIterator(Iterator* iter) { data_iter_.Set(iter); }

  void InitDataBlock() {
    if (!index_iter_.Valid()) {
      SetDataIterator(nullptr);
      return;
    }
    std::string_view handle = index_iter_.value();
    if (data_iter_.iter() != nullptr && handle == data_block_handle_ &&
        !DataError()) {
      return;  // Same block: keep the iterator (and its pinned block).
    }
    SetDataIterator(block_function_(arg_, options_, handle));
    data_block_handle_.assign(handle.data(), handle.size());
  }

  const BlockFunction block_function_;
  void* const arg_;
  const ReadOptions options_;
  IteratorWrapper index_iter_;
  IteratorWrapper data_iter_;  // May be nullptr.
  // The index value data_iter_ was made from.
  std::string data_block_handle_;
};

}  // namespace

Iterator* NewTwoLevelIterator(Iterator* index_iter,
                              BlockFunction block_function, void* arg,
                              const ReadOptions& options) {
  return new TwoLevelIterator(index_iter, block_function, arg, options);
}

}  // namespace strata::storage
