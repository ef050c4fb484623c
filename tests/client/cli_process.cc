#include "tests/client/cli_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace strata::testing {
namespace {

int RemainingMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CliProcess>> CliProcess::Start(
    const std::vector<std::string>& args, const std::string& stderr_path) {
  const std::string binary = BinaryPath("client/strata");
  if (binary.empty()) {
    return absl::FailedPreconditionError("STRATA_BINARY_DIR is not set");
  }
  std::unique_ptr<CliProcess> p(new CliProcess());
  p->stderr_path_ = stderr_path;
  std::vector<std::string> argv = {binary};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
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
  return p;
}

CliProcess::~CliProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

bool CliProcess::ReadSome(absl::Time deadline) {
  if (stdout_fd_ < 0) return false;
  pollfd fd = {stdout_fd_, POLLIN, 0};
  const int ms = RemainingMs(deadline);
  if (ms == 0) return true;
  const int n = poll(&fd, 1, ms);
  if (n <= 0) return true;  // Timeout (or EINTR): the caller checks time.
  char buf[4096];
  const ssize_t r = read(stdout_fd_, buf, sizeof(buf));
  if (r > 0) {
    out_.append(buf, static_cast<size_t>(r));
    return true;
  }
  if (r < 0 && errno == EINTR) return true;
  close(stdout_fd_);
  stdout_fd_ = -1;
  return false;
}

std::vector<std::string> CliProcess::WaitForLines(size_t n,
                                                  absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  auto complete_lines = [this] {
    std::vector<std::string> lines = absl::StrSplit(out_, '\n');
    lines.pop_back();  // After the last '\n': not a complete line.
    return lines;
  };
  while (complete_lines().size() < n && absl::Now() < deadline &&
         ReadSome(deadline)) {
  }
  return complete_lines();
}

void CliProcess::Signal(int sig) {
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

absl::StatusOr<ExitInfo> CliProcess::Wait(absl::Duration timeout) {
  if (reaped_) return absl::FailedPreconditionError("already reaped");
  const absl::Time deadline = absl::Now() + timeout;
  // The process closes stdout as it exits.
  while (absl::Now() < deadline && ReadSome(deadline)) {
  }
  int status = 0;
  while (true) {
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (r < 0 && errno != EINTR) break;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError("strata still running");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  reaped_ = true;
  ExitInfo info;
  if (WIFEXITED(status)) {
    info.exited = true;
    info.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info.term_signal = WTERMSIG(status);
  }
  return info;
}

std::string CliProcess::err() const {
  std::ifstream in(stderr_path_, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace strata::testing
