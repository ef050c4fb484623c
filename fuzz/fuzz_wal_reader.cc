// Fuzz target: the WAL (and manifest) reader on arbitrary file contents,
// and every record it returns decoded as a write batch, as recovery does.
// Properties: no crash, no sanitizer report, no hang; errors are DataLoss
// (or the torn-tail end of log); a batch that decodes iterates exactly its
// count of operations.

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "db/write_batch_internal.h"
#include "fuzz/fuzz_util.h"
#include "strata/storage/change_log.h"
#include "record/reader.h"
#include "spdlog/spdlog.h"

namespace {

class Counter final : public strata::storage::WriteBatch::Handler {
 public:
  void Put(std::string_view k, std::string_view v,
           const strata::storage::PutAttributes&) override {
    n++;
    bytes += k.size() + v.size();
  }
  void Delete(std::string_view k) override {
    n++;
    bytes += k.size();
  }
  uint32_t n = 0;
  size_t bytes = 0;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);  // Torn tails are logged.
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::storage;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  record::Reader reader(
      std::make_unique<strata::fuzz::StringSequentialFile>(input), "fuzz.wal",
      record::kWalFormatVersion);
  std::string scratch;
  std::string_view record;
  WriteBatch batch;
  uint64_t total = 0;
  while (true) {
    auto more = reader.ReadRecord(&record, &scratch);
    if (!more.ok()) {
      if (!absl::IsDataLoss(more.status())) std::abort();
      // Sticky: asking again gives the same error.
      if (reader.ReadRecord(&record, &scratch).status() != more.status()) {
        std::abort();
      }
      break;
    }
    if (!*more) break;
    total += record.size();
    if (total > size) std::abort();  // Records come from the input.
    if (reader.format_version() == record::kWalFormatVersion) {
      // A committed batch, as the change log and recovery decode it.
      ChangeBatch changes;
      absl::Status s = ChangeBatch::Decode(
          std::make_shared<const std::string>(record), &changes);
      if (!s.ok() && !absl::IsDataLoss(s)) std::abort();
      if (s.ok() && changes.changes.size() > record.size()) std::abort();
      continue;
    }
    if (!WriteBatchInternal::SetContents(&batch, record).ok()) continue;
    Counter counter;
    absl::Status s = batch.Iterate(&counter);
    if (s.ok() && counter.bytes > record.size()) std::abort();
    if (!s.ok() && !absl::IsDataLoss(s)) std::abort();
  }
  return 0;
}
