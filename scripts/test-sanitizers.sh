#!/usr/bin/env bash
# Runs the test suite under sanitizers, each in its own build directory:
#   1. AddressSanitizer + UndefinedBehaviorSanitizer: every test (ctest),
#      including the crash loop against an instrumented strata-server;
#   2. ThreadSanitizer: the concurrency tests of the engine (memtable and
#      skiplist, LRU cache, in-memory Env, DB, model, fault injection) and
#      of the server (every test labelled "concurrency"), and the cluster's
#      replication (streams, acks, waiters).
# Any sanitizer report fails the test that produced it (UBSan and TSan are
# made fatal), so a green run means zero reports.
#
#   scripts/test-sanitizers.sh [asan|tsan|all]          (default all)
#
# Environment: STRATA_ASAN_BUILD_DIR, STRATA_TSAN_BUILD_DIR (default
# build-asan/, build-tsan/), STRATA_SANITIZER_JOBS (ctest parallelism,
# default nproc), STRATA_ASAN_EXCLUDE (ctest -E regex of tests not run under
# ASan; default: the scale test's peak-RSS bound, which ASan's shadow memory
# and quarantine make meaningless).
#
# Builds are lean: -O1 -g1 (fast to compile and link, line numbers in
# reports, still fast to run), only the targets the chosen tests need.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_packages "${STRATA_BUILD_DEPS[@]}" "${STRATA_TEST_DEPS[@]}"

which="${1:-all}"
asan_build="${STRATA_ASAN_BUILD_DIR:-$STRATA_ROOT/build-asan}"
tsan_build="${STRATA_TSAN_BUILD_DIR:-$STRATA_ROOT/build-tsan}"
jobs="${STRATA_SANITIZER_JOBS:-$(nproc)}"
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

configure() {  # configure <dir> <sanitizers> [extra cmake args...]
  cmake -S "$STRATA_ROOT" -B "$1" -G Ninja "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -fno-sanitize-recover=all" \
    -DSTRATA_SANITIZE="$2" -DSTRATA_BUILD_BENCH=OFF "${@:3}" >/dev/null
}

timed() {  # timed <label> <command...>
  local t0=$(date +%s)
  "${@:2}"
  echo ">>> $1 took $(( $(date +%s) - t0 )) s"
}

run_asan() {
  echo ">>> AddressSanitizer + UndefinedBehaviorSanitizer: build into $asan_build"
  # UBSan without its null, vptr and alignment checks: they instrument
  # nearly every member access and halve the cost of compiling a test file
  # (backup_test.cc 58.6 -> 30.4 s, kv_service.cc 30.5 -> 22.4 s, measured
  # alone), which made this the largest stage of CI. What they would find
  # is still found: ASan reports a null dereference (SEGV, with its stack);
  # our decoders read through memcpy, not through casts; and the libFuzzer
  # targets (scripts/test-fuzz.sh, clang) keep the whole undefined group.
  # The checks kept: signed overflow, shifts, bounds, invalid bool and enum
  # loads, float casts, object size, pointer overflow, unreachable and
  # missing return, among others.
  configure "$asan_build" address,undefined \
    -DSTRATA_NO_SANITIZE=null,vptr,alignment
  timed "ASan build" ninja -C "$asan_build" -j "$(nproc)"
  # Leak checking stays on; gRPC's process-lifetime allocations are not
  # reported as leaks because they are still reachable at exit.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
  # tests/lsan.supp: third-party leaks only (c-ares), each with its report.
  export LSAN_OPTIONS="suppressions=$STRATA_ROOT/tests/lsan.supp"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  local exclude="${STRATA_ASAN_EXCLUDE-ScaleTest\.OneGibThroughSmallMemtableReadsBackWithBoundedMemory}"
  timed "ASan tests" ctest --test-dir "$asan_build" -j "$jobs" \
    --output-on-failure --timeout 900 ${exclude:+-E "$exclude"}
}

# Test executables whose cases run under ThreadSanitizer.
tsan_engine_tests=(memtable_concurrency_test skiplist_test lru_cache_test
                   mem_env_test db_test model_test fault_injection_test
                   revisions_test slow_and_failing_disk_test)
tsan_server_tests=(thread_pool_test get_coalescer_test kv_server_concurrency_test
                   rpc_registry_test watch_hub_test revisions_server_test
                   namespace_catalog_test namespace_server_test authz_test)
# The cluster's data plane: streams, acks and waiters across threads;
# ReplicatedDB's delivery callbacks against its destruction; the etcd
# client's shared auth token, renewed while calls, a watch and a lease
# keeper use it.
tsan_cluster_tests=(replication_test replicated_db_test etcd_auth_test)

run_tsan() {
  echo ">>> ThreadSanitizer: build into $tsan_build"
  # The happens-before edges of Debian's uninstrumented gRPC and Abseil,
  # linked into every executable of this build (tests/tsan_annotations.cc).
  mkdir -p "$tsan_build"
  local shim="$tsan_build/tsan_annotations.o"
  c++ -std=c++20 -O1 -g -fPIC -fsanitize=thread \
    -c "$STRATA_ROOT/tests/tsan_annotations.cc" -o "$shim.new"
  if ! cmp -s "$shim.new" "$shim"; then
    mv "$shim.new" "$shim"
    # Relink everything against the new shim.
    find "$tsan_build" -path '*/tests/*' -type f -perm -u+x -delete 2>/dev/null || true
  else
    rm -f "$shim.new"
  fi
  # -fsanitize=thread is repeated in the linker flags so that CMake's own
  # compiler check (which links with them) finds the TSan runtime the shim
  # needs on a fresh build directory.
  configure "$tsan_build" thread \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread $shim -rdynamic -ldl"
  timed "TSan build" ninja -C "$tsan_build" -j "$(nproc)" \
    "${tsan_engine_tests[@]}" "${tsan_server_tests[@]}" "${tsan_cluster_tests[@]}"
  # Debian's gRPC and Abseil are not built with -fsanitize=thread: see
  # tests/tsan.supp for what is suppressed and why.
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$STRATA_ROOT/tests/tsan.supp"
  local t0=$(date +%s) failed=()
  local t
  for t in "${tsan_engine_tests[@]}" "${tsan_server_tests[@]}" \
           "${tsan_cluster_tests[@]}"; do
    local bin
    bin=$(find "$tsan_build/tests" -type f -name "$t" -perm -u+x | head -1)
    echo ">>> tsan: $t"
    if ! STRATA_BINARY_DIR="$tsan_build" "$bin" --gtest_brief=1 \
        >"$tsan_build/$t.tsan.log" 2>&1; then
      echo "!!! $t failed under ThreadSanitizer:"
      tail -60 "$tsan_build/$t.tsan.log"
      failed+=("$t")
    fi
  done
  echo ">>> TSan tests took $(( $(date +%s) - t0 )) s"
  if [ ${#failed[@]} -gt 0 ]; then
    echo "ThreadSanitizer failures: ${failed[*]}"
    return 1
  fi
}

start=$(date +%s)
case "$which" in
  asan) run_asan ;;
  tsan) run_tsan ;;
  all) run_asan; run_tsan ;;
  *) echo "usage: $0 [asan|tsan|all]" >&2; exit 2 ;;
esac
echo ">>> sanitizers ($which) took $(( $(date +%s) - start )) s in total"
