#include "client/strata_client.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_format.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "strata/v1/kv.grpc.pb.h"

namespace strata {
namespace {

// The only place that decides the channel's transport security.
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const ClientOptions& options) {
  if (!options.tls.has_value()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.tls->root_certs_pem;
  ssl.pem_private_key = options.tls->private_key_pem;
  ssl.pem_cert_chain = options.tls->cert_chain_pem;
  return grpc::SslCredentials(ssl);
}

absl::StatusOr<std::string> ReadPemFile(std::string_view flag,
                                        const std::string& path) {
  auto error = [&](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s file %s: %s", std::string(flag), path, std::string(what)));
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) return error(std::strerror(errno));
  std::string data((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) return error("read error");
  if (data.find("-----BEGIN ") == std::string::npos) {
    return error("no PEM data in it ('-----BEGIN ...')");
  }
  return data;
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMicroseconds(timeout));
}

}  // namespace

absl::StatusOr<ClientTlsOptions> LoadClientTlsFiles(
    const std::string& ca_file, const std::string& cert_file,
    const std::string& key_file, const std::string& server_name) {
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key must be given together");
  }
  ClientTlsOptions tls;
  tls.server_name = server_name;
  const struct {
    std::string_view flag;
    const std::string& path;
    std::string* out;
  } files[] = {{"--tls_ca", ca_file, &tls.root_certs_pem},
               {"--tls_cert", cert_file, &tls.cert_chain_pem},
               {"--tls_key", key_file, &tls.private_key_pem}};
  for (const auto& f : files) {
    if (f.path.empty()) continue;
    absl::StatusOr<std::string> pem = ReadPemFile(f.flag, f.path);
    if (!pem.ok()) return pem.status();
    *f.out = *std::move(pem);
  }
  return tls;
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  // grpc::StatusCode and absl::StatusCode share the canonical values.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

struct Client::Stubs {
  std::unique_ptr<v1::KV::Stub> kv;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
};

Client::Client(const std::string& target, const ClientOptions& options)
    : options_(options), stubs_(std::make_unique<Stubs>()) {
  grpc::ChannelArguments args;
  // Values may be up to the server's --max_value_bytes and a Scan message
  // carries one pair of any size: accept whatever the server sends.
  args.SetMaxReceiveMessageSize(-1);
  if (options_.tls.has_value() && !options_.tls->server_name.empty()) {
    args.SetSslTargetNameOverride(options_.tls->server_name);
  }
  channel_ = grpc::CreateCustomChannel(target, MakeChannelCredentials(options_),
                                       args);
  stubs_->kv = v1::KV::NewStub(channel_);
  stubs_->health = grpc::health::v1::Health::NewStub(channel_);
}

Client::~Client() = default;

absl::StatusOr<std::optional<std::string>> Client::Get(std::string_view key) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::GetRequest request;
  request.set_key(key.data(), key.size());
  v1::GetResponse response;
  grpc::Status s = stubs_->kv->Get(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  if (!response.found()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(*response.mutable_value()));
}

absl::Status Client::Put(std::string_view key, std::string_view value) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::PutRequest request;
  request.set_key(key.data(), key.size());
  request.set_value(value.data(), value.size());
  v1::PutResponse response;
  return FromGrpcStatus(stubs_->kv->Put(&ctx, request, &response));
}

absl::Status Client::Delete(std::string_view key) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::DeleteRequest request;
  request.set_key(key.data(), key.size());
  v1::DeleteResponse response;
  return FromGrpcStatus(stubs_->kv->Delete(&ctx, request, &response));
}

absl::Status Client::Write(const std::vector<Mutation>& mutations) {
  if (mutations.empty()) return absl::OkStatus();
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::WriteRequest request;
  request.mutable_mutations()->Reserve(static_cast<int>(mutations.size()));
  for (const Mutation& m : mutations) {
    v1::Mutation* out = request.add_mutations();
    if (m.op == Mutation::Op::kPut) {
      out->mutable_put()->set_key(m.key);
      out->mutable_put()->set_value(m.value);
    } else {
      out->mutable_delete_()->set_key(m.key);
    }
  }
  v1::WriteResponse response;
  return FromGrpcStatus(stubs_->kv->Write(&ctx, request, &response));
}

absl::Status Client::Scan(std::string_view start, std::string_view end,
                          uint32_t limit, bool keys_only,
                          ScanCallback callback) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  v1::ScanRequest request;
  request.set_start_key(start.data(), start.size());
  request.set_end_key(end.data(), end.size());
  request.set_limit(limit);
  request.set_keys_only(keys_only);
  std::unique_ptr<grpc::ClientReader<v1::ScanResponse>> reader =
      stubs_->kv->Scan(&ctx, request);
  v1::ScanResponse response;
  bool stopped = false;
  while (!stopped && reader->Read(&response)) {
    for (const v1::KeyValue& kv : response.pairs()) {
      if (!callback(kv.key(), kv.value())) {
        stopped = true;
        break;
      }
    }
  }
  if (stopped) {
    // Tell the server to stop, then collect the (CANCELLED) status.
    ctx.TryCancel();
    while (reader->Read(&response)) {
    }
    reader->Finish().ok();
    return absl::OkStatus();
  }
  return FromGrpcStatus(reader->Finish());
}

absl::StatusOr<bool> Client::Health(std::string_view service) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, options_.timeout);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(std::string(service));
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status s = stubs_->health->Check(&ctx, request, &response);
  if (!s.ok()) return FromGrpcStatus(s);
  return response.status() ==
         grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace strata
