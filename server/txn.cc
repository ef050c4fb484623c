#include "server/txn.h"

#include <map>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "server/handlers.h"
#include "server/typed_ops.h"
#include "server/typed_values.h"

namespace strata::server {
namespace {

// A Put with ttl_ms or lease inside a Txn or Commit: refused rather than
// written without its expiry (docs/transactions.md, "Limits").
absl::Status ExpiryInTransactionError(std::string_view prefix) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "%sttl_ms and lease are not supported on a put inside Txn or Commit "
      "yet; use Put or Write",
      prefix));
}

// Per ResponseOp pair: what a KeyValue costs on the wire beyond its key
// and value (tags, lengths, three revisions).
constexpr size_t kPairOverheadBytes = 32;

std::string Show(std::string_view key) {
  return absl::CHexEscape(absl::string_view(key.data(), key.size()));
}

absl::Status Prefixed(const absl::Status& s, std::string_view prefix) {
  return absl::Status(s.code(), absl::StrCat(absl::string_view(prefix.data(),
                                                               prefix.size()),
                                             s.message()));
}

absl::Status CountError(std::string_view what, size_t n, const Limits& limits) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "txn has %d %s; the limit is %d (--max_batch_mutations)", n,
      std::string(what), limits.max_batch_mutations));
}

absl::Status BoundError(std::string_view prefix, std::string_view field,
                        std::string_view bound, const Limits& limits) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s%s is %d bytes; the limit is %d (--max_key_bytes)",
      std::string(prefix), std::string(field), bound.size(),
      limits.max_key_bytes));
}

// ---- Txn validation

bool TargetMatches(const v1::Compare& c) {
  switch (c.target_union_case()) {
    case v1::Compare::TARGET_UNION_NOT_SET:
      return true;
    case v1::Compare::kVersion:
      return c.target() == v1::Compare::VERSION;
    case v1::Compare::kCreateRevision:
      return c.target() == v1::Compare::CREATE;
    case v1::Compare::kModRevision:
      return c.target() == v1::Compare::MOD;
    case v1::Compare::kValue:
      return c.target() == v1::Compare::VALUE;
    case v1::Compare::kInt64Value:
      return c.target() == v1::Compare::INT64_VALUE;
  }
  return false;
}

// The constant's field of each target, for messages.
const char* TargetField(v1::Compare::CompareTarget target) {
  switch (target) {
    case v1::Compare::VERSION:
      return "version";
    case v1::Compare::CREATE:
      return "create_revision";
    case v1::Compare::MOD:
      return "mod_revision";
    case v1::Compare::VALUE:
      return "value";
    case v1::Compare::INT64_VALUE:
      return "int64_value";
    default:
      return "?";
  }
}

absl::Status ValidateCompare(const v1::Compare& c, size_t index,
                             const Limits& limits) {
  const std::string prefix = absl::StrFormat("compare %d: ", index);
  if (c.range_end().empty()) {
    if (absl::Status s = ValidateKey(c.key(), limits); !s.ok()) {
      return Prefixed(s, prefix);
    }
  } else {
    if (c.key().size() > limits.max_key_bytes) {
      return BoundError(prefix, "key", c.key(), limits);
    }
    if (c.range_end().size() > limits.max_key_bytes) {
      return BoundError(prefix, "range_end", c.range_end(), limits);
    }
  }
  if (!v1::Compare::CompareResult_IsValid(c.result())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%sunknown result %d (EQUAL, GREATER, LESS or NOT_EQUAL)", prefix,
        static_cast<int>(c.result())));
  }
  if (!v1::Compare::CompareTarget_IsValid(c.target())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%sunknown target %d (VERSION, CREATE, MOD, VALUE or INT64_VALUE)",
        prefix,
        static_cast<int>(c.target())));
  }
  if (!TargetMatches(c)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%starget %s compares the %s field; another target's field is set",
        prefix, v1::Compare::CompareTarget_Name(c.target()),
        TargetField(c.target())));
  }
  return absl::OkStatus();
}

absl::Status ValidateReadRevision(int64_t revision, std::string_view prefix) {
  if (revision == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "%sreads in a Txn are made at the Txn's revision; revision must be 0",
      std::string(prefix)));
}

// Validates one branch and encodes its writes into *writes.
absl::Status PrepareBranch(
    const google::protobuf::RepeatedPtrField<v1::RequestOp>& ops,
    std::string_view name, const Limits& limits, const NamespaceViews& ns,
    storage::WriteBatch* writes, std::map<int, JsonUpdatePatch>* patches) {
  if (static_cast<size_t>(ops.size()) > limits.max_batch_mutations) {
    return CountError(absl::StrCat(absl::string_view(name.data(), name.size()),
                                   " ops"),
                      ops.size(), limits);
  }
  // Written stored key (a user key in its namespace) -> the op that
  // writes it.
  absl::flat_hash_map<std::string, size_t> written;
  for (int i = 0; i < ops.size(); ++i) {
    const v1::RequestOp& op = ops[i];
    const std::string prefix =
        absl::StrFormat("%s op %d: ", std::string(name), i);
    const KeyspaceView& op_ns = ns.For(OpNamespace(op));
    const std::string* write_key = nullptr;
    // Puts and deletes, encoded now; typed operations write at commit time.
    std::optional<absl::StatusOr<storage::WriteBatch>> b;
    switch (op.request_case()) {
      case v1::RequestOp::kGet:
        if (absl::Status s = ValidateKey(op.get().key(), limits); !s.ok()) {
          return Prefixed(s, prefix);
        }
        if (absl::Status s = ValidateReadRevision(op.get().revision(), prefix);
            !s.ok()) {
          return s;
        }
        continue;
      case v1::RequestOp::kScan:
        if (op.scan().start_key().size() > limits.max_key_bytes) {
          return BoundError(prefix, "start_key", op.scan().start_key(), limits);
        }
        if (op.scan().end_key().size() > limits.max_key_bytes) {
          return BoundError(prefix, "end_key", op.scan().end_key(), limits);
        }
        if (absl::Status s =
                ValidateReadRevision(op.scan().revision(), prefix);
            !s.ok()) {
          return s;
        }
        continue;
      case v1::RequestOp::kPut:
        if (op.put().ttl_ms() != 0 || op.put().lease() != 0) {
          return ExpiryInTransactionError(prefix);
        }
        b = PutToBatch(op.put(), limits, op_ns);
        write_key = &op.put().key();
        break;
      case v1::RequestOp::kDelete:
        b = DeleteToBatch(op.delete_(), limits, op_ns);
        write_key = &op.delete_().key();
        break;
      case v1::RequestOp::kIncrement:
        if (op.increment().ttl_ms() != 0) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "%sttl_ms is not supported on an increment inside Txn yet; use "
              "Increment",
              prefix));
        }
        if (absl::Status s = ValidateIncrement(op.increment(), limits);
            !s.ok()) {
          return Prefixed(s, prefix);
        }
        write_key = &op.increment().key();
        break;
      case v1::RequestOp::kJsonGet:
        if (absl::Status s = ValidateJsonGet(op.json_get(), limits); !s.ok()) {
          return Prefixed(s, prefix);
        }
        continue;
      case v1::RequestOp::kJsonUpdate: {
        absl::StatusOr<JsonUpdatePatch> patch =
            PrepareJsonUpdate(op.json_update(), limits);
        if (!patch.ok()) return Prefixed(patch.status(), prefix);
        patches->emplace(i, *std::move(patch));
        write_key = &op.json_update().key();
        break;
      }
      case v1::RequestOp::REQUEST_NOT_SET:
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s op %d has no operation (set get, put, delete, scan, "
            "increment, json_get or json_update)",
            std::string(name), i));
    }
    if (b.has_value() && !b->ok()) return Prefixed(b->status(), prefix);
    // Reads `continue` above: every op here writes *write_key.
    auto [it, fresh] = written.emplace(op_ns.Encode(*write_key),
                                       static_cast<size_t>(i));
    if (!fresh) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%swrites key \"%s\" a second time (%s op %d writes it too); a "
          "Txn writes each key at most once",
          prefix, Show(*write_key), std::string(name), it->second));
    }
    if (b.has_value()) writes->Append(**b);
  }
  return absl::OkStatus();
}

// ---- Txn execution

// Whether `order` (<0, 0, >0: the key's attribute against the constant)
// satisfies the compare's result.
bool ResultHolds(const v1::Compare& c, int order) {
  switch (c.result()) {
    case v1::Compare::EQUAL:
      return order == 0;
    case v1::Compare::NOT_EQUAL:
      return order != 0;
    case v1::Compare::GREATER:
      return order > 0;
    case v1::Compare::LESS:
      return order < 0;
    default:
      return false;  // Validated before.
  }
}

int Order(int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

// etcd's compareKV: the key's attribute against the compare's constant.
bool CompareHolds(const v1::Compare& c, const storage::KeyMetadata& m,
                  std::string_view value) {
  int order = 0;
  switch (c.target()) {
    case v1::Compare::VERSION:
      order = Order(static_cast<int64_t>(m.version), c.version());
      break;
    case v1::Compare::CREATE:
      order = Order(ToWire(m.create_revision), c.create_revision());
      break;
    case v1::Compare::MOD:
      order = Order(ToWire(m.mod_revision), c.mod_revision());
      break;
    case v1::Compare::VALUE:
      order = Order(value.compare(c.value()), 0);
      break;
    default:
      return false;  // Validated before; INT64_VALUE: CompareKeyHolds.
  }
  return ResultHolds(c, order);
}

// A missing key: version and revisions 0; a VALUE or INT64_VALUE compare
// on it is false (etcd: there is no way to tell a missing value from an
// empty one).
bool CompareHoldsForMissing(const v1::Compare& c) {
  if (c.target() == v1::Compare::VALUE ||
      c.target() == v1::Compare::INT64_VALUE) {
    return false;
  }
  return CompareHolds(c, storage::KeyMetadata(), std::string_view());
}

// CompareHolds for an existing key `user_key`, with INT64_VALUE compared
// numerically: FailedPrecondition (naming the key) if the key is not
// INT64-typed, DataLoss if its stored number does not parse.
absl::StatusOr<bool> CompareKeyHolds(const v1::Compare& c,
                                     std::string_view user_key,
                                     const storage::KeyMetadata& m,
                                     std::string_view value) {
  if (c.target() != v1::Compare::INT64_VALUE) return CompareHolds(c, m, value);
  absl::StatusOr<int64_t> n = StoredInt64(value, m);
  if (!n.ok()) {
    return absl::Status(n.status().code(),
                        absl::StrFormat("compare of key \"%s\": %s",
                                        Show(user_key), n.status().message()));
  }
  return ResultHolds(c, Order(*n, c.int64_value()));
}

// The end of a compare's range in user keys (empty = no upper bound), by
// etcd's convention: "\0" means every key >= key.
std::string_view CompareEnd(const v1::Compare& c) {
  if (c.range_end() == std::string_view("\0", 1)) return std::string_view();
  return c.range_end();
}

class TxnRunner {
 public:
  TxnRunner(const Limits& limits, const NamespaceViews& ns,
            storage::CommitView* view)
      : limits_(limits), ns_(ns), view_(view) {}

  absl::StatusOr<bool> Compare(const v1::Compare& c) {
    const KeyspaceView& ns = ns_.For(c.namespace_());
    if (c.range_end().empty()) {
      std::string value;
      storage::KeyMetadata meta;
      absl::Status s = view_->Get(ns.Encode(c.key()), &value, &meta);
      if (absl::IsNotFound(s)) return CompareHoldsForMissing(c);
      if (!s.ok()) return s;
      return CompareKeyHolds(c, c.key(), meta, value);
    }
    const std::string_view end = CompareEnd(c);
    if (!end.empty() && end <= c.key()) return CompareHoldsForMissing(c);
    std::unique_ptr<storage::Iterator> it = ns.NewIterator(view_->NewIterator());
    bool any = false;
    for (it->Seek(c.key()); it->Valid() && (end.empty() || it->key() < end);
         it->Next()) {
      if (++examined_ > limits_.max_batch_mutations) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "txn compares examined more than %d keys "
            "(--max_batch_mutations); nothing was written; compare smaller "
            "ranges",
            limits_.max_batch_mutations));
      }
      any = true;
      absl::StatusOr<bool> holds =
          CompareKeyHolds(c, it->key(), it->metadata(), it->value());
      if (!holds.ok() || !*holds) return holds;
    }
    if (!it->status().ok()) return it->status();
    return any || CompareHoldsForMissing(c);
  }

  absl::Status Get(const v1::GetRequest& req, v1::GetResponse* out) {
    const KeyspaceView& ns = ns_.For(req.namespace_());
    const Overlay& pending = pending_[ns.id()];
    if (auto p = pending.find(req.key()); p != pending.end()) {
      if (p->second.has_value()) {
        out->set_found(true);
        out->set_value(p->second->value);
        FillMetadata(p->second->metadata, out);
        return Account(req.key(), p->second->value);
      }
      return absl::OkStatus();
    }
    std::string value;
    storage::KeyMetadata meta;
    absl::Status s = view_->Get(ns.Encode(req.key()), &value, &meta);
    if (absl::IsNotFound(s)) return absl::OkStatus();
    if (!s.ok()) return s;
    RETURN_IF_ERROR(Account(req.key(), value));
    out->set_found(true);
    out->set_value(std::move(value));
    FillMetadata(meta, out);
    return absl::OkStatus();
  }

  // A put of the branch: later reads of the Txn see it, with the metadata
  // it will have once committed.
  absl::Status Put(const v1::PutRequest& req) {
    std::string unused;
    storage::KeyMetadata now;
    const KeyspaceView& ns = ns_.For(req.namespace_());
    absl::Status s = view_->Get(ns.Encode(req.key()), &unused, &now);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
    // Later reads of the Txn see the value as it will be stored: with its
    // type, normalized (validated before the write was queued).
    std::string normalized;
    storage::PutAttributes attributes;
    absl::StatusOr<std::string_view> stored =
        PrepareTypedPut(req.type(), req.value(), &normalized, &attributes);
    if (!stored.ok()) return stored.status();
    Stage(ns, req.key(), s.ok() ? &now : nullptr, *stored, attributes);
    return absl::OkStatus();
  }

  void Delete(const v1::DeleteRequest& req) {
    pending_[ns_.For(req.namespace_()).id()][req.key()] = std::nullopt;
  }

  // Typed operations (typed_ops.h) on the state the Txn commits on top of:
  // the key is written by no other op of the branch (PrepareBranch), so
  // the view has its current value. They append their put to *batch and
  // stage it, so later reads of the Txn see it.
  absl::Status Increment(const v1::IncrementRequest& req,
                         v1::IncrementResponse* out,
                         storage::WriteBatch* batch) {
    const KeyspaceView& ns = ns_.For(req.namespace_());
    const std::string key = ns.Encode(req.key());
    absl::StatusOr<std::optional<StoredValue>> current =
        ReadForUpdate(view_, key);
    if (!current.ok()) return current.status();
    absl::StatusOr<IncrementResult> r =
        ComputeIncrement(*current, req, view_->now_unix_ms());
    if (!r.ok()) return r.status();
    out->set_value(r->value);
    Stage(ns, req.key(), MetadataOf(*current), r->put.value,
          r->put.attributes);
    batch->Put(key, r->put.value, r->put.attributes);
    return absl::OkStatus();
  }

  absl::Status JsonUpdate(const v1::JsonUpdateRequest& req,
                          const JsonUpdatePatch& patch,
                          v1::JsonUpdateResponse* out,
                          storage::WriteBatch* batch) {
    const KeyspaceView& ns = ns_.For(req.namespace_());
    const std::string key = ns.Encode(req.key());
    absl::StatusOr<std::optional<StoredValue>> current =
        ReadForUpdate(view_, key);
    if (!current.ok()) return current.status();
    absl::StatusOr<TypedPut> put = ComputeJsonUpdate(*current, patch, limits_);
    if (!put.ok()) return put.status();
    RETURN_IF_ERROR(Account(req.key(), put->value));
    out->set_json(put->value);
    Stage(ns, req.key(), MetadataOf(*current), put->value, put->attributes);
    batch->Put(key, put->value, put->attributes);
    return absl::OkStatus();
  }

  // Sees the branch's earlier writes, like Get.
  absl::Status JsonGet(const v1::JsonGetRequest& req,
                       v1::JsonGetResponse* out) {
    const KeyspaceView& ns = ns_.For(req.namespace_());
    const Overlay& pending = pending_[ns.id()];
    std::optional<StoredValue> current;
    if (auto p = pending.find(req.key()); p != pending.end()) {
      if (p->second.has_value()) {
        current = StoredValue{p->second->value, p->second->metadata};
      }
    } else {
      absl::StatusOr<std::optional<StoredValue>> read =
          ReadForUpdate(view_, ns.Encode(req.key()));
      if (!read.ok()) return read.status();
      current = *std::move(read);
    }
    absl::StatusOr<std::string> json = ComputeJsonGet(current, req);
    if (!json.ok()) return json.status();
    RETURN_IF_ERROR(Account(req.key(), *json));
    out->set_json(*std::move(json));
    return absl::OkStatus();
  }

  absl::Status Scan(const v1::ScanRequest& req, v1::ScanResponse* out) {
    const std::string_view start = req.start_key();
    const std::string_view end = req.end_key();
    if (!end.empty() && end <= start) return absl::OkStatus();
    const KeyspaceView& ns = ns_.For(req.namespace_());
    const Overlay& pending = pending_[ns.id()];
    std::unique_ptr<storage::Iterator> it = ns.NewIterator(view_->NewIterator());
    const auto lo = pending.lower_bound(start);
    const auto hi = end.empty() ? pending.end() : pending.lower_bound(end);
    const uint64_t limit = req.limit();
    uint64_t returned = 0;
    if (!req.reverse()) {
      it->Seek(start);
      auto ov = lo;
      while (limit == 0 || returned < limit) {
        const bool has_it = it->Valid() && (end.empty() || it->key() < end);
        const bool has_ov = ov != hi;
        if (!has_it && !has_ov) break;
        const int order = !has_it   ? 1
                          : !has_ov ? -1
                                    : it->key().compare(ov->first);
        if (order < 0) {
          RETURN_IF_ERROR(Emit(req, it->key(), it->value(), it->metadata(), out,
                               &returned));
          it->Next();
          continue;
        }
        if (order == 0) it->Next();  // The Txn's own write wins.
        if (ov->second.has_value()) {
          RETURN_IF_ERROR(Emit(req, ov->first, ov->second->value,
                               ov->second->metadata, out, &returned));
        }
        ++ov;
      }
    } else {
      if (end.empty()) {
        it->SeekToLast();
      } else {
        it->Seek(end);
        if (it->Valid()) {
          it->Prev();
        } else if (it->status().ok()) {
          it->SeekToLast();
        }
      }
      auto ov = hi;  // One past the next overlay entry to visit.
      while (limit == 0 || returned < limit) {
        const bool has_it = it->Valid() && it->key() >= start;
        const bool has_ov = ov != lo;
        if (!has_it && !has_ov) break;
        auto prev = has_ov ? std::prev(ov) : ov;
        const int order = !has_it   ? -1
                          : !has_ov ? 1
                                    : it->key().compare(prev->first);
        if (order > 0) {
          RETURN_IF_ERROR(Emit(req, it->key(), it->value(), it->metadata(), out,
                               &returned));
          it->Prev();
          continue;
        }
        if (order == 0) it->Prev();
        if (prev->second.has_value()) {
          RETURN_IF_ERROR(Emit(req, prev->first, prev->second->value,
                               prev->second->metadata, out, &returned));
        }
        ov = prev;
      }
    }
    return it->status();
  }

 private:
  struct Entry {
    std::string value;
    storage::KeyMetadata metadata;
  };

  static const storage::KeyMetadata* MetadataOf(
      const std::optional<StoredValue>& v) {
    return v.has_value() ? &v->metadata : nullptr;
  }

  // Records the branch's put of `user_key` (whose current metadata is
  // *current, nullptr if it is absent) with the metadata it will have once
  // committed, so later reads of the Txn see it.
  void Stage(const KeyspaceView& ns, const std::string& user_key,
             const storage::KeyMetadata* current, std::string_view value,
             const storage::PutAttributes& attributes) {
    Entry e;
    e.value = std::string(value);
    e.metadata.attributes = attributes;
    e.metadata.mod_revision = view_->revision();
    e.metadata.create_revision =
        current != nullptr ? current->create_revision : view_->revision();
    e.metadata.version = current != nullptr ? current->version + 1 : 1;
    pending_[ns.id()][user_key] = std::move(e);
  }

  absl::Status Account(std::string_view key, std::string_view value) {
    bytes_ += key.size() + value.size() + kPairOverheadBytes;
    if (bytes_ <= limits_.max_message_bytes) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrFormat(
        "txn response would exceed %d bytes (--max_message_bytes); nothing "
        "was written; read less in one Txn (e.g. scan with a limit)",
        limits_.max_message_bytes));
  }

  absl::Status Emit(const v1::ScanRequest& req, std::string_view key,
                    std::string_view value, const storage::KeyMetadata& meta,
                    v1::ScanResponse* out, uint64_t* returned) {
    if (req.keys_only()) value = std::string_view();
    RETURN_IF_ERROR(Account(key, value));
    v1::KeyValue* kv = out->add_pairs();
    kv->set_key(key.data(), key.size());
    if (!value.empty()) kv->set_value(value.data(), value.size());
    FillMetadata(meta, kv);
    ++*returned;
    return absl::OkStatus();
  }

  const Limits& limits_;
  const NamespaceViews& ns_;
  storage::CommitView* const view_;
  // The branch's writes so far, by namespace id and user key (nullopt:
  // deleted).
  using Overlay = std::map<std::string, std::optional<Entry>, std::less<>>;
  std::map<uint64_t, Overlay> pending_;
  size_t examined_ = 0;  // Keys read by range compares.
  size_t bytes_ = 0;     // Approximate bytes of the response.
};

absl::Status RunTxn(const v1::TxnRequest& request, const PreparedTxn& prepared,
                    const Limits& limits, const NamespaceViews& ns,
                    storage::CommitView* view, storage::WriteBatch* batch,
                    v1::TxnResponse* response) {
  TxnRunner runner(limits, ns, view);
  bool succeeded = true;
  for (const v1::Compare& c : request.compare()) {
    absl::StatusOr<bool> holds = runner.Compare(c);
    if (!holds.ok()) return holds.status();
    if (!*holds) {
      succeeded = false;
      break;
    }
  }
  response->set_succeeded(succeeded);
  const auto& ops = succeeded ? request.success() : request.failure();
  response->mutable_responses()->Reserve(ops.size());
  for (int i = 0; i < ops.size(); ++i) {
    const v1::RequestOp& op = ops[i];
    v1::ResponseOp* out = response->add_responses();
    absl::Status s;  // Of a typed operation.
    switch (op.request_case()) {
      case v1::RequestOp::kGet:
        RETURN_IF_ERROR(runner.Get(op.get(), out->mutable_get()));
        break;
      case v1::RequestOp::kPut:
        RETURN_IF_ERROR(runner.Put(op.put()));
        out->mutable_put();
        break;
      case v1::RequestOp::kDelete:
        runner.Delete(op.delete_());
        out->mutable_delete_();
        break;
      case v1::RequestOp::kScan:
        RETURN_IF_ERROR(runner.Scan(op.scan(), out->mutable_scan()));
        break;
      case v1::RequestOp::kIncrement:
        s = runner.Increment(op.increment(), out->mutable_increment(), batch);
        break;
      case v1::RequestOp::kJsonGet:
        s = runner.JsonGet(op.json_get(), out->mutable_json_get());
        break;
      case v1::RequestOp::kJsonUpdate: {
        const auto& patches =
            succeeded ? prepared.success_patches : prepared.failure_patches;
        auto patch = patches.find(i);
        if (patch == patches.end()) {
          return absl::InternalError("json_update op with no parsed patch");
        }
        s = runner.JsonUpdate(op.json_update(), patch->second,
                              out->mutable_json_update(), batch);
        break;
      }
      case v1::RequestOp::REQUEST_NOT_SET:
        return absl::InternalError("txn op with no operation");  // Validated.
    }
    if (!s.ok()) {
      return Prefixed(s, absl::StrFormat("%s op %d: ",
                                         succeeded ? "success" : "failure", i));
    }
  }
  batch->Append(succeeded ? prepared.success_writes : prepared.failure_writes);
  return absl::OkStatus();
}

// ---- Commit

// The revision of the last change of stored key `key` after `since`, or
// something <= since if none: from the window of recent writes (no I/O)
// when it reaches back to `since`, else the key's newest version (a point
// lookup, exact back to the compacted revision).
absl::StatusOr<storage::Revision> PointChange(storage::CommitView* view,
                                              const std::string& key,
                                              storage::Revision since) {
  std::string next = key;
  next.push_back('\0');  // [key, key "\0") holds exactly key.
  absl::StatusOr<storage::Revision> recent =
      view->LastChangeInRange(key, next, since);
  if (recent.ok() || !absl::IsFailedPrecondition(recent.status())) {
    return recent;
  }
  return view->LastChangeRevision(key);
}

std::string UserKeyOf(const KeyspaceView& ns, std::string_view stored) {
  std::string user;
  if (!ns.Decode(stored, &user)) user.assign(stored.data(), stored.size());
  return user;
}

}  // namespace

std::string_view OpNamespace(const v1::RequestOp& op) {
  switch (op.request_case()) {
    case v1::RequestOp::kGet:
      return op.get().namespace_();
    case v1::RequestOp::kPut:
      return op.put().namespace_();
    case v1::RequestOp::kDelete:
      return op.delete_().namespace_();
    case v1::RequestOp::kScan:
      return op.scan().namespace_();
    case v1::RequestOp::kIncrement:
      return op.increment().namespace_();
    case v1::RequestOp::kJsonGet:
      return op.json_get().namespace_();
    case v1::RequestOp::kJsonUpdate:
      return op.json_update().namespace_();
    case v1::RequestOp::REQUEST_NOT_SET:
      break;
  }
  return std::string_view();
}

std::vector<std::string_view> TxnNamespaces(const v1::TxnRequest& request) {
  std::vector<std::string_view> names;
  for (const v1::Compare& c : request.compare()) names.push_back(c.namespace_());
  for (const auto* branch : {&request.success(), &request.failure()}) {
    for (const v1::RequestOp& op : *branch) names.push_back(OpNamespace(op));
  }
  return names;
}

absl::StatusOr<PreparedTxn> PrepareTxn(const v1::TxnRequest& request,
                                       const Limits& limits,
                                       const NamespaceViews& ns) {
  const size_t compares = static_cast<size_t>(request.compare_size());
  if (compares > limits.max_batch_mutations) {
    return CountError("compares", compares, limits);
  }
  for (size_t i = 0; i < compares; ++i) {
    RETURN_IF_ERROR(
        ValidateCompare(request.compare(static_cast<int>(i)), i, limits));
  }
  PreparedTxn prepared;
  RETURN_IF_ERROR(PrepareBranch(request.success(), "success", limits, ns,
                                &prepared.success_writes,
                                &prepared.success_patches));
  RETURN_IF_ERROR(PrepareBranch(request.failure(), "failure", limits, ns,
                                &prepared.failure_writes,
                                &prepared.failure_patches));
  return prepared;
}

absl::Status ExecuteTxn(const v1::TxnRequest& request,
                        const PreparedTxn& prepared, const Limits& limits,
                        const NamespaceViews& ns, storage::CommitView* view,
                        storage::WriteBatch* batch,
                        v1::TxnResponse* response) {
  response->Clear();
  absl::Status s =
      RunTxn(request, prepared, limits, ns, view, batch, response);
  if (!s.ok()) response->Clear();
  return s;
}

absl::StatusOr<storage::WriteBatch> PrepareCommit(
    const v1::CommitRequest& request, const Limits& limits,
    const NamespaceViews& ns) {
  if (request.read_revision() < 0) {
    return absl::InvalidArgumentError(
        "read_revision must be >= 0 (the revision the transaction read at)");
  }
  auto too_many = [&](std::string_view what, int n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "commit has %d %s; the limit is %d (--max_batch_mutations)", n,
        std::string(what), limits.max_batch_mutations));
  };
  if (static_cast<size_t>(request.read_keys_size()) >
      limits.max_batch_mutations) {
    return too_many("read keys", request.read_keys_size());
  }
  if (static_cast<size_t>(request.read_ranges_size()) >
      limits.max_batch_mutations) {
    return too_many("read ranges", request.read_ranges_size());
  }
  if (static_cast<size_t>(request.mutations_size()) >
      limits.max_batch_mutations) {
    return too_many("mutations", request.mutations_size());
  }
  for (int i = 0; i < request.read_keys_size(); ++i) {
    if (absl::Status s = ValidateKey(request.read_keys(i), limits); !s.ok()) {
      return Prefixed(s, absl::StrFormat("read key %d: ", i));
    }
  }
  for (int i = 0; i < request.read_ranges_size(); ++i) {
    const v1::KeyRange& r = request.read_ranges(i);
    const std::string prefix = absl::StrFormat("read range %d: ", i);
    if (r.start_key().size() > limits.max_key_bytes) {
      return BoundError(prefix, "start_key", r.start_key(), limits);
    }
    if (r.end_key().size() > limits.max_key_bytes) {
      return BoundError(prefix, "end_key", r.end_key(), limits);
    }
  }
  storage::WriteBatch batch;
  for (int i = 0; i < request.mutations_size(); ++i) {
    const v1::Mutation& m = request.mutations(i);
    absl::StatusOr<storage::WriteBatch> one;
    switch (m.op_case()) {
      case v1::Mutation::kPut:
        if (m.put().ttl_ms() != 0 || m.put().lease() != 0) {
          return ExpiryInTransactionError(absl::StrFormat("mutation %d: ", i));
        }
        one = PutToBatch(m.put(), limits, ns.For(m.put().namespace_()));
        break;
      case v1::Mutation::kDelete:
        one = DeleteToBatch(m.delete_(), limits,
                            ns.For(m.delete_().namespace_()));
        break;
      default:
        return absl::InvalidArgumentError(absl::StrFormat(
            "mutation %d has no operation (set put or delete)", i));
    }
    if (!one.ok()) {
      return Prefixed(one.status(), absl::StrFormat("mutation %d: ", i));
    }
    batch.Append(*one);
  }
  return batch;
}

absl::Status CheckCommitConflicts(const v1::CommitRequest& request,
                                  const NamespaceViews& views,
                                  storage::CommitView* view) {
  // The reads are all in the request's namespace.
  const KeyspaceView& ns = views.fallback();
  if (request.read_keys_size() == 0 && request.read_ranges_size() == 0) {
    return absl::OkStatus();  // A blind write: nothing to conflict with.
  }
  const auto since = static_cast<storage::Revision>(request.read_revision());
  // Reads at the compacted revision itself are still exact (every change
  // after it is kept), as reads at it are still served (GetSnapshotAt).
  if (since < view->compacted_revision()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "transaction too old: read_revision %d is below the compacted "
        "revision %d; start it again at a newer revision",
        since, view->compacted_revision()));
  }
  if (since > view->base_revision()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "read_revision %d is above the current revision %d", since,
        view->base_revision()));
  }
  for (const std::string& key : request.read_keys()) {
    absl::StatusOr<storage::Revision> changed =
        PointChange(view, ns.Encode(key), since);
    if (!changed.ok()) return changed.status();
    if (*changed > since) {
      return absl::AbortedError(absl::StrFormat(
          "transaction conflict: key \"%s\" changed at revision %d, after "
          "read_revision %d; nothing was written",
          Show(key), *changed, since));
    }
  }
  for (int i = 0; i < request.read_ranges_size(); ++i) {
    const v1::KeyRange& r = request.read_ranges(i);
    for (const auto& [start, end] : StoredRanges(ns, r.start_key(), r.end_key())) {
      std::string first;
      absl::StatusOr<storage::Revision> changed =
          view->LastChangeInRange(start, end, since, &first);
      if (absl::IsFailedPrecondition(changed.status())) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "transaction too old for range reads: read range %d: %s "
            "(--txn_conflict_window_keys); start it again at a newer "
            "revision",
            i, changed.status().message()));
      }
      if (!changed.ok()) return changed.status();
      if (*changed > since) {
        return absl::AbortedError(absl::StrFormat(
            "transaction conflict: key \"%s\" in read range %d [\"%s\", "
            "\"%s\") changed after read_revision %d (the range's newest "
            "change is at revision %d); nothing was written",
            Show(UserKeyOf(ns, first)), i, Show(r.start_key()),
            Show(r.end_key()), since, *changed));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<std::pair<std::string, std::string>> StoredRanges(
    const KeyspaceView& ns, std::string_view start, std::string_view end) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!end.empty() && end <= start) return out;
  if (!ns.is_default()) {
    std::string stored_end;
    if (end.empty()) {
      // The namespace prefix ends with a varint's last byte (< 0x80): its
      // successor bounds every key of the namespace.
      stored_end = ns.Encode("");
      stored_end.back() = static_cast<char>(stored_end.back() + 1);
    } else {
      stored_end = ns.Encode(end);
    }
    out.emplace_back(ns.Encode(start), std::move(stored_end));
    return out;
  }
  // Default namespace: keys below "\xff\xff" are stored as they are; keys
  // from "\xff\xff" on are stored escaped, above the reserved area.
  const std::string_view reserved = kReservedPrefix;
  if (start < reserved) {
    const std::string_view e = !end.empty() && end < reserved ? end : reserved;
    out.emplace_back(std::string(start), std::string(e));
  }
  if (end.empty() || end > reserved) {
    out.emplace_back(ns.Encode(start < reserved ? reserved : start),
                     end.empty() ? std::string() : ns.Encode(end));
  }
  return out;
}

}  // namespace strata::server
