#ifndef STRATA_STORAGE_UTIL_DBFORMAT_H_
#define STRATA_STORAGE_UTIL_DBFORMAT_H_

// Internal keys: how a user key, a sequence number and an operation type are
// packed into one ordered key (LevelDB's internal key format).
//
//   internal_key := user_key | fixed64(sequence << 8 | type)
//
// Ordered by user key ascending, then sequence number descending, so the
// newest version of a key comes first. Part of the on-disk format.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/coding.h"
#include "util/comparator.h"

namespace strata::storage {

using SequenceNumber = uint64_t;

// Sequence numbers use 56 bits; the low byte of the packed tag is the type.
inline constexpr SequenceNumber kMaxSequenceNumber = (1ull << 56) - 1;

// Part of the on-disk format (WAL, SSTables): never change or reuse a value.
enum ValueType : uint8_t {
  kTypeDeletion = 0,  // A tombstone.
  // A value as written by format version 1 (before revisions): the stored
  // value is the user value; its metadata is unknown (see
  // util/stored_value.h for what reads report).
  kTypeValue = 1,
  // A value with metadata: the stored value is
  // varint32(meta_len) meta user_value (util/stored_value.h).
  kTypeValueMeta = 2,
};
// The largest type that may appear in an internal key.
inline constexpr ValueType kMaxValueType = kTypeValueMeta;
// The type used when seeking: sorts before every entry of the same
// (key, sequence) because higher types sort first.
inline constexpr ValueType kValueTypeForSeek = kMaxValueType;

// True for the types that hold a value (not a tombstone).
inline bool IsValueType(ValueType t) {
  return t == kTypeValue || t == kTypeValueMeta;
}

inline uint64_t PackSequenceAndType(SequenceNumber seq, ValueType t) {
  return (seq << 8) | t;
}

struct ParsedInternalKey {
  std::string_view user_key;
  SequenceNumber sequence = 0;
  ValueType type = kTypeValue;
};

// Size in bytes of the encoded form.
inline size_t InternalKeyEncodingLength(const ParsedInternalKey& k) {
  return k.user_key.size() + 8;
}

void AppendInternalKey(std::string* result, const ParsedInternalKey& key);

// Returns false if internal_key is too short or has an unknown type.
bool ParseInternalKey(std::string_view internal_key, ParsedInternalKey* result);

inline std::string_view ExtractUserKey(std::string_view internal_key) {
  return internal_key.substr(0, internal_key.size() - 8);
}
inline uint64_t ExtractTag(std::string_view internal_key) {
  return DecodeFixed64(internal_key.data() + internal_key.size() - 8);
}

// Orders internal keys: user key by the user comparator, then tag
// descending (newest first).
class InternalKeyComparator final : public Comparator {
 public:
  explicit InternalKeyComparator(const Comparator* user) : user_(user) {}
  int Compare(std::string_view a, std::string_view b) const override;
  const char* Name() const override { return "strata.InternalKeyComparator"; }
  void FindShortestSeparator(std::string* start,
                             std::string_view limit) const override;
  void FindShortSuccessor(std::string* key) const override;
  const Comparator* user_comparator() const { return user_; }

 private:
  const Comparator* const user_;
};

// An owned, encoded internal key.
class InternalKey {
 public:
  InternalKey() = default;
  InternalKey(std::string_view user_key, SequenceNumber s, ValueType t) {
    AppendInternalKey(&rep_, ParsedInternalKey{user_key, s, t});
  }
  void DecodeFrom(std::string_view s) { rep_.assign(s.data(), s.size()); }
  std::string_view Encode() const { return rep_; }
  std::string_view user_key() const { return ExtractUserKey(rep_); }
  bool empty() const { return rep_.empty(); }
  void Clear() { rep_.clear(); }

 private:
  std::string rep_;
};

// The key a point lookup searches for, encoded once in the forms the
// memtable (length-prefixed internal key) and tables (internal key) need.
class LookupKey {
 public:
  LookupKey(std::string_view user_key, SequenceNumber sequence);
  LookupKey(const LookupKey&) = delete;
  LookupKey& operator=(const LookupKey&) = delete;
  // varint32(internal key length) | internal key.
  std::string_view memtable_key() const { return {start_, size_}; }
  std::string_view internal_key() const {
    return memtable_key().substr(kstart_);
  }
  std::string_view user_key() const {
    return memtable_key().substr(kstart_, size_ - kstart_ - 8);
  }

 private:
  // Keys up to ~180 bytes are built here, as in LevelDB's LookupKey: every
  // point lookup (each Get, and each write's metadata lookup) makes one,
  // and a heap allocation was a tenth of a short key's write.
  char space_[200];
  std::unique_ptr<char[]> heap_;  // Longer keys.
  const char* start_ = nullptr;
  size_t size_ = 0;
  size_t kstart_ = 0;
};

// The newest entry of a user key at or below a lookup's sequence number, as
// a point lookup (MemTable::Get, Version::Get) finds it.
struct LookupResult {
  enum class State {
    kNotFound,  // No entry here: look in older data.
    kFound,     // A value: stored_value holds its stored form.
    kDeleted,   // A tombstone: the key is absent; older data must not count.
  };
  State state = State::kNotFound;
  SequenceNumber sequence = 0;
  ValueType type = kTypeDeletion;
  // The entry's stored value (util/stored_value.h) when state is kFound.
  std::string stored_value;
};

}  // namespace strata::storage

#endif  // STRATA_STORAGE_UTIL_DBFORMAT_H_
