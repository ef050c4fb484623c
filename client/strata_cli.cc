// strata: command-line client of a Strata storage node (see kUsage below).
//
// Exit codes: 0 ok; 1 key not found (get); 2 usage error (bad command,
// flags or import file); 3 server or transport error, with the gRPC status
// printed on stderr as "strata: CODE: message".

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "common/flag_parsing.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/cli_util.h"
#include "grpc/grpc.h"
#include "client/strata_client.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051",
          "Server address (host:port or any gRPC target).");
ABSL_FLAG(double, timeout, 10, "Deadline of each RPC in seconds.");
ABSL_FLAG(std::string, prefix, "",
          "scan: only keys starting with this prefix.");
ABSL_FLAG(std::string, start, "", "scan: first key (inclusive).");
ABSL_FLAG(std::string, end, "",
          "scan: end key (exclusive); empty = no upper bound.");
ABSL_FLAG(uint32_t, limit, 0, "scan: at most this many pairs; 0 = all.");
ABSL_FLAG(bool, keys_only, false,
          "scan: print keys only (--keys-only also works).");
ABSL_FLAG(bool, tls, false,
          "Connect with TLS, verifying the server against gRPC's default "
          "root CAs ($GRPC_DEFAULT_SSL_ROOTS_FILE_PATH or gRPC's bundle); "
          "implied by the other --tls_* flags.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM bundle of the CAs that may sign the server certificate "
          "(implies TLS).");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate chain for mutual TLS; needs --tls_key.");
ABSL_FLAG(std::string, tls_key, "",
          "PEM private key (unencrypted) of --tls_cert.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the server certificate must carry instead of the host in "
          "--addr (implies TLS).");

namespace {

constexpr int kExitOk = 0;
constexpr int kExitNotFound = 1;
constexpr int kExitUsage = 2;
constexpr int kExitServer = 3;

// import: the most mutations and bytes per Write call.
constexpr size_t kImportBatchMutations = 1000;
constexpr size_t kImportBatchBytes = 4u << 20;

constexpr char kUsage[] =
    R"(command-line client of a Strata storage node.

usage: strata [--addr=HOST:PORT] [--timeout=SECONDS] [TLS flags] COMMAND [ARGS]

commands:
  put KEY VALUE      set KEY to VALUE
  get KEY            print the value of KEY and a newline (exit 1 if missing)
  delete KEY         remove KEY (OK if missing)
  scan [--prefix=P | --start=S --end=E] [--limit=N] [--keys_only]
                     print the pairs in [S, E) (or starting with P) in key
                     order, one "key<TAB>value" line each (keys only with
                     --keys_only, also spelled --keys-only)
  import FILE        load "key<TAB>value" lines from FILE ('-' = stdin) in
                     atomic batches of <= 1000 pairs and <= 4 MiB; progress
                     on stderr, a summary on stdout
  health             print SERVING or NOT_SERVING (exit 0 only when serving)
  help               print this help

flags:
  --addr=HOST:PORT   server address (default 127.0.0.1:50051)
  --timeout=SECONDS  deadline of each RPC (default 10)

TLS (plaintext unless one of these is given; see docs/security.md):
  --tls              TLS, server verified against gRPC's default root CAs
  --tls_ca=FILE      TLS, server verified against these PEM CA certificates
  --tls_cert=FILE --tls_key=FILE
                     client certificate and key (mutual TLS)
  --tls_server_name=NAME
                     expect NAME on the server certificate instead of the
                     host in --addr (e.g. localhost through a port-forward)

Put "--" before KEY or VALUE arguments that start with '-'.

exit codes: 0 ok, 1 key not found (get), 2 usage error,
            3 server or transport error ("strata: CODE: message" on stderr)
)";

std::vector<char*> ParseFlagsOrExit(int argc, char** argv) {
  strata::cli::NormalizeFlagDashes(argc, argv);
  return strata::common::ParseFlagsOrExit(argc, argv, kExitOk, kExitUsage);
}

int UsageError(const std::string& message) {
  std::fprintf(stderr, "strata: %s\n(run 'strata help' for usage)\n",
               message.c_str());
  return kExitUsage;
}

int ServerError(const absl::Status& s) {
  std::fprintf(stderr, "strata: %s: %s\n",
               absl::StatusCodeToString(s.code()).c_str(),
               std::string(s.message()).c_str());
  return kExitServer;
}

void WriteOut(std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); }

int CmdPut(strata::Client& client, const std::vector<std::string>& args) {
  if (args.size() != 2) return UsageError("put takes KEY VALUE");
  absl::Status s = client.Put(args[0], args[1]).status();
  return s.ok() ? kExitOk : ServerError(s);
}

int CmdGet(strata::Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return UsageError("get takes KEY");
  absl::StatusOr<std::optional<std::string>> value = client.Get(args[0]);
  if (!value.ok()) return ServerError(value.status());
  if (!value->has_value()) {
    std::fprintf(stderr, "strata: key not found\n");
    return kExitNotFound;
  }
  WriteOut(**value);
  WriteOut("\n");
  return kExitOk;
}

int CmdDelete(strata::Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return UsageError("delete takes KEY");
  absl::Status s = client.Delete(args[0]).status();
  return s.ok() ? kExitOk : ServerError(s);
}

int CmdScan(strata::Client& client, const std::vector<std::string>& args) {
  if (!args.empty()) {
    return UsageError("scan takes flags only: [--prefix=P | --start=S "
                      "--end=E] [--limit=N] [--keys_only]");
  }
  const std::string prefix = absl::GetFlag(FLAGS_prefix);
  std::string start = absl::GetFlag(FLAGS_start);
  std::string end = absl::GetFlag(FLAGS_end);
  if (!prefix.empty()) {
    if (!start.empty() || !end.empty()) {
      return UsageError("--prefix cannot be combined with --start/--end");
    }
    start = prefix;
    end = strata::cli::PrefixSuccessor(prefix);
  }
  const bool keys_only = absl::GetFlag(FLAGS_keys_only);
  absl::Status s = client.Scan(
      start, end, absl::GetFlag(FLAGS_limit), keys_only,
      [keys_only](std::string_view key, std::string_view value) {
        WriteOut(key);
        if (!keys_only) {
          WriteOut("\t");
          WriteOut(value);
        }
        WriteOut("\n");
        return true;
      });
  std::fflush(stdout);
  return s.ok() ? kExitOk : ServerError(s);
}

int CmdImport(strata::Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return UsageError("import takes FILE ('-' = stdin)");
  const std::string& path = args[0];
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) {
      return UsageError(
          absl::StrFormat("cannot open %s: %s", path, std::strerror(errno)));
    }
    in = &file;
  }
  const std::string name = path == "-" ? "<stdin>" : path;
  const auto start = std::chrono::steady_clock::now();
  auto last_progress = start;
  strata::cli::ImportBatcher batcher(kImportBatchMutations, kImportBatchBytes);
  uint64_t pairs = 0, bytes = 0, batches = 0;

  auto flush = [&]() -> absl::Status {
    const size_t batch_bytes = batcher.bytes();
    std::vector<strata::Mutation> batch = batcher.Take();
    if (batch.empty()) return absl::OkStatus();
    if (absl::Status s = client.Write(batch).status(); !s.ok()) return s;
    pairs += batch.size();
    bytes += batch_bytes;
    batches++;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_progress >= std::chrono::seconds(1)) {
      last_progress = now;
      std::fprintf(stderr, "strata: imported %llu pairs (%.1f MiB)...\n",
                   static_cast<unsigned long long>(pairs),
                   static_cast<double>(bytes) / (1 << 20));
    }
    return absl::OkStatus();
  };

  std::string line;
  uint64_t line_no = 0;
  while (std::getline(*in, line)) {
    line_no++;
    if (line.empty()) continue;
    absl::StatusOr<strata::Mutation> m = strata::cli::ParseImportLine(line);
    if (!m.ok()) {
      std::fprintf(stderr,
                   "strata: %s:%llu: %s; imported %llu pairs before it\n",
                   name.c_str(), static_cast<unsigned long long>(line_no),
                   std::string(m.status().message()).c_str(),
                   static_cast<unsigned long long>(pairs));
      return kExitUsage;
    }
    if (batcher.WouldOverflow(*m)) {
      if (absl::Status s = flush(); !s.ok()) return ServerError(s);
    }
    batcher.Add(*std::move(m));
  }
  if (in->bad()) {
    return UsageError(absl::StrFormat("error reading %s", name));
  }
  if (absl::Status s = flush(); !s.ok()) return ServerError(s);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("imported %llu pairs (%llu bytes) in %llu writes in %.2f s\n",
              static_cast<unsigned long long>(pairs),
              static_cast<unsigned long long>(bytes),
              static_cast<unsigned long long>(batches), seconds);
  return kExitOk;
}

// --tls* -> options.tls (left unset = plaintext when none is given).
// Returns kExitOk, or kExitUsage after printing why.
int TlsFromFlags(strata::ClientOptions* options) {
  const std::string ca = absl::GetFlag(FLAGS_tls_ca);
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  const std::string server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (!absl::GetFlag(FLAGS_tls) && ca.empty() && cert.empty() &&
      key.empty() && server_name.empty()) {
    return kExitOk;
  }
  absl::StatusOr<strata::ClientTlsOptions> tls =
      strata::LoadClientTlsFiles(ca, cert, key, server_name);
  if (!tls.ok()) return UsageError(std::string(tls.status().message()));
  options->tls = *std::move(tls);
  return kExitOk;
}

int CmdHealth(strata::Client& client, const std::vector<std::string>& args) {
  if (!args.empty()) return UsageError("health takes no arguments");
  absl::StatusOr<bool> serving = client.Health();
  if (!serving.ok()) return ServerError(serving.status());
  std::printf("%s\n", *serving ? "SERVING" : "NOT_SERVING");
  return *serving ? kExitOk : kExitServer;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "client/strata_cli.cc");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  usage_config.normalize_filename = [](absl::string_view path) {
    const size_t pos = path.rfind("client/strata_cli.cc");
    return std::string(pos == absl::string_view::npos ? path
                                                      : path.substr(pos));
  };
  absl::SetFlagsUsageConfig(usage_config);
  const std::vector<char*> positional = ParseFlagsOrExit(argc, argv);
  if (positional.size() < 2) {
    std::fprintf(stderr, "strata: %s", kUsage);
    return kExitUsage;
  }
  const std::string command = positional[1];
  const std::vector<std::string> args(positional.begin() + 2, positional.end());
  if (command == "help") {
    std::printf("strata: %s", kUsage);
    return kExitOk;
  }
  // Keep gRPC initialized until exit: the final grpc_shutdown (run when
  // the last channel goes away) may block for seconds on a pending timer.
  grpc_init();
  const double timeout = absl::GetFlag(FLAGS_timeout);
  if (!(timeout > 0)) return UsageError("--timeout must be > 0 seconds");
  if (command != "scan" &&
      (!absl::GetFlag(FLAGS_prefix).empty() ||
       !absl::GetFlag(FLAGS_start).empty() || !absl::GetFlag(FLAGS_end).empty() ||
       absl::GetFlag(FLAGS_limit) != 0 || absl::GetFlag(FLAGS_keys_only))) {
    return UsageError("--prefix, --start, --end, --limit and --keys_only "
                      "apply to scan only");
  }

  strata::ClientOptions options;
  options.timeout = absl::Seconds(timeout);
  if (int code = TlsFromFlags(&options); code != kExitOk) return code;
  strata::Client client(absl::GetFlag(FLAGS_addr), options);
  if (command == "put") return CmdPut(client, args);
  if (command == "get") return CmdGet(client, args);
  if (command == "delete") return CmdDelete(client, args);
  if (command == "scan") return CmdScan(client, args);
  if (command == "import") return CmdImport(client, args);
  if (command == "health") return CmdHealth(client, args);
  return UsageError(absl::StrFormat("unknown command '%s'", command));
}
