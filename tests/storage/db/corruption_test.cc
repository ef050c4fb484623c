// Damaged bytes in every on-disk file kind: a flipped byte in a WAL record,
// an SSTable data, index, filter or properties block or footer, the
// manifest or CURRENT must give DataLoss naming the file (and offset) at
// Open or at the read that meets it: never a crash, a hang or a wrong
// value. A sweep flips bytes across every file of a small database and
// checks exactly that, reading everything back after each flip.
//
// STRATA_CORRUPTION_SWEEP_ALL=1 flips every byte instead of a sample.

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "gtest/gtest.h"
#include "record/reader.h"
#include "spdlog/spdlog.h"
#include "strata/storage/change_log.h"
#include "strata/storage/db.h"
#include "table/format.h"
#include "table/table.h"
#include "tests/support/test_util.h"
#include "util/checksum.h"
#include "util/coding.h"
#include "util/dbformat.h"
#include "util/filename.h"

namespace strata::storage {
namespace {

using ::strata::testing::FlipByte;
using ::strata::testing::ReadFileOrDie;
using ::strata::testing::TempDir;
using ::strata::testing::WriteFileOrDie;
namespace fs = std::filesystem;

constexpr int kKeys = 400;

std::string Key(int i) { return absl::StrFormat("key%05d", i); }

class CorruptionTest : public ::testing::Test {
 protected:
  CorruptionTest() {
    ::strata::testing::QuietLogs();
    options_.memtable_bytes = 1 << 20;  // Flushes only when asked.
    options_.block_size = 1024;            // Many data blocks.
    options_.compression = CompressionType::kNone;
    options_.block_cache_bytes = 1 << 20;
    BuildDatabase();
  }
  ~CorruptionTest() override {
    db_.reset();
    ::strata::testing::RestoreLogs();
  }

  // Keys 0..299 in one SSTable; then 250..399 rewritten and 10..19 deleted
  // in the WAL, which the clean close leaves unflushed (it is replayed at
  // the next open).
  void BuildDatabase() {
    ASSERT_OK(Open());
    WriteOptions wo;
    wo.sync = false;  // The clean close syncs the WAL.
    for (int i = 0; i < 300; i++) {
      std::string v = absl::StrFormat("v1-%05d-", i) + std::string(100, 'a');
      ASSERT_OK(db_->Put(wo, Key(i), v));
      expected_[Key(i)] = v;
    }
    ASSERT_OK(db_->Flush());
    for (int i = 250; i < kKeys; i++) {
      std::string v = absl::StrFormat("v2-%05d-", i) + std::string(60, 'b');
      ASSERT_OK(db_->Put(wo, Key(i), v));
      expected_[Key(i)] = v;
    }
    for (int i = 10; i < 20; i++) {
      ASSERT_OK(db_->Delete(wo, Key(i)));
      expected_.erase(Key(i));
    }
    db_.reset();
  }

  absl::Status Open() {
    db_.reset();
    auto db = DB::Open(options_, dir_.path());
    if (!db.ok()) return db.status();
    db_ = std::move(*db);
    return absl::OkStatus();
  }

  // The only file of a kind (the one with data, for WALs).
  std::string FileOf(FileType want) {
    std::string found;
    uint64_t size = 0;
    for (const auto& e : fs::directory_iterator(dir_.path())) {
      uint64_t number;
      FileType type;
      if (!ParseFileName(e.path().filename().string(), &number, &type) ||
          type != want) {
        continue;
      }
      if (found.empty() || e.file_size() > size) {
        found = e.path().string();
        size = e.file_size();
      }
    }
    EXPECT_FALSE(found.empty()) << "no file of that kind";
    return found;
  }

  Footer ReadFooter(const std::string& sst) {
    std::string data = ReadFileOrDie(sst);
    uint64_t at = data.size() - Footer::kEncodedLength;
    auto footer = Footer::DecodeFrom(std::string_view(data).substr(at), sst, at);
    EXPECT_TRUE(footer.ok()) << footer.status();
    return footer.ok() ? *footer : Footer();
  }

  // Reads every key with Get and the whole database with an iterator.
  // Returns "" if every answer is the expected value or a DataLoss error
  // (`errors` counts those), else what went wrong.
  std::string ReadEverything(int* errors) {
    std::string problems;
    for (int i = 0; i < kKeys; i++) {
      auto got = db_->Get(ReadOptions(), Key(i));
      auto want = expected_.find(Key(i));
      if (got.ok()) {
        if (want == expected_.end() || *got != want->second) {
          problems += absl::StrFormat("Get(%s) returned a wrong value\n", Key(i));
        }
      } else if (absl::IsNotFound(got.status())) {
        if (want != expected_.end()) {
          problems += absl::StrFormat("Get(%s) lost its value\n", Key(i));
        }
      } else if (absl::IsDataLoss(got.status())) {
        (*errors)++;
      } else {
        problems += absl::StrFormat("Get(%s): not DataLoss: %s\n", Key(i),
                                    got.status().ToString());
      }
    }
    auto it = db_->NewIterator(ReadOptions());
    auto want = expected_.begin();
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      // An iterator may stop at damage, never skip or invent entries.
      if (want == expected_.end() || it->key() != want->first ||
          it->value() != want->second) {
        problems += absl::StrFormat("iterator: unexpected entry %s\n",
                                    std::string(it->key()));
        break;
      }
      ++want;
    }
    if (!it->status().ok()) {
      (*errors)++;
      if (!absl::IsDataLoss(it->status())) {
        problems += "iterator: not DataLoss: " + it->status().ToString() + "\n";
      }
    } else if (problems.empty() && want != expected_.end()) {
      problems += "iterator ended early without an error\n";
    }
    // Keep failure messages readable.
    size_t cut = 0;
    for (int lines = 0; lines < 12 && cut != std::string::npos; lines++) {
      cut = problems.find('\n', cut == 0 ? 0 : cut + 1);
    }
    if (cut != std::string::npos && cut + 1 < problems.size()) {
      problems = problems.substr(0, cut + 1) + "...\n";
    }
    return problems;
  }

  TempDir dir_;
  Options options_;
  std::unique_ptr<DB> db_;
  std::map<std::string, std::string> expected_;
};

void ExpectDataLossNaming(const absl::Status& s, const std::string& file,
                          std::optional<uint64_t> offset) {
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), file)) << s;
  if (offset) {
    EXPECT_TRUE(absl::StrContains(s.message(),
                                  absl::StrFormat("offset %d", *offset)))
        << s;
  }
}

TEST_F(CorruptionTest, IntactDatabaseReadsBackExactly) {
  ASSERT_OK(Open());
  int errors = 0;
  EXPECT_EQ(ReadEverything(&errors), "");
  EXPECT_EQ(errors, 0);
}

// ------------------------------------------------------------------ WAL

TEST_F(CorruptionTest, FlippedByteInWalRecordIsDataLossAtOpen) {
  std::string wal = FileOf(FileType::kWal);
  FlipByte(wal, 16 + 7 + 20);  // Inside the first record's payload.
  ExpectDataLossNaming(Open(), wal, 16);
}

TEST_F(CorruptionTest, FlippedByteInWalFragmentHeaderIsDataLossAtOpen) {
  std::string wal = FileOf(FileType::kWal);
  FlipByte(wal, 16 + 4, 0x01);  // The first fragment's length.
  ExpectDataLossNaming(Open(), wal, 16);
}

TEST_F(CorruptionTest, FlippedByteInWalHeaderIsDataLossAtOpen) {
  std::string wal = FileOf(FileType::kWal);
  FlipByte(wal, 3);
  ExpectDataLossNaming(Open(), wal, std::nullopt);
}

// The final record of the newest WAL is where a crash leaves a torn write,
// so damage there is dropped (docs/wal-format.md): the last write is lost,
// nothing else, and no wrong value is returned.
TEST_F(CorruptionTest, FlippedByteInLastWalRecordDropsOnlyThatRecord) {
  std::string wal = FileOf(FileType::kWal);
  std::string data = ReadFileOrDie(wal);
  FlipByte(wal, data.size() - 2);  // The last Delete (of key00019).
  ASSERT_OK(Open());
  expected_[Key(19)] = absl::StrFormat("v1-%05d-", 19) + std::string(100, 'a');
  int errors = 0;
  EXPECT_EQ(ReadEverything(&errors), "");
  EXPECT_EQ(errors, 0);
}

// -------------------------------------------------------------- SSTable

TEST_F(CorruptionTest, FlippedByteInDataBlockIsDataLossAtRead) {
  std::string sst = FileOf(FileType::kTable);
  FlipByte(sst, 100);  // Block 0 holds the first keys.
  ASSERT_OK(Open());   // Tables are read lazily.
  auto v = db_->Get(ReadOptions(), Key(0));
  ExpectDataLossNaming(v.status(), sst, 0);
  // Other blocks stay readable.
  auto other = db_->Get(ReadOptions(), Key(200));
  ASSERT_OK(other);
  EXPECT_EQ(*other, expected_[Key(200)]);
  // A scan stops at the damage with DataLoss, never skips it.
  auto it = db_->NewIterator(ReadOptions());
  it->SeekToFirst();
  EXPECT_FALSE(it->Valid());
  ExpectDataLossNaming(it->status(), sst, 0);
  it->Seek(Key(200));
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->value(), expected_[Key(200)]);
}

TEST_F(CorruptionTest, FlippedByteInIndexBlockIsDataLoss) {
  std::string sst = FileOf(FileType::kTable);
  Footer footer = ReadFooter(sst);
  FlipByte(sst, footer.index_handle.offset() + 3);
  ASSERT_OK(Open());
  auto v = db_->Get(ReadOptions(), Key(100));
  ExpectDataLossNaming(v.status(), sst, footer.index_handle.offset());
}

TEST_F(CorruptionTest, FlippedByteInFilterBlockIsDataLoss) {
  std::string sst = FileOf(FileType::kTable);
  Footer footer = ReadFooter(sst);
  ASSERT_GT(footer.filter_handle.size(), 0u);
  FlipByte(sst, footer.filter_handle.offset() + 5);
  ASSERT_OK(Open());
  auto v = db_->Get(ReadOptions(), Key(100));
  ExpectDataLossNaming(v.status(), sst, footer.filter_handle.offset());
}

TEST_F(CorruptionTest, FlippedByteInPropertiesBlockIsDataLoss) {
  std::string sst = FileOf(FileType::kTable);
  Footer footer = ReadFooter(sst);
  FlipByte(sst, footer.properties_handle.offset() + 7);
  ASSERT_OK(Open());
  auto v = db_->Get(ReadOptions(), Key(100));
  ExpectDataLossNaming(v.status(), sst, footer.properties_handle.offset());
}

TEST_F(CorruptionTest, FlippedByteInBlockTrailerIsDataLoss) {
  std::string sst = FileOf(FileType::kTable);
  Footer footer = ReadFooter(sst);
  // The index block's checksum, just after its contents.
  FlipByte(sst, footer.index_handle.offset() + footer.index_handle.size() + 2);
  ASSERT_OK(Open());
  auto v = db_->Get(ReadOptions(), Key(100));
  ExpectDataLossNaming(v.status(), sst, footer.index_handle.offset());
}

TEST_F(CorruptionTest, FlippedByteInFooterIsDataLoss) {
  std::string sst = FileOf(FileType::kTable);
  const uint64_t size = fs::file_size(sst);
  const uint64_t footer_at = size - Footer::kEncodedLength;
  for (uint64_t at : {footer_at + 1, footer_at + 61, size - 3}) {
    SCOPED_TRACE(absl::StrFormat("footer byte %d", at - footer_at));
    FlipByte(sst, at);
    ASSERT_OK(Open());
    auto v = db_->Get(ReadOptions(), Key(100));
    ExpectDataLossNaming(v.status(), sst, footer_at);
    db_.reset();
    FlipByte(sst, at);  // Restore.
  }
}

TEST_F(CorruptionTest, TruncatedTableIsDataLoss) {
  std::string sst = FileOf(FileType::kTable);
  std::string data = ReadFileOrDie(sst);
  WriteFileOrDie(sst, data.substr(0, data.size() / 2));
  ASSERT_OK(Open());
  auto v = db_->Get(ReadOptions(), Key(100));
  EXPECT_TRUE(absl::IsDataLoss(v.status())) << v.status();
  EXPECT_TRUE(absl::StrContains(v.status().message(), sst)) << v.status();
}

TEST_F(CorruptionTest, MissingTableIsDataLossAtOpen) {
  std::string sst = FileOf(FileType::kTable);
  fs::remove(sst);
  absl::Status s = Open();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), fs::path(sst).filename().string()))
      << s;
}

// ------------------------------------------------------ manifest, CURRENT

TEST_F(CorruptionTest, FlippedByteInManifestIsDataLossAtOpen) {
  std::string manifest = FileOf(FileType::kManifest);
  FlipByte(manifest, 16 + 7 + 6);  // Inside the snapshot record.
  ExpectDataLossNaming(Open(), manifest, 16);
}

// Regression (fixed): the manifest's final record gets the WAL torn-tail
// rule, so a flipped byte in it made recovery drop that edit. When the edit
// is a flush's (new table + minimum WAL number), the WAL it retired is already
// deleted: every key of that flush was gone without an error. Open now
// checks that the WAL the recovered manifest needs exists (DataLoss if not).
TEST_F(CorruptionTest, FlippedByteInLastManifestRecordIsNotASilentLoss) {
  std::string manifest = FileOf(FileType::kManifest);
  auto file = Env::Default()->NewSequentialFile(manifest);
  ASSERT_OK(file);
  record::Reader reader(std::move(*file), manifest);
  std::string scratch;
  std::string_view record;
  while (true) {
    auto more = reader.ReadRecord(&record, &scratch);
    ASSERT_OK(more);
    if (!*more) break;
  }
  FlipByte(manifest, reader.LastRecordOffset() + 7 + 3);  // The flush's edit.
  absl::Status s = Open();
  if (!s.ok()) {
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    return;
  }
  int errors = 0;
  EXPECT_EQ(ReadEverything(&errors), "");
}

TEST_F(CorruptionTest, FlippedByteInManifestHeaderIsDataLossAtOpen) {
  std::string manifest = FileOf(FileType::kManifest);
  FlipByte(manifest, 9);
  ExpectDataLossNaming(Open(), manifest, std::nullopt);
}

TEST_F(CorruptionTest, FlippedByteInCurrentIsDataLossAtOpen) {
  std::string current = CurrentFileName(dir_.path());
  for (size_t at : {size_t{0}, size_t{20}, size_t{35}}) {
    SCOPED_TRACE(absl::StrFormat("CURRENT byte %d", at));
    FlipByte(current, at, 0x01);
    ExpectDataLossNaming(Open(), current, 0);
    FlipByte(current, at, 0x01);
  }
  ASSERT_OK(Open());
}

TEST_F(CorruptionTest, TruncatedCurrentIsDataLossAtOpen) {
  std::string current = CurrentFileName(dir_.path());
  WriteFileOrDie(current, ReadFileOrDie(current).substr(0, 10));
  ExpectDataLossNaming(Open(), current, 0);
}

TEST_F(CorruptionTest, CurrentNamingAMissingManifestFailsOpen) {
  fs::remove(FileOf(FileType::kManifest));
  absl::Status s = Open();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(absl::StrContains(s.message(), "MANIFEST-")) << s;
}

// ---------------------------------------------------------------- sweep

// Flips bytes across every file. After each flip: Open fails with DataLoss,
// or it succeeds and every Get and a full scan return the right value or
// DataLoss. The final records of the WAL and the manifest are left out:
// damage there is indistinguishable from a torn write and is dropped by
// design (see FlippedByteInLastWalRecordDropsOnlyThatRecord).
TEST_F(CorruptionTest, FlippedBytesAnywhereAreDetectedNeverWrongValues) {
  const bool all = std::getenv("STRATA_CORRUPTION_SWEEP_ALL") != nullptr;
  // Copy the pristine database aside.
  TempDir pristine;
  fs::copy(dir_.path(), pristine.path(),
           fs::copy_options::recursive | fs::copy_options::overwrite_existing);

  struct Target {
    std::string name;
    uint64_t limit;  // Bytes [0, limit) are swept.
  };
  std::vector<Target> targets;
  for (const auto& e : fs::directory_iterator(pristine.path())) {
    const std::string name = e.path().filename().string();
    uint64_t number;
    FileType type;
    if (!ParseFileName(name, &number, &type) || type == FileType::kLock) continue;
    uint64_t limit = e.file_size();
    if (type == FileType::kWal || type == FileType::kManifest) {
      // Stop before the last record.
      auto file = Env::Default()->NewSequentialFile(e.path().string());
      ASSERT_OK(file);
      record::Reader reader(std::move(*file), name, record::kWalFormatVersion);
      std::string scratch;
      std::string_view record;
      while (true) {
        auto more = reader.ReadRecord(&record, &scratch);
        ASSERT_OK(more);
        if (!*more) break;
      }
      limit = reader.LastRecordOffset();
    }
    if (limit > 0) targets.push_back({name, limit});
  }
  ASSERT_GE(targets.size(), 4u);  // CURRENT, manifest, table, WAL.

  std::mt19937_64 rng(42);
  int flips = 0, open_errors = 0, read_errors = 0;
  for (const Target& t : targets) {
    std::vector<uint64_t> offsets;
    const uint64_t samples = all ? t.limit : std::min<uint64_t>(t.limit, 40);
    for (uint64_t i = 0; i < samples; i++) {
      offsets.push_back(all ? i : i * t.limit / samples +
                                      rng() % std::max<uint64_t>(1, t.limit / samples));
    }
    for (uint64_t at : offsets) {
      SCOPED_TRACE(absl::StrFormat("%s byte %d", t.name, at));
      db_.reset();
      fs::remove_all(dir_.path());
      fs::copy(pristine.path(), dir_.path());
      FlipByte(dir_.path() + "/" + t.name, at,
               static_cast<unsigned char>(1u << (rng() % 8)));
      flips++;
      absl::Status s = Open();
      if (!s.ok()) {
        open_errors++;
        EXPECT_TRUE(absl::IsDataLoss(s)) << s;
        continue;
      }
      int errors = 0;
      std::string problems = ReadEverything(&errors);
      ASSERT_EQ(problems, "");
      read_errors += errors > 0;
    }
  }
  db_.reset();
  spdlog::critical("corruption sweep: {} flips, {} failed Open, {} failed reads",
                   flips, open_errors, read_errors);
  EXPECT_GT(open_errors + read_errors, flips / 2);
}

// ---------------------------------------------------- table checksums

// Regression (fixed): BlockChecksum
// (table/format.cc) streams XXH3 through a stack XXH3_state_t that is not
// initialized (XXH3_INITSTATE) before XXH3_64bits_reset_withSeed. That
// reset regenerates the seed-derived secret only when the state's `seed`
// field differs from the seed, so when the stack slot still holds an
// earlier call's state (same seed) whose secret bytes have since been
// overwritten, the checksum of any block over 240 bytes is computed with a
// garbage secret. The table is written with a wrong trailer and every read
// of that block is DataLoss: acknowledged data becomes unreadable with no
// fault at all (seen at random in flushes, e.g. 4 of 15 runs of
// FaultInjectionTest.FlushFailureSurfacesAndWritesStop). Fix: call
// XXH3_INITSTATE(&state) (or memset it) before the reset.
//
// The test calls BlockChecksum twice from the same frame, overwriting a
// sliding window of the stack in between, and compares with the one-shot
// checksum the reader computes.
[[gnu::noinline]] uint32_t ChecksumFromHere(std::string_view contents) {
  return BlockChecksum(contents, CompressionType::kNone);
}

[[gnu::noinline]] void ScribbleStack(size_t from, size_t len) {
  char buf[4096];
  asm volatile("" : : "r"(buf) : "memory");
  std::memset(buf + from, 0xa5, len);
  asm volatile("" : : "r"(buf) : "memory");
}

TEST(TableChecksumTest, BlockChecksumIgnoresLeftoverStackState) {
  std::string block(1000, 'x');
  for (size_t i = 0; i < block.size(); i++) block[i] = static_cast<char>(i * 7);
  std::string with_type = block + '\0';  // The trailer's type byte (none).
  const uint32_t expected =
      Checksum32(with_type.data(), with_type.size(), kBlockChecksumSeed);
  int wrong = 0;
  for (size_t from = 0; from + 64 <= 4096; from += 32) {
    EXPECT_EQ(ChecksumFromHere(block), expected);
    ScribbleStack(from, 64);
    if (ChecksumFromHere(block) != expected) wrong++;
  }
  EXPECT_EQ(wrong, 0) << "BlockChecksum depends on stale stack contents";
}


// A change-log record whose header claims 2^32-1 changes in a few bytes
// (found by fuzz_wal_reader): DataLoss, without sizing an allocation by the
// claimed count (which used to ask for ~300 GiB and abort).
TEST(CorruptRecordTest, ChangeBatchWithAHugeCountIsDataLoss) {
  std::string record;
  PutFixed64(&record, 7);           // revision
  PutFixed32(&record, 0xffffffffu);  // count
  record.append("\x01\x01k", 3);     // one truncated op
  ChangeBatch batch;
  absl::Status s =
      ChangeBatch::Decode(std::make_shared<const std::string>(record), &batch);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
}

// Keys shorter than the 8-byte tag come only from corrupt blocks (found by
// fuzz_table_reader in a block's binary search): the comparator orders
// them without reading outside them (a sanitizer build saw it read 3 bytes
// before the block), consistently with well-formed keys.
TEST(CorruptRecordTest, InternalKeyComparatorOrdersKeysShorterThanATag) {
  InternalKeyComparator cmp(BytewiseComparator());
  std::string full;
  AppendInternalKey(&full, ParsedInternalKey{"abc", 5, kTypeValue});
  for (const std::string_view short_key : {"", "a", "abcdefg"}) {
    // In a heap block of its own size, so that a read before it is a
    // heap-buffer-overflow in the sanitizer build.
    auto block = std::make_unique<char[]>(std::max<size_t>(short_key.size(), 1));
    std::memcpy(block.get(), short_key.data(), short_key.size());
    const std::string_view key(block.get(), short_key.size());
    EXPECT_EQ(cmp.Compare(key, key), 0) << short_key;
    EXPECT_EQ(cmp.Compare(key, full), -cmp.Compare(full, key)) << short_key;
  }
  EXPECT_LT(cmp.Compare("", full), 0);
}

}  // namespace
}  // namespace strata::storage
