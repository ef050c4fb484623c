#include "server/expiry.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_format.h"
#include "server/handlers.h"
#include "server/keyspace.h"
#include "server/namespace_catalog.h"
#include "server/typed_values.h"
#include "spdlog/spdlog.h"

namespace strata::server {
namespace {

// Most revisions of TTL deletions in one expirer round, so a backlog does
// not starve lease expiry (the next round goes on at once).
constexpr int kMaxTtlRevisionsPerRound = 16;
// Most leases ended in one round.
constexpr size_t kMaxLeasesPerRound = 1000;

void PutBe64(std::string* dst, uint64_t v) {
  for (int i = 7; i >= 0; --i) dst->push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t GetBe64(std::string_view s) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}

std::string Be64Key(std::string_view tag, uint64_t v) {
  std::string k(tag);
  PutBe64(&k, v);
  return SystemKey(k);
}

absl::Status LeaseNotFound(int64_t id) {
  return absl::NotFoundError(absl::StrFormat(
      "lease %d not found (never granted, revoked or expired)", id));
}

bool HasPrefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Whether s is absent-or-expired for a commit view's Get; other errors are
// real.
bool IsAbsent(const absl::Status& s) { return absl::IsNotFound(s); }

}  // namespace

absl::Status ValidateExpiryOptions(const ExpiryOptions& o) {
  if (o.max_ttl_seconds < 1 ||
      o.max_ttl_seconds > std::numeric_limits<int64_t>::max() / 1000 / 4) {
    return absl::InvalidArgumentError(
        absl::StrFormat("--max_ttl must be 1 s .. ~73 million years; got %d s",
                        o.max_ttl_seconds));
  }
  if (o.max_leases < 1 || o.max_keys_per_lease < 1) {
    return absl::InvalidArgumentError(
        "--max_leases and --max_keys_per_lease must be >= 1");
  }
  if (o.interval < absl::Milliseconds(1) || o.keys_per_revision < 1) {
    return absl::InvalidArgumentError(
        "--expiry_interval must be >= 1ms and keys per revision >= 1");
  }
  return absl::OkStatus();
}

std::string LeaseRecordKey(int64_t id) {
  return Be64Key("lease/", static_cast<uint64_t>(id));
}
std::string LeaseKeyIndexPrefix(int64_t id) {
  return Be64Key("leasekey/", static_cast<uint64_t>(id));
}
std::string TtlIndexPrefix() { return SystemKey("ttl/"); }
std::string TtlIndexKey(uint64_t deadline_ms, std::string_view stored_key) {
  std::string k = Be64Key("ttl/", deadline_ms);
  k.append(stored_key.data(), stored_key.size());
  return k;
}

std::string EncodeLeaseRecord(int64_t ttl_seconds, uint64_t deadline_ms) {
  std::string v(1, '\x01');
  PutBe64(&v, static_cast<uint64_t>(ttl_seconds));
  PutBe64(&v, deadline_ms);
  return v;
}

absl::Status DecodeLeaseRecord(std::string_view value, int64_t* ttl_seconds,
                               uint64_t* deadline_ms) {
  if (value.size() != 17 || value[0] != '\x01') {
    return absl::DataLossError(absl::StrFormat(
        "lease record of %d bytes is not a version-1 record (17 bytes)",
        value.size()));
  }
  *ttl_seconds = static_cast<int64_t>(GetBe64(value.substr(1)));
  *deadline_ms = GetBe64(value.substr(9));
  return absl::OkStatus();
}

Expiry::Expiry(storage::DB* db, const Limits& limits, ExpiryOptions options,
               RpcObserver* observer)
    : db_(db),
      limits_(limits),
      options_(std::move(options)),
      observer_(observer != nullptr ? observer : NoopRpcObserver()),
      env_(options_.env != nullptr ? options_.env : storage::Env::Default()),
      leases_(options_.leases != nullptr ? options_.leases
                                         : std::make_shared<LeaseTable>()) {}

Expiry::~Expiry() { Stop(); }

absl::Status Expiry::Start() {
  // Rebuild the table from the records, with each lease's key count.
  std::map<int64_t, LeaseTable::Lease> found;
  {
    std::unique_ptr<storage::Iterator> it =
        db_->NewIterator(storage::ReadOptions());
    const std::string lease_prefix = SystemKey("lease/");
    for (it->Seek(lease_prefix);
         it->Valid() && HasPrefix(it->key(), lease_prefix); it->Next()) {
      if (it->key().size() != lease_prefix.size() + 8) {
        return absl::DataLossError("malformed lease record key");
      }
      LeaseTable::Lease l;
      l.id = static_cast<int64_t>(GetBe64(it->key().substr(lease_prefix.size())));
      if (absl::Status s =
              DecodeLeaseRecord(it->value(), &l.ttl_seconds, &l.deadline_ms);
          !s.ok()) {
        return absl::DataLossError(
            absl::StrFormat("lease %d: %s", l.id, s.message()));
      }
      found[l.id] = l;
    }
    const std::string index_prefix = SystemKey("leasekey/");
    for (it->Seek(index_prefix);
         it->Valid() && HasPrefix(it->key(), index_prefix); it->Next()) {
      if (it->key().size() < index_prefix.size() + 8) continue;
      auto l = found.find(
          static_cast<int64_t>(GetBe64(it->key().substr(index_prefix.size()))));
      if (l != found.end()) l->second.keys++;
    }
    int64_t ttl_entries = 0;
    const std::string ttl_prefix = TtlIndexPrefix();
    for (it->Seek(ttl_prefix);
         it->Valid() && HasPrefix(it->key(), ttl_prefix); it->Next()) {
      ttl_entries++;
    }
    if (!it->status().ok()) return it->status();
    ttl_keys_ = ttl_entries;
  }
  for (const auto& [id, lease] : found) leases_->Put(lease);
  if (absl::Status s = ExtendLeasesAtStart(); !s.ok()) return s;
  ReportGauges();
  if (options_.background) {
    thread_ = std::thread([this] { Loop(); });
  }
  return absl::OkStatus();
}

absl::Status Expiry::ExtendLeasesAtStart() {
  // A lease still live when the server starts gets its full TTL again from
  // now (so its remaining time is at least what it was when the server
  // stopped), durably: a second restart must not find the old deadline. A
  // lease whose deadline passed (before the stop or while the server was
  // down) stays expired: the expirer ends it at once.
  if (leases_->size() == 0) return absl::OkStatus();
  storage::WriteBatch batch;
  batch.SetCommitFunction([this](storage::CommitView* view,
                                 storage::WriteBatch* b) -> absl::Status {
    const uint64_t now = view->now_unix_ms();
    for (int64_t id : leases_->Ids()) {
      std::optional<LeaseTable::Lease> l = leases_->Find(id);
      if (!l || l->deadline_ms <= now) continue;
      l->deadline_ms = std::max<uint64_t>(
          l->deadline_ms, now + static_cast<uint64_t>(l->ttl_seconds) * 1000);
      b->Put(LeaseRecordKey(id), EncodeLeaseRecord(l->ttl_seconds, l->deadline_ms));
      leases_->Put(*l);
    }
    return absl::OkStatus();
  });
  return db_->Write(storage::WriteOptions(), &batch).status();
}

void Expiry::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Expiry::Wake() {
  {
    std::lock_guard<std::mutex> l(mu_);
    woken_ = true;
  }
  wake_.notify_all();
}

absl::Status Expiry::ValidateTtl(int64_t ttl_ms,
                                 std::string_view where) const {
  if (ttl_ms < 0 || ttl_ms > options_.max_ttl_seconds * 1000) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%sttl_ms %d is out of range: 0 (none) .. %d (--max_ttl)", where,
        ttl_ms, options_.max_ttl_seconds * 1000));
  }
  return absl::OkStatus();
}

void Expiry::AppendTtlIndex(storage::WriteBatch* batch,
                            std::string_view stored_key,
                            uint64_t deadline_unix_ms) {
  batch->Put(TtlIndexKey(deadline_unix_ms, stored_key), "");
  ttl_keys_++;
}

absl::Status Expiry::ValidatePut(const v1::PutRequest& put,
                                 std::string_view where) const {
  if (absl::Status s = ValidateTtl(put.ttl_ms(), where); !s.ok()) return s;
  if (put.lease() < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%slease %d is not a lease id (ids are > 0; 0 = none)", where,
        put.lease()));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Expiry::PruneLeaseIndex(storage::CommitView* view,
                                                storage::WriteBatch* batch,
                                                int64_t lease) {
  const std::string prefix = LeaseKeyIndexPrefix(lease);
  std::unique_ptr<storage::Iterator> it = view->NewIterator();
  int64_t remaining = 0;
  int64_t dropped = 0;
  std::string value;
  storage::KeyMetadata meta;
  for (it->Seek(prefix); it->Valid() && HasPrefix(it->key(), prefix);
       it->Next()) {
    const std::string_view stored = it->key().substr(prefix.size());
    absl::Status s = view->Get(stored, &value, &meta);
    if (s.ok() && meta.attributes.lease == static_cast<uint64_t>(lease)) {
      remaining++;
      continue;
    }
    if (!s.ok() && !IsAbsent(s)) return s;
    batch->Delete(it->key());
    dropped++;
  }
  if (!it->status().ok()) return it->status();
  leases_->AddKeys(lease, -dropped);
  return remaining;
}

absl::Status Expiry::AppendPut(storage::CommitView* view,
                               storage::WriteBatch* batch,
                               std::string_view stored_key,
                               std::string_view value, int value_type,
                               int64_t ttl_ms, int64_t lease) {
  const uint64_t now = view->now_unix_ms();
  storage::PutAttributes a;
  // The request was checked before the write was queued; a typed value is
  // stored as the plain put stores it (normalized, with its type).
  std::string normalized;
  absl::StatusOr<std::string_view> typed =
      PrepareTypedPut(value_type, value, &normalized, &a);
  if (!typed.ok()) return typed.status();
  value = *typed;
  if (ttl_ms > 0) a.expire_at_unix_ms = now + static_cast<uint64_t>(ttl_ms);
  if (lease != 0) {
    std::optional<LeaseTable::Lease> l = leases_->Find(lease);
    if (!l || l->deadline_ms <= now) return LeaseNotFound(lease);
    a.lease = static_cast<uint64_t>(lease);
    std::string index = LeaseKeyIndexPrefix(lease);
    index.append(stored_key.data(), stored_key.size());
    std::string unused;
    storage::KeyMetadata meta;
    absl::Status s = view->Get(index, &unused, &meta);
    if (!s.ok()) {
      if (!IsAbsent(s)) return s;
      int64_t keys = l->keys;
      if (keys >= options_.max_keys_per_lease) {
        absl::StatusOr<int64_t> left = PruneLeaseIndex(view, batch, lease);
        if (!left.ok()) return left.status();
        keys = *left;
      }
      if (keys >= options_.max_keys_per_lease) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "lease %d already has %d keys (--max_keys_per_lease); nothing "
            "was written",
            lease, keys));
      }
      batch->Put(index, "");
      leases_->AddKeys(lease, 1);
    }
  }
  batch->Put(stored_key, value, a);
  if (a.expire_at_unix_ms != 0) {
    AppendTtlIndex(batch, stored_key, a.expire_at_unix_ms);
  }
  return absl::OkStatus();
}

absl::StatusOr<storage::WriteBatch> Expiry::PutBatch(
    const v1::PutRequest& request, const KeyspaceView& ns) {
  if (absl::Status s = PutToBatch(request, limits_).status(); !s.ok()) return s;
  if (absl::Status s = ValidatePut(request); !s.ok()) return s;
  storage::WriteBatch batch;
  batch.SetCommitFunction([this, &request, ns](storage::CommitView* view,
                                               storage::WriteBatch* b) {
    return AppendPut(view, b, ns.Encode(request.key()),
                     request.value(), request.type(), request.ttl_ms(),
                     request.lease());
  });
  return batch;
}

absl::StatusOr<storage::WriteBatch> Expiry::WriteBatchFor(
    const v1::WriteRequest& request, const NamespaceViews& ns) {
  if (absl::Status s = WriteToBatch(request, limits_).status(); !s.ok()) {
    return s;
  }
  for (int i = 0; i < request.mutations_size(); ++i) {
    const v1::Mutation& m = request.mutations(i);
    if (!m.has_put()) continue;
    if (absl::Status s =
            ValidatePut(m.put(), absl::StrFormat("mutation %d: ", i));
        !s.ok()) {
      return s;
    }
  }
  // Every mutation goes through the commit function, in order, so later
  // mutations of a key still win.
  storage::WriteBatch batch;
  batch.SetCommitFunction([this, &request, ns](storage::CommitView* view,
                                               storage::WriteBatch* b) {
    for (const v1::Mutation& m : request.mutations()) {
      if (m.has_delete_()) {
        b->Delete(ns.For(m.delete_().namespace_()).Encode(m.delete_().key()));
        continue;
      }
      const v1::PutRequest& p = m.put();
      if (absl::Status s =
              AppendPut(view, b, ns.For(p.namespace_()).Encode(p.key()),
                        p.value(), p.type(), p.ttl_ms(), p.lease());
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  });
  return batch;
}

absl::StatusOr<storage::WriteBatch> Expiry::GrantBatch(
    const v1::LeaseGrantRequest& request, v1::LeaseGrantResponse* response) {
  const int64_t ttl = request.ttl_seconds();
  if (ttl < 1 || ttl > options_.max_ttl_seconds) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "lease ttl_seconds %d is out of range: 1 .. %d (--max_ttl)", ttl,
        options_.max_ttl_seconds));
  }
  if (request.id() < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "lease id %d is negative (0 = the server picks one)", request.id()));
  }
  const int64_t wanted = request.id();
  storage::WriteBatch batch;
  batch.SetCommitFunction([this, ttl, wanted, response](
                              storage::CommitView* view,
                              storage::WriteBatch* b) -> absl::Status {
    int64_t id = wanted;
    if (id != 0 && leases_->Find(id)) {
      return absl::AlreadyExistsError(
          absl::StrFormat("lease %d already exists", id));
    }
    if (static_cast<int64_t>(leases_->size()) >= options_.max_leases) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%d leases are live (--max_leases); revoke some first",
          options_.max_leases));
    }
    if (id == 0) {
      // Random ids: an id is never handed out twice in practice, even across
      // restarts, without a durable counter. Below 2^53, so JavaScript
      // numbers hold them exactly.
      absl::BitGen gen;
      do {
        id = absl::Uniform<int64_t>(gen, 1, int64_t{1} << 53);
      } while (leases_->Find(id));
    }
    const uint64_t deadline =
        view->now_unix_ms() + static_cast<uint64_t>(ttl) * 1000;
    b->Put(LeaseRecordKey(id), EncodeLeaseRecord(ttl, deadline));
    leases_->Put({.id = id, .ttl_seconds = ttl, .deadline_ms = deadline, .keys = 0});
    response->set_id(id);
    response->set_ttl_seconds(ttl);
    Wake();  // Its deadline may be the earliest.
    return absl::OkStatus();
  });
  return batch;
}

storage::CommitFunction Expiry::EndLeaseFunction(int64_t id, bool only_if_due,
                                                 int64_t* deleted) {
  return [this, id, only_if_due, deleted](
             storage::CommitView* view, storage::WriteBatch* b) -> absl::Status {
    std::optional<LeaseTable::Lease> l = leases_->Find(id);
    if (!l) return LeaseNotFound(id);
    const uint64_t now = view->now_unix_ms();
    if (only_if_due && l->deadline_ms > now) {
      // Kept alive since the expirer looked.
      return absl::FailedPreconditionError("lease is not due");
    }
    const std::string prefix = LeaseKeyIndexPrefix(id);
    std::unique_ptr<storage::Iterator> it = view->NewIterator();
    std::string value;
    storage::KeyMetadata meta;
    int64_t n = 0;
    for (it->Seek(prefix); it->Valid() && HasPrefix(it->key(), prefix);
         it->Next()) {
      const std::string_view stored = it->key().substr(prefix.size());
      absl::Status s = view->Get(stored, &value, &meta);
      if (s.ok()) {
        // Still attached (a revoke: the lease is live until this commit).
        if (meta.attributes.lease == static_cast<uint64_t>(id)) {
          b->Delete(stored);
          n++;
        }
      } else if (IsAbsent(s)) {
        // Absent or expired (by this lease's deadline, or its own): a
        // delete writes the tombstone of an expired key and nothing for an
        // absent one.
        b->Delete(stored);
        n++;
      } else {
        return s;
      }
      b->Delete(it->key());
    }
    if (!it->status().ok()) return it->status();
    b->Delete(LeaseRecordKey(id));
    leases_->End(id, now);
    if (deleted != nullptr) *deleted = n;
    return absl::OkStatus();
  };
}

absl::StatusOr<storage::WriteBatch> Expiry::RevokeBatch(int64_t id) {
  if (id <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("lease id %d is not a lease id (ids are > 0)", id));
  }
  storage::WriteBatch batch;
  batch.SetCommitFunction(EndLeaseFunction(id, /*only_if_due=*/false, nullptr));
  // The lease's keys in named namespaces leave their usage records.
  NamespaceCatalog::AccountUsage(&batch);
  return batch;
}

absl::StatusOr<storage::WriteBatch> Expiry::KeepAliveBatch(
    int64_t id, v1::LeaseKeepAliveResponse* response) {
  if (id <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("lease id %d is not a lease id (ids are > 0)", id));
  }
  storage::WriteBatch batch;
  batch.SetCommitFunction([this, id, response](
                              storage::CommitView* view,
                              storage::WriteBatch* b) -> absl::Status {
    std::optional<LeaseTable::Lease> l = leases_->Find(id);
    const uint64_t now = view->now_unix_ms();
    if (!l || l->deadline_ms <= now) return LeaseNotFound(id);
    l->deadline_ms = std::max<uint64_t>(
        l->deadline_ms, now + static_cast<uint64_t>(l->ttl_seconds) * 1000);
    b->Put(LeaseRecordKey(id), EncodeLeaseRecord(l->ttl_seconds, l->deadline_ms));
    leases_->Put(*l);
    response->set_id(id);
    response->set_ttl_seconds(l->ttl_seconds);
    return absl::OkStatus();
  });
  return batch;
}

absl::Status Expiry::TimeToLive(const v1::LeaseTimeToLiveRequest& request,
                                v1::LeaseTimeToLiveResponse* response) {
  const int64_t id = request.id();
  if (id <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("lease id %d is not a lease id (ids are > 0)", id));
  }
  const storage::Snapshot* snapshot = db_->GetSnapshot();
  const uint64_t now = NowUnixMs();
  std::optional<LeaseTable::Lease> l = leases_->Find(id);
  absl::Status status;
  if (!l || l->deadline_ms <= now) {
    status = LeaseNotFound(id);
  } else {
    response->mutable_header()->set_revision(ToWire(snapshot->revision()));
    response->set_id(id);
    response->set_ttl_seconds(
        static_cast<int64_t>((l->deadline_ms - now + 999) / 1000));
    response->set_granted_ttl(l->ttl_seconds);
  }
  if (status.ok() && request.keys()) {
    storage::ReadOptions ro;
    ro.snapshot = snapshot;
    const std::string prefix = LeaseKeyIndexPrefix(id);
    std::unique_ptr<storage::Iterator> it = db_->NewIterator(ro);
    const KeyspaceView ns;
    std::string user_key;
    for (it->Seek(prefix); it->Valid() && HasPrefix(it->key(), prefix);
         it->Next()) {
      const std::string_view stored = it->key().substr(prefix.size());
      absl::StatusOr<storage::GetResult> r = db_->GetWithMetadata(ro, stored);
      if (!r.ok()) {
        status = r.status();
        break;
      }
      if (r->found && r->metadata.attributes.lease == static_cast<uint64_t>(id) &&
          ns.Decode(stored, &user_key)) {
        response->add_keys(user_key);
      }
    }
    if (status.ok()) status = it->status();
  }
  db_->ReleaseSnapshot(snapshot);
  if (!status.ok()) response->Clear();
  return status;
}

void Expiry::Leases(v1::LeaseLeasesResponse* response) {
  response->mutable_header()->set_revision(ToWire(db_->CurrentRevision()));
  const uint64_t now = NowUnixMs();
  for (int64_t id : leases_->Ids()) {
    std::optional<LeaseTable::Lease> l = leases_->Find(id);
    if (l && l->deadline_ms > now) response->add_ids(id);
  }
}

absl::StatusOr<int64_t> Expiry::ExpireTtlKeys() {
  // No TTL index entries (counted at startup, then kept as puts add them
  // and rounds remove them): nothing to look at, so no write at all.
  if (ttl_keys_.load() <= 0) return 0;
  int64_t total = 0;
  for (int round = 0; round < kMaxTtlRevisionsPerRound; ++round) {
    struct Out {
      int64_t entries = 0;
      std::vector<uint64_t> lags_ms;  // One per deleted key.
    } out;
    const size_t max_keys = static_cast<size_t>(options_.keys_per_revision);
    storage::WriteBatch batch;
    batch.SetCommitFunction([&out, max_keys](storage::CommitView* view,
                                             storage::WriteBatch* b) {
      out = Out();
      const uint64_t now = view->now_unix_ms();
      const std::string prefix = TtlIndexPrefix();
      const std::string end = TtlIndexKey(now + 1, "");
      std::unique_ptr<storage::Iterator> it = view->NewIterator();
      std::string value;
      storage::KeyMetadata meta;
      for (it->Seek(prefix);
           it->Valid() && it->key() < end && out.lags_ms.size() < max_keys;
           it->Next()) {
        const std::string_view entry = it->key();
        if (entry.size() < prefix.size() + 8) {  // Not ours: drop it.
          b->Delete(entry);
          continue;
        }
        const uint64_t deadline = GetBe64(entry.substr(prefix.size()));
        const std::string_view stored = entry.substr(prefix.size() + 8);
        absl::Status s = view->Get(stored, &value, &meta);
        if (IsAbsent(s)) {
          // Expired (or deleted since): the tombstone makes the expiry a
          // revision watchers see; an absent key writes nothing.
          b->Delete(stored);
          out.lags_ms.push_back(now - std::min(now, deadline));
        } else if (!s.ok()) {
          return s;
        }
        // Found: written again since with a later deadline or none; its own
        // index entry (if any) covers it.
        b->Delete(entry);
        out.entries++;
      }
      return it->status();
    });
    // Expired keys of named namespaces leave their usage records.
    NamespaceCatalog::AccountUsage(&batch);
    absl::StatusOr<storage::Revision> r =
        db_->Write(storage::WriteOptions(), &batch);
    if (!r.ok()) return r.status();
    ttl_keys_ -= out.entries;
    for (uint64_t lag : out.lags_ms) {
      observer_->OnKeysExpired(1, static_cast<double>(lag) / 1000.0);
    }
    total += static_cast<int64_t>(out.lags_ms.size());
    if (out.entries < options_.keys_per_revision) break;
  }
  return total;
}

absl::StatusOr<ExpiryRound> Expiry::RunOnce() {
  ExpiryRound round;
  for (int64_t id : leases_->Due(NowUnixMs(), kMaxLeasesPerRound)) {
    int64_t deleted = 0;
    uint64_t lag_ms = 0;
    storage::CommitFunction end =
        EndLeaseFunction(id, /*only_if_due=*/true, &deleted);
    storage::WriteBatch batch;
    batch.SetCommitFunction([this, id, end, &lag_ms](storage::CommitView* view,
                                                     storage::WriteBatch* b) {
      std::optional<LeaseTable::Lease> l = leases_->Find(id);
      const uint64_t now = view->now_unix_ms();
      if (l) lag_ms = now - std::min(now, l->deadline_ms);
      return end(view, b);
    });
    NamespaceCatalog::AccountUsage(&batch);
    absl::StatusOr<storage::Revision> r =
        db_->Write(storage::WriteOptions(), &batch);
    if (absl::IsNotFound(r.status()) ||
        absl::IsFailedPrecondition(r.status())) {
      continue;  // Revoked or kept alive meanwhile.
    }
    if (!r.ok()) return r.status();
    round.leases_expired++;
    round.lease_keys_deleted += deleted;
    if (deleted > 0) {
      observer_->OnKeysExpired(static_cast<uint64_t>(deleted),
                               static_cast<double>(lag_ms) / 1000.0);
    }
  }
  absl::StatusOr<int64_t> ttl = ExpireTtlKeys();
  if (!ttl.ok()) return ttl.status();
  round.ttl_keys_deleted = *ttl;
  ReportGauges();
  return round;
}

void Expiry::ReportGauges() {
  observer_->OnExpiryGauges(static_cast<int64_t>(leases_->size()),
                            std::max<int64_t>(0, ttl_keys_.load()));
}

void Expiry::Loop() {
  const int64_t interval_ms = absl::ToInt64Milliseconds(options_.interval);
  while (true) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
      woken_ = false;
    }
    absl::StatusOr<ExpiryRound> round = RunOnce();
    if (!round.ok()) {
      spdlog::warn("expiry: round failed, retrying in {} ms: {}", interval_ms,
                   round.status().ToString());
    }
    // Sleep until the next known deadline (a lease's, or the first TTL
    // index entry's), at most one interval: deadlines are judged by the
    // DB's clock, which a test may move without waking anyone.
    const uint64_t now = NowUnixMs();
    uint64_t next = now + static_cast<uint64_t>(interval_ms);
    if (std::optional<uint64_t> lease = leases_->NextDeadline()) {
      next = std::min(next, *lease);
    }
    if (round.ok()) {
      std::unique_ptr<storage::Iterator> it =
          db_->NewIterator(storage::ReadOptions());
      const std::string prefix = TtlIndexPrefix();
      it->Seek(prefix);
      if (it->Valid() && HasPrefix(it->key(), prefix) &&
          it->key().size() >= prefix.size() + 8) {
        next = std::min(next, GetBe64(it->key().substr(prefix.size())));
      }
    }
    const int64_t wait_ms =
        next > now ? static_cast<int64_t>(next - now) : 0;
    if (wait_ms == 0 && round.ok()) continue;  // More is due now.
    std::unique_lock<std::mutex> l(mu_);
    wake_.wait_for(l, std::chrono::milliseconds(std::max<int64_t>(wait_ms, 1)),
                   [this] { return stop_ || woken_; });
  }
}

}  // namespace strata::server
