#include "server/typed_values.h"

#include <charconv>
#include <cmath>
#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace strata::server {
namespace {

using Json = nlohmann::json;

// Longest excerpt of the input or of a library message in an error.
constexpr size_t kMaxShown = 160;

// `s` for an error message: printable ASCII kept, other bytes as \xNN,
// cut at kMaxShown characters.
std::string Shown(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= kMaxShown) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    }
  }
  return out;
}

// A library exception's message without its "[json.exception.x.N] "
// prefix.
std::string LibraryMessage(const std::exception& e) {
  std::string_view m = e.what();
  if (!m.empty() && m.front() == '[') {
    const size_t end = m.find("] ");
    if (end != std::string_view::npos) m.remove_prefix(end + 2);
  }
  return Shown(m);
}

// Thrown by the parse callback to stop at a limit; caught in ParseJson.
struct JsonLimitError {
  std::string message;
};

// Parses `text` with the limits of NormalizeJson.
absl::StatusOr<Json> ParseJson(std::string_view text, std::string_view what) {
  // Per open object, the member names read so far: an object that ends
  // with fewer members had a duplicate (the library keeps the last one).
  std::vector<size_t> names;
  auto callback = [&names](int depth, Json::parse_event_t event,
                           Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        // `depth` counts the containers around this one.
        if (depth >= kMaxJsonDepth) {
          throw JsonLimitError{absl::StrFormat(
              "nests more than %d levels of arrays and objects",
              kMaxJsonDepth)};
        }
        if (event == Json::parse_event_t::object_start) names.push_back(0);
        break;
      case Json::parse_event_t::key:
        names.back()++;
        break;
      case Json::parse_event_t::object_end:
        if (parsed.size() != names.back()) {
          throw JsonLimitError{absl::StrFormat(
              "an object at depth %d has a duplicate member name (names must "
              "be unique)",
              depth + 1)};
        }
        names.pop_back();
        break;
      case Json::parse_event_t::value:
        if (parsed.is_number_float() &&
            !std::isfinite(parsed.get<double>())) {
          throw JsonLimitError{"a number is too large for a double"};
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), callback,
                       /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const JsonLimitError& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is not valid JSON: %s", what, e.message));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is not valid JSON: %s", what, LibraryMessage(e)));
  }
}

// Normalized text of a parsed value. The library only throws here for
// strings that are not UTF-8, which parsing already rejected.
absl::StatusOr<std::string> Dump(const Json& j) {
  try {
    return j.dump();
  } catch (const Json::exception& e) {
    return absl::InternalError("cannot serialize JSON: " + LibraryMessage(e));
  }
}

// Levels of arrays and objects in j. Recursion is bounded: every input has
// at most kMaxJsonDepth levels and an operation at most doubles that.
int Depth(const Json& j) {
  if (!j.is_structured()) return 0;
  int deepest = 0;
  for (const Json& child : j) deepest = std::max(deepest, Depth(child));
  return deepest + 1;
}

// A stored document. It was normalized when written, so a failure is
// corruption.
absl::StatusOr<Json> ParseStored(std::string_view document) {
  absl::StatusOr<Json> j = ParseJson(document, "stored document");
  if (!j.ok()) return absl::DataLossError(j.status().message());
  return j;
}

// A JSON Pointer, or InvalidArgument naming `what` ("pointer", "path").
absl::StatusOr<Json::json_pointer> MakePointer(std::string_view text,
                                               std::string_view what) {
  try {
    return Json::json_pointer(std::string(text));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s \"%s\" is not a JSON Pointer (RFC 6901): %s", what, Shown(text),
        LibraryMessage(e)));
  }
}

// The value at ptr, or nullptr if it does not exist (message in *why).
const Json* Find(const Json& doc, const Json::json_pointer& ptr,
                 std::string* why) {
  try {
    return &doc.at(ptr);
  } catch (const Json::exception& e) {
    *why = LibraryMessage(e);
    return nullptr;
  }
}

const std::string* StringMember(const Json& op, const char* name) {
  auto it = op.find(name);
  if (it == op.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

// Checks one JSON Patch operation's shape (RFC 6902 section 4).
absl::Status CheckPatchOperation(const Json& op, size_t index) {
  auto error = [index](const std::string& message) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "json_patch operation %d %s (RFC 6902)", index, message));
  };
  if (!op.is_object()) return error("is not an object");
  const std::string* name = StringMember(op, "op");
  if (name == nullptr) return error("has no string member \"op\"");
  const std::string& o = *name;
  if (o != "add" && o != "remove" && o != "replace" && o != "move" &&
      o != "copy" && o != "test") {
    return error(absl::StrFormat(
        "has op \"%s\"; it must be add, remove, replace, move, copy or test",
        Shown(o)));
  }
  const std::string* path = StringMember(op, "path");
  if (path == nullptr) return error("has no string member \"path\"");
  if (auto p = MakePointer(*path, "path"); !p.ok()) {
    return error(std::string(p.status().message()));
  }
  if (o == "remove" && path->empty()) {
    return error("removes the whole document (path \"\")");
  }
  if (o == "move" || o == "copy") {
    const std::string* from = StringMember(op, "from");
    if (from == nullptr) return error("has no string member \"from\"");
    if (auto p = MakePointer(*from, "from"); !p.ok()) {
      return error(std::string(p.status().message()));
    }
    if (o == "move" && from->empty() && !path->empty()) {
      return error("moves the whole document into itself");
    }
  }
  if ((o == "add" || o == "replace" || o == "test") && !op.contains("value")) {
    return error("has no member \"value\"");
  }
  return absl::OkStatus();
}

// RFC 6902 requires what the library does not check before an add (of
// add, move and copy) at a non-root path: the parent exists and is an
// object or an array (the library would turn a null parent into an object
// and assert on a scalar one). And a remove's target must exist (the
// library silently ignores one below a scalar).
absl::Status CheckTargets(const Json& doc, const Json& op) {
  // Both members were checked (CheckPatchOperation).
  const std::string& name = op.at("op").get_ref<const std::string&>();
  const Json::json_pointer path(op.at("path").get<std::string>());
  std::string why;
  if (name == "remove" && Find(doc, path, &why) == nullptr) {
    return absl::FailedPreconditionError(why);
  }
  if ((name == "add" || name == "move" || name == "copy") && !path.empty()) {
    const Json* parent = Find(doc, path.parent_pointer(), &why);
    if (parent == nullptr) {
      return absl::FailedPreconditionError("its parent does not exist: " + why);
    }
    if (!parent->is_object() && !parent->is_array()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "its parent is a %s, not an object or array", parent->type_name()));
    }
  }
  return absl::OkStatus();
}

// Applies a checked JSON Patch to doc, one operation at a time (so a
// failure names its operation). doc is a scratch copy: on error the caller
// drops it, so nothing is half-applied.
absl::Status ApplyJsonPatch(const Json& patch, Json* doc) {
  for (size_t i = 0; i < patch.size(); ++i) {
    const Json& op = patch[i];
    absl::Status s = CheckTargets(*doc, op);
    if (s.ok()) {
      try {
        doc->patch_inplace(Json::array({op}));
      } catch (const Json::other_error&) {
        s = absl::FailedPreconditionError(
            "test failed: the value there is different or missing");
      } catch (const Json::exception& e) {
        s = absl::FailedPreconditionError(LibraryMessage(e));
      }
    }
    if (!s.ok()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "json_patch operation %d (%s %s) does not apply: %s; nothing was "
          "written",
          i, op.at("op").get<std::string>(),
          Shown(op.at("path").get<std::string>()),
          s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string TypeName(int type) {
  if (v1::ValueType_IsValid(type)) {
    return v1::ValueType_Name(static_cast<v1::ValueType>(type));
  }
  return absl::StrFormat("type %d", type);
}

absl::Status CheckUtf8(std::string_view text, std::string_view what) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    // Sequence length and the range of the second byte (RFC 3629 table).
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // No overlong forms.
      if (c == 0xed) hi = 0x9f;  // No surrogates.
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // No overlong forms.
      if (c == 0xf4) hi = 0x8f;  // Nothing above U+10FFFF.
    }
    bool ok = len != 0 && i + len <= n && p[i + 1] >= lo && p[i + 1] <= hi;
    for (size_t k = 2; ok && k < len; ++k) {
      ok = p[i + k] >= 0x80 && p[i + k] <= 0xbf;
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s is not valid UTF-8: bad byte sequence at offset %d "
          "(byte 0x%02x)",
          what, i, c));
    }
    i += len;
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ParseInt64(std::string_view text,
                                   std::string_view what) {
  auto error = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s is not an INT64: \"%s\" %s (the decimal text of a signed 64-bit "
        "integer: -9223372036854775808..9223372036854775807, no '+', spaces "
        "or leading zeros)",
        what, Shown(text), why));
  };
  std::string_view digits = text;
  const bool negative = !digits.empty() && digits.front() == '-';
  if (negative) digits.remove_prefix(1);
  if (digits.empty()) return error("has no digits");
  for (char c : digits) {
    if (c < '0' || c > '9') return error("is not a decimal integer");
  }
  if (digits.size() > 1 && digits.front() == '0') {
    return error("has a leading zero");
  }
  if (negative && digits == "0") return error("is a negative zero");
  int64_t value = 0;
  const auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) {
    return error("is out of the int64 range");
  }
  if (ec != std::errc() || end != text.data() + text.size()) {
    return error("is not a decimal integer");
  }
  return value;
}

std::string FormatInt64(int64_t value) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, end);
}

absl::StatusOr<std::string> NormalizeJson(std::string_view text,
                                          std::string_view what) {
  absl::StatusOr<Json> j = ParseJson(text, what);
  if (!j.ok()) return j.status();
  return Dump(*j);
}

absl::StatusOr<std::string_view> PrepareTypedPut(
    int type, std::string_view value, std::string* storage,
    storage::PutAttributes* attributes) {
  if (type == v1::BYTES) return value;
  absl::StatusOr<std::string_view> stored =
      PrepareTypedValue(type, value, storage);
  if (stored.ok()) attributes->value_type = static_cast<uint8_t>(type);
  return stored;
}

absl::StatusOr<std::string_view> PrepareTypedValue(int type,
                                                   std::string_view value,
                                                   std::string* storage) {
  switch (type) {
    case v1::BYTES:
      return value;
    case v1::TEXT:
      if (absl::Status s = CheckUtf8(value); !s.ok()) return s;
      return value;
    case v1::INT64:
      if (absl::Status s = ParseInt64(value).status(); !s.ok()) return s;
      return value;
    case v1::JSON: {
      absl::StatusOr<std::string> normalized = NormalizeJson(value);
      if (!normalized.ok()) return normalized.status();
      *storage = *std::move(normalized);
      return std::string_view(*storage);
    }
    default:
      return absl::InvalidArgumentError(absl::StrFormat(
          "unknown value type %d (BYTES=0, TEXT=1, INT64=2, JSON=3)", type));
  }
}

absl::Status CheckJsonPointer(std::string_view pointer) {
  return MakePointer(pointer, "pointer").status();
}

absl::StatusOr<std::string> JsonAtPointer(std::string_view document,
                                          std::string_view pointer) {
  absl::StatusOr<Json::json_pointer> ptr = MakePointer(pointer, "pointer");
  if (!ptr.ok()) return ptr.status();
  if (ptr->empty()) return std::string(document);  // Already normalized.
  absl::StatusOr<Json> doc = ParseStored(document);
  if (!doc.ok()) return doc.status();
  std::string why;
  const Json* value = Find(*doc, *ptr, &why);
  if (value == nullptr) {
    return absl::NotFoundError(absl::StrFormat(
        "pointer \"%s\" does not resolve in the document: %s", Shown(pointer),
        why));
  }
  return Dump(*value);
}

absl::StatusOr<JsonUpdatePatch> JsonUpdatePatch::Parse(
    const v1::JsonUpdateRequest& request) {
  const bool merge = request.patch_case() == v1::JsonUpdateRequest::kMergePatch;
  if (!merge && request.patch_case() != v1::JsonUpdateRequest::kJsonPatch) {
    return absl::InvalidArgumentError(
        "json update has no patch (set merge_patch or json_patch)");
  }
  absl::StatusOr<Json> patch =
      merge ? ParseJson(request.merge_patch(), "merge_patch")
            : ParseJson(request.json_patch(), "json_patch");
  if (!patch.ok()) return patch.status();
  if (!merge) {
    if (!patch->is_array()) {
      return absl::InvalidArgumentError(
          "json_patch is not an array of operations (RFC 6902)");
    }
    for (size_t i = 0; i < patch->size(); ++i) {
      if (absl::Status s = CheckPatchOperation((*patch)[i], i); !s.ok()) {
        return s;
      }
    }
  }
  return JsonUpdatePatch(
      merge, std::make_shared<const Json>(*std::move(patch)));
}

absl::StatusOr<std::string> JsonUpdatePatch::Apply(
    std::string_view document) const {
  absl::StatusOr<Json> doc = ParseStored(document);
  if (!doc.ok()) return doc.status();
  if (merge_) {
    doc->merge_patch(*patch_);  // RFC 7386: never fails.
  } else if (absl::Status s = ApplyJsonPatch(*patch_, &*doc); !s.ok()) {
    return s;
  }
  if (const int depth = Depth(*doc); depth > kMaxJsonDepth) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the patched document would nest %d levels of arrays and objects; "
        "the limit is %d; nothing was written",
        depth, kMaxJsonDepth));
  }
  return Dump(*doc);
}

}  // namespace strata::server
