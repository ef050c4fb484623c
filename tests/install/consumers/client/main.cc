// client_consumer HOST:PORT KEY VALUE: puts KEY=VALUE on the server through
// strata::Client and reads it back. Exit 0 and "ok" only if the value read
// is the value written; otherwise the failing step on stderr and exit 1.
#include <cstdio>
#include <optional>
#include <string>

#include "client/strata_client.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: client_consumer HOST:PORT KEY VALUE\n");
    return 2;
  }
  strata::ClientOptions options;
  options.timeout = absl::Seconds(10);
  strata::Client client(argv[1], options);
  absl::StatusOr<strata::Revision> rev = client.Put(argv[2], argv[3]);
  if (!rev.ok()) {
    std::fprintf(stderr, "client_consumer: put: %s\n",
                 rev.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::optional<std::string>> v = client.Get(argv[2]);
  if (!v.ok()) {
    std::fprintf(stderr, "client_consumer: get: %s\n",
                 v.status().ToString().c_str());
    return 1;
  }
  if (!v->has_value() || **v != argv[3]) {
    std::fprintf(stderr, "client_consumer: get: got %s\n",
                 v->has_value() ? (*v)->c_str() : "(missing)");
    return 1;
  }
  std::printf("ok\n");
  return 0;
}
