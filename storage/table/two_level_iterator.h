#ifndef STRATA_STORAGE_TABLE_TWO_LEVEL_ITERATOR_H_
#define STRATA_STORAGE_TABLE_TWO_LEVEL_ITERATOR_H_

// An iterator over a sequence of blocks: an index iterator whose values
// describe blocks, and a function that opens an iterator over one block.
// Used for a table (index block -> data blocks) and by the engine for a
// level (file list -> tables).

#include <string_view>

#include "strata/storage/iterator.h"
#include "strata/storage/options.h"

namespace strata::storage {

// Returns a new iterator (caller owns) over the block that index_value
// describes, or an error iterator (e.g. NewErrorIterator(DataLoss)). Must
// not return nullptr. A plain function pointer plus an argument keeps the
// per-block call free of std::function overhead.
using BlockFunction = Iterator* (*)(void* arg, const ReadOptions& options,
                                    std::string_view index_value);

// Returns an iterator yielding, in order, the entries of the blocks that
// index_iter's values describe. Takes ownership of index_iter; `arg` must
// outlive the result. Moving to a new block calls block_function; a block
// iterator is reused while consecutive index entries have the same value.
// When an index or block iterator reports an error, the result becomes
// invalid and its status() is that error (iteration does not skip a bad
// block). Not thread-safe.
Iterator* NewTwoLevelIterator(Iterator* index_iter,
                              BlockFunction block_function, void* arg,
                              const ReadOptions& options);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_TABLE_TWO_LEVEL_ITERATOR_H_
