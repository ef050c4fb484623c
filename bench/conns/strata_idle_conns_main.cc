// strata-idle-conns: opens many idle HTTP/2 (gRPC) connections to a server,
// holds them, and reports the server's memory per connection.
//
// Each connection is a raw TCP socket that speaks just enough HTTP/2 to be
// what an idle gRPC client connection is to the server: the client preface,
// a SETTINGS frame with the values gRPC's own client sends, a connection
// WINDOW_UPDATE, then an ACK for every SETTINGS and PING the server sends.
// The server cannot tell it from an idle grpc::Channel (it builds the same
// transport for it), but the client side costs one descriptor and a few
// bytes instead of a whole channel stack, so 100,000 of them fit on the same
// machine as the server. Raw sockets also let each connection bind its
// source address (127.0.0.2, 127.0.0.3, ...) before connecting, which
// gRPC 1.51 has no public channel argument for: one source address has only
// ip_local_port_range ports (~28,000), so 100,000 connections need several.
//
//   strata-idle-conns --target=127.0.0.1:PORT --connections=100000
//       --source_addresses=8 --server_pid=PID --hold=60
//
// It prints "holding N" when every connection is open and measured, holds
// them (answering pings) until --hold seconds pass or SIGTERM/SIGINT, then
// prints a report and one JSON line ("json: {...}"). Bounded: opening stops
// at --connect_timeout, holding at --hold.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "bench/common/proc_stats.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "Server address, IPv4 HOST:PORT.");
ABSL_FLAG(int32_t, connections, 1000, "Idle connections to open and hold.");
ABSL_FLAG(int32_t, source_addresses, 8,
          "Bind connection i to source address 127.0.0.(2 + i % N) before "
          "connecting; each address has ip_local_port_range ports. 0 = let "
          "the kernel choose (one address).");
ABSL_FLAG(int32_t, connecting_at_once, 256,
          "Most connects outstanding at once (keeps the server's accept "
          "backlog from overflowing).");
ABSL_FLAG(double, connect_timeout, 180,
          "Seconds to open all connections; the rest count as failed.");
ABSL_FLAG(double, hold, 60,
          "Seconds to hold the connections once open (SIGTERM ends sooner).");
ABSL_FLAG(std::string, server_pid, "",
          "Server PID: report its RSS before, with all connections open and "
          "at the end of the hold, and RSS growth per connection (from the "
          "end of the hold, so hold a few seconds; measure a fresh server: "
          "one keeps the memory of closed connections for reuse).");

namespace {

using strata::bench::RssKiB;
using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

// HTTP/2 frame types and flags (RFC 9113).
constexpr uint8_t kSettings = 0x4, kPing = 0x6, kGoaway = 0x7;
constexpr uint8_t kWindowUpdate = 0x8, kAck = 0x1;

void AppendFrameHeader(std::string* out, uint32_t len, uint8_t type,
                       uint8_t flags, uint32_t stream) {
  const unsigned char h[9] = {static_cast<unsigned char>(len >> 16),
                              static_cast<unsigned char>(len >> 8),
                              static_cast<unsigned char>(len),
                              type,
                              flags,
                              static_cast<unsigned char>(stream >> 24),
                              static_cast<unsigned char>(stream >> 16),
                              static_cast<unsigned char>(stream >> 8),
                              static_cast<unsigned char>(stream)};
  out->append(reinterpret_cast<const char*>(h), 9);
}

void AppendU32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

void AppendSetting(std::string* out, uint16_t id, uint32_t value) {
  out->push_back(static_cast<char>(id >> 8));
  out->push_back(static_cast<char>(id & 0xff));
  AppendU32(out, value);
}

// What gRPC 1.51's client sends on a new connection before any call.
std::string ClientGreeting() {
  std::string g = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::string settings;
  AppendSetting(&settings, 0x2, 0);        // ENABLE_PUSH
  AppendSetting(&settings, 0x3, 0);        // MAX_CONCURRENT_STREAMS
  AppendSetting(&settings, 0x4, 4194304);  // INITIAL_WINDOW_SIZE
  AppendSetting(&settings, 0x6, 16384);    // MAX_HEADER_LIST_SIZE
  AppendSetting(&settings, 0xfe03, 1);     // grpc allow_true_binary_metadata
  AppendFrameHeader(&g, static_cast<uint32_t>(settings.size()), kSettings, 0,
                    0);
  g += settings;
  AppendFrameHeader(&g, 4, kWindowUpdate, 0, 0);
  AppendU32(&g, 4128769);  // gRPC's connection window increment
  return g;
}

enum class State { kConnecting, kOpen, kClosed };

struct Conn {
  int fd = -1;
  State state = State::kConnecting;
  bool server_settings = false;  // the server's transport answered
  std::string in;                // bytes of an incomplete frame
};

struct Counts {
  int open = 0;    // server SETTINGS received, still open
  int failed = 0;  // connect failed or closed before being open
  int closed = 0;  // closed by the server after being open
  int goaways = 0;
  int pings = 0;
};

bool SendAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n =
        send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // a few bytes never fill a socket buffer
    off += static_cast<size_t>(n);
  }
  return true;
}

void Close(int epfd, Conn* c, Counts* counts) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  if (c->state == State::kOpen && c->server_settings) {
    --counts->open;
    ++counts->closed;
  } else {
    ++counts->failed;
  }
  c->state = State::kClosed;
  c->in.clear();
  c->in.shrink_to_fit();
}

// Parses whole frames from c->in and answers SETTINGS and PING.
void HandleFrames(int epfd, Conn* c, Counts* counts) {
  size_t off = 0;
  while (c->in.size() - off >= 9) {
    const auto* p = reinterpret_cast<const unsigned char*>(c->in.data() + off);
    const uint32_t len = (p[0] << 16) | (p[1] << 8) | p[2];
    const uint8_t type = p[3], flags = p[4];
    if (c->in.size() - off < 9 + len) break;
    std::string reply;
    if (type == kSettings && !(flags & kAck)) {
      AppendFrameHeader(&reply, 0, kSettings, kAck, 0);
      if (!c->server_settings) {
        c->server_settings = true;
        ++counts->open;
      }
    } else if (type == kPing && !(flags & kAck) && len == 8) {
      AppendFrameHeader(&reply, 8, kPing, kAck, 0);
      reply.append(c->in, off + 9, 8);
      ++counts->pings;
    } else if (type == kGoaway) {
      ++counts->goaways;
    }
    off += 9 + len;
    if (!reply.empty() && !SendAll(c->fd, reply)) {
      Close(epfd, c, counts);
      return;
    }
  }
  c->in.erase(0, off);
}

void OnReadable(int epfd, Conn* c, Counts* counts) {
  char buf[16384];
  for (;;) {
    const ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n > 0) {
      c->in.append(buf, static_cast<size_t>(n));
      HandleFrames(epfd, c, counts);
      if (c->state == State::kClosed) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    Close(epfd, c, counts);  // EOF or error
    return;
  }
}

// Raises this process's descriptor limit to fit `want` (raising the hard
// limit too when privileged). Returns the soft limit now in force.
rlim_t RaiseNofile(rlim_t want) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_max < want) {
    rlimit higher{want, want};
    if (setrlimit(RLIMIT_NOFILE, &higher) == 0) return want;
  }
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

int StartConnect(const sockaddr_in& target, int index, int sources) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // as gRPC does
  if (sources > 0) {
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr =
        htonl(0x7f000002u + static_cast<uint32_t>(index % sources));
    if (bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
      close(fd);
      return -1;
    }
  }
  if (connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof target) !=
          0 &&
      errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Opens and holds idle HTTP/2 connections; reports server RSS per "
      "connection. See docs/benchmarks.md.");
  absl::ParseCommandLine(argc, argv);
  const int n = absl::GetFlag(FLAGS_connections);
  const int sources = absl::GetFlag(FLAGS_source_addresses);
  const std::string pid = absl::GetFlag(FLAGS_server_pid);
  const std::string target_str = absl::GetFlag(FLAGS_target);

  sockaddr_in target{};
  target.sin_family = AF_INET;
  const size_t colon = target_str.rfind(':');
  int port = 0;
  if (n < 1 || sources < 0 || colon == std::string::npos ||
      inet_pton(AF_INET, target_str.substr(0, colon).c_str(),
                &target.sin_addr) != 1 ||
      !absl::SimpleAtoi(target_str.substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    std::fprintf(stderr,
                 "need --target=IPv4:PORT, --connections >= 1, "
                 "--source_addresses >= 0\n");
    return 2;
  }
  target.sin_port = htons(static_cast<uint16_t>(port));
  const rlim_t nofile = RaiseNofile(static_cast<rlim_t>(n) + 64);
  if (nofile < static_cast<rlim_t>(n) + 16) {
    std::fprintf(stderr,
                 "RLIMIT_NOFILE is %llu, too low for %d connections "
                 "(run as root or raise the hard limit: ulimit -Hn)\n",
                 static_cast<unsigned long long>(nofile), n);
    return 2;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);

  const uint64_t rss_before = pid.empty() ? 0 : RssKiB(pid);
  const std::string greeting = ClientGreeting();
  const int epfd = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> conns(static_cast<size_t>(n));
  Counts counts;
  int next = 0, connecting = 0;
  const int at_once = std::max(1, absl::GetFlag(FLAGS_connecting_at_once));
  const auto start = Clock::now();
  const auto connect_deadline =
      start +
      std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(absl::GetFlag(FLAGS_connect_timeout)));
  std::vector<epoll_event> events(1024);

  // One loop for both phases: open (bounded by connect_deadline), then hold.
  auto poll_once = [&](int timeout_ms) {
    const int k = epoll_wait(epfd, events.data(),
                             static_cast<int>(events.size()), timeout_ms);
    for (int e = 0; e < k; ++e) {
      Conn* c = &conns[events[e].data.u32];
      if (c->state == State::kClosed) continue;
      if (c->state == State::kConnecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        --connecting;
        if (err != 0 || !SendAll(c->fd, greeting)) {
          Close(epfd, c, &counts);
          continue;
        }
        c->state = State::kOpen;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = events[e].data.u32;
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        continue;
      }
      OnReadable(epfd, c, &counts);
    }
  };

  while (!g_stop && Clock::now() < connect_deadline &&
         counts.open + counts.failed < n) {
    while (next < n && connecting < at_once) {
      Conn* c = &conns[static_cast<size_t>(next)];
      c->fd = StartConnect(target, next, sources);
      if (c->fd < 0) {
        c->state = State::kClosed;
        ++counts.failed;
      } else {
        epoll_event ev{};
        ev.events = EPOLLOUT;
        ev.data.u32 = static_cast<uint32_t>(next);
        epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
        ++connecting;
      }
      ++next;
    }
    poll_once(100);
  }
  const double open_seconds = Seconds(Clock::now() - start);
  const int opened = counts.open;
  const uint64_t rss_open = pid.empty() ? 0 : RssKiB(pid);
  std::printf("holding %d\n", opened);
  std::fflush(stdout);

  const auto hold_deadline =
      Clock::now() +
      std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(absl::GetFlag(FLAGS_hold)));
  while (!g_stop && Clock::now() < hold_deadline) poll_once(100);
  const uint64_t rss_end = pid.empty() ? 0 : RssKiB(pid);
  const uint64_t client_rss = RssKiB();

  // Per connection from the RSS at the end of the hold: right after the
  // last connection opens, the server is still answering the newest ones.
  const double per_conn =
      opened > 0
          ? (static_cast<double>(rss_end) - static_cast<double>(rss_before)) /
                opened
          : 0;
  std::printf(
      "connections: %d requested, %d opened in %.1f s over %d source "
      "address(es), %d failed, %d still open at the end (%d closed by the "
      "server, %d GOAWAY, %d pings answered); client RSS %.1f MiB\n",
      n, opened, open_seconds, sources == 0 ? 1 : sources, counts.failed,
      counts.open, counts.closed, counts.goaways, counts.pings,
      client_rss / 1024.0);
  if (!pid.empty()) {
    std::printf(
        "server RSS: %.1f MiB before, %.1f MiB with all open, %.1f MiB "
        "at the end = %.2f KiB per connection\n",
        rss_before / 1024.0, rss_open / 1024.0, rss_end / 1024.0, per_conn);
  }
  std::printf(
      "json: {\"connections\":%d,\"opened\":%d,\"open_seconds\":%.2f,"
      "\"failed\":%d,\"still_open\":%d,\"closed_by_server\":%d,"
      "\"server_rss_kib_before\":%llu,\"server_rss_kib_open\":%llu,"
      "\"server_rss_kib_end\":%llu,\"kib_per_connection\":%.3f,"
      "\"client_rss_kib\":%llu}\n",
      n, opened, open_seconds, counts.failed, counts.open, counts.closed,
      static_cast<unsigned long long>(rss_before),
      static_cast<unsigned long long>(rss_open),
      static_cast<unsigned long long>(rss_end), per_conn,
      static_cast<unsigned long long>(client_rss));
  for (Conn& c : conns) {
    if (c.state != State::kClosed) close(c.fd);
  }
  close(epfd);
  return opened == n && counts.open == n ? 0 : 1;
}
