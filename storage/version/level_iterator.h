#ifndef STRATA_STORAGE_VERSION_LEVEL_ITERATOR_H_
#define STRATA_STORAGE_VERSION_LEVEL_ITERATOR_H_

#include <vector>

#include "strata/storage/iterator.h"
#include "strata/storage/options.h"
#include "version/table_cache.h"
#include "version/version_edit.h"

namespace strata::storage {

// An iterator over the concatenation of a level's non-overlapping tables
// (ordered by key), opening one table at a time through the table cache.
// `files` must stay alive (the caller pins the version). Caller owns the
// result.
Iterator* NewLevelIterator(const ReadOptions& options, TableCache* cache,
                           const Comparator* icmp,
                           std::vector<std::shared_ptr<FileMetaData>> files);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_VERSION_LEVEL_ITERATOR_H_
