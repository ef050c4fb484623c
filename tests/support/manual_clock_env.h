#ifndef STRATA_TESTS_SUPPORT_MANUAL_CLOCK_ENV_H_
#define STRATA_TESTS_SUPPORT_MANUAL_CLOCK_ENV_H_

// An Env whose clocks the test moves by hand (files go to a base Env), so
// tests of time-based behaviour (history retention, key expiry) need no
// sleeps.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "strata/storage/env.h"

namespace strata::testing {

// Thread-safe; the base Env must outlive it.
class ManualClockEnv final : public storage::Env {
 public:
  explicit ManualClockEnv(storage::Env* base = storage::Env::Default())
      : base_(base) {}

  // The monotonic clock (NowMicros), microseconds.
  std::atomic<uint64_t> now_micros{1'000'000'000};
  // The wall clock (NowUnixMillis), milliseconds since the Unix epoch.
  std::atomic<uint64_t> now_unix_ms{1'800'000'000'000};

  // Moves both clocks forward.
  void Advance(uint64_t millis) {
    now_micros += millis * 1000;
    now_unix_ms += millis;
  }

  absl::StatusOr<std::unique_ptr<storage::SequentialFile>> NewSequentialFile(
      const std::string& p) override {
    return base_->NewSequentialFile(p);
  }
  absl::StatusOr<std::unique_ptr<storage::RandomAccessFile>>
  NewRandomAccessFile(const std::string& p) override {
    return base_->NewRandomAccessFile(p);
  }
  absl::StatusOr<std::unique_ptr<storage::WritableFile>> NewWritableFile(
      const std::string& p) override {
    return base_->NewWritableFile(p);
  }
  bool FileExists(const std::string& p) override { return base_->FileExists(p); }
  absl::StatusOr<std::vector<std::string>> GetChildren(
      const std::string& d) override {
    return base_->GetChildren(d);
  }
  absl::Status RemoveFile(const std::string& p) override {
    return base_->RemoveFile(p);
  }
  absl::Status CreateDir(const std::string& d) override {
    return base_->CreateDir(d);
  }
  absl::StatusOr<uint64_t> GetFileSize(const std::string& p) override {
    return base_->GetFileSize(p);
  }
  absl::Status RenameFile(const std::string& f, const std::string& t) override {
    return base_->RenameFile(f, t);
  }
  absl::Status SyncDir(const std::string& d) override {
    return base_->SyncDir(d);
  }
  absl::Status TruncateFile(const std::string& p, uint64_t size) override {
    return base_->TruncateFile(p, size);
  }
  absl::StatusOr<std::unique_ptr<storage::FileLock>> LockFile(
      const std::string& p) override {
    return base_->LockFile(p);
  }
  uint64_t NowMicros() override { return now_micros.load(); }
  uint64_t NowUnixMillis() override { return now_unix_ms.load(); }

 private:
  storage::Env* const base_;
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_SUPPORT_MANUAL_CLOCK_ENV_H_
