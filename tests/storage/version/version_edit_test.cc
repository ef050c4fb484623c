#include "version/version_edit.h"

#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

VersionEdit SampleEdit() {
  VersionEdit edit;
  edit.SetComparatorName("strata.BytewiseComparator");
  edit.SetMinWalNumber(8);
  edit.SetNextFile(9);
  edit.SetLastSequence(42);
  edit.RemoveFile(1, 3);
  FileMetaData f;
  f.number = 7;
  f.file_size = 4096;
  f.smallest = InternalKey("a", 1, kTypeValue);
  f.largest = InternalKey("k", 40, kTypeDeletion);
  edit.AddFile(0, f);
  return edit;
}

TEST(VersionEditTest, RoundTrip) {
  std::string encoded;
  SampleEdit().EncodeTo(&encoded);
  VersionEdit decoded;
  ASSERT_OK(decoded.DecodeFrom(encoded));
  EXPECT_EQ(*decoded.comparator(), "strata.BytewiseComparator");
  EXPECT_EQ(*decoded.min_wal_number(), 8u);
  EXPECT_EQ(*decoded.next_file_number(), 9u);
  EXPECT_EQ(*decoded.last_sequence(), 42u);
  ASSERT_EQ(decoded.deleted_files().size(), 1u);
  EXPECT_EQ(decoded.deleted_files().begin()->second, 3u);
  ASSERT_EQ(decoded.new_files().size(), 1u);
  const auto& [level, f] = decoded.new_files()[0];
  EXPECT_EQ(level, 0);
  EXPECT_EQ(f.number, 7u);
  EXPECT_EQ(f.file_size, 4096u);
  EXPECT_EQ(f.smallest.user_key(), "a");
  EXPECT_EQ(f.largest.user_key(), "k");
  // Re-encoding is stable.
  std::string again;
  decoded.EncodeTo(&again);
  EXPECT_EQ(again, encoded);
}

TEST(VersionEditTest, EveryTruncationIsDataLossNotACrash) {
  std::string encoded;
  SampleEdit().EncodeTo(&encoded);
  for (size_t n = 0; n < encoded.size(); n++) {
    VersionEdit decoded;
    absl::Status s = decoded.DecodeFrom(std::string_view(encoded).substr(0, n));
    // A prefix may happen to end on a field boundary; otherwise DataLoss.
    if (!s.ok()) {
      EXPECT_TRUE(absl::IsDataLoss(s)) << n << ": " << s;
    }
  }
  VersionEdit decoded;
  EXPECT_TRUE(absl::IsDataLoss(decoded.DecodeFrom(encoded.substr(0, 2))));
}

TEST(VersionEditTest, UnknownFormatVersionIsDataLoss) {
  std::string encoded;
  SampleEdit().EncodeTo(&encoded);
  encoded[0] = 9;
  VersionEdit decoded;
  absl::Status s = decoded.DecodeFrom(encoded);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("format version"), std::string_view::npos);
}

TEST(VersionEditTest, LevelOutOfRangeIsDataLoss) {
  VersionEdit edit;
  edit.RemoveFile(1, 3);
  std::string encoded;
  edit.EncodeTo(&encoded);
  encoded[5] = 9;  // tag(1) at [4], level at [5]
  VersionEdit decoded;
  EXPECT_TRUE(absl::IsDataLoss(decoded.DecodeFrom(encoded)));
}

}  // namespace
}  // namespace strata::storage
