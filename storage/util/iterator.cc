#include "strata/storage/iterator.h"

#include <utility>

namespace strata::storage {

Iterator::~Iterator() {
  Cleanup* c = cleanup_head_;
  while (c != nullptr) {
    c->fn();
    Cleanup* next = c->next;
    delete c;
    c = next;
  }
}

void Iterator::RegisterCleanup(std::function<void()> fn) {
  cleanup_head_ = new Cleanup{std::move(fn), cleanup_head_};
}

namespace {

class EmptyIterator final : public Iterator {
 public:
  explicit EmptyIterator(absl::Status s) : status_(std::move(s)) {}
  bool Valid() const override { return false; }
  void SeekToFirst() override {}
  void SeekToLast() override {}
  void Seek(std::string_view) override {}
  void Next() override {}
  void Prev() override {}
  std::string_view key() const override { return {}; }
  std::string_view value() const override { return {}; }
  absl::Status status() const override { return status_; }

 private:
  absl::Status status_;
};

}  // namespace

Iterator* NewEmptyIterator() { return new EmptyIterator(absl::OkStatus()); }
Iterator* NewErrorIterator(const absl::Status& status) {
  return new EmptyIterator(status);
}

}  // namespace strata::storage
