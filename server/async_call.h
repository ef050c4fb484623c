#ifndef STRATA_SERVER_ASYNC_CALL_H_
#define STRATA_SERVER_ASYNC_CALL_H_

// The machinery of the asynchronous (completion-queue) gRPC server: an
// untyped call base whose Proceed(ok) every completion-queue tag invokes,
// and typed templates for unary and server-streaming calls. kv_server.cc
// registers each KV method with one line naming its request function and
// handler; everything else (re-arming, accounting, limits, recycling) lives
// here.
//
// Unary call life cycle (UnaryCall):
//
//        Arm(): Request<Method>(ctx, &request, &writer, cq, cq, this)
//            |
//            v
//     +-------------+  ok=false (server shutting down)
//     | kRequested  |----------------------------------------------+
//     +-------------+                                              |
//            | ok=true: arm a replacement call for the method,     |
//            | OnRpcStart, check in-flight cap and request size,   |
//            | run the handler                                     |
//            v                                                     |
//     +-------------+  the handler (or a callback it left behind: |
//     |  kActive    |  engine thread, blocking pool) calls         |
//     +-------------+  Finish(status) exactly once, from any thread|
//            |                                                     |
//            v                                                     |
//     +-------------+  tag returns, ok=true (status sent) or       |
//     | kFinishing  |  ok=false (client gone: counted CANCELLED)   |
//     +-------------+                                              |
//            | OnRpcEnd                                            |
//            v                                                     v
//     Recycle(): ServerContext and writer destroyed, messages cleared,
//     object back on its queue's free list (reused by the next Arm).
//
// Server-streaming call life cycle (ServerStreamingCall) adds a write loop
// and a second tag, AsyncNotifyWhenDone, that fires once when the call is
// over (normally, by cancellation, or by deadline). It is armed before the
// request, and gRPC delivers it only if the request succeeded, so the call
// is recycled once BOTH the finish tag and the done tag are back (refs_).
//
//     kRequested --ok=false--> Recycle (no done tag will come)
//         | ok=true: refs_ = 2, re-arm, OnRpcStart, checks, on_start()
//         v
//     kActive --Write(msg)--> kWriting --tag(ok)--> on_write_done(ok) --+
//         ^                                                             |
//         +-------------------------------------------------------------+
//         | Finish(status[, last message])
//         v
//     kFinishing --tag--> OnRpcEnd, refs_--        done tag --> refs_--
//                                 \                   /
//                                  refs_ == 0: Recycle
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
// callback, blocking pool); that thread may call Finish/Write. Exactly one
// operation is outstanding per call at a time, and after starting one the
// starting thread must not touch the call again: the tag may already be
// running Proceed on the polling thread.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/async_stream.h"
#include "grpcpp/support/async_unary_call.h"
#include "server/handlers.h"
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
  // Request size limit (Limits::max_message_bytes).
  Limits limits;
  // Whether the RpcObserver hears of this method's RPCs. False for
  // grpc.health.v1 (probes are not KV traffic and have no metrics row).
  bool observed = true;
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

// The observer a call of `info` reports to.
inline RpcObserver* ObserverFor(const MethodInfo& info, CqState* cq) {
  return info.observed ? cq->observer() : NoopRpcObserver();
}

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

  CallFactory(const Method* method, CqState* cq) : method_(method), cq_(cq) {}
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

  const Method& method() const { return *method_; }
  CqState* cq() const { return cq_; }

 private:
  const Method* const method_;
  CqState* const cq_;
  std::vector<Call*> free_;
};

// Bookkeeping common to both call kinds: timing, observer calls, in-flight
// cap and request size check.
class RpcAccounting {
 public:
  // Records the start and reports it to the observer. Returns a non-OK
  // status if the RPC must be refused (cap reached: RESOURCE_EXHAUSTED;
  // request too large: INVALID_ARGUMENT).
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
        return absl::ResourceExhaustedError(absl::StrFormat(
            "too many %s RPCs in progress; the limit is %d "
            "(--max_inflight_rpcs)",
            std::string(info->name), info->max_inflight));
      }
    }
    return ValidateRequestSize(request_bytes, info->limits);
  }
  void AddResponseBytes(size_t n) { response_bytes_ += n; }
  size_t request_bytes() const { return request_bytes_; }
  // Reports the end to the observer and releases the in-flight slot.
  void End(MethodInfo* info, RpcObserver* observer, grpc::StatusCode code) {
    if (counted_) {
      info->inflight.fetch_sub(1, std::memory_order_relaxed);
      counted_ = false;
    }
    const double seconds = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - start_)
                               .count();
    observer->OnRpcEnd(info->name, code, seconds, request_bytes_,
                       response_bytes_);
  }

 private:
  std::chrono::steady_clock::time_point start_;
  size_t request_bytes_ = 0;
  size_t response_bytes_ = 0;
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

// A unary RPC: one request, one response.
template <class Service, class Req, class Resp>
class UnaryCall final : public CallBase {
 public:
  using Writer = grpc::ServerAsyncResponseWriter<Resp>;
  // Service::Request<Method> as generated by the gRPC plugin.
  using RequestFn = void (Service::*)(grpc::ServerContext*, Req*, Writer*,
                                      grpc::CompletionQueue*,
                                      grpc::ServerCompletionQueue*, void*);
  // Serves one request: reads call->request(), fills
  // *call->mutable_response() and calls call->Finish exactly once, now or
  // later from any thread. Runs on the polling thread: must not block.
  using Handler = std::function<void(UnaryCall*)>;

  // One per registered method; shared (read-only) by every queue.
  struct Method {
    mutable MethodInfo info;
    Service* service = nullptr;
    RequestFn request = nullptr;
    Handler handler;
  };
  using Factory = CallFactory<UnaryCall>;

  explicit UnaryCall(Factory* factory) : factory_(factory) {}
  UnaryCall(const UnaryCall&) = delete;
  UnaryCall& operator=(const UnaryCall&) = delete;

  const Req& request() const { return request_; }
  Resp* mutable_response() { return &response_; }
  grpc::ServerContext* context() { return &*ctx_; }

  // Ends the RPC: with OK the response is sent, otherwise the status alone
  // (same code and message). Exactly once per RPC, from any thread; the
  // caller must not touch the call afterwards.
  void Finish(const absl::Status& status) {
    state_ = State::kFinishing;
    if (status.ok()) {
      code_ = grpc::StatusCode::OK;
      accounting_.AddResponseBytes(response_.ByteSizeLong());
      writer_->Finish(response_, grpc::Status::OK, this);
    } else {
      code_ = static_cast<grpc::StatusCode>(status.code());
      writer_->FinishWithError(ToGrpcStatus(status), this);
    }
  }

  void Proceed(bool ok) override {
    MethodInfo* info = &factory_->method().info;
    RpcObserver* observer = ObserverFor(*info, factory_->cq());
    switch (state_) {
      case State::kRequested: {
        if (!ok) {  // Shutdown: the request was never matched.
          factory_->Recycle(this);
          return;
        }
        factory_->Arm();  // Keep a request posted for the next RPC.
        state_ = State::kActive;
        absl::Status s =
            accounting_.Begin(info, observer, request_.ByteSizeLong());
        if (!s.ok()) {
          Finish(s);
          return;
        }
        factory_->method().handler(this);
        return;
      }
      case State::kFinishing:
        accounting_.End(info, observer,
                        ok ? code_ : grpc::StatusCode::CANCELLED);
        factory_->Recycle(this);
        return;
      case State::kIdle:
      case State::kActive:
        // No tag is outstanding in these states; nothing to do.
        return;
    }
  }

 private:
  friend class CallFactory<UnaryCall>;
  enum class State { kIdle, kRequested, kActive, kFinishing };

  void Arm() {
    ctx_.emplace();
    writer_.emplace(&*ctx_);
    state_ = State::kRequested;
    const Method& m = factory_->method();
    grpc::ServerCompletionQueue* cq = factory_->cq()->cq();
    (m.service->*m.request)(&*ctx_, &request_, &*writer_, cq, cq, this);
  }

  void Reset() {
    writer_.reset();
    ctx_.reset();
    ClearForReuse(&request_, accounting_.request_bytes());
    ClearForReuse(&response_, response_.GetCachedSize());
    state_ = State::kIdle;
  }

  Factory* const factory_;
  State state_ = State::kIdle;
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  std::optional<grpc::ServerContext> ctx_;
  std::optional<Writer> writer_;
  Req request_;
  Resp response_;
  RpcAccounting accounting_;
};

// A server-streaming RPC: one request, a stream of responses. `State` is
// per-call handler state (default-constructible, with a Reset() that drops
// everything from the previous RPC); the handler functions drive the stream
// with Write and Finish.
template <class Service, class Req, class Resp, class State>
class ServerStreamingCall final : public CallBase {
 public:
  using Writer = grpc::ServerAsyncWriter<Resp>;
  using RequestFn = void (Service::*)(grpc::ServerContext*, Req*, Writer*,
                                      grpc::CompletionQueue*,
                                      grpc::ServerCompletionQueue*, void*);
  using Call = ServerStreamingCall;
  // on_start: the request arrived and passed the generic checks (polling
  // thread; must not block). on_write_done: a Write completed; ok=false
  // means the stream broke and cancelled() is now true (polling thread).
  // on_cancelled (optional): the RPC was cancelled (client gone, deadline,
  // server shutdown) while the handler may hold it with no operation
  // pending, e.g. a parked health Watch; the handler must then Finish it if
  // nobody else will (polling thread). Together they must lead to exactly
  // one Finish.
  struct Method {
    mutable MethodInfo info;
    Service* service = nullptr;
    RequestFn request = nullptr;
    std::function<void(Call*)> on_start;
    std::function<void(Call*, bool ok)> on_write_done;
    std::function<void(Call*)> on_cancelled;
  };
  using Factory = CallFactory<ServerStreamingCall>;

  explicit ServerStreamingCall(Factory* factory)
      : factory_(factory), done_tag_(this) {}
  ServerStreamingCall(const ServerStreamingCall&) = delete;
  ServerStreamingCall& operator=(const ServerStreamingCall&) = delete;

  const Req& request() const { return request_; }
  grpc::ServerContext* context() { return &*ctx_; }
  State& state() { return state_; }

  // True once the client cancelled, the deadline passed or a write failed.
  // Any thread.
  bool cancelled() const {
    return cancelled_.load(std::memory_order_acquire) || ctx_->IsCancelled();
  }

  // Sends one message; on_write_done runs when it is out. The message may be
  // reused once on_write_done runs. REQUIRES: no other operation pending.
  void Write(const Resp& message) {
    phase_ = Phase::kWriting;
    accounting_.AddResponseBytes(message.ByteSizeLong());
    writer_->Write(message, this);
  }

  // Ends the stream with status, sending `last` first if not null (one
  // round trip for both). Exactly once per RPC; the caller must not touch
  // the call afterwards. REQUIRES: no other operation pending.
  void Finish(const absl::Status& status, const Resp* last = nullptr) {
    phase_ = Phase::kFinishing;
    code_ = static_cast<grpc::StatusCode>(status.code());
    if (last != nullptr) {
      accounting_.AddResponseBytes(last->ByteSizeLong());
      writer_->WriteAndFinish(*last, grpc::WriteOptions(), ToGrpcStatus(status),
                              this);
    } else {
      writer_->Finish(ToGrpcStatus(status), this);
    }
  }

  void Proceed(bool ok) override {
    MethodInfo* info = &factory_->method().info;
    RpcObserver* observer = ObserverFor(*info, factory_->cq());
    switch (phase_) {
      case Phase::kRequested: {
        if (!ok) {  // Never matched; the done tag will not fire.
          factory_->Recycle(this);
          return;
        }
        refs_.store(2, std::memory_order_relaxed);  // Finish tag + done tag.
        factory_->Arm();
        phase_ = Phase::kActive;
        absl::Status s =
            accounting_.Begin(info, observer, request_.ByteSizeLong());
        if (!s.ok()) {
          Finish(s);
          return;
        }
        factory_->method().on_start(this);
        return;
      }
      case Phase::kWriting:
        phase_ = Phase::kActive;
        if (!ok) cancelled_.store(true, std::memory_order_release);
        factory_->method().on_write_done(this, ok);
        return;
      case Phase::kFinishing:
        accounting_.End(info, observer,
                        ok ? code_ : grpc::StatusCode::CANCELLED);
        phase_ = Phase::kDone;
        Unref();
        return;
      case Phase::kIdle:
      case Phase::kActive:
      case Phase::kDone:
        return;
    }
  }

 private:
  friend class CallFactory<ServerStreamingCall>;
  enum class Phase { kIdle, kRequested, kActive, kWriting, kFinishing, kDone };

  // The AsyncNotifyWhenDone tag.
  class DoneTag final : public CallBase {
   public:
    explicit DoneTag(ServerStreamingCall* call) : call_(call) {}
    void Proceed(bool /*ok*/) override { call_->OnDone(); }

   private:
    ServerStreamingCall* const call_;
  };

  void OnDone() {
    if (ctx_->IsCancelled()) {
      cancelled_.store(true, std::memory_order_release);
      // refs_ is still >= 1 here (this tag's own reference), so the call
      // cannot be recycled under the handler.
      if (factory_->method().on_cancelled) {
        factory_->method().on_cancelled(this);
      }
    }
    Unref();
  }

  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      factory_->Recycle(this);
    }
  }

  void Arm() {
    ctx_.emplace();
    ctx_->AsyncNotifyWhenDone(&done_tag_);
    writer_.emplace(&*ctx_);
    phase_ = Phase::kRequested;
    const Method& m = factory_->method();
    grpc::ServerCompletionQueue* cq = factory_->cq()->cq();
    (m.service->*m.request)(&*ctx_, &request_, &*writer_, cq, cq, this);
  }

  void Reset() {
    writer_.reset();
    ctx_.reset();
    ClearForReuse(&request_, accounting_.request_bytes());
    state_.Reset();
    cancelled_.store(false, std::memory_order_relaxed);
    phase_ = Phase::kIdle;
  }

  Factory* const factory_;
  DoneTag done_tag_;
  Phase phase_ = Phase::kIdle;
  grpc::StatusCode code_ = grpc::StatusCode::OK;
  std::atomic<int> refs_{0};
  std::atomic<bool> cancelled_{false};
  std::optional<grpc::ServerContext> ctx_;
  std::optional<Writer> writer_;
  Req request_;
  State state_;
  RpcAccounting accounting_;
};

}  // namespace strata::server

#endif  // STRATA_SERVER_ASYNC_CALL_H_
