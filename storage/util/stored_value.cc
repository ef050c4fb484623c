#include "util/stored_value.h"

#include "absl/strings/str_format.h"
#include "util/coding.h"

namespace strata::storage {
namespace {

// Attribute flags. Part of the on-disk format: never change or reuse one.
constexpr uint32_t kHasExpiry = 1;
constexpr uint32_t kHasLease = 2;
constexpr uint32_t kHasValueType = 4;
constexpr uint32_t kKnownFlags = kHasExpiry | kHasLease | kHasValueType;

}  // namespace

void AppendAttributes(std::string* dst, const PutAttributes& a) {
  uint32_t flags = (a.expire_at_unix_ms != 0 ? kHasExpiry : 0) |
                   (a.lease != 0 ? kHasLease : 0) |
                   (a.value_type != 0 ? kHasValueType : 0);
  PutVarint32(dst, flags);
  if (flags & kHasExpiry) PutVarint64(dst, a.expire_at_unix_ms);
  if (flags & kHasLease) PutVarint64(dst, a.lease);
  if (flags & kHasValueType) dst->push_back(static_cast<char>(a.value_type));
}

bool ConsumeAttributes(std::string_view* input, PutAttributes* a) {
  *a = PutAttributes();
  uint32_t flags;
  if (!GetVarint32(input, &flags) || (flags & ~kKnownFlags) != 0) return false;
  if ((flags & kHasExpiry) && !GetVarint64(input, &a->expire_at_unix_ms)) {
    return false;
  }
  if ((flags & kHasLease) && !GetVarint64(input, &a->lease)) return false;
  if (flags & kHasValueType) {
    if (input->empty()) return false;
    a->value_type = static_cast<uint8_t>((*input)[0]);
    input->remove_prefix(1);
  }
  return true;
}

size_t EncodeMetadata(const KeyMetadata& meta, char* buf) {
  char* p = EncodeVarint64(buf, meta.mod_revision - meta.create_revision);
  p = EncodeVarint64(p, meta.version);
  const PutAttributes& a = meta.attributes;
  const uint32_t flags = (a.expire_at_unix_ms != 0 ? kHasExpiry : 0) |
                         (a.lease != 0 ? kHasLease : 0) |
                         (a.value_type != 0 ? kHasValueType : 0);
  p = EncodeVarint32(p, flags);
  if (flags & kHasExpiry) p = EncodeVarint64(p, a.expire_at_unix_ms);
  if (flags & kHasLease) p = EncodeVarint64(p, a.lease);
  if (flags & kHasValueType) *p++ = static_cast<char>(a.value_type);
  return static_cast<size_t>(p - buf);
}

void AppendStoredValue(std::string* dst, const KeyMetadata& meta,
                       std::string_view value) {
  char buf[kMaxMetadataLength];
  const size_t meta_len = EncodeMetadata(meta, buf);
  PutVarint32(dst, static_cast<uint32_t>(meta_len));
  dst->append(buf, meta_len);
  dst->append(value.data(), value.size());
}

bool IsExpired(const PutAttributes& a, uint64_t now_unix_ms,
               const LeaseDeadlines* leases) {
  if (now_unix_ms == 0) return false;
  if (a.expire_at_unix_ms != 0 && a.expire_at_unix_ms <= now_unix_ms) {
    return true;
  }
  if (a.lease == 0 || leases == nullptr) return false;
  const uint64_t deadline = leases->DeadlineUnixMs(a.lease);
  return deadline != 0 && deadline <= now_unix_ms;
}

bool IsExpired(ValueType type, std::string_view stored, uint64_t now_unix_ms,
               const LeaseDeadlines* leases) {
  if (now_unix_ms == 0 || type != kTypeValueMeta) return false;
  std::string_view m;
  uint64_t skip;
  uint32_t flags;
  if (!GetLengthPrefixed(&stored, &m) || !GetVarint64(&m, &skip) ||
      !GetVarint64(&m, &skip) || !GetVarint32(&m, &flags)) {
    return false;
  }
  PutAttributes a;
  if ((flags & kHasExpiry) && !GetVarint64(&m, &a.expire_at_unix_ms)) {
    return false;
  }
  if ((flags & kHasLease) && !GetVarint64(&m, &a.lease)) return false;
  return IsExpired(a, now_unix_ms, leases);
}

absl::Status DecodeStoredValue(ValueType type, SequenceNumber sequence,
                               std::string_view stored, KeyMetadata* meta,
                               std::string_view* value) {
  if (type == kTypeValue) {
    *meta = KeyMetadata();
    meta->create_revision = sequence;
    meta->mod_revision = sequence;
    meta->version = 1;
    *value = stored;
    return absl::OkStatus();
  }
  std::string_view m;
  uint64_t delta = 0;
  KeyMetadata out;
  if (type != kTypeValueMeta || !GetLengthPrefixed(&stored, &m) ||
      !GetVarint64(&m, &delta) || !GetVarint64(&m, &out.version) ||
      delta > sequence || !ConsumeAttributes(&m, &out.attributes) ||
      !m.empty()) {
    return absl::DataLossError(absl::StrFormat(
        "malformed value metadata (type %d, sequence %d)", type, sequence));
  }
  out.mod_revision = sequence;
  out.create_revision = sequence - delta;
  *meta = out;
  *value = stored;
  return absl::OkStatus();
}

}  // namespace strata::storage
