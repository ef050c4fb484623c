// noop-server: a do-nothing asynchronous gRPC server implementing
// strata.v1.KV. Every Get/Put/Delete/Write gets an empty OK response and
// every Scan an empty OK stream, straight from the completion-queue thread.
// It is the ceiling for the server benchmarks (bench/server-compare.sh):
// what Debian's gRPC can do on this machine with no storage behind it.
//
// Prints "noop-server listening on HOST:PORT" on stdout; SIGTERM or SIGINT
// stop it (exit 0).

#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "strata/v1/kv.grpc.pb.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50052",
          "host:port to serve on (port 0 picks a free port).");
ABSL_FLAG(int32_t, cq_threads, 1,
          "Completion queues, each with one polling thread.");
ABSL_FLAG(bool, mutex_deadlock_detection, false,
          "Keep Abseil's Mutex deadlock detection on, as Debian's Abseil "
          "ships it (built without NDEBUG; gRPC 1.51 locks absl::Mutex on "
          "every call). Off by default, like strata-server (server/main.cc "
          "turns it off).");
ABSL_FLAG(bool, health_service, false,
          "Also enable gRPC's default health service (as strata-server "
          "does). In Debian's gRPC 1.51 it is a callback-API service, which "
          "starts gRPC's 'nexting' threads; they poll the same epoll set as "
          "the completion-queue thread. Shows what that costs.");
ABSL_FLAG(int32_t, calls_per_method, 8,
          "Requests kept posted per method per queue (strata-server's "
          "default is 8 too).");

namespace strata::bench {
namespace {

using Service = v1::KV::AsyncService;

// A completion-queue tag.
class Tag {
 public:
  virtual ~Tag() = default;
  virtual void Proceed(bool ok) = 0;
};

// One unary call: requested, answered at once, deleted when the answer is
// sent. Each arrival posts its replacement first.
// kRequest: &Service::RequestX (a member of one of Service's bases).
template <class Req, class Resp, auto kRequest>
class UnaryCall final : public Tag {
 public:
  UnaryCall(Service* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), writer_(&ctx_) {
    (service_->*kRequest)(&ctx_, &request_, &writer_, cq_, cq_, this);
  }
  void Proceed(bool ok) override {
    if (!ok || answered_) {  // Shutdown, or the answer went out.
      delete this;
      return;
    }
    new UnaryCall(service_, cq_);
    answered_ = true;
    writer_.Finish(response_, grpc::Status::OK, this);
  }

 private:
  Service* const service_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  Req request_;
  Resp response_;
  grpc::ServerAsyncResponseWriter<Resp> writer_;
  bool answered_ = false;
};

// A Scan: an empty stream, finished at once.
class ScanCall final : public Tag {
 public:
  ScanCall(Service* service, grpc::ServerCompletionQueue* cq)
      : service_(service), cq_(cq), writer_(&ctx_) {
    service_->RequestScan(&ctx_, &request_, &writer_, cq_, cq_, this);
  }
  void Proceed(bool ok) override {
    if (!ok || answered_) {
      delete this;
      return;
    }
    new ScanCall(service_, cq_);
    answered_ = true;
    writer_.Finish(grpc::Status::OK, this);
  }

 private:
  Service* const service_;
  grpc::ServerCompletionQueue* const cq_;
  grpc::ServerContext ctx_;
  v1::ScanRequest request_;
  grpc::ServerAsyncWriter<v1::ScanResponse> writer_;
  bool answered_ = false;
};

using GetCall = UnaryCall<v1::GetRequest, v1::GetResponse, &Service::RequestGet>;
using PutCall = UnaryCall<v1::PutRequest, v1::PutResponse, &Service::RequestPut>;
using DeleteCall = UnaryCall<v1::DeleteRequest, v1::DeleteResponse,
                             &Service::RequestDelete>;
using WriteCall =
    UnaryCall<v1::WriteRequest, v1::WriteResponse, &Service::RequestWrite>;

void Poll(grpc::ServerCompletionQueue* cq) {
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) static_cast<Tag*>(tag)->Proceed(ok);
}

int Main() {
  const int cq_threads = absl::GetFlag(FLAGS_cq_threads);
  const int calls = absl::GetFlag(FLAGS_calls_per_method);
  if (cq_threads < 1 || calls < 1) {
    std::fprintf(stderr, "noop-server: --cq_threads and --calls_per_method "
                         "must be >= 1\n");
    return 2;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (absl::GetFlag(FLAGS_health_service)) {
    grpc::EnableDefaultHealthCheckService(true);
  }
  Service service;
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  for (int i = 0; i < cq_threads; ++i) cqs.push_back(builder.AddCompletionQueue());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "noop-server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  for (auto& cq : cqs) {
    for (int i = 0; i < calls; ++i) {
      new GetCall(&service, cq.get());
      new PutCall(&service, cq.get());
      new DeleteCall(&service, cq.get());
      new WriteCall(&service, cq.get());
      new ScanCall(&service, cq.get());
    }
  }
  std::vector<std::thread> pollers;
  for (auto& cq : cqs) pollers.emplace_back(Poll, cq.get());
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("noop-server listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  for (auto& cq : cqs) cq->Shutdown();
  for (std::thread& t : pollers) t.join();
  return 0;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "a do-nothing async gRPC server for strata.v1.KV (benchmark "
      "ceiling).\n\nUsage: noop-server [--listen=HOST:PORT] [--cq_threads=N]");
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_mutex_deadlock_detection)) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  return strata::bench::Main();
}
