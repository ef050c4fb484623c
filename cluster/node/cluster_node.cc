#include "cluster/node/cluster_node.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cluster/control/cluster_rpc.h"
#include "cluster/replication/checkpoint_transfer.h"
#include "cluster/replication/epoch_history.h"
#include "spdlog/spdlog.h"

namespace strata::cluster {

namespace {

constexpr RangeId kRange = 0;
constexpr absl::Duration kMaintainInterval = absl::Milliseconds(100);
constexpr absl::Duration kMembersRefresh = absl::Seconds(2);

// A range replica's database: the engine options of the node, plus what
// replication needs (replicas apply the primary's committed batches; the
// change log feeds catch-up and Watch).
storage::Options RangeDbOptions(storage::Options engine) {
  engine.allow_committed_batches = true;
  engine.keep_history = true;
  return engine;
}

bool Contains(const std::vector<NodeId>& v, const NodeId& id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

}  // namespace

// strata.v1.Cluster: the map this node watches, and the status read from
// etcd (a sync service: the etcd call blocks one of gRPC's sync threads,
// never a completion queue).
class ClusterNode::ClusterService final : public v1::Cluster::Service {
 public:
  explicit ClusterService(ClusterNode* node) : node_(node) {}
  grpc::Status GetRangeMap(grpc::ServerContext*, const v1::GetRangeMapRequest*,
                           v1::GetRangeMapResponse* response) override {
    std::shared_ptr<const RangeMap> map = node_->watch_->current();
    if (map == nullptr) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "no range map read from etcd yet");
    }
    std::map<NodeId, std::string> members;
    {
      absl::MutexLock lock(&node_->mu_);
      members = node_->members_;
    }
    FillGetRangeMapResponse(*map, members, {}, response);
    return grpc::Status::OK;
  }
  grpc::Status GetClusterStatus(grpc::ServerContext*,
                                const v1::GetClusterStatusRequest*,
                                v1::GetClusterStatusResponse* response) override {
    absl::StatusOr<v1::GetClusterStatusResponse> status =
        ReadClusterStatus(*node_->store_);
    if (!status.ok()) return replication::ToGrpc(status.status());
    *response = *std::move(status);
    v1::RangeReplication replication;
    if (node_->FillReplication(&replication)) {
      *response->add_replication() = std::move(replication);
    }
    return grpc::Status::OK;
  }

 private:
  ClusterNode* const node_;
};

ClusterNode::ClusterNode(ClusterNodeOptions options)
    : options_(std::move(options)),
      range_dir_(absl::StrCat(options_.data_dir, "/ranges/", kRange)),
      db_dir_(absl::StrCat(range_dir_, "/db")) {}

absl::StatusOr<std::unique_ptr<ClusterNode>> ClusterNode::Start(
    ClusterNodeOptions options) {
  if (options.etcd_endpoint.empty()) {
    return absl::InvalidArgumentError("--cluster_etcd is empty");
  }
  if (absl::Status s = PlanEtcdChannels(options.etcd_endpoint).status();
      !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cluster_etcd: ", s.message()));
  }
  if (absl::Status s = ValidateEtcdTls(options.etcd_tls, "--cluster_etcd_");
      !s.ok()) {
    return s;
  }
  if (options.etcd_auth.enabled() == options.etcd_auth.password.empty()) {
    return absl::InvalidArgumentError(
        "--cluster_etcd_user and --cluster_etcd_password_file go together "
        "(an etcd user and its non-empty password)");
  }
  if (!IsValidNodeId(options.node_id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--node_id \"", options.node_id,
        "\" is not a valid node id (1..63 characters of [a-z0-9-])"));
  }
  if (options.advertise_address.empty()) {
    return absl::InvalidArgumentError(
        "--advertise_address is required with --cluster_etcd (the host:port "
        "other nodes and clients dial)");
  }
  if (options.prefix.empty()) {
    return absl::InvalidArgumentError("--cluster_prefix is empty");
  }
  std::unique_ptr<ClusterNode> node(new ClusterNode(std::move(options)));
  if (absl::Status s = node->Init(); !s.ok()) {
    node->Stop();
    return s;
  }
  return node;
}

absl::Status ClusterNode::Init() {
  etcd_ = std::make_unique<EtcdClient>(
      EtcdClientOptions{.endpoint = options_.etcd_endpoint,
                        .tls = options_.etcd_tls,
                        .auth = options_.etcd_auth});
  store_ = std::make_unique<ClusterStore>(etcd_.get(), options_.prefix);

  // Wait for `strata cluster init`.
  const absl::Time give_up = absl::Now() + options_.init_wait;
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<ClusterConfig> config = store_->ReadConfig();
    if (config.ok()) {
      config_ = *config;
      break;
    }
    if (!absl::IsNotFound(config.status()) &&
        !absl::IsUnavailable(config.status()) &&
        !absl::IsDeadlineExceeded(config.status())) {
      return config.status();
    }
    if (absl::Now() >= give_up) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the cluster under prefix \"", options_.prefix, "\" at ",
          options_.etcd_endpoint, " was not initialized within ",
          absl::FormatDuration(options_.init_wait), " (strata cluster init): ",
          config.status().message()));
    }
    if (attempt == 0) {
      spdlog::info("cluster: waiting for the cluster to be initialized: {}",
                   config.status().ToString());
    }
    absl::SleepFor(absl::Milliseconds(200));
  }

  // Liveness.
  absl::StatusOr<Lease> lease = etcd_->LeaseGrant(options_.lease_ttl);
  if (!lease.ok()) return lease.status();
  if (absl::Status s = store_->RegisterNode(
          Member{options_.node_id, options_.advertise_address}, lease->id);
      !s.ok()) {
    return s;
  }
  keeper_ = std::make_unique<LeaseKeeper>(
      etcd_.get(), *lease, [this](const absl::Status& why) {
        RoleChange(absl::StrCat("etcd lease lost: ", why.ToString()));
      });
  controller_ = std::make_unique<Controller>(store_.get(), options_.node_id,
                                             lease->id, options_.controller);
  controller_->Start();

  if (absl::StatusOr<std::map<NodeId, std::string>> members =
          store_->ListMembers();
      members.ok()) {
    absl::MutexLock lock(&mu_);
    members_ = *std::move(members);
  } else {
    return members.status();
  }

  watch_ = std::make_unique<RangeMapWatch>(
      store_.get(), [this](const RangeMap& map) { OnMap(map); });
  if (absl::Status s = watch_->Start(); !s.ok()) return s;
  std::shared_ptr<const RangeMap> map = watch_->current();
  if (map->ranges().size() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the range map has ", map->ranges().size(),
        " ranges; this strata-server serves a cluster of one range only "
        "(strata cluster init --ranges=1); several ranges need one database "
        "and KV service per range (docs/cluster.md)"));
  }
  const RangeDescriptor range = map->ranges().front();
  if (!range.IsReplica(options_.node_id)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node ", options_.node_id, " holds no replica of range ", range.id,
        " (replicas: ", absl::StrJoin(range.replicas, ","),
        "); add it with strata cluster add-node"));
  }
  replicas_ = range.replicas;
  role_ = range.primary == options_.node_id ? Role::kPrimary : Role::kReplica;

  std::error_code ec;
  std::filesystem::create_directories(range_dir_, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("creating ", range_dir_, ": ", ec.message()));
  }
  const std::string tmp = absl::StrCat(options_.data_dir, "/cluster-tmp");
  std::filesystem::remove_all(tmp, ec);
  std::filesystem::create_directories(tmp, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("creating ", tmp, ": ", ec.message()));
  }
  repl_service_ = std::make_unique<replication::ReplicationService>(
      replication::ReplicationService::Options{
          .checkpoint_dir = tmp, .disk_space = options_.disk_space});
  cluster_service_ = std::make_unique<ClusterService>(this);
  forwarding_ = std::make_unique<ForwardingService>(ForwardingService::Options{
      .node_id = options_.node_id,
      .forward = options_.forward,
      .route = [this] { return Route(); },
      .range_map = [this] { return RangeMapBytes(); },
      .credentials = PeerCredentials()});
  if (absl::Status s = OpenDb(); !s.ok()) return s;
  absl::Status started = role_ == Role::kPrimary ? StartPrimary(range)
                                                 : StartReplica(range);
  if (!started.ok()) return started;
  // A primary serves clients only after WaitForReplicas (main calls it
  // while its port serves the Replication service).
  epoch_.store(range.epoch);
  spdlog::info("cluster: node {} is {} of range {} at epoch {} (replicas "
               "{}, in sync {})",
               options_.node_id,
               role_ == Role::kPrimary ? "the primary" : "a replica", range.id,
               range.epoch, absl::StrJoin(range.replicas, ","),
               absl::StrJoin(range.in_sync, ","));
  maintenance_ = std::thread([this] { Maintain(); });
  // A change between the watch's first read and now (OnMap ignores maps
  // until the role is set up) is caught by the next event or here.
  OnMap(*watch_->current());
  return absl::OkStatus();
}

absl::Status ClusterNode::WaitForReplicas() {
  storage::Revision current;
  {
    absl::MutexLock lock(&db_mu_);
    current = db_->CurrentRevision();
  }
  absl::Notification done;
  absl::Status result;
  source_->WaitReplicated(current,
                          absl::Now() + options_.replication_timeout,
                          [&](absl::Status s) {
                            result = s;
                            done.Notify();
                          });
  done.WaitForNotification();
  if (result.ok()) return result;
  return absl::UnavailableError(absl::StrCat(
      "as the new primary of range ", kRange,
      ": the in-sync replicas did not acknowledge revision ", current,
      " within --replication_timeout: ", result.message()));
}

absl::Status ClusterNode::OpenDb() {
  // A crash during a re-sync's directory swap may have left db.replaced
  // (and perhaps no db/): put the right database in place first.
  if (absl::Status s = replication::RecoverReplaceDirectory(db_dir_);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::unique_ptr<storage::DB>> db =
      storage::DB::Open(RangeDbOptions(options_.engine), db_dir_);
  if (!db.ok()) return db.status();
  absl::MutexLock lock(&db_mu_);
  db_ = *std::move(db);
  return absl::OkStatus();
}

absl::Status ClusterNode::StartPrimary(const RangeDescriptor& range) {
  storage::DB* db;
  {
    absl::MutexLock lock(&db_mu_);
    db = db_.get();
  }
  // The epoch history: the one this node's epoch file holds (as a replica
  // it adopted its primaries'), extended by this epoch unless a restart at
  // the same epoch already did.
  const std::string epoch_path =
      absl::StrCat(range_dir_, "/", replication::kEpochFileName);
  replication::EpochFileContents contents;
  contents.range_id = kRange;
  absl::StatusOr<replication::EpochFileContents> read =
      replication::ReadEpochFile(epoch_path);
  if (read.ok()) {
    contents = *read;
  } else if (!absl::IsNotFound(read.status())) {
    return read.status();
  }
  if (contents.highest_epoch > range.epoch) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the range map makes this node primary at epoch ", range.epoch,
        " but it has seen epoch ", contents.highest_epoch,
        " (the map it read is stale)"));
  }
  if (contents.history.empty() ||
      contents.history.back().epoch < range.epoch) {
    absl::StatusOr<replication::EpochHistory> extended =
        replication::ExtendEpochHistory(contents.history, range.epoch,
                                        db->CurrentRevision());
    if (!extended.ok()) return extended.status();
    contents.history = *std::move(extended);
  }
  contents.highest_epoch = range.epoch;
  if (absl::Status s = replication::WriteEpochFile(epoch_path, contents);
      !s.ok()) {
    return s;
  }

  replication::ReplicationSource::Options so;
  so.range_id = kRange;
  so.epoch = range.epoch;
  so.history = contents.history;
  so.self = options_.node_id;
  so.lag_timeout = options_.lag_timeout;
  for (const NodeId& r : range.replicas) {
    if (r == options_.node_id) continue;
    so.replicas.push_back(
        {r, grpc::CreateChannel(AddressOf(r), PeerCredentials())});
  }
  so.on_lagging = [this](const NodeId& replica, absl::Duration lag) {
    spdlog::warn("cluster: in-sync replica {} lags by {}", replica,
                 absl::FormatDuration(lag));
    absl::MutexLock lock(&mu_);
    if (!Contains(lagging_, replica)) lagging_.push_back(replica);
  };
  // On a shipper thread, possibly before replicated_db_ is set (the
  // source's threads start in Create) or while Stop tears down: RoleChange
  // reaches the ReplicatedDB only through fence_target_, under mu_.
  so.on_superseded = [this](const absl::Status& why) {
    RoleChange(absl::StrCat("a replica refused this primary's epoch: ",
                            why.ToString()));
  };
  absl::StatusOr<std::unique_ptr<replication::ReplicationSource>> source =
      replication::ReplicationSource::Create(db, std::move(so));
  if (!source.ok()) return source.status();
  source_ = *std::move(source);
  {
    absl::MutexLock lock(&mu_);
    in_sync_ = range.in_sync;
  }
  source_->SetInSync(range.in_sync);

  ReplicatedDB::Options ro;
  ro.replication_timeout = options_.replication_timeout;
  ro.min_in_sync = config_.min_in_sync;
  ro.lag_timeout = options_.lag_timeout;
  LeaseKeeper* keeper = keeper_.get();
  ro.lease_deadline = [keeper] { return keeper->alive_until(); };
  ro.range_id = kRange;
  ro.epoch = range.epoch;
  // Installs itself as the database's commit listener, so the source hears
  // every commit from here on.
  replicated_db_ = std::make_unique<ReplicatedDB>(db, source_.get(), ro);
  {
    absl::MutexLock lock(&mu_);
    fence_target_ = replicated_db_.get();
  }

  auto cs = std::make_shared<replication::CheckpointSource>();
  cs->db = db;
  cs->epoch = range.epoch;
  cs->history = contents.history;
  repl_service_->AddPrimary(kRange, std::move(cs));
  return absl::OkStatus();
}

absl::Status ClusterNode::StartReplica(const RangeDescriptor&) {
  replication::ReplicaSink::Options o;
  o.range_id = kRange;
  o.range_dir = range_dir_;
  o.connect = [this](const NodeId& id)
      -> std::unique_ptr<v1::Replication::StubInterface> {
    return v1::Replication::NewStub(
        grpc::CreateChannel(AddressOf(id), PeerCredentials()));
  };
  o.swap = [this](const std::string& checkpoint)
      -> replication::ReplicaSink::SwapResult {
    absl::MutexLock lock(&db_mu_);
    db_.reset();
    // If the move fails, the old database is still there: reopen it and
    // hand the sink that (new) object with the move's error.
    const absl::Status moved =
        replication::ReplaceDirectory(checkpoint, db_dir_);
    absl::StatusOr<std::unique_ptr<storage::DB>> db =
        storage::DB::Open(RangeDbOptions(options_.engine), db_dir_);
    if (db.ok()) db_ = *std::move(db);
    if (!moved.ok()) return {moved, db_.get()};
    if (!db.ok()) return {db.status(), nullptr};
    spdlog::info("cluster: re-synced range {} from a checkpoint", kRange);
    return {absl::OkStatus(), db_.get()};
  };
  storage::DB* db;
  {
    absl::MutexLock lock(&db_mu_);
    db = db_.get();
  }
  absl::StatusOr<std::unique_ptr<replication::ReplicaSink>> sink =
      replication::ReplicaSink::Open(db, std::move(o));
  if (!sink.ok()) return sink.status();
  sink_ = *std::move(sink);
  repl_service_->AddReplica(kRange, sink_);
  return absl::OkStatus();
}

ClusterNode::~ClusterNode() { Stop(); }

void ClusterNode::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (!stop_.HasBeenNotified()) stop_.Notify();
  // Fencing first also ends a maintenance pass waiting on the source.
  if (replicated_db_ != nullptr) {
    replicated_db_->Fence(absl::UnavailableError("the node is shutting down"));
  }
  // Every thread that may call RoleChange or touch the source ends before
  // the objects they use go: maintenance, the map watch (OnMap), the
  // controller, the lease keeper (on_lost), and then the source's own
  // shipper and notifier threads (on_superseded, on_lagging, the
  // ReplicatedDB's delivery callbacks), joined by its destructor.
  if (maintenance_.joinable()) maintenance_.join();
  if (watch_ != nullptr) watch_->Stop();
  if (controller_ != nullptr) controller_->Stop();
  if (keeper_ != nullptr) keeper_->Stop();
  if (repl_service_ != nullptr) {
    repl_service_->RemovePrimary(kRange);
    repl_service_->RemoveReplica(kRange);
  }
  // The source must no longer hear commits before it goes; the
  // ReplicatedDB it may still call back goes after it.
  if (replicated_db_ != nullptr) replicated_db_->Detach();
  source_.reset();
  {
    absl::MutexLock lock(&mu_);
    fence_target_ = nullptr;
  }
  replicated_db_.reset();
  if (sink_ != nullptr) sink_->Close();
  sink_.reset();
  absl::MutexLock lock(&db_mu_);
  if (db_ != nullptr) {
    if (absl::Status s = db_->SyncWAL(); !s.ok()) {
      spdlog::error("cluster: final WAL sync failed: {}", s.ToString());
    }
    db_.reset();
  }
}

std::shared_ptr<grpc::ChannelCredentials> ClusterNode::PeerCredentials()
    const {
  return options_.peer_credentials != nullptr
             ? options_.peer_credentials
             : grpc::InsecureChannelCredentials();
}

storage::DB* ClusterNode::serving_db() { return replicated_db_.get(); }
std::function<absl::Status()> ClusterNode::write_readiness() {
  ReplicatedDB* const db = replicated_db_.get();
  if (db == nullptr) return nullptr;
  return [db] { return db->PrimaryWriteReadiness(); };
}

std::function<absl::Status()> ClusterNode::replicas_disk_reserve() {
  ReplicatedDB* const db = replicated_db_.get();
  if (db == nullptr) return nullptr;
  return [db] { return db->ReplicaDiskReserve(); };
}

void ClusterNode::ReadDb(absl::FunctionRef<void(storage::DB*)> read) const {
  if (sink_ != nullptr) {
    sink_->ReadDb(read);
    return;
  }
  absl::ReaderMutexLock lock(&db_mu_);
  read(db_.get());
}

std::vector<grpc::Service*> ClusterNode::services() {
  return {repl_service_.get(), cluster_service_.get()};
}

grpc::CallbackGenericService* ClusterNode::not_primary_service() {
  return forwarding_.get();
}

std::string ClusterNode::AddressOf(const NodeId& id) const {
  absl::MutexLock lock(&mu_);
  auto it = members_.find(id);
  return it == members_.end() ? std::string() : it->second;
}

absl::Status ClusterNode::not_primary_status() const {
  return Route().not_primary;
}

ForwardingService::Route ClusterNode::Route() const {
  std::shared_ptr<const RangeMap> map =
      watch_ == nullptr ? nullptr : watch_->current();
  if (map == nullptr || map->ranges().empty()) {
    return {absl::UnavailableError("no range map read from etcd yet"), ""};
  }
  const RangeDescriptor& r = map->ranges().front();
  if (r.primary == options_.node_id) {
    return {absl::UnavailableError(absl::StrCat(
                "this node becomes the primary of range ", r.id, " (epoch ",
                r.epoch, "); retry")),
            ""};
  }
  std::string address = AddressOf(r.primary);
  absl::Status status = absl::FailedPreconditionError(
      absl::StrCat("not the primary of range ", r.id, " (epoch ", r.epoch,
                   "); the primary is ", r.primary, " at ", address));
  return {std::move(status), std::move(address)};
}

// What strata.v1.Cluster/GetRangeMap returns, serialized ("" before the
// first map).
std::string ClusterNode::RangeMapBytes() const {
  std::shared_ptr<const RangeMap> map =
      watch_ == nullptr ? nullptr : watch_->current();
  if (map == nullptr) return "";
  std::map<NodeId, std::string> members;
  {
    absl::MutexLock lock(&mu_);
    members = members_;
  }
  v1::GetRangeMapResponse response;
  FillGetRangeMapResponse(*map, members, {}, &response);
  return response.SerializeAsString();
}

void ClusterNode::RoleChange(const std::string& why) {
  ReplicatedDB* target = nullptr;
  {
    absl::MutexLock lock(&mu_);
    target = fence_target_;
  }
  // Valid outside the lock: Stop clears fence_target_ and destroys the
  // ReplicatedDB only after joining every thread that calls this.
  if (target != nullptr) target->Fence(absl::UnavailableError(why));
  if (role_changed_.exchange(true)) return;
  spdlog::warn("cluster: node {} changes role: {}", options_.node_id, why);
  if (options_.on_role_change) options_.on_role_change(why);
}

void ClusterNode::OnMap(const RangeMap& map) {
  if (epoch_ == 0) return;  // Init has not taken a role yet.
  if (map.ranges().size() != 1) {
    RoleChange(absl::StrCat("the range map now has ", map.ranges().size(),
                            " ranges"));
    return;
  }
  const RangeDescriptor& r = map.ranges().front();
  if (!r.IsReplica(options_.node_id)) {
    RoleChange("this node no longer holds a replica of range 0");
    return;
  }
  if (role_ == Role::kPrimary) {
    if (r.primary != options_.node_id || r.epoch != epoch_) {
      RoleChange(absl::StrCat("range 0 is now at epoch ", r.epoch,
                              " with primary ", r.primary));
      return;
    }
    if (r.replicas != replicas_) {
      RoleChange("the replicas of range 0 changed");
    }
    return;
  }
  if (r.primary == options_.node_id) {
    RoleChange(absl::StrCat("promoted to primary of range 0 at epoch ",
                            r.epoch));
  }
}

void ClusterNode::Maintain() {
  absl::Time next_members = absl::Now() + kMembersRefresh;
  while (!stop_.WaitForNotificationWithTimeout(kMaintainInterval)) {
    if (role_ == Role::kPrimary && !role_changed_.load()) {
      if (absl::Now() >= keeper_->alive_until()) {
        RoleChange("the etcd lease's deadline passed without a renewal");
      } else {
        HandleLagging();
        ReAddCaughtUp();
      }
    }
    if (absl::Now() >= next_members) {
      next_members = absl::Now() + kMembersRefresh;
      absl::StatusOr<std::map<NodeId, std::string>> members =
          store_->ListMembers();
      if (members.ok()) {
        absl::MutexLock lock(&mu_);
        members_ = *std::move(members);
      }
    }
  }
}

// Removes lagging replicas from the in-sync set: etcd first (so the
// controller can no longer promote it), then the source (so writes stop
// waiting for it). Never below config.min_in_sync: writes then wait
// (and time out) rather than be acknowledged by fewer nodes.
void ClusterNode::HandleLagging() {
  std::vector<NodeId> lagging;
  {
    absl::MutexLock lock(&mu_);
    lagging.swap(lagging_);
  }
  for (const NodeId& replica : lagging) {
    std::shared_ptr<const RangeMap> map = watch_->current();
    RangeDescriptor r = map->ranges().front();
    if (r.epoch != epoch_ || r.primary != options_.node_id ||
        !r.IsInSync(replica)) {
      continue;
    }
    if (static_cast<int>(r.in_sync.size()) - 1 < config_.min_in_sync) {
      spdlog::warn(
          "cluster: replica {} lags but removing it would leave fewer than "
          "{} in sync; writes wait for it",
          replica, config_.min_in_sync);
      continue;
    }
    r.in_sync.erase(std::find(r.in_sync.begin(), r.in_sync.end(), replica));
    absl::StatusOr<int64_t> written = store_->UpdateRange(r);
    if (!written.ok()) {
      spdlog::warn("cluster: removing {} from the in-sync set failed: {}",
                   replica, written.status().ToString());
      absl::MutexLock lock(&mu_);
      lagging_.push_back(replica);  // Retry on the next pass.
      continue;
    }
    spdlog::warn("cluster: removed lagging replica {} from the in-sync set",
                 replica);
    absl::MutexLock lock(&mu_);
    in_sync_ = r.in_sync;
    source_->SetInSync(in_sync_);
  }
}

// Adds a replica that has caught up back to the in-sync set: the source
// first (writes from now on wait for it), then, once the watermark covers
// everything committed before that (so it holds every acknowledged write),
// etcd (from then on it may be promoted).
void ClusterNode::ReAddCaughtUp() {
  const replication::ReplicationSource::Stats stats = source_->GetStats();
  for (const replication::ReplicationSource::ReplicaStats& rs :
       stats.replicas) {
    std::vector<NodeId> in_sync;
    {
      absl::MutexLock lock(&mu_);
      in_sync = in_sync_;
    }
    if (Contains(in_sync, rs.id) || !rs.connected ||
        rs.acked_revision < stats.committed_revision) {
      continue;
    }
    in_sync.push_back(rs.id);
    source_->SetInSync(in_sync);
    {
      absl::MutexLock lock(&mu_);
      in_sync_ = in_sync;
    }
    const storage::Revision committed = source_->GetStats().committed_revision;
    absl::Notification replicated;
    absl::Status wait_status;
    source_->WaitReplicated(committed, absl::Now() + options_.lag_timeout,
                            [&](absl::Status s) {
                              wait_status = s;
                              replicated.Notify();
                            });
    replicated.WaitForNotification();
    std::shared_ptr<const RangeMap> map = watch_->current();
    RangeDescriptor r = map->ranges().front();
    bool written = false;
    if (wait_status.ok() && r.epoch == epoch_ &&
        r.primary == options_.node_id && r.IsReplica(rs.id)) {
      if (!r.IsInSync(rs.id)) {
        r.in_sync.push_back(rs.id);
        absl::StatusOr<int64_t> w = store_->UpdateRange(r);
        written = w.ok();
        if (!w.ok()) {
          spdlog::warn("cluster: adding {} to the in-sync set failed: {}",
                       rs.id, w.status().ToString());
        }
      } else {
        written = true;
      }
    }
    if (written) {
      spdlog::info("cluster: replica {} caught up; back in the in-sync set",
                   rs.id);
    } else {
      // Not in etcd's set: the source need not wait for it.
      in_sync.pop_back();
      source_->SetInSync(in_sync);
      absl::MutexLock lock(&mu_);
      in_sync_ = in_sync;
    }
  }
}

bool ClusterNode::FillReplication(v1::RangeReplication* out) const {
  if (role_ != Role::kPrimary || source_ == nullptr) return false;
  const replication::ReplicationSource::Stats s = source_->GetStats();
  out->set_range_id(kRange);
  out->set_epoch(epoch_.load());
  out->set_primary(options_.node_id);
  out->set_committed_revision(static_cast<int64_t>(s.committed_revision));
  out->set_replicated_revision(static_cast<int64_t>(s.replicated_revision));
  for (const replication::ReplicationSource::ReplicaStats& r : s.replicas) {
    v1::ReplicaProgress* p = out->add_replicas();
    p->set_id(r.id);
    p->set_connected(r.connected);
    p->set_in_sync(r.in_sync);
    p->set_acked_revision(static_cast<int64_t>(r.acked_revision));
    p->set_lag_revisions(r.lag_revisions);
    p->set_lag_seconds(r.lag_seconds);
    p->set_disk_known(r.disk_known);
    p->set_disk_free_bytes(r.disk_free_bytes);
    p->set_disk_min_free_bytes(r.disk_min_free_bytes);
  }
  return true;
}

ClusterNode::Stats ClusterNode::GetStats() const {
  Stats out;
  out.primary = role_ == Role::kPrimary;
  out.epoch = epoch_;
  if (controller_ != nullptr) out.controller = controller_->stats();
  if (source_ != nullptr) {
    const replication::ReplicationSource::Stats s = source_->GetStats();
    out.in_sync_size = s.in_sync_size;
    out.fenced = s.fenced;
    for (const auto& r : s.replicas) {
      if (!r.in_sync) continue;
      out.lag_revisions = std::max(out.lag_revisions, r.lag_revisions);
      out.lag_seconds = std::max(out.lag_seconds, r.lag_seconds);
    }
  }
  if (replicated_db_ != nullptr) {
    out.fenced_writes = replicated_db_->fenced_writes();
  }
  return out;
}

}  // namespace strata::cluster
