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
class ManualClockEnv final : public storage::EnvWrapper {
 public:
  explicit ManualClockEnv(storage::Env* base = storage::Env::Default())
      : EnvWrapper(base) {}

  // The monotonic clock (NowMicros), microseconds.
  std::atomic<uint64_t> now_micros{1'000'000'000};
  // The wall clock (NowUnixMillis), milliseconds since the Unix epoch.
  std::atomic<uint64_t> now_unix_ms{1'800'000'000'000};

  // Moves both clocks forward.
  void Advance(uint64_t millis) {
    now_micros += millis * 1000;
    now_unix_ms += millis;
  }

  uint64_t NowMicros() override { return now_micros.load(); }
  uint64_t NowUnixMillis() override { return now_unix_ms.load(); }
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_SUPPORT_MANUAL_CLOCK_ENV_H_
