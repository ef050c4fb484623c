// The watch hub against a real engine: every change in the watched range
// delivered exactly once, in revision order, live and from the change log,
// with slow consumers, previous values, progress notifications and
// compaction.

#include "server/watch_hub.h"

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using storage::Revision;
using ::strata::testing::TempDir;

constexpr absl::Duration kWait = absl::Seconds(30);

// A stream that records what it is sent. Writes complete at once unless
// paused (a slow consumer).
class RecordingSink final : public WatchSink {
 public:
  explicit RecordingSink(WatchHub* hub) : hub_(hub) {}

  void set_watcher(std::shared_ptr<WatchHub::Watcher> w) {
    absl::MutexLock l(&mu_);
    watcher_ = std::move(w);
  }

  void MessagesReady() override {
    absl::MutexLock l(&mu_);
    ready_ = true;
    if (!paused_) DrainLocked();
  }

  void Pause() {
    absl::MutexLock l(&mu_);
    paused_ = true;
  }
  void Resume() {
    absl::MutexLock l(&mu_);
    paused_ = false;
    if (ready_) DrainLocked();
  }

  // "rev:P key=value c/m/v [prev=value]" / "rev:D key".
  std::vector<std::string> events() {
    absl::MutexLock l(&mu_);
    return events_;
  }
  // Waits until at least n events arrived (or the stream finished).
  bool WaitForEvents(size_t n) {
    return WaitUntil([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return events_.size() >= n || finished_;
    });
  }
  bool WaitUntilFinished() {
    return WaitUntil([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return finished_;
    });
  }
  bool WaitForProgress(size_t n) {
    return WaitUntil([this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return progress_.size() >= n;
    });
  }
  absl::Status final_status() {
    absl::MutexLock l(&mu_);
    return final_status_;
  }
  int64_t compact_revision() {
    absl::MutexLock l(&mu_);
    return compact_revision_;
  }
  std::vector<int64_t> progress_revisions() {
    absl::MutexLock l(&mu_);
    return progress_;
  }
  // Every header revision in order (to check they never go backwards).
  std::vector<int64_t> headers() {
    absl::MutexLock l(&mu_);
    return headers_;
  }

 private:
  // Waits (at most kWait) until pred(), evaluated with mu_ held.
  // (A CondVar loop, not absl::Condition: the predicate lives on this
  // stack and must only be evaluated by this thread.)
  bool WaitUntil(const std::function<bool()>& pred) {
    absl::MutexLock l(&mu_);
    const absl::Time deadline = absl::Now() + kWait;
    while (!pred()) {
      if (changed_.WaitWithDeadline(&mu_, deadline)) return pred();
    }
    return true;
  }

  void DrainLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ready_ = false;
    TakeAllLocked();
    changed_.SignalAll();
  }

  void TakeAllLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (watcher_ != nullptr && !finished_) {
      v1::WatchResponse msg;
      absl::Status status;
      WatchHub::Take t = hub_->TakeMessage(watcher_.get(), &msg, &status);
      if (t == WatchHub::Take::kIdle) return;
      if (t == WatchHub::Take::kFinish) {
        finished_ = true;
        final_status_ = status;
        compact_revision_ = msg.compact_revision();
        return;
      }
      headers_.push_back(msg.header().revision());
      if (msg.events().empty()) progress_.push_back(msg.header().revision());
      for (const v1::Event& e : msg.events()) {
        if (e.type() == v1::Event::PUT) {
          std::string s = absl::StrFormat(
              "%d:P %s=%s %d/%d/%d", e.kv().mod_revision(), e.kv().key(),
              e.kv().value(), e.kv().create_revision(), e.kv().mod_revision(),
              e.kv().version());
          if (e.has_prev_kv()) s += " prev=" + e.prev_kv().value();
          events_.push_back(s);
        } else {
          std::string s = absl::StrFormat("%d:D %s", e.kv().mod_revision(),
                                          e.kv().key());
          if (e.has_prev_kv()) s += " prev=" + e.prev_kv().value();
          events_.push_back(s);
        }
      }
    }
  }

  WatchHub* const hub_;
  absl::Mutex mu_;
  absl::CondVar changed_;  // Signalled whenever something is recorded.
  std::shared_ptr<WatchHub::Watcher> watcher_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  int64_t compact_revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> progress_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> headers_ ABSL_GUARDED_BY(mu_);
};

class WatchHubTest : public ::testing::Test {
 protected:
  WatchHubTest() : pool_(2, "test-io") {
    options_.keep_history = true;
    options_.history_retention_seconds = 0;
    options_.memtable_bytes = 256 << 10;
    auto db = storage::DB::Open(options_, dir_.path());
    EXPECT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    wo_.sync = false;
  }
  ~WatchHubTest() override {
    for (auto& [sink, w] : watches_) hub_->Remove(w);
    if (hub_ != nullptr) hub_->Shutdown();
    pool_.Shutdown();
    hub_.reset();
  }

  void StartHub(WatchHubOptions o = WatchHubOptions()) {
    hub_ = std::make_unique<WatchHub>(db_.get(), &pool_, o);
  }

  // Starts a watch; returns its sink (owned by the fixture).
  RecordingSink* Watch(std::string key, std::string range_end = "",
                       int64_t start = 0, bool prev_kv = false,
                       bool progress = false, absl::Status* error = nullptr,
                       int64_t* compacted = nullptr) {
    auto sink = std::make_unique<RecordingSink>(hub_.get());
    v1::WatchRequest r;
    r.set_key(key);
    r.set_range_end(range_end);
    r.set_start_revision(start);
    r.set_prev_kv(prev_kv);
    r.set_progress_notify(progress);
    int64_t c = 0;
    auto w = hub_->Add(r, KeyspaceView(), sink.get(), &c);
    if (compacted != nullptr) *compacted = c;
    if (!w.ok()) {
      if (error != nullptr) *error = w.status();
      return nullptr;
    }
    sink->set_watcher(*w);
    sink->MessagesReady();  // Anything queued before set_watcher.
    RecordingSink* raw = sink.get();
    watches_.emplace_back(raw, *w);
    sinks_.push_back(std::move(sink));
    return raw;
  }

  Revision Put(const std::string& k, const std::string& v) {
    auto r = db_->Put(wo_, k, v);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : 0;
  }
  Revision Delete(const std::string& k) {
    auto r = db_->Delete(wo_, k);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : 0;
  }

  TempDir dir_;
  storage::Options options_;
  storage::WriteOptions wo_;
  std::unique_ptr<storage::DB> db_;
  ThreadPool pool_;
  std::unique_ptr<WatchHub> hub_;
  std::vector<std::unique_ptr<RecordingSink>> sinks_;
  std::vector<std::pair<RecordingSink*, std::shared_ptr<WatchHub::Watcher>>>
      watches_;
};

TEST_F(WatchHubTest, LiveWatchOfOneKeySeesOnlyThatKeyInOrder) {
  StartHub();
  RecordingSink* s = Watch("k");
  Put("k", "1");      // 1
  Put("other", "x");  // 2
  Put("k", "2");      // 3
  Delete("k");        // 4
  Put("k", "3");      // 5
  ASSERT_TRUE(s->WaitForEvents(4));
  EXPECT_EQ(s->events(),
            (std::vector<std::string>{"1:P k=1 1/1/1", "3:P k=2 1/3/2",
                                      "4:D k", "5:P k=3 5/5/1"}));
}

TEST_F(WatchHubTest, RangeAndPrefixWatches) {
  StartHub();
  RecordingSink* range = Watch("b", "d");
  RecordingSink* from = Watch("c", std::string(1, '\0'));
  for (std::string k : {"a", "b", "bz", "c", "d", "e"}) Put(k, "v");
  ASSERT_TRUE(range->WaitForEvents(3));
  ASSERT_TRUE(from->WaitForEvents(3));
  EXPECT_EQ(range->events(),
            (std::vector<std::string>{"2:P b=v 2/2/1", "3:P bz=v 3/3/1",
                                      "4:P c=v 4/4/1"}));
  EXPECT_EQ(from->events(),
            (std::vector<std::string>{"4:P c=v 4/4/1", "5:P d=v 5/5/1",
                                      "6:P e=v 6/6/1"}));
}

TEST_F(WatchHubTest, AllChangesOfOneWriteArriveTogether) {
  StartHub();
  RecordingSink* s = Watch("", std::string(1, '\0'));
  storage::WriteBatch b;
  b.Put("x", "1");
  b.Put("y", "2");
  b.Delete("absent");
  ASSERT_OK(db_->Write(wo_, &b));
  ASSERT_TRUE(s->WaitForEvents(2));
  EXPECT_EQ(s->events(),
            (std::vector<std::string>{"1:P x=1 1/1/1", "1:P y=2 1/1/1"}));
  // The opening message (complete up to revision 0), then revision 1.
  EXPECT_EQ(s->headers(), (std::vector<int64_t>{0, 1}));
}

TEST_F(WatchHubTest, StartRevisionInThePastReplaysFromCacheAndFromTheWal) {
  for (int i = 1; i <= 500; i++) Put(absl::StrFormat("k%03d", i % 7), std::to_string(i));
  // A tiny cache: everything before the hub started comes from the WAL.
  WatchHubOptions o;
  o.cache_bytes = 1;
  StartHub(o);
  RecordingSink* s = Watch("k", "l", /*start=*/100);
  for (int i = 501; i <= 600; i++) Put(absl::StrFormat("k%03d", i % 7), std::to_string(i));
  ASSERT_TRUE(s->WaitForEvents(501));
  std::vector<std::string> got = s->events();
  ASSERT_EQ(got.size(), 501u);
  for (int i = 100; i <= 600; i++) {
    ASSERT_EQ(got[i - 100].substr(0, got[i - 100].find(' ')),
              absl::StrFormat("%d:P", i));
  }
  EXPECT_GE(hub_->stats().disk_catch_ups, 1u);
}

TEST_F(WatchHubTest, SlowConsumerMissesNothing) {
  WatchHubOptions o;
  o.buffer_bytes = 1024;     // Overflows quickly: goes to pull mode.
  o.cache_bytes = 64 << 10;  // Part of the backlog comes from the WAL.
  StartHub(o);
  RecordingSink* slow = Watch("", std::string(1, '\0'));
  RecordingSink* fast = Watch("", std::string(1, '\0'));
  slow->Pause();
  constexpr int kWrites = 5000;
  for (int i = 1; i <= kWrites; i++) Put(absl::StrFormat("key%04d", i % 100), std::string(50, 'v'));
  ASSERT_TRUE(fast->WaitForEvents(kWrites))
      << fast->events().size() << " events; pulling "
      << hub_->stats().pulling_watchers;
  slow->Resume();
  ASSERT_TRUE(slow->WaitForEvents(kWrites));
  for (RecordingSink* s : {slow, fast}) {
    std::vector<std::string> got = s->events();
    ASSERT_EQ(got.size(), size_t{kWrites});
    for (int i = 1; i <= kWrites; i++) {
      ASSERT_EQ(got[i - 1].substr(0, got[i - 1].find(' ')),
                absl::StrFormat("%d:P", i));
    }
    std::vector<int64_t> h = s->headers();
    EXPECT_TRUE(std::is_sorted(h.begin(), h.end()));
  }
  // After catching up the slow watcher is live again.
  Put("after", "v");
  ASSERT_TRUE(slow->WaitForEvents(kWrites + 1));
}

TEST_F(WatchHubTest, PreviousValues) {
  StartHub();
  RecordingSink* s = Watch("k", "", 0, /*prev_kv=*/true);
  Put("k", "1");
  Put("k", "2");
  Delete("k");
  ASSERT_TRUE(s->WaitForEvents(3));
  EXPECT_EQ(s->events(),
            (std::vector<std::string>{"1:P k=1 1/1/1", "2:P k=2 1/2/2 prev=1",
                                      "3:D k prev=2"}));
}

TEST_F(WatchHubTest, StartAtOrBelowTheCompactedRevisionIsRefused) {
  for (int i = 0; i < 10; i++) Put("k", std::to_string(i));
  ASSERT_OK(db_->CompactHistory(5));
  StartHub();
  absl::Status error;
  int64_t compacted = 0;
  EXPECT_EQ(Watch("k", "", /*start=*/5, false, false, &error, &compacted),
            nullptr);
  EXPECT_TRUE(absl::IsOutOfRange(error)) << error;
  EXPECT_EQ(compacted, 5);
  RecordingSink* ok = Watch("k", "", /*start=*/6);
  ASSERT_NE(ok, nullptr);
  ASSERT_TRUE(ok->WaitForEvents(5));
}

TEST_F(WatchHubTest, CompactionEndsALaggingWatchWithItsRevision) {
  WatchHubOptions o;
  o.buffer_bytes = 512;
  o.cache_bytes = 1;
  StartHub(o);
  RecordingSink* s = Watch("", std::string(1, '\0'));
  s->Pause();
  for (int i = 0; i < 2000; i++) Put(absl::StrFormat("k%d", i % 10), std::string(100, 'v'));
  ASSERT_OK(db_->Flush());
  ASSERT_OK(db_->CompactHistory(1990));
  s->Resume();
  ASSERT_TRUE(s->WaitUntilFinished());
  EXPECT_TRUE(absl::IsOutOfRange(s->final_status())) << s->final_status();
  EXPECT_EQ(s->compact_revision(), 1990);
  EXPECT_GE(hub_->stats().compacted_streams, 1u);
}

TEST_F(WatchHubTest, ProgressNotificationsWhileIdle) {
  WatchHubOptions o;
  o.progress_interval = absl::Milliseconds(10);
  StartHub(o);
  Put("other", "1");
  RecordingSink* s = Watch("k", "", 0, false, /*progress=*/true);
  Put("other", "2");
  // The opening message says the stream is complete up to revision 1;
  // then the dispatcher looks about once a second: two notifications, each
  // saying how far the (idle) stream is complete.
  ASSERT_TRUE(s->WaitForProgress(3));
  EXPECT_TRUE(s->events().empty());
  std::vector<int64_t> p = s->progress_revisions();
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[1], 2);
  EXPECT_EQ(p[2], 2);
  Put("k", "v");  // 3
  ASSERT_TRUE(s->WaitForEvents(1));
  ASSERT_TRUE(s->WaitForProgress(4));
  EXPECT_EQ(s->progress_revisions()[3], 3);
}

// Watchers with random ranges, start revisions, previous values and
// consumer speeds against a reference built from the write history, over a
// burst of 100,000 writes.
TEST_F(WatchHubTest, ModelOfRandomWatchersOverABurstOfWrites) {
  WatchHubOptions o;
  o.buffer_bytes = 4 << 10;
  o.cache_bytes = 256 << 10;  // Stragglers read the WAL.
  StartHub(o);
  std::mt19937_64 rng(20261206);
  auto key = [&](int i) { return absl::StrFormat("k%03d", i); };
  std::map<std::string, std::string> model;
  // For each revision, its changes: "P key=value" / "D key", with the
  // previous value.
  struct Ev {
    std::string key;
    bool put;
    std::string value, prev;
    bool had_prev;
    int64_t create, version;
  };
  std::map<Revision, std::vector<Ev>> history;
  std::map<std::string, std::pair<int64_t, int64_t>> meta;  // create, version
  struct W {
    std::string key, end;
    int64_t start;
    bool prev;
    bool slow;
    RecordingSink* sink;
  };
  std::vector<W> watchers;
  auto add_watcher = [&](Revision current) {
    W w;
    int a = static_cast<int>(rng() % 200), b = a + 1 + static_cast<int>(rng() % 60);
    switch (rng() % 3) {
      case 0: w.key = key(a); break;
      case 1: w.key = key(a); w.end = key(b); break;
      default: w.key = key(a); w.end = std::string(1, '\0'); break;
    }
    w.start = rng() % 2 ? 0 : static_cast<int64_t>(1 + rng() % (current + 1));
    if (w.start == 0) w.start = static_cast<int64_t>(current) + 1;
    w.prev = rng() % 4 == 0;
    w.slow = rng() % 3 == 0;
    w.sink = Watch(w.key, w.end, w.start, w.prev);
    ASSERT_NE(w.sink, nullptr);
    if (w.slow) w.sink->Pause();
    watchers.push_back(w);
  };
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  constexpr int kWrites = 10000;  // Sanitizers run ~10x slower.
#else
  constexpr int kWrites = 100000;
#endif
  for (int i = 0; i < kWrites; i++) {
    if (i % (kWrites / 20) == 0) add_watcher(db_->CurrentRevision());
    storage::WriteBatch b;
    std::map<std::string, std::optional<std::string>> ops;  // Last op wins.
    const int n = 1 + static_cast<int>(rng() % 3);
    for (int j = 0; j < n; j++) {
      std::string k = key(static_cast<int>(rng() % 200));
      if (rng() % 4 == 0) {
        b.Delete(k);
        ops[k] = std::nullopt;
      } else {
        std::string v = absl::StrFormat("v%d", i);
        b.Put(k, v);
        ops[k] = v;
      }
    }
    ASSERT_OK_AND_ASSIGN(Revision r, db_->Write(wo_, &b));
    std::vector<Ev> evs;
    for (auto& [k, v] : ops) {
      auto it = model.find(k);
      const bool had = it != model.end();
      if (!v && !had) continue;  // Delete of an absent key: no change.
      Ev e{k, v.has_value(), v.value_or(""), had ? it->second : "", had, 0, 0};
      if (v) {
        auto& m = meta[k];
        if (!had) m = {static_cast<int64_t>(r), 0};
        m.second++;
        e.create = m.first;
        e.version = m.second;
        model[k] = *v;
      } else {
        model.erase(k);
        meta.erase(k);
      }
      evs.push_back(e);
    }
    if (!evs.empty()) history[r] = std::move(evs);
    if (i % (kWrites / 5) == kWrites / 10) {
      for (W& w : watchers) {
        if (w.slow) w.sink->Resume();  // Catch up for a while...
      }
      for (W& w : watchers) {
        if (w.slow) w.sink->Pause();  // ...and fall behind again.
      }
    }
  }
  for (W& w : watchers) w.sink->Resume();
  const Revision last = db_->CurrentRevision();
  for (const W& w : watchers) {
    SCOPED_TRACE(absl::StrFormat("watch [%s, %s) from %d prev=%d", w.key,
                                 w.end, w.start, w.prev));
    std::vector<std::string> want;
    for (auto it = history.lower_bound(static_cast<Revision>(w.start));
         it != history.end() && it->first <= last; ++it) {
      // Within a revision the order is the batch's; compare sorted.
      std::vector<std::string> rev;
      for (const Ev& e : it->second) {
        const bool in = w.end.empty() ? e.key == w.key
                        : w.end == std::string(1, '\0') ? e.key >= w.key
                        : e.key >= w.key && e.key < w.end;
        if (!in) continue;
        std::string s = e.put ? absl::StrFormat("%d:P %s=%s %d/%d/%d", it->first,
                                                e.key, e.value, e.create,
                                                it->first, e.version)
                              : absl::StrFormat("%d:D %s", it->first, e.key);
        if (w.prev && e.had_prev) s += " prev=" + e.prev;
        rev.push_back(s);
      }
      std::sort(rev.begin(), rev.end());
      want.insert(want.end(), rev.begin(), rev.end());
    }
    ASSERT_TRUE(w.sink->WaitForEvents(want.size()));
    std::vector<std::string> got = w.sink->events();
    ASSERT_EQ(got.size(), want.size());
    // Sort within each revision (a batch applies its keys in op order).
    for (size_t i = 0; i < got.size();) {
      size_t j = i;
      const std::string rev = got[i].substr(0, got[i].find(':'));
      while (j < got.size() && got[j].substr(0, got[j].find(':')) == rev) j++;
      std::sort(got.begin() + static_cast<long>(i), got.begin() + static_cast<long>(j));
      i = j;
    }
    ASSERT_EQ(got, want);
  }
  // The slow watchers fell behind the cache and read the WAL.
  EXPECT_GT(hub_->stats().disk_catch_ups, 0u);
}

// A stream cancelled after the shutdown told it to finish but before its
// sink heard: the hub skips the sink, so Remove must say the stream's token
// is free (else nobody would ever finish the call).
TEST_F(WatchHubTest, RemoveBeforeAShutdownKickLeavesTheFinishToTheCaller) {
  WatchHubOptions o;
  std::shared_ptr<WatchHub::Watcher> watcher;
  bool held = true;
  o.TEST_before_shutdown_kick = [&] { held = hub_->Remove(watcher); };
  StartHub(o);
  RecordingSink* s = Watch("k");
  ASSERT_NE(s, nullptr);
  watcher = watches_.back().second;
  ASSERT_TRUE(s->WaitForProgress(1));  // Its opening message went out.
  hub_->Shutdown();
  EXPECT_FALSE(held);
}

TEST_F(WatchHubTest, ShutdownEndsEveryStream) {
  StartHub();
  RecordingSink* s = Watch("k");
  hub_->Shutdown();
  EXPECT_TRUE(absl::IsUnavailable(s->final_status())) << s->final_status();
}

}  // namespace
}  // namespace strata::server
