#include "tests/cluster/fault/fault_harness.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cluster/control/range_map.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "strata/v1/cluster.grpc.pb.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/process_util.h"

namespace strata::testing {

using cluster::OpOutcome;
using cluster::Operation;
using cluster::OpType;

int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

constexpr char kRangePrefix[] = "strata/ranges/";

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(d));
}

// "127.0.0.1:PORT" named in a FAILED_PRECONDITION message ("not the
// primary; the primary is 127.0.0.1:41234"), or "".
std::string AddressIn(const std::string& message) {
  static const std::regex re(R"((127\.0\.0\.1|localhost):[0-9]{1,5})");
  std::smatch m;
  return std::regex_search(message, m, re) ? m.str(0) : "";
}

bool Indeterminate(grpc::StatusCode c) {
  // Anything but a definite refusal may have been applied: the request
  // left, and the answer did not say what happened.
  return c != grpc::StatusCode::OK &&
         c != grpc::StatusCode::FAILED_PRECONDITION &&
         c != grpc::StatusCode::INVALID_ARGUMENT;
}

}  // namespace

struct Workload::Conn {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::KV::Stub> kv;
  std::unique_ptr<v1::Cluster::Stub> cluster;
};

// One client thread: its own routing guess, its own log.
class Workload::Client {
 public:
  Client(Workload* w, int id, uint32_t seed) : w_(w), id_(id), rng_(seed) {}

  void Run() {
    std::uniform_int_distribution<int> key_dist(0, w_->options_.keys - 1);
    std::uniform_int_distribution<int> kind(0, 9);
    for (int64_t n = 0; n < w_->options_.max_ops_per_thread &&
                        !w_->stop_.load(std::memory_order_relaxed);
         ++n) {
      const std::string key = absl::StrCat("k", key_dist(rng_));
      const int k = kind(rng_);
      const std::string value = absl::StrCat("c", id_, "-", n);
      if (k < 4) {
        Do(OpType::kWrite, key, value, std::nullopt);
      } else if (k < 7) {
        Do(OpType::kRead, key, "", std::nullopt);
      } else {
        auto it = seen_.find(key);
        Do(OpType::kCas, key, value,
           it == seen_.end() ? std::nullopt : it->second);
      }
    }
  }

  // One operation with routing: redirects (FAILED_PRECONDITION, nothing
  // applied) are followed, a node that is not connected is skipped without
  // sending, and the first real answer (or indeterminate outcome) is
  // logged. Bounded by 40 routing attempts and the workload's stop flag
  // (after which an unsent operation is dropped).
  void Do(OpType type, const std::string& key, const std::string& value,
          std::optional<std::string> expected, bool final_read = false,
          absl::Time give_up = absl::InfiniteFuture()) {
    for (int attempt = 0; attempt < 40; ++attempt) {
      if (!final_read && w_->stop_.load()) return;
      if (absl::Now() > give_up) return;
      Conn& c = *w_->conns_[static_cast<size_t>(target_)];
      if (c.channel->GetState(true) != GRPC_CHANNEL_READY &&
          !c.channel->WaitForConnected(std::chrono::system_clock::now() +
                                       std::chrono::milliseconds(200))) {
        Rotate();  // Not sent: no effect, nothing to log.
        continue;
      }
      LoggedOp lo;
      lo.op.client = id_;
      lo.op.key = key;
      lo.op.type = type;
      if (type == OpType::kCas) lo.op.expected = expected;
      grpc::ClientContext ctx;
      SetDeadline(&ctx, w_->options_.rpc_timeout);
      grpc::Status s;
      lo.op.invoke_ns = MonotonicNs();
      if (type == OpType::kRead) {
        v1::GetRequest req;
        req.set_key(key);
        v1::GetResponse resp;
        s = c.kv->Get(&ctx, req, &resp);
        if (s.ok()) {
          lo.op.value = resp.found() ? std::optional<std::string>(resp.value())
                                     : std::nullopt;
          if (lo.op.value) seen_[key] = lo.op.value;
        }
      } else if (type == OpType::kWrite) {
        v1::PutRequest req;
        req.set_key(key);
        req.set_value(value);
        v1::PutResponse resp;
        lo.op.value = value;
        s = c.kv->Put(&ctx, req, &resp);
        if (s.ok()) seen_[key] = value;
      } else {
        v1::TxnRequest req;
        v1::Compare* cmp = req.add_compare();
        cmp->set_key(key);
        if (expected) {
          cmp->set_target(v1::Compare::VALUE);
          cmp->set_result(v1::Compare::EQUAL);
          cmp->set_value(*expected);
        } else {
          cmp->set_target(v1::Compare::VERSION);
          cmp->set_result(v1::Compare::EQUAL);
          cmp->set_version(0);
        }
        v1::PutRequest* put = req.add_success()->mutable_put();
        put->set_key(key);
        put->set_value(value);
        v1::TxnResponse resp;
        lo.op.value = value;
        s = c.kv->Txn(&ctx, req, &resp);
        if (s.ok()) {
          lo.op.outcome = resp.succeeded() ? OpOutcome::kOk : OpOutcome::kFailed;
          if (resp.succeeded()) seen_[key] = value;
        }
      }
      const int64_t done = MonotonicNs();
      if (s.ok()) {
        lo.op.complete_ns = done;
        lo.node = target_;
        if (type != OpType::kRead && lo.op.outcome == OpOutcome::kOk) {
          w_->acked_writes_.fetch_add(1);
        }
        log_.push_back(std::move(lo));
        return;
      }
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        Redirect(s.error_message());
        continue;
      }
      if (s.error_code() == grpc::StatusCode::UNAVAILABLE &&
          s.error_message().find("becomes the primary") != std::string::npos) {
        // The node refused before doing anything: it is taking over the
        // range (cluster/node: "this node becomes the primary ...; retry").
        // Logging it as indeterminate would be correct but needlessly
        // widen the checker's search.
        continue;
      }
      if (!Indeterminate(s.error_code())) return;  // Definitely not applied.
      if (type != OpType::kRead) {
        lo.op.outcome = OpOutcome::kUnknown;
        lo.op.complete_ns.reset();
        log_.push_back(std::move(lo));
      }
      suspect_until_[target_] = absl::Now() + w_->options_.suspect_for;
      Rotate();
      if (!final_read) return;
    }
  }

  std::vector<LoggedOp> TakeLog() { return std::move(log_); }

 private:
  void Rotate() {
    target_ = (target_ + 1) % static_cast<int>(w_->conns_.size());
  }

  void Redirect(const std::string& message) {
    int next = w_->NodeOf(AddressIn(message));
    if (next < 0) {
      auto p = w_->PrimaryFromRangeMap();
      next = p.ok() ? *p : -1;
    }
    if (next < 0 || next == target_) {
      Rotate();
      return;
    }
    auto it = suspect_until_.find(next);
    if (it != suspect_until_.end() && absl::Now() < it->second) {
      // The redirect names a node that just failed us: the map may still
      // name it. Ask the map; else try another node.
      auto p = w_->PrimaryFromRangeMap();
      if (p.ok() && *p != next) {
        target_ = *p;
      } else {
        Rotate();
      }
      return;
    }
    target_ = next;
  }

  Workload* w_;
  int id_;
  std::mt19937 rng_;
  int target_ = 0;
  std::map<std::string, std::optional<std::string>> seen_;
  std::map<int, absl::Time> suspect_until_;
  std::vector<LoggedOp> log_;
};

Workload::Workload(std::vector<std::string> addresses, WorkloadOptions options)
    : addresses_(std::move(addresses)), options_(options) {
  PinGrpcLibrary();
  for (const std::string& a : addresses_) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // Reconnect soon after a node comes back (the default backoff grows to
    // two minutes).
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    auto conn = std::make_unique<Conn>();
    conn->channel =
        grpc::CreateCustomChannel(a, grpc::InsecureChannelCredentials(), args);
    conn->kv = v1::KV::NewStub(conn->channel);
    conn->cluster = v1::Cluster::NewStub(conn->channel);
    conns_.push_back(std::move(conn));
  }
}

Workload::~Workload() { Stop(); }

void Workload::Start() {
  stop_.store(false);
  for (int t = 0; t < options_.threads; ++t) {
    threads_.emplace_back([this, t] {
      Client c(this, t, static_cast<uint32_t>(MonotonicNs()) + t);
      c.Run();
      std::vector<LoggedOp> log = c.TakeLog();
      std::lock_guard<std::mutex> lock(mu_);
      ops_.insert(ops_.end(), std::make_move_iterator(log.begin()),
                  std::make_move_iterator(log.end()));
    });
  }
}

void Workload::Stop() {
  stop_.store(true);
  for (auto& t : threads_) t.join();
  threads_.clear();
}

std::vector<LoggedOp> Workload::Operations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ops_;
}

int Workload::NodeOf(const std::string& address) const {
  for (size_t i = 0; i < addresses_.size(); ++i) {
    if (addresses_[i] == address) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<int> Workload::PrimaryFromRangeMap() const {
  for (const auto& c : conns_) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, absl::Milliseconds(500));
    v1::GetRangeMapRequest req;
    v1::GetRangeMapResponse resp;
    if (!c->cluster->GetRangeMap(&ctx, req, &resp).ok()) continue;
    for (const v1::Range& r : resp.ranges()) {
      const int n = NodeOf(r.primary_address());
      if (n >= 0) return n;
    }
  }
  return absl::NotFoundError("no node named a primary");
}

absl::StatusOr<std::vector<LoggedOp>> Workload::FinalReads(
    absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  Client c(this, 1000, 1);
  std::vector<LoggedOp> out;
  for (int k = 0; k < options_.keys; ++k) {
    const std::string key = absl::StrCat("k", k);
    while (true) {
      c.Do(OpType::kRead, key, "", std::nullopt, /*final_read=*/true, give_up);
      std::vector<LoggedOp> got = c.TakeLog();
      if (!got.empty()) {
        out.push_back(std::move(got.front()));
        break;
      }
      if (absl::Now() > give_up) {
        return absl::DeadlineExceededError(
            absl::StrCat("final read of ", key, " did not succeed in time"));
      }
    }
  }
  return out;
}

int Workload::PutDirect(int node, const std::string& key,
                        const std::string& value) {
  Conn& c = *conns_[static_cast<size_t>(node)];
  LoggedOp lo;
  lo.op.client = 2000;
  lo.op.key = key;
  lo.op.type = OpType::kWrite;
  lo.op.value = value;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.rpc_timeout);
  v1::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  v1::PutResponse resp;
  lo.op.invoke_ns = MonotonicNs();
  const grpc::Status s = c.kv->Put(&ctx, req, &resp);
  if (s.ok()) {
    lo.op.complete_ns = MonotonicNs();
    lo.node = node;
  } else if (Indeterminate(s.error_code())) {
    lo.op.outcome = OpOutcome::kUnknown;
  }
  if (s.ok() || Indeterminate(s.error_code())) {
    std::lock_guard<std::mutex> lock(mu_);
    ops_.push_back(std::move(lo));
  }
  return static_cast<int>(s.error_code());
}

absl::StatusOr<cluster::CheckResult> CheckLogged(
    const std::vector<LoggedOp>& ops, absl::Duration time_limit) {
  cluster::History h;
  h.reserve(ops.size());
  for (const LoggedOp& o : ops) h.push_back(o.op);
  cluster::CheckOptions options;
  options.time_limit = time_limit;
  return cluster::CheckHistory(h, options);
}

// ---- FaultCluster ----

absl::StatusOr<std::unique_ptr<FaultCluster>> FaultCluster::Start(
    const std::string& root_dir, ClusterOptions options,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string server = BinaryPath("server/strata-server");
  const std::string cli = BinaryPath("client/strata");
  if (server.empty() || cli.empty()) {
    return absl::FailedPreconditionError("STRATA_BINARY_DIR is not set");
  }
  std::unique_ptr<FaultCluster> c(new FaultCluster());
  std::filesystem::create_directories(root_dir);
  auto etcd = EtcdProcess::Start(root_dir + "/etcd");
  if (!etcd.ok()) return etcd.status();
  c->etcd_ = std::move(*etcd);

  std::vector<int> ports;
  std::vector<std::string> members;
  for (int i = 0; i < options.nodes; ++i) {
    auto port = PickFreePort();
    if (!port.ok()) return port.status();
    ports.push_back(*port);
    c->ids_.push_back(absl::StrCat("n", i + 1));
    members.push_back(absl::StrCat(c->ids_.back(), "=127.0.0.1:", *port));
  }
  ProcessResult init = RunProcess(
      {cli, "cluster", "init", "--etcd=" + c->etcd_->endpoint(),
       "--nodes=" + absl::StrJoin(members, ","), "--ranges=1",
       absl::StrCat("--replication_factor=", options.nodes)});
  if (!init.exited || init.exit_code != 0) {
    return absl::InternalError(absl::StrCat("strata cluster init failed: ",
                                            init.out, init.err));
  }

  cluster::EtcdClientOptions eo;
  eo.endpoint = c->etcd_->endpoint();
  c->etcd_client_ = std::make_unique<cluster::EtcdClient>(eo);
  FaultCluster* raw = c.get();
  c->watcher_ = std::make_unique<cluster::Watcher>(
      c->etcd_client_.get(), kRangePrefix, /*start_revision=*/1,
      [raw](const cluster::WatchEvent& e) {
        if (e.type != cluster::WatchEvent::Type::kPut) return;
        auto r = cluster::DecodeRange(e.kv.key, e.kv.value);
        std::lock_guard<std::mutex> lock(raw->mu_);
        if (!r.ok()) {
          raw->watch_error_ = r.status().ToString();
          return;
        }
        raw->events_.push_back(
            {MonotonicNs(), r->id, r->epoch, r->primary});
      },
      [raw](const absl::Status& s) {
        std::lock_guard<std::mutex> lock(raw->mu_);
        raw->watch_error_ = s.ToString();
      });

  for (int i = 0; i < options.nodes; ++i) {
    auto proxy = TcpProxy::Start(c->etcd_->endpoint());
    if (!proxy.ok()) return proxy.status();
    c->proxies_.push_back(std::move(*proxy));
  }
  for (int i = 0; i < options.nodes; ++i) {
    const std::string dir = absl::StrCat(root_dir, "/", c->ids_[i]);
    NodeSpec spec;
    spec.binary = server;
    spec.data_dir = dir;
    spec.port = ports[static_cast<size_t>(i)];
    spec.log_path = dir + ".log";
    spec.flags = {"--cluster_etcd=" + c->proxies_[static_cast<size_t>(i)]->address(),
                  "--node_id=" + c->ids_[static_cast<size_t>(i)],
                  absl::StrCat("--advertise_address=127.0.0.1:", spec.port),
                  // Tiny memtables: flushes and compactions run all along.
                  "--memtable_bytes=65536"};
    spec.flags.insert(spec.flags.end(), options.node_flags.begin(),
                      options.node_flags.end());
    if (auto it = options.node_env.find(i); it != options.node_env.end()) {
      spec.env = it->second;
    }
    auto node = NodeProcess::Start(spec, deadline - absl::Now());
    if (!node.ok()) return node.status();
    c->nodes_.push_back(std::move(*node));
  }

  // Serving: a Put on a key outside the workload's goes through.
  Workload probe(c->addresses(), WorkloadOptions{});
  while (true) {
    const int code = probe.PutDirect(0, "probe", "x");
    if (code == 0) break;
    auto p = probe.PrimaryFromRangeMap();
    if (p.ok() && probe.PutDirect(*p, "probe", "x") == 0) break;
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the cluster did not accept a write in time; logs:\n", c->Logs()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // Retry pace.
  }
  return c;
}

FaultCluster::~FaultCluster() {
  for (auto& n : nodes_) n->Kill();
  if (watcher_) watcher_->Stop();
  proxies_.clear();
  etcd_.reset();
}

int FaultCluster::IndexOf(const std::string& id) const {
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (ids_[i] == id) return static_cast<int>(i);
  }
  return -1;
}

std::vector<std::string> FaultCluster::addresses() const {
  std::vector<std::string> out;
  for (const auto& n : nodes_) out.push_back(n->address());
  return out;
}

std::vector<RangeEvent> FaultCluster::RangeHistory() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

RangeEvent FaultCluster::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_.empty() ? RangeEvent{} : events_.back();
}

absl::StatusOr<RangeEvent> FaultCluster::WaitForEpochAbove(
    uint64_t epoch, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const RangeEvent& e : events_) {
        if (e.epoch > epoch) return e;
      }
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("no epoch above ", epoch, " in time; logs:\n", Logs()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // Poll.
  }
}

std::string FaultCluster::Logs() const {
  std::string out;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    absl::StrAppend(&out, "---- ", ids_[i], " (", nodes_[i]->address(),
                    ") ----\n", nodes_[i]->LogTail(3000), "\n");
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!watch_error_.empty()) absl::StrAppend(&out, "watch: ", watch_error_);
  return out;
}

std::vector<std::string> CheckEpochs(const std::vector<RangeEvent>& events) {
  std::vector<std::string> bad;
  std::map<std::pair<uint32_t, uint64_t>, std::string> primary_of;
  std::map<uint32_t, uint64_t> last_epoch;
  for (const RangeEvent& e : events) {
    auto [it, inserted] = primary_of.emplace(std::make_pair(e.range, e.epoch),
                                             e.primary);
    if (!inserted && it->second != e.primary) {
      bad.push_back(absl::StrCat("range ", e.range, " epoch ", e.epoch,
                                 " had two primaries: ", it->second, " and ",
                                 e.primary));
    }
    auto& last = last_epoch[e.range];
    if (e.epoch < last) {
      bad.push_back(absl::StrCat("range ", e.range, " epoch went back from ",
                                 last, " to ", e.epoch));
    }
    last = std::max(last, e.epoch);
  }
  return bad;
}

std::optional<absl::Duration> FailoverTime(const std::vector<LoggedOp>& ops,
                                           int64_t fault_ns, int old_node) {
  std::optional<int64_t> first;
  for (const LoggedOp& o : ops) {
    if (o.op.type == OpType::kRead || o.op.outcome != OpOutcome::kOk) continue;
    if (o.node < 0 || o.node == old_node || o.op.invoke_ns < fault_ns) continue;
    if (!first || *o.op.complete_ns < *first) first = *o.op.complete_ns;
  }
  if (!first) return std::nullopt;
  return absl::Nanoseconds(*first - fault_ns);
}

}  // namespace strata::testing
