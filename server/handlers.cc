#include "server/handlers.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "server/typed_values.h"

namespace strata::server {
namespace {

// Error text shared by the key checks of every RPC, prefixed for Write with
// the mutation index ("mutation 3: ").
absl::Status KeyError(std::string_view prefix, std::string_view key,
                      const Limits& limits) {
  if (key.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%skey is empty; keys must be 1..%d bytes (--max_key_bytes)", prefix,
        limits.max_key_bytes));
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "%skey is %d bytes; the limit is %d (--max_key_bytes)", prefix,
      key.size(), limits.max_key_bytes));
}

bool KeyOk(std::string_view key, const Limits& limits) {
  return !key.empty() && key.size() <= limits.max_key_bytes;
}

absl::Status ValueError(std::string_view prefix, std::string_view value,
                        const Limits& limits) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "%svalue is %d bytes; the limit is %d (--max_value_bytes)", prefix,
      value.size(), limits.max_value_bytes));
}

// Appends put (whose key and value size were checked) to batch: its value
// checked against its type (and a JSON value normalized), stored with the
// type. Errors start with `prefix`.
absl::Status AppendPut(const v1::PutRequest& put, const KeyspaceView& ns,
                       const Limits& limits, std::string_view prefix,
                       storage::WriteBatch* batch) {
  if (put.type() == v1::BYTES) {
    batch->Put(ns.Encode(put.key()), put.value());
    return absl::OkStatus();
  }
  std::string normalized;
  storage::PutAttributes attributes;
  absl::StatusOr<std::string_view> value =
      PrepareTypedPut(put.type(), put.value(), &normalized, &attributes);
  if (!value.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s%s", prefix, value.status().message()));
  }
  if (value->size() > limits.max_value_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%snormalized JSON value is %d bytes; the limit is %d "
        "(--max_value_bytes)",
        prefix, value->size(), limits.max_value_bytes));
  }
  batch->Put(ns.Encode(put.key()), *value, attributes);
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateKey(std::string_view key, const Limits& limits) {
  if (KeyOk(key, limits)) return absl::OkStatus();
  return KeyError("", key, limits);
}

absl::Status ValidateValue(std::string_view value, const Limits& limits) {
  if (value.size() <= limits.max_value_bytes) return absl::OkStatus();
  return ValueError("", value, limits);
}

absl::Status ValidateGet(const v1::GetRequest& request, const Limits& limits) {
  if (absl::Status s = ValidateKey(request.key(), limits); !s.ok()) return s;
  return ValidateRevision(request.revision(), "revision");
}

absl::Status FillGetResponse(absl::StatusOr<storage::GetResult> result,
                             v1::GetResponse* response) {
  response->Clear();
  if (!result.ok()) return result.status();
  response->mutable_header()->set_revision(ToWire(result->revision));
  if (!result->found) return absl::OkStatus();
  response->set_found(true);
  response->set_value(std::move(result->value));
  FillMetadata(result->metadata, response);
  return absl::OkStatus();
}

absl::Status ValidateRevision(int64_t revision, std::string_view what) {
  if (revision < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s must be >= 0 (0 = the latest)", what));
  }
  return absl::OkStatus();
}

absl::Status ValidateBatchGet(const v1::BatchGetRequest& request,
                              const Limits& limits) {
  const size_t n = static_cast<size_t>(request.keys_size());
  if (n == 0 || n > limits.max_batch_mutations) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "batch get has %d keys; it needs 1 to %d (--max_batch_mutations)", n,
        limits.max_batch_mutations));
  }
  for (size_t i = 0; i < n; ++i) {
    const std::string& key = request.keys(static_cast<int>(i));
    if (!KeyOk(key, limits)) {
      return KeyError(absl::StrFormat("key %d: ", i), key, limits);
    }
  }
  return ValidateRevision(request.revision(), "revision");
}

absl::Status ValidateDeleteRange(const v1::DeleteRangeRequest& request,
                                 const Limits& limits) {
  for (const std::string* k : {&request.start_key(), &request.end_key()}) {
    if (k->size() > limits.max_key_bytes) {
      return KeyError(k == &request.start_key() ? "start_key: " : "end_key: ",
                      *k, limits);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<storage::WriteBatch> PutToBatch(const v1::PutRequest& request,
                                               const Limits& limits,
                                               const KeyspaceView& ns) {
  if (!KeyOk(request.key(), limits)) return KeyError("", request.key(), limits);
  if (request.value().size() > limits.max_value_bytes) {
    return ValueError("", request.value(), limits);
  }
  storage::WriteBatch batch;
  if (absl::Status s = AppendPut(request, ns, limits, "", &batch); !s.ok()) {
    return s;
  }
  return batch;
}

std::vector<std::string_view> MutationNamespaces(
    const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations) {
  std::vector<std::string_view> names;
  names.reserve(static_cast<size_t>(mutations.size()));
  for (const v1::Mutation& m : mutations) {
    names.push_back(m.has_put() ? m.put().namespace_()
                                : m.delete_().namespace_());
  }
  return names;
}

bool HasPut(const google::protobuf::RepeatedPtrField<v1::Mutation>& mutations) {
  for (const v1::Mutation& m : mutations) {
    if (m.has_put()) return true;
  }
  return false;
}

absl::StatusOr<storage::WriteBatch> DeleteToBatch(
    const v1::DeleteRequest& request, const Limits& limits,
    const KeyspaceView& ns) {
  if (!KeyOk(request.key(), limits)) return KeyError("", request.key(), limits);
  storage::WriteBatch batch;
  batch.Delete(ns.Encode(request.key()));
  return batch;
}

absl::StatusOr<storage::WriteBatch> WriteToBatch(
    const v1::WriteRequest& request, const Limits& limits,
    const NamespaceViews& ns) {
  const size_t n = static_cast<size_t>(request.mutations_size());
  if (n > limits.max_batch_mutations) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "write has %d mutations; the limit is %d (--max_batch_mutations)", n,
        limits.max_batch_mutations));
  }
  // Validate everything before building, so a bad mutation late in a large
  // batch costs no copying.
  for (size_t i = 0; i < n; ++i) {
    const v1::Mutation& m = request.mutations(static_cast<int>(i));
    switch (m.op_case()) {
      case v1::Mutation::kPut:
        if (!KeyOk(m.put().key(), limits)) {
          return KeyError(absl::StrFormat("mutation %d: ", i), m.put().key(),
                          limits);
        }
        if (m.put().value().size() > limits.max_value_bytes) {
          return ValueError(absl::StrFormat("mutation %d: ", i),
                            m.put().value(), limits);
        }
        break;
      case v1::Mutation::kDelete:
        if (!KeyOk(m.delete_().key(), limits)) {
          return KeyError(absl::StrFormat("mutation %d: ", i),
                          m.delete_().key(), limits);
        }
        break;
      case v1::Mutation::OP_NOT_SET:
        return absl::InvalidArgumentError(absl::StrFormat(
            "mutation %d has no operation (set put or delete)", i));
    }
  }
  storage::WriteBatch batch;
  for (size_t i = 0; i < n; ++i) {
    const v1::Mutation& m = request.mutations(static_cast<int>(i));
    if (m.op_case() == v1::Mutation::kPut) {
      absl::Status s = AppendPut(m.put(), ns.For(m.put().namespace_()), limits,
                                 absl::StrFormat("mutation %d: ", i), &batch);
      if (!s.ok()) return s;
    } else {
      batch.Delete(ns.For(m.delete_().namespace_()).Encode(m.delete_().key()));
    }
  }
  return batch;
}

absl::Status ValidateScan(const v1::ScanRequest& request,
                          const Limits& /*limits*/) {
  return ValidateRevision(request.revision(), "revision");
}

absl::Status FillScanResponse(storage::Iterator* it,
                              const v1::ScanRequest& request,
                              size_t batch_bytes, ScanCursor* cursor,
                              v1::ScanResponse* response,
                              size_t batch_pairs) {
  if (cursor->done) return absl::OkStatus();
  const std::string_view start = request.start_key();
  const std::string_view end = request.end_key();
  const bool reverse = request.reverse();
  if (!cursor->started) {
    cursor->started = true;
    if (!end.empty() && end <= start) {
      cursor->done = true;
      return absl::OkStatus();
    }
    if (!reverse) {
      it->Seek(start);
    } else if (end.empty()) {
      it->SeekToLast();
    } else {
      // The last key below end: seek to end, then step back once.
      it->Seek(end);
      if (it->Valid()) {
        it->Prev();
      } else if (it->status().ok()) {
        it->SeekToLast();
      }
    }
  }
  const uint64_t limit = request.limit();
  size_t bytes = 0;
  while (it->Valid()) {
    if (limit != 0 && cursor->returned >= limit) {
      cursor->done = true;
      return absl::OkStatus();
    }
    const std::string_view key = it->key();
    if (reverse ? key < start : (!end.empty() && key >= end)) {
      cursor->done = true;
      return absl::OkStatus();
    }
    const std::string_view value =
        request.keys_only() ? std::string_view() : it->value();
    const size_t pair_bytes = key.size() + value.size();
    // The first pair always goes in, so a pair above batch_bytes travels
    // alone instead of stalling the scan.
    if (bytes > 0 && bytes + pair_bytes > batch_bytes) return absl::OkStatus();
    if (static_cast<size_t>(response->pairs_size()) >= batch_pairs) {
      return absl::OkStatus();
    }
    v1::KeyValue* kv = response->add_pairs();
    kv->set_key(key.data(), key.size());
    if (!value.empty()) kv->set_value(value.data(), value.size());
    FillMetadata(it->metadata(), kv);
    bytes += pair_bytes;
    cursor->returned++;
    cursor->bytes += pair_bytes;
    if (limit != 0 && cursor->returned >= limit) {
      // Stop without stepping on: the next pair may cost a disk read.
      cursor->done = true;
      return absl::OkStatus();
    }
    if (reverse) {
      it->Prev();
    } else {
      it->Next();
    }
  }
  // The iterator is exhausted or failed.
  cursor->done = true;
  return it->status();
}

}  // namespace strata::server
