// ThreadSanitizer annotations for the uninstrumented gRPC and Abseil
// libraries (Debian's builds are not compiled with -fsanitize=thread).
//
// TSan cannot see the synchronization inside those libraries, so it would
// report races between our accesses that they do order: an absl::Mutex
// guarding our data (its lock is a futex, not a pthread mutex), or a gRPC
// completion-queue hand-off (the thread that starts an operation writes the
// call object, the thread that gets the tag from the queue reads it). This
// file tells TSan about exactly those documented happens-before edges and
// nothing else:
//   absl::Mutex / CondVar / Notification  lock = acquire, unlock = release;
//                                         a wait releases and reacquires;
//                                         Notify releases, a successful wait
//                                         acquires;
//   gRPC core (C API)                     starting an operation with a tag
//                                         releases the tag; getting the tag
//                                         back from a completion queue
//                                         acquires it.
// Each wrapper interposes the library's exported symbol (the executable's
// definition wins over the shared library's) and calls the real function
// found with dlsym(RTLD_NEXT). Races in our own code are still reported.
//
// Built only for the ThreadSanitizer run: scripts/test-sanitizers.sh
// compiles this file and links it into every executable of that build
// (with -rdynamic so the libraries' own calls reach it too). It is not
// part of any CMake target.

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpc/grpc.h"

namespace {

void* Real(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_annotations: %s not found\n", name);
    std::abort();
  }
  return f;
}

// REAL(name, type): the library's definition of `name`, looked up once.
#define REAL(name, type) \
  static const auto real = reinterpret_cast<type>(Real(#name))

void Acquire(const void* addr) { __tsan_acquire(const_cast<void*>(addr)); }
void Release(const void* addr) { __tsan_release(const_cast<void*>(addr)); }

}  // namespace

extern "C" {

// ---------------------------------------------------------- absl::Mutex
// Symbols of Debian's Abseil 20220623 (inline namespace "debian3").

void _ZN4absl7debian35Mutex4LockEv(absl::Mutex* mu) {
  REAL(_ZN4absl7debian35Mutex4LockEv, void (*)(absl::Mutex*));
  real(mu);
  Acquire(mu);
}

void _ZN4absl7debian35Mutex10ReaderLockEv(absl::Mutex* mu) {
  REAL(_ZN4absl7debian35Mutex10ReaderLockEv, void (*)(absl::Mutex*));
  real(mu);
  Acquire(mu);
}

bool _ZN4absl7debian35Mutex7TryLockEv(absl::Mutex* mu) {
  REAL(_ZN4absl7debian35Mutex7TryLockEv, bool (*)(absl::Mutex*));
  const bool ok = real(mu);
  if (ok) Acquire(mu);
  return ok;
}

bool _ZN4absl7debian35Mutex13ReaderTryLockEv(absl::Mutex* mu) {
  REAL(_ZN4absl7debian35Mutex13ReaderTryLockEv, bool (*)(absl::Mutex*));
  const bool ok = real(mu);
  if (ok) Acquire(mu);
  return ok;
}

void _ZN4absl7debian35Mutex6UnlockEv(absl::Mutex* mu) {
  REAL(_ZN4absl7debian35Mutex6UnlockEv, void (*)(absl::Mutex*));
  Release(mu);
  real(mu);
}

void _ZN4absl7debian35Mutex12ReaderUnlockEv(absl::Mutex* mu) {
  REAL(_ZN4absl7debian35Mutex12ReaderUnlockEv, void (*)(absl::Mutex*));
  Release(mu);
  real(mu);
}

void _ZN4absl7debian319ReleasableMutexLock7ReleaseEv(absl::Mutex** lock) {
  REAL(_ZN4absl7debian319ReleasableMutexLock7ReleaseEv, void (*)(absl::Mutex**));
  Release(*lock);  // ReleasableMutexLock holds one Mutex* member.
  real(lock);
}

// Await and LockWhen: the condition may make the call release and
// reacquire the lock; LockWhen also acquires it.
void _ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE(absl::Mutex* mu,
                                                   const absl::Condition& c) {
  REAL(_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE,
       void (*)(absl::Mutex*, const absl::Condition&));
  Release(mu);
  real(mu, c);
  Acquire(mu);
}

bool _ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE(
    absl::Mutex* mu, const absl::Condition& c, absl::Duration d) {
  REAL(_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE,
       bool (*)(absl::Mutex*, const absl::Condition&, absl::Duration));
  Release(mu);
  const bool ok = real(mu, c, d);
  Acquire(mu);
  return ok;
}

bool _ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE(
    absl::Mutex* mu, const absl::Condition& c, absl::Time t) {
  REAL(_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE,
       bool (*)(absl::Mutex*, const absl::Condition&, absl::Time));
  Release(mu);
  const bool ok = real(mu, c, t);
  Acquire(mu);
  return ok;
}

void _ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE(absl::Mutex* mu,
                                                      const absl::Condition& c) {
  REAL(_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE,
       void (*)(absl::Mutex*, const absl::Condition&));
  real(mu, c);
  Acquire(mu);
}

void _ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE(
    absl::Mutex* mu, const absl::Condition& c) {
  REAL(_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE,
       void (*)(absl::Mutex*, const absl::Condition&));
  real(mu, c);
  Acquire(mu);
}

bool _ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE(
    absl::Mutex* mu, const absl::Condition& c, absl::Duration d) {
  REAL(_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE,
       bool (*)(absl::Mutex*, const absl::Condition&, absl::Duration));
  const bool ok = real(mu, c, d);
  Acquire(mu);
  return ok;
}

bool _ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE(
    absl::Mutex* mu, const absl::Condition& c, absl::Time t) {
  REAL(_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE,
       bool (*)(absl::Mutex*, const absl::Condition&, absl::Time));
  const bool ok = real(mu, c, t);
  Acquire(mu);
  return ok;
}

// ---------------------------------------------------------- absl::CondVar

void _ZN4absl7debian37CondVar4WaitEPNS0_5MutexE(absl::CondVar* cv,
                                              absl::Mutex* mu) {
  REAL(_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE,
       void (*)(absl::CondVar*, absl::Mutex*));
  Release(mu);
  real(cv, mu);
  Acquire(mu);
}

bool _ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE(
    absl::CondVar* cv, absl::Mutex* mu, absl::Duration d) {
  REAL(_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE,
       bool (*)(absl::CondVar*, absl::Mutex*, absl::Duration));
  Release(mu);
  const bool timed_out = real(cv, mu, d);
  Acquire(mu);
  return timed_out;
}

bool _ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE(
    absl::CondVar* cv, absl::Mutex* mu, absl::Time t) {
  REAL(_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE,
       bool (*)(absl::CondVar*, absl::Mutex*, absl::Time));
  Release(mu);
  const bool timed_out = real(cv, mu, t);
  Acquire(mu);
  return timed_out;
}

// ----------------------------------------------------- absl::Notification
// Notify releases both the object and its flag (HasBeenNotified reads the
// flag, which follows the Mutex member).

void _ZN4absl7debian312Notification6NotifyEv(absl::Notification* n) {
  REAL(_ZN4absl7debian312Notification6NotifyEv, void (*)(absl::Notification*));
  Release(n);
  Release(reinterpret_cast<const char*>(n) + sizeof(absl::Mutex));
  real(n);
}

void _ZNK4absl7debian312Notification19WaitForNotificationEv(
    const absl::Notification* n) {
  REAL(_ZNK4absl7debian312Notification19WaitForNotificationEv,
       void (*)(const absl::Notification*));
  real(n);
  Acquire(n);
}

bool _ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE(
    const absl::Notification* n, absl::Duration d) {
  REAL(_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE,
       bool (*)(const absl::Notification*, absl::Duration));
  const bool ok = real(n, d);
  if (ok) Acquire(n);
  return ok;
}

bool _ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE(
    const absl::Notification* n, absl::Time t) {
  REAL(_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE,
       bool (*)(const absl::Notification*, absl::Time));
  const bool ok = real(n, t);
  if (ok) Acquire(n);
  return ok;
}

bool _ZN4absl7debian312Notification23HasBeenNotifiedInternalEPKSt6atomicIbE(
    const std::atomic<bool>* flag) {
  REAL(_ZN4absl7debian312Notification23HasBeenNotifiedInternalEPKSt6atomicIbE,
       bool (*)(const std::atomic<bool>*));
  const bool ok = real(flag);
  if (ok) Acquire(flag);
  return ok;
}

// ------------------------------------------------------------ gRPC core

grpc_call_error grpc_call_start_batch(grpc_call* call, const grpc_op* ops,
                                      size_t nops, void* tag, void* reserved) {
  REAL(grpc_call_start_batch,
       grpc_call_error (*)(grpc_call*, const grpc_op*, size_t, void*, void*));
  Release(tag);
  return real(call, ops, nops, tag, reserved);
}

grpc_call_error grpc_server_request_call(
    grpc_server* server, grpc_call** call, grpc_call_details* details,
    grpc_metadata_array* request_metadata, grpc_completion_queue* cq_bound,
    grpc_completion_queue* cq_notify, void* tag) {
  REAL(grpc_server_request_call,
       grpc_call_error (*)(grpc_server*, grpc_call**, grpc_call_details*,
                           grpc_metadata_array*, grpc_completion_queue*,
                           grpc_completion_queue*, void*));
  Release(tag);
  return real(server, call, details, request_metadata, cq_bound, cq_notify, tag);
}

grpc_call_error grpc_server_request_registered_call(
    grpc_server* server, void* method, grpc_call** call, gpr_timespec* deadline,
    grpc_metadata_array* request_metadata, grpc_byte_buffer** payload,
    grpc_completion_queue* cq_bound, grpc_completion_queue* cq_notify,
    void* tag) {
  REAL(grpc_server_request_registered_call,
       grpc_call_error (*)(grpc_server*, void*, grpc_call**, gpr_timespec*,
                           grpc_metadata_array*, grpc_byte_buffer**,
                           grpc_completion_queue*, grpc_completion_queue*,
                           void*));
  Release(tag);
  return real(server, method, call, deadline, request_metadata, payload,
              cq_bound, cq_notify, tag);
}

void grpc_server_shutdown_and_notify(grpc_server* server,
                                     grpc_completion_queue* cq, void* tag) {
  REAL(grpc_server_shutdown_and_notify,
       void (*)(grpc_server*, grpc_completion_queue*, void*));
  Release(tag);
  real(server, cq, tag);
}

grpc_event grpc_completion_queue_next(grpc_completion_queue* cq,
                                      gpr_timespec deadline, void* reserved) {
  REAL(grpc_completion_queue_next,
       grpc_event (*)(grpc_completion_queue*, gpr_timespec, void*));
  grpc_event ev = real(cq, deadline, reserved);
  if (ev.type == GRPC_OP_COMPLETE) Acquire(ev.tag);
  return ev;
}

grpc_event grpc_completion_queue_pluck(grpc_completion_queue* cq, void* tag,
                                       gpr_timespec deadline, void* reserved) {
  REAL(grpc_completion_queue_pluck,
       grpc_event (*)(grpc_completion_queue*, void*, gpr_timespec, void*));
  grpc_event ev = real(cq, tag, deadline, reserved);
  if (ev.type == GRPC_OP_COMPLETE) Acquire(ev.tag);
  return ev;
}

}  // extern "C"
