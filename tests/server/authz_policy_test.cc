// The authorization policy file (server/authz_policy.h): what parses, what
// is refused and why, and how identities and namespace patterns match.

#include "server/authz_policy.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace strata::server {
namespace {

using ::testing::HasSubstr;

ClientIdentity Sans(std::vector<std::string> sans, std::string cn = "") {
  ClientIdentity id;
  id.sans = std::move(sans);
  id.common_name = std::move(cn);
  id.authenticated = true;
  return id;
}

AuthzPolicy MustParse(const std::string& json) {
  absl::StatusOr<AuthzPolicy> p = AuthzPolicy::Parse(json);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : *AuthzPolicy::Parse(R"({"version":1,"grants":[]})");
}

TEST(AuthzPolicyTest, ExactNamespaceAndPermissions) {
  AuthzPolicy p = MustParse(R"({"version": 1, "grants": [
      {"identity": "spiffe://x/svc-a", "namespaces": ["team/a"],
       "permissions": ["read", "write"]}]})");
  const ClientIdentity a = Sans({"spiffe://x/svc-a"});
  EXPECT_TRUE(p.Allows(a, "team/a", Permission::kRead));
  EXPECT_TRUE(p.Allows(a, "team/a", Permission::kWrite));
  EXPECT_FALSE(p.Allows(a, "team/a", Permission::kAdmin));  // Not implied.
  EXPECT_FALSE(p.Allows(a, "team/ab", Permission::kRead));
  EXPECT_FALSE(p.Allows(a, "team/a/x", Permission::kRead));
  EXPECT_FALSE(p.Allows(a, "", Permission::kRead));
  EXPECT_FALSE(p.Allows(a, AuthzPolicy::kWholeNode, Permission::kRead));
  EXPECT_FALSE(p.Allows(Sans({"spiffe://x/svc-b"}), "team/a", Permission::kRead));
}

TEST(AuthzPolicyTest, PrefixPatternCoversNamesUnderItOnly) {
  AuthzPolicy p = MustParse(R"({"version": 1, "grants": [
      {"identity": "svc.example", "namespaces": ["team/*"],
       "permissions": ["read"]}]})");
  const ClientIdentity c = Sans({"svc.example"});
  EXPECT_TRUE(p.Allows(c, "team/a", Permission::kRead));
  EXPECT_TRUE(p.Allows(c, "team/a/b/c", Permission::kRead));
  EXPECT_FALSE(p.Allows(c, "team", Permission::kRead));
  EXPECT_FALSE(p.Allows(c, "teams/a", Permission::kRead));
  EXPECT_FALSE(p.Allows(c, "", Permission::kRead));
}

TEST(AuthzPolicyTest, DefaultNamespaceAndWholeNode) {
  AuthzPolicy p = MustParse(R"({"version": 1, "grants": [
      {"identity": "d", "namespaces": [""], "permissions": ["admin"]},
      {"identity": "all", "namespaces": ["*"], "permissions": ["admin"]}]})");
  EXPECT_TRUE(p.Allows(Sans({"d"}), "", Permission::kAdmin));
  EXPECT_FALSE(p.Allows(Sans({"d"}), "x", Permission::kAdmin));
  // The default namespace is not the whole node.
  EXPECT_FALSE(p.Allows(Sans({"d"}), AuthzPolicy::kWholeNode, Permission::kAdmin));
  EXPECT_TRUE(p.Allows(Sans({"all"}), AuthzPolicy::kWholeNode, Permission::kAdmin));
  EXPECT_TRUE(p.Allows(Sans({"all"}), "", Permission::kAdmin));
  EXPECT_TRUE(p.Allows(Sans({"all"}), "any/thing", Permission::kAdmin));
}

TEST(AuthzPolicyTest, CommonNameOnlyMatchesWithCnPrefix) {
  AuthzPolicy p = MustParse(R"({"version": 1, "grants": [
      {"identity": "CN=ops", "namespaces": ["a"], "permissions": ["read"]},
      {"identity": "dns.example", "namespaces": ["b"], "permissions": ["read"]}]})");
  EXPECT_TRUE(p.Allows(Sans({}, "ops"), "a", Permission::kRead));
  // A SAN "ops" is not the CN "ops"; a CN "dns.example" is not the SAN.
  EXPECT_FALSE(p.Allows(Sans({"ops"}), "a", Permission::kRead));
  EXPECT_FALSE(p.Allows(Sans({}, "dns.example"), "b", Permission::kRead));
  EXPECT_TRUE(p.Allows(Sans({"x", "dns.example"}), "b", Permission::kRead));
}

TEST(AuthzPolicyTest, WildcardIdentityNeedsACertificate) {
  AuthzPolicy p = MustParse(R"({"version": 1, "grants": [
      {"identity": "*", "namespaces": ["pub"], "permissions": ["read"]}]})");
  EXPECT_TRUE(p.Allows(Sans({}, "anyone"), "pub", Permission::kRead));
  EXPECT_FALSE(p.Allows(ClientIdentity(), "pub", Permission::kRead));
}

TEST(AuthzPolicyTest, GrantsAddUpAndAnyGrantSeesThem) {
  AuthzPolicy p = MustParse(R"({"version": 1, "grants": [
      {"identity": "a", "namespaces": ["x"], "permissions": ["read"]},
      {"identity": "CN=c", "namespaces": ["x"], "permissions": ["write"]}]})");
  const ClientIdentity both = Sans({"a"}, "c");
  EXPECT_TRUE(p.Allows(both, "x", Permission::kRead));
  EXPECT_TRUE(p.Allows(both, "x", Permission::kWrite));
  EXPECT_TRUE(p.AnyGrant(both, "x"));
  EXPECT_FALSE(p.AnyGrant(both, "y"));
}

TEST(AuthzPolicyTest, EmptyGrantListDeniesEverything) {
  AuthzPolicy p = MustParse(R"({"version": 1, "grants": []})");
  EXPECT_EQ(p.num_grants(), 0u);
  EXPECT_FALSE(p.Allows(Sans({"a"}, "a"), "", Permission::kRead));
}

TEST(AuthzPolicyTest, InvalidFilesNameWhatIsWrong) {
  struct Bad {
    const char* json;
    const char* message;
  };
  const Bad cases[] = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {R"({"grants": []})", "version: must be 1"},
      {R"({"version": 2, "grants": []})", "version: must be 1"},
      {R"({"version": 1})", "grants: must be an array"},
      {R"({"version": 1, "grants": [], "extra": 1})", "unknown member \"extra\""},
      {R"({"version": 1, "grants": [7]})", "grants[0]: must be an object"},
      {R"({"version": 1, "grants": [{"namespaces": ["a"], "permissions": ["read"]}]})",
       "grants[0].identity: must be a non-empty string"},
      {R"({"version": 1, "grants": [{"identity": "CN=", "namespaces": ["a"], "permissions": ["read"]}]})",
       "grants[0].identity"},
      {R"({"version": 1, "grants": [{"identity": "a", "namespaces": [], "permissions": ["read"]}]})",
       "grants[0].namespaces: must be a non-empty array"},
      {R"({"version": 1, "grants": [{"identity": "a", "namespaces": ["a b"], "permissions": ["read"]}]})",
       "grants[0].namespaces[0]: not a namespace pattern"},
      {R"({"version": 1, "grants": [{"identity": "a", "namespaces": ["team*"], "permissions": ["read"]}]})",
       "grants[0].namespaces[0]"},
      {R"({"version": 1, "grants": [{"identity": "a", "namespaces": [3], "permissions": ["read"]}]})",
       "grants[0].namespaces[0]: must be a string"},
      {R"({"version": 1, "grants": [{"identity": "a", "namespaces": ["a"], "permissions": ["wrte"]}]})",
       "grants[0].permissions[0]: unknown permission \"wrte\""},
      {R"({"version": 1, "grants": [{"identity": "a", "namespaces": ["a"]}]})",
       "grants[0].permissions: must be a non-empty array"},
      {R"({"version": 1, "grants": [{"identity": "a", "namespace": ["a"], "permissions": ["read"]}]})",
       "grants[0]: unknown member \"namespace\""},
  };
  for (const Bad& bad : cases) {
    absl::StatusOr<AuthzPolicy> p = AuthzPolicy::Parse(bad.json);
    ASSERT_FALSE(p.ok()) << bad.json;
    EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();
    EXPECT_THAT(std::string(p.status().message()), HasSubstr(bad.message))
        << bad.json;
  }
}

TEST(AuthzPolicyTest, FileErrorsNameTheFlagAndPath) {
  absl::StatusOr<AuthzPolicy> p =
      LoadAuthzPolicyFile("/nonexistent/strata/policy.json");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()),
              HasSubstr("--authz_policy file /nonexistent/strata/policy.json"));
  strata::testing::TempDir dir;
  const std::string path = dir.path() + "/p.json";
  strata::testing::WriteFileOrDie(path, R"({"version": 1, "grants": [}])");
  p = LoadAuthzPolicyFile(path);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()),
              HasSubstr("--authz_policy file " + path + ": not valid JSON"));
}

// The policy the Kubernetes TLS overlay ships must be valid.
TEST(AuthzPolicyTest, KubernetesExamplePolicyParses) {
  absl::StatusOr<AuthzPolicy> p = LoadAuthzPolicyFile(
      std::string(STRATA_SOURCE_DIR) +
      "/deploy/k8s/overlays/tls/authz-policy.json");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->Allows(Sans({}, "strata-client"), AuthzPolicy::kWholeNode,
                        Permission::kAdmin));
  EXPECT_TRUE(p->Allows(Sans({"spiffe://cluster.local/ns/default/sa/orders"}),
                        "orders/eu", Permission::kWrite));
}

TEST(AuthzPolicyTest, DisplayNamePrefersSanThenCn) {
  EXPECT_EQ(Sans({"spiffe://x/a", "a.example"}, "cn").DisplayName(),
            "spiffe://x/a");
  EXPECT_EQ(Sans({}, "cn").DisplayName(), "CN=cn");
  EXPECT_EQ(ClientIdentity().DisplayName(), "(no client certificate)");
}

}  // namespace
}  // namespace strata::server
