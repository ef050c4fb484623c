#include "table/format.h"

#include <cstring>
#include <new>

#include <lz4.h>
#include <snappy.h>
#include <zstd.h>

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t for streaming on the stack.
#include <xxhash.h>

#include "absl/strings/str_format.h"
#include "util/checksum.h"
#include "util/coding.h"
#include "util/status_macros.h"

namespace strata::storage {

namespace {

// zstd contexts are expensive to create (~100s of KiB); keep one of each
// per thread.
struct ZstdContexts {
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  ~ZstdContexts() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
};
ZstdContexts& ThreadZstd() {
  thread_local ZstdContexts contexts;
  return contexts;
}

// zstd level for data blocks: the library default, a good balance between
// compaction speed and size (decompression speed barely depends on it).
constexpr int kZstdLevel = ZSTD_CLEVEL_DEFAULT;

// Allocates n bytes (n may be 0) or returns nullptr; never throws.
std::unique_ptr<char[]> Allocate(uint64_t n) {
  if (n > SIZE_MAX - 1) return nullptr;
  return std::unique_ptr<char[]>(new (std::nothrow) char[n == 0 ? 1 : n]);
}

}  // namespace

void BlockHandle::EncodeTo(std::string* dst) const {
  PutVarint64(dst, offset_);
  PutVarint64(dst, size_);
}

bool BlockHandle::DecodeFrom(std::string_view* input) {
  return GetVarint64(input, &offset_) && GetVarint64(input, &size_);
}

bool BlockHandle::FitsBefore(uint64_t limit) const {
  return offset_ <= limit && size_ <= limit - offset_ &&
         limit - offset_ - size_ >= kBlockTrailerSize;
}

void Footer::EncodeTo(std::string* dst) const {
  const size_t start = dst->size();
  filter_handle.EncodeTo(dst);
  index_handle.EncodeTo(dst);
  properties_handle.EncodeTo(dst);
  dst->resize(start + kHandleAreaLength, '\0');
  PutFixed32(dst, format_version);
  PutFixed32(dst, Checksum32(dst->data() + start, kHandleAreaLength + 4,
                             kFooterChecksumSeed));
  PutFixed64(dst, kTableMagicNumber);
}

absl::StatusOr<Footer> Footer::DecodeFrom(std::string_view input,
                                          const std::string& filename,
                                          uint64_t offset) {
  if (input.size() != kEncodedLength) {
    return TableCorruption(filename, offset, "footer is truncated");
  }
  const char* p = input.data();
  if (DecodeFixed64(p + kHandleAreaLength + 8) != kTableMagicNumber) {
    return TableCorruption(filename, offset,
                           "bad magic number (not an sstable, or truncated)");
  }
  uint32_t stored = DecodeFixed32(p + kHandleAreaLength + 4);
  uint32_t actual = Checksum32(p, kHandleAreaLength + 4, kFooterChecksumSeed);
  if (stored != actual) {
    return TableCorruption(
        filename, offset,
        absl::StrFormat("footer checksum mismatch (stored 0x%08x, computed "
                        "0x%08x)",
                        stored, actual));
  }
  Footer footer;
  footer.format_version = DecodeFixed32(p + kHandleAreaLength);
  if (footer.format_version != kTableFormatVersion) {
    // A valid footer from another version: not corruption.
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s: unsupported sstable format version %d (this build reads %d)",
        filename, footer.format_version, kTableFormatVersion));
  }
  std::string_view handles = input.substr(0, kHandleAreaLength);
  if (!footer.filter_handle.DecodeFrom(&handles) ||
      !footer.index_handle.DecodeFrom(&handles) ||
      !footer.properties_handle.DecodeFrom(&handles)) {
    return TableCorruption(filename, offset, "bad block handle in footer");
  }
  return footer;
}

absl::Status TableCorruption(const std::string& filename, uint64_t offset,
                             std::string_view what) {
  return absl::DataLossError(absl::StrFormat(
      "%s: corrupt sstable at offset %d: %s", filename, offset, what));
}

uint32_t BlockChecksum(std::string_view contents, CompressionType type) {
  XXH3_state_t state;
  // A stack state must be initialized before reset_withSeed: libxxhash
  // 0.8.1 compares the seed field it finds there with the new seed and skips
  // deriving the secret when they match, so a stale stack slot that held an
  // earlier state with the same seed yields a garbage checksum.
  XXH3_INITSTATE(&state);
  XXH3_64bits_reset_withSeed(&state, kBlockChecksumSeed);
  XXH3_64bits_update(&state, contents.data(), contents.size());
  const char t = static_cast<char>(type);
  XXH3_64bits_update(&state, &t, 1);
  return static_cast<uint32_t>(XXH3_64bits_digest(&state));
}

bool CompressBlock(CompressionType type, std::string_view raw,
                   std::string* out) {
  out->clear();
  switch (type) {
    case CompressionType::kNone:
      return false;
    case CompressionType::kSnappy: {
      out->resize(snappy::MaxCompressedLength(raw.size()));
      size_t n = 0;
      snappy::RawCompress(raw.data(), raw.size(), out->data(), &n);
      out->resize(n);
      break;
    }
    case CompressionType::kLZ4: {
      PutVarint32(out, static_cast<uint32_t>(raw.size()));
      const size_t header = out->size();
      const int bound = LZ4_compressBound(static_cast<int>(raw.size()));
      if (bound <= 0) return false;
      out->resize(header + static_cast<size_t>(bound));
      int n = LZ4_compress_default(raw.data(), out->data() + header,
                                   static_cast<int>(raw.size()), bound);
      if (n <= 0) return false;
      out->resize(header + static_cast<size_t>(n));
      break;
    }
    case CompressionType::kZstd: {
      ZstdContexts& z = ThreadZstd();
      if (z.cctx == nullptr && (z.cctx = ZSTD_createCCtx()) == nullptr) {
        return false;
      }
      PutVarint32(out, static_cast<uint32_t>(raw.size()));
      const size_t header = out->size();
      out->resize(header + ZSTD_compressBound(raw.size()));
      size_t n = ZSTD_compressCCtx(z.cctx, out->data() + header,
                                   out->size() - header, raw.data(),
                                   raw.size(), kZstdLevel);
      if (ZSTD_isError(n)) return false;
      out->resize(header + n);
      break;
    }
    default:
      return false;
  }
  // Readers reject blocks that expand beyond this; keep such blocks raw.
  return raw.size() <= MaxUncompressedSize(out->size());
}

absl::StatusOr<BlockContents> UncompressBlock(uint8_t type,
                                              std::string_view contents,
                                              const std::string& filename,
                                              uint64_t offset) {
  const uint64_t limit = MaxUncompressedSize(contents.size());
  auto corrupt = [&](std::string_view what) {
    return TableCorruption(
        filename, offset,
        absl::StrFormat("%s block: %s", CompressionTypeName(type), what));
  };
  uint64_t raw_size = 0;
  std::string_view body = contents;
  switch (static_cast<CompressionType>(type)) {
    case CompressionType::kSnappy: {
      size_t n = 0;
      if (!snappy::GetUncompressedLength(body.data(), body.size(), &n)) {
        return corrupt("bad uncompressed length");
      }
      raw_size = n;
      break;
    }
    case CompressionType::kLZ4:
    case CompressionType::kZstd: {
      uint32_t n = 0;
      if (!GetVarint32(&body, &n)) return corrupt("bad uncompressed length");
      raw_size = n;
      break;
    }
    default:
      return TableCorruption(filename, offset,
                             absl::StrFormat("unknown compression type %d",
                                             type));
  }
  if (raw_size > limit) {
    return corrupt(absl::StrFormat("uncompressed length %d is implausible",
                                   raw_size));
  }
  std::unique_ptr<char[]> buf = Allocate(raw_size);
  if (buf == nullptr) return corrupt("cannot allocate uncompressed block");
  bool ok = false;
  switch (static_cast<CompressionType>(type)) {
    case CompressionType::kSnappy:
      ok = snappy::RawUncompress(body.data(), body.size(), buf.get());
      break;
    case CompressionType::kLZ4: {
      int n = LZ4_decompress_safe(body.data(), buf.get(),
                                  static_cast<int>(body.size()),
                                  static_cast<int>(raw_size));
      ok = n >= 0 && static_cast<uint64_t>(n) == raw_size;
      break;
    }
    case CompressionType::kZstd: {
      ZstdContexts& z = ThreadZstd();
      if (z.dctx == nullptr && (z.dctx = ZSTD_createDCtx()) == nullptr) {
        return absl::ResourceExhaustedError("cannot create a zstd context");
      }
      size_t n = ZSTD_decompressDCtx(z.dctx, buf.get(), raw_size, body.data(),
                                     body.size());
      ok = !ZSTD_isError(n) && n == raw_size;
      break;
    }
    default:
      break;
  }
  if (!ok) return corrupt("does not decompress");
  BlockContents result;
  result.data = std::string_view(buf.get(), raw_size);
  result.buffer = std::move(buf);
  return result;
}

namespace {

// Verifies the trailer checksum of the n-byte block contents at data (the
// 5-byte trailer follows them in memory).
absl::Status VerifyBlockChecksum(const char* data, uint64_t n,
                                 const std::string& filename,
                                 uint64_t offset) {
  uint32_t stored = DecodeFixed32(data + n + 1);
  uint32_t actual = Checksum32(data, n + 1, kBlockChecksumSeed);
  if (stored != actual) {
    return TableCorruption(
        filename, offset,
        absl::StrFormat("block checksum mismatch (stored 0x%08x, computed "
                        "0x%08x)",
                        stored, actual));
  }
  return absl::OkStatus();
}

// Decodes handle's block from data (its contents, then its trailer):
// verifies the checksum when options.verify_checksums, then returns an
// uncompressed block in place (owned by `buffer`, or by no one when data
// points into a mapping) or decompresses it into a new buffer.
absl::StatusOr<BlockContents> DecodeBlock(const char* data,
                                          std::unique_ptr<char[]> buffer,
                                          const std::string& filename,
                                          const ReadOptions& options,
                                          const BlockHandle& handle) {
  const uint64_t n = handle.size();
  if (options.verify_checksums) {
    RETURN_IF_ERROR(VerifyBlockChecksum(data, n, filename, handle.offset()));
  }
  const uint8_t type = static_cast<uint8_t>(data[n]);
  if (type == static_cast<uint8_t>(CompressionType::kNone)) {
    BlockContents result;
    result.data = std::string_view(data, n);
    result.buffer = std::move(buffer);
    return result;
  }
  return UncompressBlock(type, std::string_view(data, n), filename,
                         handle.offset());
}

// Reads handle's block; the caller has checked that it lies inside the file.
absl::StatusOr<BlockContents> ReadCheckedBlock(const RandomAccessFile* file,
                                               const std::string& filename,
                                               const ReadOptions& options,
                                               const BlockHandle& handle) {
  const uint64_t n = handle.size();
  const uint64_t total = n + kBlockTrailerSize;
  std::unique_ptr<char[]> buf = Allocate(total);
  if (buf == nullptr) {
    return TableCorruption(filename, handle.offset(),
                           absl::StrFormat("cannot allocate %d-byte block", n));
  }
  ASSIGN_OR_RETURN(std::string_view got,
                   file->Read(handle.offset(), total, buf.get()));
  if (got.size() != total) {
    return TableCorruption(
        filename, handle.offset(),
        absl::StrFormat("block truncated (read %d of %d bytes)", got.size(),
                        total));
  }
  if (got.data() != buf.get()) std::memcpy(buf.get(), got.data(), total);
  const char* data = buf.get();  // Taken before buf is moved.
  return DecodeBlock(data, std::move(buf), filename, options, handle);
}

// The DataLoss status for a handle reaching past the end of a file of
// file_size bytes.
absl::Status BlockPastEnd(const std::string& filename,
                          const BlockHandle& handle, uint64_t file_size) {
  return TableCorruption(
      filename, handle.offset(),
      absl::StrFormat("block of %d bytes extends past end of file (%d bytes)",
                      handle.size(), file_size));
}

}  // namespace

absl::StatusOr<BlockContents> ReadBlock(const RandomAccessFile* file,
                                        const std::string& filename,
                                        const ReadOptions& options,
                                        const BlockHandle& handle,
                                        uint64_t file_size) {
  if (!handle.FitsBefore(file_size)) {
    return BlockPastEnd(filename, handle, file_size);
  }
  return ReadCheckedBlock(file, filename, options, handle);
}

absl::StatusOr<BlockContents> ReadBlock(const RandomAccessFile* file,
                                        const std::string& filename,
                                        const ReadOptions& options,
                                        const BlockHandle& handle) {
  constexpr uint64_t kProbeThreshold = 1u << 20;
  if (handle.offset() > UINT64_MAX - kBlockTrailerSize ||
      handle.size() > UINT64_MAX - kBlockTrailerSize - handle.offset()) {
    return TableCorruption(filename, handle.offset(), "block size overflows");
  }
  if (handle.size() > kProbeThreshold) {
    char last;
    ASSIGN_OR_RETURN(std::string_view got,
                     file->Read(handle.end() - 1, 1, &last));
    if (got.size() != 1) {
      return TableCorruption(
          filename, handle.offset(),
          absl::StrFormat("block of %d bytes extends past end of file",
                          handle.size()));
    }
  }
  return ReadCheckedBlock(file, filename, options, handle);
}

absl::StatusOr<BlockContents> ReadMappedBlock(std::string_view file,
                                              const std::string& filename,
                                              const ReadOptions& options,
                                              const BlockHandle& handle) {
  if (!handle.FitsBefore(file.size())) {
    return BlockPastEnd(filename, handle, file.size());
  }
  return DecodeBlock(file.data() + handle.offset(), nullptr, filename,
                     options, handle);
}

std::string CompressionTypeName(uint8_t type) {
  switch (static_cast<CompressionType>(type)) {
    case CompressionType::kNone:
      return "none";
    case CompressionType::kSnappy:
      return "snappy";
    case CompressionType::kLZ4:
      return "lz4";
    case CompressionType::kZstd:
      return "zstd";
  }
  return absl::StrFormat("unknown(%d)", type);
}

}  // namespace strata::storage
