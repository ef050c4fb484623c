#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs each for a fixed time.
#
#   scripts/test-fuzz.sh [SECONDS_PER_TARGET]      (default 30)
#
# Environment:
#   STRATA_FUZZ_BUILD_DIR  build directory (default build-fuzz/); the corpus
#                          grows in <build>/fuzz-corpus/<target> across runs
#   STRATA_FUZZ_TARGETS    targets to run (default: all four)
#   STRATA_FUZZ_JOBS       parallel fuzzing processes per target (default 1)
#
# A crash, sanitizer report, timeout (>10 s for one input) or out-of-memory
# stops that target: its reproducer is saved as
# <build>/fuzz-artifacts/<target>-crash-<sha1> and the script exits 1. To
# replay one: <build>/fuzz/<target> <file>. Every crash found should become a
# regression test next to the code it broke.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# libclang-rt-14-dev (the fuzzer and sanitizer runtimes) is only a
# recommendation of clang, which install_packages does not pull in.
install_packages "${STRATA_BUILD_DEPS[@]}" clang libclang-rt-14-dev

seconds="${1:-30}"
build="$(realpath -m "${STRATA_FUZZ_BUILD_DIR:-$STRATA_ROOT/build-fuzz}")"
targets=(${STRATA_FUZZ_TARGETS:-fuzz_wal_reader fuzz_table_reader fuzz_version_edit fuzz_request})
jobs="${STRATA_FUZZ_JOBS:-1}"

start=$(date +%s)
echo ">>> build fuzz targets (clang, -fsanitize=fuzzer,address,undefined) into $build"
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$STRATA_ROOT" -B "$build" -G Ninja "${launcher[@]}" \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSTRATA_BUILD_TESTS=OFF -DSTRATA_BUILD_FUZZ=ON \
  -DSTRATA_SANITIZE=address,undefined \
  -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=undefined" >/dev/null
ninja -C "$build" -j "$(nproc)" "${targets[@]}" strata_fuzz_seeds
echo ">>> build took $(( $(date +%s) - start )) s"

"$build/fuzz/strata_fuzz_seeds" "$build/fuzz-seeds" >/dev/null
mkdir -p "$build/fuzz-artifacts"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# One target per core at a time: each still gets its full time on a core
# of its own, and four targets take half as long on two cores.
run_target() {  # run_target <target>; exit status 1 on a finding
  local t="$1"
  local corpus="$build/fuzz-corpus/$t"
  mkdir -p "$corpus"
  local log="$build/fuzz-artifacts/$t.log"
  # libFuzzer's -jobs writes fuzz-<job>.log into the working directory: one
  # per target, so concurrent runs of different targets do not mix logs and
  # nothing lands in the source tree.
  local work="$build/fuzz-work/$t"
  mkdir -p "$work"
  (cd "$work" && "$build/fuzz/$t" "$corpus" "$build/fuzz-seeds/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -jobs="$jobs" -workers="$jobs" \
      -artifact_prefix="$build/fuzz-artifacts/$t-" >"$log" 2>&1)
}

parallel=$(( $(nproc) / jobs ))
(( parallel >= 1 )) || parallel=1
declare -A pid_of=()
for t in "${targets[@]}"; do
  while (( $(jobs -rp | wc -l) >= parallel )); do wait -n || true; done
  echo ">>> $t for ${seconds} s (corpus $build/fuzz-corpus/$t)"
  run_target "$t" &
  pid_of[$t]=$!
done
failed=()
for t in "${targets[@]}"; do
  log="$build/fuzz-artifacts/$t.log"
  if wait "${pid_of[$t]}"; then
    echo ">>> $t:"
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$log" |
      sed "s/^/    /" || true
    grep -E "cov: [0-9]+" "$log" | tail -1 | sed "s/^/    /" || true
  else
    echo "!!! $t FAILED; last lines of $log:"
    tail -40 "$log"
    failed+=("$t")
  fi
done
echo ">>> fuzzing took $(( $(date +%s) - start )) s in total"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets with findings: ${failed[*]} (reproducers in $build/fuzz-artifacts)"
  exit 1
fi
