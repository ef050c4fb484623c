#ifndef STRATA_SERVER_LIMITS_H_
#define STRATA_SERVER_LIMITS_H_

// The request limits every RPC is held to (--max_key_bytes and friends) and
// their checks that do not depend on a method: the limits' own consistency
// and the serialized size of a request. The call machinery (async_call.h)
// checks the size of every request; the per-method rules live in
// handlers.h.
//
// Thread safety: plain values and pure functions; any thread.

#include <cstddef>

#include "absl/status/status.h"

namespace strata::server {

// Request limits. Every violation is InvalidArgument with a message that
// names the limit and its flag, and nothing is written.
struct Limits {
  // Keys are 1..max_key_bytes bytes (--max_key_bytes).
  size_t max_key_bytes = 8192;
  // Values are 0..max_value_bytes bytes (--max_value_bytes). The default
  // 2 MiB lets any gRPC client with the default 4 MiB receive limit read
  // every value.
  size_t max_value_bytes = 2u << 20;
  // Serialized request messages are at most this many bytes
  // (--max_message_bytes). gRPC itself rejects messages above twice this
  // with RESOURCE_EXHAUSTED before they reach a handler.
  size_t max_message_bytes = 16u << 20;
  // A Write carries at most this many mutations (--max_batch_mutations).
  size_t max_batch_mutations = 10000;
};

// Returns InvalidArgument if the limits are inconsistent (a zero limit, or
// a maximal Put that would not fit in max_message_bytes); OK otherwise.
absl::Status ValidateLimits(const Limits& limits);

// InvalidArgument if a serialized request of `bytes` bytes exceeds
// limits.max_message_bytes.
absl::Status ValidateRequestSize(size_t bytes, const Limits& limits);

}  // namespace strata::server

#endif  // STRATA_SERVER_LIMITS_H_
