#include "table/merging_iterator.h"

#include <utility>

#include "table/iterator_wrapper.h"

namespace strata::storage {

namespace {

class MergingIterator final : public Iterator {
 public:
  MergingIterator(const Comparator* cmp, std::vector<Iterator*> children)
      : cmp_(cmp) {
    children_.reserve(children.size());
    for (Iterator* c : children) children_.emplace_back(c);
    heap_.reserve(children_.size());
  }

  bool Valid() const override { return !heap_.empty() && !error_; }
  std::string_view key() const override { return heap_[0]->key(); }
  std::string_view value() const override { return heap_[0]->value(); }

  void SeekToFirst() override {
    for (IteratorWrapper& c : children_) c.SeekToFirst();
    BuildHeap(kForward);
  }
  void SeekToLast() override {
    for (IteratorWrapper& c : children_) c.SeekToLast();
    BuildHeap(kReverse);
  }
  void Seek(std::string_view target) override {
    for (IteratorWrapper& c : children_) c.Seek(target);
    BuildHeap(kForward);
  }

  void Next() override {
    if (!Valid()) return;
    if (direction_ != kForward) SwitchToForward();
    IteratorWrapper* top = heap_[0];
    top->Next();
    FixTop();
  }
  void Prev() override {
    if (!Valid()) return;
    if (direction_ != kReverse) SwitchToReverse();
    IteratorWrapper* top = heap_[0];
    top->Prev();
    FixTop();
  }

  absl::Status status() const override {
    for (const IteratorWrapper& c : children_) {
      absl::Status s = c.status();
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  enum Direction { kForward, kReverse };

  // Whether a comes out of the heap before b: by key in the current
  // direction, ties broken by child position.
  bool Before(const IteratorWrapper* a, const IteratorWrapper* b) const {
    int c = cmp_->Compare(a->key(), b->key());
    if (direction_ == kForward) return c < 0 || (c == 0 && a < b);
    return c > 0 || (c == 0 && a > b);
  }

  void SiftDown(size_t i) {
    const size_t n = heap_.size();
    IteratorWrapper* item = heap_[i];
    while (true) {
      size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && Before(heap_[child + 1], heap_[child])) child++;
      if (!Before(heap_[child], item)) break;
      heap_[i] = heap_[child];
      i = child;
    }
    heap_[i] = item;
  }

  void BuildHeap(Direction direction) {
    direction_ = direction;
    error_ = false;
    heap_.clear();
    for (IteratorWrapper& c : children_) {
      if (c.Valid()) {
        heap_.push_back(&c);
      } else if (!c.status().ok()) {
        error_ = true;
      }
    }
    for (size_t i = heap_.size() / 2; i-- > 0;) SiftDown(i);
  }

  // After the top child moved: restore the heap, dropping the child if it
  // is exhausted.
  void FixTop() {
    IteratorWrapper* top = heap_[0];
    if (!top->Valid()) {
      if (!top->status().ok()) error_ = true;
      heap_[0] = heap_.back();
      heap_.pop_back();
      if (heap_.empty()) return;
    }
    SiftDown(0);
  }

  // Positions every other child at its first entry after the current one
  // in forward merged order.
  void SwitchToForward() {
    IteratorWrapper* current = heap_[0];
    const std::string_view k = current->key();
    for (IteratorWrapper& c : children_) {
      if (&c == current) continue;
      c.Seek(k);
      // An equal key in an earlier child precedes current: already seen.
      if (c.Valid() && &c < current && cmp_->Compare(c.key(), k) == 0) {
        c.Next();
      }
    }
    // The current child stays on top: it is first in the new order.
    BuildHeap(kForward);
  }

  // Positions every other child at its last entry before the current one
  // in forward merged order.
  void SwitchToReverse() {
    IteratorWrapper* current = heap_[0];
    const std::string_view k = current->key();
    for (IteratorWrapper& c : children_) {
      if (&c == current) continue;
      c.Seek(k);
      if (!c.Valid()) {
        if (c.status().ok()) c.SeekToLast();
      } else if (!(&c < current && cmp_->Compare(c.key(), k) == 0)) {
        c.Prev();
      }
    }
    BuildHeap(kReverse);
  }

  const Comparator* const cmp_;
  std::vector<IteratorWrapper> children_;
  std::vector<IteratorWrapper*> heap_;  // Valid children; heap_[0] is current.
  Direction direction_ = kForward;
  bool error_ = false;  // A child stopped on an error.
};

}  // namespace

Iterator* NewMergingIterator(const Comparator* cmp,
                             std::vector<Iterator*> children) {
  if (children.empty()) return NewEmptyIterator();
  if (children.size() == 1) return children[0];
  return new MergingIterator(cmp, std::move(children));
}

}  // namespace strata::storage
