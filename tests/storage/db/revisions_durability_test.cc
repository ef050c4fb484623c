// Revisions and the change log across reopen and simulated power loss (the
// in-memory Env's ResetToSyncedState), and the disk that history retention
// keeps under sustained overwrite.
//
// Power loss: a randomized workload of synced and unsynced writes, flushes
// and compactions, cut by a clean close or a power loss, many times over
// one database. After each reopen the engine must be at a revision between
// the last one known durable (a synced write, or a flush) and the last one
// handed out, and must be exactly the state, the history (reads at past
// revisions) and the change log of that prefix of the writes; the next
// write takes the next revision. So no synced revision is ever lost or
// reused; an unsynced one may be lost, and its number is then given to the
// next write (shown on its own below: what a watcher of a --wal_sync=none
// server may see).

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "db/db_impl.h"
#include "env/mem_env.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"
#include "util/filename.h"

namespace strata::storage {
namespace {

constexpr char kRoot[] = "/strata-revisions-durability-test";
constexpr char kDbName[] = "/strata-revisions-durability-test/db";

// A key's value and metadata.
struct Entry {
  std::string value;
  KeyMetadata metadata;
  bool operator==(const Entry&) const = default;
};
using State = std::map<std::string, Entry>;

std::string Show(const State& state) {
  std::string out;
  for (const auto& [k, e] : state) {
    absl::StrAppendFormat(&out, "%s=%s@%d/%d/%d ", k, e.value.substr(0, 20),
                          e.metadata.create_revision, e.metadata.mod_revision,
                          e.metadata.version);
  }
  return out;
}

// One committed write: each changed key's new value (nullopt = deleted).
using Batch = std::map<std::string, std::optional<std::string>>;

// The writes the database should hold: batch i is revision i + 1.
class Model {
 public:
  Revision current() const { return batches_.size(); }
  // The state at the current revision.
  const State& state() const { return state_; }
  void Commit(Batch batch) {
    batches_.push_back(std::move(batch));
    Apply(batches_.size(), &state_);
  }
  // Forgets the revisions above `revision` (lost in a power loss).
  void TruncateTo(Revision revision) {
    if (revision == current()) return;
    batches_.resize(revision);
    state_ = StateAt(revision);
  }
  const Batch& At(Revision revision) const { return batches_[revision - 1]; }

  // The state at `revision`, with metadata.
  State StateAt(Revision revision) const {
    State state;
    for (Revision r = 1; r <= revision; r++) Apply(r, &state);
    return state;
  }

 private:
  void Apply(Revision r, State* state) const {
    for (const auto& [k, v] : At(r)) {
      if (!v) {
        state->erase(k);
        continue;
      }
      auto it = state->find(k);
      Entry e;
      e.value = *v;
      e.metadata.create_revision =
          it == state->end() ? r : it->second.metadata.create_revision;
      e.metadata.mod_revision = r;
      e.metadata.version =
          it == state->end() ? 1 : it->second.metadata.version + 1;
      (*state)[k] = e;
    }
  }

  std::vector<Batch> batches_;
  State state_;
};

class RevisionsPowerLossTest : public ::testing::TestWithParam<WalSyncMode> {
 protected:
  RevisionsPowerLossTest() {
    EXPECT_OK(env_.CreateDir(kRoot));
    options_.env = &env_;
    options_.wal_sync = GetParam();
    options_.keep_history = true;
    // No automatic retention (and so no background manifest writes): the
    // database is idle between calls, as ResetToSyncedState requires.
    options_.history_retention_seconds = 0;
    options_.history_retention_revisions = 0;
    // The memtable never fills by itself: memtable switches, flushes and
    // compactions happen only inside Flush() and CompactRange(), which
    // wait for them.
    options_.memtable_bytes = 16 << 20;
    options_.level0_compaction_trigger = 1000;
    options_.level0_slowdown_writes_trigger = 1000;
    options_.level0_stop_writes_trigger = 1000;
    options_.block_cache_bytes = 1 << 20;
    options_.target_file_size = 32 << 10;
  }

  void Open() {
    db_.reset();
    auto db = DB::Open(options_, kDbName);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
  }

  State ReadAll(Revision at) {
    ReadOptions ro;
    const Snapshot* snap = nullptr;
    if (at != 0) {
      auto s = db_->GetSnapshotAt(at);
      EXPECT_TRUE(s.ok()) << "at " << at << ": " << s.status();
      if (!s.ok()) return {};
      snap = *s;
      ro.snapshot = snap;
    }
    State out;
    {
      auto it = db_->NewIterator(ro);
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        out[std::string(it->key())] = {std::string(it->value()),
                                       it->metadata()};
      }
      EXPECT_OK(it->status());
    }
    if (snap != nullptr) db_->ReleaseSnapshot(snap);
    return out;
  }

  // Checks the reopened database against the model: its state, reads at
  // past revisions, and the change log from a random revision on.
  void CheckAgainstModel(std::mt19937_64* rng) {
    const Revision current = model_.current();
    ASSERT_EQ(db_->CurrentRevision(), current);
    const State& want = model_.state();
    ASSERT_EQ(Show(ReadAll(0)), Show(want));
    for (const auto& [k, e] : want) {
      auto got = db_->GetWithMetadata(ReadOptions(), k);
      ASSERT_OK(got);
      ASSERT_TRUE(got->found) << k;
      ASSERT_EQ(got->metadata, e.metadata) << k;
      ASSERT_EQ(got->revision, current);
    }
    if (current == 0) return;
    for (int i = 0; i < 3; i++) {
      const Revision at = 1 + (*rng)() % current;
      ASSERT_EQ(Show(ReadAll(at)), Show(model_.StateAt(at)))
          << "read at revision " << at << " of " << current;
    }
    const Revision from = 1 + (*rng)() % current;
    auto changes = db_->GetUpdatesSince(from);
    ASSERT_OK(changes);
    Revision next = from;
    while ((*changes)->Next()) {
      const ChangeBatch& b = (*changes)->batch();
      ASSERT_EQ(b.revision, next) << "the change log skips or repeats";
      Batch got;
      for (const Change& c : b.changes) {
        got[std::string(c.key)] =
            c.type == Change::Type::kPut
                ? std::optional<std::string>(std::string(c.value))
                : std::nullopt;
        ASSERT_EQ(c.metadata.mod_revision, b.revision);
      }
      ASSERT_EQ(got, model_.At(b.revision)) << "change log at " << b.revision;
      next++;
    }
    ASSERT_OK((*changes)->status());
    ASSERT_EQ(next, current + 1)
        << "the change log from " << from << " ends early";
  }

  MemEnv env_;
  Options options_;
  std::unique_ptr<DB> db_;
  Model model_;
};

TEST_P(RevisionsPowerLossTest, NoDurableRevisionIsLostOrReused) {
  const bool sync_mode = GetParam() == WalSyncMode::kSync;
  // STRATA_POWER_LOSS_EPOCHS / _SEED run a longer soak or another one.
  const char* epochs_env = std::getenv("STRATA_POWER_LOSS_EPOCHS");
  const char* seed_env = std::getenv("STRATA_POWER_LOSS_SEED");
  const int kEpochs = epochs_env != nullptr ? std::atoi(epochs_env) : 40;
  std::mt19937_64 rng(seed_env != nullptr ? std::strtoull(seed_env, nullptr, 10)
                                          : 1301);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  constexpr int kKeys = 30;
  int power_losses = 0, lost_revisions = 0, reused_revisions = 0;
  // The highest revision ever handed out, to count numbers given again.
  Revision handed_out = 0;
  ASSERT_NO_FATAL_FAILURE(Open());
  for (int epoch = 0; epoch < kEpochs; epoch++) {
    SCOPED_TRACE(absl::StrFormat("epoch %d", epoch));
    // Revisions up to `durable` must survive anything: every synced write
    // (kSync) makes its WAL prefix durable, a flush the whole memtable.
    Revision durable = model_.current();
    const int ops = 20 + pick(100);
    for (int i = 0; i < ops; i++) {
      const int what = pick(100);
      if (what < 3) {
        ASSERT_OK(db_->Flush());
        durable = model_.current();
        continue;
      }
      if (what < 4) {
        ASSERT_OK(db_->CompactRange(std::nullopt, std::nullopt));
        continue;
      }
      WriteOptions wo;
      wo.sync = pick(2) == 0;
      WriteBatch wb;
      Batch batch;
      const int n = what < 80 ? 1 : 2 + pick(5);
      for (int j = 0; j < n; j++) {
        const std::string key = absl::StrFormat("k%02d", pick(kKeys));
        if (pick(5) == 0) {
          wb.Delete(key);
          batch[key] = std::nullopt;
        } else {
          std::string v = absl::StrFormat("e%d-o%d-j%d-", epoch, i, j);
          v.resize(v.size() + pick(200), 'a' + static_cast<char>(pick(26)));
          wb.Put(key, v);
          batch[key] = v;
        }
      }
      // Deletes of absent keys change nothing.
      const State& before = model_.state();
      for (auto it = batch.begin(); it != batch.end();) {
        if (!it->second && !before.count(it->first)) {
          it = batch.erase(it);
        } else {
          ++it;
        }
      }
      ASSERT_OK_AND_ASSIGN(Revision r, db_->Write(wo, &wb));
      if (batch.empty()) {
        ASSERT_EQ(r, model_.current()) << "a write that changed nothing";
        continue;
      }
      ASSERT_EQ(r, model_.current() + 1) << "revisions are consecutive";
      if (r <= handed_out) reused_revisions++;
      model_.Commit(std::move(batch));
      handed_out = std::max(handed_out, r);
      if (wo.sync && sync_mode) durable = r;
    }
    const Revision before = model_.current();
    if (pick(2) == 0) {
      // A power loss: the database is idle (no flush or compaction runs
      // outside Flush() and CompactRange()).
      env_.ResetToSyncedState();
      power_losses++;
    }
    ASSERT_NO_FATAL_FAILURE(Open());
    const Revision after = db_->CurrentRevision();
    ASSERT_GE(after, durable) << "a durable revision was lost: revisions "
                              << after + 1 << ".." << durable;
    ASSERT_LE(after, before) << "revisions appeared from nowhere";
    lost_revisions += static_cast<int>(before - after);
    model_.TruncateTo(after);
    ASSERT_NO_FATAL_FAILURE(CheckAgainstModel(&rng));
  }
  std::printf(
      "%d epochs, %d power losses, revisions 1..%llu, %d unsynced "
      "revisions lost, %d revision numbers given again\n",
      kEpochs, power_losses, static_cast<unsigned long long>(model_.current()),
      lost_revisions, reused_revisions);
  // The workload did cut through unsynced writes (else the test shows
  // nothing about them), and their numbers were given to later writes.
  EXPECT_GT(lost_revisions, 0);
  EXPECT_GT(reused_revisions, 0);
}

INSTANTIATE_TEST_SUITE_P(WalSync, RevisionsPowerLossTest,
                         ::testing::Values(WalSyncMode::kSync,
                                           WalSyncMode::kNoSync),
                         [](const auto& info) {
                           return info.param == WalSyncMode::kSync
                                      ? std::string("Sync")
                                      : std::string("NoSync");
                         });

// The documented hazard of --wal_sync=none (and of unsynced writes): a
// revision that was committed and seen (by a commit listener: the server's
// Watch) is gone after a power loss, and the next write gets its number.
// A client that saw the lost revision must not trust its number.
TEST(RevisionsPowerLossHazardTest, AnUnsyncedRevisionLostInAPowerLossIsReused) {
  MemEnv env;
  ASSERT_OK(env.CreateDir(kRoot));
  Options options;
  options.env = &env;
  options.keep_history = true;
  options.history_retention_seconds = 0;
  options.wal_sync = WalSyncMode::kNoSync;
  struct Recorder : CommitListener {
    std::vector<std::string> seen;
    void OnCommit(const std::vector<ChangeBatch>& batches) override {
      for (const ChangeBatch& b : batches) {
        for (const Change& c : b.changes) {
          seen.push_back(
              absl::StrFormat("%d:%s=%s", b.revision, c.key, c.value));
        }
      }
    }
  } recorder;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(options, kDbName));
    ASSERT_OK_AND_ASSIGN(Revision r1, db->Put(WriteOptions(), "a", "1"));
    EXPECT_EQ(r1, 1u);
    ASSERT_OK(db->Flush());  // Revision 1 is durable.
    db->SetCommitListener(&recorder);
    ASSERT_OK_AND_ASSIGN(Revision r2, db->Put(WriteOptions(), "b", "lost"));
    EXPECT_EQ(r2, 2u);
    db->SetCommitListener(nullptr);
    env.ResetToSyncedState();
  }
  EXPECT_EQ(recorder.seen, std::vector<std::string>{"2:b=lost"});
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(options, kDbName));
  EXPECT_EQ(db->CurrentRevision(), 1u);
  ASSERT_OK_AND_ASSIGN(Revision again, db->Put(WriteOptions(), "c", "new"));
  EXPECT_EQ(again, 2u);  // The number the listener saw, for another write.
  ASSERT_OK_AND_ASSIGN(auto changes, db->GetUpdatesSince(2));
  ASSERT_TRUE(changes->Next());
  ASSERT_EQ(changes->batch().changes.size(), 1u);
  EXPECT_EQ(changes->batch().changes[0].key, "c");
}

// The in-memory Env with a clock the test moves (retention acts at most
// every 5 s of Env time).
class ManualClockMemEnv final : public EnvWrapper {
 public:
  ManualClockMemEnv() : EnvWrapper(&base_) {}

  std::atomic<uint64_t> now_micros{1'000'000'000};

  uint64_t NowMicros() override { return now_micros.load(); }

 private:
  MemEnv base_;
};

// Bytes of the database's files on "disk", by kind.
struct DiskUsage {
  uint64_t sst = 0;
  uint64_t wal = 0;
  uint64_t other = 0;  // Manifest, CURRENT, LOCK.
  uint64_t total() const { return sst + wal + other; }
};

// Sustained overwrite of a few keys with ~1 KiB values. With retention by
// revision count, what the database keeps on disk stays bounded by the
// history it must keep, whatever the number of writes; without retention
// it grows with every write.
class RetentionDiskTest : public ::testing::Test {
 protected:
  static constexpr int kKeys = 8;
  static constexpr size_t kValueBytes = 1024;
  static constexpr size_t kMemtableBytes = 256 << 10;
  static constexpr uint64_t kRetainedRevisions = 2000;
  // Retention runs (TEST_AdvanceHistory, the Env clock moved past its
  // minimum interval) every this many writes.
  static constexpr int kAdvanceEvery = 1000;

  RetentionDiskTest() {
    EXPECT_OK(env_.CreateDir(kRoot));
    options_.env = &env_;
    options_.keep_history = true;
    options_.history_retention_seconds = 0;
    options_.memtable_bytes = kMemtableBytes;
    options_.compression = CompressionType::kNone;  // Bytes are bytes.
    options_.target_file_size = 1 << 20;
    options_.block_cache_bytes = 1 << 20;
    options_.wal_sync = WalSyncMode::kNoSync;  // Durability is not the point.
    // Incompressible values.
    std::mt19937_64 rng(7);
    for (auto& v : values_) {
      v.resize(kValueBytes);
      for (char& c : v) c = static_cast<char>(rng());
    }
  }

  DiskUsage Usage() {
    DiskUsage u;
    auto children = env_.GetChildren(kDbName);
    EXPECT_OK(children);
    if (!children.ok()) return u;
    for (const std::string& name : *children) {
      auto size = env_.GetFileSize(std::string(kDbName) + "/" + name);
      if (!size.ok()) continue;  // Removed meanwhile.
      uint64_t number;
      FileType type;
      if (ParseFileName(name, &number, &type) && type == FileType::kTable) {
        u.sst += *size;
      } else if (ParseFileName(name, &number, &type) &&
                 type == FileType::kWal) {
        u.wal += *size;
      } else {
        u.other += *size;
      }
    }
    return u;
  }

  // Overwrites the keys round robin, `writes` times or until `deadline`;
  // every kAdvanceEvery writes advances retention and measures the disk.
  // Returns the writes done; *peak is the largest usage seen.
  int Overwrite(DB* db, int writes, absl::Duration deadline, DiskUsage* peak) {
    auto* impl = static_cast<DBImpl*>(db);
    const absl::Time end = absl::Now() + deadline;
    WriteOptions wo;
    wo.sync = false;
    int i = 0;
    for (; i < writes && absl::Now() < end; i++) {
      auto r = db->Put(wo, absl::StrFormat("key%02d", i % kKeys),
                       values_[i % values_.size()]);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) break;
      if ((i + 1) % kAdvanceEvery == 0) {
        env_.now_micros += 6'000'000;
        // The engine's own timer runs retention only when a limit is set;
        // the hook would run it regardless (and, with no limit, compact
        // everything), so it is called only when a limit is set too.
        if (options_.history_retention_revisions > 0) {
          impl->TEST_AdvanceHistory();
        }
        const DiskUsage u = Usage();
        if (u.total() > peak->total()) *peak = u;
      }
    }
    return i;
  }

  ManualClockMemEnv env_;
  Options options_;
  std::array<std::string, 61> values_;
};

TEST_F(RetentionDiskTest, RetentionKeepsDiskBoundedUnderSustainedOverwrite) {
  options_.history_retention_revisions = kRetainedRevisions;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(options_, kDbName));
  // The bound. One write costs W <= 1100 bytes in a file (the 1 KiB value,
  // the key, the entry's metadata and framing). The history kept at any
  // moment is at most H = (retained revisions + revisions between two
  // retention steps) * W = 3000 * 1100 = 3.3 MB. The retained WAL holds H,
  // plus the unflushed memtables' WALs and the part of the oldest WAL
  // before the compacted revision: at most H + 3 memtables (M = 256 KiB).
  // The SSTables hold H in level 1 (each L0->L1 compaction rewrites it
  // without the versions below the compacted revision, and the newest
  // version of each of the 8 keys below it), up to 12 level-0 tables of at
  // most M each (the write-stop trigger), and while a compaction runs its
  // outputs beside its inputs (another H + 4 M). Together:
  //   3 H + 23 M = 9.9 MB + 5.9 MB, under 16 MB.
  constexpr uint64_t kW = 1100;
  constexpr uint64_t kH = (kRetainedRevisions + kAdvanceEvery) * kW;
  constexpr uint64_t kBound = 3 * kH + 23 * kMemtableBytes;
  static_assert(kBound < (16u << 20));
  constexpr int kWrites = 200'000;
  DiskUsage peak;
  const absl::Time start = absl::Now();
  const int done = Overwrite(db.get(), kWrites, absl::Seconds(90), &peak);
  const DiskUsage end = Usage();
  std::printf(
      "%d overwrites of %d keys (%.0f MB of values) in %.1f s; disk "
      "at the peak: %.1f MB (tables %.1f MB, WAL %.1f MB), at the "
      "end: %.1f MB; bound %.1f MB; compacted revision %llu of %llu\n",
      done, kKeys, done * kValueBytes / 1e6,
      absl::ToDoubleSeconds(absl::Now() - start), peak.total() / 1e6,
      peak.sst / 1e6, peak.wal / 1e6, end.total() / 1e6, kBound / 1e6,
      static_cast<unsigned long long>(db->CompactedRevision()),
      static_cast<unsigned long long>(db->CurrentRevision()));
  // Enough writes that an unbounded history would be far past the bound.
  ASSERT_GE(static_cast<uint64_t>(done) * kValueBytes, 4 * kBound)
      << "the machine was too slow to write enough in time";
  EXPECT_LE(peak.total(), kBound);
  EXPECT_LE(end.total(), kBound);
  EXPECT_GE(db->CompactedRevision() + kRetainedRevisions + kAdvanceEvery,
            db->CurrentRevision());
  // The retained history is all there: the change log from the compacted
  // revision + 1 and a read at the compacted revision.
  ASSERT_OK_AND_ASSIGN(auto changes,
                       db->GetUpdatesSince(db->CompactedRevision() + 1));
  uint64_t batches = 0;
  while (changes->Next()) batches++;
  ASSERT_OK(changes->status());
  EXPECT_EQ(batches, db->CurrentRevision() - db->CompactedRevision());
  ASSERT_OK_AND_ASSIGN(const Snapshot* snap,
                       db->GetSnapshotAt(db->CompactedRevision()));
  db->ReleaseSnapshot(snap);
}

// The contrast: the same overwrite with history kept and nothing
// compacting it grows past the bound above, with the writes.
TEST_F(RetentionDiskTest, WithoutRetentionTheHistoryGrowsWithTheWrites) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DB> db, DB::Open(options_, kDbName));
  constexpr int kWrites = 40'000;
  DiskUsage peak;
  const int done = Overwrite(db.get(), kWrites, absl::Seconds(60), &peak);
  ASSERT_EQ(done, kWrites);
  const DiskUsage end = Usage();
  std::printf(
      "%d overwrites without retention: disk %.1f MB (tables %.1f "
      "MB, WAL %.1f MB)\n",
      done, end.total() / 1e6, end.sst / 1e6, end.wal / 1e6);
  EXPECT_EQ(db->CompactedRevision(), 0u);
  // Every version is kept, in the tables and in the retained WAL.
  EXPECT_GE(end.sst, uint64_t{kWrites} * kValueBytes);
  EXPECT_GE(end.wal, uint64_t{kWrites} * kValueBytes);
  EXPECT_GT(end.total(), 16u << 20);  // Past the bound of the test above.
}

}  // namespace
}  // namespace strata::storage
