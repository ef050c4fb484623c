#include "util/filename.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace strata::storage {
namespace {

std::string NumberedName(const std::string& dbname, uint64_t number,
                         const char* suffix) {
  return absl::StrFormat("%s/%06u.%s", dbname, number, suffix);
}

bool ParseNumber(std::string_view digits, uint64_t* number) {
  if (digits.empty()) return false;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()),
                          number);
}

}  // namespace

std::string WalFileName(const std::string& dbname, uint64_t number) {
  return NumberedName(dbname, number, "wal");
}
std::string TableFileName(const std::string& dbname, uint64_t number) {
  return NumberedName(dbname, number, "sst");
}
std::string TempFileName(const std::string& dbname, uint64_t number) {
  return NumberedName(dbname, number, "tmp");
}
std::string ManifestFileName(const std::string& dbname, uint64_t number) {
  return absl::StrFormat("%s/MANIFEST-%06u", dbname, number);
}
std::string CurrentFileName(const std::string& dbname) {
  return dbname + "/CURRENT";
}
std::string LockFileName(const std::string& dbname) { return dbname + "/LOCK"; }

bool ParseFileName(std::string_view name, uint64_t* number, FileType* type) {
  if (name == "CURRENT") {
    *number = 0;
    *type = FileType::kCurrent;
    return true;
  }
  if (name == "LOCK") {
    *number = 0;
    *type = FileType::kLock;
    return true;
  }
  constexpr std::string_view kManifest = "MANIFEST-";
  if (name.substr(0, kManifest.size()) == kManifest) {
    *type = FileType::kManifest;
    return ParseNumber(name.substr(kManifest.size()), number);
  }
  size_t dot = name.find('.');
  if (dot == std::string_view::npos) return false;
  std::string_view suffix = name.substr(dot + 1);
  if (suffix == "wal") {
    *type = FileType::kWal;
  } else if (suffix == "sst") {
    *type = FileType::kTable;
  } else if (suffix == "tmp") {
    *type = FileType::kTemp;
  } else {
    return false;
  }
  return ParseNumber(name.substr(0, dot), number);
}

}  // namespace strata::storage
