#include "client/transaction.h"

#include <algorithm>
#include <limits>
#include <random>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace strata {
namespace {

// A uniform factor in [0.5, 1) for backoff jitter.
double Jitter() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return std::uniform_real_distribution<double>(0.5, 1.0)(rng);
}

}  // namespace

Transaction::Transaction(Client* client, int attempt)
    : client_(client), attempt_(attempt) {}

absl::StatusOr<GetResult> Transaction::GetAt(std::string_view key) {
  // Pinned at revision 0 (the store was empty): nothing exists at it, and
  // asking the server for revision 0 would mean "the latest".
  if (pinned_ && read_revision_ == 0) return GetResult();
  absl::StatusOr<GetResult> r =
      client_->GetWithMetadata(key, pinned_ ? read_revision_ : 0);
  if (r.ok() && !pinned_) {
    pinned_ = true;
    read_revision_ = r->revision;
  }
  return r;
}

absl::StatusOr<std::optional<std::string>> Transaction::Get(
    std::string_view key) {
  // The transaction's own write: no read of the database, nothing to
  // conflict with.
  if (auto w = writes_.find(key); w != writes_.end()) return w->second;
  absl::StatusOr<GetResult> r = GetAt(key);
  if (!r.ok()) return r.status();
  if (std::find(read_keys_.begin(), read_keys_.end(), key) ==
      read_keys_.end()) {
    read_keys_.emplace_back(key);
  }
  if (!r->kv.has_value()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(r->kv->value));
}

absl::StatusOr<std::vector<KeyValue>> Transaction::Scan(std::string_view start,
                                                        std::string_view end,
                                                        uint32_t limit) {
  std::vector<KeyValue> out;
  if (!end.empty() && end <= start) return out;
  const auto first = writes_.lower_bound(start);
  const auto last = end.empty() ? writes_.end() : writes_.lower_bound(end);
  // Buffered deletes may hide pairs the server returns: ask for as many
  // more, so a limited scan still fills its limit.
  uint64_t deletes = 0;
  for (auto w = first; w != last; ++w) deletes += !w->second.has_value();
  ScanOptions options;
  options.start = std::string(start);
  options.end = std::string(end);
  options.limit =
      limit == 0 ? 0
                 : static_cast<uint32_t>(std::min<uint64_t>(
                       limit + deletes, std::numeric_limits<uint32_t>::max()));
  options.revision = pinned_ ? read_revision_ : 0;
  std::vector<KeyValue> base;
  // Pinned at revision 0 (an empty store): the server has nothing to add.
  absl::StatusOr<Revision> read_at = Revision{0};
  if (!pinned_ || read_revision_ != 0) {
    read_at = client_->Scan(options, [&base](const KeyValue& kv) {
      base.push_back(kv);
      return true;
    });
  }
  if (!read_at.ok()) return read_at.status();
  if (!pinned_) {
    pinned_ = true;
    read_revision_ = *read_at;
  }
  // Merge the server's pairs with the buffered writes, which win. When the
  // server's answer was cut by the limit, the merge reaches the limit at or
  // before its last pair (at most `deletes` of them are hidden).
  auto w = first;
  size_t i = 0;
  auto full = [&] { return limit != 0 && out.size() >= limit; };
  while (!full() && (i < base.size() || w != last)) {
    const int order = i == base.size() ? 1
                      : w == last      ? -1
                                       : base[i].key.compare(w->first);
    if (order < 0) {
      out.push_back(std::move(base[i++]));
      continue;
    }
    if (order == 0) i++;
    if (w->second.has_value()) {
      KeyValue kv;
      kv.key = w->first;
      kv.value = *w->second;
      out.push_back(std::move(kv));  // Not committed: no revisions yet.
    }
    ++w;
  }
  // What the result depends on: the whole range, or up to the last pair
  // returned when the limit cut it.
  KeyRange range{std::string(start), std::string(end)};
  if (full() && !out.empty()) range.end = out.back().key + std::string(1, '\0');
  read_ranges_.push_back(std::move(range));
  return out;
}

void Transaction::Put(std::string_view key, std::string_view value) {
  writes_.insert_or_assign(std::string(key), std::string(value));
}

void Transaction::Delete(std::string_view key) {
  writes_.insert_or_assign(std::string(key), std::nullopt);
}

absl::StatusOr<Revision> Transaction::Commit() {
  if (committed_) {
    return absl::FailedPreconditionError("transaction already committed");
  }
  committed_ = true;
  // Only reads: they were all made at one revision, which is a consistent
  // snapshot by itself.
  if (writes_.empty()) return read_revision_;
  std::vector<Mutation> mutations;
  mutations.reserve(writes_.size());
  for (const auto& [key, value] : writes_) {
    mutations.push_back(value.has_value() ? Mutation::Put(key, *value)
                                          : Mutation::Delete(key));
  }
  return client_->Commit(read_revision_, read_keys_, read_ranges_, mutations);
}

std::unique_ptr<Transaction> Client::BeginTransaction() {
  return std::make_unique<Transaction>(this);
}

absl::StatusOr<Revision> Client::RunTransaction(TransactionFn fn) {
  return RunTransaction(fn, TransactionOptions());
}

absl::StatusOr<Revision> Client::RunTransaction(
    TransactionFn fn, const TransactionOptions& options) {
  const int attempts = std::max(1, options.max_attempts);
  absl::Duration backoff = options.initial_backoff;
  absl::Status aborted;
  for (int attempt = 1; attempt <= attempts; attempt++) {
    Transaction tx(this, attempt);
    if (absl::Status s = fn(tx); !s.ok()) return s;
    absl::StatusOr<Revision> r = tx.Commit();
    if (r.ok() || !absl::IsAborted(r.status())) return r;
    aborted = r.status();
    if (attempt == attempts) break;
    if (options.on_retry) options.on_retry(attempt, aborted);
    absl::SleepFor(backoff * Jitter());
    backoff = std::min(backoff * 2, options.max_backoff);
  }
  return absl::AbortedError(
      absl::StrFormat("transaction gave up after %d attempts; the last: %s",
                      attempts, std::string(aborted.message())));
}

}  // namespace strata
