// The expiry crash loop: the real strata-server under writers that grant,
// keep alive and revoke leases, attach keys to them and put keys with
// short and long TTLs, killed with SIGKILL at random moments, restarted and
// checked (docs/expiry.md, "Durability"):
//   - a lease whose revoke was acknowledged stays revoked (NOT_FOUND), and
//     none of its keys comes back;
//   - a live lease and every key acknowledged as attached to it are there,
//     with TimeToLive listing the keys;
//   - a revoke in doubt (in flight at the kill) happened all or nothing;
//   - a key whose TTL has passed (its put acknowledged more than TTL ago)
//     is never served again; a key with a long TTL is there;
//   - after the last restart, every short lease (never kept alive) expires
//     within its TTL of the restart, its keys with it.
// Each writer owns its keys and leases (ids it picks), so the model is
// exact apart from the one operation per writer in flight at the kill.
//
// STRATA_EXPIRY_CRASH_CYCLES=<n> (default 6), STRATA_CRASH_SEED=<n> to
// replay (the seed is printed).

#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata {
namespace {

using ::strata::testing::ServerProcess;

constexpr int kWriters = 2;
constexpr int64_t kLongLeaseSeconds = 3600;
constexpr int64_t kShortLeaseSeconds = 2;
constexpr int64_t kLongTtlMs = 3600 * 1000;

void SetDeadline(grpc::ClientContext* ctx, absl::Duration d = absl::Seconds(10)) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(d));
}

std::string ShowStatus(const grpc::Status& s) {
  return absl::StrFormat("%d: %s", static_cast<int>(s.error_code()),
                         s.error_message());
}

// What the writers did, as far as the acknowledgements tell.
struct Lease {
  int64_t ttl_seconds = 0;
  bool granted = false;     // Acknowledged.
  bool grant_in_doubt = false;
  bool revoked = false;     // Revoke acknowledged.
  bool revoke_in_doubt = false;
  absl::Time granted_at;    // When the grant was acknowledged.
  std::map<std::string, std::string> keys;  // Acknowledged attachments.
};
struct TtlKey {
  std::string value;
  int64_t ttl_ms = 0;
  absl::Time acked_at;
  bool in_doubt = false;
};

class ExpiryCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* seed = std::getenv("STRATA_CRASH_SEED");
    seed_ = seed != nullptr ? std::strtoull(seed, nullptr, 10)
                            : std::random_device{}();
    const char* cycles = std::getenv("STRATA_EXPIRY_CRASH_CYCLES");
    cycles_ = cycles != nullptr ? std::atoi(cycles) : 6;
    std::printf("expiry crash loop: seed %llu, %d cycles\n",
                static_cast<unsigned long long>(seed_), cycles_);
    data_dir_ = dir_.path() + "/data";
  }

  std::vector<std::string> Flags(int cycle) const {
    return {"--memtable_bytes=262144",
            "--cq_threads=2",
            "--io_threads=2",
            "--expiry_interval=50ms",
            cycle % 2 == 0 ? "--wal_sync=fsync" : "--wal_sync=none"};
  }

  static std::unique_ptr<v1::KV::Stub> Connect(const ServerProcess& server) {
    return v1::KV::NewStub(grpc::CreateChannel(
        server.address(), grpc::InsecureChannelCredentials()));
  }

  // "<missing>", the value, or "error: ...".
  static std::string Get(v1::KV::Stub* stub, const std::string& key) {
    v1::GetRequest req;
    req.set_key(key);
    v1::GetResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->Get(&ctx, req, &resp);
    if (!s.ok()) return "error: " + ShowStatus(s);
    return resp.found() ? resp.value() : "<missing>";
  }
  static grpc::Status TimeToLive(v1::KV::Stub* stub, int64_t id,
                                 v1::LeaseTimeToLiveResponse* resp) {
    v1::LeaseTimeToLiveRequest req;
    req.set_id(id);
    req.set_keys(true);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    return stub->LeaseTimeToLive(&ctx, req, resp);
  }

  void Writer(v1::KV::Stub* stub, int writer, int cycle, uint64_t seed);
  void Verify(v1::KV::Stub* stub, absl::Time restarted);
  // After the last restart: every short lease expires within its TTL.
  void CheckShortLeasesExpire(v1::KV::Stub* stub, absl::Time restarted);

  uint64_t seed_ = 0;
  int cycles_ = 0;
  strata::testing::TempDir dir_;
  std::string data_dir_;

  std::mutex mu_;
  std::condition_variable acked_cv_;
  std::map<int64_t, Lease> leases_;        // By id.
  std::map<std::string, TtlKey> ttl_keys_;  // By key.
  std::map<std::string, std::string> in_doubt_keys_;  // Put in flight.
  int64_t acked_ = 0;
  int writers_done_ = 0;
  std::atomic<bool> stop_{false};
  uint64_t next_ = 0;  // Unique key and lease numbers.
};

void ExpiryCrashTest::Writer(v1::KV::Stub* stub, int writer, int cycle,
                             uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) {
    return static_cast<int>(std::uniform_int_distribution<int>(0, n - 1)(rng));
  };
  // One of this writer's leases that may take keys: a long one not
  // revoked, or a short one granted less than a second ago (not expired).
  auto my_lease = [&](bool short_lived) -> int64_t {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<int64_t> ids;
    for (const auto& [id, lease] : leases_) {
      if (id % kWriters != writer || !lease.granted || lease.revoked ||
          lease.revoke_in_doubt) {
        continue;
      }
      const bool is_short = lease.ttl_seconds == kShortLeaseSeconds;
      if (is_short != short_lived) continue;
      if (is_short && absl::Now() - lease.granted_at > absl::Seconds(1)) continue;
      ids.push_back(id);
    }
    return ids.empty() ? 0 : ids[rng() % ids.size()];
  };
  while (!stop_.load()) {
    const int what = pick(100);
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s;
    uint64_t n;
    {
      std::lock_guard<std::mutex> l(mu_);
      n = ++next_;
    }
    if (what < 15) {  // Grant a lease (a third of them short).
      const int64_t id = static_cast<int64_t>(n * kWriters + writer);
      const int64_t ttl = pick(3) == 0 ? kShortLeaseSeconds : kLongLeaseSeconds;
      {
        std::lock_guard<std::mutex> l(mu_);
        leases_[id].ttl_seconds = ttl;
        leases_[id].grant_in_doubt = true;
      }
      v1::LeaseGrantRequest req;
      req.set_id(id);
      req.set_ttl_seconds(ttl);
      v1::LeaseGrantResponse resp;
      s = stub->LeaseGrant(&ctx, req, &resp);
      std::lock_guard<std::mutex> l(mu_);
      if (s.ok()) {
        leases_[id].granted = true;
        leases_[id].grant_in_doubt = false;
        leases_[id].granted_at = absl::Now();
      }
    } else if (what < 55) {  // Attach a new key to a lease.
      const int64_t id = my_lease(pick(3) == 0);
      if (id == 0) continue;
      const std::string key = absl::StrFormat("l%d/%06d", writer, n);
      const std::string value = absl::StrFormat("c%d:%d", cycle, n);
      {
        std::lock_guard<std::mutex> l(mu_);
        in_doubt_keys_[key] = value;
      }
      v1::PutRequest req;
      req.set_key(key);
      req.set_value(value);
      req.set_lease(id);
      v1::PutResponse resp;
      s = stub->Put(&ctx, req, &resp);
      std::lock_guard<std::mutex> l(mu_);
      if (s.ok()) {
        in_doubt_keys_.erase(key);
        leases_[id].keys[key] = value;
      } else if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
        // A short lease that expired meanwhile: nothing was written.
        in_doubt_keys_.erase(key);
        s = grpc::Status::OK;
      }
    } else if (what < 80) {  // A key with a short or a long TTL.
      const std::string key = absl::StrFormat("t%d/%06d", writer, n);
      const std::string value = absl::StrFormat("c%d:%d", cycle, n);
      const int64_t ttl = pick(2) == 0 ? 200 + pick(1500) : kLongTtlMs;
      {
        std::lock_guard<std::mutex> l(mu_);
        ttl_keys_[key] = {value, ttl, absl::InfiniteFuture(), true};
      }
      v1::PutRequest req;
      req.set_key(key);
      req.set_value(value);
      req.set_ttl_ms(ttl);
      v1::PutResponse resp;
      s = stub->Put(&ctx, req, &resp);
      std::lock_guard<std::mutex> l(mu_);
      if (s.ok()) {
        ttl_keys_[key].acked_at = absl::Now();
        ttl_keys_[key].in_doubt = false;
      }
    } else if (what < 90) {  // Keep a long lease alive.
      const int64_t id = my_lease(false);
      if (id == 0) continue;
      v1::LeaseKeepAliveRequest req;
      req.set_id(id);
      v1::LeaseKeepAliveResponse resp;
      s = stub->LeaseKeepAlive(&ctx, req, &resp);
    } else {  // Revoke a long lease.
      const int64_t id = my_lease(false);
      if (id == 0) continue;
      {
        std::lock_guard<std::mutex> l(mu_);
        leases_[id].revoke_in_doubt = true;
      }
      v1::LeaseRevokeRequest req;
      req.set_id(id);
      v1::LeaseRevokeResponse resp;
      s = stub->LeaseRevoke(&ctx, req, &resp);
      std::lock_guard<std::mutex> l(mu_);
      if (s.ok()) {
        leases_[id].revoked = true;
        leases_[id].revoke_in_doubt = false;
      }
    }
    if (!s.ok()) break;  // The server is gone: this op stays in doubt.
    std::lock_guard<std::mutex> l(mu_);
    acked_++;
    acked_cv_.notify_all();
  }
  std::lock_guard<std::mutex> l(mu_);
  writers_done_++;
  acked_cv_.notify_all();
}

void ExpiryCrashTest::Verify(v1::KV::Stub* stub, absl::Time restarted) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [id, lease] : leases_) {
    SCOPED_TRACE(absl::StrFormat("lease %d (ttl %d s)", id, lease.ttl_seconds));
    v1::LeaseTimeToLiveResponse ttl;
    const grpc::Status s = TimeToLive(stub, id, &ttl);
    ASSERT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::NOT_FOUND)
        << ShowStatus(s);
    if (lease.grant_in_doubt) {  // Applied or not: settle it now.
      lease.grant_in_doubt = false;
      lease.granted = s.ok();
      lease.granted_at = restarted;
    }
    if (lease.revoke_in_doubt) {  // All or nothing.
      lease.revoke_in_doubt = false;
      lease.revoked = !s.ok();
    }
    if (!lease.granted) {
      EXPECT_FALSE(s.ok()) << "a lease never granted exists";
      continue;
    }
    if (lease.revoked) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND)
          << "a revoked lease came back";
      for (const auto& [k, v] : lease.keys) {
        EXPECT_EQ(Get(stub, k), "<missing>") << k << " of a revoked lease";
      }
      continue;
    }
    if (lease.ttl_seconds == kShortLeaseSeconds) continue;  // See the end.
    ASSERT_TRUE(s.ok()) << "a live lease is gone: " << ShowStatus(s);
    EXPECT_EQ(ttl.granted_ttl(), kLongLeaseSeconds);
    std::set<std::string> listed(ttl.keys().begin(), ttl.keys().end());
    for (const auto& [k, v] : lease.keys) {
      EXPECT_EQ(Get(stub, k), v) << k;
      EXPECT_TRUE(listed.count(k)) << k << " not listed by TimeToLive";
    }
  }
  // A key put in doubt is there with its value or not at all.
  for (auto it = in_doubt_keys_.begin(); it != in_doubt_keys_.end();) {
    const std::string got = Get(stub, it->first);
    EXPECT_TRUE(got == "<missing>" || got == it->second) << it->first << ": " << got;
    it = in_doubt_keys_.erase(it);
  }
  const absl::Time now = absl::Now();
  for (auto it = ttl_keys_.begin(); it != ttl_keys_.end();) {
    const std::string& k = it->first;
    TtlKey& t = it->second;
    const std::string got = Get(stub, k);
    if (t.in_doubt) {
      EXPECT_TRUE(got == "<missing>" || got == t.value) << k << ": " << got;
      if (got == "<missing>") {  // The put did not happen: forget it.
        it = ttl_keys_.erase(it);
        continue;
      }
      t.in_doubt = false;
      t.acked_at = restarted;  // It was written, before this.
      ++it;
      continue;
    }
    if (t.acked_at + absl::Milliseconds(t.ttl_ms) < now) {
      EXPECT_EQ(got, "<missing>") << k << ": served after its TTL ("
                                  << t.ttl_ms << " ms)";
    } else if (t.ttl_ms == kLongTtlMs) {
      EXPECT_EQ(got, t.value) << k;
    }
    ++it;
  }
}

void ExpiryCrashTest::CheckShortLeasesExpire(v1::KV::Stub* stub,
                                             absl::Time restarted) {
  // Every short lease's deadline is at most its TTL after the later of its
  // grant and the restart (a restart gives a live lease its full TTL).
  const absl::Time until = restarted + absl::Seconds(kShortLeaseSeconds) +
                           absl::Milliseconds(200);
  while (absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(50));  // Waiting for wall time to pass.
  }
  std::lock_guard<std::mutex> l(mu_);
  int checked = 0;
  for (const auto& [id, lease] : leases_) {
    if (lease.ttl_seconds != kShortLeaseSeconds || !lease.granted) continue;
    checked++;
    v1::LeaseTimeToLiveResponse ttl;
    EXPECT_EQ(TimeToLive(stub, id, &ttl).error_code(),
              grpc::StatusCode::NOT_FOUND)
        << "short lease " << id << " outlived its TTL";
    for (const auto& [k, v] : lease.keys) {
      EXPECT_EQ(Get(stub, k), "<missing>") << k << " outlived its lease";
    }
  }
  std::printf("expiry crash loop: %d short leases expired on time\n", checked);
}

TEST_F(ExpiryCrashTest, LeasesAndTtlsSurviveKill9) {
  std::mt19937_64 rng(seed_);
  for (int cycle = 0; cycle <= cycles_; cycle++) {
    SCOPED_TRACE(absl::StrFormat("cycle %d, seed %d", cycle, seed_));
    auto server = ServerProcess::Start(data_dir_, Flags(cycle));
    ASSERT_TRUE(server.ok()) << server.status();
    const absl::Time restarted = absl::Now();
    std::unique_ptr<v1::KV::Stub> checker = Connect(**server);
    Verify(checker.get(), restarted);
    if (HasFatalFailure()) return;
    if (cycle == cycles_) {
      CheckShortLeasesExpire(checker.get(), restarted);
      (*server)->Signal(SIGTERM);
      ASSERT_TRUE((*server)->Wait(absl::Seconds(20)).ok());
      break;
    }
    const int64_t target = 20 + static_cast<int64_t>(rng() % 200);
    int64_t start;
    {
      std::lock_guard<std::mutex> l(mu_);
      start = acked_;
      writers_done_ = 0;
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
        return acked_ - start >= target || writers_done_ == kWriters;
      });
    }
    (*server)->Signal(SIGKILL);
    auto exit = (*server)->Wait(absl::Seconds(10));
    ASSERT_TRUE(exit.ok()) << exit.status();
    stop_ = true;
    for (auto& t : writers) t.join();
  }
  std::lock_guard<std::mutex> l(mu_);
  int granted = 0, revoked = 0, attached = 0;
  for (const auto& [id, lease] : leases_) {
    granted += lease.granted;
    revoked += lease.revoked;
    attached += static_cast<int>(lease.keys.size());
  }
  std::printf("expiry crash loop: %lld acknowledged ops, %d leases granted, "
              "%d revoked, %d keys attached, %zu TTL keys\n",
              static_cast<long long>(acked_), granted, revoked, attached,
              ttl_keys_.size());
  EXPECT_GT(granted, 0);
  EXPECT_GT(attached, 0);
}

}  // namespace
}  // namespace strata
