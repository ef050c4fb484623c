#include "server/credentials.h"

namespace strata::server {

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const ServerOptions& /*options*/) {
  return grpc::InsecureServerCredentials();
}

}  // namespace strata::server
