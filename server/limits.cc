#include "server/limits.h"

#include <string>

#include "absl/strings/str_format.h"

namespace strata::server {

absl::Status ValidateLimits(const Limits& limits) {
  if (limits.max_key_bytes == 0) {
    return absl::InvalidArgumentError("--max_key_bytes must be at least 1");
  }
  if (limits.max_message_bytes == 0) {
    return absl::InvalidArgumentError("--max_message_bytes must be at least 1");
  }
  if (limits.max_batch_mutations == 0) {
    return absl::InvalidArgumentError(
        "--max_batch_mutations must be at least 1");
  }
  // gRPC's receive limit is an int set to twice the message limit.
  if (limits.max_message_bytes > (size_t{1} << 30)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--max_message_bytes=%d is above the maximum of 1 GiB",
                        limits.max_message_bytes));
  }
  // A Put of a maximal key and value must fit in one request (plus a few
  // bytes of protobuf framing).
  if (limits.max_key_bytes + limits.max_value_bytes + 32 >
      limits.max_message_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--max_key_bytes (%d) + --max_value_bytes (%d) must fit in "
        "--max_message_bytes (%d)",
        limits.max_key_bytes, limits.max_value_bytes,
        limits.max_message_bytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequestSize(size_t bytes, const Limits& limits) {
  if (bytes <= limits.max_message_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "request is %d bytes; the limit is %d (--max_message_bytes)", bytes,
      limits.max_message_bytes));
}

absl::Status InflightBytes::Acquire(uint64_t bytes) {
  if (limit_ == 0) return absl::OkStatus();
  // A compare-and-swap loop, so the count never passes the limit even for
  // a moment (a refused request takes nothing).
  uint64_t before = used_.load(std::memory_order_relaxed);
  while (before + bytes <= limit_) {
    if (used_.compare_exchange_weak(before, before + bytes,
                                    std::memory_order_relaxed)) {
      return absl::OkStatus();
    }
  }
  return absl::ResourceExhaustedError(absl::StrFormat(
      "requests in progress hold %d bytes; this request of %d bytes would "
      "pass the limit of %d (%s)",
      before, bytes, limit_, std::string(flag_)));
}

void InflightBytes::Release(uint64_t bytes) {
  if (limit_ == 0) return;
  used_.fetch_sub(bytes, std::memory_order_relaxed);
}

absl::Status ValidateInflightBytes(uint64_t max_inflight_bytes,
                                   const Limits& limits) {
  if (max_inflight_bytes == 0 ||
      max_inflight_bytes >= limits.max_message_bytes) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "--max_inflight_bytes (%d) must be 0 (unlimited) or at least "
      "--max_message_bytes (%d)",
      max_inflight_bytes, limits.max_message_bytes));
}

}  // namespace strata::server
