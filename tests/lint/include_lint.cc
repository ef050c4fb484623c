#include "tests/lint/include_lint.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <system_error>

namespace strata::lint {
namespace {

// The engine's components, lowest layer first. A component may include
// components of a lower rank, its `peer` (same rank) if it names one, and
// itself.
struct Layer {
  std::string_view component;
  int rank;
  std::string_view peer;
};
constexpr std::array<Layer, 10> kLayers = {{
    {"util", 0, ""},
    {"env", 1, ""},
    {"memtable", 2, ""},
    {"record", 2, ""},
    {"cache", 2, ""},
    {"table", 2, "cache"},  // Blocks are read through the block cache.
    {"version", 3, ""},
    {"compaction", 4, ""},
    {"db", 5, ""},
    {"tools", 6, ""},
}};
constexpr std::string_view kOrder =
    "util -> env -> {memtable, record, cache, table} -> version -> compaction "
    "-> db -> tools";

// Headers the engine never includes: it has no RPC or metrics dependency.
constexpr std::array<std::string_view, 6> kForbiddenLibraryPrefixes = {
    "grpc/",       "grpcpp/",   "grpc++/", "google/protobuf/",
    "prometheus/", "strata/v1/"};
// Project code above the engine.
constexpr std::array<std::string_view, 7> kForbiddenProjectPrefixes = {
    "server/", "client/", "proto/", "bench/", "common/", "fuzz/", "tests/"};
// Users of the engine that may include its internals.
constexpr std::array<std::string_view, 4> kInternalUsers = {
    "fuzz/", "tests/storage/", "tests/support/", "tests/lint/"};

constexpr std::string_view kPublicPrefix = "strata/storage/";
constexpr std::string_view kPublicDir = "storage/include/";

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.substr(s.size() - suffix.size()) == suffix;
}

// The first path segment ("db" for "db/db_impl.h"), or "" if none.
std::string_view FirstSegment(std::string_view path) {
  size_t slash = path.find('/');
  return slash == std::string_view::npos ? std::string_view()
                                         : path.substr(0, slash);
}

const Layer* FindLayer(std::string_view component) {
  for (const Layer& l : kLayers) {
    if (l.component == component) return &l;
  }
  return nullptr;
}

// The component an include names ("db/db_impl.h" -> db), or null.
const Layer* IncludedComponent(const Include& inc) {
  if (inc.angled) return nullptr;
  return FindLayer(FirstSegment(inc.path));
}

bool IsForbiddenLibrary(std::string_view path) {
  for (std::string_view p : kForbiddenLibraryPrefixes) {
    if (StartsWith(path, p)) return true;
  }
  return EndsWith(path, ".pb.h");
}

bool IsForbiddenProjectCode(std::string_view path) {
  for (std::string_view p : kForbiddenProjectPrefixes) {
    if (StartsWith(path, p)) return true;
  }
  return false;
}

class FileChecker {
 public:
  FileChecker(std::string_view file, std::vector<Violation>* out)
      : file_(file), out_(out) {}

  void Check(std::string_view source) {
    const std::vector<Include> includes = ParseIncludes(source);
    if (StartsWith(file_, "storage/")) {
      CheckEngineFile(includes);
    } else if (!IsInternalUser()) {
      CheckEngineUser(includes);
    }
  }

 private:
  void Add(const Include& inc, std::string why) {
    out_->push_back(
        Violation{std::string(file_), inc.line, inc.path, std::move(why)});
  }

  bool IsInternalUser() const {
    for (std::string_view p : kInternalUsers) {
      if (StartsWith(file_, p)) return true;
    }
    return false;
  }

  // A file of storage/: a public header or a component's file.
  void CheckEngineFile(const std::vector<Include>& includes) {
    const bool is_public = StartsWith(file_, kPublicDir);
    const Layer* self = nullptr;
    if (!is_public) {
      std::string_view dir = FirstSegment(file_.substr(8));  // After storage/.
      if (dir.empty()) return;  // storage/CMakeLists.txt and the like.
      self = FindLayer(dir);
      if (self == nullptr) {
        out_->push_back(Violation{
            std::string(file_), 0, "",
            "storage/" + std::string(dir) +
                "/ is not a known engine component: add it to kLayers in "
                "tests/lint/include_lint.cc (and to docs/architecture.md)"});
        return;
      }
    }
    for (const Include& inc : includes) {
      if (IsForbiddenLibrary(inc.path)) {
        Add(inc, "storage/ must not depend on gRPC, protobuf or Prometheus");
        continue;
      }
      if (inc.angled) continue;  // Standard and system headers.
      if (IsForbiddenProjectCode(inc.path)) {
        Add(inc, "storage/ must not include code of the layers above it");
        continue;
      }
      if (inc.path.find("..") != std::string::npos) {
        Add(inc,
            "no relative parent paths: include engine headers as "
            "\"util/coding.h\" or \"strata/storage/db.h\"");
        continue;
      }
      if (StartsWith(inc.path, "storage/")) {
        Add(inc,
            "inside storage/, include engine headers relative to "
            "storage/ (\"util/coding.h\"), not from the repository root");
        continue;
      }
      const Layer* target = IncludedComponent(inc);
      if (target == nullptr) continue;  // Public, Abseil, spdlog, same dir.
      if (is_public) {
        Add(inc,
            "a public header may include only public headers "
            "(\"strata/storage/...\")");
        continue;
      }
      const bool allowed = target == self || target->rank < self->rank ||
                           target->component == self->peer;
      if (!allowed) {
        Add(inc, std::string(self->component) + " may not include " +
                     std::string(target->component) + ": the order is " +
                     std::string(kOrder));
      }
    }
  }

  // A user of the engine: the public headers only.
  void CheckEngineUser(const std::vector<Include>& includes) {
    for (const Include& inc : includes) {
      if (inc.angled) continue;
      if (StartsWith(inc.path, "storage/") ||
          IncludedComponent(inc) != nullptr) {
        Add(inc,
            "outside the engine, include only its public headers "
            "(\"strata/storage/...\")");
      }
    }
  }

  const std::string_view file_;
  std::vector<Violation>* const out_;
};

bool IsSourceFile(const std::filesystem::path& p) {
  static constexpr std::array<std::string_view, 5> kExtensions = {
      ".h", ".hpp", ".cc", ".cpp", ".inc"};
  const std::string ext = p.extension().string();
  return std::find(kExtensions.begin(), kExtensions.end(), ext) !=
         kExtensions.end();
}

bool IsSkippedDirectory(const std::filesystem::path& dir) {
  const std::string name = dir.filename().string();
  if (name.empty() || name[0] == '.' || name == "node_modules") return true;
  std::error_code ec;
  return std::filesystem::exists(dir / "CMakeCache.txt", ec);
}

}  // namespace

std::vector<Include> ParseIncludes(std::string_view source) {
  std::vector<Include> out;
  int line_number = 0;
  size_t pos = 0;
  while (pos <= source.size()) {
    size_t end = source.find('\n', pos);
    if (end == std::string_view::npos) end = source.size();
    std::string_view line = source.substr(pos, end - pos);
    pos = end + 1;
    line_number++;
    auto skip_blanks = [&line] {
      while (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
        line.remove_prefix(1);
      }
    };
    skip_blanks();
    if (line.empty() || line[0] != '#') continue;
    line.remove_prefix(1);
    skip_blanks();
    if (!StartsWith(line, "include")) continue;
    line.remove_prefix(7);
    skip_blanks();
    if (line.empty() || (line[0] != '"' && line[0] != '<')) continue;
    const char close = line[0] == '"' ? '"' : '>';
    size_t stop = line.find(close, 1);
    if (stop == std::string_view::npos) continue;
    out.push_back(Include{line_number, std::string(line.substr(1, stop - 1)),
                          close == '>'});
  }
  return out;
}

std::string Violation::ToString() const {
  std::ostringstream s;
  s << file << ":" << line << ": ";
  if (!include.empty()) s << "#include \"" << include << "\": ";
  s << why;
  return s.str();
}

std::vector<Violation> CheckFile(std::string_view file,
                                 std::string_view source) {
  std::vector<Violation> out;
  FileChecker(file, &out).Check(source);
  return out;
}

std::vector<Violation> CheckTree(const std::filesystem::path& root,
                                 int* files_checked) {
  namespace fs = std::filesystem;
  std::vector<Violation> out;
  int files = 0;
  std::error_code ec;
  fs::recursive_directory_iterator it(root, ec), end;
  if (ec) {
    out.push_back(
        Violation{root.string(), 0, "", "cannot list: " + ec.message()});
  }
  for (; !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& entry = *it;
    if (entry.is_directory(ec)) {
      if (IsSkippedDirectory(entry.path())) it.disable_recursion_pending();
      continue;
    }
    if (!entry.is_regular_file(ec) || !IsSourceFile(entry.path())) continue;
    const std::string relative =
        entry.path().lexically_relative(root).generic_string();
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream contents;
    contents << in.rdbuf();
    if (!in) {
      out.push_back(Violation{relative, 0, "", "cannot read the file"});
      continue;
    }
    files++;
    std::vector<Violation> v = CheckFile(relative, contents.str());
    out.insert(out.end(), v.begin(), v.end());
  }
  if (ec) {
    out.push_back(
        Violation{root.string(), 0, "", "walk failed: " + ec.message()});
  }
  if (files_checked != nullptr) *files_checked = files;
  return out;
}

}  // namespace strata::lint
