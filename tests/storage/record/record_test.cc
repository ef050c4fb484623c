// Record writer/reader (the format of the WAL and the manifest): round
// trips, block layout, and every damage case of the torn-tail-versus-
// corruption rule (docs/wal-format.md).

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "record/format.h"
#include "record/reader.h"
#include "record/writer.h"
#include "strata/storage/env.h"
#include "tests/support/test_util.h"
#include "util/checksum.h"
#include "util/coding.h"

namespace strata::storage::record {
namespace {

using ::strata::testing::FlipByte;
using ::strata::testing::ReadFileOrDie;
using ::strata::testing::TempDir;
using ::strata::testing::WriteFileOrDie;
using ::testing::HasSubstr;

// Deterministic payload: record i of size n.
std::string Payload(size_t i, size_t n) {
  std::string s(n, '\0');
  uint64_t x = i * 0x9E3779B97F4A7C15ull + 1;
  for (size_t j = 0; j < n; ++j) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[j] = static_cast<char>(x);
  }
  return s;
}

// One encoded fragment, for hand-made files.
std::string Fragment(FragmentType type, std::string_view payload) {
  std::string f;
  PutFixed32(&f, Checksum32(payload, type));
  f.push_back(static_cast<char>(payload.size() & 0xff));
  f.push_back(static_cast<char>(payload.size() >> 8));
  f.push_back(static_cast<char>(type));
  f.append(payload);
  return f;
}

struct ReadResult {
  std::vector<std::string> records;
  std::vector<uint64_t> offsets;  // LastRecordOffset() after each record.
  absl::Status status;            // OK unless ReadRecord failed.
  bool torn = false;
  uint64_t dropped = 0;
};

ReadResult ReadAll(std::unique_ptr<SequentialFile> file,
                   const std::string& name) {
  ReadResult r;
  Reader reader(std::move(file), name);
  std::string scratch;
  std::string_view record;
  while (true) {
    absl::StatusOr<bool> got = reader.ReadRecord(&record, &scratch);
    if (!got.ok()) {
      r.status = got.status();
      // Errors are sticky.
      absl::StatusOr<bool> again = reader.ReadRecord(&record, &scratch);
      EXPECT_EQ(again.status(), r.status);
      break;
    }
    if (!*got) break;
    r.records.emplace_back(record);
    r.offsets.push_back(reader.LastRecordOffset());
  }
  r.torn = reader.dropped_torn_tail();
  r.dropped = reader.dropped_bytes();
  return r;
}

class RecordTest : public ::testing::Test {
 protected:
  Env* env() { return Env::Default(); }

  // Writes records to path_ and closes the file. Returns the offsets at
  // which they start.
  std::vector<uint64_t> Write(const std::vector<std::string>& records) {
    std::vector<uint64_t> offsets;
    absl::StatusOr<std::unique_ptr<WritableFile>> file =
        env()->NewWritableFile(path_);
    EXPECT_TRUE(file.ok()) << file.status();
    if (!file.ok()) return offsets;
    Writer writer(std::move(*file));
    EXPECT_EQ(writer.BytesWritten(), kFileHeaderSize);
    for (const std::string& r : records) {
      // A record starts at the next block if fewer than kHeaderSize bytes
      // are left in this one.
      uint64_t at = writer.BytesWritten();
      if (kBlockSize - at % kBlockSize < kHeaderSize) {
        at += kBlockSize - at % kBlockSize;
      }
      offsets.push_back(at);
      EXPECT_OK(writer.AddRecord(r));
    }
    EXPECT_OK(writer.Sync());
    uint64_t written = writer.BytesWritten();
    EXPECT_OK(writer.Close());
    EXPECT_EQ(FileSize(), written);
    return offsets;
  }

  uint64_t FileSize() {
    absl::StatusOr<uint64_t> size = env()->GetFileSize(path_);
    EXPECT_TRUE(size.ok()) << size.status();
    return size.value_or(0);
  }

  void Truncate(uint64_t size) { std::filesystem::resize_file(path_, size); }

  void AppendBytes(const std::string& bytes) {
    WriteFileOrDie(path_, ReadFileOrDie(path_) + bytes);
  }

  ReadResult Read() {
    absl::StatusOr<std::unique_ptr<SequentialFile>> file =
        env()->NewSequentialFile(path_);
    EXPECT_TRUE(file.ok()) << file.status();
    if (!file.ok()) return ReadResult{};
    return ReadAll(std::move(*file), path_);
  }

  // Three 100-byte records; returns their offsets.
  std::vector<uint64_t> WriteThree() {
    return Write({Payload(1, 100), Payload(2, 100), Payload(3, 100)});
  }

  TempDir dir_;
  const std::string path_ = dir_.path() + "/000007.log";
};

TEST_F(RecordTest, RoundTripOfManySizes) {
  std::mt19937 rng(301);
  std::vector<std::string> records;
  for (size_t i = 0; i < 150; ++i) {
    size_t max = (i % 3 == 0) ? 100 << 10 : 1000;
    records.push_back(Payload(i, std::uniform_int_distribution<size_t>(0, max)(rng)));
    if (i == 75) records.push_back(Payload(i, 3 << 20));  // Spans ~96 blocks.
  }
  records.push_back("");
  std::vector<uint64_t> offsets = Write(records);
  ReadResult r = Read();
  ASSERT_OK(r.status);
  ASSERT_EQ(r.records.size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_EQ(r.records[i], records[i]) << "record " << i;
  }
  EXPECT_EQ(r.offsets, offsets);
  EXPECT_FALSE(r.torn);
  EXPECT_EQ(r.dropped, 0u);
}

// The worked example of docs/wal-format.md, byte for byte: the format must
// never change silently.
TEST_F(RecordTest, BytesMatchTheDocumentedExample) {
  std::string batch;
  PutFixed64(&batch, 1);  // Sequence.
  PutFixed32(&batch, 2);  // Count.
  batch += std::string("\x01\x02k1\x02v1", 7);  // Put("k1", "v1").
  batch += std::string("\x00\x02k2", 4);         // Delete("k2").
  Write({batch});
  const unsigned char expect[] = {
      0x53, 0x54, 0x52, 0x41, 0x54, 0x41, 0x57, 0x4c, 0x01, 0x00, 0x00, 0x00,
      0xe9, 0x8a, 0x5c, 0x40, 0xd6, 0xd7, 0x53, 0xd1, 0x17, 0x00, 0x01, 0x01,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01,
      0x02, 0x6b, 0x31, 0x02, 0x76, 0x31, 0x00, 0x02, 0x6b, 0x32};
  EXPECT_EQ(ReadFileOrDie(path_),
            std::string(reinterpret_cast<const char*>(expect), sizeof(expect)));
}

TEST_F(RecordTest, EmptyRecordsRoundTrip) {
  Write({"", "", "x", ""});
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_THAT(r.records, ::testing::ElementsAre("", "", "x", ""));
}

TEST_F(RecordTest, RecordExactlyFillingTheFirstBlock) {
  const size_t n = kBlockSize - kFileHeaderSize - kHeaderSize;
  std::vector<uint64_t> offsets = Write({Payload(1, n), "next"});
  EXPECT_EQ(offsets[1], kBlockSize);
  EXPECT_EQ(FileSize(), kBlockSize + kHeaderSize + 4);
  ReadResult r = Read();
  ASSERT_OK(r.status);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0], Payload(1, n));
  EXPECT_EQ(r.records[1], "next");
  EXPECT_EQ(r.offsets, offsets);
}

TEST_F(RecordTest, BlockWithLessThanAHeaderLeftIsPadded) {
  const size_t n = kBlockSize - kFileHeaderSize - kHeaderSize - 3;
  std::vector<uint64_t> offsets = Write({Payload(1, n), "next"});
  EXPECT_EQ(offsets[1], kBlockSize);
  std::string data = ReadFileOrDie(path_);
  ASSERT_EQ(data.size(), kBlockSize + kHeaderSize + 4);
  EXPECT_EQ(data.substr(kBlockSize - 3, 3), std::string(3, '\0'));
  ReadResult r = Read();
  ASSERT_OK(r.status);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[0], Payload(1, n));
  EXPECT_EQ(r.records[1], "next");
}

TEST_F(RecordTest, ExactlyAHeaderLeftGivesAnEmptyFirstFragment) {
  const size_t n = kBlockSize - kFileHeaderSize - 2 * kHeaderSize;
  std::vector<uint64_t> offsets = Write({Payload(1, n), "next"});
  EXPECT_EQ(offsets[1], kBlockSize - kHeaderSize);
  EXPECT_EQ(FileSize(), kBlockSize + kHeaderSize + 4);
  ReadResult r = Read();
  ASSERT_OK(r.status);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[1], "next");
  EXPECT_EQ(r.offsets, offsets);
}

TEST_F(RecordTest, TruncatedTrailingRecordIsDropped) {
  std::vector<uint64_t> offsets = WriteThree();
  const uint64_t size = FileSize() - 50;
  Truncate(size);
  ReadResult r = Read();
  ASSERT_OK(r.status);
  ASSERT_EQ(r.records.size(), 2u);
  EXPECT_EQ(r.records[1], Payload(2, 100));
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.dropped, size - offsets[2]);
}

TEST_F(RecordTest, TruncatedTrailingFragmentHeaderIsDropped) {
  std::vector<uint64_t> offsets = WriteThree();
  Truncate(offsets[2] + 3);
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_EQ(r.records.size(), 2u);
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.dropped, 3u);
}

TEST_F(RecordTest, TruncatedMultiBlockRecordIsDropped) {
  std::vector<uint64_t> offsets = Write({"a", Payload(2, 200 << 10)});
  // Cut in the fourth block: FIRST and two MIDDLE fragments stay intact.
  const uint64_t size = 3 * kBlockSize + 100;
  Truncate(size);
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_THAT(r.records, ::testing::ElementsAre("a"));
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.dropped, size - offsets[1]);
}

TEST_F(RecordTest, RecordCutAtABlockBoundaryIsDropped) {
  Write({"a", Payload(2, 100 << 10)});
  Truncate(2 * kBlockSize);  // Ends exactly after a MIDDLE fragment.
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_THAT(r.records, ::testing::ElementsAre("a"));
  EXPECT_TRUE(r.torn);
}

TEST_F(RecordTest, TornTailOfZerosIsDropped) {
  WriteThree();
  const uint64_t size = FileSize();
  AppendBytes(std::string(50000, '\0'));  // Crosses two block boundaries.
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_EQ(r.records.size(), 3u);
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.dropped, 50000u);
  EXPECT_EQ(FileSize(), size + 50000);
}

TEST_F(RecordTest, TornTailOfGarbageIsDropped) {
  WriteThree();
  AppendBytes(Payload(99, 70000));
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_EQ(r.records.size(), 3u);
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.dropped, 70000u);
}

TEST_F(RecordTest, FlippedByteInMiddleRecordIsDataLoss) {
  std::vector<uint64_t> offsets = WriteThree();
  FlipByte(path_, offsets[1] + kHeaderSize + 10);
  ReadResult r = Read();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_THAT(r.status.message(), HasSubstr(path_));
  EXPECT_THAT(r.status.message(),
              HasSubstr(absl::StrCat("checksum mismatch at offset ", offsets[1])));
  EXPECT_EQ(r.records.size(), 1u);
  EXPECT_FALSE(r.torn);
}

TEST_F(RecordTest, FlippedLengthInMiddleRecordIsDataLoss) {
  std::vector<uint64_t> offsets = WriteThree();
  // The record boundary is lost; the reader must resynchronize to find the
  // third record.
  FlipByte(path_, offsets[1] + 4, 0x10);
  ReadResult r = Read();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_THAT(r.status.message(),
              HasSubstr(absl::StrCat("at offset ", offsets[1])));
}

TEST_F(RecordTest, FlippedTypeInMiddleRecordIsDataLoss) {
  std::vector<uint64_t> offsets = WriteThree();
  FlipByte(path_, offsets[1] + 6);
  ReadResult r = Read();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_THAT(r.status.message(),
              HasSubstr(absl::StrCat("bad fragment type at offset ", offsets[1])));
}

TEST_F(RecordTest, FlippedByteEarlyInALongLogIsDataLoss) {
  std::vector<std::string> records;
  for (size_t i = 0; i < 40; ++i) records.push_back(Payload(i, 5000));
  std::vector<uint64_t> offsets = Write(records);
  FlipByte(path_, offsets[2] + kHeaderSize);
  ReadResult r = Read();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_EQ(r.records.size(), 2u);
}

TEST_F(RecordTest, DamagedMiddleFragmentFollowedByRecordIsDataLoss) {
  std::vector<uint64_t> offsets =
      Write({"a", Payload(2, 100 << 10), "after"});
  FlipByte(path_, 2 * kBlockSize + 100);  // In a MIDDLE fragment.
  ReadResult r = Read();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_THAT(r.status.message(),
              HasSubstr(absl::StrCat("at offset ", 2 * kBlockSize)));
  EXPECT_EQ(r.records.size(), 1u);
}

TEST_F(RecordTest, FlippedByteInLastRecordIsTornTail) {
  std::vector<uint64_t> offsets = WriteThree();
  const uint64_t size = FileSize();
  FlipByte(path_, offsets[2] + kHeaderSize + 50);
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_EQ(r.records.size(), 2u);
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.dropped, size - offsets[2]);
}

TEST_F(RecordTest, DamagedMiddleFragmentOfLastRecordIsTornTail) {
  std::vector<uint64_t> offsets = Write({"a", Payload(2, 100 << 10)});
  FlipByte(path_, 2 * kBlockSize + 100);
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_THAT(r.records, ::testing::ElementsAre("a"));
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.dropped, FileSize() - offsets[1]);
}

TEST_F(RecordTest, BadFileHeaderIsDataLoss) {
  WriteThree();
  const std::string good = ReadFileOrDie(path_);
  struct Case {
    size_t offset;
    const char* what;
  } cases[] = {{0, "bad file header magic"},
               {9, "file header checksum mismatch"},
               {13, "file header checksum mismatch"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.offset);
    WriteFileOrDie(path_, good);
    FlipByte(path_, c.offset, 0x01);
    ReadResult r = Read();
    EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
    EXPECT_THAT(r.status.message(), HasSubstr(path_));
    EXPECT_THAT(r.status.message(), HasSubstr(c.what));
    EXPECT_THAT(r.status.message(), HasSubstr("at offset 0"));
    EXPECT_TRUE(r.records.empty());
  }
}

// A file no longer than a header holds no record: a damaged header there is
// a WAL whose creation a power loss interrupted (the engine syncs the header
// before it uses the WAL), so nothing is lost and recovery goes on. Longer
// files with a bad header stay DataLoss (above, and a foreign file here).
TEST_F(RecordTest, DamagedHeaderOfARecordlessWalIsAnInterruptedCreation) {
  Write({});
  FlipByte(path_, 3);
  ReadResult r = Read();
  EXPECT_OK(r.status);
  EXPECT_TRUE(r.records.empty());
  WriteFileOrDie(path_, "junk");  // Shorter than a header.
  r = Read();
  EXPECT_OK(r.status);
  EXPECT_TRUE(r.records.empty());
  WriteFileOrDie(path_, "not a WAL file at all");  // Longer than a header.
  EXPECT_EQ(Read().status.code(), absl::StatusCode::kDataLoss);
}

TEST_F(RecordTest, NewerFormatVersionIsDataLoss) {
  std::string header(kFileMagic);
  PutFixed32(&header, 2);
  PutFixed32(&header, Checksum32(header));
  WriteFileOrDie(path_, header + Fragment(kFullType, "x"));
  ReadResult r = Read();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status.message(), HasSubstr("unsupported WAL format version 2"));
}

TEST_F(RecordTest, EmptyFileHasNoRecords) {
  WriteFileOrDie(path_, "");
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.records.empty());
  EXPECT_FALSE(r.torn);
}

TEST_F(RecordTest, HeaderOnlyFileHasNoRecords) {
  Write({});
  EXPECT_EQ(FileSize(), kFileHeaderSize);
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.records.empty());
  EXPECT_FALSE(r.torn);
}

TEST_F(RecordTest, TruncatedFileHeaderIsTornTail) {
  WriteFileOrDie(path_, std::string(FileHeader().substr(0, 11)));
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.records.empty());
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.dropped, 11u);
}

TEST_F(RecordTest, ZeroFilledFileIsTornTail) {
  WriteFileOrDie(path_, std::string(40000, '\0'));
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_TRUE(r.records.empty());
  EXPECT_TRUE(r.torn);
  EXPECT_EQ(r.dropped, 40000u);
}

TEST_F(RecordTest, ZeroedFileHeaderFollowedByRecordsIsDataLoss) {
  WriteThree();
  std::string data = ReadFileOrDie(path_);
  std::memset(data.data(), 0, kFileHeaderSize);
  WriteFileOrDie(path_, data);
  ReadResult r = Read();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_THAT(r.status.message(), HasSubstr("zero-filled file header"));
}

TEST_F(RecordTest, FirstFragmentFollowedByFullIsDataLoss) {
  const std::string first = Fragment(kFirstType, "par");
  WriteFileOrDie(path_, std::string(FileHeader()) + first +
                            Fragment(kFullType, "whole"));
  ReadResult r = Read();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_THAT(r.status.message(),
              HasSubstr(absl::StrCat("record without a LAST fragment at offset ",
                                     kFileHeaderSize)));
}

TEST_F(RecordTest, OrphanLastFragmentFollowedByRecordIsDataLoss) {
  WriteFileOrDie(path_, std::string(FileHeader()) + Fragment(kLastType, "tail") +
                            Fragment(kFullType, "whole"));
  ReadResult r = Read();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
  EXPECT_THAT(r.status.message(), HasSubstr("without FIRST"));
}

TEST_F(RecordTest, OrphanLastFragmentAtTheEndIsTornTail) {
  WriteFileOrDie(path_, std::string(FileHeader()) + Fragment(kFullType, "ok") +
                            Fragment(kLastType, "tail"));
  ReadResult r = Read();
  ASSERT_OK(r.status);
  EXPECT_THAT(r.records, ::testing::ElementsAre("ok"));
  EXPECT_TRUE(r.torn);
}

// Returns at most max_read bytes per call, from its own buffer (not
// scratch), as a SequentialFile may.
class ChoppyFile final : public SequentialFile {
 public:
  ChoppyFile(std::string data, size_t max_read)
      : data_(std::move(data)), max_read_(max_read) {}
  absl::StatusOr<std::string_view> Read(size_t n, char*) override {
    n = std::min({n, max_read_, data_.size() - pos_});
    std::string_view r(data_.data() + pos_, n);
    pos_ += n;
    return r;
  }
  absl::Status Skip(uint64_t n) override {
    pos_ = std::min<size_t>(data_.size(), pos_ + n);
    return absl::OkStatus();
  }

 private:
  const std::string data_;
  const size_t max_read_;
  size_t pos_ = 0;
};

TEST_F(RecordTest, ShortReadsAreReassembled) {
  std::vector<std::string> records;
  for (size_t i = 0; i < 30; ++i) records.push_back(Payload(i, i * 3000));
  Write(records);
  ReadResult r = ReadAll(
      std::make_unique<ChoppyFile>(ReadFileOrDie(path_), 1000), "choppy");
  ASSERT_OK(r.status);
  EXPECT_EQ(r.records, records);
}

class FailingSequentialFile final : public SequentialFile {
 public:
  absl::StatusOr<std::string_view> Read(size_t, char*) override {
    return absl::UnavailableError("read: EIO");
  }
  absl::Status Skip(uint64_t) override { return absl::OkStatus(); }
};

TEST_F(RecordTest, ReadErrorIsPassedThrough) {
  ReadResult r = ReadAll(std::make_unique<FailingSequentialFile>(), "eio");
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable);
}

// Fails every Append after the first `ok_appends`.
class FailingWritableFile final : public WritableFile {
 public:
  explicit FailingWritableFile(int ok_appends) : ok_appends_(ok_appends) {}
  absl::Status Append(std::string_view) override {
    if (ok_appends_-- > 0) return absl::OkStatus();
    return absl::UnavailableError("write: No space left on device");
  }
  absl::Status Flush() override { return absl::OkStatus(); }
  absl::Status Sync() override { return absl::OkStatus(); }
  absl::Status Close() override { return absl::OkStatus(); }

 private:
  int ok_appends_;
};

TEST(RecordWriterTest, WriteErrorIsSticky) {
  // Header, then the first fragment's header: its payload fails.
  Writer writer(std::make_unique<FailingWritableFile>(2));
  EXPECT_EQ(writer.AddRecord("abc").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(writer.AddRecord("").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(writer.Sync().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(writer.Close().code(), absl::StatusCode::kUnavailable);
}

TEST(RecordWriterTest, HeaderWriteErrorIsReportedLater) {
  Writer writer(std::make_unique<FailingWritableFile>(0));
  EXPECT_EQ(writer.AddRecord("abc").code(), absl::StatusCode::kUnavailable);
}

TEST(RecordWriterTest, UseAfterCloseFails) {
  Writer writer(std::make_unique<FailingWritableFile>(100));
  EXPECT_OK(writer.Close());
  EXPECT_EQ(writer.AddRecord("x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(writer.Close().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace strata::storage::record
