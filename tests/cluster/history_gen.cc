#include "tests/cluster/history_gen.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace strata::testing {

using cluster::History;
using cluster::OpOutcome;
using cluster::Operation;
using cluster::OpType;

History GenerateHistory(const HistoryGenOptions& options) {
  std::mt19937_64 rng(options.seed);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  auto chance = [&](double p) {
    return std::uniform_real_distribution<double>(0, 1)(rng) < p;
  };

  // Intervals and linearization points.
  History h;
  std::vector<int64_t> point;
  std::vector<bool> takes_effect;
  std::vector<int64_t> free_at(options.clients);
  for (int64_t& t : free_at) t = uniform(0, 100);
  for (int i = 0; i < options.operations; ++i) {
    const size_t c = static_cast<size_t>(
        std::min_element(free_at.begin(), free_at.end()) - free_at.begin());
    Operation op;
    op.client = static_cast<int64_t>(c);
    op.key = absl::StrCat("k", uniform(0, options.keys - 1));
    const int64_t r = uniform(0, 99);
    op.type = r < 40   ? OpType::kRead
              : r < 70 ? OpType::kWrite
              : r < 80 ? OpType::kDelete
                       : OpType::kCas;
    op.invoke_ns = free_at[c] + uniform(1, 50);
    if (chance(options.unknown_probability)) {
      op.outcome = OpOutcome::kUnknown;
      takes_effect.push_back(chance(0.5));
      point.push_back(op.invoke_ns + uniform(0, 2000));
      free_at[c] = op.invoke_ns + uniform(100, 300);  // The client gave up.
    } else {
      takes_effect.push_back(true);
      point.push_back(op.invoke_ns + uniform(0, 100));
      op.complete_ns = point.back() + uniform(0, 100);
      free_at[c] = *op.complete_ns;
    }
    h.push_back(std::move(op));
  }

  // Results: run the operations in the order of their points.
  std::vector<size_t> order(h.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return point[a] < point[b]; });
  std::map<std::string, std::optional<std::string>> state;
  std::map<std::string, std::vector<std::string>> written;
  int64_t counter = 0;
  for (size_t i : order) {
    Operation& op = h[i];
    std::optional<std::string>& s = state[op.key];
    std::vector<std::string>& seen = written[op.key];
    const bool completed = op.outcome != OpOutcome::kUnknown;
    switch (op.type) {
      case OpType::kRead:
        if (completed) op.value = s;
        break;
      case OpType::kWrite:
        op.value = absl::StrCat("v", counter++);
        if (takes_effect[i]) {
          s = op.value;
          seen.push_back(*op.value);
        }
        break;
      case OpType::kDelete:
        if (takes_effect[i]) s.reset();
        break;
      case OpType::kCas: {
        op.value = absl::StrCat("v", counter++);
        if (chance(0.5) || seen.empty()) {
          op.expected = s;
        } else if (chance(0.2)) {
          op.expected.reset();
        } else {
          op.expected = seen[static_cast<size_t>(
              uniform(0, static_cast<int64_t>(seen.size()) - 1))];
        }
        const bool match = op.expected == s;
        if (completed) op.outcome = match ? OpOutcome::kOk : OpOutcome::kFailed;
        if (match && takes_effect[i]) {
          s = op.value;
          seen.push_back(*op.value);
        }
        break;
      }
    }
  }
  return h;
}

std::optional<size_t> CorruptWithStaleRead(History* history, uint64_t seed) {
  History& h = *history;
  auto sets_state = [&](const Operation& o) {
    return o.outcome == OpOutcome::kOk &&
           (o.type == OpType::kWrite || o.type == OpType::kDelete ||
            o.type == OpType::kCas);
  };
  std::vector<size_t> reads;
  for (size_t i = 0; i < h.size(); ++i) {
    if (h[i].type == OpType::kRead && h[i].outcome == OpOutcome::kOk) {
      reads.push_back(i);
    }
  }
  std::mt19937_64 rng(seed);
  std::shuffle(reads.begin(), reads.end(), rng);
  for (size_t r : reads) {
    // w2: a completed state change finished before r; w: a completed write
    // of a value finished before w2 began.
    for (size_t w2 = 0; w2 < h.size(); ++w2) {
      if (h[w2].key != h[r].key || !sets_state(h[w2]) ||
          *h[w2].complete_ns >= h[r].invoke_ns) {
        continue;
      }
      for (size_t w = 0; w < h.size(); ++w) {
        if (h[w].key != h[r].key || !sets_state(h[w]) ||
            h[w].type == OpType::kDelete ||
            *h[w].complete_ns >= h[w2].invoke_ns ||
            h[w].value == h[w2].value || h[w].value == h[r].value) {
          continue;
        }
        h[r].value = h[w].value;
        return r;
      }
    }
  }
  return std::nullopt;
}

}  // namespace strata::testing
