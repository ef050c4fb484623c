#include "server/limits.h"

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

}  // namespace strata::server
