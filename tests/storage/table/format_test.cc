#include "table/format.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/storage/table/table_test_util.h"
#include "tests/support/test_util.h"
#include "util/checksum.h"
#include "util/coding.h"

namespace strata::storage {
namespace {

using testing::StringSource;

TEST(BlockHandleTest, RoundTrips) {
  for (uint64_t offset : {0ull, 1ull, 300ull, 1ull << 40, ~0ull}) {
    BlockHandle h(offset, offset / 3 + 7);
    std::string enc;
    h.EncodeTo(&enc);
    EXPECT_LE(enc.size(), BlockHandle::kMaxEncodedLength);
    enc += "tail";
    std::string_view in = enc;
    BlockHandle d;
    ASSERT_TRUE(d.DecodeFrom(&in));
    EXPECT_EQ(d.offset(), h.offset());
    EXPECT_EQ(d.size(), h.size());
    EXPECT_EQ(in, "tail");
  }
}

TEST(BlockHandleTest, TruncatedHandleFailsToDecode) {
  std::string enc;
  BlockHandle(1ull << 40, 1ull << 33).EncodeTo(&enc);
  for (size_t n = 0; n < enc.size(); n++) {
    std::string_view in(enc.data(), n);
    BlockHandle d;
    EXPECT_FALSE(d.DecodeFrom(&in)) << n;
  }
}

TEST(BlockHandleTest, FitsBeforeChecksBoundsWithoutOverflow) {
  EXPECT_TRUE(BlockHandle(0, 10).FitsBefore(15));
  EXPECT_FALSE(BlockHandle(0, 10).FitsBefore(14));
  EXPECT_FALSE(BlockHandle(16, 0).FitsBefore(15));
  EXPECT_FALSE(BlockHandle(1, ~0ull).FitsBefore(~0ull));
  EXPECT_FALSE(BlockHandle(~0ull, 0).FitsBefore(~0ull));
}

Footer SampleFooter() {
  Footer f;
  f.filter_handle = BlockHandle(1000, 200);
  f.index_handle = BlockHandle(1205, 300);
  f.properties_handle = BlockHandle(1510, 90);
  return f;
}

TEST(FooterTest, RoundTripsAtFixedLength) {
  std::string enc;
  SampleFooter().EncodeTo(&enc);
  ASSERT_EQ(enc.size(), Footer::kEncodedLength);
  EXPECT_EQ(enc.substr(enc.size() - 8), "STRATSST");
  ASSERT_OK_AND_ASSIGN(Footer d, Footer::DecodeFrom(enc, "f.sst", 1605));
  EXPECT_EQ(d.filter_handle.offset(), 1000u);
  EXPECT_EQ(d.index_handle.size(), 300u);
  EXPECT_EQ(d.properties_handle.offset(), 1510u);
  EXPECT_EQ(d.format_version, kTableFormatVersion);
}

TEST(FooterTest, EveryFlippedByteIsDetected) {
  std::string enc;
  SampleFooter().EncodeTo(&enc);
  for (size_t i = 0; i < enc.size(); i++) {
    std::string bad = enc;
    bad[i] ^= 0x01;
    auto r = Footer::DecodeFrom(bad, "f.sst", 1605);
    ASSERT_FALSE(r.ok()) << i;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << i;
    EXPECT_NE(r.status().message().find("f.sst"), std::string::npos);
    EXPECT_NE(r.status().message().find("1605"), std::string::npos);
  }
}

TEST(FooterTest, NewerFormatVersionIsFailedPrecondition) {
  Footer f = SampleFooter();
  f.format_version = kTableFormatVersion + 1;
  std::string enc;
  f.EncodeTo(&enc);
  auto r = Footer::DecodeFrom(enc, "f.sst", 0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ChecksumTest, StreamingChecksumMatchesContiguousChecksum) {
  for (size_t n : {0, 1, 15, 16, 240, 241, 4096}) {
    std::string data(n, 'x');
    for (size_t i = 0; i < n; i++) data[i] = static_cast<char>(i * 7);
    std::string with_type = data + static_cast<char>(CompressionType::kZstd);
    EXPECT_EQ(BlockChecksum(data, CompressionType::kZstd),
              Checksum32(with_type, kBlockChecksumSeed))
        << n;
  }
}

class CompressionTest : public ::testing::TestWithParam<CompressionType> {};

TEST_P(CompressionTest, RoundTrips) {
  std::string raw;
  for (int i = 0; i < 2000; i++) raw += "compressible text " + std::to_string(i % 17);
  std::string out;
  ASSERT_TRUE(CompressBlock(GetParam(), raw, &out));
  EXPECT_LT(out.size(), raw.size() / 2);
  ASSERT_OK_AND_ASSIGN(
      BlockContents c,
      UncompressBlock(static_cast<uint8_t>(GetParam()), out, "f.sst", 10));
  EXPECT_EQ(c.data, raw);
}

TEST_P(CompressionTest, GarbageIsDataLoss) {
  std::string raw(1000, 'a');
  std::string out;
  ASSERT_TRUE(CompressBlock(GetParam(), raw, &out));
  for (size_t i = 0; i < out.size(); i++) {
    std::string bad = out;
    bad[i] ^= 0x55;
    auto r = UncompressBlock(static_cast<uint8_t>(GetParam()), bad, "f.sst", 10);
    if (r.ok()) continue;  // Some flips still decode (to different bytes).
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  }
  auto r = UncompressBlock(static_cast<uint8_t>(GetParam()), "", "f.sst", 10);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
}

TEST_P(CompressionTest, ImplausibleLengthIsRejectedWithoutAllocating) {
  // Claims 4 GiB - 1 uncompressed from a few bytes (all three encodings
  // start with a varint32 length).
  std::string bad;
  PutVarint32(&bad, 0xffffffffu);
  bad += "xyz";
  auto r = UncompressBlock(static_cast<uint8_t>(GetParam()), bad, "f.sst", 10);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CompressionTest,
                         ::testing::Values(CompressionType::kSnappy,
                                           CompressionType::kLZ4,
                                           CompressionType::kZstd));

TEST(CompressionTest, NoneAndUnknownDoNotCompress) {
  std::string out;
  EXPECT_FALSE(CompressBlock(CompressionType::kNone, "abc", &out));
  EXPECT_FALSE(CompressBlock(static_cast<CompressionType>(9), "abc", &out));
  auto r = UncompressBlock(9, "abc", "f.sst", 77);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("unknown compression type 9"),
            std::string::npos);
}

TEST(CompressionTest, ExtremelyCompressibleBlockIsKeptRaw) {
  // 64 MiB of zeros compresses far beyond kMaxCompressionRatio with zstd;
  // the writer must keep it raw so readers can bound allocations.
  std::string raw(64u << 20, '\0');
  std::string out;
  EXPECT_FALSE(CompressBlock(CompressionType::kZstd, raw, &out));
}

// A block with its trailer, as TableBuilder writes it.
std::string RawBlock(std::string_view contents, CompressionType type) {
  std::string b(contents);
  b.push_back(static_cast<char>(type));
  PutFixed32(&b, BlockChecksum(contents, type));
  return b;
}

TEST(ReadBlockTest, ReadsAndVerifiesABlock) {
  std::string file = "padding" + RawBlock("hello block", CompressionType::kNone);
  StringSource src(file);
  ReadOptions ro;
  BlockHandle h(7, 11);
  ASSERT_OK_AND_ASSIGN(BlockContents c,
                       ReadBlock(&src, "f.sst", ro, h, file.size()));
  EXPECT_EQ(c.data, "hello block");
  ASSERT_OK_AND_ASSIGN(BlockContents c2, ReadBlock(&src, "f.sst", ro, h));
  EXPECT_EQ(c2.data, "hello block");
}

TEST(ReadBlockTest, ReadsACompressedBlock) {
  std::string raw(5000, 'q');
  std::string z;
  ASSERT_TRUE(CompressBlock(CompressionType::kLZ4, raw, &z));
  std::string file = RawBlock(z, CompressionType::kLZ4);
  StringSource src(file);
  ASSERT_OK_AND_ASSIGN(BlockContents c,
                       ReadBlock(&src, "f.sst", ReadOptions(),
                                 BlockHandle(0, z.size()), file.size()));
  EXPECT_EQ(c.data, raw);
}

TEST(ReadBlockTest, FlippedByteIsDataLossNamingFileAndOffset) {
  std::string file = "pad" + RawBlock("hello block", CompressionType::kNone);
  file[5] ^= 1;
  StringSource src(file);
  auto r = ReadBlock(&src, "000042.sst", ReadOptions(), BlockHandle(3, 11),
                     file.size());
  ASSERT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("000042.sst"), std::string::npos);
  EXPECT_NE(r.status().message().find("offset 3"), std::string::npos);
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos);
  // Without verification the (corrupt) bytes come back.
  ReadOptions no_verify;
  no_verify.verify_checksums = false;
  EXPECT_OK(ReadBlock(&src, "000042.sst", no_verify, BlockHandle(3, 11),
                      file.size()));
}

TEST(ReadBlockTest, HandlePastEndOfFileIsDataLoss) {
  std::string file = RawBlock("abc", CompressionType::kNone);
  StringSource src(file);
  for (BlockHandle h : {BlockHandle(0, 4), BlockHandle(1, 3),
                        BlockHandle(0, ~0ull), BlockHandle(~0ull, 1)}) {
    auto r = ReadBlock(&src, "f.sst", ReadOptions(), h, file.size());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
    // Without a file size: a short read, or a probe for huge sizes.
    auto r2 = ReadBlock(&src, "f.sst", ReadOptions(), h);
    EXPECT_EQ(r2.status().code(), absl::StatusCode::kDataLoss);
  }
  EXPECT_EQ(ReadBlock(&src, "f.sst", ReadOptions(), BlockHandle(~0ull - 2, 1))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadBlock(&src, "f.sst", ReadOptions(), BlockHandle(0, 1ull << 40))
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
}

TEST(ReadBlockTest, UnknownCompressionTypeIsDataLoss) {
  std::string file = RawBlock("abc", static_cast<CompressionType>(42));
  StringSource src(file);
  auto r = ReadBlock(&src, "f.sst", ReadOptions(), BlockHandle(0, 3),
                     file.size());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace strata::storage
