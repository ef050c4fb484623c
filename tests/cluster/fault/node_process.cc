#include "tests/cluster/fault/node_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/cluster/etcd_process.h"

extern char** environ;

namespace strata::testing {
namespace {

std::string ReadFrom(const std::string& path, size_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const auto size = static_cast<size_t>(in.tellg());
  if (offset > size) offset = size;
  in.seekg(static_cast<std::streamoff>(offset));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// waitpid with a deadline (WNOHANG polling every 5 ms: a child's exit has
// no file descriptor to wait on).
bool WaitFor(pid_t pid, absl::Time deadline) {
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (absl::Now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

std::string FaketimeLibrary() {
  for (const char* p : {"/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"}) {
    if (std::filesystem::exists(p)) return p;
  }
  return "";
}

std::string FaketimeUnavailableReason() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return "a sanitizer build: libfaketime preloaded ahead of the sanitizer "
         "runtime aborts strata-server";
#else
  if (FaketimeLibrary().empty()) {
    return "faketime is not installed (Debian package faketime)";
  }
  return "";
#endif
}

absl::StatusOr<std::unique_ptr<NodeProcess>> NodeProcess::Start(
    NodeSpec spec, absl::Duration timeout) {
  std::unique_ptr<NodeProcess> n(new NodeProcess(std::move(spec)));
  if (absl::Status s = n->Spawn(timeout); !s.ok()) return s;
  return n;
}

std::string NodeProcess::address() const {
  return absl::StrCat("127.0.0.1:", spec_.port);
}

absl::Status NodeProcess::Spawn(absl::Duration timeout) {
  std::vector<std::string> argv = {
      spec_.binary, absl::StrCat("--listen=", address()),
      "--metrics_listen=127.0.0.1:0", "--data_dir=" + spec_.data_dir};
  argv.insert(argv.end(), spec_.flags.begin(), spec_.flags.end());
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.insert(env.end(), spec_.env.begin(), spec_.env.end());
  {
    std::error_code ec;
    log_offset_ = std::filesystem::exists(spec_.log_path, ec)
                      ? std::filesystem::file_size(spec_.log_path, ec)
                      : 0;
  }
  // The node dies with the thread that started it (the tests start nodes
  // from their main thread), also across its own re-exec on a role change.
  absl::StatusOr<pid_t> pid = SpawnWithLog(argv, env, spec_.log_path);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (ReadFrom(spec_.log_path, log_offset_)
            .find("strata-server listening on ") != std::string::npos) {
      return absl::OkStatus();
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(absl::StrCat(
          "strata-server exited before listening (status ", status,
          "); log: ", LogTail()));
    }
    if (absl::Now() >= deadline) {
      Kill();
      return absl::DeadlineExceededError(absl::StrCat(
          "strata-server did not report listening; log: ", LogTail()));
    }
    // The log is a file: nothing to poll on, so look again shortly.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

NodeProcess::~NodeProcess() { Kill(); }

void NodeProcess::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}
void NodeProcess::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

void NodeProcess::Reap(absl::Duration timeout) {
  if (pid_ <= 0) return;
  if (!WaitFor(pid_, absl::Now() + timeout)) {
    kill(pid_, SIGKILL);
    kill(pid_, SIGCONT);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
}

void NodeProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  kill(pid_, SIGCONT);  // A stopped process dies on SIGKILL too; harmless.
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

void NodeProcess::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);
  kill(pid_, SIGTERM);
  Reap(timeout);
}

absl::Status NodeProcess::Restart(absl::Duration timeout) {
  if (pid_ > 0) return absl::FailedPreconditionError("node is still running");
  return Spawn(timeout);
}

std::string NodeProcess::LogTail(size_t bytes) const {
  std::string all = ReadFrom(spec_.log_path, 0);
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

}  // namespace strata::testing
