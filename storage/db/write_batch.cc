// WriteBatch representation:
//   sequence: fixed64 | count: fixed32 | record[count]
//   record := kTypeValue varstring(key) varstring(value)
//           | kTypeDeletion varstring(key)
//   varstring := varint32(len) bytes[len]

#include "strata/storage/write_batch.h"

#include "absl/strings/str_cat.h"
#include "db/write_batch_internal.h"
#include "memtable/memtable.h"
#include "util/coding.h"

namespace strata::storage {

WriteBatch::WriteBatch() { Clear(); }

void WriteBatch::Clear() {
  rep_.clear();
  rep_.resize(WriteBatchInternal::kHeader);
}

uint32_t WriteBatch::Count() const { return DecodeFixed32(rep_.data() + 8); }

void WriteBatch::Put(std::string_view key, std::string_view value) {
  WriteBatchInternal::SetCount(this, Count() + 1);
  rep_.push_back(static_cast<char>(kTypeValue));
  PutLengthPrefixed(&rep_, key);
  PutLengthPrefixed(&rep_, value);
}

void WriteBatch::Delete(std::string_view key) {
  WriteBatchInternal::SetCount(this, Count() + 1);
  rep_.push_back(static_cast<char>(kTypeDeletion));
  PutLengthPrefixed(&rep_, key);
}

void WriteBatch::Append(const WriteBatch& source) {
  WriteBatchInternal::SetCount(this, Count() + source.Count());
  rep_.append(source.rep_.data() + WriteBatchInternal::kHeader,
              source.rep_.size() - WriteBatchInternal::kHeader);
}

absl::Status WriteBatch::Iterate(Handler* handler) const {
  std::string_view input(rep_);
  if (input.size() < WriteBatchInternal::kHeader) {
    return absl::DataLossError("write batch: shorter than its header");
  }
  input.remove_prefix(WriteBatchInternal::kHeader);
  uint32_t found = 0;
  while (!input.empty()) {
    char tag = input[0];
    input.remove_prefix(1);
    std::string_view key, value;
    switch (tag) {
      case kTypeValue:
        if (!GetLengthPrefixed(&input, &key) ||
            !GetLengthPrefixed(&input, &value)) {
          return absl::DataLossError("write batch: malformed put record");
        }
        handler->Put(key, value);
        break;
      case kTypeDeletion:
        if (!GetLengthPrefixed(&input, &key)) {
          return absl::DataLossError("write batch: malformed delete record");
        }
        handler->Delete(key);
        break;
      default:
        return absl::DataLossError(
            absl::StrCat("write batch: unknown record tag ", int{tag}));
    }
    found++;
  }
  if (found != Count()) {
    return absl::DataLossError(absl::StrCat("write batch: header counts ",
                                            Count(), " records, found ",
                                            found));
  }
  return absl::OkStatus();
}

void WriteBatchInternal::SetCount(WriteBatch* b, uint32_t n) {
  EncodeFixed32(&b->rep_[8], n);
}

SequenceNumber WriteBatchInternal::Sequence(const WriteBatch* b) {
  return DecodeFixed64(b->rep_.data());
}

void WriteBatchInternal::SetSequence(WriteBatch* b, SequenceNumber seq) {
  EncodeFixed64(&b->rep_[0], seq);
}

absl::Status WriteBatchInternal::SetContents(WriteBatch* b,
                                             std::string_view contents) {
  if (contents.size() < kHeader) {
    return absl::DataLossError("write batch: shorter than its header");
  }
  b->rep_.assign(contents.data(), contents.size());
  return absl::OkStatus();
}

namespace {

class MemTableInserter final : public WriteBatch::Handler {
 public:
  MemTableInserter(SequenceNumber seq, MemTable* mem) : seq_(seq), mem_(mem) {}
  void Put(std::string_view key, std::string_view value) override {
    mem_->Add(seq_++, kTypeValue, key, value);
  }
  void Delete(std::string_view key) override {
    mem_->Add(seq_++, kTypeDeletion, key, std::string_view());
  }

 private:
  SequenceNumber seq_;
  MemTable* const mem_;
};

class UserBytesCounter final : public WriteBatch::Handler {
 public:
  void Put(std::string_view key, std::string_view value) override {
    bytes += key.size() + value.size();
  }
  void Delete(std::string_view key) override { bytes += key.size(); }
  uint64_t bytes = 0;
};

}  // namespace

absl::Status WriteBatchInternal::InsertInto(const WriteBatch* b,
                                            MemTable* memtable) {
  MemTableInserter inserter(Sequence(b), memtable);
  return b->Iterate(&inserter);
}

uint64_t WriteBatchInternal::UserBytes(const WriteBatch* b) {
  UserBytesCounter counter;
  b->Iterate(&counter).IgnoreError();
  return counter.bytes;
}

}  // namespace strata::storage
