#include "server/authz_policy.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "server/namespace_catalog.h"

namespace strata::server {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kCnPrefix = "CN=";

uint8_t Bit(Permission p) { return static_cast<uint8_t>(1u << static_cast<int>(p)); }

absl::Status Invalid(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// Checks that `object` has only the `allowed` members.
absl::Status OnlyMembers(const Json& object, const std::string& where,
                         std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : object.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) return Invalid(where, "unknown member \"" + key + "\"");
  }
  return absl::OkStatus();
}

// A namespace pattern: "", "*", a valid name, or a valid name + "/*".
absl::Status ValidatePattern(const std::string& pattern,
                             const std::string& where) {
  if (pattern.empty() || pattern == AuthzPolicy::kWholeNode) {
    return absl::OkStatus();
  }
  std::string_view name = pattern;
  if (name.size() >= 2 && name.substr(name.size() - 2) == "/*") {
    name.remove_suffix(2);
  }
  if (absl::Status s = NamespaceCatalog::ValidateName(name); !s.ok()) {
    return Invalid(where, "not a namespace pattern (\"\", \"*\", a name or "
                          "\"prefix/*\"): " +
                              std::string(s.message()));
  }
  return absl::OkStatus();
}

// A non-empty array member `key` of `object`.
absl::StatusOr<const Json*> NonEmptyArray(const Json& object,
                                          const std::string& where,
                                          const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_array() || it->empty()) {
    return Invalid(absl::StrCat(where, ".", key),
                   "must be a non-empty array of strings");
  }
  return &*it;
}

}  // namespace

std::string_view PermissionName(Permission p) {
  switch (p) {
    case Permission::kRead:
      return "read";
    case Permission::kWrite:
      return "write";
    case Permission::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::string ClientIdentity::DisplayName() const {
  if (!sans.empty()) return sans.front();
  if (!common_name.empty()) return std::string(kCnPrefix) + common_name;
  return authenticated ? "(certificate without SAN or CN)"
                       : "(no client certificate)";
}

absl::StatusOr<AuthzPolicy> AuthzPolicy::Parse(std::string_view text) {
  Json doc = Json::parse(text.begin(), text.end(), /*cb=*/nullptr,
                         /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return absl::InvalidArgumentError("not valid JSON");
  }
  if (!doc.is_object()) return Invalid("policy", "must be a JSON object");
  if (absl::Status s = OnlyMembers(doc, "policy", {"version", "grants"});
      !s.ok()) {
    return s;
  }
  auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer() ||
      version->get<int64_t>() != 1) {
    return Invalid("version", "must be 1");
  }
  auto grants = doc.find("grants");
  if (grants == doc.end() || !grants->is_array()) {
    return Invalid("grants", "must be an array");
  }
  AuthzPolicy policy;
  for (size_t i = 0; i < grants->size(); ++i) {
    const Json& g = (*grants)[i];
    const std::string where = absl::StrCat("grants[", i, "]");
    if (!g.is_object()) return Invalid(where, "must be an object");
    if (absl::Status s =
            OnlyMembers(g, where, {"identity", "namespaces", "permissions"});
        !s.ok()) {
      return s;
    }
    Grant grant;
    auto identity = g.find("identity");
    if (identity == g.end() || !identity->is_string() ||
        identity->get_ref<const std::string&>().empty() ||
        identity->get_ref<const std::string&>() == kCnPrefix) {
      return Invalid(where + ".identity", "must be a non-empty string");
    }
    grant.identity = identity->get<std::string>();
    absl::StatusOr<const Json*> namespaces =
        NonEmptyArray(g, where, "namespaces");
    if (!namespaces.ok()) return namespaces.status();
    for (size_t j = 0; j < (*namespaces)->size(); ++j) {
      const Json& n = (**namespaces)[j];
      const std::string at = absl::StrCat(where, ".namespaces[", j, "]");
      if (!n.is_string()) return Invalid(at, "must be a string");
      if (absl::Status s = ValidatePattern(n.get<std::string>(), at); !s.ok()) {
        return s;
      }
      grant.namespaces.push_back(n.get<std::string>());
    }
    absl::StatusOr<const Json*> permissions =
        NonEmptyArray(g, where, "permissions");
    if (!permissions.ok()) return permissions.status();
    for (size_t j = 0; j < (*permissions)->size(); ++j) {
      const Json& p = (**permissions)[j];
      const std::string at = absl::StrCat(where, ".permissions[", j, "]");
      const std::string name = p.is_string() ? p.get<std::string>() : "";
      bool known = false;
      for (Permission candidate :
           {Permission::kRead, Permission::kWrite, Permission::kAdmin}) {
        if (name == PermissionName(candidate)) {
          grant.permissions |= Bit(candidate);
          known = true;
        }
      }
      if (!known) {
        return Invalid(at, absl::StrCat("unknown permission ", p.dump(),
                                        " (read, write or admin)"));
      }
    }
    policy.grants_.push_back(std::move(grant));
  }
  return policy;
}

bool AuthzPolicy::IdentityMatches(const std::string& pattern,
                                  const ClientIdentity& who) {
  if (!who.authenticated) return false;
  if (pattern == "*") return true;
  std::string_view p = pattern;
  if (p.substr(0, kCnPrefix.size()) == kCnPrefix) {
    return !who.common_name.empty() &&
           who.common_name == p.substr(kCnPrefix.size());
  }
  for (const std::string& san : who.sans) {
    if (san == pattern) return true;
  }
  return false;
}

bool AuthzPolicy::NamespaceMatches(std::string_view pattern,
                                   std::string_view ns) {
  if (pattern == kWholeNode) return true;
  if (ns == kWholeNode) return false;  // Only "*" covers the whole node.
  if (pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == "/*") {
    const std::string_view prefix = pattern.substr(0, pattern.size() - 1);
    return ns.size() > prefix.size() && ns.substr(0, prefix.size()) == prefix;
  }
  return pattern == ns;
}

uint8_t AuthzPolicy::PermissionsOn(const ClientIdentity& who,
                                   std::string_view ns) const {
  uint8_t bits = 0;
  for (const Grant& g : grants_) {
    if (!IdentityMatches(g.identity, who)) continue;
    for (const std::string& pattern : g.namespaces) {
      if (NamespaceMatches(pattern, ns)) {
        bits |= g.permissions;
        break;
      }
    }
  }
  return bits;
}

bool AuthzPolicy::Allows(const ClientIdentity& who, std::string_view ns,
                         Permission permission) const {
  return (PermissionsOn(who, ns) & Bit(permission)) != 0;
}

bool AuthzPolicy::AnyGrant(const ClientIdentity& who,
                           std::string_view ns) const {
  return PermissionsOn(who, ns) != 0;
}

absl::StatusOr<std::string> ReadAuthzPolicyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--authz_policy file %s: cannot read: %s", path, std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<AuthzPolicy> ParseAuthzPolicyFile(const std::string& path,
                                                 const std::string& bytes) {
  absl::StatusOr<AuthzPolicy> policy = AuthzPolicy::Parse(bytes);
  if (!policy.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--authz_policy file %s: %s", path, policy.status().message()));
  }
  return policy;
}

absl::StatusOr<AuthzPolicy> LoadAuthzPolicyFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadAuthzPolicyFile(path);
  if (!bytes.ok()) return bytes.status();
  return ParseAuthzPolicyFile(path, *bytes);
}

}  // namespace strata::server
