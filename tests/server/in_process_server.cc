#include "tests/server/in_process_server.h"

#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace strata::testing {

server::ServerOptions TestServerOptions() {
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.cq_threads = 2;
  options.io_threads = 2;
  options.calls_per_method = 2;
  options.shutdown_grace = absl::Seconds(2);
  return options;
}

bool InProcessServer::WaitForRpcs(const std::function<bool(int64_t)>& done,
                                  absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done(RpcsInProgress())) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

absl::StatusOr<std::unique_ptr<InProcessServer>> InProcessServer::Start(
    server::ServerOptions options, server::RpcObserver* observer,
    DbWrapper wrap, storage::Options engine) {
  PinGrpcLibrary();
  std::unique_ptr<InProcessServer> s(new InProcessServer());
  // The expirer and the engine judge deadlines by one clock and one lease
  // table, as in strata-server (main.cc).
  if (options.expiry.env == nullptr) options.expiry.env = engine.env;
  if (options.expiry.leases == nullptr && engine.lease_deadlines == nullptr) {
    options.expiry.leases = std::make_shared<server::LeaseTable>();
    engine.lease_deadlines = options.expiry.leases.get();
  }
  // Compaction drops deleted namespaces' keys, as in strata-server.
  if (options.deleted_namespaces == nullptr &&
      engine.compaction_filter == nullptr) {
    options.deleted_namespaces = std::make_shared<server::DeletedNamespaces>();
    engine.compaction_filter = options.deleted_namespaces;
  }
  absl::StatusOr<std::unique_ptr<storage::DB>> db =
      storage::DB::Open(engine, s->dir_.path() + "/db");
  if (!db.ok()) return db.status();
  s->db_ = *std::move(db);
  if (wrap) s->wrapped_ = wrap(s->db_.get());
  s->server_ = std::make_unique<server::KvServer>(std::move(options), s->db(),
                                                  observer);
  if (absl::Status st = s->server_->Start(); !st.ok()) return st;
  s->address_ = s->server_->bound_address();
  return s;
}

InProcessServer::~InProcessServer() {
  if (server_) server_->Shutdown();
  server_.reset();
  wrapped_.reset();
  db_.reset();
}

}  // namespace strata::testing
