// strata-verify: checks every file of a Strata data directory (CURRENT, the
// manifest, every SSTable block and every WAL record with their checksums)
// and reports problems. Read-only; refuses to run while a server holds the
// directory's LOCK.
//
//   strata-verify [--verbose] [--data_dir=]DIR
//
// Exit codes: 0 no errors (warnings about crash leftovers are allowed);
// 1 errors found (corruption or inconsistency: each printed as
// "ERROR: <file>: <problem>"); 2 bad usage, or the directory could not be
// verified (missing, not a database, locked).

#include <cstdio>
#include <string>
#include <string_view>

#include "spdlog/spdlog.h"
#include "tools/verify.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitProblems = 1;
constexpr int kExitUsage = 2;

int Usage(const char* why) {
  std::fprintf(stderr,
               "strata-verify: %s\n"
               "usage: strata-verify [--verbose] [--data_dir=]DIR\n"
               "Checks every file and checksum of a Strata data directory "
               "(stop the server first).\n"
               "Exit: 0 clean, 1 problems found, 2 usage or cannot verify.\n",
               why);
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  strata::storage::VerifyOptions options;
  std::string dir;
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if (arg == "--verbose" || arg == "-v") {
      options.verbose = true;
    } else if (arg == "--help" || arg == "-h") {
      Usage("verify a data directory");
      return kExitOk;
    } else if (arg.substr(0, 11) == "--data_dir=") {
      dir = std::string(arg.substr(11));
    } else if (!arg.empty() && arg[0] != '-' && dir.empty()) {
      dir = std::string(arg);
    } else {
      return Usage(("unknown argument " + std::string(arg)).c_str());
    }
  }
  if (dir.empty()) return Usage("no data directory given");
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  // The reader logs torn tails itself; the report says it once.
  spdlog::set_level(spdlog::level::err);

  auto report = strata::storage::VerifyDatabase(dir, options);
  if (!report.ok()) {
    std::fprintf(stderr, "strata-verify: cannot verify %s: %s\n", dir.c_str(),
                 report.status().ToString().c_str());
    return kExitUsage;
  }
  for (const std::string& line : report->info) {
    std::printf("ok: %s\n", line.c_str());
  }
  for (const std::string& line : report->warnings) {
    std::printf("WARNING: %s\n", line.c_str());
  }
  for (const std::string& line : report->errors) {
    std::printf("ERROR: %s\n", line.c_str());
  }
  std::printf("strata-verify: %s: %d files checked, %zu errors, %zu warnings\n",
              dir.c_str(), report->files_checked, report->errors.size(),
              report->warnings.size());
  return report->ok() ? kExitOk : kExitProblems;
}
