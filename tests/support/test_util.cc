#include "tests/support/test_util.h"

#include <stdlib.h>

#include "spdlog/spdlog.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/time/clock.h"

namespace strata::testing {

TempDir::TempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") +
                     "/strata-test-XXXXXX";
  char* made = mkdtemp(tmpl.data());
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp failed for " << tmpl;
    return;
  }
  path_ = made;
}

TempDir::~TempDir() {
  // STRATA_KEEP_TEST_DIRS=1 keeps the files of a failing run for inspection.
  if (!path_.empty() && getenv("STRATA_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path;
    return "";
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFileOrDie(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

void FlipByte(const std::string& path, size_t offset, unsigned char mask) {
  std::string data = ReadFileOrDie(path);
  if (offset >= data.size()) {
    ADD_FAILURE() << "offset " << offset << " past end of " << path;
    return;
  }
  data[offset] = static_cast<char>(data[offset] ^ mask);
  WriteFileOrDie(path, data);
}

void QuietLogs() {
  if (getenv("STRATA_LOG") == nullptr) {
    spdlog::set_level(spdlog::level::critical);
  }
}

void RestoreLogs() {
  if (getenv("STRATA_LOG") == nullptr) spdlog::set_level(spdlog::level::info);
}

bool PollUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

}  // namespace strata::testing

namespace {
// STRATA_LOG=debug turns on the engine's debug logging in tests.
struct LogLevelFromEnv {
  LogLevelFromEnv() {
    if (const char* level = getenv("STRATA_LOG")) {
      spdlog::set_level(spdlog::level::from_str(level));
    }
  }
} log_level_from_env;
}  // namespace
