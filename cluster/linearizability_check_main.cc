// strata-linearizability-check FILE...: checks a history of register
// operations (the JSON-lines format of cluster/linearizability.h; several
// files are one history, e.g. one file per client) for linearizability.
//
// Exit status: 0 linearizable, 1 not linearizable, 2 unknown (the time
// limit or memory budget ran out), usage error, or an unreadable or
// malformed file. Prints one line per key, then the explanation of each
// key that failed, then "verdict: ...".

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "cluster/linearizability.h"
#include "common/flag_parsing.h"

ABSL_FLAG(absl::Duration, time_limit, absl::Seconds(300),
          "Give up (exit 2) after this long, e.g. 60s or 5m.");
ABSL_FLAG(int64_t, max_cache_mb, 4096,
          "Memory budget of the search cache of one key, in MiB; a key "
          "needing more is unknown (exit 2).");
ABSL_FLAG(bool, quiet, false, "Print only failures and the verdict.");

namespace {

constexpr int kExitLinearizable = 0;
constexpr int kExitNotLinearizable = 1;
constexpr int kExitUnknownOrUsage = 2;

constexpr char kUsage[] =
    "checks register histories for linearizability.\n"
    "usage: strata-linearizability-check [flags] FILE...\n"
    "FILE: JSON lines, one operation each (format: cluster/linearizability.h).\n"
    "Exit 0 linearizable, 1 not linearizable, 2 unknown or error.\n";

}  // namespace

int main(int argc, char** argv) {
  using strata::cluster::Verdict;
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::EndsWith(path, "linearizability_check_main.cc");
  };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  absl::SetFlagsUsageConfig(usage_config);
  const std::vector<char*> files = strata::common::ParseFlagsOrExit(
      argc, argv, kExitLinearizable, kExitUnknownOrUsage);
  if (files.size() < 2) {
    std::fprintf(stderr, "strata-linearizability-check: %s", kUsage);
    return kExitUnknownOrUsage;
  }
  if (absl::GetFlag(FLAGS_max_cache_mb) <= 0 ||
      absl::GetFlag(FLAGS_time_limit) <= absl::ZeroDuration()) {
    std::fprintf(stderr,
                 "strata-linearizability-check: --time_limit and "
                 "--max_cache_mb must be positive\n");
    return kExitUnknownOrUsage;
  }

  strata::cluster::History history;
  for (size_t i = 1; i < files.size(); ++i) {
    auto part = strata::cluster::ReadHistoryFile(files[i]);
    if (!part.ok()) {
      std::fprintf(stderr, "strata-linearizability-check: %s\n",
                   part.status().ToString().c_str());
      return kExitUnknownOrUsage;
    }
    history.insert(history.end(), part->begin(), part->end());
  }

  strata::cluster::CheckOptions options;
  options.time_limit = absl::GetFlag(FLAGS_time_limit);
  options.max_cache_bytes =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_cache_mb)) << 20;
  const absl::Time start = absl::Now();
  auto result = strata::cluster::CheckHistory(history, options);
  if (!result.ok()) {
    std::fprintf(stderr, "strata-linearizability-check: %s\n",
                 result.status().ToString().c_str());
    return kExitUnknownOrUsage;
  }
  const bool quiet = absl::GetFlag(FLAGS_quiet);
  for (const auto& k : result->keys) {
    if (quiet && k.verdict == Verdict::kLinearizable) continue;
    std::printf("key \"%s\": %s (%zu operations, %zu configurations)\n",
                absl::CHexEscape(k.key).c_str(),
                std::string(VerdictName(k.verdict)).c_str(), k.operations,
                k.configurations);
  }
  for (const auto& k : result->keys) {
    if (!k.explanation.empty()) std::printf("\n%s\n", k.explanation.c_str());
  }
  std::printf("%sverdict: %s (%zu operations, %zu keys, %s)\n",
              result->verdict == Verdict::kLinearizable ? "" : "\n",
              std::string(VerdictName(result->verdict)).c_str(),
              history.size(), result->keys.size(),
              absl::FormatDuration(absl::Now() - start).c_str());
  switch (result->verdict) {
    case Verdict::kLinearizable: return kExitLinearizable;
    case Verdict::kNotLinearizable: return kExitNotLinearizable;
    case Verdict::kUnknown: return kExitUnknownOrUsage;
  }
  return kExitUnknownOrUsage;
}
