#include "server/namespace_catalog.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"

namespace strata::server {
namespace {

// Part of the on-disk format of a catalog record: never change or reuse.
constexpr char kEntryFormat = 1;
constexpr size_t kMaxNameBytes = 255;

std::string Quoted(std::string_view name) {
  return absl::StrFormat(
      "\"%s\"", absl::CHexEscape(absl::string_view(name.data(), name.size())));
}

absl::Status DoesNotExist(std::string_view name) {
  return absl::NotFoundError(
      absl::StrFormat("namespace %s does not exist", Quoted(name)));
}

// The catalog record of `name` on `view`: nullopt if absent.
absl::StatusOr<std::optional<NamespaceEntry>> ReadEntry(
    storage::CommitView* view, std::string_view name) {
  std::string value;
  storage::KeyMetadata meta;
  absl::Status s = view->Get(NamespaceCatalogKey(name), &value, &meta);
  if (absl::IsNotFound(s)) return std::optional<NamespaceEntry>();
  if (!s.ok()) return s;
  absl::StatusOr<NamespaceEntry> e = DecodeNamespaceEntry(value);
  if (!e.ok()) return e.status();
  return std::optional<NamespaceEntry>(*e);
}

absl::StatusOr<NamespaceUsage> DecodeUsage(std::string_view bytes) {
  NamespaceUsage u;
  if (!ConsumeVarint64(&bytes, &u.keys) ||
      !ConsumeVarint64(&bytes, &u.bytes)) {
    return absl::DataLossError("namespace usage record: malformed");
  }
  return u;
}

std::string EncodeUsage(const NamespaceUsage& u) {
  std::string s;
  AppendVarint64(&s, u.keys);
  AppendVarint64(&s, u.bytes);
  return s;
}

// Collects a batch's operations on keys of named namespaces: the last one
// of each stored key wins (as the engine applies a batch).
class NamespacedOps final : public storage::WriteBatch::Handler {
 public:
  struct Op {
    uint64_t id = 0;
    uint64_t user_key_bytes = 0;
    std::optional<uint64_t> value_bytes;  // nullopt: a delete.
  };
  void Put(std::string_view key, std::string_view value,
           const storage::PutAttributes&) override {
    Record(key, value.size());
  }
  void Delete(std::string_view key) override { Record(key, std::nullopt); }
  // By stored key, pointing into the batch: valid until the batch changes
  // (ApplyUsage appends to it only after the last use).
  absl::flat_hash_map<std::string_view, Op> ops;

 private:
  void Record(std::string_view stored, std::optional<uint64_t> value_bytes) {
    if (stored.substr(0, kReservedPrefix.size()) != kReservedPrefix) return;
    DecodedKey d = DecodeStoredKey(stored);
    if (d.kind != DecodedKey::Kind::kUser || d.namespace_id == 0) return;
    ops[stored] = Op{d.namespace_id, d.key.size(), value_bytes};
  }
};

// A namespace's quotas, for the checks (Guard).
struct Quota {
  std::string name;
  NamespaceEntry entry;
};

// Updates the usage records of every named namespace `b` writes (after its
// commit function ran), refusing growth beyond the quotas in `quotas`.
absl::Status ApplyUsage(storage::CommitView* view, storage::WriteBatch* b,
                        const std::map<uint64_t, Quota>& quotas) {
  NamespacedOps collected;
  if (absl::Status s = b->Iterate(&collected); !s.ok()) return s;
  std::map<uint64_t, std::pair<int64_t, int64_t>> delta;  // Keys, bytes.
  for (const auto& [stored, op] : collected.ops) {
    std::string value;
    storage::KeyMetadata meta;
    // What is stored, expired or not: the expirer's delete of a key past
    // its TTL frees its space, and a put over such a key replaces it.
    absl::Status s = view->GetStored(stored, &value, &meta);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
    auto& [keys, bytes] = delta[op.id];
    if (s.ok()) {
      keys -= 1;
      bytes -= static_cast<int64_t>(op.user_key_bytes + value.size());
    }
    if (op.value_bytes) {
      keys += 1;
      bytes += static_cast<int64_t>(op.user_key_bytes + *op.value_bytes);
    }
  }
  for (const auto& [id, d] : delta) {
    const auto [dkeys, dbytes] = d;
    if (dkeys == 0 && dbytes == 0) continue;
    std::string value;
    storage::KeyMetadata meta;
    absl::Status s = view->Get(NamespaceUsageKey(id), &value, &meta);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
    NamespaceUsage u;
    if (s.ok()) {
      absl::StatusOr<NamespaceUsage> old = DecodeUsage(value);
      if (!old.ok()) return old.status();
      u = *old;
    }
    auto add = [](uint64_t v, int64_t d) -> uint64_t {
      if (d >= 0) return v + static_cast<uint64_t>(d);
      const auto m = static_cast<uint64_t>(-d);
      return m > v ? 0 : v - m;
    };
    const NamespaceUsage next{add(u.keys, dkeys), add(u.bytes, dbytes)};
    if (auto q = quotas.find(id); q != quotas.end()) {
      const NamespaceEntry& e = q->second.entry;
      if (dkeys > 0 && e.quota_keys != 0 && next.keys > e.quota_keys) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "namespace %s would hold %d keys; its quota is %d keys "
            "(quota_keys); nothing was written",
            Quoted(q->second.name), next.keys, e.quota_keys));
      }
      if (dbytes > 0 && e.quota_bytes != 0 && next.bytes > e.quota_bytes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "namespace %s would hold %d bytes; its quota is %d bytes "
            "(quota_bytes); nothing was written",
            Quoted(q->second.name), next.bytes, e.quota_bytes));
      }
    }
    // A namespace deleted meanwhile has no record: never create one.
    if (!s.ok() && next.keys == 0 && next.bytes == 0) continue;
    b->Put(NamespaceUsageKey(id), EncodeUsage(next));
  }
  return absl::OkStatus();
}

}  // namespace

std::string NamespaceCatalogKey(std::string_view name) {
  std::string k = SystemKey("ns/name/");
  k.append(name.data(), name.size());
  return k;
}

std::string NamespaceNextIdKey() { return SystemKey("ns/next_id"); }

std::string NamespaceUsageKey(uint64_t id) {
  std::string k = SystemKey("ns/usage/");
  AppendVarint64(&k, id);
  return k;
}

std::string EncodeNamespaceEntry(const NamespaceEntry& entry) {
  std::string s(1, kEntryFormat);
  AppendVarint64(&s, entry.id);
  AppendVarint64(&s, entry.quota_bytes);
  AppendVarint64(&s, entry.quota_keys);
  return s;
}

absl::StatusOr<NamespaceEntry> DecodeNamespaceEntry(std::string_view bytes) {
  NamespaceEntry e;
  if (bytes.empty() || bytes[0] != kEntryFormat) {
    return absl::DataLossError("namespace catalog record: unknown format");
  }
  bytes.remove_prefix(1);
  if (!ConsumeVarint64(&bytes, &e.id) ||
      !ConsumeVarint64(&bytes, &e.quota_bytes) ||
      !ConsumeVarint64(&bytes, &e.quota_keys) || e.id == 0) {
    return absl::DataLossError("namespace catalog record: malformed");
  }
  return e;
}

absl::Status NamespaceCatalog::Load() {
  const std::string prefix = NamespaceCatalogKey("");
  std::unique_ptr<storage::Iterator> it =
      db_->NewIterator(storage::ReadOptions());
  std::map<std::string, Known, std::less<>> loaded;
  for (it->Seek(prefix);
       it->Valid() && it->key().substr(0, prefix.size()) == prefix;
       it->Next()) {
    absl::StatusOr<NamespaceEntry> e = DecodeNamespaceEntry(it->value());
    if (!e.ok()) {
      return absl::DataLossError(absl::StrFormat(
          "%s (namespace %s)", e.status().message(),
          Quoted(it->key().substr(prefix.size()))));
    }
    loaded[std::string(it->key().substr(prefix.size()))] =
        Known{*e, it->metadata().mod_revision};
  }
  if (!it->status().ok()) return it->status();
  if (deleted_ != nullptr) {
    // Ids are handed out in order and never reused: every id below the
    // next one without a record was deleted.
    // The same iterator (one consistent state with the records above).
    uint64_t next = 1;
    it->Seek(NamespaceNextIdKey());
    if (!it->status().ok()) return it->status();
    if (it->Valid() && it->key() == NamespaceNextIdKey()) {
      std::string_view in = it->value();
      if (!ConsumeVarint64(&in, &next) || next == 0) {
        return absl::DataLossError("namespace catalog: malformed next id");
      }
    }
    absl::flat_hash_set<uint64_t> live;
    for (const auto& [name, known] : loaded) live.insert(known.entry->id);
    for (uint64_t id = 1; id < next; ++id) {
      if (!live.contains(id)) deleted_->Add(id, 0);
    }
  }
  absl::MutexLock l(&mu_);
  known_ = std::move(loaded);
  return absl::OkStatus();
}

void NamespaceCatalog::RecordDeleted(uint64_t id, storage::Revision revision) {
  if (deleted_ != nullptr) deleted_->Add(id, revision);
}

absl::Status NamespaceCatalog::ValidateName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "namespace name is %d bytes; names are 1..%d bytes of "
        "[A-Za-z0-9._/-]",
        name.size(), kMaxNameBytes));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '/' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "namespace name %s has a byte outside [A-Za-z0-9._/-] at offset %d",
          Quoted(name), i));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyspaceView> NamespaceCatalog::Resolve(
    std::string_view name) const {
  if (name.empty()) return KeyspaceView();
  if (absl::Status s = ValidateName(name); !s.ok()) return s;
  absl::ReaderMutexLock l(&mu_);
  auto it = known_.find(name);
  if (it == known_.end() || !it->second.entry) return DoesNotExist(name);
  return KeyspaceView(it->second.entry->id);
}

absl::StatusOr<NamespaceViews> NamespaceCatalog::ResolveAll(
    std::string_view fallback,
    const std::vector<std::string_view>& names) const {
  absl::StatusOr<KeyspaceView> f = Resolve(fallback);
  if (!f.ok()) return f.status();
  NamespaceViews views(std::string(fallback), *f);
  for (std::string_view name : names) {
    if (name.empty() || views.named().count(name) > 0) continue;
    absl::StatusOr<KeyspaceView> v = Resolve(name);
    if (!v.ok()) return v.status();
    views.Add(std::string(name), *v);
  }
  return views;
}

void NamespaceCatalog::Guard(const NamespaceViews& views,
                             storage::WriteBatch* batch) {
  std::vector<std::pair<std::string, uint64_t>> checks;
  if (!views.fallback().is_default()) {
    checks.emplace_back(views.fallback_name(), views.fallback().id());
  }
  for (const auto& [name, view] : views.named()) {
    if (!view.is_default() && name != views.fallback_name()) {
      checks.emplace_back(name, view.id());
    }
  }
  if (checks.empty()) return;
  batch->SetCommitFunction(
      [checks = std::move(checks), inner = batch->commit_function()](
          storage::CommitView* view, storage::WriteBatch* b) -> absl::Status {
        std::map<uint64_t, Quota> quotas;
        for (const auto& [name, id] : checks) {
          absl::StatusOr<std::optional<NamespaceEntry>> e =
              ReadEntry(view, name);
          if (!e.ok()) return e.status();
          // Deleted (and perhaps re-created under a new id): the write
          // resolved a namespace that no longer exists.
          if (!e->has_value() || (*e)->id != id) return DoesNotExist(name);
          quotas[id] = Quota{name, **e};
        }
        if (inner) {
          if (absl::Status s = inner(view, b); !s.ok()) return s;
        }
        return ApplyUsage(view, b, quotas);
      });
}

void NamespaceCatalog::AccountUsage(storage::WriteBatch* batch) {
  batch->SetCommitFunction(
      [inner = batch->commit_function()](
          storage::CommitView* view, storage::WriteBatch* b) -> absl::Status {
        if (inner) {
          if (absl::Status s = inner(view, b); !s.ok()) return s;
        }
        return ApplyUsage(view, b, {});
      });
}

absl::StatusOr<NamespaceUsage> NamespaceCatalog::ReadUsage(uint64_t id) const {
  absl::StatusOr<std::string> v =
      db_->Get(storage::ReadOptions(), NamespaceUsageKey(id));
  if (absl::IsNotFound(v.status())) return NamespaceUsage();
  if (!v.ok()) return v.status();
  return DecodeUsage(*v);
}

storage::WriteBatch NamespaceCatalog::CreateBatch(std::string name,
                                                  uint64_t quota_bytes,
                                                  uint64_t quota_keys,
                                                  Result result) {
  storage::WriteBatch batch;
  batch.SetCommitFunction(
      [name = std::move(name), quota_bytes, quota_keys, result](
          storage::CommitView* view, storage::WriteBatch* b) -> absl::Status {
        result->reset();
        absl::StatusOr<std::optional<NamespaceEntry>> e = ReadEntry(view, name);
        if (!e.ok()) return e.status();
        if (e->has_value()) {
          return absl::AlreadyExistsError(
              absl::StrFormat("namespace %s already exists", Quoted(name)));
        }
        uint64_t next = 1;
        std::string value;
        storage::KeyMetadata meta;
        absl::Status s = view->Get(NamespaceNextIdKey(), &value, &meta);
        if (s.ok()) {
          std::string_view in = value;
          if (!ConsumeVarint64(&in, &next) || next == 0) {
            return absl::DataLossError("namespace catalog: malformed next id");
          }
        } else if (!absl::IsNotFound(s)) {
          return s;
        }
        const NamespaceEntry entry{next, quota_bytes, quota_keys};
        std::string next_value;
        AppendVarint64(&next_value, next + 1);
        b->Put(NamespaceNextIdKey(), next_value);
        b->Put(NamespaceCatalogKey(name), EncodeNamespaceEntry(entry));
        *result = entry;
        return absl::OkStatus();
      });
  return batch;
}

storage::WriteBatch NamespaceCatalog::DeleteBatch(std::string name,
                                                  Result result) {
  storage::WriteBatch batch;
  batch.SetCommitFunction(
      [name = std::move(name), result](storage::CommitView* view,
                                       storage::WriteBatch* b) -> absl::Status {
        result->reset();
        absl::StatusOr<std::optional<NamespaceEntry>> e = ReadEntry(view, name);
        if (!e.ok()) return e.status();
        if (!e->has_value()) return DoesNotExist(name);
        // Only the record goes (and the usage record): the keys vanish for
        // every reader because their id no longer resolves (and is never
        // reused).
        b->Delete(NamespaceCatalogKey(name));
        b->Delete(NamespaceUsageKey((*e)->id));
        *result = **e;
        return absl::OkStatus();
      });
  return batch;
}

storage::WriteBatch NamespaceCatalog::UpdateBatch(
    std::string name, std::optional<uint64_t> quota_bytes,
    std::optional<uint64_t> quota_keys, Result result) {
  storage::WriteBatch batch;
  batch.SetCommitFunction(
      [name = std::move(name), quota_bytes, quota_keys, result](
          storage::CommitView* view, storage::WriteBatch* b) -> absl::Status {
        result->reset();
        absl::StatusOr<std::optional<NamespaceEntry>> e = ReadEntry(view, name);
        if (!e.ok()) return e.status();
        if (!e->has_value()) return DoesNotExist(name);
        NamespaceEntry entry = **e;
        if (quota_bytes) entry.quota_bytes = *quota_bytes;
        if (quota_keys) entry.quota_keys = *quota_keys;
        b->Put(NamespaceCatalogKey(name), EncodeNamespaceEntry(entry));
        *result = entry;
        return absl::OkStatus();
      });
  return batch;
}

void NamespaceCatalog::Apply(const std::string& name,
                             const std::optional<NamespaceEntry>& entry,
                             storage::Revision revision) {
  absl::MutexLock l(&mu_);
  Known& k = known_[name];
  if (k.revision > revision) return;  // A later change already applied.
  k.entry = entry;
  k.revision = revision;
}

std::vector<std::pair<std::string, NamespaceEntry>> NamespaceCatalog::List(
    std::string_view prefix) const {
  std::vector<std::pair<std::string, NamespaceEntry>> out;
  absl::ReaderMutexLock l(&mu_);
  for (auto it = known_.lower_bound(prefix);
       it != known_.end() &&
       std::string_view(it->first).substr(0, prefix.size()) == prefix;
       ++it) {
    if (it->second.entry) out.emplace_back(it->first, *it->second.entry);
  }
  return out;
}

}  // namespace strata::server
