#ifndef STRATA_STORAGE_TABLE_MERGING_ITERATOR_H_
#define STRATA_STORAGE_TABLE_MERGING_ITERATOR_H_

// Merges several sorted iterators (memtables, level-0 tables, levels) into
// one sorted iterator.

#include <vector>

#include "strata/storage/iterator.h"
#include "util/comparator.h"

namespace strata::storage {

// Returns an iterator over the union of children's entries in cmp order
// (forward and backward). Takes ownership of the children; cmp must outlive
// the result. Entries with equal keys in several children are all yielded,
// in child order going forward (reverse child order going backward).
//
// A binary heap keeps Next/Prev at O(log n) comparisons; changing direction
// re-seeks every child (O(n log n)).
//
// When a child stops on an error, the merged iterator becomes invalid
// rather than skip that child's entries, and status() returns the first
// non-OK child status (in child order). A later Seek* re-checks.
// Not thread-safe.
Iterator* NewMergingIterator(const Comparator* cmp,
                             std::vector<Iterator*> children);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TABLE_MERGING_ITERATOR_H_
