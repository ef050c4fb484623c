#ifndef STRATA_CLIENT_STRATA_CLIENT_H_
#define STRATA_CLIENT_STRATA_CLIENT_H_

// strata::Client: a C++ client of one Strata storage node (strata.v1.KV over
// gRPC). The `strata` CLI is built on it.
//
// Revisions (docs/revisions.md): every committed write gets the next
// revision, shared by all the changes of that write. Writes return the
// revision they committed at; reads can be made at a past revision (back to
// the compacted revision) and report the revision they read at; Watch
// streams every change after a revision.
//
// Errors: every method returns absl::Status / absl::StatusOr whose code and
// message are the gRPC status the server (or the transport) returned:
//   INVALID_ARGUMENT    a request broke a server limit (empty or too long
//                       key, too large value, too many mutations, request
//                       too large, negative revision); nothing was written.
//   OUT_OF_RANGE        a read at a revision below the compacted revision or
//                       above the current one; a Compact not above the
//                       compacted revision; a Watch whose changes were
//                       compacted. The message names the bounds.
//   UNAVAILABLE         the server is not reachable (not running, wrong
//                       address) or is shutting down.
//   DEADLINE_EXCEEDED   the RPC took longer than ClientOptions::timeout.
//   RESOURCE_EXHAUSTED  a message above gRPC's size limits, or the server's
//                       in-flight cap was hit.
//   FAILED_PRECONDITION a DeleteRange with prev_kv over
//                       --max_batch_mutations keys (nothing deleted); an
//                       Increment or JSON call on a key of another type; a
//                       JSON Patch that does not apply (nothing written).
//   NOT_FOUND           Increment with must_exist, JsonGet and JsonUpdate
//                       of a missing key (or a JSON Pointer that does not
//                       resolve: the message says which).
//   DATA_LOSS, INTERNAL ... passed through from the engine.
// No exceptions are thrown.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpc {
class Channel;
class ClientContext;
class Status;
}  // namespace grpc

namespace strata {

// Converts a gRPC status to the absl::Status with the same code and
// message. The one place the client converts.
absl::Status FromGrpcStatus(const grpc::Status& status);

// TLS for the channel (docs/security.md). Contents, not file names: see
// LoadClientTlsFiles.
struct ClientTlsOptions {
  // PEM certificates of the CAs that may sign the server's certificate.
  // Empty = gRPC's default roots: the file named by
  // $GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, else the bundle shipped with gRPC
  // (/usr/share/grpc/roots.pem on Debian).
  std::string root_certs_pem;
  // For mutual TLS: this client's PEM certificate chain and unencrypted
  // private key. Both or neither.
  std::string cert_chain_pem;
  std::string private_key_pem;
  // The name the server certificate must carry (a DNS or IP
  // subjectAltName), instead of the host part of the target; e.g.
  // "localhost" when dialing 127.0.0.1 through a port-forward. Empty = the
  // target's host.
  std::string server_name;
};

// Reads PEM files into ClientTlsOptions; an empty path leaves its field
// empty. InvalidArgument naming the flag (--tls_ca, --tls_cert, --tls_key)
// and the file if a file cannot be read or holds no PEM block, or if only
// one of cert_file and key_file is given. Thread-safe.
absl::StatusOr<ClientTlsOptions> LoadClientTlsFiles(
    const std::string& ca_file, const std::string& cert_file,
    const std::string& key_file, const std::string& server_name = "");

struct ClientOptions {
  // Deadline of each RPC, measured from its start. For Scan it covers the
  // whole stream; Watch streams have none. Must be positive.
  absl::Duration timeout = absl::Seconds(10);
  // Transport security: std::nullopt = plaintext; otherwise TLS. Only the
  // channel-credentials function in strata_client.cc reads it. A server
  // that refuses the handshake (plaintext server, untrusted certificate,
  // wrong name, missing or rejected client certificate) makes every RPC
  // fail with UNAVAILABLE.
  std::optional<ClientTlsOptions> tls;
  // The namespace of every call that names keys (docs/namespaces.md); "" =
  // the default namespace. A namespace that does not exist: NOT_FOUND.
  std::string ns;
};

// One namespace (Client::ListNamespaces). Quotas: 0 = unlimited.
struct NamespaceInfo {
  std::string name;
  uint64_t quota_bytes = 0;  // Bytes of user keys plus values.
  uint64_t quota_keys = 0;   // Keys.
  // What the namespace holds, from its usage record as of the reply's
  // revision (exact for writes; a key whose TTL or lease ended counts until
  // the expirer deletes it, docs/namespaces.md): keys, and bytes of user
  // keys plus values.
  uint64_t approximate_keys = 0;
  uint64_t approximate_bytes = 0;
};

// A revision: the number of a committed write (1, 2, ...). 0 in a request
// means "the latest"; 0 in a result means "none" (e.g. no metadata).
using Revision = int64_t;

// The type of a value (docs/values.md): the server checks a typed value when
// it is written (INVALID_ARGUMENT otherwise) and returns the type with it.
// The numbers are strata.v1.ValueType's.
enum class ValueType {
  kBytes = 0,  // Opaque bytes: the default.
  kText = 1,   // UTF-8 text.
  kInt64 = 2,  // Decimal text of a signed 64-bit integer ("-42").
  kJson = 3,   // A JSON text, stored normalized.
};
// "bytes", "text", "int64", "json" (or "type N" for an unknown number).
std::string ValueTypeName(ValueType type);
// The inverse of ValueTypeName (case-insensitive); InvalidArgument listing
// the names otherwise.
absl::StatusOr<ValueType> ParseValueType(std::string_view name);

// A key with its value and metadata (etcd's mvccpb.KeyValue).
struct KeyValue {
  std::string key;
  // Empty for a keys_only scan, and in a DELETE watch event.
  std::string value;
  // The revision of the Put that created the key (since its last delete).
  Revision create_revision = 0;
  // The revision of its latest Put (in a DELETE watch event: of the
  // deletion).
  Revision mod_revision = 0;
  // Puts since it was created: 1 for a new key (0 in a DELETE event).
  int64_t version = 0;
  // The value's type (kBytes in a DELETE event).
  ValueType type = ValueType::kBytes;
};

// What GetWithMetadata read.
struct GetResult {
  // The key's state, or std::nullopt if it did not exist at `revision`.
  std::optional<KeyValue> kv;
  // The revision the read was made at (the latest when asked for 0).
  Revision revision = 0;
};

// What BatchGet read.
struct BatchGetResult {
  // One per requested key, in request order; std::nullopt = no such key.
  std::vector<std::optional<KeyValue>> kvs;
  // The one revision every key was read at.
  Revision revision = 0;
};

// Expiry of a Put (docs/expiry.md).
struct PutOptions {
  // The key expires this long after the write commits (no read returns it
  // from then on); 0 = no TTL (clears an earlier one).
  int64_t ttl_ms = 0;
  // Attach the key to this lease (LeaseGrant); 0 = none. A lease that does
  // not exist: NOT_FOUND and nothing written.
  int64_t lease = 0;
  // The value's type, checked by the server (docs/values.md).
  ValueType type = ValueType::kBytes;
};

// A lease's state (LeaseTimeToLive).
struct LeaseInfo {
  int64_t id = 0;
  // Seconds left before it expires (rounded up).
  int64_t ttl_seconds = 0;
  // The TTL it was granted (what a keep-alive renews to).
  int64_t granted_ttl = 0;
  // With keys: the keys attached to it, in key order.
  std::vector<std::string> keys;
};

// What DeleteRange did.
struct DeleteRangeResult {
  // Keys deleted.
  int64_t deleted = 0;
  // With prev_kv: the deleted pairs, in key order.
  std::vector<KeyValue> prev_kvs;
  // The revision of the deletion (the current revision if the range was
  // empty: nothing was written).
  Revision revision = 0;
};

// The range and view of a Scan.
struct ScanOptions {
  // Inclusive lower bound; empty = the first key.
  std::string start;
  // Exclusive upper bound; empty = no upper bound.
  std::string end;
  // At most this many pairs; 0 = all.
  uint32_t limit = 0;
  // Leave values empty.
  bool keys_only = false;
  // Read as of this revision; 0 = the latest when the scan starts.
  Revision revision = 0;
  // Descending key order within the same bounds (with limit: the last
  // `limit` keys of the range).
  bool reverse = false;
};

// What to watch (Client::Watch).
struct WatchOptions {
  // The key to watch, or the start of the range. Must not be empty unless
  // range_end is "\0" (every key).
  std::string key;
  // etcd's convention: empty = just `key`; "\0" (one zero byte) = every
  // key >= `key`; otherwise the range [key, range_end).
  std::string range_end;
  // The first revision to report; 0 = the changes after the current
  // revision.
  Revision start_revision = 0;
  // Fill WatchEvent::prev_kv (the key's state before each change).
  bool prev_kv = false;
  // The namespace watched; "" = the client's (ClientOptions::ns).
  std::string ns;
  // While nothing changes, the server sends a batch without events every
  // --watch_progress_interval (10 s) saying how far the stream is complete.
  bool progress_notify = false;
  // Resuming: when an opened stream breaks (UNAVAILABLE: the server
  // stopped or restarted, the connection dropped; or CANCELLED by the
  // server while it shuts down), reconnect with backoff
  // (50 ms doubling to 2 s) and watch again from WatchStream::revision() +
  // 1, for at most this long after the break; the caller sees no gap and no
  // duplicate. Zero = do not resume (Next returns UNAVAILABLE). A resumed
  // stream runs on a connection of its own.
  absl::Duration resume_timeout = absl::ZeroDuration();
  // Called on the thread in WatchStream::Next once per break that is being
  // resumed, with the error that broke the stream and the revision the
  // stream resumes from; may be empty. For logging: must not call into the
  // WatchStream.
  std::function<void(const absl::Status& cause, Revision from)> on_resume;
};

// One change, in a WatchBatch.
struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // kPut: the key's new state. kDelete: the key, and mod_revision = the
  // revision of the deletion (no value, create_revision or version).
  KeyValue kv;
  // With WatchOptions::prev_kv: the key's state before this change;
  // std::nullopt if it did not exist (or prev_kv was not asked for).
  std::optional<KeyValue> prev_kv;

  // The revision of the change.
  Revision revision() const { return kv.mod_revision; }
};

// What WatchStream::Next returns: one message of the stream.
struct WatchBatch {
  // Every change in the range up to this revision has been delivered (in
  // this or an earlier batch). A revision whose events exceed about 1 MiB
  // is split over consecutive batches; all but the last report the
  // revision before it.
  Revision revision = 0;
  // Changes in revision order. Empty in the first batch (the stream is
  // open: revision = start_revision - 1, or the current revision when
  // watching from now) and in progress notifications.
  std::vector<WatchEvent> events;
};

// An open Watch (Client::Watch): every change to a key or range from a
// revision on, in revision order, each exactly once (docs/revisions.md,
// "Watch").
//
// Thread safety: Next and the accessors are for one thread at a time (the
// reader); Cancel may be called from any thread at any time, also while
// Next blocks. Holds its own reference to the client's channel: it may
// outlive the Client.
class WatchStream {
 public:
  // Cancels the stream if it is still open.
  ~WatchStream();
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  // Blocks until the next batch of the stream and returns it. The stream
  // has no deadline: a quiet range blocks until a change (or a progress
  // notification, or Cancel).
  // Errors end the stream (every later call returns the same status):
  //   CANCELLED         Cancel() was called.
  //   OUT_OF_RANGE      the changes it needs were compacted (start_revision
  //                     at or below the compacted revision, or it fell that
  //                     far behind, also while resuming); compact_revision()
  //                     says up to where. Read the range at
  //                     compact_revision(), then watch from it + 1.
  //   INVALID_ARGUMENT  a bad range or a negative start_revision.
  //   UNAVAILABLE       the server could not be reached when the stream
  //                     started, or the stream broke and resume_timeout is
  //                     zero or ran out (CANCELLED instead when the server
  //                     cancelled it at shutdown).
  //   RESOURCE_EXHAUSTED too many watch streams on the server
  //                     (--max_watch_streams).
  //   INTERNAL          the server sent a change at or below a revision it
  //                     had already reported complete (the stream would
  //                     have duplicated it).
  absl::StatusOr<WatchBatch> Next();

  // Ends the stream: a blocked or later Next returns CANCELLED promptly.
  // Idempotent; thread-safe.
  void Cancel();

  // Every change up to this revision has been returned by Next (the last
  // batch's revision); start_revision - 1 before the first batch (0 when
  // watching from now).
  Revision revision() const;
  // After Next returned OUT_OF_RANGE for compaction: the compacted
  // revision; 0 otherwise.
  Revision compact_revision() const;
  // How many times the stream was re-opened after breaks (every attempt).
  int resumes() const;

 private:
  friend class Client;
  struct Impl;
  explicit WatchStream(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

// One operation of an atomic Write.
struct Mutation {
  enum class Op { kPut, kDelete };
  Op op = Op::kPut;
  std::string key;
  std::string value;  // Ignored for kDelete.
  ValueType type = ValueType::kBytes;  // Of the put's value.

  static Mutation Put(std::string key, std::string value,
                      ValueType type = ValueType::kBytes) {
    return Mutation{Op::kPut, std::move(key), std::move(value), type};
  }
  static Mutation Delete(std::string key) {
    return Mutation{Op::kDelete, std::move(key), std::string(),
                    ValueType::kBytes};
  }
};

// The kinds of patch Client::JsonUpdate and TxnOp::JsonMergePatch /
// TxnOp::JsonPatch apply.
enum class JsonPatchKind {
  kMergePatch,  // RFC 7386: {"a": 2, "b": null} sets a, removes b.
  kJsonPatch,   // RFC 6902: [{"op": "add", "path": "/a", "value": 2}, ...].
};

// ---- Transactions (docs/transactions.md)

// One condition of a Txn (etcd's Compare): the key's version, create
// revision, mod revision or value compared with a constant. A missing key
// has version and revisions 0 (so "does not exist" is Version(key, kEqual,
// 0)); a value compare on a missing key is false. With a range_end, every
// existing key of the range must satisfy it (an empty range compares as
// one missing key). An Int64Value compare compares an INT64 value
// (docs/values.md) as a number; it is false on a missing key, and a key of
// another type fails the whole Txn with FAILED_PRECONDITION.
struct Compare {
  enum class Target { kVersion, kCreate, kMod, kValue, kInt64Value };
  enum class Result { kEqual, kGreater, kLess, kNotEqual };
  std::string key;
  // etcd's convention: empty = just `key`; "\0" (one zero byte) = every
  // key >= `key`; otherwise the range [key, range_end).
  std::string range_end;
  Target target = Target::kVersion;
  Result result = Result::kEqual;
  // The constant for kVersion, kCreate, kMod and kInt64Value.
  int64_t number = 0;
  // The constant for kValue.
  std::string value;

  static Compare Version(std::string key, Result result, int64_t version) {
    return {std::move(key), "", Target::kVersion, result, version, ""};
  }
  static Compare CreateRevision(std::string key, Result result,
                                Revision revision) {
    return {std::move(key), "", Target::kCreate, result, revision, ""};
  }
  static Compare ModRevision(std::string key, Result result,
                             Revision revision) {
    return {std::move(key), "", Target::kMod, result, revision, ""};
  }
  static Compare Value(std::string key, Result result, std::string value) {
    return {std::move(key), "", Target::kValue, result, 0, std::move(value)};
  }
  // The key's INT64 value compared numerically with `value` ("10" > "9",
  // which Value's byte order gets wrong).
  static Compare Int64Value(std::string key, Result result, int64_t value) {
    return {std::move(key), "", Target::kInt64Value, result, value, ""};
  }
  // The same compare over [key, range_end) (see range_end).
  Compare InRange(std::string end) const {
    Compare c = *this;
    c.range_end = std::move(end);
    return c;
  }
};

// One operation of a Txn branch. Reads see the branch's earlier writes.
//
// The typed operations (kIncrement, kJsonGet, kJsonUpdate; docs/values.md)
// read the key as the Txn sees it and write it at the Txn's revision, so
// the branch may not write that key otherwise (INVALID_ARGUMENT). If one
// fails (a missing key with must_exist or for a JSON op, a key of another
// type, an overflow, a JSON Patch "test" that fails, a pointer that does
// not resolve), the whole Txn fails with that operation's code
// (NOT_FOUND, FAILED_PRECONDITION, OUT_OF_RANGE) and writes nothing; the
// message names the op ("success op 2: ...").
struct TxnOp {
  enum class Type { kGet, kPut, kDelete, kScan, kIncrement, kJsonGet,
                    kJsonUpdate };
  Type type = Type::kGet;
  // Every type but kScan.
  std::string key;
  // kPut: the value; kJsonUpdate: the patch (JSON text).
  std::string value;
  // kScan: range, limit, keys_only and reverse (revision must be 0: reads
  // in a Txn are at its revision). All its pairs come in one response.
  ScanOptions scan;
  // kIncrement: added to the counter (may be negative or 0), and whether a
  // missing key is NOT_FOUND instead of counting from 0.
  int64_t delta = 0;
  bool must_exist = false;
  // kJsonGet: an RFC 6901 JSON Pointer ("" = the whole document).
  std::string pointer;
  // kJsonUpdate: how `value` patches the document.
  JsonPatchKind patch_kind = JsonPatchKind::kMergePatch;

  static TxnOp Get(std::string key) {
    TxnOp op;
    op.key = std::move(key);
    return op;
  }
  static TxnOp Put(std::string key, std::string value) {
    TxnOp op;
    op.type = Type::kPut;
    op.key = std::move(key);
    op.value = std::move(value);
    return op;
  }
  static TxnOp Delete(std::string key) {
    TxnOp op;
    op.type = Type::kDelete;
    op.key = std::move(key);
    return op;
  }
  static TxnOp Scan(ScanOptions options) {
    TxnOp op;
    op.type = Type::kScan;
    op.scan = std::move(options);
    return op;
  }
  // Adds delta to the INT64 value of key (as Client::Increment, without a
  // TTL); the result's `counter` is its value after it. A missing key
  // counts from 0, or is NOT_FOUND with must_exist.
  static TxnOp Increment(std::string key, int64_t delta,
                         bool must_exist = false) {
    TxnOp op;
    op.type = Type::kIncrement;
    op.key = std::move(key);
    op.delta = delta;
    op.must_exist = must_exist;
    return op;
  }
  // The JSON text at `pointer` of the JSON value of key (as
  // Client::JsonGet), in the result's `json`; it sees the branch's earlier
  // writes.
  static TxnOp JsonGet(std::string key, std::string pointer = "") {
    TxnOp op;
    op.type = Type::kJsonGet;
    op.key = std::move(key);
    op.pointer = std::move(pointer);
    return op;
  }
  // Applies an RFC 7386 JSON Merge Patch to the JSON value of key (as
  // Client::JsonUpdate); the result's `json` is the new document.
  static TxnOp JsonMergePatch(std::string key, std::string patch) {
    TxnOp op;
    op.type = Type::kJsonUpdate;
    op.key = std::move(key);
    op.value = std::move(patch);
    op.patch_kind = JsonPatchKind::kMergePatch;
    return op;
  }
  // Applies an RFC 6902 JSON Patch (an array of operations, all or
  // nothing) to the JSON value of key; the result's `json` is the new
  // document.
  static TxnOp JsonPatch(std::string key, std::string patch) {
    TxnOp op = JsonMergePatch(std::move(key), std::move(patch));
    op.patch_kind = JsonPatchKind::kJsonPatch;
    return op;
  }
};

// The result of one TxnOp, in the same position.
struct TxnOpResult {
  TxnOp::Type type = TxnOp::Type::kGet;
  // kGet: the key's state, or std::nullopt if it does not exist.
  std::optional<KeyValue> kv;
  // kScan: the pairs.
  std::vector<KeyValue> kvs;
  // kIncrement: the counter after the increment.
  int64_t counter = 0;
  // kJsonGet: the JSON text at the pointer; kJsonUpdate: the new document
  // (both normalized).
  std::string json;
};

// What a Txn did.
struct TxnResult {
  // Whether every compare held (the success ops ran; else the failure ops).
  bool succeeded = false;
  // One per op of the branch that ran.
  std::vector<TxnOpResult> results;
  // The revision it committed at (the current one if it wrote nothing);
  // its compares and reads saw the state just before it.
  Revision revision = 0;
};

// A range a transaction read: [start, end), end empty = no upper bound.
struct KeyRange {
  std::string start;
  std::string end;
};

class Transaction;
struct TransactionOptions;

// Client::Increment's options.
struct IncrementOptions {
  // A missing key is NOT_FOUND instead of counting from 0.
  bool must_exist = false;
  // > 0: the counter expires this many milliseconds after the increment;
  // 0: it keeps the expiry it had.
  int64_t ttl_ms = 0;
  // The key's namespace; "" = the client's (ClientOptions::ns).
  std::string ns;
};

// What Client::Increment did.
struct IncrementResult {
  int64_t value = 0;      // The counter after the increment.
  Revision revision = 0;  // The revision it committed at.
};

// A JSON text with the revision it was read or written at.
struct JsonResult {
  std::string json;
  Revision revision = 0;
};

// A connection to one server.
//
// Thread safety: a Client is safe for concurrent use from many threads; all
// calls share one gRPC channel (which reconnects on its own).
// Connecting is lazy: constructing never fails or blocks; the first RPC to
// an unreachable server returns UNAVAILABLE.
class Client {
 public:
  // Connects (lazily) to `target`, a gRPC target such as
  // "127.0.0.1:50051" or "dns:///host:port". The client accepts messages of
  // any size from the server.
  explicit Client(const std::string& target,
                  const ClientOptions& options = ClientOptions());
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The value of key, or std::nullopt if the key does not exist (not an
  // error). Errors as in the file comment.
  absl::StatusOr<std::optional<std::string>> Get(std::string_view key);

  // The key with its metadata, as of `revision` (0 = the latest), and the
  // revision read at. A missing key is OK with kv = std::nullopt.
  // OUT_OF_RANGE for a revision below the compacted revision or above the
  // current one.
  absl::StatusOr<GetResult> GetWithMetadata(std::string_view key,
                                            Revision revision = 0);

  // Reads every key at one revision (0 = the latest); results in request
  // order. INVALID_ARGUMENT for no keys or more than the server's
  // --max_batch_mutations (10,000); OUT_OF_RANGE as GetWithMetadata.
  absl::StatusOr<BatchGetResult> BatchGet(const std::vector<std::string>& keys,
                                          Revision revision = 0);

  // Sets key to value and returns the revision it committed at. OK means
  // the write is durable (per the server's --wal_sync).
  absl::StatusOr<Revision> Put(std::string_view key, std::string_view value);
  // Put of a typed value: INVALID_ARGUMENT (naming the problem, nothing
  // written) if value is not of its type. A JSON value is stored normalized.
  absl::StatusOr<Revision> Put(std::string_view key, std::string_view value,
                               ValueType type);

  // Adds delta to the INT64 value of key, atomically and durably (no
  // increment is lost or applied twice under any concurrency), and returns
  // the new value. A missing key counts from 0 (NOT_FOUND with
  // options.must_exist); FAILED_PRECONDITION for a key of another type;
  // OUT_OF_RANGE if the sum overflows int64 (nothing written).
  absl::StatusOr<IncrementResult> Increment(
      std::string_view key, int64_t delta = 1,
      const IncrementOptions& options = IncrementOptions());

  // The JSON text at `pointer` (RFC 6901; "" = the whole document) of the
  // JSON value of key. NOT_FOUND for a missing key or a pointer that does
  // not resolve; FAILED_PRECONDITION for a key of another type;
  // INVALID_ARGUMENT for a malformed pointer.
  absl::StatusOr<JsonResult> JsonGet(std::string_view key,
                                     std::string_view pointer = "");

  // Applies a patch to the JSON value of key atomically at one revision and
  // returns the new document. NOT_FOUND for a missing key;
  // INVALID_ARGUMENT for a patch that is not valid; FAILED_PRECONDITION for
  // a key of another type or a JSON Patch that does not apply (a failed
  // "test"): nothing is written then.
  absl::StatusOr<JsonResult> JsonUpdate(std::string_view key,
                                        JsonPatchKind kind,
                                        std::string_view patch);
  // The same with a TTL and/or a lease. INVALID_ARGUMENT for a negative or
  // too long TTL (--max_ttl); NOT_FOUND for a lease that does not exist.
  absl::StatusOr<Revision> Put(std::string_view key, std::string_view value,
                               const PutOptions& options);

  // Leases (docs/expiry.md): keys attached to a lease are deleted, all at
  // one revision, when it expires or is revoked. NOT_FOUND for a lease that
  // does not exist (never granted, expired, revoked).
  //
  // Creates a lease of ttl_seconds (id 0 = the server picks one); returns
  // its id (and sets *granted_ttl if given).
  absl::StatusOr<int64_t> LeaseGrant(int64_t ttl_seconds, int64_t id = 0);
  // Ends the lease now; returns the revision that deleted it and its keys.
  absl::StatusOr<Revision> LeaseRevoke(int64_t id);
  // Renews the lease to its full TTL; returns the TTL in seconds.
  absl::StatusOr<int64_t> LeaseKeepAlive(int64_t id);
  // The lease's remaining and granted TTL, and with keys its keys.
  absl::StatusOr<LeaseInfo> LeaseTimeToLive(int64_t id, bool keys = false);
  // The ids of every live lease, ascending.
  absl::StatusOr<std::vector<int64_t>> LeaseLeases();

  // Removes key; OK if it did not exist (nothing is written then, and the
  // current revision is returned). Returns the revision of the deletion.
  absl::StatusOr<Revision> Delete(std::string_view key);

  // Applies every mutation atomically and in order (later mutations of the
  // same key win), at one revision, which it returns (the current revision
  // if the mutations changed nothing). An empty vector is a no-op that
  // returns 0 without calling the server. INVALID_ARGUMENT (and nothing
  // written) if any mutation breaks a limit.
  absl::StatusOr<Revision> Write(const std::vector<Mutation>& mutations);

  // Deletes every key in [start, end) atomically at one revision (start
  // empty = the first key, end empty = no upper bound: both empty deletes
  // everything). With prev_kv the deleted pairs are returned too, and more
  // than --max_batch_mutations of them is FAILED_PRECONDITION with nothing
  // deleted. An empty range (end <= start) is OK and deletes nothing.
  absl::StatusOr<DeleteRangeResult> DeleteRange(std::string_view start,
                                                std::string_view end,
                                                bool prev_kv = false);

  // Discards the history before `revision` (etcd's Compact): reads and
  // watches at lower revisions fail with OUT_OF_RANGE afterwards. Returns
  // the current revision. INVALID_ARGUMENT if revision <= 0; OUT_OF_RANGE
  // if it is not above the compacted revision or above the current one.
  absl::StatusOr<Revision> Compact(Revision revision);

  // Evaluates `compares` and, if all hold, runs `success`, else `failure`,
  // atomically at one revision (etcd's Txn; docs/transactions.md). Errors:
  // INVALID_ARGUMENT (and nothing written) for more than the server's
  // --max_batch_mutations compares or ops per branch, a bad key or value,
  // a branch that writes a key twice, a read with a revision;
  // FAILED_PRECONDITION if range compares cover more than
  // --max_batch_mutations keys or the response would exceed
  // --max_message_bytes (nothing written).
  absl::StatusOr<TxnResult> Txn(const std::vector<Compare>& compares,
                                const std::vector<TxnOp>& success,
                                const std::vector<TxnOp>& failure = {});

  // Commits an optimistic transaction that read `read_keys` and
  // `read_ranges` at `read_revision`: applies `mutations` atomically at a
  // new revision, which it returns, iff none of what it read changed after
  // read_revision. ABORTED (nothing written) otherwise, naming the first
  // changed key; FAILED_PRECONDITION if read_revision is below the
  // compacted revision, or a range read is older than the server's window
  // of recent writes. Transaction and RunTransaction build these calls.
  absl::StatusOr<Revision> Commit(Revision read_revision,
                                  const std::vector<std::string>& read_keys,
                                  const std::vector<KeyRange>& read_ranges,
                                  const std::vector<Mutation>& mutations);

  // A new read-write transaction on this client (see Transaction). The
  // client must outlive it.
  std::unique_ptr<Transaction> BeginTransaction();

  // Runs `fn` in a transaction and commits it; if the commit is ABORTED
  // (another write changed what fn read), waits with exponential backoff
  // and jitter and runs fn again in a new transaction, up to
  // options.max_attempts times (then ABORTED, saying so). fn must do all
  // its reads and writes through the Transaction it is given and may run
  // several times; a non-OK status from fn ends it at once (nothing is
  // committed) and is returned. Returns the commit revision (for a
  // transaction that wrote nothing: its read revision).
  using TransactionFn = absl::FunctionRef<absl::Status(Transaction& tx)>;
  absl::StatusOr<Revision> RunTransaction(TransactionFn fn);
  absl::StatusOr<Revision> RunTransaction(TransactionFn fn,
                                          const TransactionOptions& options);

  // Called once per pair, in ascending key order; value is empty with
  // keys_only. The views are valid only during the call. Return false to
  // stop the scan early (Scan then cancels the stream and returns OK).
  using ScanCallback =
      absl::FunctionRef<bool(std::string_view key, std::string_view value)>;

  // Streams the pairs with start <= key < end (end empty = no upper bound)
  // from one consistent snapshot, at most `limit` of them (0 = all),
  // calling `callback` for each. Returns OK when the stream ended (or the
  // callback stopped it); otherwise the error, after the pairs already
  // delivered.
  absl::Status Scan(std::string_view start, std::string_view end,
                    uint32_t limit, bool keys_only, ScanCallback callback);

  // Called once per pair, in the scan's key order, with its metadata. The
  // KeyValue is valid only during the call. Return false to stop early.
  using ScanKvCallback = absl::FunctionRef<bool(const KeyValue& kv)>;

  // Scan with every option (a past revision, reverse order): streams the
  // pairs of options' range from one revision, calling `callback` for
  // each, and returns the revision read at (also when the callback stopped
  // the scan). On error, returns it after the pairs already delivered;
  // OUT_OF_RANGE for a revision outside the history. To page through a
  // large range consistently, pass the first page's revision to the next
  // pages with start = last key + '\0' (reverse: end = last key).
  absl::StatusOr<Revision> Scan(const ScanOptions& options,
                                ScanKvCallback callback);

  // Opens a Watch stream (see WatchStream). Never fails and does not block:
  // errors (an unreachable server, a bad range, a compacted start) come
  // from the first WatchStream::Next. The stream has no deadline
  // (ClientOptions::timeout does not apply to it).
  std::unique_ptr<WatchStream> Watch(const WatchOptions& options);

  // Progress of Backup, reported after each chunk received.
  struct BackupProgress {
    Revision revision = 0;     // The revision the backup holds.
    uint64_t bytes = 0;        // File data (or change data) received so far.
    uint64_t total_bytes = 0;  // File data of the whole backup (0 for an
                               // incremental: not known in advance).
    // Incremental backups: the revision the changes start after, and the
    // last revision received so far.
    Revision from_revision = 0;
    Revision last_revision = 0;
  };
  // What Backup wrote.
  struct BackupResult {
    Revision revision = 0;
    uint64_t bytes = 0;  // File data (the file itself is slightly larger).
    uint64_t files = 0;
    // Incremental backups: as in BackupProgress, and the batches
    // (revisions) and changes the file holds.
    Revision from_revision = 0;
    uint64_t batches = 0;
    uint64_t changes = 0;
    // Namespace backups (ClientOptions::ns set): the namespace, and
    // `changes` counts its entries (keys and their system entries).
    std::string ns;
  };
  using BackupProgressCallback =
      absl::FunctionRef<void(const BackupProgress& progress)>;

  // Streams a full, consistent backup of the store (the Backup RPC,
  // docs/backup.md) into the file `path` (docs/backup-format.md): written
  // to `path`.partial, fsynced, then renamed to `path` once the server's
  // final manifest has arrived, so `path` only ever holds a complete
  // backup. `progress` runs on the calling thread after each chunk. No
  // deadline (ClientOptions::timeout does not apply). Errors: the RPC's
  // (RESOURCE_EXHAUSTED while another backup runs, UNAVAILABLE, ...);
  // INTERNAL/UNAVAILABLE with the path when the file cannot be written
  // (the partial file is removed).
  //
  // With since_revision > 0, an incremental backup: the changes committed
  // after since_revision (e.g. the previous backup's revision), in format
  // 2 (docs/backup-format.md); OUT_OF_RANGE when they are no longer
  // retained (take a full backup).
  //
  // With ClientOptions::ns set, a backup of that namespace only (format 3,
  // docs/backup.md "One namespace"): NOT_FOUND if it does not exist,
  // UNIMPLEMENTED with since_revision > 0.
  absl::StatusOr<BackupResult> Backup(const std::string& path,
                                      BackupProgressCallback progress,
                                      Revision since_revision = 0);

  // Asks the standard health service about `service` ("" = the whole
  // server, "strata.v1.KV" = the KV service). true = SERVING, false = any
  // other status (NOT_SERVING while shutting down). Errors: UNAVAILABLE if
  // unreachable, NOT_FOUND for a service the server does not know.
  absl::StatusOr<bool> Health(std::string_view service = "");

  // Namespaces (docs/namespaces.md). Names are 1..255 bytes of
  // [A-Za-z0-9._/-] (else INVALID_ARGUMENT); quotas 0 = unlimited. Each
  // write returns the revision it committed at.
  // Creates an empty namespace; ALREADY_EXISTS if it exists.
  absl::StatusOr<Revision> CreateNamespace(std::string_view name,
                                           uint64_t quota_bytes = 0,
                                           uint64_t quota_keys = 0);
  // Deletes a namespace and all its keys at once; NOT_FOUND if absent.
  absl::StatusOr<Revision> DeleteNamespace(std::string_view name);
  // Replaces a namespace's quotas; a quota given as nullopt stays as it is
  // (atomically: the server keeps it). NOT_FOUND if absent.
  absl::StatusOr<Revision> UpdateNamespace(
      std::string_view name, std::optional<uint64_t> quota_bytes,
      std::optional<uint64_t> quota_keys);
  // The namespaces whose names start with `prefix`, in name order (the
  // default namespace has no entry: it has no name, quota or usage record).
  absl::StatusOr<std::vector<NamespaceInfo>> ListNamespaces(
      std::string_view prefix = "");

  // The options given at construction.
  const ClientOptions& options() const { return options_; }

 private:
  struct Stubs;
  // Cluster routing (docs/cluster.md, "What a client sees").
  struct Route;
  // Runs `call` (one RPC on the KV stub it is given, with a context whose
  // deadline is set) against the node believed to be the primary: `target`
  // at first. If that node answers FAILED_PRECONDITION naming the primary
  // (a cluster node that is not the primary and did not forward the call:
  // the trailer strata-primary: HOST:PORT, or from servers before it the
  // message "...; the primary is NODE at HOST:PORT"), the client remembers
  // HOST:PORT for later calls and runs `call` once more there. When a call
  // to that remembered primary fails UNAVAILABLE (the node is gone) or
  // FAILED_PRECONDITION naming no primary (a fenced old primary), the
  // client forgets it, so the next call goes to `target` again; the failed
  // call itself is returned as is, never retried (a write that failed
  // UNAVAILABLE may have been applied). Get, GetWithMetadata, Put and
  // Delete are routed; the other methods stay on `target`.
  //
  // Before the first routed call, and again after each forget, the client
  // asks `target` for strata.v1.Cluster/GetRangeMap (deadline: 2 s or the
  // timeout, the shorter) and follows the primary of the range holding
  // `key` (PrimaryFromRangeMap), so a client given a replica's address
  // goes straight to the primary instead of through the replica's
  // forwarding hop. A standalone server answers UNIMPLEMENTED once and is
  // never asked again; any other failure leaves the call on `target`.
  grpc::Status RoutedKv(
      std::string_view key,
      const std::function<grpc::Status(void* kv_stub,
                                       grpc::ClientContext* ctx)>& call);
  // Asks `target` for its range map: the primary address of the range
  // holding `key` (of ClientOptions::ns: for a named namespace, only a map
  // of one range answers), or "" if there is none, it is `target` itself,
  // or the call failed (UNIMPLEMENTED marks the map as never to be asked
  // again).
  std::string PrimaryFromRangeMap(std::string_view key);

  const ClientOptions options_;
  const std::string target_;
  const std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stubs> stubs_;
  std::unique_ptr<Route> route_;
};

}  // namespace strata

#endif  // STRATA_CLIENT_STRATA_CLIENT_H_
