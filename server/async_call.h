#ifndef STRATA_SERVER_ASYNC_CALL_H_
#define STRATA_SERVER_ASYNC_CALL_H_

// The machinery of the asynchronous (completion-queue) gRPC server: an
// untyped call base whose Proceed(ok) every completion-queue tag invokes,
// one call template for unary and server-streaming RPCs, and the per-queue
// factories that arm and recycle calls. Methods are registered with their
// handlers in rpc_registry.h; everything else (re-arming, accounting,
// limits, recycling) lives here.
//
// Call life cycle (AsyncCall; the streaming-only steps are marked [S]):
//
//   Arm(): [S] AsyncNotifyWhenDone(done tag), then
//          Request<Method>(ctx, &request, &writer, cq, cq, this)
//       |
//       v
//   +------------+  ok=false (server shutting down): Recycle; the
//   | kRequested |  request was never matched, so no done tag will come
//   +------------+
//       | ok=true: [S] tags_ = 2 (finish and done tags); arm a
//       | replacement call for the method; OnRpcStart; authorization
//       | (authz.h), in-flight cap, request size and deadline (a refused
//       | RPC goes straight to Finish(error));
//       | unary: handler(call)   [S] handler(call, kStarted)
//       v
//   +------------+  [S] Write(msg)  +-----------+  tag(ok)
//   |  kActive   |----------------->| kWriting  |---------> handler(call,
//   +------------+<-----------------+-----------+  kWriteDone | kWriteFailed)
//       | Finish(status[, [S] last message]): exactly once, from any
//       | thread (the handler, the engine callback, a pool task, a thread
//       | feeding the stream); [S] Write too
//       v
//   +------------+  tag returns: ok=true (status sent) or ok=false
//   | kFinishing |  (client gone: counted as CANCELLED)
//   +------------+
//       | OnRpcEnd, [S] tags_--    [S] done tag: the call is over
//       v                              (finished, cancelled, deadline);
//   +------------+                     comes in any state after
//   |   kDone    |                     kRequested. If cancelled after
//   +------------+                     kStarted: handler(call,
//       |                              kCancelled). tags_--
//       | unary, or [S] tags_ == 0 <-------------+
//       v
//   Recycle(): ServerContext and writer destroyed, messages and State
//   cleared, object back on its queue's free list (reused by the next Arm).
//
// A failed write (ok=false) or a done tag reporting cancellation sets
// cancelled(); the handler sees it and calls Finish (whose tag then comes
// back ok=false). ok=false is never an error here: it is how gRPC reports
// shutdown and cancellation, and it only ever frees the call.
//
// Threading: each completion queue has exactly one polling thread, and a
// call only ever receives tags on the queue it was requested on, so a
// queue's CallFactory free lists and counters are touched by that thread
// alone (no locks). Handlers may hand the call to another thread (engine
// callback, blocking pool, a thread that feeds a stream); that thread may
// call Write/Finish. Exactly one operation (Write or Finish) is outstanding
// per call at a time, and after starting one the starting thread must not
// touch the call again: the tag may already be running Proceed on the
// polling thread.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/async_stream.h"
#include "grpcpp/support/async_unary_call.h"
#include "server/authz.h"
#include "server/limits.h"
#include "server/rpc_observer.h"
#include "server/status_util.h"

namespace strata::server {

// Anything whose address is used as a completion-queue tag. The polling
// loop does static_cast<CallBase*>(tag)->Proceed(ok).
class CallBase {
 public:
  // Advances the state machine. ok=false means the operation did not happen
  // (shutdown, cancellation, broken stream); it is a normal event.
  virtual void Proceed(bool ok) = 0;

 protected:
  ~CallBase() = default;
};

// Per-method settings and counters, shared by all completion queues.
// Immutable after registration except `inflight`.
struct MethodInfo {
  // "Get", "Scan", ...: static storage; passed to the RpcObserver.
  std::string_view name;
  // Most RPCs of this method in progress at once; 0 = unlimited (then
  // `inflight` is not touched).
  int max_inflight = 0;
  // The flag that sets max_inflight, named in the RESOURCE_EXHAUSTED
  // message ("--max_inflight_rpcs"); may be empty.
  std::string_view max_inflight_flag;
  // Request size limit (Limits::max_message_bytes).
  Limits limits;
  // Whether the RpcObserver hears of this method's RPCs. False for
  // grpc.health.v1 (probes are not KV traffic and have no metrics row).
  bool observed = true;
  // Added to the wall clock when checking a new request's deadline
  // (ServerOptions::TEST_deadline_clock_offset; 0 outside tests).
  std::chrono::nanoseconds deadline_clock_offset{0};
  // Authorization (authz.h): null = the method is not checked (no policy,
  // or not a strata.v1.KV method). Else every request passes
  // authorizer->Check(name, access_rule, ...) before its handler runs; a
  // null access_rule is refused.
  const Authorizer* authorizer = nullptr;
  AccessRule access_rule = nullptr;
  // The server-wide byte budget of requests in progress
  // (--max_inflight_bytes); null = none. Not owned; outlives the method.
  InflightBytes* inflight_bytes = nullptr;
  std::atomic<int> inflight{0};
};

// Per-completion-queue state: the queue, the observer and the count of
// call objects that are live (armed or serving), read by
// KvServer::Shutdown to know when the queue may be shut down.
class CqState {
 public:
  CqState(grpc::ServerCompletionQueue* cq, RpcObserver* observer,
          std::atomic<bool>* draining, absl::Mutex* drain_mu)
      : cq_(cq), observer_(observer), draining_(draining), drain_mu_(drain_mu) {}

  grpc::ServerCompletionQueue* cq() const { return cq_; }
  RpcObserver* observer() const { return observer_; }
  int64_t live_calls() const { return live_calls_.load(); }

  void CallArmed() { live_calls_.fetch_add(1); }
  // Wakes KvServer::Shutdown when the last call of a draining server ends.
  void CallRecycled() {
    if (live_calls_.fetch_sub(1) == 1 && draining_->load()) {
      absl::MutexLock lock(drain_mu_);  // Re-evaluates the waiter's condition.
    }
  }

 private:
  grpc::ServerCompletionQueue* const cq_;
  RpcObserver* const observer_;
  std::atomic<bool>* const draining_;
  absl::Mutex* const drain_mu_;
  // Only the polling thread writes; seq_cst pairs with draining_ (see
  // CallRecycled and KvServer::Shutdown).
  alignas(64) std::atomic<int64_t> live_calls_{0};
};

// Type-erased owner of one method's calls on one queue.
class CallFactoryBase {
 public:
  virtual ~CallFactoryBase() = default;
  // Posts n requests for the method. Polling thread only.
  virtual void Prime(int n) = 0;
};

// Creates, arms and recycles the calls of one method on one completion
// queue. Polling thread only (Prime runs there before the loop starts).
template <class Call>
class CallFactory final : public CallFactoryBase {
 public:
  using Method = typename Call::Method;
  // Finished calls kept for reuse; above this they are deleted.
  static constexpr size_t kMaxFree = 256;

  CallFactory(Method* method, CqState* cq) : method_(method), cq_(cq) {}
  ~CallFactory() override {
    for (Call* call : free_) delete call;
  }

  void Prime(int n) override {
    for (int i = 0; i < n; ++i) Arm();
  }

  // Posts one request for the method with a fresh or recycled call.
  void Arm() {
    Call* call;
    if (free_.empty()) {
      call = new Call(this);
    } else {
      call = free_.back();
      free_.pop_back();
    }
    cq_->CallArmed();
    call->Arm();
  }

  // Takes back a finished call.
  void Recycle(Call* call) {
    call->Reset();
    if (free_.size() < kMaxFree) {
      free_.push_back(call);
    } else {
      delete call;
    }
    cq_->CallRecycled();
  }

  Method& method() const { return *method_; }
  CqState* cq() const { return cq_; }
  // The observer this method's calls report to.
  RpcObserver* observer() const {
    return method_->info.observed ? cq_->observer() : NoopRpcObserver();
  }

 private:
  Method* const method_;
  CqState* const cq_;
  std::vector<Call*> free_;
};

// Bookkeeping of one RPC: timing, observer calls, in-flight cap and
// request size check.
class RpcAccounting {
 public:
  // Records the start and reports it to the observer. Returns a non-OK
  // status if the RPC must be refused (count cap or byte budget reached:
  // RESOURCE_EXHAUSTED; request too large: INVALID_ARGUMENT).
  absl::Status Begin(MethodInfo* info, RpcObserver* observer,
                     size_t request_bytes) {
    start_ = std::chrono::steady_clock::now();
    request_bytes_ = request_bytes;
    response_bytes_ = 0;
    observer->OnRpcStart(info->name);
    if (info->max_inflight > 0) {
      counted_ = true;
      if (info->inflight.fetch_add(1, std::memory_order_relaxed) >=
          info->max_inflight) {
        return CapReached(*info);
      }
    }
    if (absl::Status s = ValidateRequestSize(request_bytes, info->limits);
        !s.ok()) {
      return s;
    }
    if (info->inflight_bytes != nullptr) {
      if (absl::Status s = info->inflight_bytes->Acquire(request_bytes);
          !s.ok()) {
        return s;
      }
      bytes_held_ = request_bytes;
    }
    return absl::OkStatus();
  }
  void AddResponseBytes(size_t n) { response_bytes_ += n; }
  size_t request_bytes() const { return request_bytes_; }
  size_t response_bytes() const { return response_bytes_; }
  // Reports the end to the observer and releases the in-flight slot.
  void End(MethodInfo* info, RpcObserver* observer, grpc::StatusCode code) {
    if (counted_) {
      info->inflight.fetch_sub(1, std::memory_order_relaxed);
      counted_ = false;
    }
    if (bytes_held_ > 0) {
      info->inflight_bytes->Release(bytes_held_);
      bytes_held_ = 0;
    }
    const double seconds = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - start_)
                               .count();
    observer->OnRpcEnd(info->name, code, seconds, request_bytes_,
                       response_bytes_);
  }

 private:
  static absl::Status CapReached(const MethodInfo& info) {
    const std::string flag =
        info.max_inflight_flag.empty()
            ? std::string()
            : absl::StrFormat(" (%s)", std::string(info.max_inflight_flag));
    return absl::ResourceExhaustedError(absl::StrFormat(
        "too many %s RPCs in progress; the limit is %d%s",
        std::string(info.name), info.max_inflight, flag));
  }

  std::chrono::steady_clock::time_point start_;
  size_t request_bytes_ = 0;
  size_t response_bytes_ = 0;
  size_t bytes_held_ = 0;  // Taken from MethodInfo::inflight_bytes.
  bool counted_ = false;
};

// Messages whose buffers grew past this are replaced, not cleared, when a
// call is recycled, so pooled calls do not pin megabytes.
inline constexpr size_t kMaxRetainedMessageBytes = 64 << 10;

template <class Message>
void ClearForReuse(Message* m, size_t bytes_seen) {
  if (bytes_seen > kMaxRetainedMessageBytes) {
    *m = Message();
  } else {
    m->Clear();
  }
}

// How a method answers: one response, or a stream of them.
enum class RpcKind { kUnary, kServerStreaming };

// What a server-streaming handler is told, on the polling thread. Each
// event must lead, sooner or later and from some thread, to exactly one
// Finish over the whole RPC.
enum class StreamEvent {
  // The request arrived and passed the generic checks (cap, size). The
  // handler starts the stream: Write now, or later from any thread.
  kStarted,
  // The last Write went out; its message may be reused and the next Write
  // (or Finish) may start, now or later from any thread.
  kWriteDone,
  // The last Write failed: the stream is broken and cancelled() is true.
  // Finish (its tag comes back ok=false).
  kWriteFailed,
  // The client cancelled, the deadline passed or the server is shutting
  // down. A Write or Finish may be pending (another thread may also be
  // about to start one), and the handler may even have finished the call
  // already, so it must only act on a call it holds with no operation
  // pending (e.g. a parked Watch): it then Finishes it. Arrives at most
  // once, after kStarted (never for an RPC refused before its handler
  // ran); a handler whose every step checks cancelled() can ignore it.
  kCancelled,
};

// The per-call state of a method that needs none.
struct NoCallState {
  void Reset() {}
};

// One RPC of a registered method. Unary (kKind == kUnary): one request, one
// response. Server streaming: one request, a stream of responses, and a
// second tag (the done tag) that reports when the call is over.
//
// `State` is per-call handler state (default-constructible, with a Reset()
// that drops everything from the previous RPC; it is called when the call
// is recycled, on the polling thread).
template <RpcKind kKind, class Req, class Resp, class State = NoCallState>
class AsyncCall final : public CallBase {
 public:
  static constexpr bool kStreaming = kKind == RpcKind::kServerStreaming;
  using Request = Req;
  using Response = Resp;
  using CallState = State;
  using Writer =
      std::conditional_t<kStreaming, grpc::ServerAsyncWriter<Resp>,
                         grpc::ServerAsyncResponseWriter<Resp>>;
  // Unary: serves one request: reads request(), fills *mutable_response()
  // and calls Finish exactly once, now or later from any thread.
  // Streaming: reacts to one StreamEvent (see above). Runs on the polling
  // thread: must not block.
  using Handler =
      std::conditional_t<kStreaming,
                         std::function<void(AsyncCall*, StreamEvent)>,
                         std::function<void(AsyncCall*)>>;

  // One per registered method; shared by every queue (rpc_registry.h).
  struct Method {
    MethodInfo info;
    // Posts a request for the method: Service::Request<Method>(ctx,
    // request, writer, cq, cq, tag) on the registered service.
    std::function<void(grpc::ServerContext*, Req*, Writer*,
                       grpc::ServerCompletionQueue*, void*)>
        request;
    Handler handler;
  };
  using Factory = CallFactory<AsyncCall>;

  explicit AsyncCall(Factory* factory) : factory_(factory), done_tag_(this) {}
  AsyncCall(const AsyncCall&) = delete;
  AsyncCall& operator=(const AsyncCall&) = delete;

  const Req& request() const { return request_; }
  // Unary: the response Finish(OK) sends. Streaming: a message buffer the
  // handler may fill and Write (not while a Write of it is pending).
  Resp* mutable_response() { return &response_; }
  grpc::ServerContext* context() { return &*ctx_; }
  State& state() { return state_; }

  // Streaming: true once the client cancelled, the deadline passed or a
  // write failed. Any thread.
  bool cancelled() const
    requires kStreaming
  {
    return cancelled_.load(std::memory_order_acquire) || ctx_->IsCancelled();
  }

  // Streaming: sends one message; the handler hears kWriteDone (or
  // kWriteFailed) when it is out, and the message may be reused then. Any
  // thread. REQUIRES: no other operation pending.
  void Write(const Resp& message)
    requires kStreaming
  {
    phase_ = Phase::kWriting;
    accounting_.AddResponseBytes(message.ByteSizeLong());
    writer_->Write(message, this);
  }

  // Ends the RPC with `status`. Unary: with OK the response is sent,
  // otherwise the status alone (same code and message). Exactly once per
  // RPC, from any thread; the caller must not touch the call afterwards.
  // REQUIRES: no other operation pending.
  void Finish(const absl::Status& status) {
    phase_ = Phase::kFinishing;
    code_ = static_cast<grpc::StatusCode>(status.code());
    if constexpr (kStreaming) {
      writer_->Finish(ToGrpcStatus(status), this);
    } else if (status.ok()) {
      accounting_.AddResponseBytes(response_.ByteSizeLong());
      writer_->Finish(response_, grpc::Status::OK, this);
    } else {
      writer_->FinishWithError(ToGrpcStatus(status), this);
    }
  }
  // Streaming: Finish, sending `last` first if not null (one round trip
  // for both).
  void Finish(const absl::Status& status, const Resp* last)
    requires kStreaming
  {
    if (last == nullptr) {
      Finish(status);
      return;
    }
    phase_ = Phase::kFinishing;
    code_ = static_cast<grpc::StatusCode>(status.code());
    accounting_.AddResponseBytes(last->ByteSizeLong());
    writer_->WriteAndFinish(*last, grpc::WriteOptions(), ToGrpcStatus(status),
                            this);
  }

  void Proceed(bool ok) override {
    switch (phase_) {
      case Phase::kRequested:
        Started(ok);
        return;
      case Phase::kWriting:
        if constexpr (kStreaming) {
          phase_ = Phase::kActive;
          if (!ok) cancelled_.store(true, std::memory_order_release);
          method().handler(this, ok ? StreamEvent::kWriteDone
                                    : StreamEvent::kWriteFailed);
        }
        return;
      case Phase::kFinishing:
        // Per-namespace first, so an observer that saw OnRpcEnd has seen
        // both.
        if constexpr (requires(const Req& r) { r.namespace_(); }) {
          factory_->observer()->OnNamespaceRpcEnd(
              request_.namespace_(), method().info.name,
              ok ? code_ : grpc::StatusCode::CANCELLED);
        }
        accounting_.End(&method().info, factory_->observer(),
                        ok ? code_ : grpc::StatusCode::CANCELLED);
        phase_ = Phase::kDone;
        Unref();
        return;
      case Phase::kIdle:
      case Phase::kActive:
      case Phase::kDone:
        // No tag is outstanding in these states; nothing to do.
        return;
    }
  }

 private:
  friend class CallFactory<AsyncCall>;
  enum class Phase { kIdle, kRequested, kActive, kWriting, kFinishing, kDone };
  // Tags that come back for a matched stream: the finish and done tags.
  static constexpr int kTags = 2;

  // The AsyncNotifyWhenDone tag (streaming only).
  class DoneTag final : public CallBase {
   public:
    explicit DoneTag(AsyncCall* call) : call_(call) {}
    void Proceed(bool /*ok*/) override { call_->Done(); }

   private:
    AsyncCall* const call_;
  };

  Method& method() const { return factory_->method(); }

  // The request tag came back.
  void Started(bool ok) {
    if (!ok) {  // Shutdown: never matched, and no done tag will come.
      factory_->Recycle(this);
      return;
    }
    if constexpr (kStreaming) tags_.store(kTags, std::memory_order_relaxed);
    factory_->Arm();  // Keep a request posted for the next RPC.
    phase_ = Phase::kActive;
    absl::Status s = accounting_.Begin(&method().info, factory_->observer(),
                                       request_.ByteSizeLong());
    // Authorization: the one place every KV RPC is checked, before its
    // handler reads or writes anything, and before the other refusals, so
    // a client without a grant learns nothing of the server's load.
    if (method().info.authorizer != nullptr) {
      absl::Status denied = method().info.authorizer->Check(
          method().info.name, method().info.access_rule, *ctx_, request_);
      if (!denied.ok()) s = std::move(denied);
    }
    // Load shedding: a request that waited past its deadline (in the
    // transport or the queue) gets its answer without any work; the client
    // has given up on it anyway. One clock read per RPC.
    if (s.ok() && ctx_->deadline() <= std::chrono::system_clock::now() +
                                          method().info.deadline_clock_offset) {
      s = absl::DeadlineExceededError(
          "the deadline passed before the server started the request; "
          "nothing was done");
    }
    if (!s.ok()) {
      Finish(s);
      return;
    }
    if constexpr (kStreaming) {
      handler_started_ = true;
      method().handler(this, StreamEvent::kStarted);
    } else {
      method().handler(this);
    }
  }

  // The done tag came back: the call is over.
  void Done() {
    if constexpr (kStreaming) {
      if (ctx_->IsCancelled()) {
        cancelled_.store(true, std::memory_order_release);
        // tags_ is still >= 1 here (this tag's own), so the call cannot be
        // recycled under the handler.
        if (handler_started_) method().handler(this, StreamEvent::kCancelled);
      }
    }
    Unref();
  }

  // A unary call has one tag after its request, so its finish tag alone
  // recycles it (no atomic on the unary path).
  void Unref() {
    if constexpr (kStreaming) {
      if (tags_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    }
    factory_->Recycle(this);
  }

  void Arm() {
    ctx_.emplace();
    if constexpr (kStreaming) ctx_->AsyncNotifyWhenDone(&done_tag_);
    writer_.emplace(&*ctx_);
    phase_ = Phase::kRequested;
    method().request(&*ctx_, &request_, &*writer_, factory_->cq()->cq(), this);
  }

  void Reset() {
    writer_.reset();
    ctx_.reset();
    ClearForReuse(&request_, accounting_.request_bytes());
    ClearForReuse(&response_, accounting_.response_bytes());
    state_.Reset();
    cancelled_.store(false, std::memory_order_relaxed);
    handler_started_ = false;
    phase_ = Phase::kIdle;
  }

  Factory* const factory_;
  DoneTag done_tag_;
  Phase phase_ = Phase::kIdle;
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  std::atomic<int> tags_{0};  // Streaming only: tags still to come back.
  std::atomic<bool> cancelled_{false};
  // The handler heard kStarted (polling thread only).
  bool handler_started_ = false;
  std::optional<grpc::ServerContext> ctx_;
  std::optional<Writer> writer_;
  Req request_;
  Resp response_;
  State state_;
  RpcAccounting accounting_;
};

template <class Req, class Resp>
using UnaryCall = AsyncCall<RpcKind::kUnary, Req, Resp>;
template <class Req, class Resp, class State = NoCallState>
using ServerStreamingCall =
    AsyncCall<RpcKind::kServerStreaming, Req, Resp, State>;

}  // namespace strata::server

#endif  // STRATA_SERVER_ASYNC_CALL_H_
