#include "client/cluster_cli.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cluster/control/cluster_rpc.h"
#include "cluster/control/cluster_store.h"
#include "cluster/control/controller.h"
#include "cluster/etcd_client.h"
#include "client/client_channel.h"
#include "grpcpp/client_context.h"
#include "strata/v1/cluster.grpc.pb.h"

ABSL_FLAG(std::string, etcd, "",
          "cluster: host:port of an etcd member's client URL, or several "
          "members' separated by commas (h1:p1,h2:p2,h3:p3).");
ABSL_FLAG(std::string, etcd_ca, "",
          "cluster: PEM bundle of the CAs that sign etcd's server "
          "certificates (etcdctl's --cacert); set, etcd is reached over "
          "TLS. Empty = plaintext.");
ABSL_FLAG(std::string, etcd_cert, "",
          "cluster: client certificate for an etcd with --client-cert-auth "
          "(etcdctl's --cert; with --etcd_key and --etcd_ca).");
ABSL_FLAG(std::string, etcd_key, "",
          "cluster: the private key of --etcd_cert (etcdctl's --key).");
ABSL_FLAG(std::string, etcd_user, "",
          "cluster: etcd user to authenticate as (etcdctl's --user), for an "
          "etcd with authentication enabled; with --etcd_password_file.");
ABSL_FLAG(std::string, etcd_password_file, "",
          "cluster: file holding the password of --etcd_user (one trailing "
          "newline is ignored).");
ABSL_FLAG(std::string, cluster_prefix, "strata/",
          "cluster: the etcd key prefix the cluster lives under.");
ABSL_FLAG(std::string, nodes, "",
          "cluster init: the first members, ID=HOST:PORT,... (at least "
          "--replication_factor of them).");
ABSL_FLAG(int32_t, ranges, 1,
          "cluster init: this many equal ranges over the key space's first "
          "two bytes (ignored with --split_keys).");
ABSL_FLAG(std::string, split_keys, "",
          "cluster init: split keys (stored keys, C escapes allowed, "
          "comma-separated, ascending): k keys make k+1 ranges.");
ABSL_FLAG(int32_t, replication_factor, 3,
          "cluster init: replicas per range, on distinct nodes.");
ABSL_FLAG(int32_t, min_in_sync, 2,
          "cluster init: the smallest in-sync set a member removal may "
          "leave (writes stop below it).");

namespace strata::cli {

const char kClusterUsage[] =
    R"usage(  cluster init --etcd=H:P --nodes=ID=H:P,... [--ranges=N | --split_keys=K,...]
               [--replication_factor=3] [--min_in_sync=2]
                     create the cluster in etcd (once: exit 3 ALREADY_EXISTS
                     after); range i gets replicas on nodes i, i+1, ...
  cluster status --etcd=H:P
                     print the ranges (epoch, primary, replicas, in-sync
                     set), the nodes (member, live) and the controller
  cluster add-node --etcd=H:P ID H:P
                     make ID a member; it joins under-replicated ranges as
                     an out-of-sync replica
  cluster remove-node --etcd=H:P ID
                     drop ID from every range and from the members; refused
                     while it is a primary or holds an in-sync replica the
                     range cannot spare (min_in_sync)
  cluster drain --etcd=H:P ID
                     move every range whose primary is ID to a live in-sync
                     replica (exit 3 if one has none)
                     (all: --cluster_prefix=P, default "strata/"; TLS to
                     etcd: --etcd_ca=FILE [--etcd_cert=FILE --etcd_key=FILE];
                     etcd user: --etcd_user=NAME --etcd_password_file=FILE)
)usage";

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitServer = 3;

int Usage(const std::string& message) {
  std::fprintf(stderr, "strata: %s\n(run 'strata help' for usage)\n",
               message.c_str());
  return kExitUsage;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "strata: %s: %s\n",
               absl::StatusCodeToString(s.code()).c_str(),
               std::string(s.message()).c_str());
  return kExitServer;
}

std::string Key(std::string_view key, bool is_end) {
  if (key.empty()) return is_end ? "+inf" : "-inf";
  return absl::StrCat("\"", absl::CHexEscape({key.data(), key.size()}), "\"");
}

int Init(cluster::ClusterStore& store) {
  cluster::InitOptions o;
  o.config.replication_factor = absl::GetFlag(FLAGS_replication_factor);
  o.config.min_in_sync = absl::GetFlag(FLAGS_min_in_sync);
  o.num_ranges = absl::GetFlag(FLAGS_ranges);
  for (absl::string_view item :
       absl::StrSplit(absl::GetFlag(FLAGS_nodes), ',', absl::SkipEmpty())) {
    const std::vector<std::string> parts =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (parts.size() != 2) {
      return Usage(absl::StrCat("--nodes: want ID=HOST:PORT, got ", item));
    }
    o.members.push_back({parts[0], parts[1]});
  }
  if (o.members.empty()) return Usage("cluster init needs --nodes");
  for (absl::string_view item :
       absl::StrSplit(absl::GetFlag(FLAGS_split_keys), ',', absl::SkipEmpty())) {
    std::string key;
    if (!absl::CUnescape(item, &key)) {
      return Usage(absl::StrCat("--split_keys: bad escape in ", item));
    }
    o.split_keys.push_back(std::move(key));
  }
  absl::StatusOr<std::vector<cluster::RangeDescriptor>> plan =
      cluster::PlanInitialRanges(o);
  if (!plan.ok()) return Usage(std::string(plan.status().message()));
  if (absl::Status s = store.InitCluster(o); !s.ok()) return Fail(s);
  std::printf("initialized cluster \"%s\": %zu ranges, %zu members, "
              "replication_factor %d, min_in_sync %d\n",
              store.prefix().c_str(), plan->size(), o.members.size(),
              o.config.replication_factor, o.config.min_in_sync);
  return kExitOk;
}

// The lag per replica of every range, from each range's primary
// (GetClusterStatus on its address; a primary that is down or unreachable
// is named instead).
void PrintReplication(const v1::GetClusterStatusResponse& status,
                      absl::Duration timeout,
                      const ClientOptions& node_options) {
  std::printf("replication (from each primary):\n  %-4s %-12s %-10s %-8s "
              "%-10s %-10s %-10s %s\n",
              "ID", "REPLICA", "CONNECTED", "IN_SYNC", "ACKED", "LAG_REVS",
              "LAG_SECS", "DISK_FREE");
  for (const v1::Range& r : status.ranges()) {
    if (r.primary_address().empty()) {
      std::printf("  %-4u (primary %s has no known address)\n", r.id(),
                  r.primary().c_str());
      continue;
    }
    auto stub = v1::Cluster::NewStub(internal::MakeClientChannel(
        r.primary_address(), node_options, /*own_subchannels=*/false));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(
        absl::Now() + std::min(timeout, absl::Seconds(2))));
    v1::GetClusterStatusResponse from_primary;
    const grpc::Status s =
        stub->GetClusterStatus(&ctx, v1::GetClusterStatusRequest(),
                               &from_primary);
    const v1::RangeReplication* replication = nullptr;
    for (const v1::RangeReplication& rr : from_primary.replication()) {
      if (rr.range_id() == r.id() && rr.epoch() == r.epoch()) {
        replication = &rr;
      }
    }
    if (!s.ok() || replication == nullptr) {
      std::printf("  %-4u (primary %s at %s: %s)\n", r.id(),
                  r.primary().c_str(), r.primary_address().c_str(),
                  s.ok() ? "not serving this range at this epoch"
                         : s.error_message().c_str());
      continue;
    }
    for (const v1::ReplicaProgress& p : replication->replicas()) {
      std::printf("  %-4u %-12s %-10s %-8s %-10lld %-10llu %-10.1f %s\n",
                  r.id(), p.id().c_str(), p.connected() ? "yes" : "no",
                  p.in_sync() ? "yes" : "no",
                  static_cast<long long>(p.acked_revision()),
                  static_cast<unsigned long long>(p.lag_revisions()),
                  p.lag_seconds(),
                  !p.disk_known()
                      ? "-"
                      : absl::StrFormat(
                            "%d%s", p.disk_free_bytes(),
                            p.disk_free_bytes() < p.disk_min_free_bytes()
                                ? " (below reserve)"
                                : "")
                            .c_str());
    }
  }
}

int Status(cluster::ClusterStore& store, absl::Duration timeout,
           const ClientOptions& node_options) {
  absl::StatusOr<v1::GetClusterStatusResponse> status =
      cluster::ReadClusterStatus(store);
  if (!status.ok()) return Fail(status.status());
  std::printf("cluster \"%s\" at etcd revision %lld: replication_factor %u, "
              "min_in_sync %u\n",
              store.prefix().c_str(),
              static_cast<long long>(status->etcd_revision()),
              status->replication_factor(), status->min_in_sync());
  if (status->controller().empty()) {
    std::printf("controller: none\n");
  } else {
    std::printf("controller: %s (term %lld)\n", status->controller().c_str(),
                static_cast<long long>(status->controller_term()));
  }
  std::printf("nodes:\n");
  for (const v1::ClusterNode& n : status->nodes()) {
    std::printf("  %-12s %-22s %s %s\n", n.id().c_str(),
                n.address().empty() ? "-" : n.address().c_str(),
                n.member() ? "member" : "not-member",
                n.live() ? "live" : "down");
  }
  std::printf("ranges:\n  %-4s %-14s %-14s %-6s %-12s %-24s %s\n", "ID",
              "START", "END", "EPOCH", "PRIMARY", "REPLICAS", "IN_SYNC");
  for (const v1::Range& r : status->ranges()) {
    bool primary_live = false;
    for (const v1::ClusterNode& n : status->nodes()) {
      if (n.id() == r.primary()) primary_live = n.live();
    }
    std::printf("  %-4u %-14s %-14s %-6llu %-12s %-24s %s\n", r.id(),
                Key(r.start_key(), false).c_str(),
                Key(r.end_key(), true).c_str(),
                static_cast<unsigned long long>(r.epoch()),
                (r.primary() + (primary_live ? "" : "(down)")).c_str(),
                absl::StrJoin(r.replicas(), ",").c_str(),
                absl::StrJoin(r.in_sync(), ",").c_str());
  }
  PrintReplication(*status, timeout, node_options);
  return kExitOk;
}

int AddNode(cluster::ClusterStore& store, const std::vector<std::string>& a) {
  if (a.size() != 3) return Usage("cluster add-node takes ID HOST:PORT");
  absl::StatusOr<std::vector<cluster::RangeId>> placed =
      cluster::AddMember(store, {a[1], a[2]});
  if (absl::IsInvalidArgument(placed.status())) {
    return Usage(std::string(placed.status().message()));
  }
  if (!placed.ok()) return Fail(placed.status());
  std::printf("added %s; out-of-sync replica of ranges: %s\n", a[1].c_str(),
              placed->empty() ? "none" : absl::StrJoin(*placed, ",").c_str());
  return kExitOk;
}

int RemoveNode(cluster::ClusterStore& store,
               const std::vector<std::string>& a) {
  if (a.size() != 2) return Usage("cluster remove-node takes ID");
  if (absl::Status s = cluster::RemoveMember(store, a[1]); !s.ok()) {
    return Fail(s);
  }
  std::printf("removed %s\n", a[1].c_str());
  return kExitOk;
}

int DrainNode(cluster::ClusterStore& store,
              const std::vector<std::string>& a) {
  if (a.size() != 2) return Usage("cluster drain takes ID");
  absl::StatusOr<cluster::DrainResult> r = cluster::Drain(store, a[1]);
  if (!r.ok()) return Fail(r.status());
  std::printf("moved primaries of ranges: %s\n",
              r->moved.empty() ? "none" : absl::StrJoin(r->moved, ",").c_str());
  if (!r->stuck.empty()) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        a[1], " still leads ranges ", absl::StrJoin(r->stuck, ","),
        ": no live in-sync replica to take over")));
  }
  return kExitOk;
}

}  // namespace

int RunClusterCommand(const std::vector<std::string>& args,
                      absl::Duration timeout,
                      const ClientOptions& node_options) {
  if (args.empty()) {
    return Usage("cluster takes init|status|add-node|remove-node|drain");
  }
  const std::string etcd = absl::GetFlag(FLAGS_etcd);
  if (etcd.empty()) return Usage("cluster commands need --etcd=HOST:PORT");
  if (absl::Status s = cluster::PlanEtcdChannels(etcd).status(); !s.ok()) {
    return Usage(std::string(s.message()));
  }
  const std::string prefix = absl::GetFlag(FLAGS_cluster_prefix);
  if (prefix.empty()) return Usage("--cluster_prefix must not be empty");
  cluster::EtcdClientOptions options;
  options.endpoint = etcd;
  options.call_timeout = timeout;
  options.tls.ca_file = absl::GetFlag(FLAGS_etcd_ca);
  options.tls.cert_file = absl::GetFlag(FLAGS_etcd_cert);
  options.tls.key_file = absl::GetFlag(FLAGS_etcd_key);
  if (absl::Status s = cluster::ValidateEtcdTls(options.tls, "--etcd_");
      !s.ok()) {
    return Usage(std::string(s.message()));
  }
  absl::StatusOr<cluster::EtcdAuthOptions> auth =
      cluster::LoadEtcdAuth(absl::GetFlag(FLAGS_etcd_user),
                            absl::GetFlag(FLAGS_etcd_password_file), "--etcd_");
  if (!auth.ok()) return Usage(std::string(auth.status().message()));
  options.auth = *std::move(auth);
  cluster::EtcdClient client(options);
  cluster::ClusterStore store(&client, prefix);
  const std::string& sub = args[0];
  if (sub == "init") {
    if (args.size() != 1) return Usage("cluster init takes flags only");
    return Init(store);
  }
  if (sub == "status") {
    if (args.size() != 1) return Usage("cluster status takes flags only");
    return Status(store, timeout, node_options);
  }
  if (sub == "add-node") return AddNode(store, args);
  if (sub == "remove-node") return RemoveNode(store, args);
  if (sub == "drain") return DrainNode(store, args);
  return Usage(absl::StrCat("unknown cluster command '", sub, "'"));
}

}  // namespace strata::cli
