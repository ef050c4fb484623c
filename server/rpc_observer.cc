#include "server/rpc_observer.h"

namespace strata::server {

RpcObserver* NoopRpcObserver() {
  static RpcObserver* const kNoop = new RpcObserver();
  return kNoop;
}

}  // namespace strata::server
