#ifndef STRATA_SERVER_CREDENTIALS_H_
#define STRATA_SERVER_CREDENTIALS_H_

#include <memory>

#include "grpcpp/security/server_credentials.h"
#include "server/server_options.h"

namespace strata::server {

// The listening socket's credentials. The only place that decides between
// plaintext and TLS: today always plaintext (insecure); TLS options in
// ServerOptions will be turned into SslServerCredentials here.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const ServerOptions& options);

}  // namespace strata::server

#endif  // STRATA_SERVER_CREDENTIALS_H_
