// Randomized model test: thousands of random operations against the engine
// and a std::map model, with flushes, compactions, snapshots and reopen
// interleaved, on a tiny memtable so that many tables and levels form.
// Failures print the seed; rerun with STRATA_MODEL_SEED=<seed>. The
// database lives in an in-memory Env, so the run is bounded by the engine,
// not by fsync.

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "db/db_impl.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "strata/storage/env.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using Model = std::map<std::string, std::string>;

struct HeldSnapshot {
  const Snapshot* snapshot;
  Model model;
};

class ModelTest : public ::testing::TestWithParam<CompressionType> {
 protected:
  void Open() {
    db_.reset();
    options_.env = env_.get();
    auto db = DB::Open(options_, "/db");
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }

  void CheckGet(const Model& model, std::string_view key,
                const Snapshot* snap) {
    ReadOptions ro;
    ro.snapshot = snap;
    auto v = db_->Get(ro, key);
    auto it = model.find(std::string(key));
    if (it == model.end()) {
      ASSERT_TRUE(absl::IsNotFound(v.status()))
          << "key " << key << " should be absent: " << v.status();
    } else {
      ASSERT_TRUE(v.ok()) << "key " << key << ": " << v.status();
      ASSERT_EQ(*v, it->second) << "key " << key;
    }
  }

  void CheckScan(const Model& model, const std::string& start,
                 const std::string& end, const Snapshot* snap) {
    ReadOptions ro;
    ro.snapshot = snap;
    auto it = db_->NewIterator(ro);
    auto m = model.lower_bound(start);
    for (it->Seek(start); it->Valid() && (end.empty() || it->key() < end);
         it->Next(), ++m) {
      ASSERT_NE(m, model.end()) << "extra key " << it->key();
      if (!end.empty()) {
        ASSERT_LT(m->first, end);
      }
      ASSERT_EQ(it->key(), m->first);
      ASSERT_EQ(it->value(), m->second);
    }
    ASSERT_OK(it->status());
    ASSERT_TRUE(m == model.end() || (!end.empty() && m->first >= end))
        << "missing key " << m->first;
  }

  const std::unique_ptr<Env> env_ = NewMemEnv();
  Options options_;
  std::unique_ptr<DB> db_;
};

TEST_P(ModelTest, RandomOperationsMatchModel) {
  uint32_t seed = std::random_device{}();
  if (const char* s = std::getenv("STRATA_MODEL_SEED")) seed = std::atoi(s);
  SCOPED_TRACE(absl::StrFormat("seed %u (rerun with STRATA_MODEL_SEED=%u)",
                               seed, seed));
  std::mt19937 rng(seed);
  options_.memtable_bytes = 64 << 10;
  options_.target_file_size = 32 << 10;
  options_.max_bytes_for_level_base = 128 << 10;
  options_.block_cache_bytes = 256 << 10;
  options_.compression = GetParam();
  Open();

  Model model;
  std::vector<HeldSnapshot> snapshots;
  auto key = [&] {
    return absl::StrFormat("key%05d", std::uniform_int_distribution<>(0, 1999)(rng));
  };
  auto value = [&] {
    int len = std::uniform_int_distribution<>(0, 300)(rng);
    return std::string(len, static_cast<char>('a' + rng() % 26)) +
           std::to_string(rng());
  };
  WriteOptions wo;
  wo.sync = false;
  constexpr int kOps = 6000;
  for (int op = 0; op < kOps; op++) {
    int r = std::uniform_int_distribution<>(0, 999)(rng);
    if (r < 400) {
      std::string k = key(), v = value();
      ASSERT_OK(db_->Put(wo, k, v));
      model[k] = v;
    } else if (r < 500) {
      std::string k = key();
      ASSERT_OK(db_->Delete(wo, k));
      model.erase(k);
    } else if (r < 600) {
      WriteBatch batch;
      int n = std::uniform_int_distribution<>(1, 20)(rng);
      for (int i = 0; i < n; i++) {
        std::string k = key();
        if (rng() % 4 == 0) {
          batch.Delete(k);
          model.erase(k);
        } else {
          std::string v = value();
          batch.Put(k, v);
          model[k] = v;
        }
      }
      ASSERT_OK(db_->Write(wo, &batch));
    } else if (r < 850) {
      ASSERT_NO_FATAL_FAILURE(CheckGet(model, key(), nullptr));
    } else if (r < 900) {
      std::string a = key(), b = rng() % 3 == 0 ? "" : key();
      if (!b.empty() && b < a) std::swap(a, b);
      ASSERT_NO_FATAL_FAILURE(CheckScan(model, a, b, nullptr));
    } else if (r < 930) {
      if (snapshots.size() < 4) {
        snapshots.push_back({db_->GetSnapshot(), model});
      } else {
        size_t i = rng() % snapshots.size();
        db_->ReleaseSnapshot(snapshots[i].snapshot);
        snapshots.erase(snapshots.begin() + i);
      }
    } else if (r < 960 && !snapshots.empty()) {
      const HeldSnapshot& s = snapshots[rng() % snapshots.size()];
      ASSERT_NO_FATAL_FAILURE(CheckGet(s.model, key(), s.snapshot));
      ASSERT_NO_FATAL_FAILURE(CheckScan(s.model, key(), "", s.snapshot));
    } else if (r < 975) {
      ASSERT_OK(db_->Flush());
    } else if (r < 985) {
      std::string a = key(), b = key();
      if (b < a) std::swap(a, b);
      ASSERT_OK(db_->CompactRange(a, b));
    } else if (r < 995) {
      // Reopen: snapshots do not survive it.
      for (auto& s : snapshots) db_->ReleaseSnapshot(s.snapshot);
      snapshots.clear();
      Open();
    }
  }
  for (auto& s : snapshots) db_->ReleaseSnapshot(s.snapshot);
  ASSERT_NO_FATAL_FAILURE(CheckScan(model, "", "", nullptr));
  // The tiny memtable must have produced a real tree, not a memtable-only
  // run.
  Statistics stats = db_->GetStatistics();
  int levels_used = 0;
  for (const auto& l : stats.levels.per_level) levels_used += l.num_files > 0;
  EXPECT_GE(levels_used, 1);
  Open();
  ASSERT_NO_FATAL_FAILURE(CheckScan(model, "", "", nullptr));
}

INSTANTIATE_TEST_SUITE_P(Compression, ModelTest,
                         ::testing::Values(CompressionType::kNone,
                                           CompressionType::kLZ4),
                         [](const auto& info) {
                           return info.param == CompressionType::kNone
                                      ? std::string("None")
                                      : std::string("LZ4");
                         });

}  // namespace
}  // namespace strata::storage
