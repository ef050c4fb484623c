#ifndef STRATA_SERVER_AUTHZ_POLICY_H_
#define STRATA_SERVER_AUTHZ_POLICY_H_

// The authorization policy (--authz_policy, docs/security.md
// "Authorization"): which client identities may read, write or administer
// which namespaces. A pure value: parsed from JSON, asked Allows(); no I/O
// beyond LoadAuthzPolicyFile, no gRPC types. Enforcement (which RPC needs
// what, the identity of a connection, reloads, metrics) is authz.h's.
//
// Format (JSON, version 1):
//
//   {"version": 1,
//    "grants": [
//      {"identity": "spiffe://example.org/svc-a",
//       "namespaces": ["team/a", "team/b/*", ""],
//       "permissions": ["read", "write"]}]}
//
// identity     "CN=<name>": the client certificate's subject common name
//              is exactly <name>. "*": any client with a verified
//              certificate. Anything else: one of the certificate's
//              subjectAltName values (URI such as a SPIFFE id, DNS name,
//              ...) is exactly this string.
// namespaces   "" the default namespace; "name" exactly that namespace;
//              "prefix/*" every namespace whose name starts with
//              "prefix/" (at any depth; not "prefix" itself); "*" every
//              namespace including the default one, and the node as a
//              whole (what Compact and Backup need).
// permissions  "read", "write", "admin"; independent (admin does not imply
//              read or write).
//
// Unknown members, a wrong type, an empty list, a malformed namespace
// pattern or an unknown permission make the whole file invalid: a typo
// must not silently grant or deny.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace strata::server {

// What a grant allows. Part of the policy format's vocabulary ("read",
// "write", "admin").
enum class Permission : uint8_t { kRead = 0, kWrite = 1, kAdmin = 2 };
inline constexpr int kNumPermissions = 3;
// "read", "write", "admin" (static storage).
std::string_view PermissionName(Permission p);

// The identities a client's certificate proves, as the policy matches
// them.
struct ClientIdentity {
  // subjectAltName values (URIs, DNS names, ...), as gRPC reports them.
  std::vector<std::string> sans;
  // The subject's common name; empty if none.
  std::string common_name;
  // Whether the client presented a verified certificate at all (false on
  // a plaintext or server-only TLS connection: then nothing is allowed).
  bool authenticated = false;
  // The name a refusal gives: the first SAN, else "CN=<common name>",
  // else "(no client certificate)".
  std::string DisplayName() const;
};

// A parsed policy. Immutable; safe to share between threads.
class AuthzPolicy {
 public:
  // The pseudo-namespace of node-wide operations (Compact, Backup): only a
  // grant for "*" covers it.
  static constexpr std::string_view kWholeNode = "*";

  // Parses the JSON text. InvalidArgument naming the grant and member that
  // is wrong (e.g. "grants[2].permissions[0]: unknown permission \"wrte\"").
  static absl::StatusOr<AuthzPolicy> Parse(std::string_view json);

  // Whether `who` holds `permission` on namespace `ns` ("" = the default
  // namespace; kWholeNode = the node as a whole).
  bool Allows(const ClientIdentity& who, std::string_view ns,
              Permission permission) const;
  // Whether `who` holds any permission on `ns` (ListNamespaces shows only
  // such namespaces).
  bool AnyGrant(const ClientIdentity& who, std::string_view ns) const;

  size_t num_grants() const { return grants_.size(); }

 private:
  struct Grant {
    std::string identity;  // As written ("CN=...", "*", or a SAN).
    std::vector<std::string> namespaces;  // Patterns as written.
    uint8_t permissions = 0;              // Bit 1 << Permission.
  };
  static bool IdentityMatches(const std::string& pattern,
                              const ClientIdentity& who);
  static bool NamespaceMatches(std::string_view pattern, std::string_view ns);
  // The permission bits `who` holds on `ns`.
  uint8_t PermissionsOn(const ClientIdentity& who, std::string_view ns) const;

  std::vector<Grant> grants_;
};

// The bytes of a policy file. InvalidArgument naming the flag, the path and
// the errno text if it cannot be read. Blocking file I/O; thread-safe.
absl::StatusOr<std::string> ReadAuthzPolicyFile(const std::string& path);

// Parses `bytes` read from `path`. InvalidArgument naming the flag, the
// path and what is wrong (AuthzPolicy::Parse) if it is not a valid policy.
// Thread-safe.
absl::StatusOr<AuthzPolicy> ParseAuthzPolicyFile(const std::string& path,
                                                 const std::string& bytes);

// Reads and parses a policy file (the two above). InvalidArgument (with the
// path) if it cannot be read or is not a valid policy. Blocking file I/O;
// thread-safe.
absl::StatusOr<AuthzPolicy> LoadAuthzPolicyFile(const std::string& path);

}  // namespace strata::server

#endif  // STRATA_SERVER_AUTHZ_POLICY_H_
