#ifndef STRATA_CLIENT_CLUSTER_CLI_H_
#define STRATA_CLIENT_CLUSTER_CLI_H_

// `strata cluster init|status|add-node|remove-node|drain`: the cluster's
// operator commands (docs/cluster.md). They talk to etcd (--etcd), not to a
// Strata node: the cluster's configuration lives there.

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "client/strata_client.h"

namespace strata::cli {

// The usage text of the cluster commands (for `strata help`).
extern const char kClusterUsage[];

// Runs `strata cluster ARGS...` with each etcd call's deadline `timeout`.
// `status` also asks each range's primary (GetClusterStatus, dialed with
// `node_options`: the CLI's --tls* settings) for its lag per replica.
// Returns the exit code: 0 ok, 2 usage error, 3 etcd error or refusal
// ("strata: CODE: message" on stderr).
int RunClusterCommand(const std::vector<std::string>& args,
                      absl::Duration timeout,
                      const ClientOptions& node_options);

}  // namespace strata::cli

#endif  // STRATA_CLIENT_CLUSTER_CLI_H_
