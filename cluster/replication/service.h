#ifndef STRATA_CLUSTER_REPLICATION_SERVICE_H_
#define STRATA_CLUSTER_REPLICATION_SERVICE_H_

// strata.v1.Replication for one node (docs/replication.md): routes each
// Append stream to the ReplicaSink of its range and serves FetchCheckpoint
// for the ranges this node is the primary of.
//
// It uses gRPC's synchronous API: each stream holds one of the server's
// sync threads while it lasts (a handful per range), and the blocking work
// (fsync per message, a checkpoint) runs on it, never on a completion
// queue. The wiring round may move it to the callback API.
//
// Thread safety: thread-safe; ranges may be added and removed while
// streams run (a running stream keeps its sink or source alive).

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "cluster/replication/epoch_history.h"
#include "cluster/replication/replica.h"
#include "strata/storage/db.h"
#include "strata/v1/replication.grpc.pb.h"

namespace strata::cluster::replication {

// What FetchCheckpoint needs of a range this node is the primary of.
struct CheckpointSource {
  // Not owned; outlives the registration and every FetchCheckpoint that
  // started while it was registered.
  storage::DB* db = nullptr;
  Epoch epoch = 0;
  EpochHistory history;
};

class ReplicationService final : public v1::Replication::Service {
 public:
  struct Options {
    // Where checkpoints for FetchCheckpoint are made (then removed); on
    // the file system of the ranges' databases, so SSTables are linked.
    std::string checkpoint_dir;
    uint64_t checkpoint_chunk_bytes = 1 << 20;
    // Fills in this node's free disk space for every AppendAccepted and
    // AppendAck (the primary refuses writes while an in-sync replica is
    // below its reserve); returns false when unknown (nothing is sent).
    // Called on the stream's thread once per ack: must be cheap (a statvfs
    // is: microseconds, next to the ack's fsync) and thread-safe. Empty:
    // never sent.
    std::function<bool(v1::ReplicaDiskSpace* out)> disk_space;
  };
  explicit ReplicationService(Options options);

  // Serve Append streams of `range` with `sink` (replacing any earlier),
  // or stop serving them. Thread-safe, also while streams run: only new
  // streams see the change; a running stream keeps the sink it started
  // with until it ends (ReplicaSink::Close ends it at its next message).
  void AddReplica(RangeId range, std::shared_ptr<ReplicaSink> sink);
  void RemoveReplica(RangeId range);
  // Serve FetchCheckpoint of `range` from `source`, or stop serving it.
  // Thread-safe, also while streams run: a running FetchCheckpoint keeps
  // the source it started with (and reads its db) until it ends.
  void AddPrimary(RangeId range, std::shared_ptr<const CheckpointSource> source);
  void RemovePrimary(RangeId range);

  grpc::Status Append(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::AppendResponse, v1::AppendRequest>* stream)
      override;
  grpc::Status FetchCheckpoint(
      grpc::ServerContext* context, const v1::FetchCheckpointRequest* request,
      grpc::ServerWriter<v1::FetchCheckpointResponse>* writer) override;

  // Test only: called with every checkpoint chunk before it is sent.
  void TEST_SetChunkHook(std::function<void(v1::CheckpointChunk*)> hook);

 private:
  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<RangeId, std::shared_ptr<ReplicaSink>> replicas_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<RangeId, std::shared_ptr<const CheckpointSource>>
      primaries_ ABSL_GUARDED_BY(mu_);
  std::function<void(v1::CheckpointChunk*)> chunk_hook_ ABSL_GUARDED_BY(mu_);
};

// EpochHistory <-> the repeated EpochStart of AppendStart and
// CheckpointBegin (no validation: callers run ValidateEpochHistory).
void EpochHistoryToProto(
    const EpochHistory& history,
    google::protobuf::RepeatedPtrField<v1::EpochStart>* out);
EpochHistory EpochHistoryFromProto(
    const google::protobuf::RepeatedPtrField<v1::EpochStart>& in);

// absl::Status <-> grpc::Status (the codes are the same). Payloads are
// dropped: the stale-epoch mark crosses the wire as a trailer (below).
grpc::Status ToGrpc(const absl::Status& s);
absl::Status FromGrpc(const grpc::Status& s);

// The trailing metadata key (part of the wire contract, replication.proto)
// with which a replica marks the FAILED_PRECONDITION that ends an Append
// stream as a stale-epoch refusal; its value is the replica's highest
// epoch in decimal. Every other FAILED_PRECONDITION goes without it.
inline constexpr char kStaleEpochTrailer[] = "strata-stale-epoch";

// An Append stream's status as the replica sends it: ToGrpc, plus the
// stale-epoch trailer on `context` if StaleEpochOf(s).
grpc::Status ToAppendStatus(const absl::Status& s,
                            grpc::ServerContext* context);
// The status that ended an Append stream, as the primary reads it: FromGrpc,
// made a StaleEpochError again if it is FAILED_PRECONDITION and the
// trailers of `context` (after Finish) carry a valid kStaleEpochTrailer.
absl::Status FromAppendStatus(const grpc::Status& s,
                              const grpc::ClientContext& context);

}  // namespace strata::cluster::replication

#endif  // STRATA_CLUSTER_REPLICATION_SERVICE_H_
