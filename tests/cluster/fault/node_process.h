#ifndef STRATA_TESTS_CLUSTER_FAULT_NODE_PROCESS_H_
#define STRATA_TESTS_CLUSTER_FAULT_NODE_PROCESS_H_

// One strata-server for fault-injection tests, controlled by PID: start,
// SIGTERM, SIGKILL, SIGSTOP/SIGCONT, restart with the same flags, data
// directory and port. Its stdout and stderr go to one log file (appended
// across restarts), so a chatty server never blocks on a full pipe.
// Destroying it SIGKILLs the process and reaps it, whatever state it is in
// (stopped too); if the test process dies first, the kernel SIGKILLs the
// server (PR_SET_PDEATHSIG, as EtcdProcess does). Start and Restart from
// the thread that lives longest (the test's main thread): the kernel ties
// that signal to the starting thread.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/cluster/etcd_process.h"  // PickFreePort

namespace strata::testing {

// The Debian libfaketime library for clock skew, or "" if the package is
// not installed (tests skip the skew fault then).
std::string FaketimeLibrary();
// Why a node cannot run under libfaketime here ("" if it can): the package
// is missing, or this is a sanitizer build (a preloaded libfaketime comes
// before the sanitizer runtime, which then aborts the server at start).
// Tests of the clock-skew fault skip with this reason.
std::string FaketimeUnavailableReason();

struct NodeSpec {
  std::string binary;    // Path of strata-server.
  std::string data_dir;  // --data_dir.
  int port = 0;          // --listen=127.0.0.1:<port> (fixed: see PickFreePort).
  std::vector<std::string> flags;  // Every other flag.
  // Extra environment (NAME=VALUE), e.g. LD_PRELOAD and FAKETIME for a
  // skewed clock. Added to this process's environment.
  std::vector<std::string> env;
  std::string log_path;  // stdout + stderr, appended.
};

class NodeProcess {
 public:
  // Starts the server and waits up to `timeout` for the "strata-server
  // listening on" line in its log. Unavailable (with the log's tail) if
  // it exits first, DeadlineExceeded if the line does not come in time.
  static absl::StatusOr<std::unique_ptr<NodeProcess>> Start(
      NodeSpec spec, absl::Duration timeout = absl::Seconds(30));
  ~NodeProcess();
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  const NodeSpec& spec() const { return spec_; }
  std::string address() const;  // "127.0.0.1:<port>".
  pid_t pid() const { return pid_; }  // -1 when not running.
  bool running() const { return pid_ > 0; }

  void Pause();   // SIGSTOP.
  void Resume();  // SIGCONT.
  // SIGKILL and reap.
  void Kill();
  // SIGTERM, wait up to `timeout`, then SIGKILL; reaps either way.
  void Stop(absl::Duration timeout = absl::Seconds(10));
  // Starts it again (after Kill/Stop) with the same spec (port, data
  // directory, flags, environment). FailedPrecondition if it is running;
  // otherwise as Start.
  absl::Status Restart(absl::Duration timeout = absl::Seconds(30));
  // Replaces the extra environment for the next Restart (to add or lift a
  // clock skew).
  void set_env(std::vector<std::string> env) { spec_.env = std::move(env); }

  // The last `bytes` of the log.
  std::string LogTail(size_t bytes = 4000) const;

 private:
  explicit NodeProcess(NodeSpec spec) : spec_(std::move(spec)) {}
  absl::Status Spawn(absl::Duration timeout);
  void Reap(absl::Duration timeout);

  NodeSpec spec_;
  pid_t pid_ = -1;
  size_t log_offset_ = 0;  // Where this incarnation's output starts.
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_CLUSTER_FAULT_NODE_PROCESS_H_
