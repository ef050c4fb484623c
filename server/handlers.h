#ifndef STRATA_SERVER_HANDLERS_H_
#define STRATA_SERVER_HANDLERS_H_

// The request logic of the KV service as plain functions: validation against
// the limits, request -> WriteBatch conversion, Get result conversion and the
// Scan batching loop. No gRPC types here, so every rule is unit-tested
// without a server (tests/server/handlers_test.cc). kv_service.cc wires
// these into the asynchronous calls. The limits themselves are in limits.h.
//
// Thread safety: every function is pure (or touches only its arguments) and
// may be called from any thread.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/keyspace.h"
#include "server/limits.h"
#include "strata/storage/db.h"
#include "strata/storage/iterator.h"
#include "strata/storage/write_batch.h"
#include "strata/v1/kv.pb.h"

namespace strata::server {

// InvalidArgument if key is empty or longer than limits.max_key_bytes.
absl::Status ValidateKey(std::string_view key, const Limits& limits);
// InvalidArgument if value is longer than limits.max_value_bytes.
absl::Status ValidateValue(std::string_view value, const Limits& limits);

// Get: InvalidArgument for a bad key or a negative revision.
absl::Status ValidateGet(const v1::GetRequest& request, const Limits& limits);

// Revisions on the wire are int64 (as etcd's); the engine's are uint64.
inline int64_t ToWire(storage::Revision r) { return static_cast<int64_t>(r); }

// Copies a key's metadata (create/mod revision, version, value type) into
// a reply message that has those fields (GetResponse, KeyValue).
template <class Msg>
void FillMetadata(const storage::KeyMetadata& m, Msg* msg) {
  msg->set_create_revision(ToWire(m.create_revision));
  msg->set_mod_revision(ToWire(m.mod_revision));
  msg->set_version(static_cast<int64_t>(m.version));
  msg->set_type(static_cast<v1::ValueType>(m.attributes.value_type));
}

// Turns the engine's answer to a Get into the reply, filling *response in
// place (reusing its buffers; the value is moved, not copied): header
// revision = the revision read; found, value and metadata when the key
// exists. An error is returned unchanged and *response is left cleared.
// Returns the status the RPC ends with.
absl::Status FillGetResponse(absl::StatusOr<storage::GetResult> result,
                             v1::GetResponse* response);

// InvalidArgument if a request's revision is negative (`what` names the
// field).
absl::Status ValidateRevision(int64_t revision, std::string_view what);
// BatchGet: 1..limits.max_batch_mutations valid keys, revision >= 0.
absl::Status ValidateBatchGet(const v1::BatchGetRequest& request,
                              const Limits& limits);
// DeleteRange: bounds no longer than limits.max_key_bytes (either may be
// empty: unbounded).
absl::Status ValidateDeleteRange(const v1::DeleteRangeRequest& request,
                                 const Limits& limits);

// Put/Delete/Write -> the batch to hand to DB::WriteAsync. InvalidArgument
// (naming the limit, and for Write the index of the offending mutation)
// if any limit is violated, a mutation has no operation or a typed value is
// not of its type (typed_values.h; a JSON value is stored normalized); the
// batch is then not returned, so nothing is written. Later mutations of the same key
// win (the engine applies a batch in order).
// Keys are stored as `ns` lays them out (keyspace.h); a Write's mutation in
// ns.For(its own namespace): its own if it names one, else the request's.
absl::StatusOr<storage::WriteBatch> PutToBatch(
    const v1::PutRequest& request, const Limits& limits,
    const KeyspaceView& ns = KeyspaceView());

// The namespace each mutation names ("" = the request's), in order, for
// NamespaceCatalog::ResolveAll; views into `mutations`.
std::vector<std::string_view> MutationNamespaces(
    const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations);
// Whether any mutation is a put (a write of deletes only frees space and is
// never refused by the write gate).
bool HasPut(const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations);
absl::StatusOr<storage::WriteBatch> DeleteToBatch(
    const v1::DeleteRequest& request, const Limits& limits,
    const KeyspaceView& ns = KeyspaceView());
absl::StatusOr<storage::WriteBatch> WriteToBatch(
    const v1::WriteRequest& request, const Limits& limits,
    const NamespaceViews& ns = {});

// Scan: start_key and end_key may be empty (unbounded); an end_key at or
// below start_key gives an empty result. InvalidArgument for a negative
// revision.
absl::Status ValidateScan(const v1::ScanRequest& request,
                          const Limits& limits);

// Target bytes of keys plus values per ScanResponse message.
inline constexpr size_t kScanBatchBytes = 1u << 20;

// Progress of one Scan across successive FillScanResponse calls.
struct ScanCursor {
  bool started = false;    // The iterator has been positioned.
  bool done = false;       // Nothing more to send (end, limit or error).
  uint64_t returned = 0;   // Pairs put into responses so far.
  uint64_t bytes = 0;      // Key + value bytes put into responses so far.
};

// Fills *response (which should be empty) with the next pairs of the scan
// described by `request`, reading `it` (an iterator over the scan's
// snapshot, owned by the caller). Adds pairs while their key+value bytes
// stay within batch_bytes and their count within batch_pairs; a single
// pair larger than batch_bytes travels alone. Honours [start_key, end_key)
// (empty end_key = unbounded; user keys: `it` is a namespace's iterator,
// KeyspaceView::NewIterator), reverse (descending order from the last key
// below end_key), limit (0 = none) and keys_only, and fills each pair's
// metadata from it->metadata(); the header is the caller's. Sets
// cursor->done when the scan is complete. Returns the iterator's error
// (e.g. DataLoss) if it failed; the pairs already added are still valid and
// cursor->done is set. REQUIRES: batch_pairs >= 1.
absl::Status FillScanResponse(
    storage::Iterator* it, const v1::ScanRequest& request, size_t batch_bytes,
    ScanCursor* cursor, v1::ScanResponse* response,
    size_t batch_pairs = std::numeric_limits<size_t>::max());

}  // namespace strata::server

#endif  // STRATA_SERVER_HANDLERS_H_
