// Scale: far more data than memory. Writes 1 GiB through a 4 MiB memtable
// and an 8 MiB block cache, reads every key back, and checks that resident
// memory stays bounded and that space is reclaimed after overwrites.

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"
#include "util/checksum.h"

namespace strata::storage {
namespace {

// Peak resident set size of this process in bytes (VmHWM).
uint64_t PeakRssBytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::stoull(line.substr(6)) * 1024;
    }
  }
  return 0;
}

uint64_t DirectoryBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

std::string Key(uint64_t i) { return absl::StrFormat("key%013d", i); }

// A 1000-byte incompressible value determined by (key, round), so the test
// can check every value without keeping a copy.
std::string Value(uint64_t i, int round) {
  std::string v(1000, '\0');
  uint64_t x = Hash64(absl::StrFormat("%d/%d", i, round));
  for (size_t p = 0; p < v.size(); p += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&v[p], &x, std::min<size_t>(8, v.size() - p));
  }
  return v;
}

class ScaleTest : public ::testing::Test {
 protected:
  ScaleTest() {
    options_.memtable_bytes = 4 << 20;
    options_.block_cache_bytes = 8 << 20;
    options_.compression = CompressionType::kNone;  // Values are random.
    options_.max_bytes_for_level_base = 32 << 20;
    options_.target_file_size = 8 << 20;
    options_.max_open_files = 200;
    // Mapped table pages count in RSS (Options::mmap_table_reads): bounded
    // here, as the bound below counts them.
    options_.max_mapped_table_bytes = 32 << 20;
    auto db = DB::Open(options_, dir_.path());
    EXPECT_TRUE(db.ok()) << db.status();
    if (db.ok()) db_ = std::move(*db);
  }

  testing::TempDir dir_;
  Options options_;
  std::unique_ptr<DB> db_;
};

// RSS bound: 3 memtables (12 MiB) + block cache (8 MiB) + the pinned index
// and filter blocks of the open tables (~10 MiB for 1 GiB of 1 KB values)
// + mapped table pages (at most 32 MiB) + the test binary and allocator
// slack. Far below the 1 GiB written.
constexpr uint64_t kRssBoundBytes = 160ull << 20;

TEST_F(ScaleTest, OneGibThroughSmallMemtableReadsBackWithBoundedMemory) {
  ASSERT_NE(db_, nullptr);
  constexpr uint64_t kKeys = 1u << 20;  // 1 Mi keys x ~1 KiB = 1 GiB.
  std::vector<uint64_t> order(kKeys);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(42));

  WriteOptions wo;
  wo.sync = false;
  WriteBatch batch;
  for (uint64_t n = 0; n < kKeys; n++) {
    batch.Put(Key(order[n]), Value(order[n], 0));
    if (batch.Count() == 64 || n + 1 == kKeys) {
      ASSERT_OK(db_->Write(wo, &batch));
      batch.Clear();
    }
  }
  ASSERT_OK(db_->Flush());
  Statistics stats = db_->GetStatistics();
  std::printf("after load: %.1f MiB live in SSTables, %llu flushes, %llu "
              "compactions, %.1f s stalled, peak RSS %.1f MiB\n",
              stats.levels.live_sst_bytes / 1048576.0,
              static_cast<unsigned long long>(stats.flush.count),
              static_cast<unsigned long long>(stats.compaction.count),
              stats.writes.stall_seconds, PeakRssBytes() / 1048576.0);
  EXPECT_GE(stats.levels.live_sst_bytes, kKeys * 1000);

  // Every key, in a different random order.
  std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
  for (uint64_t n = 0; n < kKeys; n++) {
    auto v = db_->Get(ReadOptions(), Key(order[n]));
    ASSERT_TRUE(v.ok()) << Key(order[n]) << ": " << v.status();
    ASSERT_EQ(*v, Value(order[n], 0)) << Key(order[n]);
  }
  uint64_t peak = PeakRssBytes();
  std::printf("after reading every key: peak RSS %.1f MiB (bound %.0f MiB)\n",
              peak / 1048576.0, kRssBoundBytes / 1048576.0);
  EXPECT_LT(peak, kRssBoundBytes);
}

TEST_F(ScaleTest, OverwritesConvergeToLiveDataSize) {
  ASSERT_NE(db_, nullptr);
  constexpr uint64_t kKeys = 32768;  // 32 MiB live.
  WriteOptions wo;
  wo.sync = false;
  for (int round = 0; round < 6; round++) {
    for (uint64_t i = 0; i < kKeys; i++) {
      ASSERT_OK(db_->Put(wo, Key(i), Value(i, round)));
    }
  }
  // Delete a quarter: tombstones must reclaim their keys' space too.
  for (uint64_t i = 0; i < kKeys / 4; i++) ASSERT_OK(db_->Delete(wo, Key(i)));
  ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
  uint64_t live = (kKeys - kKeys / 4) * (1000 + 20);
  uint64_t on_disk = DirectoryBytes(dir_.path());
  std::printf("live %.1f MiB, on disk %.1f MiB after 6 rounds of overwrites\n",
              live / 1048576.0, on_disk / 1048576.0);
  EXPECT_LT(on_disk, live * 12 / 10);
  EXPECT_TRUE(absl::IsNotFound(db_->Get(ReadOptions(), Key(0)).status()));
  auto v = db_->Get(ReadOptions(), Key(kKeys - 1));
  ASSERT_OK(v);
  EXPECT_EQ(*v, Value(kKeys - 1, 5));
}

}  // namespace
}  // namespace strata::storage
