#ifndef STRATA_CLIENT_STRATA_CLIENT_H_
#define STRATA_CLIENT_STRATA_CLIENT_H_

// strata::Client: a C++ client of one Strata storage node (strata.v1.KV over
// gRPC). The `strata` CLI is built on it.
//
// Errors: every method returns absl::Status / absl::StatusOr whose code and
// message are the gRPC status the server (or the transport) returned:
//   INVALID_ARGUMENT    a request broke a server limit (empty or too long
//                       key, too large value, too many mutations, request
//                       too large); nothing was written.
//   UNAVAILABLE         the server is not reachable (not running, wrong
//                       address) or is shutting down.
//   DEADLINE_EXCEEDED   the RPC took longer than ClientOptions::timeout.
//   RESOURCE_EXHAUSTED  a message above gRPC's size limits, or the server's
//                       in-flight cap was hit.
//   DATA_LOSS, INTERNAL ... passed through from the engine.
// No exceptions are thrown.

#include <cstdint>
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
  // whole stream. Must be positive.
  absl::Duration timeout = absl::Seconds(10);
  // Transport security: std::nullopt = plaintext; otherwise TLS. Only the
  // channel-credentials function in strata_client.cc reads it. A server
  // that refuses the handshake (plaintext server, untrusted certificate,
  // wrong name, missing or rejected client certificate) makes every RPC
  // fail with UNAVAILABLE.
  std::optional<ClientTlsOptions> tls;
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

  // Sets key to value. OK means the write is durable (per the server's
  // --wal_sync).
  absl::Status Put(std::string_view key, std::string_view value);

  // Removes key; OK if it did not exist.
  absl::Status Delete(std::string_view key);

  // Applies every mutation atomically and in order (later mutations of the
  // same key win). An empty vector is a no-op. INVALID_ARGUMENT (and
  // nothing written) if any mutation breaks a limit.
  absl::Status Write(const std::vector<Mutation>& mutations);

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
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<Stubs> stubs_;
};

}  // namespace strata

#endif  // STRATA_CLIENT_STRATA_CLIENT_H_
