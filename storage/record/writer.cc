// Record writer. Grammar (see format.h and docs/wal-format.md):
//   file     := "STRATAWL" fixed32(version=1) fixed32(checksum) block*
//   block    := fragment* 0x00{0..6}
//   fragment := fixed32(Checksum32(payload, seed=type)) fixed16(length)
//               u8(type) payload
//   record   := FULL | FIRST MIDDLE* LAST

#include "record/writer.h"

#include <algorithm>
#include <utility>

#include "util/checksum.h"
#include "util/coding.h"

namespace strata::storage::record {

Writer::Writer(std::unique_ptr<WritableFile> file, uint32_t version)
    : file_(std::move(file)) {
  status_ = file_->Append(FileHeader(version));
  offset_ = kFileHeaderSize;
}

Writer::~Writer() = default;

absl::Status Writer::Check(absl::Status s) {
  if (!s.ok() && status_.ok()) status_ = s;
  return s;
}

absl::Status Writer::AddRecord(std::string_view payload) {
  if (!status_.ok()) return status_;
  const char* ptr = payload.data();
  size_t left = payload.size();
  // An empty payload still emits one (empty) FULL fragment.
  bool begin = true;
  do {
    size_t leftover = kBlockSize - offset_ % kBlockSize;
    if (leftover < kHeaderSize) {
      // Too small for a fragment header: pad the block with zeros.
      static constexpr char kZeros[kHeaderSize] = {};
      if (absl::Status s = Check(file_->Append({kZeros, leftover})); !s.ok()) {
        return s;
      }
      offset_ += leftover;
      leftover = kBlockSize;
    }
    // May be 0 when exactly kHeaderSize bytes are left: an empty FIRST
    // fragment then fills the block.
    const size_t avail = leftover - kHeaderSize;
    const size_t n = std::min(left, avail);
    const bool end = (n == left);
    const FragmentType type = begin && end ? kFullType
                            : begin      ? kFirstType
                            : end        ? kLastType
                                         : kMiddleType;
    if (absl::Status s = EmitFragment(type, ptr, n); !s.ok()) return s;
    ptr += n;
    left -= n;
    begin = false;
  } while (left > 0);
  return Check(file_->Flush());
}

absl::Status Writer::EmitFragment(FragmentType type, const char* data,
                                  size_t n) {
  char header[kHeaderSize];
  EncodeFixed32(header, Checksum32(data, n, type));
  header[4] = static_cast<char>(n & 0xff);
  header[5] = static_cast<char>(n >> 8);
  header[6] = static_cast<char>(type);
  absl::Status s = file_->Append({header, kHeaderSize});
  if (s.ok() && n > 0) s = file_->Append({data, n});
  offset_ += kHeaderSize + n;
  return Check(std::move(s));
}

absl::Status Writer::Sync() {
  if (!status_.ok()) return status_;
  return Check(file_->Sync());
}

absl::Status Writer::Close() {
  if (file_ == nullptr) {
    return absl::FailedPreconditionError("record writer already closed");
  }
  absl::Status s = file_->Close();
  file_.reset();
  if (!status_.ok()) return status_;
  status_ = s.ok() ? absl::FailedPreconditionError("record writer closed") : s;
  return s;
}

}  // namespace strata::storage::record
