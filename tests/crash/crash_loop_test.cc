// The crash loop: the real strata-server under concurrent writers and a
// watcher, killed with SIGKILL at random moments, restarted and checked,
// over and over.
//
// Each cycle:
//   1. start strata-server on the same data directory (127.0.0.1 port 0,
//      256 KiB memtable so flushes and compactions run constantly;
//      --wal_sync alternates between fsync and none: both survive kill -9;
//      history is kept for the default hour, except every 4th cycle, which
//      keeps only the last 2,000 revisions); it must open without repair;
//   2. check the revisions and the change log: the server's current
//      revision is at least every acknowledged revision and every revision
//      the last watcher saw; the last watcher, re-watching from the last
//      revision it received + 1, gets exactly the rest: with what it got
//      before the kill, every revision from its start to the current one,
//      in order, once each, each one exactly the changes of one
//      acknowledged write (or of an in-doubt write, which is how the test
//      learns whether and at which revision that write was applied);
//   3. verify: every key has exactly the value and metadata (create and
//      mod revision, version) of its last applied write; a full Scan
//      agrees and holds no key that was never written;
//   4. read at past revisions: for a sample of applied writes from any
//      cycle, Get at the write's revision returns what it wrote and a
//      BatchGet of its writer's keys at that revision returns the writer's
//      state then (OUT_OF_RANGE only where retention may have compacted);
//   5. start a watcher over every key at the current revision + 1 (every
//      other cycle one that stops reading after a few messages), run
//      writers (Put, some of them typed and some with a long TTL, Delete,
//      multi-key Write, DeleteRange, Increment of counters, Put and
//      JsonUpdate of JSON documents, Txn, Commit and BatchGet over their
//      own keys) until a random number of operations has been
//      acknowledged, SIGKILL the server mid-stream;
//   6. run strata-verify on the directory: it must find no error.
// Writers own disjoint key ranges, so each key's history is sequential and
// the test knows, before sending a write, exactly what it will change
// (deleting an absent key changes nothing and takes no revision): an
// Increment's new value and a JsonUpdate's new document (an increment lost
// or applied twice shows as a wrong value, and an in-doubt one is settled
// like any write, by the watch); for a Txn, which branch its compare picks
// and what its reads return; for a Commit, that it commits (nothing else
// wrote what it read) or, when the writer itself changed a key it read
// after its read revision, that it is ABORTED and writes nothing. Every
// acknowledged write's revision is checked as it arrives: one that changes
// something gets a revision no other write got, above every revision its
// writer saw before; one that changes nothing reports a revision no lower.
// A writer stops at its first failed operation, so at most one operation
// per writer is in doubt.
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

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
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
#include "grpcpp/create_channel.h"
#include "nlohmann/json.hpp"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/process_util.h"

extern char** environ;

namespace strata {
namespace {

using testing::BinaryPath;
using testing::ServerProcess;

constexpr int kWriters = 4;
constexpr int kKeysPerWriter = 150;
// The last keys of each writer: counters (only ever INT64, written by
// Increment) and JSON documents (only ever JSON: Put, then JsonUpdate);
// Put and Write use the others. Delete and DeleteRange reach all of them.
constexpr int kCounterKeys = 8;
constexpr int kDocKeys = 6;
constexpr int kPlainKeys = kKeysPerWriter - kCounterKeys - kDocKeys;
// A TTL no key reaches during a run (an hour).
constexpr int64_t kLongTtlMs = 3600 * 1000;
constexpr absl::Duration kRpcTimeout = absl::Seconds(20);
// Revisions kept in the cycles with revision-count retention. A cycle
// commits at most ~410 revisions (400 acknowledged operations, a few more
// in flight), so a watcher, which is never more than one cycle behind, is
// never compacted away.
constexpr int64_t kRetainedRevisions = 2000;
// Applied writes whose revision is read back after each restart.
constexpr int kPastReadsPerCycle = 6;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

std::string KeyOf(int writer, int k) {
  return absl::StrFormat("w%d/k%03d", writer, k);
}
// [RangeStart(w), RangeEnd(w)) holds exactly writer w's keys ('0' follows
// '/').
std::string RangeStart(int writer) { return absl::StrFormat("w%d/", writer); }
std::string RangeEnd(int writer) { return absl::StrFormat("w%d0", writer); }

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d = kRpcTimeout) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(d));
}

std::string ShowStatus(const grpc::Status& s) {
  return absl::StrFormat("%d %s", static_cast<int>(s.error_code()),
                         s.error_message());
}

// A channel of its own (its own TCP connection) to the server. With
// small_window, the client takes in at most ~64 KiB that it has not read
// (no window growth by bandwidth probing), so a reader that stops reading
// soon stops the server's sending too.
std::unique_ptr<v1::KV::Stub> Connect(const ServerProcess& server,
                                      bool small_window = false) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (small_window) {
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  }
  return v1::KV::NewStub(grpc::CreateCustomChannel(
      server.address(), grpc::InsecureChannelCredentials(), args));
}

// A key's state as GetResponse reports it.
struct KeyVersion {
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int type = v1::BYTES;  // The value's strata.v1.ValueType.
  bool operator==(const KeyVersion&) const = default;
};
using KeyState = std::optional<KeyVersion>;  // nullopt: absent.

KeyState FromGet(const v1::GetResponse& r) {
  if (!r.found()) return std::nullopt;
  return KeyVersion{r.value(), r.create_revision(), r.mod_revision(),
                    r.version(), r.type()};
}
KeyState FromKv(const v1::KeyValue& kv) {
  return KeyVersion{kv.value(), kv.create_revision(), kv.mod_revision(),
                    kv.version(), kv.type()};
}

std::string Show(const KeyState& v) {
  if (!v) return "<absent>";
  return absl::StrFormat(
      "\"%s...\"[%d] (create %d, mod %d, version %d, %s)",
      v->value.substr(0, 28), v->value.size(), v->create_revision,
      v->mod_revision, v->version,
      v1::ValueType_Name(static_cast<v1::ValueType>(v->type)));
}

// A JSON text in the server's normalized form (nlohmann-json's dump, as
// the server stores it).
std::string Normalized(const nlohmann::json& j) { return j.dump(); }

// One client operation.
struct Op {
  enum class Kind {
    kPut,
    kDelete,
    kWrite,
    kDeleteRange,
    kBatchGet,
    kIncrement,
    kJsonUpdate,
    kTxn,
    kCommit
  };
  enum class Result { kInFlight, kAcked, kFailed };
  using Mutations =
      std::vector<std::pair<std::string, std::optional<std::string>>>;
  int cycle = 0;
  int writer = 0;
  uint64_t id = 0;  // Unique over the run; the batch id in values.
  Kind kind = Kind::kPut;
  // What the request asks, per key (nullopt = delete); for a DeleteRange,
  // every key of its range. For a BatchGet, the keys read. For an
  // Increment or a JsonUpdate, the value it will write.
  Mutations effects;
  // The strata.v1.ValueType of its puts.
  int put_type = v1::BYTES;
  // What it changes, given the state before it: its puts, and its deletes
  // of keys that exist. Empty: it changes nothing and takes no revision.
  Mutations changes;
  // Once applied: each changed key's new state.
  std::vector<std::pair<std::string, KeyState>> after;
  Result result = Result::kInFlight;
  std::string error;
  // Acknowledged: the response header's revision. In doubt: the revision
  // the watch showed it at, if it was applied.
  int64_t revision = 0;
  bool applied = false;  // Its changes are in the database at `revision`.
  // A Commit that must be ABORTED: `effects` are its mutations, but it
  // changes nothing.
  bool expect_abort = false;

  bool IsRead() const { return kind == Kind::kBatchGet; }

  std::string Describe() const {
    static const char* kKinds[] = {"Put",       "Delete",    "Write",
                                   "DeleteRange", "BatchGet", "Increment",
                                   "JsonUpdate", "Txn",      "Commit"};
    static const char* kResults[] = {"IN-FLIGHT", "ACKED", "FAILED"};
    std::string s = absl::StrFormat("cycle %d writer %d op %d %s", cycle,
                                    writer, id, kKinds[static_cast<int>(kind)]);
    if (kind == Kind::kDeleteRange) {
      absl::StrAppendFormat(
          &s,
          " [%s..%s] deletes %d:", effects.empty() ? "" : effects.front().first,
          effects.empty() ? "" : effects.back().first, changes.size());
    }
    for (const auto& [k, v] : kind == Kind::kDeleteRange ? changes : effects) {
      if (IsRead()) {
        absl::StrAppendFormat(&s, " %s", k);
      } else if (v) {
        absl::StrAppendFormat(&s, " put(%s, %s...[%d])", k, v->substr(0, 24),
                              v->size());
      } else {
        absl::StrAppendFormat(&s, " del(%s)", k);
      }
    }
    if (expect_abort) s += " (must be ABORTED)";
    absl::StrAppendFormat(&s, " -> %s%s", kResults[static_cast<int>(result)],
                          error.empty() ? "" : " (" + error + ")");
    if (!IsRead() && result != Result::kInFlight) {
      if (applied) {
        absl::StrAppendFormat(&s, " at revision %d", revision);
      } else if (result == Result::kAcked) {
        absl::StrAppendFormat(&s, " (changed nothing; revision %d)", revision);
      }
    }
    return s;
  }
};

// What the watcher of one cycle received before the kill ended its stream.
struct WatchLog {
  int cycle = 0;
  int64_t start = 0;  // Its start_revision.
  std::vector<v1::WatchResponse> messages;
  grpc::Status status;
};

// One Watch stream over every key, read on its own thread until it ends
// (the SIGKILL ends it; its deadline bounds it regardless). A watcher with
// a read limit stops reading after that many messages, as a consumer that
// falls behind, until Release(): the server then holds (or drops to its
// change log) what it could not send, and the kill leaves more for the
// resumed watch to read back from disk.
class Watcher {
 public:
  Watcher(const ServerProcess& server, int cycle, int64_t start,
          std::optional<size_t> read_limit)
      : stub_(Connect(server, /*small_window=*/read_limit.has_value())),
        read_limit_(read_limit) {
    log_.cycle = cycle;
    log_.start = start;
    SetDeadline(&ctx_, absl::Seconds(90));
    thread_ = std::thread([this] {
      v1::WatchRequest req;
      req.set_range_end(std::string(1, '\0'));  // Every key.
      req.set_start_revision(log_.start);
      auto reader = stub_->Watch(&ctx_, req);
      v1::WatchResponse m;
      while (true) {
        if (read_limit_.has_value() && log_.messages.size() >= *read_limit_) {
          std::unique_lock<std::mutex> l(mu_);
          cv_.wait(l, [this] { return released_; });
        }
        if (!reader->Read(&m)) break;
        log_.messages.push_back(m);
      }
      log_.status = reader->Finish();
    });
  }
  ~Watcher() {
    if (thread_.joinable()) {
      ctx_.TryCancel();
      Release();
      thread_.join();
    }
  }
  // Lets a watcher with a read limit read on.
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // Waits for the stream to end. REQUIRES: the server was killed.
  WatchLog Join() {
    Release();
    thread_.join();
    return std::move(log_);
  }

 private:
  std::unique_ptr<v1::KV::Stub> stub_;
  const std::optional<size_t> read_limit_;
  grpc::ClientContext ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;  // Guarded by mu_.
  WatchLog log_;           // Written by the thread only until it is joined.
  std::thread thread_;
};

// ---- A backup running when the server is killed (docs/backup.md) ----
// Every cycle starts a Backup stream, a full one or (every other cycle) an
// incremental since the verified revision, that reads its first message
// and then stops reading (a small window), so the server still holds it
// (a full backup's checkpoint directory exists) when SIGKILL comes. After
// the restart the data directory must hold no orphaned checkpoint or
// staging directory (CheckNoOrphanedBackupFiles).
class BackupInFlight {
 public:
  BackupInFlight(const ServerProcess& server, int64_t since_revision)
      : stub_(Connect(server, /*small_window=*/true)) {
    SetDeadline(&ctx_, absl::Seconds(90));
    thread_ = std::thread([this, since_revision] {
      v1::BackupRequest req;
      req.set_since_revision(since_revision);
      auto reader = stub_->Backup(&ctx_, req);
      v1::BackupResponse m;
      begun_ = reader->Read(&m) && m.has_begin();
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [this] { return released_; });
      }
      while (reader->Read(&m)) {
      }
      status_ = reader->Finish();
    });
  }
  ~BackupInFlight() {
    if (thread_.joinable()) {
      ctx_.TryCancel();
      Join();
    }
  }
  // Lets it read to its end and waits for it; whether its BackupBegin
  // arrived. REQUIRES: the server was killed (or the deadline bounds it).
  bool Join() {
    {
      std::lock_guard<std::mutex> l(mu_);
      released_ = true;
      cv_.notify_all();
    }
    thread_.join();
    return begun_;
  }

 private:
  std::unique_ptr<v1::KV::Stub> stub_;
  grpc::ClientContext ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;  // Guarded by mu_.
  bool begun_ = false;     // Written by the thread only until joined.
  grpc::Status status_;
  std::thread thread_;
};

// After a restart: no directory is left in the data directory but an
// empty backup-tmp (the server empties it at start), and no restore
// staging directory beside it.
void CheckNoOrphanedBackupFiles(const std::string& data_dir) {
  for (const auto& e : std::filesystem::directory_iterator(data_dir)) {
    if (!e.is_directory()) continue;
    EXPECT_EQ(e.path().filename(), "backup-tmp")
        << "orphaned directory " << e.path();
    EXPECT_TRUE(std::filesystem::is_empty(e.path()))
        << "orphaned backup checkpoint in " << e.path();
  }
  EXPECT_FALSE(std::filesystem::exists(data_dir + ".restore-tmp"));
}

class CrashLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(BinaryPath("server/strata-server").empty())
        << "STRATA_BINARY_DIR is not set (run through ctest)";
    // Seeds are 64-bit (the printed one must replay): not EnvInt.
    const char* seed = std::getenv("STRATA_CRASH_SEED");
    seed_ = seed != nullptr ? std::strtoull(seed, nullptr, 10) : 0;
    if (seed_ == 0) seed_ = std::random_device()() | 1;
    cycles_ = std::max(1, EnvInt("STRATA_CRASH_CYCLES", 20));
    const char* tmp = std::getenv("TEST_TMPDIR");
    work_ = absl::StrFormat("%s/strata-crash-%d", tmp ? tmp : "/tmp", seed_);
    std::filesystem::remove_all(work_);
    std::filesystem::create_directories(work_);
    data_dir_ = work_ + "/data";
    std::printf("crash loop: seed %llu, %d cycles, data in %s\n",
                static_cast<unsigned long long>(seed_), cycles_,
                data_dir_.c_str());
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

  static bool KeepsRevisionCount(int cycle) { return cycle % 4 == 3; }

  std::vector<std::string> ServerFlags(int cycle) const {
    std::vector<std::string> flags = {
        "--memtable_bytes=262144",
        "--block_cache_bytes=1048576",
        "--cq_threads=2",
        "--io_threads=2",
        "--compaction_threads=1",
        cycle % 2 == 0 ? "--wal_sync=fsync" : "--wal_sync=none",
        cycle % 3 == 0 ? "--compression=none" : "--compression=lz4"};
    if (KeepsRevisionCount(cycle)) {
      flags.push_back("--history_retention=0");
      flags.push_back(absl::StrFormat("--history_retention_revisions=%d",
                                      kRetainedRevisions));
    }
    return flags;
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

  // Step 2: the current revision, and the last watcher resumed and checked
  // against the writes; settles the in-doubt writes.
  void CheckRevisionsAndWatch(v1::KV::Stub* stub, int cycle);
  // Step 3: compare the server with the model.
  void Verify(v1::KV::Stub* stub, int cycle);
  // Step 4: reads at the revisions of past writes.
  void CheckPastReads(v1::KV::Stub* stub, int cycle, std::mt19937_64* rng);
  // Step 5: one writer's loop.
  void Writer(v1::KV::Stub* stub, int writer, int cycle, uint64_t seed);
  // One Txn (a guarded write with reads), one Commit transaction (after a
  // conflicting Put of its own, now and then); the status of the RPC that
  // ended the writer's turn.
  using ValueFn = std::function<std::string(uint64_t id)>;
  grpc::Status TxnOp(v1::KV::Stub* stub, int writer, int cycle,
                     std::mt19937_64* rng, const ValueFn& value);
  grpc::Status CommitOp(v1::KV::Stub* stub, int writer, int cycle,
                        std::mt19937_64* rng, const ValueFn& value);
  // Writer w's live keys in the model.
  std::map<std::string, KeyVersion> LiveKeys(int writer);

  // A fresh op id (values carry it).
  uint64_t ReserveId() {
    std::lock_guard<std::mutex> l(mu_);
    return ++next_op_id_;
  }

  // Records an op in the log and returns it (stable address); works out
  // from the model what it will change.
  Op* NewOp(int cycle, int writer, uint64_t id, Op::Kind kind,
            Op::Mutations effects, int put_type = v1::BYTES,
            bool expect_abort = false) {
    auto op = std::make_unique<Op>();
    op->cycle = cycle;
    op->writer = writer;
    op->id = id;
    op->kind = kind;
    op->effects = std::move(effects);
    op->expect_abort = expect_abort;
    op->put_type = put_type;
    std::lock_guard<std::mutex> l(mu_);
    if (!op->IsRead() && !expect_abort) {
      for (const auto& [k, v] : op->effects) {
        if (v.has_value() || keys_[k].has_value()) {
          op->changes.emplace_back(k, v);
        }
      }
    }
    log_.push_back(std::move(op));
    writer_ops_[writer].push_back(log_.back().get());
    return log_.back().get();
  }

  // Applies op's changes to the model at `revision`.
  void Apply(Op* op, int64_t revision) {
    op->revision = revision;
    op->applied = true;
    op->after.clear();
    for (const auto& [k, v] : op->changes) {
      KeyState& state = keys_[k];
      KeyState next;
      if (v.has_value()) {
        next = KeyVersion{*v, state ? state->create_revision : revision,
                          revision, state ? state->version + 1 : 1,
                          op->put_type};
      }
      state = next;
      op->after.emplace_back(k, next);
    }
    applied_ops_.push_back(op);
  }

  // An RPC of a write op ended with `s` and (if OK) `revision`.
  void Finish(Op* op, const grpc::Status& s, int64_t revision) {
    std::lock_guard<std::mutex> l(mu_);
    if (s.ok()) {
      op->result = Op::Result::kAcked;
      op->revision = revision;
      int64_t& seen = writer_revision_[op->writer];
      if (!op->changes.empty()) {
        if (revision <= seen) {
          run_problems_.push_back(absl::StrFormat(
              "%s: revision not above %d, which its writer saw before",
              op->Describe(), seen));
        }
        auto [it, fresh] = acked_revisions_.emplace(revision, op);
        if (!fresh) {
          run_problems_.push_back(absl::StrFormat(
              "revision %d acknowledged twice:\n    %s\n    %s", revision,
              it->second->Describe(), op->Describe()));
        }
        Apply(op, revision);
      } else if (revision < seen) {
        run_problems_.push_back(absl::StrFormat(
            "%s: a write that changed nothing reported a revision below %d, "
            "which its writer saw before",
            op->Describe(), seen));
      }
      seen = std::max(seen, revision);
      max_acked_revision_ = std::max(max_acked_revision_, revision);
      acked_ops_++;
      acked_cv_.notify_all();
    } else {
      FailLocked(op, s);
    }
  }

  void FailLocked(Op* op, const grpc::Status& s) {
    op->result = Op::Result::kFailed;
    op->error = ShowStatus(s);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
        s.error_code() != grpc::StatusCode::CANCELLED) {
      run_problems_.push_back(op->Describe() + ": unexpected status");
    }
  }

  // The model's state of a key (only its writer changes it, so it stays
  // exact until that writer's next operation).
  KeyState ModelState(const std::string& key) {
    std::lock_guard<std::mutex> l(mu_);
    return keys_[key];
  }

  // An acknowledged response that does not match what the model expected.
  void Problem(const Op* op, const std::string& what) {
    std::lock_guard<std::mutex> l(mu_);
    run_problems_.push_back(op->Describe() + ": " + what);
  }

  // Writer w's keys at `revision`, from the applied writes.
  std::map<std::string, KeyState> StateAt(int writer, int64_t revision) {
    std::map<std::string, KeyState> state;
    for (const Op* op : writer_ops_[writer]) {
      if (!op->applied || op->revision > revision) continue;
      for (const auto& [k, v] : op->after) state[k] = v;
    }
    return state;
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
  int backups_killed_ = 0;  // Backups that had begun when a kill came.
  std::string work_;
  std::string data_dir_;

  std::mutex mu_;
  std::condition_variable acked_cv_;
  std::vector<std::unique_ptr<Op>> log_;
  std::map<int, std::vector<Op*>> writer_ops_;  // Per writer, in order.
  std::vector<const Op*> applied_ops_;
  uint64_t next_op_id_ = 0;
  uint64_t acked_ops_ = 0;
  // Every key's state after the writes applied so far (an in-doubt write
  // is applied once the watch shows it was).
  std::map<std::string, KeyState> keys_;
  // Acknowledged writes that changed something, by revision.
  std::map<int64_t, const Op*> acked_revisions_;
  int64_t max_acked_revision_ = 0;
  // The highest revision each writer has seen in a response.
  std::map<int, int64_t> writer_revision_;
  // The highest revision each writer's writes reached in this cycle (0:
  // none yet).
  std::map<int, int64_t> cycle_revision_;
  // Reads below this revision may be OUT_OF_RANGE: retention may have
  // compacted them (an upper bound on the compacted revision).
  int64_t compaction_bound_ = 0;
  // The server's current revision when it was last (re)started.
  int64_t current_revision_ = 0;
  std::optional<WatchLog> last_watch_;
  std::vector<std::string> run_problems_;
  int writers_done_ = 0;
  std::atomic<bool> stop_{false};
  // Totals for the summary line.
  uint64_t watched_revisions_ = 0;
  uint64_t resumed_revisions_ = 0;
  uint64_t in_doubt_applied_ = 0;
  uint64_t past_reads_ = 0;
  uint64_t past_reads_compacted_ = 0;
  uint64_t txns_[2] = {0, 0};  // Acknowledged Txns by branch (failure, success).
  uint64_t commits_aborted_ = 0;
};

// "PUT key value... c/m/v" or "DELETE key @mod", for comparing an event
// with what the test expects.
std::string DescribeChange(const std::string& key, const KeyState& state,
                           int64_t revision) {
  if (!state) return absl::StrFormat("DELETE %s @%d", key, revision);
  return absl::StrFormat("PUT %s %s", key, Show(state));
}
std::string DescribeEvent(const v1::Event& e) {
  if (e.type() == v1::Event::DELETE) {
    return absl::StrFormat("DELETE %s @%d", e.kv().key(),
                           e.kv().mod_revision());
  }
  return absl::StrFormat("PUT %s %s", e.kv().key(), Show(FromKv(e.kv())));
}

// Folds the messages of a watch stream into per-revision events. *complete
// is the revision up to which the stream has reported every change (from
// the headers); events above it are a revision split across messages whose
// end was not received (dropped: they come again on resume).
void CollectWatch(const std::vector<v1::WatchResponse>& messages,
                  int64_t* complete,
                  std::map<int64_t, std::vector<v1::Event>>* by_revision,
                  std::vector<std::string>* problems) {
  int64_t last = *complete;
  for (const v1::WatchResponse& m : messages) {
    for (const v1::Event& e : m.events()) {
      const int64_t r = e.kv().mod_revision();
      if (r <= *complete) {
        problems->push_back(absl::StrFormat(
            "watch: event %s repeats revision %d, already reported complete",
            DescribeEvent(e), r));
      } else if (r < last) {
        problems->push_back(
            absl::StrFormat("watch: event %s at revision %d after revision %d",
                            DescribeEvent(e), r, last));
      }
      last = std::max(last, r);
      (*by_revision)[r].push_back(e);
    }
    if (m.header().revision() < *complete) {
      problems->push_back(
          absl::StrFormat("watch: header revision went back from %d to %d",
                          *complete, m.header().revision()));
    }
    *complete = std::max(*complete, m.header().revision());
  }
  by_revision->erase(by_revision->upper_bound(*complete), by_revision->end());
}

void CrashLoopTest::CheckRevisionsAndWatch(v1::KV::Stub* stub, int cycle) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> problems;
  {
    v1::GetRequest req;
    req.set_key(KeyOf(0, 0));
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->Get(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << ShowStatus(s);
    current_revision_ = resp.header().revision();
  }
  const int64_t current = current_revision_;
  if (current < max_acked_revision_) {
    problems.push_back(absl::StrFormat(
        "the server restarted at revision %d, below the acknowledged "
        "revision %d: acknowledged revisions were lost and will be reused",
        current, max_acked_revision_));
  }
  if (KeepsRevisionCount(cycle) || KeepsRevisionCount(cycle - 1)) {
    compaction_bound_ =
        std::max(compaction_bound_, current - kRetainedRevisions);
  }
  if (last_watch_.has_value()) {
    const WatchLog& w = *last_watch_;
    std::map<int64_t, std::vector<v1::Event>> by_revision;
    int64_t complete = w.start - 1;
    CollectWatch(w.messages, &complete, &by_revision, &problems);
    const int64_t seen = complete;
    watched_revisions_ += seen - (w.start - 1);
    if (w.status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      problems.push_back("the watch broken by the kill ended with " +
                         ShowStatus(w.status) + ", not UNAVAILABLE");
    }
    if (seen > current) {
      problems.push_back(absl::StrFormat(
          "a watcher saw revision %d, but the server restarted at revision "
          "%d: a revision reported to a watcher was lost",
          seen, current));
    }
    // Resume from the last revision received + 1, up to the current one.
    if (seen < current) {
      v1::WatchRequest req;
      req.set_range_end(std::string(1, '\0'));
      req.set_start_revision(seen + 1);
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      auto reader = stub->Watch(&ctx, req);
      std::vector<v1::WatchResponse> messages;
      v1::WatchResponse m;
      int64_t reached = seen;
      while (reached < current && reader->Read(&m)) {
        reached = std::max(reached, m.header().revision());
        messages.push_back(m);
      }
      ctx.TryCancel();
      grpc::Status s = reader->Finish();
      if (reached < current) {
        problems.push_back(absl::StrFormat(
            "the watch resumed at %d reached only revision %d of %d: %s",
            seen + 1, reached, current, ShowStatus(s)));
      }
      CollectWatch(messages, &complete, &by_revision, &problems);
      resumed_revisions_ += complete - seen;
    }
    // Every revision from the watcher's start to the current one, each
    // exactly one write's changes.
    std::map<int, Op*> in_doubt;  // By writer.
    for (const auto& op : log_) {
      if (op->cycle == w.cycle && op->result == Op::Result::kFailed &&
          !op->changes.empty()) {
        in_doubt[op->writer] = op.get();
      }
    }
    for (int64_t r = w.start; r <= current; r++) {
      auto events = by_revision.find(r);
      if (events == by_revision.end()) {
        problems.push_back(absl::StrFormat(
            "watch: no event for revision %d (watched from %d to %d)", r,
            w.start, current));
        continue;
      }
      std::map<std::string, std::string> got;
      for (const v1::Event& e : events->second) {
        if (!got.emplace(e.kv().key(), DescribeEvent(e)).second) {
          problems.push_back(absl::StrFormat(
              "watch: two events for key %s at revision %d", e.kv().key(), r));
        }
      }
      const Op* op = nullptr;
      if (auto a = acked_revisions_.find(r); a != acked_revisions_.end()) {
        op = a->second;
      } else {
        // An in-doubt write, applied: its writer is in the keys.
        const std::string& key = events->second.front().kv().key();
        const int writer = key.size() > 1 ? key[1] - '0' : -1;
        auto d = in_doubt.find(writer);
        if (d != in_doubt.end()) {
          Op* candidate = d->second;
          std::map<std::string, std::optional<std::string>> want(
              candidate->changes.begin(), candidate->changes.end());
          std::map<std::string, std::optional<std::string>> have;
          for (const v1::Event& e : events->second) {
            have[e.kv().key()] = e.type() == v1::Event::PUT
                                     ? std::optional(e.kv().value())
                                     : std::nullopt;
          }
          if (want == have) {
            if (r <= writer_revision_[writer]) {
              problems.push_back(absl::StrFormat(
                  "in-doubt write at revision %d, not above %d, which its "
                  "writer saw before it: %s",
                  r, writer_revision_[writer], candidate->Describe()));
            }
            Apply(candidate, r);
            in_doubt_applied_++;
            in_doubt.erase(d);
            op = candidate;
          }
        }
      }
      if (op == nullptr) {
        problems.push_back(absl::StrFormat(
            "watch: revision %d matches no write: %s", r,
            absl::StrJoin(got, "; ", absl::PairFormatter(" = "))));
        continue;
      }
      std::map<std::string, std::string> want;
      for (const auto& [k, v] : op->after) {
        want[k] = DescribeChange(k, v, r);
      }
      if (got != want) {
        problems.push_back(absl::StrFormat(
            "watch: revision %d is not the changes of %s\n      got:  %s\n"
            "      want: %s",
            r, op->Describe(),
            absl::StrJoin(got, "; ", absl::PairFormatter(" = ")),
            absl::StrJoin(want, "; ", absl::PairFormatter(" = "))));
      }
    }
    for (const auto& [r, events] : by_revision) {
      if (r > current) {
        problems.push_back(absl::StrFormat(
            "watch: events at revision %d, above the current revision %d", r,
            current));
      }
    }
    last_watch_.reset();
  }
  // Every in-doubt write is settled: applied (above) or not at all.
  problems.insert(problems.end(), run_problems_.begin(), run_problems_.end());
  run_problems_.clear();
  ASSERT_TRUE(problems.empty())
      << "revisions after crash " << cycle << " (seed " << seed_ << "):\n  "
      << absl::StrJoin(problems, "\n  ");
}

void CrashLoopTest::Verify(v1::KV::Stub* stub, int cycle) {
  std::lock_guard<std::mutex> l(mu_);
  std::string problems;
  for (int w = 0; w < kWriters; w++) {
    for (int k = 0; k < kKeysPerWriter; k++) {
      const std::string key = KeyOf(w, k);
      v1::GetRequest req;
      req.set_key(key);
      v1::GetResponse resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      grpc::Status s = stub->Get(&ctx, req, &resp);
      if (!s.ok()) {
        problems += absl::StrFormat("  Get(%s): %s\n", key, ShowStatus(s));
        continue;
      }
      if (resp.header().revision() != current_revision_) {
        problems += absl::StrFormat(
            "  Get(%s) read at revision %d, not the current %d\n", key,
            resp.header().revision(), current_revision_);
      }
      const KeyState got = FromGet(resp);
      const KeyState& want = keys_[key];
      if (got != want) {
        problems += absl::StrFormat("  key %s: got %s, want %s\n  history:\n%s",
                                    key, Show(got), Show(want), History(key));
      }
    }
  }
  // Scan agrees with the model and holds nothing else.
  std::map<std::string, KeyState> scanned;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    auto reader = stub->Scan(&ctx, v1::ScanRequest());
    v1::ScanResponse m;
    while (reader->Read(&m)) {
      if (m.header().revision() != current_revision_) {
        problems += absl::StrFormat("  Scan read at revision %d, not %d\n",
                                    m.header().revision(), current_revision_);
      }
      for (const v1::KeyValue& kv : m.pairs()) scanned[kv.key()] = FromKv(kv);
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) problems += "  Scan: " + ShowStatus(s) + "\n";
  }
  for (const auto& [k, want] : keys_) {
    auto it = scanned.find(k);
    const KeyState in_scan = it == scanned.end() ? std::nullopt : it->second;
    if (in_scan != want) {
      problems += absl::StrFormat("  key %s: want %s but Scan %s\n", k,
                                  Show(want), Show(in_scan));
    }
  }
  for (const auto& [k, v] : scanned) {
    if (!keys_.count(k)) problems += "  Scan returned unknown key " + k + "\n";
  }
  ASSERT_EQ(problems, "") << "after crash " << cycle << " (seed " << seed_
                          << "):\n";
}

void CrashLoopTest::CheckPastReads(v1::KV::Stub* stub, int cycle,
                                   std::mt19937_64* rng) {
  std::lock_guard<std::mutex> l(mu_);
  if (applied_ops_.empty()) return;
  std::string problems;
  for (int i = 0; i < kPastReadsPerCycle; i++) {
    // Every other one among the most recent writes (in a long run most
    // older ones fall below retention).
    const size_t n = applied_ops_.size();
    const size_t window = i % 2 == 0 ? n : std::min<size_t>(n, 1000);
    const Op* op = applied_ops_[n - 1 - (*rng)() % window];
    const int64_t r = op->revision;
    const bool may_be_compacted = r < compaction_bound_;
    auto out_of_range = [&](const grpc::Status& s) {
      if (s.error_code() != grpc::StatusCode::OUT_OF_RANGE) return false;
      if (!may_be_compacted) {
        problems += absl::StrFormat(
            "  read at revision %d (of %s): OUT_OF_RANGE, but retention "
            "compacted at most to %d: %s\n",
            r, op->Describe(), compaction_bound_, s.error_message());
      }
      past_reads_compacted_++;
      return true;
    };
    // Get at the write's revision: what it wrote.
    for (const auto& [key, want] : op->after) {
      v1::GetRequest req;
      req.set_key(key);
      req.set_revision(r);
      v1::GetResponse resp;
      grpc::ClientContext ctx;
      SetDeadline(&ctx);
      grpc::Status s = stub->Get(&ctx, req, &resp);
      if (out_of_range(s)) continue;
      past_reads_++;
      if (!s.ok()) {
        problems += absl::StrFormat("  Get(%s, revision %d): %s\n", key, r,
                                    ShowStatus(s));
      } else if (FromGet(resp) != want || resp.header().revision() != r) {
        problems += absl::StrFormat(
            "  Get(%s) at revision %d (read at %d): got %s, want %s (the "
            "write at that revision: %s)\n",
            key, r, resp.header().revision(), Show(FromGet(resp)), Show(want),
            op->Describe());
      }
    }
    // BatchGet of all the writer's keys at that revision: its state then.
    const std::map<std::string, KeyState> state = StateAt(op->writer, r);
    v1::BatchGetRequest req;
    for (int k = 0; k < kKeysPerWriter; k++) req.add_keys(KeyOf(op->writer, k));
    req.set_revision(r);
    v1::BatchGetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->BatchGet(&ctx, req, &resp);
    if (out_of_range(s)) continue;
    past_reads_++;
    if (!s.ok() || resp.results_size() != kKeysPerWriter ||
        resp.header().revision() != r) {
      problems += absl::StrFormat(
          "  BatchGet at revision %d: %s, %d results, read at %d\n", r,
          ShowStatus(s), resp.results_size(), resp.header().revision());
      continue;
    }
    for (int k = 0; k < kKeysPerWriter; k++) {
      const std::string key = KeyOf(op->writer, k);
      auto it = state.find(key);
      const KeyState want = it == state.end() ? std::nullopt : it->second;
      const KeyState got = FromGet(resp.results(k));
      if (got != want) {
        problems += absl::StrFormat(
            "  BatchGet at revision %d: key %s is %s, want %s\n  history:\n%s",
            r, key, Show(got), Show(want), History(key));
      }
    }
  }
  ASSERT_EQ(problems, "") << "reads at past revisions after crash " << cycle
                          << " (seed " << seed_ << "):\n";
}

void CrashLoopTest::Writer(v1::KV::Stub* stub, int writer, int cycle,
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
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s;
    if (what < 34) {
      const std::string k = KeyOf(writer, pick(kPlainKeys));
      const uint64_t id = ReserveId();
      const std::string v = value(id);
      // One put in four is TEXT (the values are ASCII).
      const int type = pick(4) == 0 ? v1::TEXT : v1::BYTES;
      Op* op = NewOp(cycle, writer, id, Op::Kind::kPut, {{k, v}}, type);
      v1::PutRequest req;
      req.set_key(k);
      req.set_value(v);
      req.set_type(static_cast<v1::ValueType>(type));
      // One put in three carries a TTL far beyond the test (it takes the
      // expiry write path: a commit function and the TTL index in the same
      // batch); expiry itself is tested by expiry_crash_test.cc.
      if (pick(3) == 0) req.set_ttl_ms(kLongTtlMs);
      v1::PutResponse resp;
      s = stub->Put(&ctx, req, &resp);
      Finish(op, s, resp.header().revision());
    } else if (what < 40) {
      // Increment a counter: the model knows the value it will reach.
      const std::string k = KeyOf(writer, kPlainKeys + pick(kCounterKeys));
      const int64_t delta = pick(3) == 0 ? -pick(1000) : 1 + pick(1000);
      const KeyState before = ModelState(k);
      const int64_t want = (before ? std::stoll(before->value) : 0) + delta;
      Op* op = NewOp(cycle, writer, ReserveId(), Op::Kind::kIncrement,
                     {{k, std::to_string(want)}}, v1::INT64);
      v1::IncrementRequest req;
      req.set_key(k);
      req.set_delta(delta);
      v1::IncrementResponse resp;
      s = stub->Increment(&ctx, req, &resp);
      Finish(op, s, resp.header().revision());
      if (s.ok() && resp.value() != want) {
        Problem(op, absl::StrFormat("Increment returned %d", resp.value()));
      }
    } else if (what < 45) {
      // A JSON document: created with a typed Put, then merge-patched.
      const std::string k =
          KeyOf(writer, kPlainKeys + kCounterKeys + pick(kDocKeys));
      const uint64_t id = ReserveId();
      const KeyState before = ModelState(k);
      if (!before) {
        const nlohmann::json doc = {{"w", writer}, {"created", id}};
        Op* op = NewOp(cycle, writer, id, Op::Kind::kPut,
                       {{k, Normalized(doc)}}, v1::JSON);
        v1::PutRequest req;
        req.set_key(k);
        req.set_value(doc.dump(2));  // Stored normalized.
        req.set_type(v1::JSON);
        v1::PutResponse resp;
        s = stub->Put(&ctx, req, &resp);
        Finish(op, s, resp.header().revision());
      } else {
        const nlohmann::json patch = {
            {"op", id}, {absl::StrFormat("f%d", id % 4), {{"n", id}}}};
        nlohmann::json doc = nlohmann::json::parse(before->value);
        doc.merge_patch(patch);
        Op* op = NewOp(cycle, writer, id, Op::Kind::kJsonUpdate,
                       {{k, Normalized(doc)}}, v1::JSON);
        v1::JsonUpdateRequest req;
        req.set_key(k);
        req.set_merge_patch(patch.dump());
        v1::JsonUpdateResponse resp;
        s = stub->JsonUpdate(&ctx, req, &resp);
        Finish(op, s, resp.header().revision());
        if (s.ok() && resp.json() != Normalized(doc)) {
          Problem(op, "JsonUpdate returned " + resp.json());
        }
      }
    } else if (what < 52) {
      const std::string k = KeyOf(writer, pick(kKeysPerWriter));
      Op* op = NewOp(cycle, writer, ReserveId(), Op::Kind::kDelete,
                     {{k, std::nullopt}});
      v1::DeleteRequest req;
      req.set_key(k);
      v1::DeleteResponse resp;
      s = stub->Delete(&ctx, req, &resp);
      Finish(op, s, resp.header().revision());
    } else if (what < 66) {
      const uint64_t id = ReserveId();
      Op::Mutations effects;
      std::set<int> used;
      const int n = 2 + pick(7);
      for (int i = 0; i < n; i++) {
        int k = pick(kPlainKeys);
        if (!used.insert(k).second) continue;
        // Every value of the batch carries its id (op%d).
        effects.emplace_back(KeyOf(writer, k), pick(5) == 0
                                                   ? std::nullopt
                                                   : std::optional(value(id)));
      }
      Op* op = NewOp(cycle, writer, id, Op::Kind::kWrite, std::move(effects));
      v1::WriteRequest req;
      for (const auto& [k, v] : op->effects) {
        v1::Mutation* m = req.add_mutations();
        if (v) {
          m->mutable_put()->set_key(k);
          m->mutable_put()->set_value(*v);
          if (pick(4) == 0) m->mutable_put()->set_ttl_ms(kLongTtlMs);
        } else {
          m->mutable_delete_()->set_key(k);
        }
      }
      v1::WriteResponse resp;
      s = stub->Write(&ctx, req, &resp);
      Finish(op, s, resp.header().revision());
    } else if (what < 70) {
      // A sub-range of the writer's keys; one time in four all of them.
      int begin = 0, end = kKeysPerWriter;
      if (pick(4) != 0) {
        begin = pick(kKeysPerWriter);
        end = std::min(kKeysPerWriter, begin + 1 + pick(30));
      }
      Op::Mutations effects;
      for (int k = begin; k < end; k++) {
        effects.emplace_back(KeyOf(writer, k), std::nullopt);
      }
      Op* op = NewOp(cycle, writer, ReserveId(), Op::Kind::kDeleteRange,
                     std::move(effects));
      v1::DeleteRangeRequest req;
      req.set_start_key(begin == 0 ? RangeStart(writer) : KeyOf(writer, begin));
      req.set_end_key(end == kKeysPerWriter ? RangeEnd(writer)
                                            : KeyOf(writer, end));
      v1::DeleteRangeResponse resp;
      s = stub->DeleteRange(&ctx, req, &resp);
      Finish(op, s, resp.header().revision());
      if (s.ok() &&
          resp.deleted() != static_cast<int64_t>(op->changes.size())) {
        std::lock_guard<std::mutex> l(mu_);
        run_problems_.push_back(
            absl::StrFormat("%s: the response says %d keys deleted",
                            op->Describe(), resp.deleted()));
      }
    } else if (what < 80) {
      s = TxnOp(stub, writer, cycle, &rng, value);
    } else if (what < 87) {
      s = CommitOp(stub, writer, cycle, &rng, value);
    } else {
      // Read some of the writer's own keys, at the latest revision or at
      // the last revision this writer wrote at in this cycle (nothing has
      // changed them since): exactly the model's state.
      std::set<int> ks;
      const int n = 1 + pick(20);
      for (int i = 0; i < n; i++) ks.insert(pick(kKeysPerWriter));
      Op::Mutations effects;
      for (int k : ks) effects.emplace_back(KeyOf(writer, k), std::nullopt);
      Op* op = NewOp(cycle, writer, ReserveId(), Op::Kind::kBatchGet,
                     std::move(effects));
      v1::BatchGetRequest req;
      for (const auto& [k, v] : op->effects) req.add_keys(k);
      int64_t at = 0;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (pick(2) == 0) at = cycle_revision_[writer];
      }
      req.set_revision(at);
      v1::BatchGetResponse resp;
      s = stub->BatchGet(&ctx, req, &resp);
      std::lock_guard<std::mutex> l(mu_);
      if (!s.ok()) {
        FailLocked(op, s);
        break;
      }
      op->result = Op::Result::kAcked;
      op->revision = resp.header().revision();
      int64_t& seen = writer_revision_[writer];
      std::string problem;
      if (at != 0 ? op->revision != at : op->revision < seen) {
        problem = absl::StrFormat("read at revision %d (asked %d, seen %d)",
                                  op->revision, at, seen);
      } else if (resp.results_size() != req.keys_size()) {
        problem = absl::StrFormat("%d results", resp.results_size());
      } else {
        for (int i = 0; i < req.keys_size(); i++) {
          const KeyState got = FromGet(resp.results(i));
          const KeyState& want = keys_[req.keys(i)];
          if (got != want) {
            problem += absl::StrFormat(" %s is %s, want %s;", req.keys(i),
                                       Show(got), Show(want));
          }
        }
      }
      if (!problem.empty()) {
        run_problems_.push_back(op->Describe() + ": " + problem);
      }
      seen = std::max(seen, op->revision);
      acked_ops_++;
      acked_cv_.notify_all();
    }
    if (!s.ok()) break;  // The server is gone: this op stays in doubt.
    {
      std::lock_guard<std::mutex> l(mu_);
      const Op* op = writer_ops_[writer].back();
      if (op->applied) cycle_revision_[writer] = op->revision;
    }
  }
  std::lock_guard<std::mutex> l(mu_);
  writers_done_++;
  acked_cv_.notify_all();
}

std::map<std::string, KeyVersion> CrashLoopTest::LiveKeys(int writer) {
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::string, KeyVersion> live;
  for (auto it = keys_.lower_bound(RangeStart(writer));
       it != keys_.end() && it->first < RangeEnd(writer); ++it) {
    if (it->second.has_value()) live.emplace(it->first, *it->second);
  }
  return live;
}

grpc::Status CrashLoopTest::TxnOp(v1::KV::Stub* stub, int writer, int cycle,
                                  std::mt19937_64* rng, const ValueFn& value) {
  auto pick = [&](int n) { return static_cast<int>((*rng)() % n); };
  const uint64_t id = ReserveId();
  const std::string guard = KeyOf(writer, pick(kPlainKeys));
  const std::map<std::string, KeyVersion> live = LiveKeys(writer);
  const auto g = live.find(guard);
  const KeyState before = g == live.end() ? KeyState() : KeyState(g->second);
  // The compare: one that holds or one that fails, as the model says.
  bool holds = pick(2) == 0;
  v1::TxnRequest req;
  v1::Compare* c = req.add_compare();
  c->set_key(guard);
  switch (pick(4)) {
    case 0:
      c->set_target(v1::Compare::VERSION);
      c->set_version((before ? before->version : 0) + (holds ? 0 : 1));
      break;
    case 1:
      c->set_target(v1::Compare::MOD);
      c->set_mod_revision((before ? before->mod_revision : 0) + (holds ? 0 : 1));
      break;
    case 2:
      c->set_target(v1::Compare::VALUE);
      if (!before) holds = false;  // A missing key's value never compares.
      c->set_value(before ? before->value + (holds ? "" : "x") : "x");
      break;
    default: {
      // Every key of the writer's range was modified before max + 1.
      int64_t max_mod = 0;
      for (const auto& [k, v] : live) max_mod = std::max(max_mod, v.mod_revision);
      if (max_mod == 0) holds = true;  // An empty range: a missing key.
      c->set_key(RangeStart(writer));
      c->set_range_end(RangeEnd(writer));
      c->set_target(v1::Compare::MOD);
      c->set_result(v1::Compare::LESS);
      c->set_mod_revision(holds ? max_mod + 1 : max_mod);
      break;
    }
  }
  // Each branch: read the guard (and, on failure, scan the writer's keys),
  // write a few keys, then read back the first key it wrote.
  auto branch = [&](google::protobuf::RepeatedPtrField<v1::RequestOp>* ops,
                    bool scan, Op::Mutations* writes) {
    ops->Add()->mutable_get()->set_key(guard);
    if (scan) {
      v1::ScanRequest* sc = ops->Add()->mutable_scan();
      sc->set_start_key(RangeStart(writer));
      sc->set_end_key(RangeEnd(writer));
    }
    std::set<int> used;
    const int n = 1 + pick(4);
    for (int i = 0; i < n; i++) {
      const int k = pick(kPlainKeys);
      if (!used.insert(k).second) continue;
      const std::string key = KeyOf(writer, k);
      if (pick(4) == 0) {
        writes->emplace_back(key, std::nullopt);
        ops->Add()->mutable_delete_()->set_key(key);
      } else {
        writes->emplace_back(key, value(id));
        v1::PutRequest* put = ops->Add()->mutable_put();
        put->set_key(key);
        put->set_value(*writes->back().second);
      }
    }
    ops->Add()->mutable_get()->set_key(writes->front().first);
  };
  Op::Mutations success_writes, failure_writes;
  branch(req.mutable_success(), false, &success_writes);
  branch(req.mutable_failure(), true, &failure_writes);
  const Op::Mutations& writes = holds ? success_writes : failure_writes;
  Op* op = NewOp(cycle, writer, id, Op::Kind::kTxn, writes);
  v1::TxnResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  grpc::Status s = stub->Txn(&ctx, req, &resp);
  Finish(op, s, resp.header().revision());
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> l(mu_);
    txns_[resp.succeeded() ? 1 : 0]++;
  }
  std::string problem;
  const int want_ops = static_cast<int>(writes.size()) + (holds ? 2 : 3);
  if (resp.succeeded() != holds) {
    problem = absl::StrFormat("succeeded=%d, but its compare %s",
                              resp.succeeded(), holds ? "holds" : "fails");
  } else if (resp.responses_size() != want_ops) {
    problem = absl::StrFormat("%d responses, want %d", resp.responses_size(),
                              want_ops);
  } else {
    const KeyState got = FromGet(resp.responses(0).get());
    if (got != before) {
      problem += absl::StrFormat(" read %s as %s, want %s;", guard, Show(got),
                                 Show(before));
    }
    if (!holds) {
      std::map<std::string, KeyVersion> scanned;
      for (const v1::KeyValue& kv : resp.responses(1).scan().pairs()) {
        scanned.emplace(kv.key(), *FromKv(kv));
      }
      if (scanned != live) {
        problem += absl::StrFormat(" scanned %d keys, the model has %d;",
                                   scanned.size(), live.size());
      }
    }
    // Read-your-writes: the first key written, as the Txn wrote it.
    const v1::GetResponse& own = resp.responses(want_ops - 1).get();
    const auto& [key, v] = writes.front();
    const bool ok = v.has_value()
                        ? own.found() && own.value() == *v &&
                              own.mod_revision() == resp.header().revision()
                        : !own.found();
    if (!ok) {
      problem += absl::StrFormat(" read back %s as %s after writing it;", key,
                                 Show(FromGet(own)));
    }
  }
  if (!problem.empty()) {
    std::lock_guard<std::mutex> l(mu_);
    run_problems_.push_back(op->Describe() + ":" + problem);
  }
  return s;
}

grpc::Status CrashLoopTest::CommitOp(v1::KV::Stub* stub, int writer,
                                     int cycle, std::mt19937_64* rng,
                                     const ValueFn& value) {
  auto pick = [&](int n) { return static_cast<int>((*rng)() % n); };
  // Read a key at the latest revision: the transaction's read revision.
  const std::string read_key = KeyOf(writer, pick(kPlainKeys));
  v1::GetResponse got;
  {
    v1::GetRequest req;
    req.set_key(read_key);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->Get(&ctx, req, &got);
    if (!s.ok()) return s;
  }
  const int64_t read = got.header().revision();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (FromGet(got) != keys_[read_key]) {
      run_problems_.push_back(absl::StrFormat(
          "writer %d: Get(%s) for a Commit read %s, want %s", writer, read_key,
          Show(FromGet(got)), Show(keys_[read_key])));
    }
  }
  // One time in three the writer changes what it read before committing:
  // the Commit must then be ABORTED and write nothing.
  const bool conflict = pick(3) == 0;
  if (conflict) {
    const uint64_t put_id = ReserveId();
    const std::string v = value(put_id);
    Op* put = NewOp(cycle, writer, put_id, Op::Kind::kPut, {{read_key, v}});
    v1::PutRequest req;
    req.set_key(read_key);
    req.set_value(v);
    v1::PutResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->Put(&ctx, req, &resp);
    Finish(put, s, resp.header().revision());
    if (!s.ok()) return s;
    std::lock_guard<std::mutex> l(mu_);
    if (put->applied) cycle_revision_[writer] = put->revision;
  }
  const uint64_t id = ReserveId();
  v1::CommitRequest req;
  req.set_read_revision(read);
  req.add_read_keys(read_key);
  req.add_read_keys(KeyOf(writer, pick(kPlainKeys)));
  if (pick(2) == 0) {
    v1::KeyRange* r = req.add_read_ranges();
    r->set_start_key(RangeStart(writer));
    r->set_end_key(RangeEnd(writer));
  }
  Op::Mutations effects;
  std::set<int> used;
  const int n = 1 + pick(5);
  for (int i = 0; i < n; i++) {
    const int k = pick(kPlainKeys);
    if (!used.insert(k).second) continue;
    const std::string key = KeyOf(writer, k);
    v1::Mutation* m = req.add_mutations();
    if (pick(4) == 0) {
      effects.emplace_back(key, std::nullopt);
      m->mutable_delete_()->set_key(key);
    } else {
      effects.emplace_back(key, value(id));
      m->mutable_put()->set_key(key);
      m->mutable_put()->set_value(*effects.back().second);
    }
  }
  Op* op = NewOp(cycle, writer, id, Op::Kind::kCommit, std::move(effects),
                 v1::BYTES, conflict);
  v1::CommitResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  grpc::Status s = stub->Commit(&ctx, req, &resp);
  if (!conflict) {
    Finish(op, s, resp.header().revision());
    return s;
  }
  std::lock_guard<std::mutex> l(mu_);
  if (s.error_code() == grpc::StatusCode::ABORTED) {
    op->result = Op::Result::kAcked;
    commits_aborted_++;
    acked_ops_++;
    acked_cv_.notify_all();
    return grpc::Status::OK;
  }
  if (s.ok()) {
    op->result = Op::Result::kAcked;
    run_problems_.push_back(op->Describe() +
                            ": committed, though a key it read changed after "
                            "its read revision");
    return s;
  }
  FailLocked(op, s);
  return s;
}

TEST_F(CrashLoopTest, AcknowledgedWritesAndRevisionsSurviveKill9) {
  std::mt19937_64 rng(seed_);
  const std::string verify = BinaryPath("storage/tools/strata-verify");
  int kills_during_startup = 0;
  const absl::Time started = absl::Now();
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
    CheckNoOrphanedBackupFiles(data_dir_);
    std::unique_ptr<v1::KV::Stub> checker = Connect(**server);
    CheckRevisionsAndWatch(checker.get(), cycle);
    if (HasFatalFailure()) return;
    Verify(checker.get(), cycle);
    if (HasFatalFailure()) return;
    CheckPastReads(checker.get(), cycle, &rng);
    if (HasFatalFailure()) return;
    // A backup stream held open across the kill (see BackupInFlight).
    BackupInFlight backup(**server, cycle % 2 == 0 ? 0 : current_revision_);

    // A watcher over every key from the verified revision on, then
    // writers until a random number of further acknowledgements; then the
    // server is killed under them.
    std::optional<size_t> read_limit;
    if (rng() % 2 == 0) read_limit = rng() % 40;
    Watcher watcher(**server, cycle, current_revision_ + 1, read_limit);
    const uint64_t target = rng() % 400;
    uint64_t start_acked;
    {
      std::lock_guard<std::mutex> l(mu_);
      start_acked = acked_ops_;
      writers_done_ = 0;
      cycle_revision_.clear();
    }
    stop_ = false;
    std::vector<std::unique_ptr<v1::KV::Stub>> stubs;
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; w++) {
      stubs.push_back(Connect(**server));
      v1::KV::Stub* stub = stubs.back().get();
      const uint64_t writer_seed = rng();
      writers.emplace_back([this, stub, w, cycle, writer_seed] {
        Writer(stub, w, cycle, writer_seed);
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
    last_watch_ = watcher.Join();
    if (backup.Join()) backups_killed_++;

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
  CheckNoOrphanedBackupFiles(data_dir_);
  std::printf("crash loop: %d backups were streaming at a kill\n",
              backups_killed_);
  std::unique_ptr<v1::KV::Stub> checker = Connect(**server);
  CheckRevisionsAndWatch(checker.get(), cycles_);
  if (HasFatalFailure()) return;
  Verify(checker.get(), cycles_);
  if (HasFatalFailure()) return;
  CheckPastReads(checker.get(), cycles_, &rng);
  int tables = 0;
  for (const auto& e : std::filesystem::directory_iterator(data_dir_)) {
    tables += e.path().extension() == ".sst";
  }
  std::lock_guard<std::mutex> l(mu_);
  std::printf(
      "crash loop: %d cycles (%d kills during startup) in %.1f s, %zu "
      "operations, %llu acknowledged; revisions 1..%lld, %llu watched before "
      "a kill and %llu on resume, %llu in-doubt writes found applied; %llu "
      "reads at past revisions (%llu compacted); %llu Txns (%llu took the "
      "success branch), %llu Commits aborted as they must; %d tables at the "
      "end\n",
      cycles_, kills_during_startup,
      absl::ToDoubleSeconds(absl::Now() - started), log_.size(),
      static_cast<unsigned long long>(acked_ops_),
      static_cast<long long>(current_revision_),
      static_cast<unsigned long long>(watched_revisions_),
      static_cast<unsigned long long>(resumed_revisions_),
      static_cast<unsigned long long>(in_doubt_applied_),
      static_cast<unsigned long long>(past_reads_),
      static_cast<unsigned long long>(past_reads_compacted_),
      static_cast<unsigned long long>(txns_[0] + txns_[1]),
      static_cast<unsigned long long>(txns_[1]),
      static_cast<unsigned long long>(commits_aborted_), tables);
}

}  // namespace
}  // namespace strata
