#include "tests/server/metrics_text.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdint>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace strata::testing {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

bool WaitFor(int fd, short events, absl::Time deadline) {
  const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  if (ms <= 0) return false;
  pollfd p = {fd, events, 0};
  return poll(&p, 1, static_cast<int>(ms)) == 1;
}

absl::Status Invalid(std::string_view line, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(why), " in line: ", std::string(line)));
}

// Parses `{a="x",b="y"}` starting at text[*pos] == '{'; leaves *pos after
// the closing brace.
absl::Status ParseLabels(std::string_view text, size_t* pos, LabelList* out) {
  size_t i = *pos + 1;
  while (i < text.size() && text[i] != '}') {
    const size_t eq = text.find('=', i);
    if (eq == std::string_view::npos || eq + 1 >= text.size() ||
        text[eq + 1] != '"') {
      return Invalid(text, "bad label");
    }
    std::string name(text.substr(i, eq - i));
    std::string value;
    size_t j = eq + 2;
    for (; j < text.size() && text[j] != '"'; ++j) {
      if (text[j] == '\\' && j + 1 < text.size()) {
        ++j;
        value.push_back(text[j] == 'n' ? '\n' : text[j]);
      } else {
        value.push_back(text[j]);
      }
    }
    if (j >= text.size()) return Invalid(text, "unterminated label value");
    out->emplace_back(std::move(name), std::move(value));
    i = j + 1;
    if (i < text.size() && text[i] == ',') ++i;
  }
  if (i >= text.size()) return Invalid(text, "unterminated label set");
  *pos = i + 1;
  return absl::OkStatus();
}

// Splits on `sep`, dropping empty pieces if skip_empty; at most max_pieces
// pieces (the last one keeps the rest). (absl::StrSplit does not take
// std::string_view with Debian's Abseil.)
std::vector<std::string_view> Split(std::string_view s, char sep,
                                    bool skip_empty,
                                    size_t max_pieces = SIZE_MAX) {
  std::vector<std::string_view> out;
  while (true) {
    const size_t at =
        out.size() + 1 >= max_pieces ? std::string_view::npos : s.find(sep);
    const std::string_view piece = s.substr(0, at);
    if (!skip_empty || !piece.empty()) out.push_back(piece);
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

}  // namespace

absl::StatusOr<HttpResponse> HttpGet(int port, std::string_view path,
                                     absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
          0 &&
      errno != EINPROGRESS) {
    return absl::UnavailableError(absl::StrCat("connect: ", strerror(errno)));
  }
  if (!WaitFor(fd.get(), POLLOUT, deadline)) {
    return absl::DeadlineExceededError("connect timed out");
  }
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    return absl::UnavailableError(absl::StrCat("connect: ", strerror(err)));
  }
  const std::string request = absl::StrCat(
      "GET ", std::string(path),
      " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  for (size_t sent = 0; sent < request.size();) {
    if (!WaitFor(fd.get(), POLLOUT, deadline)) {
      return absl::DeadlineExceededError("send timed out");
    }
    const ssize_t n = send(fd.get(), request.data() + sent,
                           request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) {
      return absl::UnavailableError(absl::StrCat("send: ", strerror(errno)));
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[16384];
  while (true) {
    if (!WaitFor(fd.get(), POLLIN, deadline)) {
      return absl::DeadlineExceededError("response timed out");
    }
    const ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN) continue;
      return absl::UnavailableError(absl::StrCat("recv: ", strerror(errno)));
    }
    raw.append(buf, static_cast<size_t>(n));
  }
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos || raw.rfind("HTTP/1.", 0) != 0) {
    return absl::DataLossError(absl::StrCat("not an HTTP response: ", raw));
  }
  HttpResponse response;
  const std::vector<std::string> headers =
      absl::StrSplit(raw.substr(0, header_end), "\r\n");
  const std::vector<std::string> status_line =
      absl::StrSplit(headers[0], ' ');
  if (status_line.size() < 2 ||
      !absl::SimpleAtoi(status_line[1], &response.status)) {
    return absl::DataLossError(absl::StrCat("bad status line: ", headers[0]));
  }
  for (size_t i = 1; i < headers.size(); ++i) {
    const size_t colon = headers[i].find(':');
    if (colon == std::string::npos) continue;
    if (absl::AsciiStrToLower(headers[i].substr(0, colon)) == "content-type") {
      response.content_type = std::string(
          absl::StripAsciiWhitespace(headers[i].substr(colon + 1)));
    }
  }
  response.body = raw.substr(header_end + 4);
  return response;
}

std::string SeriesKey(const std::string& name, LabelList labels) {
  if (labels.empty()) return name;
  std::sort(labels.begin(), labels.end());
  std::string key = name + "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    absl::StrAppend(&key, i ? "," : "", labels[i].first, "=\"",
                    labels[i].second, "\"");
  }
  return key + "}";
}

absl::StatusOr<Exposition> ParseExposition(std::string_view text) {
  Exposition e;
  for (std::string_view line : Split(text, '\n', /*skip_empty=*/true)) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      const std::vector<std::string_view> parts =
          Split(line, ' ', /*skip_empty=*/false, /*max_pieces=*/4);
      if (parts.size() >= 3 && (parts[1] == "HELP" || parts[1] == "TYPE")) {
        const std::string family(parts[2]);
        const std::string rest(parts.size() == 4 ? parts[3] : "");
        (parts[1] == "HELP" ? e.help : e.type)[family] = rest;
      }
      continue;
    }
    size_t pos = line.find_first_of("{ ");
    if (pos == std::string_view::npos) return Invalid(line, "no value");
    const std::string name(line.substr(0, pos));
    LabelList labels;
    if (line[pos] == '{') {
      if (absl::Status s = ParseLabels(line, &pos, &labels); !s.ok()) {
        return s;
      }
    }
    const std::vector<std::string_view> fields =
        Split(line.substr(pos), ' ', /*skip_empty=*/true);
    if (fields.empty()) return Invalid(line, "no value");
    const std::string value_text(fields[0]);
    char* end = nullptr;
    const double value = std::strtod(value_text.c_str(), &end);
    if (end != value_text.c_str() + value_text.size()) {
      return Invalid(line, "bad value");
    }
    const std::string key = SeriesKey(name, labels);
    if (e.samples.count(key)) return Invalid(line, "duplicate series");
    e.samples[key] = value;
    if (e.sample_names.empty() || e.sample_names.back() != name) {
      if (std::find(e.sample_names.begin(), e.sample_names.end(), name) ==
          e.sample_names.end()) {
        e.sample_names.push_back(name);
      }
    }
  }
  return e;
}

std::optional<double> Exposition::Get(const std::string& name,
                                      const LabelList& labels) const {
  auto it = samples.find(SeriesKey(name, labels));
  if (it == samples.end()) return std::nullopt;
  return it->second;
}

double Exposition::ValueOr0(const std::string& name,
                            const LabelList& labels) const {
  return Get(name, labels).value_or(0);
}

std::vector<std::pair<LabelList, double>> Exposition::Series(
    const std::string& name) const {
  std::vector<std::pair<LabelList, double>> out;
  for (const auto& [key, value] : samples) {
    if (key == name) {
      out.push_back({{}, value});
      continue;
    }
    if (key.size() <= name.size() || key.compare(0, name.size(), name) != 0 ||
        key[name.size()] != '{') {
      continue;
    }
    LabelList labels;
    size_t pos = name.size();
    if (!ParseLabels(key, &pos, &labels).ok()) continue;
    out.push_back({std::move(labels), value});
  }
  return out;
}

}  // namespace strata::testing
