#ifndef STRATA_COMMON_FLAG_PARSING_H_
#define STRATA_COMMON_FLAG_PARSING_H_

// Command-line parsing with the exit codes our binaries document
// (strata-server and the `strata` CLI): Abseil's parser exits with status 1
// both on a bad flag and after --help/--version; ours exit with
// `usage_exit` (2) on a bad flag and `help_exit` (0) after help.

#include <vector>

namespace strata::common {

// Parses argv with absl::ParseCommandLine and returns the positional
// arguments (argv[0] first). If Abseil decides to exit while parsing, the
// process exits instead with help_exit when the command line asked for help
// (--help, --helpfull, --helpshort, --helppackage, --helpon, --helpmatch,
// --version, --only_check_args, with one or two dashes, before any "--"),
// and with usage_exit otherwise. Call once, from main, before any other
// thread starts (it registers an atexit handler).
std::vector<char*> ParseFlagsOrExit(int argc, char** argv, int help_exit,
                                    int usage_exit);

}  // namespace strata::common

#endif  // STRATA_COMMON_FLAG_PARSING_H_
