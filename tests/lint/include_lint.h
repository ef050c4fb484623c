#ifndef STRATA_TESTS_LINT_INCLUDE_LINT_H_
#define STRATA_TESTS_LINT_INCLUDE_LINT_H_

// The engine's layering, checked on every #include (Pebble's
// internal/lint/lint_test.go plays this part there):
//
//  * Inside storage/, a component includes only itself and the components
//    below it:
//      util -> env -> {memtable, record, cache, table} -> version
//           -> compaction -> db -> tools
//    Components in braces share a layer and do not include each other,
//    except table -> cache (an SSTable reads its blocks through the block
//    cache). Every directory of storage/ must be in the table (kLayers), so
//    a new component cannot escape the check.
//  * Public headers (storage/include/strata/storage/) include only public
//    headers.
//  * Nothing in storage/ includes gRPC, protobuf or Prometheus headers
//    (nor generated *.pb.h), or code of server/, client/, proto/, bench/,
//    common/, fuzz/ or tests/.
//  * Users of the engine (server/, client/, bench/, common/, tests/server/,
//    ...) include only the public headers "strata/storage/...". The
//    engine's own tests (tests/storage/, tests/support/), fuzzers (fuzz/)
//    and this lint (tests/lint/) may include its internals.
//
// The build enforces part of this (users of strata_storage only have
// storage/include/ on their include path), but the repository root is on
// every include path, and the components all see storage/; this check
// covers what the include paths cannot.

#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace strata::lint {

// One #include directive.
struct Include {
  int line = 0;         // 1-based.
  std::string path;     // Between the quotes or angle brackets.
  bool angled = false;  // <path> rather than "path".
};

// The #include directives of C++ source text: lines whose first non-blank
// character is '#' followed (after optional blanks) by "include". Lines in
// block comments are not recognised as comments (the tree has none that
// look like includes).
std::vector<Include> ParseIncludes(std::string_view source);

// A broken rule.
struct Violation {
  std::string file;  // Repository-relative path.
  int line = 0;
  std::string include;  // The included path.
  std::string why;

  // "storage/table/table.cc:12: #include \"db/db_impl.h\": <why>".
  std::string ToString() const;
};

// For GoogleTest's failure messages.
inline void PrintTo(const Violation& v, std::ostream* os) {
  *os << v.ToString();
}

// Checks one file. `file` is its path relative to the repository root with
// '/' separators ("storage/table/table.cc"); `source` its contents.
std::vector<Violation> CheckFile(std::string_view file,
                                 std::string_view source);

// Checks every C++ file (.h .hpp .cc .cpp .inc) under `root`, the
// repository root, skipping hidden directories, node_modules and build
// trees (directories holding a CMakeCache.txt). *files_checked, if not
// null, is set to the number of files read. A file that cannot be read is
// itself a violation.
std::vector<Violation> CheckTree(const std::filesystem::path& root,
                                 int* files_checked);

}  // namespace strata::lint

#endif  // STRATA_TESTS_LINT_INCLUDE_LINT_H_
