// Fuzz target: the request validation and conversion path of the KV
// service (server/handlers.h), fed the same protobuf bytes the server
// receives, under fuzzed limits.
// Properties: no crash, no sanitizer report; an accepted request respects
// every limit (non-empty keys within max_key_bytes, values within
// max_value_bytes, at most max_batch_mutations, one batch operation per
// mutation); a rejected one is InvalidArgument; a Scan never returns a key
// outside [start, end) or more than `limit` pairs.

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "server/handlers.h"
#include "server/keyspace.h"

namespace {

using namespace strata;

// An iterator over a sorted vector of pairs.
class VectorIterator final : public storage::Iterator {
 public:
  explicit VectorIterator(std::vector<std::pair<std::string, std::string>> kv)
      : kv_(std::move(kv)), pos_(kv_.size()) {}
  bool Valid() const override { return pos_ < kv_.size(); }
  void SeekToFirst() override { pos_ = 0; }
  void SeekToLast() override { pos_ = kv_.empty() ? 0 : kv_.size() - 1; }
  void Seek(std::string_view target) override {
    pos_ = 0;
    while (pos_ < kv_.size() && kv_[pos_].first < target) pos_++;
  }
  void Next() override { pos_++; }
  void Prev() override { pos_ = pos_ == 0 ? kv_.size() : pos_ - 1; }
  std::string_view key() const override { return kv_[pos_].first; }
  std::string_view value() const override { return kv_[pos_].second; }
  absl::Status status() const override { return absl::OkStatus(); }

 private:
  std::vector<std::pair<std::string, std::string>> kv_;
  size_t pos_;
};

class Checker final : public storage::WriteBatch::Handler {
 public:
  explicit Checker(const server::Limits& l) : limits(l) {}
  void Put(std::string_view k, std::string_view v,
           const storage::PutAttributes&) override {
    Key(k);
    if (v.size() > limits.max_value_bytes) std::abort();
    n++;
  }
  void Delete(std::string_view k) override {
    Key(k);
    n++;
  }
  // `k` is the stored key (server/keyspace.h): the limits apply to the user
  // key it encodes, which must be a default-namespace key (a request never
  // writes into the reserved area). A user key beginning "\xff\xff" is
  // stored one byte longer, so checking `k` itself would be wrong.
  void Key(std::string_view k) {
    const server::DecodedKey d = server::DecodeStoredKey(k);
    if (d.kind != server::DecodedKey::Kind::kUser || d.namespace_id != 0) {
      std::abort();
    }
    if (d.key.empty() || d.key.size() > limits.max_key_bytes) std::abort();
  }
  const server::Limits& limits;
  uint32_t n = 0;
};

void CheckBatch(const absl::StatusOr<storage::WriteBatch>& batch,
                const server::Limits& limits, size_t expected_ops) {
  if (!batch.ok()) {
    if (!absl::IsInvalidArgument(batch.status())) std::abort();
    return;
  }
  Checker checker(limits);
  if (!batch->Iterate(&checker).ok()) std::abort();
  if (checker.n != batch->Count() || checker.n != expected_ops) std::abort();
  if (checker.n > limits.max_batch_mutations) std::abort();
}

void CheckInvalid(const absl::Status& s) {
  if (!s.ok() && !absl::IsInvalidArgument(s)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t method = in.Byte();
  server::Limits limits;
  limits.max_key_bytes = 1 + in.Byte() % 64;
  limits.max_value_bytes = in.Byte() % 128;
  limits.max_batch_mutations = 1 + in.Byte() % 16;
  limits.max_message_bytes = 1 + (in.Byte() << 4);
  if (!server::ValidateLimits(limits).ok()) {
    limits = server::Limits();  // The defaults are valid.
  }
  const std::string_view bytes = in.Rest();
  CheckInvalid(server::ValidateRequestSize(bytes.size(), limits));
  switch (method % 5) {
    case 0: {
      v1::GetRequest req;
      if (!req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) break;
      CheckInvalid(server::ValidateGet(req, limits));
      v1::GetResponse resp;
      // Found (the key as its value), absent, or an engine error.
      absl::StatusOr<storage::GetResult> result;
      switch (req.key().size() % 3) {
        case 0:
          result = storage::GetResult{.found = true,
                                      .value = req.key(),
                                      .metadata = {},
                                      .revision = 7};
          break;
        case 1:
          result = storage::GetResult{.found = false,
                                      .value = {},
                                      .metadata = {},
                                      .revision = 7};
          break;
        default:
          result = absl::DataLossError("corrupt block");
      }
      if (server::FillGetResponse(std::move(result), &resp).ok() !=
          (req.key().size() % 3 != 2)) {
        std::abort();
      }
      break;
    }
    case 1: {
      v1::PutRequest req;
      if (!req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) break;
      CheckBatch(server::PutToBatch(req, limits), limits, 1);
      break;
    }
    case 2: {
      v1::DeleteRequest req;
      if (!req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) break;
      CheckBatch(server::DeleteToBatch(req, limits), limits, 1);
      break;
    }
    case 3: {
      v1::WriteRequest req;
      if (!req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) break;
      CheckBatch(server::WriteToBatch(req, limits), limits,
                 static_cast<size_t>(req.mutations_size()));
      break;
    }
    case 4: {
      v1::ScanRequest req;
      if (!req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) break;
      CheckInvalid(server::ValidateScan(req, limits));
      std::vector<std::pair<std::string, std::string>> kv;
      for (char c = 'a'; c <= 'z'; c++) {
        kv.emplace_back(std::string(1, c), std::string(c - 'a', c));
        kv.emplace_back(std::string(2, c), "");
      }
      std::sort(kv.begin(), kv.end());
      VectorIterator it(std::move(kv));
      server::ScanCursor cursor;
      uint64_t pairs = 0;
      for (int batch = 0; !cursor.done && batch < 1000; batch++) {
        v1::ScanResponse resp;
        if (!server::FillScanResponse(&it, req, 1 + batch % 40, &cursor, &resp).ok()) {
          std::abort();
        }
        for (const auto& p : resp.pairs()) {
          if (p.key() < req.start_key()) std::abort();
          if (!req.end_key().empty() && p.key() >= req.end_key()) std::abort();
          if (req.keys_only() && !p.value().empty()) std::abort();
          pairs++;
        }
      }
      if (!cursor.done) std::abort();  // 52 pairs always fit in 1000 batches.
      if (req.limit() != 0 && pairs > req.limit()) std::abort();
      break;
    }
  }
  return 0;
}
