#ifndef STRATA_SERVER_TYPED_OPS_H_
#define STRATA_SERVER_TYPED_OPS_H_

// Server-side operations on typed values (docs/values.md): Increment,
// JsonGet and JsonUpdate, shared by their RPCs (kv_service_typed.cc) and by
// the operations of a Txn. Each read-modify-write comes in two steps:
//
//   1. on the polling thread, before anything is written: check the request
//      (Validate* / Prepare*: INVALID_ARGUMENT, nothing written);
//   2. at commit time, inside a WriteBatch's CommitFunction, serialized with
//      every other write: read the key through the storage::CommitView and
//      compute what to write (*At), then append it to the batch:
//
//        batch->Put(stored_key, put.value, put.attributes);
//
// Step 2 never blocks on anything but the view's reads (the engine's commit
// thread may read from disk) and costs one point read plus the operation
// (parsing and serializing the document for JSON). Concurrent operations on
// one key are serialized by the engine's commit order, so none is lost;
// operations on different keys in one commit group share its fsync.
//
// A CommitView shows the state before the batch: two operations on the same
// key in one batch would both read the old state (the second one wins).
//
// Thread safety: all functions are pure or touch only their arguments.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/limits.h"
#include "server/typed_values.h"
#include "strata/storage/key_metadata.h"
#include "strata/storage/write_batch.h"
#include "strata/v1/kv.pb.h"

namespace strata::server {

// A key's current value and metadata, as a write sees it.
struct StoredValue {
  std::string value;
  storage::KeyMetadata metadata;
};

// What an operation writes: Put(stored_key, value, attributes).
struct TypedPut {
  std::string value;
  storage::PutAttributes attributes;
};

// Reads `stored_key` through the view: nullopt if absent (or expired);
// DataLoss/Unavailable from the lookup (the write then fails too).
absl::StatusOr<std::optional<StoredValue>> ReadForUpdate(
    storage::CommitView* view, std::string_view stored_key);

// The number an INT64 value holds, for a numeric compare.
// FailedPrecondition if the value is of another type; DataLoss if a stored
// INT64 does not parse (corruption: it was checked when written).
absl::StatusOr<int64_t> StoredInt64(std::string_view value,
                                    const storage::KeyMetadata& metadata);
inline absl::StatusOr<int64_t> StoredInt64(const StoredValue& stored) {
  return StoredInt64(stored.value, stored.metadata);
}

// ---- Increment -----------------------------------------------------------

// Step 1: InvalidArgument for a bad key (limits) or a negative ttl_ms. The
// namespace is resolved by the caller (ResolveNamespace, keyspace.h).
absl::Status ValidateIncrement(const v1::IncrementRequest& request,
                               const Limits& limits);

struct IncrementResult {
  int64_t value = 0;  // The value after the increment.
  TypedPut put;       // INT64 text of `value`.
};

// Step 2 on a given state (`current`: nullopt = missing), with the commit's
// wall clock (CommitView::now_unix_ms) for ttl_ms. A missing key counts
// from 0, or is NotFound with must_exist. FailedPrecondition if the key
// holds another type; OutOfRange if the sum overflows int64. The put keeps
// the key's lease and, unless ttl_ms > 0 sets a new one (now + ttl_ms),
// its expiry.
absl::StatusOr<IncrementResult> ComputeIncrement(
    const std::optional<StoredValue>& current,
    const v1::IncrementRequest& request, uint64_t now_unix_ms);

// Step 2 through a CommitView: ReadForUpdate + ComputeIncrement.
absl::StatusOr<IncrementResult> IncrementAt(
    storage::CommitView* view, std::string_view stored_key,
    const v1::IncrementRequest& request);

// ---- JsonGet -------------------------------------------------------------

// InvalidArgument for a bad key or a malformed pointer.
absl::Status ValidateJsonGet(const v1::JsonGetRequest& request,
                             const Limits& limits);

// The JSON text at request.pointer() of a key read as `current` (nullopt =
// missing): NotFound "key not found" for a missing key, NotFound "pointer
// ... does not resolve ..." for a pointer that does not; FailedPrecondition
// if the key holds another type; DataLoss for a stored document that does
// not parse.
absl::StatusOr<std::string> ComputeJsonGet(
    const std::optional<StoredValue>& current,
    const v1::JsonGetRequest& request);

// ---- JsonUpdate ----------------------------------------------------------

// Step 1: InvalidArgument for a bad key or patch (JsonUpdatePatch::Parse).
absl::StatusOr<JsonUpdatePatch> PrepareJsonUpdate(
    const v1::JsonUpdateRequest& request, const Limits& limits);

// Step 2 on a given state: the patched document (put.value), typed JSON,
// keeping the key's expiry and lease. NotFound for a missing key;
// FailedPrecondition if it holds another type or a JSON Patch does not
// apply; InvalidArgument if the result is above limits.max_value_bytes or
// too deep.
absl::StatusOr<TypedPut> ComputeJsonUpdate(
    const std::optional<StoredValue>& current, const JsonUpdatePatch& patch,
    const Limits& limits);

// Step 2 through a CommitView: ReadForUpdate + ComputeJsonUpdate.
absl::StatusOr<TypedPut> JsonUpdateAt(storage::CommitView* view,
                                      std::string_view stored_key,
                                      const JsonUpdatePatch& patch,
                                      const Limits& limits);

}  // namespace strata::server

#endif  // STRATA_SERVER_TYPED_OPS_H_
