#ifndef STRATA_CLUSTER_CONTROL_RANGE_MAP_H_
#define STRATA_CLUSTER_CONTROL_RANGE_MAP_H_

// The cluster's shared vocabulary (project issue 18, docs/cluster.md): a
// range of stored keys, its replicas and its primary, and the map of all
// ranges as read from etcd at one revision.
//
// A range covers stored keys (server/keyspace.h encoding) in
// [start, end): start "" is -infinity, end "" is +infinity. Its replicas
// are distinct nodes (ordered; the order is the failover preference), the
// primary is one of them, and in_sync is the subset holding every
// acknowledged write (the primary always among them). The epoch starts at
// 1 and grows by one with every primary change.
//
// Encoding in etcd (`<prefix>ranges/<id>`), format version 1:
//
//   {"format":1,"id":3,"start_hex":"80","end_hex":"c0","epoch":2,
//    "primary":"n2","replicas":["n1","n2","n3"],"in_sync":["n2","n3"]}
//
// start/end are hex (stored keys are arbitrary bytes; JSON strings are
// UTF-8). Decoding is strict: a missing, mistyped or unknown field, an
// unknown format version or a range that breaks the rules above is
// DataLoss naming the etcd key. A change that adds a field bumps `format`,
// so an older node refuses a map it would misread rather than ignore part
// of it.
//
// Thread safety: RangeDescriptor and RangeMap are values; a const RangeMap
// may be read from any number of threads. All functions are pure.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace strata::cluster {

using RangeId = uint32_t;
using Epoch = uint64_t;
using NodeId = std::string;

// The format version EncodeRange writes and DecodeRange accepts.
inline constexpr int kRangeFormatVersion = 1;

// Whether `id` is a valid NodeId: 1..63 characters of [a-z0-9-].
bool IsValidNodeId(std::string_view id);

struct RangeDescriptor {
  RangeId id = 0;
  std::string start;  // Inclusive; "" = -infinity.
  std::string end;    // Exclusive; "" = +infinity.
  Epoch epoch = 1;
  NodeId primary;
  std::vector<NodeId> replicas;  // Distinct; primary included.
  std::vector<NodeId> in_sync;   // Subset of replicas; primary included.
  // Not encoded: the etcd mod_revision of the key this descriptor was read
  // from (0 = not read from etcd). UpdateRange compares it.
  int64_t mod_revision = 0;

  // Whether stored key `key` falls in [start, end).
  bool Contains(std::string_view key) const;
  bool IsReplica(std::string_view node) const;
  bool IsInSync(std::string_view node) const;

  // Equality of the encoded fields (mod_revision ignored).
  bool SameAs(const RangeDescriptor& other) const;
};

// The rules for one range: valid node ids, replicas distinct and
// non-empty, primary among them, in_sync a subset of replicas containing
// the primary (no duplicates), epoch >= 1, start < end unless end is "".
// InvalidArgument naming the range and the rule broken.
absl::Status ValidateRange(const RangeDescriptor& range);

// JSON of one range (the format above). REQUIRES: ValidateRange(range).
std::string EncodeRange(const RangeDescriptor& range);
// Parses the value of etcd key `key` (named in errors). DataLoss for bad
// JSON, a missing/mistyped/unknown field, another format version, bad hex,
// or a range ValidateRange rejects. mod_revision is left 0.
absl::StatusOr<RangeDescriptor> DecodeRange(std::string_view key,
                                            std::string_view json);

// The split keys of `n` equal ranges over the first two bytes of the key
// space (n - 1 keys, ascending, none empty). REQUIRES: 1 <= n <= 65536.
// Equal in byte space is not equal in data: stored keys of named
// namespaces all start with "\xff\xff\x01" and land in the last range;
// pass explicit split keys for a real layout.
std::vector<std::string> EqualSplitKeys(int n);

// All ranges of a cluster, as read from etcd at `revision`, sorted by
// start key. A RangeMap is always valid: the ranges cover the whole key
// space without gaps or overlaps, and every range passes ValidateRange.
class RangeMap {
 public:
  // Sorts and validates `ranges`. InvalidArgument if a range is invalid,
  // two ranges share an id, there is a gap or overlap, the first range
  // does not start at "" or the last does not end at "", or there are
  // none.
  static absl::StatusOr<RangeMap> Create(std::vector<RangeDescriptor> ranges,
                                         int64_t revision);

  const std::vector<RangeDescriptor>& ranges() const { return ranges_; }
  // The etcd store revision the map was read at (0 = not from etcd).
  int64_t revision() const { return revision_; }

  // The range holding stored key `key` (there is always exactly one).
  const RangeDescriptor& Lookup(std::string_view key) const;
  // The range with this id, nullptr if none.
  const RangeDescriptor* Find(RangeId id) const;
  // The ranges overlapping stored keys [start, end) (end "" = +infinity),
  // in key order. Empty if start >= end (end not "").
  std::vector<const RangeDescriptor*> Overlapping(std::string_view start,
                                                  std::string_view end) const;

 private:
  RangeMap(std::vector<RangeDescriptor> ranges, int64_t revision)
      : ranges_(std::move(ranges)), revision_(revision) {}

  std::vector<RangeDescriptor> ranges_;
  int64_t revision_ = 0;
};

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_CONTROL_RANGE_MAP_H_
