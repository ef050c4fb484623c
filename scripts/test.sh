#!/usr/bin/env bash
# Installs what Strata needs (Debian packages), builds everything and runs
# every test: the GoogleTest suite through ctest, then the Python and Node.js
# client tests against a real server.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_packages "${STRATA_BUILD_DEPS[@]}"

echo ">>> build (RelWithDebInfo) into build/"
build_strata "$STRATA_ROOT/build"

echo ">>> ctest"
ctest --test-dir "$STRATA_ROOT/build" -j "$(nproc)" --output-on-failure --timeout 600

if [ -f "$STRATA_ROOT/scripts/test-clients.sh" ]; then
  echo ">>> client tests (Python, Node.js)"
  bash "$STRATA_ROOT/scripts/test-clients.sh" "$STRATA_ROOT/build/server/strata-server"
fi
