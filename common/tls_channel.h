#ifndef STRATA_COMMON_TLS_CHANNEL_H_
#define STRATA_COMMON_TLS_CHANNEL_H_

// TLS channel credentials whose files gRPC re-reads on a timer, shared by
// the node-to-node channels (server/credentials.h) and the etcd client
// (cluster/etcd_client.h).

#include <memory>
#include <string>

#include "grpcpp/security/credentials.h"

namespace strata {

// TLS credentials that verify the server's chain against the PEM CA bundle
// `ca_file` and its name against the name dialed (gRPC's
// HostNameCertificateVerifier), presenting `cert_file`/`key_file` (PEM) as
// the client certificate unless both are empty. gRPC's
// FileWatcherCertificateProvider reads the files when a connection is made
// and again every `refresh_seconds` (at least 1), so a rotated file applies
// to new connections; a file it cannot read fails the handshake
// (UNAVAILABLE on the calls) rather than this function, so callers check
// the files first. Never fails; thread-safe.
std::shared_ptr<grpc::ChannelCredentials> FileWatcherTlsChannelCredentials(
    const std::string& ca_file, const std::string& cert_file,
    const std::string& key_file, unsigned int refresh_seconds);

}  // namespace strata

#endif  // STRATA_COMMON_TLS_CHANNEL_H_
