#ifndef STRATA_CLUSTER_NODE_FORWARDING_H_
#define STRATA_CLUSTER_NODE_FORWARDING_H_

// ForwardingService: what a cluster node that is not the range's primary
// does with every method it does not serve itself (strata.v1.KV,
// reflection, ...; docs/cluster.md, "What a client sees"). By default it
// forwards the call, byte for byte, to the primary the node knows from the
// range map, so grpcurl and the CLI work against any node:
//
//   client ──► this node (generic reactor) ──► primary (generic client call)
//
// - metadata: the client's, except pseudo and reserved headers (`:*`,
//   `grpc-*`, user-agent, te, content-type) and the strata-* routing keys,
//   plus `strata-forwarded-by: <this node's id>`; the deadline is the
//   client's. The primary's initial and trailing metadata come back, and
//   the call ends with the primary's exact status (code, message, details).
// - messages are pumped both ways with one read outstanding per side and a
//   write started only after the previous one completed (flow control is
//   the slower side's); the client's half-close is passed on.
// - cancellation: a client that cancels (or whose deadline passes) cancels
//   the upstream call; an upstream call that fails ends the client's.
//
// The node answers itself instead of forwarding:
// - health checks (grpc.health.v1.Health): they ask about this node, which
//   is not the primary, so the answer below (a readiness probe passes on
//   the primary only, as deploy/k8s/overlays/cluster relies on);
// - UNAVAILABLE when it has no range map yet or becomes the primary (the
//   `route` callback's status is not FAILED_PRECONDITION);
// - FAILED_PRECONDITION "not the primary ... the primary is NODE at ADDR"
//   when forwarding is off (`forward` false, --cluster_forward=false), the
//   client sent `strata-no-forward: 1` (or `true`), the call was already
//   forwarded once (`strata-forwarded-by` present: no second hop, so a
//   stale map cannot make a loop), the client presented a TLS certificate
//   (mutual TLS: the primary would see this node's identity instead of the
//   client's, so authorization by certificate would judge the wrong
//   peer; the client calls the primary itself), or no primary address is
//   known. Such an
//   answer carries the trailing metadata `strata-primary: HOST:PORT` (if
//   known) and `strata-range-map-bin` (a serialized
//   strata.v1.GetRangeMapResponse, what strata.v1.Cluster/GetRangeMap
//   returns).
//
// Channels: one per primary address, created on the first call to it and
// replaced when the primary changes (creating a channel does not connect).
// Upstream calls use Options::credentials (TLS when the nodes serve TLS);
// a bearer token in metadata is carried, a client certificate cannot be
// (see above).
//
// Thread safety: thread-safe; CreateReactor and every reaction run on
// gRPC's callback threads and never block (a short mutex per call).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/server_builder_option.h"

namespace strata::cluster {

// Metadata keys (lower case, as gRPC delivers them).
inline constexpr std::string_view kForwardedByKey = "strata-forwarded-by";
inline constexpr std::string_view kNoForwardKey = "strata-no-forward";
inline constexpr std::string_view kPrimaryTrailer = "strata-primary";
inline constexpr std::string_view kRangeMapTrailer = "strata-range-map-bin";

class ForwardingService final : public grpc::CallbackGenericService {
 public:
  // Where a call this node does not serve should go, as the node knows it
  // now.
  struct Route {
    // The answer when the call is not forwarded: FAILED_PRECONDITION "not
    // the primary..." (forwardable), or UNAVAILABLE (no map yet, or this
    // node becomes the primary: never forwarded).
    absl::Status not_primary;
    // The primary's HOST:PORT; empty if not known.
    std::string primary_address;
  };

  struct Options {
    // This node's id, sent as strata-forwarded-by.
    std::string node_id;
    // False: never forward (--cluster_forward=false).
    bool forward = true;
    // The current route. Called once per call on a callback thread: must
    // be thread-safe and not block (no I/O).
    std::function<Route()> route;
    // The serialized strata.v1.GetRangeMapResponse for the
    // strata-range-map-bin trailer; "" if none. Same rules as `route`.
    std::function<std::string()> range_map;
    // How the primary is dialed (ClusterNodeOptions::peer_credentials).
    // nullptr: plaintext.
    std::shared_ptr<grpc::ChannelCredentials> credentials;
  };

  explicit ForwardingService(Options options);
  // REQUIRES: the server serving this service has shut down (no call in
  // progress).
  ~ForwardingService() override;
  ForwardingService(const ForwardingService&) = delete;
  ForwardingService& operator=(const ForwardingService&) = delete;

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override;

  // Forwarded calls that ended, by method label and the status code the
  // client got (strata_cluster_forwarded_requests_total). Method labels are
  // the short names of strata.v1.KV's methods ("Put"), anything else
  // "other": a bounded set. Every method has an OK sample (possibly 0);
  // other codes appear once counted.
  struct ForwardedCount {
    std::string method;
    grpc::StatusCode code;
    uint64_t count;
  };
  std::vector<ForwardedCount> ForwardedCounts() const;

 private:
  class Call;
  static constexpr int kNumCodes = 17;  // grpc::StatusCode 0..16.

  // The label slot of a full method name ("/strata.v1.KV/Put").
  size_t MethodSlot(std::string_view method) const;
  void CountForwarded(size_t slot, grpc::StatusCode code);
  // The stub for `address`, reusing the cached channel if it is the same.
  std::shared_ptr<grpc::GenericStub> StubFor(const std::string& address);

  const Options options_;
  // Fixed after construction: the known method labels ("other" is
  // labels_.size()), and (labels_.size() + 1) x kNumCodes counters.
  std::vector<std::string> labels_;
  std::map<std::string, size_t, std::less<>> slots_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;

  absl::Mutex mu_;
  std::string stub_address_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<grpc::GenericStub> stub_ ABSL_GUARDED_BY(mu_);
};

// A ServerBuilder option that leaves out gRPC's reflection service (which
// gRPC adds to every server once the reflection plugin is linked). For the
// server of a node that forwards: its own reflection would describe only
// the services it serves itself (Replication, Cluster), so grpcurl could
// not find strata.v1.KV there; without it, reflection calls are forwarded
// and the primary describes every service.
std::unique_ptr<grpc::ServerBuilderOption> WithoutLocalReflection();

}  // namespace strata::cluster

#endif  // STRATA_CLUSTER_NODE_FORWARDING_H_
