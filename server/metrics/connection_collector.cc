#include "server/metrics/connection_collector.h"

#include <algorithm>
#include <memory>
#include <string>

#include "grpc/grpc.h"
#include "grpc/support/alloc.h"
#include "server/metrics/families.h"

namespace strata::server::metrics {
namespace {

// Bounds the paging loops (channelz returns up to 100 entries per page).
constexpr int kMaxPages = 10000;

struct GprFree {
  void operator()(char* p) const { gpr_free(p); }
};
using ChannelzJson = std::unique_ptr<char, GprFree>;

bool IsEnd(std::string_view json) {
  return json.find("\"end\":true") != std::string_view::npos;
}

}  // namespace

std::vector<int64_t> ChannelzIds(std::string_view json, std::string_view key) {
  std::vector<int64_t> ids;
  const std::string needle = "\"" + std::string(key) + "\":";
  for (size_t at = json.find(needle); at != std::string_view::npos;
       at = json.find(needle, at + 1)) {
    size_t i = at + needle.size();
    if (i < json.size() && json[i] == '"') ++i;
    int64_t v = 0;
    const size_t digits = i;
    while (i < json.size() && json[i] >= '0' && json[i] <= '9' &&
           v < (int64_t{1} << 58)) {
      v = v * 10 + (json[i] - '0');
      ++i;
    }
    if (i > digits) ids.push_back(v);
  }
  return ids;
}

std::optional<int64_t> CountGrpcServerConnections() {
  std::vector<int64_t> servers;
  int64_t start = 0;
  for (int page = 0; page < kMaxPages; ++page) {
    ChannelzJson json(grpc_channelz_get_servers(start));
    if (json == nullptr) return std::nullopt;
    const std::string_view text(json.get());
    const std::vector<int64_t> ids = ChannelzIds(text, "serverId");
    servers.insert(servers.end(), ids.begin(), ids.end());
    if (IsEnd(text) || ids.empty()) break;
    start = *std::max_element(ids.begin(), ids.end()) + 1;
  }
  int64_t connections = 0;
  for (int64_t server : servers) {
    int64_t socket_start = 0;
    for (int page = 0; page < kMaxPages; ++page) {
      ChannelzJson json(
          grpc_channelz_get_server_sockets(server, socket_start, 0));
      if (json == nullptr) break;  // The server went away meanwhile.
      const std::string_view text(json.get());
      const std::vector<int64_t> ids = ChannelzIds(text, "socketId");
      connections += static_cast<int64_t>(ids.size());
      if (IsEnd(text) || ids.empty()) break;
      socket_start = *std::max_element(ids.begin(), ids.end()) + 1;
    }
  }
  return connections;
}

std::vector<prometheus::MetricFamily> ConnectionCollector::Collect() const {
  std::vector<prometheus::MetricFamily> out;
  if (std::optional<int64_t> n = CountGrpcServerConnections()) {
    out.push_back(GaugeFamily(
        "strata_rpc_connections",
        "Open client connections (HTTP/2 transports) to the gRPC server, "
        "from gRPC channelz.",
        static_cast<double>(*n)));
  }
  return out;
}

}  // namespace strata::server::metrics
