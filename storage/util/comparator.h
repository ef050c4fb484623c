#ifndef STRATA_STORAGE_UTIL_COMPARATOR_H_
#define STRATA_STORAGE_UTIL_COMPARATOR_H_

#include <string>
#include <string_view>

namespace strata::storage {

// A total order over keys, used by blocks, tables and the memtable. The two
// Find* methods let index blocks store short separators instead of full
// keys (as in LevelDB). Implementations are stateless and thread-safe.
class Comparator {
 public:
  virtual ~Comparator() = default;
  // <0, 0, >0 as a is less than, equal to, greater than b.
  virtual int Compare(std::string_view a, std::string_view b) const = 0;
  // Name stored in the manifest so a database is never opened with a
  // different order.
  virtual const char* Name() const = 0;
  // If *start < limit, may change *start to a shorter string in
  // [*start, limit).
  virtual void FindShortestSeparator(std::string* start,
                                     std::string_view limit) const = 0;
  // May change *key to a shorter string >= *key.
  virtual void FindShortSuccessor(std::string* key) const = 0;
};

// Lexicographic unsigned-byte order (memcmp). A process-wide singleton.
const Comparator* BytewiseComparator();

}  // namespace strata::storage

#endif  // STRATA_STORAGE_UTIL_COMPARATOR_H_
