#ifndef STRATA_SERVER_TYPED_VALUES_H_
#define STRATA_SERVER_TYPED_VALUES_H_

// Typed values (docs/values.md): what each strata.v1.ValueType accepts, the
// form it is stored in, and the JSON operations (JSON Pointer, Merge Patch,
// JSON Patch). The parsing is nlohmann-json's (Debian nlohmann-json3-dev);
// its exceptions never leave this file: every function here returns a
// Status. No gRPC types, so the rules are unit-tested without a server
// (tests/server/typed_values_test.cc).
//
// How a type is stored: storage::PutAttributes::value_type holds the wire
// number of the strata.v1.ValueType (BYTES = 0 is "no attribute"), so the
// number is part of the on-disk format: never change or reuse one.
//
// Thread safety: every function is pure and may be called from any thread;
// a JsonUpdatePatch is immutable after Parse and may be shared.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"
#include "strata/storage/key_metadata.h"
#include "strata/v1/kv.pb.h"

namespace strata::server {

// The most levels of nesting (arrays and objects) a JSON value, a merge
// patch or a patched document may have: "[]" is 1, "[[1]]" is 2. As
// RedisJSON's limit; it bounds the recursion of every JSON operation.
inline constexpr int kMaxJsonDepth = 128;

// "BYTES", "TEXT", "INT64", "JSON", or "type 7" for a number this server
// does not know (a newer server's).
std::string TypeName(int type);

// The wire type of a stored key (its PutAttributes::value_type).
inline v1::ValueType TypeOf(const storage::KeyMetadata& metadata) {
  return static_cast<v1::ValueType>(metadata.attributes.value_type);
}

// Checks `value` against `type` and returns the bytes to store: `value`
// itself for BYTES, TEXT and INT64, or its normalized form for JSON, which
// is written to *storage (the returned view points into it). InvalidArgument
// naming the problem ("value is not valid UTF-8: ...", "value is not an
// INT64: ...", "value is not valid JSON: ...") for a value that is not of
// its type or a type number this server does not know. The caller checks
// the returned size against --max_value_bytes (normalizing can make a JSON
// text slightly longer: 1e2 is stored as 100.0).
absl::StatusOr<std::string_view> PrepareTypedValue(int type,
                                                   std::string_view value,
                                                   std::string* storage);

// PrepareTypedValue for a put: also records the type in *attributes (left
// as they are for BYTES, whose value is stored as given). The one place a
// put's value becomes its stored form: Put and Write, their expiry path and
// a Txn's own reads all call it. Same errors; thread-safe (no state).
absl::StatusOr<std::string_view> PrepareTypedPut(
    int type, std::string_view value, std::string* storage,
    storage::PutAttributes* attributes);

// OK if `text` is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF; NUL is allowed); else InvalidArgument
// "<what> is not valid UTF-8: ..." with the offset of the first bad byte.
absl::Status CheckUtf8(std::string_view text, std::string_view what = "value");

// The INT64 text form: "-"? ("0" | [1-9][0-9]*) within
// [-9223372036854775808, 9223372036854775807] ("-0" is not allowed), as
// Redis accepts for INCR. InvalidArgument "<what> is not an INT64: ..."
// otherwise.
absl::StatusOr<int64_t> ParseInt64(std::string_view text,
                                   std::string_view what = "value");
// The INT64 text form of `value`.
std::string FormatInt64(int64_t value);

// Parses a JSON text (RFC 8259) and returns its normalized form: no
// insignificant whitespace, object members sorted by name (bytewise),
// strings with only the escapes JSON requires, integers as integers and
// other numbers in their shortest round-trip form. InvalidArgument "<what>
// is not valid JSON: ..." (with the line and column) for a syntax error,
// more than kMaxJsonDepth levels, a duplicate member name in an object, or
// a number too large for a double (1e400). Integers outside
// [-2^63, 2^64) are kept as the nearest double.
absl::StatusOr<std::string> NormalizeJson(std::string_view text,
                                          std::string_view what = "value");

// OK if `pointer` is a well-formed JSON Pointer (RFC 6901): empty, or
// "/"-separated tokens in which '~' is followed by 0 or 1. InvalidArgument
// otherwise.
absl::Status CheckJsonPointer(std::string_view pointer);

// The normalized JSON text of the value at `pointer` (RFC 6901) in
// `document` (a stored, normalized JSON value). "" is the whole document
// (returned as is, without parsing). InvalidArgument for a malformed
// pointer (not starting with '/', "~" not followed by 0 or 1); NotFound
// "pointer ... does not resolve: ..." naming the part that is missing;
// DataLoss if `document` does not parse.
absl::StatusOr<std::string> JsonAtPointer(std::string_view document,
                                          std::string_view pointer);

// A JsonUpdateRequest's patch, checked and parsed once (on a polling
// thread, before the write) so that applying it at commit time only does
// the work that depends on the document.
class JsonUpdatePatch {
 public:
  // InvalidArgument if the request has no patch, the patch is not valid
  // JSON (as NormalizeJson), or a JSON Patch is not an array of operations
  // each with a known "op", a well-formed "path" (and "from" for move and
  // copy) and a "value" for add, replace and test; or a JSON Patch removes
  // the whole document (path "").
  static absl::StatusOr<JsonUpdatePatch> Parse(
      const v1::JsonUpdateRequest& request);

  // Applies the patch to `document` (a stored, normalized JSON value) and
  // returns the new document, normalized. A Merge Patch always applies. A
  // JSON Patch applies all its operations in order or none:
  // FailedPrecondition "operation N (op path): ..." for a "test" that
  // fails or a path that does not exist in the document at that point (or
  // whose parent is not an object or array). InvalidArgument if the result
  // nests more than kMaxJsonDepth levels; DataLoss if `document` does not
  // parse.
  absl::StatusOr<std::string> Apply(std::string_view document) const;

  bool is_merge_patch() const { return merge_; }

 private:
  JsonUpdatePatch(bool merge, std::shared_ptr<const nlohmann::json> patch)
      : merge_(merge), patch_(std::move(patch)) {}

  bool merge_ = true;
  // Shared: copies (e.g. in a std::function) cost a reference count.
  std::shared_ptr<const nlohmann::json> patch_;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_TYPED_VALUES_H_
