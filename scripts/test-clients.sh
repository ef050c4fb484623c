#!/usr/bin/env bash
# Runs the Python and Node.js client tests (issue 9) against a real strata-server.
#
#   bash scripts/test-clients.sh [path/to/strata-server]
#
# The server binary is the argument, else $STRATA_SERVER, else
# build/server/strata-server under the repository root. If it does not exist this
# script FAILS (CI must never skip the client tests silently); the tests start
# their own servers on 127.0.0.1 port 0 with temporary data directories.
#
# Needs these Debian packages (bookworm):
#   python3-grpcio python3-protobuf     Python gRPC runtime, used via /usr/bin/python3
#   protobuf-compiler                   protoc, to generate the Python stubs
#   protobuf-compiler-grpc              /usr/bin/grpc_python_plugin
#   nodejs npm                          Node.js >= 18 (node --test) and npm >= 7 (lockfile v3)
# and access to the npm registry for `npm ci` in client/node (versions pinned by
# client/node/package-lock.json).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
server="${1:-${STRATA_SERVER:-${repo}/build/server/strata-server}}"
python=/usr/bin/python3

fail() { echo "test-clients.sh: $*" >&2; exit 1; }

[[ -f "${server}" && -x "${server}" ]] ||
  fail "strata-server not found or not executable at '${server}' (build it, or pass its path)"
server="$(cd "$(dirname "${server}")" && pwd)/$(basename "${server}")"
for tool in protoc node npm; do
  command -v "${tool}" >/dev/null || fail "${tool} not found (see the package list at the top of this script)"
done
[[ -x /usr/bin/grpc_python_plugin ]] || fail "/usr/bin/grpc_python_plugin not found (apt-get install protobuf-compiler-grpc)"
"${python}" -c 'import grpc, google.protobuf' 2>/dev/null ||
  fail "${python} cannot import grpc/protobuf (apt-get install python3-grpcio python3-protobuf)"

export STRATA_SERVER="${server}"
# Makes the test suites fail (instead of skip) if the server cannot be found.
export STRATA_TEST_REQUIRE_SERVER=1
echo "== using ${STRATA_SERVER}"

echo "== Python: generating stubs"
bash "${repo}/client/python/generate.sh"

echo "== Python: tests (${python})"
(cd "${repo}/client/python" && "${python}" -m unittest discover -s tests -v)

echo "== Node.js: npm ci"
(cd "${repo}/client/node" && npm ci --no-audit --no-fund)

echo "== Node.js: tests ($(node --version))"
(cd "${repo}/client/node" && node --test test/*.test.js)

echo "== client tests passed"
