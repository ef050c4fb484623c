#ifndef STRATA_CLIENT_TRANSACTION_H_
#define STRATA_CLIENT_TRANSACTION_H_

// strata::Transaction: an optimistic read-write transaction over
// strata::Client (docs/transactions.md), FoundationDB's model:
//
//   - the first read pins a revision (the latest one then); every read is
//     made at it, so the transaction sees one snapshot;
//   - writes are buffered in the transaction, and its reads see them;
//   - Commit sends the buffered writes with what was read (keys and
//     ranges); the server applies them at a new revision only if nothing
//     read changed since the pinned revision, else ABORTED.
//
// Committed read-write transactions are serializable; a transaction that
// only reads is a snapshot read and never calls the server to commit.
// Client::RunTransaction retries ABORTED transactions with backoff.
//
//   absl::StatusOr<strata::Revision> r = client.RunTransaction(
//       [](strata::Transaction& tx) -> absl::Status {
//         absl::StatusOr<std::optional<std::string>> n = tx.Get("counter");
//         if (!n.ok()) return n.status();
//         tx.Put("counter", std::to_string(std::stoi(n->value_or("0")) + 1));
//         return absl::OkStatus();
//       });
//
// Thread safety: a Transaction is for one thread at a time.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/strata_client.h"

namespace strata {

// How Client::RunTransaction retries.
struct TransactionOptions {
  // Attempts in all (the first one included); then ABORTED. >= 1.
  int max_attempts = 10;
  // Backoff before attempt n + 1: min(max_backoff, initial_backoff *
  // 2^(n-1)), times a random factor in [0.5, 1) (jitter, so clients that
  // conflicted do not collide again in step).
  absl::Duration initial_backoff = absl::Milliseconds(10);
  absl::Duration max_backoff = absl::Seconds(1);
  // Called before each retry with the attempt that failed (1-based) and
  // its ABORTED status; may be empty. For logging and tests.
  std::function<void(int attempt, const absl::Status& aborted)> on_retry;
};

class Transaction {
 public:
  // `client` must outlive the transaction. `attempt`: see attempt().
  explicit Transaction(Client* client, int attempt = 1);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // The value of key in the transaction's snapshot (with its own writes
  // applied), or std::nullopt. The first read pins the snapshot. Errors:
  // as Client::GetWithMetadata (OUT_OF_RANGE once the pinned revision is
  // compacted).
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key);

  // The pairs with start <= key < end (end empty: no upper bound), in key
  // order, at most `limit` (0 = all), in the snapshot with the
  // transaction's own writes applied. The range is recorded as read (up
  // to the last pair returned when the limit cut it short), so a key
  // created, changed or deleted in it by another writer aborts the commit.
  absl::StatusOr<std::vector<KeyValue>> Scan(std::string_view start,
                                             std::string_view end,
                                             uint32_t limit = 0);

  // Buffers a write (later writes of the same key win); nothing is sent
  // before Commit.
  void Put(std::string_view key, std::string_view value);
  void Delete(std::string_view key);

  // Commits: for a transaction that wrote something, a Commit RPC with the
  // read set; returns the revision it committed at. ABORTED if something
  // it read changed (nothing written: run it again from the start);
  // FAILED_PRECONDITION if its snapshot is too old. A transaction that
  // only read returns its snapshot's revision without calling the server
  // (its reads were consistent by construction). Once only.
  absl::StatusOr<Revision> Commit();

  // The pinned revision; 0 before the first read.
  Revision read_revision() const { return read_revision_; }
  // 1 for the first attempt of RunTransaction, 2 for its first retry...
  int attempt() const { return attempt_; }
  // The keys and ranges read so far (what Commit sends).
  const std::vector<std::string>& read_keys() const { return read_keys_; }
  const std::vector<KeyRange>& read_ranges() const { return read_ranges_; }

 private:
  // Reads at the pinned revision (pinning it on the first read).
  absl::StatusOr<GetResult> GetAt(std::string_view key);

  Client* const client_;
  const int attempt_;
  bool pinned_ = false;
  Revision read_revision_ = 0;
  std::vector<std::string> read_keys_;
  std::vector<KeyRange> read_ranges_;
  // Buffered writes by key (nullopt: delete).
  std::map<std::string, std::optional<std::string>, std::less<>> writes_;
  bool committed_ = false;
};

}  // namespace strata

#endif  // STRATA_CLIENT_TRANSACTION_H_
