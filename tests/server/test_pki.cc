#include "tests/server/test_pki.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tests/server/process_util.h"

#ifndef STRATA_SOURCE_DIR
#error "STRATA_SOURCE_DIR must point at the source tree (tests/server/CMakeLists.txt)"
#endif

namespace strata::testing {

TestPki::TestPki(const std::string& extra_script) {
  ProcessResult r = RunProcess(
      {"/bin/bash", std::string(STRATA_SOURCE_DIR) + "/scripts/gen-test-certs.sh",
       dir_.path(), "DNS:localhost,IP:127.0.0.1", "2"},
      "", absl::Seconds(60));
  if (!r.exited || r.exit_code != 0) {
    error_ = absl::StrCat("gen-test-certs.sh failed (exit ", r.exit_code,
                          "): ", r.err);
    return;
  }
  if (extra_script.empty()) return;
  r = RunProcess({"/bin/bash", "-c", extra_script, "pki", dir_.path()}, "",
                 absl::Seconds(60));
  if (!r.exited || r.exit_code != 0) {
    error_ = absl::StrCat("the extra certificate script failed (exit ",
                          r.exit_code, "): ", r.err);
  }
}

const TestPki& TestPki::Get() {
  static TestPki* pki = new TestPki();
  return *pki;
}

std::string TestPki::Path(const std::string& name) const {
  return dir_.path() + "/" + name;
}

std::string TestPki::Pem(const std::string& name) const {
  return ReadFileOrDie(Path(name));
}

}  // namespace strata::testing
