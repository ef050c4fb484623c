#include "common/tls_channel.h"

#include <algorithm>

#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace strata {

std::shared_ptr<grpc::ChannelCredentials> FileWatcherTlsChannelCredentials(
    const std::string& ca_file, const std::string& cert_file,
    const std::string& key_file, unsigned int refresh_seconds) {
  const unsigned int refresh = std::max(1u, refresh_seconds);
  grpc::experimental::TlsChannelCredentialsOptions options;
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (cert_file.empty() && key_file.empty()) {
    provider =
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
            ca_file, refresh);
  } else {
    provider =
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
            key_file, cert_file, ca_file, refresh);
    options.watch_identity_key_cert_pairs();
  }
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace strata
