// strata-watch-bench: many Watch streams against one strata-server (or one
// etcd member, --system=etcd) while a writer puts at a fixed rate; reports
// delivery latency (from the moment a write is sent to the moment each
// watcher receives its event), events delivered and missed, and the server's
// memory per open watcher.
//
//   --mode=prefix  every watcher watches the prefix "w/": each write is an
//                  event for all of them (fan-out).
//   --mode=keys    watcher i watches the key "w/<i>": each write (to a
//                  random watched key) is an event for one of them.
//
//   --system=strata  strata.v1.KV/Watch (one server-streaming call per
//                    watcher) and strata.v1.KV/Put.
//   --system=etcd    etcdserverpb.Watch/Watch, one bidirectional stream per
//                    watcher carrying one WatchCreateRequest (the same
//                    key / range_end), and etcdserverpb.KV/Put. One stream
//                    per watcher is what Strata's API offers, so both servers
//                    keep the same number of HTTP/2 streams; etcd's clientv3
//                    would multiplex watches of one context onto one stream,
//                    which is cheaper for etcd and not measured here.
//
// The writer encodes its send time (steady clock, ns) in the value; the
// watchers run on --threads completion-queue threads of this process over
// --channels connections. Bounded: --watchers, --duration, --rate, and each
// wait (streams opening, events draining) has a deadline.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
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
#include "cluster/proto/etcd/rpc.grpc.pb.h"
#include "strata/v1/kv.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Server address host:port.");
ABSL_FLAG(std::string, system, "strata",
          "strata (strata.v1.KV) or etcd (etcd v3 Watch and KV).");
ABSL_FLAG(std::string, mode, "prefix", "prefix (fan-out) or keys (one each).");
ABSL_FLAG(int32_t, watchers, 1000, "Watch streams to open.");
ABSL_FLAG(int32_t, channels, 50, "Connections the streams are spread over.");
ABSL_FLAG(int32_t, threads, 2, "Client completion-queue threads.");
ABSL_FLAG(double, rate, 100, "Writes per second.");
ABSL_FLAG(double, duration, 10, "Seconds of writes measured.");
ABSL_FLAG(int32_t, value_size, 100, "Bytes per value (at least 24).");
ABSL_FLAG(double, drain_seconds, 60,
          "After the last write, wait at most this long for every event.");
ABSL_FLAG(int32_t, server_pid, 0,
          "PID of the server (same machine): RSS before and after the "
          "watchers open, and at the end.");
ABSL_FLAG(std::string, label, "", "Free text copied into the JSON line.");

namespace {

using Clock = std::chrono::steady_clock;

// An event delivered later than this after its write counts as late.
constexpr int64_t kLateMicros = 1'000'000;

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

struct Totals {
  absl::Mutex mu;
  strata::bench::Histogram latency_us ABSL_GUARDED_BY(mu);
  uint64_t events ABSL_GUARDED_BY(mu) = 0;
  uint64_t late ABSL_GUARDED_BY(mu) = 0;
  int64_t last_event_ns ABSL_GUARDED_BY(mu) = 0;  // Receipt of the latest.
  int open ABSL_GUARDED_BY(mu) = 0;
  int failed ABSL_GUARDED_BY(mu) = 0;
};

// What one completion-queue thread has counted since its last flush into
// Totals. Owned by that thread.
class Sink {
 public:
  Sink(Totals* totals, const std::atomic<bool>* measuring)
      : totals_(totals), measuring_(measuring) {}
  ~Sink() { Flush(); }

  void Opened() {
    absl::MutexLock l(&totals_->mu);
    totals_->open++;
  }
  // A stream ended; `was_open`: after its opening message.
  void Closed(bool was_open) {
    if (was_open) return;  // Cancelled at the end.
    absl::MutexLock l(&totals_->mu);
    totals_->failed++;
  }
  // One event whose value starts with "<send time ns>|", received at `now`.
  void Event(const std::string& value, int64_t now) {
    int64_t sent = 0;
    if (!measuring_->load() ||
        !absl::SimpleAtoi(value.substr(0, value.find('|')), &sent) ||
        sent <= 0) {
      return;
    }
    const int64_t us = (now - sent) / 1000;
    latency_.Add(static_cast<uint64_t>(us));
    events_++;
    if (us > kLateMicros) late_++;
    last_event_ns_ = now;
    // Often enough that the main thread sees the last events promptly.
    if (events_ >= 4096 || now - last_flush_ns_ > kFlushNanos) Flush();
  }
  void Flush() {
    absl::MutexLock l(&totals_->mu);
    totals_->latency_us.Merge(latency_);
    totals_->events += events_;
    totals_->late += late_;
    totals_->last_event_ns = std::max(totals_->last_event_ns, last_event_ns_);
    latency_ = strata::bench::Histogram();
    events_ = 0;
    late_ = 0;
    last_flush_ns_ = NowNanos();
  }

 private:
  Totals* const totals_;
  const std::atomic<bool>* const measuring_;
  strata::bench::Histogram latency_;
  uint64_t events_ = 0;
  uint64_t late_ = 0;
  int64_t last_event_ns_ = 0;
  int64_t last_flush_ns_ = 0;
  static constexpr int64_t kFlushNanos = 5'000'000;
};

// One watch stream, driven by its own tag (this) on one completion queue;
// only that queue's thread calls Proceed. Cancel may be called from any
// thread.
class Watcher {
 public:
  virtual ~Watcher() = default;
  virtual void Proceed(bool ok, Sink* sink) = 0;
  virtual void Cancel() = 0;
};

// strata.v1.KV/Watch: StartCall, then Read until cancelled. The first
// message (the stream's opening, no events) marks it open.
class StrataWatcher final : public Watcher {
 public:
  StrataWatcher(strata::v1::KV::Stub* stub,
                const strata::v1::WatchRequest& request,
                grpc::CompletionQueue* cq) {
    reader_ = stub->PrepareAsyncWatch(&ctx_, request, cq);
    reader_->StartCall(this);
  }
  void Proceed(bool ok, Sink* sink) override {
    if (!ok) return sink->Closed(open_);
    if (started_) {
      if (!open_) {
        open_ = true;
        sink->Opened();
      }
      const int64_t now = NowNanos();
      for (const auto& e : response_.events()) sink->Event(e.kv().value(), now);
    }
    started_ = true;
    reader_->Read(&response_, this);
  }
  void Cancel() override { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientAsyncReader<strata::v1::WatchResponse>> reader_;
  strata::v1::WatchResponse response_;
  bool started_ = false;
  bool open_ = false;
};

// etcdserverpb.Watch/Watch: StartCall, Write the create request, then Read
// until cancelled. The reply with `created` marks it open; a `canceled`
// reply (the server refused or dropped the watch) counts as a failure.
class EtcdWatcher final : public Watcher {
 public:
  EtcdWatcher(etcdserverpb::Watch::Stub* stub,
              const etcdserverpb::WatchRequest& request,
              grpc::CompletionQueue* cq)
      : request_(request) {
    stream_ = stub->PrepareAsyncWatch(&ctx_, cq);
    stream_->StartCall(this);
  }
  void Proceed(bool ok, Sink* sink) override {
    if (!ok) return sink->Closed(open_);
    switch (step_) {
      case Step::kStart:
        step_ = Step::kWrite;
        stream_->Write(request_, this);
        return;
      case Step::kWrite:
        step_ = Step::kRead;
        break;
      case Step::kRead: {
        if (response_.canceled()) {
          // Refused before it opened is a failure; dropped later shows as
          // missed events. No more reads: cancelled again at the end.
          return sink->Closed(open_);
        }
        if (response_.created() && !open_) {
          open_ = true;
          sink->Opened();
        }
        const int64_t now = NowNanos();
        for (const auto& e : response_.events()) {
          sink->Event(e.kv().value(), now);
        }
        break;
      }
    }
    stream_->Read(&response_, this);
  }
  void Cancel() override { ctx_.TryCancel(); }

 private:
  enum class Step { kStart, kWrite, kRead };
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<etcdserverpb::WatchRequest,
                                                etcdserverpb::WatchResponse>>
      stream_;
  const etcdserverpb::WatchRequest request_;
  etcdserverpb::WatchResponse response_;
  Step step_ = Step::kStart;
  bool open_ = false;
};

void PollLoop(grpc::CompletionQueue* cq, Totals* totals,
              const std::atomic<bool>* measuring) {
  Sink sink(totals, measuring);
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) static_cast<Watcher*>(tag)->Proceed(ok, &sink);
  sink.Flush();
}

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1 << 20);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

// The watched key (keys mode) or prefix (prefix mode) of watcher i, and the
// factory that opens it on one of the channels.
using OpenWatcher = std::function<std::unique_ptr<Watcher>(
    int i, grpc::CompletionQueue* cq)>;
// One durable put; the writer's own connection.
using PutFn = std::function<grpc::Status(const std::string& key,
                                         const std::string& value)>;

std::string WatchedKey(int i) { return absl::StrFormat("w/%08d", i); }
constexpr char kPrefix[] = "w/";
constexpr char kPrefixEnd[] = "w0";  // '/' + 1

grpc::ClientContext* WithDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return ctx;
}

void ForStrata(const std::string& target, bool prefix_mode, int nch,
               OpenWatcher* open, PutFn* put) {
  auto stubs = std::make_shared<std::vector<std::unique_ptr<strata::v1::KV::Stub>>>();
  for (int i = 0; i < nch; i++) {
    stubs->push_back(strata::v1::KV::NewStub(OwnChannel(target)));
  }
  *open = [stubs, prefix_mode](int i, grpc::CompletionQueue* cq) {
    strata::v1::WatchRequest req;
    if (prefix_mode) {
      req.set_key(kPrefix);
      req.set_range_end(kPrefixEnd);
    } else {
      req.set_key(WatchedKey(i));
    }
    return std::make_unique<StrataWatcher>(
        (*stubs)[static_cast<size_t>(i) % stubs->size()].get(), req, cq);
  };
  std::shared_ptr<strata::v1::KV::Stub> writer = strata::v1::KV::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  *put = [writer](const std::string& key, const std::string& value) {
    strata::v1::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    strata::v1::PutResponse resp;
    grpc::ClientContext ctx;
    return writer->Put(WithDeadline(&ctx), req, &resp);
  };
}

void ForEtcd(const std::string& target, bool prefix_mode, int nch,
             OpenWatcher* open, PutFn* put) {
  auto stubs = std::make_shared<
      std::vector<std::unique_ptr<etcdserverpb::Watch::Stub>>>();
  for (int i = 0; i < nch; i++) {
    stubs->push_back(etcdserverpb::Watch::NewStub(OwnChannel(target)));
  }
  *open = [stubs, prefix_mode](int i, grpc::CompletionQueue* cq) {
    etcdserverpb::WatchRequest req;
    etcdserverpb::WatchCreateRequest* create = req.mutable_create_request();
    if (prefix_mode) {
      create->set_key(kPrefix);
      create->set_range_end(kPrefixEnd);
    } else {
      create->set_key(WatchedKey(i));
    }
    return std::make_unique<EtcdWatcher>(
        (*stubs)[static_cast<size_t>(i) % stubs->size()].get(), req, cq);
  };
  std::shared_ptr<etcdserverpb::KV::Stub> writer = etcdserverpb::KV::NewStub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  *put = [writer](const std::string& key, const std::string& value) {
    etcdserverpb::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    etcdserverpb::PutResponse resp;
    grpc::ClientContext ctx;
    return writer->Put(WithDeadline(&ctx), req, &resp);
  };
}

int OpenCount(Totals* totals) {
  absl::MutexLock l(&totals->mu);
  return totals->open;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Opens --watchers Watch streams and measures event delivery latency "
      "while writing at --rate; see the file comment.");
  absl::ParseCommandLine(argc, argv);
  const std::string target = absl::GetFlag(FLAGS_target);
  const std::string system = absl::GetFlag(FLAGS_system);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if ((system != "strata" && system != "etcd") ||
      (mode != "prefix" && mode != "keys")) {
    std::fprintf(stderr, "--system must be strata|etcd, --mode prefix|keys\n");
    return 2;
  }
  const bool prefix_mode = mode == "prefix";
  const int n = absl::GetFlag(FLAGS_watchers);
  const int nch = std::max(1, absl::GetFlag(FLAGS_channels));
  const std::string pid =
      absl::GetFlag(FLAGS_server_pid) > 0
          ? std::to_string(absl::GetFlag(FLAGS_server_pid))
          : "";
  auto rss = [&] { return pid.empty() ? 0 : strata::bench::RssKiB(pid); };

  OpenWatcher open_watcher;
  PutFn put;
  if (system == "strata") {
    ForStrata(target, prefix_mode, nch, &open_watcher, &put);
  } else {
    ForEtcd(target, prefix_mode, nch, &open_watcher, &put);
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
  std::vector<std::unique_ptr<Watcher>> streams;
  streams.reserve(n);
  const auto open_start = Clock::now();
  for (int i = 0; i < n; i++) {
    streams.push_back(open_watcher(i, cqs[i % nthreads].get()));
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
  const int open_now = OpenCount(&totals);
  const uint64_t rss_watching = rss();

  // The writer: fixed rate, its own connection.
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
    const std::string key = prefix_mode ? absl::StrFormat("w/%d", i % 1000)
                                        : WatchedKey(static_cast<int>(rng() % n));
    const int64_t sent = NowNanos();
    std::string value = absl::StrFormat("%d|", sent);
    value.resize(static_cast<size_t>(value_size), 'v');
    grpc::Status s = put(key, value);
    put_us.Add(static_cast<uint64_t>((NowNanos() - sent) / 1000));
    writes++;
    if (!s.ok()) write_errors++;
  }
  const double elapsed =
      std::chrono::duration<double>(Clock::now() - start).count();
  const int open_now_end = OpenCount(&totals);
  const uint64_t want =
      prefix_mode ? (writes - write_errors) * static_cast<uint64_t>(open_now_end)
                  : writes - write_errors;
  // Let every event arrive (bounded), then stop.
  const auto drain_deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(
                             absl::GetFlag(FLAGS_drain_seconds)));
  while (Clock::now() < drain_deadline) {
    {
      absl::MutexLock l(&totals.mu);
      if (totals.events >= want) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  measuring = false;
  const uint64_t rss_end = rss();
  for (auto& s : streams) s->Cancel();
  for (auto& cq : cqs) cq->Shutdown();
  for (auto& t : pollers) t.join();

  absl::MutexLock l(&totals.mu);
  // From the first write to the receipt of the last event.
  const double delivered_over =
      std::max(elapsed, (totals.last_event_ns - std::chrono::duration_cast<
                                                    std::chrono::nanoseconds>(
                                                    start.time_since_epoch())
                                                    .count()) /
                            1e9);
  const uint64_t expected =
      prefix_mode ? (writes - write_errors) * static_cast<uint64_t>(open_now)
                  : writes - write_errors;
  const uint64_t missed =
      expected > totals.events ? expected - totals.events : 0;
  const double per_watcher_kib =
      open_now > 0 && rss_watching > rss_before
          ? static_cast<double>(rss_watching - rss_before) / open_now
          : 0;
  std::printf(
      "system=%s mode=%s watchers=%d open=%d (in %.1f s) writes=%llu (%.0f/s, "
      "errors %llu) events=%llu of %llu expected, missed %llu, late (>1 s) "
      "%llu (%.0f/s delivered over %.1f s)\n",
      system.c_str(), mode.c_str(), n, open_now, open_seconds,
      static_cast<unsigned long long>(writes), writes / elapsed,
      static_cast<unsigned long long>(write_errors),
      static_cast<unsigned long long>(totals.events),
      static_cast<unsigned long long>(expected),
      static_cast<unsigned long long>(missed),
      static_cast<unsigned long long>(totals.late),
      totals.events / delivered_over, delivered_over);
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
      "json: {\"label\":\"%s\",\"system\":\"%s\",\"mode\":\"%s\","
      "\"watchers\":%d,\"open\":%d,\"open_s\":%.2f,\"writes_per_s\":%.1f,"
      "\"write_errors\":%llu,\"events\":%llu,\"expected\":%llu,"
      "\"missed\":%llu,\"late\":%llu,\"events_per_s\":%.1f,"
      "\"p50_us\":%.0f,\"p99_us\":%.0f,\"put_p50_us\":%.0f,"
      "\"rss_before_kib\":%llu,\"rss_watching_kib\":%llu,"
      "\"rss_end_kib\":%llu,\"kib_per_watcher\":%.2f}\n",
      absl::GetFlag(FLAGS_label).c_str(), system.c_str(), mode.c_str(), n,
      open_now, open_seconds, writes / elapsed,
      static_cast<unsigned long long>(write_errors),
      static_cast<unsigned long long>(totals.events),
      static_cast<unsigned long long>(expected),
      static_cast<unsigned long long>(missed),
      static_cast<unsigned long long>(totals.late),
      totals.events / delivered_over, totals.latency_us.Percentile(50), totals.latency_us.Percentile(99),
      put_us.Percentile(50), static_cast<unsigned long long>(rss_before),
      static_cast<unsigned long long>(rss_watching),
      static_cast<unsigned long long>(rss_end), per_watcher_kib);
  return totals.events == expected ? 0 : 1;
}
