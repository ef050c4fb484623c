// The namespace crash loop: the real strata-server under writers that
// create and delete namespaces and write into them (Put, multi-key Write,
// loads of a few hundred KiB so deletes have data to reclaim), killed with
// SIGKILL at random moments — every other cycle right after a
// DeleteNamespace of a loaded namespace was acknowledged, while the
// server's reclaim compaction of its range runs — restarted and checked
// (docs/namespaces.md):
//   - every acknowledged CreateNamespace, DeleteNamespace and write
//     survives: ListNamespaces lists exactly the namespaces the model
//     holds, and a Scan of each holds exactly the model's keys and values;
//   - an operation in flight at the kill happened all or nothing: a
//     namespace being deleted is either fully there (every key) or gone,
//     one being created is either there and empty or absent, a Write's
//     keys are all old or all new;
//   - a namespace deleted and created again under the same name never
//     shows the old keys.
// Each writer owns its namespace names ("w<writer>/n<i>"), so the model is
// exact apart from the one operation per writer in flight at the kill.
//
// STRATA_NS_CRASH_CYCLES=<n> (default 6), STRATA_CRASH_SEED=<n> to replay
// (the seed is printed).

#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/process_util.h"
#include "tests/support/test_util.h"

namespace strata {
namespace {

using ::strata::testing::ServerProcess;

constexpr int kWriters = 3;
constexpr int kNamesPerWriter = 4;
constexpr int kLoadKeys = 200;
constexpr size_t kLoadValueBytes = 2048;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

void SetDeadline(grpc::ClientContext* ctx,
                 absl::Duration d = absl::Seconds(20)) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(d));
}

std::string NameOf(int writer, int i) {
  return absl::StrFormat("w%d/n%d", writer, i);
}

// A namespace's keys and values; nullopt: the namespace does not exist.
using Contents = std::map<std::string, std::string>;
using Namespaces = std::map<std::string, std::optional<Contents>>;

std::string Show(const std::optional<Contents>& c) {
  if (!c) return "<no namespace>";
  std::string s = absl::StrFormat("%d keys:", c->size());
  int shown = 0;
  for (const auto& [k, v] : *c) {
    if (++shown > 6) {
      s += " ...";
      break;
    }
    absl::StrAppendFormat(&s, " %s=%s[%d]", k, v.substr(0, 16), v.size());
  }
  return s;
}

// One writer's operation in flight: the state of its namespace before and
// (if it applies) after.
struct InDoubt {
  std::string name;
  std::string what;
  std::optional<Contents> before, after;
};

// One writer: a sequence of operations over its own namespaces, stopping
// at the first failure (the kill).
class Writer {
 public:
  Writer(int id, Namespaces* model, uint64_t seed)
      : id_(id), model_(model), rng_(seed) {}

  // Runs until an operation fails (the server died) or `stop` is set;
  // calls on_ack after each acknowledged operation (with true for a
  // DeleteNamespace of a loaded namespace).
  void Run(v1::KV::Stub* stub, int cycle, const std::atomic<bool>* stop,
           const std::function<void(bool loaded_delete)>& on_ack) {
    for (uint64_t op = 0; !stop->load(); ++op) {
      const std::string name = NameOf(id_, rng_() % kNamesPerWriter);
      std::optional<Contents>& state = (*model_)[name];
      InDoubt d{name, "", state, state};
      grpc::Status s;
      bool loaded_delete = false;
      if (!state) {
        d.what = "CreateNamespace";
        d.after = Contents();
        v1::CreateNamespaceRequest req;
        req.set_name(name);
        v1::CreateNamespaceResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        s = stub->CreateNamespace(&ctx, req, &resp);
      } else if (rng_() % 6 == 0) {
        d.what = "DeleteNamespace";
        d.after = std::nullopt;
        loaded_delete = state->size() >= kLoadKeys;
        v1::DeleteNamespaceRequest req;
        req.set_name(name);
        v1::DeleteNamespaceResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        s = stub->DeleteNamespace(&ctx, req, &resp);
      } else {
        // A Write: a load of big values, or a few puts and deletes.
        const bool load = rng_() % 5 == 0;
        d.what = load ? "Write(load)" : "Write";
        v1::WriteRequest req;
        req.set_namespace_(name);
        const int n = load ? kLoadKeys : 1 + static_cast<int>(rng_() % 4);
        for (int i = 0; i < n; ++i) {
          const std::string key =
              load ? absl::StrFormat("load%04d", i)
                   : absl::StrFormat("k%02d", static_cast<int>(rng_() % 20));
          if (!load && rng_() % 4 == 0) {
            req.add_mutations()->mutable_delete_()->set_key(key);
            d.after->erase(key);
            continue;
          }
          std::string value = absl::StrFormat("c%d-w%d-op%d-", cycle, id_, op);
          value.resize(load ? kLoadValueBytes : value.size() + rng_() % 64,
                       static_cast<char>('a' + rng_() % 26));
          auto* p = req.add_mutations()->mutable_put();
          p->set_key(key);
          p->set_value(value);
          (*d.after)[key] = value;
        }
        v1::WriteResponse resp;
        grpc::ClientContext ctx;
        SetDeadline(&ctx);
        s = stub->Write(&ctx, req, &resp);
      }
      if (!s.ok()) {
        d.what += absl::StrFormat(" (%d %s)", static_cast<int>(s.error_code()),
                                  s.error_message());
        in_doubt_ = std::move(d);
        return;
      }
      state = d.after;
      on_ack(loaded_delete);
    }
  }

  // The operation that was in flight when Run stopped, if any; cleared.
  std::optional<InDoubt> TakeInDoubt() {
    std::optional<InDoubt> d = std::move(in_doubt_);
    in_doubt_.reset();
    return d;
  }

 private:
  const int id_;
  Namespaces* const model_;
  std::mt19937_64 rng_;
  std::optional<InDoubt> in_doubt_;
};

class NamespaceCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    strata::testing::PinGrpcLibrary();
    data_dir_ = dir_.path() + "/data";
  }

  static std::vector<std::string> Flags(int cycle) {
    return {"--memtable_bytes=262144", "--cq_threads=2", "--io_threads=2",
            cycle % 2 == 0 ? "--wal_sync=fsync" : "--wal_sync=none"};
  }

  // What the server holds for namespaces "w<writer>/...".
  static Namespaces Read(v1::KV::Stub* stub, int writer) {
    Namespaces out;
    v1::ListNamespacesRequest req;
    req.set_prefix(absl::StrFormat("w%d/", writer));
    v1::ListNamespacesResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    grpc::Status s = stub->ListNamespaces(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    for (const v1::NamespaceInfo& info : resp.namespaces()) {
      Contents c;
      v1::ScanRequest scan;
      scan.set_namespace_(info.name());
      grpc::ClientContext sctx;
      SetDeadline(&sctx);
      auto reader = stub->Scan(&sctx, scan);
      v1::ScanResponse part;
      while (reader->Read(&part)) {
        for (const v1::KeyValue& kv : part.pairs()) c[kv.key()] = kv.value();
      }
      grpc::Status ss = reader->Finish();
      EXPECT_TRUE(ss.ok()) << info.name() << ": " << ss.error_message();
      out[info.name()] = std::move(c);
    }
    return out;
  }

  ::strata::testing::TempDir dir_;
  std::string data_dir_;
};

TEST_F(NamespaceCrashTest, CreatesDeletesAndWritesSurviveKill9) {
  const int cycles = EnvInt("STRATA_NS_CRASH_CYCLES", 6);
  const uint64_t seed = static_cast<uint64_t>(
      EnvInt("STRATA_CRASH_SEED", static_cast<int>(std::random_device()())));
  std::printf("namespace crash loop: %d cycles, STRATA_CRASH_SEED=%llu\n",
              cycles, static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  std::vector<Namespaces> models(kWriters);
  std::vector<std::unique_ptr<Writer>> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.push_back(std::make_unique<Writer>(w, &models[w], rng()));
  }
  // Verified in cycle c: what cycle c - 1 left (cycle 0 starts empty).
  for (int cycle = 0; cycle <= cycles; ++cycle) {
    SCOPED_TRACE(absl::StrFormat("cycle %d (STRATA_CRASH_SEED=%llu)", cycle,
                                 static_cast<unsigned long long>(seed)));
    auto server = ServerProcess::Start(data_dir_, Flags(cycle));
    ASSERT_TRUE(server.ok()) << server.status();
    auto stub = v1::KV::NewStub(grpc::CreateChannel(
        (*server)->address(), grpc::InsecureChannelCredentials()));

    // Check, and settle each in-doubt operation by what survived.
    for (int w = 0; w < kWriters; ++w) {
      Namespaces got = Read(stub.get(), w);
      std::optional<InDoubt> d = writers[w]->TakeInDoubt();
      if (d) {
        const std::optional<Contents>& now =
            got.count(d->name) ? std::optional<Contents>(got[d->name])
                               : std::nullopt;
        ASSERT_TRUE(now == d->before || now == d->after)
            << "writer " << w << ": " << d->what << " of " << d->name
            << " in flight at the kill left " << Show(now) << "; before it "
            << Show(d->before) << ", after it " << Show(d->after);
        models[w][d->name] = now;
      }
      for (const auto& [name, expected] : models[w]) {
        const std::optional<Contents> now =
            got.count(name) ? std::optional<Contents>(got[name])
                            : std::nullopt;
        ASSERT_TRUE(now == expected)
            << "writer " << w << " namespace " << name << ": the server has "
            << Show(now) << ", acknowledged operations left "
            << Show(expected);
      }
      for (const auto& [name, contents] : got) {
        ASSERT_TRUE(models[w].count(name) > 0)
            << "namespace " << name << " was never created";
      }
    }
    if (cycle == cycles) break;

    // Run the writers until a random number of acknowledged operations
    // (or, every other cycle, the first acknowledged DeleteNamespace of a
    // loaded namespace after a few operations), then SIGKILL.
    const int target = 10 + static_cast<int>(rng() % 60);
    const bool kill_after_loaded_delete = cycle % 2 == 1;
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::condition_variable cv;
    int acked = 0;               // Guarded by mu.
    bool loaded_delete = false;  // Guarded by mu.
    int writers_done = 0;        // Guarded by mu.
    auto on_ack = [&](bool was_loaded_delete) {
      std::lock_guard<std::mutex> l(mu);
      ++acked;
      // Not in the first few operations: let data build up first.
      if (was_loaded_delete && acked >= 5) loaded_delete = true;
      cv.notify_all();
    };
    std::vector<std::thread> threads;
    std::vector<std::unique_ptr<v1::KV::Stub>> stubs;
    for (int w = 0; w < kWriters; ++w) {
      stubs.push_back(v1::KV::NewStub(grpc::CreateChannel(
          (*server)->address(), grpc::InsecureChannelCredentials())));
    }
    for (int w = 0; w < kWriters; ++w) {
      threads.emplace_back([&, w] {
        writers[w]->Run(stubs[w].get(), cycle, &stop, on_ack);
        std::lock_guard<std::mutex> l(mu);
        ++writers_done;
        cv.notify_all();
      });
    }
    std::string why;
    {
      // Bounded: at most 500 operations or 60 s, whichever comes first.
      std::unique_lock<std::mutex> l(mu);
      cv.wait_for(l, std::chrono::seconds(60), [&] {
        return (kill_after_loaded_delete ? loaded_delete : acked >= target) ||
               acked >= 500 || writers_done == kWriters;
      });
      why = absl::StrFormat("%d operations acknowledged%s", acked,
                            loaded_delete && kill_after_loaded_delete
                                ? ", right after deleting a loaded namespace"
                                : "");
      ASSERT_LT(writers_done, kWriters) << "every writer failed before the kill";
    }
    (*server)->Signal(SIGKILL);
    stop.store(true);
    for (std::thread& t : threads) t.join();
    ASSERT_TRUE((*server)->Wait(absl::Seconds(30)).ok());
    std::printf("cycle %d: killed after %s\n", cycle, why.c_str());
  }
}

}  // namespace
}  // namespace strata
