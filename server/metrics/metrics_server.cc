#include "server/metrics/metrics_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "prometheus/exposer.h"
#include "prometheus/text_serializer.h"
#include "server/metrics/connection_collector.h"
#include "server/metrics/engine_collector.h"
#include "server/metrics/namespace_metrics.h"
#include "server/metrics/rpc_metrics.h"

namespace strata::server::metrics {
namespace {

// Threads answering scrapes. One scraper is normal; two lets a manual curl
// through while Prometheus scrapes.
constexpr int kHttpThreads = 2;

// Where to connect to reach a listener bound to host:port: the host itself,
// or loopback for a wildcard host. False if it does not resolve.
bool WakeAddress(std::string host, int port, sockaddr_storage* addr,
                 socklen_t* len) {
  if (host == "0.0.0.0") host = "127.0.0.1";
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints,
                  &result) != 0 ||
      result == nullptr) {
    return false;
  }
  std::memcpy(addr, result->ai_addr, result->ai_addrlen);
  *len = result->ai_addrlen;
  freeaddrinfo(result);
  return true;
}

// Destroys the exposer promptly. civetweb's accept loop polls its
// listening sockets with a 2 s timeout and looks at its stop flag only
// between polls, so ~CivetServer takes up to 2 s, which would delay every
// server shutdown. A connection attempt ends the poll: while the exposer is
// being destroyed, a helper thread connects every few milliseconds.
void StopExposer(std::unique_ptr<prometheus::Exposer> exposer,
                 const sockaddr_storage& addr, socklen_t len) {
  if (len == 0) return;  // Not resolvable: the slow path below is all.
  std::atomic<bool> stopped{false};
  std::thread waker([&] {
    while (!stopped.load()) {
      const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd >= 0) {
        connect(fd, reinterpret_cast<const sockaddr*>(&addr), len);
        close(fd);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  exposer.reset();
  stopped.store(true);
  waker.join();
}

}  // namespace

absl::Status ValidateMetricsAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "metrics address must be host:port (got '%s')", address));
  }
  const std::string host = address.substr(0, colon);
  if (host.front() == '[' || host.find(':') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "metrics address '%s': IPv6 is not supported (Debian's civetweb, "
        "which serves /metrics, is built without it); use an IPv4 address "
        "such as 127.0.0.1 or 0.0.0.0, or a host name",
        address));
  }
  const std::string port = address.substr(colon + 1);
  int value = 0;
  // Digits only: civetweb would read a trailing 's' or 'r' as options.
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(port, &value) || value > 65535) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "metrics port must be a number 0..65535 (got '%s')", address));
  }
  return absl::OkStatus();
}

MetricsServer::MetricsServer(EngineSource engine, BuildInfo build,
                             size_t namespace_limit)
    : rpc_(std::make_shared<RpcMetrics>()) {
  if (!engine.disk_free_dir.empty()) {
    rpc_->ReadDiskFreeAtScrape(engine.disk_free_dir);
  }
  auto namespaces = std::make_shared<NamespaceMetrics>(
      engine.read_db, rpc_->MethodLabels(), namespace_limit);
  rpc_->SetNamespaceMetrics(namespaces.get());
  collectables_.push_back(
      std::make_shared<ProcessCollector>(std::move(build)));
  collectables_.push_back(rpc_);
  collectables_.push_back(std::move(namespaces));
  collectables_.push_back(std::make_shared<ConnectionCollector>());
  // No families while the source has no database (EngineCollector).
  collectables_.push_back(
      std::make_shared<EngineCollector>(std::move(engine.read_db)));
}

MetricsServer::~MetricsServer() {
  // Stops civetweb (joining its threads) while every collector is alive.
  if (exposer_ != nullptr) {
    StopExposer(std::move(exposer_), wake_addr_, wake_len_);
  }
}

RpcObserver* MetricsServer::rpc_observer() { return rpc_.get(); }

absl::Status MetricsServer::Listen(const std::string& address) {
  if (exposer_ != nullptr) {
    return absl::FailedPreconditionError("metrics server already listening");
  }
  if (absl::Status s = ValidateMetricsAddress(address); !s.ok()) return s;
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // prometheus-cpp reports a failed bind with an exception; this is the
    // only place one can come from.
    exposer = std::make_unique<prometheus::Exposer>(address, kHttpThreads);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrFormat(
        "cannot serve metrics on %s (address in use or not local?): %s",
        address, e.what()));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(
        absl::StrFormat("cannot serve metrics on %s: no port bound", address));
  }
  for (const std::shared_ptr<prometheus::Collectable>& c : collectables_) {
    exposer->RegisterCollectable(c);
  }
  host_ = address.substr(0, address.rfind(':'));
  port_ = ports.front();
  if (!WakeAddress(host_, port_, &wake_addr_, &wake_len_)) wake_len_ = 0;
  exposer_ = std::move(exposer);
  return absl::OkStatus();
}

std::string MetricsServer::bound_address() const {
  return absl::StrFormat("%s:%d", host_, port_);
}

std::string MetricsServer::Scrape() const {
  std::vector<prometheus::MetricFamily> families;
  for (const std::shared_ptr<prometheus::Collectable>& c : collectables_) {
    std::vector<prometheus::MetricFamily> f = c->Collect();
    families.insert(families.end(), std::make_move_iterator(f.begin()),
                    std::make_move_iterator(f.end()));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace strata::server::metrics
