// Process tests: the real strata-server binary, started with
// --listen=127.0.0.1:0 on a temp data directory. Restart durability,
// SIGKILL, SIGTERM under load, the data-directory lock and flag errors.

#include <sched.h>
#include <signal.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/strata_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kExitWithin = absl::Seconds(10);

class ServerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(BinaryPath("server/strata-server").empty())
        << "STRATA_BINARY_DIR is not set (run through ctest)";
    data_dir_ = dir_.path() + "/data";
  }

  std::unique_ptr<ServerProcess> StartServer(
      const std::vector<std::string>& extra = {}) {
    auto p = ServerProcess::Start(data_dir_, extra);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  static std::unique_ptr<Client> Connect(const ServerProcess& p) {
    ClientOptions options;
    options.timeout = absl::Seconds(20);
    return std::make_unique<Client>(p.address(), options);
  }

  // Sends sig and expects exit status 0 within 10 s.
  static void StopCleanly(ServerProcess* p, int sig = SIGTERM) {
    const absl::Time start = absl::Now();
    p->Signal(sig);
    auto exit = p->Wait(kExitWithin);
    ASSERT_TRUE(exit.ok()) << exit.status() << "\n" << p->Stderr();
    EXPECT_TRUE(exit->exited) << "signal " << exit->term_signal;
    EXPECT_EQ(exit->exit_code, 0) << p->Stderr();
    EXPECT_LT(absl::Now() - start, kExitWithin);
  }

  TempDir dir_;
  std::string data_dir_;
};

TEST_F(ServerProcessTest, RestartAfterSigtermKeepsEveryWrite) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  {
    auto client = Connect(*server);
    for (int i = 0; i < 100; ++i) {
      ASSERT_OK(client->Put(absl::StrFormat("key%03d", i),
                            absl::StrFormat("value%03d", i)));
    }
    ASSERT_OK(client->Delete("key050"));
    ASSERT_OK(client->Write({Mutation::Put("batch/a", "1"),
                             Mutation::Put("batch/b", "2")}));
  }
  StopCleanly(server.get());
  EXPECT_THAT(server->Stderr(), HasSubstr("shutdown complete"));

  server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = Connect(*server);
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK_AND_ASSIGN(auto v, client->Get(absl::StrFormat("key%03d", i)));
    if (i == 50) {
      EXPECT_FALSE(v.has_value());
    } else {
      ASSERT_TRUE(v.has_value()) << i;
      EXPECT_EQ(*v, absl::StrFormat("value%03d", i));
    }
  }
  ASSERT_OK_AND_ASSIGN(auto b, client->Get("batch/b"));
  EXPECT_EQ(b, std::optional<std::string>("2"));
  StopCleanly(server.get(), SIGINT);  // SIGINT works the same way.
}

TEST_F(ServerProcessTest, SigkillKeepsAcknowledgedWrites) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  {
    auto client = Connect(*server);
    for (int i = 0; i < 50; ++i) {
      ASSERT_OK(client->Put(absl::StrFormat("k%02d", i), "acked"));
    }
  }
  server->Signal(SIGKILL);
  auto exit = server->Wait(kExitWithin);
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->term_signal, SIGKILL);

  server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = Connect(*server);
  int found = 0;
  ASSERT_OK(client->Scan("", "", 0, false,
                         [&](std::string_view, std::string_view v) {
                           found += v == "acked";
                           return true;
                         }));
  EXPECT_EQ(found, 50);
}

TEST_F(ServerProcessTest, SigtermUnderLoadExitsZeroAndKeepsAcknowledgedWrites) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  constexpr int kWriters = 4;
  std::vector<std::vector<std::string>> acked(kWriters);
  std::atomic<int> total{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      ClientOptions options;
      options.timeout = absl::Seconds(5);
      Client client(server->address(), options);
      // Until the server goes away (bounded).
      for (int i = 0; i < 100000; ++i) {
        const std::string key = absl::StrFormat("w%d/%06d", w, i);
        if (!client.Put(key, "v").ok()) return;
        acked[w].push_back(key);
        total.fetch_add(1);
      }
    });
  }
  // Let some writes land, then stop the server mid-load (bounded wait).
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (total.load() < 200 && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  StopCleanly(server.get());
  for (auto& t : writers) t.join();
  ASSERT_GT(total.load(), 0);

  server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = Connect(*server);
  int missing = 0;
  for (const auto& keys : acked) {
    for (const std::string& key : keys) {
      ASSERT_OK_AND_ASSIGN(auto v, client->Get(key));
      missing += !v.has_value();
    }
  }
  EXPECT_EQ(missing, 0);
}

TEST_F(ServerProcessTest, SecondServerOnSameDirectoryIsRefused) {
  auto first = StartServer();
  ASSERT_NE(first, nullptr);
  auto client = Connect(*first);
  ASSERT_OK(client->Put("owner", "first"));

  ProcessResult second = RunProcess(
      {BinaryPath("server/strata-server"), "--listen=127.0.0.1:0",
       "--data_dir=" + data_dir_},
      "", absl::Seconds(30));
  EXPECT_FALSE(second.timed_out);
  ASSERT_TRUE(second.exited);
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_THAT(second.err,
              HasSubstr("data directory " + data_dir_ +
                        " is in use by another process (LOCK held)"));
  EXPECT_THAT(second.out, ::testing::Not(HasSubstr("listening")));

  // The first server is undisturbed.
  ASSERT_OK(client->Put("still", "serving"));
  ASSERT_OK_AND_ASSIGN(auto v, client->Get("owner"));
  EXPECT_EQ(v, std::optional<std::string>("first"));
  ASSERT_OK_AND_ASSIGN(bool serving, client->Health());
  EXPECT_TRUE(serving);
  StopCleanly(first.get());
}

TEST_F(ServerProcessTest, BadFlagsExitWithStatusTwo) {
  const std::string bin = BinaryPath("server/strata-server");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--wal_sync=sometimes"},
           {"--compression=gzip"},
           {"--cq_threads=-1"},
           {"--cq_threads=abc"},
           {"--max_key_bytes=0"},
           {"--max_value_bytes=20000000"},  // Does not fit in a message.
           {"--no_such_flag"},
           {"extra-positional-argument"},
       }) {
    std::vector<std::string> argv = {bin, "--data_dir=" + data_dir_};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = RunProcess(argv, "", absl::Seconds(30));
    ASSERT_TRUE(r.exited) << args[0];
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << args[0];
  }
}

// Thread counts left at their defaults follow the CPUs the process may
// use (server/usable_cpus.h): started with a one-CPU affinity mask (as
// `taskset -c 0` or a one-CPU container), the server runs one completion
// queue and says why in its start-up log.
TEST_F(ServerProcessTest, DefaultThreadsFollowTheAffinityMask) {
  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  int first_cpu = 0;
  while (first_cpu < CPU_SETSIZE && !CPU_ISSET(first_cpu, &saved)) ++first_cpu;
  ASSERT_LT(first_cpu, CPU_SETSIZE);
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first_cpu, &one);
  // The child inherits this thread's mask at fork; restored right after.
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  auto server = StartServer();
  ASSERT_EQ(sched_setaffinity(0, sizeof(saved), &saved), 0);
  ASSERT_NE(server, nullptr);
  StopCleanly(server.get());
  const std::string log = server->Stderr();
  EXPECT_THAT(log, HasSubstr("threads: cq=1 pool=2 compaction=1 (usable CPUs "
                             "1: affinity 1, cgroup quota"));
  EXPECT_THAT(log, HasSubstr("derived: cq,pool,compaction)"));
  // A flag wins over the derived count.
  auto flagged = StartServer({"--cq_threads=3", "--io_threads=5"});
  ASSERT_NE(flagged, nullptr);
  StopCleanly(flagged.get());
  EXPECT_THAT(flagged->Stderr(), HasSubstr("threads: cq=3 pool=5 compaction="));
  EXPECT_THAT(flagged->Stderr(), HasSubstr("derived: compaction)"));
}

TEST_F(ServerProcessTest, HelpDocumentsEveryFlagAndExitsZero) {
  ProcessResult r =
      RunProcess({BinaryPath("server/strata-server"), "--help"}, "",
                 absl::Seconds(30));
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--listen", "--data_dir", "--cq_threads", "--io_threads", "--wal_sync",
        "--max_key_bytes", "--max_value_bytes", "--max_message_bytes",
        "--max_batch_mutations", "--memtable_bytes", "--block_cache_bytes",
        "--max_open_files", "--compression", "--compaction_threads",
        "--max_inflight_bytes", "--transport_memory_bytes",
        "--malloc_tuning"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
  // The thread defaults say they are derived, and from what.
  EXPECT_THAT(r.out, HasSubstr("derived: one per usable CPU"));
}

}  // namespace
}  // namespace strata::testing
