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
//                       --max_batch_mutations keys (nothing deleted).
//   DATA_LOSS, INTERNAL ... passed through from the engine.
// No exceptions are thrown.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grpc {
class Channel;
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
};

// A revision: the number of a committed write (1, 2, ...). 0 in a request
// means "the latest"; 0 in a result means "none" (e.g. no metadata).
using Revision = int64_t;

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

  static Mutation Put(std::string key, std::string value) {
    return Mutation{Op::kPut, std::move(key), std::move(value)};
  }
  static Mutation Delete(std::string key) {
    return Mutation{Op::kDelete, std::move(key), std::string()};
  }
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

  // Asks the standard health service about `service` ("" = the whole
  // server, "strata.v1.KV" = the KV service). true = SERVING, false = any
  // other status (NOT_SERVING while shutting down). Errors: UNAVAILABLE if
  // unreachable, NOT_FOUND for a service the server does not know.
  absl::StatusOr<bool> Health(std::string_view service = "");

  // The options given at construction.
  const ClientOptions& options() const { return options_; }

 private:
  struct Stubs;

  const ClientOptions options_;
  const std::string target_;
  const std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stubs> stubs_;
};

}  // namespace strata

#endif  // STRATA_CLIENT_STRATA_CLIENT_H_
