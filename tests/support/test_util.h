#ifndef STRATA_TESTS_SUPPORT_TEST_UTIL_H_
#define STRATA_TESTS_SUPPORT_TEST_UTIL_H_

// Assertions for absl::Status and helpers shared by every test.

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace strata::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// A fresh directory under $TEST_TMPDIR or /tmp, removed recursively when
// the object is destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Reads a whole file; fails the test (returns "") if it cannot.
std::string ReadFileOrDie(const std::string& path);
// Overwrites a whole file.
void WriteFileOrDie(const std::string& path, const std::string& contents);
// XORs the byte at offset with mask (default flips every bit).
void FlipByte(const std::string& path, size_t offset, unsigned char mask = 0xff);

// For tests whose injected faults make the engine log errors by design:
// QuietLogs sets the log level to critical, RestoreLogs back to info;
// both do nothing when STRATA_LOG is set (that level stays). Call them
// from a fixture's constructor and destructor. Not thread-safe against
// other log-level changes.
void QuietLogs();
void RestoreLogs();

// Calls `done` every 10 ms until it returns true or `timeout` passes, and
// returns whether it held. For a condition another process makes true (an
// etcd key, a lease expiring) that offers nothing to wait on.
bool PollUntil(const std::function<bool()>& done,
               absl::Duration timeout = absl::Seconds(15));

}  // namespace strata::testing

#define EXPECT_OK(expr) \
  EXPECT_TRUE(::strata::testing::GetStatus(expr).ok()) \
      << ::strata::testing::GetStatus(expr)
#define ASSERT_OK(expr)                                          \
  do {                                                           \
    const auto& strata_s_ = (expr);                              \
    ASSERT_TRUE(::strata::testing::GetStatus(strata_s_).ok())    \
        << ::strata::testing::GetStatus(strata_s_);              \
  } while (0)
#define STRATA_TEST_CONCAT_INNER_(a, b) a##b
#define STRATA_TEST_CONCAT_(a, b) STRATA_TEST_CONCAT_INNER_(a, b)
// ASSERT_OK_AND_ASSIGN(auto x, StatusOrExpr);
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(STRATA_TEST_CONCAT_(strata_so_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  ASSERT_TRUE(tmp.ok()) << tmp.status();           \
  lhs = std::move(tmp).value()

#endif  // STRATA_TESTS_SUPPORT_TEST_UTIL_H_
