#ifndef STRATA_SERVER_EXPIRY_H_
#define STRATA_SERVER_EXPIRY_H_

// Per-key TTLs and leases (docs/expiry.md): what is stored, the commit
// functions that keep it consistent, and the background expirer.
//
// Stored (server metadata, keyspace.h SystemKey), always in the same batch
// as the user keys it concerns, so it is exactly as durable as they are:
//   "lease/" be64(id)                 -> lease record (EncodeLeaseRecord)
//   "leasekey/" be64(id) stored_key   -> ""   (key attached to lease id)
//   "ttl/" be64(deadline_ms) stored_key -> "" (key put with that deadline)
// The user key itself carries its deadline and lease in its PutAttributes,
// and that is what reads judge (the engine hides a key past its own
// deadline, or its lease's through the LeaseTable). The two indexes only
// let the expirer find due keys without scanning data and a lease's keys
// without scanning; an entry left behind by an overwrite or delete is
// stale, and whoever reads it re-checks the key itself before acting.
//
// Every change to a lease (grant, keep-alive, revoke, expiry) is a commit
// function that reads the LeaseTable, writes the lease record, and updates
// the table, serialized with every other write: the table and the records
// agree at every revision.
//
// Thread safety: Expiry is thread-safe. Commit functions it returns run on
// the engine's commit thread; RunOnce and the expirer thread block on
// DB::Write.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/keyspace.h"
#include "server/lease_table.h"
#include "server/limits.h"
#include "server/rpc_observer.h"
#include "strata/storage/db.h"
#include "strata/storage/env.h"
#include "strata/storage/write_batch.h"
#include "strata/v1/kv.pb.h"

namespace strata::server {

// Limits and settings of expiry (flags in main.cc).
struct ExpiryOptions {
  // Longest TTL, of a key (PutRequest.ttl_ms) or a lease, in seconds
  // (--max_ttl). Longer: INVALID_ARGUMENT.
  int64_t max_ttl_seconds = 365LL * 24 * 3600;
  // Most live leases (--max_leases). A grant beyond: RESOURCE_EXHAUSTED.
  int64_t max_leases = 100000;
  // Most keys attached to one lease (--max_keys_per_lease); they are all
  // deleted in one batch, so this bounds that batch. Beyond:
  // RESOURCE_EXHAUSTED and nothing written.
  int64_t max_keys_per_lease = 10000;
  // How often the expirer looks for due keys and leases when none is due
  // sooner (--expiry_interval).
  absl::Duration interval = absl::Milliseconds(100);
  // Most TTL keys the expirer deletes in one revision (one round may
  // commit several such revisions, up to 16).
  int64_t keys_per_revision = 1000;
  // The clock deadlines are judged by: the DB's Env (Options::env).
  // nullptr = storage::Env::Default().
  storage::Env* env = nullptr;
  // The lease table the DB was opened with (Options::lease_deadlines).
  // nullptr: the server makes its own, and a key whose lease has expired
  // stays readable until the expirer deletes it (tests of other things).
  std::shared_ptr<LeaseTable> leases;
  // Start the background expirer thread. Tests that drive expiry by hand
  // (Expiry::RunOnce) may turn it off.
  bool background = true;
};

// InvalidArgument unless the options are usable.
absl::Status ValidateExpiryOptions(const ExpiryOptions& options);

// Stored keys of the metadata above.
std::string LeaseRecordKey(int64_t id);
std::string LeaseKeyIndexPrefix(int64_t id);
std::string TtlIndexPrefix();
std::string TtlIndexKey(uint64_t deadline_ms, std::string_view stored_key);

// A lease record: version byte 1, be64 ttl_seconds, be64 deadline_ms.
std::string EncodeLeaseRecord(int64_t ttl_seconds, uint64_t deadline_ms);
// DataLoss if `value` is not a lease record.
absl::Status DecodeLeaseRecord(std::string_view value, int64_t* ttl_seconds,
                               uint64_t* deadline_ms);

// What one expirer round did (RunOnce).
struct ExpiryRound {
  int64_t ttl_keys_deleted = 0;   // Keys deleted because of their own TTL.
  int64_t leases_expired = 0;
  int64_t lease_keys_deleted = 0;
};

class Expiry {
 public:
  // `db` must outlive this object; `observer` may be nullptr.
  Expiry(storage::DB* db, const Limits& limits, ExpiryOptions options,
         RpcObserver* observer);
  // Stops the expirer thread.
  ~Expiry();
  Expiry(const Expiry&) = delete;
  Expiry& operator=(const Expiry&) = delete;

  // Rebuilds the lease table from the lease records, gives every lease
  // still live its full TTL again from now (durably, one revision), and
  // starts the expirer thread. DataLoss for a corrupt record; the engine's
  // errors. REQUIRES: called once, before any RPC.
  absl::Status Start();
  // Stops the expirer thread (idempotent).
  void Stop();

  const ExpiryOptions& options() const { return options_; }
  LeaseTable* leases() const { return leases_.get(); }
  // Now by the clock deadlines are judged by.
  uint64_t NowUnixMs() const { return env_->NowUnixMillis(); }

  // Checks a Put's expiry fields: ttl_ms in 0..max TTL, lease >= 0.
  // InvalidArgument (prefixed with `where`) otherwise.
  absl::Status ValidatePut(const v1::PutRequest& put,
                           std::string_view where = "") const;
  // The same check for a TTL on another write (Increment's ttl_ms).
  absl::Status ValidateTtl(int64_t ttl_ms, std::string_view where = "") const;

  // For a commit function that puts stored_key with a deadline of its own
  // (Increment with ttl_ms): appends the TTL index entry, so the expirer
  // writes the key's DELETE revision when the deadline passes.
  void AppendTtlIndex(storage::WriteBatch* batch, std::string_view stored_key,
                      uint64_t deadline_unix_ms);

  // For a commit function: appends the put of stored_key = value of
  // value_type (a v1::ValueType, already checked: a JSON value is stored
  // normalized, docs/values.md) expiring ttl_ms after the commit (0 = no
  // TTL) and attached to `lease` (0 = none), with its index entries.
  // NotFound if the lease is not live (nothing may then be written: return
  // the error from the commit function); ResourceExhausted if it holds
  // --max_keys_per_lease keys; InvalidArgument if the value is not of its
  // type.
  absl::Status AppendPut(storage::CommitView* view, storage::WriteBatch* batch,
                         std::string_view stored_key, std::string_view value,
                         int value_type, int64_t ttl_ms, int64_t lease);

  // The batch for a Put / Write that has a TTL or a lease (else the plain
  // handlers' batch is used): every mutation is applied in order by a
  // commit function. `request` must outlive the write. Keys are stored in
  // `ns` (for a Write, each mutation in ns.For(its namespace)).
  absl::StatusOr<storage::WriteBatch> PutBatch(
      const v1::PutRequest& request, const KeyspaceView& ns = KeyspaceView());
  absl::StatusOr<storage::WriteBatch> WriteBatchFor(
      const v1::WriteRequest& request, const NamespaceViews& ns = {});

  // Lease RPCs as commit functions; each fills its response (which must
  // outlive the write) on success. See kv.proto for the contract.
  absl::StatusOr<storage::WriteBatch> GrantBatch(
      const v1::LeaseGrantRequest& request, v1::LeaseGrantResponse* response);
  absl::StatusOr<storage::WriteBatch> RevokeBatch(int64_t id);
  absl::StatusOr<storage::WriteBatch> KeepAliveBatch(
      int64_t id, v1::LeaseKeepAliveResponse* response);
  // Reads a lease's TTL and (with request.keys) keys; blocks (disk).
  absl::Status TimeToLive(const v1::LeaseTimeToLiveRequest& request,
                          v1::LeaseTimeToLiveResponse* response);
  // Live leases (deadline not passed), ascending.
  void Leases(v1::LeaseLeasesResponse* response);

  // One expirer round, synchronously: every lease past its deadline is
  // ended (its keys deleted at one revision per lease), and keys past
  // their TTL are deleted (up to 16 revisions of keys_per_revision keys).
  // Blocks on DB::Write.
  absl::StatusOr<ExpiryRound> RunOnce();

  // Wakes the expirer thread (after a write with a near deadline).
  void Wake();

 private:
  // The commit function that ends lease `id` (revoke, or expiry when
  // `only_if_due`): deletes every key still attached to it, its index
  // entries and its record. NotFound if it is not in the table.
  storage::CommitFunction EndLeaseFunction(int64_t id, bool only_if_due,
                                           int64_t* deleted);
  // Drops `lease`'s index entries whose key is no longer attached to it;
  // returns how many remain.
  absl::StatusOr<int64_t> PruneLeaseIndex(storage::CommitView* view,
                                          storage::WriteBatch* batch,
                                          int64_t lease);
  absl::Status ExtendLeasesAtStart();
  absl::StatusOr<int64_t> ExpireTtlKeys();
  void Loop();
  void ReportGauges();

  storage::DB* const db_;
  const Limits limits_;
  const ExpiryOptions options_;
  RpcObserver* const observer_;
  storage::Env* const env_;
  const std::shared_ptr<LeaseTable> leases_;
  // Index entries of TTL puts not yet processed (the strata_ttl_keys
  // gauge).
  std::atomic<int64_t> ttl_keys_{0};

  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;      // Guarded by mu_.
  bool woken_ = false;     // Guarded by mu_.
  std::thread thread_;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_EXPIRY_H_
