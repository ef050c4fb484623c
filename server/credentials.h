#ifndef STRATA_SERVER_CREDENTIALS_H_
#define STRATA_SERVER_CREDENTIALS_H_

// Transport security of the listening port: the one place that decides
// between plaintext, TLS and mutual TLS (docs/security.md).

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "server/server_options.h"

namespace strata::server {

// What ValidateServerTls found in the serving certificate, for the start-up
// log.
struct ServerTlsSummary {
  std::string subject;    // Leaf certificate subject, e.g. "CN=strata".
  std::string not_after;  // Leaf expiry, e.g. "Jan  1 00:00:00 2030 GMT".
  bool expired = false;   // Leaf expired or not yet valid at check time.
  int chain_length = 0;   // Certificates in cert_file (leaf included).
  int client_cas = 0;     // Certificates in client_ca_file (0 if unset).
};

// Reads and checks the files named by `tls` the way the TLS handshake will
// use them: cert_file holds at least one PEM certificate, key_file an
// unencrypted PEM private key that matches the first certificate, and
// client_ca_file (if set) at least one PEM certificate. Returns
// InvalidArgument naming the flag (--tls_cert, --tls_key, --tls_client_ca)
// and the file when a file is unreadable or wrong, or when the options are
// inconsistent (only one of cert_file/key_file, client_ca_file without
// them, a negative reload interval). REQUIRES: tls.enabled().
// Thread-safe.
absl::StatusOr<ServerTlsSummary> ValidateServerTls(const ServerTlsOptions& tls);

// The credentials for options.listen, from options.tls:
//   - TLS disabled: plaintext (grpc::InsecureServerCredentials).
//   - reload_interval > 0: TLS through gRPC's TlsServerCredentials with a
//     FileWatcherCertificateProvider, which re-reads the files every
//     interval; new connections get the new certificate (and client CA
//     bundle) without a restart.
//   - reload_interval == 0: grpc::SslServerCredentials with the files as
//     read now.
// With client_ca_file set, clients must present a certificate signed by one
// of those CAs (REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
// otherwise no client certificate is requested. The files are validated
// first (ValidateServerTls): its errors are returned unchanged, and the
// result is logged (subject, expiry; a warning if expired). Thread-safe.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& options);

// The credentials a cluster node dials the other nodes with (replication,
// checkpoints, forwarding; docs/cluster.md "Transport security"), from the
// node's own serving options `tls` and `peer_ca_file` (--cluster_tls_ca):
//   - TLS disabled: plaintext (grpc::InsecureChannelCredentials); the
//     nodes serve plaintext too.
//   - TLS enabled: TLS, verifying the peer's certificate chain against
//     `peer_ca_file` (or, if that is empty, tls.client_ca_file) and its
//     name against the address dialed (a node's --advertise_address must
//     be one of its certificate's SANs); the node presents its own
//     certificate (tls.cert_file/key_file) as its client certificate,
//     which peers serving mutual TLS require (it needs EKU clientAuth, or
//     no EKU). With reload_interval > 0 the files are re-read every
//     interval (gRPC's FileWatcherCertificateProvider), as the server's.
// InvalidArgument naming the flag when TLS is enabled without a CA to
// verify peers with, or a file cannot be read; ValidateServerTls's errors
// for the node's own files. Thread-safe.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeNodeChannelCredentials(const ServerTlsOptions& tls,
                           const std::string& peer_ca_file);

// True if a "host:port" listen address can only be reached from this
// machine: host 127.0.0.0/8, ::1 (also as [::1] or IPv4-mapped), localhost,
// or a unix: / unix-abstract: socket. False for every other host, including
// empty, 0.0.0.0, [::] and host names (which may resolve anywhere).
bool IsLoopbackListenAddress(std::string_view listen);

}  // namespace strata::server

#endif  // STRATA_SERVER_CREDENTIALS_H_
