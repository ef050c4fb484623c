#include "server/rpc_registry.h"

#include <string>

#include "absl/strings/str_format.h"

namespace strata::server {

absl::StatusOr<std::string_view> FindMethodName(
    const google::protobuf::Descriptor* request,
    const google::protobuf::Descriptor* response, bool server_streaming) {
  // Every RPC has request and response messages of its own (docs/server.md,
  // "How to add an RPC"), so the pair names one method; the kind tells
  // apart grpc.health.v1's Check and Watch, which share theirs.
  const google::protobuf::FileDescriptor* file = request->file();
  const google::protobuf::MethodDescriptor* found = nullptr;
  int matches = 0;
  for (int s = 0; s < file->service_count(); ++s) {
    const google::protobuf::ServiceDescriptor* service = file->service(s);
    for (int m = 0; m < service->method_count(); ++m) {
      const google::protobuf::MethodDescriptor* method = service->method(m);
      if (method->input_type() == request &&
          method->output_type() == response &&
          method->server_streaming() == server_streaming &&
          !method->client_streaming()) {
        found = method;
        ++matches;
      }
    }
  }
  const char* kind = server_streaming ? "server-streaming" : "unary";
  if (matches == 0) {
    return absl::NotFoundError(absl::StrFormat(
        "no %s method takes %s and returns %s in %s", kind,
        request->full_name(), response->full_name(), file->name()));
  }
  if (matches > 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d %s methods take %s and return %s in %s; give each RPC request "
        "and response messages of its own",
        matches, kind, request->full_name(), response->full_name(),
        file->name()));
  }
  // Descriptors of generated code live as long as the process.
  return std::string_view(found->name());
}

}  // namespace strata::server
