// Options::compaction_filter: compaction drops every version and tombstone
// of a key the filter calls unreachable, once no live snapshot is older
// than the revision it names, also inside the history window; everything
// else compacts as before.

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"

namespace strata::storage {
namespace {

using ::strata::testing::TempDir;

// Keys starting with a dropped prefix are unreachable since the revision
// given for it.
class PrefixFilter final : public CompactionFilter {
 public:
  void Drop(const std::string& prefix, Revision since) {
    absl::MutexLock l(&mu_);
    dropped_[prefix] = since;
  }
  std::optional<Revision> UnreachableSince(
      std::string_view user_key) const override {
    absl::MutexLock l(&mu_);
    for (const auto& [prefix, since] : dropped_) {
      if (user_key.substr(0, prefix.size()) == prefix) return since;
    }
    return std::nullopt;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, Revision> dropped_ ABSL_GUARDED_BY(mu_);
};

class CompactionFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    filter_ = std::make_shared<PrefixFilter>();
    Options options;
    options.keep_history = true;  // A long window: it must not matter.
    options.compaction_filter = filter_;
    auto db = DB::Open(options, dir_.path());
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }

  // n keys "<prefix>%04d" with `bytes`-byte random (incompressible)
  // values, written twice (two versions each; the second value of key i
  // starts with 'a' + (i + 1) % 26) and the first one deleted (a
  // tombstone); returns the last revision.
  Revision Fill(const std::string& prefix, int n, size_t bytes) {
    Revision r = 0;
    for (int round = 0; round < 2; ++round) {
      WriteBatch b;
      for (int i = 0; i < n; ++i) {
        std::string v(bytes, '\0');
        for (char& c : v) c = static_cast<char>(rng_());
        v[0] = static_cast<char>('a' + (i + round) % 26);
        b.Put(absl::StrFormat("%s%04d", prefix, i), v);
      }
      auto w = db_->Write(WriteOptions(), &b);
      EXPECT_TRUE(w.ok()) << w.status();
      r = w.ok() ? *w : 0;
    }
    auto d = db_->Delete(WriteOptions(), absl::StrFormat("%s%04d", prefix, 0));
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : r;
  }

  uint64_t LiveBytes() { return db_->GetStatistics().levels.live_sst_bytes; }

  std::mt19937_64 rng_{42};
  TempDir dir_;
  std::shared_ptr<PrefixFilter> filter_;
  std::unique_ptr<DB> db_;
};

TEST_F(CompactionFilterTest, UnreachableKeysAreDroppedWholeByCompaction) {
  const Revision r = Fill("gone/", 500, 1000);
  Fill("kept/", 50, 1000);
  ASSERT_TRUE(db_->Flush().ok());
  ASSERT_TRUE(db_->CompactRange(std::nullopt, std::nullopt).ok());
  const uint64_t before = LiveBytes();
  ASSERT_GT(before, 500u * 1000u);

  filter_->Drop("gone/", r);
  ASSERT_TRUE(db_->CompactRange(std::nullopt, std::nullopt).ok());
  const uint64_t after = LiveBytes();
  // The kept keys' two versions (history) remain, plus overhead.
  EXPECT_LT(after, 4u * 50u * 1000u) << before << " -> " << after;
  EXPECT_GE(db_->GetStatistics().compaction.filtered_entries, 2u * 500u);
  // Kept keys are intact, history included.
  auto v = db_->Get(ReadOptions(), "kept/0001");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size(), 1000u);
  EXPECT_EQ((*v)[0], 'c');
  EXPECT_TRUE(absl::IsNotFound(db_->Get(ReadOptions(), "kept/0000").status()));
  // Nothing of the dropped keys is left (no older version resurfaces).
  std::unique_ptr<Iterator> it = db_->NewIterator(ReadOptions());
  it->Seek("gone/");
  EXPECT_TRUE(!it->Valid() || it->key().substr(0, 5) != "gone/");
}

TEST_F(CompactionFilterTest, ASnapshotOlderThanTheDropKeepsTheKeys) {
  const Revision r = Fill("gone/", 200, 1000);
  ASSERT_TRUE(db_->Flush().ok());
  const Snapshot* snapshot = db_->GetSnapshot();  // At r.
  // Unreachable only from a later revision: the snapshot predates it.
  ASSERT_TRUE(db_->Put(WriteOptions(), "other", "x").ok());
  filter_->Drop("gone/", r + 1);
  ASSERT_TRUE(db_->CompactRange(std::nullopt, std::nullopt).ok());
  ReadOptions at_snapshot;
  at_snapshot.snapshot = snapshot;
  auto v = db_->Get(at_snapshot, "gone/0005");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->size(), 1000u);
  EXPECT_EQ(db_->GetStatistics().compaction.filtered_entries, 0u);

  db_->ReleaseSnapshot(snapshot);
  ASSERT_TRUE(db_->CompactRange(std::nullopt, std::nullopt).ok());
  EXPECT_GE(db_->GetStatistics().compaction.filtered_entries, 2u * 200u);
  EXPECT_LT(LiveBytes(), 20u * 1000u);
}

TEST_F(CompactionFilterTest, WithoutAnAnswerNothingChanges) {
  Fill("a/", 100, 500);
  ASSERT_TRUE(db_->Flush().ok());
  ASSERT_TRUE(db_->CompactRange(std::nullopt, std::nullopt).ok());
  EXPECT_EQ(db_->GetStatistics().compaction.filtered_entries, 0u);
  auto v = db_->Get(ReadOptions(), "a/0099");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_GT(LiveBytes(), 100u * 500u);
}

}  // namespace
}  // namespace strata::storage
