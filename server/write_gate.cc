#include "server/write_gate.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace strata::server {

absl::StatusOr<uint64_t> FreeDiskBytes(const std::string& dir) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0) {
    const int err = errno;
    return absl::UnavailableError(
        absl::StrFormat("statvfs %s: %s", dir, std::strerror(err)));
  }
  return static_cast<uint64_t>(st.f_bavail) *
         static_cast<uint64_t>(st.f_frsize);
}

WriteGate::WriteGate(DiskSpaceOptions options, storage::DB* db,
                     RpcObserver* observer,
                     std::function<void(bool writable)> on_writable_change,
                     std::function<absl::Status()> readiness)
    : options_(std::move(options)),
      db_(db),
      observer_(observer != nullptr ? observer : NoopRpcObserver()),
      on_change_(std::move(on_writable_change)),
      readiness_(std::move(readiness)) {}

WriteGate::~WriteGate() { Stop(); }

void WriteGate::Start() {
  Refresh();
  std::lock_guard<std::mutex> lock(mu_);
  if (started_ || stop_) return;
  started_ = true;
  thread_ = std::thread([this] { RefreshLoop(); });
}

void WriteGate::Stop() {
  std::thread t;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
}

void WriteGate::RefreshLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, absl::ToChronoMicroseconds(options_.refresh_interval),
                 [this] { return stop_; });
    if (stop_) return;
    lock.unlock();
    Refresh();
    lock.lock();
  }
}

void WriteGate::Refresh() {
  absl::StatusOr<uint64_t> free = absl::UnimplementedError("no data dir");
  if (options_.TEST_free_bytes) {
    free = options_.TEST_free_bytes();
  } else if (!options_.data_dir.empty()) {
    free = FreeDiskBytes(options_.data_dir);
  }
  if (free.ok()) {
    free_bytes_.store(*free);
    observer_->OnDiskFree(*free);
    const bool below =
        options_.min_free_bytes > 0 && *free < options_.min_free_bytes;
    if (below != below_reserve_.exchange(below)) {
      if (below) {
        spdlog::warn("disk space below reserve: {} bytes free "
                     "(--min_free_disk_bytes={}); refusing new writes",
                     *free, options_.min_free_bytes);
      } else {
        spdlog::info("disk space above reserve again: {} bytes free; "
                     "taking writes",
                     *free);
      }
    }
  }
  if (readiness_) {
    const absl::Status ready = readiness_();
    if (ready.ok() != ready_.exchange(ready.ok())) {
      if (ready.ok()) {
        spdlog::info("write readiness restored: taking writes");
      } else {
        spdlog::warn("not ready for writes: {}", std::string(ready.message()));
      }
    }
  }
  const bool writable = Writable();
  std::function<void(bool)> notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (last_writable_ != static_cast<int>(writable)) {
      last_writable_ = writable;
      notify = on_change_;
    }
  }
  if (notify) notify(writable);
}

bool WriteGate::Writable() const {
  return !below_reserve_.load() && ready_.load() &&
         db_->WriteAvailability().ok();
}

absl::Status WriteGate::Admit() {
  const absl::Status engine = db_->WriteAvailability();
  if (!engine.ok()) {
    observer_->OnWriteRefused(absl::IsResourceExhausted(engine)
                                  ? "engine_out_of_space"
                                  : "engine_read_only");
    return engine;
  }
  if (below_reserve_.load()) {
    observer_->OnWriteRefused("disk_reserve");
    return absl::ResourceExhaustedError(absl::StrFormat(
        "disk space below reserve: %d bytes free (--min_free_disk_bytes=%d); "
        "deletes are still accepted",
        free_bytes_.load(), options_.min_free_bytes));
  }
  if (options_.replicas_reserve) {
    absl::Status replicas = options_.replicas_reserve();
    if (!replicas.ok()) {
      observer_->OnWriteRefused("replica_disk_reserve");
      return replicas;
    }
  }
  return absl::OkStatus();
}

}  // namespace strata::server
