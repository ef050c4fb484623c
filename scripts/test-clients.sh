#!/usr/bin/env bash
# Runs the Python and Node.js client tests against a real strata-server, on the
# clients as users install them (issues 9 and 23).
#
#   bash scripts/test-clients.sh [path/to/strata-server]
#
# The server binary is the argument, else $STRATA_SERVER, else
# build/server/strata-server under the repository root. If it does not exist this
# script FAILS (CI must never skip the client tests silently); the tests start
# their own servers on 127.0.0.1 port 0 with temporary data directories (and, for
# TLS, certificates from scripts/gen-test-certs.sh in temporary directories).
#
# Python: `pip install ./client/python` into a fresh venv (--system-site-packages
#   for Debian's grpcio/protobuf; offline: --no-index --no-build-isolation), then
#   mypy (strict) over the installed package, then the unittest suite with the
#   venv's python: plaintext and mutual-TLS clients, revisions and watch (with
#   the server SIGKILLed and restarted on its data directory behind a TCP
#   proxy), the wheel/sdist build with python3-build, and the method-parity test
#   of both clients against the proto.
# Node.js: `npm ci` in client/node, then node --test: the client (plaintext and
#   mutual TLS), revisions and watch (as for Python), the examples, and
#   test/pack.test.js, which installs the
#   `npm pack` tarball into a fresh project and uses it from CommonJS, ESM and
#   TypeScript (tsc --strict).
#
# Debian packages (bookworm), installed when missing (as root, or with sudo):
#   python3-grpcio python3-protobuf     Python gRPC runtime, used via /usr/bin/python3
#   python3-venv python3-setuptools python3-wheel python3-build
#                                       venv, and building the package offline
#   mypy                                the type checker
#   protobuf-compiler                   protoc: the Python build generates its modules
#   openssl                             scripts/gen-test-certs.sh
#   nodejs npm                          Node.js >= 18 (node --test) and npm >= 7 (lockfile v3)
# and access to the npm registry (npm ci in client/node, versions pinned by its
# package-lock.json; the pack test's fresh project installs the tarball's
# dependencies).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "${repo}/scripts/lib.sh"
server="${1:-${STRATA_SERVER:-${repo}/build/server/strata-server}}"
python=/usr/bin/python3

fail() { echo "test-clients.sh: $*" >&2; exit 1; }

[[ -f "${server}" && -x "${server}" ]] ||
  fail "strata-server not found or not executable at '${server}' (build it, or pass its path)"
server="$(cd "$(dirname "${server}")" && pwd)/$(basename "${server}")"

install_packages "${STRATA_CLIENT_TEST_DEPS[@]}"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  install_packages nodejs npm
fi
for tool in protoc node npm openssl; do
  command -v "${tool}" >/dev/null || fail "${tool} not found (see the package list at the top of this script)"
done
"${python}" -c 'import grpc, google.protobuf, build, mypy' 2>/dev/null ||
  fail "${python} cannot import grpc/protobuf/build/mypy (see the package list at the top of this script)"

export STRATA_SERVER="${server}"
# Makes the test suites fail (instead of skip) if the server, or anything else
# they need, cannot be found.
export STRATA_TEST_REQUIRE_SERVER=1
echo "== using ${STRATA_SERVER}"

work="$(mktemp -d "${TMPDIR:-/tmp}/strata-clients.XXXXXX")"
trap 'rm -rf "${work}"' EXIT

# Node first: the Python parity test reads the Node client's table (needs node_modules).
echo "== Node.js: npm ci"
(cd "${repo}/client/node" && npm ci --no-audit --no-fund)

echo "== Python: pip install ./client/python into a fresh venv"
"${python}" -m venv --system-site-packages "${work}/venv"
venv_python="${work}/venv/bin/python"
"${venv_python}" -m pip install --quiet --no-index --no-build-isolation "${repo}/client/python"
"${venv_python}" -m pip show strata-client | sed -n '1,2p;/^Requires/p'

echo "== Python: mypy --strict over the installed package"
# From ${work}, so mypy checks the installed package, not client/python.
(cd "${work}" && "${venv_python}" -m mypy --cache-dir "${work}/mypy-cache" \
  --config-file "${repo}/client/python/pyproject.toml" -p strata_client)

echo "== Python: tests (${venv_python}, $("${venv_python}" --version))"
(cd "${work}" && "${venv_python}" -m unittest discover -s "${repo}/client/python/tests" -v)

echo "== Node.js: tests ($(node --version))"
(cd "${repo}/client/node" && node --test test/*.test.js)

echo "== client tests passed"
