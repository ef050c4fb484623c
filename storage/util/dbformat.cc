#include "util/dbformat.h"

#include <cstring>

namespace strata::storage {

void AppendInternalKey(std::string* result, const ParsedInternalKey& key) {
  result->append(key.user_key.data(), key.user_key.size());
  PutFixed64(result, PackSequenceAndType(key.sequence, key.type));
}

bool ParseInternalKey(std::string_view internal_key,
                      ParsedInternalKey* result) {
  if (internal_key.size() < 8) return false;
  uint64_t tag = ExtractTag(internal_key);
  uint8_t type = tag & 0xff;
  if (type > kMaxValueType) return false;
  result->user_key = ExtractUserKey(internal_key);
  result->sequence = tag >> 8;
  result->type = static_cast<ValueType>(type);
  return true;
}

namespace {

// A key shorter than its 8-byte tag comes only from corrupt bytes (a block
// read with a matching checksum that the writer never produced, or one
// whose checksum was not checked). The comparator still orders it, without
// reading outside it: all of it as the user key, tag 0; the reader that
// parses the key (ParseInternalKey) reports the corruption.
std::string_view UserKeyOrAll(std::string_view k) {
  return k.size() < 8 ? k : ExtractUserKey(k);
}
uint64_t TagOrZero(std::string_view k) {
  return k.size() < 8 ? 0 : ExtractTag(k);
}

}  // namespace

int InternalKeyComparator::Compare(std::string_view a,
                                   std::string_view b) const {
  int r = user_->Compare(UserKeyOrAll(a), UserKeyOrAll(b));
  if (r != 0) return r;
  uint64_t at = TagOrZero(a);
  uint64_t bt = TagOrZero(b);
  if (at > bt) return -1;
  if (at < bt) return 1;
  return 0;
}

void InternalKeyComparator::FindShortestSeparator(
    std::string* start, std::string_view limit) const {
  std::string_view user_start = ExtractUserKey(*start);
  std::string_view user_limit = ExtractUserKey(limit);
  std::string tmp(user_start);
  user_->FindShortestSeparator(&tmp, user_limit);
  if (tmp.size() < user_start.size() &&
      user_->Compare(user_start, tmp) < 0) {
    // The user key got shorter but larger: give it the largest tag so it
    // still sorts before every entry of the limit's user key.
    PutFixed64(&tmp, PackSequenceAndType(kMaxSequenceNumber, kValueTypeForSeek));
    *start = std::move(tmp);
  }
}

void InternalKeyComparator::FindShortSuccessor(std::string* key) const {
  std::string_view user_key = ExtractUserKey(*key);
  std::string tmp(user_key);
  user_->FindShortSuccessor(&tmp);
  if (tmp.size() < user_key.size() && user_->Compare(user_key, tmp) < 0) {
    PutFixed64(&tmp, PackSequenceAndType(kMaxSequenceNumber, kValueTypeForSeek));
    *key = std::move(tmp);
  }
}

LookupKey::LookupKey(std::string_view user_key, SequenceNumber s) {
  const size_t internal_size = user_key.size() + 8;
  const size_t needed = internal_size + 5;  // With the longest varint32.
  char* dst = space_;
  if (needed > sizeof(space_)) {
    heap_ = std::make_unique<char[]>(needed);
    dst = heap_.get();
  }
  start_ = dst;
  char* p = EncodeVarint32(dst, static_cast<uint32_t>(internal_size));
  kstart_ = static_cast<size_t>(p - dst);
  std::memcpy(p, user_key.data(), user_key.size());
  p += user_key.size();
  EncodeFixed64(p, PackSequenceAndType(s, kValueTypeForSeek));
  size_ = kstart_ + internal_size;
}

}  // namespace strata::storage
