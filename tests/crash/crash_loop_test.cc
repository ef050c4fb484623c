// The crash loop: the real strata-server under concurrent writers, killed
// with SIGKILL at random moments, restarted and checked, over and over.
//
// Each cycle:
//   1. start strata-server on the same data directory (127.0.0.1 port 0,
//      256 KiB memtable so flushes and compactions run constantly;
//      --wal_sync alternates between fsync and none: both survive kill -9);
//      it must open without repair;
//   2. verify: every acknowledged write is there with its last acknowledged
//      value, or the value of the one write that was in flight (not
//      acknowledged) for that key when the server died; acknowledged deletes
//      stay deleted; an unacknowledged Write batch is all-or-nothing (every
//      value carries its batch id); a full Scan agrees with the Gets and
//      holds no key that was never written;
//   3. run writers (Put, Delete, multi-key Write) until a random number of
//      operations has been acknowledged, SIGKILL the server mid-stream;
//   4. run strata-verify on the directory: it must find no error.
// Writers own disjoint key ranges, so each key's history is sequential and
// "last acknowledged" is exact; a writer stops at its first failed
// operation, so at most one operation per writer is in doubt.
//
// Environment:
//   STRATA_CRASH_CYCLES=<n>  cycles (default 20; e.g. 1000 for a soak)
//   STRATA_CRASH_SEED=<n>    replay a run (the seed is printed at start)
// On failure the seed, the mismatching keys with their full history, and
// the path of the complete operation log are printed; the data directory
// is kept.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/strata_client.h"
#include "gtest/gtest.h"
#include "tests/server/process_util.h"

extern char** environ;

namespace strata {
namespace {

using testing::BinaryPath;
using testing::ServerProcess;

constexpr int kWriters = 4;
constexpr int kKeysPerWriter = 150;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

std::string KeyOf(int writer, int k) {
  return absl::StrFormat("w%d/k%03d", writer, k);
}

// One client operation. `effects` is the state it leaves per key
// (nullopt = deleted).
struct Op {
  enum class Kind { kPut, kDelete, kWrite };
  enum class Result { kInFlight, kAcked, kFailed };
  int cycle = 0;
  int writer = 0;
  uint64_t id = 0;  // Unique over the run; the batch id in values.
  Kind kind = Kind::kPut;
  std::vector<std::pair<std::string, std::optional<std::string>>> effects;
  Result result = Result::kInFlight;
  std::string error;

  std::string Describe() const {
    static const char* kKinds[] = {"Put", "Delete", "Write"};
    static const char* kResults[] = {"IN-FLIGHT", "ACKED", "FAILED"};
    std::string s = absl::StrFormat("cycle %d writer %d op %d %s", cycle,
                                    writer, id, kKinds[static_cast<int>(kind)]);
    for (const auto& [k, v] : effects) {
      if (v) {
        absl::StrAppendFormat(&s, " put(%s, %s...[%d])", k, v->substr(0, 24),
                              v->size());
      } else {
        absl::StrAppendFormat(&s, " del(%s)", k);
      }
    }
    absl::StrAppendFormat(&s, " -> %s%s", kResults[static_cast<int>(result)],
                          error.empty() ? "" : " (" + error + ")");
    return s;
  }
};

// What the test knows about one key.
struct KeyState {
  std::optional<std::string> acked;  // Durable state as far as we know.
  const Op* doubt = nullptr;         // An unacknowledged op touching it.
};

std::string Show(const std::optional<std::string>& v) {
  if (!v) return "<absent>";
  return absl::StrFormat("\"%s...\"[%d]", v->substr(0, 28), v->size());
}

class CrashLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(BinaryPath("server/strata-server").empty())
        << "STRATA_BINARY_DIR is not set (run through ctest)";
    seed_ = static_cast<uint64_t>(EnvInt("STRATA_CRASH_SEED", 0));
    if (seed_ == 0) seed_ = std::random_device()() | 1;
    cycles_ = std::max(1, EnvInt("STRATA_CRASH_CYCLES", 20));
    const char* tmp = std::getenv("TEST_TMPDIR");
    work_ = absl::StrFormat("%s/strata-crash-%d", tmp ? tmp : "/tmp", seed_);
    std::filesystem::remove_all(work_);
    std::filesystem::create_directories(work_);
    data_dir_ = work_ + "/data";
    std::printf("crash loop: seed %llu, %d cycles, data in %s\n",
                static_cast<unsigned long long>(seed_), cycles_, data_dir_.c_str());
    std::fflush(stdout);
    ::testing::Test::RecordProperty("seed", std::to_string(seed_));
  }

  void TearDown() override {
    if (HasFailure()) {
      WriteLog();
      std::printf(
          "crash loop FAILED: replay with STRATA_CRASH_SEED=%llu "
          "STRATA_CRASH_CYCLES=%d; operation log: %s/ops.log; data kept in "
          "%s\n",
          static_cast<unsigned long long>(seed_), cycles_, work_.c_str(),
          data_dir_.c_str());
    } else if (std::getenv("STRATA_KEEP_TEST_DIRS") == nullptr) {
      std::filesystem::remove_all(work_);
    }
  }

  void WriteLog() {
    std::ofstream out(work_ + "/ops.log");
    out << "seed " << seed_ << "\n";
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& op : log_) out << op->Describe() << "\n";
  }

  std::vector<std::string> ServerFlags(int cycle) const {
    return {"--memtable_bytes=262144",
            "--block_cache_bytes=1048576",
            "--cq_threads=2",
            "--io_threads=2",
            "--compaction_threads=1",
            cycle % 2 == 0 ? "--wal_sync=fsync" : "--wal_sync=none",
            cycle % 3 == 0 ? "--compression=none" : "--compression=lz4"};
  }

  // Starts the server and kills it after `delay`, maybe during recovery,
  // without waiting for it to listen.
  void KillDuringStartup(int cycle, absl::Duration delay) {
    std::vector<std::string> argv = {BinaryPath("server/strata-server"),
                                     "--listen=127.0.0.1:0",
                                     "--data_dir=" + data_dir_};
    for (const std::string& f : ServerFlags(cycle)) argv.push_back(f);
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    const std::string err = data_dir_ + ".stderr";
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ASSERT_EQ(rc, 0);
    absl::SleepFor(delay);  // The kill moment, not synchronization.
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
  }

  std::unique_ptr<Client> Connect(const ServerProcess& server) {
    ClientOptions o;
    o.timeout = absl::Seconds(20);
    return std::make_unique<Client>(server.address(), o);
  }

  // Step 2: compare the server with the model, then settle the model.
  void Verify(Client* client, int cycle);
  // Step 3: one writer's loop.
  void Writer(Client* client, int writer, int cycle, uint64_t seed);

  // Records an op in the log and returns it (stable address).
  Op* NewOp(int cycle, int writer, Op::Kind kind) {
    auto op = std::make_unique<Op>();
    op->cycle = cycle;
    op->writer = writer;
    op->kind = kind;
    std::lock_guard<std::mutex> l(mu_);
    op->id = ++next_op_id_;
    log_.push_back(std::move(op));
    return log_.back().get();
  }

  void Finish(Op* op, const absl::Status& s) {
    std::lock_guard<std::mutex> l(mu_);
    if (s.ok()) {
      op->result = Op::Result::kAcked;
      for (const auto& [k, v] : op->effects) {
        keys_[k].acked = v;
        keys_[k].doubt = nullptr;
      }
      acked_ops_++;
      acked_cv_.notify_all();
    } else {
      op->result = Op::Result::kFailed;
      op->error = std::string(absl::StatusCodeToString(s.code()));
      for (const auto& [k, v] : op->effects) keys_[k].doubt = op;
      if (s.code() != absl::StatusCode::kUnavailable &&
          s.code() != absl::StatusCode::kDeadlineExceeded &&
          s.code() != absl::StatusCode::kCancelled) {
        unexpected_errors_.push_back(op->Describe() + ": " + s.ToString());
      }
    }
  }

  std::string History(const std::string& key) {
    std::string out;
    for (const auto& op : log_) {
      for (const auto& [k, v] : op->effects) {
        if (k == key) {
          out += "    " + op->Describe() + "\n";
          break;
        }
      }
    }
    return out;
  }

  uint64_t seed_ = 0;
  int cycles_ = 0;
  std::string work_;
  std::string data_dir_;

  std::mutex mu_;
  std::condition_variable acked_cv_;
  std::vector<std::unique_ptr<Op>> log_;
  uint64_t next_op_id_ = 0;
  uint64_t acked_ops_ = 0;
  std::map<std::string, KeyState> keys_;
  std::vector<std::string> unexpected_errors_;
  int writers_done_ = 0;
  std::atomic<bool> stop_{false};
};

void CrashLoopTest::Verify(Client* client, int cycle) {
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::string, std::optional<std::string>> actual;
  std::string problems;
  for (int w = 0; w < kWriters; w++) {
    for (int k = 0; k < kKeysPerWriter; k++) {
      const std::string key = KeyOf(w, k);
      auto got = client->Get(key);
      if (!got.ok()) {
        problems += absl::StrFormat("  Get(%s): %s\n", key, got.status().ToString());
        continue;
      }
      actual[key] = *got;
      const KeyState& st = keys_[key];
      bool ok = *got == st.acked;
      if (!ok && st.doubt != nullptr) {
        for (const auto& [dk, dv] : st.doubt->effects) {
          if (dk == key && dv == *got) ok = true;
        }
      }
      if (!ok) {
        problems += absl::StrFormat(
            "  key %s: got %s, last acknowledged %s%s\n  history:\n%s", key,
            Show(*got), Show(st.acked),
            st.doubt ? ", in doubt: op " + std::to_string(st.doubt->id) : "",
            History(key));
      }
    }
  }
  // Each in-doubt op happened entirely or not at all.
  std::set<const Op*> doubted;
  for (const auto& [k, st] : keys_) {
    if (st.doubt != nullptr) doubted.insert(st.doubt);
  }
  for (const Op* op : doubted) {
    int applied = 0, not_applied = 0;
    for (const auto& [k, v] : op->effects) {
      auto a = actual.find(k);
      if (a == actual.end() || v == keys_[k].acked) continue;  // Ambiguous.
      (a->second == v ? applied : not_applied)++;
    }
    if (applied > 0 && not_applied > 0) {
      problems += absl::StrFormat(
          "  op %d was applied partially (%d of its keys changed, %d not):\n"
          "    %s\n",
          op->id, applied, not_applied, op->Describe());
    }
  }
  // Scan agrees with Get and holds nothing else.
  std::map<std::string, std::string> scanned;
  absl::Status s = client->Scan("", "", 0, false,
                                [&](std::string_view k, std::string_view v) {
                                  scanned.emplace(std::string(k), std::string(v));
                                  return true;
                                });
  if (!s.ok()) problems += "  Scan: " + s.ToString() + "\n";
  for (const auto& [k, v] : actual) {
    auto it = scanned.find(k);
    std::optional<std::string> in_scan =
        it == scanned.end() ? std::nullopt : std::optional(it->second);
    if (s.ok() && in_scan != v) {
      problems += absl::StrFormat("  key %s: Get %s but Scan %s\n", k, Show(v),
                                  Show(in_scan));
    }
  }
  for (const auto& [k, v] : scanned) {
    if (!actual.count(k)) problems += "  Scan returned unknown key " + k + "\n";
  }
  if (!unexpected_errors_.empty()) {
    problems += "  unexpected error codes:\n    " +
                absl::StrJoin(unexpected_errors_, "\n    ") + "\n";
    unexpected_errors_.clear();
  }
  ASSERT_EQ(problems, "") << "after crash " << cycle << " (seed " << seed_
                          << "):\n";
  // What recovery showed is the new baseline.
  for (auto& [k, st] : keys_) {
    st.acked = actual[k];
    st.doubt = nullptr;
  }
}

void CrashLoopTest::Writer(Client* client, int writer, int cycle,
                           uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) {
    return static_cast<int>(std::uniform_int_distribution<int>(0, n - 1)(rng));
  };
  auto value = [&](uint64_t id) {
    // Mostly small; now and then 8..64 KiB so memtables fill fast.
    size_t size = pick(20) == 0 ? 8192 + pick(57344) : 16 + pick(500);
    std::string v = absl::StrFormat("w%d:op%d:c%d:", writer, id, cycle);
    v.resize(std::max(v.size(), size), static_cast<char>('a' + id % 26));
    return v;
  };
  while (!stop_.load()) {
    const int what = pick(100);
    absl::Status s;
    if (what < 50) {
      Op* op = NewOp(cycle, writer, Op::Kind::kPut);
      std::string k = KeyOf(writer, pick(kKeysPerWriter));
      std::string v = value(op->id);
      op->effects.emplace_back(k, v);
      s = client->Put(k, v).status();
      Finish(op, s);
    } else if (what < 65) {
      Op* op = NewOp(cycle, writer, Op::Kind::kDelete);
      std::string k = KeyOf(writer, pick(kKeysPerWriter));
      op->effects.emplace_back(k, std::nullopt);
      s = client->Delete(k).status();
      Finish(op, s);
    } else {
      Op* op = NewOp(cycle, writer, Op::Kind::kWrite);
      std::vector<Mutation> muts;
      std::set<int> used;
      const int n = 2 + pick(7);
      for (int i = 0; i < n; i++) {
        int k = pick(kKeysPerWriter);
        if (!used.insert(k).second) continue;
        if (pick(5) == 0) {
          muts.push_back(Mutation::Delete(KeyOf(writer, k)));
          op->effects.emplace_back(KeyOf(writer, k), std::nullopt);
        } else {
          // Every value of the batch carries its id (op%d).
          std::string v = value(op->id);
          muts.push_back(Mutation::Put(KeyOf(writer, k), v));
          op->effects.emplace_back(KeyOf(writer, k), v);
        }
      }
      s = client->Write(muts).status();
      Finish(op, s);
    }
    if (!s.ok()) break;  // The server is gone: this op stays in doubt.
  }
  std::lock_guard<std::mutex> l(mu_);
  writers_done_++;
  acked_cv_.notify_all();
}

TEST_F(CrashLoopTest, AcknowledgedWritesSurviveKill9) {
  std::mt19937_64 rng(seed_);
  const std::string verify = BinaryPath("storage/tools/strata-verify");
  int kills_during_startup = 0;
  for (int cycle = 0; cycle < cycles_; cycle++) {
    SCOPED_TRACE(absl::StrFormat("cycle %d, seed %d", cycle, seed_));
    if (cycle > 0 && rng() % 5 == 0) {
      // Kill a server while it may still be recovering.
      KillDuringStartup(cycle, absl::Milliseconds(rng() % 40));
      kills_during_startup++;
    }
    auto server = ServerProcess::Start(data_dir_, ServerFlags(cycle));
    ASSERT_TRUE(server.ok()) << "server did not open the data directory "
                                "after a crash: "
                             << server.status();
    std::unique_ptr<Client> verifier = Connect(**server);
    Verify(verifier.get(), cycle);
    if (HasFatalFailure()) return;

    // Writers run until a random number of further acknowledgements, then
    // the server is killed under them.
    const uint64_t target = rng() % 400;
    uint64_t start_acked;
    {
      std::lock_guard<std::mutex> l(mu_);
      start_acked = acked_ops_;
    }
    stop_ = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      writers_done_ = 0;
    }
    std::vector<std::unique_ptr<Client>> clients;
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; w++) {
      clients.push_back(Connect(**server));
      Client* c = clients.back().get();
      const uint64_t writer_seed = rng();
      writers.emplace_back([this, c, w, cycle, writer_seed] {
        Writer(c, w, cycle, writer_seed);
      });
    }
    {
      std::unique_lock<std::mutex> l(mu_);
      acked_cv_.wait_for(l, std::chrono::seconds(20), [&] {
        return acked_ops_ - start_acked >= target || writers_done_ == kWriters;
      });
    }
    (*server)->Signal(SIGKILL);
    auto exit = (*server)->Wait(absl::Seconds(10));
    ASSERT_TRUE(exit.ok()) << exit.status();
    EXPECT_EQ(exit->term_signal, SIGKILL);
    stop_ = true;
    for (auto& t : writers) t.join();

    // The directory a crash leaves must verify clean (warnings allowed).
    if (!verify.empty() && std::filesystem::exists(verify)) {
      auto r = testing::RunProcess({verify, data_dir_}, "", absl::Seconds(60));
      ASSERT_TRUE(r.exited && r.exit_code == 0)
          << "strata-verify after crash " << cycle << " (exit " << r.exit_code
          << "):\n"
          << r.out << r.err;
    }
  }
  // The last crash is checked too.
  auto server = ServerProcess::Start(data_dir_, ServerFlags(cycles_));
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Client> client = Connect(**server);
  Verify(client.get(), cycles_);
  int tables = 0;
  for (const auto& e : std::filesystem::directory_iterator(data_dir_)) {
    tables += e.path().extension() == ".sst";
  }
  std::lock_guard<std::mutex> l(mu_);
  std::printf("crash loop: %d cycles (%d kills during startup), %zu "
              "operations, %llu acknowledged; %d tables at the end\n",
              cycles_, kills_during_startup, log_.size(),
              static_cast<unsigned long long>(acked_ops_), tables);
}

}  // namespace
}  // namespace strata
