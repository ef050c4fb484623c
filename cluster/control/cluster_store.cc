#include "cluster/control/cluster_store.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cluster/control/strings.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace strata::cluster {
namespace {

using Json = nlohmann::json;

// etcd's default --max-txn-ops.
constexpr size_t kMaxTxnOps = 128;
constexpr int kConfigFormatVersion = 1;

std::string EncodeConfig(const ClusterConfig& c) {
  Json j = Json::object();
  j["format"] = kConfigFormatVersion;
  j["replication_factor"] = c.replication_factor;
  j["min_in_sync"] = c.min_in_sync;
  return j.dump();
}

absl::StatusOr<ClusterConfig> DecodeConfig(std::string_view key,
                                           std::string_view json) {
  const Json j = Json::parse(json.begin(), json.end(), nullptr, false);
  auto bad = [key](std::string_view what) {
    return absl::DataLossError(absl::StrCat("config key ", Sv(key), ": ", Sv(what)));
  };
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object");
  if (j.size() != 3 || !j.contains("format") ||
      !j.contains("replication_factor") || !j.contains("min_in_sync")) {
    return bad("want exactly format, replication_factor, min_in_sync");
  }
  if (!j["format"].is_number_integer() ||
      j["format"].get<int64_t>() != kConfigFormatVersion) {
    return bad(absl::StrCat("format ", j["format"].dump(),
                            " (this build reads format ",
                            kConfigFormatVersion, ")"));
  }
  if (!j["replication_factor"].is_number_unsigned() ||
      !j["min_in_sync"].is_number_unsigned()) {
    return bad("replication_factor and min_in_sync must be counts");
  }
  ClusterConfig c;
  c.replication_factor = j["replication_factor"].get<int>();
  c.min_in_sync = j["min_in_sync"].get<int>();
  if (c.replication_factor < 1 || c.min_in_sync < 1 ||
      c.min_in_sync > c.replication_factor) {
    return bad("want 1 <= min_in_sync <= replication_factor");
  }
  return c;
}

// The last path element of `key` after `prefix`.
std::string_view Suffix(std::string_view key, std::string_view prefix) {
  return key.substr(prefix.size());
}

}  // namespace

absl::StatusOr<std::vector<RangeDescriptor>> PlanInitialRanges(
    const InitOptions& o) {
  const ClusterConfig& c = o.config;
  if (c.replication_factor < 1 || c.min_in_sync < 1 ||
      c.min_in_sync > c.replication_factor) {
    return absl::InvalidArgumentError(
        "want 1 <= min_in_sync <= replication_factor");
  }
  const size_t rf = static_cast<size_t>(c.replication_factor);
  if (o.members.size() < rf) {
    return absl::InvalidArgumentError(
        absl::StrCat(o.members.size(), " members cannot hold ",
                     c.replication_factor, " replicas per range"));
  }
  std::set<std::string_view> ids;
  for (const Member& m : o.members) {
    if (!IsValidNodeId(m.id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid node id \"", m.id, "\" (want [a-z0-9-]{1,63})"));
    }
    if (m.address.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("member ", m.id, " has no address"));
    }
    if (!ids.insert(m.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("member ", m.id, " listed twice"));
    }
  }
  std::vector<std::string> splits = o.split_keys;
  if (splits.empty()) {
    if (o.num_ranges < 1 || o.num_ranges > 65536) {
      return absl::InvalidArgumentError("want 1 <= num_ranges <= 65536");
    }
    splits = EqualSplitKeys(o.num_ranges);
  }
  for (size_t i = 0; i < splits.size(); ++i) {
    if (splits[i].empty() || (i > 0 && !(splits[i - 1] < splits[i]))) {
      return absl::InvalidArgumentError(
          "split keys must be non-empty and strictly ascending");
    }
  }
  std::vector<RangeDescriptor> ranges;
  for (size_t i = 0; i <= splits.size(); ++i) {
    RangeDescriptor r;
    r.id = static_cast<RangeId>(i);
    r.start = i == 0 ? "" : splits[i - 1];
    r.end = i == splits.size() ? "" : splits[i];
    r.epoch = 1;
    for (size_t j = 0; j < rf; ++j) {
      r.replicas.push_back(o.members[(i + j) % o.members.size()].id);
    }
    r.primary = r.replicas.front();
    r.in_sync = r.replicas;
    ranges.push_back(std::move(r));
  }
  return ranges;
}

ClusterStore::ClusterStore(EtcdClient* client, std::string prefix)
    : client_(client), prefix_(std::move(prefix)) {}

std::string ClusterStore::ConfigKey() const {
  return absl::StrCat(prefix_, "config");
}
std::string ClusterStore::MembersPrefix() const {
  return absl::StrCat(prefix_, "members/");
}
std::string ClusterStore::MemberKey(std::string_view id) const {
  return absl::StrCat(MembersPrefix(), Sv(id));
}
std::string ClusterStore::NodesPrefix() const {
  return absl::StrCat(prefix_, "nodes/");
}
std::string ClusterStore::NodeKey(std::string_view id) const {
  return absl::StrCat(NodesPrefix(), Sv(id));
}
std::string ClusterStore::RangesPrefix() const {
  return absl::StrCat(prefix_, "ranges/");
}
std::string ClusterStore::RangeKey(RangeId id) const {
  return absl::StrCat(RangesPrefix(), id);
}
std::string ClusterStore::ControllerKey() const {
  return absl::StrCat(prefix_, "controller");
}

absl::Status ClusterStore::InitCluster(const InitOptions& options) {
  ASSIGN_OR_RETURN(const std::vector<RangeDescriptor> ranges,
                   PlanInitialRanges(options));
  if (ranges.size() + options.members.size() + 1 > kMaxTxnOps) {
    return absl::InvalidArgumentError(absl::StrCat(
        ranges.size(), " ranges and ", options.members.size(),
        " members do not fit one etcd Txn (at most ", kMaxTxnOps - 1,
        " together)"));
  }
  TxnRequest txn;
  txn.compares.push_back(Compare::Absent(ConfigKey()));
  txn.success.push_back(TxnOp::Put(ConfigKey(), EncodeConfig(options.config)));
  for (const Member& m : options.members) {
    txn.success.push_back(TxnOp::Put(MemberKey(m.id), m.address));
  }
  for (const RangeDescriptor& r : ranges) {
    txn.success.push_back(TxnOp::Put(RangeKey(r.id), EncodeRange(r)));
  }
  ASSIGN_OR_RETURN(const TxnResult result, client_->Txn(txn));
  if (!result.succeeded) {
    return absl::AlreadyExistsError(absl::StrCat(
        "cluster under prefix \"", prefix_, "\" is already initialized"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ClusterConfig> ClusterStore::ReadConfig() {
  ASSIGN_OR_RETURN(const std::optional<KeyValue> kv, client_->Get(ConfigKey()));
  if (!kv.has_value()) {
    return absl::NotFoundError(absl::StrCat(
        "no cluster under prefix \"", prefix_, "\" (not initialized)"));
  }
  return DecodeConfig(kv->key, kv->value);
}

absl::StatusOr<RangeMap> ClusterStore::ReadRangeMap() {
  const std::string prefix = RangesPrefix();
  ASSIGN_OR_RETURN(const RangeResult result, client_->GetPrefix(prefix));
  if (result.kvs.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no ranges under \"", prefix, "\" (cluster not initialized)"));
  }
  std::vector<RangeDescriptor> ranges;
  for (const KeyValue& kv : result.kvs) {
    ASSIGN_OR_RETURN(RangeDescriptor r, DecodeRange(kv.key, kv.value));
    uint32_t id = 0;
    const std::string_view suffix = Suffix(kv.key, prefix);
    if (!absl::SimpleAtoi(absl::string_view(suffix.data(), suffix.size()),
                          &id) ||
        id != r.id || RangeKey(id) != kv.key) {
      return absl::DataLossError(absl::StrCat(
          "range key ", kv.key, ": holds range id ", r.id));
    }
    r.mod_revision = kv.mod_revision;
    ranges.push_back(std::move(r));
  }
  absl::StatusOr<RangeMap> map =
      RangeMap::Create(std::move(ranges), result.revision);
  if (!map.ok()) {
    return absl::DataLossError(absl::StrCat("ranges under ", prefix,
                                            " at revision ", result.revision,
                                            ": ", map.status().message()));
  }
  return map;
}

absl::StatusOr<int64_t> ClusterStore::UpdateRange(
    const RangeDescriptor& updated, const std::vector<Compare>& guards) {
  RETURN_IF_ERROR(ValidateRange(updated));
  if (updated.mod_revision == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "range ", updated.id, ": no mod_revision to compare (read it first)"));
  }
  const std::string key = RangeKey(updated.id);
  TxnRequest txn;
  txn.compares.push_back(Compare::ModRevisionIs(key, updated.mod_revision));
  for (const Compare& g : guards) txn.compares.push_back(g);
  txn.success.push_back(TxnOp::Put(key, EncodeRange(updated)));
  ASSIGN_OR_RETURN(const TxnResult result, client_->Txn(txn));
  if (!result.succeeded) {
    return absl::AbortedError(absl::StrCat(
        "range ", updated.id, " changed since mod_revision ",
        updated.mod_revision, " or a guard failed: re-read and retry"));
  }
  return result.revision;
}

absl::Status ClusterStore::RegisterNode(const Member& node, int64_t lease_id) {
  if (!IsValidNodeId(node.id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid node id \"", node.id, "\""));
  }
  return client_->Put(NodeKey(node.id), node.address, lease_id).status();
}

absl::StatusOr<std::map<NodeId, std::string>> ClusterStore::ListAddresses(
    const std::string& prefix) {
  ASSIGN_OR_RETURN(const RangeResult result, client_->GetPrefix(prefix));
  std::map<NodeId, std::string> out;
  for (const KeyValue& kv : result.kvs) {
    out.emplace(std::string(Suffix(kv.key, prefix)), kv.value);
  }
  return out;
}

absl::StatusOr<std::map<NodeId, std::string>> ClusterStore::ListLiveNodes() {
  return ListAddresses(NodesPrefix());
}

absl::Status ClusterStore::AddMember(const Member& member) {
  if (!IsValidNodeId(member.id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid node id \"", member.id, "\""));
  }
  if (member.address.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("member ", member.id, " has no address"));
  }
  return client_->Put(MemberKey(member.id), member.address).status();
}

absl::Status ClusterStore::RemoveMember(std::string_view id) {
  ASSIGN_OR_RETURN(const int64_t deleted, client_->Delete(MemberKey(id)));
  if (deleted == 0) {
    return absl::NotFoundError(absl::StrCat("no member ", Sv(id)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<NodeId, std::string>> ClusterStore::ListMembers() {
  return ListAddresses(MembersPrefix());
}

absl::StatusOr<KeyValue> ClusterStore::Controller() {
  ASSIGN_OR_RETURN(const std::optional<KeyValue> kv,
                   client_->Get(ControllerKey()));
  if (!kv.has_value()) return absl::NotFoundError("no controller");
  return *kv;
}

RangeMapWatch::RangeMapWatch(ClusterStore* store, ChangeCallback on_change)
    : store_(store), on_change_(std::move(on_change)) {}

RangeMapWatch::~RangeMapWatch() { Stop(); }

absl::Status RangeMapWatch::Start() {
  Stop();
  ASSIGN_OR_RETURN(RangeMap map, store_->ReadRangeMap());
  const int64_t revision = map.revision();
  {
    absl::MutexLock lock(&mu_);
    map_ = std::make_shared<const RangeMap>(std::move(map));
    last_error_ = absl::OkStatus();
    stopping_ = false;
  }
  watcher_ = std::make_unique<Watcher>(
      store_->client(), store_->RangesPrefix(), revision + 1,
      [this](const WatchEvent& e) { OnEvent(e); },
      // Compacted history: the events in the gap are gone, but the map is
      // all state there is, so reading it again is a complete catch-up.
      [this]() { return Refresh(); });
  return absl::OkStatus();
}

void RangeMapWatch::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (watcher_ != nullptr) {
    watcher_->Stop();
    watcher_.reset();
  }
}

std::shared_ptr<const RangeMap> RangeMapWatch::current() const {
  absl::MutexLock lock(&mu_);
  return map_;
}

absl::Status RangeMapWatch::last_error() const {
  absl::MutexLock lock(&mu_);
  return last_error_;
}

int64_t RangeMapWatch::resyncs() const {
  // watcher_ is replaced only by Start/Stop, on the owner's thread.
  return watcher_ == nullptr ? 0 : watcher_->resyncs();
}

absl::StatusOr<int64_t> RangeMapWatch::Refresh() {
  absl::StatusOr<RangeMap> map = store_->ReadRangeMap();
  std::shared_ptr<const RangeMap> published;
  int64_t revision = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!map.ok()) {
      last_error_ = map.status();
      return map.status();
    }
    last_error_ = absl::OkStatus();
    revision = map->revision();
    if (map_ == nullptr || map->revision() > map_->revision()) {
      map_ = std::make_shared<const RangeMap>(*std::move(map));
      published = map_;
    }
  }
  if (published != nullptr && on_change_) on_change_(*published);
  return revision;
}

void RangeMapWatch::OnEvent(const WatchEvent& event) {
  {
    absl::MutexLock lock(&mu_);
    if (map_ != nullptr && event.kv.mod_revision <= map_->revision()) return;
  }
  // A failed re-read must not leave the map stale until the next change
  // (there may be none for hours): retry until it works or Stop().
  absl::Duration backoff = absl::Milliseconds(20);
  while (!Refresh().ok()) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
    if (stopping_) return;
    backoff = std::min(backoff * 2, absl::Duration(absl::Seconds(1)));
  }
}

bool RangeMapWatch::WaitFor(const std::function<bool(const RangeMap&)>& pred,
                            absl::Time deadline) {
  struct Ctx {
    RangeMapWatch* self;
    const std::function<bool(const RangeMap&)>* pred;
  } ctx{this, &pred};
  const absl::Condition holds(
      +[](Ctx* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return c->self->map_ != nullptr && (*c->pred)(*c->self->map_);
      },
      &ctx);
  const bool held = mu_.LockWhenWithDeadline(holds, deadline);
  mu_.Unlock();
  return held;
}

}  // namespace strata::cluster
