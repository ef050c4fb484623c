#include "server/keyspace.h"

#include <utility>


namespace strata::server {

void AppendVarint64(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}

bool ConsumeVarint64(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift <= 63 && !in->empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

namespace {

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// A reserved-area key that is not an escaped default-namespace key.
bool InReservedArea(std::string_view stored) {
  return stored.size() >= 2 && StartsWith(stored, kReservedPrefix) &&
         (stored.size() == 2 || stored[2] != kEscapedDefaultTag);
}

std::string EscapedDefaultStart() {
  std::string s(kReservedPrefix);
  s.push_back(kEscapedDefaultTag);
  return s;
}

// The default namespace over stored keys: skips the reserved area and
// un-escapes keys that begin with \xff\xff.
class DefaultNamespaceIterator final : public storage::Iterator {
 public:
  explicit DefaultNamespaceIterator(std::unique_ptr<storage::Iterator> base)
      : base_(std::move(base)) {}

  bool Valid() const override { return base_->Valid(); }
  void SeekToFirst() override {
    base_->SeekToFirst();
    SkipForward();
  }
  void SeekToLast() override {
    base_->SeekToLast();
    SkipBackward();
  }
  void Seek(std::string_view target) override {
    base_->Seek(KeyspaceView().Encode(target));
    SkipForward();
  }
  void Next() override {
    base_->Next();
    SkipForward();
  }
  void Prev() override {
    base_->Prev();
    SkipBackward();
  }
  std::string_view key() const override {
    const std::string_view stored = base_->key();
    if (!StartsWith(stored, kReservedPrefix)) return stored;
    return unescaped_;
  }
  std::string_view value() const override { return base_->value(); }
  storage::KeyMetadata metadata() const override { return base_->metadata(); }
  absl::Status status() const override { return base_->status(); }

 private:
  void SkipForward() {
    if (base_->Valid() && InReservedArea(base_->key())) {
      base_->Seek(EscapedDefaultStart());
    }
    Unescape();
  }
  void SkipBackward() {
    if (base_->Valid() && InReservedArea(base_->key())) {
      base_->Seek(kReservedPrefix);  // At or after the reserved area...
      if (base_->Valid()) {
        base_->Prev();  // ...and the last key before it.
      } else if (base_->status().ok()) {
        base_->SeekToLast();
      }
    }
    Unescape();
  }
  void Unescape() {
    if (!base_->Valid()) return;
    const std::string_view stored = base_->key();
    if (StartsWith(stored, kReservedPrefix)) {
      unescaped_.assign(kReservedPrefix);
      unescaped_.append(stored.substr(3));
    }
  }

  std::unique_ptr<storage::Iterator> base_;
  std::string unescaped_;  // key() of an escaped stored key.
};

// A named namespace: the stored keys that start with its prefix.
class PrefixedNamespaceIterator final : public storage::Iterator {
 public:
  PrefixedNamespaceIterator(std::unique_ptr<storage::Iterator> base,
                            std::string prefix)
      : base_(std::move(base)), prefix_(std::move(prefix)) {}

  bool Valid() const override {
    return base_->Valid() && StartsWith(base_->key(), prefix_);
  }
  void SeekToFirst() override { base_->Seek(prefix_); }
  void SeekToLast() override {
    // The prefix ends with a varint's last byte (< 0x80): its successor is
    // the same with that byte + 1.
    std::string end = prefix_;
    end.back() = static_cast<char>(end.back() + 1);
    base_->Seek(end);
    if (base_->Valid()) {
      base_->Prev();
    } else if (base_->status().ok()) {
      base_->SeekToLast();
    }
  }
  void Seek(std::string_view target) override {
    std::string k = prefix_;
    k.append(target.data(), target.size());
    base_->Seek(k);
  }
  void Next() override { base_->Next(); }
  void Prev() override { base_->Prev(); }
  std::string_view key() const override {
    return base_->key().substr(prefix_.size());
  }
  std::string_view value() const override { return base_->value(); }
  storage::KeyMetadata metadata() const override { return base_->metadata(); }
  absl::Status status() const override { return base_->status(); }

 private:
  std::unique_ptr<storage::Iterator> base_;
  const std::string prefix_;
};

}  // namespace

std::string SystemPrefix() {
  std::string s(kReservedPrefix);
  s.push_back(kSystemTag);
  return s;
}

std::string SystemKey(std::string_view key) {
  std::string s = SystemPrefix();
  s.append(key.data(), key.size());
  return s;
}

DecodedKey DecodeStoredKey(std::string_view stored) {
  DecodedKey d;
  if (!StartsWith(stored, kReservedPrefix) || stored.size() < 3) {
    if (stored.size() == 2 && StartsWith(stored, kReservedPrefix)) {
      d.kind = DecodedKey::Kind::kSystem;  // Bare "\xff\xff": reserved.
      return d;
    }
    d.key.assign(stored.data(), stored.size());
    return d;
  }
  const char tag = stored[2];
  std::string_view rest = stored.substr(3);
  if (tag == kEscapedDefaultTag) {
    d.key.assign(kReservedPrefix);
    d.key.append(rest.data(), rest.size());
    return d;
  }
  uint64_t id = 0;
  if (tag == kNamespaceTag && ConsumeVarint64(&rest, &id) && id > 0) {
    d.namespace_id = id;
    d.key.assign(rest.data(), rest.size());
    return d;
  }
  d.kind = DecodedKey::Kind::kSystem;
  d.key.assign(rest.data(), rest.size());
  return d;
}

KeyspaceView::KeyspaceView(uint64_t id) : id_(id) {
  if (id_ == 0) return;
  prefix_.assign(kReservedPrefix);
  prefix_.push_back(kNamespaceTag);
  AppendVarint64(&prefix_, id_);
}

std::string KeyspaceView::Encode(std::string_view key) const {
  if (id_ != 0) {
    std::string s = prefix_;
    s.append(key.data(), key.size());
    return s;
  }
  if (!StartsWith(key, kReservedPrefix)) return std::string(key);
  std::string s = EscapedDefaultStart();
  s.append(key.substr(2));
  return s;
}

bool KeyspaceView::Decode(std::string_view stored, std::string* key) const {
  if (id_ != 0) {
    if (!StartsWith(stored, prefix_)) return false;
    key->assign(stored.substr(prefix_.size()));
    return true;
  }
  if (InReservedArea(stored)) return false;
  DecodedKey d = DecodeStoredKey(stored);
  *key = std::move(d.key);
  return true;
}

std::unique_ptr<storage::Iterator> KeyspaceView::NewIterator(
    std::unique_ptr<storage::Iterator> base) const {
  if (id_ == 0) {
    return std::make_unique<DefaultNamespaceIterator>(std::move(base));
  }
  return std::make_unique<PrefixedNamespaceIterator>(std::move(base), prefix_);
}

}  // namespace strata::server
