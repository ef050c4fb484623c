// TLS and mutual TLS (docs/security.md): in-process servers with both
// credential paths (file-watching TlsServerCredentials and static
// SslServerCredentials), certificate rotation without a restart, start-up
// checks of the TLS files, the loopback test behind the plaintext warning,
// and the real strata-server and strata binaries in each mode.
//
// Certificates come from scripts/gen-test-certs.sh (openssl), run once per
// test binary into a temporary directory.

#include <signal.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/strata_client.h"
#include "gmock/gmock.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "server/credentials.h"
#include "strata/v1/kv.grpc.pb.h"
#include "tests/server/in_process_server.h"
#include "tests/server/process_util.h"
#include "tests/server/test_pki.h"
#include "tests/support/test_util.h"

namespace strata::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using server::ServerOptions;

// TLS options of a client that trusts `ca` and, if `client` is not empty,
// presents <client>.crt/.key.
ClientTlsOptions ClientTls(const std::string& ca, const std::string& client = "",
                           const std::string& server_name = "") {
  const TestPki& pki = TestPki::Get();
  ClientTlsOptions tls;
  tls.root_certs_pem = pki.Pem(ca + ".crt");
  if (!client.empty()) {
    tls.cert_chain_pem = pki.Pem(client + ".crt");
    tls.private_key_pem = pki.Pem(client + ".key");
  }
  tls.server_name = server_name;
  return tls;
}

std::unique_ptr<Client> Connect(const std::string& address,
                                std::optional<ClientTlsOptions> tls) {
  ClientOptions options;
  options.timeout = absl::Seconds(10);
  options.tls = std::move(tls);
  return std::make_unique<Client>(address, options);
}

// Puts and reads back a key: OK only if the whole handshake worked.
absl::Status RoundTrip(Client& client) {
  if (absl::Status s = client.Put("tls-key", "tls-value").status(); !s.ok()) {
    return s;
  }
  absl::StatusOr<std::optional<std::string>> v = client.Get("tls-key");
  if (!v.ok()) return v.status();
  if (*v != std::optional<std::string>("tls-value")) {
    return absl::InternalError("wrong value read back");
  }
  return absl::OkStatus();
}

class TlsTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    PinGrpcLibrary();
    ASSERT_EQ(TestPki::Get().error(), "");
  }

  // Server options for TLS with the test PKI; `mutual` adds the client CA.
  // The test parameter picks the credential path: true = re-read the files
  // (TlsServerCredentials + FileWatcherCertificateProvider), false = read
  // once (SslServerCredentials).
  ServerOptions TlsOptions(bool mutual) const {
    const TestPki& pki = TestPki::Get();
    ServerOptions options = TestServerOptions();
    options.tls.cert_file = pki.Path("server.crt");
    options.tls.key_file = pki.Path("server.key");
    if (mutual) options.tls.client_ca_file = pki.Path("ca.crt");
    options.tls.reload_interval =
        GetParam() ? absl::Seconds(60) : absl::ZeroDuration();
    return options;
  }

  std::unique_ptr<InProcessServer> StartServer(ServerOptions options) {
    auto s = InProcessServer::Start(std::move(options));
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
};

INSTANTIATE_TEST_SUITE_P(Credentials, TlsTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Reloading" : "Static";
                         });

TEST_P(TlsTest, TlsServerAcceptsTlsClient) {
  auto server = StartServer(TlsOptions(/*mutual=*/false));
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->address(), ClientTls("ca"));
  EXPECT_OK(RoundTrip(*client));
  int pairs = 0;
  EXPECT_OK(client->Scan("", "", 0, false, [&](std::string_view,
                                               std::string_view) {
    ++pairs;
    return true;
  }));
  EXPECT_EQ(pairs, 1);
  absl::StatusOr<bool> serving = client->Health();
  ASSERT_OK(serving.status());
  EXPECT_TRUE(*serving);
  // A client certificate is not asked for, and presenting one is harmless.
  EXPECT_OK(RoundTrip(*Connect(server->address(), ClientTls("ca", "client"))));
}

TEST_P(TlsTest, TlsServerRejectsPlaintextClient) {
  auto server = StartServer(TlsOptions(/*mutual=*/false));
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->address(), std::nullopt);
  absl::Status s = client->Put("k", "v").status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(absl::IsUnavailable(client->Health().status()));
}

TEST_P(TlsTest, ClientRejectsServerFromUntrustedCa) {
  auto server = StartServer(TlsOptions(/*mutual=*/false));
  ASSERT_NE(server, nullptr);
  absl::Status s =
      Connect(server->address(), ClientTls("other-ca"))->Put("k", "v").status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
}

TEST_P(TlsTest, ServerNameOverrideIsChecked) {
  auto server = StartServer(TlsOptions(/*mutual=*/false));
  ASSERT_NE(server, nullptr);
  // The certificate names localhost and 127.0.0.1.
  EXPECT_OK(RoundTrip(
      *Connect(server->address(), ClientTls("ca", "", "localhost"))));
  absl::Status s =
      Connect(server->address(), ClientTls("ca", "", "strata.example.com"))
          ->Put("k", "v")
          .status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
}

TEST_P(TlsTest, MutualTlsAcceptsClientCertFromTrustedCa) {
  auto server = StartServer(TlsOptions(/*mutual=*/true));
  ASSERT_NE(server, nullptr);
  EXPECT_OK(RoundTrip(*Connect(server->address(), ClientTls("ca", "client"))));
  // The server certificate carries clientAuth too (what the Kubernetes
  // overlay's probes present).
  EXPECT_OK(RoundTrip(*Connect(server->address(), ClientTls("ca", "server"))));
}

TEST_P(TlsTest, MutualTlsRejectsClientWithoutCert) {
  auto server = StartServer(TlsOptions(/*mutual=*/true));
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->address(), ClientTls("ca"));
  absl::Status s = client->Put("k", "v").status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(absl::IsUnavailable(client->Health().status()));
  EXPECT_TRUE(absl::IsUnavailable(
      Connect(server->address(), std::nullopt)->Put("k", "v").status()));
}

TEST_P(TlsTest, MutualTlsRejectsClientCertFromOtherCa) {
  auto server = StartServer(TlsOptions(/*mutual=*/true));
  ASSERT_NE(server, nullptr);
  absl::Status s =
      Connect(server->address(), ClientTls("ca", "other-client"))
          ->Put("k", "v")
          .status();
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  // The right client still gets in afterwards.
  EXPECT_OK(RoundTrip(*Connect(server->address(), ClientTls("ca", "client"))));
}

// ---- Rotation ----

// A channel of its own (no subchannel sharing with other tests' channels)
// that retries quickly, for waiting on a certificate change without
// sleeping.
std::shared_ptr<grpc::Channel> FreshChannel(const std::string& address,
                                            const std::string& ca) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = TestPki::Get().Pem(ca + ".crt");
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 300);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
}

grpc::Status GetOn(const std::shared_ptr<grpc::Channel>& channel,
                   absl::Duration timeout, bool wait_for_ready) {
  auto stub = v1::KV::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  ctx.set_wait_for_ready(wait_for_ready);
  v1::GetRequest req;
  req.set_key("k");
  v1::GetResponse resp;
  return stub->Get(&ctx, req, &resp);
}

// Points <dir>/tls (what the server reads) at a copy of `cert`/`key`, the
// way Kubernetes updates a mounted Secret: the files are reached through a
// symlink that is replaced atomically, so a reader never sees a new key
// with an old certificate.
void InstallIdentity(const std::string& dir, const std::string& cert,
                     const std::string& key, int generation) {
  const TestPki& pki = TestPki::Get();
  const std::string data = absl::StrCat(dir, "/gen", generation);
  std::filesystem::create_directories(data);
  WriteFileOrDie(data + "/tls.crt", pki.Pem(cert));
  WriteFileOrDie(data + "/tls.key", pki.Pem(key));
  const std::string tmp = dir + "/tls.tmp";
  std::filesystem::create_directory_symlink(data, tmp);
  std::filesystem::rename(tmp, dir + "/tls");  // Atomic replace.
}

TEST(TlsRotationTest, NewCertificateIsServedWithoutRestart) {
  PinGrpcLibrary();
  ASSERT_EQ(TestPki::Get().error(), "");
  TempDir dir;
  InstallIdentity(dir.path(), "server.crt", "server.key", 1);
  ServerOptions options = TestServerOptions();
  options.tls.cert_file = dir.path() + "/tls/tls.crt";
  options.tls.key_file = dir.path() + "/tls/tls.key";
  options.tls.reload_interval = absl::Seconds(1);
  auto server = InProcessServer::Start(options);
  ASSERT_OK(server.status());
  const std::string address = (*server)->address();

  auto old_channel = FreshChannel(address, "ca");
  ASSERT_TRUE(GetOn(old_channel, absl::Seconds(10), false).ok());

  // Rotate to a certificate from another CA (a worst case: clients must be
  // told about the new CA first in real life).
  InstallIdentity(dir.path(), "other-server.crt", "other-server.key", 2);

  // A client trusting only the new CA connects once the server has
  // re-read the files (within a refresh interval); until then its
  // handshakes fail and wait_for_ready retries them.
  auto new_channel = FreshChannel(address, "other-ca");
  grpc::Status s = GetOn(new_channel, absl::Seconds(15), true);
  EXPECT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();

  // The connection made before the rotation keeps working...
  EXPECT_TRUE(GetOn(old_channel, absl::Seconds(10), false).ok());
  // ...but a new handshake trusting only the old CA fails now.
  grpc::Status old_ca = GetOn(FreshChannel(address, "ca"), absl::Seconds(10),
                              false);
  EXPECT_EQ(old_ca.error_code(), grpc::StatusCode::UNAVAILABLE);
}

// ---- Start-up checks ----

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(TestPki::Get().error(), ""); }
  static server::ServerTlsOptions Files(const std::string& cert,
                                        const std::string& key,
                                        const std::string& ca = "") {
    const TestPki& pki = TestPki::Get();
    server::ServerTlsOptions tls;
    tls.cert_file = cert.empty() ? "" : pki.Path(cert);
    tls.key_file = key.empty() ? "" : pki.Path(key);
    tls.client_ca_file = ca.empty() ? "" : pki.Path(ca);
    return tls;
  }
  static std::string Error(const server::ServerTlsOptions& tls) {
    absl::StatusOr<server::ServerTlsSummary> s = server::ValidateServerTls(tls);
    EXPECT_FALSE(s.ok());
    EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
    return std::string(s.status().message());
  }
  TempDir dir_;
};

TEST_F(TlsFilesTest, GoodFilesAreSummarized) {
  absl::StatusOr<server::ServerTlsSummary> s =
      server::ValidateServerTls(Files("server.crt", "server.key", "ca.crt"));
  ASSERT_OK(s.status());
  EXPECT_EQ(s->subject, "CN=strata-server");
  EXPECT_EQ(s->chain_length, 1);
  EXPECT_EQ(s->client_cas, 1);
  EXPECT_FALSE(s->expired);
  EXPECT_THAT(s->not_after, HasSubstr("GMT"));
}

TEST_F(TlsFilesTest, MissingCertFileNamesFlagAndFile) {
  std::string e = Error(Files("nope.crt", "server.key"));
  EXPECT_THAT(e, HasSubstr("--tls_cert"));
  EXPECT_THAT(e, HasSubstr("nope.crt"));
  EXPECT_THAT(e, HasSubstr("No such file"));
}

TEST_F(TlsFilesTest, KeyOfAnotherCertificateIsRefused) {
  std::string e = Error(Files("server.crt", "client.key"));
  EXPECT_THAT(e, HasSubstr("--tls_key"));
  EXPECT_THAT(e, HasSubstr("does not match"));
}

TEST_F(TlsFilesTest, NonPemFilesAreRefused) {
  const std::string junk = dir_.path() + "/junk.pem";
  WriteFileOrDie(junk, "this is not a certificate\n");
  server::ServerTlsOptions tls = Files("server.crt", "server.key");
  tls.cert_file = junk;
  EXPECT_THAT(Error(tls), HasSubstr("--tls_cert file " + junk + ": no PEM block"));
  tls = Files("server.crt", "server.key");
  tls.client_ca_file = junk;
  EXPECT_THAT(Error(tls), HasSubstr("--tls_client_ca file " + junk + ": no PEM block"));
  // PEM, but the wrong kind: a key where the certificate goes, and the
  // reverse.
  tls = Files("server.crt", "server.key");
  tls.cert_file = tls.key_file;
  EXPECT_THAT(Error(tls), HasSubstr("no PEM certificate"));
  tls = Files("server.crt", "server.key");
  tls.key_file = tls.cert_file;
  EXPECT_THAT(Error(tls), HasSubstr("no unencrypted PEM private key"));
  // A certificate whose base64 body is damaged.
  std::string pem = TestPki::Get().Pem("server.crt");
  pem[pem.size() / 2] = '!';
  WriteFileOrDie(junk, pem);
  tls = Files("server.crt", "server.key");
  tls.cert_file = junk;
  EXPECT_THAT(Error(tls), HasSubstr("--tls_cert"));
}

TEST_F(TlsFilesTest, InconsistentOptionsAreRefused) {
  EXPECT_THAT(Error(Files("server.crt", "")), HasSubstr("together"));
  EXPECT_THAT(Error(Files("", "", "ca.crt")), HasSubstr("--tls_client_ca"));
  server::ServerTlsOptions tls = Files("server.crt", "server.key");
  tls.reload_interval = absl::Seconds(-1);
  EXPECT_THAT(Error(tls), HasSubstr("--tls_reload_interval"));
}

// A cluster node's outgoing credentials (MakeNodeChannelCredentials):
// plaintext when the node serves plaintext; with TLS a CA to verify the
// other nodes is required (--cluster_tls_ca, else --tls_client_ca), and
// the node's own files are checked as the server's are.
TEST_F(TlsFilesTest, NodeChannelCredentialsNeedACaToVerifyPeers) {
  ASSERT_OK(server::MakeNodeChannelCredentials(Files("", ""), "").status());
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> no_ca =
      server::MakeNodeChannelCredentials(Files("server.crt", "server.key"),
                                         "");
  EXPECT_TRUE(absl::IsInvalidArgument(no_ca.status())) << no_ca.status();
  EXPECT_THAT(std::string(no_ca.status().message()),
              HasSubstr("--cluster_tls_ca"));
  ASSERT_OK(server::MakeNodeChannelCredentials(
                Files("server.crt", "server.key"), TestPki::Get().Path("ca.crt"))
                .status());
  ASSERT_OK(server::MakeNodeChannelCredentials(
                Files("server.crt", "server.key", "ca.crt"), "")
                .status());
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> missing =
      server::MakeNodeChannelCredentials(Files("server.crt", "server.key"),
                                         dir_.path() + "/nope.crt");
  EXPECT_TRUE(absl::IsInvalidArgument(missing.status())) << missing.status();
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("--cluster_tls_ca"));
  EXPECT_THAT(Error(Files("server.crt", "client.key")), HasSubstr("--tls_key"));
  EXPECT_FALSE(server::MakeNodeChannelCredentials(
                   Files("server.crt", "client.key"),
                   TestPki::Get().Path("ca.crt"))
                   .ok());
}

TEST_F(TlsFilesTest, ServerStartFailsOnBadFiles) {
  PinGrpcLibrary();
  ServerOptions options = TestServerOptions();
  options.tls = Files("server.crt", "client.key");
  auto s = InProcessServer::Start(options);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
  options.tls = Files("", "", "ca.crt");
  s = InProcessServer::Start(options);
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
}

// The client library reads its files through the same reader as the
// server (common/pem_file.h): each failure names the flag and the file.
TEST_F(TlsFilesTest, ClientFilesAreCheckedAndNamed) {
  const TestPki& pki = TestPki::Get();
  absl::StatusOr<ClientTlsOptions> ok = LoadClientTlsFiles(
      pki.Path("ca.crt"), pki.Path("client.crt"), pki.Path("client.key"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->root_certs_pem, pki.Pem("ca.crt"));
  EXPECT_EQ(ok->cert_chain_pem, pki.Pem("client.crt"));

  const std::string junk = dir_.path() + "/junk.pem";
  WriteFileOrDie(junk, "this is not a certificate\n");
  const std::string empty = dir_.path() + "/empty.pem";
  WriteFileOrDie(empty, "");
  // Over the 4 MiB bound: refused without reading it whole.
  const std::string huge = dir_.path() + "/huge.pem";
  WriteFileOrDie(huge, "-----BEGIN CERTIFICATE-----\n" +
                           std::string((4 << 20) + 1, 'A'));
  const std::string missing = dir_.path() + "/nope.crt";
  const struct {
    std::string ca, cert, key, want;
  } cases[] = {
      {junk, "", "", "--tls_ca file " + junk + ": no PEM block"},
      {empty, "", "", "--tls_ca file " + empty + ": no PEM block"},
      {huge, "", "", "--tls_ca file " + huge + ": larger than 4 MiB"},
      {missing, "", "", "--tls_ca file " + missing + ": No such file"},
      {pki.Path("ca.crt"), junk, pki.Path("client.key"),
       "--tls_cert file " + junk},
      {pki.Path("ca.crt"), pki.Path("client.crt"), missing,
       "--tls_key file " + missing},
  };
  for (const auto& c : cases) {
    absl::StatusOr<ClientTlsOptions> s = LoadClientTlsFiles(c.ca, c.cert, c.key);
    EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.want));
  }
}

TEST(LoopbackTest, OnlyLoopbackAddressesAreLocal) {
  using server::IsLoopbackListenAddress;
  EXPECT_TRUE(IsLoopbackListenAddress("127.0.0.1:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("127.1.2.3:0"));
  EXPECT_TRUE(IsLoopbackListenAddress("localhost:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("[::1]:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("[::ffff:127.0.0.1]:50051"));
  EXPECT_TRUE(IsLoopbackListenAddress("unix:/run/strata.sock"));
  EXPECT_TRUE(IsLoopbackListenAddress("unix-abstract:strata"));
  EXPECT_FALSE(IsLoopbackListenAddress("0.0.0.0:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("[::]:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress(":50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("10.1.2.3:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("[::ffff:10.0.0.1]:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("strata.example.com:50051"));
  EXPECT_FALSE(IsLoopbackListenAddress("128.0.0.1:50051"));
}

// ---- The real binaries ----

class TlsProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(BinaryPath("client/strata").empty())
        << "STRATA_BINARY_DIR is not set (run through ctest)";
    ASSERT_EQ(TestPki::Get().error(), "");
  }

  std::unique_ptr<ServerProcess> StartServer(bool mutual) {
    const TestPki& pki = TestPki::Get();
    std::vector<std::string> flags = {"--tls_cert=" + pki.Path("server.crt"),
                                      "--tls_key=" + pki.Path("server.key")};
    if (mutual) flags.push_back("--tls_client_ca=" + pki.Path("ca.crt"));
    auto p = ServerProcess::Start(dir_.path() + "/data", flags);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  // Runs `strata --addr=<address> args...`.
  static ProcessResult Strata(const std::string& address,
                              std::vector<std::string> args) {
    args.insert(args.begin(), "--addr=" + address);
    args.insert(args.begin(), BinaryPath("client/strata"));
    ProcessResult r = RunProcess(args, "", absl::Seconds(30));
    EXPECT_TRUE(r.exited && !r.timed_out);
    return r;
  }

  static std::string Flag(const std::string& name, const std::string& file) {
    return "--" + name + "=" + TestPki::Get().Path(file);
  }

  TempDir dir_;
};

TEST_F(TlsProcessTest, CliWorksAgainstTlsServer) {
  auto server = StartServer(/*mutual=*/false);
  ASSERT_NE(server, nullptr);
  const std::string addr = server->address();
  const std::string ca = Flag("tls_ca", "ca.crt");
  ProcessResult r = Strata(addr, {ca, "put", "alpha", "one"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Strata(addr, {ca, "get", "alpha"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "one\n");
  r = Strata(addr, {ca, "--tls_server_name=localhost", "scan"});
  EXPECT_EQ(r.out, "alpha\tone\n");
  r = Strata(addr, {ca, "health"});
  EXPECT_EQ(r.out, "SERVING\n");
  // Plaintext, or a CA that did not sign the server: transport error.
  r = Strata(addr, {"get", "alpha"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  r = Strata(addr, {Flag("tls_ca", "other-ca.crt"), "get", "alpha"});
  EXPECT_EQ(r.exit_code, 3);
  // Loopback: no plaintext warning, and the TLS summary is logged.
  EXPECT_THAT(server->Stderr(), Not(HasSubstr("PLAINTEXT")));
  EXPECT_THAT(server->Stderr(), HasSubstr("TLS: certificate CN=strata-server"));
}

TEST_F(TlsProcessTest, CliWorksAgainstMutualTlsServer) {
  auto server = StartServer(/*mutual=*/true);
  ASSERT_NE(server, nullptr);
  const std::string addr = server->address();
  const std::vector<std::string> id = {Flag("tls_ca", "ca.crt"),
                                       Flag("tls_cert", "client.crt"),
                                       Flag("tls_key", "client.key")};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), id.begin(), id.end());
    return args;
  };
  ProcessResult r = Strata(addr, with({"put", "beta", "two"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Strata(addr, with({"get", "beta"}));
  EXPECT_EQ(r.out, "two\n");
  r = Strata(addr, with({"health"}));
  EXPECT_EQ(r.out, "SERVING\n");
  // What the Kubernetes overlay's probes run: the server's own certificate
  // as the client certificate, the name localhost.
  r = Strata(addr, {Flag("tls_ca", "ca.crt"), Flag("tls_cert", "server.crt"),
                    Flag("tls_key", "server.key"), "--tls_server_name=localhost",
                    "health"});
  EXPECT_EQ(r.out, "SERVING\n") << r.err;
  // No client certificate, or one from another CA: refused.
  r = Strata(addr, {Flag("tls_ca", "ca.crt"), "get", "beta"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  r = Strata(addr, {Flag("tls_ca", "ca.crt"), Flag("tls_cert", "other-client.crt"),
                    Flag("tls_key", "other-client.key"), "get", "beta"});
  EXPECT_EQ(r.exit_code, 3);
  r = Strata(addr, {"get", "beta"});
  EXPECT_EQ(r.exit_code, 3);
}

TEST_F(TlsProcessTest, SighupDoesNotStopTheServer) {
  auto server = StartServer(/*mutual=*/false);
  ASSERT_NE(server, nullptr);
  // Both stay pending until the main thread's sigwait, which takes the
  // lower-numbered SIGHUP first; SIGHUP's default action would kill it.
  server->Signal(SIGHUP);
  server->Signal(SIGTERM);
  absl::StatusOr<ExitInfo> exit = server->Wait(absl::Seconds(10));
  ASSERT_OK(exit.status());
  EXPECT_TRUE(exit->exited) << "signal " << exit->term_signal;
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_THAT(server->Stderr(),
              HasSubstr("received SIGHUP: nothing to reload by signal; TLS "
                        "files are re-read every 1m"));
}

TEST_F(TlsProcessTest, BadTlsFlagsAreUsageErrors) {
  const std::string server_bin = BinaryPath("server/strata-server");
  const std::string data = "--data_dir=" + dir_.path() + "/data";
  ProcessResult r = RunProcess({server_bin, "--listen=127.0.0.1:0", data,
                                Flag("tls_cert", "server.crt")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--tls_cert and --tls_key"));
  r = RunProcess({server_bin, "--listen=127.0.0.1:0", data,
                  Flag("tls_cert", "server.crt"), Flag("tls_key", "client.key")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("does not match"));
  r = RunProcess({server_bin, "--listen=127.0.0.1:0", data,
                  Flag("tls_client_ca", "ca.crt")});
  EXPECT_EQ(r.exit_code, 2);
  r = RunProcess({server_bin, "--listen=127.0.0.1:0", data,
                  "--max_inflight_rpcs=-1"});
  EXPECT_EQ(r.exit_code, 2);
  // The CLI: a certificate without its key, a missing file.
  r = Strata("127.0.0.1:1", {Flag("tls_cert", "client.crt"), "get", "k"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--tls_cert and --tls_key"));
  r = Strata("127.0.0.1:1", {Flag("tls_ca", "missing.crt"), "get", "k"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("missing.crt"));
}

}  // namespace
}  // namespace strata::testing
