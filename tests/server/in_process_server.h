#ifndef STRATA_TESTS_SERVER_IN_PROCESS_SERVER_H_
#define STRATA_TESTS_SERVER_IN_PROCESS_SERVER_H_

// A real KvServer on a real DB in a temporary directory, listening on
// 127.0.0.1 port 0, for integration tests that use generated stubs or
// strata::Client.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/kv_server.h"
#include "server/rpc_observer.h"
#include "server/server_options.h"
#include "strata/storage/db.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::testing {

// Small pools so tests exercise cross-thread hand-offs on 2 cores.
server::ServerOptions TestServerOptions();

class InProcessServer {
 public:
  // Given the opened DB, returns the DB the server should use (e.g. a
  // fault-injecting wrapper that it owns and that forwards to the real one).
  using DbWrapper = std::function<std::unique_ptr<storage::DB>(storage::DB*)>;

  // Opens a DB in a fresh temp dir (engine options as given) and starts a
  // server on it. `observer` (optional) must outlive the server.
  static absl::StatusOr<std::unique_ptr<InProcessServer>> Start(
      server::ServerOptions options = TestServerOptions(),
      server::RpcObserver* observer = nullptr, DbWrapper wrap = nullptr,
      storage::Options engine = storage::Options());
  // Stops the server and closes the DB.
  ~InProcessServer();

  const std::string& address() const { return address_; }
  server::KvServer* server() { return server_.get(); }
  // The DB the server uses (the wrapper, if any).
  storage::DB* db() { return wrapped_ ? wrapped_.get() : db_.get(); }
  // Stops the server (idempotent); the DB stays open.
  void Shutdown() { server_->Shutdown(); }

  // RPCs the server is serving now (call objects beyond the idle server's
  // posted requests).
  int64_t RpcsInProgress() const {
    return server_->TEST_live_calls() - server_->TEST_idle_calls();
  }
  // Polls (every 2 ms, for at most `timeout`) until done(RpcsInProgress())
  // holds; returns whether it did. Polling, because the server has no
  // "RPC ended" signal a test could wait on.
  bool WaitForRpcs(const std::function<bool(int64_t)>& done,
                   absl::Duration timeout) const;
  // WaitForRpcs until no RPC is in progress.
  bool WaitForIdle(absl::Duration timeout) const {
    return WaitForRpcs([](int64_t n) { return n == 0; }, timeout);
  }

 private:
  InProcessServer() = default;

  TempDir dir_;
  std::unique_ptr<storage::DB> db_;
  std::unique_ptr<storage::DB> wrapped_;
  std::unique_ptr<server::KvServer> server_;
  std::string address_;
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_SERVER_IN_PROCESS_SERVER_H_
