#include "server/credentials.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/pem_file.h"
#include "common/tls_channel.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "spdlog/spdlog.h"

namespace strata::server {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

absl::Status FileError(std::string_view flag, const std::string& path,
                       std::string_view what) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s file %s: %s", std::string(flag), path, std::string(what)));
}

// OpenSSL's last error as text (and clears the queue).
std::string OpensslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM data found";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

BioPtr MemBio(const std::string& data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Every certificate in a PEM string, in order.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(
    std::string_view flag, const std::string& path, const std::string& pem) {
  BioPtr bio = MemBio(pem);
  std::vector<X509Ptr> certs;
  while (true) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (cert == nullptr) break;
    certs.emplace_back(cert);
  }
  // The loop ends with a "no start line" error at the end of the data; any
  // other error means a damaged certificate.
  const unsigned long err = ERR_peek_last_error();
  const bool clean_end = ERR_GET_LIB(err) == ERR_LIB_PEM &&
                         ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  if (err != 0 && !clean_end) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    ERR_clear_error();
    return FileError(flag, path, absl::StrFormat("bad PEM certificate (%s)", buf));
  }
  ERR_clear_error();
  if (certs.empty()) {
    return FileError(flag, path,
                     "no PEM certificate in it ('-----BEGIN CERTIFICATE-----')");
  }
  return certs;
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

std::string SubjectOf(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0,
                     XN_FLAG_RFC2253);
  return BioText(bio.get());
}

std::string NotAfterOf(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(bio.get(), X509_get0_notAfter(cert));
  return BioText(bio.get());
}

// Refuses to prompt for a passphrase (OpenSSL's default reads the terminal).
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) {
  return -1;
}

}  // namespace

absl::StatusOr<ServerTlsSummary> ValidateServerTls(
    const ServerTlsOptions& tls) {
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key must be given together");
  }
  if (tls.cert_file.empty()) {
    return absl::InvalidArgumentError(
        tls.client_ca_file.empty()
            ? "TLS is not enabled (no --tls_cert/--tls_key)"
            : "--tls_client_ca needs --tls_cert and --tls_key");
  }
  if (tls.reload_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--tls_reload_interval must be >= 0 (0 = never reload)");
  }
  ServerTlsSummary summary;
  absl::StatusOr<std::string> cert_pem = ReadPemFile("--tls_cert", tls.cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::vector<X509Ptr>> chain =
      ParseCertificates("--tls_cert", tls.cert_file, *cert_pem);
  if (!chain.ok()) return chain.status();
  X509* leaf = chain->front().get();
  summary.chain_length = static_cast<int>(chain->size());
  summary.subject = SubjectOf(leaf);
  summary.not_after = NotAfterOf(leaf);
  summary.expired = X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0 ||
                    X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0;

  absl::StatusOr<std::string> key_pem = ReadPemFile("--tls_key", tls.key_file);
  if (!key_pem.ok()) return key_pem.status();
  BioPtr key_bio = MemBio(*key_pem);
  PkeyPtr key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    return FileError("--tls_key", tls.key_file,
                     "no unencrypted PEM private key in it (" +
                         OpensslError() + ")");
  }
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return FileError("--tls_key", tls.key_file,
                     absl::StrFormat("private key does not match the "
                                     "certificate in %s (%s)",
                                     tls.cert_file, summary.subject));
  }
  if (!tls.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca_pem =
        ReadPemFile("--tls_client_ca", tls.client_ca_file);
    if (!ca_pem.ok()) return ca_pem.status();
    absl::StatusOr<std::vector<X509Ptr>> cas =
        ParseCertificates("--tls_client_ca", tls.client_ca_file, *ca_pem);
    if (!cas.ok()) return cas.status();
    summary.client_cas = static_cast<int>(cas->size());
  }
  return summary;
}

namespace {

// --tls_reload_interval in whole seconds, rounded up (0 = read once), as
// gRPC's FileWatcherCertificateProvider takes it.
int64_t ReloadSeconds(const ServerTlsOptions& tls) {
  return static_cast<int64_t>(
      std::ceil(absl::ToDoubleSeconds(tls.reload_interval)));
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& options) {
  const ServerTlsOptions& tls = options.tls;
  if (!tls.enabled()) {
    if (!tls.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca needs --tls_cert and --tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  absl::StatusOr<ServerTlsSummary> summary = ValidateServerTls(tls);
  if (!summary.ok()) return summary.status();
  const bool mutual = !tls.client_ca_file.empty();
  const grpc_ssl_client_certificate_request_type request_type =
      mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  const int64_t reload_seconds = ReloadSeconds(tls);
  spdlog::info(
      "TLS: certificate {} ({} in chain) expires {}; {}; {}", summary->subject,
      summary->chain_length, summary->not_after,
      mutual ? absl::StrFormat("mutual TLS: client certificates required, "
                               "%d CA(s) from %s",
                               summary->client_cas, tls.client_ca_file)
             : std::string("client certificates not requested"),
      reload_seconds > 0
          ? absl::StrFormat("files re-read every %d s", reload_seconds)
          : std::string("files read once (restart to rotate)"));
  if (summary->expired) {
    spdlog::warn("TLS: the certificate in {} is expired or not yet valid "
                 "(not after {}); clients will refuse it",
                 tls.cert_file, summary->not_after);
  }

  if (reload_seconds == 0) {
    // Re-read: ValidateServerTls has just checked these exact files.
    absl::StatusOr<std::string> cert = ReadPemFile("--tls_cert", tls.cert_file);
    absl::StatusOr<std::string> key = ReadPemFile("--tls_key", tls.key_file);
    if (!cert.ok()) return cert.status();
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions ssl(request_type);
    ssl.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
    if (mutual) {
      absl::StatusOr<std::string> ca =
          ReadPemFile("--tls_client_ca", tls.client_ca_file);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *std::move(ca);
    }
    return grpc::SslServerCredentials(ssl);
  }

  // The provider's refresh thread re-reads the files; a read failure keeps
  // the last good material (gRPC logs it), a changed file is swapped in for
  // new handshakes.
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          tls.key_file, tls.cert_file, mutual ? tls.client_ca_file : "",
          static_cast<unsigned int>(reload_seconds));
  grpc::experimental::TlsServerCredentialsOptions tls_options(provider);
  tls_options.watch_identity_key_cert_pairs();
  if (mutual) tls_options.watch_root_certs();
  tls_options.set_cert_request_type(request_type);
  return grpc::experimental::TlsServerCredentials(tls_options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeNodeChannelCredentials(const ServerTlsOptions& tls,
                           const std::string& peer_ca_file) {
  if (!tls.enabled()) return grpc::InsecureChannelCredentials();
  const bool own_ca = !peer_ca_file.empty();
  const std::string ca_file = own_ca ? peer_ca_file : tls.client_ca_file;
  const char* ca_flag = own_ca ? "--cluster_tls_ca" : "--tls_client_ca";
  if (ca_file.empty()) {
    return absl::InvalidArgumentError(
        "cluster mode with --tls_cert needs --cluster_tls_ca (or "
        "--tls_client_ca): the CA bundle that verifies the other nodes' "
        "certificates");
  }
  if (absl::StatusOr<ServerTlsSummary> own = ValidateServerTls(tls);
      !own.ok()) {
    return own.status();
  }
  absl::StatusOr<std::string> ca = ReadPemFile(ca_flag, ca_file);
  if (!ca.ok()) return ca.status();
  const int64_t reload_seconds = ReloadSeconds(tls);
  if (reload_seconds == 0) {
    absl::StatusOr<std::string> cert = ReadPemFile("--tls_cert", tls.cert_file);
    absl::StatusOr<std::string> key = ReadPemFile("--tls_key", tls.key_file);
    if (!cert.ok()) return cert.status();
    if (!key.ok()) return key.status();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = *std::move(ca);
    ssl.pem_private_key = *std::move(key);
    ssl.pem_cert_chain = *std::move(cert);
    return grpc::SslCredentials(ssl);
  }
  return FileWatcherTlsChannelCredentials(
      ca_file, tls.cert_file, tls.key_file,
      static_cast<unsigned int>(reload_seconds));
}

bool IsLoopbackListenAddress(std::string_view listen) {
  if (listen.substr(0, 5) == "unix:" || listen.substr(0, 14) == "unix-abstract:") {
    return true;
  }
  const size_t colon = listen.rfind(':');
  std::string host(colon == std::string_view::npos ? listen
                                                   : listen.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace strata::server
