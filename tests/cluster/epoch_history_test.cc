// The epoch history and the replica's epoch file (docs/replication.md):
// divergence by epoch, and the file's round trip and corruption paths.

#include "cluster/replication/epoch_history.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/support/test_util.h"
#include "xxhash.h"

namespace strata::cluster::replication {
namespace {

using strata::testing::TempDir;

TEST(EpochHistoryTest, EndOfAndEpochOf) {
  const EpochHistory h = {{1, 1}, {2, 12}, {4, 30}};
  EXPECT_EQ(EpochOf(h, 0), std::nullopt);
  EXPECT_EQ(EpochOf(h, 11), 1u);
  EXPECT_EQ(EpochOf(h, 12), 2u);
  EXPECT_EQ(EpochOf(h, 100), 4u);
  EXPECT_EQ(EndOf(h, 1), 11u);
  EXPECT_EQ(EndOf(h, 2), 29u);
  EXPECT_EQ(EndOf(h, 3), std::nullopt);  // Never a primary here.
  EXPECT_EQ(EndOf(h, 4), std::nullopt);  // Still writing.
}

TEST(EpochHistoryTest, PrefixIsNotDiverged) {
  const EpochHistory primary = {{1, 1}, {2, 12}, {3, 20}};
  EXPECT_OK(CheckNotDiverged({}, 0, primary));
  EXPECT_OK(CheckNotDiverged({{1, 1}}, 11, primary));
  EXPECT_OK(CheckNotDiverged({{1, 1}}, 5, primary));
  EXPECT_OK(CheckNotDiverged({{1, 1}, {2, 12}}, 19, primary));
  EXPECT_OK(CheckNotDiverged(primary, 25, primary));
}

TEST(EpochHistoryTest, TailBeyondTheEpochsEndIsDiverged) {
  const EpochHistory primary = {{1, 1}, {2, 12}};
  // Revisions 12..14 of epoch 1 never reached the new primary.
  absl::Status s = CheckNotDiverged({{1, 1}}, 14, primary);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("ended at revision 11"), std::string::npos) << s;
}

TEST(EpochHistoryTest, EpochTheNewPrimaryNeverHadIsDiverged) {
  // Epoch 3's primary wrote 20..25 to this replica and was replaced by
  // epoch 4's, which continued epoch 2's log: 20..25 differ even though
  // they are below where epoch 4 starts.
  const EpochHistory primary = {{1, 1}, {2, 12}, {4, 30}};
  absl::Status s = CheckNotDiverged({{1, 1}, {2, 12}, {3, 20}}, 25, primary);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("epoch 3"), std::string::npos) << s;
}

TEST(EpochHistoryTest, ExtendAddsTheNewEpochAfterTheCurrentRevision) {
  ASSERT_OK_AND_ASSIGN(EpochHistory h, ExtendEpochHistory({{1, 1}}, 2, 9));
  EXPECT_EQ(h, (EpochHistory{{1, 1}, {2, 10}}));
  EXPECT_TRUE(absl::IsInvalidArgument(ExtendEpochHistory(h, 2, 9).status()));
}

TEST(EpochHistoryTest, ValidateRefusesDisorder) {
  EXPECT_TRUE(
      absl::IsInvalidArgument(ValidateEpochHistory({{2, 1}, {1, 5}})));
  EXPECT_TRUE(
      absl::IsInvalidArgument(ValidateEpochHistory({{1, 5}, {2, 3}})));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateEpochHistory({{0, 1}})));
}

EpochFileContents Sample() {
  EpochFileContents c;
  c.range_id = 7;
  c.highest_epoch = 5;
  c.history = {{1, 1}, {3, 40}, {5, 41}};
  return c;
}

TEST(EpochFileTest, RoundTripsThroughTheFile) {
  TempDir dir;
  const std::string path = dir.path() + "/EPOCHS";
  EXPECT_TRUE(absl::IsNotFound(ReadEpochFile(path).status()));
  ASSERT_OK(WriteEpochFile(path, Sample()));
  ASSERT_OK_AND_ASSIGN(EpochFileContents got, ReadEpochFile(path));
  EXPECT_EQ(got, Sample());
  // The documented layout: 28 header bytes, 16 per entry, 8 of checksum.
  EXPECT_EQ(strata::testing::ReadFileOrDie(path).size(), 28u + 3 * 16 + 8);
}

TEST(EpochFileTest, FlippedByteIsDataLoss) {
  const std::string bytes = EncodeEpochFile(Sample());
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x40;
    absl::StatusOr<EpochFileContents> got = DecodeEpochFile(bad, "x");
    EXPECT_TRUE(absl::IsDataLoss(got.status()) ||
                absl::IsFailedPrecondition(got.status()))
        << "byte " << i << ": " << got.status();
  }
}

TEST(EpochFileTest, TruncatedFileIsDataLoss) {
  const std::string bytes = EncodeEpochFile(Sample());
  for (size_t n : {size_t{0}, size_t{10}, bytes.size() - 1}) {
    EXPECT_TRUE(
        absl::IsDataLoss(DecodeEpochFile(bytes.substr(0, n), "x").status()))
        << n;
  }
}

TEST(EpochFileTest, NewerFormatVersionIsFailedPrecondition) {
  std::string bytes = EncodeEpochFile(Sample());
  bytes[8] = 2;  // The version, fixed32 after the magic.
  // Re-seal it so only the version is wrong.
  bytes.resize(bytes.size() - 8);
  const uint64_t sum = XXH64(bytes.data(), bytes.size(), 0);
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>(sum >> (8 * i)));
  absl::StatusOr<EpochFileContents> got = DecodeEpochFile(bytes, "x");
  EXPECT_TRUE(absl::IsFailedPrecondition(got.status())) << got.status();
  EXPECT_NE(got.status().message().find("version 2"), std::string::npos);
}

}  // namespace
}  // namespace strata::cluster::replication
