// Watch against the real strata-server binary: a watcher that resumes, after
// the server was SIGKILLed and restarted on the same data directory, from
// the last revision it received + 1 gets exactly the changes it missed.

#include <signal.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

constexpr absl::Duration kWait = absl::Seconds(20);

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d = kWait) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(d));
}

// A stub on a channel of its own. The client takes in at most ~64 KiB it
// has not read (no window growth), so a watcher that stops reading soon
// stops the server's sending too.
std::unique_ptr<v1::KV::Stub> Connect(const ServerProcess& server) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  return v1::KV::NewStub(grpc::CreateCustomChannel(
      server.address(), grpc::InsecureChannelCredentials(), args));
}

// "rev PUT key=value v<version> c<create>" / "rev DELETE key".
std::string Describe(const v1::Event& e) {
  if (e.type() == v1::Event::DELETE) {
    return absl::StrFormat("%d DELETE %s", e.kv().mod_revision(), e.kv().key());
  }
  return absl::StrFormat("%d PUT %s=%s v%d c%d", e.kv().mod_revision(),
                         e.kv().key(), e.kv().value(), e.kv().version(),
                         e.kv().create_revision());
}

// The writes the test makes, one at a time: the events a watcher of every
// key must see, revision by revision.
class Writes {
 public:
  struct Write {
    std::string key;
    std::optional<std::string> value;  // nullopt: delete.
  };

  // The next write of a fixed sequence: puts of 1 KiB values over 10 keys,
  // every 7th write a delete of a key that exists.
  Write Next() {
    const int i = static_cast<int>(events_.size());
    const std::string key = absl::StrFormat("key/%d", i % 10);
    if (i % 7 == 6 && state_.count(key)) return {key, std::nullopt};
    std::string v = absl::StrFormat("v%d-", i);
    v.resize(1024, static_cast<char>('a' + i % 26));
    return {key, v};
  }
  // Records `w` as committed at the next revision, which it returns.
  int64_t Commit(const Write& w) {
    const int64_t rev = static_cast<int64_t>(events_.size()) + 1;
    if (!w.value) {
      state_.erase(w.key);
      events_.push_back(absl::StrFormat("%d DELETE %s", rev, w.key));
      return rev;
    }
    auto [it, created] = state_.try_emplace(w.key, Meta{rev, 0});
    it->second.version++;
    events_.push_back(absl::StrFormat("%d PUT %s=%s v%d c%d", rev, w.key,
                                      *w.value, it->second.version,
                                      it->second.create));
    return rev;
  }
  int64_t revision() const { return static_cast<int64_t>(events_.size()); }
  // The events of revisions (from, to].
  std::vector<std::string> Events(int64_t from, int64_t to) const {
    return {events_.begin() + from, events_.begin() + to};
  }

 private:
  struct Meta {
    int64_t create;
    int64_t version;
  };
  std::map<std::string, Meta> state_;
  std::vector<std::string> events_;  // Index i: revision i + 1.
};

// Sends a write; returns its status and the revision of its header.
grpc::Status Send(v1::KV::Stub* stub, const Writes::Write& w, int64_t* rev) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  if (w.value) {
    v1::PutRequest req;
    req.set_key(w.key);
    req.set_value(*w.value);
    v1::PutResponse resp;
    grpc::Status s = stub->Put(&ctx, req, &resp);
    *rev = resp.header().revision();
    return s;
  }
  v1::DeleteRequest req;
  req.set_key(w.key);
  v1::DeleteResponse resp;
  grpc::Status s = stub->Delete(&ctx, req, &resp);
  *rev = resp.header().revision();
  return s;
}

class WatchProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(BinaryPath("server/strata-server").empty())
        << "STRATA_BINARY_DIR is not set (run through ctest)";
    data_dir_ = dir_.path() + "/data";
  }

  TempDir dir_;
  std::string data_dir_;
};

TEST_F(WatchProcessTest, WatchResumesAfterSigkillWithExactlyTheMissingEvents) {
  auto server = ServerProcess::Start(data_dir_);
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<v1::KV::Stub> stub = Connect(**server);

  std::mutex mu;
  std::condition_variable cv;
  Writes writes;                          // Guarded by mu.
  std::optional<Writes::Write> in_doubt;  // Guarded by mu.
  std::vector<std::string> write_errors;  // Guarded by mu.
  bool writer_done = false;               // Guarded by mu.

  // The watcher: every key from revision 1. It reads 100 events, then
  // stops reading (a consumer that falls behind) until released.
  constexpr size_t kWatcherReads = 100;
  std::unique_ptr<v1::KV::Stub> watch_stub = Connect(**server);
  grpc::ClientContext watch_ctx;
  SetDeadline(&watch_ctx, absl::Seconds(60));
  std::vector<v1::WatchResponse> watched;  // Guarded by mu.
  size_t watched_events = 0;               // Guarded by mu.
  bool released = false;                   // Guarded by mu.
  grpc::Status watch_status;
  std::thread watcher([&] {
    v1::WatchRequest req;
    req.set_range_end(std::string(1, '\0'));
    req.set_start_revision(1);
    auto reader = watch_stub->Watch(&watch_ctx, req);
    v1::WatchResponse m;
    while (true) {
      {
        std::unique_lock<std::mutex> l(mu);
        cv.wait(l, [&] { return watched_events < kWatcherReads || released; });
      }
      if (!reader->Read(&m)) break;
      std::lock_guard<std::mutex> l(mu);
      watched.push_back(m);
      watched_events += m.events_size();
      cv.notify_all();
    }
    watch_status = reader->Finish();
  });

  // The writer: the fixed sequence, one write at a time, until the server
  // dies (bounded by count and time).
  std::thread writer([&] {
    const absl::Time end = absl::Now() + absl::Seconds(60);
    for (int i = 0; i < 100000 && absl::Now() < end; i++) {
      Writes::Write w;
      {
        std::lock_guard<std::mutex> l(mu);
        w = writes.Next();
        in_doubt = w;
      }
      int64_t rev = 0;
      grpc::Status s = Send(stub.get(), w, &rev);
      std::lock_guard<std::mutex> l(mu);
      if (!s.ok()) {
        if (s.error_code() != grpc::StatusCode::UNAVAILABLE) {
          write_errors.push_back(s.error_message());
        }
        break;
      }
      in_doubt.reset();
      const int64_t want = writes.Commit(w);
      if (rev != want) {
        write_errors.push_back(
            absl::StrFormat("write %d acknowledged at revision %d", want, rev));
      }
      cv.notify_all();
    }
    std::lock_guard<std::mutex> l(mu);
    writer_done = true;
    cv.notify_all();
  });

  // Kills the server and lets both threads end (also on a failed ASSERT).
  bool stopped = false;
  auto stop = [&] {
    if (stopped) return;
    stopped = true;
    (*server)->Signal(SIGKILL);
    writer.join();
    {
      std::lock_guard<std::mutex> l(mu);
      released = true;
      cv.notify_all();
    }
    watcher.join();
  };
  absl::Cleanup stop_on_failure = stop;

  // Kill the server in the middle of the writes, once the watcher has read
  // its 100 events and 400 writes are acknowledged (so hundreds of them
  // were never sent to the watcher).
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] {
      return writer_done ||
             (watched_events >= kWatcherReads && writes.revision() >= 400);
    }));
    ASSERT_FALSE(writer_done) << absl::StrJoin(write_errors, "; ");
  }
  stop();
  auto exit = (*server)->Wait(absl::Seconds(10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->term_signal, SIGKILL);
  EXPECT_EQ(watch_status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << watch_status.error_message();

  std::lock_guard<std::mutex> l(mu);
  ASSERT_TRUE(write_errors.empty()) << absl::StrJoin(write_errors, "\n");
  // What the watcher got: the first revisions, complete up to the last
  // header's revision.
  std::vector<std::string> first;
  int64_t last = 0;
  for (const v1::WatchResponse& m : watched) {
    for (const v1::Event& e : m.events()) first.push_back(Describe(e));
    last = std::max(last, m.header().revision());
  }
  const int64_t acked = writes.revision();
  ASSERT_GE(last, static_cast<int64_t>(kWatcherReads));
  ASSERT_LT(last, acked) << "the watcher was not behind";
  ASSERT_EQ(first, writes.Events(0, last));

  // Restart on the same directory. The write in flight at the kill is in
  // doubt: it is there (at the next revision) or not at all.
  server = ServerProcess::Start(data_dir_);
  ASSERT_TRUE(server.ok()) << server.status();
  stub = Connect(**server);
  ASSERT_TRUE(in_doubt.has_value());
  {
    v1::GetRequest req;
    req.set_key(in_doubt->key);
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    ASSERT_TRUE(stub->Get(&ctx, req, &resp).ok());
    const int64_t current = resp.header().revision();
    ASSERT_TRUE(current == acked || current == acked + 1)
        << "restarted at revision " << current << " after " << acked
        << " acknowledged writes and one in doubt";
    if (current == acked + 1) {
      // Applied: the key shows it, at that revision.
      EXPECT_EQ(resp.found(), in_doubt->value.has_value());
      if (resp.found()) {
        EXPECT_EQ(resp.value(), *in_doubt->value);
        EXPECT_EQ(resp.mod_revision(), current);
      }
      writes.Commit(*in_doubt);
    }
  }
  // More writes after the restart.
  for (int i = 0; i < 50; i++) {
    const Writes::Write w = writes.Next();
    int64_t rev = 0;
    grpc::Status s = Send(stub.get(), w, &rev);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(rev, writes.Commit(w));
  }

  // Re-watch from the last revision received + 1: exactly the rest, in
  // order, then nothing more.
  const int64_t end = writes.revision();
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  v1::WatchRequest req;
  req.set_range_end(std::string(1, '\0'));
  req.set_start_revision(last + 1);
  auto reader = stub->Watch(&ctx, req);
  std::vector<std::string> rest;
  v1::WatchResponse m;
  int64_t reached = last;
  while (reached < end && reader->Read(&m)) {
    for (const v1::Event& e : m.events()) rest.push_back(Describe(e));
    reached = std::max(reached, m.header().revision());
  }
  ctx.TryCancel();
  reader->Finish();
  ASSERT_EQ(reached, end);
  EXPECT_EQ(rest, writes.Events(last, end));
  std::printf(
      "watcher got revisions 1..%lld before the kill, %lld "
      "acknowledged (and one in doubt: %s); resumed from %lld: %zu "
      "events up to %lld\n",
      static_cast<long long>(last), static_cast<long long>(acked),
      end - 50 > acked ? "applied" : "not applied",
      static_cast<long long>(last + 1), rest.size(),
      static_cast<long long>(end));
}

}  // namespace
}  // namespace strata::testing
