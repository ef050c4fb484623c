#ifndef STRATA_TESTS_CLUSTER_FAULT_TCP_PROXY_H_
#define STRATA_TESTS_CLUSTER_FAULT_TCP_PROXY_H_

// A TCP proxy for fault-injection tests: listens on 127.0.0.1 (a free
// port) and forwards every connection to one target host:port, byte for
// byte, until the test severs it. Used to cut one strata-server from etcd
// without iptables: each node's --cluster_etcd points at its own proxy.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace strata::testing {

class TcpProxy {
 public:
  // Binds 127.0.0.1:0 and starts the forwarding thread. `target` is
  // "127.0.0.1:PORT" (an IPv4 address; nothing is resolved). Internal with
  // errno text if a socket call fails; InvalidArgument for a bad target.
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(
      const std::string& target);
  // Stops the thread and closes every socket.
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  // "127.0.0.1:PORT" to connect to instead of the target.
  const std::string& address() const { return address_; }

  // Cuts the link: every open connection is shut down at once (both
  // sides see the connection reset or closed) and, until Heal(), new
  // connections are accepted and closed immediately. Idempotent;
  // thread-safe.
  void Sever();
  // Forwards new connections again. Idempotent; thread-safe.
  void Heal();
  bool severed() const { return severed_.load(); }
  // Connections forwarded so far (refused ones not counted).
  int64_t connections_forwarded() const { return forwarded_.load(); }

 private:
  struct Link {
    int client = -1;
    int upstream = -1;
  };

  TcpProxy() = default;
  void Run();
  void Wake();

  std::string address_;
  uint32_t target_ip_ = 0;   // Network byte order.
  uint16_t target_port_ = 0;  // Host byte order.
  int listener_ = -1;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<bool> severed_{false};
  std::atomic<int64_t> forwarded_{0};
  std::mutex mu_;            // Guards links_ (Sever shuts them down).
  std::vector<Link> links_;  // Owned (closed) by the thread.
  std::thread thread_;
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_CLUSTER_FAULT_TCP_PROXY_H_
