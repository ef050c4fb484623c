#ifndef STRATA_COMMON_PEM_FILE_H_
#define STRATA_COMMON_PEM_FILE_H_

// Reading a PEM file named by a command-line flag, shared by the server's
// TLS settings (server/credentials.h), the client library's
// (client/strata_client.h) and the etcd client's (cluster/etcd_client.h),
// so that a bad file is reported the same way everywhere.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace strata {

// The largest PEM file read: a bundle of a few hundred certificates is well
// under it, and a path pointing at something else (a device, a log) fails
// quickly instead of being read whole.
inline constexpr size_t kMaxPemFileBytes = 4 << 20;

// Returns the contents of the file at `path`, which the flag `flag` (for
// example "--tls_cert") names. The file must hold at least one PEM block
// (a "-----BEGIN " line); what kind of block is left to the caller's parser.
// Errors: InvalidArgument "<flag> file <path>: <why>", where <why> is the
// errno text when it cannot be opened, "read error", "larger than 4 MiB;
// not a PEM file", or "no PEM block in it". Thread-safe; blocks on the read.
absl::StatusOr<std::string> ReadPemFile(std::string_view flag,
                                        const std::string& path);

}  // namespace strata

#endif  // STRATA_COMMON_PEM_FILE_H_
