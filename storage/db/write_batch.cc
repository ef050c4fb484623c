// WriteBatch representation (see db/write_batch_internal.h and
// docs/wal-format.md):
//   revision: fixed64 | count: fixed32 | op*
//   op := kOpPut varstring(key) varstring(value)
//       | kOpPutWithAttributes varstring(key) attributes varstring(value)
//       | kOpPutCommitted varstring(key) varstring(stored_value)
//       | kOpDelete varstring(key)
//   varstring := varint32(len) bytes[len]

#include "strata/storage/write_batch.h"

#include <algorithm>

#include "strata/storage/change_log.h"

#include "absl/strings/str_cat.h"
#include "db/write_batch_internal.h"
#include "memtable/memtable.h"
#include "util/coding.h"
#include "util/status_macros.h"
#include "util/stored_value.h"

namespace strata::storage {

WriteBatch::WriteBatch() { Clear(); }

void WriteBatch::Clear() {
  rep_.clear();
  rep_.resize(WriteBatchInternal::kHeader);
  commit_fn_ = nullptr;
}

uint32_t WriteBatch::Count() const { return DecodeFixed32(rep_.data() + 8); }

namespace {
// Room for one operation: its tag, two or three varint32 lengths, the
// attributes' varints and the bytes. Growing the string once, instead of at
// each append, saved a third of a Put's allocator work (fillrandom).
constexpr size_t kMaxOpOverhead = 1 + 3 * 5 + 3 * 10;
void ReserveFor(std::string* rep, size_t bytes) {
  rep->reserve(rep->size() + kMaxOpOverhead + bytes);
}
}  // namespace

void WriteBatch::Put(std::string_view key, std::string_view value) {
  WriteBatchInternal::SetCount(this, Count() + 1);
  ReserveFor(&rep_, key.size() + value.size());
  rep_.push_back(static_cast<char>(kOpPut));
  PutLengthPrefixed(&rep_, key);
  PutLengthPrefixed(&rep_, value);
}

void WriteBatch::Put(std::string_view key, std::string_view value,
                     const PutAttributes& attributes) {
  if (attributes.empty()) {
    Put(key, value);
    return;
  }
  WriteBatchInternal::SetCount(this, Count() + 1);
  ReserveFor(&rep_, key.size() + value.size());
  rep_.push_back(static_cast<char>(kOpPutWithAttributes));
  PutLengthPrefixed(&rep_, key);
  AppendAttributes(&rep_, attributes);
  PutLengthPrefixed(&rep_, value);
}

void WriteBatch::Delete(std::string_view key) {
  WriteBatchInternal::SetCount(this, Count() + 1);
  rep_.push_back(static_cast<char>(kOpDelete));
  PutLengthPrefixed(&rep_, key);
}

void WriteBatch::Append(const WriteBatch& source) {
  WriteBatchInternal::SetCount(this, Count() + source.Count());
  rep_.append(source.rep_.data() + WriteBatchInternal::kHeader,
              source.rep_.size() - WriteBatchInternal::kHeader);
}

namespace {

// Walks the ops of an encoded batch of either form. fn(tag, key, value)
// gets the stored value for kOpPutCommitted, the user value for kOpPut
// (attributes, if any, in *attributes).
template <class Fn>
absl::Status ForEachOp(std::string_view rep, Fn&& fn) {
  if (rep.size() < WriteBatchInternal::kHeader) {
    return absl::DataLossError("write batch: shorter than its header");
  }
  const uint32_t count = WriteBatchInternal::GetCount(rep);
  std::string_view input = rep.substr(WriteBatchInternal::kHeader);
  uint32_t found = 0;
  while (!input.empty()) {
    const auto tag = static_cast<uint8_t>(input[0]);
    input.remove_prefix(1);
    std::string_view key, value;
    PutAttributes attributes;
    bool ok = GetLengthPrefixed(&input, &key);
    switch (tag) {
      case kOpDelete:
        break;
      case kOpPut:
      case kOpPutCommitted:
        ok = ok && GetLengthPrefixed(&input, &value);
        break;
      case kOpPutWithAttributes:
        ok = ok && ConsumeAttributes(&input, &attributes) &&
             GetLengthPrefixed(&input, &value);
        break;
      default:
        return absl::DataLossError(
            absl::StrCat("write batch: unknown record tag ", int{tag}));
    }
    if (!ok) return absl::DataLossError("write batch: malformed record");
    RETURN_IF_ERROR(fn(tag, key, value, attributes));
    found++;
  }
  if (found != count) {
    return absl::DataLossError(absl::StrCat(
        "write batch: header counts ", count, " records, found ", found));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteBatch::Iterate(Handler* handler) const {
  return ForEachOp(rep_, [handler](uint8_t tag, std::string_view key,
                                   std::string_view value,
                                   const PutAttributes& attributes) {
    switch (tag) {
      case kOpPut:
      case kOpPutWithAttributes:
        handler->Put(key, value, attributes);
        return absl::OkStatus();
      case kOpDelete:
        handler->Delete(key);
        return absl::OkStatus();
      default:
        return absl::DataLossError(absl::StrCat(
            "write batch: a committed record (tag ", int{tag},
            ") in a user batch"));
    }
  });
}

void WriteBatchInternal::SetCount(WriteBatch* b, uint32_t n) {
  EncodeFixed32(&b->rep_[8], n);
}

absl::Status WriteBatchInternal::SetContents(WriteBatch* b,
                                             std::string_view contents) {
  if (contents.size() < kHeader) {
    return absl::DataLossError("write batch: shorter than its header");
  }
  b->rep_.assign(contents.data(), contents.size());
  return absl::OkStatus();
}


absl::Status WriteBatchInternal::InsertCommitted(std::string_view rep,
                                                 MemTable* mem) {
  if (rep.size() < kHeader) {
    return absl::DataLossError("write batch: shorter than its header");
  }
  const SequenceNumber revision = GetRevision(rep);
  return ForEachOp(rep, [&](uint8_t tag, std::string_view key,
                            std::string_view value,
                            const PutAttributes&) -> absl::Status {
    switch (tag) {
      case kOpDelete:
        mem->Add(revision, kTypeDeletion, key, std::string_view());
        return absl::OkStatus();
      case kOpPutCommitted:
        mem->Add(revision, kTypeValueMeta, key, value);
        return absl::OkStatus();
      default:
        return absl::DataLossError(absl::StrCat(
            "committed write batch holds a user-form record (tag ",
            int{tag}, ")"));
    }
  });
}

absl::StatusOr<SequenceNumber> WriteBatchInternal::InsertVersion1(
    std::string_view rep, MemTable* mem) {
  if (rep.size() < kHeader) {
    return absl::DataLossError("write batch: shorter than its header");
  }
  SequenceNumber seq = GetRevision(rep);
  const SequenceNumber first = seq;
  RETURN_IF_ERROR(ForEachOp(rep, [&](uint8_t tag, std::string_view key,
                                     std::string_view value,
                                     const PutAttributes&) -> absl::Status {
    switch (tag) {
      case kOpDelete:
        mem->Add(seq++, kTypeDeletion, key, std::string_view());
        return absl::OkStatus();
      case kOpPut:
        mem->Add(seq++, kTypeValue, key, value);
        return absl::OkStatus();
      default:
        return absl::DataLossError(absl::StrCat(
            "format version 1 write batch holds record tag ", int{tag}));
    }
  }));
  return seq == first ? first - 1 : seq - 1;
}

absl::Status ChangeBatch::Decode(std::shared_ptr<const std::string> record,
                                 ChangeBatch* out) {
  out->changes.clear();
  out->record = std::move(record);
  const std::string_view rep = *out->record;
  if (rep.size() < WriteBatchInternal::kHeader) {
    return absl::DataLossError("write batch: shorter than its header");
  }
  out->revision = WriteBatchInternal::GetRevision(rep);
  // The count is read from the record: a corrupt one must not size an
  // allocation. Every change takes at least one byte of the record.
  out->changes.reserve(std::min<size_t>(WriteBatchInternal::GetCount(rep),
                                        rep.size() - WriteBatchInternal::kHeader));
  return ForEachOp(rep, [out](uint8_t tag, std::string_view key,
                              std::string_view value,
                              const PutAttributes&) -> absl::Status {
    Change& c = out->changes.emplace_back();
    c.key = key;
    if (tag == kOpDelete) {
      c.type = Change::Type::kDelete;
      c.metadata.mod_revision = out->revision;
      return absl::OkStatus();
    }
    if (tag != kOpPutCommitted) {
      return absl::DataLossError(absl::StrCat(
          "committed write batch holds a user-form record (tag ", int{tag},
          ")"));
    }
    c.type = Change::Type::kPut;
    return DecodeStoredValue(kTypeValueMeta, out->revision, value,
                             &c.metadata, &c.value);
  });
}

CommittedBatchBuilder::CommittedBatchBuilder(Revision revision) {
  rep_.resize(WriteBatchInternal::kHeader);
  EncodeFixed64(rep_.data(), revision);
}

void CommittedBatchBuilder::Put(std::string_view key, const KeyMetadata& meta,
                                std::string_view value) {
  ReserveFor(&rep_, kMaxMetadataLength + key.size() + value.size());
  rep_.push_back(static_cast<char>(kOpPutCommitted));
  PutLengthPrefixed(&rep_, key);
  // varstring(stored_value), stored_value = varint32(meta_len) meta value.
  char buf[kMaxMetadataLength];
  const size_t meta_len = EncodeMetadata(meta, buf);
  const size_t stored_len =
      static_cast<size_t>(VarintLength(meta_len)) + meta_len + value.size();
  PutVarint32(&rep_, static_cast<uint32_t>(stored_len));
  PutVarint32(&rep_, static_cast<uint32_t>(meta_len));
  rep_.append(buf, meta_len);
  rep_.append(value.data(), value.size());
  count_++;
}

void CommittedBatchBuilder::Delete(std::string_view key) {
  rep_.push_back(static_cast<char>(kOpDelete));
  PutLengthPrefixed(&rep_, key);
  count_++;
}

std::string CommittedBatchBuilder::Finish() {
  EncodeFixed32(rep_.data() + 8, count_);
  std::string out = std::move(rep_);
  rep_.clear();
  count_ = 0;
  return out;
}

}  // namespace strata::storage
