// The expiry part of the strata.v1.KV service: the lease RPCs (their logic
// is in server/expiry.h; here they are wired to the calls, the engine and
// the blocking pool).

#include "server/kv_service.h"

namespace strata::server {

void KvService::RegisterExpiryMethods(
    RpcRegistry::ServiceMethods<KvService, Service>* kv) {
  kv->Register(&Service::RequestLeaseGrant, &KvService::HandleLeaseGrant);
  kv->Register(&Service::RequestLeaseRevoke, &KvService::HandleLeaseRevoke);
  kv->Register(&Service::RequestLeaseKeepAlive,
              &KvService::HandleLeaseKeepAlive);
  kv->Register(&Service::RequestLeaseTimeToLive,
              &KvService::HandleLeaseTimeToLive);
  kv->Register(&Service::RequestLeaseLeases, &KvService::HandleLeaseLeases);
}

absl::Status KvService::StartExpiry() {
  // The catalog first: requests resolve their namespace from it.
  if (absl::Status s = catalog_.Load(); !s.ok()) return s;
  return expiry_.Start();
}

bool KvService::HasExpiry(const v1::WriteRequest& request) {
  for (const v1::Mutation& m : request.mutations()) {
    if (m.has_put() && (m.put().ttl_ms() != 0 || m.put().lease() != 0)) {
      return true;
    }
  }
  return false;
}

template <class Call>
void KvService::SubmitLeaseWrite(Call* call,
                                 absl::StatusOr<storage::WriteBatch> batch) {
  if (!batch.ok()) {
    call->Finish(batch.status());
    return;
  }
  // The commit function fills the response; the callback adds the
  // revision (or clears it after a failure) and finishes the call.
  db_->WriteAsync(WriteOptionsFor(call), *std::move(batch),
                  [call](absl::StatusOr<storage::Revision> r) {
                    if (r.ok()) {
                      call->mutable_response()->mutable_header()->set_revision(
                          ToWire(*r));
                    } else {
                      call->mutable_response()->Clear();
                    }
                    call->Finish(r.status());
                  });
}

void KvService::HandleLeaseGrant(LeaseGrantCall* call) {
  if (RefusedByWriteGate(call)) return;
  SubmitLeaseWrite(
      call, expiry_.GrantBatch(call->request(), call->mutable_response()));
}

void KvService::HandleLeaseRevoke(LeaseRevokeCall* call) {
  SubmitLeaseWrite(call, expiry_.RevokeBatch(call->request().id()));
}

void KvService::HandleLeaseKeepAlive(LeaseKeepAliveCall* call) {
  SubmitLeaseWrite(call, expiry_.KeepAliveBatch(call->request().id(),
                                                call->mutable_response()));
}

void KvService::HandleLeaseTimeToLive(LeaseTimeToLiveCall* call) {
  // Listing the keys reads them: on the blocking pool.
  auto read = [this, call] {
    call->Finish(expiry_.TimeToLive(call->request(), call->mutable_response()));
  };
  if (!pool_->Schedule(read)) read();  // Pool stopped: only during shutdown.
}

void KvService::HandleLeaseLeases(LeaseLeasesCall* call) {
  expiry_.Leases(call->mutable_response());
  call->Finish(absl::OkStatus());
}

}  // namespace strata::server
