#include "cluster/control/controller.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace strata::cluster {
namespace {

// The first replica, in list order, that is in sync, live and not `not_this`.
std::optional<NodeId> PickPrimary(const RangeDescriptor& r,
                                  const std::set<NodeId>& live,
                                  const NodeId& not_this) {
  for (const NodeId& n : r.replicas) {
    if (n != not_this && r.IsInSync(n) && live.contains(n)) return n;
  }
  return std::nullopt;
}

void Erase(std::vector<NodeId>* v, const NodeId& n) {
  v->erase(std::remove(v->begin(), v->end(), n), v->end());
}

std::set<NodeId> Keys(const std::map<NodeId, std::string>& m) {
  std::set<NodeId> out;
  for (const auto& [k, v] : m) out.insert(k);
  return out;
}

// The new primary's liveness key still exists when the Txn commits.
Compare PrimaryIsLive(const ClusterStore& store, const NodeId& primary) {
  return Compare::Exists(store.NodeKey(primary));
}

// Writes each update of `plan`; true if all won, false if one lost a race
// (Aborted). Other errors are returned. With `primaries_live`, each write
// also requires its range's primary to be live (a primary change).
absl::StatusOr<bool> Apply(ClusterStore& store, const RangePlan& plan,
                           bool primaries_live = false) {
  for (const RangeDescriptor& r : plan.updates) {
    std::vector<Compare> guards;
    if (primaries_live) guards.push_back(PrimaryIsLive(store, r.primary));
    absl::StatusOr<int64_t> rev = store.UpdateRange(r, guards);
    if (absl::IsAborted(rev.status())) return false;
    if (!rev.ok()) return rev.status();
  }
  return true;
}

absl::Status TooManyRaces(const std::string& what) {
  return absl::AbortedError(absl::StrCat(
      what, ": the range map kept changing (", kOperatorAttempts,
      " attempts); try again"));
}

}  // namespace

RangePlan PlanFailover(const RangeMap& map, const std::set<NodeId>& live,
                       const std::set<NodeId>& spared) {
  RangePlan plan;
  for (const RangeDescriptor& r : map.ranges()) {
    if (live.contains(r.primary) || spared.contains(r.primary)) continue;
    const std::optional<NodeId> next = PickPrimary(r, live, r.primary);
    if (!next.has_value()) {
      plan.stuck.push_back(r.id);
      continue;
    }
    RangeDescriptor u = r;
    Erase(&u.in_sync, r.primary);
    u.primary = *next;
    u.epoch = r.epoch + 1;
    plan.updates.push_back(std::move(u));
  }
  return plan;
}

RangePlan PlanDrain(const RangeMap& map, const NodeId& node,
                    const std::set<NodeId>& live) {
  RangePlan plan;
  for (const RangeDescriptor& r : map.ranges()) {
    if (r.primary != node) continue;
    const std::optional<NodeId> next = PickPrimary(r, live, node);
    if (!next.has_value()) {
      plan.stuck.push_back(r.id);
      continue;
    }
    RangeDescriptor u = r;
    u.primary = *next;
    u.epoch = r.epoch + 1;
    plan.updates.push_back(std::move(u));
  }
  return plan;
}

absl::StatusOr<RangePlan> PlanRemoveMember(const RangeMap& map,
                                           const NodeId& node,
                                           const ClusterConfig& config) {
  RangePlan plan;
  for (const RangeDescriptor& r : map.ranges()) {
    if (!r.IsReplica(node)) continue;
    if (r.primary == node) {
      return absl::FailedPreconditionError(absl::StrCat(
          node, " is the primary of range ", r.id, ": drain it first"));
    }
    if (r.IsInSync(node) &&
        static_cast<int>(r.in_sync.size()) - 1 < config.min_in_sync) {
      return absl::FailedPreconditionError(absl::StrCat(
          "removing ", node, " would leave range ", r.id, " with ",
          r.in_sync.size() - 1, " in-sync replicas (min_in_sync ",
          config.min_in_sync, "); add a member and let it catch up first"));
    }
    RangeDescriptor u = r;
    Erase(&u.replicas, node);
    Erase(&u.in_sync, node);
    plan.updates.push_back(std::move(u));
  }
  return plan;
}

RangePlan PlanAddMember(const RangeMap& map, const NodeId& node,
                        const ClusterConfig& config) {
  RangePlan plan;
  for (const RangeDescriptor& r : map.ranges()) {
    if (r.IsReplica(node) ||
        static_cast<int>(r.replicas.size()) >= config.replication_factor) {
      continue;
    }
    RangeDescriptor u = r;
    u.replicas.push_back(node);
    plan.updates.push_back(std::move(u));
  }
  return plan;
}

absl::StatusOr<DrainResult> Drain(ClusterStore& store, const NodeId& node) {
  for (int attempt = 0; attempt < kOperatorAttempts; ++attempt) {
    ASSIGN_OR_RETURN(const RangeMap map, store.ReadRangeMap());
    ASSIGN_OR_RETURN(const auto live, store.ListLiveNodes());
    const RangePlan plan = PlanDrain(map, node, Keys(live));
    ASSIGN_OR_RETURN(const bool won,
                     Apply(store, plan, /*primaries_live=*/true));
    if (!won) continue;
    DrainResult result;
    for (const RangeDescriptor& r : plan.updates) result.moved.push_back(r.id);
    result.stuck = plan.stuck;
    return result;
  }
  return TooManyRaces(absl::StrCat("drain ", node));
}

absl::StatusOr<std::vector<RangeId>> AddMember(ClusterStore& store,
                                               const Member& member) {
  RETURN_IF_ERROR(store.AddMember(member));
  for (int attempt = 0; attempt < kOperatorAttempts; ++attempt) {
    ASSIGN_OR_RETURN(const ClusterConfig config, store.ReadConfig());
    ASSIGN_OR_RETURN(const RangeMap map, store.ReadRangeMap());
    const RangePlan plan = PlanAddMember(map, member.id, config);
    ASSIGN_OR_RETURN(const bool won, Apply(store, plan));
    if (!won) continue;
    std::vector<RangeId> placed;
    for (const RangeDescriptor& r : plan.updates) placed.push_back(r.id);
    return placed;
  }
  return TooManyRaces(absl::StrCat("add member ", member.id));
}

absl::Status RemoveMember(ClusterStore& store, const NodeId& node) {
  for (int attempt = 0; attempt < kOperatorAttempts; ++attempt) {
    ASSIGN_OR_RETURN(const ClusterConfig config, store.ReadConfig());
    ASSIGN_OR_RETURN(const RangeMap map, store.ReadRangeMap());
    ASSIGN_OR_RETURN(const RangePlan plan, PlanRemoveMember(map, node, config));
    ASSIGN_OR_RETURN(const bool won, Apply(store, plan));
    if (!won) continue;
    absl::Status removed = store.RemoveMember(node);
    if (absl::IsNotFound(removed) && !plan.updates.empty()) {
      return absl::OkStatus();  // Held replicas but was not recorded.
    }
    return removed;
  }
  return TooManyRaces(absl::StrCat("remove member ", node));
}

Controller::Controller(ClusterStore* store, NodeId self, int64_t lease_id,
                       ControllerOptions options)
    : store_(store),
      self_(std::move(self)),
      lease_id_(lease_id),
      options_(options) {}

Controller::~Controller() { Stop(); }

void Controller::Start() {
  if (thread_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    started_ = absl::Now();
  }
  watcher_ = std::make_unique<Watcher>(
      store_->client(), store_->prefix(), /*start_revision=*/0,
      [this](const WatchEvent& e) { OnWatchEvent(e); },
      [this]() { return ResyncWatch(); });
  thread_ = std::thread([this] { Run(); });
}

void Controller::OnWatchEvent(const WatchEvent& e) {
  const std::string nodes = store_->NodesPrefix();
  absl::MutexLock lock(&mu_);
  ++changes_;
  if (e.type == WatchEvent::Type::kPut && e.kv.key.starts_with(nodes)) {
    seen_live_.insert(e.kv.key.substr(nodes.size()));
  }
}

absl::StatusOr<int64_t> Controller::ResyncWatch() {
  const std::string nodes = store_->NodesPrefix();
  absl::StatusOr<RangeResult> live = store_->client()->GetPrefix(nodes);
  if (!live.ok()) {
    spdlog::warn("controller {}: re-reading live nodes after a compacted "
                 "watch failed (retrying): {}",
                 self_, live.status().ToString());
    return live.status();
  }
  spdlog::info("controller {}: watch history compacted; re-synced at etcd "
               "revision {}",
               self_, live->revision);
  absl::MutexLock lock(&mu_);
  for (const KeyValue& kv : live->kvs) {
    seen_live_.insert(kv.key.substr(nodes.size()));
  }
  ++stats_.watch_resyncs;
  ++changes_;  // The missed events may need a reconcile.
  return live->revision;
}

void Controller::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  if (watcher_ != nullptr) {
    watcher_->Stop();
    watcher_.reset();
  }
}

int64_t Controller::term() const {
  absl::MutexLock lock(&mu_);
  return term_;
}

ControllerStats Controller::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void Controller::WaitForChange(int64_t seen, absl::Duration timeout) {
  struct Ctx {
    Controller* self;
    int64_t seen;
  } ctx{this, seen};
  const absl::Condition changed(
      +[](Ctx* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return c->self->stop_ || c->self->changes_ != c->seen;
      },
      &ctx);
  mu_.LockWhenWithTimeout(changed, timeout);
  mu_.Unlock();
}

void Controller::Run() {
  LeaderElection election(store_->client(), store_->ControllerKey(), self_,
                          lease_id_);
  // The nodes live now (the watch, started first, adds later arrivals).
  if (absl::StatusOr<std::map<NodeId, std::string>> live =
          store_->ListLiveNodes();
      live.ok()) {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, address] : *live) seen_live_.insert(id);
  }
  while (true) {
    int64_t seen = 0;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      seen = changes_;
    }
    absl::StatusOr<int64_t> term =
        election.Campaign(absl::Now() + options_.campaign_slice);
    if (term.ok()) {
      Lead(*term);
      continue;
    }
    if (absl::IsDeadlineExceeded(term.status())) continue;
    if (absl::IsNotFound(term.status())) {
      spdlog::warn("controller {}: lease {} is gone, not campaigning: {}",
                   self_, lease_id_, term.status().ToString());
      return;
    }
    // etcd unreachable or slow: try again after a pause (or a change).
    WaitForChange(seen, options_.campaign_slice);
  }
}

void Controller::Lead(int64_t term) {
  spdlog::info("controller {}: leading, term {}", self_, term);
  {
    absl::MutexLock lock(&mu_);
    term_ = term;
    ++stats_.terms_won;
  }
  while (true) {
    int64_t seen = 0;
    {
      absl::MutexLock lock(&mu_);
      if (stop_) break;
      seen = changes_;
    }
    const absl::Status s = Reconcile(term);
    if (absl::IsFailedPrecondition(s)) {
      spdlog::info("controller {}: no longer leading ({})", self_,
                   std::string(s.message()));
      break;
    }
    // Aborted (a lost race) needs no special case: the winning change came
    // after `seen`, so its watch event ends the wait at once.
    if (!s.ok() && !absl::IsNotFound(s) && !absl::IsAborted(s)) {
      spdlog::warn("controller {}: reconcile failed: {}", self_, s.ToString());
    }
    WaitForChange(seen, options_.reconcile_interval);
  }
  absl::MutexLock lock(&mu_);
  term_ = 0;
}

absl::Status Controller::Reconcile(int64_t term) {
  absl::StatusOr<KeyValue> leader = store_->Controller();
  if (absl::IsNotFound(leader.status())) {
    return absl::FailedPreconditionError("the controller key is gone");
  }
  RETURN_IF_ERROR(leader.status());
  if (leader->create_revision != term || leader->value != self_) {
    return absl::FailedPreconditionError(
        absl::StrCat("controller is ", leader->value, " term ",
                     leader->create_revision));
  }
  // Not initialized yet (NotFound) is not an error worth a warning.
  ASSIGN_OR_RETURN(const RangeMap map, store_->ReadRangeMap());
  ASSIGN_OR_RETURN(const auto live_nodes, store_->ListLiveNodes());
  const std::set<NodeId> live = Keys(live_nodes);
  std::set<NodeId> spared;
  {
    absl::MutexLock lock(&mu_);
    seen_live_.insert(live.begin(), live.end());
    if (absl::Now() < started_ + options_.startup_grace) {
      // Not yet seen is not yet dead: it may still be registering.
      for (const RangeDescriptor& r : map.ranges()) {
        if (!seen_live_.contains(r.primary)) spared.insert(r.primary);
      }
    }
  }
  const RangePlan plan = PlanFailover(map, live, spared);
  {
    absl::MutexLock lock(&mu_);
    ++stats_.reconciles;
    stats_.stranded_ranges = static_cast<int64_t>(plan.stuck.size());
    for (const RangeId id : plan.stuck) {
      const RangeDescriptor* r = map.Find(id);
      if (logged_stranded_.insert({id, r->epoch}).second) {
        spdlog::error(
            "controller {}: range {} has no serving primary: primary {} is "
            "down and no in-sync replica ({}) is live; waiting for one "
            "(an out-of-sync replica is never promoted)",
            self_, id, r->primary, absl::StrJoin(r->in_sync, ","));
      }
    }
  }
  for (const RangeDescriptor& u : plan.updates) {
    const std::vector<Compare> guards = {
        Compare::CreateRevisionIs(store_->ControllerKey(), term),
        PrimaryIsLive(*store_, u.primary)};
    absl::StatusOr<int64_t> rev = store_->UpdateRange(u, guards);
    if (absl::IsAborted(rev.status())) {
      absl::MutexLock lock(&mu_);
      ++stats_.lost_races;
      return rev.status();
    }
    RETURN_IF_ERROR(rev.status());
    const RangeDescriptor* old = map.Find(u.id);
    spdlog::warn("controller {}: range {} failover {} -> {}, epoch {}",
                 self_, u.id, old->primary, u.primary, u.epoch);
    absl::MutexLock lock(&mu_);
    ++stats_.failovers;
  }
  return absl::OkStatus();
}

}  // namespace strata::cluster
