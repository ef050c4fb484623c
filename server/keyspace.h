#ifndef STRATA_SERVER_KEYSPACE_H_
#define STRATA_SERVER_KEYSPACE_H_

// Where the server keeps what in the engine's one ordered key space
// (docs/namespaces.md, "Key layout"):
//
//   default namespace, key K    K                       if K < "\xff\xff"
//                               "\xff\xff\xff" K[2:]    if K starts with \xff\xff
//   server metadata             "\xff\xff\x00" ...      (leases, expiry index,
//                                                        the namespace catalog)
//   namespace n, key K          "\xff\xff\x01" varint64(n) K
//
// The default namespace keeps its keys as they are, so databases written
// before namespaces existed need no rewrite, and its keys keep their order
// (the few beginning with \xff\xff move above the reserved area
// "\xff\xff\x00".."\xff\xff\xfe", still in order). Everything the server
// stores for itself or for other namespaces lives in that reserved area,
// where no default-namespace key can land. Namespace ids are never reused,
// so a deleted namespace's keys can never be read through a new one.
//
// Thread safety: the types here are immutable values; all functions are
// pure.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "strata/storage/db.h"
#include "strata/storage/iterator.h"

namespace strata::server {

// The byte that follows "\xff\xff" for each part of the reserved area.
// Part of the on-disk layout: never change or reuse a value.
inline constexpr char kSystemTag = '\x00';
inline constexpr char kNamespaceTag = '\x01';
inline constexpr char kEscapedDefaultTag = '\xff';
// "\xff\xff": where the reserved area and escaped default keys begin (the
// engine reserves it for us: storage::kReservedKeyPrefix).
inline constexpr std::string_view kReservedPrefix = storage::kReservedKeyPrefix;

// LEB128 varints (LevelDB's "varint64", docs/namespaces.md), as the key
// layout and the namespace catalog's records use them. AppendVarint64
// appends 1..10 bytes; ConsumeVarint64 reads one from the front of *in and
// advances it, false (nothing meaningful in *v) if *in ends inside one or
// it is longer than 10 bytes.
void AppendVarint64(std::string* dst, uint64_t v);
bool ConsumeVarint64(std::string_view* in, uint64_t* v);

// Stored key of server metadata `key` ("\xff\xff\x00" key).
std::string SystemKey(std::string_view key);
// The prefix every system key starts with.
std::string SystemPrefix();

// What a stored key is.
struct DecodedKey {
  enum class Kind { kUser, kSystem };
  Kind kind = Kind::kUser;
  uint64_t namespace_id = 0;  // 0 = the default namespace.
  std::string key;            // The user key (or the system key).
};
// Decodes any stored key. A stored key in the reserved area with an unknown
// tag (or a malformed namespace id) decodes as a system key, so it is never
// shown to users.
DecodedKey DecodeStoredKey(std::string_view stored);

// One namespace's keys: how they are stored, and iteration over them.
class KeyspaceView {
 public:
  // The default namespace.
  KeyspaceView() = default;
  // Namespace `id` (> 0).
  explicit KeyspaceView(uint64_t id);

  uint64_t id() const { return id_; }
  bool is_default() const { return id_ == 0; }

  // The stored key of user key `key`.
  std::string Encode(std::string_view key) const;
  // The user key of a stored key of this namespace; false (and *key
  // untouched) if `stored` belongs elsewhere.
  bool Decode(std::string_view stored, std::string* key) const;

  // An iterator over this namespace's keys in user-key order, with user
  // keys as key(), over `base` (an iterator over stored keys, e.g. from
  // DB::NewIterator; taken over). Seek* take user keys; metadata() and
  // value() are the base's.
  std::unique_ptr<storage::Iterator> NewIterator(
      std::unique_ptr<storage::Iterator> base) const;

 private:
  uint64_t id_ = 0;
  std::string prefix_;  // "\xff\xff\x01" varint64(id); empty for default.
};

// The namespaces one request names, resolved (NamespaceCatalog::ResolveAll):
// a name -> its view, with the request's own namespace as the fallback for
// the parts that name none (docs/namespaces.md: "a mutation's non-empty
// namespace wins, else the request's"). Implicitly made from one view, so a
// single-namespace caller passes a KeyspaceView.
//
// Thread safety: an immutable value once built.
class NamespaceViews {
 public:
  NamespaceViews(KeyspaceView fallback = KeyspaceView())  // NOLINT: implicit.
      : fallback_(fallback) {}
  NamespaceViews(std::string fallback_name, KeyspaceView fallback)
      : fallback_name_(std::move(fallback_name)), fallback_(fallback) {}

  // Records that `name` (non-empty) resolves to `view`.
  void Add(std::string name, KeyspaceView view) {
    named_.emplace(std::move(name), view);
  }

  // The view of a part that names `name`: the fallback for "", else the
  // view Add recorded. REQUIRES: a non-empty name was Added (the resolver
  // adds every name of the request); an unknown one gets the fallback.
  const KeyspaceView& For(std::string_view name) const {
    if (name.empty()) return fallback_;
    auto it = named_.find(name);
    return it == named_.end() ? fallback_ : it->second;
  }
  const KeyspaceView& fallback() const { return fallback_; }
  const std::string& fallback_name() const { return fallback_name_; }
  // Every explicitly named namespace (not the fallback).
  const std::map<std::string, KeyspaceView, std::less<>>& named() const {
    return named_;
  }

 private:
  std::string fallback_name_;
  KeyspaceView fallback_;
  std::map<std::string, KeyspaceView, std::less<>> named_;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_KEYSPACE_H_
