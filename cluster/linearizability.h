#ifndef STRATA_CLUSTER_LINEARIZABILITY_H_
#define STRATA_CLUSTER_LINEARIZABILITY_H_

// A linearizability checker for histories of operations on registers (keys):
// the oracle of the cluster tests ("every key's history is linearizable").
//
// The model: each key is one register holding a value or nothing ("absent").
// Operations, each with the real-time interval [invoke, complete] in which
// the client saw it run:
//   read()            -> value | not-found
//   write(v)          -> ok                      (etcd Put)
//   delete()          -> ok                      (a write of "absent")
//   cas(expected, v)  -> ok | failed             (etcd Txn: compare the value,
//                                                 or create_revision == 0 for
//                                                 expected = absent, then Put)
// Every register starts absent. A history is linearizable if every
// operation can be given one instant inside its interval such that,
// executed one at a time in the order of those instants, the register
// produces exactly the results observed.
//
// Indeterminate operations (outcome unknown, e.g. a timeout) have no
// completion: their interval extends to +infinity and their result is
// unconstrained, so each one either took effect at some instant after its
// invocation or never did. This is the standard treatment (Jepsen's :info,
// porcupine's infinite return time). A read with an unknown outcome
// constrains nothing and is ignored. Operations known NOT to have taken
// effect (a definite error) must be left out of the history.
//
// Intervals are closed: an operation invoked at the very nanosecond another
// completed counts as concurrent with it (the permissive choice; clocks
// rarely tie at nanosecond resolution).
//
// The algorithm, per key (P-compositionality: a history over independent
// registers is linearizable iff each key's sub-history is, Herlihy & Wing
// 1990, so keys are checked separately):
//   Wing & Gong's depth-first search for a linearization ("Testing and
//   verifying concurrent objects", J. Parallel Distrib. Comput. 17, 1993),
//   with Lowe's refinements ("Testing for linearizability", Concurrency and
//   Computation: Practice and Experience 29(4), 2017): invocation and
//   completion events in one time-ordered doubly linked list; at each step
//   any operation whose invocation precedes the first pending completion may
//   be linearized next if the model accepts its result; a completion reached
//   before its operation was linearized forces a backtrack; and a cache of
//   visited (set of linearized operations, register value) configurations
//   prunes every subtree already explored. This is the algorithm of
//   porcupine (github.com/anishathalye/porcupine) and of etcd's robustness
//   tests, which use porcupine. On top of it, reductions that never change
//   the verdict (each argued in linearizability.cc, and the whole checked
//   against brute force in the tests): a read or failed cas that fits now
//   is placed now without branching; of several candidates that change the
//   register the same way only the most urgent is tried; values no
//   remaining operation can distinguish are merged; a timed-out write that
//   was observed must have completed before its first observer did.
//   The search is exponential in the worst case (the problem is
//   NP-complete, Gibbons & Korach 1997) but close to linear in the number
//   of operations for real histories with bounded concurrency; a time limit
//   and a memory budget turn a runaway search into kUnknown. Measured on
//   generated histories (tests/cluster/history_gen.h: 16 clients, 1% of
//   operations timed out, one stale read injected to refute), one core:
//   10 keys x 2,000 operations: ~15 ms to accept or refute; 10 keys x 5,000:
//   ~50 ms to accept, 0.2-2.5 s to refute; one key x 3,000: < 0.1 s to
//   accept, 0.2-0.5 s to refute. What costs most is many timed-out writes
//   pending at once on one key whose values only failed compares observe:
//   each may or may not have happened, at any later time.
//
// History file format (JSON lines, one operation per line, UTF-8; blank
// lines and lines starting with '#' are ignored):
//   {"client": 3, "key": "k1", "op": "write", "value": "v7",
//    "outcome": "ok", "invoke": 1700000000000000000, "complete": 1700000000000500000}
// Fields:
//   client    integer >= 0: who ran it (for messages only).
//   key       string: the register.
//   op        "read" | "write" | "delete" | "cas".
//   value     write, cas: the new value (string, required).
//             read with outcome "ok": the value read (string), or null for
//             not-found (required). Otherwise absent.
//   expected  cas only: the value compared against (string), or null for
//             "the key must be absent" (required).
//   outcome   "ok" | "failed" (cas only: the compare did not match, nothing
//             was written) | "unknown" (indeterminate: no reply).
//   invoke    integer nanoseconds: when the client sent the request.
//   complete  integer nanoseconds >= invoke: when the client got the reply;
//             null if and only if outcome is "unknown".
// Timestamps must come from one monotonic clock across all clients.
// Unknown fields are an error (a typo must not silently change a verdict).

#include <cstddef>
#include <cstdint>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace strata::cluster {

enum class OpType { kRead, kWrite, kDelete, kCas };

enum class OpOutcome {
  kOk,       // Completed; for a read, `value` holds what it returned.
  kFailed,   // cas only: the compare failed; nothing was written.
  kUnknown,  // Indeterminate: no completion time, may or may not have run.
};

// One operation of a history. Plain data; copyable.
struct Operation {
  int64_t client = 0;
  std::string key;
  OpType type = OpType::kRead;
  OpOutcome outcome = OpOutcome::kOk;
  // write/cas: the value written. read (outcome kOk): the value returned,
  // std::nullopt for not-found. delete: unused (std::nullopt).
  std::optional<std::string> value;
  // cas: the value compared against; std::nullopt means "absent"
  // (create-if-absent). Unused otherwise.
  std::optional<std::string> expected;
  int64_t invoke_ns = 0;
  // std::nullopt if and only if outcome == kUnknown.
  std::optional<int64_t> complete_ns;
};

using History = std::vector<Operation>;

enum class Verdict {
  kLinearizable,
  kNotLinearizable,
  kUnknown,  // The time limit or memory budget ran out first.
};

std::string_view VerdictName(Verdict v);  // "linearizable", ...

struct CheckOptions {
  // Wall-clock budget for the whole history (all keys). When it runs out
  // the keys not yet decided are kUnknown.
  absl::Duration time_limit = absl::Seconds(60);
  // Budget for each key's cache of visited configurations (its dominant
  // memory). A key whose cache would grow past it is kUnknown.
  size_t max_cache_bytes = size_t{1} << 30;
};

// The verdict for one key. Operation indices refer to the History given to
// CheckHistory (or to CheckKey's `ops`).
struct KeyResult {
  std::string key;
  Verdict verdict = Verdict::kUnknown;
  size_t operations = 0;  // Operations of this key that were checked.
  // Search effort: configurations visited (cache entries).
  size_t configurations = 0;
  // When not linearizable (and for kUnknown, the progress made): the
  // longest linearization found of a prefix of the history (the deepest
  // point of the search, by completed operations placed), in order; the
  // register value after it (std::nullopt = absent); the operation that
  // could not be placed after it although it had completed (the search hit
  // its completion first); and the operations that were candidates to go
  // next at that point (invoked, not yet linearized), none of which led to
  // a linearization.
  std::vector<size_t> longest_prefix;
  std::optional<std::string> value_after_prefix;
  std::optional<size_t> stuck_op;
  std::vector<size_t> candidates;
  // One paragraph for a human: what failed and where. Empty when
  // linearizable.
  std::string explanation;
};

struct CheckResult {
  // kNotLinearizable if any key is; else kUnknown if any key is; else
  // kLinearizable (also for an empty history).
  Verdict verdict = Verdict::kLinearizable;
  std::vector<KeyResult> keys;  // Sorted by key.
};

// Checks that each operation is well formed (the field rules of the file
// format above). InvalidArgument naming the operation's index otherwise.
absl::Status ValidateHistory(const History& history);

// Indices of history's operations grouped by key, in their original order.
std::map<std::string, std::vector<size_t>> PartitionByKey(
    const History& history);

// Checks every key of `history` for linearizability, one key at a time,
// within options.time_limit in total. InvalidArgument if ValidateHistory
// fails; otherwise the verdict (kUnknown is a result, not an error).
// Thread-safe (no shared state); single-threaded inside.
absl::StatusOr<CheckResult> CheckHistory(const History& history,
                                         const CheckOptions& options = {});

// Checks the operations history[ops[0]], history[ops[1]], ... as the
// history of one register, with the search stopping at `deadline`.
// REQUIRES: ValidateHistory(history) is OK; every listed operation has the
// same key.
KeyResult CheckKey(const History& history, const std::vector<size_t>& ops,
                   absl::Time deadline, size_t max_cache_bytes);

// Parses the JSON-lines format above. `source` names the input in error
// messages ("history.jsonl"). InvalidArgument with source:line and the
// reason for a malformed line or a field breaking the format's rules.
absl::StatusOr<History> ParseHistory(std::istream& in, std::string_view source);
// Reads and parses a file. NotFound/PermissionDenied/Internal (with the
// path and errno text) if it cannot be read; InvalidArgument as above.
absl::StatusOr<History> ReadHistoryFile(const std::string& path);
// One line of the format (no trailing newline); ParseHistory reads it back
// to an equal Operation.
std::string ToJsonLine(const Operation& op);

// A short human-readable form for messages, "#index" being the
// operation's position in the history (for the CLI: across its files in
// order, not counting blank and comment lines):
// "#12 client 3 cas(\"v1\" -> \"v2\") = ok [100, 250]".
std::string DescribeOperation(const History& history, size_t index);

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_LINEARIZABILITY_H_
