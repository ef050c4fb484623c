// The Strata adapter of strata-dbbench: the public storage API only
// (strata/storage/db.h), with the settings of EngineSettings.

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "bench/dbbench/bench_engine.h"
#include "strata/storage/db.h"
#include "strata/storage/iterator.h"
#include "strata/storage/options.h"

namespace strata::bench {
namespace {

class StrataIterator final : public BenchIterator {
 public:
  explicit StrataIterator(std::unique_ptr<storage::Iterator> it)
      : it_(std::move(it)) {}
  void Seek(std::string_view target) override { it_->Seek(target); }
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  std::string_view key() const override { return it_->key(); }
  std::string_view value() const override { return it_->value(); }
  absl::Status status() const override { return it_->status(); }

 private:
  std::unique_ptr<storage::Iterator> it_;
};

class StrataEngine final : public BenchEngine {
 public:
  StrataEngine(std::unique_ptr<storage::DB> db, bool verify_checksums)
      : db_(std::move(db)) {
    read_options_.verify_checksums = verify_checksums;
  }

  absl::Status Put(std::string_view key, std::string_view value,
                   bool sync) override {
    storage::WriteOptions options;
    options.sync = sync;
    return db_->Put(options, key, value).status();
  }
  absl::Status Delete(std::string_view key, bool sync) override {
    storage::WriteOptions options;
    options.sync = sync;
    return db_->Delete(options, key).status();
  }
  absl::Status Get(std::string_view key, std::string* value,
                   bool* found) override {
    absl::StatusOr<std::string> got = db_->Get(read_options_, key);
    if (got.ok()) {
      *value = *std::move(got);
      *found = true;
      return absl::OkStatus();
    }
    *found = false;
    if (absl::IsNotFound(got.status())) return absl::OkStatus();
    return got.status();
  }
  std::unique_ptr<BenchIterator> NewIterator() override {
    return std::make_unique<StrataIterator>(
        db_->NewIterator(read_options_));
  }
  std::string StatsReport() override {
    const storage::Statistics s = db_->GetStatistics();
    const double per_group =
        s.wal.writes_per_group_commit.count == 0
            ? 0.0
            : s.wal.writes_per_group_commit.sum /
                  s.wal.writes_per_group_commit.count;
    std::string levels;
    for (const storage::Statistics::Levels::Level& l : s.levels.per_level) {
      if (l.num_files == 0) continue;
      absl::StrAppendFormat(&levels, " L%d=%d/%.1fMiB", l.level, l.num_files,
                            l.bytes / 1048576.0);
    }
    return absl::StrFormat(
        "strata: flushes=%d compactions=%d compaction_written=%.1fMiB "
        "stall=%.2fs wal_syncs=%d writes/group=%.2f cache_hit=%.1f%% "
        "bloom_negatives=%d/%d levels:%s",
        s.flush.count, s.compaction.count,
        s.compaction.written_bytes / 1048576.0, s.writes.stall_seconds,
        s.wal.syncs, per_group,
        s.block_cache.hits + s.block_cache.misses == 0
            ? 0.0
            : 100.0 * s.block_cache.hits /
                  (s.block_cache.hits + s.block_cache.misses),
        s.filter.negatives, s.filter.checks, levels);
  }

 private:
  std::unique_ptr<storage::DB> db_;
  storage::ReadOptions read_options_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BenchEngine>> OpenStrata(
    const EngineSettings& settings, const std::string& dir) {
  storage::Options options;
  options.create_if_missing = true;
  options.memtable_bytes = settings.write_buffer_bytes;
  options.block_cache_bytes = settings.block_cache_bytes;
  options.block_size = settings.block_size;
  options.bloom_bits_per_key = settings.bloom_bits_per_key;
  options.max_open_files = settings.max_open_files;
  options.compression = storage::CompressionType::kNone;
  options.wal_sync = storage::WalSyncMode::kSync;  // Honour WriteOptions::sync.
  options.mmap_table_reads = settings.strata_mmap_reads;
  absl::StatusOr<std::unique_ptr<storage::DB>> db =
      storage::DB::Open(options, dir);
  if (!db.ok()) return db.status();
  return std::unique_ptr<BenchEngine>(
      std::make_unique<StrataEngine>(*std::move(db),
                                     settings.strata_verify_checksums));
}

std::string StrataVersion() {
  return absl::StrFormat("strata %s (%s)", STRATA_VERSION, STRATA_GIT_SHA);
}

}  // namespace strata::bench
