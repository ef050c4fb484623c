# Shared helpers for the scripts in this directory. Source it; do not run it.
# Everything comes from Debian bookworm packages: nothing is downloaded from
# anywhere else.

STRATA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Packages needed to build and run Strata and to build its ctest suite
# (gtest, benchmark, nlohmann-json for the linearizability checker).
STRATA_BUILD_DEPS=(
  build-essential cmake ninja-build pkg-config git ca-certificates openssl
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libabsl-dev prometheus-cpp-dev libspdlog-dev nlohmann-json3-dev
  libxxhash-dev liblz4-dev libzstd-dev libsnappy-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev
)

# Programs the ctest suite runs besides Strata's own (etcd for the etcd
# client and cluster tests in tests/cluster/; faketime for the clock-skew
# fault in tests/cluster/fault/).
STRATA_TEST_DEPS=(etcd-server faketime)

# Packages the Python and Node.js client tests need (scripts/test-clients.sh):
# Debian's gRPC/protobuf for Python, venv + setuptools + build to install and
# build the package offline, mypy, protoc for its generated modules, openssl
# for test certificates. nodejs/npm come from Debian only if none is installed.
STRATA_CLIENT_TEST_DEPS=(
  python3-grpcio python3-protobuf python3-venv python3-setuptools python3-wheel
  python3-build mypy protobuf-compiler openssl
)

# Installs the given Debian packages if any is missing (as root, or with sudo).
install_packages() {
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo ">>> installing Debian packages: ${missing[*]}" >&2
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Configures and builds into $1 (default build/) with extra cmake args.
build_strata() {
  local dir="${1:-$STRATA_ROOT/build}"
  shift || true
  local launcher=()
  if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S "$STRATA_ROOT" -B "$dir" -G Ninja "${launcher[@]}" "$@" >/dev/null
  ninja -C "$dir" -j "$(nproc)"
}
