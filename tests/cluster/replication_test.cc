// Replication of a range between nodes (docs/replication.md), in one
// process: each "node" is a storage::DB in a temp directory with a
// ReplicationService on 127.0.0.1:0; the primary's ReplicationSource ships
// to the others over real gRPC streams. Every wait is on an event (a
// WaitReplicated callback, a reported lag, a fence), bounded in time.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cluster/replication/checkpoint_transfer.h"
#include "cluster/replication/primary.h"
#include "cluster/replication/replica.h"
#include "cluster/replication/service.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics_server.h"
#include "strata/storage/db.h"
#include "tests/server/metrics_text.h"
#include "tests/support/test_util.h"
#include "xxhash.h"

namespace strata::cluster::replication {
namespace {

using strata::testing::TempDir;

constexpr absl::Duration kWait = absl::Seconds(30);
constexpr RangeId kRange = 1;

storage::Options DbOptions() {
  storage::Options o;
  o.create_if_missing = true;
  o.keep_history = true;
  // Only CompactHistory moves the compacted revision.
  o.history_retention_seconds = 0;
  o.history_retention_revisions = 0;
  // Replicas append the primary's batches; a promoted replica writes too.
  o.allow_committed_batches = true;
  return o;
}

// One node holding one replica of kRange.
struct Node {
  std::string id;
  std::string range_dir;
  std::string db_dir;
  std::unique_ptr<storage::DB> db;
  std::unique_ptr<ReplicationService> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;
  std::shared_ptr<ReplicaSink> sink;
  std::unique_ptr<ReplicationSource> source;
  std::atomic<int> swaps{0};
  // Test hook: runs in the swap hook before the directories move.
  std::function<void()> before_swap;
  // Test hooks: the swap's directory move / database open fails.
  bool fail_swap_move = false;
  bool fail_swap_open = false;
  // True while the swap hook runs (closes the old DB, opens the new one).
  std::atomic<bool> swapping{false};
  // The disk space the node reports with its acks (none while
  // report_disk is false), against a reserve of kTestReserve.
  std::atomic<bool> report_disk{false};
  std::atomic<uint64_t> disk_free{0};
};

constexpr uint64_t kTestReserve = 1000;

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* id : {"n1", "n2", "n3"}) {
      auto node = std::make_unique<Node>();
      node->id = id;
      node->range_dir = absl::StrCat(dir_.path(), "/", id, "/ranges/1");
      node->db_dir = node->range_dir + "/db";
      std::filesystem::create_directories(node->range_dir);
      ReplicationService::Options so;
      so.checkpoint_dir = absl::StrCat(dir_.path(), "/", id, "/tmp");
      so.checkpoint_chunk_bytes = 4096;  // Many chunks per file.
      so.disk_space = [n = node.get()](v1::ReplicaDiskSpace* out) {
        if (!n->report_disk) return false;
        out->set_free_bytes(n->disk_free);
        out->set_min_free_bytes(kTestReserve);
        return true;
      };
      node->service = std::make_unique<ReplicationService>(so);
      grpc::ServerBuilder builder;
      int port = 0;
      builder.AddListeningPort("127.0.0.1:0",
                               grpc::InsecureServerCredentials(), &port);
      builder.RegisterService(node->service.get());
      node->server = builder.BuildAndStart();
      ASSERT_NE(node->server, nullptr);
      ASSERT_GT(port, 0);
      node->address = absl::StrCat("127.0.0.1:", port);
      nodes_[id] = std::move(node);
    }
  }

  void TearDown() override {
    for (auto& [id, n] : nodes_) StopSource(n.get());
    for (auto& [id, n] : nodes_) {
      n->server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    }
    for (auto& [id, n] : nodes_) {
      if (n->sink) n->sink->Close();
      n->sink.reset();
      n->db.reset();
    }
  }

  Node* node(const std::string& id) { return nodes_.at(id).get(); }

  std::shared_ptr<grpc::Channel> ChannelTo(const std::string& id) {
    return grpc::CreateChannel(node(id)->address,
                               grpc::InsecureChannelCredentials());
  }

  void OpenDb(Node* n, const storage::Options& options = DbOptions()) {
    ASSERT_OK_AND_ASSIGN(n->db, storage::DB::Open(options, n->db_dir));
  }

  // Makes `n` serve Append streams of kRange as a replica.
  void StartReplica(Node* n) {
    if (n->db == nullptr) OpenDb(n);
    ReplicaSink::Options o;
    o.range_id = kRange;
    o.range_dir = n->range_dir;
    o.connect = [this](const NodeId& id)
        -> std::unique_ptr<v1::Replication::StubInterface> {
      return v1::Replication::NewStub(ChannelTo(id));
    };
    o.swap = [n](const std::string& checkpoint) -> ReplicaSink::SwapResult {
      n->swapping = true;
      absl::Cleanup done = [n] { n->swapping = false; };
      n->db.reset();
      if (n->before_swap) n->before_swap();
      const absl::Status moved = n->fail_swap_move
                                     ? absl::UnavailableError("injected")
                                     : ReplaceDirectory(checkpoint, n->db_dir);
      absl::StatusOr<std::unique_ptr<storage::DB>> db =
          n->fail_swap_open ? absl::StatusOr<std::unique_ptr<storage::DB>>(
                                  absl::UnavailableError("injected open"))
                            : storage::DB::Open(DbOptions(), n->db_dir);
      if (db.ok()) n->db = *std::move(db);
      if (!moved.ok()) return {moved, n->db.get()};
      if (!db.ok()) return {db.status(), nullptr};
      n->swaps++;
      return {absl::OkStatus(), n->db.get()};
    };
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<ReplicaSink> sink,
                         ReplicaSink::Open(n->db.get(), o));
    n->sink = std::move(sink);
    n->service->AddReplica(kRange, n->sink);
  }

  // Takes the replica down: its streams fail, its DB is closed.
  void StopReplica(Node* n) {
    n->service->RemoveReplica(kRange);
    n->sink->Close();
    n->sink.reset();
    n->db.reset();
  }

  // Makes `n` the primary of kRange at `epoch` with `history`, shipping to
  // `replicas`.
  void StartPrimary(Node* n, Epoch epoch, EpochHistory history,
                    const std::vector<std::string>& replicas,
                    ReplicationSource::Options o = {}) {
    if (n->db == nullptr) OpenDb(n);
    o.range_id = kRange;
    o.epoch = epoch;
    o.history = history;
    o.self = n->id;
    o.min_backoff = absl::Milliseconds(5);
    o.max_backoff = absl::Milliseconds(50);
    for (const std::string& r : replicas) {
      o.replicas.push_back({r, ChannelTo(r)});
    }
    auto cs = std::make_shared<CheckpointSource>();
    cs->db = n->db.get();
    cs->epoch = epoch;
    cs->history = history;
    n->service->AddPrimary(kRange, cs);
    ASSERT_OK_AND_ASSIGN(n->source, ReplicationSource::Create(n->db.get(), o));
    n->db->SetCommitListener(n->source.get());
  }

  void StopSource(Node* n) {
    if (n->source == nullptr) return;
    n->db->SetCommitListener(nullptr);
    n->source.reset();
    n->service->RemovePrimary(kRange);
  }

  // Writes `count` batches of two puts and (every third) a delete.
  Revision Write(Node* n, int count, const std::string& tag = "v") {
    Revision last = 0;
    for (int i = 0; i < count; ++i) {
      storage::WriteBatch b;
      b.Put(absl::StrCat("key", i % 7), absl::StrCat(tag, i));
      b.Put(absl::StrCat("other", i), std::string(100, 'x'));
      if (i % 3 == 2) b.Delete(absl::StrCat("other", i - 1));
      absl::StatusOr<Revision> r = n->db->Write(storage::WriteOptions(), &b);
      EXPECT_OK(r);
      if (r.ok()) last = *r;
    }
    return last;
  }

  // Waits (bounded) for WaitReplicated(revision) on `primary`'s source.
  absl::Status WaitReplicated(Node* primary, Revision revision,
                              absl::Duration timeout = kWait) {
    absl::Notification done;
    absl::Status result;
    primary->source->WaitReplicated(revision, absl::Now() + timeout,
                                    [&](absl::Status s) {
                                      result = s;
                                      done.Notify();
                                    });
    if (!done.WaitForNotificationWithTimeout(timeout + kWait)) {
      return absl::InternalError("the callback never ran");
    }
    return result;
  }

  // The change log of `db` from revision 1, as comparable strings.
  std::vector<std::string> ChangeLog(storage::DB* db) {
    std::vector<std::string> out;
    absl::StatusOr<std::unique_ptr<storage::ChangeIterator>> it =
        db->GetUpdatesSince(db->CompactedRevision() + 1);
    EXPECT_OK(it);
    if (!it.ok()) return out;
    while ((*it)->Next()) {
      const storage::ChangeBatch& b = (*it)->batch();
      for (const storage::Change& c : b.changes) {
        out.push_back(absl::StrCat(
            b.revision, " ", c.type == storage::Change::Type::kPut ? "put" : "del",
            " ", std::string(c.key), "=", std::string(c.value), " c", c.metadata.create_revision, " m",
            c.metadata.mod_revision, " v", c.metadata.version));
      }
    }
    EXPECT_OK((*it)->status());
    return out;
  }

  // Every live key and value of `db`.
  std::map<std::string, std::string> Contents(storage::DB* db) {
    std::map<std::string, std::string> out;
    std::unique_ptr<storage::Iterator> it = db->NewIterator(storage::ReadOptions());
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      out[std::string(it->key())] = std::string(it->value());
    }
    return out;
  }

  TempDir dir_;
  std::map<std::string, std::unique_ptr<Node>> nodes_;
};

TEST_F(ReplicationTest, BatchesReplicateRevisionForRevision) {
  StartReplica(node("n2"));
  StartReplica(node("n3"));
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"});
  const Revision last = Write(node("n1"), 40);
  ASSERT_OK(WaitReplicated(node("n1"), last));
  const std::vector<std::string> primary_log = ChangeLog(node("n1")->db.get());
  ASSERT_FALSE(primary_log.empty());
  for (const char* id : {"n2", "n3"}) {
    EXPECT_EQ(node(id)->db->CurrentRevision(), last) << id;
    EXPECT_EQ(ChangeLog(node(id)->db.get()), primary_log) << id;
    EXPECT_EQ(Contents(node(id)->db.get()), Contents(node("n1")->db.get()));
  }
  const ReplicationSource::Stats stats = node("n1")->source->GetStats();
  EXPECT_EQ(stats.replicated_revision, last);
  EXPECT_EQ(stats.in_sync_size, 3u);
  for (const auto& r : stats.replicas) {
    EXPECT_EQ(r.acked_revision, last) << r.id;
    EXPECT_EQ(r.lag_revisions, 0u) << r.id;
  }
}

// Polls `done` until it holds, for at most `timeout`.
bool PollFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// An in-sync replica reports its disk below its reserve with each ack: the
// primary's InSyncDiskReserve refuses (naming it) until the replica has
// room again, which the primary hears from an empty probe with no write in
// between (writes are refused meanwhile), or until the replica is no
// longer connected (its report may be stale) or no longer in sync.
TEST_F(ReplicationTest, InSyncReplicaBelowItsDiskReserveIsReportedUntilItHasRoom) {
  for (const char* id : {"n2", "n3"}) {
    node(id)->report_disk = true;
    node(id)->disk_free = 10 * kTestReserve;
    StartReplica(node(id));
  }
  ReplicationSource::Options o;
  o.disk_probe_interval = absl::Milliseconds(20);
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"}, o);
  ReplicationSource* source = node("n1")->source.get();
  ASSERT_OK(WaitReplicated(node("n1"), Write(node("n1"), 2)));
  EXPECT_OK(source->InSyncDiskReserve());

  // Replicated means both acks are in, with the report they carried.
  node("n2")->disk_free = kTestReserve - 1;
  ASSERT_OK(WaitReplicated(node("n1"), Write(node("n1"), 1)));
  absl::Status short_of_space = source->InSyncDiskReserve();
  EXPECT_TRUE(absl::IsResourceExhausted(short_of_space)) << short_of_space;
  EXPECT_NE(short_of_space.message().find(
                "on replica n2 of range 1: 999 bytes free "
                "(--min_free_disk_bytes=1000 there)"),
            std::string::npos)
      << short_of_space;
  for (const ReplicationSource::ReplicaStats& r : source->GetStats().replicas) {
    EXPECT_TRUE(r.disk_known) << r.id;
    EXPECT_EQ(r.disk_free_bytes, r.id == "n2" ? 999u : 10 * kTestReserve);
  }

  // Room again: the probes carry it, no write needed.
  const Revision before = node("n1")->db->CurrentRevision();
  node("n2")->disk_free = kTestReserve;
  EXPECT_TRUE(PollFor([&] { return source->InSyncDiskReserve().ok(); },
                      kWait));
  EXPECT_EQ(node("n1")->db->CurrentRevision(), before);

  // Out of the in-sync set, a short replica holds nothing back.
  node("n3")->disk_free = 0;
  ASSERT_OK(WaitReplicated(node("n1"), Write(node("n1"), 1)));
  EXPECT_FALSE(source->InSyncDiskReserve().ok());
  source->SetInSync({"n1", "n2"});
  EXPECT_OK(source->InSyncDiskReserve());
  source->SetInSync({"n1", "n2", "n3"});
  EXPECT_FALSE(source->InSyncDiskReserve().ok());

  // Disconnected, its report is stale and does not count.
  StopReplica(node("n3"));
  EXPECT_TRUE(PollFor([&] { return source->InSyncDiskReserve().ok(); },
                      kWait));

  // A replica that cannot read its volume sends no report: taken to have
  // room, whatever it reported before.
  node("n2")->disk_free = 0;
  source->SetInSync({"n1", "n2"});
  ASSERT_OK(WaitReplicated(node("n1"), Write(node("n1"), 1)));
  EXPECT_FALSE(source->InSyncDiskReserve().ok());
  node("n2")->report_disk = false;
  ASSERT_OK(WaitReplicated(node("n1"), Write(node("n1"), 1)));
  EXPECT_OK(source->InSyncDiskReserve());
}

TEST_F(ReplicationTest, WaitReplicatedFiresOnlyOnceEveryInSyncReplicaHasIt) {
  StartReplica(node("n2"));
  StartReplica(node("n3"));
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"});
  for (int round = 0; round < 20; ++round) {
    const Revision r = Write(node("n1"), 1);
    absl::Notification done;
    absl::Status result;
    Revision seen2 = 0, seen3 = 0;
    node("n1")->source->WaitReplicated(r, absl::Now() + kWait,
                                       [&](absl::Status s) {
                                         // Durable on both when it fires.
                                         seen2 = node("n2")->sink->GetStats().durable_revision;
                                         seen3 = node("n3")->sink->GetStats().durable_revision;
                                         result = s;
                                         done.Notify();
                                       });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait * 2));
    ASSERT_OK(result);
    EXPECT_GE(seen2, r);
    EXPECT_GE(seen3, r);
  }
}

TEST_F(ReplicationTest, DownReplicaMakesWaitersTimeOutUntilDroppedFromInSync) {
  StartReplica(node("n2"));  // n3 never comes up.
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"});
  const Revision r = Write(node("n1"), 3);
  absl::Status s = WaitReplicated(node("n1"), r, absl::Milliseconds(300));
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  // A waiter pending when the control plane drops n3 is released.
  absl::Notification done;
  absl::Status result;
  node("n1")->source->WaitReplicated(r, absl::Now() + kWait,
                                     [&](absl::Status st) {
                                       result = st;
                                       done.Notify();
                                     });
  node("n1")->source->SetInSync({"n1", "n2"});
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait * 2));
  EXPECT_OK(result);
  EXPECT_EQ(node("n2")->db->CurrentRevision(), r);
  const ReplicationSource::Stats stats = node("n1")->source->GetStats();
  EXPECT_EQ(stats.in_sync_size, 2u);
  for (const auto& rs : stats.replicas) {
    if (rs.id == "n3") {
      EXPECT_FALSE(rs.in_sync);
      EXPECT_FALSE(rs.connected);
      EXPECT_EQ(rs.lag_revisions, r);
    }
  }
}

TEST_F(ReplicationTest, LaggingReplicaIsReported) {
  StartReplica(node("n2"));
  absl::Notification lagging;
  std::string who;
  ReplicationSource::Options o;
  o.lag_timeout = absl::Milliseconds(100);
  o.on_lagging = [&](const NodeId& id, absl::Duration) {
    if (id != "n3" || lagging.HasBeenNotified()) return;
    who = id;
    lagging.Notify();
  };
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"}, o);
  Write(node("n1"), 2);
  ASSERT_TRUE(lagging.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(who, "n3");
  StopSource(node("n1"));  // Before `lagging` goes away.
}

TEST_F(ReplicationTest, RestartedReplicaCatchesUpFromItsDurableRevision) {
  StartReplica(node("n2"));
  StartReplica(node("n3"));
  ReplicationSource::Options o;
  o.buffer_batches = 4;  // Catching up reads the change log.
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"}, o);
  Revision r = Write(node("n1"), 10);
  ASSERT_OK(WaitReplicated(node("n1"), r));
  StopReplica(node("n2"));
  r = Write(node("n1"), 30);
  node("n1")->source->SetInSync({"n1", "n3"});
  ASSERT_OK(WaitReplicated(node("n1"), r));
  StartReplica(node("n2"));  // Reopens its DB at revision 10's.
  node("n1")->source->SetInSync({"n1", "n2", "n3"});
  r = Write(node("n1"), 5);
  ASSERT_OK(WaitReplicated(node("n1"), r));
  EXPECT_EQ(ChangeLog(node("n2")->db.get()), ChangeLog(node("n1")->db.get()));
  EXPECT_EQ(node("n2")->sink->GetStats().resyncs, 0u);
}

TEST_F(ReplicationTest, StaleEpochIsRefusedAndFencesTheOldPrimary) {
  StartReplica(node("n2"));
  // n2 has seen epoch 2 already.
  ASSERT_OK(node("n2")->sink->Start(2, "n3", {{1, 1}, {2, 1}}).status());
  absl::Status direct = node("n2")->sink->Start(1, "n1", {{1, 1}}).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(direct)) << direct;
  EXPECT_EQ(StaleEpochOf(direct), std::optional<Epoch>(2));
  EXPECT_NE(direct.message().find("epoch 1 is older than epoch 2"),
            std::string::npos)
      << direct;

  absl::Notification superseded;
  ReplicationSource::Options o;
  o.on_superseded = [&](const absl::Status&) { superseded.Notify(); };
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2"}, o);
  ASSERT_TRUE(superseded.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(node("n1")->source->fenced());
  const Revision r = Write(node("n1"), 1);
  absl::Status s = WaitReplicated(node("n1"), r);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(node("n2")->db->CurrentRevision(), 0u);
  EXPECT_GE(node("n2")->sink->GetStats().refused_stale, 2u);
  StopSource(node("n1"));  // Before `superseded` goes away.
}

// A replica that refuses for another reason than a stale epoch (here its
// DB lacks allow_committed_batches, so every Apply is FAILED_PRECONDITION)
// is a failing replica: it lags and is dropped, the primary is not fenced.
TEST_F(ReplicationTest, MisconfiguredReplicaIsAFailingReplicaNotAFence) {
  storage::Options no_batches = DbOptions();
  no_batches.allow_committed_batches = false;
  OpenDb(node("n2"), no_batches);
  StartReplica(node("n2"));
  StartReplica(node("n3"));
  // Shared with the callbacks, which may outlive a failed assertion.
  struct Seen {
    absl::Mutex mu;
    bool decided ABSL_GUARDED_BY(mu) = false;  // Either callback ran.
    bool lagged ABSL_GUARDED_BY(mu) = false;
    bool superseded ABSL_GUARDED_BY(mu) = false;
  };
  auto seen = std::make_shared<Seen>();
  ReplicationSource::Options o;
  o.lag_timeout = absl::Milliseconds(100);
  o.on_lagging = [seen](const NodeId& id, absl::Duration) {
    absl::MutexLock lock(&seen->mu);
    if (id == "n2") seen->lagged = seen->decided = true;
  };
  o.on_superseded = [seen](const absl::Status&) {
    absl::MutexLock lock(&seen->mu);
    seen->superseded = seen->decided = true;
  };
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"}, o);
  const Revision r = Write(node("n1"), 3);
  bool decided, lagged, superseded;
  {
    decided = seen->mu.LockWhenWithTimeout(
        absl::Condition(&seen->decided), kWait);
    lagged = seen->lagged;
    superseded = seen->superseded;
    seen->mu.Unlock();
  }
  ASSERT_TRUE(decided);
  EXPECT_TRUE(lagged);
  EXPECT_FALSE(superseded);
  EXPECT_FALSE(node("n1")->source->fenced());
  // The control plane drops n2 from the in-sync set; writes go on.
  node("n1")->source->SetInSync({"n1", "n3"});
  ASSERT_OK(WaitReplicated(node("n1"), r));
  ASSERT_OK(WaitReplicated(node("n1"), Write(node("n1"), 2)));
  EXPECT_FALSE(node("n1")->source->fenced());
  EXPECT_EQ(node("n2")->db->CurrentRevision(), 0u);
  EXPECT_EQ(node("n2")->sink->GetStats().refused_stale, 0u);
  StopSource(node("n1"));
  absl::MutexLock lock(&seen->mu);
  EXPECT_FALSE(seen->superseded);
}

// The stale-epoch mark survives the wire (a trailer) and nothing else is
// marked: an unmarked FAILED_PRECONDITION, what an older replica sends for
// a stale epoch too, is not a stale-epoch refusal.
TEST(StaleEpochTest, OnlyTheMarkedRefusalIsStale) {
  const absl::Status stale = StaleEpochError(3, 4, 6);
  EXPECT_TRUE(absl::IsFailedPrecondition(stale));
  EXPECT_EQ(StaleEpochOf(stale), std::optional<Epoch>(6));
  EXPECT_NE(stale.message().find("epoch 4 is older than epoch 6"),
            std::string::npos)
      << stale;
  EXPECT_EQ(StaleEpochOf(absl::FailedPreconditionError(
                "range 3: epoch 4 is older than epoch 6 this replica has seen")),
            std::nullopt);
  EXPECT_EQ(StaleEpochOf(absl::UnavailableError("x")), std::nullopt);
  // Through gRPC: the status drops the payload, the trailer carries it.
  grpc::ClientContext no_trailers;
  EXPECT_EQ(StaleEpochOf(FromAppendStatus(ToGrpc(stale), no_trailers)),
            std::nullopt);
}

TEST_F(ReplicationTest, EpochSurvivesAReopenOfTheReplica) {
  StartReplica(node("n2"));
  ASSERT_OK(node("n2")->sink->Start(3, "n1", {{3, 1}}).status());
  StopReplica(node("n2"));
  StartReplica(node("n2"));
  EXPECT_EQ(node("n2")->sink->GetStats().highest_epoch, 3u);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      node("n2")->sink->Start(2, "n1", {{2, 1}}).status()));
}

TEST_F(ReplicationTest, ReplicaBehindTheCompactedHistoryResyncsByCheckpoint) {
  StartReplica(node("n2"));
  StartReplica(node("n3"));
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"});
  Revision r = Write(node("n1"), 5);
  ASSERT_OK(WaitReplicated(node("n1"), r));
  StopReplica(node("n3"));
  node("n1")->source->SetInSync({"n1", "n2"});
  r = Write(node("n1"), 30);
  ASSERT_OK(node("n1")->db->Flush());  // SSTables to link, not just WALs.
  ASSERT_OK(node("n1")->db->CompactHistory(r - 2));
  StartReplica(node("n3"));
  node("n1")->source->SetInSync({"n1", "n2", "n3"});
  r = Write(node("n1"), 4);
  ASSERT_OK(WaitReplicated(node("n1"), r));
  EXPECT_EQ(node("n3")->swaps.load(), 1);
  EXPECT_EQ(node("n3")->sink->GetStats().resyncs, 1u);
  EXPECT_GE(node("n1")->source->GetStats().resyncs, 1u);
  EXPECT_EQ(node("n3")->db->CurrentRevision(), r);
  EXPECT_EQ(Contents(node("n3")->db.get()), Contents(node("n1")->db.get()));
  EXPECT_EQ(ChangeLog(node("n3")->db.get()), ChangeLog(node("n1")->db.get()));
}

TEST_F(ReplicationTest, DivergentReplicaIsResyncedNeverMerged) {
  StartReplica(node("n2"));
  StartReplica(node("n3"));
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"});
  const Revision common = Write(node("n1"), 5);
  ASSERT_OK(WaitReplicated(node("n1"), common));
  // n3 misses the next three revisions, which only n2 gets.
  node("n3")->service->RemoveReplica(kRange);
  node("n3")->sink->Close();
  node("n1")->source->SetInSync({"n1", "n2"});
  const Revision tail = Write(node("n1"), 3, "lost");
  ASSERT_OK(WaitReplicated(node("n1"), tail));
  // Epoch 2: n1 is gone, n3 is promoted and writes revisions of its own.
  StopSource(node("n1"));
  node("n3")->sink.reset();
  ASSERT_OK_AND_ASSIGN(EpochHistory h3,
                       ExtendEpochHistory({{1, 1}}, 2, common));
  StartPrimary(node("n3"), 2, h3, {"n2"});
  const Revision r = Write(node("n3"), 6, "new");
  ASSERT_OK(WaitReplicated(node("n3"), r));
  EXPECT_EQ(node("n2")->swaps.load(), 1);
  EXPECT_EQ(node("n2")->sink->GetStats().resyncs, 1u);
  EXPECT_EQ(node("n2")->sink->epoch_history(), h3);
  EXPECT_EQ(Contents(node("n2")->db.get()), Contents(node("n3")->db.get()));
  EXPECT_EQ(ChangeLog(node("n2")->db.get()), ChangeLog(node("n3")->db.get()));
  for (const auto& [k, v] : Contents(node("n2")->db.get())) {
    EXPECT_EQ(v.find("lost"), std::string::npos) << k;
  }
}

TEST_F(ReplicationTest, CorruptCheckpointChunkIsDataLossAndNothingIsSwapped) {
  StartReplica(node("n2"));
  StartPrimary(node("n1"), 1, {{1, 1}}, {});
  Revision r = Write(node("n1"), 20);
  ASSERT_OK(node("n1")->db->Flush());
  bool corrupted = false;  // Only read and written on the gRPC thread.
  node("n1")->service->TEST_SetChunkHook([&](v1::CheckpointChunk* c) {
    if (corrupted || c->data().empty()) return;
    (*c->mutable_data())[c->data().size() / 2] ^= 1;  // Keeps its xxh64.
    corrupted = true;
  });
  absl::StatusOr<Revision> got = node("n2")->sink->Resync(1, "n1");
  EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
  EXPECT_EQ(node("n2")->swaps.load(), 0);
  EXPECT_EQ(node("n2")->db->CurrentRevision(), 0u);
  EXPECT_EQ(node("n2")->sink->GetStats().resyncs, 0u);
  for (const auto& e : std::filesystem::directory_iterator(node("n2")->range_dir)) {
    EXPECT_EQ(e.path().filename().string().find("resync-"), std::string::npos)
        << e.path();
  }
  // Without the fault the same re-sync works.
  node("n1")->service->TEST_SetChunkHook(nullptr);
  ASSERT_OK_AND_ASSIGN(Revision now, node("n2")->sink->Resync(1, "n1"));
  EXPECT_EQ(now, r);
  EXPECT_EQ(node("n2")->swaps.load(), 1);
  EXPECT_EQ(Contents(node("n2")->db.get()), Contents(node("n1")->db.get()));
}

TEST_F(ReplicationTest, FailedCheckpointFetchReportsThePrimarysStatus) {
  StartReplica(node("n2"));
  StartPrimary(node("n1"), 2, {{2, 1}}, {});
  Write(node("n1"), 3);
  // n1 is at epoch 2: its FAILED_PRECONDITION must not reach the Append
  // stream as such (that would tell the primary it is superseded).
  absl::Status other_epoch = node("n2")->sink->Resync(1, "n1").status();
  EXPECT_TRUE(absl::IsUnavailable(other_epoch)) << other_epoch;
  EXPECT_NE(other_epoch.message().find("fetching a checkpoint from n1"),
            std::string::npos)
      << other_epoch;
  // n3 is not the primary of the range.
  absl::Status not_primary = node("n2")->sink->Resync(1, "n3").status();
  EXPECT_TRUE(absl::IsNotFound(not_primary)) << not_primary;
  EXPECT_EQ(node("n2")->swaps.load(), 0);
  EXPECT_EQ(node("n2")->db->CurrentRevision(), 0u);
  for (const auto& e : std::filesystem::directory_iterator(node("n2")->range_dir)) {
    EXPECT_EQ(e.path().filename().string().find("resync-"), std::string::npos)
        << e.path();
  }
}

TEST_F(ReplicationTest, FenceFailsWaitersAndStopsShipping) {
  StartReplica(node("n2"));
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"});  // n3 is down.
  const Revision r = Write(node("n1"), 2);
  absl::Notification done;
  absl::Status result;
  node("n1")->source->WaitReplicated(r, absl::Now() + kWait,
                                     [&](absl::Status s) {
                                       result = s;
                                       done.Notify();
                                     });
  node("n1")->source->Fence(absl::UnavailableError("lease lost"));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_TRUE(absl::IsUnavailable(result)) << result;
  EXPECT_NE(result.message().find("lease lost"), std::string::npos) << result;
  absl::Status later = WaitReplicated(node("n1"), 1);
  EXPECT_TRUE(absl::IsUnavailable(later)) << later;
  EXPECT_TRUE(node("n1")->source->GetStats().fenced);
}

TEST_F(ReplicationTest, CallbacksNeverRunOnTheCallersThread) {
  StartReplica(node("n2"));
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2"});
  const Revision r = Write(node("n1"), 1);
  ASSERT_OK(WaitReplicated(node("n1"), r));
  // Already replicated, and then fenced: both are answered at once, but
  // on the notifier thread, never inline.
  for (int i = 0; i < 2; ++i) {
    if (i == 1) node("n1")->source->Fence(absl::UnavailableError("test"));
    absl::Notification done;
    std::thread::id ran_on;
    node("n1")->source->WaitReplicated(r, absl::Now() + kWait,
                                       [&](absl::Status) {
                                         ran_on = std::this_thread::get_id();
                                         done.Notify();
                                       });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
    EXPECT_NE(ran_on, std::this_thread::get_id());
  }
}

TEST_F(ReplicationTest, ReplicasOutsideTheInSyncSetAreNotReportedLagging) {
  StartReplica(node("n2"));
  std::atomic<int> reports{0};
  ReplicationSource::Options o;
  o.lag_timeout = absl::Milliseconds(20);
  o.on_lagging = [&](const NodeId& id, absl::Duration) {
    if (id == "n3") reports++;  // n2 may lag 20 ms on a loaded machine.
  };
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"}, o);
  node("n1")->source->SetInSync({"n1", "n2"});  // n3 is down and out.
  // Each wait spans many lag timeouts of the down n3.
  for (int i = 0; i < 5; ++i) {
    const Revision r = Write(node("n1"), 1);
    ASSERT_OK(WaitReplicated(node("n1"), r));
  }
  absl::Status s = WaitReplicated(node("n1"), 1000, absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
  StopSource(node("n1"));
  EXPECT_EQ(reports.load(), 0);
}

// Not a test: what replication adds to a durable write's latency. Run by
// hand (docs/replication.md, "Cost"):
//   build/tests/cluster/replication_test --gtest_also_run_disabled_tests
//     --gtest_filter='*DISABLED_MeasureReplicatedWriteLatency'
TEST_F(ReplicationTest, DISABLED_MeasureReplicatedWriteLatency) {
  StartReplica(node("n2"));
  StartReplica(node("n3"));
  StartPrimary(node("n1"), 1, {{1, 1}}, {"n2", "n3"});
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<storage::DB> solo,
                       storage::DB::Open(DbOptions(), dir_.path() + "/solo"));
  constexpr int kWrites = 200;
  constexpr int kRounds = 5;
  std::vector<double> solo_us, replicated_us;
  for (int round = 0; round < kRounds; ++round) {
    absl::Time t0 = absl::Now();
    for (int i = 0; i < kWrites; ++i) {
      ASSERT_OK(solo->Put(storage::WriteOptions(), absl::StrCat("k", i), "v"));
    }
    solo_us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0) / kWrites);
    t0 = absl::Now();
    for (int i = 0; i < kWrites; ++i) {
      ASSERT_OK_AND_ASSIGN(
          Revision r,
          node("n1")->db->Put(storage::WriteOptions(), absl::StrCat("k", i), "v"));
      ASSERT_OK(WaitReplicated(node("n1"), r));
    }
    replicated_us.push_back(absl::ToDoubleMicroseconds(absl::Now() - t0) /
                            kWrites);
  }
  std::sort(solo_us.begin(), solo_us.end());
  std::sort(replicated_us.begin(), replicated_us.end());
  const double single = solo_us[kRounds / 2];
  const double replicated = replicated_us[kRounds / 2];
  std::printf(
      "median of %d rounds of %d sequential durable Puts: single node %.0f us, "
      "replicated to 2 replicas (RF 3) %.0f us, ratio %.2f\n",
      kRounds, kWrites, single, replicated, replicated / single);
}

// Batches straight into a sink, as a stream would hand them over.
TEST_F(ReplicationTest, ReplicaRefusesGapsCorruptRecordsAndSupersededEpochs) {
  StartReplica(node("n2"));
  OpenDb(node("n1"));
  Write(node("n1"), 4);
  std::vector<v1::AppendBatch> log;
  {
    ASSERT_OK_AND_ASSIGN(auto it, node("n1")->db->GetUpdatesSince(1));
    while (it->Next()) {
      v1::AppendBatch b;
      b.set_revision(static_cast<int64_t>(it->batch().revision));
      b.set_record(*it->batch().record);
      log.push_back(b);
    }
    ASSERT_OK(it->status());
  }
  ASSERT_EQ(log.size(), 4u);
  ReplicaSink* sink = node("n2")->sink.get();
  ASSERT_OK_AND_ASSIGN(ReplicaSink::StartResult start,
                       sink->Start(1, "n1", {{1, 1}}));
  EXPECT_EQ(start.durable_revision, 0u);
  EXPECT_TRUE(start.resync_reason.empty());
  auto one = [](const v1::AppendBatch& b) {
    v1::AppendBatches m;
    *m.add_batches() = b;
    return m;
  };
  // A gap: revision 2 before 1.
  absl::Status gap = sink->Apply(1, one(log[1])).status();
  EXPECT_TRUE(absl::IsOutOfRange(gap)) << gap;
  // A record cut short.
  v1::AppendBatch cut = log[0];
  cut.set_record(cut.record().substr(0, 5));
  EXPECT_TRUE(absl::IsDataLoss(sink->Apply(1, one(cut)).status()));
  // A record whose revision is not the batch's.
  v1::AppendBatch wrong = log[0];
  wrong.set_revision(7);
  EXPECT_TRUE(absl::IsInvalidArgument(sink->Apply(1, one(wrong)).status()));
  EXPECT_EQ(node("n2")->db->CurrentRevision(), 0u);
  // Two at once, one ack's worth.
  v1::AppendBatches two;
  *two.add_batches() = log[0];
  *two.add_batches() = log[1];
  ASSERT_OK_AND_ASSIGN(Revision durable, sink->Apply(1, two));
  EXPECT_EQ(durable, 2u);
  // Epoch 2's primary arrives; a stream of epoch 1 still open is refused.
  ASSERT_OK(sink->Start(2, "n3", {{1, 1}, {2, 3}}).status());
  absl::Status stale = sink->Apply(1, one(log[2])).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(stale)) << stale;
  ASSERT_OK(sink->Apply(2, one(log[2])).status());
  EXPECT_EQ(sink->GetStats().durable_revision, 3u);
  EXPECT_EQ(sink->GetStats().batches_applied, 3u);
}

// While the swap hook runs, the epoch file holds no history, so a crash
// that leaves the checkpoint in place with the old history is not taken
// for a prefix of the primary's log; afterwards it holds the checkpoint's.
TEST_F(ReplicationTest, EpochFileHoldsNoHistoryWhileTheSwapRuns) {
  StartReplica(node("n2"));
  const EpochHistory history = {{1, 1}, {2, 4}};
  StartPrimary(node("n1"), 2, history, {});
  const Revision r = Write(node("n1"), 6);
  ASSERT_OK(node("n2")->sink->Start(2, "n1", history).status());
  const std::string epochs = node("n2")->range_dir + "/" + kEpochFileName;
  ASSERT_OK_AND_ASSIGN(EpochFileContents before, ReadEpochFile(epochs));
  EXPECT_EQ(before.history, history);
  absl::StatusOr<EpochFileContents> during;
  node("n2")->before_swap = [&] { during = ReadEpochFile(epochs); };
  ASSERT_OK_AND_ASSIGN(Revision now, node("n2")->sink->Resync(2, "n1"));
  EXPECT_EQ(now, r);
  ASSERT_OK(during.status());
  EXPECT_EQ(during->highest_epoch, 2u);
  EXPECT_TRUE(during->history.empty());
  ASSERT_OK_AND_ASSIGN(EpochFileContents after, ReadEpochFile(epochs));
  EXPECT_EQ(after.history, history);
  // A replica restarted over that mid-swap state re-syncs.
  StopReplica(node("n2"));
  ASSERT_OK(WriteEpochFile(epochs, *during));
  StartReplica(node("n2"));
  ASSERT_OK_AND_ASSIGN(ReplicaSink::StartResult start,
                       node("n2")->sink->Start(2, "n1", history));
  EXPECT_FALSE(start.resync_reason.empty());
}

// A re-sync whose directory move fails: the hook reopens the old database
// as a new object and hands it back with the error; the sink uses that
// object from then on (it used to keep the closed one: a use-after-free
// on the next Apply) and keeps the old history, so it still applies.
TEST_F(ReplicationTest, FailedSwapMoveKeepsTheReopenedOldDatabase) {
  StartReplica(node("n2"));
  const EpochHistory history = {{1, 1}, {2, 4}};
  StartPrimary(node("n1"), 2, history, {});
  Write(node("n1"), 6);
  ASSERT_OK(node("n2")->sink->Start(2, "n1", history).status());
  node("n2")->fail_swap_move = true;
  absl::StatusOr<Revision> resynced = node("n2")->sink->Resync(2, "n1");
  EXPECT_EQ(resynced.status().code(), absl::StatusCode::kUnavailable)
      << resynced.status();
  // The hook reopened it: a new object (the allocator may reuse the
  // address; under ASan's quarantine it does not, so the ASan stage
  // catches a sink still using the closed one).
  ASSERT_NE(node("n2")->db.get(), nullptr);
  node("n2")->fail_swap_move = false;
  // Usable on the reopened database: Start reads it, a re-sync works.
  ASSERT_OK(node("n2")->sink->Start(2, "n1", history).status());
  int reads = 0;
  node("n2")->sink->ReadDb([&](storage::DB* db) {
    EXPECT_EQ(db, node("n2")->db.get());
    ++reads;
  });
  EXPECT_EQ(reads, 1);
  ASSERT_OK(node("n2")->sink->Resync(2, "n1").status());
  EXPECT_EQ(node("n2")->swaps.load(), 1);
}

// A re-sync after which no database could be opened breaks the sink: every
// later call says so (UNAVAILABLE, restart the node) instead of touching
// the closed database, and readers see none.
TEST_F(ReplicationTest, SwapThatLeavesNoDatabaseBreaksTheSink) {
  StartReplica(node("n2"));
  const EpochHistory history = {{1, 1}, {2, 4}};
  StartPrimary(node("n1"), 2, history, {});
  Write(node("n1"), 6);
  ASSERT_OK(node("n2")->sink->Start(2, "n1", history).status());
  node("n2")->fail_swap_open = true;
  EXPECT_FALSE(node("n2")->sink->Resync(2, "n1").ok());
  absl::StatusOr<ReplicaSink::StartResult> start =
      node("n2")->sink->Start(2, "n1", history);
  EXPECT_EQ(start.status().code(), absl::StatusCode::kUnavailable)
      << start.status();
  EXPECT_NE(start.status().message().find("restart the node"),
            std::string::npos)
      << start.status();
  node("n2")->sink->ReadDb([](storage::DB* db) { EXPECT_EQ(db, nullptr); });
}

// The directory states a crash inside ReplaceDirectory can leave, built by
// hand, and what RecoverReplaceDirectory (called before the range's DB is
// opened) makes of them.
class ReplaceDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    range_dir_ = dir_.path() + "/ranges/1";
    db_dir_ = range_dir_ + "/db";
    replaced_ = db_dir_ + kReplacedSuffix;
    std::filesystem::create_directories(range_dir_);
  }

  // A closed database in `dir` whose key "who" is `who`.
  void MakeDb(const std::string& dir, const std::string& who) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<storage::DB> db,
                         storage::DB::Open(DbOptions(), dir));
    storage::WriteBatch b;
    b.Put("who", who);
    ASSERT_OK(db->Write(storage::WriteOptions(), &b).status());
  }

  // Opens the database in db/ (after recovering, as the node does) and
  // returns its "who"; opens a sink over it too, which removes resync-*.
  std::string OpenAndRead() {
    EXPECT_OK(RecoverReplaceDirectory(db_dir_));
    storage::Options o = DbOptions();
    o.create_if_missing = false;
    absl::StatusOr<std::unique_ptr<storage::DB>> db =
        storage::DB::Open(o, db_dir_);
    EXPECT_OK(db.status());
    if (!db.ok()) return "";
    ReplicaSink::Options so;
    so.range_id = kRange;
    so.range_dir = range_dir_;
    so.connect = [](const NodeId&) { return nullptr; };
    so.swap = [](const std::string&) -> ReplicaSink::SwapResult {
      return {absl::InternalError("not in this test"), nullptr};
    };
    absl::StatusOr<std::unique_ptr<ReplicaSink>> sink =
        ReplicaSink::Open(db->get(), so);
    EXPECT_OK(sink.status());
    absl::StatusOr<std::string> value =
        (*db)->Get(storage::ReadOptions(), "who");
    EXPECT_OK(value.status());
    if (sink.ok()) (*sink)->Close();
    return value.ok() ? *value : "";
  }

  std::vector<std::string> Children() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(range_dir_)) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  TempDir dir_;
  std::string range_dir_;
  std::string db_dir_;
  std::string replaced_;
};

TEST_F(ReplaceDirectoryTest, CrashBetweenTheRenamesRestoresTheOldDatabase) {
  MakeDb(db_dir_, "old");
  MakeDb(range_dir_ + "/resync-0", "checkpoint");
  std::filesystem::rename(db_dir_, replaced_);  // Step 1 done, not step 2.
  EXPECT_EQ(OpenAndRead(), "old");
  EXPECT_EQ(Children(), (std::vector<std::string>{"EPOCHS", "db"}));
}

TEST_F(ReplaceDirectoryTest, CrashAfterTheSwapRemovesTheOldDatabase) {
  MakeDb(replaced_, "old");  // Steps 1 and 2 done, not step 4.
  MakeDb(db_dir_, "checkpoint");
  EXPECT_EQ(OpenAndRead(), "checkpoint");
  EXPECT_EQ(Children(), (std::vector<std::string>{"EPOCHS", "db"}));
}

TEST_F(ReplaceDirectoryTest, CrashBeforeTheSwapKeepsTheDatabase) {
  MakeDb(db_dir_, "old");  // Step 1 not done; resync-0 received.
  MakeDb(range_dir_ + "/resync-0", "checkpoint");
  EXPECT_EQ(OpenAndRead(), "old");
  EXPECT_EQ(Children(), (std::vector<std::string>{"EPOCHS", "db"}));
  // Nothing to recover on a fresh node either.
  EXPECT_OK(RecoverReplaceDirectory(dir_.path() + "/none/db"));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/none"));
}

TEST_F(ReplaceDirectoryTest, FailedMovePutsTheOldDirectoryBack) {
  MakeDb(db_dir_, "old");
  absl::Status s = ReplaceDirectory(range_dir_ + "/missing", db_dir_);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_FALSE(std::filesystem::exists(replaced_));
  EXPECT_EQ(OpenAndRead(), "old");
}

TEST_F(ReplaceDirectoryTest, SwapOverALeftoverOfAnInterruptedOne) {
  MakeDb(replaced_, "old");  // An earlier swap stopped between its renames.
  MakeDb(range_dir_ + "/resync-1", "checkpoint");
  ASSERT_OK(ReplaceDirectory(range_dir_ + "/resync-1", db_dir_));
  EXPECT_FALSE(std::filesystem::exists(replaced_));
  EXPECT_EQ(OpenAndRead(), "checkpoint");
}

// The metrics endpoint reads a replica's database through ReplicaSink::
// ReadDb while re-syncs replace it: no read may see the database the swap
// hook is closing (under ASan a read of the closed one is a use after
// free), and every read after a swap sees the new one.
TEST_F(ReplicationTest, ReadDbNeverOverlapsASwapAndFollowsTheNewDatabase) {
  StartReplica(node("n2"));
  StartPrimary(node("n1"), 1, {{1, 1}}, {});
  Node* n2 = node("n2");
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::atomic<int> overlaps{0};
  std::atomic<uint64_t> seen_revision{0};
  std::thread reader([&] {
    while (!stop.load()) {
      n2->sink->ReadDb([&](storage::DB* db) {
        ASSERT_NE(db, nullptr);
        if (n2->swapping.load()) overlaps++;
        const storage::Statistics stats = db->GetStatistics();
        seen_revision = stats.revisions.current;
        if (n2->swapping.load()) overlaps++;
        reads++;
      });
    }
  });
  Revision r = 0;
  for (int round = 1; round <= 3; ++round) {
    r = Write(node("n1"), 10, absl::StrCat("round", round));
    ASSERT_OK(node("n1")->db->Flush());
    ASSERT_OK_AND_ASSIGN(Revision now, n2->sink->Resync(1, "n1"));
    EXPECT_EQ(now, r);
    // The first read after the swap returned sees the new database.
    n2->sink->ReadDb([&](storage::DB* db) {
      ASSERT_NE(db, nullptr);
      EXPECT_EQ(db, n2->db.get());
      EXPECT_EQ(db->CurrentRevision(), r);
    });
  }
  stop = true;
  reader.join();
  EXPECT_EQ(n2->swaps.load(), 3);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_LE(seen_revision.load(), r);
  // Once Close returns, readers get no database: its owner may close it.
  n2->sink->Close();
  bool got_null = false;
  n2->sink->ReadDb([&](storage::DB* db) { got_null = db == nullptr; });
  EXPECT_TRUE(got_null);
}

// A replica's /metrics (strata-server in cluster mode wires the same
// EngineSource through ClusterNode::ReadDb): the engine families and the
// free space of its volume, before, during and after re-syncs that replace
// its database.
TEST_F(ReplicationTest, ReplicaMetricsExportTheEngineAcrossAResync) {
  StartReplica(node("n2"));
  StartPrimary(node("n1"), 1, {{1, 1}}, {});
  Node* n2 = node("n2");
  std::shared_ptr<ReplicaSink> sink = n2->sink;
  server::metrics::MetricsServer metrics(
      server::metrics::EngineSource(
          [sink](absl::FunctionRef<void(storage::DB*)> read) {
            sink->ReadDb(read);
          },
          n2->range_dir),
      server::metrics::BuildInfo{"test", "test"});
  ASSERT_OK(metrics.Listen("127.0.0.1:0"));
  auto scrape = [&]() -> strata::testing::Exposition {
    absl::StatusOr<strata::testing::HttpResponse> got =
        strata::testing::HttpGet(metrics.port(), "/metrics");
    EXPECT_OK(got);
    if (!got.ok()) return {};
    EXPECT_EQ(got->status, 200);
    absl::StatusOr<strata::testing::Exposition> e =
        strata::testing::ParseExposition(got->body);
    EXPECT_OK(e);
    return e.ok() ? *std::move(e) : strata::testing::Exposition{};
  };

  strata::testing::Exposition before = scrape();
  EXPECT_EQ(before.Get("strata_revision"), 0.0);
  EXPECT_GT(before.Get("strata_disk_free_bytes").value_or(0), 0.0);
  for (const char* family :
       {"strata_wal_syncs_total", "strata_wal_sync_duration_seconds_count",
        "strata_compactions_total", "strata_memtable_active_bytes",
        "strata_live_sst_bytes"}) {
    EXPECT_TRUE(before.Get(family).has_value()) << family;
  }

  // Scrapes run throughout two re-syncs.
  std::atomic<bool> stop{false};
  std::atomic<int> scrapes{0};
  std::thread scraper([&] {
    while (!stop.load()) {
      const std::string text = metrics.Scrape();
      EXPECT_NE(text.find("strata_wal_syncs_total"), std::string::npos);
      scrapes++;
    }
  });
  Revision r = 0;
  for (int round = 1; round <= 2; ++round) {
    r = Write(node("n1"), 10, absl::StrCat("round", round));
    ASSERT_OK(node("n1")->db->Flush());
    ASSERT_OK(n2->sink->Resync(1, "n1").status());
  }
  stop = true;
  scraper.join();
  EXPECT_GT(scrapes.load(), 0);

  strata::testing::Exposition after = scrape();
  EXPECT_EQ(after.Get("strata_revision"), static_cast<double>(r));
  EXPECT_GT(after.Get("strata_live_sst_bytes").value_or(0), 0.0);
  EXPECT_GT(after.Get("strata_disk_free_bytes").value_or(0), 0.0);

  // Closed (the node shuts down): no engine families, the rest is served.
  n2->sink->Close();
  strata::testing::Exposition closed = scrape();
  EXPECT_FALSE(closed.Get("strata_revision").has_value());
  EXPECT_GT(closed.Get("strata_disk_free_bytes").value_or(0), 0.0);
}

TEST(CheckpointTransferTest, IncompleteOrInconsistentStreamsAreDataLoss) {
  TempDir dir;
  auto file_msgs = [](const std::string& data) {
    std::vector<v1::FetchCheckpointResponse> m(3);
    m[0].mutable_begin()->set_revision(5);
    m[0].mutable_begin()->set_files(1);
    m[0].mutable_begin()->set_total_bytes(data.size());
    v1::EpochStart* e = m[0].mutable_begin()->add_epoch_history();
    e->set_epoch(1);
    e->set_start_revision(1);
    v1::CheckpointChunk* c = m[1].mutable_chunk();
    c->set_file("000001.sst");
    c->set_data(data);
    c->set_xxh64(XXH64(data.data(), data.size(), 0));
    v1::CheckpointFile* f = m[2].mutable_manifest()->add_files();
    f->set_name("000001.sst");
    f->set_size(data.size());
    f->set_xxh64(XXH64(data.data(), data.size(), 0));
    return m;
  };
  auto receive = [&](std::vector<v1::FetchCheckpointResponse> msgs,
                     const std::string& name) {
    size_t i = 0;
    return ReceiveCheckpoint(
        [&](v1::FetchCheckpointResponse* out) {
          if (i == msgs.size()) return false;
          *out = msgs[i++];
          return true;
        },
        dir.path() + "/" + name);
  };
  ASSERT_OK_AND_ASSIGN(ReceivedCheckpoint ok, receive(file_msgs("abcdef"), "ok"));
  EXPECT_EQ(ok.revision, 5u);
  EXPECT_EQ(ok.bytes, 6u);
  EXPECT_EQ(strata::testing::ReadFileOrDie(dir.path() + "/ok/000001.sst"),
            "abcdef");

  auto no_manifest = file_msgs("abcdef");
  no_manifest.pop_back();
  EXPECT_TRUE(absl::IsDataLoss(receive(no_manifest, "a").status()));
  auto short_file = file_msgs("abcdef");
  short_file[2].mutable_manifest()->mutable_files(0)->set_size(7);
  EXPECT_TRUE(absl::IsDataLoss(receive(short_file, "b").status()));
  auto bad_sum = file_msgs("abcdef");
  bad_sum[2].mutable_manifest()->mutable_files(0)->set_xxh64(1);
  EXPECT_TRUE(absl::IsDataLoss(receive(bad_sum, "c").status()));
  auto escape = file_msgs("abcdef");
  escape[1].mutable_chunk()->set_file("../x");
  EXPECT_TRUE(absl::IsInvalidArgument(receive(escape, "d").status()));
  // Chunks of two files, a manifest listing the first one twice: the counts
  // and total agree, but nothing vouches for the second file.
  auto listed_twice = file_msgs("abc");
  listed_twice[0].mutable_begin()->set_files(2);
  listed_twice[0].mutable_begin()->set_total_bytes(6);
  v1::FetchCheckpointResponse other;
  other.mutable_chunk()->set_file("000002.sst");
  other.mutable_chunk()->set_data("xyz");
  other.mutable_chunk()->set_xxh64(XXH64("xyz", 3, 0));
  listed_twice.insert(listed_twice.begin() + 2, other);
  *listed_twice[3].mutable_manifest()->add_files() =
      listed_twice[3].manifest().files(0);
  absl::Status twice = receive(listed_twice, "e").status();
  EXPECT_TRUE(absl::IsDataLoss(twice)) << twice;
  for (const char* name : {"a", "b", "c", "d", "e"}) {
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/" + name)) << name;
  }
  // Never into a directory that exists.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      receive(file_msgs("abcdef"), "ok").status()));
}

}  // namespace
}  // namespace strata::cluster::replication
