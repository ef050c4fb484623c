#ifndef STRATA_TESTS_SERVER_TEST_PKI_H_
#define STRATA_TESTS_SERVER_TEST_PKI_H_

// A test PKI for TLS tests: the CA, server, client and other-CA files of
// scripts/gen-test-certs.sh (server SAN DNS:localhost,IP:127.0.0.1, valid 2
// days) in a temporary directory that lives as long as the TestPki.

#include <string>

#include "tests/support/test_util.h"

namespace strata::testing {

class TestPki {
 public:
  // Runs gen-test-certs.sh (openssl) into a new temporary directory, then,
  // if `extra_script` is not empty, `bash -c <extra_script> pki <dir>` (so
  // "$1" is the directory) to make more files there, e.g. more client
  // certificates signed by ca.crt/ca.key. Each run is bounded to 60 s.
  // Never fails the test itself: error() says what went wrong.
  explicit TestPki(const std::string& extra_script = "");
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  // The process's one TestPki without an extra script, made on first use
  // (thread-safe) and never destroyed.
  static const TestPki& Get();

  // "" if generation worked; otherwise why not.
  const std::string& error() const { return error_; }
  // Path of e.g. "server.crt".
  std::string Path(const std::string& name) const;
  // Contents of e.g. "ca.crt"; aborts if the file cannot be read.
  std::string Pem(const std::string& name) const;

 private:
  TempDir dir_;
  std::string error_;
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_SERVER_TEST_PKI_H_
