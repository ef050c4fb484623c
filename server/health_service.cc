#include "server/health_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"

namespace strata::server {

HealthService::HealthService(const std::vector<std::string>& services,
                             std::string write_name)
    : write_name_(std::move(write_name)) {
  absl::MutexLock lock(&mu_);
  status_[""] = Response::NOT_SERVING;
  for (const std::string& name : services) status_[name] = Response::NOT_SERVING;
  if (!write_name_.empty()) status_[write_name_] = Response::NOT_SERVING;
}

void HealthService::RegisterMethods(RpcRegistry* registry) {
  auto health = registry->AddService(&service_, this);
  health.Register(&Service::RequestCheck, &HealthService::HandleCheck,
                  MethodOptions().Unobserved());
  health.Register(&Service::RequestWatch, &HealthService::HandleWatch,
                  MethodOptions().Unobserved());
}

HealthService::Response::ServingStatus HealthService::StatusLocked(
    const std::string& name) const {
  auto it = status_.find(name);
  return it == status_.end() ? Response::SERVICE_UNKNOWN : it->second;
}

std::vector<std::pair<HealthService::WatchCall*,
                      HealthService::Response::ServingStatus>>
HealthService::UpdateLocked() {
  const bool serving = serving_ && !shut_down_;
  for (auto& [name, s] : status_) {
    const bool up = serving && (name != write_name_ || writable_);
    s = up ? Response::SERVING : Response::NOT_SERVING;
  }
  // Parked watchers whose status changed leave parked_ (a plain loop: the
  // thread-safety analysis does not see mu_ held inside a lambda).
  std::vector<std::pair<WatchCall*, Response::ServingStatus>> changed;
  std::vector<WatchCall*> unchanged;
  for (WatchCall* c : parked_) {
    const Response::ServingStatus now = StatusLocked(c->request().service());
    if (now == c->state().sent) {
      unchanged.push_back(c);
    } else {
      changed.emplace_back(c, now);
    }
  }
  parked_.swap(unchanged);
  return changed;
}

void HealthService::WriteChanged(
    const std::vector<std::pair<WatchCall*, Response::ServingStatus>>& c) {
  for (const auto& [call, status] : c) WriteStatus(call, status);
}

void HealthService::WriteStatus(WatchCall* call,
                                Response::ServingStatus status) {
  call->state().sent = status;
  Response* response = call->mutable_response();
  response->set_status(status);
  call->Write(*response);
}

void HealthService::SetServing(bool serving) {
  std::vector<std::pair<WatchCall*, Response::ServingStatus>> changed;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    serving_ = serving;
    changed = UpdateLocked();
  }
  WriteChanged(changed);
}

void HealthService::SetWritable(bool writable) {
  std::vector<std::pair<WatchCall*, Response::ServingStatus>> changed;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    writable_ = writable;
    changed = UpdateLocked();
  }
  WriteChanged(changed);
}

void HealthService::Shutdown() {
  std::vector<std::pair<WatchCall*, Response::ServingStatus>> changed;
  std::vector<WatchCall*> unchanged;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    changed = UpdateLocked();
    unchanged.swap(parked_);
  }
  // Watchers hear NOT_SERVING, then their streams end (WatchWriteDone), so
  // no Watch holds the server's drain.
  WriteChanged(changed);
  for (WatchCall* call : unchanged) FinishShutDown(call);
}

void HealthService::FinishShutDown(WatchCall* call) {
  call->Finish(absl::UnavailableError("server is shutting down"));
}

void HealthService::HandleCheck(CheckCall* call) {
  Response::ServingStatus status;
  {
    absl::MutexLock lock(&mu_);
    status = StatusLocked(call->request().service());
  }
  if (status == Response::SERVICE_UNKNOWN) {
    call->Finish(absl::NotFoundError(absl::StrFormat(
        "unknown service \"%s\"", call->request().service())));
    return;
  }
  call->mutable_response()->set_status(status);
  call->Finish(absl::OkStatus());
}

void HealthService::HandleWatch(WatchCall* call, StreamEvent event) {
  switch (event) {
    case StreamEvent::kStarted:
      WatchStart(call);
      return;
    case StreamEvent::kWriteDone:
    case StreamEvent::kWriteFailed:
      WatchWriteDone(call, event == StreamEvent::kWriteDone);
      return;
    case StreamEvent::kCancelled:
      WatchCancelled(call);
      return;
  }
}

void HealthService::WatchStart(WatchCall* call) {
  Response::ServingStatus status;
  {
    absl::MutexLock lock(&mu_);
    status = StatusLocked(call->request().service());
  }
  // A change between the read and this write is caught by WatchWriteDone.
  WriteStatus(call, status);
}

void HealthService::WatchWriteDone(WatchCall* call, bool ok) {
  if (!ok) {
    call->Finish(absl::CancelledError("watch cancelled"));
    return;
  }
  Response::ServingStatus status = Response::UNKNOWN;
  bool shut_down = false;
  {
    absl::MutexLock lock(&mu_);
    // WatchCancelled runs on this same polling thread: if it already ran,
    // it found nothing parked, so this call must finish here.
    if (!call->cancelled()) {
      status = StatusLocked(call->request().service());
      shut_down = shut_down_;
      if (status == call->state().sent && !shut_down) {
        parked_.push_back(call);
        return;
      }
    }
  }
  if (call->cancelled()) {
    call->Finish(absl::CancelledError("watch cancelled"));
  } else if (status != call->state().sent) {
    WriteStatus(call, status);
  } else {  // Shut down and the client has heard NOT_SERVING.
    FinishShutDown(call);
  }
}

void HealthService::WatchCancelled(WatchCall* call) {
  {
    absl::MutexLock lock(&mu_);
    auto it = std::find(parked_.begin(), parked_.end(), call);
    if (it == parked_.end()) return;  // A write is pending or it finished.
    parked_.erase(it);
  }
  call->Finish(absl::CancelledError("watch cancelled"));
}

}  // namespace strata::server
