#ifndef STRATA_CLUSTER_ETCD_CLIENT_H_
#define STRATA_CLUSTER_ETCD_CLIENT_H_

// A small synchronous client for etcd's v3 API over gRPC: what the Strata
// cluster needs from etcd (project issue 18) and no more. etcd owns
// membership (`nodes/<id>` bound to a node's lease), leases, the controller
// election and the range map (`ranges/<id>`, changed only by a Txn that
// compares its mod_revision).
//
//   EtcdClient      Range/Put/DeleteRange, Txn, leases, and a blocking wait
//                   for a key's deletion. Every call has a deadline.
//   LeaseKeeper     a thread renewing one lease every TTL/3 and reporting
//                   its loss.
//   Watcher         a thread streaming a prefix's changes to a callback,
//                   resuming from the next revision when the stream breaks,
//                   and re-syncing through its owner's re-read when etcd
//                   compacted that revision away.
//   LeaderElection  one leader at a time on one key, bound to the
//                   candidate's lease (a Txn on create_revision == 0).
//
// Errors are absl::Status with the gRPC code etcd answered with (the codes
// are the same) and the message prefixed by the RPC, e.g.
// "etcd LeaseRevoke: etcdserver: requested lease not found" (NotFound).
// Authentication errors: a wrong user or password is Unauthenticated
// naming the user ("etcd Authenticate as user \"strata\": ..."); a call
// without credentials to an etcd with authentication enabled is
// Unauthenticated ("... etcd requires a user ..."); a user whose roles do
// not cover a key is PermissionDenied.
// A call that does not finish within its timeout, etcd being slow or
// unreachable, is DeadlineExceeded (calls wait for a connection rather than
// failing at once while the channel reconnects); one whose connection broke
// is Unavailable. Either may have taken effect.
//
// Transport: gRPC to one or several endpoints of one etcd cluster
// (EtcdClientOptions::endpoint), plaintext or TLS (EtcdTlsOptions: etcd's
// https client URLs, with a client certificate for --client-cert-auth).
// With several,
// every call and stream goes to a member that is up, so a member going
// down costs the streams open to it (they reconnect, to another member)
// and nothing else; see EtcdChannelPlan for how.
//
// Authentication: with EtcdAuthOptions (etcd's `auth enable`, a user and
// its password) the client gets a token from etcd's Auth.Authenticate and
// sends it with every call and stream, as etcd's Go client does.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace grpc {
class ClientContext;
}  // namespace grpc

namespace strata::cluster {

// TLS to etcd (its client URLs are https://), with etcdctl's --cacert,
// --cert and --key as the files. Each member's certificate must name the
// host:port it is dialed at (a SAN with the IP or DNS name given in
// EtcdClientOptions::endpoint): with TLS every endpoint gets its own
// channel (EtcdChannelPlan), so each member is checked against its own
// name. The files are read when the first connection is made and again
// every reload_interval (gRPC's FileWatcherCertificateProvider), so rotated
// certificates are picked up without a restart.
struct EtcdTlsOptions {
  // PEM bundle of the CAs that sign the members' server certificates.
  // Empty: plaintext (and cert_file/key_file must be empty too).
  std::string ca_file;
  // This client's certificate chain and private key (PEM), for an etcd
  // started with --client-cert-auth. Both or neither.
  std::string cert_file;
  std::string key_file;
  absl::Duration reload_interval = absl::Minutes(1);

  bool enabled() const { return !ca_file.empty(); }
};

// InvalidArgument naming the flag (`flag_prefix` + "ca", "cert", "key",
// e.g. "--cluster_etcd_") when a file is named but cannot be read, does
// not hold a PEM block, or cert/key are given without a CA or one without
// the other. OK for plaintext (all empty). Reads the files; call it where
// flags are parsed (EtcdClient itself cannot fail).
absl::Status ValidateEtcdTls(const EtcdTlsOptions& tls,
                             std::string_view flag_prefix);

// etcd user authentication (etcdctl's --user), for an etcd with
// `etcdctl auth enable`. Independent of TLS (a client certificate whose
// CN names a user is etcd's other way to authenticate; this is the
// password one).
//
// Contract: with `user` set, the client calls Auth.Authenticate with the
// user and password before its first call (and whenever etcd stops
// accepting the token) and sends the token etcd returns as the gRPC
// metadata "token" on every call and stream. The token is shared by all
// threads using the client. etcd's simple tokens expire after
// --auth-token-ttl (300 s by default) without use, are usually forgotten
// when a member restarts, and are dropped when the user's password changes
// or the user is deleted: a call that etcd answers UNAUTHENTICATED ("invalid auth
// token"; also "revision of auth store is old" and "user name is empty"),
// or a watch it cancels for one of these reasons, gets a fresh token and is
// retried once, within the call's own deadline; streams reopen with the
// fresh token. The password is kept in memory for that and never logged
// (a changed password needs new options: a node reads its password file
// at start).
// If etcd answers that authentication is not enabled, calls go without a
// token until etcd asks for one.
struct EtcdAuthOptions {
  // etcd user name. Empty: no authentication (and password must be empty).
  std::string user;
  std::string password;

  bool enabled() const { return !user.empty(); }
};

// The EtcdAuthOptions of the flags `flag_prefix` + "user" and
// `flag_prefix` + "password_file" (e.g. "--cluster_etcd_"): the password is
// the file's content with one trailing newline ("\n" or "\r\n") removed,
// so `echo secret > file` and a Kubernetes Secret volume both work.
// InvalidArgument naming the flag when only one of the two is given, when
// the file cannot be read (errno text) or when the password is empty.
// Both empty: no authentication (OK, disabled options).
absl::StatusOr<EtcdAuthOptions> LoadEtcdAuth(std::string user,
                                             const std::string& password_file,
                                             std::string_view flag_prefix);

struct EtcdClientOptions {
  // host:port of an etcd member's client URL (no scheme), e.g.
  // "127.0.0.1:2379", or several of one cluster separated by commas, e.g.
  // "10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379" (IPv6 as "[::1]:2379").
  std::string endpoint;
  // Deadline of each unary call (and of each step of the helpers below).
  absl::Duration call_timeout = absl::Seconds(5);
  // Plaintext unless tls.ca_file is set.
  EtcdTlsOptions tls;
  // No authentication unless auth.user is set.
  EtcdAuthOptions auth;
};

// mvccpb.KeyValue. Revisions are etcd's store revisions (a counter of
// every change to the whole store); version counts changes of this key
// since it was created (0 = absent).
struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;  // 0 = not bound to a lease.
};

struct RangeResult {
  int64_t revision = 0;  // The store's revision when the range was read.
  std::vector<KeyValue> kvs;  // Sorted by key.
  bool more = false;          // The limit cut the result short.
  int64_t count = 0;          // Keys in the range (ignoring the limit).
};

// One comparison of a Txn: `target(key) op operand`. For a missing key,
// version, create_revision and mod_revision are 0 and value compares as
// absent (only kNotEqual holds).
struct Compare {
  enum class Target { kVersion, kCreateRevision, kModRevision, kValue };
  enum class Op { kEqual, kNotEqual, kLess, kGreater };
  std::string key;
  Target target = Target::kModRevision;
  Op op = Op::kEqual;
  int64_t number = 0;  // Operand for kVersion, kCreateRevision, kModRevision.
  std::string value;   // Operand for kValue.

  static Compare ModRevisionIs(std::string key, int64_t revision);
  static Compare CreateRevisionIs(std::string key, int64_t revision);
  // CreateRevisionIs(key, 0): the key does not exist.
  static Compare Absent(std::string key);
  // version > 0: the key exists.
  static Compare Exists(std::string key);
  static Compare VersionIs(std::string key, int64_t version);
  static Compare ValueIs(std::string key, std::string value);
};

// One operation of a Txn branch.
struct TxnOp {
  enum class Kind { kGet, kPut, kDelete };
  Kind kind = Kind::kGet;
  std::string key;
  std::string value;      // kPut.
  int64_t lease = 0;      // kPut: bind the key to this lease (0 = none).
  std::string range_end;  // kGet, kDelete: exclusive end ("" = just key).

  static TxnOp Get(std::string key);
  static TxnOp Put(std::string key, std::string value, int64_t lease = 0);
  static TxnOp Delete(std::string key);
};

struct TxnRequest {
  std::vector<Compare> compares;  // All must hold for `success` to run.
  std::vector<TxnOp> success;
  std::vector<TxnOp> failure;
};

struct TxnOpResult {
  TxnOp::Kind kind = TxnOp::Kind::kGet;
  std::vector<KeyValue> kvs;  // kGet.
  int64_t deleted = 0;        // kDelete: keys deleted.
};

struct TxnResult {
  bool succeeded = false;  // The compares held; `success` ran.
  int64_t revision = 0;    // The store's revision after the Txn.
  std::vector<TxnOpResult> results;  // One per op of the branch that ran.
};

struct Lease {
  int64_t id = 0;
  absl::Duration ttl;  // As granted (etcd rounds up to whole seconds and
                       // to its minimum TTL).
};

// How EtcdClient reaches the endpoints of EtcdClientOptions::endpoint
// (pure; exposed for tests):
//   - one endpoint: one channel to it, as given (gRPC's DNS resolver for a
//     host name), exactly as before several were supported;
//   - several, all IP literals of one family, plaintext: one channel to the target
//     "ipv4:a:p,b:p" / "ipv6:[a]:p,[b]:p" with round_robin load balancing:
//     gRPC keeps a connection to every member, sends each call or stream
//     to one that is up, and skips one that is down; reads (Range) and
//     LeaseTimeToLive are retried on UNAVAILABLE by gRPC's retry policy
//     (writes are not: a retried Txn could report a compare failure for a
//     Txn that did take effect);
//   - several, some host names: one channel per endpoint, each with gRPC's
//     DNS resolver (so a member whose address changes, as a rescheduled
//     Kubernetes pod's does, is found again), and each call or stream
//     picks a channel that is READY (else one not failing, else the next
//     one). gRPC has no target that names several hosts, and resolving the
//     names once into an ipv4: list would pin addresses that go stale.
//     With TLS (`tls`) IP literals take this path too: a channel checks one
//     name, and each member's certificate names its own address.
// InvalidArgument for an empty list, an empty entry or an entry without a
// port.
struct EtcdChannelPlan {
  std::vector<std::string> targets;  // One channel each.
  bool round_robin = false;          // The ipv4:/ipv6: case.
};
absl::StatusOr<EtcdChannelPlan> PlanEtcdChannels(std::string_view endpoints,
                                                 bool tls = false);

// A connection to one etcd cluster. Thread-safe: calls may run concurrently
// from any thread. Owns a gRPC channel, which connects lazily.
class EtcdClient {
 public:
  explicit EtcdClient(EtcdClientOptions options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  const EtcdClientOptions& options() const { return options_; }

  // The key's current value, std::nullopt if it does not exist.
  // Linearizable read.
  absl::StatusOr<std::optional<KeyValue>> Get(std::string_view key);
  // Every key starting with `prefix` (all keys for ""), sorted, at most
  // `limit` of them (0 = no limit). Linearizable read.
  absl::StatusOr<RangeResult> GetPrefix(std::string_view prefix,
                                        int64_t limit = 0);
  // Sets the key (bound to `lease` unless 0). Returns the new revision.
  // NotFound if the lease does not exist.
  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                              int64_t lease = 0);
  // Deletes the key; returns how many keys were deleted (0 or 1).
  absl::StatusOr<int64_t> Delete(std::string_view key);
  // Deletes every key starting with `prefix`; returns how many.
  // InvalidArgument for an empty prefix (that would be the whole store).
  absl::StatusOr<int64_t> DeletePrefix(std::string_view prefix);
  // Runs the compares and then one branch, atomically. A compare that does
  // not hold is a normal result (succeeded == false), not an error.
  absl::StatusOr<TxnResult> Txn(const TxnRequest& request);
  // Compacts etcd's history up to `revision`: watches can no longer start
  // at or resume from a revision below it (operators and etcd's
  // --auto-compaction do this; tests use it to make watches fall behind).
  // Returns once etcd has applied it. OutOfRange if `revision` is already
  // compacted or in the future.
  absl::Status Compact(int64_t revision);

  // Grants a lease of at least `ttl` (etcd rounds up to whole seconds).
  absl::StatusOr<Lease> LeaseGrant(absl::Duration ttl);
  // Revokes the lease, deleting every key bound to it. NotFound if it does
  // not exist (expired or already revoked).
  absl::Status LeaseRevoke(int64_t id);
  // Renews the lease once (a LeaseKeepAlive exchange on a fresh stream).
  // Returns the TTL it was renewed for. NotFound if the lease is gone.
  absl::StatusOr<absl::Duration> LeaseKeepAliveOnce(int64_t id);
  // The lease's remaining time to live. NotFound if it is gone.
  absl::StatusOr<absl::Duration> LeaseTimeToLive(int64_t id);

  // Blocks until `key` is deleted at a revision after `after_revision`
  // (returns OK; also OK if etcd compacted that history away, so the
  // caller must re-read) or until `deadline` (DeadlineExceeded).
  // Unavailable if the watch stream breaks or etcd cancels the watch: the
  // caller retries. PermissionDenied if the user may not read the key.
  absl::Status WaitForDeletion(std::string_view key, int64_t after_revision,
                               absl::Time deadline);

  // Channels the client uses (1 unless several host names, or several
  // endpoints with TLS, are given).
  size_t channels() const { return stubs_.size(); }
  // Successful Auth.Authenticate calls so far: 0 without authentication,
  // 1 after the first call with it, one more per token renewal.
  int64_t authentications() const;

  // The generated gRPC stubs (defined in the .cc).
  struct Stubs;

 private:
  // The helpers below open their own streams.
  friend class LeaseKeeper;
  friend class Watcher;
  // The stubs of the channel the next call or stream uses (see
  // EtcdChannelPlan).
  Stubs& stubs();

  // Runs one exchange with etcd (a unary call, or a short stream such as
  // one keep-alive or one watch until a deletion): `call` gets the stubs()
  // to use and a context with `deadline` and the token, and returns the
  // exchange's status (FromGrpc). Retried once with a fresh token if etcd
  // no longer accepts the one it carried; any other status is returned.
  absl::Status Unary(
      absl::Time deadline,
      absl::FunctionRef<absl::Status(Stubs&, grpc::ClientContext*)> call);
  // Sets `deadline` (none if InfiniteFuture) and wait-for-ready on `ctx`
  // and adds the token (from Token(), waiting at most until `deadline`, or
  // call_timeout without one); `*token` = the token sent ("" for none).
  // Token()'s errors.
  absl::Status PrepareContext(grpc::ClientContext* ctx, absl::Time deadline,
                              std::string* token);

  // The token to send: "" without authentication (or when etcd has it
  // disabled); authenticates first if there is none. Waits at most until
  // `deadline` (DeadlineExceeded), also for another thread's Authenticate
  // in flight.
  absl::StatusOr<std::string> Token(absl::Time deadline);
  // Forgets `stale` if it is still the current token (so one stale token
  // leads to one Authenticate however many threads saw it refused).
  void DropToken(const std::string& stale);
  bool TokenSettled() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(auth_mu_) {
    return token_.has_value() || !authenticating_;
  }
  // One LeaseKeepAlive exchange on its own stream, within `timeout`.
  absl::StatusOr<absl::Duration> KeepAliveOnce(int64_t id,
                                               absl::Duration timeout);

  const EtcdClientOptions options_;
  std::vector<std::unique_ptr<Stubs>> stubs_;
  std::atomic<size_t> preferred_{0};  // Index into stubs_.

  mutable absl::Mutex auth_mu_;
  // Unset: authenticate before the next call. Set to "": etcd has
  // authentication disabled; send no token.
  std::optional<std::string> token_ ABSL_GUARDED_BY(auth_mu_);
  bool authenticating_ ABSL_GUARDED_BY(auth_mu_) = false;
  int64_t authentications_ ABSL_GUARDED_BY(auth_mu_) = 0;
};

// Keeps one lease alive from a background thread: renews it every TTL/3
// (retrying sooner after a failed renewal) until Stop() or destruction,
// which do not revoke it. If etcd says the lease is gone (expired or
// revoked), or no renewal succeeded for a whole TTL after the last good one
// (so etcd may have expired it), `on_lost` runs once on the keeper's thread
// with NotFound or DeadlineExceeded, and renewals stop.
// Thread-safe. `client` must outlive the keeper.
class LeaseKeeper {
 public:
  using LostCallback = std::function<void(const absl::Status&)>;

  // Starts the thread; the first renewal is due TTL/3 after now.
  LeaseKeeper(EtcdClient* client, Lease lease, LostCallback on_lost);
  ~LeaseKeeper();  // Stop().
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Stops renewing and joins the thread, waiting for a renewal in flight
  // (at most min(call_timeout, TTL/2)). Idempotent. Must not be called from
  // `on_lost`.
  void Stop();
  const Lease& lease() const { return lease_; }
  // Whether on_lost ran.
  bool lost() const;
  // Renewals that succeeded so far.
  int64_t renewals() const;
  // The latest instant until which the lease is known to be alive: the
  // send time of the last successful renewal (or of construction) plus the
  // TTL it was renewed for. A leader must stop acting as one by then.
  absl::Time alive_until() const;

 private:
  void Run();

  EtcdClient* const client_;
  const Lease lease_;
  const LostCallback on_lost_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool lost_ ABSL_GUARDED_BY(mu_) = false;
  int64_t renewals_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time alive_until_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// One change seen by a Watcher.
struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // For kPut the new key-value; for kDelete the key with mod_revision set
  // to the revision of the deletion (value empty).
  KeyValue kv;
};

// Streams every change to the keys starting with a prefix to a callback,
// from a background thread, in revision order, each change exactly once:
// when the stream breaks (etcd restarted, connection lost) it reconnects
// (with backoff, indefinitely) and resumes from the revision after the last
// one delivered. All changes of one revision (one Txn) are delivered
// together, before the next revision's.
//
// If etcd has compacted the revisions it must resume from (the watch was
// disconnected, or started from an old revision, while etcd compacted its
// history), the changes in between are gone and the caller's state built
// from events would stay stale forever. What happens then depends on the
// constructor:
//   - with a ResyncCallback (what every long-lived watch wants): the
//     watcher calls it; the owner re-reads what it watches (one Range read,
//     at one revision R) and returns R; the watch resumes from R + 1. A
//     failing resync is retried with backoff (20 ms doubling to 1 s) until
//     it succeeds or Stop().
//   - with an ErrorCallback: `on_error` runs once with OutOfRange and the
//     watcher stops (for callers that need every change, e.g. a test's
//     history, and must treat a gap as a failure).
// Thread-safe. `client` must outlive the watcher.
class Watcher {
 public:
  using EventCallback = std::function<void(const WatchEvent&)>;
  using ErrorCallback = std::function<void(const absl::Status&)>;
  // Re-reads the watched state; returns the etcd revision it read at.
  using ResyncCallback = std::function<absl::StatusOr<int64_t>()>;

  // Starts watching `prefix` from `start_revision` (inclusive; 0 = changes
  // after the current revision). Callbacks run on the watcher's thread and
  // must not call Stop(). Stops with `on_error` after a compaction.
  Watcher(EtcdClient* client, std::string prefix, int64_t start_revision,
          EventCallback on_event, ErrorCallback on_error);
  // As above, but re-syncs through `resync` after a compaction (see the
  // class comment) and never stops by itself.
  Watcher(EtcdClient* client, std::string prefix, int64_t start_revision,
          EventCallback on_event, ResyncCallback resync);
  ~Watcher();  // Stop().
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Cancels the stream and joins the thread. Idempotent.
  void Stop();
  // The revision the watcher will resume from (last delivered + 1), or 0
  // before it knows (started from 0 and not yet connected).
  int64_t next_revision() const;
  // Streams opened so far (1 once connected; more after breaks).
  int64_t streams_opened() const;
  // Whether the current stream is established (etcd confirmed the watch).
  bool connected() const;
  // Successful resyncs after a compaction so far.
  int64_t resyncs() const;

 private:
  struct Stream;
  enum class StreamEnd { kStopped, kBroken, kCompacted };
  void Run();
  // Runs one stream until it breaks, etcd says its start is compacted
  // (`*compacted` = the reason), or Stop().
  StreamEnd RunStream(absl::Status* compacted);
  // Calls resync_ until it succeeds (sets next_revision_) or Stop();
  // returns false on Stop().
  bool Resync();

  EtcdClient* const client_;
  const std::string prefix_;
  const EventCallback on_event_;
  const ErrorCallback on_error_;  // Set iff resync_ is not.
  const ResyncCallback resync_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_revision_ ABSL_GUARDED_BY(mu_);
  int64_t streams_opened_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t resyncs_ ABSL_GUARDED_BY(mu_) = 0;
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;  // To cancel it.
  std::thread thread_;
};

// An election on one key: the leader is the candidate whose key-value is
// there, bound to its lease (etcd's lease-bound key pattern; etcd's own
// v3election API does the same with one key per candidate). Campaigning
// creates the key with a Txn that requires create_revision == 0, or waits
// for its deletion. Leadership ends when the leader resigns or its lease
// ends (revoked, or expired because keep-alives stopped). The key's
// create_revision is the term: it increases with every new leader, so a
// leader can fence its writes with Compare::CreateRevisionIs(key, term).
// Not thread-safe (one candidate = one thread); `client` must outlive it.
class LeaderElection {
 public:
  // `candidate` is stored as the key's value (who leads).
  // REQUIRES: lease_id names a live lease, kept alive by the caller.
  LeaderElection(EtcdClient* client, std::string key, std::string candidate,
                 int64_t lease_id);

  // Blocks until this candidate leads and returns the term. Also returns
  // at once if the key already holds this candidate's lease (a retried
  // campaign). DeadlineExceeded if `deadline` passes first; NotFound if
  // the lease is gone; other errors as EtcdClient's.
  absl::StatusOr<int64_t> Campaign(absl::Time deadline);
  // Ends this candidate's leadership of `term` by deleting the key if it
  // still holds that term. FailedPrecondition if it does not (another
  // leader, or none).
  absl::Status Resign(int64_t term);
  // The current leader's key-value (value = candidate, create_revision =
  // term). NotFound if there is none.
  absl::StatusOr<KeyValue> Leader();

 private:
  EtcdClient* const client_;
  const std::string key_;
  const std::string candidate_;
  const int64_t lease_id_;
};

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_ETCD_CLIENT_H_
