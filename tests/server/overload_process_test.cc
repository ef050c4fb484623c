// The CI short form of the overload benchmark (docs/operations.md,
// "Overload"; the full one is in docs/benchmarks.md): the real
// strata-server, its closed-loop Put capacity measured briefly with
// strata-load, then strata-load open-loop at twice that rate for 5 s with a
// 0.5 s timeout. It asserts behaviour only, never a throughput:
//
//  * every arrival is accounted for: answered OK, RESOURCE_EXHAUSTED or
//    DEADLINE_EXCEEDED, or given up by the client for want of a free slot
//    (never sent); no UNAVAILABLE or any other code;
//  * the server does not crash, its resident memory stays under a bound
//    derived from its flags, and
//  * once the load stops, a Get is answered within a second.
//
// Needs strata-load (-DSTRATA_BUILD_BENCH=ON); skipped with a message
// otherwise. Bounded: about 15 s, each process step with its own timeout.

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// VmRSS of `pid` in bytes, 0 if it cannot be read.
uint64_t RssBytes(pid_t pid) {
  std::ifstream in(absl::StrFormat("/proc/%d/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::stoull(line.substr(6)) * 1024;
    }
  }
  return 0;
}

// Runs strata-load against `target` and returns its JSON summary line.
nlohmann::json RunLoad(const std::string& target,
                       const std::vector<std::string>& flags,
                       absl::Duration timeout) {
  std::vector<std::string> argv = {BinaryPath("bench/strata-load"),
                                   "--target=" + target, "--op=put",
                                   "--keys=10000", "--value_size=100",
                                   "--threads=2"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  ProcessResult r = RunProcess(argv, "", timeout);
  EXPECT_TRUE(r.exited && r.exit_code == 0)
      << "strata-load " << absl::StrJoin(flags, " ") << ": exit "
      << r.exit_code << " signal " << r.term_signal << " timed out "
      << r.timed_out << "\n"
      << r.out << r.err;
  const size_t at = r.out.find("json: ");
  if (at == std::string::npos) {
    ADD_FAILURE() << "no JSON line from strata-load:\n" << r.out << r.err;
    return nlohmann::json::object();
  }
  const size_t end = r.out.find('\n', at);
  auto j = nlohmann::json::parse(r.out.substr(at + 6, end - at - 6), nullptr,
                                 /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << r.out;
  std::printf("%s", r.out.c_str());
  return j;
}

TEST(OverloadProcessTest, TwiceCapacityIsShedCleanlyAndTheNodeRecovers) {
  const std::string load_binary = BinaryPath("bench/strata-load");
  if (load_binary.empty() || ::access(load_binary.c_str(), X_OK) != 0) {
    GTEST_SKIP() << "strata-load is not built (configure with "
                    "-DSTRATA_BUILD_BENCH=ON): " << load_binary;
  }
  PinGrpcLibrary();
  // Small engine memory, so the bound below is tight enough to mean
  // something: RSS <= (1 + 2 immutable) x memtable + block cache + watch
  // cache + in-flight requests (cap x methods x a small Put) + a baseline
  // for the binary, gRPC, threads and allocator slack.
  constexpr uint64_t kMemtable = 8 * kMiB;
  constexpr uint64_t kBlockCache = 8 * kMiB;
  constexpr uint64_t kWatchCache = 1 * kMiB;
  constexpr int kInflight = 512;
  constexpr uint64_t kBaseline = 160 * kMiB;
  const uint64_t rss_bound = 3 * kMemtable + kBlockCache + kWatchCache +
                             uint64_t{kInflight} * 4096 + kBaseline;
  TempDir dir;
  auto server = ServerProcess::Start(
      dir.path() + "/data",
      {absl::StrCat("--memtable_bytes=", kMemtable),
       absl::StrCat("--block_cache_bytes=", kBlockCache),
       absl::StrCat("--watch_cache_bytes=", kWatchCache),
       absl::StrCat("--max_inflight_rpcs=", kInflight),
       "--min_free_disk_bytes=0"});
  ASSERT_TRUE(server.ok()) << server.status();
  const pid_t pid = (*server)->pid();
  const std::string target = (*server)->address();

  // Closed-loop capacity, briefly.
  nlohmann::json cap = RunLoad(
      target, {"--concurrency=64", "--channels=8", "--warmup=0.5",
               "--duration=2", "--timeout=2"},
      absl::Seconds(20));
  const double capacity = cap.value("ops_per_sec", 0.0);
  ASSERT_GT(capacity, 0) << cap.dump();

  // Open loop at twice that, with RSS sampled meanwhile.
  const double rate = 2 * capacity;
  const int outstanding =
      std::clamp(static_cast<int>(rate * 0.5), 64, 2048);  // rate x timeout
  std::atomic<bool> load_done{false};
  std::atomic<uint64_t> peak_rss{RssBytes(pid)};
  std::thread sampler([&] {
    // Every 20 ms until the load ends; at most 30 s.
    for (int i = 0; i < 1500 && !load_done.load(); i++) {
      uint64_t rss = RssBytes(pid);
      uint64_t peak = peak_rss.load();
      while (rss > peak && !peak_rss.compare_exchange_weak(peak, rss)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  nlohmann::json open = RunLoad(
      target,
      {absl::StrFormat("--rate=%.0f", rate),
       absl::StrCat("--concurrency=", outstanding), "--channels=16",
       "--warmup=0", "--duration=5", "--timeout=0.5"},
      absl::Seconds(20));
  load_done = true;
  sampler.join();

  // Every arrival was answered with an expected code, or never sent.
  const int64_t ok = open.value("ops", int64_t{0});
  const int64_t missed = open.value("missed", int64_t{0});
  const int64_t arrivals = open.value("arrivals", int64_t{-1});
  const nlohmann::json by_code =
      open.value("errors", nlohmann::json::object());
  int64_t errors = 0;
  for (auto it = by_code.begin(); it != by_code.end(); ++it) {
    EXPECT_TRUE(it.key() == "RESOURCE_EXHAUSTED" ||
                it.key() == "DEADLINE_EXCEEDED")
        << it.value().dump() << " requests answered " << it.key();
    errors += it.value().get<int64_t>();
  }
  EXPECT_GT(ok, 0);
  EXPECT_EQ(ok + errors + missed, arrivals) << open.dump();
  std::printf("capacity %.0f Puts/s; at %.0f/s: %lld OK, %lld errors %s, %lld "
              "missed of %lld arrivals; peak server RSS %.1f MiB (bound %.1f)\n",
              capacity, rate, static_cast<long long>(ok),
              static_cast<long long>(errors),
              by_code.dump().c_str(),
              static_cast<long long>(missed), static_cast<long long>(arrivals),
              peak_rss.load() / double{kMiB}, rss_bound / double{kMiB});

  // The server is alive, stayed within its memory bound, and answers at
  // once now that the load has stopped.
  auto exited = (*server)->Wait(absl::ZeroDuration());
  EXPECT_FALSE(exited.ok()) << "strata-server exited:\n" << (*server)->Stderr();
  EXPECT_LE(peak_rss.load(), rss_bound);
  auto kv = v1::KV::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  v1::GetRequest req;
  req.set_key("0000000000000001");
  v1::GetResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  grpc::Status s = kv->Get(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
  (*server)->Signal(SIGTERM);
  EXPECT_TRUE((*server)->Wait(absl::Seconds(10)).ok());
}

}  // namespace
}  // namespace strata::testing
