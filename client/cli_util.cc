#include "client/cli_util.h"

#include <cstring>
#include <utility>

#include "absl/flags/reflection.h"

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

}  // namespace strata::cli
