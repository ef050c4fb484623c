// MemTable entry encoding (one arena allocation per entry):
//   entry        := varint32(internal_key_len) internal_key
//                   varint32(value_len) value
//   internal_key := user_key fixed64(sequence << 8 | type)

#include "memtable/memtable.h"

#include <cstring>

#include "util/coding.h"

namespace strata::storage {
namespace {

// Decodes varint32(len) bytes[len] at p. REQUIRES: a well-formed entry
// written by MemTable::Add (or a seek key), so no limit check is needed.
inline std::string_view GetLengthPrefixedSlice(const char* p) {
  uint32_t len = static_cast<uint8_t>(*p);
  if (len < 128) {
    ++p;  // Fast path: keys and values under 128 bytes.
  } else {
    p = GetVarint32Ptr(p, p + 5, &len);
  }
  return std::string_view(p, len);
}

}  // namespace

int MemTable::KeyComparator::operator()(const char* a, const char* b) const {
  return comparator.Compare(GetLengthPrefixedSlice(a),
                            GetLengthPrefixedSlice(b));
}

MemTable::MemTable(const InternalKeyComparator& comparator,
                   size_t bloom_bytes)
    : comparator_(comparator),
      table_(comparator_, &arena_),
      bloom_(bloom_bytes > 0 ? std::make_unique<MemTableBloom>(bloom_bytes)
                             : nullptr) {}

MemTable::~MemTable() = default;

void MemTable::Add(SequenceNumber seq, ValueType type, std::string_view key,
                   std::string_view value) {
  const size_t internal_key_size = key.size() + 8;
  const size_t encoded_len = VarintLength(internal_key_size) +
                             internal_key_size + VarintLength(value.size()) +
                             value.size();
  char* buf = arena_.Allocate(encoded_len);
  char* p = EncodeVarint32(buf, static_cast<uint32_t>(internal_key_size));
  if (!key.empty()) std::memcpy(p, key.data(), key.size());
  p += key.size();
  EncodeFixed64(p, PackSequenceAndType(seq, type));
  p += 8;
  p = EncodeVarint32(p, static_cast<uint32_t>(value.size()));
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
  if (bloom_ != nullptr) bloom_->Add(key);
  table_.Insert(buf);
}

bool MemTable::Get(const LookupKey& key, LookupResult* result) {
  if (bloom_ != nullptr && !bloom_->MayContain(key.user_key())) return false;
  Table::Iterator iter(&table_);
  // The first entry >= (user_key, sequence): the newest visible version
  // of user_key if there is one.
  iter.Seek(key.memtable_key().data());
  if (!iter.Valid()) return false;
  const std::string_view internal_key = GetLengthPrefixedSlice(iter.key());
  if (comparator_.comparator.user_comparator()->Compare(
          ExtractUserKey(internal_key), key.user_key()) != 0) {
    return false;
  }
  const uint64_t tag = ExtractTag(internal_key);
  const auto type = static_cast<ValueType>(tag & 0xff);
  result->sequence = tag >> 8;
  result->type = type;
  if (type == kTypeDeletion) {
    result->state = LookupResult::State::kDeleted;
    result->stored_value.clear();
  } else {
    const std::string_view v =
        GetLengthPrefixedSlice(internal_key.data() + internal_key.size());
    result->state = LookupResult::State::kFound;
    result->stored_value.assign(v.data(), v.size());
  }
  return true;
}

class MemTable::MemTableIterator final : public Iterator {
 public:
  explicit MemTableIterator(const Table* table) : iter_(table) {}

  bool Valid() const override { return iter_.Valid(); }
  void SeekToFirst() override { iter_.SeekToFirst(); }
  void SeekToLast() override { iter_.SeekToLast(); }
  void Seek(std::string_view internal_key) override {
    // The skiplist compares arena entries: encode the target the same way.
    seek_key_.clear();
    PutLengthPrefixed(&seek_key_, internal_key);
    iter_.Seek(seek_key_.data());
  }
  void Next() override { iter_.Next(); }
  void Prev() override { iter_.Prev(); }
  std::string_view key() const override {
    return GetLengthPrefixedSlice(iter_.key());
  }
  std::string_view value() const override {
    const std::string_view k = key();
    return GetLengthPrefixedSlice(k.data() + k.size());
  }
  absl::Status status() const override { return absl::OkStatus(); }

 private:
  Table::Iterator iter_;
  std::string seek_key_;  // Reused across Seeks.
};

Iterator* MemTable::NewIterator() { return new MemTableIterator(&table_); }

}  // namespace strata::storage
