#ifndef STRATA_CLIENT_CLIENT_CHANNEL_H_
#define STRATA_CLIENT_CLIENT_CHANNEL_H_

// The gRPC channel a Strata client uses, shared by the library and the
// `strata` CLI's cluster commands (which dial each range's primary).
// Internal: not installed with the library's headers.

#include <memory>
#include <string>

#include "client/strata_client.h"
#include "grpcpp/channel.h"

namespace strata::internal {

// A channel to `target` (host:port) with the client's settings: TLS from
// options.tls (its CA, client certificate and server-name override) or
// plaintext, no limit on received message size, and reconnects within
// 100 ms to 2 s. With own_subchannels its connections are its own: gRPC
// otherwise shares them (and their reconnect backoff) between the channels
// of a process. Connects lazily; never fails (calls on it do).
std::shared_ptr<grpc::Channel> MakeClientChannel(const std::string& target,
                                                 const ClientOptions& options,
                                                 bool own_subchannels);

}  // namespace strata::internal

#endif  // STRATA_CLIENT_CLIENT_CHANNEL_H_
