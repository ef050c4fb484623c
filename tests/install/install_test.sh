#!/usr/bin/env bash
# Installs a built tree with `cmake --install` into a temporary prefix and
# uses it the way a user would (docs/clients.md#c).
#
#   install_test.sh MODE BUILD_DIR
#     layout        the installed files: binaries, libraries, config and .pc
#                   files, and exactly the public headers (no internal ones)
#     cmake-engine  consumers/engine via find_package(strata): a DB is
#                   written, closed, reopened and read back
#     cmake-client  consumers/client via find_package(strata): Put and Get
#                   through strata::Client against the installed
#                   strata-server, read back with the installed `strata` CLI
#     pkgconfig     both consumers compiled with `pkg-config --cflags --libs`
#                   and run as above
# Environment: STRATA_CXX (the compiler of the build), STRATA_SANITIZE (the
# build's sanitizers, so consumers link its instrumented libraries).
# Everything (the prefix, builds, the server) is removed on exit, pass or fail.
set -euo pipefail

mode="$1"
build="$(cd "$2" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/../.." && pwd)"
cxx="${STRATA_CXX:-c++}"
sanitize="${STRATA_SANITIZE:-}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/strata-install-test.XXXXXX")"
prefix="$tmp/prefix"
server_pid=""

stop_server() {  # SIGTERM, then SIGKILL if it has not exited within 30 s.
  local pid="$server_pid"
  server_pid=""
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  if ! timeout 30 tail --pid="$pid" -f /dev/null; then
    echo "strata-server did not exit within 30 s of SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  exec 3<&- || true
  return "$rc"
}
cleanup() {
  stop_server || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

run_logged() {  # run_logged LOG CMD...: quiet unless it fails.
  local log="$1"
  shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    fail "$*"
  fi
}

# Starts the installed strata-server on 127.0.0.1:0 and sets $server_addr
# from its "strata-server listening on HOST:PORT" line on stdout (read from a
# FIFO with a bounded wait, no polling).
start_server() {
  mkfifo "$tmp/server.stdout"
  "$prefix/bin/strata-server" --listen=127.0.0.1:0 --metrics_listen= \
    --data_dir="$tmp/data" >"$tmp/server.stdout" 2>"$tmp/server.stderr" &
  server_pid=$!
  exec 3<"$tmp/server.stdout"
  server_addr=""
  local line
  while IFS= read -r -t 60 -u 3 line; do
    case "$line" in
      "strata-server listening on "*)
        server_addr="${line#strata-server listening on }"
        break
        ;;
    esac
  done
  if [ -z "$server_addr" ]; then
    cat "$tmp/server.stderr" >&2
    fail "strata-server did not report its address within 60 s"
  fi
  # Keep draining stdout so the server never blocks writing to the FIFO.
  cat <&3 >/dev/null &
}

# Runs a client consumer against a fresh server, then reads the key back
# with the installed CLI and checks that the server shuts down cleanly.
check_client() {
  local consumer="$1"
  start_server
  local out
  out="$("$consumer" "$server_addr" install-key "value from $mode")" ||
    fail "client consumer exited $?"
  [ "$out" = "ok" ] || fail "client consumer printed '$out'"
  out="$("$prefix/bin/strata" --addr="$server_addr" get install-key)" ||
    fail "installed strata CLI: get exited $?"
  [ "$out" = "value from $mode" ] || fail "strata get printed '$out'"
  stop_server || fail "strata-server exited $? after SIGTERM"
}

check_engine() {
  local consumer="$1"
  local out
  out="$("$consumer" "$tmp/engine-db")" || fail "engine consumer exited $?"
  # The engine logs to stdout (spdlog's default logger); "ok" comes last.
  [ "$(tail -n 1 <<<"$out")" = "ok" ] || fail "engine consumer printed '$out'"
  [ -n "$(ls -A "$tmp/engine-db" 2>/dev/null)" ] ||
    fail "engine consumer left no database in $tmp/engine-db"
}

# Configures and builds consumers/$1 against the installed prefix; prints
# the build directory.
cmake_consumer() {
  local name="$1"
  local args=(-S "$here/consumers/$name" -B "$tmp/build-$name"
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx")
  if command -v ninja >/dev/null 2>&1; then args+=(-G Ninja); fi
  if command -v ccache >/dev/null 2>&1; then
    args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  if [ -n "$sanitize" ]; then
    args+=(-DCMAKE_CXX_FLAGS="-fsanitize=$sanitize"
      -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=$sanitize")
  fi
  run_logged "$tmp/configure-$name.log" cmake "${args[@]}"
  run_logged "$tmp/build-$name.log" cmake --build "$tmp/build-$name" -j 2
}

# Compiles consumers/$1/main.cc with the flags of pkg-config module $2.
pkgconfig_consumer() {
  local name="$1" module="$2"
  local flags
  flags="$(pkg-config --cflags --libs "$module")" ||
    fail "pkg-config --cflags --libs $module"
  local launcher=()
  if command -v ccache >/dev/null 2>&1; then launcher=(ccache); fi
  local san=()
  if [ -n "$sanitize" ]; then san=("-fsanitize=$sanitize"); fi
  # shellcheck disable=SC2086  # $flags is a list of words.
  run_logged "$tmp/pkgconfig-$name.log" "${launcher[@]}" "$cxx" -std=c++20 \
    "${san[@]}" "$here/consumers/$name/main.cc" -o "$tmp/pc-$name" $flags
}

check_layout() {
  local f
  for f in bin/strata-server bin/strata; do
    [ -x "$prefix/$f" ] || fail "missing executable $f"
  done
  local config
  config="$(find "$prefix" -path '*/cmake/strata/strataConfig.cmake')"
  [ -n "$config" ] || fail "missing lib/cmake/strata/strataConfig.cmake"
  for f in strataConfigVersion.cmake strataTargets.cmake; do
    [ -f "$(dirname "$config")/$f" ] || fail "missing lib/cmake/strata/$f"
  done
  for f in strata-storage.pc strata-client.pc libstrata_client.a \
    libstrata_proto.a libstrata_storage_db.a libstrata_storage_util.a; do
    [ -n "$(find "$prefix" -name "$f")" ] || fail "missing $f"
  done
  # Exactly the public headers: the engine's include/strata/storage/, the
  # client's API and the generated strata.v1 code; nothing internal.
  local expected actual
  expected="$( (cd "$src/storage/include" && find strata -name '*.h')
    printf '%s\n' strata/client/strata_client.h strata/client/transaction.h \
      strata/client/watch_cursor.h strata/v1/kv.pb.h strata/v1/kv.grpc.pb.h)"
  actual="$(cd "$prefix/include" && find . -type f | sed 's|^\./||')"
  diff <(sort <<<"$expected") <(sort <<<"$actual") >&2 ||
    fail "installed headers differ from the public ones (< expected, > installed)"
}

run_logged "$tmp/install.log" cmake --install "$build" --prefix "$prefix"
case "$mode" in
  layout)
    check_layout
    ;;
  cmake-engine)
    cmake_consumer engine
    check_engine "$tmp/build-engine/engine_consumer"
    ;;
  cmake-client)
    cmake_consumer client
    check_client "$tmp/build-client/client_consumer"
    ;;
  pkgconfig)
    export PKG_CONFIG_PATH
    PKG_CONFIG_PATH="$(dirname "$(find "$prefix" -name strata-storage.pc)")"
    pkgconfig_consumer engine strata-storage
    check_engine "$tmp/pc-engine"
    pkgconfig_consumer client strata-client
    check_client "$tmp/pc-client"
    ;;
  *)
    fail "unknown mode '$mode'"
    ;;
esac
echo "PASS: $mode"
