#ifndef STRATA_SERVER_LIMITS_H_
#define STRATA_SERVER_LIMITS_H_

// The request limits every RPC is held to (--max_key_bytes and friends) and
// their checks that do not depend on a method: the limits' own consistency
// and the serialized size of a request. The call machinery (async_call.h)
// checks the size of every request; the per-method rules live in
// handlers.h.
//
// Thread safety: plain values and pure functions; any thread.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

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

// The byte budget of requests in progress (--max_inflight_bytes): the
// serialized bytes of every request the server has received and not yet
// answered, all methods together, including writes waiting in the
// engine's write queue. A count cap alone (--max_inflight_rpcs) lets 4,096
// Puts of 16 MiB each pile up; this bounds their bytes. A request that
// would take the total past the limit is refused at once with
// RESOURCE_EXHAUSTED naming the flag (it never waits: waiting would hold a
// completion-queue thread; clients retry with backoff). gRPC's
// ResourceQuota (--transport_memory_bytes) bounds the bytes still in the
// transport, before a request reaches this count.
//
// Thread safety: Acquire and Release are lock-free and safe from any
// thread.
class InflightBytes {
 public:
  // `limit` 0 = unlimited (nothing is counted). `flag` names the limit in
  // the refusal and must have static storage (a literal).
  InflightBytes(uint64_t limit, std::string_view flag)
      : limit_(limit), flag_(flag) {}
  InflightBytes(const InflightBytes&) = delete;
  InflightBytes& operator=(const InflightBytes&) = delete;

  // Takes `bytes` from the budget: OK, or RESOURCE_EXHAUSTED ("requests in
  // progress hold N bytes; this request of R bytes would pass the limit of
  // L (--max_inflight_bytes)") and nothing is taken. Each OK must be
  // matched by one Release(bytes).
  absl::Status Acquire(uint64_t bytes);
  void Release(uint64_t bytes);

  uint64_t limit() const { return limit_; }
  // Bytes held now (racy snapshot, for metrics and tests).
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }

 private:
  const uint64_t limit_;
  const std::string_view flag_;
  alignas(64) std::atomic<uint64_t> used_{0};
};

// InvalidArgument unless `max_inflight_bytes` is 0 (unlimited) or at least
// limits.max_message_bytes (a largest request must be admissible).
absl::Status ValidateInflightBytes(uint64_t max_inflight_bytes,
                                   const Limits& limits);

}  // namespace strata::server

#endif  // STRATA_SERVER_LIMITS_H_
