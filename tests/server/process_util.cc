#include "tests/server/process_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpc/grpc.h"

extern char** environ;

namespace strata::testing {
namespace {

std::vector<char*> CArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const std::string& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

int RemainingMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
}

// Reaps pid, waiting until deadline (polling: there is no portable
// waitpid-with-timeout). Returns false if it is still running.
bool WaitUntil(pid_t pid, absl::Time deadline, int* status) {
  while (true) {
    const pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return true;  // Already reaped or not ours.
    if (absl::Now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void FillExit(int status, bool* exited, int* code, int* sig) {
  if (WIFEXITED(status)) {
    *exited = true;
    *code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    *sig = WTERMSIG(status);
  }
}

}  // namespace

void PinGrpcLibrary() {
  static const bool pinned = [] {
    grpc_init();
    return true;
  }();
  (void)pinned;
}

std::string BinaryPath(std::string_view relative) {
  const char* dir = std::getenv("STRATA_BINARY_DIR");
  if (dir == nullptr || *dir == '\0') return "";
  return absl::StrCat(dir, "/", std::string(relative));
}

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         std::string_view stdin_data, absl::Duration timeout) {
  ProcessResult result;
  signal(SIGPIPE, SIG_IGN);  // A child that exits early must not kill us.
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(err, O_CLOEXEC) != 0) {
    result.err = "pipe failed";
    return result;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> cargv = CArgv(argv);
  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    result.err = absl::StrCat("posix_spawn ", argv[0], ": ", strerror(rc));
    return result;
  }
  const absl::Time deadline = absl::Now() + timeout;
  int in_fd = in[1];
  fcntl(in_fd, F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  int out_fd = out[0], err_fd = err[0];
  char buf[65536];
  while (out_fd >= 0 || err_fd >= 0) {
    pollfd fds[3];
    int n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    const int ms = RemainingMs(deadline);
    if (ms == 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    if (poll(fds, n, ms) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        const ssize_t w = write(in_fd, stdin_data.data() + written,
                                stdin_data.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN) written = stdin_data.size();
        if (written == stdin_data.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      int* fd = fds[i].fd == out_fd ? &out_fd : &err_fd;
      std::string* sink = fds[i].fd == out_fd ? &result.out : &result.err;
      const ssize_t r = read(*fd, buf, sizeof(buf));
      if (r > 0) {
        sink->append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        close(*fd);
        *fd = -1;
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd}) {
    if (fd >= 0) close(fd);
  }
  int status = 0;
  if (!WaitUntil(pid, deadline + absl::Seconds(1), &status)) {
    result.timed_out = true;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  FillExit(status, &result.exited, &result.exit_code, &result.term_signal);
  return result;
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& data_dir, const std::vector<std::string>& extra,
    absl::Duration timeout) {
  PinGrpcLibrary();  // The caller is about to make clients.
  const std::string binary = BinaryPath("server/strata-server");
  if (binary.empty()) {
    return absl::FailedPreconditionError("STRATA_BINARY_DIR is not set");
  }
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  p->stderr_path_ = data_dir + ".stderr";
  // Metrics on a free port too, so servers of parallel tests never fight
  // over the default 127.0.0.1:9090.
  std::vector<std::string> argv = {binary, "--listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0",
                                   "--data_dir=" + data_dir};
  argv.insert(argv.end(), extra.begin(), extra.end());
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, p->stderr_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<char*> cargv = CArgv(argv);
  const int rc =
      posix_spawn(&p->pid_, cargv[0], &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    p->pid_ = -1;
    return absl::InternalError(absl::StrCat("posix_spawn: ", strerror(rc)));
  }
  p->stdout_fd_ = out[0];

  const absl::Time deadline = absl::Now() + timeout;
  const std::string marker = "strata-server listening on ";
  std::string text;
  char buf[4096];
  while (true) {
    const size_t at = text.find(marker);
    const size_t eol = at == std::string::npos ? at : text.find('\n', at);
    if (eol != std::string::npos) {
      p->address_ = text.substr(at + marker.size(), eol - at - marker.size());
      p->stdout_ = std::move(text);
      return p;
    }
    pollfd fd = {p->stdout_fd_, POLLIN, 0};
    const int ms = RemainingMs(deadline);
    if (ms == 0 || poll(&fd, 1, ms) == 0) {
      return absl::DeadlineExceededError(absl::StrCat(
          "strata-server did not report its port; stderr: ", p->Stderr()));
    }
    const ssize_t r = read(p->stdout_fd_, buf, sizeof(buf));
    if (r <= 0) {
      auto exit = p->Wait(absl::Seconds(10));
      return absl::UnavailableError(absl::StrFormat(
          "strata-server exited before listening (exit %d, signal %d); "
          "stderr: %s",
          exit.ok() ? exit->exit_code : -1, exit.ok() ? exit->term_signal : -1,
          p->Stderr()));
    }
    text.append(buf, static_cast<size_t>(r));
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

void ServerProcess::Signal(int sig) {
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

absl::StatusOr<ExitInfo> ServerProcess::Wait(absl::Duration timeout) {
  if (reaped_) return absl::FailedPreconditionError("already reaped");
  int status = 0;
  if (!WaitUntil(pid_, absl::Now() + timeout, &status)) {
    return absl::DeadlineExceededError("strata-server still running");
  }
  reaped_ = true;
  ExitInfo info;
  FillExit(status, &info.exited, &info.exit_code, &info.term_signal);
  return info;
}

absl::StatusOr<std::string> ServerProcess::WaitForStdoutLine(
    std::string_view prefix, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (true) {
    for (size_t start = 0; start < stdout_.size();) {
      const size_t eol = stdout_.find('\n', start);
      if (eol == std::string::npos) break;
      const std::string_view line(stdout_.data() + start, eol - start);
      if (line.substr(0, prefix.size()) == prefix) {
        return std::string(line.substr(prefix.size()));
      }
      start = eol + 1;
    }
    pollfd fd = {stdout_fd_, POLLIN, 0};
    const int ms = RemainingMs(deadline);
    if (ms == 0 || poll(&fd, 1, ms) == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("no stdout line starting with '", std::string(prefix),
                       "'; stdout so far: ", stdout_));
    }
    const ssize_t r = read(stdout_fd_, buf, sizeof(buf));
    if (r <= 0) {
      return absl::UnavailableError(
          absl::StrCat("stdout closed without a line starting with '",
                       std::string(prefix), "'; stdout: ", stdout_));
    }
    stdout_.append(buf, static_cast<size_t>(r));
  }
}

std::string ServerProcess::Stderr() const {
  std::ifstream in(stderr_path_, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace strata::testing
