#ifndef STRATA_TESTS_SERVER_PROCESS_UTIL_H_
#define STRATA_TESTS_SERVER_PROCESS_UTIL_H_

// Running the real binaries from tests: a command to completion with
// captured output, and strata-server as a background process whose port is
// parsed from its "listening" line. Every wait is bounded.

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace strata::testing {

// Takes a gRPC library reference for the rest of the process, so
// destroying the last server or channel does not run gRPC's synchronous
// library shutdown (which can block ~10 s on a pending timer). Idempotent;
// thread-safe.
void PinGrpcLibrary();

// $STRATA_BINARY_DIR/<relative> (set by ctest for our tests), e.g.
// BinaryPath("server/strata-server"). Empty if the variable is unset.
std::string BinaryPath(std::string_view relative);

struct ProcessResult {
  bool exited = false;     // Exited normally; exit_code is valid.
  int exit_code = -1;
  int term_signal = 0;     // Signal that killed it, if not exited.
  bool timed_out = false;  // We killed it at the deadline.
  std::string out;         // Everything written to stdout.
  std::string err;         // Everything written to stderr.
};

// Runs argv (argv[0] is a path) feeding stdin_data on stdin, capturing
// stdout and stderr, and waits for it; SIGKILLs it at the timeout.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         std::string_view stdin_data = "",
                         absl::Duration timeout = absl::Seconds(30));

// How a background process ended.
struct ExitInfo {
  bool exited = false;
  int exit_code = -1;
  int term_signal = 0;
};

// strata-server running in the background. Destroying it SIGKILLs the
// process if it is still running.
class ServerProcess {
 public:
  // Starts BinaryPath("server/strata-server") with
  // --listen=127.0.0.1:0 --data_dir=data_dir and `extra` flags, stderr
  // going to data_dir + ".stderr", and waits (up to timeout) for its
  // "strata-server listening on HOST:PORT" line. Fails (with the server's
  // stderr) if it exits first or the deadline passes.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& data_dir, const std::vector<std::string>& extra = {},
      absl::Duration timeout = absl::Seconds(30));
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // Sends a signal (SIGTERM, SIGKILL...).
  void Signal(int sig);
  // Waits up to timeout for the process to end. DeadlineExceeded if it is
  // still running (it is left running).
  absl::StatusOr<ExitInfo> Wait(absl::Duration timeout);
  // What the server wrote to stderr so far.
  std::string Stderr() const;
  // Waits up to timeout for a stdout line starting with `prefix` and
  // returns the rest of it (e.g. prefix "strata-server metrics on " ->
  // "127.0.0.1:41234"). Lines read before (by Start too) are searched
  // first. DeadlineExceeded at the timeout, Unavailable if stdout closes.
  absl::StatusOr<std::string> WaitForStdoutLine(std::string_view prefix,
                                                absl::Duration timeout);

 private:
  ServerProcess() = default;

  pid_t pid_ = -1;
  bool reaped_ = false;
  int stdout_fd_ = -1;
  std::string stdout_;  // Everything read from stdout so far.
  std::string address_;
  std::string stderr_path_;
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_SERVER_PROCESS_UTIL_H_
