// The parts of Env shared by every implementation: copying a file and the
// default LinkFile (a copy).

#include <algorithm>
#include <memory>
#include <string>

#include "strata/storage/env.h"
#include "util/status_macros.h"

namespace strata::storage {

absl::StatusOr<uint64_t> CopyFile(Env* env, const std::string& from,
                                  const std::string& to, uint64_t max_bytes) {
  ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> in,
                   env->NewSequentialFile(from));
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> out,
                   env->NewWritableFile(to));
  constexpr size_t kBuffer = 1 << 20;
  auto scratch = std::make_unique<char[]>(kBuffer);
  uint64_t copied = 0;
  absl::Status s;
  while (copied < max_bytes) {
    size_t n = static_cast<size_t>(
        std::min<uint64_t>(kBuffer, max_bytes - copied));
    absl::StatusOr<std::string_view> data = in->Read(n, scratch.get());
    if (!data.ok()) {
      s = data.status();
      break;
    }
    if (data->empty()) break;
    s = out->Append(*data);
    if (!s.ok()) break;
    copied += data->size();
  }
  if (s.ok()) s = out->Sync();
  absl::Status closed = out->Close();
  if (s.ok()) s = closed;
  if (!s.ok()) {
    env->RemoveFile(to).IgnoreError();
    return s;
  }
  return copied;
}

absl::StatusOr<std::unique_ptr<RandomAccessFile>>
Env::NewMappedRandomAccessFile(const std::string& path) {
  return NewRandomAccessFile(path);
}

absl::Status Env::LinkFile(const std::string& from, const std::string& to) {
  if (FileExists(to)) {
    return absl::InternalError("link " + from + " to " + to +
                               ": File exists");
  }
  return CopyFile(this, from, to).status();
}

}  // namespace strata::storage
