#include "tests/cluster/fault/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace strata::testing {
namespace {

absl::Status Errno(const char* what) {
  return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
}

// Sends all of buf; false if the peer is gone (or the link was shut down).
bool SendAll(int fd, const char* buf, size_t n) {
  while (n > 0) {
    const ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    buf += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(
    const std::string& target) {
  const size_t colon = target.rfind(':');
  int port = 0;
  in_addr ip{};
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(target.substr(colon + 1), &port) || port <= 0 ||
      port > 65535 ||
      inet_pton(AF_INET, target.substr(0, colon).c_str(), &ip) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("proxy target must be IPV4:PORT, got '", target, "'"));
  }
  std::unique_ptr<TcpProxy> p(new TcpProxy());
  p->target_ip_ = ip.s_addr;
  p->target_port_ = static_cast<uint16_t>(port);
  p->listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->listener_ < 0) return Errno("socket");
  const int one = 1;
  setsockopt(p->listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(p->listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    return Errno("bind 127.0.0.1:0");
  }
  if (listen(p->listener_, 64) != 0) return Errno("listen");
  socklen_t len = sizeof(addr);
  if (getsockname(p->listener_, reinterpret_cast<sockaddr*>(&addr), &len) !=
      0) {
    return Errno("getsockname");
  }
  p->address_ = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  if (pipe2(p->wake_, O_CLOEXEC | O_NONBLOCK) != 0) return Errno("pipe2");
  p->thread_ = std::thread([raw = p.get()] { raw->Run(); });
  return p;
}

TcpProxy::~TcpProxy() {
  stop_.store(true);
  Sever();  // Unblocks a send stuck on a peer that does not read.
  if (thread_.joinable()) thread_.join();
  if (listener_ >= 0) close(listener_);
  for (int fd : wake_) {
    if (fd >= 0) close(fd);
  }
}

void TcpProxy::Wake() {
  const char c = 0;
  if (wake_[1] >= 0) (void)!write(wake_[1], &c, 1);
}

void TcpProxy::Sever() {
  severed_.store(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Link& l : links_) {
      shutdown(l.client, SHUT_RDWR);
      shutdown(l.upstream, SHUT_RDWR);
    }
  }
  Wake();
}

void TcpProxy::Heal() {
  severed_.store(false);
  Wake();
}

void TcpProxy::Run() {
  std::vector<char> buf(64 << 10);
  std::vector<pollfd> fds;
  while (!stop_.load()) {
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listener_, POLLIN, 0});
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (severed_.load()) {
        for (const Link& l : links_) {
          close(l.client);
          close(l.upstream);
        }
        links_.clear();
      }
      for (const Link& l : links_) {
        fds.push_back({l.client, POLLIN, 0});
        fds.push_back({l.upstream, POLLIN, 0});
      }
    }
    // A timeout only bounds how long a missed wake-up could delay a stop.
    if (poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) {
      char drain[64];
      while (read(wake_[0], drain, sizeof(drain)) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      const int c = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        if (severed_.load()) {
          close(c);
        } else {
          const int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in t{};
          t.sin_family = AF_INET;
          t.sin_addr.s_addr = target_ip_;
          t.sin_port = htons(target_port_);
          if (u < 0 ||
              connect(u, reinterpret_cast<sockaddr*>(&t), sizeof(t)) != 0) {
            if (u >= 0) close(u);
            close(c);
          } else {
            const int one = 1;
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            std::lock_guard<std::mutex> lock(mu_);
            links_.push_back({c, u});
            forwarded_.fetch_add(1);
          }
        }
      }
    }
    // Forward what arrived; a link with an error or EOF on either side is
    // closed whole.
    std::vector<size_t> dead;
    for (size_t i = 2; i + 1 < fds.size(); i += 2) {
      const size_t link = (i - 2) / 2;
      bool ok = true;
      for (int side = 0; side < 2 && ok; ++side) {
        const pollfd& from = fds[i + static_cast<size_t>(side)];
        const int to = fds[i + static_cast<size_t>(1 - side)].fd;
        if (from.revents == 0) continue;
        const ssize_t r = recv(from.fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        ok = r > 0 && SendAll(to, buf.data(), static_cast<size_t>(r));
      }
      if (!ok) dead.push_back(link);
    }
    if (!dead.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      // links_ only shrinks here and in the severed branch above (same
      // thread), so the indices still match the fds array.
      for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
        if (*it >= links_.size()) continue;
        close(links_[*it].client);
        close(links_[*it].upstream);
        links_.erase(links_.begin() + static_cast<std::ptrdiff_t>(*it));
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const Link& l : links_) {
    close(l.client);
    close(l.upstream);
  }
  links_.clear();
}

}  // namespace strata::testing
