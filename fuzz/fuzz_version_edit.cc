// Fuzz target: the manifest's version-edit decoder.
// Properties: no crash, no sanitizer report; a decode error is DataLoss;
// an edit that decodes re-encodes to bytes that decode to the same edit
// (encode(decode(x)) is a fixed point).

#include <cstdint>
#include <cstdlib>
#include <string>

#include "version/version_edit.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using strata::storage::VersionEdit;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  VersionEdit edit;
  absl::Status s = edit.DecodeFrom(input);
  if (!s.ok()) {
    if (!absl::IsDataLoss(s)) std::abort();
    return 0;
  }
  for (const auto& [level, f] : edit.new_files()) {
    if (level < 0 || level >= strata::storage::kNumLevels) std::abort();
  }
  std::string once;
  edit.EncodeTo(&once);
  VersionEdit again;
  if (!again.DecodeFrom(once).ok()) std::abort();
  std::string twice;
  again.EncodeTo(&twice);
  if (once != twice) std::abort();
  return 0;
}
