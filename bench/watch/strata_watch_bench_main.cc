// strata-watch-bench: many Watch streams against one strata-server while a
// writer puts at a fixed rate; reports delivery latency (from the moment a
// write is sent to the moment each watcher receives its event) and the
// server's memory per open watcher.
//
//   --mode=prefix  every watcher watches the prefix "w/": each write is an
//                  event for all of them (fan-out).
//   --mode=keys    watcher i watches the key "w/<i>": each write (to a
//                  random watched key) is an event for one of them.
//
// The writer encodes its send time (steady clock, ns) in the value; the
// watchers run on --threads completion-queue threads of this process over
// --channels connections. Bounded: --watchers, --duration, --rate.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "bench/common/histogram.h"
#include "bench/common/proc_stats.h"
#include "grpcpp/grpcpp.h"
#include "strata/v1/kv.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Server address host:port.");
ABSL_FLAG(std::string, mode, "prefix", "prefix (fan-out) or keys (one each).");
ABSL_FLAG(int32_t, watchers, 1000, "Watch streams to open.");
ABSL_FLAG(int32_t, channels, 50, "Connections the streams are spread over.");
ABSL_FLAG(int32_t, threads, 2, "Client completion-queue threads.");
ABSL_FLAG(double, rate, 100, "Writes per second.");
ABSL_FLAG(double, duration, 10, "Seconds of writes measured.");
ABSL_FLAG(int32_t, value_size, 100, "Bytes per value (at least 24).");
ABSL_FLAG(int32_t, server_pid, 0,
          "PID of the server (same machine): RSS before and after the "
          "watchers open, and at the end.");
ABSL_FLAG(std::string, label, "", "Free text copied into the JSON line.");

namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

// One watch stream, driven by tags on a completion queue.
struct Stream {
  enum class Step { kStart, kRead } step = Step::kStart;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientAsyncReader<strata::v1::WatchResponse>> reader;
  strata::v1::WatchResponse response;
  bool open = false;
};

struct Totals {
  absl::Mutex mu;
  strata::bench::Histogram latency_us;
  uint64_t events = 0;
  int open = 0;
  int failed = 0;
};

void PollLoop(grpc::CompletionQueue* cq, Totals* totals,
              std::atomic<bool>* measuring) {
  strata::bench::Histogram local;
  uint64_t events = 0;
  void* tag;
  bool ok;
  auto flush = [&] {
    absl::MutexLock l(&totals->mu);
    totals->latency_us.Merge(local);
    totals->events += events;
    local = strata::bench::Histogram();
    events = 0;
  };
  while (cq->Next(&tag, &ok)) {
    auto* s = static_cast<Stream*>(tag);
    if (!ok) {
      absl::MutexLock l(&totals->mu);
      if (!s->open) totals->failed++;
      continue;  // Stream over (cancelled at the end).
    }
    if (s->step == Stream::Step::kStart) {
      s->step = Stream::Step::kRead;
    } else {
      if (!s->open) {
        s->open = true;  // The opening message.
        absl::MutexLock l(&totals->mu);
        totals->open++;
      }
      const int64_t now = NowNanos();
      for (const auto& e : s->response.events()) {
        int64_t sent = 0;
        const std::string& v = e.kv().value();
        if (measuring->load() &&
            absl::SimpleAtoi(v.substr(0, v.find('|')), &sent) && sent > 0) {
          local.Add(static_cast<uint64_t>((now - sent) / 1000));
          events++;
        }
      }
      if (events >= 4096) flush();
    }
    s->reader->Read(&s->response, s);
  }
  flush();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Opens --watchers Watch streams and measures event delivery latency "
      "while writing at --rate; see the file comment.");
  absl::ParseCommandLine(argc, argv);
  const std::string target = absl::GetFlag(FLAGS_target);
  const bool prefix_mode = absl::GetFlag(FLAGS_mode) == "prefix";
  const int n = absl::GetFlag(FLAGS_watchers);
  const int nch = std::max(1, absl::GetFlag(FLAGS_channels));
  const std::string pid =
      absl::GetFlag(FLAGS_server_pid) > 0
          ? std::to_string(absl::GetFlag(FLAGS_server_pid))
          : "";
  auto rss = [&] { return pid.empty() ? 0 : strata::bench::RssKiB(pid); };

  std::vector<std::unique_ptr<strata::v1::KV::Stub>> stubs;
  for (int i = 0; i < nch; i++) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1 << 20);
    stubs.push_back(strata::v1::KV::NewStub(grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args)));
  }
  const uint64_t rss_before = rss();

  const int nthreads = std::max(1, absl::GetFlag(FLAGS_threads));
  std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs;
  for (int i = 0; i < nthreads; i++) {
    cqs.push_back(std::make_unique<grpc::CompletionQueue>());
  }
  Totals totals;
  std::atomic<bool> measuring{false};
  std::vector<std::thread> pollers;
  for (int i = 0; i < nthreads; i++) {
    pollers.emplace_back(PollLoop, cqs[i].get(), &totals, &measuring);
  }
  std::vector<std::unique_ptr<Stream>> streams(n);
  const auto open_start = Clock::now();
  for (int i = 0; i < n; i++) {
    strata::v1::WatchRequest req;
    if (prefix_mode) {
      req.set_key("w/");
      req.set_range_end("w0");
    } else {
      req.set_key(absl::StrFormat("w/%08d", i));
    }
    streams[i] = std::make_unique<Stream>();
    Stream* s = streams[i].get();
    s->reader = stubs[i % nch]->PrepareAsyncWatch(&s->ctx, req,
                                                   cqs[i % nthreads].get());
    s->reader->StartCall(s);
  }
  // Wait (bounded) until every stream has its opening message.
  const auto open_deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < open_deadline) {
    {
      absl::MutexLock l(&totals.mu);
      if (totals.open + totals.failed >= n) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double open_seconds =
      std::chrono::duration<double>(Clock::now() - open_start).count();
  int open_now;
  {
    absl::MutexLock l(&totals.mu);
    open_now = totals.open;
  }
  const uint64_t rss_watching = rss();

  // The writer: fixed rate, its own connection.
  auto writer_stub = strata::v1::KV::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  const double rate = absl::GetFlag(FLAGS_rate);
  const double duration = absl::GetFlag(FLAGS_duration);
  const int value_size = std::max(24, absl::GetFlag(FLAGS_value_size));
  std::mt19937_64 rng(1);
  strata::bench::Histogram put_us;
  uint64_t writes = 0, write_errors = 0;
  measuring = true;
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(duration));
  for (uint64_t i = 0; Clock::now() < end; i++) {
    const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(i / rate));
    std::this_thread::sleep_until(due);
    strata::v1::PutRequest req;
    req.set_key(prefix_mode ? absl::StrFormat("w/%d", i % 1000)
                            : absl::StrFormat("w/%08d", rng() % n));
    const int64_t sent = NowNanos();
    std::string value = absl::StrFormat("%d|", sent);
    value.resize(static_cast<size_t>(value_size), 'v');
    req.set_value(value);
    strata::v1::PutResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status s = writer_stub->Put(&ctx, req, &resp);
    put_us.Add(static_cast<uint64_t>((NowNanos() - sent) / 1000));
    writes++;
    if (!s.ok()) write_errors++;
  }
  const double elapsed =
      std::chrono::duration<double>(Clock::now() - start).count();
  int open_now_end;
  {
    absl::MutexLock l(&totals.mu);
    open_now_end = totals.open;
  }
  const uint64_t want =
      prefix_mode ? (writes - write_errors) * static_cast<uint64_t>(open_now_end)
                  : writes - write_errors;
  // Let every event arrive (bounded: 60 s), then stop.
  const auto drain_deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < drain_deadline) {
    {
      absl::MutexLock l(&totals.mu);
      if (totals.events >= want) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double drained =
      std::chrono::duration<double>(Clock::now() - start).count();
  measuring = false;
  const uint64_t rss_end = rss();
  for (auto& s : streams) s->ctx.TryCancel();
  for (auto& cq : cqs) cq->Shutdown();
  for (auto& t : pollers) t.join();

  absl::MutexLock l(&totals.mu);
  const uint64_t expected =
      prefix_mode ? (writes - write_errors) * static_cast<uint64_t>(open_now)
                  : writes - write_errors;
  const double per_watcher_kib =
      open_now > 0 && rss_watching > rss_before
          ? static_cast<double>(rss_watching - rss_before) / open_now
          : 0;
  std::printf(
      "mode=%s watchers=%d open=%d (in %.1f s) writes=%llu (%.0f/s, errors "
      "%llu) events=%llu of %llu expected (%.0f/s delivered over %.1f s)\n",
      prefix_mode ? "prefix" : "keys", n, open_now, open_seconds,
      static_cast<unsigned long long>(writes), writes / elapsed,
      static_cast<unsigned long long>(write_errors),
      static_cast<unsigned long long>(totals.events),
      static_cast<unsigned long long>(expected), totals.events / drained,
      drained);
  std::printf(
      "delivery latency us: p50 %.0f p90 %.0f p99 %.0f max %llu; put "
      "latency us: p50 %.0f p99 %.0f\n",
      totals.latency_us.Percentile(50), totals.latency_us.Percentile(90),
      totals.latency_us.Percentile(99),
      static_cast<unsigned long long>(totals.latency_us.max()),
      put_us.Percentile(50), put_us.Percentile(99));
  if (!pid.empty()) {
    std::printf(
        "server RSS KiB: before %llu, watching %llu (%.1f KiB per watcher), "
        "end %llu\n",
        static_cast<unsigned long long>(rss_before),
        static_cast<unsigned long long>(rss_watching), per_watcher_kib,
        static_cast<unsigned long long>(rss_end));
  }
  std::printf(
      "json: {\"label\":\"%s\",\"mode\":\"%s\",\"watchers\":%d,\"open\":%d,"
      "\"writes_per_s\":%.1f,\"events\":%llu,\"expected\":%llu,"
      "\"p50_us\":%.0f,\"p99_us\":%.0f,\"rss_before_kib\":%llu,"
      "\"rss_watching_kib\":%llu,\"kib_per_watcher\":%.2f}\n",
      absl::GetFlag(FLAGS_label).c_str(), prefix_mode ? "prefix" : "keys", n,
      open_now,
      writes / elapsed, static_cast<unsigned long long>(totals.events),
      static_cast<unsigned long long>(expected),
      totals.latency_us.Percentile(50), totals.latency_us.Percentile(99),
      static_cast<unsigned long long>(rss_before),
      static_cast<unsigned long long>(rss_watching), per_watcher_kib);
  return totals.events == expected ? 0 : 1;
}
