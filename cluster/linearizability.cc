#include "cluster/linearizability.h"

#include <errno.h>
#include <string.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <random>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace strata::cluster {
namespace {

constexpr int32_t kAbsent = 0;  // The interned id of "no value".

std::string Quote(const std::optional<std::string>& v, const char* absent) {
  if (!v.has_value()) return absent;
  return absl::StrCat("\"", absl::CHexEscape(*v), "\"");
}

std::string_view OpName(OpType t) {
  switch (t) {
    case OpType::kRead: return "read";
    case OpType::kWrite: return "write";
    case OpType::kDelete: return "delete";
    case OpType::kCas: return "cas";
  }
  return "?";
}

std::string_view OutcomeName(OpOutcome o) {
  switch (o) {
    case OpOutcome::kOk: return "ok";
    case OpOutcome::kFailed: return "failed";
    case OpOutcome::kUnknown: return "unknown";
  }
  return "?";
}

// ---------------------------------------------------------------------------
// The search for one key.

// An operation of one key, with its values interned (kAbsent = no value).
struct KeyOp {
  size_t index;  // Into the caller's History.
  OpType type;
  OpOutcome outcome;
  int32_t value;
  int32_t expected;
  bool completed;    // Must be linearized before `complete`.
  int64_t invoke;
  int64_t complete;  // Valid if completed.
  // For an indeterminate operation: the previous indeterminate operation
  // (by invocation) with the same transition, or -1. See PrepareKey.
  int32_t group_prev;
  // Operations that change the register the same way share a signature
  // (PrepareKey, 5); -1 for observers.
  int32_t signature;
  // Position among the operations with the same `completed`, in invocation
  // order: the bit of this operation in PlacedSet.
  int32_t slot;
};

// The register's transition: the value after applying `op` to `state`, or
// std::nullopt if `op` cannot produce its observed result from `state`.
std::optional<int32_t> Step(int32_t state, const KeyOp& op) {
  switch (op.type) {
    case OpType::kRead:
      if (op.value == state) return state;
      return std::nullopt;
    case OpType::kWrite:
    case OpType::kDelete:
      return op.value;
    case OpType::kCas:
      switch (op.outcome) {
        case OpOutcome::kOk:
          if (state == op.expected) return op.value;
          return std::nullopt;
        case OpOutcome::kFailed:
          if (state != op.expected) return state;
          return std::nullopt;
        case OpOutcome::kUnknown:
          return state == op.expected ? op.value : state;
      }
  }
  return std::nullopt;
}

// Which operations are placed: completed and indeterminate ones in
// separate bitsets. Completed operations get placed roughly in invocation
// order, so their set is "all up to some point, a few beyond it, none
// after" and ConfigCache stores it compactly; indeterminate ones may stay
// unplaced for good, which would spoil that, so they have their own
// (small) set.
struct PlacedSet {
  std::vector<uint64_t> done;  // Completed operations, by KeyOp::slot.
  std::vector<uint64_t> open;  // Indeterminate operations, by KeyOp::slot.
};

bool IsPlaced(const PlacedSet& p, const KeyOp& op) {
  const std::vector<uint64_t>& bits = op.completed ? p.done : p.open;
  return (bits[static_cast<size_t>(op.slot) / 64] >> (op.slot % 64)) & 1;
}
void Flip(PlacedSet& p, const KeyOp& op) {
  std::vector<uint64_t>& bits = op.completed ? p.done : p.open;
  bits[static_cast<size_t>(op.slot) / 64] ^= uint64_t{1} << (op.slot % 64);
}

// A completed operation that never changes the register: it only observes.
bool IsObserver(const KeyOp& op) {
  return op.completed &&
         (op.type == OpType::kRead ||
          (op.type == OpType::kCas && op.outcome == OpOutcome::kFailed));
}

// The value whose presence `op` tests (a read's result, a cas's expected
// value), or -1.
int32_t ObservedValue(const KeyOp& op) {
  if (op.type == OpType::kRead) return op.value;
  if (op.type == OpType::kCas) return op.expected;
  return -1;
}

// The register's value after running history[order[0]], history[order[1]],
// ... (a linearization found by the search) from absent.
std::optional<std::string> ValueAfter(const History& history,
                                      const std::vector<size_t>& order) {
  std::optional<std::string> v;
  for (size_t i : order) {
    const Operation& o = history[i];
    switch (o.type) {
      case OpType::kRead:
        break;
      case OpType::kWrite:
        v = o.value;
        break;
      case OpType::kDelete:
        v.reset();
        break;
      case OpType::kCas:
        if (o.outcome != OpOutcome::kFailed && v == o.expected) v = o.value;
        break;
    }
  }
  return v;
}

// Visited configurations: (placed set, register value). The completed
// operations' set is stored from its first word that is not all ones to
// its last word that is not zero (see PlacedSet); the indeterminate
// operations' set whole.
class ConfigCache {
 public:
  // Adds the configuration; false if it was already there. `hash` is a
  // hash of `placed` (maintained incrementally by the caller).
  bool Insert(const PlacedSet& placed, int32_t state, uint64_t hash) {
    const std::vector<uint64_t>& bits = placed.done;
    const std::vector<uint64_t>& open = placed.open;
    size_t lo = 0;
    while (lo < bits.size() && bits[lo] == ~uint64_t{0}) ++lo;
    size_t hi = bits.size();
    while (hi > lo && bits[hi - 1] == 0) --hi;
    const uint64_t key = hash ^ (static_cast<uint64_t>(state) + 1) *
                                    0x9E3779B97F4A7C15ull;
    auto [it, inserted] = heads_.try_emplace(key, kNone);
    for (uint32_t e = it->second; e != kNone; e = entries_[e].next) {
      const Entry& x = entries_[e];
      if (x.state == state && x.lo == lo && x.len == hi - lo &&
          std::equal(bits.begin() + lo, bits.begin() + hi,
                     arena_.begin() + x.offset) &&
          std::equal(open.begin(), open.end(),
                     arena_.begin() + x.offset + x.len)) {
        return false;
      }
    }
    entries_.push_back(Entry{it->second, static_cast<uint32_t>(lo),
                             static_cast<uint32_t>(hi - lo), state,
                             arena_.size()});
    it->second = static_cast<uint32_t>(entries_.size() - 1);
    arena_.insert(arena_.end(), bits.begin() + lo, bits.begin() + hi);
    arena_.insert(arena_.end(), open.begin(), open.end());
    return true;
  }
  size_t size() const { return entries_.size(); }
  // Approximate bytes held (entries, words, hash table).
  size_t bytes() const {
    return entries_.capacity() * sizeof(Entry) +
           arena_.capacity() * sizeof(uint64_t) +
           heads_.capacity() * (sizeof(uint64_t) + sizeof(uint32_t) + 1);
  }

 private:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  struct Entry {
    uint32_t next;  // Next entry with the same key, or kNone.
    uint32_t lo;    // First stored word of PlacedSet::done.
    uint32_t len;   // Words of PlacedSet::done stored (then all of open).
    int32_t state;
    size_t offset;  // Into arena_.
  };
  absl::flat_hash_map<uint64_t, uint32_t> heads_;
  std::vector<Entry> entries_;
  std::vector<uint64_t> arena_;
};

// The time-ordered list of invocation ("call") and completion ("return")
// events, doubly linked so the search can lift an operation out and put it
// back in O(1) (Lowe's "dancing links" style).
struct EventList {
  struct Node {
    int32_t op;      // KeyOp index; -1 for the sentinel.
    bool is_call;
    int32_t match;   // For a call: its return node, or -1 (indeterminate).
    int32_t prev;
    int32_t next;
  };
  std::vector<Node> nodes;  // nodes[0] is the sentinel (list head).

  int32_t first() const { return nodes[0].next; }
  void Unlink(int32_t n) {
    nodes[nodes[n].prev].next = nodes[n].next;
    nodes[nodes[n].next].prev = nodes[n].prev;
  }
  void Relink(int32_t n) {
    nodes[nodes[n].prev].next = n;
    nodes[nodes[n].next].prev = n;
  }
  // Removes a call and its return. Lift/Unlift calls must nest (LIFO).
  void Lift(int32_t call) {
    Unlink(call);
    if (nodes[call].match >= 0) Unlink(nodes[call].match);
  }
  void Unlift(int32_t call) {
    if (nodes[call].match >= 0) Relink(nodes[call].match);
    Relink(call);
  }
};

// Whether another candidate (an invocation before the first pending
// completion) changes the register like `node`'s operation but has an
// earlier deadline (PrepareKey, 5).
bool HasEarlierTwin(const EventList& list, const std::vector<KeyOp>& ops,
                    int32_t node) {
  const int32_t self = list.nodes[node].op;
  const KeyOp& op = ops[self];
  auto deadline = [](const KeyOp& k) {
    return k.completed ? k.complete : std::numeric_limits<int64_t>::max();
  };
  for (int32_t n = list.first(); n != 0 && list.nodes[n].is_call;
       n = list.nodes[n].next) {
    const int32_t other = list.nodes[n].op;
    if (other == self || ops[other].signature != op.signature) continue;
    const int64_t a = deadline(ops[other]);
    const int64_t b = deadline(op);
    if (a < b || (a == b && other < self)) return true;
  }
  return false;
}

EventList BuildEvents(const std::vector<KeyOp>& ops) {
  struct Event {
    int64_t time;
    int kind;  // 0 = call, 1 = return: calls first at equal times.
    int32_t op;
  };
  std::vector<Event> events;
  events.reserve(ops.size() * 2);
  for (size_t i = 0; i < ops.size(); ++i) {
    events.push_back({ops[i].invoke, 0, static_cast<int32_t>(i)});
    if (ops[i].completed) {
      events.push_back({ops[i].complete, 1, static_cast<int32_t>(i)});
    }
  }
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    if (a.time != b.time) return a.time < b.time;
    if (a.kind != b.kind) return a.kind < b.kind;
    return a.op < b.op;
  });
  EventList list;
  const int32_t n = static_cast<int32_t>(events.size());
  list.nodes.resize(events.size() + 1);
  list.nodes[0] = {-1, false, -1, n, n > 0 ? 1 : 0};
  std::vector<int32_t> call_node(ops.size(), -1);
  for (int32_t i = 0; i < n; ++i) {
    const int32_t node = i + 1;
    list.nodes[node] = {events[i].op, events[i].kind == 0, -1, i,
                        node == n ? 0 : node + 1};
    if (events[i].kind == 0) {
      call_node[events[i].op] = node;
    } else {
      list.nodes[call_node[events[i].op]].match = node;
    }
  }
  return list;
}

std::string DescribeList(const History& history,
                         const std::vector<size_t>& indices, size_t max) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < indices.size() && i < max; ++i) {
    parts.push_back(DescribeOperation(history, indices[i]));
  }
  if (indices.size() > max) {
    parts.push_back(absl::StrCat("... (", indices.size() - max, " more)"));
  }
  return absl::StrJoin(parts, "; ");
}

void Explain(const History& history, size_t completed_total,
             KeyResult* r) {
  if (r->verdict == Verdict::kLinearizable) return;
  size_t completed_placed = 0;
  for (size_t i : r->longest_prefix) {
    if (history[i].complete_ns.has_value()) ++completed_placed;
  }
  std::string s = absl::StrFormat(
      "key \"%s\": %s. The longest linearizable prefix places %d of %d "
      "completed operations (%d operations in all); after it the register "
      "holds %s.",
      absl::CHexEscape(r->key), VerdictName(r->verdict), completed_placed,
      completed_total, r->longest_prefix.size(),
      Quote(r->value_after_prefix, "nothing (absent)"));
  if (r->stuck_op.has_value()) {
    absl::StrAppend(&s, " Then ", DescribeOperation(history, *r->stuck_op),
                    " cannot be placed: it completed before it could take "
                    "effect");
    if (r->candidates.empty()) {
      absl::StrAppend(&s, ", and no pending operation could change the "
                          "register before it.");
    } else {
      absl::StrAppend(&s, " in any order of the operations pending with it (",
                      DescribeList(history, r->candidates, 10), ").");
    }
  }
  if (!r->longest_prefix.empty()) {
    const size_t tail = std::min<size_t>(r->longest_prefix.size(), 5);
    std::vector<size_t> last(r->longest_prefix.end() - tail,
                             r->longest_prefix.end());
    absl::StrAppend(&s, " The prefix ends with: ",
                    DescribeList(history, last, 5), ".");
  }
  r->explanation = std::move(s);
}

// Every value that no operation reads or compares against: nothing can
// tell such values apart, so they share one id.
constexpr int32_t kUnobserved = 1;

struct PreparedKey {
  std::vector<KeyOp> ops;  // In invocation order.
  int32_t values = 2;      // Value ids are 0 .. values-1.
};

// Turns one key's operations into the search's form, with reductions that
// keep the verdict and shrink the search (chiefly the branching that
// indeterminate operations cause, since they stay pending forever):
//  1. Reads with unknown outcome are dropped: they constrain nothing.
//  2. Values no operation reads or compares against collapse into one
//     (kUnobserved), so more configurations coincide in the cache.
//  3. An indeterminate write or cas whose value only it writes, and which
//     some read returned or some successful cas compared against, must have
//     taken effect before the earliest such observer completed: it becomes
//     a completed operation with that completion (a cas: a successful one).
//  4. Indeterminate operations with the same transition are
//     interchangeable: if a linearization applies a later-invoked one
//     first, swapping them gives another (neither has a deadline). So each
//     may be applied only after the previous one of its group
//     (`group_prev`), and a group of k costs k+1 configurations, not 2^k.
//  5. More generally, of two candidates with the same transition the one
//     with the earlier deadline (completion; indeterminate last) may go
//     first: the same swap argument. The search tries only that one
//     (`signature` identifies the transition).
//  6. An indeterminate write or cas of a value nobody reads or compares
//     against can only ever help a failed cas (by moving the register off
//     the value it compared against). Invoked after every failed cas
//     completed, it can help nothing and is dropped (deemed never run).
PreparedKey PrepareKey(const History& history, const std::vector<size_t>& ops) {
  absl::flat_hash_set<std::string> observed;
  absl::flat_hash_map<std::string, int> writers;
  absl::flat_hash_map<std::string, int64_t> first_observer_done;
  int64_t last_failed_cas_done = std::numeric_limits<int64_t>::min();
  auto saw = [&](const std::string& v, int64_t done) {
    observed.insert(v);
    auto [it, inserted] = first_observer_done.try_emplace(v, done);
    if (!inserted) it->second = std::min(it->second, done);
  };
  for (size_t index : ops) {
    const Operation& o = history[index];
    const bool ok = o.outcome == OpOutcome::kOk;
    if (o.type == OpType::kRead && ok && o.value.has_value()) {
      saw(*o.value, *o.complete_ns);
    }
    if (o.type == OpType::kCas && o.expected.has_value()) {
      if (ok) {
        saw(*o.expected, *o.complete_ns);
      } else {
        observed.insert(*o.expected);
      }
    }
    if (o.type == OpType::kWrite || o.type == OpType::kCas) {
      ++writers[*o.value];
    }
    if (o.type == OpType::kCas && o.outcome == OpOutcome::kFailed) {
      last_failed_cas_done = std::max(last_failed_cas_done, *o.complete_ns);
    }
  }

  PreparedKey p;
  absl::flat_hash_map<std::string, int32_t> ids;
  auto intern = [&](const std::optional<std::string>& v) -> int32_t {
    if (!v.has_value()) return kAbsent;
    if (!observed.contains(*v)) return kUnobserved;
    return ids.try_emplace(*v, static_cast<int32_t>(ids.size()) + 2)
        .first->second;
  };
  for (size_t index : ops) {
    const Operation& o = history[index];
    if (o.type == OpType::kRead && o.outcome == OpOutcome::kUnknown) continue;
    KeyOp k{index,
            o.type,
            o.outcome,
            o.type == OpType::kDelete ? kAbsent : intern(o.value),
            o.type == OpType::kCas ? intern(o.expected) : kAbsent,
            o.complete_ns.has_value(),
            o.invoke_ns,
            o.complete_ns.value_or(0),
            -1,
            -1,
            0};
    const bool writes_value =
        o.type == OpType::kWrite || o.type == OpType::kCas;
    if (!k.completed && writes_value && k.value == kUnobserved &&
        o.invoke_ns > last_failed_cas_done) {
      continue;  // Reduction 6.
    }
    if (!k.completed && writes_value && writers[*o.value] == 1) {
      auto it = first_observer_done.find(*o.value);
      if (it != first_observer_done.end()) {
        k.completed = true;
        // An observer that completed before this was invoked makes the
        // history non-linearizable; the search finds that out.
        k.complete = std::max(it->second, o.invoke_ns);
        if (o.type == OpType::kCas) k.outcome = OpOutcome::kOk;
      }
    }
    p.ops.push_back(k);
  }
  p.values = static_cast<int32_t>(ids.size()) + 2;
  std::stable_sort(p.ops.begin(), p.ops.end(),
                   [](const KeyOp& a, const KeyOp& b) {
                     return a.invoke < b.invoke;
                   });
  int32_t slots[2] = {0, 0};
  for (KeyOp& k : p.ops) k.slot = slots[k.completed ? 1 : 0]++;
  std::map<std::tuple<bool, int32_t, int32_t>, int32_t> signatures;
  std::map<int32_t, int32_t> last_indeterminate;  // By signature.
  for (size_t i = 0; i < p.ops.size(); ++i) {
    KeyOp& k = p.ops[i];
    if (k.type == OpType::kRead ||
        (k.type == OpType::kCas && k.outcome == OpOutcome::kFailed)) {
      continue;
    }
    const bool cas = k.type == OpType::kCas;
    k.signature = signatures
                      .try_emplace(std::make_tuple(cas, k.value,
                                                   cas ? k.expected : 0),
                                   static_cast<int32_t>(signatures.size()))
                      .first->second;
    if (k.completed) continue;
    auto [it, inserted] =
        last_indeterminate.try_emplace(k.signature, static_cast<int32_t>(i));
    if (!inserted) {
      k.group_prev = it->second;
      it->second = static_cast<int32_t>(i);
    }
  }
  return p;
}

}  // namespace

std::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kLinearizable: return "linearizable";
    case Verdict::kNotLinearizable: return "not linearizable";
    case Verdict::kUnknown: return "unknown (search budget exhausted)";
  }
  return "?";
}

absl::Status ValidateHistory(const History& history) {
  for (size_t i = 0; i < history.size(); ++i) {
    const Operation& o = history[i];
    auto bad = [&](const char* why) {
      return absl::InvalidArgumentError(
          absl::StrCat("operation #", i, ": ", why));
    };
    if (o.client < 0) return bad("client must be >= 0");
    if (o.outcome == OpOutcome::kUnknown) {
      if (o.complete_ns.has_value()) {
        return bad("an operation with outcome unknown has no completion time");
      }
    } else {
      if (!o.complete_ns.has_value()) {
        return bad("a completed operation needs a completion time");
      }
      if (*o.complete_ns < o.invoke_ns) {
        return bad("completion time is before invocation time");
      }
    }
    if (o.outcome == OpOutcome::kFailed && o.type != OpType::kCas) {
      return bad("only cas can have outcome failed");
    }
    switch (o.type) {
      case OpType::kRead:
        if (o.expected.has_value()) return bad("read takes no expected value");
        if (o.outcome == OpOutcome::kUnknown && o.value.has_value()) {
          return bad("a read with outcome unknown returned no value");
        }
        break;
      case OpType::kWrite:
        if (!o.value.has_value()) return bad("write needs a value");
        if (o.expected.has_value()) return bad("write takes no expected value");
        break;
      case OpType::kDelete:
        if (o.value.has_value() || o.expected.has_value()) {
          return bad("delete takes no value");
        }
        break;
      case OpType::kCas:
        if (!o.value.has_value()) return bad("cas needs a new value");
        break;
    }
  }
  return absl::OkStatus();
}

std::map<std::string, std::vector<size_t>> PartitionByKey(
    const History& history) {
  std::map<std::string, std::vector<size_t>> out;
  for (size_t i = 0; i < history.size(); ++i) {
    out[history[i].key].push_back(i);
  }
  return out;
}

KeyResult CheckKey(const History& history, const std::vector<size_t>& ops,
                   absl::Time deadline, size_t max_cache_bytes) {
  KeyResult result;
  if (!ops.empty()) result.key = history[ops[0]].key;
  result.operations = ops.size();

  PreparedKey prepared = PrepareKey(history, ops);
  std::vector<KeyOp>& kops = prepared.ops;
  size_t completed_total = 0;
  for (const KeyOp& k : kops) completed_total += k.completed ? 1 : 0;

  EventList list = BuildEvents(kops);
  std::vector<uint64_t> zobrist(kops.size());
  std::mt19937_64 rng(0x5eed);
  for (uint64_t& z : zobrist) z = rng();

  // Operations not yet placed that can tell each value apart from others.
  std::vector<int32_t> pending_observers(prepared.values, 0);
  for (const KeyOp& k : kops) {
    if (const int32_t seen = ObservedValue(k); seen >= 0) {
      ++pending_observers[seen];
    }
  }
  PlacedSet placed;
  {
    size_t done = 0;
    for (const KeyOp& k : kops) done += k.completed ? 1 : 0;
    placed.done.assign((done + 63) / 64, 0);
    placed.open.assign((kops.size() - done + 63) / 64, 0);
  }
  uint64_t hash = 0;
  int32_t state = pending_observers[kAbsent] == 0 ? kUnobserved : kAbsent;
  size_t remaining = completed_total;
  struct Frame {
    int32_t call;
    int32_t prev_state;
    bool forced;  // Placed without alternatives (an observer).
  };
  std::vector<Frame> stack;
  ConfigCache cache;
  size_t best_placed = 0;
  bool have_best = false;
  auto record_deepest = [&](int32_t return_node) {
    const size_t placed = completed_total - remaining;
    if (have_best && placed <= best_placed) return;
    have_best = true;
    best_placed = placed;
    result.longest_prefix.clear();
    for (const Frame& f : stack) {
      result.longest_prefix.push_back(kops[list.nodes[f.call].op].index);
    }
    result.value_after_prefix = ValueAfter(history, result.longest_prefix);
    result.stuck_op.reset();
    result.candidates.clear();
    if (return_node > 0) {
      result.stuck_op = kops[list.nodes[return_node].op].index;
      for (int32_t n = list.first(); n != return_node && n != 0;
           n = list.nodes[n].next) {
        if (list.nodes[n].is_call &&
            list.nodes[n].op != list.nodes[return_node].op) {
          result.candidates.push_back(kops[list.nodes[n].op].index);
        }
      }
    }
  };
  auto finish = [&](Verdict v) {
    result.verdict = v;
    result.configurations = cache.size();
    if (v == Verdict::kLinearizable) {
      result.longest_prefix.clear();
      result.value_after_prefix.reset();
      result.stuck_op.reset();
      result.candidates.clear();
    }
    size_t completed_in_history = 0;
    for (size_t i : ops) completed_in_history += history[i].complete_ns ? 1 : 0;
    Explain(history, completed_in_history, &result);
    return result;
  };

  // Places the operation of call node `node`, moving the register to
  // `next`, unless that configuration was visited before (false).
  auto place = [&](int32_t node, int32_t next, bool forced) {
    const int32_t i = list.nodes[node].op;
    Flip(placed, kops[i]);
    hash ^= zobrist[i];
    const int32_t seen = ObservedValue(kops[i]);
    if (seen >= 0) --pending_observers[seen];
    // A value no remaining operation can tell from kUnobserved is
    // kUnobserved from here on: configurations that differ only in such a
    // value are one (the writes that led to them no longer matter).
    const int32_t canonical =
        pending_observers[next] == 0 ? kUnobserved : next;
    if (!cache.Insert(placed, canonical, hash)) {
      Flip(placed, kops[i]);
      hash ^= zobrist[i];
      if (seen >= 0) ++pending_observers[seen];
      return false;
    }
    stack.push_back(Frame{node, state, forced});
    state = canonical;
    if (kops[i].completed) --remaining;
    list.Lift(node);
    return true;
  };
  auto undo = [&]() {
    const Frame f = stack.back();
    stack.pop_back();
    const int32_t i = list.nodes[f.call].op;
    Flip(placed, kops[i]);
    hash ^= zobrist[i];
    if (const int32_t seen = ObservedValue(kops[i]); seen >= 0) {
      ++pending_observers[seen];
    }
    state = f.prev_state;
    if (kops[i].completed) ++remaining;
    list.Unlift(f.call);
    return f;
  };

  uint64_t steps = 0;
  bool fresh = true;  // At a configuration not scanned yet.
  int32_t node = 0;
  while (remaining > 0) {
    if ((++steps & 1023) == 0 &&
        (absl::Now() > deadline || cache.bytes() > max_cache_bytes)) {
      return finish(Verdict::kUnknown);
    }
    bool dead = false;
    if (fresh) {
      fresh = false;
      // A completed observer (a read, a failed cas) that can be placed now
      // is placed now without branching: with its invocation behind us and
      // the state unchanged by it, any linearization placing it later can
      // place it here instead. So if placing it fails, so does this
      // configuration.
      int32_t observer = 0;
      for (int32_t n = list.first(); n != 0 && list.nodes[n].is_call;
           n = list.nodes[n].next) {
        const KeyOp& op = kops[list.nodes[n].op];
        if (IsObserver(op) && Step(state, op).has_value()) {
          observer = n;
          break;
        }
      }
      if (observer != 0) {
        if (place(observer, state, /*forced=*/true)) {
          fresh = true;
          continue;
        }
        dead = true;
      }
      node = list.first();
    }
    if (!dead && node != 0 && list.nodes[node].is_call) {
      const KeyOp& op = kops[list.nodes[node].op];
      const std::optional<int32_t> next = Step(state, op);
      // An indeterminate operation that would change nothing need not be
      // placed at all, nor one whose group predecessor is still unplaced
      // (PrepareKey, 4). Observers that fit were placed above.
      const bool useful =
          op.completed ||
          (next.has_value() && *next != state &&
           (op.group_prev < 0 || IsPlaced(placed, kops[op.group_prev])));
      if (next.has_value() && useful && !IsObserver(op) &&
          !HasEarlierTwin(list, kops, node) &&
          place(node, *next, /*forced=*/false)) {
        fresh = true;
        continue;
      }
      node = list.nodes[node].next;
      continue;
    }
    // A completion (or the end of the list) reached with its operation not
    // yet linearized, or a forced placement failed: this configuration is
    // dead. Undo placements up to the last one that had alternatives.
    if (!dead) record_deepest(node);
    while (true) {
      if (stack.empty()) return finish(Verdict::kNotLinearizable);
      const Frame f = undo();
      if (!f.forced) {
        node = list.nodes[f.call].next;
        break;
      }
    }
  }
  return finish(Verdict::kLinearizable);
}

absl::StatusOr<CheckResult> CheckHistory(const History& history,
                                         const CheckOptions& options) {
  if (absl::Status s = ValidateHistory(history); !s.ok()) return s;
  const absl::Time deadline = absl::Now() + options.time_limit;
  CheckResult out;
  bool unknown = false;
  bool bad = false;
  for (const auto& [key, ops] : PartitionByKey(history)) {
    KeyResult r = CheckKey(history, ops, deadline, options.max_cache_bytes);
    unknown |= r.verdict == Verdict::kUnknown;
    bad |= r.verdict == Verdict::kNotLinearizable;
    out.keys.push_back(std::move(r));
  }
  out.verdict = bad       ? Verdict::kNotLinearizable
                : unknown ? Verdict::kUnknown
                          : Verdict::kLinearizable;
  return out;
}

std::string DescribeOperation(const History& history, size_t index) {
  const Operation& o = history[index];
  std::string call;
  std::string result(OutcomeName(o.outcome));
  switch (o.type) {
    case OpType::kRead:
      call = "read()";
      if (o.outcome == OpOutcome::kOk) result = Quote(o.value, "not-found");
      break;
    case OpType::kWrite:
      call = absl::StrCat("write(", Quote(o.value, "absent"), ")");
      break;
    case OpType::kDelete:
      call = "delete()";
      break;
    case OpType::kCas:
      call = absl::StrCat("cas(", Quote(o.expected, "absent"), " -> ",
                          Quote(o.value, "absent"), ")");
      break;
  }
  const std::string end =
      o.complete_ns.has_value() ? absl::StrCat(*o.complete_ns) : "inf";
  return absl::StrFormat("#%d client %d %s = %s [%d, %s]", index, o.client,
                         call, result, o.invoke_ns, end);
}

// ---------------------------------------------------------------------------
// JSON lines.

namespace {

using Json = nlohmann::json;

absl::Status ParseLine(const Json& j, Operation* op) {
  if (!j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    static const char* const kFields[] = {"client",  "key",      "op",
                                          "value",   "expected", "outcome",
                                          "invoke",  "complete"};
    if (std::find_if(std::begin(kFields), std::end(kFields), [&](const char* f) {
          return it.key() == f;
        }) == std::end(kFields)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown field \"", it.key(), "\""));
    }
  }
  auto get_int = [&](const char* name, bool nullable,
                     std::optional<int64_t>* out) -> absl::Status {
    auto it = j.find(name);
    if (it == j.end()) {
      return absl::InvalidArgumentError(absl::StrCat("missing \"", name, "\""));
    }
    if (nullable && it->is_null()) {
      out->reset();
      return absl::OkStatus();
    }
    if (it->is_number_unsigned()) {
      const uint64_t u = it->get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"", name, "\" is out of range"));
      }
      *out = static_cast<int64_t>(u);
      return absl::OkStatus();
    }
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", name, "\" must be an integer", nullable ? " or null" : ""));
    }
    *out = it->get<int64_t>();
    return absl::OkStatus();
  };
  // Reads an optional-string field; `present` says whether it was there.
  auto get_str = [&](const char* name, bool* present,
                     std::optional<std::string>* out) -> absl::Status {
    auto it = j.find(name);
    *present = it != j.end();
    out->reset();
    if (!*present || it->is_null()) return absl::OkStatus();
    if (!it->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", name, "\" must be a string or null"));
    }
    *out = it->get<std::string>();
    return absl::OkStatus();
  };

  std::optional<int64_t> client, invoke, complete;
  if (auto s = get_int("client", false, &client); !s.ok()) return s;
  if (auto s = get_int("invoke", false, &invoke); !s.ok()) return s;
  if (auto s = get_int("complete", true, &complete); !s.ok()) return s;
  op->client = *client;
  op->invoke_ns = *invoke;
  op->complete_ns = complete;

  auto key = j.find("key");
  if (key == j.end() || !key->is_string()) {
    return absl::InvalidArgumentError("\"key\" must be a string");
  }
  op->key = key->get<std::string>();

  auto type = j.find("op");
  if (type == j.end() || !type->is_string()) {
    return absl::InvalidArgumentError("\"op\" must be a string");
  }
  const std::string t = type->get<std::string>();
  if (t == "read") {
    op->type = OpType::kRead;
  } else if (t == "write") {
    op->type = OpType::kWrite;
  } else if (t == "delete") {
    op->type = OpType::kDelete;
  } else if (t == "cas") {
    op->type = OpType::kCas;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"op\" must be read, write, delete or cas, not \"", t, "\""));
  }

  auto outcome = j.find("outcome");
  if (outcome == j.end() || !outcome->is_string()) {
    return absl::InvalidArgumentError("\"outcome\" must be a string");
  }
  const std::string oc = outcome->get<std::string>();
  if (oc == "ok") {
    op->outcome = OpOutcome::kOk;
  } else if (oc == "failed") {
    op->outcome = OpOutcome::kFailed;
  } else if (oc == "unknown") {
    op->outcome = OpOutcome::kUnknown;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"outcome\" must be ok, failed or unknown, not \"", oc, "\""));
  }

  bool has_value = false, has_expected = false;
  if (auto s = get_str("value", &has_value, &op->value); !s.ok()) return s;
  if (auto s = get_str("expected", &has_expected, &op->expected); !s.ok()) {
    return s;
  }
  const bool read_ok = op->type == OpType::kRead && op->outcome == OpOutcome::kOk;
  const bool needs_value = read_ok || op->type == OpType::kWrite ||
                           op->type == OpType::kCas;
  if (needs_value && !has_value) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"value\" is required for ", t,
        read_ok ? " with outcome ok (null for not-found)" : ""));
  }
  if (!needs_value && has_value) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"value\" is not allowed here (", t, ", ", oc, ")"));
  }
  if ((op->type == OpType::kCas) != has_expected) {
    return absl::InvalidArgumentError(
        "\"expected\" is required for cas and allowed only there");
  }
  if (op->type != OpType::kRead && has_value && !op->value.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"value\" of ", t, " must be a string (use delete)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<History> ParseHistory(std::istream& in,
                                     std::string_view source) {
  History history;
  const std::string name(source);
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    auto fail = [&](const std::string& why) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ":", line_no, ": ", why));
    };
    const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return fail("not valid JSON");
    Operation op;
    if (absl::Status s = ParseLine(j, &op); !s.ok()) {
      return fail(std::string(s.message()));
    }
    History one = {op};
    if (absl::Status s = ValidateHistory(one); !s.ok()) {
      // Strip ValidateHistory's "operation #0: " prefix.
      const std::string msg(s.message());
      const size_t colon = msg.find(": ");
      return fail(colon == std::string::npos ? msg : msg.substr(colon + 2));
    }
    history.push_back(std::move(op));
  }
  if (in.bad()) {
    return absl::InternalError(absl::StrCat(name, ": read error"));
  }
  return history;
}

absl::StatusOr<History> ReadHistoryFile(const std::string& path) {
  std::ifstream in(path);
  if (!in.is_open()) {
    const int e = errno;
    const std::string msg = absl::StrCat(path, ": ", strerror(e));
    if (e == ENOENT) return absl::NotFoundError(msg);
    if (e == EACCES) return absl::PermissionDeniedError(msg);
    return absl::InternalError(msg);
  }
  return ParseHistory(in, path);
}

std::string ToJsonLine(const Operation& op) {
  nlohmann::ordered_json j;
  j["client"] = op.client;
  j["key"] = op.key;
  j["op"] = std::string(OpName(op.type));
  const bool read_ok = op.type == OpType::kRead && op.outcome == OpOutcome::kOk;
  if (read_ok || op.type == OpType::kWrite || op.type == OpType::kCas) {
    j["value"] = op.value.has_value() ? nlohmann::ordered_json(*op.value)
                                      : nlohmann::ordered_json(nullptr);
  }
  if (op.type == OpType::kCas) {
    j["expected"] = op.expected.has_value()
                        ? nlohmann::ordered_json(*op.expected)
                        : nlohmann::ordered_json(nullptr);
  }
  j["outcome"] = std::string(OutcomeName(op.outcome));
  j["invoke"] = op.invoke_ns;
  j["complete"] = op.complete_ns.has_value()
                      ? nlohmann::ordered_json(*op.complete_ns)
                      : nlohmann::ordered_json(nullptr);
  // Invalid UTF-8 in a value becomes U+FFFD rather than an exception.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace strata::cluster
