#include "server/metrics/rpc_metrics.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "server/metrics/families.h"
#include "server/metrics/namespace_metrics.h"
#include "server/write_gate.h"
#include "spdlog/spdlog.h"

namespace strata::server::metrics {
namespace {

using prometheus::MetricType;

constexpr std::array<std::string_view, 17> kCodeNames = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

size_t CodeIndex(grpc::StatusCode code) {
  const int c = static_cast<int>(code);
  return c >= 0 && c < static_cast<int>(kCodeNames.size())
             ? static_cast<size_t>(c)
             : static_cast<size_t>(grpc::StatusCode::UNKNOWN);
}

constexpr auto kRelaxed = std::memory_order_relaxed;

}  // namespace

std::string_view GrpcCodeName(grpc::StatusCode code) {
  return kCodeNames[CodeIndex(code)];
}

RpcMetrics::RpcMetrics(const std::vector<std::string>& methods)
    : num_methods_(methods.size()),
      stats_(new MethodStats[methods.size() + 1]),
      authz_denials_(
          new std::array<std::atomic<uint64_t>, 3>[methods.size() + 1]()) {
  static_assert(kNumCodes == kCodeNames.size());
  for (size_t i = 0; i < num_methods_; ++i) stats_[i].name = methods[i];
  stats_[num_methods_].name = "other";
}

RpcMetrics::~RpcMetrics() = default;

RpcMetrics::MethodStats* RpcMetrics::Find(std::string_view method) {
  // A handful of names of a few bytes: a linear scan beats hashing.
  for (size_t i = 0; i < num_methods_; ++i) {
    if (stats_[i].name == method) return &stats_[i];
  }
  return &stats_[num_methods_];
}

void RpcMetrics::OnRpcStart(std::string_view method) {
  Find(method)->in_flight.fetch_add(1, kRelaxed);
}

void RpcMetrics::OnRpcEnd(std::string_view method, grpc::StatusCode code,
                          double seconds, size_t request_bytes,
                          size_t response_bytes) {
  MethodStats* s = Find(method);
  s->in_flight.fetch_sub(1, kRelaxed);
  s->requests[CodeIndex(code)].fetch_add(1, kRelaxed);
  if (!(seconds >= 0)) seconds = 0;  // Also catches NaN.
  const auto& bounds = kRpcDurationBounds;
  // Prometheus buckets are "<= le": the first bound >= seconds.
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(bounds.begin(), bounds.end(), seconds) -
      bounds.begin());
  s->duration_buckets[bucket].fetch_add(1, kRelaxed);
  s->duration_nanos.fetch_add(
      static_cast<uint64_t>(std::llround(std::min(seconds, 1e9) * 1e9)),
      kRelaxed);
  s->received_bytes.fetch_add(request_bytes, kRelaxed);
  s->sent_bytes.fetch_add(response_bytes, kRelaxed);
}

void RpcMetrics::OnNamespaceRpcEnd(std::string_view ns,
                                   std::string_view method,
                                   grpc::StatusCode code) {
  if (namespaces_ == nullptr) return;
  namespaces_->OnRequestEnd(ns, static_cast<size_t>(Find(method) - &stats_[0]),
                            code);
}

std::vector<std::string> RpcMetrics::MethodLabels() const {
  std::vector<std::string> out;
  for (size_t i = 0; i <= num_methods_; ++i) out.push_back(stats_[i].name);
  return out;
}

void RpcMetrics::OnGetCoalesced() {
  coalesced_gets_.fetch_add(1, kRelaxed);
}

void RpcMetrics::OnWatchOpened(int delta) { watchers_.fetch_add(delta, kRelaxed); }
void RpcMetrics::OnWatchEvents(uint64_t n) { watch_events_.fetch_add(n, kRelaxed); }
void RpcMetrics::OnWatchCatchingUp(int delta) {
  watchers_catching_up_.fetch_add(delta, kRelaxed);
}
void RpcMetrics::OnWatchDiskRead() { watch_disk_reads_.fetch_add(1, kRelaxed); }
void RpcMetrics::OnWatchCompacted() { watch_compacted_.fetch_add(1, kRelaxed); }

std::vector<prometheus::MetricFamily> RpcMetrics::Collect() const {
  prometheus::MetricFamily requests = MakeFamily(
      "strata_rpc_requests_total",
      "KV RPCs finished, by method and gRPC status code.",
      MetricType::Counter);
  prometheus::MetricFamily duration = MakeFamily(
      "strata_rpc_duration_seconds",
      "Time from a KV RPC's arrival to its completion (status sent), by "
      "method.",
      MetricType::Histogram);
  prometheus::MetricFamily in_flight = MakeFamily(
      "strata_rpc_requests_in_flight",
      "KV RPCs started and not yet finished, by method.", MetricType::Gauge);
  prometheus::MetricFamily received = MakeFamily(
      "strata_rpc_received_bytes_total",
      "Serialized request message bytes received, by method (without gRPC "
      "and HTTP/2 framing).",
      MetricType::Counter);
  prometheus::MetricFamily sent = MakeFamily(
      "strata_rpc_sent_bytes_total",
      "Serialized response message bytes sent, by method (all messages of a "
      "stream; without gRPC and HTTP/2 framing).",
      MetricType::Counter);

  const std::vector<double> bounds(kRpcDurationBounds.begin(),
                                   kRpcDurationBounds.end());
  std::vector<uint64_t> buckets(bounds.size() + 1);
  for (size_t i = 0; i <= num_methods_; ++i) {
    const MethodStats& s = stats_[i];
    const bool other = i == num_methods_;
    bool used = !other;
    for (size_t c = 0; c < kNumCodes; ++c) {
      const uint64_t n = s.requests[c].load(kRelaxed);
      // code="OK" always exists for a known method; others once seen.
      if (n == 0 && (other || c != 0)) continue;
      used = true;
      AddCounter(&requests, static_cast<double>(n),
                 {{"code", std::string(kCodeNames[c])}, {"method", s.name}});
    }
    const int64_t flying = s.in_flight.load(kRelaxed);
    if (!used && flying == 0) continue;  // "other" never seen.
    const Labels labels = {{"method", s.name}};
    for (size_t b = 0; b < buckets.size(); ++b) {
      buckets[b] = s.duration_buckets[b].load(kRelaxed);
    }
    AddHistogram(&duration, bounds, buckets,
                 static_cast<double>(s.duration_nanos.load(kRelaxed)) / 1e9,
                 0, labels);
    AddGauge(&in_flight, static_cast<double>(flying), labels);
    AddCounter(&received, static_cast<double>(s.received_bytes.load(kRelaxed)),
               labels);
    AddCounter(&sent, static_cast<double>(s.sent_bytes.load(kRelaxed)),
               labels);
  }
  prometheus::MetricFamily coalesced = MakeFamily(
      "strata_get_coalesced_total",
      "Gets answered by a disk lookup that another Get of the same key had "
      "queued (read coalescing; each saved one engine lookup).",
      MetricType::Counter);
  AddCounter(&coalesced, static_cast<double>(coalesced_gets_.load(kRelaxed)),
             {});
  prometheus::MetricFamily watchers = MakeFamily(
      "strata_watchers", "Open Watch streams.", MetricType::Gauge);
  AddGauge(&watchers, static_cast<double>(watchers_.load(kRelaxed)), {});
  prometheus::MetricFamily catching_up = MakeFamily(
      "strata_watchers_catching_up",
      "Watch streams behind the live feed, catching up from the recent-"
      "commit cache or the change log on disk.",
      MetricType::Gauge);
  AddGauge(&catching_up,
           static_cast<double>(watchers_catching_up_.load(kRelaxed)), {});
  prometheus::MetricFamily events = MakeFamily(
      "strata_watch_events_total", "Events queued to Watch streams.",
      MetricType::Counter);
  AddCounter(&events, static_cast<double>(watch_events_.load(kRelaxed)), {});
  prometheus::MetricFamily disk_reads = MakeFamily(
      "strata_watch_disk_reads_total",
      "Times a catching-up watcher started reading the change log (the "
      "retained WAL) from disk.",
      MetricType::Counter);
  AddCounter(&disk_reads,
             static_cast<double>(watch_disk_reads_.load(kRelaxed)), {});
  prometheus::MetricFamily compacted = MakeFamily(
      "strata_watch_compacted_total",
      "Watch streams ended or refused because the changes they needed were "
      "compacted (OUT_OF_RANGE with compact_revision).",
      MetricType::Counter);
  AddCounter(&compacted, static_cast<double>(watch_compacted_.load(kRelaxed)),
             {});
  std::vector<prometheus::MetricFamily> out;
  out.reserve(11);
  out.push_back(std::move(requests));
  out.push_back(std::move(duration));
  out.push_back(std::move(in_flight));
  out.push_back(std::move(received));
  out.push_back(std::move(sent));
  out.push_back(std::move(coalesced));
  out.push_back(std::move(watchers));
  out.push_back(std::move(catching_up));
  out.push_back(std::move(events));
  out.push_back(std::move(disk_reads));
  out.push_back(std::move(compacted));
  CollectExpiry(&out);
  CollectBackups(&out);
  CollectDisk(&out);
  CollectAuthz(&out);
  return out;
}

void RpcMetrics::OnBackupStarted() { backups_running_.fetch_add(1, kRelaxed); }

void RpcMetrics::OnBackupBytes(uint64_t n) {
  backup_sent_bytes_.fetch_add(n, kRelaxed);
}

void RpcMetrics::OnBackupFinished(bool ok, double seconds) {
  backups_running_.fetch_sub(1, kRelaxed);
  if (!ok) {
    backups_failed_.fetch_add(1, kRelaxed);
    return;
  }
  backups_ok_.fetch_add(1, kRelaxed);
  last_backup_micros_.store(static_cast<uint64_t>(seconds * 1e6), kRelaxed);
  last_backup_unix_ms_.store(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now()
                                    .time_since_epoch())
                                .count()),
      kRelaxed);
}

void RpcMetrics::CollectBackups(
    std::vector<prometheus::MetricFamily>* out) const {
  out->push_back(GaugeFamily(
      "strata_backups_running", "Backup streams in progress.",
      static_cast<double>(backups_running_.load(kRelaxed))));
  out->push_back(CounterFamily(
      "strata_backup_sent_bytes_total",
      "Bytes of checkpoint file data sent by Backup streams.",
      static_cast<double>(backup_sent_bytes_.load(kRelaxed))));
  prometheus::MetricFamily backups = MakeFamily(
      "strata_backups_total",
      "Backup streams ended, by result (ok: the whole backup was sent).",
      MetricType::Counter);
  AddCounter(&backups, static_cast<double>(backups_ok_.load(kRelaxed)),
             {{"result", "ok"}});
  AddCounter(&backups, static_cast<double>(backups_failed_.load(kRelaxed)),
             {{"result", "failed"}});
  out->push_back(std::move(backups));
  out->push_back(GaugeFamily(
      "strata_backup_last_success_timestamp_seconds",
      "Unix time the last successful backup ended (0: none since start).",
      static_cast<double>(last_backup_unix_ms_.load(kRelaxed)) / 1e3));
  out->push_back(GaugeFamily(
      "strata_backup_last_duration_seconds",
      "Duration of the last successful backup, from request to last byte.",
      static_cast<double>(last_backup_micros_.load(kRelaxed)) / 1e6));
}

namespace {
constexpr std::array<std::string_view, 4> kWriteRefusalReasons = {
    "disk_reserve", "engine_out_of_space", "engine_read_only",
    "replica_disk_reserve"};
}  // namespace

void RpcMetrics::OnDiskFree(uint64_t free_bytes) {
  disk_free_bytes_.store(free_bytes, kRelaxed);
}

void RpcMetrics::OnWriteRefused(std::string_view reason) {
  for (size_t i = 0; i < kWriteRefusalReasons.size(); i++) {
    if (kWriteRefusalReasons[i] == reason) {
      write_refusals_[i].fetch_add(1, kRelaxed);
      return;
    }
  }
}

void RpcMetrics::CollectDisk(std::vector<prometheus::MetricFamily>* out) const {
  if (!disk_free_dir_.empty()) {
    absl::StatusOr<uint64_t> free = FreeDiskBytes(disk_free_dir_);
    if (free.ok()) {
      disk_free_bytes_.store(*free, kRelaxed);
    } else {
      spdlog::warn("metrics: cannot read free disk space: {}",
                   free.status().ToString());
    }
  }
  out->push_back(GaugeFamily(
      "strata_disk_free_bytes",
      "Free bytes on the data volume (statvfs, refreshed about every 100 ms).",
      static_cast<double>(disk_free_bytes_.load(kRelaxed))));
  prometheus::MetricFamily refusals = MakeFamily(
      "strata_write_refusals_total",
      "Writes refused before reaching the engine, by reason: disk_reserve "
      "(free space below --min_free_disk_bytes), engine_out_of_space (writes "
      "paused after ENOSPC), engine_read_only (after an I/O error), "
      "replica_disk_reserve (a cluster primary: an in-sync replica's free "
      "space is below its --min_free_disk_bytes).",
      MetricType::Counter);
  for (size_t i = 0; i < kWriteRefusalReasons.size(); i++) {
    AddCounter(&refusals,
               static_cast<double>(write_refusals_[i].load(kRelaxed)),
               {{"reason", std::string(kWriteRefusalReasons[i])}});
  }
  out->push_back(std::move(refusals));
}

void RpcMetrics::OnExpiryGauges(int64_t leases, int64_t ttl_keys) {
  leases_.store(leases, kRelaxed);
  ttl_keys_.store(ttl_keys, kRelaxed);
}

void RpcMetrics::OnKeysExpired(uint64_t keys, double lag_seconds) {
  expired_keys_.fetch_add(keys, kRelaxed);
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(kExpiryLagBounds.begin(), kExpiryLagBounds.end(),
                       lag_seconds) -
      kExpiryLagBounds.begin());
  lag_buckets_[bucket].fetch_add(keys, kRelaxed);
  lag_micros_.fetch_add(static_cast<uint64_t>(lag_seconds * 1e6) * keys,
                        kRelaxed);
}

void RpcMetrics::CollectExpiry(std::vector<prometheus::MetricFamily>* out) const {
  out->push_back(GaugeFamily(
      "strata_leases", "Live leases (granted, not yet expired or revoked).",
      static_cast<double>(leases_.load(kRelaxed))));
  out->push_back(GaugeFamily(
      "strata_ttl_keys",
      "Puts with a TTL whose deadline the expirer has not processed yet.",
      static_cast<double>(ttl_keys_.load(kRelaxed))));
  out->push_back(CounterFamily(
      "strata_expired_keys_total",
      "Keys deleted by the expirer because their TTL or lease expired.",
      static_cast<double>(expired_keys_.load(kRelaxed))));
  prometheus::MetricFamily lag = MakeFamily(
      "strata_expiry_lag_seconds",
      "Time from a key's deadline (its own or its lease's) to the commit of "
      "the revision that deleted it.",
      MetricType::Histogram);
  const std::vector<double> bounds(kExpiryLagBounds.begin(),
                                   kExpiryLagBounds.end());
  std::vector<uint64_t> counts(bounds.size() + 1);
  for (size_t b = 0; b < counts.size(); ++b) {
    counts[b] = lag_buckets_[b].load(kRelaxed);
  }
  AddHistogram(&lag, bounds, counts,
               static_cast<double>(lag_micros_.load(kRelaxed)) / 1e6, 0);
  out->push_back(std::move(lag));
}

}  // namespace strata::server::metrics
