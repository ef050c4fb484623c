#include "common/pem_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace strata {

absl::StatusOr<std::string> ReadPemFile(std::string_view flag,
                                        const std::string& path) {
  auto error = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s file %s: %s", flag, path, why));
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) return error(std::strerror(errno));
  // One byte more than the limit tells a file at the limit from a larger one
  // without trusting a size that /proc and pipes do not report.
  std::string data(kMaxPemFileBytes + 1, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (in.bad()) return error("read error");
  data.resize(static_cast<size_t>(in.gcount()));
  if (data.size() > kMaxPemFileBytes) {
    return error("larger than 4 MiB; not a PEM file");
  }
  if (data.find("-----BEGIN ") == std::string::npos) {
    return error("no PEM block in it");
  }
  return data;
}

}  // namespace strata
