#include "cluster/replication/service.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace strata::cluster::replication {

void EpochHistoryToProto(
    const EpochHistory& history,
    google::protobuf::RepeatedPtrField<v1::EpochStart>* out) {
  for (const EpochStart& e : history) {
    v1::EpochStart* p = out->Add();
    p->set_epoch(e.epoch);
    p->set_start_revision(static_cast<int64_t>(e.start_revision));
  }
}

EpochHistory EpochHistoryFromProto(
    const google::protobuf::RepeatedPtrField<v1::EpochStart>& in) {
  EpochHistory out;
  for (const v1::EpochStart& e : in) {
    out.push_back({e.epoch(), static_cast<Revision>(e.start_revision())});
  }
  return out;
}

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

grpc::Status ToAppendStatus(const absl::Status& s,
                            grpc::ServerContext* context) {
  if (std::optional<Epoch> highest = StaleEpochOf(s); highest.has_value()) {
    context->AddTrailingMetadata(kStaleEpochTrailer, absl::StrCat(*highest));
  }
  return ToGrpc(s);
}

absl::Status FromAppendStatus(const grpc::Status& s,
                              const grpc::ClientContext& context) {
  absl::Status out = FromGrpc(s);
  if (!absl::IsFailedPrecondition(out)) return out;
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(kStaleEpochTrailer);
  Epoch highest = 0;
  if (it == trailers.end() ||
      !absl::SimpleAtoi(std::string(it->second.data(), it->second.size()),
                        &highest)) {
    return out;
  }
  out.SetPayload(kStaleEpochPayload, absl::Cord(absl::StrCat(highest)));
  return out;
}

ReplicationService::ReplicationService(Options options)
    : options_(std::move(options)) {}

void ReplicationService::AddReplica(RangeId range,
                                    std::shared_ptr<ReplicaSink> sink) {
  absl::MutexLock lock(&mu_);
  replicas_[range] = std::move(sink);
}

void ReplicationService::RemoveReplica(RangeId range) {
  absl::MutexLock lock(&mu_);
  replicas_.erase(range);
}

void ReplicationService::AddPrimary(
    RangeId range, std::shared_ptr<const CheckpointSource> source) {
  absl::MutexLock lock(&mu_);
  primaries_[range] = std::move(source);
}

void ReplicationService::RemovePrimary(RangeId range) {
  absl::MutexLock lock(&mu_);
  primaries_.erase(range);
}

void ReplicationService::TEST_SetChunkHook(
    std::function<void(v1::CheckpointChunk*)> hook) {
  absl::MutexLock lock(&mu_);
  chunk_hook_ = std::move(hook);
}

namespace {

// Sets `msg`'s disk_space from `disk_space`, if it knows it.
template <typename Msg>
void FillDiskSpace(const std::function<bool(v1::ReplicaDiskSpace*)>& disk_space,
                   Msg* msg) {
  if (!disk_space) return;
  v1::ReplicaDiskSpace space;
  if (disk_space(&space)) *msg->mutable_disk_space() = space;
}

// Rebuilds `sink` (telling the primary first) and answers with the new
// durable revision.
grpc::Status ResyncAndAccept(
    ReplicaSink* sink, Epoch epoch, const NodeId& primary,
    const std::string& reason,
    const std::function<bool(v1::ReplicaDiskSpace*)>& disk_space,
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::AppendResponse, v1::AppendRequest>* stream) {
  v1::AppendResponse resp;
  resp.mutable_resyncing()->set_reason(reason);
  if (!stream->Write(resp)) return grpc::Status::CANCELLED;
  absl::StatusOr<Revision> r = sink->Resync(epoch, primary);
  if (!r.ok()) return ToAppendStatus(r.status(), context);
  resp.Clear();
  resp.mutable_accepted()->set_durable_revision(static_cast<int64_t>(*r));
  resp.mutable_accepted()->set_epoch(epoch);
  FillDiskSpace(disk_space, resp.mutable_accepted());
  if (!stream->Write(resp)) return grpc::Status::CANCELLED;
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ReplicationService::Append(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::AppendResponse, v1::AppendRequest>* stream) {
  v1::AppendRequest req;
  if (!stream->Read(&req)) return grpc::Status::OK;
  if (!req.has_start()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "Append: the first message must be an AppendStart");
  }
  const v1::AppendStart start = req.start();
  std::shared_ptr<ReplicaSink> sink;
  {
    absl::MutexLock lock(&mu_);
    auto it = replicas_.find(start.range_id());
    if (it != replicas_.end()) sink = it->second;
  }
  if (sink == nullptr) {
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrFormat("Append: this node holds no replica of range %d",
                        start.range_id()));
  }
  const Epoch epoch = start.epoch();
  absl::StatusOr<ReplicaSink::StartResult> started =
      sink->Start(epoch, start.primary(), EpochHistoryFromProto(start.epoch_history()));
  if (!started.ok()) return ToAppendStatus(started.status(), context);
  if (!started->resync_reason.empty()) {
    grpc::Status s =
        ResyncAndAccept(sink.get(), epoch, start.primary(),
                        started->resync_reason, options_.disk_space, context,
                        stream);
    if (!s.ok()) return s;
  } else {
    v1::AppendResponse resp;
    resp.mutable_accepted()->set_durable_revision(
        static_cast<int64_t>(started->durable_revision));
    resp.mutable_accepted()->set_epoch(epoch);
    FillDiskSpace(options_.disk_space, resp.mutable_accepted());
    if (!stream->Write(resp)) return grpc::Status::CANCELLED;
  }
  while (stream->Read(&req)) {
    if (req.has_batches()) {
      absl::StatusOr<Revision> r = sink->Apply(epoch, req.batches());
      if (!r.ok()) return ToAppendStatus(r.status(), context);
      v1::AppendResponse ack;
      ack.mutable_ack()->set_durable_revision(static_cast<int64_t>(*r));
      FillDiskSpace(options_.disk_space, ack.mutable_ack());
      if (!stream->Write(ack)) return grpc::Status::CANCELLED;
    } else if (req.has_resync()) {
      grpc::Status s = ResyncAndAccept(sink.get(), epoch, start.primary(),
                                       req.resync().reason(),
                                       options_.disk_space, context, stream);
      if (!s.ok()) return s;
    } else {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "Append: a second AppendStart");
    }
  }
  return grpc::Status::OK;
}

grpc::Status ReplicationService::FetchCheckpoint(
    grpc::ServerContext* context, const v1::FetchCheckpointRequest* request,
    grpc::ServerWriter<v1::FetchCheckpointResponse>* writer) {
  std::shared_ptr<const CheckpointSource> source;
  std::function<void(v1::CheckpointChunk*)> hook;
  {
    absl::MutexLock lock(&mu_);
    auto it = primaries_.find(request->range_id());
    if (it != primaries_.end()) source = it->second;
    hook = chunk_hook_;
  }
  if (source == nullptr) {
    return grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        absl::StrFormat("FetchCheckpoint: this node is not the primary of "
                        "range %d",
                        request->range_id()));
  }
  if (request->epoch() != source->epoch) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrFormat("FetchCheckpoint: range %d is at epoch %d here, the "
                        "request asks for epoch %d",
                        request->range_id(), source->epoch, request->epoch()));
  }
  absl::Status s = SendCheckpoint(
      source->db, options_.checkpoint_dir, source->history,
      options_.checkpoint_chunk_bytes,
      [&](const v1::FetchCheckpointResponse& m) {
        if (context->IsCancelled()) return false;
        if (hook && m.has_chunk()) {
          v1::FetchCheckpointResponse copy = m;
          hook(copy.mutable_chunk());
          return writer->Write(copy);
        }
        return writer->Write(m);
      });
  return ToGrpc(s);
}

}  // namespace strata::cluster::replication
