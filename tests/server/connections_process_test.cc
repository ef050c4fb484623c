// Process tests of the descriptor limit (--raise_nofile): the real
// strata-server binary started with a low inherited soft RLIMIT_NOFILE
// must still accept more connections than that limit, because it raises
// the soft limit to the hard one at start (docs/operations.md,
// "Connections").

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

using ::testing::HasSubstr;

constexpr rlim_t kInheritedSoftLimit = 256;
constexpr int kConnections = 400;  // above kInheritedSoftLimit

// Sets this process's soft RLIMIT_NOFILE for the scope (a child started
// meanwhile inherits it), then restores it.
class ScopedSoftNofile {
 public:
  explicit ScopedSoftNofile(rlim_t soft) {
    getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    ok_ = setrlimit(RLIMIT_NOFILE, &lowered) == 0;
  }
  ~ScopedSoftNofile() { setrlimit(RLIMIT_NOFILE, &saved_); }
  bool ok() const { return ok_; }

 private:
  rlimit saved_{};
  bool ok_ = false;
};

// An open TCP socket closed on destruction.
struct Socket {
  explicit Socket(int f) : fd(f) {}
  ~Socket() {
    if (fd >= 0) close(fd);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd;
};

// Connects to 127.0.0.1:port and speaks the start of HTTP/2 (client
// preface, empty SETTINGS); true once the server's first frame, its
// SETTINGS, arrives within 10 s: its gRPC transport for the connection
// exists. The socket stays open in *out.
bool OpenHttp2Connection(int port, std::unique_ptr<Socket>* out) {
  auto s = std::make_unique<Socket>(socket(AF_INET, SOCK_STREAM, 0));
  if (s->fd < 0) return false;
  const timeval timeout{10, 0};
  setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s->fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) !=
      0) {
    return false;
  }
  static const char kGreeting[] =
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
      "\x00\x00\x00\x04\x00\x00\x00\x00\x00";  // empty SETTINGS
  const size_t greeting_size = sizeof kGreeting - 1;
  if (send(s->fd, kGreeting, greeting_size, MSG_NOSIGNAL) !=
      static_cast<ssize_t>(greeting_size)) {
    return false;
  }
  unsigned char header[9];
  size_t got = 0;
  while (got < sizeof header) {
    const ssize_t n = recv(s->fd, header + got, sizeof header - got, 0);
    if (n <= 0) return false;  // closed, or nothing within the timeout
    got += static_cast<size_t>(n);
  }
  *out = std::move(s);
  return header[3] == 0x4;  // SETTINGS
}

class ConnectionsProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(BinaryPath("server/strata-server").empty())
        << "STRATA_BINARY_DIR is not set (run through ctest)";
    rlimit rl{};
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    hard_ = rl.rlim_max;
    if (rl.rlim_max < 2 * kConnections || rl.rlim_cur < 2 * kConnections) {
      GTEST_SKIP() << "needs a descriptor limit of at least "
                   << 2 * kConnections << " (soft " << rl.rlim_cur << ", hard "
                   << rl.rlim_max << ")";
    }
  }

  // Starts the server with the soft limit lowered to kInheritedSoftLimit.
  std::unique_ptr<ServerProcess> StartWithLowSoftLimit(
      const std::vector<std::string>& extra = {}) {
    ScopedSoftNofile low(kInheritedSoftLimit);
    EXPECT_TRUE(low.ok());
    auto p = ServerProcess::Start(dir_.path() + "/data", extra);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  static int Port(const ServerProcess& p) {
    int port = 0;
    const std::string& a = p.address();
    EXPECT_TRUE(absl::SimpleAtoi(a.substr(a.rfind(':') + 1), &port)) << a;
    return port;
  }

  static void Stop(ServerProcess* p) {
    p->Signal(SIGTERM);
    auto exit = p->Wait(absl::Seconds(10));
    ASSERT_TRUE(exit.ok()) << exit.status();
    EXPECT_EQ(exit->exit_code, 0) << p->Stderr();
  }

  TempDir dir_;
  rlim_t hard_ = 0;
};

TEST_F(ConnectionsProcessTest,
       AcceptsMoreConnectionsThanTheInheritedSoftLimit) {
  auto server = StartWithLowSoftLimit();
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<Socket>> held;
  for (int i = 0; i < kConnections; ++i) {
    std::unique_ptr<Socket> s;
    ASSERT_TRUE(OpenHttp2Connection(Port(*server), &s))
        << "connection " << i << " of " << kConnections
        << " got no HTTP/2 SETTINGS from the server\n"
        << server->Stderr();
    held.push_back(std::move(s));
  }
  held.clear();
  Stop(server.get());
  EXPECT_THAT(server->Stderr(),
              HasSubstr(absl::StrCat("connections: RLIMIT_NOFILE soft ", hard_,
                                     " (inherited ", kInheritedSoftLimit,
                                     ", hard ", hard_, ")")));
}

TEST_F(ConnectionsProcessTest, RaiseNofileFalseKeepsTheInheritedLimit) {
  auto server = StartWithLowSoftLimit({"--raise_nofile=false"});
  ASSERT_NE(server, nullptr);
  Stop(server.get());
  EXPECT_THAT(server->Stderr(),
              HasSubstr(absl::StrCat("connections: RLIMIT_NOFILE soft ",
                                     kInheritedSoftLimit, " (inherited ",
                                     kInheritedSoftLimit, ", hard ", hard_,
                                     ", --raise_nofile=false)")));
}

TEST_F(ConnectionsProcessTest, LogsHowManyIdleConnectionsTheQuotaHolds) {
  // 14 MiB of quota at ~14 KiB per idle connection.
  auto server = StartWithLowSoftLimit({"--transport_memory_bytes=14680064"});
  ASSERT_NE(server, nullptr);
  Stop(server.get());
  EXPECT_THAT(
      server->Stderr(),
      HasSubstr("--transport_memory_bytes holds ~1024 idle connections"));
}

}  // namespace
}  // namespace strata::testing
