#ifndef STRATA_TESTS_CLUSTER_HISTORY_GEN_H_
#define STRATA_TESTS_CLUSTER_HISTORY_GEN_H_

// Random register histories for testing the linearizability checker,
// generated from a real sequential execution so they are linearizable by
// construction, and a corruption that makes one provably not linearizable.

#include <cstdint>
#include <optional>

#include "cluster/linearizability.h"

namespace strata::testing {

struct HistoryGenOptions {
  uint64_t seed = 1;
  int keys = 10;
  int clients = 16;
  int operations = 20000;  // In all, over every key.
  // Probability that an operation times out (outcome unknown). Half of
  // those take effect, possibly long after the client gave up.
  double unknown_probability = 0.01;
};

// Clients run one operation at a time; each operation gets a random
// interval and a random instant inside it (or after the invocation, for a
// timed-out one that takes effect); applying the operations to a map of
// registers in the order of those instants gives every result. Every value
// written is unique.
cluster::History GenerateHistory(const HistoryGenOptions& options);

// Makes a completed read return a value that was provably overwritten
// before the read began (a stale read): some completed write of that value
// finished before another completed write that finished before the read was
// invoked, and no other operation writes that value. Returns the index of
// the corrupted read, or std::nullopt if the history has no such read.
std::optional<size_t> CorruptWithStaleRead(cluster::History* history,
                                           uint64_t seed);

}  // namespace strata::testing

#endif  // STRATA_TESTS_CLUSTER_HISTORY_GEN_H_
