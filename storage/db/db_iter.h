#ifndef STRATA_STORAGE_DB_DB_ITER_H_
#define STRATA_STORAGE_DB_DB_ITER_H_

#include "strata/storage/iterator.h"
#include "strata/storage/options.h"
#include "util/comparator.h"
#include "util/dbformat.h"

namespace strata::storage {

// Turns an iterator over internal keys (all versions, tombstones) into the
// user's view as of `sequence`: for each user key, the newest entry with a
// sequence number <= `sequence`, skipping keys whose newest such entry is a
// tombstone or, when now_unix_ms != 0, a value whose expiry deadline is at
// or before now_unix_ms (its own, or its lease's from `leases` if given).
// Takes ownership of `internal`. Caller owns the result; `leases` must
// outlive it.
Iterator* NewDBIterator(const Comparator* user_comparator, Iterator* internal,
                        SequenceNumber sequence, uint64_t now_unix_ms = 0,
                        const LeaseDeadlines* leases = nullptr);

}  // namespace strata::storage

#endif  // STRATA_STORAGE_DB_DB_ITER_H_
