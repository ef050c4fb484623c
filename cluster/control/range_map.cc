#include "cluster/control/range_map.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cluster/control/strings.h"
#include "nlohmann/json.hpp"

namespace strata::cluster {
namespace {

using Json = nlohmann::json;

bool HexDigit(char c, int* v) {
  if (c >= '0' && c <= '9') {
    *v = c - '0';
  } else if (c >= 'a' && c <= 'f') {
    *v = c - 'a' + 10;
  } else if (c >= 'A' && c <= 'F') {
    *v = c - 'A' + 10;
  } else {
    return false;
  }
  return true;
}

bool DecodeHex(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = 0;
    int lo = 0;
    if (!HexDigit(hex[i], &hi) || !HexDigit(hex[i + 1], &lo)) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
}

std::string Printable(std::string_view key) {
  return key.empty() ? std::string("\"\"")
                     : absl::StrCat("\"", absl::CHexEscape(
                                              {key.data(), key.size()}),
                                    "\"");
}

absl::Status Corrupt(std::string_view key, std::string_view what) {
  return absl::DataLossError(absl::StrCat("range key ", Sv(key), ": ", Sv(what)));
}

// Reads a string array field; false if it is not one.
bool StringArray(const Json& j, std::vector<std::string>* out) {
  if (!j.is_array()) return false;
  out->clear();
  for (const Json& e : j) {
    if (!e.is_string()) return false;
    out->push_back(e.get<std::string>());
  }
  return true;
}

}  // namespace

bool IsValidNodeId(std::string_view id) {
  if (id.empty() || id.size() > 63) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool RangeDescriptor::Contains(std::string_view key) const {
  return key >= start && (end.empty() || key < end);
}

bool RangeDescriptor::IsReplica(std::string_view node) const {
  return std::find(replicas.begin(), replicas.end(), node) != replicas.end();
}

bool RangeDescriptor::IsInSync(std::string_view node) const {
  return std::find(in_sync.begin(), in_sync.end(), node) != in_sync.end();
}

bool RangeDescriptor::SameAs(const RangeDescriptor& o) const {
  return id == o.id && start == o.start && end == o.end && epoch == o.epoch &&
         primary == o.primary && replicas == o.replicas && in_sync == o.in_sync;
}

absl::Status ValidateRange(const RangeDescriptor& r) {
  auto bad = [&r](std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("range ", r.id, ": ", Sv(what)));
  };
  if (r.epoch < 1) return bad("epoch must be >= 1");
  if (!r.end.empty() && !(r.start < r.end)) {
    return bad(absl::StrCat("start ", Printable(r.start),
                            " must be below end ", Printable(r.end)));
  }
  if (r.replicas.empty()) return bad("no replicas");
  std::set<std::string_view> replicas;
  for (const NodeId& n : r.replicas) {
    if (!IsValidNodeId(n)) {
      return bad(absl::StrCat("invalid node id \"", absl::CHexEscape(n),
                              "\" (want [a-z0-9-]{1,63})"));
    }
    if (!replicas.insert(n).second) {
      return bad(absl::StrCat("replica ", n, " listed twice"));
    }
  }
  if (!replicas.contains(r.primary)) {
    return bad(absl::StrCat("primary \"", absl::CHexEscape(r.primary),
                            "\" is not a replica"));
  }
  std::set<std::string_view> in_sync;
  for (const NodeId& n : r.in_sync) {
    if (!replicas.contains(n)) {
      return bad(absl::StrCat("in-sync node ", n, " is not a replica"));
    }
    if (!in_sync.insert(n).second) {
      return bad(absl::StrCat("in-sync node ", n, " listed twice"));
    }
  }
  if (!in_sync.contains(r.primary)) {
    return bad(absl::StrCat("primary ", r.primary, " is not in sync"));
  }
  return absl::OkStatus();
}

std::string EncodeRange(const RangeDescriptor& r) {
  Json j = Json::object();
  j["format"] = kRangeFormatVersion;
  j["id"] = r.id;
  j["start_hex"] = absl::BytesToHexString({r.start.data(), r.start.size()});
  j["end_hex"] = absl::BytesToHexString({r.end.data(), r.end.size()});
  j["epoch"] = r.epoch;
  j["primary"] = r.primary;
  j["replicas"] = r.replicas;
  j["in_sync"] = r.in_sync;
  return j.dump();
}

absl::StatusOr<RangeDescriptor> DecodeRange(std::string_view key,
                                            std::string_view json) {
  const Json j = Json::parse(json.begin(), json.end(), nullptr,
                             /*allow_exceptions=*/false);
  if (j.is_discarded()) return Corrupt(key, "not valid JSON");
  if (!j.is_object()) return Corrupt(key, "not a JSON object");
  static const std::set<std::string> kFields = {
      "format", "id",      "start_hex", "end_hex",
      "epoch",  "primary", "replicas",  "in_sync"};
  for (const auto& [name, value] : j.items()) {
    if (!kFields.contains(name)) {
      return Corrupt(key, absl::StrCat("unknown field \"", name, "\""));
    }
  }
  for (const std::string& name : kFields) {
    if (!j.contains(name)) {
      return Corrupt(key, absl::StrCat("missing field \"", name, "\""));
    }
  }
  if (!j["format"].is_number_integer() ||
      j["format"].get<int64_t>() != kRangeFormatVersion) {
    return Corrupt(key, absl::StrCat("format ", j["format"].dump(),
                                     " (this build reads format ",
                                     kRangeFormatVersion, ")"));
  }
  RangeDescriptor r;
  const Json& id = j["id"];
  if (!id.is_number_unsigned() || id.get<uint64_t>() > UINT32_MAX) {
    return Corrupt(key, "\"id\" is not a uint32");
  }
  r.id = id.get<uint32_t>();
  const Json& epoch = j["epoch"];
  if (!epoch.is_number_unsigned()) {
    return Corrupt(key, "\"epoch\" is not a uint64");
  }
  r.epoch = epoch.get<uint64_t>();
  if (!j["start_hex"].is_string() ||
      !DecodeHex(j["start_hex"].get<std::string>(), &r.start)) {
    return Corrupt(key, "\"start_hex\" is not a hex string");
  }
  if (!j["end_hex"].is_string() ||
      !DecodeHex(j["end_hex"].get<std::string>(), &r.end)) {
    return Corrupt(key, "\"end_hex\" is not a hex string");
  }
  if (!j["primary"].is_string()) return Corrupt(key, "\"primary\" not a string");
  r.primary = j["primary"].get<std::string>();
  if (!StringArray(j["replicas"], &r.replicas)) {
    return Corrupt(key, "\"replicas\" is not an array of strings");
  }
  if (!StringArray(j["in_sync"], &r.in_sync)) {
    return Corrupt(key, "\"in_sync\" is not an array of strings");
  }
  if (absl::Status s = ValidateRange(r); !s.ok()) {
    return Corrupt(key, std::string(s.message()));
  }
  return r;
}

std::vector<std::string> EqualSplitKeys(int n) {
  std::vector<std::string> keys;
  for (int i = 1; i < n; ++i) {
    const uint32_t v = static_cast<uint32_t>(
        (static_cast<uint64_t>(i) * 65536) / static_cast<uint64_t>(n));
    std::string key;
    key.push_back(static_cast<char>(v >> 8));
    if ((v & 0xff) != 0) key.push_back(static_cast<char>(v & 0xff));
    keys.push_back(std::move(key));
  }
  return keys;
}

absl::StatusOr<RangeMap> RangeMap::Create(std::vector<RangeDescriptor> ranges,
                                          int64_t revision) {
  if (ranges.empty()) return absl::InvalidArgumentError("no ranges");
  std::set<RangeId> ids;
  for (const RangeDescriptor& r : ranges) {
    if (absl::Status s = ValidateRange(r); !s.ok()) return s;
    if (!ids.insert(r.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("range id ", r.id, " used twice"));
    }
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const RangeDescriptor& a, const RangeDescriptor& b) {
              return a.start < b.start;
            });
  if (!ranges.front().start.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gap: no range holds keys below ", Printable(ranges.front().start)));
  }
  for (size_t i = 0; i + 1 < ranges.size(); ++i) {
    const RangeDescriptor& a = ranges[i];
    const RangeDescriptor& b = ranges[i + 1];
    if (a.end.empty() || a.end > b.start) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ranges ", a.id, " and ", b.id, " overlap at ", Printable(b.start)));
    }
    if (a.end < b.start) {
      return absl::InvalidArgumentError(
          absl::StrCat("gap between ranges ", a.id, " and ", b.id, ": ",
                       Printable(a.end), " to ", Printable(b.start)));
    }
  }
  if (!ranges.back().end.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gap: no range holds keys from ", Printable(ranges.back().end)));
  }
  return RangeMap(std::move(ranges), revision);
}

const RangeDescriptor& RangeMap::Lookup(std::string_view key) const {
  // The last range whose start <= key (the first starts at "").
  auto it = std::upper_bound(
      ranges_.begin(), ranges_.end(), key,
      [](std::string_view k, const RangeDescriptor& r) { return k < r.start; });
  return *(it - 1);
}

const RangeDescriptor* RangeMap::Find(RangeId id) const {
  for (const RangeDescriptor& r : ranges_) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

std::vector<const RangeDescriptor*> RangeMap::Overlapping(
    std::string_view start, std::string_view end) const {
  std::vector<const RangeDescriptor*> out;
  if (!end.empty() && start >= end) return out;
  for (const RangeDescriptor& r : ranges_) {
    // r overlaps [start, end) iff r.start < end and start < r.end.
    const bool starts_before_end = end.empty() || r.start < end;
    const bool ends_after_start = r.end.empty() || start < r.end;
    if (starts_before_end && ends_after_start) out.push_back(&r);
  }
  return out;
}

}  // namespace strata::cluster
