#ifndef STRATA_SERVER_METRICS_CONNECTION_COLLECTOR_H_
#define STRATA_SERVER_METRICS_CONNECTION_COLLECTOR_H_

// Open client connections to the gRPC server. gRPC's C++ API has no
// connection callback or counter, but its channelz registry (on by default,
// GRPC_ARG_ENABLE_CHANNELZ) lists every server and every open server-side
// socket (one per HTTP/2 connection); the C core exposes it as JSON
// (grpc_channelz_get_servers / grpc_channelz_get_server_sockets). It is read
// on scrape only, so the RPC path pays nothing.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace strata::server::metrics {

// The values of every `"key":"<int>"` (or `"key":<int>`) in a channelz JSON
// document, in order of appearance. Pure; exposed for tests.
std::vector<int64_t> ChannelzIds(std::string_view json, std::string_view key);

// Open connections summed over every gRPC server of this process (a
// strata-server runs exactly one). nullopt if channelz answered something
// unparseable. Thread-safe (channelz locks its registry).
std::optional<int64_t> CountGrpcServerConnections();

// Exports strata_rpc_connections (gauge) from CountGrpcServerConnections();
// nothing if it fails. Thread safety: Collect may run on any thread.
class ConnectionCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace strata::server::metrics

#endif  // STRATA_SERVER_METRICS_CONNECTION_COLLECTOR_H_
