#include "tests/cluster/etcd_process.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cluster/etcd_client.h"
#include "cluster/proto/etcd/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace strata::testing {
namespace {

std::string FindEtcd() {
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    for (absl::string_view dir : absl::StrSplit(path, ':')) {
      if (dir.empty()) continue;
      std::string candidate = absl::StrCat(dir, "/etcd");
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  if (access("/usr/bin/etcd", X_OK) == 0) return "/usr/bin/etcd";
  return "";
}

// One call of etcd's Auth API within 10 s, with `token` unless empty.
absl::Status CallEtcd(
    const char* what, const std::string& token,
    const std::function<grpc::Status(grpc::ClientContext*)>& rpc) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  ctx.set_wait_for_ready(true);
  if (!token.empty()) ctx.AddMetadata("token", token);
  const grpc::Status s = rpc(&ctx);
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("etcd ", what, ": ", s.error_message()));
}

// Reaps pid if it exited; true if it did (status filled).
bool Reaped(pid_t pid, int* status) {
  while (true) {
    const pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno == EINTR) continue;
    return r < 0;  // ECHILD: not ours any more.
  }
}

}  // namespace

absl::StatusOr<std::vector<int>> FreePorts(int n) {
  std::vector<int> fds, ports;
  absl::Status status;
  for (int i = 0; i < n && status.ok(); ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      status = absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
      break;
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      status = absl::InternalError(absl::StrCat("bind: ", strerror(errno)));
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) close(fd);
  if (!status.ok()) return status;
  return ports;
}

absl::StatusOr<int> PickFreePort() {
  absl::StatusOr<std::vector<int>> ports = FreePorts(1);
  if (!ports.ok()) return ports.status();
  return ports->front();
}

absl::StatusOr<pid_t> SpawnWithLog(const std::vector<std::string>& argv,
                                   const std::vector<std::string>& env,
                                   const std::string& log_path) {
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls until exec.
  std::vector<std::string> environment = env;
  if (environment.empty()) {
    for (char** e = environ; *e != nullptr; ++e) environment.emplace_back(*e);
  }
  std::vector<char*> cargv, cenv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (std::string& e : environment) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  const int log_fd =
      open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(
        absl::StrCat("open ", log_path, ": ", strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    close(log_fd);
    return absl::InternalError(absl::StrCat("fork: ", strerror(e)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  close(log_fd);
  return pid;
}

EtcdServerTls MutualTlsEtcd(
    const std::function<std::string(const std::string&)>& path) {
  EtcdServerTls tls;
  tls.cert_file = path("server.crt");
  tls.key_file = path("server.key");
  tls.client_ca_file = path("ca.crt");
  tls.probe.ca_file = path("ca.crt");
  tls.probe.cert_file = path("client.crt");
  tls.probe.key_file = path("client.key");
  return tls;
}

absl::StatusOr<std::unique_ptr<EtcdProcess>> EtcdProcess::Start(
    const std::string& data_dir, absl::Duration timeout, EtcdServerTls tls) {
  std::unique_ptr<EtcdProcess> p(new EtcdProcess());
  p->tls_ = std::move(tls);
  p->binary_ = FindEtcd();
  if (p->binary_.empty()) {
    return absl::FailedPreconditionError(
        "etcd not found on PATH or in /usr/bin: apt-get install etcd-server "
        "(scripts/lib.sh lists it)");
  }
  absl::StatusOr<std::vector<int>> ports = FreePorts(2);
  if (!ports.ok()) return ports.status();
  p->client_port_ = (*ports)[0];
  p->peer_port_ = (*ports)[1];
  p->endpoint_ = absl::StrCat("127.0.0.1:", p->client_port_);
  p->data_dir_ = data_dir;
  p->log_path_ = data_dir + ".log";
  if (absl::Status s = p->Spawn(); !s.ok()) return s;
  if (absl::Status s = p->WaitUntilServing(timeout); !s.ok()) return s;
  return p;
}

EtcdProcess::~EtcdProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    int status;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

absl::Status EtcdProcess::Spawn() {
  const bool tls = !tls_.cert_file.empty();
  const std::string client_url =
      absl::StrCat(tls ? "https://" : "http://", endpoint_);
  const std::string peer_url =
      absl::StrCat("http://127.0.0.1:", peer_port_);
  std::vector<std::string> args = {
      binary_,
      "--name=strata-test",
      absl::StrCat("--data-dir=", data_dir_),
      absl::StrCat("--listen-client-urls=", client_url),
      absl::StrCat("--advertise-client-urls=", client_url),
      absl::StrCat("--listen-peer-urls=", peer_url),
      absl::StrCat("--initial-advertise-peer-urls=", peer_url),
      absl::StrCat("--initial-cluster=strata-test=", peer_url),
      "--initial-cluster-state=new",
      "--heartbeat-interval=10",
      "--election-timeout=100",
      "--logger=zap",
      "--log-outputs=stderr",
  };
  if (tls) {
    args.push_back(absl::StrCat("--cert-file=", tls_.cert_file));
    args.push_back(absl::StrCat("--key-file=", tls_.key_file));
    if (!tls_.client_ca_file.empty()) {
      args.push_back("--client-cert-auth");
      args.push_back(absl::StrCat("--trusted-ca-file=", tls_.client_ca_file));
    }
  }
  absl::StatusOr<pid_t> pid = SpawnWithLog(args, {}, log_path_);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  return absl::OkStatus();
}

absl::Status EtcdProcess::WaitUntilServing(absl::Duration timeout) {
  cluster::EtcdClientOptions options;
  options.endpoint = endpoint_;
  options.call_timeout = absl::Milliseconds(250);
  options.tls = tls_.probe;
  options.auth = probe_auth_;
  cluster::EtcdClient client(options);
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last;
  while (absl::Now() < deadline) {
    int status;
    if (Reaped(pid_, &status)) {
      pid_ = -1;
      return absl::UnavailableError(
          absl::StrCat("etcd exited (status ", status, ") before serving:\n",
                       Log()));
    }
    auto r = client.Get("strata-test-probe");
    if (r.ok()) return absl::OkStatus();
    last = r.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::UnavailableError(absl::StrCat(
      "etcd did not answer within ", absl::FormatDuration(timeout), " (",
      last.ToString(), "):\n", Log()));
}

absl::Status EtcdProcess::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return absl::OkStatus();
  kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + timeout;
  int status;
  while (!Reaped(pid_, &status)) {
    if (absl::Now() >= deadline) {
      kill(pid_, SIGKILL);
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
      return absl::DeadlineExceededError("etcd ignored SIGTERM; killed");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  return absl::OkStatus();
}

absl::Status EtcdProcess::Restart(absl::Duration timeout) {
  if (absl::Status s = Stop(); !s.ok()) return s;
  if (absl::Status s = Spawn(); !s.ok()) return s;
  return WaitUntilServing(timeout);
}

absl::Status EtcdProcess::EnableAuth(
    const std::string& root_password,
    const std::vector<std::pair<std::string, std::string>>& users) {
  if (!tls_.cert_file.empty()) {
    return absl::FailedPreconditionError("EnableAuth: plaintext etcd only");
  }
  auto channel =
      grpc::CreateChannel(endpoint_, grpc::InsecureChannelCredentials());
  auto stub = etcdserverpb::Auth::NewStub(channel);
  auto call = [](const char* what,
                 const std::function<grpc::Status(grpc::ClientContext*)>& rpc) {
    return CallEtcd(what, "", rpc);
  };
  std::vector<std::pair<std::string, std::string>> all = {
      {"root", root_password}};
  all.insert(all.end(), users.begin(), users.end());
  for (const auto& [name, password] : all) {
    etcdserverpb::AuthUserAddRequest add;
    add.set_name(name);
    add.set_password(password);
    etcdserverpb::AuthUserAddResponse add_resp;
    if (absl::Status s = call("UserAdd",
                              [&](grpc::ClientContext* ctx) {
                                return stub->UserAdd(ctx, add, &add_resp);
                              });
        !s.ok()) {
      return s;
    }
    if (name != "root") {  // etcd's root role exists without RoleAdd.
      etcdserverpb::AuthRoleAddRequest role;
      role.set_name(name);
      etcdserverpb::AuthRoleAddResponse role_resp;
      if (absl::Status s = call("RoleAdd",
                                [&](grpc::ClientContext* ctx) {
                                  return stub->RoleAdd(ctx, role, &role_resp);
                                });
          !s.ok()) {
        return s;
      }
    }
    etcdserverpb::AuthUserGrantRoleRequest grant;
    grant.set_user(name);
    grant.set_role(name);
    etcdserverpb::AuthUserGrantRoleResponse grant_resp;
    if (absl::Status s = call("UserGrantRole",
                              [&](grpc::ClientContext* ctx) {
                                return stub->UserGrantRole(ctx, grant,
                                                           &grant_resp);
                              });
        !s.ok()) {
      return s;
    }
  }
  etcdserverpb::AuthEnableRequest enable;
  etcdserverpb::AuthEnableResponse enable_resp;
  if (absl::Status s = call("AuthEnable",
                            [&](grpc::ClientContext* ctx) {
                              return stub->AuthEnable(ctx, enable,
                                                      &enable_resp);
                            });
      !s.ok()) {
    return s;
  }
  probe_auth_.user = "root";
  probe_auth_.password = root_password;
  return absl::OkStatus();
}

absl::Status EtcdProcess::RevokeRootTokens() {
  if (probe_auth_.user.empty()) {
    return absl::FailedPreconditionError("RevokeRootTokens: no EnableAuth");
  }
  auto stub = etcdserverpb::Auth::NewStub(
      grpc::CreateChannel(endpoint_, grpc::InsecureChannelCredentials()));
  etcdserverpb::AuthenticateRequest auth;
  auth.set_name(probe_auth_.user);
  auth.set_password(probe_auth_.password);
  etcdserverpb::AuthenticateResponse token;
  if (absl::Status s = CallEtcd("Authenticate", "",
                                [&](grpc::ClientContext* ctx) {
                                  return stub->Authenticate(ctx, auth, &token);
                                });
      !s.ok()) {
    return s;
  }
  etcdserverpb::AuthUserChangePasswordRequest change;
  change.set_name(probe_auth_.user);
  change.set_password(probe_auth_.password);
  etcdserverpb::AuthUserChangePasswordResponse changed;
  return CallEtcd("UserChangePassword", token.token(),
                  [&](grpc::ClientContext* ctx) {
                    return stub->UserChangePassword(ctx, change, &changed);
                  });
}

std::string EtcdProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace strata::testing
