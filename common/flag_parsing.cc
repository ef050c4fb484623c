#include "common/flag_parsing.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string_view>

#include "absl/flags/parse.h"

namespace strata::common {
namespace {

// The code to exit with if Abseil exits while flags are parsed; -1 outside
// parsing (then the atexit handler does nothing).
std::atomic<int> g_parse_exit_code{-1};

void ExitDuringFlagParsing() {
  const int code = g_parse_exit_code.load();
  if (code < 0) return;
  std::cout.flush();
  std::fflush(nullptr);
  _exit(code);
}

bool IsHelpFlag(std::string_view arg) {
  if (arg.size() < 2 || arg[0] != '-') return false;
  arg.remove_prefix(arg[1] == '-' ? 2 : 1);
  arg = arg.substr(0, arg.find('='));
  return arg == "help" || arg == "helpfull" || arg == "helpshort" ||
         arg == "helppackage" || arg == "helpon" || arg == "helpmatch" ||
         arg == "version" || arg == "only_check_args";
}

}  // namespace

std::vector<char*> ParseFlagsOrExit(int argc, char** argv, int help_exit,
                                    int usage_exit) {
  bool help = false;
  for (int i = 1; i < argc && std::string_view(argv[i]) != "--"; ++i) {
    help = help || IsHelpFlag(argv[i]);
  }
  g_parse_exit_code = help ? help_exit : usage_exit;
  std::atexit(ExitDuringFlagParsing);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  g_parse_exit_code = -1;
  return rest;
}

}  // namespace strata::common
