#ifndef STRATA_SERVER_STATUS_UTIL_H_
#define STRATA_SERVER_STATUS_UTIL_H_

// The one conversion from the engine's absl::Status to the wire's
// grpc::Status. Both use the canonical code numbering, so the code is kept
// as is and the message is copied.

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace strata::server {

// Same code, same message. Thread-safe (pure).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace strata::server

#endif  // STRATA_SERVER_STATUS_UTIL_H_
