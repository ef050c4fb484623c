#include "server/typed_ops.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "server/handlers.h"

namespace strata::server {
namespace {

// FailedPrecondition: the key holds `stored`, not `want`.
absl::Status WrongType(const storage::KeyMetadata& metadata,
                       v1::ValueType want, std::string_view operation) {
  return absl::FailedPreconditionError(
      absl::StrFormat("%s: the key holds a %s value, not %s", operation,
                      TypeName(TypeOf(metadata)), TypeName(want)));
}

// The attributes a read-modify-write keeps: the key's expiry and lease,
// with the new type.
storage::PutAttributes KeptAttributes(const std::optional<StoredValue>& current,
                                      v1::ValueType type) {
  storage::PutAttributes a;
  if (current.has_value()) a = current->metadata.attributes;
  a.value_type = static_cast<uint8_t>(type);
  return a;
}

}  // namespace

absl::StatusOr<std::optional<StoredValue>> ReadForUpdate(
    storage::CommitView* view, std::string_view stored_key) {
  StoredValue stored;
  absl::Status s = view->Get(stored_key, &stored.value, &stored.metadata);
  if (absl::IsNotFound(s)) return std::optional<StoredValue>();
  if (!s.ok()) return s;
  return std::optional<StoredValue>(std::move(stored));
}

absl::StatusOr<int64_t> StoredInt64(std::string_view value,
                                    const storage::KeyMetadata& metadata) {
  if (TypeOf(metadata) != v1::INT64) {
    return WrongType(metadata, v1::INT64, "a numeric comparison");
  }
  absl::StatusOr<int64_t> n = ParseInt64(value, "stored value");
  if (!n.ok()) return absl::DataLossError(n.status().message());
  return n;
}

absl::Status ValidateIncrement(const v1::IncrementRequest& request,
                               const Limits& limits) {
  if (absl::Status s = ValidateKey(request.key(), limits); !s.ok()) return s;
  if (request.ttl_ms() < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ttl_ms is %d; it must be >= 0 (0 = keep the key's expiry)",
        request.ttl_ms()));
  }
  return absl::OkStatus();
}

absl::StatusOr<IncrementResult> ComputeIncrement(
    const std::optional<StoredValue>& current,
    const v1::IncrementRequest& request, uint64_t now_unix_ms) {
  int64_t before = 0;
  if (current.has_value()) {
    if (TypeOf(current->metadata) != v1::INT64) {
      return WrongType(current->metadata, v1::INT64, "Increment");
    }
    absl::StatusOr<int64_t> n = StoredInt64(*current);
    if (!n.ok()) return n.status();
    before = *n;
  } else if (request.must_exist()) {
    return absl::NotFoundError("key not found (must_exist is set)");
  }
  IncrementResult result;
  if (__builtin_add_overflow(before, request.delta(), &result.value)) {
    return absl::OutOfRangeError(absl::StrFormat(
        "incrementing %d by %d overflows int64; nothing was written", before,
        request.delta()));
  }
  result.put.value = FormatInt64(result.value);
  result.put.attributes = KeptAttributes(current, v1::INT64);
  if (request.ttl_ms() > 0) {
    result.put.attributes.expire_at_unix_ms =
        now_unix_ms + static_cast<uint64_t>(request.ttl_ms());
  }
  return result;
}

absl::StatusOr<IncrementResult> IncrementAt(
    storage::CommitView* view, std::string_view stored_key,
    const v1::IncrementRequest& request) {
  absl::StatusOr<std::optional<StoredValue>> current =
      ReadForUpdate(view, stored_key);
  if (!current.ok()) return current.status();
  return ComputeIncrement(*current, request, view->now_unix_ms());
}

absl::Status ValidateJsonGet(const v1::JsonGetRequest& request,
                             const Limits& limits) {
  if (absl::Status s = ValidateKey(request.key(), limits); !s.ok()) return s;
  return CheckJsonPointer(request.pointer());
}

absl::StatusOr<std::string> ComputeJsonGet(
    const std::optional<StoredValue>& current,
    const v1::JsonGetRequest& request) {
  if (!current.has_value()) return absl::NotFoundError("key not found");
  if (TypeOf(current->metadata) != v1::JSON) {
    return WrongType(current->metadata, v1::JSON, "JsonGet");
  }
  return JsonAtPointer(current->value, request.pointer());
}

absl::StatusOr<JsonUpdatePatch> PrepareJsonUpdate(
    const v1::JsonUpdateRequest& request, const Limits& limits) {
  if (absl::Status s = ValidateKey(request.key(), limits); !s.ok()) return s;
  return JsonUpdatePatch::Parse(request);
}

absl::StatusOr<TypedPut> ComputeJsonUpdate(
    const std::optional<StoredValue>& current, const JsonUpdatePatch& patch,
    const Limits& limits) {
  if (!current.has_value()) {
    return absl::NotFoundError(
        "key not found; create the document with Put (type JSON) first");
  }
  if (TypeOf(current->metadata) != v1::JSON) {
    return WrongType(current->metadata, v1::JSON, "JsonUpdate");
  }
  absl::StatusOr<std::string> document = patch.Apply(current->value);
  if (!document.ok()) return document.status();
  if (document->size() > limits.max_value_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the patched document would be %d bytes; the limit is %d "
        "(--max_value_bytes); nothing was written",
        document->size(), limits.max_value_bytes));
  }
  TypedPut put;
  put.value = *std::move(document);
  put.attributes = KeptAttributes(current, v1::JSON);
  return put;
}

absl::StatusOr<TypedPut> JsonUpdateAt(storage::CommitView* view,
                                      std::string_view stored_key,
                                      const JsonUpdatePatch& patch,
                                      const Limits& limits) {
  absl::StatusOr<std::optional<StoredValue>> current =
      ReadForUpdate(view, stored_key);
  if (!current.ok()) return current.status();
  return ComputeJsonUpdate(*current, patch, limits);
}

}  // namespace strata::server
