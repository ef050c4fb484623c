#ifndef STRATA_SERVER_TXN_H_
#define STRATA_SERVER_TXN_H_

// The request logic of the two transaction RPCs of strata.v1.KV
// (docs/transactions.md) as plain functions, without gRPC types, so every
// rule is unit-tested on a real DB without a server
// (tests/server/txn_test.cc). txn_service.cc wires them into the calls.
//
//   Txn     compare -> then/else in one round trip (etcd's KV.Txn). The
//           poller validates the request and encodes both branches' writes
//           (PrepareTxn); at commit time, on the engine's commit thread,
//           ExecuteTxn evaluates the compares on the CommitView, runs the
//           chosen branch's reads (seeing the branch's own earlier writes)
//           and appends its writes to the batch: everything at one
//           revision, serialized with every other write.
//   Commit  an optimistic read-write transaction (FoundationDB's model).
//           The poller validates it and encodes its mutations
//           (PrepareCommit); at commit time CheckCommitConflicts refuses it
//           (ABORTED) if anything it read changed after its read revision.
//           Point reads are checked against the engine's window of recent
//           writes, and against each key's last change for reads older
//           than the window; range reads against the window only
//           (storage::CommitView::LastChangeInRange): no check scans data.
//
// Thread safety: every function is pure or touches only its arguments;
// the commit-time ones run inside a storage::CommitFunction (they read
// only through the CommitView they are given).

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/keyspace.h"
#include "server/limits.h"
#include "server/typed_values.h"
#include "strata/storage/write_batch.h"
#include "strata/v1/kv.pb.h"

namespace strata::server {

// A validated Txn with each branch's writes already encoded, ready to be
// run at commit time by ExecuteTxn.
struct PreparedTxn {
  // The branches' puts and deletes (typed operations write at commit time).
  storage::WriteBatch success_writes;
  storage::WriteBatch failure_writes;
  // The parsed patch of each json_update op, by its index in the branch.
  std::map<int, JsonUpdatePatch> success_patches;
  std::map<int, JsonUpdatePatch> failure_patches;
};

// The namespace a Txn op names ("" = the request's), and every namespace a
// Txn's compares and ops name, in order, for NamespaceCatalog::ResolveAll
// (views into `request`).
std::string_view OpNamespace(const v1::RequestOp& op);
std::vector<std::string_view> TxnNamespaces(const v1::TxnRequest& request);

// Validates a Txn against the limits and encodes its branches' puts and
// deletes (stored keys; each op's namespace is ns.For(its namespace), the
// request's for an op that names none, docs/namespaces.md). InvalidArgument, naming the part
// ("compare 2: ", "success op 5: ", "failure op 0: ") and the limit, for:
// more than limits.max_batch_mutations compares, success ops or failure
// ops; a bad key, range bound or value; an op or compare with nothing set;
// a compare whose constant is in a field of another target; a Get or Scan
// with a revision (reads in a Txn are at its revision); a branch that
// writes the same key twice (puts, deletes, increments and JSON updates
// all write); an increment with ttl_ms; a malformed JSON pointer or patch.
absl::StatusOr<PreparedTxn> PrepareTxn(const v1::TxnRequest& request,
                                       const Limits& limits,
                                       const NamespaceViews& ns = {});

// Runs a prepared Txn on `view` (inside a CommitFunction): evaluates the
// compares, fills *response (succeeded, one ResponseOp per op of the
// chosen branch; the header is the caller's, from the commit's revision)
// and appends the chosen branch's writes to *batch. Reads see the state
// the Txn commits on top of plus the branch's earlier writes.
// Errors (nothing is written; *response is cleared):
//   the error of a typed op, prefixed "success op N: " (typed_ops.h:
//                       NotFound, FailedPrecondition, OutOfRange,
//                       InvalidArgument); FailedPrecondition for an
//                       INT64_VALUE compare on a key of another type.
//   FailedPrecondition  the range compares examined more than
//                       limits.max_batch_mutations keys, or the response
//                       would exceed limits.max_message_bytes.
//   DataLoss, Unavailable  a read failed.
absl::Status ExecuteTxn(const v1::TxnRequest& request,
                        const PreparedTxn& prepared, const Limits& limits,
                        const NamespaceViews& ns, storage::CommitView* view,
                        storage::WriteBatch* batch, v1::TxnResponse* response);

// Validates a Commit and encodes its mutations (later ones of the same key
// win, as in Write; each in ns.For(its namespace)). The reads are checked
// in ns.fallback(), the request's namespace. InvalidArgument, naming the limit or the offending
// entry ("read key 3: ", "read range 0: ", "mutation 7: "), for: a
// negative read_revision; more than limits.max_batch_mutations read keys,
// read ranges or mutations; a bad key, bound or value; a mutation with no
// operation.
absl::StatusOr<storage::WriteBatch> PrepareCommit(
    const v1::CommitRequest& request, const Limits& limits,
    const NamespaceViews& ns = {});

// The conflict check of a Commit, inside its CommitFunction. OK if nothing
// the transaction read changed after request.read_revision (or it read
// nothing; read_revision 0 with reads means they saw the empty database);
// otherwise:
//   Aborted             a read key, or a key in a read range (created,
//                       changed or deleted: no phantoms), changed after
//                       read_revision; the message names the first such
//                       key (read keys in request order, then each range's
//                       smallest changed key) and the revision.
//   FailedPrecondition  read_revision is below the compacted revision
//                       ("transaction too old"; at it, every later change
//                       is still known, so it is checked), or a range read
//                       is older than the window of recent writes
//                       (--txn_conflict_window_keys: "too old for range
//                       reads").
//   InvalidArgument     read_revision is above the current revision.
//   DataLoss, Unavailable  a lookup failed.
absl::Status CheckCommitConflicts(const v1::CommitRequest& request,
                                  const NamespaceViews& ns,
                                  storage::CommitView* view);

// The stored-key ranges that hold exactly the keys of user range
// [start, end) of `ns` (end empty = no upper bound): one range, or two for
// the default namespace when the range spans the reserved area between
// ordinary keys and escaped "\xff\xff..." keys (keyspace.h). An empty
// stored end means no upper bound. Empty when the range is empty.
std::vector<std::pair<std::string, std::string>> StoredRanges(
    const KeyspaceView& ns, std::string_view start, std::string_view end);

}  // namespace strata::server

#endif  // STRATA_SERVER_TXN_H_
