#ifndef STRATA_TESTS_SERVER_METRICS_TEXT_H_
#define STRATA_TESTS_SERVER_METRICS_TEXT_H_

// Test helpers for /metrics: an HTTP GET over a plain socket and a parser
// of the Prometheus text exposition format (version 0.0.4), so tests can
// assert exact sample values by name and labels.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace strata::testing {

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// GET http://127.0.0.1:<port><path> with HTTP/1.0 (no keep-alive, no
// compression); every step bounded by `timeout`.
absl::StatusOr<HttpResponse> HttpGet(int port, std::string_view path,
                                     absl::Duration timeout = absl::Seconds(10));

using LabelList = std::vector<std::pair<std::string, std::string>>;

// One parsed exposition. Samples are keyed by SeriesKey(name, labels).
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> help;  // family -> help text
  std::map<std::string, std::string> type;  // family -> counter/gauge/...
  // Sample names in order of appearance (with duplicates removed).
  std::vector<std::string> sample_names;

  // The sample's value, or nullopt if absent.
  std::optional<double> Get(const std::string& name,
                            const LabelList& labels = {}) const;
  // The value, 0 if absent (a counter that has not appeared yet).
  double ValueOr0(const std::string& name, const LabelList& labels = {}) const;
  // Every sample of `name` as (labels, value).
  std::vector<std::pair<LabelList, double>> Series(
      const std::string& name) const;
};

// "name{a=\"1\",b=\"2\"}" with labels sorted by name (no braces if none).
std::string SeriesKey(const std::string& name, LabelList labels);

// Parses the text format; InvalidArgument naming the line on a syntax
// error (bad label syntax, missing value, unparseable number).
absl::StatusOr<Exposition> ParseExposition(std::string_view text);

}  // namespace strata::testing

#endif  // STRATA_TESTS_SERVER_METRICS_TEXT_H_
