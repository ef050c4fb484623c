// strata: command-line client of a Strata storage node (see kUsage below).
//
// Exit codes: 0 ok (watch: also when stopped by SIGINT/SIGTERM); 1 key not
// found (get, batch-get, incr --must_exist, json; json also for a pointer
// that does not resolve); 2 usage error (bad command, flags or import
// file); 3 server or transport error, with the gRPC status printed on
// stderr as "strata: CODE: message".

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <istream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "common/flag_parsing.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/cli_util.h"
#include "client/cluster_cli.h"
#include "grpc/grpc.h"
#include "client/strata_client.h"
#include "server/backup_archive.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051",
          "Server address (host:port or any gRPC target).");
ABSL_FLAG(double, timeout, 10, "Deadline of each RPC in seconds.");
ABSL_FLAG(std::string, prefix, "",
          "scan, watch, delete-range: the keys starting with this prefix.");
ABSL_FLAG(std::string, start, "", "scan: first key (inclusive).");
ABSL_FLAG(std::string, end, "",
          "scan: end key (exclusive); empty = no upper bound.");
ABSL_FLAG(uint32_t, limit, 0, "scan: at most this many pairs; 0 = all.");
ABSL_FLAG(bool, keys_only, false,
          "scan: print keys only (--keys-only also works).");
ABSL_FLAG(int64_t, revision, 0,
          "get, scan, batch-get: read as of this revision; 0 = the latest.");
ABSL_FLAG(bool, reverse, false, "scan: descending key order.");
ABSL_FLAG(bool, w, false,
          "-w: print revisions: put, delete, delete-range the revision they "
          "committed at; get the key's metadata; scan, batch-get the "
          "revision read at.");
ABSL_FLAG(int64_t, from, 0,
          "watch: the first revision to print; 0 = changes from now on.");
ABSL_FLAG(bool, prev_kv, false,
          "watch: print each key's previous state; delete-range: print the "
          "deleted pairs.");
ABSL_FLAG(absl::Duration, ttl, absl::ZeroDuration(),
          "put: the key expires this long after the write (e.g. 30s, 500ms; "
          "docs/expiry.md).");
ABSL_FLAG(int64_t, lease, 0,
          "put: attach the key to this lease (strata lease grant).");
ABSL_FLAG(bool, keys, false, "lease ttl: also list the lease's keys.");
ABSL_FLAG(int64_t, since, 0,
          "backup create: an incremental backup of the changes committed "
          "after this revision (e.g. the previous backup's); 0 = a full "
          "backup.");
ABSL_FLAG(bool, all, false,
          "watch, delete-range: every key (delete-range needs it to delete "
          "everything).");
ABSL_FLAG(double, resume_timeout, 60,
          "watch: when the stream breaks (server restart, dropped "
          "connection), keep reconnecting for this many seconds, resuming "
          "after the last revision printed; 0 = exit at once.");
ABSL_FLAG(std::string, type, "bytes",
          "put: the value's type: bytes (default), text, int64 or json; the "
          "server checks it (docs/values.md).");
ABSL_FLAG(bool, must_exist, false,
          "incr: a missing key is an error (exit 1) instead of counting "
          "from 0.");
ABSL_FLAG(bool, json_patch, false,
          "json patch: PATCH is a JSON Patch (RFC 6902, an array of "
          "operations) instead of a JSON Merge Patch (RFC 7386).");
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
ABSL_FLAG(std::string, namespace, "",
          "The namespace of every command that names keys "
          "(docs/namespaces.md); empty = the default namespace. -n is the "
          "same.");
ABSL_FLAG(std::string, n, "", "Short for --namespace.");
// Optional flags: ns update changes only the quotas it is given.
ABSL_FLAG(std::optional<uint64_t>, quota_bytes, std::nullopt,
          "ns create, ns update: the namespace's quota of bytes (keys + "
          "values); 0 = unlimited. ns update leaves it as it is when not "
          "given (ns create: 0).");
ABSL_FLAG(std::optional<uint64_t>, quota_keys, std::nullopt,
          "ns create, ns update: the namespace's quota of keys; 0 = "
          "unlimited. ns update leaves it as it is when not given (ns "
          "create: 0).");
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
    R"usage(command-line client of a Strata storage node.

usage: strata [--addr=HOST:PORT] [--timeout=SECONDS] [-n NAMESPACE] [TLS flags]
              COMMAND [ARGS]

commands:
  put [-w] [--type=T] [--ttl=DURATION] [--lease=ID] KEY VALUE
                     set KEY to VALUE (-w: print "revision R", the revision
                     it committed at); --type=text|int64|json makes it a
                     typed value, checked by the server (a JSON value is
                     stored normalized; docs/values.md); --ttl=30s: the key
                     expires 30 s after the write; --lease=ID: it is
                     deleted with the lease
  get [--revision=R] [-w] KEY
                     print the value of KEY and a newline (exit 1 if
                     missing), as of revision R (default: the latest); -w
                     prints "KEY = VALUE" and a line "create_revision C,
                     mod_revision M, version V (read at revision R)"
                     (", type T" after V for a typed value)
  delete [-w] KEY    remove KEY (OK if missing; -w: print "revision R")
  incr [-w] [--must_exist] KEY [DELTA]
                     add DELTA (default 1; negative: put "--" before it)
                     to the int64 value of KEY atomically and print the new
                     value; a missing key counts from 0 (--must_exist:
                     exit 1)
  json get [-w] KEY [POINTER]
                     print the JSON at POINTER (RFC 6901, e.g. /a/0; default:
                     the whole document) of the json value of KEY (exit 1 if
                     the key or the pointer is missing)
  json patch [-w] [--json_patch] KEY PATCH
                     apply a JSON Merge Patch (RFC 7386: '{"a":2,"b":null}'
                     sets a, removes b) or, with --json_patch, a JSON Patch
                     (RFC 6902: '[{"op":"add","path":"/a","value":2}]') to
                     the json value of KEY atomically; print the new
                     document
  scan [--prefix=P | --start=S --end=E] [--limit=N] [--keys_only]
       [--revision=R] [--reverse] [-w]
                     print the pairs in [S, E) (or starting with P) in key
                     order (descending with --reverse), one "key<TAB>value"
                     line each (keys only with --keys_only, also spelled
                     --keys-only), as of revision R; -w ends with a line
                     "(read at revision R)"
  batch-get [--revision=R] [-w] KEY...
                     read the KEYs at one revision: a "key<TAB>value" line
                     per key found, in argument order; missing keys are
                     named on stderr (exit 1)
  delete-range START END | --prefix=P | --all [--prev_kv] [-w]
                     delete the keys in [START, END) (END > START), or
                     starting with P, or every key (only with --all), at one
                     revision; prints "deleted N" (--prev_kv first prints the
                     deleted pairs as "key<TAB>value" lines; -w adds
                     "revision R")
  watch KEY | --prefix=P | --all [--from=REV] [--prev_kv]
                     print every change, one line each, flushed:
                       PUT key value revision
                       DELETE key revision
                     (--prev_kv: after it "PREV key value mod_revision"
                     when the key existed before) from revision REV (default:
                     from now on) until Ctrl-C or SIGTERM (exit 0). When the
                     stream breaks (server restart) it reconnects and goes
                     on after the last revision printed, for up to
                     --resume_timeout=SECONDS (default 60; 0 = exit 3 at
                     once). If the changes it needs are compacted: exit 3,
                     naming the compacted revision C: read at C (scan
                     --revision=C), then watch --from=C+1
  compact REV        discard the history before revision REV: reads below
                     REV, and watches from REV or below, fail afterwards
  txn [-w] [FILE]    run a transaction (docs/transactions.md) read from
                     FILE (default '-' = stdin), one statement a line:
                       compare KEY version|create|mod|value|int =|!=|>|< X
                       compare-range START END ...  compare-prefix P ...
                       then|else get KEY | put KEY VALUE | delete KEY
                       then|else scan START END [LIMIT] | scan-prefix P [LIMIT]
                       then|else incr KEY DELTA | json-get KEY [POINTER]
                       then|else json-merge KEY PATCH | json-patch KEY PATCH
                     ("double quotes" for blanks and C escapes; int compares
                     an int64 value as a number). If every compare holds
                     the then-ops run, else the else-ops, at one revision.
                     Prints SUCCESS or FAILURE, then per op: put/delete
                     "OK"; get "key<TAB>value" (or "(not found) KEY"); scan
                     its "key<TAB>value" lines; incr the new value; json-get
                     the JSON; json-merge/json-patch the new document; -w
                     adds "revision R". Exit 1 when the compares failed
  import FILE        load "key<TAB>value" lines from FILE ('-' = stdin) in
                     atomic batches of <= 1000 pairs and <= 4 MiB; progress
                     on stderr, a summary on stdout
  lease grant DURATION
                     create a lease (e.g. 10s, whole seconds); prints its id
  lease keepalive ID renew the lease every third of its TTL until Ctrl-C or
                     SIGTERM (exit 0), printing "lease ID ttl N" each time;
                     exit 3 when it is lost (expired or revoked)
  lease revoke ID    end the lease now: its keys are deleted at one revision
  lease ttl ID [--keys]
                     print "lease ID ttl N granted G" (and its keys, one a line)
  lease list         print the ids of the live leases, one a line
  backup create FILE [--since REV]
                     stream a consistent backup of the whole store into
                     FILE (written as FILE.partial, renamed when complete),
                     with progress on stderr (bytes, rate, ETA); prints
                     "backup FILE: revision R, N files, SIZE in T s"
                     (docs/backup.md). --since REV: an incremental backup,
                     the changes after revision REV (the previous backup's);
                     prints "incremental backup FILE: revisions A to B, N
                     batches, M changes, SIZE in T s". With -n NS: a
                     backup of namespace NS only (its keys and quotas;
                     restores alone into a node holding just it)
  backup verify FILE check every checksum of the backup FILE, open the
                     database it holds and count its keys (no server
                     needed); for an incremental, count its batches and
                     changes; exit 1 if it is corrupt (DATA_LOSS naming the
                     file inside it)
  ns create NAME [--quota_bytes=N] [--quota_keys=N]
                     create an empty namespace (docs/namespaces.md); names
                     are 1..255 bytes of [A-Za-z0-9._/-]
  ns delete NAME     delete a namespace and all its keys at once
  ns list [PREFIX]   print "name<TAB>quota_bytes<TAB>quota_keys" per
                     namespace (starting with PREFIX), in name order
  ns update NAME [--quota_bytes=N] [--quota_keys=N]
                     change the quotas given (0 = unlimited); a quota not
                     given stays as it is
  health [SERVICE]   print SERVING or NOT_SERVING (exit 0 only when serving)
                     of the whole server, or of SERVICE: strata.v1.KV, or
                     strata.v1.KV.write (NOT_SERVING while writes are
                     refused, e.g. disk space below --min_free_disk_bytes)
  cluster init|status|add-node|remove-node|drain --etcd=HOST:PORT ...
                     the cluster's operator commands ('strata help' lists
                     them at the end; docs/cluster.md)
  help               print this help

flags:
  --addr=HOST:PORT   server address (default 127.0.0.1:50051)
  --timeout=SECONDS  deadline of each RPC (default 10; watch has none)
  --namespace=NAME, -n NAME
                     the namespace of every command that names keys
                     (default: the default namespace); an unknown one is
                     exit 3 (NOT_FOUND)

TLS (plaintext unless one of these is given; see docs/security.md):
  --tls              TLS, server verified against gRPC's default root CAs
  --tls_ca=FILE      TLS, server verified against these PEM CA certificates
  --tls_cert=FILE --tls_key=FILE
                     client certificate and key (mutual TLS)
  --tls_server_name=NAME
                     expect NAME on the server certificate instead of the
                     host in --addr (e.g. localhost through a port-forward)

Put "--" before KEY or VALUE arguments that start with '-'.

exit codes: 0 ok, 1 key not found (get, batch-get; incr --must_exist,
            json: also a JSON Pointer that does not resolve) or compares
            failed (txn) or a corrupt backup (backup verify), 2 usage error,
            3 server or transport error ("strata: CODE: message" on stderr)
)usage";

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

void WriteRevisionLine(strata::Revision revision) {
  std::printf("revision %lld\n", static_cast<long long>(revision));
}

// Parses a revision argument: an integer >= min.
std::optional<strata::Revision> ParseRevision(std::string_view text,
                                              strata::Revision min) {
  int64_t r;
  if (!absl::SimpleAtoi(absl::string_view(text.data(), text.size()), &r) ||
      r < min) {
    return std::nullopt;
  }
  return r;
}

// --revision, checked (>= 0).
std::optional<strata::Revision> RevisionFlag() {
  const int64_t r = absl::GetFlag(FLAGS_revision);
  if (r < 0) return std::nullopt;
  return r;
}

int CmdPut(strata::Client& client, const std::vector<std::string>& args) {
  if (args.size() != 2) return UsageError("put takes KEY VALUE");
  absl::StatusOr<strata::ValueType> type =
      strata::ParseValueType(absl::GetFlag(FLAGS_type));
  if (!type.ok()) return UsageError(std::string(type.status().message()));
  const absl::Duration ttl = absl::GetFlag(FLAGS_ttl);
  if (ttl < absl::ZeroDuration()) return UsageError("--ttl must be >= 0");
  strata::PutOptions put;
  put.type = *type;
  put.ttl_ms = absl::ToInt64Milliseconds(ttl);
  if (ttl > absl::ZeroDuration() && put.ttl_ms == 0) put.ttl_ms = 1;
  put.lease = absl::GetFlag(FLAGS_lease);
  absl::StatusOr<strata::Revision> r = client.Put(args[0], args[1], put);
  if (!r.ok()) return ServerError(r.status());
  if (absl::GetFlag(FLAGS_w)) WriteRevisionLine(*r);
  return kExitOk;
}

int CmdGet(strata::Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return UsageError("get takes KEY");
  const std::optional<strata::Revision> revision = RevisionFlag();
  if (!revision) return UsageError("--revision must be >= 0");
  absl::StatusOr<strata::GetResult> got =
      client.GetWithMetadata(args[0], *revision);
  if (!got.ok()) return ServerError(got.status());
  const bool metadata = absl::GetFlag(FLAGS_w);
  if (!got->kv.has_value()) {
    if (metadata) {
      std::fprintf(stderr, "strata: key not found (read at revision %lld)\n",
                   static_cast<long long>(got->revision));
    } else {
      std::fprintf(stderr, "strata: key not found\n");
    }
    return kExitNotFound;
  }
  const strata::KeyValue& kv = *got->kv;
  if (metadata) {
    WriteOut(kv.key);
    WriteOut(" = ");
    WriteOut(kv.value);
    const std::string type =
        kv.type == strata::ValueType::kBytes
            ? ""
            : ", type " + strata::ValueTypeName(kv.type);
    std::printf(
        "\ncreate_revision %lld, mod_revision %lld, version %lld%s "
        "(read at revision %lld)\n",
        static_cast<long long>(kv.create_revision),
        static_cast<long long>(kv.mod_revision),
        static_cast<long long>(kv.version), type.c_str(),
        static_cast<long long>(got->revision));
    return kExitOk;
  }
  WriteOut(kv.value);
  WriteOut("\n");
  return kExitOk;
}

int CmdDelete(strata::Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return UsageError("delete takes KEY");
  absl::StatusOr<strata::Revision> r = client.Delete(args[0]);
  if (!r.ok()) return ServerError(r.status());
  if (absl::GetFlag(FLAGS_w)) WriteRevisionLine(*r);
  return kExitOk;
}

// A NOT_FOUND from the typed calls (a missing key, a JSON Pointer that does
// not resolve) exits 1, as get's missing key; other errors exit 3.
int TypedError(const absl::Status& s) {
  if (!absl::IsNotFound(s)) return ServerError(s);
  std::fprintf(stderr, "strata: %s\n", std::string(s.message()).c_str());
  return kExitNotFound;
}

int CmdIncr(strata::Client& client, const std::vector<std::string>& args) {
  if (args.empty() || args.size() > 2) {
    return UsageError("incr takes KEY [DELTA]");
  }
  int64_t delta = 1;
  if (args.size() == 2 &&
      !absl::SimpleAtoi(absl::string_view(args[1]), &delta)) {
    return UsageError("incr: DELTA must be an integer (put \"--\" before a "
                      "negative one)");
  }
  strata::IncrementOptions options;
  options.must_exist = absl::GetFlag(FLAGS_must_exist);
  absl::StatusOr<strata::IncrementResult> r =
      client.Increment(args[0], delta, options);
  if (!r.ok()) return TypedError(r.status());
  std::printf("%lld\n", static_cast<long long>(r->value));
  if (absl::GetFlag(FLAGS_w)) WriteRevisionLine(r->revision);
  return kExitOk;
}

int CmdJson(strata::Client& client, const std::vector<std::string>& args) {
  const std::string sub = args.empty() ? "" : args[0];
  absl::StatusOr<strata::JsonResult> r;
  if (sub == "get" && (args.size() == 2 || args.size() == 3)) {
    r = client.JsonGet(args[1], args.size() == 3 ? args[2] : "");
  } else if (sub == "patch" && args.size() == 3) {
    r = client.JsonUpdate(args[1],
                          absl::GetFlag(FLAGS_json_patch)
                              ? strata::JsonPatchKind::kJsonPatch
                              : strata::JsonPatchKind::kMergePatch,
                          args[2]);
  } else {
    return UsageError(
        "json takes: get KEY [POINTER] | patch [--json_patch] KEY PATCH");
  }
  if (!r.ok()) return TypedError(r.status());
  WriteOut(r->json);
  WriteOut("\n");
  if (absl::GetFlag(FLAGS_w)) WriteRevisionLine(r->revision);
  return kExitOk;
}

int CmdScan(strata::Client& client, const std::vector<std::string>& args) {
  if (!args.empty()) {
    return UsageError("scan takes flags only: [--prefix=P | --start=S "
                      "--end=E] [--limit=N] [--keys_only] [--revision=R] "
                      "[--reverse] [-w]");
  }
  const std::optional<strata::Revision> revision = RevisionFlag();
  if (!revision) return UsageError("--revision must be >= 0");
  const std::string prefix = absl::GetFlag(FLAGS_prefix);
  strata::ScanOptions options;
  options.start = absl::GetFlag(FLAGS_start);
  options.end = absl::GetFlag(FLAGS_end);
  if (!prefix.empty()) {
    if (!options.start.empty() || !options.end.empty()) {
      return UsageError("--prefix cannot be combined with --start/--end");
    }
    options.start = prefix;
    options.end = strata::cli::PrefixSuccessor(prefix);
  }
  options.limit = absl::GetFlag(FLAGS_limit);
  options.keys_only = absl::GetFlag(FLAGS_keys_only);
  options.revision = *revision;
  options.reverse = absl::GetFlag(FLAGS_reverse);
  const bool keys_only = options.keys_only;
  absl::StatusOr<strata::Revision> read_at =
      client.Scan(options, [keys_only](const strata::KeyValue& kv) {
        WriteOut(kv.key);
        if (!keys_only) {
          WriteOut("\t");
          WriteOut(kv.value);
        }
        WriteOut("\n");
        return true;
      });
  if (read_at.ok() && absl::GetFlag(FLAGS_w)) {
    std::printf("(read at revision %lld)\n", static_cast<long long>(*read_at));
  }
  std::fflush(stdout);
  return read_at.ok() ? kExitOk : ServerError(read_at.status());
}

int CmdBatchGet(strata::Client& client, const std::vector<std::string>& args) {
  if (args.empty()) return UsageError("batch-get takes KEY...");
  const std::optional<strata::Revision> revision = RevisionFlag();
  if (!revision) return UsageError("--revision must be >= 0");
  absl::StatusOr<strata::BatchGetResult> got =
      client.BatchGet(args, *revision);
  if (!got.ok()) return ServerError(got.status());
  int exit_code = kExitOk;
  for (size_t i = 0; i < got->kvs.size(); ++i) {
    if (!got->kvs[i].has_value()) {
      std::fflush(stdout);  // Keep stdout and stderr in argument order.
      std::fprintf(stderr, "strata: key not found: %s\n", args[i].c_str());
      exit_code = kExitNotFound;
      continue;
    }
    WriteOut(got->kvs[i]->key);
    WriteOut("\t");
    WriteOut(got->kvs[i]->value);
    WriteOut("\n");
  }
  if (absl::GetFlag(FLAGS_w)) {
    std::printf("(read at revision %lld)\n",
                static_cast<long long>(got->revision));
  }
  return exit_code;
}

int CmdDeleteRange(strata::Client& client,
                   const std::vector<std::string>& args) {
  const std::string prefix = absl::GetFlag(FLAGS_prefix);
  const bool all = absl::GetFlag(FLAGS_all);
  const int forms = (args.empty() ? 0 : 1) + (prefix.empty() ? 0 : 1) +
                    (all ? 1 : 0);
  if (forms != 1 || (!args.empty() && args.size() != 2)) {
    return UsageError(
        "delete-range takes START END, --prefix=P or --all (one of them; "
        "deleting every key needs --all)");
  }
  std::string start, end;
  if (!args.empty()) {
    start = args[0];
    end = args[1];
    if (end.empty() || end <= start) {
      return UsageError(
          "delete-range START END: END must be greater than START (to "
          "delete to the last key, use --prefix or --all)");
    }
  } else if (!prefix.empty()) {
    start = prefix;
    end = strata::cli::PrefixSuccessor(prefix);
  }
  const bool prev_kv = absl::GetFlag(FLAGS_prev_kv);
  absl::StatusOr<strata::DeleteRangeResult> r =
      client.DeleteRange(start, end, prev_kv);
  if (!r.ok()) return ServerError(r.status());
  for (const strata::KeyValue& kv : r->prev_kvs) {
    WriteOut(kv.key);
    WriteOut("\t");
    WriteOut(kv.value);
    WriteOut("\n");
  }
  std::printf("deleted %lld\n", static_cast<long long>(r->deleted));
  if (absl::GetFlag(FLAGS_w)) WriteRevisionLine(r->revision);
  return kExitOk;
}

int CmdCompact(strata::Client& client, const std::vector<std::string>& args) {
  std::optional<strata::Revision> revision;
  if (args.size() == 1) revision = ParseRevision(args[0], 1);
  if (!revision) return UsageError("compact takes REV, a revision >= 1");
  absl::StatusOr<strata::Revision> r = client.Compact(*revision);
  return r.ok() ? kExitOk : ServerError(r.status());
}

// Ctrl-C and SIGTERM during `watch`: both are blocked in every thread
// (BlockSignals runs before gRPC starts any) and taken by one thread with
// sigwait, which cancels the stream; the main thread's Next then returns
// and the command exits 0. A second signal exits at once.
class WatchInterrupter {
 public:
  // REQUIRES: no other thread runs yet.
  static void BlockSignals() {
    sigset_t set = Signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }

  explicit WatchInterrupter(strata::WatchStream* stream) : stream_(stream) {
    thread_ = std::thread([this] { Run(); });
  }
  // Stops the signal thread (with a signal of its own set, to wake
  // sigwait).
  ~WatchInterrupter() {
    {
      absl::MutexLock l(&mu_);
      stream_ = nullptr;
    }
    pthread_kill(thread_.native_handle(), SIGTERM);
    thread_.join();
  }

  bool interrupted() const { return interrupted_.load(); }

 private:
  static sigset_t Signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
  }

  void Run() {
    const sigset_t set = Signals();
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      absl::MutexLock l(&mu_);
      if (stream_ == nullptr) return;  // The destructor woke us.
      if (interrupted_.exchange(true)) std::_Exit(kExitOk);
      stream_->Cancel();
    }
  }

  absl::Mutex mu_;
  strata::WatchStream* stream_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> interrupted_{false};
  std::thread thread_;
};

void PrintWatchEvent(const strata::WatchEvent& e) {
  if (e.type == strata::WatchEvent::Type::kPut) {
    WriteOut("PUT ");
    WriteOut(e.kv.key);
    WriteOut(" ");
    WriteOut(e.kv.value);
  } else {
    WriteOut("DELETE ");
    WriteOut(e.kv.key);
  }
  std::printf(" %lld\n", static_cast<long long>(e.revision()));
  if (e.prev_kv.has_value()) {
    WriteOut("PREV ");
    WriteOut(e.prev_kv->key);
    WriteOut(" ");
    WriteOut(e.prev_kv->value);
    std::printf(" %lld\n", static_cast<long long>(e.prev_kv->mod_revision));
  }
}

int CmdWatch(strata::Client& client, const std::vector<std::string>& args) {
  const std::string prefix = absl::GetFlag(FLAGS_prefix);
  const bool all = absl::GetFlag(FLAGS_all);
  const int forms = (args.empty() ? 0 : 1) + (prefix.empty() ? 0 : 1) +
                    (all ? 1 : 0);
  if (forms != 1 || args.size() > 1) {
    return UsageError("watch takes KEY, --prefix=P or --all (one of them)");
  }
  const int64_t from = absl::GetFlag(FLAGS_from);
  if (from < 0) return UsageError("--from must be >= 0 (0 = from now on)");
  const double resume = absl::GetFlag(FLAGS_resume_timeout);
  if (!(resume >= 0)) return UsageError("--resume_timeout must be >= 0");

  strata::WatchOptions options;
  if (!args.empty()) {
    options.key = args[0];
  } else if (!prefix.empty()) {
    options.key = prefix;
    options.range_end = strata::cli::PrefixSuccessor(prefix);
  }
  // An empty successor (--all, or a prefix of 0xff bytes): every key from
  // options.key on.
  if (args.empty() && options.range_end.empty()) {
    options.range_end = std::string(1, '\0');
  }
  options.start_revision = from;
  options.prev_kv = absl::GetFlag(FLAGS_prev_kv);
  options.resume_timeout = absl::Seconds(resume);
  options.on_resume = [](const absl::Status& cause, strata::Revision next) {
    std::fprintf(stderr,
                 "strata: watch stream broke (%s: %s); resuming from "
                 "revision %lld\n",
                 absl::StatusCodeToString(cause.code()).c_str(),
                 std::string(cause.message()).c_str(),
                 static_cast<long long>(next));
  };
  std::unique_ptr<strata::WatchStream> stream = client.Watch(options);
  absl::Status status;
  bool interrupted;
  {
    WatchInterrupter interrupter(stream.get());
    while (true) {
      absl::StatusOr<strata::WatchBatch> batch = stream->Next();
      if (!batch.ok()) {
        status = batch.status();
        break;
      }
      for (const strata::WatchEvent& e : batch->events) PrintWatchEvent(e);
      std::fflush(stdout);
    }
    interrupted = interrupter.interrupted();
  }
  if (interrupted) return kExitOk;
  const int code = ServerError(status);
  if (absl::IsOutOfRange(status) && stream->compact_revision() > 0) {
    const long long c = static_cast<long long>(stream->compact_revision());
    std::fprintf(stderr,
                 "strata: the changes up to revision %lld are compacted: "
                 "read the state at revision %lld (strata scan "
                 "--revision=%lld ...), then watch --from=%lld\n",
                 c, c, c, c + 1);
  }
  return code;
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

int CmdTxn(strata::Client& client, const std::vector<std::string>& args) {
  if (args.size() > 1) return UsageError("txn takes [FILE] ('-' = stdin)");
  const std::string path = args.empty() ? "-" : args[0];
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin),
                std::istreambuf_iterator<char>());
  } else {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      return UsageError(
          absl::StrFormat("cannot open %s: %s", path, std::strerror(errno)));
    }
    text.assign(std::istreambuf_iterator<char>(file),
                std::istreambuf_iterator<char>());
  }
  absl::StatusOr<strata::cli::TxnScript> script =
      strata::cli::ParseTxnScript(text);
  if (!script.ok()) {
    return UsageError(absl::StrFormat(
        "txn %s: %s", path == "-" ? "<stdin>" : path,
        std::string(script.status().message())));
  }
  absl::StatusOr<strata::TxnResult> r =
      client.Txn(script->compares, script->success, script->failure);
  if (!r.ok()) return ServerError(r.status());
  std::printf("%s\n", r->succeeded ? "SUCCESS" : "FAILURE");
  const std::vector<strata::TxnOp>& ops =
      r->succeeded ? script->success : script->failure;
  for (size_t i = 0; i < r->results.size(); ++i) {
    const strata::TxnOpResult& result = r->results[i];
    switch (result.type) {
      case strata::TxnOp::Type::kPut:
      case strata::TxnOp::Type::kDelete:
        WriteOut("OK\n");
        break;
      case strata::TxnOp::Type::kGet:
        if (result.kv.has_value()) {
          WriteOut(result.kv->key);
          WriteOut("\t");
          WriteOut(result.kv->value);
        } else {
          WriteOut("(not found) ");
          WriteOut(ops[i].key);
        }
        WriteOut("\n");
        break;
      case strata::TxnOp::Type::kScan:
        for (const strata::KeyValue& kv : result.kvs) {
          WriteOut(kv.key);
          WriteOut("\t");
          WriteOut(kv.value);
          WriteOut("\n");
        }
        break;
      case strata::TxnOp::Type::kIncrement:
        std::printf("%lld\n", static_cast<long long>(result.counter));
        break;
      case strata::TxnOp::Type::kJsonGet:
      case strata::TxnOp::Type::kJsonUpdate:
        WriteOut(result.json);
        WriteOut("\n");
        break;
    }
  }
  if (absl::GetFlag(FLAGS_w)) WriteRevisionLine(r->revision);
  return r->succeeded ? kExitOk : kExitNotFound;
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
  if (args.size() > 1) return UsageError("health takes at most one SERVICE");
  absl::StatusOr<bool> serving = client.Health(args.empty() ? "" : args[0]);
  if (!serving.ok()) return ServerError(serving.status());
  std::printf("%s\n", *serving ? "SERVING" : "NOT_SERVING");
  return *serving ? kExitOk : kExitServer;
}

// Blocks SIGINT and SIGTERM (before gRPC starts threads) for `lease
// keepalive`, which waits for them between renewals.
sigset_t ShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

std::optional<int64_t> LeaseIdArg(const std::string& arg) {
  int64_t id = 0;
  if (!absl::SimpleAtoi(arg, &id) || id <= 0) return std::nullopt;
  return id;
}

int CmdLeaseKeepAlive(strata::Client& client, int64_t id) {
  const sigset_t signals = ShutdownSignals();
  while (true) {
    absl::StatusOr<int64_t> ttl = client.LeaseKeepAlive(id);
    if (!ttl.ok()) return ServerError(ttl.status());
    std::printf("lease %lld ttl %lld\n", static_cast<long long>(id),
                static_cast<long long>(*ttl));
    std::fflush(stdout);
    const int64_t wait_ms = std::max<int64_t>(100, *ttl * 1000 / 3);
    timespec ts{static_cast<time_t>(wait_ms / 1000),
                static_cast<long>(wait_ms % 1000) * 1000000L};
    if (sigtimedwait(&signals, nullptr, &ts) > 0) return kExitOk;
  }
}

int CmdNamespace(strata::Client& client,
                 const std::vector<std::string>& args) {
  const std::string sub = args.empty() ? "" : args[0];
  // nullopt: not given (ns update keeps that quota; ns create uses 0).
  const std::optional<uint64_t> new_bytes = absl::GetFlag(FLAGS_quota_bytes);
  const std::optional<uint64_t> new_keys = absl::GetFlag(FLAGS_quota_keys);
  if (sub == "list" && args.size() <= 2) {
    absl::StatusOr<std::vector<strata::NamespaceInfo>> list =
        client.ListNamespaces(args.size() == 2 ? args[1] : "");
    if (!list.ok()) return ServerError(list.status());
    for (const strata::NamespaceInfo& n : *list) {
      std::printf("%s\t%llu\t%llu\n", n.name.c_str(),
                  static_cast<unsigned long long>(n.quota_bytes),
                  static_cast<unsigned long long>(n.quota_keys));
    }
    return kExitOk;
  }
  if (args.size() != 2 ||
      (sub != "create" && sub != "delete" && sub != "update")) {
    return UsageError(
        "ns takes: create NAME [--quota_bytes=N] [--quota_keys=N] | delete "
        "NAME | list [PREFIX] | update NAME [--quota_bytes=N] "
        "[--quota_keys=N]");
  }
  // Only the quotas given change; the server keeps the other atomically.
  if (sub == "update" && !new_bytes && !new_keys) {
    return UsageError("ns update takes --quota_bytes=N, --quota_keys=N or both");
  }
  absl::StatusOr<strata::Revision> r =
      sub == "create"   ? client.CreateNamespace(args[1], new_bytes.value_or(0),
                                                 new_keys.value_or(0))
      : sub == "delete" ? client.DeleteNamespace(args[1])
                        : client.UpdateNamespace(args[1], new_bytes, new_keys);
  if (!r.ok()) return ServerError(r.status());
  WriteRevisionLine(*r);
  return kExitOk;
}

int CmdLease(strata::Client& client, const std::vector<std::string>& args) {
  const std::string sub = args.empty() ? "" : args[0];
  if (sub == "list" && args.size() == 1) {
    absl::StatusOr<std::vector<int64_t>> ids = client.LeaseLeases();
    if (!ids.ok()) return ServerError(ids.status());
    for (int64_t id : *ids) std::printf("%lld\n", static_cast<long long>(id));
    return kExitOk;
  }
  if (sub == "grant" && args.size() == 2) {
    absl::Duration ttl;
    std::string text = args[1];
    if (!text.empty() && absl::ascii_isdigit(static_cast<unsigned char>(text.back()))) {
      text += "s";  // A bare number is seconds.
    }
    if (!absl::ParseDuration(text, &ttl) || ttl < absl::Seconds(1)) {
      return UsageError("lease grant takes a TTL of at least 1s (e.g. 10s, 5m)");
    }
    absl::StatusOr<int64_t> id = client.LeaseGrant(
        absl::ToInt64Seconds(absl::Ceil(ttl, absl::Seconds(1))));
    if (!id.ok()) return ServerError(id.status());
    std::printf("%lld\n", static_cast<long long>(*id));
    return kExitOk;
  }
  const std::optional<int64_t> id =
      args.size() == 2 ? LeaseIdArg(args[1]) : std::nullopt;
  if (!id) {
    return UsageError(
        "lease takes: grant DURATION | keepalive ID | revoke ID | ttl ID "
        "[--keys] | list (ID > 0)");
  }
  if (sub == "keepalive") return CmdLeaseKeepAlive(client, *id);
  if (sub == "revoke") {
    absl::StatusOr<strata::Revision> r = client.LeaseRevoke(*id);
    if (!r.ok()) return ServerError(r.status());
    WriteRevisionLine(*r);
    return kExitOk;
  }
  if (sub == "ttl") {
    absl::StatusOr<strata::LeaseInfo> info =
        client.LeaseTimeToLive(*id, absl::GetFlag(FLAGS_keys));
    if (!info.ok()) return ServerError(info.status());
    std::printf("lease %lld ttl %lld granted %lld\n",
                static_cast<long long>(info->id),
                static_cast<long long>(info->ttl_seconds),
                static_cast<long long>(info->granted_ttl));
    for (const std::string& k : info->keys) {
      std::fwrite(k.data(), 1, k.size(), stdout);
      std::fputc('\n', stdout);
    }
    return kExitOk;
  }
  return UsageError(absl::StrFormat("unknown lease command '%s'", sub));
}

// "12.3 MiB"
std::string Bytes(double n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (n >= 1024 && u < 4) {
    n /= 1024;
    u++;
  }
  return absl::StrFormat(u == 0 ? "%.0f %s" : "%.1f %s", n, units[u]);
}

int CmdBackupCreate(strata::Client& client, const std::string& path) {
  const int64_t since = absl::GetFlag(FLAGS_since);
  if (since < 0) return UsageError("--since must be >= 0");
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  const auto start = std::chrono::steady_clock::now();
  auto last_print = start - std::chrono::seconds(1);
  auto seconds_since = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  absl::StatusOr<strata::Client::BackupResult> result = client.Backup(
      path, [&](const strata::Client::BackupProgress& p) {
        const auto now = std::chrono::steady_clock::now();
        // A line per second: redrawn in place on a terminal.
        if (now - last_print < std::chrono::seconds(1)) return;
        last_print = now;
        const double elapsed = std::max(seconds_since(), 1e-3);
        const double rate = static_cast<double>(p.bytes) / elapsed;
        if (p.from_revision > 0) {
          // Incremental: the size is not known ahead, the revisions are.
          const double span =
              static_cast<double>(p.revision - p.from_revision);
          const double done =
              static_cast<double>(p.last_revision - p.from_revision);
          std::fprintf(
              stderr,
              "%sincremental backup of revisions %lld to %lld: at %lld "
              "(%.0f%%), %s, %s/s%s",
              tty ? "\r" : "", static_cast<long long>(p.from_revision + 1),
              static_cast<long long>(p.revision),
              static_cast<long long>(p.last_revision),
              span > 0 ? 100.0 * done / span : 100.0,
              Bytes(static_cast<double>(p.bytes)).c_str(),
              Bytes(rate).c_str(), tty ? "" : "\n");
          std::fflush(stderr);
          return;
        }
        const double left =
            rate > 0 ? static_cast<double>(p.total_bytes - std::min(
                                                               p.bytes,
                                                               p.total_bytes)) /
                           rate
                     : 0;
        std::fprintf(stderr,
                     "%sbackup at revision %lld: %s / %s (%.0f%%), %s/s, "
                     "ETA %.0f s%s",
                     tty ? "\r" : "", static_cast<long long>(p.revision),
                     Bytes(static_cast<double>(p.bytes)).c_str(),
                     Bytes(static_cast<double>(p.total_bytes)).c_str(),
                     p.total_bytes > 0 ? 100.0 * static_cast<double>(p.bytes) /
                                             static_cast<double>(p.total_bytes)
                                       : 100.0,
                     Bytes(rate).c_str(), left, tty ? "" : "\n");
        std::fflush(stderr);
      },
      static_cast<strata::Revision>(since));
  if (tty) std::fputc('\n', stderr);
  if (!result.ok()) return ServerError(result.status());
  if (since > 0) {
    std::printf(
        "incremental backup %s: revisions %lld to %lld, %llu batches, %llu "
        "changes, %s in %.1f s\n",
        path.c_str(), static_cast<long long>(result->from_revision + 1),
        static_cast<long long>(result->revision),
        static_cast<unsigned long long>(result->batches),
        static_cast<unsigned long long>(result->changes),
        Bytes(static_cast<double>(result->bytes)).c_str(), seconds_since());
    return kExitOk;
  }
  if (!result->ns.empty()) {
    std::printf(
        "backup %s of namespace %s: revision %lld, %llu entries, %s in %.1f "
        "s\n",
        path.c_str(), result->ns.c_str(),
        static_cast<long long>(result->revision),
        static_cast<unsigned long long>(result->changes),
        Bytes(static_cast<double>(result->bytes)).c_str(), seconds_since());
    return kExitOk;
  }
  std::printf("backup %s: revision %lld, %llu files, %s in %.1f s\n",
              path.c_str(), static_cast<long long>(result->revision),
              static_cast<unsigned long long>(result->files),
              Bytes(static_cast<double>(result->bytes)).c_str(),
              seconds_since());
  return kExitOk;
}

int CmdBackupVerify(const std::string& path) {
  // The engine opens the unpacked backup: keep its info lines (recovery)
  // off stdout, which carries only the verdict.
  spdlog::set_level(spdlog::level::warn);
  absl::StatusOr<strata::server::BackupSummary> summary =
      strata::server::VerifyBackup(path, "");
  if (!summary.ok()) {
    std::fprintf(stderr, "strata: backup %s is NOT valid: %s\n", path.c_str(),
                 summary.status().ToString().c_str());
    return absl::IsDataLoss(summary.status()) ? kExitNotFound : kExitServer;
  }
  if (!summary->namespace_name.empty()) {
    std::printf(
        "backup %s OK: format %u, namespace %s, revision %lld, %llu "
        "entries, %llu bytes\n",
        path.c_str(), summary->format_version,
        summary->namespace_name.c_str(),
        static_cast<long long>(summary->revision),
        static_cast<unsigned long long>(summary->changes),
        static_cast<unsigned long long>(summary->bytes));
    return kExitOk;
  }
  if (summary->from_revision > 0) {
    std::printf(
        "backup %s OK: format %u, incremental, revisions %lld to %lld (since "
        "%lld), %llu batches, %llu changes, %llu bytes\n",
        path.c_str(), summary->format_version,
        static_cast<long long>(summary->from_revision + 1),
        static_cast<long long>(summary->revision),
        static_cast<long long>(summary->from_revision),
        static_cast<unsigned long long>(summary->batches),
        static_cast<unsigned long long>(summary->changes),
        static_cast<unsigned long long>(summary->bytes));
    return kExitOk;
  }
  std::printf(
      "backup %s OK: format %u, revision %lld, %llu files, %llu bytes, %llu "
      "keys (%llu system)\n",
      path.c_str(), summary->format_version,
      static_cast<long long>(summary->revision),
      static_cast<unsigned long long>(summary->files),
      static_cast<unsigned long long>(summary->bytes),
      static_cast<unsigned long long>(summary->keys),
      static_cast<unsigned long long>(summary->system_keys));
  return kExitOk;
}

int CmdBackup(strata::Client& client, const std::vector<std::string>& args) {
  if (args.size() != 2 || (args[0] != "create" && args[0] != "verify")) {
    return UsageError(
        "backup takes: create FILE [--since REV] | verify FILE");
  }
  if (args[0] == "create") return CmdBackupCreate(client, args[1]);
  return CmdBackupVerify(args[1]);
}

using CommandFn = int (*)(strata::Client&, const std::vector<std::string>&);
struct Command {
  std::string_view name;
  CommandFn run;
};
constexpr Command kCommands[] = {
    {"put", CmdPut},           {"get", CmdGet},
    {"delete", CmdDelete},     {"scan", CmdScan},
    {"batch-get", CmdBatchGet}, {"delete-range", CmdDeleteRange},
    {"watch", CmdWatch},       {"compact", CmdCompact},
    {"import", CmdImport},     {"health", CmdHealth},
    {"txn", CmdTxn},
    {"incr", CmdIncr},         {"json", CmdJson},
    {"lease", CmdLease},       {"backup", CmdBackup},
    {"ns", CmdNamespace},
};

// Command flags and the commands they apply to.
struct FlagUse {
  std::string_view flag;
  std::vector<std::string_view> commands;
};
const std::vector<FlagUse>& FlagUses() {
  static const auto* uses = new std::vector<FlagUse>{
      {"prefix", {"scan", "watch", "delete-range"}},
      {"start", {"scan"}},
      {"end", {"scan"}},
      {"limit", {"scan"}},
      {"keys_only", {"scan"}},
      {"revision", {"get", "scan", "batch-get"}},
      {"reverse", {"scan"}},
      {"w",
       {"put", "get", "delete", "scan", "batch-get", "delete-range", "txn",
        "incr", "json"}},
      {"type", {"put"}},
      {"must_exist", {"incr"}},
      {"json_patch", {"json"}},
      {"from", {"watch"}},
      {"resume_timeout", {"watch"}},
      {"prev_kv", {"watch", "delete-range"}},
      {"all", {"watch", "delete-range"}},
      {"ttl", {"put"}},
      {"lease", {"put"}},
      {"keys", {"lease"}},
      {"quota_bytes", {"ns"}},
      {"quota_keys", {"ns"}},
      {"since", {"backup"}},
      {"etcd", {"cluster"}},
      {"etcd_ca", {"cluster"}},
      {"etcd_cert", {"cluster"}},
      {"etcd_key", {"cluster"}},
      {"etcd_user", {"cluster"}},
      {"etcd_password_file", {"cluster"}},
      {"cluster_prefix", {"cluster"}},
      {"nodes", {"cluster"}},
      {"ranges", {"cluster"}},
      {"split_keys", {"cluster"}},
      {"replication_factor", {"cluster"}},
      {"min_in_sync", {"cluster"}},
  };
  return *uses;
}

// Why the command line sets a flag `command` does not take, if it does
// (a flag given its default value counts as not set).
std::optional<std::string> MisusedFlag(std::string_view command) {
  for (const FlagUse& use : FlagUses()) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(
        absl::string_view(use.flag.data(), use.flag.size()));
    if (flag == nullptr || flag->CurrentValue() == flag->DefaultValue()) {
      continue;
    }
    bool applies = false;
    for (std::string_view c : use.commands) applies = applies || c == command;
    if (!applies) {
      return absl::StrFormat("%s%s applies to %s only",
                             use.flag.size() == 1 ? "-" : "--",
                             std::string(use.flag),
                             absl::StrJoin(use.commands, ", ",
                                           [](std::string* out,
                                              std::string_view c) {
                                             out->append(c);
                                           }));
    }
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "client/strata_cli.cc") ||
           absl::EndsWith(path, "client/cluster_cli.cc");
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
    std::printf("strata: %s\ncluster commands (they talk to etcd, not to a "
                "node; docs/cluster.md):\n%s",
                kUsage, strata::cli::kClusterUsage);
    return kExitOk;
  }
  // Signals are blocked before gRPC starts threads, which inherit the mask.
  if (command == "watch") WatchInterrupter::BlockSignals();
  if (command == "lease") {
    const sigset_t signals = ShutdownSignals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  }
  // Keep gRPC initialized until exit: the final grpc_shutdown (run when
  // the last channel goes away) may block for seconds on a pending timer.
  grpc_init();
  const double timeout = absl::GetFlag(FLAGS_timeout);
  if (!(timeout > 0)) return UsageError("--timeout must be > 0 seconds");
  if (std::optional<std::string> misuse = MisusedFlag(command)) {
    return UsageError(*misuse);
  }

  strata::ClientOptions options;
  options.timeout = absl::Seconds(timeout);
  if (command == "cluster") {
    if (int code = TlsFromFlags(&options); code != kExitOk) return code;
    return strata::cli::RunClusterCommand(args, absl::Seconds(timeout),
                                          options);
  }

  options.ns = absl::GetFlag(FLAGS_namespace);
  if (const std::string n = absl::GetFlag(FLAGS_n); !n.empty()) {
    if (!options.ns.empty() && options.ns != n) {
      return UsageError("--namespace and -n name different namespaces");
    }
    options.ns = n;
  }
  if (int code = TlsFromFlags(&options); code != kExitOk) return code;
  strata::Client client(absl::GetFlag(FLAGS_addr), options);
  for (const Command& c : kCommands) {
    if (command == c.name) return c.run(client, args);
  }
  return UsageError(absl::StrFormat("unknown command '%s'", command));
}
