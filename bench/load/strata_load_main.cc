// strata-load: an asynchronous, closed-loop gRPC load generator for
// strata-server (and, for comparison, etcd's v3 KV API and bench/noop-server).
//
// --concurrency RPCs are kept outstanding at all times over --channels
// connections, driven by --threads completion-queue threads: each "slot"
// issues one RPC, and issues the next as soon as it completes. Calls that
// start after the --warmup and complete within the next --duration seconds
// are counted. The report gives ops/s, p50/p90/p99/p99.9 latency and errors
// by status code, as text and as one JSON line (prefixed "json: ").
//
// --rate=R makes it open-loop: requests arrive at fixed times, R per second
// in all (request k at start + k/R), whether or not earlier ones have
// completed, as users of a service arrive. --concurrency is then the most
// requests outstanding at once; an arrival that finds every slot busy is
// sent as soon as one frees, and its latency counts from its scheduled
// arrival (no coordinated omission), so a server that falls behind shows
// it in p99. ops/s is then the goodput: requests answered OK.
//
// --adaptive_throttle=K (open loop) makes the client throttle itself as
// the Google SRE book's "client-side throttling" does: over the last
// second it counts the requests it was asked to send and those the server
// accepted (answered with anything but RESOURCE_EXHAUSTED,
// DEADLINE_EXCEEDED or UNAVAILABLE), and refuses a new request locally,
// without sending it, with probability max(0, (requests - K * accepts) /
// (requests + 1)). Refused requests are counted as "throttled". A sent
// request counts when its answer comes (a refused one at once), so a
// client that has heard nothing yet does not throttle.
//
// Keys are 16 decimal digits (key i = "%016d" of i) drawn uniformly from
// [0, --keys), or from [0, --hot_keys) for a hot-key workload. Every request
// is built with protobuf and sent through gRPC's generic stub, so Strata,
// the noop server and etcd cost the client the same.

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/alarm.h"
#include "bench/common/histogram.h"
#include "bench/common/proc_stats.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "cluster/proto/etcd/rpc.pb.h"
#include "strata/v1/kv.grpc.pb.h"
#include "strata/v1/kv.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Server address host:port.");
ABSL_FLAG(std::string, protocol, "strata",
          "API to speak: strata (strata.v1.KV: strata-server, noop-server) "
          "or etcd (etcdserverpb.KV Put/Range of an etcd v3 server).");
ABSL_FLAG(std::string, op, "get",
          "get, put, mixed (--read_fraction gets, the rest puts), scan "
          "(--scan_limit pairs from a random key), txn (a guarded put: "
          "if the key's mod revision < 2^62 put it, else get it), commit "
          "(see --conflict_rate) or incr (Increment by 1).");
ABSL_FLAG(int32_t, concurrency, 16,
          "RPCs kept outstanding at all times (with --rate: the most "
          "outstanding at once).");
ABSL_FLAG(double, rate, 0,
          "Open loop: requests per second in all, at fixed arrival times "
          "(0 = closed loop, each slot issues its next RPC when the last "
          "completes).");
ABSL_FLAG(int32_t, channels, 0,
          "Client connections (each a channel with its own subchannel); the "
          "outstanding RPCs are spread round-robin. 0 = --concurrency (one "
          "connection per outstanding RPC, like redis-benchmark -c).");
ABSL_FLAG(int32_t, threads, 1, "Client completion-queue threads.");
ABSL_FLAG(double, duration, 10, "Seconds measured.");
ABSL_FLAG(double, warmup, 1, "Seconds of load before measuring starts.");
ABSL_FLAG(int64_t, keys, 100000, "Size of the key space.");
ABSL_FLAG(int64_t, hot_keys, 0,
          "If > 0, every key is drawn from the first N keys only (N=1: all "
          "requests hit one key, to show read coalescing).");
ABSL_FLAG(int32_t, value_size, 100, "Bytes per value written.");
ABSL_FLAG(bool, preload, false,
          "Before the run, write every key of --keys once (not measured).");
ABSL_FLAG(double, read_fraction, 0.9, "Share of gets in --op=mixed.");
ABSL_FLAG(int32_t, scan_limit, 10, "Pairs per scan in --op=scan.");
ABSL_FLAG(double, conflict_rate, 0,
          "--op=commit: share of commits made to conflict (read at "
          "revision 1, before the preloaded key changed: ABORTED); the rest "
          "read at the latest revision this process has seen.");
ABSL_FLAG(int64_t, ttl_ms, 0,
          "--op=put (strata): the TTL of every put in milliseconds (0 = none); "
          "bench/expiry-lag.sh uses it.");
ABSL_FLAG(double, timeout, 10, "Deadline of each RPC in seconds.");
ABSL_FLAG(double, adaptive_throttle, 0,
          "Open loop: client-side adaptive throttling with this K (the SRE "
          "book's; e.g. 1.1): a request is refused locally, unsent, with "
          "probability max(0, (requests - K * accepts) / (requests + 1)) "
          "over the last second. 0 = off.");
ABSL_FLAG(bool, etcd_serializable, true,
          "etcd reads: serializable Range (local, no quorum) instead of "
          "linearizable.");
ABSL_FLAG(int32_t, idle_connections, 0,
          "Extra connections opened before the run and held idle until the "
          "end (connection scaling test).");
ABSL_FLAG(int32_t, server_pid, 0,
          "PID of the server (same machine): its RSS is reported before and "
          "after the idle connections are opened, and after the run.");
ABSL_FLAG(bool, mutex_deadlock_detection, false,
          "Keep Abseil's Mutex deadlock detection on in this client (Debian "
          "builds Abseil without NDEBUG, so it is on by default and gRPC "
          "pays for it on every lock). Off by default: the load generator "
          "should cost as little as possible, whichever server it drives.");
ABSL_FLAG(std::string, label, "", "Free text copied into the JSON line.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the key sequence.");

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;

enum class Protocol { kStrata, kEtcd };
enum class OpKind { kGet, kPut, kScan, kTxn, kCommit, kIncrement };

// Method names live for the whole process: gRPC keeps the pointer.
const std::string kStrataGet = "/strata.v1.KV/Get";
const std::string kStrataPut = "/strata.v1.KV/Put";
const std::string kStrataScan = "/strata.v1.KV/Scan";
const std::string kEtcdRange = "/etcdserverpb.KV/Range";
const std::string kEtcdPut = "/etcdserverpb.KV/Put";
const std::string kStrataTxn = "/strata.v1.KV/Txn";
const std::string kStrataCommit = "/strata.v1.KV/Commit";
const std::string kStrataIncrement = "/strata.v1.KV/Increment";
const std::string kEtcdTxn = "/etcdserverpb.KV/Txn";

// --op=txn compares the key's mod revision with this bound (never reached).
constexpr int64_t kTxnModBound = int64_t{1} << 62;

struct Config {
  std::string target;
  Protocol protocol = Protocol::kStrata;
  std::string protocol_name;
  std::string op;
  int concurrency = 16;
  double rate = 0;  // Open loop when > 0.
  int channels = 16;
  int threads = 1;
  double duration = 10;
  double warmup = 1;
  int64_t keys = 100000;
  int64_t hot_keys = 0;
  std::string value;
  double read_fraction = 0.9;
  int scan_limit = 10;
  double conflict_rate = 0;
  int64_t ttl_ms = 0;
  std::chrono::milliseconds timeout{10000};
  double adaptive_throttle = 0;  // K; 0 = off.
  bool etcd_serializable = true;
  uint64_t seed = 1;
};

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t Uniform(uint64_t n) { return Next() % n; }
  double Unit() { return (Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

std::string Key(uint64_t i) { return absl::StrFormat("%016d", i); }

grpc::ByteBuffer ToBuffer(const google::protobuf::MessageLite& message) {
  const std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target) {
  grpc::ChannelArguments args;
  // A private subchannel pool: every channel is its own TCP connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

// Waits until every channel is READY; returns how many are. (Waiting on a
// channel polls gRPC's I/O, which is what moves every connection forward:
// GetState(true) alone only asks for a connection.)
int ConnectAll(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
               std::chrono::seconds limit) {
  for (const auto& c : channels) c->GetState(/*try_to_connect=*/true);
  const auto deadline = std::chrono::system_clock::now() + limit;
  int ready = 0;
  for (const auto& c : channels) {
    if (c->WaitForConnected(deadline)) ++ready;
  }
  return ready;
}

// Shared by every worker of one phase.
struct Phase {
  const Config* config;
  std::vector<std::unique_ptr<grpc::GenericStub>>* stubs;
  bool preload = false;                     // Put every key once, unmeasured.
  std::atomic<int64_t> next_preload_key{0};
  std::atomic<bool> stop{false};
  // The highest revision any strata-server reply has carried (--op=commit
  // reads "at" it).
  std::atomic<int64_t> latest_revision{0};
  Clock::time_point measure_start;
  Clock::time_point measure_end;
  // Open loop: arrival k is due at origin + k / rate.
  Clock::time_point origin;
  std::atomic<int64_t> next_arrival{0};
  // Arrivals in the measured window given up for want of a free slot.
  std::atomic<int64_t> missed{0};
  // Arrivals due in the measured window: each is answered (ok or an error
  // code), missed or throttled.
  std::atomic<int64_t> arrivals{0};
  // Arrivals in the measured window refused by --adaptive_throttle.
  std::atomic<int64_t> throttled{0};
};

// Client-side adaptive throttling (--adaptive_throttle): requests (answered
// or refused here) and requests the server accepted over the last second,
// in ten 100 ms buckets. Any thread.
class Throttle {
 public:
  explicit Throttle(double k) : k_(k) {}
  // Whether to send a request now; a refused one counts as a request.
  bool Admit(double unit_random) {
    const int64_t now = Tick();
    int64_t requests = 0;
    int64_t accepts = 0;
    for (const Bucket& x : buckets_) {
      if (now - x.tick.load(std::memory_order_relaxed) < kBuckets) {
        requests += x.requests.load(std::memory_order_relaxed);
        accepts += x.accepts.load(std::memory_order_relaxed);
      }
    }
    const double p = (static_cast<double>(requests) -
                      k_ * static_cast<double>(accepts)) /
                     static_cast<double>(requests + 1);
    if (unit_random >= p) return true;
    BucketAt(now).requests.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // A sent request was answered; `accepted` unless the server refused it
  // for overload (or it timed out).
  void Answered(bool accepted) {
    Bucket& b = BucketAt(Tick());
    b.requests.fetch_add(1, std::memory_order_relaxed);
    if (accepted) b.accepts.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  static constexpr int64_t kBuckets = 10;
  struct Bucket {
    std::atomic<int64_t> tick{-1};
    std::atomic<int64_t> requests{0};
    std::atomic<int64_t> accepts{0};
  };
  static int64_t Tick() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               Clock::now().time_since_epoch())
               .count() /
           100;
  }
  // The bucket of `tick`, emptied first if it last held an older tick.
  // (Two threads may both reset it and lose a count: harmless here.)
  Bucket& BucketAt(int64_t tick) {
    Bucket& b = buckets_[static_cast<size_t>(tick % kBuckets)];
    int64_t seen = b.tick.load(std::memory_order_relaxed);
    if (seen != tick && b.tick.compare_exchange_strong(seen, tick)) {
      b.requests.store(0, std::memory_order_relaxed);
      b.accepts.store(0, std::memory_order_relaxed);
    }
    return b;
  }

  const double k_;
  Bucket buckets_[kBuckets];
};

class Worker;

// One outstanding RPC at a time; issues the next when it completes.
class Slot {
 public:
  Slot(Worker* worker, grpc::GenericStub* stub) : worker_(worker), stub_(stub) {}
  // Issues the next RPC; returns false (and stays idle) when the phase is
  // over.
  bool Start();
  // A completion-queue event for this slot.
  void OnEvent(bool ok);

 private:
  enum class State { kWaiting, kUnary, kStreamStart, kStreamWrite,
                     kStreamRead, kStreamFinish };
  // Sends the RPC of the request built by Start; `started` is when it
  // counts from (its scheduled arrival in open loop).
  void Issue(Clock::time_point started);
  void Complete();
  void BeginStreamFinish();

  Worker* const worker_;
  grpc::GenericStub* const stub_;
  State state_ = State::kUnary;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> unary_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> stream_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  grpc::Status status_;
  Clock::time_point started_;
  const std::string* method_ = nullptr;
  bool streaming_ = false;
  grpc::Alarm alarm_;  // Open loop: wakes the slot at its next arrival.
};

class Worker {
 public:
  Worker(Phase* phase, uint64_t seed) : phase_(phase), rng_(seed) {}

  void AddSlot(grpc::GenericStub* stub) {
    slots_.push_back(std::make_unique<Slot>(this, stub));
  }

  // Runs until every slot is idle, then drains the queue.
  void Run() {
    for (auto& slot : slots_) {
      if (slot->Start()) ++active_;
    }
    void* tag = nullptr;
    bool ok = false;
    while (active_ > 0 && cq_.Next(&tag, &ok)) {
      static_cast<Slot*>(tag)->OnEvent(ok);
    }
    cq_.Shutdown();
    while (cq_.Next(&tag, &ok)) {
    }
  }

  void SlotIdle() { --active_; }

  // Remembers the revision of a strata.v1 reply (every unary reply has its
  // ResponseHeader as field 1 except GetResponse's; a reply of another
  // shape parses to revision 0 and is ignored).
  void NoteRevision(const grpc::ByteBuffer& response) {
    if (phase_->config->op != "commit") return;
    std::vector<grpc::Slice> slices;
    if (!response.Dump(&slices).ok()) return;
    std::string bytes;
    for (const grpc::Slice& slice : slices) {
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    }
    v1::CommitResponse r;
    if (!r.ParseFromString(bytes)) return;
    int64_t seen = phase_->latest_revision.load(std::memory_order_relaxed);
    const int64_t revision = r.header().revision();
    while (revision > seen &&
           !phase_->latest_revision.compare_exchange_weak(seen, revision)) {
    }
  }

  // Open loop: claims the next arrival due in the measured window, and its
  // time; nullopt when the window's arrivals are all claimed. An arrival
  // that waited for a free slot longer than --timeout is given up (counted
  // as missed, nothing sent): its user has gone, and sending it would only
  // feed the server work nobody waits for.
  std::optional<Clock::time_point> NextArrival() {
    const Config& c = *phase_->config;
    while (true) {
      const int64_t k = phase_->next_arrival.fetch_add(1);
      const Clock::time_point due =
          phase_->origin + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(k / c.rate));
      if (due > phase_->measure_end) return std::nullopt;
      if (due >= phase_->measure_start) phase_->arrivals.fetch_add(1);
      if (due + c.timeout > Clock::now()) return due;
      NoteMissed(due);
    }
  }
  // An arrival given up without an RPC.
  void NoteMissed(Clock::time_point due) {
    if (due >= phase_->measure_start) phase_->missed.fetch_add(1);
  }
  // Open loop: whether --adaptive_throttle lets the arrival due at `due`
  // be sent; a refused one is counted (nothing is sent).
  bool Admit(Clock::time_point due) {
    if (throttle_ == nullptr || throttle_->Admit(rng_.Unit())) return true;
    if (due >= phase_->measure_start) phase_->throttled.fetch_add(1);
    return false;
  }
  void set_throttle(Throttle* t) { throttle_ = t; }
  bool open_loop() const {
    return phase_->config->rate > 0 && !phase_->preload;
  }

  // Picks the next operation and builds its request. False when the phase
  // is over.
  bool NextRequest(const std::string** method, grpc::ByteBuffer* request,
                   bool* streaming) {
    const Config& c = *phase_->config;
    *streaming = false;
    uint64_t key_index = 0;
    OpKind kind = OpKind::kGet;
    if (phase_->preload) {
      const int64_t k = phase_->next_preload_key.fetch_add(1);
      if (k >= c.keys) return false;
      key_index = static_cast<uint64_t>(k);
      kind = OpKind::kPut;
    } else {
      // Open loop ends with its last arrival (NextArrival), not at stop: an
      // arrival claimed before the window closed is still sent.
      if (c.rate <= 0 && phase_->stop.load(std::memory_order_relaxed)) {
        return false;
      }
      const int64_t space = c.hot_keys > 0 ? c.hot_keys : c.keys;
      key_index = rng_.Uniform(static_cast<uint64_t>(space));
      if (c.op == "get") {
        kind = OpKind::kGet;
      } else if (c.op == "put") {
        kind = OpKind::kPut;
      } else if (c.op == "scan") {
        kind = OpKind::kScan;
      } else if (c.op == "txn") {
        kind = OpKind::kTxn;
      } else if (c.op == "commit") {
        kind = OpKind::kCommit;
      } else if (c.op == "incr") {
        kind = OpKind::kIncrement;
      } else {
        kind = rng_.Unit() < c.read_fraction ? OpKind::kGet : OpKind::kPut;
      }
    }
    const std::string key = Key(key_index);
    if (c.protocol == Protocol::kStrata) {
      switch (kind) {
        case OpKind::kGet: {
          v1::GetRequest r;
          r.set_key(key);
          *request = ToBuffer(r);
          *method = &kStrataGet;
          break;
        }
        case OpKind::kPut: {
          v1::PutRequest r;
          r.set_key(key);
          r.set_value(c.value);
          if (!phase_->preload) r.set_ttl_ms(c.ttl_ms);
          *request = ToBuffer(r);
          *method = &kStrataPut;
          break;
        }
        case OpKind::kScan: {
          v1::ScanRequest r;
          r.set_start_key(key);
          r.set_limit(static_cast<uint32_t>(c.scan_limit));
          *request = ToBuffer(r);
          *method = &kStrataScan;
          *streaming = true;
          break;
        }
        case OpKind::kTxn: {
          // A guarded write as a lock or leader record takes it: if the
          // key's mod revision is below a bound (always true here), put;
          // else read it. The same request goes to etcd below.
          v1::TxnRequest r;
          v1::Compare* cmp = r.add_compare();
          cmp->set_key(key);
          cmp->set_target(v1::Compare::MOD);
          cmp->set_result(v1::Compare::LESS);
          cmp->set_mod_revision(kTxnModBound);
          v1::PutRequest* put = r.add_success()->mutable_put();
          put->set_key(key);
          put->set_value(c.value);
          r.add_failure()->mutable_get()->set_key(key);
          *request = ToBuffer(r);
          *method = &kStrataTxn;
          break;
        }
        case OpKind::kCommit: {
          // A read-modify-write of one key: it read the key at R, writes it
          // back. With probability --conflict_rate R is 1 (the preloaded key
          // changed after it: ABORTED), else the latest revision seen.
          v1::CommitRequest r;
          const bool conflict = rng_.Unit() < c.conflict_rate;
          r.set_read_revision(
              conflict ? 1
                       : std::max<int64_t>(
                             1, phase_->latest_revision.load(
                                    std::memory_order_relaxed)));
          r.add_read_keys(key);
          v1::PutRequest* put = r.add_mutations()->mutable_put();
          put->set_key(key);
          put->set_value(c.value);
          *request = ToBuffer(r);
          *method = &kStrataCommit;
          break;
        }
        case OpKind::kIncrement: {
          // Redis INCR's counterpart: +1 on an INT64 counter, durable.
          v1::IncrementRequest r;
          r.set_key(key);
          r.set_delta(1);
          *request = ToBuffer(r);
          *method = &kStrataIncrement;
          break;
        }
      }
    } else {
      switch (kind) {
        case OpKind::kGet:
        case OpKind::kScan: {
          etcdserverpb::RangeRequest r;
          r.set_key(key);
          if (kind == OpKind::kScan) {
            r.set_range_end("\xff");
            r.set_limit(c.scan_limit);
          }
          r.set_serializable(c.etcd_serializable);
          *request = ToBuffer(r);
          *method = &kEtcdRange;
          break;
        }
        case OpKind::kPut: {
          etcdserverpb::PutRequest r;
          r.set_key(key);
          r.set_value(c.value);
          *request = ToBuffer(r);
          *method = &kEtcdPut;
          break;
        }
        case OpKind::kTxn: {
          etcdserverpb::TxnRequest r;
          etcdserverpb::Compare* cmp = r.add_compare();
          cmp->set_key(key);
          cmp->set_target(etcdserverpb::Compare::MOD);
          cmp->set_result(etcdserverpb::Compare::LESS);
          cmp->set_mod_revision(kTxnModBound);
          etcdserverpb::PutRequest* put =
              r.add_success()->mutable_request_put();
          put->set_key(key);
          put->set_value(c.value);
          etcdserverpb::RangeRequest* get =
              r.add_failure()->mutable_request_range();
          get->set_key(key);
          *request = ToBuffer(r);
          *method = &kEtcdTxn;
          break;
        }
        case OpKind::kCommit:  // Refused in main(): etcd has neither.
        case OpKind::kIncrement:
          return false;
      }
    }
    return true;
  }

  void Record(Clock::time_point started, const grpc::Status& status) {
    if (throttle_ != nullptr) {
      const grpc::StatusCode code = status.error_code();
      throttle_->Answered(code != grpc::StatusCode::RESOURCE_EXHAUSTED &&
                          code != grpc::StatusCode::DEADLINE_EXCEEDED &&
                          code != grpc::StatusCode::UNAVAILABLE);
    }
    if (phase_->preload) {
      if (!status.ok()) ++errors_[status.error_code()];
      return;
    }
    const Clock::time_point now = Clock::now();
    // Open loop counts every arrival of the window, however late it is
    // answered (the slow tail is the point); closed loop what completes in it.
    if (started < phase_->measure_start ||
        (!open_loop() && now > phase_->measure_end)) {
      return;
    }
    if (status.ok()) {
      latency_.Add(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - started)
              .count()));
    } else {
      ++errors_[status.error_code()];
    }
  }

  grpc::CompletionQueue* cq() { return &cq_; }
  const Config& config() const { return *phase_->config; }
  const Histogram& latency() const { return latency_; }
  const std::map<grpc::StatusCode, uint64_t>& errors() const { return errors_; }

 private:
  Phase* const phase_;
  Rng rng_;
  Throttle* throttle_ = nullptr;  // Open loop with --adaptive_throttle.
  grpc::CompletionQueue cq_;
  std::vector<std::unique_ptr<Slot>> slots_;
  int active_ = 0;
  Histogram latency_;
  std::map<grpc::StatusCode, uint64_t> errors_;
};

bool Slot::Start() {
  if (!worker_->open_loop()) {
    if (!worker_->NextRequest(&method_, &request_, &streaming_)) return false;
    Issue(Clock::now());
    return true;
  }
  std::optional<Clock::time_point> due;
  Clock::time_point now;
  while (true) {
    due = worker_->NextArrival();
    if (!due || !worker_->NextRequest(&method_, &request_, &streaming_)) {
      return false;
    }
    now = Clock::now();
    if (*due > now) break;  // Wait for it (below).
    // Behind: every slot was busy at its arrival.
    if (worker_->Admit(*due)) {
      Issue(*due);
      return true;
    }
  }
  started_ = *due;
  state_ = State::kWaiting;
  alarm_.Set(worker_->cq(),
             std::chrono::system_clock::now() +
                 std::chrono::duration_cast<std::chrono::system_clock::duration>(
                     *due - now),
             this);
  return true;
}

void Slot::Issue(Clock::time_point started) {
  ctx_ = std::make_unique<grpc::ClientContext>();
  // The deadline counts from the arrival (open loop: a user who waited in
  // the client's queue has that much less patience left).
  ctx_->set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          worker_->config().timeout - (Clock::now() - started)));
  started_ = started;
  if (!streaming_) {
    state_ = State::kUnary;
    unary_ = stub_->PrepareUnaryCall(ctx_.get(), *method_, request_,
                                     worker_->cq());
    unary_->StartCall();
    unary_->Finish(&response_, &status_, this);
  } else {
    state_ = State::kStreamStart;
    stream_ = stub_->PrepareCall(ctx_.get(), *method_, worker_->cq());
    stream_->StartCall(this);
  }
}

void Slot::BeginStreamFinish() {
  state_ = State::kStreamFinish;
  stream_->Finish(&status_, this);
}

void Slot::OnEvent(bool ok) {
  switch (state_) {
    case State::kWaiting:  // The alarm rang (it is never cancelled).
      if (started_ + worker_->config().timeout <= Clock::now()) {
        worker_->NoteMissed(started_);  // It rang too late to be worth it.
        if (!Start()) worker_->SlotIdle();
        return;
      }
      if (!worker_->Admit(started_)) {
        if (!Start()) worker_->SlotIdle();
        return;
      }
      Issue(started_);
      return;
    case State::kUnary:
      Complete();
      return;
    case State::kStreamStart:
      if (!ok) return BeginStreamFinish();
      state_ = State::kStreamWrite;
      stream_->WriteLast(request_, grpc::WriteOptions(), this);
      return;
    case State::kStreamWrite:
    case State::kStreamRead:
      if (!ok) return BeginStreamFinish();
      state_ = State::kStreamRead;
      stream_->Read(&response_, this);
      return;
    case State::kStreamFinish:
      Complete();
      return;
  }
}

void Slot::Complete() {
  worker_->Record(started_, status_);
  if (status_.ok() && worker_->config().protocol == Protocol::kStrata) {
    worker_->NoteRevision(response_);
  }
  unary_.reset();
  stream_.reset();
  ctx_.reset();
  response_.Clear();
  if (!Start()) worker_->SlotIdle();
}

struct Totals {
  // Server CPU seconds during the measured window (0 without a pid).
  double server_cpu_seconds = 0;
  // This process's CPU seconds during the measured window.
  double client_cpu_seconds = 0;
  Histogram latency;
  std::map<grpc::StatusCode, uint64_t> errors;
  uint64_t error_count = 0;
  // Open loop: arrivals given up without a free slot (Phase::missed).
  int64_t missed = 0;
  int64_t throttled = 0;  // Open loop: Phase::throttled.
  int64_t arrivals = 0;  // Open loop: Phase::arrivals.
};

// Runs one phase with every slot; returns the merged results.
Totals RunPhase(const Config& config,
                std::vector<std::unique_ptr<grpc::GenericStub>>* stubs,
                bool preload, const std::string& server_pid,
                int64_t start_revision = 0) {
  Phase phase;
  phase.latest_revision = start_revision;
  phase.config = &config;
  phase.stubs = stubs;
  phase.preload = preload;
  const Clock::time_point start = Clock::now();
  phase.measure_start =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(config.warmup));
  phase.measure_end =
      phase.measure_start + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(config.duration));
  phase.origin = start;
  std::vector<std::unique_ptr<Worker>> workers;
  std::optional<Throttle> throttle;
  if (config.adaptive_throttle > 0 && config.rate > 0 && !preload) {
    throttle.emplace(config.adaptive_throttle);
  }
  for (int t = 0; t < config.threads; ++t) {
    workers.push_back(std::make_unique<Worker>(
        &phase, config.seed * 0x100000001b3ull + static_cast<uint64_t>(t)));
    if (throttle) workers.back()->set_throttle(&*throttle);
  }
  for (int i = 0; i < config.concurrency; ++i) {
    workers[i % config.threads]->AddSlot(
        (*stubs)[static_cast<size_t>(i) % stubs->size()].get());
  }
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&w] { w->Run(); });
  double server_cpu = 0;
  double client_cpu = 0;
  if (!preload) {
    std::this_thread::sleep_until(phase.measure_start);
    if (!server_pid.empty()) server_cpu = -ProcessCpuSecondsOf(server_pid);
    client_cpu = -ProcessCpuSecondsOf("self");
    std::this_thread::sleep_until(phase.measure_end);
    if (!server_pid.empty()) server_cpu += ProcessCpuSecondsOf(server_pid);
    client_cpu += ProcessCpuSecondsOf("self");
    phase.stop = true;
  }
  for (std::thread& t : threads) t.join();

  Totals totals;
  totals.server_cpu_seconds = server_cpu;
  totals.client_cpu_seconds = client_cpu;
  totals.missed = phase.missed.load();
  totals.throttled = phase.throttled.load();
  totals.arrivals = phase.arrivals.load();
  for (const auto& w : workers) {
    totals.latency.Merge(w->latency());
    for (const auto& [code, n] : w->errors()) {
      totals.errors[code] += n;
      totals.error_count += n;
    }
  }
  return totals;
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "CODE_UNKNOWN";
  }
}

std::string ErrorsJson(const std::map<grpc::StatusCode, uint64_t>& errors) {
  std::vector<std::string> parts;
  for (const auto& [code, n] : errors) {
    parts.push_back(absl::StrFormat("\"%s\":%d", CodeName(code), n));
  }
  return "{" + absl::StrJoin(parts, ",") + "}";
}

std::string ErrorsText(const std::map<grpc::StatusCode, uint64_t>& errors) {
  if (errors.empty()) return "none";
  std::vector<std::string> parts;
  for (const auto& [code, n] : errors) {
    parts.push_back(absl::StrFormat("%s=%d", CodeName(code), n));
  }
  return absl::StrJoin(parts, " ");
}

void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int Main() {
  Config c;
  c.target = absl::GetFlag(FLAGS_target);
  c.protocol_name = absl::GetFlag(FLAGS_protocol);
  c.op = absl::GetFlag(FLAGS_op);
  c.concurrency = absl::GetFlag(FLAGS_concurrency);
  c.rate = absl::GetFlag(FLAGS_rate);
  c.channels = absl::GetFlag(FLAGS_channels);
  if (c.channels == 0) c.channels = c.concurrency;
  c.threads = absl::GetFlag(FLAGS_threads);
  c.duration = absl::GetFlag(FLAGS_duration);
  c.warmup = absl::GetFlag(FLAGS_warmup);
  c.keys = absl::GetFlag(FLAGS_keys);
  c.hot_keys = absl::GetFlag(FLAGS_hot_keys);
  c.read_fraction = absl::GetFlag(FLAGS_read_fraction);
  c.scan_limit = absl::GetFlag(FLAGS_scan_limit);
  c.conflict_rate = absl::GetFlag(FLAGS_conflict_rate);
  c.ttl_ms = absl::GetFlag(FLAGS_ttl_ms);
  c.timeout = std::chrono::milliseconds(
      static_cast<int64_t>(absl::GetFlag(FLAGS_timeout) * 1000));
  c.etcd_serializable = absl::GetFlag(FLAGS_etcd_serializable);
  c.adaptive_throttle = absl::GetFlag(FLAGS_adaptive_throttle);
  c.seed = absl::GetFlag(FLAGS_seed);
  const int value_size = absl::GetFlag(FLAGS_value_size);

  std::string problem;
  if (c.protocol_name == "strata") {
    c.protocol = Protocol::kStrata;
  } else if (c.protocol_name == "etcd") {
    c.protocol = Protocol::kEtcd;
  } else {
    problem = "--protocol must be strata or etcd";
  }
  if (c.op != "get" && c.op != "put" && c.op != "mixed" && c.op != "scan" &&
      c.op != "txn" && c.op != "commit" && c.op != "incr") {
    problem = "--op must be get, put, mixed, scan, txn, commit or incr";
  }
  if ((c.op == "commit" || c.op == "incr") && c.protocol != Protocol::kStrata) {
    problem = "--op=commit and --op=incr are strata RPCs: --protocol must be "
              "strata";
  }
  if (c.rate < 0) problem = "--rate must be >= 0 (0 = closed loop)";
  if (c.adaptive_throttle < 0 || (c.adaptive_throttle > 0 && c.rate <= 0)) {
    problem = "--adaptive_throttle must be >= 0, and needs --rate";
  }
  if (c.ttl_ms != 0 && (c.protocol != Protocol::kStrata || c.ttl_ms < 0)) {
    problem = "--ttl_ms is a strata PutRequest field: --protocol=strata and "
              "--ttl_ms >= 0";
  }
  if (c.conflict_rate < 0 || c.conflict_rate > 1) {
    problem = "--conflict_rate must be in [0, 1]";
  }
  if (c.concurrency < 1 || c.channels < 1 || c.threads < 1 ||
      c.threads > c.concurrency) {
    problem = "--concurrency, --channels >= 1 and 1 <= --threads <= "
              "--concurrency";
  }
  if (c.duration <= 0 || c.warmup < 0 || c.keys < 1 || c.hot_keys < 0 ||
      value_size < 0 || c.scan_limit < 1 || c.timeout.count() <= 0) {
    problem = "--duration, --keys, --scan_limit and --timeout must be "
              "positive; --warmup, --hot_keys, --value_size >= 0";
  }
  if (!problem.empty()) {
    std::fprintf(stderr, "strata-load: %s\n", problem.c_str());
    return 2;
  }
  {
    Rng rng(c.seed ^ 0xabcdef);
    c.value.resize(static_cast<size_t>(value_size));
    for (char& ch : c.value) ch = static_cast<char>(rng.Next());
  }
  RaiseFileLimit();
  const std::string server_pid =
      absl::GetFlag(FLAGS_server_pid) > 0
          ? std::to_string(absl::GetFlag(FLAGS_server_pid))
          : std::string();

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < c.channels; ++i) channels.push_back(NewChannel(c.target));
  const int connected = ConnectAll(channels, std::chrono::seconds(10));
  if (connected < c.channels) {
    std::fprintf(stderr, "strata-load: only %d of %d connections to %s are "
                 "ready after 10 s\n", connected, c.channels, c.target.c_str());
    return 1;
  }
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (const auto& ch : channels) {
    stubs.push_back(std::make_unique<grpc::GenericStub>(ch));
  }

  // Idle connections (scaling test): opened before the run, held to the end.
  const int idle = absl::GetFlag(FLAGS_idle_connections);
  std::vector<std::shared_ptr<grpc::Channel>> idle_channels;
  uint64_t rss_before_idle = 0;
  uint64_t rss_with_idle = 0;
  int idle_ready = 0;
  if (idle > 0) {
    if (!server_pid.empty()) rss_before_idle = RssKiB(server_pid);
    for (int i = 0; i < idle; ++i) idle_channels.push_back(NewChannel(c.target));
    idle_ready = ConnectAll(idle_channels, std::chrono::seconds(120));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    if (!server_pid.empty()) rss_with_idle = RssKiB(server_pid);
    std::printf("idle connections: %d of %d ready; client RSS %.1f MiB",
                idle_ready, idle, RssKiB() / 1024.0);
    if (!server_pid.empty()) {
      std::printf("; server RSS %.1f -> %.1f MiB = %.1f KiB per connection",
                  rss_before_idle / 1024.0, rss_with_idle / 1024.0,
                  idle_ready > 0 ? (static_cast<double>(rss_with_idle) -
                                    static_cast<double>(rss_before_idle)) /
                                       idle_ready
                                 : 0.0);
    }
    std::printf("\n");
    std::fflush(stdout);
  }

  if (absl::GetFlag(FLAGS_preload)) {
    const Clock::time_point t0 = Clock::now();
    const Totals pre = RunPhase(c, &stubs, /*preload=*/true, server_pid);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("preload: %lld keys of %d bytes in %.1f s; errors: %s\n",
                static_cast<long long>(c.keys), value_size, s,
                ErrorsText(pre.errors).c_str());
    std::fflush(stdout);
    if (pre.error_count > 0) return 1;
  }

  int64_t start_revision = 0;
  if (c.op == "commit") {
    // Commits read "at" the latest revision seen: start from the server's.
    auto kv = v1::KV::NewStub(channels[0]);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + c.timeout);
    v1::GetRequest req;
    req.set_key(Key(0));
    v1::GetResponse resp;
    const grpc::Status s = kv->Get(&ctx, req, &resp);
    if (!s.ok()) {
      std::fprintf(stderr, "strata-load: reading the revision: %s\n",
                   s.error_message().c_str());
      return 1;
    }
    start_revision = resp.header().revision();
  }
  const Totals t =
      RunPhase(c, &stubs, /*preload=*/false, server_pid, start_revision);
  const Histogram& h = t.latency;
  const double ops_per_sec = h.count() / c.duration;
  auto us = [&h](double p) { return h.Percentile(p) / 1000.0; };
  const uint64_t rss_after = server_pid.empty() ? 0 : RssKiB(server_pid);

  std::printf(
      "strata-load: %s %s at %s: concurrency %d over %d connections, %d "
      "client threads, %.1f s (+%.1f s warmup), keys %lld%s, value %d B\n",
      c.protocol_name.c_str(), c.op.c_str(), c.target.c_str(), c.concurrency,
      c.channels, c.threads, c.duration, c.warmup,
      static_cast<long long>(c.keys),
      c.hot_keys > 0 ? absl::StrFormat(" (hot: first %d)", c.hot_keys).c_str()
                     : "",
      value_size);
  std::printf(
      "  %llu ok in %.1f s = %.0f ops/s; latency us: mean %.0f p50 %.0f p90 "
      "%.0f p99 %.0f p99.9 %.0f max %.0f; errors: %s\n",
      static_cast<unsigned long long>(h.count()), c.duration, ops_per_sec,
      h.Mean() / 1000.0, us(50), us(90), us(99), us(99.9), h.max() / 1000.0,
      ErrorsText(t.errors).c_str());
  // If the client's own CPU is near duration (one busy core), the client
  // is the bottleneck and the ops/s is its ceiling, not the server's.
  const double client_cpu_us =
      h.count() > 0 ? t.client_cpu_seconds * 1e6 / h.count() : 0.0;
  std::printf("  client CPU %.2f s in the window (%.0f%% of one core) = %.1f us "
              "per operation\n",
              t.client_cpu_seconds, 100.0 * t.client_cpu_seconds / c.duration,
              client_cpu_us);
  std::string extra;
  if (c.rate > 0) {
    std::printf(
        "  open loop: %.0f requests/s offered; goodput %.0f/s = %.0f%%; "
        "%lld arrivals missed (no free slot within --timeout: raise "
        "--concurrency if > 0); %lld refused by --adaptive_throttle\n",
        c.rate, ops_per_sec, 100.0 * ops_per_sec / c.rate,
        static_cast<long long>(t.missed), static_cast<long long>(t.throttled));
    // arrivals = ops + errors + missed + throttled: every request is
    // accounted for.
    absl::StrAppendFormat(&extra,
                          ",\"rate\":%.1f,\"missed\":%d,\"throttled\":%d,"
                          "\"arrivals\":%d",
                          c.rate, t.missed, t.throttled, t.arrivals);
  }
  absl::StrAppendFormat(&extra, ",\"client_cpu_us_per_op\":%.1f,"
                        "\"client_cpu_share\":%.2f",
                        client_cpu_us, t.client_cpu_seconds / c.duration);
  if (idle > 0) {
    absl::StrAppendFormat(&extra, ",\"idle_connections\":%d,\"idle_ready\":%d",
                          idle, idle_ready);
    if (!server_pid.empty()) {
      absl::StrAppendFormat(
          &extra,
          ",\"server_rss_kib_before_idle\":%d,\"server_rss_kib_with_idle\":%d",
          rss_before_idle, rss_with_idle);
    }
  }
  if (!server_pid.empty()) {
    // The server's CPU per completed operation bounds its throughput on
    // one core at about 1e6 / this, whatever else runs on the machine.
    const double cpu_us =
        h.count() > 0 ? t.server_cpu_seconds * 1e6 / h.count() : 0.0;
    absl::StrAppendFormat(&extra,
                          ",\"server_rss_kib_after\":%d,"
                          "\"server_cpu_us_per_op\":%.1f",
                          rss_after, cpu_us);
    std::printf("  server CPU %.2f s in the window = %.1f us per operation\n",
                t.server_cpu_seconds, cpu_us);
  }
  absl::PrintF(
      "json: {\"tool\":\"strata-load\",\"label\":\"%s\",\"protocol\":\"%s\","
      "\"target\":\"%s\",\"op\":\"%s\",\"concurrency\":%d,\"channels\":%d,"
      "\"threads\":%d,\"duration_s\":%.1f,\"keys\":%d,\"hot_keys\":%d,"
      "\"value_size\":%d,\"ops\":%d,\"ops_per_sec\":%.1f,\"mean_us\":%.1f,"
      "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
      "\"max_us\":%.1f,\"errors\":%s%s}\n",
      absl::GetFlag(FLAGS_label), c.protocol_name, c.target, c.op,
      c.concurrency, c.channels, c.threads, c.duration, c.keys, c.hot_keys,
      value_size, h.count(), ops_per_sec, h.Mean() / 1000.0, us(50), us(90),
      us(99), us(99.9), h.max() / 1000.0, ErrorsJson(t.errors), extra);
  std::fflush(stdout);
  return h.count() > 0 ? 0 : 1;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "closed-loop asynchronous gRPC load generator for strata-server (and "
      "etcd / noop-server).\n\nUsage: strata-load --target=HOST:PORT "
      "[--protocol=strata|etcd] [--op=get|put|mixed|scan|txn|commit|incr] [--concurrency=N] "
      "[--channels=N] [--duration=S] [--keys=N] [--value_size=B] [--preload]");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::fprintf(stderr, "strata-load: unexpected argument '%s'\n", rest[1]);
    return 2;
  }
  if (!absl::GetFlag(FLAGS_mutex_deadlock_detection)) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  return strata::bench::Main();
}
