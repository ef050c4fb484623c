#include "server/namespace_catalog.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"

namespace strata::server {
namespace {

// Part of the on-disk format of a catalog record: never change or reuse.
constexpr char kEntryFormat = 1;
constexpr size_t kMaxNameBytes = 255;

void PutVarint64(std::string* dst, uint64_t v) {
  while (v >= 0x80) {
    dst->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  dst->push_back(static_cast<char>(v));
}

bool GetVarint64(std::string_view* in, uint64_t* v) {
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

}  // namespace

std::string NamespaceCatalogKey(std::string_view name) {
  std::string k = SystemKey("ns/name/");
  k.append(name.data(), name.size());
  return k;
}

std::string NamespaceNextIdKey() { return SystemKey("ns/next_id"); }

std::string EncodeNamespaceEntry(const NamespaceEntry& entry) {
  std::string s(1, kEntryFormat);
  PutVarint64(&s, entry.id);
  PutVarint64(&s, entry.quota_bytes);
  PutVarint64(&s, entry.quota_keys);
  return s;
}

absl::StatusOr<NamespaceEntry> DecodeNamespaceEntry(std::string_view bytes) {
  NamespaceEntry e;
  if (bytes.empty() || bytes[0] != kEntryFormat) {
    return absl::DataLossError("namespace catalog record: unknown format");
  }
  bytes.remove_prefix(1);
  if (!GetVarint64(&bytes, &e.id) || !GetVarint64(&bytes, &e.quota_bytes) ||
      !GetVarint64(&bytes, &e.quota_keys) || e.id == 0) {
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
  absl::MutexLock l(&mu_);
  known_ = std::move(loaded);
  return absl::OkStatus();
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
  absl::MutexLock l(&mu_);
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
        for (const auto& [name, id] : checks) {
          absl::StatusOr<std::optional<NamespaceEntry>> e =
              ReadEntry(view, name);
          if (!e.ok()) return e.status();
          // Deleted (and perhaps re-created under a new id): the write
          // resolved a namespace that no longer exists.
          if (!e->has_value() || (*e)->id != id) return DoesNotExist(name);
        }
        return inner ? inner(view, b) : absl::OkStatus();
      });
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
          if (!GetVarint64(&in, &next) || next == 0) {
            return absl::DataLossError("namespace catalog: malformed next id");
          }
        } else if (!absl::IsNotFound(s)) {
          return s;
        }
        const NamespaceEntry entry{next, quota_bytes, quota_keys};
        std::string next_value;
        PutVarint64(&next_value, next + 1);
        b->Put(NamespaceNextIdKey(), next_value);
        b->Put(NamespaceCatalogKey(name), EncodeNamespaceEntry(entry));
        *result = entry;
        return absl::OkStatus();
      });
  return batch;
}

storage::WriteBatch NamespaceCatalog::DeleteBatch(std::string name) {
  storage::WriteBatch batch;
  batch.SetCommitFunction(
      [name = std::move(name)](storage::CommitView* view,
                               storage::WriteBatch* b) -> absl::Status {
        absl::StatusOr<std::optional<NamespaceEntry>> e = ReadEntry(view, name);
        if (!e.ok()) return e.status();
        if (!e->has_value()) return DoesNotExist(name);
        // Only the record goes: the keys vanish for every reader because
        // their id no longer resolves (and is never reused).
        b->Delete(NamespaceCatalogKey(name));
        return absl::OkStatus();
      });
  return batch;
}

storage::WriteBatch NamespaceCatalog::UpdateBatch(std::string name,
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
        if (!e->has_value()) return DoesNotExist(name);
        NamespaceEntry entry = **e;
        entry.quota_bytes = quota_bytes;
        entry.quota_keys = quota_keys;
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
  absl::MutexLock l(&mu_);
  for (auto it = known_.lower_bound(prefix);
       it != known_.end() &&
       std::string_view(it->first).substr(0, prefix.size()) == prefix;
       ++it) {
    if (it->second.entry) out.emplace_back(it->first, *it->second.entry);
  }
  return out;
}

}  // namespace strata::server
