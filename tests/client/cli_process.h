#ifndef STRATA_TESTS_CLIENT_CLI_PROCESS_H_
#define STRATA_TESTS_CLIENT_CLI_PROCESS_H_

// A `strata` CLI command running in the background (e.g. `strata watch`),
// whose stdout a test reads line by line while it runs and which it stops
// with a signal. Every wait is bounded.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/server/process_util.h"

namespace strata::testing {

class CliProcess {
 public:
  // Starts BinaryPath("client/strata") with `args`, stdin from /dev/null,
  // stdout to a pipe this object reads, stderr to `stderr_path`.
  static absl::StatusOr<std::unique_ptr<CliProcess>> Start(
      const std::vector<std::string>& args, const std::string& stderr_path);
  // SIGKILLs the process if it still runs.
  ~CliProcess();
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;

  // Waits until stdout holds at least n complete lines (or stdout closes,
  // or the timeout passes) and returns the complete lines so far.
  std::vector<std::string> WaitForLines(size_t n, absl::Duration timeout);
  void Signal(int sig);
  // Waits for the process to end (reading the rest of stdout).
  // DeadlineExceeded if it still runs at the timeout.
  absl::StatusOr<ExitInfo> Wait(absl::Duration timeout);
  // Everything it wrote to stdout / stderr so far.
  const std::string& out() const { return out_; }
  std::string err() const;

 private:
  CliProcess() = default;
  // Reads what stdout has until `deadline`; false once it is closed.
  bool ReadSome(absl::Time deadline);

  pid_t pid_ = -1;
  bool reaped_ = false;
  int stdout_fd_ = -1;
  std::string out_;
  std::string stderr_path_;
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_CLIENT_CLI_PROCESS_H_
