// ReplicatedDB (cluster/node/replicated_db.h) without a cluster: a primary
// whose one replica never answers, so the replicated watermark is under the
// test's control through SetInSync.

#include "cluster/node/replicated_db.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/write_gate.h"
#include "strata/storage/db.h"
#include "tests/support/test_util.h"

namespace strata::cluster {
namespace {

using replication::ReplicationSource;

class ReplicatedDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::Options o;
    o.create_if_missing = true;
    o.keep_history = true;
    o.allow_committed_batches = true;
    auto db = storage::DB::Open(o, dir_.path() + "/db");
    ASSERT_TRUE(db.ok()) << db.status();
    base_ = *std::move(db);
    ReplicationSource::Options so;
    so.epoch = 1;
    so.history = {{1, 1}};
    so.self = "n1";
    // Nothing listens there: the replica never acknowledges.
    so.replicas.push_back(
        {"n2", grpc::CreateChannel("127.0.0.1:1",
                                   grpc::InsecureChannelCredentials())});
    auto source = ReplicationSource::Create(base_.get(), so);
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = *std::move(source);
  }

  void TearDown() override {
    rdb_.reset();
    source_.reset();
    base_.reset();
  }

  std::unique_ptr<ReplicatedDB> Make(ReplicatedDB::Options o = {}) {
    if (o.replication_timeout == absl::Seconds(10)) {
      o.replication_timeout = absl::Milliseconds(200);
    }
    return std::make_unique<ReplicatedDB>(base_.get(), source_.get(), o);
  }

  testing::TempDir dir_;
  std::unique_ptr<storage::DB> base_;
  std::unique_ptr<ReplicationSource> source_;
  std::unique_ptr<ReplicatedDB> rdb_;
};

TEST_F(ReplicatedDbTest, UnreplicatedWriteIsIndeterminateAndNotRead) {
  rdb_ = Make();
  absl::StatusOr<storage::Revision> put =
      rdb_->Put(storage::WriteOptions(), "k", "v");
  // Committed locally, never acknowledged by the in-sync replica.
  ASSERT_EQ(put.status().code(), absl::StatusCode::kDeadlineExceeded)
      << put.status();
  EXPECT_NE(put.status().message().find("may or may not survive"),
            std::string::npos);
  ASSERT_TRUE(base_->Get(storage::ReadOptions(), "k").ok());
  // Not served: nothing is replicated yet.
  EXPECT_FALSE(rdb_->Get(storage::ReadOptions(), "k").ok());
  EXPECT_EQ(rdb_->CurrentRevision(), 0);

  // Once the set no longer waits for the replica, revision 1 is
  // replicated, and served.
  source_->SetInSync({});
  absl::StatusOr<std::string> got = rdb_->Get(storage::ReadOptions(), "k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "v");
  EXPECT_EQ(rdb_->CurrentRevision(), 1);
  absl::StatusOr<storage::Revision> second =
      rdb_->Put(storage::WriteOptions(), "k", "w");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, 2);
}

TEST_F(ReplicatedDbTest, ReadsStopAtTheWatermark) {
  source_->SetInSync({});
  rdb_ = Make();
  ASSERT_TRUE(rdb_->Put(storage::WriteOptions(), "k", "v1").ok());
  // The replica joins the set: the watermark stays at 1.
  source_->SetInSync({"n2"});
  EXPECT_FALSE(rdb_->Put(storage::WriteOptions(), "k", "v2").ok());
  ASSERT_EQ(base_->Get(storage::ReadOptions(), "k").value_or(""), "v2");
  absl::StatusOr<std::string> got = rdb_->Get(storage::ReadOptions(), "k");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "v1");
  std::unique_ptr<storage::Iterator> it =
      rdb_->NewIterator(storage::ReadOptions());
  it->SeekToFirst();
  ASSERT_TRUE(it->Valid()) << it->status();
  EXPECT_EQ(it->value(), "v1");
  EXPECT_EQ(rdb_->CurrentRevision(), 1);
  EXPECT_EQ(rdb_->GetSnapshotAt(2).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST_F(ReplicatedDbTest, FencedOrLeaseExpiredRefusesWrites) {
  source_->SetInSync({});
  rdb_ = Make();
  ASSERT_TRUE(rdb_->Put(storage::WriteOptions(), "k", "v").ok());
  rdb_->Fence(absl::UnavailableError("epoch 2 has primary n3"));
  absl::StatusOr<storage::Revision> put =
      rdb_->Put(storage::WriteOptions(), "k", "w");
  EXPECT_EQ(put.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(put.status().message().find("epoch 2 has primary n3"),
            std::string::npos);
  EXPECT_EQ(rdb_->fenced_writes(), 1);
  EXPECT_EQ(base_->Get(storage::ReadOptions(), "k").value_or(""), "v");
}

TEST_F(ReplicatedDbTest, LeaseDeadlinePassedFences) {
  source_->SetInSync({});
  ReplicatedDB::Options o;
  o.lease_deadline = [] { return absl::Now() - absl::Seconds(1); };
  rdb_ = Make(o);
  absl::StatusOr<storage::Revision> put =
      rdb_->Put(storage::WriteOptions(), "k", "v");
  EXPECT_EQ(put.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(rdb_->fenced());
  EXPECT_TRUE(source_->fenced());
  // Nothing was committed.
  EXPECT_EQ(base_->CurrentRevision(), 0);
}

TEST_F(ReplicatedDbTest, FewerInSyncThanMinInSyncRefusesWritesUntilOneRejoins) {
  // A failover left only the primary in the set; the cluster wants 2.
  source_->SetInSync({});
  ReplicatedDB::Options o;
  o.min_in_sync = 2;
  rdb_ = Make(o);
  absl::StatusOr<storage::Revision> put =
      rdb_->Put(storage::WriteOptions(), "k", "v");
  EXPECT_EQ(put.status().code(), absl::StatusCode::kUnavailable)
      << put.status();
  EXPECT_NE(put.status().message().find("min_in_sync"), std::string::npos);
  EXPECT_EQ(base_->CurrentRevision(), 0);  // Refused before the commit.
  EXPECT_FALSE(rdb_->fenced());
  EXPECT_EQ(rdb_->fenced_writes(), 0);

  // The replica rejoins: the write is taken (and here waits for it, which
  // never answers, so the outcome is the indeterminate one).
  source_->SetInSync({"n2"});
  put = rdb_->Put(storage::WriteOptions(), "k", "v");
  EXPECT_EQ(put.status().code(), absl::StatusCode::kDeadlineExceeded)
      << put.status();
  EXPECT_EQ(base_->CurrentRevision(), 1);
}

// Readiness: PrimaryWriteReadiness reports what the writes would answer:
// OK while the primary takes writes, UNAVAILABLE with the reason once it is
// fenced. WriteAvailability stays the engine's (it takes writes).
TEST_F(ReplicatedDbTest, FencedPrimaryIsNotWriteReady) {
  source_->SetInSync({});
  rdb_ = Make();
  ASSERT_TRUE(rdb_->PrimaryWriteReadiness().ok())
      << rdb_->PrimaryWriteReadiness();
  rdb_->Fence(absl::UnavailableError("epoch 2 has primary n3"));
  const absl::Status readiness = rdb_->PrimaryWriteReadiness();
  EXPECT_EQ(readiness.code(), absl::StatusCode::kUnavailable) << readiness;
  EXPECT_NE(readiness.message().find("fenced"), std::string::npos);
  EXPECT_NE(readiness.message().find("epoch 2 has primary n3"),
            std::string::npos);
  EXPECT_TRUE(rdb_->WriteAvailability().ok()) << rdb_->WriteAvailability();
  // Asking does not count as a refused write; the write itself still
  // answers FAILED_PRECONDITION (clients re-route on it).
  EXPECT_EQ(rdb_->fenced_writes(), 0);
  EXPECT_EQ(rdb_->Put(storage::WriteOptions(), "k", "v").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ReplicatedDbTest, LeaseDeadlinePassedIsNotWriteReady) {
  source_->SetInSync({});
  ReplicatedDB::Options o;
  o.lease_deadline = [] { return absl::Now() - absl::Seconds(1); };
  rdb_ = Make(o);
  const absl::Status readiness = rdb_->PrimaryWriteReadiness();
  EXPECT_EQ(readiness.code(), absl::StatusCode::kUnavailable) << readiness;
  EXPECT_NE(readiness.message().find("lease"), std::string::npos);
  // Asking does not fence: only a write does.
  EXPECT_FALSE(rdb_->fenced());
}

TEST_F(ReplicatedDbTest, TooFewInSyncIsNotWriteReadyUntilOneRejoins) {
  source_->SetInSync({});
  ReplicatedDB::Options o;
  o.min_in_sync = 2;
  rdb_ = Make(o);
  const absl::Status readiness = rdb_->PrimaryWriteReadiness();
  EXPECT_EQ(readiness.code(), absl::StatusCode::kUnavailable) << readiness;
  EXPECT_NE(readiness.message().find(
                "only 1 of range 0's replicas are in sync"),
            std::string::npos)
      << readiness;
  // n2 rejoins the set: writes are taken again, but readiness still says
  // no while n2 is not connected (every write would wait for it).
  source_->SetInSync({"n2"});
  const absl::Status waiting = rdb_->PrimaryWriteReadiness();
  EXPECT_EQ(waiting.code(), absl::StatusCode::kUnavailable) << waiting;
  EXPECT_NE(waiting.message().find("only 1 of range 0's in-sync replicas "
                                   "(the primary included) are connected"),
            std::string::npos)
      << waiting;
}

// With min_in_sync 1 a silent in-sync replica only delays writes until the
// node drops it from the set: still ready. With 2 it is the one the
// primary may not drop, so every write would wait for it: not ready.
TEST_F(ReplicatedDbTest, SilentInSyncReplicaIsNotWriteReadyAtMinInSync) {
  source_->SetInSync({"n2"});
  rdb_ = Make();
  EXPECT_TRUE(rdb_->PrimaryWriteReadiness().ok())
      << rdb_->PrimaryWriteReadiness();
  ReplicatedDB::Options o;
  o.min_in_sync = 2;
  rdb_.reset();
  rdb_ = Make(o);
  EXPECT_EQ(rdb_->PrimaryWriteReadiness().code(),
            absl::StatusCode::kUnavailable)
      << rdb_->PrimaryWriteReadiness();
  // Readiness only: the engine takes writes (this one times out waiting).
  EXPECT_TRUE(rdb_->WriteAvailability().ok()) << rdb_->WriteAvailability();
}

// The server's write gate over a fenced primary, wired as the node wires
// it (readiness = PrimaryWriteReadiness): not writable (health's
// strata.v1.KV.write goes NOT_SERVING through the change callback), but
// Admit lets the write through so the ReplicatedDB answers it with its own
// FAILED_PRECONDITION, as before.
TEST_F(ReplicatedDbTest, WriteGateReportsAFencedPrimaryNotWritable) {
  source_->SetInSync({});
  rdb_ = Make();
  server::DiskSpaceOptions disk;
  disk.min_free_bytes = 0;
  std::vector<bool> changes;  // Refresh runs on this thread (no Start).
  server::WriteGate gate(
      disk, rdb_.get(), nullptr,
      [&](bool writable) { changes.push_back(writable); },
      [this] { return rdb_->PrimaryWriteReadiness(); });
  gate.Refresh();
  EXPECT_TRUE(gate.Writable());
  rdb_->Fence(absl::UnavailableError("epoch 2 has primary n3"));
  gate.Refresh();
  EXPECT_FALSE(gate.Writable());
  EXPECT_EQ(changes, (std::vector<bool>{true, false}));
  EXPECT_TRUE(gate.Admit().ok());
  EXPECT_EQ(rdb_->Put(storage::WriteOptions(), "k", "v").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// Records what the delayed commit listener (the Watch hub's place) hears.
class RecordingListener final : public storage::CommitListener {
 public:
  void OnCommit(const std::vector<storage::ChangeBatch>& batches) override {
    absl::MutexLock lock(&mu_);
    for (const storage::ChangeBatch& b : batches) revisions_.push_back(b.revision);
  }
  std::vector<storage::Revision> revisions() {
    absl::MutexLock lock(&mu_);
    return revisions_;
  }

 private:
  absl::Mutex mu_;
  std::vector<storage::Revision> revisions_ ABSL_GUARDED_BY(mu_);
};

// Regression (ClusterNode::Stop race): a commit waits for its replicas
// when the ReplicatedDB is destroyed; the source, still alive, then
// reaches the watermark and runs the waiter on its notifier thread. It
// must not touch the destroyed object (it used to call DeliverReplicated
// on it: a use-after-free that ASan and TSan report, and the listener
// heard a batch from a dead ReplicatedDB).
TEST_F(ReplicatedDbTest, ReplicationAfterTheReplicatedDbIsGoneReachesNothing) {
  RecordingListener listener;
  rdb_ = Make();
  rdb_->SetCommitListener(&listener);
  // Committed locally; the replica never acknowledges, so its delivery
  // waits (and the write itself times out).
  ASSERT_EQ(rdb_->Put(storage::WriteOptions(), "k", "v").status().code(),
            absl::StatusCode::kDeadlineExceeded);
  ASSERT_EQ(base_->CurrentRevision(), 1);
  rdb_.reset();
  source_->SetInSync({});  // The watermark reaches revision 1 now.
  EXPECT_EQ(source_->replicated_revision(), 1);
  source_.reset();  // Joins the notifier: every callback has run.
  EXPECT_TRUE(listener.revisions().empty());
}

// The order ClusterNode::Stop uses: Detach, destroy the source (its
// threads end; what still waits for replicas is failed), then the
// ReplicatedDB.
TEST_F(ReplicatedDbTest, DetachThenSourceThenReplicatedDbIsAStopOrder) {
  RecordingListener listener;
  source_->SetInSync({});
  rdb_ = Make();
  rdb_->SetCommitListener(&listener);
  ASSERT_TRUE(rdb_->Put(storage::WriteOptions(), "k", "v").ok());
  // Revision 2 commits but is never replicated: its delivery waits.
  source_->SetInSync({"n2"});
  ASSERT_EQ(rdb_->Put(storage::WriteOptions(), "k", "w").status().code(),
            absl::StatusCode::kDeadlineExceeded);
  rdb_->Detach();
  source_.reset();
  rdb_.reset();
  // Revision 1 was replicated and delivered; revision 2 never was.
  EXPECT_EQ(listener.revisions(), std::vector<storage::Revision>{1});
  // No longer base's commit listener: a direct write reaches nobody.
  ASSERT_TRUE(base_->Put(storage::WriteOptions(), "x", "y").ok());
  EXPECT_EQ(listener.revisions(), std::vector<storage::Revision>{1});
}

}  // namespace
}  // namespace strata::cluster
