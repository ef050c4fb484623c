#!/usr/bin/env bash
# Installs what Strata needs (Debian packages), builds it in Release mode and
# runs strata-server on the embedded default: 127.0.0.1:50051, data in ./data,
# metrics on 127.0.0.1:9090. Extra arguments are passed to strata-server.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_packages "${STRATA_BUILD_DEPS[@]}"
build_strata "$STRATA_ROOT/build-release" -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_TESTS=OFF
exec "$STRATA_ROOT/build-release/server/strata-server" "$@"
