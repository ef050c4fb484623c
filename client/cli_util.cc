#include "client/cli_util.h"

#include <cstring>
#include <utility>

#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace strata::cli {

std::string PrefixSuccessor(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) {
    end.pop_back();
  }
  if (!end.empty()) end.back() = static_cast<char>(end.back() + 1);
  return end;
}

absl::StatusOr<Mutation> ParseImportLine(std::string_view line) {
  const size_t tab = line.find('\t');
  if (tab == std::string_view::npos) {
    return absl::InvalidArgumentError("expected key<TAB>value (no TAB)");
  }
  if (tab == 0) return absl::InvalidArgumentError("empty key");
  return Mutation::Put(std::string(line.substr(0, tab)),
                       std::string(line.substr(tab + 1)));
}

size_t ImportBatcher::Cost(const Mutation& m) {
  // Key + value + protobuf framing (tags and lengths).
  return m.key.size() + m.value.size() + 16;
}

bool ImportBatcher::WouldOverflow(const Mutation& m) const {
  if (batch_.empty()) return false;
  return batch_.size() >= max_mutations_ || bytes_ + Cost(m) > max_bytes_;
}

void ImportBatcher::Add(Mutation m) {
  bytes_ += Cost(m);
  batch_.push_back(std::move(m));
}

std::vector<Mutation> ImportBatcher::Take() {
  std::vector<Mutation> out = std::move(batch_);
  batch_.clear();
  bytes_ = 0;
  return out;
}

void NormalizeFlagDashes(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* arg = argv[i];
    if (std::strcmp(arg, "--") == 0) return;
    if (std::strncmp(arg, "--", 2) != 0) continue;
    char* name = arg + 2;
    const size_t len = std::strcspn(name, "=");
    std::string fixed(name, len);
    for (char& c : fixed) {
      if (c == '-') c = '_';
    }
    // Only rewrite real flags, so a value such as "--prefix --a-b" survives.
    if (fixed != std::string_view(name, len) &&
        absl::FindCommandLineFlag(fixed) != nullptr) {
      std::memcpy(name, fixed.data(), len);
    }
  }
}

absl::StatusOr<std::vector<std::string>> SplitTxnWords(std::string_view line) {
  std::vector<std::string> words;
  size_t i = 0;
  while (true) {
    while (i < line.size() && absl::ascii_isspace(line[i])) i++;
    if (i == line.size()) return words;
    if (line[i] != '"') {
      const size_t start = i;
      while (i < line.size() && !absl::ascii_isspace(line[i])) i++;
      words.emplace_back(line.substr(start, i - start));
      continue;
    }
    // A quoted word: up to the next unescaped quote.
    const size_t start = ++i;
    while (i < line.size() && line[i] != '"') i += line[i] == '\\' ? 2 : 1;
    if (i >= line.size()) {
      return absl::InvalidArgumentError("unterminated quote");
    }
    std::string word;
    std::string error;
    if (!absl::CUnescape(absl::string_view(line.data() + start, i - start),
                         &word, &error)) {
      return absl::InvalidArgumentError("bad escape in quotes: " + error);
    }
    words.push_back(std::move(word));
    i++;
  }
}

namespace {

absl::StatusOr<Compare> ParseCompare(const std::vector<std::string>& w) {
  // compare KEY T OP X | compare-range S E T OP X | compare-prefix P T OP X
  Compare c;
  size_t next;
  if (w[0] == "compare" && w.size() == 5) {
    c.key = w[1];
    next = 2;
  } else if (w[0] == "compare-range" && w.size() == 6) {
    c.key = w[1];
    c.range_end = w[2].empty() ? std::string(1, '\0') : w[2];
    next = 3;
  } else if (w[0] == "compare-prefix" && w.size() == 5) {
    c.key = w[1];
    c.range_end = PrefixSuccessor(w[1]);
    if (c.range_end.empty()) c.range_end = std::string(1, '\0');
    next = 2;
  } else {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s takes %s TARGET OP X", w[0],
        w[0] == "compare-range" ? "START END" : w[0] == "compare" ? "KEY"
                                                                  : "PREFIX"));
  }
  const std::string& target = w[next];
  const std::string& op = w[next + 1];
  const std::string& x = w[next + 2];
  if (target == "version") {
    c.target = Compare::Target::kVersion;
  } else if (target == "create") {
    c.target = Compare::Target::kCreate;
  } else if (target == "mod") {
    c.target = Compare::Target::kMod;
  } else if (target == "value") {
    c.target = Compare::Target::kValue;
  } else if (target == "int") {
    c.target = Compare::Target::kInt64Value;
  } else {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unknown target '%s' (version, create, mod, value or int)", target));
  }
  if (op == "=" || op == "==") {
    c.result = Compare::Result::kEqual;
  } else if (op == "!=") {
    c.result = Compare::Result::kNotEqual;
  } else if (op == ">") {
    c.result = Compare::Result::kGreater;
  } else if (op == "<") {
    c.result = Compare::Result::kLess;
  } else {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown operator '%s' (=, !=, > or <)", op));
  }
  if (c.target == Compare::Target::kValue) {
    c.value = x;
  } else if (!absl::SimpleAtoi(x, &c.number)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s compares a number, not '%s'", target, x));
  }
  return c;
}

absl::StatusOr<TxnOp> ParseTxnOp(const std::vector<std::string>& w) {
  // w[0] is then/else; w[1] the operation.
  const std::string op = w.size() > 1 ? w[1] : "";
  const size_t n = w.size() - 2;
  auto limit = [&](size_t at, uint32_t* out) -> absl::Status {
    if (n <= at) return absl::OkStatus();
    if (!absl::SimpleAtoi(w[2 + at], out)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("bad LIMIT '%s'", w[2 + at]));
    }
    return absl::OkStatus();
  };
  if (op == "get" && n == 1) return TxnOp::Get(w[2]);
  if (op == "put" && n == 2) return TxnOp::Put(w[2], w[3]);
  if (op == "delete" && n == 1) return TxnOp::Delete(w[2]);
  if (op == "scan" && (n == 2 || n == 3)) {
    ScanOptions o;
    o.start = w[2];
    o.end = w[3];
    if (absl::Status s = limit(2, &o.limit); !s.ok()) return s;
    return TxnOp::Scan(std::move(o));
  }
  if (op == "scan-prefix" && (n == 1 || n == 2)) {
    ScanOptions o;
    o.start = w[2];
    o.end = PrefixSuccessor(w[2]);
    if (absl::Status s = limit(1, &o.limit); !s.ok()) return s;
    return TxnOp::Scan(std::move(o));
  }
  if (op == "incr" && n == 2) {
    int64_t delta;
    if (!absl::SimpleAtoi(w[3], &delta)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("incr: DELTA must be an integer, not '%s'", w[3]));
    }
    return TxnOp::Increment(w[2], delta);
  }
  if (op == "json-get" && (n == 1 || n == 2)) {
    return TxnOp::JsonGet(w[2], n == 2 ? w[3] : "");
  }
  if (op == "json-merge" && n == 2) return TxnOp::JsonMergePatch(w[2], w[3]);
  if (op == "json-patch" && n == 2) return TxnOp::JsonPatch(w[2], w[3]);
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s takes get KEY, put KEY VALUE, delete KEY, scan START END [LIMIT], "
      "scan-prefix PREFIX [LIMIT], incr KEY DELTA, json-get KEY [POINTER], "
      "json-merge KEY PATCH or json-patch KEY PATCH",
      w[0]));
}

}  // namespace

absl::StatusOr<TxnScript> ParseTxnScript(std::string_view text) {
  TxnScript script;
  int line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    line_no++;
    auto fail = [&](const absl::Status& s) {
      return absl::InvalidArgumentError(
          absl::StrFormat("line %d: %s", line_no, std::string(s.message())));
    };
    absl::StatusOr<std::vector<std::string>> words = SplitTxnWords(line);
    if (!words.ok()) return fail(words.status());
    if (words->empty() || (*words)[0][0] == '#') continue;
    const std::string& verb = (*words)[0];
    if (verb == "compare" || verb == "compare-range" ||
        verb == "compare-prefix") {
      absl::StatusOr<Compare> c = ParseCompare(*words);
      if (!c.ok()) return fail(c.status());
      script.compares.push_back(*std::move(c));
    } else if (verb == "then" || verb == "else") {
      absl::StatusOr<TxnOp> op = ParseTxnOp(*words);
      if (!op.ok()) return fail(op.status());
      (verb == "then" ? script.success : script.failure)
          .push_back(*std::move(op));
    } else {
      return fail(absl::InvalidArgumentError(absl::StrFormat(
          "unknown statement '%s' (compare, compare-range, compare-prefix, "
          "then, else)",
          verb)));
    }
  }
  return script;
}

}  // namespace strata::cli
